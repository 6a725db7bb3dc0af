//! RAPL through a fake powercap tree whose counters the tests advance by hand.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wattbench_energy::{total_energy, MeterConfig, Meters, Source};

/// The kernel's usual range for an Intel package counter.
const MAX: u64 = 262_143_328_850;

struct Fake {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fake {
    fn zone(&self, dir: &str, name: &str, energy: u64, max: Option<u64>) {
        let z = self.root.join(dir);
        fs::create_dir_all(&z).unwrap();
        fs::write(z.join("name"), format!("{name}\n")).unwrap();
        fs::write(z.join("energy_uj"), format!("{energy}\n")).unwrap();
        if let Some(m) = max {
            fs::write(z.join("max_energy_range_uj"), format!("{m}\n")).unwrap();
        }
    }
    fn set(&self, dir: &str, energy: u64) {
        fs::write(self.root.join(dir).join("energy_uj"), format!("{energy}\n")).unwrap();
    }
    /// Replaces `energy_uj` by a directory: unreadable even for root.
    fn break_counter(&self, dir: &str) {
        let p = self.root.join(dir).join("energy_uj");
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
    }
    fn meters(&self) -> Meters {
        Meters::discover(&cfg(&self.root)).unwrap()
    }
}

fn cfg(root: &Path) -> MeterConfig {
    MeterConfig {
        powercap_root: Some(root.to_path_buf()),
        nvml: false,
        ..MeterConfig::default()
    }
}

/// One package with core and dram subzones, a psys zone, an MMIO duplicate, and a second
/// package whose counter cannot be read.
fn machine() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("powercap");
    fs::create_dir_all(root.join("intel-rapl")).unwrap(); // control-type dir, not a zone
    let f = Fake { _dir: dir, root };
    f.zone("intel-rapl:0", "package-0", MAX - 1_000_000, Some(MAX));
    f.zone("intel-rapl:0:0", "core", 10, Some(MAX));
    f.zone("intel-rapl:0:1", "dram", 100, Some(65_532_610_987));
    f.zone("intel-rapl:1", "package-1", 5, Some(MAX));
    f.break_counter("intel-rapl:1");
    f.zone("intel-rapl:2", "psys", 0, Some(MAX));
    f.zone("intel-rapl-mmio:0", "package-0", 7, Some(MAX));
    f
}

#[test]
fn discovery_names_domains_and_explains_the_rest() {
    let f = machine();
    let m = f.meters();
    let mut names = m.domain_names();
    names.sort();
    assert_eq!(names, ["cpu-core-0", "cpu-package-0", "dram-0", "psys"]);
    let inv = m.inventory();
    let pkg1 = inv.iter().find(|i| i.name == "cpu-package-1").unwrap();
    assert!(!pkg1.available);
    let why = pkg1.reason.as_deref().unwrap();
    assert!(why.starts_with("unavailable: cannot read"), "{why}");
    assert!(why.contains("intel-rapl:1"), "{why}");
    let mmio = inv
        .iter()
        .find(|i| i.name.starts_with("intel-rapl-mmio:0"))
        .unwrap();
    assert!(mmio.reason.as_deref().unwrap().contains("duplicates"));
    // A package counter exists, so the CPU is measured, not estimated.
    let est = inv.iter().find(|i| i.kind == "estimate").unwrap();
    assert!(!est.available);
    assert_eq!(m.min_window(), Duration::from_secs(1));
}

