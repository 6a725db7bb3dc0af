//! `measure` under a launcher that ignores SIGHUP (`nohup`): the command inherits it ignored,
//! and a hangup reaches neither. One test in a binary of its own: signal dispositions are
//! process-wide, and signal-hook keeps a handler once it has set one.

mod common;

use std::ffi::OsString;
use std::path::PathBuf;

use wattbench_energy::measure::measure;

#[test]
fn an_ignored_sighup_stays_ignored_for_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status");
    // SAFETY: this binary's one test; SIGHUP ignored as `nohup` leaves it (it may already
    // be, when the tests themselves run under `nohup`).
    let before = unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    assert_ne!(before, libc::SIG_ERR, "SIGHUP could not be ignored");
    // The command records its ignored signals, then is sent a hangup by itself and by way
    // of `measure` (this process, its parent): it survives both only if it ignores it, and
    // `measure` forwards none.
    let command = [
        "sh",
        "-c",
        "grep '^SigIgn:' /proc/$$/status > \"$1\"; kill -HUP $$; kill -HUP $PPID; \
         sleep 0.3; exit 5",
        "sh",
    ]
    .iter()
    .map(OsString::from)
    .chain([status.clone().into_os_string()])
    .collect();
    let opts = common::measure_options(command, PathBuf::from("/nonexistent/powercap"), None);
    let out = measure(&opts).unwrap();
    // SAFETY: as above; the disposition measure found must still be in place.
    let during = unsafe { libc::signal(libc::SIGHUP, libc::SIG_DFL) };
    assert_eq!(during, libc::SIG_IGN, "measure un-ignored SIGHUP");
    assert_eq!(out.exit_code, 5, "{:?}", out.report.error);
    let line = std::fs::read_to_string(&status).unwrap();
    let mask = u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert!(
        mask & 1 << (libc::SIGHUP - 1) != 0,
        "SIGHUP not ignored: {line}"
    );
    assert!(
        out.report.signals_received.is_empty(),
        "{:?}",
        out.report.signals_received
    );
    assert!(
        (out.report.assumptions.notes.iter())
            .any(|n| n.starts_with("SIGHUP was ignored when measure started")),
        "{:?}",
        out.report.assumptions.notes
    );
}
