//! Comparing a baseline with a new set of result files, case by case and metric by metric,
//! into one typed [`Comparison`] (the document `wattbench compare --format json` writes).
//!
//! # What is compared
//!
//! Cases (kernel cases and training runs alike) are matched by `id`. Several files on one side
//! (a folder, or repeated runs) are pooled per id. Per matched case:
//!
//! - **time** per call: the raw per-sample times (`time.samples_s`, pooled over the side's
//!   files). Ratio NEW/BASE of the medians; a percentile-bootstrap interval of that ratio
//!   (each side resampled on its own, seeded; a side of several runs is resampled in two
//!   stages, runs then samples within them, so the interval carries the variation between
//!   runs); a two-sided Mann–Whitney test of the pooled samples.
//! - **energy** per call (`energy.total_joules_per_iter`), only when every window on both sides
//!   is the same quantity: the same sources (`total_sources`: a measured and an estimated
//!   figure are not), the same meters added (`total_includes`: another `--gpus`, or a counter
//!   that could not be read, changes what the total covers) and, for an estimate, the same
//!   model inputs (its TDP and threads: a changed TDP moves the figure without any change of
//!   code); the same domains without a reading (a PARTIAL total covers the others only: it is
//!   neither a whole total nor one partial in another way), and host counters shared alike
//!   (counters that also counted other GPU workers' host work, the note `run --devices` writes,
//!   are not one case's). Rows say which sources they compare and whether the totals are
//!   partial or shared (`source`, `measured, PARTIAL: without dram-0`; as fields,
//!   `missing_domains` and `host_counters_shared_by`). Each result file holds one energy
//!   window per case (a mean over the window), so a side has as many energy values as files.
//!   With at least two windows per side: Welch's t-test and t-interval on the logarithms of
//!   the per-window values (the ratio is of geometric means; `base` and `new` are geometric
//!   means). A rank test, as for time, cannot reach significance on so few values (its
//!   smallest p-value is 0.1 with 3 values a side, 0.029 with 4), and the per-window values
//!   are means over a whole window, not single heavy-tailed samples. With a
//!   single window on either side there is no spread to test: the interval is the meters'
//!   stated uncertainty, taken worst-case (`[new.low / base.high, new.high / base.low]`), and
//!   the verdict is `slower` or `faster` only when that interval clears the threshold,
//!   `ambiguous` otherwise (never `same`: one window cannot show run-to-run agreement). The
//!   meters' interval says nothing about run-to-run variation; repeat runs (a folder per side)
//!   for a real test.
//! - **peak memory** (`memory.host_peak_rss_bytes` when reset per case on every file, and
//!   `memory.device_peak_bytes`): one value per file, and not as deterministic as it looks
//!   (the host peak after a reset starts from what the allocator kept of earlier cases: two
//!   runs of the same build on the CI machine differed by 26%). The ratio is of the per-side
//!   medians; the interval is the range of ratios, `[min new / max base, max new / min
//!   base]`, and needs at least two files on each side: with one file on a side there is no
//!   interval and the verdict is `ambiguous`. No test, and no false-discovery control over
//!   the many cases, while host peaks move from run to run for many cases at once (6–7 %
//!   between runs of one build for 15 cases of `results/baselines/`, more than the default
//!   threshold): its rows are reported and never fail the gate ([`CaseComparison::gates`]).
//!
//! A case that is skipped or failed on either side is listed under
//! [`Comparison::not_compared`] with the reason, as is a metric one side has and the other
//! lacks, or energy from different sources. Cases found on one side only are listed under
//! [`Comparison::unmatched`]; nothing is dropped silently. A case ok on base that failed in a
//! new run (when base never failed it, or new passed it in no run: a base that also failed
//! it only makes a failure flaky while new still passes it sometimes), or that new skipped
//! in every run or lacks, is also in
//! [`Comparison::regressed`]: a failure there fails the gate like a `slower` row
//! ([`Comparison::fails_gate`]), a lost case too when both sides ran the same options (`ab`).
//!
//! # The verdict rule
//!
//! With `t` the metric's threshold (default 5 %), `[lo, hi]` the interval of NEW/BASE and `p`
//! the Benjamini–Hochberg adjusted p-value (over every test of that metric in the comparison:
//! time and energy are adjusted as two families, so a few energy tests are not drowned among
//! hundreds of time tests):
//!
//! - `slower` iff `p < alpha` and `lo > 1 + t`;
//! - `faster` iff `p < alpha` and `hi < 1 / (1 + t)` (symmetric on a log scale: 5 % slower
//!   and "1.05× faster" are the same size of change);
//! - `same` iff `1 / (1 + t) ≤ lo` and `hi ≤ 1 + t`, significant or not (a real but smaller
//!   change than the threshold is `same`);
//! - `ambiguous` otherwise: the data cannot tell (too few samples, too much noise, or a change
//!   straddling the threshold).
//!
//! Single-window energy uses the same bounds without a test (see above); peak memory uses the
//! same bounds on its range of ratios, without a test, and is `ambiguous` with one file a
//! side. Neither fails the gate.
//!
//! Requiring both the adjusted test and the whole interval beyond the threshold is what keeps
//! a 500-case suite from crying wolf: a tiny but real shift (a significant test) is not a
//! regression, a large but noisy one (an interval reaching back under the threshold) is not
//! proven, and the adjustment keeps the expected share of false `slower`/`faster` among them
//! at `alpha`. Samples from within one run do not see what changes between runs (another
//! load, clocks, temperature); pool several runs per side to include it.
use crate::stats;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use wattbench_core::energy::{CaseEnergy, EnergyBasis, Interval};
use wattbench_core::result::{read_runs, Memory, ReadError, RunFile, Status};
use wattbench_core::stats::TimeStats;

/// Version of the comparison document's shape; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Bootstrap seed when none is given.
pub const DEFAULT_SEED: u64 = 0x5eed;

/// Bootstrap resamples per interval when none are given.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// Why a comparison could not be made. Every one is a problem with the input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A path could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not a result file of this schema.
    #[error("{path}: {source}")]
    NotAResult {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ReadError,
    },
    /// A folder without result files.
    #[error("{0} holds no result files (*.json); give a result file or a folder of them")]
    Empty(PathBuf),
    /// The files of one side come from different hardware.
    #[error(
        "the {side} files were measured on different hardware ({}); pool runs of one machine, \
         or allow it (--allow-different-hardware)",
        .fingerprints.join(" | ")
    )]
    MixedHardware {
        /// `base` or `new`.
        side: &'static str,
        /// The distinct fingerprints.
        fingerprints: Vec<String>,
    },
    /// Base and new come from different hardware.
    #[error(
        "base and new were measured on different hardware (base: {base}; new: {new}): the \
         ratios would compare machines, not code; allow it with --allow-different-hardware"
    )]
    DifferentHardware {
        /// Base fingerprints.
        base: String,
        /// New fingerprints.
        new: String,
    },
    /// No case id is on both sides.
    #[error(
        "base and new have no case in common (base: {base}; new: {new}); are they runs of the \
         same suite?"
    )]
    NothingInCommon {
        /// A few base ids.
        base: String,
        /// A few new ids.
        new: String,
    },
    /// An option out of range.
    #[error("{0}")]
    InvalidOption(String),
}

/// The result files of one side: one file, or every `*.json` of a folder.
#[derive(Clone, Debug, Default)]
pub struct ResultSet {
    /// Where each run came from (a path, or a label), in the order of `runs`.
    pub files: Vec<String>,
    /// The runs.
    pub runs: Vec<RunFile>,
    /// Files of a folder read that are other wattbench documents (a ceilings file kept beside
    /// the runs, a `measure` report), left out, each with what it is.
    pub left_out: Vec<String>,
}

impl ResultSet {
    /// Read `path`: a result file, or a folder whose `*.json` files (not its subfolders, not
    /// hidden files) are result files, read in name order; other wattbench documents in a
    /// folder (ceilings, `measure` reports) are left out and listed in `left_out`.
    pub fn load(path: &Path) -> Result<ResultSet, CompareError> {
        let io = |source| CompareError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let folder = meta.is_dir();
        let paths = if folder {
            let mut v: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension().is_some_and(|e| e == "json")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(CompareError::Empty(path.to_path_buf()));
            }
            v
        } else {
            vec![path.to_path_buf()]
        };
        let mut set = ResultSet::default();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|source| CompareError::Io {
                path: p.clone(),
                source,
            })?;
            if folder {
                if let Some(what) = wattbench_core::result::other_wattbench_document(&text) {
                    set.left_out.push(format!("{}: {what}", p.display()));
                    continue;
                }
            }
            let runs = read_runs(&text).map_err(|source| CompareError::NotAResult {
                path: p.clone(),
                source,
            })?;
            // A merged file counts as the files it was made of.
            let many = runs.len() > 1;
            for (i, run) in runs.into_iter().enumerate() {
                set.files.push(if many {
                    format!("{}#{}", p.display(), i + 1)
                } else {
                    p.display().to_string()
                });
                set.runs.push(run);
            }
        }
        if set.runs.is_empty() {
            return Err(CompareError::Empty(path.to_path_buf()));
        }
        Ok(set)
    }

    /// Runs already in memory (an A/B driver's), each with a label.
    pub fn from_runs(runs: impl IntoIterator<Item = (String, RunFile)>) -> ResultSet {
        let (files, runs) = runs.into_iter().unzip();
        ResultSet {
            files,
            runs,
            left_out: Vec::new(),
        }
    }
}

/// Per-metric thresholds, as fractions (0.05 = 5 %).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Time per call.
    pub time: f64,
    /// Energy per call.
    pub energy: f64,
    /// Peak memory, host and device.
    pub memory: f64,
}

impl Thresholds {
    /// The same threshold for every metric.
    pub fn uniform(t: f64) -> Thresholds {
        Thresholds {
            time: t,
            energy: t,
            memory: t,
        }
    }

    /// The threshold of `metric`.
    pub fn of(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Time => self.time,
            Metric::Energy => self.energy,
            Metric::HostMemory | Metric::DeviceMemory => self.memory,
        }
    }
}

/// How to compare.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Smallest change that counts, per metric.
    pub thresholds: Thresholds,
    /// False-discovery rate for the adjusted tests (default 0.05).
    pub alpha: f64,
    /// Confidence of the bootstrap intervals (default 0.95).
    pub confidence: f64,
    /// Bootstrap resamples per interval (default [`DEFAULT_RESAMPLES`]).
    pub resamples: usize,
    /// Bootstrap seed; each case and metric draws from its own stream derived from it.
    pub seed: u64,
    /// Compare results from different hardware instead of refusing.
    pub allow_different_hardware: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            thresholds: Thresholds::uniform(0.05),
            alpha: 0.05,
            confidence: 0.95,
            resamples: DEFAULT_RESAMPLES,
            seed: DEFAULT_SEED,
            allow_different_hardware: false,
        }
    }
}

