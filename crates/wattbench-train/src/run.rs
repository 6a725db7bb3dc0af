//! One training run: data, warm-up, the measured steps between energy-window edges, and the
//! result (loss curve, time and energy per step and per sample, memory, projection).
//!
//! A run can be stopped ([`Control`]): it checks its interrupt flag between steps and reports
//! the steps it completed. Everything the result is built from, apart from the trainer, lives
//! in a [`Progress`], so that a caller that cannot wait for a long step (a second is long when
//! someone pressed Ctrl-C) can report the completed steps itself ([`Progress::abandon`]).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use wattbench_core::energy::{CaseEnergy, Window};
use wattbench_core::memory;
use wattbench_core::model::{Dataset, DatasetInfo, ModelConfig, TrainSetup, Trainer};
use wattbench_core::result::{
    LossPoint, LossReport, Memory, Status, TrainSettings, TrainingResult,
};
use wattbench_core::stats::{TimeStats, BOOTSTRAP_MIN_SAMPLES};
use wattbench_core::{Backend, BackendError};
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::gpus::CaseGpu;
use wattbench_energy::{cover_span, total_energy, DomainEnergy, EnergyWindow, Meters};

use crate::project::{host_sync_assumption, project_run, steady_state_caveats, window_assumption};
use crate::TrainError;

/// Bootstrap resamples for the step-time interval.
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Host memory the synthetic data set may hold at its peak ([`dataset_peak_bytes`]).
const DATASET_LIMIT_BYTES: u128 = 4 << 30;

/// What one `Vec` costs beyond its elements: its 24-byte header, and the allocator's chunk
/// header and rounding (glibc's malloc: 8 bytes, rounded up to 16, so up to 23 more), for the
/// per-sample vectors of [`Dataset::generate`].
const VEC_OVERHEAD_BYTES: u128 = 48;

/// Host bytes the data set of `samples` samples of `model` holds at its peak, for the memory
/// guard. The peak is inside [`Dataset::generate`], before it returns: each sample's inputs
/// (an f32 `Vec` per sample) and its teacher outputs (an f64 `Vec` per sample) are still alive
/// when the batches are built from them, a second copy of the inputs and the f32 targets. Once
/// it returns the two per-sample copies are freed, and on the CPU the trainer's upload copies
/// the batches again while `data` lives (4·(inputs + outputs) per sample in all, always less
/// than the first peak); on a GPU that copy is on the device. Per sample: 4·in (inputs) + 8·out
/// (teacher outputs) + 2 vector overheads + 4·in (batches) + 4·out (targets): for the tiny MLP
/// (16 inputs, 4 outputs) 272 bytes, 4.25× its 64 input bytes; for the standard MLP 1312, 2.56×.
/// Measured (peak RSS by `/usr/bin/time`, less a 2048-sample run's): 256 bytes per sample for
/// the tiny MLP at 4 million samples, 1259 for the standard one at 300 000.
pub fn dataset_peak_bytes(model: &ModelConfig, samples: u128) -> u128 {
    let input = model.sample_shape().iter().product::<usize>() as u128;
    let output = model.output() as u128;
    let per_sample = 4 * input + 8 * output + 2 * VEC_OVERHEAD_BYTES + 4 * input + 4 * output;
    samples.saturating_mul(per_sample)
}

/// A run whose loss ends above this multiple of the data-set loss before training diverged.
/// The initial loss is that of random weights against the teacher: a run that learns ends
/// below it (0.2–0.5 of it in 200 steps here), one that learns nothing stays near it, and a
/// batch's loss strays from the data-set mean by a small factor. A learning rate past the
/// stable limit grows the loss geometrically, by orders of magnitude within a few steps (the
/// tiny MLP's data-set loss at `--lr 3`: ×2e23 in 10 steps), so 10× is passed soon after
/// divergence starts and never by noise. A smaller rise is warned about, not failed
/// (`Partial::did_not_train`).
pub const DIVERGED_RATIO: f64 = 10.0;

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
    // Keep the host memory the data set holds while it is made within a sane budget (an OOM
    // kill writes nothing). The data set is whole batches, at least one: a batch alone over
    // the budget is --batch-size's fault, a data set of many batches --dataset-samples'.
    let held = |samples: u128| dataset_peak_bytes(&s.model, samples);
    let most = DATASET_LIMIT_BYTES / held(1).max(1);
    let batch_bytes = held(s.batch_size as u128);
    if batch_bytes > DATASET_LIMIT_BYTES {
        return usage(format!(
            "--batch-size {} would make one batch that holds {batch_bytes} bytes of host memory \
             while it is made (its inputs twice, its targets, per-sample buffers), over the \
             limit of {DATASET_LIMIT_BYTES} bytes (4 GiB): at most {most} samples per batch \
             for this model; lower --batch-size",
            s.batch_size
        ));
    }
    let bytes = held(s.batches() as u128 * s.batch_size as u128);
    if bytes > DATASET_LIMIT_BYTES {
        return usage(format!(
            "--dataset-samples {} would make a data set that holds {bytes} bytes of host memory \
             while it is made (its inputs twice, its targets, per-sample buffers), over the \
             limit of {DATASET_LIMIT_BYTES} bytes (4 GiB): at most {most} samples for this \
             model; lower --dataset-samples",
            s.dataset_samples
        ));
    }
    Ok(())
}

