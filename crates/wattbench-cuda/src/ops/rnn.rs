//! RNN (`rnn.cu`, fused vanilla/LSTM/GRU steps): the forward plan, and the training step:
//! forward with state saving, backward through time, `dW`/`db`, SGD. Also the mirror of the
//! kernels' by-value `RnnBwdArgs` struct.
use super::elementwise::{colsum, sgd};
use super::gemm;
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::plan::{blocks, Arg, BufId, Dim3, Launch, PlanBuilder, Ptr, View, NULL};
use wattbench_core::workload::{Cell, GemmParams, RnnParams};
use wattbench_core::{DType, Mode};

/// Mirror of `struct RnnBwdArgs` in kernels/rnn.cu (same field order and C layout), generic
/// over the pointer: [`Ptr`] while a plan is built, the device address (`u64`) at launch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RnnBwdArgs<P> {
    /// `HS[s]` (vanilla) or `h_{s-1}` (GRU).
    pub(crate) hs: P,
    /// `save[s]`.
    pub(crate) save: P,
    /// LSTM c_{s-1}.
    pub(crate) cprev: P,
    /// Row pitch of `cprev` in elements.
    pub(crate) cprev_pitch: i32,
    /// `dXP[s]`.
    pub(crate) dxp: P,
    /// `dREC[s]`.
    pub(crate) drec: P,
    /// LSTM dc carry / GRU direct term.
    pub(crate) carry: P,
}

impl<P: Copy> RnnBwdArgs<P> {
    /// The pointer fields.
    pub(crate) fn pointers(&self) -> [P; 6] {
        [
            self.hs, self.save, self.cprev, self.dxp, self.drec, self.carry,
        ]
    }

    /// The same struct with every pointer mapped by `f`.
    pub(crate) fn try_map<Q, E>(
        self,
        mut f: impl FnMut(P) -> Result<Q, E>,
    ) -> Result<RnnBwdArgs<Q>, E> {
        Ok(RnnBwdArgs {
            hs: f(self.hs)?,
            save: f(self.save)?,
            cprev: f(self.cprev)?,
            cprev_pitch: self.cprev_pitch,
            dxp: f(self.dxp)?,
            drec: f(self.drec)?,
            carry: f(self.carry)?,
        })
    }
}

// SAFETY: plain-old-data with the kernel struct's C layout (`repr(C)`, pointers as 64-bit
// addresses; checked by a size and offset test).
unsafe impl cudarc::driver::DeviceRepr for RnnBwdArgs<u64> {}

/// Grid of the per-step kernels (forward and backward): 16 hidden units by 32 batch rows
/// per block, 128 threads.
fn step_shape(entry: String, r: &RnnParams) -> Launch {
    Launch {
        kernel: KernelId::Rnn,
        entry,
        grid: (blocks(r.hidden, 16), blocks(r.batch, 32), 1),
        block: (128, 1, 1),
        smem: 0,
    }
}

/// Grid of the last-step backward kernel: one thread per `B·H` element.
fn last_shape(entry: String, r: &RnnParams) -> Launch {
    let grid: Dim3 = (blocks(r.batch * r.hidden, 256), 1, 1);
    Launch {
        kernel: KernelId::Rnn,
        entry,
        grid,
        block: (256, 1, 1),
        smem: 0,
    }
}

/// Elements per batch row of the forward's saved state: LSTM `5H` (i,f,g,o,c'), GRU `4H`
/// (r,z,n,h·Wn+bn), vanilla none (backward uses the hidden states).
fn save_width(r: &RnnParams) -> usize {
    match r.cell {
        Cell::Vanilla => 0,
        Cell::Lstm => 5 * r.hidden,
        Cell::Gru => 4 * r.hidden,
    }
}

/// The buffers of one recurrence, as views: the inputs and what the steps write.
struct Tensors {
    xp: View,
    w: View,
    bias: View,
    /// Hidden states: `HS` (forward) or `[h0; HS]` (training).
    hs: View,
    /// LSTM cell state `[B,H]`, updated in place (forward of the other cells: unused).
    c: Option<View>,
    /// Saved forward state, `T·B·`[`save_width`] (training).
    save: Option<View>,
}

