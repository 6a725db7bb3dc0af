//! The backends compiled into this binary, and placeholders that say why the others are not.
use wattbench_core::reference::ReferenceBackend;
use wattbench_core::tensor::HostTensor;
use wattbench_core::{Backend, BackendError, Case, DeviceInfo, Prepared};

/// A backend left out of this build: lists its devices as unavailable with the reason.
struct NotBuilt {
    name: &'static str,
    devices: &'static [&'static str],
    reason: &'static str,
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

/// Every backend, in display order.
pub fn all() -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![
        Box::new(ReferenceBackend),
        Box::new(wattbench_candle::CandleBackend),
    ];
    #[cfg(feature = "tch")]
    v.push(Box::new(wattbench_tch::TchBackend));
    #[cfg(not(feature = "tch"))]
    v.push(Box::new(NotBuilt {
        name: "tch",
        devices: &["cpu", "cuda"],
        reason: "built without the `tch` feature (run `make build`, which fetches libtorch)",
    }));
    for name in ["cuda", "cublas", "cudnn"] {
        v.push(Box::new(NotBuilt {
            name,
            devices: &["cuda:0"],
            reason: "GPU backends are not in this build yet (no CUDA backend crate compiled in)",
        }));
    }
    v
}
