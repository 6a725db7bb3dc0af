//! Verification and timing of one case on one backend.
//!
//! Order per case: check support and memory, prepare (not timed), run once and verify against
//! the f64 reference, warm up, then collect samples until both a minimum time and a minimum
//! sample count are reached. Each sample times a batch of back-to-back calls with a device
//! sync inside the timed region ([`Prepared::time_iters`](crate::backend::Prepared::time_iters)); batches keep timer resolution and
//! per-sample overhead negligible for short calls. An optional [`WindowObserver`] (the energy
//! meters) brackets the whole sampling window, which is stretched to the observer's minimum.
use crate::backend::{Backend, BackendError, ToleranceOverride};
use crate::energy::CaseEnergy;
use crate::memory;
use crate::reference;
use crate::result::{CaseResult, Status, Throughput, Verification, VerifyMethod};
use crate::stats::TimeStats;
use crate::tensor::{generate_case_inputs, rel_errors, HostTensor, RelErrors};
use crate::workload::{Case, DType, Mode, Params, TensorRole};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Timing and verification options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HarnessConfig {
    /// Warm-up time before sampling (at least one call is always made), on every device
    /// unless `gpu_warmup_s` says otherwise for GPUs.
    pub warmup_s: f64,
    /// Warm-up time on a GPU (`cuda`, `cuda:N`), whose clocks take about a second to ramp up;
    /// null: `warmup_s` there too (files written before it existed, and callers that give
    /// one warm-up). `wattbench run` records the one it used: [`DEFAULT_GPU_WARMUP_S`]
    /// unless `--warmup` was given.
    #[serde(default)]
    pub gpu_warmup_s: Option<f64>,
    /// Minimum total sampling time.
    pub min_time_s: f64,
    /// Minimum number of samples.
    pub min_samples: usize,
    /// Stop after this many samples even if `min_time_s` is not reached.
    pub max_samples: usize,
    /// Stop sampling after this long even if `min_samples` is not reached (at least one
    /// sample is always taken).
    pub max_time_s: f64,
    /// Seed for inputs and the bootstrap.
    pub seed: u64,
    /// Bootstrap resamples for the median's confidence interval.
    pub bootstrap_resamples: usize,
    /// Above this many reference FLOPs, GEMM and conv are verified at sampled positions.
    pub full_verify_max_flops: u64,
    /// Positions checked when sampling.
    pub verify_samples: usize,
    /// Override of the per-dtype verification tolerance (relative L2 error).
    pub tolerance: Option<f64>,
}

/// Whether this build slows every sample down on purpose: the `evidence-slowdown` feature
/// (for the regression-detection evidence of `scripts/regression-evidence.sh` only) makes
/// each sample of n counted calls do 1.1 n real calls, a known 10% slowdown made of real
/// work. Such a build says so in `environment.software`.
pub const EVIDENCE_SLOWDOWN: bool = cfg!(feature = "evidence-slowdown");

/// The longest time any one setting may ask for, s (a day): beyond it a value is a typo.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Default warm-up on a CPU, s: enough for caches and the thread pool.
pub const DEFAULT_WARMUP_S: f64 = 0.05;

/// Default warm-up on a GPU, s: its clocks ramp up from idle over about a second (a shorter
/// warm-up measures the ramp: the drift note of a case says so).
pub const DEFAULT_GPU_WARMUP_S: f64 = 1.0;

/// Whether `device` is a GPU (`cuda`, `cuda:N`).
pub fn is_gpu(device: &str) -> bool {
    device == "cuda" || device.starts_with("cuda:")
}

impl HarnessConfig {
    /// The warm-up on `device`: `gpu_warmup_s` on a GPU when set, else `warmup_s`.
    pub fn warmup_for(&self, device: &str) -> f64 {
        match self.gpu_warmup_s {
            Some(g) if is_gpu(device) => g,
            _ => self.warmup_s,
        }
    }

    /// Refuses contradictory or absurd settings with a message naming the command-line
    /// options (nothing is silently changed): negative or non-finite times, a minimum time
    /// above the maximum, more minimum samples than the cap, times beyond a day.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("--min-time", self.min_time_s),
            ("--max-time", self.max_time_s),
            ("--warmup", self.warmup_s),
            ("--warmup", self.gpu_warmup_s.unwrap_or(0.0)),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "{name} must be a non-negative number of seconds, not {v}"
                ));
            }
            if v > MAX_SECONDS {
                return Err(format!(
                    "{name} {v} s is more than a day ({MAX_SECONDS} s): surely a typo"
                ));
            }
        }
        if self.min_time_s > self.max_time_s {
            return Err(format!(
                "--min-time {} exceeds --max-time {}: the maximum bounds every case's \
                 sampling, so raise --max-time or lower --min-time",
                self.min_time_s, self.max_time_s
            ));
        }
        if self.min_samples == 0 {
            return Err("--min-samples must be at least 1".into());
        }
        if self.min_samples > self.max_samples {
            return Err(format!(
                "--min-samples {} exceeds the cap of {} samples per case",
                self.min_samples, self.max_samples
            ));
        }
        if let Some(t) = self.tolerance {
            if !t.is_finite() || t < 0.0 {
                return Err(format!(
                    "--tolerance must be a non-negative number, not {t}"
                ));
            }
        }
        Ok(())
    }
}

impl Default for HarnessConfig {
    fn default() -> Self {
        Self {
            warmup_s: DEFAULT_WARMUP_S,
            gpu_warmup_s: None,
            min_time_s: 0.3,
            min_samples: 10,
            max_samples: 1000,
            max_time_s: 10.0,
            seed: 0x5eed,
            bootstrap_resamples: 1000,
            full_verify_max_flops: 4_000_000_000,
            verify_samples: 4096,
            tolerance: None,
        }
    }
}

/// Something measured over the whole sampling window (energy meters). The harness syncs the
/// device before `start` and after the last sample, before `stop`.
pub trait WindowObserver {
    /// Shortest window that gives a meaningful reading.
    fn min_window(&self) -> Duration;
    /// Window opens.
    fn start(&mut self);
    /// Window closes after `calls` calls of `flops_per_call` each; returns the case's
    /// energy record.
    fn stop(&mut self, calls: u64, flops_per_call: u64) -> Option<CaseEnergy>;
}

