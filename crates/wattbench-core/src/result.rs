//! The result-file schema: one JSON document per run, every part typed. `results/README.md`
//! describes it for users; bump [`SCHEMA_VERSION`] on any incompatible change, and read files
//! with [`RunFile::from_json`], which refuses versions it does not know.
//!
//! A run holds two kinds of workload: kernel cases ([`CaseResult`], from `wattbench run`) and
//! whole-model training runs ([`TrainingResult`], from `wattbench train`). Both carry time,
//! memory and energy in the same types, so comparisons treat them alike.
use crate::energy::{CaseEnergy, DomainEnergy, Interval};
use crate::harness::HarnessConfig;
use crate::model::{DatasetInfo, Flops, ModelConfig};
use crate::stats::TimeStats;
use crate::workload::{Case, DType, Mode, Op, Params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the result-file schema. 2: typed environment, config and energy; training runs
/// under `trainings` instead of as `e2e` cases.
pub const SCHEMA_VERSION: u32 = 2;

/// Outcome of one case or training run.
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

/// How much of the output was compared with the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMethod {
    /// Every output value.
    Full,
    /// A seeded sample of output positions (cases too large to check whole).
    Sampled,
}

/// Correctness check against the f64 reference. Its errors are infinite when an output is
/// missing, of the wrong size or not finite (`defects` says which); files write such an error
/// as `null` (JSON has no infinity) and read `null` back as infinite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "VerificationFile")]
pub struct Verification {
    /// ‖out − ref‖₂ / ‖ref‖₂ over the checked values (the largest over the outputs); null in
    /// files when infinite.
    #[serde(serialize_with = "unbounded::write")]
    pub rel_l2_error: f64,
    /// max |out − ref| / rms(ref) over the checked values, divided by √(2 ln 2N) + 3 (the
    /// largest over the outputs; [`RelErrors::max`](crate::tensor::RelErrors::max)): about
    /// `rel_l2_error` or less for errors spread like noise, far more for an error confined to
    /// a few values (one wrong row), which the L2 norm dilutes. Accepted up to `tolerance`.
    /// Null in files written before it existed, and when infinite (it is infinite exactly
    /// when `rel_l2_error` is, so such a null reads back as infinite).
    #[serde(serialize_with = "unbounded::write_option")]
    pub rel_max_error: Option<f64>,
    /// Largest accepted error for the case.
    pub tolerance: f64,
    /// Why the tolerance differs from the case's default (given on the command line, or what
    /// the implementation's numerics need); absent for the default.
    #[serde(default)]
    pub tolerance_note: Option<String>,
    /// `rel_l2_error <= tolerance` and `rel_max_error <= tolerance` (and every value finite),
    /// and every updated weight the tolerance cannot tell from the weights before the step
    /// passes its step check (`defects` then says which failed).
    pub passed: bool,
    /// Every value, or a sample.
    pub method: VerifyMethod,
    /// How many output values were compared.
    pub checked_values: u64,
    /// Error of each output tensor when there are several (training: `y`, gradients, updated
    /// weights); null in files when infinite.
    #[serde(default, serialize_with = "unbounded::write_map")]
    pub per_output: BTreeMap<String, f64>,
    /// Updated-weight outputs (`w_new`, `b_new`) whose SGD step cannot be verified at all: the
    /// weights returned without it pass the tolerance, and the step is below the dtype's
    /// rounding of the weights (half precision). Updates within the tolerance whose step can
    /// be seen are checked as a step instead, and are not listed. Their gradients are checked
    /// on their own. Empty for most cases (absent in files written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked_updates: Vec<String>,
    /// What made an error infinite, or an update's step check fail, in words: ``output `dw` has 45 values,
    /// expected 63``, ``value NaN at index 7 of `y` is not finite (never written?)``. Empty
    /// when every error is a number (absent in files written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defects: Vec<String>,
}

/// [`Verification`] as files hold it: an infinite error is `null`.
#[derive(Deserialize)]
struct VerificationFile {
    #[serde(deserialize_with = "unbounded::read_high")]
    rel_l2_error: f64,
    #[serde(default)]
    rel_max_error: Option<f64>,
    tolerance: f64,
    #[serde(default)]
    tolerance_note: Option<String>,
    passed: bool,
    method: VerifyMethod,
    checked_values: u64,
    #[serde(default, deserialize_with = "unbounded::read_map")]
    per_output: BTreeMap<String, f64>,
    #[serde(default)]
    unchecked_updates: Vec<String>,
    #[serde(default)]
    defects: Vec<String>,
}

impl From<VerificationFile> for Verification {
    fn from(f: VerificationFile) -> Verification {
        // The max error is infinite exactly when the L2 error is (both are for a missing,
        // missized or non-finite output, or a nonzero output against an all-zero reference).
        let rel_max_error = match f.rel_max_error {
            None if f.rel_l2_error.is_infinite() => Some(f64::INFINITY),
            m => m,
        };
        Verification {
            rel_l2_error: f.rel_l2_error,
            rel_max_error,
            tolerance: f.tolerance,
            tolerance_note: f.tolerance_note,
            passed: f.passed,
            method: f.method,
            checked_values: f.checked_values,
            per_output: f.per_output,
            unchecked_updates: f.unchecked_updates,
            defects: f.defects,
        }
    }
}

