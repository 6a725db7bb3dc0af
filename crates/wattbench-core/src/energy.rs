//! The energy vocabulary every result uses, hardware-free: where a figure comes from
//! ([`Source`]), intervals ([`Interval`]), one domain's energy over one window
//! ([`DomainEnergy`]), totals that say what they add ([`total_energy`]), idle subtraction
//! ([`net_joules`]) and the per-case record written into result files ([`CaseEnergy`]),
//! built in one place ([`CaseEnergy::from_window`]). The meters that produce
//! [`DomainEnergy`] live in `wattbench-energy`.
use serde::{Deserialize, Serialize};

/// Where an energy figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Difference of a hardware energy counter (NVML total energy, RAPL `energy_uj`).
    Measured,
    /// Power samples integrated over time (trapezoid rule).
    Integrated,
    /// A model (TDP × utilisation), not a measurement.
    Estimated,
    /// No reading; `joules` is null and `reason` says why.
    Unsupported,
}

impl Source {
    /// The lowercase label used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Measured => "measured",
            Source::Integrated => "integrated",
            Source::Estimated => "estimated",
            Source::Unsupported => "unsupported",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value with an interval around it, carried from joules to kWh to CO2e. A bound that is
/// unknown is infinite (an uncertainty nobody stated: see [`unknown_as_unbounded`]), written
/// as `null` and read back as infinite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Best estimate.
    pub value: f64,
    /// Lower bound; `null` in files when unbounded (-∞).
    #[serde(serialize_with = "bound::write", deserialize_with = "bound::read_low")]
    pub low: f64,
    /// Upper bound; `null` in files when unbounded (+∞).
    #[serde(serialize_with = "bound::write", deserialize_with = "bound::read_high")]
    pub high: f64,
}

/// An interval's bounds in files: an infinite (unknown) bound is `null`, which JSON has for
/// it, and `null` is read back as the infinity on its side.
mod bound {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn write<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn read_low<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
    }

    pub fn read_high<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// The half-width to compute with for a figure's stated uncertainty: `None` (or a non-finite
/// value) beside a figure is an uncertainty nobody knows, so unbounded, never 0. Files write
/// an unknown uncertainty as `null`, which reads back as `None`.
pub fn unknown_as_unbounded(uncertainty_j: Option<f64>) -> f64 {
    uncertainty_j
        .filter(|u| u.is_finite())
        .unwrap_or(f64::INFINITY)
}

/// An uncertainty to store: `None` when it is unknown (not finite), which is what a file can
/// hold (JSON has no infinity) and reads back the same.
pub fn stored_uncertainty(half_width_j: f64) -> Option<f64> {
    half_width_j.is_finite().then_some(half_width_j)
}

impl Interval {
    /// `value ± half_width`, with the lower bound kept at or above zero.
    pub fn symmetric(value: f64, half_width: f64) -> Interval {
        let hw = half_width.abs();
        Interval {
            value,
            low: (value - hw).max(0.0),
            high: value + hw,
        }
    }

    /// Every bound multiplied by a non-negative factor ([`bound_times`]: a factor of 0 makes an
    /// unknown bound 0, not NaN).
    pub fn scale(self, k: f64) -> Interval {
        Interval {
            value: bound_times(self.value, k),
            low: bound_times(self.low, k),
            high: bound_times(self.high, k),
        }
    }
}

/// A figure or bound times a factor, where 0 times an unknown (infinite) bound is 0: the
/// quantity behind an unknown bound is finite, so a zero intensity or price makes it 0, where
/// IEEE's NaN would print as `NaN` and be written as `null` (read back as unknown).
pub fn bound_times(x: f64, k: f64) -> f64 {
    if x == 0.0 || k == 0.0 {
        0.0
    } else {
        x * k
    }
}

/// Bound-wise sum (worst case: uncertainties add linearly).
impl std::ops::Add for Interval {
    type Output = Interval;
    fn add(self, o: Interval) -> Interval {
        Interval {
            value: self.value + o.value,
            low: self.low + o.low,
            high: self.high + o.high,
        }
    }
}

/// What a CPU energy estimate rests on, recorded beside its figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateAssumptions {
    /// The model in words.
    pub model: String,
    /// CPU TDP used, W.
    pub tdp_watts: f64,
    /// Where the TDP comes from (flag, table entry or default).
    pub tdp_source: String,
    /// Hardware threads the TDP is spread over.
    pub hardware_threads: u32,
    /// TDP / hardware threads, W.
    pub watts_per_busy_thread: f64,
    /// CPU model string.
    pub cpu_model: String,
    /// Logical CPUs of the machine.
    pub logical_cpus: u32,
    /// CPU seconds of the metered scope in the window.
    pub cpu_seconds: f64,
    /// CPU seconds / (window × logical CPUs); null for an empty window.
    pub utilisation_of_machine: Option<f64>,
    /// Relative uncertainty given to the figure.
    pub relative_uncertainty: f64,
    /// Why that uncertainty: the vendor's boost power where published, else a stated
    /// convention.
    #[serde(default)]
    pub uncertainty_basis: String,
    /// The package's boost power limit (PL2, PPT), W, where published.
    #[serde(default)]
    pub boost_watts: Option<f64>,
    /// What the estimate leaves out.
    pub excludes: String,
    /// How this compares with other tools' fallbacks.
    pub comparison: String,
}

/// Whether the two figures agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the bound their sensor accuracy and edge effects explain.
    Agree,
    /// Further apart than that: one of them (or the load) is not what it seems.
    Disagree,
    /// The span is too short for the averaged power reading to be judged.
    TooShort,
}

