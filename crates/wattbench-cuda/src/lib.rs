//! wattbench's GPU backends.
//!
//! - `cuda`: our kernels (`kernels/*.cu`), compiled with NVRTC for the device's compute
//!   capability on first use and cached on disk ([`loader`]); `cuda-naive`: the naive GEMM
//!   baseline.
//! - `cublas` and `cudnn`: the vendor libraries as yardsticks ([`vendor`]).
//!
//! Everything loads CUDA libraries at run time (cudarc's dynamic loading), so the crate builds
//! without CUDA; each library is probed before first use and a missing one makes the device
//! "unavailable: <reason>" instead of a panic. GPU timing uses CUDA events.
#![warn(missing_docs)]

pub mod buffers;
pub mod cuda_backend;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod loader;
pub mod plan;
pub mod ptxas;
pub mod train;
pub mod vendor;

pub use cuda_backend::CudaKernels;
pub use error::CudaError;
pub use kernels::KernelId;
pub use loader::Loader;
pub use vendor::{Cublas, Cudnn};

/// Every GPU backend of this crate, in display order.
pub fn backends() -> Vec<Box<dyn wattbench_core::Backend>> {
    vec![
        Box::new(CudaKernels::new()),
        Box::new(CudaKernels::naive()),
        Box::new(Cublas),
        Box::new(Cudnn),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn backends_have_unique_names_and_explain_absent_devices() {
        let b = super::backends();
        let mut names: Vec<_> = b.iter().map(|b| b.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names, ["cublas", "cuda", "cuda-naive", "cudnn"]);
        for be in &b {
            for d in be.devices() {
                assert!(
                    d.available || d.reason.as_deref().is_some_and(|r| !r.is_empty()),
                    "{d:?}"
                );
            }
        }
    }
}
