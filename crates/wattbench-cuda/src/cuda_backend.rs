//! The `cuda` backend (our kernels from `kernels/`) and `cuda-naive` (the naive GEMM
//! baseline).
//!
//! Training cases (`cuda`, fp32) run forward, backward and the SGD update as one plan on the
//! stream, as `wattbench_core::reference::train_step` defines them: outputs
//! `[y, gradients…, updated weights…]`, the weights updated in place so the next call uses
//! them.
use crate::buffers::{blocks, Arg, DevBuf, MAX_ELEMS};
use crate::error::CudaError;
use crate::gpu::{self, device_infos, Gpu, MemTracker};
use crate::kernels::{KernelId, TC_SMEM_BYTES};
use crate::loader::{nvrtc_probe, nvrtc_version};
use crate::plan::{Output, Plan, Step};
use crate::train::{
    conv2d_backward_steps, gemm_backward_steps, rnn_save_width, rnn_train_steps, sgd_step,
    RnnTrainPtrs,
};
use cudarc::driver::sys::CUfunction_attribute_enum;
use std::sync::Arc;
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams, SGD_LR};
use wattbench_core::{Backend, BackendError, Case, DType, DeviceInfo, Mode, Params, Prepared};

/// Our kernels. `naive` selects the naive GEMM (GEMM only) instead of the best kernel.
pub struct CudaKernels {
    naive: bool,
}

impl CudaKernels {
    /// The best kernel per case: tiled fp32 / tensor-core GEMM, implicit-GEMM conv, fused RNN.
    pub fn new() -> Self {
        Self { naive: false }
    }
    /// The naive GEMM baseline.
    pub fn naive() -> Self {
        Self { naive: true }
    }
}

impl Default for CudaKernels {
    fn default() -> Self {
        Self::new()
    }
}

fn lib_reason(e: CudaError) -> String {
    match e {
        CudaError::Unavailable(r) => r,
        e => e.to_string(),
    }
}

/// Versions worth recording for every CUDA backend.
pub(crate) fn cuda_versions() -> Vec<(String, String)> {
    let mut v = vec![("cudarc".to_string(), "0.19".to_string())];
    if let Some(d) = gpu::driver_version() {
        v.push(("cuda-driver".into(), d));
    }
    v
}

/// Checks shared by the CUDA backends: a CUDA device name and element counts our kernels can
/// index (every tensor of the case, with the training step's gradients).
pub(crate) fn common_supports(case: &Case, device: &str) -> Result<(), String> {
    gpu::parse_device(device)?;
    if case.op() == wattbench_core::Op::E2e {
        // A whole model has no kernel tensors (and no `dy`); the backends reject it.
        return Ok(());
    }
    for t in case.input_specs().iter().chain(case.output_specs().iter()) {
        if t.numel() > MAX_ELEMS {
            return Err(format!(
                "tensor `{}` has {} elements, over the 2^31-1 supported",
                t.name,
                t.numel()
            ));
        }
    }
    Ok(())
}

/// For backends that run the forward pass only: training cases are unsupported.
pub(crate) fn inference_only(case: &Case, backend: &str) -> Result<(), String> {
    if case.mode == Mode::Train {
        return Err(format!(
            "the {backend} backend runs inference only (training steps run on `cuda`)"
        ));
    }
    Ok(())
}

