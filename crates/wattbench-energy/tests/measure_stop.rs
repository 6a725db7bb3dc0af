//! `measure` and this process's signal dispositions: stopped before its command starts, and
//! under an ignored SIGCHLD. One test in a binary of its own, the stop first: signal
//! dispositions are process-wide, a SIGTERM sent to this process must find only its `measure`,
//! and once a `measure` has run, SIGTERM stays caught (signal-hook keeps its handler, with no
//! action), so the stop's wait for measure's handler works only before any other `measure`.

mod common;

use std::ffi::OsString;
use std::time::Duration;

use wattbench_energy::measure::{measure, MeasureOptions};

fn opts(command: &[&str], powercap: std::path::PathBuf, idle: Option<Duration>) -> MeasureOptions {
    common::measure_options(command.iter().map(OsString::from).collect(), powercap, idle)
}

/// Whether this process catches `sig` (its bit in /proc/self/status's SigCgt).
fn catches(sig: libc::c_int) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    mask & (1 << (sig - 1)) != 0
}

#[test]
fn signal_dispositions() {
    a_stop_during_the_idle_baseline_does_not_start_the_command();
    an_ignored_sigchld_loses_no_exit_status();
}

/// A stop during the idle baseline (30 s asked) ends it at once, and the command is not
/// started: exit 128 + 15, a report that says why, and no trace of the command.
fn a_stop_during_the_idle_baseline_does_not_start_the_command() {
    assert!(
        !catches(libc::SIGTERM),
        "something else catches SIGTERM here"
    );
    let dir = tempfile::tempdir().unwrap();
    // A package counter (that does not move), so that `measure` takes an idle baseline.
    let zone = dir.path().join("powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    std::fs::write(zone.join("energy_uj"), "1000\n").unwrap();
    std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
    let ran = dir.path().join("ran");
    let opts = opts(
        &["sh", "-c", "touch \"$1\"", "sh", ran.to_str().unwrap()],
        dir.path().join("powercap"),
        Some(Duration::from_secs(30)),
    );
    // SIGTERM once measure's handler is installed (before that it would end this process).
    let sender = std::thread::spawn(|| {
        for _ in 0..2000 {
            if catches(libc::SIGTERM) {
                std::thread::sleep(Duration::from_millis(200));
                // SAFETY: kill(2) on our own pid, whose SIGTERM measure now catches.
                unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    });
    let out = measure(&opts).unwrap();
    assert!(sender.join().unwrap(), "measure never caught SIGTERM");
    // The idle window it measured ended with the stop, far short of the 30 s asked.
    let idle_s = (out.report.idle_baseline.iter())
        .map(|d| d.window_s)
        .fold(0.0, f64::max);
    assert!(idle_s > 0.0 && idle_s < 15.0, "idle baseline of {idle_s} s");
    assert_eq!(out.exit_code, 128 + libc::SIGTERM);
    assert!(!ran.exists(), "the command ran");
    assert!(
        (out.report.error.as_deref().unwrap_or(""))
            .contains("stopped by SIGTERM before the command started"),
        "{:?}",
        out.report.error
    );
    assert_eq!(
        out.report.signals_received,
        ["SIGTERM: before the command started, which was then not started"]
    );
    assert_eq!(out.report.energy_kwh, None);
    let said = out.report.summary_lines().join("\n");
    assert!(
        said.contains("did not start (exit status 143: stopped by SIGTERM before it started)"),
        "{said}"
    );
}

/// A launcher that ignores SIGCHLD (inherited across exec) would have the kernel reap the
/// command itself: its exit status is still the report's, and the disposition is put back.
fn an_ignored_sigchld_loses_no_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: this binary's one test waits for no child of its own meanwhile.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let out = measure(&opts(
        &["sh", "-c", "exit 7"],
        dir.path().join("none"),
        None,
    ));
    // SAFETY: as above; what it was before.
    let during = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let out = out.expect("a report");
    assert_eq!(out.exit_code, 7);
    assert_eq!(
        during,
        libc::SIG_IGN,
        "the ignored disposition was not put back"
    );
}
