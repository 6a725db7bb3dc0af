//! The meter seam: the [`Domain`] trait every counter implements, discovery of all meters
//! on the machine ([`Meters`]) and energy windows in criterion's `start`/`end` shape.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::counter::{self, CounterSpec, Probe, Watched, WindowFacts};
use crate::crosscheck::{self, CheckSamples, PowerCheck};
use crate::integrate::Accumulator;
use crate::procfs::{self, TreeSnapshot};
use crate::sampler::Sampler;
use crate::{estimate, nvml, rapl, EnergyError, EstimateAssumptions, Source};
use wattbench_core::energy::{stored_uncertainty, DomainEnergy};
use wattbench_core::result::{GpuRecord, MeterInfo};

/// One raw reading of a domain.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A monotonically increasing energy counter (wraps to 0 after `wrap_at`).
    Counter {
        /// Counter value in its native unit.
        raw: u64,
        /// Joules per unit (1e-6 for RAPL µJ, 1e-3 for NVML mJ).
        joules_per_unit: f64,
        /// Largest value before the counter wraps, when known.
        wrap_at: Option<u64>,
    },
    /// An instantaneous (or device-averaged) power sample.
    Power {
        /// Watts.
        watts: f64,
    },
    /// Cumulative CPU time, converted to energy by a model.
    CpuTime {
        /// CPU seconds so far.
        seconds: f64,
        /// Watts attributed to one fully busy logical CPU.
        watts_per_cpu: f64,
    },
}

/// What a domain may use when it reads: a snapshot of the measured process tree, taken once
/// per tick by the caller so that several domains do not scan `/proc` each.
#[derive(Debug, Clone, Default)]
pub struct ReadContext {
    /// CPU time and memory of the process (tree) being measured, if it could be read.
    pub tree: Option<TreeSnapshot>,
}

/// What a domain is: the labels every figure it gives carries. Fixed when it is found.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainMeta {
    /// Report name, e.g. `gpu0`, `cpu-package-0`, `dram-0`, `cpu-estimate`.
    pub name: String,
    /// Meter family: `nvml`, `rapl` or `estimate`.
    pub kind: &'static str,
    /// The label its figures carry.
    pub source: Source,
    /// What the figure covers: `device`, `package`, `process`, `process-tree`...
    pub scope: &'static str,
    /// Whether the domain may be added into totals (false for subsets and supersets of others).
    pub in_total: bool,
    /// Why it is left out of totals, or other caveats.
    pub note: Option<String>,
}

impl DomainMeta {
    /// A domain added into totals, with no note.
    pub fn new(
        name: impl Into<String>,
        kind: &'static str,
        source: Source,
        scope: &'static str,
    ) -> Self {
        DomainMeta {
            name: name.into(),
            kind,
            source,
            scope,
            in_total: true,
            note: None,
        }
    }
}

/// One energy domain (a GPU, a RAPL zone, the CPU estimate). Implement it to add a meter.
pub trait Domain: Send + Sync {
    /// The labels of its figures.
    fn meta(&self) -> &DomainMeta;
    /// Report name.
    fn name(&self) -> &str {
        &self.meta().name
    }
    /// Meter family.
    fn kind(&self) -> &'static str {
        self.meta().kind
    }
    /// The label its figures carry.
    fn source(&self) -> Source {
        self.meta().source
    }
    /// What the figure covers.
    fn scope(&self) -> &'static str {
        self.meta().scope
    }
    /// Whether the domain may be added into totals.
    fn in_total(&self) -> bool {
        self.meta().in_total
    }
    /// Why it is left out of totals, or other caveats.
    fn note(&self) -> Option<String> {
        self.meta().note.clone()
    }
    /// Reads the domain now.
    fn read(&self, ctx: &ReadContext) -> Result<Reading, String>;
    /// Uncertainty (J) of a window's figure (its joules, length, sampling intervals and
    /// longest gap between readings), for domains that are not counters (counters describe
    /// themselves with [`Domain::counter`] instead). The default, infinity, says "unknown": a
    /// new domain that is neither never claims a precision it has not shown.
    fn uncertainty_j(&self, window: &WindowFacts) -> f64 {
        let _ = window;
        f64::INFINITY
    }
    /// Shortest window for which the domain's resolution does not dominate.
    fn min_window(&self) -> Duration;
    /// Model assumptions to attach to the figure (estimates), given the accumulated state.
    fn assumptions(&self, _acc: &Accumulator, _window_s: f64) -> Option<EstimateAssumptions> {
        None
    }
    /// Device memory in use, bytes (GPUs), for the trace.
    fn memory_used_bytes(&self) -> Option<u64> {
        None
    }
    /// For hardware energy counters: resolution, update period, wrap range, plausible peak
    /// power, sensor accuracy. Their uncertainty and warnings then come from
    /// [`counter::assess`](crate::counter::assess) instead of [`Domain::uncertainty_j`].
    fn counter(&self) -> Option<CounterSpec> {
        None
    }
    /// For a counter whose driver also reports power (an NVML GPU with the energy counter):
    /// what that power reading is. The sampler then reads [`Domain::reported_power`] beside
    /// the counter at every tick, and reports set the two side by side
    /// ([`crosscheck`](crate::crosscheck)). `None` for other domains.
    fn power_reading(&self) -> Option<&nvml::PowerReading> {
        None
    }
    /// The driver's power reading now, W (for domains with a [`Domain::power_reading`]).
    fn reported_power(&self) -> Result<f64, String> {
        Err("this domain reports no power beside its counter".into())
    }
}

