//! The embedded store (SQLite, `landwatch.db`): runs, imagery, processed cells, findings, cases
//! with their lineage, geometry history and audit log, and evidence packet versions.
//!
//! The store is what makes nightly runs incremental and crash-safe: a cell counts as done only when
//! [`Store::finish_run`] records it, in the same transaction that closes the run, so a run killed
//! at any moment is redone by the next one; and findings are matched to cases
//! ([`matching`]) in one transaction ([`Store::commit_findings`]) that is idempotent, so redoing it
//! opens no case twice.
//!
//! The store uses the system's SQLite (never a bundled copy: GDAL's GeoPackage driver links the
//! same library), in WAL mode with foreign keys enforced. Its schema is numbered migrations
//! (`migrations/NNNN_*.sql`) tracked in `PRAGMA user_version`; a store newer than the binary is
//! refused. One run at a time is ensured by [`lock`]. `docs/OPERATIONS.md` describes the tables.
//!
//! A case is a *suspected* violation (疑似违法用地线索) followed over time, never a verdict.

mod error;
pub mod lock;
pub mod matching;

pub use error::StoreError;
pub use lock::{acquire, RunLock};

use chrono::NaiveDate;
use error::sql;
use geo::MultiPolygon;
use matching::{plan_matches_with, Decision, KnownCase, NewFinding, Unobserved};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The numbered migrations; the store's schema version is how many of them it has applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_detection_cache.sql"),
    include_str!("migrations/0003_run_error.sql"),
    include_str!("migrations/0004_gone_date.sql"),
];

/// How the scan's summary and `landwatch status` name a run's cases seen on imagery older than
/// theirs ([`RunRow::seen_older_cases`]).
pub const SEEN_OLDER: &str = "seen on older imagery (kept as newer imagery showed them)";

/// How they name a run's cases it could not judge ([`RunRow::not_judged_cases`]).
pub const NOT_JUDGED: &str = "not judged (too little of them observed, or older imagery)";

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Every case status.
pub const CASE_STATUSES: &[&str] = &[
    "open",
    "disappeared",
    "merged",
    "confirmed",
    "dismissed",
    "referred",
];

/// The statuses an analyst may set with [`Store::set_case_status`]; `disappeared` and `merged` are
/// set by runs only.
pub const REVIEW_STATUSES: &[&str] = &["open", "confirmed", "dismissed", "referred"];

/// Who runs write as in the audit log.
pub const RUN_ACTOR: &str = "landwatch";

/// The runs whose work run `?1` stands for: itself and the interrupted runs it redoes (those
/// since the last run that finished). A killed run may have committed its findings: what it
/// recorded is the night's, which the run that redoes it reports and does not record again.
const RUN_AND_REDONE: &str = "SELECT r.id FROM runs r WHERE r.id = ?1
   OR (r.status = 'interrupted'
       AND r.rowid < (SELECT rowid FROM runs WHERE id = ?1)
       AND r.rowid > coalesce((SELECT max(rowid) FROM runs
                               WHERE status IN ('done', 'done_with_skips') AND id <> ?1), 0))";

/// How long a writer waits for another connection's transaction before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A new run, as `begin_run` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewRun {
    /// When the run started (RFC 3339 UTC); also the time findings of this run are "seen".
    pub started_at: String,
    /// SHA-256 of the configuration text.
    pub config_sha256: String,
    /// The analysis grid's fingerprint.
    pub grid_fingerprint: String,
    /// Whether every cell is processed (`--full`) rather than only the changed ones.
    pub full: bool,
    /// landwatch's version.
    pub software_version: String,
    /// The command line and anything else worth keeping about how the run was started.
    pub args: serde_json::Value,
}

/// An imagery file seen by a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageryRecord {
    /// Its path.
    pub path: String,
    /// SHA-256 of its content.
    pub sha256: String,
    /// Acquisition time, when known.
    pub acquired_at: Option<String>,
    /// `before` or `after`.
    pub date_role: String,
}

/// The last processing of a cell: what an incremental run compares with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellMark {
    /// The run that processed it.
    pub run_id: String,
    /// The key of the after imagery over the cell then.
    pub after_key: String,
    /// The key of everything else the cell's result depends on (parcels, permits, rules, config).
    pub inputs_key: String,
}

/// A cell a run processed to the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellDone {
    /// Cell id.
    pub cell_id: String,
    /// The key of the after imagery over the cell.
    pub after_key: String,
    /// The key of everything else the result depends on.
    pub inputs_key: String,
}

/// Settings for matching and naming cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseContext {
    /// Region code that prefixes new case ids, e.g. `320509`.
    pub region_code: String,
    /// The day that new case ids carry (the run's date).
    pub day: NaiveDate,
    /// Minimum `area(F ∩ C) / min(area(F), area(C))` for a finding to continue a case.
    pub overlap_ratio: f64,
    /// A dismissed case whose change grew by this share of its area at the dismissal …
    pub reopen_growth: f64,
    /// … and by at least this many m² is opened again for review.
    pub reopen_growth_m2: f64,
}

impl CaseContext {
    /// The context for a run on `day` under a configuration (`[project] region_code`,
    /// `[store] overlap_ratio`).
    pub fn from_config(config: &crate::config::Config, day: NaiveDate) -> CaseContext {
        CaseContext {
            region_code: config.project.region_code.clone(),
            day,
            overlap_ratio: config.store.overlap_ratio,
            reopen_growth: config.store.reopen_growth,
            reopen_growth_m2: config.store.reopen_growth_m2,
        }
    }
}

/// A land-use change this run saw on a parcel that no rule flagged, and why: a case no longer
/// flagged where such a change is still seen says why (a permit registered since, a threshold).
#[derive(Debug, Clone)]
pub struct UnflaggedChange {
    /// Parcel id.
    pub parcel_id: String,
    /// The change inside the parcel, WKT (working CRS).
    pub geometry_wkt: String,
    /// Its area, m².
    pub area_m2: f64,
    /// Why no rule flagged it, in a sentence.
    pub why: String,
}

/// What a run saw besides its findings, for matching them to the cases
/// ([`Store::commit_findings_observed`]). The default knows nothing more.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunSight<'a> {
    /// The area the run could not see (cloud, shadow, no data), WKT polygons in the working
    /// CRS: a case at least half inside it is not marked disappeared, since not seeing it there
    /// means nothing.
    pub unobserved_wkt: &'a [String],
    /// The land-use changes it saw that no rule flagged: a case that no finding matched, where
    /// one of them is (matched as a finding would be), says why it is no longer flagged.
    pub unflagged: &'a [UnflaggedChange],
    /// The ids of the parcel layer it read (`None`: not known): a case whose parcel is no longer
    /// among them (the layer re-surveyed: parcels split, merged or renumbered) is continued by a
    /// finding on another parcel over the same ground, and says so.
    pub parcel_ids: Option<&'a HashSet<String>>,
    /// The share of each case's ground the run observed (`None`: not known; a case not named:
    /// not measured): a case seen over no more than half of it ([`matching::UNOBSERVED_SHARE`])
    /// is not marked disappeared, since not finding it there means nothing.
    pub case_observed: Option<&'a HashMap<String, f64>>,
    /// The day the run's after imagery over each case was taken (`None`: not known; a case not
    /// named: not known): a case whose last finding is of later imagery is not marked
    /// disappeared, since an image taken before the one that showed a change cannot show it gone
    /// (an archive scene delivered late).
    pub case_acquired: Option<&'a HashMap<String, NaiveDate>>,
}

/// A finding of this run, as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindingRecord {
    /// Finding id (stable for the same change on the same parcel).
    pub finding_id: String,
    /// Parcel id.
    pub parcel_id: String,
    /// Suspected violation kind.
    pub kind: String,
    /// The rule that fired.
    pub rule_id: String,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Land-cover transition.
    pub transition: String,
    /// Suspected area, m².
    pub area_m2: f64,
    /// Confidence 0..1.
    pub confidence: f64,
    /// The cells the finding touches.
    pub cells: Vec<String>,
    /// The after image's date.
    pub after_date: Option<String>,
    /// The change polygon as WKT (POLYGON or MULTIPOLYGON), working CRS.
    pub geometry_wkt: String,
    /// Everything else about the finding (kept as JSON).
    pub properties: serde_json::Value,
}

/// The case a finding was assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseAssignment {
    /// The case id.
    pub case_id: String,
    /// True when the case was opened by this run (or by an interrupted run this one redoes).
    pub is_new: bool,
    /// The case's parents (split from / merged from), sorted.
    pub parents: Vec<String>,
    /// The day of the imagery the case was last updated from, when the finding's imagery is of
    /// an earlier day (an archive scene delivered late): the case kept what that newer imagery
    /// showed (a `seen_older` event) and the finding gets no evidence packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_newer: Option<NaiveDate>,
}

/// An evidence packet version written for a case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PacketRecord {
    /// Version (1 for `packets/<case-id>`).
    pub version: u32,
    /// The packet directory.
    pub dir: String,
    /// SHA-256 of its `manifest.json`.
    pub manifest_sha256: String,
    /// The run that wrote it.
    pub run_id: String,
    /// When it was written (its manifest's `created_at`), for a packet an earlier run wrote
    /// and this one finds unchanged; `None`: now.
    pub written_at: Option<String>,
}

/// How a run ended, with its counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    /// `done`, `done_with_skips` or `failed`.
    pub status: String,
    /// Cells processed.
    pub cells_processed: usize,
    /// Cells left alone because nothing they depend on changed.
    pub cells_skipped_unchanged: usize,
    /// Cells processed whose imagery was read and detected.
    pub cells_detected: usize,
    /// Cells processed from the detection cache.
    pub cells_from_cache: usize,
    /// Findings.
    pub findings: usize,
    /// Cases opened.
    pub new_cases: usize,
    /// Cases updated.
    pub updated_cases: usize,
    /// Cases marked disappeared.
    pub disappeared_cases: usize,
    /// Protected area (m²) that no after image observed.
    pub unobserved_protected_m2: f64,
    /// Inputs skipped (unreadable files, bad features) and evidence packets that could not be
    /// written, each named in the run summary.
    pub skipped_inputs: usize,
}

