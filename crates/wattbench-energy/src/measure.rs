//! `wattbench measure -- <command>`: run any command directly (no shell), forward SIGINT,
//! SIGTERM, SIGHUP and SIGQUIT to it, sample every meter while it runs, and build the report.
//!
//! The command runs in a cgroup (v2) of its own where the system allows it ([`crate::cgroup`]):
//! its CPU time and memory then include every process it starts, even those that double-fork
//! out of its tree. Elsewhere they cover its process tree, and processes seen leaving the tree
//! are reported. RAPL and NVML counters cover the whole package or device (other processes
//! included), and the report says so per domain.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::carbon::{carbon, CarbonParams};
use crate::cgroup::Cgroup;
use crate::meters::{CpuScope, MeterConfig, Meters, ProcessTree};
use crate::procfs::{self, TreeSnapshot};
use crate::sampler::{Sampler, Trace};
use crate::signals::{self, ChildExitsSeen, ChildSlot, Delivery, Forwarder, MEASURE_LOCK};
use crate::{total_energy, EnergyTotal, Interval, Source};
use crate::{DomainEnergy, GpuRecord, MeterInfo};
use crate::{EnergyError, ReadContext};
use wattbench_core::result::CarbonAssumptions;
pub use wattbench_core::result::Projection;
use wattbench_core::units::sig;

/// Exit code when the command cannot be found (as shells use).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;

/// `accounting` of a report whose command did not start (not found, not executable, or
/// stopped by a signal before it started).
const NOT_STARTED: &str = "not started";

/// A `--steps-done` / `--total-steps` projection request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectionSpec {
    /// Steps the measured run completed.
    pub steps_done: u64,
    /// Steps of the full run.
    pub total_steps: u64,
}

/// What to run and how to account for it.
#[derive(Debug, Clone)]
pub struct MeasureOptions {
    /// Program and arguments, run directly (never through a shell).
    pub command: Vec<OsString>,
    /// Meter configuration; its `cpu_scope` is replaced by the command's process tree.
    pub meter: MeterConfig,
    /// Intensity, PUE and price.
    pub carbon: CarbonParams,
    /// Optional projection to a full run.
    pub projection: Option<ProjectionSpec>,
    /// Follow the command in a cgroup of its own where possible (default); false follows its
    /// process tree.
    pub cgroup: bool,
    /// How long to measure the counters' idle power before the command starts: `None`, the
    /// meters' minimum window (at least 0.5 s) when a counter exists; zero, no baseline.
    pub idle: Option<Duration>,
}

/// Which intensity, PUE and sources every carbon figure used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assumptions {
    /// Grid intensity (with its range), PUE and price.
    pub carbon: CarbonAssumptions,
    /// Sources of the figures: the intensity's, and each energy source used.
    pub sources: Vec<String>,
    /// Domains in the energy total.
    pub energy_includes: Vec<String>,
    /// Domains left out of the energy total, and why.
    pub energy_excludes: Vec<String>,
    /// Caveats.
    pub notes: Vec<String>,
}

/// Device memory peak of one GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// GPU domain name.
    pub gpu: String,
    /// Highest sampled memory used, bytes.
    pub peak_bytes: Option<u64>,
}

/// The format of [`MeasureReport`]: bumped on incompatible changes.
pub const SCHEMA: &str = "wattbench-measure/2";

/// The JSON report of one measured command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureReport {
    /// Report format: [`SCHEMA`].
    pub schema: String,
    /// The command as run.
    pub command: Vec<String>,
    /// Start time (RFC 3339, UTC).
    pub started_at: String,
    /// The exit code `measure` returns: the child's, 128 + signal, 127 not found, 126.
    pub exit_code: i32,
    /// The signal that killed the child, if any.
    pub signal: Option<String>,
    /// Why the command did not run or ended abnormally, in words.
    pub error: Option<String>,
    /// Wall time from spawn to exit, s.
    pub duration_s: f64,
    /// One entry per energy domain.
    pub domains: Vec<DomainEnergy>,
    /// What the energy total adds up.
    pub total: EnergyTotal,
    /// Peak host memory of the command and everything it started, bytes; null when it
    /// could not be observed (never this process's own memory).
    pub peak_memory_bytes: Option<u64>,
    /// How `peak_memory_bytes` was obtained.
    pub peak_memory_source: String,
    /// How the command's processes were followed: its own cgroup, or its process tree.
    pub accounting: String,
    /// Peak device memory per GPU.
    pub peak_device_memory: Vec<DeviceMemory>,
    /// CPU seconds of the command and everything it started (the cgroup's `cpu.stat`, or
    /// the kernel's accounting of the reaped tree), the same figure the CPU estimate uses.
    pub cpu_seconds: Option<f64>,
    /// IT energy, kWh (null when no domain had a reading).
    pub energy_kwh: Option<Interval>,
    /// Facility energy (× PUE), kWh.
    pub facility_kwh: Option<Interval>,
    /// kg CO2e.
    pub co2e_kg: Option<Interval>,
    /// Cost at the given price.
    pub cost: Option<Interval>,
    /// Intensity, PUE, sources.
    pub assumptions: Assumptions,
    /// Full-run projection, if asked for.
    pub projection: Option<Projection>,
    /// Signals the measuring process received, and whether they were forwarded.
    pub signals_received: Vec<String>,
    /// Every meter, available or not.
    pub meters: Vec<MeterInfo>,
    /// NVML's description of the GPUs at the end of the run.
    pub gpus: Vec<GpuRecord>,
    /// Sampler interval actually used, ms: the requested one, shortened where a counter
    /// could otherwise wrap unseen.
    pub sample_interval_ms: f64,
    /// Sampler interval requested, ms.
    pub requested_interval_ms: f64,
    /// Sampler ticks taken.
    pub samples: usize,
    /// Each counter domain over the idle window measured before the command started; `[]`
    /// when there was none (no counter, only the CPU estimate, which has no idle part; or an
    /// idle window of 0 s).
    #[serde(default)]
    pub idle_baseline: Vec<DomainEnergy>,
    /// The energy total above idle: each counter's figure minus its idle power over the
    /// command's window (uncertainties added, not clamped at 0), the CPU estimate as it is;
    /// null unless every counter in the total has an idle figure. Carbon uses the gross total.
    #[serde(default)]
    pub net_joules: Option<Interval>,
    /// Everything that qualifies these figures, in one place: meter warnings, per-domain
    /// warnings (short windows, possible missed wraps, a counter and power readings that
    /// disagree), processes that escaped accounting.
    pub warnings: Vec<String>,
}

