//! `wattbench measure -- <command> [args...]`: argument parsing, the summary table and the
//! report/trace files. Spawning, signal forwarding, sampling and the report live in
//! `wattbench_energy::measure`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::options::{CarbonArgs, MeterArgs};
use crate::output;
use comfy_table::{presets, Table};
use wattbench_energy::measure::{check_projection, measure, MeasureOptions, MeasureReport};
use wattbench_energy::{EnergyError, MeterConfig};

/// Exit code for bad usage.
const EXIT_USAGE: i32 = 2;

/// The longest `--interval`, ms (an hour): a sampler that reads less often has no trace.
const MAX_INTERVAL_MS: u64 = 3_600_000;

/// Measure the energy, power, memory and carbon of any command.
#[derive(clap::Args, Debug)]
pub struct MeasureArgs {
    /// Sampling interval of the power/memory trace, milliseconds (shortened where a counter
    /// could wrap unseen; the report gives the interval used).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub interval: u64,
    /// Follow the command by its process tree instead of a cgroup of its own (by default the
    /// command runs in a new cgroup v2 group where the system allows it, so processes that
    /// double-fork out of its tree are still counted).
    #[arg(long)]
    pub no_cgroup: bool,
    /// Report file (JSON). Default: `wattbench-measure-UTCTIME-PID.json` in this directory
    /// (the UTC time to the millisecond, then the process id).
    #[arg(long, short = 'o', value_name = "REPORT.json")]
    pub output: Option<PathBuf>,
    /// Seconds to measure the energy counters' idle power before the command starts, for the
    /// net (above idle) figure; 0 for none. Default: the meters' minimum window (at least
    /// 0.5 s) when a counter exists; never with the CPU estimate alone (it has no idle part).
    #[arg(long, value_name = "S")]
    pub idle_baseline: Option<f64>,
    /// Power/memory trace file (CSV). Default: the report's name with .trace.csv; none (and a
    /// note says so) when the report goes to a device or stream (`-o /dev/stderr`, a FIFO).
    #[arg(long, value_name = "TRACE.csv")]
    pub trace: Option<PathBuf>,
    #[command(flatten)]
    pub carbon: CarbonArgs,
    #[command(flatten)]
    pub meters: MeterArgs,
    /// Steps of the full run, to project its energy from this partial one.
    #[arg(long, value_name = "N", requires = "steps_done")]
    pub total_steps: Option<u64>,
    /// Steps this run completes (with --total-steps).
    #[arg(long, value_name = "N", requires = "total_steps")]
    pub steps_done: Option<u64>,
    /// The command to run and its arguments, after `--`; run directly, not through a shell.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<i32> {
    eprintln!("wattbench measure: {msg}");
    Ok(EXIT_USAGE)
}

fn default_report_path() -> PathBuf {
    output::unique(PathBuf::from(format!(
        "wattbench-measure-{}.json",
        output::stamp()
    )))
}

/// Whether two paths name the same file (after following links), existing or not.
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            std::fs::canonicalize(&dir)
                .unwrap_or(dir)
                .join(p.file_name().unwrap_or_default())
        })
    };
    canon(a) == canon(b)
}

fn trace_path_for(report: &Path) -> PathBuf {
    let stem = report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wattbench-measure".into());
    report.with_file_name(format!("{stem}.trace.csv"))
}

fn print_summary(r: &MeasureReport) {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(MeasureReport::SUMMARY_HEADER.to_vec());
    for row in r.summary_rows() {
        t.add_row(row.to_vec());
    }
    // stderr, so the command's own stdout stays clean for pipelines.
    eprintln!("{t}");
    for l in r.summary_lines() {
        eprintln!("{l}");
    }
}

/// Runs `wattbench measure`; returns the exit code to use: the command's own, 128 + signal
/// when it was killed, 127 when it was not found, 126 when it could not be executed, 2 for
/// bad usage; 4 when the command succeeded but a file could not be written where asked (it
/// was saved in a fallback file).
pub fn run(args: MeasureArgs) -> anyhow::Result<i32> {
    if !(1..=MAX_INTERVAL_MS).contains(&args.interval) {
        return usage(format!(
            "--interval must be from 1 to {MAX_INTERVAL_MS} ms (an hour), not {}",
            args.interval
        ));
    }
    let idle = match args.idle_baseline {
        None => None,
        Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return usage(format!(
                "--idle-baseline must be a number of seconds from 0 to 3600, not {s}"
            ))
        }
    };
    let projection = match check_projection(args.steps_done, args.total_steps) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let (carbon, meter) = match (args.carbon.params(), args.meters.config()) {
        (Ok(c), Ok(m)) => (c, m),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    // Outputs are checked before the command runs, so a measurement is never lost to an
    // unwritable path.
    let report_path = args.output.clone().unwrap_or_else(default_report_path);
    // The command's own output goes to standard output: a report there would mix with it.
    let report_file = match output::prepare_beside_stdout(
        &report_path,
        "the measured command's own output",
        "write the report to a file path",
    ) {
        Ok(f) => f,
        Err(e) => return usage(e),
    };
    // A trace name is derived only from a report file's (`/dev/stderr.trace.csv` is no
    // place for one): beside a device or stream, no trace unless --trace names one.
    let trace_path = match (&args.trace, report_file.is_regular_file()) {
        (Some(t), _) => Some(t.clone()),
        (None, true) => Some(trace_path_for(&report_path)),
        (None, false) => None,
    };
    if let Some(t) = trace_path.as_deref().filter(|t| same_file(&report_path, t)) {
        return usage(format!(
            "the report and the trace would both be written to {}; give --trace another path",
            t.display()
        ));
    }
    let trace_file = match trace_path.as_deref().map(output::prepare).transpose() {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let opts = MeasureOptions {
        command: args.command,
        meter: MeterConfig {
            sample_interval: Duration::from_millis(args.interval),
            ..meter
        },
        carbon,
        projection,
        cgroup: !args.no_cgroup,
        idle,
    };
    let outcome = match measure(&opts) {
        Ok(o) => o,
        Err(EnergyError::Usage(m)) => return usage(m),
        Err(e) => return Err(anyhow::Error::new(e).context("wattbench measure")),
    };
    let mut report = outcome.report;
    if trace_file.is_none() {
        report.assumptions.notes.push(format!(
            "no trace was written: the report went to {}, not a file a trace name can be \
             derived from; give --trace TRACE.csv for one",
            report_path.display()
        ));
    }
    // A file that cannot be written where asked at the end (a full disk, a folder gone) does
    // not lose the measurement: it is saved in a fallback file, as `run` and `train` do.
    let mut written = vec![output::write_after_work(
        report_file,
        serde_json::to_string_pretty(&report)?,
    )?];
    if let Some(file) = trace_file {
        written.push(output::write_after_work(file, outcome.trace.to_csv())?);
    }
    // Printed once the files are on disk: a closed pipe then loses nothing.
    crate::signals::quiet_broken_pipe();
    print_summary(&report);
    for w in &written {
        // No fallback could be written either: the document on standard output (the
        // command has ended), as the message says.
        if w.unsaved() {
            println!("{}", w.text);
        }
        if w.failure.is_none() {
            eprintln!("wrote {}", w.location());
        }
    }
    let mut failed = false;
    for failure in written.iter().filter_map(|w| w.failure.as_ref()) {
        eprintln!("wattbench measure: error: {failure}");
        failed = true;
    }
    // The command's own failure wins; a file saved only in a fallback turns a success into 4.
    Ok(if failed && outcome.exit_code == 0 {
        i32::from(output::EXIT_NOT_WRITTEN)
    } else {
        outcome.exit_code
    })
}
