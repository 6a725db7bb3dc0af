// Fused recurrent steps (fp32) for vanilla / LSTM / GRU cells, layouts as in wattbench-core's
// workload.rs: XP[T,B,G·H] (projected inputs), W[H,G·H], b[G·H], HS[T,B,H]; LSTM gates i,f,g,o;
// GRU r,z,n with n = tanh(xn + r·(h·Wn + bn)).
//
// Forward, one launch per step: rnn_fwd_<cell>. A block owns 16 hidden units x 32 batch rows
// and computes those units' columns of every gate (h·W over the whole of H, 128 threads, each
// 4 units x 1 row x G gates), then applies the gate nonlinearities and the state update in
// registers: the gate pre-activations never touch device memory. `save` (nullable) keeps what
// backward needs: LSTM [B,5H] = i,f,g,o,c'; GRU [B,4H] = r,z,n,hn.
//
// Backward (BPTT), one launch per step: rnn_bwd_<cell> computes dh_{s} = dREC_{s+1}·Wᵀ (+ the
// output gradient, + GRU's direct z·dh term) for a tile of (b, unit) and, fused in the same
// epilogue, the gate gradients of step s (dXP[s], dREC[s]; LSTM's dc carry in place).
// rnn_bwd_last_<cell> starts the chain at s = T-1 (no GEMM). With s = -1 the step kernel writes
// dh0 instead. dW = Hprevᵀ·dREC and db = Σ dREC are whole-sequence reductions done afterwards
// with gemm_tiled_f32_tn and colsum_f32.

#define RN_BJ 16
#define RN_BB 32
#define RN_BK 32
#define RN_THREADS 128

template <int G>
__device__ __forceinline__ void rnn_recurrent(const float* WB_RESTRICT h, const float* WB_RESTRICT w,
                                              int B, int H, int j0, int b0, float (&acc)[G][4]) {
    __shared__ float hs[RN_BK][RN_BB + 1];
    __shared__ __align__(16) float ws[RN_BK][G][RN_BJ];
    const int tid = threadIdx.x, jg = tid & 3, bl = tid >> 2;
    const int GH = G * H;
    const bool vec_w = (H & 3) == 0, vec_h = (H & 3) == 0;
#pragma unroll
    for (int q = 0; q < G; ++q)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[q][e] = 0.0f;

    for (int k0 = 0; k0 < H; k0 += RN_BK) {
        // h tile [32 rows][32 k] -> hs[k][b]
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int c = tid + i * RN_THREADS;
            const int b = c >> 3, kq = (c & 7) * 4;
            const int gb = b0 + b, gk = k0 + kq;
            float v[4];
            if (vec_h && gb < B && gk + 3 < H) {
                const float4 t = *reinterpret_cast<const float4*>(h + (size_t)gb * H + gk);
                v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
            } else {
#pragma unroll
                for (int e = 0; e < 4; ++e) v[e] = (gb < B && gk + e < H) ? h[(size_t)gb * H + gk + e] : 0.0f;
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) hs[kq + e][b] = v[e];
        }
        // W tile [32 k][G gates][16 units]
#pragma unroll
        for (int i = 0; i < G; ++i) {
            const int c = tid + i * RN_THREADS;
            const int jq = (c & 3) * 4, q = (c >> 2) % G, k = (c >> 2) / G;
            const int gk = k0 + k, gj = j0 + jq;
            const float* src = w + (size_t)gk * GH + (size_t)q * H + gj;
            float4 t;
            if (vec_w && gk < H && gj + 3 < H) {
                t = *reinterpret_cast<const float4*>(src);
            } else {
                t.x = (gk < H && gj < H) ? src[0] : 0.0f;
                t.y = (gk < H && gj + 1 < H) ? src[1] : 0.0f;
                t.z = (gk < H && gj + 2 < H) ? src[2] : 0.0f;
                t.w = (gk < H && gj + 3 < H) ? src[3] : 0.0f;
            }
            *reinterpret_cast<float4*>(&ws[k][q][jq]) = t;
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < RN_BK; ++k) {
            const float hv = hs[k][bl];
#pragma unroll
            for (int q = 0; q < G; ++q) {
                const float4 wv = *reinterpret_cast<const float4*>(&ws[k][q][jg * 4]);
                acc[q][0] = fmaf(hv, wv.x, acc[q][0]);
                acc[q][1] = fmaf(hv, wv.y, acc[q][1]);
                acc[q][2] = fmaf(hv, wv.z, acc[q][2]);
                acc[q][3] = fmaf(hv, wv.w, acc[q][3]);
            }
        }
        __syncthreads();
    }
}

