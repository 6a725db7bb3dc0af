//! Result files on the command line: default names, and core's atomic output with its errors
//! as usage errors (exit 2), checked before any work starts.
use crate::UsageError;
use std::path::{Path, PathBuf};
use wattbench_core::output::OutputFile;

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

/// Get ready to write `path` (see [`OutputFile::prepare`]); an unwritable place is a usage
/// error, refused before the work.
pub fn prepare(path: &Path) -> anyhow::Result<OutputFile> {
    OutputFile::prepare(path).map_err(|e| UsageError(e.to_string()).into())
}

/// Write `bytes` into the prepared file.
pub fn commit(file: OutputFile, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(file.commit(bytes)?)
}
