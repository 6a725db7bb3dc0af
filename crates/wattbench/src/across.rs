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
    /// The conditions its runs were made under (usable cores, GPU power limits:
    /// `Environment::conditions_fingerprint`), each once; runs that did not record them are
    /// not listed.
    pub conditions: Vec<String>,
    /// How many GPU workers of `run --devices` ran at once in its runs (1: alone), each once.
    pub gpu_workers_at_once: Vec<usize>,
}

/// What the interval of a machine's energy figure covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergySpread {
    /// One run with an energy figure: the interval is its meters' uncertainty alone, and
    /// says nothing of how far another run would land.
    MetersOnly,
    /// Several runs: the interval runs from the lowest run's low bound to the highest run's
    /// high bound, so it holds the run-to-run spread and each run's meters.
    RunsAndMeters,
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
    /// Gross energy per GFLOP, J: the median over the runs with a (whole) energy total of
    /// each run's figure, within the hull of the runs' intervals ([`EnergySpread`]).
    pub joules_per_gflop: Option<Interval>,
    /// Runs whose energy figure is in `joules_per_gflop`.
    pub energy_runs: usize,
    /// What that interval covers: one run's meters, or the spread of several runs as well.
    pub energy_spread: Option<EnergySpread>,
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
    /// How many GPU workers ran at once in its runs (1: alone), each once.
    pub gpu_workers_at_once: Vec<usize>,
    /// The conditions of its runs ([`Machine::conditions`]), each once.
    pub conditions: Vec<String>,
    /// Caveats of its figures: the runs' own notes on host counters shared with other
    /// workers, and why its runs' energy could not be pooled; each once.
    pub notes: Vec<String>,
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
    /// package alone on another, are not), every run was made with as many GPU workers at
    /// once and each machine's runs under one set of conditions, and its interval (its runs'
    /// spread included) lies wholly below every other machine's.
    pub least_energy: Option<String>,
    /// Why there is no `least_energy` when there is none.
    pub note: Option<String>,
}

/// A case that failed or was skipped on a machine: never dropped from the comparison
/// silently.
#[derive(Debug, Serialize)]
pub struct NotVerified {
    /// The machine's label.
    pub machine: String,
    /// The case (or training run) id.
    pub id: String,
    /// Failed or skipped.
    pub status: Status,
    /// In how many of the machine's runs.
    pub runs: usize,
    /// Why, as the first such run says.
    pub reason: Option<String>,
}

/// The whole comparison.
#[derive(Debug, Serialize)]
pub struct Across {
    /// The machines.
    pub machines: Vec<Machine>,
    /// Cases on two machines or more.
    pub rows: Vec<Row>,
    /// Cases verified on one machine only, and neither failed nor skipped on another.
    pub single_machine_cases: usize,
    /// Cases that failed or were skipped, per machine (a case verified on one machine and
    /// failed on another is here, not among the single-machine cases).
    pub not_verified: Vec<NotVerified>,
    /// Intensity, PUE and price used for CO2e and cost.
    pub carbon: wattbench_core::result::CarbonAssumptions,
}

/// One run's figures for one id.
struct Figures {
    /// Median time per call (per step), s.
    median_s: f64,
    /// GFLOP/s at that median.
    gflops_per_s: Option<f64>,
    /// Energy per GFLOP, J, when the total is whole and the work known.
    joules_per_gflop: Option<Interval>,
    /// Its sources.
    sources: Vec<Source>,
    /// The scopes of the domains it adds, sorted, each once.
    scopes: Vec<String>,
    /// The case's dtype (kernel cases only).
    dtype: Option<String>,
    /// The run's GPU workers at once, conditions, and the case's notes on shared counters.
    context: RunContext,
}

/// What a run says about how it was measured, beyond its hardware.
#[derive(Clone, Default)]
struct RunContext {
    /// GPU workers of `run --devices` that ran at once (1: alone).
    at_once: usize,
    /// Its conditions (usable cores, GPU power limits), when recorded.
    conditions: Option<String>,
    /// The case's energy notes on host counters shared with other workers.
    notes: Vec<String>,
}

