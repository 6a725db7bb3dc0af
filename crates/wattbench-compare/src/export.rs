//! A result file in the formats other tools read, each in its documented shape:
//!
//! - [`bmf`]: Bencher Metric Format, for `bencher run --adapter json`. Documented shape
//!   (<https://bencher.dev/docs/reference/bencher-metric-format/>): an object keyed by
//!   benchmark name, each an object keyed by measure slug, each `{"value": number,
//!   "lower_value"?: number, "upper_value"?: number}`.
//! - [`github`]: github-action-benchmark's `customSmallerIsBetter` tool. Documented shape (the
//!   action's README, "Examples" for custom tools, and `BenchmarkResult` in its
//!   `src/extract.ts`, <https://github.com/benchmark-action/github-action-benchmark>): a JSON
//!   array of `{"name": string, "unit": string, "value": number, "range"?: string,
//!   "extra"?: string}`, smaller being better.
//! - [`csv`]: one row per case and training run, comma-separated with a header row, quoted
//!   as RFC 4180 says (fields with a comma, a quote or a line break in double quotes, quotes
//!   doubled; CRLF line ends).
//!
//! Only `ok` cases have numbers, so the two JSON formats hold only those; the CSV has every
//! case, with its status and reason. A missing figure is left out (JSON) or empty (CSV),
//! never written as 0.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wattbench_core::energy::{CaseEnergy, Interval};
use wattbench_core::result::{Memory, RunFile, Status};
use wattbench_core::stats::{TimeStats, BOOTSTRAP_MIN_SAMPLES};
use wattbench_core::units;

/// One measure of one benchmark in Bencher Metric Format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BmfMetric {
    /// The value.
    pub value: f64,
    /// Lower bound, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_value: Option<f64>,
    /// Upper bound, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_value: Option<f64>,
}

/// A Bencher Metric Format document: benchmark name → measure slug → metric.
pub type Bmf = BTreeMap<String, BTreeMap<String, BmfMetric>>;

/// Bencher measure slugs this export writes.
pub mod measures {
    /// Bencher's built-in Latency measure (nanoseconds): the median time per call (per step
    /// for a training run), bounded by the 95 % bootstrap interval of the median.
    pub const LATENCY: &str = "latency";
    /// Joules per call (per step) read by hardware counters alone: the total of the metered
    /// domains, bounded by the meters' stated uncertainty. Bencher creates the measure on
    /// first use. A total with other sources goes to a measure named after them (see
    /// [`energy_measure`](super::energy_measure)), so an estimate never joins a series of
    /// measurements.
    pub const ENERGY: &str = "energy";
    /// Peak resident set size of the process while the case ran, bytes (only when it was
    /// reset per case).
    pub const HOST_PEAK_RSS: &str = "host-peak-rss";
    /// Peak device memory, bytes.
    pub const DEVICE_PEAK_MEMORY: &str = "device-peak-memory";
}

/// One entry of github-action-benchmark's `customSmallerIsBetter` input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GithubEntry {
    /// Benchmark name: the case id and the metric, e.g. `gemm/infer/m19_n7_k33_nt/f32/candle/cpu (time)`.
    pub name: String,
    /// Unit: `ns`, `J` or `B`.
    pub unit: String,
    /// The value.
    pub value: f64,
    /// Spread: `± half-width` of a symmetric interval, else `+up / -down` from the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// What else the tooltip should say: the interval, the sample count, the energy sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
}

/// What the three exports need of a case or a training run.
struct Row<'a> {
    id: &'a str,
    kind: &'static str,
    status: Status,
    reason: Option<&'a str>,
    backend: &'a str,
    device: &'a str,
    dtype: Option<&'static str>,
    time: Option<&'a TimeStats>,
    gflops_per_s: Option<f64>,
    energy: Option<&'a CaseEnergy>,
    memory: &'a Memory,
}

fn rows(run: &RunFile) -> Vec<Row<'_>> {
    let cases = run.cases.iter().map(|c| Row {
        id: &c.id,
        kind: "case",
        status: c.status,
        reason: c.reason.as_deref(),
        backend: &c.backend,
        device: &c.device,
        dtype: Some(c.dtype.as_str()),
        time: c.time.as_ref(),
        gflops_per_s: c.throughput.as_ref().map(|t| t.gflops_per_s),
        energy: c.energy.as_ref(),
        memory: &c.memory,
    });
    let trainings = run.trainings.iter().map(|t| Row {
        id: &t.id,
        kind: "training",
        status: t.status,
        reason: t.reason.as_deref(),
        backend: &t.backend,
        device: &t.device,
        dtype: None,
        time: t.time.as_ref(),
        gflops_per_s: t.gflops_per_s,
        energy: Some(&t.energy),
        memory: &t.memory,
    });
    cases.chain(trainings).collect()
}