/// What the interval of the median step time rests on, when that is less than a 95% bootstrap
/// interval: [`TimeStats::interval_note`] in a training run's terms (a sample is a measured
/// step, and more of them come from `--steps`; `train` has no `--min-samples` or
/// `--max-time`, and a batch is its steps' data).
fn step_interval_note(t: &TimeStats) -> Option<String> {
    let more = "measure more steps (--steps) for a 95% bootstrap interval";
    match t.samples_s.len() {
        0 => None,
        1 => Some(format!(
            "1 measured step: the median step time has no confidence interval (one step says \
             nothing of the spread); {more}"
        )),
        n if n < BOOTSTRAP_MIN_SAMPLES => Some(format!(
            "{n} measured steps: the interval of the median step time is their range [min, \
             max], which holds the median with probability {:.1}%, less than 95% (below \
             {BOOTSTRAP_MIN_SAMPLES} steps a bootstrap interval claims more than it covers); \
             {more}",
            100.0 * (1.0 - 0.5f64.powi(n as i32 - 1))
        )),
        _ => t.interval_note(),
    }
}

fn want_loss(step: u64, steps: u64, every: u64) -> bool {
    step == 0 || (step + 1).is_multiple_of(every) || step + 1 == steps
}

/// The mean loss over the data set; `None` when `interrupt` was set before it was done.
fn dataset_loss(
    t: &mut dyn Trainer,
    batches: usize,
    interrupt: &AtomicBool,
) -> Result<Option<f64>, TrainError> {
    let mut s = 0.0;
    for bi in 0..batches {
        if interrupt.load(Ordering::SeqCst) {
            return Ok(None);
        }
        s += t.loss(bi)? as f64;
    }
    Ok(Some(s / batches as f64))
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

/// How a caller stops a run early.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    /// Checked before and between steps (and between the batches of a data-set evaluation):
    /// once it is set, the run stops at the next boundary and reports the steps it completed.
    pub interrupt: &'a AtomicBool,
    /// Where the run keeps what it has done, for a caller that reports it without waiting for
    /// the step in flight ([`Progress::abandon`]); `None` when nobody will.
    pub progress: Option<&'a Progress>,
}

static NEVER: AtomicBool = AtomicBool::new(false);

impl Default for Control<'_> {
    /// A run nothing stops early.
    fn default() -> Self {
        Control {
            interrupt: &NEVER,
            progress: None,
        }
    }
}

/// What a run has done so far, shared between the thread that trains and one that waits for
/// it: every completed step is recorded here, so the waiting thread can report them while a
/// long step is still running ([`Progress::abandon`]).
#[derive(Default)]
pub struct Progress(Mutex<State>);

#[derive(Default)]
enum State {
    /// Setting up (data, uploads, the loss before training): nothing to report yet.
    #[default]
    Setup,
    /// Training or evaluating.
    Running(Box<Partial>),
    /// The result was (or is being) built, by the run or by [`Progress::abandon`].
    Reported,
}

/// What [`Progress::abandon`] found.
#[derive(Debug)]
pub enum Abandoned {
    /// The result of the steps completed so far; the step in flight is left out.
    Partial(Box<TrainingResult>),
    /// The run was still setting up: no step had started, nothing to report.
    NotStarted,
    /// The result was already taken: the run has finished and is building its own (wait for
    /// it: it does not train any more, so this is short), or an earlier call took it.
    Finishing,
}