/// Figures that may be infinite (an error, a loss, an interval's unknown bound) in files:
/// JSON has no infinity, and serde_json writes one as `null` but cannot read `null` back into
/// a number, so each such field writes a non-finite value as `null` and reads `null` back as
/// the infinity on its side (the convention of [`Interval`]'s bounds). NaN reads back as
/// infinite too: a figure that is not a number is unbounded, never 0.
pub(crate) mod unbounded {
    use serde::ser::{SerializeMap, SerializeSeq};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    /// A figure, `null` when not finite.
    pub fn write<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    /// An optional figure: `null` when absent or not finite.
    pub fn write_option<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => write(v, s),
            None => s.serialize_none(),
        }
    }

    /// A figure, `null` read as +∞.
    pub fn read_high<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }

    /// Named figures, each `null` when not finite.
    pub fn write_map<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            out.serialize_entry(k, &v.is_finite().then_some(*v))?;
        }
        out.end()
    }

    /// Named figures, each `null` read as +∞.
    pub fn read_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::INFINITY)))
            .collect())
    }

    /// An interval `[low, high]`, each bound `null` when not finite.
    pub fn write_pair<S: Serializer>(v: &[f64; 2], s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_seq(Some(2))?;
        for x in v {
            out.serialize_element(&x.is_finite().then_some(*x))?;
        }
        out.end()
    }

    /// An interval `[low, high]`: a `null` low bound read as −∞, a `null` high one as +∞.
    pub fn read_pair<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 2], D::Error> {
        let [low, high] = <[Option<f64>; 2]>::deserialize(d)?;
        Ok([
            low.unwrap_or(f64::NEG_INFINITY),
            high.unwrap_or(f64::INFINITY),
        ])
    }
}

impl Verification {
    /// The note a case's reader needs when [`Verification::unchecked_updates`] is not empty.
    pub fn unchecked_updates_note(&self) -> Option<String> {
        (!self.unchecked_updates.is_empty()).then(|| {
            format!(
                "{}: the weights returned without the SGD update would pass this check too \
                 (the update is below the half-precision rounding of the weights); the \
                 gradients are checked",
                self.unchecked_updates.join(", ")
            )
        })
    }

    /// The errors against the tolerance in words, the one beyond it named first: "max error
    /// (scaled to noise) 2.1e-1 beyond the tolerance 4.0e-2 (relative L2 error 3.1e-2)";
    /// preceded by what made an error infinite ([`Verification::defects`]): "output `dw` has
    /// 45 values, expected 63; relative L2 error inf beyond ...".
    pub fn errors_in_words(&self) -> String {
        let l2 = ("relative L2 error", Some(self.rel_l2_error));
        let max = ("max error (scaled to noise)", self.rel_max_error);
        let (first, second) = match self.rel_max_error {
            Some(m) if m > self.tolerance && self.rel_l2_error <= self.tolerance => (max, l2),
            _ => (l2, max),
        };
        let within = |v: f64| {
            if v <= self.tolerance {
                "within"
            } else {
                "beyond"
            }
        };
        let (name, v) = first;
        let v = v.unwrap_or(f64::NAN);
        let mut s = String::new();
        if !self.defects.is_empty() {
            s = format!("{}; ", self.defects.join("; "));
        }
        s.push_str(&format!(
            "{name} {v:.2e} {} the tolerance {:.1e}",
            within(v),
            self.tolerance
        ));
        if let (name, Some(v)) = second {
            s.push_str(&format!(" ({name} {v:.2e})"));
        }
        s
    }
}

/// Throughput of one call at the median time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// FLOPs per call (see `Params::flops`, `Params::train_flops`).
    pub flops: u64,
    /// GFLOP/s at the median time.
    pub gflops_per_s: f64,
    /// Minimum bytes per call (see `Case::min_bytes`).
    pub bytes: u64,
    /// GB/s (10⁹ bytes) at the median time, from the minimum bytes.
    pub gbytes_per_s: f64,
    /// FLOPs per minimum byte.
    pub intensity: f64,
}

/// Memory used by a case or a training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Peak resident set size of the whole process while it ran (includes the harness and
    /// libraries), or null when unknown.
    pub host_peak_rss_bytes: Option<u64>,
    /// Whether the peak was reset before it started (false: it covers the process so far).
    pub host_peak_reset: bool,
    /// Peak device memory, for GPU backends that can tell; null otherwise.
    pub device_peak_bytes: Option<u64>,
}

/// One kernel case on one backend and device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// `op/mode/shape/dtype/backend/device`, stable across runs.
    pub id: String,
    /// Suite label, when the suite gave one.
    #[serde(default)]
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
    /// Energy per call by domain; null when not measured.
    pub energy: Option<CaseEnergy>,
    /// What ran, when the backend chooses (kernels launched, library algorithms picked).
    #[serde(default)]
    pub implementation: Option<String>,
    /// Remarks on how the case was measured that a reader of its figures needs: e.g. fewer
    /// samples than `--min-samples` because `--max-time` ended the sampling. Empty in most
    /// cases (absent in files written before it existed).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl CaseResult {
    /// What a case's status requires of the rest of it: an `ok` case was verified (and
    /// passed) and timed; a skipped or failed one says why. (serde reads a missing `Option` as
    /// `None`, so a file without them would otherwise pass for a verified, timed case.)
    pub fn check_status(&self) -> Result<(), String> {
        match self.status {
            Status::Ok => match (&self.verification, &self.time) {
                (None, _) => Err("status ok without `verification`".into()),
                (Some(v), _) if !v.passed => {
                    Err("status ok with a verification that did not pass".into())
                }
                (_, None) => Err("status ok without `time`".into()),
                _ => Ok(()),
            },
            Status::Skipped | Status::Failed if self.reason.is_none() => Err(format!(
                "status {} without a `reason`",
                if self.status == Status::Skipped {
                    "skipped"
                } else {
                    "failed"
                }
            )),
            _ => Ok(()),
        }
    }

    /// The entry of `case` on `backend`/`device` before anything ran: skipped, with no reason,
    /// figures or verification yet.
    pub fn new(case: &Case, backend: &str, device: &str) -> CaseResult {
        CaseResult {
            id: case.id(backend, device),
            tag: case.tag.clone(),
            op: case.op(),
            mode: case.mode,
            backend: backend.into(),
            device: device.into(),
            dtype: case.dtype,
            params: case.params,
            status: Status::Skipped,
            reason: None,
            verification: None,
            time: None,
            throughput: None,
            memory: Memory::default(),
            energy: None,
            implementation: None,
            notes: Vec::new(),
        }
    }
}