impl Figures {
    /// `flops`: the work of one call (one training step), from the file's FLOP count, not
    /// rebuilt from a rate (a training run's GFLOP/s is at its mean step, not its median).
    fn new(
        median_s: f64,
        flops: Option<u64>,
        energy: Option<&CaseEnergy>,
        dtype: Option<String>,
        mut context: RunContext,
    ) -> Figures {
        // A partial total (a domain of it without a reading) has no figure here.
        let joules = energy.and_then(|e| e.whole_total());
        let gflop = flops.map(|f| f as f64 / 1e9).filter(|g| *g > 0.0);
        let gflops_per_s = gflop.map(|g| g / median_s).filter(|g| g.is_finite());
        let joules_per_gflop = joules.zip(gflop).map(|(j, g)| j.scale(1.0 / g));
        let mut scopes: Vec<String> = (energy.filter(|_| joules.is_some()).into_iter())
            .flat_map(|e| &e.domains)
            .filter(|d| d.in_total && d.joules_per_iter.is_some())
            .map(|d| d.scope.clone())
            .collect();
        scopes.sort();
        scopes.dedup();
        context.notes = (energy.into_iter())
            .flat_map(|e| &e.notes)
            .filter(|n| n.contains(crate::devices::AT_ONCE_NOTE_MARK))
            .cloned()
            .collect();
        Figures {
            median_s,
            gflops_per_s,
            joules_per_gflop,
            sources: energy.map(|e| e.total_sources.clone()).unwrap_or_default(),
            scopes,
            dtype,
            context,
        }
    }
}

/// A case (or training run) of a run that was not verified: its id, status and reason.
type NotOk = (String, Status, Option<String>);

/// The verified cases of `run` with their figures, and the others with their status and
/// reason.
fn figures(run: &RunFile) -> (Vec<(String, Figures)>, Vec<NotOk>) {
    let context = RunContext {
        at_once: crate::devices::workers_at_once(&run.environment),
        conditions: run.environment.conditions_fingerprint(),
        notes: Vec::new(),
    };
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
                    c.throughput.as_ref().map(|x| x.flops),
                    c.energy.as_ref(),
                    Some(c.dtype.as_str().to_string()),
                    context.clone(),
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
                Figures::new(
                    time.median_s,
                    Some(t.flops.step),
                    Some(&t.energy),
                    None,
                    context.clone(),
                ),
            ))
        });
    let not_ok = (run.cases.iter())
        .map(|c| (&c.id, c.status, &c.reason))
        .chain(run.trainings.iter().map(|t| (&t.id, t.status, &t.reason)))
        .filter(|(_, s, _)| *s != Status::Ok)
        .map(|(id, s, r)| (id.clone(), s, r.clone()))
        .collect();
    (cases.chain(trainings).collect(), not_ok)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, 0.5)
}

/// `v` sorted, each once.
fn distinct<T: Ord>(v: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = v.into_iter().collect();
    v.sort();
    v.dedup();
    v
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
    let mut not_verified: Vec<(usize, NotVerified)> = Vec::new();
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
                    conditions: Vec::new(),
                    gpu_workers_at_once: Vec::new(),
                });
                roofs.push(found.map(|(_, c)| c));
                machines.len() - 1
            }
        };
        let machine = &mut machines[m];
        machine.runs += 1;
        if let Some(h) = &run.environment.host.hostname {
            if !machine.hosts.contains(h) {
                machine.hosts.push(h.clone());
            }
        }
        machine
            .conditions
            .extend(run.environment.conditions_fingerprint());
        machine.conditions = distinct(std::mem::take(&mut machine.conditions));
        machine
            .gpu_workers_at_once
            .push(crate::devices::workers_at_once(&run.environment));
        machine.gpu_workers_at_once = distinct(std::mem::take(&mut machine.gpu_workers_at_once));
        let (ok, not_ok) = figures(run);
        for (id, f) in ok {
            if !by_id.contains_key(&id) {
                order.push(id.clone());
            }
            by_id.entry(id).or_default().entry(m).or_default().push(f);
        }
        for (id, status, reason) in not_ok {
            let label = &machines[m].label;
            match (not_verified.iter_mut())
                .find(|(k, n)| *k == m && n.id == id && n.status == status)
            {
                Some((_, n)) => n.runs += 1,
                None => not_verified.push((
                    m,
                    NotVerified {
                        machine: label.clone(),
                        id,
                        status,
                        runs: 1,
                        reason,
                    },
                )),
            }
        }
    }
    let mut rows = Vec::new();
    let mut single = 0;
    for id in order {
        let per = &by_id[&id];
        if per.len() < 2 {
            let failed_elsewhere =
                (not_verified.iter()).any(|(m, n)| n.id == id && !per.contains_key(m));
            if !failed_elsewhere {
                single += 1;
            }
            continue;
        }
        let device = id.rsplit('/').next().unwrap_or("cpu").to_string();
        let cells: Vec<Cell> = per
            .iter()
            .map(|(&m, fs)| cell(&machines[m].label, fs, roofs[m].as_ref(), &device, params))
            .collect();
        let (least_energy, note) = match unnamed(&cells) {
            Some(why) => (None, Some(why)),
            None => least(&cells),
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
        not_verified: not_verified.into_iter().map(|(_, n)| n).collect(),
        carbon: params.assumptions(),
    }
}

