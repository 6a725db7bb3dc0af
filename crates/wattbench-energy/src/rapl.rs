//! RAPL energy counters through the Linux powercap sysfs (`intel-rapl` zones, which AMD CPUs
//! also use since Linux 5.8, and any other `*rapl*` control type).
//!
//! Zones `<type>:<pkg>` are packages (or psys), `<type>:<pkg>:<n>` their subzones (core,
//! uncore, dram). Package and dram are disjoint and go into totals; core and uncore are parts
//! of the package and psys covers the whole platform, so those three never do. The MMIO
//! interface (`intel-rapl-mmio`) duplicates the MSR package counter and is skipped when both
//! exist.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::counter::CounterSpec;
use crate::meters::{Domain, DomainMeta, ReadContext, Reading};
use crate::MeterInfo;
use crate::Source;

/// Where powercap lives on a normal Linux system.
pub const DEFAULT_POWERCAP_ROOT: &str = "/sys/class/powercap";

/// RAPL updates its counters about every 1 ms (Intel SDM, "RAPL interfaces").
const UPDATE_PERIOD: Duration = Duration::from_millis(1);

/// The plausible peak power of a zone with no readable power limit, W: above any CPU
/// package or DRAM power sold today, so that the wrap period it implies is a lower bound.
const DEFAULT_PEAK_W: f64 = 1000.0;

/// Headroom over the highest power limit a zone reports: limits are averages (PL1, PL2) and
/// short excursions exceed them.
const PEAK_HEADROOM: f64 = 1.5;

/// The first value of `field` in `/proc/cpuinfo`'s text.
fn cpuinfo_field<'a>(cpuinfo: &'a str, field: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == field).then(|| v.trim())
    })
}

/// Joules per RAPL energy unit: 2^-16 J (15.3 µJ) on AMD and Hygon, 2^-14 J (61 µJ) on Intel
/// (the MSR's energy-status unit; powercap hides it, so it is taken from the vendor). Unknown
/// vendors get Intel's, the coarser.
fn energy_unit_j(cpuinfo: &str) -> f64 {
    match cpuinfo_field(cpuinfo, "vendor_id") {
        Some("AuthenticAMD" | "HygonGenuine") => 1.0 / 65536.0,
        _ => 1.0 / 16384.0,
    }
}

/// What a RAPL figure of this CPU (`/proc/cpuinfo`'s text) is, where it is a model's output
/// rather than a measurement: on AMD (and Hygon) CPUs, and on Intel's before Haswell (Sandy
/// Bridge and Ivy Bridge, family 6 models 42, 45, 58 and 62), whose RAPL estimates energy from
/// activity; Haswell moved it "from modeling to actual measurement" (Hackenberg et al., "An
/// Energy Efficiency Feature Survey of the Intel Haswell Processor", IPDPSW 2015). No vendor
/// publishes an accuracy for either, so none is added to the interval: the note says the
/// error is unquantified.
pub fn model_based_note(cpuinfo: &str) -> Option<&'static str> {
    let vendor = cpuinfo_field(cpuinfo, "vendor_id")?;
    let family = cpuinfo_field(cpuinfo, "cpu family").and_then(|f| f.parse::<u32>().ok());
    let model = cpuinfo_field(cpuinfo, "model").and_then(|m| m.parse::<u32>().ok());
    match (vendor, family, model) {
        ("AuthenticAMD" | "HygonGenuine", _, _) => Some(
            "AMD's RAPL counters are a model's estimate, not a measurement, and AMD publishes no \
             accuracy for them: their error is unquantified and not in the interval, which \
             covers the counter's resolution, updates and wraps only",
        ),
        ("GenuineIntel", Some(6), Some(42 | 45 | 58 | 62)) => Some(
            "before Haswell, Intel's RAPL counters are a model's estimate, not a measurement, \
             and Intel publishes no accuracy for them: their error is unquantified and not in \
             the interval, which covers the counter's resolution, updates and wraps only",
        ),
        _ => None,
    }
}

/// The highest power limit a zone reports (`constraint_*_max_power_uw`,
/// `constraint_*_power_limit_uw`), with headroom; else [`DEFAULT_PEAK_W`].
fn plausible_peak(zpath: &Path) -> (f64, String) {
    let limits: Vec<f64> = (0..4)
        .flat_map(|i| {
            [
                format!("constraint_{i}_max_power_uw"),
                format!("constraint_{i}_power_limit_uw"),
            ]
        })
        .filter_map(|f| read_u64(&zpath.join(f)).ok())
        .filter(|&uw| uw > 0)
        .map(|uw| uw as f64 * 1e-6)
        .collect();
    match limits
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, w| Some(m.map_or(w, |m| m.max(w))))
    {
        Some(w) => (
            w * PEAK_HEADROOM,
            format!("{PEAK_HEADROOM}x the zone's highest power limit, {w:.0} W"),
        ),
        None => (
            DEFAULT_PEAK_W,
            "no power limit readable; an upper bound for any CPU package".into(),
        ),
    }
}

