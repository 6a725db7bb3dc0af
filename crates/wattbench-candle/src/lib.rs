//! The `candle` backend: the workloads written with candle-core tensor ops (module `ops`), as a
//! user of candle would write them, on candle's CPU device and, with the `cuda` feature, on its
//! CUDA devices (module `device`); and, with the `train` feature, the whole-model trainer built
//! from the same ops.

mod device;
mod ops;
#[cfg(feature = "train")]
mod train;

use candle_core::{DType as CDType, Device, DeviceLocation, Tensor, Var};
use ops::Padding;
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::{ConvParams, GemmParams, RnnParams, SGD_LR};
use wattbench_core::{
    Backend, BackendError, Case, DType, DeviceInfo, Mode, Params, Prepared, ToleranceOverride,
};

/// The candle backend.
#[derive(Default)]
pub struct CandleBackend;

/// candle errors carry a backtrace when RUST_BACKTRACE is set; keep the message only. What
/// candle says it lacks (a dtype with no kernel for an op, on the CPU or on CUDA: "unsupported
/// dtype …"; an op or backward pass "not supported"; cuBLAS's `CUBLAS_STATUS_NOT_SUPPORTED`
/// for a type combination) is "unsupported" (the case is skipped); everything else is a failure.
pub(crate) fn err(e: candle_core::Error) -> BackendError {
    let text = e.to_string();
    let msg = text.lines().next().unwrap_or("").trim().to_string();
    if msg.starts_with("unsupported dtype")
        || msg.contains(" not supported")
        || msg.contains("CUBLAS_STATUS_NOT_SUPPORTED")
    {
        BackendError::Unsupported(format!("candle-core: {msg}"))
    } else {
        BackendError::failed("candle", msg)
    }
}

