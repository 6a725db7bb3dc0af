//! The one generic correctness check every backend runs: small, odd-sized cases of every op
//! (not multiples of any tile, transposes, asymmetric padding and stride, every cell), fresh
//! seeded inputs, verified against the f64 reference through the real harness; and the one
//! check every trainer runs: its loss and its gradients against the f64 host model.
//!
//! Instantiate them in a backend crate's tests with [`backend_tests!`](crate::backend_tests)
//! and [`trainer_tests!`](crate::trainer_tests). Also small result files, for the tests of
//! what reads them ([`timed_case`], [`case_energy`], [`run_file`]).
use crate::backend::{BackendError, DeviceInfo, Prepared};
use crate::energy::{CaseEnergy, Interval, Source};
use crate::harness::{CaseInputs, Harness, HarnessConfig};
use crate::model::{Dataset, ModelConfig, ModelKind, Size, TrainSetup};
use crate::result::{CaseResult, Config, Environment, Filters, Memory, RunConfig, RunFile, Status};
use crate::stats::TimeStats;
use crate::tensor::rel_l2_error;
use crate::tensor::HostTensor;
use crate::workload::{Case, Cell, ConvParams, DType, GemmParams, Mode, Op, Params, RnnParams};
use crate::Backend;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Small shapes of `op` that exercise edge cases.
pub fn shapes(op: Op) -> Vec<Params> {
    match op {
        Op::Gemm => [
            GemmParams::new(1, 1, 1),
            GemmParams::new(17, 33, 65),
            GemmParams::new(31, 7, 129).transposed(true, false),
            GemmParams::new(5, 67, 19).transposed(false, true),
            GemmParams::new(33, 17, 9).transposed(true, true),
            // Wider than 256 and past it (a GPU kernel's widest tile), K under one k-step.
            GemmParams::new(9, 260, 24).transposed(false, true),
            // One output tile, a long K: what a GPU kernel splits into k-ranges.
            GemmParams::new(20, 30, 1100).transposed(true, false),
            // Two rows of 128-row tiles, wider than 128: what a GPU kernel runs in clusters
            // of two CTAs (the second row partial).
            GemmParams::new(257, 260, 24),
        ]
        .map(Params::Gemm)
        .to_vec(),
        Op::Conv2d => [
            ConvParams::new(2, 3, 9, 11, 5, 3, 3).padded(1, 1),
            ConvParams::new(1, 4, 13, 10, 3, 5, 3)
                .padded(2, 0)
                .strided(2, 2),
            ConvParams::new(3, 2, 7, 7, 4, 1, 1).strided(1, 2),
            // Equal padding, stride 2, and windows that leave a row unreached but no column
            // (DeepBench's h161 w700 r5 s5 pad 1 stride 2 kind): the input gradient's tails
            // differ between the axes.
            ConvParams::new(1, 2, 8, 7, 3, 3, 3)
                .padded(1, 1)
                .strided(2, 2),
        ]
        .map(Params::Conv2d)
        .to_vec(),
        Op::Rnn => [Cell::Vanilla, Cell::Lstm, Cell::Gru]
            .into_iter()
            .flat_map(|cell| {
                [(13, 3, 4), (1, 1, 2)].map(|(hidden, batch, steps)| {
                    Params::Rnn(RnnParams::new(cell, hidden, batch, steps))
                })
            })
            .collect(),
    }
}

/// A wrong backend, to show that verification fails: `inner`'s results with the value at
/// `index` of the first output (the last one when shorter) moved by `delta`. Used by the
/// harness's tests and by `wattbench check --perturb`.
pub struct Perturbed {
    /// The backend whose results are perturbed.
    pub inner: Arc<dyn Backend>,
    /// Added to the one value.
    pub delta: f32,
    /// Which value of the first output.
    pub index: usize,
}

struct PerturbedPrep(Box<dyn Prepared>, f32, usize);

impl Backend for Perturbed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn devices(&self) -> Vec<DeviceInfo> {
        self.inner.devices()
    }
    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        self.inner.supports(case, device)
    }
    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        let p = self.inner.prepare(case, device, inputs)?;
        Ok(Box::new(PerturbedPrep(p, self.delta, self.index)))
    }
}

impl Prepared for PerturbedPrep {
    fn execute(&mut self) -> Result<(), BackendError> {
        self.0.execute()
    }
    fn sync(&mut self) -> Result<(), BackendError> {
        self.0.sync()
    }
    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        let mut o = self.0.outputs()?;
        if let Some(first) = o.first_mut() {
            let i = self.2.min(first.len().saturating_sub(1));
            if let Some(v) = first.get_mut(i) {
                *v += self.1;
            }
        }
        Ok(o)
    }
}

/// What one generic check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Cases that ran and passed (each shape, dtype and seed), those of
    /// [`update_not_verified`](Self::update_not_verified) included.
    pub passed: usize,
    /// Passed training steps whose SGD update could not be verified, each `id (seed N):
    /// w_new, b_new`: the step is below the dtype's rounding of the weights, so weights
    /// returned without it would have passed too (their gradients were verified).
    pub update_not_verified: Vec<String>,
    /// Passed cases verified at a tolerance wider than their default, each `id (seed N):
    /// tolerance T (why)`, with why the implementation declared it.
    pub widened: Vec<String>,
    /// Cases the backend declared unsupported or skipped while running, with the reason.
    pub skipped: Vec<String>,
}