/// One forward step `s`: `h_out = cell(xp[s], h_prev)`.
fn forward_step(
    b: &mut PlanBuilder,
    r: &RnnParams,
    t: &Tensors,
    s: usize,
    [h_prev, h_out]: [View; 2],
) -> Result<(), CudaError> {
    let (h, bh, gh) = (r.hidden, r.batch * r.hidden, r.cell.gates() * r.hidden);
    let xp = b.view(t.xp.buf(), s * r.batch * gh, r.batch * gh);
    let f32 = DType::F32;
    for (v, n) in [
        (xp, r.batch * gh),
        (t.w, h * gh),
        (t.bias, gh),
        (h_prev, bh),
        (h_out, bh),
    ] {
        b.expect(v, n, f32)?;
    }
    let sw = save_width(r);
    let save = match t.save {
        Some(v) => {
            let v = b.view(v.buf(), s * r.batch * sw, r.batch * sw);
            b.expect(v, r.batch * sw, f32)?;
            Arg::from(v)
        }
        None => NULL,
    };
    let mut args = vec![
        xp.into(),
        t.w.into(),
        t.bias.into(),
        h_prev.into(),
        h_out.into(),
    ];
    match (r.cell, t.c) {
        (Cell::Vanilla, _) => {}
        (Cell::Lstm, Some(c)) => {
            b.expect(c, bh, f32)?;
            args.extend([c.into(), save]);
        }
        (Cell::Lstm, None) => {
            return Err(CudaError::lib(
                "building the plan",
                "LSTM without a cell state",
            ))
        }
        (Cell::Gru, _) => args.push(save),
    }
    args.extend([Arg::Int(r.batch), Arg::Int(h)]);
    let entry = format!("rnn_fwd_{}", r.cell.as_str());
    // SAFETY: `rnn_fwd_vanilla(xp, w, bias, h_prev, h_out, B, H)`, `rnn_fwd_lstm(.., c, save,
    // B, H)`, `rnn_fwd_gru(.., save, B, H)`, all f32 pointers, on their documented grid. For
    // batch rows `< B` and units `< H` they read xp[s] [B,G·H], w [H,G·H], bias [G·H] and
    // h_prev [B,H], write h_out [B,H], update c [B,H] and write save [B,save_width] unless
    // null (nullable): the views just checked, h_prev and h_out disjoint.
    unsafe { b.launch(step_shape(entry, r), args) }
}

/// The plan of an RNN case on inputs `ins` (`xp, w, b, h0[, c0]`, and in training `dhs`);
/// returns the outputs: `[hs]`, or in training `[hs, dxp, dw, db, w_new, b_new]` (W and b
/// updated in place; no gradient of the constant initial states).
pub(crate) fn plan(
    b: &mut PlanBuilder,
    r: &RnnParams,
    mode: Mode,
    ins: &[BufId],
) -> Result<Vec<View>, CudaError> {
    if mode == Mode::Train {
        let g = training(b, r, ins, false)?;
        sgd(b, g.w, g.dw)?;
        sgd(b, g.bias, g.db)?;
        return Ok(vec![g.hs, g.dxp, g.dw, g.db, g.w, g.bias]);
    }
    let (bh, t) = (r.batch * r.hidden, r.steps);
    let lstm = r.cell == Cell::Lstm;
    let (xp, w, bias, h0, c0) = split_inputs(ins, lstm, 0)?;
    let hs = b.poisoned(t * bh, DType::F32);
    let c = lstm.then(|| b.zeros(bh, DType::F32));
    let ts = Tensors {
        xp: b.whole(xp),
        w: b.whole(w),
        bias: b.whole(bias),
        hs: b.whole(hs),
        c: c.map(|c| b.whole(c)),
        save: None,
    };
    if let (Some(c), Some(c0)) = (ts.c, c0) {
        b.copy(c, b.whole(c0))?;
    }
    for s in 0..t {
        let prev = if s == 0 {
            b.whole(h0)
        } else {
            b.view(hs, (s - 1) * bh, bh)
        };
        forward_step(b, r, &ts, s, [prev, b.view(hs, s * bh, bh)])?;
    }
    Ok(vec![ts.hs])
}

/// `(xp, w, b, h0, c0)` of the inputs (`c0` for LSTM only), with `extra` more after them.
#[allow(clippy::type_complexity)]
fn split_inputs(
    ins: &[BufId],
    lstm: bool,
    extra: usize,
) -> Result<(BufId, BufId, BufId, BufId, Option<BufId>), CudaError> {
    let want = if lstm { 5 } else { 4 } + extra;
    if ins.len() != want {
        return Err(CudaError::lib(
            "building the plan",
            format!("rnn: {} inputs, expected {want}", ins.len()),
        ));
    }
    Ok((ins[0], ins[1], ins[2], ins[3], lstm.then(|| ins[4])))
}

