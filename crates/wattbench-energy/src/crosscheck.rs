//! The energy counter of a device beside the integral of the power its driver reports, over
//! the same span (ENERGY.md 6): the two have disagreed badly (zeus#181: 187 J vs 327 J over
//! 5 s at idle), so a report that sets them side by side, and says when they disagree by more
//! than their known limits explain, is more trustworthy than one that shows either alone.
//!
//! The sampler reads both at every tick for the domains that offer a power reading beside
//! their counter ([`Domain::power_reading`](crate::meters::Domain::power_reading): NVML GPUs
//! with the total-energy counter), in `measure` and in every energy window of a GPU machine;
//! [`assess`] compares them over the ticks where both were read, and the domain's figure
//! carries the result ([`DomainEnergy::power_check`](wattbench_core::energy::DomainEnergy)).
//! The counter stays the figure reported as the domain's energy.
use crate::integrate::{counter_delta, trapezoid};
use crate::meters::Reading;
pub use wattbench_core::energy::{PowerCheck, Verdict};

/// Relative accuracy of each of the two figures: NVIDIA documents ±5 % for the power readings
/// of recent data-centre GPUs, and the counter is built from the same sensor.
const SENSOR_ACCURACY: f64 = 0.05;

/// How far the counter can lag at each edge of the span (its ~10-100 ms update period), s.
const COUNTER_EDGE_S: f64 = 0.1;

/// Spans shorter than this many averaging windows (and 2 s) are reported but not judged: an
/// averaged reading lags the load by its window, which dominates a short span.
const MIN_WINDOWS: f64 = 5.0;

/// What was sampled of one domain: time, the counter's energy since the first sample, and the
/// driver's power reading, at each tick where both were read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckSamples {
    t_s: Vec<f64>,
    counter_j: Vec<f64>,
    watts: Vec<f64>,
    /// The previous raw counter value, to accumulate across wraps.
    last_raw: Option<u64>,
    /// The counter's energy since the span began, J (counted at every reading, kept or not).
    total_j: f64,
    /// Readings where the counter went backwards with no known wrap (the span restarts).
    gaps: usize,
}

impl CheckSamples {
    /// Adds the tick at `t_s`: the domain's counter `reading` and the driver's power `watts`
    /// (a tick whose power is not a number still counts its energy, but is not kept).
    /// Non-counter readings are ignored.
    pub fn push(&mut self, t_s: f64, reading: &Reading, watts: f64) {
        let Reading::Counter {
            raw,
            joules_per_unit,
            wrap_at,
        } = *reading
        else {
            return;
        };
        if let Some(prev) = self.last_raw {
            match counter_delta(prev, raw, wrap_at) {
                Some(d) => self.total_j += d as f64 * joules_per_unit,
                None => {
                    // A counter that went backwards: the span starts over here.
                    self.gaps += 1;
                    self.total_j = 0.0;
                    self.t_s.clear();
                    self.counter_j.clear();
                    self.watts.clear();
                }
            }
        }
        self.last_raw = Some(raw);
        if watts.is_finite() && watts >= 0.0 {
            self.t_s.push(t_s);
            self.counter_j.push(self.total_j);
            self.watts.push(watts);
        }
    }

    /// Ticks kept.
    pub fn len(&self) -> usize {
        self.t_s.len()
    }

    /// Whether no tick was kept.
    pub fn is_empty(&self) -> bool {
        self.t_s.is_empty()
    }
}

