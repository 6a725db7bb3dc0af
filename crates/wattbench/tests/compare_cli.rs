//! `wattbench compare` and `wattbench export` end to end, on real result files from a run of
//! the tiny suite (and copies edited with serde_json to make known changes).
mod common;

use common::{assert_contains, command, read_json, stderr, stdout, tiny_suite, wattbench};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::OnceLock;
use std::time::Duration;

/// One real run shared by every test of this file: the tiny suite on the CPU backends with
/// enough samples per case for the rank test to be able to conclude. Made afresh by every
/// run of this file, in one place under the target folder (replaced atomically, so a
/// concurrent run of the file reads a complete one).
fn base_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare_cli");
        std::fs::create_dir_all(&dir).unwrap();
        let suite = tiny_suite(&dir);
        let out = dir.join("base.json");
        let o = wattbench(&[
            "run",
            "--suite",
            &suite,
            "--backend",
            "reference,candle",
            "--output",
            out.to_str().unwrap(),
            "--min-time",
            "0",
            "--min-samples",
            "50",
            "--warmup",
            "0",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    })
}

fn write(dir: &Path, name: &str, doc: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    p.to_string_lossy().into_owned()
}

fn base_path() -> String {
    base_run().to_string_lossy().into_owned()
}

/// `compare` with `--format json`; its exit code and document.
fn compare_json(base: &str, new: &str, extra: &[&str]) -> (Output, Option<Value>) {
    let mut args = vec!["compare", base, new, "--format", "json"];
    args.extend(extra);
    let o = wattbench(&args);
    let doc = serde_json::from_slice(&o.stdout).ok();
    (o, doc)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn time_rows(doc: &Value) -> Vec<&Value> {
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "time")
        .collect()
}

/// The base run with every time sample (and the statistics made from them) times `k`.
fn scaled(k: f64) -> Value {
    let mut doc = read_json(base_run());
    for c in doc["cases"].as_array_mut().unwrap() {
        let t = &mut c["time"];
        if t.is_null() {
            continue;
        }
        for key in ["median_s", "mean_s", "min_s", "max_s", "p95_s", "mad_s"] {
            t[key] = (t[key].as_f64().unwrap() * k).into();
        }
        for key in ["samples_s", "ci95_median_s"] {
            for v in t[key].as_array_mut().unwrap() {
                *v = (v.as_f64().unwrap() * k).into();
            }
        }
    }
    doc
}

