//! The `candle` backend: the workloads written with candle-core tensor ops, as a user of
//! candle would write them. CPU only in this build; candle's CUDA device needs nvcc at build
//! time and is reported unavailable with that reason.
#![warn(missing_docs)]

use candle_core::{DType as CDType, Device, Tensor, Var};
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams, SGD_LR};
use wattbench_core::{Backend, BackendError, Case, DType, DeviceInfo, Mode, Params, Prepared};

/// candle-core version this backend was built against.
pub const CANDLE_VERSION: &str = env!("WATTBENCH_CANDLE_VERSION");

/// Why `Params::E2e` is not a kernel case here.
const E2E_ELSEWHERE: &str = "e2e training runs go through `wattbench train` (wattbench-train)";

/// The candle backend.
#[derive(Default)]
pub struct CandleBackend;

/// candle errors carry a backtrace when RUST_BACKTRACE is set; keep the message only. A dtype
/// candle has no kernel for is "unsupported" (the case is skipped), not a failure.
fn err(e: candle_core::Error) -> BackendError {
    let text = e.to_string();
    let msg = text.lines().next().unwrap_or("").trim().to_string();
    if msg.starts_with("unsupported dtype") {
        BackendError::Unsupported(format!("candle-core {CANDLE_VERSION}: {msg}"))
    } else {
        BackendError::failed("candle", msg)
    }
}

fn cdtype(d: DType) -> CDType {
    match d {
        DType::F32 => CDType::F32,
        DType::F16 => CDType::F16,
        DType::Bf16 => CDType::BF16,
    }
}

impl Backend for CandleBackend {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn devices(&self) -> Vec<DeviceInfo> {
        vec![
            DeviceInfo::available("cpu"),
            DeviceInfo::unavailable(
                "cuda",
                "built without candle's `cuda` feature (its kernels need nvcc at build time)",
            ),
        ]
    }

    fn versions(&self) -> Vec<(String, String)> {
        vec![("candle-core".into(), CANDLE_VERSION.into())]
    }

    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        if device != "cpu" {
            return Err(format!(
                "candle device `{device}` is not available in this build"
            ));
        }
        if let Params::Conv2d(c) = case.params {
            if c.stride_h != c.stride_w {
                return Err(format!(
                    "candle's conv2d takes one stride for both axes, not {}x{}",
                    c.stride_h, c.stride_w
                ));
            }
        }
        Ok(())
    }

    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        self.supports(case, device)
            .map_err(BackendError::Unsupported)?;
        let dev = Device::Cpu;
        let dt = cdtype(case.dtype);
        let mut ts = inputs
            .iter()
            .map(|t| Tensor::from_slice(&t.data, t.shape.as_slice(), &dev)?.to_dtype(dt))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)?;
        let train = case.mode == Mode::Train;
        let kernel = match case.params {
            Params::Gemm(g) => Kernel::Gemm(g),
            // candle pads both axes alike. Asymmetric padding: for inference it is applied once
            // here, outside the timed region; for training it stays in the graph so that the
            // input gradient has the input's shape.
            Params::Conv2d(c) if c.pad_h != c.pad_w && !train => {
                ts[0] = ts[0]
                    .pad_with_zeros(2, c.pad_h, c.pad_h)
                    .and_then(|x| x.pad_with_zeros(3, c.pad_w, c.pad_w))
                    .map_err(err)?;
                Kernel::Conv {
                    c,
                    pad: 0,
                    in_graph_pad: false,
                }
            }
            Params::Conv2d(c) if c.pad_h != c.pad_w => Kernel::Conv {
                c,
                pad: 0,
                in_graph_pad: true,
            },
            Params::Conv2d(c) => Kernel::Conv {
                c,
                pad: c.pad_h,
                in_graph_pad: false,
            },
            Params::Rnn(r) => Kernel::Rnn(r),
            Params::E2e(_) => return Err(BackendError::Unsupported(E2E_ELSEWHERE.into())),
        };
        let train = if train {
            let dy = ts
                .pop()
                .expect("training inputs end with dy")
                .to_dtype(CDType::F32)
                .map_err(err)?;
            let mut vars: Vec<Option<Var>> = vec![None; ts.len()];
            for &i in case.params.grad_inputs() {
                vars[i] = Some(Var::from_tensor(&ts[i]).map_err(err)?);
            }
            Some(Train {
                dy,
                vars,
                grad_inputs: case.params.grad_inputs(),
                weight_inputs: case.params.weight_inputs(),
            })
        } else {
            None
        };
        Ok(Box::new(CandlePrepared {
            kernel,
            inputs: ts,
            train,
            outs: Vec::new(),
        }))
    }
}

enum Kernel {
    Gemm(GemmParams),
    Conv {
        c: ConvParams,
        pad: usize,
        in_graph_pad: bool,
    },
    Rnn(RnnParams),
}

/// Training state: the upstream gradient and the inputs that are differentiated.
struct Train {
    dy: Tensor,
    vars: Vec<Option<Var>>,
    grad_inputs: &'static [usize],
    weight_inputs: &'static [usize],
}

struct CandlePrepared {
    kernel: Kernel,
    inputs: Vec<Tensor>,
    train: Option<Train>,
    outs: Vec<Tensor>,
}

