//! Which GPUs to meter: only those the measured work can use, so that a one-GPU job on an
//! eight-GPU node is not charged for seven idle GPUs. The selection comes from `--gpus`, else
//! `CUDA_VISIBLE_DEVICES` (read as CUDA reads it), else every GPU; GPUs left out are listed
//! with the reason.
//!
//! `CUDA_VISIBLE_DEVICES` holds CUDA device indices or UUIDs (`GPU-…`, unique prefixes
//! allowed), comma-separated; CUDA ignores everything from the first entry it cannot
//! resolve. A MIG instance (`MIG-…`) is used by CUDA, but its energy cannot be metered (NVML
//! reports energy for the parent GPU only, shared by its instances): it is named in a
//! warning, and no GPU is metered for it. Indices count in CUDA's order, which is fastest-first unless
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID`; NVML counts in PCI bus order. On a node of identical GPUs
//! the two agree (CUDA breaks ties by bus id); on a mixed node they may not, and the
//! selection says so. UUIDs are unambiguous.

/// A GPU as NVML identifies it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuIdentity {
    /// NVML index (PCI bus order).
    pub index: u32,
    /// `GPU-…` UUID.
    pub uuid: Option<String>,
    /// PCI bus id, e.g. `00000000:3B:00.0`.
    pub pci_bus_id: Option<String>,
    /// Product name.
    pub name: Option<String>,
}

/// Which GPUs to meter.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum GpuSelection {
    /// `CUDA_VISIBLE_DEVICES` when set, else every GPU.
    #[default]
    Auto,
    /// Every GPU, whatever `CUDA_VISIBLE_DEVICES` says.
    All,
    /// No GPU.
    None,
    /// These: NVML indices, UUIDs (or unique prefixes) or PCI bus ids.
    List(Vec<String>),
}

impl GpuSelection {
    /// Parses `--gpus`: `all`, `none`, or a comma-separated list.
    pub fn parse(s: &str) -> GpuSelection {
        match s.trim() {
            "all" => GpuSelection::All,
            "none" | "" => GpuSelection::None,
            list => GpuSelection::List(list.split(',').map(|e| e.trim().to_string()).collect()),
        }
    }
}

/// The outcome: which NVML indices are metered, and which are left out and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selected {
    /// NVML indices to meter, in the order given.
    pub metered: Vec<u32>,
    /// NVML indices left out, with the reason.
    pub left_out: Vec<(u32, String)>,
    /// What decided (the flag, the variable and its value, or "every GPU").
    pub basis: String,
    /// Doubts about the mapping.
    pub warnings: Vec<String>,
}

fn bus_key(id: &str) -> String {
    // `00000000:3B:00.0`, `0000:3b:00.0` and `3b:00.0` name the same device.
    let id = id.trim().to_ascii_lowercase();
    let parts: Vec<&str> = id.split(':').collect();
    let n = parts.len();
    if n >= 2 {
        format!("{}:{}", parts[n - 2], parts[n - 1])
    } else {
        id
    }
}

/// Why a MIG instance is not metered.
fn mig_unmetered(entry: &str) -> String {
    format!(
        "{entry} is a MIG instance: wattbench cannot meter a MIG instance's energy (NVML \
         reports energy for the parent GPU only, shared by all its instances), so its GPU is \
         not metered"
    )
}

/// Resolves one entry to an NVML index. `cuda_index`: numbers are CUDA indices (else NVML's).
fn resolve(gpus: &[GpuIdentity], entry: &str, numbers: &str) -> Result<u32, String> {
    if let Ok(i) = entry.parse::<usize>() {
        // Both orders are PCI bus order here (see the module doc for CUDA's).
        let mut by_bus: Vec<&GpuIdentity> = gpus.iter().collect();
        by_bus.sort_by_key(|g| g.pci_bus_id.as_deref().map(bus_key));
        return by_bus
            .get(i)
            .map(|g| g.index)
            .ok_or_else(|| format!("{numbers} {i} does not exist ({} GPUs)", gpus.len()));
    }
    if entry.starts_with("GPU-") {
        let hits: Vec<&GpuIdentity> = gpus
            .iter()
            .filter(|g| g.uuid.as_deref().is_some_and(|u| u.starts_with(entry)))
            .collect();
        return match hits.as_slice() {
            [g] => Ok(g.index),
            [] => Err(format!("no GPU has UUID {entry}")),
            _ => Err(format!("UUID prefix {entry} matches {} GPUs", hits.len())),
        };
    }
    if entry.starts_with("MIG-") {
        return Err(mig_unmetered(entry));
    }
    if entry.contains(':') {
        let key = bus_key(entry);
        return gpus
            .iter()
            .find(|g| g.pci_bus_id.as_deref().map(bus_key).as_deref() == Some(key.as_str()))
            .map(|g| g.index)
            .ok_or_else(|| format!("no GPU at PCI bus id {entry}"));
    }
    Err(format!(
        "`{entry}` is not an index, a GPU- UUID or a PCI bus id"
    ))
}

/// Chooses the GPUs to meter among `gpus`. `cuda_visible` is `CUDA_VISIBLE_DEVICES` and
/// `pci_order` whether `CUDA_DEVICE_ORDER=PCI_BUS_ID`. An entry of `--gpus` that names no
/// GPU is an error (the user asked for it); `CUDA_VISIBLE_DEVICES` is read as CUDA reads it.
pub fn select(
    gpus: &[GpuIdentity],
    sel: &GpuSelection,
    cuda_visible: Option<&str>,
    pci_order: bool,
) -> Result<Selected, String> {
    let all: Vec<u32> = gpus.iter().map(|g| g.index).collect();
    let mut out = Selected::default();
    match (sel, cuda_visible) {
        (GpuSelection::All, _) | (GpuSelection::Auto, None) => {
            out.metered = all.clone();
            out.basis = if matches!(sel, GpuSelection::All) {
                "--gpus all".into()
            } else {
                "every GPU (CUDA_VISIBLE_DEVICES is not set)".into()
            };
        }
        (GpuSelection::None, _) => out.basis = "--gpus none".into(),
        (GpuSelection::List(list), _) => {
            out.basis = format!("--gpus {}", list.join(","));
            for e in list {
                let i = resolve(gpus, e, "NVML index")
                    .map_err(|why| format!("--gpus: {why}; see `wattbench info` for the GPUs"))?;
                if !out.metered.contains(&i) {
                    out.metered.push(i);
                }
            }
        }
        (GpuSelection::Auto, Some(v)) => {
            out.basis = format!("CUDA_VISIBLE_DEVICES={v}");
            let names: Vec<&str> = gpus.iter().filter_map(|g| g.name.as_deref()).collect();
            let mixed = names.windows(2).any(|w| w[0] != w[1]);
            for e in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                // CUDA uses a MIG instance (and reads on); its energy is what cannot be had.
                if e.starts_with("MIG-") {
                    out.warnings
                        .push(format!("CUDA_VISIBLE_DEVICES: {}", mig_unmetered(e)));
                    continue;
                }
                match resolve(gpus, e, "CUDA device") {
                    Ok(i) => {
                        if e.parse::<usize>().is_ok() && mixed && !pci_order {
                            out.warnings.push(format!(
                                "CUDA_VISIBLE_DEVICES entry {e} counts in CUDA's fastest-first \
                                 order, which may differ from PCI bus order on this node of \
                                 different GPUs; it was mapped in PCI order. Set \
                                 CUDA_DEVICE_ORDER=PCI_BUS_ID or use GPU UUIDs to be sure"
                            ));
                        }
                        if !out.metered.contains(&i) {
                            out.metered.push(i);
                        }
                    }
                    Err(why) => {
                        out.warnings.push(format!(
                            "CUDA_VISIBLE_DEVICES: {why}; CUDA ignores this entry and every \
                             one after it, and so does the metering"
                        ));
                        break;
                    }
                }
            }
        }
    }
    for i in all {
        if !out.metered.contains(&i) {
            out.left_out
                .push((i, format!("left out: not selected by {}", out.basis)));
        }
    }
    Ok(out)
}

/// The devices CUDA numbers `cuda:0`, `cuda:1`, ... under `CUDA_VISIBLE_DEVICES`
/// (`cuda_visible`), each as the NVML index of its GPU, or why it has none (a MIG instance,
/// which CUDA uses but whose energy NVML gives only for its whole GPU). Unset: every GPU, in
/// PCI bus order (the CLI sets `CUDA_DEVICE_ORDER=PCI_BUS_ID`); an entry CUDA cannot resolve
/// ends the list, as CUDA ignores it and every one after it.
pub fn cuda_devices(gpus: &[GpuIdentity], cuda_visible: Option<&str>) -> Vec<Result<u32, String>> {
    let Some(v) = cuda_visible else {
        let mut by_bus: Vec<&GpuIdentity> = gpus.iter().collect();
        by_bus.sort_by_key(|g| g.pci_bus_id.as_deref().map(bus_key));
        return by_bus.iter().map(|g| Ok(g.index)).collect();
    };
    let mut out = Vec::new();
    for e in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if e.starts_with("MIG-") {
            out.push(Err(mig_unmetered(e)));
            continue;
        }
        match resolve(gpus, e, "CUDA device") {
            Ok(i) => out.push(Ok(i)),
            Err(_) => break,
        }
    }
    out
}

/// The GPU a case's device is, among those NVML sees: its total adds the host's domains and
/// that GPU's, not the other GPUs' (a `cuda:0` case is not charged for seven idle GPUs, nor a
/// CPU case for eight).
#[derive(Debug, Clone, PartialEq)]
pub enum CaseGpu {
    /// The case runs on no GPU (`cpu`).
    NoGpu,
    /// NVML's GPU of this index (domain `gpu{index}`), named as the case names it.
    Nvml {
        /// The case's device, `cuda:N`.
        device: String,
        /// NVML index.
        index: u32,
    },
    /// A GPU device that cannot be told among NVML's (no NVML, or `CUDA_VISIBLE_DEVICES`
    /// names what NVML cannot resolve, such as a MIG instance): its energy is missing, and why.
    Unknown {
        /// The case's device, `cuda:N`.
        device: String,
        /// Why it cannot be metered.
        why: String,
    },
}

impl CaseGpu {
    /// The GPU of `device` (`cpu`, `cuda:N`): CUDA's device N is the N-th GPU that
    /// `CUDA_VISIBLE_DEVICES` (`cuda_visible`) lets CUDA see, in PCI bus order (the CLI sets
    /// `CUDA_DEVICE_ORDER=PCI_BUS_ID`), among NVML's `gpus`.
    pub fn of(
        device: &str,
        gpus: &[wattbench_core::result::GpuRecord],
        cuda_visible: Option<&str>,
    ) -> CaseGpu {
        let ordinal = match device {
            "cuda" => 0,
            d => match d
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(o) => o,
                None => return CaseGpu::NoGpu,
            },
        };
        let device = format!("cuda:{ordinal}");
        if gpus.is_empty() {
            return CaseGpu::Unknown {
                device,
                why: "NVML sees no GPU (it is unavailable, or disabled by --no-nvml), so this \
                      GPU's energy is not metered"
                    .into(),
            };
        }
        let ids: Vec<GpuIdentity> = gpus
            .iter()
            .map(|g| GpuIdentity {
                index: g.index,
                uuid: g.uuid.clone(),
                pci_bus_id: g.pci_bus_id.clone(),
                name: g.name.clone(),
            })
            .collect();
        match cuda_devices(&ids, cuda_visible).into_iter().nth(ordinal) {
            Some(Ok(index)) => CaseGpu::Nvml { device, index },
            Some(Err(why)) => CaseGpu::Unknown {
                why: format!("{device}: {why}"),
                device,
            },
            None => CaseGpu::Unknown {
                why: format!(
                    "{device} is not among the GPUs NVML can tell apart{}, so its energy is \
                     not metered",
                    cuda_visible.map_or(String::new(), |v| format!(
                        " through CUDA_VISIBLE_DEVICES={v}"
                    )),
                ),
                device,
            },
        }
    }

    /// `domains` as this case's total must add them: the other GPUs' left out of the total
    /// (listed, with the reason), and a row without a reading for this case's GPU when no
    /// domain meters it (so the total says PARTIAL and gives no GFLOP/J). A GPU that cannot be
    /// identified adds no GPU at all: any metered one may be another device's.
    pub fn scope(
        &self,
        mut domains: Vec<wattbench_core::energy::DomainEnergy>,
        gpus: &[wattbench_core::result::GpuRecord],
    ) -> Vec<wattbench_core::energy::DomainEnergy> {
        let gpu_domain = |d: &wattbench_core::energy::DomainEnergy| {
            gpus.iter()
                .find(|g| d.name == format!("gpu{}", g.index))
                .map(|g| g.index)
        };
        // Why another GPU's row is not in the total. An unidentified device's GPU could be
        // any of them (a MIG instance's parent among them), so none is added.
        let (ours, not_ours) = match self {
            CaseGpu::NoGpu => (None, "another device's (the case ran on cpu)".to_string()),
            CaseGpu::Nvml { device, index } => (
                Some(*index),
                format!("another device's (the case ran on {device} (gpu{index}))"),
            ),
            CaseGpu::Unknown { device, .. } => (
                None,
                format!("the case's GPU ({device}) could not be identified, so no GPU is added"),
            ),
        };
        for d in &mut domains {
            match gpu_domain(d) {
                Some(i) if Some(i) != ours && d.in_total => {
                    d.in_total = false;
                    d.note = Some(format!(
                        "not in the total: {not_ours}{}",
                        d.note.as_ref().map_or(String::new(), |n| format!("; {n}"))
                    ));
                }
                _ => {}
            }
        }
        if let CaseGpu::Unknown { device, why } = self {
            domains.push(wattbench_core::energy::DomainEnergy::unsupported(
                device,
                "device",
                why.clone(),
            ));
        }
        if let Some(i) = ours {
            if !domains.iter().any(|d| gpu_domain(d) == Some(i)) {
                let why = gpus
                    .iter()
                    .find(|g| g.index == i)
                    .map(|g| {
                        if !g.metered {
                            format!("the case's GPU is not metered ({})", g.selection)
                        } else {
                            "the case's GPU has no energy meter (no counter or power reading \
                             NVML could read)"
                                .to_string()
                        }
                    })
                    .unwrap_or_default();
                domains.push(wattbench_core::energy::DomainEnergy::unsupported(
                    &format!("gpu{i}"),
                    "device",
                    why,
                ));
            }
        }
        domains
    }

    /// Whether a GPU state (clocks, throttling) is this case's GPU's.
    pub fn owns(&self, index: u32) -> bool {
        matches!(self, CaseGpu::Nvml { index: i, .. } if *i == index)
    }
}

/// One line saying which GPUs were metered and which were left out, for summaries; `None`
/// without GPUs.
pub fn describe(gpus: &[wattbench_core::result::GpuRecord]) -> Option<String> {
    if gpus.is_empty() {
        return None;
    }
    let name = |g: &&wattbench_core::result::GpuRecord| {
        format!("gpu{} ({})", g.index, g.name.as_deref().unwrap_or("?"))
    };
    let metered: Vec<String> = gpus
        .iter()
        .filter(|g| g.metered)
        .map(|g| name(&g))
        .collect();
    let left: Vec<&wattbench_core::result::GpuRecord> =
        gpus.iter().filter(|g| !g.metered).collect();
    let mut line = format!(
        "GPUs metered: {}",
        if metered.is_empty() {
            "none".to_string()
        } else {
            metered.join(", ")
        }
    );
    if !left.is_empty() {
        line.push_str(&format!(
            "; left out: {} ({})",
            left.iter().map(name).collect::<Vec<_>>().join(", "),
            left[0].selection
        ));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wattbench_core::energy::Source;

    fn node(names: &[&str]) -> Vec<GpuIdentity> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| GpuIdentity {
                index: i as u32,
                uuid: Some(format!("GPU-{i}a{i}b-0000")),
                pci_bus_id: Some(format!("00000000:{:02X}:00.0", 0x18 + 0x10 * i)),
                name: Some(n.to_string()),
            })
            .collect()
    }

    #[test]
    fn the_summary_names_metered_and_left_out_gpus() {
        let rec = |i: u32, metered: bool| wattbench_core::result::GpuRecord {
            index: i,
            name: Some("H200".into()),
            uuid: None,
            pci_bus_id: None,
            driver_version: None,
            power_limit_watts: None,
            memory_total_bytes: None,
            energy_counter: true,
            metered,
            selection: if metered {
                "metered".into()
            } else {
                "left out: not selected by CUDA_VISIBLE_DEVICES=0".into()
            },
            power_reading: String::new(),
            state: Default::default(),
        };
        let line = describe(&[rec(0, true), rec(1, false)]).unwrap();
        assert_eq!(
            line,
            "GPUs metered: gpu0 (H200); left out: gpu1 (H200) (left out: not selected by \
             CUDA_VISIBLE_DEVICES=0)"
        );
        assert_eq!(describe(&[]), None);
    }

    #[test]
    fn cuda_visible_devices_by_index_and_uuid_meters_only_those() {
        let g = node(&["H200"; 8]);
        let s = select(&g, &GpuSelection::Auto, Some("3"), false).unwrap();
        assert_eq!(s.metered, [3]);
        assert_eq!(s.left_out.len(), 7);
        assert!(s.left_out[0].1.contains("CUDA_VISIBLE_DEVICES=3"), "{s:?}");
        assert!(s.warnings.is_empty());
        let s = select(&g, &GpuSelection::Auto, Some("GPU-5a5b,1"), false).unwrap();
        assert_eq!(s.metered, [5, 1]);
        // Unset: every GPU; empty: none.
        assert_eq!(
            select(&g, &GpuSelection::Auto, None, false)
                .unwrap()
                .metered
                .len(),
            8
        );
        assert!(select(&g, &GpuSelection::Auto, Some(""), false)
            .unwrap()
            .metered
            .is_empty());
    }

    #[test]
    fn an_invalid_entry_ends_the_list_as_in_cuda() {
        let g = node(&["A100"; 4]);
        let s = select(&g, &GpuSelection::Auto, Some("2,7,0"), false).unwrap();
        assert_eq!(s.metered, [2]);
        assert!(s.warnings[0].contains("every one after it"), "{s:?}");
    }

    /// CUDA uses a MIG instance named in CUDA_VISIBLE_DEVICES (and the entries after it); what
    /// wattbench cannot do is meter its energy apart from its parent GPU's.
    #[test]
    fn a_mig_instance_is_used_by_cuda_but_not_metered() {
        let g = node(&["A100"; 4]);
        let s = select(&g, &GpuSelection::Auto, Some("MIG-abc,1"), false).unwrap();
        assert_eq!(s.metered, [1], "{s:?}");
        let w = &s.warnings[0];
        assert!(w.contains("MIG-abc") && w.contains("parent GPU"), "{w}");
        assert!(!w.contains("ignores"), "{w}");
        let e = select(&g, &GpuSelection::parse("MIG-abc"), None, false).unwrap_err();
        assert!(e.contains("parent GPU"), "{e}");
    }

    #[test]
    fn mixed_nodes_warn_about_cuda_order_unless_pci_order_is_set() {
        let g = node(&["A100", "T4"]);
        let s = select(&g, &GpuSelection::Auto, Some("1"), false).unwrap();
        assert!(
            s.warnings[0].contains("CUDA_DEVICE_ORDER=PCI_BUS_ID"),
            "{s:?}"
        );
        assert!(select(&g, &GpuSelection::Auto, Some("1"), true)
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn the_flag_wins_and_names_gpus_by_index_uuid_or_bus_id() {
        let g = node(&["H100"; 4]);
        let s = select(
            &g,
            &GpuSelection::parse("0,GPU-2a2b,0000:48:00.0"),
            Some("3"),
            false,
        )
        .unwrap();
        assert_eq!(s.metered, [0, 2, 3]);
        assert!(s.basis.starts_with("--gpus"));
        assert_eq!(
            select(&g, &GpuSelection::parse("all"), Some("3"), false)
                .unwrap()
                .metered
                .len(),
            4
        );
        assert!(select(&g, &GpuSelection::parse("none"), None, false)
            .unwrap()
            .metered
            .is_empty());
        let e = select(&g, &GpuSelection::parse("9"), None, false).unwrap_err();
        assert!(
            e.contains("does not exist") && e.contains("wattbench info"),
            "{e}"
        );
        let e = select(&g, &GpuSelection::parse("GPU-"), None, false).unwrap_err();
        assert!(e.contains("matches 4 GPUs"), "{e}");
    }

    fn gpu(index: u32, metered: bool) -> wattbench_core::result::GpuRecord {
        wattbench_core::result::GpuRecord {
            index,
            name: Some("H200".into()),
            uuid: Some(format!("GPU-{index}{index}aa-0000")),
            pci_bus_id: Some(format!("00000000:{:02X}:00.0", 0x18 + 0x10 * index)),
            driver_version: None,
            power_limit_watts: None,
            memory_total_bytes: None,
            energy_counter: true,
            metered,
            selection: if metered {
                "metered".into()
            } else {
                "left out: not selected by --gpus 0".into()
            },
            power_reading: String::new(),
            state: Default::default(),
        }
    }

    fn reading(name: &str, scope: &str) -> wattbench_core::energy::DomainEnergy {
        wattbench_core::energy::DomainEnergy {
            source: Source::Measured,
            reason: None,
            joules: Some(10.0),
            window_s: 2.0,
            uncertainty_j: Some(0.1),
            avg_watts: Some(5.0),
            ..wattbench_core::energy::DomainEnergy::unsupported(name, scope, String::new())
        }
    }

    /// `cuda:N` is the N-th GPU CUDA sees: every GPU in PCI order, or those
    /// CUDA_VISIBLE_DEVICES names, in its order; a MIG instance, a GPU NVML does not list, or
    /// no NVML at all leave the device unknown, with the reason.
    #[test]
    fn a_case_device_is_the_gpu_cuda_numbers_it() {
        let node: Vec<wattbench_core::result::GpuRecord> = (0..4).map(|i| gpu(i, true)).collect();
        let of = |d: &str, v: Option<&str>| CaseGpu::of(d, &node, v);
        assert_eq!(of("cpu", None), CaseGpu::NoGpu);
        let nvml = |device: &str, index| CaseGpu::Nvml {
            device: device.into(),
            index,
        };
        assert_eq!(of("cuda:2", None), nvml("cuda:2", 2));
        assert_eq!(of("cuda", None), nvml("cuda:0", 0));
        assert_eq!(of("cuda:0", Some("3,1")), nvml("cuda:0", 3));
        assert_eq!(of("cuda:1", Some("3,GPU-11aa")), nvml("cuda:1", 1));
        // A MIG instance is CUDA's device 0 here: the GPU after it is device 1.
        assert_eq!(of("cuda:1", Some("MIG-abc,1")), nvml("cuda:1", 1));
        // An entry CUDA cannot resolve ends its list.
        assert!(matches!(
            of("cuda:1", Some("2,9,1")),
            CaseGpu::Unknown { .. }
        ));
        for (d, v, said) in [
            ("cuda:2", Some("3,1"), "through CUDA_VISIBLE_DEVICES=3,1"),
            ("cuda:0", Some("MIG-abc,1"), "MIG instance"),
            ("cuda:4", None, "cuda:4 is not among"),
        ] {
            match of(d, v) {
                CaseGpu::Unknown { device, why } => {
                    assert_eq!(device, d);
                    assert!(why.contains(said), "{why}");
                }
                other => panic!("{d} {v:?}: {other:?}"),
            }
        }
        match CaseGpu::of("cuda:0", &[], None) {
            CaseGpu::Unknown { why, .. } => assert!(why.contains("NVML sees no GPU"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// A case's total adds the host's domains and its own GPU's, not the other GPUs'; a GPU
    /// case whose GPU has no reading gets a row without one, so its total is PARTIAL with no
    /// GFLOP/J (it read as a whole host-only total before).
    #[test]
    fn a_case_total_adds_its_own_gpu_only_and_says_when_it_is_missing() {
        use wattbench_core::energy::{CaseEnergy, Window};
        let node: Vec<wattbench_core::result::GpuRecord> = (0..3).map(|i| gpu(i, i != 2)).collect();
        let domains = vec![
            reading("cpu-package-0", "package"),
            reading("gpu0", "device"),
            reading("gpu1", "device"),
        ];
        let total = |scope: CaseGpu| {
            let rows = scope.scope(domains.clone(), &node);
            let e = CaseEnergy::from_window(
                &rows,
                &[],
                Window {
                    calls: 1,
                    flops_per_call: 1_000_000_000,
                    unit: "call",
                    window_s: 2.0,
                    min_window_s: None,
                    error: None,
                },
            );
            (rows, e)
        };
        let (rows, e) = total(CaseGpu::of("cuda:1", &node, None));
        assert_eq!(e.total_joules_per_iter.unwrap().value, 20.0);
        assert!(e.gflops_per_joule.is_some());
        let gpu0 = rows.iter().find(|d| d.name == "gpu0").unwrap();
        assert!(!gpu0.in_total);
        assert!(gpu0.note.as_deref().unwrap().contains("cuda:1 (gpu1)"));
        let (_, e) = total(CaseGpu::NoGpu);
        assert_eq!(e.total_joules_per_iter.unwrap().value, 10.0);
        // gpu2 is not metered (left out by --gpus): the case's total lacks it.
        let (_, e) = total(CaseGpu::of("cuda:2", &node, None));
        assert_eq!(e.missing_domains(), ["gpu2"]);
        assert_eq!(e.whole_gflops_per_joule(), None);
        let row = e.domains.iter().find(|d| d.name == "gpu2").unwrap();
        assert!(row
            .reason
            .as_deref()
            .unwrap()
            .contains("not selected by --gpus 0"));
        // No NVML: the device's row says so.
        let (_, e) = total(CaseGpu::of("cuda:0", &[], None));
        assert_eq!(e.missing_domains(), ["cuda:0"]);
        assert!(e.notes.iter().any(|n| n.contains("PARTIAL")));
        // A device NVML cannot tell apart (a MIG instance) while other GPUs are metered: its
        // PARTIAL total is the host's alone, no other GPU's draw (it added both before).
        let unknown = CaseGpu::of("cuda:0", &node, Some("MIG-abc,1"));
        assert!(matches!(unknown, CaseGpu::Unknown { .. }), "{unknown:?}");
        let (rows, e) = total(unknown);
        assert_eq!(e.total_joules_per_iter.unwrap().value, 10.0);
        assert_eq!(e.missing_domains(), ["cuda:0"]);
        for g in ["gpu0", "gpu1"] {
            let row = rows.iter().find(|d| d.name == g).unwrap();
            assert!(!row.in_total, "{row:?}");
            let note = row.note.as_deref().unwrap();
            assert!(
                note.contains("cuda:0") && note.contains("could not be identified"),
                "{note}"
            );
        }
    }
}