/// Which cases to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CaseFilter {
    /// Only cases with this status.
    pub status: Option<String>,
    /// Only cases last seen on or after this day.
    pub since: Option<NaiveDate>,
}

/// One line of the case list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRow {
    /// Case id.
    pub id: String,
    /// Parcel id.
    pub parcel_id: String,
    /// Status (see [`CASE_STATUSES`]).
    pub status: String,
    /// Suspected violation kind.
    pub kind: String,
    /// When a run first saw it (RFC 3339).
    pub first_seen: String,
    /// When a run last saw it (RFC 3339).
    pub last_seen: String,
    /// Latest suspected area, m².
    pub area_m2: f64,
    /// Latest severity.
    pub severity: String,
    /// Latest rule.
    pub rule_id: String,
    /// Parent cases (split from / merged from), sorted.
    pub parents: Vec<String>,
    /// Directory of the newest packet version.
    pub latest_packet: Option<String>,
}

/// One audit-log entry of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseEvent {
    /// When (RFC 3339).
    pub at: String,
    /// Who: `landwatch` for runs, the analyst's name otherwise.
    pub who: String,
    /// What: opened, seen, seen_older, reopened, disappeared, not_seen, not_judged, merged,
    /// merged_from, split, packet, status.
    pub what: String,
    /// Why, in words.
    pub why: String,
    /// The run, for events a run recorded.
    pub run_id: Option<String>,
    /// Status before, for status changes.
    pub from_status: Option<String>,
    /// Status after, for status changes.
    pub to_status: Option<String>,
    /// The other case of a split or merge.
    pub related_case: Option<String>,
}

/// A geometry a case had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeometryVersion {
    /// The run that saw it.
    pub run_id: String,
    /// The finding.
    pub finding_id: String,
    /// When it was recorded (the run's start).
    pub recorded_at: String,
    /// Suspected area, m².
    pub area_m2: f64,
    /// The polygon, WKT in the working CRS.
    pub geometry_wkt: String,
}

/// A packet version of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketRow {
    /// Version.
    pub version: u32,
    /// Directory.
    pub dir: String,
    /// SHA-256 of `manifest.json`.
    pub manifest_sha256: String,
    /// The run that wrote it.
    pub run_id: String,
    /// When it was recorded.
    pub recorded_at: String,
}

/// A finding of a case, in the run that saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRow {
    /// The run.
    pub run_id: String,
    /// Finding id.
    pub finding_id: String,
    /// Kind.
    pub kind: String,
    /// Rule.
    pub rule_id: String,
    /// Suspected area, m².
    pub area_m2: f64,
    /// Confidence.
    pub confidence: f64,
    /// The after image's date.
    pub after_date: Option<String>,
}

/// Everything about one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDetail {
    /// The list fields.
    #[serde(flatten)]
    pub case: CaseRow,
    /// Region code.
    pub region_code: String,
    /// Latest transition.
    pub transition: String,
    /// Latest confidence.
    pub confidence: f64,
    /// Latest after image date.
    pub after_date: Option<String>,
    /// While it is marked disappeared: the day of the imagery that no longer showed it (`None`
    /// when that imagery had no date). Imagery older than that day does not open it again.
    pub gone_date: Option<String>,
    /// Cells it touches.
    pub cells: Vec<String>,
    /// Latest geometry, WKT in the working CRS.
    pub geometry_wkt: String,
    /// The case it was merged into, when merged.
    pub merged_into: Option<String>,
    /// The run that opened it.
    pub first_run_id: String,
    /// The run that last saw it.
    pub last_run_id: String,
    /// Cases split from or merged into this one, sorted.
    pub children: Vec<String>,
    /// The audit log, oldest first.
    pub events: Vec<CaseEvent>,
    /// Geometry history, oldest first.
    pub geometries: Vec<GeometryVersion>,
    /// Packet versions, oldest first.
    pub packets: Vec<PacketRow>,
    /// Its findings, oldest first.
    pub findings: Vec<FindingRow>,
}

/// One run in the status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End, when it ended.
    pub finished_at: Option<String>,
    /// running, done, done_with_skips, failed or interrupted.
    pub status: String,
    /// Whether it was a `--full` run.
    pub full: bool,
    /// landwatch's version.
    pub software_version: String,
    /// Grid fingerprint.
    pub grid_fingerprint: String,
    /// Cells processed.
    pub cells_processed: Option<usize>,
    /// Cells skipped as unchanged.
    pub cells_skipped_unchanged: Option<usize>,
    /// Cells detected (`None` for runs recorded before the store knew).
    #[serde(default)]
    pub cells_detected: Option<usize>,
    /// Cells from the detection cache (`None` for runs recorded before the store knew).
    #[serde(default)]
    pub cells_from_cache: Option<usize>,
    /// Findings.
    pub findings: Option<usize>,
    /// Cases opened.
    pub new_cases: Option<usize>,
    /// Cases updated.
    pub updated_cases: Option<usize>,
    /// Cases marked disappeared.
    pub disappeared_cases: Option<usize>,
    /// Cases opened again (seen after they disappeared, or grown since a dismissal), from the
    /// run's events.
    #[serde(default)]
    pub reopened_cases: Option<usize>,
    /// Cases seen on imagery older than theirs and kept as the newer imagery showed them, from
    /// the run's events.
    #[serde(default)]
    pub seen_older_cases: Option<usize>,
    /// Cases whose cells the run processed but which it could not judge (too little of them
    /// observed, or imagery older than theirs), from the run's events.
    #[serde(default)]
    pub not_judged_cases: Option<usize>,
    /// Protected area not observed, m².
    pub unobserved_protected_m2: Option<f64>,
    /// Inputs skipped.
    pub skipped_inputs: Option<usize>,
    /// Why a failed run failed (`None` for other runs and runs recorded before the store knew).
    #[serde(default)]
    pub error: Option<String>,
}

/// What `landwatch status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The store file.
    pub store: PathBuf,
    /// Its schema version.
    pub schema_version: u32,
    /// The last runs, newest first.
    pub runs: Vec<RunRow>,
    /// The number of cases per status.
    pub cases_by_status: BTreeMap<String, usize>,
    /// Imagery files known.
    pub imagery_files: usize,
}

/// The store: one SQLite connection.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// The current time, RFC 3339 UTC to the second.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A case id: `<region>-<YYYYMMDD>-<NNNN>` (at least four digits).
pub fn case_id(region_code: &str, day: NaiveDate, seq: u32) -> String {
    format!("{region_code}-{}-{seq:04}", day.format("%Y%m%d"))
}

/// A run id from the run's start: `run-YYYYMMDDTHHMMSSZ-xxxx` (sortable by time; the suffix is random).
pub fn run_id(started_at: &str) -> Result<String, StoreError> {
    let t = chrono::DateTime::parse_from_rfc3339(started_at).map_err(|e| StoreError::Invalid {
        what: "run start time",
        value: started_at.to_string(),
        detail: format!("must be RFC 3339, e.g. 2026-11-28T02:00:00Z ({e})"),
    })?;
    let mut suffix = [0u8; 2];
    getrandom::getrandom(&mut suffix).map_err(|e| StoreError::Invalid {
        what: "run id",
        value: started_at.to_string(),
        detail: format!("no randomness from the operating system: {e}"),
    })?;
    Ok(format!(
        "run-{}-{}",
        t.with_timezone(&chrono::Utc).format("%Y%m%dT%H%M%SZ"),
        hex::encode(suffix)
    ))
}