/// Report, trace and exit code of a measurement.
#[derive(Debug, Clone)]
pub struct MeasureOutcome {
    /// The report.
    pub report: MeasureReport,
    /// The power/memory trace.
    pub trace: Trace,
    /// The exit code to return.
    pub exit_code: i32,
}

impl MeasureReport {
    /// Column titles of [`MeasureReport::summary_rows`].
    pub const SUMMARY_HEADER: [&'static str; 7] = [
        "domain", "source", "energy J", "± J", "avg W", "peak W", "note",
    ];

    /// One row per domain, formatted for a table.
    pub fn summary_rows(&self) -> Vec<[String; 7]> {
        let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
        self.domains
            .iter()
            .map(|d| {
                [
                    d.name.clone(),
                    d.source.to_string(),
                    d.joules.map_or("null".into(), |j| format!("{j:.3}")),
                    f(d.uncertainty_j, 3),
                    f(d.avg_watts, 2),
                    f(d.peak_watts, 2),
                    d.reason
                        .clone()
                        .or_else(|| {
                            // Left out of the total: why; the estimate: what it is and the TDP
                            // it assumes.
                            if !d.in_total {
                                d.note.clone()
                            } else if d.source == Source::Estimated {
                                Some(match &d.assumptions {
                                    Some(a) => format!(
                                        "{} ({} W TDP, {}; ±{:.0} %)",
                                        d.note.clone().unwrap_or_default(),
                                        sig(a.tdp_watts),
                                        a.tdp_source,
                                        a.relative_uncertainty * 100.0
                                    ),
                                    None => d.note.clone().unwrap_or_default(),
                                })
                            } else {
                                None
                            }
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect()
    }

    /// Short lines for below the table: totals, carbon and where the figures come from.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        let iv = |i: &Interval, unit: &str, k: f64| {
            format!(
                "{} {unit} [{}, {}]",
                sig(i.value * k),
                sig(i.low * k),
                sig(i.high * k)
            )
        };
        if self.accounting == NOT_STARTED {
            v.push(format!(
                "the command did not start (exit status {}: {})",
                self.exit_code,
                match self.exit_code {
                    EXIT_NOT_FOUND => "not found".to_string(),
                    EXIT_CANNOT_EXECUTE => "cannot be executed".to_string(),
                    code => format!(
                        "stopped by {} before it started",
                        signals::signal_name(code - 128)
                    ),
                }
            ));
        } else {
            v.push(format!(
                "command exited with {}{} after {:.3} s",
                self.exit_code,
                self.signal
                    .as_ref()
                    .map(|s| format!(" (killed by {s})"))
                    .unwrap_or_default(),
                self.duration_s
            ));
        }
        if let Some(e) = &self.error {
            v.push(format!("error: {e}"));
        }
        match (&self.energy_kwh, &self.co2e_kg) {
            (Some(e), Some(c)) => {
                let named = crate::sources_named(&self.total.sources);
                v.push(format!(
                    "energy: {} = {} ({}){}",
                    iv(e, "Wh", 1000.0),
                    self.total.includes.join(" + "),
                    if self.total.mixed {
                        format!("MIXES {named} figures")
                    } else {
                        format!("one kind of source: {named}")
                    },
                    if self.total.missing.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; PARTIAL: without {} (no reading), which the energy, carbon and \
                             cost figures leave out",
                            self.total.missing.join(", ")
                        )
                    }
                ));
                let c_a = &self.assumptions.carbon;
                if let (Some(f), false) = (&self.facility_kwh, c_a.pue_is_default) {
                    v.push(format!(
                        "facility energy: {} (x PUE {:.2}: cooling and facility overhead)",
                        iv(f, "Wh", 1000.0),
                        c_a.pue
                    ));
                }
                v.push(format!(
                    "carbon: {} CO2e of the {} energy at {} g/kWh ({}, {}), PUE {:.2}{}",
                    iv(c, "g", 1000.0),
                    if c_a.pue_is_default { "IT" } else { "facility" },
                    c_a.intensity_g_per_kwh,
                    c_a.region,
                    c_a.intensity_year
                        .map_or("year unknown".into(), |y| y.to_string()),
                    c_a.pue,
                    if c_a.pue_is_default {
                        " (default: IT energy only, no cooling or facility overhead)"
                    } else {
                        ""
                    }
                ));
                v.push(format!(
                    "  the CO2e interval includes the grid intensity's range, {:.0}-{:.0} g/kWh: {}",
                    c_a.intensity_range_g_per_kwh[0],
                    c_a.intensity_range_g_per_kwh[1],
                    c_a.intensity_range_basis
                ));
                v.push(format!("  intensity source: {}", c_a.intensity_source));
                if let Some(cost) = &self.cost {
                    v.push(format!(
                        "cost: {} ({} energy x the price per kWh)",
                        iv(cost, "(currency of the price per kWh)", 1.0),
                        if c_a.pue_is_default { "IT" } else { "facility" }
                    ));
                }
            }
            _ => v.push("energy: no domain had a reading; no carbon figure".into()),
        }
        match (&self.net_joules, self.idle_baseline.is_empty()) {
            (Some(n), false) => {
                let idle: Vec<String> = self
                    .idle_baseline
                    .iter()
                    .filter_map(|d| Some(format!("{} {} W", d.name, sig(d.avg_watts?))))
                    .collect();
                v.push(format!(
                    "net of idle: {} (gross minus the idle power measured for {:.1} s before \
                     the command: {})",
                    iv(n, "Wh", 1.0 / 3600.0),
                    self.idle_baseline
                        .iter()
                        .map(|d| d.window_s)
                        .fold(0.0, f64::max),
                    idle.join(", ")
                ));
            }
            (None, false) if !self.total.missing.is_empty() => v.push(format!(
                "net of idle: none (the total is partial: {} had no reading)",
                self.total.missing.join(", ")
            )),
            (None, false) => v.push(
                "net of idle: none (a counter in the total has no idle figure; see \
                 idle_baseline)"
                    .into(),
            ),
            (_, true) => {}
        }
        if let Some(c) = self.cpu_seconds {
            v.push(format!("cpu time: {c:.3} s ({})", self.accounting));
        }
        match self.peak_memory_bytes {
            Some(m) => v.push(format!(
                "peak memory: {:.1} MiB ({})",
                m as f64 / 1048576.0,
                self.peak_memory_source
            )),
            None => v.push(format!(
                "peak memory: unknown ({})",
                self.peak_memory_source
            )),
        }
        if let Some(p) = &self.projection {
            if let (Some(e), Some(c)) = (&p.energy_kwh, &p.co2e_kg) {
                v.push(format!(
                    "projection to {} steps (linear, x{:.2}, start-up included): {}, {} CO2e, \
                     {:.0} s",
                    p.total_steps,
                    p.factor,
                    iv(e, "Wh", 1000.0),
                    iv(c, "g", 1000.0),
                    p.duration_s
                ));
            }
        }
        if let Some(g) = crate::gpus::describe(&self.gpus) {
            v.push(g);
        }
        v.push(format!(
            "sampled every {:.0} ms ({} samples)",
            self.sample_interval_ms, self.samples
        ));
        for c in self.domains.iter().filter_map(|d| d.power_check.as_ref()) {
            v.push(format!("cross-check {}", c.line()));
        }
        // What the figures assume (the sources a total mixes, what counters and the estimate
        // cover, the PUE): in the JSON's assumptions.notes, and here, where they are read.
        for n in &self.assumptions.notes {
            v.push(format!("note: {n}"));
        }
        for w in &self.warnings {
            v.push(format!("warning: {w}"));
        }
        v
    }
}

/// Validates a projection request.
pub fn check_projection(
    steps_done: Option<u64>,
    total_steps: Option<u64>,
) -> Result<Option<ProjectionSpec>, EnergyError> {
    match (steps_done, total_steps) {
        (None, None) => Ok(None),
        (Some(d), Some(t)) if d > 0 && t >= d => Ok(Some(ProjectionSpec {
            steps_done: d,
            total_steps: t,
        })),
        (Some(_), Some(_)) => Err(EnergyError::Usage(
            "--steps-done must be > 0 and no more than --total-steps".into(),
        )),
        _ => Err(EnergyError::Usage(
            "--total-steps and --steps-done go together".into(),
        )),
    }
}

/// Projects a partial run linearly to the full number of steps.
pub fn project(
    spec: ProjectionSpec,
    duration_s: f64,
    energy_kwh: Option<Interval>,
    co2e_kg: Option<Interval>,
    cost: Option<Interval>,
) -> Projection {
    let k = spec.total_steps as f64 / spec.steps_done as f64;
    Projection {
        steps_done: spec.steps_done,
        total_steps: spec.total_steps,
        factor: k,
        duration_s: duration_s * k,
        energy_kwh: energy_kwh.map(|e| e.scale(k)),
        co2e_kg: co2e_kg.map(|c| c.scale(k)),
        cost: cost.map(|c| c.scale(k)),
        method: "linear: measured figures x total_steps / steps_done, interval scaled alike; \
                 start-up work (imports, data loading, compilation) is projected too, so a \
                 short partial run overstates the full run"
            .into(),
    }
}

struct Exit {
    code: i32,
    signal: Option<String>,
    /// CPU seconds of the child and the descendants it reaped (wait4's rusage).
    cpu_seconds: f64,
}

/// Waits for the command to exit, stops the sampler, and reaps the command (whatever became
/// of the sampler).
fn wait_child(
    slot: &ChildSlot,
    pid: i32,
    sampler: Sampler,
) -> (
    Result<Exit, EnergyError>,
    Result<crate::sampler::SamplerOutput, EnergyError>,
) {
    // Wait for the exit without reaping, so the pid stays ours while we stop the sampler.
    loop {
        // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid fills the siginfo we own; WNOWAIT leaves the child unreaped.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            let out = sampler.finish();
            return (
                Err(EnergyError::Os {
                    call: "waitid",
                    source: e,
                }),
                out,
            );
        }
    }
    let out = sampler.finish();
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = slot.reap_with(|| loop {
        // SAFETY: wait4 fills the status and rusage we own, for our own child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r >= 0 || std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            break r;
        }
    });
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return (
            Err(EnergyError::Os {
                call: "wait4",
                source: e,
            }),
            out,
        );
    }
    let (code, signal) = if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        (128 + s, Some(signals::signal_name(s)))
    } else {
        (1, None)
    };
    (
        Ok(Exit {
            code,
            signal,
            // Not ru_maxrss: it counts the memory of this process copied at fork, before exec.
            cpu_seconds: procfs::rusage_cpu_seconds(&ru),
        }),
        out,
    )
}

