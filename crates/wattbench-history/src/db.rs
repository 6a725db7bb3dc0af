//! The history database: its schema and migrations, and recording result files.
//!
//! One SQLite file holds every recorded run (`runs`), its run-level figures per case and
//! metric (`measurements`) and the status of each of its cases (`cases`: a case that failed
//! or was skipped has no figure, and is still seen). The same result file is recorded once, keyed by the SHA-256 of
//! its bytes, and the same run once whatever its bytes (a merged file holding a run recorded
//! before, a re-serialised copy): see [`History::add_run`]. Several processes may add at once (CI jobs sharing a file): the database runs in
//! WAL mode with a busy timeout, and each run is one `BEGIN IMMEDIATE` transaction, so a
//! writer waits for the others instead of failing, and a run is stored whole or not at all.
//!
//! A file is identified (its `application_id`, `user_version` and tables, read only) before
//! anything is written to it, so another program's SQLite file is refused untouched. Reading
//! commands open the database read-only ([`History::open_existing`]) and never create one.
use crate::HistoryError;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wattbench_core::energy::CaseEnergy;
use wattbench_core::result::{read_runs, Config, Memory, RunFile, Status};
use wattbench_core::stats::TimeStats;

/// `PRAGMA application_id` of a wattbench history ("WBHS"): another SQLite file is refused.
pub const APPLICATION_ID: i32 = 0x5742_4853;

/// The schema, one migration per version: `MIGRATIONS[i]` takes `user_version` `i` to `i + 1`.
/// Append new migrations; never edit a released one.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs and their measurements.
    "CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        sha256      TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL,
        command     TEXT NOT NULL,
        git_commit  TEXT,
        hardware_fp TEXT NOT NULL,
        software_fp TEXT NOT NULL,
        hostname    TEXT,
        interrupted INTEGER NOT NULL,
        file_path   TEXT,
        recorded_at TEXT NOT NULL
    );
    CREATE INDEX runs_created ON runs (hardware_fp, created_at);
    CREATE TABLE measurements (
        run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        case_id   TEXT NOT NULL,
        metric    TEXT NOT NULL CHECK (metric IN ('time_s', 'energy_j', 'memory_bytes')),
        value     REAL NOT NULL,
        n_samples INTEGER,
        low       REAL,
        high      REAL,
        source    TEXT,
        PRIMARY KEY (run_id, case_id, metric)
    ) WITHOUT ROWID;
    CREATE INDEX measurements_case ON measurements (case_id, metric);",
    // 2: the environment variables that change what is measured (thread counts, the GPUs
    // used, TF32), `K=V; ...`; null for runs whose files predate them (unknown, not "none").
    "ALTER TABLE runs ADD COLUMN variables_fp TEXT;",
    // 3: the conditions that move figures with no change of code (usable cores, GPU power
    // limits), `K=V; ...`; null for runs whose files predate them.
    "ALTER TABLE runs ADD COLUMN conditions_fp TEXT;",
    // 4: what else moves figures with no change of code: the build profile of the measuring
    // binary and the harness settings (null for runs recorded before); and every case's
    // status, so a case that failed or was skipped is seen, not just missing, with the cases
    // run before it in the process (a host memory peak depends on them).
    "ALTER TABLE runs ADD COLUMN build_profile TEXT;
    ALTER TABLE runs ADD COLUMN harness_fp TEXT;
    CREATE TABLE cases (
        run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        case_id   TEXT NOT NULL,
        status    TEXT NOT NULL CHECK (status IN ('ok', 'skipped', 'failed')),
        reason    TEXT,
        before_fp TEXT NOT NULL,
        PRIMARY KEY (run_id, case_id)
    ) WITHOUT ROWID;
    CREATE INDEX cases_case ON cases (case_id);",
];

/// The schema version this code writes: the number of migrations.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// How long a writer waits for the others before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// A run-level figure of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Median time per call (per training step), s.
    TimeS,
    /// Energy per call (per training step), the total of the metered domains, J.
    EnergyJ,
    /// Peak memory: the device's when known, else the process's peak RSS, bytes.
    MemoryBytes,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 3] = [Metric::TimeS, Metric::EnergyJ, Metric::MemoryBytes];

    /// The name stored in the database and written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::TimeS => "time_s",
            Metric::EnergyJ => "energy_j",
            Metric::MemoryBytes => "memory_bytes",
        }
    }

    /// The short name the command line takes.
    pub fn short(self) -> &'static str {
        match self {
            Metric::TimeS => "time",
            Metric::EnergyJ => "energy",
            Metric::MemoryBytes => "memory",
        }
    }

    /// The metric named `s`, short (`time`) or stored (`time_s`).
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s || m.short() == s)
    }
}

/// The runs of a result file's bytes, each with the key it is recorded under: the file's
/// SHA-256, or `SHA#i` for the i-th run of a merged file (`wattbench merge`). The error says
/// why the bytes are not a result file.
pub fn keyed_runs(bytes: &[u8]) -> Result<Vec<(RunFile, String)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let runs = read_runs(text).map_err(|e| e.to_string())?;
    let sha = sha256_hex(bytes);
    let many = runs.len() > 1;
    Ok(runs
        .into_iter()
        .enumerate()
        .map(|(i, run)| {
            let key = if many {
                format!("{sha}#{}", i + 1)
            } else {
                sha.clone()
            };
            (run, key)
        })
        .collect())
}

