//! `wattbench merge`: several result files in one (the tasks of a Slurm array, the machines of
//! a fleet), every run kept whole with its own environment, so each case keeps its hardware.
use crate::options::usage;
use crate::output;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use wattbench_compare::ResultSet;
use wattbench_core::result::{MergedFile, RunFile};

/// Options of `wattbench merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Result files of `run` or `train` (merged files too), or folders of them (every .json
    /// directly inside, in name order, but other wattbench documents such as a ceilings
    /// file, which are left out and listed). An output that is one of the files read, or a new
    /// .json inside a folder read, is refused (the folder would hold its runs twice). The
    /// same run given twice is refused.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// The merged file.
    #[arg(long, short = 'o', value_name = "MERGED.json")]
    output: PathBuf,
    /// Keep a case measured more than once on the same machine (same host name and
    /// hardware): refused by default, since it is usually one task run twice; `compare`
    /// pools such runs as repeats.
    #[arg(long)]
    allow_duplicates: bool,
}

/// Run the command; returns the exit code.
pub fn run(args: MergeArgs) -> Result<u8> {
    // Every input read and checked before the output is touched (folders and merged files
    // are read as `compare` reads them).
    output::not_an_input(&args.output, &args.inputs)?;
    let mut inputs: Vec<(String, RunFile)> = Vec::new();
    for path in &args.inputs {
        let set = ResultSet::load(path).map_err(|e| usage(e.to_string()))?;
        for f in &set.left_out {
            eprintln!("left out: {f}");
        }
        inputs.extend(set.files.into_iter().zip(set.runs));
    }
    output::distinct_runs(inputs.iter().map(|(l, r)| (l.as_str(), r)))?;
    let inner = inner_merges(&mut inputs);
    let mut merged = MergedFile::merge(
        inputs,
        args.allow_duplicates,
        crate::argv(),
        chrono::Utc::now().to_rfc3339(),
    )
    .map_err(|e| usage(e.to_string()))?;
    merged.merged.notes.extend(inner);
    let overlapping = overlapping_host_counters(&merged);
    merged.merged.notes.extend(overlapping.iter().cloned());
    let file = output::prepare_beside_stdout(
        &args.output,
        "what it merged",
        "write the merged file to a path",
    )?;
    output::commit(file, serde_json::to_string_pretty(&merged)?.as_bytes())?;
    crate::signals::quiet_broken_pipe();
    let mut machines: Vec<String> = merged
        .runs
        .iter()
        .map(|r| {
            format!(
                "{} ({})",
                r.environment
                    .host
                    .hostname
                    .as_deref()
                    .unwrap_or("unknown host"),
                r.environment.hardware_fingerprint()
            )
        })
        .collect();
    machines.sort();
    machines.dedup();
    let cases: usize = merged
        .runs
        .iter()
        .map(|r| r.cases.len() + r.trainings.len())
        .sum();
    println!(
        "merged {} runs ({cases} cases) from {} machine(s) into {}",
        merged.runs.len(),
        machines.len(),
        args.output.display()
    );
    for m in machines {
        println!("  {m}");
    }
    for line in caveats(&merged).iter().chain(&overlapping) {
        eprintln!("note: {line}");
    }
    Ok(0)
}

/// A run's time window: from its start (`created_at`) for `duration_s`; `None` when its start
/// cannot be read.
fn window(run: &RunFile) -> Option<(f64, f64)> {
    let start = chrono::DateTime::parse_from_rfc3339(&run.created_at).ok()?;
    let t0 = start.timestamp_micros() as f64 / 1e6;
    Some((t0, t0 + run.duration_s.max(0.0)))
}

/// Whether an energy total of `run` adds one of the host's counters (CPU package, DRAM).
fn adds_host_counters(run: &RunFile) -> bool {
    (run.cases.iter().filter_map(|c| c.energy.as_ref()))
        .chain(run.trainings.iter().map(|t| &t.energy))
        .any(crate::devices::adds_host_counters)
}