/// A handle on the root of a process tree, set once the process is spawned. With
/// [`ProcessTree::adopting`], this process is made a child subreaper first, so processes that
/// leave the tree by a double fork are re-parented here instead of to init: they are then
/// counted with the tree, and reported as having left it.
#[derive(Debug, Clone, Default)]
pub struct ProcessTree {
    root: Arc<AtomicI32>,
    /// Children this process already had before the command (not the command's).
    before: Arc<std::collections::HashSet<i32>>,
    adopting: bool,
    adopted: Arc<Mutex<std::collections::HashSet<i32>>>,
}

impl ProcessTree {
    /// A tree with no root yet (reads as empty).
    pub fn new() -> Self {
        Self::default()
    }
    /// A tree whose escaped processes are adopted by this process (Linux child subreaper);
    /// plain [`ProcessTree::new`] when that cannot be set.
    pub fn adopting() -> Self {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument and only
        // changes how orphans of this process are re-parented.
        let ok = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;
        let me = std::process::id() as i32;
        ProcessTree {
            before: Arc::new(
                procfs::children_of(me)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            ),
            adopting: ok,
            ..Self::default()
        }
    }
    /// Sets the root process id.
    pub fn set_root(&self, pid: i32) {
        self.root.store(pid, Ordering::SeqCst);
    }
    /// The root process id, if set.
    pub fn root(&self) -> Option<i32> {
        match self.root.load(Ordering::SeqCst) {
            p if p > 0 => Some(p),
            _ => None,
        }
    }
    /// Whether escaped processes are adopted (and so counted).
    pub fn is_adopting(&self) -> bool {
        self.adopting
    }
    /// Processes seen to have left the command's tree (adopted by this process).
    pub fn escaped(&self) -> usize {
        self.adopted.lock().map_or(0, |e| e.len())
    }
    /// Processes that left the tree and were adopted here, seen now.
    fn adoptees(&self) -> Vec<i32> {
        if !self.adopting {
            return Vec::new();
        }
        let root = self.root();
        let now: Vec<i32> = procfs::children_of(std::process::id() as i32)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| Some(*p) != root && !self.before.contains(p))
            .collect();
        if let Ok(mut a) = self.adopted.lock() {
            a.extend(now.iter().copied());
        }
        now
    }
    /// The adopted processes still running now (not zombies): after the command exited, its
    /// background jobs and daemons, which are left running.
    pub(crate) fn still_running(&self) -> Vec<i32> {
        let zombie = |p: i32| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                // The state is the first field after the command name's last `)`.
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next())
                    .is_some_and(|state| state == "Z")
            })
        };
        self.adoptees()
            .into_iter()
            .filter(|&p| procfs::exists(p) && !zombie(p))
            .collect()
    }

    /// CPU time and memory of the adopted processes (and their descendants) now; zombies
    /// not yet reaped still show their CPU time.
    pub fn adopted_snapshot(&self) -> TreeSnapshot {
        let mut total = TreeSnapshot::default();
        for p in self.adoptees() {
            if let Ok(s) = procfs::tree_snapshot(p) {
                total.cpu_seconds += s.cpu_seconds;
                total.rss_bytes += s.rss_bytes;
                total.processes += s.processes;
            }
        }
        total
    }
    fn snapshot(&self) -> Result<TreeSnapshot, String> {
        let Some(root) = self.root() else {
            return Ok(TreeSnapshot::default());
        };
        let mut snap = procfs::tree_snapshot(root)?;
        let adopted = self.adopted_snapshot();
        snap.cpu_seconds += adopted.cpu_seconds;
        snap.rss_bytes += adopted.rss_bytes;
        snap.processes += adopted.processes;
        Ok(snap)
    }
}

