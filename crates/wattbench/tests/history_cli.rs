//! `wattbench history` and `run --record`: recording, idempotence, concurrent writers, and
//! change points in series made from a real run's file with scaled timings.
mod common;

use common::{
    assert_contains, command, reference_gemm, run_tiny, scale_times, stderr, stdout, tiny_suite,
    wattbench,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `wattbench history ARGS --db DB`.
fn history(db: &Path, args: &[&str]) -> Output {
    let mut a = vec!["history"];
    a.extend(args);
    a.extend(["--db", db.to_str().unwrap()]);
    wattbench(&a)
}

/// The JSON document `history ARGS --json` prints.
fn history_json(db: &Path, args: &[&str]) -> Value {
    let o = history(db, &[args, &["--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A quick reference-backend run of the tiny suite in `dir`: its result document.
fn reference_run(dir: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["--backend", "reference"];
    args.extend(extra);
    let (o, doc) = run_tiny(dir, "run.json", &args);
    assert!(o.status.success(), "{}", stderr(&o));
    (o, doc.expect("a result file"))
}

/// Ids of the ok cases of a result document.
fn ok_ids(doc: &Value) -> Vec<String> {
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "ok")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// `n` copies of `doc`, a day apart, with commit `commit{i}`, timings scaled by `factor(i)`
/// and ±2% of deterministic noise, and `edit(i, doc)` applied; their paths.
fn series_files(
    dir: &Path,
    doc: &Value,
    n: usize,
    factor: impl Fn(usize) -> f64,
    edit: impl Fn(usize, &mut Value),
) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let mut d = doc.clone();
            d["created_at"] = format!("2026-02-{:02}T00:00:00+00:00", i + 1).into();
            d["environment"]["git_commit"] = format!("commit{i}").into();
            let noise = 1.0 + 0.01 * ((i * 7 % 5) as f64 - 2.0);
            scale_times(&mut d, factor(i) * noise);
            edit(i, &mut d);
            let p = dir.join(format!("run{i:02}.json"));
            std::fs::write(&p, serde_json::to_string_pretty(&d).unwrap()).unwrap();
            p
        })
        .collect()
}

fn paths(files: &[PathBuf]) -> Vec<&str> {
    files.iter().map(|p| p.to_str().unwrap()).collect()
}

#[test]
fn run_record_then_show_lists_the_cases() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hist.sqlite");
    let (o, doc) = reference_run(dir.path(), &["--record", db.to_str().unwrap()]);
    assert_contains(&stderr(&o), "recorded in the history");
    let ids = ok_ids(&doc);
    assert!(!ids.is_empty());
    let show = history_json(&db, &["show"]);
    assert_eq!(show["runs"], 1);
    let series = show["series"].as_array().unwrap();
    for id in &ids {
        let time = series
            .iter()
            .find(|s| s["case_id"] == id.as_str() && s["metric"] == "time_s")
            .unwrap_or_else(|| panic!("no time series for {id}: {show}"));
        let points = time["points"].as_array().unwrap();
        assert_eq!(points.len(), 1);
        let median = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap()["time"]["median_s"]
            .as_f64();
        assert_eq!(points[0]["value"].as_f64(), median);
        assert!(time["change_points"].as_array().unwrap().is_empty());
    }
    // The text view lists every case; `history` alone is `history show`.
    for args in [&["show"][..], &[]] {
        let o = history(&db, args);
        assert!(o.status.success(), "{}", stderr(&o));
        for id in &ids {
            assert!(
                stdout(&o).contains(id.as_str()),
                "{id} missing:\n{}",
                stdout(&o)
            );
        }
    }
}

#[test]
fn record_defaults_to_the_env_then_results_history() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let run = |envdb: Option<&Path>| {
        let mut c = command();
        c.current_dir(dir.path()).env_remove("WATTBENCH_HISTORY");
        if let Some(p) = envdb {
            c.env("WATTBENCH_HISTORY", p);
        }
        c.args(reference_gemm(&suite))
            .args(["--output", "r.json", "--record"]);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let env_db = dir.path().join("env.sqlite");
    run(Some(&env_db));
    assert!(env_db.is_file());
    assert!(!dir.path().join("results/history.sqlite").exists());
    run(None);
    assert!(dir.path().join("results/history.sqlite").is_file());
}

#[test]
fn a_failure_to_record_is_a_warning_and_the_result_stays() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file where a folder would be").unwrap();
    let db = blocker.join("h.sqlite");
    let (o, doc) = run_tiny(
        dir.path(),
        "run.json",
        &["--backend", "reference", "--record", db.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: the result file was written, but not recorded"));
    assert!(doc.is_some(), "the result file is written");
}

#[test]
fn history_add_twice_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &[]);
    let file = dir.path().join("run.json");
    let o = history(&db, &["add", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stdout(&o), "recorded");
    let first = history_json(&db, &["show"]);
    // The same file again, and a byte-identical copy elsewhere: recorded once.
    let copy = dir.path().join("copy.json");
    std::fs::copy(&file, &copy).unwrap();
    let o = history(
        &db,
        &["add", file.to_str().unwrap(), copy.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("was already recorded (run 1)").count(),
        2
    );
    let again = history_json(&db, &["show"]);
    assert_eq!(again["runs"], 1);
    assert_eq!(first["series"], again["series"]);
    for s in again["series"].as_array().unwrap() {
        assert_eq!(s["points"].as_array().unwrap().len(), 1);
    }
    assert!(!ok_ids(&doc).is_empty());
}

#[test]
fn bad_input_is_a_usage_error_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"not\": \"a result\"}").unwrap();
    let o = history(&db, &["add", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_contains(&stderr(&o), "junk.json");
    assert!(!db.exists(), "nothing is created for a refused file");
    let o = history(&db, &["show"]);
    assert_eq!(o.status.code(), Some(2));
    assert_contains(&stderr(&o), "no history database");
    assert!(!db.exists());
    let o = history(&db, &["changes", "--metric", "watts"]);
    assert_eq!(o.status.code(), Some(2));
    assert_contains(&stderr(&o), "valid: time, energy, memory");
    // Another program's SQLite file is left alone.
    let foreign = dir.path().join("foreign.sqlite");
    let c = foreign_db(&foreign);
    let o = history(&foreign, &["show"]);
    assert_eq!(o.status.code(), Some(2));
    assert_contains(&stderr(&o), "not a wattbench history");
    assert_eq!(std::fs::read(&foreign).unwrap(), c);
}

/// Another program's SQLite database at `path`: a history whose application id (offset 68
/// of the SQLite header) is overwritten. Its bytes.
fn foreign_db(path: &Path) -> Vec<u8> {
    drop(wattbench_history::History::open(path).unwrap());
    let mut bytes = std::fs::read(path).unwrap();
    bytes[68..72].copy_from_slice(&0x1234_5678i32.to_be_bytes());
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn a_step_in_the_timings_is_a_change_point_with_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &[]);
    let ids = ok_ids(&doc);
    let files = series_files(
        dir.path(),
        &doc,
        16,
        |i| if i < 8 { 1.0 } else { 1.1 },
        |_, _| {},
    );
    // One run on another machine, three times slower: a series of its own.
    let mut other = doc.clone();
    other["environment"]["host"]["cpu_model"] = "another CPU".into();
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = series_files(
        &other_dir,
        &other,
        1,
        |_| 3.0,
        |_, d| {
            d["created_at"] = "2026-02-08T12:00:00+00:00".into();
        },
    );
    let mut args = vec!["add"];
    args.extend(paths(&files));
    args.push(other[0].to_str().unwrap());
    let o = history(&db, &args);
    assert!(o.status.success(), "{}", stderr(&o));

    let changes = history_json(&db, &["changes"]);
    assert_eq!(changes["runs"], 17);
    assert_eq!(changes["method"]["name"], "e-divisive means");
    let list = changes["changes"].as_array().unwrap();
    for id in &ids {
        let mine: Vec<&Value> = list
            .iter()
            .filter(|c| c["case_id"] == id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{id}: {mine:?}");
        let c = mine[0];
        assert_eq!(c["metric"], "time_s", "energy and memory did not move: {c}");
        assert_eq!(c["index"], 8);
        assert_eq!(c["git_commit"], "commit8");
        assert_eq!(c["previous_commit"], "commit7");
        assert_eq!(c["known_break"], false);
        assert!(c["p_value"].as_f64().unwrap() < 0.05, "{c}");
        let ratio = c["ratio"].as_f64().unwrap();
        assert!((1.05..1.15).contains(&ratio), "{c}");
        assert!(!c["hardware_fp"].as_str().unwrap().contains("another CPU"));
    }
    assert_eq!(list.len(), ids.len(), "{list:?}");

    // The show view of one case: 16 points on this machine, one on the other.
    let show = history_json(&db, &["show", "--case", &ids[0], "--metric", "time"]);
    let series = show["series"].as_array().unwrap();
    let mut counts: Vec<usize> = series
        .iter()
        .map(|s| s["points"].as_array().unwrap().len())
        .collect();
    counts.sort();
    assert_eq!(counts, vec![1, 16]);
    let o = history(&db, &["changes"]);
    assert_contains(&stdout(&o), "commit7..commit8");
}

#[test]
fn a_step_at_a_library_upgrade_is_a_known_break() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &["--op", "gemm"]);
    let files = series_files(
        dir.path(),
        &doc,
        12,
        |i| if i < 6 { 1.0 } else { 1.2 },
        |i, d| {
            d["environment"]["software"]["testlib"] = if i < 6 { "1.0" } else { "2.0" }.into();
        },
    );
    let mut args = vec!["add"];
    args.extend(paths(&files));
    assert!(history(&db, &args).status.success());
    let changes = history_json(&db, &["changes", "--metric", "time"]);
    let list = changes["changes"].as_array().unwrap();
    assert_eq!(list.len(), ok_ids(&doc).len(), "{list:?}");
    for c in list {
        assert_eq!(c["index"], 6);
        assert_eq!(c["known_break"], true);
        assert_eq!(
            c["software_change"],
            serde_json::json!(["testlib 1.0 → 2.0"])
        );
    }
    let o = history(&db, &["changes"]);
    // The break coincides with the change; it is not said to explain it.
    assert_contains(
        &stdout(&o),
        "coincides with a known break (testlib 1.0 → 2.0): look there first, though it may not \
         be the cause",
    );
}

