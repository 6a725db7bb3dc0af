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

/// A GPU on which a backend's GPU device passed the GPU check (`scripts/gpu-check.sh`): its
/// generic checks against the f64 reference, and its GPU tests and timed cases where it has
/// them, with the results committed under `results`. `list` names it, so that a user can tell code that has
/// run on hardware, and on which, from code that has only compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardwareRecord {
    /// The GPU, as NVML names it.
    pub gpu: &'static str,
    /// Its CUDA compute capability.
    pub compute_capability: &'static str,
    /// The NVIDIA driver, with the CUDA version it supports.
    pub driver: &'static str,
    /// The CUDA and framework libraries the check ran with.
    pub libraries: &'static str,
    /// The day of the run.
    pub date: &'static str,
    /// The committed results of the run, relative to the repository root.
    pub results: &'static str,
}

impl HardwareRecord {
    /// One line for `list`: the GPU, its generation and driver, the day and the results.
    pub fn describe(&self) -> String {
        format!(
            "{} (compute capability {}, driver {}) on {}, {}",
            self.gpu, self.compute_capability, self.driver, self.date, self.results
        )
    }

    /// The record as `list --json` prints it.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "gpu": self.gpu,
            "compute_capability": self.compute_capability,
            "driver": self.driver,
            "libraries": self.libraries,
            "date": self.date,
            "results": self.results,
        })
    }
}

/// The first GPU run (issue 8): every GPU backend of the bundle passed there.
const H200_2026_11_30: HardwareRecord = HardwareRecord {
    gpu: "NVIDIA H200",
    compute_capability: "9.0",
    driver: "580.159.04 (CUDA 13.0)",
    // As loaded (the result files' `environment.libraries`): our backends took cuBLAS and NVRTC
    // from the toolkit and cuDNN from the system, cuBLASLt from the wheels: a mix.
    libraries: "cuBLAS 13.1.0 and NVRTC 13.0.88 of the CUDA 13.0 toolkit, cuDNN 9.14.0 of the \
                system, cuBLASLt and the CUDA runtime of the pip wheels, libtorch 2.11.0+cu130",
    date: "2026-11-30",
    results: "results/gpu/2026-11-30-h200",
};

/// The GPUs on which `backend`'s GPU devices have been verified (the README's GPU status says
/// the same); empty for a backend that has never run on a GPU. A session that commits GPU
/// results from another GPU adds its record here.
pub fn verified_on(backend: &str) -> &'static [HardwareRecord] {
    match backend {
        "cuda" | "cuda-naive" | "cuda-wgmma" | "cuda-wgmma-c2" | "cublas" | "cudnn" | "tch"
        | "candle" => &[H200_2026_11_30],
        _ => &[],
    }
}

/// Whether `backend` on `device` runs code that this project has never run on any GPU: a GPU
/// device of a backend with no [`HardwareRecord`]. `list` labels such a device UNVERIFIED ON
/// HARDWARE; a CPU device never is.
pub fn unverified_on_hardware(backend: &str, device: &str) -> bool {
    device.starts_with("cuda") && verified_on(backend).is_empty()
}

/// `list`'s words for an available device: where a GPU device was verified, and that other
/// GPUs were not; or that it never ran on a GPU.
pub fn hardware_state(backend: &str, device: &str) -> String {
    if !device.starts_with("cuda") {
        return "available".into();
    }
    match verified_on(backend) {
        [] => "available, UNVERIFIED ON HARDWARE (this project has not run it on a GPU yet)".into(),
        records => format!(
            "available; verified on {}; UNVERIFIED on other GPUs",
            records
                .iter()
                .map(HardwareRecord::describe)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    /// The GPU backends of the H200 run, exactly, name it; a CPU device is never labelled, and
    /// a GPU backend without a record (one added later) is.
    #[test]
    fn gpu_backends_name_the_gpu_they_were_verified_on() {
        const RAN_ON_THE_H200: [&str; 8] = [
            "candle",
            "tch",
            "cuda",
            "cuda-naive",
            "cuda-wgmma",
            "cuda-wgmma-c2",
            "cublas",
            "cudnn",
        ];
        for b in super::all() {
            let gpu = b.devices().iter().any(|d| d.name.starts_with("cuda"));
            let verified = RAN_ON_THE_H200.contains(&b.name());
            assert_eq!(
                !super::verified_on(b.name()).is_empty(),
                verified,
                "{}",
                b.name()
            );
            if gpu && !verified {
                assert!(
                    super::unverified_on_hardware(b.name(), "cuda:0"),
                    "{}",
                    b.name()
                );
            }
            if verified {
                assert!(!super::unverified_on_hardware(b.name(), "cuda:0"));
                let state = super::hardware_state(b.name(), "cuda:0");
                assert!(state.contains("verified on NVIDIA H200"), "{state}");
                assert!(state.contains("UNVERIFIED on other GPUs"), "{state}");
            }
            assert!(!super::unverified_on_hardware(b.name(), "cpu"));
            assert_eq!(super::hardware_state(b.name(), "cpu"), "available");
        }
        assert!(super::unverified_on_hardware("a-new-gpu-backend", "cuda:0"));
        assert!(
            super::hardware_state("a-new-gpu-backend", "cuda:0").contains("UNVERIFIED ON HARDWARE")
        );
    }

    /// A record points at results that are in the repository.
    #[test]
    fn hardware_records_point_at_committed_results() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for b in super::all() {
            for r in super::verified_on(b.name()) {
                let readme = root.join(r.results).join("README.md");
                assert!(
                    readme.is_file(),
                    "{}: {} is missing",
                    b.name(),
                    readme.display()
                );
                let text = std::fs::read_to_string(&readme).unwrap();
                assert!(
                    text.contains(r.gpu) && text.contains(r.date),
                    "{}",
                    readme.display()
                );
            }
        }
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