/// One figure to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The case's (or training run's) stable id.
    pub case_id: String,
    /// What it measures.
    pub metric: Metric,
    /// The figure: median time, energy per call, peak bytes.
    pub value: f64,
    /// How many values it summarises: timing samples, or the calls of the energy window.
    pub n_samples: Option<u64>,
    /// Lower end of its interval (95% CI of the median time; the energy's uncertainty).
    pub low: Option<f64>,
    /// Upper end of its interval.
    pub high: Option<f64>,
    /// Where it comes from: `median` (time), the energy's basis (its sources, then what its
    /// total adds and an estimate's inputs in brackets:
    /// [`EnergyBasis::label`](wattbench_core::energy::EnergyBasis::label)), followed by
    /// `; PARTIAL: without gpu0` when a domain of the total had no reading, `device_peak` or
    /// `host_peak_rss` (memory).
    pub source: Option<String>,
}

/// The figures of a result file worth a history: those of every case and training run with
/// status `ok`, finite ones only.
pub fn measurements_of(run: &RunFile) -> Vec<Measurement> {
    let mut out = Vec::new();
    let cases = run
        .cases
        .iter()
        .filter(|c| c.status == Status::Ok)
        .map(|c| (&c.id, c.time.as_ref(), c.energy.as_ref(), &c.memory));
    let trainings = run
        .trainings
        .iter()
        .filter(|t| t.status == Status::Ok)
        .map(|t| (&t.id, t.time.as_ref(), Some(&t.energy), &t.memory));
    for (id, time, energy, memory) in cases.chain(trainings) {
        out.extend(time.and_then(|t| time_measurement(id, t)));
        out.extend(energy.and_then(|e| energy_measurement(id, e)));
        out.extend(memory_measurement(id, memory));
    }
    out
}

fn time_measurement(id: &str, t: &TimeStats) -> Option<Measurement> {
    t.median_s.is_finite().then(|| Measurement {
        case_id: id.to_string(),
        metric: Metric::TimeS,
        value: t.median_s,
        n_samples: Some(t.samples_s.len() as u64),
        low: Some(t.ci95_median_s[0]).filter(|v| v.is_finite()),
        high: Some(t.ci95_median_s[1]).filter(|v| v.is_finite()),
        source: Some("median".into()),
    })
}

fn energy_measurement(id: &str, e: &CaseEnergy) -> Option<Measurement> {
    let total = e.total_joules_per_iter.as_ref()?;
    // What the total adds, not only its sources: a series breaks where the meters or the
    // estimate's inputs change, as where the source does.
    let mut source = e.basis().label();
    // A partial total (a domain of it had no reading: a GPU counter that failed that night)
    // is recorded, marked, rather than left out: left out, the nights a meter fails would
    // vanish from the history unseen; unmarked, it would read as a whole total over the
    // domains it did read (a deliberate CPU-only run's). Marked, it is its own quantity: the
    // series breaks there, and it is never compared with, nor counted in the level of, the
    // whole totals.
    let missing = e.missing_domains();
    if !missing.is_empty() {
        source.push_str(&format!("; PARTIAL: without {}", missing.join(", ")));
    }
    total.value.is_finite().then(|| Measurement {
        case_id: id.to_string(),
        metric: Metric::EnergyJ,
        value: total.value,
        n_samples: Some(e.calls),
        low: Some(total.low).filter(|v| v.is_finite()),
        high: Some(total.high).filter(|v| v.is_finite()),
        source: Some(source),
    })
}

fn memory_measurement(id: &str, m: &Memory) -> Option<Measurement> {
    // A host peak that was not reset covers the process so far, not this case: left out.
    let (bytes, source) = match (m.device_peak_bytes, m.host_peak_rss_bytes) {
        (Some(d), _) => (d, "device_peak"),
        (None, Some(h)) if m.host_peak_reset => (h, "host_peak_rss"),
        _ => return None,
    };
    Some(Measurement {
        case_id: id.to_string(),
        metric: Metric::MemoryBytes,
        value: bytes as f64,
        n_samples: None,
        low: None,
        high: None,
        source: Some(source.into()),
    })
}

/// The settings of `run` that change its figures with no change of code, `K=V; ...`: the
/// timing harness's (warm-up, sampling time and counts, seed; for a training run its warm-up
/// steps, seed, data set, learning rate and loss interval) and the energy window and cool-down
/// when meters ran. A change of them breaks a series as a software change does: a run made
/// with `--min-time 0.05` beside runs made with 0.3 is no change of code. Verification
/// settings are left out (they decide pass or fail, not the figures).
pub fn harness_fingerprint(run: &RunFile) -> String {
    let mut parts: Vec<String> = match &run.config {
        Config::Run(c) => {
            let h = &c.harness;
            vec![
                format!("warmup_s={}", h.warmup_s),
                // The warm-up a GPU case had: its own when set, else the common one.
                format!("gpu_warmup_s={}", h.gpu_warmup_s.unwrap_or(h.warmup_s)),
                format!("min_time_s={}", h.min_time_s),
                format!("min_samples={}", h.min_samples),
                format!("max_samples={}", h.max_samples),
                format!("max_time_s={}", h.max_time_s),
                format!("seed={}", h.seed),
            ]
        }
        Config::Train(t) => {
            let s = &t.settings;
            vec![
                format!("warmup_steps={}", s.warmup_steps),
                format!("seed={}", s.seed),
                format!("dataset_samples={}", s.dataset_samples),
                format!("lr={}", s.lr),
                format!("log_every={}", s.log_every),
            ]
        }
    };
    if let Some(e) = &run.energy {
        parts.push(format!("cooldown_s={}", e.cooldown_s));
        parts.push(format!("energy_window_s={}", e.min_window_s));
    }
    parts.join("; ")
}

