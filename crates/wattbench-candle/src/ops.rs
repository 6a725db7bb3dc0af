//! The workloads written with candle-core tensor ops, as a user of candle would write them:
//! one function per op, and one RNN cell step shared by the kernel cases and the LSTM model.
use candle_core::{Result, Tensor};
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};

/// `σ(x)` (candle-core 0.11 has no sigmoid op with a backward pass).
pub(crate) fn sigmoid(x: &Tensor) -> Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

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
    let hn = hidden;
    let gate = |t: &Tensor, q: usize| t.narrow(1, q * hn, hn);
    let sum = |q: usize| -> Result<Tensor> {
        match rec {
            Some(r) => gate(x, q)? + gate(r, q)?,
            None => gate(x, q),
        }
    };
    match cell {
        Cell::Vanilla => Ok((sum(0)?.tanh()?, None)),
        Cell::Lstm => {
            let i = sigmoid(&sum(0)?)?;
            let f = sigmoid(&sum(1)?)?;
            let g = sum(2)?.tanh()?;
            let o = sigmoid(&sum(3)?)?;
            let ig = (i * g)?;
            let c_new = match c {
                Some(c) => ((f * c)? + ig)?,
                None => ig,
            };
            Ok(((o * c_new.tanh()?)?, Some(c_new)))
        }
        Cell::Gru => {
            let r = sigmoid(&sum(0)?)?;
            let z = sigmoid(&sum(1)?)?;
            let n = match rec {
                Some(rec) => (gate(x, 2)? + (r * gate(rec, 2)?)?)?.tanh()?,
                None => gate(x, 2)?.tanh()?,
            };
            // (1 - z)·n + z·h  ==  n + z·(h - n)
            let h_new = match h {
                Some(h) => (&n + (z * (h - &n)?)?)?,
                None => (&n - (z * &n)?)?,
            };
            Ok((h_new, None))
        }
    }
}

/// `C = op(A)·op(B)`.
pub(crate) fn gemm(g: &GemmParams, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let a = if g.trans_a { a.t()? } else { a.clone() };
    let b = if g.trans_b { b.t()? } else { b.clone() };
    a.matmul(&b)
}

/// How a convolution's padding is applied: candle pads both axes alike, and its conv2d
/// backward (candle-core 0.11) sizes the input gradient's unreached tail from the height axis
/// alone.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Padding {
    /// Equal padding, passed to candle.
    Symmetric(usize),
    /// Already applied to the input, outside the timed region (asymmetric, inference).
    Applied,
    /// Applied inside the graph, so that the input gradient has the input's shape (training,
    /// with asymmetric padding, or with strided windows that leave tails of different lengths
    /// on the two axes: see [`in_graph_for_training`]).
    InGraph,
}

/// Whether a training step of `c` pads in the graph: asymmetric padding, or tails no window
/// reaches that differ between the axes (candle's backward would size the input gradient's
/// width by the height's tail, and fail on a shape mismatch).
pub(crate) fn in_graph_for_training(c: &ConvParams) -> bool {
    let tail = |size: usize, pad: usize, k: usize, stride: usize| (size + 2 * pad - k) % stride;
    c.pad_h != c.pad_w || tail(c.h, c.pad_h, c.r, c.stride_h) != tail(c.w, c.pad_w, c.s, c.stride_w)
}

/// `Y = conv2d(X, W)`, NCHW / KCRS, one stride for both axes (checked by the backend).
pub(crate) fn conv2d(c: &ConvParams, pad: Padding, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (x, p) = match pad {
        Padding::Symmetric(p) => (x.clone(), p),
        Padding::Applied => (x.clone(), 0),
        Padding::InGraph => {
            // Pad, then drop trailing rows/columns no window reaches: candle-core 0.11's
            // conv2d backward sizes the input gradient from the windows alone, so an unreached
            // tail would make it mismatch the padded input.
            let used_h = (c.p() - 1) * c.stride_h + c.r;
            let used_w = (c.q() - 1) * c.stride_w + c.s;
            let x = x
                .pad_with_zeros(2, c.pad_h, c.pad_h)?
                .pad_with_zeros(3, c.pad_w, c.pad_w)?
                .narrow(2, 0, used_h)?
                .narrow(3, 0, used_w)?;
            (x, 0)
        }
    };
    x.conv2d(w, p, c.stride_h, 1, 1)
}

/// The steps of `xp[T,B,G·H]`, as views `[B,G·H]`.
pub(crate) fn steps(xp: &Tensor) -> Result<Vec<Tensor>> {
    (0..xp.dim(0)?).map(|s| xp.get(s)).collect()
}

/// Every hidden state `HS[T,B,H]` of the cell steps over `xs` (each step's input projection,
/// `[B,G·H]`) from `h0` (and `c0`). In training the steps are separate variables: a slice of
/// one `xp` per step would, in candle-core 0.11's backward, each scatter into a zero tensor of
/// the whole `xp` (T² traffic).
pub(crate) fn rnn(
    r: &RnnParams,
    xs: &[Tensor],
    w: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: Option<&Tensor>,
) -> Result<Tensor> {
    let mut h = h0.clone();
    let mut c = c0.cloned();
    let mut hs = Vec::with_capacity(r.steps);
    for x in xs {
        let rec = h.matmul(w)?.broadcast_add(b)?;
        let (h_new, c_new) = cell_step(r.cell, r.hidden, x, Some(&rec), Some(&h), c.as_ref())?;
        h = h_new;
        c = c_new;
        hs.push(h.clone());
    }
    Tensor::stack(&hs, 0)
}