/// The Bencher measure of an energy total, named after what it is a total of, so that one
/// measure holds one quantity: `energy` for counters alone, `energy-estimated`,
/// `energy-estimated-measured` (sources sorted) otherwise; and, when a metered domain had no
/// reading in this run (the total is of the others), `-without-` and those domains
/// (`energy-without-gpu0`): a night whose GPU counter failed is not an 80 % improvement of
/// `energy`. The name does not list the meters added nor an estimate's TDP and threads (a
/// Bencher measure has at most 64 characters, and these names are documented in `wattbench
/// export --help`): the github entry's `extra` and the CSV's `energy_basis` give them.
pub fn energy_measure(e: &CaseEnergy) -> String {
    let mut sources: Vec<&str> = e.total_sources.iter().map(|s| s.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let mut name = if sources == ["measured"] {
        measures::ENERGY.to_string()
    } else {
        format!("{}-{}", measures::ENERGY, sources.join("-"))
    };
    let slug = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    };
    let mut missing: Vec<String> = e.missing_domains().into_iter().map(slug).collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        name.push_str("-without-");
        name.push_str(&missing.join("-"));
    }
    name
}

/// What a total is a total of, in words: its [`basis`](CaseEnergy::basis) label, then, when a
/// domain of it had no reading, `; PARTIAL: without gpu0` (the total of the others must not
/// pass for the whole).
fn basis_text(e: &CaseEnergy) -> String {
    let missing = e.missing_domains();
    let label = e.basis().label();
    if missing.is_empty() {
        label
    } else {
        format!("{label}; PARTIAL: without {}", missing.join(", "))
    }
}

fn energy_total(r: &Row<'_>) -> Option<Interval> {
    r.energy
        .and_then(|e| e.total_joules_per_iter)
        .filter(|iv| iv.value.is_finite() && iv.low.is_finite() && iv.high.is_finite())
}

