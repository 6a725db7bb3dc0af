//! The bad-input and signal battery a new user ran by hand, made permanent: nothing lost,
//! nothing clobbered, no panic, a clear message and a documented exit code for each.
mod common;

use common::{
    assert_contains, command, is_char_device, reference_gemm, reference_gemm_args, run_tiny,
    stderr, stdout, tiny_suite, train_tiny, usage_error, wattbench,
};
use serde_json::Value;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with a safety limit, so that a regression to an unbounded run fails the
/// test instead of hanging it.
fn bounded(args: &[&str], limit: Duration) -> Output {
    let mut child = command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            child.kill().unwrap();
            panic!("`wattbench {}` ran past {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// (Item 1.) `--output /dev/null` replaced the system's /dev/null with a regular file (as root).
/// Device files are written in place, and symlinks are followed, not replaced.
#[test]
fn dev_null_and_symlinks_are_written_through_not_replaced() {
    let null = Path::new("/dev/null");
    assert!(is_char_device(null));
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let mut args = reference_gemm(&suite);
    args.extend(["--output", "/dev/null"]);
    let o = wattbench(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_char_device(null), "run replaced /dev/null");

    let (o, _) = run_tiny(
        dir.path(),
        "r.json",
        &["--backend", "reference", "--op", "gemm"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = dir.path().join("r.json");
    let o = wattbench(&["report", r.to_str().unwrap(), "--output", "/dev/null"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_char_device(null), "report replaced /dev/null");

    let o = train_tiny("/dev/null");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_char_device(null), "train replaced /dev/null");

    let trace = dir.path().join("t.csv");
    let report = dir.path().join("m.json");
    for args in [
        ["-o", "/dev/null", "--trace", trace.to_str().unwrap()],
        ["-o", report.to_str().unwrap(), "--trace", "/dev/null"],
    ] {
        let mut a = vec!["measure"];
        a.extend(args);
        a.extend(["--", "true"]);
        let o = wattbench(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(is_char_device(null), "measure {args:?} replaced /dev/null");
    }

    // A symlinked output: the link stays, its target gets the result.
    let target = dir.path().join("real.json");
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = wattbench(&[
        "report",
        r.to_str().unwrap(),
        "--output",
        link.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_contains(
        &std::fs::read_to_string(&target).unwrap(),
        "# wattbench run",
    );
}

/// (Item 2.) `measure` to an unwritable place ran the command, then lost the measurement. Outputs
/// are checked before the command starts; a missing folder is created; the report and the
/// trace cannot be one file.
#[test]
fn measure_checks_its_outputs_before_running_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let under_file = blocker.join("r.json");
    let ok_trace = dir.path().join("t.csv");
    for (o_path, trace) in [
        (under_file.clone(), ok_trace.clone()),
        (dir.path().join("r.json"), blocker.join("t.csv")),
        (dir.path().join("same"), dir.path().join("same")),
    ] {
        let o = wattbench(&[
            "measure",
            "-o",
            o_path.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &touch,
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            !marker.exists(),
            "the command ran although an output was bad"
        );
    }
    let nested = dir.path().join("new/sub/r.json");
    let o = wattbench(&["measure", "-o", nested.to_str().unwrap(), "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(nested.exists() && dir.path().join("new/sub/r.trace.csv").exists());
}

/// A pipe whose reading end is already closed: every write to it fails.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two descriptors we own; the read end is closed at once and the
    // write end is handed to the child.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// (Item 5.) `wattbench … | head -1` panicked with a backtrace and exit 101 on the closed pipe.
/// Commands end quietly, and what they write to files is written first.
#[test]
fn a_closed_pipe_ends_quietly_after_the_results_are_saved() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let out = dir.path().join("r.json");
    let check = |args: &[&str]| {
        let o = command()
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(101), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    };
    check(&["list"]);
    check(&["list", "--regions"]);
    let mut run = reference_gemm(&suite);
    run.extend(["--json", "--output", out.to_str().unwrap()]);
    check(&run);
    assert!(out.exists(), "the result file was lost to the closed pipe");
    check(&["report", out.to_str().unwrap()]);
    let db = dir.path().join("h.sqlite");
    let db = db.to_str().unwrap();
    check(&["history", "add", out.to_str().unwrap(), "--db", db]);
    check(&["history", "show", "--json", "--db", db]);
    check(&["history", "changes", "--json", "--db", db]);
    let t = dir.path().join("t.json");
    check(&[&common::TRAIN_TINY[..], &["--output", t.to_str().unwrap()]].concat());
    assert!(t.exists());
}

/// (Item 6.) Contradictory or absurd settings are refused with the tool's own message (negative
/// numbers included), never silently changed; `--min-time 1e10` ran without bound.
#[test]
fn contradictory_and_absurd_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let limit = Duration::from_secs(60);
    let run = |extra: &[&str]| {
        let mut a = reference_gemm_args(&suite);
        a.extend(extra);
        bounded(&a, limit)
    };
    usage_error(
        &run(&["--min-time", "2", "--max-time", "0.1"]),
        "exceeds --max-time",
    );
    usage_error(&run(&["--min-time", "1e10"]), "--min-time");
    usage_error(&run(&["--min-samples", "5000"]), "exceeds the cap");
    usage_error(
        &run(&["--min-time", "-1"]),
        "--min-time must be a non-negative",
    );
    usage_error(&run(&["--cooldown", "-3"]), "--cooldown");
    let o = bounded(&["measure", "--pue", "1e308", "--", "true"], limit);
    usage_error(&o, "--pue must be between 1.0 and");
    let o = bounded(&["measure", "--pue", "-2", "--", "true"], limit);
    usage_error(&o, "--pue");
    assert!(
        !dir.path().join("results").exists(),
        "a refused run wrote a file"
    );
}

/// (Item 7.) `report` rendered files of any schema version without a word.
#[test]
fn report_refuses_other_schema_versions_and_non_results() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        (r#"{"schema_version": 99}"#, "newer wattbench"),
        (r#"{"schema_version": 1, "cases": []}"#, "older wattbench"),
        ("not json", "not a wattbench result"),
    ] {
        let p = dir.path().join("f.json");
        std::fs::write(&p, text).unwrap();
        let o = wattbench(&["report", p.to_str().unwrap()]);
        usage_error(&o, needle);
    }
}

/// (Item 9.) Default result names had one-second resolution: two runs in the same second wrote
/// one file.
#[test]
fn two_runs_at_once_write_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let spawn = || {
        command()
            .current_dir(dir.path())
            .args(reference_gemm(&suite))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let files = std::fs::read_dir(dir.path().join("results/runs"))
        .unwrap()
        .count();
    assert_eq!(files, 2);
}

/// (Item 11.) `--region XX` showed examples only: the valid regions are listed, and
/// `list --regions` shows each.
#[test]
fn regions_are_listed_and_an_unknown_one_lists_the_choices() {
    let o = wattbench(&["list", "--regions"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("FR ") && text.contains("gcp:us-west1"),
        "{text}"
    );
    let o = wattbench(&["list", "--regions", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.as_array().unwrap().len() > 50);
    let o = wattbench(&["measure", "--region", "XX", "--", "true"]);
    usage_error(&o, "valid regions: WORLD");
    assert!(stderr(&o).contains("gcp:europe-west1") && stderr(&o).contains("list --regions"));
}

/// (Item 12.) Small things a new user tripped on.
#[test]
fn honest_wording_and_one_key_rule() {
    let dir = tempfile::tempdir().unwrap();
    // `--op "gemm, rnn"`: the space is not part of the name.
    let (o, doc) = run_tiny(
        dir.path(),
        "r.json",
        &["--backend", "reference", "--op", "gemm, rnn"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = doc.unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["op"] == "rnn") && cases.iter().all(|c| c["op"] != "conv2d"));
    // One rule for keys: always written, null when not applicable.
    for c in cases {
        for k in ["tag", "reason", "implementation", "energy"] {
            assert!(c.get(k).is_some(), "case without `{k}`: {c}");
        }
    }
    assert!(doc["trainings"].is_array());

    // A training run is not verified against the reference, and its report says so.
    let t = dir.path().join("t.json");
    let o = train_tiny(t.to_str().unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wattbench(&["report", t.to_str().unwrap()]);
    let md = stdout(&o);
    assert!(!md.contains("Every ok case was verified"), "{md}");
    assert_contains(&md, "not verified against the f64 reference");

    // candle's bf16 conv skip names the convolution, not matmul.
    let (o, doc) = run_tiny(
        dir.path(),
        "c.json",
        &[
            "--backend",
            "candle",
            "--device",
            "cpu",
            "--op",
            "conv2d",
            "--dtype",
            "bf16",
        ],
    );
    if let Some(doc) = doc {
        // candle-core 0.11 has no CPU bf16 convolution: skipped (exit 3), never failed with
        // candle's own error.
        let c = &doc["cases"][0];
        assert_eq!(c["status"], "skipped", "{c}");
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let r = c["reason"].as_str().unwrap();
        assert!(
            r.contains("conv2d") && !r.starts_with("candle-core: unsupported"),
            "{r}"
        );
    } else {
        panic!("{}", stderr(&o));
    }
}

/// (Item 12.) `run --device cuda` with no GPU ended "0 ok, 144 skipped" and exit 0: when nothing
/// ran it says so and exits 3.
#[test]
fn a_run_where_nothing_ran_says_so_and_exits_3() {
    // GPUs hidden: on any machine, a GPU one included, nothing can run.
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) =
        common::run_tiny_without_gpus(dir.path(), "r.json", &["--backend", "cuda", "--op", "gemm"]);
    let doc = doc.expect("the skip reasons are still recorded");
    assert!(doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "skipped"));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_contains(&stderr(&o), "nothing ran");
}
