//! The training kernels as plan steps (GEMM dA/dB with the tiled GEMM, conv
//! backward-data/backward-filter, RNN forward with state saving and backward through time,
//! SGD), shared by the `cuda` backend's training mode, plus host drivers that run one of them
//! on host data and return the gradients (used by the GPU tests).
use crate::buffers::{blocks, Arg, DevBuf, RnnBwdArgs};
use crate::cuda_backend::{conv_shape_args, gemm_launch_shape, rnn_grid};
use crate::error::CudaError;
use crate::gpu::{self, Gpu, MemTracker};
use crate::kernels::KernelId;
use crate::plan::{Output, Plan, Step};
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
use wattbench_core::DType;

fn f32buf(g: &Gpu, data: &[f32]) -> Result<DevBuf, CudaError> {
    DevBuf::upload(g, data, DType::F32)
}

/// `w -= lr·grad` over `n` elements at device addresses `w` and `grad`.
pub fn sgd_step(g: &Gpu, w: u64, grad: u64, n: usize, lr: f32) -> Result<Step, CudaError> {
    Ok(Step::Launch {
        f: g.function(KernelId::Elementwise, "sgd_update_f32")?,
        grid: (blocks(n, 256).clamp(1, 4096), 1, 1),
        block: (256, 1, 1),
        smem: 0,
        args: vec![
            Arg::Ptr(w),
            Arg::Ptr(grad),
            Arg::F32(lr),
            Arg::I32(n as i32),
        ],
    })
}

/// Which tensor of a GEMM training step a backward product reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmOperand {
    /// The stored A.
    A,
    /// The stored B.
    B,
    /// The output gradient dC `[M,N]`.
    Dc,
}

/// One backward GEMM: `out = op(lhs)·op(rhs)` with the shape and transposes of `shape`,
/// reading the stored tensors as they are (no transposed copies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmLaunch {
    /// First operand (the kernel's A).
    pub lhs: GemmOperand,
    /// Second operand (the kernel's B).
    pub rhs: GemmOperand,
    /// The product as a GEMM: its M, N, K and how `lhs`/`rhs` are stored.
    pub shape: GemmParams,
}

/// The two GEMMs giving `(dA, dB)` of `C = op(A)·op(B)` in the stored layouts of A and B
/// (what `wattbench_core::reference::gemm_backward` defines):
///
/// - dA: `dC·op(B)ᵀ` (`[M,K]`), or its transpose `op(B)·dCᵀ` (`[K,M]`) when A is stored
///   transposed;
/// - dB: `op(A)ᵀ·dC` (`[K,N]`), or its transpose `dCᵀ·op(A)` (`[N,K]`) when B is stored
///   transposed.
pub fn gemm_backward_launches(p: &GemmParams) -> [GemmLaunch; 2] {
    let (m, n, k) = (p.m, p.n, p.k);
    let shape = |m, n, k, trans_a, trans_b| GemmParams {
        m,
        n,
        k,
        trans_a,
        trans_b,
    };
    let da = if p.trans_a {
        GemmLaunch {
            lhs: GemmOperand::B,
            rhs: GemmOperand::Dc,
            shape: shape(k, m, n, p.trans_b, true),
        }
    } else {
        GemmLaunch {
            lhs: GemmOperand::Dc,
            rhs: GemmOperand::B,
            shape: shape(m, k, n, false, !p.trans_b),
        }
    };
    let db = if p.trans_b {
        GemmLaunch {
            lhs: GemmOperand::Dc,
            rhs: GemmOperand::A,
            shape: shape(n, k, m, true, p.trans_a),
        }
    } else {
        GemmLaunch {
            lhs: GemmOperand::A,
            rhs: GemmOperand::Dc,
            shape: shape(k, n, m, !p.trans_a, false),
        }
    };
    [da, db]
}

/// Launches of the tiled fp32 GEMM writing `dA` to `da` and `dB` to `db`, reading A, B and
/// dC at `a`, `b`, `dc` (device addresses, none aliasing an output).
pub fn gemm_backward_steps(
    g: &Gpu,
    p: &GemmParams,
    a: u64,
    b: u64,
    dc: u64,
    da: u64,
    db: u64,
) -> Result<Vec<Step>, CudaError> {
    let addr = |o: GemmOperand| match o {
        GemmOperand::A => a,
        GemmOperand::B => b,
        GemmOperand::Dc => dc,
    };
    gemm_backward_launches(p)
        .iter()
        .zip([da, db])
        .map(|(l, out)| {
            let (entry, grid, block, smem) = gemm_launch_shape(&l.shape, DType::F32, false);
            Ok(Step::Launch {
                f: g.function(KernelId::Gemm, &entry)?,
                grid,
                block,
                smem,
                args: vec![
                    Arg::Ptr(addr(l.lhs)),
                    Arg::Ptr(addr(l.rhs)),
                    Arg::Ptr(out),
                    Arg::I32(l.shape.m as i32),
                    Arg::I32(l.shape.n as i32),
                    Arg::I32(l.shape.k as i32),
                ],
            })
        })
        .collect()
}

