//! Energy → kWh → kg CO2e (and optional cost), with the grid intensity, its range over the
//! day, the PUE and the source behind every figure, and the energy interval carried through.
//!
//! CO2e kg = kWh × PUE × intensity (g/kWh) / 1000. PUE defaults to 1.0 (the IT energy alone;
//! data centres typically run 1.1–1.6). The point value uses the intensity's yearly mean; the
//! interval multiplies the low energy by the low end of the intensity's range and the high
//! energy by the high end, because a grid swings about 3× within a day around that mean. Cost
//! depends on the energy alone.
//!
//! The shipped table (`data/carbon-intensity.toml`) holds yearly national averages (Ember, via
//! Our World in Data) and cloud regions: the provider's own per-region figure where one is
//! published (Google Cloud), otherwise the host country's average with a source that says so.
//! A user table in the same format ([`CarbonTable::with_user_file`]) adds or replaces entries.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::{EnergyError, Interval};
use wattbench_core::energy::bound_times;
use wattbench_core::result::CarbonAssumptions;

/// The largest PUE accepted: data centres report about 1.1–2.5 (Uptime Institute surveys
/// average about 1.6); above 5 a value is a typo, not a facility.
pub const MAX_PUE: f64 = 5.0;

/// Joules per kWh.
pub const J_PER_KWH: f64 = 3.6e6;
/// The PUE assumed when none is given.
pub const DEFAULT_PUE: f64 = 1.0;
/// Environment variable naming a user carbon table when `--carbon-table` is not given.
pub const CARBON_TABLE_ENV: &str = "WATTBENCH_CARBON_TABLE";
/// Intensities at or above this many gCO2e/kWh are refused as a likely unit mistake (a figure
/// in lb/MWh is 2.2 times the same in g/kWh): grid averages sit well below it.
const MAX_G_PER_KWH: f64 = 2000.0;
/// The data years a table entry may give. Published national series of grid intensity start
/// in 1990 (the Kyoto base year of IEA's and UNFCCC's), and scenario figures reach 2100; a
/// year outside is a typo (`0`, `24` for 2024, `20245`) that would be printed as the figure's.
const YEARS: std::ops::RangeInclusive<u16> = 1990..=2100;

const TABLE_TOML: &str = include_str!("../data/carbon-intensity.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    meta: Option<RawMeta>,
    #[serde(default)]
    grid: Vec<RawGrid>,
    #[serde(default)]
    cloud: Vec<RawCloud>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    default: Option<Spanned<String>>,
    range_low_factor: Option<f64>,
    range_high_factor: Option<f64>,
    range_basis: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    code: Spanned<String>,
    name: String,
    g_per_kwh: f64,
    g_per_kwh_range: Option<[f64; 2]>,
    range_basis: Option<String>,
    source: String,
    year: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloud {
    code: Spanned<String>,
    name: String,
    grid: Option<String>,
    g_per_kwh: Option<f64>,
    g_per_kwh_range: Option<[f64; 2]>,
    range_basis: Option<String>,
    source: String,
    year: Option<u16>,
}

/// A grid intensity, the range it spans over a day, and where both come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridIntensity {
    /// Region code as looked up (`FR`, `aws:eu-west-3`), or `custom`.
    pub region: String,
    /// Human name.
    pub name: String,
    /// gCO2e per kWh: the yearly mean, used for the point value.
    pub g_per_kwh: f64,
    /// gCO2e per kWh `[low, high]` the intensity may take over the hours of a run; contains
    /// `g_per_kwh`.
    pub range_g_per_kwh: [f64; 2],
    /// What that range is and where it comes from.
    pub range_basis: String,
    /// Where the figure comes from.
    pub source: String,
    /// Data year, when known.
    pub year: Option<u16>,
}

/// The band put around a yearly mean that comes without a range of its own.
#[derive(Debug, Clone, PartialEq)]
struct Band {
    low_factor: f64,
    high_factor: f64,
    basis: String,
}

impl Band {
    fn around(&self, g: f64) -> [f64; 2] {
        [g * self.low_factor, g * self.high_factor]
    }
}

/// A cloud region: the provider's own figure, or a mapping to a grid entry.
#[derive(Debug, Clone)]
enum CloudEntry {
    Own(GridIntensity),
    Mapped {
        code: String,
        name: String,
        grid: String,
        source: String,
    },
}

