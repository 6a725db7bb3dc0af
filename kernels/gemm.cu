// GEMM kernels: C[M,N] = op(A)·op(B), row-major. A is stored [M,K] ([K,M] when TA), B is
// stored [K,N] ([N,K] when TB). Every kernel handles any M, N, K >= 1 (edges are guarded and
// zero-filled) and takes the four transpose combinations as separate entry points
// (suffix _nn, _nt, _tn, _tt: first letter A, second B), so the hot loops carry no branches.
//
// 1. gemm_naive_f32_*   one thread per output, no reuse: the baseline.
// 2. gemm_tiled_f32_*   128x128x8 shared-memory tiles, 8x8 outputs per thread (register
//                       blocking), float4 global loads where the leading dimension allows,
//                       register-staged double buffering (one barrier per k-tile).
// 3. gemm_tc_{bf16,f16}_*  tensor cores via mma.sync m16n8k16 (sm_80+), fp32 accumulation,
//                       128x128x32 tiles, 4-stage cp.async pipeline in dynamic shared memory
//                       (WB_TC_SMEM_BYTES, set with cuFuncSetAttribute), ldmatrix(.trans)
//                       fragment loads from padded (bank-conflict-free) tiles. C in the input
//                       dtype, rounded to nearest even.

// ---------------------------------------------------------------------------------------------
// 1. Naive
// ---------------------------------------------------------------------------------------------
template <bool TA, bool TB>
__device__ __forceinline__ void gemm_naive_body(const float* WB_RESTRICT A, const float* WB_RESTRICT B,
                                                float* WB_RESTRICT C, int M, int N, int K) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    int i = blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= M || j >= N) return;
    float acc = 0.0f;
    for (int p = 0; p < K; ++p) {
        float a = TA ? A[(size_t)p * M + i] : A[(size_t)i * K + p];
        float b = TB ? B[(size_t)j * K + p] : B[(size_t)p * N + j];
        acc = fmaf(a, b, acc);
    }
    C[(size_t)i * N + j] = acc;
}

#define WB_NAIVE(sfx, ta, tb)                                                                    \
    extern "C" __global__ void gemm_naive_f32_##sfx(const float* A, const float* B, float* C,   \
                                                    int M, int N, int K) {                      \
        gemm_naive_body<ta, tb>(A, B, C, M, N, K);                                              \
    }
WB_NAIVE(nn, false, false)
WB_NAIVE(nt, false, true)
WB_NAIVE(tn, true, false)
WB_NAIVE(tt, true, true)

// ---------------------------------------------------------------------------------------------
// 2. Tiled fp32
// ---------------------------------------------------------------------------------------------
#define T_BM 128
#define T_BN 128
#define T_BK 8
#define T_PAD 4  // row padding of the k-major tiles: keeps transposed stores conflict-free
#define T_THREADS 256

// Loads this thread's 4-element chunk of a k-tile into registers. `rows`/`cols` describe the
// stored matrix (row-major, leading dimension `cols`); (r, c) is the chunk's first element.
__device__ __forceinline__ void t_load4(const float* WB_RESTRICT g, int rows, int cols, int r, int c,
                                        float (&v)[4]) {
    if (r < rows && c + 3 < cols && (cols & 3) == 0) {
        float4 q = *reinterpret_cast<const float4*>(g + (size_t)r * cols + c);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
            v[e] = (r < rows && c + e < cols) ? g[(size_t)r * cols + c + e] : 0.0f;
    }
}

