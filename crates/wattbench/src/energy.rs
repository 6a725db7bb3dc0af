//! Energy per case in `wattbench run`: the meters bracket each case's sampling window
//! ([`WindowObserver`]) and core's [`CaseEnergy::from_window`] turns the window into the
//! per-call record (idle subtracted per domain, sources labelled, totals that say what they
//! add).
use std::sync::Arc;
use std::time::{Duration, Instant};
use wattbench_core::energy::{CaseEnergy, Window};
use wattbench_core::harness::WindowObserver;
use wattbench_core::result::RunFile;
use wattbench_core::units;
use wattbench_energy::gpus::{self, CaseGpu};
use wattbench_energy::{DomainEnergy, EnergyWindow, GpuRecord, Meters};

/// What the per-case energy figures mean, recorded with every run and printed under its
/// table.
pub fn basis_note() -> String {
    format!(
        "Energy per call is the mean over each case's energy window (its whole sampling time, \
         at least min_window_s), divided by the calls made in it. {}. A case's total adds \
         the host's domains and the GPU it ran on (none for a CPU case): other GPUs are \
         listed, not added. Net: gross minus the \
         idle power measured before and after the run (mean of the two). GFLOP/J uses the \
         gross figure. Times and GFLOP/s use the median call, energy the mean call \
         (energy.window_s / energy.calls): a skewed or drifting case makes them differ.",
        capitalised(wattbench_core::energy::GROSS_MEANS)
    )
}

/// `s` with its first letter upper-case.
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// How long each case's energy window lasts at least: the meters' minimum reliable window, or
/// longer when `--energy-window` asks. The two are kept apart, so that a window cut short is
/// blamed on the right one (the meters' resolution, or only the user's request).
#[derive(Debug, Clone, Copy)]
pub struct EnergyWindowLength {
    meters: Duration,
    requested: Option<Duration>,
}

impl EnergyWindowLength {
    /// The meters' minimum, stretched to `requested` seconds when that is longer.
    pub fn new(meters: &Meters, requested: Option<f64>) -> Self {
        Self::of(meters.min_window(), requested)
    }

    fn of(meters: Duration, requested: Option<f64>) -> Self {
        Self {
            meters,
            requested: requested.map(Duration::from_secs_f64),
        }
    }

    fn length(&self) -> Duration {
        self.requested.map_or(self.meters, |r| r.max(self.meters))
    }

    /// The length windows are stretched to, in seconds: the longer of the meters' minimum
    /// and `--energy-window`.
    pub fn seconds(&self) -> f64 {
        self.length().as_secs_f64()
    }

    /// The meters' own minimum reliable window, in seconds.
    pub fn meters_seconds(&self) -> f64 {
        self.meters.as_secs_f64()
    }

    /// The note of a window of `window_s` seconds shorter than `--energy-window` asked, when
    /// that is longer than the meters' minimum (core notes a window shorter than the meters'
    /// minimum). Only `--max-samples` ends the sampling before the window's length.
    fn short_of_request(&self, window_s: f64) -> Option<String> {
        let asked = self.requested?.as_secs_f64();
        (asked > self.meters_seconds() && window_s < asked).then(|| {
            format!(
                "the window lasted {window_s:.3} s, less than the {asked:.3} s asked for by \
                 --energy-window (the meters' own minimum reliable window is {:.3} s): \
                 --max-samples ended the sampling first; raise it for the whole window",
                self.meters_seconds()
            )
        })
    }
}

/// Meters plus the run's idle baseline, shared by every case.
pub struct CaseMeter {
    meters: Arc<Meters>,
    idle: Arc<Vec<DomainEnergy>>,
    min_window: EnergyWindowLength,
    scope: CaseGpu,
    gpus: Arc<Vec<GpuRecord>>,
    window: Option<(Instant, Result<EnergyWindow, String>)>,
}

