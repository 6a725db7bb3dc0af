//! Which GPUs to meter: only those the measured work can use, so that a one-GPU job on an
//! eight-GPU node is not charged for seven idle GPUs. The selection comes from `--gpus`, else
//! `CUDA_VISIBLE_DEVICES` (read as CUDA reads it), else every GPU; GPUs left out are listed
//! with the reason.
//!
//! `CUDA_VISIBLE_DEVICES` holds CUDA device indices or UUIDs (`GPU-…`, unique prefixes
//! allowed), comma-separated; CUDA ignores everything from the first entry it cannot
//! resolve. Indices count in CUDA's order, which is fastest-first unless
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
        return Err(format!(
            "{entry} is a MIG instance: its energy cannot be metered apart from its GPU's"
        ));
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
        let s = select(&g, &GpuSelection::Auto, Some("MIG-abc"), false).unwrap();
        assert!(
            s.metered.is_empty() && s.warnings[0].contains("MIG"),
            "{s:?}"
        );
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
}