#[test]
fn concurrent_adds_from_several_processes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &["--op", "gemm"]);
    let files = series_files(dir.path(), &doc, 8, |_| 1.0, |_, _| {});
    // Every process races on the fresh file: creation, migration and its own run.
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            command()
                .args(["history", "add", f.to_str().unwrap(), "--db"])
                .arg(&db)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let show = history_json(&db, &["show", "--metric", "time"]);
    assert_eq!(show["runs"], 8);
    for s in show["series"].as_array().unwrap() {
        assert_eq!(s["points"].as_array().unwrap().len(), 8);
    }
    let h = wattbench_history::History::open(&db).unwrap();
    assert_eq!(h.integrity_check().unwrap(), vec!["ok".to_string()]);
}

#[test]
fn reading_commands_never_write_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = reference_run(dir.path(), &["--op", "gemm"]);
    let run = dir.path().join("run.json");
    // A 0-byte file: said to be empty, and left empty, by every reading command.
    let zero = dir.path().join("zero.sqlite");
    std::fs::write(&zero, "").unwrap();
    for args in [&["show"][..], &["changes"]] {
        let o = history(&zero, args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_contains(&stderr(&o), "is empty, not a wattbench history");
    }
    let html = dir.path().join("r.html");
    let o = wattbench(&[
        "report",
        run.to_str().unwrap(),
        "--format",
        "html",
        "--history",
        zero.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_contains(&stderr(&o), "is empty");
    assert_eq!(std::fs::metadata(&zero).unwrap().len(), 0);
    // Another program's database in rollback-journal mode: refused by reading and writing
    // commands alike, and not switched to WAL (bytes 18 and 19 of the header) or changed.
    let foreign = dir.path().join("foreign.sqlite");
    let mut bytes = foreign_db(&foreign);
    bytes[18] = 1;
    bytes[19] = 1;
    std::fs::write(&foreign, &bytes).unwrap();
    for args in [&["show"][..], &["add", run.to_str().unwrap()]] {
        let o = history(&foreign, args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_contains(&stderr(&o), "not a wattbench history");
        assert_eq!(std::fs::read(&foreign).unwrap(), bytes, "{args:?}");
    }
    // The same, for a history: `show` reads it and leaves its bytes.
    let db = dir.path().join("h.sqlite");
    assert!(history(&db, &["add", run.to_str().unwrap()])
        .status
        .success());
    let before = std::fs::read(&db).unwrap();
    assert!(history(&db, &["show"]).status.success());
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_run_recorded_from_another_file_is_not_recorded_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &["--op", "gemm"]);
    let file = dir.path().join("run.json");
    assert!(history(&db, &["add", file.to_str().unwrap()])
        .status
        .success());
    // The same run, serialised again (other bytes, same run).
    let compact = dir.path().join("compact.json");
    std::fs::write(&compact, serde_json::to_string(&doc).unwrap()).unwrap();
    assert_ne!(
        std::fs::read(&compact).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let o = history(&db, &["add", compact.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(&stdout(&o), "already recorded as run 1");
    let show = history_json(&db, &["show"]);
    assert_eq!(show["runs"], 1);
    for s in show["series"].as_array().unwrap() {
        assert_eq!(s["points"].as_array().unwrap().len(), 1, "{s}");
    }
}

#[test]
fn an_energy_change_says_the_source_of_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &["--op", "gemm"]);
    // Every case's energy a CPU estimate (a TDP x CPU-time model), 30 % higher from run 8:
    // the change is found, and said to be the model's figures, not a measurement.
    let estimate = |j: f64| serde_json::to_value(wattbench_core::testing::estimated_energy(j, 7.0));
    let files = series_files(
        dir.path(),
        &doc,
        16,
        |_| 1.0,
        |i, d| {
            for c in d["cases"].as_array_mut().unwrap() {
                if c["status"] == "ok" {
                    c["energy"] = estimate(if i < 8 { 1.0 } else { 1.3 }).unwrap();
                }
            }
        },
    );
    let mut args = vec!["add"];
    args.extend(paths(&files));
    let o = history(&db, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let changes = history_json(&db, &["changes", "--metric", "energy"]);
    let list = changes["changes"].as_array().unwrap();
    assert_eq!(list.len(), ok_ids(&doc).len(), "{list:?}");
    for c in list {
        assert_eq!(
            (c["index"].as_u64(), &c["known_break"]),
            (Some(8), &Value::Bool(false))
        );
        assert_eq!(
            c["source"],
            "estimated [cpu-estimate (estimated); cpu-estimate: 7 W TDP over 2 threads]",
            "{c}"
        );
        assert_eq!(c["source_changed"], false, "{c}");
    }
    let o = history(&db, &["changes", "--metric", "energy"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_contains(
        &stdout(&o),
        "source: estimated [cpu-estimate (estimated); cpu-estimate: 7 W TDP over 2 threads] \
         (ESTIMATED: a model's figures",
    );
}

/// A case that fails verification in the last runs does not vanish: `show` names the run of
/// its last figure and the runs it failed in, with the reason; `changes` names it too.
#[test]
fn a_case_that_failed_in_the_latest_runs_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &["--op", "gemm"]);
    let id = ok_ids(&doc)[0].clone();
    let files = series_files(
        dir.path(),
        &doc,
        10,
        |_| 1.0,
        |i, d| {
            if i >= 7 {
                let c = (d["cases"].as_array_mut().unwrap().iter_mut())
                    .find(|c| c["id"] == id.as_str())
                    .unwrap();
                c["status"] = "failed".into();
                c["reason"] = "verification failed: relative L2 error 0.5".into();
            }
        },
    );
    let mut args = vec!["add"];
    args.extend(paths(&files));
    assert!(history(&db, &args).status.success());
    let o = history(&db, &["show", "--case", &id, "--metric", "time"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_contains(&out, "(run 7)");
    assert_contains(
        &out,
        "no figure in 3 of the machine's last 10 runs: failed in runs 8, 9, 10 (run 10: \
         verification failed: relative L2 error 0.5)",
    );
    let o = history(&db, &["changes"]);
    assert_contains(
        &stdout(&o),
        &format!(
            "{id} FAILED in the latest run of its machine (run 10): verification failed: \
             relative L2 error 0.5"
        ),
    );
    let j = history_json(&db, &["changes"]);
    let missing = j["not_in_latest_run"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{j}");
    assert_eq!(
        (&missing[0]["case_id"], &missing[0]["status"]),
        (&Value::from(id.as_str()), &Value::from("failed"))
    );
}

/// A debug build's run beside release runs is a known break, not a regression of a commit:
/// the profile is taken from the binary's path in the file's command line.
#[test]
fn a_debug_build_beside_release_runs_is_a_known_break() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, doc) = reference_run(dir.path(), &["--op", "gemm"]);
    let files = series_files(
        dir.path(),
        &doc,
        12,
        |i| if i < 6 { 1.0 } else { 30.0 },
        |i, d| {
            let profile = if i < 6 { "release" } else { "debug" };
            // As the binary records it (a file of an older wattbench: its path says it).
            d["environment"]["software"]["build-profile"] = profile.into();
            d["config"]["argv"][0] = format!("/src/wattbench/target/{profile}/wattbench").into();
        },
    );
    let mut args = vec!["add"];
    args.extend(paths(&files));
    assert!(history(&db, &args).status.success());
    let j = history_json(&db, &["changes", "--metric", "time"]);
    let list = j["changes"].as_array().unwrap();
    assert_eq!(list.len(), ok_ids(&doc).len(), "{j}");
    for c in list {
        assert_eq!(c["known_break"], true, "{c}");
        assert_eq!(
            c["software_change"],
            serde_json::json!(["build profile release → debug"])
        );
    }
}

/// A damaged database is refused once, untouched, with SQLite's error said once and what to
/// do (the review saw "database disk image is malformed" three times and no advice).
#[test]
fn a_damaged_database_is_said_once_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (_, _) = reference_run(dir.path(), &["--op", "gemm"]);
    let run = dir.path().join("run.json");
    assert!(history(&db, &["add", run.to_str().unwrap()])
        .status
        .success());
    // Cut to its first two pages: the schema says tables whose pages are gone.
    let bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 3 * 4096, "{}", bytes.len());
    std::fs::write(&db, &bytes[..2 * 4096]).unwrap();
    let o = history(&db, &["show"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("malformed").count(), 1, "{err}");
    assert_contains(&err, "restore it from a copy");
    assert_contains(&err, ".recover");
    assert_eq!(std::fs::read(&db).unwrap(), &bytes[..2 * 4096]);
}

/// `scripts/baseline.sh record` (run in a copy of the scripts beside a stand-in binary and a
/// no-op `make build`): a RUNS that is not a whole number of at least 2 is refused before
/// anything runs, and a run that leaves no result file leaves the committed baseline as it
/// was. RUNS=0 or RUNS=three once replaced it with an empty folder and exited 0.
#[test]
fn baseline_record_refuses_a_bad_runs_and_keeps_the_baseline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    for f in ["baseline.sh", "lib.sh"] {
        std::fs::copy(root.join("scripts").join(f), repo.join("scripts").join(f)).unwrap();
    }
    std::fs::write(repo.join("Makefile"), "build:\n\t@true\n").unwrap();
    let bin = repo.join("target/release/wattbench");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    // `info` gives the fingerprint; `run` writes `{}` to its --output unless told not to.
    std::fs::write(
        &bin,
        "#!/bin/sh\ncase $1 in\n info) echo '{\"hardware_fingerprint\":\"cpu=Fake CPU x2\"}';;\n \
         run) out=; while [ $# -gt 0 ]; do [ \"$1\" = --output ] && out=$2; shift; done\n \
         [ -n \"$NO_FILE\" ] || echo '{}' > \"$out\";;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let baseline = repo.join("results/baselines/cpu-fake-cpu-x2");
    std::fs::create_dir_all(&baseline).unwrap();
    for i in 1..=3 {
        std::fs::write(baseline.join(format!("run-{i}.json")), "old").unwrap();
    }
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&baseline)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let record = |runs: Option<&str>, no_file: bool| {
        let mut c = std::process::Command::new("bash");
        c.arg(repo.join("scripts/baseline.sh"))
            .arg("record")
            .env_remove("RUNS")
            .env_remove("NO_FILE");
        if let Some(r) = runs {
            c.env("RUNS", r);
        }
        if no_file {
            c.env("NO_FILE", "1");
        }
        c.output().unwrap()
    };
    let old = vec!["run-1.json", "run-2.json", "run-3.json"];
    for runs in ["0", "three", "1", "-2", "2.5", " 3"] {
        let o = record(Some(runs), false);
        assert_eq!(o.status.code(), Some(2), "RUNS={runs}: {}", stderr(&o));
        assert_contains(&stderr(&o), "give a whole number of runs, at least 2");
        assert_eq!(listing(), old, "RUNS={runs}");
        assert_eq!(
            std::fs::read_to_string(baseline.join("run-1.json")).unwrap(),
            "old"
        );
    }
    // Runs that exit 0 without their files: refused, the baseline kept.
    let o = record(Some("2"), true);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_contains(&stderr(&o), "only 0 of 2 result files were written");
    assert_eq!(listing(), old);
    // Two good runs replace it whole; no RUNS is three.
    let o = record(Some("2"), false);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(), ["run-1.json", "run-2.json"]);
    assert_eq!(
        std::fs::read_to_string(baseline.join("run-1.json")).unwrap(),
        "{}\n"
    );
    let o = record(None, false);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(), old);
}
