//! Writing result files without losing or clobbering anything: the one place every command
//! (and the kernel cache) writes a file.
//!
//! [`OutputFile::prepare`] runs before any work, so an unwritable location is refused before a
//! long run starts: it creates a missing parent folder and proves it writable with a temporary
//! file it removes at once. [`OutputFile::commit`] writes a temporary file beside the target,
//! flushes it to disk (`fsync`) and renames it over the target, then flushes the folder (the
//! rename is on disk only then), so a reader sees the old file or the complete new one, never a
//! half-written one. The temporary file exists only during
//! the commit: a process that exits without unwinding while it works (a second Ctrl-C aborts
//! at once) leaves none behind. Files are created 0644, like any file the user writes.
//!
//! A commit that fails after the work (the disk filled during a long run, the folder went
//! away) need not lose the work: [`OutputFile::commit_or_fallback`] then saves the same bytes
//! in a fallback file (in `$TMPDIR`, else the current folder) and says where.
//!
//! What the rename must not do: replace a device file or a FIFO (`--output /dev/null` as root
//! would replace the system's `/dev/null` with a regular file), or replace a symbolic link
//! with a file, or replace what the process's standard output stands for. `/dev/stdout` and
//! `/dev/stderr` (and their `/dev/fd/N`, `/proc/self/fd/N` names) are written through the
//! process's own stream (a pipe, or a file the shell opened to append to, stays one); other
//! device files and FIFOs are written directly; a symbolic link is followed and its target is
//! replaced.
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be written; the message says which path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path names a directory.
    #[error("{0} is a directory; give a file path")]
    IsDirectory(PathBuf),
    /// The location cannot be written. (The OS error is part of the message, not a
    /// `source`: printed with its causes, the message would say it twice.)
    #[error("cannot write {path}: {error}; choose another output path")]
    Unwritable {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// Symbolic links loop or nest too deep.
    #[error("{0}: too many levels of symbolic links")]
    LinkLoop(PathBuf),
}

enum Target {
    /// A regular file (or a new one): write a temporary file beside it in `dir`, then
    /// rename.
    Replace { dir: PathBuf, dest: PathBuf },
    /// A device file or FIFO: written in place, never replaced.
    Direct(PathBuf),
    /// The process's standard output (`true`) or error stream.
    Stream { stdout: bool },
}

/// The open file descriptor of this process that `path` names: `/dev/stdout` (1),
/// `/dev/stderr` (2), `/dev/fd/N`, `/proc/self/fd/N`, `/proc/thread-self/fd/N` and
/// `/proc/<this pid>/fd/N`.
fn descriptor(path: &Path) -> Option<u32> {
    let name = path.to_str()?;
    match name {
        "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => {}
    }
    let pid = format!("/proc/{}/fd/", std::process::id());
    let n = [
        "/dev/fd/",
        "/proc/self/fd/",
        "/proc/thread-self/fd/",
        pid.as_str(),
    ]
    .iter()
    .find_map(|p| name.strip_prefix(p))?;
    n.parse().ok()
}

/// A file that will be written once the work is done.
pub struct OutputFile {
    shown: PathBuf,
    target: Target,
}

/// Follow symbolic links at `path` to the path a write must land on.
fn resolve_links(path: &Path) -> Result<PathBuf, OutputError> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p).map_err(|source| OutputError::Unwritable {
                    path: path.to_path_buf(),
                    error: source,
                })?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(OutputError::LinkLoop(path.to_path_buf()))
}

/// A new temporary file in `dir`, 0644, removed when dropped.
fn temporary_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".wattbench-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
}

