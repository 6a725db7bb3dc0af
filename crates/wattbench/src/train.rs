//! `wattbench train`: a short end-to-end training run of a small model on one backend, its
//! falling loss, time and energy per step, and a projection of the full run's time, kWh and
//! CO2e. Training, metering and projection live in `wattbench_train`; this module parses the
//! options, meters the GPU it trains on (unless `--gpus` says otherwise), trains on a worker
//! thread so that SIGINT and SIGTERM are answered at once (the steps done are written, marked
//! interrupted), measures idle again after the run as `run` does, prints and writes the run
//! file atomically.
use crate::options::{usage, CarbonArgs, MeterArgs};
use crate::signals::{Stop, Waited};
use crate::{backends, energy, inventory, output};
use anyhow::Result;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wattbench_core::energy::{mean_idle, CaseEnergy};
use wattbench_core::model::{ModelConfig, ModelKind, Size};
use wattbench_core::result::{
    Config, LossReport, ProjectionTarget, RunEnergy, RunFile, RunProjection, Status, TrainConfig,
    TrainSettings, TrainingResult, DEFAULT_DATASET_SAMPLES,
};
use wattbench_core::stats::{TimeStats, BOOTSTRAP_MIN_SAMPLES};
use wattbench_core::units::{self, interval, sig};
use wattbench_core::workload::{parse_choice, unknown_choice};
use wattbench_core::{Backend, BackendError};
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::{DomainEnergy, Meters};
use wattbench_train::{train, Abandoned, Control, Progress, TrainError};

/// How long a stopped run may take to reach the end of its step before it is abandoned and
/// the steps completed are written without it.
const GRACE: Duration = Duration::from_secs(1);

/// Options of `wattbench train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model: mlp, cnn or lstm.
    #[arg(long)]
    model: String,
    /// Backend that trains: candle, or tch (a build with the `tch` feature); see `wattbench
    /// list`.
    #[arg(long, default_value = "candle")]
    backend: String,
    /// Device: cpu, or cuda (its first CUDA device: tch when libtorch sees a GPU, candle in
    /// a candle-cuda build), or cuda:N. GPU training: the trainers' two-step checks passed on
    /// an H200; a whole `train` run on a GPU is UNVERIFIED ON HARDWARE.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Model size: standard, or tiny for a quick check.
    #[arg(long, default_value = "standard")]
    size: String,
    /// SGD steps, warm-up included (default 200 unless --epochs is given).
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Train for this many passes over the synthetic data set instead of --steps.
    #[arg(long)]
    epochs: Option<u64>,
    /// Samples per step (default: 64 for mlp and cnn, 32 for lstm).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate (default: 0.2 for mlp and cnn, 0.5 for lstm).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the weights, the teacher and the inputs.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Samples in the synthetic data set, rounded down to whole batches; at least one batch
    /// (a --batch-size above it grows the data set to one batch, with a warning). The result
    /// file records the number used.
    #[arg(long, default_value_t = DEFAULT_DATASET_SAMPLES)]
    dataset_samples: usize,
    /// Print and record the loss every N steps (default: a tenth of the run).
    #[arg(long, value_name = "N")]
    log_every: Option<u64>,
    /// Steps left out of timing and energy (default: a tenth of the run, 1 to 10; none for
    /// runs under 4 steps).
    #[arg(long, value_name = "N")]
    warmup_steps: Option<u64>,
    /// Project the time, energy and CO2e of a full run of N steps.
    #[arg(long, value_name = "N", group = "project")]
    project_steps: Option<u64>,
    /// Project a full run of N training samples.
    #[arg(long, value_name = "N", group = "project")]
    project_samples: Option<u64>,
    /// Project a full run of N epochs over this run's data set.
    #[arg(long, value_name = "N", group = "project")]
    project_epochs: Option<u64>,
    #[command(flatten)]
    carbon: CarbonArgs,
    #[command(flatten)]
    meters: MeterArgs,
    /// Result file (default: results/runs/TIME-PID-HOST-train-MODEL.json).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Print the result document as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

/// The backend `args` names, among those that train, and the name of its device (`cuda` is
/// its first CUDA device, as `run --device cuda` selects).
fn choose_backend(
    args: &TrainArgs,
    backends: &[Arc<dyn Backend>],
) -> Result<(Arc<dyn Backend>, String)> {
    let names: Vec<&str> = backends
        .iter()
        .filter(|b| b.trains())
        .map(|b| b.name())
        .collect();
    let Some(b) = backends.iter().find(|b| b.name() == args.backend) else {
        return Err(usage(unknown_choice("backend", &args.backend, &names)));
    };
    if !b.trains() {
        let why = b
            .devices()
            .iter()
            .find_map(|d| d.reason.clone().filter(|_| !d.available))
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        return Err(usage(format!(
            "the {} backend does not train whole models in this build{why}; backends that \
             train: {}",
            b.name(),
            names.join(", ")
        )));
    }
    let device = crate::options::device(b.as_ref(), Some(&args.device))?;
    Ok((b.clone(), device.name))
}