/// Seeded inputs of one case and its lazily computed f64 reference, shared by every backend.
pub struct CaseInputs {
    /// The case (backend-independent).
    pub case: Case,
    tensors: OnceLock<Vec<HostTensor>>,
    reference: OnceLock<RefOutput>,
    full_verify_max_flops: u64,
    verify_samples: usize,
    /// The tolerance given on the command line, if any; else the case's default.
    tolerance_override: Option<f64>,
    seed: u64,
}

enum RefOutput {
    Full(Vec<Vec<f64>>),
    /// Per output: (flat indices, reference values).
    Sampled(Vec<(Vec<usize>, Vec<f64>)>),
}

impl CaseInputs {
    /// Inputs of `case`, generated on first use (after the memory check).
    pub fn new(case: Case, cfg: &HarnessConfig) -> Self {
        Self {
            case,
            tensors: OnceLock::new(),
            reference: OnceLock::new(),
            full_verify_max_flops: cfg.full_verify_max_flops,
            verify_samples: cfg.verify_samples,
            tolerance_override: cfg.tolerance,
            seed: cfg.seed,
        }
    }

    /// Bytes the harness and a backend will hold for this case: host inputs (f32), one
    /// backend copy of inputs and outputs, the output read back (f32) and the f64 reference,
    /// with, for an RNN training step, the reference's backpropagation tape (f64: every
    /// step's previous state, gate activations and recurrent products, and cell states).
    pub fn estimated_bytes(case: &Case) -> u64 {
        let ins: u64 = case.input_specs().iter().map(|t| t.numel() as u64).sum();
        let outs: u64 = case.output_specs().iter().map(|t| t.numel() as u64).sum();
        let tape = match (case.mode, case.params) {
            (Mode::Train, Params::Rnn(r)) => {
                let (t, bh) = (r.steps as u64, (r.batch * r.hidden) as u64);
                let bgh = bh * r.cell.gates() as u64;
                (t * bh + 2 * t * bgh + (t + 1) * bh) * 8
            }
            _ => 0,
        };
        ins * 4 + (ins + outs) * case.dtype.size() + outs * 4 + outs * 8 + ins * 8 + tape
    }

    /// The inputs, rounded to the case dtype.
    pub fn tensors(&self) -> &[HostTensor] {
        self.tensors
            .get_or_init(|| generate_case_inputs(&self.case, self.seed))
    }

    fn reference(&self) -> &RefOutput {
        self.reference.get_or_init(|| {
            let f64_in: Vec<Vec<f64>> = self.tensors().iter().map(HostTensor::to_f64).collect();
            if self.case.flops() > self.full_verify_max_flops {
                if let Some(samples) = reference::sample_case_outputs(
                    &self.case,
                    &f64_in,
                    self.verify_samples,
                    self.seed,
                ) {
                    return RefOutput::Sampled(samples);
                }
            }
            RefOutput::Full(reference::run(&self.case, &f64_in))
        })
    }