impl OutputFile {
    /// Get ready to write `path`: refuse a directory, and prove the location writable (a
    /// temporary file beside the target, removed at once; where the folder is missing, a
    /// temporary folder in the nearest one that exists, as the folder is made only at
    /// [`OutputFile::commit`]; a device file or FIFO is checked for write permission and
    /// written in place). Nothing is left on disk until [`OutputFile::commit`].
    pub fn prepare(path: &Path) -> Result<OutputFile, OutputError> {
        let unwritable = |error| OutputError::Unwritable {
            path: path.to_path_buf(),
            error,
        };
        match descriptor(path) {
            Some(n @ (1 | 2)) => {
                return Ok(OutputFile {
                    shown: path.to_path_buf(),
                    target: Target::Stream { stdout: n == 1 },
                })
            }
            // Another descriptor open on a file (`3>>log`): a rename would replace the file
            // rather than write through the descriptor.
            Some(_) if std::fs::metadata(path).is_ok_and(|m| m.is_file()) => {
                return Err(unwritable(std::io::Error::other(
                    "it names an open file descriptor whose file would be replaced, not \
                     written through; give the file's own path",
                )))
            }
            _ => {}
        }
        // What the path is, as the kernel follows it (a `/proc/self/fd/N` link to a pipe has
        // no path of its own to follow by hand).
        let special = std::fs::metadata(path).ok().filter(|m| {
            let ft = m.file_type();
            ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket()
        });
        let dest = match special {
            Some(_) => path.to_path_buf(),
            None => resolve_links(path)?,
        };
        if let Ok(meta) = std::fs::metadata(&dest) {
            let ft = meta.file_type();
            if ft.is_dir() {
                return Err(OutputError::IsDirectory(path.to_path_buf()));
            }
            if ft.is_socket() {
                // open(2) never opens a socket: refused now, not after the work.
                return Err(unwritable(std::io::Error::other(
                    "a socket cannot be written as a file",
                )));
            }
            if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                if meta.permissions().readonly() {
                    return Err(unwritable(std::io::Error::from(
                        std::io::ErrorKind::PermissionDenied,
                    )));
                }
                // A device is opened now to see that this user may write it (mode bits alone
                // do not say whose); a FIFO is not, as its open waits for a reader.
                if !ft.is_fifo() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&dest)
                        .map_err(unwritable)?;
                }
                return Ok(OutputFile {
                    shown: path.to_path_buf(),
                    target: Target::Direct(dest),
                });
            }
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dir.is_dir() {
            temporary_in(&dir)
                .and_then(|probe| probe.close())
                .map_err(unwritable)?;
        } else {
            // A missing folder is made at the commit, not now: a command refused after this
            // (bad input) leaves nothing behind. The nearest folder that exists must let it
            // be made: a probe folder there, removed at once.
            let existing = dir
                .ancestors()
                .find(|a| a.as_os_str().is_empty() || a.exists())
                .map(|a| {
                    if a.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        a
                    }
                })
                .unwrap_or(Path::new("."));
            if !existing.is_dir() {
                return Err(unwritable(std::io::Error::other(format!(
                    "{} is not a folder",
                    existing.display()
                ))));
            }
            tempfile::Builder::new()
                .prefix(".wattbench-")
                .tempdir_in(existing)
                .and_then(|probe| probe.close())
                .map_err(unwritable)?;
        }
        Ok(OutputFile {
            shown: path.to_path_buf(),
            target: Target::Replace { dir, dest },
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Whether the document goes to this process's standard output (`-o /dev/stdout`), where
    /// a command's other output would mix with it.
    pub fn is_standard_output(&self) -> bool {
        matches!(self.target, Target::Stream { stdout: true })
    }

    /// Whether a regular file holds the document once written (not a stream, device or
    /// FIFO), one a later step can read back.
    pub fn is_regular_file(&self) -> bool {
        matches!(self.target, Target::Replace { .. })
    }

    /// Write `bytes`, flush them to disk and put them in place. On error nothing is left
    /// behind: the temporary file is removed and the old file, if any, is untouched.
    pub fn commit(self, bytes: &[u8]) -> Result<(), OutputError> {
        let unwritable = |error| OutputError::Unwritable {
            path: self.shown.clone(),
            error,
        };
        match self.target {
            Target::Stream { stdout } => {
                use std::os::fd::AsFd;
                let written = if stdout {
                    let mut s = std::io::stdout().lock();
                    s.write_all(bytes).and_then(|_| s.flush())
                } else {
                    let mut s = std::io::stderr().lock();
                    s.write_all(bytes).and_then(|_| s.flush())
                };
                written.map_err(unwritable)?;
                // Where the stream is a file (`>> log`), to disk as a replaced file would be; a
                // pipe or terminal cannot be synced, and need not be.
                let fd = if stdout {
                    std::io::stdout().as_fd().try_clone_to_owned()
                } else {
                    std::io::stderr().as_fd().try_clone_to_owned()
                };
                if let Ok(f) = fd.map(std::fs::File::from) {
                    if f.metadata().is_ok_and(|m| m.is_file()) {
                        f.sync_data().map_err(unwritable)?;
                    }
                }
                Ok(())
            }
            Target::Direct(dest) => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&dest)
                    .map_err(unwritable)?;
                f.write_all(bytes)
                    .and_then(|_| f.flush())
                    .map_err(unwritable)
            }
            Target::Replace { dir, dest } => {
                // The folder `prepare` found missing (made now: nothing on disk before).
                if !dir.exists() {
                    std::fs::create_dir_all(&dir).map_err(unwritable)?;
                }
                let mut tmp = temporary_in(&dir).map_err(unwritable)?;
                tmp.write_all(bytes)
                    .and_then(|_| tmp.as_file().sync_all())
                    .map_err(unwritable)?;
                tmp.persist(&dest).map_err(|e| unwritable(e.error))?;
                // The rename is an entry of the folder: until the folder is on disk too, a
                // crash can leave the old file (or none) in place of the new one.
                sync_dir(&dir).map_err(unwritable)
            }
        }
    }
}

