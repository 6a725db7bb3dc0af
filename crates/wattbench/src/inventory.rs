//! What machine and software a run was made on (`wattbench info`, and every result file):
//! host, GPUs, meters, and the provenance recorded at build time (`build.rs`).
use std::collections::BTreeMap;
use std::sync::Arc;
use sysinfo::System;
use wattbench_core::result::{CpuId, Environment, Host};
use wattbench_core::Backend;
use wattbench_energy::Meters;

mod built_info {
    include!(concat!(env!("OUT_DIR"), "/built.rs"));
}

/// Libraries whose resolved version is recorded, when compiled into this binary.
fn recorded_crates() -> Vec<&'static str> {
    let mut v = vec!["candle-core", "nvml-wrapper"];
    if cfg!(feature = "tch") {
        v.push("tch");
    }
    if cfg!(feature = "cuda") {
        v.push("cudarc");
    }
    v
}

/// The commit the binary was built from (`-dirty` with uncommitted source changes); `None`
/// when it was built outside a git checkout.
pub fn git_commit() -> Option<String> {
    Some(env!("WATTBENCH_GIT_COMMIT").to_string()).filter(|c| !c.is_empty())
}

/// Software versions: wattbench, rustc, the framework crates as resolved in Cargo.lock, and
/// what each backend reports at run time (libtorch, CUDA driver, NVRTC, cuDNN).
pub fn software(backends: &[Arc<dyn Backend>]) -> BTreeMap<String, String> {
    let mut software = BTreeMap::new();
    software.insert("wattbench".to_string(), built_info::PKG_VERSION.to_string());
    software.insert("rustc".to_string(), built_info::RUSTC_VERSION.to_string());
    // A debug build is many times slower: a history must not read a debug run beside release
    // runs as a change of code, nor a comparison mix them without saying so.
    software.insert("build-profile".to_string(), built_info::PROFILE.to_string());
    for name in recorded_crates() {
        if let Some((_, v)) = built_info::DEPENDENCIES.iter().find(|(n, _)| *n == name) {
            software.insert(name.to_string(), v.to_string());
        }
    }
    for b in backends {
        software.extend(b.versions());
    }
    if wattbench_core::harness::EVIDENCE_SLOWDOWN {
        software.insert(
            "wattbench-build".into(),
            "evidence-slowdown: every sample does 10% more real calls than it counts (for \
             scripts/regression-evidence.sh only)"
                .into(),
        );
    }
    software
}

/// Host, GPUs (NVML), energy meters, software and git provenance.
pub fn environment(backends: &[Arc<dyn Backend>], meters: &Meters) -> Environment {
    // The machine's CPUs for the fingerprint; the ones this process may use beside them (an
    // allocation is not another kind of machine).
    // `None` when it cannot be read: a missing reading, not one core.
    let usable = std::thread::available_parallelism().ok().map(|n| n.get());
    let (cpu_model, memory, logical) = match System::new() {
        Ok(mut sys) => {
            sys.refresh_memory();
            sys.refresh_cpu_all();
            let model = sys
                .cpus()
                .first()
                .map(|c| c.brand().trim().to_string())
                .filter(|s| !s.is_empty());
            let logical = Some(sys.cpus().len()).filter(|&n| n > 0);
            (model, Some(sys.total_memory()).filter(|&m| m > 0), logical)
        }
        Err(_) => (None, None, None),
    };
    let (hostname, container_hostname) = host_names(
        std::env::var(NODE_NAME_VARIABLE).ok(),
        System::host_name().ok(),
    );
    Environment {
        host: Host {
            hostname,
            container_hostname,
            cpu_model,
            cpu_id: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|t| cpu_id(&t)),
            logical_cores: logical.or(usable).unwrap_or(1).max(usable.unwrap_or(0)),
            usable_cores: usable,
            memory_bytes: memory,
            os: System::long_os_version().ok(),
            kernel: System::kernel_version().ok(),
        },
        gpus: meters.gpu_inventory(),
        software: software(backends),
        git_commit: git_commit(),
        meters: meters.inventory(),
        meter_warnings: meters.warnings().to_vec(),
        libraries: Vec::new(),
        variables: Some(variables()),
    }
}

/// The first processor's identification in the text of Linux's `/proc/cpuinfo`: x86's
/// `vendor_id`, `cpu family`, `model` and `stepping`, or Arm's `CPU implementer`, `CPU
/// architecture`, `CPU part` and `CPU revision`; `None` when neither is complete.
fn cpu_id(cpuinfo: &str) -> Option<CpuId> {
    let first = cpuinfo.split("\n\n").next().unwrap_or("");
    let field = |key: &str| {
        first.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let number = |key: &str| {
        let v = field(key)?;
        match v.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    };
    if let Some(vendor) = field("vendor_id") {
        return Some(CpuId {
            vendor,
            family: number("cpu family")?,
            model: number("model")?,
            stepping: number("stepping"),
        });
    }
    Some(CpuId {
        vendor: field("CPU implementer")?,
        family: number("CPU architecture")?,
        model: number("CPU part")?,
        stepping: number("CPU revision"),
    })
}

/// Names the machine a containerised run is on, for `hostname` (a Kubernetes pod sets it from
/// the downward API's `spec.nodeName`): pods on one node then count as one machine.
pub const NODE_NAME_VARIABLE: &str = "WATTBENCH_NODE_NAME";

/// The recorded host name and, when `node` (the value of [`NODE_NAME_VARIABLE`]) names the
/// machine, the name the process saw beside it. An empty or blank `node` is ignored.
fn host_names(node: Option<String>, own: Option<String>) -> (Option<String>, Option<String>) {
    match node.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
        Some(node) => (Some(node), own),
        None => (own, None),
    }
}

