//! Result files on the command line: default names, and core's atomic output with its errors
//! as usage errors (exit 2), checked before any work starts.
use crate::UsageError;
use std::path::{Path, PathBuf};
use wattbench_core::output::{OutputError, OutputFile};
use wattbench_core::result::RunFile;

/// `results/runs/<UTC time>-<pid>-<host>-<label>.json` (e.g.
/// `20261129T082622.764Z-24339-vm-tiny.json`).
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

/// [`prepare`] for a command that prints `prints` on standard output besides writing the file:
/// `-o /dev/stdout` would mix the two, and is refused (`instead` says what to do).
pub fn prepare_beside_stdout(
    path: &Path,
    prints: &str,
    instead: &str,
) -> anyhow::Result<OutputFile> {
    let file = prepare(path)?;
    if file.is_standard_output() {
        return Err(UsageError(format!(
            "-o {}: this command prints {prints} on standard output, which would mix with the \
             document; {instead}",
            path.display()
        ))
        .into());
    }
    Ok(file)
}

/// Write `bytes` into the prepared file.
pub fn commit(file: OutputFile, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(file.commit(bytes)?)
}

/// Exit code of `run` and `train` when the work was done but its result file could not be
/// written where asked (a full disk, a folder gone): it was saved in a fallback file, which
/// the message names (see [`write_after_work`]).
pub const EXIT_NOT_WRITTEN: u8 = 4;

/// A result document written after the work, by [`write_after_work`].
pub struct Written {
    /// The document, as pretty JSON.
    pub text: String,
    /// Where it is: the path asked for, or the fallback file; `None` when no file holds it
    /// (no fallback could be written either): the caller prints `text` on standard output.
    pub path: Option<PathBuf>,
    /// When it could not be written where asked: the one message to print (after the
    /// results), saying why and where the results are.
    pub failure: Option<String>,
}

impl Written {
    /// Where the document is, for the line that names it: its file, or where it went when
    /// no file holds it.
    pub fn location(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "(no file: the result document is on standard output)".into(),
        }
    }

    /// No file holds the document: the caller prints it on standard output.
    pub fn unsaved(&self) -> bool {
        self.path.is_none()
    }
}

/// Write the result document `text` into the prepared file once the work is done. A failure
/// there (the disk filled during the run, the folder went away) does not throw the work
/// away: the document is saved in a fallback file (`$TMPDIR`, else the current folder:
/// `wattbench-unsaved-XXXXXX-<name>`), and [`Written::failure`] says so; the caller prints its
/// results, then the message, and exits [`EXIT_NOT_WRITTEN`]. Shared by `run`, `run
/// --devices` and `train`.
pub fn write_after_work(file: OutputFile, text: String) -> anyhow::Result<Written> {
    let asked = file.path().to_path_buf();
    let Err(e) = file.commit_or_fallback(text.as_bytes()) else {
        return Ok(Written {
            text,
            path: Some(asked),
            failure: None,
        });
    };
    let why = match &e.error {
        OutputError::Unwritable { error, .. } => error.to_string(),
        other => other.to_string(),
    };
    let (path, failure) = match e.saved_at {
        Some(saved) => {
            let msg = format!(
                "the results could not be written to {}: {why}; they were saved in {} instead \
                 (move that file where you want it)",
                asked.display(),
                saved.display()
            );
            (Some(saved), msg)
        }
        None => {
            let tried: Vec<String> = e
                .fallback_errors
                .iter()
                .map(|(d, err)| format!("{}: {err}", d.display()))
                .collect();
            let msg = format!(
                "the results could not be written to {}: {why}; nor saved in a fallback file \
                 ({}); the result document was printed on standard output instead",
                asked.display(),
                tried.join("; ")
            );
            (None, msg)
        }
    };
    Ok(Written {
        text,
        path,
        failure: Some(failure),
    })
}

/// The identity of the regular file at `p`, links followed: its device and inode; `None`
/// when there is none (missing, a folder, a device file).
fn identity(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    m.is_file().then(|| (m.dev(), m.ino()))
}

/// Whether a file directly inside an input folder is one that commands read from folders:
/// `*.json` (result files, merged files, measure reports, ceilings files) and `*.trace.csv`.
fn read_from_folders(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "json")
        || p.file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(".trace.csv"))
}