/// Everything a result is built from, apart from the trainer.
struct Partial {
    settings: TrainSettings,
    carbon: CarbonParams,
    backend: &'static str,
    /// The trainer's notes on work beside the model's ([`Trainer::notes`]).
    framework_notes: Vec<String>,
    /// The framework's CPU threads ([`Trainer::threads`]).
    threads: Option<usize>,
    idle: Vec<DomainEnergy>,
    min_window_s: Option<f64>,
    started: Instant,
    peak_reset: bool,
    dataset: DatasetInfo,
    dataset_before: f64,
    curve: Vec<LossPoint>,
    /// Times of the completed measured steps, s.
    samples: Vec<f64>,
    /// Steps completed.
    steps: u64,
    /// When the last completed step ended.
    boundary: Instant,
    failure: Option<String>,
    /// Start of the measured steps and their energy window (if it could start).
    window: Option<(Instant, Option<EnergyWindow>)>,
    /// Why there is no energy figure, when there is none.
    window_error: Option<String>,
    /// The energy window once closed.
    closed: Option<Closed>,
}

struct Closed {
    domains: Vec<DomainEnergy>,
    /// Wall time of the completed measured steps, s.
    wall_s: f64,
    /// How the energy was attributed to the completed steps, when the window ran past them.
    note: Option<String>,
    /// The metered GPUs' clocks, temperature and throttle reasons when the window closed.
    gpu_state: Vec<wattbench_core::result::GpuState>,
}

impl Partial {
    fn measured(&self) -> u64 {
        self.steps.saturating_sub(self.settings.warmup_steps)
    }

    /// Starts timing and metering: the warm-up is over.
    fn open_window(&mut self, meters: Option<&Meters>) {
        let window = meters.and_then(|m| match m.start() {
            Ok(w) => Some(w),
            Err(e) => {
                self.window_error = Some(format!("the energy window could not start: {e}"));
                None
            }
        });
        self.window = Some((Instant::now(), window));
    }

    /// Records completed step `step` that took `dt` seconds and returned `loss`; the point
    /// of the loss curve, when one was recorded.
    fn record(&mut self, step: u64, dt: f64, loss: Option<f32>) -> Option<LossPoint> {
        self.boundary = Instant::now();
        self.steps = step + 1;
        if step >= self.settings.warmup_steps {
            self.samples.push(dt);
        }
        Some(self.record_loss(step, loss?))
    }

    /// Records `loss`, the loss of step `step`'s forward pass (after `step` updates).
    fn record_loss(&mut self, step: u64, loss: f32) -> LossPoint {
        let s = &self.settings;
        let p = LossPoint {
            step,
            epoch: step / s.batches() as u64,
            loss: Some(loss).filter(|l| l.is_finite()),
        };
        // Where the loss was last computed: it stopped being finite after that.
        let before = self.curve.last().map(|q| q.step);
        self.curve.push(p);
        if !loss.is_finite() {
            let when = match before {
                Some(b) if b + 1 < step => format!(
                    "at or before step {}/{} (it was last computed, finite, at step {}: the \
                     loss is computed every {} steps, --log-every 1 finds the step)",
                    step + 1,
                    s.steps,
                    b + 1,
                    s.log_every
                ),
                _ => format!("at step {}/{}", step + 1, s.steps),
            };
            self.failure = Some(format!(
                "the loss became {loss} {when}: training diverged; lower --lr (it was {})",
                s.lr
            ));
        }
        p
    }

    /// Records that the backend failed in step `step` (0-based): the run fails with the steps
    /// completed before it, and the energy window closes at the last of them.
    fn fail_in_step(&mut self, step: u64, e: &BackendError, meters: Option<&Meters>) {
        self.failure = Some(format!(
            "the backend failed in step {}/{}: {e}; the result covers the {step} steps completed \
             before it",
            step + 1,
            self.settings.steps
        ));
        self.close(meters, true);
    }

    /// Why the run diverged although its loss stayed finite: the data-set loss after training
    /// (else the last loss computed, when the run was cut short) above [`DIVERGED_RATIO`] times
    /// the data-set loss before it, or not finite.
    fn diverged(&self, dataset_after: Option<f64>) -> Option<String> {
        let before = self.dataset_before;
        let lower = format!(
            "training diverged; lower --lr (it was {})",
            self.settings.lr
        );
        let over = |x: f64| !x.is_finite() || x > DIVERGED_RATIO * before;
        match dataset_after {
            Some(a) if !a.is_finite() => Some(format!(
                "the data-set loss after training is {a} ({before:.4} before it): {lower}"
            )),
            Some(a) if over(a) => Some(format!(
                "the data-set loss grew from {before:.4} before training to {a:.4e} after it \
                 (x{:.2e}), more than {DIVERGED_RATIO}x: {lower}",
                a / before
            )),
            Some(_) => None,
            None => {
                let p = self.curve.last()?;
                let l = f64::from(p.loss?);
                over(l).then(|| {
                    format!(
                        "the loss after {} steps was {l:.4e}, more than {DIVERGED_RATIO}x the \
                         data-set loss before training ({before:.4}): {lower}",
                        p.step
                    )
                })
            }
        }
    }

