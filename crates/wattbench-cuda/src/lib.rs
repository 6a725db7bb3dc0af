//! wattbench's GPU backends.
//!
//! - `cuda`: our kernels (`kernels/*.cu`), compiled with NVRTC for the device's compute
//!   capability on first use and cached on disk ([`Loader`]); `cuda-naive`: the naive GEMM
//!   baseline; `cuda-wgmma`: the Hopper GEMM (wgmma fed by TMA, compiled for sm_90a, run on
//!   compute capability 9.0 only). Verified on one NVIDIA H200 (results/gpu/2026-11-30-h200);
//!   other GPUs are unverified.
//! - `cublas` (GEMM forward) and `cudnn` (conv2d forward and training steps, algorithms chosen
//!   by timing them): the vendor libraries as yardsticks.
//!
//! Every case records what ran (`Prepared::implementation`: our entry points, or the library
//! call and algorithms) and, where cuDNN picks an FFT or Winograd algorithm, the looser
//! tolerance it needs (`Prepared::tolerance`). The backends report the versions of the
//! libraries they use (`cuda-driver`, `nvrtc`, `cublas`, `cudnn`), each only where it loads.
//!
//! Everything loads CUDA libraries at run time (cudarc's dynamic loading), so the crate builds
//! without CUDA; each library is probed before first use and a missing one makes the device
//! `unavailable: <reason>` instead of a panic. GPU timing uses CUDA events.
//!
//! Inside, each op's module (`ops/`) describes a case as a plan of buffers and steps on one
//! checked builder (`plan`); `device` allocates it and is the one `Prepared` implementation
//! of all backends. Raw device pointers never leave the crate: the public surface is the
//! backends, the kernel sources and their compiler, and safe host-level helpers.

mod backend;
mod device;
#[cfg(test)]
mod emulator;
mod error;
mod gpu;
pub mod host;
mod kernels;
mod loader;
mod ops;
mod plan;
pub mod ptxas;
mod vendor;

pub use backend::CudaKernels;
pub use error::CudaError;
pub use gpu::{driver_version, gpus, GpuInfo};
pub use kernels::KernelId;
pub use loader::{compile_options, nvrtc_probe, nvrtc_version, Loader};
pub use ops::gemm::{wgmma_entry_points, TC_SMEM_BYTES, WGMMA_N64_SMEM_BYTES, WGMMA_SMEM_BYTES};
pub use vendor::{Cublas, Cudnn};

/// Every GPU backend of this crate, in display order.
pub fn backends() -> Vec<Box<dyn wattbench_core::Backend>> {
    vec![
        Box::new(CudaKernels::new()),
        Box::new(CudaKernels::naive()),
        Box::new(CudaKernels::wgmma()),
        Box::new(CudaKernels::wgmma_cluster()),
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
        assert_eq!(
            names,
            [
                "cublas",
                "cuda",
                "cuda-naive",
                "cuda-wgmma",
                "cuda-wgmma-c2",
                "cudnn"
            ]
        );
        for be in &b {
            for d in be.devices() {
                assert!(
                    d.available || d.reason.as_deref().is_some_and(|r| !r.is_empty()),
                    "{d:?}"
                );
            }
        }
    }

    /// A smoke test of what this machine records: without CUDA's libraries no backend records
    /// a version (the keys are tested with stubbed versions in `backend`), and none records the
    /// driver's without a driver.
    #[test]
    fn versions_are_recorded_under_the_known_keys() {
        let driver = super::driver_version().is_some();
        for b in super::backends() {
            let versions = b.versions();
            assert_eq!(
                versions.iter().any(|(k, _)| k == "cuda-driver"),
                driver,
                "{}: {versions:?}",
                b.name()
            );
            for (k, v) in versions {
                assert!(
                    ["cuda-driver", "nvrtc", "cublas", "cudnn"].contains(&k.as_str())
                        && !v.is_empty(),
                    "{}: {k} = {v}",
                    b.name()
                );
            }
        }
    }
}
