//! `cudnn`: conv2d in fp32 on cuDNN's convolution API, the yardstick for our implicit-GEMM
//! kernels. Inference is `cudnnConvolutionForward`; a training step is forward,
//! `cudnnConvolutionBackwardData`, `cudnnConvolutionBackwardFilter`, then the SGD update
//! `w -= SGD_LR·dw` with `cublasSaxpy` (so the whole step is vendor code; our SGD kernel would
//! drag NVRTC into this backend for one line of arithmetic), the weights updated in place so
//! the next call starts from them. Outputs as `Case::output_specs` orders them: `[y]`, or
//! `[y, dx, dw, w_new]`.
//!
//! # Math
//! The convolution descriptor is set to `CUDNN_FMA_MATH` and never changed: FP32 FMA kernels
//! only, no TF32 tensor cores, so cuDNN computes what our fp32 kernels compute.
//!
//! # Algorithm policy
//! Once per case, when it is prepared (not timed), for each direction the call runs (forward;
//! in training also backward-data and backward-filter):
//! 1. ask cuDNN for the workspace each algorithm of the direction needs with these
//!    descriptors (`cudnnGet*WorkspaceSize`); an algorithm it refuses, or that needs more than
//!    [`WORKSPACE_LIMIT`] (1 GiB), is out;
//! 2. time every algorithm on the case's own inputs with `cudnnFind*AlgorithmEx` (what
//!    PyTorch's `cudnn.benchmark` does), writing into scratch outputs so that the case's
//!    NaN-poisoned outputs stay poisoned until its first call;
//! 3. keep the results with status SUCCESS, an algorithm from step 1 and the FMA math type:
//!    those reported as `CUDNN_FMA_MATH`, or, only when none is, as `CUDNN_DEFAULT_MATH` (a
//!    search may report the variants of each math type whatever the descriptor says; what
//!    runs is the FMA descriptor's). DEFAULT math is not "without tensor cores": on Ampere and
//!    newer it allows TF32 for fp32 unless `NVIDIA_TF32_OVERRIDE=0` (which the CLI sets
//!    unless it is set), so a DEFAULT-math time may be a TF32 kernel's; the algorithm then
//!    runs with the FMA descriptor, and the case's implementation says `(timed under DEFAULT
//!    math)`;
//! 4. take the fastest (least measured time).
//!
//! Should the timed search fail, or leave no algorithm, cuDNN's heuristic ranking
//! (`cudnnGet*Algorithm_v7`) stands in: steps 3 and 4 on that list, in its order; the case
//! then records `(heuristic)` after that algorithm.
//!
//! One workspace, the largest the chosen algorithms need, serves every call of the step (they
//! run in order on one stream). The case records what ran ([`Prepared::implementation`]), e.g.
//! `cudnn fwd IMPLICIT_PRECOMP_GEMM, bwd-data ALGO_1, bwd-filter ALGO_1, sgd cublasSaxpy,
//! fp32 FMA math, workspace 12.5 MiB`.
//!
//! The limit keeps the yardstick's memory within reason next to our kernels, which need no
//! workspace: 1 GiB is under 1 % of an H200, ample for the GEMM family, FFT_TILING and
//! Winograd at layer sizes like ResNet's, and shuts out mainly the untiled FFT on large layers
//! and batches, whose workspace holds the transform of the whole batch. The recorded workspace
//! shows what the chosen algorithms use.
//!
//! # Tolerance per algorithm class
//! The case's default tolerance is a relative L2 error of 1e-4 in fp32.
//!
//! | class | algorithms | factor | why |
//! | --- | --- | --- | --- |
//! | GEMM / direct | forward IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM, DIRECT; backward ALGO_0, ALGO_1, filter ALGO_3 | 1 (no override) | the reference's products, summed in another order: fp32 rounding |
//! | FFT | FFT, FFT_TILING | 10 | products in the frequency domain: transform rounding scales with the norms of whole tiles rather than of each output, grows with the transform size, and the filter gradient sums the batch in that domain |
//! | Winograd | WINOGRAD, WINOGRAD_NONFUSED | 10 | the input, filter and output transforms have entries far from 1 (up to 5 and 8 in F(4x4,3x3), more on larger tiles), which amplifies rounding |
//!
//! In fp32 both classes land about 1e-5 to 1e-3 away from the reference (the high end on large
//! tiles and long reductions), more than fp32 rounding of a direct sum; 10x gives 1e-3, the top
//! of that band, still two to three orders of magnitude below the error of a wrong
//! convolution (a padding, stride or layout mistake is off by 0.1 to 1). The override is the
//! largest factor among the algorithms a call runs, and its reason names them.
use super::cublas::Saxpy;
use super::{prepare_library, probe_cublas, probe_cudnn};
use crate::backend::{common_supports, versions, Lib};
use crate::device::{operand, DevBuf, DeviceCall};
use crate::error::CudaError;
use crate::gpu::{device_infos, Gpu};
use crate::plan::View;
use cudarc::cudnn::result as cudnn_result;
use cudarc::cudnn::sys as cds;
use cudarc::driver::{CudaSlice, DevicePtr};
use std::ffi::c_void;
use wattbench_core::tensor::HostTensor;
use wattbench_core::units::mib;
use wattbench_core::workload::{ConvParams, SGD_LR};
use wattbench_core::{
    Backend, BackendError, Case, DType, DeviceInfo, Mode, Op, Params, Prepared, ToleranceOverride,
};

/// The most workspace one chosen algorithm may use (see the module doc).
pub(crate) const WORKSPACE_LIMIT: usize = 1 << 30;

/// cuDNN conv2d: forward, and training steps.
#[derive(Default)]
pub struct Cudnn;

fn lib<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> CudaError {
    move |e| CudaError::lib(what, e)
}

/// The directions of a convolution a call can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// `y = conv(x, w)`.
    Fwd,
    /// `dx` from `w` and `dy`.
    BwdData,
    /// `dw` from `x` and `dy`.
    BwdFilter,
}

impl Dir {
    /// As the implementation string names it.
    fn label(self) -> &'static str {
        match self {
            Dir::Fwd => "fwd",
            Dir::BwdData => "bwd-data",
            Dir::BwdFilter => "bwd-filter",
        }
    }
}

