//! GPU correctness, against the f64 reference. Ignored where there is no GPU, so they never
//! pass vacuously; run them with `cargo test -p wattbench-cuda -- --ignored` on a GPU machine.
//!
//! - Core's generic check (`wattbench_core::backend_tests!` / `check_backend`) for every
//!   backend, one module each, for every op and mode it runs: small odd shapes in every
//!   dtype, through the real harness (which also applies what each case declares as its
//!   tolerance).
//! - Then what it does not reach: large shapes that are not multiples of any tile, every
//!   transpose of every GEMM kernel, both conv tiles, every RNN cell; a second training call
//!   from the weights the first one updated (ours and cuDNN's, on a ResNet-like and on odd
//!   strided, padded shapes); and the RNN backward (with `dh0`) against finite differences.
//!   Fresh random inputs (seed printed on failure), outputs poisoned with NaN before the call.
//!
//! The last tests run everywhere: without a GPU every backend explains itself instead of
//! panicking.
use wattbench_core::harness::within_tolerance;
use wattbench_core::reference;
use wattbench_core::tensor::{generate_case_inputs, rel_errors, rel_l2_error, HostTensor};
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
use wattbench_core::{Backend, BackendError, Case, DType, Mode, Params, Prepared};
use wattbench_cuda::{host, Cublas, CudaKernels, Cudnn};

const DEV: &str = "cuda:0";

/// Our kernels: every op, both modes.
mod cuda {
    wattbench_core::backend_tests!(
        ignore = "needs an NVIDIA GPU",
        wattbench_cuda::CudaKernels::new(),
        "cuda:0"
    );
}

/// The naive GEMM baseline runs the GEMM forward pass only (the generic check fails an op of
/// which no case runs, so only that one is instantiated).
mod cuda_naive {
    #[test]
    #[ignore = "needs an NVIDIA GPU"]
    fn gemm_matches_reference() {
        wattbench_core::testing::check_backend(
            &wattbench_cuda::CudaKernels::naive(),
            "cuda:0",
            wattbench_core::Op::Gemm,
            wattbench_core::Mode::Infer,
        );
    }
}

/// The Hopper GEMM runs the bf16/f16 GEMM forward pass only, on compute capability 9.0 (on
/// another GPU every case is unsupported and the check fails: it needs an H100/H200).
mod cuda_wgmma {
    #[test]
    #[ignore = "needs an NVIDIA Hopper GPU (compute capability 9.0)"]
    fn gemm_matches_reference() {
        wattbench_core::testing::check_backend(
            &wattbench_cuda::CudaKernels::wgmma(),
            "cuda:0",
            wattbench_core::Op::Gemm,
            wattbench_core::Mode::Infer,
        );
    }
}

/// The Hopper GEMM in clusters of two (`cuda-wgmma-c2`): the generic shapes (one tile row:
/// the plain kernel runs them) and, in `wgmma_cluster_gemm_...`, shapes of several tile rows.
mod cuda_wgmma_c2 {
    #[test]
    #[ignore = "needs an NVIDIA Hopper GPU (compute capability 9.0)"]
    fn gemm_matches_reference() {
        wattbench_core::testing::check_backend(
            &wattbench_cuda::CudaKernels::wgmma_cluster(),
            "cuda:0",
            wattbench_core::Op::Gemm,
            wattbench_core::Mode::Infer,
        );
    }
}

/// cuBLAS runs the GEMM forward pass only.
mod cublas {
    #[test]
    #[ignore = "needs an NVIDIA GPU"]
    fn gemm_matches_reference() {
        wattbench_core::testing::check_backend(
            &wattbench_cuda::Cublas,
            "cuda:0",
            wattbench_core::Op::Gemm,
            wattbench_core::Mode::Infer,
        );
    }
}

