//! What an HTML report is made of, read from the files given: result files of `run` and
//! `train`, `measure` reports with their power/memory traces, ceilings files, and the run
//! history. Each file is recognised by its content, not its name.
use crate::ceilings::{self, Ceilings};
use crate::UsageError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use wattbench_core::result::{read_runs, RunFile};
use wattbench_energy::measure::{MeasureReport, SCHEMA as MEASURE_SCHEMA};
use wattbench_history::{trend, Analysis, History, Metric, SeriesFilter};

/// A result file of `run` or `train`.
pub struct RunInput {
    /// Where it was read.
    pub path: PathBuf,
    /// Its document.
    pub doc: RunFile,
}

/// A `measure` report and its trace.
pub struct MeasureInput {
    /// Where it was read.
    pub path: PathBuf,
    /// The report.
    pub report: MeasureReport,
    /// Its trace, when found (given, or `<stem>.trace.csv` beside it).
    pub trace: Option<TraceInput>,
}

/// A power/memory trace (`measure`'s CSV): named columns of numbers, empty cells as `None`.
pub struct TraceInput {
    /// Where it was read.
    pub path: PathBuf,
    /// Column names, `t_s` first.
    pub columns: Vec<String>,
    /// Rows, one value per column.
    pub rows: Vec<Vec<Option<f64>>>,
}

impl TraceInput {
    /// Parse the CSV `measure` writes (`Trace::to_csv`).
    pub fn parse(path: &Path, text: &str) -> Result<TraceInput, String> {
        let mut lines = text.lines();
        let header = lines.next().ok_or("empty trace")?;
        let columns: Vec<String> = header.split(',').map(|s| s.trim().to_string()).collect();
        if columns.first().map(String::as_str) != Some("t_s") {
            return Err("not a wattbench trace (its first column is not `t_s`)".into());
        }
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != columns.len() {
                return Err(format!(
                    "row {}: {} cells, the header has {}",
                    i + 2,
                    cells.len(),
                    columns.len()
                ));
            }
            let row = cells
                .iter()
                .map(|c| {
                    let c = c.trim();
                    if c.is_empty() {
                        Ok(None)
                    } else {
                        c.parse::<f64>()
                            .map(Some)
                            .map_err(|e| format!("row {}: `{c}`: {e}", i + 2))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(row);
        }
        Ok(TraceInput {
            path: path.to_path_buf(),
            columns,
            rows,
        })
    }

    /// The series of column `name` as (t, value) points, from its first reading on. An empty
    /// cell after it is a sample without a reading, given as a NaN value: the plot breaks the
    /// line there and counts it ([`super::plot::Line`]), rather than draw a line through
    /// readings that were never taken. Cells before the first reading are left out (the
    /// first row never has a power: it is the mean since the previous row), and so are rows
    /// without a time. Empty when the column has no reading at all.
    pub fn series(&self, name: &str) -> Vec<(f64, f64)> {
        let Some(i) = self.columns.iter().position(|c| c == name) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|r| Some((r[0]?, r[i])))
            .skip_while(|(_, v)| v.is_none())
            .map(|(t, v)| (t, v.unwrap_or(f64::NAN)))
            .collect()
    }
}

/// The run history, analysed.
pub struct HistoryInput {
    /// The database.
    pub path: PathBuf,
    /// Runs recorded in it.
    pub runs: usize,
    /// Every time series, analysed (change points, known breaks).
    pub series: Vec<Analysis>,
}

/// Everything the report shows.
#[derive(Default)]
pub struct Inputs {
    /// Result files of `run` and `train`.
    pub runs: Vec<RunInput>,
    /// `measure` reports.
    pub measures: Vec<MeasureInput>,
    /// Traces given without their report.
    pub traces: Vec<TraceInput>,
    /// Ceilings files: given, or found for the result files' machines.
    pub ceilings: Vec<(PathBuf, Ceilings)>,
    /// Machines of the result files without a ceilings file, and where they were looked for.
    pub ceilings_missing: Vec<(String, String)>,
    /// Ceilings files given (as inputs or with --ceilings) that match no result file's
    /// machine: each with its machine.
    pub ceilings_unmatched: Vec<(PathBuf, String)>,
    /// The history, when there is one.
    pub history: Option<HistoryInput>,
    /// Why there is no history section, when there is none.
    pub history_note: Option<String>,
}

#[derive(Deserialize)]
struct Head {
    schema_version: Option<serde_json::Number>,
    schema: Option<String>,
    hardware_fingerprint: Option<String>,
}

impl Inputs {
    /// The host names of the runs measured on the kind of machine `fp`.
    pub fn hosts_of(&self, fp: &str) -> Vec<&str> {
        self.runs
            .iter()
            .filter(|r| r.doc.environment.hardware_fingerprint() == fp)
            .filter_map(|r| r.doc.environment.host.hostname.as_deref())
            .collect()
    }