#[test]
fn window_across_a_wraparound_matches_hand_computed_energy() {
    let f = machine();
    let m = f.meters();
    let w = m.start().unwrap();
    // package-0 wraps: MAX - 1e6 -> MAX, then 0 -> 4e6: 5e6 µJ = 5 J.
    f.set("intel-rapl:0", 4_000_000);
    f.set("intel-rapl:0:0", 3_000_010); // 3 J of cores, inside the package
    f.set("intel-rapl:0:1", 2_000_100); // 2 J of dram
    f.set("intel-rapl:2", 9_000_000); // 9 J of platform
    let d = m.stop(w);
    let get = |n: &str| d.iter().find(|x| x.name == n).unwrap().clone();

    let pkg = get("cpu-package-0");
    assert_eq!(pkg.source, Source::Measured);
    assert!((pkg.joules.unwrap() - 5.0).abs() < 1e-9, "{pkg:?}");
    assert!(pkg.in_total);
    assert!(pkg.uncertainty_j.unwrap() > 0.0);
    let dram = get("dram-0");
    assert!((dram.joules.unwrap() - 2.0).abs() < 1e-9);
    let core = get("cpu-core-0");
    assert!((core.joules.unwrap() - 3.0).abs() < 1e-9);
    assert!(!core.in_total);
    assert!(core
        .note
        .as_deref()
        .unwrap()
        .contains("part of cpu-package-0"));
    assert!(!get("psys").in_total);

    // Totals add package and dram only: never core (a subset) or psys (a superset).
    let t = total_energy(&d);
    assert!((t.joules.unwrap().value - 7.0).abs() < 1e-9, "{t:?}");
    assert_eq!(
        t.includes,
        ["cpu-package-0 (measured)", "dram-0 (measured)"]
    );
    assert!(t.excludes.iter().any(|e| e.starts_with("cpu-core-0")));
    assert!(t.excludes.iter().any(|e| e.starts_with("psys")));
    assert!(!t.mixed);
}

#[test]
fn counter_that_becomes_unreadable_is_unsupported_not_zero() {
    let f = machine();
    let m = f.meters();
    let w = m.start().unwrap();
    f.set("intel-rapl:0:1", 1_000_100);
    f.break_counter("intel-rapl:0");
    let d = m.stop(w);
    let pkg = d.iter().find(|x| x.name == "cpu-package-0").unwrap();
    assert_eq!(pkg.source, Source::Unsupported);
    assert_eq!(pkg.joules, None);
    let why = pkg.reason.as_deref().unwrap();
    assert!(why.contains("cannot read"), "{pkg:?}");
    // Said once: read errors already start with "unavailable: ".
    assert!(!why.contains("unavailable: unavailable"), "{why}");
    let dram = d.iter().find(|x| x.name == "dram-0").unwrap();
    assert!((dram.joules.unwrap() - 1.0).abs() < 1e-9);
    // The total says the package is missing instead of counting it as 0.
    let t = total_energy(&d);
    assert!(t
        .excludes
        .iter()
        .any(|e| e.starts_with("cpu-package-0: no reading")));
}

#[test]
fn backwards_counter_without_range_is_never_negative() {
    // No range file, and a range of 0 (no range: not a counter that wraps at every update,
    // whose uncertainty would be NaN).
    for max in [None, Some(0)] {
        let dir = tempfile::tempdir().unwrap();
        let f = Fake {
            root: dir.path().to_path_buf(),
            _dir: dir,
        };
        f.zone("intel-rapl:0", "package-0", 5_000_000, max);
        let m = f.meters();
        let w = m.start().unwrap();
        f.set("intel-rapl:0", 1_000_000);
        let d = m.stop(w);
        assert_eq!(d[0].joules, None, "{max:?}");
        assert_eq!(d[0].source, Source::Unsupported);
        assert!(d[0].reason.as_deref().unwrap().contains("backwards"));
        // A counter that moves forward has a finite uncertainty.
        let w = m.start().unwrap();
        f.set("intel-rapl:0", 3_000_000);
        let d = m.stop(w);
        assert_eq!(d[0].joules, Some(2.0), "{max:?}");
        assert!(
            d[0].uncertainty_j.unwrap().is_finite(),
            "{max:?}: {:?}",
            d[0]
        );
    }
}

#[test]
fn amd_style_tree_without_dram_is_found() {
    // AMD (Linux >= 5.8) exposes package and core zones through the same driver, no dram.
    let dir = tempfile::tempdir().unwrap();
    let f = Fake {
        root: dir.path().to_path_buf(),
        _dir: dir,
    };
    f.zone("intel-rapl:0", "package-0", 0, Some(65_532_610_987));
    f.zone("intel-rapl:0:0", "core", 0, Some(65_532_610_987));
    let m = f.meters();
    let mut names = m.domain_names();
    names.sort();
    assert_eq!(names, ["cpu-core-0", "cpu-package-0"]);
}

