//! One training run: data, warm-up, the measured steps between energy-window edges, and the
//! report (loss curve, time and energy per step and per sample, memory, projection).
use std::time::Instant;

use serde::Serialize;
use wattbench_core::memory;
use wattbench_core::result::Status;
use wattbench_core::stats::TimeStats;
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::{net_joules, total_energy, DomainEnergy, Interval, Meters, Source};

use crate::backend::{make_trainer, BackendKind};
use crate::data::{Dataset, DatasetInfo};
use crate::model::{Flops, ModelConfig};
use crate::project::{project_run, ProjectionTarget, RunProjection};
use crate::TrainError;

/// Default number of samples in the synthetic data set (rounded down to whole batches, at
/// least one batch).
pub const DEFAULT_DATASET_SAMPLES: usize = 2048;

/// Bootstrap resamples for the step-time interval.
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Model and sizes.
    pub model: ModelConfig,
    /// Framework.
    pub backend: BackendKind,
    /// Device name (`cpu`, `cuda`).
    pub device: String,
    /// SGD steps, warm-up included.
    pub steps: u64,
    /// Samples per step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed of the initial weights, the teacher, the inputs and the bootstrap.
    pub seed: u64,
    /// Record the loss every this many steps (the first and last are always recorded).
    pub log_every: u64,
    /// Steps left out of timing and energy; `None`: [`default_warmup`].
    pub warmup_steps: Option<u64>,
    /// Samples in the data set.
    pub dataset_samples: usize,
    /// Full run to project, if any.
    pub projection: Option<ProjectionTarget>,
    /// Grid intensity, PUE, price.
    pub carbon: CarbonParams,
}

/// Warm-up steps when none are given: a tenth of the run, between 1 and 10; none for runs
/// under 4 steps (every step is then measured, cold start included).
pub fn default_warmup(steps: u64) -> u64 {
    if steps < 4 {
        0
    } else {
        (steps / 10).clamp(1, 10)
    }
}

impl TrainOptions {
    /// Options with the model's default batch size and learning rate.
    pub fn new(model: ModelConfig, backend: BackendKind, steps: u64) -> Self {
        Self {
            model,
            backend,
            device: "cpu".into(),
            steps,
            batch: model.default_batch(),
            lr: model.default_lr(),
            seed: 0x5eed,
            log_every: (steps / 10).max(1),
            warmup_steps: None,
            dataset_samples: DEFAULT_DATASET_SAMPLES,
            projection: None,
            carbon: CarbonParams::resolve(None, None, None, None)
                .expect("the default carbon parameters resolve"),
        }
    }

    /// Batches in the data set.
    pub fn batches(&self) -> usize {
        (self.dataset_samples / self.batch.max(1)).max(1)
    }

    /// Warm-up steps actually used.
    pub fn warmup(&self) -> u64 {
        self.warmup_steps
            .unwrap_or_else(|| default_warmup(self.steps))
    }

    /// Rejects options that cannot work, saying what to change.
    pub fn validate(&self) -> Result<(), TrainError> {
        let usage = |m: String| Err(TrainError::Usage(m));
        self.model.validate()?;
        if self.steps == 0 {
            return usage("--steps must be at least 1".into());
        }
        if self.batch == 0 {
            return usage("--batch-size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return usage(format!("--lr must be a positive number, not {}", self.lr));
        }
        if self.log_every == 0 {
            return usage("--log-every must be at least 1".into());
        }
        if self.warmup() >= self.steps {
            return usage(format!(
                "--warmup-steps ({}) must be smaller than the number of steps ({}), so that \
                 some steps are measured",
                self.warmup(),
                self.steps
            ));
        }
        if self.dataset_samples == 0 {
            return usage("the data set must have at least one sample".into());
        }
        if let Some(t) = self.projection {
            if t.count() == 0 {
                return usage("the projection target must be at least 1".into());
            }
        }
        // Keep the data set within a sane host-memory budget (4 GiB of inputs).
        let sample: usize = self.model.sample_shape().iter().product();
        let bytes = (self.batches() as u128) * (self.batch as u128) * (sample as u128) * 4;
        if bytes > 4 << 30 {
            return usage(format!(
                "the data set would take {} bytes; lower --batch-size",
                bytes
            ));
        }
        Ok(())
    }
}

/// One point of the loss curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LossPoint {
    /// Step index (0-based): the loss is that of step `step`'s forward pass, after `step`
    /// updates.
    pub step: u64,
    /// Epoch the step belongs to (0-based).
    pub epoch: u64,
    /// MSE on the step's batch.
    pub loss: f32,
}

