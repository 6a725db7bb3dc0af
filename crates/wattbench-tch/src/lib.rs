//! The `tch` backend: the workloads written with libtorch tensor ops through tch, as a
//! PyTorch user would write them (`matmul`, `conv2d`, per-step cell arithmetic).
//!
//! libtorch must be 2.11.x (tch 0.24); `scripts/fetch-libtorch.sh` fetches it. Binaries
//! that link this crate carry an rpath to libtorch's `lib/` (see `build.rs`).
#![warn(missing_docs)]

use tch::{Device, Kind, Tensor};
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::{Cell, ConvParams, GemmParams, RnnParams};
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

    fn supports(&self, case: &Case, dev: &str) -> Result<(), String> {
        if device(dev).is_none() {
            return Err(format!("tch device `{dev}` is not available"));
        }
        if case.mode != Mode::Infer {
            return Err("training mode is not implemented yet".into());
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
        let ts = inputs
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
        Ok(Box::new(TchPrepared {
            params: case.params,
            inputs: ts,
            out: None,
            device: d,
        }))
    }
}

struct TchPrepared {
    params: Params,
    inputs: Vec<Tensor>,
    out: Option<Tensor>,
    device: Device,
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
        let _guard = tch::no_grad_guard();
        let out = match &self.params {
            Params::Gemm(g) => gemm(g, &self.inputs),
            Params::Conv2d(c) => conv(c, &self.inputs),
            Params::Rnn(r) => rnn(r, &self.inputs),
        }
        .map_err(err)?;
        self.out = Some(out);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok(())
    }

    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        let out = self
            .out
            .as_ref()
            .ok_or_else(|| BackendError::failed("tch", "no call made"))?;
        let flat = out
            .f_to_kind(Kind::Float)
            .and_then(|o| o.f_flatten(0, -1))
            .map_err(err)?;
        let v = Vec::<f32>::try_from(&flat.to_device(Device::Cpu)).map_err(err)?;
        Ok(vec![v])
    }
}
