//! Host memory probes for the harness: peak RSS of this process (reset per case) and the
//! memory available for new allocations: the host's `MemAvailable`, or less where this
//! process's cgroup (a container, a Kubernetes pod, a Slurm job) is limited, since the kernel
//! kills a process that passes its cgroup's limit whatever the host has free. Linux `/proc`
//! and `/sys/fs/cgroup`; `None` elsewhere. The parsers are pure functions of the files' text.
use std::fs;
use std::path::{Path, PathBuf};

fn status_kib(field: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Reset the kernel's peak-RSS mark for this process (`/proc/self/clear_refs`, value 5).
/// Returns false when the kernel does not allow it; the next peak then covers the process
/// lifetime so far, which the caller must say.
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident set size of this process since the last reset, in bytes (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Memory a new allocation can take without swapping or being killed, and which limit
/// decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Available {
    /// Bytes.
    pub bytes: u64,
    /// The limit that applied, in words: `MemAvailable in /proc/meminfo`, or a cgroup's
    /// (`the cgroup v2 limit of /slurm/job_7: memory.max 8.00 GiB, 7.50 GiB in use`).
    pub limit: String,
}

/// Memory available for new allocations: the least of the host's `MemAvailable` and what
/// the memory limits of this process's cgroup and its ancestors leave ([`Headroom`]).
pub fn available() -> Option<Available> {
    let host = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_available(&s));
    let cgroup = (fs::read_to_string("/proc/self/cgroup").ok())
        .zip(fs::read_to_string("/proc/self/mountinfo").ok())
        .and_then(|(cg, mi)| cgroup_headroom(Path::new("/"), &cg, &mi));
    least(host, cgroup)
}

/// The bytes of [`available`].
pub fn available_bytes() -> Option<u64> {
    available().map(|a| a.bytes)
}

/// The smaller of the host's available memory and a cgroup's headroom, naming the one that
/// applied.
pub fn least(host: Option<u64>, cgroup: Option<Headroom>) -> Option<Available> {
    let host = host.map(|bytes| Available {
        bytes,
        limit: "MemAvailable in /proc/meminfo".into(),
    });
    let cgroup = cgroup.map(|h| Available {
        bytes: h.free(),
        limit: h.describe(),
    });
    match (host, cgroup) {
        (Some(h), Some(c)) => Some(if c.bytes < h.bytes { c } else { h }),
        (h, c) => h.or(c),
    }
}

/// `MemAvailable` of `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Which cgroup version a limit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The unified hierarchy: `memory.max`, `memory.current`.
    V2,
    /// The v1 memory controller: `memory.limit_in_bytes`, `memory.usage_in_bytes`.
    V1,
}

/// What a cgroup's memory limit leaves: the limit, and what its processes use of it that
/// the kernel cannot reclaim (usage less the inactive page cache, which it drops before it
/// kills: Kubernetes' "working set").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headroom {
    /// The cgroup's limit, bytes.
    pub limit: u64,
    /// Its working set, bytes.
    pub used: u64,
    /// Which version.
    pub version: CgroupVersion,
    /// The cgroup's path in its hierarchy (`/slurm/uid_0/job_7`).
    pub path: String,
}

impl Headroom {
    /// Bytes left under the limit.
    pub fn free(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// `the cgroup v2 limit of /slurm/job_7: memory.max 8.00 GiB, 7.50 GiB in use`.
    pub fn describe(&self) -> String {
        let (v, file) = match self.version {
            CgroupVersion::V2 => ("v2", "memory.max"),
            CgroupVersion::V1 => ("v1", "memory.limit_in_bytes"),
        };
        format!(
            "the cgroup {v} limit of {}: {file} {}, {} in use",
            self.path,
            crate::units::gib(self.limit),
            crate::units::gib(self.used)
        )
    }
}

/// A v1 limit at or above this is no limit (the kernel's "unlimited" is
/// 9223372036854771712, `PAGE_COUNTER_MAX` pages).
const V1_UNLIMITED: u64 = 1 << 62;

/// A number of a cgroup file (`8589934592\n`).
fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// `key value` of a cgroup's `memory.stat` text.
fn stat(memory_stat: &str, key: &str) -> Option<u64> {
    memory_stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| number(v))?
    })
}