/// Why the cells' energy figures cannot be ranked at all, if they cannot: a figure missing,
/// different sources or coverage, different numbers of GPU workers at once, or a machine's
/// runs made under different conditions.
fn unnamed(cells: &[Cell]) -> Option<String> {
    let each = |f: &dyn Fn(&Cell) -> String| -> String {
        (cells.iter())
            .map(|c| format!("{}: {}", c.machine, f(c)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if cells.iter().any(|c| c.joules_per_gflop.is_none()) {
        let why: Vec<String> = (cells.iter())
            .flat_map(|c| c.notes.iter().map(move |n| format!("{}: {n}", c.machine)))
            .filter(|n| n.contains(RUNS_DIFFER))
            .collect();
        return Some(format!(
            "a machine has no energy figure for it, or only a partial one (a meter of its \
             total had no reading){}",
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        ));
    }
    let kinds: Vec<&Vec<Source>> = cells.iter().map(|c| &c.energy_sources).collect();
    if kinds.windows(2).any(|w| w[0] != w[1]) {
        return Some(
            "the machines' energy comes from different sources (measured, integrated, \
             estimated): not comparable"
                .into(),
        );
    }
    let scopes: Vec<&Vec<String>> = cells.iter().map(|c| &c.energy_scopes).collect();
    if scopes.windows(2).any(|w| w[0] != w[1]) {
        return Some(format!(
            "the machines' energy totals cover different things ({}): a total over fewer parts \
             of a machine reads lower without using less, not comparable",
            each(&|c| scopes_named(&c.energy_scopes))
        ));
    }
    let at_once = distinct(cells.iter().flat_map(|c| c.gpu_workers_at_once.clone()));
    if at_once.len() > 1 {
        return Some(format!(
            "the runs were measured with different numbers of GPU workers at once ({}): workers \
             at once share the host's counters, power and cooling, not comparable",
            each(&|c| joined(&c.gpu_workers_at_once))
        ));
    }
    if let Some(c) = cells.iter().find(|c| c.conditions.len() > 1) {
        return Some(format!(
            "{}'s runs were made under different conditions ({}), pooled here: not comparable",
            c.machine,
            c.conditions.join(" / ")
        ));
    }
    None
}

/// `1, 4`.
fn joined(v: &[usize]) -> String {
    v.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The machine with the least energy, when its whole interval (its runs' spread included)
/// lies below every other machine's; a tie or overlapping intervals name none.
fn least(cells: &[Cell]) -> (Option<String>, Option<String>) {
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
                "the machines' energy intervals overlap (each spans its runs' spread and \
                 meters): no machine uses clearly less"
                    .to_string(),
            ),
        ),
    }
}

/// How a cell's note begins when its runs' energy totals cannot be pooled.
const RUNS_DIFFER: &str = "its runs' energy totals differ";

/// A machine's energy per GFLOP, pooled over its runs.
#[derive(Clone, Copy)]
struct Pooled<'a> {
    /// The median of the runs' figures, within the hull of their intervals.
    joules_per_gflop: Interval,
    /// The runs it rests on (those with a whole total).
    runs: usize,
    /// The sources they share.
    sources: &'a [Source],
    /// The scopes they share.
    scopes: &'a [String],
}

/// A machine's energy per GFLOP over `fs` (`None` when no run has a whole total), or why
/// the runs cannot be pooled (their totals differ in source or in what they cover).
fn pooled_energy(fs: &[Figures]) -> Result<Option<Pooled<'_>>, String> {
    let with: Vec<(&Figures, Interval)> = (fs.iter())
        .filter_map(|f| Some((f, f.joules_per_gflop?)))
        .collect();
    let Some((first, _)) = with.first() else {
        return Ok(None);
    };
    if let Some((other, _)) =
        (with.iter()).find(|(f, _)| f.sources != first.sources || f.scopes != first.scopes)
    {
        return Err(format!(
            "{RUNS_DIFFER} in source or in what they cover ({} {}; {} {}): not pooled",
            sources_named(&first.sources),
            scopes_named(&first.scopes),
            sources_named(&other.sources),
            scopes_named(&other.scopes)
        ));
    }
    let value = median(with.iter().map(|(_, j)| j.value).collect());
    let low = (with.iter())
        .map(|(_, j)| j.low)
        .fold(f64::INFINITY, f64::min);
    let high = (with.iter())
        .map(|(_, j)| j.high)
        .fold(f64::NEG_INFINITY, f64::max);
    Ok(Some(Pooled {
        joules_per_gflop: Interval { value, low, high },
        runs: with.len(),
        sources: &first.sources,
        scopes: &first.scopes,
    }))
}