/// The loss over a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossReport {
    /// Loss of the first step (the initial weights); null when not finite, or when no step
    /// completed (the curve is empty).
    pub first: Option<f32>,
    /// Loss of the last step run; null when not finite (training diverged), or when no step
    /// completed (the curve is empty).
    pub last: Option<f32>,
    /// Recording interval, steps.
    pub every: u64,
    /// Recorded points.
    pub curve: Vec<LossPoint>,
    /// Mean MSE over the whole data set before training; null in files when not finite (the
    /// initial model overflows in half precision), read back as infinite.
    #[serde(
        serialize_with = "unbounded::write",
        deserialize_with = "unbounded::read_high"
    )]
    pub dataset_before: f64,
    /// Mean MSE over the whole data set after training; null when it was not evaluated (a
    /// run interrupted, or failed before the end; a diverged run keeps its finite value), and
    /// when not finite (the run then failed, and its `reason` gives the value).
    pub dataset_after: Option<f64>,
    /// dataset_after / dataset_before; null when either is null or the ratio is not finite.
    pub ratio: Option<f64>,
}

/// One point of the loss curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Step index (0-based): the loss is that of step `step`'s forward pass, after `step`
    /// updates.
    pub step: u64,
    /// Epoch the step belongs to (0-based).
    pub epoch: u64,
    /// MSE on the step's batch; null when it was not finite (training diverged).
    pub loss: Option<f32>,
}

/// The size of a full training run to project, as the user gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "unit", content = "value")]
pub enum ProjectionTarget {
    /// Optimiser steps.
    Steps(u64),
    /// Training samples (rounded up to whole steps).
    Samples(u64),
    /// Passes over this run's data set.
    Epochs(u64),
}

impl ProjectionTarget {
    /// Steps of the full run at `batch` samples per step and `batches_per_epoch` steps per
    /// epoch.
    pub fn total_steps(&self, batch: usize, batches_per_epoch: usize) -> u64 {
        match *self {
            ProjectionTarget::Steps(n) => n,
            ProjectionTarget::Samples(n) => n.div_ceil(batch.max(1) as u64),
            ProjectionTarget::Epochs(n) => n.saturating_mul(batches_per_epoch as u64),
        }
    }
    /// The target's count (must be positive).
    pub fn count(&self) -> u64 {
        match *self {
            ProjectionTarget::Steps(n)
            | ProjectionTarget::Samples(n)
            | ProjectionTarget::Epochs(n) => n,
        }
    }
}

/// The grid intensity, PUE and price a carbon figure used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarbonAssumptions {
    /// gCO2e/kWh (a yearly mean).
    pub intensity_g_per_kwh: f64,
    /// The range the intensity may take over the hours the work ran, gCO2e/kWh `[low, high]`:
    /// grids swing within a day around their yearly mean. Carried into the CO2e interval.
    pub intensity_range_g_per_kwh: [f64; 2],
    /// What that range is and where it comes from.
    pub intensity_range_basis: String,
    /// Region code (`FR`, `aws:eu-west-3`, `WORLD`) or `custom`.
    pub region: String,
    /// Region name.
    pub region_name: String,
    /// Where the intensity comes from.
    pub intensity_source: String,
    /// Data year, when known.
    pub intensity_year: Option<u16>,
    /// Power usage effectiveness applied.
    pub pue: f64,
    /// Whether the PUE is the default 1.0 (IT energy only).
    pub pue_is_default: bool,
    /// Price per kWh, if given.
    pub price_per_kwh: Option<f64>,
}

/// A full run projected linearly from a partial one (`measure --total-steps`, and inside a
/// training projection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// Steps measured.
    pub steps_done: u64,
    /// Steps of the full run.
    pub total_steps: u64,
    /// total / done.
    pub factor: f64,
    /// Projected duration, s.
    pub duration_s: f64,
    /// Projected IT energy, kWh.
    pub energy_kwh: Option<Interval>,
    /// Projected emissions, kg CO2e.
    pub co2e_kg: Option<Interval>,
    /// Projected cost.
    pub cost: Option<Interval>,
    /// How it was computed.
    pub method: String,
}

/// A full training run projected from the measured steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunProjection {
    /// The target as given.
    pub target: ProjectionTarget,
    /// Steps of the full run.
    pub total_steps: u64,
    /// Samples of the full run (steps × batch).
    pub total_samples: u64,
    /// Steps the projection is based on (after warm-up).
    pub measured_steps: u64,
    /// Step time used: the mean of the measured steps, with its interval, s.
    pub step_time_s: Interval,
    /// Energy per step used, J, with the meters' uncertainty widened by the step-time
    /// interval; null when no meter had a reading.
    pub energy_per_step_j: Option<Interval>,
    /// Projected wall time, s.
    pub duration_s: Interval,
    /// Projected IT energy, kWh.
    pub energy_kwh: Option<Interval>,
    /// Projected facility energy (× PUE), kWh.
    pub facility_kwh: Option<Interval>,
    /// Projected emissions, kg CO2e.
    pub co2e_kg: Option<Interval>,
    /// Projected cost at the given price per kWh.
    pub cost: Option<Interval>,
    /// Whether the energy is (partly) a model estimate rather than a measurement.
    pub energy_estimated: bool,
    /// The linear scaling as `wattbench measure` reports it.
    pub linear: Projection,
    /// Grid intensity and PUE.
    pub carbon: CarbonAssumptions,
    /// Every assumption the figures rest on, in words.
    pub assumptions: Vec<String>,
}

