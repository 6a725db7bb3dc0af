// Hopper GEMM (sm_90a only): C[M,N] = op(A)·op(B), row-major, bf16 or f16 in, fp32
// accumulation, C in the input dtype rounded to nearest even. Operands as in gemm.cu: A is
// stored [M,K] ([K,M] when TA), B [K,N] ([N,K] when TB); entry points gemm_wgmma_{bf16,f16}_
// {nn,nt,tn,tt}. Compiled for compute_90a (wgmma and setmaxnreg exist on sm_90a only).
//
// UNVERIFIED ON HARDWARE: compiled and resource-checked (NVRTC + ptxas, sm_90a, no spills) but
// never run on a GPU yet.
//
// Design (the host side is crates/wattbench-cuda/src/ops/gemm.rs, which mirrors the tile order
// below and builds the tensor maps):
// - One CTA per SM (persistent): gridDim.x = min(tiles, SMs); a CTA walks tiles blockIdx.x,
//   blockIdx.x + gridDim.x, ... in grouped order (wg_tile): WG_GROUP rows of tiles at a time,
//   so the CTAs running together share A and B panels in L2.
// - 128x256 output tiles, K in steps of 64. 384 threads = 3 warpgroups. Warpgroup 0 is the
//   producer: one thread issues TMA loads (cp.async.bulk.tensor.2d, 128-byte swizzle) into a
//   4-stage ring of 48 KiB stages, each guarded by a "full" mbarrier (completed by the loads'
//   transaction bytes) and an "empty" mbarrier (completed when the 8 consumer warps are done
//   with the stage). Warpgroups 1 and 2 consume: each computes a 64x256 half of the tile with
//   wgmma.mma_async m64n256k16 (4 per stage), keeps one wgmma group in flight, and releases a
//   stage once the group that read it has completed. The producer runs ahead into the next
//   tile while the consumers store this one.
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
#define WG_BK 64
#define WG_STAGES 4
#define WG_THREADS 384
#define WG_GROUP 8
#define WG_CONSUMER_WARPS 8
#define WG_A_BYTES (WG_BM * WG_BK * 2)
#define WG_B_BYTES (WG_BN * WG_BK * 2)
#define WG_STAGE_BYTES (WG_A_BYTES + WG_B_BYTES)
#define WG_BOX_BYTES (64 * 64 * 2)
// Dynamic shared memory of one launch: the ring, 1024 bytes of slack to align it to the
// swizzle pattern, and the 2 x WG_STAGES mbarriers (the host sets the attribute).
#define WG_SMEM_BYTES (WG_STAGES * WG_STAGE_BYTES + 1024 + 2 * WG_STAGES * 8)

typedef unsigned long long u64;