/// Flush folder `dir` (its entries: a rename into it) to disk. A file system that cannot
/// sync a folder (it answers EINVAL) is left as it is: there is nothing more to do there.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    tests::SYNCED_DIRS.with(|d| d.borrow_mut().push(dir.to_path_buf()));
    let folder = std::fs::File::open(dir)?;
    match folder.sync_all() {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        r => r,
    }
}

/// A file that could not be written where asked, after the work: why, and where its bytes
/// were saved instead.
#[derive(Debug)]
pub struct NotWritten {
    /// Why the file could not be written where asked.
    pub error: OutputError,
    /// The fallback file holding the bytes; `None` when no fallback could be written either
    /// (the errors of each place tried are in `fallback_errors`).
    pub saved_at: Option<PathBuf>,
    /// Each fallback place tried in vain, with its error.
    pub fallback_errors: Vec<(PathBuf, std::io::Error)>,
}

/// The folders a fallback file is tried in, in order: the system's temporary folder
/// (`$TMPDIR`, else `/tmp`), then the current folder.
pub fn fallback_dirs() -> Vec<PathBuf> {
    vec![std::env::temp_dir(), PathBuf::from(".")]
}

/// Write `bytes` into a new file `wattbench-unsaved-XXXXXX-<name>` in `dir` (0644, flushed
/// to disk, never replacing a file); its path.
fn save_in(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut f = tempfile::Builder::new()
        .prefix("wattbench-unsaved-")
        .suffix(&format!("-{name}"))
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    let (_, path) = f.keep().map_err(|e| e.error)?;
    Ok(path)
}

impl OutputFile {
    /// [`OutputFile::commit`]; when it fails, the same bytes are saved in a fallback file
    /// (see [`fallback_dirs`]; named `wattbench-unsaved-XXXXXX-<the file name asked>`), so
    /// that the work done is not lost. The error says why and where they are.
    pub fn commit_or_fallback(self, bytes: &[u8]) -> Result<(), NotWritten> {
        let name = self
            .shown
            .file_name()
            .map_or_else(|| "result".into(), |n| n.to_string_lossy().into_owned());
        let error = match self.commit(bytes) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let mut fallback_errors = Vec::new();
        for dir in fallback_dirs() {
            match save_in(&dir, &name, bytes) {
                Ok(saved) => {
                    return Err(NotWritten {
                        error,
                        saved_at: Some(saved),
                        fallback_errors,
                    })
                }
                Err(e) => fallback_errors.push((dir, e)),
            }
        }
        Err(NotWritten {
            error,
            saved_at: None,
            fallback_errors,
        })
    }
}