/// Whose CPU time and memory are measured.
#[derive(Debug, Clone, Default)]
pub enum CpuScope {
    /// The current process, all of its threads (for `wattbench run`).
    #[default]
    Process,
    /// A child process and all its descendants (for `wattbench measure` without a cgroup).
    Tree(ProcessTree),
    /// Every process in a cgroup (for `wattbench measure`).
    Cgroup(Arc<crate::cgroup::Cgroup>),
}

impl CpuScope {
    /// CPU time and memory now.
    pub fn snapshot(&self) -> Result<TreeSnapshot, String> {
        match self {
            CpuScope::Process => procfs::self_snapshot(),
            CpuScope::Tree(t) => t.snapshot(),
            CpuScope::Cgroup(g) => g.snapshot(),
        }
    }

    /// The scope's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            CpuScope::Process => "process",
            CpuScope::Tree(_) => "process-tree",
            CpuScope::Cgroup(_) => "cgroup",
        }
    }
}

/// How meters are found and sampled.
#[derive(Debug, Clone)]
pub struct MeterConfig {
    /// Powercap sysfs root; else `WATTBENCH_POWERCAP_ROOT`; else `/sys/class/powercap`.
    pub powercap_root: Option<PathBuf>,
    /// Declared CPU TDP (W) for the estimate; else the built-in table; else a per-CPU default.
    pub tdp_watts: Option<f64>,
    /// Sampler interval (trace, power-only GPUs, wrap-safe RAPL reads).
    pub sample_interval: Duration,
    /// Look for NVIDIA GPUs (default true).
    pub nvml: bool,
    /// Which GPUs to meter (default: those `CUDA_VISIBLE_DEVICES` shows, else all).
    pub gpus: crate::gpus::GpuSelection,
    /// Whose CPU time the estimate covers, and whose memory is traced.
    pub cpu_scope: CpuScope,
}

/// How often a window with wrapping counters (RAPL) reads them in the background: far below
/// the shortest wrap period (~60 s for a 65 kJ counter range at 1 kW).
pub const WRAP_GUARD_INTERVAL: Duration = Duration::from_secs(5);

/// A counter's peak power is its mean over spans of at least this many updates, so that one
/// update more or less in the span (quantisation) moves it by at most 10 %.
pub const PEAK_SPAN_UPDATES: u32 = 10;

/// A wrapping counter's step that implies more than this many times its plausible peak
/// power ([`CounterSpec::peak_w`]) is a reset, not a wrap.
pub const PLAUSIBLE_PEAK_FACTOR: f64 = 2.0;

/// Default sampler interval. Its CPU cost is benchmarked in `benches/sampler_overhead.rs`.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            powercap_root: None,
            tdp_watts: None,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            nvml: true,
            gpus: crate::gpus::GpuSelection::Auto,
            cpu_scope: CpuScope::Process,
        }
    }
}

impl MeterConfig {
    /// The powercap root actually used, and where it came from.
    pub fn resolved_powercap_root(&self) -> PathBuf {
        if let Some(p) = &self.powercap_root {
            return p.clone();
        }
        match std::env::var_os("WATTBENCH_POWERCAP_ROOT") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(rapl::DEFAULT_POWERCAP_ROOT),
        }
    }
}