impl Options {
    /// Refuse values that make no sense, saying which.
    pub fn validate(&self) -> Result<(), CompareError> {
        let bad = |m: String| Err(CompareError::InvalidOption(m));
        for (name, t) in [
            ("time", self.thresholds.time),
            ("energy", self.thresholds.energy),
            ("memory", self.thresholds.memory),
        ] {
            if !t.is_finite() || t < 0.0 {
                return bad(format!(
                    "the {name} threshold must be a percentage of 0 or more, not {}",
                    t * 100.0
                ));
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad(format!(
                "alpha must lie strictly between 0 and 1, not {}",
                self.alpha
            ));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return bad(format!(
                "the confidence must lie strictly between 0 and 1, not {}",
                self.confidence
            ));
        }
        if self.resamples == 0 {
            return bad("at least one bootstrap resample is needed (1000 or more)".into());
        }
        Ok(())
    }
}

/// What is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Seconds per call.
    Time,
    /// Joules per call (gross total).
    Energy,
    /// Peak RSS of the process, bytes.
    HostMemory,
    /// Peak device memory, bytes.
    DeviceMemory,
}

impl Metric {
    /// The name used in the JSON document and the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Time => "time",
            Metric::Energy => "energy",
            Metric::HostMemory => "host_memory",
            Metric::DeviceMemory => "device_memory",
        }
    }

    /// Unit of its values: `s`, `J` or `B`.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Time => "s",
            Metric::Energy => "J",
            Metric::HostMemory | Metric::DeviceMemory => "B",
        }
    }
}

/// The outcome for one case and metric (see the module's verdict rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Lower beyond the threshold, and (for tested metrics) significantly.
    Faster,
    /// Higher beyond the threshold, and (for tested metrics) significantly.
    Slower,
    /// Within the threshold either way.
    Same,
    /// The data cannot tell.
    Ambiguous,
}

impl Verdict {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Same => "same",
            Verdict::Ambiguous => "ambiguous",
        }
    }
}

/// How a row's verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// Bootstrap interval of the ratio of medians and a Mann–Whitney test, adjusted.
    #[serde(rename = "bootstrap+mann-whitney")]
    RankTest,
    /// One energy window on a side: the meters' stated intervals, worst case; no test.
    #[serde(rename = "meter-interval")]
    MeterInterval,
    /// Energy with two windows a side or more: Welch's t-test and t-interval on the
    /// logarithms of the per-window values (ratio of geometric means), adjusted.
    #[serde(rename = "welch-log")]
    WelchLog,
    /// Peak memory: the range of ratios over the files of each side (two or more a side)
    /// against the threshold; no test.
    #[serde(rename = "threshold")]
    Threshold,
}

/// One case and metric compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseComparison {
    /// The case id.
    pub id: String,
    /// The metric.
    pub metric: Metric,
    /// The outcome.
    pub verdict: Verdict,
    /// NEW / BASE of the medians (energy: of the values with one window a side, of the
    /// geometric means with several).
    pub ratio: f64,
    /// Interval of the ratio: bootstrap percentile interval, or the meters' worst case;
    /// null for memory (no interval) or when none could be formed.
    pub ci: Option<[f64; 2]>,
    /// Benjamini–Hochberg adjusted p-value of the rank test; null when untested.
    pub p_value: Option<f64>,
    /// The rank test's p-value before adjustment; null when untested.
    pub p_raw: Option<f64>,
    /// Base median (energy: value, or geometric mean), in `unit`.
    pub base: f64,
    /// New median (energy: value, or geometric mean), in `unit`.
    pub new: f64,
    /// `s`, `J` or `B`.
    pub unit: String,
    /// Values behind each side `[base, new]`: time samples, energy windows or memory peaks.
    pub n: [usize; 2],
    /// Runs (result files) behind each side `[base, new]`; 0 in documents that predate it.
    #[serde(default)]
    pub runs: [usize; 2],
    /// How the verdict was reached.
    pub method: Method,
    /// Energy rows: the sources the totals add (`measured`, `estimated`, ...), which both
    /// sides share: an estimate's change is the model's, not a measurement's; then, when the
    /// totals are PARTIAL or their host counters were shared, that too (`measured, PARTIAL:
    /// without dram-0`, `measured, host counters shared by 4 GPU workers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Energy rows: the domains of both sides' totals that had no reading, sorted: the
    /// totals compared are PARTIAL (of the other domains only), alike on both sides. Absent
    /// when whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_domains: Vec<String>,
    /// Energy rows: the GPU workers that ran at once on both sides, whose host work the
    /// totals' host counters (CPU package, DRAM) counted too, not this case's alone. Absent
    /// when they were not shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_counters_shared_by: Option<u32>,
}

impl CaseComparison {
    /// Whether a `slower` verdict of this row fails the gate. Not for energy compared from one
    /// window per side ([`Method::MeterInterval`]: its interval is the meters' uncertainty, not
    /// the variation between runs) nor for peak memory ([`Method::Threshold`]: no test and no
    /// false-discovery control, while host peaks move between runs of one build by more than
    /// the default threshold): those rows are reported only.
    pub fn gates(&self) -> bool {
        !matches!(self.method, Method::MeterInterval | Method::Threshold)
    }

    /// The metric and, for energy, the source of its figures: `time`, `energy, estimated`.
    pub fn metric_label(&self) -> String {
        match &self.source {
            Some(src) => format!("{}, {src}", self.metric.as_str()),
            None => self.metric.as_str().to_string(),
        }
    }
}

/// What an energy total is a total of, as `compare` tells quantities apart: the record's
/// [`EnergyBasis`] (sources, meters added, the estimate's inputs), the domains of the total
/// that had no reading (a PARTIAL total, of the others only) and whether its host counters
/// counted other GPU workers' host work too. Two totals are compared only when all of it
/// agrees; an energy row carries what both sides share.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TotalBasis {
    /// The sources, the meters added and the estimate's inputs.
    basis: EnergyBasis,
    /// Domains that count toward the total but had no reading, sorted: while any is, the
    /// total is PARTIAL (it covers the other domains only). Empty when whole.
    missing: Vec<String>,
    /// GPU workers that ran at once while it was measured, when its host counters (CPU
    /// package, DRAM) counted all their host work (the note `wattbench run --devices` writes on
    /// such cases); `None` when they did not.
    shared_by: Option<u32>,
}

impl TotalBasis {
    /// The basis of one case's energy record.
    fn of(e: &CaseEnergy) -> TotalBasis {
        let mut missing: Vec<String> = e.missing_domains().into_iter().map(String::from).collect();
        missing.sort();
        TotalBasis {
            basis: e.basis(),
            missing,
            shared_by: e.notes.iter().find_map(|n| shared_by(n)),
        }
    }

    /// `whole`, or `PARTIAL: without dram-0, gpu0`.
    fn coverage(&self) -> String {
        if self.missing.is_empty() {
            "whole".into()
        } else {
            format!("PARTIAL: without {}", self.missing.join(", "))
        }
    }

    /// `not shared`, or `shared by 4 GPU workers`.
    fn sharing(&self) -> String {
        match self.shared_by {
            None => "not shared".into(),
            Some(n) => format!("shared by {n} GPU workers"),
        }
    }

    /// The sources, then what a reader of the figure must know: `measured`, `measured,
    /// PARTIAL: without dram-0`, `measured, host counters shared by 4 GPU workers`.
    fn label(&self) -> String {
        let mut out = self.basis.sources.clone();
        if !self.missing.is_empty() {
            out.push_str(&format!(", {}", self.coverage()));
        }
        if self.shared_by.is_some() {
            out.push_str(&format!(", host counters {}", self.sharing()));
        }
        out
    }
}

/// The workers `N` of a note `measured while N GPU workers ran at once: ...`, the words
/// `wattbench run --devices` writes on the cases whose total adds a host counter when its
/// workers ran at once.
fn shared_by(note: &str) -> Option<u32> {
    let rest = note.strip_prefix("measured while ")?;
    let (n, rest) = rest.split_once(' ')?;
    rest.starts_with("GPU workers ran at once")
        .then(|| n.parse().ok())
        .flatten()
}

/// Cases found on one side only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Unmatched {
    /// Ids only in base.
    pub base_only: Vec<String>,
    /// Ids only in new.
    pub new_only: Vec<String>,
}

/// A matched case, or one metric of it, left out, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotCompared {
    /// The case id.
    pub id: String,
    /// The metric left out; null when the whole case is (skipped or failed on a side).
    pub metric: Option<Metric>,
    /// Why.
    pub reason: String,
}

/// How a case that worked on base does not on new.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Broken {
    /// Failed (wrong result or an error) in a new run, and either base never failed it or
    /// new passed it in no run.
    Failed,
    /// Skipped in every new run.
    Skipped,
    /// In no new run.
    Missing,
}

/// A case ok on base that new failed, skipped or lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regressed {
    /// The case id.
    pub id: String,
    /// What happened to it on new.
    pub how: Broken,
    /// New's reason (the failure's message, the skip's reason).
    pub reason: String,
}

/// Rows per verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `faster` rows.
    pub faster: usize,
    /// `slower` rows.
    pub slower: usize,
    /// `same` rows.
    pub same: usize,
    /// `ambiguous` rows.
    pub ambiguous: usize,
    /// Cases ok on base that failed on new (a gate fails on them, as on `slower`).
    #[serde(default)]
    pub failed: usize,
    /// Cases ok on base that new skipped or does not have (a gate of two runs of the same
    /// options, `ab`, fails on them; `compare` reports them, as new may be another suite).
    #[serde(default)]
    pub lost: usize,
}

/// One side as the comparison saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The result files read, in order.
    pub files: Vec<String>,
    /// Distinct hardware fingerprints (`Environment::hardware_fingerprint`).
    pub hardware: Vec<String>,
    /// Distinct software fingerprints (`Environment::software_fingerprint`).
    pub software: Vec<String>,
    /// Distinct commits the binaries were built from (unknown ones left out).
    pub git_commits: Vec<String>,
    /// Distinct sets of the environment variables that change what is measured
    /// (`Environment::variables_fingerprint`; files that predate them left out).
    #[serde(default)]
    pub variables: Vec<String>,
    /// Distinct build profiles of the binaries (`release`, `debug`; files that predate the
    /// record left out).
    #[serde(default)]
    pub build_profiles: Vec<String>,
}

/// A whole comparison: what `wattbench compare --format json` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The baseline.
    pub base: Side,
    /// The new side.
    pub new: Side,
    /// Thresholds used, as fractions.
    pub threshold: Thresholds,
    /// False-discovery rate of the adjusted tests.
    pub alpha: f64,
    /// Confidence of the intervals.
    pub confidence: f64,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// One row per matched case and compared metric, in base order, time first.
    pub cases: Vec<CaseComparison>,
    /// Cases on one side only.
    pub unmatched: Unmatched,
    /// Matched cases or metrics left out, with why.
    pub not_compared: Vec<NotCompared>,
    /// Cases ok on base that new failed, skipped or does not have.
    #[serde(default)]
    pub regressed: Vec<Regressed>,
    /// What a reader must know: software or hardware that differs, pooled or interrupted
    /// runs, cases that failed in some of a side's runs.
    pub notes: Vec<String>,
    /// Rows per verdict.
    pub summary: Summary,
}

