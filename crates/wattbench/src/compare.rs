//! `wattbench compare BASE NEW`: did NEW get slower, faster or stay the same, case by case,
//! with intervals, rank tests and a false-discovery correction (the statistics and the rule
//! live in `wattbench-compare`). Exit 0, 1 when a case is slower or failed on NEW while ok on
//! BASE (unless `--no-fail`), 2 on bad input.
use crate::options::usage;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use wattbench_compare::compare::DEFAULT_SEED;
use wattbench_compare::{compare, render, Options, ResultSet, Thresholds};

/// The verdict rule, as `--help` states it.
const RULE: &str = "\
Verdict per case and metric, from the ratio NEW/BASE (t = the metric's threshold):
  slower     the test's p-value, adjusted by Benjamini-Hochberg over every test of its metric
             (time and energy are two families), is below --alpha AND the whole 95% interval
             of the ratio lies above 1 + t
  faster     the adjusted p-value is below --alpha AND the whole interval lies below 1/(1 + t)
  same       the whole interval lies inside [1/(1 + t), 1 + t] (significant or not)
  ambiguous  anything else: too few samples, too much noise, or a change straddling t
Time uses every raw sample. Several files on a side (a folder) are pooled per case id, and the
interval then resamples runs before samples, so it includes run-to-run variation; the samples of
a single run cannot show that (another load, clocks, temperature): on a shared or noisy machine,
compare a few runs per side (with 2 to 4 runs a side the 95% interval covers the true ratio only
about 70% (2 runs) to 90% (4 runs) of the time, in simulation; more runs come closer), each side
of one build (a side whose files name several git commits gets a note). Time: Mann-Whitney test, bootstrap interval of the ratio of
medians. Energy is compared only when both sides add the same sources, the same meters and (for
an estimate) the same model inputs, lack the same domains (a PARTIAL total: a domain had no
reading) and had their host counters shared by as many concurrent GPU workers, and its rows
name the source; with several windows (files)
a side: Welch's t-test and interval on the logarithms (ratio of geometric means); with one
window on a side it has no test: its interval is the meters' stated uncertainty, and it is
slower/faster only when that interval clears the threshold, never same, and such a row never
fails the gate (pool runs to gate energy).
Peak memory has no test: its interval is the range of ratios over each side's files, which needs
two files a side (one file a side: ambiguous); its rows are reported and never fail the gate (no
test, no false-discovery control, and host peaks move between runs of one build).
The summary line names the metric and source of the slower rows, `(energy, estimated)`, and marks
those that do not gate.
Cases on one side only, and cases skipped or failed on a side, are listed, never dropped; a
case ok on BASE that failed on NEW fails the gate as a slower one does (`ab` also fails on a
case B skipped or lost).

Exit status: 0; 1 when any case is slower (in a row that gates), or failed on NEW while ok on
BASE (0 with --no-fail); 2 on bad input, including results from different hardware without
--allow-different-hardware.";

/// `--threshold`'s default, in percent.
const DEFAULT_THRESHOLD_PCT: f64 = 5.0;
/// `--alpha`'s default.
const DEFAULT_ALPHA: f64 = 0.05;

/// Output formats of `compare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A terminal table.
    Table,
    /// Markdown for a pull-request comment or a CI job summary.
    Markdown,
    /// The comparison document (results/README.md, "compare output").
    Json,
}

/// Options of `wattbench compare`.
#[derive(Args, Debug)]
#[command(after_long_help = RULE)]
pub struct CompareArgs {
    /// The baseline: a result file, or a folder of them (every *.json in it, but other
    /// wattbench documents such as a ceilings file, which are left out and listed; several
    /// files are pooled per case id, e.g. repeated runs).
    #[arg(value_name = "BASE")]
    base: PathBuf,
    /// The new results: a result file or a folder, as BASE (optional with
    /// --across-hardware).
    #[arg(value_name = "NEW")]
    new: Option<PathBuf>,
    /// Put the same cases measured on different machines side by side instead (time,
    /// GFLOP/s and share of each machine's measured roof, energy, CO2e and cost per
    /// operation, the least-energy machine): the inputs may be any mix of files, folders and
    /// merged files. No verdict, no gate.
    #[arg(long)]
    across_hardware: bool,
    /// (--across-hardware) How energy becomes CO2e and cost.
    #[command(flatten)]
    carbon: crate::options::CarbonArgs,
    #[command(flatten)]
    settings: CompareSettings,
}

