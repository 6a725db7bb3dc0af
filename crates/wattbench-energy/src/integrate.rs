//! The arithmetic of energy: counter deltas across wraparound, trapezoid integration of power
//! samples, per-domain accumulation, idle subtraction and totals that say what they include.

use serde::{Deserialize, Serialize};

use crate::{DomainEnergy, Reading, Source};

/// A value with an interval around it, carried from joules to kWh to CO2e.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Best estimate.
    pub value: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// `value ± half_width`, with the lower bound kept at or above zero.
    pub fn symmetric(value: f64, half_width: f64) -> Interval {
        let hw = half_width.abs();
        Interval {
            value,
            low: (value - hw).max(0.0),
            high: value + hw,
        }
    }

    /// Every bound multiplied by a non-negative factor.
    pub fn scale(self, k: f64) -> Interval {
        Interval {
            value: self.value * k,
            low: self.low * k,
            high: self.high * k,
        }
    }
}

/// Bound-wise sum (worst case: uncertainties add linearly).
impl std::ops::Add for Interval {
    type Output = Interval;
    fn add(self, o: Interval) -> Interval {
        Interval {
            value: self.value + o.value,
            low: self.low + o.low,
            high: self.high + o.high,
        }
    }
}

/// Difference between two readings of a counter that wraps back to zero after `max`
/// (`max_energy_range_uj` for RAPL). Assumes at most one wrap between the readings, which the
/// sampler guarantees by reading far more often than a wrap period. `None` when the counter
/// went backwards and its range is unknown: never a negative delta.
pub fn counter_delta(prev: u64, cur: u64, max: Option<u64>) -> Option<u64> {
    if cur >= prev {
        Some(cur - prev)
    } else {
        let max = max?;
        if prev > max {
            return None;
        }
        // Counts from prev up to max, then from 0 up to cur. The counter's true modulus is
        // max + one energy unit (~15-61 µJ); that unit is not exposed, so one wrap can under-
        // count by at most one unit, which the uncertainty covers.
        Some(max - prev + cur)
    }
}

/// Energy (J) of power samples `(t_seconds, watts)` by the trapezoid rule. `None` with fewer
/// than two samples or when time does not increase.
pub fn trapezoid(samples: &[(f64, f64)]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let mut e = 0.0;
    for w in samples.windows(2) {
        let dt = w[1].0 - w[0].0;
        if dt < 0.0 {
            return None;
        }
        e += 0.5 * (w[0].1 + w[1].1) * dt;
    }
    Some(e)
}

/// Shortest span over which a CPU-time rate may set a peak (5 ticks of 10 ms).
pub const MIN_CPU_PEAK_SPAN_S: f64 = 0.05;

/// Running energy of one domain, fed with successive readings. Counter domains add deltas
/// (wrap-safe), power domains integrate by trapezoid, CPU-time domains convert CPU seconds.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    last: Option<(f64, Reading)>,
    first_t: Option<f64>,
    joules: f64,
    intervals: usize,
    peak_w: Option<f64>,
    wraps: u32,
    cpu_seconds: f64,
    error: Option<String>,
}

impl Accumulator {
    /// A fresh accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reading taken at `t` seconds; returns the mean power since the previous reading.
    pub fn push(&mut self, t: f64, r: Reading) -> Option<f64> {
        let Some((t0, prev)) = self.last.clone() else {
            self.first_t = Some(t);
            self.last = Some((t, r));
            return None;
        };
        let dt = t - t0;
        let step_j = match (&prev, &r) {
            (
                Reading::Counter {
                    raw: a,
                    joules_per_unit,
                    wrap_at,
                },
                Reading::Counter { raw: b, .. },
            ) => {
                if b < a {
                    self.wraps += 1;
                }
                match counter_delta(*a, *b, *wrap_at) {
                    Some(d) => d as f64 * joules_per_unit,
                    None => {
                        self.error = Some(format!(
                            "counter went backwards ({a} -> {b}) and its range is unknown; \
                             reading discarded"
                        ));
                        self.last = Some((t, r));
                        return None;
                    }
                }
            }
            (Reading::Power { watts: a }, Reading::Power { watts: b }) => 0.5 * (a + b) * dt,
            (
                Reading::CpuTime {
                    seconds: a,
                    watts_per_cpu: w,
                },
                Reading::CpuTime { seconds: b, .. },
            ) => {
                // CPU time of a process tree can drop when a child exits unreaped elsewhere;
                // never count that as negative energy.
                let d = (b - a).max(0.0);
                self.cpu_seconds += d;
                d * w
            }
            _ => {
                self.error = Some("reading changed kind mid-window".into());
                return None;
            }
        };
        let is_cpu = matches!(r, Reading::CpuTime { .. });
        // Keep the larger CPU-time reading so a transient drop is not counted twice.
        let keep = match (&prev, &r) {
            (Reading::CpuTime { seconds: a, .. }, Reading::CpuTime { seconds: b, .. }) if b < a => {
                prev.clone()
            }
            _ => r,
        };
        self.joules += step_j;
        self.intervals += 1;
        self.last = Some((t, keep));
        if dt > 0.0 {
            let p = step_j / dt;
            // CPU time is counted in 10 ms ticks: over shorter spans the rate is mostly
            // quantisation, so such spans do not set the peak.
            if !is_cpu || dt >= MIN_CPU_PEAK_SPAN_S {
                self.peak_w = Some(self.peak_w.map_or(p, |q: f64| q.max(p)));
            }
            Some(p)
        } else {
            None
        }
    }

