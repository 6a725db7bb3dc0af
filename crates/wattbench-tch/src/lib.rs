//! The `tch` backend: the workloads written with libtorch tensor ops through tch (module `ops`), as
//! a PyTorch user would write them; and, with the `train` feature, the whole-model trainer
//! built from the same ops.
//!
//! libtorch must be 2.11.x (tch 0.24); `scripts/fetch-libtorch.sh` fetches it. Binaries
//! that link this crate carry an rpath to libtorch's `lib/` (see `build.rs`). CUDA devices
//! (`cuda:N`) come from loading libtorch's CUDA library at run time (module `cuda`).

mod cuda;
mod ops;
mod torch_version;
#[cfg(feature = "train")]
mod train;

use tch::{Device, Kind, Tensor};
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::SGD_LR;
use wattbench_core::{
    Backend, BackendError, Case, DType, DeviceInfo, Mode, Params, Prepared, ToleranceOverride,
};

/// libtorch version read from its headers at build time (the one this crate was built
/// against; what a run records is the one it loaded, [`Backend::versions`]).
pub const LIBTORCH_VERSION: &str = env!("WATTBENCH_LIBTORCH_VERSION");

/// The libtorch versions a result records: the loaded library's (`loaded`: the path of the
/// `libtorch_cpu.so` this process mapped, and the version its install's headers give) as
/// `libtorch`, and the one built against beside it where the two differ or the loaded one is
/// unknown, so that a binary run against another libtorch than its build's says so.
fn recorded_versions(
    built: &str,
    loaded: Option<(&std::path::Path, Option<String>)>,
) -> Vec<(String, String)> {
    let pair = |k: &str, v: String| (k.to_string(), v);
    match loaded {
        Some((_, Some(v))) if v == built => vec![pair("libtorch", v)],
        Some((_, Some(v))) => vec![
            pair("libtorch", v),
            pair("libtorch (built against)", built.into()),
        ],
        Some((path, None)) => vec![
            pair("libtorch", format!("{built} (built against)")),
            pair(
                "libtorch (loaded)",
                format!(
                    "unknown: no version headers in the install of {}",
                    path.display()
                ),
            ),
        ],
        None => vec![pair("libtorch", format!("{built} (built against)"))],
    }
}

/// The tch backend.
#[derive(Default)]
pub struct TchBackend;

