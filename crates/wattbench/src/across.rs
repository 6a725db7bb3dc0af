//! `wattbench compare --across-hardware`: the same case ids measured on different machines,
//! side by side: time, throughput and its share of the machine's measured roof, energy per
//! GFLOP with its source, and CO2e and cost per TFLOP with their intervals. It answers "which
//! hardware runs (or trains) this with the least energy"; it has no verdict and no gate.
use crate::ceilings::{self, Ceilings};
use crate::compare::Format;
use crate::options::usage;
use anyhow::Result;
use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::Table;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wattbench_compare::ResultSet;
use wattbench_core::energy::{Interval, Source};
use wattbench_core::result::{RunFile, Status};
use wattbench_core::stats::quantile_sorted;
use wattbench_core::units;
use wattbench_energy::carbon::{carbon, CarbonParams};

/// One machine of the comparison.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// `M1`, `M2`, … in order of first appearance.
    pub label: String,
    /// Its hardware fingerprint.
    pub fingerprint: String,
    /// The host names its runs came from.
    pub hosts: Vec<String>,
    /// Its runs among the inputs.
    pub runs: usize,
    /// The ceilings file used for its roofs, when one was found.
    pub ceilings: Option<String>,
    /// Those ceilings are a `--quick` measurement: a lower bound, under which every "of peak"
    /// reads high.
    pub ceilings_quick: bool,
}

/// One case on one machine.
#[derive(Debug, Serialize)]
pub struct Cell {
    /// The machine's label.
    pub machine: String,
    /// Runs that have the case verified (ok).
    pub runs: usize,
    /// Median over those runs of the median time per call (per step for training), s.
    pub median_s: f64,
    /// GFLOP per call (per step).
    pub gflop_per_call: Option<f64>,
    /// GFLOP/s at that median.
    pub gflops_per_s: Option<f64>,
    /// Share of the machine's measured compute roof for the case's dtype (kernel cases
    /// only), when its ceilings are known.
    pub fraction_of_roof: Option<f64>,
    /// Gross energy per GFLOP, J, with the meters' interval (median run).
    pub joules_per_gflop: Option<Interval>,
    /// Where that energy comes from.
    pub energy_sources: Vec<Source>,
    /// kg CO2e per TFLOP, the intensity's band included.
    pub co2e_kg_per_tflop: Option<Interval>,
    /// Cost per TFLOP at the given price.
    pub cost_per_tflop: Option<Interval>,
}

/// One case id found on two machines or more.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The case (or training run) id.
    pub id: String,
    /// One cell per machine that has it verified.
    pub cells: Vec<Cell>,
    /// The machine with the least energy per GFLOP, when every cell's energy comes from the
    /// same kind of source (a measured figure and an estimate are not the same quantity) and
    /// its interval lies wholly below every other machine's.
    pub least_energy: Option<String>,
    /// Why there is no `least_energy` when there is none.
    pub note: Option<String>,
}

/// The whole comparison.
#[derive(Debug, Serialize)]
pub struct Across {
    /// The machines.
    pub machines: Vec<Machine>,
    /// Cases on two machines or more.
    pub rows: Vec<Row>,
    /// Cases verified on one machine only.
    pub single_machine_cases: usize,
    /// Intensity, PUE and price used for CO2e and cost.
    pub carbon: wattbench_core::result::CarbonAssumptions,
}

/// One run's figures for one id: (median s, GFLOP/s, energy per call J, sources, dtype).
type Figures = (
    f64,
    Option<f64>,
    Option<Interval>,
    Vec<Source>,
    Option<String>,
);