/// `data` as a tensor of `shape` and `dtype` on `dev`.
pub(crate) fn upload(
    data: &[f32],
    shape: &[usize],
    dtype: CDType,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_slice(data, shape, dev)?.to_dtype(dtype)
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
        device::list()
    }

    fn supports(&self, case: &Case, dev: &str) -> Result<(), String> {
        device::check(dev)?;
        match case.params {
            Params::Conv2d(c) if c.stride_h != c.stride_w => Err(format!(
                "candle's conv2d takes one stride for both axes, not {}x{}",
                c.stride_h, c.stride_w
            )),
            // Its CPU conv2d goes through im2col and a matmul layout with no bf16 kernel
            // ("unsupported dtype BF16 for op matmul"): say it is the convolution.
            Params::Conv2d(_) if case.dtype == DType::Bf16 && dev == "cpu" => Err(
                "candle-core 0.11 has no bf16 conv2d on the CPU (its im2col path lacks a bf16 \
                 matmul there)"
                    .into(),
            ),
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
        let d = device::open(dev).map_err(BackendError::Unavailable)?;
        let dt = cdtype(case.dtype);
        let mut ts = inputs
            .iter()
            .map(|t| upload(&t.data, &t.shape, dt, &d))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(err)?;
        let train = case.mode == Mode::Train;
        let kernel = match case.params {
            Params::Gemm(g) => Kernel::Gemm(g),
            // Asymmetric padding for inference is applied once here, outside the timed region.
            Params::Conv2d(c) if c.pad_h != c.pad_w && !train => {
                ts[0] = ts[0]
                    .pad_with_zeros(2, c.pad_h, c.pad_h)
                    .and_then(|x| x.pad_with_zeros(3, c.pad_w, c.pad_w))
                    .map_err(err)?;
                Kernel::Conv(c, Padding::Applied)
            }
            Params::Conv2d(c) if train && ops::in_graph_for_training(&c) => {
                Kernel::Conv(c, Padding::InGraph)
            }
            Params::Conv2d(c) => Kernel::Conv(c, Padding::Symmetric(c.pad_h)),
            Params::Rnn(r) => Kernel::Rnn(r),
        };
        let train = if train {
            let dy = ts
                .pop()
                .expect("training inputs end with dy")
                .to_dtype(CDType::F32)
                .map_err(err)?;
            let mut vars: Vec<Option<Var>> = vec![None; ts.len()];
            // An RNN's input projection `xp` (input 0) is differentiated step by step.
            let xp_steps = match &kernel {
                Kernel::Rnn(_) => ops::steps(&ts[0])
                    .and_then(|xs| xs.iter().map(Var::from_tensor).collect())
                    .map_err(err)?,
                _ => Vec::new(),
            };
            for i in case.params.grad_inputs() {
                if i == 0 && !xp_steps.is_empty() {
                    continue;
                }
                vars[i] = Some(Var::from_tensor(&ts[i]).map_err(err)?);
            }
            Some(Train {
                dy,
                vars,
                xp_steps,
                grad_inputs: case.params.grad_inputs(),
                weight_inputs: case.params.weight_inputs(),
            })
        } else {
            None
        };
        Ok(Box::new(CandlePrepared {
            device: d,
            kernel,
            dtype: case.dtype,
            train_mode: case.mode == Mode::Train,
            inputs: ts,
            train,
            outs: Vec::new(),
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
        let d = device::open(setup.device).map_err(BackendError::Unavailable)?;
        Ok(Box::new(train::CandleTrainer::new(d, setup)?))
    }
}

enum Kernel {
    Gemm(GemmParams),
    Conv(ConvParams, Padding),
    Rnn(RnnParams),
}

/// Training state: the upstream gradient and the inputs that are differentiated (an RNN's
/// `xp` as one variable per step, in `xp_steps`).
struct Train {
    dy: Tensor,
    vars: Vec<Option<Var>>,
    xp_steps: Vec<Var>,
    grad_inputs: Vec<usize>,
    weight_inputs: Vec<usize>,
}

struct CandlePrepared {
    device: Device,
    kernel: Kernel,
    dtype: DType,
    train_mode: bool,
    inputs: Vec<Tensor>,
    train: Option<Train>,
    outs: Vec<Tensor>,
}

fn forward(kernel: &Kernel, t: &[Tensor]) -> candle_core::Result<Tensor> {
    match kernel {
        Kernel::Gemm(g) => ops::gemm(g, &t[0], &t[1]),
        Kernel::Conv(c, pad) => ops::conv2d(c, *pad, &t[0], &t[1]),
        Kernel::Rnn(r) => ops::rnn(r, &ops::steps(&t[0])?, &t[1], &t[2], &t[3], t.get(4)),
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
    let xs: Vec<Tensor> = tr.xp_steps.iter().map(|v| v.as_tensor().clone()).collect();
    let y = match kernel {
        Kernel::Rnn(r) if !xs.is_empty() => ops::rnn(
            r,
            &xs,
            &current[1],
            &current[2],
            &current[3],
            current.get(4),
        )?,
        _ => forward(kernel, &current)?,
    };
    let loss = y.to_dtype(CDType::F32)?.mul(&tr.dy)?.sum_all()?;
    let grads = loss.backward()?;
    let of = |t: &Tensor, i: usize| {
        grads
            .get(t)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("no gradient for input {i}")))
    };
    let grad = |i: usize| -> candle_core::Result<Tensor> {
        if i == 0 && !xs.is_empty() {
            let steps = xs
                .iter()
                .map(|x| of(x, i))
                .collect::<candle_core::Result<Vec<_>>>()?;
            return Tensor::stack(&steps, 0);
        }
        of(
            tr.vars[i]
                .as_ref()
                .expect("differentiated input")
                .as_tensor(),
            i,
        )
    };
    let mut outs = vec![y.detach()];
    for &i in &tr.grad_inputs {
        outs.push(grad(i)?);
    }
    for &i in &tr.weight_inputs {
        let v = tr.vars[i].as_ref().expect("weights are differentiated");
        let updated = (v.as_tensor().detach() - (grad(i)? * SGD_LR)?)?;
        v.set(&updated)?;
        outs.push(updated);
    }
    Ok(outs)
}

/// What runs a case, for its result. On the CPU, the threads candle's ops use, which
/// side-by-side figures depend on: its matmuls split into `RAYON_NUM_THREADS` tasks (else
/// candle-core 0.11's default, the physical cores, or the CPUs `CANDLE_CPU_MASK` names), its
/// elementwise ops run on a pool of `CANDLE_NUM_THREADS` (else the same) threads; and that its
/// bf16 matmuls are f32 ones there (it has no bf16 GEMM kernel on the CPU: it widens both
/// operands to f32 in every call and rounds the product back, all inside the timed call). On
/// CUDA, the compute type its cuBLAS GEMMs ask for (reduced precision: TF32 for f32, fp16
/// accumulation for f16, only where candle's per-dtype flag allows it; off by default) and
/// how it convolves (its own kernels: this build has no cuDNN).
fn describe(device: &Device, kernel: &Kernel, dtype: DType, train: bool) -> String {
    let mut s = on_device(device, kernel, dtype, train);
    // Work the training step does that its FLOP count leaves out.
    if train {
        s += "; the output gradient enters autograd as the scalar loss Σ y·dy (a cast to f32, \
              a product and a sum over y, and their backward, which here also computes the \
              unused gradient of dy, inside the timed step: work the FLOP count leaves out and \
              the cuda and cudnn steps, which take dy as it is, do not do)";
    }
    match kernel {
        Kernel::Conv(_, Padding::Applied) => {
            s += "; its asymmetric padding applied to the input once, outside the timed call \
                  (candle pads both sides of an axis alike), so each call reads the padded input"
        }
        Kernel::Conv(_, Padding::InGraph) if train => {
            s += "; padding applied in the graph (zero-pad, then the extent the windows reach \
                  sliced) inside the timed step, with its backward"
        }
        Kernel::Rnn(_) if train => {
            s += "; its matmul backward also computes the constant initial state's gradient \
                  (one dgates·Wᵀ more than the FLOP count has)"
        }
        _ => {}
    }
    s
}

/// [`describe`]'s part that depends on the device.
fn on_device(device: &Device, kernel: &Kernel, dtype: DType, train: bool) -> String {
    match device.location() {
        DeviceLocation::Cpu => {
            let gemm = candle_core::utils::get_num_threads();
            let elementwise = candle_core::utils::barrier_pool().n_workers() + 1;
            let mut s = format!("candle CPU ops, {gemm} threads");
            if elementwise != gemm {
                s += &format!(" ({elementwise} for elementwise ops, CANDLE_NUM_THREADS)");
            }
            if dtype == DType::Bf16 {
                s += "; bf16 matmuls computed as f32 ones (candle-core 0.11 has no bf16 GEMM on \
                      the CPU: it widens both operands to f32 and rounds the product to bf16)";
            }
            s
        }
        DeviceLocation::Cuda { gpu_id } => {
            use candle_core::cuda::{
                gemm_reduced_precision_bf16, gemm_reduced_precision_f16, gemm_reduced_precision_f32,
            };
            let (reduced, what) = match dtype {
                DType::F32 => (gemm_reduced_precision_f32(), "TF32"),
                DType::F16 => (gemm_reduced_precision_f16(), "fp16 accumulation"),
                DType::Bf16 => (
                    gemm_reduced_precision_bf16(),
                    "CUBLAS_COMPUTE_32F_FAST_16BF",
                ),
            };
            let gemm = if reduced {
                format!(
                    "cuBLAS GEMMs in reduced precision ({what}: candle's reduced-precision flag \
                     for {} is on)",
                    dtype.as_str()
                )
            } else {
                format!(
                    "cuBLAS GEMMs with fp32 compute (candle's reduced-precision flag for {} is \
                     off){}",
                    dtype.as_str(),
                    if dtype == DType::F32 {
                        ""
                    } else {
                        "; split-K sums may be reduced in f16/bf16 (candle leaves cuBLAS's \
                         default math mode, which allows it)"
                    }
                )
            };
            let conv = match kernel {
                Kernel::Conv(..) if train => {
                    "; convolution by candle's im2col kernel and a cuBLAS GEMM, its input \
                     gradient by candle's direct transposed-convolution kernel"
                }
                Kernel::Conv(..) => "; convolution by candle's im2col kernel and a cuBLAS GEMM",
                _ => "",
            };
            format!("candle CUDA ops on cuda:{gpu_id}: {gemm}{conv}")
        }
        DeviceLocation::Metal { gpu_id } => format!("candle Metal ops on metal:{gpu_id}"),
    }
}

impl Prepared for CandlePrepared {
    /// On CUDA, candle leaves cuBLAS's default math mode, which may add a bf16 GEMM's (and its
    /// im2col convolution's) split-K partial sums in bf16: the tolerance of a bf16 recurrence
    /// (4e-2) rather than of a product accumulated in fp32 throughout.
    fn tolerance(&self) -> Option<ToleranceOverride> {
        (self.device.is_cuda()
            && self.dtype == DType::Bf16
            && matches!(self.kernel, Kernel::Gemm(_) | Kernel::Conv(..)))
        .then(|| ToleranceOverride {
            factor: 8.0 / 3.0,
            why: "cuBLAS may add bf16 split-K partial sums in bf16 (candle leaves its default \
                  math mode)"
                .into(),
        })
    }

    fn execute(&mut self) -> Result<(), BackendError> {
        self.outs = match &self.train {
            None => vec![forward(&self.kernel, &self.inputs).map_err(err)?],
            Some(tr) => train_step(&self.kernel, &self.inputs, tr).map_err(err)?,
        };
        Ok(())
    }

    fn sync(&mut self) -> Result<(), BackendError> {
        // A no-op on the CPU (ops complete before they return); waits for the stream on CUDA.
        self.device.synchronize().map_err(err)
    }

    fn implementation(&self) -> Option<String> {
        Some(describe(
            &self.device,
            &self.kernel,
            self.dtype,
            self.train_mode,
        ))
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
