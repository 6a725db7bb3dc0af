//! The backend seam: every implementation (reference, candle, tch, CUDA kernels, vendor
//! libraries) is a [`Backend`] that turns a [`Case`] into a [`Prepared`] computation.
//!
//! Allocation, input upload and compilation happen in [`Backend::prepare`], outside the timed
//! region. [`Prepared::execute`] launches one call; [`Prepared::sync`] waits for the device
//! and is mandatory (no default): without it a GPU backend times only the launch.
//!
//! A framework that can also train whole models (the other kind of workload,
//! [`model`](crate::model)) says so with [`Backend::trains`] and builds a
//! [`Trainer`] with [`Backend::trainer`].
use crate::model::{TrainSetup, Trainer};
use crate::tensor::HostTensor;
use crate::workload::Case;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend or device cannot run on this machine.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The backend cannot run this case (dtype, shape or option it lacks).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The library reported an error while running.
    #[error("{backend} failed: {msg}")]
    Failed {
        /// Backend name.
        backend: &'static str,
        /// The library's message.
        msg: String,
    },
}

impl BackendError {
    /// Build a [`BackendError::Failed`] from any displayable library error.
    pub fn failed(backend: &'static str, e: impl std::fmt::Display) -> Self {
        BackendError::Failed {
            backend,
            msg: e.to_string(),
        }
    }
}

/// One device a backend can run on, and whether it can here.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device name as used in case ids: `cpu`, `cuda:0`, ...
    pub name: String,
    /// Whether cases can run on it on this machine.
    pub available: bool,
    /// Why not, when unavailable; what it is, when available.
    #[serde(default)]
    pub reason: Option<String>,
}

impl DeviceInfo {
    /// An available device.
    pub fn available(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            available: true,
            reason: None,
        }
    }
    /// An unavailable device and why.
    pub fn unavailable(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            available: false,
            reason: Some(reason.into()),
        }
    }
}

/// An implementation of the workloads. Shared across threads: `run` builds the list once and
/// runs cases on a worker thread.
pub trait Backend: Send + Sync {
    /// Short name used on the command line and in case ids (`reference`, `candle`, `tch`).
    fn name(&self) -> &'static str;
    /// Devices this backend knows, available or not. Must not panic when a library is absent.
    fn devices(&self) -> Vec<DeviceInfo>;
    /// Library versions worth recording (e.g. `("candle-core", "0.11.1")`).
    fn versions(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// `Err(reason)` when this backend cannot run `case` on `device` (e.g. a dtype it lacks);
    /// the case is then reported as skipped with that reason.
    fn supports(&self, case: &Case, device: &str) -> Result<(), String>;
    /// Allocate, upload `inputs` and get ready to run `case`. Not timed.
    fn prepare(
        &self,
        case: &Case,
        device: &str,
        inputs: &[HostTensor],
    ) -> Result<Box<dyn Prepared>, BackendError>;
    /// Whether this backend can train whole models (`wattbench train`) in this build.
    fn trains(&self) -> bool {
        false
    }
    /// Upload the initial parameters and every batch of `setup` to its device and get ready
    /// to train its model. Not timed.
    fn trainer(&self, setup: &TrainSetup<'_>) -> Result<Box<dyn Trainer>, BackendError> {
        let _ = setup;
        Err(BackendError::Unsupported(format!(
            "the {} backend does not train whole models",
            self.name()
        )))
    }
}

/// A case ready to run on one device.
pub trait Prepared {
    /// Launch one call (forward, or one training step).
    fn execute(&mut self) -> Result<(), BackendError>;
    /// Wait until every launched call has finished.
    fn sync(&mut self) -> Result<(), BackendError>;
    /// Copy the last call's outputs to the host as f32, in the order of
    /// [`crate::workload::Params::outputs`] (training adds gradients, see the harness).
    fn outputs(&mut self) -> Result<Vec<Vec<f32>>, BackendError>;
    /// Time `iters` back-to-back calls, synchronised at both ends. The default uses the host
    /// clock, which is exact for synchronous CPU backends; GPU backends override it with
    /// device events.
    fn time_iters(&mut self, iters: u64) -> Result<Duration, BackendError> {
        self.sync()?;
        let t0 = Instant::now();
        for _ in 0..iters {
            self.execute()?;
        }
        self.sync()?;
        Ok(t0.elapsed())
    }
    /// Peak device memory this case used, when the backend can tell.
    fn device_peak_bytes(&mut self) -> Option<u64> {
        None
    }
    /// What ran, when the backend chooses among several implementations: the kernels it
    /// launches, or the library algorithms it picked. Recorded in the case's result.
    fn implementation(&self) -> Option<String> {
        None
    }
    /// A looser tolerance this implementation's numerics need than the case's default, and
    /// why (e.g. cuDNN's FFT and Winograd convolutions in fp32). Recorded with the
    /// verification; a tolerance given on the command line still wins.
    fn tolerance(&self) -> Option<ToleranceOverride> {
        None
    }
}

/// A tolerance an implementation needs: `factor` times the case's default, for `why`.
#[derive(Clone, Debug, PartialEq)]
pub struct ToleranceOverride {
    /// Multiplies the case's default tolerance (≥ 1).
    pub factor: f64,
    /// Why, for the result file.
    pub why: String,
}
