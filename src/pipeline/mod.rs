//! Orchestration: wiring the IO shell (ingest, export) to the pure core (grid, detect, vectorize,
//! overlay, rules) for the commands that run the pipeline.

pub mod cache;
pub mod detect;
pub mod packets;
pub mod scan;

use crate::bands::BandRole;
use crate::grid::{Bounds, GridDef};
use crate::ingest::catalog::{CatalogEntry, CatalogOptions};
use crate::ingest::plan::bounds_in_crs;
use crate::ingest::{catalog_paths, group_observations, IngestError, Observation};
use chrono::NaiveDateTime;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A failure that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading inputs failed in a way that leaves nothing to do.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// Writing outputs failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// The inputs cannot be used together.
    #[error("{0}")]
    Inputs(String),
}

/// Something the run skipped, named for the summary (a file, a cell).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// What was skipped: a file path or a cell id.
    pub what: String,
    /// Machine-readable kind.
    pub kind: String,
    /// Why, and what to do.
    pub message: String,
}

impl Skipped {
    /// A cell that could not be read or detected: not done, so the next run tries it again.
    pub fn is_failed_cell(&self) -> bool {
        matches!(self.kind.as_str(), "cell_read" | "detect")
    }
}

/// Drops from the after date's entries every file that is also a before file (an after directory
/// holding last month's files too): compared with itself a file shows no change, so it is before
/// imagery only, named in `skipped` (kind `both_dates`).
pub fn drop_files_of_both_dates(
    before: &[CatalogEntry],
    after: Vec<CatalogEntry>,
    skipped: &mut Vec<Skipped>,
) -> Vec<CatalogEntry> {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let before_files: std::collections::HashSet<PathBuf> =
        before.iter().map(|e| canonical(&e.path)).collect();
    let (after, both): (Vec<CatalogEntry>, Vec<CatalogEntry>) = after
        .into_iter()
        .partition(|e| !before_files.contains(&canonical(&e.path)));
    for e in both.iter().filter(|e| e.is_usable()) {
        skipped.push(Skipped {
            what: e.path.display().to_string(),
            kind: "both_dates".into(),
            message: format!(
                "{}: given as both before and after imagery; compared with itself it can show no \
                 change, so it is used as before imagery only: keep each date's files apart",
                e.path.display()
            ),
        });
    }
    after
}

/// The after observations that can be compared with `before` in time, in the order the date
/// checks must run (each names what it leaves out in `skipped`): after files dated in the
/// future, after imagery not newer than the before imagery, before files newer than all of the
/// after imagery, then after files older than some before file over the same ground. Empty when
/// no after observation is left. `scan` and `detect` both go through it.
pub fn in_time_order(
    before: &mut Observation,
    after: Vec<Observation>,
    now: NaiveDateTime,
    skipped: &mut Vec<Skipped>,
) -> Vec<Observation> {
    let after = drop_after_dated_in_future(after, now, skipped);
    let after = drop_after_not_newer_than_before(before, after, skipped);
    if after.is_empty() {
        return after;
    }
    drop_before_newer_than_after(before, &after, now, skipped);
    drop_after_older_than_some_before(before, after, skipped)
}

/// Drops every after file dated later than a day after `now` (the margin allows for dates in
/// UTC or another time zone) — a typo in a sidecar, a camera's clock set wrong — and names it in
/// `skipped` (kind `dated_in_future`): a finding on it would be dated then, its permits judged
/// on that day (a valid permit taken for expired: a building flagged for nothing), and its view
/// would decide over every other. An observation left without files is dropped. Undated files
/// are kept.
pub fn drop_after_dated_in_future(
    after: Vec<Observation>,
    now: NaiveDateTime,
    skipped: &mut Vec<Skipped>,
) -> Vec<Observation> {
    let latest_possible = now + chrono::Duration::days(1);
    let mut kept = Vec::with_capacity(after.len());
    for mut o in after {
        let future = take_files(&mut o, |s| {
            s.info
                .acquired
                .as_ref()
                .is_some_and(|a| a.time > latest_possible)
        });
        for src in &future {
            let when = src
                .info
                .acquired
                .as_ref()
                .map_or_else(String::new, |a| a.time.to_string());
            let s = Skipped {
                what: src.path.display().to_string(),
                kind: "dated_in_future".into(),
                message: format!(
                    "{}: after imagery of observation '{}' is dated {when}, after the day of \
                     this run ({}): the date cannot be right, and judged on it permits would be \
                     taken for expired; not compared — correct its date (a sidecar {}.json \
                     {{\"acquired_at\": \"2026-10-14T02:51:00\"}}, or its ACQUISITION_DATE or \
                     TIFFTAG_DATETIME)",
                    src.path.display(),
                    o.name,
                    now.date(),
                    src.path.display(),
                ),
            };
            tracing::warn!("skipped {}", s.message);
            skipped.push(s);
        }
        if !o.sources.sources.is_empty() {
            kept.push(o);
        }
    }
    kept
}

