//! `wattbench report --format html`: one self-contained page (inline CSS and SVG, no script,
//! nothing fetched) from result files, `measure` reports and traces, ceilings and the run
//! history. Sections, each always present and saying so when its inputs are missing: summary,
//! roofline, backend comparison, traces, trend, cross-hardware comparison, carbon.
//!
//! Every text that comes from a file (names, reasons, commands) is HTML-escaped here or by
//! the SVG backend.
mod inputs;
mod plot;

pub use inputs::{load, Inputs};

use crate::ceilings::Ceilings;
use inputs::{MeasureInput, RunInput, TraceInput};
use plot::{Bar, Fill, Line, Mark, RoofPoint, Roofs};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use wattbench_core::energy::{CaseEnergy, Interval, Source};
use wattbench_core::result::{CaseResult, Config, RunFile, Status, TrainingResult};
use wattbench_core::stats::{quantile_sorted, TimeStats, BOOTSTRAP_MIN_SAMPLES};
use wattbench_core::units::{self, sig};
use wattbench_core::DType;

/// The ids of the sections, in page order, with their titles.
pub const SECTIONS: [(&str, &str); 7] = [
    ("summary", "Summary"),
    ("roofline", "Roofline"),
    ("backends", "Backend comparison"),
    ("traces", "Power and memory traces"),
    ("trend", "Trend"),
    ("hardware", "Cross-hardware comparison"),
    ("carbon", "Carbon"),
];