    /// The warning for a run whose data-set loss after training (`dataset_after`, evaluated
    /// and finite) is at or above its loss before: it did not train, though it did not grow
    /// past [`DIVERGED_RATIO`] either.
    ///
    /// Such a run is warned about, not failed, and its projection is kept with the warning as
    /// its first assumption, because the ratio cannot tell a diverging run from a short run at
    /// a stable learning rate: SGD's first steps on one batch can raise the whole data set's
    /// loss (measured at the default --lr: ×1.64 for the tiny LSTM's first step at batch 1,
    /// ×1.44 for the tiny CNN's, ×1.07 for the standard CNN's first step at batch 64), as much
    /// as a run that diverges does before it takes off (the tiny MLP at --lr 1.5: ×1.94 after
    /// 10 steps, ×1.4 after 12, ×1e11 after 20). Failing, or refusing the projection, would
    /// fail default runs of a few steps; their time and energy per step are measurements of
    /// the steps that ran whatever the loss did. The warning says what the figures do not
    /// show: that this configuration trains.
    fn did_not_train(&self, dataset_after: Option<f64>) -> Option<String> {
        let (before, after) = (self.dataset_before, dataset_after?);
        (after.is_finite() && before.is_finite() && after >= before).then(|| {
            format!(
                "WARNING: the data-set loss {} from {before:.4} before training to {after:.4} \
                 after the {} steps (x{:.3}): the run did not train, and a projection of it \
                 describes no useful run. A stable --lr can raise it over a short run's first \
                 steps, a loss that keeps rising diverges: train more --steps to see it fall, \
                 or lower --lr (it was {})",
                if after > before { "rose" } else { "stayed" },
                self.steps,
                after / before,
                self.settings.lr
            )
        })
    }

    /// Closes the energy window at the last step boundary. `in_step`: a step is still running,
    /// or failed (the window is closed now, after that boundary, and its energy scaled to the
    /// completed steps).
    fn close(&mut self, meters: Option<&Meters>, in_step: bool) {
        if self.closed.is_some() {
            return;
        }
        let now = Instant::now();
        // What ended the run early: a failure (recorded before the window closes), else a stop.
        let ended = if self.failure.is_some() {
            "failed"
        } else {
            "was interrupted"
        };
        let Some((t0, window)) = self.window.take() else {
            self.window_error.get_or_insert_with(|| {
                format!("the run {ended} during warm-up, before any measured step")
            });
            self.closed = Some(Closed {
                domains: Vec::new(),
                wall_s: 0.0,
                note: None,
                gpu_state: Vec::new(),
            });
            return;
        };
        let (mut domains, gpu_state) = match (meters, window) {
            (Some(m), Some(w)) => {
                // The total adds the host's domains and the training device's GPU only.
                let gpus = m.gpu_records();
                let scope = CaseGpu::of(
                    &self.settings.device,
                    gpus,
                    std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
                );
                let domains = scope.scope(m.stop(w), gpus);
                let mut states = m.gpu_states();
                states.retain(|g| scope.owns(g.index));
                (domains, states)
            }
            _ => (Vec::new(), Vec::new()),
        };
        let wall_s = self.boundary.saturating_duration_since(t0).as_secs_f64();
        let mut note = None;
        if self.measured() == 0 {
            self.window_error.get_or_insert_with(|| {
                format!(
                    "the run {ended} inside its first measured step, before any measured step \
                     completed"
                )
            });
            domains.clear();
        } else if in_step && !domains.is_empty() {
            let open_s = now.saturating_duration_since(t0).as_secs_f64();
            let share = if open_s > 0.0 { wall_s / open_s } else { 1.0 };
            for d in &mut domains {
                d.joules = d.joules.map(|j| j * share);
                d.uncertainty_j = d.uncertainty_j.map(|u| u * share);
                d.window_s *= share;
            }
            note = Some(format!(
                "cut short inside a step: the energy window ran {:.3} s past the last \
                 completed step; each domain's energy is scaled by {share:.3}, the completed \
                 steps' share of the window (constant power assumed)",
                open_s - wall_s
            ));
        }
        self.closed = Some(Closed {
            domains,
            wall_s,
            note,
            gpu_state,
        });
    }