/// The headroom of a cgroup v2 from its `memory.max` (`max`: no limit, `None`),
/// `memory.current` and `memory.stat` (`inactive_file`, reclaimable) texts.
pub fn v2_headroom(max: &str, current: &str, memory_stat: &str, path: &str) -> Option<Headroom> {
    if max.trim() == "max" {
        return None;
    }
    let current = number(current)?;
    Some(Headroom {
        limit: number(max)?,
        used: current.saturating_sub(stat(memory_stat, "inactive_file").unwrap_or(0)),
        version: CgroupVersion::V2,
        path: path.into(),
    })
}

/// The headroom of a cgroup v1 from its `memory.limit_in_bytes` (a huge number: no limit,
/// `None`), `memory.usage_in_bytes` and `memory.stat` (`total_inactive_file`) texts.
pub fn v1_headroom(limit: &str, usage: &str, memory_stat: &str, path: &str) -> Option<Headroom> {
    let limit = number(limit).filter(|&l| l < V1_UNLIMITED)?;
    let usage = number(usage)?;
    let inactive = stat(memory_stat, "total_inactive_file")
        .or_else(|| stat(memory_stat, "inactive_file"))
        .unwrap_or(0);
    Some(Headroom {
        limit,
        used: usage.saturating_sub(inactive),
        version: CgroupVersion::V1,
        path: path.into(),
    })
}

/// A hierarchy holding this process's memory cgroup: where it is mounted, and the cgroup's
/// directory under the mount and each of its ancestors' up to the mount (their limits apply
/// too: a Slurm job's or a pod's limit sits above the step's or container's cgroup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryCgroup {
    /// Which version.
    pub version: CgroupVersion,
    /// The directories to read, the process's own first, with the cgroup path each stands for.
    pub dirs: Vec<(PathBuf, String)>,
}

/// This process's memory cgroups, from `/proc/self/cgroup` and `/proc/self/mountinfo`
/// texts: the unified (v2) hierarchy's, and the v1 memory controller's where it is mounted
/// (a hybrid host has both; the v1 one then holds the memory limits).
pub fn memory_cgroups(proc_cgroup: &str, mountinfo: &str) -> Vec<MemoryCgroup> {
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        // `hierarchy-id:controllers:path`; v2 is `0::path`.
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let version = if id == "0" && controllers.is_empty() {
            CgroupVersion::V2
        } else if controllers.split(',').any(|c| c == "memory") {
            CgroupVersion::V1
        } else {
            continue;
        };
        let Some((root, mount)) = mount_of(mountinfo, version) else {
            continue;
        };
        // The path is relative to the hierarchy's root; the mount shows the part under its
        // own root (a container's mount shows its cgroup as `/`).
        let under = (path.strip_prefix(root.trim_end_matches('/')))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or(path);
        let mut dirs = Vec::new();
        let mut rel = under.trim_matches('/').to_string();
        loop {
            let shown = if root == "/" {
                format!("/{rel}")
            } else if rel.is_empty() {
                root.clone()
            } else {
                format!("{}/{rel}", root.trim_end_matches('/'))
            };
            dirs.push((mount.join(&rel), shown));
            match rel.rfind('/') {
                Some(i) => rel.truncate(i),
                None if !rel.is_empty() => rel.clear(),
                None => break,
            }
        }
        out.push(MemoryCgroup { version, dirs });
    }
    out
}

/// This process's own cgroup directory in the unified (v2) hierarchy, from `/proc/self/cgroup`
/// and `/proc/self/mountinfo` texts: the mount point joined with the cgroup's path under the
/// mount's root (a container's mount shows its cgroup as `/`). `None` without a v2 hierarchy.
/// Where `measure` makes the group of a measured command.
pub fn unified_dir(proc_cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    memory_cgroups(proc_cgroup, mountinfo)
        .into_iter()
        .find(|c| c.version == CgroupVersion::V2)
        .and_then(|c| c.dirs.into_iter().next())
        .map(|(dir, _)| dir)
}