const CSS: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;\
max-width:1320px;padding:0 20px 40px;color:#222;background:#fff}\
h1{font-size:22px;margin:18px 0 4px}h2{font-size:19px;margin:28px 0 8px;\
border-bottom:2px solid #e3e3e3;padding-bottom:3px}h3{font-size:16px;margin:18px 0 6px}\
h4{font-size:14px;margin:12px 0 4px}\
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:6px 0;z-index:1}\
nav a{margin-right:14px;color:#1f64b4;text-decoration:none}\
table{border-collapse:collapse;margin:6px 0 14px;font-size:12.5px}\
th,td{border:1px solid #dcdcdc;padding:3px 7px;text-align:left;vertical-align:top}\
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums;\
white-space:nowrap}\
.ok{color:#17692b}.skipped{color:#8a6100}.failed{color:#b00020;font-weight:bold}\
.warn{color:#8a4b00}.muted{color:#666}.reason{white-space:pre-wrap;max-width:720px}\
svg{max-width:100%;height:auto;display:block}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:10px}\
figure{margin:6px 0 12px}figcaption{font-size:12.5px;color:#444}\
code{font-size:12px;background:#f6f6f6;padding:0 3px}details{margin:4px 0 10px}\
summary{cursor:pointer;color:#1f64b4}";

/// Text made safe for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn status_cell(s: Status) -> String {
    let (class, text) = match s {
        Status::Ok => ("ok", "ok"),
        Status::Skipped => ("skipped", "skipped"),
        Status::Failed => ("failed", "FAILED"),
    };
    format!("<td class=\"{class}\">{text}</td>")
}

fn td(s: &str) -> String {
    format!("<td>{}</td>", esc(s))
}

fn num(s: &str) -> String {
    format!("<td class=\"num\">{}</td>", esc(s))
}

fn table(header: &[&str], rows: &[String]) -> String {
    let mut h = String::from("<table><thead><tr>");
    for c in header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(h, "<tr>{r}</tr>");
    }
    h.push_str("</tbody></table>");
    h
}

fn section(id: &str, body: &str) -> String {
    let title = SECTIONS
        .iter()
        .find(|(i, _)| *i == id)
        .map_or(id, |(_, t)| t);
    format!(
        "<section id=\"{id}\"><h2>{}</h2>{body}</section>\n",
        esc(title)
    )
}

fn p(text: &str) -> String {
    format!("<p>{}</p>", esc(text))
}

fn note(text: &str) -> String {
    format!("<p class=\"warn\">{}</p>", esc(text))
}

/// The hardware fingerprints of the inputs, in order of appearance: machine `M1`, `M2`, ...
fn machines(inp: &Inputs) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in &inp.runs {
        let fp = r.doc.environment.hardware_fingerprint();
        if !v.contains(&fp) {
            v.push(fp);
        }
    }
    v
}

fn machine_label(machines: &[String], fp: &str) -> String {
    match machines.iter().position(|m| m == fp) {
        Some(i) if machines.len() > 1 => format!("M{} ({fp})", i + 1),
        _ => fp.to_string(),
    }
}

/// Render the whole page.
pub fn render(inp: &Inputs) -> String {
    let mut h = String::new();
    let title = match inp.runs.first() {
        Some(r) => format!("wattbench report, {}", r.doc.created_at),
        None => "wattbench report".to_string(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\
         <link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{CSS}</style></head>\
         <body>\n<h1>{}</h1>\n<nav>",
        esc(&title),
        esc(&title)
    );
    for (id, t) in SECTIONS {
        let _ = write!(h, "<a href=\"#{id}\">{}</a>", esc(t));
    }
    h.push_str("</nav>\n");
    let machines = machines(inp);
    h.push_str(&section("summary", &summary(inp, &machines)));
    h.push_str(&section("roofline", &roofline(inp, &machines)));
    h.push_str(&section("backends", &backends(inp, &machines)));
    h.push_str(&section("traces", &traces(inp)));
    h.push_str(&section("trend", &trend(inp, &machines)));
    h.push_str(&section("hardware", &hardware(inp, &machines)));
    h.push_str(&section("carbon", &carbon(inp)));
    let _ = write!(
        h,
        "<footer class=\"muted\"><p>Made by wattbench {} on {}. One self-contained file: \
         inline SVG and CSS, no script, nothing fetched.</p></footer>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    h
}

// ---------------------------------------------------------------------------------- summary

fn run_label(doc: &RunFile) -> String {
    match &doc.config {
        Config::Run(r) => format!("run, suite {}", r.suite),
        Config::Train(t) => format!("train {} on {}", t.settings.model.label(), t.backend),
    }
}

fn verification(c: &CaseResult) -> String {
    match &c.verification {
        None => "not verified (not run)".into(),
        Some(v) => format!(
            "{} {} ({} of {} values){}",
            if v.passed { "passed:" } else { "FAILED:" },
            v.errors_in_words(),
            match v.method {
                wattbench_core::result::VerifyMethod::Full => "all",
                wattbench_core::result::VerifyMethod::Sampled => "a sample",
            },
            v.checked_values,
            v.tolerance_note
                .as_ref()
                .map(|n| format!("; tolerance: {n}"))
                .unwrap_or_default()
        ),
    }
}

fn summary_run(r: &RunInput, machines: &[String]) -> String {
    let doc = &r.doc;
    let env = &doc.environment;
    let hst = &env.host;
    let unknown = |o: &Option<String>| o.clone().unwrap_or_else(|| "unknown".into());
    let count = |s: Status| {
        doc.cases.iter().filter(|c| c.status == s).count()
            + doc.trainings.iter().filter(|t| t.status == s).count()
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<h3>{} <span class=\"muted\">({})</span></h3>",
        esc(&file_name(&r.path)),
        esc(&run_label(doc))
    );
    h.push_str(&p(&format!(
        "started {}, {:.1} s; {} ok, {} skipped, {} failed{}",
        doc.created_at,
        doc.duration_s,
        count(Status::Ok),
        count(Status::Skipped),
        count(Status::Failed),
        if doc.interrupted {
            " — INTERRUPTED: incomplete"
        } else {
            ""
        }
    )));
    let gpus = if env.gpus.is_empty() {
        "none".to_string()
    } else {
        env.gpus
            .iter()
            .map(|g| {
                format!(
                    "gpu{} {} (driver {}, {})",
                    g.index,
                    g.name.as_deref().unwrap_or("?"),
                    g.driver_version.as_deref().unwrap_or("?"),
                    g.memory_total_bytes.map_or("memory ?".into(), units::gib)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let sw: Vec<String> = env
        .software
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let rows = [
        (
            "machine",
            machine_label(machines, &env.hardware_fingerprint()),
        ),
        ("host", unknown(&hst.hostname)),
        ("CPU", format!("{} ({})", hst.cpu_name(), hst.cores_text())),
        (
            "memory",
            hst.memory_bytes.map_or("unknown".into(), units::gib),
        ),
        (
            "OS",
            format!("{} (kernel {})", unknown(&hst.os), unknown(&hst.kernel)),
        ),
        ("GPUs", gpus),
        ("software", sw.join(", ")),
        (
            "git commit",
            env.git_commit
                .clone()
                .unwrap_or_else(|| "unknown (built outside a git checkout)".into()),
        ),
        ("environment variables", env.variables_text()),
        (
            "libraries loaded",
            if env.libraries.is_empty() {
                "none of the GPU or framework libraries".into()
            } else {
                env.libraries.join(", ")
            },
        ),
    ];
    h.push_str("<table>");
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{}</th>{}</tr>", esc(k), td(&v));
    }
    h.push_str("</table>");
    let meters: Vec<String> = env
        .meters
        .iter()
        .map(|m| {
            format!(
                "{}{}{}{}",
                td(&m.name),
                td(&m.kind),
                if m.available {
                    "<td class=\"ok\">available</td>".to_string()
                } else {
                    "<td class=\"skipped\">unavailable</td>".to_string()
                },
                format_args!(
                    "<td class=\"reason\">{}</td>",
                    esc(m.detail.as_deref().or(m.reason.as_deref()).unwrap_or(""))
                )
            )
        })
        .collect();
    h.push_str("<h4>Energy meters</h4>");
    h.push_str(&table(
        &["meter", "kind", "state", "what it reads, or why not"],
        &meters,
    ));
    let notes = crate::energy::notes(doc);
    if !notes.is_empty() {
        h.push_str("<ul>");
        for n in notes {
            let _ = write!(h, "<li class=\"muted\">{}</li>", esc(&n));
        }
        h.push_str("</ul>");
    }
    if !doc.cases.is_empty() {
        let rows: Vec<String> = doc
            .cases
            .iter()
            .map(|c| {
                format!(
                    "<td><code>{}</code></td>{}<td class=\"reason\">{}</td>{}{}",
                    esc(&c.id),
                    status_cell(c.status),
                    esc(c.reason.as_deref().unwrap_or("")),
                    td(&verification(c)),
                    td(c.implementation.as_deref().unwrap_or(""))
                )
            })
            .collect();
        h.push_str("<h4>Cases: verification against the f64 reference</h4>");
        h.push_str(&table(
            &["case", "status", "reason", "verification", "what ran"],
            &rows,
        ));
        // What was skipped, grouped by reason (in full).
        let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
        for c in doc.cases.iter().filter(|c| c.status != Status::Ok) {
            let why = format!(
                "{}: {}",
                if c.status == Status::Failed {
                    "FAILED"
                } else {
                    "skipped"
                },
                c.reason.as_deref().unwrap_or("no reason recorded")
            );
            match by_reason.iter_mut().find(|(r, _)| *r == why) {
                Some((_, ids)) => ids.push(&c.id),
                None => by_reason.push((why, vec![&c.id])),
            }
        }
        if by_reason.is_empty() {
            h.push_str(&p("Nothing was skipped and nothing failed."));
        } else {
            h.push_str("<h4>Skipped or failed, and why</h4><ul>");
            for (why, ids) in by_reason {
                let _ = write!(
                    h,
                    "<li><span class=\"reason\">{}</span> — {} case{}<details><summary>which\
                     </summary><code>{}</code></details></li>",
                    esc(&why),
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" },
                    ids.iter().map(|i| esc(i)).collect::<Vec<_>>().join("<br>")
                );
            }
            h.push_str("</ul>");
        }
    }
    if !doc.trainings.is_empty() {
        let rows: Vec<String> = doc
            .trainings
            .iter()
            .map(|t| {
                format!(
                    "<td><code>{}</code></td>{}<td class=\"reason\">{}</td>{}{}{}",
                    esc(&t.id),
                    status_cell(t.status),
                    esc(t.reason.as_deref().unwrap_or("")),
                    num(&format!("{} ({} measured)", t.steps, t.measured_steps)),
                    td(&crate::train::loss_change(&t.loss)),
                    td(&t
                        .time
                        .as_ref()
                        .map_or("—".into(), |tm| units::seconds(tm.median_s)))
                )
            })
            .collect();
        h.push_str("<h4>Training runs</h4>");
        h.push_str(&p(
            "Training runs are end to end and are not verified against the f64 reference while \
             they run; each trainer's loss and gradients are checked against the f64 host model \
             by `wattbench check` and the tests.",
        ));
        h.push_str(&table(
            &[
                "training run",
                "status",
                "reason",
                "steps",
                "loss",
                "time per step",
            ],
            &rows,
        ));
    }
    h
}

fn summary(inp: &Inputs, machines: &[String]) -> String {
    let mut h = String::new();
    if inp.runs.is_empty() && inp.measures.is_empty() && inp.traces.is_empty() {
        h.push_str(&note("No result file, measure report or trace was given."));
    }
    let mut given = Vec::new();
    if !inp.runs.is_empty() {
        given.push(format!("{} result file(s)", inp.runs.len()));
    }
    if !inp.measures.is_empty() {
        given.push(format!("{} measure report(s)", inp.measures.len()));
    }
    if !inp.traces.is_empty() {
        given.push(format!(
            "{} trace(s) without their report",
            inp.traces.len()
        ));
    }
    if !given.is_empty() {
        h.push_str(&p(&format!("Inputs: {}.", given.join(", "))));
    }
    for r in &inp.runs {
        h.push_str(&summary_run(r, machines));
    }
    if !inp.measures.is_empty() {
        h.push_str("<h3>Measured commands</h3>");
        let rows: Vec<String> = inp
            .measures
            .iter()
            .map(|m| {
                let r = &m.report;
                let mut w = r.warnings.clone();
                if let Some(e) = &r.error {
                    w.insert(0, format!("error: {e}"));
                }
                format!(
                    "{}<td><code>{}</code></td>{}{}{}<td class=\"reason\">{}</td>",
                    td(&file_name(&m.path)),
                    esc(&r.command.join(" ")),
                    td(&r.started_at),
                    num(&r.exit_code.to_string()),
                    num(&format!("{:.3} s", r.duration_s)),
                    esc(&w.join("\n"))
                )
            })
            .collect();
        h.push_str(&table(
            &[
                "report", "command", "started", "exit", "duration", "warnings",
            ],
            &rows,
        ));
    }
    h
}

// --------------------------------------------------------------------------------- roofline

/// The ceilings of the machine `fp` (see [`crate::ceilings::choose`]).
fn ceilings_of<'a>(inp: &'a Inputs, fp: &str) -> Option<&'a (std::path::PathBuf, Ceilings)> {
    ceilings_choice(inp, fp).map(|(c, _)| c)
}

/// The ceilings of the machine `fp`, and why they were chosen when several files measure it.
fn ceilings_choice<'a>(
    inp: &'a Inputs,
    fp: &str,
) -> Option<(&'a (std::path::PathBuf, Ceilings), Option<String>)> {
    let mine: Vec<&(std::path::PathBuf, Ceilings)> = inp
        .ceilings
        .iter()
        .filter(|(_, c)| c.hardware_fingerprint == fp)
        .collect();
    let (i, why) = crate::ceilings::choose(&mine, &inp.hosts_of(fp))?;
    Some((mine[i], why))
}

/// The roof of `dtype` at `intensity`: min(bandwidth × intensity, peak), and which of the two
/// it is. When one of them was not measured the other alone is an upper bound of the roof
/// (a case's share of it a lower bound of its share of the roof), and the words say which is
/// missing; `None` when neither was measured.
fn roof(c: &crate::ceilings::DeviceCeilings, dtype: DType, intensity: f64) -> Option<(f64, Bound)> {
    let peak = c.peak_gflops.get(dtype.as_str()).map(|p| p.gflops_per_s);
    let slope = c.memory_gbytes_per_s.map(|b| b * intensity);
    match (peak, slope) {
        (Some(p), Some(s)) if s < p => Some((s, Bound::Memory)),
        (Some(p), Some(_)) => Some((p, Bound::Compute)),
        (Some(p), None) => Some((p, Bound::NoBandwidth)),
        (None, Some(s)) => Some((s, Bound::NoPeak)),
        (None, None) => None,
    }
}

/// Notes when verified cases ran more than 10 % above their (whole) roof: above a dtype's
/// compute roof, that dtype's measured peak understates the machine's for them (its other
/// compute-bound cases' shares read high); above the memory slope, their working set stayed in
/// a cache the bandwidth measurement leaves out.
fn above_roof(cases: &[&CaseResult], d: &crate::ceilings::DeviceCeilings) -> Vec<String> {
    let mut compute: Vec<(f64, &str, &str)> = Vec::new();
    let mut memory: Vec<(f64, &str)> = Vec::new();
    for c in cases {
        let Some(t) = c.throughput.as_ref() else {
            continue;
        };
        let Some((r, b)) = roof(d, c.dtype, t.intensity) else {
            continue;
        };
        let share = t.gflops_per_s / r;
        match b {
            Bound::Compute if share > 1.1 => compute.push((share, &c.id, c.dtype.as_str())),
            Bound::Memory if share > 1.1 => memory.push((share, &c.id)),
            _ => {}
        }
    }
    let most = |v: &mut Vec<(f64, &str)>| {
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        v.first()
            .map(|&(share, id)| format!("the most: {id}, at {}", pct(share)))
    };
    let mut notes = Vec::new();
    let mut dtypes: Vec<&str> = compute.iter().map(|x| x.2).collect();
    dtypes.sort_unstable();
    dtypes.dedup();
    let convs = compute.iter().any(|x| x.1.starts_with("conv2d/"));
    let n = compute.len();
    let mut shares: Vec<(f64, &str)> = compute.into_iter().map(|(s, id, _)| (s, id)).collect();
    if let Some(top) = most(&mut shares) {
        notes.push(format!(
            "{n} verified case(s) ran more than 10 % above their dtype's compute roof ({top} \
             of it): the measured {} peak (the best verified GEMM at one size) understates what \
             this machine reaches for them, and the other compute-bound shares of that dtype \
             read high by up to as much.{}",
            dtypes.join(" and "),
            if convs {
                " (A convolution's GFLOP/s count the direct algorithm's FLOPs; a Winograd or FFT \
                 algorithm executes fewer, which also lifts it above a roof.)"
            } else {
                ""
            }
        ));
    }
    let n = memory.len();
    if let Some(top) = most(&mut memory) {
        notes.push(format!(
            "{n} verified case(s) ran more than 10 % above the memory slope ({top} of it): \
             their data stayed in a cache, which the bandwidth (measured on buffers larger than \
             the last-level cache) leaves out."
        ));
    }
    notes
}

/// Which part of the roofline a case's roof is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    /// The memory slope, under the dtype's compute roof.
    Memory,
    /// The dtype's compute roof, under the memory slope.
    Compute,
    /// Only the compute roof: the bandwidth was not measured.
    NoBandwidth,
    /// Only the memory slope: the dtype has no measured peak.
    NoPeak,
}

impl Bound {
    /// Whether the roof is only part of it (one ceiling missing): an upper bound.
    fn partial(self) -> bool {
        matches!(self, Bound::NoBandwidth | Bound::NoPeak)
    }

    /// For the table's "roof is" column.
    fn words(self, dtype: DType) -> String {
        match self {
            Bound::Memory => "memory".into(),
            Bound::Compute => "compute".into(),
            Bound::NoBandwidth => {
                "compute only (no bandwidth measured): an upper bound of the roof".into()
            }
            Bound::NoPeak => format!(
                "memory only (no {} peak measured): an upper bound of the roof",
                dtype.as_str()
            ),
        }
    }
}

/// What changes a device's ceilings on one machine kind: the host's name (another machine of
/// the same CPU model and cores may have other memory; a container's name is its own unless
/// `WATTBENCH_NODE_NAME` gives the node's); for the CPU, the cores the process could use and
/// the CPU libraries' thread variables; for a GPU, the metered GPUs' enforced power limits and
/// the other recorded variables (visible GPUs and their order, TF32). `None` for each where a
/// file predates its recording.
fn conditions(env: &wattbench_core::result::Environment, device: &str) -> Vec<Option<String>> {
    let cpu = device == "cpu";
    let cpu_variable = |k: &str| k.contains("THREADS") || k.contains("CPU");
    let variables = env.variables.as_ref().map(|v| {
        let set: Vec<String> = v
            .iter()
            .filter(|(k, _)| cpu_variable(k) == cpu)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if set.is_empty() {
            "none of the variables that change it set".to_string()
        } else {
            set.join(" ")
        }
    });
    // Every metered GPU's limit (the device's own among them: `cuda:N` is the N-th visible
    // GPU, which the index alone does not name under CUDA_VISIBLE_DEVICES).
    let limits: Vec<String> = (env.gpus.iter())
        .filter(|g| g.metered)
        .map(|g| match g.power_limit_watts {
            Some(w) => format!("GPU {} at {w:.0} W", g.index),
            None => format!("GPU {} at an unknown limit", g.index),
        })
        .collect();
    let power_limits =
        (!cpu && !limits.is_empty()).then(|| format!("power limits {}", limits.join(", ")));
    vec![
        env.host.hostname.as_ref().map(|h| format!("host {h}")),
        cpu.then(|| env.host.usable_cores.map(|_| env.host.cores_text()))
            .flatten(),
        power_limits,
        variables,
    ]
}

/// A note when the ceilings were measured under other conditions ([`conditions`]) than some
/// of the runs placed under them: their roofs may not be those runs' (a CPU's peak and
/// bandwidth scale with the cores and threads used).
fn other_conditions<'a>(
    ceilings: &wattbench_core::result::Environment,
    runs: impl Iterator<Item = &'a wattbench_core::result::Environment>,
    device: &str,
) -> Option<String> {
    let theirs = conditions(ceilings, device);
    let mut differ: Vec<String> = Vec::new();
    for env in runs {
        let mine = conditions(env, device);
        // Only what both files recorded is compared.
        let words: Vec<String> = mine
            .iter()
            .zip(&theirs)
            .filter_map(|(m, t)| match (m, t) {
                (Some(m), Some(t)) if m != t => Some(m.clone()),
                _ => None,
            })
            .collect();
        if !words.is_empty() && !differ.contains(&words.join(", ")) {
            differ.push(words.join(", "));
        }
    }
    if differ.is_empty() {
        return None;
    }
    let theirs: Vec<String> = theirs.into_iter().flatten().collect();
    Some(format!(
        "These ceilings were measured with {}; runs here with {}: the roofs may not be theirs \
         (the peak and bandwidth depend on the machine, its memory, the cores and threads \
         used, a GPU's power limit; in a container, give WATTBENCH_NODE_NAME the node's name). \
         Measure the ceilings under the runs' conditions for their roofs.",
        theirs.join(", "),
        differ.join("; ")
    ))
}

/// A GPU's state after a peak GEMM, in words: ` (after it: SM 1980 MHz, …, throttled:
/// sw_power_cap)`.
fn gpu_state_words(g: &wattbench_core::result::GpuState) -> String {
    let mut v = Vec::new();
    if let Some(c) = g.sm_clock_mhz {
        v.push(format!("SM {c} MHz"));
    }
    if let Some(c) = g.memory_clock_mhz {
        v.push(format!("memory {c} MHz"));
    }
    if let Some(t) = g.temperature_c {
        v.push(format!("{t} °C"));
    }
    if let Some(w) = g.power_watts {
        v.push(format!("{} W", sig(w)));
    }
    v.push(match &g.throttle_reasons {
        None => "throttle reasons unknown".into(),
        Some(r) => {
            let r: Vec<&str> = r
                .iter()
                .map(String::as_str)
                .filter(|r| *r != "gpu_idle" && *r != "applications_clocks_setting")
                .collect();
            if r.is_empty() {
                "not throttled".into()
            } else {
                format!("THROTTLED: {}", r.join(", "))
            }
        }
    });
    format!(" (after it: {})", v.join(", "))
}

/// A fraction as a percentage: two significant digits below 10 % (0.040 %, 3.1 %), whole
/// numbers above.
fn pct(x: f64) -> String {
    let v = 100.0 * x;
    if v >= 10.0 || !v.is_finite() {
        format!("{v:.0} %")
    } else if v == 0.0 {
        "0 %".into()
    } else {
        let decimals = (1 - v.abs().log10().floor() as i32).max(1) as usize;
        format!("{v:.decimals$} %")
    }
}

fn roofline(inp: &Inputs, machines: &[String]) -> String {
    let mut h = String::new();
    h.push_str(&p(
        "Each verified case's achieved GFLOP/s against its arithmetic intensity (FLOPs per \
         minimum byte: every input read once, every output written once — real kernels move \
         more, so each point sits right of its true position, at a higher intensity). The \
         roofs are this machine's measured ceilings (`wattbench ceilings`): the memory slope \
         (bandwidth × intensity) and one compute roof per dtype. A measured roof is the best \
         verified GEMM the backends here reached at one size, a lower bound of the machine's \
         peak: a case above 100 % ran faster than that measurement (another size, another \
         moment). Markers: one shape and colour per backend; filled f32, outlined f16, outlined \
         with a dot bf16.",
    ));
    for (path, fp) in &inp.ceilings_unmatched {
        h.push_str(&note(&format!(
            "Not used: the ceilings file {} measures a machine no input comes from ({fp}).",
            path.display()
        )));
    }
    // Points per machine and device.
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &inp.runs {
        let fp = r.doc.environment.hardware_fingerprint();
        for c in r.doc.cases.iter().filter(|c| c.throughput.is_some()) {
            let k = (fp.clone(), c.device.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        h.push_str(&note(
            "No verified kernel case among the inputs (training runs have no single \
             intensity): nothing to place on a roofline.",
        ));
    }
    for (fp, device) in &keys {
        let cases: Vec<&CaseResult> = inp
            .runs
            .iter()
            .filter(|r| r.doc.environment.hardware_fingerprint() == *fp)
            .flat_map(|r| r.doc.cases.iter())
            .filter(|c| c.device == *device && c.status == Status::Ok)
            .collect();
        let points: Vec<RoofPoint> = cases
            .iter()
            .filter_map(|c| {
                let t = c.throughput.as_ref()?;
                Some(RoofPoint {
                    backend: c.backend.clone(),
                    dtype: c.dtype,
                    intensity: t.intensity,
                    gflops: t.gflops_per_s,
                })
            })
            .collect();
        let found = ceilings_of(inp, fp);
        let dev = found.and_then(|(_, c)| c.device(device));
        let _ = write!(
            h,
            "<h3>{} on {}</h3>",
            esc(device),
            esc(&machine_label(machines, fp))
        );
        let roofs = dev.map(|d| Roofs {
            bandwidth: d.memory_gbytes_per_s,
            peaks: d
                .peak_gflops
                .iter()
                .map(|(k, v)| (k.clone(), v.gflops_per_s, v.backend.clone()))
                .collect(),
        });
        if let Some((_, Some(why))) = ceilings_choice(inp, fp) {
            h.push_str(&note(&format!("{why}.")));
        }
        if found.is_some_and(|(_, c)| c.is_quick()) {
            h.push_str(&note(
                "These ceilings are quick: a lower bound (`wattbench ceilings --quick`, small \
                 sizes), not the machine's ceilings: the roofs are low and every \
                 \"% of roof\" reads high. Run `wattbench ceilings` for a full measurement.",
            ));
        }
        if let Some((_, c)) = found {
            let runs = inp
                .runs
                .iter()
                .filter(|r| r.doc.environment.hardware_fingerprint() == *fp)
                .map(|r| &r.doc.environment);
            if let Some(why) = other_conditions(&c.environment, runs, device) {
                h.push_str(&note(&why));
            }
        }
        match (found, dev) {
            (Some((path, c)), Some(d)) => {
                let mut parts = Vec::new();
                match (&d.memory, &d.memory_reason) {
                    (Some(m), _) => parts.push(format!(
                        "memory {} GB/s (best of {}; median {} GB/s): {}",
                        sig(m.best_gbytes_per_s),
                        m.repetitions,
                        sig(m.median_gbytes_per_s),
                        m.method
                    )),
                    (None, r) => parts.push(format!(
                        "memory bandwidth not measured: {}",
                        r.as_deref().unwrap_or("no reason recorded")
                    )),
                }
                for (dt, pk) in &d.peak_gflops {
                    parts.push(format!(
                        "{dt} peak {} GFLOP/s by {} ({}){}",
                        sig(pk.gflops_per_s),
                        pk.backend,
                        pk.case_id,
                        pk.gpu_state.as_ref().map_or(String::new(), gpu_state_words)
                    ));
                }
                h.push_str(&p(&format!(
                    "Ceilings from {} ({}): {}.",
                    path.display(),
                    c.describe(),
                    parts.join("; ")
                )));
            }
            (Some((path, _)), None) => h.push_str(&note(&format!(
                "{} has no ceilings for device {device}: the cases are drawn without roofs.",
                path.display()
            ))),
            (None, _) => {
                let looked = inp
                    .ceilings_missing
                    .iter()
                    .find(|(f, _)| f == fp)
                    .map_or(String::new(), |(_, l)| format!(" (looked in {l})"));
                let given: Vec<String> = inp
                    .ceilings_unmatched
                    .iter()
                    .map(|(p, f)| format!("{} measures {f}", p.display()))
                    .collect();
                let given = if given.is_empty() {
                    String::new()
                } else {
                    format!(
                        " The ceilings files given are of other machines: {}.",
                        given.join("; ")
                    )
                };
                h.push_str(&note(&format!(
                    "No ceilings file for this machine{looked}: the cases are drawn without \
                     roofs. Run `wattbench ceilings` on it (or give --ceilings FILE).{given}"
                )));
            }
        }
        for why in dev.map_or(Vec::new(), |d| above_roof(&cases, d)) {
            h.push_str(&note(&why));
        }
        if let Some(d) = dev {
            let mut no_peak: Vec<&str> = (points.iter())
                .map(|p| p.dtype.as_str())
                .filter(|dt| !d.peak_gflops.contains_key(*dt))
                .collect();
            no_peak.sort_unstable();
            no_peak.dedup();
            if !no_peak.is_empty() {
                h.push_str(&note(&format!(
                    "No {} peak measured in these ceilings (their `gemm` list says why): those \
                     cases are drawn without a compute roof, the GEMM table gives them no share \
                     of a peak, and the per-case table gives their share of the memory slope \
                     alone (an upper bound of their roof), a lower bound of their share.",
                    no_peak.join(", ")
                )));
            }
        }
        h.push_str("<figure>");
        let quick = if found.is_some_and(|(_, c)| c.is_quick()) {
            " (quick ceilings: a lower bound)"
        } else {
            ""
        };
        h.push_str(&plot::roofline(
            &format!("roofline: {device}{quick}"),
            &points,
            roofs.as_ref(),
        ));
        h.push_str("</figure>");
        let Some(d) = dev else { continue };
        // GEMM against the ceilings, per backend and dtype.
        // (backend, dtype, mode) → (GFLOP/s, share of the dtype's peak when it has one) per
        // case. A dtype without a measured peak keeps its rows, saying so.
        type Key = (String, &'static str, &'static str);
        let mut per: BTreeMap<Key, Vec<(f64, Option<f64>)>> = BTreeMap::new();
        for c in cases.iter().filter(|c| c.op == wattbench_core::Op::Gemm) {
            let Some(t) = &c.throughput else { continue };
            let peak = d.peak_gflops.get(c.dtype.as_str());
            per.entry((c.backend.clone(), c.dtype.as_str(), c.mode.as_str()))
                .or_default()
                .push((
                    t.gflops_per_s,
                    peak.map(|p| t.gflops_per_s / p.gflops_per_s),
                ));
        }
        if !per.is_empty() {
            let rows: Vec<String> = per
                .iter()
                .map(|((b, dt, mode), v)| {
                    let mut f: Vec<f64> = v.iter().filter_map(|x| x.1).collect();
                    f.sort_by(f64::total_cmp);
                    let best = v.iter().map(|x| x.0).fold(0.0, f64::max);
                    let (top, mid) = if f.is_empty() {
                        let no = format!("no {dt} peak measured");
                        (no.clone(), no)
                    } else {
                        (pct(f[f.len() - 1]), pct(quantile_sorted(&f, 0.5)))
                    };
                    format!(
                        "{}{}{}{}{}{}{}",
                        td(b),
                        td(dt),
                        td(mode),
                        num(&v.len().to_string()),
                        num(&sig(best)),
                        num(&top),
                        num(&mid)
                    )
                })
                .collect();
            h.push_str("<h4>GEMM against the compute roof of its dtype</h4>");
            h.push_str(&p(
                "Every GEMM case of a backend, dtype and mode, memory-bound shapes (matrix-vector \
                 products) included: their share of the compute roof is low by their shape, \
                 not by the backend (the per-case table below gives each against its own roof).",
            ));
            h.push_str(&table(
                &[
                    "backend",
                    "dtype",
                    "mode",
                    "GEMM cases",
                    "best GFLOP/s",
                    "best % of peak",
                    "median % of peak",
                ],
                &rows,
            ));
        }
        let rows: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                let t = c.throughput.as_ref()?;
                let r = roof(d, c.dtype, t.intensity);
                // Against a partial roof (an upper bound), the share is a lower bound.
                let share = |(r, b): (f64, Bound)| {
                    let v = pct(t.gflops_per_s / r);
                    if b.partial() {
                        format!("≥ {v}")
                    } else {
                        v
                    }
                };
                Some(format!(
                    "<td><code>{}</code></td>{}{}{}{}{}",
                    esc(&c.id),
                    num(&sig(t.intensity)),
                    num(&sig(t.gflops_per_s)),
                    num(&r.map_or("—".into(), |(r, _)| sig(r))),
                    num(&r.map_or("—".into(), share)),
                    td(&r.map_or("—".into(), |(_, b)| b.words(c.dtype)))
                ))
            })
            .collect();
        h.push_str("<details><summary>every case against its roof</summary>");
        h.push_str(&table(
            &[
                "case",
                "FLOP/byte",
                "GFLOP/s",
                "roof GFLOP/s",
                "% of roof",
                "roof is",
            ],
            &rows,
        ));
        h.push_str("</details>");
    }
    h
}

// ------------------------------------------------------------------------- backend comparison

/// How an energy total was obtained, as a bar fill: any estimate makes it an estimate, else
/// any integration; `None` without a total.
fn energy_fill(e: &CaseEnergy) -> Option<Fill> {
    e.total_joules_per_iter?;
    let s = &e.total_sources;
    Some(if s.contains(&Source::Estimated) {
        Fill::Outlined
    } else if s.contains(&Source::Integrated) {
        Fill::Hatched
    } else {
        Fill::Solid
    })
}

fn sources(e: &CaseEnergy) -> String {
    e.total_sources
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// One row of the comparison: a group (the case without backend and device), a series
/// (backend/device), throughput and energy.
struct Compared<'a> {
    op: String,
    group: String,
    series: String,
    id: &'a str,
    time: Option<&'a TimeStats>,
    gflops: Option<f64>,
    energy: Option<&'a CaseEnergy>,
    /// What the median is over: `sample` (a case) or `measured step` (training).
    over: &'static str,
}

impl Compared<'_> {
    /// The GFLOP/s at the bounds of the median time's interval (the bootstrap 95 % interval,
    /// the samples' range below [`wattbench_core::stats::BOOTSTRAP_MIN_SAMPLES`]); `None`
    /// with one sample.
    fn gflops_interval(&self) -> Option<(f64, f64)> {
        let (g, t) = (self.gflops?, self.time?);
        let [low, high] = t.ci95_known()?;
        (low > 0.0).then(|| (g * t.median_s / high, g * t.median_s / low))
    }
}

fn compared_case(c: &CaseResult) -> Compared<'_> {
    Compared {
        op: format!("{} {}", c.op.as_str(), c.mode.as_str()),
        group: format!(
            "{}{} {}",
            c.tag.as_ref().map(|t| format!("{t} ")).unwrap_or_default(),
            c.params.label(),
            c.dtype.as_str()
        ),
        series: format!("{}/{}", c.backend, c.device),
        id: &c.id,
        time: c.time.as_ref(),
        gflops: c.throughput.as_ref().map(|t| t.gflops_per_s),
        energy: c.energy.as_ref(),
        over: "sample",
    }
}