/// One whole-model training run (`wattbench train`) on one backend and device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingResult {
    /// `train/<model>_b<batch>_s<steps>/<backend>/<device>`, stable across runs.
    pub id: String,
    /// Model and sizes.
    pub model: ModelConfig,
    /// Backend name.
    pub backend: String,
    /// Device name.
    pub device: String,
    /// Samples per step.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed of the weights, the teacher and the inputs.
    pub seed: u64,
    /// Threads the framework computed with on the CPU (candle's, or libtorch's intra-op
    /// pool); null on a GPU, where the framework cannot tell, and in older files.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Outcome: `ok`, or `failed` (the loss stopped being finite or grew past 10×, the backend
    /// failed, or the training thread panicked).
    pub status: Status,
    /// Why failed.
    pub reason: Option<String>,
    /// Steps run (warm-up included).
    pub steps: u64,
    /// Warm-up steps (not timed or metered).
    pub warmup_steps: u64,
    /// Steps timed and metered.
    pub measured_steps: u64,
    /// Epochs run (steps / batches per epoch).
    pub epochs: f64,
    /// The data set.
    pub dataset: DatasetInfo,
    /// Trainable values.
    pub parameters: u64,
    /// FLOPs per step.
    pub flops: Flops,
    /// Loss curve.
    pub loss: LossReport,
    /// Time per measured step; null when no step was measured.
    pub time: Option<TimeStats>,
    /// Wall time of the measured steps, s.
    pub measured_wall_s: f64,
    /// Wall time of the whole run (data generation, uploads, warm-up, evaluation), s.
    pub total_wall_s: f64,
    /// Samples per second at the mean measured step time (batch / mean step time, the
    /// projection's basis).
    pub samples_per_s: Option<f64>,
    /// GFLOP/s at the mean measured step time (files written before: at the median).
    pub gflops_per_s: Option<f64>,
    /// Energy per training step, in the shape `run` uses per call.
    pub energy: CaseEnergy,
    /// Energy per training sample (the per-step total / batch size).
    pub energy_per_sample_j: Option<Interval>,
    /// Memory.
    pub memory: Memory,
    /// Projection of a full run, when asked for.
    pub projection: Option<RunProjection>,
}

/// A processor's identification as it reports it (x86 CPUID, as Linux's `/proc/cpuinfo`
/// shows it; on Arm the implementer, architecture, part and revision).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuId {
    /// `GenuineIntel`, `AuthenticAMD`; on Arm the implementer code (`0x41`: Arm).
    pub vendor: String,
    /// Family (CPUID's display family: AMD 25 is Zen 3 and 4, 26 Zen 5); on Arm the
    /// architecture (8).
    pub family: u32,
    /// Model within the family (CPUID's display model); on Arm the part number.
    pub model: u32,
    /// Stepping (on Arm the revision); not part of the hardware fingerprint.
    pub stepping: Option<u32>,
}

impl std::fmt::Display for CpuId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} family {} model {}",
            self.vendor, self.family, self.model
        )
    }
}

/// Host description.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name: the machine's, or the node's that `WATTBENCH_NODE_NAME` names (a
    /// Kubernetes pod's own host name is the pod's, not its node's).
    pub hostname: Option<String>,
    /// The host name the process saw, when `hostname` is the node's from
    /// `WATTBENCH_NODE_NAME` (a pod's or container's own name); null otherwise and in older
    /// files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_hostname: Option<String>,
    /// CPU model string.
    pub cpu_model: Option<String>,
    /// The processor's identification (vendor, family, model, stepping): tells generations
    /// apart where the model string does not (a VM's `AMD EPYC`); null where not read (not
    /// Linux, or an older file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_id: Option<CpuId>,
    /// Logical CPUs of the machine (all of them, whatever this process may use: part of the
    /// hardware fingerprint).
    pub logical_cores: usize,
    /// Logical CPUs this run could use (its affinity mask and cgroup quota: `taskset`, Slurm's
    /// `--cpus-per-task`, a container's CPU limit); null in files that predate it.
    #[serde(default)]
    pub usable_cores: Option<usize>,
    /// Total memory.
    pub memory_bytes: Option<u64>,
    /// OS name and version.
    pub os: Option<String>,
    /// Kernel version.
    pub kernel: Option<String>,
}

/// A GPU as NVML describes it. Fields NVML cannot give are null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuRecord {
    /// NVML index (PCI bus order).
    pub index: u32,
    /// Product name.
    pub name: Option<String>,
    /// UUID (`GPU-…`).
    pub uuid: Option<String>,
    /// PCI bus id, e.g. `00000000:3B:00.0`.
    pub pci_bus_id: Option<String>,
    /// Driver version.
    pub driver_version: Option<String>,
    /// Enforced power-management limit, W.
    pub power_limit_watts: Option<f64>,
    /// Device memory total, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Whether the total-energy counter is supported.
    pub energy_counter: bool,
    /// Whether its energy is metered (selected by `--gpus` or `CUDA_VISIBLE_DEVICES`).
    pub metered: bool,
    /// Why it is or is not metered.
    pub selection: String,
    /// How NVML reports power on this GPU's generation (averaging window, sampling), which
    /// bounds what its figures mean.
    pub power_reading: String,
    /// Clocks, temperature, throttling, memory at the time of the inventory.
    pub state: GpuState,
}

/// A GPU's working conditions at one moment: recorded at the inventory and at the end of
/// each case's energy window, so that a figure taken while throttled or hot says so.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuState {
    /// NVML index.
    pub index: u32,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub memory_clock_mhz: Option<u32>,
    /// Die temperature, °C.
    pub temperature_c: Option<u32>,
    /// Power draw as NVML reports it (see the GPU's `power_reading`), W.
    pub power_watts: Option<f64>,
    /// Kernel-busy percentage over NVML's last sample period.
    pub utilization_gpu_pct: Option<u32>,
    /// Device memory used, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Active clock-throttle reasons (`sw_power_cap`, `hw_slowdown`, `sw_thermal_slowdown`,
    /// …; `gpu_idle` is normal between kernels); `[]` when none; null when unreadable.
    pub throttle_reasons: Option<Vec<String>>,
}

/// One energy meter found (or not) on this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterInfo {
    /// Domain or meter name.
    pub name: String,
    /// `nvml`, `rapl` or `estimate`.
    pub kind: String,
    /// Whether it can be read.
    pub available: bool,
    /// Why it is unavailable, starting with `unavailable:`.
    #[serde(default)]
    pub reason: Option<String>,
    /// What it reads and how it is labelled.
    #[serde(default)]
    pub detail: Option<String>,
}

