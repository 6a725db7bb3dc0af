//! The backends compiled into this binary, built once and shared, and placeholders that say
//! why the others are not.
use std::sync::Arc;
use wattbench_core::reference::ReferenceBackend;
use wattbench_core::Backend;

#[cfg(any(not(feature = "tch"), not(feature = "cuda")))]
mod not_built {
    use wattbench_core::tensor::HostTensor;
    use wattbench_core::{Backend, BackendError, Case, DeviceInfo, Prepared};

    /// A backend left out of this build: lists its devices as unavailable with the reason.
    pub struct NotBuilt {
        pub name: &'static str,
        pub devices: &'static [&'static str],
        pub reason: &'static str,
    }

    impl Backend for NotBuilt {
        fn name(&self) -> &'static str {
            self.name
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            self.devices
                .iter()
                .map(|d| DeviceInfo::unavailable(*d, self.reason))
                .collect()
        }
        fn supports(&self, _: &Case, _: &str) -> Result<(), String> {
            Err(format!("unavailable: {}", self.reason))
        }
        fn prepare(
            &self,
            _: &Case,
            _: &str,
            _: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            Err(BackendError::Unavailable(self.reason.into()))
        }
    }
}

/// The backends of `wattbench-cuda`, in its order (`wattbench_cuda::backends`), listed as
/// unavailable in a build without it.
#[cfg_attr(feature = "cuda", allow(dead_code))]
const CUDA_BACKENDS: [&str; 6] = [
    "cuda",
    "cuda-naive",
    "cuda-wgmma",
    "cuda-wgmma-c2",
    "cublas",
    "cudnn",
];

/// Every backend, in display order.
pub fn all() -> Vec<Arc<dyn Backend>> {
    let mut v: Vec<Arc<dyn Backend>> = vec![
        Arc::new(ReferenceBackend),
        Arc::new(wattbench_candle::CandleBackend),
    ];
    #[cfg(feature = "tch")]
    v.push(Arc::new(wattbench_tch::TchBackend));
    #[cfg(not(feature = "tch"))]
    v.push(Arc::new(not_built::NotBuilt {
        name: "tch",
        devices: &["cpu", "cuda"],
        reason: "built without the `tch` feature (run `make build`, which fetches libtorch)",
    }));
    #[cfg(feature = "cuda")]
    v.extend(wattbench_cuda::backends().into_iter().map(Arc::from));
    #[cfg(not(feature = "cuda"))]
    for name in CUDA_BACKENDS {
        v.push(Arc::new(not_built::NotBuilt {
            name,
            devices: &["cuda:0"],
            reason: "built without the `cuda` feature",
        }));
    }
    v
}

/// Whether `device` runs code that this project has never run on such hardware: every GPU
/// path so far (no GPU results exist yet; the README's backend table says the same), so
/// `list` labels an available GPU device UNVERIFIED ON HARDWARE. A session that commits GPU
/// results narrows this to what they did not cover.
pub fn unverified_on_hardware(device: &str) -> bool {
    device.starts_with("cuda")
}

#[cfg(test)]
mod tests {
    #[test]
    fn gpu_devices_are_unverified_and_cpus_are_not() {
        assert!(super::unverified_on_hardware("cuda:0"));
        assert!(super::unverified_on_hardware("cuda"));
        assert!(!super::unverified_on_hardware("cpu"));
    }

    /// Every backend is listed, built or not: the placeholders of a build without the `cuda`
    /// feature are the CUDA crate's backends of a build with it.
    #[test]
    fn every_backend_is_listed_built_or_not() {
        let names: Vec<&str> = super::all().iter().map(|b| b.name()).collect();
        let want: Vec<&str> = ["reference", "candle", "tch"]
            .into_iter()
            .chain(super::CUDA_BACKENDS)
            .collect();
        assert_eq!(names, want);
    }
}