// grid (ceil(H/16), ceil(B/32)), block 128. h_prev and h_out must not alias.
extern "C" __global__ void __launch_bounds__(RN_THREADS)
    rnn_fwd_vanilla(const float* xp, const float* w, const float* bias, const float* h_prev,
                    float* h_out, int B, int H) {
    const int j0 = blockIdx.x * RN_BJ, b0 = blockIdx.y * RN_BB;
    float acc[1][4];
    rnn_recurrent<1>(h_prev, w, B, H, j0, b0, acc);
    const int b = b0 + (threadIdx.x >> 2);
    if (b >= B) return;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const int j = j0 + (threadIdx.x & 3) * 4 + e;
        if (j >= H) continue;
        h_out[(size_t)b * H + j] = wb_tanh(xp[(size_t)b * H + j] + bias[j] + acc[0][e]);
    }
}

// c is updated in place (c_{t-1} -> c_t). save: nullable [B,5H].
extern "C" __global__ void __launch_bounds__(RN_THREADS)
    rnn_fwd_lstm(const float* xp, const float* w, const float* bias, const float* h_prev, float* h_out,
                 float* c, float* save, int B, int H) {
    const int j0 = blockIdx.x * RN_BJ, b0 = blockIdx.y * RN_BB;
    float acc[4][4];
    rnn_recurrent<4>(h_prev, w, B, H, j0, b0, acc);
    const int b = b0 + (threadIdx.x >> 2);
    if (b >= B) return;
    const float* x = xp + (size_t)b * 4 * H;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const int j = j0 + (threadIdx.x & 3) * 4 + e;
        if (j >= H) continue;
        const float gi = wb_sigmoid(x[j] + bias[j] + acc[0][e]);
        const float gf = wb_sigmoid(x[H + j] + bias[H + j] + acc[1][e]);
        const float gg = wb_tanh(x[2 * H + j] + bias[2 * H + j] + acc[2][e]);
        const float go = wb_sigmoid(x[3 * H + j] + bias[3 * H + j] + acc[3][e]);
        const size_t idx = (size_t)b * H + j;
        const float cn = fmaf(gf, c[idx], gi * gg);
        c[idx] = cn;
        h_out[idx] = go * wb_tanh(cn);
        if (save) {
            float* sv = save + (size_t)b * 5 * H;
            sv[j] = gi; sv[H + j] = gf; sv[2 * H + j] = gg; sv[3 * H + j] = go; sv[4 * H + j] = cn;
        }
    }
}

