//! Device state of a prepared case: the buffers a [`PlanBuilder`] describes, allocated and
//! owned by one [`GpuCase`], and the one [`Prepared`] implementation every GPU backend
//! returns (sync with memory tracking, NaN-poisoned outputs downloaded as f32, CUDA-event
//! timing, errors named after the backend).
//!
//! What differs between backends is only the call itself ([`DeviceCall`]): our kernels'
//! [`Plan`] (the builder's steps with device addresses), a cuBLAS GemmEx, a cuDNN convolution
//! (forward, or the whole training step). The call also says what it runs
//! ([`Prepared::implementation`]) and the tolerance its numerics need ([`Prepared::tolerance`]).
//!
//! Soundness: a [`Plan`] is made only by [`PlanBuilder::into_case`], from steps the builder
//! checked, with addresses into the buffers that move into the same [`GpuCase`]; neither can
//! be reached or replaced from outside this module, so the buffers outlive every launch.
use crate::error::CudaError;
use crate::gpu::{Gpu, MemTracker};
use crate::kernels::KernelId;
use crate::ops::rnn::RnnBwdArgs;
use crate::plan::{Arg, BufSpec, Init, PlanBuilder, Ptr, Step, TensorMap2d, View};
use cudarc::driver::sys::{self, CUfunction_attribute_enum};
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};
use half::{bf16, f16};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wattbench_core::{BackendError, DType, Prepared, ToleranceOverride};

/// A device allocation: f32, or 16-bit floats as raw bits.
pub(crate) enum DevBuf {
    /// fp32 values.
    F32(CudaSlice<f32>),
    /// bf16 or f16 bits.
    U16(CudaSlice<u16>, DType),
}

/// `data` as 16-bit floats of `dtype` (bf16, else f16), rounded to nearest even.
pub(crate) fn to_bits(data: &[f32], dtype: DType) -> Vec<u16> {
    match dtype {
        DType::Bf16 => data.iter().map(|&v| bf16::from_f32(v).to_bits()).collect(),
        _ => data.iter().map(|&v| f16::from_f32(v).to_bits()).collect(),
    }
}

/// The f32 value of the 16-bit float `bits` of `dtype` (bf16, else f16).
pub(crate) fn from_bits(bits: u16, dtype: DType) -> f32 {
    match dtype {
        DType::Bf16 => bf16::from_bits(bits).to_f32(),
        _ => f16::from_bits(bits).to_f32(),
    }
}

impl DevBuf {
    /// Allocate `spec` on `g` with its initial contents.
    fn new(g: &Gpu, spec: &BufSpec) -> Result<Self, CudaError> {
        let upload = |data: &[f32]| {
            let e = |e| CudaError::lib("cuMemcpyHtoD", e);
            Ok(match spec.dtype {
                DType::F32 => DevBuf::F32(g.stream.clone_htod(data).map_err(e)?),
                d => DevBuf::U16(g.stream.clone_htod(&to_bits(data, d)).map_err(e)?, d),
            })
        };
        match spec.init {
            Init::Upload(data) => upload(data),
            Init::Poison => upload(&vec![f32::NAN; spec.len]),
            Init::Zero => {
                let e = |e| CudaError::lib("cuMemAlloc", e);
                Ok(match spec.dtype {
                    DType::F32 => DevBuf::F32(g.stream.alloc_zeros(spec.len).map_err(e)?),
                    d => DevBuf::U16(g.stream.alloc_zeros(spec.len).map_err(e)?, d),
                })
            }
        }
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            DevBuf::F32(s) => s.len(),
            DevBuf::U16(s, _) => s.len(),
        }
    }

    /// Element type.
    fn dtype(&self) -> DType {
        match self {
            DevBuf::F32(_) => DType::F32,
            DevBuf::U16(_, d) => *d,
        }
    }

    fn elem_bytes(&self) -> u64 {
        match self {
            DevBuf::F32(_) => 4,
            DevBuf::U16(..) => 2,
        }
    }

    /// Copy elements `range` back as f32.
    fn download(&self, g: &Gpu, range: std::ops::Range<usize>) -> Result<Vec<f32>, CudaError> {
        if range.start > range.end || range.end > self.len() {
            return Err(CudaError::lib(
                "download",
                format!("range {range:?} outside a buffer of {}", self.len()),
            ));
        }
        let e = |e| CudaError::lib("cuMemcpyDtoH", e);
        Ok(match self {
            DevBuf::F32(s) => g.stream.clone_dtoh(&s.slice(range)).map_err(e)?,
            DevBuf::U16(s, d) => {
                let bits = g.stream.clone_dtoh(&s.slice(range)).map_err(e)?;
                bits.into_iter().map(|b| from_bits(b, *d)).collect()
            }
        })
    }
}

