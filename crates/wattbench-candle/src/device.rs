//! candle's devices by name: `cpu`, and `cuda:N` (with the `cuda` feature; without it, listed
//! unavailable). Owns the probe that keeps a missing CUDA library an error value: cudarc, under
//! candle, panics when it loads a library that is absent, so the driver, cuBLAS(Lt) and cuRAND
//! (what candle's `CudaDevice` loads when it is created) are checked first, once.
use candle_core::Device;
use wattbench_core::DeviceInfo;

/// Every device this build knows, available or not, with the reason when not.
pub(crate) fn list() -> Vec<DeviceInfo> {
    let mut out = vec![DeviceInfo::available("cpu")];
    out.extend(cuda::list());
    out
}

/// Checks that `name` is a device this build can use here, without opening it.
pub(crate) fn check(name: &str) -> Result<(), String> {
    match name {
        "cpu" => Ok(()),
        other => cuda::check(other),
    }
}

/// The candle device for `name`.
pub(crate) fn open(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        other => cuda::open(other),
    }
}

/// The ordinal `N` of a `cuda:N` name.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn ordinal(name: &str) -> Option<usize> {
    name.strip_prefix("cuda:")?.parse().ok()
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::*;

    const WHY: &str = "built without candle's `cuda` feature (wattbench's `candle-cuda`; \
                       candle's kernels need nvcc at build time: `make gpu-bundle`)";

    pub(super) fn list() -> Vec<DeviceInfo> {
        vec![DeviceInfo::unavailable("cuda:0", WHY)]
    }

    fn absent(name: &str) -> String {
        format!("candle device `{name}` is not available in this build (CPU only)")
    }

    pub(super) fn check(name: &str) -> Result<(), String> {
        Err(absent(name))
    }

    pub(super) fn open(name: &str) -> Result<Device, String> {
        Err(absent(name))
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use cudarc::driver::CudaContext;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::thread::ThreadId;

    /// The number of GPUs, or why candle cannot use any. Probed once per process.
    fn probe() -> Result<usize, String> {
        static PROBE: OnceLock<Result<usize, String>> = OnceLock::new();
        PROBE
            .get_or_init(|| {
                // SAFETY: each only tries to dlopen the library's candidate names.
                if !unsafe { cudarc::driver::sys::is_culib_present() } {
                    return Err("libcuda.so not found (no NVIDIA driver on this machine)".into());
                }
                let count =
                    CudaContext::device_count().map_err(|e| format!("cuInit failed: {e}"))?;
                if count <= 0 {
                    return Err("the NVIDIA driver reports no CUDA device".into());
                }
                // SAFETY: as above.
                let libs = unsafe {
                    [
                        (
                            "cuBLAS (libcublas.so.13)",
                            cudarc::cublas::sys::is_culib_present(),
                        ),
                        (
                            "cuBLASLt (libcublasLt.so.13)",
                            cudarc::cublaslt::sys::is_culib_present(),
                        ),
                        (
                            "cuRAND (libcurand.so.10)",
                            cudarc::curand::sys::is_culib_present(),
                        ),
                    ]
                };
                let missing: Vec<&str> = libs
                    .iter()
                    .filter(|(_, present)| !present)
                    .map(|(lib, _)| *lib)
                    .collect();
                if !missing.is_empty() {
                    return Err(format!(
                        "{} not found; candle's CUDA device loads it (put the CUDA wheels' \
                         lib folders, nvidia/cu13/lib, on LD_LIBRARY_PATH)",
                        missing.join(", ")
                    ));
                }
                Ok(count as usize)
            })
            .clone()
    }

    pub(super) fn list() -> Vec<DeviceInfo> {
        match probe() {
            Ok(n) => (0..n)
                .map(|i| DeviceInfo::available(format!("cuda:{i}")))
                .collect(),
            Err(why) => vec![DeviceInfo::unavailable("cuda:0", why)],
        }
    }

    pub(super) fn check(name: &str) -> Result<(), String> {
        let Some(n) = ordinal(name) else {
            return Err(format!(
                "candle has no device `{name}` (devices: cpu, cuda:N)"
            ));
        };
        let count = probe()?;
        if n >= count {
            return Err(format!(
                "candle device `{name}` does not exist ({count} GPU(s): cuda:0..cuda:{})",
                count - 1
            ));
        }
        Ok(())
    }

    /// One candle device per thread and GPU, created on first use and kept for the process.
    /// candle's `CudaDevice` runs on the per-thread default stream, so its work, its
    /// `synchronize` and its cuBLAS handle belong to the thread that uses them; one device per
    /// thread keeps them together (tests run on many threads; `run` on one worker). Kept, not
    /// dropped, so that candle's modules load once and nothing is torn down at exit.
    pub(super) fn open(name: &str) -> Result<Device, String> {
        check(name)?;
        let n = ordinal(name).expect("checked");
        static OPEN: OnceLock<Mutex<HashMap<(ThreadId, usize), Device>>> = OnceLock::new();
        let mut open = OPEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = (std::thread::current().id(), n);
        if let Some(d) = open.get(&key) {
            return Ok(d.clone());
        }
        let d = Device::new_cuda(n).map_err(|e| {
            let text = e.to_string();
            format!(
                "candle could not open {name}: {}",
                text.lines().next().unwrap_or("").trim()
            )
        })?;
        open.insert(key, d.clone());
        Ok(d)
    }
}
