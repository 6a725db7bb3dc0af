//! The Hopper GEMM (`gemm_sm90.cu`, sm_90a; verified on an H200): its schedule (the tile
//! width, [`Width`], and how many ranges K is split into), its launch (a persistent grid of at
//! most one CTA per SM, 384 threads, [`Width::smem_bytes`] of dynamic shared memory), the
//! split-K reduction, and the TMA tensor maps of its operands (after a padded copy where a row
//! is not a multiple of 16 bytes).
//!
//! The tests transcribe the kernel's tile order, k-ranges, stage loads, descriptors, epilogues
//! and barrier protocol and emulate on the CPU what a CPU can check of them: the schedule
//! covers every tile and k-step once; a stage's boxes carry exactly the transaction bytes the
//! kernel waits for and cover the tile; every element each wgmma reads through its descriptor
//! (by the PTX ISA's canonical layouts) is where TMA wrote it, in all four layouts and both
//! widths; every output element (or partial sum) is stored once, with its own value; and the
//! mbarrier protocol of the ring neither deadlocks nor overwrites a stage still being read
//! (and the emulation catches each of three bugs planted in that protocol).
//! What they cannot show is that the hardware agrees with this reading of the ISA: the GPU
//! tests do.
use super::super::elementwise::pad_rows;
use super::transpose_suffix;
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::plan::{blocks, Arg, BufId, Launch, PlanBuilder, TensorMap2d, View, NULL};
use wattbench_core::workload::GemmParams;
use wattbench_core::DType;

/// Output tile rows (`WG_BM`): two consumer warpgroups of 64 rows.
const BM: usize = 128;
/// K per stage (`WG_BK`): 64 bf16 = the 128-byte swizzle span.
const BK: usize = 64;
/// Threads per CTA (`WG_THREADS`): a producer and two consumer warpgroups.
const THREADS: u32 = 384;
/// Registers per thread the producer warpgroup keeps and the consumer warpgroups take with
/// `setmaxnreg` (`WG_PRODUCER_REGS`, `WG_CONSUMER_REGS`). The CTA's pool is what ptxas gave
/// each thread at launch times [`THREADS`]: a consumer's `setmaxnreg.inc` waits until the pool
/// has its registers, so a kernel compiled with fewer than [`POOL_REGS`] / [`THREADS`]
/// registers a thread would hang there (the kernel check refuses it).
const PRODUCER_REGS: u32 = 40;
const CONSUMER_REGS: u32 = 232;
/// Registers the CTA needs once the warpgroups have traded: one producer and two consumer
/// warpgroups of 128 threads.
pub const POOL_REGS: u32 = 128 * PRODUCER_REGS + 2 * 128 * CONSUMER_REGS;
const _: () = assert!(
    POOL_REGS <= 65_536,
    "the trade must fit an SM's 64 Ki registers"
);
/// Width of an MN-major box (64 elements = 128 bytes) and its bytes (`WG_BOX_BYTES`).
const MN_BOX: usize = 64;
const ELEM: usize = 2;
const A_BYTES: usize = BM * BK * ELEM;
/// K is split only into ranges of at least this many k-steps (512 of K), so that each range
/// fills the ring and its fp32 partial sums cost little next to its loads.
const MIN_SPLIT_STEPS: usize = 8;
/// At most this many ranges (the workspace holds one fp32 copy of C per range).
const MAX_SPLITS: usize = 8;

/// The kernel's two tile widths (`WgRing<BN>` in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 128x256 tiles (`gemm_wgmma_*`), 4 stages of 48 KiB.
    Wide,
    /// 128x64 tiles (`gemm_wgmma_n64_*`), 8 stages of 24 KiB: for N <= 128, where most of a
    /// 256-wide tile would be padding (a decoding step's few tokens).
    Narrow,
}

impl Width {
    /// Output tile columns (`WG_BN`, `WG_BN_NARROW`): one m64nBNk16 wgmma per warpgroup and
    /// k-step.
    pub const fn bn(self) -> usize {
        match self {
            Width::Wide => 256,
            Width::Narrow => 64,
        }
    }

    /// Stages of the shared-memory ring (`WG_STAGES`, `WG_STAGES_NARROW`).
    const fn stages(self) -> usize {
        match self {
            Width::Wide => 4,
            Width::Narrow => 8,
        }
    }

    const fn b_bytes(self) -> usize {
        self.bn() * BK * ELEM
    }

    const fn stage_bytes(self) -> usize {
        A_BYTES + self.b_bytes()
    }

    /// Dynamic shared memory of one launch (`WgRing<BN>::SMEM_BYTES`): the ring, 1024 bytes
    /// of slack to align it to the swizzle pattern, and two mbarriers per stage.
    pub const fn smem_bytes(self) -> u32 {
        (self.stages() * self.stage_bytes() + 1024 + 2 * self.stages() * 8) as u32
    }

    /// The entry point's name up to its dtype, in clusters of two CTAs or not.
    const fn prefix(self, cluster: bool) -> &'static str {
        match (self, cluster) {
            (Width::Wide, false) => "gemm_wgmma",
            (Width::Wide, true) => "gemm_wgmma_c2",
            (Width::Narrow, _) => "gemm_wgmma_n64",
        }
    }
}

/// CTAs per cluster of the cluster kernels (`gemm_wgmma_c2_*`, `__cluster_dims__(2, 1, 1)`).
const CLUSTER: usize = 2;

/// Whether the cluster kernel runs a product of `tiles_m` tile rows at `width` split `splits`
/// ways on `sms` SMs: 256-wide tiles, no split, two tile rows at least (the pair shares
/// B), and two SMs for a cluster.
fn clustered(width: Width, splits: usize, tiles_m: usize, sms: usize) -> bool {
    width == Width::Wide && splits == 1 && tiles_m >= CLUSTER && sms >= CLUSTER
}

/// Dynamic shared memory of the wide kernel (`gemm_wgmma_*`).
pub const WGMMA_SMEM_BYTES: u32 = Width::Wide.smem_bytes();
/// Dynamic shared memory of the narrow kernel (`gemm_wgmma_n64_*`).
pub const WGMMA_N64_SMEM_BYTES: u32 = Width::Narrow.smem_bytes();

/// Why a Hopper GEMM entry point compiled with `regs` registers a thread would hang in its
/// consumers' `setmaxnreg.inc` (the CTA's pool, `regs` x [`THREADS`], is short of
/// [`POOL_REGS`]).
pub(crate) fn register_pool_check(regs: u32) -> Result<(), String> {
    if regs * THREADS >= POOL_REGS {
        Ok(())
    } else {
        Err(format!(
            "{regs} registers x {THREADS} threads < {POOL_REGS}: setmaxnreg.inc \
             ({CONSUMER_REGS} for the consumers) would wait forever"
        ))
    }
}

/// How the kernel runs `p` on `sms` multiprocessors: the tile width (narrow for N <= 128) and
/// the number of k-ranges. K is split only when the tiles would leave over half the SMs idle,
/// into as many ranges as fill them, each of at least [`MIN_SPLIT_STEPS`] k-steps, at most
/// [`MAX_SPLITS`].
pub fn schedule(p: &GemmParams, sms: usize) -> (Width, usize) {
    let width = if p.n <= 128 {
        Width::Narrow
    } else {
        Width::Wide
    };
    let tiles = p.m.div_ceil(BM) * p.n.div_ceil(width.bn());
    let steps = p.k.div_ceil(BK);
    let splits = if tiles > 0 && 2 * tiles <= sms {
        (sms / tiles)
            .min(steps / MIN_SPLIT_STEPS)
            .clamp(1, MAX_SPLITS)
    } else {
        1
    };
    (width, splits)
}