/// Device address of the first element of `v`, checked to lie inside `bufs`.
pub(crate) fn addr(g: &Gpu, bufs: &[DevBuf], v: View) -> Result<u64, CudaError> {
    let b = bufs
        .get(v.buf().index())
        .filter(|b| {
            v.start()
                .checked_add(v.len())
                .is_some_and(|end| end <= b.len())
        })
        .ok_or_else(|| CudaError::lib("resolving a buffer view", format!("{v:?} out of range")))?;
    let base = match b {
        DevBuf::F32(s) => s.device_ptr(&g.stream).0,
        DevBuf::U16(s, _) => s.device_ptr(&g.stream).0,
    };
    Ok(base + v.start() as u64 * b.elem_bytes())
}

/// Device address of the first element of `v`, after checking that `v` is exactly `len`
/// elements of a `dtype` buffer (inside `bufs`): what a library call establishes about each
/// operand before passing its address.
pub(crate) fn operand(
    g: &Gpu,
    bufs: &[DevBuf],
    v: View,
    len: usize,
    dtype: DType,
) -> Result<u64, CudaError> {
    let b = bufs
        .get(v.buf().index())
        .ok_or_else(|| CudaError::lib("resolving an operand", format!("{v:?}: no such buffer")))?;
    if v.len() != len || b.dtype() != dtype {
        return Err(CudaError::lib(
            "resolving an operand",
            format!(
                "{v:?} of {:?}: expected {len} elements of {dtype:?}",
                b.dtype()
            ),
        ));
    }
    addr(g, bufs, v)
}

/// One call of a prepared case, enqueued on the GPU's stream, and what it runs.
pub(crate) trait DeviceCall {
    /// Once, after the case's buffers exist and before the first call: e.g. an algorithm
    /// search on the case's own inputs.
    fn setup(&mut self, g: &Gpu, bufs: &mut [DevBuf]) -> Result<(), CudaError> {
        let _ = (g, bufs);
        Ok(())
    }
    /// Enqueue one call; `bufs` are the case's buffers, in the builder's order.
    fn call(&mut self, g: &Gpu, bufs: &mut [DevBuf]) -> Result<(), CudaError>;
    /// The kernels or library algorithms one call runs ([`Prepared::implementation`]).
    fn implementation(&self) -> Option<String>;
    /// A looser tolerance these numerics need ([`Prepared::tolerance`]).
    fn tolerance(&self) -> Option<ToleranceOverride> {
        None
    }
    /// What to add to an error of a call, to say what it may mean.
    fn failure_hint(&self) -> Option<&'static str> {
        None
    }
}

/// An encoded TMA tensor map: the 128 opaque bytes (128-byte aligned) that the kernels'
/// `WbTensorMap` parameter holds.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct DevTensorMap(sys::CUtensorMap);

// SAFETY: plain bytes with the size and alignment of the kernels' `WbTensorMap` parameter.
unsafe impl DeviceRepr for DevTensorMap {}

/// Encode `m` over its view's device address (128-byte swizzle, zeros read outside the
/// matrix, L2 promotion by 256 B), after the checks the plan builder already made.
fn encode_tensor_map(g: &Gpu, bufs: &[DevBuf], m: &TensorMap2d) -> Result<DevTensorMap, CudaError> {
    use sys::CUtensorMapDataType as T;
    let b = bufs
        .get(m.view.buf().index())
        .ok_or_else(|| CudaError::lib("encoding a tensor map", format!("{m:?}: no such buffer")))?;
    let dtype = match b.dtype() {
        DType::Bf16 => T::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        DType::F16 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        d => {
            return Err(CudaError::lib(
                "encoding a tensor map",
                format!("{d:?} data: 16-bit floats only"),
            ))
        }
    };
    m.check(b.elem_bytes() as usize)
        .map_err(|e| CudaError::lib("encoding a tensor map", e))?;
    let base = addr(g, bufs, m.view)?;
    let dims = [m.cols as u64, m.rows as u64];
    let strides = [m.ld as u64 * b.elem_bytes()];
    let elem_strides = [1u32, 1];
    let mut map = std::mem::MaybeUninit::<sys::CUtensorMap>::zeroed();
    // SAFETY: every pointer is valid for the rank (2) the driver reads; `base` is the device
    // address of the view, which holds `rows` rows of `ld` elements of `dtype` (checked
    // above), so the map describes memory inside a live buffer of this case; the driver only
    // writes the 128-byte `map`.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            dtype,
            2,
            base as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            m.box_dims.as_ptr(),
            elem_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    r.result()
        .map_err(|e| CudaError::lib("cuTensorMapEncodeTiled", format!("{e:?} for {m:?}")))?;
    // SAFETY: the driver initialised the map (and it was zeroed before).
    Ok(DevTensorMap(unsafe { map.assume_init() }))
}

