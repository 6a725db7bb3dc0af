//! Option groups several commands share, defined once and flattened into each: the meters
//! (`run`, `train`, `measure`) and the carbon accounting (`train`, `measure`).
use crate::UsageError;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use wattbench_core::{Backend, DeviceInfo};
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

/// `list` (a comma-separated option's values, `--op "gemm, rnn"`) with the spaces around
/// each name trimmed; an empty item (`--backend reference,,`) is a usage error.
pub fn trim_list(flag: &str, list: &mut [String]) -> anyhow::Result<()> {
    for v in list.iter_mut() {
        *v = v.trim().to_string();
    }
    if list.iter().any(String::is_empty) {
        return Err(usage(format!(
            "{flag} `{}` has an empty item; give names separated by single commas",
            list.join(",")
        )));
    }
    Ok(())
}

/// Whether the device `want` (as given: `cuda:1`, or `cuda` for every CUDA device) names
/// the device `name` of a backend.
pub fn device_matches(want: &str, name: &str) -> bool {
    name == want || name.split(':').next() == Some(want)
}

/// The device `want` names among `backend`'s (`cuda` is its first CUDA device, the first
/// available one when there is one; as `run --device cuda` selects, see [`device_matches`]),
/// or the first available device when none is given. An unknown name is a usage error that
/// lists the valid ones.
pub fn device(backend: &dyn Backend, want: Option<&str>) -> anyhow::Result<DeviceInfo> {
    let devices = backend.devices();
    let matching: Vec<&DeviceInfo> = match want {
        Some(w) => devices
            .iter()
            .filter(|d| device_matches(w, &d.name))
            .collect(),
        None => devices.iter().collect(),
    };
    match matching
        .iter()
        .find(|d| d.available)
        .or_else(|| matching.first())
    {
        Some(d) => Ok((*d).clone()),
        None => {
            let names: Vec<&str> = devices.iter().map(|x| x.name.as_str()).collect();
            Err(usage(format!(
                "unknown device `{}` for backend {}; valid: {}",
                want.unwrap_or_default(),
                backend.name(),
                names.join(", ")
            )))
        }
    }
}