impl CheckReport {
    /// Cases that passed with everything verified: [`passed`](Self::passed) less those whose
    /// update could not be verified.
    pub fn verified(&self) -> usize {
        self.passed - self.update_not_verified.len()
    }
}

/// Why `backend` runs no case of `op` in `mode` on `device`: the reason it gives for the first
/// of the generic cases, when it declares every one of them (every shape, every dtype)
/// unsupported; `None` when it supports at least one. `wattbench check` reports such an op
/// as not applicable (cuBLAS has no convolution), not as a failure.
pub fn declared_unsupported(
    backend: &dyn Backend,
    device: &str,
    op: Op,
    mode: Mode,
) -> Option<String> {
    let mut first = None;
    for case in generic_cases(op, mode) {
        match backend.supports(&case, device) {
            Ok(()) => return None,
            Err(why) => {
                first.get_or_insert(why);
            }
        }
    }
    first
}

/// The generic check's cases of `op` in `mode`: every shape of [`shapes`] in every dtype.
fn generic_cases(op: Op, mode: Mode) -> impl Iterator<Item = Case> {
    shapes(op).into_iter().flat_map(move |params| {
        DType::ALL.into_iter().map(move |dtype| Case {
            params,
            mode,
            dtype,
            tag: None,
        })
    })
}

/// Run every shape of `op` in every dtype on `backend`/`device`, twice with fresh seeds,
/// through the real harness. Fails with the details of the first case that does not pass.
/// Cases the backend declares unsupported up front are listed and left out; an f32 case
/// that turns out unsupported while running fails, and in every dtype the backend declares
/// a case of, at least one case must run (a half-precision path lost at run time fails).
/// Passed cases whose update could not be verified, or that were verified at a widened
/// tolerance, are listed.
pub fn check(
    backend: &dyn Backend,
    device: &str,
    op: Op,
    mode: Mode,
) -> Result<CheckReport, String> {
    check_reporting(backend, device, op, mode, &mut |_| {})
}

/// [`check`], calling `on_case` with each case's id and seed (`id (seed N)`) before it
/// runs: what `wattbench check` names when a backend panics inside a case.
pub fn check_reporting(
    backend: &dyn Backend,
    device: &str,
    op: Op,
    mode: Mode,
    on_case: &mut dyn FnMut(&str),
) -> Result<CheckReport, String> {
    let flag = AtomicBool::new(false);
    let cfg = HarnessConfig {
        warmup_s: 0.0,
        min_time_s: 0.0,
        min_samples: 2,
        bootstrap_resamples: 10,
        ..Default::default()
    };
    let harness = Harness::new(cfg, &flag);
    let mut report = CheckReport::default();
    // Per dtype: (declared supported cases, cases that passed).
    let mut per_dtype: Vec<(DType, usize, usize)> = Vec::new();
    for case in generic_cases(op, mode) {
        let dtype = case.dtype;
        let slot = match per_dtype.iter().position(|(d, ..)| *d == dtype) {
            Some(i) => i,
            None => {
                per_dtype.push((dtype, 0, 0));
                per_dtype.len() - 1
            }
        };
        if let Err(why) = backend.supports(&case, device) {
            let id = case.id(backend.name(), device);
            report
                .skipped
                .push(format!("{id}: declared unsupported: {why}"));
            continue;
        }
        per_dtype[slot].1 += 1;
        for seed in [1u64, 2] {
            let cfg = HarnessConfig {
                seed,
                ..harness.cfg.clone()
            };
            let inputs = CaseInputs::new(case.clone(), &cfg);
            on_case(&format!(
                "{} (seed {seed})",
                case.id(backend.name(), device)
            ));
            let r = harness
                .run_case(&inputs, backend, device, None)
                .map_err(|_| "interrupted".to_string())?;
            match r.status {
                Status::Ok => {
                    report.passed += 1;
                    per_dtype[slot].2 += 1;
                    if let Some(v) = &r.verification {
                        if !v.unchecked_updates.is_empty() {
                            report.update_not_verified.push(format!(
                                "{} (seed {seed}): {}",
                                r.id,
                                v.unchecked_updates.join(", ")
                            ));
                        }
                        if let Some(why) = &v.tolerance_note {
                            report.widened.push(format!(
                                "{} (seed {seed}): tolerance {:.1e} ({why})",
                                r.id, v.tolerance
                            ));
                        }
                    }
                }
                Status::Skipped if dtype != DType::F32 => report.skipped.push(format!(
                    "{}: skipped: {}",
                    r.id,
                    r.reason.unwrap_or_default()
                )),
                _ => {
                    return Err(format!(
                        "{} (seed {seed}): {:?}: {} {:?}",
                        r.id,
                        r.status,
                        r.reason.unwrap_or_default(),
                        r.verification
                    ))
                }
            }
        }
    }
    if report.passed == 0 {
        return Err(format!(
            "no {} {} case ran on {}/{device}",
            op.as_str(),
            mode.as_str(),
            backend.name()
        ));
    }
    if let Some((dtype, declared, _)) = per_dtype.iter().find(|(_, d, p)| *d > 0 && *p == 0) {
        return Err(format!(
            "{}/{device} declared {declared} {} {} {} case(s) supported, and every one was \
             skipped while running: {}",
            backend.name(),
            op.as_str(),
            mode.as_str(),
            dtype.as_str(),
            report.skipped.join("; ")
        ));
    }
    Ok(report)
}

