//! `landwatch detect`: catalogue → grid → detect → vectorize over the overlap of two dates,
//! writing the change mask, the change score, the change regions and a summary.

use super::{
    catalog_date, ensure_dir, observation_bounds, observations_of, PipelineError, Skipped,
};
use crate::bands::BandRole;
use crate::config::Config;
use crate::detect::{CellStats, Detector, MASK_UNOBSERVED};
use crate::export::geojson::{self, ToWgs84};
use crate::export::raster::{GeoTiffSpec, GeoTiffWriter};
use crate::grid::{Cell, GridDef};
use crate::ingest::plan::{
    crs_units_in_metres, grid_of_raster, plan_grid, regrid_to_pixel_size_m, GridRequest,
};
use crate::ingest::{CellReader, Observation};
use crate::overlay::AreaMeasure;
use crate::vectorize::{cell_pieces, merge_pieces, EdgeStrips, MergedRegion, Piece};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// Square metres per mu (亩).
pub const M2_PER_MU: f64 = 10_000.0 / 15.0;

/// What to run.
#[derive(Clone)]
pub struct DetectJob {
    /// Before imagery (files or directories).
    pub before: Vec<PathBuf>,
    /// After imagery (files or directories; one observation).
    pub after: Vec<PathBuf>,
    /// Band roles of the before imagery, overriding the files.
    pub bands_before: Option<Vec<BandRole>>,
    /// Band roles of the after imagery, overriding the files.
    pub bands_after: Option<Vec<BandRole>>,
    /// The configuration (its `[grid]` sets the analysis grid; without one, the before image's
    /// own pixel grid is used).
    pub config: Option<Config>,
    /// Output directory.
    pub out: PathBuf,
    /// The detector.
    pub detector: Arc<dyn Detector>,
}

/// One change region as reported.
#[derive(Debug, Clone, Serialize)]
pub struct RegionReport {
    /// 1-based id within the run.
    pub region_id: usize,
    /// Transition name.
    pub transition: String,
    /// Whether the transition is a land-use change (else a vegetation cycle).
    pub land_use_change: bool,
    /// Area in m².
    pub area_m2: f64,
    /// Area in mu.
    pub area_mu: f64,
    /// Pixels.
    pub pixels: u64,
    /// Mean change score.
    pub mean_score: f64,
    /// Largest change score.
    pub max_score: f64,
    /// IR-MAD probability of no change at the region's mean chi-square.
    pub irmad_p_no_change: f64,
    /// Confidence 0–1.
    pub confidence: f64,
    /// Fraction of the region and its surroundings observed on both dates.
    pub valid_fraction: f64,
    /// Fraction of pixels agreeing with the region's transition.
    pub purity: f64,
    /// Majority cover before.
    pub before_cover: String,
    /// Majority cover after.
    pub after_cover: String,
    /// Cells the region spans.
    pub cells: Vec<String>,
}

/// The run summary (`summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct DetectReport {
    /// Software version.
    pub version: String,
    /// The detector's name.
    pub detector: String,
    /// What the detector is ([`Detector::describe`]: for a learned model its name, version,
    /// licence, training data and the model file's SHA-256).
    pub detector_info: Value,
    /// The analysis grid.
    pub grid: GridDef,
    /// Cells processed.
    pub cells: usize,
    /// Cells outside the overlap of the two dates (written as unobserved).
    pub cells_outside_overlap: usize,
    /// Pixels observed on both dates.
    pub observed_px: u64,
    /// Pixels not observed (no data, cloud, shadow, outside the overlap).
    pub unobserved_px: u64,
    /// Pixels of land-use change.
    pub changed_px: u64,
    /// Pixels of vegetation-cycle change.
    pub cycle_px: u64,
    /// Changed fraction of the observed area.
    pub changed_fraction: f64,
    /// Regions per transition.
    pub regions_by_transition: BTreeMap<String, usize>,
    /// Changed area per transition, m².
    pub area_m2_by_transition: BTreeMap<String, f64>,
    /// Thresholds used per cell (min, median, max).
    pub threshold: (f32, f32, f32),
    /// Cells where a shift was removed, with the shift.
    pub shifts: Vec<(String, f32, f32)>,
    /// Normalisation methods used, with counts of cells.
    pub normalization: BTreeMap<String, usize>,
    /// Per-cell numbers (threshold, normalisation, shift, noise).
    pub cell_stats: Vec<(String, CellStats)>,
    /// Inputs and cells that were skipped.
    pub skipped: Vec<Skipped>,
    /// Files written.
    pub outputs: Vec<PathBuf>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Regions.
    pub regions: Vec<RegionReport>,
}