/// A kernel argument with device addresses.
#[derive(Clone, Copy)]
enum DevArg {
    Ptr(u64),
    I32(i32),
    F32(f32),
    RnnBwd(RnnBwdArgs<u64>),
    TensorMap(DevTensorMap),
}

/// A step with device addresses.
enum Exec {
    Launch {
        f: CudaFunction,
        cfg: LaunchConfig,
        args: Vec<DevArg>,
    },
    Copy {
        dst: u64,
        src: u64,
        bytes: usize,
    },
    Zero {
        dst: u64,
        bytes: usize,
    },
}

/// The `cuda` backend's call: the builder's checked steps, with addresses into the buffers of
/// the [`GpuCase`] that holds it. Made only by [`PlanBuilder::into_case`].
pub(crate) struct Plan {
    steps: Vec<Exec>,
    /// The entry points the steps launch ([`PlanBuilder::kernels`]).
    kernels: String,
}

impl DeviceCall for Plan {
    fn call(&mut self, g: &Gpu, _: &mut [DevBuf]) -> Result<(), CudaError> {
        let s = g.stream.cu_stream();
        for st in &self.steps {
            match st {
                Exec::Launch { f, cfg, args } => {
                    let mut b = g.stream.launch_builder(f);
                    for a in args {
                        match a {
                            DevArg::Ptr(p) => b.arg(p),
                            DevArg::I32(v) => b.arg(v),
                            DevArg::F32(v) => b.arg(v),
                            DevArg::RnnBwd(v) => b.arg(v),
                            DevArg::TensorMap(v) => b.arg(v),
                        };
                    }
                    // SAFETY: the step was added through `PlanBuilder::launch`, whose caller
                    // vouched that the arguments match the kernel and the grid stays inside the
                    // views; the builder checked every view against its buffer, and the
                    // addresses point into buffers this plan's `GpuCase` owns.
                    unsafe { b.launch(*cfg) }.map_err(|e| CudaError::lib("cuLaunchKernel", e))?;
                }
                // SAFETY: both ranges were checked inside their (live, owned) buffers and not
                // to overlap when the copy was added.
                Exec::Copy { dst, src, bytes } => unsafe {
                    cudarc::driver::result::memcpy_dtod_async(*dst, *src, *bytes, s)
                        .map_err(|e| CudaError::lib("cuMemcpyDtoDAsync", e))?
                },
                // SAFETY: the range was checked inside its (live, owned) buffer.
                Exec::Zero { dst, bytes } => unsafe {
                    cudarc::driver::result::memset_d8_async(*dst, 0, *bytes, s)
                        .map_err(|e| CudaError::lib("cuMemsetD8Async", e))?
                },
            }
        }
        Ok(())
    }

    fn implementation(&self) -> Option<String> {
        Some(self.kernels.clone())
    }

    fn failure_hint(&self) -> Option<&'static str> {
        self.kernels.contains("gemm_wgmma").then_some(
            "gemm_wgmma executes `trap` when a pipeline barrier wait exceeds 10 s, so a launch \
             failure of it is that watchdog (a deadlock: a tensor map or barrier protocol bug) \
             or a memory fault; the CUDA context is unusable afterwards",
        )
    }
}

/// A library error with `hint` appended to its message (other errors as they are).
fn with_hint(e: CudaError, hint: Option<&str>) -> CudaError {
    match (e, hint) {
        (CudaError::Library { what, msg }, Some(hint)) => CudaError::Library {
            what,
            msg: format!("{msg} ({hint})"),
        },
        (e, _) => e,
    }
}

/// A prepared case on one GPU: its buffers, the call, and what `Prepared` needs around it.
pub(crate) struct GpuCase<C> {
    backend: &'static str,
    gpu: Arc<Gpu>,
    bufs: Vec<DevBuf>,
    outputs: Vec<View>,
    mem: MemTracker,
    call: C,
}

