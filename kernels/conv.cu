// Conv2d as implicit GEMM (fp32), NCHW input, KCRS filter, output [N,K,P,Q], dilation 1.
//
// One tiled engine (128 x BN x 16 tiles, 8 x BN/16 outputs per thread, register-staged double
// buffering) runs three problems that differ only in how tiles are gathered and stored:
//
//   conv2d_fwd_f32_bn{64,128}  Y[n,k,p,q]  GEMM M=N·P·Q, cols=K, red=C·R·S
//   conv2d_bwd_data_f32        dX[n,c,h,w] GEMM M=N·H·W, cols=C, red=K·R·S
//   conv2d_bwd_filter_f32      dW[k,c,r,s] GEMM M=K, cols=C·R·S, red=N·P·Q, split over
//                              gridDim.z reduction slices; adds into dW with atomics, so the
//                              caller zeroes dW first.
//
// No im2col buffer: each thread walks its run of reduction indices incrementally (no division
// per element). Rows of the output tile map to adjacent pixels, so stores are coalesced.

#define CV_BM 128
#define CV_BK 16
#define CV_THREADS 256
#define CV_PAD 4

struct ConvShape {
    int N, C, H, W, K, R, S, P, Q, ph, pw, sh, sw;
};

// Forward: A[m = (n,p,q)][j = (c,r,s)] = X gather, B[j][k] = Wt[k][j].
struct FwdProblem {
    const float* x;
    const float* w;
    float* y;
    ConvShape s;
    __device__ int rows() const { return s.N * s.P * s.Q; }
    __device__ int cols() const { return s.K; }
    __device__ int red() const { return s.C * s.R * s.S; }

    // Per-thread A-row state.
    const float* xb;
    int ih0, iw0;
    bool arow;
    __device__ void a_init(int m) {
        arow = m < rows();
        const int mm = arow ? m : 0;
        const int pq = s.P * s.Q;
        const int n = mm / pq, rem = mm % pq;
        ih0 = (rem / s.Q) * s.sh - s.ph;
        iw0 = (rem % s.Q) * s.sw - s.pw;
        xb = x + (size_t)n * s.C * s.H * s.W;
    }
    template <int CNT>
    __device__ void a_run(int j0, float (&v)[CNT]) const {
        const int rs = s.R * s.S, jmax = red();
        int c = j0 / rs, t = j0 % rs;
        int r = t / s.S, q = t % s.S;
#pragma unroll
        for (int i = 0; i < CNT; ++i) {
            const int ih = ih0 + r, iw = iw0 + q;
            v[i] = (arow && j0 + i < jmax && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                       ? xb[((size_t)c * s.H + ih) * s.W + iw]
                       : 0.0f;
            if (++q == s.S) { q = 0; if (++r == s.R) { r = 0; ++c; } }
        }
    }
    const float* wrow;
    bool bcol;
    __device__ void b_init(int k) {
        bcol = k < cols();
        wrow = w + (size_t)(bcol ? k : 0) * red();
    }
    template <int CNT>
    __device__ void b_run(int j0, float (&v)[CNT]) const {
        const int jmax = red();
#pragma unroll
        for (int i = 0; i < CNT; ++i) v[i] = (bcol && j0 + i < jmax) ? wrow[j0 + i] : 0.0f;
    }
    // Rows m..m+3 (m % 4 == 0) of output column k.
    __device__ void store4(int m, int k, const float (&v)[4]) const {
        if (k >= cols()) return;
        const int pq = s.P * s.Q, M = rows();
        if ((pq & 3) == 0 && m + 3 < M) {
            const int n = m / pq, rem = m % pq;
            *reinterpret_cast<float4*>(y + ((size_t)n * s.K + k) * pq + rem) =
                make_float4(v[0], v[1], v[2], v[3]);
            return;
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            if (m + e >= M) break;
            const int n = (m + e) / pq, rem = (m + e) % pq;
            y[((size_t)n * s.K + k) * pq + rem] = v[e];
        }
    }
};

// Backward data: A[m = (n,h,w)][j = (k,r,s)] = dY gather, B[j][c] = W[k][c][r][s].
struct BwdDataProblem {
    const float* dy;
    const float* w;
    float* dx;
    ConvShape s;
    __device__ int rows() const { return s.N * s.H * s.W; }
    __device__ int cols() const { return s.C; }
    __device__ int red() const { return s.K * s.R * s.S; }

