//! GPU correctness: every kernel and vendor backend against the f64 reference, on fresh random
//! inputs (seed printed on failure), poisoned (NaN) outputs, and sizes that are not multiples
//! of any tile. Ignored where there is no GPU, so they never pass vacuously; run them with
//! `cargo test -p wattbench-cuda -- --ignored` on a GPU machine. The last tests run everywhere:
//! they check the no-GPU path explains itself instead of panicking.
use std::sync::atomic::AtomicBool;
use wattbench_core::harness::{CaseInputs, Harness, HarnessConfig};
use wattbench_core::reference;
use wattbench_core::result::Status;
use wattbench_core::tensor::{generate_case_inputs, generate_inputs, rel_l2_error, HostTensor};
use wattbench_core::testing;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
use wattbench_core::{Backend, BackendError, Case, DType, Mode, Params};
use wattbench_cuda::{train, Cublas, CudaKernels, Cudnn};

const DEV: &str = "cuda:0";

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// The one generic forward check, instantiated per backend and case by `gpu_case!`.
fn check_forward(backend: &dyn Backend, params: Params, dtype: DType) {
    let seed = fresh_seed();
    let case = Case {
        params,
        mode: Mode::Infer,
        dtype,
        tag: None,
    };
    backend
        .supports(&case, DEV)
        .unwrap_or_else(|e| panic!("{} does not support {case}: {e}", backend.name()));
    let inputs = generate_inputs(&params, dtype, seed);
    let mut run = backend
        .prepare(&case, DEV, &inputs)
        .unwrap_or_else(|e| panic!("prepare {case}: {e}"));
    // Outputs start poisoned with NaN: a kernel that skips elements fails here.
    run.execute().unwrap();
    run.sync().unwrap();
    let out = run.outputs().unwrap();
    let want = reference::forward(
        &params,
        &inputs.iter().map(HostTensor::to_f64).collect::<Vec<_>>(),
    );
    assert_eq!(out.len(), want.len());
    for (o, w) in out.iter().zip(&want) {
        let err = rel_l2_error(o, w);
        assert!(
            err <= dtype.tolerance(),
            "{} {case}: rel L2 error {err:e} > {:e} (seed {seed})",
            backend.name(),
            dtype.tolerance()
        );
    }
    let t = run.time_iters(3).unwrap();
    assert!(t.as_nanos() > 0, "event timing returned zero");
}

macro_rules! gpu_case {
    ($name:ident, $backend:expr, $params:expr, $dtype:expr) => {
        #[test]
        #[ignore = "needs an NVIDIA GPU"]
        fn $name() {
            check_forward(&$backend, $params, $dtype);
        }
    };
}