/// The counter and the integrated power readings of one domain over the same span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerCheck {
    /// The domain, e.g. `gpu0`.
    pub domain: String,
    /// From the first to the last tick with both readings, s.
    pub span_s: f64,
    /// Ticks with both readings.
    pub samples: usize,
    /// The energy counter's increase over the span, J (`measured`).
    pub counter_j: f64,
    /// The trapezoid integral of the driver's power readings over the span, J.
    pub integrated_j: f64,
    /// `integrated_j / counter_j` (null when the counter did not move).
    pub ratio: Option<f64>,
    /// The largest relative difference their limits explain: each figure's sensor accuracy,
    /// the averaging window's lag at both edges and the counter's update period at both
    /// edges, relative to the span.
    pub tolerance: f64,
    /// Whether they agree within `tolerance`.
    pub verdict: Verdict,
    /// What the power reading is (averaging window, part-time sampling).
    pub reading: String,
}

impl PowerCheck {
    /// One line for a summary.
    pub fn line(&self) -> String {
        let ratio = self
            .ratio
            .map_or("no ratio: the counter did not move".into(), |r| {
                format!("ratio {r:.3}")
            });
        let verdict = match self.verdict {
            Verdict::Agree => format!("they agree within ±{:.0} %", self.tolerance * 100.0),
            Verdict::Disagree => format!(
                "they DISAGREE by more than the ±{:.0} % their limits explain",
                self.tolerance * 100.0
            ),
            Verdict::TooShort => "too short a span to judge an averaged power reading".to_string(),
        };
        format!(
            "{}: energy counter {:.3} J vs integrated power readings {:.3} J over {:.2} s \
             ({} samples; {ratio}; {verdict})",
            self.domain, self.counter_j, self.integrated_j, self.span_s, self.samples
        )
    }

    /// The warning for the report, when they disagree.
    pub fn warning(&self) -> Option<String> {
        (self.verdict == Verdict::Disagree).then(|| {
            format!(
                "{}: the energy counter ({:.3} J) and the integral of the driver's power \
                 readings ({:.3} J) over the same {:.2} s differ by more than the ±{:.0} % \
                 their accuracy and edge effects explain; the reported energy is the \
                 counter's, but treat it with suspicion (the power reading: {})",
                self.domain,
                self.counter_j,
                self.integrated_j,
                self.span_s,
                self.tolerance * 100.0,
                self.reading
            )
        })
    }
}

/// Energy of one domain over one window, as a meter reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEnergy {
    /// `gpu0`, `cpu-package-0`, `dram-0`, `cpu-estimate`...
    pub name: String,
    /// How the figure was obtained.
    pub source: Source,
    /// Why there is no figure, or a caveat about it.
    pub reason: Option<String>,
    /// Joules; null when unsupported, never 0 for a missing reading.
    pub joules: Option<f64>,
    /// Window length, s.
    pub window_s: f64,
    /// Uncertainty of `joules` (half-width), J; null beside a figure when unknown (never
    /// read as 0: see [`unknown_as_unbounded`]).
    pub uncertainty_j: Option<f64>,
    /// joules / window, W.
    pub avg_watts: Option<f64>,
    /// Highest mean power over any span of at least the domain's minimum (for a counter, ten
    /// of its updates or the sampling interval, whichever is longer; 50 ms of CPU time), W.
    pub peak_watts: Option<f64>,
    /// What it covers: `device`, `package`, `dram`, `process`, `process-tree`...
    pub scope: String,
    /// Whether totals add it (false for overlapping domains such as core, uncore, psys).
    pub in_total: bool,
    /// Why it is not in totals, or other caveats.
    #[serde(default)]
    pub note: Option<String>,
    /// Model assumptions, for estimates.
    pub assumptions: Option<EstimateAssumptions>,
    /// What may make this figure wrong, each with its consequence: a window shorter than the
    /// counter resolves, a wrap that may have been missed, an unknown wrap range, power
    /// readings that disagree with the counter.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// For a counter whose driver also reports power (an NVML GPU): the counter beside the
    /// integral of those readings over the same span, and whether they agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_check: Option<PowerCheck>,
}

impl DomainEnergy {
    /// A domain with no figure, and why.
    pub fn unsupported(name: &str, scope: &str, reason: String) -> Self {
        DomainEnergy {
            name: name.to_string(),
            source: Source::Unsupported,
            reason: Some(reason),
            joules: None,
            window_s: 0.0,
            uncertainty_j: None,
            avg_watts: None,
            peak_watts: None,
            scope: scope.to_string(),
            in_total: true,
            note: None,
            assumptions: None,
            warnings: Vec::new(),
            power_check: None,
        }
    }
}

/// What "gross" energy covers, in the words every output uses: counters cover whole devices
/// with their idle power, the CPU estimate only the measured process's CPU time.
pub const GROSS_MEANS: &str = "gross: for a counter (measured or integrated), all that the \
    whole GPU or CPU package drew, idle power and other processes included; for the CPU \
    estimate, the TDP share of the measured process's CPU time alone, without idle power or \
    other processes (so its net is about its gross)";

/// Gross and net (above idle) energy of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NetEnergy {
    /// Idle power of the domain, W.
    pub idle_watts: f64,
    /// Energy the window would have used at idle, J.
    pub idle_joules: f64,
    /// Gross − idle, J. Not clamped: a negative value means the load was within noise of idle.
    pub net_joules: f64,
    /// Uncertainty of the net figure (gross and scaled idle uncertainties added), J; infinite
    /// (`null` in files) when either is unknown.
    pub uncertainty_j: f64,
}