impl CloudEntry {
    fn code(&self) -> &str {
        match self {
            CloudEntry::Own(g) => &g.region,
            CloudEntry::Mapped { code, .. } => code,
        }
    }
}

/// A table of grid intensities: the shipped one, possibly with a user table merged over it.
#[derive(Debug, Clone)]
pub struct CarbonTable {
    default: String,
    band: Band,
    grids: Vec<GridIntensity>,
    clouds: Vec<CloudEntry>,
    /// Grids, then clouds resolved against the grids.
    entries: Vec<GridIntensity>,
}

/// Where a table's text comes from: the shipped file, or a user file (named in errors and
/// in the sources of its entries).
struct Origin<'a> {
    text: &'a str,
    user_file: Option<&'a str>,
}

impl Origin<'_> {
    fn error(&self, at: Option<Range<usize>>, msg: impl std::fmt::Display) -> EnergyError {
        let line = at
            .map(|r| {
                let end = r.start.min(self.text.len());
                format!("line {}: ", self.text[..end].matches('\n').count() + 1)
            })
            .unwrap_or_default();
        match self.user_file {
            Some(path) => EnergyError::Usage(format!("carbon table {path}: {line}{msg}")),
            None => EnergyError::Table(format!("{line}{msg}")),
        }
    }

    fn source(&self, source: &str) -> String {
        match self.user_file {
            Some(path) => format!("user-supplied in {path}: {source}"),
            None => source.to_string(),
        }
    }

    fn parse(&self) -> Result<RawTable, EnergyError> {
        toml::from_str(self.text).map_err(|e| self.error(None, e.to_string().trim_end()))
    }

    /// Checks a figure and gives its range: the entry's own, or the band around it.
    fn figure(
        &self,
        at: &Range<usize>,
        g: f64,
        range: Option<[f64; 2]>,
        basis: Option<String>,
        band: &Band,
    ) -> Result<([f64; 2], String), EnergyError> {
        let err = |msg: String| self.error(Some(at.clone()), msg);
        if !(g.is_finite() && (0.0..MAX_G_PER_KWH).contains(&g)) {
            return Err(err(format!(
                "g_per_kwh must be a number of gCO2e per kWh in [0, {MAX_G_PER_KWH}), got {g}"
            )));
        }
        match (range, basis) {
            (Some([lo, hi]), Some(basis)) => {
                if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= g && g <= hi) {
                    return Err(err(format!(
                        "g_per_kwh_range [{lo}, {hi}] must be non-negative and contain \
                         g_per_kwh = {g}"
                    )));
                }
                // The guard of the mean: a top as high is as likely another unit.
                if hi >= MAX_G_PER_KWH {
                    return Err(err(format!(
                        "g_per_kwh_range [{lo}, {hi}] reaches {MAX_G_PER_KWH} gCO2e/kWh or \
                         more, above any grid's hourly intensity: likely another unit (a figure \
                         in lb/MWh is 2.2 times the same in g/kWh). Give gCO2e per kWh"
                    )));
                }
                if basis.trim().is_empty() {
                    return Err(err(
                        "range_basis is empty: say where the range comes from".into()
                    ));
                }
                Ok(([lo, hi], basis))
            }
            (Some(_), None) => Err(err(
                "g_per_kwh_range needs a range_basis saying where the range comes from".into(),
            )),
            (None, Some(_)) => Err(err("range_basis is given without g_per_kwh_range".into())),
            (None, None) => Ok((band.around(g), band.basis.clone())),
        }
    }

    /// Checks a data year ([`YEARS`]).
    fn year(&self, at: &Range<usize>, year: u16) -> Result<u16, EnergyError> {
        if YEARS.contains(&year) {
            Ok(year)
        } else {
            Err(self.error(
                Some(at.clone()),
                format!(
                    "year {year} is not a data year in {}..={}: give the year of the figure \
                     as four digits",
                    YEARS.start(),
                    YEARS.end()
                ),
            ))
        }
    }

    fn grid(&self, raw: RawGrid, band: &Band) -> Result<GridIntensity, EnergyError> {
        let at = raw.code.span();
        let year = self.year(&at, raw.year)?;
        let (range, basis) = self.figure(
            &at,
            raw.g_per_kwh,
            raw.g_per_kwh_range,
            raw.range_basis,
            band,
        )?;
        Ok(GridIntensity {
            region: raw.code.into_inner(),
            name: raw.name,
            g_per_kwh: raw.g_per_kwh,
            range_g_per_kwh: range,
            range_basis: basis,
            source: self.source(&raw.source),
            year: Some(year),
        })
    }

    fn cloud(&self, raw: RawCloud, band: &Band) -> Result<CloudEntry, EnergyError> {
        let at = raw.code.span();
        let code = raw.code.into_inner();
        match (raw.grid, raw.g_per_kwh) {
            (Some(grid), None) => {
                if raw.year.is_some() || raw.g_per_kwh_range.is_some() || raw.range_basis.is_some()
                {
                    return Err(self.error(
                        Some(at),
                        format!(
                            "{code} maps to grid {grid}: its year and range come from that \
                             entry, so give no year, g_per_kwh_range or range_basis here"
                        ),
                    ));
                }
                Ok(CloudEntry::Mapped {
                    code,
                    name: raw.name,
                    grid,
                    source: self.source(&raw.source),
                })
            }
            (None, Some(g)) => {
                let Some(year) = raw.year else {
                    return Err(self.error(
                        Some(at),
                        format!("{code} gives g_per_kwh but no year for the figure"),
                    ));
                };
                let year = self.year(&at, year)?;
                let (range, basis) =
                    self.figure(&at, g, raw.g_per_kwh_range, raw.range_basis, band)?;
                Ok(CloudEntry::Own(GridIntensity {
                    region: code,
                    name: raw.name,
                    g_per_kwh: g,
                    range_g_per_kwh: range,
                    range_basis: basis,
                    source: self.source(&raw.source),
                    year: Some(year),
                }))
            }
            _ => Err(self.error(
                Some(at),
                format!("{code} needs exactly one of grid = \"CODE\" or g_per_kwh"),
            )),
        }
    }
}