/// Parses WKT into polygons (POLYGON, MULTIPOLYGON, or a collection of them).
pub fn parse_polygons(text: &str) -> Result<MultiPolygon<f64>, String> {
    use wkt::TryFromWkt;
    let g = geo::Geometry::<f64>::try_from_wkt_str(text).map_err(|e| e.to_string())?;
    fn collect(g: geo::Geometry<f64>, out: &mut Vec<geo::Polygon<f64>>) -> Result<(), String> {
        match g {
            geo::Geometry::Polygon(p) => out.push(p),
            geo::Geometry::MultiPolygon(mp) => out.extend(mp.0),
            geo::Geometry::Rect(r) => out.push(r.to_polygon()),
            geo::Geometry::Triangle(t) => out.push(t.to_polygon()),
            geo::Geometry::GeometryCollection(gc) => {
                for g in gc.0 {
                    collect(g, out)?;
                }
            }
            other => {
                return Err(format!(
                    "a {} has no area",
                    match other {
                        geo::Geometry::Point(_) | geo::Geometry::MultiPoint(_) => "point",
                        _ => "line",
                    }
                ))
            }
        }
        Ok(())
    }
    let mut polys = Vec::new();
    collect(g, &mut polys)?;
    if polys.is_empty() {
        return Err("it is empty".into());
    }
    Ok(MultiPolygon(polys))
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Opens (creating if needed) the store: WAL, foreign keys on, a busy timeout, and the schema
    /// migrated to this binary's version; a store newer than this binary is refused.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(sql(path, "opening the store"))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens a store that must exist already, to write to it (an analyst's decision): a missing
    /// or empty (0-byte) file is no store yet, and is not made one.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if std::fs::metadata(path).map_or(true, |m| !m.is_file() || m.len() == 0) {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Store::open(path)
    }

    /// Opens a store that must exist already, read-only (for the read commands): nothing is
    /// written to it (no switch to WAL, no migration), so looking never changes a store, and a
    /// user without write access can read it. A missing or empty file, or one no landwatch
    /// migrated, is no store yet; a store of an older schema is refused with a message saying
    /// that a scan (which writes) upgrades it; one of a newer schema, as `open` refuses it.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        use rusqlite::OpenFlags;
        let missing = || StoreError::Missing {
            path: path.to_path_buf(),
        };
        if std::fs::metadata(path).map_or(true, |m| !m.is_file() || m.len() == 0) {
            return Err(missing());
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = match Connection::open_with_flags(path, flags) {
            Ok(c) => c,
            Err(e) => return Err(sql(path, "opening the store read-only")(e)),
        };
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql(path, "setting the busy timeout"))?;
        // Reading a store in WAL mode needs its shared-memory file, which SQLite creates beside
        // the store when no process has it open; where the reader may not create it (a directory
        // it cannot write), no writer has the store open either, and the file as it is is the
        // store: read it as immutable.
        let conn = match conn.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0)) {
            Ok(_) => conn,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly
                ) =>
            {
                drop(conn);
                let uri = format!(
                    "file:{}?immutable=1",
                    path.to_string_lossy()
                        .replace('%', "%25")
                        .replace('?', "%3f")
                        .replace('#', "%23")
                );
                Connection::open_with_flags(uri, flags)
                    .map_err(sql(path, "opening the store read-only"))?
            }
            Err(e) => return Err(sql(path, "reading the schema version")(e)),
        };
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        match store.schema_version()? {
            0 => Err(missing()),
            found if found > SCHEMA_VERSION => Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
                software: crate::VERSION.to_string(),
            }),
            found if found < SCHEMA_VERSION => Err(StoreError::NeedsUpgrade {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
                software: crate::VERSION.to_string(),
            }),
            _ => Ok(store),
        }
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        let p = self.path.clone();
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(sql(&p, "setting the busy timeout"))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql(&p, "switching to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal { path: p, mode });
        }
        // FULL: a committed transaction survives a power cut, not just a crash of the process.
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
            .map_err(sql(&p, "setting foreign_keys and synchronous"))?;
        Ok(())
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))
            .map_err(sql(&self.path, "reading the schema version"))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let p = self.path.clone();
        let check = |found: u32| {
            if found > SCHEMA_VERSION {
                Err(StoreError::TooNew {
                    path: p.clone(),
                    found,
                    supported: SCHEMA_VERSION,
                    software: crate::VERSION.to_string(),
                })
            } else {
                Ok(found)
            }
        };
        if check(self.schema_version()?)? == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(&p, "starting the migration"))?;
        // Another process may have migrated between the check and the lock: read again.
        let found: u32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(&p, "reading the schema version"))?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(check(found)? as usize) {
            let version = i as u32 + 1;
            tx.execute_batch(migration)
                .map_err(sql(&p, format!("applying migration {version}")))?;
            tx.pragma_update(None, "user_version", version)
                .map_err(sql(&p, format!("recording schema version {version}")))?;
        }
        tx.commit().map_err(sql(&p, "committing the migration"))
    }

    fn write_tx(&mut self, what: &str) -> Result<Transaction<'_>, StoreError> {
        let p = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(&p, format!("starting a transaction for {what}")))
    }

    /// Starts a run (status `running`) and returns its id.
    pub fn begin_run(&mut self, run: &NewRun) -> Result<String, StoreError> {
        let p = self.path.clone();
        let args = serde_json::to_string(&run.args).unwrap_or_else(|_| "null".into());
        let tx = self.write_tx("a new run")?;
        let mut id = run_id(&run.started_at)?;
        // The random suffix makes a clash unlikely; never reuse an id.
        while tx
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [&id], |_| Ok(()))
            .optional()
            .map_err(sql(&p, "checking the run id"))?
            .is_some()
        {
            id = run_id(&run.started_at)?;
        }
        tx.execute(
            "INSERT INTO runs (id, started_at, status, config_sha256, grid_fingerprint, full, software_version, args)
             VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                run.started_at,
                run.config_sha256,
                run.grid_fingerprint,
                run.full,
                run.software_version,
                args
            ],
        )
        .map_err(sql(&p, format!("recording run {id}")))?;
        tx.commit()
            .map_err(sql(&p, format!("recording run {id}")))?;
        Ok(id)
    }

    /// Upserts imagery rows: a new (path, SHA-256) is first seen now; a known one is seen again.
    pub fn record_imagery(&mut self, items: &[ImageryRecord]) -> Result<(), StoreError> {
        for i in items {
            if !["before", "after"].contains(&i.date_role.as_str()) {
                return Err(StoreError::Invalid {
                    what: "imagery date role",
                    value: i.date_role.clone(),
                    detail: format!("{}: must be 'before' or 'after'", i.path),
                });
            }
        }
        let p = self.path.clone();
        let t = now();
        let tx = self.write_tx("imagery")?;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO imagery (path, sha256, acquired_at, date_role, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (path, sha256) DO UPDATE SET
                       last_seen = excluded.last_seen,
                       acquired_at = coalesce(excluded.acquired_at, imagery.acquired_at),
                       date_role = excluded.date_role",
                )
                .map_err(sql(&p, "recording imagery"))?;
            for i in items {
                st.execute(params![i.path, i.sha256, i.acquired_at, i.date_role, t])
                    .map_err(sql(&p, format!("recording imagery {}", i.path)))?;
            }
        }
        tx.commit().map_err(sql(&p, "recording imagery"))
    }

    /// Whether any run has marked a cell done (of any grid): with none, an incremental run
    /// processes every cell.
    pub fn has_cell_marks(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT EXISTS (SELECT 1 FROM cells)", [], |r| r.get(0))
            .map_err(sql(&self.path, "reading cell marks"))
    }

    /// The ground of each case a run may find gone (open, confirmed, referred or dismissed), for
    /// the run to measure how much of it it saw ([`RunSight::case_observed`]).
    pub fn case_areas(&self) -> Result<Vec<(String, MultiPolygon<f64>)>, StoreError> {
        let p = &self.path;
        let mut st = self
            .conn
            .prepare(
                "SELECT id, geometry_wkt FROM cases
                 WHERE status IN ('open', 'confirmed', 'referred', 'dismissed') ORDER BY id",
            )
            .map_err(sql(p, "reading cases"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql(p, "reading cases"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, wkt) = row.map_err(sql(p, "reading cases"))?;
            let area = parse_polygons(&wkt).map_err(|e| StoreError::CorruptCase {
                path: p.clone(),
                case_id: id.clone(),
                detail: format!("geometry_wkt: {e}"),
            })?;
            out.push((id, area));
        }
        Ok(out)
    }

    /// The last processing of each cell under a grid fingerprint (for incremental runs).
    pub fn cell_marks(
        &self,
        grid_fingerprint: &str,
    ) -> Result<HashMap<String, CellMark>, StoreError> {
        let p = &self.path;
        let mut st = self
            .conn
            .prepare(
                "SELECT c.cell_id, c.run_id, c.after_key, c.inputs_key
                 FROM cells c JOIN runs r ON r.id = c.run_id
                 WHERE r.grid_fingerprint = ?1
                 ORDER BY c.rowid",
            )
            .map_err(sql(p, "reading cell marks"))?;
        let rows = st
            .query_map([grid_fingerprint], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    CellMark {
                        run_id: r.get(1)?,
                        after_key: r.get(2)?,
                        inputs_key: r.get(3)?,
                    },
                ))
            })
            .map_err(sql(p, "reading cell marks"))?;
        // Rows come oldest first: the last one of a cell wins.
        let mut marks = HashMap::new();
        for row in rows {
            let (cell, mark) = row.map_err(sql(p, "reading cell marks"))?;
            marks.insert(cell, mark);
        }
        Ok(marks)
    }

    /// In one transaction: records this run's findings for the processed cells, matches them to
    /// the known cases, opens, updates, merges and splits cases, marks cases that were not seen
    /// although all their cells were processed, and returns each finding's case (in the order of
    /// `findings`). Idempotent: committing the same findings again changes nothing more.
    ///
    /// This run's unobserved area is taken as unknown (empty): see
    /// [`Store::commit_findings_observed`].
    pub fn commit_findings(
        &mut self,
        run_id: &str,
        ctx: &CaseContext,
        processed_cells: &[String],
        findings: &[FindingRecord],
    ) -> Result<Vec<CaseAssignment>, StoreError> {
        self.commit_findings_observed(run_id, ctx, processed_cells, findings, &RunSight::default())
    }

    /// [`Store::commit_findings`], also given what else the run saw ([`RunSight`]): the area it
    /// could not see, the changes no rule flagged, the parcel layer's ids.
    pub fn commit_findings_observed(
        &mut self,
        run_id: &str,
        ctx: &CaseContext,
        processed_cells: &[String],
        findings: &[FindingRecord],
        sight: &RunSight<'_>,
    ) -> Result<Vec<CaseAssignment>, StoreError> {
        validate_context(ctx)?;
        let mut pieces = Vec::new();
        for (i, text) in sight.unobserved_wkt.iter().enumerate() {
            let mp = parse_polygons(text).map_err(|detail| StoreError::Invalid {
                what: "unobserved area",
                value: format!("polygon {i}"),
                detail,
            })?;
            pieces.extend(mp.0);
        }
        // Overlapping pieces count once: each case dissolves those under it.
        let unobserved = Unobserved::new(pieces);
        let mut seen_ids: HashMap<&str, &str> = HashMap::new();
        let mut new_findings = Vec::with_capacity(findings.len());
        for f in findings {
            if let Some(first) = seen_ids.insert(&f.finding_id, &f.parcel_id) {
                return Err(StoreError::DuplicateFinding {
                    finding_id: f.finding_id.clone(),
                    first: first.to_string(),
                    second: f.parcel_id.clone(),
                });
            }
            let geometry =
                parse_polygons(&f.geometry_wkt).map_err(|detail| StoreError::Geometry {
                    finding_id: f.finding_id.clone(),
                    parcel_id: f.parcel_id.clone(),
                    detail,
                })?;
            new_findings.push(NewFinding {
                finding_id: f.finding_id.clone(),
                parcel_id: f.parcel_id.clone(),
                geometry,
            });
        }
        let p = self.path.clone();
        let tx = self.write_tx("the findings")?;
        let seen_at = running_run(&tx, &p, run_id)?;
        let known = known_cases(&tx, &p)?;
        let processed: BTreeSet<String> = processed_cells.iter().cloned().collect();
        let gone = |parcel: &str| sight.parcel_ids.is_some_and(|ids| !ids.contains(parcel));
        let mut plan = plan_matches_with(
            &known.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
            &new_findings,
            &processed,
            &unobserved,
            ctx.overlap_ratio,
            &gone,
        );
        // Cases whose cells were processed but which the run could not judge, and why: not
        // finding them means nothing.
        let mut not_judged: Vec<(String, String)> = std::mem::take(&mut plan.not_observed)
            .into_iter()
            .map(|id| {
                (
                    id,
                    "every cell it touches was processed, but at least half of it was not \
                     observed (cloud, shadow or no data)"
                        .to_string(),
                )
            })
            .collect();
        let observed_share = |id: &str| sight.case_observed.and_then(|m| m.get(id)).copied();
        let mut judged = Vec::with_capacity(plan.not_seen.len());
        for id in std::mem::take(&mut plan.not_seen) {
            let seen_share = observed_share(&id).filter(|f| *f <= 1.0 - matching::UNOBSERVED_SHARE);
            let older = match sight.case_acquired.and_then(|m| m.get(&id)) {
                Some(run_day) => case_day(&tx, &p, &id)?
                    .filter(|last| *run_day < last.day)
                    .map(|last| (*run_day, last.day)),
                None => None,
            };
            match (seen_share, older) {
                (Some(f), _) => not_judged.push((
                    id,
                    if f < 0.005 {
                        "none of it was observed (cloud, shadow or no data)".to_string()
                    } else {
                        format!("only {:.0} % of it was observed", 100.0 * f)
                    },
                )),
                (None, Some((run_day, last))) => not_judged.push((
                    id,
                    format!(
                        "the imagery over it, of {run_day}, is older than the imagery of {last} \
                         the case was judged on: it cannot show the change gone"
                    ),
                )),
                (None, None) => judged.push(id),
            }
        }
        plan.not_seen = judged;
        let case_of: HashMap<&str, &KnownCase> =
            known.iter().map(|(c, _)| (c.id.as_str(), c)).collect();
        // The unflagged changes on the parcels of cases not seen (the only ones asked about; all
        // of them when such a case's parcel left the layer), read before anything is written.
        let asked: HashSet<&str> = plan
            .not_seen
            .iter()
            .filter_map(|id| case_of.get(id.as_str()).map(|c| c.parcel_id.as_str()))
            .collect();
        let ask_all = asked.iter().any(|p| gone(p));
        let mut changes = Vec::new();
        for (i, u) in sight.unflagged.iter().enumerate() {
            if !ask_all && !asked.contains(u.parcel_id.as_str()) {
                continue;
            }
            let g = parse_polygons(&u.geometry_wkt).map_err(|detail| StoreError::Invalid {
                what: "unflagged change",
                value: format!("change {i} on parcel {}", u.parcel_id),
                detail,
            })?;
            changes.push((u, g));
        }
        let status_of: HashMap<&str, &str> = known
            .iter()
            .map(|(c, s)| (c.id.as_str(), s.as_str()))
            .collect();
        let at = now();
        let w = Writer {
            tx: &tx,
            path: &p,
            run_id,
            at: &at,
        };
        // Findings in id order, so new case numbers do not depend on the order they came in.
        let mut order: Vec<usize> = (0..findings.len()).collect();
        order.sort_by(|&a, &b| findings[a].finding_id.cmp(&findings[b].finding_id));
        let mut case_of_finding: Vec<String> = vec![String::new(); findings.len()];
        let mut kept: Vec<Option<NaiveDate>> = vec![None; findings.len()];
        for &i in &order {
            let f = &findings[i];
            // Imagery older than what a case was last updated from shows its ground as it was
            // before: the case keeps the newer state (kind, area, geometry, date, status), and
            // no case is merged on its word.
            let kept_newer = match &plan.decisions[i] {
                Decision::Continue { case_id, .. } => w.newer_than(case_id, f)?,
                Decision::New { .. } => None,
            };
            // A case judged again on the very finding it holds (the same imagery's cells done
            // again) keeps its one geometry row for that finding.
            let mut same_as_before = false;
            let case_id = match (&plan.decisions[i], kept_newer) {
                (Decision::Continue { case_id, .. }, Some(latest)) => {
                    w.seen_older(case_id, f, latest)?;
                    case_id.clone()
                }
                (Decision::Continue { case_id, merged }, None) => {
                    let before = status_of.get(case_id.as_str()).copied().unwrap_or("open");
                    let moved_from = case_of
                        .get(case_id.as_str())
                        .map(|c| c.parcel_id.as_str())
                        .filter(|p| *p != f.parcel_id);
                    same_as_before =
                        w.update_case(case_id, f, &seen_at, before, moved_from, ctx)?;
                    for m in merged {
                        w.merge_case(m, case_id)?;
                    }
                    case_id.clone()
                }
                (Decision::New { parents }, _) => {
                    let id = w.open_case(ctx, f, &seen_at)?;
                    for parent in parents {
                        // A parent on another parcel still in the layer: its boundary moved.
                        let elsewhere = case_of
                            .get(parent.as_str())
                            .is_some_and(|c| c.parcel_id != f.parcel_id && !gone(&c.parcel_id));
                        w.split_case(parent, &id, elsewhere.then_some(f.parcel_id.as_str()))?;
                    }
                    id
                }
            };
            if kept_newer.is_none() && !same_as_before {
                w.record_geometry(&case_id, f, &seen_at)?;
            }
            w.record_finding(&case_id, f)?;
            case_of_finding[i] = case_id;
            kept[i] = kept_newer.map(|d| d.day);
        }
        for id in &plan.not_seen {
            // Where the change is still seen, why no rule flags it now.
            let case = case_of.get(id.as_str());
            let still_seen = case
                .and_then(|case| {
                    changes
                        .iter()
                        .filter(|(u, _)| u.parcel_id == case.parcel_id || gone(&case.parcel_id))
                        .map(|(u, g)| (matching::overlap_ratio(g, &case.geometry), u))
                        .filter(|(r, _)| *r >= ctx.overlap_ratio && *r > 0.0)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                })
                .map(|(_, u)| {
                    format!(
                        ": the change is still seen there ({:.1} m²), but no rule flags it now: {}",
                        u.area_m2, u.why
                    )
                })
                .unwrap_or_default();
            let parcel_gone = case
                .map(|c| c.parcel_id.as_str())
                .filter(|p| gone(p))
                .map_or_else(String::new, |p| {
                    format!("; its parcel {p} is no longer in the parcel layer")
                });
            let observed = observed_share(id)
                .map(|f| format!(" and {:.0} % of it was observed", 100.0 * f))
                .unwrap_or_default();
            let unmatched = format!(
                "no finding matched it although every cell it touches was processed{observed}{still_seen}{parcel_gone}"
            );
            match status_of.get(id.as_str()).copied() {
                Some("open") => {
                    w.event(
                        id,
                        "disappeared",
                        &unmatched,
                        Some(("open", "disappeared")),
                        None,
                        true,
                    )?;
                    // The day of the imagery that no longer showed it: older imagery cannot
                    // open it again.
                    let gone_on = sight
                        .case_acquired
                        .and_then(|m| m.get(id))
                        .map(|d| d.format("%Y-%m-%d").to_string());
                    tx.execute(
                        "UPDATE cases SET gone_date = ?2 WHERE id = ?1",
                        params![id, gone_on],
                    )
                    .map_err(sql(&p, format!("marking case {id} disappeared")))?;
                }
                Some(s @ ("confirmed" | "referred" | "dismissed")) => w.event(
                    id,
                    "not_seen",
                    &format!("{unmatched}; the status stays '{s}' (an analyst's decision)"),
                    None,
                    None,
                    true,
                )?,
                _ => {}
            }
        }
        for (id, why) in &not_judged {
            if let Some("open" | "confirmed" | "referred" | "dismissed") =
                status_of.get(id.as_str()).copied()
            {
                w.event(
                    id,
                    "not_judged",
                    &format!("not judged: {why}; not finding it means nothing"),
                    None,
                    None,
                    true,
                )?;
            }
        }
        let mut out = Vec::with_capacity(findings.len());
        for (case_id, kept_newer) in case_of_finding.into_iter().zip(kept) {
            out.push(CaseAssignment {
                kept_newer,
                ..w.assignment(&case_id)?
            });
        }
        tx.commit()
            .map_err(sql(&p, format!("committing the findings of run {run_id}")))?;
        Ok(out)
    }

    /// Records a packet version written for a case (idempotent on case and version).
    pub fn record_packet(&mut self, case_id: &str, rec: &PacketRecord) -> Result<(), StoreError> {
        let p = self.path.clone();
        let tx = self.write_tx("a packet")?;
        case_status(&tx, &p, case_id)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT manifest_sha256 FROM packets WHERE case_id = ?1 AND version = ?2",
                params![case_id, rec.version],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&p, format!("reading packets of case {case_id}")))?;
        match existing {
            Some(h) if h == rec.manifest_sha256 => return Ok(()),
            Some(h) => {
                return Err(StoreError::Invalid {
                    what: "packet",
                    value: format!("{case_id} v{}", rec.version),
                    detail: format!(
                        "it was recorded with manifest SHA-256 {h}, now {}: a recorded packet never changes; \
                         write the changed finding as a new version",
                        rec.manifest_sha256
                    ),
                })
            }
            None => {}
        }
        let at = rec.written_at.clone().unwrap_or_else(now);
        tx.execute(
            "INSERT INTO packets (case_id, version, dir, manifest_sha256, run_id, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                case_id,
                rec.version,
                rec.dir,
                rec.manifest_sha256,
                rec.run_id,
                at
            ],
        )
        .map_err(sql(
            &p,
            format!("recording packet v{} of case {case_id}", rec.version),
        ))?;
        Writer {
            tx: &tx,
            path: &p,
            run_id: &rec.run_id,
            at: &at,
        }
        .event(
            case_id,
            "packet",
            &format!("evidence packet v{} written to {}", rec.version, rec.dir),
            None,
            None,
            false,
        )?;
        tx.commit().map_err(sql(
            &p,
            format!("recording packet v{} of case {case_id}", rec.version),
        ))
    }

    /// Whether the store knows a run (a packet's manifest may name a run of another store).
    pub fn knows_run(&self, run_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM runs WHERE id = ?1", params![run_id], |_| {
                Ok(())
            })
            .optional()
            .map(|r| r.is_some())
            .map_err(sql(&self.path, format!("looking up run {run_id}")))
    }

    /// Marks the run's cells done and closes the run with its outcome, in one transaction.
    pub fn finish_run(
        &mut self,
        run_id: &str,
        cells: &[CellDone],
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        if !["done", "done_with_skips", "failed"].contains(&outcome.status.as_str()) {
            return Err(StoreError::Invalid {
                what: "run outcome",
                value: outcome.status.clone(),
                detail: "must be 'done', 'done_with_skips' or 'failed'".into(),
            });
        }
        let p = self.path.clone();
        let tx = self.write_tx("finishing the run")?;
        running_run(&tx, &p, run_id)?;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO cells (run_id, cell_id, after_key, inputs_key) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (run_id, cell_id) DO UPDATE SET
                       after_key = excluded.after_key, inputs_key = excluded.inputs_key",
                )
                .map_err(sql(&p, "recording cells"))?;
            for c in cells {
                st.execute(params![run_id, c.cell_id, c.after_key, c.inputs_key])
                    .map_err(sql(
                        &p,
                        format!("recording cell {} of run {run_id}", c.cell_id),
                    ))?;
            }
        }
        let n = |v: usize| v as i64;
        tx.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, cells_processed = ?4, cells_skipped_unchanged = ?5,
               findings = ?6, new_cases = ?7, updated_cases = ?8, disappeared_cases = ?9,
               unobserved_protected_m2 = ?10, skipped_inputs = ?11, cells_detected = ?12,
               cells_from_cache = ?13
             WHERE id = ?1",
            params![
                run_id,
                outcome.status,
                now(),
                n(outcome.cells_processed),
                n(outcome.cells_skipped_unchanged),
                n(outcome.findings),
                n(outcome.new_cases),
                n(outcome.updated_cases),
                n(outcome.disappeared_cases),
                outcome.unobserved_protected_m2,
                n(outcome.skipped_inputs),
                n(outcome.cells_detected),
                n(outcome.cells_from_cache)
            ],
        )
        .map_err(sql(&p, format!("closing run {run_id}")))?;
        tx.commit()
            .map_err(sql(&p, format!("closing run {run_id}")))
    }

    /// Closes a running run as `failed`, with why: it stopped before it could finish (bad
    /// inputs, nothing to compare, a full disk). No cell is marked done; nothing else changes.
    pub fn fail_run(&mut self, run_id: &str, error: &str) -> Result<(), StoreError> {
        let p = self.path.clone();
        let tx = self.write_tx("closing a failed run")?;
        running_run(&tx, &p, run_id)?;
        tx.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1",
            params![run_id, now(), error],
        )
        .map_err(sql(&p, format!("closing failed run {run_id}")))?;
        tx.commit()
            .map_err(sql(&p, format!("closing failed run {run_id}")))
    }

    /// How many cases a run recorded events of each kind on (`opened`, `seen`, `reopened`,
    /// `disappeared`, `not_seen`, `merged`, `split`, `packet`), e.g. for the run's outcome counts.
    /// The interrupted runs it redoes count as its own (a killed run that committed its findings
    /// marked the night's disappeared cases, which the rerun then finds disappeared already), as
    /// long as the status an event set is still the case's.
    pub fn run_event_counts(&self, run_id: &str) -> Result<BTreeMap<String, usize>, StoreError> {
        let p = &self.path;
        let op = || format!("counting the events of run {run_id}");
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT e.what, count(DISTINCT e.case_id) FROM case_events e
                   JOIN cases c ON c.id = e.case_id
                 WHERE e.run_id IN ({RUN_AND_REDONE})
                   AND (e.to_status IS NULL OR e.to_status = c.status)
                 GROUP BY e.what"
            ))
            .map_err(sql(p, op()))?;
        let rows = st
            .query_map([run_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(sql(p, op()))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (what, n) = row.map_err(sql(p, op()))?;
            out.insert(what, n.max(0) as usize);
        }
        Ok(out)
    }

    /// Marks runs left `running` by a killed process as `interrupted`; returns how many. Call it
    /// under the run lock, before starting a run.
    pub fn mark_interrupted_runs(&mut self) -> Result<usize, StoreError> {
        let p = self.path.clone();
        let tx = self.write_tx("marking interrupted runs")?;
        let n = tx
            .execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?1 WHERE status = 'running'",
                [now()],
            )
            .map_err(sql(&p, "marking interrupted runs"))?;
        tx.commit().map_err(sql(&p, "marking interrupted runs"))?;
        Ok(n)
    }

    /// The cases matching a filter, by id.
    pub fn cases(&self, filter: &CaseFilter) -> Result<Vec<CaseRow>, StoreError> {
        if let Some(s) = &filter.status {
            check_status(s, CASE_STATUSES)?;
        }
        let p = &self.path;
        let since = filter.since.map(|d| d.format("%Y-%m-%d").to_string());
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {CASE_ROW_COLUMNS} FROM cases c
                 WHERE (?1 IS NULL OR c.status = ?1) AND (?2 IS NULL OR c.last_seen >= ?2)
                 ORDER BY c.id"
            ))
            .map_err(sql(p, "listing cases"))?;
        let rows = st
            .query_map(params![filter.status, since], case_row)
            .map_err(sql(p, "listing cases"))?;
        let mut out = Vec::new();
        for r in rows {
            let mut row = r.map_err(sql(p, "listing cases"))?;
            row.parents = self.parents(&row.id)?;
            out.push(row);
        }
        Ok(out)
    }

    fn parents(&self, case_id: &str) -> Result<Vec<String>, StoreError> {
        strings(
            &self.conn,
            &self.path,
            "SELECT parent_id FROM case_parents WHERE case_id = ?1 ORDER BY parent_id",
            case_id,
        )
    }

    /// One case with its history, or None when there is no such case.
    pub fn case(&self, id: &str) -> Result<Option<CaseDetail>, StoreError> {
        let p = &self.path;
        let op = || format!("reading case {id}");
        let head = self
            .conn
            .query_row(
                &format!(
                    "SELECT {CASE_ROW_COLUMNS}, c.region_code, c.transition, c.confidence, c.after_date,
                       c.cells, c.geometry_wkt, c.merged_into, c.first_run_id, c.last_run_id,
                       CASE WHEN c.status = 'disappeared' THEN c.gone_date END
                     FROM cases c WHERE c.id = ?1"
                ),
                [id],
                |r| {
                    Ok((
                        case_row(r)?,
                        r.get::<_, String>(10)?,
                        r.get::<_, String>(11)?,
                        r.get::<_, f64>(12)?,
                        r.get::<_, Option<String>>(13)?,
                        r.get::<_, String>(14)?,
                        r.get::<_, String>(15)?,
                        r.get::<_, Option<String>>(16)?,
                        r.get::<_, String>(17)?,
                        r.get::<_, String>(18)?,
                        r.get::<_, Option<String>>(19)?,
                    ))
                },
            )
            .optional()
            .map_err(sql(p, op()))?;
        let Some((
            mut case,
            region_code,
            transition,
            confidence,
            after_date,
            cells,
            geometry_wkt,
            merged_into,
            first_run_id,
            last_run_id,
            gone_date,
        )) = head
        else {
            return Ok(None);
        };
        case.parents = self.parents(id)?;
        let cells: Vec<String> =
            serde_json::from_str(&cells).map_err(|e| StoreError::CorruptCase {
                path: p.clone(),
                case_id: id.to_string(),
                detail: format!("cells is not a JSON list: {e}"),
            })?;
        let children = strings(
            &self.conn,
            p,
            "SELECT case_id FROM case_parents WHERE parent_id = ?1 ORDER BY case_id",
            id,
        )?;
        let events = query_list(
            &self.conn,
            p,
            "SELECT at, who, what, why, run_id, from_status, to_status, related_case
             FROM case_events WHERE case_id = ?1 ORDER BY id",
            id,
            |r| {
                Ok(CaseEvent {
                    at: r.get(0)?,
                    who: r.get(1)?,
                    what: r.get(2)?,
                    why: r.get(3)?,
                    run_id: r.get(4)?,
                    from_status: r.get(5)?,
                    to_status: r.get(6)?,
                    related_case: r.get(7)?,
                })
            },
        )?;
        let geometries = query_list(
            &self.conn,
            p,
            "SELECT g.run_id, g.finding_id, g.recorded_at, g.area_m2, g.geometry_wkt
             FROM case_geometries g JOIN runs r ON r.id = g.run_id
             WHERE g.case_id = ?1 ORDER BY r.rowid",
            id,
            |r| {
                Ok(GeometryVersion {
                    run_id: r.get(0)?,
                    finding_id: r.get(1)?,
                    recorded_at: r.get(2)?,
                    area_m2: r.get(3)?,
                    geometry_wkt: r.get(4)?,
                })
            },
        )?;
        let packets = query_list(
            &self.conn,
            p,
            "SELECT version, dir, manifest_sha256, run_id, recorded_at FROM packets
             WHERE case_id = ?1 ORDER BY version",
            id,
            |r| {
                Ok(PacketRow {
                    version: r.get(0)?,
                    dir: r.get(1)?,
                    manifest_sha256: r.get(2)?,
                    run_id: r.get(3)?,
                    recorded_at: r.get(4)?,
                })
            },
        )?;
        let findings = query_list(
            &self.conn,
            p,
            "SELECT f.run_id, f.finding_id, f.kind, f.rule_id, f.area_m2, f.confidence, f.after_date
             FROM findings f JOIN runs r ON r.id = f.run_id
             WHERE f.case_id = ?1 ORDER BY r.rowid, f.finding_id",
            id,
            |r| {
                Ok(FindingRow {
                    run_id: r.get(0)?,
                    finding_id: r.get(1)?,
                    kind: r.get(2)?,
                    rule_id: r.get(3)?,
                    area_m2: r.get(4)?,
                    confidence: r.get(5)?,
                    after_date: r.get(6)?,
                })
            },
        )?;
        Ok(Some(CaseDetail {
            case,
            region_code,
            transition,
            confidence,
            after_date,
            gone_date,
            cells,
            geometry_wkt,
            merged_into,
            first_run_id,
            last_run_id,
            children,
            events,
            geometries,
            packets,
            findings,
        }))
    }

    /// The last `last_n` runs (newest first), the cases per status and the imagery count.
    pub fn status(&self, last_n: usize) -> Result<StatusReport, StoreError> {
        let p = &self.path;
        let mut st = self
            .conn
            .prepare(
                "SELECT id, started_at, finished_at, status, full, software_version, grid_fingerprint,
                   cells_processed, cells_skipped_unchanged, findings, new_cases, updated_cases,
                   disappeared_cases, unobserved_protected_m2, skipped_inputs, cells_detected,
                   cells_from_cache, error,
                   (SELECT count(*) FROM case_events e WHERE e.run_id = runs.id AND e.what = 'reopened'),
                   (SELECT count(*) FROM case_events e WHERE e.run_id = runs.id AND e.what = 'seen_older'),
                   (SELECT count(*) FROM case_events e WHERE e.run_id = runs.id AND e.what = 'not_judged')
                 FROM runs ORDER BY rowid DESC LIMIT ?1",
            )
            .map_err(sql(p, "reading runs"))?;
        let n = |r: &rusqlite::Row, i: usize| -> rusqlite::Result<Option<usize>> {
            Ok(r.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as usize))
        };
        let runs = st
            .query_map([last_n as i64], |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    status: r.get(3)?,
                    full: r.get(4)?,
                    software_version: r.get(5)?,
                    grid_fingerprint: r.get(6)?,
                    cells_processed: n(r, 7)?,
                    cells_skipped_unchanged: n(r, 8)?,
                    findings: n(r, 9)?,
                    new_cases: n(r, 10)?,
                    updated_cases: n(r, 11)?,
                    disappeared_cases: n(r, 12)?,
                    unobserved_protected_m2: r.get(13)?,
                    skipped_inputs: n(r, 14)?,
                    cells_detected: n(r, 15)?,
                    cells_from_cache: n(r, 16)?,
                    error: r.get(17)?,
                    reopened_cases: n(r, 18)?,
                    seen_older_cases: n(r, 19)?,
                    not_judged_cases: n(r, 20)?,
                })
            })
            .map_err(sql(p, "reading runs"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(p, "reading runs"))?;
        let mut cases_by_status = BTreeMap::new();
        let mut st = self
            .conn
            .prepare("SELECT status, count(*) FROM cases GROUP BY status")
            .map_err(sql(p, "counting cases"))?;
        let counts = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(sql(p, "counting cases"))?;
        for c in counts {
            let (s, k) = c.map_err(sql(p, "counting cases"))?;
            cases_by_status.insert(s, k.max(0) as usize);
        }
        let imagery_files: i64 = self
            .conn
            .query_row("SELECT count(*) FROM imagery", [], |r| r.get(0))
            .map_err(sql(p, "counting imagery"))?;
        Ok(StatusReport {
            store: p.clone(),
            schema_version: self.schema_version()?,
            runs,
            cases_by_status,
            imagery_files: imagery_files.max(0) as usize,
        })
    }

    /// An analyst's decision on a case (see [`REVIEW_STATUSES`]), recorded in the audit log with
    /// who and why; returns the status it had. A decision the case already has is recorded
    /// again (the analyst judged the case as it is now, e.g. a dismissal of a change that has
    /// grown since, which later growth is then measured from).
    pub fn set_case_status(
        &mut self,
        id: &str,
        status: &str,
        who: &str,
        why: &str,
    ) -> Result<String, StoreError> {
        check_status(status, REVIEW_STATUSES)?;
        for (what, v) in [("reviewer (--by)", who), ("reason (--reason)", why)] {
            if v.trim().is_empty() {
                return Err(StoreError::Invalid {
                    what: if what.starts_with("reviewer") {
                        "reviewer"
                    } else {
                        "reason"
                    },
                    value: v.to_string(),
                    detail: format!("the audit log needs a {what}: it must not be empty"),
                });
            }
        }
        let p = self.path.clone();
        let tx = self.write_tx("a status change")?;
        let (before, merged_into) = case_status(&tx, &p, id)?;
        if before == "merged" {
            return Err(StoreError::Invalid {
                what: "status change",
                value: format!("{id} → {status}"),
                detail: format!(
                    "case {id} was merged into {}: review that case instead",
                    merged_into.as_deref().unwrap_or("another case")
                ),
            });
        }
        tx.execute(
            "UPDATE cases SET status = ?2 WHERE id = ?1",
            params![id, status],
        )
        .map_err(sql(&p, format!("setting the status of case {id}")))?;
        tx.execute(
            "INSERT INTO case_events (case_id, at, who, what, why, from_status, to_status)
             VALUES (?1, ?2, ?3, 'status', ?4, ?5, ?6)",
            params![id, now(), who.trim(), why.trim(), before, status],
        )
        .map_err(sql(&p, format!("recording the status change of case {id}")))?;
        tx.commit()
            .map_err(sql(&p, format!("setting the status of case {id}")))?;
        Ok(before)
    }
}

