//! Devices: probing the driver without panicking, the GPU inventory, and one shared context,
//! stream and module set per device.
//!
//! cudarc panics when libcuda is missing, so [`inventory`] checks for the library first and
//! every other entry point in this crate goes through it. [`GpuInfo`], [`gpus`] and
//! [`driver_version`] are public (what the CLI records); the context and module table are not.
use crate::error::CudaError;
use crate::kernels::KernelId;
use crate::loader::Loader;
use cudarc::driver::{sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wattbench_core::DeviceInfo;

/// One GPU as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    /// Device ordinal (the `N` of `cuda:N`).
    pub ordinal: usize,
    /// Marketing name, e.g. `NVIDIA H200`.
    pub name: String,
    /// Compute capability (major, minor).
    pub cc: (i32, i32),
    /// Device memory in bytes.
    pub total_mem: usize,
    /// Streaming multiprocessors (what a persistent kernel's grid is sized to).
    pub sms: u32,
}

impl GpuInfo {
    /// Compute capability as one number (9.0 -> 90), the NVRTC architecture.
    pub fn arch(&self) -> u32 {
        (self.cc.0 * 10 + self.cc.1) as u32
    }
}

fn probe_driver() -> Result<Vec<GpuInfo>, String> {
    // SAFETY: only tries to dlopen the candidate library names.
    if !unsafe { sys::is_culib_present() } {
        return Err("libcuda.so not found (no NVIDIA driver on this machine)".into());
    }
    use cudarc::driver::result::device;
    let count = CudaContext::device_count().map_err(|e| format!("cuInit failed: {e:?}"))?;
    if count <= 0 {
        return Err("the NVIDIA driver reports no CUDA device".into());
    }
    let mut out = Vec::new();
    for i in 0..count {
        let dev = device::get(i).map_err(|e| format!("cuDeviceGet({i}): {e:?}"))?;
        let attr = |a| {
            // SAFETY: `dev` is a valid device handle from cuDeviceGet.
            unsafe { device::get_attribute(dev, a) }.map_err(|e| format!("{e:?}"))
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sms = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        out.push(GpuInfo {
            ordinal: i as usize,
            name: device::get_name(dev).unwrap_or_else(|_| "unknown NVIDIA GPU".into()),
            cc: (major, minor),
            // SAFETY: as above.
            total_mem: unsafe { device::total_mem(dev) }.unwrap_or(0),
            sms: sms.max(1) as u32,
        });
    }
    Ok(out)
}

/// The GPUs on this machine, or why there are none (no driver, no device). Probed once per
/// process; never panics when the driver is missing.
pub fn gpus() -> Result<Vec<GpuInfo>, String> {
    inventory()
}

/// The GPUs on this machine, or why there are none. Probed once per process.
pub(crate) fn inventory() -> Result<Vec<GpuInfo>, String> {
    static INV: OnceLock<Result<Vec<GpuInfo>, String>> = OnceLock::new();
    INV.get_or_init(probe_driver).clone()
}

/// The driver's CUDA version as `major.minor`, when the driver is present.
pub fn driver_version() -> Option<String> {
    inventory().ok()?;
    let mut v = 0;
    // SAFETY: the library is present (inventory succeeded); `v` is valid for writes.
    let r = unsafe { sys::cuDriverGetVersion(&mut v) };
    (r == sys::CUresult::CUDA_SUCCESS).then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// Device list for a backend: every GPU, each available unless `extra` (a library probe)
/// says why not; or one unavailable `cuda:0` with the driver's reason.
pub(crate) fn device_infos(extra: impl Fn() -> Result<(), String>) -> Vec<DeviceInfo> {
    match inventory() {
        Err(reason) => vec![DeviceInfo::unavailable("cuda:0", reason)],
        Ok(gpus) => {
            let lib = extra();
            gpus.iter()
                .map(|g| {
                    let name = format!("cuda:{}", g.ordinal);
                    match &lib {
                        Ok(()) => DeviceInfo {
                            name,
                            available: true,
                            reason: Some(format!(
                                "{} (sm_{}, {} GiB)",
                                g.name,
                                g.arch(),
                                g.total_mem >> 30
                            )),
                        },
                        Err(r) => DeviceInfo::unavailable(name, r.clone()),
                    }
                })
                .collect()
        }
    }
}

/// Parse `cuda:N` (or `cuda`, meaning `cuda:0`).
pub(crate) fn parse_device(device: &str) -> Result<usize, String> {
    match device.strip_prefix("cuda") {
        Some("") => Ok(0),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("`{device}` is not a CUDA device name; use cuda:N")),
        None => Err(format!(
            "this backend runs on CUDA devices (cuda:N), not `{device}`"
        )),
    }
}

/// A context, its stream and the kernel modules loaded into it.
pub(crate) struct Gpu {
    /// What the driver reports.
    pub(crate) info: GpuInfo,
    /// The device's primary context.
    pub(crate) ctx: Arc<CudaContext>,
    /// The stream every backend launches on (the context's default stream: no cross-stream
    /// event tracking on each launch).
    pub(crate) stream: Arc<CudaStream>,
    modules: Mutex<HashMap<KernelId, Arc<CudaModule>>>,
}

/// The process-wide kernel loader (disk cache at [`Loader::default_cache_dir`]).
pub(crate) fn loader() -> &'static Loader {
    static L: OnceLock<Loader> = OnceLock::new();
    L.get_or_init(|| Loader::new(Loader::default_cache_dir()))
}