    /// The result; `interruption` says how the run was cut short, if it was.
    fn report(
        mut self,
        dataset_after: Option<f64>,
        device_peak_bytes: Option<u64>,
        interruption: Option<String>,
    ) -> TrainingResult {
        if self.failure.is_none() {
            self.failure = self.diverged(dataset_after);
        }
        let did_not_train = self
            .failure
            .is_none()
            .then(|| self.did_not_train(dataset_after))
            .flatten();
        let s = &self.settings;
        let batches = s.batches();
        let measured = self.measured();
        let closed = self.closed.unwrap_or(Closed {
            domains: Vec::new(),
            wall_s: 0.0,
            note: None,
            gpu_state: Vec::new(),
        });
        let flops = s.model.flops(s.batch_size);
        let mut energy = CaseEnergy::from_window(
            &closed.domains,
            &self.idle,
            Window {
                calls: measured,
                flops_per_call: flops.step,
                unit: "training step",
                window_s: closed.wall_s,
                min_window_s: self.min_window_s,
                error: self.window_error.as_deref(),
            },
        );
        energy.calls = measured;
        energy.notes.extend(closed.note);
        energy.gpu_state = closed.gpu_state;
        let time = (!self.samples.is_empty())
            .then(|| TimeStats::from_samples(self.samples, 1, BOOTSTRAP_RESAMPLES, s.seed));
        // What keeps the measured steps from a steady state, on the figures and the projection.
        let caveats = time.as_ref().map_or_else(Vec::new, |t| {
            steady_state_caveats(t, s.warmup_steps, &s.device)
        });
        // First among the notes: it says what every figure below does not show.
        energy.notes.splice(0..0, did_not_train.iter().cloned());
        energy.notes.extend(caveats.iter().cloned());
        energy
            .notes
            .extend(time.as_ref().and_then(step_interval_note));
        if self.steps > 0 {
            energy.notes.extend(self.framework_notes);
        }
        // The same domains the per-step figure adds: a counter that lost its readings midway
        // completed to the window, with its warning among the projection's assumptions.
        let covered = cover_span(&closed.domains, closed.wall_s);
        let mut projection = match (s.projection, &self.failure, &time) {
            (Some(t), None, Some(time)) => Some(project_run(
                t,
                t.total_steps(s.batch_size, batches),
                s.batch_size,
                time,
                measured,
                &total_energy(&covered),
                &self.carbon,
            )),
            _ => None,
        };
        if let (Some(p), Some(time)) = (&mut projection, &time) {
            p.assumptions.splice(0..0, did_not_train);
            p.assumptions.extend(caveats);
            p.assumptions.extend(host_sync_assumption(&s.device));
            p.assumptions.extend(window_assumption(time, closed.wall_s));
            for d in covered.iter().filter(|d| d.in_total) {
                p.assumptions
                    .extend(d.warnings.iter().map(|w| format!("{}: {w}", d.name)));
            }
        }
        if let (Some(p), Some(min)) = (&mut projection, self.min_window_s) {
            if p.energy_kwh.is_some() && closed.wall_s < min {
                p.assumptions.push(format!(
                    "the measured steps' energy window lasted {:.3} s, less than the meters' \
                     minimum reliable window of {min:.3} s: the energy per step, and so the \
                     projected kWh and CO2e, rest on a window the meters resolve poorly; \
                     measure more steps (--steps) for a firmer figure",
                    closed.wall_s
                ));
            }
        }
        let failed = self.failure.is_some();
        let reason = match (self.failure, interruption) {
            (Some(f), _) => Some(f),
            (None, Some(why)) => {
                let mut r = format!(
                    "{why}; the result covers the {} steps completed",
                    self.steps
                );
                if measured == 0 {
                    r.push_str(
                        ", none of them measured: time, energy and projection are null (never \
                         0)",
                    );
                } else {
                    r.push_str(&format!(" ({measured} measured)"));
                }
                if dataset_after.is_none() {
                    r.push_str("; the data-set loss after training was not evaluated");
                }
                if let Some(p) = &mut projection {
                    p.assumptions.push(format!(
                        "the run was interrupted: the projection rests on the {measured} \
                         measured steps it completed"
                    ));
                }
                Some(r)
            }
            (None, None) => None,
        };
        let first = self.curve.first().and_then(|p| p.loss);
        let last = self.curve.last().and_then(|p| p.loss);
        // Throughput at the mean step time, the projection's basis (a full run's samples over
        // its steps x the mean step time): samples/s and GFLOP/s on one basis. The median,
        // which the kernel cases use, is no sustained rate where step times are skewed (3.6x
        // below the mean for the tiny MLP on tch), and the window's wall time holds the time
        // between steps, which the projection leaves out.
        let mean_step_s = time.as_ref().map(|t| t.mean_s).filter(|m| *m > 0.0);
        TrainingResult {
            id: training_id(&s.model, s.batch_size, s.steps, self.backend, &s.device),
            model: s.model,
            backend: self.backend.into(),
            device: s.device.clone(),
            batch_size: s.batch_size,
            lr: s.lr,
            seed: s.seed,
            threads: self.threads,
            status: if failed { Status::Failed } else { Status::Ok },
            reason,
            steps: self.steps,
            warmup_steps: s.warmup_steps,
            measured_steps: measured,
            epochs: self.steps as f64 / batches as f64,
            dataset: self.dataset,
            parameters: s.model.param_count(),
            flops,
            loss: LossReport {
                first,
                last,
                every: s.log_every,
                curve: self.curve,
                dataset_before: self.dataset_before,
                // Kept when evaluated and not finite (the summary prints it, "inf
                // (diverged)"); written as null, which JSON has for it, the reason giving the
                // value.
                dataset_after,
                ratio: dataset_after
                    .map(|a| a / self.dataset_before)
                    .filter(|r| r.is_finite()),
            },
            samples_per_s: mean_step_s.map(|m| s.batch_size as f64 / m),
            gflops_per_s: mean_step_s.map(|m| flops.step as f64 / m / 1e9),
            time,
            measured_wall_s: closed.wall_s,
            total_wall_s: self.started.elapsed().as_secs_f64(),
            energy_per_sample_j: energy
                .total_joules_per_iter
                .map(|j| j.scale(1.0 / s.batch_size as f64)),
            energy,
            memory: Memory {
                host_peak_rss_bytes: memory::peak_rss_bytes(),
                host_peak_reset: self.peak_reset,
                device_peak_bytes,
            },
            projection,
        }
    }
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the run's record while it is running; `None` once it was reported.
    fn with<T>(&self, f: impl FnOnce(&mut Partial) -> T) -> Option<T> {
        match &mut *self.state() {
            State::Running(p) => Some(f(p)),
            State::Setup | State::Reported => None,
        }
    }