/// Algorithm families by their numerics (see the module doc's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Implicit/explicit GEMM and direct: fp32 rounding only.
    Gemm,
    /// FFT and FFT_TILING.
    Fft,
    /// WINOGRAD and WINOGRAD_NONFUSED.
    Winograd,
}

impl Class {
    /// How much looser than the case's default tolerance this class is checked.
    fn tolerance_factor(self) -> Option<f64> {
        match self {
            Class::Gemm => None,
            Class::Fft | Class::Winograd => Some(10.0),
        }
    }
}

use cds::cudnnConvolutionBwdDataAlgo_t as BwdDataAlgo;
use cds::cudnnConvolutionBwdFilterAlgo_t as BwdFilterAlgo;
use cds::cudnnConvolutionFwdAlgo_t as FwdAlgo;

/// Every forward algorithm.
const FWD_ALGOS: [FwdAlgo; 8] = [
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_DIRECT,
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_FFT,
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
    FwdAlgo::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
];

/// Every backward-data algorithm.
const BWD_DATA_ALGOS: [BwdDataAlgo; 6] = [
    BwdDataAlgo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
    BwdDataAlgo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
    BwdDataAlgo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT,
    BwdDataAlgo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING,
    BwdDataAlgo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD,
    BwdDataAlgo::CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED,
];

/// Every backward-filter algorithm.
const BWD_FILTER_ALGOS: [BwdFilterAlgo; 7] = [
    BwdFilterAlgo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
    BwdFilterAlgo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
    BwdFilterAlgo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT,
    BwdFilterAlgo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3,
    BwdFilterAlgo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD,
    BwdFilterAlgo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED,
    BwdFilterAlgo::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING,
];

/// One algorithm of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algo {
    Fwd(FwdAlgo),
    BwdData(BwdDataAlgo),
    BwdFilter(BwdFilterAlgo),
}

impl Algo {
    /// Every algorithm of `dir`.
    fn all(dir: Dir) -> Vec<Algo> {
        match dir {
            Dir::Fwd => FWD_ALGOS.map(Algo::Fwd).to_vec(),
            Dir::BwdData => BWD_DATA_ALGOS.map(Algo::BwdData).to_vec(),
            Dir::BwdFilter => BWD_FILTER_ALGOS.map(Algo::BwdFilter).to_vec(),
        }
    }

    /// The algorithm of `dir` with cuDNN's value `raw`, if the bindings know it.
    fn from_raw(dir: Dir, raw: u32) -> Option<Algo> {
        Self::all(dir).into_iter().find(|a| a.raw() == raw)
    }

    fn dir(self) -> Dir {
        match self {
            Algo::Fwd(_) => Dir::Fwd,
            Algo::BwdData(_) => Dir::BwdData,
            Algo::BwdFilter(_) => Dir::BwdFilter,
        }
    }

    /// cuDNN's value.
    fn raw(self) -> u32 {
        match self {
            Algo::Fwd(a) => a as u32,
            Algo::BwdData(a) => a as u32,
            Algo::BwdFilter(a) => a as u32,
        }
    }

    /// cuDNN's name without the `CUDNN_CONVOLUTION_<direction>_[ALGO_]` prefix (numbered
    /// algorithms keep `ALGO_`).
    fn name(self) -> &'static str {
        use BwdDataAlgo as D;
        use BwdFilterAlgo as W;
        use FwdAlgo as F;
        match self {
            Algo::Fwd(a) => match a {
                F::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM => "IMPLICIT_GEMM",
                F::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM => "IMPLICIT_PRECOMP_GEMM",
                F::CUDNN_CONVOLUTION_FWD_ALGO_GEMM => "GEMM",
                F::CUDNN_CONVOLUTION_FWD_ALGO_DIRECT => "DIRECT",
                F::CUDNN_CONVOLUTION_FWD_ALGO_FFT => "FFT",
                F::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING => "FFT_TILING",
                F::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD => "WINOGRAD",
                F::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED => "WINOGRAD_NONFUSED",
                F::CUDNN_CONVOLUTION_FWD_ALGO_COUNT => "COUNT",
            },
            Algo::BwdData(a) => match a {
                D::CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 => "ALGO_0",
                D::CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 => "ALGO_1",
                D::CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT => "FFT",
                D::CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING => "FFT_TILING",
                D::CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD => "WINOGRAD",
                D::CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED => "WINOGRAD_NONFUSED",
                D::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT => "COUNT",
            },
            Algo::BwdFilter(a) => match a {
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 => "ALGO_0",
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 => "ALGO_1",
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT => "FFT",
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3 => "ALGO_3",
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD => "WINOGRAD",
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED => "WINOGRAD_NONFUSED",
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING => "FFT_TILING",
                W::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT => "COUNT",
            },
        }
    }

    fn class(self) -> Class {
        let n = self.name();
        if n.starts_with("FFT") {
            Class::Fft
        } else if n.starts_with("WINOGRAD") {
            Class::Winograd
        } else {
            Class::Gemm
        }
    }
}

/// One result of an algorithm search: the layout of cuDNN's `cudnnConvolution*AlgoPerf_t`
/// (the three are the same, checked below at compile time), with plain integers where those
/// have enums, so that a value the bindings do not list (a newer cuDNN's status, algorithm or
/// math type) is data to skip rather than an invalid enum.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct RawPerf {
    algo: u32,
    status: u32,
    /// Milliseconds (measured by a Find; -1 or unset from the heuristics).
    time: f32,
    memory: usize,
    determinism: u32,
    math_type: u32,
    reserved: [i32; 3],
}

