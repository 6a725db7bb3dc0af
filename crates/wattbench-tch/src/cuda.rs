//! libtorch on CUDA without linking CUDA: this crate links libtorch's CPU libraries only (a
//! binary that links `libtorch_cuda` cannot start without fourteen NVIDIA libraries). At run
//! time, before any tch call touches CUDA state, [`runtime`] loads `libtorch_cuda.so` from the
//! directory of the `libtorch_cpu.so` this process loaded (the same torch build: on a GPU
//! machine, torch's `lib/` on `LD_LIBRARY_PATH`), with `RTLD_GLOBAL`, so its CUDA hooks
//! register. Order matters: if CUDA state is queried first, torch caches stub hooks and CUDA
//! stays unusable; so every CUDA query of this crate goes through [`runtime`], once.
use std::path::PathBuf;
use std::sync::OnceLock;

/// The CUDA devices libtorch sees (`Ok(count)`, at least 1), or why there are none.
pub(crate) fn runtime() -> Result<usize, String> {
    static RUNTIME: OnceLock<Result<usize, String>> = OnceLock::new();
    RUNTIME.get_or_init(load).clone()
}

fn load() -> Result<usize, String> {
    let cpu = wattbench_core::libraries::find("libtorch_cpu.so").ok_or_else(|| {
        "libtorch_cpu.so is not among this process's libraries, so its CUDA library cannot \
         be located"
            .to_string()
    })?;
    let dir = cpu.parent().map(PathBuf::from).unwrap_or_default();
    let cuda = dir.join("libtorch_cuda.so");
    if !cuda.exists() {
        return Err(format!(
            "{} is not there: the libtorch this process loaded ({}) is a CPU-only build; \
             put a CUDA build's lib/ (torch 2.11 from pip, cu130) on LD_LIBRARY_PATH",
            cuda.display(),
            dir.display()
        ));
    }
    // SAFETY: loading libtorch_cuda runs its static initialisers, which register CUDA hooks
    // with the libtorch already loaded from the same directory (same build); the library is
    // never unloaded (leaked below), so no code or data of it dangles.
    let lib = unsafe {
        libloading::os::unix::Library::open(
            Some(&cuda),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
        )
    }
    .map_err(|e| format!("cannot load {}: {e}", cuda.display()))?;
    std::mem::forget(lib);
    if !tch::Cuda::is_available() {
        return Err(format!(
            "{} loaded, but libtorch sees no CUDA device (no NVIDIA driver on this machine?)",
            cuda.display()
        ));
    }
    match tch::Cuda::device_count() {
        n if n > 0 => Ok(n as usize),
        _ => Err("libtorch reports no CUDA device".into()),
    }
}
