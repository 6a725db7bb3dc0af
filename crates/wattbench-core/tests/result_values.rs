//! Result files are checked beyond their types: impossible values (a negative or non-finite
//! time, a timing without samples) and missing required keys are refused with the key named,
//! while every result file committed under `results/` still reads.
use serde_json::Value;
use std::path::{Path, PathBuf};
use wattbench_core::result::{read_runs, RunFile, SCHEMA_VERSION};
use wattbench_core::testing::{run_file, timed_case};

fn doc() -> Value {
    let run = run_file(
        "2026-01-01T00:00:00+00:00",
        vec![timed_case("gemm/a", vec![1e-3, 2e-3, 3e-3])],
    );
    serde_json::to_value(run).unwrap()
}

fn refused(v: &Value, wants: &[&str]) {
    let e = RunFile::from_json(&v.to_string()).unwrap_err().to_string();
    for w in wants {
        assert!(e.contains(w), "wanted {w:?} in: {e}");
    }
}

#[test]
fn impossible_times_are_refused_naming_the_key() {
    assert!(RunFile::from_json(&doc().to_string()).is_ok());
    let mut v = doc();
    v["cases"][0]["time"]["samples_s"][1] = (-1.0).into();
    refused(
        &v,
        &[
            "cases[0].time.samples_s[1] = -1",
            "gemm/a",
            "edited or damaged",
        ],
    );
    let mut v = doc();
    v["cases"][0]["time"]["median_s"] = (-1.0).into();
    refused(&v, &["cases[0].time.median_s = -1"]);
    let mut v = doc();
    v["cases"][0]["time"]["samples_s"] = serde_json::json!([]);
    refused(&v, &["cases[0].time.samples_s is empty"]);
    let mut v = doc();
    v["duration_s"] = (-3.0).into();
    refused(&v, &["duration_s = -3"]);
    // In a merged file, the run is named too.
    let mut v = doc();
    v["cases"][0]["time"]["min_s"] = (-1.0).into();
    let merged = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "merged": {"created_at": "x", "argv": [], "inputs": ["a"], "allow_duplicates": false,
                   "notes": []},
        "runs": [doc(), v],
    });
    let e = read_runs(&merged.to_string()).unwrap_err().to_string();
    assert!(e.contains("runs[1].cases[0].time.min_s = -1"), "{e}");
}

#[test]
fn a_file_without_cases_or_trainings_is_not_an_empty_run() {
    for key in ["cases", "trainings"] {
        let mut v = doc();
        v.as_object_mut().unwrap().remove(key);
        refused(&v, &[&format!("missing field `{key}`")]);
    }
}

/// Every `*.json` under `dir`, recursively.
fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

#[test]
fn every_committed_result_file_of_this_schema_still_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results");
    let mut files = Vec::new();
    json_files(&root, &mut files);
    let mut read = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let version = v.get("schema_version").and_then(Value::as_u64);
        let is_result = v.get("config").is_some() || v.get("merged").is_some();
        if version != Some(SCHEMA_VERSION.into()) || !is_result {
            continue;
        }
        read_runs(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        read += 1;
    }
    assert!(
        read > 0,
        "no committed result file of schema {SCHEMA_VERSION} found"
    );
}

/// A model string without a model number (a VM's `AMD EPYC`) cannot tell CPU generations
/// apart: the processor's family and model join it in the hardware fingerprint. A string
/// with a number is enough alone, so fingerprints of such machines (and their history
/// series) are unchanged, and a file without the identification keeps its fingerprint.
#[test]
fn cpus_named_alike_are_told_apart_by_family_and_model() {
    use wattbench_core::result::{CpuId, Host};
    let on = |model: &str, id: Option<(u32, u32, u32)>| {
        let mut r = run_file("t", vec![]);
        r.environment.host = Host {
            cpu_model: Some(model.into()),
            cpu_id: id.map(|(family, model, stepping)| CpuId {
                vendor: "AuthenticAMD".into(),
                family,
                model,
                stepping: Some(stepping),
            }),
            logical_cores: 2,
            ..Host::default()
        };
        r.environment.hardware_fingerprint()
    };
    let zen5 = on("AMD EPYC", Some((26, 2, 1)));
    assert_eq!(zen5, "cpu=AMD EPYC (AuthenticAMD family 26 model 2) x2");
    assert_ne!(zen5, on("AMD EPYC", Some((25, 17, 1))), "Zen 4 and Zen 5");
    assert_eq!(
        zen5,
        on("AMD EPYC", Some((26, 2, 0))),
        "a stepping is one hardware"
    );
    assert_eq!(on("AMD EPYC", None), "cpu=AMD EPYC x2");
    assert_eq!(
        on("AMD EPYC 9654 96-Core Processor", Some((25, 17, 1))),
        "cpu=AMD EPYC 9654 96-Core Processor x2"
    );
}