macro_rules! same_layout_as_raw_perf {
    ($($t:ty),*) => {$(
        const _: () = {
            use std::mem::{align_of, offset_of, size_of};
            assert!(size_of::<RawPerf>() == size_of::<$t>());
            assert!(align_of::<RawPerf>() == align_of::<$t>());
            assert!(offset_of!(RawPerf, algo) == offset_of!($t, algo));
            assert!(offset_of!(RawPerf, status) == offset_of!($t, status));
            assert!(offset_of!(RawPerf, time) == offset_of!($t, time));
            assert!(offset_of!(RawPerf, memory) == offset_of!($t, memory));
            assert!(offset_of!(RawPerf, determinism) == offset_of!($t, determinism));
            assert!(offset_of!(RawPerf, math_type) == offset_of!($t, mathType));
            assert!(offset_of!(RawPerf, reserved) == offset_of!($t, reserved));
            assert!(size_of::<cds::cudnnStatus_t>() == 4 && size_of::<cds::cudnnMathType_t>() == 4);
        };
    )*};
}
same_layout_as_raw_perf!(
    cds::cudnnConvolutionFwdAlgoPerf_t,
    cds::cudnnConvolutionBwdDataAlgoPerf_t,
    cds::cudnnConvolutionBwdFilterAlgoPerf_t
);

/// The algorithm a direction runs, its workspace, and whether it was timed (else the
/// heuristics' first).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Choice {
    algo: Algo,
    workspace: usize,
    timed: bool,
    /// Found among the DEFAULT-math results (no FMA one qualified): its time may be a TF32
    /// kernel's, though it runs with FMA math.
    default_math: bool,
}

/// Steps 3 and 4 of the policy: from the results `perf` of a search of `dir` (`timed`: a Find,
/// else the heuristics), the fastest with status SUCCESS, FMA math (DEFAULT only when no FMA
/// result qualifies) and a `workspace` within the limit (`None`: cuDNN refused the algorithm
/// with these descriptors).
fn pick(
    dir: Dir,
    perf: &[RawPerf],
    timed: bool,
    workspace: impl Fn(Algo) -> Option<usize>,
) -> Option<Choice> {
    let ok = cds::cudnnStatus_t::CUDNN_STATUS_SUCCESS as u32;
    let mut order: Vec<&RawPerf> = perf.iter().collect();
    if timed {
        let key = |p: &RawPerf| {
            if p.time.is_finite() && p.time >= 0.0 {
                p.time
            } else {
                f32::INFINITY
            }
        };
        order.sort_by(|a, b| key(a).total_cmp(&key(b)));
    }
    let maths = [
        cds::cudnnMathType_t::CUDNN_FMA_MATH,
        cds::cudnnMathType_t::CUDNN_DEFAULT_MATH,
    ];
    maths.into_iter().find_map(|math| {
        order.iter().find_map(|p| {
            if p.status != ok || p.math_type != math as u32 {
                return None;
            }
            let algo = Algo::from_raw(dir, p.algo)?;
            let ws = workspace(algo).filter(|&w| w <= WORKSPACE_LIMIT)?;
            Some(Choice {
                algo,
                workspace: ws,
                timed,
                default_math: math == cds::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            })
        })
    })
}

/// What a call of `chosen` (plus the SGD update in training) records as its implementation.
fn describe(chosen: &[Choice], sgd: bool) -> String {
    let mut parts: Vec<String> = chosen
        .iter()
        .map(|c| {
            let how = if c.timed { "" } else { " (heuristic)" };
            let math = if c.default_math {
                " (timed under DEFAULT math)"
            } else {
                ""
            };
            format!("{} {}{how}{math}", c.algo.dir().label(), c.algo.name())
        })
        .collect();
    if sgd {
        parts.push("sgd cublasSaxpy".into());
    }
    parts.push("fp32 FMA math".into());
    let ws = chosen.iter().map(|c| c.workspace).max().unwrap_or(0);
    parts.push(format!("workspace {}", mib(ws as u64)));
    format!("cudnn {}", parts.join(", "))
}

/// The tolerance `chosen` needs: the largest factor of their classes, naming the algorithms
/// that need it; `None` when every one is of the GEMM/direct family.
fn tolerance_for(chosen: &[Choice]) -> Option<ToleranceOverride> {
    let loose: Vec<(f64, String)> = chosen
        .iter()
        .filter_map(|c| {
            let f = c.algo.class().tolerance_factor()?;
            Some((f, format!("{} {}", c.algo.dir().label(), c.algo.name())))
        })
        .collect();
    let factor = loose.iter().map(|(f, _)| *f).reduce(f64::max)?;
    let names: Vec<&str> = loose.iter().map(|(_, n)| n.as_str()).collect();
    Some(ToleranceOverride {
        factor,
        why: format!(
            "cuDNN {} computes in a transformed domain (FFT or Winograd), whose fp32 rounding \
             exceeds a direct sum's (about 1e-5 to 1e-3 relative)",
            names.join(", ")
        ),
    })
}

macro_rules! owned {
    ($(#[$doc:meta] $name:ident($raw:ty) by $destroy:path;)*) => {$(
        #[$doc]
        struct $name($raw);
        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: a wrapper is made only from the successful create call of this kind
                // of object, and destroys it once, here. A failure only leaks it.
                let _ = unsafe { $destroy(self.0) };
            }
        }
    )*};
}

owned! {
    /// A cuDNN handle.
    Handle(cds::cudnnHandle_t) by cds::cudnnDestroy;
    /// A tensor descriptor.
    TensorDesc(cds::cudnnTensorDescriptor_t) by cds::cudnnDestroyTensorDescriptor;
    /// A filter descriptor.
    FilterDesc(cds::cudnnFilterDescriptor_t) by cds::cudnnDestroyFilterDescriptor;
    /// A convolution descriptor.
    ConvDesc(cds::cudnnConvolutionDescriptor_t) by cds::cudnnDestroyConvolutionDescriptor;
}

/// Device addresses of one direction's operands: its two inputs and its output.
///
/// | direction | `a` | `b` | `out` |
/// | --- | --- | --- | --- |
/// | forward | x | w | y |
/// | backward-data | w | dy | dx |
/// | backward-filter | x | dy | dw |
#[derive(Clone, Copy, Debug)]
struct Operands {
    a: u64,
    b: u64,
    out: u64,
}

/// A workspace's address and size in bytes (`(0, 0)`: none).
type Workspace = (u64, usize);

