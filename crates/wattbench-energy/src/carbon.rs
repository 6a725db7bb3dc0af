//! Energy → kWh → kg CO2e (and optional cost), with the grid intensity, PUE and source that
//! produced every figure, and the energy interval carried through.
//!
//! CO2e kg = kWh × PUE × intensity (g/kWh) / 1000. PUE defaults to 1.0 (the IT energy alone;
//! data centres typically run 1.1–1.6). The shipped table (`data/carbon-intensity.toml`) holds
//! approximate yearly national averages and maps cloud regions to their host country.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{EnergyError, Interval};
use wattbench_core::result::CarbonAssumptions;

/// Joules per kWh.
pub const J_PER_KWH: f64 = 3.6e6;
/// The PUE assumed when none is given.
pub const DEFAULT_PUE: f64 = 1.0;

const TABLE_TOML: &str = include_str!("../data/carbon-intensity.toml");

#[derive(Debug, Deserialize)]
struct RawTable {
    meta: RawMeta,
    grid: Vec<RawGrid>,
    cloud: Vec<RawCloud>,
}

#[derive(Debug, Deserialize)]
struct RawMeta {
    default: String,
}

#[derive(Debug, Deserialize)]
struct RawGrid {
    code: String,
    name: String,
    g_per_kwh: f64,
    source: String,
    year: u16,
}

#[derive(Debug, Deserialize)]
struct RawCloud {
    code: String,
    name: String,
    grid: String,
}

/// A grid intensity and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridIntensity {
    /// Region code as looked up (`FR`, `aws:eu-west-3`), or `custom`.
    pub region: String,
    /// Human name.
    pub name: String,
    /// gCO2e per kWh.
    pub g_per_kwh: f64,
    /// Where the figure comes from.
    pub source: String,
    /// Data year, when known.
    pub year: Option<u16>,
}

/// The shipped table of grid intensities.
#[derive(Debug, Clone)]
pub struct CarbonTable {
    default: String,
    entries: Vec<GridIntensity>,
}

impl CarbonTable {
    /// Parses a table in the shipped TOML format.
    pub fn parse(text: &str) -> Result<CarbonTable, EnergyError> {
        let raw: RawTable = toml::from_str(text).map_err(|e| EnergyError::Table(e.to_string()))?;
        let mut entries: Vec<GridIntensity> = raw
            .grid
            .iter()
            .map(|g| GridIntensity {
                region: g.code.clone(),
                name: g.name.clone(),
                g_per_kwh: g.g_per_kwh,
                source: g.source.clone(),
                year: Some(g.year),
            })
            .collect();
        for c in &raw.cloud {
            let g = raw.grid.iter().find(|g| g.code == c.grid).ok_or_else(|| {
                EnergyError::Table(format!("{}: unknown grid {}", c.code, c.grid))
            })?;
            entries.push(GridIntensity {
                region: c.code.clone(),
                name: format!("{} (grid: {})", c.name, g.name),
                g_per_kwh: g.g_per_kwh,
                source: format!(
                    "{}; national average of {} for this cloud region",
                    g.source, g.name
                ),
                year: Some(g.year),
            });
        }
        let t = CarbonTable {
            default: raw.meta.default,
            entries,
        };
        if t.lookup(&t.default).is_none() {
            return Err(EnergyError::Table(format!(
                "default {} not in table",
                t.default
            )));
        }
        Ok(t)
    }

    /// The table shipped in this crate.
    pub fn builtin() -> &'static CarbonTable {
        static T: OnceLock<CarbonTable> = OnceLock::new();
        T.get_or_init(|| {
            CarbonTable::parse(TABLE_TOML).expect("the shipped carbon table parses (tested)")
        })
    }

    /// Looks a region up, case-insensitively: a country code (`FR`), a cloud region with its
    /// provider (`aws:eu-west-3`), or a cloud region alone when only one provider has it.
    pub fn lookup(&self, code: &str) -> Option<GridIntensity> {
        let c = code.trim();
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.region.eq_ignore_ascii_case(c))
        {
            return Some(e.clone());
        }
        let bare: Vec<&GridIntensity> = self
            .entries
            .iter()
            .filter(|e| {
                e.region
                    .split_once(':')
                    .is_some_and(|(_, r)| r.eq_ignore_ascii_case(c))
            })
            .collect();
        (bare.len() == 1).then(|| bare[0].clone())
    }

    /// The fallback when no region is given (the world average).
    pub fn default_intensity(&self) -> GridIntensity {
        self.lookup(&self.default).expect("checked at parse")
    }

    /// Every entry.
    pub fn entries(&self) -> &[GridIntensity] {
        &self.entries
    }
}

/// What a carbon figure is computed with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarbonParams {
    /// Grid intensity used.
    pub intensity: GridIntensity,
    /// Power usage effectiveness of the facility.
    pub pue: f64,
    /// Whether the PUE was the default.
    pub pue_is_default: bool,
    /// Price per kWh (any currency), if given.
    pub price_per_kwh: Option<f64>,
}

