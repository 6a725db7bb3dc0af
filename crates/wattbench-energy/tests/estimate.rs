//! The CPU estimate path (no RAPL; NVML left out, so the same holds on a GPU machine).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wattbench_energy::{MeterConfig, Meters, Source};

fn no_rapl() -> MeterConfig {
    MeterConfig {
        powercap_root: Some(PathBuf::from("/nonexistent/powercap")),
        nvml: false,
        ..MeterConfig::default()
    }
}

fn spin(cpu_s: f64) {
    let start = Instant::now();
    let mut x = 1u64;
    while start.elapsed().as_secs_f64() < cpu_s {
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
    }
    std::hint::black_box(x);
}

#[test]
fn estimate_is_labelled_estimated_with_its_assumptions() {
    let m = Meters::discover(&no_rapl()).unwrap();
    assert_eq!(m.domain_names(), ["cpu-estimate"]);
    assert_eq!(m.min_window(), Duration::from_millis(500));
    let w = m.start().unwrap();
    spin(0.2);
    let d = m.stop(w).remove(0);
    assert_eq!(d.name, "cpu-estimate");
    assert_eq!(d.source, Source::Estimated);
    assert_eq!(d.scope, "process");
    let a = d.assumptions.clone().unwrap();
    let cpu_s = a.cpu_seconds;
    let w_per = a.watts_per_busy_thread;
    assert!(cpu_s > 0.0, "{a:?}");
    assert!(a.tdp_watts > 0.0);
    assert!(!a.tdp_source.is_empty());
    // joules = TDP / threads x CPU seconds, exactly as stated.
    let j = d.joules.unwrap();
    assert!((j - cpu_s * w_per).abs() < 1e-9, "{j} vs {cpu_s} x {w_per}");
    // ±50 % model uncertainty at least.
    assert!(d.uncertainty_j.unwrap() >= 0.5 * j);
}

#[test]
fn declared_tdp_is_used_and_reported() {
    let cfg = MeterConfig {
        tdp_watts: Some(64.0),
        ..no_rapl()
    };
    let m = Meters::discover(&cfg).unwrap();
    let w = m.start().unwrap();
    spin(0.05);
    let d = m.stop(w).remove(0);
    let a = d.assumptions.unwrap();
    assert_eq!(a.tdp_watts, 64.0);
    assert!(a.tdp_source.starts_with("flag"));
    let threads = a.hardware_threads as f64;
    assert_eq!(a.watts_per_busy_thread, 64.0 / threads);
}

#[test]
fn this_machine_reports_what_exists_and_why_not() {
    let m = Meters::discover(&MeterConfig::default()).unwrap();
    let inv = m.inventory();
    let nvml = inv.iter().find(|i| i.kind == "nvml").unwrap();
    if !nvml.available {
        assert!(nvml.reason.as_deref().unwrap().starts_with("unavailable: "));
    }
    let have_rapl_pkg = m
        .domain_names()
        .iter()
        .any(|n| n.starts_with("cpu-package"));
    let est = inv.iter().find(|i| i.kind == "estimate").unwrap();
    // Exactly one CPU source: RAPL when a package counter is readable, else the estimate.
    assert_eq!(est.available, !have_rapl_pkg);
    if est.available {
        let d = m.idle_baseline(Duration::from_millis(20));
        let e = d.iter().find(|d| d.name == "cpu-estimate").unwrap();
        assert_eq!(e.source, Source::Estimated);
        assert!(e.joules.is_some());
    }
    assert!(m.gpu_inventory().len() <= inv.iter().filter(|i| i.kind == "nvml").count());
}