impl Backend for CudaKernels {
    fn name(&self) -> &'static str {
        if self.naive {
            "cuda-naive"
        } else {
            "cuda"
        }
    }

    fn devices(&self) -> Vec<DeviceInfo> {
        device_infos(|| nvrtc_probe().map_err(lib_reason))
    }

    fn versions(&self) -> Vec<(String, String)> {
        let mut v = cuda_versions();
        if let Ok((a, b)) = nvrtc_version() {
            v.push(("nvrtc".into(), format!("{a}.{b}")));
        }
        v
    }

    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        common_supports(case, device)?;
        if case.mode == Mode::Train {
            if self.naive {
                return Err(
                    "cuda-naive is the forward GEMM baseline; training steps run on `cuda`".into(),
                );
            }
            if case.op() == wattbench_core::Op::E2e {
                return Err(E2E_ELSEWHERE.into());
            }
            if case.dtype != DType::F32 {
                return Err(format!(
                    "training steps are fp32 only (the backward kernels are fp32), not {}",
                    case.dtype.as_str()
                ));
            }
            return Ok(());
        }
        match (case.op(), case.dtype, self.naive) {
            (wattbench_core::Op::Gemm, DType::F32, _) => Ok(()),
            (wattbench_core::Op::Gemm, _, false) => {
                let arch = gpu::inventory().ok().and_then(|g| {
                    g.iter()
                        .find(|g| format!("cuda:{}", g.ordinal) == device)
                        .map(|g| g.arch())
                });
                match arch {
                    Some(a) if a < 80 => Err(format!(
                        "the tensor-core GEMM needs sm_80+, {device} is sm_{a}"
                    )),
                    _ => Ok(()),
                }
            }
            (wattbench_core::Op::Gemm, d, true) => Err(format!(
                "the naive GEMM baseline is fp32 only, not {}",
                d.as_str()
            )),
            (_, _, true) => Err("cuda-naive has only the GEMM baseline".into()),
            (_, DType::F32, false) => Ok(()),
            (op, d, false) => Err(format!(
                "{} kernels are fp32 only, not {}",
                op.as_str(),
                d.as_str()
            )),
        }
    }

    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        let name = self.name();
        self.supports(case, device)
            .map_err(BackendError::Unsupported)?;
        if let Params::E2e(_) = case.params {
            return Err(BackendError::Unsupported(E2E_ELSEWHERE.into()));
        }
        let specs = case.input_specs();
        if inputs.len() != specs.len()
            || inputs
                .iter()
                .zip(&specs)
                .any(|(t, s)| t.data.len() != s.numel())
        {
            return Err(BackendError::failed(
                name,
                format!(
                    "{case}: expected {} inputs of {:?} elements",
                    specs.len(),
                    specs.iter().map(|s| s.numel()).collect::<Vec<_>>()
                ),
            ));
        }
        let g = gpu::gpu(device).map_err(|e| e.into_backend(name))?;
        let train = case.mode == Mode::Train;
        let plan = match case.params {
            Params::Gemm(p) if train => gemm_train_plan(&g, name, &p, inputs),
            Params::Conv2d(p) if train => conv_train_plan(&g, name, &p, inputs),
            Params::Rnn(p) if train => rnn_train_plan(&g, name, &p, inputs),
            Params::Gemm(p) => gemm_plan(&g, name, &p, case.dtype, self.naive, inputs),
            Params::Conv2d(p) => conv_fwd_plan(&g, name, &p, inputs),
            Params::Rnn(p) => rnn_fwd_plan(&g, name, &p, inputs),
            Params::E2e(_) => return Err(BackendError::Unsupported(E2E_ELSEWHERE.into())),
        }
        .map_err(|e| e.into_backend(name))?;
        Ok(Box::new(plan))
    }
}

/// Why `Params::E2e` is not a kernel case here.
const E2E_ELSEWHERE: &str = "e2e training runs go through `wattbench train` (wattbench-train)";

fn upload_all(g: &Gpu, inputs: &[HostTensor], dtype: DType) -> Result<Vec<DevBuf>, CudaError> {
    inputs
        .iter()
        .map(|t| DevBuf::upload(g, &t.data, dtype))
        .collect()
}

/// Entry-point suffix for the transposes.
pub fn transpose_suffix(p: &GemmParams) -> &'static str {
    match (p.trans_a, p.trans_b) {
        (false, false) => "nn",
        (false, true) => "nt",
        (true, false) => "tn",
        (true, true) => "tt",
    }
}

/// A launch's grid or block dimensions.
pub type Dim3 = (u32, u32, u32);