impl<'a> PlanBuilder<'a> {
    /// Allocate the buffers on `gpu` and set up `make`'s call (made first, after memory
    /// tracking starts, so a library handle's own allocations count; its
    /// [`DeviceCall::setup`] runs once the buffers exist).
    fn allocate<C: DeviceCall>(
        &self,
        gpu: &Arc<Gpu>,
        backend: &'static str,
        make: impl FnOnce(&Arc<Gpu>) -> Result<C, CudaError>,
    ) -> Result<GpuCase<C>, CudaError> {
        let mem = MemTracker::start(gpu);
        let call = make(gpu)?;
        let bufs = self
            .bufs()
            .iter()
            .map(|s| DevBuf::new(gpu, s))
            .collect::<Result<_, _>>()?;
        let mut case = GpuCase {
            backend,
            gpu: gpu.clone(),
            bufs,
            outputs: self.outputs().to_vec(),
            mem,
            call,
        };
        case.call.setup(&case.gpu, &mut case.bufs)?;
        Ok(case)
    }

    /// The case that runs this plan's steps on `gpu`: kernels loaded (compiled on first use),
    /// buffers allocated, views resolved to device addresses. The kernels are loaded before
    /// memory tracking starts: a module is loaded once per process and kept, so its device
    /// memory is not the first case's that uses it.
    pub(crate) fn into_case(
        self,
        gpu: &Arc<Gpu>,
        backend: &'static str,
    ) -> Result<GpuCase<Plan>, CudaError> {
        let mut funcs: HashMap<(KernelId, &str), CudaFunction> = HashMap::new();
        for st in self.steps() {
            if let Step::Launch(l, _) = st {
                if funcs.contains_key(&(l.kernel, l.entry.as_str())) {
                    continue;
                }
                let f = gpu.function(l.kernel, &l.entry)?;
                if l.smem > 48 * 1024 {
                    f.set_attribute(
                        CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        l.smem as i32,
                    )
                    .map_err(|e| CudaError::lib("cuFuncSetAttribute (dynamic shared memory)", e))?;
                }
                funcs.insert((l.kernel, l.entry.as_str()), f);
            }
        }
        // The kernels' names, then whatever the driver's JIT said would slow them.
        let mut kernels = self.kernels();
        let mut files: Vec<KernelId> = funcs.keys().map(|(id, _)| *id).collect();
        files.sort_by_key(|id| id.file());
        files.dedup();
        for id in files {
            let notes = gpu.jit_notes(id);
            if !notes.is_empty() {
                kernels.push_str(&format!(
                    "; WARNING, the driver's compilation of kernels/{}: {}",
                    id.file(),
                    notes.join("; ")
                ));
            }
        }
        let mut case = self.allocate(gpu, backend, |_| {
            Ok(Plan {
                steps: Vec::new(),
                kernels,
            })
        })?;
        let (g, bufs) = (&case.gpu, &case.bufs);
        let ptr = |p: Ptr| match p {
            Ptr::To(v) => addr(g, bufs, v),
            Ptr::Null => Ok(0),
        };
        let bytes = |v: View| v.len() * bufs[v.buf().index()].elem_bytes() as usize;
        let mut steps = Vec::with_capacity(self.steps().len());
        for st in self.steps() {
            steps.push(match st {
                Step::Launch(l, args) => Exec::Launch {
                    f: funcs
                        .get(&(l.kernel, l.entry.as_str()))
                        .cloned()
                        .ok_or_else(|| CudaError::lib("loading kernels", l.entry.clone()))?,
                    cfg: LaunchConfig {
                        grid_dim: l.grid,
                        block_dim: l.block,
                        shared_mem_bytes: l.smem,
                    },
                    args: args
                        .iter()
                        .map(|a| {
                            Ok(match *a {
                                Arg::Ptr(p) => DevArg::Ptr(ptr(p)?),
                                // The builder checked every int fits.
                                Arg::Int(n) => DevArg::I32(n as i32),
                                Arg::F32(v) => DevArg::F32(v),
                                Arg::RnnBwd(s) => DevArg::RnnBwd(s.try_map(ptr)?),
                                Arg::TensorMap(m) => {
                                    DevArg::TensorMap(encode_tensor_map(g, bufs, &m)?)
                                }
                            })
                        })
                        .collect::<Result<_, CudaError>>()?,
                },
                Step::Copy { dst, src } => Exec::Copy {
                    dst: addr(g, bufs, *dst)?,
                    src: addr(g, bufs, *src)?,
                    bytes: bytes(*dst),
                },
                Step::Zero(dst) => Exec::Zero {
                    dst: addr(g, bufs, *dst)?,
                    bytes: bytes(*dst),
                },
            });
        }
        case.call.steps = steps;
        Ok(case)
    }