/// Subtracts the idle baseline from a window: net = gross − idle_watts × window.
/// `None` when either reading is missing or the idle window is empty.
pub fn net_joules(gross: &DomainEnergy, idle: &DomainEnergy) -> Option<NetEnergy> {
    let g = gross.joules?;
    let i = idle.joules?;
    if idle.window_s <= 0.0 {
        return None;
    }
    let idle_watts = i / idle.window_s;
    let scale = gross.window_s / idle.window_s;
    let idle_joules = idle_watts * gross.window_s;
    Some(NetEnergy {
        idle_watts,
        idle_joules,
        net_joules: g - idle_joules,
        uncertainty_j: unknown_as_unbounded(gross.uncertainty_j)
            + unknown_as_unbounded(idle.uncertainty_j) * scale,
    })
}

/// The net figure of domain `gross` against the idle baseline `idle` (found by name): a
/// counter's gross minus its idle power over the window ([`net_joules`]); the CPU estimate's
/// gross as it is, since it models the measured process alone and has no idle part (so an
/// idle window's background CPU time never lowers it). The one rule of `run`, `train` and
/// `measure`.
pub fn net_of(gross: &DomainEnergy, idle: &[DomainEnergy]) -> Option<NetEnergy> {
    if gross.source == Source::Estimated {
        return gross.joules.map(|j| NetEnergy {
            idle_watts: 0.0,
            idle_joules: 0.0,
            net_joules: j,
            uncertainty_j: unknown_as_unbounded(gross.uncertainty_j),
        });
    }
    net_joules(gross, idle.iter().find(|i| i.name == gross.name)?)
}

/// The idle baseline to subtract when idle was measured both before and after the work: per
/// domain, the mean of the two idle powers (as a 1-second window), its uncertainty the larger
/// of the two plus half their difference. A domain read only once keeps that reading. The
/// warnings name domains whose idle power moved by more than 10 % and more than their
/// uncertainty (clocks or temperature changed: the net figures are less certain). An
/// estimated domain is kept as it was before the work, without a drift warning: no net figure
/// subtracts its idle ([`net_of`]), so its drift changes nothing.
pub fn mean_idle(
    before: &[DomainEnergy],
    after: &[DomainEnergy],
) -> (Vec<DomainEnergy>, Vec<String>) {
    let watts = |d: &DomainEnergy| -> Option<(f64, f64)> {
        let j = d.joules?;
        (d.window_s > 0.0).then(|| {
            (
                j / d.window_s,
                unknown_as_unbounded(d.uncertainty_j) / d.window_s,
            )
        })
    };
    let mut warnings = Vec::new();
    let out = before
        .iter()
        .map(|b| {
            if b.source == Source::Estimated {
                return b.clone();
            }
            let a = after.iter().find(|a| a.name == b.name);
            match (watts(b), a.and_then(watts)) {
                (Some((wb, ub)), Some((wa, ua))) => {
                    let drift = (wa - wb).abs();
                    let mean = 0.5 * (wa + wb);
                    if drift > 0.1 * mean.abs() && drift > ub.max(ua) {
                        warnings.push(format!(
                            "{}: idle power moved from {wb:.2} W before the run to {wa:.2} W \
                             after it (clocks, temperature or other load changed); the net \
                             figures use the mean, with half the difference in their \
                             uncertainty",
                            b.name
                        ));
                    }
                    DomainEnergy {
                        joules: Some(mean),
                        window_s: 1.0,
                        uncertainty_j: stored_uncertainty(ub.max(ua) + 0.5 * drift),
                        avg_watts: Some(mean),
                        peak_watts: None,
                        // A mean of two windows: neither window's cross-check is its own.
                        power_check: None,
                        ..b.clone()
                    }
                }
                (None, Some(_)) => a.cloned().unwrap_or_else(|| b.clone()),
                _ => b.clone(),
            }
        })
        .collect();
    (out, warnings)
}

/// A sum of domains that says exactly what it includes and what it leaves out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyTotal {
    /// Joules with interval; null when no domain could be added.
    pub joules: Option<Interval>,
    /// Domains added, as `name (source)`.
    pub includes: Vec<String>,
    /// Domains left out, as `name: why`.
    pub excludes: Vec<String>,
    /// Distinct sources in the sum.
    pub sources: Vec<Source>,
    /// True when figures of more than one source (measured, integrated, estimated) were
    /// added together.
    pub mixed: bool,
    /// Joules from `estimated` domains alone (so a reader can take them out).
    pub estimated_joules: Option<f64>,
    /// Domains that count toward the total but had no reading (also in `excludes`, with
    /// why): while any is missing, the total is partial.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// Adds the non-overlapping domains that have a reading (`in_total`), and lists the rest.
pub fn total_energy(domains: &[DomainEnergy]) -> EnergyTotal {
    let mut includes = Vec::new();
    let mut excludes = Vec::new();
    let mut missing = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut sum: Option<Interval> = None;
    let mut est = None;
    for d in domains {
        match (d.in_total, d.joules) {
            (true, Some(j)) => {
                let iv = Interval::symmetric(j, unknown_as_unbounded(d.uncertainty_j));
                sum = Some(sum.map_or(iv, |s| s + iv));
                includes.push(format!("{} ({})", d.name, d.source));
                if !sources.contains(&d.source) {
                    sources.push(d.source);
                }
                if d.source == Source::Estimated {
                    est = Some(est.unwrap_or(0.0) + j);
                }
            }
            (false, _) => excludes.push(format!(
                "{}: {}",
                d.name,
                d.note.as_deref().unwrap_or("overlaps another domain")
            )),
            (true, None) => {
                excludes.push(format!(
                    "{}: no reading ({})",
                    d.name,
                    d.reason.as_deref().unwrap_or("unsupported")
                ));
                missing.push(d.name.clone());
            }
        }
    }
    let mixed = sources.len() > 1;
    EnergyTotal {
        joules: sum,
        includes,
        excludes,
        sources,
        mixed,
        estimated_joules: est,
        missing,
    }
}