/// Kernel name, grid, block and dynamic shared memory of the GEMM for `p` in `dtype`.
pub fn gemm_launch_shape(p: &GemmParams, dtype: DType, naive: bool) -> (String, Dim3, Dim3, u32) {
    let t = transpose_suffix(p);
    match (dtype, naive) {
        (DType::F32, true) => (
            format!("gemm_naive_f32_{t}"),
            (blocks(p.n, 16), blocks(p.m, 16), 1),
            (16, 16, 1),
            0,
        ),
        (DType::F32, false) => (
            format!("gemm_tiled_f32_{t}"),
            (blocks(p.n, 128), blocks(p.m, 128), 1),
            (256, 1, 1),
            0,
        ),
        (d, _) => (
            format!(
                "gemm_tc_{}_{t}",
                if d == DType::Bf16 { "bf16" } else { "f16" }
            ),
            (blocks(p.n, 128), blocks(p.m, 128), 1),
            (256, 1, 1),
            TC_SMEM_BYTES,
        ),
    }
}

fn gemm_plan(
    g: &Arc<Gpu>,
    backend: &'static str,
    p: &GemmParams,
    dtype: DType,
    naive: bool,
    inputs: &[HostTensor],
) -> Result<Plan, CudaError> {
    let mem = MemTracker::start(g);
    let (entry, grid, block, smem) = gemm_launch_shape(p, dtype, naive);
    let f = g.function(KernelId::Gemm, &entry)?;
    if smem > 48 * 1024 {
        f.set_attribute(
            CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem as i32,
        )
        .map_err(|e| CudaError::lib("cuFuncSetAttribute (dynamic shared memory)", e))?;
    }
    let mut bufs = upload_all(g, inputs, dtype)?;
    bufs.push(DevBuf::poisoned(g, p.m * p.n, dtype)?);
    let args = vec![
        Arg::Ptr(bufs[0].ptr(g)),
        Arg::Ptr(bufs[1].ptr(g)),
        Arg::Ptr(bufs[2].ptr(g)),
        Arg::I32(p.m as i32),
        Arg::I32(p.n as i32),
        Arg::I32(p.k as i32),
    ];
    let steps = vec![Step::Launch {
        f,
        grid,
        block,
        smem,
        args,
    }];
    Ok(Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![Output::whole(2)],
        backend,
        mem,
    })
}

/// The 13 shape arguments every conv kernel takes.
pub fn conv_shape_args(c: &ConvParams) -> Vec<Arg> {
    [
        c.n,
        c.c,
        c.h,
        c.w,
        c.k,
        c.r,
        c.s,
        c.p(),
        c.q(),
        c.pad_h,
        c.pad_w,
        c.stride_h,
        c.stride_w,
    ]
    .iter()
    .map(|&v| Arg::I32(v as i32))
    .collect()
}

/// Forward conv kernel for `c`: the 64-wide tile when K <= 64 (no half-empty tiles).
pub fn conv_fwd_launch_shape(c: &ConvParams) -> (&'static str, (u32, u32, u32)) {
    let m = c.n * c.p() * c.q();
    if c.k <= 64 {
        ("conv2d_fwd_f32_bn64", (blocks(m, 128), blocks(c.k, 64), 1))
    } else {
        (
            "conv2d_fwd_f32_bn128",
            (blocks(m, 128), blocks(c.k, 128), 1),
        )
    }
}

fn conv_fwd_plan(
    g: &Arc<Gpu>,
    backend: &'static str,
    c: &ConvParams,
    inputs: &[HostTensor],
) -> Result<Plan, CudaError> {
    let mem = MemTracker::start(g);
    let (entry, grid) = conv_fwd_launch_shape(c);
    let f = g.function(KernelId::Conv, entry)?;
    let mut bufs = upload_all(g, inputs, DType::F32)?;
    bufs.push(DevBuf::poisoned(g, c.n * c.k * c.p() * c.q(), DType::F32)?);
    let mut args = vec![
        Arg::Ptr(bufs[0].ptr(g)),
        Arg::Ptr(bufs[1].ptr(g)),
        Arg::Ptr(bufs[2].ptr(g)),
    ];
    args.extend(conv_shape_args(c));
    let steps = vec![Step::Launch {
        f,
        grid,
        block: (256, 1, 1),
        smem: 0,
        args,
    }];
    Ok(Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![Output::whole(2)],
        backend,
        mem,
    })
}

