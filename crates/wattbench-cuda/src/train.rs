//! Host drivers for the training kernels (conv backward-data/backward-filter, RNN backward
//! through time, SGD), returning gradients to the host. Used by the GPU tests now, and by the
//! `cuda` backend's training mode once the harness defines training outputs.
use crate::buffers::{blocks, Arg, DevBuf, RnnBwdArgs};
use crate::cuda_backend::{conv_shape_args, rnn_grid};
use crate::error::CudaError;
use crate::gpu::{self, MemTracker};
use crate::kernels::KernelId;
use crate::plan::{Plan, Step};
use wattbench_core::workload::{Cell, ConvParams, RnnParams};
use wattbench_core::DType;

fn f32buf(g: &gpu::Gpu, data: &[f32]) -> Result<DevBuf, CudaError> {
    DevBuf::upload(g, data, DType::F32)
}

/// Conv2d gradients: `(dX, dW)` for output gradient `dy`.
pub fn conv2d_backward(
    device: &str,
    c: &ConvParams,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> Result<(Vec<f32>, Vec<f32>), CudaError> {
    let g = gpu::gpu(device)?;
    let mem = MemTracker::start(&g);
    let bufs = vec![
        f32buf(&g, x)?,
        f32buf(&g, w)?,
        f32buf(&g, dy)?,
        DevBuf::poisoned(&g, x.len(), DType::F32)?,
        DevBuf::poisoned(&g, w.len(), DType::F32)?,
    ];
    let p: Vec<u64> = bufs.iter().map(|b| b.ptr(&g)).collect();
    let (crs, npq) = (c.c * c.r * c.s, c.n * c.p() * c.q());
    // Split the N·P·Q reduction so that about 2 blocks per SM-ish run even for small K·CRS.
    let tiles = blocks(c.k, 128) * blocks(crs, 64);
    let splits = (264 / tiles.max(1)).clamp(1, blocks(npq, 16 * 8).max(1));
    let mut dargs = vec![Arg::Ptr(p[2]), Arg::Ptr(p[1]), Arg::Ptr(p[3])];
    dargs.extend(conv_shape_args(c));
    let mut fargs = vec![Arg::Ptr(p[0]), Arg::Ptr(p[2]), Arg::Ptr(p[4])];
    fargs.extend(conv_shape_args(c));
    let steps = vec![
        Step::Launch {
            f: g.function(KernelId::Conv, "conv2d_bwd_data_f32")?,
            grid: (blocks(c.n * c.h * c.w, 128), blocks(c.c, 64), 1),
            block: (256, 1, 1),
            smem: 0,
            args: dargs,
        },
        Step::Zero {
            dst: p[4],
            bytes: w.len() * 4,
        },
        Step::Launch {
            f: g.function(KernelId::Conv, "conv2d_bwd_filter_f32")?,
            grid: (blocks(c.k, 128), blocks(crs, 64), splits),
            block: (256, 1, 1),
            smem: 0,
            args: fargs,
        },
    ];
    let plan = Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![3, 4],
        backend: "cuda",
        mem,
    };
    plan.run()?;
    g.sync()?;
    Ok((plan.bufs[3].download(&g)?, plan.bufs[4].download(&g)?))
}

/// Gradients of `Σ HS ⊙ dHS` with respect to an RNN's inputs.
#[derive(Debug, Clone)]
pub struct RnnGrads {
    /// Forward output HS[T,B,H] (recomputed with state saving).
    pub hs: Vec<f32>,
    /// dXP[T,B,G·H].
    pub dxp: Vec<f32>,
    /// dW[H,G·H].
    pub dw: Vec<f32>,
    /// db[G·H].
    pub db: Vec<f32>,
    /// dh0[B,H].
    pub dh0: Vec<f32>,
}

