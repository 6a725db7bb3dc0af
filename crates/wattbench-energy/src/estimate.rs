//! CPU energy estimated from a TDP and measured CPU time, for machines with no CPU counter.
//!
//! Model: E = (TDP / hardware threads) × CPU-seconds of the measured process (tree). That is
//! CodeCarbon's "TDP × utilisation" with the utilisation measured per process instead of
//! assumed (CodeCarbon's fallback assumes 50 %), and per hardware thread so that a VM with two
//! vCPUs of a 64-core part is charged two threads' share, not the whole package. It leaves out
//! idle/static power, DRAM and other processes, so its figures are already "net"; real power
//! at a given utilisation differs from this linear share of TDP (turbo can exceed TDP, light
//! load draws relatively more), hence a stated ±50 % model uncertainty. Always `estimated`.

use std::time::Duration;

use crate::integrate::Accumulator;
use crate::meters::{CpuScope, Domain, DomainMeta, ReadContext, Reading};
use crate::procfs;
use crate::{EstimateAssumptions, Source};

/// Watts per hardware thread when neither a flag nor the table gives a TDP: about the median
/// of TDP / threads over the table below (1.9–5.3 W).
pub const DEFAULT_WATTS_PER_THREAD: f64 = 3.5;

/// Relative model uncertainty of the estimate (half-width).
pub const MODEL_UNCERTAINTY: f64 = 0.5;

/// Shortest estimate window: CPU time is accounted in ticks (10 ms); one tick of error at each
/// edge stays under 4 % of a single busy thread's time over 0.5 s (50 ticks).
pub const MIN_WINDOW: Duration = Duration::from_millis(500);

/// Vendor TDP (W) and hardware threads per package for common CPUs, matched by substring of
/// the model name, longest first.
pub const TDP_TABLE: &[(&str, f64, u32)] = &[
    ("EPYC 9654", 360.0, 192),
    ("EPYC 7763", 280.0, 128),
    ("EPYC 7742", 225.0, 128),
    ("Threadripper PRO 5995WX", 280.0, 128),
    ("Xeon(R) Platinum 8480", 350.0, 112),
    ("Xeon(R) Platinum 8380", 270.0, 80),
    ("Xeon(R) Platinum 8168", 205.0, 48),
    ("Xeon(R) Gold 6338", 205.0, 64),
    ("Xeon(R) Gold 6248", 150.0, 40),
    ("i9-13900K", 125.0, 32),
    ("i7-12700K", 125.0, 20),
    ("Ryzen 9 7950X", 170.0, 32),
    ("Ryzen 9 5950X", 105.0, 32),
];

/// Where the TDP came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TdpChoice {
    /// Package TDP, W (or the declared figure).
    pub tdp_watts: f64,
    /// Hardware threads the TDP is spread over.
    pub threads: u32,
    /// `flag`, `table: <entry>` or `default`.
    pub source: String,
}

impl TdpChoice {
    /// Watts attributed to one fully busy hardware thread.
    pub fn watts_per_thread(&self) -> f64 {
        self.tdp_watts / self.threads.max(1) as f64
    }
}

/// Picks the TDP: the declared figure (spread over the machine's logical CPUs), else the
/// table by model name, else [`DEFAULT_WATTS_PER_THREAD`] per logical CPU.
pub fn choose_tdp(declared: Option<f64>, cpu_model: &str, logical_cpus: u32) -> TdpChoice {
    let logical = logical_cpus.max(1);
    if let Some(t) = declared.filter(|t| t.is_finite() && *t > 0.0) {
        return TdpChoice {
            tdp_watts: t,
            threads: logical,
            source: "flag (declared TDP of all logical CPUs this machine shows)".into(),
        };
    }
    let mut best: Option<&(&str, f64, u32)> = None;
    for e in TDP_TABLE {
        if cpu_model.contains(e.0) && best.is_none_or(|b| e.0.len() > b.0.len()) {
            best = Some(e);
        }
    }
    match best {
        Some((key, tdp, threads)) => TdpChoice {
            tdp_watts: *tdp,
            threads: *threads,
            source: format!("table: {key} (vendor TDP, {threads} threads per package)"),
        },
        None => TdpChoice {
            tdp_watts: DEFAULT_WATTS_PER_THREAD * logical as f64,
            threads: logical,
            source: format!(
                "default: {DEFAULT_WATTS_PER_THREAD} W per logical CPU (model not in the table)"
            ),
        },
    }
}

