// Hopper GEMM (sm_90a only): C[M,N] = op(A)·op(B), row-major, bf16 or f16 in, fp32
// accumulation, C in the input dtype rounded to nearest even. Operands as in gemm.cu: A is
// stored [M,K] ([K,M] when TA), B [K,N] ([N,K] when TB); entry points gemm_wgmma[_n64|_c2]_
// {bf16,f16}_{nn,nt,tn,tt} and gemm_splitk_reduce_{bf16,f16} (see the end of the file).
// Compiled for compute_90a (wgmma and setmaxnreg exist on sm_90a only).
//
// Compiled and resource-checked (NVRTC + ptxas, sm_90a, no spills), run on the CPU emulator of
// wattbench-cuda's tests (crates/wattbench-cuda/emu: verified against the f64 reference under
// that model's reading of PTX), and verified on one NVIDIA H200 (results/gpu/2026-11-30-h200);
// other GPUs unverified.
//
// Design (the host side is crates/wattbench-cuda/src/ops/gemm/wgmma.rs, which mirrors the tile
// order below, chooses the tile width and split, and builds the tensor maps):
// - Two tile widths, one kernel template: 128x256 output tiles (gemm_wgmma_*), and 128x64
//   ones (gemm_wgmma_n64_*) for narrow products (N <= 128, e.g. a decoding step's few tokens),
//   where a 256-wide tile would compute mostly padding.
// - Clusters of two (gemm_wgmma_c2_*, the `cuda-wgmma-c2` backend): on 256-wide tiles in two
//   or more tile rows, two CTAs take vertically adjacent tiles and share B by TMA multicast
//   (see the comment above gemm_wgmma_body).
// - Split K: the host may cut K into `splits` ranges of whole k-steps when there are too few
//   tiles to fill the GPU (a tall, narrow product with a long K). Each (tile, range) unit then
//   writes fp32 partial sums to a workspace [splits][M][N], and gemm_splitk_reduce_* adds the
//   ranges in a fixed order (deterministic) and rounds once into C.
// - One CTA per SM (persistent): gridDim.x = min(units, SMs); a CTA walks units blockIdx.x,
//   blockIdx.x + gridDim.x, ...; unit u is range u % splits of tile u / splits, tiles in
//   grouped order (wg_tile): WG_GROUP rows of tiles at a time, so the CTAs running together
//   share A and B panels in L2.
// - K in steps of 64. 384 threads = 3 warpgroups. Warpgroup 0 is the producer: one thread
//   issues TMA loads (cp.async.bulk.tensor.2d, 128-byte swizzle) into a ring of stages (4 of
//   48 KiB for the wide tile, 8 of 24 KiB for the narrow one), each guarded by a "full"
//   mbarrier (completed by the loads' transaction bytes) and an "empty" mbarrier (completed
//   when the 8 consumer warps are done with the stage). Warpgroups 1 and 2 consume: each
//   computes a 64-row half of the tile with wgmma.mma_async m64nBNk16 (4 per stage), keeps one
//   wgmma group in flight, and releases a stage once the group that read it has completed. The
//   producer runs ahead into the next unit while the consumers store this one.
// - setmaxnreg: the producer gives registers up (40), the consumers take them (232): 128 fp32
//   accumulators per consumer thread.
// - Shared-memory layouts (stage = A 16 KiB, then B 32 KiB; every box 1024-byte aligned):
//   K-major operand (A not transposed, B transposed): one TMA box of 64 K x rows, row r at
//   r*128 B; descriptor SBO = 1024 B (8 rows), k-step +32 B.
//   MN-major operand (A transposed, B not transposed): boxes of 64 MN x 64 K, 8 KiB each,
//   K-row k at k*128 B; descriptor LBO = 8 KiB (next 64 MN), SBO = 1024 B (next 8 K rows),
//   k-step +2 KiB; wgmma's transpose bit set for that operand.
// - Edges: TMA zero-fills reads outside the tensor (so partial M, N and K tiles read zeros)
//   and the epilogue guards every store. TMA needs 16-byte row strides: an operand whose rows
//   are not a multiple of 8 elements is first copied to padded rows by the host's plan
//   (pad_rows_u16 in elementwise.cu), its tensor map keeping the true width.
// - A watchdog in every barrier wait traps after 10 s, so a deadlock fails the launch instead
//   of hanging the process (and the lease of the GPU it runs on).

