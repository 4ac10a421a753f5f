//! `landwatch scan`: catalogue → grid → detect → vectorize → overlay + rules, over every cell
//! that holds parcels and imagery of both dates, writing findings, coverage and a summary.

use super::cache::{CacheOptions, DetectCache, Detection, KeyContext, Outcome};
use super::detect::M2_PER_MU;
use super::{catalog_date, ensure_dir, observation_bounds, PipelineError, Skipped};
use crate::config::Config;
use crate::detect::cover::Transition;
use crate::detect::{CellStats, Detector, UNOBSERVED_NO, UNOBSERVED_NO_DATA};
use crate::export::geojson::{self, ToWgs84};
use crate::export::raster::{GeoTiffSpec, GeoTiffWriter};
use crate::export::vector::{write_vector, FieldKind, Value as VValue, VectorLayer};
use crate::grid::{Cell, GridDef};
use crate::ingest::catalog::{sha256_file, CatalogEntry};
use crate::ingest::plan::{plan_grid, vector_crs_before_reading, GridRequest};
use crate::ingest::read::SingleBandReader;
use crate::ingest::vector::{read_layer_as, LayerRole, PARCELS_ROLE, PERMITS_ROLE};
use crate::ingest::{group_observations, CellReader, Observation};
use crate::overlay::pieces;
use crate::parcels::{
    apply_control_layer, control_polygons, note_control_off_parcels, parcels_from_layer,
    permits_from_layer, ControlZones, ParcelFields, ParcelNote, ParcelSet,
};
use crate::rules::{judge, RuleSet};
use crate::vectorize::{cell_pieces, merge_pieces, EdgeStrips, MergedRegion, Piece as RegionPiece};
use chrono::{NaiveDate, NaiveDateTime};
use geo::{Area, BooleanOps, Centroid, MultiPolygon};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// One region's share of a change in a parcel: (region index, the part inside the parcel).
type ParcelShare = (usize, MultiPolygon<f64>);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar (on a terminal).
    Bar,
    /// Plain log lines.
    Log,
}

/// What to run.
#[derive(Clone)]
pub struct ScanJob {
    /// The configuration (imagery, parcels, grid, detection, rules, output).
    pub config: Config,
    /// Output directory.
    pub out: PathBuf,
    /// The detector.
    pub detector: Arc<dyn Detector>,
    /// The rules.
    pub rules: RuleSet,
    /// How to show progress.
    pub progress: Progress,
    /// Incremental runs: given the grid's fingerprint and every candidate cell with its keys,
    /// returns the cells to process (`None`: all of them).
    pub select_cells: Option<Arc<CellSelector>>,
    /// `select_cells` chooses every candidate cell whatever its keys (a first run, `--full`):
    /// then nothing needs the imagery's content hashes before detection.
    pub selects_every_cell: bool,
    /// The per-cell detection cache (`None`: detect every cell, cache nothing): a cell whose
    /// imagery, detection parameters, detector, grid and code are unchanged since its entry was
    /// written is re-judged from the entry (and the scores in the last run's score raster)
    /// without reading imagery or detecting.
    pub detect_cache: Option<CacheOptions>,
    /// Areas whose sight the run reports ([`ScanResult::watched`]): the known cases' ground, in
    /// the working CRS, so that a case the imagery did not show is not taken for one that is gone.
    pub watch: Vec<WatchedArea>,
}

/// An area whose sight a run reports (see [`ScanJob::watch`]).
#[derive(Debug, Clone)]
pub struct WatchedArea {
    /// Its id (a case's).
    pub id: String,
    /// The area, working CRS.
    pub area: MultiPolygon<f64>,
}

/// How much of a watched area the after imagery of the cells processed saw.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaSight {
    /// The area's id.
    pub id: String,
    /// The share of its pixels (by pixel centres) observed by at least one after observation,
    /// clear of cloud and shadow; for an area too small to hold a pixel centre, the pixel under
    /// its interior point.
    pub observed_fraction: f64,
    /// When the after imagery over it was taken: the latest acquisition time of the after files
    /// whose footprints meet it ([`super::acquired_over`]); `None` when no dated file does.
    pub acquired: Option<NaiveDateTime>,
}

/// Chooses the cells of an incremental run (see [`ScanJob::select_cells`]).
pub type CellSelector = dyn Fn(&str, &[CellKey]) -> std::collections::HashSet<String> + Send + Sync;

/// What a cell's result depends on, as content hashes: a cell whose keys are unchanged since its
/// last successful run gives the same result again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellKey {
    /// The cell.
    pub cell_id: String,
    /// SHA-256 over the before and after rasters that overlap the cell: each one's content hash,
    /// date role, acquisition time, sensor and the bands read from it.
    pub after_key: String,
    /// SHA-256 over everything else the result depends on: parcels, permits, control layers,
    /// rules, detection parameters, band overrides, the detector and the grid.
    pub inputs_key: String,
}

/// One suspected violation.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable within the run's inputs: a hash of parcel, kind and location.
    pub finding_id: String,
    /// Parcel id.
    pub parcel_id: String,
    /// Approved use of the parcel.
    pub approved_use: String,
    /// Control layers of the parcel.
    pub control_layers: Vec<String>,
    /// Suspected violation kind.
    pub kind: String,
    /// Bilingual label of the kind.
    pub kind_label: String,
    /// The rule that fired.
    pub rule_id: String,
    /// Severity.
    pub severity: String,
    /// Land-cover transition.
    pub transition: String,
    /// Suspected area, m² (for building beyond a permit: the excess only).
    pub area_m2: f64,
    /// The same in mu.
    pub area_mu: f64,
    /// Area of the whole change region, m².
    pub region_area_m2: f64,
    /// Share of the parcel that changed (this region).
    pub parcel_changed_fraction: f64,
    /// Confidence 0–1.
    pub confidence: f64,
    /// The observation that saw it (`satellite`, `drone`).
    pub observation: String,
    /// Other observations that saw it too.
    pub also_seen_by: Vec<String>,
    /// The day the before imagery under it was taken (the latest of its files there).
    pub before_date: Option<String>,
    /// The day the after imagery under it was taken (the latest of its files there); permits
    /// were judged on it.
    pub after_date: Option<String>,
    /// Permits consulted.
    pub permits: Vec<String>,
    /// Cells the region spans.
    pub cells: Vec<String>,
    /// The rule trace.
    pub rule_trace: Value,
    /// The suspected area as a polygon in the working CRS.
    #[serde(skip)]
    pub polygon: MultiPolygon<f64>,
    /// The whole change region in the working CRS.
    #[serde(skip)]
    pub region_polygon: MultiPolygon<f64>,
}

/// What was observed of one protected parcel.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Parcel id.
    pub parcel_id: String,
    /// Approved use.
    pub approved_use: String,
    /// Control layers.
    pub control_layers: Vec<String>,
    /// `observed_clean`, `observed_with_findings`, `partly_unobserved`, `unobserved`.
    pub status: String,
    /// Share observed on both dates.
    pub observed_fraction: f64,
    /// Share hidden by cloud or haze.
    pub cloud_fraction: f64,
    /// Share hidden by cloud shadow.
    pub shadow_fraction: f64,
    /// Share without imagery of a date (outside the scenes, nodata).
    pub no_data_fraction: f64,
    /// Findings on the parcel.
    pub findings: usize,
    /// Outline.
    #[serde(skip)]
    pub polygon: MultiPolygon<f64>,
}

/// One observation as reported.
#[derive(Debug, Clone, Serialize)]
pub struct ObservationReport {
    /// Name.
    pub name: String,
    /// Its rasters.
    pub sources: Vec<String>,
    /// The day its rasters were taken, or the span of days (`2026-10-14/2026-10-20`).
    pub after_date: Option<String>,
    /// Regions found (land use and cycles).
    pub regions: usize,
    /// Land-use change regions.
    pub land_use_regions: usize,
    /// Cells with a removed shift.
    pub shifted_cells: usize,
}

/// The run summary (`summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// Software version.
    pub version: String,
    /// The detector.
    pub detector: String,
    /// What the detector is ([`Detector::describe`]): for a learned model, its name, version,
    /// licence, training data and the SHA-256 of its files, as `landwatch detect`'s summary and
    /// the evidence manifests give them.
    pub detector_info: Value,
    /// The working CRS.
    pub working_crs: String,
    /// The grid.
    pub grid: GridDef,
    /// The day the before imagery was taken, or the span of days (`2026-04-12/2026-05-02`).
    pub before_date: Option<String>,
    /// Observations of the after date(s).
    pub observations: Vec<ObservationReport>,
    /// Cells scanned.
    pub cells_scanned: usize,
    /// Parcels loaded.
    pub parcels: usize,
    /// Permits loaded.
    pub permits: usize,
    /// Findings.
    pub findings: usize,
    /// Findings per kind.
    pub findings_by_kind: BTreeMap<String, usize>,
    /// Protected parcels per coverage status.
    pub coverage: BTreeMap<String, usize>,
    /// Protected area not observed, m².
    pub unobserved_protected_m2: f64,
    /// Inputs, cells and features skipped or repaired.
    pub skipped: Vec<Skipped>,
    /// Parcel geometry notes (repaired or rejected features).
    pub parcel_notes: Vec<ParcelNote>,
    /// Files written.
    pub outputs: Vec<PathBuf>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Wall time per stage, seconds. Stages may overlap: `parcels` (timed in its own thread) runs
    /// beside `catalogue`, whose time includes it. `content_hashes`, when present, is the time
    /// waited at the end of `detect` (and counted in it) for the imagery's content hashes
    /// computed beside detection.
    pub stage_seconds: BTreeMap<String, f64>,
    /// Cells skipped by an incremental run because nothing they depend on changed.
    pub cells_unchanged: usize,
    /// Cells scanned whose imagery was read and detected in this run.
    pub cells_detected: usize,
    /// Cells scanned from the detection cache (no imagery read, no detection).
    pub cells_from_cache: usize,
    /// The case of each finding (in findings order), once the store has assigned them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<crate::store::CaseAssignment>,
    /// Open cases this run no longer flagged although it processed every cell they touch
    /// (marked `disappeared`; each case's history says why), once the store has marked them.
    #[serde(skip_serializing_if = "is_zero")]
    pub cases_disappeared: usize,
    /// Cases this run opened again (seen again after they disappeared, or grown since an
    /// analyst dismissed them), once the store has marked them.
    #[serde(skip_serializing_if = "is_zero")]
    pub cases_reopened: usize,
    /// Cases whose cells this run processed without finding them, but which it could not judge
    /// (too little of them observed, or imagery older than theirs): left as they were, each
    /// case's history says so.
    #[serde(skip_serializing_if = "is_zero")]
    pub cases_not_judged: usize,
    /// Evidence packets (filled by the evidence stage after the scan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<PacketsReport>,
}

/// What the evidence stage did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PacketsReport {
    /// Where the packets are.
    pub dir: PathBuf,
    /// Packets written (new cases or new versions).
    pub written: usize,
    /// Packets already there and identical (nothing written).
    pub unchanged: usize,
    /// Findings left without a packet because their imagery is older than their case's (the
    /// case kept what the newer imagery showed).
    #[serde(skip_serializing_if = "is_zero")]
    pub left_out: usize,
    /// Packets that could not be made, with why.
    pub failed: Vec<String>,
    /// The fingerprint of the signing key.
    pub key_fingerprint: String,
    /// Per finding (in findings order): the case id and its packet directory.
    pub cases: Vec<PacketLine>,
    /// Seconds spent.
    pub seconds: f64,
}

/// One finding's packet.
#[derive(Debug, Clone, Serialize)]
pub struct PacketLine {
    /// The finding.
    pub finding_id: String,
    /// Its case.
    pub case_id: String,
    /// The packet directory (absent when it could not be made).
    pub dir: Option<PathBuf>,
    /// The packet's version.
    pub version: Option<u32>,
    /// Why the finding has no packet, when it was left out on purpose (not a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_out: Option<String>,
}

/// Everything a scan produced.
pub struct ScanResult {
    /// The summary.
    pub report: ScanReport,
    /// The findings.
    pub findings: Vec<Finding>,
    /// The land-use changes over parcels that no rule flagged, with why (for the store: a case
    /// no longer flagged where its change is still seen says why).
    pub unflagged: Vec<Unflagged>,
    /// Coverage of protected parcels.
    pub coverage: Vec<Coverage>,
    /// What the evidence stage needs to read chips around the findings.
    pub context: ScanContext,
    /// The keys of the cells processed (for the store's record of what is done); a cell that
    /// could not be read or detected is left out, so that the next run tries it again.
    pub cell_keys: Vec<CellKey>,
    /// What the processed cells saw of each watched area they meet ([`ScanJob::watch`]).
    pub watched: Vec<AreaSight>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A land-use change inside one parcel that no rule flagged.
#[derive(Debug, Clone)]
pub struct Unflagged {
    /// The parcel.
    pub parcel_id: String,
    /// The change inside the parcel (working CRS).
    pub polygon: MultiPolygon<f64>,
    /// Its area, m².
    pub area_m2: f64,
    /// Why no rule flagged it ([`crate::rules::Judgement::why_not`]).
    pub why: String,
}

/// The run's grid, imagery and parcels, kept for the evidence stage after the scan.
pub struct ScanContext {
    /// The analysis grid.
    pub grid: GridDef,
    /// The before observation.
    pub before: Observation,
    /// The after observations.
    pub after: Vec<Observation>,
    /// Parcels and permits in the working CRS.
    pub parcels: ParcelSet,
    /// Per after observation: the change score raster this run wrote (on the grid).
    pub score_files: Vec<PathBuf>,
    /// Square metres per squared CRS unit.
    pub m2_per_unit2: f64,
}

/// Where a cell's detections came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Imagery was read and detected.
    Detected,
    /// The detection cache.
    Cache,
    /// Neither: the imagery could not be read (the errors say why).
    Nothing,
}

struct CellScan {
    cell: Cell,
    source: Source,
    per_obs: Vec<ObsCell>,
    /// Per protected parcel index: pixels observed, no data, cloud, shadow.
    coverage: Vec<(usize, [u64; 4])>,
    /// Per watched area index: [`WatchedSight`].
    watched: Vec<(usize, WatchedSight)>,
    errors: Vec<Skipped>,
}

/// What one cell saw of a watched area: the pixels whose centres lie inside it and how many of
/// them were observed; the pixel under its interior point (when in the cell) and whether it was.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct WatchedSight {
    pixels: u64,
    observed: u64,
    point: u64,
    point_observed: u64,
}

impl WatchedSight {
    fn add(&mut self, o: &WatchedSight) {
        self.pixels += o.pixels;
        self.observed += o.observed;
        self.point += o.point;
        self.point_observed += o.point_observed;
    }

    /// The share observed: of the pixels inside, else of the pixel under the interior point
    /// (`None`: neither met a processed cell).
    fn fraction(&self) -> Option<f64> {
        if self.pixels > 0 {
            Some(self.observed as f64 / self.pixels as f64)
        } else if self.point > 0 {
            Some(self.point_observed as f64 / self.point as f64)
        } else {
            None
        }
    }
}

/// The watched areas by bounding box.
struct WatchIndex<'a> {
    areas: &'a [WatchedArea],
    /// Each area's interior point (`None`: empty).
    points: Vec<Option<geo::Point<f64>>>,
    tree: crate::parcels::RectTree,
}

impl<'a> WatchIndex<'a> {
    fn new(areas: &'a [WatchedArea]) -> Self {
        use geo::{BoundingRect, InteriorPoint};
        WatchIndex {
            areas,
            points: areas.iter().map(|a| a.area.interior_point()).collect(),
            tree: crate::parcels::rect_tree(areas.iter().map(|a| a.area.bounding_rect())),
        }
    }

    /// What a cell's core (`gt`, `w` × `h` pixels, bounds `rect`) saw of the areas meeting it,
    /// given each pixel's unobserved reason.
    fn sight(
        &self,
        rect: &geo::Rect<f64>,
        gt: &[f64; 6],
        (w, h): (usize, usize),
        reason: &[u8],
    ) -> Vec<(usize, WatchedSight)> {
        if self.areas.is_empty() {
            return Vec::new();
        }
        crate::parcels::indices_near(&self.tree, rect)
            .into_iter()
            .map(|i| {
                let mut s = WatchedSight::default();
                for poly in &self.areas[i].area.0 {
                    crate::rasterize::for_each_span(gt, w, h, poly, |row, cols| {
                        let run = &reason[row * w + cols.start..row * w + cols.end];
                        s.pixels += run.len() as u64;
                        s.observed += run.iter().filter(|r| **r == UNOBSERVED_NO).count() as u64;
                    });
                }
                if let Some(p) = self.points[i] {
                    let (col, row) = crate::rasterize::map_to_pixel(gt, p.x(), p.y());
                    if (0.0..w as f64).contains(&col) && (0.0..h as f64).contains(&row) {
                        s.point = 1;
                        s.point_observed =
                            u64::from(reason[row as usize * w + col as usize] == UNOBSERVED_NO);
                    }
                }
                (i, s)
            })
            .collect()
    }
}