impl Comparison {
    /// Whether any row that may fail a gate ([`CaseComparison::gates`]) is `slower` (the
    /// command then exits 1 unless told not to). Energy compared from one window per side and
    /// peak memory are reported but never fail the gate. Several runs per side (the A/B
    /// driver) gate energy.
    pub fn has_slower(&self) -> bool {
        self.cases
            .iter()
            .any(|r| r.verdict == Verdict::Slower && r.gates())
    }

    /// Whether a gate must fail: a `slower` row that may fail it ([`Comparison::has_slower`]),
    /// a case ok on base that failed on new, or (`lost_fails`: two runs of the same options,
    /// as `ab` makes) one that new skipped or lacks.
    pub fn fails_gate(&self, lost_fails: bool) -> bool {
        self.has_slower() || self.summary.failed > 0 || (lost_fails && self.summary.lost > 0)
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a comparison serialises")
    }
}

/// The verdict of one row (the rule in the module documentation). `p_adjusted` is used by
/// [`Method::RankTest`] only; every method decides on `ci` (none: ambiguous), `ratio` is
/// reported only.
pub fn verdict(
    method: Method,
    _ratio: f64,
    ci: Option<[f64; 2]>,
    p_adjusted: Option<f64>,
    threshold: f64,
    alpha: f64,
) -> Verdict {
    let (up, down) = (1.0 + threshold, 1.0 / (1.0 + threshold));
    match method {
        Method::Threshold => match ci {
            Some([lo, _]) if lo > up => Verdict::Slower,
            Some([_, hi]) if hi < down => Verdict::Faster,
            Some([lo, hi]) if lo >= down && hi <= up => Verdict::Same,
            _ => Verdict::Ambiguous,
        },
        Method::MeterInterval => match ci {
            Some([lo, _]) if lo > up => Verdict::Slower,
            Some([_, hi]) if hi < down => Verdict::Faster,
            _ => Verdict::Ambiguous,
        },
        Method::RankTest | Method::WelchLog => {
            let Some([lo, hi]) = ci else {
                return Verdict::Ambiguous;
            };
            let significant = p_adjusted.is_some_and(|p| p < alpha);
            if significant && lo > up {
                Verdict::Slower
            } else if significant && hi < down {
                Verdict::Faster
            } else if lo >= down && hi <= up {
                Verdict::Same
            } else {
                Verdict::Ambiguous
            }
        }
    }
}

/// One occurrence of a case id in a side's files.
struct Entry<'a> {
    status: Status,
    reason: Option<&'a str>,
    time: Option<&'a TimeStats>,
    energy: Option<&'a CaseEnergy>,
    memory: &'a Memory,
}

/// The side's case ids in first-seen order, and every occurrence of each.
fn index(set: &ResultSet) -> (Vec<String>, HashMap<String, Vec<Entry<'_>>>) {
    let mut all: Vec<(&str, Entry<'_>)> = Vec::new();
    for run in &set.runs {
        for c in &run.cases {
            all.push((
                &c.id,
                Entry {
                    status: c.status,
                    reason: c.reason.as_deref(),
                    time: c.time.as_ref(),
                    energy: c.energy.as_ref(),
                    memory: &c.memory,
                },
            ));
        }
        for t in &run.trainings {
            all.push((
                &t.id,
                Entry {
                    status: t.status,
                    reason: t.reason.as_deref(),
                    time: t.time.as_ref(),
                    energy: Some(&t.energy),
                    memory: &t.memory,
                },
            ));
        }
    }
    let mut order = Vec::new();
    let mut map: HashMap<String, Vec<Entry<'_>>> = HashMap::new();
    for (id, e) in all {
        if !map.contains_key(id) {
            order.push(id.to_string());
        }
        map.entry(id.to_string()).or_default().push(e);
    }
    (order, map)
}

fn distinct(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

fn describe(set: &ResultSet) -> Side {
    let envs = || set.runs.iter().map(|r| &r.environment);
    Side {
        files: set.files.clone(),
        hardware: distinct(envs().map(|e| e.hardware_fingerprint())),
        software: distinct(envs().map(|e| e.software_fingerprint())),
        git_commits: distinct(envs().filter_map(|e| e.git_commit.clone())),
        variables: distinct(envs().filter_map(|e| e.variables_fingerprint())),
        build_profiles: distinct(envs().filter_map(|e| e.software.get("build-profile").cloned())),
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Skipped => "skipped",
        Status::Failed => "failed",
    }
}

/// Why a side has no usable occurrence: the first one's status and reason.
fn why_not_ok(entries: &[Entry<'_>]) -> String {
    entries
        .iter()
        .find(|e| e.status != Status::Ok)
        .map(|e| {
            format!(
                "{}: {}",
                status_word(e.status),
                e.reason.unwrap_or("no reason given")
            )
        })
        .unwrap_or_else(|| "no result".into())
}

fn few(ids: &[String]) -> String {
    let mut s: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
    if ids.len() > 3 {
        s.push("…");
    }
    if s.is_empty() {
        "no cases".into()
    } else {
        s.join(", ")
    }
}

/// The rows, omissions and notes of a comparison, added to case by case.
struct Collector<'o> {
    opts: &'o Options,
    rows: Vec<CaseComparison>,
    not_compared: Vec<NotCompared>,
    regressed: Vec<Regressed>,
    notes: Vec<String>,
}

impl Collector<'_> {
    fn skip(&mut self, id: &str, metric: Option<Metric>, reason: String) {
        self.not_compared.push(NotCompared {
            id: id.to_string(),
            metric,
            reason,
        });
    }

    /// A row from two distributions, each a list of runs: bootstrap interval (drawn by run
    /// when a side has several) and rank test of the pooled values.
    fn tested(&mut self, id: &str, metric: Metric, b_runs: &[Vec<f64>], n_runs: &[Vec<f64>]) {
        let (b, n) = (&b_runs.concat()[..], &n_runs.concat()[..]);
        let (mb, mn) = (stats::median(b), stats::median(n));
        if !(mb > 0.0 && mn.is_finite()) {
            return self.skip(
                id,
                Some(metric),
                format!("the base median is {mb}: no ratio"),
            );
        }
        let seed = self.opts.seed ^ stats::stable_hash(&[id, metric.as_str()]);
        let b_refs: Vec<&[f64]> = b_runs.iter().map(Vec::as_slice).collect();
        let n_refs: Vec<&[f64]> = n_runs.iter().map(Vec::as_slice).collect();
        let ci = stats::ratio_of_medians_ci_clustered(
            &b_refs,
            &n_refs,
            self.opts.resamples,
            self.opts.confidence,
            seed,
        );
        let p = stats::mann_whitney(b, n).p_value;
        self.rows.push(CaseComparison {
            id: id.to_string(),
            metric,
            verdict: Verdict::Ambiguous,
            ratio: mn / mb,
            ci,
            p_value: None,
            p_raw: Some(p),
            base: mb,
            new: mn,
            unit: metric.unit().into(),
            n: [b.len(), n.len()],
            runs: [b_runs.len(), n_runs.len()],
            method: Method::RankTest,
            source: None,
            missing_domains: Vec::new(),
            host_counters_shared_by: None,
        });
    }

    fn time(&mut self, id: &str, b: &[&Entry<'_>], n: &[&Entry<'_>]) {
        // One list of samples per run.
        let samples = |es: &[&Entry<'_>]| -> Vec<Vec<f64>> {
            es.iter()
                .filter_map(|e| e.time)
                .map(|t| {
                    (t.samples_s.iter().copied())
                        .filter(|v| v.is_finite())
                        .collect::<Vec<f64>>()
                })
                .filter(|r| !r.is_empty())
                .collect()
        };
        let (bs, ns) = (samples(b), samples(n));
        match (bs.is_empty(), ns.is_empty()) {
            (true, true) => {}
            (true, false) | (false, true) => self.skip(
                id,
                Some(Metric::Time),
                format!(
                    "no timing samples on {}",
                    if bs.is_empty() { "base" } else { "new" }
                ),
            ),
            (false, false) => self.tested(id, Metric::Time, &bs, &ns),
        }
    }

    fn energy(&mut self, id: &str, b: &[&Entry<'_>], n: &[&Entry<'_>]) {
        type Window = (Interval, TotalBasis);
        let windows = |es: &[&Entry<'_>]| -> Vec<Window> {
            es.iter()
                .filter_map(|e| e.energy)
                .filter_map(|en| en.total_joules_per_iter.map(|iv| (iv, TotalBasis::of(en))))
                .filter(|(iv, _)| iv.value.is_finite())
                .collect()
        };
        let (bw, nw) = (windows(b), windows(n));
        if bw.is_empty() && nw.is_empty() {
            return;
        }
        if bw.is_empty() || nw.is_empty() {
            let side = if bw.is_empty() { "base" } else { "new" };
            return self.skip(
                id,
                Some(Metric::Energy),
                format!("no energy reading on {side}"),
            );
        }
        // The same quantity on both sides, or no comparison: the same sources, the same
        // domains without a reading, the same meters added, for an estimate the same model,
        // and host counters shared alike.
        type Part = fn(&TotalBasis) -> String;
        let parts: [(&str, Part, &str); 5] = [
            (
                "sources",
                |x| x.basis.sources.clone(),
                "not the same quantity",
            ),
            (
                "coverage",
                TotalBasis::coverage,
                "a PARTIAL total leaves out the domains that had no reading, so it is not the \
                 same quantity as a whole total, nor as one partial in another way",
            ),
            (
                "meters",
                |x| x.basis.meters.clone(),
                "the totals add different meters (another --gpus, a counter that could not \
                 be read), not the same quantity",
            ),
            (
                "estimate models",
                |x| x.basis.model.clone(),
                "the estimate's inputs changed (its TDP or threads), so its figures moved by \
                 the model, not by the code",
            ),
            (
                "host counters",
                TotalBasis::sharing,
                "host counters (CPU package, DRAM) shared by GPU workers that ran at once \
                 count every worker's host work, not this case's alone (--devices-sequential \
                 runs them one after another)",
            ),
        ];
        for (what, part, why) in parts {
            let label = |w: &[Window]| distinct(w.iter().map(|(_, x)| part(x)));
            let (bl, nl) = (label(&bw), label(&nw));
            if bl != nl || bl.len() > 1 {
                let show = |l: Vec<String>| {
                    let l: Vec<String> = l
                        .into_iter()
                        .map(|s| if s.is_empty() { "none".into() } else { s })
                        .collect();
                    l.join(", ")
                };
                return self.skip(
                    id,
                    Some(Metric::Energy),
                    format!(
                        "energy from different {what} (base {}; new {}): {why}",
                        show(bl),
                        show(nl)
                    ),
                );
            }
        }
        let basis = &bw[0].1;
        let source = Some(basis.label());
        let (missing_domains, host_counters_shared_by) = (basis.missing.clone(), basis.shared_by);
        let values = |w: &[Window]| -> Vec<f64> { w.iter().map(|(iv, _)| iv.value).collect() };
        if bw.len() >= 2 && nw.len() >= 2 {
            // One value per window, each window its own run: Welch on the logarithms.
            let Some(w) = stats::welch_log(&values(&bw), &values(&nw), self.opts.confidence) else {
                return self.skip(
                    id,
                    Some(Metric::Energy),
                    "an energy value of 0 J or less on a side: no ratio".into(),
                );
            };
            self.rows.push(CaseComparison {
                id: id.to_string(),
                metric: Metric::Energy,
                verdict: Verdict::Ambiguous,
                ratio: w.ratio,
                ci: w.ci.iter().all(|v| v.is_finite()).then_some(w.ci),
                p_value: None,
                p_raw: Some(w.p_value),
                base: w.base,
                new: w.new,
                unit: "J".into(),
                n: [bw.len(), nw.len()],
                runs: [bw.len(), nw.len()],
                method: Method::WelchLog,
                source,
                missing_domains,
                host_counters_shared_by,
            });
            return;
        }
        // One window on a side: the meters' intervals, worst case.
        let hull = |w: &[Window]| -> Interval {
            Interval {
                value: stats::median(&values(w)),
                low: w.iter().map(|(iv, _)| iv.low).fold(f64::INFINITY, f64::min),
                high: w
                    .iter()
                    .map(|(iv, _)| iv.high)
                    .fold(f64::NEG_INFINITY, f64::max),
            }
        };
        let (bi, ni) = (hull(&bw), hull(&nw));
        if bi.value <= 0.0 {
            return self.skip(
                id,
                Some(Metric::Energy),
                format!("the base energy is {} J: no ratio", bi.value),
            );
        }
        let ci = [ni.low / bi.high, ni.high / bi.low];
        self.rows.push(CaseComparison {
            id: id.to_string(),
            metric: Metric::Energy,
            verdict: Verdict::Ambiguous,
            ratio: ni.value / bi.value,
            ci: (bi.low > 0.0 && ci.iter().all(|v| v.is_finite())).then_some(ci),
            p_value: None,
            p_raw: None,
            base: bi.value,
            new: ni.value,
            unit: "J".into(),
            n: [bw.len(), nw.len()],
            runs: [bw.len(), nw.len()],
            method: Method::MeterInterval,
            source,
            missing_domains,
            host_counters_shared_by,
        });
    }

    fn memory(&mut self, id: &str, metric: Metric, b: &[&Entry<'_>], n: &[&Entry<'_>]) {
        let host = metric == Metric::HostMemory;
        let read = |e: &Entry<'_>| {
            if host {
                e.memory.host_peak_rss_bytes
            } else {
                e.memory.device_peak_bytes
            }
        };
        let (bv, nv): (Vec<u64>, Vec<u64>) = (
            b.iter().filter_map(|e| read(e)).collect(),
            n.iter().filter_map(|e| read(e)).collect(),
        );
        if bv.is_empty() && nv.is_empty() {
            return;
        }
        if bv.is_empty() || nv.is_empty() {
            let side = if bv.is_empty() { "base" } else { "new" };
            return self.skip(id, Some(metric), format!("no peak reading on {side}"));
        }
        if host {
            let unreset = |es: &[&Entry<'_>]| {
                es.iter()
                    .any(|e| e.memory.host_peak_rss_bytes.is_some() && !e.memory.host_peak_reset)
            };
            let sides: Vec<&str> = [("base", unreset(b)), ("new", unreset(n))]
                .into_iter()
                .filter_map(|(s, u)| u.then_some(s))
                .collect();
            if !sides.is_empty() {
                return self.skip(
                    id,
                    Some(metric),
                    format!(
                        "the peak RSS was not reset per case on {} (it covers the process so \
                         far, so it depends on the cases before)",
                        sides.join(" and ")
                    ),
                );
            }
        }
        let med = |v: &[u64]| stats::median(&v.iter().map(|&x| x as f64).collect::<Vec<_>>());
        let (mb, mn) = (med(&bv), med(&nv));
        if mb <= 0.0 || bv.contains(&0) {
            return self.skip(id, Some(metric), "a base peak is 0 B: no ratio".into());
        }
        let range = |v: &[u64]| {
            let (lo, hi) = (v.iter().min(), v.iter().max());
            (*lo.unwrap_or(&0) as f64, *hi.unwrap_or(&0) as f64)
        };
        let ((b_lo, b_hi), (n_lo, n_hi)) = (range(&bv), range(&nv));
        let ci = (bv.len() >= 2 && nv.len() >= 2).then_some([n_lo / b_hi, n_hi / b_lo]);
        self.rows.push(CaseComparison {
            id: id.to_string(),
            metric,
            verdict: Verdict::Ambiguous,
            ratio: mn / mb,
            ci,
            p_value: None,
            p_raw: None,
            base: mb,
            new: mn,
            unit: "B".into(),
            n: [bv.len(), nv.len()],
            runs: [bv.len(), nv.len()],
            method: Method::Threshold,
            source: None,
            missing_domains: Vec::new(),
            host_counters_shared_by: None,
        });
    }

    fn case(&mut self, id: &str, b: &[Entry<'_>], n: &[Entry<'_>]) {
        fn ok<'e, 'a>(es: &'e [Entry<'a>]) -> Vec<&'e Entry<'a>> {
            es.iter().filter(|e| e.status == Status::Ok).collect()
        }
        let (bo, no) = (ok(b), ok(n));
        // A case base ran well and new did not: a correctness regression, whatever the times.
        let first = |es: &[Entry<'_>], s: Status| {
            es.iter()
                .find(|e| e.status == s)
                .map(|e| e.reason.unwrap_or("no reason given").to_string())
        };
        // A base that failed it too makes a new failure flaky rather than new's, but only
        // while new still passes it in some run: one new never passes is a failure, however
        // often base failed it (as one new skipped in every run is lost).
        let lenient = b.iter().any(|e| e.status == Status::Failed) && !no.is_empty();
        if !bo.is_empty() {
            if let (Some(reason), false) = (first(n, Status::Failed), lenient) {
                self.regressed.push(Regressed {
                    id: id.into(),
                    how: Broken::Failed,
                    reason,
                });
            } else if no.is_empty() {
                if let Some(reason) = first(n, Status::Skipped) {
                    self.regressed.push(Regressed {
                        id: id.into(),
                        how: Broken::Skipped,
                        reason,
                    });
                }
            }
        }
        if bo.is_empty() || no.is_empty() {
            let mut why = Vec::new();
            if bo.is_empty() {
                why.push(format!("base {}", why_not_ok(b)));
            }
            if no.is_empty() {
                why.push(format!("new {}", why_not_ok(n)));
            }
            return self.skip(id, None, why.join("; "));
        }
        for (side, all, oks) in [("base", b, &bo), ("new", n, &no)] {
            if oks.len() < all.len() {
                self.notes.push(format!(
                    "{id}: {} of the {} {side} runs were not ok ({}); only the ok ones are \
                     compared",
                    all.len() - oks.len(),
                    all.len(),
                    why_not_ok(all)
                ));
            }
        }
        self.time(id, &bo, &no);
        self.energy(id, &bo, &no);
        self.memory(id, Metric::HostMemory, &bo, &no);
        self.memory(id, Metric::DeviceMemory, &bo, &no);
    }
}