/// The day of the latest imagery a case was judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CaseDay {
    day: NaiveDate,
    /// The day is that of the imagery that showed the case gone (it is marked disappeared).
    gone: bool,
}

/// The day of the latest imagery case `id` was judged on: the imagery it was last updated from,
/// or, while it is marked disappeared, the imagery that no longer showed it when that is later
/// (`None` when undated).
fn case_day(tx: &Transaction, path: &Path, id: &str) -> Result<Option<CaseDay>, StoreError> {
    let (last, gone): (Option<String>, Option<String>) = tx
        .query_row(
            "SELECT after_date, CASE WHEN status = 'disappeared' THEN gone_date END
             FROM cases WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql(path, format!("reading case {id}")))?;
    let seen = last.as_deref().and_then(day_of);
    Ok(match (seen, gone.as_deref().and_then(day_of)) {
        (seen, Some(gone)) if seen.is_none_or(|s| gone > s) => Some(CaseDay {
            day: gone,
            gone: true,
        }),
        (seen, _) => seen.map(|day| CaseDay { day, gone: false }),
    })
}

/// The day of an after date as the store and the findings keep it (`2026-10-14`, or a span's
/// first day).
pub fn day_of(after_date: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(after_date.get(..10)?, "%Y-%m-%d").ok()
}