/// The loss over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossReport {
    /// Loss of the first step (the initial weights).
    pub first: f32,
    /// Loss of the last step.
    pub last: f32,
    /// Recording interval, steps.
    pub every: u64,
    /// Recorded points.
    pub curve: Vec<LossPoint>,
    /// Mean MSE over the whole data set before training.
    pub dataset_before: f64,
    /// Mean MSE over the whole data set after training.
    pub dataset_after: f64,
    /// dataset_after / dataset_before.
    pub ratio: f64,
}

/// Energy of one domain over the measured steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DomainRow {
    /// The domain (`cpu-package-0`, `cpu-estimate`, `gpu0`...).
    pub name: String,
    /// How its figure was obtained.
    pub source: Source,
    /// What it covers.
    pub scope: String,
    /// Whether the total adds it.
    pub in_total: bool,
    /// Joules over the measured window; null when unread (never 0 for a missing reading).
    pub joules: Option<f64>,
    /// Uncertainty of `joules`.
    pub uncertainty_j: Option<f64>,
    /// Per step.
    pub joules_per_step: Option<f64>,
    /// Per sample.
    pub joules_per_sample: Option<f64>,
    /// Mean power over the window, W.
    pub avg_watts: Option<f64>,
    /// Idle power of the domain, W, when a baseline was given.
    pub idle_watts: Option<f64>,
    /// Energy above idle per step, J.
    pub net_joules_per_step: Option<f64>,
    /// Why unread, or a caveat.
    pub reason: Option<String>,
    /// Why it is not in the total.
    pub note: Option<String>,
    /// Model assumptions of an estimate.
    pub assumptions: Option<serde_json::Value>,
}

/// Energy of the measured steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnergyReport {
    /// Steps inside the window.
    pub steps: u64,
    /// Window length, s.
    pub window_s: f64,
    /// Shortest reliable window of the meters, s; null without meters.
    pub min_window_s: Option<f64>,
    /// One row per domain.
    pub domains: Vec<DomainRow>,
    /// Total over the window, J (null when no domain had a reading).
    pub total_j: Option<Interval>,
    /// Total per step, J.
    pub per_step_j: Option<Interval>,
    /// Total per sample, J.
    pub per_sample_j: Option<Interval>,
    /// Sum of the net (above idle) figures of the domains in the total, per step, J.
    pub net_per_step_j: Option<f64>,
    /// Domains added.
    pub includes: Vec<String>,
    /// Domains left out, and why.
    pub excludes: Vec<String>,
    /// Distinct sources in the total.
    pub sources: Vec<Source>,
    /// Whether the total adds measured and estimated figures.
    pub mixed: bool,
    /// Caveats.
    pub notes: Vec<String>,
}

/// Host and device memory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryReport {
    /// Peak resident set size of this process during the run, bytes.
    pub host_peak_rss_bytes: Option<u64>,
    /// Whether the peak was reset at the start of the run (false: it covers the process so
    /// far).
    pub host_peak_reset: bool,
    /// Peak device memory, where the backend can tell.
    pub device_peak_bytes: Option<u64>,
}

/// Everything a training run reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainReport {
    /// Model and sizes.
    pub model: ModelConfig,
    /// Backend name.
    pub backend: String,
    /// Device name.
    pub device: String,
    /// Samples per step.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Steps run (warm-up included).
    pub steps: u64,
    /// Warm-up steps (not timed or metered).
    pub warmup_steps: u64,
    /// Steps timed and metered.
    pub measured_steps: u64,
    /// Epochs run (steps / batches per epoch).
    pub epochs: f64,
    /// The data set.
    pub dataset: DatasetInfo,
    /// Trainable values.
    pub parameters: u64,
    /// FLOPs per step.
    pub flops: Flops,
    /// Loss curve.
    pub loss: LossReport,
    /// Time per measured step.
    pub time: TimeStats,
    /// Wall time of the measured steps, s.
    pub measured_wall_s: f64,
    /// Wall time of the whole run (data generation, uploads, warm-up, evaluation), s.
    pub total_wall_s: f64,
    /// Samples per second over the measured steps.
    pub samples_per_s: f64,
    /// GFLOP/s at the median step time.
    pub gflops_per_s: f64,
    /// Energy of the measured steps.
    pub energy: EnergyReport,
    /// Memory.
    pub memory: MemoryReport,
    /// Projection of a full run, when asked for.
    pub projection: Option<RunProjection>,
    /// `ok`, or `failed` when the loss stopped being finite.
    pub status: Status,
    /// Why failed.
    pub reason: Option<String>,
}