/// Conv2d backward-data into `dx` and backward-filter into `dw` (zeroed first: the filter
/// kernel accumulates split reductions with atomics), reading `x`, `w` and `dy`.
pub fn conv2d_backward_steps(
    g: &Gpu,
    c: &ConvParams,
    x: u64,
    w: u64,
    dy: u64,
    dx: u64,
    dw: u64,
) -> Result<Vec<Step>, CudaError> {
    let (crs, npq) = (c.c * c.r * c.s, c.n * c.p() * c.q());
    // Split the N·P·Q reduction so that about 2 blocks per SM-ish run even for small K·CRS.
    let tiles = blocks(c.k, 128) * blocks(crs, 64);
    let splits = (264 / tiles.max(1)).clamp(1, blocks(npq, 16 * 8).max(1));
    let mut dargs = vec![Arg::Ptr(dy), Arg::Ptr(w), Arg::Ptr(dx)];
    dargs.extend(conv_shape_args(c));
    let mut fargs = vec![Arg::Ptr(x), Arg::Ptr(dy), Arg::Ptr(dw)];
    fargs.extend(conv_shape_args(c));
    Ok(vec![
        Step::Launch {
            f: g.function(KernelId::Conv, "conv2d_bwd_data_f32")?,
            grid: (blocks(c.n * c.h * c.w, 128), blocks(c.c, 64), 1),
            block: (256, 1, 1),
            smem: 0,
            args: dargs,
        },
        Step::Zero {
            dst: dw,
            bytes: c.k * crs * 4,
        },
        Step::Launch {
            f: g.function(KernelId::Conv, "conv2d_bwd_filter_f32")?,
            grid: (blocks(c.k, 128), blocks(crs, 64), splits),
            block: (256, 1, 1),
            smem: 0,
            args: fargs,
        },
    ])
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
    let steps = conv2d_backward_steps(&g, c, p[0], p[1], p[2], p[3], p[4])?;
    let plan = Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![Output::whole(3), Output::whole(4)],
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

/// Elements per batch row of the forward's saved state: LSTM `5H` (i,f,g,o,c'), GRU `4H`
/// (r,z,n,h·Wn+bn), vanilla none (backward uses the hidden states).
pub fn rnn_save_width(r: &RnnParams) -> usize {
    match r.cell {
        Cell::Vanilla => 0,
        Cell::Lstm => 5 * r.hidden,
        Cell::Gru => 4 * r.hidden,
    }
}

/// Device addresses an RNN training step reads and writes (f32 throughout).
#[derive(Clone, Copy, Debug)]
pub struct RnnTrainPtrs {
    /// XP[T,B,G·H].
    pub xp: u64,
    /// W[H,G·H].
    pub w: u64,
    /// b[G·H].
    pub b: u64,
    /// h0[B,H].
    pub h0: u64,
    /// LSTM c0[B,H] (`None` for the other cells).
    pub c0: Option<u64>,
    /// `[h0; HS]`, `(T+1)·B·H`: the forward's hidden states after a copy of h0.
    pub hfull: u64,
    /// LSTM cell state `[B,H]`, updated in place by the forward (unused otherwise).
    pub c: u64,
    /// Saved forward state, `T·B·`[`rnn_save_width`] (unused for vanilla).
    pub save: u64,
    /// dHS[T,B,H].
    pub dhs: u64,
    /// dXP[T,B,G·H].
    pub dxp: u64,
    /// dREC[T,B,G·H], the gradient of `h·W + b`: its own buffer for GRU, `dxp` otherwise.
    pub drec: u64,
    /// `[B,H]`: LSTM dc carry / GRU direct term, zeroed at the start of each call.
    pub carry: u64,
    /// dW[H,G·H].
    pub dw: u64,
    /// db[G·H].
    pub db: u64,
}

/// Forward with state saving, backward through time, then `dW = [h0; HS[..T-1]]ᵀ·dREC` and
/// `db = Σ_rows dREC`. With `dh0`, also the gradient of the initial hidden state (a training
/// step has no use for it: initial states are constants).
pub fn rnn_train_steps(
    g: &Gpu,
    r: &RnnParams,
    p: &RnnTrainPtrs,
    dh0: Option<u64>,
) -> Result<Vec<Step>, CudaError> {
    let (h, b, t) = (r.hidden, r.batch, r.steps);
    if h == 0 || b == 0 || t == 0 {
        return Err(CudaError::lib(
            "RNN training step",
            format!("empty shape {r:?}"),
        ));
    }
    let (gh, bh) = (r.cell.gates() * h, b * h);
    let save_w = rnn_save_width(r);
    let off = |base: u64, elems: usize| base + (elems * 4) as u64;
    let (bi, hi) = (Arg::I32(b as i32), Arg::I32(h as i32));
    let cell = r.cell.as_str();
    let fwd = g.function(KernelId::Rnn, &format!("rnn_fwd_{cell}"))?;
    let bwd = g.function(KernelId::Rnn, &format!("rnn_bwd_{cell}"))?;
    let last = g.function(KernelId::Rnn, &format!("rnn_bwd_last_{cell}"))?;
    let grid = rnn_grid(r);
    let lstm = r.cell == Cell::Lstm;
    let mut steps = vec![
        Step::Copy {
            dst: p.hfull,
            src: p.h0,
            bytes: bh * 4,
        },
        Step::Zero {
            dst: p.carry,
            bytes: bh * 4,
        },
    ];
    if let (true, Some(c0)) = (lstm, p.c0) {
        steps.push(Step::Copy {
            dst: p.c,
            src: c0,
            bytes: bh * 4,
        });
    }
    for s in 0..t {
        let mut args = vec![
            Arg::Ptr(off(p.xp, s * b * gh)),
            Arg::Ptr(p.w),
            Arg::Ptr(p.b),
            Arg::Ptr(off(p.hfull, s * bh)),
            Arg::Ptr(off(p.hfull, (s + 1) * bh)),
        ];
        match r.cell {
            Cell::Vanilla => {}
            Cell::Lstm => args.extend([Arg::Ptr(p.c), Arg::Ptr(off(p.save, s * b * save_w))]),
            Cell::Gru => args.push(Arg::Ptr(off(p.save, s * b * save_w))),
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
    let step_args = |s: usize| RnnBwdArgs {
        hs: match r.cell {
            Cell::Gru => off(p.hfull, s * bh),
            _ => off(p.hfull, (s + 1) * bh),
        },
        save: off(p.save, s * b * save_w),
        cprev: match (s, lstm) {
            (_, false) => 0,
            (0, true) => p.c0.unwrap_or(0),
            (_, true) => off(p.save, (s - 1) * b * save_w + 4 * h),
        },
        cprev_pitch: if s == 0 { h as i32 } else { save_w as i32 },
        dxp: off(p.dxp, s * b * gh),
        drec: off(p.drec, s * b * gh),
        carry: p.carry,
    };
    let direct = if r.cell == Cell::Gru { p.carry } else { 0 };
    steps.push(Step::Launch {
        f: last,
        grid: (blocks(bh, 256), 1, 1),
        block: (256, 1, 1),
        smem: 0,
        args: vec![
            Arg::Ptr(off(p.dhs, (t - 1) * bh)),
            Arg::RnnBwd(step_args(t - 1)),
            bi,
            hi,
        ],
    });
    for s in (0..t - 1).rev() {
        steps.push(Step::Launch {
            f: bwd.clone(),
            grid,
            block: (128, 1, 1),
            smem: 0,
            args: vec![
                Arg::Ptr(off(p.drec, (s + 1) * b * gh)),
                Arg::Ptr(p.w),
                Arg::Ptr(off(p.dhs, s * bh)),
                Arg::Ptr(direct),
                Arg::Ptr(0),
                Arg::RnnBwd(step_args(s)),
                bi,
                hi,
            ],
        });
    }
    if let Some(dh0) = dh0 {
        steps.push(Step::Launch {
            f: bwd,
            grid,
            block: (128, 1, 1),
            smem: 0,
            args: vec![
                Arg::Ptr(p.drec),
                Arg::Ptr(p.w),
                Arg::Ptr(0),
                Arg::Ptr(direct),
                Arg::Ptr(dh0),
                Arg::RnnBwd(RnnBwdArgs::default()),
                bi,
                hi,
            ],
        });
    }
    // dW = [h0; HS[0..T-1]]ᵀ · dREC over all T·B rows; db = Σ_rows dREC.
    steps.push(Step::Launch {
        f: g.function(KernelId::Gemm, "gemm_tiled_f32_tn")?,
        grid: (blocks(gh, 128), blocks(h, 128), 1),
        block: (256, 1, 1),
        smem: 0,
        args: vec![
            Arg::Ptr(p.hfull),
            Arg::Ptr(p.drec),
            Arg::Ptr(p.dw),
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
            Arg::Ptr(p.drec),
            Arg::Ptr(p.db),
            Arg::I32((t * b) as i32),
            Arg::I32(gh as i32),
        ],
    });
    Ok(steps)
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
    let (h, b, t) = (r.hidden, r.batch, r.steps);
    let (gh, bh) = (r.cell.gates() * h, b * h);
    let lstm = r.cell == Cell::Lstm;
    // 0 xp, 1 w, 2 b, 3 h0, 4 c0, 5 hfull, 6 c, 7 save, 8 dhs, 9 dxp, 10 drec, 11 carry,
    // 12 dh0, 13 dw, 14 db
    let bufs = vec![
        f32buf(&g, inputs[0])?,
        f32buf(&g, inputs[1])?,
        f32buf(&g, inputs[2])?,
        f32buf(&g, inputs[3])?,
        if lstm {
            f32buf(&g, inputs[4])?
        } else {
            DevBuf::zeros(&g, 1, DType::F32)?
        },
        DevBuf::poisoned(&g, (t + 1) * bh, DType::F32)?,
        DevBuf::zeros(&g, bh, DType::F32)?,
        DevBuf::zeros(&g, (t * b * rnn_save_width(r)).max(1), DType::F32)?,
        f32buf(&g, dhs)?,
        DevBuf::poisoned(&g, t * b * gh, DType::F32)?,
        DevBuf::poisoned(&g, t * b * gh, DType::F32)?,
        DevBuf::zeros(&g, bh, DType::F32)?,
        DevBuf::poisoned(&g, bh, DType::F32)?,
        DevBuf::poisoned(&g, h * gh, DType::F32)?,
        DevBuf::poisoned(&g, gh, DType::F32)?,
    ];
    let p: Vec<u64> = bufs.iter().map(|x| x.ptr(&g)).collect();
    let ptrs = RnnTrainPtrs {
        xp: p[0],
        w: p[1],
        b: p[2],
        h0: p[3],
        c0: lstm.then_some(p[4]),
        hfull: p[5],
        c: p[6],
        save: p[7],
        dhs: p[8],
        dxp: p[9],
        drec: if r.cell == Cell::Gru { p[10] } else { p[9] },
        carry: p[11],
        dw: p[13],
        db: p[14],
    };
    let steps = rnn_train_steps(&g, r, &ptrs, Some(p[12]))?;
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
    Ok(RnnGrads {
        hs: plan.bufs[5].download_range(&g, bh..(t + 1) * bh)?,
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
    let steps = vec![sgd_step(&g, bufs[0].ptr(&g), bufs[1].ptr(&g), w.len(), lr)?];
    let plan = Plan {
        gpu: g.clone(),
        bufs,
        steps,
        outputs: vec![Output::whole(0)],
        backend: "cuda",
        mem,
    };
    plan.run()?;
    g.sync()?;
    plan.bufs[0].download(&g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::reference;

    fn seq(n: usize, salt: f64) -> Vec<f64> {
        (0..n)
            .map(|i| ((i as f64 + 1.0) * (0.37 + salt)).sin())
            .collect()
    }

    /// The backward GEMMs, run with the f64 reference GEMM on the stored operands exactly as
    /// the kernels read them, give `reference::gemm_backward`'s dA and dB, for every transpose.
    #[test]
    fn gemm_backward_launches_compute_the_reference_gradients() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let p = GemmParams {
                m: 5,
                n: 3,
                k: 4,
                trans_a: ta,
                trans_b: tb,
            };
            let (a, b, dc) = (seq(20, 0.0), seq(12, 0.1), seq(15, 0.2));
            let (want_da, want_db) = reference::gemm_backward(&p, &a, &b, &dc);
            let pick = |o: GemmOperand| match o {
                GemmOperand::A => &a,
                GemmOperand::B => &b,
                GemmOperand::Dc => &dc,
            };
            let [da, db] = gemm_backward_launches(&p);
            for (l, want, stored) in [(da, &want_da, a.len()), (db, &want_db, b.len())] {
                assert_eq!(l.shape.m * l.shape.n, stored, "{p:?} {l:?}");
                // Operand sizes must match what the kernel reads for its transposes.
                assert_eq!(pick(l.lhs).len(), l.shape.m * l.shape.k, "{p:?} {l:?}");
                assert_eq!(pick(l.rhs).len(), l.shape.k * l.shape.n, "{p:?} {l:?}");
                let got = reference::gemm(&l.shape, pick(l.lhs), pick(l.rhs));
                for (x, y) in got.iter().zip(want.iter()) {
                    assert!((x - y).abs() < 1e-12, "{p:?} {l:?}: {got:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn rnn_save_width_matches_the_kernels() {
        let r = |cell| RnnParams {
            cell,
            hidden: 7,
            batch: 2,
            steps: 3,
        };
        assert_eq!(rnn_save_width(&r(Cell::Vanilla)), 0);
        assert_eq!(rnn_save_width(&r(Cell::Lstm)), 35);
        assert_eq!(rnn_save_width(&r(Cell::Gru)), 28);
    }
}