#define WG_BM 128
#define WG_BN 256
#define WG_BN_NARROW 64
#define WG_BK 64
#define WG_STAGES 4
#define WG_STAGES_NARROW 8
#define WG_THREADS 384
#define WG_GROUP 8
#define WG_CONSUMER_WARPS 8
#define WG_A_BYTES (WG_BM * WG_BK * 2)
#define WG_BOX_BYTES (64 * 64 * 2)
#define WG_PRODUCER_REGS 40
#define WG_CONSUMER_REGS 232

// The ring of a tile BN wide: its stages, their bytes (A then B), and the dynamic shared
// memory of one launch: the ring, 1024 bytes of slack to align it to the swizzle pattern, and
// the 2 x STAGES mbarriers (the host sets the attribute).
template <int BN>
struct WgRing {
    static constexpr int STAGES = BN == WG_BN ? WG_STAGES : WG_STAGES_NARROW;
    static constexpr u32 B_BYTES = BN * WG_BK * 2;
    static constexpr u32 STAGE_BYTES = WG_A_BYTES + B_BYTES;
    static constexpr u32 SMEM_BYTES = STAGES * STAGE_BYTES + 1024 + 2 * STAGES * 8;
};

typedef unsigned long long u64;

// The driver's CUtensorMap: 128 opaque bytes, built on the host by cuTensorMapEncodeTiled and
// passed by value as a __grid_constant__ parameter (TMA reads it from parameter space).
struct __align__(128) WbTensorMap {
    u64 opaque[16];
};

// ---------------------------------------------------------------------------------------------
// The instructions written in PTX: every one this file uses is in this section, so that the
// CPU emulator of wattbench-cuda's tests (crates/wattbench-cuda/emu/sm90_cpu.h) can replace
// exactly this section (it defines WB_CPU_EMULATION); NVRTC compiles it as it stands.
// ---------------------------------------------------------------------------------------------
#ifndef WB_CPU_EMULATION


