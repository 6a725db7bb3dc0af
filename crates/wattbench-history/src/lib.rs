//! The run history of wattbench: result files recorded in an embedded SQLite database
//! ([`db`]), read back as one series per case, metric and machine ([`trend`]), and searched
//! for changes of level by E-Divisive means with known breaks where something outside our
//! code changed ([`changepoint`]), corrected for the number of series tested at once.
//!
//! `results/README.md` ("history database") describes the schema and the JSON the `history`
//! command writes.
pub mod changepoint;
pub mod db;
pub mod trend;

#[cfg(test)]
mod testutil;

pub use db::{AddOutcome, History, Measurement, Metric, RunRecord};
pub use trend::{Analysis, ChangePoint, Correction, Gap, KnownBreak, Series, SeriesFilter, Trend};

use std::path::PathBuf;

/// What can go wrong with a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite refused (a locked file past the busy timeout, a full disk, a corrupt file).
    /// The message holds SQLite's error, and what to do where that is known; the error is not
    /// also given as the `source()`, which a chain printed whole (`{:#}`) would say twice.
    #[error("history database {}: {error}{}", path.display(), sqlite_advice(error))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        error: rusqlite::Error,
    },
    /// A reading command was given a database that does not exist.
    #[error(
        "no history database at {}: record runs with `wattbench run --record` or \
         `wattbench history add FILE`",
        .0.display()
    )]
    Missing(PathBuf),
    /// The database was written by a newer wattbench.
    #[error(
        "history database {} has schema version {found}, but this wattbench knows up to \
         {known}: update wattbench",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this code knows.
        known: i64,
    },
    /// A reading command was given a directory.
    #[error("{} is a directory; give the history database file in it", .0.display())]
    Directory(PathBuf),
    /// A reading command was given an empty file (0 bytes, or an SQLite file with no
    /// table): not a history, and reading commands never make one.
    #[error(
        "{} is empty, not a wattbench history (reading commands never create one): record \
         runs into it with `wattbench history add FILE --db {}` or `wattbench run --record \
         {}`, or give another path",
        .0.display(), .0.display(), .0.display()
    )]
    Empty(PathBuf),
    /// The file is not an SQLite database at all.
    #[error(
        "{} is not an SQLite database, so not a wattbench history; give another path",
        .0.display()
    )]
    NotSqlite(PathBuf),
    /// A reading command cannot read the database where it is: SQLite cannot create the
    /// `-shm` file beside it (a read-only file system or folder).
    #[error(
        "cannot read the history database {}: it cannot be opened for reading (its \
         permissions?), or its folder cannot be written (a read-only file system?), so SQLite \
         cannot make the -shm file it needs beside it ({why}); check that you may read it, or \
         copy the database (with its -wal file, if any) to a writable folder and give that \
         copy",
        path.display()
    )]
    ReadOnlyPlace {
        /// The database file.
        path: PathBuf,
        /// SQLite's errors.
        why: String,
    },
    /// The file is an SQLite database of another program: left untouched.
    #[error(
        "{} is an SQLite database, but not a wattbench history; give another path",
        .0.display()
    )]
    NotAHistory(PathBuf),
    /// A file (a result file, or the database itself) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file that is not a wattbench result file of the current schema.
    #[error("{}: {why}", path.as_ref().map_or("result".into(), |p| p.display().to_string()))]
    NotAResult {
        /// The file, when it came from one.
        path: Option<PathBuf>,
        /// What is wrong with it.
        why: String,
    },
}

/// What to do about SQLite's error `e`, after it in the message (`""` where nothing is known).
fn sqlite_advice(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt) => {
            " (the file is damaged, and was left as it was: restore it from a copy, or save what \
             SQLite can still read with `sqlite3 FILE .recover | sqlite3 NEW.sqlite` and give \
             NEW.sqlite)"
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            " (another process held the database for longer than the 60 s wait: try again once \
             it is done)"
        }
        Some(ErrorCode::DiskFull) => {
            " (the disk is full: free space and record again; nothing of this run was recorded, \
             and what was recorded before is intact)"
        }
        _ => "",
    }
}
