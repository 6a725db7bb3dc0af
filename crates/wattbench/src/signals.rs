//! Stopping cleanly on SIGINT and SIGTERM (`run` and `train`; what Ctrl-C, `timeout`, Slurm
//! and CI send): the first sets a flag the work checks between samples and steps, so the
//! completed work is written and marked interrupted; a second exits at once with 128+signal.
//! signal-hook installs the handlers (as `measure`'s forwarding does).
use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

impl Stop {
    /// Install the handlers for this process.
    pub fn install() -> Result<Stop> {
        let stop = Stop {
            flag: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [SIGINT, SIGTERM] {
            // Order matters: the shutdown checks the flag before this signal sets it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, stop.flag.clone())
                .and_then(|_| signal_hook::flag::register(sig, stop.flag.clone()))
                .and_then(|_| {
                    signal_hook::flag::register_usize(sig, stop.which.clone(), sig as usize)
                })
                .context("installing the SIGINT/SIGTERM handlers")?;
        }
        Ok(stop)
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
