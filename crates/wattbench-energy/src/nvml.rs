//! NVIDIA GPUs through NVML, read-only: nothing here sets clocks, limits or modes.
//!
//! The total-energy counter (mJ since driver load, Volta and newer) is the primary source
//! (`measured`). Where it is unsupported, power samples are integrated (`integrated`). What a
//! power reading is depends on the GPU generation ([`PowerReading`]): instantaneous up to
//! GA100, a 1-second average on Ampere (except GA100) and newer, and on A100 and H100 the
//! sensor is sampled for only part of the time (about 25 % per arXiv 2312.02741), which the
//! energy counter inherits. The instantaneous field `NVML_FI_DEV_POWER_INSTANT` is read where
//! the driver has it. Only the GPUs the measured work can use are metered ([`crate::gpus`]).
//! NVML is loaded at run time, so a machine without the driver reports the library's error
//! and carries on.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::{DeviceArchitecture, SampleValue};
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT;
use nvml_wrapper::{Device, Nvml};

use crate::counter::{CounterSpec, WindowFacts};
use crate::gpus::{self, GpuIdentity, GpuSelection};
use crate::meters::{Domain, DomainMeta, ReadContext, Reading};
use crate::{EnergyError, Source};
use crate::{GpuRecord, MeterInfo};
use wattbench_core::result::GpuState;

/// The energy counter's documented update period is not published; NVML's power sample
/// period is "between 1 second and 1/6 second depending on the product". We assume 100 ms
/// until the probe has seen the counter change.
const COUNTER_UPDATE: Duration = Duration::from_millis(100);

/// The only accuracy NVIDIA publishes for its power readings: ±5 % of current draw, stated
/// for Fermi and Kepler. Later generations publish none; we keep ±5 % as a floor and say so.
const POWER_ACCURACY: f64 = 0.05;

/// Plausible peak power where the power limit is unreadable: above every NVIDIA board's
/// limit to date (B200 1000 W), so the wrap and edge terms stay conservative.
const FALLBACK_PEAK_W: f64 = 1200.0;

/// The shortest energy window for a GPU: 2 s (see [`Domain::min_window`]).
pub const MIN_WINDOW: Duration = Duration::from_secs(2);

static NVML: OnceLock<Result<Arc<Nvml>, String>> = OnceLock::new();

/// The process-wide NVML handle, initialised once; the error text is NVML's own.
pub fn handle() -> Result<Arc<Nvml>, String> {
    NVML.get_or_init(|| Nvml::init().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
}

/// What an NVML power reading is on one GPU generation.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerReading {
    /// The window `nvmlDeviceGetPowerUsage` averages over, s (0: instantaneous).
    pub averaging_s: f64,
    /// Whether the sensor is known to be sampled for only part of the time.
    pub part_time: bool,
    /// The description recorded with the GPU.
    pub description: String,
}

