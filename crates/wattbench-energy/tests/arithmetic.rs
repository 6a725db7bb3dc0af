//! Integration, idle subtraction, totals, carbon and projection against hand-computed values.

use std::sync::Arc;
use std::time::Duration;

use wattbench_energy::carbon::{carbon, CarbonParams, CarbonTable, GridIntensity};
use wattbench_energy::integrate::{counter_delta, trapezoid, Accumulator};
use wattbench_energy::measure::{check_projection, project, ProjectionSpec};
use wattbench_energy::{
    net_joules, total_energy, DomainEnergy, EnergyError, Interval, MeterConfig, Meters, Reading,
    Source,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn domain(name: &str, source: Source, joules: f64, window_s: f64, unc: f64) -> DomainEnergy {
    DomainEnergy {
        name: name.into(),
        source,
        reason: None,
        joules: Some(joules),
        window_s,
        uncertainty_j: Some(unc),
        avg_watts: Some(joules / window_s),
        peak_watts: None,
        scope: "test".into(),
        in_total: true,
        note: None,
        assumptions: None,
        warnings: Vec::new(),
        power_check: None,
    }
}

#[test]
fn trapezoid_matches_hand_computation() {
    // 0-1 s: (100+200)/2 = 150 J; 1-3 s: 200 W x 2 s = 400 J; 3-4 s: (200+0)/2 = 100 J.
    let s = [(0.0, 100.0), (1.0, 200.0), (3.0, 200.0), (4.0, 0.0)];
    assert!(close(trapezoid(&s).unwrap(), 650.0));
    assert_eq!(trapezoid(&s[..1]), None);
    assert_eq!(trapezoid(&[(1.0, 5.0), (0.5, 5.0)]), None);
}

#[test]
fn accumulator_power_samples_equal_trapezoid_and_report_peak() {
    let mut a = Accumulator::new();
    for (t, w) in [(0.0, 100.0), (1.0, 200.0), (3.0, 200.0), (4.0, 0.0)] {
        a.push(t, Reading::Power { watts: w });
    }
    assert!(close(a.joules().unwrap(), 650.0));
    assert!(close(a.span_s(), 4.0));
    assert!(close(a.peak_watts().unwrap(), 200.0));
}

#[test]
fn accumulator_counts_several_wraps_across_samples() {
    let max = 1_000u64;
    let mut a = Accumulator::new();
    let c = |raw| Reading::Counter {
        raw,
        joules_per_unit: 1e-3,
        wrap_at: Some(max),
    };
    // 900 -> 100 (wrap: 200) -> 600 (500) -> 50 (wrap: 450) = 1150 units = 1.15 J.
    for (t, raw) in [(0.0, 900), (1.0, 100), (2.0, 600), (3.0, 50)] {
        a.push(t, c(raw));
    }
    assert_eq!(a.wraps(), 2);
    assert!(close(a.joules().unwrap(), 1.15));
    assert_eq!(counter_delta(900, 100, Some(1000)), Some(200));
    assert_eq!(counter_delta(900, 100, None), None);
    assert_eq!(counter_delta(100, 900, None), Some(800));
}

#[test]
fn accumulator_counts_the_time_a_counter_without_range_lost() {
    let mut a = Accumulator::new();
    let c = |raw| Reading::Counter {
        raw,
        joules_per_unit: 1.0,
        wrap_at: None,
    };
    // +10 J, then backwards over 2 s (no range: unknown), then +10 J.
    for (t, raw) in [(0.0, 0), (1.0, 10), (3.0, 5), (4.0, 15)] {
        a.push(t, c(raw));
    }
    assert!(close(a.joules().unwrap(), 20.0));
    assert!(close(a.span_s(), 4.0));
    assert!(close(a.discarded_s(), 2.0));
    assert!(a.error().unwrap().contains("went backwards"));
    // The discarded step is no wrap.
    assert_eq!(a.wraps(), 0);
}

/// A counter with a known range that steps back a little (a reset, a driver reload) is not a
/// wrap: read as one it added 262,143 J over 5 s (52 kW). Its interval has no reading.
#[test]
fn accumulator_takes_an_implausible_wrap_for_a_reset() {
    const MAX: u64 = 262_143_328_850;
    let mut a = Accumulator::new();
    let c = |raw| Reading::Counter {
        raw,
        joules_per_unit: 1e-6,
        wrap_at: Some(MAX),
    };
    // +100 J, back by 1 mJ (a reset), +100 J.
    for (t, raw) in [
        (0.0, 0),
        (5.0, 100_000_000),
        (10.0, 99_999_000),
        (15.0, 199_999_000),
    ] {
        a.push(t, c(raw));
    }
    assert!(close(a.joules().unwrap(), 200.0), "{a:?}");
    assert!(close(a.discarded_s(), 5.0));
    assert!(a.error().unwrap().contains("reset"), "{a:?}");
    assert_eq!(a.wraps(), 0);
    // A wrap at a plausible power is still one: 1 mJ to the end, 4 J past it, in 1 s.
    let mut a = Accumulator::new();
    a.push(0.0, c(MAX - 1_000));
    a.push(1.0, c(4_000_000));
    assert!(close(a.joules().unwrap(), 4.001), "{a:?}");
    assert_eq!((a.wraps(), a.discarded_s()), (1, 0.0));
}

#[test]
fn accumulator_cpu_time_never_counts_a_drop() {
    let mut a = Accumulator::new();
    let r = |s| Reading::CpuTime {
        seconds: s,
        watts_per_cpu: 4.0,
    };
    // +1.0 s, then a drop (a child left the tree), then back up past the high mark: +0.5 s.
    for (t, s) in [(0.0, 0.0), (1.0, 1.0), (2.0, 0.7), (3.0, 1.5)] {
        a.push(t, r(s));
    }
    assert!(close(a.cpu_seconds(), 1.5));
    assert!(close(a.joules().unwrap(), 6.0));
}

#[test]
fn idle_subtraction_matches_hand_computation() {
    let gross = domain("cpu-package-0", Source::Measured, 120.0, 10.0, 2.0);
    let idle = domain("cpu-package-0", Source::Measured, 30.0, 5.0, 1.0);
    let n = net_joules(&gross, &idle).unwrap();
    assert!(close(n.idle_watts, 6.0));
    assert!(close(n.idle_joules, 60.0));
    assert!(close(n.net_joules, 60.0));
    // gross 2 J + idle 1 J scaled by 10 s / 5 s.
    assert!(close(n.uncertainty_j, 4.0));
    let mut missing = idle.clone();
    missing.joules = None;
    assert_eq!(net_joules(&gross, &missing), None);
}

#[test]
fn totals_say_when_they_mix_measured_and_estimated() {
    let gpu = domain("gpu0", Source::Measured, 100.0, 10.0, 2.0);
    let cpu = domain("cpu-estimate", Source::Estimated, 20.0, 10.0, 10.0);
    let mut core = domain("cpu-core-0", Source::Measured, 3.0, 10.0, 0.1);
    core.in_total = false;
    let mut lost = DomainEnergy::unsupported("gpu1", "device", "unavailable: gone".into());
    lost.window_s = 10.0;
    let t = total_energy(&[gpu, cpu, core, lost]);
    let j = t.joules.unwrap();
    assert!(close(j.value, 120.0) && close(j.low, 108.0) && close(j.high, 132.0));
    assert!(t.mixed);
    assert_eq!(t.estimated_joules, Some(20.0));
    assert_eq!(t.includes, ["gpu0 (measured)", "cpu-estimate (estimated)"]);
    assert_eq!(t.excludes.len(), 2);
    assert_eq!(t.sources, [Source::Measured, Source::Estimated]);
    let none = total_energy(&[DomainEnergy::unsupported("x", "y", "z".into())]);
    assert_eq!(none.joules, None);
}

fn intensity(g: f64, range: [f64; 2]) -> GridIntensity {
    GridIntensity {
        region: "custom".into(),
        name: "test".into(),
        g_per_kwh: g,
        range_g_per_kwh: range,
        range_basis: "test".into(),
        source: "test".into(),
        year: None,
    }
}

fn chk(i: Interval, v: f64, lo: f64, hi: f64) {
    assert!(
        close(i.value, v) && close(i.low, lo) && close(i.high, hi),
        "{i:?} vs {v} [{lo}, {hi}]"
    );
}

#[test]
fn carbon_interval_combines_the_energy_interval_with_the_intensity_range() {
    let mut p = CarbonParams {
        intensity: intensity(400.0, [200.0, 600.0]),
        pue: 1.5,
        pue_is_default: false,
        price_per_kwh: Some(0.2),
    };
    // 3.6 MJ ± 10 % = 1 kWh [0.9, 1.1]; x1.5 PUE = [1.35, 1.65]; CO2e at the yearly mean
    // 0.4 kg/kWh, low energy x low intensity 0.2, high x high 0.6; cost at 0.2 per kWh.
    let f = carbon(Interval::symmetric(3.6e6, 0.36e6), &p);
    chk(f.energy_kwh, 1.0, 0.9, 1.1);
    chk(f.facility_kwh, 1.5, 1.35, 1.65);
    chk(f.co2e_kg, 0.6, 1.35 * 0.2, 1.65 * 0.6);
    // Cost depends on energy only.
    chk(f.cost.unwrap(), 0.3, 0.27, 0.33);
    // A range of one point leaves the energy interval alone.
    p.intensity = intensity(400.0, [400.0, 400.0]);
    chk(
        carbon(Interval::symmetric(3.6e6, 0.36e6), &p).co2e_kg,
        0.6,
        0.54,
        0.66,
    );
}

#[test]
fn a_table_region_widens_a_tight_energy_interval_by_its_daily_range() {
    // The audit's case: ±0.07 % on the energy must not become ±0.07 % on the CO2e.
    let p = CarbonParams::resolve(Some("FR"), None, None, None).unwrap();
    assert_eq!(p.intensity.g_per_kwh, 41.44);
    assert_eq!(p.intensity.range_g_per_kwh, [41.44 * 0.5, 41.44 * 1.5]);
    let f = carbon(Interval::symmetric(3.6e6, 0.0007 * 3.6e6), &p);
    chk(f.co2e_kg, 0.04144, 0.9993 * 0.02072, 1.0007 * 0.06216);
    assert!(f.co2e_kg.high / f.co2e_kg.low > 2.9);
    // The record in result files carries the same range and says what it is.
    let a = p.assumptions();
    assert_eq!(a.intensity_range_g_per_kwh, p.intensity.range_g_per_kwh);
    assert!(a.intensity_range_basis.starts_with("default band"));
    assert!(a.intensity_range_basis.contains("3x"));
}

#[test]
fn a_given_intensity_is_taken_as_a_yearly_mean_and_gets_the_band() {
    let p = CarbonParams::resolve(Some("FR"), Some(12.5), None, None).unwrap();
    assert_eq!(p.intensity.g_per_kwh, 12.5);
    assert_eq!(p.intensity.range_g_per_kwh, [6.25, 18.75]);
    assert_eq!(p.intensity.source, "user-supplied intensity");
    assert!(p.intensity.range_basis.contains("--intensity"));
}

#[test]
fn google_regions_use_googles_published_figures_and_others_say_why_they_do_not() {
    // Google's region-carbon-info, data/yearly/2025.csv.
    let mtl = CarbonParams::resolve(Some("gcp:northamerica-northeast1"), None, None, None)
        .unwrap()
        .intensity;
    assert_eq!((mtl.g_per_kwh, mtl.year), (11.36, Some(2025)));
    assert!(mtl
        .source
        .contains("GoogleCloudPlatform/region-carbon-info data/yearly/2025.csv"));
    let oregon = CarbonParams::resolve(Some("us-west1"), None, None, None)
        .unwrap()
        .intensity;
    assert_eq!(
        (oregon.region.as_str(), oregon.g_per_kwh),
        ("gcp:us-west1", 97.85)
    );
    // AWS publishes no per-region factor: the national average, and the source says so.
    let aws = CarbonParams::resolve(Some("aws:us-west-2"), None, None, None)
        .unwrap()
        .intensity;
    assert_eq!(aws.g_per_kwh, 384.4);
    assert!(aws
        .source
        .contains("AWS publishes no per-region grid carbon intensity"));
    let azure = CarbonParams::resolve(Some("azure:westeurope"), None, None, None)
        .unwrap()
        .intensity;
    assert_eq!(azure.g_per_kwh, 253.56);
    assert!(azure.source.contains("Microsoft publishes no per-region"));
}

#[test]
fn national_figures_are_the_latest_owid_ember_year() {
    // owid-energy-data.csv, carbon_intensity_elec, latest year with a value (2025 here).
    for (code, g) in [
        ("KR", 417.06),
        ("WORLD", 458.29),
        ("DE", 329.65),
        ("US", 384.4),
    ] {
        let e = CarbonParams::resolve(Some(code), None, None, None)
            .unwrap()
            .intensity;
        assert_eq!((e.g_per_kwh, e.year), (g, Some(2025)), "{code}");
        assert!(e.source.contains("owid-energy-data.csv"), "{code}");
    }
}

#[test]
fn carbon_parameters_resolve_with_stated_defaults_and_reject_nonsense() {
    let d = CarbonParams::resolve(None, None, None, None).unwrap();
    assert_eq!(d.intensity.region, "WORLD");
    assert_eq!(d.intensity.g_per_kwh, 458.29);
    assert!(d.intensity.source.contains("default"));
    assert_eq!((d.pue, d.pue_is_default), (1.0, true));
    let de = CarbonParams::resolve(Some("de"), None, Some(1.2), Some(0.3)).unwrap();
    assert_eq!((de.pue, de.price_per_kwh), (1.2, Some(0.3)));
    for bad in [
        CarbonParams::resolve(Some("atlantis"), None, None, None),
        CarbonParams::resolve(None, Some(-1.0), None, None),
        CarbonParams::resolve(None, None, Some(0.9), None),
        CarbonParams::resolve(None, None, None, Some(f64::NAN)),
    ] {
        assert!(matches!(bad, Err(EnergyError::Usage(_))), "{bad:?}");
    }
    // --intensity meets the guard table entries meet: 2000 g/kWh or more is a unit mistake
    // (a figure in lb/MWh is 2.2 times the same in g/kWh).
    for g in [2000.0, 2500.0] {
        let e = CarbonParams::resolve(None, Some(g), None, None);
        let Err(EnergyError::Usage(why)) = e else {
            panic!("--intensity {g} accepted: {e:?}");
        };
        assert!(why.contains("2000"), "{why}");
    }
    assert!(CarbonParams::resolve(None, Some(1999.0), None, None).is_ok());
}

const USER_TABLE: &str = r#"
[[grid]]
code = "fr"
name = "France (hourly)"
g_per_kwh = 50
g_per_kwh_range = [30, 80]
range_basis = "RTE eco2mix hourly 2024, 5th-95th percentile"
source = "RTE eco2mix"
year = 2024

[[grid]]
code = "XK"
name = "Kosovo"
g_per_kwh = 700
source = "utility report"
year = 2023

[[cloud]]
code = "lab:rack1"
name = "Our lab"
grid = "XK"
source = "the lab's supply contract names the national grid"

[[cloud]]
code = "ovh:gra"
name = "OVH Gravelines"
g_per_kwh = 60
source = "OVH environmental dashboard"
year = 2024
"#;

#[test]
fn a_user_table_overrides_and_adds_entries_and_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, USER_TABLE).unwrap();
    let t = CarbonTable::builtin().with_user_file(&path).unwrap();
    let label = format!("user-supplied in {}", path.display());

    let fr = t.lookup("FR").unwrap();
    assert_eq!((fr.g_per_kwh, fr.year), (50.0, Some(2024)));
    assert_eq!(fr.range_g_per_kwh, [30.0, 80.0]);
    assert!(fr.range_basis.starts_with("RTE eco2mix hourly"));
    assert!(fr.source.starts_with(&label), "{}", fr.source);
    // Shipped cloud regions mapped to France follow the user's figure.
    let paris = t.lookup("aws:eu-west-3").unwrap();
    assert_eq!(
        (paris.g_per_kwh, paris.range_g_per_kwh),
        (50.0, [30.0, 80.0])
    );
    assert!(paris.source.contains(&label));
    // New entries, with the default band where no range is given.
    let xk = t.lookup("xk").unwrap();
    assert_eq!(xk.range_g_per_kwh, [350.0, 1050.0]);
    let lab = t.lookup("rack1").unwrap();
    assert_eq!((lab.region.as_str(), lab.g_per_kwh), ("lab:rack1", 700.0));
    assert!(lab.name.contains("(grid: Kosovo)"));
    assert_eq!(t.lookup("ovh:gra").unwrap().g_per_kwh, 60.0);
    // Everything else is the shipped table, and resolution goes through the merged table.
    assert_eq!(t.lookup("DE"), CarbonTable::builtin().lookup("DE"));
    assert_eq!(
        t.entries().len(),
        CarbonTable::builtin().entries().len() + 3
    );
    let p = CarbonParams::resolve_in(&t, Some("ovh:gra"), None, None, None).unwrap();
    assert_eq!(p.intensity.g_per_kwh, 60.0);
    let d = CarbonParams::resolve_in(&t, None, None, None, None).unwrap();
    assert_eq!(d.intensity.region, "WORLD");
    let t2 = CarbonTable::builtin()
        .with_user_table("[meta]\ndefault = \"FR\"\n", "x.toml")
        .unwrap();
    assert_eq!(t2.default_intensity().region, "FR");
}

