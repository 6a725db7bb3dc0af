//! Energy per case in `wattbench run`: the meters bracket each case's sampling window
//! ([`WindowObserver`]); joules are divided by the calls made in the window and the run's
//! idle baseline is subtracted per domain. Sources stay labelled; totals say what they add.
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use wattbench_core::harness::WindowObserver;
use wattbench_energy::{net_joules, total_energy, DomainEnergy, EnergyWindow, Meters};

/// Meters plus the run's idle baseline, shared by every case.
pub struct CaseMeter {
    meters: Arc<Meters>,
    idle: Arc<Vec<DomainEnergy>>,
    window: Option<Result<EnergyWindow, String>>,
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

fn per_call(v: Option<f64>, calls: u64) -> Option<f64> {
    v.map(|j| j / calls as f64)
}

impl WindowObserver for CaseMeter {
    fn min_window(&self) -> Duration {
        self.meters.min_window()
    }

    fn start(&mut self) {
        self.window = Some(self.meters.start().map_err(|e| e.to_string()));
    }

    fn stop(&mut self, calls: u64, flops_per_call: u64) -> Option<Value> {
        let window = match self.window.take()? {
            Ok(w) => w,
            Err(e) => {
                return Some(
                    json!({"domains": [], "error": format!("energy window could not start: {e}")}),
                )
            }
        };
        let calls = calls.max(1);
        let domains = self.meters.stop(window);
        let rows: Vec<Value> = domains
            .iter()
            .map(|d| {
                let idle = self.idle.iter().find(|i| i.name == d.name);
                let net = idle.and_then(|i| net_joules(d, i));
                json!({
                    "name": d.name,
                    "source": d.source,
                    "reason": d.reason,
                    "scope": d.scope,
                    "in_total": d.in_total,
                    "joules_per_iter": per_call(d.joules, calls),
                    "uncertainty_j": per_call(d.uncertainty_j, calls),
                    "window_s": d.window_s,
                    "avg_watts": d.avg_watts,
                    "idle_watts": net.as_ref().map(|n| n.idle_watts),
                    "net_joules_per_iter": net.as_ref().map(|n| n.net_joules / calls as f64),
                    "note": d.note,
                    "assumptions": d.assumptions,
                })
            })
            .collect();
        let total = total_energy(&domains);
        let total_per_call = total.joules.map(|iv| iv.scale(1.0 / calls as f64));
        let gflops_per_joule = total_per_call
            .filter(|iv| iv.value > 0.0)
            .map(|iv| flops_per_call as f64 / 1e9 / iv.value);
        Some(json!({
            "calls": calls,
            "domains": rows,
            "total_joules_per_iter": total_per_call,
            "total_includes": total.includes,
            "total_excludes": total.excludes,
            "total_sources": total.sources,
            "total_mixes_sources": total.mixed,
            "gflops_per_joule": gflops_per_joule,
        }))
    }
}

/// "12.3 mJ (estimated)" for the table: the case's total per call and its source(s).
pub fn summary(energy: &Value) -> String {
    let Some(j) = energy["total_joules_per_iter"]["value"].as_f64() else {
        return "unmeasured".into();
    };
    let sources: Vec<&str> = energy["total_sources"]
        .as_array()
        .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).collect());
    format!("{} ({})", crate::output::joules(j), sources.join("+"))
}
