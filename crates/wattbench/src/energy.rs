//! Energy per case in `wattbench run`: the meters bracket each case's sampling window
//! ([`WindowObserver`]) and core's [`CaseEnergy::from_window`] turns the window into the
//! per-call record (idle subtracted per domain, sources labelled, totals that say what they
//! add).
use std::sync::Arc;
use std::time::{Duration, Instant};
use wattbench_core::energy::{CaseEnergy, Window};
use wattbench_core::harness::WindowObserver;
use wattbench_core::units;
use wattbench_energy::{DomainEnergy, EnergyWindow, Meters};

/// Meters plus the run's idle baseline, shared by every case.
pub struct CaseMeter {
    meters: Arc<Meters>,
    idle: Arc<Vec<DomainEnergy>>,
    window: Option<(Instant, Result<EnergyWindow, String>)>,
}

impl CaseMeter {
    /// A meter for one case.
    pub fn new(meters: Arc<Meters>, idle: Arc<Vec<DomainEnergy>>) -> Self {
        Self {
            meters,
            idle,
            window: None,
        }
    }
}

/// Measure the idle baseline (nothing of ours running) over the meters' minimum window.
pub fn idle_baseline(meters: &Meters) -> Vec<DomainEnergy> {
    meters.idle_baseline(meters.min_window().max(Duration::from_millis(500)))
}

impl WindowObserver for CaseMeter {
    fn min_window(&self) -> Duration {
        self.meters.min_window()
    }

    fn start(&mut self) {
        self.window = Some((
            Instant::now(),
            self.meters.start().map_err(|e| e.to_string()),
        ));
    }

    fn stop(&mut self, calls: u64, flops_per_call: u64) -> Option<CaseEnergy> {
        let (t0, window) = self.window.take()?;
        let (domains, error) = match window {
            Ok(w) => (self.meters.stop(w), None),
            Err(e) => (
                Vec::new(),
                Some(format!("the energy window could not start: {e}")),
            ),
        };
        Some(CaseEnergy::from_window(
            &domains,
            &self.idle,
            Window {
                calls,
                flops_per_call,
                unit: "call",
                window_s: t0.elapsed().as_secs_f64(),
                min_window_s: Some(self.meters.min_window().as_secs_f64()),
                error: error.as_deref(),
            },
        ))
    }
}

/// "12.3 mJ (estimated)" for tables: the total per call and its source(s).
pub fn summary(energy: &CaseEnergy) -> String {
    let Some(j) = energy.total_joules_per_iter else {
        return "unmeasured".into();
    };
    let sources: Vec<&str> = energy.total_sources.iter().map(|s| s.as_str()).collect();
    format!("{} ({})", units::joules(j.value), sources.join("+"))
}