/// Refuses (a usage error, exit 2: nothing is written) an `output` that is, links followed,
/// one of the `inputs` (files, or folders: then a file inside that would be read), so that
/// writing it can never destroy what the command reads; and a new file that folder readers
/// would pick up inside an input folder, so that the folder never holds its own results twice
/// (a merge beside the runs it merges). Every command that reads files and writes one calls
/// this before writing.
pub fn not_an_input<P: AsRef<Path>>(output: &Path, inputs: &[P]) -> Result<(), UsageError> {
    let Some(out) = identity(output) else {
        let parent = output
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let parent = std::fs::canonicalize(parent).ok();
        for input in inputs.iter().map(AsRef::as_ref) {
            if input.is_dir()
                && read_from_folders(output)
                && parent.is_some()
                && std::fs::canonicalize(input).ok() == parent
            {
                return Err(UsageError(format!(
                    "the output {} would be a file of the input folder {}, which commands read \
                     as results: the folder would then hold these runs twice; give an output \
                     path outside the folder (nothing was written)",
                    output.display(),
                    input.display()
                )));
            }
        }
        return Ok(());
    };
    // The input's name, when it is spelled otherwise (a link, another path).
    let also = |p: &Path| {
        if p == output {
            String::new()
        } else {
            format!(" ({})", p.display())
        }
    };
    for input in inputs.iter().map(AsRef::as_ref) {
        if input.is_dir() {
            let Ok(entries) = std::fs::read_dir(input) else {
                continue;
            };
            for p in entries.flatten().map(|e| e.path()) {
                if read_from_folders(&p) && identity(&p) == Some(out) {
                    return Err(UsageError(format!(
                        "the output {} is a file of the input folder {}{}, which this command \
                         reads: writing it would destroy that input; give an output path \
                         outside the folder (nothing was written)",
                        output.display(),
                        input.display(),
                        also(&p)
                    )));
                }
            }
        } else if identity(input) == Some(out) {
            return Err(UsageError(format!(
                "the output {} is also an input{}: writing it would destroy that input; give \
                 another output path (nothing was written)",
                output.display(),
                also(input)
            )));
        }
    }
    Ok(())
}

/// The file a run's label names: `PATH`, or `PATH#i` for the i-th run of a merged file (as
/// `ResultSet` labels them).
pub fn label_path(label: &str) -> &str {
    match label.rsplit_once('#') {
        Some((p, i)) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => label,
    }
}

/// Refuses (exit 2) a file given twice among `paths` (the files a command reads, folders
/// expanded): the same file, links followed, counted twice.
pub fn distinct_files<P: AsRef<Path>>(paths: &[P]) -> Result<(), UsageError> {
    let mut seen: Vec<((u64, u64), &Path)> = Vec::new();
    for p in paths.iter().map(AsRef::as_ref) {
        let Some(id) = identity(p) else { continue };
        if let Some((_, first)) = seen.iter().find(|(i, _)| *i == id) {
            return Err(UsageError(format!(
                "{} is given twice{}: each input counts once; give it once",
                first.display(),
                if first == &p {
                    String::new()
                } else {
                    format!(" (also as {})", p.display())
                }
            )));
        }
        seen.push((id, p));
    }
    Ok(())
}

/// Refuses (exit 2) the same run twice among `runs` (label, run): the same file given twice,
/// or two files (or runs of merged files) with identical contents. Counted twice, one run
/// would look like two runs with no variation between them, and intervals pooled over them
/// would be too narrow.
pub fn distinct_runs<'a>(
    runs: impl IntoIterator<Item = (&'a str, &'a RunFile)>,
) -> Result<(), UsageError> {
    let runs: Vec<(&str, &RunFile)> = runs.into_iter().collect();
    for (i, (label, run)) in runs.iter().enumerate() {
        let Some((first, _)) = runs[..i]
            .iter()
            .find(|(_, r)| r.created_at == run.created_at && *r == *run)
        else {
            continue;
        };
        fn file(l: &str) -> (PathBuf, &str) {
            let p = label_path(l);
            (
                std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p)),
                &l[p.len()..],
            )
        }
        return Err(UsageError(if file(first) == file(label) {
            format!(
                "{first} is given twice{}: each run counts once; give it once",
                if *first == *label {
                    String::new()
                } else {
                    format!(" (also as {label})")
                }
            )
        } else {
            format!(
                "{first} and {label} hold the same run (identical contents: a copy?): counted \
                 twice it would look like two runs with no variation between them; give it once"
            )
        }));
    }
    Ok(())
}

/// The one run of the result file at `path`, for the commands that read a single run
/// (`report` in Markdown, `export`); a folder, an unreadable file or another document is a
/// usage error that says what to give instead.
pub fn read_run(path: &Path) -> Result<RunFile, UsageError> {
    if path.is_dir() {
        return Err(UsageError(format!(
            "{} is a folder, and this reads one result file: give one of the files in it \
             (`report --format html`, `compare` and `merge` take folders)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    RunFile::from_json(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))
}