/// The largest `--tdp-watts` taken: above any one CPU package's TDP (server parts reach
/// ~500 W), so a larger figure is likely in another unit (mW) or a whole machine's.
pub const MAX_TDP_WATTS: f64 = 2000.0;

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
    /// GPUs left out are listed in the output. (NVML metering was verified on one
    /// H200; a selection among several GPUs is UNVERIFIED ON HARDWARE.)
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
            if t > MAX_TDP_WATTS {
                return Err(UsageError(format!(
                    "--tdp-watts {t} is more than {MAX_TDP_WATTS} W, above any CPU package's \
                     TDP: likely another unit (mW?). Give the package's TDP in watts"
                )));
            }
        }
        if let Some(list) = &self.gpus {
            if list.trim() != "" && list.split(',').any(|e| e.trim().is_empty()) {
                return Err(UsageError(format!(
                    "--gpus {list}: an empty item; give NVML indices, GPU- UUIDs or PCI bus ids \
                     separated by commas, `all` or `none`"
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
    /// Refuses these options when what uses them is not asked for (`needs`, in words): they
    /// would be accepted and silently ignored.
    pub fn refuse_without(&self, needs: &str) -> Result<(), UsageError> {
        let given = [
            ("--region", self.region.is_some()),
            ("--intensity", self.intensity.is_some()),
            ("--pue", self.pue.is_some()),
            ("--price-per-kwh", self.price_per_kwh.is_some()),
            ("--carbon-table", self.carbon_table.is_some()),
        ];
        match given.iter().find(|(_, g)| *g) {
            Some((flag, _)) => Err(UsageError(format!(
                "{flag} is used only with {needs}, which turns energy into CO2e and cost; \
                 give it, or leave {flag} out"
            ))),
            None => Ok(()),
        }
    }

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
        // With --intensity the region only labels the figure: an unknown one would label it
        // wrongly (a typo), so it must still name a region of the table.
        if let (Some(r), Some(_)) = (&self.region, self.intensity) {
            if table.lookup(r).is_none() {
                return Err(UsageError(format!(
                    "--region {r:?} is not in the carbon table (with --intensity it labels the \
                     figure, and an unknown code would label it wrongly): give a region \
                     `wattbench list --regions` shows, add it with --carbon-table FILE, or \
                     leave --region out"
                )));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::tensor::HostTensor;
    use wattbench_core::{BackendError, Case, Prepared};

    /// A backend with a CPU and two GPUs, the first of them unavailable.
    struct TwoGpus;
    impl Backend for TwoGpus {
        fn name(&self) -> &'static str {
            "two-gpus"
        }
        fn devices(&self) -> Vec<DeviceInfo> {
            vec![
                DeviceInfo::available("cpu"),
                DeviceInfo::unavailable("cuda:0", "busy"),
                DeviceInfo::available("cuda:1"),
            ]
        }
        fn supports(&self, _: &Case, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn prepare(
            &self,
            _: &Case,
            _: &str,
            _: &[HostTensor],
        ) -> Result<Box<dyn Prepared>, BackendError> {
            Err(BackendError::Unavailable("a test backend".into()))
        }
    }

    #[test]
    fn cuda_is_the_first_available_cuda_device_as_run_selects_it() {
        let name = |w: Option<&str>| device(&TwoGpus, w).map(|d| d.name);
        assert_eq!(name(Some("cuda")).unwrap(), "cuda:1");
        assert_eq!(name(Some("cuda:0")).unwrap(), "cuda:0");
        assert_eq!(name(Some("cpu")).unwrap(), "cpu");
        assert_eq!(name(None).unwrap(), "cpu");
        let e = name(Some("tpu")).unwrap_err().to_string();
        assert!(
            e.contains("unknown device `tpu`") && e.contains("cpu, cuda:0, cuda:1"),
            "{e}"
        );
        // The same rule as `run --device`.
        assert!(device_matches("cuda", "cuda:1") && !device_matches("cud", "cuda:1"));
    }

    fn meter_args(tdp: f64) -> MeterArgs {
        MeterArgs {
            tdp_watts: Some(tdp),
            powercap_root: None,
            no_nvml: true,
            gpus: None,
        }
    }

    /// A TDP above any package's (1e308 W made 9.9e301 Wh) is refused as another unit; a
    /// large server part's is taken.
    #[test]
    fn an_implausible_tdp_is_refused_as_another_unit() {
        for t in [1e308, 2000.5, 65000.0] {
            let e = meter_args(t).config().unwrap_err().to_string();
            assert!(e.contains("likely another unit (mW?)"), "{e}");
        }
        assert_eq!(meter_args(500.0).config().unwrap().tdp_watts, Some(500.0));
        assert_eq!(
            meter_args(MAX_TDP_WATTS).config().unwrap().tdp_watts,
            Some(2000.0)
        );
    }

    /// `--region` with `--intensity` still names a region of the table (it labels the figure).
    #[test]
    fn an_unknown_region_is_refused_with_an_intensity_too() {
        let args = |region: &str| CarbonArgs {
            region: Some(region.into()),
            intensity: Some(100.0),
            pue: None,
            price_per_kwh: None,
            carbon_table: None,
        };
        let e = args("XX-NOWHERE").params().unwrap_err().to_string();
        assert!(
            e.contains("--region \"XX-NOWHERE\" is not in the carbon table"),
            "{e}"
        );
        let p = args("FR").params().unwrap();
        assert_eq!(p.intensity.g_per_kwh, 100.0);
    }

    #[test]
    fn empty_list_items_are_refused_and_spaces_trimmed() {
        let mut l = vec![" gemm".to_string(), "rnn ".to_string()];
        trim_list("--op", &mut l).unwrap();
        assert_eq!(l, ["gemm", "rnn"]);
        let mut l = vec!["reference".to_string(), String::new(), String::new()];
        let e = trim_list("--backend", &mut l).unwrap_err().to_string();
        assert!(
            e.contains("--backend `reference,,` has an empty item"),
            "{e}"
        );
    }
}