fn compared_training(t: &TrainingResult) -> Compared<'_> {
    Compared {
        op: "training step".into(),
        group: t.model.label(),
        series: format!("{}/{}", t.backend, t.device),
        id: &t.id,
        time: t.time.as_ref(),
        // At the median step, as a case's (the run's own figure is at the mean step, the
        // projection's basis): this table's column and its interval are the median's.
        gflops: t
            .time
            .as_ref()
            .map(|tm| t.flops.step as f64 / 1e9 / tm.median_s)
            .filter(|g| g.is_finite()),
        energy: Some(&t.energy),
        over: "measured step",
    }
}

fn backends(inp: &Inputs, machines: &[String]) -> String {
    let mut h = String::new();
    h.push_str(&p(&format!(
        "Per case, every backend that ran it on the same machine (the runs of every input \
         file from that machine together, on one scale; with several files, every file after \
         the first is a series of its own, named after the file): throughput (GFLOP/s at the \
         median time, with the GFLOP/s at the bounds of the median's 95 % bootstrap interval, \
         or of its samples' range below {BOOTSTRAP_MIN_SAMPLES} samples) and energy efficiency \
         (GFLOP per joule of the gross energy per call; {}). The bars' fill says where each \
         energy figure comes from; the table gives the figures.",
        wattbench_core::energy::GROSS_MEANS
    )));
    let mut any = false;
    for fp in machines {
        let runs: Vec<&RunInput> = inp
            .runs
            .iter()
            .filter(|r| r.doc.environment.hardware_fingerprint() == *fp)
            .collect();
        let mut rows: Vec<Compared<'_>> = Vec::new();
        for (k, r) in runs.iter().enumerate() {
            let mine = r
                .doc
                .cases
                .iter()
                .filter(|c| c.status == Status::Ok)
                .map(compared_case)
                .chain(
                    r.doc
                        .trainings
                        .iter()
                        .filter(|t| t.status == Status::Ok)
                        .map(compared_training),
                );
            for mut c in mine {
                // Several files of one machine: every file after the first is a series of its
                // own, all its cases (not only those of a case already seen: a case only it
                // has would otherwise join the first file's series).
                if k > 0 {
                    c.series = format!("{} ({})", c.series, file_name(&r.path));
                }
                rows.push(c);
            }
        }
        if rows.is_empty() {
            continue;
        }
        any = true;
        if inp.runs.len() > 1 {
            let files: Vec<String> = runs.iter().map(|r| file_name(&r.path)).collect();
            let _ = write!(
                h,
                "<h3>{}: {}</h3>",
                esc(&machine_label(machines, fp)),
                esc(&files.join(", "))
            );
        }
        let mut ops: Vec<&str> = Vec::new();
        for c in &rows {
            if !ops.contains(&c.op.as_str()) {
                ops.push(&c.op);
            }
        }
        for op in ops {
            let mine: Vec<&Compared<'_>> = rows.iter().filter(|c| c.op == op).collect();
            let thr: Vec<Bar> = mine
                .iter()
                .filter_map(|c| {
                    Some(Bar {
                        group: c.group.clone(),
                        series: c.series.clone(),
                        value: c.gflops?,
                        range: c.gflops_interval(),
                        fill: Fill::Solid,
                    })
                })
                .collect();
            let eff: Vec<Bar> = mine
                .iter()
                .filter_map(|c| {
                    let e = c.energy?;
                    let g = e.whole_gflops_per_joule_interval()?;
                    Some(Bar {
                        group: c.group.clone(),
                        series: c.series.clone(),
                        value: g.value,
                        range: Some((g.low, g.high)),
                        fill: energy_fill(e)?,
                    })
                })
                .collect();
            let _ = write!(h, "<h4>{}</h4><div class=\"grid\">", esc(op));
            h.push_str("<figure>");
            h.push_str(&plot::hbars(
                &format!("{op}: throughput"),
                "GFLOP/s",
                &thr,
                false,
            ));
            h.push_str("</figure><figure>");
            if eff.is_empty() {
                h.push_str(&note("No energy figure for these cases."));
            } else {
                h.push_str(&plot::hbars(
                    &format!("{op}: energy efficiency"),
                    "GFLOP/J (gross)",
                    &eff,
                    true,
                ));
            }
            h.push_str("</figure></div>");
        }
        let table_rows: Vec<String> = rows
            .iter()
            .map(|c| {
                let e = c.energy;
                let net = e.map(crate::energy::net).filter(|n| !n.is_empty());
                format!(
                    "<td><code>{}</code></td>{}{}{}{}{}{}{}",
                    esc(c.id),
                    num(&c.time.map_or("—".into(), |t| units::seconds(t.median_s))),
                    num(&c
                        .time
                        .map_or("—".into(), |t| crate::train::median_interval_of(
                            t, c.over
                        ))),
                    num(&match (c.gflops, c.gflops_interval()) {
                        (Some(g), Some((lo, hi))) =>
                            format!("{} [{} – {}]", sig(g), sig(lo), sig(hi)),
                        (g, _) => g.map_or("—".into(), sig),
                    }),
                    num(&e.map_or("unmeasured".into(), crate::energy::total_cell)),
                    num(&net.unwrap_or("—".into())),
                    num(&e.and_then(|e| e.whole_gflops_per_joule_interval()).map_or(
                        "—".into(),
                        |g| format!("{} {}", sig(g.value), units::relative(&g))
                    )),
                    td(&e.map_or("none".into(), |e| {
                        let s = sources(e);
                        if e.total_mixes_sources {
                            format!("{s} (MIXED)")
                        } else if s.is_empty() {
                            "none".into()
                        } else {
                            s
                        }
                    }))
                )
            })
            .collect();
        h.push_str("<details><summary>the figures</summary>");
        h.push_str(&table(
            &[
                "case",
                "median time",
                "its interval",
                "GFLOP/s [at the interval's bounds]",
                "J per call or step (gross)",
                "J net (above idle)",
                "GFLOP/J",
                "energy source",
            ],
            &table_rows,
        ));
        h.push_str("</details>");
    }
    if !any {
        h.push_str(&note("No verified case or training run among the inputs."));
    }
    h
}