/// How NVML reports power for a GPU of `arch` named `name`, from NVML's documentation of
/// `nvmlDeviceGetPowerUsage` ("On Ampere (except GA100) or newer GPUs, the API returns power
/// averaged over 1 sec interval. On GA100 and older architectures, instantaneous power is
/// returned") and Yang et al., "Part-time Power Measurements: nvidia-smi's Lack of
/// Attention", arXiv 2312.02741 (A100 and H100: about 25 % of the runtime is sampled).
/// `instant` says whether `NVML_FI_DEV_POWER_INSTANT` is readable.
pub fn power_reading(arch: Option<DeviceArchitecture>, name: &str, instant: bool) -> PowerReading {
    // Whole words of the name: "NVIDIA RTX A1000" is not an A100, nor "RTX A3000" an A30.
    let named = |models: &[&str]| {
        name.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| models.contains(&w))
    };
    let ga100 = named(&["A100", "A30", "A800"]);
    let part_time = ga100 || named(&["H100", "H200", "H800", "GH200"]);
    let (averaging_s, what) = match arch {
        Some(DeviceArchitecture::Ampere) if ga100 => (0.0, "instantaneous (GA100)".to_string()),
        Some(
            DeviceArchitecture::Ampere
            | DeviceArchitecture::Ada
            | DeviceArchitecture::Hopper
            | DeviceArchitecture::Blackwell,
        ) => (
            1.0,
            "averaged over 1 s (Ampere and newer, except GA100)".into(),
        ),
        Some(DeviceArchitecture::Unknown) | None => (
            1.0,
            "unknown generation: assumed averaged over 1 s, as on recent GPUs".into(),
        ),
        Some(a) => (0.0, format!("instantaneous ({a:?} generation)")),
    };
    let averaging_s = if instant { 0.0 } else { averaging_s };
    let mut description = if instant {
        // What the plain power-usage call would return is said too, as what was avoided: the
        // H200 run's files showed "INSTANT (power usage is averaged over 1 s)", which reads as
        // a contradiction.
        format!(
            "instantaneous power read from NVML_FI_DEV_POWER_INSTANT (not the power-usage \
             reading, which is {what})"
        )
    } else {
        format!("power usage is {what}")
    };
    if part_time {
        description.push_str(
            "; on A100/H100-class GPUs the power sensor is sampled for only about 25 % of the \
             time (arXiv 2312.02741), and the energy counter inherits this: work shorter than \
             the sampling period may be missed or over-counted, so windows are seconds long \
             and repeat the same work",
        );
    }
    PowerReading {
        averaging_s,
        part_time,
        description,
    }
}

/// GPUs found through NVML.
#[derive(Default)]
pub struct NvmlDiscovery {
    /// One domain per metered GPU that has a counter or power readings.
    pub domains: Vec<Arc<dyn Domain>>,
    /// GPUs (or NVML itself) that cannot be read, and GPUs left out by the selection.
    pub unavailable: Vec<MeterInfo>,
    /// Static and live description of every GPU, metered or not.
    pub gpus: Vec<GpuRecord>,
    /// Doubts about which GPUs the work uses (a mixed node, an invalid entry).
    pub warnings: Vec<String>,
}

struct GpuDomain {
    nvml: Arc<Nvml>,
    index: u32,
    meta: DomainMeta,
    counter: Option<CounterSpec>,
    instant: bool,
    power: PowerReading,
    /// The enforced power limit, else [`FALLBACK_PEAK_W`].
    peak_w: f64,
}

/// The uncertainty of power readings integrated over a window (no counter), its terms added:
/// - an averaged reading lags by its averaging window at each edge: twice the mean power
///   over that window;
/// - the sensor's accuracy;
/// - every gap of failed readings (a time between two readings longer than twice the
///   sampling interval; with no reading between the window's edges, the whole window), which
///   the trapezoid bridges with a straight line: the peak power over each gap's excess on the
///   sampling interval, summed ([`WindowFacts::gap_excess_s`]);
/// - for instantaneous readings (`averaging_s` 0), a load change between two readings at an
///   unknown instant: |ΔP| dt / 2 for each interval ([`WindowFacts::power_steps_j`]).
fn integrated_uncertainty(w: &WindowFacts, averaging_s: f64, peak_w: f64) -> f64 {
    let p = if w.window_s > 0.0 {
        w.joules / w.window_s
    } else {
        0.0
    };
    let steps = if averaging_s == 0.0 {
        w.power_steps_j
    } else {
        0.0
    };
    2.0 * p * averaging_s + POWER_ACCURACY * w.joules + peak_w * w.gap_excess_s + steps
}

fn instant_power_w(dev: &Device) -> Option<f64> {
    let v = dev
        .field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])
        .ok()?
        .pop()?
        .ok()?
        .value
        .ok()?;
    let mw = match v {
        SampleValue::U32(x) => x as f64,
        SampleValue::U64(x) => x as f64,
        SampleValue::I64(x) => x as f64,
        SampleValue::F64(x) => x,
    };
    (mw > 0.0).then_some(mw / 1000.0)
}

