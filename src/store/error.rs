//! What can go wrong with the store and its lock; every variant names the file, run or case.

use std::path::PathBuf;

/// A store problem.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed on an operation.
    #[error("{path}: {operation}: {source}")]
    Sqlite {
        /// The store file.
        path: PathBuf,
        /// What landwatch was doing.
        operation: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A directory for the store could not be created.
    #[error("{path}: cannot create the store's directory: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store was written by a newer landwatch.
    #[error(
        "{path}: the store has schema version {found}, but this landwatch ({software}) knows versions up to \
         {supported}: run a newer landwatch on it (never an older one), or restore a backup made by this version"
    )]
    TooNew {
        /// The store file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest version this binary knows.
        supported: u32,
        /// This binary's version.
        software: String,
    },
    /// A read command was pointed at a store of an older schema, which only a run may upgrade.
    #[error(
        "{path}: the store has schema version {found}, and this landwatch ({software}) reads version \
         {supported}: the next `landwatch scan` (which writes) upgrades it — back it up first; the \
         read commands never change the store"
    )]
    NeedsUpgrade {
        /// The store file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The version this binary reads and writes.
        supported: u32,
        /// This binary's version.
        software: String,
    },
    /// A read command was pointed at a store that does not exist.
    #[error("no store at {path} yet (no file, or an empty one): run `landwatch scan --config …` first (it creates the store), or give --store PATH")]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// The store could not be put in WAL mode (e.g. on a network file system).
    #[error("{path}: SQLite would not use write-ahead logging (journal mode is '{mode}'): keep the store on a local file system")]
    NoWal {
        /// The store file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// Another process holds the run lock.
    #[error(
        "{path} is held by pid {pid} on {host} since {since} ({holder}): another landwatch run is using this store. \
         Wait for it to finish (or stop that process); a lock left by a killed run is taken over automatically"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id.
        pid: u32,
        /// The holder's host name.
        host: String,
        /// When the holder took the lock (RFC 3339).
        since: String,
        /// What the holder is doing (e.g. `landwatch scan`).
        holder: String,
    },
    /// The lock file could not be created, locked or written.
    #[error("{path}: cannot take the run lock: {source}")]
    LockIo {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A run id that is not in the store.
    #[error("{path}: no run '{run_id}' in the store")]
    NoSuchRun {
        /// The store file.
        path: PathBuf,
        /// The run id.
        run_id: String,
    },
    /// A run that is no longer running cannot take findings or be finished again.
    #[error("{path}: run '{run_id}' is '{status}', not running: start a new run with begin_run")]
    RunNotRunning {
        /// The store file.
        path: PathBuf,
        /// The run id.
        run_id: String,
        /// Its status.
        status: String,
    },
    /// A case id that is not in the store.
    #[error("{path}: no case '{case_id}' in the store (`landwatch cases` lists them)")]
    NoSuchCase {
        /// The store file.
        path: PathBuf,
        /// The case id.
        case_id: String,
    },
    /// A value the store does not accept (a status, outcome, role, empty reviewer…).
    #[error("{what} '{value}' is not accepted: {detail}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        detail: String,
    },
    /// A finding's geometry is not usable WKT polygon text.
    #[error(
        "finding '{finding_id}' on parcel '{parcel_id}': geometry_wkt is not a polygon: {detail}"
    )]
    Geometry {
        /// The finding.
        finding_id: String,
        /// Its parcel.
        parcel_id: String,
        /// The parser's message or what is wrong.
        detail: String,
    },
    /// Two findings with one id in one commit.
    #[error("finding id '{finding_id}' appears twice in one commit (parcels {first} and {second}): finding ids must be unique within a run")]
    DuplicateFinding {
        /// The finding id.
        finding_id: String,
        /// Parcel of the first occurrence.
        first: String,
        /// Parcel of the second.
        second: String,
    },
    /// A stored case row that cannot be read back (corrupt or hand-edited store).
    #[error("{path}: case '{case_id}': {detail}")]
    CorruptCase {
        /// The store file.
        path: PathBuf,
        /// The case.
        case_id: String,
        /// What is wrong.
        detail: String,
    },
}

/// A closure that wraps a rusqlite error with the store path and the operation.
pub(crate) fn sql(
    path: &std::path::Path,
    operation: impl Into<String>,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    let operation = operation.into();
    move |source| StoreError::Sqlite {
        path,
        operation,
        source,
    }
}
