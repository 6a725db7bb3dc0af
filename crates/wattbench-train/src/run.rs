//! One training run: data, warm-up, the measured steps between energy-window edges, and the
//! result (loss curve, time and energy per step and per sample, memory, projection).
use std::time::Instant;

use wattbench_core::energy::{CaseEnergy, Window};
use wattbench_core::memory;
use wattbench_core::model::{Dataset, ModelConfig, TrainSetup, Trainer};
use wattbench_core::result::{
    LossPoint, LossReport, Memory, Status, TrainSettings, TrainingResult,
};
use wattbench_core::stats::TimeStats;
use wattbench_core::Backend;
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::{total_energy, DomainEnergy, Meters};

use crate::project::project_run;
use crate::TrainError;

/// Bootstrap resamples for the step-time interval.
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Rejects settings that cannot work, saying what to change.
pub fn validate(s: &TrainSettings) -> Result<(), TrainError> {
    let usage = |m: String| Err(TrainError::Usage(m));
    if s.steps == 0 {
        return usage("--steps must be at least 1".into());
    }
    if s.batch_size == 0 {
        return usage("--batch-size must be at least 1".into());
    }
    if !(s.lr.is_finite() && s.lr > 0.0) {
        return usage(format!("--lr must be a positive number, not {}", s.lr));
    }
    if s.log_every == 0 {
        return usage("--log-every must be at least 1".into());
    }
    if s.warmup_steps >= s.steps {
        return usage(format!(
            "--warmup-steps ({}) must be smaller than the number of steps ({}), so that some \
             steps are measured",
            s.warmup_steps, s.steps
        ));
    }
    if s.dataset_samples == 0 {
        return usage("the data set must have at least one sample".into());
    }
    if let Some(t) = s.projection {
        if t.count() == 0 {
            return usage("the projection target must be at least 1".into());
        }
    }
    // Keep the data set within a sane host-memory budget (4 GiB of inputs).
    let sample: usize = s.model.sample_shape().iter().product();
    let bytes = (s.batches() as u128) * (s.batch_size as u128) * (sample as u128) * 4;
    if bytes > 4 << 30 {
        return usage(format!(
            "the data set would take {bytes} bytes; lower --batch-size"
        ));
    }
    Ok(())
}

fn want_loss(step: u64, steps: u64, every: u64) -> bool {
    step == 0 || (step + 1) % every == 0 || step + 1 == steps
}

fn dataset_loss(t: &mut dyn Trainer, batches: usize) -> Result<f64, TrainError> {
    let mut s = 0.0;
    for bi in 0..batches {
        s += t.loss(bi)? as f64;
    }
    Ok(s / batches as f64)
}

/// The stable id of a training run: `train/<model label>_b<batch>_s<steps>/<backend>/<device>`.
pub fn training_id(
    model: &ModelConfig,
    batch: usize,
    steps: u64,
    backend: &str,
    device: &str,
) -> String {
    format!(
        "train/{}_b{batch}_s{steps}/{backend}/{device}",
        model.label()
    )
}

