//! `wattbench history`: record result files in the run history and show each case's trend
//! and change points. The database and the analysis are `wattbench-history`'s; this module
//! owns the command line, the default database path and the text and JSON output.
use crate::options::{choices, usage};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use wattbench_core::units;
use wattbench_history::db::keyed_runs;
use wattbench_history::{
    changepoint, trend, AddOutcome, Analysis, ChangePoint, Correction, Gap, History, HistoryError,
    KnownBreak, Metric, SeriesFilter,
};

/// The history database when none is given and `$WATTBENCH_HISTORY` is unset.
pub const DEFAULT_DB: &str = "results/history.sqlite";
/// The environment variable naming the history database.
pub const DB_ENV: &str = "WATTBENCH_HISTORY";

/// Options of `wattbench history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// History database (default: $WATTBENCH_HISTORY, else results/history.sqlite).
    #[arg(long, value_name = "PATH", global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<HistoryCmd>,
}

#[derive(Subcommand, Debug)]
enum HistoryCmd {
    /// Record result files (`run` or `train`); a file recorded before is not recorded again.
    Add {
        /// Result files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Each case's figures, trend and change points (the default).
    Show(Select),
    /// Every change point, with the commits it lies between.
    Changes(Select),
}

/// Which series to show.
#[derive(Args, Debug, Default)]
struct Select {
    /// Only the case with this id, or (when none has it) every case whose id contains it.
    #[arg(long, value_name = "ID")]
    case: Option<String>,
    /// Only this metric: time, energy or memory.
    #[arg(long, value_name = "METRIC")]
    metric: Option<String>,
    /// Only machines whose hardware fingerprint contains this (e.g. a GPU name).
    #[arg(long, value_name = "TEXT")]
    hardware: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The database: `--db`, else `$WATTBENCH_HISTORY`, else [`DEFAULT_DB`].
pub(crate) fn db_path(given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::var_os(DB_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_DB), PathBuf::from)
    })
}

/// Errors of what the user gave (a missing or foreign database, a bad file) are usage
/// errors; SQLite's own stay internal.
fn user_error(e: HistoryError) -> anyhow::Error {
    match e {
        HistoryError::Sqlite { .. } => e.into(),
        _ => usage(e.to_string()),
    }
}

/// Open (creating) the history for writing; its folder is made when missing.
fn open_for_writing(db: &Path) -> Result<History> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder of {}", db.display()))?;
    }
    History::open(db).map_err(user_error)
}

/// Run the command; returns the exit code.
pub fn run(args: HistoryArgs) -> Result<u8> {
    let db = db_path(args.db.as_deref());
    match args.cmd {
        Some(HistoryCmd::Add { files }) => add(&db, &files),
        Some(HistoryCmd::Show(sel)) => show(&db, &sel),
        None => show(&db, &Select::default()),
        Some(HistoryCmd::Changes(sel)) => changes(&db, &sel),
    }
}

/// `history add`: every file is read and checked before any is recorded.
fn add(db: &Path, files: &[PathBuf]) -> Result<u8> {
    let mut runs = Vec::with_capacity(files.len());
    for f in files {
        let bytes =
            std::fs::read(f).map_err(|e| usage(format!("cannot read {}: {e}", f.display())))?;
        let read = keyed_runs(&bytes).map_err(|why| usage(format!("{}: {why}", f.display())))?;
        // A merged file holds several runs: each is named by its place and host.
        let n = read.len();
        runs.extend(read.into_iter().enumerate().map(|(i, (run, key))| {
            let name = if n == 1 {
                f.display().to_string()
            } else {
                format!(
                    "{} [run {} of {n}, host {}, {}]",
                    f.display(),
                    i + 1,
                    run.environment
                        .host
                        .hostname
                        .as_deref()
                        .unwrap_or("unknown"),
                    run.created_at
                )
            };
            (f, name, run, key)
        }));
    }
    let mut history = open_for_writing(db)?;
    for (f, name, run, sha) in runs {
        let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
        match history
            .add_run(&run, &sha, Some(&abs.to_string_lossy()))
            .map_err(user_error)?
        {
            AddOutcome::Added {
                run_id,
                measurements,
            } => println!("recorded {name} as run {run_id} ({measurements} figures)"),
            AddOutcome::AlreadyRecorded { run_id } => {
                println!("{name} was already recorded (run {run_id})")
            }
            AddOutcome::SameRun { run_id } => println!(
                "{name}: its run was already recorded as run {run_id} (same start time, host, \
                 machine and cases, from another file or a copy); not recorded again"
            ),
        }
    }
    println!("{}", db.display());
    Ok(0)
}