/// Takes the files of `o` that `leave_out` picks out of it, in order; the others stay.
fn take_files(
    o: &mut Observation,
    mut leave_out: impl FnMut(&crate::ingest::ImageSource) -> bool,
) -> Vec<crate::ingest::ImageSource> {
    let (out, kept) = std::mem::take(&mut o.sources.sources)
        .into_iter()
        .partition(|s| leave_out(s));
    o.sources.sources = kept;
    out
}

/// Drops every after file acquired before all of the before imagery — the dates given the wrong
/// way round, which compared would read every new building as one torn down — and names it in
/// `skipped` (kind `older_than_before`): a whole observation, or one file of a mosaic whose other
/// files are newer (a stray old tile would otherwise date findings before their before date).
/// An after file acquired at the very time of a before file is the same acquisition (a copy, a
/// re-delivery, another processing of it): nothing can have changed between them, and compared
/// they would show the parcels as checked and clean; it is dropped and named too (kind
/// `same_time_as_before`). Undated files are kept.
pub fn drop_after_not_newer_than_before(
    before: &Observation,
    after: Vec<Observation>,
    skipped: &mut Vec<Skipped>,
) -> Vec<Observation> {
    let time = |s: &crate::ingest::ImageSource| s.info.acquired.as_ref().map(|a| a.time);
    let before_times: Vec<NaiveDateTime> = before.sources.sources.iter().filter_map(time).collect();
    let Some(first) = before_times.iter().min().copied() else {
        return after;
    };
    let same_time = |d: NaiveDateTime| before_times.contains(&d);
    let mut kept = Vec::with_capacity(after.len());
    for mut o in after {
        let (newer, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut o.sources.sources)
            .into_iter()
            .partition(|s| time(s).is_none_or(|d| d >= first && !same_time(d)));
        if newer.is_empty() {
            let latest = dropped.iter().filter_map(time).max();
            let when = latest.map_or_else(String::new, |d| d.to_string());
            let s = if dropped.iter().filter_map(time).all(same_time) {
                Skipped {
                    what: o.name.clone(),
                    kind: "same_time_as_before".into(),
                    message: format!(
                        "after observation '{}' ({when}) was acquired at the very time of before \
                         imagery: it is the same acquisition (a copy or another delivery of it), \
                         in which nothing can have changed; not compared — give imagery of a \
                         later date as after",
                        o.name
                    ),
                }
            } else {
                Skipped {
                    what: o.name.clone(),
                    kind: "older_than_before".into(),
                    message: format!(
                        "after observation '{}' ({when}) was acquired before all of the before \
                         imagery ({first} and later): not compared; the dates look swapped, give \
                         the older imagery as before",
                        o.name
                    ),
                }
            };
            tracing::warn!("skipped {}", s.message);
            skipped.push(s);
            continue;
        }
        for src in &dropped {
            let Some(d) = time(src) else { continue };
            let s = if same_time(d) {
                Skipped {
                    what: src.path.display().to_string(),
                    kind: "same_time_as_before".into(),
                    message: format!(
                        "{}: after imagery of observation '{}' acquired {d}, the very time of \
                         before imagery: the same acquisition, in which nothing can have \
                         changed; not compared — the rest of the observation is newer, check \
                         this file's date or leave it out",
                        src.path.display(),
                        o.name,
                    ),
                }
            } else {
                Skipped {
                    what: src.path.display().to_string(),
                    kind: "older_than_before".into(),
                    message: format!(
                        "{}: after imagery of observation '{}' acquired {d}, before all of the \
                         before imagery ({first} and later): not compared; the rest of the \
                         observation is newer — move this file to the before imagery or check \
                         its date",
                        src.path.display(),
                        o.name,
                    ),
                }
            };
            tracing::warn!("skipped {}", s.message);
            skipped.push(s);
        }
        o.sources.sources = newer;
        kept.push(o);
    }
    kept
}