    /// Takes the record out to build the result from, so that it is reported once.
    fn take(&self) -> Option<Box<Partial>> {
        let mut state = self.state();
        match std::mem::replace(&mut *state, State::Reported) {
            State::Running(p) => Some(p),
            other => {
                *state = other;
                None
            }
        }
    }

    /// The result of the steps completed so far, without waiting for the step in flight: for
    /// a caller that was asked to stop (the run's interrupt flag is set) and will not wait for
    /// a long step to end. The energy window is closed now and its energy scaled to the
    /// completed steps (said in the energy notes); the data-set loss after training and the
    /// device's peak memory are not known. The run itself then reports nothing.
    pub fn abandon(&self, meters: Option<&Meters>) -> Abandoned {
        self.give_up(meters, None)
    }

    /// The result of the steps completed so far, failed: for a caller whose run cannot go on
    /// (its thread panicked, `what` says so) and must not lose them. As [`Progress::abandon`],
    /// but `failed` with `what` and where the run was (the step in flight, or the loss
    /// evaluation after the last step), and so without a projection.
    pub fn fail(&self, meters: Option<&Meters>, what: &str) -> Abandoned {
        self.give_up(meters, Some(what))
    }

    /// [`Progress::abandon`] (`failure` `None`) or [`Progress::fail`].
    fn give_up(&self, meters: Option<&Meters>, failure: Option<&str>) -> Abandoned {
        let (p, interruption) = {
            let mut state = self.state();
            let p = match &mut *state {
                State::Setup => return Abandoned::NotStarted,
                State::Reported => return Abandoned::Finishing,
                State::Running(p) => p,
            };
            let during = if p.closed.is_some() {
                format!(
                    "during the loss evaluation after step {} (the energy window had closed)",
                    p.steps
                )
            } else {
                format!("during step {} of {}", p.steps + 1, p.settings.steps)
            };
            let interruption = match failure {
                None if p.closed.is_some() => Some(format!("interrupted {during}")),
                None => Some(format!("interrupted {during}, which was abandoned")),
                Some(what) => {
                    let earlier = p.failure.take().map_or(String::new(), |f| {
                        format!("; the run had failed before it: {f}")
                    });
                    p.failure = Some(format!(
                        "{what} {during}; the result covers the {} steps completed before \
                         it{earlier}",
                        p.steps
                    ));
                    None
                }
            };
            p.close(meters, true);
            match std::mem::replace(&mut *state, State::Reported) {
                State::Running(p) => (p, interruption),
                _ => unreachable!("matched above"),
            }
        };
        Abandoned::Partial(Box::new(p.report(None, None, interruption)))
    }
}