/// After `run --record [DB]`: record the committed result file. The file is safe whatever
/// happens here, so a failure is a warning and the run's exit code stands.
pub fn record(db: Option<&Path>, file: &Path) {
    let db = db_path(db);
    // A merged file (`--devices`) holds one run per GPU: each is recorded, and said, on its own.
    let mut said = 0;
    let outcome = (|| -> Result<()> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let runs =
            keyed_runs(&bytes).map_err(|why| anyhow::anyhow!("{}: {why}", file.display()))?;
        let mut history = open_for_writing(&db)?;
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let n = runs.len();
        for (i, (run, sha)) in runs.iter().enumerate() {
            let which = if n == 1 {
                String::new()
            } else {
                format!("run {} of {n} of the file ", i + 1)
            };
            match history.add_run(run, sha, Some(&abs.to_string_lossy()))? {
                AddOutcome::Added { run_id, .. } => eprintln!(
                    "recorded {which}in the history {} (run {run_id})",
                    db.display()
                ),
                AddOutcome::AlreadyRecorded { run_id } | AddOutcome::SameRun { run_id } => {
                    eprintln!(
                        "{which}already recorded as run {run_id} in the history {}",
                        db.display()
                    )
                }
            }
            said += 1;
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        let recorded = if said > 0 {
            format!("its first {said} run(s) were recorded, the rest not")
        } else {
            "not recorded".to_string()
        };
        eprintln!(
            "warning: the result file was written, but {recorded} in the history {}: {e:#} \
             (record it later with `wattbench history add {}`: what is recorded already is \
             not recorded twice)",
            db.display(),
            file.display()
        );
    }
}

/// The detector's name and settings, as the JSON outputs state them.
#[derive(Serialize)]
struct Method {
    name: &'static str,
    #[serde(flatten)]
    config: changepoint::Config,
}

fn method() -> Method {
    Method {
        name: "e-divisive means",
        config: changepoint::Config::default(),
    }
}

/// The analysed series `sel` selects, and the correction for the number of series.
fn analyse(db: &Path, sel: &Select) -> Result<(History, Vec<Analysis>, Correction)> {
    let metric = choices("metric", sel.metric.as_slice(), &Metric::ALL, Metric::short)?.pop();
    let history = History::open_existing(db).map_err(user_error)?;
    let filter = SeriesFilter {
        case: sel.case.clone(),
        metric,
        hardware: sel.hardware.clone(),
    };
    let (analyses, correction) =
        trend::analyse_all(&history, &filter, &method().config).map_err(user_error)?;
    if analyses.is_empty() && (filter.case.is_some() || filter.hardware.is_some()) {
        return Err(usage(format!(
            "no recorded figures match the filters in {}",
            db.display()
        )));
    }
    Ok((history, analyses, correction))
}

/// `history show --json`.
#[derive(Serialize)]
struct ShowDoc<'a> {
    db: &'a Path,
    runs: usize,
    method: Method,
    correction: &'a Correction,
    series: &'a [Analysis],
}

/// One change point of `history changes --json`, with its series.
#[derive(Serialize)]
struct ChangeEntry<'a> {
    case_id: &'a str,
    metric: Metric,
    hardware_fp: &'a str,
    #[serde(flatten)]
    change: &'a ChangePoint,
}

/// `history changes --json`.
#[derive(Serialize)]
struct ChangesDoc<'a> {
    db: &'a Path,
    runs: usize,
    series: usize,
    method: Method,
    changes: Vec<ChangeEntry<'a>>,
    /// Significant changes smaller than the method's `min_change`, not listed.
    minor_changes: usize,
    /// Splits significant in their series alone, not after the correction: not listed.
    unconfirmed: usize,
    /// The correction across series.
    correction: &'a Correction,
    /// The cases with no figure in their machine's latest run (failed, skipped, absent).
    not_in_latest_run: Vec<Missing<'a>>,
}