/// What `backend` records as the `implementation` of a small f32 GEMM on `device`.
pub fn implementation_of_a_gemm(backend: &dyn Backend, device: &str) -> Option<String> {
    implementation_of_a_gemm_in(backend, device, Mode::Infer)
}

/// [`implementation_of_a_gemm`] for the training step too.
pub fn implementation_of_a_gemm_in(
    backend: &dyn Backend,
    device: &str,
    mode: Mode,
) -> Option<String> {
    let case = Case {
        params: Params::Gemm(GemmParams::new(4, 3, 2)),
        mode,
        dtype: DType::F32,
        tag: None,
    };
    let inputs = crate::tensor::generate_case_inputs(&case, 1);
    let prepared = backend
        .prepare(&case, device, &inputs)
        .unwrap_or_else(|e| panic!("{} on {device}: {e}", backend.name()));
    prepared.implementation()
}

/// [`check`] for tests: panics with the details of any case that does not pass, and prints
/// the skipped ones.
pub fn check_backend(backend: &dyn Backend, device: &str, op: Op, mode: Mode) {
    match check(backend, device, op, mode) {
        Ok(r) => r.skipped.iter().for_each(|s| eprintln!("{s}")),
        Err(e) => panic!("{e}"),
    }
}

/// Generate one `#[test]` per op and mode that runs [`check_backend`] on `$backend` /
/// `$device`: the forward pass, and the training step (output, every gradient and the
/// updated weights).
///
/// `backend_tests!(ignore = "needs an NVIDIA GPU", $backend, $device)` marks them ignored with
/// that reason (GPU backends on machines without one: ignored, never passed vacuously).
#[macro_export]
macro_rules! backend_tests {
    ($backend:expr, $device:expr) => {
        $crate::backend_tests!(@all [], $backend, $device);
    };
    (ignore = $why:literal, $backend:expr, $device:expr) => {
        $crate::backend_tests!(@all [ignore = $why], $backend, $device);
    };
    (@all [$($attr:meta)*], $backend:expr, $device:expr) => {
        $crate::backend_tests!(@op [$($attr)*], $backend, $device, Gemm, gemm_matches_reference, gemm_training_step_matches_reference);
        $crate::backend_tests!(@op [$($attr)*], $backend, $device, Conv2d, conv2d_matches_reference, conv2d_training_step_matches_reference);
        $crate::backend_tests!(@op [$($attr)*], $backend, $device, Rnn, rnn_matches_reference, rnn_training_step_matches_reference);
    };
    (@op [$($attr:meta)*], $backend:expr, $device:expr, $op:ident, $infer:ident, $train:ident) => {
        #[test]
        $(#[$attr])*
        fn $infer() {
            $crate::testing::check_backend(&$backend, $device, $crate::Op::$op, $crate::Mode::Infer);
        }
        #[test]
        $(#[$attr])*
        fn $train() {
            $crate::testing::check_backend(&$backend, $device, $crate::Op::$op, $crate::Mode::Train);
        }
    };
}

/// The learning rate of [`check_training`]'s SGD step.
pub const TRAINER_CHECK_LR: f64 = 0.37;

/// The generic trainer check, on the tiny `kind` model with seeded data: the trainer returns
/// the parameters it was given, its loss on every batch is the f64 host model's, and two SGD
/// steps at lr [`TRAINER_CHECK_LR`], on different batches, each move every parameter by
/// `−lr·g` where `g` matches central finite differences of the f64 host loss at the
/// parameters that step started from, at a spread of coordinates of every parameter tensor
/// (a trainer that ignores or mis-scales the learning rate fails; so does one that keeps the
/// first step's gradients, never zeroing them, or steps from the initial weights again).
/// After them, its loss on every batch is the host model's at the parameters it returns.
pub fn check_training(backend: &dyn Backend, device: &str, kind: ModelKind) -> Result<(), String> {
    let model = ModelConfig::new(kind, Size::Tiny);
    let (batch, batches, seed) = (8, 2, 5);
    let data = Dataset::generate(&model, batch, batches, seed);
    let init = model.init_params(seed);
    let name = backend.name();
    let at = format!("{name}/{device} {kind:?}");
    let fail = |what: &str, e: BackendError| format!("{at}: {what}: {e}");
    let setup = TrainSetup {
        model: &model,
        device,
        data: &data,
        init: &init,
    };
    let mut t = backend
        .trainer(&setup)
        .map_err(|e| fail("cannot train", e))?;
    if t.params().map_err(|e| fail("params", e))? != init {
        return Err(format!("{at}: parameters changed on upload"));
    }
    let as64 = |p: &[Vec<f32>]| -> Vec<Vec<f64>> {
        p.iter()
            .map(|v| v.iter().map(|&x| x as f64).collect())
            .collect()
    };
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-5 * want.max(1.0);
    let losses_at =
        |t: &mut dyn crate::Trainer, theta: &[Vec<f64>], when: &str| -> Result<(), String> {
            for bi in 0..batches {
                let want = data.host_loss(&model, theta, bi);
                let got = t.loss(bi).map_err(|e| fail("loss", e))? as f64;
                if !close(got, want) {
                    return Err(format!(
                        "{at} {when}, batch {bi}: loss {got} vs host {want}"
                    ));
                }
            }
            Ok(())
        };
    let mut theta = as64(&init);
    losses_at(t.as_mut(), &theta, "before training")?;
    // Steps at a learning rate that is not 1 (nor its own square or reciprocal), so that a
    // trainer that ignores it (`w − g`), squares it or divides by it moves the weights by a
    // multiple of the gradient other than 1 and fails; at lr 1 they all passed. The second
    // step, on another batch, starts from the first's parameters: a gradient kept from the
    // first step, or a step taken from the initial weights again, shows there.
    let lr = TRAINER_CHECK_LR;
    for (n, bi) in [(1, 0), (2, 1)] {
        let loss = t.step(bi, lr, true).map_err(|e| fail("step", e))?;
        let want = data.host_loss(&model, &theta, bi);
        match loss {
            Some(l) if close(l as f64, want) => {}
            other => {
                return Err(format!(
                    "{at}: step {n} (batch {bi}) loss {other:?} vs host {want} at the \
                     parameters it started from"
                ))
            }
        }
        t.sync().map_err(|e| fail("sync", e))?;
        let after = as64(&t.params().map_err(|e| fail("params", e))?);
        check_step(&model, &data, bi, lr, &theta, &after)
            .map_err(|e| format!("{at}: step {n} (batch {bi}): {e}"))?;
        theta = after;
    }
    losses_at(t.as_mut(), &theta, "after two steps")
}

/// Whether one SGD step at `lr` on batch `bi` from `theta` to `after` moved each parameter by
/// `−lr·g`, `g` the central finite differences of the f64 host loss at `theta`: at a spread
/// of coordinates, and over the whole tensor along three seeded directions.
fn check_step(
    model: &ModelConfig,
    data: &Dataset,
    bi: usize,
    lr: f64,
    theta: &[Vec<f64>],
    after: &[Vec<f64>],
) -> Result<(), String> {
    let eps = 1e-6;
    for (pi, spec) in model.params().iter().enumerate() {
        let n = spec.numel();
        let coords: Vec<usize> = (0..n).step_by((n / 8).max(1)).chain([n - 1]).collect();
        let (mut got, mut fd) = (Vec::new(), Vec::new());
        for &j in &coords {
            got.push(((theta[pi][j] - after[pi][j]) / lr) as f32);
            let mut plus = theta.to_vec();
            plus[pi][j] += eps;
            let mut minus = theta.to_vec();
            minus[pi][j] -= eps;
            fd.push(
                (data.host_loss(model, &plus, bi) - data.host_loss(model, &minus, bi))
                    / (2.0 * eps),
            );
        }
        let err = rel_l2_error(&got, &fd);
        if err > 2e-3 {
            return Err(format!(
                "gradient of `{}` off by {err:.2e} (relative L2 over {} coordinates): \
                 trainer {got:?} vs finite differences {fd:?}",
                spec.name,
                coords.len()
            ));
        }
        // The whole tensor along three seeded directions v: g·v against the loss's central
        // difference along v. A correct gradient's rounding moves g·v by about its relative
        // error times ‖g⊙v‖₂; one coordinate wrong by δ moves it by δ·v_j, so a wrong
        // coordinate between the sampled ones shows once δ is a few percent of the gradient's
        // RMS (√n times finer than a bound on Σ|g_j v_j|).
        let g: Vec<f64> = (0..n).map(|j| (theta[pi][j] - after[pi][j]) / lr).collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ pi as u64;
        for _ in 0..3 {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
                })
                .collect();
            let dot: f64 = g.iter().zip(&v).map(|(g, v)| g * v).sum();
            let scale = g
                .iter()
                .zip(&v)
                .map(|(g, v)| (g * v) * (g * v))
                .sum::<f64>()
                .sqrt();
            let along = |sign: f64| {
                let mut p = theta.to_vec();
                p[pi]
                    .iter_mut()
                    .zip(&v)
                    .for_each(|(x, v)| *x += sign * eps * v);
                data.host_loss(model, &p, bi)
            };
            let fd_dot = (along(1.0) - along(-1.0)) / (2.0 * eps);
            if (dot - fd_dot).abs() > 1e-2 * scale.max(1e-9) {
                return Err(format!(
                    "gradient of `{}` along a random direction: trainer {dot:.6e} vs \
                     finite differences {fd_dot:.6e} (‖g⊙v‖ {scale:.3e})",
                    spec.name
                ));
            }
        }
    }
    Ok(())
}

