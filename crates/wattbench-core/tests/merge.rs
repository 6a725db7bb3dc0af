//! `MergedFile`: runs merged whole, duplicates from one machine refused unless allowed, and
//! every reader of result files taking a merged file as its runs.
use wattbench_core::result::{read_runs, MergeError, MergedFile, RunFile};
use wattbench_core::testing::{run_file, timed_case};

/// A run of one case `id` on host `host` with CPU `cpu`.
fn run_on(host: &str, cpu: &str, id: &str) -> RunFile {
    let mut r = run_file(
        "2026-11-29T00:00:00Z",
        vec![timed_case(id, vec![1.0, 1.1, 0.9])],
    );
    r.environment.host.hostname = Some(host.into());
    r.environment.host.cpu_model = Some(cpu.into());
    r
}

fn merge(runs: Vec<RunFile>, allow: bool) -> Result<MergedFile, MergeError> {
    let inputs = runs
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("task-{i}.json"), r))
        .collect();
    MergedFile::merge(
        inputs,
        allow,
        vec!["wattbench".into(), "merge".into()],
        "now".into(),
    )
}

#[test]
fn runs_from_several_machines_merge_whole_and_read_back_as_runs() {
    let a = run_on("node1", "CPU A", "gemm/x");
    let b = run_on("node2", "CPU B", "gemm/x");
    let m = merge(vec![a.clone(), b.clone()], false).unwrap();
    assert_eq!(m.merged.inputs, ["task-0.json", "task-1.json"]);
    let text = serde_json::to_string_pretty(&m).unwrap();
    let runs = read_runs(&text).unwrap();
    assert_eq!(runs, vec![a.clone(), b]);
    // Each case keeps its machine.
    assert_ne!(
        runs[0].environment.hardware_fingerprint(),
        runs[1].environment.hardware_fingerprint()
    );
    // A plain result file reads as its one run; a merged file is not one run.
    let one = serde_json::to_string(&a).unwrap();
    assert_eq!(read_runs(&one).unwrap(), vec![a]);
    let e = RunFile::from_json(&text).unwrap_err().to_string();
    assert!(e.contains("merged file"), "{e}");
}

#[test]
fn the_same_case_twice_from_one_machine_is_refused_unless_allowed() {
    let twice = || {
        vec![
            run_on("node1", "CPU A", "gemm/x"),
            run_on("node1", "CPU A", "gemm/x"),
        ]
    };
    let e = merge(twice(), false).unwrap_err().to_string();
    for want in [
        "gemm/x",
        "node1",
        "task-0.json",
        "task-1.json",
        "--allow-duplicates",
    ] {
        assert!(e.contains(want), "{want} not in: {e}");
    }
    assert_eq!(merge(twice(), true).unwrap().runs.len(), 2);
    // Another host of the same kind is another machine.
    merge(
        vec![
            run_on("node1", "CPU A", "gemm/x"),
            run_on("node2", "CPU A", "gemm/x"),
        ],
        false,
    )
    .unwrap();
    assert!(matches!(merge(Vec::new(), true), Err(MergeError::Empty)));
    // Two Slurm tasks packed on one 2-GPU node, each metering its own GPU and calling it
    // cuda:0: two places, not the same one twice; the same GPU twice is refused.
    let on_gpu = |metered: usize| {
        let mut r = run_on("node1", "CPU A", "gemm/x/cuda:0");
        r.cases[0].device = "cuda:0".into();
        r.environment.gpus = (0..2)
            .map(|i| wattbench_core::result::GpuRecord {
                index: i as u32,
                name: Some("NVIDIA H100".into()),
                uuid: Some(format!("GPU-{i}")),
                pci_bus_id: None,
                driver_version: None,
                power_limit_watts: None,
                memory_total_bytes: None,
                energy_counter: true,
                metered: i == metered,
                selection: "CUDA_VISIBLE_DEVICES".into(),
                power_reading: String::new(),
                state: Default::default(),
            })
            .collect();
        r
    };
    merge(vec![on_gpu(0), on_gpu(1)], false).unwrap();
    let e = merge(vec![on_gpu(1), on_gpu(1)], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("metered GPU-1"), "{e}");
    // Their CPU cases ran on the one CPU of the node (at once, its counters shared), whatever
    // GPU each task was given: the same place twice, refused (the review's /tmp/rv/pk; a
    // requeued task on the node's other GPU likewise).
    let with_cpu_case = |metered: usize| {
        let mut r = on_gpu(metered);
        r.cases.push(timed_case("gemm/y/reference/cpu", vec![1.0]));
        r
    };
    let e = merge(vec![with_cpu_case(0), with_cpu_case(1)], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gemm/y/reference/cpu"), "{e}");
    assert!(!e.contains("metered"), "{e}");
}

#[test]
fn a_merged_file_of_another_version_is_refused_with_what_to_do() {
    let m = merge(vec![run_on("n", "c", "x")], false).unwrap();
    let mut v = serde_json::to_value(&m).unwrap();
    v["schema_version"] = 1.into();
    let e = read_runs(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("older wattbench"), "{e}");
}