/// Trains `s.model` on `backend` and reports; `carbon` (grid intensity, PUE, price) turns the
/// projection's energy into CO2e. `meters` brackets the measured steps (none:
/// energy is reported unmeasured, never 0 J); `idle` is a baseline from
/// [`Meters::idle_baseline`] for net figures (may be empty). `control` stops the run early:
/// it then reports the steps it completed, its `reason` says how it was cut short, and
/// figures with no completed measured step are null. `on_loss` sees every recorded loss as
/// it happens (null where it was not finite).
///
/// [`TrainError::Interrupted`] when the interrupt came before the first step, or after
/// [`Progress::abandon`] reported the run.
pub fn train(
    s: &TrainSettings,
    carbon: &CarbonParams,
    backend: &dyn Backend,
    meters: Option<&Meters>,
    idle: &[DomainEnergy],
    control: &Control<'_>,
    on_loss: &mut dyn FnMut(&LossPoint),
) -> Result<TrainingResult, TrainError> {
    validate(s)?;
    let stopped = || control.interrupt.load(Ordering::SeqCst);
    let own = Progress::default();
    let progress = control.progress.unwrap_or(&own);
    *progress.state() = State::Setup;
    let started = Instant::now();
    let peak_reset = memory::reset_peak_rss();
    let batches = s.batches();
    if stopped() {
        return Err(TrainError::Interrupted);
    }
    let data = Dataset::generate(&s.model, s.batch_size, batches, s.seed);
    if stopped() {
        return Err(TrainError::Interrupted);
    }
    let init = s.model.init_params(s.seed);
    let mut trainer = backend.trainer(&TrainSetup {
        model: &s.model,
        device: &s.device,
        data: &data,
        init: &init,
    })?;
    drop(init);
    let Some(dataset_before) = dataset_loss(trainer.as_mut(), batches, control.interrupt)? else {
        return Err(TrainError::Interrupted);
    };
    let dataset = data.info();
    drop(data);

    let warmup = s.warmup_steps;
    *progress.state() = State::Running(Box::new(Partial {
        settings: s.clone(),
        carbon: carbon.clone(),
        backend: backend.name(),
        framework_notes: trainer.notes(),
        threads: trainer.threads(),
        idle: idle.to_vec(),
        min_window_s: meters.map(|m| m.min_window().as_secs_f64()),
        started,
        peak_reset,
        dataset,
        dataset_before,
        curve: Vec::new(),
        // Reserved up to a bound: --steps may be far more than will run.
        samples: Vec::with_capacity((s.steps - warmup).min(1 << 16) as usize),
        steps: 0,
        boundary: Instant::now(),
        failure: None,
        window: None,
        window_error: meters
            .is_none()
            .then(|| "no energy meters were given".to_string()),
        closed: None,
    }));
    let abandoned = || Err(TrainError::Interrupted);
    let mut interruption = None;
    // A backend error from here on fails the run, which reports the steps completed before it.
    let mut backend_failed = false;
    for step in 0..s.steps {
        if stopped() {
            interruption = Some(format!("interrupted after {step} of {} steps", s.steps));
            // The loss the completed steps left, when the last of them computed none: one
            // forward pass on the next step's batch (that step's loss, had it run), after the
            // energy window closed (its energy is no step's).
            if step > 0 && !want_loss(step - 1, s.steps, s.log_every) {
                if progress.with(|p| p.close(meters, false)).is_none() {
                    return abandoned();
                }
                let loss = trainer.loss((step % batches as u64) as usize);
                let recorded = progress.with(|p| match &loss {
                    Ok(l) => {
                        p.record_loss(step, *l);
                    }
                    Err(e) => {
                        p.failure = Some(format!(
                            "the backend failed evaluating the loss after step {step}: {e}"
                        ));
                    }
                });
                if recorded.is_none() {
                    return abandoned();
                }
            }
            break;
        }
        let log = want_loss(step, s.steps, s.log_every);
        let ran = (|| -> Result<_, BackendError> {
            if step == warmup {
                trainer.sync()?;
                if progress.with(|p| p.open_window(meters)).is_none() {
                    return Ok(None);
                }
            }
            let t0 = Instant::now();
            let loss = trainer.step((step % batches as u64) as usize, s.lr, log)?;
            trainer.sync()?;
            Ok(Some((loss, t0.elapsed().as_secs_f64())))
        })();
        let (loss, dt) = match ran {
            Ok(Some(done)) => done,
            Ok(None) => return abandoned(),
            Err(e) => {
                if progress
                    .with(|p| p.fail_in_step(step, &e, meters))
                    .is_none()
                {
                    return abandoned();
                }
                backend_failed = true;
                break;
            }
        };
        let Some((point, failed)) = progress.with(|p| {
            let point = p.record(step, dt, loss);
            (point, p.failure.is_some())
        }) else {
            return abandoned();
        };
        if let Some(p) = point {
            on_loss(&p);
        }
        if failed {
            break;
        }
    }
    let Some(failed) = progress.with(|p| {
        p.close(meters, false);
        p.failure.is_some()
    }) else {
        return abandoned();
    };
    let dataset_after = if failed || interruption.is_some() {
        None
    } else {
        match dataset_loss(trainer.as_mut(), batches, control.interrupt) {
            Ok(after) => {
                if after.is_none() {
                    interruption = Some(format!(
                        "interrupted during the loss evaluation after step {} (the energy window \
                     had closed)",
                        s.steps
                    ));
                }
                after
            }
            Err(e) => {
                let why = format!(
                    "the backend failed evaluating the data-set loss after the {} steps: {e}",
                    s.steps
                );
                if progress.with(|p| p.failure = Some(why)).is_none() {
                    return abandoned();
                }
                backend_failed = true;
                None
            }
        }
    };
    // A backend that failed may not answer any more: its peak memory is not asked.
    let device_peak_bytes = if backend_failed {
        None
    } else {
        trainer.device_peak_bytes()
    };
    drop(trainer);
    match progress.take() {
        Some(p) => Ok(p.report(dataset_after, device_peak_bytes, interruption)),
        None => abandoned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::model::{ModelKind, Size};

    /// The guard counts what the data set holds while it is made, not its inputs once: 272
    /// bytes per sample of the tiny MLP (16 inputs, 4 outputs: 64 of inputs, 32 of f64 teacher
    /// outputs, 96 of two vectors' overhead, 64 of batched inputs, 16 of targets), 4.25× its
    /// inputs. Twenty million samples (1.28 GB of inputs, which the guard let through) hold
    /// 5.44 GB.
    #[test]
    fn the_data_set_guard_counts_the_memory_held_while_it_is_made() {
        let tiny = ModelConfig::new(ModelKind::Mlp, Size::Tiny);
        assert_eq!(dataset_peak_bytes(&tiny, 1), 272);
        let standard = ModelConfig::new(ModelKind::Mlp, Size::Standard);
        assert_eq!(
            dataset_peak_bytes(&standard, 1),
            4 * 128 + 8 * 16 + 96 + 4 * 128 + 4 * 16
        );
        let mut s = TrainSettings::new(tiny, 10);
        s.dataset_samples = 20_000_000;
        let TrainError::Usage(why) = validate(&s).unwrap_err() else {
            panic!("not a usage error");
        };
        assert!(
            why.contains("--dataset-samples 20000000")
                && why.contains("holds 5440000000 bytes of host memory")
                && why.contains("at most 15790320 samples"),
            "{why}"
        );
        // The most samples the limit allows, in whole batches of 64, pass.
        s.dataset_samples = 15_790_320 / 64 * 64;
        assert!(validate(&s).is_ok());
        // A batch alone over it blames --batch-size.
        s.batch_size = 15_790_321;
        let TrainError::Usage(why) = validate(&s).unwrap_err() else {
            panic!("not a usage error");
        };
        assert!(why.contains("--batch-size 15790321"), "{why}");
    }

    /// The step-time interval note speaks of measured steps and `--steps`: `train` has no
    /// `--min-samples` or `--max-time`, and a batch is its steps' data.
    #[test]
    fn the_interval_note_advises_more_steps() {
        let stats = |n: usize| TimeStats::from_samples(vec![0.01; n], 1, 100, 1);
        for n in [1, 2, 5] {
            let note = step_interval_note(&stats(n)).unwrap();
            assert!(
                note.contains("measure more steps (--steps)")
                    && !note.contains("--min-samples")
                    && !note.contains("--max-time")
                    && !note.contains("batch"),
                "{note}"
            );
        }
        assert!(step_interval_note(&stats(6)).is_none());
    }
}
