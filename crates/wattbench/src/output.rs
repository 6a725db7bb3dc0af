//! Result files on the command line: default names, and core's atomic output with its errors
//! as usage errors (exit 2), checked before any work starts.
use crate::UsageError;
use std::path::{Path, PathBuf};
use wattbench_core::output::OutputFile;
use wattbench_core::result::RunFile;

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
    unique(PathBuf::from("results/runs").join(format!("{}-{host}-{label}.json", stamp())))
}

/// A time stamp for default file names that two runs never share: UTC to the millisecond,
/// and this process's id (no two running processes have the same).
pub fn stamp() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    )
}

/// `path`, or `path` with `-2`, `-3`... before its extension when a file of that name
/// already exists: a default name never replaces an earlier result.
pub fn unique(path: PathBuf) -> PathBuf {
    if !path.exists() {
        return path;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..)
        .map(|i| path.with_file_name(format!("{stem}-{i}{ext}")))
        .find(|p| !p.exists())
        .expect("an unused name exists")
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

/// Write the result document `doc` into the prepared file, as pretty JSON; that text.
pub fn write(file: OutputFile, doc: &RunFile) -> anyhow::Result<String> {
    let text = serde_json::to_string_pretty(doc)?;
    commit(file, text.as_bytes())?;
    Ok(text)
}
