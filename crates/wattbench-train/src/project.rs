//! Projection of a full training run from the measured steps: wall time, kWh and kg CO2e with
//! an interval. Linear scaling is [`wattbench_energy::measure::project`]; this module chooses
//! what is scaled (steady-state steps only) and widens the interval by the step-time spread.
use wattbench_core::result::{ProjectionTarget, RunProjection};
use wattbench_core::stats::{drift, t_quantile, TimeStats};
use wattbench_core::units;
use wattbench_energy::carbon::{carbon, CarbonParams};
use wattbench_energy::measure::{project, ProjectionSpec};
use wattbench_energy::{EnergyTotal, Interval, Source};

/// The step-time interval: the 95% t-interval of the mean step time over the measured steps
/// (the mean is what a sum of many steps converges to; the median's interval would miss the
/// slow tail of skewed step times). One measured step has no spread: a point.
pub fn step_time_interval(t: &TimeStats) -> Interval {
    let s = &t.samples_s;
    let n = s.len();
    let mean = t.mean_s;
    if n < 2 {
        return Interval::symmetric(mean, 0.0);
    }
    let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t_quantile(0.975, (n - 1) as f64) * (var / n as f64).sqrt();
    Interval {
        value: mean,
        low: (mean - half).max(0.0),
        high: mean + half,
    }
}

/// How much longer than the sum of the measured step times their energy window may last
/// before the projection says so (its energy then covers time its wall time leaves out).
pub const WINDOW_OVER_STEPS: f64 = 1.03;

/// What keeps the measured steps (`time`, in the order they ran, after `warmup_steps` warm-up
/// steps on `device`) from being the steady state a projection assumes: no warm-up step, so
/// the cold first step is among them; step times that drifted while measured
/// ([`wattbench_core::stats::drift`], as the harness checks each case). For the result's notes
/// and the projection's assumptions alike.
pub fn steady_state_caveats(time: &TimeStats, warmup_steps: u64, device: &str) -> Vec<String> {
    let s = &time.samples_s;
    let mut v = Vec::new();
    if warmup_steps == 0 {
        let first = s.first().map_or(String::new(), |f| {
            format!(
                " (it took {}, the median step {})",
                units::seconds(*f),
                units::seconds(time.median_s)
            )
        });
        v.push(format!(
            "no warm-up step (--warmup-steps 0, the default under 4 steps): the first, cold \
             step{first} is measured, its one-time costs (allocations, caches, {device} clocks \
             ramping up) in the mean step time and the energy per step, so the figures are not \
             those of a steady state; give --warmup-steps 1 or more"
        ));
    }
    if let Some((first, last)) = drift(s) {
        v.push(format!(
            "the step time drifted from {} (median of the first quarter of the measured \
             steps) to {} (last quarter): {device} was not in a steady state while measured \
             (clocks ramping up or throttling, caches, other load), so the mean step time and \
             the energy per step mix two states, and the projection scales that mix; more \
             --warmup-steps, more --steps or a quieter machine give a steadier figure",
            units::seconds(first),
            units::seconds(last)
        ));
    }
    v
}

/// The projection's assumption on a GPU (`device` `cuda…`): every measured step ends in a host
/// synchronisation, so the time the host takes to launch a step is not overlapped with the
/// GPU's work on the previous one, as in a training loop that never waits. `None` on the CPU,
/// whose steps complete before they return.
pub fn host_sync_assumption(device: &str) -> Option<String> {
    device.starts_with("cuda").then(|| {
        format!(
            "each measured step ends in a host synchronisation (for its time): on {device} the \
             host launches the next step only once the GPU has finished this one, so launch \
             overhead is not overlapped with GPU work as in a training loop that never waits; \
             the projected time, and the energy at the measured power, may be above such a \
             loop's, most for small models whose steps are short"
        )
    })
}

/// The projection's assumption when the measured steps' energy window (`window_s`) lasted
/// more than [`WINDOW_OVER_STEPS`] times the sum of their step times (`time`): the time
/// between steps (reporting the loss, the driver's bookkeeping) is in the energy per step but
/// not in the projected wall time.
pub fn window_assumption(time: &TimeStats, window_s: f64) -> Option<String> {
    let steps: f64 = time.samples_s.iter().sum();
    (steps > 0.0 && window_s > WINDOW_OVER_STEPS * steps).then(|| {
        format!(
            "the measured steps' energy window lasted {}, {:.0}% longer than the sum of their \
             step times ({}): the time between steps (reporting the loss, the driver's \
             bookkeeping) is in the energy per step, and so in the projected kWh, but not in \
             the projected wall time (steps x mean step time); a loop with as much between its \
             steps takes x{:.3} that time",
            units::seconds(window_s),
            100.0 * (window_s / steps - 1.0),
            units::seconds(steps),
            window_s / steps
        )
    })
}