/// The check of `domain` from its samples, with the power reading averaged over
/// `averaging_s` and described by `reading`; `None` with fewer than two ticks.
pub fn assess(
    domain: &str,
    s: &CheckSamples,
    averaging_s: f64,
    reading: &str,
) -> Option<PowerCheck> {
    if s.len() < 2 {
        return None;
    }
    let span_s = s.t_s[s.len() - 1] - s.t_s[0];
    let pairs: Vec<(f64, f64)> = s.t_s.iter().copied().zip(s.watts.iter().copied()).collect();
    let integrated_j = trapezoid(&pairs)?;
    let counter_j = s.counter_j[s.len() - 1] - s.counter_j[0];
    let ratio = (counter_j > 0.0).then(|| integrated_j / counter_j);
    let edges_s = 2.0 * (averaging_s + COUNTER_EDGE_S);
    let tolerance = 2.0 * SENSOR_ACCURACY + if span_s > 0.0 { edges_s / span_s } else { 1.0 };
    let verdict = if span_s < (MIN_WINDOWS * averaging_s).max(2.0) {
        Verdict::TooShort
    } else {
        match ratio {
            Some(r) if (r - 1.0).abs() <= tolerance => Verdict::Agree,
            // Neither moved: they agree. A counter that did not move while power was reported
            // falls to the last arm: a disagreement.
            None if integrated_j <= 0.0 => Verdict::Agree,
            _ => Verdict::Disagree,
        }
    };
    Some(PowerCheck {
        domain: domain.to_string(),
        span_s,
        samples: s.len(),
        counter_j,
        integrated_j,
        ratio,
        tolerance,
        verdict,
        reading: reading.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(raw: u64) -> Reading {
        Reading::Counter {
            raw,
            joules_per_unit: 1e-3,
            wrap_at: None,
        }
    }

    /// `watts` reported every 100 ms over `secs`, with a counter gaining `counter_w`.
    fn steady(counter_w: f64, watts: f64, secs: f64) -> CheckSamples {
        let mut s = CheckSamples::default();
        let n = (secs * 10.0).round() as u64;
        for i in 0..=n {
            let t = i as f64 * 0.1;
            s.push(
                t,
                &counter(1_000_000 + (t * counter_w * 1000.0) as u64),
                watts,
            );
        }
        s
    }

    #[test]
    fn a_steady_load_agrees_and_a_disagreement_is_flagged() {
        let c = assess(
            "gpu0",
            &steady(300.0, 300.0, 12.0),
            1.0,
            "averaged over 1 s",
        )
        .unwrap();
        assert_eq!(c.verdict, Verdict::Agree, "{c:?}");
        assert!((c.counter_j - 3600.0).abs() < 1.0 && (c.integrated_j - 3600.0).abs() < 1e-6);
        assert!((c.ratio.unwrap() - 1.0).abs() < 1e-3);
        // 0.10 for the two sensors, (2 x 1 s + 2 x 0.1 s) / 12 s for the edges.
        assert!((c.tolerance - (0.10 + 2.2 / 12.0)).abs() < 1e-9);
        assert!(c.warning().is_none());
        assert!(c.line().contains("agree within ±28 %"), "{}", c.line());
        // zeus#181's idle figures: 327 J of power readings against 187 J of counter.
        let d = assess("gpu0", &steady(37.4, 65.4, 5.0), 0.0, "instantaneous").unwrap();
        assert_eq!(d.verdict, Verdict::Disagree, "{d:?}");
        assert!((d.ratio.unwrap() - 65.4 / 37.4).abs() < 0.01);
        let w = d.warning().unwrap();
        assert!(w.contains("gpu0") && w.contains("instantaneous"), "{w}");
        assert!(d.line().contains("DISAGREE"));
    }

    #[test]
    fn a_span_shorter_than_the_averaging_is_not_judged() {
        let c = assess("gpu0", &steady(300.0, 100.0, 3.0), 1.0, "averaged over 1 s").unwrap();
        assert_eq!(c.verdict, Verdict::TooShort);
        // A counter that did not move beside 50 W of readings disagrees; both still agree.
        let stuck = assess("gpu0", &steady(0.0, 50.0, 5.0), 0.0, "x").unwrap();
        assert_eq!((stuck.ratio, stuck.verdict), (None, Verdict::Disagree));
        let idle = assess("gpu0", &steady(0.0, 0.0, 5.0), 0.0, "x").unwrap();
        assert_eq!(idle.verdict, Verdict::Agree);
        assert!(c.warning().is_none());
        assert!(assess("gpu0", &steady(300.0, 300.0, 0.0), 1.0, "x").is_none());
    }

    #[test]
    fn the_counter_is_followed_across_a_wrap_and_restarted_after_a_reset() {
        let mut s = CheckSamples::default();
        let wrapping = |raw| Reading::Counter {
            raw,
            joules_per_unit: 1e-3,
            wrap_at: Some(9_999),
        };
        s.push(0.0, &wrapping(9_000), 100.0);
        s.push(1.0, &wrapping(999), 100.0); // 999 + 999 mJ across the wrap
        assert_eq!(s.counter_j, [0.0, 1.998]);
        // A counter without a known wrap that goes backwards: the span restarts there.
        s.push(2.0, &counter(1_500), 100.0);
        s.push(3.0, &counter(2), 100.0);
        assert_eq!((s.len(), s.gaps), (1, 1));
        s.push(4.0, &counter(1002), 100.0);
        assert_eq!(s.counter_j, [0.0, 1.0]);
        // A power reading that is not a number leaves its tick out, not its energy; other
        // readings are ignored.
        s.push(5.0, &counter(2002), f64::NAN);
        s.push(5.0, &Reading::Power { watts: 1.0 }, 1.0);
        assert_eq!(s.len(), 2);
        s.push(6.0, &counter(3002), 100.0);
        assert_eq!(s.counter_j, [0.0, 1.0, 3.0]);
    }
}
