//! The `tch` backend: the workloads written with libtorch tensor ops through tch, as a
//! PyTorch user would write them (`matmul`, `conv2d`, per-step cell arithmetic).
//!
//! libtorch must be 2.11.x (tch 0.24); `scripts/fetch-libtorch.sh` fetches it. Binaries
//! that link this crate carry an rpath to libtorch's `lib/` (see `build.rs`).
#![warn(missing_docs)]

use tch::{Device, Kind, Tensor};
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams, SGD_LR};
use wattbench_core::{Backend, BackendError, Case, DType, DeviceInfo, Mode, Params, Prepared};

/// libtorch version read from its headers at build time.
pub const LIBTORCH_VERSION: &str = env!("WATTBENCH_LIBTORCH_VERSION");

/// The tch backend.
#[derive(Default)]
pub struct TchBackend;

fn err(e: tch::TchError) -> BackendError {
    BackendError::failed("tch", e)
}

fn kind(d: DType) -> Kind {
    match d {
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::Bf16 => Kind::BFloat16,
    }
}

fn device(name: &str) -> Option<Device> {
    match name {
        "cpu" => Some(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Some(Device::Cuda(0)),
        _ => None,
    }
}

impl Backend for TchBackend {
    fn name(&self) -> &'static str {
        "tch"
    }

    fn devices(&self) -> Vec<DeviceInfo> {
        let cuda = if tch::Cuda::is_available() {
            DeviceInfo::available("cuda")
        } else {
            DeviceInfo::unavailable(
                "cuda",
                "libtorch sees no CUDA device (this build links libtorch's CPU libraries only)",
            )
        };
        vec![DeviceInfo::available("cpu"), cuda]
    }

    fn versions(&self) -> Vec<(String, String)> {
        vec![("libtorch".into(), LIBTORCH_VERSION.into())]
    }

    fn supports(&self, _case: &Case, dev: &str) -> Result<(), String> {
        if device(dev).is_none() {
            return Err(format!("tch device `{dev}` is not available"));
        }
        Ok(())
    }

    fn prepare(
        &self,
        case: &Case,
        dev: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        self.supports(case, dev)
            .map_err(BackendError::Unsupported)?;
        let d = device(dev).expect("checked by supports");
        let mut ts = inputs
            .iter()
            .map(|t| {
                let shape: Vec<i64> = t.shape.iter().map(|&s| s as i64).collect();
                Tensor::f_from_slice(&t.data)?
                    .f_reshape(&shape)?
                    .f_to_kind(kind(case.dtype))?
                    .f_to_device(d)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let train = if case.mode == Mode::Train {
            let dy = ts.pop().expect("training inputs end with dy");
            let dy = dy.f_to_kind(Kind::Float).map_err(err)?;
            for &i in case.params.grad_inputs() {
                ts[i] = ts[i].set_requires_grad(true);
            }
            Some(Train {
                dy,
                grad_inputs: case.params.grad_inputs(),
                weight_inputs: case.params.weight_inputs(),
            })
        } else {
            None
        };
        Ok(Box::new(TchPrepared {
            params: case.params,
            inputs: ts,
            train,
            outs: Vec::new(),
            device: d,
        }))
    }
}

struct TchPrepared {
    params: Params,
    inputs: Vec<Tensor>,
    train: Option<Train>,
    outs: Vec<Tensor>,
    device: Device,
}

/// Training state: the upstream gradient and which inputs are differentiated or updated.
struct Train {
    dy: Tensor,
    grad_inputs: &'static [usize],
    weight_inputs: &'static [usize],
}

fn forward(params: &Params, t: &[Tensor]) -> Result<Tensor, tch::TchError> {
    match params {
        Params::Gemm(g) => gemm(g, t),
        Params::Conv2d(c) => conv(c, t),
        Params::Rnn(r) => rnn(r, t),
        Params::E2e(_) => Err(tch::TchError::Torch(
            "e2e training runs go through `wattbench train` (wattbench-train)".into(),
        )),
    }
}

/// One training step: forward, `L = Σ y·dy`, autograd backward, SGD on the weights. Returns
/// `[y, gradients…, updated weights…]`.
fn train_step(
    params: &Params,
    inputs: &[Tensor],
    tr: &Train,
) -> Result<Vec<Tensor>, tch::TchError> {
    for &i in tr.grad_inputs {
        let mut t = inputs[i].shallow_clone();
        t.zero_grad();
    }
    let y = forward(params, inputs)?;
    let loss = y
        .f_to_kind(Kind::Float)?
        .f_mul(&tr.dy)?
        .f_sum(Kind::Float)?;
    loss.f_backward()?;
    let mut outs = vec![y.f_detach()?];
    for &i in tr.grad_inputs {
        outs.push(inputs[i].grad().f_detach_copy()?);
    }
    let _guard = tch::no_grad_guard();
    for &i in tr.weight_inputs {
        let mut w = inputs[i].shallow_clone();
        let step = inputs[i].grad().f_mul_scalar(SGD_LR)?;
        let _ = w.f_sub_(&step)?;
        outs.push(w.f_detach_copy()?);
    }
    Ok(outs)
}

fn gemm(g: &GemmParams, t: &[Tensor]) -> Result<Tensor, tch::TchError> {
    let a = if g.trans_a {
        t[0].f_transpose(0, 1)?
    } else {
        t[0].shallow_clone()
    };
    let b = if g.trans_b {
        t[1].f_transpose(0, 1)?
    } else {
        t[1].shallow_clone()
    };
    a.f_matmul(&b)
}

fn conv(c: &ConvParams, t: &[Tensor]) -> Result<Tensor, tch::TchError> {
    let (sh, sw, ph, pw) = (
        c.stride_h as i64,
        c.stride_w as i64,
        c.pad_h as i64,
        c.pad_w as i64,
    );
    t[0].f_conv2d(&t[1], None::<Tensor>, [sh, sw], [ph, pw], [1, 1], 1)
}

fn rnn(r: &RnnParams, t: &[Tensor]) -> Result<Tensor, tch::TchError> {
    let (xp, w, b) = (&t[0], &t[1], &t[2]);
    let hn = r.hidden as i64;
    let mut h = t[3].shallow_clone();
    let mut c = t.get(4).map(Tensor::shallow_clone);
    let mut hs = Vec::with_capacity(r.steps);
    for step in 0..r.steps as i64 {
        let x = xp.f_get(step)?;
        let rec = h.f_matmul(w)?.f_add(b)?;
        h = match r.cell {
            Cell::Vanilla => x.f_add(&rec)?.f_tanh()?,
            Cell::Lstm => {
                let g = x.f_add(&rec)?;
                let i = g.f_narrow(1, 0, hn)?.f_sigmoid()?;
                let f = g.f_narrow(1, hn, hn)?.f_sigmoid()?;
                let gg = g.f_narrow(1, 2 * hn, hn)?.f_tanh()?;
                let o = g.f_narrow(1, 3 * hn, hn)?.f_sigmoid()?;
                let c_prev = c.as_ref().expect("lstm has c0");
                let cn = f.f_mul(c_prev)?.f_add(&i.f_mul(&gg)?)?;
                let hnew = o.f_mul(&cn.f_tanh()?)?;
                c = Some(cn);
                hnew
            }
            Cell::Gru => {
                let rg = x
                    .f_narrow(1, 0, hn)?
                    .f_add(&rec.f_narrow(1, 0, hn)?)?
                    .f_sigmoid()?;
                let z = x
                    .f_narrow(1, hn, hn)?
                    .f_add(&rec.f_narrow(1, hn, hn)?)?
                    .f_sigmoid()?;
                let n = x
                    .f_narrow(1, 2 * hn, hn)?
                    .f_add(&rg.f_mul(&rec.f_narrow(1, 2 * hn, hn)?)?)?
                    .f_tanh()?;
                n.f_add(&z.f_mul(&h.f_sub(&n)?)?)?
            }
        };
        hs.push(h.shallow_clone());
    }
    Tensor::f_stack(&hs, 0)
}

impl Prepared for TchPrepared {
    fn execute(&mut self) -> Result<(), BackendError> {
        self.outs = match &self.train {
            None => {
                let _guard = tch::no_grad_guard();
                vec![forward(&self.params, &self.inputs).map_err(err)?]
            }
            Some(tr) => train_step(&self.params, &self.inputs, tr).map_err(err)?,
        };
        Ok(())
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok(())
    }

    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        if self.outs.is_empty() {
            return Err(BackendError::failed("tch", "no call made"));
        }
        self.outs
            .iter()
            .map(|o| {
                let flat = o
                    .f_to_kind(Kind::Float)?
                    .f_flatten(0, -1)?
                    .f_to_device(Device::Cpu)?;
                Vec::<f32>::try_from(&flat)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    }
}
