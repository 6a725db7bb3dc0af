//! `WATTBENCH_POWERCAP_ROOT` (alone in its test binary: it sets a process-wide variable).

use std::path::PathBuf;

use wattbench_energy::MeterConfig;

#[test]
fn powercap_root_precedence() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("WATTBENCH_POWERCAP_ROOT", dir.path());
    let cfg = MeterConfig::default();
    assert_eq!(cfg.resolved_powercap_root(), dir.path());
    let flag = MeterConfig {
        powercap_root: Some(PathBuf::from("/flag")),
        ..MeterConfig::default()
    };
    assert_eq!(flag.resolved_powercap_root(), PathBuf::from("/flag"));
    std::env::remove_var("WATTBENCH_POWERCAP_ROOT");
    assert_eq!(
        MeterConfig::default().resolved_powercap_root(),
        PathBuf::from("/sys/class/powercap")
    );
}