impl CaseMeter {
    /// A meter for one case, which runs on the GPU `scope` names (or on none) among NVML's
    /// `gpus`.
    pub fn new(
        meters: Arc<Meters>,
        idle: Arc<Vec<DomainEnergy>>,
        min_window: EnergyWindowLength,
        scope: CaseGpu,
        gpus: Arc<Vec<GpuRecord>>,
    ) -> Self {
        Self {
            meters,
            idle,
            min_window,
            scope,
            gpus,
            window: None,
        }
    }
}

/// Measure the idle baseline (nothing of ours running) over the meters' minimum window.
pub fn idle_baseline(meters: &Meters) -> Vec<DomainEnergy> {
    meters.idle_baseline(meters.min_window().max(Duration::from_millis(500)))
}

impl WindowObserver for CaseMeter {
    fn min_window(&self) -> Duration {
        self.min_window.length()
    }

    fn start(&mut self) {
        self.window = Some((
            Instant::now(),
            self.meters.start().map_err(|e| e.to_string()),
        ));
    }

    fn stop(&mut self, calls: u64, flops_per_call: u64) -> Option<CaseEnergy> {
        let (t0, window) = self.window.take()?;
        let (domains, error) = match window {
            Ok(w) => (self.scope.scope(self.meters.stop(w), &self.gpus), None),
            Err(e) => (
                Vec::new(),
                Some(format!("the energy window could not start: {e}")),
            ),
        };
        let window_s = t0.elapsed().as_secs_f64();
        let mut energy = CaseEnergy::from_window(
            &domains,
            &self.idle,
            Window {
                calls,
                flops_per_call,
                unit: "call",
                window_s,
                // The meters' own: core's note on a shorter window blames their resolution.
                min_window_s: Some(self.min_window.meters_seconds()),
                error: error.as_deref(),
            },
        );
        if error.is_none() {
            energy
                .notes
                .extend(self.min_window.short_of_request(window_s));
        }
        energy.gpu_state = self.meters.gpu_states();
        energy.gpu_state.retain(|g| self.scope.owns(g.index));
        Some(energy)
    }
}

/// The net (above idle) energy per call for tables, with its uncertainty, or empty.
pub fn net(energy: &CaseEnergy) -> String {
    let Some((j, u)) = energy.whole_net() else {
        return String::new();
    };
    if !u.is_finite() {
        format!("{} ± unknown", units::joules(j))
    } else if j > 0.0 {
        format!(
            "{} {}",
            units::joules(j),
            units::relative(&wattbench_core::energy::Interval {
                value: j,
                low: j - u,
                high: j + u
            })
        )
    } else {
        format!("{} ± {}", units::joules(j), units::joules(u))
    }
}

/// [`net`] with the sources of the total it is taken from (`estimated`, `measured`…): an
/// estimate's net is one too. Empty without a net figure.
pub fn net_with_sources(energy: &CaseEnergy) -> String {
    if energy.whole_net().is_none() {
        return String::new();
    }
    let sources: Vec<&str> = energy.total_sources.iter().map(|s| s.as_str()).collect();
    format!("{} ({})", net(energy), sources.join("+"))
}

