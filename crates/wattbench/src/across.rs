//! `wattbench compare --across-hardware`: the same case ids measured on different machines,
//! side by side: time, throughput and its share of the machine's measured roof, energy per
//! GFLOP with its source and what its total covers, and CO2e and cost per TFLOP with their
//! intervals. It answers "which hardware runs (or trains) this with the least energy", only
//! between totals of the same kind of source that cover the same things; it has no verdict and
//! no gate.
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
use wattbench_core::energy::{CaseEnergy, Interval, Source};
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
    /// What that energy's total covers: the scopes of the domains it adds (`device` for a
    /// GPU, `package`, `dram`, `process` for the CPU estimate, ...), sorted, each once; empty
    /// without a (whole) total. A total over the package alone is not one over the package
    /// and the DRAM.
    pub energy_scopes: Vec<String>,
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
    /// same kind of source (a measured figure and an estimate are not the same quantity),
    /// every cell's total covers the same scopes (the package and the DRAM on one machine, the
    /// package alone on another, are not) and its interval lies wholly below every other
    /// machine's.
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

/// One run's figures for one id.
struct Figures {
    /// Median time per call (per step), s.
    median_s: f64,
    /// GFLOP/s at that median.
    gflops_per_s: Option<f64>,
    /// Energy per call, J, when the total is whole.
    joules: Option<Interval>,
    /// Its sources.
    sources: Vec<Source>,
    /// The scopes of the domains it adds, sorted, each once.
    scopes: Vec<String>,
    /// The case's dtype (kernel cases only).
    dtype: Option<String>,
}

impl Figures {
    fn new(
        median_s: f64,
        gflops_per_s: Option<f64>,
        energy: Option<&CaseEnergy>,
        dtype: Option<String>,
    ) -> Figures {
        // A partial total (a domain of it without a reading) has no figure here.
        let joules = energy.and_then(|e| e.whole_total());
        let mut scopes: Vec<String> = (energy.filter(|_| joules.is_some()).into_iter())
            .flat_map(|e| &e.domains)
            .filter(|d| d.in_total && d.joules_per_iter.is_some())
            .map(|d| d.scope.clone())
            .collect();
        scopes.sort();
        scopes.dedup();
        Figures {
            median_s,
            gflops_per_s,
            joules,
            sources: energy.map(|e| e.total_sources.clone()).unwrap_or_default(),
            scopes,
            dtype,
        }
    }
}

