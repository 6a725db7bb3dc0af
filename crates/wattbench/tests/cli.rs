//! The `wattbench` binary end to end: real runs, result files and bad input.
mod common;

use common::{
    assert_contains, command, read_json, run_tiny, slow_run, start_slow_run, stderr, stdout,
    tiny_suite, wattbench, with_sighup, FAST,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn list_json_names_backends_with_reasons() {
    let o = wattbench(&["list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let backends = v["backends"].as_array().unwrap();
    let get = |n: &str| {
        backends
            .iter()
            .find(|b| b["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    assert_eq!(get("reference")["available"], true);
    assert_eq!(get("candle")["available"], true);
    for gpu in ["cuda", "cublas"] {
        let b = get(gpu);
        if b["available"] == false {
            assert!(
                b["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{gpu} has no reason"
            );
        }
        assert!(!b["devices"].as_array().unwrap().is_empty());
    }
    assert!(v["suites"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "quick"));
    assert_eq!(v["ops"], serde_json::json!(["gemm", "conv2d", "rnn"]));
}

#[test]
fn run_writes_a_complete_verified_result_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/run.json");
    let out_s = out.to_string_lossy().into_owned();
    let (o, doc) = run_tiny(
        dir.path(),
        "sub/run.json",
        &["--backend", "reference,candle"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim_end().lines().last().unwrap(),
        out_s,
        "the result path comes last"
    );
    let doc = doc.expect("a result file");
    assert_eq!(doc["schema_version"], 2);
    assert_eq!(doc["config"]["command"], "run");
    assert_eq!(doc["interrupted"], false);
    for k in ["created_at", "environment", "config", "cases"] {
        assert!(!doc[k].is_null(), "{k}");
    }
    let env = &doc["environment"];
    assert!(env["host"]["logical_cores"].as_u64().unwrap() >= 1);
    assert!(env["gpus"].is_array());
    assert!(env["software"]["wattbench"].is_string() && env["software"]["candle-core"].is_string());
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6, "3 shapes x 2 backends");
    for c in cases {
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["verification"]["passed"], true);
        assert!(c["verification"]["rel_l2_error"].as_f64().unwrap() < 1e-4);
        let t = &c["time"];
        assert!(t["samples_s"].as_array().unwrap().len() >= 3);
        for k in ["median_s", "mean_s", "min_s", "max_s", "p95_s"] {
            assert!(t[k].as_f64().unwrap() > 0.0, "{k}");
        }
        assert!(t["ci95_median_s"][0].as_f64().unwrap() <= t["median_s"].as_f64().unwrap());
        assert!(c["throughput"]["gflops_per_s"].as_f64().unwrap() > 0.0);
        assert!(c["throughput"]["intensity"].as_f64().unwrap() > 0.0);
        assert!(c["memory"]["host_peak_rss_bytes"].as_u64().unwrap() > 0);
        let id = c["id"].as_str().unwrap();
        assert!(id.ends_with("/cpu") && id.split('/').count() == 6, "{id}");
    }
    // Readable by others like any file the user writes, and no temporary file is left beside it.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1);

    // The report renders from the file.
    let md = dir.path().join("run.md");
    let o = wattbench(&["report", &out_s, "--output", &md.to_string_lossy()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(
        &std::fs::read_to_string(md).unwrap(),
        "| gemm infer m19_n7_k33_nt",
    );
}

#[test]
fn failed_verification_exits_1_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = run_tiny(
        dir.path(),
        "r.json",
        &[
            "--backend",
            "candle",
            "--op",
            "gemm",
            "--tolerance",
            "1e-15",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let doc = doc.expect("a result file");
    let c = &doc["cases"][0];
    assert_eq!(c["status"], "failed");
    assert_eq!(c["verification"]["passed"], false);
    assert_contains(c["reason"].as_str().unwrap(), "verification failed");
}

#[test]
fn bad_input_exits_2_with_a_useful_message_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.json");
    let out_s = out.to_string_lossy().into_owned();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "gemm = [ { m = 4, n = 4,\n  k = -1 } ]\n").unwrap();
    let zero = dir.path().join("zero.toml");
    std::fs::write(
        &zero,
        "conv2d = [ { n = 1, c = 0, h = 4, w = 4, k = 1, r = 1, s = 1 } ]\n",
    )
    .unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let unwritable = blocker.join("x.json").to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--backend", "nope"], "valid: reference, candle"),
        (vec!["run", "--op", "matmul"], "valid: gemm, conv2d, rnn"),
        (vec!["run", "--dtype", "f64"], "valid: f32, f16, bf16"),
        (vec!["run", "--suite", "nosuch"], "built-in suites: quick"),
        (
            vec!["run", "--suite", bad.to_str().unwrap()],
            "expected usize",
        ),
        (vec!["run", "--suite", zero.to_str().unwrap()], "c is 0"),
        (vec!["run", "--min-time=-1"], "--min-time must be"),
        (vec!["run", "--output", &unwritable], "cannot"),
        (
            vec!["run", "--output", dir.path().to_str().unwrap()],
            "is a directory",
        ),
        (
            vec!["report", bad.to_str().unwrap()],
            "not a wattbench result file",
        ),
    ];
    for (mut args, want) in cases {
        if !args.contains(&"--output") {
            args.extend(["--output", &out_s]);
        }
        let o = wattbench(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{args:?}: wanted {want:?} in {}",
            stderr(&o)
        );
        if want == "expected usize" {
            assert_contains(&stderr(&o), "line 1, column");
        }
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
        assert!(!out.exists(), "{args:?} wrote a file");
    }
}

#[test]
fn oversized_case_is_skipped_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, "gemm = [ { m = 300000, n = 300000, k = 300000 } ]\n").unwrap();
    let out = dir.path().join("r.json").to_string_lossy().into_owned();
    let o = wattbench(&[
        "run",
        "--suite",
        huge.to_str().unwrap(),
        "--backend",
        "candle",
        "--output",
        &out,
    ]);
    // Its only case skipped: nothing ran (exit 3), and the file says why.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let doc = read_json(&out);
    let c = &doc["cases"][0];
    assert_eq!(c["status"], "skipped");
    let reason = c["reason"].as_str().unwrap();
    assert!(
        reason.contains("needs about") && reason.contains("available"),
        "{reason}"
    );
}

/// A run stopped by `signal` (what Ctrl-C, `timeout`, Slurm, CI and a closed terminal send)
/// writes the cases completed so far, marks the file interrupted and exits 128 + signal.
fn signal_writes_completed_cases_and_marks_the_run_interrupted(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let (mut child, reader) = start_slow_run(with_sighup(libc::SIG_DFL), dir.path(), &out);
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(code), "{err}");
    let doc = read_json(&out);
    assert_eq!(doc["interrupted"], true);
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "only the completed case is written");
    assert_eq!(cases[0]["status"], "ok");
    assert_contains(&err, "writing the completed cases");
}

#[test]
fn ctrl_c_writes_completed_cases_and_marks_the_run_interrupted() {
    signal_writes_completed_cases_and_marks_the_run_interrupted("-INT", 130);
}

#[test]
fn sigterm_writes_completed_cases_and_marks_the_run_interrupted() {
    signal_writes_completed_cases_and_marks_the_run_interrupted("-TERM", 143);
}

#[test]
fn sighup_writes_completed_cases_and_marks_the_run_interrupted() {
    signal_writes_completed_cases_and_marks_the_run_interrupted("-HUP", 129);
}

/// A dropped SSH session: the terminal the run draws its progress on goes away (writing to it
/// fails with EIO) and SIGHUP comes. The completed cases are written all the same, instead of
/// the run dying of the hangup, or of a panic on the first message it prints about the stop.
#[test]
fn a_hangup_of_the_terminal_writes_the_completed_cases() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes the two descriptors it opens into our integers; the null
    // arguments ask for no name and default settings.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    for fd in [master, slave] {
        // The run must not hold the terminal's master open (it would never hang up).
        // SAFETY: sets close-on-exec on a descriptor we own.
        let set = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        assert_eq!(set, 0);
    }
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut c = slow_run(with_sighup(libc::SIG_DFL), dir.path(), &out);
    c.stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let mut child = c.spawn().unwrap();
    drop(c);
    // The bar, drawn on the terminal, says when the first case has completed; then the
    // terminal goes (its master closed: the run's writes to it fail from now on).
    let seen = std::thread::spawn(move || {
        let mut terminal = std::fs::File::from(master);
        let (mut all, mut buf) = (String::new(), [0u8; 4096]);
        while !all.contains("1/2") {
            match terminal.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        all
    });
    let drawn = seen.join().unwrap();
    assert!(drawn.contains("1/2"), "no progress drawn: {drawn:?}");
    let killed = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(129), "{status:?}");
    let doc = read_json(&out);
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["cases"].as_array().unwrap().len(), 1);
}