/// The domains of one window of `window_s` seconds with each one whose readings cover less
/// than the window (or than the longest domain's readings, if longer: the window's clock and
/// the meters' differ by the reads at its edges) completed to it at its mean power, with
/// its warning: what every total of a window (a case's, a training run's and its projection,
/// a `measure` report's) must add, or a counter that lost its readings midway would be
/// counted as if its device had stopped.
pub fn cover_span(domains: &[DomainEnergy], window_s: f64) -> Vec<DomainEnergy> {
    let span = domains
        .iter()
        .filter(|d| d.joules.is_some())
        .map(|d| d.window_s)
        .fold(window_s, f64::max);
    domains.iter().map(|d| cover_window(d, span)).collect()
}

/// A domain whose readings cover less of the window than the other domains' (a reading failed
/// at an edge of the window): its energy scaled to the whole window at its mean power, the
/// uncertainty widened by the energy so added, and a warning that says so. Others unchanged.
fn cover_window(d: &DomainEnergy, window_s: f64) -> DomainEnergy {
    let (Some(j), Some(avg)) = (d.joules, d.avg_watts) else {
        return d.clone();
    };
    let missing = window_s - d.window_s;
    // Domains read one after another differ by the reads' few milliseconds.
    if !(d.window_s > 0.0 && missing > 0.05 + 0.02 * window_s) {
        return d.clone();
    }
    let added = avg * missing;
    let mut out = d.clone();
    out.joules = Some(j + added);
    out.uncertainty_j =
        stored_uncertainty(unknown_as_unbounded(d.uncertainty_j) * window_s / d.window_s + added);
    out.window_s = window_s;
    out.warnings.push(format!(
        "its readings cover {:.3} s of the {window_s:.3} s window (a reading failed at its \
         edge): the missing {missing:.3} s are counted at the mean power of the rest, {avg:.3} \
         W, and the uncertainty widened by that much",
        d.window_s
    ));
    out
}

/// "measured, integrated and estimated": the sources of a total, for notes.
pub fn sources_named(sources: &[Source]) -> String {
    let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// One domain's share of a case, per call (or per training step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// Domain name.
    pub name: String,
    /// How the figure was obtained.
    pub source: Source,
    /// Why there is no figure, or a caveat.
    pub reason: Option<String>,
    /// What it covers.
    pub scope: String,
    /// Whether the total adds it.
    pub in_total: bool,
    /// Joules per call; null when unread (never 0 for a missing reading).
    pub joules_per_iter: Option<f64>,
    /// Uncertainty of `joules_per_iter` (half-width), J; null beside a figure when unknown.
    pub uncertainty_j: Option<f64>,
    /// Length of the window the figure covers, s.
    pub window_s: f64,
    /// Mean power over the window, W.
    pub avg_watts: Option<f64>,
    /// Idle power of the domain, W, when the baseline has a reading.
    pub idle_watts: Option<f64>,
    /// Energy above idle per call, J.
    pub net_joules_per_iter: Option<f64>,
    /// Uncertainty of `net_joules_per_iter` (half-width: the gross figure's and the idle
    /// baseline's, scaled to the window), J; null beside a net figure when unknown.
    #[serde(default)]
    pub net_uncertainty_j: Option<f64>,
    /// Why it is not in the total, or other caveats.
    pub note: Option<String>,
    /// Model assumptions of an estimate.
    pub assumptions: Option<EstimateAssumptions>,
    /// What may make this figure wrong (see [`DomainEnergy::warnings`]).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The counter beside the integrated power readings over the window (see
    /// [`DomainEnergy::power_check`]); whole-window joules, not per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_check: Option<PowerCheck>,
}

/// The energy of one case (or training run), per call (or per step): every domain with its
/// source, and a total that says what it adds. The one shape `run` and `train` write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseEnergy {
    /// Calls (training steps) the window covered; figures are divided by this.
    pub calls: u64,
    /// What one call is: `call` (`run`) or `training step` (`train`).
    pub unit: String,
    /// Length of the window, s.
    pub window_s: f64,
    /// One row per domain.
    pub domains: Vec<DomainRecord>,
    /// Sum of the domains in the total, per call, with its interval; null when none had a
    /// reading.
    pub total_joules_per_iter: Option<Interval>,
    /// Sum of the net (above idle) figures of the domains in the total, per call; null unless
    /// every one of them has a reading and a net figure.
    pub net_joules_per_iter: Option<f64>,
    /// Uncertainty of `net_joules_per_iter` (half-width; the domains' added), J; null beside
    /// a net figure when unknown (one domain's unknown makes it unknown).
    #[serde(default)]
    pub net_uncertainty_j: Option<f64>,
    /// Domains added, as `name (source)`.
    pub total_includes: Vec<String>,
    /// Domains left out, and why.
    pub total_excludes: Vec<String>,
    /// Distinct sources in the total.
    pub total_sources: Vec<Source>,
    /// Whether the total adds figures of more than one source (see [`EnergyTotal::mixed`]).
    pub total_mixes_sources: bool,
    /// GFLOP per joule of the total; null without a positive total, or when the total is
    /// partial ([`CaseEnergy::missing_domains`]).
    pub gflops_per_joule: Option<f64>,
    /// Caveats: short windows, mixed or estimated sources, a window that could not start.
    pub notes: Vec<String>,
    /// The metered GPUs' clocks, temperature and throttle reasons at the end of the window;
    /// `[]` without GPUs.
    #[serde(default)]
    pub gpu_state: Vec<crate::result::GpuState>,
}

