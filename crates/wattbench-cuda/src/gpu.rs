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

/// Oldest driver (its CUDA version, as `cuDriverGetVersion` reports it) these backends run
/// on: NVRTC 13.0 writes PTX ISA 9.0, which older drivers refuse to JIT; cuBLAS 13 and cuDNN's
/// CUDA 13 build need it too; and cudarc, built for CUDA 13.0, looks up entry points that
/// older drivers lack (e.g. `cuEventElapsedTime_v2`, CUDA 12.8) and panics when one is missing.
const MIN_DRIVER_CUDA: i32 = 13000;

/// Whether a driver of CUDA version `v` (e.g. 12040 for 12.4) can run these backends; why not.
fn driver_supported(v: i32) -> Result<(), String> {
    if v >= MIN_DRIVER_CUDA {
        Ok(())
    } else {
        Err(format!(
            "the NVIDIA driver supports CUDA {}.{}; these backends need a CUDA {}.{} driver \
             (R580 or later): their kernels are PTX ISA 9.0 from NVRTC 13.0, and cuBLAS/cuDNN \
             are the CUDA 13 builds",
            v / 1000,
            (v % 1000) / 10,
            MIN_DRIVER_CUDA / 1000,
            (MIN_DRIVER_CUDA % 1000) / 10
        ))
    }
}