/// How the kernel runs a product on some number of SMs: [`schedule`]'s width and k-ranges, the
/// tiles, and whether in clusters of two (asked for, and [`clustered`] allows).
struct Choice {
    width: Width,
    splits: usize,
    tiles_m: usize,
    tiles_n: usize,
    cluster: bool,
}

impl Choice {
    fn new(p: &GemmParams, sms: usize, cluster: bool) -> Self {
        let (width, splits) = schedule(p, sms);
        let tiles_m = p.m.div_ceil(BM);
        Self {
            width,
            splits,
            tiles_m,
            tiles_n: p.n.div_ceil(width.bn()),
            cluster: cluster && clustered(width, splits, tiles_m, sms),
        }
    }

    /// The GEMM's entry point for `p` in `ty` (`bf16`, `f16`).
    fn entry(&self, p: &GemmParams, ty: &str) -> String {
        format!(
            "{}_{ty}_{}",
            self.width.prefix(self.cluster),
            transpose_suffix(p)
        )
    }
}

/// The entry-point name of a 16-bit `dtype`, or why the kernel does not take it.
fn type_name(dtype: DType) -> Result<&'static str, CudaError> {
    match dtype {
        DType::Bf16 => Ok("bf16"),
        DType::F16 => Ok("f16"),
        d => Err(CudaError::lib(
            "building the plan",
            format!("the wgmma GEMM takes bf16 or f16, not {d:?}"),
        )),
    }
}

fn reduce_entry(ty: &str) -> String {
    format!("gemm_splitk_reduce_{ty}")
}

/// The entry points the Hopper GEMM launches for `p` in `dtype` on a GPU of `sms` SMs, in
/// clusters of two where `cluster` asks for them and the shape allows (`cuda-wgmma-c2`), less
/// the padded copies of operands: the GEMM kernel, then the split-K reduction when K is
/// split; none for a dtype it does not take. A case's `implementation` names them, so a GPU
/// test can check that the schedule it predicts is the one that ran.
pub fn wgmma_entry_points(p: &GemmParams, dtype: DType, sms: u32, cluster: bool) -> Vec<String> {
    let Ok(ty) = type_name(dtype) else {
        return Vec::new();
    };
    let run = Choice::new(p, sms.max(1) as usize, cluster);
    let reduce = (run.splits > 1).then(|| reduce_entry(ty));
    std::iter::once(run.entry(p, ty)).chain(reduce).collect()
}

/// The box of an operand whose tile has `tile_rows` rows along M or N: `[BK, tile_rows]` when
/// K-major (K contiguous), `[64, BK]` when MN-major.
fn box_dims(mn_major: bool, tile_rows: usize) -> [u32; 2] {
    if mn_major {
        [MN_BOX as u32, BK as u32]
    } else {
        [BK as u32, tile_rows as u32]
    }
}

/// The tensor map of a stored operand `[rows, cols]` in `buf`, after a padded copy to rows of
/// a multiple of 8 elements when `cols` is not one.
fn operand(
    bld: &mut PlanBuilder,
    buf: BufId,
    [rows, cols]: [usize; 2],
    dtype: DType,
    mn_major: bool,
    tile_rows: usize,
) -> Result<TensorMap2d, CudaError> {
    let src = bld.whole(buf);
    bld.expect(src, rows * cols, dtype)?;
    let ld = cols.next_multiple_of(8);
    let view = if ld == cols {
        src
    } else {
        let padded = bld.zeros(rows * ld, dtype);
        let dst = bld.whole(padded);
        pad_rows(bld, src, dst, [rows, cols, ld], dtype)?;
        dst
    };
    Ok(TensorMap2d {
        view,
        rows,
        cols,
        ld,
        box_dims: box_dims(mn_major, tile_rows),
    })
}

