//! Robust summary statistics of timing samples.
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Summary of per-call times in seconds (each sample is one timed batch divided by its calls).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeStats {
    /// Raw samples, seconds per call, in collection order.
    pub samples_s: Vec<f64>,
    /// Calls per sample.
    pub iters_per_sample: u64,
    /// Median.
    pub median_s: f64,
    /// Arithmetic mean.
    pub mean_s: f64,
    /// Minimum.
    pub min_s: f64,
    /// Maximum.
    pub max_s: f64,
    /// 95th percentile (linear interpolation).
    pub p95_s: f64,
    /// Median absolute deviation, scaled by 1.4826 to estimate σ under normality.
    pub mad_s: f64,
    /// Confidence interval of the median, `[low, high]`: from 6 samples
    /// ([`BOOTSTRAP_MIN_SAMPLES`]) a 95% percentile bootstrap; from 2 to 5 samples their
    /// range `[min, max]`, which holds the median with probability 1 − 2¹⁻ⁿ only (75% at
    /// n = 3; [`TimeStats::interval_note`] says so); with one sample none: `[−∞, +∞]`,
    /// written `[null, null]` (JSON has no infinity) and read back as such.
    #[serde(
        serialize_with = "crate::result::unbounded::write_pair",
        deserialize_with = "crate::result::unbounded::read_pair"
    )]
    pub ci95_median_s: [f64; 2],
}

/// Fewest samples whose median gets a bootstrap interval. Below it the percentile bootstrap
/// covers far less than it claims (about 76% at n = 3 for a nominal 95%), so the interval is
/// the samples' range, which is honest about its lower coverage, or none for one sample.
pub const BOOTSTRAP_MIN_SAMPLES: usize = 6;

