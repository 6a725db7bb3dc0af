//! Change points in a series of run-level figures: E-Divisive means (Matteson & James 2014,
//! the method of MongoDB's performance CI), with known breaks where the software changed.
//!
//! The statistic is the energy distance (α = 1) between the values before and after a split,
//! scaled by `a·b/n`; each step splits the segment whose best split scores highest, and keeps
//! it only when a permutation test (values shuffled within the current segments, the same
//! maximum recomputed) gives p ≤ `alpha`. Searching stops at the first split that is not
//! significant. The permutations stop early once `stop_after` of them score as high (Besag &
//! Clifford 1991): a clearly insignificant split costs a few dozen, so the many permutations
//! that small p-values need (a correction across many series, see
//! [`crate::trend::analyse`]) are spent only where p is small. As in MongoDB's implementation, the second part of a split runs to the end of
//! its segment (the original's extra search over its end point is left out).
//!
//! Known breaks (a driver, toolkit or library version changed between two runs) cut the
//! series before any search, so a software change is never reported as one of ours; each
//! break is then tested on its own (the same statistic at the break, between the neighbouring
//! boundaries) and reported, marked as known, when the level moved there.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the detector runs. The defaults are the usual ones for E-Divisive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Most permutations of a significance test; the smallest p-value it can give is
    /// `1 / (permutations + 1)`, which must be under the thresholds of the correction across
    /// series (`alpha / tests` for the most significant one).
    pub permutations: usize,
    /// The permutations of a test stop once this many score at least as high as the observed
    /// split (Besag–Clifford sequential p-value, `stop_after / permutations done`); 0: never.
    #[serde(default)]
    pub stop_after: usize,
    /// Largest p-value of a split the search keeps within a series, and the false-discovery
    /// rate of the Benjamini–Hochberg correction across the series analysed together
    /// ([`crate::trend::analyse`]).
    pub alpha: f64,
    /// Fewest points on either side of a change point found by the search (at least 2: the
    /// statistic needs pairs within each side).
    pub min_size: usize,
    /// Seed of the permutations: the same series gives the same answer.
    pub seed: u64,
    /// Smallest change of level reported as a change, as a fraction (0.05: 5 %, the default
    /// threshold of `compare`), at a known break too: smaller significant ones are counted as
    /// minor, not listed.
    #[serde(default)]
    pub min_change: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            permutations: 9999,
            stop_after: 20,
            alpha: 0.05,
            min_size: 3,
            seed: 0x5eed,
            min_change: 0.05,
        }
    }
}

/// One change point: the level of the series moved between `index - 1` and `index`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    /// The first index of the new level.
    pub index: usize,
    /// The scaled energy statistic of the split.
    pub statistic: f64,
    /// Permutation p-value: `(1 + permutations scoring at least as high) / (permutations + 1)`,
    /// or `stop_after / permutations done` where they stopped early.
    pub p_value: f64,
    /// Whether the split is at a known break (the software changed there).
    pub known_break: bool,
}

/// Change points of `values`, in index order. `breaks` are the indices where a known break
/// starts a new segment (any order; out-of-range ones are ignored). Values must be finite.
pub fn detect(values: &[f64], breaks: &[usize], cfg: &Config) -> Vec<Detected> {
    detect_counting(values, breaks, cfg).0
}

