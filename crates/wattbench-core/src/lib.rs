//! Hardware-free core of wattbench.
//!
//! Owns what every backend and tool shares: the two kinds of workload, kernel cases
//! ([`workload`]: ops, shapes, FLOP/byte counts) and whole-model training runs ([`model`]);
//! seeded inputs ([`tensor`]); the f64 oracle ([`reference`](mod@reference)); the backend and trainer seam
//! ([`backend`]); robust statistics ([`stats`]); the timing and verification harness
//! ([`harness`]); suites ([`suite`]); the energy vocabulary ([`energy`]); the typed result
//! schema ([`result`]); and the small utilities written once: atomic file output
//! ([`output`]), number formatting ([`units`]), host memory probes ([`memory`]), the shared
//! libraries the process loaded ([`libraries`]). It depends
//! on nothing heavier than serde.

pub mod backend;
pub mod energy;
pub mod harness;
pub mod libraries;
pub mod memory;
pub mod model;
pub mod output;
pub mod reference;
pub mod result;
pub mod stats;
pub mod suite;
pub mod tensor;
pub mod testing;
pub mod units;
pub mod workload;

pub use backend::{Backend, BackendError, DeviceInfo, Prepared, ToleranceOverride};
pub use model::{ModelConfig, ModelKind, Trainer};
pub use workload::{Case, Cell, DType, Mode, Op, Params};
