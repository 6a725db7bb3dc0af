//! Vendor yardsticks: `cublas` (GEMM: SGEMM-equivalent fp32, and bf16/f16 GemmEx with fp32
//! accumulation; [`cublas`]) and `cudnn` (conv2d in fp32 FMA math, forward and whole training
//! steps, with deliberately chosen algorithms; [`cudnn`]).
//!
//! Each is a library call ([`DeviceCall`]) on buffers from the same [`PlanBuilder`] our kernels
//! use, so uploads, poisoned outputs, in-place weight updates, timing and memory tracking are
//! shared. This module also owns the library probes (cudarc panics when a library is missing,
//! so each is probed before first use) and the library versions the backends record.
pub(crate) mod cublas;
pub(crate) mod cudnn;

pub use cublas::Cublas;
pub use cudnn::Cudnn;

use crate::backend::prepare_device;
use crate::device::DeviceCall;
use crate::error::CudaError;
use crate::gpu::Gpu;
use crate::plan::{PlanBuilder, View};
use cudarc::cublas::sys as cbs;
use cudarc::cudnn::sys as cds;
use std::sync::Arc;
use wattbench_core::tensor::HostTensor;
use wattbench_core::{Backend, BackendError, Case, Mode, Prepared};

/// Whether libcublas can be loaded; why not.
pub(crate) fn probe_cublas() -> Result<(), String> {
    // SAFETY: only tries to dlopen the candidate library names.
    if unsafe { cbs::is_culib_present() } {
        Ok(())
    } else {
        Err(
            "libcublas.so not found (put the CUDA 13 cuBLAS library directory, e.g. the \
             nvidia-cublas wheel's lib/, on LD_LIBRARY_PATH)"
                .into(),
        )
    }
}

/// The cuDNN major version cudarc's bindings are generated for (`cudnn-09021`). Its enums
/// (above all `cudnnStatus_t`: 1..14 in cuDNN 8, 1001..5004 in 9) are Rust enums, so another
/// major's status codes would be invalid values, not errors.
const CUDNN_MAJOR: i32 = 9;

/// Whether libcudnn can be loaded, and is the major version the bindings describe; why not.
pub(crate) fn probe_cudnn() -> Result<(), String> {
    // SAFETY: only tries to dlopen the candidate library names.
    if !unsafe { cds::is_culib_present() } {
        return Err(
            "libcudnn.so not found (put cuDNN 9's lib/, e.g. the nvidia-cudnn-cu13 wheel's, on \
             LD_LIBRARY_PATH)"
                .into(),
        );
    }
    // cudarc loads the first candidate name that opens, unversioned `libcudnn.so` first: a
    // system cuDNN 8 found under that name would win over the wheel's `libcudnn.so.9`.
    let mut major = 0;
    // SAFETY: the library is present (above); `major` is valid for writes. SUCCESS is 0 in
    // every major version.
    let r = unsafe { cds::cudnnGetProperty(cds::libraryPropertyType::MAJOR_VERSION, &mut major) };
    let got = (r == cds::cudnnStatus_t::CUDNN_STATUS_SUCCESS).then_some(major);
    check_cudnn_major(got)
}

/// [`probe_cudnn`]'s version rule on the major version the library reports (`None`: the query
/// failed, which a cuDNN 9 never does).
fn check_cudnn_major(got: Option<i32>) -> Result<(), String> {
    match got {
        Some(CUDNN_MAJOR) => Ok(()),
        Some(m) => Err(format!(
            "the libcudnn loaded is cuDNN {m}, but the bindings are cuDNN {CUDNN_MAJOR} (put \
             cuDNN {CUDNN_MAJOR}'s lib/ first on LD_LIBRARY_PATH, with no other libcudnn.so \
             found before it)"
        )),
        None => Err("libcudnn loads but cudnnGetProperty(MAJOR_VERSION) fails".into()),
    }
}

/// `major.minor.patch` from a library's `*GetProperty` (MAJOR, MINOR, PATCH), or `None` when
/// a query fails.
fn property_version(get: impl Fn(u32) -> Option<i32>) -> Option<String> {
    let [major, minor, patch] = [0, 1, 2].map(&get);
    Some(format!("{}.{}.{}", major?, minor?, patch?))
}

