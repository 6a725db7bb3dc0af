//! Kernel compilation: NVRTC through cudarc, for one compute capability, memoised in-process
//! and cached on disk keyed by source hash, architecture and NVRTC version.
//!
//! The backends and the `kernel_check` example both go through [`Loader::ptx`], so the check
//! that runs without a GPU compiles exactly what the backends load.
use crate::error::CudaError;
use crate::kernels::KernelId;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Whether libnvrtc can be loaded; the reason when it cannot. Must be called (and succeed)
/// before any other NVRTC call: cudarc panics when the library is missing.
pub fn nvrtc_probe() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen the candidate library names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(CudaError::Unavailable(
            "libnvrtc.so not found (put the CUDA 13 NVRTC library directory on LD_LIBRARY_PATH; \
             scripts/fetch-cuda-tools.sh fetches one)"
                .into(),
        ))
    }
}

/// NVRTC's (major, minor) version.
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    nvrtc_probe()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (probed above); both pointers are valid for writes.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(CudaError::lib("nvrtcVersion", r));
    }
    Ok((major, minor))
}

/// NVRTC options for the virtual architecture `target` (`"89"`, or `"90a"` for sm_90a's
/// arch-specific features: [`KernelId::target`]). PTX for `compute_XY` is what the driver
/// loads (and JIT-compiles for the exact chip).
pub fn compile_options(target: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture=compute_{target}"),
        "-std=c++17".into(),
        "--fmad=true".into(),
        "-lineinfo".into(),
    ]
}

/// 64-bit FNV-1a: a stable hash (std's hashers may change between Rust releases).
pub(crate) fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Compiles kernels to PTX and caches the results.
pub struct Loader {
    cache_dir: Option<PathBuf>,
    memo: Mutex<HashMap<(KernelId, u32), String>>,
}

impl Loader {
    /// A loader caching on disk under `cache_dir` (`None`: in-process memo only).
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        Self {
            cache_dir,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// `$WATTBENCH_KERNEL_CACHE`, else `${WATTBENCH_CACHE:-$HOME/.cache/wattbench}/kernels`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("WATTBENCH_KERNEL_CACHE") {
            return Some(PathBuf::from(d));
        }
        let root = std::env::var_os("WATTBENCH_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/wattbench"))
            })?;
        Some(root.join("kernels"))
    }

    /// Cache file name for `id` compiled for `target` under NVRTC `version`.
    pub fn cache_name(id: KernelId, target: &str, version: (i32, i32)) -> String {
        let src = id.source();
        let opts = compile_options(target).join(" ");
        let h = fnv1a64(&[src.as_bytes(), opts.as_bytes()]);
        let stem = id.file().trim_end_matches(".cu");
        format!(
            "{stem}-{h:016x}-compute_{target}-nvrtc{}.{}.ptx",
            version.0, version.1
        )
    }

    /// Where the log of the driver's JIT of `ptx` (kernel file `id`, for `arch`, by the driver
    /// whose library file is `driver`) is kept between processes: the driver compiles a module
    /// once and serves later loads from its own cache, whose loads write no log. `None`
    /// without a disk cache.
    pub(crate) fn jit_notes_path(
        &self,
        id: KernelId,
        arch: u32,
        driver: &str,
        ptx: &str,
    ) -> Option<PathBuf> {
        let h = fnv1a64(&[ptx.as_bytes(), driver.as_bytes()]);
        let stem = id.file().trim_end_matches(".cu");
        (self.cache_dir.as_ref()).map(|d| d.join(format!("{stem}-{h:016x}-sm{arch}.jit-log.txt")))
    }

    /// PTX of `id` for a GPU of compute capability `arch` (compiled for
    /// [`KernelId::target`]): from memory, the disk cache, or NVRTC. `Unavailable` when the
    /// file cannot run on `arch`.
    pub fn ptx(&self, id: KernelId, arch: u32) -> Result<String, CudaError> {
        let target = id.target(arch).ok_or_else(|| {
            CudaError::Unavailable(format!(
                "kernels/{} is not built for sm_{arch} (it needs sm_90a: a compute capability 9.0 GPU)",
                id.file()
            ))
        })?;
        if let Some(p) = self
            .memo
            .lock()
            .ok()
            .and_then(|m| m.get(&(id, arch)).cloned())
        {
            return Ok(p);
        }
        let version = nvrtc_version()?;
        let cached = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(Self::cache_name(id, &target, version)));
        let ptx = match cached
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            Some(p) if p.contains(".entry") => p,
            _ => {
                let p = compile_uncached(id, &target)?;
                if let Some(path) = &cached {
                    // A cache that cannot be written only costs a recompile next time.
                    let _ = wattbench_core::output::write_atomically(path, p.as_bytes());
                }
                p
            }
        };
        if let Ok(mut m) = self.memo.lock() {
            m.insert((id, arch), ptx.clone());
        }
        Ok(ptx)
    }
}

/// Run NVRTC on `id` for `target`, with no cache.
fn compile_uncached(id: KernelId, target: &str) -> Result<String, CudaError> {
    nvrtc_probe()?;
    let options = compile_options(target);
    let opts = cudarc::nvrtc::CompileOptions {
        options: options.clone(),
        name: Some(id.file().to_string()),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(id.source(), opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => Err(CudaError::Compile {
            file: id.file(),
            arch: format!("compute_{target}"),
            options,
            log: log.to_string_lossy().into_owned(),
        }),
        Err(e) => Err(CudaError::lib("NVRTC", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_name_depends_on_source_arch_and_version() {
        let a = Loader::cache_name(KernelId::Gemm, "90", (13, 0));
        assert!(
            a.starts_with("gemm-") && a.ends_with("-compute_90-nvrtc13.0.ptx"),
            "{a}"
        );
        assert_ne!(a, Loader::cache_name(KernelId::Gemm, "80", (13, 0)));
        assert_ne!(a, Loader::cache_name(KernelId::Gemm, "90a", (13, 0)));
        assert_ne!(a, Loader::cache_name(KernelId::Gemm, "90", (13, 1)));
        assert_ne!(a, Loader::cache_name(KernelId::Conv, "90", (13, 0)));
        let h = Loader::cache_name(KernelId::GemmSm90, "90a", (13, 0));
        assert!(h.starts_with("gemm_sm90-") && h.ends_with("-compute_90a-nvrtc13.0.ptx"));
    }

    #[test]
    fn a_file_is_never_compiled_for_a_gpu_it_cannot_run_on() {
        // Refused before NVRTC is looked for, so this holds on any machine.
        let e = Loader::new(None).ptx(KernelId::GemmSm90, 89).unwrap_err();
        assert!(
            matches!(&e, CudaError::Unavailable(r) if r.contains("sm_90a")),
            "{e}"
        );
    }

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[]), 0xcbf29ce484222325);
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
        assert_eq!(fnv1a64(&[b"x"]), fnv1a64(&[b"x"]));
    }

    #[test]
    fn options_name_the_virtual_architecture() {
        assert_eq!(compile_options("89")[0], "--gpu-architecture=compute_89");
        assert_eq!(compile_options("90a")[0], "--gpu-architecture=compute_90a");
    }
}