/// The order of the rules' severities (`low` < `medium` < `high`); another word ranks lowest.
fn severity_rank(severity: &str) -> u8 {
    match severity {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

fn validate_context(ctx: &CaseContext) -> Result<(), StoreError> {
    if ctx.region_code.is_empty() || !ctx.region_code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(StoreError::Invalid {
            what: "region code",
            value: ctx.region_code.clone(),
            detail: "must be letters and digits only ([project] region_code; it prefixes case ids)"
                .into(),
        });
    }
    if !(ctx.overlap_ratio > 0.0 && ctx.overlap_ratio <= 1.0) {
        return Err(StoreError::Invalid {
            what: "overlap ratio",
            value: ctx.overlap_ratio.to_string(),
            detail: "must be in (0, 1] ([store] overlap_ratio)".into(),
        });
    }
    Ok(())
}

fn check_status(status: &str, allowed: &[&str]) -> Result<(), StoreError> {
    if allowed.contains(&status) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: "case status",
            value: status.to_string(),
            detail: format!("must be one of {}", allowed.join(", ")),
        })
    }
}

/// The columns `case_row` reads, in its order.
const CASE_ROW_COLUMNS: &str = "c.id, c.parcel_id, c.status, c.kind, c.first_seen, c.last_seen, c.area_m2, c.severity, c.rule_id,
  (SELECT dir FROM packets k WHERE k.case_id = c.id ORDER BY k.version DESC LIMIT 1)";