struct ObsCell {
    pieces: Vec<RegionPiece>,
    strips: EdgeStrips,
    stats: Option<CellStats>,
    /// Per parcel index: observed pixels, and observed pixels in the parcel's edge band.
    observed: Vec<(usize, [u64; 2])>,
    /// The change score over the cell's core (NaN where unobserved), when detection ran.
    score: Option<Vec<f32>>,
    /// The observation covered the cell but had no valid pixel there.
    no_valid_pixels: bool,
}

/// Warns, once per CRS, of imagery read onto a grid across a legacy Chinese datum (Xian 1980,
/// Beijing 1954): see [`crate::ingest::srs::legacy_datum_problem`].
fn legacy_datum_warnings(entries: &[&CatalogEntry], grid_crs: &str) {
    use crate::ingest::srs;
    let Ok(grid) = srs::parse_crs(grid_crs) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for e in entries {
        let Some(crs) = e.info.as_ref().and_then(|i| i.crs.as_ref()) else {
            continue;
        };
        if !seen.insert(crs.wkt.clone()) {
            continue;
        }
        let Ok(from) = srs::parse_crs(&crs.wkt) else {
            continue;
        };
        if let Some(problem) = srs::legacy_datum_problem(&from, &grid) {
            tracing::warn!(
                "{} (and any other imagery in {}) onto the grid in {}: {problem}",
                e.path.display(),
                crs.name,
                srs::short(grid_crs)
            );
        }
    }
}

/// Gives the calling thread the lowest scheduling priority (nice 19): a content hash computed
/// beside detection then takes the cores only when the workers leave them idle (waiting for a
/// date's reader, the last cells), instead of slowing every cell down — at equal priority the
/// scan was barely faster than hashing first.
fn yield_to_detection() {
    // SAFETY: setpriority(2) with integer arguments only. On Linux the nice value belongs to the
    // thread, and `who` 0 is the calling one; a failure leaves its priority as it was.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
}

/// A file's content hash being computed in a thread of its own.
type Hashing = (
    PathBuf,
    std::thread::JoinHandle<Result<String, crate::ingest::IngestError>>,
);

/// Starts computing the content hash of each file the observations read, one thread per
/// file, at the lowest priority.
fn hash_beside<'a>(observations: impl Iterator<Item = &'a Observation>) -> Vec<Hashing> {
    let mut paths: Vec<PathBuf> = observations
        .flat_map(|o| o.sources.sources.iter().map(|s| s.path.clone()))
        .collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .map(|p| {
            let path = p.clone();
            let h = std::thread::spawn(move || {
                yield_to_detection();
                sha256_file(&path)
            });
            (p, h)
        })
        .collect()
}

/// Waits for the content hashes [`hash_beside`] started for these observations and puts each
/// into the sources read from its file. A file that cannot be read to its end fails the run,
/// named (every file hashed is one the observations read).
fn fill_hashes(
    hashing: Vec<Hashing>,
    before: &mut [Observation],
    after: &mut [Observation],
) -> Result<(), PipelineError> {
    let mut digests: HashMap<PathBuf, String> = HashMap::new();
    for (path, h) in hashing {
        let sha = h.join().map_err(|_| {
            PipelineError::Inputs(format!("{}: hashing the file failed", path.display()))
        })??;
        digests.insert(path, sha);
    }
    for s in before
        .iter_mut()
        .chain(after.iter_mut())
        .flat_map(|o| o.sources.sources.iter_mut())
    {
        s.info.sha256 = digests.get(&s.path).cloned().ok_or_else(|| {
            PipelineError::Inputs(format!(
                "{}: no content hash was computed",
                s.path.display()
            ))
        })?;
    }
    Ok(())
}

/// Keeps one before observation, the one of most files (the first of them on a tie): every
/// after observation is compared with it. The others (before imagery of another sensor or other
/// bands, such as a drone flight among satellite tiles) are named as skipped input.
fn one_before(before: &mut Vec<Observation>) -> Vec<Skipped> {
    if before.len() < 2 {
        return Vec::new();
    }
    let keep = (0..before.len())
        .rev()
        .max_by_key(|&i| before[i].sources.sources.len())
        .unwrap_or(0);
    let kept = before.swap_remove(keep);
    let skipped = before
        .drain(..)
        .map(|o| {
            let message = format!(
                "before observation '{}' ({} file(s): {}) is not used: a scan compares every after \
                 observation with one before observation, here '{}' ({} file(s), of another \
                 sensor or other bands); scan the other before imagery in a run of its own, with \
                 after imagery of its kind",
                o.name,
                o.sources.sources.len(),
                o.files().join(", "),
                kept.name,
                kept.sources.sources.len()
            );
            tracing::warn!("skipped {message}");
            Skipped {
                what: o.name.clone(),
                kind: "unused_before".into(),
                message,
            }
        })
        .collect();
    before.push(kept);
    skipped
}

/// The days an observation's files were taken: `2026-04-12`, or `2026-04-12/2026-05-02` (an ISO
/// 8601 interval) when they differ.
fn date_span(obs: &Observation) -> Option<String> {
    let days = obs
        .sources
        .sources
        .iter()
        .filter_map(|s| s.info.acquired.as_ref().map(|a| a.time.date()));
    let (first, last) = days.fold(None, |acc: Option<(NaiveDate, NaiveDate)>, d| {
        Some(acc.map_or((d, d), |(a, b)| (a.min(d), b.max(d))))
    })?;
    Some(if first == last {
        first.format("%Y-%m-%d").to_string()
    } else {
        format!("{}/{}", first.format("%Y-%m-%d"), last.format("%Y-%m-%d"))
    })
}

/// The after imagery used without an acquisition date, named (kind `no_date`) and logged: a
/// whole observation, whose permits are judged on the day of the run, or a file of a dated
/// mosaic, whose findings are dated by the mosaic's other files (which need not be its day, and
/// nothing says it is newer than the before imagery).
fn undated_after(after: &[Observation]) -> Vec<Skipped> {
    let mut skipped = Vec::new();
    for obs in after {
        let sidecar = |p: &std::path::Path| {
            format!(
                "give its date in a sidecar {}.json ({{\"acquired_at\": \"2026-10-14T02:51:00\"}})",
                p.display()
            )
        };
        let Some(first) = obs.sources.sources.first() else {
            continue;
        };
        let Some(after_day) = latest(obs).map(|d| d.date()) else {
            let today = chrono::Local::now().date_naive();
            let message = format!(
                "after observation '{}' ({}) has no acquisition date (no sidecar, \
                 ACQUISITION_DATE or TIFFTAG_DATETIME): compared, with its permits judged on \
                 the day of the run ({today}); {}{}",
                obs.name,
                obs.files().join(", "),
                sidecar(&first.path),
                if obs.sources.sources.len() > 1 {
                    ", and so for each of its files"
                } else {
                    ""
                }
            );
            tracing::warn!("{message}");
            skipped.push(Skipped {
                what: obs.name.clone(),
                kind: "no_date".into(),
                message,
            });
            continue;
        };
        skipped.extend(name_undated_files(obs, |path| {
            format!(
                "{}: after imagery of observation '{}' has no acquisition date (no sidecar, \
                 ACQUISITION_DATE or TIFFTAG_DATETIME): compared, with findings over it dated by \
                 the observation's other files (at latest {after_day}) and permits judged on \
                 that day; {}",
                path.display(),
                obs.name,
                sidecar(path)
            )
        }));
    }
    skipped
}

/// Each file of `obs` without an acquisition date, named (kind `no_date`, `message` of its path)
/// and logged.
fn name_undated_files(
    obs: &Observation,
    message: impl Fn(&std::path::Path) -> String,
) -> Vec<Skipped> {
    obs.sources
        .sources
        .iter()
        .filter(|s| s.info.acquired.is_none())
        .map(|s| {
            let message = message(&s.path);
            tracing::warn!("{message}");
            Skipped {
                what: s.path.display().to_string(),
                kind: "no_date".into(),
                message,
            }
        })
        .collect()
}

/// The files of a dated before mosaic used without an acquisition date, named (kind `no_date`)
/// and logged: nothing shows such a file is older than the after imagery (a newer one is left
/// out, `newer_than_after`), and findings over it are dated by the mosaic's other files. Before
/// imagery without any date is used as it is, unnamed: the after imagery's date decides.
fn undated_before(before: &Observation) -> Vec<Skipped> {
    let Some(before_day) = latest(before).map(|d| d.date()) else {
        return Vec::new();
    };
    name_undated_files(before, |path| {
        format!(
            "{}: before imagery has no acquisition date (no sidecar, ACQUISITION_DATE or \
             TIFFTAG_DATETIME) where the rest of the before imagery has (at latest \
             {before_day}): compared, but nothing shows it is older than the after imagery, and \
             findings over it are dated by the other files; give its date in a sidecar {}.json \
             ({{\"acquired_at\": \"2026-04-12T02:48:00\"}})",
            path.display(),
            path.display()
        )
    })
}

fn latest(obs: &Observation) -> Option<NaiveDateTime> {
    obs.sources
        .sources
        .iter()
        .filter_map(|s| s.info.acquired.as_ref().map(|a| a.time))
        .max()
}

