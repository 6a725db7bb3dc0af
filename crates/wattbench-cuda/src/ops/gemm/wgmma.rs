//! The Hopper GEMM (`gemm_sm90.cu`, sm_90a; UNVERIFIED ON HARDWARE): its launch (a
//! persistent grid of at most one CTA per SM, 384 threads, [`WGMMA_SMEM_BYTES`] of dynamic
//! shared memory) and the TMA tensor maps of its operands (after a padded copy where a row is
//! not a multiple of 16 bytes).
//!
//! The tests transcribe the kernel's tile order, stage loads, descriptors, epilogue and
//! barrier protocol and emulate on the CPU what a CPU can check of them: the schedule covers
//! every tile once; a stage's boxes carry exactly the transaction bytes the kernel waits for
//! and cover the tile; every element each wgmma reads through its descriptor (by the PTX ISA's
//! canonical layouts) is where TMA wrote it, in all four layouts; every output element is
//! stored once, with its own value, after the quad transpose; and the mbarrier protocol of the
//! ring neither deadlocks nor overwrites a stage still being read. What they cannot show is
//! that the hardware agrees with this reading of the ISA: the GPU tests do.
use super::super::elementwise::pad_rows;
use super::transpose_suffix;
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::plan::{Arg, BufId, Launch, PlanBuilder, TensorMap2d, View};
use wattbench_core::workload::GemmParams;
use wattbench_core::DType;

/// Output tile rows (`WG_BM`): two consumer warpgroups of 64 rows.
const BM: usize = 128;
/// Output tile columns (`WG_BN`): one m64n256k16 wgmma per warpgroup and k-step.
const BN: usize = 256;
/// K per stage (`WG_BK`): 64 bf16 = the 128-byte swizzle span.
const BK: usize = 64;
/// Stages of the shared-memory ring (`WG_STAGES`).
const STAGES: usize = 4;
/// Threads per CTA (`WG_THREADS`): a producer and two consumer warpgroups.
const THREADS: u32 = 384;
/// Width of an MN-major box (64 elements = 128 bytes) and its bytes (`WG_BOX_BYTES`).
const MN_BOX: usize = 64;
const ELEM: usize = 2;
const A_BYTES: usize = BM * BK * ELEM;
const B_BYTES: usize = BN * BK * ELEM;
const STAGE_BYTES: usize = A_BYTES + B_BYTES;

/// Dynamic shared memory of one launch (`WG_SMEM_BYTES`): the ring, 1024 bytes of slack to
/// align it to the swizzle pattern, and two mbarriers per stage.
pub const WGMMA_SMEM_BYTES: u32 = (STAGES * STAGE_BYTES + 1024 + 2 * STAGES * 8) as u32;

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

