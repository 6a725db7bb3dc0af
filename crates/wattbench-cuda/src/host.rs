//! Safe host-level drivers for what no backend output covers, for the GPU tests: host
//! tensors in, host vectors out, checked like any case before the device is touched.
//!
//! Only the gradient of the RNN's initial hidden state needs one: a training step returns
//! every other gradient through the `Backend` trait, but initial states are constants, so
//! `dh0` (which the backward kernel can also produce) is no output of it.
use crate::backend::{prepare_device, probe_nvrtc};
use crate::error::CudaError;
use crate::ops::rnn;
use crate::plan::PlanBuilder;
use crate::CudaKernels;
use wattbench_core::tensor::HostTensor;
use wattbench_core::workload::RnnParams;
use wattbench_core::{BackendError, Case, DType, Mode, Params};

/// Gradients of `L = Σ HS ⊙ dHS` with respect to an RNN's inputs.
#[derive(Debug, Clone)]
pub struct RnnGrads {
    /// Forward output `HS[T,B,H]` (computed with state saving).
    pub hs: Vec<f32>,
    /// `dXP[T,B,G·H]`.
    pub dxp: Vec<f32>,
    /// `dW[H,G·H]`.
    pub dw: Vec<f32>,
    /// `db[G·H]`.
    pub db: Vec<f32>,
    /// `dh0[B,H]`.
    pub dh0: Vec<f32>,
}

/// Forward with state saving and backward through time of the `cuda` backend's fp32
/// training step for `r` on `device`, without the weight update, plus `dh0`. `inputs` are
/// those of the training case (`xp, w, b, h0[, c0]`, then `dHS` as `dy`, as
/// `wattbench_core::tensor::generate_case_inputs` makes them); their count and lengths are
/// checked.
pub fn rnn_gradients(
    device: &str,
    r: &RnnParams,
    inputs: &[HostTensor],
) -> Result<RnnGrads, BackendError> {
    let case = Case {
        params: Params::Rnn(*r),
        mode: Mode::Train,
        dtype: DType::F32,
        tag: None,
    };
    let be = CudaKernels::new();
    let g = prepare_device(&be, &case, device, inputs, probe_nvrtc)?;
    let e = |e: CudaError| e.into_backend("cuda");
    let mut b = PlanBuilder::new();
    let ins = b.upload_all(inputs, DType::F32);
    let gr = rnn::training(&mut b, r, &ins, true).map_err(e)?;
    for v in [gr.hs, gr.dxp, gr.dw, gr.db].into_iter().chain(gr.dh0) {
        b.output(v).map_err(e)?;
    }
    let out = b.into_case(&g, "cuda").and_then(|mut c| c.run_once());
    match <[Vec<f32>; 5]>::try_from(out.map_err(e)?) {
        Ok([hs, dxp, dw, db, dh0]) => Ok(RnnGrads {
            hs,
            dxp,
            dw,
            db,
            dh0,
        }),
        Err(v) => Err(BackendError::failed(
            "cuda",
            format!("{} outputs, expected 5", v.len()),
        )),
    }
}

/// The L2 cache of `device` (`cuda:N`), bytes, as the driver reports it: `wattbench ceilings`
/// sizes its copies well above it, so that they measure the device memory, not the cache.
pub fn l2_cache_bytes(device: &str) -> Result<u64, BackendError> {
    let e = |e: CudaError| e.into_backend("cuda");
    let g = crate::gpu::gpu(device).map_err(e)?;
    let l2 = g
        .ctx
        .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
        .map_err(|x| e(CudaError::lib("cuDeviceGetAttribute", x)))?;
    Ok(u64::try_from(l2).unwrap_or(0))
}

/// Device-to-device copy times of `device` (`cuda:N`) for `wattbench ceilings`: one copy of
/// `bytes` bytes between two buffers of that device, untimed, then `reps` copies each timed
/// with CUDA events; seconds per copy. The destination is read back and compared with the
/// source first, so a copy that did nothing is an error, not a bandwidth.
pub fn copy_times(device: &str, bytes: usize, reps: usize) -> Result<Vec<f64>, BackendError> {
    let e = |e: CudaError| e.into_backend("cuda");
    let g = crate::gpu::gpu(device).map_err(e)?;
    if let Some((free, _)) = g.mem_info() {
        if bytes.saturating_mul(2) > free {
            return Err(BackendError::Unsupported(format!(
                "two buffers of {bytes} bytes do not fit in the {free} bytes free on {device}"
            )));
        }
    }
    let pattern: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let src = g
        .stream
        .clone_htod(&pattern)
        .map_err(|x| e(CudaError::lib("cuMemcpyHtoD", x)))?;
    let mut dst = g
        .stream
        .alloc_zeros::<u8>(bytes)
        .map_err(|x| e(CudaError::lib("cuMemAlloc", x)))?;
    let mut copy = || {
        g.stream
            .memcpy_dtod(&src, &mut dst)
            .map_err(|x| CudaError::lib("cuMemcpyDtoD", x))
    };
    copy().and_then(|()| g.sync()).map_err(e)?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        times.push(g.time_with_events(1, &mut copy).map_err(e)?.as_secs_f64());
    }
    let back = g
        .stream
        .clone_dtoh(&dst)
        .map_err(|x| e(CudaError::lib("cuMemcpyDtoH", x)))?;
    if back != pattern {
        return Err(BackendError::failed(
            "cuda",
            format!("the device-to-device copy on {device} did not reproduce its source"),
        ));
    }
    Ok(times)
}
