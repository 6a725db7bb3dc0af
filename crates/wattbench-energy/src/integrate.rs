//! Turning readings into joules: counter deltas across wraparound, trapezoid integration of
//! power samples, per-domain accumulation. (Idle subtraction and totals are core's
//! [`energy`](wattbench_core::energy).)

use crate::Reading;

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

/// The most power a wrapping counter's step may imply before it is taken for a reset, where
/// the domain states no peak power of its own ([`Accumulator::with_plausible_power`]): ten
/// times what any one GPU or CPU package draws today (B200: 1000 W).
pub const MAX_PLAUSIBLE_W: f64 = 10_000.0;

/// Time added to the interval between two readings when judging a wrap's power: a reading
/// can lag its timestamp by a scheduling stall, and a counter updates in steps. Generous, as
/// it costs only the detection of resets that happen within `power x slack` of the range's
/// end.
pub const RESET_SLACK_S: f64 = 1.0;

/// Why a counter reading that went backwards was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backwards {
    /// Its range is unknown: a wrap cannot be told from a reset, nor corrected.
    Unranged,
    /// As a wrap it would imply more than the plausible power: a reset (driver reload,
    /// firmware, a counter cleared).
    Reset,
}

/// Running energy of one domain, fed with successive readings. Counter domains add deltas
/// (wrap-safe), power domains integrate by trapezoid, CPU-time domains convert CPU seconds.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    last: Option<(f64, Reading)>,
    /// Spans shorter than this do not set the peak power (counter quantisation), s.
    min_peak_span_s: f64,
    /// The interval readings are meant to come at (the sampler's), s; `None` when they come
    /// only at a window's edges.
    expected_interval_s: Option<f64>,
    /// Above this a wrapping counter's step is a reset, W (`None`: [`MAX_PLAUSIBLE_W`]).
    plausible_w: Option<f64>,
    max_gap_s: f64,
    /// Summed excess of the gaps over the expected interval, s (see
    /// [`Accumulator::gap_excess_s`]).
    gap_excess_s: f64,
    /// Σ |ΔP| dt / 2 over successive power readings, J.
    power_steps_j: f64,
    first_t: Option<f64>,
    joules: f64,
    intervals: usize,
    peak_w: Option<f64>,
    wraps: u32,
    /// Backward steps discarded because the range is unknown.
    unranged_steps: u32,
    /// Backward steps discarded as resets.
    resets: u32,
    cpu_seconds: f64,
    /// Time between readings whose energy is unknown (a counter that went backwards with no
    /// known range, or was reset), s.
    discarded_s: f64,
    error: Option<String>,
    /// Recent (time, cumulative joules) points, for peaks over spans of at least the minimum.
    recent: std::collections::VecDeque<(f64, f64)>,
}

impl Accumulator {
    /// A fresh accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh accumulator whose peak power ignores spans shorter than `s` seconds (a
    /// counter's update period, or a short final interval, would otherwise inflate it).
    pub fn with_min_peak_span(s: f64) -> Self {
        Self {
            min_peak_span_s: s,
            ..Self::default()
        }
    }

    /// Readings are meant to come every `s` seconds (the sampler's interval): a time between
    /// two readings of more than twice that is a gap (see [`Accumulator::gap_excess_s`]).
    pub fn with_expected_interval(mut self, s: f64) -> Self {
        self.expected_interval_s = Some(s);
        self
    }

    /// A wrapping counter's step that implies more than `watts` (over the time between the
    /// readings plus [`RESET_SLACK_S`]) is a reset, not a wrap: its time has no reading.
    /// Without it, [`MAX_PLAUSIBLE_W`].
    pub fn with_plausible_power(mut self, watts: f64) -> Self {
        self.plausible_w = Some(watts);
        self
    }

    /// Seconds between readings whose energy is unknown (see [`Accumulator::push`]): they are
    /// in [`Accumulator::span_s`] but not in [`Accumulator::joules`].
    pub fn discarded_s(&self) -> f64 {
        self.discarded_s
    }

    /// The longest time between two readings so far, s.
    pub fn max_gap_s(&self) -> f64 {
        self.max_gap_s
    }

    /// The time by which the gaps between readings exceed the expected interval, summed, s: a
    /// gap is a time between two readings longer than twice the expected interval (failed
    /// readings, a stalled sampler), and its excess is its length less that interval. Without
    /// an expected interval (readings at a window's edges only) all the time between readings
    /// counts.
    pub fn gap_excess_s(&self) -> f64 {
        self.gap_excess_s
    }