/// `c = op(a)·op(b)` on a GPU with `sms` multiprocessors: the launch, preceded by padded
/// copies of operands whose rows are not a multiple of 8 elements. Returns C.
pub(crate) fn plan(
    bld: &mut PlanBuilder,
    p: &GemmParams,
    dtype: DType,
    sms: u32,
    a: BufId,
    b: BufId,
) -> Result<View, CudaError> {
    let ty = match dtype {
        DType::Bf16 => "bf16",
        DType::F16 => "f16",
        d => {
            return Err(CudaError::lib(
                "building the plan",
                format!("the wgmma GEMM takes bf16 or f16, not {d:?}"),
            ))
        }
    };
    let a_stored = if p.trans_a { [p.k, p.m] } else { [p.m, p.k] };
    let b_stored = if p.trans_b { [p.n, p.k] } else { [p.k, p.n] };
    // A is MN-major when stored transposed; B when not (its rows run along N).
    let a_map = operand(bld, a, a_stored, dtype, p.trans_a, BM)?;
    let b_map = operand(bld, b, b_stored, dtype, !p.trans_b, BN)?;
    let c = bld.poisoned(p.m * p.n, dtype);
    let c = bld.whole(c);
    let (tiles_m, tiles_n) = (p.m.div_ceil(BM), p.n.div_ceil(BN));
    let grid = (tiles_m * tiles_n).min(sms.max(1) as usize) as u32;
    let launch = Launch {
        kernel: KernelId::GemmSm90,
        entry: format!("gemm_wgmma_{ty}_{}", transpose_suffix(p)),
        grid: (grid, 1, 1),
        block: (THREADS, 1, 1),
        smem: WGMMA_SMEM_BYTES,
    };
    let args = vec![
        Arg::TensorMap(a_map),
        Arg::TensorMap(b_map),
        c.into(),
        Arg::Int(p.m),
        Arg::Int(p.n),
        Arg::Int(p.k),
        Arg::Int(tiles_m),
        Arg::Int(tiles_n),
    ];
    // SAFETY: `gemm_wgmma_*(WbTensorMap A, WbTensorMap B, u16* C, int M, int N, int K,
    // int tiles_m, int tiles_n)`, with maps over the stored A and B (`rows` x `cols` of `ld`,
    // 16-bit, checked by the builder) and C exactly M x N of the same dtype. The kernel reads
    // A and B only through TMA, which never reads outside a map's extent (it fills zeros
    // there); it writes C[r][c] only for r < M, c < N; its CTAs walk tiles below
    // tiles_m * tiles_n, whatever the grid; it needs `WGMMA_SMEM_BYTES` of dynamic shared
    // memory and 384 threads.
    unsafe { bld.launch(launch, args)? };
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Kernels;
    use crate::plan::Step;
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
            ("WG_BN", BN),
            ("WG_BK", BK),
            ("WG_STAGES", STAGES),
            ("WG_THREADS", THREADS as usize),
            ("WG_GROUP", GROUP),
            ("WG_CONSUMER_WARPS", CONSUMER_WARPS as usize),
        ] {
            assert!(
                src.contains(&format!("#define {name} {v}\n")),
                "{name} is not {v} in gemm_sm90.cu"
            );
        }
        assert!(src.contains("#define WG_BOX_BYTES (64 * 64 * 2)"));
        assert!(src.contains(
            "#define WG_SMEM_BYTES (WG_STAGES * WG_STAGE_BYTES + 1024 + 2 * WG_STAGES * 8)"
        ));
        assert_eq!(WGMMA_SMEM_BYTES, 197_696);
        // Two consumer warpgroups of 64 rows, each m64n256: the tile.
        assert_eq!((BM, BN, THREADS), (2 * 64, 256, 3 * 128));
    }

    /// Every tile once, whatever the grid; consecutive tiles stay inside one group of rows.
    #[test]
    fn the_schedule_covers_every_tile_once_in_groups() {
        for (tm, tn) in [(1, 1), (3, 5), (8, 4), (17, 3), (9, 1), (64, 32), (33, 44)] {
            let tiles = tm * tn;
            for grid in [1, 7, 132, tiles] {
                let mut seen = vec![0u32; tiles];
                for cta in 0..grid.min(tiles) {
                    for t in (cta..tiles).step_by(grid) {
                        let (r, c) = tile(t, tm, tn);
                        assert!(r < tm && c < tn, "{tm}x{tn}: tile {t} -> ({r}, {c})");
                        seen[r * tn + c] += 1;
                    }
                }
                assert!(seen.iter().all(|&n| n == 1), "{tm}x{tn} grid {grid}");
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
    }

    /// The bytes of a stage's boxes are exactly what the producer tells the "full" barrier
    /// to expect (otherwise the consumers wait forever, or read too early), the boxes tile
    /// their part of the stage without overlap, and together they cover the tile's rows and
    /// the k-step, in all four layouts.
    #[test]
    fn stage_boxes_carry_the_awaited_bytes_and_cover_the_tile() {
        for mn_major in [false, true] {
            for (tile_rows, part_bytes) in [(BM, A_BYTES), (BN, B_BYTES)] {
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
        assert_eq!(STAGE_BYTES, 48 * 1024);
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
                // B is MN-major when not transposed.
                let d = desc_b(!major, kk);
                for n in 0..BN {
                    for k in 0..16 {
                        assert_eq!(
                            wgmma_reads(major, d, n, k),
                            A_BYTES + tma_wrote(major, BN, n, kk * 16 + k),
                            "B, MN-major {major}, k-step {kk}, ({n}, {k})"
                        );
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
            "ring + s * WG_STAGE_BYTES + cw * (64 * 128)",
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
        for (m, n) in [
            (200usize, 300usize),
            (128, 256),
            (1, 1),
            (129, 257),
            (64, 520),
            (8, 24),
        ] {
            let (tm, tn) = (m.div_ceil(BM), n.div_ceil(BN));
            let mut stored = vec![0u8; m * n];
            let label = |r: usize, c: usize| (r * 100_000 + c) as u64;
            for t in 0..tm * tn {
                let (ti, tj) = tile(t, tm, tn);
                let (m0, n0) = (ti * BM, tj * BN);
                for cw in 0..2 {
                    for warp in 0..4 {
                        for quad in 0..8 {
                            for h in 0..2 {
                                let r = m0 + cw * 64 + warp * 16 + quad + 8 * h;
                                for g in 0..BN / 32 {
                                    // v[q][t]: lane q's pair of block j = 4g + t, labelled by
                                    // the element its first value was computed for.
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
                    }
                }
            }
            assert!(stored.iter().all(|&k| k == 1), "{m}x{n}");
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
        fn arrive(&mut self) {
            assert!(self.pending > 0, "more arrivals than the barrier's count");
            self.pending -= 1;
            self.settle();
        }
        fn arrive_expect_tx(&mut self, bytes: i64) {
            self.tx += bytes;
            self.arrive();
        }
        fn complete_tx(&mut self, bytes: i64) {
            self.tx -= bytes;
            self.settle();
        }
    }

    /// One consumer warp's place in the kernel's loop.
    #[derive(Clone, Copy)]
    struct Warp {
        it: usize,
        prev: usize,
    }

    /// The kernel's ring protocol, run by one CTA with `tiles` tiles of `kt` k-steps each: the
    /// producer (wait "empty" with the flipped parity, expect the stage's bytes, issue its
    /// boxes) and 8 consumer warps (wait "full", read the stage with a wgmma group, release
    /// the previous group's stage once a newer one is issued, the last at the tile's end),
    /// interleaved at random with TMA loads landing late. Panics on a deadlock, on a load
    /// landing in a stage a warp is still reading, or on a warp reading a stage before its
    /// data (of the right k-step) has landed.
    fn run_protocol(tiles: usize, kt: usize, seed: u64) {
        let total = tiles * kt;
        // The `nn` layout: one K-major box of A, four MN-major boxes of B.
        let box_bytes: Vec<i64> = std::iter::once(A_BYTES)
            .chain([B_BYTES / 4; 4])
            .map(|b| b as i64)
            .collect();
        let boxes = box_bytes.len();
        let mut full: Vec<Barrier> = (0..STAGES).map(|_| Barrier::new(1)).collect();
        let mut empty: Vec<Barrier> = (0..STAGES).map(|_| Barrier::new(CONSUMER_WARPS)).collect();
        let mut landed = [(usize::MAX, 0usize); STAGES]; // (iteration, boxes landed)
        let mut readers = [0u32; STAGES];
        let mut in_flight: Vec<(usize, usize, i64)> = Vec::new(); // (stage, iteration, bytes)
        let mut producer = 0usize;
        let mut warps = vec![Warp { it: 0, prev: 0 }; CONSUMER_WARPS as usize];
        let mut rng = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        loop {
            // Who can move: 0 = the producer, 1..=8 a warp, 9.. a load landing.
            let mut ready = Vec::new();
            if producer < total {
                let (s, use_) = (producer % STAGES, producer / STAGES);
                if empty[s].passed(((use_ & 1) ^ 1) as u32) {
                    ready.push(0);
                }
            }
            for (w, st) in warps.iter().enumerate() {
                let it = st.it;
                if it < total && full[it % STAGES].passed(((it / STAGES) & 1) as u32) {
                    ready.push(1 + w);
                }
            }
            ready.extend((0..in_flight.len()).map(|i| 9 + i));
            if ready.is_empty() {
                let done = producer == total && warps.iter().all(|w| w.it == total);
                assert!(
                    done,
                    "deadlock: producer at {producer}, warps at {:?}",
                    warps.iter().map(|w| w.it).collect::<Vec<_>>()
                );
                return;
            }
            match ready[next(ready.len())] {
                0 => {
                    let s = producer % STAGES;
                    full[s].arrive_expect_tx(STAGE_BYTES as i64);
                    landed[s] = (producer, 0);
                    in_flight.extend(box_bytes.iter().map(|&b| (s, producer, b)));
                    producer += 1;
                }
                w @ 1..=8 => {
                    let st = &mut warps[w - 1];
                    let (it, s) = (st.it, st.it % STAGES);
                    assert_eq!(landed[s], (it, boxes), "warp {w} read stage {s} early");
                    readers[s] += 1; // this group's wgmmas read stage s until retired
                    let k = it % kt;
                    if k > 0 {
                        // wait_group 1 retired the previous group: release its stage.
                        readers[st.prev] -= 1;
                        empty[st.prev].arrive();
                    }
                    st.prev = s;
                    st.it += 1;
                    if k + 1 == kt {
                        // wait_group 0 at the tile's end, then the last release.
                        readers[s] -= 1;
                        empty[s].arrive();
                    }
                }
                i => {
                    let (s, it, bytes) = in_flight.swap_remove(i - 9);
                    assert_eq!(
                        readers[s], 0,
                        "a load of k-step {it} landed in stage {s} while it was read"
                    );
                    landed[s].1 += 1;
                    full[s].complete_tx(bytes);
                }
            }
        }
    }

    #[test]
    fn the_ring_protocol_neither_deadlocks_nor_overwrites() {
        for (tiles, kt) in [(1, 1), (1, 3), (3, 1), (2, 4), (3, 5), (4, 9), (5, 2)] {
            for seed in 0..200 {
                run_protocol(tiles, kt, seed);
            }
        }
    }

    /// Every layout plans one launch of its own entry point with maps over the stored
    /// operands, a padded copy first where a row is not a multiple of 8 elements, and a
    /// persistent grid of at most one CTA per SM.
    #[test]
    fn plans_map_the_stored_operands_and_pad_only_odd_rows() {
        use wattbench_core::tensor::generate_case_inputs;
        use wattbench_core::{Case, Params};
        for (m, n, k, sms) in [
            (1000usize, 1096usize, 1000usize, 132u32),
            (2056, 8192, 64, 132),
            (33, 17, 9, 132),
            (300, 600, 64, 2),
        ] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                for dtype in [DType::Bf16, DType::F16] {
                    let p = GemmParams::new(m, n, k).transposed(ta, tb);
                    let case = Case {
                        params: Params::Gemm(p),
                        mode: Mode::Infer,
                        dtype,
                        tag: None,
                    };
                    let inputs = generate_case_inputs(&case, 1);
                    let bld = crate::ops::build(&case, Kernels::Wgmma, sms, &inputs)
                        .unwrap_or_else(|e| panic!("{case}: {e}"));
                    let launches: Vec<_> = bld
                        .steps()
                        .iter()
                        .filter_map(|s| match s {
                            Step::Launch(l, a) => Some((l, a)),
                            _ => None,
                        })
                        .collect();
                    let (gemm, args) = launches.last().unwrap();
                    let ty = if dtype == DType::Bf16 { "bf16" } else { "f16" };
                    assert_eq!(
                        gemm.entry,
                        format!("gemm_wgmma_{ty}_{}", transpose_suffix(&p))
                    );
                    let tiles = m.div_ceil(BM) * n.div_ceil(BN);
                    assert_eq!(gemm.grid, (tiles.min(sms as usize) as u32, 1, 1));
                    assert_eq!((gemm.block, gemm.smem), ((384, 1, 1), WGMMA_SMEM_BYTES));
                    let [Arg::TensorMap(am), Arg::TensorMap(bm), ..] = args[..] else {
                        panic!("{case}: {args:?}")
                    };
                    let a_stored = if ta { [k, m] } else { [m, k] };
                    let b_stored = if tb { [n, k] } else { [k, n] };
                    assert_eq!([am.rows, am.cols], a_stored);
                    assert_eq!([bm.rows, bm.cols], b_stored);
                    assert_eq!(am.box_dims, box_dims(ta, BM));
                    assert_eq!(bm.box_dims, box_dims(!tb, BN));
                    for map in [am, bm] {
                        assert_eq!(map.ld, map.cols.next_multiple_of(8));
                        assert_eq!(map.check(2), Ok(()));
                    }
                    let pads = launches
                        .iter()
                        .filter(|(l, _)| l.entry == "pad_rows_u16")
                        .count();
                    let want = usize::from(am.cols % 8 != 0) + usize::from(bm.cols % 8 != 0);
                    assert_eq!(pads, want, "{case}");
                    assert_eq!(bld.outputs().len(), 1);
                    assert_eq!(bld.outputs()[0].len(), m * n);
                }
            }
        }
    }
}
