//! What bounds a hardware energy counter's figure: its resolution, how often it updates, when
//! it wraps, how much power it can draw, how accurate its sensor is; and what the counter was
//! seen to do before the first window ([`Probe`]). From these, [`assess`] gives a window's
//! uncertainty and the warnings that go with it, so that a window too short to resolve, a
//! counter that may have wrapped unseen or an unknown wrap range is never silent.
use std::time::{Duration, Instant};

use crate::integrate::Accumulator;
use crate::meters::{Domain, ReadContext, Reading};

/// A counter domain's physics.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSpec {
    /// Joules per counter unit (RAPL: 2^-14 J ≈ 61 µJ on Intel, 2^-16 J ≈ 15.3 µJ on AMD;
    /// NVML: 1 mJ).
    pub resolution_j: f64,
    /// How often the counter is documented to update; the probe measures it.
    pub nominal_update: Duration,
    /// Whether the counter wraps back to zero (RAPL), or never in practice (NVML's 64-bit mJ).
    pub wraps: bool,
    /// The energy at which it wraps, J; `None` with `wraps` when the range is unknown.
    pub wrap_j: Option<f64>,
    /// A plausible upper bound of the domain's power, W, and where it comes from.
    pub peak_w: f64,
    /// Where `peak_w` comes from.
    pub peak_source: String,
    /// Relative accuracy of the sensor behind the counter (half-width; NVIDIA documents ±5%
    /// for its power readings), 0 where no figure is published.
    pub relative_accuracy: f64,
}

impl CounterSpec {
    /// How long the counter takes to wrap at its plausible peak power.
    pub fn wrap_period(&self) -> Option<Duration> {
        let w = self.wrap_j?;
        (self.wraps && self.peak_w > 0.0).then(|| Duration::from_secs_f64(w / self.peak_w))
    }

    /// The longest sampling interval that sees every wrap: half the wrap period, at least
    /// 1 ms; `None` for counters that do not wrap or whose range is unknown.
    pub fn safe_interval(&self) -> Option<Duration> {
        self.wrap_period()
            .map(|p| (p / 2).max(Duration::from_millis(1)))
    }
}

/// What a counter was seen to do before the first window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// Time between two changes of the counter; `None` when it did not change twice within
    /// [`PROBE_LIMIT`] (it updates more slowly than that, or the domain was idle).
    pub update: Option<Duration>,
    /// Mean power over that update, W.
    pub power_w: Option<f64>,
    /// When the counter last changed by the probe's end (or was first read, if it did not),
    /// carried on across the windows that follow ([`Watched`]); `None` when it could not be
    /// read.
    pub watched: Option<Watched>,
}

/// When a counter last changed, as far as it was watched: from the probe on, across the idle
/// baseline and every window, so that "the counter did not move" is judged on all the time it
/// was seen unchanged, not on one window alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watched {
    /// Its value at the last change seen (or at the first reading).
    raw: u64,
    /// When that change (or the first reading) was seen.
    since: Instant,
    /// Whether it changed at all since it was first read.
    moved: bool,
}

impl Watched {
    /// A counter first read at `at`, with value `raw`.
    pub fn new(raw: u64, at: Instant) -> Watched {
        Watched {
            raw,
            since: at,
            moved: false,
        }
    }

    /// A later reading `raw` at `at`.
    pub fn see(&mut self, raw: u64, at: Instant) {
        if raw != self.raw {
            *self = Watched {
                raw,
                since: at,
                moved: true,
            };
        }
    }

    /// How long it has been seen unchanged, up to `now`.
    pub fn still_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    /// Whether it changed at all since it was first read.
    pub fn moved(&self) -> bool {
        self.moved
    }
}

/// The longest a probe waits for a counter to change twice.
pub const PROBE_LIMIT: Duration = Duration::from_millis(300);