/// `c = op(a)·op(b)` on a GPU with `sms` multiprocessors: the launch as [`schedule`] sets it
/// (in clusters of two CTAs sharing B when `cluster` is asked for and [`clustered`] allows),
/// preceded by padded copies of operands whose rows are not a multiple of 8 elements, and
/// followed by the reduction of the k-ranges' partial sums when K is split. Returns C.
pub(crate) fn plan(
    bld: &mut PlanBuilder,
    p: &GemmParams,
    dtype: DType,
    sms: u32,
    cluster: bool,
    a: BufId,
    b: BufId,
) -> Result<View, CudaError> {
    let ty = type_name(dtype)?;
    let sms = sms.max(1) as usize;
    let run = Choice::new(p, sms, cluster);
    let Choice {
        width,
        splits,
        tiles_m,
        tiles_n,
        cluster,
    } = run;
    // In a cluster each CTA loads half of B's tile rows (multicast to both).
    let b_rows = if cluster {
        width.bn() / CLUSTER
    } else {
        width.bn()
    };
    let a_stored = if p.trans_a { [p.k, p.m] } else { [p.m, p.k] };
    let b_stored = if p.trans_b { [p.n, p.k] } else { [p.k, p.n] };
    // A is MN-major when stored transposed; B when not (its rows run along N).
    let a_map = operand(bld, a, a_stored, dtype, p.trans_a, BM)?;
    let b_map = operand(bld, b, b_stored, dtype, !p.trans_b, b_rows)?;
    let c = bld.poisoned(p.m * p.n, dtype);
    let c = bld.whole(c);
    let ws = (splits > 1).then(|| {
        let w = bld.poisoned(splits * p.m * p.n, DType::F32);
        bld.whole(w)
    });
    let grid = if cluster {
        // Whole clusters: units of two vertically adjacent tiles, at most one CTA per SM.
        (tiles_m.div_ceil(CLUSTER) * tiles_n).min(sms / CLUSTER) * CLUSTER
    } else {
        (tiles_m * tiles_n * splits).min(sms)
    } as u32;
    let launch = Launch {
        kernel: KernelId::GemmSm90,
        entry: run.entry(p, ty),
        grid: (grid, 1, 1),
        block: (THREADS, 1, 1),
        smem: width.smem_bytes(),
    };
    let args = vec![
        Arg::TensorMap(a_map),
        Arg::TensorMap(b_map),
        c.into(),
        ws.map_or(NULL, Arg::from),
        Arg::Int(p.m),
        Arg::Int(p.n),
        Arg::Int(p.k),
        Arg::Int(tiles_m),
        Arg::Int(tiles_n),
        Arg::Int(splits),
    ];
    // SAFETY: `gemm_wgmma[_n64|_c2]_*(WbTensorMap A, WbTensorMap B, u16* C, float* ws, int M,
    // int N, int K, int tiles_m, int tiles_n, int splits)`, with maps over the stored A and B
    // (`rows` x `cols` of `ld`, 16-bit, checked by the builder), C exactly M x N of the same
    // dtype, and `ws` exactly splits x M x N fp32 when splits > 1 (null otherwise: the kernel
    // then never touches it). The kernel reads A and B only through TMA, which never reads
    // outside a map's extent (it fills zeros there); it writes C[r][c] (splits = 1) or
    // ws[s][r][c] (s < splits) only for r < M, c < N; its CTAs walk units below
    // tiles_m * tiles_n * splits (pairs of tile rows in a cluster), whatever the grid; this
    // width's entry point needs `width.smem_bytes()` of dynamic shared memory and 384
    // threads; a cluster kernel gets an even grid (its clusters of two) and splits = 1.
    unsafe { bld.launch(launch, args)? };
    if let Some(ws) = ws {
        let mn = p.m * p.n;
        let reduce = Launch {
            kernel: KernelId::GemmSm90,
            entry: reduce_entry(ty),
            grid: (blocks(mn, 256).clamp(1, 4096), 1, 1),
            block: (256, 1, 1),
            smem: 0,
        };
        let args = vec![ws.into(), c.into(), Arg::Int(mn), Arg::Int(splits)];
        // SAFETY: `gemm_splitk_reduce_*(const float* ws, u16* C, int mn, int splits)`: a
        // grid-stride loop over i < mn reads ws[s * mn + i] for s < splits and writes C[i]:
        // inside the fp32 workspace of splits x mn and the 16-bit C of mn made above.
        unsafe { bld.launch(reduce, args)? };
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Kernels;
    use crate::plan::{Ptr, Step};
    use std::collections::HashMap;
    use wattbench_core::Mode;

    // The kernel's logic, transcribed from gemm_sm90.cu for the emulations below.

    /// Tile rows per scheduler group (`WG_GROUP`).
    const GROUP: usize = 8;
    /// Warps that release a stage (`WG_CONSUMER_WARPS`).
    const CONSUMER_WARPS: u32 = 8;

    /// The tile (row, column) that the scheduler gives tile number `t` (`wg_tile` in the kernel):
    /// tiles numbered group by group, a group [`GROUP`] tile rows tall (fewer in the last one),
    /// column by column inside a group, so that the CTAs running at once share A and B in L2.
    fn tile(t: usize, tiles_m: usize, tiles_n: usize) -> (usize, usize) {
        let per_group = GROUP * tiles_n;
        let g = t / per_group;
        let first = g * GROUP;
        let rows = (tiles_m - first).min(GROUP);
        let r = t - g * per_group;
        (first + r % rows, r / rows)
    }

    /// One TMA load of a stage: its offset in the operand's part of the stage, and its box's
    /// origin as (inner, outer) coordinates of the stored matrix.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct BoxLoad {
        smem: usize,
        inner: usize,
        outer: usize,
    }

    /// What the producer loads of one operand for the tile starting at `origin` (along M or N)
    /// and the k-step starting at `k0`, as the kernel issues it.
    fn stage_loads(mn_major: bool, tile_rows: usize, origin: usize, k0: usize) -> Vec<BoxLoad> {
        if mn_major {
            (0..tile_rows / MN_BOX)
                .map(|j| BoxLoad {
                    smem: j * MN_BOX * BK * ELEM,
                    inner: origin + MN_BOX * j,
                    outer: k0,
                })
                .collect()
        } else {
            vec![BoxLoad {
                smem: 0,
                inner: k0,
                outer: origin,
            }]
        }
    }

    /// The kernel's `#define`s are the constants this module plans with.
    #[test]
    fn kernel_constants_match() {
        let src = KernelId::GemmSm90.source();
        for (name, v) in [
            ("WG_BM", BM),
            ("WG_BN", Width::Wide.bn()),
            ("WG_BN_NARROW", Width::Narrow.bn()),
            ("WG_BK", BK),
            ("WG_STAGES", Width::Wide.stages()),
            ("WG_STAGES_NARROW", Width::Narrow.stages()),
            ("WG_THREADS", THREADS as usize),
            ("WG_GROUP", GROUP),
            ("WG_CONSUMER_WARPS", CONSUMER_WARPS as usize),
            ("WG_PRODUCER_REGS", PRODUCER_REGS as usize),
            ("WG_CONSUMER_REGS", CONSUMER_REGS as usize),
        ] {
            assert!(
                src.contains(&format!("#define {name} {v}\n")),
                "{name} is not {v} in gemm_sm90.cu"
            );
        }
        for line in [
            "#define WG_BOX_BYTES (64 * 64 * 2)",
            "static constexpr int STAGES = BN == WG_BN ? WG_STAGES : WG_STAGES_NARROW;",
            "static constexpr u32 B_BYTES = BN * WG_BK * 2;",
            "static constexpr u32 STAGE_BYTES = WG_A_BYTES + B_BYTES;",
            "static constexpr u32 SMEM_BYTES = STAGES * STAGE_BYTES + 1024 + 2 * STAGES * 8;",
            "WB_WGMMA_LAYOUTS(gemm_wgmma, WG_BN, 1, WG_NO_ATTRS, bf16, true)",
            "WB_WGMMA_LAYOUTS(gemm_wgmma_n64, WG_BN_NARROW, 1, WG_NO_ATTRS, f16, false)",
            "WB_WGMMA_LAYOUTS(gemm_wgmma_c2, WG_BN, 2, WG_CLUSTER_OF_2, bf16, true)",
            "#define WG_CLUSTER_OF_2 __cluster_dims__(2, 1, 1)",
            "wg_mbar_init(empty + 8 * s, WG_CONSUMER_WARPS * CLUSTER);",
        ] {
            assert!(src.contains(line), "gemm_sm90.cu no longer has `{line}`");
        }
        assert_eq!((WGMMA_SMEM_BYTES, WGMMA_N64_SMEM_BYTES), (197_696, 197_760));
        // Two consumer warpgroups of 64 rows, each m64nBN: the tile.
        assert_eq!((BM, THREADS), (2 * 64, 3 * 128));
        // setmaxnreg counts are multiples of 8 in [24, 256] (the trade fitting the register
        // file is checked where POOL_REGS is defined).
        for r in [PRODUCER_REGS, CONSUMER_REGS] {
            assert!(r % 8 == 0 && (24..=256).contains(&r), "{r}");
        }
        assert_eq!(register_pool_check(168), Ok(()));
        assert!(register_pool_check(160).is_err());
    }

    /// The k-steps of range `split` of `splits` over `kt` (`wg_krange` in the kernel).
    fn krange(split: usize, splits: usize, kt: usize) -> std::ops::Range<usize> {
        split * kt / splits..(split + 1) * kt / splits
    }

    /// The unit (tile number, range) a CTA takes at number `u` (the kernel's unit loop).
    fn unit(u: usize, splits: usize) -> (usize, usize) {
        (u / splits, u % splits)
    }

    /// Tall narrow products with a long K are split to fill the GPU, never into ranges under
    /// [`MIN_SPLIT_STEPS`] k-steps; products with tiles enough for half the SMs are not split;
    /// N <= 128 takes the narrow tile.
    #[test]
    fn schedule_splits_k_only_when_tiles_are_few() {
        let s = |m, n, k, sms| schedule(&GemmParams::new(m, n, k), sms);
        // Llama-2-7B MLP on 132 SMs: a decoding step's down projection (32 tiles) is split in
        // four; the up projection (86 tiles) is not; a prefill of 4096 tokens is wide.
        assert_eq!(s(4096, 16, 11008, 132), (Width::Narrow, 4));
        assert_eq!(s(4096, 1, 11008, 132), (Width::Narrow, 4));
        assert_eq!(s(11008, 16, 4096, 132), (Width::Narrow, 1));
        assert_eq!(s(11008, 4096, 4096, 132), (Width::Wide, 1));
        assert_eq!(s(8192, 8192, 8192, 132), (Width::Wide, 1));
        assert_eq!(s(4096, 128, 4096, 132), (Width::Narrow, 2));
        assert_eq!(s(4096, 129, 4096, 132), (Width::Wide, 4));
        // Short K: no range under 8 k-steps.
        assert_eq!(s(128, 64, 960, 132), (Width::Narrow, 1));
        assert_eq!(s(128, 64, 1024, 132), (Width::Narrow, 2));
        // At most MAX_SPLITS.
        assert_eq!(s(1, 1, 1 << 20, 132), (Width::Narrow, MAX_SPLITS));
        for (m, n, k) in [
            (33, 17, 9),
            (1000, 17, 3000),
            (5000, 300, 70_000),
            (1, 1, 1),
        ] {
            for sms in [1, 2, 66, 132] {
                let (w, splits) = s(m, n, k, sms);
                let steps = k.div_ceil(BK);
                assert!((1..=MAX_SPLITS).contains(&splits));
                assert!(
                    splits == 1 || steps / splits >= MIN_SPLIT_STEPS,
                    "{m} {n} {k} {sms}"
                );
                assert_eq!(w == Width::Narrow, n <= 128);
            }
        }
    }

    /// Every k-step of every tile once, whatever the grid and the split; no range is empty;
    /// consecutive tiles stay inside one group of rows.
    #[test]
    fn the_schedule_covers_every_tile_and_k_step_once_in_groups() {
        for (tm, tn) in [(1, 1), (3, 5), (8, 4), (17, 3), (9, 1), (64, 32), (33, 44)] {
            let tiles = tm * tn;
            for (splits, kt) in [(1, 1), (1, 5), (2, 16), (3, 29), (8, 64), (5, 172)] {
                let units = tiles * splits;
                for grid in [1, 7, 132, units] {
                    let mut seen = vec![0u32; tiles * kt];
                    for cta in 0..grid.min(units) {
                        for u in (cta..units).step_by(grid) {
                            let (t, split) = unit(u, splits);
                            let (r, c) = tile(t, tm, tn);
                            assert!(r < tm && c < tn, "{tm}x{tn}: tile {t} -> ({r}, {c})");
                            let ks = krange(split, splits, kt);
                            assert!(!ks.is_empty(), "range {split} of {splits} over {kt}");
                            for k in ks {
                                seen[(r * tn + c) * kt + k] += 1;
                            }
                        }
                    }
                    assert!(
                        seen.iter().all(|&n| n == 1),
                        "{tm}x{tn} {splits} {kt} {grid}"
                    );
                }
            }
            for t in 0..tiles {
                let g = t / (GROUP * tn);
                let (r, _) = tile(t, tm, tn);
                assert!(
                    (g * GROUP..(g + 1) * GROUP).contains(&r),
                    "{tm}x{tn} tile {t}"
                );
            }
        }
        let src = KernelId::GemmSm90.source();
        for line in [
            "kb = (int)((long long)split * KT / splits);",
            "ke = (int)((long long)(split + 1) * KT / splits);",
            "wg_tile(u / splits, rows_m, tiles_n, WG_GROUP, pm, tn);",
            "wg_krange(u % splits, splits, KT, w.kb, w.ke);",
            "w.m0 = (pm * CLUSTER + (int)rank) * WG_BM;",
            "w.n0 = tn * BN;",
        ] {
            assert!(src.contains(line), "gemm_sm90.cu no longer has `{line}`");
        }
    }

    /// The bytes of a stage's boxes are exactly what the producer tells the "full" barrier
    /// to expect (otherwise the consumers wait forever, or read too early), the boxes tile
    /// their part of the stage without overlap, and together they cover the tile's rows and
    /// the k-step, in all four layouts and both widths.
    #[test]
    fn stage_boxes_carry_the_awaited_bytes_and_cover_the_tile() {
        for mn_major in [false, true] {
            for (tile_rows, part_bytes) in [
                (BM, A_BYTES),
                (Width::Wide.bn(), Width::Wide.b_bytes()),
                (Width::Narrow.bn(), Width::Narrow.b_bytes()),
            ] {
                let [bc, br] = box_dims(mn_major, tile_rows).map(|d| d as usize);
                assert_eq!(bc * ELEM, 128, "a box row spans the 128-byte swizzle");
                assert!(br <= 256);
                let (origin, k0) = (3 * tile_rows, 5 * BK);
                let loads = stage_loads(mn_major, tile_rows, origin, k0);
                assert_eq!(loads.len() * bc * br * ELEM, part_bytes);
                let mut covered = HashMap::new();
                for l in &loads {
                    // 1024-byte aligned (the swizzle pattern), inside the part, no overlap.
                    assert_eq!(l.smem % 1024, 0);
                    assert!(l.smem + bc * br * ELEM <= part_bytes);
                    for i in 0..bc {
                        for o in 0..br {
                            let (mn, k) = if mn_major {
                                (l.inner + i, l.outer + o)
                            } else {
                                (l.outer + o, l.inner + i)
                            };
                            assert!(covered.insert((mn, k), ()).is_none(), "{l:?} overlaps");
                        }
                    }
                }
                for mn in origin..origin + tile_rows {
                    for k in k0..k0 + BK {
                        assert!(covered.contains_key(&(mn, k)), "({mn}, {k}) not loaded");
                    }
                }
            }
        }
        assert_eq!(Width::Wide.stage_bytes(), 48 * 1024);
        assert_eq!(Width::Narrow.stage_bytes(), 24 * 1024);
        // What the producer expects: the stage of its width.
        let src = KernelId::GemmSm90.source();
        assert!(src.contains("wg_mbar_expect_tx(f, Ring::STAGE_BYTES);"));
        assert!(src.contains("for (int j = 0; j < BN / 64; ++j)"));
    }

    /// A shared-memory matrix descriptor's addressing fields, in bytes from the stage start.
    #[derive(Clone, Copy, Debug)]
    struct Desc {
        start: usize,
        lbo: usize,
        sbo: usize,
    }

    /// The consumer's descriptors (`wg_desc` calls in the kernel) for A of consumer `cw` and
    /// for B, at k-step `kk` of a stage; MN-major operands get LBO = one 64-wide box, and SBO
    /// is 8 rows of 128 bytes either way.
    fn desc_a(ta: bool, cw: usize, kk: usize) -> Desc {
        let start = cw * 64 * 128 + if ta { kk * 2048 } else { kk * 32 };
        let lbo = if ta { MN_BOX * BK * ELEM } else { 16 };
        Desc {
            start,
            lbo,
            sbo: 1024,
        }
    }
    fn desc_b(tb: bool, kk: usize) -> Desc {
        let start = A_BYTES + if tb { kk * 32 } else { kk * 2048 };
        let lbo = if tb { 16 } else { MN_BOX * BK * ELEM };
        Desc {
            start,
            lbo,
            sbo: 1024,
        }
    }

    /// Where wgmma reads element (mn, k) of its operand (k < 16, one instruction) through
    /// descriptor `d`, by the PTX ISA's canonical layouts for 128-byte swizzle with 16-bit
    /// elements (T = 8 per 16 bytes), before the swizzle: MN-major
    /// `((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))`, K-major `((8,m),(T,2k)):((8T,SBO),(1,T))`.
    fn wgmma_reads(mn_major: bool, d: Desc, mn: usize, k: usize) -> usize {
        if mn_major {
            d.start + 2 * (mn % 64) + (mn / 64) * d.lbo + (k % 8) * 128 + (k / 8) * d.sbo
        } else {
            d.start + (mn % 8) * 128 + (mn / 8) * d.sbo + 2 * k
        }
    }

    /// Where the producer's TMA boxes put element (mn, k) of an operand tile of `tile_rows`
    /// (from `stage_loads`), before the swizzle: a box row (its outer index) is 128 bytes.
    fn tma_wrote(mn_major: bool, tile_rows: usize, mn: usize, k: usize) -> usize {
        let (inner, outer) = if mn_major { (mn, k) } else { (k, mn) };
        let [bc, br] = box_dims(mn_major, tile_rows).map(|d| d as usize);
        let l = stage_loads(mn_major, tile_rows, 0, 0)
            .into_iter()
            .find(|l| {
                (l.inner..l.inner + bc).contains(&inner) && (l.outer..l.outer + br).contains(&outer)
            })
            .expect("every element is in a box");
        l.smem + (outer - l.outer) * bc * ELEM + (inner - l.inner) * ELEM
    }

    /// Every element each wgmma of a stage reads (both consumers' A halves, B, the four
    /// k-steps, all four layouts) is where TMA wrote that element. TMA and wgmma apply the
    /// 128-byte swizzle to the same address bits, so equal linear offsets from 1024-byte
    /// aligned atoms mean equal addresses; the descriptors' starts keep that alignment (MN-major
    /// k-steps move by whole atoms; K-major ones stay inside the first 128 bytes of a row).
    #[test]
    fn descriptors_read_what_tma_wrote() {
        for major in [false, true] {
            for kk in 0..BK / 16 {
                for cw in 0..2 {
                    let d = desc_a(major, cw, kk);
                    assert!(if major {
                        d.start.is_multiple_of(1024)
                    } else {
                        d.start % 1024 < 128
                    });
                    for m in 0..64 {
                        for k in 0..16 {
                            assert_eq!(
                                wgmma_reads(major, d, m, k),
                                tma_wrote(major, BM, cw * 64 + m, kk * 16 + k),
                                "A, MN-major {major}, consumer {cw}, k-step {kk}, ({m}, {k})"
                            );
                        }
                    }
                }
                // B is MN-major when not transposed; both widths.
                let d = desc_b(!major, kk);
                for bn in [Width::Wide.bn(), Width::Narrow.bn()] {
                    for n in 0..bn {
                        for k in 0..16 {
                            assert_eq!(
                                wgmma_reads(major, d, n, k),
                                A_BYTES + tma_wrote(major, bn, n, kk * 16 + k),
                                "B {bn} wide, MN-major {major}, k-step {kk}, ({n}, {k})"
                            );
                        }
                    }
                }
            }
        }
        // The transcription matches the kernel's calls.
        let src = KernelId::GemmSm90.source();
        for call in [
            "TA ? wg_desc(sa + kk * 2048, WG_BOX_BYTES, 1024)",
            ": wg_desc(sa + kk * 32, 16, 1024)",
            "TB ? wg_desc(sb + kk * 32, 16, 1024)",
            ": wg_desc(sb + kk * 2048, WG_BOX_BYTES, 1024)",
            "ring + s * Ring::STAGE_BYTES + cw * (64 * 128)",
        ] {
            assert!(src.contains(call), "gemm_sm90.cu no longer has `{call}`");
        }
    }

    /// `wg_quad_transpose`: lane q of a quad receives w[p] = lane p's v[q], through the same
    /// rounds (partner q ^ x sends its v[q ^ x ^ x]) as the kernel.
    fn quad_transpose(v: [[u64; 4]; 4]) -> [[u64; 4]; 4] {
        let mut w = v;
        for x in 1..4 {
            let sent: Vec<u64> = (0..4).map(|q| v[q][q ^ x]).collect();
            for q in 0..4 {
                w[q][q ^ x] = sent[q ^ x]; // __shfl_xor_sync(.., x): the partner's value
            }
        }
        w
    }

    /// The epilogue (the m64n256 accumulator layout: per warp 16 rows; per thread, columns
    /// 8j + 2(lane % 4) + {0, 1} of rows lane / 4 and lane / 4 + 8 in registers 4j .. 4j + 3;
    /// then the quad transpose and one 8-column store per lane, row and 32-column group)
    /// stores every element of C once, with the value computed for that element, partial
    /// edge tiles included.
    #[test]
    fn every_output_element_is_stored_once_with_its_value() {
        for width in [Width::Wide, Width::Narrow] {
            let bn = width.bn();
            for (m, n) in [
                (200usize, 300usize),
                (128, 256),
                (1, 1),
                (129, 257),
                (64, 520),
                (8, 24),
                (300, 17),
            ] {
                let (tm, tn) = (m.div_ceil(BM), n.div_ceil(bn));
                let mut stored = vec![0u8; m * n];
                let label = |r: usize, c: usize| (r * 100_000 + c) as u64;
                for t in 0..tm * tn {
                    let (ti, tj) = tile(t, tm, tn);
                    let (m0, n0) = (ti * BM, tj * bn);
                    for r in thread_rows(m0) {
                        for g in 0..bn / 32 {
                            // v[q][t]: lane q's pair of block j = 4g + t, labelled by the
                            // element its first value was computed for.
                            let mut v = [[0u64; 4]; 4];
                            for (q, vq) in v.iter_mut().enumerate() {
                                for (t, x) in vq.iter_mut().enumerate() {
                                    *x = label(r, n0 + 8 * (4 * g + t) + 2 * q);
                                }
                            }
                            let w = quad_transpose(v);
                            for (q, wq) in w.iter().enumerate() {
                                let c = n0 + 32 * g + 8 * q;
                                if r >= m {
                                    continue;
                                }
                                for e in 0..8 {
                                    if c + e < n {
                                        // Element e is half e % 2 of pair e / 2.
                                        let want = label(r, c + e);
                                        assert_eq!(wq[e / 2] + (e % 2) as u64, want);
                                        stored[r * n + c + e] += 1;
                                    }
                                }
                            }
                        }
                    }
                }
                assert!(stored.iter().all(|&k| k == 1), "{bn} wide, {m}x{n}");
            }
        }
    }

    /// The rows a quad of lanes holds in a tile starting at row `m0`, over the two consumer
    /// warpgroups, their 4 warps, 8 quads and the two halves (rows lane / 4 and lane / 4 + 8
    /// of the warp's 16).
    fn thread_rows(m0: usize) -> impl Iterator<Item = usize> {
        (0..2).flat_map(move |cw| {
            (0..4).flat_map(move |warp| {
                (0..8).flat_map(move |quad| {
                    (0..2).map(move |h| m0 + cw * 64 + warp * 16 + quad + 8 * h)
                })
            })
        })
    }

    /// With K split, every unit (a tile's k-range) stores each of its tile's partial sums
    /// once into its range's slice of the workspace, from the register that holds it
    /// (`wg_store_partial`: per 8-column block j, columns 8j + 2q + {0, 1} in registers
    /// 4j + 2h + {0, 1}); so the reduction, which adds every slice, sees each once.
    #[test]
    fn every_partial_sum_is_stored_once_in_its_ranges_slice() {
        for width in [Width::Wide, Width::Narrow] {
            let bn = width.bn();
            for (m, n, splits) in [(300usize, 17usize, 3usize), (128, 64, 2), (129, 130, 5)] {
                let (tm, tn) = (m.div_ceil(BM), n.div_ceil(bn));
                let mut ws = vec![0u8; splits * m * n];
                for u in 0..tm * tn * splits {
                    let (t, split) = unit(u, splits);
                    let (ti, tj) = tile(t, tm, tn);
                    let (m0, n0) = (ti * BM, tj * bn);
                    for (i, r) in thread_rows(m0).enumerate() {
                        let h = i % 2;
                        if r >= m {
                            continue;
                        }
                        for q in 0..4 {
                            for j in 0..bn / 8 {
                                let c = n0 + 8 * j + 2 * q;
                                for (e, reg) in [(0, 4 * j + 2 * h), (1, 4 * j + 2 * h + 1)] {
                                    assert!(reg < bn / 2, "register {reg} of {}", bn / 2);
                                    if c + e < n {
                                        ws[(split * m + r) * n + c + e] += 1;
                                    }
                                }
                            }
                        }
                    }
                }
                assert!(ws.iter().all(|&k| k == 1), "{bn} wide, {m}x{n}, {splits}");
            }
        }
        let src = KernelId::GemmSm90.source();
        for line in [
            "const float x = acc[4 * j + 2 * h], y = acc[4 * j + 2 * h + 1];",
            "const int c = n0 + 8 * j + 2 * q;",
            "wg_store_partial<BN>(acc, ws + (size_t)(u % splits) * M * N, M, N, r0, n0, q);",
            "for (int s = 0; s < splits; ++s) sum += ws[(size_t)s * mn + i];",
        ] {
            assert!(src.contains(line), "gemm_sm90.cu no longer has `{line}`");
        }
    }

    /// An mbarrier as the PTX ISA defines it: a phase completes when its pending arrivals and
    /// its transaction count both reach zero; waiting on a parity succeeds once the phase of
    /// that parity has completed (a fresh barrier's "previous" phase, parity 1, counts as
    /// completed).
    struct Barrier {
        count: u32,
        pending: u32,
        tx: i64,
        completed: u32,
    }

    impl Barrier {
        fn new(count: u32) -> Self {
            Self {
                count,
                pending: count,
                tx: 0,
                completed: 0,
            }
        }
        fn passed(&self, parity: u32) -> bool {
            (self.completed & 1) != parity
        }
        fn settle(&mut self) {
            if self.pending == 0 && self.tx == 0 {
                self.completed += 1;
                self.pending = self.count;
            }
        }
        fn arrive(&mut self) -> Result<(), String> {
            if self.pending == 0 {
                return Err("more arrivals than the barrier's count".into());
            }
            self.pending -= 1;
            self.settle();
            Ok(())
        }
        fn arrive_expect_tx(&mut self, bytes: i64) -> Result<(), String> {
            self.tx += bytes;
            self.arrive()
        }
        fn complete_tx(&mut self, bytes: i64) {
            self.tx -= bytes;
            self.settle();
        }
    }

    /// A bug planted in the ring protocol, to show that [`run_protocol`] catches it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Mutation {
        None,
        /// Consumers arrive on their own CTA's "empty" barrier only, so in a cluster the other
        /// producer (whose multicast half of B lands here too) never learns of the release.
        ReleaseOwnCtaOnly,
        /// Consumers release the stage of the group they just issued, still being read,
        /// instead of the previous group's (and so have none left to release at the end).
        ReleaseWrongStage,
        /// The producer expects one 64-wide box of B fewer than the stage's bytes.
        ExpectTooFewBytes,
    }

    /// One consumer warp's place in the kernel's loop.
    #[derive(Clone, Copy)]
    struct Warp {
        it: usize,
        prev: usize,
    }

    /// The kernel's ring protocol for `width`, run by `ctas` CTAs (1, or a cluster of 2 on
    /// wide tiles) in step through units of `steps[i]` k-steps each (a tile, or a tile's
    /// k-range: ranges differ by a step at most). Each producer waits its own "empty" barrier
    /// with the flipped parity (8 arrivals per CTA of the cluster), expects the stage's bytes
    /// on its own "full" barrier and issues its boxes (the `nn` layout): A into its own stage,
    /// and its share of B (all of it alone; half of it in a cluster, multicast: landing in
    /// every CTA, possibly before that CTA's producer expected it). Each consumer warp reads a
    /// stage once its "full" phase completes (a wgmma group), releases the previous group's
    /// stage once a newer one is issued and the last at the unit's end, on every CTA's "empty"
    /// barrier. Loads land late, in random order. `mutation` plants a bug. Fails on a deadlock,
    /// on a warp reading a stage before every box of its k-step landed there, on a box landing
    /// in a stage that some warp of that CTA has not yet finished reading from the stage's
    /// previous k-step, or on an arrival at a barrier with none pending.
    fn run_protocol(
        width: Width,
        ctas: usize,
        steps: &[usize],
        seed: u64,
        mutation: Mutation,
    ) -> Result<(), String> {
        let stages = width.stages();
        let total: usize = steps.iter().sum();
        // Where each iteration stands in its unit: (first, last).
        let place: Vec<(bool, bool)> = steps
            .iter()
            .flat_map(|&n| (0..n).map(move |k| (k == 0, k + 1 == n)))
            .collect();
        // What a producer issues per k-step: (bytes, lands in every CTA).
        let b_boxes = width.bn() / MN_BOX / ctas;
        let issues: Vec<(i64, bool)> = std::iter::once((A_BYTES as i64, false))
            .chain((0..b_boxes).map(|_| ((MN_BOX * BK * ELEM) as i64, ctas > 1)))
            .collect();
        // Each CTA receives its own A and every producer's share of B: the stage's bytes.
        let received: i64 = A_BYTES as i64 + ctas as i64 * (b_boxes * MN_BOX * BK * ELEM) as i64;
        assert_eq!(received, width.stage_bytes() as i64);
        let boxes = 1 + ctas * b_boxes;
        let expected = match mutation {
            Mutation::ExpectTooFewBytes => received - (MN_BOX * BK * ELEM) as i64,
            _ => received,
        };
        let warps_n = CONSUMER_WARPS as usize;
        let barriers = |count: u32| -> Vec<Vec<Barrier>> {
            (0..ctas)
                .map(|_| (0..stages).map(|_| Barrier::new(count)).collect())
                .collect()
        };
        let mut full = barriers(1);
        let mut empty = barriers(CONSUMER_WARPS * ctas as u32);
        let mut landed: Vec<HashMap<usize, usize>> = vec![HashMap::new(); ctas];
        // The k-steps each warp has finished reading (whatever barrier it then arrived on).
        let mut released = vec![vec![0usize; warps_n]; ctas];
        let mut producer = vec![0usize; ctas];
        let mut warps = vec![vec![Warp { it: 0, prev: 0 }; warps_n]; ctas];
        let mut in_flight: Vec<(usize, usize, usize, i64)> = Vec::new(); // (cta, stage, it, bytes)
        let mut next = xorshift(seed);
        #[derive(Clone, Copy)]
        enum Move {
            Produce(usize),
            Consume(usize, usize),
            Land(usize),
        }
        loop {
            let mut ready = Vec::new();
            for c in 0..ctas {
                let it = producer[c];
                if it < total && empty[c][it % stages].passed((((it / stages) & 1) ^ 1) as u32) {
                    ready.push(Move::Produce(c));
                }
                for (w, st) in warps[c].iter().enumerate() {
                    let it = st.it;
                    if it < total && full[c][it % stages].passed(((it / stages) & 1) as u32) {
                        ready.push(Move::Consume(c, w));
                    }
                }
            }
            ready.extend((0..in_flight.len()).map(Move::Land));
            if ready.is_empty() {
                let done = producer.iter().all(|&p| p == total)
                    && warps.iter().flatten().all(|w| w.it == total);
                return if done {
                    Ok(())
                } else {
                    Err(format!("deadlock: producers at {producer:?}"))
                };
            }
            match ready[next(ready.len())] {
                Move::Produce(c) => {
                    let it = producer[c];
                    let s = it % stages;
                    full[c][s].arrive_expect_tx(expected)?;
                    for &(bytes, everywhere) in &issues {
                        for d in 0..ctas {
                            if everywhere || d == c {
                                in_flight.push((d, s, it, bytes));
                            }
                        }
                    }
                    producer[c] += 1;
                }
                Move::Consume(c, w) => {
                    let st = &mut warps[c][w];
                    let (it, s) = (st.it, st.it % stages);
                    if landed[c].get(&it) != Some(&boxes) {
                        return Err(format!("CTA {c} warp {w} read k-step {it} early"));
                    }
                    let release = |empty: &mut Vec<Vec<Barrier>>, stage: usize| {
                        for (d, e) in empty.iter_mut().enumerate() {
                            if d == c || mutation != Mutation::ReleaseOwnCtaOnly {
                                e[stage].arrive()?;
                            }
                        }
                        Ok::<_, String>(())
                    };
                    // wait_group 1 retires the previous group (wait_group 0 at the unit's
                    // end, this one too): the warp has read those stages and releases them.
                    let (first, last) = place[it];
                    let retired: Vec<usize> = [(!first, st.prev), (last, s)]
                        .into_iter()
                        .filter_map(|(done, stage)| done.then_some(stage))
                        .collect();
                    released[c][w] += retired.len();
                    let arrive_on = match mutation {
                        Mutation::ReleaseWrongStage => vec![s],
                        _ => retired,
                    };
                    for stage in arrive_on {
                        release(&mut empty, stage)?;
                    }
                    st.prev = s;
                    st.it += 1;
                }
                Move::Land(i) => {
                    let (d, s, it, bytes) = in_flight.swap_remove(i);
                    if it >= stages && !released[d].iter().all(|&r| r > it - stages) {
                        return Err(format!(
                            "overwrite: k-step {it} landed in CTA {d} stage {s} before k-step {} \
                             was read there",
                            it - stages
                        ));
                    }
                    *landed[d].entry(it).or_insert(0) += 1;
                    full[d][s].complete_tx(bytes);
                }
            }
        }
    }

    /// A small deterministic generator: `next(n)` is in `0..n`.
    fn xorshift(seed: u64) -> impl FnMut(usize) -> usize {
        let mut rng = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        }
    }

    #[test]
    fn the_ring_protocol_neither_deadlocks_nor_overwrites() {
        for width in [Width::Wide, Width::Narrow] {
            for (tiles, kt) in [
                (1, 1),
                (1, 3),
                (3, 1),
                (2, 4),
                (3, 5),
                (4, 9),
                (5, 2),
                (2, 17),
            ] {
                let steps = vec![kt; tiles];
                for seed in 0..100 {
                    let r = run_protocol(width, 1, &steps, seed, Mutation::None);
                    assert_eq!(r, Ok(()), "{width:?} {steps:?} seed {seed}");
                }
            }
            // Split K: units of uneven ranges, as a CTA of a split product walks them.
            for (units, splits, kt) in [(3, 3, 29), (5, 2, 9), (4, 5, 42)] {
                let steps: Vec<usize> = (0..units)
                    .map(|u| krange(unit(u, splits).1, splits, kt).len())
                    .collect();
                for seed in 0..100 {
                    let r = run_protocol(width, 1, &steps, seed, Mutation::None);
                    assert_eq!(r, Ok(()), "{width:?} {steps:?} seed {seed}");
                }
            }
        }
    }

    /// Clusters walk units of two vertically adjacent tiles (`rows_m` = ceil(tiles_m / 2)
    /// rows of them): every tile is computed once, whatever the number of clusters, and a
    /// CTA whose tile row is past the last one only lends its half of B (it reads zeros and
    /// stores nothing). Both CTAs of a unit share its tile column, so they load the same B.
    #[test]
    fn cluster_units_cover_every_tile_once() {
        for (tm, tn) in [(2usize, 1usize), (3, 5), (17, 32), (8, 4), (64, 32), (9, 1)] {
            let rows = tm.div_ceil(CLUSTER);
            let units = rows * tn;
            for clusters in [1, 3, 66, units] {
                let mut seen = vec![0u32; tm * tn];
                for cl in 0..clusters.min(units) {
                    for u in (cl..units).step_by(clusters) {
                        let (t, split) = unit(u, 1);
                        assert_eq!(split, 0);
                        let (pm, col) = tile(t, rows, tn);
                        for rank in 0..CLUSTER {
                            let r = pm * CLUSTER + rank;
                            if r < tm {
                                seen[r * tn + col] += 1;
                            }
                        }
                    }
                }
                assert!(
                    seen.iter().all(|&n| n == 1),
                    "{tm}x{tn}, {clusters} clusters"
                );
            }
        }
    }

    /// What a CTA of rank `rank` loads of B in a cluster (the kernel's multicast loads): its
    /// half of the 256 tile rows, at the same place in the stage as the single-CTA producer
    /// puts those rows.
    fn cluster_b_loads(mn_major: bool, rank: usize, origin: usize, k0: usize) -> Vec<BoxLoad> {
        let bn = Width::Wide.bn();
        let half = rank * Width::Wide.b_bytes() / CLUSTER;
        let nh = origin + rank * bn / CLUSTER;
        if mn_major {
            (0..bn / 128)
                .map(|j| BoxLoad {
                    smem: half + j * MN_BOX * BK * ELEM,
                    inner: nh + MN_BOX * j,
                    outer: k0,
                })
                .collect()
        } else {
            vec![BoxLoad {
                smem: half,
                inner: k0,
                outer: nh,
            }]
        }
    }

    /// The two CTAs' multicast halves of B put every element of the B tile exactly where the
    /// single-CTA producer puts it (so the consumers' descriptors read the same layout), once;
    /// each CTA's "full" barrier then receives its own A and both halves: the stage's bytes.
    #[test]
    fn cluster_halves_of_b_rebuild_the_stage_of_one_cta() {
        let bn = Width::Wide.bn();
        for mn_major in [false, true] {
            let [bc, br] = box_dims(mn_major, bn / CLUSTER).map(|d| d as usize);
            assert!(br <= 256 && bc * ELEM == 128);
            let (origin, k0) = (5 * bn, 3 * BK);
            let mut placed = HashMap::new();
            let mut bytes = 0;
            for rank in 0..CLUSTER {
                for l in cluster_b_loads(mn_major, rank, origin, k0) {
                    assert_eq!(l.smem % 1024, 0);
                    bytes += bc * br * ELEM;
                    for i in 0..bc {
                        for o in 0..br {
                            let (n, k) = if mn_major {
                                (l.inner + i, l.outer + o)
                            } else {
                                (l.outer + o, l.inner + i)
                            };
                            let at = l.smem + o * bc * ELEM + i * ELEM;
                            assert!(placed.insert((n, k), at).is_none(), "{l:?} overlaps");
                        }
                    }
                }
            }
            assert_eq!(bytes, Width::Wide.b_bytes());
            assert_eq!(A_BYTES + bytes, Width::Wide.stage_bytes());
            for n in 0..bn {
                for k in 0..BK {
                    assert_eq!(
                        placed[&(origin + n, k0 + k)],
                        tma_wrote(mn_major, bn, n, k),
                        "MN-major {mn_major}: ({n}, {k})"
                    );
                }
            }
        }
        let src = KernelId::GemmSm90.source();
        for line in [
            "const u32 half = rank * (Ring::B_BYTES / 2);",
            "const int nh = n0 + (int)rank * (BN / 2);",
            "wg_tma_load_mc(sb + half, tma_b, k0, nh, f, 0x3);",
            "wg_tma_load_mc(sb + half + j * WG_BOX_BYTES, tma_b, nh + 64 * j, k0, f,",
            "for (int j = 0; j < BN / 128; ++j)",
        ] {
            assert!(src.contains(line), "gemm_sm90.cu no longer has `{line}`");
        }
    }

    #[test]
    fn the_cluster_ring_protocol_neither_deadlocks_nor_overwrites() {
        for (units, kt) in [(1, 1), (1, 5), (3, 2), (2, 9), (4, 4), (5, 7)] {
            let steps = vec![kt; units];
            for seed in 0..150 {
                let r = run_protocol(Width::Wide, CLUSTER, &steps, seed, Mutation::None);
                assert_eq!(r, Ok(()), "{steps:?} seed {seed}");
            }
        }
        let src = KernelId::GemmSm90.source();
        for line in [
            "wg_mbar_wait<(CLUSTER > 1)>(empty + 8 * s, (use & 1) ^ 1);",
            "for (u32 r = 0; r < (u32)CLUSTER; ++r) wg_mbar_arrive_cluster(bar, r);",
            "if (CLUSTER > 1) wg_cluster_sync();",
        ] {
            assert!(src.contains(line), "gemm_sm90.cu no longer has `{line}`");
        }
    }

    /// `mutation`, planted in the protocol of each of `runs` (tile width, CTAs) over uneven
    /// units that wrap the ring, fails for some seed with an error naming `check` (the check
    /// meant to catch it), while the same runs pass unmutated for every seed: so a check made
    /// vacuous, or a scheduler that stops landing loads late, fails a test.
    fn assert_caught(mutation: Mutation, runs: &[(Width, usize)], check: &str) {
        let steps = [9, 4, 9];
        for &(width, ctas) in runs {
            let mut errs = Vec::new();
            for seed in 0..50 {
                let r = run_protocol(width, ctas, &steps, seed, Mutation::None);
                assert_eq!(r, Ok(()), "{width:?} x{ctas} seed {seed}");
                errs.extend(run_protocol(width, ctas, &steps, seed, mutation).err());
            }
            assert!(
                errs.iter().any(|e| e.contains(check)),
                "{mutation:?} on {width:?} x{ctas}: no `{check}` in {} errors {:?}",
                errs.len(),
                &errs[..errs.len().min(3)]
            );
        }
    }

    #[test]
    fn the_protocol_emulation_catches_a_release_on_the_own_cta_only() {
        // The other producer waits forever for this CTA's consumers.
        assert_caught(
            Mutation::ReleaseOwnCtaOnly,
            &[(Width::Wide, CLUSTER)],
            "deadlock",
        );
    }

    #[test]
    fn the_protocol_emulation_catches_a_release_of_the_wrong_stage() {
        let runs = [(Width::Wide, 1), (Width::Narrow, 1), (Width::Wide, CLUSTER)];
        assert_caught(Mutation::ReleaseWrongStage, &runs, "overwrite");
    }

    #[test]
    fn the_protocol_emulation_catches_too_few_expected_bytes() {
        let runs = [(Width::Wide, 1), (Width::Narrow, 1), (Width::Wide, CLUSTER)];
        assert_caught(Mutation::ExpectTooFewBytes, &runs, "early");
    }

    /// Every layout plans one launch of its own entry point (of the width [`schedule`]
    /// chose) with maps over the stored operands, a padded copy first where a row is not a
    /// multiple of 8 elements, a persistent grid of at most one CTA per SM, and, when K is
    /// split, a workspace of one fp32 C per range and the reduction into C after the launch.
    #[test]
    fn plans_map_the_stored_operands_pad_only_odd_rows_and_reduce_split_k() {
        use wattbench_core::tensor::generate_case_inputs;
        use wattbench_core::{Case, Params};
        for (m, n, k, sms) in [
            (1000usize, 1096usize, 1000usize, 132u32),
            (2056, 8192, 64, 132),
            (33, 17, 9, 132),
            (300, 600, 64, 2),
            (1000, 17, 3000, 132),
            (700, 1, 2050, 132),
            (256, 200, 4096, 16),
        ] {
            for (ta, tb, kernels) in [
                (false, false, Kernels::Wgmma),
                (false, true, Kernels::WgmmaCluster),
                (true, false, Kernels::Wgmma),
                (true, true, Kernels::WgmmaCluster),
                (false, false, Kernels::WgmmaCluster),
                (true, false, Kernels::WgmmaCluster),
            ] {
                for dtype in [DType::Bf16, DType::F16] {
                    let p = GemmParams::new(m, n, k).transposed(ta, tb);
                    let case = Case {
                        params: Params::Gemm(p),
                        mode: Mode::Infer,
                        dtype,
                        tag: None,
                    };
                    let inputs = generate_case_inputs(&case, 1);
                    let bld = crate::ops::build(&case, kernels, sms, &inputs)
                        .unwrap_or_else(|e| panic!("{case}: {e}"));
                    let launches: Vec<_> = bld
                        .steps()
                        .iter()
                        .filter_map(|s| match s {
                            Step::Launch(l, a) => Some((l, a)),
                            _ => None,
                        })
                        .collect();
                    let (width, splits) = schedule(&p, sms as usize);
                    let tiles_m = m.div_ceil(BM);
                    let cluster = kernels == Kernels::WgmmaCluster
                        && clustered(width, splits, tiles_m, sms as usize);
                    let ty = if dtype == DType::Bf16 { "bf16" } else { "f16" };
                    let at = launches
                        .iter()
                        .position(|(l, _)| l.entry.starts_with("gemm_wgmma"))
                        .unwrap_or_else(|| panic!("{case}: no GEMM launch"));
                    let (gemm, args) = launches[at];
                    assert_eq!(
                        gemm.entry,
                        format!("{}_{ty}_{}", width.prefix(cluster), transpose_suffix(&p))
                    );
                    let tiles_n = n.div_ceil(width.bn());
                    let grid = if cluster {
                        // Whole clusters, each on two SMs.
                        (tiles_m.div_ceil(2) * tiles_n).min(sms as usize / 2) * 2
                    } else {
                        (tiles_m * tiles_n * splits).min(sms as usize)
                    };
                    assert_eq!(gemm.grid, (grid as u32, 1, 1), "{case}");
                    assert!(!cluster || grid % 2 == 0);
                    assert_eq!((gemm.block, gemm.smem), ((384, 1, 1), width.smem_bytes()));
                    let [Arg::TensorMap(am), Arg::TensorMap(bm), Arg::Ptr(c), ws, ..] = args[..]
                    else {
                        panic!("{case}: {args:?}")
                    };
                    assert_eq!(args[args.len() - 1], Arg::Int(splits));
                    let a_stored = if ta { [k, m] } else { [m, k] };
                    let b_stored = if tb { [n, k] } else { [k, n] };
                    assert_eq!([am.rows, am.cols], a_stored);
                    assert_eq!([bm.rows, bm.cols], b_stored);
                    assert_eq!(am.box_dims, box_dims(ta, BM));
                    let b_rows = width.bn() / if cluster { 2 } else { 1 };
                    assert_eq!(bm.box_dims, box_dims(!tb, b_rows));
                    for map in [am, bm] {
                        assert_eq!(map.ld, map.cols.next_multiple_of(8));
                        assert_eq!(map.check(2), Ok(()));
                    }
                    let pads = launches[..at]
                        .iter()
                        .filter(|(l, _)| l.entry == "pad_rows_u16")
                        .count();
                    let want = usize::from(am.cols % 8 != 0) + usize::from(bm.cols % 8 != 0);
                    assert_eq!(pads, want, "{case}");
                    let after: Vec<_> = launches[at + 1..].iter().collect();
                    if splits == 1 {
                        assert_eq!(ws, NULL, "{case}");
                        assert!(after.is_empty(), "{case}: {after:?}");
                    } else {
                        let Arg::Ptr(Ptr::To(w)) = ws else {
                            panic!("{case}: no workspace")
                        };
                        assert_eq!(w.len(), splits * m * n);
                        assert_eq!(bld.bufs()[w.buf().index()].dtype, DType::F32);
                        let [(reduce, rargs)] = after[..] else {
                            panic!("{case}: {after:?}")
                        };
                        assert_eq!(reduce.entry, format!("gemm_splitk_reduce_{ty}"));
                        assert_eq!(
                            rargs[..],
                            [ws, Arg::Ptr(c), Arg::Int(m * n), Arg::Int(splits)]
                        );
                    }
                    // What the GPU tests predict from the schedule is what the plan launches.
                    let entries: Vec<&str> = launches
                        .iter()
                        .map(|(l, _)| l.entry.as_str())
                        .filter(|e| *e != "pad_rows_u16")
                        .collect();
                    let cluster_asked = kernels == Kernels::WgmmaCluster;
                    assert_eq!(
                        entries,
                        wgmma_entry_points(&p, dtype, sms, cluster_asked),
                        "{case}"
                    );
                    assert_eq!(bld.outputs().len(), 1);
                    assert_eq!(bld.outputs()[0].len(), m * n);
                }
            }
        }
        let p = GemmParams::new(300, 300, 64);
        assert_eq!(
            wgmma_entry_points(&p, DType::F32, 132, true),
            Vec::<String>::new()
        );
    }
}