/// [`check_training`] for tests: panics with the details.
pub fn check_trainer(backend: &dyn Backend, device: &str, kind: ModelKind) {
    if let Err(e) = check_training(backend, device, kind) {
        panic!("{e}");
    }
}

/// Generate one `#[test]` per model that runs [`check_trainer`] on `$backend` / `$device`.
#[macro_export]
macro_rules! trainer_tests {
    ($backend:expr, $device:expr) => {
        $crate::trainer_tests!(@model $backend, $device, Mlp, mlp_trainer_matches_the_host_model);
        $crate::trainer_tests!(@model $backend, $device, Cnn, cnn_trainer_matches_the_host_model);
        $crate::trainer_tests!(@model $backend, $device, Lstm, lstm_trainer_matches_the_host_model);
    };
    (@model $backend:expr, $device:expr, $model:ident, $name:ident) => {
        #[test]
        fn $name() {
            $crate::testing::check_trainer(&$backend, $device, $crate::ModelKind::$model);
        }
    };
}

/// A 7×5×9 f32 GEMM in `mode` run by the harness on the reference backend with value 3 of
/// its output `c` replaced by NaN (a value never written): failed, its errors infinite, the
/// defect named, as a wrong backend's case is recorded.
pub fn failed_on_nan(mode: Mode) -> CaseResult {
    let case = Case {
        params: Params::Gemm(GemmParams::new(7, 5, 9)),
        mode,
        dtype: DType::F32,
        tag: None,
    };
    let cfg = HarnessConfig {
        warmup_s: 0.0,
        min_time_s: 0.0,
        min_samples: 3,
        bootstrap_resamples: 10,
        ..HarnessConfig::default()
    };
    let flag = AtomicBool::new(false);
    let h = Harness::new(cfg, &flag);
    let nan = Perturbed {
        inner: Arc::new(crate::reference::ReferenceBackend),
        delta: f32::NAN,
        index: 3,
    };
    h.run_case(&CaseInputs::new(case, &h.cfg), &nan, "cpu", None)
        .expect("the harness records a failed case")
}

