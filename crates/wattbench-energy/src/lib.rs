//! Energy, power and memory meters for wattbench, measured honestly.
//!
//! The energy vocabulary (sources, intervals, per-domain figures, totals, the per-case record)
//! is `wattbench-core`'s [`energy`](wattbench_core::energy), re-exported here; this crate
//! reads the hardware. Three kinds of meter, each labelled with its [`Source`]:
//! - **NVML** ([`nvml`]): the GPU's total-energy counter (`measured`), or power samples
//!   integrated over time where the counter is missing (`integrated`). Read-only. Where both
//!   exist, [`crosscheck`] sets the counter beside the integrated power readings.
//! - **RAPL** ([`rapl`]) through `/sys/class/powercap`: package, core, uncore, dram and psys
//!   counters (`measured`), wraparound-safe; overlapping domains are never added up.
//! - **Estimate** ([`estimate`]): CPU energy from a declared TDP × measured CPU time
//!   (`estimated`), used only where no CPU counter exists, with its assumptions attached.
//!
//! [`Meters`] finds them all and measures windows in the shape of criterion's
//! `Measurement` (`start` → `stop`); [`sampler::Sampler`] records a power/memory trace in the
//! background; [`carbon`] turns energy into kWh, CO2e and cost intervals; [`measure`] runs any
//! command under all of this. A missing reading is `unsupported` with a reason, never 0 J.

pub mod carbon;
pub mod cgroup;
pub mod counter;
#[cfg(feature = "criterion")]
pub mod criterion;
pub mod crosscheck;
pub mod estimate;
pub mod fake;
pub mod gpus;
pub mod integrate;
pub mod measure;
mod meters;
pub mod nvml;
pub mod procfs;
pub mod rapl;
pub mod sampler;
mod signals;

use std::path::PathBuf;

pub use integrate::{counter_delta, trapezoid, Accumulator};
pub use meters::{
    CpuScope, Domain, DomainMeta, EnergyWindow, MeterConfig, Meters, ProcessTree, ReadContext,
    Reading, DEFAULT_SAMPLE_INTERVAL, WRAP_GUARD_INTERVAL,
};
pub use signals::is_ignored;
pub use wattbench_core::energy::{
    cover_span, net_joules, sources_named, total_energy, CaseEnergy, DomainEnergy, EnergyTotal,
    EstimateAssumptions, Interval, NetEnergy, Source,
};
pub use wattbench_core::result::{GpuRecord, MeterInfo};

/// Errors of the energy crate. Missing meters are not errors: they are reported as
/// unavailable with a reason.
#[derive(Debug, thiserror::Error)]
pub enum EnergyError {
    /// The caller asked for something that cannot work (bad flag values, unknown region).
    #[error("{0}")]
    Usage(String),
    /// No meter at all could be read for this window.
    #[error("no energy meter could be read: {0}")]
    NoMeters(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An operating-system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The call that failed.
        call: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The shipped carbon-intensity table is malformed (a build defect).
    #[error("carbon-intensity table: {0}")]
    Table(String),
    /// The background sampler failed (a meter's read panicked on its thread).
    #[error("{0}")]
    Sampler(String),
}