/// [`detect`], with the number of permutation tests it made (the last, insignificant split of
/// the search and the known breaks without a change included): what a correction for testing
/// many series at once counts.
pub fn detect_counting(values: &[f64], breaks: &[usize], cfg: &Config) -> (Vec<Detected>, usize) {
    let n = values.len();
    let mut tests = 0usize;
    let min_size = cfg.min_size.max(2);
    let mut known: Vec<usize> = breaks.iter().copied().filter(|&b| b > 0 && b < n).collect();
    known.sort_unstable();
    known.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut found: Vec<Detected> = Vec::new();
    let mut scratch = Vec::with_capacity(n);
    loop {
        let bounds = boundaries(n, &known, &found);
        let Some((statistic, index)) = best_split(values, &bounds, min_size) else {
            break;
        };
        tests += 1;
        let p_value = permutation_p(cfg, &mut rng, |rng| {
            scratch.clear();
            scratch.extend_from_slice(values);
            for w in bounds.windows(2) {
                scratch[w[0]..w[1]].shuffle(rng);
            }
            best_split(&scratch, &bounds, min_size).is_some_and(|(s, _)| s >= statistic)
        });
        if p_value > cfg.alpha {
            break;
        }
        found.push(Detected {
            index,
            statistic,
            p_value,
            known_break: false,
        });
    }
    // Each known break, between its neighbouring boundaries (change points or other breaks).
    let mut at_breaks = Vec::new();
    for &b in &known {
        if !break_testable(n, &known, &found, b, cfg) {
            // The estimate of a p-value the test cannot reach could still fall under `alpha`
            // by chance: no verdict.
            continue;
        }
        tests += 1;
        let bounds = boundaries(n, &known, &found);
        let lo = bounds.iter().copied().filter(|&x| x < b).max().unwrap_or(0);
        let hi = bounds.iter().copied().filter(|&x| x > b).min().unwrap_or(n);
        let window = &values[lo..hi];
        let tau = b - lo;
        let statistic = split_statistic(window, tau);
        scratch.clear();
        scratch.extend_from_slice(window);
        let p_value = permutation_p(cfg, &mut rng, |rng| {
            scratch.shuffle(rng);
            split_statistic(&scratch, tau) >= statistic
        });
        if p_value <= cfg.alpha {
            at_breaks.push(Detected {
                index: b,
                statistic,
                p_value,
                known_break: true,
            });
        }
    }
    found.extend(at_breaks);
    found.sort_by_key(|d| d.index);
    (found, tests)
}

/// The largest p-value the Benjamini–Hochberg procedure keeps at false-discovery rate `q`,
/// over `tests` tests of which `p` holds the p-values at most `q` (the others, above every
/// threshold, only count); `None` when it keeps none. Valid for independent tests and under
/// positive dependence, as of series measured in the same runs (a noisy night moves them
/// together).
pub fn benjamini_hochberg(p: &[f64], tests: usize, q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = p.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = tests.max(sorted.len()) as f64;
    (sorted.iter().enumerate())
        .rev()
        .find(|&(k, &pk)| pk <= (k + 1) as f64 * q / m)
        .map(|(_, &pk)| pk)
}

/// The p-value of a permutation test whose permutation `exceeds` (drawing from `rng`) says
/// whether it scores at least as high as the observed value: `(1 + exceeding) / (1 +
/// permutations)`, or, once `cfg.stop_after` have exceeded, `stop_after / permutations done`
/// (Besag & Clifford 1991: valid, and far cheaper where p is large).
fn permutation_p(
    cfg: &Config,
    rng: &mut ChaCha8Rng,
    mut exceeds: impl FnMut(&mut ChaCha8Rng) -> bool,
) -> f64 {
    let mut at_least = 0usize;
    for done in 1..=cfg.permutations {
        if exceeds(rng) {
            at_least += 1;
            if cfg.stop_after > 0 && at_least >= cfg.stop_after {
                return at_least as f64 / done as f64;
            }
        }
    }
    (at_least + 1) as f64 / (cfg.permutations + 1) as f64
}

/// Whether the test of known break `b` (see [`detect`]) can find a change of level at all:
/// it compares the split at `b` of the window between its neighbouring boundaries (the other
/// known breaks and the change points `found`) with the splits of shuffled windows, so its
/// p-value is at least the share of the window's distinct splits that score as high as the
/// observed one: `1 / C(window, points after b)`, or twice that when both sides are the same
/// size (a split and its mirror score the same). With too few runs on a side (one run after a
/// break in a window of 11: p ≥ 1/11; three on each side: p ≥ 2/20) no change can be
/// significant at `alpha`, and its absence says nothing. The permutations' own floor,
/// `1 / (permutations + 1)`, must be under `alpha` too.
pub fn break_testable(
    n: usize,
    known: &[usize],
    found: &[Detected],
    b: usize,
    cfg: &Config,
) -> bool {
    if 1.0 / (cfg.permutations + 1) as f64 > cfg.alpha {
        return false;
    }
    let bounds = boundaries(n, known, found);
    let lo = bounds.iter().copied().filter(|&x| x < b).max().unwrap_or(0);
    let hi = bounds.iter().copied().filter(|&x| x > b).min().unwrap_or(n);
    let (m, k) = (hi - lo, (b - lo).min(hi - b));
    // Distinct splits scoring as high as the best one: 1, or 2 for a split and its mirror.
    let ties = if 2 * k == m { 2.0 } else { 1.0 };
    // C(m, k), stopped once it is large enough.
    let mut arrangements = 1.0f64;
    for i in 0..k {
        arrangements = arrangements * (m - i) as f64 / (i + 1) as f64;
        if arrangements * cfg.alpha >= ties {
            return true;
        }
    }
    arrangements * cfg.alpha >= ties
}