/// What a zone measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneKind {
    /// A CPU package (socket).
    Package,
    /// The cores of a package (part of it).
    Core,
    /// The uncore / integrated GPU of a package (part of it).
    Uncore,
    /// Memory attached to a package.
    Dram,
    /// The whole platform (superset of package and dram).
    Psys,
    /// Anything else the kernel names.
    Other,
}

/// One readable RAPL zone.
#[derive(Debug, Clone)]
pub struct RaplZone {
    meta: DomainMeta,
    kind: ZoneKind,
    peak: (f64, String),
    unit_j: f64,
    package: Option<String>,
    energy_path: PathBuf,
    max_range_uj: Option<u64>,
    zone_dir: String,
}

impl RaplZone {
    /// True for a package zone (the CPU is then measured, no estimate needed).
    pub fn is_package(&self) -> bool {
        self.kind == ZoneKind::Package
    }
    /// What the zone measures.
    pub fn zone_kind(&self) -> ZoneKind {
        self.kind
    }
    /// The sysfs directory name, e.g. `intel-rapl:0:1`.
    pub fn zone_dir(&self) -> &str {
        &self.zone_dir
    }
    /// `max_energy_range_uj`, if readable.
    pub fn max_range_uj(&self) -> Option<u64> {
        self.max_range_uj
    }
}

/// The labels of a zone of `kind`, inside package `package` (named, for core and uncore).
fn zone_meta(name: String, kind: ZoneKind, package: Option<&str>) -> DomainMeta {
    let scope = match kind {
        ZoneKind::Package => "package",
        ZoneKind::Core => "cores",
        ZoneKind::Uncore => "uncore",
        ZoneKind::Dram => "dram",
        ZoneKind::Psys => "platform",
        ZoneKind::Other => "other",
    };
    let mut meta = DomainMeta::new(name, "rapl", Source::Measured, scope);
    meta.in_total = matches!(kind, ZoneKind::Package | ZoneKind::Dram);
    meta.note = Some(match kind {
        ZoneKind::Core | ZoneKind::Uncore => format!(
            "part of {}; not added to totals",
            package.unwrap_or("its package")
        ),
        ZoneKind::Psys => "whole platform, overlaps package and dram; not added to totals".into(),
        ZoneKind::Other => "unknown zone; not added to totals".into(),
        ZoneKind::Package | ZoneKind::Dram => {
            "counts every process on the machine, not only the measured one".into()
        }
    });
    meta
}

/// The zones found, and those that could not be used with reasons.
#[derive(Debug, Default)]
pub struct RaplDiscovery {
    /// Readable zones.
    pub domains: Vec<RaplZone>,
    /// Zones (or the whole interface) that cannot be read, and why.
    pub unavailable: Vec<MeterInfo>,
    /// What the user must be told in every summary: counters that exist but are denied.
    pub warnings: Vec<String>,
}

/// The summary warning when RAPL zones exist but cannot be read: the CPU figure silently
/// changing meaning (whole package, measured → one process tree, estimated) must be said.
pub fn denied_warning(zones: &[String]) -> String {
    format!(
        "RAPL counters exist here ({}) but this user may not read them (permission denied): \
         the CPU figure is therefore a per-process estimate from TDP x CPU time, not the \
         measured energy of the whole package. `wattbench info` says how to grant access",
        zones.join(", ")
    )
}

/// Explains a failed read of a powercap file, saying how to fix a permission problem.
pub fn describe_read_error(path: &Path, e: &std::io::Error) -> String {
    if e.kind() == ErrorKind::PermissionDenied {
        format!(
            "unavailable: permission denied reading {}: since Linux 5.10 energy_uj is readable \
             by root only, because fine-grained energy readings let an unprivileged process \
             infer secrets such as cryptographic keys (PLATYPUS, CVE-2020-8694). Opening \
             energy_uj to all users (`chmod a+r`) re-opens that side channel on this machine. \
             Prefer running as root, or granting one trusted group: `sudo chgrp powercap \
             /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj \
             && sudo chmod g+r` on the same files (until reboot; a udev rule or tmpfiles.d entry \
             makes it permanent); in a container, mount /sys/class/powercap and point \
             WATTBENCH_POWERCAP_ROOT or --powercap-root at it",
            path.display()
        )
    } else {
        format!("unavailable: cannot read {}: {e}", path.display())
    }
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let s = fs::read_to_string(path).map_err(|e| describe_read_error(path, &e))?;
    s.trim().parse::<u64>().map_err(|e| {
        format!(
            "unavailable: {} does not hold a number ({e}): {:?}",
            path.display(),
            s.trim()
        )
    })
}