/// The (root, mount point) of the cgroup hierarchy of `version` holding the memory
/// controller, from `/proc/self/mountinfo` text.
fn mount_of(mountinfo: &str, version: CgroupVersion) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|l| {
        // `id parent major:minor root mountpoint options... - fstype source superopts`
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split_whitespace();
        let (fstype, superopts) = (post.next()?, post.nth(1).unwrap_or(""));
        let wanted = match version {
            CgroupVersion::V2 => fstype == "cgroup2",
            CgroupVersion::V1 => fstype == "cgroup" && superopts.split(',').any(|o| o == "memory"),
        };
        let mut pre = pre.split_whitespace().skip(3);
        let (root, mount) = (pre.next()?, pre.next()?);
        wanted.then(|| (root.to_string(), PathBuf::from(mount)))
    })
}

/// The least headroom of every memory limit over this process's cgroups and their
/// ancestors, reading their files under `root` (`/`; a fake tree in tests). `None` when no
/// cgroup is limited, or none can be read.
pub fn cgroup_headroom(root: &Path, proc_cgroup: &str, mountinfo: &str) -> Option<Headroom> {
    let read = |dir: &Path, file: &str| {
        let dir = dir.strip_prefix("/").unwrap_or(dir);
        fs::read_to_string(root.join(dir).join(file)).ok()
    };
    let mut least: Option<Headroom> = None;
    for cg in memory_cgroups(proc_cgroup, mountinfo) {
        for (dir, path) in &cg.dirs {
            let stat = read(dir, "memory.stat").unwrap_or_default();
            let h = match cg.version {
                CgroupVersion::V2 => read(dir, "memory.max")
                    .zip(read(dir, "memory.current"))
                    .and_then(|(max, cur)| v2_headroom(&max, &cur, &stat, path)),
                CgroupVersion::V1 => read(dir, "memory.limit_in_bytes")
                    .zip(read(dir, "memory.usage_in_bytes"))
                    .and_then(|(lim, use_)| v1_headroom(&lim, &use_, &stat, path)),
            };
            if let Some(h) = h {
                if least.as_ref().is_none_or(|l| h.free() < l.free()) {
                    least = Some(h);
                }
            }
        }
    }
    least
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn meminfo_and_limit_files_are_parsed() {
        let meminfo =
            "MemTotal:       65536000 kB\nMemFree:  1000 kB\nMemAvailable:   20496132 kB\n";
        assert_eq!(mem_available(meminfo), Some(20496132 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        // v2: `max` is no limit; the inactive page cache is reclaimable, so not in use.
        assert_eq!(v2_headroom("max\n", "123\n", "", "/"), None);
        let stat = "anon 4294967296\nfile 2147483648\ninactive_file 1073741824\nactive_file 1\n";
        let h = v2_headroom("8589934592\n", "6442450944\n", stat, "/kubepods/pod1").unwrap();
        assert_eq!((h.limit, h.used, h.free()), (8 * GIB, 5 * GIB, 3 * GIB));
        assert_eq!(
            h.describe(),
            "the cgroup v2 limit of /kubepods/pod1: memory.max 8.00 GiB, 5.00 GiB in use"
        );
        // Over the limit (usage can pass it briefly): nothing left, not an underflow.
        let h = v2_headroom("100", "200", "", "/x").unwrap();
        assert_eq!(h.free(), 0);
        // v1: the kernel's "unlimited" is a huge number.
        assert_eq!(
            v1_headroom("9223372036854771712\n", "5618278400\n", "", "/"),
            None
        );
        let stat = "cache 10\ninactive_file 5\ntotal_inactive_file 1073741824\n";
        let h = v1_headroom("4294967296", "3221225472", stat, "/docker/abc").unwrap();
        assert_eq!((h.free(), h.version), (2 * GIB, CgroupVersion::V1));
        assert!(h.describe().contains("memory.limit_in_bytes 4.00 GiB"));
    }

    #[test]
    fn the_unified_directory_is_found_under_its_mount() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let pc = "4:memory:/x\n0::/user.slice/session-1.scope\n";
        assert_eq!(
            unified_dir(pc, mi),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/user.slice/session-1.scope"
            ))
        );
        // A mount of a subtree (a container without a cgroup namespace): the path is taken
        // under the mount's root, not joined whole.
        let sub = "41 31 0:38 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            unified_dir("0::/docker/abc/inner\n", sub),
            Some(PathBuf::from("/sys/fs/cgroup/inner"))
        );
        assert_eq!(unified_dir(pc, "1 2 0:1 / / rw - ext4 /dev/x rw\n"), None);
        assert_eq!(unified_dir("4:memory:/x\n", mi), None);
    }

    #[test]
    fn the_cgroup_and_its_ancestors_are_found_from_proc_texts() {
        // A v2 host, the process in a Slurm step: the step and every ancestor up to the mount.
        let mi = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let cgs = memory_cgroups("0::/system.slice/slurmstepd.scope/job_7/step_0\n", mi);
        assert_eq!(cgs.len(), 1);
        let shown: Vec<&str> = cgs[0].dirs.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            shown,
            [
                "/system.slice/slurmstepd.scope/job_7/step_0",
                "/system.slice/slurmstepd.scope/job_7",
                "/system.slice/slurmstepd.scope",
                "/system.slice",
                "/"
            ]
        );
        assert_eq!(
            cgs[0].dirs[1].0,
            Path::new("/sys/fs/cgroup/system.slice/slurmstepd.scope/job_7")
        );
        // A container with its own cgroup namespace: `0::/` and the mount is its cgroup.
        let cgs = memory_cgroups("0::/\n", mi);
        assert_eq!(cgs[0].dirs, [(PathBuf::from("/sys/fs/cgroup"), "/".into())]);
        // A v1 (hybrid) host: the memory controller, with others on its line or not; a
        // container's mount whose root is its own cgroup.
        let mi = "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let pc = "4:cpuacct,memory:/docker/abc\n2:cpu:/docker/abc\n0::/\n";
        let cgs = memory_cgroups(pc, mi);
        assert_eq!(cgs.len(), 2, "{cgs:?}");
        let v1 = cgs.iter().find(|c| c.version == CgroupVersion::V1).unwrap();
        assert_eq!(
            v1.dirs,
            [(PathBuf::from("/sys/fs/cgroup/memory"), "/docker/abc".into())]
        );
        // No memory controller mounted: nothing to read.
        assert!(memory_cgroups("4:memory:/a\n", "").is_empty());
    }

    /// A job limited at an ancestor (Slurm's job cgroup above its step): the least headroom
    /// of the chain applies, and the host's memory only when it is less.
    #[test]
    fn the_least_limit_applies_and_is_named() {
        let root = tempfile::tempdir().unwrap();
        let cg = root.path().join("sys/fs/cgroup");
        let job = cg.join("slurm/job_7");
        let step = job.join("step_0");
        fs::create_dir_all(&step).unwrap();
        let write = |d: &Path, f: &str, v: String| fs::write(d.join(f), v).unwrap();
        write(&step, "memory.max", "max\n".into());
        write(&step, "memory.current", format!("{}\n", GIB));
        write(&job, "memory.max", format!("{}\n", 4 * GIB));
        write(&job, "memory.current", format!("{}\n", 3 * GIB));
        write(&job, "memory.stat", format!("inactive_file {}\n", GIB / 2));
        let mi = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = cgroup_headroom(root.path(), "0::/slurm/job_7/step_0\n", mi).unwrap();
        assert_eq!((h.path.as_str(), h.free()), ("/slurm/job_7", 3 * GIB / 2));
        // The host has 60 GiB free: the job's limit is what applies, and is named.
        let a = least(Some(60 * GIB), Some(h.clone())).unwrap();
        assert_eq!(a.bytes, 3 * GIB / 2);
        assert!(
            a.limit.contains("cgroup v2 limit of /slurm/job_7"),
            "{}",
            a.limit
        );
        // A host with less free than the cgroup leaves: the host's figure.
        let a = least(Some(GIB), Some(h)).unwrap();
        assert_eq!(
            (a.bytes, a.limit.as_str()),
            (GIB, "MemAvailable in /proc/meminfo")
        );
        // No limit anywhere: the host's figure alone.
        write(&job, "memory.max", "max\n".into());
        assert_eq!(
            cgroup_headroom(root.path(), "0::/slurm/job_7/step_0\n", mi),
            None
        );
        assert_eq!(least(Some(GIB), None).unwrap().bytes, GIB);
    }
}