/// The same samples on both sides (the run again under another start time: the same file, or
/// a copy, as BASE and NEW is refused as a comparison with itself).
#[test]
fn a_result_against_itself_is_never_slower() {
    let dir = tempfile::tempdir().unwrap();
    let b = base_path();
    let mut again = read_json(base_run());
    again["created_at"] = "2030-01-01T00:00:00+00:00".into();
    let again = write(dir.path(), "again.json", &again);
    let (o, doc) = compare_json(&b, &again, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = doc.unwrap();
    assert_eq!(doc["summary"]["slower"], 0);
    assert_eq!(doc["summary"]["faster"], 0);
    let rows = time_rows(&doc);
    assert_eq!(rows.len(), 6, "3 shapes x 2 backends");
    for r in rows {
        assert_eq!(r["ratio"], 1.0, "{r}");
        assert_eq!(r["p_raw"], 1.0, "identical samples: {r}");
        let ci = r["ci"].as_array().unwrap();
        assert!(
            ci[0].as_f64() <= Some(1.0) && ci[1].as_f64() >= Some(1.0),
            "{r}"
        );
        assert!(r["verdict"] == "same" || r["verdict"] == "ambiguous", "{r}");
    }
    // The table says the same in words.
    let o = wattbench(&["compare", &b, &again]);
    assert_eq!(code(&o), 0);
    let text = stdout(&o);
    assert_contains(&text, "summary: 0 slower, 0 faster");
    assert_contains(&text, "rule: ");
}

/// The recorded environment variables (thread counts, GPUs, TF32) differ between the sides:
/// a note says so; a file that predates them (no `variables`) raises no such note.
#[test]
fn a_different_environment_is_noted_and_an_unknown_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let base = read_json(base_run());
    // wattbench's defaults are recorded, whatever the test's own environment.
    let vars = &base["environment"]["variables"];
    assert_eq!(vars["NVIDIA_TF32_OVERRIDE"], "0", "{vars}");
    assert!(vars["CUDA_DEVICE_ORDER"].is_string(), "{vars}");
    let mut other = base.clone();
    other["created_at"] = "2030-01-01T00:00:00+00:00".into();
    other["environment"]["variables"]["OMP_NUM_THREADS"] = "1".into();
    let other = write(dir.path(), "other.json", &other);
    let (o, doc) = compare_json(&base_path(), &other, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let notes = doc.unwrap()["notes"].to_string();
    assert_contains(&notes, "the environment differs");
    assert_contains(&notes, "OMP_NUM_THREADS=1");
    let mut old = base.clone();
    old["environment"]
        .as_object_mut()
        .unwrap()
        .remove("variables");
    let old = write(dir.path(), "old.json", &old);
    let (o, doc) = compare_json(&old, &other, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        !doc.unwrap()["notes"]
            .to_string()
            .contains("environment differs"),
        "a file without variables says nothing of them"
    );
}

#[test]
fn every_sample_twenty_percent_slower_is_slower_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let new = write(dir.path(), "new.json", &scaled(1.2));
    let (o, doc) = compare_json(&base_path(), &new, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let doc = doc.expect("the document is still written");
    assert!(doc["summary"]["slower"].as_u64().unwrap() >= 1, "{doc}");
    for r in time_rows(&doc) {
        assert!((r["ratio"].as_f64().unwrap() - 1.2).abs() < 1e-9, "{r}");
        // Slower where the samples allow the conclusion, never anything contradicting it.
        assert!(
            r["verdict"] == "slower" || r["verdict"] == "ambiguous",
            "{r}"
        );
        if r["verdict"] == "slower" {
            assert!(r["ci"][0].as_f64().unwrap() > 1.05);
            assert!(r["p_value"].as_f64().unwrap() < 0.05);
        }
    }
    // --no-fail reports the same and exits 0; so does the reverse comparison (faster).
    let (o, doc2) = compare_json(&base_path(), &new, &["--no-fail"]);
    assert_eq!(code(&o), 0);
    assert_eq!(doc2.unwrap()["summary"], doc["summary"]);
    let (o, rev) = compare_json(&new, &base_path(), &[]);
    assert_eq!(code(&o), 0);
    let rev = rev.unwrap();
    assert_eq!(rev["summary"]["slower"], 0);
    assert!(rev["summary"]["faster"].as_u64().unwrap() >= 1, "{rev}");
    // A threshold above the change turns every slower into same or ambiguous.
    let (o, doc) = compare_json(&base_path(), &new, &["--threshold-time", "25"]);
    assert_eq!(code(&o), 0, "{doc:?}");
}

#[test]
fn different_hardware_is_refused_with_exit_2_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = read_json(base_run());
    doc["environment"]["host"]["cpu_model"] = "Some Other CPU @ 1.0GHz".into();
    let other = write(dir.path(), "other.json", &doc);
    let (o, _) = compare_json(&base_path(), &other, &[]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("different hardware") && err.contains("--allow-different-hardware"),
        "{err}"
    );
    let (o, doc) = compare_json(&base_path(), &other, &["--allow-different-hardware"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = doc.unwrap();
    // One run against one: its verdicts rest on within-run noise, and the output says so.
    assert!(doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("one run on a side")));
    assert!(doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("different hardware")));
    assert_ne!(doc["base"]["hardware"], doc["new"]["hardware"]);
}

#[test]
fn unmatched_skipped_and_failed_cases_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = read_json(base_run());
    let cases = doc["cases"].as_array_mut().unwrap();
    let gone = cases.remove(0)["id"].as_str().unwrap().to_string();
    let renamed_from = cases[0]["id"].as_str().unwrap().to_string();
    cases[0]["id"] = "gemm/infer/renamed/f32/candle/cpu".into();
    let skipped = cases[1]["id"].as_str().unwrap().to_string();
    cases[1]["status"] = "skipped".into();
    cases[1]["reason"] = "not enough memory".into();
    cases[1]["time"] = Value::Null;
    let new = write(dir.path(), "new.json", &doc);
    let (o, doc) = compare_json(&base_path(), &new, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = doc.unwrap();
    let list = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        list(&doc["unmatched"]["base_only"]),
        BTreeSet::from([gone.clone(), renamed_from.clone()])
    );
    assert_eq!(
        list(&doc["unmatched"]["new_only"]),
        BTreeSet::from(["gemm/infer/renamed/f32/candle/cpu".to_string()])
    );
    let nc = doc["not_compared"].as_array().unwrap();
    assert!(
        nc.iter().any(|n| n["id"] == skipped.as_str()
            && n["metric"].is_null()
            && n["reason"] == "new skipped: not enough memory"),
        "{nc:?}"
    );
    // No row for any of them.
    for r in doc["cases"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        assert!(id != gone && id != renamed_from && id != skipped, "{id}");
    }
    // The table lists them too.
    let o = wattbench(&["compare", &base_path(), &new]);
    let text = stdout(&o);
    // Lost and skipped cases alone do not fail `compare` (see below).
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("only in base (2)") && text.contains(&gone),
        "{text}"
    );
    assert_contains(&text, "only in new (1)");
    assert_contains(&text, "not compared, case: new skipped: not enough memory");
    // Skipped and lost cases are regressions too, reported; they fail only `ab`'s gate (two
    // runs of the same options), since NEW may be another suite.
    assert_contains(&text, "skipped on new, ok on base (1)");
    assert_contains(&text, "absent from new, ok on base (2)");
}