fn cell(
    machine: &str,
    fs: &[Figures],
    roofs: Option<&Ceilings>,
    device: &str,
    params: &CarbonParams,
) -> Cell {
    let median_s = median(fs.iter().map(|f| f.median_s).collect());
    // The run whose time is nearest the median gives the throughput.
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
    let mut notes = distinct(fs.iter().flat_map(|f| f.context.notes.clone()));
    let energy = pooled_energy(fs).unwrap_or_else(|why| {
        notes.push(why);
        None
    });
    let joules_per_gflop = energy.map(|e| e.joules_per_gflop);
    let figures = joules_per_gflop.map(|j| carbon(j.scale(1000.0), params));
    Cell {
        machine: machine.to_string(),
        runs: fs.len(),
        median_s,
        gflop_per_call,
        gflops_per_s,
        fraction_of_roof,
        joules_per_gflop,
        energy_runs: energy.map_or(0, |e| e.runs),
        energy_spread: energy.map(|e| {
            if e.runs > 1 {
                EnergySpread::RunsAndMeters
            } else {
                EnergySpread::MetersOnly
            }
        }),
        energy_sources: energy.map_or_else(Vec::new, |e| e.sources.to_vec()),
        energy_scopes: energy.map_or_else(Vec::new, |e| e.scopes.to_vec()),
        co2e_kg_per_tflop: figures.as_ref().map(|f| f.co2e_kg),
        cost_per_tflop: figures.and_then(|f| f.cost),
        gpu_workers_at_once: distinct(fs.iter().map(|f| f.context.at_once)),
        conditions: distinct(fs.iter().filter_map(|f| f.context.conditions.clone())),
        notes,
    }
}

/// What a cell's energy interval covers, after its figure in tables: ` (1 run: meters
/// only)`, or ` (k of n runs)` when some runs had no (whole) energy total.
pub fn spread_mark(c: &Cell) -> String {
    match c.energy_spread {
        None => String::new(),
        Some(EnergySpread::MetersOnly) if c.runs > 1 => {
            format!(" (1 of {} runs: meters only)", c.runs)
        }
        Some(EnergySpread::MetersOnly) => " (1 run: meters only)".into(),
        Some(EnergySpread::RunsAndMeters) if c.energy_runs < c.runs => {
            format!(" ({} of {} runs)", c.energy_runs, c.runs)
        }
        Some(EnergySpread::RunsAndMeters) => String::new(),
    }
}

