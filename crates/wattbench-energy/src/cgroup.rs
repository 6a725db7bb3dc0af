//! A cgroup (v2) of its own for a measured command, so that its CPU time and memory include
//! every process it starts, even those that double-fork or `setsid` out of its process tree.
//!
//! The group is made under this process's own cgroup in the unified hierarchy (found from
//! `/proc/self/mountinfo` and `/proc/self/cgroup`); the child joins it between `fork` and
//! `exec`, so everything it starts is born inside. CPU time comes from `cpu.stat`
//! (`usage_usec`, kept by the kernel for every cgroup, exited processes included), memory
//! from `memory.peak` where the memory controller is enabled for the group, else from the
//! summed RSS of its members, sampled. Where no group can be made (no cgroup v2, no
//! permission), `measure` falls back to the process tree and warns when processes leave it.
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::procfs::{self, TreeSnapshot};

/// A cgroup made for one measured command, removed when released.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    parent: PathBuf,
    procs: CString,
    /// Set once the command has exec'd ([`Cgroup::command_started`]); until then a member
    /// may be the forked child before `exec`, whose RSS is a copy of this process's.
    started: AtomicBool,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Cgroup {
    /// Makes a new group beside nothing else, under this process's own cgroup; the error
    /// says why not (no cgroup v2 mount, no permission, a read-only hierarchy).
    pub fn create() -> Result<Cgroup, String> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let proc_cgroup = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let parent = wattbench_core::memory::unified_dir(&proc_cgroup, &mountinfo).ok_or(
            "this process is not in a mounted cgroup v2 hierarchy (no cgroup2 mount, or no \
             `0::` line in /proc/self/cgroup)",
        )?;
        let name = format!(
            "wattbench-measure-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(|_| "cgroup path holds a NUL byte".to_string())?;
        Ok(Cgroup {
            dir,
            parent,
            procs,
            started: AtomicBool::new(false),
        })
    }

    /// The group's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Makes the command join this group in the child, before `exec`. If it cannot join,
    /// the child exits before `exec` and `spawn` returns the error: the command has not run,
    /// and can be run again followed another way, instead of running outside the group
    /// whose counters would then miss it.
    pub fn join_on_spawn(&self, cmd: &mut Command) {
        let procs = self.procs.clone();
        // SAFETY: the closure runs in the forked child before exec and only calls the
        // async-signal-safe open, write and close on a path prepared before the fork (and
        // reads errno for the error).
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if written == 1 {
                    Ok(())
                } else {
                    Err(err)
                }
            });
        }
    }

    /// Says that `spawn` has returned, so the command has exec'd: members' memory is
    /// counted from now on (before, a member's RSS could be this process's, copied at fork).
    pub fn command_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    /// Process ids in the group now.
    pub fn members(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// CPU seconds used by every process that has been in the group, exited ones included.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        let path = self.dir.join("cpu.stat");
        let s = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        s.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us as f64 * 1e-6)
            .ok_or_else(|| format!("{} has no usage_usec", path.display()))
    }

    /// The kernel's peak memory of the group, where the memory controller is enabled for it.
    pub fn memory_peak(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join("memory.peak"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// CPU time of the group and summed RSS of its members now.
    /// Before [`Cgroup::command_started`], no memory is counted.
    pub fn snapshot(&self) -> Result<TreeSnapshot, String> {
        let members = self.members();
        let rss_bytes = if self.started.load(Ordering::SeqCst) {
            members.iter().filter_map(|&p| procfs::rss_bytes(p)).sum()
        } else {
            0
        };
        Ok(TreeSnapshot {
            cpu_seconds: self.cpu_seconds()?,
            rss_bytes,
            processes: members.len(),
        })
    }

    /// Removes the group. Processes still in it (started by the command and still running)
    /// are moved back to this process's cgroup first, unharmed; their ids are returned.
    pub fn release(&self) -> Vec<i32> {
        let left = self.members();
        for p in &left {
            let _ = fs::write(self.parent.join("cgroup.procs"), p.to_string());
        }
        let _ = fs::remove_dir(&self.dir);
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that cannot join the group must not run outside it: spawn fails, the command
    /// never executes, and the error is the one the join met.
    #[test]
    fn a_failed_join_stops_the_command_before_exec() {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        let g = Cgroup {
            dir: dir.path().join("no-such-group"),
            parent: dir.path().to_path_buf(),
            procs: CString::new(
                dir.path()
                    .join("no-such-group/cgroup.procs")
                    .as_os_str()
                    .as_bytes(),
            )
            .unwrap(),
            started: AtomicBool::new(false),
        };
        let mut cmd = Command::new("touch");
        cmd.arg(&ran);
        g.join_on_spawn(&mut cmd);
        let e = cmd.spawn().expect_err("spawn succeeded outside the group");
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        assert!(!ran.exists(), "the command ran although the join failed");
    }
}
