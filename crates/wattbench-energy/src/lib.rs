//! Energy, power and memory meters for wattbench, measured honestly.
//!
//! Three kinds of meter, each labelled with its [`Source`]:
//! - **NVML** ([`nvml`]): the GPU's total-energy counter (`measured`), or power samples
//!   integrated over time where the counter is missing (`integrated`). Read-only.
//! - **RAPL** ([`rapl`]) through `/sys/class/powercap`: package, core, uncore, dram and psys
//!   counters (`measured`), wraparound-safe; overlapping domains are never added up.
//! - **Estimate** ([`estimate`]): CPU energy from a declared TDP × measured CPU time
//!   (`estimated`), used only where no CPU counter exists, with its assumptions attached.
//!
//! [`Meters`] finds them all and measures windows in the shape of criterion's
//! `Measurement` (`start` → `stop`); [`sampler::Sampler`] records a power/memory trace in the
//! background; [`carbon`] turns energy into kWh, CO2e and cost intervals; [`measure`] runs any
//! command under all of this. A missing reading is `unsupported` with a reason, never 0 J.
#![warn(missing_docs)]

pub mod carbon;
pub mod estimate;
pub mod integrate;
pub mod measure;
mod meters;
pub mod nvml;
pub mod procfs;
pub mod rapl;
pub mod sampler;
mod signals;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use integrate::{net_joules, total_energy, EnergyTotal, Interval, NetEnergy};
pub use meters::{
    CpuScope, Domain, DomainEnergy, EnergyWindow, GpuInfo, MeterConfig, MeterInfo, Meters,
    ProcessTree, ReadContext, Reading, DEFAULT_SAMPLE_INTERVAL, WRAP_GUARD_INTERVAL,
};

/// Where an energy figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Difference of a hardware energy counter (NVML total energy, RAPL `energy_uj`).
    Measured,
    /// Power samples integrated over time (trapezoid rule).
    Integrated,
    /// A model (TDP × utilisation), not a measurement.
    Estimated,
    /// No reading; `joules` is null and `reason` says why.
    Unsupported,
}

impl Source {
    /// The lowercase label used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Measured => "measured",
            Source::Integrated => "integrated",
            Source::Estimated => "estimated",
            Source::Unsupported => "unsupported",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed, then
/// renamed over `path`, so a reader never sees a half-written report.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), EnergyError> {
    use std::io::Write;
    let io = |source| EnergyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Result files are for sharing: 0644 like any file the user writes, not tempfile's 0600.
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