template <bool TA, bool TB>
__device__ __forceinline__ void gemm_tiled_body(const float* WB_RESTRICT A, const float* WB_RESTRICT B,
                                                float* WB_RESTRICT C, int M, int N, int K) {
    __shared__ __align__(16) float As[2][T_BK][T_BM + T_PAD];
    __shared__ __align__(16) float Bs[2][T_BK][T_BN + T_PAD];

    const int tid = threadIdx.x;
    const int tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * T_BM, n0 = blockIdx.x * T_BN;

    // Chunk coordinates of this thread's loads (one float4 per operand per k-tile).
    // Row-major along k ([M,K] A / [N,K] B): 128 rows x 2 chunks. Along m/n: 8 rows x 32 chunks.
    const int ar = TA ? (tid >> 5) : (tid >> 1);
    const int ac = TA ? ((tid & 31) << 2) : ((tid & 1) << 2);
    const int br = TB ? (tid >> 1) : (tid >> 5);
    const int bc = TB ? ((tid & 1) << 2) : ((tid & 31) << 2);

    float ra[4], rb[4];
    auto gload = [&](int k0) {
        if (TA) t_load4(A, K, M, k0 + ar, m0 + ac, ra);
        else    t_load4(A, M, K, m0 + ar, k0 + ac, ra);
        if (TB) t_load4(B, N, K, n0 + br, k0 + bc, rb);
        else    t_load4(B, K, N, k0 + br, n0 + bc, rb);
    };
    auto sstore = [&](int buf) {
        if (TA) {
            *reinterpret_cast<float4*>(&As[buf][ar][ac]) = make_float4(ra[0], ra[1], ra[2], ra[3]);
        } else {
#pragma unroll
            for (int e = 0; e < 4; ++e) As[buf][ac + e][ar] = ra[e];
        }
        if (TB) {
#pragma unroll
            for (int e = 0; e < 4; ++e) Bs[buf][bc + e][br] = rb[e];
        } else {
            *reinterpret_cast<float4*>(&Bs[buf][br][bc]) = make_float4(rb[0], rb[1], rb[2], rb[3]);
        }
    };

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

    const int KT = (K + T_BK - 1) / T_BK;
    gload(0);
    sstore(0);
    __syncthreads();

    for (int kt = 0; kt < KT; ++kt) {
        const int buf = kt & 1;
        const bool more = kt + 1 < KT;
        if (more) gload((kt + 1) * T_BK);
#pragma unroll
        for (int k = 0; k < T_BK; ++k) {
            float a[8], b[8];
            float4 a0 = *reinterpret_cast<const float4*>(&As[buf][k][ty * 4]);
            float4 a1 = *reinterpret_cast<const float4*>(&As[buf][k][64 + ty * 4]);
            float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][k][tx * 4]);
            float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][k][64 + tx * 4]);
            a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
            a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
            b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w;
            b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) sstore(buf ^ 1);
        __syncthreads();
    }

    const bool vec_c = (N & 3) == 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int r = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
        if (r >= M) continue;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int c = n0 + h * 64 + tx * 4;
            float* dst = C + (size_t)r * N + c;
            if (vec_c && c + 3 < N) {
                *reinterpret_cast<float4*>(dst) =
                    make_float4(acc[i][h * 4], acc[i][h * 4 + 1], acc[i][h * 4 + 2], acc[i][h * 4 + 3]);
            } else {
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    if (c + e < N) dst[e] = acc[i][h * 4 + e];
            }
        }
    }
}

#define WB_TILED(sfx, ta, tb)                                                                    \
    extern "C" __global__ void __launch_bounds__(T_THREADS)                                     \
        gemm_tiled_f32_##sfx(const float* A, const float* B, float* C, int M, int N, int K) {   \
        gemm_tiled_body<ta, tb>(A, B, C, M, N, K);                                              \
    }
WB_TILED(nn, false, false)
WB_TILED(nt, false, true)
WB_TILED(tn, true, false)
WB_TILED(tt, true, true)

// ---------------------------------------------------------------------------------------------
// 3. Tensor cores (bf16 / f16 in, fp32 accumulate)
// ---------------------------------------------------------------------------------------------
#define TC_BM 128
#define TC_BN 128
#define TC_BK 32
#define TC_STAGES 4
#define TC_THREADS 256
#define TC_PAD 8  // 16 bytes per row: ldmatrix rows land in distinct banks
// Elements of one operand's stage: the larger of [128][32+8] and [32][128+8].
#define TC_STAGE_ELEMS (TC_BM * (TC_BK + TC_PAD))
// Dynamic shared memory each tensor-core GEMM launch needs (the host sets the attribute).
#define WB_TC_SMEM_BYTES (TC_STAGES * 2 * TC_STAGE_ELEMS * 2)

template <bool BF16>
__device__ __forceinline__ u16 tc_round(float v) {
    return BF16 ? wb_f32_to_bf16(v) : wb_f32_to_f16(v);
}

// Copies a TR x TC tile (TR*TC/8 == 512 chunks of 8 elements) whose origin is (r0, c0) in a
// row-major [rows, cols] matrix into shared memory with row pitch TC + TC_PAD.
template <int TR, int TC>
__device__ __forceinline__ void tc_load_tile(u16* s, const u16* WB_RESTRICT g, int rows, int cols,
                                             int r0, int c0, bool vec) {
    constexpr int CPR = TC / 8;  // chunks per row
#pragma unroll
    for (int i = 0; i < (TR * TC / 8) / TC_THREADS; ++i) {
        const int ch = threadIdx.x + i * TC_THREADS;
        const int r = ch / CPR, c = (ch % CPR) * 8;
        const int gr = r0 + r, gc = c0 + c;
        u16* dst = s + r * (TC + TC_PAD) + c;
        if (vec) {
            const bool ok = gr < rows && gc < cols;  // cols % 8 == 0: chunk wholly in or out
            wb_cp_async16(dst, ok ? (const void*)(g + (size_t)gr * cols + gc) : (const void*)g,
                          ok ? 16 : 0);
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e)
                dst[e] = (gr < rows && gc + e < cols) ? g[(size_t)gr * cols + gc + e] : (u16)0;
        }
    }
}

