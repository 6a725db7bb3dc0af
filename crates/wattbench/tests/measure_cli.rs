//! `wattbench measure` on the command line: where its report and trace go, what becomes of
//! them when they cannot be written at the end, and the input it refuses.
mod common;

use common::{assert_contains, command, read_json, stderr, usage_error, wattbench};
use std::path::Path;

/// The files `wattbench-unsaved-*` in `dir`.
fn unsaved_in(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("wattbench-unsaved-")
        })
        .collect()
}

/// The report's folder replaced by a file while the command runs: the measurement is saved in
/// a fallback file the message names; exit 4 when the command succeeded, its own code (3)
/// when it failed, the fallback saved all the same.
#[test]
fn a_report_that_cannot_be_written_at_the_end_is_saved_in_a_fallback() {
    for (code, want) in [(0, 4), (3, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let report = gone.join("r.json");
        let o = command()
            .env("TMPDIR", tmp.path())
            .args([
                "measure",
                "--interval",
                "20",
                "-o",
                report.to_str().unwrap(),
                "--",
            ])
            .args(["sh", "-c", "rm -rf \"$1\"; touch \"$1\"; exit $2", "sh"])
            .arg(&gone)
            .arg(code.to_string())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(want), "{err}");
        let saved = unsaved_in(tmp.path());
        assert_eq!(saved.len(), 2, "report and trace: {saved:?}\n{err}");
        let json = (saved.iter())
            .find(|p| p.to_string_lossy().ends_with("-r.json"))
            .expect("the report's fallback");
        assert_eq!(read_json(json)["exit_code"], code);
        assert_contains(&err, &json.display().to_string());
        assert_contains(&err, "could not be written to");
    }
}

/// `-o /dev/stdout` would mix the report with the command's own output: refused before the
/// command runs.
#[test]
fn a_report_on_standard_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let o = wattbench(&[
        "measure",
        "-o",
        "/dev/stdout",
        "--",
        "touch",
        ran.to_str().unwrap(),
    ]);
    usage_error(&o, "-o /dev/stdout");
    assert!(!ran.exists(), "the command ran");
}

/// A report written to a FIFO (a device or stream) gets no derived trace name beside it
/// (`/dev/stderr.trace.csv` is no place for one): no trace, and the report says so.
#[test]
fn no_trace_name_is_derived_from_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let o = wattbench(&["measure", "-o", fifo.to_str().unwrap(), "--", "true"]);
    let report: serde_json::Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["report.fifo"]);
    let notes = report["assumptions"]["notes"].to_string();
    assert_contains(&notes, "no trace was written");
}

/// Bad input is refused before the command runs, with what to give.
#[test]
fn implausible_options_are_refused() {
    usage_error(
        &wattbench(&["measure", "--tdp-watts", "1e308", "--", "true"]),
        "likely another unit (mW?)",
    );
    usage_error(
        &wattbench(&[
            "measure",
            "--interval",
            "18446744073709551615",
            "--",
            "true",
        ]),
        "--interval must be from 1 to 3600000 ms",
    );
    usage_error(
        &wattbench(&[
            "measure",
            "--region",
            "XX-NOWHERE",
            "--intensity",
            "100",
            "--",
            "true",
        ]),
        "--region \"XX-NOWHERE\" is not in the carbon table",
    );
    // `run` and `train` share the one TDP guard.
    usage_error(
        &wattbench(&["run", "--tdp-watts", "65000", "--op", "none"]),
        "likely another unit (mW?)",
    );
}

/// A command that is not found is said once, not twice.
#[test]
fn a_missing_command_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("m.json");
    let o = wattbench(&[
        "measure",
        "-o",
        report.to_str().unwrap(),
        "--",
        "no-such-command-xyz",
    ]);
    assert_eq!(o.status.code(), Some(127));
    let err = stderr(&o);
    assert_eq!(
        err.matches("command not found: no-such-command-xyz")
            .count(),
        1,
        "{err}"
    );
}