/// The lines printed under a run's table: what the energy columns mean, and every warning
/// about the meters and the idle baseline.
pub fn notes(doc: &RunFile) -> Vec<String> {
    let mut v = Vec::new();
    if doc.cases.iter().any(|c| c.energy.is_some()) {
        v.push(basis_note());
    }
    v.extend(gpus::describe(&doc.environment.gpus));
    v.extend(
        doc.environment
            .meter_warnings
            .iter()
            .map(|w| format!("warning: {w}")),
    );
    if let Some(e) = &doc.energy {
        v.extend(e.idle_notes.iter().map(|w| format!("warning: {w}")));
    }
    let throttled: Vec<String> = figures(doc)
        .filter_map(|(id, e)| {
            let reasons: Vec<&String> = e
                .gpu_state
                .iter()
                .flat_map(|g| g.throttle_reasons.iter().flatten())
                .filter(|r| *r != "gpu_idle" && *r != "applications_clocks_setting")
                .collect();
            (!reasons.is_empty()).then(|| {
                format!(
                    "{} ({})",
                    id,
                    reasons
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect();
    if !throttled.is_empty() {
        v.push(format!(
            "warning: GPU clocks were throttled at the end of the energy windows of: {}",
            throttled.join("; ")
        ));
    }
    v.extend(cross_check_note(doc));
    v.extend(case_notes(doc));
    v
}

/// The energy figures of a run file, by id: its cases' and its training runs'.
fn figures(doc: &RunFile) -> impl Iterator<Item = (&str, &CaseEnergy)> {
    (doc.cases.iter())
        .filter_map(|c| Some((c.id.as_str(), c.energy.as_ref()?)))
        .chain(doc.trainings.iter().map(|t| (t.id.as_str(), &t.energy)))
}

/// How many distinct per-case energy caveats [`notes`] prints; the result file has them all.
const CASE_NOTES_SHOWN: usize = 12;

/// The caveats of the energy figures of the cases and training runs (short or failed
/// windows, estimates, mixed sources, domain warnings, missing readings), each distinct
/// message once with the cases it concerns.
fn case_notes(doc: &RunFile) -> Vec<String> {
    let mut seen: Vec<(String, Vec<&str>)> = Vec::new();
    let mut metered = 0;
    for (id, e) in figures(doc) {
        metered += 1;
        let domain_msgs = e.domains.iter().flat_map(|d| {
            let reason = d
                .reason
                .iter()
                .map(move |r| format!("{}: {}", d.name, r.trim_end_matches('.')));
            let warnings = d.warnings.iter().map(move |w| format!("{}: {w}", d.name));
            reason.chain(warnings)
        });
        for m in e.notes.iter().cloned().chain(domain_msgs) {
            match seen.iter_mut().find(|(s, _)| *s == m) {
                Some((_, ids)) if !ids.contains(&id) => ids.push(id),
                Some(_) => {}
                None => seen.push((m, vec![id])),
            }
        }
    }
    let mut v: Vec<String> = seen
        .iter()
        .take(CASE_NOTES_SHOWN)
        .map(|(m, ids)| {
            let who = if metered > 1 && ids.len() == metered {
                "every case".to_string()
            } else if ids.len() > 3 {
                format!("{} and {} more cases", ids[..3].join(", "), ids.len() - 3)
            } else {
                ids.join(", ")
            };
            format!("energy ({who}): {m}")
        })
        .collect();
    if seen.len() > CASE_NOTES_SHOWN {
        v.push(format!(
            "{} more energy caveats in the result file (cases[].energy.notes and its domains' \
             warnings)",
            seen.len() - CASE_NOTES_SHOWN
        ));
    }
    v
}

/// One line on the GPU energy cross-checks of the cases (counter beside integrated power
/// readings, [`wattbench_energy::crosscheck`]): how many agree, and which disagree.
fn cross_check_note(doc: &RunFile) -> Option<String> {
    use wattbench_energy::crosscheck::Verdict;
    let checks: Vec<(&str, &wattbench_energy::crosscheck::PowerCheck)> = figures(doc)
        .flat_map(|(id, e)| {
            e.domains
                .iter()
                .filter_map(move |d| Some((id, d.power_check.as_ref()?)))
        })
        .collect();
    if checks.is_empty() {
        return None;
    }
    let count = |v: Verdict| checks.iter().filter(|(_, c)| c.verdict == v).count();
    let disagree: Vec<String> = checks
        .iter()
        .filter(|(_, c)| c.verdict == Verdict::Disagree)
        .map(|(id, c)| {
            format!(
                "{id} {} (ratio {})",
                c.domain,
                c.ratio.map_or("none".into(), |r| format!("{r:.3}"))
            )
        })
        .collect();
    let head = format!(
        "GPU energy counter vs integrated power readings, per case window: {} agree, {} \
         disagree, {} too short to judge",
        count(Verdict::Agree),
        disagree.len(),
        count(Verdict::TooShort)
    );
    Some(if disagree.is_empty() {
        head
    } else {
        format!("warning: {head}: {}", disagree.join("; "))
    })
}

/// "12.3 mJ ±50% (estimated)" for tables: the total per call, its interval and its
/// source(s); "(measured, PARTIAL: without gpu0)" when a domain of the total had no reading.
pub fn summary(energy: &CaseEnergy) -> String {
    let Some((value, partial)) = total_parts(energy) else {
        return "unmeasured".into();
    };
    let sources: Vec<&str> = energy.total_sources.iter().map(|s| s.as_str()).collect();
    let partial = partial.map(|p| format!(", {p}")).unwrap_or_default();
    format!("{value} ({}{partial})", sources.join("+"))
}

/// The total per call with its interval, for a table that shows the sources apart: "12.3 mJ
/// ±50%", "12.3 mJ ±50% PARTIAL: without gpu0", or "unmeasured".
pub fn total_cell(energy: &CaseEnergy) -> String {
    match total_parts(energy) {
        None => "unmeasured".into(),
        Some((value, None)) => value,
        Some((value, Some(p))) => format!("{value} {p}"),
    }
}

/// The total with its width ("12.3 mJ ±50%"; around 0 J, where no relative width exists, in
/// joules), and "PARTIAL: without …" when a domain of the total had no reading.
fn total_parts(energy: &CaseEnergy) -> Option<(String, Option<String>)> {
    let j = energy.total_joules_per_iter?;
    let rel = units::relative(&j);
    let width = if !rel.is_empty() {
        format!(" {rel}")
    } else if j.high > j.low {
        let (down, up) = (j.value - j.low, j.high - j.value);
        if (down - up).abs() <= 0.01 * up.max(down) {
            format!(" ± {}", units::joules(up))
        } else if down <= 0.0 {
            format!(" +{}", units::joules(up))
        } else {
            format!(" -{}/+{}", units::joules(down), units::joules(up))
        }
    } else {
        String::new()
    };
    let missing = energy.missing_domains();
    let partial = (!missing.is_empty()).then(|| format!("PARTIAL: without {}", missing.join(", ")));
    Some((format!("{}{width}", units::joules(j.value)), partial))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::energy::{DomainRecord, PowerCheck, Source, Verdict};
    use wattbench_core::testing::{case_energy, run_file, timed_case};

    fn case_with_check(id: &str, verdict: Option<Verdict>) -> wattbench_core::result::CaseResult {
        let mut e = case_energy(1.0, 0.1, Source::Measured);
        e.domains.push(DomainRecord {
            uncertainty_j: Some(0.1),
            window_s: 3.0,
            avg_watts: Some(300.0),
            power_check: verdict.map(|verdict| PowerCheck {
                domain: "gpu0".into(),
                span_s: 2.9,
                samples: 30,
                counter_j: 900.0,
                integrated_j: 1350.0,
                ratio: Some(1.5),
                tolerance: 0.25,
                verdict,
                reading: "test".into(),
            }),
            ..wattbench_core::testing::domain_row("gpu0", Source::Measured, true, Some(1.0))
        });
        let mut c = timed_case(id, vec![1.0, 1.0]);
        c.energy = Some(e);
        c
    }

    /// The run's notes count the cases' cross-checks and name the ones that disagree; a run
    /// without any says nothing of them.
    #[test]
    fn notes_count_cross_checks_and_name_disagreements() {
        let doc = run_file(
            "2026-11-29T00:00:00Z",
            vec![
                case_with_check("a", Some(Verdict::Agree)),
                case_with_check("b", Some(Verdict::Disagree)),
                case_with_check("c", Some(Verdict::TooShort)),
                case_with_check("d", None),
            ],
        );
        let line = cross_check_note(&doc).unwrap();
        assert!(line.starts_with("warning: "), "{line}");
        assert!(line.contains("1 agree, 1 disagree, 1 too short"), "{line}");
        assert!(
            line.contains("b gpu0 (ratio 1.500)") && !line.contains("a gpu0"),
            "{line}"
        );
        assert!(notes(&doc).contains(&line));
        let quiet = run_file("2026-11-29T00:00:00Z", vec![case_with_check("d", None)]);
        assert!(cross_check_note(&quiet).is_none());
    }

    /// A window cut short is measured against the meters' own minimum (core's note, which
    /// blames their resolution) and, apart, against a longer `--energy-window` (a note that
    /// names the request): the old code called the request the meters' minimum.
    #[test]
    fn a_short_window_names_the_meters_minimum_and_the_request_apart() {
        use wattbench_energy::fake::StepCounter;
        use wattbench_energy::MeterConfig;
        let meters = Arc::new(Meters::from_domains(
            vec![Arc::new(StepCounter::new("fake-package", 1000, 0.25))],
            &MeterConfig {
                nvml: false,
                ..MeterConfig::default()
            },
        ));
        // Minimums no test window reaches: every window here is short of both.
        let notes = |requested: Option<f64>| {
            let length = EnergyWindowLength::of(Duration::from_secs(3600), requested);
            let mut m = CaseMeter::new(
                meters.clone(),
                Arc::new(Vec::new()),
                length,
                CaseGpu::NoGpu,
                Arc::new(Vec::new()),
            );
            assert_eq!(m.min_window(), length.length());
            m.start();
            m.stop(10, 1_000_000_000).unwrap().notes
        };
        let n = notes(Some(7200.0));
        let meters_note: Vec<&String> = n
            .iter()
            .filter(|x| x.contains("the meters' minimum reliable window of 3600.000 s"))
            .collect();
        assert_eq!(meters_note.len(), 1, "{n:?}");
        assert!(!meters_note[0].contains("7200"), "{n:?}");
        let asked: Vec<&String> = n
            .iter()
            .filter(|x| x.contains("less than the 7200.000 s asked for by --energy-window"))
            .collect();
        assert_eq!(asked.len(), 1, "{n:?}");
        assert!(asked[0].contains("--max-samples"), "{n:?}");
        // A request within the meters' minimum, or none, adds no note of its own.
        for requested in [Some(10.0), None] {
            let n = notes(requested);
            assert!(!n.iter().any(|x| x.contains("--energy-window")), "{n:?}");
            assert!(n.iter().any(|x| x.contains("of 3600.000 s")), "{n:?}");
        }
        // The length windows are stretched to, recorded as the run's min_window_s.
        let l = EnergyWindowLength::of(Duration::from_secs(2), Some(5.0));
        assert_eq!((l.seconds(), l.meters_seconds()), (5.0, 2.0));
        let l = EnergyWindowLength::of(Duration::from_secs(2), Some(1.0));
        assert_eq!((l.seconds(), l.meters_seconds()), (2.0, 2.0));
    }

    /// The table's cell says when its total leaves out a domain with no reading, and gives
    /// the width of a 0 J total (a counter that did not move) in joules.
    #[test]
    fn the_energy_cell_says_partial_and_the_width_of_zero() {
        use wattbench_core::testing::domain_row;
        let mut e = case_energy(0.5, 0.05, Source::Measured);
        e.domains = vec![domain_row(
            "cpu-package-0",
            Source::Measured,
            true,
            Some(0.5),
        )];
        assert_eq!(summary(&e), "500.000 mJ ±10% (measured)");
        e.domains
            .push(domain_row("gpu0", Source::Measured, true, None));
        assert_eq!(
            summary(&e),
            "500.000 mJ ±10% (measured, PARTIAL: without gpu0)"
        );
        assert_eq!(total_cell(&e), "500.000 mJ ±10% PARTIAL: without gpu0");
        // No efficiency nor net figure from it, even where a file stored them.
        e.gflops_per_joule = Some(4.0);
        e.net_joules_per_iter = Some(0.3);
        assert_eq!(e.whole_gflops_per_joule(), None);
        assert_eq!(net(&e), "");
        let zero = case_energy(0.0, 0.14, Source::Measured);
        // Its interval held at 0 below.
        assert_eq!(summary(&zero), "0.000 J +140.000 mJ (measured)");
    }
}
