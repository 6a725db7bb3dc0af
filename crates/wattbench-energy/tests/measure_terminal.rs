//! `measure` under a terminal, with a command in a process group of its own (`setsid cmd`,
//! GNU `timeout` without `--foreground`): the terminal's Ctrl-C and Ctrl-\ reach `measure`
//! alone, so `measure` must hand them on, or the command runs on (Ctrl-C) or is orphaned by a
//! `measure` that Ctrl-\ killed.
//!
//! The test runs this binary again as a helper in a session of its own whose controlling
//! terminal is a pseudo-terminal (signal dispositions and the controlling terminal are
//! process-wide), types Ctrl-C, then Ctrl-\, into it, and checks what the helper's two
//! `measure`s reported. One test in a binary of its own.

mod common;

use std::ffi::{CStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wattbench_energy::measure::{measure, MeasureOptions};

/// Set in the helper: the directory the two run in.
const ROLE: &str = "WATTBENCH_TEST_TERMINAL_HELPER";
const TEST: &str = "terminal_signals_reach_a_command_in_a_process_group_of_its_own";

#[test]
fn terminal_signals_reach_a_command_in_a_process_group_of_its_own() {
    match std::env::var_os(ROLE) {
        Some(dir) => helper(Path::new(&dir)),
        None => parent(),
    }
}

/// A command in a session (and process group) of its own that exits with `code` on SIGINT
/// or SIGQUIT, and by itself, with 0, after about 5 s.
fn command(ready: &Path, code: i32) -> Vec<OsString> {
    let script = "trap \"exit $2\" INT QUIT; touch \"$1\"; i=0; \
                  while [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; exit 0";
    ["setsid", "sh", "-c", script, "sh"]
        .iter()
        .map(OsString::from)
        .chain([ready.as_os_str().to_owned(), code.to_string().into()])
        .collect()
}

fn opts(command: Vec<OsString>, dir: &Path) -> MeasureOptions {
    common::measure_options(command, dir.join("no-powercap"), Some(Duration::ZERO))
}

/// In the helper (foreground of the pseudo-terminal): two commands, each stopped from the
/// terminal, Ctrl-C then Ctrl-\.
fn helper(dir: &Path) {
    for (sig, ready, code) in [("SIGINT", "ready-int", 42), ("SIGQUIT", "ready-quit", 43)] {
        let out = measure(&opts(command(&dir.join(ready), code), dir)).unwrap();
        let r = &out.report;
        assert_eq!(
            out.exit_code, code,
            "{sig} from the terminal did not reach the command: {:?}",
            r.signals_received
        );
        assert_eq!(r.signals_received.len(), 1, "{:?}", r.signals_received);
        let said = &r.signals_received[0];
        assert!(
            said.starts_with(&format!("{sig}: from the terminal")) && said.contains("forwarded"),
            "{said}"
        );
    }
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: plain libc calls on descriptors this function owns; ptsname_r writes into the
    // buffer it is given, of the size it is told.
    let (master, slave) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let s = libc::open(
            CStr::from_ptr(name.as_ptr()).as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY,
        );
        assert!(s >= 0, "open slave: {}", std::io::Error::last_os_error());
        (master, OwnedFd::from_raw_fd(s))
    };
    let log = dir.path().join("helper.log");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, dir.path())
        .stdin(Stdio::null())
        .stdout(File::create(&log).unwrap())
        .stderr(File::create(dir.path().join("helper.err")).unwrap());
    let tty = slave.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls: a new session whose
    // controlling terminal is the pseudo-terminal (its process group in the foreground), and
    // no core file should the helper die of SIGQUIT.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(slave);
    let deadline = Instant::now() + Duration::from_secs(60);
    let output = |dir: &Path| {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}\n{}",
            read(dir.join("helper.log")),
            read(dir.join("helper.err"))
        )
    };
    for (ready, key) in [("ready-int", 0x03u8), ("ready-quit", 0x1c)] {
        // Typed once the command runs under the helper's `measure`.
        loop {
            if dir.path().join(ready).exists() {
                break;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "the helper ended ({st}) before {ready}:\n{}",
                    output(dir.path())
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no {ready} within 60 s:\n{}", output(dir.path()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The command's trap is set before it says it is ready; `measure` forwards at once.
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: write(2) of one byte from a local to the master we own.
        let n = unsafe { libc::write(master.as_raw_fd(), [key].as_ptr().cast(), 1) };
        assert_eq!(n, 1, "{}", std::io::Error::last_os_error());
    }
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the helper did not end within 60 s:\n{}",
                output(dir.path())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "helper: {status}\n{}", output(dir.path()));
}