    const float* dyb;
    int th0, tw0;
    bool arow;
    __device__ void a_init(int m) {
        arow = m < rows();
        const int mm = arow ? m : 0;
        const int hw = s.H * s.W;
        const int n = mm / hw, rem = mm % hw;
        th0 = rem / s.W + s.ph;
        tw0 = rem % s.W + s.pw;
        dyb = dy + (size_t)n * s.K * s.P * s.Q;
    }
    template <int CNT>
    __device__ void a_run(int j0, float (&v)[CNT]) const {
        const int rs = s.R * s.S, jmax = red();
        int k = j0 / rs, t = j0 % rs;
        int r = t / s.S, q = t % s.S;
#pragma unroll
        for (int i = 0; i < CNT; ++i) {
            float val = 0.0f;
            const int th = th0 - r, tw = tw0 - q;  // = p*sh, q*sw when this tap hits
            if (arow && j0 + i < jmax && th >= 0 && tw >= 0) {
                const int p = th / s.sh, qq = tw / s.sw;
                if (p * s.sh == th && qq * s.sw == tw && p < s.P && qq < s.Q)
                    val = dyb[((size_t)k * s.P + p) * s.Q + qq];
            }
            v[i] = val;
            if (++q == s.S) { q = 0; if (++r == s.R) { r = 0; ++k; } }
        }
    }
    int bc;
    bool bcol;
    __device__ void b_init(int c) {
        bcol = c < cols();
        bc = bcol ? c : 0;
    }
    template <int CNT>
    __device__ void b_run(int j0, float (&v)[CNT]) const {
        const int rs = s.R * s.S, jmax = red();
        int k = j0 / rs, t = j0 % rs;
#pragma unroll
        for (int i = 0; i < CNT; ++i) {
            v[i] = (bcol && j0 + i < jmax) ? w[((size_t)k * s.C + bc) * rs + t] : 0.0f;
            if (++t == rs) { t = 0; ++k; }
        }
    }
    __device__ void store4(int m, int c, const float (&v)[4]) const {
        if (c >= cols()) return;
        const int hw = s.H * s.W, M = rows();
        if ((hw & 3) == 0 && m + 3 < M) {
            const int n = m / hw, rem = m % hw;
            *reinterpret_cast<float4*>(dx + ((size_t)n * s.C + c) * hw + rem) =
                make_float4(v[0], v[1], v[2], v[3]);
            return;
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            if (m + e >= M) break;
            const int n = (m + e) / hw, rem = (m + e) % hw;
            dx[((size_t)n * s.C + c) * hw + rem] = v[e];
        }
    }
};

// Backward filter: A[k][j = (n,p,q)] = dY, B[j][col = (c,r,s)] = X gather. Accumulates.
struct BwdFilterProblem {
    const float* x;
    const float* dy;
    float* dw;
    ConvShape s;
    __device__ int rows() const { return s.K; }
    __device__ int cols() const { return s.C * s.R * s.S; }
    __device__ int red() const { return s.N * s.P * s.Q; }