/// `0`, the known breaks and the change points found so far, and `n`: the current segments.
fn boundaries(n: usize, known: &[usize], found: &[Detected]) -> Vec<usize> {
    let mut b: Vec<usize> = std::iter::once(0)
        .chain(known.iter().copied())
        .chain(found.iter().map(|d| d.index))
        .chain(std::iter::once(n))
        .collect();
    b.sort_unstable();
    b.dedup();
    b
}

/// The highest-scoring split over all segments (statistic, absolute index), each side at
/// least `min_size` long; `None` when no segment is long enough.
fn best_split(values: &[f64], bounds: &[usize], min_size: usize) -> Option<(f64, usize)> {
    let mut best: Option<(f64, usize)> = None;
    for w in bounds.windows(2) {
        let seg = &values[w[0]..w[1]];
        if seg.len() < 2 * min_size {
            continue;
        }
        let q = split_statistics(seg);
        for (tau, &s) in q
            .iter()
            .enumerate()
            .take(seg.len() - min_size + 1)
            .skip(min_size)
        {
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, w[0] + tau));
            }
        }
    }
    best
}

/// `a·b/n · Ê` for the split of `x` into `x[..a]` and `x[a..]` (b = n − a), where
/// `Ê = 2/(ab) Σ|xᵢ−yⱼ| − Σ_{i<k}|xᵢ−xₖ|/C(a,2) − Σ_{j<k}|yⱼ−yₖ|/C(b,2)` (a within-term is 0
/// for a side of one point).
fn q_from_sums(n: usize, a: usize, within_left: f64, within_right: f64, between: f64) -> f64 {
    let b = n - a;
    if a == 0 || b == 0 {
        return 0.0;
    }
    let pairs = |m: usize| (m * m.saturating_sub(1) / 2) as f64;
    let mean_within = |w: f64, m: usize| if m > 1 { w / pairs(m) } else { 0.0 };
    let (af, bf) = (a as f64, b as f64);
    let e = 2.0 * between / (af * bf) - mean_within(within_left, a) - mean_within(within_right, b);
    af * bf / n as f64 * e
}

/// The statistic of one split (see [`q_from_sums`]), directly: O(n²).
fn split_statistic(x: &[f64], a: usize) -> f64 {
    let n = x.len();
    let (mut wl, mut wr, mut between) = (0.0, 0.0, 0.0);
    for i in 0..n {
        for k in i + 1..n {
            let d = (x[i] - x[k]).abs();
            match (i < a, k < a) {
                (true, true) => wl += d,
                (false, false) => wr += d,
                _ => between += d,
            }
        }
    }
    q_from_sums(n, a, wl, wr, between)
}

/// The statistic of every split `a` in `0..=n` of `x` (0 at the ends), in O(n log n): the
/// within-sums of every prefix and suffix come from Fenwick trees over the ranks, and the
/// between-sum is the total less both.
fn split_statistics(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let prefix = prefix_within_sums(x.iter().copied());
    let suffix_rev = prefix_within_sums(x.iter().rev().copied());
    let total = prefix[n];
    (0..=n)
        .map(|a| {
            let (wl, wr) = (prefix[a], suffix_rev[n - a]);
            q_from_sums(n, a, wl, wr, total - wl - wr)
        })
        .collect()
}