/// Area of a pixel of the grid in m² (projected metric CRS; for a geographic CRS, a pixel at
/// the grid's middle latitude).
pub fn pixel_area_m2(grid: &GridDef) -> f64 {
    match crate::ingest::srs::parse_crs(&grid.crs).map(|s| crate::ingest::srs::describe(&s)) {
        Ok(info) if !info.geographic => {
            let u = info.linear_unit_m.unwrap_or(1.0);
            grid.pixel_area() * u * u
        }
        _ => {
            // A degree's length on the ellipsoid (GRS80/WGS84; CGCS2000's is the same to well
            // below a millimetre) along the meridian and along the parallel: a sphere's, or the
            // equator's length of a degree of latitude, is some 0.4 % off at 31° N.
            let (a, e2) = (6_378_137.0, 0.006_694_380_022_9);
            let lat = (grid.origin_y - grid.pixel_height * grid.height as f64 / 2.0).to_radians();
            let w = (1.0 - e2 * lat.sin().powi(2)).sqrt();
            let per_degree = std::f64::consts::PI / 180.0;
            let m_per_degree_lat = a * (1.0 - e2) / w.powi(3) * per_degree;
            let m_per_degree_lon = a * lat.cos() / w * per_degree;
            grid.pixel_width * m_per_degree_lon * grid.pixel_height * m_per_degree_lat
        }
    }
}

/// How areas of polygons in the grid's CRS become m²: planar in a projected CRS, on the
/// ellipsoid in a geographic one (where no one factor holds over the whole grid).
pub fn area_measure(grid: &GridDef) -> AreaMeasure {
    match crate::ingest::srs::parse_crs(&grid.crs).map(|s| crate::ingest::srs::describe(&s)) {
        Ok(info) if !info.geographic => AreaMeasure::Planar {
            m2_per_unit2: pixel_area_m2(grid) / grid.pixel_area().max(1e-300),
        },
        _ => AreaMeasure::Geodesic,
    }
}

/// Output block size: the largest power of two up to 512 that divides the cell size, so every
/// cell writes whole tiles.
pub(crate) fn block_size_for(cell: usize) -> usize {
    [512, 256, 128, 64, 32, 16]
        .into_iter()
        .find(|b| cell % b == 0)
        .unwrap_or(16)
}

struct CellOutcome {
    cell: Cell,
    layers: Option<Vec<Vec<u8>>>,
    mask: Vec<u8>,
    score: Vec<f32>,
    pieces: Vec<Piece>,
    strips: EdgeStrips,
    stats: Option<CellStats>,
    error: Option<Skipped>,
}