/// The shared [`Gpu`] for `device` (`cuda:N`), created on first use.
pub(crate) fn gpu(device: &str) -> Result<Arc<Gpu>, CudaError> {
    static GPUS: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    let ordinal = parse_device(device).map_err(CudaError::Unavailable)?;
    let gpus = inventory().map_err(CudaError::Unavailable)?;
    let info = gpus
        .iter()
        .find(|g| g.ordinal == ordinal)
        .cloned()
        .ok_or_else(|| {
            CudaError::Unavailable(format!("no device {device}: {} GPU(s) here", gpus.len()))
        })?;
    let map = GPUS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map
        .lock()
        .map_err(|_| CudaError::lib("GPU table", "poisoned lock"))?;
    if let Some(g) = map.get(&ordinal) {
        return Ok(g.clone());
    }
    let ctx =
        CudaContext::new(ordinal).map_err(|e| CudaError::lib("cuCtx (primary context)", e))?;
    let stream = ctx.default_stream();
    let g = Arc::new(Gpu {
        info,
        ctx,
        stream,
        modules: Mutex::new(HashMap::new()),
    });
    map.insert(ordinal, g.clone());
    Ok(g)
}

impl Gpu {
    /// Load (compiling on first use) kernel `entry` of file `id` for this device.
    pub(crate) fn function(&self, id: KernelId, entry: &str) -> Result<CudaFunction, CudaError> {
        let module = {
            let mut m = self
                .modules
                .lock()
                .map_err(|_| CudaError::lib("module table", "poisoned lock"))?;
            match m.get(&id) {
                Some(m) => m.clone(),
                None => {
                    let ptx = loader().ptx(id, self.info.arch())?;
                    let module = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                        .map_err(|e| CudaError::lib("cuModuleLoadData (PTX JIT)", e))?;
                    m.insert(id, module.clone());
                    module
                }
            }
        };
        let f = module
            .load_function(entry)
            .map_err(|e| CudaError::lib("cuModuleGetFunction", e))?;
        if id == KernelId::GemmSm90 && entry.starts_with("gemm_wgmma") {
            // The kernel check verifies ptxas's register count offline; the driver compiles the
            // PTX again here, and a count short of the setmaxnreg trade would hang the launch
            // before any barrier's watchdog could trap it.
            let regs = f
                .num_regs()
                .map_err(|e| CudaError::lib("cuFuncGetAttribute (registers)", e))?;
            crate::ops::gemm::register_pool_check(regs.max(0) as u32).map_err(|why| {
                CudaError::Library {
                    what: "the driver's compilation of the Hopper GEMM",
                    msg: format!(
                        "{entry}: {why}; not launched. Report it with the driver version \
                         (`wattbench info`); backends cuda and cublas are unaffected"
                    ),
                }
            })?;
        }
        Ok(f)
    }

    /// (free, total) device memory.
    pub(crate) fn mem_info(&self) -> Option<(usize, usize)> {
        self.ctx.mem_get_info().ok()
    }

    /// Wait for the stream.
    pub(crate) fn sync(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(|e| CudaError::lib("cuStreamSynchronize", e))
    }

    /// Time `iters` calls of `launch` with CUDA events around them, on this device's stream.
    pub(crate) fn time_with_events(
        &self,
        iters: u64,
        mut launch: impl FnMut() -> Result<(), CudaError>,
    ) -> Result<Duration, CudaError> {
        let flags = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self
            .ctx
            .new_event(flags)
            .map_err(|e| CudaError::lib("cuEventCreate", e))?;
        let end = self
            .ctx
            .new_event(flags)
            .map_err(|e| CudaError::lib("cuEventCreate", e))?;
        self.sync()?;
        start
            .record(&self.stream)
            .map_err(|e| CudaError::lib("cuEventRecord", e))?;
        for _ in 0..iters {
            launch()?;
        }
        end.record(&self.stream)
            .map_err(|e| CudaError::lib("cuEventRecord", e))?;
        end.synchronize()
            .map_err(|e| CudaError::lib("cuEventSynchronize", e))?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(|e| CudaError::lib("cuEventElapsedTime", e))?;
        Ok(Duration::from_secs_f64(ms as f64 / 1e3))
    }
}

/// Tracks a case's device memory: the device-wide used bytes before its allocations, and the
/// highest used bytes seen after them. Reports the difference (includes other processes'
/// changes: meant for a dedicated GPU).
pub(crate) struct MemTracker {
    base: Option<usize>,
    peak: Option<usize>,
}

impl MemTracker {
    /// Take the baseline now, before allocating.
    pub(crate) fn start(g: &Gpu) -> Self {
        Self {
            base: g.mem_info().map(|(f, t)| t - f),
            peak: None,
        }
    }
    /// Observe the current use.
    pub(crate) fn observe(&mut self, g: &Gpu) {
        if let Some((f, t)) = g.mem_info() {
            self.peak = Some(self.peak.unwrap_or(0).max(t - f));
        }
    }
    /// Peak use above the baseline.
    pub(crate) fn peak_bytes(&self) -> Option<u64> {
        Some(self.peak?.saturating_sub(self.base?) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!(parse_device("cuda:1"), Ok(1));
        assert_eq!(parse_device("cuda"), Ok(0));
        assert!(parse_device("cpu").unwrap_err().contains("cuda:N"));
        assert!(parse_device("cuda:x").is_err());
    }

    #[test]
    fn device_infos_never_panic_and_explain_absence() {
        let d = device_infos(|| Ok(()));
        assert!(!d.is_empty());
        for i in &d {
            assert!(i.name.starts_with("cuda:"));
            if !i.available {
                assert!(i.reason.as_deref().is_some_and(|r| !r.is_empty()), "{i:?}");
            }
        }
    }
}