/// One domain's figure over a window, from its accumulated readings; `probe` is what the
/// counter was seen to do before (counters only), and `watched` when it last changed, as of
/// the window's end ([`Meters::watched`]; `None`: the window alone says); `check` the counter
/// and power readings the sampler took side by side (domains with a [`Domain::power_reading`]
/// only).
pub(crate) fn domain_energy(
    d: &dyn Domain,
    acc: &Accumulator,
    (probe, watched): (Option<&Probe>, Option<Watched>),
    check: Option<&CheckSamples>,
) -> DomainEnergy {
    let window_s = acc.span_s();
    let mut out = DomainEnergy {
        name: d.name().to_string(),
        source: d.source(),
        reason: None,
        joules: None,
        window_s,
        uncertainty_j: None,
        avg_watts: None,
        peak_watts: None,
        scope: d.scope().to_string(),
        in_total: d.in_total(),
        note: d.note(),
        assumptions: None,
        warnings: Vec::new(),
        power_check: None,
    };
    if let (Some(r), Some(c)) = (d.power_reading(), check) {
        out.power_check = crosscheck::assess(d.name(), c, r.averaging_s, &r.description);
    }
    let lost = acc.discarded_s();
    match acc.joules() {
        Some(read_j) => {
            // Time a counter without a known range lost (it went backwards): filled at the
            // mean power of the rest, all of it in the uncertainty, or no figure when more was
            // lost than read.
            let Some(fill) = discarded_fill(read_j, window_s, lost) else {
                out.source = Source::Unsupported;
                out.reason = Some(format!(
                    "unavailable: {lost:.3} s of the {window_s:.3} s window had no reading, more \
                     than was read ({})",
                    acc.error().unwrap_or("readings discarded")
                ));
                return out;
            };
            let j = read_j + fill;
            // A counter of the total (a package, DRAM, a GPU: always powered) that did not
            // move at all, before the window or in it, has stopped or never worked: no
            // reading, not a measured 0 J. (A subzone such as an idle integrated GPU's uncore
            // can truly read 0.)
            // How long it was seen unchanged: since its last change, across the probe, the
            // idle baseline and earlier windows; at least this window when it read 0 J.
            let still_s = (watched.map(|w| w.still_for(Instant::now()).as_secs_f64()))
                .unwrap_or(0.0)
                .max(if j == 0.0 { window_s } else { 0.0 });
            let mut unconfirmed = None;
            if let (Some(spec), Some(p)) = (d.counter().filter(|_| d.in_total()), probe) {
                if counter::frozen(&spec, probe, j, still_s) {
                    out.source = Source::Unsupported;
                    out.reason = Some(format!(
                        "unavailable: the counter did not move in {still_s:.3} s (0 J over this \
                         {window_s:.3} s window, no change since {}, and less than two changes \
                         while probed for {} ms); a powered {} draws some energy, so it is \
                         taken for a counter that is frozen or not implemented here, not for \
                         0 J",
                        if watched.is_some_and(|w| !w.moved()) {
                            "it was first read"
                        } else {
                            "its last change"
                        },
                        counter::PROBE_LIMIT.as_millis(),
                        d.scope()
                    ));
                    return out;
                }
                // Not long enough to judge, but it has not moved at all since it was found: the
                // 0 J is not confirmed by any change of the counter.
                if j == 0.0 && p.update.is_none() && watched.is_some_and(|w| !w.moved()) {
                    unconfirmed = Some(format!(
                        "the counter has not changed at all since it was first read {still_s:.3} \
                         s ago: the 0 J may be a counter that is frozen or not implemented here \
                         (one seen unchanged for more than {:.1} s has no reading); measure \
                         longer to tell",
                        counter::frozen_after(&spec, p).as_secs_f64()
                    ));
                }
            }
            out.joules = Some(j);
            let facts = WindowFacts::of(acc, j);
            let (unc, warnings) = match d.counter() {
                Some(spec) => counter::assess(&spec, probe, facts),
                None => (d.uncertainty_j(&facts), Vec::new()),
            };
            // A domain that states no uncertainty (infinite: unknown) keeps it unknown: null,
            // never 0, and said.
            out.uncertainty_j = stored_uncertainty(unc + fill);
            out.warnings = warnings;
            out.warnings.extend(unconfirmed);
            if out.uncertainty_j.is_none() {
                out.warnings.push(
                    "its uncertainty is unknown (the meter states none): the figure has no \
                     upper bound, and neither has any total that adds it"
                        .into(),
                );
            }
            if fill > 0.0 {
                out.warnings.push(format!(
                    "{lost:.3} s of the {window_s:.3} s window had no reading ({}): filled with \
                     {fill:.3} J at the rest's mean power, all of it in the uncertainty",
                    acc.discarded_why()
                        .unwrap_or_else(|| "readings discarded".into())
                ));
            }
            out.warnings
                .extend(out.power_check.as_ref().and_then(PowerCheck::warning));
            out.avg_watts = (window_s > 0.0).then(|| j / window_s);
            // Only spans long enough to be more than quantisation set the peak (never under
            // the mean, which a filled gap can raise past the peak of the spans read).
            out.peak_watts = match (acc.peak_watts(), out.avg_watts) {
                (Some(p), Some(a)) => Some(p.max(a)),
                (p, a) => p.or(a),
            };
            out.assumptions = d.assumptions(acc, window_s);
            if d.source() == Source::Integrated && window_s < 1.0 {
                out.reason = Some(
                    "window shorter than the ~1 s over which NVML averages power; \
                     the integrated figure is unreliable"
                        .into(),
                );
            }
            if let Some(e) = acc.error() {
                out.reason = Some(format!("some readings failed: {e}"));
            }
        }
        None => {
            out.source = Source::Unsupported;
            let why = acc
                .error()
                .unwrap_or("fewer than two readings in the window");
            // Read errors already say "unavailable: ".
            out.reason = Some(if why.starts_with("unavailable: ") {
                why.to_string()
            } else {
                format!("unavailable: {why}")
            });
        }
    }
    out
}