fn find<'a>(list: &'a [GridIntensity], code: &str) -> Option<&'a GridIntensity> {
    list.iter().find(|g| g.region.eq_ignore_ascii_case(code))
}

/// Case-insensitive duplicate check within one file.
fn check_unique<'a>(
    origin: &Origin<'_>,
    codes: impl Iterator<Item = (&'a str, Range<usize>)>,
) -> Result<(), EnergyError> {
    let mut seen = HashSet::new();
    for (code, at) in codes {
        if !seen.insert(code.to_ascii_lowercase()) {
            return Err(origin.error(Some(at), format!("{code} is given twice")));
        }
    }
    Ok(())
}

impl CarbonTable {
    /// Parses a table in the shipped TOML format: `[meta]` with `default`, `range_low_factor`,
    /// `range_high_factor` and `range_basis`, `[[grid]]` and `[[cloud]]` entries.
    pub fn parse(text: &str) -> Result<CarbonTable, EnergyError> {
        let origin = Origin {
            text,
            user_file: None,
        };
        let raw = origin.parse()?;
        let missing = |what: &str| origin.error(None, format!("[meta] needs {what}"));
        let meta = raw
            .meta
            .ok_or_else(|| missing("default and the range band"))?;
        let default = meta.default.ok_or_else(|| missing("default"))?.into_inner();
        let band = Band {
            low_factor: meta
                .range_low_factor
                .ok_or_else(|| missing("range_low_factor"))?,
            high_factor: meta
                .range_high_factor
                .ok_or_else(|| missing("range_high_factor"))?,
            basis: meta.range_basis.ok_or_else(|| missing("range_basis"))?,
        };
        if !((0.0..=1.0).contains(&band.low_factor) && band.high_factor >= 1.0) {
            return Err(origin.error(
                None,
                "range_low_factor must lie in [0, 1] and range_high_factor be at least 1",
            ));
        }
        let empty = CarbonTable {
            default,
            band,
            grids: Vec::new(),
            clouds: Vec::new(),
            entries: Vec::new(),
        };
        empty.merge(&origin, raw.grid, raw.cloud, None)
    }

