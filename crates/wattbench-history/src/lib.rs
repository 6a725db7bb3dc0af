//! The run history of wattbench: result files recorded in an embedded SQLite database
//! ([`db`]), read back as one series per case, metric and machine ([`trend`]), and searched
//! for changes of level by E-Divisive means with known breaks at software changes
//! ([`changepoint`]).
//!
//! `results/README.md` ("history database") describes the schema and the JSON the `history`
//! command writes.
pub mod changepoint;
pub mod db;
pub mod trend;

#[cfg(test)]
mod testutil;

pub use db::{AddOutcome, History, Measurement, Metric, RunRecord};
pub use trend::{Analysis, ChangePoint, KnownBreak, Series, SeriesFilter, Trend};

use std::path::PathBuf;

/// What can go wrong with a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite refused (a locked file past the busy timeout, a full disk, a corrupt file).
    #[error("history database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
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
    /// The file is an SQLite database of another program: left untouched.
    #[error(
        "{} is an SQLite database, but not a wattbench history; give another path",
        .0.display()
    )]
    NotAHistory(PathBuf),
    /// A result file could not be read.
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
