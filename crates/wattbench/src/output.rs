//! Result files: default names, and atomic writes that are refused before any work starts
//! when the location is not writable.
use crate::UsageError;
use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `results/runs/<UTC time>-<host>-<label>.json`.
pub fn default_path(label: &str) -> PathBuf {
    let host = sysinfo::System::host_name().unwrap_or_else(|_| "host".into());
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ts = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    PathBuf::from("results/runs").join(format!("{ts}-{host}-{label}.json"))
}

/// A temporary file beside `path` (mode 0644 once in place), proving the location is
/// writable before the work starts.
pub fn open(path: &Path) -> Result<tempfile::NamedTempFile> {
    let usage = |m: String| anyhow::Error::from(UsageError(m));
    if path.is_dir() {
        return Err(usage(format!(
            "--output {} is a directory; give a file path",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        usage(format!(
            "cannot create output directory {}: {e}",
            dir.display()
        ))
    })?;
    tempfile::Builder::new()
        .prefix(".wattbench-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(|e| {
            usage(format!(
                "cannot write to {}: {e}; choose another --output",
                dir.display()
            ))
        })
}

/// Write `bytes` into `tmp`, flush it to disk and move it onto `path`.
pub fn commit(mut tmp: tempfile::NamedTempFile, bytes: &[u8], path: &Path) -> Result<()> {
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("moving the result into {}", path.display()))?;
    Ok(())
}

/// A quantity in `unit`, scaled to units, milli- or micro-units.
fn si(v: f64, unit: &str) -> String {
    if v >= 1.0 {
        format!("{v:.3} {unit}")
    } else if v >= 1e-3 {
        format!("{:.3} m{unit}", v * 1e3)
    } else {
        format!("{:.2} µ{unit}", v * 1e6)
    }
}

/// Seconds for tables: `1.234 s`, `2.345 ms`, `3.45 µs`.
pub fn seconds(s: f64) -> String {
    si(s, "s")
}

/// Joules for tables: `1.234 J`, `2.345 mJ`, `3.45 µJ`.
pub fn joules(j: f64) -> String {
    si(j, "J")
}