/// `measured+estimated`.
fn sources_named(sources: &[Source]) -> String {
    sources
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("+")
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

/// The cells' caveats, each once per machine: (machine, note, cases it concerns).
pub fn cell_notes(a: &Across) -> Vec<(String, String, usize)> {
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for c in a.rows.iter().flat_map(|r| &r.cells) {
        for n in &c.notes {
            match out.iter_mut().find(|(m, o, _)| *m == c.machine && o == n) {
                Some((.., k)) => *k += 1,
                None => out.push((c.machine.clone(), n.clone(), 1)),
            }
        }
    }
    out
}

/// One line per case that failed or was skipped on a machine: `M2: <id>: failed in 1 of 3
/// runs: <reason>`.
pub fn not_verified_lines(a: &Across) -> Vec<String> {
    (a.not_verified.iter())
        .map(|n| {
            let of = (a.machines.iter())
                .find(|m| m.label == n.machine)
                .map_or(n.runs, |m| m.runs);
            format!(
                "{}: {}: {} in {} of {of} run(s): {}",
                n.machine,
                n.id,
                match n.status {
                    Status::Failed => "failed",
                    Status::Skipped => "skipped",
                    Status::Ok => "ok",
                },
                n.runs,
                n.reason.as_deref().unwrap_or("no reason recorded")
            )
        })
        .collect()
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
        if !m.conditions.is_empty() {
            out.push_str(&format!("      conditions: {}\n", m.conditions.join(" / ")));
        }
        if m.gpu_workers_at_once.iter().any(|&n| n > 1) {
            out.push_str(&format!(
                "      GPU workers at once: {} (they shared the host's counters, power and \
                 cooling)\n",
                joined(&m.gpu_workers_at_once)
            ));
        }
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
                    // The interval "least energy" is decided on.
                    let rel = units::relative(&j);
                    format!(
                        "{}{} ({}) {}{}",
                        units::sig(j.value),
                        if rel.is_empty() {
                            String::new()
                        } else {
                            format!(" {rel}")
                        },
                        src.join("+"),
                        scopes_named(&c.energy_scopes),
                        spread_mark(c)
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
    for (machine, note, cases) in cell_notes(a) {
        out.push_str(&format!("{machine} ({cases} case(s)): {note}\n"));
    }
    if !a.not_verified.is_empty() {
        out.push_str("Failed or skipped (not compared):\n");
        for line in not_verified_lines(a) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str(&format!(
        "{} case(s) on two machines or more; {} verified on one machine only and not failed or \
         skipped on another (not shown); {} failed or skipped on a machine (listed). A \
         machine's energy per GFLOP is the median of its runs', each run's that of its mean \
         call (the energy window's joules / its calls) per GFLOP of a call; its interval spans \
         its runs' intervals (one run's: its meters' alone). The energy is gross ({}).\n",
        a.rows.len(),
        a.single_machine_cases,
        a.not_verified.len(),
        wattbench_core::energy::GROSS_MEANS
    ));
    out.push_str(&carbon_line(&a.carbon));
    out
}

/// Where the CO2e and cost columns come from: the intensity with its region, year, source and
/// band, and the PUE, said to be the default where it is (as `measure` says them).
fn carbon_line(c: &wattbench_core::result::CarbonAssumptions) -> String {
    format!(
        "CO2e at {} gCO2e/kWh ({}, {}), its interval with the grid's range of {}-{} g/kWh \
         ({}); intensity source: {}; PUE {}{}{}.\n",
        units::sig(c.intensity_g_per_kwh),
        c.region_name,
        c.intensity_year
            .map_or("year unknown".into(), |y| y.to_string()),
        units::sig(c.intensity_range_g_per_kwh[0]),
        units::sig(c.intensity_range_g_per_kwh[1]),
        c.intensity_range_basis,
        c.intensity_source,
        c.pue,
        if c.pue_is_default {
            " (default: IT energy only, no cooling or facility overhead)"
        } else {
            " (facility energy: cooling and facility overhead included)"
        },
        c.price_per_kwh.map_or(String::new(), |p| format!(
            "; cost at {p} per kWh of {} energy",
            if c.pue_is_default { "IT" } else { "facility" }
        )),
    )
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

    /// A training run's work per step is its FLOP count, not its GFLOP/s times its median step:
    /// its GFLOP/s is at the mean step, and the rebuilt figure was off by mean/median.
    #[test]
    fn a_training_steps_work_is_its_flop_count() {
        let mut run = RunFile::from_json(include_str!(
            "../../../results/cpu/20261130-cpu-amd-epyc-authenticamd-family-25-model-1-x2/train-mlp-tch.json"
        ))
        .unwrap();
        let t = &mut run.trainings[0];
        // A skewed run: the mean step three times the median.
        t.gflops_per_s = t.gflops_per_s.map(|g| g / 3.0);
        let (gflop, median_s) = (t.flops.step as f64 / 1e9, t.time.as_ref().unwrap().median_s);
        let joules = t.energy.whole_total().unwrap().value;
        let (figures, _) = figures(&run);
        let (_, f) = &figures[0];
        let close = |a: f64, b: f64| (a / b - 1.0).abs() < 1e-12;
        assert!(close(f.gflops_per_s.unwrap(), gflop / median_s));
        assert!(close(f.joules_per_gflop.unwrap().value, joules / gflop));
    }

    /// A run of case `x` on a machine whose CPU is `cpu`: 1 GFLOP per call in 1 ms, and
    /// `joules` per call (±1 %) measured over one domain of each of `scopes`.
    fn on(cpu: &str, joules: f64, scopes: &[&str]) -> ResultSet {
        ResultSet::from_runs([(format!("{cpu}.json"), run_on(cpu, joules, 0.01, scopes))])
    }

    /// [`on`]'s run, its meters' relative uncertainty `rel`.
    fn run_on(cpu: &str, joules: f64, rel: f64, scopes: &[&str]) -> RunFile {
        let mut e = case_energy(joules, rel * joules, Source::Measured);
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
        r
    }

    fn params() -> CarbonParams {
        CarbonParams::resolve(None, None, None, None).unwrap()
    }

    fn compared(a: ResultSet, b: ResultSet) -> Row {
        let mut out = across(&[a, b], &params(), &|_| None);
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
            not_verified: Vec::new(),
            carbon: params().assumptions(),
        };
        let text = render(&a, Format::Table);
        // With the interval "least energy" is decided on.
        assert!(
            text.contains("5.000 ±1.0% (measured) dram+package"),
            "{text}"
        );
    }

    /// The text says where the CO2e comes from (region, year, source, band, PUE and whether
    /// it is the default), as `measure` does, and that the energy is the mean call's.
    #[test]
    fn the_text_names_the_intensity_its_year_and_source_and_the_mean_call() {
        let text = |params: &CarbonParams| {
            let a = Across {
                machines: Vec::new(),
                rows: Vec::new(),
                single_machine_cases: 0,
                not_verified: Vec::new(),
                carbon: params.assumptions(),
            };
            render(&a, Format::Table)
        };
        let fr = CarbonParams::resolve(Some("FR"), None, None, None).unwrap();
        let t = text(&fr);
        let year = fr.intensity.year.unwrap();
        assert!(
            t.contains(&format!("CO2e at 41.44 gCO2e/kWh (France, {year})")),
            "{t}"
        );
        assert!(
            t.contains("range of 20.72-62.16 g/kWh (default band"),
            "{t}"
        );
        assert!(
            t.contains(&format!("intensity source: {}", fr.intensity.source)),
            "{t}"
        );
        assert!(t.contains("PUE 1 (default: IT energy only"), "{t}");
        assert!(
            t.contains("its mean call (the energy window's joules / its calls)"),
            "{t}"
        );
        assert!(!t.contains("median call"), "{t}");
        assert!(!t.contains("cost at"), "{t}");
        let given = CarbonParams::resolve(Some("FR"), None, Some(1.2), Some(0.2)).unwrap();
        let t = text(&given);
        assert!(t.contains("PUE 1.2 (facility energy"), "{t}");
        assert!(t.contains("cost at 0.2 per kWh of facility energy"), "{t}");
    }

    /// The review's case (/tmp/rv/ah): M1's three runs at 1.0, 1.3 and 0.8 mJ per call, each
    /// metered to ±0.1 %; M2's one run at 0.98. The old code took M1's figure and interval
    /// from the run nearest its median time alone (1.0 ± 0.1 %) and named M2 from meter
    /// error while M1's own runs spread by ±30 %.
    #[test]
    fn a_machines_energy_interval_holds_its_runs_spread() {
        let m1 = ResultSet::from_runs([1e-3, 1.3e-3, 0.8e-3].iter().enumerate().map(|(i, &j)| {
            (
                format!("m1-{i}.json"),
                run_on("CPU A", j, 0.001, &["package"]),
            )
        }));
        let m2 = ResultSet::from_runs([(
            "m2.json".to_string(),
            run_on("CPU B", 0.98e-3, 0.001, &["package"]),
        )]);
        let r = compared(m1, m2);
        assert_eq!(r.least_energy, None, "{r:?}");
        assert!(r.note.as_deref().unwrap().contains("overlap"), "{r:?}");
        let j = r.cells[0].joules_per_gflop.unwrap();
        // The median of the runs' figures, within the hull of their intervals.
        assert!((j.value - 1e-3).abs() < 1e-12, "{j:?}");
        assert!((j.low - 0.8e-3 * 0.999).abs() < 1e-12, "{j:?}");
        assert!((j.high - 1.3e-3 * 1.001).abs() < 1e-12, "{j:?}");
        assert_eq!(r.cells[0].energy_runs, 3);
        assert_eq!(r.cells[0].energy_spread, Some(EnergySpread::RunsAndMeters));
        // One run: its interval is its meters' alone, and the table says so.
        assert_eq!(r.cells[1].energy_spread, Some(EnergySpread::MetersOnly));
        assert_eq!(spread_mark(&r.cells[1]), " (1 run: meters only)");
        assert_eq!(spread_mark(&r.cells[0]), "");
        // Disjoint intervals still name the lower machine.
        let m1 = ResultSet::from_runs([1e-3, 1.1e-3].iter().enumerate().map(|(i, &j)| {
            (
                format!("m1-{i}.json"),
                run_on("CPU A", j, 0.001, &["package"]),
            )
        }));
        let m2 = ResultSet::from_runs([(
            "m2.json".to_string(),
            run_on("CPU B", 0.5e-3, 0.001, &["package"]),
        )]);
        assert_eq!(compared(m1, m2).least_energy.as_deref(), Some("M2"));
    }

    /// Runs made while several GPU workers ran at once (their host counters counted the
    /// neighbours' work) are not ranked against runs made alone, and their notes are shown.
    #[test]
    fn runs_with_different_workers_at_once_name_no_machine() {
        let mut shared = run_on("CPU B", 0.5e-3, 0.001, &["package"]);
        shared.environment.variables = Some(
            [(crate::devices::AT_ONCE_ENV.to_string(), "4".to_string())]
                .into_iter()
                .collect(),
        );
        let note = format!(
            "measured while 4 {}: ...",
            crate::devices::AT_ONCE_NOTE_MARK
        );
        (shared.cases[0].energy.as_mut().unwrap().notes).push(note.clone());
        let r = compared(
            on("CPU A", 1e-3, &["package"]),
            ResultSet::from_runs([("b.json".to_string(), shared)]),
        );
        assert_eq!(r.least_energy, None, "{r:?}");
        let why = r.note.as_deref().unwrap();
        assert!(
            why.contains("different numbers of GPU workers at once (M1: 1; M2: 4)"),
            "{why}"
        );
        assert_eq!(r.cells[1].notes, [note]);
        // One machine's runs under different conditions (usable cores) are not ranked either.
        let mut a = run_on("CPU A", 1e-3, 0.001, &["package"]);
        let mut b = a.clone();
        a.environment.host.usable_cores = Some(2);
        b.environment.host.usable_cores = Some(1);
        let r = compared(
            ResultSet::from_runs([("a1.json".to_string(), a), ("a2.json".to_string(), b)]),
            on("CPU B", 0.1e-3, &["package"]),
        );
        assert_eq!(r.least_energy, None, "{r:?}");
        assert!(
            r.note
                .as_deref()
                .unwrap()
                .contains("M1's runs were made under different conditions"),
            "{r:?}"
        );
    }

    /// A case that failed on one machine is listed with its reason, not counted among the
    /// cases "on one machine only".
    #[test]
    fn failed_and_skipped_cases_are_listed_per_machine() {
        let mut b = run_on("CPU B", 1e-3, 0.01, &["package"]);
        b.cases[0].status = Status::Failed;
        b.cases[0].reason = Some("relative L2 error 0.3".into());
        let mut extra = timed_case("y", vec![1e-3]);
        extra.status = Status::Ok;
        b.cases.push(extra);
        let a = across(
            &[
                on("CPU A", 1e-3, &["package"]),
                ResultSet::from_runs([("b.json".to_string(), b)]),
            ],
            &params(),
            &|_| None,
        );
        assert!(a.rows.is_empty());
        assert_eq!(a.single_machine_cases, 1, "y alone: on one machine only");
        assert_eq!(a.not_verified.len(), 1);
        assert_eq!(a.not_verified[0].machine, "M2");
        assert_eq!(a.not_verified[0].status, Status::Failed);
        let text = render(&a, Format::Table);
        assert!(
            text.contains("M2: x: failed in 1 of 1 run(s): relative L2 error 0.3"),
            "{text}"
        );
        assert!(text.contains("1 failed or skipped on a machine"), "{text}");
    }
}