/// [`OutputFile::prepare`] then [`OutputFile::commit`], for writes with no work in between.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    OutputFile::prepare(path)?.commit(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// The folders this thread's commits synced, in order.
        pub(super) static SYNCED_DIRS: std::cell::RefCell<Vec<PathBuf>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// A replaced file's folder is synced after the rename (the rename is on disk only once
    /// the folder is); a folder made for it is the one synced.
    #[test]
    fn the_folder_is_synced_after_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/r.json");
        SYNCED_DIRS.with(|d| d.borrow_mut().clear());
        write_atomically(&path, b"{}").unwrap();
        let synced = SYNCED_DIRS.with(|d| d.borrow().clone());
        assert_eq!(synced, [dir.path().join("new")]);
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
    }

    #[test]
    fn writes_whole_files_0644_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new/sub/r.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_is_refused_and_an_unwritable_place_fails_before_work() {
        let dir = tempfile::tempdir().unwrap();
        let e = OutputFile::prepare(dir.path()).err().unwrap();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let e = OutputFile::prepare(&blocker.join("x.json")).err().unwrap();
        assert!(e.to_string().contains("choose another"), "{e}");
    }

    #[test]
    fn symbolic_links_are_followed_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // A dangling link creates its target.
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("made.json", &dangling).unwrap();
        write_atomically(&dangling, b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("made.json")).unwrap(), b"x");
        // A loop is an error, not a hang.
        let a = dir.path().join("a");
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(matches!(
            OutputFile::prepare(&a),
            Err(OutputError::LinkLoop(_))
        ));
    }

    #[test]
    fn device_files_are_written_in_place() {
        // /dev/null stays a character device.
        write_atomically(Path::new("/dev/null"), b"discarded").unwrap();
        let ft = std::fs::metadata("/dev/null").unwrap().file_type();
        assert!(ft.is_char_device());
    }

    #[test]
    fn nothing_is_on_disk_between_prepare_and_commit() {
        // A process that exits without unwinding (a second Ctrl-C) after `prepare` must leave
        // no temporary file behind: none exists until `commit`.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let out = OutputFile::prepare(&p).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::mem::forget(out); // no destructor runs, as in an exit from a signal handler
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        OutputFile::prepare(&p).unwrap().commit(b"done").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"done");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A missing folder is made by the commit, not by `prepare` (a command refused after
        // it leaves no empty folder), and a file in the way is refused at once.
        let deep = dir.path().join("new/sub/r.json");
        let out = OutputFile::prepare(&deep).unwrap();
        assert!(!dir.path().join("new").exists());
        out.commit(b"deep").unwrap();
        assert_eq!(std::fs::read(&deep).unwrap(), b"deep");
        let e = OutputFile::prepare(&p.join("sub/x.json")).err().unwrap();
        assert!(e.to_string().contains("is not a folder"), "{e}");
    }

    #[test]
    fn a_commit_that_fails_after_the_work_saves_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let out = OutputFile::prepare(&sub.join("r.json")).unwrap();
        // The folder goes away during the work, and a file takes its place.
        std::fs::remove_dir(&sub).unwrap();
        std::fs::write(&sub, "not a folder").unwrap();
        let e = out.commit_or_fallback(b"the results").unwrap_err();
        assert!(matches!(e.error, OutputError::Unwritable { .. }), "{e:?}");
        let saved = e.saved_at.expect("a fallback file");
        assert_eq!(std::fs::read(&saved).unwrap(), b"the results");
        let name = saved.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("wattbench-unsaved-") && name.ends_with("-r.json"),
            "{name}"
        );
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        std::fs::remove_file(&saved).unwrap();
        // The OS error is said once.
        let msg = e.error.to_string();
        assert_eq!(msg.matches("Not a directory").count(), 1, "{msg}");
        assert!(std::error::Error::source(&e.error).is_none());
        // A commit that works leaves no fallback.
        let p = dir.path().join("ok.json");
        OutputFile::prepare(&p)
            .unwrap()
            .commit_or_fallback(b"x")
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }

    #[test]
    fn a_socket_is_refused_before_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = OutputFile::prepare(&sock).err().expect("refused");
        assert!(e.to_string().contains("socket"), "{e}");
    }

    #[test]
    fn another_descriptor_open_on_a_file_is_refused_not_replaced() {
        use std::os::fd::AsRawFd;
        // As after `3>>log`: the descriptor's file would be replaced by a rename, not written
        // through, and the shell's redirection would lose it.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "before\n").unwrap();
        let f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let fd = f.as_raw_fd();
        assert!(fd > 2);
        for name in [format!("/dev/fd/{fd}"), format!("/proc/self/fd/{fd}")] {
            let e = OutputFile::prepare(Path::new(&name))
                .err()
                .expect("refused");
            assert!(e.to_string().contains("file descriptor"), "{name}: {e}");
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "before\n");
        // Standard output is written through its stream.
        let out = OutputFile::prepare(Path::new("/dev/stdout")).unwrap();
        assert!(out.is_standard_output() && !out.is_regular_file());
    }

    #[test]
    fn a_failed_commit_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, "old").unwrap();
        let out = OutputFile::prepare(&p).unwrap();
        drop(out); // work failed: never committed
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
