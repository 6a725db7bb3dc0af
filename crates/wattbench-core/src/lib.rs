//! Hardware-free core of wattbench.
//!
//! Owns what every backend and tool shares: the workloads and their FLOP/byte counts
//! ([`workload`]), seeded inputs ([`tensor`]), the f64 oracle ([`reference`]), the backend
//! seam ([`backend`]), robust statistics ([`stats`]), the timing and verification harness
//! ([`harness`]), suites ([`suite`]) and the result-file schema ([`result`]). It depends on
//! nothing heavier than serde.
#![warn(missing_docs)]

pub mod backend;
pub mod harness;
pub mod memory;
pub mod reference;
pub mod result;
pub mod stats;
pub mod suite;
pub mod tensor;
pub mod testing;
pub mod workload;

pub use backend::{Backend, BackendError, DeviceInfo, Prepared};
pub use workload::{Case, Cell, DType, Mode, Op, Params};