/// The descriptors of one NCHW fp32 conv2d: `x` also describes `dx`, `w` also `dw`, `y` also
/// `dy`; `conv` is set to FMA math. Made and checked on the host (no handle, no GPU).
struct Descs {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    conv: ConvDesc,
}

/// cuDNN's handle, on the GPU's stream, and the descriptors of the case's conv2d.
struct ConvDescs {
    handle: Handle,
    d: Descs,
}

fn int(v: usize) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::lib("cuDNN descriptors", format!("{v} over 2^31-1")))
}

impl Descs {
    /// The descriptors of `c`, after checking that cuDNN computes the output shape our
    /// buffers hold (`[N, K, P, Q]`).
    fn new(c: &ConvParams) -> Result<Self, CudaError> {
        let dims = |d: [usize; 4]| -> Result<[i32; 4], CudaError> {
            Ok([int(d[0])?, int(d[1])?, int(d[2])?, int(d[3])?])
        };
        let nchw = cds::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let float = cds::cudnnDataType_t::CUDNN_DATA_FLOAT;
        let tensor = |d: [usize; 4]| -> Result<TensorDesc, CudaError> {
            let t = TensorDesc(
                cudnn_result::create_tensor_descriptor()
                    .map_err(lib("cudnnCreateTensorDescriptor"))?,
            );
            // SAFETY: a live descriptor just created.
            unsafe { cudnn_result::set_tensor4d_descriptor(t.0, nchw, float, dims(d)?) }
                .map_err(lib("cudnnSetTensor4dDescriptor"))?;
            Ok(t)
        };
        let x = tensor([c.n, c.c, c.h, c.w])?;
        let y = tensor([c.n, c.k, c.p(), c.q()])?;
        let w = FilterDesc(
            cudnn_result::create_filter_descriptor().map_err(lib("cudnnCreateFilterDescriptor"))?,
        );
        // SAFETY: a live descriptor just created.
        unsafe {
            cudnn_result::set_filter4d_descriptor(w.0, float, nchw, dims([c.k, c.c, c.r, c.s])?)
        }
        .map_err(lib("cudnnSetFilter4dDescriptor"))?;
        let conv = ConvDesc(
            cudnn_result::create_convolution_descriptor()
                .map_err(lib("cudnnCreateConvolutionDescriptor"))?,
        );
        // SAFETY: a live descriptor just created. Symmetric padding per dimension, strides, no
        // dilation, cross-correlation (the reference's conv), fp32 compute.
        unsafe {
            cudnn_result::set_convolution2d_descriptor(
                conv.0,
                int(c.pad_h)?,
                int(c.pad_w)?,
                int(c.stride_h)?,
                int(c.stride_w)?,
                1,
                1,
                cds::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                float,
            )
        }
        .map_err(lib("cudnnSetConvolution2dDescriptor"))?;
        // SAFETY: as above. FMA math: no TF32 tensor cores (see the module doc).
        unsafe {
            cudnn_result::set_convolution_math_type(conv.0, cds::cudnnMathType_t::CUDNN_FMA_MATH)
        }
        .map_err(lib("cudnnSetConvolutionMathType"))?;
        let d = Descs { x, w, y, conv };
        // cuDNN's own output shape must be the one our buffers hold.
        let (mut n, mut k, mut p, mut q) = (0, 0, 0, 0);
        // SAFETY: live descriptors; four valid out-pointers.
        unsafe {
            cds::cudnnGetConvolution2dForwardOutputDim(
                d.conv.0, d.x.0, d.w.0, &mut n, &mut k, &mut p, &mut q,
            )
        }
        .result()
        .map_err(lib("cudnnGetConvolution2dForwardOutputDim"))?;
        if [n, k, p, q] != dims([c.n, c.k, c.p(), c.q()])? {
            return Err(CudaError::lib(
                "cuDNN descriptors",
                format!("cuDNN's output is {:?} for {c:?}", [n, k, p, q]),
            ));
        }
        Ok(d)
    }
}

impl ConvDescs {
    /// A handle on `g`'s stream, and the descriptors of `c`.
    fn new(g: &Gpu, c: &ConvParams) -> Result<Self, CudaError> {
        let d = Descs::new(c)?;
        g.bind()?;
        let handle = Handle(cudnn_result::create_handle().map_err(lib("cudnnCreate"))?);
        // SAFETY: a live handle; the stream is the GPU's, which outlives every case (the GPU
        // table keeps it for the process).
        unsafe { cudnn_result::set_stream(handle.0, g.stream.cu_stream() as cds::cudaStream_t) }
            .map_err(lib("cudnnSetStream"))?;
        Ok(Self { handle, d })
    }

    /// The raw handle and descriptors: handle, x, w, y, conv.
    #[allow(clippy::type_complexity)]
    fn raw(
        &self,
    ) -> (
        cds::cudnnHandle_t,
        cds::cudnnTensorDescriptor_t,
        cds::cudnnFilterDescriptor_t,
        cds::cudnnTensorDescriptor_t,
        cds::cudnnConvolutionDescriptor_t,
    ) {
        let d = &self.d;
        (self.handle.0, d.x.0, d.w.0, d.y.0, d.conv.0)
    }

