//! Comparing wattbench results soundly, and exporting them to other tools.
//!
//! - [`stats`]: the statistics, each checked against hand-computed values: medians, the
//!   seeded bootstrap interval of a ratio of medians, the Mann–Whitney rank test, the
//!   Benjamini–Hochberg adjustment.
//! - [`compare`](mod@compare): [`Comparison`] of a baseline and a new set of result files (files or
//!   folders, pooled per case id): per case and metric a ratio, an interval, a test and a
//!   [`Verdict`]; the rule is stated on the module.
//! - [`render`]: a comparison as a terminal table or Markdown.
//! - [`export`]: a result file as Bencher Metric Format, github-action-benchmark
//!   `customSmallerIsBetter` JSON, or CSV.
//!
//! The `wattbench compare` and `wattbench export` commands are thin layers over this crate;
//! other drivers (A/B runs, the history) call [`compare::compare`] with
//! [`ResultSet::from_runs`] directly.
pub mod compare;
pub mod export;
pub mod render;
pub mod stats;

pub use compare::{
    compare, CaseComparison, CompareError, Comparison, Method, Metric, NotCompared, Options,
    ResultSet, Side, Summary, Thresholds, Unmatched, Verdict,
};
