//! The f64 oracle: naive, obviously-correct implementations every backend is verified
//! against, plus the `reference` backend that times them.
//!
//! GEMM and conv can also be checked at a sample of positions of every output, training
//! gradients included ([`sample_case_outputs`]),
//! which keeps verification of very large cases affordable; recurrences are always computed
//! whole.
use crate::backend::{Backend, BackendError, DeviceInfo, Prepared};
use crate::tensor::HostTensor;
use crate::workload::{Case, Cell, ConvParams, DType, GemmParams, Mode, Params, RnnParams, SGD_LR};

/// `C[M,N] = op(A)·op(B)` in f64. Loop order i-p-j keeps the inner loop contiguous in B and C.
pub fn gemm(g: &GemmParams, a: &[f64], b: &[f64]) -> Vec<f64> {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut c = vec![0.0; m * n];
    // Materialise op(B) as [K,N] so the inner loop is contiguous.
    let bt: Vec<f64>;
    let b_kn: &[f64] = if g.trans_b {
        bt = (0..k * n).map(|idx| b[(idx % n) * k + idx / n]).collect();
        &bt
    } else {
        b
    };
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let av = if g.trans_a {
                a[p * m + i]
            } else {
                a[i * k + p]
            };
            let brow = &b_kn[p * n..(p + 1) * n];
            for (cv, &bv) in row.iter_mut().zip(brow) {
                *cv += av * bv;
            }
        }
    }
    c
}

/// One element `C[i,j]`.
pub fn gemm_at(g: &GemmParams, a: &[f64], b: &[f64], i: usize, j: usize) -> f64 {
    (0..g.k)
        .map(|p| {
            let av = if g.trans_a {
                a[p * g.m + i]
            } else {
                a[i * g.k + p]
            };
            let bv = if g.trans_b {
                b[j * g.k + p]
            } else {
                b[p * g.n + j]
            };
            av * bv
        })
        .sum()
}

/// Every filter tap of output position `(p, q)` that lands inside the input (padding taps
/// read zeros and are skipped): `f(ch, r, s, ih, iw)`.
fn taps(c: &ConvParams, p: usize, q: usize, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
    for ch in 0..c.c {
        for r in 0..c.r {
            let ih = (p * c.stride_h + r) as isize - c.pad_h as isize;
            if ih < 0 || ih >= c.h as isize {
                continue;
            }
            for s in 0..c.s {
                let iw = (q * c.stride_w + s) as isize - c.pad_w as isize;
                if iw >= 0 && iw < c.w as isize {
                    f(ch, r, s, ih as usize, iw as usize);
                }
            }
        }
    }
}

/// One output element `Y[n,k,p,q]` of a conv.
pub fn conv2d_at(
    c: &ConvParams,
    x: &[f64],
    w: &[f64],
    n: usize,
    k: usize,
    p: usize,
    q: usize,
) -> f64 {
    let mut acc = 0.0;
    taps(c, p, q, |ch, r, s, ih, iw| {
        acc += x[((n * c.c + ch) * c.h + ih) * c.w + iw] * w[((k * c.c + ch) * c.r + r) * c.s + s];
    });
    acc
}

