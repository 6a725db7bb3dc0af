//! CPU time and resident memory of a process or a process tree, read from `/proc` (Linux).
//!
//! A tree's CPU time is the sum, over its live (and zombie) members, of their own user+system
//! time plus that of the children they have already reaped (`cutime`/`cstime`), so processes
//! that came and went between two samples are still counted. Descendants that daemonise away
//! (re-parented to init) leave the tree; their time is lost, as in every /proc-based tool.

use std::collections::HashSet;
use std::fs;

/// CPU time and memory of a process (tree) at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TreeSnapshot {
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Resident set size summed over the tree, bytes (shared pages counted once per process).
    pub rss_bytes: u64,
    /// Processes in the tree.
    pub processes: usize,
}

/// `sysconf(name)`, or `default` when the system does not say.
fn sysconf_or(name: libc::c_int, default: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as u64
    } else {
        default
    }
}

fn clock_ticks() -> f64 {
    sysconf_or(libc::_SC_CLK_TCK, 100) as f64
}

fn page_size() -> u64 {
    sysconf_or(libc::_SC_PAGESIZE, 4096)
}

/// The kernel's CPU-time accounting tick, seconds (10 ms at the usual USER_HZ of 100).
pub fn tick_seconds() -> f64 {
    1.0 / clock_ticks()
}

/// Fields of `/proc/<pid>/stat` we need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Parent pid.
    pub ppid: i32,
    /// Own user+system ticks.
    pub own_ticks: u64,
    /// Ticks of reaped children.
    pub child_ticks: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name may hold spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field n is f[n - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<i64>().ok();
    Some(Stat {
        ppid: num(4)? as i32,
        own_ticks: (num(14)? + num(15)?).max(0) as u64,
        child_ticks: (num(16)? + num(17)?).max(0) as u64,
        rss_pages: num(24)?.max(0) as u64,
    })
}

fn read_stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Children of `pid` from `/proc/<pid>/task/*/children`; `None` where the kernel lacks that
/// file (CONFIG_PROC_CHILDREN), so the caller falls back to a scan of `/proc`.
pub(crate) fn children_of(pid: i32) -> Option<Vec<i32>> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    let mut seen_file = false;
    for t in tasks.flatten() {
        let p = t.path().join("children");
        if let Ok(s) = fs::read_to_string(&p) {
            seen_file = true;
            out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
    }
    seen_file.then_some(out)
}

fn scan_all() -> Vec<(i32, Stat)> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .collect()
}

/// CPU time and memory of `root` and all its descendants. Errors when `root` no longer exists.
pub fn tree_snapshot(root: i32) -> Result<TreeSnapshot, String> {
    tree_members(root).map(|(s, _)| s)
}

/// Resident memory of one process, bytes; `None` when it is gone.
pub fn rss_bytes(pid: i32) -> Option<u64> {
    read_stat(pid).map(|s| s.rss_pages * page_size())
}

/// Whether process `pid` exists (zombies included).
pub fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// [`tree_snapshot`], and the process ids in the tree.
pub fn tree_members(root: i32) -> Result<(TreeSnapshot, HashSet<i32>), String> {
    let ticks = clock_ticks();
    let page = page_size();
    let root_stat = read_stat(root).ok_or_else(|| format!("process {root} is gone"))?;
    let mut seen = HashSet::new();
    let mut total_ticks = 0u64;
    let mut rss = 0u64;
    let mut add = |st: &Stat| {
        total_ticks += st.own_ticks + st.child_ticks;
        rss += st.rss_pages * page;
    };
    add(&root_stat);
    seen.insert(root);
    let mut stack = vec![root];
    let mut fallback = false;
    while let Some(p) = stack.pop() {
        match children_of(p) {
            Some(kids) => {
                for k in kids {
                    if seen.insert(k) {
                        if let Some(st) = read_stat(k) {
                            add(&st);
                        }
                        stack.push(k);
                    }
                }
            }
            None => {
                fallback = true;
                break;
            }
        }
    }
    if fallback {
        // Rebuild from a full scan of parent links.
        total_ticks = 0;
        rss = 0;
        seen.clear();
        let all = scan_all();
        let mut frontier = vec![root];
        seen.insert(root);
        let mut add2 = |st: &Stat| {
            total_ticks += st.own_ticks + st.child_ticks;
            rss += st.rss_pages * page;
        };
        add2(&root_stat);
        while let Some(p) = frontier.pop() {
            for (pid, st) in all.iter().filter(|(_, st)| st.ppid == p) {
                if seen.insert(*pid) {
                    add2(st);
                    frontier.push(*pid);
                }
            }
        }
    }
    let snap = TreeSnapshot {
        cpu_seconds: total_ticks as f64 / ticks,
        rss_bytes: rss,
        processes: seen.len(),
    };
    Ok((snap, seen))
}

fn timeval_s(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 * 1e-6
}

/// CPU seconds (user + system) of a `rusage`.
pub fn rusage_cpu_seconds(r: &libc::rusage) -> f64 {
    timeval_s(r.ru_utime) + timeval_s(r.ru_stime)
}

/// The current process, all threads: CPU time from `getrusage` (µs resolution) and RSS from
/// `/proc/self/statm`.
pub fn self_snapshot() -> Result<TreeSnapshot, String> {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Err(format!("getrusage: {}", std::io::Error::last_os_error()));
    }
    let rss = fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|p| p * page_size())
        .unwrap_or(0);
    Ok(TreeSnapshot {
        cpu_seconds: rusage_cpu_seconds(&ru),
        rss_bytes: rss,
        processes: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_parentheses_in_name() {
        let line = "1234 (we(ird) name) S 77 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 50 7 3 20 0 1 0 12345 1000000 321 18446744073709551615";
        let st = parse_stat(line).unwrap();
        assert_eq!(st.ppid, 77);
        assert_eq!(st.own_ticks, 300);
        assert_eq!(st.child_ticks, 10);
        assert_eq!(st.rss_pages, 321);
    }

    #[test]
    fn own_process_snapshot_counts_busy_time() {
        // Spin until the CPU time moves, however slow or loaded the machine (the cap only
        // stops a broken reading from spinning forever): the snapshot must see busy time.
        let a = self_snapshot().unwrap();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        let mut b = self_snapshot().unwrap();
        while b.cpu_seconds <= a.cpu_seconds && start.elapsed().as_secs() < 60 {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
            b = self_snapshot().unwrap();
        }
        assert!(
            b.cpu_seconds > a.cpu_seconds,
            "60 s of spinning never counted"
        );
        assert!(b.rss_bytes > 0);
    }

    #[test]
    fn tree_of_missing_process_is_an_error() {
        assert!(tree_snapshot(i32::MAX - 1).is_err());
    }
}
