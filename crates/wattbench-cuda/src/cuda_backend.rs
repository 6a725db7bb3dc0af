//! The `cuda` backend (our kernels from `kernels/`) and `cuda-naive` (the naive GEMM
//! baseline).
use crate::buffers::{blocks, Arg, DevBuf, MAX_ELEMS};
use crate::error::CudaError;
use crate::gpu::{self, device_infos, Gpu, MemTracker};
use crate::kernels::{KernelId, TC_SMEM_BYTES};
use crate::loader::{nvrtc_probe, nvrtc_version};
use crate::plan::{Plan, Step};
use cudarc::driver::sys::CUfunction_attribute_enum;
use std::sync::Arc;
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
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
/// index.
pub(crate) fn common_supports(case: &Case, device: &str) -> Result<(), String> {
    gpu::parse_device(device)?;
    for t in case
        .params
        .inputs()
        .iter()
        .chain(case.params.outputs().iter())
    {
        if t.numel() > MAX_ELEMS {
            return Err(format!(
                "tensor `{}` has {} elements, over the 2^31-1 supported",
                t.name,
                t.numel()
            ));
        }
    }
    if case.mode != Mode::Infer {
        return Err(
            "training mode is not wired up yet (conv/RNN backward and SGD kernels exist; \
                    the harness does not define training outputs)"
                .into(),
        );
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
        let g = gpu::gpu(device).map_err(|e| e.into_backend(name))?;
        let plan = match case.params {
            Params::Gemm(p) => gemm_plan(&g, name, &p, case.dtype, self.naive, inputs),
            Params::Conv2d(p) => conv_fwd_plan(&g, name, &p, inputs),
            Params::Rnn(p) => rnn_fwd_plan(&g, name, &p, inputs),
            Params::E2e(_) => {
                return Err(BackendError::Unsupported(
                    "e2e training runs go through `wattbench train` (wattbench-train)".into(),
                ))
            }
        }
        .map_err(|e| e.into_backend(name))?;
        Ok(Box::new(plan))
    }
}

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
        outputs: vec![2],
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
        outputs: vec![2],
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
        outputs: vec![hs],
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
            assert!(rnn.contains(&format!("rnn_fwd_{}", c.as_str())));
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
        let be = CudaKernels::new();
        assert!(be
            .supports(&case(conv, DType::Bf16, Mode::Infer), "cuda:0")
            .unwrap_err()
            .contains("fp32 only"));
        assert!(be
            .supports(&case(gemm, DType::F32, Mode::Infer), "cpu")
            .unwrap_err()
            .contains("cuda:N"));
        assert!(be
            .supports(&case(gemm, DType::F32, Mode::Train), "cuda:0")
            .unwrap_err()
            .contains("training"));
        assert!(CudaKernels::naive()
            .supports(&case(conv, DType::F32, Mode::Infer), "cuda:0")
            .is_err());
        assert!(CudaKernels::naive()
            .supports(&case(gemm, DType::F32, Mode::Infer), "cuda:0")
            .is_ok());
    }
}
