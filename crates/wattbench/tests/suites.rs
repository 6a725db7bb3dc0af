//! Suite files through `wattbench run`: invalid sets and empty lists are refused with what to
//! write instead and no result file; merged duplicates are said, with the true counts.
mod common;

use common::{assert_contains, run_quick, stderr, usage_error};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// `wattbench run --suite <dir>/<name>` (the suite written there first) on the reference
/// backend, quickly, into `<dir>/out.json`; its output and the result document, if written.
fn run_suite(dir: &Path, name: &str, toml: &str) -> (Output, Option<Value>) {
    let suite = dir.join(name);
    std::fs::write(&suite, toml).unwrap();
    run_quick(
        suite.to_str().unwrap(),
        &dir.join("out.json"),
        &["--backend", "reference"],
    )
}

/// The suite `toml` is refused: exit 2, `want` in the message, no panic, no result file.
fn refused(toml: &str, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = run_suite(dir.path(), "refused.toml", toml);
    usage_error(&o, want);
    assert!(doc.is_none(), "a refused suite wrote a result file");
}

#[test]
fn an_unknown_set_exits_2_with_the_valid_sets_and_no_file() {
    refused(
        "gemm = [ { m = 3, n = 2, k = 4 }, { m = 3, n = 2, k = 5, set = \"bogus\" } ]\n",
        "gemm[1]: unknown set `bogus`; valid: train, server, device",
    );
}

#[test]
fn empty_dtypes_or_modes_exit_2_saying_what_to_list() {
    refused(
        "dtypes = []\ngemm = [ { m = 3, n = 2, k = 4 } ]\n",
        "top level: dtypes is empty: list at least one of f32, f16, bf16",
    );
    // An entry's own empty list used to drop the entry silently while the others ran.
    refused(
        "gemm = [ { m = 3, n = 2, k = 4 }, { m = 3, n = 2, k = 5, modes = [] } ]\n",
        "gemm[1]: modes is empty: list at least one of infer, train",
    );
}

#[test]
fn duplicate_entries_are_measured_once_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = run_suite(
        dir.path(),
        "dup.toml",
        r#"
name = "dup"
gemm = [
  { tag = "first", m = 3, n = 2, k = 4 },
  { m = 5, n = 2, k = 4 },
  { tag = "again", m = 3, n = 2, k = 4 },
]
"#,
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_contains(
        &err,
        "suite dup: 3 entries, 1 duplicate merged -> 2 cases \
         (gemm[2] repeats gemm[0], its tag `again` dropped)",
    );
    let cases = doc.unwrap()["cases"].as_array().unwrap().clone();
    let tags: Vec<_> = cases.iter().map(|c| c["tag"].as_str()).collect();
    assert_eq!(tags, [Some("first"), None], "one case per distinct shape");
}

#[test]
fn deepbench_states_its_entries_merges_and_cases() {
    // Three small device-set RNNs; the line covers the whole suite.
    let dir = tempfile::tempdir().unwrap();
    let (o, doc) = run_quick(
        "deepbench",
        &dir.path().join("db.json"),
        &["--set", "device", "--op", "rnn", "--backend", "reference"],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_contains(
        &err,
        "suite deepbench: 590 entries, 32 duplicates merged -> 558 cases (",
    );
    assert_eq!(doc.unwrap()["cases"].as_array().unwrap().len(), 3);
}

#[test]
fn duplicates_are_counted_after_dtype_and_mode_replace_the_suites() {
    // With --dtype f32 all three entries give the same case: two duplicates, one case run.
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("d.toml");
    std::fs::write(
        &suite,
        r#"
name = "mine"
gemm = [
  { m = 8, n = 8, k = 8, dtypes = ["f32"] },
  { m = 8, n = 8, k = 8, dtypes = ["bf16"] },
  { m = 8, n = 8, k = 8, tag = "X" },
]
"#,
    )
    .unwrap();
    let (o, doc) = run_quick(
        suite.to_str().unwrap(),
        &dir.path().join("out.json"),
        &["--backend", "reference", "--dtype", "f32"],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_contains(
        &err,
        "suite mine: 3 entries with --dtype f32, 2 duplicates merged -> 1 case (gemm[1] \
         repeats gemm[0]; gemm[2] repeats gemm[0], its tag `X` dropped)",
    );
    assert_eq!(doc.unwrap()["cases"].as_array().unwrap().len(), 1);
}