/// Quantile `q` in [0, 1] of sorted data, linear interpolation between order statistics.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of no samples");
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom (fractional,
/// as Welch's are): infinite when `df` is not positive or `p` is 0 or 1, NaN for a `p`
/// outside [0, 1]. The one place t-intervals get their critical values.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if df.is_nan() || df <= 0.0 || p == 0.0 || p == 1.0 {
        return if p < 0.5 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if df > 1e5 {
        // statrs' inverse loses digits there (6e-5 at 1e6); the first Cornish–Fisher term
        // of the expansion around the normal is exact to far better than that.
        let z = statrs::distribution::Normal::standard().inverse_cdf(p);
        return z + (z * z * z + z) / (4.0 * df);
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// Two-sided p-value of the statistic `t` under Student's t with `df` degrees of freedom:
/// `P(|T| >= |t|)`; NaN when either is not a number or `df` is not positive.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => (2.0 * d.sf(t.abs())).min(1.0),
        Err(_) => f64::NAN,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile_sorted(v, 0.5)
}

/// The median of a bootstrap resample (n draws with replacement) of `n` sorted values, drawn
/// in constant time instead of resampling and selecting: index `floor(n·U)` of a uniform `U`
/// is a uniform draw of an index, and the mapping keeps order, so the resample's `k`-th
/// smallest value is `sorted[floor(n·U₍ₖ₎)]` with `U₍ₖ₎ ~ Beta(k, n − k + 1)`, the `k`-th order
/// statistic of `n` uniforms; for an even `n` the next one is `U₍ₖ₊₁₎ = U₍ₖ₎ + (1 − U₍ₖ₎)·V`,
/// `V ~ Beta(1, n − k)` (the smallest of the `n − k` uniforms above `U₍ₖ₎`). The same
/// distribution as resampling, so a run of 100 000 training steps summarises in
/// milliseconds, not seconds (which a scheduler's grace period after SIGTERM may not allow).
struct ResampledMedian {
    n: usize,
    lower: rand_distr::Beta<f64>,
    gap: Option<rand_distr::Beta<f64>>,
}

impl ResampledMedian {
    fn new(n: usize) -> ResampledMedian {
        let n = n.max(1);
        // 1-based rank of the (lower) middle value.
        let k = n.div_ceil(2);
        let beta = |a: usize, b: usize| {
            rand_distr::Beta::new(a as f64, b as f64).expect("positive shape parameters")
        };
        ResampledMedian {
            n,
            lower: beta(k, n - k + 1),
            gap: n.is_multiple_of(2).then(|| beta(1, n - k)),
        }
    }

    fn sample(&self, sorted: &[f64], rng: &mut impl Rng) -> f64 {
        use rand_distr::Distribution;
        let at = |u: f64| sorted[((self.n as f64 * u) as usize).min(self.n - 1)];
        let u = self.lower.sample(rng);
        match &self.gap {
            None => at(u),
            Some(gap) => 0.5 * (at(u) + at(u + (1.0 - u) * gap.sample(rng))),
        }
    }
}

/// Smallest relative change between the first and last quarter of the samples that
/// [`drift`] reports.
pub const DRIFT: f64 = 0.10;

/// Whether the per-call times drifted while they were sampled (clocks ramping up or
/// throttling, caches warming, load arriving): the medians of the first and of the last
/// quarter of `samples`, in sampling order, when they differ by more than [`DRIFT`] and by
/// more than three robust standard deviations (1.4826 MAD) of either quarter, so that noise
/// alone does not count. `None` with fewer than 8 samples.
pub fn drift(samples: &[f64]) -> Option<(f64, f64)> {
    if samples.len() < 8 {
        return None;
    }
    let q = samples.len() / 4;
    let spread = |part: &[f64]| {
        let mut v = part.to_vec();
        let m = median(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
        (m, 1.4826 * median(&mut dev))
    };
    let (first, s1) = spread(&samples[..q]);
    let (last, s2) = spread(&samples[samples.len() - q..]);
    let diff = (last - first).abs();
    (diff > DRIFT * first.min(last) && diff > 3.0 * s1.max(s2)).then_some((first, last))
}

impl TimeStats {
    /// Summarise `samples` (must be non-empty). The bootstrap uses `resamples` draws from a
    /// seeded generator, so the interval is reproducible.
    pub fn from_samples(
        samples: Vec<f64>,
        iters_per_sample: u64,
        resamples: usize,
        seed: u64,
    ) -> Self {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let med = quantile_sorted(&sorted, 0.5);
        let mut dev: Vec<f64> = sorted.iter().map(|v| (v - med).abs()).collect();
        let mad = 1.4826 * median(&mut dev);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let draw = ResampledMedian::new(n);
        let mut meds: Vec<f64> = (0..resamples)
            .map(|_| draw.sample(&sorted, &mut rng))
            .collect();
        meds.sort_by(f64::total_cmp);
        let ci = if n == 1 || meds.is_empty() {
            // Nothing tells how far the median may be: no interval, never a zero-width one.
            [f64::NEG_INFINITY, f64::INFINITY]
        } else if n < BOOTSTRAP_MIN_SAMPLES {
            [sorted[0], sorted[n - 1]]
        } else {
            [quantile_sorted(&meds, 0.025), quantile_sorted(&meds, 0.975)]
        };
        TimeStats {
            iters_per_sample,
            median_s: med,
            mean_s: sorted.iter().sum::<f64>() / n as f64,
            min_s: sorted[0],
            max_s: sorted[n - 1],
            p95_s: quantile_sorted(&sorted, 0.95),
            mad_s: mad,
            ci95_median_s: ci,
            samples_s: samples,
        }
    }
}

impl TimeStats {
    /// The interval of the median when it has one (both bounds finite): `None` for one
    /// sample.
    pub fn ci95_known(&self) -> Option<[f64; 2]> {
        let [low, high] = self.ci95_median_s;
        (low.is_finite() && high.is_finite()).then_some(self.ci95_median_s)
    }

    /// What a reader of the median's interval needs to know when it is not a 95% bootstrap:
    /// with one sample there is none, with 2 to 5 it is the samples' range, of lower
    /// coverage. `None` from [`BOOTSTRAP_MIN_SAMPLES`] samples on.
    pub fn interval_note(&self) -> Option<String> {
        let n = self.samples_s.len();
        let more = "more samples (--min-samples, and a --max-time that allows them) give a 95% \
                    bootstrap interval";
        match n {
            0 => None,
            1 => Some(format!(
                "1 sample: the median has no confidence interval (one batch says nothing of \
                 the spread); {more}"
            )),
            n if n < BOOTSTRAP_MIN_SAMPLES => Some(format!(
                "{n} samples: the interval of the median is their range [min, max], which \
                 holds the median with probability {:.1}%, less than 95% (below \
                 {BOOTSTRAP_MIN_SAMPLES} samples a bootstrap interval claims more than it \
                 covers); {more}",
                100.0 * (1.0 - 0.5f64.powi(n as i32 - 1))
            )),
            _ if self.ci95_known().is_none() => Some(
                "no bootstrap resample was drawn: the median has no confidence interval".into(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_a_change_beyond_noise_between_the_first_and_last_quarter() {
        // A clock ramp: the first quarter 20 % slower than the rest, with 1 % noise.
        let noise = |i: usize| 1.0 + 0.01 * (((i * 7919) % 13) as f64 / 6.0 - 1.0);
        let ramp: Vec<f64> = (0..40)
            .map(|i| if i < 10 { 1.2 } else { 1.0 } * noise(i))
            .collect();
        let (a, b) = drift(&ramp).expect("a 20 % ramp is drift");
        assert!((a / b - 1.2).abs() < 0.03, "{a} {b}");
        // Steady samples with the same noise, and a 5 % step (under DRIFT): none.
        let steady: Vec<f64> = (0..40).map(noise).collect();
        assert_eq!(drift(&steady), None);
        let small: Vec<f64> = (0..40)
            .map(|i| if i < 10 { 1.05 } else { 1.0 } * noise(i))
            .collect();
        assert_eq!(drift(&small), None);
        // A 20 % change inside noise of +-40 % is not told from noise.
        let wild: Vec<f64> = (0..40)
            .map(|i| if i < 10 { 1.2 } else { 1.0 } * (1.0 + 0.4 * (((i * 31) % 7) as f64 / 3.0 - 1.0)))
            .collect();
        assert_eq!(drift(&wild), None);
        assert_eq!(drift(&ramp[..7]), None, "too few samples");
    }

    #[test]
    fn the_order_statistic_draw_is_the_resampled_median() {
        // The drawn medians and those of plain resampling (n draws, then the median) have the
        // same distribution: compare their quantiles over many draws, odd and even n.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in [1usize, 2, 5, 8, 41] {
            let sorted: Vec<f64> = (0..n).map(|i| (i * i) as f64).collect();
            let draw = ResampledMedian::new(n);
            let mut fast: Vec<f64> = (0..20_000)
                .map(|_| draw.sample(&sorted, &mut rng))
                .collect();
            let mut slow: Vec<f64> = (0..20_000)
                .map(|_| {
                    let mut b: Vec<f64> = (0..n).map(|_| sorted[rng.random_range(0..n)]).collect();
                    median(&mut b)
                })
                .collect();
            // The same distribution function at every value either can take (both discrete).
            let cdf = |v: &[f64], t: f64| v.iter().filter(|&&x| x <= t).count() as f64 / 20_000.0;
            let mut at: Vec<f64> = fast.iter().chain(&slow).copied().collect();
            at.sort_by(f64::total_cmp);
            at.dedup();
            for t in at {
                let (a, b) = (cdf(&fast, t), cdf(&slow, t));
                assert!(
                    (a - b).abs() < 0.02,
                    "n {n}, P(median <= {t}): {a} against {b}"
                );
            }
            fast.clear();
            slow.clear();
        }
    }

    #[test]
    fn t_distribution_matches_published_tables() {
        // Critical values of two-sided 95 % intervals (any statistics table; R's qt).
        for (df, t) in [(1.0, 12.7062), (2.0, 4.3027), (4.0, 2.7764), (30.0, 2.0423)] {
            assert!((t_quantile(0.975, df) - t).abs() < 1e-4, "df {df}");
        }
        // Fractional df (Welch): between its integer neighbours; the normal as df grows.
        let (a, b, c) = (
            t_quantile(0.975, 5.0),
            t_quantile(0.975, 5.5),
            t_quantile(0.975, 6.0),
        );
        assert!(a > b && b > c, "{a} {b} {c}");
        assert!((t_quantile(0.975, 1e6) - 1.959966).abs() < 1e-6);
        assert!(
            (t_quantile(0.975, 2e5) - t_quantile(0.975, 9e4)).abs() < 1e-4,
            "continuous"
        );
        assert!((t_quantile(0.025, 4.0) + 2.7764).abs() < 1e-4, "symmetric");
        // p-values: R's 2 * pt(-2.7764, 4) = 0.05, 2 * pt(-1, 10) = 0.3409.
        assert!((t_two_sided_p(2.7764, 4.0) - 0.05).abs() < 1e-4);
        assert!((t_two_sided_p(-1.0, 10.0) - 0.34089).abs() < 1e-4);
        assert_eq!(t_two_sided_p(0.0, 3.0), 1.0);
        // Nonsense in, no panic out.
        assert!(t_quantile(1.5, 3.0).is_nan() && t_two_sided_p(1.0, 0.0).is_nan());
        assert_eq!(t_quantile(0.975, 0.0), f64::INFINITY);
    }

    #[test]
    fn summary_of_known_samples() {
        let s = TimeStats::from_samples(vec![5.0, 1.0, 3.0, 2.0, 4.0], 1, 200, 1);
        assert_eq!(
            (s.median_s, s.mean_s, s.min_s, s.max_s),
            (3.0, 3.0, 1.0, 5.0)
        );
        assert!((s.p95_s - 4.8).abs() < 1e-12);
        assert!((s.mad_s - 1.4826).abs() < 1e-12);
        assert!(s.ci95_median_s[0] <= 3.0 && s.ci95_median_s[1] >= 3.0);
        assert!(s.ci95_median_s[0] >= 1.0 && s.ci95_median_s[1] <= 5.0);
        assert_eq!(s.samples_s, vec![5.0, 1.0, 3.0, 2.0, 4.0]);
    }

    /// One sample has no interval (never a zero-width one: certainty); two to five have
    /// their range, noted with its coverage; from six on, the bootstrap. Files hold the
    /// missing interval as `[null, null]` and read it back.
    #[test]
    fn few_samples_get_an_honest_interval() {
        let one = TimeStats::from_samples(vec![2.0], 1, 200, 1);
        assert_eq!(one.ci95_median_s, [f64::NEG_INFINITY, f64::INFINITY]);
        assert_eq!(one.ci95_known(), None);
        assert!(
            one.interval_note()
                .unwrap()
                .contains("no confidence interval"),
            "{:?}",
            one.interval_note()
        );
        let json = serde_json::to_string(&one).unwrap();
        assert!(json.contains(r#""ci95_median_s":[null,null]"#), "{json}");
        assert_eq!(serde_json::from_str::<TimeStats>(&json).unwrap(), one);

        let three = TimeStats::from_samples(vec![3.0, 1.0, 2.0], 1, 200, 1);
        assert_eq!(three.ci95_known(), Some([1.0, 3.0]));
        let note = three.interval_note().unwrap();
        assert!(
            note.contains("[min, max]") && note.contains("75.0%"),
            "{note}"
        );
        let five = TimeStats::from_samples(vec![1.0, 2.0, 3.0, 4.0, 5.0], 1, 200, 1);
        assert!(five.interval_note().unwrap().contains("93.8%"));
        assert_eq!(five.ci95_median_s, [1.0, 5.0]);

        // Six: a bootstrap interval, inside the range, with no note.
        let six = TimeStats::from_samples(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1, 500, 1);
        assert_eq!(six.interval_note(), None);
        let [low, high] = six.ci95_known().unwrap();
        assert!(
            (1.0..=3.5).contains(&low) && (3.5..=6.0).contains(&high),
            "{low} {high}"
        );
        // No resample drawn: no interval either.
        let none = TimeStats::from_samples(vec![1.0; 8], 1, 0, 1);
        assert_eq!(none.ci95_known(), None);
        assert!(none
            .interval_note()
            .unwrap()
            .contains("no confidence interval"));
    }

    #[test]
    fn bootstrap_interval_narrows_with_more_samples() {
        // Spread evenly over [1, 2): the median's 95 % interval is about ±1.96 / (2 √n), 0.07
        // wide at n = 800, several times that at n = 8; an interval that did not narrow (the
        // sample range, say) would be about 1 wide at both.
        let spread = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| 1.0 + ((i * 37) % 101) as f64 / 101.0)
                .collect()
        };
        let w = |s: &TimeStats| s.ci95_median_s[1] - s.ci95_median_s[0];
        let (a, b) = (
            TimeStats::from_samples(spread(8), 1, 500, 3),
            TimeStats::from_samples(spread(800), 1, 500, 3),
        );
        assert!(w(&b) < 0.1, "{:?}", b.ci95_median_s);
        assert!(
            w(&a) > 3.0 * w(&b),
            "{:?} vs {:?}",
            a.ci95_median_s,
            b.ci95_median_s
        );
        assert!(b.ci95_median_s[0] <= b.median_s && b.median_s <= b.ci95_median_s[1]);
    }
}