    /// Records that a reading failed; the window reports it if nothing else is known.
    pub fn fail(&mut self, why: String) {
        self.error = Some(why);
    }

    /// Joules so far; `None` before two readings.
    pub fn joules(&self) -> Option<f64> {
        (self.intervals > 0).then_some(self.joules)
    }

    /// Seconds between the first and the last reading.
    pub fn span_s(&self) -> f64 {
        match (self.first_t, &self.last) {
            (Some(a), Some((b, _))) => b - a,
            _ => 0.0,
        }
    }

    /// Number of intervals (readings − 1).
    pub fn intervals(&self) -> usize {
        self.intervals
    }

    /// Highest mean power over one sampling interval.
    pub fn peak_watts(&self) -> Option<f64> {
        self.peak_w
    }

    /// Counter wraps seen.
    pub fn wraps(&self) -> u32 {
        self.wraps
    }

    /// CPU seconds accumulated (CPU-time domains only).
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_seconds
    }

    /// The last reading error, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Gross and net (above idle) energy of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NetEnergy {
    /// Idle power of the domain, W.
    pub idle_watts: f64,
    /// Energy the window would have used at idle, J.
    pub idle_joules: f64,
    /// Gross − idle, J. Not clamped: a negative value means the load was within noise of idle.
    pub net_joules: f64,
    /// Uncertainty of the net figure (gross and scaled idle uncertainties added), J.
    pub uncertainty_j: f64,
}

/// Subtracts the idle baseline from a window: net = gross − idle_watts × window.
/// `None` when either reading is missing or the idle window is empty.
pub fn net_joules(gross: &DomainEnergy, idle: &DomainEnergy) -> Option<NetEnergy> {
    let g = gross.joules?;
    let i = idle.joules?;
    if idle.window_s <= 0.0 {
        return None;
    }
    let idle_watts = i / idle.window_s;
    let scale = gross.window_s / idle.window_s;
    let idle_joules = idle_watts * gross.window_s;
    Some(NetEnergy {
        idle_watts,
        idle_joules,
        net_joules: g - idle_joules,
        uncertainty_j: gross.uncertainty_j.unwrap_or(0.0)
            + idle.uncertainty_j.unwrap_or(0.0) * scale,
    })
}

/// A sum of domains that says exactly what it includes and what it leaves out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyTotal {
    /// Joules with interval; null when no domain could be added.
    pub joules: Option<Interval>,
    /// Domains added, as `name (source)`.
    pub includes: Vec<String>,
    /// Domains left out, as `name: why`.
    pub excludes: Vec<String>,
    /// Distinct sources in the sum.
    pub sources: Vec<Source>,
    /// True when measured/integrated and estimated figures were added together.
    pub mixed: bool,
    /// Joules from `estimated` domains alone (so a reader can take them out).
    pub estimated_joules: Option<f64>,
}

/// Adds the non-overlapping domains that have a reading (`in_total`), and lists the rest.
pub fn total_energy(domains: &[DomainEnergy]) -> EnergyTotal {
    let mut includes = Vec::new();
    let mut excludes = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut sum: Option<Interval> = None;
    let mut est = None;
    for d in domains {
        match (d.in_total, d.joules) {
            (true, Some(j)) => {
                let iv = Interval::symmetric(j, d.uncertainty_j.unwrap_or(0.0));
                sum = Some(sum.map_or(iv, |s| s + iv));
                includes.push(format!("{} ({})", d.name, d.source));
                if !sources.contains(&d.source) {
                    sources.push(d.source);
                }
                if d.source == Source::Estimated {
                    est = Some(est.unwrap_or(0.0) + j);
                }
            }
            (false, _) => excludes.push(format!(
                "{}: {}",
                d.name,
                d.note.as_deref().unwrap_or("overlaps another domain")
            )),
            (true, None) => excludes.push(format!(
                "{}: no reading ({})",
                d.name,
                d.reason.as_deref().unwrap_or("unsupported")
            )),
        }
    }
    let mixed = sources.contains(&Source::Estimated) && sources.len() > 1;
    EnergyTotal {
        joules: sum,
        includes,
        excludes,
        sources,
        mixed,
        estimated_joules: est,
    }
}