// save: nullable [B,4H].
extern "C" __global__ void __launch_bounds__(RN_THREADS)
    rnn_fwd_gru(const float* xp, const float* w, const float* bias, const float* h_prev, float* h_out,
                float* save, int B, int H) {
    const int j0 = blockIdx.x * RN_BJ, b0 = blockIdx.y * RN_BB;
    float acc[3][4];
    rnn_recurrent<3>(h_prev, w, B, H, j0, b0, acc);
    const int b = b0 + (threadIdx.x >> 2);
    if (b >= B) return;
    const float* x = xp + (size_t)b * 3 * H;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const int j = j0 + (threadIdx.x & 3) * 4 + e;
        if (j >= H) continue;
        const float r = wb_sigmoid(x[j] + bias[j] + acc[0][e]);
        const float z = wb_sigmoid(x[H + j] + bias[H + j] + acc[1][e]);
        const float hn = acc[2][e] + bias[2 * H + j];
        const float n = wb_tanh(x[2 * H + j] + r * hn);
        const size_t idx = (size_t)b * H + j;
        h_out[idx] = (1.0f - z) * n + z * h_prev[idx];
        if (save) {
            float* sv = save + (size_t)b * 4 * H;
            sv[j] = r; sv[H + j] = z; sv[2 * H + j] = n; sv[3 * H + j] = hn;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

// Per-step state for the gate gradients of step s, all [B, ...] slices of that step.
struct RnnBwdArgs {
    const float* hs;     // HS[s] (vanilla) / h_{s-1} (GRU)
    const float* save;   // save[s] (LSTM [B,5H], GRU [B,4H])
    const float* cprev;  // LSTM c_{s-1}: save[s-1] column block 4 (pitch 5H), or c0 (pitch H)
    int cprev_pitch;
    float* dxp;          // dXP[s] [B,G·H]
    float* drec;         // dREC[s] [B,G·H] (== dxp except for GRU)
    float* carry;        // LSTM dc carry [B,H] (in place); GRU direct z·dh term of step s [B,H]
};

template <int CELL>  // 0 vanilla, 1 lstm, 2 gru
__device__ __forceinline__ void rnn_gate_grads(const RnnBwdArgs& a, int b, int j, int H, float dh) {
    const size_t idx = (size_t)b * H + j;
    if (CELL == 0) {
        const float hv = a.hs[idx];
        const float d = dh * (1.0f - hv * hv);
        a.dxp[idx] = d;
        a.drec[idx] = d;
    } else if (CELL == 1) {
        const float* sv = a.save + (size_t)b * 5 * H;
        const float gi = sv[j], gf = sv[H + j], gg = sv[2 * H + j], go = sv[3 * H + j], cs = sv[4 * H + j];
        const float tc = wb_tanh(cs);
        const float dc = a.carry[idx] + dh * go * (1.0f - tc * tc);
        const float cp = a.cprev[(size_t)b * a.cprev_pitch + j];
        float* dx = a.dxp + (size_t)b * 4 * H;
        float* dr = a.drec + (size_t)b * 4 * H;
        const float di = dc * gg * gi * (1.0f - gi);
        const float df = dc * cp * gf * (1.0f - gf);
        const float dg = dc * gi * (1.0f - gg * gg);
        const float dO = dh * tc * go * (1.0f - go);
        dx[j] = di; dx[H + j] = df; dx[2 * H + j] = dg; dx[3 * H + j] = dO;
        dr[j] = di; dr[H + j] = df; dr[2 * H + j] = dg; dr[3 * H + j] = dO;
        a.carry[idx] = dc * gf;
    } else {
        const float* sv = a.save + (size_t)b * 4 * H;
        const float r = sv[j], z = sv[H + j], n = sv[2 * H + j], hn = sv[3 * H + j];
        const float hp = a.hs[idx];
        const float dn = dh * (1.0f - z) * (1.0f - n * n);
        const float dz = dh * (hp - n) * z * (1.0f - z);
        const float drr = dn * hn * r * (1.0f - r);
        float* dx = a.dxp + (size_t)b * 3 * H;
        float* dr = a.drec + (size_t)b * 3 * H;
        dx[j] = drr; dx[H + j] = dz; dx[2 * H + j] = dn;
        dr[j] = drr; dr[H + j] = dz; dr[2 * H + j] = dn * r;
        a.carry[idx] = dh * z;
    }
}

// Starts the chain at s = T-1: dh = dHS[T-1]. grid (ceil(B·H/256)), block 256.
#define WB_RNN_BWD_LAST(name, cell)                                                              \
    extern "C" __global__ void name(const float* dhs, RnnBwdArgs a, int B, int H) {             \
        const int t = blockIdx.x * blockDim.x + threadIdx.x;                                    \
        if (t >= B * H) return;                                                                 \
        rnn_gate_grads<cell>(a, t / H, t % H, H, dhs[t]);                                       \
    }
WB_RNN_BWD_LAST(rnn_bwd_last_vanilla, 0)
WB_RNN_BWD_LAST(rnn_bwd_last_lstm, 1)
WB_RNN_BWD_LAST(rnn_bwd_last_gru, 2)

// dh_s[b][j] = Σ_col dREC_{s+1}[b][col]·W[j][col] + dHS[s][b][j] + direct_{s+1}[b][j], then the
// gate gradients of step s (or, when dh0 != null, dh_s is written there: the s = -1 case).
// grid (ceil(H/16), ceil(B/32)), block 128. dhs / direct may be null.
template <int CELL>
__device__ __forceinline__ void rnn_bwd_step(const float* WB_RESTRICT drec_next, const float* WB_RESTRICT w,
                                             const float* dhs, const float* direct_next, float* dh0,
                                             const RnnBwdArgs& a, int B, int H) {
    constexpr int G = CELL == 0 ? 1 : (CELL == 1 ? 4 : 3);
    __shared__ float ds[RN_BK][RN_BB + 1];
    __shared__ __align__(16) float wt[RN_BK][RN_BJ + 4];
    const int tid = threadIdx.x, jg = tid & 3, bl = tid >> 2;
    const int j0 = blockIdx.x * RN_BJ, b0 = blockIdx.y * RN_BB;
    const int GH = G * H;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k0 = 0; k0 < GH; k0 += RN_BK) {
        // dREC tile [32 rows][32 cols] -> ds[col][b]
        for (int c = tid; c < RN_BB * RN_BK; c += RN_THREADS) {
            const int b = c / RN_BK, k = c % RN_BK;
            ds[k][b] = (b0 + b < B && k0 + k < GH) ? drec_next[(size_t)(b0 + b) * GH + k0 + k] : 0.0f;
        }
        // W rows j0..j0+15, cols k0..k0+31 -> wt[col][j]
        for (int c = tid; c < RN_BJ * RN_BK; c += RN_THREADS) {
            const int j = c / RN_BK, k = c % RN_BK;
            wt[k][j] = (j0 + j < H && k0 + k < GH) ? w[(size_t)(j0 + j) * GH + k0 + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < RN_BK; ++k) {
            const float d = ds[k][bl];
            const float4 wv = *reinterpret_cast<const float4*>(&wt[k][jg * 4]);
            acc[0] = fmaf(d, wv.x, acc[0]);
            acc[1] = fmaf(d, wv.y, acc[1]);
            acc[2] = fmaf(d, wv.z, acc[2]);
            acc[3] = fmaf(d, wv.w, acc[3]);
        }
        __syncthreads();
    }
    const int b = b0 + bl;
    if (b >= B) return;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const int j = j0 + jg * 4 + e;
        if (j >= H) continue;
        const size_t idx = (size_t)b * H + j;
        float dh = acc[e];
        if (dhs) dh += dhs[idx];
        if (direct_next) dh += direct_next[idx];
        if (dh0) dh0[idx] = dh;
        else rnn_gate_grads<CELL>(a, b, j, H, dh);
    }
}

#define WB_RNN_BWD(name, cell)                                                                   \
    extern "C" __global__ void __launch_bounds__(RN_THREADS)                                    \
        name(const float* drec_next, const float* w, const float* dhs, const float* direct_next,\
             float* dh0, RnnBwdArgs a, int B, int H) {                                          \
        rnn_bwd_step<cell>(drec_next, w, dhs, direct_next, dh0, a, B, H);                       \
    }
WB_RNN_BWD(rnn_bwd_vanilla, 0)
WB_RNN_BWD(rnn_bwd_lstm, 1)
WB_RNN_BWD(rnn_bwd_gru, 2)