/// Environment variables that change what a run measures: which GPUs CUDA sees and in what
/// order, TF32 and other library modes, and the thread counts of the CPU libraries (OpenMP
/// for libtorch, rayon for candle, MKL and OpenBLAS), and how many GPU workers of `run
/// --devices` ran at once (they shared the node).
pub const RECORDED_VARIABLES: [&str; 17] = [
    crate::devices::AT_ONCE_ENV,
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_LAUNCH_BLOCKING",
    "CUDA_MODULE_LOADING",
    "PYTORCH_CUDA_ALLOC_CONF",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "CANDLE_NUM_THREADS",
    "CANDLE_CPU_MASK",
    "CANDLE_CPU_AFFINITY",
    "GOMP_CPU_AFFINITY",
];

/// Those of [`RECORDED_VARIABLES`] that are set, as this process sees them.
fn variables() -> BTreeMap<String, String> {
    RECORDED_VARIABLES
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_string(), v)))
        .collect()
}

/// File-name prefixes of the libraries recorded in `environment.libraries`.
const RECORDED_LIBRARIES: [&str; 14] = [
    "libcuda.so",
    "libcudart",
    "libcublas",
    "libcublasLt",
    "libcudnn",
    "libnvrtc",
    "libnvidia-ml",
    "libnvJitLink",
    "libcurand",
    "libtorch",
    "libc10",
    "libnccl",
    "libcufft",
    "libcusparse",
];

/// Complete `env` once the work is done: the libraries actually loaded by now (backends load
/// theirs on first use) and the versions backends report once loaded.
pub fn finish(env: &mut Environment, backends: &[Arc<dyn Backend>]) {
    env.libraries = wattbench_core::libraries::loaded()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| RECORDED_LIBRARIES.iter().any(|r| n.starts_with(r)))
        })
        .map(|p| p.display().to_string())
        .collect();
    env.software = software(backends);
    if let Some(v) = cuda_runtime_version() {
        env.software.insert("cuda-runtime".into(), v);
    }
}

/// The version of the CUDA runtime this process loaded (libtorch and candle bring one), as
/// `major.minor`, asked of that very library; `None` when none is loaded.
fn cuda_runtime_version() -> Option<String> {
    let path = wattbench_core::libraries::find("libcudart.so")?;
    // SAFETY: the library is already mapped into this process (opening it again only takes a
    // reference); it stays loaded while `lib` lives, which outlives the call below.
    let lib = unsafe { libloading::Library::new(&path) }.ok()?;
    // SAFETY: `cudaRuntimeGetVersion` has the C signature `cudaError_t (int*)`, and needs no
    // driver or device.
    let get: libloading::Symbol<unsafe extern "C" fn(*mut i32) -> i32> =
        unsafe { lib.get(b"cudaRuntimeGetVersion\0") }.ok()?;
    let mut v = 0i32;
    // SAFETY: `v` is a valid, writable int.
    (unsafe { get(&mut v) } == 0 && v > 0).then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
}

#[cfg(test)]
mod tests {
    use wattbench_core::result::CpuId;

    #[test]
    fn the_first_processors_identification_is_read_on_x86_and_arm() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n\
                   model name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\n\
                   vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n";
        let amd = CpuId {
            vendor: "AuthenticAMD".into(),
            family: 26,
            model: 2,
            stepping: Some(1),
        };
        assert_eq!(super::cpu_id(x86), Some(amd));
        let arm = "processor\t: 0\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0x41\n\
                   CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd4f\n\
                   CPU revision\t: 0\n";
        let grace = CpuId {
            vendor: "0x41".into(),
            family: 8,
            model: 0xd4f,
            stepping: Some(0),
        };
        assert_eq!(super::cpu_id(arm), Some(grace));
        // Incomplete: no identification rather than a wrong one.
        assert_eq!(
            super::cpu_id("vendor_id\t: AuthenticAMD\nmodel\t: 2\n"),
            None
        );
        assert_eq!(super::cpu_id(""), None);
    }

    #[test]
    fn a_node_name_is_the_host_name_and_keeps_the_containers_beside_it() {
        let own = || Some("pod-7f9c".to_string());
        let node = |n: &str| Some(n.to_string());
        assert_eq!(
            super::host_names(node("gpu-node-3"), own()),
            (node("gpu-node-3"), own())
        );
        assert_eq!(super::host_names(None, own()), (own(), None));
        assert_eq!(super::host_names(node(" \n"), own()), (own(), None));
        assert_eq!(super::host_names(node("n1\n"), None), (node("n1"), None));
    }

    #[test]
    fn crate_versions_come_from_the_lock_file() {
        let s = super::software(&[]);
        assert_eq!(s["wattbench"], env!("CARGO_PKG_VERSION"));
        assert!(s["candle-core"].starts_with("0.11."), "{s:?}");
        assert!(s["rustc"].starts_with("rustc 1."), "{s:?}");
    }
}