__device__ __forceinline__ void wg_mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void wg_mbar_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void wg_mbar_arrive(u32 bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Whether the phase of parity `parity` has completed (a fresh barrier counts its phase
// "before 0", parity 1, as completed: how the producer's first pass over the ring goes through).
// CLUSTER_SCOPE: acquire at cluster scope, for a barrier that the other CTA of a cluster
// arrives on (its consumers' release of a stage that this CTA's multicast writes into).
template <bool CLUSTER_SCOPE = false>
__device__ __forceinline__ bool wg_mbar_test(u32 bar, u32 parity) {
    u32 done;
    if (CLUSTER_SCOPE) {
        asm volatile(
            "{\n.reg .pred p;\n"
            "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n"
            "}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    } else {
        asm volatile(
            "{\n.reg .pred p;\n"
            "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n"
            "}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    }
    return done != 0;
}

__device__ __forceinline__ u64 wg_globaltimer_ns() {
    u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}

// Wait for that phase. A watchdog turns a deadlocked pipeline into an error instead of a hang:
// a wait over WG_WATCHDOG_NS (far beyond any legitimate wait: a whole 8192^3 product takes
// about 2 ms) executes `trap`, which aborts the launch (the host sees a launch failure).
#define WG_WATCHDOG_NS 10000000000ull
template <bool CLUSTER_SCOPE = false>
__device__ __forceinline__ void wg_mbar_wait(u32 bar, u32 parity) {
    if (wg_mbar_test<CLUSTER_SCOPE>(bar, parity)) return;
    const u64 t0 = wg_globaltimer_ns();
    while (!wg_mbar_test<CLUSTER_SCOPE>(bar, parity)) {
        if (wg_globaltimer_ns() - t0 > WG_WATCHDOG_NS) asm volatile("trap;\n");
    }
}

// Clusters of two CTAs (gemm_wgmma_c2_*): this CTA's rank, a barrier over every thread of both
// CTAs, and an arrival on the mbarrier at the same shared-memory offset in CTA `rank`.
__device__ __forceinline__ u32 wg_cluster_rank() {
    u32 r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}

__device__ __forceinline__ void wg_cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}

__device__ __forceinline__ void wg_mbar_arrive_cluster(u32 bar, u32 rank) {
    asm volatile(
        "{\n.reg .b32 ra;\n"
        "mapa.shared::cluster.u32 ra, %0, %1;\n"
        "mbarrier.arrive.shared::cluster.b64 _, [ra];\n"
        "}\n" ::"r"(bar),
        "r"(rank)
        : "memory");
}

// One 2-D TMA load of the box at (c0 inner, c1 outer) into shared memory at `dst`, completing
// transaction bytes on `bar`.
__device__ __forceinline__ void wg_tma_load(u32 dst, const WbTensorMap* map, int c0, int c1, u32 bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
        "l"(reinterpret_cast<u64>(map)), "r"(c0), "r"(c1), "r"(bar)
        : "memory");
}

// The same load multicast: written at `dst` and completing bytes on `bar` (the same offsets)
// in every CTA of the cluster that `mask` names.
__device__ __forceinline__ void wg_tma_load_mc(u32 dst, const WbTensorMap* map, int c0, int c1, u32 bar,
                                               unsigned short mask) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        ".multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
        "l"(reinterpret_cast<u64>(map)), "r"(c0), "r"(c1), "r"(bar), "h"(mask)
        : "memory");
}

__device__ __forceinline__ void wg_prefetch_map(const WbTensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<u64>(map)) : "memory");
}

__device__ __forceinline__ void wg_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void wg_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma
// boundaries (the registers are in use by the tensor cores between issue and wait).
template <int N>
__device__ __forceinline__ void wg_fence_acc(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// D[64xBN] (+)= A[64x16] · B[16xBN], both from shared memory; TRANS_A / TRANS_B: the operand
// is MN-major. One asm statement per width and input type: the BN/2 accumulators are operands
// 0 .. BN/2-1, then the two descriptors, scale-d and the two transpose immediates.
#define WG_D32(o) \
    "+f"(d[o + 0]), "+f"(d[o + 1]), "+f"(d[o + 2]), "+f"(d[o + 3]), "+f"(d[o + 4]), "+f"(d[o + 5]), \
    "+f"(d[o + 6]), "+f"(d[o + 7]), "+f"(d[o + 8]), "+f"(d[o + 9]), "+f"(d[o + 10]), "+f"(d[o + 11]), \
    "+f"(d[o + 12]), "+f"(d[o + 13]), "+f"(d[o + 14]), "+f"(d[o + 15]), "+f"(d[o + 16]), "+f"(d[o + 17]), \
    "+f"(d[o + 18]), "+f"(d[o + 19]), "+f"(d[o + 20]), "+f"(d[o + 21]), "+f"(d[o + 22]), "+f"(d[o + 23]), \
    "+f"(d[o + 24]), "+f"(d[o + 25]), "+f"(d[o + 26]), "+f"(d[o + 27]), "+f"(d[o + 28]), "+f"(d[o + 29]), \
    "+f"(d[o + 30]), "+f"(d[o + 31])
#define WG_LIST_0_31 \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15," \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define WG_LIST_32_127 \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47," \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63," \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79," \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95," \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111," \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
// SHAPE and TY name the instruction, LIST its accumulator operands; P, DA, DB, TRA and TRB are
// the operand numbers of scale-d, the descriptors and the transposes; the accumulators follow.
#define WG_MMA_ASM(SHAPE, TY, LIST, P, DA, DB, TRA, TRB, ...) \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %" P ", 0;\n" \
        "wgmma.mma_async.sync.aligned." SHAPE ".f32." TY "." TY "\n{" LIST "},\n" \
        "%" DA ", %" DB ", p, 1, 1, %" TRA ", %" TRB ";\n}\n" \
        : __VA_ARGS__ \
        : "l"(da), "l"(db), "r"(scale_d), "n"(TRANS_A), "n"(TRANS_B))