impl MeterInfo {
    /// A meter that cannot be read here; `why` follows `unavailable: ` in the reason.
    pub fn unavailable(name: impl Into<String>, kind: &str, why: impl std::fmt::Display) -> Self {
        MeterInfo {
            name: name.into(),
            kind: kind.into(),
            available: false,
            reason: Some(format!("unavailable: {why}")),
            detail: None,
        }
    }
}

/// Where and with what a run was made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The host.
    pub host: Host,
    /// GPUs found (NVML inventory); empty when none.
    pub gpus: Vec<GpuRecord>,
    /// Software versions: wattbench, rustc, candle-core, tch, libtorch, cudarc, ...
    pub software: BTreeMap<String, String>,
    /// The commit the binary was built from, with `-dirty` when its sources had uncommitted
    /// changes; null when built outside a git checkout.
    pub git_commit: Option<String>,
    /// Energy meters found and why others are missing.
    pub meters: Vec<MeterInfo>,
    /// What a reader of these figures must know about the meters: RAPL counters that exist
    /// but are denied (so the CPU figure is an estimate), doubts about which GPUs the work
    /// used.
    #[serde(default)]
    pub meter_warnings: Vec<String>,
    /// The GPU and framework libraries (CUDA driver and runtime, cuBLAS, cuDNN, NVRTC, NVML,
    /// libtorch) this process had loaded when the run ended, with their paths: which library
    /// produced the numbers.
    #[serde(default)]
    pub libraries: Vec<String>,
    /// The environment variables that change what is measured, those set when the run began
    /// (after wattbench's own defaults: `NVIDIA_TF32_OVERRIDE=0`, `CUDA_DEVICE_ORDER=PCI_BUS_ID`):
    /// which GPUs and in what order, TF32, the CPU libraries' thread counts. `None` in files
    /// written before they were recorded (unknown, not "none set").
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
}

/// The filters of a `run`, as given (validated).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    /// Ops (empty: all).
    pub op: Vec<Op>,
    /// Backends (empty: every available one).
    pub backend: Vec<String>,
    /// Devices (empty: every available one).
    pub device: Vec<String>,
    /// Dtypes replacing the suite's (empty: the suite's).
    pub dtype: Vec<DType>,
    /// Modes replacing the suite's (empty: the suite's).
    pub mode: Vec<Mode>,
    /// DeepBench sets (empty: all).
    pub set: Vec<String>,
}

/// The options of a `wattbench run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The command line.
    pub argv: Vec<String>,
    /// Suite name or file.
    pub suite: String,
    /// Case filters.
    pub filters: Filters,
    /// Timing and verification options.
    pub harness: HarnessConfig,
}

/// Samples in the synthetic data set when none are given (rounded down to whole batches, at
/// least one batch).
pub const DEFAULT_DATASET_SAMPLES: usize = 2048;

/// The settings of a whole-model training run: what the training driver takes, and what the
/// result file records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Model and sizes.
    pub model: ModelConfig,
    /// Device name (`cpu`, `cuda`).
    pub device: String,
    /// SGD steps, warm-up included.
    pub steps: u64,
    /// Samples per step.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed of the initial weights, the teacher, the inputs and the bootstrap.
    pub seed: u64,
    /// Samples in the synthetic data set (rounded down to whole batches).
    pub dataset_samples: usize,
    /// Record the loss every this many steps (the first and last are always recorded).
    pub log_every: u64,
    /// Steps left out of timing and energy.
    pub warmup_steps: u64,
    /// Full run to project, if any.
    pub projection: Option<ProjectionTarget>,
}

impl TrainSettings {
    /// `steps` steps of `model` on the CPU with its default batch size and learning rate, a
    /// tenth of the run as loss interval and (between 1 and 10 steps) as warm-up.
    pub fn new(model: ModelConfig, steps: u64) -> Self {
        TrainSettings {
            model,
            device: "cpu".into(),
            steps,
            batch_size: model.default_batch(),
            lr: model.default_lr(),
            seed: 0x5eed,
            dataset_samples: DEFAULT_DATASET_SAMPLES,
            log_every: (steps / 10).max(1),
            warmup_steps: Self::default_warmup(steps),
            projection: None,
        }
    }

    /// Warm-up steps when none are given: a tenth of the run, between 1 and 10; none for runs
    /// under 4 steps (every step is then measured, cold start included).
    pub fn default_warmup(steps: u64) -> u64 {
        if steps < 4 {
            0
        } else {
            (steps / 10).clamp(1, 10)
        }
    }

    /// Batches in the data set.
    pub fn batches(&self) -> usize {
        (self.dataset_samples / self.batch_size.max(1)).max(1)
    }
}

/// The options of a `wattbench train`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The command line.
    pub argv: Vec<String>,
    /// Backend name.
    pub backend: String,
    /// The run's settings.
    #[serde(flatten)]
    pub settings: TrainSettings,
}

/// The command that wrote the file, and its options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Config {
    /// `wattbench run`.
    Run(RunConfig),
    /// `wattbench train`.
    Train(TrainConfig),
}

/// Run-level energy context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEnergy {
    /// Each domain over an idle window before the work.
    pub idle_baseline: Vec<DomainEnergy>,
    /// Each domain over an idle window after the work (at working clocks and temperature);
    /// the net figures subtract the mean of the two. Empty when the run was interrupted.
    #[serde(default)]
    pub idle_after: Vec<DomainEnergy>,
    /// Idle power that moved between the two baselines, and other caveats of the net figures.
    #[serde(default)]
    pub idle_notes: Vec<String>,
    /// Pause between cases, s (`--cooldown`).
    #[serde(default)]
    pub cooldown_s: f64,
    /// The length every case's energy window is stretched to, s: the meters' minimum reliable
    /// window, or `run --energy-window` where that is longer (the config's argv says whether it
    /// was given). A case's notes compare a shorter window with each of the two apart.
    pub min_window_s: f64,
    /// What the per-case figures cover.
    pub note: String,
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
    /// True when a signal stopped the run; `cases` then holds the completed ones.
    pub interrupted: bool,
    /// Machine and software.
    pub environment: Environment,
    /// The command and its options.
    pub config: Config,
    /// Run-level energy context (idle baseline), when meters ran.
    pub energy: Option<RunEnergy>,
    /// Every kernel case, including skipped and failed ones. Required (every file writes
    /// it, `[]` for a training run): a file without it is cut or edited, not an empty run.
    pub cases: Vec<CaseResult>,
    /// Every training run. Required, as `cases`.
    pub trainings: Vec<TrainingResult>,
}

