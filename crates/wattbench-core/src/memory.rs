//! Host memory probes for the harness: peak RSS of this process (reset per case) and the
//! memory available for new allocations. Linux `/proc`; `None` elsewhere.
use std::fs;

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

/// Memory available for new allocations without swapping (`MemAvailable`), in bytes.
pub fn available_bytes() -> Option<u64> {
    let s = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = s
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}