/// How to compare and how to report it (shared by `compare` and `ab`).
#[derive(Args, Debug, Clone)]
pub struct CompareSettings {
    /// Smallest change that counts, in percent, for every metric [default: 5].
    #[arg(long, value_name = "PERCENT")]
    threshold: Option<f64>,
    /// Threshold for time per call, in percent (default: --threshold).
    #[arg(long, value_name = "PERCENT")]
    threshold_time: Option<f64>,
    /// Threshold for energy per call, in percent (default: --threshold).
    #[arg(long, value_name = "PERCENT")]
    threshold_energy: Option<f64>,
    /// Threshold for peak memory, in percent (default: --threshold).
    #[arg(long, value_name = "PERCENT")]
    threshold_memory: Option<f64>,
    /// False-discovery rate: the Benjamini-Hochberg adjusted p-value must be below it
    /// [default: 0.05].
    #[arg(long)]
    alpha: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the output here instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit 0 even when a case is slower or failed on NEW.
    #[arg(long)]
    no_fail: bool,
    /// Compare results measured on different hardware (CPU model and count, GPU models)
    /// instead of refusing.
    #[arg(long)]
    allow_different_hardware: bool,
    /// Seed of the bootstrap (the same inputs and seed give the same intervals) [default:
    /// 24301].
    #[arg(long)]
    seed: Option<u64>,
}

impl CompareSettings {
    /// The options given that only a verdict uses (thresholds, --alpha, --seed), by flag:
    /// `--across-hardware` gives none, and refuses them rather than ignore them, even at
    /// their default values. (`--no-fail` and `--allow-different-hardware` ask for what it
    /// does anyway.)
    fn verdict_flags(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        for (flag, v) in [
            ("--threshold", self.threshold),
            ("--threshold-time", self.threshold_time),
            ("--threshold-energy", self.threshold_energy),
            ("--threshold-memory", self.threshold_memory),
        ] {
            if v.is_some() {
                given.push(flag);
            }
        }
        if self.alpha.is_some() {
            given.push("--alpha");
        }
        if self.seed.is_some() {
            given.push("--seed");
        }
        given
    }

    /// Where the output goes, when not stdout.
    pub fn output_path(&self) -> Option<&std::path::Path> {
        self.output.as_deref()
    }

    /// The comparison options these arguments ask for; nonsense is a usage error.
    pub fn options(&self) -> Result<Options> {
        let fraction = |flag: &str, pct: f64| -> Result<f64> {
            if pct.is_finite() && pct >= 0.0 {
                Ok(pct / 100.0)
            } else {
                Err(usage(format!(
                    "{flag} must be a percentage of 0 or more, not {pct}"
                )))
            }
        };
        let all = fraction(
            "--threshold",
            self.threshold.unwrap_or(DEFAULT_THRESHOLD_PCT),
        )?;
        let one = |flag: &str, v: Option<f64>| v.map_or(Ok(all), |p| fraction(flag, p));
        let opts = Options {
            thresholds: Thresholds {
                time: one("--threshold-time", self.threshold_time)?,
                energy: one("--threshold-energy", self.threshold_energy)?,
                memory: one("--threshold-memory", self.threshold_memory)?,
            },
            alpha: self.alpha.unwrap_or(DEFAULT_ALPHA),
            seed: self.seed.unwrap_or(DEFAULT_SEED),
            allow_different_hardware: self.allow_different_hardware,
            ..Options::default()
        };
        opts.validate().map_err(|e| usage(e.to_string()))?;
        Ok(opts)
    }
}

