//! `wattbench train`: a short end-to-end training run of a small model on one backend, its
//! falling loss, time and energy per step, and a projection of the full run's time, kWh and
//! CO2e. Training, metering and projection live in `wattbench_train`; this module parses the
//! options, trains on a worker thread so that SIGINT and SIGTERM are answered at once (the
//! steps done are written, marked interrupted), prints and writes the run file atomically.
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
use wattbench_core::model::{ModelConfig, ModelKind, Size};
use wattbench_core::result::{
    Config, ProjectionTarget, RunEnergy, RunFile, RunProjection, Status, TrainConfig,
    TrainSettings, TrainingResult, DEFAULT_DATASET_SAMPLES,
};
use wattbench_core::units::{self, interval, sig};
use wattbench_core::workload::{parse_choice, unknown_choice};
use wattbench_core::{Backend, BackendError};
use wattbench_energy::carbon::CarbonParams;
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
    /// a candle-cuda build), or cuda:N. GPU training is UNVERIFIED ON HARDWARE.
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

/// A training run's projection for people: the figures with their intervals, then every
/// assumption (the terminal summary and the Markdown report print the same lines).
pub fn projection_lines(p: &RunProjection) -> Vec<String> {
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
            v.push(format!(
                "  energy     {}{}",
                interval(kwh, "kWh", 1.0),
                if p.energy_estimated {
                    " (ESTIMATED)"
                } else {
                    ""
                }
            ));
            if let Some(fk) = &p.facility_kwh {
                v.push(format!(
                    "  facility   {} (× PUE {:.2})",
                    interval(fk, "kWh", 1.0),
                    p.carbon.pue
                ));
            }
            v.push(format!("  emissions  {}", interval(co2, "kg CO2e", 1.0)));
            if let Some(c) = &p.cost {
                v.push(format!(
                    "  cost       {}",
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

fn print_summary(r: &TrainingResult, location: &str) {
    let f = r.flops;
    println!(
        "{} on {}/{}: {} parameters, batch {}, lr {}, {} steps ({} warm-up, {} measured), {:.2} epochs of {} samples",
        r.model.kind().as_str(),
        r.backend,
        r.device,
        r.parameters,
        r.batch_size,
        r.lr,
        r.steps,
        r.warmup_steps,
        r.measured_steps,
        r.epochs,
        r.dataset.samples
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["", "value"]);
    let l = &r.loss;
    t.add_row(vec![
        "loss (step MSE)".to_string(),
        format!("{} → {}", loss(l.first), loss(l.last)),
    ]);
    t.add_row(vec![
        "loss (whole data set)".to_string(),
        match (l.dataset_after, l.ratio) {
            (Some(after), Some(ratio)) => {
                format!("{:.4} → {after:.4} (×{ratio:.3})", l.dataset_before)
            }
            _ => format!(
                "{:.4} → not evaluated ({})",
                l.dataset_before,
                if r.status == Status::Failed {
                    "training failed"
                } else {
                    "interrupted"
                }
            ),
        },
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
                "median {} (95% CI {} – {}), mean {}, p95 {}",
                units::seconds(tm.median_s),
                units::seconds(tm.ci95_median_s[0]),
                units::seconds(tm.ci95_median_s[1]),
                units::seconds(tm.mean_s),
                units::seconds(tm.p95_s)
            ),
        ]);
    }
    let num = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
    t.add_row(vec![
        "throughput".to_string(),
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
    let sources = e
        .total_sources
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("+");
    match (&e.total_joules_per_iter, &r.energy_per_sample_j) {
        (Some(s), Some(p)) => {
            t.add_row(vec![
                "energy per step".to_string(),
                format!(
                    "{} ± {} ({sources}; {})",
                    units::joules(s.value),
                    units::joules((s.high - s.value).abs()),
                    e.total_includes.join(" + ")
                ),
            ]);
            t.add_row(vec![
                "energy per sample".to_string(),
                format!(
                    "{} ± {} ({sources})",
                    units::joules(p.value),
                    units::joules((p.high - p.value).abs())
                ),
            ]);
            if let Some(n) = e.net_joules_per_iter {
                let pm = e
                    .net_uncertainty_j
                    .map(|u| format!(" ± {}", units::joules(u)))
                    .unwrap_or_default();
                t.add_row(vec![
                    "net of idle, per step".to_string(),
                    format!("{}{pm}", units::joules(n)),
                ]);
            }
        }
        _ => {
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
    println!("{t}");
    for n in &e.notes {
        println!("energy note: {n}");
    }
    if let Some(p) = &r.projection {
        for line in projection_lines(p) {
            println!("{line}");
        }
    }
    match (&r.reason, r.status) {
        (Some(why), Status::Failed) => println!("FAILED: {why}"),
        (Some(why), _) => println!("{why}"),
        (None, _) => {}
    }
    println!("{location}");
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

/// Run `wattbench train`; returns the exit code (0 ok; 1 the run failed: training diverged or
/// the backend failed, the steps done written with the reason, or nothing written when it
/// failed before the first step; 130/143 stopped by SIGINT/SIGTERM: the steps done are
/// written).
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

    let meters = Arc::new(args.meters.discover()?);
    let mut environment = inventory::environment(&backends, &meters);
    let idle = energy::idle_baseline(&meters);
    let created_at = chrono::Utc::now().to_rfc3339();

    // Training runs on a worker thread so that a stop is answered at once even inside a long
    // step: the worker stops at the next step boundary and reports, or after GRACE the main
    // thread reports the completed steps from `progress` and exits without it.
    let progress = Arc::new(Progress::default());
    let (done_tx, done_rx) = mpsc::channel();
    let worker = {
        let (opts, carbon, stop) = (opts.clone(), carbon.clone(), stop.clone());
        let (backend, meters, idle, progress) = (
            backend.clone(),
            meters.clone(),
            idle.clone(),
            progress.clone(),
        );
        let quiet = args.json;
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
    let (waited, announced) = stop.wait(&done_rx, GRACE, announce);
    let outcome = match waited {
        Waited::Done(r) => Some(r),
        Waited::Gone => None,
        Waited::GaveUp => match progress.abandon(Some(&meters)) {
            Abandoned::Partial(r) => Some(Ok(*r)),
            Abandoned::NotStarted => Some(Err(TrainError::Interrupted)),
            Abandoned::Finishing => done_rx.recv().ok(),
        },
    };
    let interrupted = stop.requested();
    if interrupted && !announced {
        announce();
    }
    let result = match outcome {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => match failed_before_first_step(e)? {
            Some((code, message)) => {
                eprintln!("{message}");
                return Ok(code);
            }
            None => None,
        },
        None => {
            let _ = worker.join();
            anyhow::bail!("internal error: the training thread panicked; nothing was written");
        }
    };

    inventory::finish(&mut environment, &backends);
    let config = Config::Train(TrainConfig {
        argv: crate::argv(),
        backend: backend.name().into(),
        settings: opts,
    });
    let duration_s = started.elapsed().as_secs_f64();
    let doc = RunFile {
        energy: Some(RunEnergy {
            idle_baseline: idle,
            idle_after: Vec::new(),
            idle_notes: Vec::new(),
            cooldown_s: 0.0,
            min_window_s: meters.min_window().as_secs_f64(),
            note: "the training run's energy covers its measured steps (after warm-up), divided \
                   by their number"
                .into(),
        }),
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
        print_summary(r, &location);
        for line in energy::notes(&doc) {
            println!("{line}");
        }
    } else {
        println!("interrupted before the first training step: no step to report");
        println!("{location}");
    }
    if let Some(failure) = &written.failure {
        eprintln!("error: {failure}");
        return Ok(output::EXIT_NOT_WRITTEN);
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
}