/// The build profile of the binary that made `run` (`release`, `debug`): the one it recorded
/// (`environment.software["build-profile"]`, its first word), else the one its path says
/// (`…/target/release/wattbench`, as cargo places it), else `None` (unknown: a binary run
/// from elsewhere, a file of an older wattbench). A debug build is many times slower: a
/// change of profile breaks a series, never a change of code.
pub fn build_profile(run: &RunFile) -> Option<String> {
    if let Some(p) = run.environment.software.get("build-profile") {
        return p.split_whitespace().next().map(str::to_string);
    }
    let argv0 = match &run.config {
        Config::Run(c) => c.argv.first(),
        Config::Train(t) => t.argv.first(),
    }?;
    let parts: Vec<&str> = argv0.split('/').collect();
    parts.windows(3).find_map(|w| {
        (w[0] == "target" && matches!(w[1], "debug" | "release") && w[2] == "wattbench")
            .then(|| w[1].to_string())
    })
}

/// One case (or training run) of a run, whatever its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRecord {
    /// The case id.
    pub case_id: String,
    /// `ok`, `skipped` or `failed`.
    pub status: &'static str,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// A fingerprint of the cases run before it in the run (in order): what a host memory
    /// peak depends on besides the case itself.
    pub before_fp: String,
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Skipped => "skipped",
        Status::Failed => "failed",
    }
}

/// Every case and training run of `run`, in the file's order (the order they ran), each with
/// a hash of the ids of the cases that ran before it (skipped ones left out).
pub fn cases_of(run: &RunFile) -> Vec<CaseRecord> {
    let all = (run.cases.iter())
        .map(|c| (&c.id, c.status, &c.reason))
        .chain(run.trainings.iter().map(|t| (&t.id, t.status, &t.reason)));
    let mut before = Sha256::new();
    let mut out = Vec::new();
    for (id, status, reason) in all {
        let fp: String = (before.clone().finalize().iter().take(8))
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(CaseRecord {
            case_id: id.clone(),
            status: status_str(status),
            reason: reason.clone(),
            before_fp: fp,
        });
        // A skipped case allocated nothing: a night it was skipped (a GPU not found) leaves
        // the cases after it as they were.
        if status != Status::Skipped {
            before.update(id.as_bytes());
            before.update(b"\n");
        }
    }
    out
}

/// A recorded run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Row id: the order of recording.
    pub id: i64,
    /// SHA-256 of the result file's bytes (hex).
    pub sha256: String,
    /// The run's start time (RFC 3339, from the file).
    pub created_at: String,
    /// `run` or `train`.
    pub command: String,
    /// The commit the binary was built from.
    pub git_commit: Option<String>,
    /// [`Environment::hardware_fingerprint`](wattbench_core::result::Environment::hardware_fingerprint).
    pub hardware_fp: String,
    /// [`Environment::software_fingerprint`](wattbench_core::result::Environment::software_fingerprint).
    pub software_fp: String,
    /// Host name.
    pub hostname: Option<String>,
    /// Whether a signal stopped the run (its completed cases are recorded).
    pub interrupted: bool,
    /// Where the file was when it was recorded.
    pub file_path: Option<String>,
    /// When it was recorded (UTC).
    pub recorded_at: String,
}

/// What [`History::add`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AddOutcome {
    /// Recorded as run `run_id` with `measurements` figures.
    Added {
        /// The new run's id.
        run_id: i64,
        /// Figures recorded.
        measurements: usize,
    },
    /// The same file (same SHA-256) was recorded before, as run `run_id`; nothing changed.
    AlreadyRecorded {
        /// The earlier run's id.
        run_id: i64,
    },
    /// The same run, from other bytes (a merged file, a re-serialised copy), was recorded
    /// before as run `run_id`: same start time, command, host, hardware and software
    /// fingerprints and recorded case ids. Nothing changed.
    SameRun {
        /// The earlier run's id.
        run_id: i64,
    },
}

impl AddOutcome {
    /// The run's id, new or earlier.
    pub fn run_id(&self) -> i64 {
        match *self {
            AddOutcome::Added { run_id, .. }
            | AddOutcome::AlreadyRecorded { run_id }
            | AddOutcome::SameRun { run_id } => run_id,
        }
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a database file holds, as read without writing to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identity {
    /// No table and no application id: a new (or 0-byte) file, made a history on writing.
    Fresh,
    /// A wattbench history of schema version `version`.
    History { version: i64 },
    /// Another program's database.
    Foreign,
}

/// Read `application_id`, `user_version` and the number of tables, in one statement (one
/// snapshot: another process may be creating the history at the same time): reads only.
fn identify(conn: &Connection) -> rusqlite::Result<Identity> {
    let (app, version, tables): (i32, i64, i64) = conn.query_row(
        "SELECT (SELECT application_id FROM pragma_application_id),
                (SELECT user_version FROM pragma_user_version),
                (SELECT count(*) FROM sqlite_master)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(if app == APPLICATION_ID {
        Identity::History { version }
    } else if app == 0 && tables == 0 && version == 0 {
        Identity::Fresh
    } else {
        Identity::Foreign
    })
}

/// SQLite's error about `path`, with a file that is not SQLite at all said so.
fn sqlite_error(path: &Path, error: rusqlite::Error) -> HistoryError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => HistoryError::NotSqlite(path.to_path_buf()),
        _ => HistoryError::Sqlite {
            path: path.to_path_buf(),
            error,
        },
    }
}

/// `path` with `suffix` appended to its name (`h.sqlite` → `h.sqlite-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// An SQLite `file:` URI of `path` (absolute), reading it as immutable: SQLite then takes no
/// lock and needs no `-shm` file.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// An open history database.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.path).finish()
    }
}