/// Whether this process has loaded libtorch's CUDA library or found it absent; the test of
/// the load order reads it. Not part of the API.
#[doc(hidden)]
pub fn cuda_probed() -> bool {
    cuda::probed()
}

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
///
/// Every entry point that goes on to run tch ops (`prepare`, `trainer`) resolves its device
/// here, so libtorch's CUDA library is loaded (or found absent) before the process's first
/// tch op, whatever the device: libtorch keeps what it finds at its first use of some
/// per-device state (its CUDA hooks, autograd's per-device threads), so CPU work run first
/// could leave CUDA unusable later in the same process.
fn device(name: &str) -> Result<Device, String> {
    let cuda = cuda::runtime();
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
    let count = cuda?;
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

/// Waits for `d` (CUDA); CPU ops complete before they return. A CUDA error reported here
/// (an earlier kernel's fault surfaces at the next synchronisation) is the case's error, not
/// a panic that ends the run: tch's `Cuda::synchronize` unwraps libtorch's error, so its two
/// C calls are made here, the error read instead of unwrapped.
pub(crate) fn sync(d: Device) -> Result<(), BackendError> {
    let Device::Cuda(i) = d else {
        return Ok(());
    };
    // SAFETY: takes a device index; libtorch catches its own exceptions and leaves their
    // message in the last-error slot, read next.
    unsafe { torch_sys::cuda::atc_synchronize(i as i64) };
    match last_torch_error() {
        None => Ok(()),
        Some(e) => Err(BackendError::failed(
            "tch",
            format!("synchronizing cuda:{i}: {}", e.lines().next().unwrap_or("")),
        )),
    }
}

/// libtorch's last error (its message, then a C++ backtrace), cleared; `None` when there is none.
fn last_torch_error() -> Option<String> {
    // SAFETY: returns null, or a malloc'ed NUL-terminated string that the caller owns: read
    // once, then freed.
    unsafe {
        let p = torch_sys::get_and_reset_last_err();
        if p.is_null() {
            return None;
        }
        let s = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
        libc::free(p.cast());
        Some(s)
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
        // `<root>/lib/libtorch_cpu.so`, whether a libtorch archive or a torch wheel's `torch/`.
        let lib = wattbench_core::libraries::find("libtorch_cpu.so");
        let version = lib
            .as_deref()
            .and_then(|l| l.parent()?.parent())
            .and_then(torch_version::of_root);
        recorded_versions(LIBTORCH_VERSION, lib.as_deref().map(|l| (l, version)))
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
                ts[i] = ts[i].f_set_requires_grad(true).map_err(err)?;
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
            dtype: case.dtype,
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
    dtype: DType,
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
/// weight inside the timed call would be work no training step does): the updated weights
/// hold this step's values until the next step, and `outputs` reads them right after it.
///
/// The gradients come from `torch::autograd::grad` (`run_backward`), fresh each step, as
/// `loss.backward()` writes them after PyTorch's `zero_grad(set_to_none=True)`: kept in the
/// inputs' `.grad` and zeroed with `zero_grad()` instead, every step after the first (the
/// verified one) would also fill each gradient with zeros and add the new one into it, two
/// passes over every gradient the timed steps would do and the verified one did not.
/// How a training step's output gradient enters libtorch's autograd, which has no way to
/// seed a backward pass with it: as the scalar Σ y·dy, whose backward is dy.
const LOSS_NOTE: &str = "the output gradient enters autograd as the scalar loss Σ y·dy (a \
    cast to f32, a product and a sum over y, and their backward, inside the timed step: work \
    the FLOP count leaves out and the cuda and cudnn steps, which take dy as it is, do not do)";

fn train_step(params: &Params, inputs: &[Tensor], tr: &Train) -> tch::Result<Vec<Tensor>> {
    let y = forward(params, inputs)?;
    let loss = y
        .f_to_kind(Kind::Float)?
        .f_mul(&tr.dy)?
        .f_sum(Kind::Float)?;
    let differentiated: Vec<&Tensor> = tr.grad_inputs.iter().map(|&i| &inputs[i]).collect();
    let grads = Tensor::f_run_backward(&[&loss], &differentiated, false, false)?;
    let mut outs = vec![y.f_detach()?];
    outs.extend(grads.iter().map(Tensor::shallow_clone));
    let _guard = tch::no_grad_guard();
    for &i in &tr.weight_inputs {
        let g = tr.grad_inputs.iter().position(|&j| j == i);
        let g = &grads[g.expect("every weight is differentiated")];
        let mut w = inputs[i].shallow_clone();
        let _ = w.f_sub_(&g.f_mul_scalar(SGD_LR)?)?;
        outs.push(w.f_detach()?);
    }
    Ok(outs)
}

impl Prepared for TchPrepared {
    /// On CUDA, cuBLAS may add a bf16 GEMM's split-K partial sums in bf16 (libtorch's
    /// `allow_bf16_reduced_precision_reduction`, on by default): the tolerance of a bf16
    /// recurrence (4e-2) rather than of a GEMM accumulated in fp32 throughout.
    fn tolerance(&self) -> Option<ToleranceOverride> {
        (matches!(self.device, Device::Cuda(_))
            && self.dtype == DType::Bf16
            && matches!(self.params, Params::Gemm(_)))
        .then(|| ToleranceOverride {
            factor: 8.0 / 3.0,
            why: "cuBLAS may add bf16 split-K partial sums in bf16 (libtorch's \
                  allow_bf16_reduced_precision_reduction, on by default)"
                .into(),
        })
    }

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
        sync(self.device)
    }

    /// On the CPU, the threads libtorch's ops use (its intra-op pool: the machine's physical
    /// cores unless `OMP_NUM_THREADS` says otherwise), which side-by-side figures depend on.
    /// On CUDA, what libtorch picks its kernels by ([`cuda::describe`]).
    /// A training step also says how its gradient enters ([`LOSS_NOTE`]).
    fn implementation(&self) -> Option<String> {
        let ops = match self.device {
            Device::Cuda(i) => cuda::describe(i, &self.params, self.dtype),
            _ => format!(
                "libtorch CPU ops, {} intra-op threads",
                tch::get_num_threads()
            ),
        };
        Some(match self.train {
            Some(_) => format!("{ops}; {LOSS_NOTE}"),
            None => ops,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The loaded libtorch's version is what a result records; the build's appears beside it
    /// only where the two differ or the loaded one is unknown.
    #[test]
    fn the_loaded_libtorch_is_recorded() {
        let so = std::path::Path::new("/opt/torch/lib/libtorch_cpu.so");
        let keys = |v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(recorded_versions(
                "2.11.0",
                Some((so, Some("2.11.0".into())))
            )),
            ["libtorch=2.11.0"]
        );
        assert_eq!(
            keys(recorded_versions(
                "2.11.0",
                Some((so, Some("2.12.1".into())))
            )),
            ["libtorch=2.12.1", "libtorch (built against)=2.11.0"]
        );
        let unknown = keys(recorded_versions("2.11.0", Some((so, None))));
        assert_eq!(unknown[0], "libtorch=2.11.0 (built against)");
        assert!(
            unknown[1].contains("/opt/torch/lib/libtorch_cpu.so"),
            "{unknown:?}"
        );
        // This test binary links the libtorch it was built against: the two agree.
        assert_eq!(
            keys(TchBackend.versions()),
            [format!("libtorch={LIBTORCH_VERSION}")]
        );
    }

    #[test]
    fn header_text_gives_the_version() {
        let h = "#define TORCH_VERSION_MAJOR 2\n#define TORCH_VERSION_MINOR 11\n#define TORCH_VERSION_PATCH 0\n";
        assert_eq!(torch_version::parse(h).as_deref(), Some("2.11.0"));
        assert_eq!(
            torch_version::parse("#define TORCH_VERSION_MAJOR 2\n"),
            None
        );
    }
    use wattbench_core::workload::GemmParams;

    /// A timed training step does the work of the verified one, no more: gradients are fresh
    /// tensors each step, never kept in the inputs' `.grad` to be zeroed and accumulated into
    /// (two more passes over every gradient, in every step after the first), so a step's
    /// gradients are not overwritten by the next step.
    #[test]
    fn training_steps_write_fresh_gradients_and_accumulate_nothing() {
        let params = Params::Gemm(GemmParams::new(3, 4, 5));
        let a = Tensor::randn([3, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let b = Tensor::randn([5, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let tr = Train {
            dy: Tensor::randn([3, 4], (Kind::Float, Device::Cpu)),
            grad_inputs: params.grad_inputs(),
            weight_inputs: params.weight_inputs(),
        };
        let inputs = [a, b];
        let first = train_step(&params, &inputs, &tr).unwrap();
        let first_db = download(&first[2]).unwrap();
        for t in &inputs {
            assert!(!t.grad().defined(), "a gradient was kept in .grad");
        }
        let second = train_step(&params, &inputs, &tr).unwrap();
        // dB = Aᵀ·dY does not depend on B: the same in both steps, and not doubled.
        assert_eq!(
            download(&first[2]).unwrap(),
            first_db,
            "step 2 overwrote step 1's dB"
        );
        assert_eq!(download(&second[2]).unwrap(), first_db);
        // dA = dY·Bᵀ does, B having moved by the first update.
        assert_ne!(download(&second[1]).unwrap(), download(&first[1]).unwrap());
    }

    /// A failed CUDA synchronisation is an error of the case, not a panic. Shown where
    /// libtorch has no CUDA device to synchronise (loaded, as always, before any CUDA call);
    /// where it has one, synchronising it succeeds.
    #[test]
    fn a_failed_cuda_synchronisation_is_an_error() {
        if cuda::runtime().is_ok() {
            sync(Device::Cuda(0)).expect("a CUDA device is there: synchronising it succeeds");
            return;
        }
        let e = sync(Device::Cuda(0)).unwrap_err().to_string();
        assert!(e.starts_with("tch failed: synchronizing cuda:0: "), "{e}");
        assert!(!e.contains("frame #") && !e.contains("unwrap"), "{e}");
        assert!(sync(Device::Cpu).is_ok());
    }
}