fn probe_driver() -> Result<Vec<GpuInfo>, String> {
    // SAFETY: only tries to dlopen the candidate library names.
    if !unsafe { sys::is_culib_present() } {
        return Err("libcuda.so not found (no NVIDIA driver on this machine)".into());
    }
    // Before anything else of cudarc's: a driver too old for its CUDA 13.0 bindings would
    // make it panic on a missing entry point later (cuDriverGetVersion exists in every driver
    // and needs no cuInit).
    let mut v = 0;
    // SAFETY: the library is present (checked above); `v` is valid for writes.
    let r = unsafe { sys::cuDriverGetVersion(&mut v) };
    if r != sys::CUresult::CUDA_SUCCESS {
        return Err(format!("cuDriverGetVersion failed: {r:?}"));
    }
    driver_supported(v)?;
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

/// The driver's CUDA version as `major.minor`, when the driver is present (also when it is
/// too old for these backends, so that results say which it was).
pub fn driver_version() -> Option<String> {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to dlopen the candidate library names.
    if !*PRESENT.get_or_init(|| unsafe { sys::is_culib_present() }) {
        return None;
    }
    let mut v = 0;
    // SAFETY: the library is present (checked above); `v` is valid for writes.
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
    /// What the driver's JIT said would slow a loaded module's kernels (see
    /// [`Gpu::jit_notes`]).
    jit_notes: Mutex<HashMap<KernelId, Vec<String>>>,
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
        // A fault in an earlier case (an illegal address, a trap) leaves the context unusable
        // for the rest of the process, and every later call returns that error again: name it
        // here, for every backend on this device, rather than as each later case's own failure.
        if let Err(e) = g.stream.synchronize() {
            if is_sticky(e.0) {
                return Err(CudaError::Unavailable(context_lost(device, e.0)));
            }
        }
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
        jit_notes: Mutex::new(HashMap::new()),
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
                    // The Hopper GEMM's machine code is what the driver compiles here, not the
                    // ptxas output the kernel check verified: its PTX is compiled once first
                    // with the driver's verbose log (the load below then comes from the
                    // driver's cache), and what would break its pipeline is kept for the
                    // results of every case that runs it, and said now.
                    let notes = if id == KernelId::GemmSm90 {
                        self.jit_notes_of(id, &ptx)
                    } else {
                        Vec::new()
                    };
                    let module = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_src(ptx.clone()))
                        .map_err(|e| {
                            let log = self.jit_logs(&ptx, false).map(|l| l.error);
                            let log = log.filter(|l| !l.is_empty());
                            jit_failure(id, format!("{e:?}"), e.0, log.as_deref())
                        })?;
                    m.insert(id, module.clone());
                    if !notes.is_empty() {
                        eprintln!(
                            "warning: the driver's compilation of kernels/{} for {}: {}",
                            id.file(),
                            self.info.name,
                            notes.join("; ")
                        );
                        if let Ok(mut n) = self.jit_notes.lock() {
                            n.insert(id, notes);
                        }
                    }
                    module
                }
            }
        };
        let f = module
            .load_function(entry)
            .map_err(|e| CudaError::Library {
                what: "cuModuleGetFunction",
                msg: format!("`{entry}` in kernels/{}: {e:?}", id.file()),
            })?;
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

    /// What the driver's JIT of `id` said would slow its kernels (wgmma serialized,
    /// setmaxnreg ignored, spills), when anything; recorded only for the Hopper GEMM's file.
    pub(crate) fn jit_notes(&self, id: KernelId) -> Vec<String> {
        self.jit_notes
            .lock()
            .ok()
            .and_then(|n| n.get(&id).cloned())
            .unwrap_or_default()
    }

    /// What the driver's JIT of `ptx` (file `id`) says would slow its kernels: from its log
    /// when it compiles now (kept on disk for the processes after), else from the notes a
    /// process before kept (the driver served the module from its cache, with no log), else
    /// that it was not checked.
    fn jit_notes_of(&self, id: KernelId, ptx: &str) -> Vec<String> {
        // The driver's own file (`libcuda.so.580.159.03`) names the compiler that ran.
        let driver = wattbench_core::libraries::find("libcuda.so")
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .or_else(|| driver_version().map(|v| format!("cuda{v}")))
            .unwrap_or_else(|| "unknown-driver".into());
        let kept = loader().jit_notes_path(id, self.info.arch(), &driver, ptx);
        // The log itself is kept (what it says is read from it each time), and only that of a
        // compilation that succeeded.
        let log = match self.jit_logs(ptx, true) {
            Some(l) if l.ok && l.info.contains("Compiling entry function") => {
                if let Some(path) = &kept {
                    // A cache that cannot be written only costs this check in later processes.
                    let _ = wattbench_core::output::write_atomically(path, l.info.as_bytes());
                }
                Some(l.info)
            }
            _ => kept.and_then(|p| std::fs::read_to_string(p).ok()),
        };
        match log {
            Some(log) => crate::ptxas::jit_warnings(&log),
            None => vec![format!(
                "not checked: the driver's JIT wrote no log (it served kernels/{} from its own \
                 cache, compiled by a process that kept no log)",
                id.file()
            )],
        }
    }

    /// The driver's JIT logs for `ptx`, which `cuModuleLoadData` (what cudarc calls) does not
    /// return: the PTX is loaded with log buffers (`verbose`: ptxas's resource lines too), and
    /// the module unloaded at once. Called after a failed load, for its error log, and before
    /// the Hopper GEMM's load, for its info log.
    fn jit_logs(&self, ptx: &str, verbose: bool) -> Option<JitLogs> {
        use sys::CUjit_option as O;
        let src = std::ffi::CString::new(ptx).ok()?;
        self.ctx.bind_to_thread().ok()?;
        let mut info = vec![0u8; 64 * 1024];
        let mut error = vec![0u8; 64 * 1024];
        let mut options = [
            O::CU_JIT_INFO_LOG_BUFFER,
            O::CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
            O::CU_JIT_ERROR_LOG_BUFFER,
            O::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
            O::CU_JIT_LOG_VERBOSE,
        ];
        // A size or flag option's value is the number itself, in the pointer's place.
        let mut values: [*mut std::ffi::c_void; 5] = [
            info.as_mut_ptr().cast(),
            info.len() as *mut std::ffi::c_void,
            error.as_mut_ptr().cast(),
            error.len() as *mut std::ffi::c_void,
            usize::from(verbose) as *mut std::ffi::c_void,
        ];
        let mut module: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: `src` is NUL-terminated PTX; five options with their values: two writable
        // buffers of the lengths given, which outlive the call, and a flag; `module` is written
        // only on success, and then unloaded at once (nothing else holds it).
        let r = unsafe {
            sys::cuModuleLoadDataEx(
                &mut module,
                src.as_ptr().cast(),
                options.len() as u32,
                options.as_mut_ptr(),
                values.as_mut_ptr(),
            )
        };
        if r == sys::CUresult::CUDA_SUCCESS {
            // SAFETY: the module was just loaded and is used by nothing.
            let _ = unsafe { sys::cuModuleUnload(module) };
        }
        let text = |log: &[u8]| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            String::from_utf8_lossy(&log[..end]).trim().to_string()
        };
        Some(JitLogs {
            ok: r == sys::CUresult::CUDA_SUCCESS,
            info: text(&info),
            error: text(&error),
        })
    }

    /// (free, total) device memory.
    pub(crate) fn mem_info(&self) -> Option<(usize, usize)> {
        self.ctx.mem_get_info().ok()
    }

    /// Make this device's context current on the calling thread. Raw driver calls (a plan's
    /// copies and memsets), cuBLAS and cuDNN use whatever context is current there, and that
    /// may be another device's (its case ran last on this thread) or none (another thread):
    /// every call of a case goes through here first ([`crate::device`]'s `run`, and
    /// [`Self::time_with_events`] before its loop).
    pub(crate) fn bind(&self) -> Result<(), CudaError> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| CudaError::lib("cuCtxSetCurrent", e))
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
        self.bind()?;
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

