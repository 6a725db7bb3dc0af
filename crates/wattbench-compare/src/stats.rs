//! The statistics a comparison rests on, each small enough to check by hand: the median, a
//! seeded percentile-bootstrap interval of the ratio of two medians, the Mann–Whitney rank test
//! (exact for small samples, normal approximation with tie correction otherwise), Welch's
//! t-test and interval on logarithms, and the Benjamini–Hochberg adjustment for testing many
//! cases at once.
//!
//! Why these: benchmark times are skewed and heavy-tailed (preemption, frequency changes), so
//! means and t-tests mislead; medians and ranks do not care about a few wild samples. asv
//! compares with Mann–Whitney; criterion bootstraps; neither corrects for the hundreds of
//! cases a suite tests at once, which is what makes a large suite cry wolf. Energy is the
//! exception: a side has one value per run (each a mean over a whole window, not a single
//! wild sample), and few runs, where a rank test cannot reach significance at all (its
//! smallest two-sided p-value is 0.1 with 3 runs a side and 0.029 with 4, before any
//! adjustment), so energy uses Welch's test on the logarithms ([`welch_log`]).
use rand::{Rng, SeedableRng};
use wattbench_core::stats::quantile_sorted;

/// Median of `xs` (linear interpolation between the middle two for even counts), or NaN for
/// no values.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    median_in_place(&mut v)
}

/// Median that reorders `v` (selection, not a full sort); NaN when empty.
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let k = n / 2;
    let (left, hi, _) = v.select_nth_unstable_by(k, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        hi
    } else {
        let lo = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lo + hi)
    }
}