/// A case that verified on BASE and fails on NEW fails the gate (exit 1), whatever the times.
#[test]
fn a_case_failed_on_new_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = read_json(base_run());
    let c = &mut doc["cases"].as_array_mut().unwrap()[0];
    let id = c["id"].as_str().unwrap().to_string();
    c["status"] = "failed".into();
    c["reason"] = "relative L2 error 0.31 above the tolerance 1e-4".into();
    let new = write(dir.path(), "new.json", &doc);
    let (o, doc) = compare_json(&base_path(), &new, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let doc = doc.unwrap();
    assert_eq!(doc["summary"]["failed"], 1);
    assert_eq!(doc["regressed"][0]["id"], id.as_str());
    assert_eq!(doc["regressed"][0]["how"], "failed");
    let o = wattbench(&["compare", &base_path(), &new]);
    assert_eq!(code(&o), 1);
    let text = stdout(&o);
    assert_contains(&text, "1 FAILED on new (ok on base)");
    assert_contains(&text, "relative L2 error 0.31");
    let o = wattbench(&["compare", &base_path(), &new, "--no-fail"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// A case NEW failed in every run fails the gate even when one BASE run failed it too: a
/// flaky base excuses a failure only while NEW still passes the case in some run.
#[test]
fn a_case_new_failed_in_every_run_exits_1_though_base_failed_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = (dir.path().join("base"), dir.path().join("new"));
    std::fs::create_dir(&base).unwrap();
    std::fs::create_dir(&new).unwrap();
    let run = |day: u32, fail: bool| {
        let mut doc = read_json(base_run());
        doc["created_at"] = format!("2030-01-0{day}T00:00:00+00:00").into();
        if fail {
            let c = &mut doc["cases"].as_array_mut().unwrap()[0];
            c["status"] = "failed".into();
            c["reason"] = "relative L2 error 0.31 above the tolerance 1e-4".into();
        }
        doc
    };
    // BASE: ok in two runs of three; NEW: failed in both of its runs.
    for (day, fail) in [(1, false), (2, true), (3, false)] {
        write(&base, &format!("{day}.json"), &run(day, fail));
    }
    for day in [4, 5] {
        write(&new, &format!("{day}.json"), &run(day, true));
    }
    let (o, doc) = compare_json(base.to_str().unwrap(), new.to_str().unwrap(), &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let doc = doc.unwrap();
    assert_eq!(doc["summary"]["failed"], 1, "{}", doc["regressed"]);
    assert_eq!(doc["regressed"][0]["how"], "failed");
}

#[test]
fn folders_are_read_and_their_files_pooled() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    // Two runs (other start times) with the samples of NEW: copies would be refused.
    let mut doc = read_json(base_run());
    doc["created_at"] = "2030-01-01T00:00:00+00:00".into();
    write(&runs, "1.json", &doc);
    doc["created_at"] = "2030-01-02T00:00:00+00:00".into();
    write(&runs, "2.json", &doc);
    std::fs::write(runs.join("notes.txt"), "not a result").unwrap();
    let (o, out) = compare_json(runs.to_str().unwrap(), &base_path(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = out.unwrap();
    assert_eq!(out["base"]["files"].as_array().unwrap().len(), 2);
    for r in time_rows(&out) {
        let n = r["n"].as_array().unwrap();
        assert_eq!(n[0].as_u64().unwrap(), 2 * n[1].as_u64().unwrap(), "{r}");
    }
    let notes: Vec<&str> = out["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(notes.iter().any(|n| n.contains("2 result files pooled")));
    // Two runs against one: counted per case, new has one run: its verdicts rest on
    // within-run noise; and the pooled test is qualified.
    assert!(
        notes
            .iter()
            .any(|n| n.contains("one run on a side for every case")),
        "{notes:?}"
    );
    for r in time_rows(&out) {
        assert_eq!(r["runs"], serde_json::json!([2, 1]), "{r}");
    }
    assert!(
        notes.iter().any(|n| n.contains("not independent")),
        "{notes:?}"
    );
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let b = base_path();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let missing = dir.path().join("missing.json");
    let cases: [(Vec<&str>, &str); 6] = [
        (vec![&b, missing.to_str().unwrap()], "cannot read"),
        (
            vec![&b, junk.to_str().unwrap()],
            "not a wattbench result file",
        ),
        (vec![&b, empty.to_str().unwrap()], "holds no result files"),
        (vec![&b, &b, "--threshold", "-5"], "percentage of 0 or more"),
        (vec![&b, &b, "--alpha", "1.5"], "alpha must lie"),
        (
            vec![&b, &b, "--output", dir.path().to_str().unwrap()],
            "is a directory",
        ),
    ];
    for (args, want) in cases {
        let o = wattbench(&[&["compare"][..], &args].concat());
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // Nothing in common: refused, not an empty success.
    let mut doc = read_json(base_run());
    for c in doc["cases"].as_array_mut().unwrap() {
        c["id"] = format!("other/{}", c["id"].as_str().unwrap()).into();
    }
    let other = write(dir.path(), "other.json", &doc);
    let o = wattbench(&["compare", &b, &other]);
    assert_eq!(code(&o), 2);
    assert_contains(&stderr(&o), "no case in common");
}

/// Keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(k: &[&'a str]) -> BTreeSet<&'a str> {
    k.iter().copied().collect()
}

#[test]
fn json_output_has_exactly_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let new = write(dir.path(), "new.json", &scaled(1.2));
    let (o, doc) = compare_json(&base_path(), &new, &["--no-fail"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = doc.unwrap();
    assert_eq!(
        keys(&doc),
        set(&[
            "schema_version",
            "base",
            "new",
            "threshold",
            "alpha",
            "confidence",
            "resamples",
            "seed",
            "cases",
            "unmatched",
            "not_compared",
            "regressed",
            "notes",
            "summary"
        ])
    );
    assert_eq!(doc["schema_version"], 1);
    for side in ["base", "new"] {
        assert_eq!(
            keys(&doc[side]),
            set(&[
                "files",
                "hardware",
                "software",
                "git_commits",
                "variables",
                "build_profiles"
            ])
        );
    }
    assert_eq!(keys(&doc["threshold"]), set(&["time", "energy", "memory"]));
    assert_eq!(doc["threshold"]["time"], 0.05);
    assert_eq!(keys(&doc["unmatched"]), set(&["base_only", "new_only"]));
    assert_eq!(
        keys(&doc["summary"]),
        set(&["faster", "slower", "same", "ambiguous", "failed", "lost"])
    );
    let rows = doc["cases"].as_array().unwrap();
    let total: u64 = ["faster", "slower", "same", "ambiguous"]
        .iter()
        .map(|k| doc["summary"][k].as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, rows.len());
    for r in rows {
        let metric = r["metric"].as_str().unwrap();
        let mut want = vec![
            "id", "metric", "verdict", "ratio", "ci", "p_value", "p_raw", "base", "new", "unit",
            "n", "runs", "method",
        ];
        if metric == "energy" {
            want.push("source");
        }
        assert_eq!(keys(r), set(&want));
        assert!(r["id"].is_string());
        assert!(
            ["time", "energy", "host_memory", "device_memory"].contains(&metric),
            "{r}"
        );
        assert!(["faster", "slower", "same", "ambiguous"].contains(&r["verdict"].as_str().unwrap()));
        assert!(r["ratio"].as_f64().unwrap() > 0.0);
        match &r["ci"] {
            Value::Null => assert_ne!(r["method"], "bootstrap+mann-whitney", "{r}"),
            Value::Array(ci) => {
                let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
                assert!(ci.len() == 2 && lo <= hi, "{r}");
            }
            other => panic!("ci is {other}"),
        }
        let method = r["method"].as_str().unwrap();
        assert!([
            "bootstrap+mann-whitney",
            "welch-log",
            "meter-interval",
            "threshold"
        ]
        .contains(&method));
        if ["bootstrap+mann-whitney", "welch-log"].contains(&method) {
            let (p, raw) = (r["p_value"].as_f64().unwrap(), r["p_raw"].as_f64().unwrap());
            assert!((0.0..=1.0).contains(&p) && raw <= p, "adjusted ≥ raw: {r}");
        } else {
            assert!(r["p_value"].is_null() && r["p_raw"].is_null(), "{r}");
        }
        let unit = r["unit"].as_str().unwrap();
        assert_eq!(
            unit,
            match metric {
                "time" => "s",
                "energy" => "J",
                _ => "B",
            }
        );
        assert!(r["base"].as_f64().unwrap() > 0.0 && r["new"].as_f64().unwrap() > 0.0);
        assert_eq!(r["n"].as_array().unwrap().len(), 2);
    }
    // Every key is described in results/README.md's "compare output" section.
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../results/README.md"
    ))
    .unwrap();
    let section = readme
        .split_once("## compare output")
        .expect("a compare output section")
        .1;
    fn all_keys<'a>(v: &'a Value, out: &mut BTreeSet<&'a str>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.insert(k);
                all_keys(v, out);
            }),
            Value::Array(a) => a.iter().for_each(|v| all_keys(v, out)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    all_keys(&doc, &mut found);
    let missing: Vec<_> = found
        .iter()
        .filter(|k| !section.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}

#[test]
fn markdown_goes_to_a_file_with_the_summary_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let new = write(dir.path(), "new.json", &scaled(1.2));
    let md = dir.path().join("summary.md");
    let o = wattbench(&[
        "compare",
        &base_path(),
        &new,
        "--format",
        "markdown",
        "--output",
        md.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("slower") && out.contains("summary.md"),
        "{out}"
    );
    // The summary line names what was slower: only time changed here.
    assert_contains(&out, " slower (time), ");
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.starts_with("## wattbench compare\n"), "{text}");
    assert!(text.contains("| case"), "{text}");
    assert!(text.contains("slower**"), "bold regressions: {text}");
    assert!(text.contains("Benjamini-Hochberg"), "the rule: {text}");
}

/// RFC 4180 records: fields split on commas outside double quotes, `""` inside quotes is a
/// quote, records end with CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\n') => panic!("LF without CR"),
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "unterminated"
    );
    records
}

fn export(input: &str, format: &str) -> String {
    let o = wattbench(&["export", input, "--format", format]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn exports_follow_their_documented_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = read_json(base_run());
    // A skipped case whose reason needs quoting in CSV.
    let reason = "needs \"cuda\", a GPU\nand a driver";
    let skipped = {
        let c = &mut doc["cases"].as_array_mut().unwrap()[0];
        c["status"] = "skipped".into();
        c["reason"] = reason.into();
        c["time"] = Value::Null;
        c["energy"] = Value::Null;
        c["id"].as_str().unwrap().to_string()
    };
    let input = write(dir.path(), "r.json", &doc);
    let ok_ids: BTreeSet<String> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "ok")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ok_ids.len(), 5);

    // Bencher Metric Format: {name: {slug: {value, lower_value?, upper_value?}}}.
    let bmf: Value = serde_json::from_str(&export(&input, "bmf")).unwrap();
    let names: BTreeSet<String> = bmf.as_object().unwrap().keys().cloned().collect();
    assert_eq!(names, ok_ids, "ok cases only");
    for (name, measures) in bmf.as_object().unwrap() {
        let m = measures.as_object().unwrap();
        assert!(m.contains_key("latency"), "{name}");
        for (slug, metric) in m {
            assert!(
                !slug.is_empty()
                    && slug.len() <= 64
                    && slug.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{slug}"
            );
            let k = keys(metric);
            assert!(
                k.contains("value") && k.is_subset(&set(&["value", "lower_value", "upper_value"])),
                "{metric}"
            );
            let v = metric["value"].as_f64().unwrap();
            if let (Some(lo), Some(hi)) = (
                metric["lower_value"].as_f64(),
                metric["upper_value"].as_f64(),
            ) {
                assert!(lo <= v && v <= hi, "{name} {slug}: {metric}");
            }
        }
        // Latency is in nanoseconds: the median in seconds × 1e9.
        let case = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == name.as_str())
            .unwrap();
        let want = case["time"]["median_s"].as_f64().unwrap() * 1e9;
        assert!((m["latency"]["value"].as_f64().unwrap() - want).abs() <= 1e-9 * want);
        // Energy lands in a measure named after its sources: an estimate never joins a
        // series of counter readings.
        if let Some(src) = case["energy"]["total_sources"].as_array() {
            let src: Vec<&str> = src.iter().map(|s| s.as_str().unwrap()).collect();
            let slug = if src == ["measured"] {
                "energy".to_string()
            } else {
                format!("energy-{}", src.join("-"))
            };
            assert!(m.contains_key(&slug), "{name}: {slug} in {m:?}");
        }
    }

    // github-action-benchmark customSmallerIsBetter: [{name, unit, value, range?, extra?}].
    let gh: Value = serde_json::from_str(&export(&input, "github")).unwrap();
    let entries = gh.as_array().unwrap();
    let mut names = BTreeSet::new();
    for e in entries {
        let k = keys(e);
        assert!(set(&["name", "unit", "value"]).is_subset(&k), "{e}");
        assert!(
            k.is_subset(&set(&["name", "unit", "value", "range", "extra"])),
            "{e}"
        );
        assert!(e["name"].is_string() && e["unit"].is_string() && e["value"].is_number());
        for opt in ["range", "extra"] {
            assert!(e[opt].is_null() || e[opt].is_string(), "{e}");
        }
        assert!(
            names.insert(e["name"].as_str().unwrap().to_string()),
            "unique names"
        );
    }
    for id in &ok_ids {
        assert!(names.contains(&format!("{id} (time)")), "{id}");
    }
    assert!(!names.iter().any(|n| n.starts_with(&skipped)));

    // CSV: a header and one record per case, every record as wide as the header.
    let csv = export(&input, "csv");
    let records = parse_csv(&csv);
    let header = &records[0];
    assert_eq!(header[0], "id");
    assert_eq!(header.len(), 20);
    assert_eq!(header[18], "energy_basis", "new columns go last");
    assert_eq!(header[19], "energy_missing", "new columns go last");
    assert_eq!(records.len(), 1 + 6);
    for r in &records[1..] {
        assert_eq!(r.len(), header.len(), "{r:?}");
    }
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let skip_row = records.iter().find(|r| r[0] == skipped).unwrap();
    assert_eq!(skip_row[col("status")], "skipped");
    assert_eq!(skip_row[col("reason")], reason, "quoted and read back");
    assert_eq!(skip_row[col("median_s")], "", "unknown is empty, never 0");
    for r in records.iter().filter(|r| r[col("status")] == "ok") {
        let median: f64 = r[col("median_s")].parse().unwrap();
        assert!(median > 0.0);
        let samples: u64 = r[col("samples")].parse().unwrap();
        assert!(samples >= 50);
        // An energy figure names its basis: its sources first (`estimated [...]` here).
        if !r[col("energy_j")].is_empty() {
            let basis = &r[col("energy_basis")];
            let sources = basis.split(' ').next().unwrap();
            for s in r[col("energy_sources")].split(';') {
                assert!(sources.split('+').any(|b| b == s), "{r:?}");
            }
            // A whole total here: no domain is missing, and the basis says no PARTIAL.
            assert_eq!(r[col("energy_missing")], "", "{r:?}");
            assert!(!basis.contains("PARTIAL"), "{r:?}");
        }
    }

    // --output writes the same bytes; bad input exits 2.
    let out = dir.path().join("bmf.json");
    let o = wattbench(&[
        "export",
        &input,
        "--format",
        "bmf",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        export(&input, "bmf")
    );
    let o = wattbench(&[
        "export",
        dir.path().join("none.json").to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(code(&o), 2);
    let o = wattbench(&["export", &input, "--format", "xml"]);
    assert_eq!(code(&o), 2);
}

/// `ab`: alternating rounds of two builds (here the same binary twice), pooled per side and
/// compared; every run's file kept; bad input refused before the first round.
#[test]
fn ab_alternates_rounds_keeps_every_run_and_compares_the_pools() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("s.toml");
    std::fs::write(&suite, "gemm = [ { m = 32, n = 32, k = 32 } ]\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_wattbench");
    let ab_dir = dir.path().join("ab");
    let run = [
        "--",
        "--suite",
        suite.to_str().unwrap(),
        "--backend",
        "reference",
        "--min-time",
        "0",
        "--min-samples",
        "5",
        "--warmup",
        "0",
    ];
    let mut args = vec![
        "ab",
        "--a",
        bin,
        "--b",
        bin,
        "--rounds",
        "2",
        "--dir",
        ab_dir.to_str().unwrap(),
        "--format",
        "json",
        // A/A: the pooled interval must stay inside a wide band on any machine.
        "--threshold",
        "100",
    ];
    args.extend(run);
    let o = wattbench(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    for side in ["a", "b"] {
        for round in ["round-01.json", "round-02.json"] {
            assert!(ab_dir.join(side).join(round).exists(), "{side}/{round}");
        }
        assert_eq!(
            doc[if side == "a" { "base" } else { "new" }]["files"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    let order: Vec<&str> = stderr(&o)
        .lines()
        .filter_map(|l| l.strip_prefix("round "))
        .map(|l| if l.contains(": A (") { "A" } else { "B" })
        .collect();
    assert_eq!(order, ["A", "B", "B", "A"], "{}", stderr(&o));
    assert_eq!(doc["summary"]["slower"], 0);
    // The same --dir again: refused, nothing run.
    let o = wattbench(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_contains(&stderr(&o), "already holds result files");
    // One round, an --output among the run options, a missing binary: refused.
    let x = dir.path().join("x");
    // A wrapper script (`.gpu-bundle/wb`): its copy would lose the files beside it.
    let script = dir.path().join("wb");
    std::fs::write(&script, "#!/bin/sh\nexec wattbench \"$@\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // An odd number of rounds would give A the first place once more than B.
    for (bad, needle) in [
        (
            vec!["--a", bin, "--rounds", "1"],
            "--rounds must be an even number, 2 or more",
        ),
        (
            vec!["--a", bin, "--rounds", "3"],
            "--rounds must be an even number, 2 or more",
        ),
        (
            vec!["--a", "/nonexistent/wattbench"],
            "not an executable file",
        ),
        (
            vec!["--a", script.to_str().unwrap()],
            "a script, not a built binary",
        ),
    ] {
        let mut a = vec!["ab", "--b", bin];
        a.extend(bad);
        a.extend(["--dir", x.to_str().unwrap()]);
        a.extend(run);
        let o = wattbench(&a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_contains(&stderr(&o), needle);
    }
    for given in [
        &["--output", "x.json"][..],
        &["-o", "x.json"],
        &["-ox.json"],
        &["--json"],
    ] {
        let mut a = vec!["ab", "--a", bin, "--b", bin, "--"];
        a.extend(given);
        let o = wattbench(&a);
        assert_eq!(o.status.code(), Some(2), "{given:?}: {}", stderr(&o));
        assert_contains(&stderr(&o), "set by `ab`");
    }
    // --record would interleave both builds in one history series.
    for given in ["--record", "--record=h.sqlite"] {
        let mut a = vec!["ab", "--a", bin, "--b", bin, "--dir", x.to_str().unwrap()];
        a.extend(run);
        a.push(given);
        let o = wattbench(&a);
        assert_eq!(o.status.code(), Some(2), "{given}: {}", stderr(&o));
        assert_contains(&stderr(&o), "would record both builds' runs in one history");
        assert!(!x.exists(), "a refused ab made {}", x.display());
    }
    // The copies of the builds are gone once the A/B is done.
    let left: Vec<_> = std::fs::read_dir(&ab_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    // -o /dev/stdout: the summary line would mix with the document; refused before round 1.
    let mut a = vec!["ab", "--a", bin, "--b", bin, "--dir", x.to_str().unwrap()];
    a.extend(["-o", "/dev/stdout"]);
    a.extend(run);
    let o = wattbench(&a);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_contains(&stderr(&o), "would mix with the document");
    assert!(!stderr(&o).contains("round 1"), "{}", stderr(&o));
    // An --output inside a run folder, or that is one, or the run folder itself, none of
    // them made yet: refused before the first round, and nothing is left behind (no run
    // folders, no output folder).
    let fresh = dir.path().join("fresh");
    for (output, needle) in [
        (fresh.join("a/cmp.json"), "inside the run folders"),
        (fresh.join("b/sub/cmp.json"), "inside the run folders"),
        (fresh.join("a"), "inside the run folders"),
        (fresh.join("b"), "inside the run folders"),
        (fresh.clone(), "is the run folder"),
    ] {
        let mut a = vec![
            "ab",
            "--a",
            bin,
            "--b",
            bin,
            "--dir",
            fresh.to_str().unwrap(),
        ];
        a.extend(["-o", output.to_str().unwrap()]);
        a.extend(run);
        let o = wattbench(&a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_contains(&stderr(&o), needle);
        assert!(!stderr(&o).contains("round 1"), "{}", stderr(&o));
        assert!(!fresh.exists(), "a refused ab made {}", fresh.display());
    }
}

/// `ab` with the tiny one-case suite of `dir` on the reference backend, quickly: its arguments
/// (binaries `a` and `b`, `rounds`, runs into `ab_dir`), then `extra` run options.
fn ab_args(
    dir: &Path,
    a: &str,
    b: &str,
    rounds: &str,
    ab_dir: &Path,
    extra: &[&str],
) -> Vec<String> {
    let suite = dir.join("s.toml");
    std::fs::write(&suite, "gemm = [ { m = 32, n = 32, k = 32 } ]\n").unwrap();
    let mut args: Vec<String> = [
        "ab",
        "--a",
        a,
        "--b",
        b,
        "--rounds",
        rounds,
        "--dir",
        ab_dir.to_str().unwrap(),
        "--threshold",
        "100",
        "--",
        "--suite",
        suite.to_str().unwrap(),
        "--backend",
        "reference",
        "--min-time",
        "0",
        "--min-samples",
        "5",
        "--warmup",
        "0",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Starts `wattbench ARGS` with its standard error read line by line: the child, the lines as
/// they come, and the thread that collects them all.
fn start_reading(args: &[String]) -> (Child, Receiver<String>, std::thread::JoinHandle<String>) {
    let mut child = command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (child, rx, reader)
}

/// Waits for a line of `lines` that starts with `prefix` (a safety limit of minutes, so that a
/// line that never comes fails the test instead of hanging it).
fn wait_for_line(lines: &Receiver<String>, prefix: &str) {
    loop {
        match lines.recv_timeout(Duration::from_secs(300)) {
            Ok(l) if l.starts_with(prefix) => return,
            Ok(_) => {}
            Err(e) => panic!("no line starting with {prefix:?} came: {e}"),
        }
    }
}

/// A build replaced during the A/B (another session rebuilt it) does not change its side:
/// every run runs the copy `ab` made before round 1.
#[test]
fn ab_runs_copies_of_the_builds_made_before_the_first_round() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("build-b/wattbench");
    std::fs::create_dir(b.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wattbench"), &b).unwrap();
    let ab_dir = dir.path().join("ab");
    let args = ab_args(
        dir.path(),
        env!("CARGO_BIN_EXE_wattbench"),
        b.to_str().unwrap(),
        "2",
        &ab_dir,
        &[],
    );
    let (mut child, lines, reader) = start_reading(&args);
    // Round 1 has begun, so the copies are made: B's path now holds another "build", one
    // that is no `wattbench` (were it run, the A/B would stop with exit 2).
    wait_for_line(&lines, "round 1/2: A");
    let other = dir.path().join("build-b/other");
    std::fs::write(&other, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&other, &b).unwrap();
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_contains(&err, "changed during the A/B");
    for side in ["a", "b"] {
        for round in ["round-01.json", "round-02.json"] {
            assert!(
                ab_dir.join(side).join(round).is_file(),
                "{side}/{round}: {err}"
            );
        }
    }
}

/// The processes whose command line names `needle`, but `except`.
fn processes_naming(needle: &str, except: u32) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|c| c.is_ascii_digit()) || pid == except.to_string() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
    }
    found
}

/// Waits until no process names `needle` on its command line (a safety limit of minutes: a run
/// left running would write into the run folder after `ab` ended).
fn wait_until_no_process_names(needle: &str) {
    let t0 = std::time::Instant::now();
    loop {
        let left = processes_naming(needle, std::process::id());
        if left.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "still running after ab ended: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ab` of a run whose first case is fast and whose second computes for minutes, the first
/// case done (its progress line is out): the child, its standard error's lines and reader,
/// and the run folder.
fn start_slow_ab(
    dir: &Path,
) -> (
    Child,
    Receiver<String>,
    std::thread::JoinHandle<String>,
    PathBuf,
) {
    let suite = dir.join("slow.toml");
    std::fs::write(
        &suite,
        "gemm = [ { m = 8, n = 8, k = 8 } ]\nrnn = [ { cell = \"lstm\", hidden = 1024, batch = 64, steps = 100 } ]\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_wattbench");
    let ab_dir = dir.join("ab");
    let args: Vec<String> = [
        "ab",
        "--a",
        bin,
        "--b",
        bin,
        "--rounds",
        "2",
        "--dir",
        ab_dir.to_str().unwrap(),
        "--",
        "--suite",
        suite.to_str().unwrap(),
        "--backend",
        "reference",
        "--min-time",
        "0",
        "--min-samples",
        "3",
        "--warmup",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let (child, lines, reader) = start_reading(&args);
    wait_for_line(&lines, "[1/2]");
    (child, lines, reader, ab_dir)
}

/// A stop sent to `ab`'s pid alone (`kill PID`, systemd, a CI runner), not to its process
/// group: the run in progress gets it, writes its completed cases, and `ab` stops after it
/// with 128 + the signal, the runs so far kept.
#[test]
fn ab_passes_a_stop_sent_to_it_alone_on_to_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _lines, reader, ab_dir) = start_slow_ab(dir.path());
    // SAFETY: kill(2) on our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert_contains(&err, "passing the stop on to A's run of round 1");
    let doc = read_json(ab_dir.join("a/round-01.json"));
    assert_eq!(doc["interrupted"], true, "{err}");
    assert_eq!(doc["cases"].as_array().unwrap().len(), 1, "{err}");
    assert_eq!(std::fs::read_dir(ab_dir.join("b")).unwrap().count(), 0);
    wait_until_no_process_names(ab_dir.to_str().unwrap());
}

/// A second stop sent to `ab` alone kills the run in progress and ends `ab` at once: no run is
/// left behind to write into the run folder.
#[test]
fn a_second_stop_to_ab_kills_the_run_and_ends_ab_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _lines, reader, ab_dir) = start_slow_ab(dir.path());
    // Two different signals back to back: never merged into one (two SIGTERMs pending at once
    // would be), and the second comes before the run, stopped by the first, ends `ab` (about a
    // second later), however loaded the machine. Which one `ab`'s threads take first is not
    // fixed: the second's code is the exit code.
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: kill(2) on our own child, not yet waited for.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    }
    let status = child.wait().unwrap();
    wait_until_no_process_names(ab_dir.to_str().unwrap());
    let err = reader.join().unwrap();
    assert!(
        matches!(status.code(), Some(130 | 143)),
        "{status:?}: {err}"
    );
    assert_contains(&err, "second signal: the run in progress is killed");
}
