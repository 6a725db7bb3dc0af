//! Option groups several commands share, defined once and flattened into each: the meters
//! (`run`, `train`, `measure`) and the carbon accounting (`train`, `measure`).
use crate::UsageError;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use wattbench_core::Backend;
use wattbench_energy::carbon::CarbonParams;
use wattbench_energy::gpus::GpuSelection;
use wattbench_energy::{MeterConfig, Meters};

/// A usage error (exit 2) with `msg`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The named `--what` choices among `all` (empty when none is given); an unknown name is a
/// usage error listing the valid ones.
pub fn choices<T: Copy>(
    what: &str,
    given: &[String],
    all: &[T],
    name: impl Fn(T) -> &'static str + Copy,
) -> anyhow::Result<Vec<T>> {
    given
        .iter()
        .map(|s| wattbench_core::workload::parse_choice(what, s, all, name).map_err(usage))
        .collect()
}

/// The backend called `name` among `all`; another name is a usage error that lists theirs.
pub fn backend<'a>(
    all: &'a [Arc<dyn Backend>],
    name: &str,
) -> anyhow::Result<&'a Arc<dyn Backend>> {
    let refs: Vec<&Arc<dyn Backend>> = all.iter().collect();
    wattbench_core::workload::parse_choice("backend", name, &refs, |b| b.name()).map_err(usage)
}

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
    /// GPUs to meter: `all`, `none`, or a comma-separated list of NVML indices, `GPU-…`
    /// UUIDs or PCI bus ids. Default: the GPUs CUDA_VISIBLE_DEVICES shows (all when unset).
    /// GPUs left out are listed in the output.
    #[arg(long, value_name = "LIST")]
    pub gpus: Option<String>,
}

impl MeterArgs {
    /// The meters these options select; a `--gpus` entry that names no GPU is a usage error.
    pub fn discover(&self) -> Result<Meters, UsageError> {
        Meters::discover(&self.config()?).map_err(|e| UsageError(e.to_string()))
    }

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
            gpus: self
                .gpus
                .as_deref()
                .map_or(GpuSelection::Auto, GpuSelection::parse),
            ..MeterConfig::default()
        })
    }
}

/// How energy becomes kWh, CO2e and cost.
#[derive(Args, Debug, Clone)]
pub struct CarbonArgs {
    /// Grid region for the carbon intensity: country code (FR, US...) or cloud region
    /// (aws:eu-west-3, gcp:europe-west1, azure:westeurope), or a code from --carbon-table.
    /// Default: world average.
    #[arg(long, value_name = "CODE")]
    pub region: Option<String>,
    /// Grid carbon intensity, gCO2e/kWh (overrides the table's figure for --region), taken as
    /// a yearly mean: the CO2e interval spans the table's default daily band around it.
    #[arg(long, value_name = "G_PER_KWH")]
    pub intensity: Option<f64>,
    /// Data-centre power usage effectiveness (default 1.0: IT energy only).
    #[arg(long, value_name = "PUE")]
    pub pue: Option<f64>,
    /// Electricity price per kWh, in any currency, for a cost figure.
    #[arg(long, value_name = "PRICE")]
    pub price_per_kwh: Option<f64>,
    /// TOML file of grid intensities in the shipped table's format, merged over it: entries
    /// add regions or replace those with the same code, each marked user-supplied (default:
    /// $WATTBENCH_CARBON_TABLE, else none).
    #[arg(long, value_name = "FILE")]
    pub carbon_table: Option<PathBuf>,
}

impl CarbonArgs {
    /// The resolved carbon parameters, or a usage error that says what to give (an unknown
    /// region, impossible numbers, or a carbon table that cannot be read or is malformed).
    pub fn params(&self) -> Result<CarbonParams, UsageError> {
        use wattbench_energy::carbon::{CarbonTable, CARBON_TABLE_ENV};
        let usage = |e: wattbench_energy::EnergyError| UsageError(e.to_string());
        let file = self.carbon_table.clone().or_else(|| {
            std::env::var_os(CARBON_TABLE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let user;
        let table = match &file {
            Some(path) => {
                user = CarbonTable::builtin().with_user_file(path).map_err(usage)?;
                &user
            }
            None => CarbonTable::builtin(),
        };
        CarbonParams::resolve_in(
            table,
            self.region.as_deref(),
            self.intensity,
            self.pue,
            self.price_per_kwh,
        )
        .map_err(usage)
    }
}