/// Percentile-bootstrap interval, at `confidence` (e.g. 0.95), of `median(new) /
/// median(base)`: each side is resampled with replacement on its own (the two runs are
/// independent), `resamples` times, from a ChaCha generator seeded with `seed`, so the same
/// inputs always give the same interval. Draws whose base median is not positive are left
/// out. `None` when either side is empty or no draw was usable.
///
/// The percentile interval is slightly too narrow for very small samples (fewer than about
/// ten per side); the rank test that a verdict also requires guards against that.
pub fn ratio_of_medians_ci(
    base: &[f64],
    new: &[f64],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<[f64; 2]> {
    ratio_of_medians_ci_clustered(&[base], &[new], resamples, confidence, seed)
}

/// [`ratio_of_medians_ci`] for sides made of several runs (clusters of samples): a two-stage
/// bootstrap (Davison & Hinkley, *Bootstrap Methods and their Application*, 1997, §3.8) that
/// first draws as many runs as the side has, with replacement, then resamples within each
/// drawn run. The interval then carries the variation between runs (another load, clocks,
/// temperature), which samples from within one run cannot show; with one run per side it is
/// exactly [`ratio_of_medians_ci`]. With many runs, resampling both stages is slightly
/// conservative (wider); with few, the percentile interval is too narrow: drawing a few runs
/// with replacement understates their spread. A 95 % interval covered the true ratio about
/// 70 % of the time with 2 runs a side, 85 % with 3, 88–90 % with 4 and 93–94 % with 6 or 8,
/// in a simulation of runs whose levels differ by 3–5 % (log-normal, 30 samples a run, 600
/// A/A experiments each), which `compare` says in its notes. Empty runs are ignored.
pub fn ratio_of_medians_ci_clustered(
    base: &[&[f64]],
    new: &[&[f64]],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Option<[f64; 2]> {
    let keep = |side: &[&[f64]]| -> Vec<Vec<f64>> {
        side.iter()
            .filter(|r| !r.is_empty())
            .map(|r| r.to_vec())
            .collect()
    };
    let (base, new) = (keep(base), keep(new));
    if base.is_empty() || new.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |side: &[Vec<f64>], buf: &mut Vec<f64>| -> f64 {
        buf.clear();
        for _ in 0..side.len() {
            // One run: no first stage (and no draw spent on it).
            let run = if side.len() == 1 {
                &side[0]
            } else {
                &side[rng.random_range(0..side.len())]
            };
            for _ in 0..run.len() {
                buf.push(run[rng.random_range(0..run.len())]);
            }
        }
        median_in_place(buf)
    };
    let (mut b, mut n) = (Vec::new(), Vec::new());
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mb = draw(&base, &mut b);
        let mn = draw(&new, &mut n);
        let r = mn / mb;
        if mb > 0.0 && r.is_finite() {
            ratios.push(r);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence.clamp(0.0, 1.0)) / 2.0;
    Some([
        quantile_sorted(&ratios, tail),
        quantile_sorted(&ratios, 1.0 - tail),
    ])
}

/// Result of a two-sided Mann–Whitney U test (Wilcoxon rank-sum test).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankTest {
    /// U of the first sample: pairs `(a, b)` with `a > b`, ties counting one half.
    pub u: f64,
    /// Two-sided p-value: the probability, if both samples came from one distribution, of a
    /// rank sum at least as far from its mean as the one observed.
    pub p_value: f64,
    /// Whether `p_value` is exact (the permutation distribution of the rank sum, ties
    /// included) rather than the normal approximation.
    pub exact: bool,
}

/// Largest pooled sample size for which [`mann_whitney`] computes the exact permutation
/// distribution (beyond it, the normal approximation is accurate and the exact count costly).
pub const EXACT_MAX_N: usize = 40;

/// Two-sided Mann–Whitney U test of `a` against `b` (both non-empty).
///
/// Ranks are mid-ranks (tied values share the mean of their ranks). For at most
/// [`EXACT_MAX_N`] values in all, the p-value is exact: the rank sum of `a` is compared with
/// its distribution over every way of choosing `a.len()` of the pooled values, counted by
/// dynamic programming over doubled mid-ranks, so ties are exact too. Beyond that, the normal
/// approximation with the tie-corrected variance
/// `n₁n₂/12 · ((N+1) − Σ(t³−t)/(N(N−1)))` and a continuity correction of ½.
/// When every value is tied the samples cannot be told apart: p = 1.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> RankTest {
    let (n1, n2) = (a.len(), b.len());
    assert!(n1 > 0 && n2 > 0, "Mann-Whitney needs values on both sides");
    let n = n1 + n2;
    // Pool, sort, and give every value its doubled mid-rank (an integer).
    let mut pooled: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank2 = vec![0u64; n];
    let mut tie_term = 0.0; // Σ (t³ − t) over groups of ties
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean; doubled: (i + 1 + j).
        for r in &mut rank2[i..j] {
            *r = (i + 1 + j) as u64;
        }
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let w2: u64 = (0..n).filter(|&k| pooled[k].1).map(|k| rank2[k]).sum();
    let u = w2 as f64 / 2.0 - (n1 * (n1 + 1)) as f64 / 2.0;
    if n <= EXACT_MAX_N {
        return RankTest {
            u,
            p_value: exact_p(&rank2, n1, w2),
            exact: true,
        };
    }
    let (f1, f2, nf) = (n1 as f64, n2 as f64, n as f64);
    let var = f1 * f2 / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var <= 0.0 {
        return RankTest {
            u,
            p_value: 1.0,
            exact: false,
        };
    }
    let z = ((u - f1 * f2 / 2.0).abs() - 0.5).max(0.0) / var.sqrt();
    RankTest {
        u,
        p_value: erfc(z / std::f64::consts::SQRT_2).min(1.0),
        exact: false,
    }
}

/// Exact two-sided p-value of the doubled rank sum `w2` of `n1` values among the pooled
/// doubled ranks `rank2`: the share of all n1-subsets whose sum lies at least as far from the
/// mean `n1·(N+1)` as `w2` does.
fn exact_p(rank2: &[u64], n1: usize, w2: u64) -> f64 {
    let max_sum: u64 = rank2.iter().sum();
    let width = max_sum as usize + 1;
    // count[k][s]: subsets of size k of the values seen so far with doubled rank sum s.
    // Counts stay below C(40, 20) ≈ 1.4e11, exact in f64.
    let mut count = vec![vec![0.0f64; width]; n1 + 1];
    count[0][0] = 1.0;
    let mut seen = 0usize;
    for &r in rank2 {
        seen += 1;
        let r = r as usize;
        for k in (1..=n1.min(seen)).rev() {
            let (lower, upper) = count.split_at_mut(k);
            let (from, to) = (&lower[k - 1], &mut upper[0]);
            for s in (r..width).rev() {
                if from[s - r] != 0.0 {
                    to[s] += from[s - r];
                }
            }
        }
    }
    let mean2 = (n1 * (rank2.len() + 1)) as i64;
    let dev = (w2 as i64 - mean2).abs();
    let (mut extreme, mut total) = (0.0, 0.0);
    for (s, &c) in count[n1].iter().enumerate() {
        total += c;
        if (s as i64 - mean2).abs() >= dev {
            extreme += c;
        }
    }
    (extreme / total).min(1.0)
}