template <bool BF16, bool TA, bool TB>
__device__ __forceinline__ void gemm_tc_body(const u16* WB_RESTRICT A, const u16* WB_RESTRICT B,
                                             u16* WB_RESTRICT C, int M, int N, int K) {
    WB_DYNAMIC_SMEM(u16, tc_smem);
    u16* As = tc_smem;
    u16* Bs = tc_smem + TC_STAGES * TC_STAGE_ELEMS;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3;  // 2 x 4 warps, each 64 x 32 outputs
    const int m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN;
    const bool vec_a = ((TA ? M : K) & 7) == 0;
    const bool vec_b = ((TB ? K : N) & 7) == 0;

    auto load_stage = [&](int kt, int st) {
        const int k0 = kt * TC_BK;
        u16* as = As + st * TC_STAGE_ELEMS;
        u16* bs = Bs + st * TC_STAGE_ELEMS;
        if (TA) tc_load_tile<TC_BK, TC_BM>(as, A, K, M, k0, m0, vec_a);
        else    tc_load_tile<TC_BM, TC_BK>(as, A, M, K, m0, k0, vec_a);
        if (TB) tc_load_tile<TC_BN, TC_BK>(bs, B, N, K, n0, k0, vec_b);
        else    tc_load_tile<TC_BK, TC_BN>(bs, B, K, N, k0, n0, vec_b);
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    const int KT = (K + TC_BK - 1) / TC_BK;
#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; ++s) {
        if (s < KT) load_stage(s, s);
        wb_cp_async_commit();
    }

    const int mat = lane >> 3, mr = lane & 7;
    for (int kt = 0; kt < KT; ++kt) {
        wb_cp_async_wait<TC_STAGES - 2>();
        __syncthreads();
        {
            const int nk = kt + TC_STAGES - 1;
            if (nk < KT) load_stage(nk, nk % TC_STAGES);
            wb_cp_async_commit();
        }
        const u16* as = As + (kt % TC_STAGES) * TC_STAGE_ELEMS;
        const u16* bs = Bs + (kt % TC_STAGES) * TC_STAGE_ELEMS;
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            u32 af[4][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                const int mb = wm * 64 + mi * 16;
                if (TA) {
                    // Stored [k][m]: transpose 8x8 blocks on load.
                    const int k = kk + (mat >> 1) * 8 + mr, m = mb + (mat & 1) * 8;
                    wb_ldmatrix_x4_trans(af[mi], as + k * (TC_BM + TC_PAD) + m);
                } else {
                    const int m = mb + (mat & 1) * 8 + mr, k = kk + (mat >> 1) * 8;
                    wb_ldmatrix_x4(af[mi], as + m * (TC_BK + TC_PAD) + k);
                }
            }
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) {
                const int nb = wn * 32 + nj * 16;
                u32 r[4];
                if (TB) {
                    const int n = nb + (mat >> 1) * 8 + mr, k = kk + (mat & 1) * 8;
                    wb_ldmatrix_x4(r, bs + n * (TC_BK + TC_PAD) + k);
                } else {
                    const int k = kk + (mat & 1) * 8 + mr, n = nb + (mat >> 1) * 8;
                    wb_ldmatrix_x4_trans(r, bs + k * (TC_BN + TC_PAD) + n);
                }
                bf[nj * 2][0] = r[0];
                bf[nj * 2][1] = r[1];
                bf[nj * 2 + 1][0] = r[2];
                bf[nj * 2 + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) wb_mma_m16n8k16<BF16>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
        }
    }
    wb_cp_async_wait<0>();

    const int g = lane >> 2, tig = lane & 3;
    const bool pair = (N & 1) == 0;
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const int c = n0 + wn * 32 + ni * 8 + tig * 2;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = m0 + wm * 64 + mi * 16 + g + h * 8;
                if (r >= M) continue;
                const u16 v0 = tc_round<BF16>(acc[mi][ni][h * 2]);
                const u16 v1 = tc_round<BF16>(acc[mi][ni][h * 2 + 1]);
                u16* dst = C + (size_t)r * N + c;
                if (pair && c + 1 < N) {
                    *reinterpret_cast<u32*>(dst) = (u32)v0 | ((u32)v1 << 16);
                } else {
                    if (c < N) dst[0] = v0;
                    if (c + 1 < N) dst[1] = v1;
                }
            }
        }
    }
}

#define WB_TC(ty, bf, sfx, ta, tb)                                                               \
    extern "C" __global__ void __launch_bounds__(TC_THREADS)                                    \
        gemm_tc_##ty##_##sfx(const u16* A, const u16* B, u16* C, int M, int N, int K) {         \
        gemm_tc_body<bf, ta, tb>(A, B, C, M, N, K);                                             \
    }
WB_TC(bf16, true, nn, false, false)
WB_TC(bf16, true, nt, false, true)
WB_TC(bf16, true, tn, true, false)
WB_TC(bf16, true, tt, true, true)
WB_TC(f16, false, nn, false, false)
WB_TC(f16, false, nt, false, true)
WB_TC(f16, false, tn, true, false)
WB_TC(f16, false, tt, true, true)