/// How the command's processes were followed, and what that found.
struct Accounting {
    /// In words, for the report.
    how: String,
    cpu_seconds: Option<f64>,
    /// The kernel's peak, where it keeps one (the cgroup's `memory.peak`).
    memory_peak: Option<u64>,
    warnings: Vec<String>,
}

/// The command's processes, followed by a cgroup of their own or by the process tree.
enum Followed {
    Cgroup(Arc<Cgroup>),
    Tree(ProcessTree, String),
}

impl Followed {
    fn new(cgroup: bool) -> Followed {
        if !cgroup {
            return Followed::Tree(ProcessTree::adopting(), "disabled by --no-cgroup".into());
        }
        match Cgroup::create() {
            Ok(g) => Followed::Cgroup(Arc::new(g)),
            Err(why) => Followed::Tree(ProcessTree::adopting(), why),
        }
    }
    fn scope(&self) -> CpuScope {
        match self {
            Followed::Cgroup(g) => CpuScope::Cgroup(g.clone()),
            Followed::Tree(t, _) => CpuScope::Tree(t.clone()),
        }
    }
    fn command(&self, opts: &MeasureOptions) -> std::process::Command {
        let mut cmd = std::process::Command::new(&opts.command[0]);
        cmd.args(&opts.command[1..]);
        if let Followed::Cgroup(g) = self {
            g.join_on_spawn(&mut cmd);
        }
        cmd
    }
    /// After the command exited (and was reaped, with `reaped_cpu_s` from wait4).
    fn finish(&self, reaped_cpu_s: f64, sampled_cpu_s: f64) -> Accounting {
        match self {
            Followed::Cgroup(g) => {
                let cpu = g.cpu_seconds();
                let memory_peak = g.memory_peak();
                let left = g.release();
                let mut warnings = Vec::new();
                warnings.extend(left_running(&left));
                let (cpu_seconds, how) = match cpu {
                    Ok(c) => (
                        Some(c),
                        format!(
                            "its own cgroup ({}): every process it started is counted, \
                             including any that left its process tree",
                            g.path().display()
                        ),
                    ),
                    Err(e) => {
                        warnings.push(format!(
                            "the cgroup's CPU time could not be read ({e}); the process \
                             tree's is used"
                        ));
                        (
                            Some(reaped_cpu_s.max(sampled_cpu_s)),
                            "its process tree (cgroup unreadable)".into(),
                        )
                    }
                };
                Accounting {
                    how,
                    cpu_seconds,
                    memory_peak,
                    warnings,
                }
            }
            Followed::Tree(t, why) => {
                let mut warnings = Vec::new();
                let adopted = t.adopted_snapshot();
                warnings.extend(left_running(&t.still_running()));
                let escaped = t.escaped();
                if escaped > 0 {
                    warnings.push(format!(
                        "{escaped} process(es) left the command's process tree (double fork \
                         or daemon); wattbench adopted them as child subreaper and counted \
                         their CPU time, but time they spent before being adopted by a \
                         process that had already exited may be missing. A cgroup of its own \
                         (cgroup v2, as root or in a delegated cgroup) counts them exactly"
                    ));
                }
                let how = if t.is_adopting() {
                    format!(
                        "its process tree, with processes that leave it adopted and counted \
                         (no cgroup of its own: {why})"
                    )
                } else {
                    warnings.push(
                        "processes that leave the command's process tree (double fork, \
                         daemons) are not followed here: no cgroup could be made and this \
                         process could not become a child subreaper"
                            .into(),
                    );
                    format!("its process tree (no cgroup of its own: {why})")
                };
                Accounting {
                    how,
                    cpu_seconds: Some((reaped_cpu_s + adopted.cpu_seconds).max(sampled_cpu_s)),
                    memory_peak: None,
                    warnings,
                }
            }
        }
    }
    fn abandon(&self) {
        if let Followed::Cgroup(g) = self {
            g.release();
        }
    }
}