/// Direct conv2d in f64, NCHW / KCRS, dilation 1.
pub fn conv2d(c: &ConvParams, x: &[f64], w: &[f64]) -> Vec<f64> {
    let (pp, qq) = (c.p(), c.q());
    let mut y = vec![0.0; c.n * c.k * pp * qq];
    for n in 0..c.n {
        for k in 0..c.k {
            let out = &mut y[(n * c.k + k) * pp * qq..(n * c.k + k + 1) * pp * qq];
            for ch in 0..c.c {
                let plane = &x[(n * c.c + ch) * c.h * c.w..(n * c.c + ch + 1) * c.h * c.w];
                for r in 0..c.r {
                    for s in 0..c.s {
                        let wv = w[((k * c.c + ch) * c.r + r) * c.s + s];
                        for p in 0..pp {
                            let ih = (p * c.stride_h + r) as isize - c.pad_h as isize;
                            if ih < 0 || ih >= c.h as isize {
                                continue;
                            }
                            let xrow = &plane[ih as usize * c.w..(ih as usize + 1) * c.w];
                            let orow = &mut out[p * qq..(p + 1) * qq];
                            for (q, o) in orow.iter_mut().enumerate() {
                                let iw = (q * c.stride_w + s) as isize - c.pad_w as isize;
                                if iw >= 0 && iw < c.w as isize {
                                    *o += wv * xrow[iw as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// One hidden unit of one cell step: `x[q]` and `rec[q]` are gate `q`'s pre-activations from
/// the input (`xp`) and from the recurrence (`h·W + b`), `h` and `c` the unit's previous
/// states. Returns the activated gates, the new hidden state and the new cell state (LSTM;
/// `c` unchanged otherwise). Gate order: LSTM (i, f, g, o), GRU (r, z, n) with the `n` bias
/// inside the reset product, as PyTorch. The one f64 cell every reference path uses.
pub fn cell_unit(cell: Cell, x: [f64; 4], rec: [f64; 4], h: f64, c: f64) -> ([f64; 4], f64, f64) {
    match cell {
        Cell::Vanilla => {
            let a = (x[0] + rec[0]).tanh();
            ([a, 0.0, 0.0, 0.0], a, c)
        }
        Cell::Lstm => {
            let i = sigmoid(x[0] + rec[0]);
            let f = sigmoid(x[1] + rec[1]);
            let g = (x[2] + rec[2]).tanh();
            let o = sigmoid(x[3] + rec[3]);
            let c_new = f * c + i * g;
            ([i, f, g, o], o * c_new.tanh(), c_new)
        }
        Cell::Gru => {
            let r = sigmoid(x[0] + rec[0]);
            let z = sigmoid(x[1] + rec[1]);
            let n = (x[2] + r * rec[2]).tanh();
            ([r, z, n, 0.0], (1.0 - z) * n + z * h, c)
        }
    }
}

/// The inputs of an RNN case, in f64: projected inputs `xp[T,B,G·H]`, recurrent weights
/// `w[H,G·H]`, bias `b[G·H]`, initial states `h0[B,H]` and (LSTM) `c0[B,H]`.
#[derive(Clone, Copy, Debug)]
pub struct RnnInputs<'a> {
    /// Projected inputs.
    pub xp: &'a [f64],
    /// Recurrent weights.
    pub w: &'a [f64],
    /// Bias.
    pub b: &'a [f64],
    /// Initial hidden state.
    pub h0: &'a [f64],
    /// Initial cell state (LSTM only).
    pub c0: Option<&'a [f64]>,
}

impl<'a> RnnInputs<'a> {
    /// The case's inputs in workload order (`xp, w, b, h0[, c0]`; a trailing `dy` is not read).
    pub fn of(cell: Cell, inputs: &'a [Vec<f64>]) -> Self {
        RnnInputs {
            xp: &inputs[0],
            w: &inputs[1],
            b: &inputs[2],
            h0: &inputs[3],
            c0: (cell == Cell::Lstm).then(|| inputs[4].as_slice()),
        }
    }
}

/// What an RNN forward pass keeps for backward (empty unless asked for).
#[derive(Default)]
struct RnnTape {
    /// `h_{t-1}` per step.
    h_prev: Vec<Vec<f64>>,
    /// Activated gates per step, `[B, G·H]`.
    acts: Vec<Vec<f64>>,
    /// `h·W + b` per step, `[B, G·H]`.
    recs: Vec<Vec<f64>>,
    /// Cell states `c_0..c_T` (LSTM).
    cs: Vec<Vec<f64>>,
}

/// `T` steps of the cell; every hidden state `HS[T,B,H]`, and the tape when `keep`.
fn rnn_forward(r: &RnnParams, x: RnnInputs<'_>, keep: bool) -> (Vec<f64>, RnnTape) {
    let RnnInputs { xp, w, b, h0, c0 } = x;
    let (hh, bb, g) = (r.hidden, r.batch, r.cell.gates());
    let gh = g * hh;
    let mut h = h0.to_vec();
    let mut c = c0
        .map(<[f64]>::to_vec)
        .unwrap_or_else(|| vec![0.0; bb * hh]);
    let mut hs = Vec::with_capacity(r.steps * bb * hh);
    let mut tape = RnnTape::default();
    if keep {
        tape.cs.push(c.clone());
    }
    for t in 0..r.steps {
        // rec = h·W + b
        let mut rec = matmul(&h, w, bb, hh, gh);
        for row in rec.chunks_mut(gh) {
            for (o, &bv) in row.iter_mut().zip(b) {
                *o += bv;
            }
        }
        let x = &xp[t * bb * gh..(t + 1) * bb * gh];
        let mut act = vec![0.0; bb * gh];
        let mut h_new = vec![0.0; bb * hh];
        for bi in 0..bb {
            for j in 0..hh {
                let gate = |v: &[f64]| {
                    let mut a = [0.0; 4];
                    for (q, slot) in a.iter_mut().enumerate().take(g) {
                        *slot = v[bi * gh + q * hh + j];
                    }
                    a
                };
                let idx = bi * hh + j;
                let (a, hv, cv) = cell_unit(r.cell, gate(x), gate(&rec), h[idx], c[idx]);
                for (q, &v) in a.iter().enumerate().take(g) {
                    act[bi * gh + q * hh + j] = v;
                }
                h_new[idx] = hv;
                c[idx] = cv;
            }
        }
        let h_prev = std::mem::replace(&mut h, h_new);
        hs.extend_from_slice(&h);
        if keep {
            tape.h_prev.push(h_prev);
            tape.acts.push(act);
            tape.recs.push(rec);
            tape.cs.push(c.clone());
        }
    }
    (hs, tape)
}

/// Run `T` steps of the cell in f64 and return every hidden state `HS[T,B,H]`.
pub fn rnn(r: &RnnParams, x: RnnInputs<'_>) -> Vec<f64> {
    rnn_forward(r, x, false).0
}

/// The forward outputs of `params` on `inputs`, in f64.
pub fn forward(params: &Params, inputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    match params {
        Params::Gemm(g) => vec![gemm(g, &inputs[0], &inputs[1])],
        Params::Conv2d(c) => vec![conv2d(c, &inputs[0], &inputs[1])],
        Params::Rnn(r) => vec![rnn(r, RnnInputs::of(r.cell, inputs))],
    }
}

/// Plain row-major transpose of an `[r, c]` matrix.
fn transpose(m: &[f64], r: usize, c: usize) -> Vec<f64> {
    (0..r * c).map(|idx| m[(idx % r) * c + idx / r]).collect()
}

/// `X[r,k] · Y[k,c]` for plain row-major matrices.
fn matmul(x: &[f64], y: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
    gemm(
        &GemmParams {
            m: r,
            n: c,
            k,
            trans_a: false,
            trans_b: false,
        },
        x,
        y,
    )
}

/// GEMM gradients `(dA, dB)` in the stored layouts of A and B, given `dC`.
pub fn gemm_backward(g: &GemmParams, a: &[f64], b: &[f64], dc: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (m, n, k) = (g.m, g.n, g.k);
    let a_mk = if g.trans_a {
        transpose(a, k, m)
    } else {
        a.to_vec()
    };
    let b_kn = if g.trans_b {
        transpose(b, n, k)
    } else {
        b.to_vec()
    };
    let da_mk = matmul(dc, &transpose(&b_kn, k, n), m, n, k);
    let db_kn = matmul(&transpose(&a_mk, m, k), dc, k, m, n);
    let da = if g.trans_a {
        transpose(&da_mk, m, k)
    } else {
        da_mk
    };
    let db = if g.trans_b {
        transpose(&db_kn, k, n)
    } else {
        db_kn
    };
    (da, db)
}

/// Conv2d gradients `(dx, dw)` (backward-data and backward-filter), given `dy`.
pub fn conv2d_backward(c: &ConvParams, x: &[f64], w: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (pp, qq) = (c.p(), c.q());
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for n in 0..c.n {
        for k in 0..c.k {
            for p in 0..pp {
                for q in 0..qq {
                    let g = dy[((n * c.k + k) * pp + p) * qq + q];
                    taps(c, p, q, |ch, r, s, ih, iw| {
                        let xi = ((n * c.c + ch) * c.h + ih) * c.w + iw;
                        let wi = ((k * c.c + ch) * c.r + r) * c.s + s;
                        dx[xi] += w[wi] * g;
                        dw[wi] += x[xi] * g;
                    });
                }
            }
        }
    }
    (dx, dw)
}

/// RNN backpropagation through time: `(HS, dXP, dW, db)` given the upstream gradient `dHS`
/// of every hidden state. The initial state is a constant.
pub fn rnn_backward(
    r: &RnnParams,
    x: RnnInputs<'_>,
    dhs: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let RnnInputs { xp, w, b, .. } = x;
    let (hh, bb, g) = (r.hidden, r.batch, r.cell.gates());
    let gh = g * hh;
    let bh = bb * hh;
    let (hs, tape) = rnn_forward(r, x, true);
    let RnnTape {
        h_prev: h_prev_all,
        acts,
        recs,
        cs,
    } = tape;

    let mut dxp = vec![0.0; xp.len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; b.len()];
    let mut dh_next = vec![0.0; bh];
    let mut dc_next = vec![0.0; bh];
    for t in (0..r.steps).rev() {
        let act = &acts[t];
        let rec = &recs[t];
        let h_prev = &h_prev_all[t];
        let mut drec = vec![0.0; bb * gh]; // gradient w.r.t. h·W + b
        let mut dh_direct = vec![0.0; bh]; // GRU's z·h path
        for bi in 0..bb {
            for j in 0..hh {
                let idx = bi * hh + j;
                let dh = dhs[t * bh + idx] + dh_next[idx];
                let a = |q: usize| act[bi * gh + q * hh + j];
                let dx = &mut dxp[t * bb * gh + bi * gh..t * bb * gh + (bi + 1) * gh];
                match r.cell {
                    Cell::Vanilla => {
                        let da = dh * (1.0 - a(0) * a(0));
                        dx[j] = da;
                        drec[bi * gh + j] = da;
                    }
                    Cell::Lstm => {
                        let (i, f, gg, o) = (a(0), a(1), a(2), a(3));
                        let tc = cs[t + 1][idx].tanh();
                        let dc = dc_next[idx] + dh * o * (1.0 - tc * tc);
                        let das = [
                            dc * gg * i * (1.0 - i),
                            dc * cs[t][idx] * f * (1.0 - f),
                            dc * i * (1.0 - gg * gg),
                            dh * tc * o * (1.0 - o),
                        ];
                        for (q, d) in das.into_iter().enumerate() {
                            dx[q * hh + j] = d;
                            drec[bi * gh + q * hh + j] = d;
                        }
                        dc_next[idx] = dc * f;
                    }
                    Cell::Gru => {
                        let (rg, z, n) = (a(0), a(1), a(2));
                        let dn = dh * (1.0 - z);
                        let dz = dh * (h_prev[idx] - n);
                        dh_direct[idx] = dh * z;
                        let dan = dn * (1.0 - n * n);
                        let dr = dan * rec[bi * gh + 2 * hh + j];
                        let dar = dr * rg * (1.0 - rg);
                        let daz = dz * z * (1.0 - z);
                        dx[j] = dar;
                        dx[hh + j] = daz;
                        dx[2 * hh + j] = dan;
                        drec[bi * gh + j] = dar;
                        drec[bi * gh + hh + j] = daz;
                        drec[bi * gh + 2 * hh + j] = dan * rg;
                    }
                }
            }
        }
        // dW += h_prevᵀ · drec; db += Σ_batch drec; dh_next = drec · Wᵀ (+ direct path).
        let dw_t = matmul(&transpose(h_prev, bb, hh), &drec, hh, bb, gh);
        for (o, v) in dw.iter_mut().zip(dw_t) {
            *o += v;
        }
        for row in drec.chunks(gh) {
            for (o, v) in db.iter_mut().zip(row) {
                *o += v;
            }
        }
        dh_next = matmul(&drec, &transpose(w, hh, gh), bb, gh, hh);
        for (o, v) in dh_next.iter_mut().zip(&dh_direct) {
            *o += v;
        }
    }
    (hs, dxp, dw, db)
}

/// One training step in f64: `[y, grads of grad_inputs…, updated weights…]` (see
/// [`Case::output_specs`](crate::workload::Case::output_specs)). `inputs` ends with `dy`.
pub fn train_step(params: &Params, inputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let sgd = |w: &[f64], g: &[f64]| -> Vec<f64> {
        w.iter().zip(g).map(|(w, g)| w - SGD_LR * g).collect()
    };
    match params {
        Params::Gemm(g) => {
            let y = gemm(g, &inputs[0], &inputs[1]);
            let (da, db) = gemm_backward(g, &inputs[0], &inputs[1], &inputs[2]);
            let b_new = sgd(&inputs[1], &db);
            vec![y, da, db, b_new]
        }
        Params::Conv2d(c) => {
            let y = conv2d(c, &inputs[0], &inputs[1]);
            let (dx, dw) = conv2d_backward(c, &inputs[0], &inputs[1], &inputs[2]);
            let w_new = sgd(&inputs[1], &dw);
            vec![y, dx, dw, w_new]
        }
        Params::Rnn(r) => {
            let dhs = inputs.last().expect("dy");
            let (hs, dxp, dw, db) = rnn_backward(r, RnnInputs::of(r.cell, inputs), dhs);
            let (w_new, b_new) = (sgd(&inputs[1], &dw), sgd(&inputs[2], &db));
            vec![hs, dxp, dw, db, w_new, b_new]
        }
    }
}

/// Every output of `case` in f64: the forward output, or a whole training step.
pub fn run(case: &Case, inputs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    match case.mode {
        Mode::Infer => forward(&case.params, inputs),
        Mode::Train => train_step(&case.params, inputs),
    }
}

/// Up to `count` distinct flat positions of a row-major tensor of `shape` (deterministic,
/// seeded); all of them when `count` covers it. Not only uniform draws: every corner, and a
/// quarter of the budget on the first and last index of every axis (the last row and column
/// of a GEMM, the padded border of a conv output, the last batch and channel), where the
/// remainder tiles and bounds checks of real kernels go wrong; a uniform sample of a few
/// thousand values misses a wrong last column of a large output about half the time.
fn positions(shape: &[usize], count: usize, seed: u64) -> Vec<usize> {
    use rand::{Rng, SeedableRng};
    let total: usize = shape.iter().product();
    if count >= total {
        return (0..total).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5a5a);
    let flat = |coords: &[usize]| coords.iter().zip(shape).fold(0, |f, (&c, &d)| f * d + c);
    let mut idx: Vec<usize> = Vec::with_capacity(count);
    // Corners: each axis at its first or last index.
    let rank = shape.len();
    for bits in 0..1usize << rank.min(16) {
        let c: Vec<usize> = (0..rank)
            .map(|a| if bits >> a & 1 == 1 { shape[a] - 1 } else { 0 })
            .collect();
        idx.push(flat(&c));
    }
    idx.sort_unstable();
    idx.dedup();
    idx.truncate(count);
    // Faces: one axis pinned to its first or last index, the others drawn.
    let axes: Vec<usize> = (0..rank).filter(|&a| shape[a] > 1).collect();
    let per_face = count / 4 / (2 * axes.len()).max(1);
    for &a in &axes {
        for end in [0, shape[a] - 1] {
            for _ in 0..per_face {
                let c: Vec<usize> = (0..rank)
                    .map(|b| {
                        if b == a {
                            end
                        } else {
                            rng.random_range(0..shape[b])
                        }
                    })
                    .collect();
                idx.push(flat(&c));
            }
        }
    }
    // The rest uniform over the whole tensor.
    while idx.len() < count {
        idx.push(rng.random_range(0..total));
    }
    idx.sort_unstable();
    idx.dedup();
    idx
}

/// Reference values of every output of `case` at up to `count` seeded positions each:
/// `(flat indices, values)` per output, in [`Case::output_specs`] order (training: `y`,
/// then the gradients, then the updated weights). Each value costs one dot product, so
/// cases far too large to compute whole are still checked all over. `None` for recurrences,
/// which must be computed whole.
pub fn sample_case_outputs(
    case: &Case,
    inputs: &[Vec<f64>],
    count: usize,
    seed: u64,
) -> Option<Vec<(Vec<usize>, Vec<f64>)>> {
    let specs = case.output_specs();
    let sample = |k: usize, f: &dyn Fn(usize) -> f64| {
        let idx = positions(&specs[k].shape, count, seed.wrapping_add(k as u64));
        let vals = idx.iter().map(|&i| f(i)).collect();
        (idx, vals)
    };
    let train = case.mode == Mode::Train;
    match case.params {
        Params::Gemm(g) => {
            let (a, b) = (&inputs[0], &inputs[1]);
            let y = |f: usize| gemm_at(&g, a, b, f / g.n, f % g.n);
            if !train {
                return Some(vec![sample(0, &y)]);
            }
            let dc = &inputs[2];
            let op_a = |i: usize, p: usize| {
                if g.trans_a {
                    a[p * g.m + i]
                } else {
                    a[i * g.k + p]
                }
            };
            let op_b = |p: usize, j: usize| {
                if g.trans_b {
                    b[j * g.k + p]
                } else {
                    b[p * g.n + j]
                }
            };
            // dA[i,p] = Σ_j dC[i,j]·op(B)[p,j], in A's stored layout.
            let da = |f: usize| {
                let (i, p) = if g.trans_a {
                    (f % g.m, f / g.m)
                } else {
                    (f / g.k, f % g.k)
                };
                (0..g.n).map(|j| dc[i * g.n + j] * op_b(p, j)).sum::<f64>()
            };
            // dB[p,j] = Σ_i op(A)[i,p]·dC[i,j], in B's stored layout.
            let db = |f: usize| {
                let (p, j) = if g.trans_b {
                    (f % g.k, f / g.k)
                } else {
                    (f / g.n, f % g.n)
                };
                (0..g.m).map(|i| op_a(i, p) * dc[i * g.n + j]).sum::<f64>()
            };
            let b_new = |f: usize| b[f] - SGD_LR * db(f);
            Some(vec![
                sample(0, &y),
                sample(1, &da),
                sample(2, &db),
                sample(3, &b_new),
            ])
        }
        Params::Conv2d(c) => {
            let (x, w) = (&inputs[0], &inputs[1]);
            let (pp, qq) = (c.p(), c.q());
            let y = |f: usize| {
                let (q, rest) = (f % qq, f / qq);
                let (p, rest) = (rest % pp, rest / pp);
                conv2d_at(&c, x, w, rest / c.k, rest % c.k, p, q)
            };
            if !train {
                return Some(vec![sample(0, &y)]);
            }
            let dy = &inputs[2];
            // dX[n,ch,h,w] = Σ over the outputs whose window covers (h, w) of W·dY.
            let dx = |f: usize| {
                let (iw, rest) = (f % c.w, f / c.w);
                let (ih, rest) = (rest % c.h, rest / c.h);
                let (ch, n) = (rest % c.c, rest / c.c);
                let mut acc = 0.0;
                for r in 0..c.r {
                    let ph = ih + c.pad_h;
                    if ph < r || (ph - r) % c.stride_h != 0 || (ph - r) / c.stride_h >= pp {
                        continue;
                    }
                    let p = (ph - r) / c.stride_h;
                    for s in 0..c.s {
                        let qw = iw + c.pad_w;
                        if qw < s || (qw - s) % c.stride_w != 0 || (qw - s) / c.stride_w >= qq {
                            continue;
                        }
                        let q = (qw - s) / c.stride_w;
                        for k in 0..c.k {
                            acc += w[((k * c.c + ch) * c.r + r) * c.s + s]
                                * dy[((n * c.k + k) * pp + p) * qq + q];
                        }
                    }
                }
                acc
            };
            // dW[k,ch,r,s] = Σ_{n,p,q} X[n,ch,p·sh+r−ph,q·sw+s−pw]·dY[n,k,p,q].
            let dw = |f: usize| {
                let (s, rest) = (f % c.s, f / c.s);
                let (r, rest) = (rest % c.r, rest / c.r);
                let (ch, k) = (rest % c.c, rest / c.c);
                let mut acc = 0.0;
                for n in 0..c.n {
                    for p in 0..pp {
                        let ih = (p * c.stride_h + r) as isize - c.pad_h as isize;
                        if ih < 0 || ih >= c.h as isize {
                            continue;
                        }
                        for q in 0..qq {
                            let iw = (q * c.stride_w + s) as isize - c.pad_w as isize;
                            if iw >= 0 && iw < c.w as isize {
                                acc += x[((n * c.c + ch) * c.h + ih as usize) * c.w + iw as usize]
                                    * dy[((n * c.k + k) * pp + p) * qq + q];
                            }
                        }
                    }
                }
                acc
            };
            let w_new = |f: usize| w[f] - SGD_LR * dw(f);
            Some(vec![
                sample(0, &y),
                sample(1, &dx),
                sample(2, &dw),
                sample(3, &w_new),
            ])
        }
        Params::Rnn(_) => None,
    }
}

/// The naive f64 implementation as a timed backend (CPU only, f32 cases only: it is the
/// oracle for every dtype, but timing it once per shape is enough).
#[derive(Default)]
pub struct ReferenceBackend;

struct RefPrepared {
    case: Case,
    inputs: Vec<Vec<f64>>,
    out: Vec<Vec<f64>>,
}

impl Backend for ReferenceBackend {
    fn name(&self) -> &'static str {
        "reference"
    }
    fn devices(&self) -> Vec<DeviceInfo> {
        vec![DeviceInfo::available("cpu")]
    }
    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        if device != "cpu" {
            return Err(format!("reference runs on the cpu only, not {device}"));
        }
        if case.dtype != DType::F32 {
            return Err(
                "the f64 reference is timed on f32 cases only (it verifies every dtype)".into(),
            );
        }
        Ok(())
    }
    fn prepare(
        &self,
        case: &Case,
        _device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        Ok(Box::new(RefPrepared {
            case: case.clone(),
            inputs: inputs.iter().map(HostTensor::to_f64).collect(),
            out: Vec::new(),
        }))
    }
}

impl Prepared for RefPrepared {
    fn execute(&mut self) -> Result<(), BackendError> {
        self.out = run(&self.case, &self.inputs);
        if self.case.mode == Mode::Train {
            // The step updates the weights it will use next time, as training does.
            let n_grads = self.case.params.grad_inputs().len();
            for (j, &wi) in self.case.params.weight_inputs().iter().enumerate() {
                self.inputs[wi].clone_from(&self.out[1 + n_grads + j]);
            }
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        Ok(self
            .out
            .iter()
            .map(|o| o.iter().map(|&v| v as f32).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_hand_example_with_transposes() {
        // A = [[1,2],[3,4]], B = [[5,6],[7,8]] -> C = [[19,22],[43,50]].
        let g = GemmParams::new(2, 2, 2);
        assert_eq!(
            gemm(&g, &[1., 2., 3., 4.], &[5., 6., 7., 8.]),
            vec![19., 22., 43., 50.]
        );
        let gt = GemmParams {
            trans_a: true,
            trans_b: true,
            ..g
        };
        // Stored transposed: A^T = [[1,3],[2,4]], B^T = [[5,7],[6,8]].
        assert_eq!(
            gemm(&gt, &[1., 3., 2., 4.], &[5., 7., 6., 8.]),
            vec![19., 22., 43., 50.]
        );
        assert_eq!(
            gemm_at(&gt, &[1., 3., 2., 4.], &[5., 7., 6., 8.], 1, 0),
            43.
        );
    }

    #[test]
    fn conv_matches_hand_example_and_sampling() {
        // 1x1x3x3 input 1..9, one 2x2 filter of ones, pad 0, stride 1 -> sums of 2x2 windows.
        let c = ConvParams::new(1, 1, 3, 3, 1, 2, 2);
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(conv2d(&c, &x, &[1.; 4]), vec![12., 16., 24., 28.]);
        // Padding 1, stride 2: output 2x2 of windows centred on corners.
        let cp = ConvParams {
            pad_h: 1,
            pad_w: 1,
            stride_h: 2,
            stride_w: 2,
            ..c
        };
        assert_eq!(conv2d(&cp, &x, &[1.; 4]), vec![1., 5., 11., 28.]);
        let case = Case {
            params: Params::Conv2d(cp),
            mode: Mode::Infer,
            dtype: DType::F32,
            tag: None,
        };
        let s = sample_case_outputs(&case, &[x.clone(), vec![1.; 4]], 4, 1).unwrap();
        for (i, v) in s[0].0.iter().zip(&s[0].1) {
            assert_eq!(*v, [1., 5., 11., 28.][*i]);
        }
    }

    #[test]
    fn rnn_cells_match_hand_computation() {
        // H=1, B=1, T=2, W=0.5, b=0 (per gate), h0=0.2.
        let r = RnnParams::new(Cell::Vanilla, 1, 1, 2);
        let x = |xp, w, b, h0, c0| RnnInputs { xp, w, b, h0, c0 };
        let hs = rnn(&r, x(&[0.1, -0.3], &[0.5], &[0.0], &[0.2], None));
        let h1 = (0.1f64 + 0.5 * 0.2).tanh();
        let h2 = (-0.3 + 0.5 * h1).tanh();
        assert!((hs[0] - h1).abs() < 1e-15 && (hs[1] - h2).abs() < 1e-15);

        let l = RnnParams::new(Cell::Lstm, 1, 1, 1);
        let hs = rnn(
            &l,
            x(
                &[0.1, 0.2, 0.3, 0.4],
                &[0.5, -0.5, 0.25, 1.0],
                &[0.0; 4],
                &[0.2],
                Some(&[0.7]),
            ),
        );
        let g = |x: f64, w: f64| x + w * 0.2;
        let c1 = sigmoid(g(0.2, -0.5)) * 0.7 + sigmoid(g(0.1, 0.5)) * g(0.3, 0.25).tanh();
        assert!((hs[0] - sigmoid(g(0.4, 1.0)) * c1.tanh()).abs() < 1e-15);

        let gr = RnnParams::new(Cell::Gru, 1, 1, 1);
        let hs = rnn(
            &gr,
            x(
                &[0.1, 0.2, 0.3],
                &[0.5, -0.5, 2.0],
                &[0.0, 0.0, 0.1],
                &[0.2],
                None,
            ),
        );
        let rg = sigmoid(0.1 + 0.1);
        let z = sigmoid(0.2 - 0.1);
        let n = (0.3 + rg * (0.4 + 0.1)).tanh();
        assert!((hs[0] - ((1.0 - z) * n + z * 0.2)).abs() < 1e-15);
    }

    /// `L(θ) = Σ y ⊙ dy`; every gradient the training step returns must match central finite
    /// differences of L at a spread of coordinates.
    fn check_gradients(case: &Case) {
        use crate::tensor::generate_case_inputs;
        let inputs: Vec<Vec<f64>> = generate_case_inputs(case, 11)
            .iter()
            .map(HostTensor::to_f64)
            .collect();
        let dy = inputs.last().unwrap().clone();
        let loss = |ins: &[Vec<f64>]| -> f64 {
            forward(&case.params, ins)[0]
                .iter()
                .zip(&dy)
                .map(|(y, g)| y * g)
                .sum()
        };
        let out = train_step(&case.params, &inputs);
        // The forward output of the step is the plain forward.
        let plain = &forward(&case.params, &inputs)[0];
        assert!(
            out[0].iter().zip(plain).all(|(a, b)| (a - b).abs() < 1e-12),
            "{case}: forward differs"
        );
        let eps = 1e-6;
        for (gi, &input) in case.params.grad_inputs().iter().enumerate() {
            let grad = &out[1 + gi];
            assert_eq!(grad.len(), inputs[input].len());
            let n = grad.len();
            for j in (0..n).step_by((n / 7).max(1)).chain([n - 1]) {
                let mut plus = inputs.clone();
                plus[input][j] += eps;
                let mut minus = inputs.clone();
                minus[input][j] -= eps;
                let fd = (loss(&plus) - loss(&minus)) / (2.0 * eps);
                assert!(
                    (fd - grad[j]).abs() <= 1e-6 * (1.0 + fd.abs()),
                    "{case}: d{} input {input}[{j}]: analytic {} vs finite difference {fd}",
                    gi,
                    grad[j]
                );
            }
        }
        // Updated weights are w − lr·dw.
        let n_grads = case.params.grad_inputs().len();
        for (k, &wi) in case.params.weight_inputs().iter().enumerate() {
            let gpos = case
                .params
                .grad_inputs()
                .iter()
                .position(|&g| g == wi)
                .unwrap();
            for ((new, old), g) in out[1 + n_grads + k]
                .iter()
                .zip(&inputs[wi])
                .zip(&out[1 + gpos])
            {
                assert!((new - (old - SGD_LR * g)).abs() < 1e-15);
            }
        }
    }

    /// Every sampled value of every training output equals the full step's value there, for
    /// every transpose, padding and stride.
    #[test]
    fn sampled_training_outputs_equal_the_full_step() {
        use crate::tensor::generate_case_inputs;
        let train = |params| Case {
            params,
            mode: Mode::Train,
            dtype: DType::F32,
            tag: None,
        };
        let mut cases: Vec<Case> = [(false, false), (true, false), (false, true), (true, true)]
            .map(|(ta, tb)| train(Params::Gemm(GemmParams::new(5, 7, 3).transposed(ta, tb))))
            .to_vec();
        cases.push(train(Params::Conv2d(
            ConvParams::new(2, 3, 9, 8, 4, 3, 2)
                .padded(2, 1)
                .strided(2, 3),
        )));
        cases.push(train(Params::Conv2d(ConvParams::new(1, 2, 5, 5, 3, 1, 1))));
        for case in cases {
            let inputs: Vec<Vec<f64>> = generate_case_inputs(&case, 3)
                .iter()
                .map(HostTensor::to_f64)
                .collect();
            let full = train_step(&case.params, &inputs);
            let sampled = sample_case_outputs(&case, &inputs, 1000, 9).unwrap();
            assert_eq!(sampled.len(), full.len());
            for (o, ((idx, vals), want)) in sampled.iter().zip(&full).enumerate() {
                assert_eq!(
                    idx.len(),
                    want.len(),
                    "{case} output {o}: every position drawn"
                );
                for (&i, v) in idx.iter().zip(vals) {
                    assert!(
                        (v - want[i]).abs() < 1e-12,
                        "{case} output {o}[{i}]: {v} vs {}",
                        want[i]
                    );
                }
            }
        }
        assert!(sample_case_outputs(
            &train(Params::Rnn(RnnParams::new(Cell::Gru, 2, 1, 2))),
            &[],
            4,
            1
        )
        .is_none());
    }

    /// A bug confined to one edge line of a large output (a bounds check off by one that
    /// drops the last column, a remainder row left unwritten) fails sampled verification on
    /// every seed, not on about half of them as with uniform positions alone.
    #[test]
    fn sampled_verification_always_checks_the_edges() {
        use crate::harness::{CaseInputs, HarnessConfig};
        use crate::tensor::generate_case_inputs;
        let gemm = Params::Gemm(GemmParams::new(211, 307, 8).transposed(false, true));
        let conv = Params::Conv2d(ConvParams::new(2, 3, 30, 200, 8, 3, 3).padded(1, 1));
        for params in [gemm, conv] {
            let case = Case {
                params,
                mode: Mode::Infer,
                dtype: DType::F32,
                tag: None,
            };
            let shape = case.output_specs()[0].shape.clone();
            let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
            for seed in 0..12 {
                let cfg = HarnessConfig {
                    seed,
                    full_verify_max_flops: 0,
                    verify_samples: 256,
                    ..Default::default()
                };
                let inp = CaseInputs::new(case.clone(), &cfg);
                let x: Vec<Vec<f64>> = generate_case_inputs(&case, seed)
                    .iter()
                    .map(HostTensor::to_f64)
                    .collect();
                let good: Vec<f32> = run(&case, &x)[0].iter().map(|&v| v as f32).collect();
                let v = inp.verify(std::slice::from_ref(&good), None);
                assert!(v.passed && v.checked_values <= 256, "{case}: {v:?}");
                for (edge, name) in ["last column", "first column", "last row", "first row"]
                    .into_iter()
                    .enumerate()
                {
                    let on_edge = |f: usize| match edge {
                        0 => f % cols == cols - 1,
                        1 => f.is_multiple_of(cols),
                        2 => f / cols % rows == rows - 1,
                        _ => (f / cols).is_multiple_of(rows),
                    };
                    let bad: Vec<f32> = (good.iter().enumerate())
                        .map(|(f, &v)| if on_edge(f) { 0.0 } else { v })
                        .collect();
                    let v = inp.verify(&[bad], None);
                    assert!(!v.passed, "{case} seed {seed}: a zero {name} passed: {v:?}");
                }
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let train = |params| Case {
            params,
            mode: Mode::Train,
            dtype: DType::F32,
            tag: None,
        };
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            check_gradients(&train(Params::Gemm(
                GemmParams::new(4, 3, 5).transposed(ta, tb),
            )));
        }
        check_gradients(&train(Params::Conv2d(
            ConvParams::new(2, 2, 6, 5, 3, 3, 2)
                .padded(1, 0)
                .strided(2, 1),
        )));
        for cell in [Cell::Vanilla, Cell::Lstm, Cell::Gru] {
            check_gradients(&train(Params::Rnn(RnnParams {
                cell,
                hidden: 3,
                batch: 2,
                steps: 4,
            })));
        }
    }
}
