//! `wattbench merge`: several result files in one (the tasks of a Slurm array, the machines of
//! a fleet), every run kept whole with its own environment, so each case keeps its hardware.
use crate::options::usage;
use crate::output;
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use wattbench_core::result::{read_runs, MergedFile, RunFile};

/// Options of `wattbench merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Result files of `run` or `train` (merged files too), or folders of them (every .json
    /// directly inside, in name order; the output itself is left out).
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

/// The result files of `path`: itself, or the .json files directly inside a folder except
/// `output`.
fn files(path: &Path, output: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let out = std::fs::canonicalize(output).ok();
    let mut v: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .filter(|p| out.is_none() || std::fs::canonicalize(p).ok() != out)
        .collect();
    if v.is_empty() {
        return Err(usage(format!(
            "{}: no .json result file in this folder",
            path.display()
        )));
    }
    v.sort();
    Ok(v)
}

/// Run the command; returns the exit code.
pub fn run(args: MergeArgs) -> Result<u8> {
    // Every input read and checked before the output is touched.
    let mut inputs: Vec<(String, RunFile)> = Vec::new();
    for path in &args.inputs {
        for f in files(path, &args.output)? {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| usage(format!("cannot read {}: {e}", f.display())))?;
            let runs = read_runs(&text).map_err(|e| usage(format!("{}: {e}", f.display())))?;
            let many = runs.len() > 1;
            for (i, run) in runs.into_iter().enumerate() {
                let label = if many {
                    format!("{}#{}", f.display(), i + 1)
                } else {
                    f.display().to_string()
                };
                inputs.push((label, run));
            }
        }
    }
    let merged = MergedFile::merge(
        inputs,
        args.allow_duplicates,
        std::env::args().collect(),
        chrono::Utc::now().to_rfc3339(),
    )
    .map_err(|e| usage(e.to_string()))?;
    let file = output::prepare(&args.output)?;
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
    Ok(0)
}