/// An ok reference case `id` of a 2×2×2 f32 GEMM verified exactly (every value) and timed by
/// `samples` (one call each, the median's interval from 50 resamples), with a per-case host
/// peak of 1 MiB and no energy.
pub fn timed_case(id: &str, samples: Vec<f64>) -> CaseResult {
    let case = Case {
        params: Params::Gemm(GemmParams::new(2, 2, 2)),
        mode: Mode::Infer,
        dtype: DType::F32,
        tag: None,
    };
    CaseResult {
        id: id.into(),
        status: Status::Ok,
        verification: Some(crate::result::Verification {
            rel_l2_error: 0.0,
            rel_max_error: Some(0.0),
            tolerance: DType::F32.tolerance(),
            tolerance_note: None,
            passed: true,
            method: crate::result::VerifyMethod::Full,
            checked_values: 4,
            per_output: Default::default(),
            unchecked_updates: Vec::new(),
            defects: Vec::new(),
        }),
        time: Some(TimeStats::from_samples(samples, 1, 50, 1)),
        memory: Memory {
            host_peak_rss_bytes: Some(1 << 20),
            host_peak_reset: true,
            device_peak_bytes: None,
        },
        ..CaseResult::new(&case, "reference", "cpu")
    }
}

/// The energy of 100 calls over 1 s: `value` ± `half` J per call in total, from one `source`.
pub fn case_energy(value: f64, half: f64, source: Source) -> CaseEnergy {
    CaseEnergy {
        calls: 100,
        unit: "call".into(),
        window_s: 1.0,
        domains: Vec::new(),
        total_joules_per_iter: Some(Interval::symmetric(value, half)),
        net_joules_per_iter: None,
        net_uncertainty_j: None,
        total_includes: Vec::new(),
        total_excludes: Vec::new(),
        total_sources: vec![source],
        total_mixes_sources: false,
        gflops_per_joule: None,
        notes: Vec::new(),
        gpu_state: Vec::new(),
    }
}

/// [`case_energy`] of the CPU estimate alone: `value` J ± 50 %, from a model of `tdp_watts`
/// over 2 threads (what [`CaseEnergy::basis`] tells apart).
pub fn estimated_energy(value: f64, tdp_watts: f64) -> CaseEnergy {
    let mut e = case_energy(value, 0.5 * value, Source::Estimated);
    e.total_includes = vec!["cpu-estimate (estimated)".into()];
    e.domains = vec![crate::energy::DomainRecord {
        scope: "process".into(),
        uncertainty_j: Some(0.5 * value),
        assumptions: Some(crate::energy::EstimateAssumptions {
            model: "TDP x CPU time (a test's)".into(),
            tdp_watts,
            tdp_source: "test".into(),
            hardware_threads: 2,
            watts_per_busy_thread: tdp_watts / 2.0,
            cpu_model: "test".into(),
            logical_cpus: 2,
            cpu_seconds: 1.0,
            utilisation_of_machine: Some(0.5),
            relative_uncertainty: 0.5,
            uncertainty_basis: "test".into(),
            boost_watts: None,
            excludes: String::new(),
            comparison: String::new(),
        }),
        ..domain_row("cpu-estimate", Source::Estimated, true, Some(value))
    }];
    e
}