/// What a training step computed, as views.
pub(crate) struct Gradients {
    /// W (input).
    pub(crate) w: View,
    /// b (input).
    pub(crate) bias: View,
    /// `HS[T,B,H]`.
    pub(crate) hs: View,
    /// `dXP[T,B,G·H]`.
    pub(crate) dxp: View,
    /// `dW[H,G·H]`.
    pub(crate) dw: View,
    /// `db[G·H]`.
    pub(crate) db: View,
    /// `dh0[B,H]`, when asked for.
    pub(crate) dh0: Option<View>,
}

/// Forward with state saving, backward through time, then `dW = [h0; HS[..T-1]]ᵀ·dREC` and
/// `db = Σ_rows dREC`, on inputs `xp, w, b, h0[, c0], dhs`. With `with_dh0`, also the
/// gradient of the initial hidden state (a training step has no use for it: initial states
/// are constants).
pub(crate) fn training(
    b: &mut PlanBuilder,
    r: &RnnParams,
    ins: &[BufId],
    with_dh0: bool,
) -> Result<Gradients, CudaError> {
    let (h, bt, t) = (r.hidden, r.batch, r.steps);
    let (gh, bh) = (r.cell.gates() * h, bt * h);
    let lstm = r.cell == Cell::Lstm;
    let f32 = DType::F32;
    if h == 0 || bt == 0 || t == 0 {
        return Err(CudaError::lib(
            "building the plan",
            format!("empty RNN {r:?}"),
        ));
    }
    let (xp, w, bias, h0, c0) = split_inputs(ins, lstm, 1)?;
    let dhs = ins[ins.len() - 1];
    let hfull = b.poisoned((t + 1) * bh, f32);
    let cstate = b.zeros(if lstm { bh } else { 1 }, f32);
    let sw = save_width(r);
    let save = b.zeros((t * bt * sw).max(1), f32);
    let dxp = b.poisoned(t * bt * gh, f32);
    let drec = if r.cell == Cell::Gru {
        b.poisoned(t * bt * gh, f32)
    } else {
        dxp
    };
    let carry = b.zeros(bh, f32);
    let dw = b.poisoned(h * gh, f32);
    let db = b.poisoned(gh, f32);
    let dh0 = with_dh0.then(|| b.poisoned(bh, f32));
    let ts = Tensors {
        xp: b.whole(xp),
        w: b.whole(w),
        bias: b.whole(bias),
        hs: b.whole(hfull),
        c: lstm.then(|| b.whole(cstate)),
        save: Some(b.view(save, 0, t * bt * sw)),
    };
    let step = |b: &PlanBuilder, buf: BufId, s: usize, width: usize| {
        b.view(buf, s * bt * width, bt * width)
    };

    b.copy(b.view(hfull, 0, bh), b.whole(h0))?;
    b.zero(b.whole(carry))?;
    if let (Some(c), Some(c0)) = (ts.c, c0) {
        b.copy(c, b.whole(c0))?;
    }
    for s in 0..t {
        let hv = [step(b, hfull, s, h), step(b, hfull, s + 1, h)];
        forward_step(b, r, &ts, s, hv)?;
    }

    // Backward through time: the gate gradients of step s from dh_s.
    let args = |b: &PlanBuilder, s: usize| -> Result<RnnBwdArgs<Ptr>, CudaError> {
        let (pitch, cprev) = match (s, c0) {
            (_, None) => (if s == 0 { h } else { sw }, Ptr::Null),
            (0, Some(c0)) => (h, b.whole(c0).into()),
            // c_{s-1}: column block 4 of save[s-1], rows of pitch 5H.
            (_, Some(_)) => (
                sw,
                b.view(save, (s - 1) * bt * sw + 4 * h, (bt - 1) * sw + h)
                    .into(),
            ),
        };
        let a = RnnBwdArgs {
            hs: step(b, hfull, if r.cell == Cell::Gru { s } else { s + 1 }, h).into(),
            save: step(b, save, s, sw).into(),
            cprev,
            cprev_pitch: i32::try_from(pitch)
                .map_err(|_| CudaError::lib("building the plan", "RNN pitch over 2^31-1"))?,
            dxp: step(b, dxp, s, gh).into(),
            drec: step(b, drec, s, gh).into(),
            carry: b.whole(carry).into(),
        };
        // Exact sizes, except cprev: rows of `cprev_pitch`, only checked to be in bounds.
        let sizes = [
            Some(bh),
            Some(bt * sw),
            None,
            Some(bt * gh),
            Some(bt * gh),
            Some(bh),
        ];
        for (p, n) in a.pointers().into_iter().zip(sizes) {
            if let Ptr::To(v) = p {
                b.expect(v, n.unwrap_or(v.len()), f32)?;
            }
        }
        Ok(a)
    };
    let cell = r.cell.as_str();
    let (bi, hi) = (Arg::Int(bt), Arg::Int(h));
    b.expect(b.whole(dhs), t * bh, f32)?;
    let last = vec![
        step(b, dhs, t - 1, h).into(),
        Arg::RnnBwd(args(b, t - 1)?),
        bi,
        hi,
    ];
    // SAFETY: `rnn_bwd_last_<cell>(const float* dhs, RnnBwdArgs a, int B, int H)`, one thread
    // per `b·H + j < B·H`: reads dhs[T-1] [B,H] and, through `a`, the step's slices (hs,
    // save, cprev rows of `cprev_pitch`, dxp/drec [B,G·H], carry [B,H]), each a view checked
    // above to cover exactly those elements (cprev: (B-1)·pitch + H).
    unsafe { b.launch(last_shape(format!("rnn_bwd_last_{cell}"), r), last) }?;
    let direct = if r.cell == Cell::Gru {
        b.whole(carry).into()
    } else {
        NULL
    };
    let bwd = |b: &mut PlanBuilder, args: Vec<Arg>| {
        // SAFETY: `rnn_bwd_<cell>(const float* drec_next, const float* w, const float* dhs,
        // const float* direct_next, float* dh0, RnnBwdArgs a, int B, int H)` on its documented
        // grid: reads drec_next [B,G·H], w [H,G·H], dhs [B,H] and direct_next [B,H] (both
        // nullable), then writes dh0 [B,H] when it is not null, else the gate gradients
        // through `a` as for the last step. Every view passed is built with exactly those
        // sizes (w, dhs and `a` checked above), and the builder checks each lies inside its
        // f32 buffer.
        unsafe { b.launch(step_shape(format!("rnn_bwd_{cell}"), r), args) }
    };
    b.expect(ts.w, h * gh, f32)?;
    for s in (0..t - 1).rev() {
        let a = vec![
            step(b, drec, s + 1, gh).into(),
            ts.w.into(),
            step(b, dhs, s, h).into(),
            direct,
            NULL,
            Arg::RnnBwd(args(b, s)?),
            bi,
            hi,
        ];
        bwd(b, a)?;
    }
    if let Some(dh0) = dh0 {
        let a = vec![
            step(b, drec, 0, gh).into(),
            ts.w.into(),
            NULL,
            direct,
            b.whole(dh0).into(),
            Arg::RnnBwd(RnnBwdArgs::default()),
            bi,
            hi,
        ];
        bwd(b, a)?;
    }
    // dW = [h0; HS[0..T-1]]ᵀ · dREC over all T·B rows; db = Σ_rows dREC.
    let dw_shape = GemmParams::new(h, gh, t * bt).transposed(true, false);
    let (dw, db) = (b.whole(dw), b.whole(db));
    let rows = [b.view(hfull, 0, t * bh), b.whole(drec), dw];
    gemm::launch(b, &dw_shape, f32, false, rows)?;
    colsum(b, b.whole(drec), db, t * bt, gh)?;
    Ok(Gradients {
        w: ts.w,
        bias: ts.bias,
        hs: b.view(hfull, bh, t * bh),
        dxp: b.whole(dxp),
        dw,
        db,
        dh0: dh0.map(|v| b.whole(v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rnn_bwd_args_has_the_c_layout() {
        assert_eq!(size_of::<RnnBwdArgs<u64>>(), 56);
        assert_eq!(std::mem::offset_of!(RnnBwdArgs<u64>, cprev_pitch), 24);
        assert_eq!(std::mem::offset_of!(RnnBwdArgs<u64>, dxp), 32);
        assert_eq!(std::mem::offset_of!(RnnBwdArgs<u64>, carry), 48);
    }

    #[test]
    fn save_width_matches_the_kernels() {
        let r = |cell| RnnParams {
            cell,
            hidden: 7,
            batch: 2,
            steps: 3,
        };
        assert_eq!(save_width(&r(Cell::Vanilla)), 0);
        assert_eq!(save_width(&r(Cell::Lstm)), 35);
        assert_eq!(save_width(&r(Cell::Gru)), 28);
    }
}