/// The Benjamini–Hochberg adjusted p-value of each row (NaN where untested), one family of
/// tests per metric (time, energy): each metric's expected share of false discoveries is held
/// at alpha, and a few energy tests are not drowned among hundreds of time tests (nor the
/// other way round).
fn adjust_per_metric(rows: &[CaseComparison]) -> Vec<f64> {
    let mut adjusted = vec![f64::NAN; rows.len()];
    for metric in [
        Metric::Time,
        Metric::Energy,
        Metric::HostMemory,
        Metric::DeviceMemory,
    ] {
        let idx: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].metric == metric)
            .collect();
        let raw: Vec<f64> = (idx.iter())
            .map(|&i| rows[i].p_raw.unwrap_or(f64::NAN))
            .collect();
        for (&i, a) in idx.iter().zip(stats::benjamini_hochberg(&raw)) {
            adjusted[i] = a;
        }
    }
    adjusted
}

/// Compare `new` with `base` (see the module documentation for what and how).
///
/// Refuses (with a [`CompareError`]) invalid options, sides measured on different hardware
/// unless [`Options::allow_different_hardware`], and sides with no case id in common.
pub fn compare(
    base: &ResultSet,
    new: &ResultSet,
    opts: &Options,
) -> Result<Comparison, CompareError> {
    opts.validate()?;
    let (bside, nside) = (describe(base), describe(new));
    let mut notes = Vec::new();
    for (name, side) in [("base", &bside), ("new", &nside)] {
        if side.hardware.len() > 1 {
            if !opts.allow_different_hardware {
                return Err(CompareError::MixedHardware {
                    side: name,
                    fingerprints: side.hardware.clone(),
                });
            }
            notes.push(format!(
                "the {name} files come from different hardware ({}), pooled as allowed",
                side.hardware.join(" | ")
            ));
        }
    }
    if bside.hardware != nside.hardware {
        if !opts.allow_different_hardware {
            return Err(CompareError::DifferentHardware {
                base: bside.hardware.join(" | "),
                new: nside.hardware.join(" | "),
            });
        }
        notes.push(format!(
            "different hardware, compared as allowed: the ratios compare machines as well as \
             code (base: {}; new: {})",
            bside.hardware.join(" | "),
            nside.hardware.join(" | ")
        ));
    }
    // A side is meant to be one build: files of several commits pool two builds' runs, and a
    // change between them reads as noise, or as a change of the other side.
    for (name, side) in [("base", &bside), ("new", &nside)] {
        if side.git_commits.len() > 1 {
            notes.push(format!(
                "the {name} files name {} git commits ({}): they pool runs of different \
                 builds, so a difference between those builds shows as noise, or as a change \
                 the other side did not make; compare runs of one build a side",
                side.git_commits.len(),
                side.git_commits.join(", ")
            ));
        }
    }
    // Known on both sides (files that predate the record say nothing) and different: a debug
    // build is many times slower than a release one.
    if !bside.build_profiles.is_empty()
        && !nside.build_profiles.is_empty()
        && bside.build_profiles != nside.build_profiles
    {
        notes.push(format!(
            "the build profile differs (base: {}; new: {}): a debug build is many times slower \
             than a release one, so the comparison says nothing of the code",
            bside.build_profiles.join(", "),
            nside.build_profiles.join(", ")
        ));
    }
    if bside.software != nside.software {
        notes.push(format!(
            "the software differs (base: {}; new: {}): a change there can move the numbers \
             without any change of ours",
            bside.software.join(" | "),
            nside.software.join(" | ")
        ));
    }
    // Variables known on both sides (files that predate them say nothing) that differ: a
    // thread count or the GPUs used moves numbers as much as code does.
    if !bside.variables.is_empty()
        && !nside.variables.is_empty()
        && bside.variables != nside.variables
    {
        let show = |v: &[String]| {
            let v: Vec<&str> = v
                .iter()
                .map(|s| if s.is_empty() { "none set" } else { s.as_str() })
                .collect();
            v.join(" | ")
        };
        notes.push(format!(
            "the environment differs (base: {}; new: {}): thread counts, the GPUs used or \
             TF32 move the numbers without any change of code",
            show(&bside.variables),
            show(&nside.variables)
        ));
    }
    for (name, set) in [("base", base), ("new", new)] {
        notes.extend(
            set.left_out
                .iter()
                .map(|f| format!("{name}: left out of its folder, {f}")),
        );
        if set.runs.len() > 1 {
            notes.push(format!(
                "{name}: {} result files pooled per case id (the time interval resamples runs, \
                 then samples within them; one energy window and one memory peak per file)",
                set.runs.len()
            ));
        }
        for (file, run) in set.files.iter().zip(&set.runs) {
            if run.interrupted {
                notes.push(format!(
                    "{name}: {file} was interrupted: it holds only the cases it completed"
                ));
            }
        }
    }

    let (border, bmap) = index(base);
    let (norder, nmap) = index(new);
    let matched: Vec<&String> = border.iter().filter(|id| nmap.contains_key(*id)).collect();
    let unmatched = Unmatched {
        base_only: border
            .iter()
            .filter(|id| !nmap.contains_key(*id))
            .cloned()
            .collect(),
        new_only: norder
            .iter()
            .filter(|id| !bmap.contains_key(*id))
            .cloned()
            .collect(),
    };
    if matched.is_empty() {
        return Err(CompareError::NothingInCommon {
            base: few(&border),
            new: few(&norder),
        });
    }

    let mut col = Collector {
        opts,
        rows: Vec::new(),
        not_compared: Vec::new(),
        regressed: Vec::new(),
        notes,
    };
    for id in matched {
        col.case(id, &bmap[id], &nmap[id]);
    }
    // Cases base ran well that new does not have at all.
    for id in &unmatched.base_only {
        if bmap[id].iter().any(|e| e.status == Status::Ok) {
            col.regressed.push(Regressed {
                id: id.clone(),
                how: Broken::Missing,
                reason: "in no new run".into(),
            });
        }
    }
    if !new.runs.iter().all(|r| !r.interrupted) {
        let missing = col
            .regressed
            .iter()
            .filter(|r| r.how == Broken::Missing)
            .count();
        if missing > 0 {
            col.notes.push(format!(
                "{missing} case(s) ok on base are missing on new, which was interrupted: they \
                 may simply not have been reached"
            ));
        }
    }

    // A CPU allocation is not another machine, but it moves CPU timings: say so.
    let usable = |set: &ResultSet| {
        distinct(
            (set.runs.iter())
                .filter_map(|r| r.environment.host.usable_cores)
                .map(|n| n.to_string()),
        )
    };
    let (bu, nu) = (usable(base), usable(new));
    if !bu.is_empty() && !nu.is_empty() && bu != nu {
        col.notes.push(format!(
            "the CPUs the runs could use differ (base: {}; new: {}): an allocation (taskset, \
             Slurm's --cpus-per-task, a container's CPU limit) moves CPU timings without any \
             change of code",
            bu.join(", "),
            nu.join(", ")
        ));
    }

    // What the number of runs behind each case lets the statistics say (measured on this
    // project's machines: results/regression-evidence and the audit's simulations). Counted
    // per case: a folder may hold runs of other suites, which add nothing to this one.
    let by_runs = |want: fn(usize) -> bool| -> Vec<String> {
        (col.rows.iter())
            .filter(|r| r.metric == Metric::Time && want(r.runs[0].min(r.runs[1])))
            .map(|r| r.id.clone())
            .collect()
    };
    let timed = col.rows.iter().filter(|r| r.metric == Metric::Time).count();
    let which = |ids: &[String]| {
        if ids.len() == timed {
            "every case".to_string()
        } else {
            format!("{} of {timed} cases ({})", ids.len(), few(ids))
        }
    };
    let (one, some) = (by_runs(|r| r == 1), by_runs(|r| (2..=4).contains(&r)));
    if !one.is_empty() {
        col.notes.push(format!(
            "one run on a side for {}: the interval and the rank test see the noise within \
             each run, not between runs (another load, clocks, temperature), which can exceed \
             the threshold: a slower or faster there may be noise; compare several runs a \
             side, interleaved (`wattbench ab`), before trusting a verdict",
            which(&one)
        ));
    }
    if !some.is_empty() {
        let nominal = format!("{:.0} %", opts.confidence * 100.0);
        col.notes.push(format!(
            "2 to 4 runs on a side for {}: with so few runs the run-level interval covers the \
             true ratio less often than its nominal {}: drawing a few runs with replacement \
             understates their spread, and a 95 % interval covered it about 70 % of the time \
             with 2 runs a side, 85 % with 3 and 90 % with 4 in simulation (93–94 % with 6 or \
             8), so a verdict near the threshold may be noise; give more runs (`ab --rounds 6` \
             or more)",
            which(&some),
            nominal
        ));
    }
    if (col.rows.iter()).any(|r| r.metric == Metric::Time && r.runs[0].max(r.runs[1]) > 1) {
        col.notes.push(
            "the rank test pools the samples of every run of a side, which are not independent \
             (a run's samples share its conditions): its p-values are too small, and the \
             verdicts rest on the run-level interval lying beyond the threshold"
                .into(),
        );
    }

    let adjusted = adjust_per_metric(&col.rows);
    let mut summary = Summary::default();
    for r in &col.regressed {
        match r.how {
            Broken::Failed => summary.failed += 1,
            Broken::Skipped | Broken::Missing => summary.lost += 1,
        }
    }
    for (row, adj) in col.rows.iter_mut().zip(adjusted) {
        row.p_value = row.p_raw.map(|_| adj);
        row.verdict = verdict(
            row.method,
            row.ratio,
            row.ci,
            row.p_value,
            opts.thresholds.of(row.metric),
            opts.alpha,
        );
        *match row.verdict {
            Verdict::Faster => &mut summary.faster,
            Verdict::Slower => &mut summary.slower,
            Verdict::Same => &mut summary.same,
            Verdict::Ambiguous => &mut summary.ambiguous,
        } += 1;
    }
    let single = col
        .rows
        .iter()
        .filter(|r| r.method == Method::MeterInterval)
        .count();
    if single > 0 {
        col.notes.push(format!(
            "energy of {single} case(s) compared from one window per side: the interval is the \
             meters' stated uncertainty, not the variation between runs, so a slower or faster \
             there rests on one window each; pool several runs per side for a test (these rows never fail the gate)"
        ));
    }
    Ok(Comparison {
        schema_version: SCHEMA_VERSION,
        base: bside,
        new: nside,
        threshold: opts.thresholds,
        alpha: opts.alpha,
        confidence: opts.confidence,
        resamples: opts.resamples,
        seed: opts.seed,
        cases: col.rows,
        unmatched,
        not_compared: col.not_compared,
        regressed: col.regressed,
        notes: col.notes,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::tests::synthetic as noisy;
    use wattbench_core::energy::Source;
    use wattbench_core::result::CaseResult;
    use wattbench_core::testing::{self, case_energy as energy, timed_case as case};

    fn run(cases: Vec<CaseResult>) -> RunFile {
        testing::run_file("2025-01-01T00:00:00Z", cases)
    }

    fn set(runs: Vec<RunFile>) -> ResultSet {
        ResultSet::from_runs(
            runs.into_iter()
                .enumerate()
                .map(|(i, r)| (format!("run{i}.json"), r)),
        )
    }

    /// `cases` cases, each `n` samples around 1 ms times `factor(i)`, seeds from `seed`.
    fn suite(cases: usize, n: usize, seed: u64, factor: impl Fn(usize) -> f64) -> ResultSet {
        let cs = (0..cases)
            .map(|i| {
                case(
                    &format!("c{i}"),
                    noisy(1e-3 * factor(i), n, seed * 100_000 + i as u64),
                )
            })
            .collect();
        set(vec![run(cs)])
    }

    fn rows(c: &Comparison, metric: Metric) -> Vec<&CaseComparison> {
        c.cases.iter().filter(|r| r.metric == metric).collect()
    }

    #[test]
    fn the_verdict_rule() {
        use Method::*;
        use Verdict::*;
        let v = |m, r, ci, p| verdict(m, r, ci, p, 0.05, 0.05);
        // Significant and the whole interval beyond 1.05: slower; below 1/1.05: faster.
        assert_eq!(v(RankTest, 1.2, Some([1.1, 1.3]), Some(0.001)), Slower);
        assert_eq!(v(RankTest, 0.8, Some([0.7, 0.9]), Some(0.001)), Faster);
        // Beyond the threshold but not significant: the data cannot tell.
        assert_eq!(v(RankTest, 1.2, Some([1.1, 1.3]), Some(0.2)), Ambiguous);
        // Significant but straddling the threshold: not proven.
        assert_eq!(v(RankTest, 1.06, Some([1.01, 1.1]), Some(0.001)), Ambiguous);
        // Inside [1/1.05, 1.05], significant or not: same.
        assert_eq!(v(RankTest, 1.02, Some([1.01, 1.03]), Some(0.001)), Same);
        assert_eq!(v(RankTest, 1.0, Some([0.96, 1.04]), Some(1.0)), Same);
        // The band is symmetric on a log scale: 1/1.05 = 0.952.
        assert_eq!(v(RankTest, 0.96, Some([0.953, 0.97]), Some(0.5)), Same);
        assert_eq!(v(RankTest, 0.96, Some([0.95, 0.97]), Some(0.5)), Ambiguous);
        assert_eq!(v(RankTest, 1.0, None, Some(0.001)), Ambiguous);
        // One energy window: separation beyond the threshold, else ambiguous, never same.
        assert_eq!(v(MeterInterval, 1.5, Some([1.2, 1.8]), None), Slower);
        assert_eq!(v(MeterInterval, 0.6, Some([0.5, 0.9]), None), Faster);
        assert_eq!(v(MeterInterval, 1.0, Some([0.99, 1.01]), None), Ambiguous);
        // Memory: the range of ratios, with no test; no range (one file a side): ambiguous.
        assert_eq!(v(Threshold, 1.1, Some([1.06, 1.2]), None), Slower);
        assert_eq!(v(Threshold, 0.9, Some([0.8, 0.95]), None), Faster);
        assert_eq!(v(Threshold, 1.0, Some([0.96, 1.04]), None), Same);
        assert_eq!(v(Threshold, 1.3, None, None), Ambiguous);
    }

    #[test]
    fn a_side_against_itself_is_never_slower() {
        let a = suite(5, 20, 1, |_| 1.0);
        let c = compare(&a, &a, &Options::default()).unwrap();
        assert_eq!(c.summary.slower + c.summary.faster, 0);
        for r in rows(&c, Metric::Time) {
            assert_eq!((r.ratio, r.p_raw), (1.0, Some(1.0)), "{r:?}");
            let [lo, hi] = r.ci.unwrap();
            assert!(lo <= 1.0 && 1.0 <= hi);
        }
        // Time and host memory per case.
        assert_eq!(c.cases.len(), 10);
        assert!(c.unmatched.base_only.is_empty() && c.not_compared.is_empty());
    }

    #[test]
    fn a_real_change_is_slower_or_faster_and_a_small_one_same() {
        let base = suite(3, 40, 1, |_| 1.0);
        for (factor, want) in [
            (1.2, Verdict::Slower),
            (1.0 / 1.2, Verdict::Faster),
            (1.0, Verdict::Same),
        ] {
            let new = suite(3, 40, 2, |_| factor);
            let c = compare(&base, &new, &Options::default()).unwrap();
            for r in rows(&c, Metric::Time) {
                assert_eq!(r.verdict, want, "×{factor}: {r:?}");
                let [lo, hi] = r.ci.unwrap();
                assert!(lo < factor * 1.03 && factor / 1.03 < hi, "{r:?}");
            }
        }
    }

    #[test]
    fn a_500_case_suite_against_a_rerun_does_not_cry_wolf() {
        // Same distribution on both sides, fresh noise: every difference is chance.
        let (base, new) = (suite(500, 30, 1, |_| 1.0), suite(500, 30, 2, |_| 1.0));
        let opts = Options {
            resamples: 1000,
            ..Options::default()
        };
        let c = compare(&base, &new, &opts).unwrap();
        let nominal = rows(&c, Metric::Time)
            .iter()
            .filter(|r| r.p_raw.unwrap() < 0.05)
            .count();
        // Unadjusted, about 5 % of 500 tests are "significant" by chance alone...
        assert!((10..=45).contains(&nominal), "{nominal}");
        // ...and none of them is called a change.
        assert_eq!((c.summary.slower, c.summary.faster), (0, 0));
    }

    #[test]
    fn real_regressions_among_many_cases_are_found() {
        // 200 cases, every tenth 25 % slower.
        let slow = |i: usize| i.is_multiple_of(10);
        let base = suite(200, 30, 1, |_| 1.0);
        let new = suite(200, 30, 2, |i| if slow(i) { 1.25 } else { 1.0 });
        let opts = Options {
            resamples: 1000,
            ..Options::default()
        };
        let c = compare(&base, &new, &opts).unwrap();
        for r in rows(&c, Metric::Time) {
            let i: usize = r.id[1..].parse().unwrap();
            if slow(i) {
                assert_eq!(r.verdict, Verdict::Slower, "{r:?}");
            } else {
                assert_ne!(r.verdict, Verdict::Slower, "{r:?}");
            }
        }
        assert_eq!(c.summary.slower, 20);
    }

    #[test]
    fn unmatched_and_skipped_cases_are_listed_not_dropped() {
        let mut skipped = case("skip", vec![1.0]);
        skipped.status = Status::Skipped;
        skipped.reason = Some("needs a GPU".into());
        skipped.time = None;
        let base = set(vec![run(vec![
            case("both", noisy(1.0, 10, 1)),
            case("old", noisy(1.0, 10, 2)),
            skipped,
            case("fails", noisy(1.0, 10, 3)),
        ])]);
        let mut failed = case("fails", vec![1.0]);
        failed.status = Status::Failed;
        failed.reason = Some("rel. L2 error 0.3 > 1e-4".into());
        let new = set(vec![run(vec![
            case("both", noisy(1.0, 10, 4)),
            case("skip", noisy(1.0, 10, 5)),
            failed,
            case("added", noisy(1.0, 10, 6)),
        ])]);
        let c = compare(&base, &new, &Options::default()).unwrap();
        assert_eq!(c.unmatched.base_only, vec!["old"]);
        assert_eq!(c.unmatched.new_only, vec!["added"]);
        let why = |id: &str| {
            c.not_compared
                .iter()
                .find(|n| n.id == id && n.metric.is_none())
                .map(|n| n.reason.clone())
                .unwrap_or_default()
        };
        assert_eq!(why("skip"), "base skipped: needs a GPU");
        assert_eq!(why("fails"), "new failed: rel. L2 error 0.3 > 1e-4");
        assert!(c.cases.iter().all(|r| r.id == "both"));
    }

    #[test]
    fn nothing_in_common_is_an_error() {
        let a = set(vec![run(vec![case("a", vec![1.0])])]);
        let b = set(vec![run(vec![case("b", vec![1.0])])]);
        let e = compare(&a, &b, &Options::default()).unwrap_err();
        assert!(matches!(e, CompareError::NothingInCommon { .. }), "{e}");
    }

    #[test]
    fn different_hardware_is_refused_unless_allowed() {
        let a = suite(2, 10, 1, |_| 1.0);
        let mut b = suite(2, 10, 2, |_| 1.0);
        b.runs[0].environment.host.cpu_model = Some("Other CPU".into());
        let e = compare(&a, &b, &Options::default()).unwrap_err();
        assert!(e.to_string().contains("different hardware"), "{e}");
        let opts = Options {
            allow_different_hardware: true,
            ..Options::default()
        };
        let c = compare(&a, &b, &opts).unwrap();
        assert!(c.notes.iter().any(|n| n.contains("different hardware")));
        // Mixed hardware on one side is refused too.
        let mixed = ResultSet {
            files: vec!["x".into(), "y".into()],
            runs: vec![a.runs[0].clone(), b.runs[0].clone()],
            left_out: Vec::new(),
        };
        let e = compare(&mixed, &mixed, &Options::default()).unwrap_err();
        assert!(matches!(e, CompareError::MixedHardware { .. }), "{e}");
    }

    #[test]
    fn several_files_on_a_side_are_pooled() {
        let r1 = suite(1, 10, 1, |_| 1.0).runs.remove(0);
        let r2 = suite(1, 15, 2, |_| 1.0).runs.remove(0);
        let base = set(vec![r1, r2]);
        let new = suite(1, 12, 3, |_| 1.0);
        let c = compare(&base, &new, &Options::default()).unwrap();
        let t = rows(&c, Metric::Time)[0];
        assert_eq!(t.n, [25, 12]);
        assert_eq!(rows(&c, Metric::HostMemory)[0].n, [2, 1]);
        assert!(c.notes.iter().any(|n| n.contains("2 result files pooled")));
    }

    fn with_energy(e: Option<CaseEnergy>) -> RunFile {
        let mut c = case("c", noisy(1.0, 10, 1));
        c.energy = e;
        run(vec![c])
    }

    #[test]
    fn energy_with_one_window_per_side_uses_the_meters_intervals() {
        let one = |v, h, s| set(vec![with_energy(Some(energy(v, h, s)))]);
        let compare_energy = |b: &ResultSet, n: &ResultSet| {
            let c = compare(b, n, &Options::default()).unwrap();
            (rows(&c, Metric::Energy).first().map(|r| (*r).clone()), c)
        };
        // 10 ± 0.1 J against 13 ± 0.1 J: the worst-case interval [12.9/10.1, 13.1/9.9] clears 1.05.
        let (r, _) = compare_energy(
            &one(10.0, 0.1, Source::Measured),
            &one(13.0, 0.1, Source::Measured),
        );
        let r = r.unwrap();
        assert_eq!(
            (r.method, r.verdict, r.p_value),
            (Method::MeterInterval, Verdict::Slower, None)
        );
        let [lo, hi] = r.ci.unwrap();
        assert!((lo - 12.9 / 10.1).abs() < 1e-12 && (hi - 13.1 / 9.9).abs() < 1e-12);
        // Equal values: never `same` from one window.
        let (r, _) = compare_energy(
            &one(10.0, 0.1, Source::Measured),
            &one(10.0, 0.1, Source::Measured),
        );
        assert_eq!(r.unwrap().verdict, Verdict::Ambiguous);
        // A wide estimate: 30 % slower, but inside the estimate's uncertainty.
        let (r, _) = compare_energy(
            &one(10.0, 3.0, Source::Estimated),
            &one(13.0, 3.9, Source::Estimated),
        );
        assert_eq!(r.unwrap().verdict, Verdict::Ambiguous);
        // Different sources: listed, not compared.
        let (r, c) = compare_energy(
            &one(10.0, 0.1, Source::Measured),
            &one(10.0, 3.0, Source::Estimated),
        );
        assert!(r.is_none());
        let n = &c.not_compared[0];
        assert_eq!(n.metric, Some(Metric::Energy));
        assert!(
            n.reason.contains("base measured; new estimated"),
            "{}",
            n.reason
        );
        // On one side only: listed.
        let c = compare(
            &one(10.0, 0.1, Source::Measured),
            &set(vec![with_energy(None)]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(c.not_compared[0].reason, "no energy reading on new");
    }

    #[test]
    fn energy_with_several_windows_per_side_is_tested() {
        let windows = |center: f64, seed: u64| {
            set(noisy(center, 6, seed)
                .into_iter()
                .map(|v| with_energy(Some(energy(v, 0.01, Source::Measured))))
                .collect())
        };
        let c = compare(&windows(10.0, 1), &windows(13.0, 2), &Options::default()).unwrap();
        let r = rows(&c, Metric::Energy)[0];
        assert_eq!(
            (r.method, r.n, r.runs, r.source.as_deref()),
            (Method::WelchLog, [6, 6], [6, 6], Some("measured"))
        );
        // Welch on the logarithms: the ratio of geometric means, its t-interval around 1.3.
        assert!((r.ratio - 1.3).abs() < 0.05, "{r:?}");
        let [lo, hi] = r.ci.unwrap();
        assert!(lo > 1.05 && lo < 1.3 && hi > 1.3, "{r:?}");
        assert!(r.p_raw.unwrap() < 1e-4, "{r:?}");
        assert_eq!(r.verdict, Verdict::Slower);
        // The source is shown where people read the row.
        assert!(crate::render::table(&c).contains("energy (measured)"));
    }

    /// The audit's case: one case of many uses 1.5x the energy, four runs a side. The time
    /// tests of every case must not drown the energy test (BH per metric), and four values a
    /// side must be able to show it at all (a rank test's smallest p-value there is 0.029).
    #[test]
    fn one_energy_regression_among_many_cases_is_found_with_four_runs() {
        let side = |seed: u64, factor: f64| {
            set((0..4)
                .map(|r| {
                    let cs = (0..30)
                        .map(|i| {
                            let mut c = case(
                                &format!("c{i}"),
                                noisy(1e-3, 20, seed * 1000 + r * 100 + i as u64),
                            );
                            let jitter = 1.0 + 0.01 * ((r as f64 + i as f64 * 0.37) % 1.0 - 0.5);
                            let e = if i == 7 { factor } else { 1.0 } * jitter;
                            c.energy = Some(energy(e, 0.5, Source::Estimated));
                            c
                        })
                        .collect();
                    run(cs)
                })
                .collect())
        };
        let c = compare(&side(1, 1.0), &side(2, 1.5), &Options::default()).unwrap();
        let slower: Vec<&str> = rows(&c, Metric::Energy)
            .iter()
            .filter(|r| r.verdict == Verdict::Slower)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(slower, ["c7"]);
        assert!(c.fails_gate(false));
        // A log that shows the summary line alone says what failed: an estimate.
        let line = crate::render::summary_line(&c);
        assert!(line.starts_with("1 slower (energy, estimated), "), "{line}");
        // The other 29 are the same within 5 %.
        let same = rows(&c, Metric::Energy)
            .iter()
            .filter(|r| r.verdict == Verdict::Same)
            .count();
        assert_eq!(same, 29);
    }

    #[test]
    fn each_metric_is_its_own_family_of_tests() {
        let row = |metric, p: Option<f64>| CaseComparison {
            id: "c".into(),
            metric,
            verdict: Verdict::Ambiguous,
            ratio: 1.0,
            ci: None,
            p_value: None,
            p_raw: p,
            base: 1.0,
            new: 1.0,
            unit: metric.unit().into(),
            n: [4, 4],
            runs: [4, 4],
            method: Method::RankTest,
            source: None,
            missing_domains: Vec::new(),
            host_counters_shared_by: None,
        };
        // 30 time tests that found nothing, then one clear energy test of p = 0.001 among
        // three: adjusted over its own family, 0.001 * 3 / 1; over all 33 it would be 0.033.
        let mut rows: Vec<CaseComparison> = (0..30)
            .map(|i| row(Metric::Time, Some(0.5 + i as f64 / 100.0)))
            .collect();
        rows.push(row(Metric::Energy, Some(0.001)));
        rows.push(row(Metric::Energy, Some(0.6)));
        rows.push(row(Metric::Energy, Some(0.9)));
        rows.push(row(Metric::HostMemory, None));
        let a = adjust_per_metric(&rows);
        assert!((a[30] - 0.003).abs() < 1e-12, "{}", a[30]);
        assert!((a[31] - 0.9).abs() < 1e-12 && (a[32] - 0.9).abs() < 1e-12);
        assert!(a[33].is_nan());
        // The time family alone: the smallest, 0.5, times 30 / 1 caps at its neighbours' 0.79.
        assert!(a[..30].iter().all(|&p| (p - 0.79).abs() < 1e-12), "{a:?}");
    }

    #[test]
    fn energy_on_another_basis_is_not_compared() {
        let files = |v: f64, tdp: f64, includes: &[&str]| {
            set((0..3)
                .map(|i| {
                    let mut e = testing::estimated_energy(v * (1.0 + 0.001 * i as f64), tdp);
                    if !includes.is_empty() {
                        e.total_includes = includes.iter().map(|s| s.to_string()).collect();
                    }
                    with_energy(Some(e))
                })
                .collect())
        };
        // The same code with a TDP of 70 W instead of 7 W: 10x the energy, by the model alone.
        let c = compare(
            &files(1.0, 7.0, &[]),
            &files(10.0, 70.0, &[]),
            &Options::default(),
        )
        .unwrap();
        assert!(rows(&c, Metric::Energy).is_empty());
        let why = &c.not_compared[0].reason;
        assert!(
            why.contains("estimate models") && why.contains("7 W TDP") && why.contains("70 W"),
            "{why}"
        );
        assert!(!c.fails_gate(true));
        // Totals over different meters (one more GPU) are not the same quantity either.
        let c = compare(
            &files(1.0, 7.0, &["cpu (measured)"]),
            &files(1.5, 7.0, &["cpu (measured)", "gpu1 (measured)"]),
            &Options::default(),
        )
        .unwrap();
        assert!(rows(&c, Metric::Energy).is_empty());
        assert!(c.not_compared[0].reason.contains("different meters"));
        // The same basis compares, and says it is an estimate.
        let c = compare(
            &files(1.0, 7.0, &[]),
            &files(1.0, 7.0, &[]),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            rows(&c, Metric::Energy)[0].source.as_deref(),
            Some("estimated")
        );
    }

    /// A measured total of `value` J per call over the domains `read`, with the domains
    /// `unread` of the total without a reading (a PARTIAL total when any).
    fn measured(value: f64, read: &[&str], unread: &[&str]) -> CaseEnergy {
        use wattbench_core::testing::domain_row;
        let mut e = energy(value, 0.01 * value, Source::Measured);
        let share = value / read.len() as f64;
        e.domains = (read.iter())
            .map(|n| domain_row(n, Source::Measured, true, Some(share)))
            .chain((unread.iter()).map(|n| domain_row(n, Source::Unsupported, true, None)))
            .collect();
        e.total_includes = read.iter().map(|n| format!("{n} (measured)")).collect();
        e
    }

    /// What `devices` writes on the cases of GPU workers that ran at once.
    const SHARED: &str = "measured while 4 GPU workers ran at once: the host counters in \
        this total (CPU package, DRAM) counted every worker's host work, not this case's \
        alone (--devices-sequential runs them one after another)";

    fn energy_reason(c: &Comparison) -> String {
        (c.not_compared.iter())
            .find(|n| n.metric == Some(Metric::Energy))
            .map(|n| n.reason.clone())
            .unwrap_or_default()
    }

    /// Both sides without a DRAM reading: the same quantity, compared, but the row must not
    /// read as a whole total.
    #[test]
    fn energy_partial_the_same_way_on_both_sides_says_so_in_its_row() {
        let one = |e: CaseEnergy| set(vec![with_energy(Some(e))]);
        let partial = |v| measured(v, &["cpu-package-0"], &["dram-0"]);
        let c = compare(
            &one(partial(10.0)),
            &one(partial(13.0)),
            &Options::default(),
        )
        .unwrap();
        let r = rows(&c, Metric::Energy)[0];
        assert_eq!(
            r.source.as_deref(),
            Some("measured, PARTIAL: without dram-0")
        );
        // The same as fields, for a reader of the document.
        assert_eq!(
            (r.missing_domains.as_slice(), r.host_counters_shared_by),
            (&["dram-0".to_string()][..], None)
        );
        let back: Comparison = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(back, c);
        let table = crate::render::table(&c);
        assert!(
            table.contains("energy (measured, PARTIAL: without dram-0)"),
            "{table}"
        );
        // A whole total is labelled as before.
        let whole = |v| measured(v, &["cpu-package-0", "dram-0"], &[]);
        let c = compare(&one(whole(10.0)), &one(whole(13.0)), &Options::default()).unwrap();
        assert_eq!(
            rows(&c, Metric::Energy)[0].source.as_deref(),
            Some("measured")
        );
    }

    /// Totals that add the same meters but are not the same quantity: one leaves out a domain
    /// that had no reading, or counted the host work of other GPU workers.
    #[test]
    fn energy_partial_in_other_ways_or_on_shared_host_counters_is_not_compared() {
        let one = |e: CaseEnergy| set(vec![with_energy(Some(e))]);
        let pkg = |v, unread: &[&str]| measured(v, &["cpu-package-0"], unread);
        // Base's GPU counter had no reading; new had no GPU meter: both add the package alone.
        let c = compare(
            &one(pkg(10.0, &["gpu0"])),
            &one(pkg(10.0, &[])),
            &Options::default(),
        )
        .unwrap();
        assert!(rows(&c, Metric::Energy).is_empty(), "{:?}", c.cases);
        let why = energy_reason(&c);
        assert!(
            why.contains("base PARTIAL: without gpu0; new whole"),
            "{why}"
        );
        // Partial in different ways.
        let c = compare(
            &one(pkg(10.0, &["gpu0"])),
            &one(pkg(10.0, &["gpu1"])),
            &Options::default(),
        )
        .unwrap();
        assert!(rows(&c, Metric::Energy).is_empty(), "{:?}", c.cases);
        let why = energy_reason(&c);
        assert!(
            why.contains("PARTIAL: without gpu0") && why.contains("PARTIAL: without gpu1"),
            "{why}"
        );
        // Host counters shared by 4 workers on new only.
        let mut shared = pkg(10.0, &[]);
        shared.notes.push(SHARED.into());
        let c = compare(
            &one(pkg(10.0, &[])),
            &one(shared.clone()),
            &Options::default(),
        )
        .unwrap();
        assert!(rows(&c, Metric::Energy).is_empty(), "{:?}", c.cases);
        let why = energy_reason(&c);
        assert!(
            why.contains("base not shared; new shared by 4 GPU workers"),
            "{why}"
        );
        // Shared alike on both sides: compared, and the row says so.
        let c = compare(&one(shared.clone()), &one(shared), &Options::default()).unwrap();
        let r = rows(&c, Metric::Energy)[0];
        assert_eq!(
            r.source.as_deref(),
            Some("measured, host counters shared by 4 GPU workers")
        );
        assert_eq!(r.host_counters_shared_by, Some(4));
        assert!(r.missing_domains.is_empty());
    }

    #[test]
    fn a_case_new_failed_skipped_or_lost_fails_the_gate() {
        let ok = |id: &str| case(id, noisy(1e-3, 20, 1));
        let with = |id: &str, status: Status, why: &str| {
            let mut c = ok(id);
            c.status = status;
            c.reason = Some(why.into());
            c.time = None;
            c
        };
        let base = set(vec![run(vec![ok("a"), ok("b"), ok("c"), ok("d")])]);
        let new = set(vec![run(vec![
            ok("a"),
            with("b", Status::Failed, "relative error 0.3 above 1e-4"),
            with("c", Status::Skipped, "backend unavailable"),
        ])]);
        let c = compare(&base, &new, &Options::default()).unwrap();
        let got: Vec<(&str, Broken)> = c.regressed.iter().map(|r| (r.id.as_str(), r.how)).collect();
        assert_eq!(
            got,
            [
                ("b", Broken::Failed),
                ("c", Broken::Skipped),
                ("d", Broken::Missing)
            ]
        );
        assert_eq!((c.summary.failed, c.summary.lost), (1, 2));
        assert!(!c.has_slower());
        // A failure fails any gate; a lost case only one of the same options on both sides.
        assert!(c.fails_gate(false));
        let table = crate::render::table(&c);
        assert!(table.contains("1 FAILED on new"), "{table}");
        assert!(table.contains("relative error 0.3"), "{table}");
        let lost_only = set(vec![run(vec![ok("a"), ok("b"), ok("c")])]);
        let c = compare(&base, &lost_only, &Options::default()).unwrap();
        assert!(!c.fails_gate(false) && c.fails_gate(true));
        // A case base also failed, that new still passes in some runs, is flaky on both
        // sides: not new's regression.
        let flaky = set(vec![
            run(vec![ok("a"), ok("b")]),
            run(vec![ok("a"), with("b", Status::Failed, "flaky")]),
        ]);
        let flaky_new = set(vec![
            run(vec![ok("a"), with("b", Status::Failed, "flaky")]),
            run(vec![ok("a"), ok("b")]),
        ]);
        let c = compare(&flaky, &flaky_new, &Options::default()).unwrap();
        assert!(c.regressed.iter().all(|r| r.id != "b"), "{:?}", c.regressed);
        assert!(!c.fails_gate(true));
        // But one new never passes is a failure, however flaky base was.
        let c = compare(&flaky, &new, &Options::default()).unwrap();
        assert!(
            c.regressed
                .iter()
                .any(|r| r.id == "b" && r.how == Broken::Failed),
            "{:?}",
            c.regressed
        );
    }

    /// The review's case: base passed it in 3 runs of 4, new failed it in all 4. That a
    /// base run failed too must not hide it (a case new skipped every time fails the gate;
    /// one it failed every time must as well).
    #[test]
    fn a_case_new_failed_in_every_run_fails_the_gate_however_base_flaked() {
        let ok = || case("x", noisy(1e-3, 20, 1));
        let failed = || {
            let mut c = ok();
            c.status = Status::Failed;
            c.reason = Some("relative error 0.3 above 1e-4".into());
            c.time = None;
            c
        };
        let base = set(vec![
            run(vec![ok()]),
            run(vec![ok()]),
            run(vec![failed()]),
            run(vec![ok()]),
        ]);
        let new = set((0..4).map(|_| run(vec![failed()])).collect());
        let c = compare(&base, &new, &Options::default()).unwrap();
        assert_eq!(c.summary.failed, 1, "{:?}", c.regressed);
        assert_eq!(c.regressed[0].how, Broken::Failed);
        assert!(c.regressed[0].reason.contains("relative error 0.3"));
        assert!(c.fails_gate(true) && c.fails_gate(false));
    }

    #[test]
    fn a_different_cpu_allocation_is_noted() {
        let on = |usable: Option<usize>, seed: u64| {
            let mut r = run(vec![case("x", noisy(1e-3, 20, seed))]);
            r.environment.host.usable_cores = usable;
            set(vec![r])
        };
        let note = |c: &Comparison| {
            c.notes
                .iter()
                .any(|n| n.contains("CPUs the runs could use"))
        };
        let c = compare(&on(Some(2), 1), &on(Some(1), 2), &Options::default()).unwrap();
        assert!(note(&c), "{:?}", c.notes);
        // Unknown on a side (an older file), or the same: nothing to say.
        for other in [None, Some(2)] {
            let c = compare(&on(Some(2), 1), &on(other, 2), &Options::default()).unwrap();
            assert!(!note(&c), "{:?}", c.notes);
        }
    }

    #[test]
    fn the_run_count_notes_count_the_runs_of_each_case() {
        // Base: three runs of one suite and one of another; new: two runs of the other.
        let base = set(vec![
            run(vec![case("x", noisy(1e-3, 20, 1))]),
            run(vec![case("x", noisy(1e-3, 20, 2))]),
            run(vec![case("x", noisy(1e-3, 20, 3))]),
            run(vec![case("y", noisy(1e-3, 20, 4))]),
        ]);
        let new = set(vec![
            run(vec![case("y", noisy(1e-3, 20, 5))]),
            run(vec![case("y", noisy(1e-3, 20, 6))]),
        ]);
        let c = compare(&base, &new, &Options::default()).unwrap();
        let r = rows(&c, Metric::Time)[0];
        assert_eq!((r.id.as_str(), r.runs), ("y", [1, 2]));
        assert!(
            c.notes
                .iter()
                .any(|n| n.starts_with("one run on a side for every case")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn four_runs_a_side_are_still_said_to_cover_less_than_nominal() {
        let side = |runs: u64, seed: u64| {
            set((0..runs)
                .map(|r| run(vec![case("x", noisy(1e-3, 20, seed + r))]))
                .collect())
        };
        let note = |c: &Comparison| {
            c.notes
                .iter()
                .find(|n| n.starts_with("2 to 4 runs on a side for every case"))
                .cloned()
        };
        let c = compare(&side(4, 1), &side(4, 100), &Options::default()).unwrap();
        let n = note(&c).unwrap_or_else(|| panic!("{:?}", c.notes));
        assert!(
            n.contains("90 % with 4") && n.contains("nominal 95 %"),
            "{n}"
        );
        let c = compare(&side(6, 1), &side(6, 100), &Options::default()).unwrap();
        assert_eq!(note(&c), None);
    }

    #[test]
    fn a_side_of_several_commits_is_noted() {
        let side = |commits: &[&str], seed: u64| {
            set((commits.iter().enumerate())
                .map(|(i, c)| {
                    let mut r = run(vec![case("x", noisy(1e-3, 20, seed + i as u64))]);
                    r.environment.git_commit = Some(c.to_string());
                    r
                })
                .collect())
        };
        let noted = |c: &Comparison| {
            (c.notes.iter())
                .filter(|n| n.contains("git commits"))
                .cloned()
                .collect::<Vec<_>>()
        };
        let c = compare(
            &side(&["a1", "b2"], 1),
            &side(&["c3", "c3"], 10),
            &Options::default(),
        )
        .unwrap();
        let notes = noted(&c);
        assert_eq!(notes.len(), 1, "{:?}", c.notes);
        assert!(
            notes[0].starts_with("the base files name 2 git commits (a1, b2)"),
            "{notes:?}"
        );
        // One commit a side, whatever it is: nothing to say.
        let c = compare(
            &side(&["a1", "a1"], 1),
            &side(&["c3"], 10),
            &Options::default(),
        )
        .unwrap();
        assert!(noted(&c).is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn the_summary_line_names_the_metric_and_source_of_slower_rows() {
        let mut c = compare(
            &suite(3, 10, 1, |_| 1.0),
            &suite(3, 10, 2, |_| 1.0),
            &Options::default(),
        )
        .unwrap();
        let row = |id: &str, metric, method, source: Option<&str>| CaseComparison {
            id: id.into(),
            metric,
            verdict: Verdict::Slower,
            ratio: 1.3,
            ci: Some([1.2, 1.4]),
            p_value: None,
            p_raw: None,
            base: 1.0,
            new: 1.3,
            unit: metric.unit().into(),
            n: [4, 4],
            runs: [4, 4],
            method,
            source: source.map(String::from),
            missing_domains: Vec::new(),
            host_counters_shared_by: None,
        };
        c.cases = vec![
            row("a", Metric::Energy, Method::WelchLog, Some("estimated")),
            row("b", Metric::Time, Method::RankTest, None),
            row("c", Metric::Time, Method::RankTest, None),
            row("d", Metric::Energy, Method::MeterInterval, Some("measured")),
        ];
        c.summary = Summary {
            slower: 4,
            ..Summary::default()
        };
        let line = crate::render::summary_line(&c);
        assert!(
            line.starts_with(
                "4 slower (2 time; 1 energy, estimated; 1 energy, measured, not gating), 0 faster"
            ),
            "{line}"
        );
        assert!(crate::render::markdown(&c).contains("**4 slower** (2 time; "));
    }

    #[test]
    fn memory_compares_the_ratio_and_needs_a_per_case_reset() {
        let mem = |bytes: u64, reset: bool| {
            let mut c = case("c", noisy(1.0, 10, 1));
            c.memory = Memory {
                host_peak_rss_bytes: Some(bytes),
                host_peak_reset: reset,
                device_peak_bytes: Some(bytes / 2),
            };
            set(vec![run(vec![c])])
        };
        // One file a side: no interval, so no verdict, however large the ratio.
        let c = compare(&mem(100, true), &mem(120, true), &Options::default()).unwrap();
        for m in [Metric::HostMemory, Metric::DeviceMemory] {
            let r = rows(&c, m)[0];
            assert_eq!(
                (r.method, r.verdict, r.ci),
                (Method::Threshold, Verdict::Ambiguous, None)
            );
            assert!((r.ratio - 1.2).abs() < 1e-12);
        }
        assert!(!c.has_slower());
        // Two files a side: the range of ratios decides.
        let two = |a: u64, b: u64| {
            let one = |bytes: u64| {
                let mut c = case("c", noisy(1.0, 10, 1));
                c.memory = Memory {
                    host_peak_rss_bytes: Some(bytes),
                    host_peak_reset: true,
                    device_peak_bytes: None,
                };
                run(vec![c])
            };
            set(vec![one(a), one(b)])
        };
        let verdict = |b: (u64, u64), n: (u64, u64)| {
            let c = compare(&two(b.0, b.1), &two(n.0, n.1), &Options::default()).unwrap();
            rows(&c, Metric::HostMemory)[0].verdict
        };
        assert_eq!(verdict((100, 102), (120, 125)), Verdict::Slower);
        // Reported, never gating: no test, and host peaks move between runs of one build.
        let c = compare(&two(100, 102), &two(120, 125), &Options::default()).unwrap();
        assert_eq!(c.summary.slower, 1);
        assert!(!c.has_slower() && !c.fails_gate(true));
        let line = crate::render::summary_line(&c);
        assert!(
            line.starts_with("1 slower (host_memory, not gating), "),
            "{line}"
        );
        assert_eq!(verdict((100, 102), (80, 81)), Verdict::Faster);
        assert_eq!(verdict((100, 102), (101, 103)), Verdict::Same);
        // Overlapping spreads that reach past the threshold: the data cannot tell.
        assert_eq!(verdict((100, 130), (110, 125)), Verdict::Ambiguous);
        let c = compare(&mem(100, false), &mem(100, true), &Options::default()).unwrap();
        assert!(rows(&c, Metric::HostMemory).is_empty());
        assert!(c.not_compared[0]
            .reason
            .contains("not reset per case on base"));
        assert_eq!(
            rows(&c, Metric::DeviceMemory)[0].verdict,
            Verdict::Ambiguous
        );
    }

    #[test]
    fn the_document_round_trips_through_json() {
        let c = compare(
            &suite(3, 10, 1, |_| 1.0),
            &suite(3, 10, 2, |_| 1.3),
            &Options::default(),
        )
        .unwrap();
        let back: Comparison = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(back, c);
        // Same inputs, same seed: the same document.
        let again = compare(
            &suite(3, 10, 1, |_| 1.0),
            &suite(3, 10, 2, |_| 1.3),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn nonsense_options_are_refused() {
        for o in [
            Options {
                alpha: 0.0,
                ..Options::default()
            },
            Options {
                thresholds: Thresholds::uniform(-0.1),
                ..Options::default()
            },
            Options {
                resamples: 0,
                ..Options::default()
            },
        ] {
            assert!(matches!(o.validate(), Err(CompareError::InvalidOption(_))));
        }
    }
}