/// Runs from one host whose time windows overlap and whose energy totals add the host's
/// counters (two Slurm tasks packed on one node): each counter counted both runs' work, so
/// neither figure is its run's alone. One note per such pair; workers of one `run --devices`
/// are left out, their cases already say so.
fn overlapping_host_counters(merged: &MergedFile) -> Vec<String> {
    let runs: Vec<(&String, &RunFile, (f64, f64))> = (merged.merged.inputs.iter())
        .zip(&merged.runs)
        .filter(|(_, r)| r.environment.host.hostname.is_some() && adds_host_counters(r))
        .filter_map(|(l, r)| Some((l, r, window(r)?)))
        .collect();
    let mut out = Vec::new();
    for (i, (la, a, wa)) in runs.iter().enumerate() {
        for (lb, b, wb) in &runs[i + 1..] {
            let same_host = a.environment.host.hostname == b.environment.host.hostname;
            let both_workers = [a, b]
                .iter()
                .all(|r| crate::devices::workers_at_once(&r.environment) > 1);
            if same_host && !both_workers && wa.0 < wb.1 && wb.0 < wa.1 {
                out.push(format!(
                    "{la} and {lb} ran at the same time on {} (their time windows overlap): \
                     the host counters in their energy totals (CPU package, DRAM) counted both \
                     runs' work, neither figure is its run's alone",
                    a.environment.host.hostname.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    out
}

/// What merged files among the inputs said about their runs, kept: each run's label there is
/// added to its label here (`devices.json#2 (gpu1 (GPU-...))`), and their notes (the GPUs ran
/// at once...) are returned, each prefixed with its file.
fn inner_merges(inputs: &mut [(String, RunFile)]) -> Vec<String> {
    let mut read: Vec<(String, Option<MergedFile>)> = Vec::new();
    let mut notes = Vec::new();
    for (label, _) in inputs.iter_mut() {
        let path = output::label_path(label).to_string();
        if !read.iter().any(|(p, _)| *p == path) {
            let m = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<MergedFile>(&t).ok());
            if let Some(m) = &m {
                notes.extend(m.merged.notes.iter().map(|n| format!("{path}: {n}")));
            }
            read.push((path.clone(), m));
        }
        let Some((_, Some(m))) = read.iter().find(|(p, _)| *p == path) else {
            continue;
        };
        let i = label[path.len()..]
            .strip_prefix('#')
            .and_then(|i| i.parse::<usize>().ok())
            .map_or(0, |i| i.saturating_sub(1));
        if let Some(inner) = m.merged.inputs.get(i) {
            *label = format!("{label} ({inner})");
        }
    }
    notes
}

/// What a merge must not hide: runs that were interrupted (a task killed at its time limit
/// holds only the cases it finished) and cases that failed or were skipped, per input.
pub fn caveats(merged: &MergedFile) -> Vec<String> {
    use wattbench_core::result::Status;
    let mut out = Vec::new();
    for (label, run) in merged.merged.inputs.iter().zip(&merged.runs) {
        if run.interrupted {
            out.push(format!(
                "{label} was interrupted: it holds only the cases it completed"
            ));
        }
        let count = |s: Status| {
            run.cases.iter().filter(|c| c.status == s).count()
                + run.trainings.iter().filter(|t| t.status == s).count()
        };
        let (failed, skipped) = (count(Status::Failed), count(Status::Skipped));
        if failed + skipped > 0 {
            out.push(format!(
                "{label}: {failed} case(s) failed, {skipped} skipped (the file says why)"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::energy::{DomainRecord, Source};
    use wattbench_core::testing::{case_energy, domain_row, run_file, timed_case};

    /// A 1 s run on `host` from `start`, its case's total over a domain of `scope`.
    fn run_at(host: &str, start: &str, scope: &str) -> RunFile {
        let mut e = case_energy(1.0, 0.01, Source::Measured);
        e.domains = vec![DomainRecord {
            scope: scope.into(),
            ..domain_row("d", Source::Measured, true, Some(1.0))
        }];
        let mut c = timed_case("x/reference/cpu", vec![1e-3]);
        c.energy = Some(e);
        let mut r = run_file(start, vec![c]);
        r.environment.host.hostname = Some(host.into());
        r
    }

    fn merged(runs: Vec<RunFile>) -> MergedFile {
        let inputs = (runs.into_iter().enumerate())
            .map(|(i, r)| (format!("t{i}.json"), r))
            .collect();
        MergedFile::merge(inputs, true, Vec::new(), "now".into()).unwrap()
    }

    /// Two tasks packed on one node at once both read its package counter: said once, for
    /// that pair; one after another, on another node, or over a GPU's own counter, not.
    #[test]
    fn runs_at_once_on_one_host_with_host_counters_are_noted() {
        let notes = overlapping_host_counters(&merged(vec![
            run_at("n1", "2025-01-01T00:00:00Z", "package"),
            run_at("n1", "2025-01-01T00:00:00.5Z", "package"),
            run_at("n2", "2025-01-01T00:00:00.5Z", "package"),
            run_at("n1", "2025-01-01T00:00:05Z", "package"),
        ]));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("t0.json and t1.json ran at the same time on n1"),
            "{notes:?}"
        );
        let notes = overlapping_host_counters(&merged(vec![
            run_at("n1", "2025-01-01T00:00:00Z", "device"),
            run_at("n1", "2025-01-01T00:00:00.5Z", "device"),
        ]));
        assert!(notes.is_empty(), "{notes:?}");
    }
}