/// Several result files in one (`wattbench merge`: the tasks of a Slurm array, a fleet):
/// every run whole, with its own environment, so each case keeps its machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedFile {
    /// [`SCHEMA_VERSION`]: the version of every run inside.
    pub schema_version: u32,
    /// How the file was made.
    pub merged: MergeInfo,
    /// The runs, in the order given.
    pub runs: Vec<RunFile>,
}

/// How a [`MergedFile`] was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeInfo {
    /// RFC 3339 time of the merge.
    pub created_at: String,
    /// The command line.
    pub argv: Vec<String>,
    /// Where each run came from, in the order of `runs`.
    pub inputs: Vec<String>,
    /// Whether the same case from the same machine was allowed more than once.
    pub allow_duplicates: bool,
    /// What a reader must know about how the runs were made (GPUs run at once).
    pub notes: Vec<String>,
}

/// Why runs could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no run to merge")]
    Empty,
    /// The same case twice from one machine.
    #[error(
        "{id} was measured on {host} ({fingerprint}) in both {first} and {second}: the same \
         machine twice (give --allow-duplicates to keep both: compare then pools them as \
         repeated runs)"
    )]
    Duplicate {
        /// The case or training run id.
        id: String,
        /// Its machine's host name.
        host: String,
        /// Its machine's hardware fingerprint.
        fingerprint: String,
        /// The first input that has it.
        first: String,
        /// The second.
        second: String,
    },
}

impl MergedFile {
    /// Merge `inputs` (label, run) in order. A case (or training run) id found twice with the
    /// same host name and hardware fingerprint (for a GPU case, the same metered GPUs too) is
    /// refused unless `allow_duplicates`: the same
    /// measurement from different machines is what a merge is for, the same machine twice is
    /// usually a task run twice.
    pub fn merge(
        inputs: Vec<(String, RunFile)>,
        allow_duplicates: bool,
        argv: Vec<String>,
        created_at: String,
    ) -> Result<MergedFile, MergeError> {
        if inputs.is_empty() {
            return Err(MergeError::Empty);
        }
        if !allow_duplicates {
            let mut seen: BTreeMap<(String, String, String), &str> = BTreeMap::new();
            for (label, run) in &inputs {
                let host = run.environment.host.hostname.clone().unwrap_or_default();
                let ids = (run.cases.iter())
                    .map(|c| (c.id.clone(), c.device.as_str()))
                    .chain(
                        run.trainings
                            .iter()
                            .map(|t| (t.id.clone(), t.device.as_str())),
                    );
                for (id, device) in ids {
                    let key = (host.clone(), Self::place(&run.environment, device), id);
                    if let Some(first) = seen.get(&key) {
                        return Err(MergeError::Duplicate {
                            id: key.2,
                            host: key.0,
                            fingerprint: key.1,
                            first: first.to_string(),
                            second: label.clone(),
                        });
                    }
                    seen.insert(key, label);
                }
            }
        }
        let (labels, runs) = inputs.into_iter().unzip();
        Ok(MergedFile {
            schema_version: SCHEMA_VERSION,
            merged: MergeInfo {
                created_at,
                argv,
                inputs: labels,
                allow_duplicates,
                notes: Vec::new(),
            },
            runs,
        })
    }

    /// Where a case on `device` was measured, beside its host name, for the duplicate check:
    /// the hardware, and for a GPU case (`cuda…`) the GPUs the run metered. Two Slurm tasks
    /// packed on one node each see their own GPU as `cuda:0`, with the same case ids: their
    /// GPU cases are two places. Their CPU cases are one place (the same CPU, its counters
    /// shared), whichever GPU each task was given, so a second one is refused.
    fn place(env: &Environment, device: &str) -> String {
        let gpus = env.metered_gpus();
        if device.starts_with("cuda") && !gpus.is_empty() {
            format!(
                "{}; metered {}",
                env.hardware_fingerprint(),
                gpus.join(", ")
            )
        } else {
            env.hardware_fingerprint()
        }
    }
}

/// The runs of a result file: its one run, or each run of a [`MergedFile`]. Other documents
/// and other schema versions are refused as by [`RunFile::from_json`].
pub fn read_runs(text: &str) -> Result<Vec<RunFile>, ReadError> {
    if is_merged(text) {
        check_version(text)?;
        let m: MergedFile =
            serde_json::from_str(text).map_err(|e| ReadError::NotAResult(e.to_string()))?;
        for (i, run) in m.runs.iter().enumerate() {
            run.check_values()
                .map_err(|why| ReadError::NotAResult(format!("runs[{i}].{why}")))?;
        }
        return Ok(m.runs);
    }
    RunFile::from_json(text).map(|r| vec![r])
}

/// `name = v` unless `v` is a finite number of at least 0 (a time, a rate).
fn non_negative(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{name} = {v}"))
    }
}