/// Run the command; returns the exit code.
pub fn run(args: CompareArgs) -> Result<u8> {
    if args.across_hardware {
        let given = args.settings.verdict_flags();
        if !given.is_empty() {
            return Err(usage(format!(
                "{} {} no effect with --across-hardware, which puts machines side by side \
                 without a verdict or a test; leave {} out, or compare two result sets \
                 (BASE NEW) of one machine",
                given.join(", "),
                if given.len() == 1 { "has" } else { "have" },
                if given.len() == 1 { "it" } else { "them" }
            )));
        }
        let mut inputs: Vec<&std::path::Path> = vec![&args.base];
        inputs.extend(args.new.as_deref());
        let params = args.carbon.params()?;
        return crate::across::run(
            &inputs,
            &params,
            args.settings.format,
            args.settings.output_path(),
        );
    }
    let Some(new) = &args.new else {
        return Err(usage(
            "compare takes BASE and NEW (or one input or more with --across-hardware)",
        ));
    };
    args.carbon.refuse_without("--across-hardware")?;
    // What can be refused is refused before the inputs are read.
    args.settings.options()?;
    if let Some(out) = args.settings.output_path() {
        crate::output::not_an_input(out, &[&args.base, new])?;
        crate::output::prepare_beside_stdout(
            out,
            "a summary line",
            "leave out -o to print the comparison there",
        )?;
    }
    if std::fs::canonicalize(&args.base).is_ok_and(|b| std::fs::canonicalize(new).ok() == Some(b)) {
        return Err(usage(format!(
            "BASE and NEW are the same {} ({}): a comparison with itself shows nothing; give \
             the baseline and the new results",
            if args.base.is_dir() { "folder" } else { "file" },
            args.base.display()
        )));
    }
    let load = |p: &std::path::Path| ResultSet::load(p).map_err(|e| usage(e.to_string()));
    let (base, new) = (load(&args.base)?, load(new)?);
    compare_and_report(&base, &new, &args.settings, false)
}

/// Compares `new` with `base` as `settings` ask and writes the report; the exit code: 1 when
/// a case is slower or failed on new (ok on base), or (`lost_fails`: both sides ran the same
/// options) new skipped or lacks a case ok on base; 0 otherwise or with `--no-fail`.
pub fn compare_and_report(
    base: &ResultSet,
    new: &ResultSet,
    settings: &CompareSettings,
    lost_fails: bool,
) -> Result<u8> {
    let opts = settings.options()?;
    // The same run twice, on one side or across them, would count as runs with no variation.
    crate::output::distinct_runs(
        base.files
            .iter()
            .zip(&base.runs)
            .chain(new.files.iter().zip(&new.runs))
            .map(|(l, r)| (l.as_str(), r)),
    )?;
    if let Some(out) = &settings.output {
        let read: Vec<&str> = base
            .files
            .iter()
            .chain(&new.files)
            .map(|l| crate::output::label_path(l))
            .collect();
        crate::output::not_an_input(out, &read)?;
    }
    let out = settings
        .output
        .as_deref()
        .map(crate::output::prepare)
        .transpose()?;
    let c = compare(base, new, &opts).map_err(|e| usage(e.to_string()))?;
    let text = match settings.format {
        Format::Table => render::table(&c),
        Format::Markdown => render::markdown(&c),
        Format::Json => c.to_json() + "\n",
    };
    match out {
        None => print!("{text}"),
        Some(file) => {
            let shown = file.path().display().to_string();
            crate::output::commit(file, text.as_bytes())?;
            println!("{}; written to {shown}", render::summary_line(&c));
        }
    }
    Ok(u8::from(c.fails_gate(lost_fails) && !settings.no_fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are stated in the help by hand (the options are optional so that
    /// `--across-hardware` can tell a given value from a default): the text must match.
    #[test]
    fn help_states_the_defaults_in_use() {
        #[derive(clap::Parser)]
        struct Probe {
            #[command(flatten)]
            settings: CompareSettings,
        }
        let help = <Probe as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for default in [
            DEFAULT_THRESHOLD_PCT.to_string(),
            DEFAULT_ALPHA.to_string(),
            DEFAULT_SEED.to_string(),
        ] {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "{default} not in {help}"
            );
        }
        let none = <Probe as clap::Parser>::parse_from(["probe"]);
        let opts = none.settings.options().unwrap();
        assert_eq!(opts.alpha, DEFAULT_ALPHA);
        assert_eq!(opts.seed, DEFAULT_SEED);
        assert_eq!(opts.thresholds.time, DEFAULT_THRESHOLD_PCT / 100.0);
    }
}