/// Runs detection over the overlap of the two dates.
pub fn run_detect(job: &DetectJob) -> Result<DetectReport, PipelineError> {
    let started = std::time::Instant::now();
    crate::ingest::init_gdal();
    let cfg = job.config.clone().unwrap_or_default();
    let (before_entries, mut skipped) = catalog_date(
        &job.before,
        job.bands_before.clone().or(cfg.band_override(false)),
        false,
    );
    let (after_entries, s2) = catalog_date(
        &job.after,
        job.bands_after.clone().or(cfg.band_override(true)),
        false,
    );
    skipped.extend(s2);
    let after_entries =
        super::drop_files_of_both_dates(&before_entries, after_entries, &mut skipped);
    for s in &skipped {
        tracing::warn!("skipped {}", s.message);
    }
    let mut before = observations_of(&before_entries, "before")?;
    let after = observations_of(&after_entries, "after")?;
    let after = super::in_time_order(
        &mut before[0],
        after,
        chrono::Local::now().naive_local(),
        &mut skipped,
    );
    if after.is_empty() {
        return Err(PipelineError::Inputs(
            "no usable after imagery (every observation was skipped; see the reasons above)".into(),
        ));
    }
    if before.len() > 1 || after.len() > 1 {
        let names = |o: &[Observation]| {
            o.iter()
                .map(|x| x.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(PipelineError::Inputs(format!(
            "detect compares one observation with one: the before files form [{}] and the after files [{}] \
             (different sensors or bands); run detect once per pair, or use scan",
            names(&before),
            names(&after)
        )));
    }
    let (before, after) = (&before[0], &after[0]);
    job.detector
        .check_bands(&before.sources.roles, &after.sources.roles)
        .map_err(PipelineError::Inputs)?;
    skipped.extend(super::unused_bands(before, std::slice::from_ref(after)));

    // A learned detector's ground resolution sets the grid's pixel size, unless the
    // configuration pins `[grid] pixel_size` (then it wins, with a warning if they differ).
    let model_px_m = job.detector.pixel_size_m();
    let grid = match job.config.as_ref().filter(|c| c.grid.is_pinned()) {
        Some(c) => {
            let all: Vec<_> = before_entries.iter().chain(&after_entries).collect();
            plan_grid(
                &GridRequest {
                    crs: c.grid.crs.clone(),
                    pixel_size: c.grid.pixel_size,
                    pixel_size_m: model_px_m,
                    cell_size: c.grid.cell_size,
                    halo: c.grid.halo,
                    origin: c.grid.origin.map(|o| (o[0], o[1])),
                    parcels: c.parcels.path.as_ref().map(|p| c.resolve(p)),
                    parcels_layer: c.parcels.layer.clone(),
                    parcels_crs: c.parcels.crs.clone(),
                },
                &all,
            )?
        }
        None => {
            // The before image's own pixel lattice, grown to cover every before tile.
            let first = &before.sources.sources[0];
            let mut g =
                grid_of_raster(&first.info, &first.path, cfg.grid.cell_size, cfg.grid.halo)?;
            if let Some(b) = observation_bounds(before, &g)? {
                let (c0, r0) = g.world_to_pixel(b.min_x, b.max_y);
                let (c1, r1) = g.world_to_pixel(b.max_x, b.min_y);
                let (c0, r0) = ((c0 + 1e-6).floor().min(0.0), (r0 + 1e-6).floor().min(0.0));
                let (ox, oy) = g.pixel_to_world(c0, r0);
                g.origin_x = ox;
                g.origin_y = oy;
                g.width = ((c1 - 1e-6).ceil() - c0).max(1.0) as usize;
                g.height = ((r1 - 1e-6).ceil() - r0).max(1.0) as usize;
            }
            match model_px_m {
                Some(m) => regrid_to_pixel_size_m(&g, m)?,
                None => g,
            }
        }
    };
    if let (Some(m), Some(px)) = (model_px_m, crs_units_in_metres(&grid.crs, grid.pixel_width)) {
        if ((px - m) / m).abs() > 0.01 {
            tracing::warn!(
                "the detector expects {m} m pixels but [grid] pixel_size gives {px:.3} m; the configuration wins"
            );
        }
    }
    let overlap = match (
        observation_bounds(before, &grid)?,
        observation_bounds(after, &grid)?,
    ) {
        (Some(a), Some(b)) => a.intersection(&b),
        _ => None,
    };
    let Some(overlap) = overlap else {
        return Err(PipelineError::Inputs(
            "the before and after imagery do not overlap; check their footprints with `landwatch catalog`".into(),
        ));
    };
    ensure_dir(&job.out)?;
    let pixel_area = pixel_area_m2(&grid);
    let cells = grid.cells();
    let in_overlap = |c: &Cell| grid.window_bounds(&c.core).intersection(&overlap).is_some();
    let cells_outside = cells.iter().filter(|c| !in_overlap(c)).count();

    let block = block_size_for(grid.cell_size);
    let mut mask_spec = GeoTiffSpec::new(&grid.crs, grid.geo_transform(), grid.width, grid.height);
    mask_spec.block_size = block;
    mask_spec.nodata = Some(MASK_UNOBSERVED as f64);
    mask_spec.band_descriptions = vec!["change: 0 none, 1 land-use change, 255 unobserved".into()];
    mask_spec.metadata = vec![("LANDWATCH_VERSION".into(), crate::VERSION.into())];
    let mut score_spec = mask_spec.clone();
    score_spec.nodata = Some(f64::NAN);
    score_spec.predictor = 3;
    score_spec.band_descriptions = vec![job.detector.score_description()];
    let mask_path = job.out.join("change_mask.tif");
    let score_path = job.out.join("change_score.tif");
    let mut mask_w = GeoTiffWriter::create::<u8>(&mask_path, &mask_spec, 1)?;
    let mut score_w = GeoTiffWriter::create::<f32>(&score_path, &score_spec, 1)?;
    let debug_path = job.out.join("debug_layers.tif");
    let mut debug_w = if cfg.detect.debug_layers {
        let mut spec = mask_spec.clone();
        spec.nodata = None;
        spec.band_descriptions = vec![
            "unobserved: 0 observed, 1 no data, 2 cloud/haze, 3 shadow".into(),
            "before cover (0 vegetation, 1 dry vegetation, 2 bare, 3 built, 4 water, 5 cloud, 6 unknown)".into(),
            "after cover".into(),
            "transition (landwatch Transition order; 255 none)".into(),
        ];
        Some(GeoTiffWriter::create::<u8>(&debug_path, &spec, 4)?)
    } else {
        None
    };

    let detector = job.detector.clone();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut strips: HashMap<(usize, usize), EdgeStrips> = HashMap::new();
    let mut cell_stats: Vec<(String, CellStats)> = Vec::new();
    let chunk = (rayon::current_num_threads() * 2).max(1);
    let total = cells.len();
    for (ci, batch) in cells.chunks(chunk).enumerate() {
        let outcomes: Vec<CellOutcome> = batch
            .par_iter()
            .map_init(
                || {
                    (
                        CellReader::new(&grid, &before.sources),
                        CellReader::new(&grid, &after.sources),
                    )
                },
                |(rb, ra), cell| {
                    if !in_overlap(cell) {
                        return empty_outcome(cell, None);
                    }
                    process_cell(cell, &grid, rb, ra, detector.as_ref(), pixel_area)
                },
            )
            .collect();
        for o in outcomes {
            let (w, h) = (o.cell.core.width, o.cell.core.height);
            mask_w.write_window(
                o.cell.core.x as usize,
                o.cell.core.y as usize,
                w,
                h,
                &[&o.mask],
            )?;
            score_w.write_window(
                o.cell.core.x as usize,
                o.cell.core.y as usize,
                w,
                h,
                &[&o.score],
            )?;
            if let Some(dw) = debug_w.as_mut() {
                let blank = vec![255u8; w * h];
                let l: Vec<&[u8]> = match &o.layers {
                    Some(l) => l.iter().map(|v| v.as_slice()).collect(),
                    None => vec![&blank; 4],
                };
                dw.write_window(o.cell.core.x as usize, o.cell.core.y as usize, w, h, &l)?;
            }
            if let Some(e) = o.error {
                tracing::warn!("{}", e.message);
                skipped.push(e);
            }
            if let Some(s) = o.stats {
                cell_stats.push((o.cell.id.clone(), s));
            }
            strips.insert((o.cell.row, o.cell.col), o.strips);
            pieces.extend(o.pieces);
        }
        tracing::info!(
            "detect: {} of {} cells",
            ((ci + 1) * chunk).min(total),
            total
        );
    }
    mask_w.finish()?;
    score_w.finish()?;
    if let Some(dw) = debug_w {
        dw.finish()?;
    }

    let merged = merge_pieces(pieces, &strips, grid.pixel_area());
    let median_thr = {
        let mut t: Vec<f32> = cell_stats.iter().map(|(_, s)| s.threshold).collect();
        t.sort_by(|a, b| a.total_cmp(b));
        if t.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (t[0], t[t.len() / 2], t[t.len() - 1])
        }
    };
    let bands = cell_stats.first().map(|(_, s)| s.bands.len()).unwrap_or(3);
    let regions = report_regions(
        &merged,
        &grid,
        pixel_area,
        median_thr.1,
        &job.detector.name(),
        bands,
        &cfg,
    );
    let geojson_path = job.out.join("changes.geojson");
    write_changes_geojson(
        &geojson_path,
        &merged,
        &regions,
        &grid,
        &job.detector.name(),
    )?;

    let mut report = DetectReport {
        version: crate::VERSION.to_string(),
        detector: job.detector.name(),
        detector_info: job.detector.describe(),
        grid: grid.clone(),
        cells: total,
        cells_outside_overlap: cells_outside,
        observed_px: 0,
        unobserved_px: 0,
        changed_px: 0,
        cycle_px: 0,
        changed_fraction: 0.0,
        regions_by_transition: BTreeMap::new(),
        area_m2_by_transition: BTreeMap::new(),
        threshold: median_thr,
        shifts: Vec::new(),
        normalization: BTreeMap::new(),
        cell_stats: Vec::new(),
        skipped,
        outputs: vec![
            mask_path,
            score_path,
            geojson_path,
            job.out.join("summary.json"),
        ],
        seconds: 0.0,
        regions,
    };
    for (id, s) in &cell_stats {
        report.observed_px += s.observed_px;
        report.unobserved_px += s.unobserved_px;
        report.changed_px += s.changed_px;
        report.cycle_px += s.cycle_px;
        *report
            .normalization
            .entry(s.normalization.clone())
            .or_default() += 1;
        if let (true, Some((dx, dy, _))) = (s.shift_applied, s.shift) {
            report.shifts.push((id.clone(), dx, dy));
        }
    }
    report.unobserved_px += (grid.width * grid.height) as u64
        - report.observed_px
        - cell_stats.iter().map(|(_, s)| s.unobserved_px).sum::<u64>();
    report.cell_stats = cell_stats;
    report.changed_fraction = report.changed_px as f64 / report.observed_px.max(1) as f64;
    for r in &report.regions {
        *report
            .regions_by_transition
            .entry(r.transition.clone())
            .or_default() += 1;
        *report
            .area_m2_by_transition
            .entry(r.transition.clone())
            .or_default() += r.area_m2;
    }
    report.seconds = started.elapsed().as_secs_f64();
    let text =
        serde_json::to_string_pretty(&report).map_err(|e| PipelineError::Inputs(e.to_string()))?;
    crate::export::write_atomic(&job.out.join("summary.json"), text.as_bytes())?;
    Ok(report)
}

fn empty_outcome(cell: &Cell, error: Option<Skipped>) -> CellOutcome {
    let n = cell.core.width * cell.core.height;
    CellOutcome {
        cell: cell.clone(),
        layers: None,
        mask: vec![MASK_UNOBSERVED; n],
        score: vec![f32::NAN; n],
        pieces: Vec::new(),
        strips: EdgeStrips::default(),
        stats: None,
        error,
    }
}

fn process_cell(
    cell: &Cell,
    grid: &GridDef,
    rb: &mut Result<CellReader, crate::ingest::IngestError>,
    ra: &mut Result<CellReader, crate::ingest::IngestError>,
    detector: &dyn Detector,
    pixel_area: f64,
) -> CellOutcome {
    let fail = |kind: &str, message: String| {
        empty_outcome(
            cell,
            Some(Skipped {
                what: cell.id.clone(),
                kind: kind.to_string(),
                message,
            }),
        )
    };
    let (rb, ra) = match (rb.as_mut(), ra.as_mut()) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(e), _) | (_, Err(e)) => return fail("cell_read", format!("cell {}: {e}", cell.id)),
    };
    let before = match super::read_for_detection(rb, cell) {
        Ok(i) => i,
        Err(e) => {
            return fail(
                "cell_read",
                format!("{e} (before date); the cell is reported unobserved"),
            )
        }
    };
    let after = match super::read_for_detection(ra, cell) {
        Ok(i) => i,
        Err(e) => {
            return fail(
                "cell_read",
                format!("{e} (after date); the cell is reported unobserved"),
            )
        }
    };
    let result = match crate::detect::detect_cropped(detector, cell, &before, &after, pixel_area) {
        Ok(r) => r,
        Err(e) => return fail("detect", e.to_string()),
    };
    let pieces = cell_pieces(&result.labels, &result.regions, grid, cell);
    let layers = result.layers.as_ref().map(|l| {
        [
            &l.unobserved,
            &l.cover_before,
            &l.cover_after,
            &l.transition,
        ]
        .iter()
        .map(|a| a.iter().copied().collect())
        .collect()
    });
    CellOutcome {
        cell: cell.clone(),
        layers,
        mask: result.mask.iter().copied().collect(),
        score: result.score.iter().copied().collect(),
        pieces,
        strips: EdgeStrips::of(&result.labels),
        stats: Some(result.stats),
        error: None,
    }
}

