//! GEMM (`gemm.cu`, `gemm_sm90.cu`): which kernel runs a case (naive, tiled fp32, tensor-core
//! bf16/f16 with `mma.sync`, or the Hopper wgmma + TMA kernel) and its launch shape, the
//! inference plans, and the training step (forward, the two backward GEMMs on the stored
//! layouts, SGD on B).
use super::elementwise::sgd;
use super::Kernels;
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::plan::{blocks, Arg, BufId, Launch, PlanBuilder, View};
use wattbench_core::workload::GemmParams;
use wattbench_core::{DType, Mode};

mod wgmma;
pub(crate) use wgmma::register_pool_check;
pub use wgmma::{wgmma_entry_points, WGMMA_N64_SMEM_BYTES, WGMMA_SMEM_BYTES};

/// Dynamic shared memory of one tensor-core GEMM block (`WB_TC_SMEM_BYTES` in gemm.cu:
/// 4 stages x 2 operands x 128x40 elements x 2 bytes).
pub const TC_SMEM_BYTES: u32 = 4 * 2 * 128 * 40 * 2;

/// Entry-point suffix for the transposes.
fn transpose_suffix(p: &GemmParams) -> &'static str {
    match (p.trans_a, p.trans_b) {
        (false, false) => "nn",
        (false, true) => "nt",
        (true, false) => "tn",
        (true, true) => "tt",
    }
}

/// The GEMM kernel for `p` in `dtype` (`naive`: the baseline, fp32 only) and its launch
/// shape: 16x16 threads per 16x16 outputs (naive), 256 threads per 128x128 tile (tiled and
/// tensor-core, the latter with [`TC_SMEM_BYTES`] of dynamic shared memory).
pub(crate) fn shape(p: &GemmParams, dtype: DType, naive: bool) -> Launch {
    let t = transpose_suffix(p);
    let tile = (blocks(p.n, 128), blocks(p.m, 128), 1);
    let (entry, grid, block, smem) = match (dtype, naive) {
        (DType::F32, true) => (
            format!("gemm_naive_f32_{t}"),
            (blocks(p.n, 16), blocks(p.m, 16), 1),
            (16, 16, 1),
            0,
        ),
        (DType::F32, false) => (format!("gemm_tiled_f32_{t}"), tile, (256, 1, 1), 0),
        (d, _) => {
            let ty = if d == DType::Bf16 { "bf16" } else { "f16" };
            (
                format!("gemm_tc_{ty}_{t}"),
                tile,
                (256, 1, 1),
                TC_SMEM_BYTES,
            )
        }
    };
    Launch {
        kernel: KernelId::Gemm,
        entry,
        grid,
        block,
        smem,
    }
}

/// Add `c = op(a)·op(b)` for `p`: `a`, `b` and `c` must be exactly the stored `A`, `B` and
/// `C` in `dtype`.
pub(crate) fn launch(
    bld: &mut PlanBuilder,
    p: &GemmParams,
    dtype: DType,
    naive: bool,
    [a, b, c]: [View; 3],
) -> Result<(), CudaError> {
    bld.expect(a, p.m * p.k, dtype)?;
    bld.expect(b, p.k * p.n, dtype)?;
    bld.expect(c, p.m * p.n, dtype)?;
    let args = vec![
        a.into(),
        b.into(),
        c.into(),
        Arg::Int(p.m),
        Arg::Int(p.n),
        Arg::Int(p.k),
    ];
    // SAFETY: every GEMM entry point is `(A, B, C, int M, int N, int K)` with pointers to the
    // element type `shape` chose it for (float, or bf16/f16 bits for `dtype`), which the views
    // were just checked to hold. Each kernel reads `op(A)` [M,K] and `op(B)` [K,N] and writes
    // C [M,N], guarding every index against M, N and K, and the views are exactly those
    // sizes. The tensor-core kernels use `TC_SMEM_BYTES` of dynamic shared memory, the others
    // none.
    unsafe { bld.launch(shape(p, dtype, naive), args) }
}