fn figures(run: &RunFile) -> Vec<(String, Figures)> {
    let cases = run
        .cases
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| {
            let t = c.time.as_ref()?;
            let e = c.energy.as_ref();
            Some((
                c.id.clone(),
                (
                    t.median_s,
                    c.throughput.as_ref().map(|x| x.gflops_per_s),
                    e.and_then(|e| e.whole_total()),
                    e.map(|e| e.total_sources.clone()).unwrap_or_default(),
                    Some(c.dtype.as_str().to_string()),
                ),
            ))
        });
    let trainings = run
        .trainings
        .iter()
        .filter(|t| t.status == Status::Ok)
        .filter_map(|t| {
            let time = t.time.as_ref()?;
            Some((
                t.id.clone(),
                (
                    time.median_s,
                    t.gflops_per_s,
                    t.energy.whole_total(),
                    t.energy.total_sources.clone(),
                    None,
                ),
            ))
        });
    cases.chain(trainings).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, 0.5)
}

/// The ceilings of the machine with a fingerprint, and where they were read.
pub type FindCeilings<'a> = &'a dyn Fn(&str) -> Option<(PathBuf, Ceilings)>;

/// The comparison of every run in `sets`; `find` gives each machine's ceilings.
pub fn across(sets: &[ResultSet], params: &CarbonParams, find: FindCeilings<'_>) -> Across {
    let runs: Vec<&RunFile> = sets.iter().flat_map(|s| s.runs.iter()).collect();
    let mut machines: Vec<Machine> = Vec::new();
    let mut roofs: Vec<Option<Ceilings>> = Vec::new();
    // (id) → machine index → figures of each run.
    let mut by_id: BTreeMap<String, BTreeMap<usize, Vec<Figures>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for run in &runs {
        let fp = run.environment.hardware_fingerprint();
        let m = match machines.iter().position(|m| m.fingerprint == fp) {
            Some(m) => m,
            None => {
                let found = find(&fp);
                machines.push(Machine {
                    label: format!("M{}", machines.len() + 1),
                    fingerprint: fp,
                    hosts: Vec::new(),
                    runs: 0,
                    ceilings: found.as_ref().map(|(p, _)| p.display().to_string()),
                    ceilings_quick: found.as_ref().is_some_and(|(_, c)| c.is_quick()),
                });
                roofs.push(found.map(|(_, c)| c));
                machines.len() - 1
            }
        };
        machines[m].runs += 1;
        if let Some(h) = &run.environment.host.hostname {
            if !machines[m].hosts.contains(h) {
                machines[m].hosts.push(h.clone());
            }
        }
        for (id, f) in figures(run) {
            if !by_id.contains_key(&id) {
                order.push(id.clone());
            }
            by_id.entry(id).or_default().entry(m).or_default().push(f);
        }
    }
    let mut rows = Vec::new();
    let mut single = 0;
    for id in order {
        let per = &by_id[&id];
        if per.len() < 2 {
            single += 1;
            continue;
        }
        let device = id.rsplit('/').next().unwrap_or("cpu").to_string();
        let cells: Vec<Cell> = per
            .iter()
            .map(|(&m, fs)| cell(&machines[m].label, fs, roofs[m].as_ref(), &device, params))
            .collect();
        let kinds: Vec<&Vec<Source>> = cells.iter().map(|c| &c.energy_sources).collect();
        let (least_energy, note) = if cells.iter().any(|c| c.joules_per_gflop.is_none()) {
            (
                None,
                Some(
                    "a machine has no energy figure for it, or only a partial one (a meter of \
                     its total had no reading)"
                        .to_string(),
                ),
            )
        } else if kinds.windows(2).any(|w| w[0] != w[1]) {
            (
                None,
                Some(
                    "the machines' energy comes from different sources (measured, integrated, \
                     estimated): not comparable"
                        .to_string(),
                ),
            )
        } else {
            // The least energy only when its whole interval lies below every other machine's:
            // a tie or overlapping intervals name no machine.
            let iv: Vec<(Interval, &String)> = cells
                .iter()
                .filter_map(|c| Some((c.joules_per_gflop?, &c.machine)))
                .collect();
            let best = iv.iter().min_by(|a, b| a.0.value.total_cmp(&b.0.value));
            match best {
                Some((b, m))
                    if iv
                        .iter()
                        .filter(|(_, o)| o != m)
                        .all(|(o, _)| b.high < o.low) =>
                {
                    (Some((*m).clone()), None)
                }
                _ => (
                    None,
                    Some(
                        "the machines' energy intervals overlap: no machine uses clearly less"
                            .to_string(),
                    ),
                ),
            }
        };
        rows.push(Row {
            id,
            cells,
            least_energy,
            note,
        });
    }
    Across {
        machines,
        rows,
        single_machine_cases: single,
        carbon: params.assumptions(),
    }
}

