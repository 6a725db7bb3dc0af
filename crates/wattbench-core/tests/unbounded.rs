//! Figures that are not finite (a failed verification's infinite error, a median with no
//! interval, a loss that overflowed) are written as `null`, which JSON has for them, and a
//! result file holding them reads back equal: every command that reads results can read it.
use wattbench_core::result::{read_runs, LossReport, MergedFile, RunFile, Status};
use wattbench_core::testing::{failed_on_nan, run_file, timed_case};
use wattbench_core::Mode;

#[test]
fn a_case_that_failed_on_a_nan_output_reads_back_equal() {
    // A GEMM training step whose output `c` has a NaN at index 3 (`da`, `db` its gradients).
    let failed = failed_on_nan(Mode::Train);
    assert_eq!(failed.status, Status::Failed, "{:?}", failed.reason);
    // With it, a case of one sample: its median has no interval.
    let one = timed_case("gemm/one-sample", vec![1e-3]);
    let doc = run_file("2026-01-01T00:00:00+00:00", vec![failed.clone(), one]);
    for text in [
        serde_json::to_string_pretty(&doc).unwrap(),
        serde_json::to_string(&doc).unwrap(),
    ] {
        let back = RunFile::from_json(&text).unwrap();
        assert_eq!(back, doc);
        assert_eq!(read_runs(&text).unwrap(), vec![doc.clone()]);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let v = &json["cases"][0]["verification"];
        assert!(
            v["rel_l2_error"].is_null() && v["rel_max_error"].is_null(),
            "{v}"
        );
        assert!(v["per_output"]["c"].is_null(), "{v}");
        assert!(v["per_output"]["da"].is_number(), "{v}");
        assert_eq!(
            json["cases"][1]["time"]["ci95_median_s"],
            serde_json::json!([null, null])
        );
    }
    // In a merged file too (`run --devices`, `merge`).
    let merged = MergedFile::merge(
        vec![("a.json".into(), doc.clone())],
        false,
        vec!["wattbench".into(), "merge".into()],
        "2026-01-02T00:00:00+00:00".into(),
    )
    .unwrap();
    let text = serde_json::to_string(&merged).unwrap();
    assert_eq!(read_runs(&text).unwrap(), vec![doc]);
    // Infinite, and why.
    let v = failed.verification.as_ref().unwrap();
    assert_eq!(
        (v.rel_l2_error, v.rel_max_error, v.per_output["c"]),
        (f64::INFINITY, Some(f64::INFINITY), f64::INFINITY)
    );
    assert!(
        failed.reason.as_deref().unwrap().contains(
            "value NaN at index 3 of `c` is not finite (never written?); relative L2 error inf"
        ),
        "{:?}",
        failed.reason
    );
}

/// A loss that overflowed before training (a half-precision model) is infinite, not a file
/// that cannot be read.
#[test]
fn an_infinite_loss_reads_back() {
    let loss = LossReport {
        first: None,
        last: None,
        every: 1,
        curve: Vec::new(),
        dataset_before: f64::INFINITY,
        dataset_after: None,
        ratio: None,
    };
    let text = serde_json::to_string(&loss).unwrap();
    assert!(text.contains(r#""dataset_before":null"#), "{text}");
    assert_eq!(serde_json::from_str::<LossReport>(&text).unwrap(), loss);
}