/// The plan of a GEMM case on inputs `ins` (`a`, `b`, and in training `dc`) with `kernels`
/// on a GPU of `sms` multiprocessors; returns the outputs: `[c]`, or in training
/// `[c, da, db, b_new]` (B updated in place).
pub(crate) fn plan(
    bld: &mut PlanBuilder,
    p: &GemmParams,
    mode: Mode,
    dtype: DType,
    (kernels, sms): (Kernels, u32),
    ins: &[BufId],
) -> Result<Vec<View>, CudaError> {
    let naive = kernels == Kernels::Naive;
    if matches!(kernels, Kernels::Wgmma | Kernels::WgmmaCluster) {
        if mode != Mode::Infer {
            return Err(CudaError::lib(
                "building the plan",
                "the wgmma GEMM runs the forward pass only",
            ));
        }
        let [a, b] = super::inputs(ins, "gemm")?;
        let cluster = kernels == Kernels::WgmmaCluster;
        return Ok(vec![wgmma::plan(bld, p, dtype, sms, cluster, a, b)?]);
    }
    if mode == Mode::Infer {
        let [a, b] = super::inputs(ins, "gemm")?;
        let c = bld.poisoned(p.m * p.n, dtype);
        let views = [a, b, c].map(|i| bld.whole(i));
        launch(bld, p, dtype, naive, views)?;
        return Ok(vec![views[2]]);
    }
    let [a, b, dc] = super::inputs(ins, "gemm training")?;
    let f32 = DType::F32;
    let c = bld.poisoned(p.m * p.n, f32);
    let da = bld.poisoned(p.m * p.k, f32);
    let db = bld.poisoned(p.k * p.n, f32);
    let [a, b, dc, c, da, db] = [a, b, dc, c, da, db].map(|i| bld.whole(i));
    launch(bld, p, f32, false, [a, b, c])?;
    let operand = |o: Operand| match o {
        Operand::A => a,
        Operand::B => b,
        Operand::Dc => dc,
    };
    for (l, out) in backward_launches(p).iter().zip([da, db]) {
        launch(
            bld,
            &l.shape,
            f32,
            false,
            [operand(l.lhs), operand(l.rhs), out],
        )?;
    }
    sgd(bld, b, db)?;
    Ok(vec![c, da, db, b])
}

/// Which tensor of a GEMM training step a backward product reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operand {
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
struct BackwardGemm {
    lhs: Operand,
    rhs: Operand,
    shape: GemmParams,
}

/// The two GEMMs giving `(dA, dB)` of `C = op(A)·op(B)` in the stored layouts of A and B
/// (what `wattbench_core::reference::gemm_backward` defines):
///
/// - dA: `dC·op(B)ᵀ` (`[M,K]`), or its transpose `op(B)·dCᵀ` (`[K,M]`) when A is stored
///   transposed;
/// - dB: `op(A)ᵀ·dC` (`[K,N]`), or its transpose `dCᵀ·op(A)` (`[N,K]`) when B is stored
///   transposed.
fn backward_launches(p: &GemmParams) -> [BackwardGemm; 2] {
    let (m, n, k) = (p.m, p.n, p.k);
    let gemm = |lhs, rhs, m, n, k, trans_a, trans_b| BackwardGemm {
        lhs,
        rhs,
        shape: GemmParams {
            m,
            n,
            k,
            trans_a,
            trans_b,
        },
    };
    let da = if p.trans_a {
        gemm(Operand::B, Operand::Dc, k, m, n, p.trans_b, true)
    } else {
        gemm(Operand::Dc, Operand::B, m, k, n, false, !p.trans_b)
    };
    let db = if p.trans_b {
        gemm(Operand::Dc, Operand::A, n, k, m, true, p.trans_a)
    } else {
        gemm(Operand::A, Operand::Dc, k, n, m, !p.trans_a, false)
    };
    [da, db]
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
    fn backward_launches_compute_the_reference_gradients() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let p = GemmParams::new(5, 3, 4).transposed(ta, tb);
            let (a, b, dc) = (seq(20, 0.0), seq(12, 0.1), seq(15, 0.2));
            let (want_da, want_db) = reference::gemm_backward(&p, &a, &b, &dc);
            let pick = |o: Operand| match o {
                Operand::A => &a,
                Operand::B => &b,
                Operand::Dc => &dc,
            };
            let [da, db] = backward_launches(&p);
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
    fn launch_shapes_cover_odd_sizes() {
        let p = GemmParams::new(1000, 1001, 999).transposed(true, false);
        let l = shape(&p, DType::Bf16, false);
        assert_eq!(
            (l.entry.as_str(), l.grid, l.smem),
            ("gemm_tc_bf16_tn", (8, 8, 1), TC_SMEM_BYTES)
        );
        let l = shape(&p, DType::F32, true);
        assert_eq!(
            (l.entry.as_str(), l.grid, l.block),
            ("gemm_naive_f32_tn", (63, 63, 1), (16, 16, 1))
        );
    }

    #[test]
    fn tc_smem_matches_the_kernel_constant() {
        let src = KernelId::Gemm.source();
        assert!(src.contains("#define TC_STAGES 4"));
        assert!(src.contains("#define TC_BM 128"));
        assert!(src.contains("#define TC_BK 32"));
        assert!(src.contains("#define TC_PAD 8"));
        assert_eq!(TC_SMEM_BYTES, 81920);
    }
}