// The driver's CUtensorMap: 128 opaque bytes, built on the host by cuTensorMapEncodeTiled and
// passed by value as a __grid_constant__ parameter (TMA reads it from parameter space).
struct __align__(128) WbTensorMap {
    u64 opaque[16];
};

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
__device__ __forceinline__ bool wg_mbar_test(u32 bar, u32 parity) {
    u32 done;
    asm volatile(
        "{\n.reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
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
__device__ __forceinline__ void wg_mbar_wait(u32 bar, u32 parity) {
    if (wg_mbar_test(bar, parity)) return;
    const u64 t0 = wg_globaltimer_ns();
    while (!wg_mbar_test(bar, parity)) {
        if (wg_globaltimer_ns() - t0 > WG_WATCHDOG_NS) asm volatile("trap;\n");
    }
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

__device__ __forceinline__ void wg_prefetch_map(const WbTensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<u64>(map)) : "memory");
}

// Shared-memory matrix descriptor with 128-byte swizzle: start address, leading and stride
// byte offsets, each encoded as (x & 0x3FFFF) >> 4.
__device__ __forceinline__ u64 wg_desc(u32 addr, u32 lbo, u32 sbo) {
    return (u64)((addr & 0x3FFFF) >> 4) | ((u64)((lbo & 0x3FFFF) >> 4) << 16) |
           ((u64)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
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
__device__ __forceinline__ void wg_fence_acc(float (&d)[128]) {
#pragma unroll
    for (int i = 0; i < 128; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// The tile order of the persistent scheduler (mirrored by `wgmma_tile` in ops/gemm.rs): tiles
// numbered group by group, each group WG_GROUP tile rows tall (fewer in the last), column by
// column inside a group.
__device__ __forceinline__ void wg_tile(int t, int tiles_m, int tiles_n, int group, int& tm, int& tn) {
    const int per_group = group * tiles_n;
    const int g = t / per_group;
    const int first = g * group;
    const int rows = min(tiles_m - first, group);
    const int r = t - g * per_group;
    tm = first + r % rows;
    tn = r / rows;
}

// D[64x256] (+)= A[64x16] · B[16x256], both from shared memory; TRANS_A / TRANS_B: the operand
// is MN-major. One asm statement per input type, from one template: the 128 accumulators are
// operands 0-127, then the two descriptors, scale-d and the two transpose immediates.
#define WG_D_OPERANDS \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
    "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
    "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
    "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
    "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
    "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
    "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
    "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
#define WG_MMA_ASM(TY) \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY "\n{" \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15," \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31," \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47," \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63," \
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79," \
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95," \
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111," \
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
        "},\n%128, %129, p, 1, 1, %131, %132;\n}\n" \
        : WG_D_OPERANDS \
        : "l"(da), "l"(db), "r"(scale_d), "n"(TRANS_A), "n"(TRANS_B))

template <bool BF16, int TRANS_A, int TRANS_B>
__device__ __forceinline__ void wg_mma(float (&d)[128], u64 da, u64 db, u32 scale_d) {
    if (BF16) {
        WG_MMA_ASM("bf16");
    } else {
        WG_MMA_ASM("f16");
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

template <bool BF16, bool TA, bool TB>
__device__ __forceinline__ void gemm_wgmma_body(const WbTensorMap* tma_a, const WbTensorMap* tma_b,
                                                u16* WB_RESTRICT C, int M, int N, int K, int tiles_m,
                                                int tiles_n) {
    extern __shared__ __align__(1024) unsigned char wg_smem[];
    // Align the ring to the 1024-byte swizzle pattern (the slack is in WG_SMEM_BYTES).
    const u32 raw = wb_smem_addr(wg_smem);
    const u32 ring = (raw + 1023u) & ~1023u;
    const u32 full = ring + WG_STAGES * WG_STAGE_BYTES;  // WG_STAGES "full" barriers
    const u32 empty = full + WG_STAGES * 8;               // then WG_STAGES "empty" ones
    const int wg = threadIdx.x / 128;
    const int tiles = tiles_m * tiles_n;
    const int KT = (K + WG_BK - 1) / WG_BK;

    if (threadIdx.x == 0) {
        for (int s = 0; s < WG_STAGES; ++s) {
            wg_mbar_init(full + 8 * s, 1);
            wg_mbar_init(empty + 8 * s, WG_CONSUMER_WARPS);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        // Producer: one thread issues every load; the warpgroup gives its registers up.
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (threadIdx.x == 0) {
            wg_prefetch_map(tma_a);
            wg_prefetch_map(tma_b);
            u32 it = 0;
            for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
                int tm, tn;
                wg_tile(t, tiles_m, tiles_n, WG_GROUP, tm, tn);
                const int m0 = tm * WG_BM, n0 = tn * WG_BN;
                for (int kt = 0; kt < KT; ++kt, ++it) {
                    const u32 s = it % WG_STAGES, use = it / WG_STAGES;
                    const u32 f = full + 8 * s;
                    wg_mbar_wait(empty + 8 * s, (use & 1) ^ 1);
                    wg_mbar_expect_tx(f, WG_STAGE_BYTES);
                    const u32 sa = ring + s * WG_STAGE_BYTES, sb = sa + WG_A_BYTES;
                    const int k0 = kt * WG_BK;
                    if (TA) {
                        wg_tma_load(sa, tma_a, m0, k0, f);
                        wg_tma_load(sa + WG_BOX_BYTES, tma_a, m0 + 64, k0, f);
                    } else {
                        wg_tma_load(sa, tma_a, k0, m0, f);
                    }
                    if (TB) {
                        wg_tma_load(sb, tma_b, k0, n0, f);
                    } else {
#pragma unroll
                        for (int j = 0; j < WG_BN / 64; ++j)
                            wg_tma_load(sb + j * WG_BOX_BYTES, tma_b, n0 + 64 * j, k0, f);
                    }
                }
            }
        }
    } else {
        // Consumers: the two warpgroups take the registers, one 64-row half of the tile each.
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
        const int cw = wg - 1;
        const int warp = (threadIdx.x / 32) & 3, lane = threadIdx.x & 31;
        float acc[128];
        u32 it = 0;
        for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
            int tm, tn;
            wg_tile(t, tiles_m, tiles_n, WG_GROUP, tm, tn);
            const int m0 = tm * WG_BM, n0 = tn * WG_BN;
#pragma unroll
            for (int i = 0; i < 128; ++i) acc[i] = 0.0f;
            wg_fence_acc(acc);
            u32 prev = 0;
            for (int kt = 0; kt < KT; ++kt, ++it) {
                const u32 s = it % WG_STAGES, use = it / WG_STAGES;
                wg_mbar_wait(full + 8 * s, use & 1);
                const u32 sa = ring + s * WG_STAGE_BYTES + cw * (64 * 128);
                const u32 sb = ring + s * WG_STAGE_BYTES + WG_A_BYTES;
                wg_fence();
#pragma unroll
                for (int kk = 0; kk < WG_BK / 16; ++kk) {
                    const u64 da = TA ? wg_desc(sa + kk * 2048, WG_BOX_BYTES, 1024)
                                      : wg_desc(sa + kk * 32, 16, 1024);
                    const u64 db = TB ? wg_desc(sb + kk * 32, 16, 1024)
                                      : wg_desc(sb + kk * 2048, WG_BOX_BYTES, 1024);
                    wg_mma<BF16, TA ? 1 : 0, TB ? 0 : 1>(acc, da, db, 1);
                }
                wg_commit();
                // The group issued before this one has completed: its stage can be refilled.
                wg_wait<1>();
                if (kt > 0 && lane == 0) wg_mbar_arrive(empty + 8 * prev);
                prev = s;
            }
            wg_wait<0>();
            wg_fence_acc(acc);
            if (lane == 0) wg_mbar_arrive(empty + 8 * prev);

            // Epilogue: the m64n256 accumulator layout puts, per warp, rows warp*16 + lane/4
            // (+8) and, per 8-column block j, columns 8j + 2(lane%4) + {0, 1} in registers
            // 4j + {0, 1} (+{2, 3} for the row 8 below). Each quad of lanes transposes its
            // pairs (wg_quad_transpose) so that a lane holds 8 contiguous columns: a warp then
            // stores 64 contiguous bytes per row in 16-byte pieces.
            const int q = lane & 3;
            const int r0 = m0 + cw * 64 + warp * 16 + (lane >> 2);
            const bool vec = (N & 7) == 0;  // rows of 16-byte multiples: aligned 16-byte stores
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = r0 + 8 * h;
#pragma unroll
                for (int g = 0; g < WG_BN / 32; ++g) {
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
    }
}

#define WB_WGMMA(ty, bf, sfx, ta, tb)                                                            \
    extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_wgmma_##ty##_##sfx(        \
        const __grid_constant__ WbTensorMap tma_a, const __grid_constant__ WbTensorMap tma_b,   \
        u16* C, int M, int N, int K, int tiles_m, int tiles_n) {                                \
        gemm_wgmma_body<bf, ta, tb>(&tma_a, &tma_b, C, M, N, K, tiles_m, tiles_n);              \
    }
WB_WGMMA(bf16, true, nn, false, false)
WB_WGMMA(bf16, true, nt, false, true)
WB_WGMMA(bf16, true, tn, true, false)
WB_WGMMA(bf16, true, tt, true, true)
WB_WGMMA(f16, false, nn, false, false)
WB_WGMMA(f16, false, nt, false, true)
WB_WGMMA(f16, false, tn, true, false)
WB_WGMMA(f16, false, tt, true, true)