template <bool BF16, int TRANS_A, int TRANS_B, int BN>
__device__ __forceinline__ void wg_mma(float (&d)[BN / 2], u64 da, u64 db, u32 scale_d) {
    if constexpr (BN == 256) {
        if (BF16) {
            WG_MMA_ASM("m64n256k16", "bf16", WG_LIST_0_31 "," WG_LIST_32_127, "130", "128", "129",
                       "131", "132", WG_D32(0), WG_D32(32), WG_D32(64), WG_D32(96));
        } else {
            WG_MMA_ASM("m64n256k16", "f16", WG_LIST_0_31 "," WG_LIST_32_127, "130", "128", "129",
                       "131", "132", WG_D32(0), WG_D32(32), WG_D32(64), WG_D32(96));
        }
    } else {
        static_assert(BN == WG_BN_NARROW, "two tile widths");
        if (BF16) {
            WG_MMA_ASM("m64n64k16", "bf16", WG_LIST_0_31, "34", "32", "33", "35", "36", WG_D32(0));
        } else {
            WG_MMA_ASM("m64n64k16", "f16", WG_LIST_0_31, "34", "32", "33", "35", "36", WG_D32(0));
        }
    }
}

// Two floats as one pair of the output dtype (round to nearest even), `lo` at the lower address.
template <bool BF16>
__device__ __forceinline__ u32 wg_pack(float lo, float hi) {
    u32 r;
    if (BF16) {
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    } else {
        asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    }
    return r;
}


// mbarrier initialisation made visible to the cluster (and to TMA); setmaxnreg: a warpgroup
// gives registers up or takes them.
__device__ __forceinline__ void wg_fence_mbarrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

template <int REGS>
__device__ __forceinline__ void wg_setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS) : "memory");
}

template <int REGS>
__device__ __forceinline__ void wg_setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS) : "memory");
}

#define WG_DYNAMIC_SMEM(name) extern __shared__ __align__(1024) unsigned char name[]

#endif  // WB_CPU_EMULATION

// Shared-memory matrix descriptor with 128-byte swizzle: start address, leading and stride
// byte offsets, each encoded as (x & 0x3FFFF) >> 4.
__device__ __forceinline__ u64 wg_desc(u32 addr, u32 lbo, u32 sbo) {
    return (u64)((addr & 0x3FFFF) >> 4) | ((u64)((lbo & 0x3FFFF) >> 4) << 16) |
           ((u64)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

// The tile order of the persistent scheduler (mirrored by `tile` in the tests of
// ops/gemm/wgmma.rs): tiles numbered group by group, each group WG_GROUP tile rows tall (fewer
// in the last), column by column inside a group.
__device__ __forceinline__ void wg_tile(int t, int tiles_m, int tiles_n, int group, int& tm, int& tn) {
    const int per_group = group * tiles_n;
    const int g = t / per_group;
    const int first = g * group;
    const int rows = min(tiles_m - first, group);
    const int r = t - g * per_group;
    tm = first + r % rows;
    tn = r / rows;
}

// A 4x4 transpose across the quad of lanes sharing lane / 4 (q = lane % 4 is this lane's
// place): lane q holds v[t] for blocks t = 0..3 and receives w[p] = lane p's v[q]. Round x
// pairs lane q with lane q ^ x, which sends exactly what q needs. Register indices are
// compile-time; the lane-dependent choices are selects (no local memory).
__device__ __forceinline__ void wg_quad_transpose(const u32 (&v)[4], u32 (&w)[4], int q) {
#pragma unroll
    for (int t = 0; t < 4; ++t) w[t] = v[t];  // w[q] = v[q] stays; the others are replaced
#pragma unroll
    for (int x = 1; x < 4; ++x) {
        const int p = q ^ x;
        u32 send = v[0];
#pragma unroll
        for (int t = 1; t < 4; ++t) send = (p == t) ? v[t] : send;
        const u32 got = __shfl_xor_sync(0xffffffffu, send, x);
#pragma unroll
        for (int t = 0; t < 4; ++t) w[t] = (p == t) ? got : w[t];
    }
}

// The fp32 partial sums of one unit (a k-range of a tile) into the workspace slice `P`
// ([M][N] of this range): per 8-column block j, this thread's pair of columns 8j + 2q of rows
// r0 and r0 + 8, as the accumulator layout holds them (8-byte stores when N is even).
template <int BN>
__device__ __forceinline__ void wg_store_partial(const float (&acc)[BN / 2], float* WB_RESTRICT P,
                                                 int M, int N, int r0, int n0, int q) {
    const bool vec = (N & 1) == 0;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = r0 + 8 * h;
        if (r >= M) continue;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
            const int c = n0 + 8 * j + 2 * q;
            const float x = acc[4 * j + 2 * h], y = acc[4 * j + 2 * h + 1];
            float* dst = P + (size_t)r * N + c;
            if (vec && c + 2 <= N) {
                *reinterpret_cast<float2*>(dst) = make_float2(x, y);
            } else {
                if (c < N) dst[0] = x;
                if (c + 1 < N) dst[1] = y;
            }
        }
    }
}