/// Projects `total_steps` steady-state steps from `measured_steps` steps whose times are `time`
/// and whose metered energy was `energy` (the meters' total over the measured window).
pub fn project_run(
    target: ProjectionTarget,
    total_steps: u64,
    batch: usize,
    time: &TimeStats,
    measured_steps: u64,
    energy: &EnergyTotal,
    carbon_params: &CarbonParams,
) -> RunProjection {
    let n = total_steps as f64;
    let m = measured_steps.max(1) as f64;
    let t = step_time_interval(time);
    let (lo_ratio, hi_ratio) = if t.value > 0.0 {
        (t.low / t.value, t.high / t.value)
    } else {
        (1.0, 1.0)
    };
    let per_step = energy.joules.map(|e| {
        let e = e.scale(1.0 / m);
        Interval {
            value: e.value,
            low: e.low * lo_ratio,
            high: e.high * hi_ratio,
        }
    });
    let figures = per_step.map(|e| carbon(e.scale(m), carbon_params));
    let mut linear = project(
        ProjectionSpec {
            steps_done: measured_steps.max(1),
            total_steps,
        },
        t.value * m,
        figures.as_ref().map(|f| f.energy_kwh),
        figures.as_ref().map(|f| f.co2e_kg),
        figures.as_ref().and_then(|f| f.cost),
    );
    linear.method = "linear over steady-state steps: figures of the measured steps (after \
                     warm-up) x total_steps / steps_done; set-up, data generation and warm-up \
                     are not projected"
        .into();
    let estimated = energy.sources.contains(&Source::Estimated);

    let mut assumptions = vec![
        "same hardware, software, backend, device, model, batch size and thread count as this run"
            .to_string(),
        "steady state: every step of the full run costs what the measured steps cost on \
         average; start-up (data generation, uploads, warm-up) and evaluation are left out"
            .into(),
        format!(
            "time: {total_steps} steps x mean step time {:.4} ms over {} measured steps; \
             interval: the 95% t-interval of that mean",
            t.value * 1e3,
            time.samples_s.len()
        ),
    ];
    match time.samples_s.len() {
        0 | 1 => assumptions.push(
            "a single measured step: the step time's spread is unknown, so the projected time \
             has no interval and the energy only the meters' uncertainty; measure more steps \
             (--steps) for an interval"
                .into(),
        ),
        n @ 2..=4 => assumptions.push(format!(
            "only {n} measured steps: the interval of the mean step time rests on few samples \
             (and assumes roughly normal step times); measure more steps (--steps) for a firmer one"
        )),
        _ => {}
    }
    match &per_step {
        Some(_) => {
            assumptions.push(format!(
                "energy: mean metered energy per measured step x total steps; interval: the \
                 meters' uncertainty, widened by the step-time interval relative to the mean \
                 (constant power); the energy is {}",
                wattbench_core::energy::GROSS_MEANS
            ));
            assumptions.push(format!(
                "energy covers {} (sources: {}){}",
                energy.includes.join(" + "),
                energy
                    .sources
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if energy.excludes.is_empty() {
                    String::new()
                } else {
                    format!("; leaves out {}", energy.excludes.join("; "))
                }
            ));
            if !energy.missing.is_empty() {
                assumptions.push(format!(
                    "PARTIAL: no reading from {}, so the energy and CO2e leave it out",
                    energy.missing.join(", ")
                ));
            }
            if estimated {
                assumptions.push(
                    "the energy is ESTIMATED from a CPU power model (TDP x CPU time), not \
                     measured by a counter; treat kWh and CO2e as an order of magnitude"
                        .into(),
                );
            }
            let p = carbon_params;
            assumptions.push(format!(
                "carbon: kWh x PUE {:.2}{} x {} gCO2e/kWh ({}, {}; {})",
                p.pue,
                if p.pue_is_default {
                    " (default: IT energy only, no cooling or facility overhead)"
                } else {
                    ""
                },
                p.intensity.g_per_kwh,
                p.intensity.region,
                p.intensity
                    .year
                    .map_or("year unknown".to_string(), |y| y.to_string()),
                p.intensity.source
            ));
            assumptions.push(format!(
                "the CO2e interval includes the grid intensity's range, {:.0}-{:.0} gCO2e/kWh: {}",
                p.intensity.range_g_per_kwh[0],
                p.intensity.range_g_per_kwh[1],
                p.intensity.range_basis
            ));
        }
        None => assumptions.push(
            "no energy meter had a reading for the measured steps: the projection gives wall \
             time only, and no kWh or CO2e figure"
                .into(),
        ),
    }
    let k = n / m;
    RunProjection {
        target,
        total_steps,
        total_samples: total_steps.saturating_mul(batch as u64),
        measured_steps,
        step_time_s: t,
        energy_per_step_j: per_step,
        duration_s: t.scale(n),
        energy_kwh: linear.energy_kwh,
        facility_kwh: figures.as_ref().map(|f| f.facility_kwh.scale(k)),
        co2e_kg: linear.co2e_kg,
        cost: linear.cost,
        energy_estimated: estimated,
        carbon: carbon_params.assumptions(),
        assumptions,
        linear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Step times `samples` (their statistics as the harness makes them).
    fn stats(samples: &[f64]) -> TimeStats {
        TimeStats::from_samples(samples.to_vec(), 1, 200, 1)
    }

    fn total(j: Interval, sources: Vec<Source>) -> EnergyTotal {
        EnergyTotal {
            joules: Some(j),
            includes: vec!["cpu-package-0 (measured)".into()],
            excludes: vec![],
            sources,
            mixed: false,
            estimated_joules: None,
            missing: vec![],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1e-300)
    }

    /// Ten step times of mean 0.1 s.
    const STEPS: [f64; 10] = [0.08, 0.09, 0.1, 0.11, 0.12, 0.1, 0.095, 0.105, 0.1, 0.1];

    /// Sample standard deviation.
    fn sd(x: &[f64]) -> f64 {
        let m = x.iter().sum::<f64>() / x.len() as f64;
        (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
    }

    #[test]
    fn projection_matches_hand_computed_values() {
        // 10 measured steps of mean 0.1 s (95% t-interval 0.0923–0.1077: sd 0.0108, t(9) = 2.262)
        // using 10 J ± 2 J; 1000 steps at 400 g/kWh and PUE 1.5.
        let p = CarbonParams::resolve(None, Some(400.0), Some(1.5), Some(0.2)).unwrap();
        let e = Interval::symmetric(10.0, 2.0);
        let r = project_run(
            ProjectionTarget::Steps(1000),
            1000,
            32,
            &stats(&STEPS),
            10,
            &total(e, vec![Source::Measured]),
            &p,
        );
        assert_eq!(r.total_samples, 32_000);
        // Time: 1000 × 0.1 s = 100 s in 100 ± 1000 × h, h = t(9) × sd / √10.
        let h = 2.262_157_162_798_205 * sd(&STEPS) / 10f64.sqrt();
        assert!((h - 0.007726).abs() < 1e-5, "{h}");
        assert!(close(r.duration_s.value, 100.0));
        assert!(close(r.duration_s.low, 1000.0 * (0.1 - h)));
        assert!(close(r.duration_s.high, 1000.0 * (0.1 + h)));
        // Energy per step 1 J in [0.8 × (1 - 10h), 1.2 × (1 + 10h)] J.
        let (lo, hi) = (0.8 * (1.0 - 10.0 * h), 1.2 * (1.0 + 10.0 * h));
        let s = r.energy_per_step_j.unwrap();
        assert!(close(s.value, 1.0) && close(s.low, lo) && close(s.high, hi));
        // 1000 J = 1000 / 3.6e6 kWh; bounds 1000 lo J and 1000 hi J.
        let kwh = r.energy_kwh.unwrap();
        assert!(close(kwh.value, 1000.0 / 3.6e6));
        assert!(close(kwh.low, 1000.0 * lo / 3.6e6) && close(kwh.high, 1000.0 * hi / 3.6e6));
        let fac = r.facility_kwh.unwrap();
        assert!(close(fac.value, 1.5 * 1000.0 / 3.6e6));
        // kg CO2e = kWh × PUE × g/kWh / 1000; the bounds use the default daily band around
        // the given 400 g/kWh, [200, 600] (low energy × low intensity, high × high).
        let co2 = r.co2e_kg.unwrap();
        assert!(close(co2.value, 1000.0 / 3.6e6 * 1.5 * 0.4));
        assert!(close(co2.low, 1000.0 * lo / 3.6e6 * 1.5 * 0.2));
        assert!(close(co2.high, 1000.0 * hi / 3.6e6 * 1.5 * 0.6));
        let cost = r.cost.unwrap();
        assert!(close(cost.value, 1000.0 / 3.6e6 * 1.5 * 0.2));
        assert!(close(r.linear.factor, 100.0));
        assert!(!r.energy_estimated);
        assert!(r.assumptions.iter().any(|a| a.contains("steady state")));
    }

    /// The steady-state caveats: a run with no warm-up step names its cold first step; step
    /// times whose last quarter is far from their first drifted; steady ones say nothing.
    #[test]
    fn steady_state_caveats_name_a_cold_first_step_and_a_drift() {
        let steady = stats(&STEPS);
        assert!(steady_state_caveats(&steady, 1, "cpu").is_empty());
        let cold = steady_state_caveats(&stats(&[0.5, 0.1, 0.1, 0.1]), 0, "cpu");
        assert_eq!(cold.len(), 1, "{cold:?}");
        assert!(
            cold[0].contains("no warm-up step") && cold[0].contains("it took 500.000 ms"),
            "{cold:?}"
        );
        let mut drifting = vec![0.1; 8];
        drifting.extend([0.2; 8]);
        let d = steady_state_caveats(&stats(&drifting), 2, "cuda:0");
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("step time drifted from 100.000 ms") && d[0].contains("cuda:0"),
            "{d:?}"
        );
    }

    /// On a GPU the per-step host synchronisation is an assumption; on the CPU it is none.
    #[test]
    fn a_gpu_projection_states_the_host_sync_after_every_step() {
        assert!(host_sync_assumption("cpu").is_none());
        for d in ["cuda", "cuda:1"] {
            let a = host_sync_assumption(d).unwrap();
            assert!(a.contains("host synchronisation") && a.contains(d), "{a}");
        }
    }

    /// The window's excess over the step times is stated past 3 %, with the ratio.
    #[test]
    fn a_window_longer_than_the_steps_is_stated_with_the_ratio() {
        let t = stats(&STEPS);
        assert!(window_assumption(&t, 1.02).is_none());
        let a = window_assumption(&t, 1.5).unwrap();
        assert!(a.contains("50% longer") && a.contains("x1.500"), "{a}");
    }

    #[test]
    fn targets_convert_to_steps_and_missing_energy_gives_time_only() {
        assert_eq!(ProjectionTarget::Samples(1000).total_steps(64, 16), 16);
        assert_eq!(ProjectionTarget::Epochs(3).total_steps(64, 16), 48);
        assert_eq!(ProjectionTarget::Steps(7).total_steps(64, 16), 7);
        let p = CarbonParams::resolve(Some("FR"), None, None, None).unwrap();
        // `steps` steps of batch 8 from 5 measured ones of mean `mean`.
        let project = |steps, samples: &[f64], energy: &EnergyTotal| {
            project_run(
                ProjectionTarget::Steps(steps),
                steps,
                8,
                &stats(samples),
                samples.len() as u64,
                energy,
                &p,
            )
        };
        let none = EnergyTotal {
            joules: None,
            includes: vec![],
            excludes: vec!["cpu-package-0: no reading (permission denied)".into()],
            sources: vec![],
            mixed: false,
            estimated_joules: None,
            missing: vec![],
        };
        // Skewed step times (one slow step in five): the interval is the mean's, 0.2 s ±
        // t(4) x sd / √5 = 0.2776 s, so it reaches well above the mean (the median's interval,
        // 0.1 s, stretched to the mean had no room above it), its low end held at 0.
        let r = project(50, &[0.1, 0.1, 0.1, 0.1, 0.6], &none);
        assert!(close(r.duration_s.value, 10.0));
        let h = 2.776_445_105_197_799 * 0.05f64.sqrt() / 5f64.sqrt();
        assert!(
            close(r.duration_s.high, 50.0 * (0.2 + h)),
            "{:?}",
            r.duration_s
        );
        assert_eq!(r.duration_s.low, 0.0);
        assert!(r.energy_kwh.is_none() && r.co2e_kg.is_none() && r.energy_per_step_j.is_none());
        assert!(r.assumptions.iter().any(|a| a.contains("wall time only")));
        // An estimated total is flagged.
        let est = total(Interval::symmetric(1.0, 0.5), vec![Source::Estimated]);
        let r = project(10, &[0.1; 5], &est);
        assert!(r.energy_estimated);
        assert!(r.assumptions.iter().any(|a| a.contains("ESTIMATED")));
        assert!(r
            .assumptions
            .iter()
            .any(|a| a.contains("idle power and other processes")));
        // One measured step: no spread, said; few: said.
        let r = project(10, &[0.1], &est);
        assert_eq!((r.duration_s.low, r.duration_s.high), (1.0, 1.0));
        assert!(r
            .assumptions
            .iter()
            .any(|a| a.contains("a single measured step")));
        let r = project(10, &[0.1, 0.11, 0.09], &est);
        assert!(r
            .assumptions
            .iter()
            .any(|a| a.contains("only 3 measured steps")));
    }
}