/// What the report says of processes the command started that were still running when it
/// exited (`pids`), if any: the same whether a cgroup or the process tree followed them.
fn left_running<P: std::fmt::Display>(pids: &[P]) -> Option<String> {
    (!pids.is_empty()).then(|| {
        format!(
            "{} process(es) the command started were still running when it exited (background \
             jobs or daemons: {}); their CPU time until then is counted, anything after is \
             not. They were left running",
            pids.len(),
            pids.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Runs the command under every meter and builds the report. Returns `Err` only for bad
/// usage or a failure of the measuring process itself; a command that is not found, fails or
/// dies on a signal still yields a report.
pub fn measure(opts: &MeasureOptions) -> Result<MeasureOutcome, EnergyError> {
    if opts.command.is_empty() {
        return Err(EnergyError::Usage(
            "no command given: wattbench measure [OPTIONS] -- <command> [args...]".into(),
        ));
    }
    if opts.meter.sample_interval < Duration::from_millis(1) {
        return Err(EnergyError::Usage(
            "--interval must be at least 1 ms".into(),
        ));
    }
    let command: Vec<String> = opts
        .command
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let _serial = MEASURE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let _exits_seen = ChildExitsSeen::ensure();
    // Signals are caught first: one that arrives while the meters are found (NVML can take
    // a second) stops the command from starting, and still gets a report.
    let slot = Arc::new(ChildSlot::default());
    let forwarder = Forwarder::install(slot.clone())?;
    let mut notes: Vec<String> = forwarder
        .ignored()
        .iter()
        .map(|&sig| {
            let name = signals::signal_name(sig);
            format!(
                "{name} was ignored when measure started (nohup, or a script's `cmd &`): it \
                 was left ignored, so the command inherited it ignored, and it is not forwarded"
            )
        })
        .collect();
    let mut followed = Followed::new(opts.cgroup);
    let mut cfg = opts.meter.clone();
    cfg.cpu_scope = followed.scope();
    let mut meters = match Meters::discover(&cfg) {
        Ok(m) => m,
        Err(e) => {
            followed.abandon();
            return Err(e);
        }
    };

    // How often each counter updates (probed once, before the command starts), and an
    // interval that sees every counter wrap.
    meters.probes();
    let idle = idle_baseline(&meters, opts.idle, &slot);
    if opts.idle.is_some_and(|d| !d.is_zero()) && !has_counter(&meters) {
        notes.push(
            "--idle-baseline was not used: there is no energy counter, and an idle baseline \
             applies to counters only; the CPU estimate has no idle part"
                .into(),
        );
    }
    let interval = meters.sampling_interval(cfg.sample_interval);
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut sampler = match Sampler::start(&meters, interval, true) {
        Ok(s) => s,
        Err(e) => {
            followed.abandon();
            return Err(e);
        }
    };
    // Stopped before the command started (during the idle baseline, a long one included): it
    // is not started, and the report says so (exit 128 + the signal, as a shell's).
    let start = |followed: &mut Followed| match slot.stopped_before_start() {
        Some(sig) => Err(NotStarted::Stopped(sig)),
        None => followed.command(opts).spawn().map_err(NotStarted::Failed),
    };
    let mut t_spawn = Instant::now();
    let mut spawned = start(&mut followed);
    if let Err(NotStarted::Failed(e)) = &spawned {
        if let Followed::Cgroup(_) = followed {
            // Joining the cgroup may be what failed (the command never ran, as the join
            // comes before exec): run it again, followed by its tree.
            let why = format!("joining the cgroup failed ({e})");
            let _ = sampler.finish();
            followed.abandon();
            followed = Followed::Tree(ProcessTree::adopting(), why);
            cfg.cpu_scope = followed.scope();
            meters = Meters::discover(&cfg)?;
            meters.probes();
            sampler = Sampler::start(&meters, interval, true)?;
            t_spawn = Instant::now();
            spawned = start(&mut followed);
        }
    }
    let child = match spawned {
        Ok(c) => c,
        Err(why) => {
            let out = sampler.finish();
            let events = forwarder.finish();
            followed.abandon();
            return Ok(why.report(&command[0]).outcome(
                &meters,
                opts,
                (command, started_at, interval, notes),
                &idle,
                out?,
                &events,
            ));
        }
    };
    let pid = child.id() as i32;
    match &followed {
        Followed::Tree(t, _) => t.set_root(pid),
        Followed::Cgroup(g) => g.command_started(),
    }
    slot.set(pid);
    // The child is reaped below with wait4 (for its rusage); std's handle is not waited on.
    drop(child);

    let (exit, out) = wait_child(&slot, pid, sampler);
    let duration_s = t_spawn.elapsed().as_secs_f64();
    // A signal kept before the start that came after the last check for one was sent to the
    // command when it started.
    let events: Vec<_> = (forwarder.finish().into_iter())
        .map(|mut e| {
            if e.delivery == Delivery::BeforeStart {
                e.delivery = Delivery::AtStart;
            }
            e
        })
        .collect();
    let (exit, mut out) = match (exit, out) {
        (Ok(e), Ok(o)) => (e, o),
        (Err(e), _) | (_, Err(e)) => {
            followed.abandon();
            return Err(e);
        }
    };

    // Final readings: counters now, the estimate from the CPU time of everything the command
    // ran (exact, counting processes too short-lived for the sampler); the report's
    // cpu_seconds is the same figure.
    let last_sampled_cpu = out.accs.iter().map(|a| a.cpu_seconds()).fold(0.0, f64::max);
    let accounting = followed.finish(exit.cpu_seconds, last_sampled_cpu);
    let final_ctx = ReadContext {
        tree: accounting.cpu_seconds.map(|c| TreeSnapshot {
            cpu_seconds: c,
            rss_bytes: 0,
            processes: 0,
        }),
    };
    let t_final = out.t0.map_or(duration_s, |t| t.elapsed().as_secs_f64());
    final_readings(&meters, &mut out, t_final, &final_ctx);
    let domains: Vec<DomainEnergy> = meters
        .domains
        .iter()
        .zip(&out.accs)
        .zip(meters.probes().iter().zip(meters.watched()))
        .zip(&out.checks)
        .map(|(((d, a), (p, w)), c)| {
            crate::meters::domain_energy(d.as_ref(), a, (p.as_ref(), w), c.as_ref())
        })
        .collect();
    let error = exit
        .signal
        .as_ref()
        .map(|s| format!("the command was killed by {s}"));
    let run = Run {
        command,
        started_at,
        exit_code: exit.code,
        signal: exit.signal.clone(),
        error,
        duration_s,
        interval,
        notes,
    };
    Ok(outcome(
        &meters,
        opts,
        run,
        (domains, &idle),
        accounting,
        out,
        &events,
    ))
}

/// The final readings of the command's window, at `t` s since the sampler started: into the
/// accumulators and the cross-check samples alike, so that the check spans the figure's whole
/// window.
fn final_readings(
    meters: &Meters,
    out: &mut crate::sampler::SamplerOutput,
    t: f64,
    ctx: &ReadContext,
) {
    meters.push_final(&mut out.accs, &mut out.checks, t, ctx);
}

/// The counters' idle power before the command starts, over `asked` (default: the meters'
/// minimum window, at least 0.5 s); nothing when only the CPU estimate meters (it has no idle
/// part) or the window is zero.
fn idle_baseline(meters: &Meters, asked: Option<Duration>, slot: &ChildSlot) -> Vec<DomainEnergy> {
    let d = asked.unwrap_or_else(|| meters.min_window().max(Duration::from_millis(500)));
    if d.is_zero() || !has_counter(meters) {
        return Vec::new();
    }
    meters
        .idle_baseline_while(d, &|| slot.stopped_before_start().is_none())
        .into_iter()
        .filter(|e| is_counter(meters_source(meters, &e.name)))
        .collect()
}

/// Whether figures of `source` come from a meter that has an idle part to measure (a
/// counter, or integrated power), unlike the CPU estimate.
fn is_counter(source: Source) -> bool {
    source != Source::Estimated
}

/// Whether `meters` have a domain an idle baseline applies to ([`is_counter`]).
fn has_counter(meters: &Meters) -> bool {
    meters.domains.iter().any(|m| is_counter(m.meta().source))
}

/// The source a domain of `meters` reports (its figures may be `unsupported` in a window).
fn meters_source(meters: &Meters, name: &str) -> Source {
    meters
        .domains
        .iter()
        .find(|m| m.name() == name)
        .map_or(Source::Unsupported, |m| m.meta().source)
}

/// Gross minus idle over the domains in the total: each counter's net figure, the estimate's
/// gross one; `None` when a domain in the total has no reading or no idle figure, or there is
/// no baseline.
fn net_total(domains: &[DomainEnergy], idle: &[DomainEnergy]) -> Option<Interval> {
    if idle.is_empty() {
        return None;
    }
    let mut sum: Option<Interval> = None;
    for d in domains.iter().filter(|d| d.in_total) {
        // A domain with no reading: the net of the rest would read as the whole one.
        d.joules?;
        let n = wattbench_core::energy::net_of(d, idle)?;
        let (value, u) = (n.net_joules, n.uncertainty_j);
        let iv = Interval {
            value,
            low: value - u,
            high: value + u,
        };
        sum = Some(sum.map_or(iv, |s| s + iv));
    }
    sum
}

/// The warning a net-of-idle figure needs when its whole interval is below 0 (the command's
/// window drew less than the idle power measured before it), if it does.
fn net_below_zero(net: Option<Interval>) -> Option<String> {
    let n = net.filter(|n| n.high < 0.0)?;
    Some(format!(
        "the net-of-idle figure is below 0 over its whole interval ([{}, {}] J): the command's \
         window drew less than the idle power measured before it, so the load beside the \
         command changed (other processes, clocks, temperature); the net figure is not \
         meaningful here, the gross one stands",
        sig(n.low),
        sig(n.high)
    ))
}

/// The report, trace and exit code of a run of the command.
fn outcome(
    meters: &Meters,
    opts: &MeasureOptions,
    run: Run,
    (domains, idle): (Vec<DomainEnergy>, &[DomainEnergy]),
    accounting: Accounting,
    out: crate::sampler::SamplerOutput,
    events: &[signals::SignalEvent],
) -> MeasureOutcome {
    let exit_code = run.exit_code;
    let mut report = build_report(meters, opts, run, domains, accounting, &out, events);
    report.net_joules = net_total(&report.domains, idle);
    report.warnings.extend(net_below_zero(report.net_joules));
    report.idle_baseline = idle.to_vec();
    // What qualifies the idle figures qualifies the net one.
    for d in idle {
        let why = d.reason.iter().chain(&d.warnings);
        report
            .warnings
            .extend(why.map(|w| format!("idle baseline, {}: {w}", d.name)));
    }
    MeasureOutcome {
        report,
        trace: out.trace,
        exit_code,
    }
}

/// Why the command was not started.
enum NotStarted {
    /// A signal came first.
    Stopped(libc::c_int),
    /// It could not be spawned.
    Failed(std::io::Error),
}

impl NotStarted {
    /// What the report of `program`, not started, says.
    fn report(self, program: &str) -> NotRun {
        let e = match self {
            NotStarted::Stopped(sig) => return NotRun::stopped(sig),
            NotStarted::Failed(e) => e,
        };
        let (code, msg) = match e.kind() {
            ErrorKind::NotFound => (
                EXIT_NOT_FOUND,
                format!("command not found: {program} ({e})"),
            ),
            ErrorKind::PermissionDenied => (
                EXIT_CANNOT_EXECUTE,
                format!("permission denied: cannot execute {program} ({e})"),
            ),
            _ => (
                EXIT_CANNOT_EXECUTE,
                format!("cannot execute {program}: {e}"),
            ),
        };
        NotRun {
            code,
            msg,
            why: "not measured: the command could not be started",
        }
    }
}

/// A command that never ran: its exit code, what to say, and each domain's reason.
struct NotRun {
    code: i32,
    msg: String,
    why: &'static str,
}

impl NotRun {
    /// Stopped by `sig` before the command started: exit 128 + `sig`, as a shell's.
    fn stopped(sig: libc::c_int) -> NotRun {
        NotRun {
            code: 128 + sig,
            msg: format!(
                "stopped by {} before the command started: it was not run",
                signals::signal_name(sig)
            ),
            why: "not measured: the command was not started (stopped before it)",
        }
    }

    /// The report: no figure, the idle baseline as it was measured.
    fn outcome(
        self,
        meters: &Meters,
        opts: &MeasureOptions,
        (command, started_at, interval, notes): (Vec<String>, String, Duration, Vec<String>),
        idle: &[DomainEnergy],
        out: crate::sampler::SamplerOutput,
        events: &[signals::SignalEvent],
    ) -> MeasureOutcome {
        let domains = (meters.domains.iter())
            .map(|d| DomainEnergy::unsupported(d.name(), d.scope(), self.why.into()))
            .collect();
        let accounting = Accounting {
            how: NOT_STARTED.into(),
            cpu_seconds: None,
            memory_peak: None,
            warnings: Vec::new(),
        };
        let run = Run {
            command,
            started_at,
            exit_code: self.code,
            signal: None,
            error: Some(self.msg),
            duration_s: 0.0,
            interval,
            notes,
        };
        outcome(meters, opts, run, (domains, idle), accounting, out, events)
    }
}

/// What happened to the command.
struct Run {
    command: Vec<String>,
    started_at: String,
    exit_code: i32,
    signal: Option<String>,
    error: Option<String>,
    duration_s: f64,
    interval: Duration,
    /// What qualifies the whole measurement, for the report's notes: signals left ignored,
    /// an idle baseline asked for with no counter to take it of.
    notes: Vec<String>,
}

fn build_report(
    meters: &Meters,
    opts: &MeasureOptions,
    run: Run,
    domains: Vec<DomainEnergy>,
    accounting: Accounting,
    out: &crate::sampler::SamplerOutput,
    events: &[signals::SignalEvent],
) -> MeasureReport {
    let (interval, duration_s) = (run.interval, run.duration_s);
    // A counter whose readings stopped before the others' is completed to their span (and
    // says so among the warnings), as in every other total.
    let domains = crate::cover_span(&domains, duration_s);
    let total = total_energy(&domains);
    let p = &opts.carbon;
    let figures = total.joules.map(|j| carbon(j, p));
    let mut sources = vec![format!(
        "grid intensity: {} ({}{})",
        p.intensity.source,
        p.intensity.name,
        p.intensity
            .year
            .map(|y| format!(", {y}"))
            .unwrap_or_default()
    )];
    for d in domains.iter().filter(|d| d.joules.is_some()) {
        sources.push(format!("{}: {} ({})", d.name, d.source, d.scope));
    }
    let mut notes = run.notes;
    if p.pue_is_default {
        notes.push("PUE 1.0 assumed: IT energy only, no cooling or facility overhead".into());
    }
    if total.mixed {
        notes.push(format!(
            "the energy total adds {} domains; total.estimated_joules says how much of it is \
             estimated",
            crate::sources_named(&total.sources)
        ));
    }
    if domains
        .iter()
        .any(|d| d.joules.is_some() && matches!(d.scope.as_str(), "package" | "dram" | "device"))
    {
        notes.push(
            "counter domains cover the whole CPU package / DRAM / GPU, including other processes \
             and idle power: the total is gross, and net_joules takes out the idle power \
             measured before the command (idle_baseline); carbon uses the gross total"
                .into(),
        );
    }
    if total.joules.is_none() {
        notes.push("no domain had a reading, so there is no energy or carbon figure".into());
    } else if !total.missing.is_empty() {
        notes.push(format!(
            "PARTIAL total: no reading from {} (why: its domain), so the energy, carbon and \
             cost figures cover the other domains only, and there is no net figure",
            total.missing.join(", ")
        ));
    }
    let interval_ms = interval.as_secs_f64() * 1000.0;
    let (peak_memory_bytes, peak_memory_source) = match (accounting.memory_peak, out.peak_rss_bytes)
    {
        (Some(k), _) => (
            Some(k),
            "the cgroup's memory.peak (kernel accounting)".to_string(),
        ),
        (None, Some(s)) if s > 0 => (
            Some(s),
            format!(
                "the summed RSS of the command's processes, sampled every {interval_ms:.0} ms \
                 (a shorter peak between samples is missed)"
            ),
        ),
        _ => (
            None,
            format!("not observed: the command ended before a sample ({interval_ms:.0} ms) saw it"),
        ),
    };
    let mut warnings: Vec<String> = meters.warnings().to_vec();
    for d in &domains {
        warnings.extend(d.warnings.iter().map(|w| format!("{}: {w}", d.name)));
    }
    warnings.extend(accounting.warnings.iter().cloned());
    let gpu_names = &out.trace.gpus;
    let projection = opts.projection.map(|spec| {
        project(
            spec,
            duration_s,
            figures.as_ref().map(|f| f.energy_kwh),
            figures.as_ref().map(|f| f.co2e_kg),
            figures.as_ref().and_then(|f| f.cost),
        )
    });
    MeasureReport {
        schema: SCHEMA.into(),
        command: run.command,
        started_at: run.started_at,
        exit_code: run.exit_code,
        signal: run.signal,
        error: run.error,
        duration_s,
        total: total.clone(),
        domains,
        peak_memory_bytes,
        peak_memory_source,
        accounting: accounting.how,
        peak_device_memory: gpu_names
            .iter()
            .zip(&out.peak_device_memory_bytes)
            .map(|(g, b)| DeviceMemory {
                gpu: g.clone(),
                peak_bytes: *b,
            })
            .collect(),
        cpu_seconds: accounting.cpu_seconds,
        energy_kwh: figures.as_ref().map(|f| f.energy_kwh),
        facility_kwh: figures.as_ref().map(|f| f.facility_kwh),
        co2e_kg: figures.as_ref().map(|f| f.co2e_kg),
        cost: figures.as_ref().and_then(|f| f.cost),
        assumptions: Assumptions {
            carbon: p.assumptions(),
            sources,
            energy_includes: total.includes.clone(),
            energy_excludes: total.excludes.clone(),
            notes,
        },
        projection,
        signals_received: events
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    signals::signal_name(e.sig),
                    match e.delivery {
                        Delivery::FromTerminal => {
                            "from the terminal, which also delivered it to the command"
                        }
                        Delivery::TerminalForwarded => {
                            "from the terminal, forwarded to the command (in a process group \
                             of its own, it did not receive the terminal's)"
                        }
                        Delivery::Forwarded => "forwarded to the command",
                        Delivery::BeforeStart => {
                            "before the command started, which was then not started"
                        }
                        Delivery::AtStart => {
                            "while the command was starting: sent to it when it started"
                        }
                        Delivery::Exited => "not forwarded (the command had already exited)",
                    }
                )
            })
            .collect(),
        meters: meters.inventory(),
        gpus: meters.gpu_inventory(),
        sample_interval_ms: interval_ms,
        requested_interval_ms: meters.config().sample_interval.as_secs_f64() * 1000.0,
        samples: out.ticks,
        idle_baseline: Vec::new(),
        net_joules: None,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, joules: f64) -> DomainEnergy {
        DomainEnergy {
            source: Source::Measured,
            reason: None,
            joules: Some(joules),
            window_s: 2.0,
            uncertainty_j: Some(0.0),
            avg_watts: Some(joules / 2.0),
            ..DomainEnergy::unsupported(name, "package", String::new())
        }
    }

    /// The final readings of the command's window close the cross-check too: the check spans
    /// the figure's window (it ended at the last sampler tick, up to an interval short).
    #[test]
    fn the_final_readings_close_the_cross_check_too() {
        use crate::fake::CounterWithPower;
        let m = Meters::from_domains(
            vec![Arc::new(CounterWithPower::new("gpu0", 200.0, 200.0))],
            &MeterConfig::default(),
        );
        let s = Sampler::start(&m, Duration::from_millis(50), false).unwrap();
        std::thread::sleep(Duration::from_millis(180));
        let mut out = s.finish().unwrap();
        let t = out.t0.unwrap().elapsed().as_secs_f64();
        final_readings(&m, &mut out, t, &ReadContext::default());
        let samples = out.checks[0].as_ref().unwrap();
        let c = crate::crosscheck::assess("gpu0", samples, 0.0, "test").unwrap();
        let span = out.accs[0].span_s();
        assert!(
            (c.span_s - span).abs() < 1e-9,
            "check over {} s of a {span} s window",
            c.span_s
        );
    }

    /// A net figure entirely below 0 is warned about; one whose interval reaches 0 is not.
    #[test]
    fn a_net_figure_wholly_below_zero_is_warned_about() {
        let iv = |low, value, high| Some(Interval { value, low, high });
        let w = net_below_zero(iv(-12.0, -10.0, -8.0)).unwrap();
        assert!(
            w.contains("below 0 over its whole interval ([-12.00, -8.000] J)"),
            "{w}"
        );
        assert_eq!(net_below_zero(iv(-12.0, -10.0, 0.5)), None);
        assert_eq!(net_below_zero(None), None);
    }

    /// A domain of the total with no reading (a GPU counter that failed): the total names it
    /// as missing, and there is no net figure (the package's net would read as the whole).
    #[test]
    fn a_total_without_a_domains_reading_is_partial_and_has_no_net() {
        let idle = [read("cpu-package-0", 10.0)];
        let whole = [read("cpu-package-0", 40.0)];
        assert!(total_energy(&whole).missing.is_empty());
        assert_eq!(net_total(&whole, &idle).map(|n| n.value), Some(30.0));
        let partial = [
            read("cpu-package-0", 40.0),
            DomainEnergy::unsupported("gpu0", "device", "the counter failed".into()),
        ];
        let total = total_energy(&partial);
        assert_eq!(total.joules.map(|j| j.value), Some(40.0));
        assert_eq!(total.missing, ["gpu0"]);
        assert_eq!(net_total(&partial, &idle), None);
    }
}
