//! `wattbench`: verify, time and meter deep-learning kernels across implementations.
//!
//! Exit codes (each command's are in docs/cli.md's table): 0 success; 1 a case failed
//! verification or errored; 2 bad usage or input; 3 nothing ran; 4 the result could not be
//! written where asked and was saved in a fallback file; 130 / 143 stopped by SIGINT /
//! SIGTERM (completed cases are still written).
mod ab;
mod across;
mod backends;
mod ceilings;
mod check;
mod compare;
mod devices;
mod energy;
mod export;
mod history;
mod html;
mod inventory;
mod measure;
mod merge;
mod options;
mod output;
mod report;
mod run;
mod signals;
mod table;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "wattbench",
    version,
    about = "Benchmark and energy-profile deep-learning kernels"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Verify and time a suite on every available backend, write a result file.
    #[command(allow_negative_numbers = true)]
    Run(run::RunArgs),
    /// The run history: record result files, show each case's trend and change points.
    History(history::HistoryArgs),
    /// List backends (with availability), suites and ops; or the grid regions.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// List the grid regions `--region` accepts, with intensity, range, source and year.
        #[arg(long)]
        regions: bool,
    },
    /// Measure the energy, power, memory and carbon of any command: `wattbench measure -- CMD`.
    #[command(allow_negative_numbers = true)]
    Measure(measure::MeasureArgs),
    /// Train a small model end to end; report its loss, time, energy and projected footprint.
    #[command(allow_negative_numbers = true)]
    Train(train::TrainArgs),
    /// Write a Markdown report of a result file, or a self-contained HTML report (roofline,
    /// backends, energy, traces, trend, carbon) of several inputs with `--format html`.
    Report(report::ReportArgs),
    /// Measure this machine's ceilings once (memory bandwidth, peak GEMM throughput per
    /// dtype) and store them with its hardware fingerprint, for the report's roofline.
    Ceilings(ceilings::CeilingsArgs),
    /// Merge result files (a Slurm array's tasks, a fleet's machines) into one, each run kept
    /// whole with its machine; `compare`, `history add` and `report --format html` read it.
    Merge(merge::MergeArgs),
    /// Compare two result files (or folders of them) case by case: slower, faster, same or
    /// ambiguous, with bootstrap intervals and rank tests corrected for many cases.
    #[command(allow_negative_numbers = true)]
    Compare(compare::CompareArgs),
    /// Gate a change on a noisy machine: run two builds in alternating rounds (A B, B A, ...)
    /// on the same cases, then compare B with A: `wattbench ab --a BIN --b BIN -- RUN-OPTIONS`.
    Ab(ab::AbArgs),
    /// Export a result file as Bencher Metric Format, github-action-benchmark JSON or CSV.
    Export(export::ExportArgs),
    /// Check one backend against the f64 reference: every op, dtype and mode on edge-case
    /// shapes, and its trainer's loss and gradients (the checks the tests run).
    Check(check::CheckArgs),
    /// Print the hardware and software inventory recorded in result files.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// An error in what the user asked for: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

