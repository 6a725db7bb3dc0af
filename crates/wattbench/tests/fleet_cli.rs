//! Beyond one machine: `merge` (a Slurm array's files into one), the readers of merged files,
//! `compare --across-hardware`, and `run --devices` where no GPU is visible (its checks of the
//! options, and how a worker takes the stop its parent passes on).
mod common;

use common::{
    assert_contains, command, quick_ceilings, read_json, run_tiny, start_slow_run, stderr, stdout,
    usage_error, wattbench, without_gpus,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A quick reference run of the tiny suite in `dir` as `name`, then its host and CPU
/// rewritten as if made on `host` with `cpu` (None: as it is).
fn task(dir: &Path, name: &str, host: &str, cpu: Option<&str>) -> PathBuf {
    let (o, doc) = run_tiny(dir, name, &["--backend", "reference"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut doc: Value = doc.unwrap();
    doc["environment"]["host"]["hostname"] = host.into();
    if let Some(cpu) = cpu {
        doc["environment"]["host"]["cpu_model"] = cpu.into();
    }
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn merge_keeps_runs_whole_refuses_one_machine_twice_and_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tasks = d.join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    task(&tasks, "task-0-node1.json", "node1", None);
    task(&tasks, "task-1-node2.json", "node2", None);
    let merged = d.join("merged.json");
    let o = wattbench(&["merge", s(&tasks), "-o", s(&merged)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stdout(&o), "merged 2 runs");
    let m = read_json(&merged);
    assert_eq!(m["runs"].as_array().unwrap().len(), 2);
    assert_eq!(m["runs"][1]["environment"]["host"]["hostname"], "node2");
    assert!(m["merged"]["inputs"][0]
        .as_str()
        .unwrap()
        .ends_with("task-0-node1.json"));

    // A merge into the folder it merges is refused: the folder would hold its runs twice.
    let inside = tasks.join("merged.json");
    let o = wattbench(&["merge", s(&tasks), "-o", s(&inside)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_contains(&stderr(&o), "outside the folder");
    assert!(!inside.exists());

    // The same machine twice: refused, nothing written; allowed when asked.
    task(&tasks, "task-2-node1.json", "node1", None);
    let again = d.join("again.json");
    usage_error(
        &wattbench(&["merge", s(&tasks), "-o", s(&again)]),
        "--allow-duplicates",
    );
    assert!(!again.exists());
    let o = wattbench(&["merge", s(&tasks), "--allow-duplicates", "-o", s(&again)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    // A task killed at its time limit, and one with a failed case: merged, and said.
    let mut cut = read_json(tasks.join("task-2-node1.json"));
    cut["interrupted"] = true.into();
    cut["environment"]["host"]["hostname"] = "node3".into();
    cut["cases"][0]["status"] = "failed".into();
    cut["cases"][0]["reason"] = "relative L2 error 0.3".into();
    std::fs::write(
        tasks.join("task-2-node1.json"),
        serde_json::to_string(&cut).unwrap(),
    )
    .unwrap();
    let o = wattbench(&["merge", s(&tasks), "-o", s(&d.join("cut.json"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_contains(&err, "task-2-node1.json was interrupted");
    assert_contains(&err, "task-2-node1.json: 1 case(s) failed");
    // Not result files, and empty folders, are refused.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    usage_error(
        &wattbench(&["merge", s(&empty), "-o", s(&d.join("x.json"))]),
        "holds no result files",
    );

    // Readers: compare pools the runs, history records each, the HTML report shows both.
    // (The same file on both sides is refused; a copy of the merge under another start time
    // is another pair of runs with the same samples.)
    let mut copy = read_json(&merged);
    for r in copy["runs"].as_array_mut().unwrap() {
        r["created_at"] = "2030-01-01T00:00:00+00:00".into();
    }
    let again = d.join("merged-again.json");
    std::fs::write(&again, copy.to_string()).unwrap();
    usage_error(
        &wattbench(&["compare", s(&merged), s(&merged)]),
        "BASE and NEW are the same file",
    );
    let o = wattbench(&["compare", s(&merged), s(&again), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: Value = serde_json::from_slice(&o.stdout).unwrap();
    // Two runs a side: two energy windows and two memory peaks, every sample of both runs.
    for r in c["cases"].as_array().unwrap() {
        let n = r["n"][0].as_u64().unwrap();
        if r["metric"] == "time" {
            assert!(n >= 6, "{r}");
        } else {
            assert_eq!(n, 2, "{r}");
        }
    }
    let db = d.join("h.sqlite");
    let o = wattbench(&["history", "add", s(&merged), "--db", s(&db)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches("recorded").count(), 2, "{}", stdout(&o));
    // Each run of the merged file is named by its place and host.
    for line in ["[run 1 of 2, host node1", "[run 2 of 2, host node2"] {
        assert_contains(&stdout(&o), line);
    }
    let html = d.join("r.html");
    let o = wattbench(&["report", "--format", "html", s(&merged), "-o", s(&html)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A command that reads one run says what to do with a merged file.
    usage_error(&wattbench(&["report", s(&merged)]), "merged file");

    // A merged file merged again keeps what it said about its runs: its notes, and its labels.
    let mut m = read_json(&merged);
    m["merged"]["notes"] = serde_json::json!(["the 2 GPUs ran at once"]);
    m["merged"]["inputs"] = serde_json::json!(["gpu0 (GPU-a)", "gpu1 (GPU-b)"]);
    let devices = d.join("devices.json");
    std::fs::write(&devices, m.to_string()).unwrap();
    let outer = d.join("outer.json");
    let node4 = task(d, "node4.json", "node4", None);
    let o = wattbench(&["merge", s(&devices), s(&node4), "-o", s(&outer)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = read_json(&outer);
    assert_eq!(
        out["merged"]["notes"],
        serde_json::json!([format!("{}: the 2 GPUs ran at once", s(&devices))])
    );
    let labels = out["merged"]["inputs"].as_array().unwrap();
    assert!(
        labels[1]
            .as_str()
            .unwrap()
            .ends_with("devices.json#2 (gpu1 (GPU-b))"),
        "{labels:?}"
    );
}

#[test]
fn across_hardware_puts_each_machine_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = task(d, "a.json", "node1", None);
    let b = task(d, "b.json", "node2", Some("Imaginary CPU 9000"));
    // The JSON document of `compare --across-hardware X Y`.
    let across = |x: &Path, y: &Path| -> Value {
        let o = wattbench(&[
            "compare",
            "--across-hardware",
            s(x),
            s(y),
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let j = across(&a, &b);
    assert_eq!(j["machines"].as_array().unwrap().len(), 2);
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "every tiny case on both machines");
    for r in rows {
        let cells = r["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 2);
        for c in cells {
            assert!(c["gflops_per_s"].as_f64().unwrap() > 0.0);
            // Estimated energy on both: comparable kinds...
            assert_eq!(c["energy_sources"][0], "estimated");
            assert!(c["co2e_kg_per_tflop"]["value"].as_f64().unwrap() > 0.0);
        }
        // ... covering the same things (one build, one meter set)...
        assert!(!cells[0]["energy_scopes"].as_array().unwrap().is_empty());
        assert_eq!(cells[0]["energy_scopes"], cells[1]["energy_scopes"], "{r}");
        // ... but one build on one machine twice: its ±50 % estimates overlap, so no machine
        // is named.
        assert!(r["least_energy"].is_null(), "{r}");
        assert_contains(r["note"].as_str().unwrap(), "intervals overlap");
    }
    // With ten times the energy on the second machine, the first is named.
    let mut doc = read_json(&b);
    for c in doc["cases"].as_array_mut().unwrap() {
        let t = &mut c["energy"]["total_joules_per_iter"];
        for k in ["value", "low", "high"] {
            t[k] = (t[k].as_f64().unwrap() * 10.0).into();
        }
    }
    std::fs::write(&b, doc.to_string()).unwrap();
    let j = across(&a, &b);
    for r in j["rows"].as_array().unwrap() {
        assert_eq!(r["least_energy"], "M1", "{r}");
    }
    // Unless the totals cover different things: a total of other scopes is not the same
    // quantity, however far apart the figures.
    let mut other = doc.clone();
    for c in other["cases"].as_array_mut().unwrap() {
        for dom in c["energy"]["domains"].as_array_mut().unwrap() {
            dom["scope"] = "package".into();
        }
    }
    let b2 = d.join("b2.json");
    std::fs::write(&b2, other.to_string()).unwrap();
    let j = across(&a, &b2);
    for r in j["rows"].as_array().unwrap() {
        assert!(r["least_energy"].is_null(), "{r}");
        assert_contains(r["note"].as_str().unwrap(), "cover different things");
    }
    // The table names the sources; one machine alone is refused.
    let o = wattbench(&["compare", "--across-hardware", s(&a), s(&b)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_contains(&stdout(&o), "(estimated)");
    assert_contains(&stdout(&o), "least energy");
    usage_error(
        &wattbench(&["compare", "--across-hardware", s(&a)]),
        "one machine",
    );
    // A verdict's options are refused rather than ignored (no verdict here).
    for (given, said) in [
        (
            &["--threshold", "10"][..],
            "--threshold has no effect with --across-hardware",
        ),
        (
            &["--alpha", "0.1", "--seed", "3"],
            "--alpha, --seed have no effect",
        ),
        // Their default values too: given, they are still asked for in vain.
        (
            &["--threshold", "5", "--alpha", "0.05"],
            "--threshold, --alpha have no effect",
        ),
    ] {
        let mut args = vec!["compare", "--across-hardware", s(&a), s(&b)];
        args.extend(given);
        usage_error(&wattbench(&args), said);
    }
    // Without the flag, compare still needs two inputs.
    usage_error(&wattbench(&["compare", s(&a)]), "BASE and NEW");
}

#[test]
fn devices_says_when_no_gpu_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.json");
    // An empty CUDA_VISIBLE_DEVICES hides every GPU, as it does from CUDA, so this holds on a
    // GPU machine too.
    let o = without_gpus()
        .args(["run", "--suite", "quick", "--devices", "all", "-o", s(&out)])
        .output()
        .unwrap();
    usage_error(&o, "one worker per GPU, and this process sees none");
    assert!(!out.exists());
    usage_error(
        &wattbench(&["run", "--devices-sequential", "-o", s(&out)]),
        "--devices-sequential goes with --devices",
    );
    usage_error(
        &wattbench(&["run", "--devices", "all", "--json", "-o", s(&out)]),
        "--json goes without --devices",
    );
    assert!(!out.exists());
}

/// `run --devices` checks the options as `run` does before it looks for GPUs or starts a
/// worker: a typo is one usage error (exit 2), not one worker error per GPU and exit 1.
#[test]
fn devices_checks_the_options_before_starting_workers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.json");
    let devices = |extra: &[&str]| {
        let mut args = vec!["run", "--devices", "all", "-o", s(&out)];
        args.extend(extra);
        without_gpus().args(&args).output().unwrap()
    };
    usage_error(&devices(&["--suite", "quik"]), "quik");
    usage_error(&devices(&["--backend", "candel"]), "candel");
    usage_error(&devices(&["--min-time", "-1"]), "--min-time");
    // Each worker runs on its GPU: another device is refused, with what to do.
    let o = devices(&["--device", "cpu,cuda"]);
    usage_error(&o, "--device cpu goes without --devices");
    // Each worker meters the GPU it runs on: another selection is refused.
    usage_error(
        &devices(&["--gpus", "all"]),
        "--gpus and --no-nvml go without --devices",
    );
    usage_error(
        &devices(&["--no-nvml"]),
        "--gpus and --no-nvml go without --devices",
    );
    // An empty item in the list.
    let o = without_gpus()
        .args(["run", "--devices", "0,,1", "-o", s(&out)])
        .output()
        .unwrap();
    usage_error(&o, "has an empty item");
    // Options that are right get as far as the GPUs.
    usage_error(
        &devices(&["--device", "cuda", "--suite", "quick"]),
        "sees none",
    );
    assert!(!out.exists());
}

/// A `run --devices` worker that a scheduler signalled directly (Slurm signals every process
/// of a step) and that got the stop its parent passes on (SIGUSR2 for SIGTERM), 0.1 s apart in
/// either order, still writes its completed cases: the parent's is the same stop, not a
/// second signal.
fn worker_stopped_by_the_scheduler_and_its_parent(parent_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.json");
    // This test is the worker's parent.
    let mut c = command();
    c.env("WATTBENCH_DEVICES_WORKER", "1");
    let (mut child, reader) = start_slow_run(c, dir.path(), &out);
    let pid = child.id();
    // The scheduler's SIGTERM comes from another process.
    let scheduler = || {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        assert!(kill.unwrap().success());
    };
    // SAFETY: kill(2) on our own child, not yet waited for.
    let parent = || assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGUSR2) }, 0);
    let pause = || std::thread::sleep(std::time::Duration::from_millis(100));
    if parent_first {
        parent();
        pause();
        scheduler();
    } else {
        scheduler();
        pause();
        parent();
    }
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    let doc = read_json(&out);
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["cases"].as_array().unwrap().len(), 1, "{err}");
}

#[test]
fn a_worker_takes_the_stop_its_parent_passes_on_as_the_schedulers() {
    worker_stopped_by_the_scheduler_and_its_parent(false);
}

#[test]
fn a_worker_takes_the_schedulers_stop_as_the_one_its_parent_passed_on() {
    worker_stopped_by_the_scheduler_and_its_parent(true);
}

/// A `run --devices` worker gets SIGHUP from its parent when the terminal hangs up, and may get
/// it from elsewhere too: two are one stop, not a second signal, and the worker writes its
/// completed cases.
#[test]
fn a_worker_takes_two_hangups_as_one_stop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.json");
    let mut c = common::with_sighup(libc::SIG_DFL);
    c.env("WATTBENCH_DEVICES_WORKER", "1");
    let (mut child, reader) = start_slow_run(c, dir.path(), &out);
    for _ in 0..2 {
        // SAFETY: kill(2) on our own child, not yet waited for.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(129), "{err}");
    let doc = read_json(&out);
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["cases"].as_array().unwrap().len(), 1, "{err}");
}

/// A pod's own host name is the pod's: with `WATTBENCH_NODE_NAME` (the manifest sets it from
/// `spec.nodeName`) the node's name is recorded as the host's, the process's beside it.
#[test]
fn a_node_name_from_the_environment_is_the_recorded_host_name() {
    let info = |node: Option<&str>| -> Value {
        let mut c = command();
        c.args(["info", "--json"]);
        if let Some(n) = node {
            c.env("WATTBENCH_NODE_NAME", n);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let plain = info(None);
    let own = plain["host"]["hostname"].clone();
    assert!(own.is_string(), "{plain}");
    assert!(plain["host"].get("container_hostname").is_none(), "{plain}");
    let pod = info(Some("gpu-node-3"));
    assert_eq!(pod["host"]["hostname"], "gpu-node-3");
    assert_eq!(pod["host"]["container_hostname"], own);
}

/// A machine whose ceilings are a quick measurement (a lower bound): its "of peak" reads high,
/// and the comparison says so, in the text and the JSON.
#[test]
fn across_hardware_marks_quick_ceilings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = task(d, "a.json", "node1", None);
    let b = task(d, "b.json", "node2", Some("Imaginary CPU 9000"));
    let found = d.join("ceilings");
    std::fs::create_dir(&found).unwrap();
    let o = quick_ceilings(&found.join("c.json"), &["--backend", "candle"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wattbench(&[
        "compare",
        "--across-hardware",
        s(&a),
        s(&b),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["machines"][0]["ceilings_quick"], true, "{j}");
    assert_eq!(j["machines"][1]["ceilings_quick"], false, "{j}");
    let o = wattbench(&["compare", "--across-hardware", s(&a), s(&b)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_contains(&out, "quick: a lower bound");
    assert_contains(&out, "% (quick ceilings)");
}

/// The Slurm array script names each task's file by job, task, node and, for a task Slurm
/// requeued, its attempt: a second attempt on the same node never replaces the first's file.
#[test]
fn a_requeued_slurm_task_writes_beside_its_first_attempt() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Stands in for wattbench: prints the --output it was given.
    let bin = d.join("fake-wattbench");
    std::fs::write(
        &bin,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output ] && echo \"$2\"; shift; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm/wattbench-array.sbatch");
    let attempt = |restart: Option<&str>| -> String {
        let mut c = std::process::Command::new("bash");
        c.arg(&script)
            .env("WATTBENCH_BIN", &bin)
            .env("WATTBENCH_OUT", d.join("out"))
            .env("SLURM_ARRAY_JOB_ID", "77")
            .env("SLURM_ARRAY_TASK_ID", "3")
            .env_remove("SLURM_RESTART_COUNT");
        if let Some(r) = restart {
            c.env("SLURM_RESTART_COUNT", r);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let host = String::from_utf8(
        std::process::Command::new("hostname")
            .arg("-s")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let want = |suffix: &str| {
        format!(
            "{}/task-77-3-{}{suffix}.json",
            s(&d.join("out")),
            host.trim()
        )
    };
    assert_eq!(attempt(None), want(""));
    assert_eq!(attempt(Some("0")), want(""));
    assert_eq!(attempt(Some("1")), want("-r1"));
    assert_eq!(attempt(Some("2")), want("-r2"));
}

/// The review's case (/tmp/rv/ah), through the command: M1's three runs at 1.0, 1.3 and 0.8
/// times a figure, each metered to ±0.1 %, M2's one run at 0.98 times it. M1's interval spans
/// its runs, so M2 (whose interval is its meters' alone, and says so) is not named from meter
/// error. A case that failed on M2 is listed with its reason, not counted as "on one machine
/// only".
#[test]
fn across_hardware_pools_a_machines_runs_and_lists_its_failures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = read_json(task(d, "base.json", "node1", None));
    let write = |name: &str, host: &str, cpu: &str, k: f64, minute: u32| -> PathBuf {
        let mut doc = base.clone();
        doc["created_at"] = format!("2030-01-01T00:{minute:02}:00+00:00").into();
        doc["environment"]["host"]["hostname"] = host.into();
        doc["environment"]["host"]["cpu_model"] = cpu.into();
        for c in doc["cases"].as_array_mut().unwrap() {
            let t = &mut c["energy"]["total_joules_per_iter"];
            let v = t["value"].as_f64().unwrap() * k;
            t["value"] = v.into();
            t["low"] = (v * 0.999).into();
            t["high"] = (v * 1.001).into();
        }
        let p = d.join(name);
        std::fs::write(&p, doc.to_string()).unwrap();
        p
    };
    let m1 = d.join("m1");
    std::fs::create_dir(&m1).unwrap();
    for (i, k) in [1.0, 1.3, 0.8].into_iter().enumerate() {
        let p = write(
            &format!("m1-{i}.json"),
            &format!("a{i}"),
            "CPU A 1000",
            k,
            i as u32,
        );
        std::fs::rename(&p, m1.join(p.file_name().unwrap())).unwrap();
    }
    let m2 = write("m2.json", "b", "CPU B 2000", 0.98, 9);
    let mut doc = read_json(&m2);
    doc["cases"][0]["status"] = "failed".into();
    doc["cases"][0]["reason"] = "relative L2 error 0.3".into();
    let failed_id = doc["cases"][0]["id"].as_str().unwrap().to_string();
    std::fs::write(&m2, doc.to_string()).unwrap();

    let o = wattbench(&[
        "compare",
        "--across-hardware",
        s(&m1),
        s(&m2),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = j["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the failed case is not a row");
    for r in rows {
        assert!(r["least_energy"].is_null(), "{r}");
        assert_eq!(r["cells"][0]["energy_spread"], "runs_and_meters", "{r}");
        assert_eq!(r["cells"][1]["energy_spread"], "meters_only", "{r}");
    }
    assert_eq!(j["single_machine_cases"], 0);
    assert_eq!(j["not_verified"][0]["machine"], "M2");
    assert_eq!(j["not_verified"][0]["status"], "failed");
    let o = wattbench(&["compare", "--across-hardware", s(&m1), s(&m2)]);
    let out = stdout(&o);
    assert_contains(&out, "(1 run: meters only)");
    assert_contains(
        &out,
        &format!("M2: {failed_id}: failed in 1 of 1 run(s): relative L2 error 0.3"),
    );
}