/// cuDNN runs conv2d, forward and training steps.
mod cudnn {
    wattbench_core::backend_tests!(
        @op [ignore = "needs an NVIDIA GPU"],
        wattbench_cuda::Cudnn,
        "cuda:0",
        Conv2d,
        conv2d_matches_reference,
        conv2d_training_step_matches_reference
    );
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

fn gemm(m: usize, n: usize, k: usize, trans: &str) -> Params {
    Params::Gemm(GemmParams {
        m,
        n,
        k,
        trans_a: trans.starts_with('t'),
        trans_b: trans.ends_with('t'),
    })
}

/// `[n, c, h, w, k, r, s, pad, stride]`.
fn conv([n, c, h, w, k, r, s, pad, stride]: [usize; 9]) -> Params {
    Params::Conv2d(ConvParams {
        n,
        c,
        h,
        w,
        k,
        r,
        s,
        pad_h: pad,
        pad_w: pad,
        stride_h: stride,
        stride_w: stride,
    })
}

fn rnn(cell: Cell, hidden: usize, batch: usize, steps: usize) -> Params {
    Params::Rnn(RnnParams {
        cell,
        hidden,
        batch,
        steps,
    })
}

fn case(params: Params, mode: Mode, dtype: DType) -> Case {
    Case {
        params,
        mode,
        dtype,
        tag: None,
    }
}

/// `case` prepared on `backend` with fresh inputs (outputs poisoned with NaN): the seed, the
/// inputs and the prepared case.
fn prepare(backend: &dyn Backend, case: &Case) -> (u64, Vec<HostTensor>, Box<dyn Prepared>) {
    let seed = fresh_seed();
    backend
        .supports(case, DEV)
        .unwrap_or_else(|e| panic!("{} does not support {case}: {e}", backend.name()));
    let inputs = generate_case_inputs(case, seed);
    let run = backend
        .prepare(case, DEV, &inputs)
        .unwrap_or_else(|e| panic!("prepare {case} (seed {seed}): {e}"));
    (seed, inputs, run)
}

/// Every output of `run` (after a call) against `want`, within the case's tolerance widened
/// by what the implementation declares (as the harness does).
fn check_outputs(case: &Case, run: &mut dyn Prepared, want: &[Vec<f64>], what: &str) {
    let got = run.outputs().unwrap();
    let tol = case.tolerance() * run.tolerance().map_or(1.0, |t| t.factor.max(1.0));
    let specs = case.output_specs();
    assert_eq!(got.len(), specs.len(), "{case}: output count");
    assert_eq!(want.len(), specs.len());
    for ((spec, o), w) in specs.iter().zip(&got).zip(want) {
        assert_eq!(o.len(), spec.numel(), "{case}: `{}` length", spec.name);
        let err = rel_errors(o, w);
        assert!(
            within_tolerance(err, tol),
            "{case}, {what}, {:?}: `{}` errors {err:?} beyond {tol:e}",
            run.implementation(),
            spec.name,
        );
    }
}

/// CUDA-event timing of a few calls.
fn check_timing(run: &mut dyn Prepared) {
    let t = run.time_iters(3).unwrap();
    assert!(t.as_nanos() > 0, "event timing returned zero");
}

/// Forward passes of `backend` on each of `cases`, then event timing. Returns what each case
/// recorded as its implementation.
fn check_forward(backend: &dyn Backend, cases: &[(Params, DType)]) -> Vec<String> {
    let mut implementations = Vec::new();
    for &(params, dtype) in cases {
        let case = case(params, Mode::Infer, dtype);
        let (seed, inputs, mut run) = prepare(backend, &case);
        run.execute().unwrap();
        run.sync().unwrap();
        let want = reference::forward(
            &params,
            &inputs.iter().map(HostTensor::to_f64).collect::<Vec<_>>(),
        );
        check_outputs(&case, run.as_mut(), &want, &format!("seed {seed}"));
        let imp = run.implementation().unwrap_or_default();
        assert!(!imp.is_empty(), "{case}: no implementation recorded");
        check_timing(run.as_mut());
        implementations.push(imp);
    }
    implementations
}

/// The multiprocessors of `cuda:0`, which size the Hopper GEMM's schedule.
fn sms() -> u32 {
    let gpus = wattbench_cuda::gpus().expect("a GPU");
    gpus.iter().find(|g| g.ordinal == 0).expect("cuda:0").sms
}

/// Each case ran the Hopper GEMM kernels that the host's schedule predicts for this GPU (in
/// clusters of two where `cluster` asks for them and the shape allows): its implementation,
/// less the padded copies of operands. Returns the predictions.
fn check_wgmma_kernels(
    cases: &[(Params, DType)],
    implementations: &[String],
    cluster: bool,
) -> Vec<Vec<String>> {
    let sms = sms();
    assert_eq!(cases.len(), implementations.len());
    let mut predicted = Vec::new();
    for (&(params, dtype), imp) in cases.iter().zip(implementations) {
        let Params::Gemm(p) = params else {
            panic!("{params:?} is not a GEMM")
        };
        let want = wattbench_cuda::wgmma_entry_points(&p, dtype, sms, cluster);
        // The kernels, then what the driver's JIT said, if anything (`; WARNING, ...`): shown,
        // not taken for a kernel name.
        let (kernels, jit) = imp.split_once("; ").unwrap_or((imp, ""));
        if !jit.is_empty() {
            eprintln!("{params:?} {dtype:?}: {jit}");
        }
        let ran: Vec<&str> = kernels
            .split(", ")
            .filter(|e| !e.starts_with("pad_rows_"))
            .collect();
        assert_eq!(ran, want, "{params:?} {dtype:?} on {sms} SMs: {imp}");
        predicted.push(want);
    }
    predicted
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gemm_kernels_on_odd_shapes_and_every_transpose() {
    use DType::{Bf16, F16, F32};
    check_forward(
        &CudaKernels::new(),
        &[
            (gemm(1000, 1001, 999, "nn"), F32),
            (gemm(130, 67, 257, "nt"), F32),
            (gemm(1000, 1001, 999, "tn"), F32),
            (gemm(33, 129, 7, "tt"), F32),
            (gemm(1, 1, 1, "nn"), F32),
            (gemm(256, 384, 512, "nn"), F32),
            (gemm(256, 256, 512, "nn"), Bf16),
            (gemm(1000, 1001, 999, "nn"), Bf16),
            (gemm(131, 250, 77, "nt"), Bf16),
            (gemm(1000, 1001, 999, "tn"), Bf16),
            (gemm(136, 264, 200, "tt"), Bf16),
            (gemm(97, 45, 301, "nn"), F16),
            (gemm(128, 256, 64, "tt"), F16),
        ],
    );
    check_forward(
        &CudaKernels::naive(),
        &[
            (gemm(100, 101, 99, "nn"), F32),
            (gemm(100, 101, 99, "tt"), F32),
        ],
    );
    check_forward(
        &Cublas,
        &[
            (gemm(1000, 1001, 999, "nn"), F32),
            (gemm(1000, 1001, 999, "tn"), F32),
            (gemm(33, 65, 17, "nt"), F32),
            (gemm(64, 48, 80, "tt"), Bf16),
            (gemm(64, 48, 80, "nn"), F16),
        ],
    );
}

/// The Hopper GEMM in every layout and both dtypes: partial tiles in M, N and K (TMA's zero
/// fill and the guarded stores), K over many ring passes, rows that need the padded copy, and
/// more tiles than SMs (each CTA of the persistent grid takes several); the narrow tile
/// (N <= 128) and split K (few tiles, long K: on a 132-SM H100/H200, 1000x17x3000 runs 5
/// uneven k-ranges, 700x1x2050 four, 256x300x4096 eight on the wide tile, 300x100x640 none).
#[test]
#[ignore = "needs an NVIDIA Hopper GPU (compute capability 9.0)"]
fn wgmma_gemm_every_layout_edges_and_persistent_tiles() {
    let mut cases = Vec::new();
    for t in ["nn", "nt", "tn", "tt"] {
        for dtype in [DType::Bf16, DType::F16] {
            cases.push((gemm(1000, 1096, 1000, t), dtype));
            cases.push((gemm(33, 17, 9, t), dtype));
            cases.push((gemm(1000, 17, 3000, t), dtype));
        }
        cases.push((gemm(2056, 2304, 136, t), DType::Bf16));
        cases.push((gemm(128, 256, 64, t), DType::F16));
        cases.push((gemm(700, 1, 2050, t), DType::Bf16));
        cases.push((gemm(256, 300, 4096, t), DType::F16));
        cases.push((gemm(300, 100, 640, t), DType::Bf16));
    }
    let ran = check_forward(&CudaKernels::wgmma(), &cases);
    let predicted = check_wgmma_kernels(&cases, &ran, false);
    // The cases reach what the doc promises on this GPU: the narrow tile and the wide one,
    // each with K whole and split.
    let kinds: Vec<(bool, bool)> = predicted
        .iter()
        .map(|k| {
            let narrow = k[0].starts_with("gemm_wgmma_n64_");
            (
                narrow,
                k.iter().any(|e| e.starts_with("gemm_splitk_reduce_")),
            )
        })
        .collect();
    for kind in [(false, false), (false, true), (true, false), (true, true)] {
        assert!(
            kinds.contains(&kind),
            "no case (narrow, split) = {kind:?} on {} SMs",
            sms()
        );
    }
}

/// The cluster kernels (`gemm_wgmma_c2_*`, two CTAs sharing B by TMA multicast) in every
/// layout and both dtypes: an even and an odd number of tile rows (the last cluster's second
/// CTA past M), partial tiles in M, N and K, more clusters' worth of tiles than SMs, and the
/// padded copy; each case records the kernels the host's schedule predicts. K of under 16
/// k-steps is never split, so those cases run the cluster kernel on any Hopper GPU; on 80 SMs
/// or more, 1000x1096x1000 is split in two and runs the plain kernel and the reduction.
#[test]
#[ignore = "needs an NVIDIA Hopper GPU (compute capability 9.0)"]
fn wgmma_cluster_gemm_every_layout_odd_tile_rows_and_persistent_clusters() {
    let mut cases = Vec::new();
    for t in ["nn", "nt", "tn", "tt"] {
        for dtype in [DType::Bf16, DType::F16] {
            cases.push((gemm(1000, 1096, 900, t), dtype)); // 8 tile rows, 15 k-steps
            cases.push((gemm(300, 300, 70, t), dtype)); // 3 tile rows: one CTA past M
        }
        cases.push((gemm(2056, 2304, 136, t), DType::Bf16)); // 17 rows, 153 pairs > 66
        cases.push((gemm(257, 1001, 515, t), DType::F16)); // odd rows: the padded copy
    }
    let clustered = cases.len();
    for t in ["nn", "tt"] {
        cases.push((gemm(1000, 1096, 1000, t), DType::F16)); // 16 k-steps: split on 80+ SMs
    }
    let ran = check_forward(&CudaKernels::wgmma_cluster(), &cases);
    let predicted = check_wgmma_kernels(&cases, &ran, true);
    for (k, (params, _)) in predicted.iter().zip(&cases).take(clustered) {
        assert!(
            k[0].starts_with("gemm_wgmma_c2_"),
            "{params:?}: predicted {k:?}"
        );
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn conv_forward_both_tiles_padding_and_stride() {
    // Both tile widths, padding, stride, 1x1, output sizes with P·Q % 4 != 0.
    let odd = conv([2, 3, 9, 11, 5, 3, 3, 1, 2]);
    let resnet = conv([2, 64, 14, 14, 64, 3, 3, 1, 1]);
    let stem = conv([1, 3, 37, 41, 16, 7, 7, 3, 2]);
    let f32 = |p| (p, DType::F32);
    check_forward(
        &CudaKernels::new(),
        &[
            f32(odd),
            f32(conv([3, 17, 7, 7, 130, 3, 3, 1, 1])),
            f32(conv([2, 64, 14, 14, 96, 1, 1, 0, 1])),
            f32(stem),
            f32(resnet),
        ],
    );
    // cuDNN's prepare also checks that its output shape is ours (padding, stride, filter
    // layout), here on a 7x7 stride-2 filter too.
    check_forward(&Cudnn, &[f32(odd), f32(resnet), f32(stem)]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn rnn_forward_every_cell_off_the_tiles() {
    // H and B not multiples of the 16x32 tile.
    check_forward(
        &CudaKernels::new(),
        &[
            (rnn(Cell::Vanilla, 37, 5, 4), DType::F32),
            (rnn(Cell::Lstm, 37, 33, 3), DType::F32),
            (rnn(Cell::Gru, 50, 7, 3), DType::F32),
            (rnn(Cell::Lstm, 256, 64, 5), DType::F32),
        ],
    );
}

/// Two training steps (`Mode::Train`) on `backend` against `reference::train_step`: every
/// output (`y`, each gradient, each updated weight); the second call must start from the
/// weights the first one updated in place. Returns what the case recorded as its
/// implementation.
fn check_train_on(backend: &dyn Backend, params: Params) -> String {
    let case = case(params, Mode::Train, DType::F32);
    let (seed, inputs, mut run) = prepare(backend, &case);
    let mut ins64: Vec<Vec<f64>> = inputs.iter().map(HostTensor::to_f64).collect();
    let n_grads = params.grad_inputs().len();
    for call in 1..=2 {
        run.execute().unwrap();
        run.sync().unwrap();
        let want = reference::train_step(&params, &ins64);
        check_outputs(
            &case,
            run.as_mut(),
            &want,
            &format!("call {call}, seed {seed}"),
        );
        // The reference's next step starts from its own updated weights.
        for (j, &wi) in params.weight_inputs().iter().enumerate() {
            ins64[wi].clone_from(&want[1 + n_grads + j]);
        }
    }
    check_timing(run.as_mut());
    run.implementation()
        .unwrap_or_else(|| panic!("{case}: no implementation recorded"))
}

/// [`check_train_on`] our kernels.
fn check_train(params: Params) {
    check_train_on(&CudaKernels::new(), params);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn training_steps_on_odd_shapes() {
    for t in ["nn", "nt", "tn", "tt"] {
        // Neither M, N nor K a multiple of the 128x128x8 tile; dA/dB swap their roles.
        check_train(gemm(130, 67, 257, t));
        check_train(gemm(1, 129, 3, t));
    }
    // Asymmetric padding and stride, K > 64 (the 128-wide forward tile), non-square filter.
    check_train(Params::Conv2d(
        ConvParams::new(2, 5, 11, 9, 70, 3, 2)
            .padded(2, 1)
            .strided(2, 3),
    ));
    check_train(conv([2, 3, 9, 11, 5, 3, 3, 1, 2]));
    check_train(conv([2, 64, 14, 14, 64, 3, 3, 1, 1]));
    check_train(conv([2, 64, 14, 14, 70, 3, 3, 1, 1]));
    // T = 1 (only the last-step kernel), B over the 32-row tile, H over the 16-unit tile.
    for cell in [Cell::Vanilla, Cell::Lstm, Cell::Gru] {
        for (hidden, batch, steps) in [(37, 5, 4), (18, 33, 3), (50, 7, 1), (13, 3, 4), (1, 1, 2)] {
            check_train(rnn(cell, hidden, batch, steps));
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cudnn_training_steps_on_resnet_like_and_odd_shapes() {
    for params in [
        // A ResNet layer (3x3, 128 channels, 14x14; batch 2 keeps the f64 reference quick).
        conv([2, 128, 14, 14, 128, 3, 3, 1, 1]),
        // A downsampling 1x1, stride 2.
        conv([2, 64, 28, 28, 128, 1, 1, 0, 2]),
        // Padding and stride that differ per dimension, a non-square filter, odd sizes.
        Params::Conv2d(
            ConvParams::new(2, 5, 11, 9, 70, 3, 2)
                .padded(2, 1)
                .strided(2, 3),
        ),
        conv([2, 3, 9, 11, 5, 3, 3, 1, 2]),
    ] {
        let what = check_train_on(&Cudnn, params);
        // The three chosen algorithms, the update and the workspace, as recorded.
        for part in [
            "cudnn fwd ",
            ", bwd-data ",
            ", bwd-filter ",
            "sgd cublasSaxpy",
            "workspace ",
        ] {
            assert!(what.contains(part), "{params:?}: {what}");
        }
        eprintln!("{params:?}: {what}");
    }
}

fn dot(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, &y)| x * y as f64).sum()
}

/// Directional derivative of `L = <HS, dHS>` along a random direction V over (xp, w, b, h0),
/// by central differences of the f64 reference, against the GPU gradients (with `dh0`).
fn check_rnn_gradients(r: RnnParams) {
    let params = Params::Rnn(r);
    let seed = fresh_seed();
    let inputs = generate_case_inputs(&case(params, Mode::Train, DType::F32), seed);
    let dirs = generate_case_inputs(&case(params, Mode::Train, DType::F32), seed ^ 99);
    let n_in = inputs.len() - 1;
    let dhs = &inputs[n_in].data;
    let loss = |eps: f64| -> f64 {
        let mut v: Vec<Vec<f64>> = inputs[..n_in].iter().map(HostTensor::to_f64).collect();
        for (x, d) in v.iter_mut().zip(&dirs[..4]) {
            for (x, &dv) in x.iter_mut().zip(&d.data) {
                *x += eps * dv as f64;
            }
        }
        let hs = reference::rnn(&r, reference::RnnInputs::of(r.cell, &v));
        dot(&hs, dhs)
    };
    let eps = 1e-4;
    let fd = (loss(eps) - loss(-eps)) / (2.0 * eps);
    let gr = host::rnn_gradients(DEV, &r, &inputs).unwrap();
    let ins64: Vec<Vec<f64>> = inputs[..n_in].iter().map(HostTensor::to_f64).collect();
    let hs_ref = reference::forward(&params, &ins64);
    assert!(
        rel_l2_error(&gr.hs, &hs_ref[0]) < 1e-4,
        "forward with saving differs (seed {seed})"
    );
    let d64: Vec<Vec<f64>> = dirs.iter().map(HostTensor::to_f64).collect();
    let an =
        dot(&d64[0], &gr.dxp) + dot(&d64[1], &gr.dw) + dot(&d64[2], &gr.db) + dot(&d64[3], &gr.dh0);
    assert!(
        (an - fd).abs() <= 1e-3 * fd.abs().max(1.0),
        "{r:?}: analytic {an} vs numeric {fd} (seed {seed})"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn rnn_gradients_match_finite_differences() {
    for (cell, hidden, batch, steps) in [
        (Cell::Vanilla, 19, 3, 4),
        (Cell::Lstm, 21, 5, 3),
        (Cell::Gru, 18, 33, 3),
    ] {
        check_rnn_gradients(RnnParams {
            cell,
            hidden,
            batch,
            steps,
        });
    }
}

/// Runs everywhere: without a usable GPU (no driver, or a driver that sees no device) every
/// backend gives the driver probe's reason, and prepare returns `Unavailable` instead of
/// panicking, in both modes; with GPUs, every backend lists one device per GPU.
#[test]
fn without_a_gpu_backends_explain_and_do_not_panic() {
    let probe = wattbench_cuda::gpus();
    let have_gpu = probe.is_ok();
    for b in wattbench_cuda::backends() {
        let devs = b.devices();
        assert!(!devs.is_empty(), "{}", b.name());
        let why = match &probe {
            Ok(gpus) => {
                let names: Vec<String> =
                    gpus.iter().map(|g| format!("cuda:{}", g.ordinal)).collect();
                let listed: Vec<&str> = devs.iter().map(|d| d.name.as_str()).collect();
                assert_eq!(listed, names, "{}", b.name());
                continue;
            }
            Err(why) => why,
        };
        assert!(
            devs.iter()
                .all(|d| !d.available && d.reason.as_deref() == Some(why.as_str())),
            "{}: {devs:?}, the driver probe says {why}",
            b.name()
        );
        for c in [
            case(gemm(4, 4, 4, "nn"), Mode::Infer, DType::F32),
            case(conv([1, 2, 5, 5, 3, 3, 3, 1, 1]), Mode::Infer, DType::F32),
            case(rnn(Cell::Lstm, 4, 2, 3), Mode::Train, DType::F32),
        ] {
            if b.supports(&c, DEV).is_ok() {
                match b.prepare(&c, DEV, &generate_case_inputs(&c, 1)) {
                    Err(BackendError::Unavailable(r)) => assert!(!r.is_empty()),
                    Err(e) => panic!("{} {c}: expected Unavailable, got {e}", b.name()),
                    Ok(_) => panic!("{} {c}: prepared without a GPU", b.name()),
                }
            }
        }
    }
    if !have_gpu {
        let r = RnnParams::new(Cell::Gru, 3, 2, 2);
        let inputs = generate_case_inputs(&case(Params::Rnn(r), Mode::Train, DType::F32), 1);
        assert!(matches!(
            host::rnn_gradients(DEV, &r, &inputs),
            Err(BackendError::Unavailable(_))
        ));
        // Lengths are checked before any device is looked for.
        assert!(matches!(
            host::rnn_gradients(DEV, &r, &inputs[1..]),
            Err(BackendError::Failed { .. })
        ));
    }
}

/// Runs everywhere: training cases are declared supported only where they run (fp32: `cuda`,
/// and `cudnn` for conv2d).
#[test]
fn training_cases_are_declared_with_reasons() {
    for params in [
        gemm(4, 3, 5, "tn"),
        conv([1, 2, 5, 5, 3, 3, 3, 1, 1]),
        rnn(Cell::Lstm, 4, 2, 3),
    ] {
        let train = case(params, Mode::Train, DType::F32);
        for b in wattbench_cuda::backends() {
            let ok = b.supports(&train, DEV);
            let runs =
                b.name() == "cuda" || (b.name() == "cudnn" && matches!(params, Params::Conv2d(_)));
            assert_eq!(ok.is_ok(), runs, "{} {train}: {ok:?}", b.name());
            if let Err(why) = ok {
                assert!(!why.is_empty());
            }
        }
        let bf16 = case(params, Mode::Train, DType::Bf16);
        assert!(CudaKernels::new().supports(&bf16, DEV).is_err());
        assert!(Cudnn.supports(&bf16, DEV).is_err());
    }
}
