//! Option groups several commands share, defined once and flattened into each: the meters
//! (`run`, `train`, `measure`) and the carbon accounting (`train`, `measure`).
use crate::UsageError;
use clap::Args;
use std::path::PathBuf;
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::MeterConfig;

/// How the energy meters are found.
#[derive(Args, Debug, Clone)]
pub struct MeterArgs {
    /// CPU TDP in watts for the energy estimate where no counter exists, spread over this
    /// machine's logical CPUs (default: a table keyed by CPU model, else a stated per-thread
    /// figure).
    #[arg(long, value_name = "WATTS")]
    pub tdp_watts: Option<f64>,
    /// Powercap sysfs root for RAPL (default: $WATTBENCH_POWERCAP_ROOT, else
    /// /sys/class/powercap).
    #[arg(long, value_name = "DIR")]
    pub powercap_root: Option<PathBuf>,
    /// Do not look for NVIDIA GPUs.
    #[arg(long)]
    pub no_nvml: bool,
}

impl MeterArgs {
    /// The meter configuration, or a usage error for a nonsensical TDP.
    pub fn config(&self) -> Result<MeterConfig, UsageError> {
        if let Some(t) = self.tdp_watts {
            if !t.is_finite() || t <= 0.0 {
                return Err(UsageError(format!(
                    "--tdp-watts must be a positive number of watts, not {t}"
                )));
            }
        }
        Ok(MeterConfig {
            powercap_root: self.powercap_root.clone(),
            tdp_watts: self.tdp_watts,
            nvml: !self.no_nvml,
            ..MeterConfig::default()
        })
    }
}

/// How energy becomes kWh, CO2e and cost.
#[derive(Args, Debug, Clone)]
pub struct CarbonArgs {
    /// Grid region for the carbon intensity: country code (FR, US...) or cloud region
    /// (aws:eu-west-3, gcp:europe-west1, azure:westeurope). Default: world average.
    #[arg(long, value_name = "CODE")]
    pub region: Option<String>,
    /// Grid carbon intensity, gCO2e/kWh (overrides the table's figure for --region).
    #[arg(long, value_name = "G_PER_KWH")]
    pub intensity: Option<f64>,
    /// Data-centre power usage effectiveness (default 1.0: IT energy only).
    #[arg(long, value_name = "PUE")]
    pub pue: Option<f64>,
    /// Electricity price per kWh, in any currency, for a cost figure.
    #[arg(long, value_name = "PRICE")]
    pub price_per_kwh: Option<f64>,
}

impl CarbonArgs {
    /// The resolved carbon parameters, or a usage error that says what to give.
    pub fn params(&self) -> Result<CarbonParams, UsageError> {
        CarbonParams::resolve(
            self.region.as_deref(),
            self.intensity,
            self.pue,
            self.price_per_kwh,
        )
        .map_err(|e| UsageError(e.to_string()))
    }
}