// The outputs of one tile in the output dtype: the m64nBN accumulator layout puts, per warp,
// rows warp*16 + lane/4 (+8) and, per 8-column block j, columns 8j + 2(lane%4) + {0, 1} in
// registers 4j + {0, 1} (+{2, 3} for the row 8 below). Each quad of lanes transposes its pairs
// (wg_quad_transpose) so that a lane holds 8 contiguous columns: a warp then stores 64
// contiguous bytes per row in 16-byte pieces.
template <bool BF16, int BN>
__device__ __forceinline__ void wg_store_tile(const float (&acc)[BN / 2], u16* WB_RESTRICT C, int M,
                                              int N, int r0, int n0, int q) {
    const bool vec = (N & 7) == 0;  // rows of 16-byte multiples: aligned 16-byte stores
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = r0 + 8 * h;
#pragma unroll
        for (int g = 0; g < BN / 32; ++g) {
            u32 v[4];
#pragma unroll
            for (int t = 0; t < 4; ++t) {
                const int j = 4 * g + t;
                v[t] = wg_pack<BF16>(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
            }
            u32 w[4];
            wg_quad_transpose(v, w, q);
            const int c = n0 + 32 * g + 8 * q;  // w holds columns c .. c + 7
            if (r >= M) continue;
            u16* dst = C + (size_t)r * N + c;
            if (vec && c + 8 <= N) {
                *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
            } else {
#pragma unroll
                for (int e = 0; e < 8; ++e)
                    if (c + e < N) dst[e] = (u16)(w[e >> 1] >> (16 * (e & 1)));
            }
        }
    }
}

// The k-steps [kb, ke) of range `split` of `splits` over KT steps: whole steps, as even as
// integers allow (the host makes splits <= KT, so no range is empty).
__device__ __forceinline__ void wg_krange(int split, int splits, int KT, int& kb, int& ke) {
    kb = (int)((long long)split * KT / splits);
    ke = (int)((long long)(split + 1) * KT / splits);
}

// What unit `u` is, as producer and consumers both walk it: the output tile's origin (m0, n0)
// for this CTA (of cluster rank `rank`: CLUSTER vertically adjacent tiles, rows_m rows of such
// units) and its k-steps [kb, ke).
struct WgUnit {
    int m0, n0, kb, ke;
};
template <int BN, int CLUSTER>
__device__ __forceinline__ WgUnit wg_unit(int u, u32 rank, int rows_m, int tiles_n, int splits,
                                          int KT) {
    int pm, tn;
    WgUnit w;
    wg_tile(u / splits, rows_m, tiles_n, WG_GROUP, pm, tn);
    wg_krange(u % splits, splits, KT, w.kb, w.ke);
    w.m0 = (pm * CLUSTER + (int)rank) * WG_BM;
    w.n0 = tn * BN;
    return w;
}