/// `intel-rapl:0:1` → (`intel-rapl`, [0, 1]).
fn parse_zone_dir(name: &str) -> Option<(&str, Vec<&str>)> {
    let mut it = name.split(':');
    let ty = it.next()?;
    let idx: Vec<&str> = it.collect();
    if idx.is_empty() || idx.len() > 2 || !ty.contains("rapl") {
        return None;
    }
    if idx
        .iter()
        .any(|i| i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((ty, idx))
}

fn classify(zone_name: &str) -> (ZoneKind, Option<&str>) {
    if let Some(n) = zone_name.strip_prefix("package-") {
        (ZoneKind::Package, Some(n))
    } else {
        match zone_name {
            "core" => (ZoneKind::Core, None),
            "uncore" => (ZoneKind::Uncore, None),
            "dram" => (ZoneKind::Dram, None),
            "psys" => (ZoneKind::Psys, None),
            _ => (ZoneKind::Other, None),
        }
    }
}

/// Finds RAPL zones under a powercap root (real sysfs or a fake tree).
pub fn discover(root: &Path) -> RaplDiscovery {
    let mut out = RaplDiscovery::default();
    let unavailable = |name: &str, reason: String| MeterInfo {
        reason: Some(reason),
        ..MeterInfo::unavailable(name, "rapl", "")
    };
    let entries = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) => {
            out.unavailable.push(unavailable(
                "rapl",
                format!(
                    "unavailable: no powercap interface at {} ({e}); the CPU is not RAPL-capable, \
                     the intel_rapl driver is not loaded, or a container masks /sys",
                    root.display()
                ),
            ));
            return out;
        }
    };
    let mut dirs: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| parse_zone_dir(n).is_some())
        .collect();
    dirs.sort();
    // Prefer the MSR interface; skip MMIO zones that duplicate an MSR package.
    let has_msr = dirs.iter().any(|d| d.starts_with("intel-rapl:"));
    let mut zones = Vec::new();
    let mut denied = Vec::new();
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let unit_j = energy_unit_j(&cpuinfo);
    let modelled = model_based_note(&cpuinfo);
    for dir in &dirs {
        let (ty, idx) = parse_zone_dir(dir).expect("filtered above");
        let zpath = root.join(dir);
        let zone_name = fs::read_to_string(zpath.join("name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| dir.clone());
        if ty.contains("mmio") && has_msr {
            out.unavailable.push(unavailable(
                &format!("{dir} ({zone_name})"),
                "unavailable: not used, duplicates the MSR interface's counter (never summed)"
                    .into(),
            ));
            continue;
        }
        let (mut kind, pkg_num) = classify(&zone_name);
        if kind == ZoneKind::Package && idx.len() == 2 {
            kind = ZoneKind::Other;
        }
        let pkg = idx[0].to_string();
        let pkg_label = pkg_num.map(str::to_string).unwrap_or_else(|| pkg.clone());
        let name = match kind {
            ZoneKind::Package => format!("cpu-package-{pkg_label}"),
            ZoneKind::Core => format!("cpu-core-{pkg}"),
            ZoneKind::Uncore => format!("cpu-uncore-{pkg}"),
            ZoneKind::Dram => format!("dram-{pkg}"),
            ZoneKind::Psys => "psys".to_string(),
            ZoneKind::Other => format!("rapl-{}", dir.replace(':', "-")),
        };
        let energy_path = zpath.join("energy_uj");
        if let Err(reason) = read_u64(&energy_path) {
            if reason.starts_with("unavailable: permission denied") {
                denied.push(name.clone());
            }
            out.unavailable.push(unavailable(&name, reason));
            continue;
        }
        // A range of 0 is no range: treated as unknown, not as a counter
        // that wraps at every update.
        let max_range_uj = read_u64(&zpath.join("max_energy_range_uj"))
            .ok()
            .filter(|&r| r > 0);
        zones.push(RaplZone {
            meta: zone_meta(name, kind, None),
            kind,
            peak: plausible_peak(&zpath),
            unit_j,
            package: (idx.len() == 2 || kind == ZoneKind::Package).then(|| pkg.clone()),
            energy_path,
            max_range_uj,
            zone_dir: dir.clone(),
        });
    }
    if zones.is_empty() && out.unavailable.is_empty() {
        out.unavailable.push(unavailable(
            "rapl",
            format!(
                "unavailable: {} has no RAPL zones (no intel-rapl / amd rapl entries)",
                root.display()
            ),
        ));
    }
    // A package's name for its subzones' notes.
    let pkg_names: Vec<(String, String)> = zones
        .iter()
        .filter(|z| z.kind == ZoneKind::Package)
        .filter_map(|z| Some((z.package.clone()?, z.meta.name.clone())))
        .collect();
    for z in &mut zones {
        if matches!(z.kind, ZoneKind::Core | ZoneKind::Uncore) {
            if let Some((_, pn)) = pkg_names
                .iter()
                .find(|(p, _)| Some(p) == z.package.as_ref())
            {
                z.package = Some(pn.clone());
            }
        }
        z.meta = zone_meta(z.meta.name.clone(), z.kind, z.package.as_deref());
        if let (Some(m), Some(note)) = (modelled, z.meta.note.as_mut()) {
            note.push_str("; ");
            note.push_str(m);
        }
    }
    if !denied.is_empty() {
        out.warnings.push(denied_warning(&denied));
    }
    out.domains = zones;
    out
}

impl Domain for RaplZone {
    fn meta(&self) -> &DomainMeta {
        &self.meta
    }
    fn read(&self, _ctx: &ReadContext) -> Result<Reading, String> {
        Ok(Reading::Counter {
            raw: read_u64(&self.energy_path)?,
            joules_per_unit: 1e-6,
            wrap_at: self.max_range_uj,
        })
    }
    fn counter(&self) -> Option<CounterSpec> {
        Some(CounterSpec {
            resolution_j: self.unit_j,
            nominal_update: UPDATE_PERIOD,
            wraps: true,
            wrap_j: self.max_range_uj.map(|uj| uj as f64 * 1e-6),
            peak_w: self.peak.0,
            peak_source: self.peak.1.clone(),
            // Intel and AMD publish none (see `model_based_note`).
            relative_accuracy: 0.0,
        })
    }
    fn min_window(&self) -> Duration {
        Duration::from_secs(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_dir_names() {
        assert_eq!(
            parse_zone_dir("intel-rapl:0:1"),
            Some(("intel-rapl", vec!["0", "1"]))
        );
        assert!(parse_zone_dir("intel-rapl").is_none());
        assert!(parse_zone_dir("dtpm:0").is_none());
        assert!(parse_zone_dir("intel-rapl:x").is_none());
    }

    /// AMD's and pre-Haswell Intel's RAPL is a model: the zones say so, and that its error is
    /// unquantified; Haswell and later Intel CPUs measure.
    #[test]
    fn model_based_rapl_is_named_by_vendor_and_model() {
        let cpu = |vendor: &str, family: u32, model: u32| {
            format!(
                "processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: \
                 {model}\nmodel name\t: x\n"
            )
        };
        let amd = model_based_note(&cpu("AuthenticAMD", 25, 1)).unwrap();
        assert!(amd.contains("AMD") && amd.contains("unquantified"), "{amd}");
        assert!(model_based_note(&cpu("HygonGenuine", 24, 0)).is_some());
        for snb_ivb in [42, 45, 58, 62] {
            let n = model_based_note(&cpu("GenuineIntel", 6, snb_ivb)).unwrap();
            assert!(n.contains("before Haswell"), "{n}");
        }
        // Haswell-EP (63), Skylake-SP (85), Sapphire Rapids (143).
        for measured in [63, 85, 143] {
            assert_eq!(model_based_note(&cpu("GenuineIntel", 6, measured)), None);
        }
        assert_eq!(model_based_note(""), None);
        assert_eq!(energy_unit_j(&cpu("AuthenticAMD", 25, 1)), 1.0 / 65536.0);
        assert_eq!(energy_unit_j(&cpu("GenuineIntel", 6, 85)), 1.0 / 16384.0);
    }

    #[test]
    fn permission_denied_says_how_to_grant_access() {
        let e = std::io::Error::from(ErrorKind::PermissionDenied);
        let m = describe_read_error(Path::new("/x/energy_uj"), &e);
        assert!(m.starts_with("unavailable: permission denied"), "{m}");
        assert!(m.contains("PLATYPUS") && m.contains("re-opens"), "{m}");
        let w = denied_warning(&["cpu-package-0".into()]);
        assert!(w.contains("estimate") && w.contains("whole package"), "{w}");
        let other =
            describe_read_error(Path::new("/x"), &std::io::Error::from(ErrorKind::NotFound));
        assert!(!other.contains("chmod"));
    }
}