/// Runs a scan.
pub fn run_scan(job: &ScanJob) -> Result<ScanResult, PipelineError> {
    let started = std::time::Instant::now();
    let mut stages: BTreeMap<String, f64> = BTreeMap::new();
    let mut lap = {
        let mut t = std::time::Instant::now();
        move |name: &str, stages: &mut BTreeMap<String, f64>| {
            let now = std::time::Instant::now();
            *stages.entry(name.to_string()).or_default() += (now - t).as_secs_f64();
            t = now;
        }
    };
    let cfg = &job.config;
    // The imagery's content hashes (SHA-256 of every file) are what a cell's cache key and an
    // incremental run's choice of cells depend on. A run with neither — no entry in its cache to
    // look up, no cells to choose — computes them beside detection (they were most of the
    // catalogue's time, with both cores busy and detection waiting) and fills them in after.
    let defer_hashes = (job.select_cells.is_none() || job.selects_every_cell)
        && job
            .detect_cache
            .as_ref()
            .is_none_or(|o| o.refresh || !DetectCache::has_entries(&o.dir));
    crate::ingest::init_gdal();
    let parcels_path = cfg
        .parcels
        .path
        .as_ref()
        .map(|p| cfg.resolve(p))
        .ok_or_else(|| {
            PipelineError::Inputs(
                "no parcels: set [parcels] path in the config or pass --parcels".into(),
            )
        })?;

    // The working CRS: the config's, else the parcels'. Parcels in a geographic CRS (degrees:
    // CGCS2000 or WGS 84 longitude and latitude) would make the grid one of degrees, every
    // image warped onto it and areas an estimate; the imagery's projected CRS is taken instead,
    // once the catalogue has it.
    let parcels_crs = match &cfg.grid.crs {
        Some(c) => c.clone(),
        // The layer is read below, which warns of what this finds (once).
        None => vector_crs_before_reading(
            &parcels_path,
            cfg.parcels.layer.as_deref(),
            Some(&PARCELS_ROLE),
            cfg.parcels.crs.as_deref(),
        )?,
    };
    let choose_crs = cfg.grid.crs.is_none()
        && crate::ingest::srs::parse_crs(&parcels_crs)
            .is_ok_and(|s| crate::ingest::srs::describe(&s).geographic);
    // Parcels, permits, control layers in the working CRS: loaded beside the catalogue, which
    // is busy hashing files meanwhile (neither needs the other).
    let load_parcels = |working_crs: String| -> Result<_, PipelineError> {
        let t = std::time::Instant::now();
        let mut notes = Vec::new();
        let stated = cfg.parcels.crs.as_deref();
        let layer = read_layer_as(
            &parcels_path,
            cfg.parcels.layer.as_deref(),
            Some(&PARCELS_ROLE),
            stated,
            &working_crs,
        )?;
        let fields = ParcelFields {
            id: cfg.parcels.id_field.clone(),
            approved_use: cfg.parcels.use_field.clone(),
            uses: cfg.parcels.uses.clone(),
            basic_farmland: cfg.parcels.basic_farmland_field.clone(),
            eco_redline: cfg.parcels.eco_redline_field.clone(),
        };
        let mut parcels = parcels_from_layer(&layer, &fields, &mut notes)
            .map_err(|e| PipelineError::Inputs(e.to_string()))?;
        let mut controls = Vec::new();
        for c in &cfg.parcels.control {
            let what = format!("{} control layer", c.kind);
            let role = LayerRole {
                what: &what,
                names: &[c.kind.as_str()],
                naming: "layer in its [[parcels.control]] entry of the config",
            };
            let l = read_layer_as(
                &cfg.resolve(&c.path),
                c.layer.as_deref(),
                Some(&role),
                stated,
                &working_crs,
            )?;
            let zones = ControlZones::new(&c.kind, control_polygons(&l, &c.kind, &mut notes));
            note_control_off_parcels(&l, &zones, &parcels, &mut notes);
            apply_control_layer(&mut parcels, &zones);
            controls.push(zones);
        }
        let permits = match &cfg.parcels.permits {
            Some(p) => permits_from_layer(
                &read_layer_as(
                    &cfg.resolve(p),
                    cfg.parcels.permits_layer.as_deref(),
                    Some(&PERMITS_ROLE),
                    stated,
                    &working_crs,
                )?,
                &parcels,
                &mut notes,
            )
            .map_err(|e| PipelineError::Inputs(format!("permits: {e}")))?,
            None => Vec::new(),
        };
        let set = ParcelSet::new(parcels, permits).with_controls(controls);
        let label = format!("{} ({})", parcels_path.display(), layer.layer);
        Ok((working_crs, set, notes, t.elapsed().as_secs_f64(), label))
    };
    // Catalogue: both dates at once; cataloguing hashes every file (SHA-256), which is most of
    // its time, unless that waits (above).
    let (((before_entries, mut skipped), (after_entries, s2)), loaded) = rayon::join(
        || {
            rayon::join(
                || catalog_date(&cfg.before_paths(), cfg.band_override(false), defer_hashes),
                || catalog_date(&cfg.after_paths(), cfg.band_override(true), defer_hashes),
            )
        },
        || (!choose_crs).then(|| load_parcels(parcels_crs.clone())),
    );
    let loaded = match loaded {
        Some(l) => l,
        None => {
            let usable = before_entries
                .iter()
                .chain(&after_entries)
                .filter(|e| e.is_usable())
                .filter_map(|e| e.info.as_ref());
            let crs = crate::ingest::plan::working_crs_for(&parcels_crs, usable);
            if crs != parcels_crs {
                tracing::info!(
                    "the parcels are in a geographic CRS ({}); working in the imagery's {} so \
                     that areas are measured in metres and the imagery is read as it is ([grid] \
                     crs chooses another)",
                    crate::ingest::srs::short(&parcels_crs),
                    crate::ingest::srs::short(&crs)
                );
            }
            load_parcels(crs)
        }
    };
    skipped.extend(s2);
    let (before_found, after_found) = (!before_entries.is_empty(), !after_entries.is_empty());
    let after_entries =
        super::drop_files_of_both_dates(&before_entries, after_entries, &mut skipped);
    for s in &skipped {
        tracing::warn!("skipped {}", s.message);
    }
    let mut before_obs = group_observations(&before_entries);
    skipped.extend(one_before(&mut before_obs));
    let after_obs = group_observations(&after_entries);
    // No usable imagery of a date: every file was skipped (the reasons are above), or there was
    // no raster at all where the configuration points.
    let none_usable = |date: &str, found: bool, paths: Vec<PathBuf>| {
        let msg = if !found {
            format!(
                "no {date} imagery: no raster file under {} (an empty directory, or only files \
                 GDAL does not read as rasters); check the {date} paths in [imagery] or on the \
                 command line",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("no usable {date} imagery (every file was skipped; see above)")
        };
        PipelineError::Inputs(msg)
    };
    let Some(before) = before_obs.first_mut() else {
        return Err(none_usable("before", before_found, cfg.before_paths()));
    };
    let mut after_obs = super::in_time_order(
        before,
        after_obs,
        chrono::Local::now().naive_local(),
        &mut skipped,
    );
    if after_obs.is_empty() {
        return Err(none_usable("after", after_found, cfg.after_paths()));
    }
    let before = &before_obs[0];
    // Bands the detector cannot use: the before imagery's fail the run (nothing to compare
    // with); an after observation's are skipped input, named with its files, and the run goes on
    // with the other observations.
    let files_of = |o: &Observation| o.files().join(", ");
    if let Err(e) = job
        .detector
        .check_bands(&before.sources.roles, &before.sources.roles)
    {
        return Err(PipelineError::Inputs(format!(
            "before observation '{}' ({}): {e}",
            before.name,
            files_of(before)
        )));
    }
    after_obs.retain(|o| {
        match job
            .detector
            .check_bands(&before.sources.roles, &o.sources.roles)
        {
            Ok(()) => true,
            Err(e) => {
                let message = format!("after observation '{}' ({}): {e}", o.name, files_of(o));
                tracing::warn!("skipped {message}");
                skipped.push(Skipped {
                    what: files_of(o),
                    kind: "bands".into(),
                    message,
                });
                false
            }
        }
    });
    if after_obs.is_empty() {
        return Err(PipelineError::Inputs(
            "no usable after imagery (every observation was skipped; see above)".into(),
        ));
    }
    skipped.extend(super::unused_bands(before, &after_obs));
    // Named on every run that uses them, one with nothing new to detect included: the files are
    // used undated as long as they are among the inputs.
    skipped.extend(undated_after(&after_obs));
    skipped.extend(undated_before(before));
    let hashing = if defer_hashes {
        hash_beside(std::iter::once(before).chain(&after_obs))
    } else {
        Vec::new()
    };
    // The catalogue's problems are reported before the parcels' (as when one came after the
    // other).
    let (working_crs, set, notes, parcels_seconds, layer_name) = loaded?;
    // A repaired or rejected feature of the parcels, permits or control layers is a fact about
    // the run: logged now, listed in the summary's `parcel_notes`; what was left out (a rejected
    // feature, an empty layer) is skipped input too, a repaired feature that was used is not.
    for n in &notes {
        tracing::warn!("{}: {} ({})", n.feature, n.message, n.kind);
        if n.skips_input() {
            skipped.push(Skipped {
                what: n.feature.clone(),
                kind: n.kind.clone(),
                message: format!("{}: {}", n.feature, n.message),
            });
        }
    }
    // Uses the rules cannot judge, named (each check says why).
    skipped.extend(uses_nothing_knows(job, &set, &layer_name));
    // The catalogue's time includes the parcels' wherever they overlapped; `parcels` is their
    // own time, measured in their thread.
    lap("catalogue", &mut stages);
    stages.insert("parcels".into(), parcels_seconds);

    // Grid and cells: where parcels and both dates are.
    let all: Vec<&CatalogEntry> = before_entries.iter().chain(&after_entries).collect();
    let grid = plan_grid(
        &GridRequest {
            crs: Some(working_crs.clone()),
            pixel_size: cfg.grid.pixel_size,
            pixel_size_m: job.detector.pixel_size_m(),
            cell_size: cfg.grid.cell_size,
            halo: cfg.grid.halo,
            origin: cfg.grid.origin.map(|o| (o[0], o[1])),
            parcels: None,
            parcels_layer: None,
            parcels_crs: None,
        },
        &all,
    )?;
    legacy_datum_warnings(&all, &grid.crs);
    let pixel_area = super::detect::pixel_area_m2(&grid);
    let m2_per_unit2 = pixel_area / grid.pixel_area().max(1e-300);
    let measure = super::detect::area_measure(&grid);
    let infos: Vec<&crate::ingest::RasterInfo> = std::iter::once(before)
        .chain(&after_obs)
        .flat_map(|o| o.sources.sources.iter().map(|s| &s.info))
        .collect();
    crate::ingest::size_block_cache(crate::ingest::scan_block_cache_bytes(
        &infos,
        &grid,
        after_obs.len(),
    ));
    let parcel_bounds = set.bounds();
    let before_b = observation_bounds(before, &grid)?;
    let after_b: Vec<Option<crate::grid::Bounds>> = after_obs
        .iter()
        .map(|o| observation_bounds(o, &grid))
        .collect::<Result<_, _>>()?;
    let candidates: Vec<Cell> = grid
        .cells()
        .into_iter()
        .filter(|c| {
            let cb = grid.window_bounds(&c.core);
            let on_parcels = parcel_bounds
                .as_ref()
                .is_some_and(|p| p.intersection(&cb).is_some());
            let on_before = before_b
                .as_ref()
                .is_some_and(|b| b.intersection(&cb).is_some());
            let on_after = after_b
                .iter()
                .flatten()
                .any(|a| a.intersection(&cb).is_some());
            on_parcels && on_before && on_after
        })
        .collect();
    // Imagery of another place than the parcels, or dates of two different places, leave
    // nothing to compare: said plainly (with the extents, to check against the files'
    // georeferencing) rather than reported as a run with nothing new.
    let extent = |b: &Option<crate::grid::Bounds>| match b {
        Some(b) => format!(
            "x {:.1}..{:.1}, y {:.1}..{:.1}",
            b.min_x, b.max_x, b.min_y, b.max_y
        ),
        None => "nothing".to_string(),
    };
    let overlaps = |a: &Option<crate::grid::Bounds>, b: &Option<crate::grid::Bounds>| matches!((a, b), (Some(a), Some(b)) if a.intersection(b).is_some());
    if candidates.is_empty() {
        let mut lines = vec![format!(
            "before imagery ({}): {}",
            before.name,
            extent(&before_b)
        )];
        for (o, b) in after_obs.iter().zip(&after_b) {
            lines.push(format!("after imagery '{}': {}", o.name, extent(b)));
        }
        lines.push(format!(
            "parcels ({}): {}",
            parcels_path.display(),
            extent(&parcel_bounds)
        ));
        return Err(PipelineError::Inputs(format!(
            "nothing to compare: no grid cell has before imagery, after imagery and parcels together \
             (extents in the working CRS {}: {}); check that the files are of the same place and \
             that their georeferencing is right (gdalinfo, ogrinfo -so)",
            crate::ingest::srs::short(&grid.crs),
            lines.join("; ")
        )));
    }
    // A new (after) file over the parcels that no cell compares — no before imagery there, or its
    // georeferencing is wrong — is named as skipped input: that part of the night's imagery was
    // not analysed. The run goes on with the rest. Before imagery is a reference mosaic that each
    // night's imagery covers only in part, and an after file outside the parcels' extent is not
    // needed: neither is a problem.
    let core_bounds: Vec<crate::grid::Bounds> = candidates
        .iter()
        .map(|c| grid.window_bounds(&c.core))
        .collect();
    for src in after_obs.iter().flat_map(|o| &o.sources.sources) {
        let b = Some(crate::ingest::plan::bounds_in_crs(
            &src.info, &src.path, &grid.crs,
        )?);
        if !overlaps(&b, &parcel_bounds) {
            tracing::info!(
                "{}: outside the parcels' extent, not needed ({})",
                src.path.display(),
                extent(&b)
            );
        } else if !overlaps(&b, &before_b) || !core_bounds.iter().any(|c| overlaps(&b, &Some(*c))) {
            skipped.push(Skipped {
                what: src.path.display().to_string(),
                kind: "no_overlap".into(),
                message: format!(
                    "{}: after imagery over parcels, but no before imagery reaches it ({}): \
                     nothing in it was compared; add before imagery of that area or check the \
                     files' georeferencing (gdalinfo)",
                    src.path.display(),
                    extent(&b)
                ),
            });
        }
    }
    // Content keys of each candidate cell, for incremental runs.
    let inputs_key = inputs_key(job, &parcels_path)?;
    let cell_keys_of = |before: &Observation,
                        after_obs: &[Observation],
                        cells: &[Cell]|
     -> Result<Vec<CellKey>, PipelineError> {
        // Each file by its content and by what the run takes it for: its date's role, its
        // acquisition time and sensor (a sidecar may change them, not the bytes) and the bands
        // read from it (a band override changes those).
        let mut source_bounds: Vec<(crate::grid::Bounds, String)> = Vec::new();
        let dates =
            std::iter::once(("before", before)).chain(after_obs.iter().map(|o| ("after", o)));
        for (date, o) in dates {
            let roles: Vec<&str> = o.sources.roles.iter().map(|r| r.name()).collect();
            for s in &o.sources.sources {
                let b = crate::ingest::plan::bounds_in_crs(&s.info, &s.path, &grid.crs)?;
                let what = format!(
                    "{}|{date}|{}|{}|{}",
                    s.info.sha256,
                    s.info
                        .acquired
                        .as_ref()
                        .map_or_else(String::new, |a| a.time.to_string()),
                    s.info
                        .sensor
                        .as_ref()
                        .map_or_else(String::new, |x| format!("{:?}", x.kind)),
                    roles.join(",")
                );
                source_bounds.push((b, what));
            }
        }
        Ok(cells
            .iter()
            .map(|c| {
                let cb = grid.window_bounds(&c.read);
                let mut shas: Vec<&str> = source_bounds
                    .iter()
                    .filter(|(b, _)| b.intersection(&cb).is_some())
                    .map(|(_, s)| s.as_str())
                    .collect();
                shas.sort_unstable();
                shas.dedup();
                CellKey {
                    cell_id: c.id.clone(),
                    after_key: hex::encode(Sha256::digest(shas.join(",").as_bytes())),
                    inputs_key: inputs_key.clone(),
                }
            })
            .collect())
    };
    // Made after detection when the hashes are (`defer_hashes`: then every candidate is a cell).
    let cell_keys = if defer_hashes {
        Vec::new()
    } else {
        cell_keys_of(before, &after_obs, &candidates)?
    };
    let (cells, cell_keys, unchanged_cells) = match &job.select_cells {
        Some(select) if !defer_hashes => {
            let chosen = select(&grid.fingerprint(), &cell_keys);
            let (chosen, unchanged): (Vec<_>, Vec<_>) = candidates
                .into_iter()
                .zip(cell_keys)
                .partition(|(c, _)| chosen.contains(&c.id));
            let (cells, keys): (Vec<Cell>, Vec<CellKey>) = chosen.into_iter().unzip();
            (cells, keys, unchanged.into_iter().map(|(c, _)| c).collect())
        }
        _ => (candidates, cell_keys, Vec::new()),
    };
    let cells_unchanged = unchanged_cells.len();
    super::crash_point("catalogue");
    if job.select_cells.is_some() && cells.is_empty() {
        // An incremental run with nothing new: touch no output.
        if defer_hashes {
            fill_hashes(hashing, &mut before_obs, &mut after_obs)?;
        }
        let before = &before_obs[0];
        return Ok(ScanResult {
            report: ScanReport {
                version: crate::VERSION.to_string(),
                detector: job.detector.name(),
                detector_info: job.detector.describe(),
                working_crs: working_crs.clone(),
                grid: grid.clone(),
                before_date: date_span(before),
                observations: Vec::new(),
                cells_scanned: 0,
                cells_unchanged,
                cells_detected: 0,
                cells_from_cache: 0,
                cases: Vec::new(),
                cases_disappeared: 0,
                cases_reopened: 0,
                cases_not_judged: 0,
                parcels: set.parcels.len(),
                permits: set.permits.len(),
                findings: 0,
                findings_by_kind: BTreeMap::new(),
                coverage: BTreeMap::new(),
                unobserved_protected_m2: 0.0,
                skipped,
                parcel_notes: notes,
                outputs: Vec::new(),
                seconds: started.elapsed().as_secs_f64(),
                stage_seconds: stages,
                packets: None,
            },
            findings: Vec::new(),
            unflagged: Vec::new(),
            coverage: Vec::new(),
            context: ScanContext {
                grid,
                before: before.clone(),
                after: after_obs,
                parcels: set,
                score_files: Vec::new(),
                m2_per_unit2,
            },
            cell_keys,
            watched: Vec::new(),
        });
    }
    let protected: Vec<usize> = (0..set.parcels.len())
        .filter(|&i| set.parcels[i].basic_farmland || set.parcels[i].eco_redline)
        .collect();
    let is_protected: Vec<bool> = (0..set.parcels.len())
        .map(|i| set.parcels[i].basic_farmland || set.parcels[i].eco_redline)
        .collect();
    ensure_dir(&job.out)?;
    // This run's score rasters and outputs are written into a staging directory and replace the
    // last run's together at the end (removed if the run stops before).
    let staging = Staging::new(&job.out)?;
    // The change score of each after observation, for analysts and for the evidence chips.
    let block = super::detect::block_size_for(grid.cell_size);
    let mut score_spec = GeoTiffSpec::new(&grid.crs, grid.geo_transform(), grid.width, grid.height);
    score_spec.block_size = block;
    score_spec.nodata = Some(f64::NAN);
    // ZSTD at level 1 without a predictor: lossless, 8 % larger than with libtiff's
    // floating-point predictor, which cost three times as much CPU as the compression itself
    // (~1 s of a 5000² scan); DEFLATE was slower still (3.4 s of a 5000² scan).
    score_spec.compress = "ZSTD".into();
    score_spec.level = Some(1);
    score_spec.band_descriptions = vec![job.detector.score_description()];
    score_spec.metadata = vec![("LANDWATCH_VERSION".into(), crate::VERSION.into())];
    let score_files: Vec<PathBuf> = after_obs
        .iter()
        .map(|o| job.out.join(format!("change_score_{}.tif", o.name)))
        .collect();
    let mut score_writers = score_files
        .iter()
        .map(|p| GeoTiffWriter::create::<f32>(&staging.path_of(p), &score_spec, 1))
        .collect::<Result<Vec<_>, _>>()?;

    // Detection over the cells in parallel, a bounded number in flight (memory stays bounded).
    let bar = match job.progress {
        Progress::Bar => {
            let b = indicatif::ProgressBar::new(cells.len() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} scanning [{bar:40}] {pos}/{len} cells, {elapsed} ({eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Some(b)
        }
        Progress::Log => None,
    };
    // Cells in flight: four per worker (cells differ in cost: edge cells are mostly no data,
    // cloudy ones skip work).
    let in_flight = (rayon::current_num_threads() * 4).max(1);
    let mut per_obs_pieces: Vec<Vec<RegionPiece>> = vec![Vec::new(); after_obs.len()];
    let mut per_obs_strips: Vec<HashMap<(usize, usize), EdgeStrips>> =
        vec![HashMap::new(); after_obs.len()];
    let mut per_obs_stats: Vec<Vec<(String, CellStats)>> = vec![Vec::new(); after_obs.len()];
    // Per observation: whether a cell it covered had no valid pixel of it.
    let mut per_obs_blank: Vec<bool> = vec![false; after_obs.len()];
    let mut per_obs_seen: Vec<HashMap<usize, [u64; 2]>> = vec![HashMap::new(); after_obs.len()];
    // Each parcel shrunk by the edge band (two pixels): what is left is its interior.
    let edge = 2.0 * grid.pixel_width;
    let insets: Vec<MultiPolygon<f64>> = set
        .parcels
        .par_iter()
        .map(|p| {
            if ["farmland", "garden"].contains(&p.approved_use.as_str()) {
                geo::Buffer::buffer(&p.polygon, -edge)
            } else {
                p.polygon.clone()
            }
        })
        .collect();
    let mut coverage_px: HashMap<usize, [u64; 4]> = HashMap::new();
    let watch = WatchIndex::new(&job.watch);
    let mut watched_px: BTreeMap<usize, WatchedSight> = BTreeMap::new();
    let mut cache = match &job.detect_cache {
        Some(options) => {
            let keys = if defer_hashes {
                None
            } else {
                Some(KeyContext::new(
                    cfg,
                    job.detector.as_ref(),
                    &grid,
                    before,
                    &after_obs,
                )?)
            };
            let c = DetectCache::new(options.clone(), keys).with_score_rasters(score_files.clone());
            let pruned = c.prune_other_grids(&grid.fingerprint());
            if pruned > 0 {
                tracing::info!(
                    "detection cache: removed {pruned} entries of other grids from {}",
                    options.dir.display()
                );
            }
            Some(c)
        }
        None => None,
    };
    // The last run's score rasters (this run's are written under temporary names and replace
    // them at the end): they hold the change scores of the cache's entries (an entry keeps only
    // their digest), read under a lock each for the cells found in the cache, and those of the
    // cells this run leaves unchanged, carried over into this run's rasters.
    let last_scores: Vec<Option<std::sync::Mutex<SingleBandReader>>> =
        if cache.as_ref().is_some_and(DetectCache::looks_up) || !unchanged_cells.is_empty() {
            score_files
                .iter()
                .map(|p| open_last_scores(p, unchanged_cells.len()))
                .collect()
        } else {
            Vec::new()
        };
    let (mut cells_detected, mut cells_from_cache) = (0, 0);
    // Persistent workers, sharing one reader per date (see `readers`), take cells in grid order;
    // this thread writes and gathers their results in the same order while they go on. A worker
    // starts a cell only within `in_flight` cells of the last one gathered, so memory stays bounded
    // by the cells in flight however uneven their cost.
    let workers = rayon::current_num_threads().max(1);
    // A worker claims runs of consecutive cells: neighbours in a row of the grid share the source
    // blocks along their common edge (the halo), read back to back while those are cached.
    const RUN: usize = 3;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let gathered = (std::sync::Mutex::new(0usize), std::sync::Condvar::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    // The first unexpected failure (a panic) of a worker outside detection, which stops the run.
    let failure: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, CellScan)>(in_flight);
    let mut gather =
        |rx: std::sync::mpsc::Receiver<(usize, CellScan)>| -> Result<(), PipelineError> {
            let mut pending: BTreeMap<usize, CellScan> = BTreeMap::new();
            let mut done = 0usize;
            while done < cells.len() {
                let Ok((i, s)) = rx.recv() else { break };
                pending.insert(i, s);
                while let Some(s) = pending.remove(&done) {
                    match s.source {
                        Source::Detected => cells_detected += 1,
                        Source::Cache => cells_from_cache += 1,
                        Source::Nothing => {}
                    }
                    for e in &s.errors {
                        tracing::warn!("skipped {}", e.message);
                    }
                    skipped.extend(s.errors);
                    for (pi, c) in s.coverage {
                        let e = coverage_px.entry(pi).or_default();
                        for k in 0..4 {
                            e[k] += c[k];
                        }
                    }
                    for (wi, c) in s.watched {
                        watched_px.entry(wi).or_default().add(&c);
                    }
                    for (oi, o) in s.per_obs.into_iter().enumerate() {
                        if let Some(score) = &o.score {
                            let c = &s.cell.core;
                            score_writers[oi].write_window(
                                c.x as usize,
                                c.y as usize,
                                c.width,
                                c.height,
                                &[score],
                            )?;
                            // Blocks divide cells, so this cell's blocks are complete: compressed
                            // and written now, alongside detection, not all at the end.
                            score_writers[oi].flush()?;
                        }
                        per_obs_pieces[oi].extend(o.pieces);
                        per_obs_strips[oi].insert((s.cell.row, s.cell.col), o.strips);
                        for (pi, n) in o.observed {
                            let e = per_obs_seen[oi].entry(pi).or_default();
                            e[0] += n[0];
                            e[1] += n[1];
                        }
                        if let Some(st) = o.stats {
                            per_obs_stats[oi].push((s.cell.id.clone(), st));
                        }
                        per_obs_blank[oi] |= o.no_valid_pixels;
                    }
                    done += 1;
                    {
                        let (lock, cv) = &gathered;
                        *lock.lock().unwrap_or_else(|p| p.into_inner()) = done;
                        cv.notify_all();
                    }
                    if done % in_flight == 0 || done == cells.len() {
                        super::crash_point("detect");
                        match &bar {
                            Some(b) => b.set_position(done as u64),
                            None => tracing::info!("scan: {done} of {} cells", cells.len()),
                        }
                    }
                }
            }
            if done < cells.len() {
                return Err(PipelineError::Inputs(format!(
                    "scan workers stopped after {done} of {} cells",
                    cells.len()
                )));
            }
            Ok(())
        };
    // One reader per date, shared by the workers: GDAL's block cache of a handle then serves
    // every block the cells share (halos, runs of cells) to whichever worker asks next, so each
    // source block is decoded once. Reads take the date's lock; detection runs outside it.
    let readers = Readers {
        before: std::sync::Mutex::new(CellReader::new(&grid, &before.sources)),
        after: after_obs
            .iter()
            .map(|o| std::sync::Mutex::new(CellReader::new(&grid, &o.sources)))
            .collect(),
    };
    let gathered_result = std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, gathered, stop, failure) = (&next, &gathered, &stop, &failure);
            let (grid, after_b, set) = (&grid, &after_b, &set);
            let (is_protected, insets, cache) = (&is_protected, &insets, cache.as_ref());
            let (last_scores, watch) = (&last_scores, &watch);
            let detector = job.detector.as_ref();
            let readers = &readers;
            let n = cells.len();
            let cells = &cells;
            // How many cells a claim starting at `first` takes: runs while there are plenty of
            // cells left; single cells at the end, so that no worker is left idle while another
            // finishes a whole run.
            let take_at = move |first: usize| {
                if n.saturating_sub(first) > RUN * workers {
                    RUN
                } else {
                    1
                }
            };
            scope.spawn(move || 'claims: loop {
                let claim = next.fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |first| (first < n).then(|| first + take_at(first)),
                );
                let Ok(first) = claim else {
                    break;
                };
                let take = take_at(first);
                for (i, cell) in cells.iter().enumerate().skip(first).take(take) {
                    {
                        let (lock, cv) = gathered;
                        let mut g = lock.lock().unwrap_or_else(|p| p.into_inner());
                        while i >= *g + in_flight
                            && !stop.load(std::sync::atomic::Ordering::Relaxed)
                        {
                            g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
                        }
                    }
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break 'claims;
                    }
                    let s = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        scan_cell(
                            cell,
                            grid,
                            readers,
                            after_b,
                            detector,
                            pixel_area,
                            set,
                            is_protected,
                            insets,
                            cache,
                            last_scores,
                            watch,
                        )
                    }));
                    let s = match s {
                        Ok(s) => s,
                        Err(panic) => {
                            // A bug outside detection: the run stops with it (the cell's result,
                            // coverage included, is unknown), and the workers waiting for this
                            // cell's turn are woken to stop too, instead of waiting for ever.
                            let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                            f.get_or_insert_with(|| {
                                format!("cell {}: {}", cell.id, panic_message(&*panic))
                            });
                            stop.store(true, std::sync::atomic::Ordering::Relaxed);
                            gathered.1.notify_all();
                            break 'claims;
                        }
                    };
                    if tx.send((i, s)).is_err() {
                        break 'claims;
                    }
                }
            });
        }
        drop(tx);
        let r = gather(rx);
        // On an error the workers stop at their next cell (the receiver is gone).
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        gathered.1.notify_all();
        r
    });
    if let Some(f) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(PipelineError::Inputs(format!(
            "{f}: the scan failed unexpectedly and stopped; the outputs and the store of earlier \
             runs are left as they were. This is a bug in landwatch: please report it with this \
             message"
        )));
    }
    gathered_result?;
    // The unchanged cells' scores, as the last run left them (their imagery is the same).
    for ((last, path), writer) in last_scores
        .into_iter()
        .zip(&score_files)
        .zip(&mut score_writers)
    {
        if let Some(last) = last {
            let last = last.into_inner().unwrap_or_else(|e| e.into_inner());
            carry_over_scores(&last, path, &unchanged_cells, writer)?;
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    drop(readers);
    // The content hashes computed beside detection, into the observations before the score
    // rasters replace the last run's: a file that can no longer be read fails the run, named,
    // with every output of the last run as it was. (`content_hashes` is the time waited here.)
    let hashes_waited = if defer_hashes {
        let t = std::time::Instant::now();
        fill_hashes(hashing, &mut before_obs, &mut after_obs)?;
        Some(t.elapsed().as_secs_f64())
    } else {
        None
    };
    for w in score_writers {
        w.finish()?;
    }
    lap("detect", &mut stages);
    // Then the cells' keys and the cache entries' keys.
    let mut cell_keys = cell_keys;
    if let Some(waited) = hashes_waited {
        stages.insert("content_hashes".into(), waited);
        let before = &before_obs[0];
        cell_keys = cell_keys_of(before, &after_obs, &cells)?;
        if let Some(c) = &mut cache {
            let keys = KeyContext::new(cfg, job.detector.as_ref(), &grid, before, &after_obs)?;
            c.seal(keys, &grid);
        }
    }
    // A cell that could not be read or detected is not done: the store does not mark it (the
    // next run tries it again) and does not judge its cases seen or disappeared.
    // Nor is a cell of an after observation without a valid pixel in any cell it covers (named
    // below, `no_valid_pixels`): nothing of it was seen, and a run with nothing new would no
    // longer name it; the next run processes the cell again (from the detection cache) and says
    // so again, until the file is replaced or left out.
    let blank: Vec<&Option<crate::grid::Bounds>> = (0..after_obs.len())
        .filter(|&oi| per_obs_stats[oi].is_empty() && per_obs_blank[oi])
        .map(|oi| &after_b[oi])
        .collect();
    let failed: std::collections::HashSet<&str> = skipped
        .iter()
        .filter(|s| s.is_failed_cell())
        .map(|s| s.what.as_str())
        .chain(
            cells
                .iter()
                .filter(|c| {
                    let cb = Some(grid.window_bounds(&c.core));
                    blank.iter().any(|b| overlaps(b, &cb))
                })
                .map(|c| c.id.as_str()),
        )
        .collect();
    cell_keys.retain(|k| !failed.contains(k.cell_id.as_str()));
    let before = &before_obs[0];
    if let Some(c) = &cache {
        let failed = c.write_failures();
        if failed > 0 {
            tracing::warn!("detection cache: {failed} entries could not be written; those cells are detected again next time");
        }
    }
    tracing::info!(
        "scan: {} cells, {cells_detected} detected, {cells_from_cache} from the detection cache",
        cells.len()
    );

    // Regions per observation, then overlay and rules.
    let before_date = latest(before);
    // Each finding is dated by the imagery under it (files of one observation may be of
    // several days): permits are judged on its after date.
    let before_footprints = super::dated_footprints(before, &grid.crs);
    let mut findings: Vec<Finding> = Vec::new();
    let mut unflagged: Vec<Unflagged> = Vec::new();
    let mut obs_reports = Vec::new();
    let mut region_features = Vec::new();
    let to_wgs =
        ToWgs84::new(&grid.crs).map_err(|e| PipelineError::Inputs(format!("working CRS: {e}")))?;
    // Both dates have near infrared: the covers tell water from land, and a harvest from bare
    // or built ground, by it.
    let nir_of = |obs: &Observation| {
        [&before.sources.roles, &obs.sources.roles]
            .iter()
            .all(|r| r.contains(&crate::bands::BandRole::Nir))
    };
    // What observations with near infrared read as a vegetation cycle, kept only when another
    // observation has none (its findings are checked against it below).
    let mut cycle_readings: Vec<CycleReading> = Vec::new();
    let without_nir: Vec<&str> = after_obs
        .iter()
        .filter(|o| !nir_of(o))
        .map(|o| o.name.as_str())
        .collect();
    let keep_cycles = !without_nir.is_empty();
    for (oi, obs) in after_obs.iter().enumerate() {
        let merged = merge_pieces(
            std::mem::take(&mut per_obs_pieces[oi]),
            &per_obs_strips[oi],
            grid.pixel_area(),
        );
        let after_dt = latest(obs);
        let after_day = after_dt
            .map(|d| d.date())
            .unwrap_or_else(|| chrono::Local::now().date_naive());
        let after_footprints = super::dated_footprints(obs, &grid.crs);
        // An observation that covered cells, yet had a valid pixel in none of them (all nodata
        // or masked): its coverage shows parcels unobserved; the reason is named here.
        if per_obs_stats[oi].is_empty() && per_obs_blank[oi] {
            let message = format!(
                "after observation '{}' has no valid pixel in the cells it covers (all nodata \
                 or masked there): nothing was compared; check its nodata value and masks \
                 (gdalinfo -stats), and that the file holds image data at all",
                obs.name
            );
            tracing::warn!("{message}");
            skipped.push(Skipped {
                what: obs.name.clone(),
                kind: "no_valid_pixels".into(),
                message,
            });
        }
        let thresholds: Vec<f32> = per_obs_stats[oi].iter().map(|(_, s)| s.threshold).collect();
        let thr = median_f32(thresholds);
        obs_reports.push(ObservationReport {
            name: obs.name.clone(),
            sources: obs.files(),
            after_date: date_span(obs),
            regions: merged.len(),
            land_use_regions: merged
                .iter()
                .filter(|m| m.stats.transition.is_land_use_change())
                .count(),
            shifted_cells: per_obs_stats[oi]
                .iter()
                .filter(|(_, s)| s.shift_applied)
                .count(),
        });
        let loss = field_losses(
            &merged,
            &set,
            &insets,
            edge,
            &per_obs_seen[oi],
            grid.pixel_area(),
        );
        // Pieces of land-use change per (parcel, transition): a change read as several nearby
        // regions in one field (a pit and its spoil heap, a roof split by a shadow) is judged as one.
        // A loss of vegetation the detector read as a vegetation cycle (a harvest, judged by how
        // much of the field it covers) is judged apart from bare ground it read as such: a pit
        // dug in a harvested field is not part of the harvest.
        let mut groups: BTreeMap<(usize, Transition, bool), Vec<ParcelShare>> = BTreeMap::new();
        let mut confidences = Vec::with_capacity(merged.len());
        // The parcels each land-use change region overlaps, with the overlap: the costly part,
        // computed for all regions in parallel, then taken in region order.
        let mut overlaps = parcel_overlaps(&merged, &set, |t| t.is_land_use_change());
        let with_nir = nir_of(obs);
        if with_nir && keep_cycles {
            cycle_readings.push(CycleReading {
                observation: obs.name.clone(),
                day: after_day,
                regions: merged
                    .iter()
                    .filter(|m| m.stats.transition == Transition::VegetationCycle)
                    .filter_map(|m| {
                        Some((
                            geo::BoundingRect::bounding_rect(&m.polygon)?,
                            m.polygon.clone(),
                        ))
                    })
                    .collect(),
            });
        }
        for (ri, m) in merged.iter().enumerate() {
            let t = effective_transition(m);
            let min_px = job.config.detect.min_area(t) / pixel_area;
            let confidence = m.stats.confidence(thr, min_px);
            confidences.push(confidence);
            let region_area_m2 = measure.m2(&m.polygon);
            if let Ok(g) = to_wgs.multi_polygon(&m.polygon) {
                let mut props = Map::new();
                props.insert("observation".into(), json!(obs.name));
                props.insert("region_id".into(), json!(ri + 1));
                props.insert("transition".into(), json!(t.name()));
                props.insert(
                    "detected_transition".into(),
                    json!(m.stats.transition.name()),
                );
                props.insert("land_use_change".into(), json!(t.is_land_use_change()));
                props.insert("area_m2".into(), json!(round2(region_area_m2)));
                props.insert("confidence".into(), json!(confidence));
                region_features.push(geojson::feature(
                    Some(&geo::Geometry::MultiPolygon(g)),
                    props,
                ));
            }
            if !t.is_land_use_change() {
                continue;
            }
            for (pi, inside) in std::mem::take(&mut overlaps[ri]) {
                let cycle = m.stats.transition == Transition::VegetationCycle;
                let t = on_registered_water(t, m, &set.parcels[pi].approved_use, with_nir);
                groups.entry((pi, t, cycle)).or_default().push((ri, inside));
            }
        }
        // Each group judged on its own, in parallel; findings kept in the groups' order.
        let groups: Vec<((usize, Transition, bool), Vec<ParcelShare>)> =
            groups.into_iter().collect();
        let judged: Vec<Option<Result<Finding, Unflagged>>> = groups
            .into_par_iter()
            .map(|((pi, t, _), parts)| {
            let parcel = &set.parcels[pi];
            let mut union = MultiPolygon::new(vec![]);
            let (mut region_area_m2, mut conf_area, mut weight) = (0.0, 0.0, 0.0);
            let mut cells: Vec<String> = Vec::new();
            let mut region_polygon = MultiPolygon::new(vec![]);
            let mut detected: Vec<&str> = Vec::new();
            for (ri, part) in &parts {
                union = union.union(part);
                let m = &merged[*ri];
                let a = measure.m2(&m.polygon);
                region_area_m2 += a;
                conf_area += confidences[*ri] * a;
                weight += a;
                region_polygon = region_polygon.union(&m.polygon);
                for c in &m.cells {
                    if !cells.contains(c) {
                        cells.push(c.clone());
                    }
                }
                if !detected.contains(&m.stats.transition.name()) {
                    detected.push(m.stats.transition.name());
                }
            }
            let confidence = if weight > 0.0 {
                (conf_area / weight * 1000.0).round() / 1000.0
            } else {
                0.0
            };
            // The imagery under the change: its own dates where its files differ in date.
            let area = super::bounds_of(&union);
            let dated = |fp: &[(crate::grid::Bounds, NaiveDateTime)], all: Option<NaiveDateTime>| {
                area.as_ref()
                    .and_then(|a| super::acquired_over(fp, a))
                    .or(all)
            };
            let (before_here, after_here) = (
                dated(&before_footprints, before_date),
                dated(&after_footprints, after_dt),
            );
            let after_day = after_here.map_or(after_day, |d| d.date());
            let piece = pieces(
                &union,
                t,
                &set,
                after_day,
                &job.rules.settings.permitted_uses,
                measure,
            )
            .into_iter()
            .find(|p| p.parcel == pi)?;
            let mut field = loss.get(&pi).copied().unwrap_or_default();
            if t == Transition::VegetationToBare {
                field.piece_edge_contact = Some(edge_share(&piece.polygon, parcel, &insets[pi]));
            }
            let mut j = judge(&job.rules, &piece, parcel, t, region_area_m2, field);
            if let Some(o) = j.trace.as_object_mut() {
                o.insert(
                    "regions".into(),
                    json!(parts.iter().map(|(ri, _)| ri + 1).collect::<Vec<_>>()),
                );
                if detected != [t.name()] {
                    o.insert("detected_transition".into(), json!(detected));
                    o.insert(
                        "judged_as".into(),
                        json!(format!("{}: where there was vegetation the after cover reads as dry vegetation or bare ground", t.name())),
                    );
                }
            }
            let Some(rule) = j.rule else {
                return Some(Err(Unflagged {
                    parcel_id: parcel.id.clone(),
                    area_m2: piece.area_m2,
                    polygon: piece.polygon,
                    why: j.why_not.unwrap_or_default(),
                }));
            };
            let polygon = if j.suspected_is_remainder {
                piece.unexplained.clone()
            } else {
                piece.polygon.clone()
            };
            Some(Ok(make_finding(
                parcel,
                crate::rules::control_layers(parcel, &piece),
                &rule,
                t,
                j.suspected_m2,
                region_area_m2,
                piece.parcel_fraction,
                confidence,
                obs,
                before_here,
                after_here,
                piece
                    .permits
                    .iter()
                    .map(|(_, c)| c.permit_id.clone())
                    .collect(),
                cells,
                region_polygon,
                j.trace,
                polygon,
            )))
            })
            .collect();
        for j in judged.into_iter().flatten() {
            match j {
                Ok(f) => findings.push(f),
                Err(u) => unflagged.push(u),
            }
        }
    }
    // A loss of vegetation seen without near infrared where near infrared reads a harvest.
    let findings = if cycle_readings.is_empty() {
        findings
    } else {
        let mut kept = Vec::with_capacity(findings.len());
        let mut explained = 0usize;
        for f in findings {
            let why = without_nir
                .contains(&f.observation.as_str())
                .then(|| harvest_read_in_near_infrared(&f, &cycle_readings))
                .flatten();
            match why {
                Some(why) => {
                    explained += 1;
                    unflagged.push(Unflagged {
                        parcel_id: f.parcel_id,
                        area_m2: f.area_m2,
                        polygon: f.polygon,
                        why,
                    });
                }
                None => kept.push(f),
            }
        }
        if explained > 0 {
            tracing::info!(
                "{explained} change(s) seen without near infrared not flagged: imagery with near \
                 infrared of the same days reads their ground as a harvest or ripening crop"
            );
        }
        kept
    };
    let findings = dedupe(findings, &after_obs);
    lap("overlay_rules", &mut stages);

    // Coverage of protected parcels.
    let mut findings_per_parcel: HashMap<&str, usize> = HashMap::new();
    for f in &findings {
        *findings_per_parcel.entry(f.parcel_id.as_str()).or_default() += 1;
    }
    // The part of each protected parcel in cells this run leaves unchanged: not looked at now
    // (its coverage is the one of the run that last processed those cells), so neither observed
    // nor unobserved tonight.
    let unchanged_area = unchanged_protected_area(&grid, &set, &is_protected, &unchanged_cells);
    let mut coverage = Vec::with_capacity(protected.len());
    let mut unobserved_protected_m2 = 0.0;
    for &pi in &protected {
        let p = &set.parcels[pi];
        // Pixels counted in the CRS's own units: a geographic grid's pixels differ in m² by latitude.
        let area_here = p.area - unchanged_area.get(&pi).copied().unwrap_or(0.0);
        if unchanged_area.contains_key(&pi) && area_here < 0.5 * grid.pixel_area() {
            // Wholly in unchanged cells.
            continue;
        }
        let total_px = (area_here / grid.pixel_area().max(1e-300)).max(1.0);
        let c = coverage_px.get(&pi).copied().unwrap_or([0; 4]);
        let frac = |v: u64| (v as f64 / total_px).min(1.0);
        let observed = frac(c[0]);
        let (cloud, shadow) = (frac(c[2]), frac(c[3]));
        let no_data = (1.0 - observed - cloud - shadow).max(0.0);
        let n = findings_per_parcel.get(p.id.as_str()).copied().unwrap_or(0);
        let status = if n > 0 {
            "observed_with_findings"
        } else if observed >= 0.95 {
            "observed_clean"
        } else if observed >= 0.05 {
            "partly_unobserved"
        } else {
            "unobserved"
        };
        let share_here = (area_here / p.area.max(1e-300)).min(1.0);
        unobserved_protected_m2 += (1.0 - observed) * share_here * measure.m2(&p.polygon);
        coverage.push(Coverage {
            parcel_id: p.id.clone(),
            approved_use: p.approved_use.clone(),
            control_layers: p.control_layers(),
            status: status.to_string(),
            observed_fraction: round3(observed),
            cloud_fraction: round3(cloud),
            shadow_fraction: round3(shadow),
            no_data_fraction: round3(no_data),
            findings: n,
            polygon: p.polygon.clone(),
        });
    }
    lap("coverage", &mut stages);

    // Outputs.
    let outputs = write_outputs(
        &job.out,
        &staging.dir,
        &grid,
        &findings,
        &coverage,
        region_features,
    )?;
    lap("write", &mut stages);
    let mut by_kind = BTreeMap::new();
    for f in &findings {
        *by_kind.entry(f.kind.clone()).or_default() += 1;
    }
    let mut cov = BTreeMap::new();
    for c in &coverage {
        *cov.entry(c.status.clone()).or_default() += 1;
    }
    let report = ScanReport {
        version: crate::VERSION.to_string(),
        detector: job.detector.name(),
        detector_info: job.detector.describe(),
        working_crs: working_crs.clone(),
        grid: grid.clone(),
        before_date: date_span(before),
        observations: obs_reports,
        cells_scanned: cells.len(),
        cells_unchanged,
        cells_detected,
        cells_from_cache,
        cases: Vec::new(),
        cases_disappeared: 0,
        cases_reopened: 0,
        cases_not_judged: 0,
        parcels: set.parcels.len(),
        permits: set.permits.len(),
        findings: findings.len(),
        findings_by_kind: by_kind,
        coverage: cov,
        unobserved_protected_m2: round2(unobserved_protected_m2),
        skipped,
        parcel_notes: notes,
        outputs,
        seconds: started.elapsed().as_secs_f64(),
        stage_seconds: stages,
        packets: None,
    };
    let text =
        serde_json::to_string_pretty(&report).map_err(|e| PipelineError::Inputs(e.to_string()))?;
    crate::export::write_atomic(&staging.dir.join("summary.json"), text.as_bytes())?;
    staging.commit(&job.out)?;
    let after_footprints: Vec<_> = after_obs
        .iter()
        .flat_map(|o| super::dated_footprints(o, &grid.crs))
        .collect();
    Ok(ScanResult {
        report,
        findings,
        unflagged,
        coverage,
        context: ScanContext {
            grid,
            before: before.clone(),
            after: after_obs,
            parcels: set,
            score_files,
            m2_per_unit2,
        },
        cell_keys,
        watched: watched_px
            .into_iter()
            .filter_map(|(i, s)| {
                Some(AreaSight {
                    id: job.watch[i].id.clone(),
                    observed_fraction: s.fraction()?,
                    acquired: super::bounds_of(&job.watch[i].area)
                        .and_then(|b| super::acquired_over(&after_footprints, &b)),
                })
            })
            .collect(),
    })
}

/// Per protected parcel meeting a cell this run leaves unchanged (an incremental run), the area of
/// its part in those cells' cores, in the grid CRS's units.
fn unchanged_protected_area(
    grid: &GridDef,
    set: &ParcelSet,
    is_protected: &[bool],
    unchanged: &[Cell],
) -> HashMap<usize, f64> {
    let mut out: HashMap<usize, f64> = HashMap::new();
    for cell in unchanged {
        let b = grid.window_bounds(&cell.core);
        let rect = geo::Rect::new((b.min_x, b.min_y), (b.max_x, b.max_y));
        let core = MultiPolygon::new(vec![rect.to_polygon()]);
        for pi in set.parcels_near(&rect) {
            if !is_protected[pi] {
                continue;
            }
            let p = &set.parcels[pi];
            let inside = match geo::BoundingRect::bounding_rect(&p.polygon) {
                Some(r)
                    if r.min().x >= b.min_x
                        && r.max().x <= b.max_x
                        && r.min().y >= b.min_y
                        && r.max().y <= b.max_y =>
                {
                    p.area
                }
                _ => p.polygon.intersection(&core).unsigned_area(),
            };
            *out.entry(pi).or_default() += inside;
        }
    }
    out
}

/// The approved uses and permitted uses the rules cannot judge: parcels whose use is neither a
/// land-use class nor named by a rule (`unknown_use`), permits whose permitted use the rules do
/// not name (`unknown_permitted_use`), each named with what to do; and a warning for each rule
/// naming a use that is no class and that no parcel has (it cannot fire).
fn uses_nothing_knows(job: &ScanJob, set: &ParcelSet, layer_name: &str) -> Vec<Skipped> {
    let mut out = Vec::new();
    // Parcels whose approved use neither a land-use class nor a rule names: the rules for given
    // uses cannot fire on them (a layer's use codes read as is would otherwise check less,
    // quietly). Named, with what to do; the rules for any use still apply to them.
    let rule_uses: std::collections::BTreeSet<&str> = job
        .rules
        .rules
        .iter()
        .flat_map(|r| r.approved_use.iter().map(String::as_str))
        .collect();
    // A rule naming a use that is no class and that no parcel has cannot fire (a misspelt
    // `farmlnd`): said, since the rule would otherwise be quietly idle.
    for r in &job.rules.rules {
        for u in &r.approved_use {
            let class = crate::land_use::is_class(u);
            if !class && !set.parcels.iter().any(|p| &p.approved_use == u) {
                tracing::warn!(
                    "rule {} names approved use '{u}', which is no approved use landwatch knows \
                     ({}) and no parcel has: it cannot fire on these parcels; check the rules' \
                     spelling",
                    r.id,
                    crate::land_use::CLASSES
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    for u in crate::parcels::unknown_uses(&set.parcels, &rule_uses) {
        let value = if u.value.is_empty() {
            format!("no {}", job.config.parcels.use_field)
        } else {
            format!("{} '{}'", job.config.parcels.use_field, u.value)
        };
        let what_to_do = if u.value.is_empty() {
            format!(
                "fill in the field, or point [parcels] use_field at the field that holds the \
                 approved use (it is {})",
                job.config.parcels.use_field
            )
        } else {
            format!(
                "map the value to a use in [parcels.uses] of the config (e.g. \"{}\" = \
                 \"farmland\"), or point [parcels] use_field at the field of land-use codes or \
                 names (GB/T 21010 and Third Land Survey codes and names are known; \
                 docs/RULES.md)",
                u.value
            )
        };
        let message = format!(
            "{layer_name}: {} parcel(s) have {value} (e.g. {}), which is no approved use \
             landwatch knows and no rule names: only the rules for any use (such as the \
             ecological red line) were applied to them; {what_to_do}",
            u.count,
            u.examples.join(", "),
        );
        tracing::warn!("{message}");
        out.push(Skipped {
            what: format!("{layer_name} {value}"),
            kind: "unknown_use".into(),
            message,
        });
    }
    // Permits whose permitted use the rules do not name explain nothing: the building they
    // permit would be reported as suspected. Named, with what to do.
    for u in
        crate::parcels::unknown_permitted_uses(&set.permits, &job.rules.settings.permitted_uses)
    {
        let value = if u.value.is_empty() {
            "no permitted_use".to_string()
        } else {
            format!("permitted_use '{}'", u.value)
        };
        let known: Vec<&str> = job
            .rules
            .settings
            .permitted_uses
            .keys()
            .map(String::as_str)
            .collect();
        let register = job.config.parcels.permits.as_ref().map_or_else(
            || "permits".to_string(),
            |p| job.config.resolve(p).display().to_string(),
        );
        let message = format!(
            "{register}: {} permit(s) have {value} (e.g. {}), which the rules' \
             [settings.permitted_uses] does not name ({}): they explain no change, so what they \
             permit may be reported as suspected; write one of those uses into the register, or \
             name the value in [settings.permitted_uses] of the rules with the transitions it \
             permits (docs/RULES.md)",
            u.count,
            u.examples.join(", "),
            known.join(", ")
        );
        tracing::warn!("{message}");
        out.push(Skipped {
            what: format!("{register} {value}"),
            kind: "unknown_permitted_use".into(),
            message,
        });
    }
    out
}

/// SHA-256 over what a cell's result depends on besides its imagery.
fn inputs_key(job: &ScanJob, parcels_path: &std::path::Path) -> Result<String, PipelineError> {
    let cfg = &job.config;
    let mut h = Sha256::new();
    // Every file of each layer: a Shapefile's attributes (.dbf) and CRS (.prj) change apart
    // from its outlines (.shp).
    let mut file = |p: &std::path::Path| {
        for f in crate::ingest::vector::vector_files(p) {
            h.update(f.display().to_string().as_bytes());
            match std::fs::read(&f) {
                Ok(b) => h.update(Sha256::digest(&b)),
                Err(_) => h.update(b"unreadable"),
            }
        }
    };
    file(parcels_path);
    if let Some(p) = &cfg.parcels.permits {
        file(&cfg.resolve(p));
    }
    for c in &cfg.parcels.control {
        file(&cfg.resolve(&c.path));
    }
    let mut rest = json!({
        "bands_before": cfg.imagery.bands_before,
        "bands_after": cfg.imagery.bands_after,
        "parcels": cfg.parcels,
        "grid": cfg.grid,
        "detect": cfg.detect,
        "detector": job.detector.describe(),
        "rules": job.rules,
        "version": crate::VERSION,
    });
    // A run that writes no evidence packets leaves its findings' cases without evidence: its
    // cells' keys say so, so that the next run that writes packets does them again (the keys of
    // runs that write packets are as they were).
    if !cfg.evidence.enabled {
        rest["packets"] = json!(false);
    }
    let text = serde_json::to_vec(&rest).map_err(|e| PipelineError::Inputs(e.to_string()))?;
    let mut h2 = Sha256::new();
    h2.update(h.finalize());
    h2.update(&text);
    Ok(hex::encode(h2.finalize()))
}

/// How each parcel lost its vegetation over all regions of an observation: the share of its area
/// and of its edge band (`edge` wide, in CRS units) the losses cover.
///
/// Both shares are taken over what the observation saw of the parcel (`seen_px` pixels of
/// `pixel_area` each): half a field under a cloud cannot show that the other half was harvested.
fn field_losses(
    merged: &[MergedRegion],
    set: &ParcelSet,
    insets: &[MultiPolygon<f64>],
    edge: f64,
    seen_px: &HashMap<usize, [u64; 2]>,
    pixel_area: f64,
) -> HashMap<usize, crate::rules::FieldLoss> {
    use geo::Buffer;
    // The intersections of each region with its parcels, then their union per parcel in region
    // order (as one loop would), each in parallel.
    let overlaps = parcel_overlaps(merged, set, |t| {
        matches!(
            t,
            Transition::VegetationToBare | Transition::VegetationToBuilt
        )
    });
    let mut parts: HashMap<usize, Vec<MultiPolygon<f64>>> = HashMap::new();
    for (pi, inside) in overlaps.into_iter().flatten() {
        parts.entry(pi).or_default().push(inside);
    }
    parts
        .into_par_iter()
        .map(|(pi, pieces)| {
            let lost = pieces
                .iter()
                .fold(MultiPolygon::new(vec![]), |u, p| u.union(p));
            let parcel = &set.parcels[pi].polygon;
            let band = parcel.difference(&insets[pi]);
            let area = set.parcels[pi].area.max(1e-12);
            let [seen, seen_band] = seen_px.get(&pi).copied().unwrap_or([0, 0]);
            let seen = (seen as f64 * pixel_area).clamp(1e-12, area);
            let seen_band =
                (seen_band as f64 * pixel_area).clamp(1e-12, band.unsigned_area().max(1e-12));
            let contact = lost.buffer(edge).intersection(&band).unsigned_area() / seen_band;
            let fraction = lost.unsigned_area() / seen;
            (
                pi,
                crate::rules::FieldLoss {
                    fraction: fraction.min(1.0),
                    edge_contact: contact.min(1.0),
                    // Measured for each piece as it is judged.
                    piece_edge_contact: None,
                },
            )
        })
        .collect()
}

/// The share of a parcel's edge band (the parcel less its `inset`) that `piece`, a part of the
/// parcel, covers: the piece less the inset, over the band's area.
fn edge_share(
    piece: &MultiPolygon<f64>,
    parcel: &crate::parcels::Parcel,
    inset: &MultiPolygon<f64>,
) -> f64 {
    let band = parcel.area - inset.unsigned_area();
    if band > 0.0 {
        (piece.difference(inset).unsigned_area() / band).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Per region (in parallel, in region order): each parcel it overlaps with a positive area and the
/// overlap, for the regions whose effective transition passes `judged` (none for the others).
fn parcel_overlaps(
    merged: &[MergedRegion],
    set: &ParcelSet,
    judged: impl Fn(Transition) -> bool + Sync,
) -> Vec<Vec<(usize, MultiPolygon<f64>)>> {
    merged
        .par_iter()
        .map(|m| {
            if !judged(effective_transition(m)) {
                return Vec::new();
            }
            let Some(bb) = geo::BoundingRect::bounding_rect(&m.polygon) else {
                return Vec::new();
            };
            set.parcels_near(&bb)
                .into_iter()
                .filter_map(|pi| {
                    let inside = m.polygon.intersection(&set.parcels[pi].polygon);
                    (inside.unsigned_area() > 0.0).then_some((pi, inside))
                })
                .collect()
        })
        .collect()
}

/// The transition the rules judge: a vegetation cycle that ends in dry vegetation or bare ground
/// (straw-coloured soil is spectrally close to stubble) is a loss of vegetation, which the rules
/// tell apart from a harvest by how much of the field it covers.
fn effective_transition(m: &MergedRegion) -> Transition {
    use crate::detect::cover::Cover;
    let t = m.stats.transition;
    if t == Transition::VegetationCycle {
        let (before, after) = m.stats.covers();
        if before == Cover::Vegetation && matches!(after, Cover::DryVegetation | Cover::Bare) {
            return Transition::VegetationToBare;
        }
    }
    t
}

/// The transition judged on a parcel the register calls water, where the imagery has no near
/// infrared: water then looks like vegetation (green-tinted, as bright as crops in the visible)
/// or like a blue roof, and a filled pond read as vegetation or a roof turned to bare ground or
/// built was never judged as filled water (0 of 8 on a 4096² scene). The register says what was
/// there: a change that ends in bare ground or built there is water to land. With near infrared
/// the covers say it themselves, and the detected transition stands.
fn on_registered_water(
    t: Transition,
    m: &MergedRegion,
    approved_use: &str,
    with_nir: bool,
) -> Transition {
    use crate::detect::cover::Cover;
    if with_nir || approved_use != "water" {
        return t;
    }
    let (before, after) = m.stats.covers();
    let misread = matches!(
        before,
        Cover::Vegetation | Cover::DryVegetation | Cover::Built
    );
    if misread && matches!(after, Cover::Bare | Cover::Built) && t.is_land_use_change() {
        Transition::WaterToLand
    } else {
        t
    }
}

/// The regions an observation with near infrared read as a vegetation cycle (a harvest, a
/// ripening crop), and the day of its imagery.
struct CycleReading {
    observation: String,
    day: NaiveDate,
    /// Each region with its bounding box.
    regions: Vec<(geo::Rect<f64>, MultiPolygon<f64>)>,
}

/// How many days apart imagery with near infrared may be from a finding's for its reading of a
/// harvest to stand for the finding's ground.
const CYCLE_READING_DAYS: i64 = 7;

/// The share of a finding's ground that must lie in a vegetation cycle read with near infrared.
const CYCLE_READING_SHARE: f64 = 0.8;

/// Why a loss of vegetation seen in imagery without near infrared (a drone's RGB camera) is a
/// harvest, when imagery with near infrared within [`CYCLE_READING_DAYS`] of it reads at least
/// [`CYCLE_READING_SHARE`] of its ground as a vegetation cycle: in the visible, stubble and a
/// ripening crop look like bare soil or a roof, with near infrared they do not (on six
/// 4096² and six 2048² synthetic scenes, three drone findings of 400–1 170 m² on harvested
/// fields lay 88–98 % in such regions, every true drone finding 0 %: a building on a harvested
/// field is a built region of its own in near infrared). `None` otherwise.
fn harvest_read_in_near_infrared(f: &Finding, readings: &[CycleReading]) -> Option<String> {
    use geo::{BoundingRect, Intersects};
    let losses = [Transition::VegetationToBuilt, Transition::VegetationToBare];
    if !losses.iter().any(|t| t.name() == f.transition) {
        return None;
    }
    let day = f.after_date.as_deref().and_then(crate::store::day_of);
    let area = f.polygon.unsigned_area();
    let bounds = f.polygon.bounding_rect()?;
    if area.is_nan() || area <= 0.0 {
        return None;
    }
    let (share, reading) = readings
        .iter()
        .filter(|r| day.is_none_or(|d| (r.day - d).num_days().abs() <= CYCLE_READING_DAYS))
        .map(|r| {
            let inside: f64 = r
                .regions
                .iter()
                .filter(|(b, _)| b.intersects(&bounds))
                .map(|(_, g)| f.polygon.intersection(g).unsigned_area())
                .sum();
            (inside / area, r)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    (share >= CYCLE_READING_SHARE).then(|| {
        format!(
            "without near infrared it reads as {}, but the near-infrared imagery of observation \
             '{}' ({}) reads {:.0} % of its ground as a vegetation cycle (a harvest or a ripening \
             crop, which look like bare or built ground in the visible alone)",
            f.transition,
            reading.observation,
            reading.day,
            100.0 * share.min(1.0)
        )
    })
}

fn median_f32(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 1.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[allow(clippy::too_many_arguments)]
fn scan_cell(
    cell: &Cell,
    grid: &GridDef,
    readers: &Readers,
    after_bounds: &[Option<crate::grid::Bounds>],
    detector: &dyn Detector,
    pixel_area: f64,
    set: &ParcelSet,
    is_protected: &[bool],
    insets: &[MultiPolygon<f64>],
    cache: Option<&DetectCache>,
    last_scores: &[Option<std::sync::Mutex<SingleBandReader>>],
    watch: &WatchIndex<'_>,
) -> CellScan {
    super::panic_point("cell", &cell.id);
    let mut errors = Vec::new();
    let (cw, ch) = (cell.core.width, cell.core.height);
    let n = cw * ch;
    // Per pixel of the core: observed by any after observation, else the best-known reason.
    let mut reason = vec![UNOBSERVED_NO_DATA; n];
    let mut per_obs = Vec::with_capacity(readers.after.len());
    let cb = grid.window_bounds(&cell.core);
    let covered: Vec<bool> = after_bounds
        .iter()
        .map(|b| b.as_ref().is_some_and(|b| b.intersection(&cb).is_some()))
        .collect();
    // What the detector says about the cell: from a valid cache entry, else detected now (and
    // cached when every observation gave a result).
    let key = cache.map(|c| (c, c.key(grid, cell)));
    let cached = key
        .as_ref()
        .and_then(|(c, k)| {
            let score = |i: usize| {
                let reader = last_scores.get(i)?.as_ref()?;
                let reader = reader.lock().unwrap_or_else(|e| e.into_inner());
                reader.read_f32(&cell.core).ok()
            };
            k.as_ref().and_then(|k| c.load(cell, k, score))
        })
        .filter(|o| {
            o.len() == covered.len()
                && o.iter()
                    .zip(&covered)
                    .all(|(o, c)| matches!(o, Outcome::NotCovered) != *c)
        });
    let (outcomes, source) = match cached {
        Some(o) => (o.into_iter().map(Some).collect(), Source::Cache),
        None => {
            let (o, complete) =
                detect_cell(cell, readers, &covered, detector, pixel_area, &mut errors);
            if let (Some((c, k)), true) = (&key, complete) {
                c.store(cell, k.as_ref(), &o.iter().flatten().collect::<Vec<_>>());
            }
            let read = o
                .iter()
                .flatten()
                .any(|o| !matches!(o, Outcome::NotCovered));
            (
                o,
                if read {
                    Source::Detected
                } else {
                    Source::Nothing
                },
            )
        }
    };
    // Every parcel of the cell, by pixel centres: for coverage and for what each observation saw.
    let rect = geo::Rect::new((cb.min_x, cb.min_y), (cb.max_x, cb.max_y));
    let gt = grid.window_geo_transform(&cell.core);
    let mut labels = vec![0i32; n];
    let mut inner = vec![0i32; n];
    let near = set.parcels_near(&rect);
    // Numbered locally: `k + 1` stands for parcel `near[k]`, so the counts below are as long as
    // the list of parcels near the cell, whatever the size of the whole parcel set.
    for (k, &pi) in near.iter().enumerate() {
        let local = k as i32 + 1;
        for poly in &set.parcels[pi].polygon.0 {
            crate::rasterize::fill_polygon(&gt, cw, ch, poly, local, &mut labels);
        }
        for poly in &insets[pi].0 {
            crate::rasterize::fill_polygon(&gt, cw, ch, poly, local, &mut inner);
        }
    }
    for outcome in outcomes {
        let res = match outcome {
            Some(Outcome::Detected(d)) => *d,
            other => {
                per_obs.push(ObsCell {
                    pieces: Vec::new(),
                    strips: EdgeStrips::default(),
                    stats: None,
                    observed: Vec::new(),
                    score: None,
                    no_valid_pixels: matches!(other, Some(Outcome::NoValidPixels)),
                });
                continue;
            }
        };
        // The core's unobserved reasons in row-major order: the detector's array itself when it
        // is laid out so (no copy).
        let unobserved: std::borrow::Cow<'_, [u8]> = match res.unobserved.as_slice() {
            Some(u) => std::borrow::Cow::Borrowed(u),
            None => std::borrow::Cow::Owned(res.unobserved.iter().copied().collect()),
        };
        // Observed by any observation wins; otherwise this one's reason replaces "no data".
        // Branch-free, so the loop vectorises.
        for (r, u) in reason.iter_mut().zip(unobserved.iter()) {
            let observed = (*r == UNOBSERVED_NO) | (*u == UNOBSERVED_NO);
            let known = if *r == UNOBSERVED_NO_DATA { *u } else { *r };
            *r = if observed { UNOBSERVED_NO } else { known };
        }
        let pieces = cell_pieces(&res.labels, &res.regions, grid, cell);
        // Counted densely over the parcels near the cell (a hash map per pixel cost more than
        // the counting).
        let seen = count_seen(&labels, &inner, &unobserved, near.len());
        let observed: Vec<(usize, [u64; 2])> = near
            .iter()
            .zip(&seen)
            .filter(|(_, c)| c[0] > 0)
            .map(|(&pi, c)| (pi, *c))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        per_obs.push(ObsCell {
            pieces,
            strips: EdgeStrips::of(&res.labels),
            no_valid_pixels: false,
            observed,
            // Row-major: the detector's array itself when it is laid out so (no copy).
            score: Some(if res.score.is_standard_layout() {
                // Contiguous in row-major order from the offset on.
                let len = res.score.len();
                match res.score.into_raw_vec_and_offset() {
                    (v, Some(0)) if v.len() == len => v,
                    (v, off) => {
                        let o = off.unwrap_or(0);
                        v[o..o + len].to_vec()
                    }
                }
            } else {
                res.score.iter().copied().collect()
            }),
            stats: Some(res.stats),
        });
    }
    // Coverage of the protected parcels in this cell.
    let mut coverage = Vec::new();
    if near.iter().any(|&i| is_protected[i]) {
        let counts = count_reasons(&labels, &reason, near.len(), |k| is_protected[near[k]]);
        let v: std::collections::BTreeMap<usize, [u64; 4]> = near
            .iter()
            .zip(&counts)
            .filter(|(_, c)| c.iter().any(|n| *n > 0))
            .map(|(&pi, c)| (pi, *c))
            .collect();
        coverage = v.into_iter().collect();
    }
    CellScan {
        cell: cell.clone(),
        source,
        per_obs,
        coverage,
        watched: watch.sight(&rect, &gt, (cw, ch), &reason),
        errors,
    }
}

/// The end of the run of equal values that starts at `i` (below `values.len()`): `values[i..end]`
/// all equal `values[i]`. Sixteen values at a time while they all do (one branch-free test each),
/// as the detector's `next_nonzero` skips zeros. Kept apart from it: one generic function for
/// both made the detector's sweep ~20 % slower through the code's placement alone
/// (`docs/PERFORMANCE.md`, 1 Dec 2026).
fn run_end(values: &[i32], i: usize) -> usize {
    let l = values[i];
    let mut j = i + 1;
    while j + 16 <= values.len() && !values[j..j + 16].iter().fold(false, |a, v| a | (*v != l)) {
        j += 16;
    }
    while j < values.len() && values[j] == l {
        j += 1;
    }
    j
}

/// Calls `f(l, range)` for each run of one label `l` > 0 in a cell's parcel labels.
fn for_each_label_run(labels: &[i32], mut f: impl FnMut(usize, std::ops::Range<usize>)) {
    let mut i = 0;
    while i < labels.len() {
        let end = run_end(labels, i);
        if labels[i] > 0 {
            f(labels[i] as usize, i..end);
        }
        i = end;
    }
}

/// What one observation saw of each of the `parcels` near a cell, from the cell's parcel labels
/// (`labels`, parcel `k` as `k + 1`, 0 for none), the labels of the parcels' insets (`inner`) and
/// the observation's unobserved reasons: per parcel, its observed pixels and how many of those lie
/// outside its own inset. Counted over the runs of one label (a parcel crosses a row in one or a
/// few runs), each run in one pass that vectorises, then added into the parcel's counts once
/// (added into them pixel by pixel, each addition waited for the one before).
fn count_seen(labels: &[i32], inner: &[i32], unobserved: &[u8], parcels: usize) -> Vec<[u64; 2]> {
    let mut seen = vec![[0u64; 2]; parcels];
    let n = labels.len().min(inner.len()).min(unobserved.len());
    for_each_label_run(&labels[..n], |l, r| {
        let (mut observed, mut outside) = (0u64, 0u64);
        for (u, inn) in unobserved[r.clone()].iter().zip(&inner[r]) {
            let o = (*u == UNOBSERVED_NO) as u64;
            observed += o;
            outside += o & (*inn != l as i32) as u64;
        }
        let e = &mut seen[l - 1];
        e[0] += observed;
        e[1] += outside;
    });
    seen
}

/// Per parcel near a cell, its pixels by unobserved reason (`reason`, each one of the four
/// `UNOBSERVED_*` values, indexing the counts), for the parcels `counted` says (by their index in
/// the list near the cell); zeros for the others. Counted over the labels' runs as in
/// [`count_seen`].
fn count_reasons(
    labels: &[i32],
    reason: &[u8],
    parcels: usize,
    counted: impl Fn(usize) -> bool,
) -> Vec<[u64; 4]> {
    let mut counts = vec![[0u64; 4]; parcels];
    let n = labels.len().min(reason.len());
    for_each_label_run(&labels[..n], |l, r| {
        if !counted(l - 1) {
            return;
        }
        let mut c = [0u64; 4];
        for v in &reason[r] {
            for (k, c) in c.iter_mut().enumerate() {
                *c += (*v as usize == k) as u64;
            }
        }
        for (t, c) in counts[l - 1].iter_mut().zip(c) {
            *t += c;
        }
    });
    counts
}

/// The readers of the before date and of each after observation, shared by the scan workers.
struct Readers {
    before: std::sync::Mutex<Result<CellReader, crate::ingest::IngestError>>,
    after: Vec<std::sync::Mutex<Result<CellReader, crate::ingest::IngestError>>>,
}

impl Readers {
    /// Reads a cell's window from one date's reader (holding its lock for the read only).
    fn read(
        reader: &std::sync::Mutex<Result<CellReader, crate::ingest::IngestError>>,
        cell: &Cell,
    ) -> Result<crate::ingest::CellImage, String> {
        let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
        r.as_mut().map_err(|e| e.to_string()).and_then(|r| {
            super::read_for_detection(r, cell).map_err(|e| match e {
                // The caller names the cell.
                crate::ingest::IngestError::CellRead { detail, .. } => detail,
                e => e.to_string(),
            })
        })
    }
}

/// What a skipped cell's reading failure tells the operator to do.
const READ_FAILURE_ADVICE: &str = " (a file that cannot be decoded is damaged: check it with \
    `gdalinfo -checksum` and copy or download it again); the next run tries the cell again";

/// Reads and detects a cell for every after observation. Per observation: `None` where its
/// imagery could not be read or detection failed (the reason is added to `errors`), else its
/// outcome. The flag says whether every observation has an outcome (the cell may be cached).
fn detect_cell(
    cell: &Cell,
    readers: &Readers,
    covered: &[bool],
    detector: &dyn Detector,
    pixel_area: f64,
    errors: &mut Vec<Skipped>,
) -> (Vec<Option<Outcome>>, bool) {
    // When another worker is reading the before date, the first after observation is read
    // first instead of waiting (both readers busy at once); the outcome is the same either way.
    let first_after = covered.iter().position(|c| *c);
    let mut prefetched = match (first_after, readers.before.try_lock()) {
        (Some(i), Err(std::sync::TryLockError::WouldBlock)) => {
            Some((i, Readers::read(&readers.after[i], cell)))
        }
        _ => None,
    };
    let before = match Readers::read(&readers.before, cell) {
        Ok(b) => b,
        Err(e) => {
            errors.push(Skipped {
                what: cell.id.clone(),
                kind: "cell_read".into(),
                message: format!(
                    "cell {}: before date: {e}; the cell is reported unobserved{}",
                    cell.id, READ_FAILURE_ADVICE
                ),
            });
            return (vec![None; readers.after.len()], false);
        }
    };
    let mut out = Vec::with_capacity(readers.after.len());
    for (i, (r, covered)) in readers.after.iter().zip(covered).enumerate() {
        if !covered {
            out.push(Some(Outcome::NotCovered));
            continue;
        }
        let read = match prefetched.take_if(|(j, _)| *j == i) {
            Some((_, read)) => read,
            None => Readers::read(r, cell),
        };
        let after = match read {
            Ok(a) => a,
            Err(e) => {
                errors.push(Skipped {
                    what: cell.id.clone(),
                    kind: "cell_read".into(),
                    message: format!(
                        "cell {}: after date: {e}; this observation is skipped there{}",
                        cell.id, READ_FAILURE_ADVICE
                    ),
                });
                out.push(None);
                continue;
            }
        };
        if after.valid_fraction() == 0.0 {
            out.push(Some(Outcome::NoValidPixels));
            continue;
        }
        // A detector that panics (a bug) fails its cell like a detector error, not the run: the
        // detectors keep no state across calls, so nothing a panic interrupted is used again.
        let detected = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::panic_point("detect", &cell.id);
            crate::detect::detect_cropped(detector, cell, &before, &after, pixel_area)
        }));
        match detected {
            Ok(Ok(res)) => out.push(Some(Outcome::Detected(Box::new(Detection::from(res))))),
            Ok(Err(e)) => {
                errors.push(Skipped {
                    what: cell.id.clone(),
                    kind: "detect".into(),
                    message: e.to_string(),
                });
                out.push(None);
            }
            Err(panic) => {
                errors.push(Skipped {
                    what: cell.id.clone(),
                    kind: "detect".into(),
                    message: format!(
                        "cell {}: the detector failed unexpectedly ({}); this observation is \
                         skipped there. This is a bug in landwatch: please report it with this \
                         message",
                        cell.id,
                        panic_message(&*panic)
                    ),
                });
                out.push(None);
            }
        }
    }
    let complete = out.iter().all(Option::is_some);
    (out, complete)
}

/// What a panic said (its `&str` or `String` payload), for the message that reports it.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The last run's score raster at `path`, to read cells' scores back from; `None` when it is
/// missing or cannot be opened. That is said in a warning naming it when it cannot be opened, or
/// when it is missing and this run leaves cells `unchanged` (they then have no scores in this
/// run's raster); a cell the cache would have served is detected again, and the cache says so
/// when that happens (a new observation has no raster yet and no entry to serve).
fn open_last_scores(
    path: &std::path::Path,
    unchanged: usize,
) -> Option<std::sync::Mutex<SingleBandReader>> {
    let consequence = || {
        let cached = "the cells found in the detection cache are detected again";
        if unchanged > 0 {
            format!("the {unchanged} cell(s) this run leaves unchanged have no scores in its new raster, and {cached}")
        } else {
            cached.to_string()
        }
    };
    if !path.exists() {
        if unchanged > 0 {
            tracing::warn!(
                "the last run's score raster {} is missing: {}",
                path.display(),
                consequence()
            );
        }
        return None;
    }
    match SingleBandReader::open(path) {
        Ok(r) => Some(std::sync::Mutex::new(r)),
        Err(e) => {
            tracing::warn!(
                "the last run's score raster {} cannot be opened ({e}): {}",
                path.display(),
                consequence()
            );
            None
        }
    }
}

/// Writes the `unchanged` cells' scores from the last run's raster `last` (at `path`) into this
/// run's. A window that cannot be read stops the carrying over, with a warning naming the file:
/// the cells left have no scores in the new raster, and a later run that needs them from the
/// cache detects them again (their digest no longer matches).
fn carry_over_scores(
    last: &SingleBandReader,
    path: &std::path::Path,
    unchanged: &[Cell],
    writer: &mut GeoTiffWriter,
) -> Result<(), PipelineError> {
    for cell in unchanged {
        let c = &cell.core;
        let score = match last.read_f32(c) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "the last run's score raster {} cannot be read at cell {} ({e}): the scores of that cell and the unchanged cells after it are not carried over",
                    path.display(),
                    cell.id
                );
                return Ok(());
            }
        };
        if score.iter().all(|v| v.is_nan()) {
            continue;
        }
        let score = crate::detect::flat(&score);
        writer.write_window(c.x as usize, c.y as usize, c.width, c.height, &[&score])?;
        writer.flush()?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make_finding(
    parcel: &crate::parcels::Parcel,
    control_layers: Vec<String>,
    rule: &crate::rules::Rule,
    t: Transition,
    suspected_m2: f64,
    region_area_m2: f64,
    parcel_fraction: f64,
    confidence: f64,
    obs: &Observation,
    before: Option<NaiveDateTime>,
    after: Option<NaiveDateTime>,
    permits: Vec<String>,
    cells: Vec<String>,
    region_polygon: MultiPolygon<f64>,
    trace: Value,
    polygon: MultiPolygon<f64>,
) -> Finding {
    let c = polygon
        .centroid()
        .map(|p| (p.x().round() as i64, p.y().round() as i64))
        .unwrap_or((0, 0));
    let digest = Sha256::digest(format!("{}|{}|{}|{}", parcel.id, rule.kind, c.0, c.1).as_bytes());
    Finding {
        finding_id: hex::encode(&digest[..8]),
        parcel_id: parcel.id.clone(),
        approved_use: parcel.approved_use.clone(),
        control_layers,
        kind: rule.kind.clone(),
        kind_label: format!("{} / {}", rule.label_zh, rule.label_en),
        rule_id: rule.id.clone(),
        severity: rule.severity.clone(),
        transition: t.name().to_string(),
        area_m2: round2(suspected_m2),
        area_mu: round3(suspected_m2 / M2_PER_MU),
        region_area_m2: round2(region_area_m2),
        parcel_changed_fraction: round3(parcel_fraction),
        confidence,
        observation: obs.name.clone(),
        also_seen_by: Vec::new(),
        before_date: before.map(|d| d.format("%Y-%m-%d").to_string()),
        after_date: after.map(|d| d.format("%Y-%m-%d").to_string()),
        permits,
        cells,
        rule_trace: trace,
        polygon,
        region_polygon,
    }
}

/// Two observations (a drone flight and a satellite scene) can see the same change: keep the one
/// from the latest imagery (the finding's own after date, then the latest observation, then the
/// most confident) and note the other.
fn dedupe(mut findings: Vec<Finding>, obs: &[Observation]) -> Vec<Finding> {
    let rank: HashMap<&str, (Option<NaiveDateTime>, usize)> = obs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.name.as_str(), (latest(o), i)))
        .collect();
    findings.sort_by(|a, b| {
        let (ra, rb) = (
            (&a.after_date, rank.get(a.observation.as_str())),
            (&b.after_date, rank.get(b.observation.as_str())),
        );
        rb.cmp(&ra)
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.finding_id.cmp(&b.finding_id))
    });
    let mut kept: Vec<Finding> = Vec::new();
    for f in findings {
        let dup = kept.iter_mut().find(|k| {
            k.parcel_id == f.parcel_id && k.observation != f.observation && {
                let inter = k.polygon.intersection(&f.polygon).unsigned_area();
                inter >= 0.3 * k.polygon.unsigned_area().min(f.polygon.unsigned_area())
            }
        });
        match dup {
            Some(k) => {
                if !k.also_seen_by.contains(&f.observation) {
                    k.also_seen_by.push(f.observation.clone());
                }
            }
            None => kept.push(f),
        }
    }
    kept.sort_by(|a, b| {
        a.parcel_id
            .cmp(&b.parcel_id)
            .then(a.kind.cmp(&b.kind))
            .then(a.finding_id.cmp(&b.finding_id))
    });
    kept
}

fn finding_properties(f: &Finding) -> Map<String, Value> {
    match serde_json::to_value(f) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// What every finding is, on each row of the findings' files: a row of a spreadsheet or an
/// attribute table is read alone, away from the file's name and the report.
const FINDING_WORDING: &str = "疑似违法用地线索 / suspected violation (a lead, not a verdict)";

const FINDING_FIELDS: [(&str, FieldKind); 21] = [
    ("finding_id", FieldKind::Text),
    ("parcel_id", FieldKind::Text),
    ("approved_use", FieldKind::Text),
    ("control_layers", FieldKind::Text),
    ("kind", FieldKind::Text),
    ("kind_label", FieldKind::Text),
    ("rule_id", FieldKind::Text),
    ("severity", FieldKind::Text),
    ("transition", FieldKind::Text),
    ("area_m2", FieldKind::Real),
    ("area_mu", FieldKind::Real),
    ("region_area_m2", FieldKind::Real),
    ("parcel_changed_fraction", FieldKind::Real),
    ("confidence", FieldKind::Real),
    ("observation", FieldKind::Text),
    ("also_seen_by", FieldKind::Text),
    ("before_date", FieldKind::Date),
    ("after_date", FieldKind::Date),
    ("permits", FieldKind::Text),
    ("rule_trace", FieldKind::Text),
    ("wording", FieldKind::Text),
];

/// A finding's day as a date, so that QGIS and spreadsheets can filter and sort by it. The scan
/// writes the day as `YYYY-MM-DD`; anything else is passed on as written, for OGR to read.
fn day_value(day: &Option<String>) -> VValue {
    match day
        .as_deref()
        .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d"))
    {
        Some(Ok(d)) => VValue::Date(d),
        _ => VValue::from(day.clone()),
    }
}

fn finding_row(f: &Finding) -> Vec<VValue> {
    vec![
        VValue::from(f.finding_id.as_str()),
        VValue::from(f.parcel_id.as_str()),
        VValue::from(f.approved_use.as_str()),
        VValue::from(f.control_layers.join(",")),
        VValue::from(f.kind.as_str()),
        VValue::from(f.kind_label.as_str()),
        VValue::from(f.rule_id.as_str()),
        VValue::from(f.severity.as_str()),
        VValue::from(f.transition.as_str()),
        VValue::from(f.area_m2),
        VValue::from(f.area_mu),
        VValue::from(f.region_area_m2),
        VValue::from(f.parcel_changed_fraction),
        VValue::from(f.confidence),
        VValue::from(f.observation.as_str()),
        VValue::from(f.also_seen_by.join(",")),
        day_value(&f.before_date),
        day_value(&f.after_date),
        VValue::from(f.permits.join(",")),
        VValue::from(f.rule_trace.to_string()),
        VValue::from(FINDING_WORDING),
    ]
}

/// Where a run's score rasters, findings, coverage, change regions and summary are written (a
/// hidden directory in the output directory) before they replace the last run's together: a run
/// that stops before the end (a full disk, an unreadable file) leaves the last run's set whole,
/// not some files of each run. Removed when dropped uncommitted.
struct Staging {
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    fn new(out: &std::path::Path) -> Result<Staging, PipelineError> {
        let dir = out.join(".outputs.partial");
        // Left by a run that was killed (or a file in its place: the name is landwatch's).
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&dir);
        ensure_dir(&dir)?;
        Ok(Staging {
            dir,
            committed: false,
        })
    }

    /// Where the file that ends as `path` is written meanwhile.
    fn path_of(&self, path: &std::path::Path) -> PathBuf {
        self.dir.join(path.file_name().unwrap_or_default())
    }

    /// Moves every file written into `out`, replacing the last run's, the summary last (it says
    /// which run the others are of). Renames within one file system do not fail for want of
    /// space; a directory in a file's place is named before any file is moved.
    fn commit(mut self, out: &std::path::Path) -> Result<(), PipelineError> {
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| PipelineError::Export(crate::export::ExportError::Io { path, source })
        };
        let mut staged: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io(&self.dir))?;
        staged.sort_by_key(|p| p.file_name() == Some(std::ffi::OsStr::new("summary.json")));
        for from in &staged {
            let to = out.join(from.file_name().unwrap_or_default());
            if to.is_dir() {
                return Err(PipelineError::Inputs(format!(
                    "{}: a directory where landwatch writes a file; move it away and run again \
                     (the last run's files were left as they were)",
                    to.display()
                )));
            }
        }
        for from in &staged {
            let to = out.join(from.file_name().unwrap_or_default());
            std::fs::rename(from, &to).map_err(io(&to))?;
        }
        self.committed = true;
        let names: Vec<&std::ffi::OsStr> = staged.iter().filter_map(|p| p.file_name()).collect();
        remove_left_over(out, &names);
        std::fs::remove_dir(&self.dir).map_err(io(&self.dir))
    }
}