/// This process's command line, as recorded in result files: a file name that is not UTF-8 is
/// written with U+FFFD in place of its invalid bytes (`std::env::args` would panic on it).
pub fn argv() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn list_regions(json: bool) -> Result<u8> {
    let table = wattbench_energy::carbon::CarbonTable::builtin();
    if json {
        let v: Vec<_> = table
            .entries()
            .iter()
            .map(|e| {
                serde_json::json!({
                    "region": e.region, "name": e.name, "g_per_kwh": e.g_per_kwh,
                    "range_g_per_kwh": e.range_g_per_kwh, "source": e.source, "year": e.year,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for e in table.entries() {
        println!(
            "{:<28} {:>8.1} g/kWh  [{:.0}, {:.0}]  {}  {}; {}",
            e.region,
            e.g_per_kwh,
            e.range_g_per_kwh[0],
            e.range_g_per_kwh[1],
            e.year.map_or("year ?".into(), |y| y.to_string()),
            e.name,
            e.source
        );
    }
    Ok(0)
}

fn list(json: bool) -> Result<u8> {
    let backends = backends::all();
    let suites: Vec<_> = wattbench_core::suite::BUILTIN
        .iter()
        .map(|(n, d, _)| serde_json::json!({"name": n, "description": d}))
        .collect();
    let ops: Vec<_> = wattbench_core::Op::ALL.iter().map(|o| o.as_str()).collect();
    if json {
        let b: Vec<_> = backends
            .iter()
            .map(|b| {
                let devs = b.devices();
                let available = devs.iter().any(|d| d.available);
                let reason = if available {
                    None
                } else {
                    devs.iter().find_map(|d| d.reason.clone())
                };
                let unverified: Vec<&str> = devs
                    .iter()
                    .map(|d| d.name.as_str())
                    .filter(|d| backends::unverified_on_hardware(b.name(), d))
                    .collect();
                let verified: Vec<_> = if devs.iter().any(|d| d.name.starts_with("cuda")) {
                    backends::verified_on(b.name())
                        .iter()
                        .map(|r| r.to_json())
                        .collect()
                } else {
                    Vec::new()
                };
                serde_json::json!({"name": b.name(), "available": available, "reason": reason, "trains": b.trains(), "devices": devs, "unverified_on_hardware": unverified, "verified_on_hardware": verified})
            })
            .collect();
        let doc = serde_json::json!({"backends": b, "suites": suites, "ops": ops});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    println!("backends:");
    let w = backends.iter().map(|b| b.name().len()).max().unwrap_or(10);
    for b in &backends {
        for d in b.devices() {
            let state = if d.available {
                backends::hardware_state(b.name(), &d.name)
            } else {
                "unavailable".to_string()
            };
            let why = d.reason.map(|r| format!(": {r}")).unwrap_or_default();
            println!("  {:<w$} {:<8} {state}{why}", b.name(), d.name);
        }
        if b.trains() {
            println!(
                "  {:<w$} {:<8} trains whole models (`wattbench train`)",
                b.name(),
                ""
            );
        }
    }
    println!("suites:");
    for (n, d, _) in wattbench_core::suite::BUILTIN {
        println!("  {n:<10} {d}");
    }
    println!("  FILE.toml  a suite file (format: benchmarks/README.md)");
    println!("ops: {}", ops.join(", "));
    Ok(0)
}

fn info(json: bool) -> Result<u8> {
    let backends = backends::all();
    let meters = wattbench_energy::Meters::discover(&wattbench_energy::MeterConfig::default())?;
    let mut env = inventory::environment(&backends, &meters);
    inventory::finish(&mut env, &backends);
    if json {
        // The environment as result files record it, and the fingerprint that matches files
        // of this kind of machine (baselines, ceilings, history series).
        let mut doc = serde_json::to_value(&env)?;
        doc["hardware_fingerprint"] = env.hardware_fingerprint().into();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    let h = &env.host;
    let na = || "unknown".to_string();
    println!("host:     {}", h.hostname.clone().unwrap_or_else(na));
    println!("cpu:      {} ({})", h.cpu_name(), h.cores_text());
    println!(
        "memory:   {}",
        h.memory_bytes.map_or_else(na, wattbench_core::units::gib)
    );
    println!(
        "os:       {} (kernel {})",
        h.os.clone().unwrap_or_else(na),
        h.kernel.clone().unwrap_or_else(na)
    );
    if env.gpus.is_empty() {
        println!("gpus:     none found");
    }
    for g in &env.gpus {
        println!(
            "gpu {}:    {} ({}, driver {}, power limit {}); {}",
            g.index,
            g.name.as_deref().unwrap_or("?"),
            g.pci_bus_id.as_deref().unwrap_or("bus ?"),
            g.driver_version.as_deref().unwrap_or("?"),
            g.power_limit_watts
                .map_or_else(|| "unknown".to_string(), |w| format!("{w} W")),
            g.selection
        );
        println!("          {}", g.power_reading);
    }
    for m in &env.meters {
        let what = if m.available {
            m.detail.clone().unwrap_or_default()
        } else {
            m.reason.clone().unwrap_or_default()
        };
        println!("meter:    {:<13} {what}", m.name);
    }
    for w in &env.meter_warnings {
        println!("warning:  {w}");
    }
    for (k, v) in &env.software {
        println!("{:<9} {v}", format!("{k}:"));
    }
    for l in &env.libraries {
        println!("library:  {l}");
    }
    println!(
        "commit:   {}",
        env.git_commit
            .clone()
            .unwrap_or_else(|| "unknown (not in a git checkout)".into())
    );
    Ok(0)
}

/// Defaults for the commands that use the backends themselves (never for `measure`, whose
/// command sees the user's environment as it is), each unless the user set it; set here,
/// before any CUDA library is loaded, and recorded in `environment.variables`:
/// - f32 cases mean fp32 arithmetic: cuDNN and cuBLAS (inside libtorch and candle too) may
///   otherwise run them on TF32 tensor cores (PyTorch allows it for convolutions by default),
///   with about 10 bits of mantissa: another precision, which the f32 tolerance (1e-4)
///   rejects. NVIDIA's libraries read `NVIDIA_TF32_OVERRIDE=0` at load.
/// - `cuda:N` is GPU N of NVML and nvidia-smi: CUDA numbers GPUs fastest first unless
///   `CUDA_DEVICE_ORDER=PCI_BUS_ID`, NVML in PCI bus order; on a node of mixed GPUs the two
///   differ, and a device's energy, name and ceilings would be another GPU's.
fn backend_env_defaults() {
    for (k, v) in [
        ("NVIDIA_TF32_OVERRIDE", "0"),
        ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
    ] {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.cmd,
        Cmd::Run(_)
            | Cmd::Train(_)
            | Cmd::Check(_)
            | Cmd::Ceilings(_)
            | Cmd::List { .. }
            | Cmd::Info { .. }
    ) {
        backend_env_defaults();
    }
    if matches!(
        cli.cmd,
        Cmd::List { .. }
            | Cmd::Info { .. }
            | Cmd::Report(_)
            | Cmd::Check(_)
            | Cmd::Compare(_)
            | Cmd::Export(_)
            | Cmd::History(_)
    ) {
        // `history add` commits each run in its own transaction before saying so: a closed
        // pipe ends it between runs, the ones recorded kept.
        signals::quiet_broken_pipe();
    }
    let result = match cli.cmd {
        Cmd::Run(args) => run::run(args),
        Cmd::History(args) => history::run(args),
        Cmd::Report(args) => report::run(args),
        Cmd::Ceilings(args) => ceilings::run(args),
        Cmd::Merge(args) => merge::run(args),
        Cmd::Compare(args) => compare::run(args),
        Cmd::Ab(args) => ab::run(args),
        Cmd::Export(args) => export::run(args),
        Cmd::Train(args) => train::run(args),
        Cmd::Check(args) => check::run(args),
        Cmd::Measure(args) => match measure::run(args) {
            Ok(code) => return ExitCode::from(code.clamp(0, 255) as u8),
            Err(e) => Err(e),
        },
        Cmd::List {
            json,
            regions: true,
        } => list_regions(json),
        Cmd::List { json, .. } => list(json),
        Cmd::Info { json } => info(json),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