    /// The table shipped in this crate.
    pub fn builtin() -> &'static CarbonTable {
        static T: OnceLock<CarbonTable> = OnceLock::new();
        T.get_or_init(|| {
            CarbonTable::parse(TABLE_TOML).expect("the shipped carbon table parses (tested)")
        })
    }

    /// This table with the entries of a user table file merged over it: an entry with the code
    /// of an existing one of the same kind replaces it, others are added, and every user entry's
    /// source names the file. Unreadable or malformed files are usage errors that name the file
    /// and, where known, the line.
    pub fn with_user_file(&self, path: &Path) -> Result<CarbonTable, EnergyError> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            EnergyError::Usage(format!("carbon table {label}: cannot read it: {e}"))
        })?;
        self.with_user_table(&text, &label)
    }

    /// [`with_user_file`](Self::with_user_file) on text already read; `label` names the file.
    /// A user table has the shipped format; its `[meta]` is optional and may only set
    /// `default`. Entries without `g_per_kwh_range` get this table's default band.
    pub fn with_user_table(&self, text: &str, label: &str) -> Result<CarbonTable, EnergyError> {
        let origin = Origin {
            text,
            user_file: Some(label),
        };
        let raw = origin.parse()?;
        let mut default = None;
        if let Some(meta) = raw.meta {
            if meta.range_low_factor.is_some()
                || meta.range_high_factor.is_some()
                || meta.range_basis.is_some()
            {
                return Err(origin.error(
                    None,
                    "[meta] may only set default here: the default band is the shipped table's \
                     (give an entry its own g_per_kwh_range instead)",
                ));
            }
            default = meta.default;
        }
        self.merge(&origin, raw.grid, raw.cloud, default)
    }

    fn merge(
        &self,
        origin: &Origin<'_>,
        grids: Vec<RawGrid>,
        clouds: Vec<RawCloud>,
        default: Option<Spanned<String>>,
    ) -> Result<CarbonTable, EnergyError> {
        check_unique(
            origin,
            grids
                .iter()
                .map(|g| (g.code.get_ref().as_str(), g.code.span()))
                .chain(
                    clouds
                        .iter()
                        .map(|c| (c.code.get_ref().as_str(), c.code.span())),
                ),
        )?;
        let mut t = self.clone();
        for raw in grids {
            let at = raw.code.span();
            let g = origin.grid(raw, &t.band)?;
            if t.clouds
                .iter()
                .any(|c| c.code().eq_ignore_ascii_case(&g.region))
            {
                return Err(origin.error(
                    Some(at),
                    format!(
                        "{} is a [[cloud]] entry: replace it with a [[cloud]] entry",
                        g.region
                    ),
                ));
            }
            match t
                .grids
                .iter_mut()
                .find(|e| e.region.eq_ignore_ascii_case(&g.region))
            {
                Some(slot) => *slot = g,
                None => t.grids.push(g),
            }
        }
        for raw in clouds {
            let at = raw.code.span();
            let c = origin.cloud(raw, &t.band)?;
            if find(&t.grids, c.code()).is_some() {
                return Err(origin.error(
                    Some(at),
                    format!(
                        "{} is a [[grid]] entry: replace it with a [[grid]] entry",
                        c.code()
                    ),
                ));
            }
            if let CloudEntry::Mapped { code, grid, .. } = &c {
                if find(&t.grids, grid).is_none() {
                    return Err(origin.error(
                        Some(at),
                        format!("{code} maps to grid {grid}, which no [[grid]] entry has"),
                    ));
                }
            }
            match t
                .clouds
                .iter_mut()
                .find(|e| e.code().eq_ignore_ascii_case(c.code()))
            {
                Some(slot) => *slot = c,
                None => t.clouds.push(c),
            }
        }
        let default_at = default.as_ref().map(Spanned::span);
        if let Some(d) = default {
            t.default = d.into_inner();
        }
        t.resolve();
        if t.lookup(&t.default).is_none() {
            return Err(origin.error(
                default_at,
                format!("default {} is not in the table", t.default),
            ));
        }
        Ok(t)
    }

    /// Rebuilds `entries`: the grids, then every cloud with its figure.
    fn resolve(&mut self) {
        let mut entries = self.grids.clone();
        for c in &self.clouds {
            entries.push(match c {
                CloudEntry::Own(g) => g.clone(),
                CloudEntry::Mapped {
                    code,
                    name,
                    grid,
                    source,
                } => {
                    let g = find(&self.grids, grid).expect("mappings are checked when added");
                    GridIntensity {
                        region: code.clone(),
                        name: format!("{name} (grid: {})", g.name),
                        g_per_kwh: g.g_per_kwh,
                        range_g_per_kwh: g.range_g_per_kwh,
                        range_basis: g.range_basis.clone(),
                        source: format!("{source} ({}: {})", g.name, g.source),
                        year: g.year,
                    }
                }
            });
        }
        self.entries = entries;
    }

    /// Looks a region up, case-insensitively: a country code (`FR`), a cloud region with its
    /// provider (`aws:eu-west-3`), or a cloud region alone when only one provider has it.
    pub fn lookup(&self, code: &str) -> Option<GridIntensity> {
        let c = code.trim();
        if let Some(e) = find(&self.entries, c) {
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

    /// The fallback when no region is given (the world average in the shipped table).
    pub fn default_intensity(&self) -> GridIntensity {
        self.lookup(&self.default).expect("checked at parse")
    }

    /// An intensity given directly (`--intensity`): the default band around it, since a
    /// figure from elsewhere is taken as a yearly mean.
    pub fn given_intensity(&self, region: Option<&str>, g_per_kwh: f64) -> GridIntensity {
        GridIntensity {
            region: region
                .map(str::to_string)
                .unwrap_or_else(|| "custom".into()),
            name: "given on the command line".into(),
            g_per_kwh,
            range_g_per_kwh: self.band.around(g_per_kwh),
            range_basis: format!(
                "{}; applied to the --intensity figure, taken as a yearly mean (for a figure \
                 that already fits the hours of the run, give it in a --carbon-table entry with \
                 g_per_kwh_range = [g, g])",
                self.band.basis
            ),
            source: "user-supplied intensity".into(),
            year: None,
        }
    }

    /// Every entry: grids, then cloud regions.
    pub fn entries(&self) -> &[GridIntensity] {
        &self.entries
    }
}

/// What a carbon figure is computed with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarbonParams {
    /// Grid intensity used, with its range.
    pub intensity: GridIntensity,
    /// Power usage effectiveness of the facility.
    pub pue: f64,
    /// Whether the PUE was the default.
    pub pue_is_default: bool,
    /// Price per kWh (any currency), if given.
    pub price_per_kwh: Option<f64>,
}