fn identity(nvml: &Nvml, index: u32) -> GpuIdentity {
    let dev = nvml.device_by_index(index).ok();
    GpuIdentity {
        index,
        uuid: dev.as_ref().and_then(|d| d.uuid().ok()),
        pci_bus_id: dev
            .as_ref()
            .and_then(|d| d.pci_info().ok())
            .map(|p| p.bus_id),
        name: dev.as_ref().and_then(|d| d.name().ok()),
    }
}

/// Finds GPUs and meters those `selection` (with `CUDA_VISIBLE_DEVICES`) picks. NVML missing
/// → one unavailable entry with the library's error. An explicit `--gpus` entry that names no
/// GPU is a usage error.
pub fn discover(selection: &GpuSelection) -> Result<NvmlDiscovery, EnergyError> {
    let mut out = NvmlDiscovery::default();
    let found = handle()
        .map_err(|e| format!("NVML could not be initialised: {e}"))
        .and_then(|n| match n.device_count() {
            Ok(c) => Ok((n, c)),
            Err(e) => Err(format!("NVML device count failed: {e}")),
        });
    let (nvml, count) = match found {
        Ok(f) => f,
        Err(why) => {
            out.unavailable
                .push(MeterInfo::unavailable("nvml", "nvml", why));
            return Ok(out);
        }
    };
    let ids: Vec<GpuIdentity> = (0..count).map(|i| identity(&nvml, i)).collect();
    let cuda_visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let pci_order = std::env::var("CUDA_DEVICE_ORDER").is_ok_and(|v| v == "PCI_BUS_ID");
    let chosen = gpus::select(&ids, selection, cuda_visible.as_deref(), pci_order)
        .map_err(EnergyError::Usage)?;
    out.warnings = chosen.warnings.clone();
    let driver = nvml.sys_driver_version().ok();
    for id in &ids {
        let index = id.index;
        let name = format!("gpu{index}");
        let metered = chosen.metered.contains(&index);
        let dev = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                out.unavailable
                    .push(MeterInfo::unavailable(name, "nvml", e));
                continue;
            }
        };
        let counter = dev.total_energy_consumption().is_ok();
        let instant = instant_power_w(&dev).is_some();
        let power = power_reading(
            dev.architecture().ok(),
            id.name.as_deref().unwrap_or(""),
            instant,
        );
        let selection = if metered {
            format!("metered: selected by {}", chosen.basis)
        } else {
            chosen
                .left_out
                .iter()
                .find(|(i, _)| *i == index)
                .map_or_else(|| "left out".into(), |(_, why)| why.clone())
        };
        out.gpus.push(GpuRecord {
            index,
            name: id.name.clone(),
            uuid: id.uuid.clone(),
            pci_bus_id: id.pci_bus_id.clone(),
            driver_version: driver.clone(),
            power_limit_watts: dev.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0),
            memory_total_bytes: dev.memory_info().ok().map(|m| m.total),
            energy_counter: counter,
            metered,
            selection: selection.clone(),
            power_reading: power.description.clone(),
            state: gpu_state(&dev, index, instant),
        });
        if !metered {
            out.unavailable.push(MeterInfo {
                name,
                kind: "nvml".into(),
                available: false,
                reason: Some(selection),
                detail: id.name.clone(),
            });
            continue;
        }
        let readable = counter || dev.power_usage().is_ok() || instant;
        if !readable {
            out.unavailable.push(MeterInfo::unavailable(
                name,
                "nvml",
                "neither the energy counter nor power readings are supported",
            ));
            continue;
        }
        let source = if counter {
            Source::Measured
        } else {
            Source::Integrated
        };
        let mut meta = DomainMeta::new(name, "nvml", source, "device");
        meta.note = Some(format!(
            "whole device: every process using the GPU is counted; {}",
            power.description
        ));
        let peak = dev.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0);
        let spec = counter.then(|| CounterSpec {
            resolution_j: 1e-3,
            nominal_update: COUNTER_UPDATE,
            wraps: false,
            wrap_j: None,
            peak_w: peak.unwrap_or(FALLBACK_PEAK_W),
            peak_source: peak.map_or_else(
                || format!("{FALLBACK_PEAK_W} W, the power limit being unreadable"),
                |_| "the enforced power limit".into(),
            ),
            relative_accuracy: POWER_ACCURACY,
        });
        out.domains.push(Arc::new(GpuDomain {
            nvml: nvml.clone(),
            index,
            meta,
            counter: spec,
            instant,
            power,
            peak_w: peak.unwrap_or(FALLBACK_PEAK_W),
        }));
    }
    Ok(out)
}