    /// How many results a search of `dir` can return.
    fn max_count(&self, dir: Dir) -> Result<i32, CudaError> {
        let h = self.handle.0;
        let mut n = 0;
        // SAFETY: a live handle; `n` is valid for writes.
        let r = unsafe {
            match dir {
                Dir::Fwd => cds::cudnnGetConvolutionForwardAlgorithmMaxCount(h, &mut n),
                Dir::BwdData => cds::cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &mut n),
                Dir::BwdFilter => {
                    cds::cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &mut n)
                }
            }
        };
        r.result()
            .map_err(lib("cudnnGetConvolution*AlgorithmMaxCount"))?;
        Ok(n.max(0))
    }

    /// The workspace `algo` needs with these descriptors, or cuDNN's refusal.
    fn workspace(&self, algo: Algo) -> Result<usize, cudnn_result::CudnnError> {
        let (h, x, w, y, conv) = self.raw();
        let mut size = 0usize;
        // SAFETY: a live handle and descriptors, in each function's order (forward: x, w,
        // conv, y; backward-data: w, dy, conv, dx; backward-filter: x, dy, conv, dw); `size`
        // is valid for writes.
        let r = unsafe {
            match algo {
                Algo::Fwd(a) => {
                    cds::cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, a, &mut size)
                }
                Algo::BwdData(a) => cds::cudnnGetConvolutionBackwardDataWorkspaceSize(
                    h, w, y, conv, x, a, &mut size,
                ),
                Algo::BwdFilter(a) => cds::cudnnGetConvolutionBackwardFilterWorkspaceSize(
                    h, x, y, conv, w, a, &mut size,
                ),
            }
        };
        r.result().map(|()| size)
    }

    /// cuDNN's heuristic ranking of the algorithms of `dir` (`cudnnGet*Algorithm_v7`).
    fn heuristic(&self, dir: Dir) -> Result<Vec<RawPerf>, CudaError> {
        let (h, x, w, y, conv) = self.raw();
        let req = self.max_count(dir)?;
        let mut perf = vec![RawPerf::default(); req as usize];
        let mut got = 0;
        let out = perf.as_mut_ptr();
        // SAFETY: a live handle and descriptors in each function's order (as in
        // `workspace`); `perf` has room for `req` results of the perf structs' layout
        // (`RawPerf`, checked at compile time), `got` is valid for writes.
        let r = unsafe {
            match dir {
                Dir::Fwd => cds::cudnnGetConvolutionForwardAlgorithm_v7(
                    h,
                    x,
                    w,
                    conv,
                    y,
                    req,
                    &mut got,
                    out.cast(),
                ),
                Dir::BwdData => cds::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                    h,
                    w,
                    y,
                    conv,
                    x,
                    req,
                    &mut got,
                    out.cast(),
                ),
                Dir::BwdFilter => cds::cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                    h,
                    x,
                    y,
                    conv,
                    w,
                    req,
                    &mut got,
                    out.cast(),
                ),
            }
        };
        r.result()
            .map_err(lib("cudnnGetConvolution*Algorithm_v7"))?;
        perf.truncate(got.clamp(0, req) as usize);
        Ok(perf)
    }

    /// Every algorithm of `dir` run and timed on `ops` (`cudnnFind*AlgorithmEx`), fastest
    /// first.
    ///
    /// # Safety
    /// `ops` must be the addresses of live f32 buffers holding exactly the tensors the
    /// descriptors describe for `dir` (see [`Operands`]); the search writes `ops.out`. `ws`
    /// must be a live allocation of `ws.1` bytes, or `(0, 0)`.
    unsafe fn find(
        &self,
        dir: Dir,
        ops: Operands,
        (ws, ws_bytes): Workspace,
    ) -> Result<Vec<RawPerf>, CudaError> {
        let (h, x, w, y, conv) = self.raw();
        let (a, b, o) = (
            ops.a as *const c_void,
            ops.b as *const c_void,
            ops.out as *mut c_void,
        );
        let wsp = ws as *mut c_void;
        let req = self.max_count(dir)?;
        let mut perf = vec![RawPerf::default(); req as usize];
        let mut got = 0;
        let out = perf.as_mut_ptr();
        // SAFETY: a live handle and descriptors, each function given (descriptor, data) pairs
        // in its order (forward: x, w, conv, y; backward-data: w, dy, conv, dx;
        // backward-filter: x, dy, conv, dw), with the data as the caller guarantees; `perf`
        // has room for `req` results of the perf structs' layout (`RawPerf`, checked at
        // compile time); `got` is valid for writes.
        let r = unsafe {
            match dir {
                Dir::Fwd => cds::cudnnFindConvolutionForwardAlgorithmEx(
                    h,
                    x,
                    a,
                    w,
                    b,
                    conv,
                    y,
                    o,
                    req,
                    &mut got,
                    out.cast(),
                    wsp,
                    ws_bytes,
                ),
                Dir::BwdData => cds::cudnnFindConvolutionBackwardDataAlgorithmEx(
                    h,
                    w,
                    a,
                    y,
                    b,
                    conv,
                    x,
                    o,
                    req,
                    &mut got,
                    out.cast(),
                    wsp,
                    ws_bytes,
                ),
                Dir::BwdFilter => cds::cudnnFindConvolutionBackwardFilterAlgorithmEx(
                    h,
                    x,
                    a,
                    y,
                    b,
                    conv,
                    w,
                    o,
                    req,
                    &mut got,
                    out.cast(),
                    wsp,
                    ws_bytes,
                ),
            }
        };
        r.result()
            .map_err(lib("cudnnFindConvolution*AlgorithmEx"))?;
        perf.truncate(got.clamp(0, req) as usize);
        Ok(perf)
    }

    /// Enqueue `algo` on `ops` (`out = op(a, b)`, beta 0: `out` is not read).
    ///
    /// # Safety
    /// As for [`ConvDescs::find`], and `ws` at least the workspace `algo` needs with these
    /// descriptors.
    unsafe fn run(
        &self,
        algo: Algo,
        ops: Operands,
        (ws, ws_bytes): Workspace,
    ) -> Result<(), CudaError> {
        let (h, x, w, y, conv) = self.raw();
        let (a, b, o) = (
            ops.a as *const c_void,
            ops.b as *const c_void,
            ops.out as *mut c_void,
        );
        let wsp = ws as *mut c_void;
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (al, be) = (
            (&alpha as *const f32).cast::<c_void>(),
            (&beta as *const f32).cast::<c_void>(),
        );
        // SAFETY: a live handle and descriptors, each function given (descriptor, data) pairs
        // in its order (as in `find`), with the data and workspace as the caller guarantees;
        // alpha and beta are host f32, the scaling type of fp32 data.
        let r = unsafe {
            match algo {
                Algo::Fwd(alg) => cds::cudnnConvolutionForward(
                    h, al, x, a, w, b, conv, alg, wsp, ws_bytes, be, y, o,
                ),
                Algo::BwdData(alg) => cds::cudnnConvolutionBackwardData(
                    h, al, w, a, y, b, conv, alg, wsp, ws_bytes, be, x, o,
                ),
                Algo::BwdFilter(alg) => cds::cudnnConvolutionBackwardFilter(
                    h, al, x, a, y, b, conv, alg, wsp, ws_bytes, be, w, o,
                ),
            }
        };
        r.result().map_err(|e| {
            CudaError::lib(
                match algo.dir() {
                    Dir::Fwd => "cudnnConvolutionForward",
                    Dir::BwdData => "cudnnConvolutionBackwardData",
                    Dir::BwdFilter => "cudnnConvolutionBackwardFilter",
                },
                e,
            )
        })
    }
}