/// Whether `e` is SQLite saying another connection holds the lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl History {
    /// Open the history at `path` for writing, creating it (and bringing its schema up to
    /// date) if needed; for the commands that record (`history add`, `run --record`). Safe to
    /// call from several processes at once. A file that is not a wattbench history is
    /// refused before anything is written to it.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let err = |source| sqlite_error(path, source);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let mut h = History {
            conn,
            path: path.to_path_buf(),
        };
        // Switching to WAL takes an exclusive lock, and SQLite answers "busy" without waiting
        // for it in some states: retry within the timeout.
        let started = Instant::now();
        loop {
            match h.setup() {
                Err(HistoryError::Sqlite { error, .. })
                    if is_busy(&error) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other.map(|()| h),
            }
        }
    }

    /// Open the history at `path` read-only, for the reading commands (`history show`,
    /// `history changes`, `report --history`): it must exist and be a wattbench history, and
    /// nothing is created or written. Where SQLite cannot create the `-shm` file a WAL
    /// database needs (a read-only file system), the file is read as immutable, unless its
    /// `-wal` file holds changes not yet in it, which is then said.
    pub fn open_existing(path: &Path) -> Result<History, HistoryError> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HistoryError::Missing(path.into()),
            _ => HistoryError::Read {
                path: path.into(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            return Err(HistoryError::Directory(path.to_path_buf()));
        }
        if meta.len() == 0 {
            return Err(HistoryError::Empty(path.to_path_buf()));
        }
        let open = |target: &str, flags: OpenFlags| {
            let conn = Connection::open_with_flags(target, flags)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            let id = identify(&conn)?;
            Ok::<_, rusqlite::Error>((conn, id))
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let target = path.to_string_lossy();
        let (conn, id) = match open(&target, flags) {
            Ok(opened) => opened,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
                ) =>
            {
                // A write-ahead log or a rollback journal with something in it: the file
                // alone is not the database (read as immutable, it could be torn).
                for pending in [sibling(path, "-wal"), sibling(path, "-journal")] {
                    if std::fs::metadata(&pending).is_ok_and(|m| m.len() > 0) {
                        return Err(HistoryError::ReadOnlyPlace {
                            path: path.to_path_buf(),
                            why: format!(
                                "{e}; {} holds changes not yet in the database file",
                                pending.display()
                            ),
                        });
                    }
                }
                open(&immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI).map_err(|e2| {
                    HistoryError::ReadOnlyPlace {
                        path: path.to_path_buf(),
                        why: format!("{e} (read as immutable: {e2})"),
                    }
                })?
            }
            Err(e) => return Err(sqlite_error(path, e)),
        };
        match id {
            Identity::Fresh => Err(HistoryError::Empty(path.to_path_buf())),
            Identity::Foreign => Err(HistoryError::NotAHistory(path.to_path_buf())),
            Identity::History { version } if version > schema_version() => {
                Err(HistoryError::NewerSchema {
                    path: path.to_path_buf(),
                    found: version,
                    known: schema_version(),
                })
            }
            // An older schema is read as it is: every migration so far only adds columns,
            // which readers take as null where absent (`History::column_or_null`).
            Identity::History { .. } => Ok(History {
                conn,
                path: path.to_path_buf(),
            }),
        }
    }

    fn sql(&self, error: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            error,
        }
    }

    /// Identity (read only), then pragmas and migrations.
    fn setup(&mut self) -> Result<(), HistoryError> {
        let c = &self.conn;
        // Switching to WAL writes the file: another program's database, or one of a newer
        // schema, is refused before it.
        match identify(c).map_err(|e| sqlite_error(&self.path, e))? {
            Identity::Foreign => return Err(HistoryError::NotAHistory(self.path.clone())),
            Identity::History { version } if version > schema_version() => {
                return Err(HistoryError::NewerSchema {
                    path: self.path.clone(),
                    found: version,
                    known: schema_version(),
                })
            }
            Identity::History { .. } | Identity::Fresh => {}
        }
        // The mode it answers is not checked: where WAL is impossible (no shared memory),
        // SQLite keeps its rollback journal, as safe, with readers waiting for writers.
        c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?;
        c.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.sql(e))?;
        self.migrate()
    }

    /// Bring the schema to [`schema_version`]: each missing migration, in one transaction
    /// that also re-reads the version, so concurrent openers apply it once.
    fn migrate(&mut self) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let sql = |error| HistoryError::Sqlite {
            path: path.clone(),
            error,
        };
        if self.user_version()? == schema_version() && self.application_id()? == APPLICATION_ID {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        let app: i32 = tx
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(sql)?;
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sql)?;
        // Another program's file (or a version no wattbench wrote): refused, untouched.
        if (app != APPLICATION_ID && (app != 0 || tables > 0 || version != 0)) || version < 0 {
            return Err(HistoryError::NotAHistory(path.clone()));
        }
        if version > schema_version() {
            return Err(HistoryError::NewerSchema {
                path: path.clone(),
                found: version,
                known: schema_version(),
            });
        }
        for m in &MIGRATIONS[version as usize..] {
            tx.execute_batch(m).map_err(sql)?;
        }
        tx.pragma_update(None, "user_version", schema_version())
            .map_err(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn user_version(&self) -> Result<i64, HistoryError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    fn application_id(&self) -> Result<i32, HistoryError> {
        self.conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    /// `table.column` in a query, or `NULL` where the schema predates the column (a
    /// database of an older wattbench is read without migrating it).
    pub(crate) fn column_or_null(&self, table: &str, column: &str) -> Result<String, HistoryError> {
        let present: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok(if present {
            format!("{table}.{column}")
        } else {
            "NULL".into()
        })
    }

    /// Whether the database has the table `name` (a database of an older wattbench, read
    /// without migrating, may lack one).
    pub(crate) fn has_table(&self, name: &str) -> Result<bool, HistoryError> {
        self.conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for queries of the other modules.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Record the result file at `file` (its bytes are read once: what is hashed is what is
    /// parsed).
    pub fn add_file(&mut self, file: &Path) -> Result<AddOutcome, HistoryError> {
        let bytes = std::fs::read(file).map_err(|source| HistoryError::Read {
            path: file.to_path_buf(),
            source,
        })?;
        let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        self.add(&bytes, Some(&path))
    }

    /// Record a result file given as its bytes; `file_path` is kept as where it came from.
    /// A file recorded before (same SHA-256), or a run recorded before from other bytes, is
    /// not recorded again. Every run of a merged file is recorded; the outcome returned is the
    /// last run's (`wattbench history add` records and reports each run with
    /// [`History::add_run`]).
    pub fn add(
        &mut self,
        bytes: &[u8],
        file_path: Option<&Path>,
    ) -> Result<AddOutcome, HistoryError> {
        let runs = keyed_runs(bytes).map_err(|why| HistoryError::NotAResult {
            path: file_path.map(Path::to_path_buf),
            why,
        })?;
        let file_path = file_path.map(|p| p.to_string_lossy().into_owned());
        let mut last = None;
        for (run, key) in &runs {
            last = Some(self.add_run(run, key, file_path.as_deref())?);
        }
        Ok(last.expect("read_runs returns at least one run"))
    }

    /// Record `run`, whose file has SHA-256 `sha256`, in one transaction. Not recorded again:
    /// a file with the same key ([`AddOutcome::AlreadyRecorded`]), or the same run from other
    /// bytes ([`AddOutcome::SameRun`]): a run with the same start time, command, host name,
    /// hardware and software fingerprints and the same set of recorded case ids.
    pub fn add_run(
        &mut self,
        run: &RunFile,
        sha256: &str,
        file_path: Option<&str>,
    ) -> Result<AddOutcome, HistoryError> {
        let path = self.path.clone();
        let sql = |error| HistoryError::Sqlite {
            path: path.clone(),
            error,
        };
        let measurements = measurements_of(run);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let existing: Option<i64> = tx
            .query_row("SELECT id FROM runs WHERE sha256 = ?1", [sha256], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        if let Some(run_id) = existing {
            return Ok(AddOutcome::AlreadyRecorded { run_id });
        }
        let env = &run.environment;
        let command = match run.config {
            Config::Run(_) => "run",
            Config::Train(_) => "train",
        };
        let (hardware_fp, software_fp) = (env.hardware_fingerprint(), env.software_fingerprint());
        let ids: BTreeSet<&str> = measurements.iter().map(|m| m.case_id.as_str()).collect();
        let candidates: Vec<i64> = {
            let mut st = tx
                .prepare(
                    "SELECT id FROM runs WHERE created_at = ?1 AND hardware_fp = ?2
                     AND software_fp = ?3 AND hostname IS ?4 AND command = ?5 ORDER BY id",
                )
                .map_err(sql)?;
            let rows = st
                .query_map(
                    params![
                        run.created_at,
                        hardware_fp,
                        software_fp,
                        env.host.hostname,
                        command
                    ],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            rows.collect::<Result<_, _>>().map_err(sql)?
        };
        for run_id in candidates {
            let mut st = tx
                .prepare("SELECT DISTINCT case_id FROM measurements WHERE run_id = ?1")
                .map_err(sql)?;
            let stored: BTreeSet<String> = st
                .query_map([run_id], |r| r.get(0))
                .map_err(sql)?
                .collect::<Result<_, _>>()
                .map_err(sql)?;
            if stored.iter().map(String::as_str).eq(ids.iter().copied()) {
                return Ok(AddOutcome::SameRun { run_id });
            }
        }
        tx.execute(
            "INSERT INTO runs (sha256, created_at, command, git_commit, hardware_fp, software_fp,
                               hostname, interrupted, file_path, recorded_at, variables_fp,
                               conditions_fp, build_profile, harness_fp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?10, ?11, ?12, ?13)",
            params![
                sha256,
                run.created_at,
                command,
                env.git_commit,
                hardware_fp,
                software_fp,
                env.host.hostname,
                run.interrupted,
                file_path,
                env.variables_fingerprint(),
                env.conditions_fingerprint(),
                build_profile(run),
                harness_fingerprint(run),
            ],
        )
        .map_err(sql)?;
        let run_id = tx.last_insert_rowid();
        let mut stored = 0;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR IGNORE INTO cases (run_id, case_id, status, reason, before_fp)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(sql)?;
            for c in cases_of(run) {
                insert
                    .execute(params![run_id, c.case_id, c.status, c.reason, c.before_fp])
                    .map_err(sql)?;
            }
        }
        {
            // A case id twice in one file (not written by wattbench) keeps its first figures.
            let mut insert = tx
                .prepare(
                    "INSERT OR IGNORE INTO measurements
                     (run_id, case_id, metric, value, n_samples, low, high, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sql)?;
            for m in &measurements {
                stored += insert
                    .execute(params![
                        run_id,
                        m.case_id,
                        m.metric.as_str(),
                        m.value,
                        m.n_samples.map(|n| n as i64),
                        m.low,
                        m.high,
                        m.source,
                    ])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(AddOutcome::Added {
            run_id,
            measurements: stored,
        })
    }

    /// Every recorded run, oldest first (by start time, whatever its UTC offset, then
    /// recording order).
    pub fn runs(&self) -> Result<Vec<RunRecord>, HistoryError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, sha256, created_at, command, git_commit, hardware_fp, software_fp,
                        hostname, interrupted, file_path, recorded_at
                 FROM runs ORDER BY julianday(created_at), created_at, id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    sha256: r.get(1)?,
                    created_at: r.get(2)?,
                    command: r.get(3)?,
                    git_commit: r.get(4)?,
                    hardware_fp: r.get(5)?,
                    software_fp: r.get(6)?,
                    hostname: r.get(7)?,
                    interrupted: r.get(8)?,
                    file_path: r.get(9)?,
                    recorded_at: r.get(10)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Number of recorded figures.
    pub fn measurement_count(&self) -> Result<i64, HistoryError> {
        self.conn
            .query_row("SELECT count(*) FROM measurements", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    /// SQLite's `PRAGMA integrity_check`: `["ok"]` for a sound file, else the problems.
    pub fn integrity_check(&self) -> Result<Vec<String>, HistoryError> {
        let mut st = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.sql(e))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{case, run_file};

    fn bytes(run: &RunFile) -> Vec<u8> {
        serde_json::to_vec_pretty(run).unwrap()
    }

    #[test]
    fn a_file_added_twice_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.sqlite");
        let run = run_file(
            "2026-01-01T00:00:00+00:00",
            &[("tch", "0.24")],
            vec![case("a", 1.0)],
        );
        let mut h = History::open(&db).unwrap();
        let first = h.add(&bytes(&run), None).unwrap();
        assert_eq!(
            first,
            AddOutcome::Added {
                run_id: 1,
                measurements: 3
            }
        );
        assert_eq!(
            h.add(&bytes(&run), None).unwrap(),
            AddOutcome::AlreadyRecorded { run_id: 1 }
        );
        drop(h);
        // Again after reopening, and from a file on disk.
        let file = dir.path().join("r.json");
        std::fs::write(&file, bytes(&run)).unwrap();
        let mut h = History::open(&db).unwrap();
        assert_eq!(
            h.add_file(&file).unwrap(),
            AddOutcome::AlreadyRecorded { run_id: 1 }
        );
        assert_eq!(h.runs().unwrap().len(), 1);
        assert_eq!(h.measurement_count().unwrap(), 3);
        // Another run (other bytes) is another record.
        let other = run_file(
            "2026-01-02T00:00:00+00:00",
            &[("tch", "0.24")],
            vec![case("a", 1.0)],
        );
        assert_eq!(h.add(&bytes(&other), None).unwrap().run_id(), 2);
    }

    #[test]
    fn what_is_recorded_of_a_run() {
        let mut run = run_file("2026-01-01T00:00:00+00:00", &[], vec![case("a", 2.0)]);
        let mut skipped = case("b", 1.0);
        skipped.status = Status::Skipped;
        run.cases.push(skipped);
        run.cases[0].memory.host_peak_reset = false;
        let m = measurements_of(&run);
        let got: Vec<(&str, Metric, f64)> = m
            .iter()
            .map(|m| (m.case_id.as_str(), m.metric, m.value))
            .collect();
        assert_eq!(
            got,
            vec![("a", Metric::TimeS, 2.0), ("a", Metric::EnergyJ, 20.0)],
            "skipped cases and a process-wide RSS peak are left out"
        );
        assert_eq!(m[0].n_samples, Some(5));
        assert_eq!(m[1].source.as_deref(), Some("measured"));
    }

    #[test]
    fn every_case_status_the_profile_and_the_harness_are_recorded() {
        let mut run = run_file(
            "2026-01-01T00:00:00+00:00",
            &[],
            vec![case("a", 1.0), case("b", 1.0), case("c", 1.0)],
        );
        run.cases[1].status = Status::Failed;
        run.cases[1].reason = Some("verification failed".into());
        let cases = cases_of(&run);
        let got: Vec<(&str, &str, Option<&str>)> = (cases.iter())
            .map(|c| (c.case_id.as_str(), c.status, c.reason.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "ok", None),
                ("b", "failed", Some("verification failed")),
                ("c", "ok", None)
            ]
        );
        // What ran before each: nothing, a, a then b.
        let fps: BTreeSet<&str> = cases.iter().map(|c| c.before_fp.as_str()).collect();
        assert_eq!(fps.len(), 3);
        let mut alone = run.clone();
        alone.cases.drain(..2);
        assert_eq!(cases_of(&alone)[0].before_fp, cases[0].before_fp);
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        h.add(&bytes(&run), None).unwrap();
        let rows: Vec<(String, String)> = {
            let mut st = (h.conn)
                .prepare("SELECT case_id, status FROM cases ORDER BY case_id")
                .unwrap();
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        assert_eq!(rows[1], ("b".to_string(), "failed".to_string()));
        assert_eq!(rows.len(), 3);
        // The harness settings that move figures, in words; the profile from the binary.
        let fp = harness_fingerprint(&run);
        assert!(
            fp.starts_with("warmup_s=") && fp.contains("; min_time_s=") && fp.contains("; seed="),
            "{fp}"
        );
        assert_eq!(
            build_profile(&run),
            None,
            "`wattbench` on the PATH: unknown"
        );
        if let Config::Run(c) = &mut run.config {
            c.argv[0] = "/src/wb/target/debug/wattbench".into();
        }
        assert_eq!(build_profile(&run).as_deref(), Some("debug"));
        run.environment
            .software
            .insert("build-profile".into(), "release".into());
        assert_eq!(
            build_profile(&run).as_deref(),
            Some("release"),
            "recorded wins"
        );
        let (profile, harness): (Option<String>, Option<String>) = h
            .conn
            .query_row("SELECT build_profile, harness_fp FROM runs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((profile, harness.as_deref()), (None, Some(fp.as_str())));
    }

    #[test]
    fn a_partial_energy_total_is_recorded_marked_partial() {
        use wattbench_core::energy::Source;
        use wattbench_core::result::CaseResult;
        use wattbench_core::testing::domain_row;
        // The package read, the GPU's counter not: the total adds the package alone.
        let mut c = case("a", 1.0);
        let e = c.energy.as_mut().unwrap();
        e.domains = vec![
            domain_row("package", Source::Measured, true, Some(10.0)),
            domain_row("gpu0", Source::Measured, true, None),
        ];
        e.total_includes = vec!["package (measured)".into()];
        assert_eq!(e.missing_domains(), ["gpu0"]);
        let energy = |c: &CaseResult| {
            let run = run_file("2026-01-01T00:00:00+00:00", &[], vec![c.clone()]);
            (measurements_of(&run).into_iter())
                .find(|m| m.metric == Metric::EnergyJ)
                .unwrap()
        };
        let m = energy(&c);
        assert_eq!(m.value, 10.0);
        assert_eq!(
            m.source.as_deref(),
            Some("measured [package (measured)]; PARTIAL: without gpu0")
        );
        // The package alone, with no GPU metered: a whole total, not marked, and another
        // source than the partial one (the series breaks between them).
        c.energy.as_mut().unwrap().domains.pop();
        let whole = energy(&c);
        assert_eq!(
            whole.source.as_deref(),
            Some("measured [package (measured)]")
        );
    }

    #[test]
    fn migrations_set_the_version_and_refuse_newer_or_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.sqlite");
        let h = History::open(&db).unwrap();
        assert_eq!(h.user_version().unwrap(), schema_version());
        assert_eq!(h.application_id().unwrap(), APPLICATION_ID);
        drop(h);
        // Reopening applies nothing twice.
        let h = History::open(&db).unwrap();
        assert_eq!(h.user_version().unwrap(), schema_version());
        h.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(h);
        let e = History::open(&db).unwrap_err();
        assert!(
            matches!(e, HistoryError::NewerSchema { found: 99, .. }),
            "{e}"
        );
        // Another program's database is not touched.
        let foreign = dir.path().join("other.sqlite");
        let c = Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(c);
        let e = History::open(&foreign).unwrap_err();
        assert!(matches!(e, HistoryError::NotAHistory(_)), "{e}");
        let missing = dir.path().join("none.sqlite");
        assert!(matches!(
            History::open_existing(&missing).unwrap_err(),
            HistoryError::Missing(_)
        ));
        assert!(!missing.exists());
    }

    /// The bytes of a file, and whether SQLite's header says WAL (bytes 18 and 19 are 2).
    fn file_state(p: &Path) -> (Vec<u8>, bool) {
        let b = std::fs::read(p).unwrap();
        let wal = b.len() > 19 && b[18] == 2 && b[19] == 2;
        (b, wal)
    }

    #[test]
    fn a_foreign_database_is_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("other.sqlite");
        let c = Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            .unwrap();
        drop(c);
        let before = file_state(&foreign);
        assert!(!before.1, "a rollback-journal file to begin with");
        let e = History::open(&foreign).unwrap_err();
        assert!(matches!(e, HistoryError::NotAHistory(_)), "{e}");
        let e = History::open_existing(&foreign).unwrap_err();
        assert!(matches!(e, HistoryError::NotAHistory(_)), "{e}");
        assert_eq!(
            file_state(&foreign),
            before,
            "not switched to WAL, not changed"
        );
        // Table-less, but with a version no wattbench wrote (-1 once panicked; 5 said "newer"):
        // another program's, refused.
        for v in [-1, 5] {
            let odd = dir.path().join(format!("v{v}.sqlite"));
            let c = Connection::open(&odd).unwrap();
            c.pragma_update(None, "user_version", v).unwrap();
            drop(c);
            let e = History::open(&odd).unwrap_err();
            assert!(matches!(e, HistoryError::NotAHistory(_)), "{v}: {e}");
        }
        // A file that is not SQLite at all is said so, and left alone.
        let text = dir.path().join("notes.sqlite");
        std::fs::write(
            &text,
            "some text that is not a database at all, long enough",
        )
        .unwrap();
        let e = History::open(&text).unwrap_err();
        assert!(e.to_string().contains("not an SQLite database"), "{e}");
        assert_eq!(
            std::fs::read(&text).unwrap(),
            b"some text that is not a database at all, long enough"
        );
    }

    #[test]
    fn reading_never_creates_or_initialises_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let zero = dir.path().join("zero.sqlite");
        std::fs::write(&zero, "").unwrap();
        let e = History::open_existing(&zero).unwrap_err();
        assert!(matches!(e, HistoryError::Empty(_)), "{e}");
        assert!(e.to_string().contains("is empty"), "{e}");
        assert_eq!(std::fs::metadata(&zero).unwrap().len(), 0);
        // An SQLite file with no table (what a first open was interrupted in) is empty too.
        let blank = dir.path().join("blank.sqlite");
        Connection::open(&blank)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); DROP TABLE t")
            .unwrap();
        let before = std::fs::read(&blank).unwrap();
        let e = History::open_existing(&blank).unwrap_err();
        assert!(matches!(e, HistoryError::Empty(_)), "{e}");
        assert_eq!(std::fs::read(&blank).unwrap(), before);
        let e = History::open_existing(dir.path()).unwrap_err();
        assert!(matches!(e, HistoryError::Directory(_)), "{e}");
        // A history is read without a write: its bytes stay, and reading works.
        let db = dir.path().join("h.sqlite");
        let mut h = History::open(&db).unwrap();
        let run = run_file("2026-01-01T00:00:00+00:00", &[], vec![case("a", 1.0)]);
        h.add(&bytes(&run), None).unwrap();
        drop(h);
        let before = std::fs::read(&db).unwrap();
        let h = History::open_existing(&db).unwrap();
        assert_eq!(h.runs().unwrap().len(), 1);
        drop(h);
        assert_eq!(std::fs::read(&db).unwrap(), before);
    }

    #[test]
    fn a_history_whose_shm_cannot_be_created_is_read_as_immutable() {
        // As on a read-only file system: SQLite cannot create `-shm` (here a dangling link
        // into a missing folder, which stops root too).
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.sqlite");
        let mut h = History::open(&db).unwrap();
        let run = run_file("2026-01-01T00:00:00+00:00", &[], vec![case("a", 1.0)]);
        h.add(&bytes(&run), None).unwrap();
        drop(h);
        assert!(file_state(&db).1, "a WAL database");
        let shm = sibling(&db, "-shm");
        std::os::unix::fs::symlink(dir.path().join("missing/dir/shm"), &shm).unwrap();
        let h = History::open_existing(&db).unwrap();
        assert_eq!(h.runs().unwrap().len(), 1);
        assert_eq!(h.measurement_count().unwrap(), 3);
        drop(h);
        // With changes still in the -wal file, reading as immutable would miss them: said.
        std::fs::write(sibling(&db, "-wal"), b"pending frames").unwrap();
        let e = History::open_existing(&db).unwrap_err();
        assert!(matches!(e, HistoryError::ReadOnlyPlace { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("read-only file system") && msg.contains("copy the database"),
            "{msg}"
        );
    }

    #[test]
    fn the_same_run_from_other_bytes_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
        let run = run_file(
            "2026-01-01T00:00:00+00:00",
            &[],
            vec![case("a", 1.0), case("b", 2.0)],
        );
        let pretty = serde_json::to_vec_pretty(&run).unwrap();
        let compact = serde_json::to_vec(&run).unwrap();
        assert_ne!(pretty, compact);
        assert!(matches!(
            h.add(&pretty, None).unwrap(),
            AddOutcome::Added { run_id: 1, .. }
        ));
        assert_eq!(
            h.add(&compact, None).unwrap(),
            AddOutcome::SameRun { run_id: 1 }
        );
        // The same run inside a merged file (its key is `SHA#i`).
        assert_eq!(
            h.add_run(&run, "0123#2", None).unwrap(),
            AddOutcome::SameRun { run_id: 1 }
        );
        assert_eq!(h.runs().unwrap().len(), 1);
        assert_eq!(h.measurement_count().unwrap(), 6);
        // Another run at the same time on the same machine with other cases is another run.
        let other = run_file("2026-01-01T00:00:00+00:00", &[], vec![case("c", 1.0)]);
        assert!(matches!(
            h.add(&bytes(&other), None).unwrap(),
            AddOutcome::Added { run_id: 2, .. }
        ));
    }

    #[test]
    fn a_database_at_version_zero_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.sqlite");
        // An empty SQLite file (version 0), as an interrupted first open leaves it.
        Connection::open(&db)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL")
            .unwrap();
        let mut h = History::open(&db).unwrap();
        assert_eq!(h.user_version().unwrap(), schema_version());
        let run = run_file("2026-01-01T00:00:00+00:00", &[], vec![case("a", 1.0)]);
        assert!(matches!(
            h.add(&bytes(&run), None).unwrap(),
            AddOutcome::Added { .. }
        ));
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.sqlite");
        const THREADS: usize = 8;
        const EACH: usize = 5;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    // Every thread opens the fresh file itself: creation and migration race.
                    let mut h = History::open(&db).unwrap();
                    for i in 0..EACH {
                        let at = format!("2026-01-01T00:{t:02}:{i:02}+00:00");
                        let cases = vec![case("a", 1.0 + t as f64), case("b", 2.0 + i as f64)];
                        let run = run_file(&at, &[], cases);
                        let b = serde_json::to_vec(&run).unwrap();
                        assert!(matches!(h.add(&b, None).unwrap(), AddOutcome::Added { .. }));
                        // The same file from another writer at the same time: recorded once.
                        let mut again = History::open(&db).unwrap();
                        assert!(matches!(
                            again.add(&b, None).unwrap(),
                            AddOutcome::AlreadyRecorded { .. }
                        ));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let h = History::open(&db).unwrap();
        assert_eq!(h.runs().unwrap().len(), THREADS * EACH);
        assert_eq!(
            h.measurement_count().unwrap(),
            (THREADS * EACH * 2 * 3) as i64
        );
        assert_eq!(h.integrity_check().unwrap(), vec!["ok".to_string()]);
        assert_eq!(h.user_version().unwrap(), schema_version());
    }
}