    /// Compare a backend's outputs with the reference: the relative L2 error of each output
    /// tensor, and the largest of them, against the case's tolerance (widened by what the
    /// implementation declares, unless the user gave a tolerance); the largest max error
    /// (scaled to noise) against the same tolerance ([`within_tolerance`]); and an updated
    /// weight whose SGD step is within that tolerance, as the step itself (`step_error`),
    /// or listed as unchecked where the dtype's rounding hides the step.
    pub fn verify(
        &self,
        outs: &[Vec<f32>],
        implementation: Option<&ToleranceOverride>,
    ) -> Verification {
        let (tol, tolerance_note) = match (self.tolerance_override, implementation) {
            (Some(t), _) => (t, Some("given on the command line".to_string())),
            (None, Some(o)) => (
                self.case.tolerance() * o.factor.max(1.0),
                Some(format!("{}x the default: {}", o.factor.max(1.0), o.why)),
            ),
            (None, None) => (self.case.tolerance(), None),
        };
        let specs = self.case.output_specs();
        let mut per_output = BTreeMap::new();
        // Each output's error against its reference values (all of them, or the sampled
        // positions); a missing or wrongly sized output is infinitely wrong.
        // (sampled positions, or all of them; reference values) per output.
        type Expected<'r> = (Option<&'r [usize]>, &'r [f64]);
        let (refs, method): (Vec<Expected<'_>>, _) = match self.reference() {
            RefOutput::Full(refs) => (
                refs.iter().map(|r| (None, r.as_slice())).collect(),
                VerifyMethod::Full,
            ),
            RefOutput::Sampled(samples) => (
                samples
                    .iter()
                    .map(|(i, v)| (Some(i.as_slice()), v.as_slice()))
                    .collect(),
                VerifyMethod::Sampled,
            ),
        };
        // What made an error infinite, in words (the errors alone cannot tell).
        let mut defects = Vec::new();
        let mut err = if outs.len() == refs.len() {
            0.0f64
        } else {
            defects.push(format!(
                "the backend returned {} outputs, expected {} ({})",
                outs.len(),
                refs.len(),
                specs
                    .iter()
                    .map(|s| format!("`{}`", s.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            f64::INFINITY
        };
        let mut max_err = err;
        let infinite = RelErrors {
            l2: f64::INFINITY,
            max: f64::INFINITY,
        };
        for ((spec, (idx, want)), out) in specs.iter().zip(&refs).zip(outs) {
            let e = if out.len() != spec.numel() {
                defects.push(format!(
                    "output `{}` has {} values, expected {}",
                    spec.name,
                    out.len(),
                    spec.numel()
                ));
                infinite
            } else if let Some((i, v)) = first_not_finite(out) {
                // A value that is not finite fails wherever it is, sampled or not: outputs
                // are poisoned with NaN before a verified run, so one the kernel never wrote
                // (a missed tile, a skipped edge) is caught whatever the sample.
                let why = if v.is_nan() {
                    "never written?"
                } else {
                    "an overflow?"
                };
                defects.push(format!(
                    "value {v} at index {i} of `{}` is not finite ({why})",
                    spec.name
                ));
                infinite
            } else {
                let e = match idx {
                    None => rel_errors(out, want),
                    Some(idx) => {
                        let picked: Vec<f32> = idx.iter().map(|&i| out[i]).collect();
                        rel_errors(&picked, want)
                    }
                };
                if e.l2.is_infinite() {
                    defects.push(format!(
                        "the reference of `{}` is all zeros where the output is not",
                        spec.name
                    ));
                }
                e
            };
            per_output.insert(spec.name.to_string(), e.l2);
            err = err.max(e.l2);
            max_err = max_err.max(e.max);
        }
        let n: usize = refs.iter().map(|(_, v)| v.len()).sum();
        if per_output.len() < 2 {
            per_output.clear();
        }
        // An updated weight returned without its update (the input weight itself) can be
        // within the tolerance: in half precision the SGD step is often smaller than the
        // rounding of the weights that the tolerance allows. Such an update is checked as a
        // step instead ([`step_error`]), where the rounding leaves the step visible; where it
        // does not, it is listed as unchecked, never counted as verified.
        let inputs = self.case.input_specs();
        let mut unchecked_updates = Vec::new();
        let mut step_failed = false;
        for (k, (spec, (idx, want))) in specs.iter().zip(&refs).enumerate() {
            let Some(i) = inputs.iter().position(
                |t| matches!(t.role, TensorRole::Weight { updated, .. } if updated == spec.name),
            ) else {
                continue;
            };
            let pick = |v: &[f32]| -> Vec<f32> {
                match idx {
                    None => v.to_vec(),
                    Some(idx) => idx.iter().map(|&j| v[j]).collect(),
                }
            };
            let before = pick(&self.tensors()[i].data);
            if !within_tolerance(rel_errors(&before, want), tol) {
                // The plain check already fails an update left out.
                continue;
            }
            match outs.get(k).filter(|o| o.len() == spec.numel()) {
                // Missing or of the wrong size: already infinitely wrong.
                None => {}
                Some(out) => match step_error(&before, want, &pick(out), self.case.dtype, tol) {
                    None => unchecked_updates.push(spec.name.to_string()),
                    // NaN (a value not finite) is no pass either.
                    Some((e, allowed)) if e.is_nan() || e > allowed => {
                        step_failed = true;
                        defects.push(format!(
                            "the SGD step of `{}` (w − {0}, against the reference's lr·dw) is \
                             off by {e:.2e} of its size, beyond the {allowed:.1e} that the \
                             tolerance and the {} rounding of the weights allow (an update \
                             left out, reversed or mis-scaled?)",
                            spec.name,
                            self.case.dtype.as_str()
                        ));
                    }
                    Some(_) => {}
                },
            }
        }
        Verification {
            rel_l2_error: err,
            rel_max_error: Some(max_err),
            tolerance: tol,
            tolerance_note,
            passed: !step_failed
                && within_tolerance(
                    RelErrors {
                        l2: err,
                        max: max_err,
                    },
                    tol,
                ),
            method,
            checked_values: n as u64,
            per_output,
            unchecked_updates,
            defects,
        }
    }
}

/// The first value of `out` that is not finite, with its index.
fn first_not_finite(out: &[f32]) -> Option<(usize, f32)> {
    out.iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
        .map(|(i, &v)| (i, v))
}

/// The error of an SGD step that the updated weights alone cannot show: `‖got − want‖ /
/// ‖before − want‖`, the applied step `(w − w_new)/lr` against the reference gradient `dw`,
/// relative to its size (the learning rate cancels), with what a correct step may err by:
/// `tol` (its gradient's error) plus the most that rounding each updated weight to nearest in
/// `dtype` (half a spacing) can move it. `None` when that allowance reaches 1, where a step
/// left out (error exactly 1) would pass: the step is below the rounding, and cannot be
/// verified at all.
fn step_error(
    before: &[f32],
    want: &[f64],
    got: &[f32],
    dtype: DType,
    tol: f64,
) -> Option<(f64, f64)> {
    let l2 = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let step = l2(&mut before.iter().zip(want).map(|(&b, w)| b as f64 - w));
    let rounding = l2(&mut want.iter().map(|&w| 0.5 * spacing(w, dtype)));
    let allowed = tol + rounding / step;
    // A step of 0 (a zero gradient) gives an infinite or NaN allowance: unverifiable.
    if allowed.is_nan() || allowed >= 1.0 {
        return None;
    }
    let off = l2(&mut got.iter().zip(want).map(|(&g, w)| g as f64 - w));
    Some((off / step, allowed))
}

/// The spacing of `dtype`'s values at `v` (its unit in the last place there), subnormals
/// included.
fn spacing(v: f64, dtype: DType) -> f64 {
    let (mantissa_bits, min_exponent) = match dtype {
        DType::F32 => (23, -126),
        DType::F16 => (10, -14),
        DType::Bf16 => (7, -126),
    };
    let exponent = ((v.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023;
    2f64.powi(exponent.max(min_exponent) - mantissa_bits)
}

/// Whether errors `e` pass a case of tolerance `tol`: both the L2 error and the max error
/// (scaled to noise, [`RelErrors::max`]) within it. The rule of every verification, the GPU
/// tests' included.
pub fn within_tolerance(e: RelErrors, tol: f64) -> bool {
    e.l2 <= tol && e.max <= tol
}

/// Runs cases.
pub struct Harness<'a> {
    /// Options.
    pub cfg: HarnessConfig,
    /// Set by a Ctrl-C handler; checked between samples and cases.
    pub interrupt: &'a AtomicBool,
}

/// A case stopped by Ctrl-C; it is not reported.
#[derive(Debug)]
pub struct Interrupted;

/// A case that is not run at all (e.g. its device is unavailable), with the reason.
pub fn skipped(inp: &CaseInputs, backend: &str, device: &str, reason: String) -> CaseResult {
    let mut r = CaseResult::new(&inp.case, backend, device);
    r.reason = Some(reason);
    r
}

impl<'a> Harness<'a> {
    /// A harness with options `cfg` that stops when `interrupt` is set.
    pub fn new(cfg: HarnessConfig, interrupt: &'a AtomicBool) -> Self {
        Harness { cfg, interrupt }
    }

    fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// Verify and time `inp` on `backend`/`device`. Skips and failures are results, not
    /// errors; only an interrupt returns `Err`.
    pub fn run_case(
        &self,
        inp: &CaseInputs,
        backend: &dyn Backend,
        device: &str,
        observer: Option<&mut dyn WindowObserver>,
    ) -> Result<CaseResult, Interrupted> {
        let mut res = CaseResult::new(&inp.case, backend.name(), device);
        if let Err(why) = backend.supports(&inp.case, device) {
            res.reason = Some(why);
            return Ok(res);
        }
        let need = CaseInputs::estimated_bytes(&inp.case);
        // The least of the host's free memory and the cgroup's limit: past a container's or
        // a job's limit the kernel kills the run, every completed case with it.
        if let Some(avail) = memory::available() {
            if need > avail.bytes {
                res.reason = Some(format!(
                    "needs about {} of host memory, {} available ({})",
                    crate::units::gib(need),
                    crate::units::gib(avail.bytes),
                    avail.limit
                ));
                return Ok(res);
            }
        }
        res.memory.host_peak_reset = memory::reset_peak_rss();
        let outcome = self.measure(inp, backend, device, observer, &mut res);
        res.memory.host_peak_rss_bytes = memory::peak_rss_bytes();
        match outcome {
            Ok(()) => {}
            Err(Step::Interrupted) => return Err(Interrupted),
            Err(Step::Error(BackendError::Unsupported(why))) => {
                res.status = Status::Skipped;
                res.reason = Some(why);
            }
            Err(Step::Error(e @ BackendError::Unavailable(_))) => {
                res.status = Status::Skipped;
                res.reason = Some(e.to_string());
            }
            Err(Step::Error(e)) => {
                res.status = Status::Failed;
                res.reason = Some(e.to_string());
            }
        }
        Ok(res)
    }

    fn measure(
        &self,
        inp: &CaseInputs,
        backend: &dyn Backend,
        device: &str,
        observer: Option<&mut dyn WindowObserver>,
        res: &mut CaseResult,
    ) -> Result<(), Step> {
        let mut prep = backend.prepare(&inp.case, device, inp.tensors())?;
        // Correctness first: one call, read back, compare.
        prep.execute()?;
        prep.sync()?;
        let outs = prep.outputs()?;
        res.implementation = prep.implementation();
        let v = inp.verify(&outs, prep.tolerance().as_ref());
        let passed = v.passed;
        res.notes.extend(v.unchecked_updates_note());
        res.verification = Some(v);
        if !passed {
            res.status = Status::Failed;
            res.reason = res
                .verification
                .as_ref()
                .map(|v| format!("verification failed: {}", v.errors_in_words()));
            return Ok(());
        }
        if self.interrupted() {
            return Err(Step::Interrupted);
        }

        // Warm-up, which also estimates the cost of one call.
        let warmup_s = self.cfg.warmup_for(device);
        let t0 = Instant::now();
        let mut calls = 0u64;
        loop {
            prep.time_iters(1)?;
            calls += 1;
            if t0.elapsed().as_secs_f64() >= warmup_s {
                break;
            }
        }
        let per_call = (t0.elapsed().as_secs_f64() / calls as f64).max(1e-9);

        let min_window = observer
            .as_ref()
            .map_or(0.0, |o| o.min_window().as_secs_f64());
        // Never aim past the maximum (validated: min_time_s <= max_time_s), except to fill
        // the meters' minimum window.
        let min_time = self.cfg.min_time_s.min(self.cfg.max_time_s).max(min_window);
        // Aim for >= min_samples samples inside min_time, each at least ~1 ms of work.
        let target = (min_time / self.cfg.min_samples.max(1) as f64).max(1e-3);
        let iters = ((target / per_call).floor() as u64).max(1);

        let mut observer = observer;
        prep.sync()?;
        if let Some(o) = observer.as_mut() {
            o.start();
        }
        let start = Instant::now();
        let mut samples = Vec::new();
        // A normal build times exactly the calls it counts.
        let (iters, extra) = if EVIDENCE_SLOWDOWN {
            (iters * 10, iters)
        } else {
            (iters, 0)
        };
        loop {
            let dt = prep.time_iters(iters + extra)?;
            samples.push(dt.as_secs_f64() / iters as f64);
            let elapsed = start.elapsed().as_secs_f64();
            if self.interrupted() {
                return Err(Step::Interrupted);
            }
            let enough = elapsed >= min_time && samples.len() >= self.cfg.min_samples;
            if enough
                || samples.len() >= self.cfg.max_samples
                || elapsed >= self.cfg.max_time_s.max(min_window)
            {
                break;
            }
        }
        prep.sync()?;
        // The validation keeps max_samples >= min_samples, so fewer samples than asked means
        // the time limit ended the sampling: said on the case, not only in the config.
        if samples.len() < self.cfg.min_samples {
            res.notes.push(min_samples_note(
                samples.len(),
                self.cfg.min_samples,
                self.cfg.max_time_s,
                min_window,
            ));
        }
        let total_calls = iters * samples.len() as u64;
        let flops = inp.case.flops();
        if let Some(o) = observer.as_mut() {
            res.energy = o.stop(total_calls, flops);
        }
        res.memory.device_peak_bytes = prep.device_peak_bytes();

        if let Some((first, last)) = crate::stats::drift(&samples) {
            res.notes.push(drift_note(first, last, device));
        }
        let stats =
            TimeStats::from_samples(samples, iters, self.cfg.bootstrap_resamples, self.cfg.seed);
        if stats.median_s <= 0.0 {
            // No rate can be computed from it (and none written: JSON has no infinity).
            res.status = Status::Failed;
            res.reason = Some(format!(
                "the median time per call is {} s: the timer did not resolve the calls \
                 (a backend whose time_iters does not wait for its work?)",
                stats.median_s
            ));
            return Ok(());
        }
        res.notes.extend(stats.interval_note());
        let bytes = inp.case.min_bytes();
        res.throughput = Some(Throughput {
            flops,
            gflops_per_s: flops as f64 / stats.median_s / 1e9,
            bytes,
            gbytes_per_s: bytes as f64 / stats.median_s / 1e9,
            intensity: flops as f64 / bytes as f64,
        });
        res.time = Some(stats);
        res.status = Status::Ok;
        Ok(())
    }
}

/// The note of a case whose sampling the time limit ended before `min_samples`: how many
/// samples were taken, and why.
fn min_samples_note(
    taken: usize,
    min_samples: usize,
    max_time_s: f64,
    min_window_s: f64,
) -> String {
    let limit = if min_window_s > max_time_s {
        format!("the energy window's minimum length of {min_window_s} s (the meters' minimum reliable window, or --energy-window when longer; longer than --max-time {max_time_s} s)")
    } else {
        format!("--max-time {max_time_s} s")
    };
    format!(
        "{taken} samples, fewer than --min-samples {min_samples}: {limit} ended the sampling \
         (raise --max-time, or make --min-samples smaller)"
    )
}

/// What a case says when its per-call time drifted while it was sampled.
fn drift_note(first: f64, last: f64, device: &str) -> String {
    format!(
        "the time per call drifted from {} (first quarter of the samples) to {} (last \
         quarter): {device} was not in a steady state while measured (clocks ramping up or \
         throttling, caches, other load), so the median mixes two states; a longer --warmup \
         (on a GPU, 1 s or more) or a quieter machine gives a steadier figure",
        crate::units::seconds(first),
        crate::units::seconds(last)
    )
}

enum Step {
    Interrupted,
    Error(BackendError),
}

impl From<BackendError> for Step {
    fn from(e: BackendError) -> Self {
        Step::Error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{DeviceInfo, Prepared};
    use crate::reference::ReferenceBackend;
    use crate::workload::{Cell, DType, GemmParams, RnnParams};

    fn quick_cfg() -> HarnessConfig {
        HarnessConfig {
            warmup_s: 0.0,
            min_time_s: 0.0,
            min_samples: 3,
            bootstrap_resamples: 10,
            ..Default::default()
        }
    }

    /// [`quick_cfg`] that verifies by sampling `samples` values of each output, never in
    /// full.
    fn sampling_cfg(samples: usize) -> HarnessConfig {
        HarnessConfig {
            full_verify_max_flops: 0,
            verify_samples: samples,
            ..quick_cfg()
        }
    }

    /// An RNN training step's estimate holds the reference's backpropagation tape: for GRU
    /// H2816 B32 T1500, 8.1 GiB more than its inputs and outputs.
    #[test]
    fn an_rnn_training_estimate_counts_the_reference_tape() {
        let case = |mode| Case {
            params: Params::Rnn(RnnParams::new(Cell::Gru, 2816, 32, 1500)),
            mode,
            dtype: DType::Bf16,
            tag: None,
        };
        let train = case(Mode::Train);
        let ins: u64 = train.input_specs().iter().map(|t| t.numel() as u64).sum();
        let outs: u64 = train.output_specs().iter().map(|t| t.numel() as u64).sum();
        let without_tape = ins * 4 + (ins + outs) * 2 + outs * 4 + outs * 8 + ins * 8;
        let (t, bh) = (1500u64, 32 * 2816u64);
        let tape = (t * bh + 2 * t * 3 * bh + (t + 1) * bh) * 8;
        assert_eq!(tape, 8_651_472_896);
        assert_eq!(CaseInputs::estimated_bytes(&train), without_tape + tape);
    }

    fn gemm_case(dtype: DType) -> Case {
        Case {
            params: Params::Gemm(GemmParams::new(7, 5, 9).transposed(true, false)),
            mode: Mode::Infer,
            dtype,
            tag: None,
        }
    }

    /// The reference's results for a case of any dtype (computed as its f32 case).
    struct AnyDtypeReference;
    impl Backend for AnyDtypeReference {
        fn name(&self) -> &'static str {
            "perturbed"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            vec![DeviceInfo::available("cpu")]
        }
        fn supports(&self, _: &Case, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn prepare(
            &self,
            c: &Case,
            d: &str,
            i: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            let c32 = Case {
                dtype: DType::F32,
                ..c.clone()
            };
            ReferenceBackend.prepare(&c32, d, i)
        }
    }

    /// The reference's result with the fourth value of its first output moved by `delta`.
    fn perturbed(delta: f32) -> crate::testing::Perturbed {
        crate::testing::Perturbed {
            inner: std::sync::Arc::new(AnyDtypeReference),
            delta,
            index: 3,
        }
    }

    #[test]
    fn min_samples_cut_short_by_max_time_is_noted_on_the_case() {
        let flag = AtomicBool::new(false);
        // Each sample is at least 1 ms of work: 0.05 s holds far fewer than 1000.
        let cfg = HarnessConfig {
            min_samples: 1000,
            max_time_s: 0.05,
            ..quick_cfg()
        };
        let h = Harness::new(cfg, &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        let r = h.run_case(&inp, &ReferenceBackend, "cpu", None).unwrap();
        assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
        let n = r.time.as_ref().unwrap().samples_s.len();
        assert!(n < 1000, "{n}");
        // Real time is measured here, so a busy machine may add a drift note (its own test
        // uses a clock of ours); the sample-count note must be there exactly once.
        let cut_short = |notes: &[String]| {
            notes
                .iter()
                .filter(|n| n.contains("fewer than --min-samples"))
                .cloned()
                .collect::<Vec<_>>()
        };
        let found = cut_short(&r.notes);
        assert_eq!(found.len(), 1, "{:?}", r.notes);
        assert!(
            found[0].starts_with(&format!("{n} samples, fewer than --min-samples 1000"))
                && found[0].contains("--max-time 0.05 s ended the sampling"),
            "{}",
            found[0]
        );
        assert!(
            r.notes.iter().all(|n| n == &found[0]
                || n.contains("the time per call drifted")
                || n.contains("the interval of the median is their range")),
            "{:?}",
            r.notes
        );
        // Enough samples: no such note.
        let h = Harness::new(quick_cfg(), &flag);
        let r = h.run_case(&inp, &ReferenceBackend, "cpu", None).unwrap();
        assert!(cut_short(&r.notes).is_empty(), "{:?}", r.notes);
    }

    /// The reference's results, timed by a clock of our own: every sample after the warm-up
    /// takes `per_iter(sample number)` a call.
    struct Clocked(fn(usize) -> f64);
    struct ClockedPrep {
        inner: Box<dyn Prepared>,
        per_iter: fn(usize) -> f64,
        calls: usize,
    }
    impl Prepared for ClockedPrep {
        fn execute(&mut self) -> Result<(), BackendError> {
            self.inner.execute()
        }
        fn sync(&mut self) -> Result<(), BackendError> {
            self.inner.sync()
        }
        fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
            self.inner.outputs()
        }
        fn time_iters(&mut self, iters: u64) -> Result<Duration, BackendError> {
            self.calls += 1;
            let per = (self.per_iter)(self.calls);
            Ok(Duration::from_secs_f64(per * iters as f64))
        }
    }
    impl Backend for Clocked {
        fn name(&self) -> &'static str {
            "clocked"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            vec![DeviceInfo::available("cpu")]
        }
        fn supports(&self, _: &Case, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn prepare(
            &self,
            c: &Case,
            d: &str,
            i: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            Ok(Box::new(ClockedPrep {
                inner: ReferenceBackend.prepare(c, d, i)?,
                per_iter: self.0,
                calls: 0,
            }))
        }
    }

    /// A device whose calls get faster while it is measured (a GPU's clocks ramping up after
    /// too short a warm-up) is noted on the case; a steady one is not.
    #[test]
    fn time_that_drifts_while_sampled_is_noted() {
        let flag = AtomicBool::new(false);
        let cfg = HarnessConfig {
            min_samples: 40,
            ..quick_cfg()
        };
        let h = Harness::new(cfg, &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        // Call 1 is the warm-up; samples 1-10 (calls 2-11) take 2 ms a call, then 1 ms.
        let ramp = Clocked(|call| if call <= 11 { 2e-3 } else { 1e-3 });
        let r = h.run_case(&inp, &ramp, "cpu", None).unwrap();
        assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
        assert!(
            r.notes.iter().any(|n| n.contains("drifted from 2.000 ms")
                && n.contains("to 1.000 ms")
                && n.contains("cpu was not in a steady state")),
            "{:?}",
            r.notes
        );
        let steady = Clocked(|call| 1e-3 * (1.0 + 0.01 * (call % 3) as f64));
        let r = h.run_case(&inp, &steady, "cpu", None).unwrap();
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn correct_backend_is_verified_and_timed() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(quick_cfg(), &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        let r = h.run_case(&inp, &ReferenceBackend, "cpu", None).unwrap();
        assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
        let v = r.verification.unwrap();
        assert!(v.passed && v.rel_l2_error < 1e-6);
        assert_eq!((v.method, v.checked_values), (VerifyMethod::Full, 35));
        let t = r.time.unwrap();
        assert!(t.samples_s.len() >= 3 && t.min_s <= t.median_s && t.median_s <= t.max_s);
        assert_eq!(r.throughput.unwrap().flops, 2 * 7 * 5 * 9);
        assert_eq!(r.id, "gemm/infer/m7_n5_k9_tn/f32/reference/cpu");
    }

    #[test]
    fn wrong_output_fails_verification() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(quick_cfg(), &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        let r = h.run_case(&inp, &perturbed(0.05), "cpu", None).unwrap();
        assert_eq!(r.status, Status::Failed);
        assert!(r.reason.unwrap().contains("verification failed"));
        assert!(r.time.is_none());
        // The same perturbation is within bf16's tolerance only if small enough: 1e-6 passes.
        let r = h.run_case(&inp, &perturbed(1e-6), "cpu", None).unwrap();
        assert_eq!(r.status, Status::Ok);
    }

    #[test]
    fn one_wrong_value_among_thousands_fails_though_l2_dilutes_it() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(quick_cfg(), &flag);
        let case = Case {
            params: Params::Gemm(GemmParams::new(64, 64, 16)),
            mode: Mode::Infer,
            dtype: DType::Bf16,
            tag: None,
        };
        let inp = CaseInputs::new(case, &h.cfg);
        let r = h.run_case(&inp, &perturbed(0.25), "cpu", None).unwrap();
        let v = r.verification.unwrap();
        assert!(v.rel_l2_error <= v.tolerance, "L2 alone would pass: {v:?}");
        assert!(v.rel_max_error.unwrap() > v.tolerance, "{v:?}");
        assert_eq!(r.status, Status::Failed);
        // The reason names the error beyond the tolerance, not the L2 one within it.
        let why = r.reason.unwrap();
        assert!(
            why.contains("max error (scaled to noise)")
                && why.find("max error") < why.find("relative L2")
                && why.contains("beyond the tolerance"),
            "{why}"
        );
        // The correct result passes both.
        let ok = h.run_case(&inp, &perturbed(0.0), "cpu", None).unwrap();
        assert_eq!(ok.status, Status::Ok, "{:?}", ok.verification);
    }

    /// A bf16 GEMM that leaves out the last term of its K-sum fails (here 3.2e-2 at K = 1024,
    /// 1.6e-2 at K = 4096, both within the former 4e-2), while the correct one, its output rounded
    /// to bf16 as a kernel accumulating in fp32 gives it, passes; in training too, where the
    /// same error reaches the gradients.
    #[test]
    fn a_bf16_gemm_that_drops_a_term_of_its_sum_fails() {
        for (k, mode) in [
            (1024, Mode::Infer),
            (4096, Mode::Infer),
            (1024, Mode::Train),
        ] {
            let case = Case {
                params: Params::Gemm(GemmParams::new(64, 48, k)),
                mode,
                dtype: DType::Bf16,
                tag: None,
            };
            let inp = CaseInputs::new(case.clone(), &quick_cfg());
            let x: Vec<Vec<f64>> = inp.tensors().iter().map(HostTensor::to_f64).collect();
            let bf16 = |outs: Vec<Vec<f64>>| -> Vec<Vec<f32>> {
                outs.iter()
                    .map(|o| {
                        (o.iter())
                            .map(|&v| crate::tensor::round_to(v as f32, DType::Bf16))
                            .collect()
                    })
                    .collect()
            };
            let right = inp.verify(&bf16(reference::run(&case, &x)), None);
            assert!(right.passed, "{k} {mode:?}: {right:?}");
            // A (64 x K, row-major) without its last column: every sum one term short.
            let mut short = x.clone();
            short[0]
                .iter_mut()
                .skip(k - 1)
                .step_by(k)
                .for_each(|v| *v = 0.0);
            let dropped = inp.verify(&bf16(reference::run(&case, &short)), None);
            assert!(
                !dropped.passed && dropped.rel_l2_error > 1e-2,
                "{k} {mode:?}: {}",
                dropped.errors_in_words()
            );
        }
    }

    #[test]
    fn sampled_verification_catches_wrong_values() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(sampling_cfg(35), &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        let ok = h.run_case(&inp, &ReferenceBackend, "cpu", None).unwrap();
        assert_eq!(
            ok.verification.as_ref().unwrap().method,
            VerifyMethod::Sampled
        );
        assert_eq!(ok.status, Status::Ok);
        let bad = h.run_case(&inp, &perturbed(10.0), "cpu", None).unwrap();
        // A sample of 35 positions of a 35-value output is every position (none is drawn),
        // index 3 among them.
        assert_eq!(bad.status, Status::Failed, "{:?}", bad.verification);
        assert_eq!(bad.verification.unwrap().checked_values, 35);
    }

    /// Outputs are poisoned with NaN before a verified run: a value the kernel never wrote
    /// (or an overflow) outside the sampled positions must fail as one inside them does.
    #[test]
    fn a_value_not_finite_outside_the_sample_fails_verification() {
        let case = Case {
            params: Params::Gemm(GemmParams::new(61, 47, 8)),
            ..gemm_case(DType::F32)
        };
        let inp = CaseInputs::new(case.clone(), &sampling_cfg(64));
        let x: Vec<Vec<f64>> = generate_case_inputs(&case, inp.seed)
            .iter()
            .map(HostTensor::to_f64)
            .collect();
        let good: Vec<f32> = reference::run(&case, &x)[0]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let v = inp.verify(std::slice::from_ref(&good), None);
        assert!(v.passed && v.method == VerifyMethod::Sampled, "{v:?}");
        let Some(RefOutput::Sampled(samples)) = inp.reference.get() else {
            panic!("not sampled")
        };
        let unsampled = (0..good.len()).find(|i| !samples[0].0.contains(i)).unwrap();
        for poison in [f32::NAN, f32::INFINITY] {
            let mut bad = good.clone();
            bad[unsampled] = poison;
            let v = inp.verify(&[bad], None);
            assert!(!v.passed, "{poison} at unsampled {unsampled} passed: {v:?}");
            assert!(v.errors_in_words().contains("inf beyond"), "{v:?}");
        }
    }

    /// A correct training step of `case` on seed 1 (the reference's outputs rounded to the
    /// case's dtype, as a backend returns them), and the same step with its updated weights
    /// replaced by the weights before it (the SGD update left out), verified.
    fn with_and_without_the_update(case: &Case) -> (Verification, Verification) {
        let cfg = HarnessConfig {
            seed: 1,
            ..quick_cfg()
        };
        let inp = CaseInputs::new(case.clone(), &cfg);
        let x: Vec<Vec<f64>> = inp.tensors().iter().map(HostTensor::to_f64).collect();
        let mut outs: Vec<Vec<f32>> = reference::run(case, &x)
            .iter()
            .map(|o| {
                (o.iter())
                    .map(|&v| crate::tensor::round_to(v as f32, case.dtype))
                    .collect()
            })
            .collect();
        let right = inp.verify(&outs, None);
        let specs = case.output_specs();
        for (i, t) in case.input_specs().iter().enumerate() {
            if let TensorRole::Weight { updated, .. } = t.role {
                let o = specs.iter().position(|s| s.name == updated).unwrap();
                outs[o] = inp.tensors()[i].data.clone();
            }
        }
        (right, inp.verify(&outs, None))
    }

    fn rnn_train(cell: Cell, hidden: usize, batch: usize, steps: usize, dtype: DType) -> Case {
        Case {
            params: Params::Rnn(RnnParams::new(cell, hidden, batch, steps)),
            mode: Mode::Train,
            dtype,
            tag: None,
        }
    }

    /// A half-precision RNN training step whose SGD update is below the tolerance of the
    /// updated weights (the weights before the step passed it, so `check` printed "ok" for a
    /// backend that left the update out): its step is checked on its own, and the step left
    /// out fails, in f16 and bf16, while the correct step passes with nothing unchecked. In
    /// f32 the updated weights show the step themselves.
    #[test]
    fn an_sgd_update_left_out_fails_though_the_weights_are_within_the_tolerance() {
        for case in [
            rnn_train(Cell::Gru, 13, 3, 4, DType::Bf16),
            rnn_train(Cell::Lstm, 13, 3, 4, DType::F16),
            rnn_train(Cell::Vanilla, 13, 3, 4, DType::Bf16),
        ] {
            let (right, left_out) = with_and_without_the_update(&case);
            let id = case.id("reference", "cpu");
            assert!(
                right.passed && right.unchecked_updates.is_empty(),
                "{id}: {right:?}"
            );
            // Each error of the outputs is within the tolerance: the step alone fails it.
            assert!(
                left_out.rel_l2_error <= left_out.tolerance
                    && left_out.rel_max_error.unwrap() <= left_out.tolerance,
                "{id}: {left_out:?}"
            );
            assert!(!left_out.passed, "{id}: {left_out:?}");
            let why = left_out.errors_in_words();
            assert!(
                why.contains("the SGD step of `w_new`")
                    && why.contains("off by 1.00e0 of its size")
                    && why.contains("left out"),
                "{id}: {why}"
            );
        }
        let (right, left_out) =
            with_and_without_the_update(&rnn_train(Cell::Gru, 64, 1, 1, DType::F32));
        assert!(
            right.passed && right.unchecked_updates.is_empty(),
            "{right:?}"
        );
        assert!(!left_out.passed && left_out.rel_l2_error > left_out.tolerance);
    }

    /// Where the step is below the rounding of the weights (a 1x1 bf16 LSTM: the correctly
    /// rounded updated weights are the weights before the step), nothing can tell it from
    /// none: the update is said to be unchecked, never verified.
    #[test]
    fn an_update_below_the_dtypes_rounding_is_said_to_be_unchecked() {
        let (right, left_out) =
            with_and_without_the_update(&rnn_train(Cell::Lstm, 1, 1, 2, DType::Bf16));
        assert!(right.passed && left_out.passed, "{left_out:?}");
        for v in [&right, &left_out] {
            assert_eq!(v.unchecked_updates, ["w_new", "b_new"], "{v:?}");
        }
        let note = right.unchecked_updates_note().unwrap();
        assert!(
            note.contains("w_new, b_new") && note.contains("without the SGD update"),
            "{note}"
        );
    }

    /// The spacing of each dtype's values: a unit in the last place at 1 and just below 2,
    /// at a power of two, and in the subnormals.
    #[test]
    fn spacing_is_a_unit_in_the_last_place() {
        assert_eq!(spacing(1.0, DType::Bf16), 2f64.powi(-7));
        assert_eq!(spacing(1.99, DType::Bf16), 2f64.powi(-7));
        assert_eq!(spacing(-2.0, DType::Bf16), 2f64.powi(-6));
        assert_eq!(spacing(0.75, DType::F16), 2f64.powi(-11));
        assert_eq!(spacing(1.0, DType::F32), f32::EPSILON as f64);
        assert_eq!(spacing(1e-6, DType::F16), 2f64.powi(-24));
        assert_eq!(spacing(0.0, DType::F16), 2f64.powi(-24));
    }

    #[test]
    fn training_steps_too_large_to_compute_are_verified_by_sampling_every_output() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(sampling_cfg(40), &flag);
        let case = Case {
            mode: Mode::Train,
            ..gemm_case(DType::F32)
        };
        let inp = CaseInputs::new(case, &h.cfg);
        let ok = h.run_case(&inp, &ReferenceBackend, "cpu", None).unwrap();
        let v = ok.verification.unwrap();
        assert_eq!((ok.status, v.method), (Status::Ok, VerifyMethod::Sampled));
        // y (35 values, all drawn), dA, dB and B's update (63, 45, 45: up to 40 each).
        assert_eq!(v.per_output.len(), 4, "{:?}", v.per_output);
        assert!(v.checked_values > 35 && v.checked_values <= 35 + 3 * 40);
        let bad = h.run_case(&inp, &perturbed(1e3), "cpu", None).unwrap();
        assert_eq!(bad.status, Status::Failed, "{:?}", bad.verification);
    }

    /// Each reason for an infinite error is named: an output missing, one of the wrong
    /// size, a value that is not finite (and where).
    #[test]
    fn what_made_an_error_infinite_is_named() {
        let case = Case {
            mode: Mode::Train,
            ..gemm_case(DType::F32)
        };
        let inp = CaseInputs::new(case.clone(), &quick_cfg());
        let x: Vec<Vec<f64>> = inp.tensors().iter().map(HostTensor::to_f64).collect();
        let good: Vec<Vec<f32>> = reference::run(&case, &x)
            .iter()
            .map(|o| o.iter().map(|&v| v as f32).collect())
            .collect();
        let specs = case.output_specs();
        let name = |i: usize| specs[i].name;
        assert!(inp.verify(&good, None).defects.is_empty());

        let mut short = good.clone();
        short[1].pop();
        let v = inp.verify(&short, None);
        let want = format!(
            "output `{}` has {} values, expected {}",
            name(1),
            specs[1].numel() - 1,
            specs[1].numel()
        );
        assert_eq!(v.defects, std::slice::from_ref(&want));
        assert!(!v.passed && v.errors_in_words().starts_with(&want), "{v:?}");
        assert_eq!(v.per_output[name(1)], f64::INFINITY);

        let mut nan = good.clone();
        nan[0][7] = f32::NAN;
        nan[2][2] = f32::INFINITY;
        let v = inp.verify(&nan, None);
        assert_eq!(
            v.defects,
            [
                format!(
                    "value NaN at index 7 of `{}` is not finite (never written?)",
                    name(0)
                ),
                format!(
                    "value inf at index 2 of `{}` is not finite (an overflow?)",
                    name(2)
                ),
            ]
        );
        assert!(
            v.errors_in_words().contains("inf beyond the tolerance"),
            "{v:?}"
        );

        let v = inp.verify(&good[..2], None);
        assert!(
            v.defects[0].starts_with(&format!(
                "the backend returned 2 outputs, expected {}",
                specs.len()
            )),
            "{v:?}"
        );
    }

    /// A GPU warms up for its own time (clocks ramp up), the CPU for `warmup_s`; a harness
    /// given one warm-up uses it everywhere.
    #[test]
    fn a_gpu_warms_up_for_its_own_time() {
        let cfg = HarnessConfig {
            warmup_s: 0.0,
            gpu_warmup_s: Some(0.2),
            ..quick_cfg()
        };
        assert_eq!(
            (
                cfg.warmup_for("cpu"),
                cfg.warmup_for("cuda:1"),
                cfg.warmup_for("cuda")
            ),
            (0.0, 0.2, 0.2)
        );
        let one = HarnessConfig {
            warmup_s: 0.5,
            ..quick_cfg()
        };
        assert_eq!(one.warmup_for("cuda:0"), 0.5);
        assert!(HarnessConfig {
            gpu_warmup_s: Some(-1.0),
            ..quick_cfg()
        }
        .validate()
        .unwrap_err()
        .contains("--warmup"));
        // Calls made: the warm-up's, then three samples. The clock of the samples is ours,
        // the warm-up's real: 0.2 s of calls on the GPU, one on the CPU.
        static LAST_CALL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let counted = Clocked(|call| {
            LAST_CALL.store(call, Ordering::SeqCst);
            1e-3
        });
        let flag = AtomicBool::new(false);
        let h = Harness::new(cfg, &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        let calls = |device: &str| {
            let r = h.run_case(&inp, &counted, device, None).unwrap();
            assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
            LAST_CALL.load(Ordering::SeqCst)
        };
        assert_eq!(calls("cpu"), 1 + 3);
        assert!(calls("cuda:0") > 1 + 3 + 10);
    }

    /// A median of 0 s (a timer that did not resolve the calls) fails the case: no rate is
    /// made of it (an infinite GFLOP/s, which a file cannot hold).
    #[test]
    fn a_median_of_zero_seconds_fails_the_case() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(quick_cfg(), &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        let r = h.run_case(&inp, &Clocked(|_| 0.0), "cpu", None).unwrap();
        assert_eq!(r.status, Status::Failed);
        assert!(r.throughput.is_none() && r.time.is_none());
        assert!(
            r.reason
                .unwrap()
                .contains("the median time per call is 0 s"),
            "{:?}",
            r.notes
        );
    }

    /// Fewer than six samples: the interval of the median is their range, and the case
    /// says how little it covers.
    #[test]
    fn few_samples_are_noted_with_their_interval() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(quick_cfg(), &flag);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        let r = h
            .run_case(&inp, &Clocked(|call| 1e-3 * call as f64), "cpu", None)
            .unwrap();
        let t = r.time.unwrap();
        assert_eq!(t.samples_s.len(), 3);
        assert_eq!(t.ci95_median_s, [t.min_s, t.max_s]);
        assert!(
            r.notes.iter().any(|n| n.starts_with(
                "3 samples: the interval of the median is \
                 their range [min, max], which holds the median with probability 75.0%"
            )),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn unsupported_and_interrupted_cases() {
        let flag = AtomicBool::new(false);
        let h = Harness::new(quick_cfg(), &flag);
        let inp = CaseInputs::new(gemm_case(DType::Bf16), &h.cfg);
        let r = h.run_case(&inp, &ReferenceBackend, "cpu", None).unwrap();
        assert_eq!(r.status, Status::Skipped);
        assert!(r.reason.unwrap().contains("f32"));
        flag.store(true, Ordering::SeqCst);
        let inp = CaseInputs::new(gemm_case(DType::F32), &h.cfg);
        assert!(h.run_case(&inp, &ReferenceBackend, "cpu", None).is_err());
    }
}