fn report_regions(
    merged: &[MergedRegion],
    grid: &GridDef,
    pixel_area: f64,
    threshold: f32,
    _detector: &str,
    bands: usize,
    cfg: &Config,
) -> Vec<RegionReport> {
    merged
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = &m.stats;
            let (bc, ac) = s.covers();
            let min_px = cfg.detect.min_area(s.transition) / pixel_area;
            let area = area_measure(grid).m2(&m.polygon);
            let mean_chi2 = s.chi2_sum / s.pixels.max(1) as f64;
            RegionReport {
                region_id: i + 1,
                transition: s.transition.name().to_string(),
                land_use_change: s.transition.is_land_use_change(),
                area_m2: round2(area),
                area_mu: round2(area / M2_PER_MU),
                pixels: s.pixels,
                mean_score: round2(s.mean_score()),
                max_score: round2(s.score_max as f64),
                irmad_p_no_change: crate::detect::linalg::chi2_sf(mean_chi2, bands),
                confidence: s.confidence(threshold, min_px),
                valid_fraction: round3(s.valid_fraction()),
                purity: round3(s.purity()),
                before_cover: bc.name().to_string(),
                after_cover: ac.name().to_string(),
                cells: m.cells.clone(),
            }
        })
        .collect()
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn write_changes_geojson(
    path: &std::path::Path,
    merged: &[MergedRegion],
    regions: &[RegionReport],
    grid: &GridDef,
    detector: &str,
) -> Result<(), PipelineError> {
    let t = ToWgs84::new(&grid.crs).map_err(|e| PipelineError::Inputs(format!("grid CRS: {e}")))?;
    let mut features = Vec::with_capacity(merged.len());
    for (m, r) in merged.iter().zip(regions) {
        let g = t
            .multi_polygon(&m.polygon)
            .map_err(|e| PipelineError::Inputs(format!("region {}: {e}", r.region_id)))?;
        let mut props = match serde_json::to_value(r) {
            Ok(Value::Object(o)) => o,
            _ => Map::new(),
        };
        props.insert("detector".into(), json!(detector));
        features.push(geojson::feature(
            Some(&geo::Geometry::MultiPolygon(g)),
            props,
        ));
    }
    let mut members = Map::new();
    members.insert("name".into(), json!("landwatch change regions"));
    members.insert(
        "working_crs".into(),
        json!(if grid.crs.len() < 40 {
            grid.crs.clone()
        } else {
            "WKT".into()
        }),
    );
    geojson::write_feature_collection(path, features, members)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid in degrees over 120.64–120.65° E, 31.16–31.17° N (CGCS2000), 100 × 100 pixels.
    fn degrees_grid() -> GridDef {
        GridDef {
            crs: "EPSG:4490".into(),
            origin_x: 120.64,
            origin_y: 31.17,
            pixel_width: 1e-4,
            pixel_height: 1e-4,
            cell_size: 1024,
            halo: 32,
            width: 100,
            height: 100,
        }
    }

    #[test]
    fn areas_on_a_grid_in_degrees_are_the_ellipsoid_s() {
        // The square's area on the ellipsoid, by SpatiaLite's ST_Area(geom, 1) (GDAL's ogr2ogr
        // -dialect sqlite): 1,057,050.17 m².
        let reference = 1_057_050.17;
        let grid = degrees_grid();
        let square = geo::MultiPolygon::new(vec![
            geo::Rect::new((120.64, 31.16), (120.65, 31.17)).to_polygon()
        ]);
        let measured = area_measure(&grid).m2(&square);
        assert!(
            (measured - reference).abs() < 0.01,
            "{measured} m², SpatiaLite says {reference}"
        );
        // The pixel at the middle latitude, times the pixels, is within a part in a million.
        let pixels = pixel_area_m2(&grid) * 10_000.0;
        assert!(
            (pixels / reference - 1.0).abs() < 1e-6,
            "{pixels} m² from pixels, {reference} on the ellipsoid"
        );
    }

    #[test]
    fn areas_on_a_projected_grid_are_planar_in_metres() {
        let grid = GridDef {
            crs: "EPSG:4549".into(),
            origin_x: 561_152.0,
            origin_y: 3_449_344.0,
            pixel_width: 0.5,
            pixel_height: 0.5,
            ..degrees_grid()
        };
        assert_eq!(
            area_measure(&grid),
            AreaMeasure::Planar { m2_per_unit2: 1.0 }
        );
        assert!((pixel_area_m2(&grid) - 0.25).abs() < 1e-12);
    }
}
