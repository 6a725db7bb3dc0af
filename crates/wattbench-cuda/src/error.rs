//! The crate's error type, and its mapping onto the backend seam's [`BackendError`].
use wattbench_core::BackendError;

/// What went wrong on the CUDA path.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A library or device is missing on this machine.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// NVRTC rejected a kernel source; `log` is NVRTC's own log.
    #[error("NVRTC failed to compile kernels/{file} for {arch} (options {options:?}):\n{log}")]
    Compile {
        /// Kernel source file.
        file: &'static str,
        /// Target, e.g. `compute_90`.
        arch: String,
        /// Options passed to NVRTC.
        options: Vec<String>,
        /// NVRTC's log.
        log: String,
    },
    /// A CUDA driver, cuBLAS or cuDNN call failed.
    #[error("{what}: {msg}")]
    Library {
        /// What was being done.
        what: &'static str,
        /// The library's message.
        msg: String,
    },
}

impl CudaError {
    /// Wrap a library error with what was being done.
    pub fn lib(what: &'static str, e: impl std::fmt::Debug) -> Self {
        CudaError::Library {
            what,
            msg: format!("{e:?}"),
        }
    }

    /// Convert into the backend seam's error for backend `name`.
    pub fn into_backend(self, name: &'static str) -> BackendError {
        match self {
            CudaError::Unavailable(r) => BackendError::Unavailable(r),
            e => BackendError::failed(name, e),
        }
    }
}
