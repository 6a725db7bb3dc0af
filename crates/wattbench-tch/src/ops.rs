//! The workloads written with libtorch tensor ops through tch, as a PyTorch user would write
//! them: one function per op, and one RNN cell step shared by the kernel cases and the LSTM
//! model.
use tch::{Result, Tensor};
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};

/// One cell step over a batch: `x` and `rec` are the gate pre-activations `[B, G·H]` from the
/// input and from the recurrence (`h·W + b`; `None` when the previous state is zero, so the
/// product is skipped), `h` and `c` the previous states (`None`: zero). Returns the new hidden
/// state and, for the LSTM, the new cell state. Gate order as PyTorch: LSTM (i, f, g, o), GRU
/// (r, z, n) with the `n` bias inside the reset product.
pub(crate) fn cell_step(
    cell: Cell,
    hidden: usize,
    x: &Tensor,
    rec: Option<&Tensor>,
    h: Option<&Tensor>,
    c: Option<&Tensor>,
) -> Result<(Tensor, Option<Tensor>)> {
    let hn = hidden as i64;
    let gate = |t: &Tensor, q: i64| t.f_narrow(1, q * hn, hn);
    let sum = |q: i64| -> Result<Tensor> {
        match rec {
            Some(r) => gate(x, q)?.f_add(&gate(r, q)?),
            None => gate(x, q),
        }
    };
    match cell {
        Cell::Vanilla => Ok((sum(0)?.f_tanh()?, None)),
        Cell::Lstm => {
            let i = sum(0)?.f_sigmoid()?;
            let f = sum(1)?.f_sigmoid()?;
            let g = sum(2)?.f_tanh()?;
            let o = sum(3)?.f_sigmoid()?;
            let ig = i.f_mul(&g)?;
            let c_new = match c {
                Some(c) => f.f_mul(c)?.f_add(&ig)?,
                None => ig,
            };
            Ok((o.f_mul(&c_new.f_tanh()?)?, Some(c_new)))
        }
        Cell::Gru => {
            let r = sum(0)?.f_sigmoid()?;
            let z = sum(1)?.f_sigmoid()?;
            let n = match rec {
                Some(rec) => gate(x, 2)?.f_add(&r.f_mul(&gate(rec, 2)?)?)?.f_tanh()?,
                None => gate(x, 2)?.f_tanh()?,
            };
            // (1 - z)·n + z·h  ==  n + z·(h - n)
            let h_new = match h {
                Some(h) => n.f_add(&z.f_mul(&h.f_sub(&n)?)?)?,
                None => n.f_sub(&z.f_mul(&n)?)?,
            };
            Ok((h_new, None))
        }
    }
}

/// `C = op(A)·op(B)`.
pub(crate) fn gemm(g: &GemmParams, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let a = if g.trans_a {
        a.f_transpose(0, 1)?
    } else {
        a.shallow_clone()
    };
    let b = if g.trans_b {
        b.f_transpose(0, 1)?
    } else {
        b.shallow_clone()
    };
    a.f_matmul(&b)
}

/// `Y = conv2d(X, W) (+ bias)`, NCHW / KCRS.
pub(crate) fn conv2d(
    c: &ConvParams,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let (sh, sw, ph, pw) = (
        c.stride_h as i64,
        c.stride_w as i64,
        c.pad_h as i64,
        c.pad_w as i64,
    );
    x.f_conv2d(w, bias, [sh, sw], [ph, pw], [1, 1], 1)
}

/// Every hidden state `HS[T,B,H]` of `T` cell steps over `xp[T,B,G·H]` from `h0` (and `c0`).
pub(crate) fn rnn(
    r: &RnnParams,
    xp: &Tensor,
    w: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: Option<&Tensor>,
) -> Result<Tensor> {
    let mut h = h0.shallow_clone();
    let mut c = c0.map(Tensor::shallow_clone);
    let mut hs = Vec::with_capacity(r.steps);
    // One view per step from one op, whose backward is one stack: a `get` per step would
    // each, in training, scatter into a zero tensor of the whole `xp` (T² traffic).
    let xs = xp.f_unbind(0)?;
    for x in &xs {
        let rec = h.f_matmul(w)?.f_add(b)?;
        let (h_new, c_new) = cell_step(r.cell, r.hidden, x, Some(&rec), Some(&h), c.as_ref())?;
        h = h_new;
        c = c_new;
        hs.push(h.shallow_clone());
    }
    Tensor::f_stack(&hs, 0)
}