impl CaseEnergy {
    /// The record of `window` (its calls, their FLOPs, its length) from the meters' `domains`
    /// and the run's `idle` baseline (may be empty): per-call figures, net of idle where the
    /// baseline has a reading, a total that says what it adds, and notes for short windows,
    /// estimates and a window that could not start.
    pub fn from_window(
        domains: &[DomainEnergy],
        idle: &[DomainEnergy],
        window: Window<'_>,
    ) -> CaseEnergy {
        let calls = window.calls.max(1);
        let per = |v: Option<f64>| v.map(|j| j / calls as f64);
        // Against the window (or the meters' own span, when longer), a domain that missed an
        // edge shows.
        let domains = cover_span(domains, window.window_s);
        let domains = domains.as_slice();
        let rows: Vec<DomainRecord> = domains
            .iter()
            .map(|d| {
                let net = net_of(d, idle);
                DomainRecord {
                    name: d.name.clone(),
                    source: d.source,
                    reason: d.reason.clone(),
                    scope: d.scope.clone(),
                    in_total: d.in_total,
                    joules_per_iter: per(d.joules),
                    uncertainty_j: per(d.uncertainty_j).and_then(stored_uncertainty),
                    window_s: d.window_s,
                    avg_watts: d.avg_watts,
                    // The estimate has no idle part: no idle figure, not 0 W.
                    idle_watts: net
                        .filter(|_| d.source != Source::Estimated)
                        .map(|n| n.idle_watts),
                    net_joules_per_iter: per(net.map(|n| n.net_joules)),
                    // Null beside a net figure when unknown.
                    net_uncertainty_j: per(net.map(|n| n.uncertainty_j))
                        .and_then(stored_uncertainty),
                    note: d.note.clone(),
                    assumptions: d.assumptions.clone(),
                    warnings: d.warnings.clone(),
                    power_check: d.power_check.clone(),
                }
            })
            .collect();
        let total = total_energy(domains);
        let total_per_call = total.joules.map(|iv| iv.scale(1.0 / calls as f64));
        let missing = missing(&rows);
        // GFLOP/J of a partial total would overstate the efficiency by the missing share.
        let gflops_per_joule = total_per_call
            .filter(|iv| iv.value > 0.0 && missing.is_empty())
            .map(|iv| window.flops_per_call as f64 / 1e9 / iv.value);
        let (net, net_uncertainty) = net_total(&rows);
        let mut notes = Vec::new();
        if let Some(e) = window.error {
            notes.push(format!("not measured: {e}"));
        }
        if !missing.is_empty() && total_per_call.is_some() {
            notes.push(format!(
                "PARTIAL total: no reading from {} in this window (why: the domain rows); the \
                 total covers the other domains only, so no GFLOP/J and no net figure are given",
                missing.join(", ")
            ));
        }
        if let Some(min) = window.min_window_s {
            if window.error.is_none() && window.window_s < min {
                notes.push(format!(
                    "the window lasted {:.3} s, less than the meters' minimum reliable window \
                     of {min:.3} s: the meters' resolution (a counter's update period, the CPU \
                     clock's ticks) dominates",
                    window.window_s
                ));
            }
        }
        if total.mixed {
            notes.push(format!(
                "the total adds {} domains",
                sources_named(&total.sources)
            ));
        }
        if total.sources.contains(&Source::Estimated) {
            notes.push(
                "estimated: CPU energy from a TDP x CPU-time model, not a counter (no readable \
                 RAPL package counter here)"
                    .into(),
            );
        }
        CaseEnergy {
            calls,
            unit: window.unit.to_string(),
            window_s: window.window_s,
            domains: rows,
            total_joules_per_iter: total_per_call,
            net_joules_per_iter: net,
            net_uncertainty_j: net_uncertainty,
            total_includes: total.includes,
            total_excludes: total.excludes,
            total_sources: total.sources,
            total_mixes_sources: total.mixed,
            gflops_per_joule,
            notes,
            gpu_state: Vec::new(),
        }
    }
}

/// What an energy total is a total of: its sources, the meters it adds and, for an estimate,
/// the model's inputs. Two totals are the same quantity only when all three agree: a
/// measured and an estimated figure are not, a total over another set of meters (another
/// `--gpus`, a counter that could not be read) is not, and an estimate with another TDP moves
/// by the model, not by the code. `compare` and `history` both judge sameness by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnergyBasis {
    /// The sources added, sorted: `measured`, `estimated+measured`, ...
    pub sources: String,
    /// The domains added, with their sources, sorted, joined by ` + `.
    pub meters: String,
    /// Each estimated domain's TDP and threads (`cpu-estimate: 7 W TDP over 2 threads`);
    /// empty without an estimate.
    pub model: String,
}

impl EnergyBasis {
    /// One line: the sources, then what the total adds and the estimate's inputs in brackets
    /// (`estimated [cpu-estimate (estimated); cpu-estimate: 7 W TDP over 2 threads]`).
    pub fn label(&self) -> String {
        let detail: Vec<&str> = [self.meters.as_str(), self.model.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if detail.is_empty() {
            self.sources.clone()
        } else {
            format!("{} [{}]", self.sources, detail.join("; "))
        }
    }
}

impl CaseEnergy {
    /// The domains that count toward the total but had no reading in this window (a GPU whose
    /// counter failed, a RAPL package that could not be read): the total, its GFLOP/J and its
    /// net figure would leave them out, so none of the three is given while any is missing.
    pub fn missing_domains(&self) -> Vec<&str> {
        missing(&self.domains)
    }

    /// The total per call when it is whole (no domain of it without a reading): what an
    /// efficiency or a comparison between machines may use.
    pub fn whole_total(&self) -> Option<Interval> {
        self.total_joules_per_iter
            .filter(|_| self.missing_domains().is_empty())
    }

    /// [`CaseEnergy::gflops_per_joule`] when the total is whole (files written before
    /// 2026-11-30 stored it for partial totals too: readers use this).
    pub fn whole_gflops_per_joule(&self) -> Option<f64> {
        self.gflops_per_joule
            .filter(|_| self.missing_domains().is_empty())
    }

