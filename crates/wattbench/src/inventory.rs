//! What machine and software a run was made on (`wattbench info`, and every result file).
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use sysinfo::System;
use wattbench_core::result::{Environment, Host};
use wattbench_core::Backend;
use wattbench_energy::Meters;

fn git(args: &[&str]) -> Option<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The commit of the checkout this binary was built from, `-dirty` when it has changes; the
/// build-time commit when the checkout is gone.
pub fn git_commit() -> Option<String> {
    match git(&["rev-parse", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            Some(if dirty { format!("{c}-dirty") } else { c })
        }
        None => Some(env!("WATTBENCH_BUILD_COMMIT").to_string()).filter(|c| !c.is_empty()),
    }
}

/// Host, GPUs (NVML), energy meters, software and git provenance.
pub fn environment(backends: &[Box<dyn Backend>], meters: &Meters) -> Environment {
    let (cpu_model, memory) = match System::new() {
        Ok(mut sys) => {
            sys.refresh_memory();
            sys.refresh_cpu_all();
            let model = sys
                .cpus()
                .first()
                .map(|c| c.brand().trim().to_string())
                .filter(|s| !s.is_empty());
            (model, Some(sys.total_memory()).filter(|&m| m > 0))
        }
        Err(_) => (None, None),
    };
    let host = Host {
        hostname: System::host_name().ok(),
        cpu_model,
        logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: memory,
        os: System::long_os_version().ok(),
        kernel: System::kernel_version().ok(),
    };
    let mut software = BTreeMap::new();
    software.insert(
        "wattbench".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    software.insert("rustc".to_string(), env!("WATTBENCH_RUSTC").to_string());
    for b in backends {
        for (k, v) in b.versions() {
            software.insert(k, v);
        }
    }
    Environment {
        host,
        gpus: meters
            .gpu_inventory()
            .iter()
            .map(|g| serde_json::json!(g))
            .collect(),
        software,
        git_commit: git_commit(),
        meters: meters
            .inventory()
            .iter()
            .map(|m| serde_json::json!(m))
            .collect(),
    }
}