    int ak;
    bool arow;
    __device__ void a_init(int k) {
        arow = k < rows();
        ak = arow ? k : 0;
    }
    template <int CNT>
    __device__ void a_run(int j0, float (&v)[CNT]) const {
        const int pq = s.P * s.Q, jmax = red();
        int n = j0 / pq, t = j0 % pq;
#pragma unroll
        for (int i = 0; i < CNT; ++i) {
            v[i] = (arow && j0 + i < jmax) ? dy[((size_t)n * s.K + ak) * pq + t] : 0.0f;
            if (++t == pq) { t = 0; ++n; }
        }
    }
    const float* xc;
    int br, bs;
    bool bcol;
    __device__ void b_init(int col) {
        bcol = col < cols();
        const int cc = bcol ? col : 0, rs = s.R * s.S;
        const int c = cc / rs, t = cc % rs;
        br = t / s.S - s.ph;
        bs = t % s.S - s.pw;
        xc = x + (size_t)c * s.H * s.W;
    }
    template <int CNT>
    __device__ void b_run(int j0, float (&v)[CNT]) const {
        const int pq = s.P * s.Q, jmax = red();
        int n = j0 / pq, t = j0 % pq;
        int p = t / s.Q, q = t % s.Q;
#pragma unroll
        for (int i = 0; i < CNT; ++i) {
            const int ih = p * s.sh + br, iw = q * s.sw + bs;
            v[i] = (bcol && j0 + i < jmax && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                       ? xc[((size_t)n * s.C * s.H + ih) * s.W + iw]
                       : 0.0f;
            if (++q == s.Q) { q = 0; if (++p == s.P) { p = 0; ++n; } }
        }
    }
    __device__ void store4(int m, int col, const float (&v)[4]) const {
        if (col >= cols()) return;
        const int M = rows(), ncol = cols();
#pragma unroll
        for (int e = 0; e < 4; ++e)
            if (m + e < M) atomicAdd(dw + (size_t)(m + e) * ncol + col, v[e]);
    }
};

// The engine. Thread (tm = tid % 16, tn = tid / 16) owns rows {tm*4+i, 64+tm*4+i} and columns
// {tn*H+j, BN/2+tn*H+j} with H = BN/32, so a warp's rows are 64 consecutive pixels.
template <int BN, class P>
__device__ __forceinline__ void conv_igemm(P& pb) {
    constexpr int HN = BN / 32;                       // columns per half per thread (4 or 2)
    constexpr int A_CNT = CV_BM * CV_BK / CV_THREADS;  // 8
    constexpr int B_CNT = BN * CV_BK / CV_THREADS;     // 8 or 4
    __shared__ __align__(16) float As[2][CV_BK][CV_BM + CV_PAD];
    __shared__ __align__(16) float Bs[2][CV_BK][BN + CV_PAD];

    const int tid = threadIdx.x, tm = tid & 15, tn = tid >> 4;
    const int m0 = blockIdx.x * CV_BM, n0 = blockIdx.y * BN;

    // Loader assignment: adjacent threads take adjacent rows/columns, each a run of k's.
    const int a_row = tid % CV_BM, a_k = (tid / CV_BM) * A_CNT;
    const int b_col = tid % BN, b_k = (tid / BN) * B_CNT;
    pb.a_init(m0 + a_row);
    pb.b_init(n0 + b_col);

    // Reduction range of this z-slice (whole range when gridDim.z == 1).
    const int KT_all = (pb.red() + CV_BK - 1) / CV_BK;
    const int per = (KT_all + gridDim.z - 1) / gridDim.z;
    const int kt0 = blockIdx.z * per;
    const int kt1 = min(KT_all, kt0 + per);
    if (kt0 >= kt1) return;

    float ra[A_CNT], rb[B_CNT];
    float acc[8][2 * HN];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 2 * HN; ++j) acc[i][j] = 0.0f;

    pb.a_run(kt0 * CV_BK + a_k, ra);
    pb.b_run(kt0 * CV_BK + b_k, rb);
#pragma unroll
    for (int i = 0; i < A_CNT; ++i) As[0][a_k + i][a_row] = ra[i];
#pragma unroll
    for (int i = 0; i < B_CNT; ++i) Bs[0][b_k + i][b_col] = rb[i];
    __syncthreads();