/// The times of `t` (every sample and summary), under the key `key`.
fn check_time(key: &str, t: &TimeStats) -> Result<(), String> {
    if t.samples_s.is_empty() {
        return Err(format!("{key}.samples_s is empty"));
    }
    if t.iters_per_sample == 0 {
        return Err(format!("{key}.iters_per_sample = 0"));
    }
    for (j, &v) in t.samples_s.iter().enumerate() {
        non_negative(&format!("{key}.samples_s[{j}]"), v)?;
    }
    for (name, v) in [
        ("median_s", t.median_s),
        ("mean_s", t.mean_s),
        ("min_s", t.min_s),
        ("max_s", t.max_s),
        ("p95_s", t.p95_s),
        ("mad_s", t.mad_s),
    ] {
        non_negative(&format!("{key}.{name}"), v)?;
    }
    // A bound may be unknown (null: one sample gives no interval), on its own side.
    let [low, high] = t.ci95_median_s;
    if low != f64::NEG_INFINITY {
        non_negative(&format!("{key}.ci95_median_s[0]"), low)?;
    }
    if high != f64::INFINITY {
        non_negative(&format!("{key}.ci95_median_s[1]"), high)?;
    }
    Ok(())
}

/// Whether `text` is a JSON object with `merged` and `runs` keys (a [`MergedFile`]).
fn is_merged(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .is_ok_and(|m| m.contains_key("merged") && m.contains_key("runs"))
}

/// A result file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not JSON, or not a wattbench result file.
    #[error("not a wattbench result file: {0}")]
    NotAResult(String),
    /// Written by a wattbench with another schema.
    #[error("schema version {found}, but this wattbench reads version {SCHEMA_VERSION}; {advice}")]
    Version {
        /// The file's version.
        found: u32,
        /// What to do.
        advice: &'static str,
    },
}

impl Environment {
    /// The GPUs whose energy the run metered (selected by `--gpus` or `CUDA_VISIBLE_DEVICES`),
    /// each by its UUID (else `gpu<NVML index>`), in NVML order.
    pub fn metered_gpus(&self) -> Vec<String> {
        (self.gpus.iter())
            .filter(|g| g.metered)
            .map(|g| g.uuid.clone().unwrap_or_else(|| format!("gpu{}", g.index)))
            .collect()
    }
}

impl Host {
    /// The CPU as reports and fingerprints name it: its model string, followed by its
    /// identification where the string holds no model number (a VM's `AMD EPYC (AuthenticAMD
    /// family 26 model 2)`: two generations of EPYC would otherwise count as one hardware).
    /// A model string with a number (`AMD EPYC 9654 96-Core Processor`) is enough alone.
    pub fn cpu_name(&self) -> String {
        let model = self.cpu_model.as_deref().unwrap_or("unknown");
        match &self.cpu_id {
            Some(id) if !model.chars().any(|c| c.is_ascii_digit()) => format!("{model} ({id})"),
            _ => model.to_string(),
        }
    }

    /// `2 logical cores`, or `16 logical cores, 4 usable by the run` when the run was
    /// confined to fewer.
    pub fn cores_text(&self) -> String {
        match self.usable_cores {
            Some(u) if u != self.logical_cores => {
                format!(
                    "{} logical cores, {u} usable by the run",
                    self.logical_cores
                )
            }
            _ => format!("{} logical cores", self.logical_cores),
        }
    }
}

impl Environment {
    /// What makes timings comparable: the CPU ([`Host::cpu_name`]: its model, and its
    /// family and model numbers where the model string has none) and core count, and each
    /// GPU's name (in index order). Two results with different hardware fingerprints were
    /// measured on different machines (kinds); the host name is deliberately left out.
    pub fn hardware_fingerprint(&self) -> String {
        let h = &self.host;
        let mut parts = vec![format!("cpu={} x{}", h.cpu_name(), h.logical_cores)];
        for g in &self.gpus {
            parts.push(format!(
                "gpu{}={}",
                g.index,
                g.name.as_deref().unwrap_or("unknown")
            ));
        }
        parts.join("; ")
    }

