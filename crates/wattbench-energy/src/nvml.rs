//! NVIDIA GPUs through NVML, read-only: nothing here sets clocks, limits or modes.
//!
//! The total-energy counter (mJ since driver load, Volta and newer) is the primary source
//! (`measured`). Where it is unsupported, power samples are integrated (`integrated`); NVML
//! averages power over ~1 s on recent GPUs, so such figures need long windows. NVML is loaded
//! at run time, so a machine without the driver reports the library's error and carries on.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::Nvml;

use crate::meters::{Domain, DomainMeta, ReadContext, Reading};
use crate::Source;
use crate::{GpuRecord, MeterInfo};

/// NVML's counter updates every ~10–100 ms; we assume the slow end.
const COUNTER_UPDATE_S: f64 = 0.1;
/// Power readings are a ~1 s moving average on Ampere and newer.
const POWER_AVERAGING_S: f64 = 1.0;
/// NVML documents power readings as accurate to about ±5 %.
const POWER_ACCURACY: f64 = 0.05;

static NVML: OnceLock<Result<Arc<Nvml>, String>> = OnceLock::new();

/// The process-wide NVML handle, initialised once; the error text is NVML's own.
pub fn handle() -> Result<Arc<Nvml>, String> {
    NVML.get_or_init(|| Nvml::init().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
}

/// GPUs found through NVML.
#[derive(Default)]
pub struct NvmlDiscovery {
    /// One domain per GPU that has a counter or power readings.
    pub domains: Vec<Arc<dyn Domain>>,
    /// GPUs (or NVML itself) that cannot be read.
    pub unavailable: Vec<MeterInfo>,
    /// Static and live description of every GPU.
    pub gpus: Vec<GpuRecord>,
}

struct GpuDomain {
    nvml: Arc<Nvml>,
    index: u32,
    meta: DomainMeta,
    counter: bool,
}

/// Finds GPUs. NVML missing → one unavailable entry with the library's error.
pub fn discover() -> NvmlDiscovery {
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
            return out;
        }
    };
    let driver = nvml.sys_driver_version().ok();
    for index in 0..count {
        let name = format!("gpu{index}");
        let dev = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                out.unavailable
                    .push(MeterInfo::unavailable(name, "nvml", e));
                continue;
            }
        };
        let counter = dev.total_energy_consumption().is_ok();
        let power = dev.power_usage();
        out.gpus
            .push(gpu_info(&nvml, index, driver.clone(), counter));
        if counter || power.is_ok() {
            let source = if counter {
                Source::Measured
            } else {
                Source::Integrated
            };
            let mut meta = DomainMeta::new(name, "nvml", source, "device");
            meta.note = Some("whole device: every process using the GPU is counted".into());
            out.domains.push(Arc::new(GpuDomain {
                nvml: nvml.clone(),
                index,
                meta,
                counter,
            }));
        } else {
            out.unavailable.push(MeterInfo::unavailable(
                name,
                "nvml",
                format!(
                    "neither the energy counter nor power readings are supported ({})",
                    power.err().map(|e| e.to_string()).unwrap_or_default()
                ),
            ));
        }
    }
    out
}

fn gpu_info(nvml: &Nvml, index: u32, driver: Option<String>, counter: bool) -> GpuRecord {
    let dev = nvml.device_by_index(index).ok();
    let d = dev.as_ref();
    let mem = d.and_then(|d| d.memory_info().ok());
    GpuRecord {
        index,
        name: d.and_then(|d| d.name().ok()),
        uuid: d.and_then(|d| d.uuid().ok()),
        driver_version: driver,
        power_limit_watts: d
            .and_then(|d| d.power_management_limit().ok())
            .map(|mw| mw as f64 / 1000.0),
        sm_clock_mhz: d.and_then(|d| d.clock_info(Clock::SM).ok()),
        memory_clock_mhz: d.and_then(|d| d.clock_info(Clock::Memory).ok()),
        temperature_c: d.and_then(|d| d.temperature(TemperatureSensor::Gpu).ok()),
        utilization_gpu_pct: d.and_then(|d| d.utilization_rates().ok()).map(|u| u.gpu),
        memory_used_bytes: mem.as_ref().map(|m| m.used),
        memory_total_bytes: mem.as_ref().map(|m| m.total),
        energy_counter: counter,
    }
}

/// Re-reads the live fields of known GPUs.
pub(crate) fn refresh_gpu_info(gpus: &[GpuRecord]) -> Vec<GpuRecord> {
    match handle() {
        Ok(n) => gpus
            .iter()
            .map(|g| gpu_info(&n, g.index, g.driver_version.clone(), g.energy_counter))
            .collect(),
        Err(_) => gpus.to_vec(),
    }
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
        if self.counter {
            dev.total_energy_consumption()
                .map(|mj| Reading::Counter {
                    raw: mj,
                    joules_per_unit: 1e-3,
                    wrap_at: None,
                })
                .map_err(|e| e.to_string())
        } else {
            dev.power_usage()
                .map(|mw| Reading::Power {
                    watts: mw as f64 / 1000.0,
                })
                .map_err(|e| e.to_string())
        }
    }
    fn uncertainty_j(&self, joules: f64, window_s: f64, _intervals: usize) -> f64 {
        let p = if window_s > 0.0 {
            joules / window_s
        } else {
            0.0
        };
        if self.counter {
            // One update period of energy at each edge plus 1 mJ resolution.
            2.0 * (p * COUNTER_UPDATE_S + 1e-3)
        } else {
            // The averaging window lags at each edge, plus the sensor's accuracy.
            2.0 * p * POWER_AVERAGING_S + POWER_ACCURACY * joules
        }
    }
    fn min_window(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn memory_used_bytes(&self) -> Option<u64> {
        let dev = self.nvml.device_by_index(self.index).ok()?;
        dev.memory_info().ok().map(|m| m.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a machine without the NVIDIA driver NVML must report unavailable with its own error
    /// text; where the driver exists, every GPU is either a domain or listed with a reason.
    #[test]
    fn nvml_reports_unavailable_or_lists_gpus() {
        let d = discover();
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
}