fn gemm(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Params {
    Params::Gemm(GemmParams {
        m,
        n,
        k,
        trans_a: ta,
        trans_b: tb,
    })
}

#[allow(clippy::too_many_arguments)]
fn conv(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    r: usize,
    s: usize,
    pad: usize,
    stride: usize,
) -> Params {
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

// GEMM: odd sizes, every transpose, every kernel.
gpu_case!(
    tiled_f32_nn_odd,
    CudaKernels::new(),
    gemm(1000, 1001, 999, false, false),
    DType::F32
);
gpu_case!(
    tiled_f32_nt_odd,
    CudaKernels::new(),
    gemm(130, 67, 257, false, true),
    DType::F32
);
gpu_case!(
    tiled_f32_tn_odd,
    CudaKernels::new(),
    gemm(1000, 1001, 999, true, false),
    DType::F32
);
gpu_case!(
    tiled_f32_tt_odd,
    CudaKernels::new(),
    gemm(33, 129, 7, true, true),
    DType::F32
);
gpu_case!(
    tiled_f32_tiny,
    CudaKernels::new(),
    gemm(1, 1, 1, false, false),
    DType::F32
);
gpu_case!(
    tiled_f32_aligned,
    CudaKernels::new(),
    gemm(256, 384, 512, false, false),
    DType::F32
);
gpu_case!(
    naive_f32_nn_odd,
    CudaKernels::naive(),
    gemm(100, 101, 99, false, false),
    DType::F32
);
gpu_case!(
    naive_f32_tt_odd,
    CudaKernels::naive(),
    gemm(100, 101, 99, true, true),
    DType::F32
);
gpu_case!(
    tc_bf16_nn_aligned,
    CudaKernels::new(),
    gemm(256, 256, 512, false, false),
    DType::Bf16
);
gpu_case!(
    tc_bf16_nn_odd,
    CudaKernels::new(),
    gemm(1000, 1001, 999, false, false),
    DType::Bf16
);
gpu_case!(
    tc_bf16_nt_odd,
    CudaKernels::new(),
    gemm(131, 250, 77, false, true),
    DType::Bf16
);
gpu_case!(
    tc_bf16_tn_odd,
    CudaKernels::new(),
    gemm(1000, 1001, 999, true, false),
    DType::Bf16
);
gpu_case!(
    tc_bf16_tt_aligned,
    CudaKernels::new(),
    gemm(136, 264, 200, true, true),
    DType::Bf16
);
gpu_case!(
    tc_f16_nn_odd,
    CudaKernels::new(),
    gemm(97, 45, 301, false, false),
    DType::F16
);
gpu_case!(
    tc_f16_tt_aligned,
    CudaKernels::new(),
    gemm(128, 256, 64, true, true),
    DType::F16
);
gpu_case!(
    cublas_f32_nn_odd,
    Cublas,
    gemm(1000, 1001, 999, false, false),
    DType::F32
);
gpu_case!(
    cublas_f32_tn_odd,
    Cublas,
    gemm(1000, 1001, 999, true, false),
    DType::F32
);
gpu_case!(
    cublas_f32_nt_odd,
    Cublas,
    gemm(33, 65, 17, false, true),
    DType::F32
);
gpu_case!(
    cublas_bf16_tt,
    Cublas,
    gemm(64, 48, 80, true, true),
    DType::Bf16
);
gpu_case!(
    cublas_f16_nn,
    Cublas,
    gemm(64, 48, 80, false, false),
    DType::F16
);

// Conv forward: both tile widths, padding, stride, 1x1, output sizes with P·Q % 4 != 0.
gpu_case!(
    conv_fwd_bn64_odd,
    CudaKernels::new(),
    conv(2, 3, 9, 11, 5, 3, 3, 1, 2),
    DType::F32
);
gpu_case!(
    conv_fwd_bn128_odd,
    CudaKernels::new(),
    conv(3, 17, 7, 7, 130, 3, 3, 1, 1),
    DType::F32
);
gpu_case!(
    conv_fwd_1x1,
    CudaKernels::new(),
    conv(2, 64, 14, 14, 96, 1, 1, 0, 1),
    DType::F32
);
gpu_case!(
    conv_fwd_stem_like,
    CudaKernels::new(),
    conv(1, 3, 37, 41, 16, 7, 7, 3, 2),
    DType::F32
);
gpu_case!(
    conv_fwd_resnet_small,
    CudaKernels::new(),
    conv(2, 64, 14, 14, 64, 3, 3, 1, 1),
    DType::F32
);
gpu_case!(
    cudnn_fwd_odd,
    Cudnn,
    conv(2, 3, 9, 11, 5, 3, 3, 1, 2),
    DType::F32
);
gpu_case!(
    cudnn_fwd_resnet_small,
    Cudnn,
    conv(2, 64, 14, 14, 64, 3, 3, 1, 1),
    DType::F32
);

// RNN forward: every cell; H and B not multiples of the 16x32 tile.
gpu_case!(
    rnn_vanilla_odd,
    CudaKernels::new(),
    rnn(Cell::Vanilla, 37, 5, 4),
    DType::F32
);
gpu_case!(
    rnn_lstm_odd,
    CudaKernels::new(),
    rnn(Cell::Lstm, 37, 33, 3),
    DType::F32
);
gpu_case!(
    rnn_gru_odd,
    CudaKernels::new(),
    rnn(Cell::Gru, 50, 7, 3),
    DType::F32
);
gpu_case!(
    rnn_lstm_aligned,
    CudaKernels::new(),
    rnn(Cell::Lstm, 256, 64, 5),
    DType::F32
);

fn dot(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, &y)| x * y as f64).sum()
}

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let p = Params::Gemm(GemmParams {
        m: n,
        n: 1,
        k: 1,
        trans_a: false,
        trans_b: false,
    });
    generate_inputs(&p, DType::F32, seed)[0].data.clone()
}