/// Complementary error function, fractional error below 1.2·10⁻⁷ everywhere (the Chebyshev
/// fit of Press et al., *Numerical Recipes*, §6.2): enough for p-values, whose meaning does not
/// depend on the eighth digit, and accurate far into the tail where `1 − erf` would cancel.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Welch's comparison of two sides of positive values on a log scale: what [`welch_log`]
/// finds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WelchLog {
    /// Geometric mean of the base values.
    pub base: f64,
    /// Geometric mean of the new values.
    pub new: f64,
    /// `new / base`.
    pub ratio: f64,
    /// The t-interval of the ratio at the confidence asked for: `exp(d ± t · se)`, `d` the
    /// difference of the mean logarithms.
    pub ci: [f64; 2],
    /// Two-sided p-value of `d = 0`.
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
}

/// Welch's unequal-variance t-test and interval on the logarithms of `base` and `new`, for
/// ratio-scale quantities with few values a side (energy per call, one value per run): the
/// ratio is of geometric means, and a change by a factor is a shift of the logarithms, the
/// same size up or down. `None` unless each side has two values or more, all positive and
/// finite. When neither side varies at all the interval is the point ratio and the p-value 1
/// (equal) or 0 (different): there is no noise to weigh the difference against.
pub fn welch_log(base: &[f64], new: &[f64], confidence: f64) -> Option<WelchLog> {
    let logs = |v: &[f64]| -> Option<Vec<f64>> {
        (v.len() >= 2 && v.iter().all(|x| x.is_finite() && *x > 0.0))
            .then(|| v.iter().map(|x| x.ln()).collect())
    };
    let (a, b) = (logs(base)?, logs(new)?);
    let moments = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var / n, n)
    };
    let ((ma, va, na), (mb, vb, nb)) = (moments(&a), moments(&b));
    let d = mb - ma;
    let se2 = va + vb;
    let (ci, p_value, df) = if se2 > 0.0 {
        let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
        let se = se2.sqrt();
        let t = wattbench_core::stats::t_quantile(0.5 + confidence / 2.0, df);
        let p = wattbench_core::stats::t_two_sided_p(d / se, df);
        ([(d - t * se).exp(), (d + t * se).exp()], p, df)
    } else {
        let p = if d == 0.0 { 1.0 } else { 0.0 };
        ([d.exp(), d.exp()], p, na + nb - 2.0)
    };
    Some(WelchLog {
        base: ma.exp(),
        new: mb.exp(),
        ratio: d.exp(),
        ci,
        p_value,
        df,
    })
}

/// Benjamini–Hochberg adjusted p-values, in the order given: `p_(i) · m / i` over the sorted
/// p-values, made monotone from the largest down and capped at 1. Rejecting every hypothesis
/// whose adjusted p-value is below `q` keeps the expected share of false discoveries among
/// the rejections at or below `q` (independent or positively dependent tests), so a 500-case
/// suite run against itself flags about nothing, where 500 unadjusted tests at 5 % would flag
/// about 25. A NaN p-value stays NaN and does not count in `m`.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = order.len() as f64;
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m / (rank + 1) as f64);
        // Never below the raw value (`p · m / m` can round one ulp under `p`).
        adjusted[i] = running.max(p[i]).clamp(0.0, 1.0);
    }
    adjusted
}

