//! Stopping cleanly on SIGINT and SIGTERM (`run` and `train`; what Ctrl-C, `timeout`, Slurm
//! and CI send): the first sets a flag the work checks between samples and steps, so the
//! completed work is written and marked interrupted; a second exits at once with 128+signal.
//! signal-hook installs the handlers (as `measure`'s forwarding does).
//!
//! `run --devices` passes its stop on to its workers (each in a process group of its own, so
//! that the terminal's Ctrl-C reaches the parent alone) as SIGUSR1 (for SIGINT) or SIGUSR2
//! (for SIGTERM), which a worker takes as a stop that is never a second signal: a scheduler
//! that signals every process of a job (Slurm signals a whole step) reaches a worker directly
//! too, and the stop passed on after it must not end the worker before it writes. A second
//! signal to the parent kills the workers (SIGKILL) and ends it at once.
use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
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

/// Set (to anything) in the environment of a `run --devices` worker: it takes SIGUSR1 and
/// SIGUSR2 from its parent as the stop the parent got.
pub const WORKER_ENV: &str = "WATTBENCH_DEVICES_WORKER";

impl Stop {
    /// Install the handlers for this process.
    pub fn install() -> Result<Stop> {
        Self::install_killing_on_second(Arc::from([]))
    }

    /// [`Stop::install`], and a second signal first kills (SIGKILL) the processes whose ids
    /// `pids` holds (0: none): `run --devices`' workers, which the terminal's signals do not
    /// reach. A slot must be cleared before its process is reaped.
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
        if std::env::var_os(WORKER_ENV).is_some() {
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
    /// SIGUSR2 for SIGTERM (see the module comment).
    pub fn worker_signal(&self) -> i32 {
        match self.which.load(Ordering::SeqCst) as i32 {
            SIGTERM => SIGUSR2,
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
            _ => "SIGINT",
        }
    }
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