// A consumer warp's release of a stage: on its own CTA's "empty" barrier, or in a cluster on
// both CTAs' (each one's producer multicasts into the other's stage).
template <int CLUSTER>
__device__ __forceinline__ void wg_release(u32 bar) {
    if (CLUSTER > 1) {
#pragma unroll
        for (u32 r = 0; r < (u32)CLUSTER; ++r) wg_mbar_arrive_cluster(bar, r);
    } else {
        wg_mbar_arrive(bar);
    }
}

// CLUSTER = 2 (gemm_wgmma_c2_*, 256-wide tiles, no split): the two CTAs of a cluster take
// vertically adjacent tiles of the same columns, so they read the same B panel: each loads
// half of each B stage (128 of its 256 rows of N) multicast into both CTAs, which halves B's
// traffic from L2. A stage of a CTA is then written by both producers, so each "empty" barrier
// counts the consumer warps of both CTAs (16), each consumer warp arriving on both CTAs'
// barriers, and a producer acquires it at cluster scope. Both CTAs walk the same units (a tile
// row past M reads zeros and stores nothing), so their rings stay in step; they start once
// both have initialised their barriers and leave together (cluster barriers), so that no CTA
// exits while the other can still write into its shared memory or arrive on its barriers.
template <bool BF16, bool TA, bool TB, int BN, int CLUSTER>
__device__ __forceinline__ void gemm_wgmma_body(const WbTensorMap* tma_a, const WbTensorMap* tma_b,
                                                u16* WB_RESTRICT C, float* WB_RESTRICT ws, int M,
                                                int N, int K, int tiles_m, int tiles_n, int splits) {
    using Ring = WgRing<BN>;
    constexpr int STAGES = Ring::STAGES;
    WG_DYNAMIC_SMEM(wg_smem);
    // Align the ring to the 1024-byte swizzle pattern (the slack is in Ring::SMEM_BYTES).
    const u32 raw = wb_smem_addr(wg_smem);
    const u32 ring = (raw + 1023u) & ~1023u;
    const u32 full = ring + STAGES * Ring::STAGE_BYTES;  // STAGES "full" barriers
    const u32 empty = full + STAGES * 8;                 // then STAGES "empty" ones
    static_assert(CLUSTER == 1 || (CLUSTER == 2 && BN == WG_BN), "clusters of two, wide tiles");
    const int wg = threadIdx.x / 128;
    // Clusters walk units of CLUSTER vertically adjacent tiles: rows_m rows of them.
    const u32 rank = CLUSTER > 1 ? wg_cluster_rank() : 0;
    const int cluster_id = blockIdx.x / CLUSTER, clusters = gridDim.x / CLUSTER;
    const int rows_m = (tiles_m + CLUSTER - 1) / CLUSTER;
    const int units = rows_m * tiles_n * splits;
    const int KT = (K + WG_BK - 1) / WG_BK;

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            wg_mbar_init(full + 8 * s, 1);
            wg_mbar_init(empty + 8 * s, WG_CONSUMER_WARPS * CLUSTER);
        }
        wg_fence_mbarrier_init();
    }
    if (CLUSTER > 1) {
        wg_cluster_sync();  // both CTAs' barriers exist before either arrives on the other's
    } else {
        __syncthreads();
    }

    if (wg == 0) {
        // Producer: one thread issues every load; the warpgroup gives its registers up.
        wg_setmaxnreg_dec<WG_PRODUCER_REGS>();
        if (threadIdx.x == 0) {
            wg_prefetch_map(tma_a);
            wg_prefetch_map(tma_b);
            u32 it = 0;
            for (int u = cluster_id; u < units; u += clusters) {
                const auto [m0, n0, kb, ke] = wg_unit<BN, CLUSTER>(u, rank, rows_m, tiles_n, splits, KT);
                for (int kt = kb; kt < ke; ++kt, ++it) {
                    const u32 s = it % STAGES, use = it / STAGES;
                    const u32 f = full + 8 * s;
                    wg_mbar_wait<(CLUSTER > 1)>(empty + 8 * s, (use & 1) ^ 1);
                    wg_mbar_expect_tx(f, Ring::STAGE_BYTES);
                    const u32 sa = ring + s * Ring::STAGE_BYTES, sb = sa + WG_A_BYTES;
                    const int k0 = kt * WG_BK;
                    if (TA) {
                        wg_tma_load(sa, tma_a, m0, k0, f);
                        wg_tma_load(sa + WG_BOX_BYTES, tma_a, m0 + 64, k0, f);
                    } else {
                        wg_tma_load(sa, tma_a, k0, m0, f);
                    }
                    if (CLUSTER > 1) {
                        // This CTA's half of B (rows rank * 128 .. of the tile's 256), into
                        // both CTAs; the other half comes from the other CTA.
                        const u32 half = rank * (Ring::B_BYTES / 2);
                        const int nh = n0 + (int)rank * (BN / 2);
                        if (TB) {
                            wg_tma_load_mc(sb + half, tma_b, k0, nh, f, 0x3);
                        } else {
#pragma unroll
                            for (int j = 0; j < BN / 128; ++j)
                                wg_tma_load_mc(sb + half + j * WG_BOX_BYTES, tma_b, nh + 64 * j, k0, f,
                                               0x3);
                        }
                    } else if (TB) {
                        wg_tma_load(sb, tma_b, k0, n0, f);
                    } else {
#pragma unroll
                        for (int j = 0; j < BN / 64; ++j)
                            wg_tma_load(sb + j * WG_BOX_BYTES, tma_b, n0 + 64 * j, k0, f);
                    }
                }
            }
        }
    } else {
        // Consumers: the two warpgroups take the registers, one 64-row half of the tile each.
        wg_setmaxnreg_inc<WG_CONSUMER_REGS>();
        const int cw = wg - 1;
        const int warp = (threadIdx.x / 32) & 3, lane = threadIdx.x & 31;
        float acc[BN / 2];
        u32 it = 0;
        for (int u = cluster_id; u < units; u += clusters) {
            const auto [m0, n0, kb, ke] = wg_unit<BN, CLUSTER>(u, rank, rows_m, tiles_n, splits, KT);
#pragma unroll
            for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
            wg_fence_acc(acc);
            if (ke > kb) {
                u32 prev = 0;
                for (int kt = kb; kt < ke; ++kt, ++it) {
                    const u32 s = it % STAGES, use = it / STAGES;
                    wg_mbar_wait(full + 8 * s, use & 1);
                    const u32 sa = ring + s * Ring::STAGE_BYTES + cw * (64 * 128);
                    const u32 sb = ring + s * Ring::STAGE_BYTES + WG_A_BYTES;
                    wg_fence();
#pragma unroll
                    for (int kk = 0; kk < WG_BK / 16; ++kk) {
                        const u64 da = TA ? wg_desc(sa + kk * 2048, WG_BOX_BYTES, 1024)
                                          : wg_desc(sa + kk * 32, 16, 1024);
                        const u64 db = TB ? wg_desc(sb + kk * 32, 16, 1024)
                                          : wg_desc(sb + kk * 2048, WG_BOX_BYTES, 1024);
                        wg_mma<BF16, TA ? 1 : 0, TB ? 0 : 1, BN>(acc, da, db, 1);
                    }
                    wg_commit();
                    // The group issued before this one has completed: its stage can be refilled.
                    wg_wait<1>();
                    if (kt > kb && lane == 0) wg_release<CLUSTER>(empty + 8 * prev);
                    prev = s;
                }
                wg_wait<0>();
                wg_fence_acc(acc);
                if (lane == 0) wg_release<CLUSTER>(empty + 8 * prev);
            }

            const int q = lane & 3;
            const int r0 = m0 + cw * 64 + warp * 16 + (lane >> 2);
            if (splits > 1) {
                wg_store_partial<BN>(acc, ws + (size_t)(u % splits) * M * N, M, N, r0, n0, q);
            } else {
                wg_store_tile<BF16, BN>(acc, C, M, N, r0, n0, q);
            }
        }
    }
    if (CLUSTER > 1) wg_cluster_sync();  // neither CTA leaves while the other may still need it
}

