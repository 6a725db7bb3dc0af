//! What the `measure` tests share (each test file is its own process, as signal tests need).
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::measure::MeasureOptions;
use wattbench_energy::MeterConfig;

/// Options of a `measure` of `command`: RAPL looked for under `powercap_root` only (a
/// folder without one: the CPU estimate, on any machine), no NVML, sampled every 20 ms,
/// France's carbon intensity, no projection, no cgroup, idle window `idle`.
pub fn measure_options(
    command: Vec<OsString>,
    powercap_root: PathBuf,
    idle: Option<Duration>,
) -> MeasureOptions {
    MeasureOptions {
        command,
        meter: MeterConfig {
            powercap_root: Some(powercap_root),
            sample_interval: Duration::from_millis(20),
            nvml: false,
            ..MeterConfig::default()
        },
        carbon: CarbonParams::resolve(Some("FR"), None, None, None).unwrap(),
        projection: None,
        cgroup: false,
        idle,
    }
}