// ----------------------------------------------------------------------------------- traces

/// The power and memory plots of a trace; `sources`: each domain's source, when known (a
/// `measure` report's), so that a model's power line is labelled as one.
fn trace_plots(t: &TraceInput, title: &str, sources: &[(&str, Source)]) -> String {
    let mut h = String::from("<div class=\"grid\"><figure>");
    let power: Vec<Line> = t
        .columns
        .iter()
        .filter_map(|c| {
            let name = c.strip_suffix("_watts")?;
            let pts = t.series(c);
            let label = match sources.iter().find(|(n, _)| *n == name) {
                Some((_, Source::Estimated)) => format!("{name} (estimated)"),
                _ => name.to_string(),
            };
            (!pts.is_empty()).then_some(Line { label, points: pts })
        })
        .collect();
    if power.is_empty() {
        h.push_str(&note("No power readings in this trace."));
    } else {
        h.push_str(&plot::lines(
            &format!("{title}: power"),
            "time, s",
            "W",
            &power,
            &[],
            false,
            (620, 300),
        ));
    }
    h.push_str("</figure><figure>");
    let mib = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        pts.into_iter().map(|(t, b)| (t, b / 1048576.0)).collect()
    };
    let mut memory: Vec<Line> = Vec::new();
    let rss = mib(t.series("rss_bytes"));
    if !rss.is_empty() {
        memory.push(Line {
            label: "host RSS".into(),
            points: rss,
        });
    }
    for c in t.columns.iter().filter(|c| c.ends_with("_memory_bytes")) {
        let pts = mib(t.series(c));
        if !pts.is_empty() {
            memory.push(Line {
                label: format!("{} memory", c.trim_end_matches("_memory_bytes")),
                points: pts,
            });
        }
    }
    if memory.is_empty() {
        h.push_str(&note("No memory readings in this trace."));
    } else {
        h.push_str(&plot::lines(
            &format!("{title}: memory"),
            "time, s",
            "MiB",
            &memory,
            &[],
            false,
            (620, 300),
        ));
    }
    h.push_str("</figure></div>");
    h
}

