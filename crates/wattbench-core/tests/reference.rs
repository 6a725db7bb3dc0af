//! The f64 oracle against independent formulations of the same maths, on odd shapes with
//! seeded inputs: GEMM against its element formula, convolution against im2col + GEMM and
//! its element formula, the recurrences against a whole-matrix step written here. Each pair
//! shares no code path beyond the GEMM being checked first, so a wrong index in either shows.
//! (Backward passes are checked against finite differences in `reference`'s unit tests.)
use wattbench_core::reference::{conv2d, conv2d_at, gemm, gemm_at, rnn, RnnInputs};
use wattbench_core::tensor::{generate_inputs, HostTensor};
use wattbench_core::testing::shapes;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
use wattbench_core::{DType, Op, Params};

fn inputs(p: &Params, seed: u64) -> Vec<Vec<f64>> {
    generate_inputs(p, DType::F32, seed)
        .iter()
        .map(HostTensor::to_f64)
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn gemm_equals_its_element_formula() {
    for p in shapes(Op::Gemm) {
        let Params::Gemm(g) = p else { unreachable!() };
        let x = inputs(&p, 3);
        let c = gemm(&g, &x[0], &x[1]);
        let by_element: Vec<f64> = (0..g.m * g.n)
            .map(|f| gemm_at(&g, &x[0], &x[1], f / g.n, f % g.n))
            .collect();
        assert_close(&c, &by_element, &p.label());
    }
}

/// A 2x4 by 4x3 product worked by hand, in every storage layout: the element formula and the
/// GEMM share the transposed-index convention, so this pins it to the maths (with m, n and k
/// all different, a swapped dimension cannot pass).
#[test]
fn gemm_matches_a_product_worked_by_hand_in_every_layout() {
    let a = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]; // M x K
    let b = [
        [1.0, 0.0, 2.0],
        [0.0, 1.0, 3.0],
        [1.0, 1.0, 0.0],
        [2.0, 0.0, 1.0],
    ]; // K x N
    let want = [12.0, 5.0, 12.0, 28.0, 13.0, 36.0];
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let g = GemmParams::new(2, 3, 4).transposed(ta, tb);
        // A is stored [M,K], or [K,M] when transposed; B [K,N], or [N,K].
        let sa: Vec<f64> = if ta {
            (0..4).flat_map(|k| (0..2).map(move |m| a[m][k])).collect()
        } else {
            a.iter().flatten().copied().collect()
        };
        let sb: Vec<f64> = if tb {
            (0..3).flat_map(|n| (0..4).map(move |k| b[k][n])).collect()
        } else {
            b.iter().flatten().copied().collect()
        };
        assert_close(&gemm(&g, &sa, &sb), &want, &format!("ta {ta} tb {tb}"));
    }
}