    /// Σ |ΔP| dt / 2 over successive power readings, J: how far the trapezoid can be from the
    /// energy if the load changed at an unknown instant between two instantaneous readings.
    pub fn power_steps_j(&self) -> f64 {
        self.power_steps_j
    }

    /// Counter steps backwards that were discarded as resets (see [`Accumulator::push`]).
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// Counter steps backwards that were discarded because the counter's range is unknown.
    pub fn unranged_steps(&self) -> u32 {
        self.unranged_steps
    }

    /// The discarded steps in words, for a warning: `None` when none was discarded.
    pub fn discarded_why(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.unranged_steps > 0 {
            why.push(format!(
                "the counter went backwards {} time(s) and its range is unknown",
                self.unranged_steps
            ));
        }
        if self.resets > 0 {
            why.push(format!(
                "the counter was reset {} time(s): it went backwards, and read as a wrap the \
                 step would imply more than {:.0} W",
                self.resets,
                self.plausible_w.unwrap_or(MAX_PLAUSIBLE_W)
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// Discards the time since the previous reading (its energy is unknown), keeping `r` as
    /// the next one to difference from.
    fn discard(&mut self, dt: f64, t: f64, r: Reading, why: Backwards, a: u64, b: u64) {
        let what = match why {
            Backwards::Unranged => {
                self.unranged_steps += 1;
                "its range is unknown"
            }
            Backwards::Reset => {
                self.resets += 1;
                "read as a wrap it would imply an implausible power: a reset"
            }
        };
        self.error = Some(format!(
            "counter went backwards ({a} -> {b}) and {what}; reading discarded"
        ));
        self.discarded_s += dt.max(0.0);
        self.last = Some((t, r));
    }

    /// Adds a reading taken at `t` seconds; returns the mean power since the previous reading.
    ///
    /// A counter that went backwards is a wrap where its range is known and the wrap implies
    /// a plausible power ([`Accumulator::with_plausible_power`]); otherwise (no range, or a
    /// reset) the time since the previous reading has no reading: it is counted in
    /// [`Accumulator::discarded_s`], and the window fills it.
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
                let (a, b) = (*a, *b);
                let Some(d) = counter_delta(a, b, *wrap_at) else {
                    self.discard(dt, t, r, Backwards::Unranged, a, b);
                    return None;
                };
                let j = d as f64 * joules_per_unit;
                if b < a {
                    let limit = self.plausible_w.unwrap_or(MAX_PLAUSIBLE_W);
                    if j > limit * (dt.max(0.0) + RESET_SLACK_S) {
                        self.discard(dt, t, r, Backwards::Reset, a, b);
                        return None;
                    }
                    self.wraps += 1;
                }
                j
            }
            (Reading::Power { watts: a }, Reading::Power { watts: b }) => {
                self.power_steps_j += 0.5 * (b - a).abs() * dt.max(0.0);
                0.5 * (a + b) * dt
            }
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
        self.max_gap_s = self.max_gap_s.max(dt);
        match self.expected_interval_s {
            Some(e) if dt > 2.0 * e => self.gap_excess_s += dt - e,
            Some(_) => {}
            None => self.gap_excess_s += dt.max(0.0),
        }
        self.last = Some((t, keep));
        // CPU time is counted in 10 ms ticks, counters in their update period: over shorter
        // spans the rate is mostly quantisation. The peak is the highest mean power over any
        // span of at least the minimum ending at a reading, so a short last interval (or a
        // burst of close readings) cannot inflate it.
        let min_span = if is_cpu {
            MIN_CPU_PEAK_SPAN_S
        } else {
            self.min_peak_span_s
        };
        if self.recent.is_empty() {
            self.recent.push_back((t0, self.joules - step_j));
        }
        self.recent.push_back((t, self.joules));
        // Drop points older than the newest one that is already far enough back.
        while self.recent.len() > 2 && t - self.recent[1].0 >= min_span {
            self.recent.pop_front();
        }
        if let Some(&(ta, ja)) = self.recent.front() {
            let span = t - ta;
            if span > 0.0 && span >= min_span {
                let p = (self.joules - ja) / span;
                self.peak_w = Some(self.peak_w.map_or(p, |q: f64| q.max(p)));
            }
        }
        (dt > 0.0).then(|| step_j / dt)
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

    /// Highest mean power over any span of at least the minimum peak span (see
    /// [`Accumulator::with_min_peak_span`]).
    pub fn peak_watts(&self) -> Option<f64> {
        self.peak_w
    }

    /// Counter wraps seen and corrected (steps backwards that were discarded are not wraps:
    /// see [`Accumulator::resets`] and [`Accumulator::unranged_steps`]).
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