/// `bytes` of device memory (`None` for 0).
fn alloc_bytes(g: &Gpu, bytes: usize) -> Result<Option<CudaSlice<u8>>, CudaError> {
    (bytes > 0)
        .then(|| g.stream.alloc_zeros::<u8>(bytes))
        .transpose()
        .map_err(lib("cuMemAlloc (cuDNN workspace)"))
}

/// The address and size of `ws`.
fn workspace_of(g: &Gpu, ws: &Option<CudaSlice<u8>>) -> Workspace {
    ws.as_ref()
        .map_or((0, 0), |s| (s.device_ptr(&g.stream).0, s.len()))
}

/// The case's tensors: `x`, `w`, `y`, and in training `[dy, dx, dw]`.
#[derive(Clone, Copy, Debug)]
struct ConvViews {
    x: View,
    w: View,
    y: View,
    grads: Option<[View; 3]>,
}

/// One forward pass, or training step, of cuDNN on the case's buffers.
struct CudnnConv {
    descs: ConvDescs,
    c: ConvParams,
    views: ConvViews,
    /// The SGD update (training).
    sgd: Option<Saxpy>,
    /// Per direction, in call order (empty until [`DeviceCall::setup`]).
    chosen: Vec<Choice>,
    workspace: Option<CudaSlice<u8>>,
}

impl CudnnConv {
    /// Descriptors, views and (training) the cuBLAS handle for `c`; `views` are the case's
    /// inputs then poisoned outputs: `[x, w, y]`, or `[x, w, dy, y, dx, dw]`.
    fn new(g: &Gpu, c: ConvParams, mode: Mode, views: Vec<View>) -> Result<Self, CudaError> {
        let (views, sgd) = match (mode, &views[..]) {
            (Mode::Infer, &[x, w, y]) => (
                ConvViews {
                    x,
                    w,
                    y,
                    grads: None,
                },
                None,
            ),
            (Mode::Train, &[x, w, dy, y, dx, dw]) => (
                ConvViews {
                    x,
                    w,
                    y,
                    grads: Some([dy, dx, dw]),
                },
                Some(Saxpy::new(g)?),
            ),
            (_, v) => {
                return Err(CudaError::lib(
                    "cudnn",
                    format!("{} tensors for a {mode:?} conv2d", v.len()),
                ))
            }
        };
        Ok(Self {
            descs: ConvDescs::new(g, &c)?,
            c,
            views,
            sgd,
            chosen: Vec::new(),
            workspace: None,
        })
    }

    /// The directions a call runs, in order.
    fn dirs(&self) -> &'static [Dir] {
        match self.views.grads {
            None => &[Dir::Fwd],
            Some(_) => &[Dir::Fwd, Dir::BwdData, Dir::BwdFilter],
        }
    }

    /// Elements of the output of `dir`.
    fn out_len(&self, dir: Dir) -> usize {
        let c = &self.c;
        match dir {
            Dir::Fwd => c.n * c.k * c.p() * c.q(),
            Dir::BwdData => c.n * c.c * c.h * c.w,
            Dir::BwdFilter => c.k * c.c * c.r * c.s,
        }
    }

    /// The operands of `dir` on the case's buffers, each checked to be exactly its f32
    /// tensor.
    fn operands(&self, g: &Gpu, bufs: &[DevBuf], dir: Dir) -> Result<Operands, CudaError> {
        let v = &self.views;
        let (x, y) = (self.out_len(Dir::BwdData), self.out_len(Dir::Fwd));
        let w = self.out_len(Dir::BwdFilter);
        let at = |view, len| operand(g, bufs, view, len, DType::F32);
        let grads = || {
            v.grads
                .ok_or_else(|| CudaError::lib("cudnn", "a backward pass of an inference case"))
        };
        Ok(match dir {
            Dir::Fwd => Operands {
                a: at(v.x, x)?,
                b: at(v.w, w)?,
                out: at(v.y, y)?,
            },
            Dir::BwdData => {
                let [dy, dx, _] = grads()?;
                Operands {
                    a: at(v.w, w)?,
                    b: at(dy, y)?,
                    out: at(dx, x)?,
                }
            }
            Dir::BwdFilter => {
                let [dy, _, dw] = grads()?;
                Operands {
                    a: at(v.x, x)?,
                    b: at(dy, y)?,
                    out: at(dw, w)?,
                }
            }
        })
    }
}