impl CarbonParams {
    /// Resolves user choices: an explicit intensity wins over a region; no region means the
    /// table's world average. Errors on an unknown region or impossible numbers.
    pub fn resolve(
        region: Option<&str>,
        intensity_g_per_kwh: Option<f64>,
        pue: Option<f64>,
        price_per_kwh: Option<f64>,
    ) -> Result<CarbonParams, EnergyError> {
        let table = CarbonTable::builtin();
        let intensity = match (intensity_g_per_kwh, region) {
            (Some(g), _) if !(g.is_finite() && g >= 0.0) => {
                return Err(EnergyError::Usage(format!(
                    "--intensity must be a non-negative number of gCO2e/kWh, got {g}"
                )))
            }
            (Some(g), r) => GridIntensity {
                region: r.map(str::to_string).unwrap_or_else(|| "custom".into()),
                name: "given on the command line".into(),
                g_per_kwh: g,
                source: "user-supplied intensity".into(),
                year: None,
            },
            (None, Some(r)) => table.lookup(r).ok_or_else(|| {
                EnergyError::Usage(format!(
                    "unknown region {r:?}: use a country code (FR, US, DE...), a cloud region \
                     such as aws:eu-west-3, gcp:europe-west1 or azure:westeurope, or give \
                     --intensity G_PER_KWH"
                ))
            })?,
            (None, None) => {
                let mut d = table.default_intensity();
                d.source = format!("{} (default: no region given)", d.source);
                d
            }
        };
        let (pue, pue_is_default) = match pue {
            Some(p) if p.is_finite() && p >= 1.0 => (p, false),
            Some(p) => {
                return Err(EnergyError::Usage(format!(
                    "--pue must be at least 1.0 (facility energy / IT energy), got {p}"
                )))
            }
            None => (DEFAULT_PUE, true),
        };
        if let Some(p) = price_per_kwh {
            if !(p.is_finite() && p >= 0.0) {
                return Err(EnergyError::Usage(format!(
                    "--price-per-kwh must be a non-negative number, got {p}"
                )));
            }
        }
        Ok(CarbonParams {
            intensity,
            pue,
            pue_is_default,
            price_per_kwh,
        })
    }
}

impl CarbonParams {
    /// The record of these parameters in result files.
    pub fn assumptions(&self) -> CarbonAssumptions {
        CarbonAssumptions {
            intensity_g_per_kwh: self.intensity.g_per_kwh,
            // Placeholder until the table carries ranges: the yearly mean alone.
            intensity_range_g_per_kwh: [self.intensity.g_per_kwh; 2],
            intensity_range_basis: "the yearly mean only (no range)".into(),
            region: self.intensity.region.clone(),
            region_name: self.intensity.name.clone(),
            intensity_source: self.intensity.source.clone(),
            intensity_year: self.intensity.year,
            pue: self.pue,
            pue_is_default: self.pue_is_default,
            price_per_kwh: self.price_per_kwh,
        }
    }
}

/// Carbon figures for one energy interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarbonFigures {
    /// IT energy, kWh.
    pub energy_kwh: Interval,
    /// Facility energy (× PUE), kWh.
    pub facility_kwh: Interval,
    /// kg CO2e.
    pub co2e_kg: Interval,
    /// Cost in the currency of the given price, if any.
    pub cost: Option<Interval>,
}

/// Converts an energy interval (J) into kWh, facility kWh, kg CO2e and cost.
pub fn carbon(energy_j: Interval, p: &CarbonParams) -> CarbonFigures {
    let energy_kwh = energy_j.scale(1.0 / J_PER_KWH);
    let facility_kwh = energy_kwh.scale(p.pue);
    CarbonFigures {
        energy_kwh,
        facility_kwh,
        co2e_kg: facility_kwh.scale(p.intensity.g_per_kwh / 1000.0),
        cost: p.price_per_kwh.map(|c| facility_kwh.scale(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_every_entry_has_source_and_year() {
        let t = CarbonTable::parse(TABLE_TOML).unwrap();
        assert!(t.entries().len() > 60);
        for e in t.entries() {
            assert!(e.g_per_kwh > 0.0 && e.g_per_kwh < 1200.0, "{e:?}");
            assert!(!e.source.is_empty() && e.year.is_some(), "{e:?}");
        }
        assert_eq!(t.default_intensity().region, "WORLD");
    }

    #[test]
    fn lookup_by_country_cloud_and_bare_region() {
        let t = CarbonTable::builtin();
        assert_eq!(t.lookup("fr").unwrap().g_per_kwh, 56.0);
        let paris = t.lookup("AWS:eu-west-3").unwrap();
        assert_eq!(paris.g_per_kwh, 56.0);
        assert!(paris.source.contains("national average of France"));
        assert_eq!(t.lookup("europe-west4").unwrap().region, "gcp:europe-west4");
        assert!(t.lookup("atlantis").is_none());
    }
}