/// Drops every before file acquired after all of the after imagery — a newer scene put among the
/// before imagery, which compared would date findings' before imagery after their after imagery
/// and read every change backwards — and names it in `skipped` (kind `newer_than_after`). Run
/// after [`drop_after_not_newer_than_before`], so that a before file no newer than some after
/// file is always kept. Undated files are kept.
pub fn drop_before_newer_than_after(
    before: &mut Observation,
    after: &[Observation],
    now: NaiveDateTime,
    skipped: &mut Vec<Skipped>,
) {
    let time = |s: &crate::ingest::ImageSource| s.info.acquired.as_ref().map(|a| a.time);
    let Some(last) = after
        .iter()
        .flat_map(|o| &o.sources.sources)
        .filter_map(time)
        .max()
    else {
        return;
    };
    let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut before.sources.sources)
        .into_iter()
        .partition(|s| time(s).is_none_or(|d| d <= last));
    for src in &dropped {
        let Some(d) = time(src) else { continue };
        // A date after the day of the run is a typo (a sidecar's year, a camera's clock), not
        // after imagery given as before.
        let what_to_do = if d > now + chrono::Duration::days(1) {
            format!(
                "that is after the day of this run ({}), so the date cannot be right: correct \
                 it (a sidecar {}.json {{\"acquired_at\": \"2026-04-12T02:51:00\"}}, or its \
                 ACQUISITION_DATE or TIFFTAG_DATETIME)",
                now.date(),
                src.path.display()
            )
        } else {
            "move this file to the after imagery or check its date".to_string()
        };
        let s = Skipped {
            what: src.path.display().to_string(),
            kind: "newer_than_after".into(),
            message: format!(
                "{}: before imagery acquired {d}, after all of the after imagery ({last} and \
                 earlier): not used as before, so that nothing is compared backwards — \
                 {what_to_do}",
                src.path.display(),
            ),
        };
        tracing::warn!("skipped {}", s.message);
        skipped.push(s);
    }
    before.sources.sources = kept;
}

/// Drops every after file older than some before file over the same ground — a scene of 20
/// October among the before imagery, a drone flight of 14 October over it and satellite tiles of
/// 1 November after: the drone's imagery compared with that scene would read every change there
/// backwards — and names it in `skipped` (kind `newer_than_after`) with the before files newer
/// than it; the rest of its observation and the other observations are compared with all of the
/// before imagery. (A scan compares every after observation with the same before imagery.) An
/// observation left without files is dropped. Ground is judged by the files' WGS84 bounds; a file
/// whose bounds are unknown is taken to meet every other. [`drop_before_newer_than_after`] runs
/// first: it leaves out the before files newer than all of the after imagery. Undated files are
/// kept.
pub fn drop_after_older_than_some_before(
    before: &Observation,
    after: Vec<Observation>,
    skipped: &mut Vec<Skipped>,
) -> Vec<Observation> {
    let time = |s: &crate::ingest::ImageSource| s.info.acquired.as_ref().map(|a| a.time);
    let bounds =
        |s: &crate::ingest::ImageSource| s.info.footprint.as_ref().and_then(|f| f.wgs84_bounds);
    let meet = |a: &crate::ingest::ImageSource, b: &crate::ingest::ImageSource| match (
        bounds(a),
        bounds(b),
    ) {
        (Some(x), Some(y)) => x.intersection(&y).is_some(),
        _ => true,
    };
    // The before files newer than `f` over its ground.
    let newer = |f: &crate::ingest::ImageSource| -> Vec<String> {
        let Some(after_time) = time(f) else {
            return Vec::new();
        };
        before
            .sources
            .sources
            .iter()
            .filter_map(|b| {
                let t = time(b).filter(|t| *t > after_time && meet(f, b))?;
                Some(format!("{} ({t})", b.path.display()))
            })
            .collect()
    };
    let mut kept = Vec::with_capacity(after.len());
    for mut o in after {
        let left_out = take_files(&mut o, |f| !newer(f).is_empty());
        let rest = if o.sources.sources.is_empty() {
            format!("nor is observation '{}', which has no other file", o.name)
        } else {
            format!("the rest of observation '{}' is", o.name)
        };
        for f in left_out {
            let newer = newer(&f);
            let when = time(&f).map_or_else(String::new, |t| t.to_string());
            let s = Skipped {
                what: f.path.display().to_string(),
                kind: "newer_than_after".into(),
                message: format!(
                    "{}: after imagery of observation '{}', acquired {when}, is older than before \
                     imagery over the same ground, {}: compared with it, every change there would \
                     be read backwards, so this file is not compared ({rest}) — check the before \
                     file's date, move it to the after imagery, or scan this file in a run of its \
                     own with before imagery older than it",
                    f.path.display(),
                    o.name,
                    newer.join(", "),
                ),
            };
            tracing::warn!("skipped {}", s.message);
            skipped.push(s);
        }
        if !o.sources.sources.is_empty() {
            kept.push(o);
        }
    }
    kept
}