impl DeviceCall for CudnnConv {
    /// The algorithm search of the module doc's policy.
    fn setup(&mut self, g: &Gpu, bufs: &mut [DevBuf]) -> Result<(), CudaError> {
        let dirs = self.dirs();
        // Step 1: the workspace of every algorithm cuDNN accepts here, within the limit.
        let sizes: Vec<(Algo, usize)> = dirs
            .iter()
            .flat_map(|&d| Algo::all(d))
            .filter_map(|a| Some((a, self.descs.workspace(a).ok()?)))
            .filter(|&(_, s)| s <= WORKSPACE_LIMIT)
            .collect();
        let size_of = |a: Algo| sizes.iter().find(|(b, _)| *b == a).map(|&(_, s)| s);
        let search_ws = alloc_bytes(g, sizes.iter().map(|&(_, s)| s).max().unwrap_or(0))?;
        let mut chosen = Vec::new();
        for &dir in dirs {
            // Step 2, on the case's inputs and a scratch output of the same size.
            let ops = self.operands(g, bufs, dir)?;
            let scratch = g
                .stream
                .alloc_zeros::<f32>(self.out_len(dir))
                .map_err(lib("cuMemAlloc (cuDNN search output)"))?;
            let ops = Operands {
                out: scratch.device_ptr(&g.stream).0,
                ..ops
            };
            // SAFETY: `a` and `b` are the case's live input buffers, just checked to be
            // exactly their f32 tensors; `out` is a live f32 allocation of exactly the
            // output's elements (`scratch`, alive until the end of this iteration); the
            // workspace is `search_ws`, alive until the end of `setup`.
            let found = unsafe { self.descs.find(dir, ops, workspace_of(g, &search_ws)) };
            // Steps 3 and 4; cuDNN's heuristics stand in when the timed search fails or
            // leaves nothing.
            let timed = match &found {
                Ok(perf) => pick(dir, perf, true, size_of),
                Err(_) => None,
            };
            let choice = match timed {
                Some(c) => c,
                None => {
                    let ranked = self.descs.heuristic(dir)?;
                    pick(dir, &ranked, false, size_of).ok_or_else(|| {
                        CudaError::lib(
                            "choosing a cuDNN algorithm",
                            format!(
                                "no {} algorithm with FP32 FMA math within {} of workspace for \
                                 {:?} (timed search: {found:?}; heuristics: {ranked:?})",
                                dir.label(),
                                mib(WORKSPACE_LIMIT as u64),
                                self.c
                            ),
                        )
                    })?
                }
            };
            chosen.push(choice);
        }
        drop(search_ws);
        self.workspace = alloc_bytes(g, chosen.iter().map(|c| c.workspace).max().unwrap_or(0))?;
        self.chosen = chosen;
        Ok(())
    }

    fn call(&mut self, g: &Gpu, bufs: &mut [DevBuf]) -> Result<(), CudaError> {
        if self.chosen.is_empty() {
            return Err(CudaError::lib(
                "cudnn",
                "no algorithm chosen (setup did not run)",
            ));
        }
        let ws = workspace_of(g, &self.workspace);
        for choice in &self.chosen {
            let dir = choice.algo.dir();
            let ops = self.operands(g, bufs, dir)?;
            // SAFETY: the operands are the case's live buffers, just checked to be exactly
            // the f32 tensors the descriptors describe (cuDNN's own output shape was checked
            // equal to ours when they were made); the workspace is alive in `self` and at
            // least the size cuDNN reported for this algorithm with these descriptors (the
            // largest of the chosen ones).
            unsafe { self.descs.run(choice.algo, ops, ws) }?;
        }
        if let (Some(sgd), Some([_, _, dw])) = (&self.sgd, self.views.grads) {
            let n = self.out_len(Dir::BwdFilter);
            sgd.run(g, bufs, -(SGD_LR as f32), [dw, self.views.w], n)?;
        }
        Ok(())
    }

    fn implementation(&self) -> Option<String> {
        Some(describe(&self.chosen, self.sgd.is_some()))
    }

    fn tolerance(&self) -> Option<ToleranceOverride> {
        tolerance_for(&self.chosen)
    }
}

/// What a training step needs: cuDNN, and cuBLAS for the update.
fn probe_training() -> Result<(), String> {
    probe_cudnn()?;
    probe_cublas()
}