    for (int kt = kt0; kt < kt1; ++kt) {
        const int buf = (kt - kt0) & 1;
        const bool more = kt + 1 < kt1;
        if (more) {
            pb.a_run((kt + 1) * CV_BK + a_k, ra);
            pb.b_run((kt + 1) * CV_BK + b_k, rb);
        }
#pragma unroll
        for (int k = 0; k < CV_BK; ++k) {
            float a[8], b[2 * HN];
            const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][k][tm * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][k][64 + tm * 4]);
            a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
            a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
            if (HN == 4) {
                const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][k][tn * 4]);
                const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][k][BN / 2 + tn * 4]);
                b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w;
                b[HN] = b1.x; b[HN + 1] = b1.y; b[HN + 2] = b1.z; b[HN + 3] = b1.w;
            } else {
                const float2 b0 = *reinterpret_cast<const float2*>(&Bs[buf][k][tn * 2]);
                const float2 b1 = *reinterpret_cast<const float2*>(&Bs[buf][k][BN / 2 + tn * 2]);
                b[0] = b0.x; b[1] = b0.y;
                b[HN] = b1.x; b[HN + 1] = b1.y;
            }
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 2 * HN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {
#pragma unroll
            for (int i = 0; i < A_CNT; ++i) As[buf ^ 1][a_k + i][a_row] = ra[i];
#pragma unroll
            for (int i = 0; i < B_CNT; ++i) Bs[buf ^ 1][b_k + i][b_col] = rb[i];
        }
        __syncthreads();
    }

#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int m = m0 + h * 64 + tm * 4;
#pragma unroll
        for (int hc = 0; hc < 2; ++hc) {
#pragma unroll
            for (int j = 0; j < HN; ++j) {
                const int col = n0 + hc * (BN / 2) + tn * HN + j;
                const float v[4] = {acc[h * 4][hc * HN + j], acc[h * 4 + 1][hc * HN + j],
                                    acc[h * 4 + 2][hc * HN + j], acc[h * 4 + 3][hc * HN + j]};
                pb.store4(m, col, v);
            }
        }
    }
}

#define CV_SHAPE_ARGS                                                                            \
    int N, int C, int H, int W, int K, int R, int S, int P, int Q, int ph, int pw, int sh, int sw
#define CV_SHAPE {N, C, H, W, K, R, S, P, Q, ph, pw, sh, sw}

// grid (ceil(N·P·Q/128), ceil(K/BN)), block 256.
extern "C" __global__ void __launch_bounds__(CV_THREADS)
    conv2d_fwd_f32_bn128(const float* x, const float* w, float* y, CV_SHAPE_ARGS) {
    FwdProblem pb;
    pb.x = x; pb.w = w; pb.y = y; pb.s = CV_SHAPE;
    conv_igemm<128>(pb);
}

extern "C" __global__ void __launch_bounds__(CV_THREADS)
    conv2d_fwd_f32_bn64(const float* x, const float* w, float* y, CV_SHAPE_ARGS) {
    FwdProblem pb;
    pb.x = x; pb.w = w; pb.y = y; pb.s = CV_SHAPE;
    conv_igemm<64>(pb);
}

// grid (ceil(N·H·W/128), ceil(C/64)), block 256.
extern "C" __global__ void __launch_bounds__(CV_THREADS)
    conv2d_bwd_data_f32(const float* dy, const float* w, float* dx, CV_SHAPE_ARGS) {
    BwdDataProblem pb;
    pb.dy = dy; pb.w = w; pb.dx = dx; pb.s = CV_SHAPE;
    conv_igemm<64>(pb);
}

// grid (ceil(K/128), ceil(C·R·S/64), splits), block 256; dW must be zeroed first.
extern "C" __global__ void __launch_bounds__(CV_THREADS)
    conv2d_bwd_filter_f32(const float* x, const float* dy, float* dw, CV_SHAPE_ARGS) {
    BwdFilterProblem pb;
    pb.x = x; pb.dy = dy; pb.dw = dw; pb.s = CV_SHAPE;
    conv_igemm<64>(pb);
}