fn measure_traces(m: &MeasureInput) -> String {
    let r = &m.report;
    let mut h = format!("<h3><code>{}</code></h3>", esc(&r.command.join(" ")));
    let domains: Vec<String> = r
        .domains
        .iter()
        .map(|d| {
            format!(
                "{} ({}): {}{}",
                d.name,
                d.source,
                d.avg_watts
                    .map_or("no reading".into(), |w| format!("{} W mean", sig(w))),
                d.peak_watts
                    .map_or(String::new(), |w| format!(", {} W peak", sig(w)))
            )
        })
        .collect();
    h.push_str(&p(&format!(
        "{} — {:.3} s, sampled every {:.0} ms; peak memory {}; {}",
        file_name(&m.path),
        r.duration_s,
        r.sample_interval_ms,
        r.peak_memory_bytes.map_or("unknown".into(), units::mib),
        domains.join("; ")
    )));
    if let Some(g) = wattbench_energy::gpus::describe(&r.gpus) {
        h.push_str(&p(&g));
    }
    match &m.trace {
        Some(t) => {
            h.push_str(&p(&format!("trace: {}", file_name(&t.path))));
            let sources: Vec<(&str, Source)> = r
                .domains
                .iter()
                .map(|d| (d.name.as_str(), d.source))
                .collect();
            h.push_str(&trace_plots(t, "measure", &sources));
        }
        None => h.push_str(&note(&format!(
            "No trace found beside {} (`measure` writes <name>.trace.csv; give it as an input).",
            m.path.display()
        ))),
    }
    h
}

fn training_plots(t: &TrainingResult) -> String {
    let mut h = format!("<h3>training run <code>{}</code></h3>", esc(&t.id));
    let per_domain: Vec<String> = t
        .energy
        .domains
        .iter()
        .map(|d| {
            format!(
                "{} ({}): {}",
                d.name,
                d.source,
                d.avg_watts
                    .map_or("no reading".into(), |w| format!("{} W mean", sig(w)))
            )
        })
        .collect();
    h.push_str(&p(&format!(
        "{} steps ({} measured over {:.2} s), energy per step {}; power over the measured \
         steps: {}; peak RSS {}{}.",
        t.steps,
        t.measured_steps,
        t.measured_wall_s,
        crate::energy::summary(&t.energy),
        if per_domain.is_empty() {
            "not metered".to_string()
        } else {
            per_domain.join("; ")
        },
        t.memory
            .host_peak_rss_bytes
            .map_or("unknown".into(), units::mib),
        t.memory
            .device_peak_bytes
            .map_or(String::new(), |b| format!(
                ", device peak {}",
                units::mib(b)
            ))
    )));
    let pts: Vec<(f64, f64)> = t
        .loss
        .curve
        .iter()
        // A loss that was not finite breaks the line (NaN) rather than being joined across.
        .map(|p| (p.step as f64, p.loss.map_or(f64::NAN, f64::from)))
        .collect();
    let gaps = pts.iter().any(|p| !p.1.is_finite());
    if pts.iter().all(|p| !p.1.is_finite()) {
        h.push_str(&note("No finite loss was recorded."));
    } else {
        h.push_str("<figure>");
        h.push_str(&plot::lines(
            &format!("{}: loss", t.model.label()),
            "step",
            "MSE on the step's batch",
            &[Line {
                label: String::new(),
                points: pts,
            }],
            &[],
            true,
            (620, 280),
        ));
        if gaps {
            h.push_str(
                "<figcaption>A break in the curve is a recorded step whose loss was not finite \
                 (the legend counts them as samples without a reading).</figcaption>",
            );
        }
        h.push_str("</figure>");
    }
    h
}