/// cuBLAS's version (`cublasGetProperty`: no handle, no context), when the library loads.
pub(crate) fn cublas_version() -> Option<String> {
    probe_cublas().ok()?;
    property_version(|which| {
        let kind = match which {
            0 => cbs::libraryPropertyType::MAJOR_VERSION,
            1 => cbs::libraryPropertyType::MINOR_VERSION,
            _ => cbs::libraryPropertyType::PATCH_LEVEL,
        };
        let mut v = 0;
        // SAFETY: the library is present (probed above); `v` is valid for writes.
        let r = unsafe { cbs::cublasGetProperty(kind, &mut v) };
        (r == cbs::cublasStatus_t::CUBLAS_STATUS_SUCCESS).then_some(v)
    })
}

/// cuDNN's version (`cudnnGetProperty`: no handle, no context), when the library loads.
pub(crate) fn cudnn_version() -> Option<String> {
    probe_cudnn().ok()?;
    property_version(|which| {
        let kind = match which {
            0 => cds::libraryPropertyType::MAJOR_VERSION,
            1 => cds::libraryPropertyType::MINOR_VERSION,
            _ => cds::libraryPropertyType::PATCH_LEVEL,
        };
        let mut v = 0;
        // SAFETY: the library is present (probed above); `v` is valid for writes.
        let r = unsafe { cds::cudnnGetProperty(kind, &mut v) };
        (r == cds::cudnnStatus_t::CUDNN_STATUS_SUCCESS).then_some(v)
    })
}

/// A vendor backend's `prepare`: the shared checks and the library `probe`, then the inputs
/// uploaded in the case's dtype and one NaN-poisoned buffer per output (in training, the
/// updated weights are the weight inputs themselves, updated in place so the next call uses
/// them, as our kernels do), then the call `make` sets up on them. `make` gets the views of
/// the inputs, then of the poisoned outputs, in order.
pub(crate) fn prepare_library<C: DeviceCall + 'static>(
    backend: &dyn Backend,
    probe: fn() -> Result<(), String>,
    case: &Case,
    device: &str,
    inputs: &[HostTensor],
    make: impl FnOnce(&Arc<Gpu>, Vec<View>) -> Result<C, CudaError>,
) -> Result<Box<dyn Prepared>, BackendError> {
    let g = prepare_device(backend, case, device, inputs, probe)?;
    let name = backend.name();
    let e = |e: CudaError| e.into_backend(name);
    let mut b = PlanBuilder::new();
    let mut ids = b.upload_all(inputs, case.dtype);
    let specs = case.output_specs();
    let updated = match case.mode {
        Mode::Train => case.params.weight_inputs(),
        Mode::Infer => Vec::new(),
    };
    let fresh = specs.len().saturating_sub(updated.len());
    for spec in &specs[..fresh] {
        let out = b.poisoned(spec.numel(), case.dtype);
        b.output(b.whole(out)).map_err(e)?;
        ids.push(out);
    }
    for &wi in &updated {
        let w = ids
            .get(wi)
            .copied()
            .ok_or_else(|| BackendError::failed(name, format!("{case}: no weight input {wi}")))?;
        b.output(b.whole(w)).map_err(e)?;
    }
    let views = ids.into_iter().map(|i| b.whole(i)).collect();
    let case = b
        .into_library_case(&g, name, |g| make(g, views))
        .map_err(e)?;
    Ok(Box::new(case))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cudnn_9_is_used() {
        assert_eq!(check_cudnn_major(Some(9)), Ok(()));
        for other in [Some(8), Some(10), None] {
            assert!(check_cudnn_major(other).is_err(), "{other:?}");
        }
        assert!(check_cudnn_major(Some(8)).unwrap_err().contains("cuDNN 8"));
    }

    #[test]
    fn property_versions_need_every_part() {
        assert_eq!(
            property_version(|w| Some([9, 19, 0][w as usize])).as_deref(),
            Some("9.19.0")
        );
        assert_eq!(property_version(|w| (w != 2).then_some(1)), None);
    }

    /// A smoke test: asking is safe whether the libraries load or not. Where one loads (a GPU
    /// machine), its version has three parts; without them (most machines that run the unit
    /// tests) there is nothing to check: `property_versions_need_every_part` checks the format.
    #[test]
    fn versions_never_panic_without_the_libraries() {
        for v in [cublas_version(), cudnn_version()].into_iter().flatten() {
            assert_eq!(v.split('.').count(), 3, "{v}");
        }
    }
}