/// Whether `code` is one of the errors CUDA keeps for the rest of the process: after it, the
/// context cannot be used ("the process must be terminated and relaunched", CUDA's driver API
/// documentation of each).
fn is_sticky(code: sys::CUresult) -> bool {
    use sys::CUresult as R;
    matches!(
        code,
        R::CUDA_ERROR_ILLEGAL_ADDRESS
            | R::CUDA_ERROR_LAUNCH_FAILED
            | R::CUDA_ERROR_MISALIGNED_ADDRESS
            | R::CUDA_ERROR_ILLEGAL_INSTRUCTION
            | R::CUDA_ERROR_INVALID_ADDRESS_SPACE
            | R::CUDA_ERROR_INVALID_PC
            | R::CUDA_ERROR_HARDWARE_STACK_ERROR
            | R::CUDA_ERROR_ASSERT
            | R::CUDA_ERROR_LAUNCH_TIMEOUT
            | R::CUDA_ERROR_ECC_UNCORRECTABLE
    )
}

/// Why `device` cannot run a case after an earlier one's fault left `code` on its context.
fn context_lost(device: &str, code: sys::CUresult) -> String {
    format!(
        "{device}'s CUDA context was lost to a fault of an earlier case in this process \
         ({code:?}; that case failed with it): CUDA refuses all later work in the process, so \
         this case did not run; run it in a new process (narrow --backend or --op, or use the \
         GPU check, which runs each backend alone after a fault)"
    )
}

/// The logs of one JIT of a PTX module by the driver.
struct JitLogs {
    /// Whether the module loaded.
    ok: bool,
    /// The info log (with `CU_JIT_LOG_VERBOSE`, ptxas's `-v` lines).
    info: String,
    /// The error log.
    error: String,
}