fn case_row(r: &rusqlite::Row) -> rusqlite::Result<CaseRow> {
    Ok(CaseRow {
        id: r.get(0)?,
        parcel_id: r.get(1)?,
        status: r.get(2)?,
        kind: r.get(3)?,
        first_seen: r.get(4)?,
        last_seen: r.get(5)?,
        area_m2: r.get(6)?,
        severity: r.get(7)?,
        rule_id: r.get(8)?,
        parents: Vec::new(),
        latest_packet: r.get(9)?,
    })
}

fn strings(
    conn: &Connection,
    path: &Path,
    query: &str,
    key: &str,
) -> Result<Vec<String>, StoreError> {
    query_list(conn, path, query, key, |r| r.get(0))
}

fn query_list<T>(
    conn: &Connection,
    path: &Path,
    query: &str,
    key: &str,
    f: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let op = || format!("reading {key}");
    let mut st = conn.prepare(query).map_err(sql(path, op()))?;
    let rows = st.query_map([key], f).map_err(sql(path, op()))?;
    rows.collect::<Result<Vec<T>, _>>().map_err(sql(path, op()))
}

/// Checks that a run exists and is running; returns its start time.
fn running_run(tx: &Transaction, path: &Path, run_id: &str) -> Result<String, StoreError> {
    let row: Option<(String, String)> = tx
        .query_row(
            "SELECT status, started_at FROM runs WHERE id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql(path, format!("reading run {run_id}")))?;
    match row {
        None => Err(StoreError::NoSuchRun {
            path: path.to_path_buf(),
            run_id: run_id.to_string(),
        }),
        Some((status, _)) if status != "running" => Err(StoreError::RunNotRunning {
            path: path.to_path_buf(),
            run_id: run_id.to_string(),
            status,
        }),
        Some((_, started_at)) => Ok(started_at),
    }
}

/// A case's status and what it was merged into, or NoSuchCase.
fn case_status(
    tx: &Transaction,
    path: &Path,
    case_id: &str,
) -> Result<(String, Option<String>), StoreError> {
    tx.query_row(
        "SELECT status, merged_into FROM cases WHERE id = ?1",
        [case_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(sql(path, format!("reading case {case_id}")))?
    .ok_or_else(|| StoreError::NoSuchCase {
        path: path.to_path_buf(),
        case_id: case_id.to_string(),
    })
}

/// Every case a finding may continue (all but merged ones), with its status.
fn known_cases(tx: &Transaction, path: &Path) -> Result<Vec<(KnownCase, String)>, StoreError> {
    let mut st = tx
        .prepare(
            "SELECT id, parcel_id, first_seen, last_finding_id, cells, geometry_wkt, status
             FROM cases WHERE status <> 'merged' ORDER BY id",
        )
        .map_err(sql(path, "reading cases"))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .map_err(sql(path, "reading cases"))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, parcel_id, first_seen, last_finding_id, cells, wkt, status) =
            row.map_err(sql(path, "reading cases"))?;
        let corrupt = |detail: String| StoreError::CorruptCase {
            path: path.to_path_buf(),
            case_id: id.clone(),
            detail,
        };
        let cells: Vec<String> = serde_json::from_str(&cells)
            .map_err(|e| corrupt(format!("cells is not a JSON list: {e}")))?;
        let geometry = parse_polygons(&wkt).map_err(|e| corrupt(format!("geometry_wkt: {e}")))?;
        out.push((
            KnownCase {
                id,
                parcel_id,
                first_seen,
                last_finding_id,
                cells,
                geometry,
            },
            status,
        ));
    }
    Ok(out)
}

/// Writes the rows of one commit.
struct Writer<'a> {
    tx: &'a Transaction<'a>,
    path: &'a Path,
    run_id: &'a str,
    at: &'a str,
}