/// The after files with a band whose role no file states, where the before imagery has near
/// infrared and their observation has none: such a band is most likely it (a description lost in
/// a copy), and detection without it tells vegetation from other covers worse, so each file is
/// named as an input only partly used (kind `unused_band`, logged as a warning).
pub fn unused_bands(before: &Observation, after: &[Observation]) -> Vec<Skipped> {
    if !before.sources.roles.contains(&BandRole::Nir) {
        return Vec::new();
    }
    let mut skipped = Vec::new();
    for o in after
        .iter()
        .filter(|o| !o.sources.roles.contains(&BandRole::Nir))
    {
        for src in &o.sources.sources {
            let unknown: Vec<String> = src
                .info
                .bands
                .iter()
                .filter(|b| b.role == BandRole::Unknown)
                .map(|b| b.index.to_string())
                .collect();
            if unknown.is_empty() {
                continue;
            }
            let message = format!(
                "{}: band(s) {} have no role (no description, colour interpretation or \
                     sidecar says what they measure), so after observation '{}' is compared \
                     without near infrared, which the before imagery has; if one is near \
                     infrared, name the bands in a sidecar {}.json ({{\"bands\": \
                     [\"blue\", \"green\", \"red\", \"nir\"]}}), with --bands-after or \
                     [imagery] bands_after",
                src.path.display(),
                unknown.join(", "),
                o.name,
                src.path.display()
            );
            tracing::warn!("{message}");
            skipped.push(Skipped {
                what: src.path.display().to_string(),
                kind: "unused_band".into(),
                message,
            });
        }
    }
    skipped
}

/// Catalogues the rasters of one date; unusable files become `Skipped` entries.
pub fn catalog_date(
    paths: &[PathBuf],
    bands: Option<Vec<BandRole>>,
    defer_hash: bool,
) -> (Vec<CatalogEntry>, Vec<Skipped>) {
    let entries = catalog_paths(
        paths,
        &CatalogOptions {
            bands,
            defer_hash,
            ..Default::default()
        },
    );
    let skipped = entries
        .iter()
        .filter(|e| !e.is_usable())
        .map(|e| {
            let p = e
                .problem
                .clone()
                .unwrap_or_else(|| crate::ingest::catalog::Problem {
                    kind: "unusable".into(),
                    message: format!("{}: unusable", e.path.display()),
                });
            Skipped {
                what: e.path.display().to_string(),
                kind: p.kind,
                message: p.message,
            }
        })
        .collect();
    (entries, skipped)
}

/// The union of an observation's footprints in the grid's CRS.
pub fn observation_bounds(
    obs: &Observation,
    grid: &GridDef,
) -> Result<Option<Bounds>, IngestError> {
    let mut out: Option<Bounds> = None;
    for s in &obs.sources.sources {
        let b = bounds_in_crs(&s.info, &s.path, &grid.crs)?;
        out = Some(out.map_or(b, |o| o.union(&b)));
    }
    Ok(out)
}

/// The acquisition times of an observation's files with their footprints in `grid_crs` (files
/// without a date, or whose footprint cannot be placed, are left out).
pub fn dated_footprints(obs: &Observation, grid_crs: &str) -> Vec<(Bounds, NaiveDateTime)> {
    obs.sources
        .sources
        .iter()
        .filter_map(|s| {
            let t = s.info.acquired.as_ref()?.time;
            let b = bounds_in_crs(&s.info, &s.path, grid_crs).ok()?;
            Some((b, t))
        })
        .collect()
}

/// When the imagery under `area` was taken: the latest acquisition time among the files whose
/// footprints overlap it, so that a finding on a tile of 12 April is not dated by another tile's
/// 2 May; `None` when no dated file does.
pub fn acquired_over(
    footprints: &[(Bounds, NaiveDateTime)],
    area: &Bounds,
) -> Option<NaiveDateTime> {
    footprints
        .iter()
        .filter(|(b, _)| b.intersection(area).is_some())
        .map(|(_, t)| *t)
        .max()
}

/// The bounds of a polygon's bounding box (`None` for an empty one).
pub fn bounds_of(p: &geo::MultiPolygon<f64>) -> Option<Bounds> {
    use geo::BoundingRect;
    let r = p.bounding_rect()?;
    Some(Bounds::from_corners(
        r.min().x,
        r.min().y,
        r.max().x,
        r.max().y,
    ))
}