/// Grid of the RNN step kernels (forward and backward).
pub fn rnn_grid(r: &RnnParams) -> (u32, u32, u32) {
    (blocks(r.hidden, 16), blocks(r.batch, 32), 1)
}

fn rnn_fwd_plan(
    g: &Arc<Gpu>,
    backend: &'static str,
    r: &RnnParams,
    inputs: &[HostTensor],
) -> Result<Plan, CudaError> {
    let mem = MemTracker::start(g);
    let (h, b, t) = (r.hidden, r.batch, r.steps);
    let entry = format!("rnn_fwd_{}", r.cell.as_str());
    let f = g.function(KernelId::Rnn, &entry)?;
    // bufs: xp, w, b, h0, [c0], hs, [c]
    let mut bufs = upload_all(g, inputs, DType::F32)?;
    let hs = bufs.len();
    bufs.push(DevBuf::poisoned(g, t * b * h, DType::F32)?);
    let cbuf = if r.cell == Cell::Lstm {
        bufs.push(DevBuf::zeros(g, b * h, DType::F32)?);
        Some(bufs.len() - 1)
    } else {
        None
    };
    let p = |i: usize| bufs[i].ptr(g);
    let (xp, w, bias, h0, hs_p) = (p(0), p(1), p(2), p(3), p(hs));
    let gh = r.cell.gates() * h;
    let mut steps = Vec::with_capacity(t + 1);
    if let Some(c) = cbuf {
        steps.push(Step::Copy {
            dst: p(c),
            src: p(4),
            bytes: b * h * 4,
        });
    }
    for s in 0..t {
        let prev = if s == 0 {
            h0
        } else {
            hs_p + ((s - 1) * b * h * 4) as u64
        };
        let out = hs_p + (s * b * h * 4) as u64;
        let x = xp + (s * b * gh * 4) as u64;
        let mut args = vec![
            Arg::Ptr(x),
            Arg::Ptr(w),
            Arg::Ptr(bias),
            Arg::Ptr(prev),
            Arg::Ptr(out),
        ];
        match r.cell {
            Cell::Vanilla => {}
            Cell::Lstm => args.extend([Arg::Ptr(p(cbuf.unwrap_or(0))), Arg::Ptr(0)]),
            Cell::Gru => args.push(Arg::Ptr(0)),
        }
        args.extend([Arg::I32(b as i32), Arg::I32(h as i32)]);
        steps.push(Step::Launch {
            f: f.clone(),
            grid: rnn_grid(r),
            block: (128, 1, 1),
            smem: 0,
            args,
        });
    }
    Ok(Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![Output::whole(hs)],
        backend,
        mem,
    })
}

/// Learning rate of the SGD update, as the kernel takes it.
fn sgd_lr() -> f32 {
    SGD_LR as f32
}