/// The run's settings and carbon parameters from the command line, validated.
fn options(args: &TrainArgs) -> Result<(TrainSettings, CarbonParams)> {
    let kind =
        parse_choice("model", &args.model, &ModelKind::ALL, ModelKind::as_str).map_err(usage)?;
    let size = parse_choice("size", &args.size, &Size::ALL, Size::as_str).map_err(usage)?;
    let model = ModelConfig::new(kind, size);
    let mut o = TrainSettings::new(model, 200);
    o.device = args.device.clone();
    o.seed = args.seed;
    o.dataset_samples = args.dataset_samples;
    if let Some(b) = args.batch_size {
        o.batch_size = b;
    }
    if let Some(lr) = args.lr {
        o.lr = lr;
    }
    o.steps = match (args.steps, args.epochs) {
        (Some(s), _) => s,
        (None, Some(0)) => return Err(usage("--epochs must be at least 1")),
        (None, Some(e)) => e.saturating_mul(o.batches() as u64),
        (None, None) => 200,
    };
    o.log_every = args.log_every.unwrap_or((o.steps / 10).max(1));
    o.warmup_steps = args
        .warmup_steps
        .unwrap_or_else(|| TrainSettings::default_warmup(o.steps));
    o.projection = match (
        args.project_steps,
        args.project_samples,
        args.project_epochs,
    ) {
        (Some(n), _, _) => Some(ProjectionTarget::Steps(n)),
        (_, Some(n), _) => Some(ProjectionTarget::Samples(n)),
        (_, _, Some(n)) => Some(ProjectionTarget::Epochs(n)),
        _ => None,
    };
    if o.projection.is_none() {
        args.carbon.refuse_without(
            "a projection (--project-steps, --project-samples or --project-epochs)",
        )?;
    }
    let carbon = args.carbon.params()?;
    args.meters.config()?;
    wattbench_train::validate(&o).map_err(|e| usage(e.to_string()))?;
    // The data set is whole batches, at least one: record the number of samples used.
    let used = o.batches() * o.batch_size;
    if o.dataset_samples < o.batch_size {
        eprintln!(
            "warning: --dataset-samples {} is less than one batch (--batch-size {}): the data \
             set is one batch of {used} samples",
            o.dataset_samples, o.batch_size
        );
    }
    o.dataset_samples = used;
    Ok((o, carbon))
}

/// A loss for people: four decimals, or `not finite`.
fn loss(l: Option<f32>) -> String {
    l.map_or_else(|| "not finite".to_string(), |l| format!("{l:.4}"))
}

/// A run's step loss for people, first → last; `not recorded` when no step recorded one (a
/// run stopped or failed in its first step, whose `first` and `last` are null as a loss that
/// was not finite is).
pub fn loss_change(l: &LossReport) -> String {
    if l.curve.is_empty() {
        return "not recorded (no step completed)".into();
    }
    format!("{} → {}", loss(l.first), loss(l.last))
}

/// The interval of a median step time for people: the 95% bootstrap interval, the measured
/// steps' range below [`BOOTSTRAP_MIN_SAMPLES`] of them, none for one (its note says why).
/// "Steps", not "samples": a training sample is a data sample.
pub fn median_interval(tm: &TimeStats) -> String {
    median_interval_of(tm, "measured step")
}

/// [`median_interval`] of a median over `what`s (`sample` for a kernel case's calls timed
/// together, `measured step` for training).
pub fn median_interval_of(tm: &TimeStats, what: &str) -> String {
    let n = tm.samples_s.len();
    match tm.ci95_known() {
        Some([l, h]) if n >= BOOTSTRAP_MIN_SAMPLES => {
            format!("95% CI {} – {}", units::seconds(l), units::seconds(h))
        }
        Some([l, h]) => format!(
            "range of its {n} {what}s {} – {}",
            units::seconds(l),
            units::seconds(h)
        ),
        None => format!("no interval: one {what}"),
    }
}

/// The data-set loss for people, before → after with the ratio: "rose" when it did not fall
/// (the run did not train: the notes and the projection say what that means), the value
/// with "(diverged)" when it was evaluated and not finite, and why there is none when it was
/// not evaluated.
fn dataset_loss_change(r: &TrainingResult) -> String {
    let l = &r.loss;
    let before = l.dataset_before;
    match (l.dataset_after, l.ratio) {
        (Some(after), Some(ratio)) if ratio >= 1.0 => format!(
            "{before:.4} → {after:.4} (×{ratio:.3}: it {}, the run did not train)",
            if ratio > 1.0 { "rose" } else { "did not fall" }
        ),
        (Some(after), Some(ratio)) => format!("{before:.4} → {after:.4} (×{ratio:.3})"),
        (Some(after), None) if !after.is_finite() => format!("{before:.4} → {after} (diverged)"),
        (Some(after), None) => format!("{before:.4} → {after:.4}"),
        (None, _) => format!(
            "{before:.4} → not evaluated ({})",
            if r.status == Status::Failed {
                "training failed"
            } else {
                "interrupted"
            }
        ),
    }
}