/// `out[m]` = Σ_{i<k<m} |xᵢ − xₖ| over the first `m` values, for every `m` in `0..=n`.
fn prefix_within_sums(values: impl ExactSizeIterator<Item = f64> + Clone) -> Vec<f64> {
    let n = values.len();
    let mut sorted: Vec<f64> = values.clone().collect();
    sorted.sort_by(f64::total_cmp);
    let mut count = Fenwick::new(n);
    let mut sum = Fenwick::new(n);
    let (mut seen, mut seen_sum) = (0.0f64, 0.0f64);
    let mut out = Vec::with_capacity(n + 1);
    out.push(0.0);
    let mut acc = 0.0;
    for v in values {
        // Values strictly below v sit at ranks < lo; ties contribute nothing either way.
        let lo = sorted.partition_point(|s| s.total_cmp(&v).is_lt());
        let (below_n, below_sum) = (count.prefix(lo), sum.prefix(lo));
        let (above_n, above_sum) = (seen - below_n, seen_sum - below_sum);
        acc += v * below_n - below_sum + above_sum - v * above_n;
        count.add(lo, 1.0);
        sum.add(lo, v);
        seen += 1.0;
        seen_sum += v;
        out.push(acc);
    }
    out
}

/// A binary indexed tree of sums.
struct Fenwick(Vec<f64>);

impl Fenwick {
    fn new(n: usize) -> Self {
        Fenwick(vec![0.0; n + 1])
    }
    fn add(&mut self, i: usize, v: f64) {
        let mut i = i + 1;
        while i < self.0.len() {
            self.0[i] += v;
            i += i & i.wrapping_neg();
        }
    }
    /// Sum of positions `0..i`.
    fn prefix(&self, i: usize) -> f64 {
        let (mut i, mut s) = (i, 0.0);
        while i > 0 {
            s += self.0[i];
            i &= i - 1;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// `n` values around `level` with ±`noise` relative uniform noise, seeded.
    fn noisy(n: usize, level: f64, noise: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
        (0..n)
            .map(|_| level * (1.0 + noise * rng.random_range(-1.0..1.0)))
            .collect()
    }

    fn step_series(seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = noisy(20, 1.0, 0.03, &mut rng);
        v.extend(noisy(20, 1.1, 0.03, &mut rng));
        v
    }

    #[test]
    fn fast_statistics_match_the_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut x = noisy(23, 5.0, 0.2, &mut rng);
        x[4] = x[9]; // ties
        x[10] = x[9];
        let fast = split_statistics(&x);
        for (a, f) in fast.iter().enumerate() {
            let slow = split_statistic(&x, a);
            assert!(
                (f - slow).abs() <= 1e-9 * slow.abs().max(1.0),
                "a={a}: {f} vs {slow}"
            );
        }
    }

    #[test]
    fn a_ten_percent_step_is_found_where_it_is() {
        let v = step_series(1);
        let found = detect(&v, &[], &Config::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let cp = &found[0];
        assert!((19..=21).contains(&cp.index), "{cp:?}");
        assert!(cp.p_value < 0.05 && !cp.known_break, "{cp:?}");
        assert_eq!(
            cp.p_value,
            1.0 / (Config::default().permutations + 1) as f64,
            "no permutation scores as high as a clean step"
        );
    }

    #[test]
    fn a_known_break_with_too_few_runs_after_it_gets_no_verdict() {
        // One run after a break in a window of 11 (p ≥ 1/11 whatever the values): the
        // permutations' estimate could fall under alpha by chance, so no verdict is given,
        // for any seed; two runs after it in a window of 12 (p ≥ 1/66) can be tested.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut v = noisy(10, 1.0, 0.01, &mut rng);
        v.push(2.0);
        let cfg = Config::default();
        assert!(!break_testable(v.len(), &[10], &[], 10, &cfg));
        for seed in 0..20 {
            let cfg = Config {
                seed,
                ..cfg.clone()
            };
            assert_eq!(detect(&v, &[10], &cfg), vec![], "seed {seed}");
        }
        v.push(2.0);
        assert!(break_testable(v.len(), &[10], &[], 10, &cfg));
        // Three runs on each side: C(6, 3) = 20 splits, but each scores as its mirror, so
        // p ≥ 2/20 > 0.05: not testable; four on each side (p ≥ 2/70) is.
        assert!(!break_testable(6, &[3], &[], 3, &cfg));
        assert!(break_testable(8, &[4], &[], 4, &cfg));
        let coarse = Config {
            permutations: 9,
            ..cfg.clone()
        };
        assert!(
            !break_testable(v.len(), &[10], &[], 10, &coarse),
            "p ≥ 1/10"
        );
        let found = detect(&v, &[10], &cfg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].known_break && found[0].index == 10);
    }

    #[test]
    fn a_flat_noisy_series_has_no_change_point() {
        let cfg = Config::default();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(detect(&noisy(40, 1.0, 0.05, &mut rng), &[], &cfg), vec![]);
        // Over many flat series the false alarms stay near alpha (one expected in 20).
        let alarms = (0..20)
            .filter(|&s| {
                let mut rng = ChaCha8Rng::seed_from_u64(100 + s);
                !detect(&noisy(40, 1.0, 0.05, &mut rng), &[], &cfg).is_empty()
            })
            .count();
        assert!(alarms <= 3, "{alarms} of 20 flat series had a change point");
    }

    #[test]
    fn a_step_at_a_known_break_is_reported_as_the_break() {
        let v = step_series(3);
        let found = detect(&v, &[20], &Config::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].index, 20);
        assert!(found[0].known_break && found[0].p_value < 0.05);
        // A break where nothing moved is not reported.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let flat = noisy(40, 1.0, 0.03, &mut rng);
        assert_eq!(detect(&flat, &[20], &Config::default()), vec![]);
    }

