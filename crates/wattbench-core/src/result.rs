//! The result-file schema: one JSON document per run. Documented for users in
//! `results/README.md`; bump [`SCHEMA_VERSION`] on any incompatible change.
use crate::stats::TimeStats;
use crate::workload::{DType, Mode, Op, Params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the result-file schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Outcome of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Verified and timed.
    Ok,
    /// Not run; `reason` says why (unsupported dtype, not enough memory, ...).
    Skipped,
    /// Ran but failed verification or errored; `reason` says how.
    Failed,
}

/// Correctness check against the f64 reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// ‖out − ref‖₂ / ‖ref‖₂ over the checked values.
    pub rel_l2_error: f64,
    /// Largest accepted error for the dtype.
    pub tolerance: f64,
    /// `rel_l2_error <= tolerance` (and every value finite).
    pub passed: bool,
    /// `full` (every output value) or `sampled` (a seeded sample of positions).
    pub method: String,
    /// How many output values were compared.
    pub checked_values: u64,
    /// Error of each output tensor when there are several (training: `y`, gradients, updated
    /// weights).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_output: BTreeMap<String, f64>,
}

/// Throughput of one call at the median time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// FLOPs per call (see `Params::flops`).
    pub flops: u64,
    /// GFLOP/s at the median time.
    pub gflops_per_s: f64,
    /// Minimum bytes per call (see `Case::min_bytes`); null where undefined (whole-model
    /// `e2e` cases).
    pub bytes: Option<u64>,
    /// GB/s (10⁹ bytes) at the median time, from the minimum bytes; null with `bytes`.
    pub gbytes_per_s: Option<f64>,
    /// FLOPs per minimum byte; null with `bytes`.
    pub intensity: Option<f64>,
}

/// Memory used by a case.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Peak resident set size of the whole process while this case ran (includes the
    /// harness and libraries), or null when unknown.
    pub host_peak_rss_bytes: Option<u64>,
    /// Whether the peak was reset before the case (false: it covers the run so far).
    pub host_peak_reset: bool,
    /// Peak device memory, for GPU backends that can tell; null otherwise.
    pub device_peak_bytes: Option<u64>,
}

/// One case on one backend and device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// `op/mode/shape/dtype/backend/device`, stable across runs.
    pub id: String,
    /// Suite label, when the suite gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The op.
    pub op: Op,
    /// Inference or training.
    pub mode: Mode,
    /// Backend name.
    pub backend: String,
    /// Device name.
    pub device: String,
    /// Element type.
    pub dtype: DType,
    /// Shape parameters.
    pub params: Params,
    /// Outcome.
    pub status: Status,
    /// Why skipped or failed.
    pub reason: Option<String>,
    /// Check against the reference (absent when skipped before running).
    pub verification: Option<Verification>,
    /// Timing (present when status is ok).
    pub time: Option<TimeStats>,
    /// Throughput (present when status is ok).
    pub throughput: Option<Throughput>,
    /// Memory.
    pub memory: Memory,
    /// Energy per call by domain (filled by the energy meters; null when not measured).
    #[serde(default)]
    pub energy: Option<serde_json::Value>,
    /// End-to-end training runs (`op` e2e) only: loss curve, samples/s, energy per step and
    /// per sample, projection and its assumptions (`wattbench-train`'s `TrainReport`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e: Option<serde_json::Value>,
}

/// Host description.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name.
    pub hostname: Option<String>,
    /// CPU model string.
    pub cpu_model: Option<String>,
    /// Logical cores.
    pub logical_cores: usize,
    /// Total memory.
    pub memory_bytes: Option<u64>,
    /// OS name and version.
    pub os: Option<String>,
    /// Kernel version.
    pub kernel: Option<String>,
}

/// Where and with what a run was made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The host.
    pub host: Host,
    /// GPUs found (NVML inventory); empty when none.
    pub gpus: Vec<serde_json::Value>,
    /// Software versions: wattbench, rustc, candle, libtorch, ...
    pub software: BTreeMap<String, String>,
    /// `git rev-parse HEAD` of the wattbench checkout, with `-dirty` when modified; null
    /// outside a checkout.
    pub git_commit: Option<String>,
    /// Energy meters found and why others are missing.
    #[serde(default)]
    pub meters: Vec<serde_json::Value>,
}

/// One run: the document written to `results/runs/*.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// RFC 3339 start time.
    pub created_at: String,
    /// Wall time of the whole run, seconds.
    pub duration_s: f64,
    /// True when Ctrl-C stopped the run; `cases` then holds the completed ones.
    pub interrupted: bool,
    /// Machine and software.
    pub environment: Environment,
    /// The command-line configuration (suite, filters, timing options).
    pub config: serde_json::Value,
    /// Run-level energy context (idle baseline), when measured.
    #[serde(default)]
    pub energy: Option<serde_json::Value>,
    /// Every case, including skipped and failed ones.
    pub cases: Vec<CaseResult>,
}