    /// Every file the report was made from: result files, measure reports and their traces,
    /// traces, ceilings files (given or found) and the history database.
    pub fn files(&self) -> Vec<&Path> {
        let runs = self.runs.iter().map(|r| r.path.as_path());
        let measures = self.measures.iter().flat_map(|m| {
            std::iter::once(m.path.as_path()).chain(m.trace.as_ref().map(|t| t.path.as_path()))
        });
        let traces = self.traces.iter().map(|t| t.path.as_path());
        let ceilings = self.ceilings.iter().map(|(p, _)| p.as_path());
        let history = self.history.iter().map(|h| h.path.as_path());
        runs.chain(measures)
            .chain(traces)
            .chain(ceilings)
            .chain(history)
            .collect()
    }
}

fn read(path: &Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))
}

/// The files of `path`: itself, or the `*.json` and `*.csv` files directly inside a folder,
/// in name order.
fn expand(path: &Path) -> Result<Vec<PathBuf>, UsageError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "json" || (x == "csv" && is_trace_name(p)))
        })
        .collect();
    if v.is_empty() {
        return Err(UsageError(format!(
            "{}: no .json or .trace.csv file in this folder (give result files, measure \
             reports, ceilings files or traces, or folders holding them)",
            path.display()
        )));
    }
    v.sort();
    Ok(v)
}

fn is_trace_name(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".trace.csv"))
}

/// The trace `measure` writes beside `report` by default.
fn default_trace(report: &Path) -> PathBuf {
    let stem = report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    report.with_file_name(format!("{stem}.trace.csv"))
}

fn same(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Read every input: `paths` (files or folders), the `ceilings` files given, and the history
/// (`history`, else the default database when it exists). A file that is none of the known
/// kinds is a usage error naming it.
pub fn load(
    paths: &[PathBuf],
    ceilings_given: &[PathBuf],
    history: Option<&Path>,
) -> Result<Inputs, UsageError> {
    let mut inp = Inputs::default();
    let mut traces = Vec::new();
    let files = paths
        .iter()
        .map(|p| expand(p))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    crate::output::distinct_files(&files)?;
    // Each run's label, `PATH` or `PATH#i` in a merged file, for the check that no run is
    // given twice.
    let mut labels = Vec::new();
    for path in files {
        let text = read(&path)?;
        let bad = |why: String| UsageError(format!("{}: {why}", path.display()));
        if path.extension().is_some_and(|x| x == "csv") || text.starts_with("t_s") {
            traces.push(TraceInput::parse(&path, &text).map_err(bad)?);
            continue;
        }
        let head: Head = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "not a result file, measure report, ceilings file or trace: {}",
                wattbench_core::result::not_json(&text, &e)
            ))
        })?;
        if let Some(s) = head.schema {
            if s != MEASURE_SCHEMA {
                return Err(bad(format!(
                    "a measure report of schema `{s}`; this wattbench reads `{MEASURE_SCHEMA}`"
                )));
            }
            let report: MeasureReport =
                serde_json::from_str(&text).map_err(|e| bad(format!("measure report: {e}")))?;
            inp.measures.push(MeasureInput {
                path,
                report,
                trace: None,
            });
        } else if head.hardware_fingerprint.is_some() {
            let c = Ceilings::from_json(&text).map_err(|e| bad(e.to_string()))?;
            inp.ceilings.push((path, c));
        } else if head.schema_version.is_some() {
            let docs = read_runs(&text).map_err(|e| bad(e.to_string()))?;
            let many = docs.len() > 1;
            for (i, doc) in docs.into_iter().enumerate() {
                labels.push(if many {
                    format!("{}#{}", path.display(), i + 1)
                } else {
                    path.display().to_string()
                });
                inp.runs.push(RunInput {
                    path: path.clone(),
                    doc,
                });
            }
        } else {
            return Err(bad(
                "not a result file, measure report, ceilings file or trace (no `schema_version` \
                 or `schema` key)"
                    .into(),
            ));
        }
    }
    crate::output::distinct_runs(
        labels
            .iter()
            .map(String::as_str)
            .zip(inp.runs.iter().map(|r| &r.doc)),
    )?;
    // Each measure report takes its trace: one given with the default name, else the file
    // beside it.
    for m in &mut inp.measures {
        let want = default_trace(&m.path);
        if let Some(i) = traces.iter().position(|t| same(&t.path, &want)) {
            m.trace = Some(traces.remove(i));
        } else if want.is_file() {
            let text = read(&want)?;
            m.trace = Some(
                TraceInput::parse(&want, &text)
                    .map_err(|e| UsageError(format!("{}: {e}", want.display())))?,
            );
        }
    }
    inp.traces = traces;
    for path in ceilings_given {
        // Given as --ceilings and found among the inputs too: one file, read once.
        if inp.ceilings.iter().any(|(p, _)| same(p, path)) {
            continue;
        }
        let text = read(path)?;
        let c = Ceilings::from_json(&text)
            .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
        inp.ceilings.push((path.clone(), c));
    }
    // Ceilings of the result files' machines, where none was given: the default folder, and
    // `ceilings/` beside the results' folder (results/runs/X.json → results/ceilings/).
    let mut dirs = vec![PathBuf::from(ceilings::DEFAULT_DIR)];
    for r in &inp.runs {
        if let Some(parent) = r.path.parent().and_then(Path::parent) {
            let d = parent.join("ceilings");
            if !dirs.iter().any(|x| same(x, &d)) {
                dirs.push(d);
            }
        }
    }
    let mut fps: Vec<String> = inp
        .runs
        .iter()
        .map(|r| r.doc.environment.hardware_fingerprint())
        .collect();
    fps.dedup();
    for fp in fps {
        if inp
            .ceilings
            .iter()
            .any(|(_, c)| c.hardware_fingerprint == fp)
        {
            continue;
        }
        // Every file of this machine found, not only the one chosen: the page and stderr
        // then say which is used and why (see `ceilings::choose`).
        let found = ceilings::find_all(&fp, &dirs);
        if found.is_empty() {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            if !inp.ceilings_missing.iter().any(|(f, _)| *f == fp) {
                inp.ceilings_missing.push((fp, looked.join(", ")));
            }
        } else {
            inp.ceilings.extend(found);
        }
    }
    // Said on stderr as in the page: a ceilings file given for no input's machine, and the
    // choice between several of one machine.
    if !inp.runs.is_empty() {
        let fps: Vec<String> = inp
            .runs
            .iter()
            .map(|r| r.doc.environment.hardware_fingerprint())
            .collect();
        for (path, c) in &inp.ceilings {
            if !fps.contains(&c.hardware_fingerprint) {
                eprintln!(
                    "warning: the ceilings file {} measures a machine no input comes from ({}): \
                     not used",
                    path.display(),
                    c.hardware_fingerprint
                );
                inp.ceilings_unmatched
                    .push((path.clone(), c.hardware_fingerprint.clone()));
            }
        }
        let mut seen: Vec<&String> = Vec::new();
        for fp in &fps {
            if seen.contains(&fp) {
                continue;
            }
            seen.push(fp);
            let mine: Vec<&(PathBuf, Ceilings)> = inp
                .ceilings
                .iter()
                .filter(|(_, c)| c.hardware_fingerprint == *fp)
                .collect();
            if let Some((_, Some(why))) = ceilings::choose(&mine, &inp.hosts_of(fp)) {
                eprintln!("note: {why}");
            }
        }
    }
    load_history(&mut inp, history)?;
    Ok(inp)
}