/// GEMM training step: `C = op(A)·op(B)`, `dA`, `dB` (tiled fp32 GEMMs on the stored
/// layouts), then `B -= lr·dB`. Outputs `[c, da, db, b_new]`.
fn gemm_train_plan(
    g: &Arc<Gpu>,
    backend: &'static str,
    p: &GemmParams,
    inputs: &[HostTensor],
) -> Result<Plan, CudaError> {
    let mem = MemTracker::start(g);
    let (entry, grid, block, smem) = gemm_launch_shape(p, DType::F32, false);
    let f = g.function(KernelId::Gemm, &entry)?;
    // bufs: 0 a, 1 b, 2 dc, 3 c, 4 da, 5 db
    let mut bufs = upload_all(g, inputs, DType::F32)?;
    bufs.push(DevBuf::poisoned(g, p.m * p.n, DType::F32)?);
    bufs.push(DevBuf::poisoned(g, p.m * p.k, DType::F32)?);
    bufs.push(DevBuf::poisoned(g, p.k * p.n, DType::F32)?);
    let ptr: Vec<u64> = bufs.iter().map(|b| b.ptr(g)).collect();
    let mut steps = vec![Step::Launch {
        f,
        grid,
        block,
        smem,
        args: vec![
            Arg::Ptr(ptr[0]),
            Arg::Ptr(ptr[1]),
            Arg::Ptr(ptr[3]),
            Arg::I32(p.m as i32),
            Arg::I32(p.n as i32),
            Arg::I32(p.k as i32),
        ],
    }];
    steps.extend(gemm_backward_steps(
        g, p, ptr[0], ptr[1], ptr[2], ptr[4], ptr[5],
    )?);
    steps.push(sgd_step(g, ptr[1], ptr[5], p.k * p.n, sgd_lr())?);
    Ok(Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: [3, 4, 5, 1].map(Output::whole).to_vec(),
        backend,
        mem,
    })
}

/// Conv2d training step: forward, backward-data, backward-filter, then `W -= lr·dW`. Outputs
/// `[y, dx, dw, w_new]`.
fn conv_train_plan(
    g: &Arc<Gpu>,
    backend: &'static str,
    c: &ConvParams,
    inputs: &[HostTensor],
) -> Result<Plan, CudaError> {
    let mem = MemTracker::start(g);
    let (entry, grid) = conv_fwd_launch_shape(c);
    let f = g.function(KernelId::Conv, entry)?;
    let w_len = c.k * c.c * c.r * c.s;
    // bufs: 0 x, 1 w, 2 dy, 3 y, 4 dx, 5 dw
    let mut bufs = upload_all(g, inputs, DType::F32)?;
    bufs.push(DevBuf::poisoned(g, c.n * c.k * c.p() * c.q(), DType::F32)?);
    bufs.push(DevBuf::poisoned(g, c.n * c.c * c.h * c.w, DType::F32)?);
    bufs.push(DevBuf::poisoned(g, w_len, DType::F32)?);
    let ptr: Vec<u64> = bufs.iter().map(|b| b.ptr(g)).collect();
    let mut args = vec![Arg::Ptr(ptr[0]), Arg::Ptr(ptr[1]), Arg::Ptr(ptr[3])];
    args.extend(conv_shape_args(c));
    let mut steps = vec![Step::Launch {
        f,
        grid,
        block: (256, 1, 1),
        smem: 0,
        args,
    }];
    steps.extend(conv2d_backward_steps(
        g, c, ptr[0], ptr[1], ptr[2], ptr[4], ptr[5],
    )?);
    steps.push(sgd_step(g, ptr[1], ptr[5], w_len, sgd_lr())?);
    Ok(Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: [3, 4, 5, 1].map(Output::whole).to_vec(),
        backend,
        mem,
    })
}