/// Adjoint identities: <conv(x,w), dy> = <x, dX> = <w, dW> (conv is bilinear).
fn check_conv_backward(c: ConvParams) {
    let seed = fresh_seed();
    let p = Params::Conv2d(c);
    let inputs = generate_inputs(&p, DType::F32, seed);
    let (x, w) = (&inputs[0].data, &inputs[1].data);
    let dy = rand_vec(c.n * c.k * c.p() * c.q(), seed ^ 77);
    let y = reference::conv2d(&c, &inputs[0].to_f64(), &inputs[1].to_f64());
    let (dx, dw) = train::conv2d_backward(DEV, &c, x, w, &dy).unwrap();
    let lhs = dot(&y, &dy);
    let via_x = dot(&inputs[0].to_f64(), &dx);
    let via_w = dot(&inputs[1].to_f64(), &dw);
    let scale = y
        .iter()
        .zip(&dy)
        .map(|(a, &b)| (a * b as f64).abs())
        .sum::<f64>()
        .max(1e-30);
    assert!(
        (lhs - via_x).abs() / scale < 1e-4,
        "dX adjoint: {lhs} vs {via_x} (seed {seed})"
    );
    assert!(
        (lhs - via_w).abs() / scale < 1e-4,
        "dW adjoint: {lhs} vs {via_w} (seed {seed})"
    );
    assert!(
        dx.iter().chain(&dw).all(|v| v.is_finite()),
        "unwritten (NaN) gradient (seed {seed})"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn conv_backward_odd_strided() {
    check_conv_backward(ConvParams {
        n: 2,
        c: 3,
        h: 9,
        w: 11,
        k: 5,
        r: 3,
        s: 3,
        pad_h: 1,
        pad_w: 1,
        stride_h: 2,
        stride_w: 2,
    });
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn conv_backward_resnet_like() {
    check_conv_backward(ConvParams {
        n: 2,
        c: 64,
        h: 14,
        w: 14,
        k: 70,
        r: 3,
        s: 3,
        pad_h: 1,
        pad_w: 1,
        stride_h: 1,
        stride_w: 1,
    });
}

/// Directional derivative of L = <HS, dHS> along a random direction V over (xp, w, b, h0),
/// by central differences of the f64 reference, against the GPU gradients.
fn check_rnn_backward(r: RnnParams) {
    let seed = fresh_seed();
    let p = Params::Rnn(r);
    let inputs = generate_inputs(&p, DType::F32, seed);
    let dhs = rand_vec(r.steps * r.batch * r.hidden, seed ^ 99);
    let dirs: Vec<Vec<f32>> = (0..4)
        .map(|i| rand_vec(inputs[i].data.len(), seed ^ (1000 + i as u64)))
        .collect();
    let loss = |eps: f64| -> f64 {
        let mut v: Vec<Vec<f64>> = inputs.iter().map(HostTensor::to_f64).collect();
        for (i, d) in dirs.iter().enumerate() {
            for (x, &dv) in v[i].iter_mut().zip(d) {
                *x += eps * dv as f64;
            }
        }
        let hs = reference::rnn(&r, &v[0], &v[1], &v[2], &v[3], v.get(4).map(Vec::as_slice));
        dot(&hs, &dhs)
    };
    let eps = 1e-4;
    let fd = (loss(eps) - loss(-eps)) / (2.0 * eps);
    let refs: Vec<&[f32]> = inputs.iter().map(|t| t.data.as_slice()).collect();
    let gr = train::rnn_backward(DEV, &r, &refs, &dhs).unwrap();
    let hs_ref = reference::forward(
        &p,
        &inputs.iter().map(HostTensor::to_f64).collect::<Vec<_>>(),
    );
    assert!(
        rel_l2_error(&gr.hs, &hs_ref[0]) < 1e-4,
        "forward with saving differs (seed {seed})"
    );
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let an = dot(&to64(&dirs[0]), &gr.dxp)
        + dot(&to64(&dirs[1]), &gr.dw)
        + dot(&to64(&dirs[2]), &gr.db)
        + dot(&to64(&dirs[3]), &gr.dh0);
    assert!(
        (an - fd).abs() <= 1e-3 * fd.abs().max(1.0),
        "{r:?}: analytic {an} vs numeric {fd} (seed {seed})"
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn rnn_backward_vanilla() {
    check_rnn_backward(RnnParams {
        cell: Cell::Vanilla,
        hidden: 19,
        batch: 3,
        steps: 4,
    });
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn rnn_backward_lstm() {
    check_rnn_backward(RnnParams {
        cell: Cell::Lstm,
        hidden: 21,
        batch: 5,
        steps: 3,
    });
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn rnn_backward_gru() {
    check_rnn_backward(RnnParams {
        cell: Cell::Gru,
        hidden: 18,
        batch: 33,
        steps: 3,
    });
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn sgd_update_matches_host() {
    let w = rand_vec(1001, fresh_seed());
    let g = rand_vec(1001, fresh_seed() ^ 5);
    let out = train::sgd_update(DEV, &w, &g, 0.125).unwrap();
    for i in 0..w.len() {
        assert_eq!(out[i], (-0.125f32).mul_add(g[i], w[i]));
    }
}

/// One training step (`Mode::Train`) on the `cuda` backend against
/// `reference::train_step`: every output (`y`, each gradient, each updated weight) by relative
/// L2 error, on fresh seeded inputs with poisoned (NaN) outputs. Then a second call, which must
/// start from the weights the first one updated (as the reference backend does).
fn check_train(params: Params) {
    let seed = fresh_seed();
    let backend = CudaKernels::new();
    let case = Case {
        params,
        mode: Mode::Train,
        dtype: DType::F32,
        tag: None,
    };
    backend
        .supports(&case, DEV)
        .unwrap_or_else(|e| panic!("cuda does not support {case}: {e}"));
    let inputs = generate_case_inputs(&case, seed);
    let mut ins64: Vec<Vec<f64>> = inputs.iter().map(HostTensor::to_f64).collect();
    let mut run = backend
        .prepare(&case, DEV, &inputs)
        .unwrap_or_else(|e| panic!("prepare {case}: {e}"));
    let specs = case.output_specs();
    let n_grads = params.grad_inputs().len();
    let tol = DType::F32.tolerance();
    for call in 1..=2 {
        run.execute().unwrap();
        run.sync().unwrap();
        let out = run.outputs().unwrap();
        let want = reference::train_step(&params, &ins64);
        assert_eq!(out.len(), specs.len(), "{case}: output count");
        assert_eq!(want.len(), specs.len());
        for ((spec, o), w) in specs.iter().zip(&out).zip(&want) {
            assert_eq!(o.len(), spec.numel(), "{case}: `{}` length", spec.name);
            let err = rel_l2_error(o, w);
            assert!(
                err <= tol,
                "{case}, call {call}: `{}` rel L2 error {err:e} > {tol:e} (seed {seed})",
                spec.name
            );
        }
        // The reference's next step starts from its own updated weights.
        for (j, &wi) in params.weight_inputs().iter().enumerate() {
            ins64[wi].clone_from(&want[1 + n_grads + j]);
        }
    }
    let t = run.time_iters(3).unwrap();
    assert!(t.as_nanos() > 0, "event timing returned zero");
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn train_gemm_every_transpose() {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        // Neither M, N nor K a multiple of the 128x128x8 tile; dA/dB swap their roles.
        check_train(gemm(130, 67, 257, ta, tb));
        check_train(gemm(1, 129, 3, ta, tb));
    }
    for p in testing::shapes("gemm") {
        check_train(p);
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn train_conv2d_padding_and_stride() {
    // Asymmetric padding and stride, K > 64 (the 128-wide forward tile), non-square filter.
    check_train(Params::Conv2d(ConvParams {
        n: 2,
        c: 5,
        h: 11,
        w: 9,
        k: 70,
        r: 3,
        s: 2,
        pad_h: 2,
        pad_w: 1,
        stride_h: 2,
        stride_w: 3,
    }));
    check_train(conv(2, 3, 9, 11, 5, 3, 3, 1, 2));
    check_train(conv(2, 64, 14, 14, 64, 3, 3, 1, 1));
    for p in testing::shapes("conv2d") {
        check_train(p);
    }
}

fn train_rnn_cell(cell: Cell) {
    // T = 1 (only the last-step kernel), B over the 32-row tile, H over the 16-unit tile.
    for (hidden, batch, steps) in [(37, 5, 4), (18, 33, 3), (50, 7, 1), (13, 3, 4), (1, 1, 2)] {
        check_train(rnn(cell, hidden, batch, steps));
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn train_rnn_vanilla() {
    train_rnn_cell(Cell::Vanilla);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn train_rnn_lstm() {
    train_rnn_cell(Cell::Lstm);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn train_rnn_gru() {
    train_rnn_cell(Cell::Gru);
}

/// The training step through the real harness (verification of every output, then timing of
/// repeated calls): status Ok for one shape of each op.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn train_through_the_harness() {
    let flag = AtomicBool::new(false);
    let harness = Harness {
        cfg: HarnessConfig {
            warmup_s: 0.0,
            min_time_s: 0.0,
            min_samples: 2,
            bootstrap_resamples: 10,
            seed: fresh_seed(),
            ..Default::default()
        },
        interrupt: &flag,
    };
    for params in [
        gemm(33, 17, 9, true, true),
        testing::shapes("conv2d")[1],
        rnn(Cell::Lstm, 13, 3, 4),
    ] {
        let case = Case {
            params,
            mode: Mode::Train,
            dtype: DType::F32,
            tag: None,
        };
        let inputs = CaseInputs::new(case, &harness.cfg);
        let r = harness
            .run_case(&inputs, &CudaKernels::new(), DEV, None)
            .expect("not interrupted");
        assert_eq!(
            r.status,
            Status::Ok,
            "{}: {:?} {:?} (seed {})",
            r.id,
            r.reason,
            r.verification,
            harness.cfg.seed
        );
        let v = r.verification.expect("verified");
        assert_eq!(v.per_output.len(), inputs.case.output_specs().len());
    }
}

/// Runs everywhere: without a driver every backend reports why, and prepare returns
/// `Unavailable` instead of panicking.
#[test]
fn without_a_gpu_backends_explain_and_do_not_panic() {
    let have_gpu = wattbench_cuda::gpu::inventory().is_ok();
    let case = Case {
        params: gemm(4, 4, 4, false, false),
        mode: Mode::Infer,
        dtype: DType::F32,
        tag: None,
    };
    let inputs = generate_inputs(&case.params, DType::F32, 1);
    for b in wattbench_cuda::backends() {
        let devs = b.devices();
        assert!(!devs.is_empty());
        if !have_gpu {
            assert!(
                devs.iter()
                    .all(|d| !d.available && d.reason.as_deref().unwrap_or("").contains("libcuda")),
                "{devs:?}"
            );
            if b.supports(&case, DEV).is_ok() {
                match b.prepare(&case, DEV, &inputs) {
                    Err(BackendError::Unavailable(r)) => assert!(!r.is_empty()),
                    Err(e) => panic!("{}: expected Unavailable, got {e}", b.name()),
                    Ok(_) => panic!("{}: prepared without a GPU", b.name()),
                }
            }
        }
    }
}

/// Runs everywhere: training cases are declared supported only where they run (`cuda`, fp32),
/// and without a driver preparing one reports `Unavailable` instead of panicking.
#[test]
fn training_cases_are_declared_and_explain_a_missing_gpu() {
    let have_gpu = wattbench_cuda::gpu::inventory().is_ok();
    for params in [
        gemm(4, 3, 5, true, false),
        conv(1, 2, 5, 5, 3, 3, 3, 1, 1),
        rnn(Cell::Lstm, 4, 2, 3),
    ] {
        let case = Case {
            params,
            mode: Mode::Train,
            dtype: DType::F32,
            tag: None,
        };
        for b in wattbench_cuda::backends() {
            let ok = b.supports(&case, DEV);
            assert_eq!(
                ok.is_ok(),
                b.name() == "cuda",
                "{} {case}: {ok:?}",
                b.name()
            );
        }
        let bf16 = Case {
            dtype: DType::Bf16,
            ..case.clone()
        };
        assert!(CudaKernels::new().supports(&bf16, DEV).is_err());
        if !have_gpu {
            let inputs = generate_case_inputs(&case, 1);
            match CudaKernels::new().prepare(&case, DEV, &inputs) {
                Err(BackendError::Unavailable(r)) => assert!(!r.is_empty()),
                Err(e) => panic!("{case}: expected Unavailable, got {e}"),
                Ok(_) => panic!("{case}: prepared without a GPU"),
            }
        }
    }
}