/// A training run's projection for people: the figures with their intervals, then every
/// assumption (the terminal summary and the Markdown report print the same lines). `missing`:
/// the domains without a reading that the run's total, and so the projection, leaves out
/// ([`CaseEnergy::missing_domains`]).
pub fn projection_lines(p: &RunProjection, missing: &[&str]) -> Vec<String> {
    // Every figure computed from an estimated or a partial total says so where it is: the
    // CO2e, the figure people quote, as much as the kWh it comes from.
    let mut tag = String::new();
    if p.energy_estimated {
        tag.push_str(" (ESTIMATED)");
    }
    if !missing.is_empty() {
        tag.push_str(&format!(" PARTIAL: without {}", missing.join(", ")));
    }
    let mut v = vec![
        format!(
            "projection to {} steps ({} samples):",
            p.total_steps, p.total_samples
        ),
        format!(
            "  wall time  {}",
            interval(&p.duration_s, "h", 1.0 / 3600.0)
        ),
    ];
    match (&p.energy_kwh, &p.co2e_kg) {
        (Some(kwh), Some(co2)) => {
            v.push(format!("  energy     {}{tag}", interval(kwh, "kWh", 1.0)));
            if let Some(fk) = &p.facility_kwh {
                v.push(format!(
                    "  facility   {} (× PUE {:.2}){tag}",
                    interval(fk, "kWh", 1.0),
                    p.carbon.pue
                ));
            }
            v.push(format!(
                "  emissions  {}{tag}",
                interval(co2, "kg CO2e", 1.0)
            ));
            if let Some(c) = &p.cost {
                v.push(format!(
                    "  cost       {}{tag}",
                    interval(c, "(currency of --price-per-kwh)", 1.0)
                ));
            }
        }
        _ => v.push("  energy     no reading: no kWh or CO2e figure".into()),
    }
    v.push("  assumptions:".into());
    v.extend(p.assumptions.iter().map(|a| format!("  - {a}")));
    v
}

/// The terminal summary of a training run: what ran, the table of its figures, its
/// projection, and why it ended early if it did. The run's notes ([`energy::notes`]: the
/// energy caveats among them, each once) follow it.
fn summary(r: &TrainingResult) -> Vec<String> {
    let f = r.flops;
    let mut lines = vec![format!(
        "{} on {}/{}{}: {} parameters, batch {}, lr {}, {} steps ({} warm-up, {} measured), {:.2} epochs of {} samples",
        r.model.kind().as_str(),
        r.backend,
        r.device,
        r.threads.map_or(String::new(), |n| format!(" ({n} threads)")),
        r.parameters,
        r.batch_size,
        r.lr,
        r.steps,
        r.warmup_steps,
        r.measured_steps,
        r.epochs,
        r.dataset.samples
    )];
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["", "value"]);
    let l = &r.loss;
    t.add_row(vec!["loss (step MSE)".to_string(), loss_change(l)]);
    t.add_row(vec![
        "loss (whole data set)".to_string(),
        dataset_loss_change(r),
    ]);
    if r.measured_steps == 0 {
        t.add_row(vec![
            "time per step".to_string(),
            "no measured step".to_string(),
        ]);
    }
    if let Some(tm) = &r.time {
        t.add_row(vec![
            "time per step".to_string(),
            format!(
                "median {} ({}), mean {}, p95 {}",
                units::seconds(tm.median_s),
                median_interval(tm),
                units::seconds(tm.mean_s),
                units::seconds(tm.p95_s)
            ),
        ]);
    }
    let num = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
    // One basis for both rates, the mean step time (as the projection's).
    t.add_row(vec![
        "throughput (mean step)".to_string(),
        format!(
            "{} samples/s, {} GFLOP/s ({} MFLOP per step: fwd {}, bwd {}, update {})",
            num(r.samples_per_s, 1),
            num(r.gflops_per_s, 2),
            sig(f.step as f64 / 1e6),
            sig(f.forward as f64 / 1e6),
            sig(f.backward as f64 / 1e6),
            sig(f.update as f64 / 1e6)
        ),
    ]);
    let e = &r.energy;
    if e.total_joules_per_iter.is_some() {
        // The shared cells: intervals held at 0 below, PARTIAL where a domain had no reading.
        t.add_row(vec![
            "energy per step".to_string(),
            format!("{}; {}", energy::summary(e), e.total_includes.join(" + ")),
        ]);
        if let Some(p) = r.energy_per_sample_j {
            let per_sample = CaseEnergy {
                total_joules_per_iter: Some(p),
                ..e.clone()
            };
            t.add_row(vec![
                "energy per sample".to_string(),
                energy::summary(&per_sample),
            ]);
        }
        if e.whole_net().is_some() {
            // With its source, as the gross figure above it.
            t.add_row(vec![
                "net of idle, per step".to_string(),
                energy::net_with_sources(e),
            ]);
        }
    } else {
        // What the meters left out, or why there was no window at all.
        let why = if e.total_excludes.is_empty() {
            &e.notes
        } else {
            &e.total_excludes
        };
        t.add_row(vec![
            "energy per step".to_string(),
            format!("unmeasured: {}", why.join("; ")),
        ]);
    }
    if let Some(m) = r.memory.host_peak_rss_bytes {
        t.add_row(vec![
            "peak host memory".to_string(),
            format!(
                "{} (process RSS{})",
                units::mib(m),
                if r.memory.host_peak_reset {
                    ", reset at the start of the run"
                } else {
                    ", since the process started"
                }
            ),
        ]);
    }
    lines.push(t.to_string());
    if let Some(p) = &r.projection {
        lines.extend(projection_lines(p, &r.energy.missing_domains()));
    }
    match (&r.reason, r.status) {
        (Some(why), Status::Failed) => lines.push(format!("FAILED: {why}")),
        (Some(why), _) => lines.push(why.clone()),
        (None, _) => {}
    }
    lines
}