/// Forward with state saving, then backward through time. `inputs` as in the workload:
/// xp, w, b, h0 (, c0 for LSTM); `dhs` is the gradient of HS.
pub fn rnn_backward(
    device: &str,
    r: &RnnParams,
    inputs: &[&[f32]],
    dhs: &[f32],
) -> Result<RnnGrads, CudaError> {
    let g = gpu::gpu(device)?;
    let mem = MemTracker::start(&g);
    let (h, b, t, gates) = (r.hidden, r.batch, r.steps, r.cell.gates());
    let (gh, bh) = (gates * h, b * h);
    let save_w = match r.cell {
        Cell::Vanilla => 0,
        Cell::Lstm => 5 * h,
        Cell::Gru => 4 * h,
    };
    let c0 = if r.cell == Cell::Lstm {
        inputs[4].to_vec()
    } else {
        vec![0.0; bh]
    };
    // 0 xp, 1 w, 2 b, 3 h0, 4 c0, 5 hfull, 6 c, 7 save, 8 dhs, 9 dxp, 10 drec, 11 carry, 12 dh0, 13 dw, 14 db
    let bufs = vec![
        f32buf(&g, inputs[0])?,
        f32buf(&g, inputs[1])?,
        f32buf(&g, inputs[2])?,
        f32buf(&g, inputs[3])?,
        f32buf(&g, &c0)?,
        DevBuf::poisoned(&g, (t + 1) * bh, DType::F32)?,
        DevBuf::zeros(&g, bh, DType::F32)?,
        DevBuf::zeros(&g, (t * b * save_w).max(1), DType::F32)?,
        f32buf(&g, dhs)?,
        DevBuf::poisoned(&g, t * b * gh, DType::F32)?,
        DevBuf::poisoned(&g, t * b * gh, DType::F32)?,
        DevBuf::zeros(&g, bh, DType::F32)?,
        DevBuf::poisoned(&g, bh, DType::F32)?,
        DevBuf::poisoned(&g, h * gh, DType::F32)?,
        DevBuf::poisoned(&g, gh, DType::F32)?,
    ];
    let p: Vec<u64> = bufs.iter().map(|x| x.ptr(&g)).collect();
    let off = |base: usize, elems: usize| p[base] + (elems * 4) as u64;
    let (bi, hi) = (Arg::I32(b as i32), Arg::I32(h as i32));
    let cell = r.cell.as_str();
    let fwd = g.function(KernelId::Rnn, &format!("rnn_fwd_{cell}"))?;
    let bwd = g.function(KernelId::Rnn, &format!("rnn_bwd_{cell}"))?;
    let last = g.function(KernelId::Rnn, &format!("rnn_bwd_last_{cell}"))?;
    let grid = rnn_grid(r);
    let mut steps = vec![
        Step::Copy {
            dst: p[5],
            src: p[3],
            bytes: bh * 4,
        },
        Step::Copy {
            dst: p[6],
            src: p[4],
            bytes: bh * 4,
        },
        Step::Zero {
            dst: p[11],
            bytes: bh * 4,
        },
    ];
    for s in 0..t {
        let mut args = vec![
            Arg::Ptr(off(0, s * b * gh)),
            Arg::Ptr(p[1]),
            Arg::Ptr(p[2]),
            Arg::Ptr(off(5, s * bh)),
            Arg::Ptr(off(5, (s + 1) * bh)),
        ];
        match r.cell {
            Cell::Vanilla => {}
            Cell::Lstm => args.extend([Arg::Ptr(p[6]), Arg::Ptr(off(7, s * b * save_w))]),
            Cell::Gru => args.push(Arg::Ptr(off(7, s * b * save_w))),
        }
        args.extend([bi, hi]);
        steps.push(Step::Launch {
            f: fwd.clone(),
            grid,
            block: (128, 1, 1),
            smem: 0,
            args,
        });
    }
    let drec = if r.cell == Cell::Gru { 10 } else { 9 };
    let step_args = |s: usize| RnnBwdArgs {
        hs: match r.cell {
            Cell::Gru => off(5, s * bh),
            _ => off(5, (s + 1) * bh),
        },
        save: off(7, s * b * save_w),
        cprev: if s == 0 {
            p[4]
        } else {
            off(7, (s - 1) * b * save_w + 4 * h)
        },
        cprev_pitch: if s == 0 { h as i32 } else { save_w as i32 },
        dxp: off(9, s * b * gh),
        drec: off(drec, s * b * gh),
        carry: p[11],
    };
    let direct = if r.cell == Cell::Gru { p[11] } else { 0 };
    steps.push(Step::Launch {
        f: last,
        grid: (blocks(bh, 256), 1, 1),
        block: (256, 1, 1),
        smem: 0,
        args: vec![
            Arg::Ptr(off(8, (t - 1) * bh)),
            Arg::RnnBwd(step_args(t - 1)),
            bi,
            hi,
        ],
    });
    for s in (0..t.saturating_sub(1)).rev() {
        steps.push(Step::Launch {
            f: bwd.clone(),
            grid,
            block: (128, 1, 1),
            smem: 0,
            args: vec![
                Arg::Ptr(off(drec, (s + 1) * b * gh)),
                Arg::Ptr(p[1]),
                Arg::Ptr(off(8, s * bh)),
                Arg::Ptr(direct),
                Arg::Ptr(0),
                Arg::RnnBwd(step_args(s)),
                bi,
                hi,
            ],
        });
    }
    steps.push(Step::Launch {
        f: bwd,
        grid,
        block: (128, 1, 1),
        smem: 0,
        args: vec![
            Arg::Ptr(p[drec]),
            Arg::Ptr(p[1]),
            Arg::Ptr(0),
            Arg::Ptr(direct),
            Arg::Ptr(p[12]),
            Arg::RnnBwd(RnnBwdArgs::default()),
            bi,
            hi,
        ],
    });
    // dW = [h0; HS[0..T-1]]ᵀ · dREC over all T·B rows; db = Σ_rows dREC.
    steps.push(Step::Launch {
        f: g.function(KernelId::Gemm, "gemm_tiled_f32_tn")?,
        grid: (blocks(gh, 128), blocks(h, 128), 1),
        block: (256, 1, 1),
        smem: 0,
        args: vec![
            Arg::Ptr(p[5]),
            Arg::Ptr(p[drec]),
            Arg::Ptr(p[13]),
            hi,
            Arg::I32(gh as i32),
            Arg::I32((t * b) as i32),
        ],
    });
    steps.push(Step::Launch {
        f: g.function(KernelId::Elementwise, "colsum_f32")?,
        grid: (blocks(gh, 32), 1, 1),
        block: (32, 8, 1),
        smem: 0,
        args: vec![
            Arg::Ptr(p[drec]),
            Arg::Ptr(p[14]),
            Arg::I32((t * b) as i32),
            Arg::I32(gh as i32),
        ],
    });
    let plan = Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![],
        backend: "cuda",
        mem,
    };
    plan.run()?;
    g.sync()?;
    let hfull = plan.bufs[5].download(&g)?;
    Ok(RnnGrads {
        hs: hfull[bh..].to_vec(),
        dxp: plan.bufs[9].download(&g)?,
        dw: plan.bufs[13].download(&g)?,
        db: plan.bufs[14].download(&g)?,
        dh0: plan.bufs[12].download(&g)?,
    })
}

/// `w -= lr·grad` on the device; returns the updated weights.
pub fn sgd_update(device: &str, w: &[f32], grad: &[f32], lr: f32) -> Result<Vec<f32>, CudaError> {
    let g = gpu::gpu(device)?;
    let mem = MemTracker::start(&g);
    let bufs = vec![f32buf(&g, w)?, f32buf(&g, grad)?];
    let args = vec![
        Arg::Ptr(bufs[0].ptr(&g)),
        Arg::Ptr(bufs[1].ptr(&g)),
        Arg::F32(lr),
        Arg::I32(w.len() as i32),
    ];
    let steps = vec![Step::Launch {
        f: g.function(KernelId::Elementwise, "sgd_update_f32")?,
        grid: (blocks(w.len(), 256).min(4096), 1, 1),
        block: (256, 1, 1),
        smem: 0,
        args,
    }];
    let plan = Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![0],
        backend: "cuda",
        mem,
    };
    plan.run()?;
    g.sync()?;
    plan.bufs[0].download(&g)
}