fn traces(inp: &Inputs) -> String {
    let mut h = String::new();
    h.push_str(&p(
        "Power per energy domain and memory over time, from `wattbench measure` traces (run \
         `wattbench measure -- wattbench train …` for a training run's trace), and each \
         training run's loss curve and mean power per step.",
    ));
    let trainings: Vec<&TrainingResult> = inp
        .runs
        .iter()
        .flat_map(|r| r.doc.trainings.iter())
        .collect();
    if inp.measures.is_empty() && inp.traces.is_empty() && trainings.is_empty() {
        h.push_str(&note(
            "No measure report, trace or training run among the inputs: give the report of \
             `wattbench measure` (its .trace.csv is found beside it) or a `wattbench train` \
             result.",
        ));
    }
    for m in &inp.measures {
        h.push_str(&measure_traces(m));
    }
    for t in &inp.traces {
        let _ = write!(h, "<h3>{}</h3>", esc(&file_name(&t.path)));
        h.push_str(&trace_plots(t, "trace", &[]));
    }
    for t in trainings {
        h.push_str(&training_plots(t));
    }
    h
}

// ------------------------------------------------------------------------------------ trend

/// Seconds in the unit that suits `max`: (factor, unit).
fn time_unit(max: f64) -> (f64, &'static str) {
    if max >= 1.0 {
        (1.0, "s")
    } else if max >= 1e-3 {
        (1e3, "ms")
    } else {
        (1e6, "µs")
    }
}

fn trend(inp: &Inputs, machines: &[String]) -> String {
    let mut h = String::new();
    let Some(hist) = &inp.history else {
        h.push_str(&note(
            inp.history_note
                .as_deref()
                .unwrap_or("No run history given (--history DB)."),
        ));
        return h;
    };
    let plotted: Vec<_> = hist
        .series
        .iter()
        .filter(|a| a.series.points.len() >= 2)
        .collect();
    let single = hist.series.len() - plotted.len();
    h.push_str(&p(&format!(
        "Median time per call of each case, run after run, from the history {} ({} runs \
         recorded; the cases and machines of the result files given). Change points \
         (E-Divisive means, permutation test) in red, with the ratio of the new level to the \
         old; software changes (known breaks) dashed grey.{}",
        hist.path.display(),
        hist.runs,
        if single > 0 {
            format!(" {single} series have a single run so far and are not drawn.")
        } else {
            String::new()
        }
    )));
    if plotted.is_empty() {
        h.push_str(&note(
            "No case has two runs in the history yet: record more runs (`wattbench run \
             --record`).",
        ));
        return h;
    }
    let mut order = plotted.clone();
    // Series with change points first; past MAX_TREND_PLOTS, a table.
    order.sort_by_key(|a| a.change_points.is_empty());
    let rest = order.split_off(order.len().min(MAX_TREND_PLOTS));
    h.push_str("<div class=\"grid\">");
    for a in order {
        let s = &a.series;
        let max = s.points.iter().map(|p| p.value).fold(0.0, f64::max);
        let (k, unit) = time_unit(max);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| ((i + 1) as f64, p.value * k))
            .collect();
        let mut marks: Vec<Mark> = a
            .known_breaks
            .iter()
            .map(|b| Mark {
                x: b.index as f64 + 0.5,
                label: if b.source_changed { "source" } else { "break" }.into(),
                change: false,
            })
            .collect();
        marks.extend(a.change_points.iter().map(|c| Mark {
            x: c.index as f64 + 0.5,
            label: format!("×{}", sig(c.ratio)),
            change: true,
        }));
        // A series is one case on one kind of machine: both named in full in the caption
        // (which wraps), shortly in the plot's title (which cannot).
        let m = (machines.len() > 1)
            .then(|| machines.iter().position(|x| *x == s.hardware_fp))
            .flatten();
        h.push_str("<figure>");
        h.push_str(&plot::lines(
            &trend_title(m, &s.case_id),
            "run",
            &format!("median time per call, {unit}"),
            &[Line {
                label: String::new(),
                points: pts,
            }],
            &marks,
            true,
            (560, 250),
        ));
        let text: Vec<String> = a
            .change_points
            .iter()
            .map(|c| {
                format!(
                    "change point at run {} ({}): ×{}, {} → {} (p = {}){}; came in {}..{}",
                    c.index + 1,
                    c.created_at,
                    sig(c.ratio),
                    units::seconds(c.before_median),
                    units::seconds(c.after_median),
                    sig(c.p_value),
                    if c.known_break {
                        format!(
                            " coinciding with a known break ({}): look there first, though it \
                             may not be the cause",
                            c.software_change.join(", ")
                        )
                    } else {
                        String::new()
                    },
                    crate::history::short_commit(c.previous_commit.as_deref()),
                    crate::history::short_commit(c.git_commit.as_deref())
                )
            })
            .collect();
        let _ = write!(
            h,
            "<figcaption><code>{}</code> on {}: {} runs, last {}{}</figcaption></figure>",
            esc(&s.case_id),
            esc(&machine_label(machines, &s.hardware_fp)),
            a.trend.runs,
            units::seconds(a.trend.last),
            if text.is_empty() {
                "; no change point".to_string()
            } else {
                format!("; {}", esc(&text.join("; ")))
            }
        );
    }
    h.push_str("</div>");
    if !rest.is_empty() {
        let rows: Vec<String> = rest
            .iter()
            .map(|a| {
                let changes: Vec<String> = a
                    .change_points
                    .iter()
                    .map(|c| format!("run {}: ×{}", c.index + 1, sig(c.ratio)))
                    .collect();
                format!(
                    "<td><code>{}</code></td>{}{}{}{}{}{}",
                    esc(&a.series.case_id),
                    td(&a.series.hardware_fp),
                    td(&if changes.is_empty() {
                        "none".to_string()
                    } else {
                        changes.join("; ")
                    }),
                    num(&a.trend.runs.to_string()),
                    num(&units::seconds(a.trend.last)),
                    num(&units::seconds(a.trend.level_median)),
                    num(&a
                        .trend
                        .drift_per_run
                        .map_or("—".into(), |d| format!("{:+.2} %", 100.0 * d)))
                )
            })
            .collect();
        let _ = write!(
            h,
            "<h4>{} more series (not drawn; those with change points first)</h4>",
            rest.len()
        );
        h.push_str(&table(
            &[
                "case",
                "machine",
                "change points",
                "runs",
                "last",
                "level median",
                "drift per run",
            ],
            &rows,
        ));
    }
    h
}

/// Series drawn in the trend section; the others are a table.
const MAX_TREND_PLOTS: usize = 24;

/// Characters of a trend plot's title that fit its width (560 px at 14 px).
const TREND_TITLE_CHARS: usize = 64;

/// A trend plot's title: the machine (`M2: `, index `m` from 0, when there are several) and
/// the case id, whose longest part (the shape) loses its end when the whole would not fit
/// [`TREND_TITLE_CHARS`]: op, mode, dtype, backend and device always show. The caption under
/// the plot names both in full.
fn trend_title(m: Option<usize>, id: &str) -> String {
    let prefix = m.map_or(String::new(), |m| format!("M{}: ", m + 1));
    let over = (prefix.chars().count() + id.chars().count()).saturating_sub(TREND_TITLE_CHARS);
    if over == 0 {
        return format!("{prefix}{id}");
    }
    let parts: Vec<&str> = id.split('/').collect();
    let longest = (0..parts.len())
        .max_by_key(|&i| (parts[i].chars().count(), std::cmp::Reverse(i)))
        .unwrap_or(0);
    let keep = parts[longest].chars().count().saturating_sub(over + 1);
    let cut: String = parts[longest].chars().take(keep).collect();
    let parts: Vec<String> = (parts.iter().enumerate())
        .map(|(i, p)| {
            if i == longest {
                format!("{cut}…")
            } else {
                p.to_string()
            }
        })
        .collect();
    format!("{prefix}{}", parts.join("/"))
}

// ------------------------------------------------------------------------- cross-hardware

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(quantile_sorted(&v, 0.5))
}

/// The 95 % bootstrap interval of the ratio of a case's median time on one machine to M1's,
/// as `compare` draws it: the runs of each machine, then their samples, resampled (seeded per
/// case). `None` when a run has fewer than [`BOOTSTRAP_MIN_SAMPLES`] samples, where a
/// percentile bootstrap covers far less than it claims.
fn ratio_interval(id: &str, m1: &[&[f64]], other: &[&[f64]]) -> Option<[f64; 2]> {
    let enough =
        |runs: &[&[f64]]| !runs.is_empty() && runs.iter().all(|r| r.len() >= BOOTSTRAP_MIN_SAMPLES);
    if !enough(m1) || !enough(other) {
        return None;
    }
    use wattbench_compare::{compare, stats};
    stats::ratio_of_medians_ci_clustered(
        m1,
        other,
        compare::DEFAULT_RESAMPLES,
        0.95,
        compare::DEFAULT_SEED ^ stats::stable_hash(&[id, compare::Metric::Time.as_str()]),
    )
}