/// RNN training step: forward with state saving, backward through time, `dW`/`db`, then
/// `W -= lr·dW` and `b -= lr·db`. Outputs `[hs, dxp, dw, db, w_new, b_new]`; no gradient of
/// the initial states.
fn rnn_train_plan(
    g: &Arc<Gpu>,
    backend: &'static str,
    r: &RnnParams,
    inputs: &[HostTensor],
) -> Result<Plan, CudaError> {
    let mem = MemTracker::start(g);
    let (h, b, t) = (r.hidden, r.batch, r.steps);
    let (gh, bh) = (r.cell.gates() * h, b * h);
    let lstm = r.cell == Cell::Lstm;
    // bufs: 0 xp, 1 w, 2 b, 3 h0, [4 c0], dhs, then the work buffers below.
    let mut bufs = upload_all(g, inputs, DType::F32)?;
    let dhs = bufs.len() - 1;
    let mut push = |buf: DevBuf| {
        bufs.push(buf);
        bufs.len() - 1
    };
    let hfull = push(DevBuf::poisoned(g, (t + 1) * bh, DType::F32)?);
    let cstate = push(DevBuf::zeros(g, if lstm { bh } else { 1 }, DType::F32)?);
    let save = push(DevBuf::zeros(
        g,
        (t * b * rnn_save_width(r)).max(1),
        DType::F32,
    )?);
    let dxp = push(DevBuf::poisoned(g, t * b * gh, DType::F32)?);
    let drec = if r.cell == Cell::Gru {
        push(DevBuf::poisoned(g, t * b * gh, DType::F32)?)
    } else {
        dxp
    };
    let carry = push(DevBuf::zeros(g, bh, DType::F32)?);
    let dw = push(DevBuf::poisoned(g, h * gh, DType::F32)?);
    let db = push(DevBuf::poisoned(g, gh, DType::F32)?);
    let ptr = |i: usize| bufs[i].ptr(g);
    let ptrs = RnnTrainPtrs {
        xp: ptr(0),
        w: ptr(1),
        b: ptr(2),
        h0: ptr(3),
        c0: lstm.then(|| ptr(4)),
        hfull: ptr(hfull),
        c: ptr(cstate),
        save: ptr(save),
        dhs: ptr(dhs),
        dxp: ptr(dxp),
        drec: ptr(drec),
        carry: ptr(carry),
        dw: ptr(dw),
        db: ptr(db),
    };
    let mut steps = rnn_train_steps(g, r, &ptrs, None)?;
    steps.push(sgd_step(g, ptrs.w, ptrs.dw, h * gh, sgd_lr())?);
    steps.push(sgd_step(g, ptrs.b, ptrs.db, gh, sgd_lr())?);
    Ok(Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![
            Output::part(hfull, bh, t * bh),
            Output::whole(dxp),
            Output::whole(dw),
            Output::whole(db),
            Output::whole(1),
            Output::whole(2),
        ],
        backend,
        mem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_shapes_cover_odd_sizes() {
        let p = GemmParams {
            m: 1000,
            n: 1001,
            k: 999,
            trans_a: true,
            trans_b: false,
        };
        let (e, grid, _, smem) = gemm_launch_shape(&p, DType::Bf16, false);
        assert_eq!(e, "gemm_tc_bf16_tn");
        assert_eq!(grid, (8, 8, 1));
        assert_eq!(smem, TC_SMEM_BYTES);
        let (e, grid, block, _) = gemm_launch_shape(&p, DType::F32, true);
        assert_eq!(
            (e.as_str(), grid, block),
            ("gemm_naive_f32_tn", (63, 63, 1), (16, 16, 1))
        );
        let c = ConvParams {
            n: 2,
            c: 3,
            h: 7,
            w: 7,
            k: 65,
            r: 3,
            s: 3,
            pad_h: 1,
            pad_w: 1,
            stride_h: 2,
            stride_w: 2,
        };
        assert_eq!(
            conv_fwd_launch_shape(&c),
            ("conv2d_fwd_f32_bn128", (1, 1, 1))
        );
        assert_eq!(conv_shape_args(&c).len(), 13);
    }

    #[test]
    fn every_launched_entry_point_exists() {
        let gemm = KernelId::Gemm.entry_points();
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let p = GemmParams {
                m: 1,
                n: 1,
                k: 1,
                trans_a: ta,
                trans_b: tb,
            };
            for (d, naive) in [
                (DType::F32, true),
                (DType::F32, false),
                (DType::Bf16, false),
                (DType::F16, false),
            ] {
                assert!(gemm.contains(&gemm_launch_shape(&p, d, naive).0));
            }
        }
        let rnn = KernelId::Rnn.entry_points();
        for c in [Cell::Vanilla, Cell::Lstm, Cell::Gru] {
            for kind in ["fwd", "bwd", "bwd_last"] {
                assert!(rnn.contains(&format!("rnn_{kind}_{}", c.as_str())));
            }
        }
        // The training steps' GEMMs (every transpose combination of dA and dB).
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let p = GemmParams {
                m: 3,
                n: 5,
                k: 7,
                trans_a: ta,
                trans_b: tb,
            };
            for l in crate::train::gemm_backward_launches(&p) {
                assert!(gemm.contains(&gemm_launch_shape(&l.shape, DType::F32, false).0));
            }
        }
        assert!(gemm.contains(&"gemm_tiled_f32_tn".to_string()));
        let conv = KernelId::Conv.entry_points();
        for e in ["conv2d_bwd_data_f32", "conv2d_bwd_filter_f32"] {
            assert!(conv.contains(&e.to_string()));
        }
        let ew = KernelId::Elementwise.entry_points();
        for e in ["sgd_update_f32", "colsum_f32"] {
            assert!(ew.contains(&e.to_string()));
        }
    }

    #[test]
    fn supports_explains_unsupported_cases() {
        let case = |params, dtype, mode| Case {
            params,
            mode,
            dtype,
            tag: None,
        };
        let conv = Params::Conv2d(ConvParams {
            n: 1,
            c: 1,
            h: 3,
            w: 3,
            k: 1,
            r: 1,
            s: 1,
            pad_h: 0,
            pad_w: 0,
            stride_h: 1,
            stride_w: 1,
        });
        let gemm = Params::Gemm(GemmParams {
            m: 2,
            n: 2,
            k: 2,
            trans_a: false,
            trans_b: false,
        });
        let rnn = Params::Rnn(RnnParams {
            cell: Cell::Gru,
            hidden: 3,
            batch: 2,
            steps: 2,
        });
        let be = CudaKernels::new();
        assert!(be
            .supports(&case(conv, DType::Bf16, Mode::Infer), "cuda:0")
            .unwrap_err()
            .contains("fp32 only"));
        assert!(be
            .supports(&case(gemm, DType::F32, Mode::Infer), "cpu")
            .unwrap_err()
            .contains("cuda:N"));
        // Training: fp32 on `cuda` only; the baseline and the vendor yardsticks are forward
        // only.
        for p in [gemm, conv, rnn] {
            assert_eq!(
                be.supports(&case(p, DType::F32, Mode::Train), "cuda:0"),
                Ok(())
            );
            for d in [DType::Bf16, DType::F16] {
                assert!(be
                    .supports(&case(p, d, Mode::Train), "cuda:0")
                    .unwrap_err()
                    .contains("fp32 only"));
            }
        }
        let e2e = Params::E2e(wattbench_core::workload::E2eParams {
            model: wattbench_core::workload::E2eModel::Mlp,
            batch: 2,
            steps: 2,
            forward_flops: 1,
            step_flops: 3,
        });
        assert!(be
            .supports(&case(e2e, DType::F32, Mode::Train), "cuda:0")
            .unwrap_err()
            .contains("wattbench train"));
        assert!(CudaKernels::naive()
            .supports(&case(gemm, DType::F32, Mode::Train), "cuda:0")
            .unwrap_err()
            .contains("training"));
        assert!(crate::Cublas
            .supports(&case(gemm, DType::F32, Mode::Train), "cuda:0")
            .unwrap_err()
            .contains("inference only"));
        assert!(crate::Cudnn
            .supports(&case(conv, DType::F32, Mode::Train), "cuda:0")
            .unwrap_err()
            .contains("inference only"));
        assert!(CudaKernels::naive()
            .supports(&case(conv, DType::F32, Mode::Infer), "cuda:0")
            .is_err());
        assert!(CudaKernels::naive()
            .supports(&case(gemm, DType::F32, Mode::Infer), "cuda:0")
            .is_ok());
    }
}