/// A case with no figure in its machine's latest run, in `history changes`.
#[derive(Serialize)]
struct Missing<'a> {
    case_id: &'a str,
    hardware_fp: &'a str,
    #[serde(flatten)]
    gap: &'a Gap,
}

/// A figure of `metric` for people.
fn fmt_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::TimeS => units::seconds(v),
        Metric::EnergyJ => units::joules(v),
        Metric::MemoryBytes => units::mib(v.max(0.0) as u64),
    }
}

/// The sparkline of a series: the last `max` figures of its latest figure's source (another
/// quantity, an estimate beside measurements or a partial total, would read as a dip or a
/// peak), and how many figures of other sources it leaves out.
fn series_sparkline(a: &Analysis, max: usize) -> (String, usize) {
    let points = &a.series.points;
    let last = points.last().map(|p| &p.source);
    let same: Vec<f64> = (points.iter())
        .filter(|p| Some(&p.source) == last)
        .map(|p| p.value)
        .collect();
    let other = points.len() - same.len();
    (sparkline(&same, max), other)
}

/// The last `max` values as a sparkline, scaled from their minimum to their maximum.
fn sparkline(values: &[f64], max: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let v = &values[values.len().saturating_sub(max)..];
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    v.iter()
        .map(|&x| {
            if hi > lo {
                BARS[(((x - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

/// A commit cut to its first 10 characters (`-dirty` kept), or `?`: the one shortening of
/// the history's commits (`history changes`, the HTML trend). Characters, not bytes: a commit
/// comes from a result file and may be any text.
pub(crate) fn short_commit(c: Option<&str>) -> String {
    c.map_or_else(
        || "?".to_string(),
        |c| {
            let dirty = c.ends_with("-dirty");
            let hash: String = c.trim_end_matches("-dirty").chars().take(10).collect();
            format!("{hash}{}", if dirty { "-dirty" } else { "" })
        },
    )
}

/// Where an energy change point's figures come from, flagged when they are not all one
/// measurement: an estimate (a model's figure, which moves with the CPU time, not with the
/// energy), a total that adds figures of several sources, or a change of source (the two
/// medians are then of two quantities).
fn energy_source(c: &ChangePoint) -> String {
    let Some(label) = c.source.as_deref() else {
        return "; source: not recorded".to_string();
    };
    // The basis label starts with its sources (`estimated+measured [...]`).
    let sources: Vec<&str> = label
        .split([' ', ';'])
        .next()
        .unwrap_or("")
        .split('+')
        .collect();
    let mut flags = Vec::new();
    if c.source_changed {
        flags.push("another source than before it: the two levels are of two quantities");
    }
    match (sources.len() > 1, sources.contains(&"estimated")) {
        (true, true) => flags.push("MIXED sources, partly ESTIMATED: not a measurement"),
        (true, false) => flags.push("MIXED sources: the total adds figures of several kinds"),
        (false, true) => flags.push(
            "ESTIMATED: a model's figures (TDP x CPU time), not a measurement; they move with \
             the CPU time",
        ),
        (false, false) => {}
    }
    if flags.is_empty() {
        format!("; source: {label}")
    } else {
        format!("; source: {label} ({})", flags.join("; "))
    }
}

/// A change point in one line (after its case and metric); an energy one says where its
/// figures come from.
fn describe(metric: Metric, c: &ChangePoint) -> String {
    // A break coincides with the change; whether it caused it, the runs cannot tell.
    let mut cause = if c.known_break {
        format!(
            "; coincides with a known break ({}): look there first, though it may not be the \
             cause",
            c.software_change.join(", ")
        )
    } else if c.provisional {
        "; provisional: found among the last runs, it may lie at any later run up to the \
         latest; more runs will place it"
            .to_string()
    } else {
        String::new()
    };
    if !c.dependency_change.is_empty() {
        cause.push_str(&format!(
            "; these commits also change our Cargo.lock: {}",
            c.dependency_change.join(", ")
        ));
    }
    let until = if c.provisional {
        &c.until_commit
    } else {
        &c.git_commit
    };
    let source = if metric == Metric::EnergyJ {
        energy_source(c)
    } else {
        String::new()
    };
    format!(
        "run {} ({}), commits {}..{}: {} → {} (×{:.3}, p = {}){cause}{source}",
        c.run_id,
        c.created_at,
        short_commit(c.previous_commit.as_deref()),
        short_commit(until.as_deref()),
        fmt_value(metric, c.before_median),
        fmt_value(metric, c.after_median),
        c.ratio,
        fmt_p(c.p_value),
    )
}

/// A p-value for people: three decimals, or two significant digits below 0.001 (the
/// permutations reach 1/10000).
fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// What the test said of a known break where no change of level is reported: a change there
/// too small to report, or significant in this series alone, is said with its figures.
fn known_break_verdict(a: &Analysis, b: &KnownBreak, min_change: f64) -> String {
    let at = |list: &[ChangePoint]| {
        list.iter()
            .find(|c| c.index == b.index && c.source_changed == b.source_changed)
            .map(|c| (c.ratio, c.p_value))
    };
    let quantity = if b.source_changed {
        "another quantity from here: "
    } else {
        ""
    };
    if let Some((ratio, p)) = at(&a.minor_changes) {
        return format!(
            "{quantity}a change of level ×{ratio:.3} (p = {}), under the {}% reported",
            fmt_p(p),
            min_change * 100.0
        );
    }
    if let Some((ratio, p)) = at(&a.unconfirmed) {
        return format!(
            "{quantity}×{ratio:.3} (p = {}) is significant in this series alone, not after the \
             correction for the number of series",
            fmt_p(p)
        );
    }
    let verdict = if b.testable {
        "no significant change of level"
    } else if b.source_changed {
        "too few runs around it to compare levels"
    } else {
        "too few runs around it to test the level yet"
    };
    format!("{quantity}{verdict}")
}

/// The recent runs without a figure of a series, in a line: by kind, with the latest reason
/// of each kind.
fn gaps_line(gaps: &[Gap]) -> Option<String> {
    if gaps.is_empty() {
        return None;
    }
    let kinds = [
        ("failed", "failed in"),
        ("skipped", "skipped in"),
        ("absent", "absent from"),
        ("no_figure", "ran without this figure in"),
        (
            "not_recorded",
            "status not recorded (an older wattbench) in",
        ),
    ];
    let mut parts = Vec::new();
    for (kind, words) in kinds {
        let of: Vec<&Gap> = gaps.iter().filter(|g| g.status == kind).collect();
        let Some(latest) = of.last() else {
            continue;
        };
        let ids: Vec<String> = of.iter().map(|g| g.run_id.to_string()).collect();
        let why = latest
            .reason
            .as_deref()
            .map_or_else(String::new, |r| format!(" (run {}: {r})", latest.run_id));
        parts.push(format!(
            "{words} run{} {}{why}",
            if ids.len() > 1 { "s" } else { "" },
            ids.join(", ")
        ));
    }
    Some(format!(
        "no figure in {} of the machine's last {} runs: {}",
        gaps.len(),
        trend::RECENT_RUNS,
        parts.join("; ")
    ))
}

/// `history show`.
fn show(db: &Path, sel: &Select) -> Result<u8> {
    let (history, analyses, correction) = analyse(db, sel)?;
    let runs = history.runs().map_err(user_error)?.len();
    let min_change = method().config.min_change;
    if sel.json {
        let doc = ShowDoc {
            db,
            runs,
            method: method(),
            correction: &correction,
            series: &analyses,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    println!(
        "history {}: {runs} runs, {} series",
        db.display(),
        analyses.len()
    );
    let mut machine: Option<&str> = None;
    let mut case: Option<&str> = None;
    for a in &analyses {
        let s = &a.series;
        if machine != Some(s.hardware_fp.as_str()) {
            println!("\nmachine: {}", s.hardware_fp);
            machine = Some(&s.hardware_fp);
            case = None;
        }
        if case != Some(s.case_id.as_str()) {
            println!("  {}", s.case_id);
            case = Some(&s.case_id);
        }
        let t = &a.trend;
        let drift = t
            .drift_per_run
            .map_or_else(String::new, |d| format!(", drift {:+.2}%/run", d * 100.0));
        let source = s
            .points
            .last()
            .and_then(|p| p.source.as_deref())
            .filter(|_| s.metric == Metric::EnergyJ)
            .map_or_else(String::new, |src| format!(" ({src})"));
        let (spark, other) = series_sparkline(a, 40);
        let last_run = s.points.last().map_or(0, |p| p.run_id);
        println!(
            "    {:<7} {:>3} runs  last {} (run {last_run}){source}  level {} since run {}{drift}  \
             {spark}",
            s.metric.short(),
            t.runs,
            fmt_value(s.metric, t.last),
            fmt_value(s.metric, t.level_median),
            s.points[t.level_start].run_id,
        );
        if other > 0 {
            println!(
                "            the line draws the figures of the last one's source only: {other} of \
                 other sources (another quantity) left out"
            );
        }
        if let Some(line) = gaps_line(&a.recent_gaps) {
            println!("            {line}");
        }
        for c in &a.change_points {
            println!("            change at {}", describe(s.metric, c));
        }
        // Not listed by `changes` (noise alone gives as many over all the series), but a
        // large one, or one in the last runs, may be real: marked, for a look.
        let floor = (1.0 + min_change).ln();
        for c in (a.unconfirmed.iter()).filter(|c| c.ratio.ln().abs() >= floor && !c.known_break) {
            println!(
                "            unconfirmed: {} (significant in this series alone, not after the \
                 correction for the {} tests over all series: more runs will tell)",
                describe(s.metric, c),
                correction.tests
            );
        }
        for b in &a.known_breaks {
            // Unless reported as a change there: a change of level of one source at a change
            // of source is not the change of source.
            let reported = (a.change_points.iter()).any(|c| {
                c.index == b.index && c.known_break && c.source_changed == b.source_changed
            });
            if !reported {
                println!(
                    "            {} at run {} ({}): {}",
                    if b.source_changed {
                        "source changed"
                    } else {
                        "known break"
                    },
                    b.run_id,
                    known_break_verdict(a, b, min_change),
                    b.changed.join(", ")
                );
            }
        }
    }
    Ok(0)
}

/// `history changes`.
fn changes(db: &Path, sel: &Select) -> Result<u8> {
    let (history, analyses, correction) = analyse(db, sel)?;
    let recorded = history.runs().map_err(user_error)?;
    let runs = recorded.len();
    let entries: Vec<ChangeEntry> = analyses
        .iter()
        .flat_map(|a| {
            a.change_points.iter().map(|c| ChangeEntry {
                case_id: &a.series.case_id,
                metric: a.series.metric,
                hardware_fp: &a.series.hardware_fp,
                change: c,
            })
        })
        .collect();
    let minor: usize = analyses.iter().map(|a| a.minor_changes.len()).sum();
    let unconfirmed: usize = analyses.iter().map(|a| a.unconfirmed.len()).sum();
    let min_change = method().config.min_change;
    // The cases with no figure in the latest run of their machine (and command), once each.
    let latest = |hw: &str, train: bool| {
        let command = if train { "train" } else { "run" };
        (recorded.iter().rev())
            .find(|r| r.hardware_fp == hw && r.command == command)
            .map(|r| r.id)
    };
    let mut missing: Vec<Missing> = Vec::new();
    for a in &analyses {
        let s = &a.series;
        let last = latest(&s.hardware_fp, s.case_id.starts_with("train/"));
        let Some(gap) = a.recent_gaps.iter().find(|g| Some(g.run_id) == last) else {
            continue;
        };
        if gap.status == "no_figure"
            || missing
                .iter()
                .any(|m| m.case_id == s.case_id && m.hardware_fp == s.hardware_fp)
        {
            continue;
        }
        missing.push(Missing {
            case_id: &s.case_id,
            hardware_fp: &s.hardware_fp,
            gap,
        });
    }
    if sel.json {
        let doc = ChangesDoc {
            db,
            runs,
            series: analyses.len(),
            method: method(),
            changes: entries,
            minor_changes: minor,
            unconfirmed,
            correction: &correction,
            not_in_latest_run: missing,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    let footer = || {
        println!("{}", correction_line(&correction, unconfirmed));
        if minor > 0 {
            println!(
                "{minor} significant change(s) smaller than {}% not listed (`history show \
                 --json` has them)",
                min_change * 100.0
            );
        }
        missing_lines(&missing);
    };
    if entries.is_empty() {
        println!(
            "no change points in {} series of {runs} runs ({})",
            analyses.len(),
            db.display()
        );
        footer();
        return Ok(0);
    }
    let mut machine: Option<&str> = None;
    for e in &entries {
        if machine != Some(e.hardware_fp) {
            println!("machine: {}", e.hardware_fp);
            machine = Some(e.hardware_fp);
        }
        println!(
            "  {} {}: {}",
            e.case_id,
            e.metric.short(),
            describe(e.metric, e.change)
        );
    }
    footer();
    Ok(0)
}

/// How the changes listed were corrected for the number of series tested, and what noise
/// alone would have given without it.
fn correction_line(c: &Correction, unconfirmed: usize) -> String {
    let pct = c.alpha * 100.0;
    let mut line = format!(
        "{} permutation tests over the {} series of the database: changes are kept by \
         Benjamini–Hochberg at a false-discovery rate of {pct}% (about {pct}% of those listed \
         may still be noise); uncorrected, noise alone would give about {:.1} at p ≤ {}",
        c.tests, c.series, c.expected_by_chance, c.alpha
    );
    if unconfirmed > 0 {
        line.push_str(&format!(
            "; {unconfirmed} significant in their series alone but not after the correction, \
             not listed (`history show` marks those over the reporting floor)"
        ));
    }
    if c.permutations_too_few {
        line.push_str(&format!(
            "; warning: with {} tests the strictest threshold ({:.1e}) is below the smallest \
             p-value the permutations can give: a single real change may be missed",
            c.tests,
            c.alpha / c.tests as f64
        ));
    }
    line
}

/// The cases with no figure in their machine's latest run: failed and skipped ones named
/// (a case that broke is not to vanish), absent ones counted.
fn missing_lines(missing: &[Missing]) {
    let mut absent = 0;
    for m in missing {
        match m.gap.status.as_str() {
            "failed" | "skipped" => println!(
                "{} {} in the latest run of its machine (run {}){}",
                m.case_id,
                m.gap.status.to_uppercase(),
                m.gap.run_id,
                m.gap
                    .reason
                    .as_deref()
                    .map_or_else(String::new, |r| format!(": {r}"))
            ),
            _ => absent += 1,
        }
    }
    if absent > 0 {
        println!(
            "{absent} case(s) with a history are absent from the latest run of their machine \
             (another suite or filter, an interrupted run, or a run recorded by an older \
             wattbench); `history show` lists them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time series of `values` (one run a day, commit `c{i}`), point `i` of source
    /// `source(i)` and software `software(i)`, analysed alone.
    fn analysed(
        values: &[f64],
        source: impl Fn(usize) -> &'static str,
        software: impl Fn(usize) -> &'static str,
    ) -> Analysis {
        let points = (values.iter().enumerate())
            .map(|(i, &value)| trend::Point {
                run_id: i as i64 + 1,
                created_at: format!("2026-01-{:02}T00:00:00+00:00", i + 1),
                git_commit: Some(format!("c{i}")),
                software_fp: software(i).into(),
                variables_fp: None,
                conditions_fp: None,
                build_profile: None,
                harness_fp: None,
                before_fp: None,
                value,
                low: None,
                high: None,
                n_samples: None,
                source: Some(source(i).into()),
            })
            .collect();
        wattbench_history::Series {
            case_id: "gemm/infer/m8/f32/reference/cpu".into(),
            metric: Metric::EnergyJ,
            hardware_fp: "cpu=test x2".into(),
            points,
        }
        .analyse(&changepoint::Config::default())
    }

    #[test]
    fn the_sparkline_draws_the_latest_source_only() {
        // One night estimated at a fifth of the measured figure: drawn, it read as a dip of
        // the measured level; it is left out, and said to be.
        let v = [10.0, 10.5, 2.0, 10.0, 10.5];
        let a = analysed(
            &v,
            |i| if i == 2 { "estimated" } else { "measured" },
            |_| "",
        );
        assert_eq!(series_sparkline(&a, 40), ("▁█▁█".to_string(), 1));
        let a = analysed(&v, |_| "measured", |_| "");
        assert_eq!(series_sparkline(&a, 40).1, 0);
    }

    #[test]
    fn a_known_break_with_a_small_change_says_it() {
        // A 2 % step at a compiler change on a quiet series: not listed (under 5 %), and the
        // break's line says what it saw rather than "no significant change".
        let v: Vec<f64> = (0..16)
            .map(|i| if i < 8 { 1.0 } else { 1.02 } * (1.0 + 0.0005 * (i % 3) as f64))
            .collect();
        let a = analysed(
            &v,
            |_| "measured",
            |i| {
                if i < 8 {
                    "rustc=1.95.0"
                } else {
                    "rustc=1.96.0"
                }
            },
        );
        assert!(a.change_points.is_empty(), "{:?}", a.change_points);
        let verdict = known_break_verdict(&a, &a.known_breaks[0], 0.05);
        assert!(
            verdict.starts_with("a change of level ×1.02")
                && verdict.ends_with("under the 5% reported"),
            "{verdict}"
        );
    }

    #[test]
    fn gaps_are_said_by_kind_with_the_latest_reason() {
        let gap = |run_id: i64, status: &str, reason: Option<&str>| Gap {
            run_id,
            created_at: String::new(),
            git_commit: None,
            status: status.into(),
            reason: reason.map(String::from),
        };
        assert_eq!(gaps_line(&[]), None);
        let line = gaps_line(&[
            gap(3, "absent", None),
            gap(8, "failed", Some("a")),
            gap(9, "failed", Some("b")),
            gap(10, "skipped", Some("no memory")),
        ])
        .unwrap();
        assert_eq!(
            line,
            "no figure in 4 of the machine's last 10 runs: failed in runs 8, 9 (run 9: b); \
             skipped in run 10 (run 10: no memory); absent from run 3"
        );
    }

    #[test]
    fn sparkline_spans_the_bars() {
        assert_eq!(sparkline(&[1.0, 2.0, 3.0], 40), "▁▅█");
        assert_eq!(sparkline(&[5.0, 5.0], 40), "▄▄");
        assert_eq!(sparkline(&[9.0, 1.0, 2.0], 2), "▁█");
    }

    #[test]
    fn an_energy_change_says_its_source_and_flags_estimates() {
        let change = |source: Option<&str>, source_changed: bool| ChangePoint {
            index: 8,
            run_id: 9,
            created_at: "2026-01-09T00:00:00+00:00".into(),
            git_commit: Some("b".into()),
            previous_commit: Some("a".into()),
            before_median: 10.0,
            after_median: 12.0,
            ratio: 1.2,
            p_value: 0.005,
            statistic: 3.0,
            known_break: source_changed,
            software_change: Vec::new(),
            provisional: false,
            until_commit: None,
            dependency_change: Vec::new(),
            source: source.map(String::from),
            source_changed,
        };
        let line = |c: &ChangePoint| describe(Metric::EnergyJ, c);
        let measured = line(&change(Some("measured [package (measured)]"), false));
        assert!(
            measured.ends_with("; source: measured [package (measured)]"),
            "{measured}"
        );
        let estimated = line(&change(Some("estimated [cpu-estimate (estimated)]"), false));
        assert!(
            estimated
                .contains("source: estimated [cpu-estimate (estimated)] (ESTIMATED: a model's"),
            "{estimated}"
        );
        let mixed = line(&change(Some("estimated+measured [gpu0 (measured)]"), false));
        assert!(
            mixed.contains("(MIXED sources, partly ESTIMATED"),
            "{mixed}"
        );
        let mixed = line(&change(Some("integrated+measured"), false));
        assert!(mixed.contains("(MIXED sources: "), "{mixed}");
        let switched = line(&change(Some("measured"), true));
        assert!(
            switched.contains("source: measured (another source than before it"),
            "{switched}"
        );
        assert!(line(&change(None, false)).ends_with("; source: not recorded"));
        // Time and memory lines say nothing of it.
        let time = describe(Metric::TimeS, &change(Some("median"), false));
        assert!(!time.contains("source"), "{time}");
    }

    #[test]
    fn commits_are_shortened_keeping_dirty() {
        assert_eq!(short_commit(Some("0123456789abcdef")), "0123456789");
        assert_eq!(
            short_commit(Some("0123456789abcdef-dirty")),
            "0123456789-dirty"
        );
        assert_eq!(short_commit(None), "?");
        // Cut by characters: multibyte ones (2 bytes each here) are kept whole, not a panic.
        assert_eq!(short_commit(Some("aéééééééééééé")), "aééééééééé");
        assert_eq!(short_commit(Some("ééé-dirty")), "ééé-dirty");
    }
}
