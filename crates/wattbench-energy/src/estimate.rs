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

/// Relative uncertainty (half-width) of the estimate where the table gives no boost power
/// for the CPU: a convention, not a published figure, and reported as such.
pub const MODEL_UNCERTAINTY: f64 = 0.5;

/// Shortest estimate window: CPU time is accounted in ticks (10 ms); one tick of error at each
/// edge stays under 4 % of a single busy thread's time over 0.5 s (50 ticks).
pub const MIN_WINDOW: Duration = Duration::from_millis(500);

/// One CPU model's published power figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPower {
    /// The model as it appears in the CPU's brand string, matched whole (`6248` does not
    /// match `6248R`, `7950X` does not match `7950X3D`).
    pub model: &'static str,
    /// Vendor TDP (Intel: processor base power / PL1; AMD: default TDP), W.
    pub tdp_watts: f64,
    /// Hardware threads per package.
    pub threads: u32,
    /// The sustained power the package may draw above its TDP under load (Intel maximum
    /// turbo power / PL2; AMD package power tracking limit PPT; EPYC cTDP maximum), W.
    pub boost_watts: Option<f64>,
}

const fn cpu(model: &'static str, tdp_watts: f64, threads: u32, boost: f64) -> CpuPower {
    CpuPower {
        model,
        tdp_watts,
        threads,
        boost_watts: if boost > 0.0 { Some(boost) } else { None },
    }
}

/// Vendor power figures for common CPUs (from the vendors' product pages: Intel ARK,
/// AMD product specifications). 0 boost: none published beyond the TDP.
pub const TDP_TABLE: &[CpuPower] = &[
    cpu("EPYC 9654", 360.0, 192, 400.0),
    cpu("EPYC 7763", 280.0, 128, 0.0),
    cpu("EPYC 7742", 225.0, 128, 240.0),
    cpu("Threadripper PRO 5995WX", 280.0, 128, 0.0),
    cpu("Xeon(R) Platinum 8480+", 350.0, 112, 0.0),
    cpu("Xeon(R) Platinum 8380", 270.0, 80, 0.0),
    cpu("Xeon(R) Platinum 8168", 205.0, 48, 0.0),
    cpu("Xeon(R) Gold 6338", 205.0, 64, 0.0),
    cpu("Xeon(R) Gold 6248", 150.0, 40, 0.0),
    cpu("Xeon(R) Gold 6248R", 205.0, 48, 0.0),
    cpu("i9-13900K", 125.0, 32, 253.0),
    cpu("i7-12700K", 125.0, 20, 190.0),
    cpu("Ryzen 9 7950X", 170.0, 32, 230.0),
    cpu("Ryzen 9 7950X3D", 120.0, 32, 162.0),
    cpu("Ryzen 9 5950X", 105.0, 32, 142.0),
];