fn want_loss(step: u64, steps: u64, every: u64) -> bool {
    step == 0 || (step + 1) % every == 0 || step + 1 == steps
}

fn dataset_loss(t: &mut dyn crate::Trainer, batches: usize) -> Result<f64, TrainError> {
    let mut s = 0.0;
    for bi in 0..batches {
        s += t.loss(bi)? as f64;
    }
    Ok(s / batches as f64)
}

/// Trains `opts.model` and reports. `meters` brackets the measured steps (none: energy is
/// reported unmeasured); `idle` is a baseline from [`Meters::idle_baseline`] for net figures
/// (may be empty). `on_loss` sees every recorded loss as it happens.
pub fn train(
    opts: &TrainOptions,
    meters: Option<&Meters>,
    idle: &[DomainEnergy],
    on_loss: &mut dyn FnMut(&LossPoint),
) -> Result<TrainReport, TrainError> {
    opts.validate()?;
    let started = Instant::now();
    let reset = memory::reset_peak_rss();
    let batches = opts.batches();
    let data = Dataset::generate(&opts.model, opts.batch, batches, opts.seed);
    let init = opts.model.init_params(opts.seed);
    let mut trainer = make_trainer(opts.backend, &opts.device, &opts.model, &data, &init)?;
    drop(init);
    let dataset_before = dataset_loss(trainer.as_mut(), batches)?;

    let warmup = opts.warmup();
    let measured = opts.steps - warmup;
    let mut curve = Vec::new();
    let mut samples = Vec::with_capacity(measured as usize);
    let mut failure: Option<String> = None;
    let mut window = None;
    let mut window_error = None;
    let mut t_window = Instant::now();
    let mut steps_done = 0;
    for step in 0..opts.steps {
        if step == warmup {
            trainer.sync()?;
            if let Some(m) = meters {
                match m.start() {
                    Ok(w) => window = Some(w),
                    Err(e) => window_error = Some(e.to_string()),
                }
            }
            t_window = Instant::now();
        }
        let log = want_loss(step, opts.steps, opts.log_every);
        let t0 = Instant::now();
        let loss = trainer.step((step % batches as u64) as usize, opts.lr, log)?;
        trainer.sync()?;
        if step >= warmup {
            samples.push(t0.elapsed().as_secs_f64());
        }
        steps_done = step + 1;
        if let Some(loss) = loss {
            let p = LossPoint {
                step,
                epoch: step / batches as u64,
                loss,
            };
            on_loss(&p);
            curve.push(p);
            if !loss.is_finite() {
                failure = Some(format!(
                    "the loss became {loss} at step {step}: training diverged; lower --lr \
                     (it was {})",
                    opts.lr
                ));
                break;
            }
        }
    }
    let measured_wall_s = t_window.elapsed().as_secs_f64();
    let domains = match (meters, window) {
        (Some(m), Some(w)) => m.stop(w),
        _ => Vec::new(),
    };
    let measured_done = steps_done.saturating_sub(warmup);
    let dataset_after = if failure.is_none() {
        dataset_loss(trainer.as_mut(), batches)?
    } else {
        f64::NAN
    };
    let device_peak_bytes = trainer.device_peak_bytes();
    let host_peak = memory::peak_rss_bytes();
    drop(trainer);

    let energy = energy_report(
        meters,
        &domains,
        idle,
        window_error,
        measured_done,
        opts.batch,
        measured_wall_s,
    );
    if samples.is_empty() {
        // Diverged during warm-up: report the run without timing.
        samples.push(f64::NAN);
    }
    let time = TimeStats::from_samples(samples, 1, BOOTSTRAP_RESAMPLES, opts.seed);
    let flops = opts.model.flops(opts.batch);
    let projection = match (opts.projection, &failure) {
        (Some(t), None) => Some(project_run(
            t,
            t.total_steps(opts.batch, batches),
            opts.batch,
            &time,
            measured_done,
            &total_energy(&domains),
            &opts.carbon,
        )),
        _ => None,
    };
    let first = curve.first().map_or(f32::NAN, |p| p.loss);
    let last = curve.last().map_or(f32::NAN, |p| p.loss);
    Ok(TrainReport {
        model: opts.model,
        backend: opts.backend.as_str().into(),
        device: opts.device.clone(),
        batch_size: opts.batch,
        lr: opts.lr,
        seed: opts.seed,
        steps: steps_done,
        warmup_steps: warmup,
        measured_steps: measured_done,
        epochs: steps_done as f64 / batches as f64,
        dataset: data.info(),
        parameters: opts.model.param_count(),
        flops,
        loss: LossReport {
            first,
            last,
            every: opts.log_every,
            curve,
            dataset_before,
            dataset_after,
            ratio: dataset_after / dataset_before,
        },
        samples_per_s: (measured_done * opts.batch as u64) as f64 / measured_wall_s,
        gflops_per_s: flops.step as f64 / time.median_s / 1e9,
        time,
        measured_wall_s,
        total_wall_s: started.elapsed().as_secs_f64(),
        energy,
        memory: MemoryReport {
            host_peak_rss_bytes: host_peak,
            host_peak_reset: reset,
            device_peak_bytes,
        },
        projection,
        status: if failure.is_some() {
            Status::Failed
        } else {
            Status::Ok
        },
        reason: failure,
    })
}