fn load_history(inp: &mut Inputs, given: Option<&Path>) -> Result<(), UsageError> {
    let path = crate::history::db_path(given);
    if given.is_none() && !path.is_file() {
        inp.history_note = Some(format!(
            "no run history yet: {} does not exist (record runs with `wattbench run --record` \
             or `wattbench history add FILE`, or give --history DB)",
            path.display()
        ));
        return Ok(());
    }
    let h = match History::open_existing(&path) {
        Ok(h) => h,
        // The default database, empty: no history yet, not an error of this report.
        Err(e @ wattbench_history::HistoryError::Empty(_)) if given.is_none() => {
            inp.history_note = Some(format!("no run history yet: {e}"));
            return Ok(());
        }
        Err(e) => return Err(UsageError(e.to_string())),
    };
    let runs = h.runs().map_err(|e| UsageError(e.to_string()))?.len();
    let filter = SeriesFilter {
        metric: Some(Metric::TimeS),
        ..SeriesFilter::default()
    };
    let mut series =
        trend::analyse(&h, &filter, &Default::default()).map_err(|e| UsageError(e.to_string()))?;
    // The cases and machines of the result files given, when there are any.
    if !inp.runs.is_empty() {
        series.retain(|a| {
            inp.runs.iter().any(|r| {
                r.doc.environment.hardware_fingerprint() == a.series.hardware_fp
                    && (r.doc.cases.iter().any(|c| c.id == a.series.case_id)
                        || r.doc.trainings.iter().any(|t| t.id == a.series.case_id))
            })
        });
    }
    inp.history = Some(HistoryInput { path, runs, series });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TraceInput;
    use std::path::Path;

    #[test]
    fn a_trace_keeps_its_missing_readings_as_gaps() {
        let csv = "t_s,gpu0_watts,rss_bytes\n0.0,,5\n0.1,300,5\n0.2,,\n0.3,100,6\n0.4,,7\n";
        let t = TraceInput::parse(Path::new("t.csv"), csv).unwrap();
        let w = t.series("gpu0_watts");
        // From the first reading on (the first row never has a power), an empty cell NaN:
        // a gap between readings, or at the end.
        assert_eq!(w.len(), 4, "{w:?}");
        assert_eq!((w[0], w[2]), ((0.1, 300.0), (0.3, 100.0)));
        assert!(w[1].1.is_nan() && w[3].1.is_nan() && w[3].0 == 0.4, "{w:?}");
        let rss = t.series("rss_bytes");
        assert_eq!(rss.len(), 5);
        assert!(rss[2].1.is_nan() && rss[4].1 == 7.0, "{rss:?}");
        assert!(t.series("nope").is_empty());
    }
}