/// One domain's row of a case's energy: `joules` per call (None: no reading, with a reason),
/// counted in the total or not; the rest empty.
pub fn domain_row(
    name: &str,
    source: Source,
    in_total: bool,
    joules: Option<f64>,
) -> crate::energy::DomainRecord {
    crate::energy::DomainRecord {
        name: name.into(),
        source,
        reason: joules.is_none().then(|| "a test's: no reading".into()),
        scope: "device".into(),
        in_total,
        joules_per_iter: joules,
        uncertainty_j: joules.map(|_| 0.0),
        window_s: 1.0,
        avg_watts: None,
        idle_watts: None,
        net_joules_per_iter: None,
        net_uncertainty_j: None,
        note: None,
        assumptions: None,
        warnings: Vec::new(),
        power_check: None,
    }
}

/// A `wattbench run` result file of `cases` that started at `created_at` and took 1 s, on a
/// machine it says nothing about.
pub fn run_file(created_at: &str, cases: Vec<CaseResult>) -> RunFile {
    let config = Config::Run(RunConfig {
        argv: vec!["wattbench".into(), "run".into()],
        suite: "test".into(),
        filters: Filters::default(),
        harness: HarnessConfig::default(),
    });
    RunFile {
        cases,
        ..RunFile::new(
            created_at.into(),
            1.0,
            false,
            Environment::default(),
            config,
        )
    }
}