#[test]
fn missing_powercap_root_is_unavailable_with_reason_and_falls_back_to_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let m = Meters::discover(&cfg(&dir.path().join("nope"))).unwrap();
    let inv = m.inventory();
    let rapl = inv.iter().find(|i| i.kind == "rapl").unwrap();
    assert!(!rapl.available);
    assert!(rapl
        .reason
        .as_deref()
        .unwrap()
        .starts_with("unavailable: no powercap interface"));
    assert_eq!(m.domain_names(), ["cpu-estimate"]);
}

/// A counter that steps back a little with a known range (100,000,000 -> 99,999,000 µJ: a
/// reset, a driver reload) was read as a wrap: +262,143 J, 52 kW over 5 s on a 1000 W
/// package, labelled measured, with no warning. A wrap that implies more than twice the
/// zone's plausible peak power is a reset: its time has no reading (here the whole window:
/// no figure, and why).
#[test]
fn a_counter_that_steps_back_is_a_reset_not_a_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fake {
        root: dir.path().to_path_buf(),
        _dir: dir,
    };
    f.zone("intel-rapl:0", "package-0", 100_000_000, Some(MAX));
    let m = f.meters();
    let w = m.start().unwrap();
    f.set("intel-rapl:0", 99_999_000);
    let d = m.stop(w);
    assert_eq!(d[0].joules, None, "{:?}", d[0]);
    assert_eq!(d[0].source, Source::Unsupported);
    let why = d[0].reason.as_deref().unwrap();
    assert!(why.contains("reset"), "{why}");
    // A true wrap stays one: 5 J across the range's end over 50 ms (100 W).
    f.set("intel-rapl:0", MAX - 1_000_000);
    let w = m.start().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    f.set("intel-rapl:0", 4_000_000);
    let d = m.stop(w);
    assert!((d[0].joules.unwrap() - 5.0).abs() < 1e-9, "{:?}", d[0]);
    assert_eq!(d[0].source, Source::Measured);
}

/// A counter that never changes (a DRAM zone some platforms expose but never update, a
/// frozen driver) read as a measured 0 J +- a little. When the probe saw it change not at
/// all, a window reads 0 J, and it was seen unchanged (probe, earlier windows, this one) for
/// more than ten of the updates that implies, it has no reading, and the total is partial.
#[test]
fn a_counter_that_never_moves_has_no_reading_not_0_j() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fake {
        root: dir.path().to_path_buf(),
        _dir: dir,
    };
    f.zone("intel-rapl:0", "package-0", 1_000, Some(MAX));
    f.zone("intel-rapl:0:0", "dram", 7_000, Some(MAX));
    let m = f.meters();
    // The probe (up to 300 ms) sees neither move.
    assert!(m.probes().iter().all(|p| p.unwrap().update.is_none()));
    let w = m.start().unwrap();
    std::thread::sleep(Duration::from_millis(3200));
    f.set("intel-rapl:0", 1_000 + 30_000_000);
    let d = m.stop(w);
    let get = |n: &str| d.iter().find(|x| x.name == n).unwrap().clone();
    assert!((get("cpu-package-0").joules.unwrap() - 30.0).abs() < 1e-9);
    let dram = get("dram-0");
    assert_eq!(dram.joules, None, "{dram:?}");
    assert_eq!(dram.source, Source::Unsupported);
    assert!(
        dram.reason.as_deref().unwrap().contains("did not move"),
        "{dram:?}"
    );
    let t = total_energy(&d);
    assert_eq!(t.missing, ["dram-0"], "{t:?}");
    // It is judged on all the time it was seen unchanged, not on one window: after those
    // 3.2 s, a short window that read 0 J has no reading either.
    let w = m.start().unwrap();
    let d = m.stop(w);
    assert_eq!(get_joules(&d, "dram-0"), None);
    // A counter found just now: a short 0 J window may be quantisation, and keeps its
    // figure, with a warning that nothing confirms it.
    let m = f.meters();
    let w = m.start().unwrap();
    let d = m.stop(w);
    assert_eq!(get_joules(&d, "dram-0"), Some(0.0));
    let dram = d.iter().find(|x| x.name == "dram-0").unwrap();
    assert!(
        (dram.warnings.iter())
            .any(|w| w.contains("has not changed at all since it was first read")),
        "{dram:?}"
    );
}

fn get_joules(d: &[wattbench_energy::DomainEnergy], name: &str) -> Option<f64> {
    d.iter().find(|x| x.name == name).unwrap().joules
}