fn host_peak(m: &Memory) -> Option<u64> {
    m.host_peak_rss_bytes.filter(|_| m.host_peak_reset)
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The ok cases and training runs of `run` in Bencher Metric Format (see [`measures`]).
pub fn bmf(run: &RunFile) -> Bmf {
    let mut doc = Bmf::new();
    for r in rows(run).iter().filter(|r| r.status == Status::Ok) {
        let mut m = BTreeMap::new();
        if let Some(t) = r.time.filter(|t| t.median_s.is_finite()) {
            m.insert(
                measures::LATENCY.to_string(),
                BmfMetric {
                    value: t.median_s * 1e9,
                    lower_value: finite(t.ci95_median_s[0] * 1e9),
                    upper_value: finite(t.ci95_median_s[1] * 1e9),
                },
            );
        }
        if let (Some(iv), Some(e)) = (energy_total(r), r.energy) {
            m.insert(
                energy_measure(e),
                BmfMetric {
                    value: iv.value,
                    lower_value: Some(iv.low),
                    upper_value: Some(iv.high),
                },
            );
        }
        let bytes = |b: u64| BmfMetric {
            value: b as f64,
            lower_value: None,
            upper_value: None,
        };
        if let Some(b) = host_peak(r.memory) {
            m.insert(measures::HOST_PEAK_RSS.to_string(), bytes(b));
        }
        if let Some(b) = r.memory.device_peak_bytes {
            m.insert(measures::DEVICE_PEAK_MEMORY.to_string(), bytes(b));
        }
        if !m.is_empty() {
            doc.insert(r.id.to_string(), m);
        }
    }
    doc
}

/// The ok cases and training runs of `run` as github-action-benchmark `customSmallerIsBetter`
/// The `range` of a github-action-benchmark entry: `± h` for an interval symmetric about
/// `value`, else `+up / -down` (a median's bootstrap interval and an energy interval held at 0
/// are not symmetric, and a `±` of their half-width would misplace both ends).
fn range(value: f64, low: f64, high: f64) -> String {
    let (down, up) = (value - low, high - value);
    // Four significant digits: the subtraction's rounding (219.89999999999782) is noise.
    let sig = units::sig;
    if (up - down).abs() <= 1e-9 * value.abs().max(f64::MIN_POSITIVE) {
        format!("± {}", sig(up))
    } else {
        format!("+{} / -{}", sig(up), sig(down))
    }
}

/// entries: per case its time (`ns`), energy (`J`) and peak memory (`B`) where known, each
/// named `<id> (<metric>)`.
pub fn github(run: &RunFile) -> Vec<GithubEntry> {
    let mut out = Vec::new();
    for r in rows(run).iter().filter(|r| r.status == Status::Ok) {
        let place = format!("{} on {}", r.backend, r.device);
        if let Some(t) = r.time.filter(|t| t.median_s.is_finite()) {
            let n = t.samples_s.len();
            let known = t.ci95_known().map(|b| b.map(|v| v * 1e9));
            let interval = match known {
                Some([lo, hi]) if n >= BOOTSTRAP_MIN_SAMPLES => format!(
                    "95% CI of the median {} – {} ns",
                    units::sig(lo),
                    units::sig(hi)
                ),
                Some([lo, hi]) => format!(
                    "the samples' range {} – {} ns (too few for a 95% interval)",
                    units::sig(lo),
                    units::sig(hi)
                ),
                None => "no interval of the median (one sample)".into(),
            };
            out.push(GithubEntry {
                name: format!("{} (time)", r.id),
                unit: "ns".into(),
                value: t.median_s * 1e9,
                range: known.map(|[lo, hi]| range(t.median_s * 1e9, lo, hi)),
                extra: Some(format!(
                    "median of {n} samples of {} calls; {interval}; {place}",
                    t.iters_per_sample,
                )),
            });
        }
        if let (Some(iv), Some(e)) = (energy_total(r), r.energy) {
            // Named after its sources, like the Bencher measure: one series, one kind.
            let measure = energy_measure(e);
            out.push(GithubEntry {
                name: format!("{} ({})", r.id, measure.replace('-', " ")),
                unit: "J".into(),
                value: iv.value,
                range: Some(range(iv.value, iv.low, iv.high)),
                extra: Some(format!(
                    "joules per {}, {} – {} J; total of: {}; {place}",
                    e.unit,
                    units::sig(iv.low),
                    units::sig(iv.high),
                    basis_text(e)
                )),
            });
        }
        let bytes = |what: &str, b: u64| GithubEntry {
            name: format!("{} ({what})", r.id),
            unit: "B".into(),
            value: b as f64,
            range: None,
            extra: Some(place.clone()),
        };
        if let Some(b) = host_peak(r.memory) {
            out.push(bytes("host peak RSS", b));
        }
        if let Some(b) = r.memory.device_peak_bytes {
            out.push(bytes("device peak memory", b));
        }
    }
    out
}

/// Columns of [`csv`], in order. Times in seconds per call (per step for training runs),
/// energy in joules per call, memory in bytes; empty when unknown. `energy_j` is the total of
/// the domains read: when a domain of it had no reading, `energy_missing` names it (`;`
/// between several) and `energy_basis` ends with `; PARTIAL: without …`, so a partial total
/// never passes for the whole.
pub const CSV_COLUMNS: [&str; 20] = [
    "id",
    "kind",
    "status",
    "reason",
    "backend",
    "device",
    "dtype",
    "median_s",
    "ci95_low_s",
    "ci95_high_s",
    "samples",
    "gflops_per_s",
    "energy_j",
    "energy_low_j",
    "energy_high_j",
    "energy_sources",
    "host_peak_rss_bytes",
    "device_peak_bytes",
    "energy_basis",
    "energy_missing",
];

/// One CSV field, quoted when RFC 4180 requires it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Every case and training run of `run` as CSV with a header row ([`CSV_COLUMNS`]).
pub fn csv(run: &RunFile) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    let num = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or(String::new(), |v| v.to_string())
    };
    let int = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows(run) {
        let t = r.time;
        let e = energy_total(&r);
        let status = match r.status {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        };
        let sources: Vec<&str> = r
            .energy
            .filter(|_| e.is_some())
            .map(|en| en.total_sources.iter().map(|s| s.as_str()).collect())
            .unwrap_or_default();
        let cells = [
            r.id.to_string(),
            r.kind.to_string(),
            status.to_string(),
            r.reason.unwrap_or("").to_string(),
            r.backend.to_string(),
            r.device.to_string(),
            r.dtype.unwrap_or("").to_string(),
            num(t.map(|t| t.median_s)),
            num(t.map(|t| t.ci95_median_s[0])),
            num(t.map(|t| t.ci95_median_s[1])),
            int(t.map(|t| t.samples_s.len() as u64)),
            num(r.gflops_per_s),
            num(e.map(|iv| iv.value)),
            num(e.map(|iv| iv.low)),
            num(e.map(|iv| iv.high)),
            sources.join(";"),
            int(host_peak(r.memory)),
            int(r.memory.device_peak_bytes),
            r.energy
                .filter(|_| e.is_some())
                .map_or(String::new(), basis_text),
            r.energy
                .filter(|_| e.is_some())
                .map_or(String::new(), |en| en.missing_domains().join(";")),
        ];
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn energy_measures_are_named_after_what_their_total_is() {
        use wattbench_core::energy::Source;
        use wattbench_core::testing::domain_row;
        // `rows`: (domain, in the total, has a reading).
        let with = |sources: &[Source], rows: &[(&str, bool, bool)]| {
            let mut e = wattbench_core::testing::case_energy(1.0, 1.0, Source::Measured);
            e.total_sources = sources.to_vec();
            e.domains = (rows.iter())
                .map(|&(name, in_total, read)| {
                    domain_row(name, Source::Measured, in_total, read.then_some(1.0))
                })
                .collect();
            energy_measure(&e)
        };
        assert_eq!(with(&[Source::Measured], &[]), "energy");
        assert_eq!(with(&[Source::Estimated], &[]), "energy-estimated");
        // One name whatever the domains' order.
        for s in [
            [Source::Measured, Source::Estimated],
            [Source::Estimated, Source::Measured],
        ] {
            assert_eq!(with(&s, &[]), "energy-estimated-measured");
        }
        // A domain left out by design (nested in another) changes nothing; one with no
        // reading makes the total another quantity.
        assert_eq!(
            with(
                &[Source::Measured],
                &[("package-0", true, true), ("core-0", false, true)]
            ),
            "energy"
        );
        assert_eq!(
            with(
                &[Source::Measured],
                &[
                    ("package-0", true, true),
                    ("gpu0", true, false),
                    ("core-0", false, false)
                ]
            ),
            "energy-without-gpu0"
        );
    }

    use super::*;

    /// One CSV record split into its fields (RFC 4180 quoting undone).
    fn fields(line: &str) -> Vec<String> {
        let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        let mut chars = line.chars().peekable();
        while let Some(ch) = chars.next() {
            match (ch, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(std::mem::take(&mut cur)),
                _ => cur.push(ch),
            }
        }
        out.push(cur);
        out
    }

    /// A total whose GPU counter had no reading is the package's alone: the exports must not
    /// let it pass for the whole (it would read as a drop by the GPU's share).
    #[test]
    fn a_partial_total_is_marked_partial_in_the_exports() {
        use wattbench_core::energy::Source;
        use wattbench_core::testing::{case_energy, domain_row, run_file, timed_case};
        let with = |unread: bool| {
            let mut e = case_energy(1.0, 0.1, Source::Measured);
            e.domains = vec![domain_row(
                "cpu-package-0",
                Source::Measured,
                true,
                Some(1.0),
            )];
            if unread {
                e.domains
                    .push(domain_row("gpu0", Source::Unsupported, true, None));
            }
            e.total_includes = vec!["cpu-package-0 (measured)".into()];
            let mut c = timed_case("c", vec![1.0, 1.1]);
            c.energy = Some(e);
            run_file("2025-01-01T00:00:00Z", vec![c])
        };
        for unread in [true, false] {
            let run = with(unread);
            let text = csv(&run);
            let records: Vec<Vec<String>> = text
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(fields)
                .collect();
            let header = &records[0];
            assert_eq!(header.len(), CSV_COLUMNS.len());
            let col = |name: &str| {
                (header.iter().position(|h| h == name)).unwrap_or_else(|| panic!("{name}"))
            };
            assert_eq!(
                col("energy_missing"),
                header.len() - 1,
                "new columns go last"
            );
            let row = &records[1];
            assert_eq!(row.len(), header.len(), "{row:?}");
            // The figure of what was read stays, said to be partial.
            assert_eq!(row[col("energy_j")], "1");
            let basis = &row[col("energy_basis")];
            let extra = github(&run)
                .into_iter()
                .find(|g| g.unit == "J")
                .and_then(|g| g.extra)
                .unwrap();
            if unread {
                assert_eq!(row[col("energy_missing")], "gpu0");
                assert!(basis.ends_with("; PARTIAL: without gpu0"), "{basis}");
                assert!(extra.contains("PARTIAL: without gpu0"), "{extra}");
            } else {
                assert_eq!(row[col("energy_missing")], "");
                assert!(!basis.contains("PARTIAL"), "{basis}");
                assert!(!extra.contains("PARTIAL"), "{extra}");
            }
            assert!(extra.contains("cpu-package-0 (measured)"), "{extra}");
        }
    }

    #[test]
    fn github_ranges_keep_both_ends() {
        assert_eq!(range(10.0, 9.0, 11.0), "± 1.000");
        // The audit's case: 30380 – 30820 ns around 30523 ns was written "± 219.9".
        assert_eq!(range(30523.0, 30380.0, 30820.0), "+297.0 / -143.0");
        assert_eq!(range(0.0, 0.0, 0.0), "± 0");
        // A subtraction's rounding is not written out.
        assert_eq!(range(30523.1, 30303.2, 30743.0), "± 219.9");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