/// Removes what the last run left in `out` that this run's files (`staged`) do not replace and
/// that would pass for tonight's: the change scores of after observations this run did not have
/// (an earlier run's drone or second satellite observation), and what GDAL and QGIS keep beside
/// a file (`.aux.xml`: statistics, a histogram) whose file is gone or was replaced without one.
/// A file that cannot be removed is only warned of.
fn remove_left_over(out: &std::path::Path, staged: &[&std::ffi::OsStr]) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    let written = |n: &str| staged.iter().any(|s| *s == std::ffi::OsStr::new(n));
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let file = name.strip_suffix(".aux.xml");
        let why = if let Some(f) = file.filter(|f| written(f) && !written(&name)) {
            format!("the statistics of {f}, which this run replaced")
        } else {
            let f = file.unwrap_or(&name);
            if !(f.starts_with("change_score_") && f.ends_with(".tif")) || written(f) {
                continue;
            }
            "the change scores of an after observation this run did not have".to_string()
        };
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("removed {}: {why}", path.display()),
            Err(e) => tracing::warn!(
                "{}: {why}, left in place ({e}); remove it by hand",
                path.display()
            ),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes the run's findings, coverage and change regions into the staging directory
/// (see [`Staging`]); returns the paths they will have in `out`.
fn write_outputs(
    out: &std::path::Path,
    staging: &std::path::Path,
    grid: &GridDef,
    findings: &[Finding],
    coverage: &[Coverage],
    region_features: Vec<Value>,
) -> Result<Vec<PathBuf>, PipelineError> {
    write_staged(staging, grid, findings, coverage, region_features)?;
    Ok([
        "findings.geojson",
        "findings.gpkg",
        "findings.csv",
        "coverage.gpkg",
        "changes.geojson",
        "summary.json",
    ]
    .iter()
    .map(|n| out.join(n))
    .collect())
}