fn cell(
    machine: &str,
    fs: &[Figures],
    roofs: Option<&Ceilings>,
    device: &str,
    params: &CarbonParams,
) -> Cell {
    let median_s = median(fs.iter().map(|f| f.0).collect());
    // The run whose time is nearest the median gives the throughput and energy.
    let mid = fs
        .iter()
        .min_by(|a, b| (a.0 - median_s).abs().total_cmp(&(b.0 - median_s).abs()))
        .expect("a cell has a run");
    let gflops_per_s = mid.1.map(|g| g * mid.0 / median_s);
    let gflop_per_call = mid.1.map(|g| g * mid.0);
    let fraction_of_roof = match (gflops_per_s, &mid.4, roofs) {
        (Some(g), Some(dtype), Some(c)) => c
            .devices
            .iter()
            .find(|d| d.device == device)
            .and_then(|d| d.peak_gflops.get(dtype))
            .map(|p| g / p.gflops_per_s),
        _ => None,
    };
    let joules_per_gflop = match (mid.2, gflop_per_call) {
        (Some(j), Some(g)) if g > 0.0 => Some(j.scale(1.0 / g)),
        _ => None,
    };
    let figures = joules_per_gflop.map(|j| carbon(j.scale(1000.0), params));
    Cell {
        machine: machine.to_string(),
        runs: fs.len(),
        median_s,
        gflop_per_call,
        gflops_per_s,
        fraction_of_roof,
        joules_per_gflop,
        energy_sources: mid.3.clone(),
        co2e_kg_per_tflop: figures.as_ref().map(|f| f.co2e_kg),
        cost_per_tflop: figures.and_then(|f| f.cost),
    }
}

/// ` (quick)` after an "of peak" figure of `machine` when its ceilings are a quick measurement
/// (a lower bound: the figure reads high).
pub fn quick_mark(a: &Across, machine: &str) -> &'static str {
    if a.machines
        .iter()
        .any(|m| m.label == machine && m.ceilings_quick)
    {
        " (quick ceilings)"
    } else {
        ""
    }
}

