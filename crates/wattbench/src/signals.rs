//! Stopping cleanly on SIGINT, SIGTERM and SIGHUP (`run` and `train`; what Ctrl-C,
//! `timeout`, Slurm, CI and a closed terminal or dropped SSH session send): the first sets a
//! flag the work checks between samples and steps, so the completed work is written and marked
//! interrupted; a second exits at once with 128+signal. signal-hook installs the handlers (as
//! `measure`'s forwarding does).
//!
//! A hangup means the terminal is gone: writing to it would fail (EIO) and Rust's printing
//! would panic before the completed work is written. So SIGHUP first points standard output
//! and error, where they were that terminal, at /dev/null. A SIGHUP found ignored when the
//! command starts (`nohup`) stays ignored.
//!
//! `run --devices` and `ab` pass their stop on to the runs they start (each in a process group
//! of its own, so that the terminal's Ctrl-C reaches the parent alone: [`supervised`]) as
//! SIGUSR1 (for SIGINT) or SIGUSR2 (for SIGTERM), which such a child takes as a stop that is
//! never a second signal: a scheduler that signals every process of a job (Slurm signals a
//! whole step) reaches the child directly too, and the stop passed on after it must not end
//! the child before it writes. A second signal to the parent kills the children (SIGKILL) and
//! ends it at once.
use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use std::io::IsTerminal;
use std::os::fd::IntoRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How [`Stop::wait`] ended.
pub enum Waited<T> {
    /// The worker sent its result.
    Done(T),
    /// The worker ended without sending one (it panicked).
    Gone,
    /// A stop was requested and the worker did not answer within the grace period.
    GaveUp,
}

/// The stop request of a command, set from the signal handlers.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

/// Set (to anything) in the environment of a supervised child (a `run --devices` worker, a run
/// of `ab`): it takes SIGUSR1 and SIGUSR2 from its parent as the stop the parent got.
pub const WORKER_ENV: &str = "WATTBENCH_DEVICES_WORKER";

impl Stop {
    /// Install the handlers for this process.
    pub fn install() -> Result<Stop> {
        Self::install_killing_on_second(Arc::from([]))
    }