/// The energy of the `discarded_s` seconds of a `window_s` window that had no reading (a
/// counter that went backwards with no known range), at the mean power of the `read_j` joules
/// read over the rest: `Some(0.0)` when nothing was lost, `None` when less of the window was
/// read than lost (the figure would be mostly guessed).
fn discarded_fill(read_j: f64, window_s: f64, discarded_s: f64) -> Option<f64> {
    if discarded_s <= 0.0 {
        return Some(0.0);
    }
    let read_s = window_s - discarded_s;
    (read_s >= discarded_s && read_s > 0.0).then(|| read_j / read_s * discarded_s)
}

/// All meters found on this machine.
pub struct Meters {
    pub(crate) domains: Vec<Arc<dyn Domain>>,
    unavailable: Vec<MeterInfo>,
    gpus: Vec<GpuRecord>,
    warnings: Vec<String>,
    pub(crate) cfg: MeterConfig,
    probes: std::sync::OnceLock<Vec<Option<Probe>>>,
    /// When each counter last changed, from its probe on, updated by every reading taken at
    /// a window's edge ([`Meters::read_all`]); `None` for other domains and before a reading.
    watched: Mutex<Vec<Option<Watched>>>,
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meters")
            .field(
                "domains",
                &self.domains.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

/// An open energy window: readings taken at `start`.
pub struct EnergyWindow {
    t0: Instant,
    accs: Arc<Mutex<Vec<Accumulator>>>,
    sampler: Option<Sampler>,
}

impl Meters {
    /// Finds every meter. Unavailable meters are kept with their reasons; the only error is
    /// a `--gpus` selection that names no GPU. The CPU estimate is used only when no RAPL
    /// package counter can be read.
    pub fn discover(cfg: &MeterConfig) -> Result<Meters, EnergyError> {
        let mut domains: Vec<Arc<dyn Domain>> = Vec::new();
        let mut unavailable = Vec::new();
        let mut gpus = Vec::new();
        let mut warnings = Vec::new();

        if cfg.nvml {
            let found = nvml::discover(&cfg.gpus)?;
            domains.extend(found.domains);
            unavailable.extend(found.unavailable);
            gpus = found.gpus;
            warnings = found.warnings;
        } else {
            unavailable.push(MeterInfo::unavailable(
                "nvml",
                "nvml",
                "disabled by configuration",
            ));
        }

        let root = cfg.resolved_powercap_root();
        let found = rapl::discover(&root);
        warnings.extend(found.warnings.iter().cloned());
        let have_package = found.domains.iter().any(|d| d.is_package());
        domains.extend(
            found
                .domains
                .into_iter()
                .map(|d| Arc::new(d) as Arc<dyn Domain>),
        );
        unavailable.extend(found.unavailable);

        let est = estimate::CpuEstimate::new(cfg.tdp_watts, cfg.cpu_scope.clone());
        if have_package {
            unavailable.push(MeterInfo::unavailable(
                est.name(),
                "estimate",
                "not used, a RAPL package counter measures the CPU",
            ));
        } else {
            warnings.extend(est.tdp().warning());
            domains.push(Arc::new(est));
        }
        let mut m = Meters::from_parts(domains, unavailable, gpus, cfg.clone());
        m.warnings = warnings;
        Ok(m)
    }

    /// Meters made of the given domains (custom or fake meters, tests).
    pub fn from_domains(domains: Vec<Arc<dyn Domain>>, cfg: &MeterConfig) -> Meters {
        Meters::from_parts(domains, Vec::new(), Vec::new(), cfg.clone())
    }

    fn from_parts(
        domains: Vec<Arc<dyn Domain>>,
        unavailable: Vec<MeterInfo>,
        gpus: Vec<GpuRecord>,
        cfg: MeterConfig,
    ) -> Meters {
        Meters {
            watched: Mutex::new(vec![None; domains.len()]),
            domains,
            unavailable,
            gpus,
            warnings: Vec::new(),
            cfg,
            probes: std::sync::OnceLock::new(),
        }
    }

    /// The configuration these meters were found with.
    pub fn config(&self) -> &MeterConfig {
        &self.cfg
    }

    /// Every meter, available or not, with what it reads or why not.
    pub fn inventory(&self) -> Vec<MeterInfo> {
        let mut v: Vec<MeterInfo> = self
            .domains
            .iter()
            .map(|d| MeterInfo {
                name: d.name().to_string(),
                kind: d.kind().to_string(),
                available: true,
                reason: None,
                detail: Some(format!(
                    "{}, scope {}{}",
                    d.source(),
                    d.scope(),
                    d.note().map(|n| format!("; {n}")).unwrap_or_default()
                )),
            })
            .collect();
        v.extend(self.unavailable.iter().cloned());
        v
    }

    /// Names of the readable domains.
    pub fn domain_names(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.name().to_string()).collect()
    }

    /// How long an energy window must last for these meters: the longest of their minimums
    /// (2 s for NVML, [`nvml::MIN_WINDOW`]; 1 s for RAPL counters; 0.5 s for the CPU-time
    /// estimate, [`estimate::MIN_WINDOW`]).
    pub fn min_window(&self) -> Duration {
        self.domains
            .iter()
            .map(|d| d.min_window())
            .max()
            .unwrap_or(Duration::from_secs(1))
    }

    /// NVML's description of each GPU, metered or not, with its state now; empty without
    /// NVML.
    pub fn gpu_inventory(&self) -> Vec<GpuRecord> {
        let states = nvml::gpu_states(&self.gpus.iter().map(|g| g.index).collect::<Vec<_>>());
        self.gpus
            .iter()
            .map(|g| GpuRecord {
                state: states
                    .iter()
                    .find(|s| s.index == g.index)
                    .cloned()
                    .unwrap_or_else(|| g.state.clone()),
                ..g.clone()
            })
            .collect()
    }

    /// NVML's description of each GPU as found (metered or not), without reading its state
    /// again ([`Meters::gpu_inventory`] does): which GPU a device is
    /// ([`CaseGpu`](crate::gpus::CaseGpu)).
    pub fn gpu_records(&self) -> &[GpuRecord] {
        &self.gpus
    }

    /// Clocks, temperature and throttle reasons of the metered GPUs now (for the end of each
    /// energy window).
    pub fn gpu_states(&self) -> Vec<wattbench_core::result::GpuState> {
        let metered: Vec<u32> = self
            .gpus
            .iter()
            .filter(|g| g.metered)
            .map(|g| g.index)
            .collect();
        if metered.is_empty() {
            return Vec::new();
        }
        nvml::gpu_states(&metered)
    }

    /// What a user must know about the meters as found: doubts about which GPUs the work
    /// uses, RAPL counters that exist but cannot be read.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What each counter domain was seen to do (how often it updates), probed once, at the
    /// first call (up to [`counter::PROBE_LIMIT`]); `None` for other domains.
    pub fn probes(&self) -> &[Option<Probe>] {
        self.probes.get_or_init(|| {
            let domains: Vec<(&dyn Domain, Option<CounterSpec>)> = self
                .domains
                .iter()
                .map(|d| (d.as_ref(), d.counter()))
                .collect();
            let probes = counter::probe(&domains);
            let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            for (w, p) in watched.iter_mut().zip(&probes) {
                // The probe's readings came first.
                if let Some(seen) = p.as_ref().and_then(|p| p.watched) {
                    *w = Some(seen);
                }
            }
            probes
        })
    }

    /// When each counter last changed (or was first read, if it never did), as of the last
    /// reading at a window's edge; `None` for other domains.
    pub(crate) fn watched(&self) -> Vec<Option<Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sampling interval to use when `requested` is wanted: shortened, where a counter
    /// could otherwise wrap unseen between two readings, to half its wrap period at its
    /// plausible peak power (at least 1 ms).
    pub fn sampling_interval(&self, requested: Duration) -> Duration {
        self.domains
            .iter()
            .filter_map(|d| d.counter()?.safe_interval())
            .fold(requested, Duration::min)
    }

    /// Fresh accumulators for a window sampled every `interval` (`None`: read at its edges
    /// only): a counter's peak power is taken over spans of at least [`PEAK_SPAN_UPDATES`] of
    /// its updates (quantisation then stays under 10 %) and at least the sampling interval,
    /// and a wrap that implies more than twice its plausible peak power is a reset
    /// ([`Accumulator::with_plausible_power`]); a time between readings longer than twice the
    /// interval is a gap ([`Accumulator::gap_excess_s`]).
    pub(crate) fn accumulators(&self, interval: Option<Duration>) -> Vec<Accumulator> {
        let probes = self.probes();
        self.domains
            .iter()
            .zip(probes)
            .map(|(d, p)| {
                let acc = match d.counter() {
                    Some(c) => {
                        let update = p.and_then(|p| p.update).unwrap_or(c.nominal_update);
                        let sampled = interval.unwrap_or(Duration::ZERO);
                        Accumulator::with_min_peak_span(
                            (PEAK_SPAN_UPDATES * update).max(sampled).as_secs_f64(),
                        )
                        .with_plausible_power(PLAUSIBLE_PEAK_FACTOR * c.peak_w)
                    }
                    None => Accumulator::new(),
                };
                match interval {
                    Some(i) => acc.with_expected_interval(i.as_secs_f64()),
                    None => acc,
                }
            })
            .collect()
    }

    /// The final readings of a window, at `t` s: into its accumulators, and into the
    /// cross-check samples of the domains that have them, so that the check spans the whole
    /// window, as the figure does.
    pub(crate) fn push_final(
        &self,
        accs: &mut [Accumulator],
        checks: &mut [Option<CheckSamples>],
        t: f64,
        ctx: &ReadContext,
    ) {
        let readings = self.read_all(ctx);
        for ((d, r), c) in self.domains.iter().zip(&readings).zip(checks.iter_mut()) {
            if let (Some(c), Ok(r), Ok(watts)) = (c.as_mut(), r, d.reported_power()) {
                c.push(t, r, watts);
            }
        }
        for (acc, r) in accs.iter_mut().zip(readings) {
            match r {
                Ok(r) => {
                    acc.push(t, r);
                }
                Err(e) => acc.fail(e),
            }
        }
    }

    pub(crate) fn read_all(&self, ctx: &ReadContext) -> Vec<Result<Reading, String>> {
        let readings: Vec<_> = self.domains.iter().map(|d| d.read(ctx)).collect();
        let now = Instant::now();
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        for (w, r) in watched.iter_mut().zip(&readings) {
            if let Ok(Reading::Counter { raw, .. }) = r {
                match w {
                    Some(w) => w.see(*raw, now),
                    None => *w = Some(Watched::new(*raw, now)),
                }
            }
        }
        readings
    }

    pub(crate) fn context(&self) -> ReadContext {
        ReadContext {
            tree: self.cfg.cpu_scope.snapshot().ok(),
        }
    }

    /// Opens a window: reads every counter now. The caller has synchronised the device.
    /// GPUs with power samples only, wrapping counters, and GPUs whose counter has a power
    /// reading beside it (for the cross-check) get a background sampler for the window's
    /// duration.
    pub fn start(&self) -> Result<EnergyWindow, EnergyError> {
        if self.domains.is_empty() {
            return Err(EnergyError::NoMeters(
                "no meter was found (see `wattbench info`)".into(),
            ));
        }
        // Power-only GPUs need samples to integrate; wrapping counters need a reading at
        // least twice per wrap period at their plausible peak power, so long windows stay
        // correct. Otherwise no thread runs beside the benchmark.
        let integrated = self
            .domains
            .iter()
            .any(|d| d.source() == Source::Integrated);
        let wraps = self
            .domains
            .iter()
            .any(|d| d.counter().is_some_and(|c| c.wraps));
        let checked = self.domains.iter().any(|d| d.power_reading().is_some());
        let interval = (integrated || wraps || checked).then(|| {
            self.sampling_interval(if integrated || checked {
                self.cfg.sample_interval
            } else {
                WRAP_GUARD_INTERVAL
            })
        });
        let mut accs = self.accumulators(interval);
        let t0 = Instant::now();
        let ctx = self.context();
        let readings = self.read_all(&ctx);
        // The cross-check spans the whole window: its first samples are these readings.
        let checks: Vec<Option<CheckSamples>> = self
            .domains
            .iter()
            .zip(&readings)
            .map(|(d, r)| {
                let mut c = d.power_reading().map(|_| CheckSamples::default());
                if let (Some(c), Ok(r), Ok(w)) = (c.as_mut(), r, d.reported_power()) {
                    c.push(0.0, r, w);
                }
                c
            })
            .collect();
        let mut ok = 0;
        for (acc, r) in accs.iter_mut().zip(readings) {
            match r {
                Ok(r) => {
                    acc.push(0.0, r);
                    ok += 1;
                }
                Err(e) => acc.fail(e),
            }
        }
        if ok == 0 {
            let why: Vec<String> = accs
                .iter()
                .zip(&self.domains)
                .map(|(a, d)| format!("{}: {}", d.name(), a.error().unwrap_or("?")))
                .collect();
            return Err(EnergyError::NoMeters(why.join("; ")));
        }
        let accs = Arc::new(Mutex::new(accs));
        let sampler = match interval {
            Some(i) => Some(Sampler::start_shared(self, accs.clone(), checks, t0, i)?),
            None => None,
        };
        Ok(EnergyWindow { t0, accs, sampler })
    }

    /// Closes a window: one [`DomainEnergy`] per domain.
    pub fn stop(&self, w: EnergyWindow) -> Vec<DomainEnergy> {
        self.close(w).0
    }

    /// [`Meters::stop`], with each domain's accumulated readings beside its figure.
    pub(crate) fn close(&self, w: EnergyWindow) -> (Vec<DomainEnergy>, Vec<Accumulator>) {
        // The background sampler stops first (joined: no tick can run after this), then
        // the final readings are taken and pushed under the lock: a late tick can never land
        // after them and make the final value look like a counter wrap.
        let (mut checks, failed) = match w.sampler.map(Sampler::finish) {
            Some(Ok(out)) => (out.checks, None),
            // Its readings up to the failure are in the shared accumulators; its cross-check
            // samples are lost.
            Some(Err(e)) => (Vec::new(), Some(e.to_string())),
            None => (Vec::new(), None),
        };
        let mut accs = w.accs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = failed {
            for acc in accs.iter_mut() {
                acc.fail(e.clone());
            }
        }
        let ctx = self.context();
        let t = w.t0.elapsed().as_secs_f64();
        // ... and its last ones are the final readings.
        self.push_final(&mut accs, &mut checks, t, &ctx);
        let probes = self.probes();
        let watched = self.watched();
        let domains = self
            .domains
            .iter()
            .zip(accs.iter())
            .zip(probes.iter().zip(watched))
            .enumerate()
            .map(|(i, ((d, a), (p, w)))| {
                let check = checks.get(i).and_then(Option::as_ref);
                domain_energy(d.as_ref(), a, (p.as_ref(), w), check)
            })
            .collect();
        (domains, accs.clone())
    }

    /// Measures every domain over `d` while the caller does nothing; `avg_watts` is the idle
    /// power to subtract with [`crate::net_joules`].
    pub fn idle_baseline(&self, d: Duration) -> Vec<DomainEnergy> {
        self.idle_baseline_while(d, &|| true)
    }

    /// [`Meters::idle_baseline`], cut short when `keep_going` says no (checked every 50 ms): a
    /// stop asked for during a long baseline is answered then, not at its end.
    pub fn idle_baseline_while(
        &self,
        d: Duration,
        keep_going: &dyn Fn() -> bool,
    ) -> Vec<DomainEnergy> {
        match self.start() {
            Ok(w) => {
                let end = Instant::now() + d;
                while let Some(left) = end.checked_duration_since(Instant::now()) {
                    if left.is_zero() || !keep_going() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
                self.stop(w)
            }
            Err(e) => self
                .domains
                .iter()
                .map(|dm| {
                    DomainEnergy::unsupported(dm.name(), dm.scope(), format!("unavailable: {e}"))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 J read over 2 s of a 4 s window (2 s lost to a counter that went backwards): 20 J
    /// more at the read time's 10 W; none lost, nothing added; more lost than read, no figure.
    #[test]
    fn time_without_a_reading_is_filled_at_the_mean_power_unless_most_was_lost() {
        assert_eq!(discarded_fill(20.0, 4.0, 2.0), Some(20.0));
        assert_eq!(discarded_fill(20.0, 4.0, 0.0), Some(0.0));
        assert_eq!(discarded_fill(20.0, 4.0, 1.0), Some(20.0 / 3.0));
        assert_eq!(discarded_fill(0.0, 5.01, 5.0), None);
        assert_eq!(discarded_fill(20.0, 4.0, 4.0), None);
    }

    /// A filled gap raises the mean to the read time's mean power, past the peak of the spans
    /// read when one of them straddles the gap: the peak is then the mean, never below it.
    #[test]
    fn the_peak_is_never_below_the_mean_after_a_fill() {
        let counter = |mj: u64| Reading::Counter {
            raw: mj,
            joules_per_unit: 1e-3,
            wrap_at: None,
        };
        let mut acc = Accumulator::with_min_peak_span(2.0);
        acc.push(0.0, counter(0));
        acc.push(1.0, counter(10_000));
        acc.push(2.0, counter(5)); // backwards, range unknown: 1 s discarded
        acc.push(3.0, counter(10_005));
        assert_eq!((acc.joules(), acc.discarded_s()), (Some(20.0), 1.0));
        // The only span of 2 s or more straddles the gap: 10 J over 2 s.
        assert_eq!(acc.peak_watts(), Some(5.0));
        let d = crate::fake::StepCounter::new("package-0", 1, 0.1);
        let e = domain_energy(&d, &acc, (None, None), None);
        // 20 J read over 2 s, 10 J filled for the lost second: 30 J over 3 s.
        assert_eq!((e.joules, e.avg_watts), (Some(30.0), Some(10.0)));
        assert_eq!(e.peak_watts, Some(10.0));
        assert!(
            e.warnings.iter().any(|w| w.contains("had no reading")),
            "{:?}",
            e.warnings
        );
    }
}