/// Whether `model` occurs in `brand` as a whole model name: not followed by a letter or
/// digit (so `6248` is not `6248R`), nor preceded by one.
fn names_model(brand: &str, model: &str) -> bool {
    brand.match_indices(model).any(|(i, _)| {
        let before = brand[..i].chars().next_back();
        let after = brand[i + model.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Where the TDP came from, and how far the estimate may be off.
#[derive(Debug, Clone, PartialEq)]
pub struct TdpChoice {
    /// Package TDP, W (or the declared figure).
    pub tdp_watts: f64,
    /// Hardware threads the TDP is spread over.
    pub threads: u32,
    /// `flag`, `table: <entry>` or `default`.
    pub source: String,
    /// The package's boost power limit, W, where published.
    pub boost_watts: Option<f64>,
    /// Relative uncertainty (half-width) of the estimate.
    pub relative_uncertainty: f64,
    /// Why that uncertainty.
    pub uncertainty_basis: String,
}

/// More watts per logical CPU than any CPU this estimate covers draws per hardware thread
/// (a 2-core, 2-thread desktop part at 65 W is 32.5 W): a declared TDP above it is most likely
/// a whole package's, given on a machine (a VM) that shows only some of its threads.
const PLAUSIBLE_WATTS_PER_THREAD: f64 = 40.0;

impl TdpChoice {
    /// Watts attributed to one fully busy hardware thread.
    pub fn watts_per_thread(&self) -> f64 {
        self.tdp_watts / self.threads.max(1) as f64
    }

    /// Why a declared TDP looks like the whole package's rather than this machine's share.
    pub fn warning(&self) -> Option<String> {
        (self.source.starts_with("flag") && self.watts_per_thread() > PLAUSIBLE_WATTS_PER_THREAD)
            .then(|| {
                format!(
                    "--tdp-watts {} W is spread over the {} logical CPUs this machine shows: {:.0} \
                     W per busy thread, more than any CPU draws per thread; if it is the whole \
                     package's TDP (a VM shows only some of its threads), pass your share \
                     (TDP x logical CPUs here / the package's threads), or the CPU estimate is \
                     inflated that many times",
                    self.tdp_watts,
                    self.threads,
                    self.watts_per_thread()
                )
            })
    }
}

fn conventional_band(why: &str) -> (f64, String) {
    (
        MODEL_UNCERTAINTY,
        format!(
            "±{:.0} %: {why}; a convention, not a published figure",
            MODEL_UNCERTAINTY * 100.0
        ),
    )
}

/// Picks the TDP: the declared figure (spread over the machine's logical CPUs), else the
/// table by exact model name, else [`DEFAULT_WATTS_PER_THREAD`] per logical CPU; and the
/// band: where the vendor publishes a boost power (PL2, PPT), the package may sustain that
/// much above its TDP under load, so the band reaches it (at least ±50 %).
pub fn choose_tdp(declared: Option<f64>, cpu_model: &str, logical_cpus: u32) -> TdpChoice {
    let logical = logical_cpus.max(1);
    if let Some(t) = declared.filter(|t| t.is_finite() && *t > 0.0) {
        let (relative_uncertainty, uncertainty_basis) =
            conventional_band("declared TDP; real power at a given load is not linear in it");
        return TdpChoice {
            tdp_watts: t,
            threads: logical,
            source: "flag (declared TDP of all logical CPUs this machine shows)".into(),
            boost_watts: None,
            relative_uncertainty,
            uncertainty_basis,
        };
    }
    let best = TDP_TABLE
        .iter()
        .filter(|e| names_model(cpu_model, e.model))
        .max_by_key(|e| e.model.len());
    match best {
        Some(e) => {
            let (relative_uncertainty, uncertainty_basis) = match e.boost_watts {
                Some(b) => {
                    let r = (b / e.tdp_watts - 1.0).max(MODEL_UNCERTAINTY);
                    (
                        r,
                        format!(
                            "±{:.0} %: the vendor's boost power limit is {b:.0} W against a \
                             {:.0} W TDP, which a busy package may sustain (at least ±{:.0} %)",
                            r * 100.0,
                            e.tdp_watts,
                            MODEL_UNCERTAINTY * 100.0
                        ),
                    )
                }
                None => conventional_band(
                    "no boost power above the TDP is published for this model; real power at \
                     a given load is not linear in the TDP",
                ),
            };
            TdpChoice {
                tdp_watts: e.tdp_watts,
                threads: e.threads,
                source: format!(
                    "table: {} (vendor TDP, {} threads per package)",
                    e.model, e.threads
                ),
                boost_watts: e.boost_watts,
                relative_uncertainty,
                uncertainty_basis,
            }
        }
        None => {
            let (relative_uncertainty, uncertainty_basis) =
                conventional_band("model not in the table, a default per-thread power is used");
            TdpChoice {
                tdp_watts: DEFAULT_WATTS_PER_THREAD * logical as f64,
                threads: logical,
                source: format!(
                    "default: {DEFAULT_WATTS_PER_THREAD} W per logical CPU (model not in the \
                     table)"
                ),
                boost_watts: None,
                relative_uncertainty,
                uncertainty_basis,
            }
        }
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
        let scope_name = scope.name();
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
    fn uncertainty_j(&self, w: &crate::counter::WindowFacts) -> f64 {
        self.tdp.relative_uncertainty * w.joules
            + 2.0 * procfs::tick_seconds() * self.tdp.watts_per_thread()
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
            relative_uncertainty: self.tdp.relative_uncertainty,
            uncertainty_basis: self.tdp.uncertainty_basis.clone(),
            boost_watts: self.tdp.boost_watts,
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
        assert_eq!(flag.warning(), None, "25 W a thread is plausible");
        // A package's 280 W declared on a 2-vCPU VM: 140 W a thread.
        let package = choose_tdp(Some(280.0), "AMD EPYC 7763 64-Core Processor", 2);
        assert!(package.warning().unwrap().contains("140 W per busy thread"));
        // The table's figure is spread over the package's threads: never warned about.
        let table = choose_tdp(None, "AMD EPYC 7763 64-Core Processor", 2);
        assert_eq!(table.warning(), None);
        assert_eq!(flag.watts_per_thread(), 25.0);
        let table = choose_tdp(None, "AMD EPYC 7763 64-Core Processor", 4);
        assert_eq!(table.watts_per_thread(), 280.0 / 128.0);
        assert!(table.source.starts_with("table: EPYC 7763"));
        let default = choose_tdp(None, "Intel(R) Xeon(R) Processor", 2);
        assert_eq!(default.watts_per_thread(), DEFAULT_WATTS_PER_THREAD);
        assert!(default.source.starts_with("default"));
        // Nonsense declared values fall through to the table.
        assert_eq!(choose_tdp(Some(-1.0), "x", 2).source, default.source);
        assert!(default.uncertainty_basis.contains("convention"));
    }

    /// Suffixed models matched their base model (6248R as a 150 W 6248, 7950X3D as a
    /// 170 W 7950X).
    #[test]
    fn models_match_exactly_and_boost_power_sets_the_band() {
        let r = choose_tdp(None, "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", 96);
        assert_eq!((r.tdp_watts, r.threads), (205.0, 48), "{}", r.source);
        let b = choose_tdp(None, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 80);
        assert_eq!(b.tdp_watts, 150.0);
        let x3d = choose_tdp(None, "AMD Ryzen 9 7950X3D 16-Core Processor", 32);
        assert_eq!(x3d.tdp_watts, 120.0, "{}", x3d.source);
        let x = choose_tdp(None, "AMD Ryzen 9 7950X 16-Core Processor", 32);
        assert_eq!(x.tdp_watts, 170.0);
        // 230 W PPT over a 170 W TDP: +35 %, below the ±50 % floor.
        assert_eq!(x.relative_uncertainty, 0.5);
        // 253 W PL2 over a 125 W PL1: the band reaches the boost power.
        let k = choose_tdp(None, "13th Gen Intel(R) Core(TM) i9-13900K", 32);
        assert!((k.relative_uncertainty - (253.0 / 125.0 - 1.0)).abs() < 1e-12);
        assert!(
            k.uncertainty_basis.contains("253 W"),
            "{}",
            k.uncertainty_basis
        );
        // A model that is not in the table, though it starts like one.
        let kf = choose_tdp(None, "13th Gen Intel(R) Core(TM) i9-13900KS", 32);
        assert!(kf.source.starts_with("default"), "{}", kf.source);
    }
}