// C = the sum of the `splits` fp32 partial products in `ws` ([splits][mn], added in order, so
// the result does not depend on scheduling), rounded once to the output dtype.
template <bool BF16>
__device__ __forceinline__ void splitk_reduce(const float* WB_RESTRICT ws, u16* WB_RESTRICT C,
                                              int mn, int splits) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < mn;
         i += (long long)gridDim.x * blockDim.x) {
        float sum = 0.0f;
        for (int s = 0; s < splits; ++s) sum += ws[(size_t)s * mn + i];
        C[i] = BF16 ? wb_f32_to_bf16(sum) : wb_f32_to_f16(sum);
    }
}

extern "C" __global__ void gemm_splitk_reduce_bf16(const float* ws, u16* C, int mn, int splits) {
    splitk_reduce<true>(ws, C, mn, splits);
}
extern "C" __global__ void gemm_splitk_reduce_f16(const float* ws, u16* C, int mn, int splits) {
    splitk_reduce<false>(ws, C, mn, splits);
}

// Entry points gemm_wgmma[_n64|_c2]_{bf16,f16}_{nn,nt,tn,tt}(A map, B map, C, workspace, M, N,
// K, tiles_m, tiles_n, splits): the workspace (fp32, splits x M x N) is written when
// splits > 1 (C is then left to gemm_splitk_reduce_*), and may be null otherwise. The _c2
// kernels are compiled for clusters of two CTAs (the grid must be even) and take splits = 1.
#define WB_WGMMA(name, bn, cl, attrs, bf, ta, tb)                                                  \
    extern "C" __global__ void attrs __launch_bounds__(WG_THREADS, 1)                             \
        name(const __grid_constant__ WbTensorMap tma_a, const __grid_constant__ WbTensorMap tma_b, \
             u16* C, float* ws, int M, int N, int K, int tiles_m, int tiles_n, int splits) {       \
        gemm_wgmma_body<bf, ta, tb, bn, cl>(&tma_a, &tma_b, C, ws, M, N, K, tiles_m, tiles_n,      \
                                            splits);                                               \
    }