    /// The case that runs a library call `make` sets up on `gpu`, on this plan's buffers (the
    /// plan has no steps of its own).
    pub(crate) fn into_library_case<C: DeviceCall>(
        self,
        gpu: &Arc<Gpu>,
        backend: &'static str,
        make: impl FnOnce(&Arc<Gpu>) -> Result<C, CudaError>,
    ) -> Result<GpuCase<C>, CudaError> {
        if !self.steps().is_empty() {
            return Err(CudaError::lib(
                "building the plan",
                "a library call's plan has steps of its own",
            ));
        }
        self.allocate(gpu, backend, make)
    }
}

impl<C: DeviceCall> GpuCase<C> {
    /// `e` as the backend's error, with the call's hint on what it may mean.
    fn fail(&self, e: CudaError) -> BackendError {
        with_hint(e, self.call.failure_hint()).into_backend(self.backend)
    }

    /// Enqueue one call.
    fn run(&mut self) -> Result<(), CudaError> {
        self.gpu.bind()?;
        self.call.call(&self.gpu, &mut self.bufs)
    }

    /// Wait for the stream, then note the memory in use.
    fn wait(&mut self) -> Result<(), CudaError> {
        self.gpu.sync()?;
        self.mem.observe(&self.gpu);
        Ok(())
    }

    /// Wait, then copy every output back as f32.
    fn download(&mut self) -> Result<Vec<Vec<f32>>, CudaError> {
        self.wait()?;
        self.outputs
            .iter()
            .map(|v| {
                let b = self
                    .bufs
                    .get(v.buf().index())
                    .ok_or_else(|| CudaError::lib("download", format!("{v:?}: no such buffer")))?;
                b.download(&self.gpu, v.range())
            })
            .collect()
    }

    /// One call, then its outputs.
    pub(crate) fn run_once(&mut self) -> Result<Vec<Vec<f32>>, CudaError> {
        self.run()?;
        self.download()
    }
}

impl<C: DeviceCall> Prepared for GpuCase<C> {
    fn execute(&mut self) -> Result<(), BackendError> {
        self.run().map_err(|e| self.fail(e))
    }
    fn sync(&mut self) -> Result<(), BackendError> {
        self.wait().map_err(|e| self.fail(e))
    }
    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError> {
        self.download().map_err(|e| self.fail(e))
    }
    fn time_iters(&mut self, iters: u64) -> Result<Duration, BackendError> {
        let d = self
            .gpu
            .time_with_events(iters, || self.call.call(&self.gpu, &mut self.bufs))
            .map_err(|e| self.fail(e))?;
        self.mem.observe(&self.gpu);
        Ok(d)
    }
    fn device_peak_bytes(&mut self) -> Option<u64> {
        self.mem.peak_bytes()
    }
    fn implementation(&self) -> Option<String> {
        self.call.implementation()
    }
    fn tolerance(&self) -> Option<ToleranceOverride> {
        self.call.tolerance()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure of a plan with the Hopper GEMM says what its watchdog trap means; other
    /// plans' failures are left as they are.
    #[test]
    fn wgmma_failures_explain_the_watchdog() {
        let plan = |k: &str| Plan {
            steps: Vec::new(),
            kernels: k.into(),
        };
        let hint = plan("pad_rows_u16, gemm_wgmma_bf16_nn").failure_hint();
        assert!(hint.is_some_and(|h| h.contains("watchdog")));
        assert_eq!(plan("gemm_tc_bf16_nn").failure_hint(), None);
        let e = CudaError::lib("cuStreamSynchronize", "CUDA_ERROR_LAUNCH_FAILED");
        let msg = with_hint(e, hint).to_string();
        assert!(
            msg.contains("LAUNCH_FAILED") && msg.contains("trap"),
            "{msg}"
        );
        let e = CudaError::Unavailable("no driver".into());
        assert!(matches!(with_hint(e, hint), CudaError::Unavailable(r) if r == "no driver"));
    }

    #[test]
    fn bits_round_trip_exactly_for_representable_values() {
        let v = [1.0f32, -0.5, 0.099609375, 3.0];
        let b = to_bits(&v, DType::Bf16);
        let back: Vec<f32> = b.iter().map(|&x| bf16::from_bits(x).to_f32()).collect();
        assert_eq!(back, v);
        assert_eq!(to_bits(&[1.0], DType::F16), vec![0x3c00]);
    }
}