fn energy_report(
    meters: Option<&Meters>,
    domains: &[DomainEnergy],
    idle: &[DomainEnergy],
    window_error: Option<String>,
    steps: u64,
    batch: usize,
    window_s: f64,
) -> EnergyReport {
    let per = |v: Option<f64>, n: u64| v.filter(|_| n > 0).map(|j| j / n as f64);
    let samples = steps * batch as u64;
    let mut notes = Vec::new();
    match (meters, &window_error) {
        (None, _) => notes.push("not measured: no meters were given".to_string()),
        (Some(_), Some(e)) => notes.push(format!(
            "not measured: the energy window could not start: {e}"
        )),
        _ => {}
    }
    let min_window_s = meters.map(|m| m.min_window().as_secs_f64());
    if let Some(min) = min_window_s {
        if window_error.is_none() && window_s < min {
            notes.push(format!(
                "the measured steps lasted {window_s:.3} s, less than the meters' minimum \
                 reliable window of {min:.3} s: counter resolution dominates; run more steps"
            ));
        }
    }
    let rows: Vec<DomainRow> = domains
        .iter()
        .map(|d| {
            let net = idle
                .iter()
                .find(|i| i.name == d.name)
                .and_then(|i| net_joules(d, i));
            DomainRow {
                name: d.name.clone(),
                source: d.source,
                scope: d.scope.clone(),
                in_total: d.in_total,
                joules: d.joules,
                uncertainty_j: d.uncertainty_j,
                joules_per_step: per(d.joules, steps),
                joules_per_sample: per(d.joules, samples),
                avg_watts: d.avg_watts,
                idle_watts: net.map(|n| n.idle_watts),
                net_joules_per_step: net.and_then(|n| per(Some(n.net_joules), steps)),
                reason: d.reason.clone(),
                note: d.note.clone(),
                assumptions: d.assumptions.clone(),
            }
        })
        .collect();
    let total = total_energy(domains);
    if total.mixed {
        notes.push("the total adds measured and estimated domains".into());
    }
    if total.sources.contains(&Source::Estimated) {
        notes.push(
            "estimated: CPU energy from a TDP x CPU-time model, not a counter (no readable \
             RAPL counter here)"
                .into(),
        );
    }
    let net: Vec<f64> = rows
        .iter()
        .filter(|r| r.in_total && r.joules.is_some())
        .filter_map(|r| r.net_joules_per_step)
        .collect();
    let in_total = rows
        .iter()
        .filter(|r| r.in_total && r.joules.is_some())
        .count();
    EnergyReport {
        steps,
        window_s,
        min_window_s,
        domains: rows,
        total_j: total.joules,
        per_step_j: total
            .joules
            .filter(|_| steps > 0)
            .map(|j| j.scale(1.0 / steps as f64)),
        per_sample_j: total
            .joules
            .filter(|_| samples > 0)
            .map(|j| j.scale(1.0 / samples as f64)),
        net_per_step_j: (in_total > 0 && net.len() == in_total).then(|| net.iter().sum()),
        includes: total.includes,
        excludes: total.excludes,
        sources: total.sources,
        mixed: total.mixed,
        notes,
    }
}