#define WB_WGMMA_LAYOUTS(prefix, bn, cl, attrs, ty, bf)               \
    WB_WGMMA(prefix##_##ty##_nn, bn, cl, attrs, bf, false, false)     \
    WB_WGMMA(prefix##_##ty##_nt, bn, cl, attrs, bf, false, true)      \
    WB_WGMMA(prefix##_##ty##_tn, bn, cl, attrs, bf, true, false)      \
    WB_WGMMA(prefix##_##ty##_tt, bn, cl, attrs, bf, true, true)
#define WG_NO_ATTRS
#define WG_CLUSTER_OF_2 __cluster_dims__(2, 1, 1)
WB_WGMMA_LAYOUTS(gemm_wgmma, WG_BN, 1, WG_NO_ATTRS, bf16, true)
WB_WGMMA_LAYOUTS(gemm_wgmma, WG_BN, 1, WG_NO_ATTRS, f16, false)
WB_WGMMA_LAYOUTS(gemm_wgmma_n64, WG_BN_NARROW, 1, WG_NO_ATTRS, bf16, true)
WB_WGMMA_LAYOUTS(gemm_wgmma_n64, WG_BN_NARROW, 1, WG_NO_ATTRS, f16, false)
WB_WGMMA_LAYOUTS(gemm_wgmma_c2, WG_BN, 2, WG_CLUSTER_OF_2, bf16, true)
WB_WGMMA_LAYOUTS(gemm_wgmma_c2, WG_BN, 2, WG_CLUSTER_OF_2, f16, false)