/// The CPU model name and the number of logical CPUs.
pub fn cpu_identity() -> (String, u32) {
    use sysinfo::{CpuRefreshKind, RefreshKind, System};
    let logical = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let sys =
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    match sys {
        Ok(s) if !s.cpus().is_empty() => {
            let brand = s.cpus()[0].brand().trim().to_string();
            let n = s.cpus().len() as u32;
            (
                if brand.is_empty() {
                    "unknown".into()
                } else {
                    brand
                },
                n.max(1),
            )
        }
        _ => ("unknown".into(), logical),
    }
}

/// The CPU estimate domain (`cpu-estimate`).
#[derive(Debug, Clone)]
pub struct CpuEstimate {
    meta: DomainMeta,
    tdp: TdpChoice,
    cpu_model: String,
    logical_cpus: u32,
    scope: CpuScope,
}

impl CpuEstimate {
    /// An estimate for this machine's CPU over `scope`.
    pub fn new(declared_tdp: Option<f64>, scope: CpuScope) -> Self {
        let (model, logical) = cpu_identity();
        Self::with_identity(declared_tdp, scope, &model, logical)
    }

    /// An estimate for a given CPU model and logical CPU count.
    pub fn with_identity(
        declared_tdp: Option<f64>,
        scope: CpuScope,
        cpu_model: &str,
        logical_cpus: u32,
    ) -> Self {
        let scope_name = match scope {
            CpuScope::Process => "process",
            CpuScope::Tree(_) => "process-tree",
        };
        let mut meta = DomainMeta::new("cpu-estimate", "estimate", Source::Estimated, scope_name);
        meta.note =
            Some("model, not a measurement: TDP share × CPU time; excludes idle power".into());
        CpuEstimate {
            meta,
            tdp: choose_tdp(declared_tdp, cpu_model, logical_cpus),
            cpu_model: cpu_model.to_string(),
            logical_cpus: logical_cpus.max(1),
            scope,
        }
    }

    /// The TDP used.
    pub fn tdp(&self) -> &TdpChoice {
        &self.tdp
    }
}

impl Domain for CpuEstimate {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, ctx: &ReadContext) -> Result<Reading, String> {
        let snap = match &ctx.tree {
            Some(s) => *s,
            None => self.scope.snapshot()?,
        };
        Ok(Reading::CpuTime {
            seconds: snap.cpu_seconds,
            watts_per_cpu: self.tdp.watts_per_thread(),
        })
    }
    fn uncertainty_j(&self, joules: f64, _window_s: f64, _intervals: usize) -> f64 {
        MODEL_UNCERTAINTY * joules + 2.0 * procfs::tick_seconds() * self.tdp.watts_per_thread()
    }
    fn min_window(&self) -> Duration {
        MIN_WINDOW
    }
    fn assumptions(&self, acc: &Accumulator, window_s: f64) -> Option<EstimateAssumptions> {
        let cpu_s = acc.cpu_seconds();
        let util = if window_s > 0.0 {
            Some(cpu_s / (window_s * self.logical_cpus as f64))
        } else {
            None
        };
        Some(EstimateAssumptions {
            model: "TDP x utilisation: joules = TDP / hardware_threads x cpu_seconds".into(),
            tdp_watts: self.tdp.tdp_watts,
            tdp_source: self.tdp.source.clone(),
            hardware_threads: self.tdp.threads,
            watts_per_busy_thread: self.tdp.watts_per_thread(),
            cpu_model: self.cpu_model.clone(),
            logical_cpus: self.logical_cpus,
            cpu_seconds: cpu_s,
            utilisation_of_machine: util,
            relative_uncertainty: MODEL_UNCERTAINTY,
            excludes: "idle/static power, DRAM, GPUs, other processes".into(),
            comparison: "CodeCarbon's fallback is TDP x 50% for the whole CPU".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tdp_precedence() {
        let flag = choose_tdp(Some(100.0), "AMD EPYC 7763 64-Core Processor", 4);
        assert_eq!(flag.watts_per_thread(), 25.0);
        let table = choose_tdp(None, "AMD EPYC 7763 64-Core Processor", 4);
        assert_eq!(table.watts_per_thread(), 280.0 / 128.0);
        assert!(table.source.starts_with("table: EPYC 7763"));
        let default = choose_tdp(None, "Intel(R) Xeon(R) Processor", 2);
        assert_eq!(default.watts_per_thread(), DEFAULT_WATTS_PER_THREAD);
        assert!(default.source.starts_with("default"));
        // Nonsense declared values fall through to the table.
        assert_eq!(choose_tdp(Some(-1.0), "x", 2).source, default.source);
    }
}