    #[test]
    fn a_step_away_from_a_break_is_ours() {
        let v = step_series(5);
        let found = detect(&v, &[8], &Config::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!((19..=21).contains(&found[0].index) && !found[0].known_break);
    }

    #[test]
    fn two_steps_are_both_found() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mut v = noisy(15, 1.0, 0.02, &mut rng);
        v.extend(noisy(15, 1.2, 0.02, &mut rng));
        v.extend(noisy(15, 0.9, 0.02, &mut rng));
        let idx: Vec<usize> = detect(&v, &[], &Config::default())
            .iter()
            .map(|d| d.index)
            .collect();
        assert_eq!(idx.len(), 2, "{idx:?}");
        assert!(
            (14..=16).contains(&idx[0]) && (29..=31).contains(&idx[1]),
            "{idx:?}"
        );
    }

    #[test]
    fn benjamini_hochberg_keeps_the_step_up_set() {
        // Ten tests at q = 0.05: the k-th smallest p is kept under k × 0.005.
        assert_eq!(
            benjamini_hochberg(&[0.04, 0.001, 0.008], 10, 0.05),
            Some(0.008)
        );
        assert_eq!(
            benjamini_hochberg(&[0.006], 10, 0.05),
            None,
            "0.006 > 0.005"
        );
        // Step-up: the second passing its own threshold keeps the first, above 0.005.
        assert_eq!(benjamini_hochberg(&[0.006, 0.009], 10, 0.05), Some(0.009));
        assert_eq!(benjamini_hochberg(&[], 10, 0.05), None);
        // Fewer tests counted than p-values given: the p-values count.
        assert_eq!(benjamini_hochberg(&[0.01, 0.02], 0, 0.05), Some(0.02));
    }

    #[test]
    fn permutations_stop_once_enough_score_as_high() {
        let cfg = Config::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut calls = 0;
        let p = permutation_p(&cfg, &mut rng, |_| {
            calls += 1;
            true
        });
        assert_eq!((p, calls), (1.0, cfg.stop_after));
        let mut calls = 0;
        let p = permutation_p(&cfg, &mut rng, |_| {
            calls += 1;
            false
        });
        assert_eq!((p, calls), (1.0 / 10_000.0, cfg.permutations));
        // One in four scores as high: stopped after about 80, p near 0.25.
        let mut calls = 0;
        let p = permutation_p(&cfg, &mut rng, |_| {
            calls += 1;
            calls % 4 == 0
        });
        assert_eq!((p, calls), (0.25, 80));
        let never = Config {
            stop_after: 0,
            ..cfg.clone()
        };
        let mut calls = 0;
        permutation_p(&never, &mut rng, |_| {
            calls += 1;
            true
        });
        assert_eq!(calls, cfg.permutations);
    }

    #[test]
    fn deterministic_and_quiet_on_short_or_constant_series() {
        let v = step_series(8);
        let cfg = Config::default();
        assert_eq!(detect(&v, &[], &cfg), detect(&v, &[], &cfg));
        assert_eq!(detect(&v[..5], &[], &cfg), vec![]);
        assert_eq!(detect(&[2.0; 30], &[], &cfg), vec![]);
        assert_eq!(detect(&[], &[0, 3], &cfg), vec![]);
    }
}