    /// [`CaseEnergy::whole_gflops_per_joule`] with its interval, from the total's (more
    /// joules, fewer GFLOP/J): the upper bound is infinite when the total's lower bound is 0.
    pub fn whole_gflops_per_joule_interval(&self) -> Option<Interval> {
        let g = self.whole_gflops_per_joule()?;
        let t = self.whole_total()?;
        if !(t.value > 0.0 && t.high > 0.0) {
            return None;
        }
        let gflop = g * t.value;
        Some(Interval {
            value: g,
            low: gflop / t.high,
            high: if t.low > 0.0 {
                gflop / t.low
            } else {
                f64::INFINITY
            },
        })
    }

    /// The net figure per call and its uncertainty when the total is whole (as
    /// [`CaseEnergy::whole_gflops_per_joule`]). The uncertainty is always given: infinite
    /// when unknown (`null` in the file, or absent from an old one), never 0.
    pub fn whole_net(&self) -> Option<(f64, f64)> {
        self.net_joules_per_iter
            .filter(|_| self.missing_domains().is_empty())
            .map(|n| (n, unknown_as_unbounded(self.net_uncertainty_j)))
    }

    /// What this record's total is a total of ([`EnergyBasis`]).
    pub fn basis(&self) -> EnergyBasis {
        let mut sources: Vec<&str> = self.total_sources.iter().map(|s| s.as_str()).collect();
        sources.sort_unstable();
        sources.dedup();
        let mut meters = self.total_includes.clone();
        meters.sort();
        let model: Vec<String> = (self.domains.iter())
            .filter(|d| d.in_total)
            .filter_map(|d| {
                let a = d.assumptions.as_ref()?;
                Some(format!(
                    "{}: {} W TDP over {} threads",
                    d.name, a.tdp_watts, a.hardware_threads
                ))
            })
            .collect();
        EnergyBasis {
            sources: sources.join("+"),
            meters: meters.join(" + "),
            model: model.join("; "),
        }
    }
}

impl CaseEnergy {
    /// Recomputes the net (above idle) figures against another idle baseline, e.g. the mean
    /// of the idle before and after a run ([`mean_idle`]).
    pub fn rebase(&mut self, idle: &[DomainEnergy]) {
        let calls = self.calls.max(1) as f64;
        for r in &mut self.domains {
            let gross = DomainEnergy {
                source: r.source,
                joules: r.joules_per_iter.map(|j| j * calls),
                uncertainty_j: r.uncertainty_j.map(|u| u * calls),
                window_s: r.window_s,
                ..DomainEnergy::unsupported(&r.name, &r.scope, String::new())
            };
            let net = net_of(&gross, idle);
            r.idle_watts = net
                .filter(|_| r.source != Source::Estimated)
                .map(|n| n.idle_watts);
            r.net_joules_per_iter = net.map(|n| n.net_joules / calls);
            r.net_uncertainty_j = net.and_then(|n| stored_uncertainty(n.uncertainty_j / calls));
        }
        (self.net_joules_per_iter, self.net_uncertainty_j) = net_total(&self.domains);
    }
}

/// The names of the domains in the total that have no reading.
fn missing(rows: &[DomainRecord]) -> Vec<&str> {
    (rows.iter())
        .filter(|r| r.in_total && r.joules_per_iter.is_none())
        .map(|r| r.name.as_str())
        .collect()
}

/// The net figure of a case and its uncertainty: the sums over the domains in the total, when
/// every one of them has a reading and a net figure (the net of a partial total would read as
/// the whole one).
fn net_total(rows: &[DomainRecord]) -> (Option<f64>, Option<f64>) {
    let counted: Vec<&DomainRecord> = rows.iter().filter(|r| r.in_total).collect();
    if counted.is_empty()
        || counted
            .iter()
            .any(|r| r.joules_per_iter.is_none() || r.net_joules_per_iter.is_none())
    {
        return (None, None);
    }
    (
        Some(counted.iter().filter_map(|r| r.net_joules_per_iter).sum()),
        // One unknown makes the sum's unknown (null), never 0.
        stored_uncertainty(
            counted
                .iter()
                .map(|r| unknown_as_unbounded(r.net_uncertainty_j))
                .sum(),
        ),
    )
}

/// The window a [`CaseEnergy`] describes.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Calls (or steps) made in it.
    pub calls: u64,
    /// FLOPs of one call.
    pub flops_per_call: u64,
    /// What one call is (`call`, `training step`).
    pub unit: &'a str,
    /// Its length, s.
    pub window_s: f64,
    /// The meters' shortest reliable window, s, when meters ran.
    pub min_window_s: Option<f64>,
    /// Why there is no measurement (the window could not start, no meters), if so.
    pub error: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str, source: Source, joules: Option<f64>, in_total: bool) -> DomainEnergy {
        DomainEnergy {
            name: name.into(),
            source,
            reason: joules
                .is_none()
                .then(|| "unavailable: no counter".to_string()),
            joules,
            window_s: 2.0,
            uncertainty_j: joules.map(|j| j * 0.1),
            avg_watts: joules.map(|j| j / 2.0),
            peak_watts: None,
            scope: "package".into(),
            in_total,
            note: (!in_total).then(|| "inside the package".to_string()),
            assumptions: None,
            warnings: Vec::new(),
            power_check: None,
        }
    }

    fn window(calls: u64) -> Window<'static> {
        Window {
            calls,
            flops_per_call: 2_000_000_000,
            unit: "call",
            window_s: 2.0,
            min_window_s: Some(1.0),
            error: None,
        }
    }

    #[test]
    fn case_record_divides_by_calls_and_labels_every_domain() {
        let domains = [
            domain("cpu-package-0", Source::Measured, Some(40.0), true),
            domain("core-0", Source::Measured, Some(30.0), false),
        ];
        let idle = [domain("cpu-package-0", Source::Measured, Some(10.0), true)];
        let e = CaseEnergy::from_window(&domains, &idle, window(4));
        let total = e.total_joules_per_iter.unwrap();
        assert_eq!((total.value, total.low, total.high), (10.0, 9.0, 11.0));
        // 2 GFLOP per call / 10 J per call.
        assert_eq!(e.gflops_per_joule, Some(0.2));
        // Idle 5 W over the 2 s window: 30 J net over 4 calls.
        assert_eq!(e.domains[0].net_joules_per_iter, Some(7.5));
        assert_eq!(e.net_joules_per_iter, Some(7.5));
        assert_eq!(e.domains[0].idle_watts, Some(5.0));
        // A domain nested in another is left out by design: the total is whole.
        assert!(e.total_excludes.iter().any(|x| x.starts_with("core-0:")));
        assert!(e.missing_domains().is_empty());
        assert_eq!(e.total_sources, vec![Source::Measured]);
        assert!(e.notes.is_empty(), "{:?}", e.notes);
    }

    /// A domain of the total with no reading (a GPU counter that failed for the window):
    /// the total of the rest is given and says it is partial, but no GFLOP/J and no net
    /// figure, which would read as the whole machine's (the package alone: 16x too efficient
    /// beside a 600 J GPU).
    #[test]
    fn a_partial_total_says_so_and_gives_no_efficiency_nor_net() {
        let domains = [
            domain("cpu-package-0", Source::Measured, Some(40.0), true),
            domain("core-0", Source::Measured, Some(30.0), false),
            domain("gpu0", Source::Unsupported, None, true),
        ];
        let idle = [domain("cpu-package-0", Source::Measured, Some(10.0), true)];
        let e = CaseEnergy::from_window(&domains, &idle, window(4));
        assert_eq!(e.total_joules_per_iter.unwrap().value, 10.0);
        // The unread domain is null, not 0 J, and the total says it left it out.
        assert_eq!(e.domains[2].joules_per_iter, None);
        assert!(e
            .total_excludes
            .iter()
            .any(|x| x.starts_with("gpu0: no reading")));
        assert_eq!(e.missing_domains(), ["gpu0"]);
        assert_eq!(e.gflops_per_joule, None);
        assert_eq!((e.net_joules_per_iter, e.net_uncertainty_j), (None, None));
        // The package's own net figure stays in its row.
        assert_eq!(e.domains[0].net_joules_per_iter, Some(7.5));
        assert!(
            e.notes
                .iter()
                .any(|n| n.starts_with("PARTIAL total: no reading from gpu0")),
            "{:?}",
            e.notes
        );
        // Rebased on another idle baseline, it stays without a net figure.
        let mut e = e;
        e.rebase(&idle);
        assert_eq!(e.net_joules_per_iter, None);
    }

    #[test]
    fn net_figures_carry_their_uncertainty() {
        let domains = [domain("cpu-package-0", Source::Measured, Some(40.0), true)];
        let idle = [domain("cpu-package-0", Source::Measured, Some(10.0), true)];
        let e = CaseEnergy::from_window(&domains, &idle, window(4));
        // Gross ±4 J plus the idle's ±1 J over the same 2 s, over 4 calls.
        assert_eq!(e.domains[0].net_uncertainty_j, Some(1.25));
        assert_eq!(e.net_uncertainty_j, Some(1.25));
    }

    #[test]
    fn the_estimate_has_no_idle_part_its_net_is_its_gross() {
        let domains = [domain("cpu-estimate", Source::Estimated, Some(40.0), true)];
        // CPU time an idle window happened to see (a thread pool spinning down) is not idle
        // power to take away from the work's own CPU time.
        let idle = [domain("cpu-estimate", Source::Estimated, Some(10.0), true)];
        let e = CaseEnergy::from_window(&domains, &idle, window(4));
        assert_eq!(e.net_joules_per_iter, Some(10.0));
        assert_eq!(e.domains[0].idle_watts, None, "no idle figure, not 0 W");
        assert_eq!(e.net_uncertainty_j, Some(1.0));
    }

    #[test]
    fn readings_that_miss_an_edge_of_the_window_are_scaled_and_flagged() {
        // The package's readings cover 1 s of the 2 s the DRAM's cover (its first reading
        // failed).
        let mut short = domain("cpu-package-0", Source::Measured, Some(20.0), true);
        short.window_s = 1.0;
        short.avg_watts = Some(20.0);
        short.uncertainty_j = Some(2.0);
        let mut dram = domain("dram-0", Source::Measured, Some(4.0), true);
        dram.uncertainty_j = Some(0.0);
        let e = CaseEnergy::from_window(&[short, dram], &[], window(4));
        let t = e.total_joules_per_iter.unwrap();
        // 20 J + 1 s at 20 W = 40 J, + 4 J, over 4 calls; ±(2 J x 2 + 20 J) / 4.
        assert_eq!((t.value, t.high), (11.0, 17.0));
        assert!(e.domains[0].warnings[0].contains("cover 1.000 s of the 2.000 s window"));
        assert!(e.domains[1].warnings.is_empty());
        // A domain read over the whole window is left alone.
        let e = CaseEnergy::from_window(
            &[domain("cpu-package-0", Source::Measured, Some(40.0), true)],
            &[],
            window(4),
        );
        assert!(e.domains[0].warnings.is_empty());
        assert_eq!(e.total_joules_per_iter.unwrap().value, 10.0);
        // A lone counter that lost its readings midway is completed to the window itself,
        // not left short because no other domain shows the gap.
        let mut lone = domain("cpu-package-0", Source::Measured, Some(10.0), true);
        lone.window_s = 0.5;
        lone.avg_watts = Some(20.0);
        let covered = cover_span(&[lone], 2.0);
        assert_eq!((covered[0].joules, covered[0].window_s), (Some(40.0), 2.0));
        assert!(covered[0].warnings[0].contains("cover 0.500 s of the 2.000 s window"));
    }

    #[test]
    fn missing_readings_give_null_totals_and_notes() {
        let domains = [domain("gpu0", Source::Unsupported, None, true)];
        let mut w = window(3);
        w.window_s = 0.2;
        let e = CaseEnergy::from_window(&domains, &[], w);
        assert_eq!(e.total_joules_per_iter, None);
        assert_eq!(e.gflops_per_joule, None);
        assert_eq!(e.net_joules_per_iter, None);
        assert!(e
            .notes
            .iter()
            .any(|n| n.contains("minimum reliable window")));
        let w = Window {
            error: Some("the energy window could not start: no meter"),
            ..window(3)
        };
        let e = CaseEnergy::from_window(&[], &[], w);
        assert!(e.notes[0].contains("could not start: no meter"));
        // An estimate in the total is said to be one.
        let est = [domain("cpu-estimate", Source::Estimated, Some(1.0), true)];
        let e = CaseEnergy::from_window(&est, &[], window(1));
        assert!(e.notes.iter().any(|n| n.starts_with("estimated")));
    }

    /// A figure whose uncertainty is unknown (a domain that states none: infinite) is written
    /// as null and read back as unknown, never as exact; its total has no upper bound, and a
    /// file holding one can be read back at all (`Interval::high` was a plain number).
    #[test]
    fn an_unknown_uncertainty_round_trips_and_never_reads_as_exact() {
        let mut d = domain("gpu0", Source::Integrated, Some(40.0), true);
        d.uncertainty_j = Some(f64::INFINITY);
        let back: DomainEnergy = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        for d in [&d, &back] {
            let t = total_energy(std::slice::from_ref(d)).joules.unwrap();
            assert_eq!(
                (t.value, t.low, t.high),
                (40.0, 0.0, f64::INFINITY),
                "{d:?}"
            );
        }
        let idle = [domain("gpu0", Source::Integrated, Some(10.0), true)];
        let net = net_joules(&back, &idle[0]).unwrap();
        assert_eq!(net.uncertainty_j, f64::INFINITY);
        let e = CaseEnergy::from_window(&[d], &idle, window(4));
        let json = serde_json::to_string(&e).unwrap();
        let back: CaseEnergy = serde_json::from_str(&json).unwrap();
        let t = back.total_joules_per_iter.unwrap();
        assert_eq!((t.value, t.high), (10.0, f64::INFINITY), "{json}");
        // The net figure is there, its uncertainty unknown: not 0.
        assert_eq!(back.net_joules_per_iter, Some(7.5));
        assert_ne!(back.net_uncertainty_j, Some(0.0), "{json}");
        assert_eq!(back.whole_net(), Some((7.5, f64::INFINITY)));
        let row = &back.domains[0];
        assert_ne!(row.uncertainty_j, Some(0.0));
        // Rebased, it stays unknown.
        let mut rebased = back.clone();
        rebased.rebase(&idle);
        assert_ne!(rebased.net_uncertainty_j, Some(0.0));
        assert_eq!(
            serde_json::to_string(&rebased).unwrap(),
            json,
            "a rebase on the same idle changes nothing"
        );
    }

    #[test]
    fn net_is_gross_minus_idle_power_times_window() {
        let g = domain("d", Source::Measured, Some(40.0), true);
        let i = domain("d", Source::Measured, Some(10.0), true);
        let n = net_joules(&g, &i).unwrap();
        assert_eq!((n.idle_watts, n.net_joules), (5.0, 30.0));
        assert_eq!(n.uncertainty_j, 4.0 + 1.0);
        assert!(net_joules(&domain("d", Source::Unsupported, None, true), &i).is_none());
    }

    /// An idle power that moved between the baselines is warned about for a counter, whose
    /// net subtracts it; not for the CPU estimate, whose net never does (the warning said the
    /// net figures changed when they had not).
    #[test]
    fn idle_drift_is_warned_about_only_where_the_net_subtracts_idle() {
        // 0.005 W before, 1 W after: a drift beyond 10 % of the mean and both uncertainties.
        let idle = |source, j| domain("d", source, Some(j), true);
        let (mean, warnings) = mean_idle(
            &[idle(Source::Measured, 0.01)],
            &[idle(Source::Measured, 2.0)],
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("idle power moved"), "{warnings:?}");
        assert!((mean[0].joules.unwrap() - 0.5025).abs() < 1e-12, "{mean:?}");
        let before = idle(Source::Estimated, 0.01);
        let (mean, warnings) = mean_idle(
            std::slice::from_ref(&before),
            &[idle(Source::Estimated, 2.0)],
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(mean, [before]);
    }

    /// 0 times an unknown (infinite) bound is 0: a zero intensity or price leaves a finite
    /// quantity at 0, not NaN (printed `NaN`, written `null` and read back as unknown).
    #[test]
    fn zero_times_an_unknown_bound_is_zero() {
        let unknown_high = Interval {
            value: 2.0,
            low: 1.0,
            high: f64::INFINITY,
        };
        let z = unknown_high.scale(0.0);
        assert_eq!((z.value, z.low, z.high), (0.0, 0.0, 0.0));
        assert_eq!(bound_times(f64::NEG_INFINITY, 0.0), 0.0);
        assert_eq!(bound_times(0.0, f64::INFINITY), 0.0);
        assert_eq!(unknown_high.scale(2.0).high, f64::INFINITY);
        assert_eq!(bound_times(3.0, 2.0), 6.0);
    }
}
