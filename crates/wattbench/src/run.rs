//! `wattbench run`: load a suite, verify and time every case on every selected backend, write
//! one result file atomically.
use crate::energy::{self, CaseMeter};
use crate::options::{self, choices, usage, MeterArgs};
use crate::signals::Stop;
use crate::{backends, inventory, output};
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wattbench_core::energy::mean_idle;
use wattbench_core::harness::{skipped, CaseInputs, Harness, HarnessConfig};
use wattbench_core::result::{CaseResult, Config, Filters, RunConfig, RunEnergy, RunFile, Status};
use wattbench_core::units;
use wattbench_core::workload::unknown_choice;
use wattbench_core::{suite, Backend, Case, DType, DeviceInfo, Mode, Op};
use wattbench_energy::gpus::CaseGpu;

/// Options of `wattbench run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Built-in suite (quick, deepbench, gpu-check) or a suite TOML file.
    #[arg(long, default_value = "quick")]
    suite: String,
    /// Only these ops (comma-separated): gemm, conv2d, rnn.
    #[arg(long, value_delimiter = ',')]
    op: Vec<String>,
    /// Only these backends (comma-separated); see `wattbench list`.
    #[arg(long, value_delimiter = ',')]
    backend: Vec<String>,
    /// Only these devices (comma-separated, e.g. cpu, cuda); default: every available one.
    /// GPU devices were verified on one NVIDIA H200 (`wattbench list` says where); other GPUs
    /// are UNVERIFIED ON HARDWARE.
    #[arg(long, value_delimiter = ',')]
    device: Vec<String>,
    /// Run each shape in these dtypes (f32, f16, bf16) instead of the suite's.
    #[arg(long, value_delimiter = ',')]
    dtype: Vec<String>,
    /// Run each shape in these modes (infer, train) instead of the suite's.
    #[arg(long, value_delimiter = ',')]
    mode: Vec<String>,
    /// Only entries of these DeepBench sets (train, server, device).
    #[arg(long, value_delimiter = ',')]
    set: Vec<String>,
    /// Result file (default: results/runs/TIME-PID-HOST-SUITE.json).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Print the result document as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Minimum sampling time per case, seconds.
    #[arg(long, default_value_t = 0.3)]
    min_time: f64,
    /// Minimum samples per case (--max-time can end the sampling first: the case then notes
    /// how many were taken).
    #[arg(long, default_value_t = 10)]
    min_samples: usize,
    /// Maximum sampling time per case, seconds.
    #[arg(long, default_value_t = 10.0)]
    max_time: f64,
    /// Warm-up time per case, seconds, on every device [default: 0.05 on the CPU, 1 on a
    /// GPU, whose clocks ramp up over about a second]; the result's config records the ones
    /// used (`warmup_s`, and `gpu_warmup_s` for GPU devices).
    #[arg(long, value_name = "SECONDS")]
    warmup: Option<f64>,
    /// Verification tolerance (relative L2 error) for every case, instead of the per-dtype
    /// default (f32 1e-4, f16 1e-2, bf16 1.5e-2 for GEMM and convolution and 4e-2 for recurrences; doubled for f16/bf16 training steps, and for their recurrences longer than 25 steps multiplied by √(T/25)).
    #[arg(long)]
    tolerance: Option<f64>,
    /// Seed for inputs and the bootstrap.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Shortest energy window per case, seconds: each case samples at least this long so
    /// its energy counters resolve it (default: the meters' own minimum, 2 s for NVML GPUs,
    /// 1 s for RAPL, 0.5 s for the CPU estimate).
    #[arg(long, value_name = "SECONDS")]
    energy_window: Option<f64>,
    /// Pause between cases, seconds, so that one case's heat and clocks do not carry into
    /// the next.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    cooldown: f64,
    /// Also record the result file in the run history, DB (default: $WATTBENCH_HISTORY, else
    /// results/history.sqlite); a failure to record is a warning, not an error.
    #[arg(long, value_name = "DB", num_args = 0..=1)]
    record: Option<Option<PathBuf>>,
    /// Run on several GPUs: `all` (those CUDA_VISIBLE_DEVICES shows) or NVML indices / GPU-
    /// UUIDs; one worker process per GPU, pinned to it and metering it alone, their results
    /// merged into the output (as `wattbench merge` writes it). UNVERIFIED ON HARDWARE.
    #[arg(long, value_delimiter = ',', value_name = "all|LIST")]
    devices: Vec<String>,
    /// With --devices: one GPU after another instead of all at once (GPUs run at once share
    /// the node's power, cooling and host CPUs, which can move every figure).
    #[arg(long)]
    devices_sequential: bool,
    #[command(flatten)]
    meters: MeterArgs,
}