/// Under `nohup` (SIGHUP ignored when the run starts) a hangup is not a stop: it stays
/// ignored, and a later SIGTERM is the first stop, which writes the completed cases (were the
/// hangup a stop, the SIGTERM would be a second signal, which writes nothing).
#[test]
fn a_hangup_under_nohup_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let (mut child, reader) = start_slow_run(with_sighup(libc::SIG_IGN), dir.path(), &out);
    let pid = child.id().to_string();
    for signal in ["-HUP", "-TERM"] {
        let killed = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(killed.success());
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert_eq!(read_json(&out)["interrupted"], true);
    assert_contains(&err, "SIGTERM: finishing the current sample");
}

#[test]
fn measure_reports_a_command_and_returns_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("m.json");
    let trace = dir.path().join("m.csv");
    let o = wattbench(&[
        "measure",
        "--interval",
        "20",
        "--output",
        report.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        // Busy (CPU time to estimate), then alive for 15 sampling intervals whatever the
        // machine's speed, so that the sampler sees its memory and the trace has rows.
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.3; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let doc = read_json(&report);
    assert_eq!(doc["exit_code"], 3);
    assert!(doc["duration_s"].as_f64().unwrap() > 0.0);
    for k in [
        "command",
        "domains",
        "peak_memory_bytes",
        "energy_kwh",
        "co2e_kg",
        "assumptions",
    ] {
        assert!(!doc[k].is_null(), "{k} missing");
    }
    let domains = doc["domains"].as_array().unwrap();
    // This machine class has no NVML/RAPL: the CPU figure is an estimate, never "measured" 0 J.
    for d in domains {
        if d["source"] == "unsupported" {
            assert!(d["joules"].is_null() && d["reason"].is_string(), "{d}");
        }
    }
    assert!(
        domains.iter().any(|d| d["source"] != "unsupported"),
        "{domains:?}"
    );
    // Without a readable RAPL package counter (CI, this project's VMs) the CPU's figure is the
    // labelled estimate, with a positive figure for the busy loop.
    if !domains
        .iter()
        .any(|d| d["source"] == "measured" && d["name"].as_str().unwrap().starts_with("cpu"))
    {
        assert!(
            domains.iter().any(
                |d| d["source"] == "estimated" && d["joules"].as_f64().is_some_and(|j| j > 0.0)
            ),
            "{domains:?}"
        );
    }
    let kwh = &doc["energy_kwh"];
    let (lo, v, hi) = (
        kwh["low"].as_f64().unwrap(),
        kwh["value"].as_f64().unwrap(),
        kwh["high"].as_f64().unwrap(),
    );
    assert!(lo <= v && v <= hi, "{kwh}");
    let csv = std::fs::read_to_string(&trace).unwrap();
    assert!(
        csv.lines().count() >= 2,
        "trace has a header and samples: {csv}"
    );

    // A command that does not exist: a clear message, exit 127, and still a report.
    let missing = dir.path().join("missing.json");
    let o = wattbench(&[
        "measure",
        "--output",
        missing.to_str().unwrap(),
        "--",
        "no-such-command-xyz",
    ]);
    assert_eq!(o.status.code(), Some(127));
    assert_contains(&stderr(&o), "no-such-command-xyz");
    assert!(missing.exists());
}

#[test]
fn gpu_backends_skip_with_a_reason_when_no_gpu_is_present() {
    // GPUs hidden, so the skip path runs on any machine.
    let list: Value = serde_json::from_slice(
        &common::without_gpus()
            .args(["list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = common::run_tiny_without_gpus(
        dir.path(),
        "r.json",
        &["--backend", "cuda,cublas", "--op", "gemm"],
    );
    let doc = doc.expect("a result file");
    let cases = doc["cases"].as_array().unwrap();
    // The tiny suite's one GEMM on each backend's devices: never an empty, vacuous run.
    assert!(cases.len() >= 2, "{cases:?}");
    for backend in ["cuda", "cublas"] {
        assert!(
            cases.iter().any(|c| c["backend"] == backend),
            "no {backend} case: {cases:?}"
        );
    }
    // CUDA_VISIBLE_DEVICES="" hides every GPU: both backends say so, whatever the machine.
    for name in ["cuda", "cublas"] {
        let backend = list["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap();
        assert_eq!(backend["available"], false, "{backend}");
    }
    for c in cases {
        assert_eq!(c["status"], "skipped", "{c}");
        assert!(
            c["reason"].as_str().unwrap().starts_with("unavailable: "),
            "{c}"
        );
    }
    // Nothing ran: exit 3, as documented.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

/// Every key a `run` and a `train` write is named in results/README.md, the schema's one
/// description, so the two cannot drift apart.
#[test]
fn every_result_key_is_documented() {
    fn keys(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.clone());
                    // Maps keyed by data (versions, tensor names), not by the schema.
                    if k != "software" && k != "per_output" {
                        keys(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (o, run) = run_tiny(
        dir.path(),
        "run.json",
        &["--backend", "candle", "--mode", "train"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let train_out = dir.path().join("train.json");
    let o = wattbench(&[
        "train",
        "--model",
        "lstm",
        "--size",
        "tiny",
        "--steps",
        "6",
        "--project-steps",
        "1000",
        "--output",
        train_out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let train = read_json(&train_out);
    let mut all = std::collections::BTreeSet::new();
    keys(&run.unwrap(), &mut all);
    keys(&train, &mut all);
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../results/README.md"
    ))
    .unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys not described in results/README.md: {missing:?}"
    );
    assert!(all.len() > 100, "{}", all.len());
}

#[test]
fn a_write_that_fails_at_the_end_keeps_the_results_in_a_fallback_file() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let sub = dir.path().join("sub");
    let out = sub.join("r.json");
    // Two cases of at least a second each: once the first is done (its progress line is out)
    // the check before the work (a probe folder in the nearest folder that exists) is long
    // past, and the second case and the idle window after it leave time to put a file where
    // the output's folder is to be made before the final write.
    let mut child = command()
        .env("TMPDIR", tmp.path())
        .args([
            "run",
            "--suite",
            &suite,
            "--backend",
            "reference",
            "--op",
            "gemm,rnn",
        ])
        .args(["--min-time", "1", "--min-samples", "3", "--warmup", "0"])
        .args(["--output", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut err = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        err.push_str(&line);
        err.push('\n');
        if line.starts_with("[1/2]") {
            break;
        }
    }
    // The missing folder is made only when the file is written: nothing is on disk yet.
    assert!(
        !sub.exists(),
        "the folder was made before the results were ready: {err}"
    );
    std::fs::write(&sub, "a file where the folder would be").unwrap();
    for line in lines.map_while(Result::ok) {
        err.push_str(&line);
        err.push('\n');
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "one message: {err}");
    assert_eq!(
        err.matches("Not a directory").count(),
        1,
        "said once: {err}"
    );
    let saved: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let saved = saved[0].display().to_string();
    assert_contains(&err, &format!("saved in {saved}"));
    let doc = read_json(&saved);
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{doc}");
    assert!(cases.iter().all(|c| c["status"] == "ok"), "{doc}");
    // The table is printed, and the path that comes last is the fallback file.
    let text = stdout(&o);
    assert_contains(&text, "2 ok, 0 skipped, 0 failed");
    assert_eq!(text.trim_end().lines().last().unwrap(), saved);
}

#[test]
fn impossible_values_and_missing_keys_are_refused_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = run_tiny(
        dir.path(),
        "base.json",
        &["--backend", "reference", "--op", "gemm"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = doc.unwrap();
    let base = dir.path().join("base.json");
    // A hand-edited negative time: no "faster" verdict, a refusal naming file and key.
    let mut neg = doc.clone();
    let n = neg["cases"][0]["time"]["samples_s"]
        .as_array()
        .unwrap()
        .len();
    neg["cases"][0]["time"]["samples_s"] = serde_json::json!(vec![-1.0; n]);
    neg["cases"][0]["time"]["median_s"] = (-1.0).into();
    let neg_path = dir.path().join("negtime.json");
    std::fs::write(&neg_path, neg.to_string()).unwrap();
    let o = wattbench(&[
        "compare",
        base.to_str().unwrap(),
        neg_path.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}\n{}", stdout(&o));
    assert_contains(&err, "negtime.json");
    assert_contains(&err, "cases[0].time.samples_s[0] = -1");
    assert!(!stdout(&o).contains("faster"), "{}", stdout(&o));
    // A file without its `cases` key is not an empty run.
    let mut cut = doc.clone();
    cut.as_object_mut().unwrap().remove("cases");
    let cut_path = dir.path().join("nocases.json");
    std::fs::write(&cut_path, cut.to_string()).unwrap();
    let o = wattbench(&["report", cut_path.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_contains(&err, "nocases.json");
    assert_contains(&err, "missing field `cases`");
}

#[test]
fn duration_covers_the_idle_windows_of_the_command() {
    // results/README: `duration_s` is the command's wall time, idle windows included.
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = run_tiny(
        dir.path(),
        "r.json",
        &["--backend", "reference", "--op", "gemm"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = doc.unwrap();
    let window = |key: &str| -> f64 {
        doc["energy"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["window_s"].as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    let idle = window("idle_baseline") + window("idle_after");
    assert!(idle > 0.0, "no idle window measured: {}", doc["energy"]);
    // Each case's energy window lies within the command too.
    let cases: f64 = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["energy"]["window_s"].as_f64())
        .sum();
    let duration = doc["duration_s"].as_f64().unwrap();
    assert!(
        duration >= idle + cases,
        "duration_s {duration} < idle windows {idle} + case windows {cases}"
    );
}

/// The commands that run backends set wattbench's GPU defaults unless the user set them
/// (`NVIDIA_TF32_OVERRIDE=0`, `CUDA_DEVICE_ORDER=PCI_BUS_ID`), and record them with the other
/// variables that change what is measured (a thread count here); a user's own value is kept.
#[test]
fn runs_record_the_variables_that_change_what_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let suite = tiny_suite(d);
    let run = |name: &str, set: &[(&str, &str)]| -> Value {
        let out = d.join(name);
        let mut c = command();
        for k in [
            "NVIDIA_TF32_OVERRIDE",
            "CUDA_DEVICE_ORDER",
            "OMP_NUM_THREADS",
            "CUDA_VISIBLE_DEVICES",
        ] {
            c.env_remove(k);
        }
        c.envs(set.iter().copied());
        let o = c
            .args([
                "run",
                "--suite",
                &suite,
                "--backend",
                "reference",
                "--output",
            ])
            .arg(&out)
            .args(FAST)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        read_json(&out)["environment"]["variables"].clone()
    };
    let v = run("a.json", &[("OMP_NUM_THREADS", "1")]);
    assert_eq!(v["NVIDIA_TF32_OVERRIDE"], "0", "{v}");
    assert_eq!(v["CUDA_DEVICE_ORDER"], "PCI_BUS_ID", "{v}");
    assert_eq!(v["OMP_NUM_THREADS"], "1", "{v}");
    assert!(v.get("CUDA_VISIBLE_DEVICES").is_none(), "{v}");
    let v = run(
        "b.json",
        &[
            ("CUDA_DEVICE_ORDER", "FASTEST_FIRST"),
            ("NVIDIA_TF32_OVERRIDE", "1"),
        ],
    );
    assert_eq!(v["CUDA_DEVICE_ORDER"], "FASTEST_FIRST", "{v}");
    assert_eq!(v["NVIDIA_TF32_OVERRIDE"], "1", "{v}");
    assert!(v.get("OMP_NUM_THREADS").is_none(), "{v}");
}

/// A case that failed verification on a NaN output has infinite errors, which the file holds
/// as null: `report` (Markdown and HTML) reads it and shows what was wrong, with a case of
/// one sample, whose median has no interval, beside it.
#[test]
fn a_case_failed_on_a_nan_output_is_read_back_by_report() {
    use wattbench_core::testing::{failed_on_nan, run_file, timed_case};
    use wattbench_core::Mode;
    let failed = failed_on_nan(Mode::Infer);
    let doc = run_file(
        "2026-01-01T00:00:00+00:00",
        vec![failed, timed_case("gemm/one", vec![1e-3])],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nan.json");
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let md = dir.path().join("nan.md");
    let o = wattbench(&["report", file.to_str().unwrap(), "-o", md.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&md).unwrap();
    assert_contains(&text, "FAILED");
    assert_contains(
        &text,
        "value NaN at index 3 of `c` is not finite (never written?)",
    );
    let html = dir.path().join("nan.html");
    let o = wattbench(&[
        "report",
        "--format",
        "html",
        file.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Without --warmup a run warms up 0.05 s on the CPU and 1 s on a GPU, and records both; an
/// explicit --warmup holds on every device.
#[test]
fn the_default_warm_up_depends_on_the_device_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let run = |out: &str, warmup: &[&str]| {
        let out = dir.path().join(out);
        let o = command()
            .args([
                "run",
                "--suite",
                &suite,
                "--backend",
                "reference",
                "--op",
                "gemm",
            ])
            .args(["--min-time", "0", "--min-samples", "3", "--output"])
            .arg(&out)
            .args(warmup)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        read_json(&out)["config"]["harness"].clone()
    };
    let h = run("default.json", &[]);
    assert_eq!(
        (h["warmup_s"].as_f64(), h["gpu_warmup_s"].as_f64()),
        (Some(0.05), Some(1.0)),
        "{h}"
    );
    let h = run("given.json", &["--warmup", "0.01"]);
    assert_eq!(
        (h["warmup_s"].as_f64(), h["gpu_warmup_s"].as_f64()),
        (Some(0.01), Some(0.01)),
        "{h}"
    );
    let help = stdout(&wattbench(&["run", "--help"]));
    assert_contains(&help, "0.05 on the CPU, 1 on a GPU");
}