/// The comparison as text.
pub fn render(a: &Across, format: Format) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(a).expect("serialises") + "\n";
    }
    let mut out = String::new();
    out.push_str("Machines:\n");
    for m in &a.machines {
        out.push_str(&format!(
            "  {}: {} ({} run(s); hosts {}; roofs: {})\n",
            m.label,
            m.fingerprint,
            m.runs,
            if m.hosts.is_empty() {
                "unknown".to_string()
            } else {
                m.hosts.join(", ")
            },
            match (&m.ceilings, m.ceilings_quick) {
                (Some(p), true) => format!(
                    "{p}, quick: a lower bound, its \"of peak\" reads high: run `wattbench \
                     ceilings` on it"
                ),
                (Some(p), false) => p.clone(),
                (None, _) => "no ceilings file found".into(),
            }
        ));
    }
    let mut t = Table::new();
    t.load_preset(if format == Format::Markdown {
        ASCII_MARKDOWN
    } else {
        UTF8_FULL_CONDENSED
    });
    t.set_header([
        "case",
        "machine",
        "runs",
        "median",
        "GFLOP/s",
        "of peak",
        "J/GFLOP (source)",
        "g CO2e/TFLOP",
        "cost/TFLOP",
    ]);
    for r in &a.rows {
        for (i, c) in r.cells.iter().enumerate() {
            let best = r.least_energy.as_deref() == Some(c.machine.as_str());
            t.add_row([
                if i == 0 { r.id.clone() } else { String::new() },
                format!("{}{}", c.machine, if best { " (least energy)" } else { "" }),
                c.runs.to_string(),
                units::seconds(c.median_s),
                c.gflops_per_s.map_or("—".into(), units::sig),
                c.fraction_of_roof.map_or("—".into(), |f| {
                    format!("{:.0} %{}", 100.0 * f, quick_mark(a, &c.machine))
                }),
                c.joules_per_gflop.map_or("no energy".into(), |j| {
                    let src: Vec<&str> = c.energy_sources.iter().map(|s| s.as_str()).collect();
                    format!("{} ({})", units::sig(j.value), src.join("+"))
                }),
                c.co2e_kg_per_tflop
                    .map_or("—".into(), |i| units::interval(&i, "", 1000.0)),
                c.cost_per_tflop
                    .map_or("—".into(), |i| units::interval(&i, "", 1.0)),
            ]);
        }
    }
    out.push_str(&t.to_string());
    out.push('\n');
    for r in a.rows.iter().filter(|r| r.note.is_some()) {
        out.push_str(&format!(
            "{}: no least-energy machine: {}\n",
            r.id,
            r.note.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "{} case(s) on two machines or more; {} on one machine only (not shown). CO2e at {} \
         gCO2e/kWh ({}), PUE {}; intervals combine the meters' uncertainty and the grid's \
         daily band. Energy per GFLOP of the median call is gross ({}).\n",
        a.rows.len(),
        a.single_machine_cases,
        units::sig(a.carbon.intensity_g_per_kwh),
        a.carbon.region_name,
        a.carbon.pue,
        wattbench_core::energy::GROSS_MEANS
    ));
    out
}

/// Where ceilings files are looked for: results/ceilings and a `ceilings/` folder beside
/// each input.
pub fn ceiling_dirs(inputs: &[&Path]) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(ceilings::DEFAULT_DIR)];
    for p in inputs {
        let parent = if p.is_dir() { Some(*p) } else { p.parent() };
        if let Some(d) = parent {
            dirs.push(d.join("ceilings"));
            dirs.push(d.to_path_buf());
        }
    }
    dirs
}

/// `compare --across-hardware`: read, compare, print or write; exit 0, or 2 when the inputs
/// come from a single machine.
pub fn run(
    inputs: &[&Path],
    carbon_params: &CarbonParams,
    format: Format,
    output: Option<&Path>,
) -> Result<u8> {
    if let Some(out) = output {
        crate::output::not_an_input(out, inputs)?;
    }
    let sets: Vec<ResultSet> = inputs
        .iter()
        .map(|p| ResultSet::load(p).map_err(|e| usage(e.to_string())))
        .collect::<Result<_>>()?;
    // A ceilings file kept beside the runs is read as ceilings below, not as a run.
    for f in sets.iter().flat_map(|s| &s.left_out) {
        eprintln!("left out of the runs: {f}");
    }
    crate::output::distinct_runs(
        sets.iter()
            .flat_map(|s| s.files.iter().zip(&s.runs))
            .map(|(l, r)| (l.as_str(), r)),
    )?;
    let out = output.map(crate::output::prepare).transpose()?;
    let dirs = ceiling_dirs(inputs);
    let a = across(&sets, carbon_params, &|fp| ceilings::find(fp, &dirs));
    if a.machines.len() < 2 {
        return Err(usage(format!(
            "every run comes from one machine ({}): nothing to compare across hardware (give \
             result files, folders or a merged file from several machines)",
            a.machines
                .first()
                .map_or("no run", |m| m.fingerprint.as_str())
        )));
    }
    let text = render(&a, format);
    match out {
        None => print!("{text}"),
        Some(file) => {
            let shown = file.path().display().to_string();
            crate::output::commit(file, text.as_bytes())?;
            println!(
                "{} case(s) across {} machines: {shown}",
                a.rows.len(),
                a.machines.len()
            );
        }
    }
    Ok(0)
}