    /// The recorded environment variables as one string (`K=V; ...`), `None` when the file
    /// predates their recording.
    pub fn variables_fingerprint(&self) -> Option<String> {
        self.variables.as_ref().map(|v| {
            v.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The conditions of the run that move its figures with no change of code, software or
    /// variables, as one string (`usable_cores=4; gpu0_power_limit=700 W`): the cores it could
    /// use (a container's CPU limit, `taskset`, Slurm's `--cpus-per-task`) and the enforced
    /// power limit of each GPU it meters (`nvidia-smi -pl`), `unknown` where not read (a
    /// history compares only what both runs know). `None` when the file predates the usable
    /// cores, or they could not be read.
    pub fn conditions_fingerprint(&self) -> Option<String> {
        let mut parts = vec![format!("usable_cores={}", self.host.usable_cores?)];
        for g in self.gpus.iter().filter(|g| g.metered) {
            parts.push(match g.power_limit_watts {
                Some(w) => format!("gpu{}_power_limit={w} W", g.index),
                None => format!("gpu{}_power_limit=unknown", g.index),
            });
        }
        Some(parts.join("; "))
    }

    /// The recorded environment variables in words, for reports.
    pub fn variables_text(&self) -> String {
        match self.variables_fingerprint() {
            None => "not recorded (a file from an older wattbench)".into(),
            Some(v) if v.is_empty() => "none of the recorded ones set".into(),
            Some(v) => v,
        }
    }

    /// The software that can move a number without any change of ours: the driver and
    /// library versions recorded in `software` (wattbench's own version and the build profile,
    /// which a comparison and a history take on their own, excluded) and the GPU driver. A
    /// change here is a known break in a history.
    pub fn software_fingerprint(&self) -> String {
        let mut parts: Vec<String> = self
            .software
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "wattbench" | "build-profile"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if let Some(d) = self.gpus.iter().find_map(|g| g.driver_version.as_deref()) {
            parts.push(format!("nvidia-driver={d}"));
        }
        parts.join("; ")
    }
}

impl RunFile {
    /// A result file of this [`SCHEMA_VERSION`], with no run-level energy, cases or training
    /// runs yet.
    pub fn new(
        created_at: String,
        duration_s: f64,
        interrupted: bool,
        environment: Environment,
        config: Config,
    ) -> RunFile {
        RunFile {
            schema_version: SCHEMA_VERSION,
            created_at,
            duration_s,
            interrupted,
            environment,
            config,
            energy: None,
            cases: Vec::new(),
            trainings: Vec::new(),
        }
    }

    /// Parse a result file, checking its schema version first so that a file from another
    /// version is refused with what to do, not a field-level parse error.
    pub fn from_json(text: &str) -> Result<RunFile, ReadError> {
        check_version(text)?;
        if is_merged(text) {
            return Err(ReadError::NotAResult(
                "a merged file of several runs (`wattbench merge`): `compare`, `history add` \
                 and `report --format html` read it; here give one of the files it was made of"
                    .into(),
            ));
        }
        let run: RunFile =
            serde_json::from_str(text).map_err(|e| ReadError::NotAResult(e.to_string()))?;
        run.check_values().map_err(ReadError::NotAResult)?;
        Ok(run)
    }

    /// Refuses values no measurement gives (the types are checked by reading): a negative
    /// or non-finite time or rate, a timing with no sample. The error names the key, e.g.
    /// `cases[0].time.median_s = -1 (gemm/...)`, and says what it means.
    pub fn check_values(&self) -> Result<(), String> {
        let why = |e: String, id: &str| {
            format!(
                "{e} ({id}): times, rates and sample counts cannot be negative, infinite or \
                 missing; the file was edited or damaged: use the file as wattbench wrote it"
            )
        };
        non_negative("duration_s", self.duration_s).map_err(|e| why(e, "the run"))?;
        for (i, c) in self.cases.iter().enumerate() {
            c.check_status().map_err(|e| {
                format!(
                    "cases[{i}] ({}): {e}; the file was edited or damaged: use the file as \
                     wattbench wrote it",
                    c.id
                )
            })?;
            if let Some(t) = &c.time {
                check_time(&format!("cases[{i}].time"), t).map_err(|e| why(e, &c.id))?;
            }
            if let Some(tp) = &c.throughput {
                non_negative(
                    &format!("cases[{i}].throughput.gflops_per_s"),
                    tp.gflops_per_s,
                )
                .and_then(|()| {
                    non_negative(
                        &format!("cases[{i}].throughput.gbytes_per_s"),
                        tp.gbytes_per_s,
                    )
                })
                .map_err(|e| why(e, &c.id))?;
            }
        }
        for (i, t) in self.trainings.iter().enumerate() {
            if let Some(time) = &t.time {
                check_time(&format!("trainings[{i}].time"), time).map_err(|e| why(e, &t.id))?;
            }
            non_negative(
                &format!("trainings[{i}].measured_wall_s"),
                t.measured_wall_s,
            )
            .and_then(|()| non_negative(&format!("trainings[{i}].total_wall_s"), t.total_wall_s))
            .map_err(|e| why(e, &t.id))?;
        }
        Ok(())
    }
}

/// Why `text` could not be read as a JSON object (`e`), in words a user can act on: empty,
/// cut short, not JSON.
pub fn not_json(text: &str, e: &serde_json::Error) -> String {
    if text.trim().is_empty() {
        "the file is empty (an interrupted write or copy?): write it again (re-run, or copy it \
         again)"
            .into()
    } else if e.is_eof() {
        format!(
            "the file is truncated: its JSON ends early ({e}; an interrupted write or copy?): \
             write it again (re-run, or copy it again)"
        )
    } else if e.is_data() {
        format!("not a JSON object ({e})")
    } else {
        format!("not JSON ({e})")
    }
}

/// What another document wattbench writes is, and which command reads it, recognised by its
/// keys (results/README.md): a `measure` report, a ceilings file, a comparison. `None` for
/// anything else.
fn other_document(head: &serde_json::Map<String, serde_json::Value>) -> Option<&'static str> {
    let has = |k: &str| head.contains_key(k);
    let schema = head.get("schema").and_then(|v| v.as_str());
    if schema.is_some_and(|s| s.starts_with("wattbench-measure")) {
        Some(
            "it is a `wattbench measure` report (a command's energy, not a run of workloads): \
             `report --format html` reads it, with its trace",
        )
    } else if head
        .get("hardware_fingerprint")
        .is_some_and(|v| v.is_string())
        && has("devices")
        && has("not_measured")
    {
        Some(
            "it is a ceilings file (`wattbench ceilings`: the machine's limits): give it to \
             `report --format html` (as an input, or with --ceilings) for the roofline",
        )
    } else if has("base") && has("new") && has("summary") && has("threshold") {
        Some(
            "it is a comparison (`wattbench compare --format json`), which no command reads \
             back: give the result files it compared (its `base.files` and `new.files`)",
        )
    } else {
        None
    }
}

/// What `text` is when it is another wattbench document than a result file (a `measure`
/// report, a ceilings file, a comparison), in words; `None` for anything else.
pub fn other_wattbench_document(text: &str) -> Option<&'static str> {
    let head: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
    other_document(&head)
}

/// Refuses anything but a JSON object whose numeric `schema_version` is [`SCHEMA_VERSION`],
/// saying what to do about another version.
fn check_version(text: &str) -> Result<(), ReadError> {
    // An object with a numeric `schema_version` (a struct would also read from an array
    // such as `[1]`).
    let head: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| ReadError::NotAResult(not_json(text, &e)))?;
    if let Some(what) = other_document(&head) {
        return Err(ReadError::NotAResult(what.into()));
    }
    let version = head
        .get("schema_version")
        .ok_or_else(|| ReadError::NotAResult("no `schema_version` key".into()))
        .and_then(|v| {
            u32::deserialize(v).map_err(|e| ReadError::NotAResult(format!("schema_version: {e}")))
        })?;
    match version {
        SCHEMA_VERSION => Ok(()),
        v if v < SCHEMA_VERSION => Err(ReadError::Version {
            found: v,
            advice: "it was written by an older wattbench: re-run it, or read it with the \
                     wattbench release that wrote it",
        }),
        v => Err(ReadError::Version {
            found: v,
            advice: "it was written by a newer wattbench: update this one",
        }),
    }
}