fn hardware(inp: &Inputs, machines: &[String]) -> String {
    let mut h = String::new();
    if machines.len() < 2 {
        h.push_str(&p(&match machines.first() {
            Some(m) => format!(
                "Every result file comes from one machine ({m}); give result files from several \
                 machines to compare them case by case here."
            ),
            None => "No result file among the inputs.".into(),
        }));
        return h;
    }
    h.push_str(&p(&format!(
        "Per case, the median time per call on each machine (the median of the files' \
         medians when a machine has several), and its ratio to M1's (below 1: faster than \
         M1) with its 95 % bootstrap interval, drawn as `compare` draws it: each machine's \
         runs, then their samples, resampled (with 2 or 3 runs a machine it is too narrow; \
         none where a run has fewer than {BOOTSTRAP_MIN_SAMPLES} samples)."
    )));
    let mut ids: Vec<&str> = Vec::new();
    // (case id, machine) → each run's time statistics.
    let mut times: BTreeMap<(&str, usize), Vec<&TimeStats>> = BTreeMap::new();
    for r in &inp.runs {
        let m = machines
            .iter()
            .position(|x| *x == r.doc.environment.hardware_fingerprint())
            .unwrap_or(0);
        let ok = r
            .doc
            .cases
            .iter()
            .filter(|c| c.status == Status::Ok)
            .filter_map(|c| Some((c.id.as_str(), c.time.as_ref()?)));
        let tr = r
            .doc
            .trainings
            .iter()
            .filter(|t| t.status == Status::Ok)
            .filter_map(|t| Some((t.id.as_str(), t.time.as_ref()?)));
        for (id, t) in ok.chain(tr) {
            if !ids.contains(&id) {
                ids.push(id);
            }
            times.entry((id, m)).or_default().push(t);
        }
    }
    let med = |id: &str, m: usize| {
        median(
            times
                .get(&(id, m))
                .map_or(Vec::new(), |v| v.iter().map(|t| t.median_s).collect()),
        )
    };
    let samples = |id: &str, m: usize| -> Vec<&[f64]> {
        times.get(&(id, m)).map_or(Vec::new(), |v| {
            v.iter().map(|t| t.samples_s.as_slice()).collect()
        })
    };
    // (case, machine from 1) → the ratio to M1's and its interval.
    type Ratio = (f64, Option<[f64; 2]>);
    let ratios: BTreeMap<(&str, usize), Ratio> = ids
        .iter()
        .flat_map(|id| (1..machines.len()).map(move |m| (*id, m)))
        .filter_map(|(id, m)| {
            let a = med(id, 0).filter(|a| *a > 0.0)?;
            let b = med(id, m)?;
            Some((
                (id, m),
                (b / a, ratio_interval(id, &samples(id, 0), &samples(id, m))),
            ))
        })
        .collect();
    h.push_str("<ul>");
    for (i, m) in machines.iter().enumerate() {
        let _ = write!(h, "<li>M{}: {}</li>", i + 1, esc(m));
    }
    h.push_str("</ul>");
    let mut header: Vec<String> = vec!["case".into()];
    for i in 0..machines.len() {
        header.push(format!("M{} median", i + 1));
        if i > 0 {
            header.push(format!("M{} / M1 [95 % CI]", i + 1));
        }
    }
    let rows: Vec<String> = ids
        .iter()
        .map(|id| {
            let mut row = format!("<td><code>{}</code></td>", esc(id));
            for m in 0..machines.len() {
                row.push_str(&num(&med(id, m).map_or("—".into(), units::seconds)));
                if m > 0 {
                    row.push_str(&num(&match ratios.get(&(*id, m)) {
                        Some((r, Some([lo, hi]))) => {
                            format!("{} [{} – {}]", sig(*r), sig(*lo), sig(*hi))
                        }
                        Some((r, None)) => format!("{} [no interval]", sig(*r)),
                        None => "—".into(),
                    }));
                }
            }
            row
        })
        .collect();
    // The ratios drawn: one row per case both machines ran, one colour per machine.
    let bars: Vec<Bar> = ids
        .iter()
        .flat_map(|id| (1..machines.len()).map(move |m| (*id, m)))
        .filter_map(|(id, m)| {
            let &(r, ci) = ratios.get(&(id, m))?;
            Some(Bar {
                group: id.to_string(),
                series: format!("M{} / M1", m + 1),
                value: r,
                range: ci.map(|[lo, hi]| (lo, hi)),
                fill: Fill::Solid,
            })
        })
        .collect();
    if !bars.is_empty() {
        let _ = write!(
            h,
            "<figure>{}<figcaption>Median time per call relative to M1 (1, the line: as fast; \
             above 1: slower than M1), with its 95 % bootstrap interval where the samples allow \
             one.</figcaption></figure>",
            plot::hbars_with(
                "time relative to M1",
                "time per call / M1's",
                &bars,
                plot::BarOptions {
                    legend_fills: false,
                    reference: Some(1.0),
                }
            )
        );
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    h.push_str(&table(&header, &rows));
    h.push_str(&energy_across(inp));
    h
}

/// Energy, CO2e and share of the roof per operation, machine by machine (as `compare
/// --across-hardware`, at the world-average grid intensity).
fn energy_across(inp: &Inputs) -> String {
    let Ok(params) = wattbench_energy::carbon::CarbonParams::resolve(None, None, None, None) else {
        return String::new();
    };
    let set = wattbench_compare::ResultSet::from_runs(
        inp.runs
            .iter()
            .map(|r| (r.path.display().to_string(), r.doc.clone())),
    );
    let find = |fp: &str| ceilings_of(inp, fp).cloned();
    let a = crate::across::across(&[set], &params, &find);
    let mut h = String::from("<h3>Energy per operation</h3>");
    let c = &a.carbon;
    h.push_str(&p(&format!(
        "Gross energy per GFLOP of the mean call (the window's energy over its calls, divided \
         by the GFLOP of one call; {}), its source, CO2e per TFLOP at {} gCO2e/kWh ({}, {}; \
         source: {}) and PUE {}{} (intervals include the meters' uncertainty and the grid's \
         daily band) and the share of each machine's measured compute peak for the dtype (not the \
         roofline's attainable roof, which the roofline section gives). A machine's energy per \
         GFLOP is the median of its runs', its interval spans its runs' intervals (with one run, \
         its meters' uncertainty alone, marked). The least-energy machine is named only where \
         every machine's energy comes from the same kind of source and covers the same things \
         (package, DRAM, GPU), every run had as many GPU workers at once, each machine's runs \
         share their conditions, and its interval lies wholly below the others'.",
        wattbench_core::energy::GROSS_MEANS,
        sig(c.intensity_g_per_kwh),
        c.region_name,
        c.intensity_year
            .map_or("year unknown".into(), |y| y.to_string()),
        c.intensity_source,
        sig(c.pue),
        if c.pue_is_default {
            " (the default: IT energy only, no facility overhead)"
        } else {
            ""
        }
    )));
    let machines = &a;
    let rows: Vec<String> = a
        .rows
        .iter()
        .flat_map(|r| {
            r.cells.iter().enumerate().map(move |(i, c)| {
                let best = r.least_energy.as_deref() == Some(c.machine.as_str());
                let src: Vec<&str> = c.energy_sources.iter().map(|s| s.as_str()).collect();
                // The row's note (why no machine is named) under the case id.
                let first = if i == 0 {
                    format!(
                        "<td><code>{}</code>{}</td>",
                        esc(&r.id),
                        r.note.as_deref().map_or(String::new(), |n| format!(
                            "<br><span class=\"reason\">{}</span>",
                            esc(n)
                        ))
                    )
                } else {
                    "<td></td>".to_string()
                };
                format!(
                    "{first}<td>{}{}</td>{}{}{}{}",
                    esc(&c.machine),
                    if best { " <b>least energy</b>" } else { "" },
                    num(&c.gflops_per_s.map_or("—".into(), sig)),
                    num(&c.fraction_of_roof.map_or("—".into(), |f| {
                        format!(
                            "{}{}",
                            pct(f),
                            crate::across::quick_mark(machines, &c.machine)
                        )
                    })),
                    num(&c.joules_per_gflop.map_or("no energy".into(), |j| {
                        format!(
                            "{} {} ({}) {}{}",
                            sig(j.value),
                            units::relative(&j),
                            src.join("+"),
                            c.energy_scopes.join("+"),
                            crate::across::spread_mark(c)
                        )
                    })),
                    num(&c
                        .co2e_kg_per_tflop
                        .map_or("—".into(), |i| units::interval(&i, "g", 1000.0))),
                )
            })
        })
        .collect();
    h.push_str(&table(
        &[
            "case",
            "machine",
            "GFLOP/s",
            "of peak",
            "J/GFLOP (source) covers",
            "CO2e/TFLOP",
        ],
        &rows,
    ));
    for (machine, n, cases) in crate::across::cell_notes(&a) {
        h.push_str(&note(&format!("{machine} ({cases} case(s)): {n}")));
    }
    let failed = crate::across::not_verified_lines(&a);
    if !failed.is_empty() {
        h.push_str(&p("Failed or skipped on a machine (not compared):"));
        h.push_str("<ul>");
        for line in failed {
            let _ = write!(h, "<li>{}</li>", esc(&line));
        }
        h.push_str("</ul>");
    }
    h
}

// ----------------------------------------------------------------------------------- carbon

fn wh(i: &Interval) -> String {
    units::interval(i, "Wh", 1000.0)
}

fn carbon(inp: &Inputs) -> String {
    let mut h = String::new();
    let trainings: Vec<&TrainingResult> = inp
        .runs
        .iter()
        .flat_map(|r| r.doc.trainings.iter())
        .filter(|t| t.projection.is_some())
        .collect();
    if inp.measures.is_empty() && trainings.is_empty() {
        h.push_str(&note(
            "No carbon figure among the inputs: `wattbench measure -- CMD` and `wattbench \
             train --project-steps N` produce them (with --region, --pue).",
        ));
        return h;
    }
    h.push_str(&p(
        "IT energy (the metered domains), then × PUE, then × the grid's carbon intensity. \
         Every interval carries the meters' uncertainty and the range the grid intensity takes \
         over a day around its yearly mean.",
    ));
    if !inp.measures.is_empty() {
        h.push_str("<h3>Measured commands</h3>");
        for m in &inp.measures {
            let r = &m.report;
            let a = &r.assumptions;
            let c = &a.carbon;
            let _ = write!(h, "<h4><code>{}</code></h4>", esc(&r.command.join(" ")));
            // Each figure from the total says where it is read what it rests on: its source,
            // and that it lacks a domain.
            let partial = format!(
                "{}{}",
                source_mark(&r.total.sources, false),
                partial_suffix(&r.total.missing)
            );
            let mut rows = vec![
                (
                    "IT energy",
                    r.energy_kwh
                        .as_ref()
                        .map_or("no domain had a reading".into(), |i| wh(i) + &partial),
                ),
                (
                    "facility energy (× PUE)",
                    r.facility_kwh
                        .as_ref()
                        .map_or("—".into(), |i| wh(i) + &partial),
                ),
                (
                    "emissions",
                    r.co2e_kg.as_ref().map_or("—".into(), |i| {
                        units::interval(i, "g CO2e", 1000.0) + &partial
                    }),
                ),
                (
                    "energy is",
                    energy_is(&r.total.sources, false, &partial_suffix(&r.total.missing)),
                ),
                (
                    "energy sources",
                    format!(
                        "{}; total adds {}; left out: {}",
                        a.sources.join(", "),
                        a.energy_includes.join(" + "),
                        if a.energy_excludes.is_empty() {
                            "nothing".into()
                        } else {
                            a.energy_excludes.join("; ")
                        }
                    ),
                ),
            ];
            if let Some(cost) = &r.cost {
                rows.push((
                    "cost",
                    units::interval(cost, "(currency of the price)", 1.0) + &partial,
                ));
            }
            if let Some(pj) = &r.projection {
                rows.push((
                    "projection",
                    format!(
                        "{} of {} steps (×{}): {}{partial}, {}; {}",
                        pj.steps_done,
                        pj.total_steps,
                        sig(pj.factor),
                        pj.energy_kwh.as_ref().map_or("—".into(), wh),
                        pj.co2e_kg.as_ref().map_or("—".into(), |i| {
                            units::interval(i, "g CO2e", 1000.0) + &partial
                        }),
                        pj.method
                    ),
                ));
            }
            rows.extend(assumption_rows(c));
            h.push_str(&key_values(&rows, &a.notes));
        }
    }
    if !trainings.is_empty() {
        h.push_str("<h3>Projected training runs</h3>");
        for t in trainings {
            let Some(pj) = &t.projection else { continue };
            let _ = write!(h, "<h4><code>{}</code></h4>", esc(&t.id));
            let missing = partial_suffix(&t.energy.missing_domains());
            let partial = format!(
                "{}{missing}",
                source_mark(&t.energy.total_sources, pj.energy_estimated)
            );
            let mut rows = vec![
                (
                    "full run",
                    format!(
                        "{} steps ({} samples), projected from {} measured steps",
                        pj.total_steps, pj.total_samples, pj.measured_steps
                    ),
                ),
                ("duration", units::interval(&pj.duration_s, "s", 1.0)),
                (
                    "IT energy",
                    pj.energy_kwh
                        .as_ref()
                        .map_or("no meter had a reading".into(), |i| {
                            units::interval(i, "kWh", 1.0) + &partial
                        }),
                ),
                (
                    "facility energy (× PUE)",
                    pj.facility_kwh
                        .as_ref()
                        .map_or("—".into(), |i| units::interval(i, "kWh", 1.0) + &partial),
                ),
                (
                    "emissions",
                    pj.co2e_kg.as_ref().map_or("—".into(), |i| {
                        units::interval(i, "kg CO2e", 1.0) + &partial
                    }),
                ),
                (
                    "energy is",
                    energy_is(&t.energy.total_sources, pj.energy_estimated, &missing),
                ),
            ];
            if let Some(cost) = &pj.cost {
                rows.push((
                    "cost",
                    units::interval(cost, "(currency of the price)", 1.0) + &partial,
                ));
            }
            rows.extend(assumption_rows(&pj.carbon));
            h.push_str(&key_values(&rows, &pj.assumptions));
        }
    }
    h
}

/// ` (ESTIMATED: a model, not a measurement)`, ` (measured)`, ` (MIXES measured and
/// integrated)`: where a total's energy comes from (`estimated`: it is known to be partly a
/// model), written beside every figure taken from it, as the backend tables and the bars' fills
/// say it; nothing without a source.
fn source_mark(sources: &[Source], estimated: bool) -> String {
    let named = wattbench_core::energy::sources_named(sources);
    let estimated = estimated || sources.contains(&Source::Estimated);
    match (estimated, sources.len() > 1) {
        (false, _) if sources.is_empty() => String::new(),
        (true, false) => " (ESTIMATED: a model, not a measurement)".into(),
        (true, true) => format!(" (partly ESTIMATED: MIXES {named})"),
        (false, false) => format!(" ({named})"),
        (false, true) => format!(" (MIXES {named})"),
    }
}

/// The "energy is" row: the total's sources in words, then `partial` (its PARTIAL suffix).
fn energy_is(sources: &[Source], estimated: bool, partial: &str) -> String {
    let named = wattbench_core::energy::sources_named(sources);
    if estimated || sources.contains(&Source::Estimated) {
        // What it mixes, where it does.
        let of = if sources.len() > 1 {
            format!(": MIXES {named}")
        } else {
            String::new()
        };
        format!("ESTIMATED (partly or wholly a model, not a measurement{of}){partial}")
    } else if named.is_empty() {
        format!("no source: no domain had a reading{partial}")
    } else {
        // Counters, or power readings integrated: say which.
        format!("{named}{partial}")
    }
}

/// `; PARTIAL: without A, B` for a total that lacks the domains `missing` (a domain it adds
/// had no reading), else nothing: written beside every figure taken from it.
fn partial_suffix<S: AsRef<str>>(missing: &[S]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = missing.iter().map(AsRef::as_ref).collect();
        format!("; PARTIAL: without {}", names.join(", "))
    }
}