/// Idle again after the training, as `run` measures it after its cases (at working clocks and
/// temperature): the run's net figure then subtracts the mean of the idle before and after
/// ([`mean_idle`]), and a moved idle power is noted. An interrupted run is not kept waiting:
/// its net figure stays on the idle before it, as its notes say.
fn idle_after(
    meters: &Meters,
    run_energy: &mut RunEnergy,
    result: Option<&mut TrainingResult>,
    interrupted: bool,
    quiet: bool,
) {
    if interrupted {
        run_energy.idle_notes.push(
            "interrupted: idle was measured before the run only, and the net figures use it".into(),
        );
        return;
    }
    let Some(r) = result else { return };
    if !r.energy.domains.iter().any(|d| d.joules_per_iter.is_some()) {
        return;
    }
    if !quiet {
        eprintln!("measuring idle power after the run");
    }
    run_energy.idle_after = energy::idle_baseline(meters);
    let (mean, notes) = mean_idle(&run_energy.idle_baseline, &run_energy.idle_after);
    run_energy.idle_notes = notes;
    r.energy.rebase(&mean);
}

/// The exit code and message of a run that ended before its first step with `e`, when nothing
/// is written: bad usage (the backend cannot do this model or device) is the usage error; a
/// backend that fails (setting up the trainer, or the loss before training) is a failed run,
/// exit 1. `None` for an interrupt: not a failure, the caller writes the run (no step) and
/// exits with the signal's code. A failure after the first step is a failed result instead,
/// written with the steps done.
fn failed_before_first_step(e: TrainError) -> Result<Option<(u8, String)>> {
    match e {
        TrainError::Usage(_)
        | TrainError::Backend(BackendError::Unavailable(_) | BackendError::Unsupported(_)) => {
            Err(usage(e.to_string()))
        }
        TrainError::Backend(_) => Ok(Some((
            1,
            format!(
                "error: wattbench train: {e}; it failed before the first training step, so \
                 nothing was written"
            ),
        ))),
        TrainError::Interrupted => Ok(None),
    }
}

/// How the training thread ended.
enum Trained {
    /// It returned (or, stopped and not answering in time, its completed steps were taken
    /// from its [`Progress`]).
    Done(Result<TrainingResult, TrainError>),
    /// It panicked (`why`, with the panic's message): `result` holds the steps it had
    /// completed, failed with `why` ([`Progress::fail`]); `None` when it had not started a
    /// step, or had finished them and was building its result.
    Panicked {
        result: Option<TrainingResult>,
        why: String,
    },
}

