//! `wattbench export RESULT --format bmf|github|csv`: a result file in the shape another tool
//! reads (Bencher, github-action-benchmark, spreadsheets); the shapes and their sources are
//! documented in `wattbench_compare::export`. Exit 0, or 2 on bad input.
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use wattbench_compare::export;

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Bencher Metric Format JSON (`bencher run --adapter json`): measures `latency` (ns),
    /// `energy` (J per call, when every source is a hardware counter and every metered
    /// domain had a reading; else `energy-<sources>[-without-<domains>]`, e.g.
    /// `energy-estimated`), `host-peak-rss` and
    /// `device-peak-memory` (bytes).
    Bmf,
    /// github-action-benchmark `customSmallerIsBetter` JSON: one entry per case and metric.
    Github,
    /// CSV with a header row: every case, its status, time, energy and memory.
    Csv,
}

/// Options of `wattbench export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A result file written by `wattbench run` or `wattbench train`.
    #[arg(value_name = "RESULT")]
    input: PathBuf,
    /// The format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Write here instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Run the command; returns the exit code.
pub fn run(args: ExportArgs) -> Result<u8> {
    if let Some(out) = &args.output {
        crate::output::not_an_input(out, &[&args.input])?;
    }
    // The input is read first: a bad one leaves nothing behind (not even the output's folder).
    let run = crate::output::read_run(&args.input)?;
    let out = args
        .output
        .as_deref()
        .map(crate::output::prepare)
        .transpose()?;
    let body = match args.format {
        ExportFormat::Bmf => serde_json::to_string_pretty(&export::bmf(&run))? + "\n",
        ExportFormat::Github => serde_json::to_string_pretty(&export::github(&run))? + "\n",
        ExportFormat::Csv => export::csv(&run),
    };
    match out {
        None => print!("{body}"),
        Some(file) => crate::output::commit(file, body.as_bytes())?,
    }
    Ok(0)
}
