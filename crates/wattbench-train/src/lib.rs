//! End-to-end training runs for wattbench (`wattbench train`).
//!
//! Three small models built from the benchmarked ops ([`model`]: an MLP of GEMMs, a CNN of
//! convolutions with a GEMM head, an LSTM unrolled over T steps with a linear head) are trained
//! with SGD on seeded synthetic data from a fixed random teacher ([`data`]), on candle or tch
//! ([`backend`]). [`run::train`] times every step after a warm-up, brackets the measured steps
//! with the energy meters, and reports the loss curve, time and energy per step and per
//! sample, peak memory and ([`project`]) a projection of a full run's time, kWh and CO2e with
//! an interval. [`record`] turns the report into a case of the run-file format.
#![warn(missing_docs)]

pub mod backend;
mod candle;
pub mod data;
pub mod model;
pub mod project;
pub mod record;
pub mod run;
#[cfg(feature = "tch")]
mod tch;

pub use backend::{make_trainer, BackendKind, Trainer};
pub use data::Dataset;
pub use model::{ModelConfig, ModelKind, Size};
pub use project::{ProjectionTarget, RunProjection};
pub use run::{train, TrainOptions, TrainReport};

/// Errors of a training run. Bad options are [`TrainError::Usage`]; a backend or device that
/// cannot run here is [`TrainError::Unavailable`].
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The options cannot work; the message says which and what to do.
    #[error("{0}")]
    Usage(String),
    /// The backend or device is not available in this build or on this machine.
    #[error("backend {backend} is unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why, and what to do.
        reason: String,
    },
    /// The framework reported an error.
    #[error("{backend}: {msg}")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// The framework's message.
        msg: String,
    },
}