/// The message of a thread's panic `payload`.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Trains on a worker thread, so that a stop is answered at once even inside a long step:
/// the worker stops at the next step boundary and reports, or after [`GRACE`] the steps
/// completed are taken from its [`Progress`] without it; a panic in it keeps them too
/// (`run` keeps its completed cases so), failed with the panic's message. `quiet`: no
/// progress lines (`--json`).
fn train_on_worker(
    opts: &TrainSettings,
    carbon: &CarbonParams,
    backend: Arc<dyn Backend>,
    meters: Arc<Meters>,
    idle: &[DomainEnergy],
    stop: &Stop,
    quiet: bool,
) -> Trained {
    let progress = Arc::new(Progress::default());
    let (done_tx, done_rx) = mpsc::channel();
    let worker = {
        let (opts, carbon, stop) = (opts.clone(), carbon.clone(), stop.clone());
        let (meters, idle, progress) = (meters.clone(), idle.to_vec(), progress.clone());
        std::thread::spawn(move || {
            let total = opts.steps;
            let control = Control {
                interrupt: stop.flag(),
                progress: Some(&progress),
            };
            let result = train(
                &opts,
                &carbon,
                backend.as_ref(),
                Some(&meters),
                &idle,
                &control,
                &mut |p| {
                    if !quiet {
                        eprintln!(
                            "step {:>6}/{total}  epoch {:>4}  loss {}",
                            p.step + 1,
                            p.epoch,
                            p.loss
                                .map_or_else(|| "not finite".to_string(), |l| format!("{l:.5}"))
                        );
                    }
                },
            );
            let _ = done_tx.send(result);
        })
    };
    let announce = || {
        eprintln!(
            "\n{}: finishing the current step, then writing the steps done (send it again to \
             abort)",
            stop.signal_name()
        );
    };
    // The worker ended without a result: it panicked, and has unwound (join returns at once).
    // Its progress outlives it (its lock recovers from the poisoning).
    let gone = || {
        let why = match worker.join() {
            Err(payload) => format!(
                "the training thread panicked ({})",
                panic_message(payload.as_ref())
            ),
            Ok(()) => "the training thread ended without a result".into(),
        };
        match progress.fail(Some(&meters), &why) {
            Abandoned::Partial(r) => Trained::Panicked {
                result: Some(*r),
                why,
            },
            Abandoned::NotStarted => Trained::Panicked {
                result: None,
                why: format!("{why} before its first step"),
            },
            Abandoned::Finishing => Trained::Panicked {
                result: None,
                why: format!("{why} after its steps, while it built its result"),
            },
        }
    };
    let (waited, announced) = stop.wait(&done_rx, GRACE, announce);
    let trained = match waited {
        Waited::Done(r) => Trained::Done(r),
        Waited::Gone => gone(),
        Waited::GaveUp => match progress.abandon(Some(&meters)) {
            Abandoned::Partial(r) => Trained::Done(Ok(*r)),
            Abandoned::NotStarted => Trained::Done(Err(TrainError::Interrupted)),
            // It is building its result: wait for it.
            Abandoned::Finishing => done_rx.recv().map_or_else(|_| gone(), Trained::Done),
        },
    };
    if stop.requested() && !announced {
        announce();
    }
    trained
}