/// A metered NVIDIA H200 at NVML index `index` with the UUID `uuid`, as NVML would describe
/// it (no power limit, clocks or bus id read).
pub fn gpu_record(index: u32, uuid: &str) -> crate::result::GpuRecord {
    crate::result::GpuRecord {
        index,
        name: Some("NVIDIA H200".into()),
        uuid: Some(uuid.into()),
        pci_bus_id: None,
        driver_version: None,
        power_limit_watts: None,
        memory_total_bytes: None,
        energy_counter: true,
        metered: true,
        selection: "all GPUs".into(),
        power_reading: String::new(),
        state: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs GEMM only, in bf16 only.
    struct GemmBf16Only;

    impl Backend for GemmBf16Only {
        fn name(&self) -> &'static str {
            "gemm-bf16-only"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            Vec::new()
        }
        fn supports(&self, case: &Case, _: &str) -> Result<(), String> {
            match (case.op(), case.dtype) {
                (Op::Gemm, DType::Bf16) => Ok(()),
                (Op::Gemm, d) => Err(format!("no {}", d.as_str())),
                (op, _) => Err(format!("no {}", op.as_str())),
            }
        }
        fn prepare(
            &self,
            _: &Case,
            _: &str,
            _: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            Err(BackendError::Unsupported("never prepared".into()))
        }
    }

    /// Declares f32 and bf16 GEMMs supported; runs f32 (the reference's code) and refuses
    /// bf16 once running, unless `declare_bf16` is false.
    struct HalfLostAtRunTime {
        declare_bf16: bool,
    }

    impl Backend for HalfLostAtRunTime {
        fn name(&self) -> &'static str {
            "half-lost"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            vec![DeviceInfo::available("cpu")]
        }
        fn supports(&self, case: &Case, _: &str) -> Result<(), String> {
            match case.dtype {
                DType::F32 => Ok(()),
                DType::Bf16 if self.declare_bf16 => Ok(()),
                d => Err(format!("no {}", d.as_str())),
            }
        }
        fn prepare(
            &self,
            case: &Case,
            device: &str,
            inputs: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            match case.dtype {
                DType::F32 => crate::reference::ReferenceBackend.prepare(case, device, inputs),
                _ => Err(BackendError::Unsupported("lost at run time".into())),
            }
        }
    }

    /// A bf16 backend made of the reference: its f32 results rounded to bf16, with the updated weights of a training step replaced by the
    /// weights before it when `skip_update` (a step that computes the gradients and leaves
    /// the update out), and the tolerance widened `widen` times when given.
    struct HalfReference {
        skip_update: bool,
        widen: Option<f64>,
    }

    struct HalfPrepared {
        inner: Box<dyn Prepared>,
        dtype: DType,
        /// (output index, values) to return in place of that output's.
        replaced: Vec<(usize, Vec<f32>)>,
        widen: Option<f64>,
    }

    impl Backend for HalfReference {
        fn name(&self) -> &'static str {
            "half-reference"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            vec![DeviceInfo::available("cpu")]
        }
        fn supports(&self, case: &Case, _: &str) -> Result<(), String> {
            match case.dtype {
                DType::Bf16 => Ok(()),
                d => Err(format!("bf16 only, not {}", d.as_str())),
            }
        }
        fn prepare(
            &self,
            case: &Case,
            device: &str,
            inputs: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            let f32_case = Case {
                dtype: DType::F32,
                ..case.clone()
            };
            let specs = case.output_specs();
            let replaced = (case.input_specs().iter().zip(inputs))
                .filter_map(|(t, x)| match t.role {
                    crate::workload::TensorRole::Weight { updated, .. } if self.skip_update => {
                        let o = specs.iter().position(|s| s.name == updated)?;
                        Some((o, x.data.clone()))
                    }
                    _ => None,
                })
                .collect();
            Ok(Box::new(HalfPrepared {
                inner: crate::reference::ReferenceBackend.prepare(&f32_case, device, inputs)?,
                dtype: case.dtype,
                replaced,
                widen: self.widen,
            }))
        }
    }

    impl Prepared for HalfPrepared {
        fn execute(&mut self) -> Result<(), BackendError> {
            self.inner.execute()
        }
        fn sync(&mut self) -> Result<(), BackendError> {
            self.inner.sync()
        }
        fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
            let mut o = self.inner.outputs()?;
            for v in o.iter_mut().flatten() {
                *v = crate::tensor::round_to(*v, self.dtype);
            }
            for (i, x) in &self.replaced {
                o[*i] = x.clone();
            }
            Ok(o)
        }
        fn tolerance(&self) -> Option<crate::backend::ToleranceOverride> {
            self.widen.map(|factor| crate::backend::ToleranceOverride {
                factor,
                why: "a test's".into(),
            })
        }
    }

    /// A bf16 RNN training step that computes its gradients and leaves the SGD update out
    /// (the weights before the step returned as updated) passed the check: in every RNN
    /// shape, the step is below the tolerance of the weights. It fails now, on its step; the
    /// correct backend passes, and the cases whose step is below the dtype's rounding (no
    /// check can see it) are listed as not verified, never counted as verified.
    #[test]
    fn a_half_precision_training_step_without_its_update_fails_the_check() {
        let right = HalfReference {
            skip_update: false,
            widen: None,
        };
        let r = check(&right, "cpu", Op::Rnn, Mode::Train).unwrap();
        // Every RNN shape, two seeds.
        assert_eq!(r.passed, 2 * shapes(Op::Rnn).len(), "{r:?}");
        assert!(
            (r.update_not_verified.iter())
                .any(|c| c.starts_with("rnn/train/lstm_h1_b1_t2/bf16/") && c.contains("w_new")),
            "{r:?}"
        );
        // The shapes of 13 hidden units show their step.
        assert!(
            !r.update_not_verified.iter().any(|c| c.contains("_h13_")),
            "{r:?}"
        );
        assert_eq!(r.verified(), r.passed - r.update_not_verified.len());
        assert!(r.widened.is_empty(), "{r:?}");
        let left_out = HalfReference {
            skip_update: true,
            widen: None,
        };
        let err = check(&left_out, "cpu", Op::Rnn, Mode::Train).unwrap_err();
        assert!(
            err.contains("/bf16/half-reference/cpu (seed 1)")
                && err.contains("the SGD step of `w_new`")
                && err.contains("off by 1.00e0"),
            "{err}"
        );
    }

    /// A case verified at a tolerance its implementation widened is listed with the
    /// tolerance used and why.
    #[test]
    fn cases_at_a_widened_tolerance_are_listed() {
        let widened = HalfReference {
            skip_update: false,
            widen: Some(4.0),
        };
        let r = check(&widened, "cpu", Op::Gemm, Mode::Infer).unwrap();
        assert_eq!(r.widened.len(), r.passed, "{r:?}");
        assert_eq!(r.passed, 2 * shapes(Op::Gemm).len(), "{r:?}");
        let bf16 = 4.0 * DType::Bf16.tolerance();
        assert!(
            r.widened.contains(&format!(
                "gemm/infer/m1_n1_k1_nn/bf16/half-reference/cpu (seed 2): tolerance {bf16:.1e} \
                 (4x the default: a test's)"
            )),
            "{r:?}"
        );
    }

    /// How [`HostSgd`]'s trainer applies its SGD step.
    #[derive(Clone, Copy, Debug)]
    enum Update {
        /// `w − lr·g`.
        Correct,
        /// `w − g`: the learning rate ignored.
        IgnoresLr,
        /// `w + lr·g`: the wrong sign.
        WrongSign,
        /// `w − lr·Σg`: the gradients of every step so far, never zeroed.
        KeepsGradients,
        /// `w₀ − lr·g(w₀)`: every step from the initial weights.
        FromInit,
    }

    /// A trainer on the f64 host model whose gradient is central finite differences of the
    /// host loss (exact to ~1e-10 here), applied as [`Update`] says.
    struct HostSgdTrainer {
        model: ModelConfig,
        data: Dataset,
        params: Vec<Vec<f32>>,
        /// The initial parameters ([`Update::FromInit`]).
        init: Vec<Vec<f32>>,
        /// The gradients summed over the steps ([`Update::KeepsGradients`]).
        sum: Vec<Vec<f64>>,
        update: Update,
    }

    impl crate::Trainer for HostSgdTrainer {
        fn step(
            &mut self,
            bi: usize,
            lr: f64,
            want_loss: bool,
        ) -> Result<Option<f32>, BackendError> {
            let from = match self.update {
                Update::FromInit => &self.init,
                _ => &self.params,
            };
            let theta: Vec<Vec<f64>> = (from.iter())
                .map(|p| p.iter().map(|&x| x as f64).collect())
                .collect();
            let loss = self.data.host_loss(&self.model, &theta, bi);
            let eps = 1e-6;
            for (pi, p) in self.params.iter_mut().enumerate() {
                for (j, w) in p.iter_mut().enumerate() {
                    let mut at = theta.clone();
                    at[pi][j] += eps;
                    let plus = self.data.host_loss(&self.model, &at, bi);
                    at[pi][j] -= 2.0 * eps;
                    let minus = self.data.host_loss(&self.model, &at, bi);
                    let g = (plus - minus) / (2.0 * eps);
                    self.sum[pi][j] += g;
                    let w0 = theta[pi][j];
                    *w = match self.update {
                        Update::Correct | Update::FromInit => w0 - lr * g,
                        Update::IgnoresLr => w0 - g,
                        Update::WrongSign => w0 + lr * g,
                        Update::KeepsGradients => w0 - lr * self.sum[pi][j],
                    } as f32;
                }
            }
            Ok(want_loss.then_some(loss as f32))
        }
        fn loss(&mut self, bi: usize) -> Result<f32, BackendError> {
            let theta: Vec<Vec<f64>> = (self.params.iter())
                .map(|p| p.iter().map(|&x| x as f64).collect())
                .collect();
            Ok(self.data.host_loss(&self.model, &theta, bi) as f32)
        }
        fn sync(&mut self) -> Result<(), BackendError> {
            Ok(())
        }
        fn params(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
            Ok(self.params.clone())
        }
    }

    /// A backend whose trainer is [`HostSgdTrainer`] with this update.
    struct HostSgd(Update);

    impl Backend for HostSgd {
        fn name(&self) -> &'static str {
            "host-sgd"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            vec![DeviceInfo::available("cpu")]
        }
        fn supports(&self, _: &Case, _: &str) -> Result<(), String> {
            Err("trains only".into())
        }
        fn prepare(
            &self,
            _: &Case,
            _: &str,
            _: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            Err(BackendError::Unsupported("trains only".into()))
        }
        fn trains(&self) -> bool {
            true
        }
        fn trainer(&self, setup: &TrainSetup<'_>) -> Result<Box<dyn crate::Trainer>, BackendError> {
            Ok(Box::new(HostSgdTrainer {
                model: *setup.model,
                data: setup.data.clone(),
                params: setup.init.to_vec(),
                init: setup.init.to_vec(),
                sum: setup.init.iter().map(|p| vec![0.0; p.len()]).collect(),
                update: self.0,
            }))
        }
    }

    /// The trainer check sees the learning rate: a trainer that ignores it, or steps the wrong
    /// way, fails it (at lr 1 the first was indistinguishable from a correct one), while the
    /// same trainer with the right update passes (the check can pass, at its tolerance).
    #[test]
    fn the_trainer_check_fails_a_trainer_that_ignores_the_learning_rate_or_its_sign() {
        check_training(&HostSgd(Update::Correct), "cpu", ModelKind::Mlp).unwrap();
        for wrong in [Update::IgnoresLr, Update::WrongSign] {
            let err = check_training(&HostSgd(wrong), "cpu", ModelKind::Mlp)
                .expect_err(&format!("{wrong:?} passed the trainer check"));
            assert!(err.contains("gradient of"), "{wrong:?}: {err}");
        }
    }

    /// The trainer check takes a second step, on another batch, from the first step's
    /// parameters: a trainer that never zeroes its gradients, or that steps from the initial
    /// weights every time, passed the single step checked before (the first step of both is
    /// a correct one), and fails the second.
    #[test]
    fn the_trainer_check_fails_a_trainer_that_keeps_gradients_or_steps_from_the_start() {
        for wrong in [Update::KeepsGradients, Update::FromInit] {
            let err = check_training(&HostSgd(wrong), "cpu", ModelKind::Mlp)
                .expect_err(&format!("{wrong:?} passed the trainer check"));
            assert!(err.contains("step 2 (batch 1)"), "{wrong:?}: {err}");
        }
    }

    #[test]
    fn a_dtype_whose_every_case_is_skipped_while_running_fails_the_check() {
        let lost = HalfLostAtRunTime { declare_bf16: true };
        let err = check(&lost, "cpu", Op::Gemm, Mode::Infer).unwrap_err();
        assert!(
            err.contains("bf16") && err.contains("skipped while running"),
            "{err}"
        );
        // Declared unsupported up front, bf16 is left out and f32 alone must pass.
        let honest = HalfLostAtRunTime {
            declare_bf16: false,
        };
        let r = check(&honest, "cpu", Op::Gemm, Mode::Infer).unwrap();
        assert_eq!(r.passed, 2 * shapes(Op::Gemm).len());
    }

    #[test]
    fn an_op_is_not_applicable_only_when_every_case_is_declared_unsupported() {
        let b = GemmBf16Only;
        assert_eq!(declared_unsupported(&b, "cpu", Op::Gemm, Mode::Infer), None);
        assert_eq!(
            declared_unsupported(&b, "cpu", Op::Conv2d, Mode::Infer).as_deref(),
            Some("no conv2d")
        );
        assert_eq!(
            declared_unsupported(
                &crate::reference::ReferenceBackend,
                "cpu",
                Op::Rnn,
                Mode::Train
            ),
            None
        );
    }
}