fn forward(kernel: &Kernel, t: &[Tensor]) -> candle_core::Result<Tensor> {
    match kernel {
        Kernel::Gemm(g) => {
            let a = if g.trans_a { t[0].t()? } else { t[0].clone() };
            let b = if g.trans_b { t[1].t()? } else { t[1].clone() };
            a.matmul(&b)
        }
        Kernel::Conv {
            c,
            pad,
            in_graph_pad,
        } => {
            let x = if *in_graph_pad {
                // Pad, then drop trailing rows/columns no window reaches: candle-core 0.11's
                // conv2d backward sizes the input gradient from the windows alone, so an
                // unreached tail would make it mismatch the padded input.
                let used_h = (c.p() - 1) * c.stride_h + c.r;
                let used_w = (c.q() - 1) * c.stride_w + c.s;
                t[0].pad_with_zeros(2, c.pad_h, c.pad_h)?
                    .pad_with_zeros(3, c.pad_w, c.pad_w)?
                    .narrow(2, 0, used_h)?
                    .narrow(3, 0, used_w)?
            } else {
                t[0].clone()
            };
            x.conv2d(&t[1], *pad, c.stride_h, 1, 1)
        }
        Kernel::Rnn(r) => rnn_forward(r, t),
    }
}

/// One training step: forward, `L = Σ y·dy`, backward, SGD on the weights. Returns
/// `[y, gradients…, updated weights…]`.
fn train_step(kernel: &Kernel, inputs: &[Tensor], tr: &Train) -> candle_core::Result<Vec<Tensor>> {
    let current: Vec<Tensor> = inputs
        .iter()
        .zip(&tr.vars)
        .map(|(t, v)| {
            v.as_ref()
                .map_or_else(|| t.clone(), |v| v.as_tensor().clone())
        })
        .collect();
    let y = forward(kernel, &current)?;
    let loss = y.to_dtype(CDType::F32)?.mul(&tr.dy)?.sum_all()?;
    let grads = loss.backward()?;
    let grad = |i: usize| -> candle_core::Result<Tensor> {
        let v = tr.vars[i].as_ref().expect("differentiated input");
        grads
            .get(v.as_tensor())
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("no gradient for input {i}")))
    };
    let mut outs = vec![y.detach()];
    for &i in tr.grad_inputs {
        outs.push(grad(i)?);
    }
    for &i in tr.weight_inputs {
        let v = tr.vars[i].as_ref().expect("weights are differentiated");
        let updated = (v.as_tensor().detach() - (grad(i)? * SGD_LR)?)?;
        v.set(&updated)?;
        outs.push(updated);
    }
    Ok(outs)
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

fn rnn_forward(r: &RnnParams, t: &[Tensor]) -> candle_core::Result<Tensor> {
    let (xp, w, b, h0) = (&t[0], &t[1], &t[2], &t[3]);
    let hn = r.hidden;
    let mut h = h0.clone();
    let mut c = t.get(4).cloned();
    let mut hs = Vec::with_capacity(r.steps);
    for step in 0..r.steps {
        let x = xp.get(step)?;
        let rec = h.matmul(w)?.broadcast_add(b)?;
        h = match r.cell {
            Cell::Vanilla => (x + rec)?.tanh()?,
            Cell::Lstm => {
                let g = (x + rec)?;
                let i = sigmoid(&g.narrow(1, 0, hn)?)?;
                let f = sigmoid(&g.narrow(1, hn, hn)?)?;
                let gg = g.narrow(1, 2 * hn, hn)?.tanh()?;
                let o = sigmoid(&g.narrow(1, 3 * hn, hn)?)?;
                let cn = ((f * c.as_ref().expect("lstm has c0"))? + (i * gg)?)?;
                let hnew = (o * cn.tanh()?)?;
                c = Some(cn);
                hnew
            }
            Cell::Gru => {
                let rg = sigmoid(&(x.narrow(1, 0, hn)? + rec.narrow(1, 0, hn)?)?)?;
                let z = sigmoid(&(x.narrow(1, hn, hn)? + rec.narrow(1, hn, hn)?)?)?;
                let n = (x.narrow(1, 2 * hn, hn)? + (rg * rec.narrow(1, 2 * hn, hn)?)?)?.tanh()?;
                // (1 - z)·n + z·h  ==  n + z·(h - n)
                (&n + (z * (&h - &n)?)?)?
            }
        };
        hs.push(h.clone());
    }
    Tensor::stack(&hs, 0)
}

impl Prepared for CandlePrepared {
    fn execute(&mut self) -> Result<(), BackendError> {
        self.outs = match &self.train {
            None => vec![forward(&self.kernel, &self.inputs).map_err(err)?],
            Some(tr) => train_step(&self.kernel, &self.inputs, tr).map_err(err)?,
        };
        Ok(())
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        // CPU ops complete before returning.
        Ok(())
    }

    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        if self.outs.is_empty() {
            return Err(BackendError::failed("candle", "no call made"));
        }
        self.outs
            .iter()
            .map(|o| {
                o.to_dtype(CDType::F32)
                    .and_then(|o| o.flatten_all())
                    .and_then(|o| o.to_vec1::<f32>())
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)
    }
}