/// Trains `s.model` on `backend` and reports; `carbon` (grid intensity, PUE, price) turns the
/// projection's energy into CO2e. `meters` brackets the measured steps (none:
/// energy is reported unmeasured, never 0 J); `idle` is a baseline from
/// [`Meters::idle_baseline`] for net figures (may be empty). `on_loss` sees every recorded
/// loss as it happens (null where it was not finite).
pub fn train(
    s: &TrainSettings,
    carbon: &CarbonParams,
    backend: &dyn Backend,
    meters: Option<&Meters>,
    idle: &[DomainEnergy],
    on_loss: &mut dyn FnMut(&LossPoint),
) -> Result<TrainingResult, TrainError> {
    validate(s)?;
    let started = Instant::now();
    let reset = memory::reset_peak_rss();
    let batches = s.batches();
    let data = Dataset::generate(&s.model, s.batch_size, batches, s.seed);
    let init = s.model.init_params(s.seed);
    let mut trainer = backend.trainer(&TrainSetup {
        model: &s.model,
        device: &s.device,
        data: &data,
        init: &init,
    })?;
    drop(init);
    let dataset_before = dataset_loss(trainer.as_mut(), batches)?;

    let warmup = s.warmup_steps;
    let mut curve = Vec::new();
    let mut samples = Vec::with_capacity((s.steps - warmup) as usize);
    let mut failure: Option<String> = None;
    let mut window = None;
    let mut window_error = meters
        .is_none()
        .then(|| "no energy meters were given".to_string());
    let mut t_window = Instant::now();
    let mut steps_done = 0;
    for step in 0..s.steps {
        if step == warmup {
            trainer.sync()?;
            if let Some(m) = meters {
                match m.start() {
                    Ok(w) => window = Some(w),
                    Err(e) => {
                        window_error = Some(format!("the energy window could not start: {e}"))
                    }
                }
            }
            t_window = Instant::now();
        }
        let log = want_loss(step, s.steps, s.log_every);
        let t0 = Instant::now();
        let loss = trainer.step((step % batches as u64) as usize, s.lr, log)?;
        trainer.sync()?;
        if step >= warmup {
            samples.push(t0.elapsed().as_secs_f64());
        }
        steps_done = step + 1;
        if let Some(loss) = loss {
            let p = LossPoint {
                step,
                epoch: step / batches as u64,
                loss: Some(loss).filter(|l| l.is_finite()),
            };
            on_loss(&p);
            curve.push(p);
            if !loss.is_finite() {
                failure = Some(format!(
                    "the loss became {loss} at step {step}: training diverged; lower --lr \
                     (it was {})",
                    s.lr
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
    let measured = steps_done.saturating_sub(warmup);
    let dataset_after = if failure.is_none() {
        Some(dataset_loss(trainer.as_mut(), batches)?)
    } else {
        None
    };
    let device_peak_bytes = trainer.device_peak_bytes();
    let host_peak = memory::peak_rss_bytes();
    drop(trainer);

    let flops = s.model.flops(s.batch_size);
    let energy = CaseEnergy::from_window(
        &domains,
        idle,
        Window {
            calls: measured,
            flops_per_call: flops.step,
            unit: "training step",
            window_s: measured_wall_s,
            min_window_s: meters.map(|m| m.min_window().as_secs_f64()),
            error: window_error.as_deref(),
        },
    );
    let time = (!samples.is_empty())
        .then(|| TimeStats::from_samples(samples, 1, BOOTSTRAP_RESAMPLES, s.seed));
    let projection = match (s.projection, &failure, &time) {
        (Some(t), None, Some(time)) => Some(project_run(
            t,
            t.total_steps(s.batch_size, batches),
            s.batch_size,
            time,
            measured,
            &total_energy(&domains),
            carbon,
        )),
        _ => None,
    };
    let first = curve.first().and_then(|p| p.loss);
    let last = curve.last().and_then(|p| p.loss);
    let measured_samples = (measured * s.batch_size as u64) as f64;
    Ok(TrainingResult {
        id: training_id(&s.model, s.batch_size, s.steps, backend.name(), &s.device),
        model: s.model,
        backend: backend.name().into(),
        device: s.device.clone(),
        batch_size: s.batch_size,
        lr: s.lr,
        seed: s.seed,
        status: if failure.is_some() {
            Status::Failed
        } else {
            Status::Ok
        },
        reason: failure,
        steps: steps_done,
        warmup_steps: warmup,
        measured_steps: measured,
        epochs: steps_done as f64 / batches as f64,
        dataset: data.info(),
        parameters: s.model.param_count(),
        flops,
        loss: LossReport {
            first,
            last,
            every: s.log_every,
            curve,
            dataset_before,
            dataset_after,
            ratio: dataset_after.map(|a| a / dataset_before),
        },
        samples_per_s: (measured > 0 && measured_wall_s > 0.0)
            .then(|| measured_samples / measured_wall_s),
        gflops_per_s: time.as_ref().map(|t| flops.step as f64 / t.median_s / 1e9),
        time,
        measured_wall_s,
        total_wall_s: started.elapsed().as_secs_f64(),
        energy_per_sample_j: energy
            .total_joules_per_iter
            .map(|j| j.scale(1.0 / s.batch_size as f64)),
        energy,
        memory: Memory {
            host_peak_rss_bytes: host_peak,
            host_peak_reset: reset,
            device_peak_bytes,
        },
        projection,
    })
}