/// Groups usable entries into observations, refusing an empty date.
pub fn observations_of(
    entries: &[CatalogEntry],
    date: &str,
) -> Result<Vec<Observation>, PipelineError> {
    let obs = group_observations(entries);
    if obs.is_empty() {
        return Err(PipelineError::Inputs(format!(
            "no usable {date} imagery (every file was skipped; see the reasons above)"
        )));
    }
    Ok(obs)
}

/// Reads one date of a cell for [`crate::detect::detect_cropped`]: only the part of the cell's
/// window the imagery covers, with the margin detection crops with, unless that part is most of
/// the window (`CellReader::read_covered` with the detector's `CROP_MARGIN` and `CROP_MAX_SHARE`).
pub fn read_for_detection(
    reader: &mut crate::ingest::CellReader,
    cell: &crate::grid::Cell,
) -> Result<crate::image::CellImage, IngestError> {
    use crate::detect::{CROP_MARGIN, CROP_MAX_SHARE};
    reader.read_covered(&cell.id, &cell.read, CROP_MARGIN, CROP_MAX_SHARE)
}

/// Creates the output directory.
pub fn ensure_dir(dir: &Path) -> Result<(), PipelineError> {
    std::fs::create_dir_all(dir).map_err(|source| {
        PipelineError::Export(crate::export::ExportError::Io {
            path: dir.to_path_buf(),
            source,
        })
    })
}

/// A named point in a cell's work where the robustness tests make landwatch panic, as a bug
/// would: when the environment variable `LANDWATCH_PANIC_AT` is `name:cell` and `cell` is the
/// cell's id or its row and column (`r0001-c0002`, the id without the grid's fingerprint), this
/// panics. Does nothing otherwise.
#[allow(clippy::panic)] // Panicking on request is what it is for.
pub fn panic_point(name: &str, cell_id: &str) {
    let Ok(v) = std::env::var("LANDWATCH_PANIC_AT") else {
        return;
    };
    if let Some((n, c)) = v.split_once(':') {
        if n == name && (cell_id == c || cell_id.ends_with(&format!("-{c}"))) {
            panic!("LANDWATCH_PANIC_AT={v} (robustness test)");
        }
    }
}

/// A named point in a run where the crash-safety tests kill the process: when the environment
/// variable `LANDWATCH_CRASH_AT` equals `name`, the process sends itself SIGKILL right here (no
/// destructors, no flushing: the same as a power cut or `kill -9` at this moment). Does nothing
/// otherwise.
pub fn crash_point(name: &str) {
    if std::env::var("LANDWATCH_CRASH_AT").is_ok_and(|v| v == name) {
        tracing::warn!("LANDWATCH_CRASH_AT={name}: killing this process now (crash test)");
        // SAFETY: kill(2) on our own pid with a constant signal number touches no memory of
        // ours; SIGKILL cannot be caught, so no handler runs. (No `kill` binary is needed, which
        // a bare machine may lack.)
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        // Delivery to oneself is immediate; never return into the run regardless.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagery_under_an_area_is_dated_by_the_files_there() {
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 4, d)
                .unwrap()
                .and_hms_opt(2, 48, 0)
                .unwrap()
        };
        // Two tiles side by side, of the 12th and the 30th.
        let tiles = [
            (Bounds::from_corners(0.0, 0.0, 100.0, 100.0), day(12)),
            (Bounds::from_corners(100.0, 0.0, 200.0, 100.0), day(30)),
        ];
        let at = |x0, x1| acquired_over(&tiles, &Bounds::from_corners(x0, 10.0, x1, 20.0));
        assert_eq!(at(10.0, 20.0), Some(day(12)));
        assert_eq!(at(150.0, 160.0), Some(day(30)));
        // Across the seam, the later; a touch of an edge is no overlap; outside, none.
        assert_eq!(at(90.0, 110.0), Some(day(30)));
        assert_eq!(at(80.0, 100.0), Some(day(12)));
        assert_eq!(at(300.0, 310.0), None);
        let square =
            geo::MultiPolygon::new(vec![geo::Rect::new((1.0, 2.0), (3.0, 5.0)).to_polygon()]);
        let b = bounds_of(&square).unwrap();
        assert_eq!((b.min_x, b.min_y, b.max_x, b.max_y), (1.0, 2.0, 3.0, 5.0));
        assert!(bounds_of(&geo::MultiPolygon::new(vec![])).is_none());
    }
}