/// Run `wattbench train`; returns the exit code (0 ok; 1 the run failed: training diverged or
/// the backend failed, the steps done written with the reason, or nothing written when it
/// failed before the first step; 130/143 stopped by SIGINT/SIGTERM: the steps done are
/// written). An internal error (the training thread panicked) is an `Err`, exit 2, after the
/// steps it completed were written, failed with the panic's message.
pub fn run(args: TrainArgs) -> Result<u8> {
    // `duration_s`: the whole command, its idle-power windows included (results/README.md).
    let started = Instant::now();
    let (mut opts, carbon) = options(&args)?;
    let backends = backends::all();
    let (backend, device) = choose_backend(&args, &backends)?;
    opts.device = device;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| output::default_path(&format!("train-{}", opts.model.kind().as_str())));
    let file = output::prepare_beside_stdout(
        &path,
        "its summary (or, with --json, the document itself)",
        "write the file to a path, or use --json alone",
    )?;
    let stop = Stop::install()?;

    // The total adds the training device's GPU only (wattbench_energy::gpus::CaseGpu).
    let meters = Arc::new(args.meters.discover()?);
    let mut environment = inventory::environment(&backends, &meters);
    let idle = energy::idle_baseline(&meters);
    let created_at = chrono::Utc::now().to_rfc3339();

    let trained = train_on_worker(
        &opts,
        &carbon,
        backend.clone(),
        meters.clone(),
        &idle,
        &stop,
        args.json,
    );
    let interrupted = stop.requested();
    let (mut result, panicked) = match trained {
        Trained::Done(Ok(r)) => (Some(r), None),
        Trained::Done(Err(e)) => match failed_before_first_step(e)? {
            Some((code, message)) => {
                eprintln!("{message}");
                return Ok(code);
            }
            None => (None, None),
        },
        Trained::Panicked { result: None, why } => {
            anyhow::bail!("internal error: {why}; nothing was written")
        }
        Trained::Panicked { result, why } => (result, Some(why)),
    };

    let mut run_energy = RunEnergy {
        idle_baseline: idle,
        idle_after: Vec::new(),
        idle_notes: Vec::new(),
        cooldown_s: 0.0,
        min_window_s: meters.min_window().as_secs_f64(),
        note: "the training run's energy covers its measured steps (after warm-up), divided by \
               their number; net: gross minus the idle power measured before and after the run \
               (mean of the two)"
            .into(),
    };
    idle_after(
        &meters,
        &mut run_energy,
        result.as_mut(),
        interrupted,
        args.json,
    );
    inventory::finish(&mut environment, &backends);
    let config = Config::Train(TrainConfig {
        argv: crate::argv(),
        backend: backend.name().into(),
        settings: opts,
    });
    let duration_s = started.elapsed().as_secs_f64();
    let doc = RunFile {
        energy: Some(run_energy),
        trainings: result.into_iter().collect(),
        ..RunFile::new(created_at, duration_s, interrupted, environment, config)
    };
    // A failure to write where asked keeps the run (a fallback file, the summary) and is said
    // once, after it.
    let written = output::write_after_work(file, serde_json::to_string_pretty(&doc)?)?;
    let (text, location) = (&written.text, written.location());
    crate::signals::quiet_broken_pipe();

    let result = doc.trainings.first();
    if args.json || written.unsaved() {
        println!("{text}");
    }
    if args.json {
        eprintln!("{location}");
    } else if let Some(r) = result {
        for line in summary(r).into_iter().chain(energy::notes(&doc)) {
            println!("{line}");
        }
        println!("{location}");
    } else {
        println!("interrupted before the first training step: no step to report");
        println!("{location}");
    }
    if let Some(failure) = &written.failure {
        if let Some(why) = &panicked {
            eprintln!("internal error: {why}; the steps completed were kept");
        }
        eprintln!("error: {failure}");
        return Ok(output::EXIT_NOT_WRITTEN);
    }
    // An internal error wins over a stop's code: it is what needs reporting.
    if let Some(why) = panicked {
        anyhow::bail!(
            "internal error: {why}; the steps completed were written, failed, to {location}"
        );
    }
    Ok(if interrupted {
        stop.exit_code()
    } else if result.is_some_and(|r| r.status == Status::Failed) {
        1
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::model::{TrainSetup, Trainer};
    use wattbench_core::tensor::HostTensor;
    use wattbench_core::{Case, DeviceInfo, Prepared};
    use wattbench_energy::estimate::CpuEstimate;
    use wattbench_energy::fake::{StepCounter, Unreadable};
    use wattbench_energy::{CpuScope, MeterConfig};

    /// A backend that fails before the first step is a failed run (exit 1, nothing written);
    /// one that cannot do the model or device is bad usage (exit 2, through `UsageError`).
    #[test]
    fn a_failure_before_the_first_step_exits_1_bad_usage_2_and_an_interrupt_is_no_failure() {
        let failed = TrainError::Backend(BackendError::failed("candle", "out of memory"));
        let (code, message) = failed_before_first_step(failed).unwrap().unwrap();
        assert_eq!(code, 1);
        assert!(
            message.contains("out of memory")
                && message.contains("before the first training step")
                && message.contains("nothing was written"),
            "{message}"
        );
        for e in [
            TrainError::Usage("--lr must be positive".into()),
            TrainError::Backend(BackendError::Unavailable("no cuda:3".into())),
            TrainError::Backend(BackendError::Unsupported("no lstm".into())),
        ] {
            let err = failed_before_first_step(e).unwrap_err();
            assert!(err.downcast_ref::<crate::UsageError>().is_some(), "{err}");
        }
        // An interrupt is not a failure: the run is written and exits with the signal's code.
        assert!(failed_before_first_step(TrainError::Interrupted)
            .unwrap()
            .is_none());
    }

    /// A tiny MLP trained 6 steps on candle (2 of warm-up), projected to 1000 steps, metered
    /// by a fake package counter (1 J ± 0.25 J over the window) beside a DRAM domain with no
    /// reading: a partial total.
    fn partial_run() -> TrainingResult {
        let meters = Meters::from_domains(
            vec![
                Arc::new(StepCounter::new("fake-package", 1000, 0.25)),
                Arc::new(Unreadable::new("locked-dram", "permission denied")),
            ],
            &MeterConfig {
                nvml: false,
                ..MeterConfig::default()
            },
        );
        let mut o = TrainSettings::new(ModelConfig::new(ModelKind::Mlp, Size::Tiny), 6);
        o.batch_size = 16;
        o.dataset_samples = 64;
        o.warmup_steps = 2;
        o.projection = Some(ProjectionTarget::Steps(1000));
        let carbon = CarbonParams::resolve(None, None, None, Some(0.2)).unwrap();
        train(
            &o,
            &carbon,
            &wattbench_candle::CandleBackend,
            Some(&meters),
            &[],
            &Control::default(),
            &mut |_| {},
        )
        .unwrap()
    }

    /// A training run's GPU throttled at the end of its energy window is warned about, as a
    /// case's is (the warning looked at the cases only).
    #[test]
    fn a_training_run_throttled_is_warned_about() {
        let mut r = partial_run();
        r.energy.gpu_state = vec![wattbench_core::result::GpuState {
            index: 0,
            throttle_reasons: Some(vec!["gpu_idle".into(), "sw_thermal_slowdown".into()]),
            ..Default::default()
        }];
        let mut doc = wattbench_core::testing::run_file("2026-11-30T00:00:00Z", Vec::new());
        doc.trainings.push(r.clone());
        let warning = energy::notes(&doc)
            .into_iter()
            .find(|n| n.contains("throttled"))
            .expect("a throttle warning");
        assert!(
            warning.contains(&format!("{} (sw_thermal_slowdown)", r.id)),
            "{warning}"
        );
    }

    /// Every figure of the projection computed from a partial total says PARTIAL, as the
    /// per-step cell beside it does (through the shared `energy::summary`).
    #[test]
    fn projection_figures_of_a_partial_total_say_partial() {
        let r = partial_run();
        assert_eq!(r.energy.missing_domains(), vec!["locked-dram"]);
        let lines = projection_lines(r.projection.as_ref().unwrap(), &r.energy.missing_domains());
        for head in ["  energy ", "  facility ", "  emissions ", "  cost "] {
            let line = lines
                .iter()
                .find(|l| l.starts_with(head))
                .unwrap_or_else(|| panic!("no {head:?} line in {lines:#?}"));
            assert!(line.ends_with(" PARTIAL: without locked-dram"), "{line}");
        }
        let text = summary(&r).join("\n");
        let row = |name: &str| {
            text.lines()
                .find(|l| l.contains(name))
                .unwrap_or_else(|| panic!("no {name} row in:\n{text}"))
                .to_string()
        };
        assert!(row("energy per step").contains("PARTIAL: without locked-dram"));
        assert!(row("energy per sample").contains("PARTIAL: without locked-dram"));
        // No net figure from a partial total (it would read as the whole one).
        assert!(!text.contains("net of idle"), "{text}");
    }

    /// A per-step interval held at 0 below is shown as such, not as a symmetric ± that
    /// reaches below zero.
    #[test]
    fn an_energy_interval_held_at_zero_is_not_shown_symmetric() {
        let mut r = partial_run();
        r.energy.domains.retain(|d| d.name != "locked-dram");
        let j = wattbench_core::energy::Interval {
            value: 0.02,
            low: 0.0,
            high: 0.05,
        };
        r.energy.total_joules_per_iter = Some(j);
        r.energy_per_sample_j = Some(j.scale(1.0 / 16.0));
        let text = summary(&r).join("\n");
        let step = text
            .lines()
            .find(|l| l.contains("energy per step"))
            .unwrap();
        assert!(step.contains("20.000 mJ -100%/+150%"), "{step}");
        assert!(!step.contains('±'), "{step}");
    }

    /// A run that recorded no loss (it stopped or failed in its first step) says so, rather
    /// than `not finite → not finite`.
    #[test]
    fn a_run_with_no_loss_recorded_says_not_recorded() {
        let mut r = partial_run();
        assert!(loss_change(&r.loss).contains(" → "));
        r.loss.curve.clear();
        (r.loss.first, r.loss.last) = (None, None);
        assert_eq!(loss_change(&r.loss), "not recorded (no step completed)");
        let text = summary(&r).join("\n");
        let row = text
            .lines()
            .find(|l| l.contains("loss (step MSE)"))
            .unwrap();
        assert!(
            row.contains("not recorded") && !row.contains("not finite"),
            "{row}"
        );
        // A loss that was computed and not finite still says so.
        r.loss.curve.push(wattbench_core::result::LossPoint {
            step: 0,
            epoch: 0,
            loss: None,
        });
        assert_eq!(loss_change(&r.loss), "not finite → not finite");
    }

    /// Samples/s and GFLOP/s are on one basis, the mean step time (the projection's): the
    /// samples/s came from the window's wall time, the GFLOP/s from the median step.
    #[test]
    fn both_rates_of_the_throughput_row_are_at_the_mean_step_time() {
        let r = partial_run();
        let mean = r.time.as_ref().unwrap().mean_s;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
        let samples = r.samples_per_s.unwrap();
        assert!(
            close(samples * mean, r.batch_size as f64),
            "{samples} at {mean} s"
        );
        let gflops = r.gflops_per_s.unwrap();
        assert!(
            close(gflops * 1e9 * mean, r.flops.step as f64),
            "{gflops} at {mean} s"
        );
        let text = summary(&r).join("\n");
        assert!(text.contains("throughput (mean step)"), "{text}");
    }

    /// A run metered by the CPU estimate alone: every projected figure (kWh, facility kWh,
    /// CO2e, cost) says ESTIMATED, not the kWh alone, and the net cell gives its source as
    /// the gross one does.
    #[test]
    fn every_figure_of_an_estimate_says_so() {
        let estimate = CpuEstimate::with_identity(Some(100.0), CpuScope::Process, "test CPU", 2);
        let meters = Meters::from_domains(
            vec![Arc::new(estimate)],
            &MeterConfig {
                nvml: false,
                ..MeterConfig::default()
            },
        );
        let idle = meters.idle_baseline(Duration::from_millis(100));
        let mut o = TrainSettings::new(ModelConfig::new(ModelKind::Mlp, Size::Tiny), 40);
        o.batch_size = 16;
        o.dataset_samples = 64;
        o.warmup_steps = 2;
        o.projection = Some(ProjectionTarget::Steps(1000));
        let carbon = CarbonParams::resolve(None, None, None, Some(0.2)).unwrap();
        let r = train(
            &o,
            &carbon,
            &wattbench_candle::CandleBackend,
            Some(&meters),
            &idle,
            &Control::default(),
            &mut |_| {},
        )
        .unwrap();
        let p = r.projection.as_ref().unwrap();
        assert!(p.energy_estimated, "{p:?}");
        let lines = projection_lines(p, &r.energy.missing_domains());
        for head in ["  energy ", "  facility ", "  emissions ", "  cost "] {
            let line = lines
                .iter()
                .find(|l| l.starts_with(head))
                .unwrap_or_else(|| panic!("no {head:?} line in {lines:#?}"));
            assert!(line.ends_with(" (ESTIMATED)"), "{line}");
        }
        let text = summary(&r).join("\n");
        let net = text
            .lines()
            .find(|l| l.contains("net of idle, per step"))
            .unwrap_or_else(|| panic!("no net row in:\n{text}"));
        assert!(net.contains("(estimated)"), "{net}");
    }

    /// A trainer that panics as step `at` (0-based) starts; at `None`, while it is built.
    struct Panicking(Option<u64>);

    struct PanickingTrainer {
        inner: Box<dyn Trainer>,
        at: u64,
        step: u64,
    }

    impl Trainer for PanickingTrainer {
        fn step(
            &mut self,
            bi: usize,
            lr: f64,
            want_loss: bool,
        ) -> Result<Option<f32>, BackendError> {
            assert_ne!(
                self.step,
                self.at,
                "a deliberate panic in step {}",
                self.at + 1
            );
            self.step += 1;
            self.inner.step(bi, lr, want_loss)
        }
        fn loss(&mut self, bi: usize) -> Result<f32, BackendError> {
            self.inner.loss(bi)
        }
        fn sync(&mut self) -> Result<(), BackendError> {
            self.inner.sync()
        }
        fn params(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
            self.inner.params()
        }
    }

    impl Backend for Panicking {
        fn name(&self) -> &'static str {
            wattbench_candle::CandleBackend.name()
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            wattbench_candle::CandleBackend.devices()
        }
        fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
            wattbench_candle::CandleBackend.supports(case, device)
        }
        fn prepare(
            &self,
            case: &Case,
            device: &str,
            inputs: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            wattbench_candle::CandleBackend.prepare(case, device, inputs)
        }
        fn trains(&self) -> bool {
            true
        }
        fn trainer(&self, setup: &TrainSetup<'_>) -> Result<Box<dyn Trainer>, BackendError> {
            let at = self
                .0
                .expect("a deliberate panic while the trainer is built");
            Ok(Box::new(PanickingTrainer {
                inner: wattbench_candle::CandleBackend.trainer(setup)?,
                at,
                step: 0,
            }))
        }
    }

    /// [`train_on_worker`] of the tiny MLP for 100 steps (2 of warm-up, a loss every step),
    /// projected, metered by a fake counter, on `backend`.
    fn on_worker(backend: Panicking) -> Trained {
        let meters = Meters::from_domains(
            vec![Arc::new(StepCounter::new("fake-package", 1000, 0.25))],
            &MeterConfig {
                nvml: false,
                ..MeterConfig::default()
            },
        );
        let mut o = TrainSettings::new(ModelConfig::new(ModelKind::Mlp, Size::Tiny), 100);
        o.batch_size = 16;
        o.dataset_samples = 64;
        o.warmup_steps = 2;
        o.log_every = 1;
        o.projection = Some(ProjectionTarget::Steps(1000));
        let carbon = CarbonParams::resolve(None, None, None, None).unwrap();
        train_on_worker(
            &o,
            &carbon,
            Arc::new(backend),
            Arc::new(meters),
            &[],
            &Stop::none(),
            true,
        )
    }

    /// A panic in the training thread keeps the steps it completed, failed with the panic's
    /// message (they were lost: "nothing was written"), as `run` keeps its completed cases
    /// after a backend's panic; one before the first step has nothing to keep, and says so.
    #[test]
    fn a_panic_in_the_training_thread_keeps_the_steps_completed_failed() {
        let Trained::Panicked {
            result: Some(r),
            why,
        } = on_worker(Panicking(Some(7)))
        else {
            panic!("the steps completed before the panic were lost");
        };
        assert!(
            why.contains("the training thread panicked")
                && why.contains("a deliberate panic in step 8"),
            "{why}"
        );
        assert_eq!(r.status, Status::Failed);
        assert_eq!((r.steps, r.measured_steps), (7, 5));
        let reason = r.reason.as_deref().unwrap();
        assert!(
            reason.starts_with(&why)
                && reason.contains("during step 8 of 100")
                && reason.contains("the 7 steps completed before it"),
            "{reason}"
        );
        // The completed steps keep their losses, time and energy; a failure has no projection.
        assert_eq!(r.loss.curve.len(), 7);
        assert_eq!(r.time.as_ref().unwrap().samples_s.len(), 5);
        assert!(r.energy.total_joules_per_iter.is_some(), "{:?}", r.energy);
        assert!(r.projection.is_none());

        let Trained::Panicked { result: None, why } = on_worker(Panicking(None)) else {
            panic!("a result from a run that never started");
        };
        assert!(why.contains("before its first step"), "{why}");
    }
}