impl Writer<'_> {
    fn err(&self, op: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
        sql(self.path, op)
    }

    /// Adds an audit-log entry; `once`: not if this run (or an interrupted run it redoes)
    /// already logged `what` on the case.
    fn event(
        &self,
        case_id: &str,
        what: &str,
        why: &str,
        change: Option<(&str, &str)>,
        related: Option<&str>,
        once: bool,
    ) -> Result<(), StoreError> {
        if once {
            let exists = self
                .tx
                .query_row(
                    &format!(
                        "SELECT 1 FROM case_events WHERE case_id = ?2 AND what = ?3
                           AND coalesce(related_case, '') = coalesce(?4, '')
                           AND run_id IN ({RUN_AND_REDONE}) LIMIT 1"
                    ),
                    params![self.run_id, case_id, what, related],
                    |_| Ok(()),
                )
                .optional()
                .map_err(self.err(format!("reading events of case {case_id}")))?;
            if exists.is_some() {
                return Ok(());
            }
        }
        if let Some((_, to)) = change {
            self.tx
                .execute(
                    "UPDATE cases SET status = ?2 WHERE id = ?1",
                    params![case_id, to],
                )
                .map_err(self.err(format!("setting the status of case {case_id}")))?;
        }
        self.tx
            .execute(
                "INSERT INTO case_events (case_id, at, who, what, why, run_id, from_status, to_status, related_case)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    case_id,
                    self.at,
                    RUN_ACTOR,
                    what,
                    why,
                    self.run_id,
                    change.map(|c| c.0),
                    change.map(|c| c.1),
                    related
                ],
            )
            .map_err(self.err(format!("recording an event of case {case_id}")))?;
        Ok(())
    }

    fn open_case(
        &self,
        ctx: &CaseContext,
        f: &FindingRecord,
        seen_at: &str,
    ) -> Result<String, StoreError> {
        let day = ctx.day.format("%Y%m%d").to_string();
        let seq: u32 = self
            .tx
            .query_row(
                "INSERT INTO case_sequences (region_code, day, last) VALUES (?1, ?2, 1)
                 ON CONFLICT (region_code, day) DO UPDATE SET last = last + 1
                 RETURNING last",
                params![ctx.region_code, day],
                |r| r.get(0),
            )
            .map_err(self.err(format!(
                "allocating a case number for {}-{day}",
                ctx.region_code
            )))?;
        let id = case_id(&ctx.region_code, ctx.day, seq);
        self.tx
            .execute(
                "INSERT INTO cases (id, region_code, parcel_id, status, kind, rule_id, severity, transition,
                   area_m2, confidence, after_date, first_seen, last_seen, first_run_id, last_run_id,
                   last_finding_id, cells, geometry_wkt)
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?12, ?13, ?14, ?15)",
                params![
                    id,
                    ctx.region_code,
                    f.parcel_id,
                    f.kind,
                    f.rule_id,
                    f.severity,
                    f.transition,
                    f.area_m2,
                    f.confidence,
                    f.after_date,
                    seen_at,
                    self.run_id,
                    f.finding_id,
                    json_list(&f.cells),
                    f.geometry_wkt
                ],
            )
            .map_err(self.err(format!("opening case {id} for finding {}", f.finding_id)))?;
        self.event(
            &id,
            "opened",
            &format!(
                "suspected {} on parcel {} ({:.1} m², rule {})",
                f.kind, f.parcel_id, f.area_m2, f.rule_id
            ),
            None,
            None,
            false,
        )?;
        Ok(id)
    }

    /// Continues a case with a finding. A case that had disappeared is open again; a dismissed
    /// one too when its change grew or worsened since (`reopen_if_changed`). `moved_from`: the
    /// case's parcel, when the finding lies on another (the case's parcel is no longer in the
    /// parcel layer).
    /// The day of the latest imagery case `case_id` was judged on ([`case_day`]: the imagery it
    /// was last updated from, or the one that showed it gone), when finding `f`'s imagery is of
    /// an earlier day (`None` when it is not, or either has no date).
    fn newer_than(&self, case_id: &str, f: &FindingRecord) -> Result<Option<CaseDay>, StoreError> {
        let last = case_day(self.tx, self.path, case_id)?;
        Ok(match (f.after_date.as_deref().and_then(day_of), last) {
            (Some(now), Some(last)) if now < last.day => Some(last),
            _ => None,
        })
    }

    /// Logs that finding `f`, on imagery older than the case's, showed the case's ground again;
    /// the case itself is left as it is.
    fn seen_older(
        &self,
        case_id: &str,
        f: &FindingRecord,
        latest: CaseDay,
    ) -> Result<(), StoreError> {
        let day = f.after_date.as_deref().and_then(day_of);
        let show = |d: Option<NaiveDate>| d.map_or_else(|| "?".to_string(), |d| d.to_string());
        let keeps = if latest.gone {
            format!(
                "the imagery of {} no longer showed it: the case stays disappeared",
                latest.day
            )
        } else {
            format!("the case keeps what the imagery of {} showed", latest.day)
        };
        self.event(
            case_id,
            "seen_older",
            &format!(
                "seen on older imagery, of {} (finding {}: {} on parcel {}, {:.1} m²); {keeps}",
                show(day),
                f.finding_id,
                f.kind,
                f.parcel_id,
                f.area_m2,
            ),
            None,
            None,
            true,
        )
    }

    /// Updates a case from the finding that continues it; true when that finding is the one the
    /// case already held (the same imagery's cells judged again) and a finished run recorded its
    /// geometry.
    fn update_case(
        &self,
        case_id: &str,
        f: &FindingRecord,
        seen_at: &str,
        status_before: &str,
        moved_from: Option<&str>,
        ctx: &CaseContext,
    ) -> Result<bool, StoreError> {
        // The finding the case already holds, from the same imagery: its cells were judged
        // again (a `--full` run, new rules, parcels or permits), nothing new was seen.
        let same: bool = self
            .tx
            .query_row(
                "SELECT after_date IS ?2 AND last_finding_id = ?3 AND geometry_wkt = ?4
                 FROM cases WHERE id = ?1",
                params![case_id, f.after_date, f.finding_id, f.geometry_wkt],
                |r| r.get(0),
            )
            .map_err(self.err(format!("reading case {case_id}")))?;
        self.tx
            .execute(
                "UPDATE cases SET parcel_id = ?2, kind = ?3, rule_id = ?4, severity = ?5, transition = ?6,
                   area_m2 = ?7, confidence = ?8, after_date = ?9, last_seen = ?10, last_run_id = ?11,
                   last_finding_id = ?12, cells = ?13, geometry_wkt = ?14, gone_date = NULL
                 WHERE id = ?1",
                params![
                    case_id,
                    f.parcel_id,
                    f.kind,
                    f.rule_id,
                    f.severity,
                    f.transition,
                    f.area_m2,
                    f.confidence,
                    f.after_date,
                    seen_at,
                    self.run_id,
                    f.finding_id,
                    json_list(&f.cells),
                    f.geometry_wkt
                ],
            )
            .map_err(self.err(format!("updating case {case_id}")))?;
        if status_before == "disappeared" {
            self.event(
                case_id,
                "reopened",
                &format!(
                    "seen again (finding {}, {:.1} m²) after it had disappeared",
                    f.finding_id, f.area_m2
                ),
                Some(("disappeared", "open")),
                None,
                true,
            )?;
        } else if status_before == "dismissed" {
            self.reopen_if_changed(case_id, f, ctx)?;
        }
        // A case opened by this very run (a redone commit), or by an interrupted run it redoes,
        // is not "seen" again.
        let opened_now = self
            .tx
            .query_row(
                &format!(
                    "SELECT 1 FROM cases WHERE id = ?2 AND first_run_id IN ({RUN_AND_REDONE})"
                ),
                params![self.run_id, case_id],
                |_| Ok(()),
            )
            .optional()
            .map_err(self.err(format!("reading case {case_id}")))?
            .is_some();
        if !opened_now {
            self.event(
                case_id,
                "seen",
                &format!(
                    "seen again{}: finding {} ({} on parcel {}, {:.1} m²){}",
                    if same {
                        " on the same imagery (its cells judged again: a --full run, or new \
                         rules, parcels or permits)"
                    } else {
                        ""
                    },
                    f.finding_id,
                    f.kind,
                    f.parcel_id,
                    f.area_m2,
                    moved_from.map_or_else(String::new, |p| format!(
                        "; its parcel {p} is no longer in the parcel layer (re-surveyed?): the \
                         same ground lies on parcel {} now",
                        f.parcel_id
                    ))
                ),
                None,
                None,
                true,
            )?;
        }
        // Its geometry row is kept once, unless only an interrupted run recorded it (a run
        // that redoes one records its own: whether a case is new is read off those rows).
        let recorded = same
            && self
                .tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM case_geometries g JOIN runs r ON r.id = g.run_id
                       WHERE g.case_id = ?1 AND g.finding_id = ?2 AND g.run_id <> ?3
                         AND r.status <> 'interrupted')",
                    params![case_id, f.finding_id, self.run_id],
                    |r| r.get(0),
                )
                .map_err(self.err(format!("reading the geometries of case {case_id}")))?;
        Ok(recorded)
    }

    /// Opens a dismissed case again when the finding continuing it is larger than the case was
    /// when it was dismissed, by the context's growth thresholds, or of a higher severity (an
    /// excavation that became a building): the dismissal judged a smaller or a lesser change.
    fn reopen_if_changed(
        &self,
        case_id: &str,
        f: &FindingRecord,
        ctx: &CaseContext,
    ) -> Result<(), StoreError> {
        let read = || format!("reading the dismissal of case {case_id}");
        // The latest dismissal.
        let dismissal: Option<(i64, String, String)> = self
            .tx
            .query_row(
                "SELECT id, at, who FROM case_events
                 WHERE case_id = ?1 AND what = 'status' AND to_status = 'dismissed'
                 ORDER BY id DESC LIMIT 1",
                [case_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.err(read()))?;
        let Some((event_id, at, who)) = dismissal else {
            return Ok(());
        };
        // The case as the analyst saw it: the finding of the last run before the dismissal (in
        // the audit log's order, not by clocks).
        let seen: Option<(f64, String, String, Option<String>)> = self
            .tx
            .query_row(
                "SELECT fi.area_m2, fi.kind, fi.severity, fi.after_date FROM case_events s
                   JOIN findings fi ON fi.case_id = s.case_id AND fi.run_id = s.run_id
                 WHERE s.case_id = ?1 AND s.id < ?2 AND s.what <> 'seen_older'
                 ORDER BY s.id DESC LIMIT 1",
                params![case_id, event_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.err(read()))?;
        let Some((area, kind, severity, dismissed_on)) = seen else {
            return Ok(());
        };
        // Imagery taken before the image the analyst judged cannot show that the change grew or
        // worsened since (an older scene, or another observation of an earlier day, read
        // otherwise): only imagery of that day or later reopens the case.
        let day = |d: Option<&str>| d.and_then(day_of);
        if let (Some(now), Some(then)) =
            (day(f.after_date.as_deref()), day(dismissed_on.as_deref()))
        {
            if now < then {
                return Ok(());
            }
        }
        let grown = f.area_m2 - area;
        let mut changed = Vec::new();
        if grown >= ctx.reopen_growth * area && grown >= ctx.reopen_growth_m2 {
            changed.push(format!("grew from {area:.1} m² to {:.1} m²", f.area_m2));
        }
        if severity_rank(&f.severity) > severity_rank(&severity) {
            changed.push(format!(
                "became {} ({}) from {kind} ({severity})",
                f.kind, f.severity
            ));
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.event(
            case_id,
            "reopened",
            &format!(
                "{} since it was dismissed ({at}, by {who}): open again for review (finding {})",
                changed.join(" and "),
                f.finding_id
            ),
            Some(("dismissed", "open")),
            None,
            true,
        )
    }

    fn merge_case(&self, merged: &str, into: &str) -> Result<(), StoreError> {
        let before: String = self
            .tx
            .query_row("SELECT status FROM cases WHERE id = ?1", [merged], |r| {
                r.get(0)
            })
            .map_err(self.err(format!("reading case {merged}")))?;
        self.tx
            .execute(
                "UPDATE cases SET merged_into = ?2 WHERE id = ?1",
                params![merged, into],
            )
            .map_err(self.err(format!("merging case {merged} into {into}")))?;
        self.event(
            merged,
            "merged",
            &format!("its region grew together with case {into}, which continues it"),
            Some((before.as_str(), "merged")),
            Some(into),
            true,
        )?;
        // An analyst's decision on the merged case stays on it: the case that continues says
        // so, for whoever reviews it.
        let decision = if matches!(before.as_str(), "confirmed" | "referred" | "dismissed") {
            self.tx
                .query_row(
                    "SELECT at, who, why FROM case_events
                     WHERE case_id = ?1 AND what = 'status' AND to_status = ?2
                     ORDER BY id DESC LIMIT 1",
                    params![merged, before],
                    |r| {
                        Ok(format!(
                            "; it had been {before} ({}, by {}: {}), a decision on its ground \
                             alone that stays with it: review this case as a whole",
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?
                        ))
                    },
                )
                .optional()
                .map_err(self.err(format!("reading the decision on case {merged}")))?
                .unwrap_or_default()
        } else {
            String::new()
        };
        self.event(
            into,
            "merged_from",
            &format!("case {merged} merged into this case{decision}"),
            None,
            Some(merged),
            true,
        )?;
        self.parent(into, merged, "merge")
    }

    /// Records `child` as split from `parent`; `on_parcel`: the child's parcel, when the part
    /// lies on another parcel than the parent's (whose boundary moved).
    fn split_case(
        &self,
        parent: &str,
        child: &str,
        on_parcel: Option<&str>,
    ) -> Result<(), StoreError> {
        self.event(
            parent,
            "split",
            &format!(
                "part of its region is now case {child}{}",
                on_parcel.map_or_else(String::new, |p| format!(
                    ", on parcel {p}: the parcel layer gives that ground to parcel {p} now \
                     (re-surveyed?)"
                ))
            ),
            None,
            Some(child),
            true,
        )?;
        self.parent(child, parent, "split")
    }

    fn parent(&self, case_id: &str, parent: &str, relation: &str) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO case_parents (case_id, parent_id, relation, run_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (case_id, parent_id) DO NOTHING",
                params![case_id, parent, relation, self.run_id],
            )
            .map_err(self.err(format!("recording {parent} as parent of {case_id}")))?;
        Ok(())
    }

    fn record_geometry(
        &self,
        case_id: &str,
        f: &FindingRecord,
        seen_at: &str,
    ) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO case_geometries (case_id, run_id, finding_id, recorded_at, area_m2, geometry_wkt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (case_id, run_id) DO UPDATE SET finding_id = excluded.finding_id,
                   area_m2 = excluded.area_m2, geometry_wkt = excluded.geometry_wkt",
                params![case_id, self.run_id, f.finding_id, seen_at, f.area_m2, f.geometry_wkt],
            )
            .map_err(self.err(format!("recording the geometry of case {case_id}")))?;
        Ok(())
    }

    fn record_finding(&self, case_id: &str, f: &FindingRecord) -> Result<(), StoreError> {
        let props = serde_json::to_string(&f.properties).unwrap_or_else(|_| "null".into());
        self.tx
            .execute(
                "INSERT INTO findings (run_id, finding_id, case_id, parcel_id, kind, rule_id, severity, transition,
                   area_m2, confidence, cells, after_date, geometry_wkt, properties)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (run_id, finding_id) DO UPDATE SET case_id = excluded.case_id,
                   parcel_id = excluded.parcel_id, kind = excluded.kind, rule_id = excluded.rule_id,
                   severity = excluded.severity, transition = excluded.transition, area_m2 = excluded.area_m2,
                   confidence = excluded.confidence, cells = excluded.cells, after_date = excluded.after_date,
                   geometry_wkt = excluded.geometry_wkt, properties = excluded.properties",
                params![
                    self.run_id,
                    f.finding_id,
                    case_id,
                    f.parcel_id,
                    f.kind,
                    f.rule_id,
                    f.severity,
                    f.transition,
                    f.area_m2,
                    f.confidence,
                    json_list(&f.cells),
                    f.after_date,
                    f.geometry_wkt,
                    props
                ],
            )
            .map_err(self.err(format!("recording finding {}", f.finding_id)))?;
        Ok(())
    }

    /// The assignment of a case: new when this run (or an interrupted run it redoes) opened it.
    fn assignment(&self, case_id: &str) -> Result<CaseAssignment, StoreError> {
        let is_new: bool = self
            .tx
            .query_row(
                "SELECT c.first_run_id = ?2 OR NOT EXISTS (
                   SELECT 1 FROM case_geometries g JOIN runs r ON r.id = g.run_id
                   WHERE g.case_id = c.id AND g.run_id <> ?2 AND r.status <> 'interrupted')
                 FROM cases c WHERE c.id = ?1",
                params![case_id, self.run_id],
                |r| r.get(0),
            )
            .map_err(self.err(format!("reading case {case_id}")))?;
        let parents = {
            let mut st = self
                .tx
                .prepare("SELECT parent_id FROM case_parents WHERE case_id = ?1 ORDER BY parent_id")
                .map_err(self.err(format!("reading parents of case {case_id}")))?;
            let rows = st
                .query_map([case_id], |r| r.get::<_, String>(0))
                .map_err(self.err(format!("reading parents of case {case_id}")))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.err(format!("reading parents of case {case_id}")))?
        };
        Ok(CaseAssignment {
            case_id: case_id.to_string(),
            is_new,
            parents,
            kept_newer: None,
        })
    }
}

#[cfg(test)]
mod tests;