    /// [`Stop::install`], and a second signal first kills (SIGKILL) the processes whose ids
    /// `pids` holds (0: none): the [`supervised`] children (`run --devices`' workers, `ab`'s
    /// runs), which the terminal's signals do not reach. A slot must be cleared before its
    /// process is reaped.
    pub fn install_killing_on_second(pids: Arc<[AtomicI32]>) -> Result<Stop> {
        let stop = Stop {
            flag: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        // A SIGINT or SIGTERM came: the next one ends the process. Apart from the stop flag,
        // which a worker's parent also sets.
        let signalled = Arc::new(AtomicBool::new(false));
        let install = |sig: i32| -> std::io::Result<()> {
            if !pids.is_empty() {
                let (signalled, pids) = (signalled.clone(), pids.clone());
                // SAFETY: the action only loads atomics and calls kill(2), both
                // async-signal-safe.
                unsafe {
                    signal_hook::low_level::register(sig, move || {
                        if signalled.load(Ordering::SeqCst) {
                            for pid in pids.iter().map(|p| p.load(Ordering::SeqCst)) {
                                if pid > 0 {
                                    libc::kill(pid, libc::SIGKILL);
                                }
                            }
                        }
                    })?;
                }
            }
            // Order matters: the shutdown checks the flag before this signal sets it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, signalled.clone())?;
            signal_hook::flag::register(sig, signalled.clone())?;
            signal_hook::flag::register(sig, stop.flag.clone())?;
            signal_hook::flag::register_usize(sig, stop.which.clone(), sig as usize)?;
            Ok(())
        };
        for sig in [SIGINT, SIGTERM] {
            install(sig).context("installing the SIGINT/SIGTERM handlers")?;
        }
        let worker = std::env::var_os(WORKER_ENV).is_some();
        if !wattbench_energy::is_ignored(SIGHUP) {
            // First off the terminal, before any thread sees the stop and prints.
            detach_from_terminal_on_hangup().context("installing the SIGHUP handler")?;
            if worker {
                // A worker's parent passes SIGHUP on as it is: the worker is off the same
                // terminal. A stop, never a second signal (the parent kills on a second).
                signal_hook::flag::register(SIGHUP, stop.flag.clone())
                    .and_then(|_| {
                        signal_hook::flag::register_usize(
                            SIGHUP,
                            stop.which.clone(),
                            SIGHUP as usize,
                        )
                    })
                    .context("installing the SIGHUP handler")?;
            } else {
                install(SIGHUP).context("installing the SIGHUP handler")?;
            }
        }
        if worker {
            for (passed, sig) in [(SIGUSR1, SIGINT), (SIGUSR2, SIGTERM)] {
                signal_hook::flag::register(passed, stop.flag.clone())
                    .and_then(|_| {
                        signal_hook::flag::register_usize(passed, stop.which.clone(), sig as usize)
                    })
                    .context("installing the SIGUSR1/SIGUSR2 handlers of a --devices worker")?;
            }
        }
        Ok(stop)
    }

    /// A stop requested by `sig`, with no handler installed: for tests.
    #[cfg(test)]
    pub fn requested_by(sig: i32) -> Stop {
        Stop {
            flag: Arc::new(AtomicBool::new(true)),
            which: Arc::new(AtomicUsize::new(sig as usize)),
        }
    }

    /// No stop requested, with no handler installed: for tests.
    #[cfg(test)]
    pub fn none() -> Stop {
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The signal that passes this stop on to a `run --devices` worker: SIGUSR1 for SIGINT,
    /// SIGUSR2 for SIGTERM (see the module comment), SIGHUP itself for SIGHUP.
    pub fn worker_signal(&self) -> i32 {
        match self.which.load(Ordering::SeqCst) as i32 {
            SIGTERM => SIGUSR2,
            SIGHUP => SIGHUP,
            _ => SIGUSR1,
        }
    }

    /// The flag the work polls.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The exit code for a stopped command: 128 + the signal (130 for Ctrl-C, 143 for
    /// SIGTERM).
    pub fn exit_code(&self) -> u8 {
        match self.which.load(Ordering::SeqCst) {
            0 => 130,
            s => (128 + s).min(255) as u8,
        }
    }

    /// Waits for a worker's message on `done`, watching for a stop: once one is requested,
    /// `announce` runs (once) and the worker has `grace` to answer before the wait gives up.
    /// Also says whether `announce` ran.
    pub fn wait<T>(
        &self,
        done: &Receiver<T>,
        grace: Duration,
        announce: impl Fn(),
    ) -> (Waited<T>, bool) {
        let mut since: Option<Instant> = None;
        loop {
            match done.recv_timeout(Duration::from_millis(50)) {
                Ok(v) => return (Waited::Done(v), since.is_some()),
                Err(RecvTimeoutError::Disconnected) => return (Waited::Gone, since.is_some()),
                Err(RecvTimeoutError::Timeout) if self.requested() => {
                    let since = *since.get_or_insert_with(|| {
                        announce();
                        Instant::now()
                    });
                    if since.elapsed() > grace {
                        return (Waited::GaveUp, true);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The signal's name, for the message.
    pub fn signal_name(&self) -> &'static str {
        match self.which.load(Ordering::SeqCst) as i32 {
            SIGTERM => "SIGTERM",
            SIGHUP => "SIGHUP",
            _ => "SIGINT",
        }
    }
}

/// On SIGHUP, points standard output and error at /dev/null where they are a terminal now
/// (the one that hung up), so that the messages and table printed while the completed work is
/// written neither fail nor panic. Output to files and pipes is left alone.
fn detach_from_terminal_on_hangup() -> std::io::Result<()> {
    let on_terminal: Vec<i32> = [
        (std::io::stdout().is_terminal(), libc::STDOUT_FILENO),
        (std::io::stderr().is_terminal(), libc::STDERR_FILENO),
    ]
    .into_iter()
    .filter_map(|(tty, fd)| tty.then_some(fd))
    .collect();
    if on_terminal.is_empty() {
        return Ok(());
    }
    // Opened now, kept for the life of the process: the handler may not allocate or open.
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")?
        .into_raw_fd();
    // SAFETY: the action calls dup2(2) only, which is async-signal-safe, on descriptors the
    // process keeps open (`null` is never closed).
    unsafe {
        signal_hook::low_level::register(SIGHUP, move || {
            for &fd in &on_terminal {
                libc::dup2(null, fd);
            }
        })?;
    }
    Ok(())
}

/// Makes output written after the work is saved end the process quietly on a closed pipe
/// (`wattbench … | head -1`), as Unix tools do, instead of a panic and exit 101. Called by
/// commands that only print, and by the others once their result files are on disk.
pub fn quiet_broken_pipe() {
    // SAFETY: restores the default disposition of SIGPIPE (Rust's runtime ignores it): no
    // handler code runs; a write to a closed pipe then ends the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Makes `c` the command of a supervised child (a run of `ab`): in a process group of its own,
/// so that what the terminal sends its foreground group (Ctrl-C) reaches the parent alone,
/// which passes one stop on ([`wait_supervised`]); told so ([`WORKER_ENV`]), so that the stop
/// passed on and one a scheduler sends it directly are one stop, not a second; without
/// standard input (a background group that read the terminal would be stopped); and sent
/// [`STOP_ON_PARENT_DEATH`] when the parent dies (killed, crashed), so that it writes its
/// completed cases and exits instead of running on unsupervised. The parent-death signal
/// follows the thread that spawns the child: spawn it from the main thread.
pub fn supervised(c: &mut Command) -> &mut Command {
    c.env(WORKER_ENV, "1").stdin(Stdio::null()).process_group(0);
    let parent = std::process::id();
    // SAFETY: the hook runs in the child between fork and exec, and makes only the
    // async-signal-safe system calls of `stop_with_parent`, allocating nothing.
    unsafe { c.pre_exec(move || stop_with_parent(parent)) };
    c
}

/// The signal a [`supervised`] child gets when its parent dies: the stop passed on for
/// SIGTERM ([`Stop::worker_signal`]).
pub const STOP_ON_PARENT_DEATH: i32 = SIGUSR2;

/// In a supervised child, between fork and exec: asks the kernel for [`STOP_ON_PARENT_DEATH`]
/// when the thread that started it ends; refuses to start when `parent` has already died,
/// since no signal would come then.
fn stop_with_parent(parent: u32) -> std::io::Result<()> {
    // SAFETY: prctl(2), getppid(2) and signal(2) are system calls that touch no memory of
    // ours. SIGTTOU ignored (it survives exec): the child is a background group on the
    // terminal, and under `stty tostop` its first write there would stop it for ever, its
    // parent waiting for it to end.
    let (set, ppid) = unsafe {
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        let set = libc::prctl(
            libc::PR_SET_PDEATHSIG,
            STOP_ON_PARENT_DEATH as libc::c_ulong,
            0,
            0,
            0,
        );
        (set, libc::getppid())
    };
    if set == -1 {
        return Err(std::io::Error::last_os_error());
    }
    if u32::try_from(ppid).ok() != Some(parent) {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Whether our child `pid` has ended, without reaping it (its pid stays ours to signal). A
/// failing waitid (other than an interrupted one) counts as ended, so that the caller's
/// `wait` reports the error instead of polling for ever.
pub fn child_ended(pid: u32) -> bool {
    // SAFETY: an all-zero siginfo_t is valid; waitid(2) with WNOWAIT only reads our child's
    // state and leaves it unreaped.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        match libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) {
            0 => info.si_pid() != 0,
            _ => std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted,
        }
    }
}

/// Waits for the [`supervised`] `child` to end. Once a stop is requested, `announce` runs and
/// the stop is passed on to the child, once ([`Stop::worker_signal`]); the child then writes
/// its completed cases. `slot` holds the child's pid for [`Stop::install_killing_on_second`]
/// and is cleared before the child is reaped.
pub fn wait_supervised(
    child: &mut Child,
    stop: &Stop,
    slot: &AtomicI32,
    announce: impl FnOnce(),
) -> std::io::Result<ExitStatus> {
    let mut announce = Some(announce);
    loop {
        if child_ended(child.id()) {
            slot.store(0, Ordering::SeqCst);
            return child.wait();
        }
        if stop.requested() {
            if let Some(announce) = announce.take() {
                announce();
                let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
                if pid > 0 {
                    // SAFETY: kill(2) on our own child, not yet reaped (its pid cannot have
                    // been reused).
                    unsafe { libc::kill(pid, stop.worker_signal()) };
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// On a second stop signal (SIGINT, SIGTERM, and SIGHUP unless found ignored), which ends the
/// process at once ([`Stop::install_killing_on_second`]), first writes `message` to standard
/// error: what was left where. To be registered before the stop's handlers: signal-hook runs
/// a signal's actions in the order they were registered, and the stop's second-signal action
/// exits.
pub fn say_on_second_signal(message: String) -> Result<()> {
    let message: Arc<[u8]> = message.into_bytes().into();
    let seen = Arc::new(AtomicBool::new(false));
    let mut signals = vec![SIGINT, SIGTERM];
    if !wattbench_energy::is_ignored(SIGHUP) {
        signals.push(SIGHUP);
    }
    for sig in signals {
        let (message, seen) = (message.clone(), seen.clone());
        // SAFETY: the action swaps an atomic and calls write(2) on a buffer allocated before,
        // both async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                if seen.swap(true, Ordering::SeqCst) {
                    libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), message.len());
                }
            })
        }
        .context("installing the second-signal message")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stop_has_its_code_name_and_the_signal_a_worker_gets() {
        for (sig, code, name, worker) in [
            (SIGINT, 130, "SIGINT", SIGUSR1),
            (SIGTERM, 143, "SIGTERM", SIGUSR2),
            (SIGHUP, 129, "SIGHUP", SIGHUP),
        ] {
            let stop = Stop::requested_by(sig);
            assert_eq!(stop.exit_code(), code);
            assert_eq!(stop.signal_name(), name);
            assert_eq!(stop.worker_signal(), worker);
        }
    }
}