fn write_staged(
    out: &std::path::Path,
    grid: &GridDef,
    findings: &[Finding],
    coverage: &[Coverage],
    region_features: Vec<Value>,
) -> Result<(), PipelineError> {
    // The five files are independent: written two at a time (each GeoPackage through its own
    // GDAL dataset, each WGS84 transformation its own), not one after the other.
    let gj = out.join("findings.geojson");
    let changes = out.join("changes.geojson");
    let gpkg = out.join("findings.gpkg");
    let cov = out.join("coverage.gpkg");
    let csv_path = out.join("findings.csv");
    let to_wgs84 =
        || ToWgs84::new(&grid.crs).map_err(|e| PipelineError::Inputs(format!("working CRS: {e}")));
    let findings_geojson = || -> Result<(), PipelineError> {
        let t = to_wgs84()?;
        let mut features = Vec::new();
        for f in findings {
            let g = t
                .multi_polygon(&f.polygon)
                .map_err(|e| PipelineError::Inputs(format!("finding {}: {e}", f.finding_id)))?;
            let mut props = finding_properties(f);
            props.insert("wording".into(), json!(FINDING_WORDING));
            features.push(geojson::feature(
                Some(&geo::Geometry::MultiPolygon(g)),
                props,
            ));
        }
        let mut members = Map::new();
        members.insert(
            "name".into(),
            json!("landwatch findings: suspected violations (疑似违法用地线索)"),
        );
        geojson::write_feature_collection(&gj, features, members)?;
        Ok(())
    };
    let changes_path = &changes;
    let changes_geojson = move || -> Result<(), PipelineError> {
        let mut members = Map::new();
        members.insert("name".into(), json!("landwatch change regions"));
        geojson::write_feature_collection(changes_path, region_features, members)?;
        Ok(())
    };
    let findings_gpkg = || -> Result<(), PipelineError> {
        write_vector(
            &gpkg,
            "GPKG",
            &[VectorLayer {
                name: "findings".into(),
                crs: grid.crs.clone(),
                fields: FINDING_FIELDS
                    .iter()
                    .map(|(n, k)| (n.to_string(), *k))
                    .collect(),
                features: findings
                    .iter()
                    .map(|f| {
                        (
                            geo::Geometry::MultiPolygon(f.polygon.clone()),
                            finding_row(f),
                        )
                    })
                    .collect(),
            }],
            None,
        )?;
        Ok(())
    };
    let coverage_gpkg = || -> Result<(), PipelineError> {
        write_vector(
            &cov,
            "GPKG",
            &[VectorLayer {
                name: "coverage".into(),
                crs: grid.crs.clone(),
                fields: vec![
                    ("parcel_id".into(), FieldKind::Text),
                    ("approved_use".into(), FieldKind::Text),
                    ("control_layers".into(), FieldKind::Text),
                    ("status".into(), FieldKind::Text),
                    ("observed_fraction".into(), FieldKind::Real),
                    ("cloud_fraction".into(), FieldKind::Real),
                    ("shadow_fraction".into(), FieldKind::Real),
                    ("no_data_fraction".into(), FieldKind::Real),
                    ("findings".into(), FieldKind::Integer),
                ],
                features: coverage
                    .iter()
                    .map(|c| {
                        (
                            geo::Geometry::MultiPolygon(c.polygon.clone()),
                            vec![
                                VValue::from(c.parcel_id.as_str()),
                                VValue::from(c.approved_use.as_str()),
                                VValue::from(c.control_layers.join(",")),
                                VValue::from(c.status.as_str()),
                                VValue::from(c.observed_fraction),
                                VValue::from(c.cloud_fraction),
                                VValue::from(c.shadow_fraction),
                                VValue::from(c.no_data_fraction),
                                VValue::Integer(c.findings as i64),
                            ],
                        )
                    })
                    .collect(),
            }],
            None,
        )?;
        Ok(())
    };
    let findings_csv = || -> Result<(), PipelineError> {
        let t = to_wgs84()?;
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        let header: Vec<&str> = FINDING_FIELDS
            .iter()
            .map(|(n, _)| *n)
            .chain(["centroid_lon", "centroid_lat"])
            .collect();
        let csv_err = |e: csv::Error| PipelineError::Inputs(format!("{}: {e}", csv_path.display()));
        w.write_record(&header).map_err(csv_err)?;
        for f in findings {
            let (lon, lat) = f
                .polygon
                .centroid()
                .and_then(|c| t.point(c.x(), c.y()).ok())
                .unwrap_or((f64::NAN, f64::NAN));
            let mut rec: Vec<String> = finding_row(f)
                .into_iter()
                .map(|v| match v {
                    VValue::Text(s) => crate::export::csv_text(s),
                    VValue::Real(x) => x.to_string(),
                    VValue::Integer(i) => i.to_string(),
                    VValue::Boolean(b) => b.to_string(),
                    VValue::Date(d) => d.to_string(),
                    VValue::Null => String::new(),
                })
                .collect();
            rec.push(format!("{lon:.7}"));
            rec.push(format!("{lat:.7}"));
            w.write_record(&rec).map_err(csv_err)?;
        }
        let body = w
            .into_inner()
            .map_err(|e| PipelineError::Inputs(e.to_string()))?;
        // A byte-order mark so that spreadsheet programs read the Chinese text as UTF-8.
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend(body);
        crate::export::write_atomic(&csv_path, &bytes)?;
        Ok(())
    };
    let ((a, b), (c, (d, e))) = rayon::join(
        || rayon::join(findings_gpkg, changes_geojson),
        || {
            rayon::join(coverage_gpkg, || {
                rayon::join(findings_geojson, findings_csv)
            })
        },
    );
    // Every file that could not be written is named; the first (in file order) fails the run.
    let mut failed = [a, b, c, d, e].into_iter().filter_map(Result::err);
    if let Some(first) = failed.next() {
        for other in failed {
            tracing::error!("{other}");
        }
        return Err(first);
    }
    Ok(())
}