/// im2col: `X` unfolded to `[N·P·Q, C·R·S]`, zero where the window leaves the input.
fn im2col(c: &ConvParams, x: &[f64]) -> Vec<f64> {
    let (pp, qq, crs) = (c.p(), c.q(), c.c * c.r * c.s);
    let mut cols = vec![0.0; c.n * pp * qq * crs];
    for n in 0..c.n {
        for p in 0..pp {
            for q in 0..qq {
                let row = (n * pp + p) * qq + q;
                for ch in 0..c.c {
                    for r in 0..c.r {
                        for s in 0..c.s {
                            let ih = (p * c.stride_h + r) as isize - c.pad_h as isize;
                            let iw = (q * c.stride_w + s) as isize - c.pad_w as isize;
                            if ih >= 0 && iw >= 0 && (ih as usize) < c.h && (iw as usize) < c.w {
                                cols[row * crs + (ch * c.r + r) * c.s + s] =
                                    x[((n * c.c + ch) * c.h + ih as usize) * c.w + iw as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    cols
}

#[test]
fn conv_equals_im2col_gemm_and_its_element_formula() {
    let mut all = shapes(Op::Conv2d);
    // A stride larger than the filter (windows skip inputs) and padding wider than it.
    all.push(Params::Conv2d(
        ConvParams::new(2, 2, 9, 7, 3, 2, 3)
            .padded(3, 0)
            .strided(3, 4),
    ));
    for p in all {
        let Params::Conv2d(c) = p else { unreachable!() };
        let x = inputs(&p, 4);
        let y = conv2d(&c, &x[0], &x[1]);
        // Y[npq, k] = cols[npq, crs] · Wᵀ[crs, k]; then NPQK → NKPQ.
        let (pp, qq, crs) = (c.p(), c.q(), c.c * c.r * c.s);
        let g = GemmParams::new(c.n * pp * qq, c.k, crs).transposed(false, true);
        let flat = gemm(&g, &im2col(&c, &x[0]), &x[1]);
        let mut nkpq = vec![0.0; flat.len()];
        for n in 0..c.n {
            for k in 0..c.k {
                for pq in 0..pp * qq {
                    nkpq[(n * c.k + k) * pp * qq + pq] = flat[(n * pp * qq + pq) * c.k + k];
                }
            }
        }
        assert_close(&y, &nkpq, &format!("{} (im2col)", p.label()));
        let by_element: Vec<f64> = (0..y.len())
            .map(|f| {
                let (q, rest) = (f % qq, f / qq);
                let (pi, rest) = (rest % pp, rest / pp);
                conv2d_at(&c, &x[0], &x[1], rest / c.k, rest % c.k, pi, q)
            })
            .collect();
        assert_close(&y, &by_element, &format!("{} (element)", p.label()));
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// One step over whole matrices: gates `[B, G·H]` from the reference GEMM, then the cell
/// equations as PyTorch documents them.
fn step(r: &RnnParams, x: &[f64], w: &[f64], b: &[f64], h: &[f64], c: &mut [f64]) -> Vec<f64> {
    let (hh, bb, g) = (r.hidden, r.batch, r.cell.gates());
    let gemm_p = GemmParams::new(bb, g * hh, hh);
    let rec = gemm(&gemm_p, h, w);
    let at = |v: &[f64], bi: usize, gate: usize, j: usize| v[bi * g * hh + gate * hh + j];
    let mut out = vec![0.0; bb * hh];
    for bi in 0..bb {
        for j in 0..hh {
            let xr = |q| at(x, bi, q, j);
            let rr = |q| at(&rec, bi, q, j) + b[q * hh + j];
            let idx = bi * hh + j;
            out[idx] = match r.cell {
                Cell::Vanilla => (xr(0) + rr(0)).tanh(),
                Cell::Lstm => {
                    let (i, f) = (sigmoid(xr(0) + rr(0)), sigmoid(xr(1) + rr(1)));
                    let (gg, o) = ((xr(2) + rr(2)).tanh(), sigmoid(xr(3) + rr(3)));
                    c[idx] = f * c[idx] + i * gg;
                    o * c[idx].tanh()
                }
                Cell::Gru => {
                    let (rg, z) = (sigmoid(xr(0) + rr(0)), sigmoid(xr(1) + rr(1)));
                    let n = (xr(2) + rg * rr(2)).tanh();
                    n + z * (h[idx] - n)
                }
            };
        }
    }
    out
}

#[test]
fn recurrences_equal_a_whole_matrix_step() {
    let mut all = shapes(Op::Rnn);
    all.push(Params::Rnn(RnnParams::new(Cell::Lstm, 9, 5, 7)));
    for p in all {
        let Params::Rnn(r) = p else { unreachable!() };
        let x = inputs(&p, 5);
        let c0 = (r.cell == Cell::Lstm).then(|| x[4].as_slice());
        let hs = rnn(&r, RnnInputs::of(r.cell, &x));
        let (bh, bgh) = (r.batch * r.hidden, r.batch * r.cell.gates() * r.hidden);
        let mut h = x[3].clone();
        let mut c = c0.map_or_else(|| vec![0.0; bh], <[f64]>::to_vec);
        let mut want = Vec::new();
        for t in 0..r.steps {
            h = step(&r, &x[0][t * bgh..(t + 1) * bgh], &x[1], &x[2], &h, &mut c);
            want.extend_from_slice(&h);
        }
        assert_close(&hs, &want, &p.label());
    }
}
