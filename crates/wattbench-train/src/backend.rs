//! The trainer seam: one backend holding a model's parameters and a data set on a device,
//! stepping SGD. Construction (uploads) happens outside any timed region; `sync` is mandatory
//! and bounds every timed step.
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::model::ModelConfig;
use crate::TrainError;

/// The frameworks that can train the models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// candle-core, its autograd (`Var`, `backward`) and SGD written on its tensors.
    Candle,
    /// tch (libtorch) autograd; needs this crate's `tch` feature.
    Tch,
}

impl BackendKind {
    /// Every backend, built or not.
    pub const ALL: [BackendKind; 2] = [BackendKind::Candle, BackendKind::Tch];
    /// Name on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Candle => "candle",
            BackendKind::Tch => "tch",
        }
    }
    /// Devices the backend may train on (availability is checked by [`make_trainer`]).
    pub fn devices(self) -> &'static [&'static str] {
        match self {
            BackendKind::Candle => &["cpu"],
            BackendKind::Tch => &["cpu", "cuda"],
        }
    }
}

/// A model, its data and its optimiser state on one backend and device.
pub trait Trainer {
    /// One SGD step on batch `bi`: forward, MSE loss, backward, `w ← w − lr·∂L/∂w`. Returns the
    /// loss (before the update) when `want_loss` is set; reading it back synchronises.
    fn step(&mut self, bi: usize, lr: f64, want_loss: bool) -> Result<Option<f32>, TrainError>;
    /// The loss on batch `bi` without updating (no gradients recorded).
    fn loss(&mut self, bi: usize) -> Result<f32, TrainError>;
    /// Waits until queued device work has finished.
    fn sync(&mut self) -> Result<(), TrainError>;
    /// Current parameters, copied to the host, in [`ModelConfig::params`] order.
    fn params(&mut self) -> Result<Vec<Vec<f32>>, TrainError>;
    /// Peak device memory in bytes, where the backend can tell.
    fn device_peak_bytes(&mut self) -> Option<u64> {
        None
    }
}

/// Uploads `init` and `data` to `backend`/`device`. Unknown devices, backends left out of the
/// build and devices the framework cannot see are [`TrainError::Unavailable`].
pub fn make_trainer(
    backend: BackendKind,
    device: &str,
    model: &ModelConfig,
    data: &Dataset,
    init: &[Vec<f32>],
) -> Result<Box<dyn Trainer>, TrainError> {
    if !backend.devices().contains(&device) {
        return Err(TrainError::Usage(format!(
            "unknown device `{device}` for backend {}; valid: {}",
            backend.as_str(),
            backend.devices().join(", ")
        )));
    }
    match backend {
        BackendKind::Candle => Ok(Box::new(crate::candle::CandleTrainer::new(
            device, model, data, init,
        )?)),
        #[cfg(feature = "tch")]
        BackendKind::Tch => Ok(Box::new(crate::tch::TchTrainer::new(
            device, model, data, init,
        )?)),
        #[cfg(not(feature = "tch"))]
        BackendKind::Tch => Err(TrainError::Unavailable {
            backend: "tch",
            reason: "built without the `tch` feature; rebuild with `--features tch` \
                     (needs LIBTORCH, see scripts/fetch-libtorch.sh)"
                .into(),
        }),
    }
}