/// Polls the counter domains of `domains` (`None` entries are skipped) together until each
/// has changed twice or [`PROBE_LIMIT`] passes, and reports how often each updates.
pub fn probe(domains: &[(&dyn Domain, Option<CounterSpec>)]) -> Vec<Option<Probe>> {
    struct State {
        last: Option<(u64, f64)>,
        changes: Vec<(Instant, u64)>,
        watched: Option<Watched>,
    }
    let ctx = ReadContext::default();
    let mut st: Vec<Option<State>> = domains
        .iter()
        .map(|(_, c)| {
            c.as_ref().map(|_| State {
                last: None,
                changes: Vec::new(),
                watched: None,
            })
        })
        .collect();
    let t0 = Instant::now();
    while t0.elapsed() < PROBE_LIMIT {
        let mut pending = false;
        for ((d, _), s) in domains.iter().zip(st.iter_mut()) {
            let Some(s) = s else { continue };
            if s.changes.len() >= 2 {
                continue;
            }
            pending = true;
            if let Ok(Reading::Counter {
                raw,
                joules_per_unit,
                ..
            }) = d.read(&ctx)
            {
                let now = Instant::now();
                match &mut s.watched {
                    Some(w) => w.see(raw, now),
                    None => s.watched = Some(Watched::new(raw, now)),
                }
                match s.last {
                    Some((prev, _)) if raw != prev => s.changes.push((Instant::now(), raw)),
                    None => {}
                    _ => {}
                }
                s.last = Some((raw, joules_per_unit));
            }
        }
        if !pending {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    st.into_iter()
        .map(|s| {
            let s = s?;
            let unit = s.last.map_or(0.0, |(_, u)| u);
            Some(match s.changes.as_slice() {
                [(t1, r1), (t2, r2), ..] => {
                    let dt = t2.duration_since(*t1);
                    Probe {
                        update: Some(dt),
                        power_w: (dt > Duration::ZERO && r2 > r1)
                            .then(|| (r2 - r1) as f64 * unit / dt.as_secs_f64()),
                        watched: s.watched,
                    }
                }
                _ => Probe {
                    update: None,
                    power_w: None,
                    watched: s.watched,
                },
            })
        })
        .collect()
}

/// One window of one counter, as [`assess`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct WindowFacts {
    /// Joules read.
    pub joules: f64,
    /// Window length, s.
    pub window_s: f64,
    /// Readings after the first.
    pub intervals: usize,
    /// The longest time between two readings, s (the sampler interval, or the window when
    /// nothing read in between).
    pub max_gap_s: f64,
    /// The gaps' summed excess over the sampling interval, s
    /// ([`Accumulator::gap_excess_s`]).
    pub gap_excess_s: f64,
    /// Σ |ΔP| dt / 2 over successive power readings, J ([`Accumulator::power_steps_j`]; 0 for
    /// counters).
    pub power_steps_j: f64,
}

impl WindowFacts {
    /// The facts of `acc`'s window, whose figure is `joules`.
    pub fn of(acc: &Accumulator, joules: f64) -> WindowFacts {
        WindowFacts {
            joules,
            window_s: acc.span_s(),
            intervals: acc.intervals(),
            max_gap_s: acc.max_gap_s(),
            gap_excess_s: acc.gap_excess_s(),
            power_steps_j: acc.power_steps_j(),
        }
    }
}

/// The update period to assume for a counter, and whether the probe saw it: the probe's,
/// else (a probe that saw no two changes within [`PROBE_LIMIT`]) at least that limit, else
/// the documented one.
pub fn assumed_update(spec: &CounterSpec, probe: Option<&Probe>) -> (Duration, bool) {
    match probe.and_then(|p| p.update) {
        Some(u) => (u, true),
        None if probe.is_some() => (PROBE_LIMIT.max(spec.nominal_update), false),
        None => (spec.nominal_update, false),
    }
}

/// How many (assumed) updates of 0 J, with a probe that saw the counter change less than
/// twice, make a counter "did not move" rather than a measured 0 J.
pub const FROZEN_UPDATES: u32 = 10;

/// How long a counter whose probe saw it change less than twice must be seen unchanged to be
/// taken for one that does not work: [`FROZEN_UPDATES`] of the updates assumed for it (3 s
/// for the probe's 300 ms).
pub fn frozen_after(spec: &CounterSpec, probe: &Probe) -> Duration {
    FROZEN_UPDATES * assumed_update(spec, Some(probe)).0
}

/// Whether a counter whose window read `joules` has stopped (or never worked): the probe saw
/// it change less than twice, the window read exactly 0 J, and it was seen unchanged (`still_s`:
/// across the probe, the idle baseline and the windows; at least the window) for longer than
/// [`frozen_after`]. A powered package, DRAM or GPU always draws some energy, so such a counter
/// has no reading, not a measured 0 J.
pub fn frozen(spec: &CounterSpec, probe: Option<&Probe>, joules: f64, still_s: f64) -> bool {
    let Some(p) = probe else { return false };
    p.update.is_none() && joules == 0.0 && still_s > frozen_after(spec, p).as_secs_f64()
}

/// The uncertainty (half-width, J) of a counter's window and the warnings that must go with
/// it:
/// - each edge can be off by one update of energy plus one unit of resolution; the power for
///   that update is the most seen (window mean, probe), or the plausible peak when nothing
///   was seen (a window that read 0 J may still have used energy); both edges together never
///   by more than the larger of the figure and the plausible peak over the window;
/// - the sensor's relative accuracy;
/// - a window shorter than two updates is mostly quantisation: flagged;
/// - a gap between readings longer than the wrap period at peak power may hide whole wraps:
///   each possible missed wrap widens the interval by the counter's range, and is flagged;
/// - an unknown wrap range is flagged (a wrap then loses the reading).
pub fn assess(spec: &CounterSpec, probe: Option<&Probe>, w: WindowFacts) -> (f64, Vec<String>) {
    let mut warnings = Vec::new();
    let (update, update_seen) = assumed_update(spec, probe);
    let update_s = update.as_secs_f64();
    let mean_w = if w.window_s > 0.0 {
        w.joules / w.window_s
    } else {
        0.0
    };
    let seen_w = mean_w.max(probe.and_then(|p| p.power_w).unwrap_or(0.0));
    let power = if seen_w > 0.0 { seen_w } else { spec.peak_w };
    // The figure is at least 0 and the energy the window used at most its plausible peak power
    // over its length, so the two differ by no more than the larger: a bound on what a short
    // window's edges can be off by (27 ms at 1000 W: 27 J, not two 300 ms updates' 600 J).
    let edges = (2.0 * (spec.resolution_j + power * update_s))
        .min(w.joules.max(spec.peak_w * w.window_s) + 2.0 * spec.resolution_j);
    let mut unc = edges + spec.relative_accuracy * w.joules;
    if w.window_s < 2.0 * update_s {
        warnings.push(format!(
            "the window ({:.1} ms) is shorter than two updates of the counter ({}{:.1} ms): \
             the figure is mostly quantisation; measure longer",
            w.window_s * 1e3,
            if update_seen { "" } else { "at least " },
            update_s * 1e3
        ));
    }
    if spec.wraps {
        match (spec.wrap_j, spec.wrap_period()) {
            (Some(range), Some(period)) => {
                let period_s = period.as_secs_f64();
                let missed_per_gap = (w.max_gap_s / period_s).floor();
                if missed_per_gap >= 1.0 {
                    let gaps = w.intervals.max(1) as f64;
                    unc += gaps * missed_per_gap * range;
                    warnings.push(format!(
                        "the counter wraps every {:.3} s at {:.0} W ({}) but was read only \
                         every {:.3} s: up to {} whole wraps of {range:.1} J may be missing; \
                         the interval includes them",
                        period_s,
                        spec.peak_w,
                        spec.peak_source,
                        w.max_gap_s,
                        (gaps * missed_per_gap) as u64
                    ));
                }
            }
            _ => warnings.push(
                "max_energy_range_uj is unreadable (or 0): a counter wrap cannot be \
                 corrected; the time between two readings across a wrap has no reading and is \
                 filled at the window's mean power, in the uncertainty (no figure when more \
                 was lost than read)"
                    .into(),
            ),
        }
    }
    (unc, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Did not move" is judged on all the time the counter was seen unchanged: a 0 J window
    /// of 27 ms after 4 s unchanged (the probe, an idle baseline) has no reading; the same
    /// window of a counter seen moving 1 s ago keeps its figure.
    #[test]
    fn frozen_is_judged_on_all_the_time_watched_unchanged() {
        let t0 = Instant::now();
        let mut w = Watched::new(1000, t0);
        w.see(1000, t0 + Duration::from_secs(2));
        assert!(!w.moved());
        let now = t0 + Duration::from_secs(4);
        assert_eq!(w.still_for(now), Duration::from_secs(4));
        let p = Probe {
            update: None,
            power_w: None,
            watched: Some(w),
        };
        assert_eq!(frozen_after(&rapl(), &p), Duration::from_secs(3));
        let still = w.still_for(now).as_secs_f64().max(0.027);
        assert!(frozen(&rapl(), Some(&p), 0.0, still));
        assert!(!frozen(&rapl(), Some(&p), 0.1, still));
        w.see(2000, t0 + Duration::from_secs(3));
        assert!(w.moved());
        let still = w.still_for(now).as_secs_f64().max(0.027);
        assert!(!frozen(&rapl(), Some(&p), 0.0, still));
    }

    fn rapl() -> CounterSpec {
        CounterSpec {
            resolution_j: 61e-6,
            nominal_update: Duration::from_millis(1),
            wraps: true,
            wrap_j: Some(80.0),
            peak_w: 1000.0,
            peak_source: "test".into(),
            relative_accuracy: 0.0,
        }
    }

    #[test]
    fn wraps_set_the_sampling_interval() {
        assert_eq!(rapl().wrap_period(), Some(Duration::from_millis(80)));
        assert_eq!(rapl().safe_interval(), Some(Duration::from_millis(40)));
        let unknown = CounterSpec {
            wrap_j: None,
            ..rapl()
        };
        assert_eq!(unknown.safe_interval(), None);
    }

    #[test]
    fn short_windows_and_missed_wraps_widen_and_warn() {
        let slow = Probe {
            update: Some(Duration::from_millis(100)),
            power_w: Some(333.0),
            watched: None,
        };
        // A 70 ms window that read nothing: ± two updates at the probe's power.
        let w = WindowFacts {
            joules: 0.0,
            window_s: 0.07,
            intervals: 1,
            max_gap_s: 0.07,
            gap_excess_s: 0.07,
            power_steps_j: 0.0,
        };
        let (u, warn) = assess(&rapl(), Some(&slow), w);
        assert!((u - 2.0 * (61e-6 + 33.3)).abs() < 1e-9, "{u}");
        assert!(warn[0].contains("shorter than two updates"), "{warn:?}");
        // 30 ms: no more than the plausible peak (1000 W) over the window, 30 J, can be
        // missing from a figure of 0 J.
        let w = WindowFacts {
            window_s: 0.03,
            max_gap_s: 0.03,
            gap_excess_s: 0.03,
            ..w
        };
        let (u, _) = assess(&rapl(), Some(&slow), w);
        assert!((u - (30.0 + 2.0 * 61e-6)).abs() < 1e-9, "{u}");
        // Nothing seen (probe with no update): two assumed 300 ms updates at the peak would be
        // ±600 J; the window's length bounds it.
        let idle = Probe {
            update: None,
            power_w: None,
            watched: None,
        };
        let w = WindowFacts {
            window_s: 0.027,
            ..w
        };
        let (u, _) = assess(&rapl(), Some(&idle), w);
        assert!((u - (27.0 + 2.0 * 61e-6)).abs() < 1e-6, "{u}");
        // Read every 100 ms with an 80 ms wrap period: one possible missed wrap per gap.
        let w = WindowFacts {
            joules: 50.0,
            window_s: 1.0,
            intervals: 10,
            max_gap_s: 0.1,
            gap_excess_s: 0.0,
            power_steps_j: 0.0,
        };
        let (u, warn) = assess(&rapl(), None, w);
        assert!(u >= 10.0 * 80.0, "{u}");
        assert!(warn.iter().any(|w| w.contains("whole wraps")), "{warn:?}");
        // Read every 40 ms: no warning, and the ± is the edges only.
        let w = WindowFacts {
            max_gap_s: 0.04,
            ..w
        };
        let (u, warn) = assess(&rapl(), None, w);
        assert!(warn.is_empty() && u < 1.0, "{u} {warn:?}");
        let unknown = CounterSpec {
            wrap_j: None,
            ..rapl()
        };
        assert!(assess(&unknown, None, w).1[0].contains("max_energy_range_uj"));
    }
}