/// A table of (name, value) rows, then `notes` as a list.
fn key_values(rows: &[(&str, String)], notes: &[String]) -> String {
    let mut h = String::from("<table>");
    for (k, v) in rows {
        let _ = write!(
            h,
            "<tr><th>{}</th><td class=\"reason\">{}</td></tr>",
            esc(k),
            esc(v)
        );
    }
    h.push_str("</table>");
    if !notes.is_empty() {
        h.push_str("<ul>");
        for n in notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>");
    }
    h
}

fn assumption_rows(c: &wattbench_core::result::CarbonAssumptions) -> Vec<(&'static str, String)> {
    vec![
        (
            "grid intensity",
            format!(
                "{} gCO2e/kWh, {} ({}), {}",
                sig(c.intensity_g_per_kwh),
                c.region_name,
                c.region,
                c.intensity_year
                    .map_or("year unknown".into(), |y| y.to_string())
            ),
        ),
        (
            "intensity range",
            format!(
                "{}–{} gCO2e/kWh: {}",
                sig(c.intensity_range_g_per_kwh[0]),
                sig(c.intensity_range_g_per_kwh[1]),
                c.intensity_range_basis
            ),
        ),
        ("intensity source", c.intensity_source.clone()),
        (
            "PUE",
            format!(
                "{}{}",
                sig(c.pue),
                if c.pue_is_default {
                    " (the default: IT energy only, no facility overhead)"
                } else {
                    ""
                }
            ),
        ),
        (
            "price per kWh",
            c.price_per_kwh.map_or("not given".into(), sig),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_keep_two_significant_digits_below_ten_percent() {
        assert_eq!(pct(0.0004), "0.040 %");
        assert_eq!(pct(0.031), "3.1 %");
        assert_eq!(pct(0.0994), "9.9 %");
        assert_eq!(pct(0.5), "50 %");
        assert_eq!(pct(0.0), "0 %");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn a_trend_title_fits_and_keeps_op_mode_dtype_backend_and_machine() {
        let id = "conv2d/infer/n1_c256_h14_w14_k256_r3_s3_p1x1_s1x1/bf16/tch/cpu";
        let t = trend_title(Some(1), id);
        assert!(t.chars().count() <= TREND_TITLE_CHARS, "{t}");
        assert!(t.starts_with("M2: conv2d/infer/n1_c256_h14"), "{t}");
        assert!(t.ends_with("…/bf16/tch/cpu"), "{t}");
        // One that fits is whole; one machine is not numbered.
        assert_eq!(
            trend_title(None, "gemm/infer/m1_n2_k3/f32/candle/cpu"),
            "gemm/infer/m1_n2_k3/f32/candle/cpu"
        );
        // Characters, not bytes.
        let t = trend_title(Some(0), &format!("op/mode/{}/f32/b/cpu", "é".repeat(80)));
        assert_eq!(t.chars().count(), TREND_TITLE_CHARS, "{t}");
    }

    #[test]
    fn each_energy_figure_names_its_source() {
        use Source::*;
        assert_eq!(
            source_mark(&[Estimated], false),
            " (ESTIMATED: a model, not a measurement)"
        );
        assert_eq!(
            source_mark(&[Measured, Estimated], false),
            " (partly ESTIMATED: MIXES measured and estimated)"
        );
        // Known to be estimated though the sources were not recorded.
        assert_eq!(
            source_mark(&[], true),
            " (ESTIMATED: a model, not a measurement)"
        );
        assert_eq!(source_mark(&[Measured], false), " (measured)");
        assert_eq!(
            source_mark(&[Measured, Integrated], false),
            " (MIXES measured and integrated)"
        );
        assert_eq!(source_mark(&[], false), "");
    }

    #[test]
    fn an_empty_report_has_every_section_and_says_what_is_missing() {
        let html = render(&Inputs::default());
        for (id, _) in SECTIONS {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(html.contains("No result file"));
        assert!(!html.contains("<script"));
    }
}