/// FNV-1a of `parts` (with a separator between them): a stable 64-bit hash, the same on every
/// platform and release, to derive one bootstrap seed per case from the user's seed.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::{prop, prop_assert, prop_assert_eq, proptest, Strategy};

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn welch_log_matches_a_hand_computation() {
        // Logs base: ln 1, ln 2 -> mean 0.34657, var 0.24023; new: ln 2, ln 4 -> mean
        // 1.03972, var 0.24023. d = ln 2, se = sqrt(0.24023/2 * 2) = 0.49013, df = 2
        // (equal variances and sizes), t = 1.41421; R: 2 * pt(-1.41421, 2) = 0.29289.
        let w = welch_log(&[1.0, 2.0], &[2.0, 4.0], 0.95).unwrap();
        assert!(close(w.ratio, 2.0, 1e-12) && close(w.base, 2f64.sqrt(), 1e-12));
        assert!(close(w.df, 2.0, 1e-9), "{w:?}");
        assert!(close(w.p_value, 0.292893, 1e-4), "{w:?}");
        // Interval exp(ln 2 -+ 4.3027 * 0.49013).
        let half = 4.302653 * 0.490129;
        assert!(close(w.ci[0], (2f64.ln() - half).exp(), 1e-4), "{w:?}");
        assert!(close(w.ci[1], (2f64.ln() + half).exp(), 1e-4), "{w:?}");
        // Symmetric: swapping the sides inverts the ratio and interval, same p.
        let v = welch_log(&[2.0, 4.0], &[1.0, 2.0], 0.95).unwrap();
        assert!(close(v.ratio, 0.5, 1e-12) && close(v.ci[0], 1.0 / w.ci[1], 1e-9));
        assert!(close(v.p_value, w.p_value, 1e-12));
    }

    #[test]
    fn welch_log_detects_a_clear_energy_rise_from_four_runs_a_side() {
        // 1.5x more energy, 2 % noise: a rank test on 4 vs 4 cannot go below p = 0.029.
        let base = [1.00, 1.02, 0.98, 1.01];
        let new = [1.50, 1.47, 1.53, 1.49];
        let w = welch_log(&base, &new, 0.95).unwrap();
        assert!(w.p_value < 1e-5, "{w:?}");
        assert!(w.ci[0] > 1.4 && w.ci[1] < 1.6, "{w:?}");
        assert!(mann_whitney(&base, &new).p_value > 0.02);
    }

    #[test]
    fn welch_log_refuses_what_it_cannot_weigh() {
        assert!(welch_log(&[1.0], &[1.0, 2.0], 0.95).is_none(), "one value");
        assert!(welch_log(&[1.0, 0.0], &[1.0, 2.0], 0.95).is_none(), "zero");
        assert!(welch_log(&[1.0, f64::NAN], &[1.0, 2.0], 0.95).is_none());
        // No variation on either side: the point ratio, p 1 when equal, 0 when not.
        let same = welch_log(&[2.0, 2.0], &[2.0, 2.0], 0.95).unwrap();
        assert_eq!((same.ratio, same.ci, same.p_value), (1.0, [1.0, 1.0], 1.0));
        let moved = welch_log(&[2.0, 2.0], &[3.0, 3.0], 0.95).unwrap();
        assert_eq!(moved.p_value, 0.0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn erfc_matches_tabulated_values() {
        // Abramowitz & Stegun table 7.1 / any erfc table.
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (-1.0, 1.842_700_792_949_715),
        ] {
            assert!(close(erfc(x), want, 1.2e-7), "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn mann_whitney_exact_small_samples_by_hand() {
        // Complete separation, 4 vs 4: only 2 of the C(8,4) = 70 splits are as extreme.
        let t = mann_whitney(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]);
        assert!(t.exact);
        assert_eq!(t.u, 0.0);
        assert!(close(t.p_value, 2.0 / 70.0, 1e-12), "{}", t.p_value);
        // 3 vs 3: the smallest two-sided p-value there is, 2/20: never below 0.05.
        let t = mann_whitney(&[3.0, 2.0, 1.0], &[9.0, 8.0, 7.0]);
        assert!(close(t.p_value, 0.1, 1e-12));
        // Swapping the samples mirrors U and keeps p.
        let s = mann_whitney(&[9.0, 8.0, 7.0], &[3.0, 2.0, 1.0]);
        assert_eq!((s.u, s.p_value), (9.0, t.p_value));
        // Identical samples: U at its mean, p = 1.
        let t = mann_whitney(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!((t.u, t.p_value), (4.5, 1.0));
    }

    #[test]
    fn mann_whitney_exact_with_ties_counts_every_split() {
        // a = {1, 2, 2}, b = {2, 3, 4}. Mid-ranks: 1 → 1; the three 2s → 3; 3 → 5; 4 → 6.
        // W(a) = 1 + 3 + 3 = 7, mean 3·7/2 = 10.5, |W − mean| = 3.5. Of the 20 ways to pick 3
        // of the ranks {1, 3, 3, 3, 5, 6}, those summing to 7 or less ({1,3,3}: 3 ways) or
        // 14 or more ({3,5,6}: 3 ways) are as extreme: p = 6/20.
        let t = mann_whitney(&[1.0, 2.0, 2.0], &[2.0, 3.0, 4.0]);
        assert!(t.exact);
        assert_eq!(t.u, 1.0);
        assert!(close(t.p_value, 0.3, 1e-12), "{}", t.p_value);
        // Every value tied: p = 1.
        let t = mann_whitney(&[5.0; 4], &[5.0; 6]);
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn mann_whitney_normal_approximation_by_hand() {
        // a = 0..30, b = 20..50: 30 each, the values 20..29 on both sides (10 ties of two).
        // Pairs a > b: each a in 21..29 beats the (a − 20) b-values below it; the 10 ties count
        // ½ each. U = (1 + ... + 9) + 5 = 50.
        let a: Vec<f64> = (0..30).map(f64::from).collect();
        let b: Vec<f64> = (20..50).map(f64::from).collect();
        let t = mann_whitney(&a, &b);
        assert!(!t.exact);
        assert_eq!(t.u, 50.0);
        // mean 450; ties: 10 pairs, Σ(t³−t) = 10·6 = 60; N = 60:
        // var = 900/12 · (61 − 60/(60·59)) = 75 · (61 − 1/59).
        let var: f64 = 75.0 * (61.0 - 1.0 / 59.0);
        let z = (400.0 - 0.5) / var.sqrt();
        let want = erfc(z / std::f64::consts::SQRT_2);
        assert!(close(t.p_value, want, 1e-12));
        // z ≈ 5.907: two-sided normal tail 3.4797e-9 (Python's math.erfc).
        assert!(close(t.p_value, 3.479_739_872e-9, 1e-6), "{}", t.p_value);
    }

    #[test]
    fn benjamini_hochberg_known_vector() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.5), "BH") = 0.025 0.050 0.050 0.025 0.500
        let adj = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 0.5]);
        for (got, want) in adj.iter().zip([0.025, 0.05, 0.05, 0.025, 0.5]) {
            assert!(close(*got, want, 1e-12), "{adj:?}");
        }
        // NaN (no test) is left out of m.
        let adj = benjamini_hochberg(&[0.02, f64::NAN, 0.04]);
        assert!(close(adj[0], 0.04, 1e-12) && close(adj[2], 0.04, 1e-12));
        assert!(adj[1].is_nan());
        assert!(benjamini_hochberg(&[]).is_empty());
    }

    /// `n` samples around `center` with deterministic "noise": a seeded log-normal-ish
    /// spread of about 5 %.
    pub(crate) fn synthetic(center: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                // Sum of uniforms: roughly normal, sd ≈ 0.05 on the log scale.
                let g: f64 = (0..4).map(|_| rng.random::<f64>() - 0.5).sum::<f64>() * 0.09;
                center * g.exp()
            })
            .collect()
    }

    #[test]
    fn bootstrap_interval_contains_the_true_ratio() {
        let base = synthetic(1.0e-3, 200, 1);
        let new = synthetic(1.3e-3, 200, 2);
        let ci = ratio_of_medians_ci(&base, &new, 2000, 0.95, 7).unwrap();
        assert!(ci[0] < 1.3 && 1.3 < ci[1], "{ci:?}");
        assert!(
            ci[1] - ci[0] < 0.05,
            "200 samples a side pin it down: {ci:?}"
        );
        // Reproducible: the same seed gives the same interval.
        assert_eq!(ratio_of_medians_ci(&base, &new, 2000, 0.95, 7), Some(ci));
    }

    #[test]
    fn bootstrap_interval_covers_about_as_often_as_it_says() {
        // 200 independent experiments with a true ratio of 1.1: a 95 % interval should miss
        // about 10 of them. Percentile intervals of medians run a little narrow at n = 30;
        // allow down to 85 % coverage, which still catches a broken interval (a bug that
        // resampled one side only, or swapped the ratio, covers far less).
        let mut covered = 0;
        for k in 0..200u64 {
            let base = synthetic(1.0, 30, 1000 + 2 * k);
            let new = synthetic(1.1, 30, 1001 + 2 * k);
            let ci = ratio_of_medians_ci(&base, &new, 1000, 0.95, k).unwrap();
            covered += usize::from(ci[0] <= 1.1 && 1.1 <= ci[1]);
        }
        assert!(covered >= 170, "covered {covered} of 200");
    }

    #[test]
    fn a_shift_between_runs_widens_the_clustered_interval() {
        // Two base runs that disagree by 20 % (the machine changed between them), two new
        // runs like the first base run. Pooled as if independent, the interval is narrow;
        // drawn by run, it admits that the runs themselves move, and reaches from about
        // 1/1.2 (new against the slow base run) up to about 1 (against the fast one).
        let (b1, b2) = (synthetic(1.0, 50, 1), synthetic(1.2, 50, 2));
        let (n1, n2) = (synthetic(1.0, 50, 3), synthetic(1.0, 50, 4));
        let pooled_b: Vec<f64> = b1.iter().chain(&b2).copied().collect();
        let pooled_n: Vec<f64> = n1.iter().chain(&n2).copied().collect();
        let flat = ratio_of_medians_ci(&pooled_b, &pooled_n, 2000, 0.95, 5).unwrap();
        let runs = ratio_of_medians_ci_clustered(&[&b1, &b2], &[&n1, &n2], 2000, 0.95, 5).unwrap();
        let width = |ci: [f64; 2]| ci[1] - ci[0];
        assert!(
            runs[0] < flat[0] && runs[1] > flat[1],
            "{runs:?} vs {flat:?}"
        );
        assert!(width(runs) > 2.0 * width(flat), "{runs:?} vs {flat:?}");
        assert!(runs[0] < 0.85 && runs[1] > 0.98, "{runs:?}");
        // One run per side: exactly the plain interval.
        assert_eq!(
            ratio_of_medians_ci_clustered(&[&b1], &[&n1], 500, 0.9, 8),
            ratio_of_medians_ci(&b1, &n1, 500, 0.9, 8)
        );
    }

    #[test]
    fn bootstrap_of_empty_or_zero_sides_is_none() {
        assert_eq!(ratio_of_medians_ci(&[], &[1.0], 100, 0.95, 1), None);
        assert_eq!(ratio_of_medians_ci(&[0.0, 0.0], &[1.0], 100, 0.95, 1), None);
    }

    #[test]
    fn stable_hash_is_stable() {
        // FNV-1a of "a": the published test vector.
        assert_eq!(stable_hash(&["a"]), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
    }

    fn samples() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(1.0f64..100.0, 1..60)
    }

    proptest! {
        #[test]
        fn rank_test_is_symmetric_and_a_probability(a in samples(), b in samples()) {
            let (x, y) = (mann_whitney(&a, &b), mann_whitney(&b, &a));
            prop_assert!((0.0..=1.0).contains(&x.p_value));
            prop_assert!((x.p_value - y.p_value).abs() < 1e-9);
            prop_assert!((x.u + y.u - (a.len() * b.len()) as f64).abs() < 1e-9);
        }

        #[test]
        fn rank_test_ignores_monotone_transforms(a in samples(), b in samples()) {
            let (la, lb): (Vec<f64>, Vec<f64>) =
                (a.iter().map(|v| v.ln()).collect(), b.iter().map(|v| v.ln()).collect());
            prop_assert_eq!(mann_whitney(&a, &b), mann_whitney(&la, &lb));
        }

        #[test]
        fn ratio_interval_scales_with_new(a in samples(), b in samples(), k in 0.5f64..4.0) {
            // The same draws (same seed) on new × k give the interval × k.
            let ci = ratio_of_medians_ci(&a, &b, 200, 0.9, 3).unwrap();
            let kb: Vec<f64> = b.iter().map(|v| v * k).collect();
            let scaled = ratio_of_medians_ci(&a, &kb, 200, 0.9, 3).unwrap();
            prop_assert!(ci[0] <= ci[1]);
            prop_assert!((scaled[0] - k * ci[0]).abs() <= 1e-9 * scaled[0]);
            prop_assert!((scaled[1] - k * ci[1]).abs() <= 1e-9 * scaled[1]);
        }

        #[test]
        fn bh_is_monotone_bounded_and_at_least_raw(p in prop::collection::vec(0.0f64..=1.0, 0..50)) {
            let adj = benjamini_hochberg(&p);
            for i in 0..p.len() {
                prop_assert!(adj[i] >= p[i] && adj[i] <= 1.0);
                for j in 0..p.len() {
                    if p[i] <= p[j] {
                        prop_assert!(adj[i] <= adj[j] + 1e-15);
                    }
                }
            }
        }
    }
}