fn figures(run: &RunFile) -> Vec<(String, Figures)> {
    let cases = run
        .cases
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| {
            let t = c.time.as_ref()?;
            Some((
                c.id.clone(),
                Figures::new(
                    t.median_s,
                    c.throughput.as_ref().map(|x| x.gflops_per_s),
                    c.energy.as_ref(),
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
                Figures::new(time.median_s, t.gflops_per_s, Some(&t.energy), None),
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
        let scopes: Vec<&Vec<String>> = cells.iter().map(|c| &c.energy_scopes).collect();
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
        } else if scopes.windows(2).any(|w| w[0] != w[1]) {
            let each: Vec<String> = (cells.iter())
                .map(|c| format!("{}: {}", c.machine, scopes_named(&c.energy_scopes)))
                .collect();
            (
                None,
                Some(format!(
                    "the machines' energy totals cover different things ({}): a total over \
                     fewer parts of a machine reads lower without using less, not comparable",
                    each.join("; ")
                )),
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
    let median_s = median(fs.iter().map(|f| f.median_s).collect());
    // The run whose time is nearest the median gives the throughput and energy.
    let mid = fs
        .iter()
        .min_by(|a, b| {
            (a.median_s - median_s)
                .abs()
                .total_cmp(&(b.median_s - median_s).abs())
        })
        .expect("a cell has a run");
    let gflops_per_s = mid.gflops_per_s.map(|g| g * mid.median_s / median_s);
    let gflop_per_call = mid.gflops_per_s.map(|g| g * mid.median_s);
    let fraction_of_roof = match (gflops_per_s, &mid.dtype, roofs) {
        (Some(g), Some(dtype), Some(c)) => c
            .devices
            .iter()
            .find(|d| d.device == device)
            .and_then(|d| d.peak_gflops.get(dtype))
            .map(|p| g / p.gflops_per_s),
        _ => None,
    };
    let joules_per_gflop = match (mid.joules, gflop_per_call) {
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
        energy_sources: mid.sources.clone(),
        energy_scopes: if joules_per_gflop.is_some() {
            mid.scopes.clone()
        } else {
            Vec::new()
        },
        co2e_kg_per_tflop: figures.as_ref().map(|f| f.co2e_kg),
        cost_per_tflop: figures.and_then(|f| f.cost),
    }
}

/// `dram+package`: the scopes a total covers, for notes and tables (`?` for a file that names
/// none).
fn scopes_named(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "?".into()
    } else {
        scopes.join("+")
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
        "J/GFLOP (source) covers",
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
                    format!(
                        "{} ({}) {}",
                        units::sig(j.value),
                        src.join("+"),
                        scopes_named(&c.energy_scopes)
                    )
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
    // Of several ceilings files of a kind of machine, one from the runs' own hosts first.
    let hosts = |fp: &str| -> Vec<&str> {
        sets.iter()
            .flat_map(|s| &s.runs)
            .filter(|r| r.environment.hardware_fingerprint() == fp)
            .filter_map(|r| r.environment.host.hostname.as_deref())
            .collect()
    };
    let a = across(&sets, carbon_params, &|fp| {
        ceilings::find(fp, &hosts(fp), &dirs)
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::energy::DomainRecord;
    use wattbench_core::result::Throughput;
    use wattbench_core::testing::{case_energy, domain_row, run_file, timed_case};

    /// A run of case `x` on a machine whose CPU is `cpu`: 1 GFLOP per call in 1 ms, and
    /// `joules` per call (±1 %) measured over one domain of each of `scopes`.
    fn on(cpu: &str, joules: f64, scopes: &[&str]) -> ResultSet {
        let mut e = case_energy(joules, 0.01 * joules, Source::Measured);
        e.domains = (scopes.iter().enumerate())
            .map(|(i, scope)| DomainRecord {
                scope: scope.to_string(),
                ..domain_row(
                    &format!("{scope}-{i}"),
                    Source::Measured,
                    true,
                    Some(joules / scopes.len() as f64),
                )
            })
            .collect();
        let mut c = timed_case("x", vec![1e-3; 5]);
        c.throughput = Some(Throughput {
            flops: 1_000_000_000,
            gflops_per_s: 1000.0,
            bytes: 1,
            gbytes_per_s: 1.0,
            intensity: 1.0,
        });
        c.energy = Some(e);
        let mut r = run_file("2025-01-01T00:00:00Z", vec![c]);
        r.environment.host.cpu_model = Some(cpu.into());
        ResultSet::from_runs([(format!("{cpu}.json"), r)])
    }

    fn compared(a: ResultSet, b: ResultSet) -> Row {
        let params = CarbonParams::resolve(None, None, None, None).unwrap();
        let mut out = across(&[a, b], &params, &|_| None);
        assert_eq!(out.machines.len(), 2);
        out.rows.remove(0)
    }

    /// The review's case: M2's total is its package alone, M1's its package and DRAM. M2 reads
    /// half the energy without using less: no machine is named.
    #[test]
    fn least_energy_is_named_only_between_totals_that_cover_the_same_things() {
        let r = compared(
            on("CPU A", 10.0, &["package", "dram"]),
            on("CPU B", 5.0, &["package"]),
        );
        assert_eq!(r.least_energy, None, "{r:?}");
        // Each cell says what its total covers.
        let scopes: Vec<&[String]> = r.cells.iter().map(|c| &c.energy_scopes[..]).collect();
        assert_eq!(scopes, [&["dram", "package"][..], &["package"][..]]);
        let note = r.note.as_deref().unwrap_or_default();
        assert!(
            note.contains("cover different things (M1: dram+package; M2: package)"),
            "{note}"
        );
        // The same scopes on both: the clearly lower one is named.
        let r = compared(
            on("CPU A", 10.0, &["package", "dram"]),
            on("CPU B", 5.0, &["dram", "package"]),
        );
        assert_eq!(r.least_energy.as_deref(), Some("M2"), "{r:?}");
        assert_eq!(r.note, None);
        // The table shows it beside the source.
        let a = Across {
            machines: Vec::new(),
            rows: vec![r],
            single_machine_cases: 0,
            carbon: CarbonParams::resolve(None, None, None, None)
                .unwrap()
                .assumptions(),
        };
        let text = render(&a, Format::Table);
        assert!(text.contains("5.000 (measured) dram+package"), "{text}");
    }
}