#[test]
fn malformed_user_tables_give_usage_errors_with_file_line_and_reason() {
    let t = CarbonTable::builtin();
    let err = |text: &str| match t.with_user_table(text, "bad.toml") {
        Err(EnergyError::Usage(m)) => m,
        other => panic!("expected a usage error, got {other:?}"),
    };
    let grid = |extra: &str| {
        format!("[[grid]]\ncode = \"ZZ\"\nname = \"Z\"\ng_per_kwh = 100\nsource = \"s\"\nyear = 2024\n{extra}")
    };
    // Syntax and types: the TOML parser's line and column.
    let m = err("[[grid]\ncode = \"ZZ\"\n");
    assert!(m.starts_with("carbon table bad.toml: "), "{m}");
    assert!(m.contains("line 1") && m.contains("column"), "{m}");
    let m = err("\n[[grid]]\ncode = \"ZZ\"\nname = \"Z\"\ng_per_kwh = \"lots\"\nsource = \"s\"\nyear = 2024\n");
    assert!(m.contains("line 5") && m.contains("column"), "{m}");
    let m = err(&grid("gpk = 3\n"));
    assert!(m.contains("unknown field") && m.contains("gpk"), "{m}");
    let m = err("[[grid]]\ncode = \"ZZ\"\n");
    assert!(m.contains("missing field"), "{m}");
    // Meaning: the line of the entry and what is wrong.
    let m = err(&format!(
        "\n\n{}",
        grid("g_per_kwh_range = [120, 150]\nrange_basis = \"r\"\n")
    ));
    assert!(
        m.contains("line 4") && m.contains("contain g_per_kwh = 100"),
        "{m}"
    );
    assert!(err(&grid("g_per_kwh_range = [50, 150]\n")).contains("needs a range_basis"));
    assert!(err(&grid("").replace("100", "4500")).contains("[0, 2000)"));
    let m = err("[[cloud]]\ncode = \"lab:x\"\nname = \"x\"\ngrid = \"QQ\"\nsource = \"s\"\n");
    assert!(m.contains("line 2") && m.contains("maps to grid QQ"), "{m}");
    let m = err("[[cloud]]\ncode = \"lab:x\"\nname = \"x\"\nsource = \"s\"\n");
    assert!(m.contains("exactly one of grid"), "{m}");
    assert!(err(&format!("{}{}", grid(""), grid(""))).contains("ZZ is given twice"));
    let m =
        err("[[cloud]]\ncode = \"FR\"\nname = \"x\"\ng_per_kwh = 5\nsource = \"s\"\nyear = 2024\n");
    assert!(m.contains("FR is a [[grid]] entry"), "{m}");
    assert!(err("[meta]\nrange_low_factor = 0.1\n").contains("may only set default"));
    assert!(err("[meta]\ndefault = \"QQ\"\n").contains("default QQ is not in the table"));
    // An unreadable file says so.
    let missing = std::path::Path::new("/nonexistent/wattbench-carbon.toml");
    match t.with_user_file(missing) {
        Err(EnergyError::Usage(m)) => assert!(m.contains("cannot read it"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn projection_scales_figures_and_interval() {
    let spec = check_projection(Some(10), Some(100)).unwrap().unwrap();
    let e = Interval {
        value: 1.0,
        low: 0.9,
        high: 1.1,
    };
    let p = project(spec, 60.0, Some(e), Some(e.scale(0.5)), None);
    assert!(close(p.factor, 10.0));
    assert!(close(p.duration_s, 600.0));
    let pe = p.energy_kwh.unwrap();
    assert!(close(pe.value, 10.0) && close(pe.low, 9.0) && close(pe.high, 11.0));
    assert!(close(p.co2e_kg.unwrap().high, 5.5));
    assert!(check_projection(None, None).unwrap().is_none());
    assert!(check_projection(Some(0), Some(10)).is_err());
    assert!(check_projection(Some(20), Some(10)).is_err());
    assert!(check_projection(Some(1), None).is_err());
    let _ = ProjectionSpec {
        steps_done: 1,
        total_steps: 1,
    };
}

#[test]
fn power_only_domain_is_integrated_over_the_window() {
    let cfg = MeterConfig {
        sample_interval: Duration::from_millis(5),
        ..MeterConfig::default()
    };
    let m = Meters::from_domains(
        vec![Arc::new(wattbench_energy::fake::ConstantPower::new(
            "fake-gpu", 50.0,
        ))],
        &cfg,
    );
    let w = m.start().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let d = m.stop(w).remove(0);
    assert_eq!(d.source, Source::Integrated);
    // Constant power integrates exactly, whatever the sample times were.
    assert!(close(d.joules.unwrap(), 50.0 * d.window_s), "{d:?}");
    assert!(close(d.avg_watts.unwrap(), 50.0));
    // Sub-second windows of averaged power are flagged.
    assert!(d.reason.as_deref().unwrap().contains("unreliable"));
}

/// The final reading of a window cannot interleave with the background sampler's: with a
/// sampler ticking every millisecond and slow reads, a late tick between the final read and
/// the sampler's stop used to make the final value look like a counter wrap (+262,144 J).
#[test]
fn the_final_reading_never_interleaves_with_the_sampler() {
    use wattbench_energy::fake::StepCounter;
    let cfg = MeterConfig {
        sample_interval: Duration::from_millis(1),
        nvml: false,
        ..MeterConfig::default()
    };
    // 1 mJ per reading, wrapping at 2^38 mJ; a power-only domain forces the 1 ms sampler.
    let counter = StepCounter::new("pkg", 1, 0.0)
        .slow(Duration::from_millis(3))
        .wrapping(1 << 38);
    let m = Meters::from_domains(
        vec![
            Arc::new(counter),
            Arc::new(wattbench_energy::fake::ConstantPower::new("gpu", 10.0)),
        ],
        &cfg,
    );
    for i in 0..30 {
        let w = m.start().unwrap();
        std::thread::sleep(Duration::from_millis(5 + i % 4));
        let d = m.stop(w);
        let j = d[0].joules.unwrap();
        // At most one reading per millisecond of window plus the edges: far below a wrap.
        assert!(j < 1.0, "window {i}: {j} J");
    }
}

/// The sampler reads the driver's power beside a counter that offers it (an NVML GPU with the
/// energy counter), and the cross-check sets the two side by side over the same ticks: a
/// counter gaining 200 W beside a reading of 300 W gives a ratio of 1.5, and the domains
/// without a power reading get no samples.
#[test]
fn the_sampler_reads_power_beside_the_counter_for_the_cross_check() {
    use wattbench_energy::crosscheck::assess;
    use wattbench_energy::fake::{CounterWithPower, StepCounter};
    use wattbench_energy::sampler::Sampler;
    let m = Meters::from_domains(
        vec![
            Arc::new(CounterWithPower::new("gpu0", 200.0, 300.0)),
            Arc::new(StepCounter::new("pkg", 1, 0.0)),
        ],
        &MeterConfig::default(),
    );
    let s = Sampler::start(&m, Duration::from_millis(10), false).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let out = s.finish().unwrap();
    assert!(out.checks[1].is_none(), "a counter without a power reading");
    let samples = out.checks[0].as_ref().expect("gpu0's samples");
    // However few ticks a loaded machine lets the sampler take, the first one comes at once.
    assert!(samples.len() >= 2, "{} ticks", samples.len());
    let c = assess("gpu0", samples, 0.0, "test").unwrap();
    assert!(c.span_s > 0.5, "{c:?}");
    // Constant power integrates exactly; the counter gains 200 W of the same span, to its
    // 1 mJ resolution and the few milliseconds between a tick's time and its read (the fake
    // counter follows the wall clock) at each end: 2 % over a span near 1 s.
    assert!(close(c.integrated_j, 300.0 * c.span_s), "{c:?}");
    assert!(
        (c.counter_j / (200.0 * c.span_s) - 1.0).abs() < 0.02,
        "{c:?}"
    );
    assert!((c.ratio.unwrap() - 1.5).abs() < 0.03, "{c:?}");
}

/// An energy window of a device whose counter has a power reading beside it carries the
/// cross-check in its figure: over 2.2 s a counter of 200 W beside readings of 300 W disagree
/// (ratio 1.5, beyond the ±10 % of two 5 % sensors and the edges), which is a warning on the
/// figure; the figure itself stays the counter's. Other domains carry none.
#[test]
fn an_energy_window_carries_the_cross_check_and_warns_on_disagreement() {
    use wattbench_energy::crosscheck::Verdict;
    use wattbench_energy::fake::{CounterWithPower, StepCounter};
    let cfg = MeterConfig {
        sample_interval: Duration::from_millis(20),
        ..MeterConfig::default()
    };
    let m = Meters::from_domains(
        vec![
            Arc::new(CounterWithPower::new("gpu0", 200.0, 300.0)),
            Arc::new(StepCounter::new("pkg", 1, 0.0)),
        ],
        &cfg,
    );
    let w = m.start().unwrap();
    std::thread::sleep(Duration::from_millis(2200));
    let d = m.stop(w);
    let c = d[0].power_check.as_ref().expect("gpu0's cross-check");
    assert_eq!(c.verdict, Verdict::Disagree, "{c:?}");
    assert!((c.ratio.unwrap() - 1.5).abs() < 0.02, "{c:?}");
    assert!(
        d[0].warnings
            .iter()
            .any(|w| w.contains("differ by more than")),
        "{:?}",
        d[0].warnings
    );
    assert!((d[0].avg_watts.unwrap() - 200.0).abs() < 2.0, "{:?}", d[0]);
    assert!(d[1].power_check.is_none());
    // The check spans the whole window, its first and final readings included: a 2 s window
    // is judged, not cut to the sampler's ticks inside it (0.1 s short at each edge).
    assert!(
        (c.span_s - d[0].window_s).abs() < 1e-9,
        "check over {} s of a {} s window",
        c.span_s,
        d[0].window_s
    );
}

/// A domain whose read panics in the background sampler (its second read: the first is the
/// window's start, on the caller's thread).
struct PanicsInTheSampler {
    meta: wattbench_energy::DomainMeta,
    reads: std::sync::atomic::AtomicU32,
}

impl wattbench_energy::Domain for PanicsInTheSampler {
    fn meta(&self) -> &wattbench_energy::DomainMeta {
        &self.meta
    }
    fn read(&self, _: &wattbench_energy::ReadContext) -> Result<Reading, String> {
        if self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            panic!("a meter's read panicked (test)");
        }
        Ok(Reading::Power { watts: 10.0 })
    }
    fn min_window(&self) -> Duration {
        Duration::ZERO
    }
}

/// A meter whose read panics on the sampler's thread: the window still closes, with the
/// failure said, instead of the panic passing on to the caller.
#[test]
fn a_panicking_read_in_the_sampler_is_an_error_not_a_panic() {
    let d = PanicsInTheSampler {
        meta: wattbench_energy::DomainMeta::new("gpu0", "test", Source::Integrated, "device"),
        reads: Default::default(),
    };
    let m = Meters::from_domains(
        vec![Arc::new(d)],
        &MeterConfig {
            sample_interval: Duration::from_millis(5),
            nvml: false,
            ..MeterConfig::default()
        },
    );
    let w = m.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let d = m.stop(w).remove(0);
    let why = d.reason.as_deref().unwrap_or("");
    assert!(why.contains("sampler"), "{d:?}");
    // What is left is the window's edge readings (taken on the caller's thread) bridged
    // across the sampler's gap: a figure only with the failure said and no bound claimed
    // (this meter states no peak power to bound the gap by), never a bounded one or 0 J.
    if let Some(j) = d.joules {
        assert!(j > 0.0, "{d:?}");
        assert!(d.uncertainty_j.is_none_or(|u| !u.is_finite()), "{d:?}");
        assert!(d.warnings.iter().any(|w| w.contains("unknown")), "{d:?}");
    }
}
