//! Forwarding SIGINT, SIGTERM and SIGHUP from the measuring process to the measured child.
//!
//! The handler only writes one byte to a self-pipe (async-signal-safe); a thread reads it and
//! calls `kill`. A signal the terminal sent (Ctrl-C, `si_code == SI_KERNEL`) already reached
//! the child, which shares our process group, so it is not sent twice; one sent by a process
//! (`kill`, a scheduler) is forwarded. The child's pid is only signalled while it has not been
//! reaped (the reaper holds the same lock), so a recycled pid is never hit.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::EnergyError;

/// Signals forwarded to the child.
pub(crate) const FORWARDED: [c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

static PIPE_W: AtomicI32 = AtomicI32::new(-1);

/// Serialises measurements within one process: signal dispositions are process-wide.
pub(crate) static MEASURE_LOCK: Mutex<()> = Mutex::new(());

/// The child as the forwarder sees it.
#[derive(Debug, Default)]
pub(crate) struct ChildSlot {
    inner: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    pid: Option<i32>,
    reaped: bool,
    pending: Vec<c_int>,
}

impl ChildSlot {
    /// Records the spawned child, and delivers signals that arrived before it existed.
    pub(crate) fn set(&self, pid: i32) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.pid = Some(pid);
        for sig in std::mem::take(&mut s.pending) {
            // SAFETY: plain kill(2) on our own, unreaped child.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Runs `reap` with the lock held, so no signal can target the pid after it is reaped.
    pub(crate) fn reap_with<T>(&self, reap: impl FnOnce() -> T) -> T {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let out = reap();
        s.reaped = true;
        out
    }

    fn forward(&self, sig: c_int) -> bool {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match (s.pid, s.reaped) {
            (Some(pid), false) => {
                // SAFETY: plain kill(2) on our own, unreaped child.
                unsafe { libc::kill(pid, sig) == 0 }
            }
            (None, _) => {
                s.pending.push(sig);
                true
            }
            _ => false,
        }
    }
}

/// A signal the measuring process received, and what was done with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SignalEvent {
    pub sig: c_int,
    pub from_terminal: bool,
    pub forwarded: bool,
}

/// Whether a signal with this `si_code` must be forwarded (not a terminal-generated one).
pub(crate) fn should_forward(si_code: c_int) -> bool {
    si_code != libc::SI_KERNEL
}

extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: errno access and write(2) are async-signal-safe; `info` is the kernel's.
    unsafe {
        let errno = *libc::__errno_location();
        let code = if info.is_null() {
            libc::SI_USER
        } else {
            (*info).si_code
        };
        let b: u8 = (sig as u8 & 0x7f) | if should_forward(code) { 0 } else { 0x80 };
        let fd = PIPE_W.load(Ordering::SeqCst);
        if fd >= 0 {
            libc::write(fd, &b as *const u8 as *const c_void, 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// Installed handlers; restores the previous ones on drop.
pub(crate) struct Forwarder {
    old: Vec<(c_int, libc::sigaction)>,
    rfd: c_int,
    wfd: c_int,
    thread: Option<JoinHandle<Vec<SignalEvent>>>,
}

fn os_err(call: &'static str) -> EnergyError {
    EnergyError::Os {
        call,
        source: std::io::Error::last_os_error(),
    }
}

impl Forwarder {
    pub(crate) fn install(slot: Arc<ChildSlot>) -> Result<Forwarder, EnergyError> {
        let mut fds = [0 as c_int; 2];
        // SAFETY: pipe2 writes two descriptors into our array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(os_err("pipe2"));
        }
        let (rfd, wfd) = (fds[0], fds[1]);
        // The handler must never block.
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(wfd, libc::F_GETFL);
            libc::fcntl(wfd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let thread = std::thread::Builder::new()
            .name("wattbench-signals".into())
            .spawn(move || {
                let mut events = Vec::new();
                loop {
                    let mut b = 0u8;
                    // SAFETY: read(2) of one byte into a local.
                    let n = unsafe { libc::read(rfd, &mut b as *mut u8 as *mut c_void, 1) };
                    if n < 0
                        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                    {
                        continue;
                    }
                    if n <= 0 || b == 0 {
                        break;
                    }
                    let sig = (b & 0x7f) as c_int;
                    let from_terminal = b & 0x80 != 0;
                    let forwarded = !from_terminal && slot.forward(sig);
                    events.push(SignalEvent {
                        sig,
                        from_terminal,
                        forwarded,
                    });
                }
                events
            })
            .map_err(|e| EnergyError::Os {
                call: "spawning the signal thread",
                source: e,
            })?;
        PIPE_W.store(wfd, Ordering::SeqCst);
        let mut f = Forwarder {
            old: Vec::new(),
            rfd,
            wfd,
            thread: Some(thread),
        };
        for sig in FORWARDED {
            // SAFETY: sigaction with a handler that only does async-signal-safe work.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut old) != 0 {
                    return Err(os_err("sigaction"));
                }
                f.old.push((sig, old));
            }
        }
        Ok(f)
    }

    /// Restores the previous handlers and returns the signals seen.
    pub(crate) fn finish(mut self) -> Vec<SignalEvent> {
        self.teardown()
    }

    fn teardown(&mut self) -> Vec<SignalEvent> {
        for (sig, old) in self.old.drain(..) {
            // SAFETY: restoring a disposition sigaction gave us.
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
        PIPE_W.store(-1, Ordering::SeqCst);
        let Some(t) = self.thread.take() else {
            return Vec::new();
        };
        let zero = 0u8;
        // SAFETY: write(2) of one byte to our pipe; then close our descriptors.
        unsafe {
            libc::write(self.wfd, &zero as *const u8 as *const c_void, 1);
        }
        let ev = t.join().unwrap_or_default();
        unsafe {
            libc::close(self.wfd);
            libc::close(self.rfd);
        }
        ev
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// `SIGTERM`-style name of a signal number.
pub fn signal_name(sig: c_int) -> String {
    let n = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => return format!("signal {sig}"),
    };
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_signals_are_not_forwarded_twice() {
        assert!(!should_forward(libc::SI_KERNEL));
        assert!(should_forward(libc::SI_USER));
        assert!(should_forward(libc::SI_QUEUE));
        assert!(should_forward(libc::SI_TKILL));
    }

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
    }
}