/// Exit code when every selected case was skipped: the run measured nothing.
pub const EXIT_NOTHING_RAN: u8 = 3;

/// Select cases: suite entries filtered by op and set, expanded over `--dtype`/`--mode` when
/// given (each shape once), else the suite's own dtypes and modes.
fn select_cases(args: &RunArgs, suite: &suite::Suite) -> Result<(Vec<Case>, Filters)> {
    let ops = choices("op", &args.op, &Op::ALL, Op::as_str)?;
    let dtypes = choices("dtype", &args.dtype, &DType::ALL, DType::as_str)?;
    let modes = choices("mode", &args.mode, &Mode::ALL, Mode::as_str)?;
    use suite::SETS;
    for s in &args.set {
        if !SETS.contains(&s.as_str()) {
            return Err(usage(unknown_choice("set", s, &SETS)));
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (case, set) in &suite.cases {
        if !ops.is_empty() && !ops.contains(&case.op()) {
            continue;
        }
        if !args.set.is_empty() && !set.as_ref().is_some_and(|s| args.set.contains(s)) {
            continue;
        }
        let ds = if dtypes.is_empty() {
            vec![case.dtype]
        } else {
            dtypes.clone()
        };
        let ms = if modes.is_empty() {
            vec![case.mode]
        } else {
            modes.clone()
        };
        for &mode in &ms {
            for &dtype in &ds {
                let c = Case {
                    mode,
                    dtype,
                    ..case.clone()
                };
                if seen.insert((c.params, c.mode, c.dtype)) {
                    out.push(c);
                }
            }
        }
    }
    let filters = Filters {
        op: ops,
        backend: args.backend.clone(),
        device: args.device.clone(),
        dtype: dtypes,
        mode: modes,
        set: args.set.clone(),
    };
    Ok((out, filters))
}

/// (backend, device) pairs to run: every available device of the selected backends; an
/// explicitly requested backend or device that is unavailable is kept so that its cases are
/// reported as skipped with the reason.
fn select_targets(
    args: &RunArgs,
    backends: &[Arc<dyn Backend>],
) -> Result<Vec<(Arc<dyn Backend>, DeviceInfo)>> {
    for b in &args.backend {
        options::backend(backends, b)?;
    }
    let all_devices: Vec<String> = backends
        .iter()
        .flat_map(|b| b.devices())
        .map(|d| d.name)
        .collect();
    let dev_matches = options::device_matches;
    for d in &args.device {
        if !all_devices.iter().any(|x| dev_matches(d, x)) {
            let mut valid = all_devices.clone();
            valid.sort();
            valid.dedup();
            let valid: Vec<&str> = valid.iter().map(String::as_str).collect();
            return Err(usage(unknown_choice("device", d, &valid)));
        }
    }
    let mut out = Vec::new();
    for b in backends {
        let explicit_backend = args.backend.iter().any(|n| n == b.name());
        if !args.backend.is_empty() && !explicit_backend {
            continue;
        }
        let devices = b.devices();
        let none_available = !devices.iter().any(|d| d.available);
        for d in devices {
            let explicit_device = args.device.iter().any(|w| dev_matches(w, &d.name));
            if !args.device.is_empty() && !explicit_device {
                continue;
            }
            // Unavailable devices are reported (as skipped, with the reason) only when asked
            // for by name, or when the requested backend has no available device at all.
            if d.available || explicit_device || (explicit_backend && none_available) {
                out.push((b.clone(), d));
            }
        }
    }
    Ok(out)
}

fn check_numbers(args: &RunArgs) -> Result<HarnessConfig> {
    use wattbench_core::harness::{DEFAULT_GPU_WARMUP_S, DEFAULT_WARMUP_S};
    let cfg = HarnessConfig {
        // An explicit --warmup holds on every device.
        warmup_s: args.warmup.unwrap_or(DEFAULT_WARMUP_S),
        gpu_warmup_s: Some(args.warmup.unwrap_or(DEFAULT_GPU_WARMUP_S)),
        min_time_s: args.min_time,
        min_samples: args.min_samples,
        max_time_s: args.max_time,
        seed: args.seed,
        tolerance: args.tolerance,
        ..HarnessConfig::default()
    };
    cfg.validate().map_err(usage)?;
    for (name, v) in [
        ("--cooldown", args.cooldown),
        ("--energy-window", args.energy_window.unwrap_or(0.0)),
    ] {
        if !v.is_finite() || !(0.0..=wattbench_core::harness::MAX_SECONDS).contains(&v) {
            return Err(usage(format!(
                "{name} must be a number of seconds between 0 and a day, not {v}"
            )));
        }
    }
    args.meters.config()?;
    Ok(cfg)
}

/// What a run was asked to do, checked.
struct Plan {
    cfg: HarnessConfig,
    suite: suite::Suite,
    cases: Vec<Case>,
    filters: Filters,
    backends: Vec<Arc<dyn Backend>>,
    targets: Vec<(Arc<dyn Backend>, DeviceInfo)>,
}

/// Checks the options (lists trimmed in `args`) and selects the cases and targets; a usage
/// error says what is wrong before anything runs.
fn plan(args: &mut RunArgs) -> Result<Plan> {
    // `--op "gemm, rnn"`: spaces around the commas are not part of the names.
    for (flag, list) in [
        ("--op", &mut args.op),
        ("--backend", &mut args.backend),
        ("--device", &mut args.device),
        ("--dtype", &mut args.dtype),
        ("--mode", &mut args.mode),
        ("--set", &mut args.set),
    ] {
        options::trim_list(flag, list)?;
    }
    let cfg = check_numbers(args)?;
    let suite = suite::load(&args.suite).map_err(|e| usage(e.to_string()))?;
    let (cases, filters) = select_cases(args, &suite)?;
    let backends = backends::all();
    let targets = select_targets(args, &backends)?;
    if cases.is_empty() {
        return Err(usage(format!(
            "no case of suite `{}` matches the filters",
            suite.name
        )));
    }
    if targets.is_empty() {
        return Err(usage(
            "no backend and device match the filters; see `wattbench list`",
        ));
    }
    Ok(Plan {
        cfg,
        suite,
        cases,
        filters,
        backends,
        targets,
    })
}

/// The files a run reads, which its output must not replace: the suite file (a built-in
/// suite's name is none) and the history database `--record` adds it to.
fn read_by(args: &RunArgs) -> Vec<PathBuf> {
    let suite = Path::new(&args.suite);
    let builtin = suite::builtin_names().contains(&args.suite.as_str());
    let db = (args.record.as_ref()).map(|db| crate::history::db_path(db.as_deref()));
    (suite.is_file() && !builtin)
        .then(|| suite.to_path_buf())
        .into_iter()
        .chain(db)
        .collect()
}

/// `--record DB` at the output's own path, both new (which [`output::not_an_input`] cannot
/// see: neither exists yet): the result would be written where the history goes.
fn output_is_the_history(args: &RunArgs, path: &Path) -> Result<()> {
    let Some(db) = args.record.as_ref() else {
        return Ok(());
    };
    let db = crate::history::db_path(db.as_deref());
    let place = |p: &Path| {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = std::fs::canonicalize(dir.unwrap_or(Path::new("."))).ok()?;
        Some(dir.join(p.file_name()?))
    };
    if place(&db).is_some_and(|d| Some(d) == place(path)) {
        return Err(usage(format!(
            "-o {} is the history database --record adds the run to; give another output path",
            path.display()
        )));
    }
    Ok(())
}

/// `run --devices`: the options are checked here, as the workers will read them (on their
/// GPU: `--device cuda`), so that a typo is one usage error rather than one per worker.
fn run_devices(mut args: RunArgs) -> Result<u8> {
    if args.json {
        return Err(usage(
            "--json goes without --devices: the merged file is the document (read it, or \
             `wattbench report --format html` it)",
        ));
    }
    options::trim_list("--devices", &mut args.devices)?;
    // Each worker meters its own GPU (and the CPU package): another selection would meter one
    // GPU in every worker, or each GPU N times.
    if args.meters.gpus.is_some() || args.meters.no_nvml {
        return Err(usage(
            "--gpus and --no-nvml go without --devices: each --devices worker meters the GPU it \
             runs on",
        ));
    }
    options::trim_list("--device", &mut args.device)?;
    if let Some(d) = args.device.iter().find(|d| d.as_str() != "cuda") {
        return Err(usage(format!(
            "--device {d} goes without --devices: each --devices worker runs on its own GPU \
             (`--device cuda`, the default with --devices); run the CPU cases without \
             --devices"
        )));
    }
    args.device = vec!["cuda".into()];
    plan(&mut args)?;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| output::default_path(&suite_label(&args.suite)));
    output::not_an_input(&path, &read_by(&args))?;
    output_is_the_history(&args, &path)?;
    crate::devices::run(
        &args.devices,
        args.devices_sequential,
        &path,
        args.record.as_ref().map(|db| db.as_deref()),
    )
}

/// Run the command; returns the exit code.
pub fn run(mut args: RunArgs) -> Result<u8> {
    // `duration_s`: the whole command, its idle-power windows included (results/README.md).
    let started = Instant::now();
    if args.devices_sequential && args.devices.is_empty() {
        return Err(usage("--devices-sequential goes with --devices"));
    }
    if !args.devices.is_empty() {
        return run_devices(args);
    }
    let Plan {
        cfg,
        suite,
        cases,
        filters,
        backends,
        targets,
    } = plan(&mut args)?;
    // The whole suite's duplicates (every op and set), as --dtype/--mode make its cases:
    // replacing the entries' dtypes and modes can merge more of them.
    let selection = suite::Selection {
        dtypes: filters.dtype.clone(),
        modes: filters.mode.clone(),
        ..suite::Selection::default()
    };
    let selected = if selection == suite::Selection::default() {
        None
    } else {
        Some(suite::load_selected(&args.suite, &selection).map_err(|e| usage(e.to_string()))?)
    };
    let shown = selected.as_ref().unwrap_or(&suite);
    if !shown.report.duplicates.is_empty() {
        eprintln!("{}", shown.summary());
    }
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| output::default_path(&suite_label(&suite.name)));
    output::not_an_input(&path, &read_by(&args))?;
    output_is_the_history(&args, &path)?;
    let file = output::prepare_beside_stdout(
        &path,
        "its table (or, with --json, the document itself)",
        "write the file to a path, or use --json alone",
    )?;
    if args.record.is_some() && !file.is_regular_file() {
        return Err(usage(format!(
            "--record reads the result file back: give -o a file path, not {}",
            path.display()
        )));
    }
    let stop = Stop::install()?;

    let config = Config::Run(RunConfig {
        argv: crate::argv(),
        suite: suite.name.clone(),
        filters,
        harness: cfg.clone(),
    });
    let meters = Arc::new(args.meters.discover()?);
    let mut environment = inventory::environment(&backends, &meters);
    let window = energy::EnergyWindowLength::new(&meters, args.energy_window);
    let idle = Arc::new(energy::idle_baseline(&meters));
    let mut run_energy = RunEnergy {
        idle_baseline: idle.to_vec(),
        idle_after: Vec::new(),
        idle_notes: Vec::new(),
        cooldown_s: args.cooldown,
        min_window_s: window.seconds(),
        note: energy::basis_note(),
    };
    let cooldown = Duration::from_secs_f64(args.cooldown);
    let created_at = chrono::Utc::now().to_rfc3339();

    let total = cases.len() * targets.len();
    let bar = ProgressBar::new(total as u64);
    // The bar draws only on a terminal; under CI or nohup a line per case says how far it is.
    let plain_progress = !std::io::stderr().is_terminal();
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    // Cases run on a worker thread so that a stop is answered at once even inside a long
    // call: the main thread then writes what has completed and exits.
    let completed = Arc::new(Mutex::new(Vec::<CaseResult>::new()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let worker = {
        let (completed, stop, bar) = (completed.clone(), stop.clone(), bar.clone());
        let (meters, idle) = (meters.clone(), idle.clone());
        // Which GPU each case's device is: its total adds that GPU's energy, not the others'.
        let gpus = Arc::new(environment.gpus.clone());
        let cuda_visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        std::thread::spawn(move || {
            let mut first = true;
            let harness = Harness {
                cfg,
                interrupt: stop.flag(),
            };
            'cases: for case in cases {
                let inputs = CaseInputs::new(case, &harness.cfg);
                for (b, dev) in &targets {
                    let device = dev.name.as_str();
                    bar.set_message(inputs.case.id(b.name(), device));
                    let result = if dev.available {
                        if !first && !cooldown.is_zero() {
                            bar.set_message(format!(
                                "cooling down {:.1} s",
                                cooldown.as_secs_f64()
                            ));
                            std::thread::sleep(cooldown);
                            bar.set_message(inputs.case.id(b.name(), device));
                        }
                        first = false;
                        let scope = CaseGpu::of(device, &gpus, cuda_visible.as_deref());
                        let mut meter = CaseMeter::new(
                            meters.clone(),
                            idle.clone(),
                            window,
                            scope,
                            gpus.clone(),
                        );
                        match harness.run_case(&inputs, b.as_ref(), device, Some(&mut meter)) {
                            Ok(r) => r,
                            Err(_) => break 'cases,
                        }
                    } else {
                        let why = format!(
                            "unavailable: {}",
                            dev.reason.as_deref().unwrap_or("no reason given")
                        );
                        skipped(&inputs, b.name(), device, why)
                    };
                    if plain_progress {
                        eprintln!(
                            "[{}/{total}] {}",
                            bar.position() + 1,
                            progress_line(&result)
                        );
                    }
                    completed.lock().expect("results lock").push(result);
                    bar.inc(1);
                }
            }
            let _ = done_tx.send(());
        })
    };
    // Let the current sample finish briefly; a long call is abandoned.
    stop.wait(&done_rx, Duration::from_secs(1), || {
        bar.suspend(|| {
            eprintln!(
                "\n{}: finishing the current sample, then writing the completed cases (send it \
                 again to abort)",
                stop.signal_name()
            )
        })
    });
    let interrupted = stop.requested();
    let panicked = !interrupted && worker.join().is_err();
    let mut results = std::mem::take(&mut *completed.lock().unwrap_or_else(|e| e.into_inner()));
    if !interrupted && results.iter().any(|c| c.energy.is_some()) {
        // Idle again, now at working clocks and temperature: the net figures subtract the
        // mean of the idle before and after.
        bar.set_message("measuring idle power after the run");
        run_energy.idle_after = energy::idle_baseline(&meters);
        let (mean, notes) = mean_idle(&run_energy.idle_baseline, &run_energy.idle_after);
        run_energy.idle_notes = notes;
        for e in results.iter_mut().filter_map(|c| c.energy.as_mut()) {
            e.rebase(&mean);
        }
    } else if interrupted {
        run_energy.idle_notes.push(
            "interrupted: idle was measured before the run only, and the net figures use it".into(),
        );
    }
    bar.finish_and_clear();

    inventory::finish(&mut environment, &backends);
    let duration_s = started.elapsed().as_secs_f64();
    let doc = RunFile {
        energy: Some(run_energy),
        cases: results,
        ..RunFile::new(created_at, duration_s, interrupted, environment, config)
    };
    // A failure to write where asked keeps the results (a fallback file, the table) and is
    // said once, after them.
    let written = output::write_after_work(file, serde_json::to_string_pretty(&doc)?)?;
    let (location, unsaved) = (written.location(), written.unsaved());
    let output::Written {
        text,
        path,
        failure,
    } = written;
    if let Some(db) = &args.record {
        if let (Some(path), None) = (&path, &failure) {
            crate::history::record(db.as_deref(), path);
        } else {
            eprintln!(
                "not recorded in the history: record the file with `wattbench history add` once \
                 it is where you keep it"
            );
        }
    }
    crate::signals::quiet_broken_pipe();

    if args.json || unsaved {
        println!("{text}");
    }
    if args.json {
        eprintln!("{location}");
    } else {
        let target = crate::table::Target::stdout();
        let (table, after) = crate::table::cases(&doc.cases, target);
        println!("{table}");
        for line in after {
            println!("{line}");
        }
        for line in energy::notes(&doc) {
            for part in crate::table::wrap(&line, target.width()) {
                println!("{part}");
            }
        }
        let count = |s: Status| doc.cases.iter().filter(|c| c.status == s).count();
        println!(
            "{} ok, {} skipped, {} failed in {:.1} s{}",
            count(Status::Ok),
            count(Status::Skipped),
            count(Status::Failed),
            doc.duration_s,
            if interrupted { " (interrupted)" } else { "" }
        );
        println!("{location}");
    }
    if let Some(failure) = failure {
        if panicked {
            eprintln!("internal error: a backend panicked; the completed cases were kept");
        }
        eprintln!("error: {failure}");
        return Ok(output::EXIT_NOT_WRITTEN);
    }
    let nothing_ran = !interrupted && doc.cases.iter().all(|c| c.status == Status::Skipped);
    if nothing_ran {
        eprintln!(
            "nothing ran: all {} selected cases were skipped (the reasons are in the table and \
             the result file; `wattbench list` shows what is available here)",
            doc.cases.len()
        );
    }
    if panicked {
        anyhow::bail!(
            "internal error: a backend panicked; the {} completed cases were written to {location}",
            doc.cases.len(),
        );
    }
    Ok(if interrupted {
        stop.exit_code()
    } else if doc.cases.iter().any(|c| c.status == Status::Failed) {
        1
    } else if nothing_ran {
        EXIT_NOTHING_RAN
    } else {
        0
    })
}

/// The suite's file stem (for a suite file) or name, for the default result file name.
fn suite_label(suite: &str) -> String {
    Path::new(suite)
        .file_stem()
        .map_or_else(|| suite.to_string(), |s| s.to_string_lossy().into_owned())
}

/// One line for a finished case, for progress on a stderr that is not a terminal.
fn progress_line(c: &CaseResult) -> String {
    let id = &c.id;
    match (c.status, &c.time) {
        (Status::Ok, Some(t)) => format!("{id} ok {}", units::seconds(t.median_s)),
        (Status::Ok, None) => format!("{id} ok"),
        (Status::Skipped, _) => format!("{id} skipped: {}", c.reason.as_deref().unwrap_or("")),
        (Status::Failed, _) => format!("{id} FAILED: {}", c.reason.as_deref().unwrap_or("")),
    }
}