/// The error of a failed module load of `id`: the driver's error (`code`, printed as `err`),
/// what it means where that is known, and the JIT's own log when there is one.
fn jit_failure(id: KernelId, err: String, code: sys::CUresult, log: Option<&str>) -> CudaError {
    use sys::CUresult as R;
    let hint = match code {
        R::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => Some(
            "the PTX is newer than this driver accepts: use the NVRTC of the driver's CUDA \
             version (`wattbench info` records both; NVRTC 13.0 for driver R580)",
        ),
        R::CUDA_ERROR_NO_BINARY_FOR_GPU | R::CUDA_ERROR_INVALID_PTX => Some(
            "the driver's JIT rejected the PTX for this GPU (an arch-specific target such as \
             compute_90a loads on that compute capability only)",
        ),
        _ => None,
    };
    let mut msg = format!("kernels/{}: {err}", id.file());
    if let Some(h) = hint {
        msg.push_str(&format!(" ({h})"));
    }
    if let Some(log) = log {
        msg.push_str(&format!("\nJIT log:\n{log}"));
    }
    CudaError::Library {
        what: "cuModuleLoadData (PTX JIT)",
        msg,
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
    /// Take the baseline now, before allocating. The stream is synchronized first: cudarc
    /// allocates from the device's stream-ordered pool (`cuMemAllocAsync` where the device
    /// supports memory pools) and frees into it, and the pool (release threshold 0) gives a
    /// freed block back only at the next synchronization. Without it, the previous case's
    /// buffers, freed when it was dropped, would still count as used here, the new case's
    /// allocations would reuse them without raising the use, and its peak would read near 0.
    pub(crate) fn start(g: &Gpu) -> Self {
        // An error here (a context poisoned by an earlier fault) surfaces at the allocations.
        let _ = g.sync();
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
    fn drivers_older_than_cuda_13_are_refused_with_the_reason() {
        assert_eq!(driver_supported(13000), Ok(()));
        assert_eq!(driver_supported(13010), Ok(()));
        let e = driver_supported(12080).unwrap_err();
        assert!(
            e.contains("supports CUDA 12.8") && e.contains("CUDA 13.0 driver"),
            "{e}"
        );
        assert!(driver_supported(12040).unwrap_err().contains("CUDA 12.4"));
    }

    #[test]
    fn a_failed_jit_names_the_file_the_cause_and_the_log() {
        let e = jit_failure(
            KernelId::GemmSm90,
            "DriverError(CUDA_ERROR_UNSUPPORTED_PTX_VERSION)".into(),
            sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
            Some("ptxas fatal: Unsupported .version 9.1"),
        )
        .to_string();
        for want in [
            "cuModuleLoadData",
            "kernels/gemm_sm90.cu",
            "newer than this driver",
            "JIT log:\nptxas fatal",
        ] {
            assert!(e.contains(want), "`{want}` missing from: {e}");
        }
        let e = jit_failure(
            KernelId::Gemm,
            "E".into(),
            sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY,
            None,
        )
        .to_string();
        assert_eq!(e, "cuModuleLoadData (PTX JIT): kernels/gemm.cu: E");
    }

    #[test]
    fn only_errors_that_end_the_context_are_sticky() {
        use sys::CUresult as R;
        for c in [
            R::CUDA_ERROR_ILLEGAL_ADDRESS,
            R::CUDA_ERROR_LAUNCH_FAILED,
            R::CUDA_ERROR_ASSERT,
            R::CUDA_ERROR_MISALIGNED_ADDRESS,
        ] {
            assert!(is_sticky(c), "{c:?}");
        }
        // Errors of one call that leave the context usable.
        for c in [
            R::CUDA_SUCCESS,
            R::CUDA_ERROR_OUT_OF_MEMORY,
            R::CUDA_ERROR_INVALID_VALUE,
            R::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
            R::CUDA_ERROR_NOT_READY,
        ] {
            assert!(!is_sticky(c), "{c:?}");
        }
        let why = context_lost("cuda:1", R::CUDA_ERROR_ILLEGAL_ADDRESS);
        for want in [
            "cuda:1",
            "CUDA_ERROR_ILLEGAL_ADDRESS",
            "earlier case",
            "new process",
        ] {
            assert!(why.contains(want), "`{want}` missing from: {why}");
        }
    }

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
