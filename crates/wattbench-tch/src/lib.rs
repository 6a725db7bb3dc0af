//! The `tch` backend: the workloads written with libtorch tensor ops through tch (module `ops`), as
//! a PyTorch user would write them; and, with the `train` feature, the whole-model trainer
//! built from the same ops.
//!
//! libtorch must be 2.11.x (tch 0.24); `scripts/fetch-libtorch.sh` fetches it. Binaries
//! that link this crate carry an rpath to libtorch's `lib/` (see `build.rs`). CUDA devices
//! (`cuda:N`) come from loading libtorch's CUDA library at run time (module `cuda`).

mod cuda;
mod ops;
#[cfg(feature = "train")]
mod train;

use tch::{Device, Kind, Tensor};
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::SGD_LR;
use wattbench_core::{Backend, BackendError, Case, DType, DeviceInfo, Mode, Params, Prepared};

/// libtorch version read from its headers at build time.
pub const LIBTORCH_VERSION: &str = env!("WATTBENCH_LIBTORCH_VERSION");

/// The tch backend.
#[derive(Default)]
pub struct TchBackend;

pub(crate) fn err(e: tch::TchError) -> BackendError {
    BackendError::failed("tch", e)
}

fn kind(d: DType) -> Kind {
    match d {
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::Bf16 => Kind::BFloat16,
    }
}

/// The libtorch device for a device name (`cpu`, `cuda:N`), or why there is none.
fn device(name: &str) -> Result<Device, String> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let index = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(n) => n
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("`{name}` is not a device name; use cpu or cuda:N"))?,
        None => return Err(format!("tch has no `{name}` device; use cpu or cuda:N")),
    };
    let count = cuda::runtime()?;
    if index >= count {
        return Err(format!(
            "no cuda:{index}: libtorch sees {count} CUDA device(s)"
        ));
    }
    Ok(Device::Cuda(index))
}

/// `data` as a tensor of `shape` and `kind` on `d`.
pub(crate) fn upload(data: &[f32], shape: &[usize], k: Kind, d: Device) -> tch::Result<Tensor> {
    let shape: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
    Tensor::f_from_slice(data)?
        .f_reshape(&shape)?
        .f_to_kind(k)?
        .f_to_device(d)
}

/// Waits for `d` (CUDA); CPU ops complete before they return.
pub(crate) fn sync(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

impl Backend for TchBackend {
    fn name(&self) -> &'static str {
        "tch"
    }

    fn devices(&self) -> Vec<DeviceInfo> {
        let mut v = vec![DeviceInfo::available("cpu")];
        match cuda::runtime() {
            Ok(n) => v.extend((0..n).map(|i| DeviceInfo::available(format!("cuda:{i}")))),
            Err(why) => v.push(DeviceInfo::unavailable("cuda:0", why)),
        }
        v
    }

    fn versions(&self) -> Vec<(String, String)> {
        vec![("libtorch".into(), LIBTORCH_VERSION.into())]
    }

    fn supports(&self, case: &Case, dev: &str) -> Result<(), String> {
        device(dev)?;
        match case.params {
            Params::Gemm(_) | Params::Conv2d(_) | Params::Rnn(_) => Ok(()),
        }
    }

    fn prepare(
        &self,
        case: &Case,
        dev: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        self.supports(case, dev)
            .map_err(BackendError::Unsupported)?;
        let d = device(dev).map_err(BackendError::Unavailable)?;
        let mut ts = inputs
            .iter()
            .map(|t| upload(&t.data, &t.shape, kind(case.dtype), d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let train = if case.mode == Mode::Train {
            let dy = ts.pop().expect("training inputs end with dy");
            let dy = dy.f_to_kind(Kind::Float).map_err(err)?;
            for i in case.params.grad_inputs() {
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

    fn trains(&self) -> bool {
        cfg!(feature = "train")
    }

    #[cfg(feature = "train")]
    fn trainer(
        &self,
        setup: &wattbench_core::model::TrainSetup<'_>,
    ) -> Result<Box<dyn wattbench_core::Trainer>, BackendError> {
        let d = device(setup.device).map_err(BackendError::Unavailable)?;
        Ok(Box::new(train::TchTrainer::new(d, setup)?))
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
    grad_inputs: Vec<usize>,
    weight_inputs: Vec<usize>,
}

fn forward(params: &Params, t: &[Tensor]) -> tch::Result<Tensor> {
    match params {
        Params::Gemm(g) => ops::gemm(g, &t[0], &t[1]),
        Params::Conv2d(c) => ops::conv2d(c, &t[0], &t[1], None),
        Params::Rnn(r) => ops::rnn(r, &t[0], &t[1], &t[2], &t[3], t.get(4)),
    }
}

/// One training step: forward, `L = Σ y·dy`, autograd backward, SGD on the weights. Returns
/// `[y, gradients…, updated weights…]` as handles, not copies (a copy of every gradient and
/// weight inside the timed call would be work no training step does): they hold this step's
/// values until the next step, and `outputs` reads them right after it.
fn train_step(params: &Params, inputs: &[Tensor], tr: &Train) -> tch::Result<Vec<Tensor>> {
    for &i in &tr.grad_inputs {
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
    for &i in &tr.grad_inputs {
        outs.push(inputs[i].grad().f_detach()?);
    }
    let _guard = tch::no_grad_guard();
    for &i in &tr.weight_inputs {
        let mut w = inputs[i].shallow_clone();
        let step = inputs[i].grad().f_mul_scalar(SGD_LR)?;
        let _ = w.f_sub_(&step)?;
        outs.push(w.f_detach()?);
    }
    Ok(outs)
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
        sync(self.device);
        Ok(())
    }

    /// On the CPU, the threads libtorch's ops use (its intra-op pool: the machine's physical
    /// cores unless `OMP_NUM_THREADS` says otherwise), which side-by-side figures depend on:
    /// candle's pool counts logical CPUs, so on a machine with SMT the two differ.
    fn implementation(&self) -> Option<String> {
        (self.device == Device::Cpu).then(|| {
            format!(
                "libtorch CPU ops, {} intra-op threads",
                tch::get_num_threads()
            )
        })
    }

    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        if self.outs.is_empty() {
            return Err(BackendError::failed("tch", "no call made"));
        }
        self.outs.iter().map(download).collect()
    }
}

/// A tensor's values on the host as f32, flattened.
pub(crate) fn download(t: &Tensor) -> Result<Vec<f32>, BackendError> {
    let flat = t
        .f_detach()
        .and_then(|t| t.f_to_kind(Kind::Float))
        .and_then(|t| t.f_flatten(0, -1))
        .and_then(|t| t.f_to_device(Device::Cpu))
        .map_err(err)?;
    Vec::<f32>::try_from(&flat).map_err(err)
}