impl Backend for Cudnn {
    fn name(&self) -> &'static str {
        "cudnn"
    }
    fn devices(&self) -> Vec<DeviceInfo> {
        device_infos(probe_cudnn)
    }
    fn versions(&self) -> Vec<(String, String)> {
        // The training step's SGD update is cuBLAS.
        versions(&[Lib::Driver, Lib::Cudnn, Lib::Cublas])
    }
    fn supports(&self, case: &Case, device: &str) -> Result<(), String> {
        common_supports(case, device)?;
        if case.op() != Op::Conv2d {
            return Err(format!(
                "the cudnn backend runs conv2d only, not {}",
                case.op().as_str()
            ));
        }
        if case.dtype != DType::F32 {
            return Err(format!(
                "the cudnn backend runs fp32 only (FMA math, like our fp32 kernels), not {}",
                case.dtype.as_str()
            ));
        }
        Ok(())
    }
    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError> {
        let probe = match case.mode {
            Mode::Infer => probe_cudnn,
            Mode::Train => probe_training,
        };
        prepare_library(self, probe, case, device, inputs, |g, views| {
            match case.params {
                Params::Conv2d(c) => CudnnConv::new(g, c, case.mode, views),
                _ => Err(CudaError::lib("cudnn", "runs conv2d only")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds::cudnnMathType_t as Math;

    #[test]
    fn algorithm_tables_match_the_bindings() {
        for (dir, n, prefix) in [
            (Dir::Fwd, 8, "CUDNN_CONVOLUTION_FWD_ALGO_"),
            (Dir::BwdData, 6, "CUDNN_CONVOLUTION_BWD_DATA_"),
            (Dir::BwdFilter, 7, "CUDNN_CONVOLUTION_BWD_FILTER_"),
        ] {
            let all = Algo::all(dir);
            assert_eq!(all.len(), n);
            for (i, a) in all.iter().enumerate() {
                assert_eq!(a.raw(), i as u32, "{a:?}");
                assert_eq!(a.dir(), dir);
                assert_eq!(Algo::from_raw(dir, i as u32), Some(*a));
                // Our short name is the bindings' name without the direction's prefix.
                let full = match a {
                    Algo::Fwd(x) => format!("{x:?}"),
                    Algo::BwdData(x) => format!("{x:?}"),
                    Algo::BwdFilter(x) => format!("{x:?}"),
                };
                let short = full.strip_prefix(prefix).unwrap();
                let short = short
                    .strip_prefix("ALGO_")
                    .filter(|s| !s.starts_with(|c: char| c.is_ascii_digit()));
                assert_eq!(short.unwrap_or(&full[prefix.len()..]), a.name(), "{full}");
            }
            assert_eq!(Algo::from_raw(dir, n as u32), None);
        }
    }

    #[test]
    fn classes_follow_the_names() {
        let class = |dir, raw| Algo::from_raw(dir, raw).unwrap().class();
        assert_eq!(class(Dir::Fwd, 1), Class::Gemm); // IMPLICIT_PRECOMP_GEMM
        assert_eq!(class(Dir::Fwd, 3), Class::Gemm); // DIRECT
        assert_eq!(class(Dir::Fwd, 5), Class::Fft); // FFT_TILING
        assert_eq!(class(Dir::Fwd, 7), Class::Winograd); // WINOGRAD_NONFUSED
        assert_eq!(class(Dir::BwdData, 1), Class::Gemm); // ALGO_1
        assert_eq!(class(Dir::BwdData, 2), Class::Fft);
        assert_eq!(class(Dir::BwdFilter, 3), Class::Gemm); // ALGO_3
        assert_eq!(class(Dir::BwdFilter, 6), Class::Fft); // FFT_TILING
        assert_eq!(class(Dir::BwdFilter, 4), Class::Winograd);
    }

    fn perf(algo: u32, time: f32, math: Math) -> RawPerf {
        RawPerf {
            algo,
            status: cds::cudnnStatus_t::CUDNN_STATUS_SUCCESS as u32,
            time,
            math_type: math as u32,
            ..RawPerf::default()
        }
    }

    #[test]
    fn the_fastest_fma_algorithm_within_the_limit_wins() {
        let small = |_| Some(1024);
        let fma = Math::CUDNN_FMA_MATH;
        // Fastest first, whatever order cuDNN returned.
        let list = [perf(0, 3.0, fma), perf(1, 1.0, fma), perf(6, 2.0, fma)];
        let c = pick(Dir::Fwd, &list, true, small).unwrap();
        assert_eq!(
            (c.algo.name(), c.workspace, c.timed),
            ("IMPLICIT_PRECOMP_GEMM", 1024, true)
        );
        // Heuristic results keep cuDNN's order.
        let c = pick(Dir::Fwd, &list, false, small).unwrap();
        assert_eq!(c.algo.name(), "IMPLICIT_GEMM");
        // Tensor-core results, failures, unknown algorithms, refused or over-limit workspaces
        // are out.
        let mut failed = perf(1, 0.1, fma);
        failed.status = cds::cudnnStatus_t::CUDNN_STATUS_NOT_SUPPORTED as u32;
        let list = [
            perf(4, 0.1, Math::CUDNN_TENSOR_OP_MATH),
            failed,
            perf(99, 0.1, fma),
            perf(5, 0.2, fma),
            perf(2, 0.3, fma),
            perf(3, 0.4, fma),
        ];
        let ws = |a: Algo| match a.name() {
            "FFT_TILING" => Some(WORKSPACE_LIMIT + 1),
            "GEMM" => None,
            _ => Some(0),
        };
        assert_eq!(
            pick(Dir::Fwd, &list, true, ws).unwrap().algo.name(),
            "DIRECT"
        );
        // DEFAULT-math results only when no FMA one qualifies.
        let list = [perf(1, 0.1, Math::CUDNN_DEFAULT_MATH), perf(0, 0.5, fma)];
        assert_eq!(
            pick(Dir::BwdData, &list, true, small).unwrap().algo.name(),
            "ALGO_0"
        );
        let list = [perf(1, 0.1, Math::CUDNN_DEFAULT_MATH), perf(0, -1.0, fma)];
        let c = pick(Dir::BwdFilter, &list, true, |a: Algo| {
            (a.raw() == 1).then_some(0)
        })
        .unwrap();
        assert_eq!(c.algo.name(), "ALGO_1");
        // Such a choice says its time was taken under DEFAULT math (TF32 possibly).
        assert!(c.default_math);
        assert_eq!(
            describe(&[c], false),
            "cudnn bwd-filter ALGO_1 (timed under DEFAULT math), fp32 FMA math, workspace 0.0 MiB"
        );
        assert_eq!(pick(Dir::Fwd, &[], true, small), None);
    }

    fn choice(dir: Dir, raw: u32, workspace: usize, timed: bool) -> Choice {
        Choice {
            algo: Algo::from_raw(dir, raw).unwrap(),
            workspace,
            timed,
            default_math: false,
        }
    }

    #[test]
    fn cases_record_their_algorithms_and_tolerance() {
        let gemm = [
            choice(Dir::Fwd, 1, 13 << 19, true),
            choice(Dir::BwdData, 1, 0, true),
            choice(Dir::BwdFilter, 1, 1 << 20, false),
        ];
        assert_eq!(
            describe(&gemm, true),
            "cudnn fwd IMPLICIT_PRECOMP_GEMM, bwd-data ALGO_1, bwd-filter ALGO_1 (heuristic), \
             sgd cublasSaxpy, fp32 FMA math, workspace 6.5 MiB"
        );
        assert_eq!(
            describe(&gemm[..1], false),
            "cudnn fwd IMPLICIT_PRECOMP_GEMM, fp32 FMA math, workspace 6.5 MiB"
        );
        assert_eq!(tolerance_for(&gemm), None);
        let mixed = [
            choice(Dir::Fwd, 7, 0, true),
            choice(Dir::BwdData, 1, 0, true),
            choice(Dir::BwdFilter, 6, 0, true),
        ];
        let t = tolerance_for(&mixed).unwrap();
        assert_eq!(t.factor, 10.0);
        assert!(
            t.why
                .contains("fwd WINOGRAD_NONFUSED, bwd-filter FFT_TILING")
                && !t.why.contains("ALGO_1"),
            "{}",
            t.why
        );
    }

    #[test]
    fn supports_training_in_fp32_conv_only() {
        use wattbench_core::workload::GemmParams;
        let case = |params, dtype, mode| Case {
            params,
            mode,
            dtype,
            tag: None,
        };
        let conv = Params::Conv2d(ConvParams::new(1, 2, 5, 5, 3, 3, 3).padded(1, 1));
        for mode in Mode::ALL {
            assert_eq!(
                Cudnn.supports(&case(conv, DType::F32, mode), "cuda:0"),
                Ok(())
            );
            assert!(Cudnn
                .supports(&case(conv, DType::Bf16, mode), "cuda:0")
                .unwrap_err()
                .contains("fp32 only"));
            let gemm = Params::Gemm(GemmParams::new(2, 2, 2));
            assert!(Cudnn
                .supports(&case(gemm, DType::F32, mode), "cuda:0")
                .unwrap_err()
                .contains("conv2d only"));
        }
    }
}