impl CarbonParams {
    /// [`resolve_in`](Self::resolve_in) the shipped table.
    pub fn resolve(
        region: Option<&str>,
        intensity_g_per_kwh: Option<f64>,
        pue: Option<f64>,
        price_per_kwh: Option<f64>,
    ) -> Result<CarbonParams, EnergyError> {
        Self::resolve_in(
            CarbonTable::builtin(),
            region,
            intensity_g_per_kwh,
            pue,
            price_per_kwh,
        )
    }

    /// Resolves user choices against `table`: an explicit intensity wins over a region; no
    /// region means the table's default (the world average). Errors on an unknown region or
    /// impossible numbers.
    pub fn resolve_in(
        table: &CarbonTable,
        region: Option<&str>,
        intensity_g_per_kwh: Option<f64>,
        pue: Option<f64>,
        price_per_kwh: Option<f64>,
    ) -> Result<CarbonParams, EnergyError> {
        let intensity = match (intensity_g_per_kwh, region) {
            (Some(g), _) if !(g.is_finite() && g >= 0.0) => {
                return Err(EnergyError::Usage(format!(
                    "--intensity must be a non-negative number of gCO2e/kWh, got {g}"
                )))
            }
            // The guard a table entry meets.
            (Some(g), _) if g >= MAX_G_PER_KWH => {
                return Err(EnergyError::Usage(format!(
                    "--intensity {g} gCO2e/kWh is {MAX_G_PER_KWH} or more, above any grid's \
                     average: likely another unit (a figure in lb/MWh is 2.2 times the same \
                     in g/kWh; kg/MWh equals g/kWh). Give gCO2e per kWh"
                )))
            }
            (Some(g), r) => table.given_intensity(r, g),
            (None, Some(r)) => table.lookup(r).ok_or_else(|| {
                let codes: Vec<&str> = table.entries().iter().map(|e| e.region.as_str()).collect();
                EnergyError::Usage(format!(
                    "unknown region {r:?}; valid regions: {} (`wattbench list --regions` \
                     shows each with its intensity and source). Or give --intensity \
                     G_PER_KWH, or add the region with --carbon-table FILE",
                    codes.join(", ")
                ))
            })?,
            (None, None) => {
                let mut d = table.default_intensity();
                d.source = format!("{} (default: no region given)", d.source);
                d
            }
        };
        let (pue, pue_is_default) = match pue {
            Some(p) if p.is_finite() && (1.0..=MAX_PUE).contains(&p) => (p, false),
            Some(p) => {
                return Err(EnergyError::Usage(format!(
                    "--pue must be between 1.0 and {MAX_PUE} (facility energy / IT energy; \
                     data centres report about 1.1 to 2.5), got {p}"
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

    /// The record of these parameters in result files.
    pub fn assumptions(&self) -> CarbonAssumptions {
        CarbonAssumptions {
            intensity_g_per_kwh: self.intensity.g_per_kwh,
            intensity_range_g_per_kwh: self.intensity.range_g_per_kwh,
            intensity_range_basis: self.intensity.range_basis.clone(),
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
    /// kg CO2e: value at the yearly-mean intensity; bounds combine the energy bounds with the
    /// intensity range (low × low, high × high).
    pub co2e_kg: Interval,
    /// Cost in the currency of the given price, if any (energy only: no intensity in it).
    pub cost: Option<Interval>,
}

/// Converts an energy interval (J) into kWh, facility kWh, kg CO2e and cost. A zero intensity
/// or price makes an unknown (infinite) energy bound 0, not NaN ([`bound_times`]).
pub fn carbon(energy_j: Interval, p: &CarbonParams) -> CarbonFigures {
    let energy_kwh = energy_j.scale(1.0 / J_PER_KWH);
    let facility_kwh = energy_kwh.scale(p.pue);
    let [low, high] = p.intensity.range_g_per_kwh;
    CarbonFigures {
        energy_kwh,
        facility_kwh,
        co2e_kg: Interval {
            value: bound_times(facility_kwh.value, p.intensity.g_per_kwh) / 1000.0,
            low: bound_times(facility_kwh.low, low) / 1000.0,
            high: bound_times(facility_kwh.high, high) / 1000.0,
        },
        cost: p.price_per_kwh.map(|c| facility_kwh.scale(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_every_entry_has_source_year_and_range() {
        let t = CarbonTable::parse(TABLE_TOML).unwrap();
        assert!(t.entries().len() > 90);
        for e in t.entries() {
            assert!(e.g_per_kwh > 0.0 && e.g_per_kwh < 1200.0, "{e:?}");
            assert!(!e.source.is_empty() && e.year.is_some(), "{e:?}");
            let [lo, hi] = e.range_g_per_kwh;
            assert!(lo < e.g_per_kwh && e.g_per_kwh < hi, "{e:?}");
            assert!(e.range_basis.contains("3x"), "{e:?}");
        }
        assert_eq!(t.default_intensity().region, "WORLD");
    }

    #[test]
    fn every_national_figure_is_owid_ember_and_every_mapped_cloud_says_why() {
        let t = CarbonTable::builtin();
        for e in t.entries() {
            match e.region.split_once(':') {
                None => assert!(
                    e.source.contains("owid-energy-data.csv @ e7897aed"),
                    "{e:?}"
                ),
                Some(("gcp", _)) => {
                    assert!(e.source.contains("region-carbon-info"), "{e:?}");
                    assert_eq!(e.year, Some(2025), "{e:?}");
                }
                Some(_) => {
                    assert!(e.source.contains("publishes no per-region"), "{e:?}");
                    assert!(e.name.contains("(grid: "), "{e:?}");
                }
            }
        }
    }

    #[test]
    fn lookup_by_country_cloud_and_bare_region() {
        let t = CarbonTable::builtin();
        let fr = t.lookup("fr").unwrap();
        assert_eq!((fr.g_per_kwh, fr.year), (41.44, Some(2025)));
        let paris = t.lookup("AWS:eu-west-3").unwrap();
        assert_eq!(paris.g_per_kwh, 41.44);
        assert_eq!(paris.range_g_per_kwh, fr.range_g_per_kwh);
        assert!(paris.source.contains("AWS publishes no per-region"));
        assert!(paris.source.contains("national average (France: Ember"));
        assert_eq!(t.lookup("europe-west4").unwrap().region, "gcp:europe-west4");
        assert!(t.lookup("atlantis").is_none());
    }

    #[test]
    fn default_band_is_half_to_one_and_a_half_times_the_mean() {
        let de = CarbonTable::builtin().lookup("DE").unwrap();
        assert_eq!(de.g_per_kwh, 329.65);
        assert_eq!(de.range_g_per_kwh, [329.65 * 0.5, 329.65 * 1.5]);
        assert!(de.range_basis.starts_with("default band"));
    }

    fn user_error(text: &str) -> String {
        match CarbonTable::builtin().with_user_table(text, "ut.toml") {
            Err(EnergyError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    /// The unit-mistake guard of the mean holds for the top of a user's range too (a range
    /// up to 1e9 g/kWh gave a CO2e interval up to 1e7 times the figure).
    #[test]
    fn a_user_range_reaching_the_plausible_bound_is_refused() {
        let entry = |range: &str| {
            format!(
                "[[grid]]\ncode = \"X1\"\nname = \"X\"\ng_per_kwh = 100\n\
                 g_per_kwh_range = {range}\nrange_basis = \"hourly\"\nsource = \"s\"\n\
                 year = 2024\n"
            )
        };
        let m = user_error(&entry("[50, 1e9]"));
        assert!(
            m.contains("line 2") && m.contains("reaches 2000") && m.contains("another unit"),
            "{m}"
        );
        user_error(&entry("[50, 2000]"));
        let t = CarbonTable::builtin()
            .with_user_table(&entry("[50, 1999]"), "ut.toml")
            .unwrap();
        assert_eq!(t.lookup("X1").unwrap().range_g_per_kwh, [50.0, 1999.0]);
        // A cloud entry with its own figure meets the same guard.
        let m = user_error(
            "[[cloud]]\ncode = \"lab:x\"\nname = \"x\"\ng_per_kwh = 100\n\
             g_per_kwh_range = [50, 5000]\nrange_basis = \"r\"\nsource = \"s\"\nyear = 2024\n",
        );
        assert!(m.contains("reaches 2000"), "{m}");
    }

    /// A data year outside 1990..=2100 is a typo, refused rather than printed as the
    /// figure's year ("(X1, 0)").
    #[test]
    fn an_implausible_year_is_refused() {
        let grid = |year: &str| {
            format!(
                "[[grid]]\ncode = \"X1\"\nname = \"X\"\ng_per_kwh = 100\nsource = \"s\"\n\
                 year = {year}\n"
            )
        };
        for bad in ["0", "24", "1989", "2101", "20245"] {
            let m = user_error(&grid(bad));
            assert!(
                m.contains("line 2") && m.contains(&format!("year {bad} is not a data year")),
                "{bad}: {m}"
            );
        }
        for good in ["1990", "2024", "2100"] {
            let t = CarbonTable::builtin()
                .with_user_table(&grid(good), "ut.toml")
                .unwrap();
            assert_eq!(t.lookup("X1").unwrap().year, good.parse().ok());
        }
        let m = user_error(
            "[[cloud]]\ncode = \"lab:x\"\nname = \"x\"\ng_per_kwh = 100\nsource = \"s\"\n\
             year = 0\n",
        );
        assert!(m.contains("year 0 is not a data year"), "{m}");
    }

    /// A zero intensity or price times an energy whose upper bound is unknown (infinite)
    /// gives 0, not NaN (printed `NaN`, written `null` and read back as unknown).
    #[test]
    fn zero_intensity_or_price_times_an_unknown_bound_is_zero() {
        let table = CarbonTable::builtin();
        let p = CarbonParams::resolve_in(table, None, Some(0.0), None, Some(0.0)).unwrap();
        assert_eq!(p.intensity.range_g_per_kwh, [0.0, 0.0]);
        let energy = Interval {
            value: 3.6e6,
            low: 3.0e6,
            high: f64::INFINITY,
        };
        let f = carbon(energy, &p);
        assert_eq!(f.energy_kwh.high, f64::INFINITY);
        let co2e = f.co2e_kg;
        assert_eq!((co2e.value, co2e.low, co2e.high), (0.0, 0.0, 0.0));
        let cost = f.cost.unwrap();
        assert_eq!((cost.value, cost.low, cost.high), (0.0, 0.0, 0.0));
        // A positive intensity keeps the unknown bound unknown.
        let p = CarbonParams::resolve_in(table, None, Some(100.0), None, None).unwrap();
        assert_eq!(carbon(energy, &p).co2e_kg.high, f64::INFINITY);
    }
}