/// A `NaiveDate` from an optional date string, for callers that need the after date.
pub fn parse_day(s: Option<&str>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::catalog::{catalog_paths, CatalogOptions};
    use gdal::DriverManager;

    /// Labels in runs (parcel `k` as `k + 1`, 0 for none) with per-pixel inner labels and
    /// reasons, as a cell's parcel accounting sees them.
    fn labelled() -> impl proptest::strategy::Strategy<Value = (Vec<i32>, Vec<i32>, Vec<u8>, usize)>
    {
        use proptest::prelude::*;
        (
            1usize..6,
            proptest::collection::vec((0i32..6, 1usize..40), 0..30),
        )
            .prop_flat_map(|(parcels, runs)| {
                let labels: Vec<i32> = runs
                    .iter()
                    .flat_map(|(l, n)| std::iter::repeat_n(l % (parcels as i32 + 1), *n))
                    .collect();
                let n = labels.len();
                (
                    Just(labels),
                    proptest::collection::vec(0i32..(parcels as i32 + 1), n),
                    proptest::collection::vec(0u8..4, n),
                    Just(parcels),
                )
            })
    }

    proptest::proptest! {
        #[test]
        fn counts_over_label_runs_are_the_per_pixel_counts(
            (labels, inner, reasons, parcels) in labelled(),
            protected in proptest::collection::vec(proptest::bool::ANY, 6),
        ) {
            let mut seen = vec![[0u64; 2]; parcels];
            let mut by_reason = vec![[0u64; 4]; parcels];
            for i in 0..labels.len() {
                let l = labels[i];
                if l == 0 {
                    continue;
                }
                let k = l as usize - 1;
                if reasons[i] == UNOBSERVED_NO {
                    seen[k][0] += 1;
                    if inner[i] != l {
                        seen[k][1] += 1;
                    }
                }
                if protected[k] {
                    by_reason[k][reasons[i] as usize] += 1;
                }
            }
            proptest::prop_assert_eq!(count_seen(&labels, &inner, &reasons, parcels), seen);
            proptest::prop_assert_eq!(
                count_reasons(&labels, &reasons, parcels, |k| protected[k]),
                by_reason
            );
            // Every run ends where its label changes.
            let mut i = 0;
            while i < labels.len() {
                let end = run_end(&labels, i);
                proptest::prop_assert!(labels[i..end].iter().all(|v| *v == labels[i]));
                proptest::prop_assert!(end == labels.len() || labels[end] != labels[i]);
                i = end;
            }
        }
    }

    /// A small georeferenced three-band GeoTIFF at `path`, its pixels depending on `seed`.
    fn tiff(path: &std::path::Path, seed: u16) {
        crate::ingest::init_gdal();
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut ds = driver
            .create_with_band_type::<u16, _>(path, 16, 16, 3)
            .unwrap();
        ds.set_geo_transform(&[300000.0, 1.0, 0.0, 3450000.0, 0.0, -1.0])
            .unwrap();
        ds.set_spatial_ref(&crate::ingest::srs::parse_crs("EPSG:32651").unwrap())
            .unwrap();
        for b in 0..3 {
            let data: Vec<u16> = (0..256).map(|i| seed + i + 7 * b).collect();
            let mut buf = gdal::raster::Buffer::new((16, 16), data);
            ds.rasterband(b as usize + 1)
                .unwrap()
                .write((0, 0), (16, 16), &mut buf)
                .unwrap();
        }
    }

    /// Observations catalogued without their content hashes, as a scan that hashes beside
    /// detection makes them.
    fn unhashed(path: &std::path::Path) -> Vec<Observation> {
        let entries = catalog_paths(
            &[path.to_path_buf()],
            &CatalogOptions {
                defer_hash: true,
                ..CatalogOptions::default()
            },
        );
        assert!(entries.iter().all(|e| e.is_usable()), "{entries:?}");
        let obs = group_observations(&entries);
        assert!(obs
            .iter()
            .flat_map(|o| &o.sources.sources)
            .all(|s| s.info.sha256.is_empty()));
        obs
    }

    /// Two dates' files in `dir`, different in content.
    fn two_dates(dir: &std::path::Path) -> (PathBuf, PathBuf) {
        let (b, a) = (dir.join("before.tif"), dir.join("after.tif"));
        tiff(&b, 100);
        tiff(&a, 900);
        (b, a)
    }

    #[test]
    fn hashes_computed_beside_are_those_of_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let (b, a) = two_dates(dir.path());
        let (mut before, mut after) = (unhashed(&b), unhashed(&a));
        let hashing = hash_beside(before.iter().chain(&after));
        assert_eq!(hashing.len(), 2);
        fill_hashes(hashing, &mut before, &mut after).unwrap();
        assert_eq!(
            before[0].sources.sources[0].info.sha256,
            sha256_file(&b).unwrap()
        );
        assert_eq!(
            after[0].sources.sources[0].info.sha256,
            sha256_file(&a).unwrap()
        );
        assert_ne!(
            before[0].sources.sources[0].info.sha256,
            after[0].sources.sources[0].info.sha256
        );
    }

    #[test]
    fn a_file_that_cannot_be_hashed_fails_the_run_named() {
        let dir = tempfile::tempdir().unwrap();
        let (b, a) = two_dates(dir.path());
        let (mut before, mut after) = (unhashed(&b), unhashed(&a));
        std::fs::remove_file(&a).unwrap();
        let hashing = hash_beside(before.iter().chain(&after));
        let e = fill_hashes(hashing, &mut before, &mut after)
            .unwrap_err()
            .to_string();
        assert!(e.contains("after.tif"), "{e}");
    }

    #[test]
    fn a_watched_area_s_sight_counts_its_pixels_and_a_small_one_its_interior_point() {
        use crate::detect::UNOBSERVED_NO_DATA;
        let square = |x0: f64, y0: f64, x1: f64, y1: f64| WatchedArea {
            id: format!("{x0}"),
            area: MultiPolygon(vec![geo::Rect::new((x0, y0), (x1, y1)).to_polygon()]),
        };
        let areas = vec![
            square(2.0, 2.0, 8.0, 8.0),
            square(6.6, 6.6, 6.9, 6.9),
            square(100.0, 100.0, 101.0, 101.0),
        ];
        let index = WatchIndex::new(&areas);
        // A 10 × 10 core of 1 m pixels: its left half observed, its right half without data.
        let gt = [0.0, 1.0, 0.0, 10.0, 0.0, -1.0];
        let reason: Vec<u8> = (0..100)
            .map(|i| {
                if i % 10 < 5 {
                    UNOBSERVED_NO
                } else {
                    UNOBSERVED_NO_DATA
                }
            })
            .collect();
        let rect = geo::Rect::new((0.0, 0.0), (10.0, 10.0));
        let sight = index.sight(&rect, &gt, (10, 10), &reason);
        let big = WatchedSight {
            pixels: 36,
            observed: 18,
            // Its interior point (5, 5) falls on column 5, without data.
            point: 1,
            point_observed: 0,
        };
        let small = WatchedSight {
            point: 1,
            ..Default::default()
        };
        assert_eq!(sight, vec![(0, big), (1, small)]);
        assert_eq!(big.fraction(), Some(0.5));
        assert_eq!(small.fraction(), Some(0.0));
        assert_eq!(WatchedSight::default().fraction(), None);
        assert!(WatchIndex::new(&[])
            .sight(&rect, &gt, (10, 10), &reason)
            .is_empty());
    }

    #[test]
    fn a_loss_of_vegetation_seen_without_near_infrared_where_near_infrared_reads_a_harvest_is_one()
    {
        let square = |x0: f64, y0: f64, x1: f64, y1: f64| {
            MultiPolygon::new(vec![geo::Rect::new((x0, y0), (x1, y1)).to_polygon()])
        };
        let finding = |transition: &str, polygon: MultiPolygon<f64>, day: &str| Finding {
            finding_id: "f".into(),
            parcel_id: "WJ-1".into(),
            approved_use: "farmland".into(),
            control_layers: Vec::new(),
            kind: "building_on_farmland".into(),
            kind_label: String::new(),
            rule_id: "R06-FARM-BUILD".into(),
            severity: "high".into(),
            transition: transition.into(),
            area_m2: polygon.unsigned_area(),
            area_mu: 0.0,
            region_area_m2: polygon.unsigned_area(),
            parcel_changed_fraction: 0.1,
            confidence: 0.6,
            observation: "drone".into(),
            also_seen_by: Vec::new(),
            before_date: None,
            after_date: Some(day.into()),
            permits: Vec::new(),
            cells: Vec::new(),
            rule_trace: Value::Null,
            region_polygon: polygon.clone(),
            polygon,
        };
        let readings = [CycleReading {
            observation: "satellite".into(),
            day: NaiveDate::from_ymd_opt(2026, 10, 14).unwrap(),
            // The harvested field, in two regions.
            regions: [
                square(0.0, 0.0, 100.0, 50.0),
                square(0.0, 50.0, 100.0, 100.0),
            ]
            .map(|g| (geo::BoundingRect::bounding_rect(&g).unwrap(), g))
            .to_vec(),
        }];
        // Roof-like stubble across both regions, two days after the satellite's pass.
        let why = harvest_read_in_near_infrared(
            &finding(
                "vegetation_to_built",
                square(10.0, 40.0, 30.0, 60.0),
                "2026-10-16",
            ),
            &readings,
        );
        assert_eq!(
            why.as_deref(),
            Some(
                "without near infrared it reads as vegetation_to_built, but the near-infrared \
                 imagery of observation 'satellite' (2026-10-14) reads 100 % of its ground as a \
                 vegetation cycle (a harvest or a ripening crop, which look like bare or built \
                 ground in the visible alone)"
            )
        );
        // Bare ground half and three quarters inside the field is judged as it is, four fifths
        // inside it is the harvest; a loss of vegetation half outside the field, one more than
        // a week from the pass, and a pond are judged as they are.
        let square_at = |x0: f64, y0: f64, side: f64| square(x0, y0, x0 + side, y0 + side);
        for (t, g, day, harvest) in [
            (
                "vegetation_to_bare",
                square(90.0, 0.0, 110.0, 10.0),
                "2026-10-16",
                false,
            ),
            (
                "vegetation_to_bare",
                square(85.0, 0.0, 105.0, 10.0),
                "2026-10-16",
                false,
            ),
            (
                "vegetation_to_bare",
                square(84.0, 0.0, 104.0, 10.0),
                "2026-10-16",
                true,
            ),
            (
                "vegetation_to_built",
                square_at(90.0, 10.0, 20.0),
                "2026-10-16",
                false,
            ),
            (
                "vegetation_to_built",
                square_at(10.0, 10.0, 20.0),
                "2026-10-22",
                false,
            ),
            (
                "vegetation_to_built",
                square_at(10.0, 10.0, 20.0),
                "2026-10-21",
                true,
            ),
            (
                "vegetation_to_built",
                square_at(10.0, 10.0, 20.0),
                "2026-10-06",
                false,
            ),
            (
                "vegetation_to_water",
                square_at(10.0, 10.0, 20.0),
                "2026-10-16",
                false,
            ),
        ] {
            let why = harvest_read_in_near_infrared(&finding(t, g, day), &readings);
            assert_eq!(why.is_some(), harvest, "{t} {day}: {why:?}");
        }
    }

    #[test]
    fn a_change_to_land_on_a_registered_water_parcel_is_filled_water_without_near_infrared() {
        use crate::detect::cover::Cover;
        // A region whose covers are `before` → `after` (all its pixels), read as `t`.
        let region = |t: Transition, before: Cover, after: Cover| {
            let (mut b, mut a) = ([0u64; 7], [0u64; 7]);
            b[before as usize] = 100;
            a[after as usize] = 100;
            MergedRegion {
                stats: crate::detect::RegionStats {
                    transition: t,
                    pixels: 100,
                    transition_pixels: [0; 9],
                    before_cover: b,
                    after_cover: a,
                    score_sum: 0.0,
                    score_max: 0.0,
                    chi2_sum: 0.0,
                    ring_pixels: 0,
                    ring_observed: 0,
                    agree_pixels: None,
                },
                polygon: MultiPolygon::new(vec![]),
                cells: Vec::new(),
            }
        };
        use Transition::*;
        // Green-tinted water read as vegetation, blue water read as a roof: filled.
        for (t, before, after) in [
            (VegetationToBare, Cover::Vegetation, Cover::Bare),
            (VegetationToBuilt, Cover::Vegetation, Cover::Built),
            (BuiltToOther, Cover::Built, Cover::Bare),
        ] {
            let m = region(t, before, after);
            assert_eq!(on_registered_water(t, &m, "water", false), WaterToLand);
            // With near infrared the covers are believed; elsewhere the register says otherwise.
            assert_eq!(on_registered_water(t, &m, "water", true), t);
            assert_eq!(on_registered_water(t, &m, "farmland", false), t);
        }
        // What does not end on land, or a cycle, stays as read.
        for (t, before, after) in [
            (VegetationCycle, Cover::Vegetation, Cover::DryVegetation),
            (BuiltToOther, Cover::Built, Cover::Vegetation),
            (BareToBuilt, Cover::Bare, Cover::Built),
        ] {
            let m = region(t, before, after);
            assert_eq!(on_registered_water(t, &m, "water", false), t);
        }
    }
}