fn throttle_names(r: ThrottleReasons) -> Vec<String> {
    let named = [
        (ThrottleReasons::GPU_IDLE, "gpu_idle"),
        (
            ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
            "applications_clocks_setting",
        ),
        (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
        (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
        (ThrottleReasons::SYNC_BOOST, "sync_boost"),
        (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
        (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
        (
            ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
            "hw_power_brake_slowdown",
        ),
        (
            ThrottleReasons::DISPLAY_CLOCK_SETTING,
            "display_clock_setting",
        ),
    ];
    named
        .iter()
        .filter(|(f, _)| r.contains(*f))
        .map(|(_, n)| n.to_string())
        .collect()
}

fn gpu_state(dev: &Device, index: u32, instant: bool) -> GpuState {
    let power = if instant {
        instant_power_w(dev)
    } else {
        dev.power_usage().ok().map(|mw| mw as f64 / 1000.0)
    };
    GpuState {
        index,
        sm_clock_mhz: dev.clock_info(Clock::SM).ok(),
        memory_clock_mhz: dev.clock_info(Clock::Memory).ok(),
        temperature_c: dev.temperature(TemperatureSensor::Gpu).ok(),
        power_watts: power,
        utilization_gpu_pct: dev.utilization_rates().ok().map(|u| u.gpu),
        memory_used_bytes: dev.memory_info().ok().map(|m| m.used),
        throttle_reasons: dev.current_throttle_reasons().ok().map(throttle_names),
    }
}

/// The live state (clocks, temperature, throttling, memory) of the given GPUs now; GPUs that
/// cannot be read are left out.
pub(crate) fn gpu_states(indices: &[u32]) -> Vec<GpuState> {
    let Ok(n) = handle() else {
        return Vec::new();
    };
    indices
        .iter()
        .filter_map(|&i| {
            let dev = n.device_by_index(i).ok()?;
            let instant = instant_power_w(&dev).is_some();
            Some(gpu_state(&dev, i, instant))
        })
        .collect()
}

impl Domain for GpuDomain {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, _ctx: &ReadContext) -> Result<Reading, String> {
        let dev = self
            .nvml
            .device_by_index(self.index)
            .map_err(|e| e.to_string())?;
        if self.counter.is_some() {
            return dev
                .total_energy_consumption()
                .map(|mj| Reading::Counter {
                    raw: mj,
                    joules_per_unit: 1e-3,
                    wrap_at: None,
                })
                .map_err(|e| e.to_string());
        }
        self.reported_power().map(|watts| Reading::Power { watts })
    }
    fn counter(&self) -> Option<CounterSpec> {
        self.counter.clone()
    }
    fn power_reading(&self) -> Option<&PowerReading> {
        self.counter.is_some().then_some(&self.power)
    }
    fn reported_power(&self) -> Result<f64, String> {
        let dev = self
            .nvml
            .device_by_index(self.index)
            .map_err(|e| e.to_string())?;
        if self.instant {
            if let Some(w) = instant_power_w(&dev) {
                return Ok(w);
            }
        }
        dev.power_usage()
            .map(|mw| mw as f64 / 1000.0)
            .map_err(|e| e.to_string())
    }
    fn uncertainty_j(&self, w: &WindowFacts) -> f64 {
        integrated_uncertainty(w, self.power.averaging_s, self.peak_w)
    }
    fn min_window(&self) -> Duration {
        // Many sensor periods: the counter's edges (±100 ms each) stay under 10 % of the
        // window, and on part-time-sampled GPUs some 20 periods are sampled.
        MIN_WINDOW
    }
    fn memory_used_bytes(&self) -> Option<u64> {
        let dev = self.nvml.device_by_index(self.index).ok()?;
        dev.memory_info().ok().map(|m| m.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrate::Accumulator;

    /// Integrated power: the averaging lag at both edges and the sensor's 5 %; a run of
    /// failed readings adds the peak power over the gap's excess on the sampling interval.
    #[test]
    fn integrated_power_widens_over_a_gap_of_failed_readings() {
        // 100 J over 10 s (10 W), 100 readings 0.1 s apart, 1 s averaging: 2 x 10 W x 1 s
        // + 5 J.
        let steady = WindowFacts {
            joules: 100.0,
            window_s: 10.0,
            intervals: 100,
            max_gap_s: 0.1,
            gap_excess_s: 0.0,
            power_steps_j: 0.0,
        };
        assert!((integrated_uncertainty(&steady, 1.0, 700.0) - 25.0).abs() < 1e-9);
        // The same window with a 2 s gap of failed reads (80 intervals of 0.1 s and the gap):
        // + 700 W over the gap less the usual interval.
        let gap = WindowFacts {
            intervals: 81,
            max_gap_s: 2.0,
            gap_excess_s: 2.0 - 0.1,
            ..steady
        };
        let want = 25.0 + 700.0 * (2.0 - 0.1);
        assert!((integrated_uncertainty(&gap, 1.0, 700.0) - want).abs() < 1e-9);
        // No reading between the edges of a 3 s window: all of it is the gap.
        let edges = WindowFacts {
            joules: 30.0,
            window_s: 3.0,
            intervals: 1,
            max_gap_s: 3.0,
            gap_excess_s: 3.0,
            power_steps_j: 0.0,
        };
        let want = 2.0 * 10.0 + 1.5 + 700.0 * 3.0;
        assert!((integrated_uncertainty(&edges, 1.0, 700.0) - want).abs() < 1e-9);
    }

    /// The gap term sums every gap, not only the longest: a 20 s window read every 0.1 s with
    /// five 2 s gaps of failed readings (100 W, 1 s averaging, a 250 W limit) bridges five
    /// gaps, each off by up to 250 W x (2 s - 0.1 s): 2375 J, beside 2 x 100 W x 1 s + 5 % of
    /// 2000 J. (Counting the longest gap alone gave about 457 J.)
    #[test]
    fn integrated_power_counts_every_gap() {
        let mut acc = Accumulator::new().with_expected_interval(0.1);
        let mut t = 0.0;
        acc.push(t, Reading::Power { watts: 100.0 });
        for i in 0..105 {
            t += if i % 21 == 20 { 2.0 } else { 0.1 };
            acc.push(t, Reading::Power { watts: 100.0 });
        }
        assert!((acc.span_s() - 20.0).abs() < 1e-9, "{}", acc.span_s());
        let w = WindowFacts::of(&acc, acc.joules().unwrap());
        assert!((w.joules - 2000.0).abs() < 1e-6);
        let want = 200.0 + 100.0 + 2375.0;
        let got = integrated_uncertainty(&w, 1.0, 250.0);
        assert!((got - want).abs() < 1e-6, "{got} J, want {want} J");
    }

    /// Instantaneous readings say nothing of the load between two of them: a step from 100 W
    /// to 300 W at an unknown instant of a 0.1 s interval moves its energy by up to
    /// 200 W x 0.1 s / 2 = 10 J either way from the trapezoid's. An averaged reading has its
    /// own term (the lag at the edges) instead.
    #[test]
    fn instantaneous_power_widens_by_the_changes_between_readings() {
        let mut acc = Accumulator::new().with_expected_interval(0.1);
        // 100 W, 300 W, 300 W, 100 W, 0.1 s apart: steps of 200, 0 and 200 W.
        for (i, p) in [100.0, 300.0, 300.0, 100.0].into_iter().enumerate() {
            acc.push(i as f64 * 0.1, Reading::Power { watts: p });
        }
        let j = acc.joules().unwrap();
        assert!((j - 70.0).abs() < 1e-9, "{j}");
        let w = WindowFacts::of(&acc, j);
        // 5 % of 70 J, and 200 W x 0.1 s / 2 twice.
        let got = integrated_uncertainty(&w, 0.0, 700.0);
        assert!((got - (3.5 + 20.0)).abs() < 1e-9, "{got}");
        // Averaged over 1 s: the edges' lag (2 x 233.3 W x 1 s), not the steps.
        let got = integrated_uncertainty(&w, 1.0, 700.0);
        assert!((got - (2.0 * 70.0 / 0.3 + 3.5)).abs() < 1e-9, "{got}");
    }

    /// On a machine without the NVIDIA driver NVML must report unavailable with its own error
    /// text; where the driver exists, every GPU is either a domain or listed with a reason.
    #[test]
    fn nvml_reports_unavailable_or_lists_gpus() {
        let d = discover(&GpuSelection::All).unwrap();
        match handle() {
            Err(e) => {
                assert!(d.domains.is_empty());
                let r = d.unavailable[0].reason.as_deref().unwrap();
                assert!(r.starts_with("unavailable: "), "{r}");
                assert!(r.contains(&e), "{r}");
            }
            Ok(n) => {
                let count = n.device_count().unwrap() as usize;
                assert_eq!(d.gpus.len(), count);
                assert_eq!(d.domains.len() + d.unavailable.len(), count);
            }
        }
    }

    #[test]
    fn power_readings_follow_the_generation() {
        use DeviceArchitecture as A;
        let ga100 = power_reading(Some(A::Ampere), "NVIDIA A100-SXM4-80GB", false);
        assert_eq!(ga100.averaging_s, 0.0);
        assert!(ga100.part_time && ga100.description.contains("2312.02741"));
        let ga102 = power_reading(Some(A::Ampere), "NVIDIA RTX A6000", false);
        assert_eq!(ga102.averaging_s, 1.0);
        assert!(!ga102.part_time);
        let h200 = power_reading(Some(A::Hopper), "NVIDIA H200", false);
        assert!(h200.averaging_s == 1.0 && h200.part_time);
        // The instantaneous field removes the averaging lag, not the part-time sampling.
        let h200i = power_reading(Some(A::Hopper), "NVIDIA H200", true);
        assert!(h200i.averaging_s == 0.0 && h200i.part_time);
        assert!(h200i.description.contains("POWER_INSTANT"));
        // It says the figure is instantaneous before it names the averaging it avoids.
        assert!(h200i
            .description
            .starts_with("instantaneous power read from"));
        assert!(h200i
            .description
            .contains("not the power-usage reading, which is averaged"));
        let v100 = power_reading(Some(A::Volta), "Tesla V100-SXM2-16GB", false);
        assert_eq!(v100.averaging_s, 0.0);
        assert_eq!(power_reading(None, "?", false).averaging_s, 1.0);
        // Names that contain a GA100 part's name without being one (GA107, GA104).
        for name in [
            "NVIDIA RTX A1000 Laptop GPU",
            "NVIDIA RTX A3000 12GB Laptop GPU",
        ] {
            let r = power_reading(Some(A::Ampere), name, false);
            assert!(r.averaging_s == 1.0 && !r.part_time, "{name}: {r:?}");
        }
        for name in ["NVIDIA A30", "NVIDIA A800 80GB PCIe", "NVIDIA GH200 480GB"] {
            assert!(
                power_reading(Some(A::Ampere), name, false).part_time,
                "{name}"
            );
        }
    }

    #[test]
    fn throttle_reasons_are_named() {
        let r = ThrottleReasons::SW_POWER_CAP | ThrottleReasons::HW_THERMAL_SLOWDOWN;
        assert_eq!(throttle_names(r), ["sw_power_cap", "hw_thermal_slowdown"]);
        assert!(throttle_names(ThrottleReasons::NONE).is_empty());
    }
}
