//! The backends compiled into this binary, and placeholders that say why the others are not.
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

/// Every backend, in display order.
pub fn all() -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![
        Box::new(ReferenceBackend),
        Box::new(wattbench_candle::CandleBackend),
    ];
    #[cfg(feature = "tch")]
    v.push(Box::new(wattbench_tch::TchBackend));
    #[cfg(not(feature = "tch"))]
    v.push(Box::new(not_built::NotBuilt {
        name: "tch",
        devices: &["cpu", "cuda"],
        reason: "built without the `tch` feature (run `make build`, which fetches libtorch)",
    }));
    #[cfg(feature = "cuda")]
    v.extend(wattbench_cuda::backends());
    #[cfg(not(feature = "cuda"))]
    for name in ["cuda", "cuda-naive", "cublas", "cudnn"] {
        v.push(Box::new(not_built::NotBuilt {
            name,
            devices: &["cuda:0"],
            reason: "built without the `cuda` feature",
        }));
    }
    v
}
