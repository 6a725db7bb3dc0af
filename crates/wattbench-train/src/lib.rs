//! The whole-model training driver of wattbench (`wattbench train`).
//!
//! The models, their data and the [`Trainer`](wattbench_core::Trainer) seam are core's
//! [`model`](wattbench_core::model); each framework crate builds its trainer
//! ([`Backend::trainer`](wattbench_core::Backend::trainer)). [`run::train`] times every step
//! after a warm-up, brackets the measured steps with the energy meters, and reports a
//! [`TrainingResult`](wattbench_core::result::TrainingResult): the loss curve, time and energy
//! per step and per sample, peak memory and ([`project`]) a projection of a full run's time,
//! kWh and CO2e with an interval, and what keeps the measured steps from the steady state it
//! assumes (no warm-up step, a drifting step time, a host sync per GPU step, time between
//! steps in the energy window). Work a framework does beyond the model's counted FLOPs is noted
//! on its results ([`Trainer::notes`](wattbench_core::Trainer::notes)). A run stopped early
//! ([`Control`]) reports the steps it completed, also while a long step is still running
//! ([`Progress::abandon`]); one whose thread panicked keeps them too, failed
//! ([`Progress::fail`]).

pub mod project;
pub mod run;

pub use project::project_run;
pub use run::{train, validate, Abandoned, Control, Progress};

use wattbench_core::BackendError;

/// Errors of a training run. Bad options are [`TrainError::Usage`]; the backend's own errors
/// (unavailable device, a framework failure) are [`TrainError::Backend`].
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The options cannot work; the message says which and what to do.
    #[error("{0}")]
    Usage(String),
    /// The backend could not start or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Stopped ([`Control::interrupt`]) with no result to return: before the first step, or
    /// after [`Progress::abandon`] reported the steps done.
    #[error("interrupted: no training step to report")]
    Interrupted,
}
