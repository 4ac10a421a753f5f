//! `landwatch synth`: a realistic before/after scene near Suzhou with exact ground truth.
//!
//! Our own generator, deterministic to the byte for a seed: satellite tiles of both dates, a
//! mis-registered drone orthophoto, parcels with control layers, permits, every injected change
//! with its kind, and a ready `landwatch.toml`.

pub mod model;
pub mod render;
pub mod rng;

use crate::export::geojson::{self, ToWgs84};
use crate::export::raster::{GeoTiffSpec, GeoTiffWriter};
use crate::export::vector::{write_vector, FieldKind, Value, VectorLayer};
use crate::export::{write_atomic, ExportError};
use crate::ingest::srs;
use geo::{Area, Geometry};
use model::{build_scene, Category, Scene, DRONE_CRS, DRONE_PIXEL_M, ORIGIN, PIXEL_M, SCENE_CRS};
use render::{render, PixelGrid, Shot};
use serde::Serialize;
use serde_json::{json, Map};
use std::path::{Path, PathBuf};

/// A failure while generating a scene.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Writing an output file failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A coordinate transformation failed.
    #[error("coordinate transformation: {0}")]
    Crs(String),
    /// The options cannot work.
    #[error("{0}")]
    Options(String),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Scene size in 0.5 m pixels per side.
    pub size: usize,
    /// Random seed.
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone, Serialize)]
pub struct SynthSummary {
    /// Output directory.
    pub out: PathBuf,
    /// Scene size in pixels per side.
    pub size_px: usize,
    /// Seed.
    pub seed: u64,
    /// Number of parcels.
    pub parcels: usize,
    /// Number of permits.
    pub permits: usize,
    /// Injected changes by category.
    pub truth_by_category: std::collections::BTreeMap<String, usize>,
    /// Every file written, relative to `out`.
    pub files: Vec<PathBuf>,
}

/// The acquisition-time metadata written into each image.
fn date_metadata(
    t: &chrono::NaiveDateTime,
    sensor_kind: &str,
    sensor: &str,
) -> Vec<(String, String)> {
    vec![
        (
            "TIFFTAG_DATETIME".into(),
            t.format("%Y:%m:%d %H:%M:%S").to_string(),
        ),
        (
            "ACQUISITION_DATE".into(),
            t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        ),
        ("SENSOR_KIND".into(), sensor_kind.into()),
        ("SENSOR".into(), sensor.into()),
    ]
}

/// The GeoPackage last-change timestamp pinned for byte-identical output.
const PINNED_TIMESTAMP: &str = "2026-10-20T00:00:00Z";

/// Scene sizes `generate` makes, pixels per side.
pub const SIZES: std::ops::RangeInclusive<usize> = 256..=40_000;

/// Refuses a scene size outside [`SIZES`] (before anything is written).
pub fn check_size(size: usize) -> Result<(), SynthError> {
    if SIZES.contains(&size) {
        return Ok(());
    }
    Err(SynthError::Options(format!(
        "--size must be between {} and {} pixels, got {size}",
        SIZES.start(),
        SIZES.end()
    )))
}

/// Generates a scene into `opts.out`.
pub fn generate(opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
    check_size(opts.size)?;
    crate::ingest::init_gdal();
    std::fs::create_dir_all(&opts.out).map_err(|source| ExportError::Io {
        path: opts.out.clone(),
        source,
    })?;
    let scene = build_scene(opts.size, opts.seed);
    let mut files = Vec::new();

    // Satellite imagery: the before date in 2×2 tiles, the after date in 3 strips; neighbours
    // overlap by 32 pixels, as delivered scenes do.
    let n = opts.size;
    let before_tiles = split(n, 2, 2, 32);
    for (name, win) in &before_tiles {
        let rel = PathBuf::from(format!("imagery/before/before_{name}.tif"));
        write_satellite(&scene, &opts.out.join(&rel), win, Shot::Before)?;
        files.push(rel);
    }
    let after_tiles = split(n, 3, 1, 32);
    for (name, win) in &after_tiles {
        let rel = PathBuf::from(format!("imagery/after/after_{name}.tif"));
        write_satellite(&scene, &opts.out.join(&rel), win, Shot::After)?;
        files.push(rel);
    }
    let rel = PathBuf::from("imagery/drone/drone_after.tif");
    write_drone(&scene, &opts.out.join(&rel))?;
    files.push(rel);

    for (rel, layer) in [
        ("parcels.gpkg", parcels_layer(&scene)),
        ("permits.gpkg", permits_layer(&scene)),
    ] {
        write_vector(
            &opts.out.join(rel),
            "GPKG",
            &[layer],
            Some(PINNED_TIMESTAMP),
        )?;
        files.push(PathBuf::from(rel));
    }
    write_truth(&scene, &opts.out.join("truth.geojson"))?;
    files.push(PathBuf::from("truth.geojson"));
    write_truth_masks(&scene, &opts.out)?;
    files.push(PathBuf::from("truth_change.tif"));
    files.push(PathBuf::from("truth_ignore.tif"));
    write_atomic(&opts.out.join("scene.json"), scene_json(&scene).as_bytes())?;
    files.push(PathBuf::from("scene.json"));
    write_atomic(
        &opts.out.join("landwatch.toml"),
        config_toml(&scene).as_bytes(),
    )?;
    files.push(PathBuf::from("landwatch.toml"));

    let mut by_cat = std::collections::BTreeMap::new();
    for t in &scene.truth {
        *by_cat.entry(t.category.name().to_string()).or_insert(0) += 1;
    }
    Ok(SynthSummary {
        out: opts.out.clone(),
        size_px: n,
        seed: opts.seed,
        parcels: scene.parcels.len(),
        permits: scene.permits.len(),
        truth_by_category: by_cat,
        files,
    })
}

/// A pixel window of the scene: (column, row, width, height).
type Win = (usize, usize, usize, usize);

/// Splits an n×n scene into `cols`×`rows` tiles that overlap by `overlap` pixels.
fn split(n: usize, cols: usize, rows: usize, overlap: usize) -> Vec<(String, Win)> {
    let mut out = Vec::new();
    let edges = |parts: usize| -> Vec<(usize, usize)> {
        (0..parts)
            .map(|i| {
                let a = (n * i / parts).saturating_sub(if i > 0 { overlap / 2 } else { 0 });
                let b = (n * (i + 1) / parts + if i + 1 < parts { overlap / 2 } else { 0 }).min(n);
                (a, b)
            })
            .collect()
    };
    for (r, (y0, y1)) in edges(rows).into_iter().enumerate() {
        for (c, (x0, x1)) in edges(cols).into_iter().enumerate() {
            out.push((format!("r{r}c{c}"), (x0, y0, x1 - x0, y1 - y0)));
        }
    }
    out
}

fn write_satellite(scene: &Scene, path: &Path, win: &Win, shot: Shot) -> Result<(), SynthError> {
    let (x0, y0, w, h) = *win;
    let gt = [
        ORIGIN.0 + x0 as f64 * PIXEL_M,
        PIXEL_M,
        0.0,
        ORIGIN.1 - y0 as f64 * PIXEL_M,
        0.0,
        -PIXEL_M,
    ];
    let (date, sensor) = match shot {
        Shot::Before => (&scene.dates.before, "GF-2 PMS (synthetic)"),
        _ => (&scene.dates.after, "GF-7 BWD (synthetic)"),
    };
    let mut spec = GeoTiffSpec::new(SCENE_CRS, gt, w, h);
    spec.block_size = 512;
    spec.predictor = 2;
    spec.nodata = Some(0.0);
    spec.band_descriptions = ["blue", "green", "red", "nir"].map(String::from).to_vec();
    spec.color_interpretations = vec![Some("Blue"), Some("Green"), Some("Red"), Some("Undefined")];
    spec.metadata = date_metadata(date, "satellite", sensor);
    let mut writer = GeoTiffWriter::create::<u16>(path, &spec, 4)?;
    for r0 in (0..h).step_by(512) {
        let rows = 512.min(h - r0);
        let grid = PixelGrid {
            to_scene: [
                gt[0],
                PIXEL_M,
                0.0,
                gt[3] - r0 as f64 * PIXEL_M,
                0.0,
                -PIXEL_M,
            ],
            width: w,
            height: rows,
            noise_offset: (x0 as i64, (y0 + r0) as i64),
        };
        let img = render(scene, &grid, shot);
        let bands: Vec<Vec<u16>> = img
            .bands
            .iter()
            .map(|b| {
                b.iter()
                    .zip(&img.valid)
                    .map(|(v, ok)| if *ok { v.round() as u16 } else { 0 })
                    .collect()
            })
            .collect();
        let refs: Vec<&[u16]> = bands.iter().map(|b| b.as_slice()).collect();
        writer.write_rows(r0, rows, &refs)?;
    }
    writer.finish()?;
    Ok(())
}

/// The drone orthophoto: RGB + alpha bytes at 5 cm in UTM 51N, geolocated with a deliberate error.
fn write_drone(scene: &Scene, path: &Path) -> Result<(), SynthError> {
    let crs_err = |e: gdal::errors::GdalError| SynthError::Crs(e.to_string());
    let scene_srs = srs::parse_crs(SCENE_CRS).map_err(crs_err)?;
    let utm = srs::parse_crs(DRONE_CRS).map_err(crs_err)?;
    let to_utm = srs::transform(&scene_srs, &utm).map_err(crs_err)?;
    let to_scene = srs::transform(&utm, &scene_srs).map_err(crs_err)?;
    let fp = scene.drone.footprint();
    let mut xs: Vec<f64> = fp.exterior().coords().map(|c| c.x).collect();
    let mut ys: Vec<f64> = fp.exterior().coords().map(|c| c.y).collect();
    srs::transform_points(&to_utm, &mut xs, &mut ys).map_err(crs_err)?;
    let snap = |v: f64, up: bool| {
        let k = v / DRONE_PIXEL_M;
        (if up { k.ceil() } else { k.floor() }) * DRONE_PIXEL_M
    };
    let ux0 = snap(xs.iter().cloned().fold(f64::MAX, f64::min), false);
    let ux1 = snap(xs.iter().cloned().fold(f64::MIN, f64::max), true);
    let uy0 = snap(ys.iter().cloned().fold(f64::MAX, f64::min), false);
    let uy1 = snap(ys.iter().cloned().fold(f64::MIN, f64::max), true);
    let w = ((ux1 - ux0) / DRONE_PIXEL_M).round() as usize;
    let h = ((uy1 - uy0) / DRONE_PIXEL_M).round() as usize;
    let gt_utm = [ux0, DRONE_PIXEL_M, 0.0, uy1, 0.0, -DRONE_PIXEL_M];

    // Over a couple of hundred metres the UTM → Gauss-Krüger mapping is affine to well under a
    // millimetre: fit it from three corners.
    let mut cx = [ux0, ux1, ux0];
    let mut cy = [uy1, uy1, uy0];
    srs::transform_points(&to_scene, &mut cx, &mut cy).map_err(crs_err)?;
    let (sx, sy) = scene.drone.shift_m;
    let to_scene_gt = [
        cx[0] + sx,
        (cx[1] - cx[0]) / w as f64,
        (cx[2] - cx[0]) / h as f64,
        cy[0] + sy,
        (cy[1] - cy[0]) / w as f64,
        (cy[2] - cy[0]) / h as f64,
    ];

    let mut spec = GeoTiffSpec::new(DRONE_CRS, gt_utm, w, h);
    spec.block_size = 512;
    spec.predictor = 2;
    spec.band_descriptions = ["red", "green", "blue", "alpha"].map(String::from).to_vec();
    spec.color_interpretations = vec![Some("Red"), Some("Green"), Some("Blue"), Some("Alpha")];
    spec.metadata = date_metadata(&scene.dates.drone, "drone", "DJI Phantom 4 RTK (synthetic)");
    let mut writer = GeoTiffWriter::create::<u8>(path, &spec, 4)?;
    for r0 in (0..h).step_by(512) {
        let rows = 512.min(h - r0);
        let g = &to_scene_gt;
        let grid = PixelGrid {
            to_scene: [
                g[0] + r0 as f64 * g[2],
                g[1],
                g[2],
                g[3] + r0 as f64 * g[5],
                g[4],
                g[5],
            ],
            width: w,
            height: rows,
            noise_offset: (0, r0 as i64),
        };
        let img = render(scene, &grid, Shot::Drone);
        let mut inside = vec![0i32; w * rows];
        render::rasterize(&grid, &fp, 1, &mut inside);
        let mut bands: Vec<Vec<u8>> = img
            .bands
            .iter()
            .map(|b| {
                b.iter()
                    .zip(&inside)
                    .map(|(v, k)| if *k == 1 { v.round() as u8 } else { 0 })
                    .collect()
            })
            .collect();
        bands.push(
            inside
                .iter()
                .map(|k| if *k == 1 { 255 } else { 0 })
                .collect(),
        );
        let refs: Vec<&[u8]> = bands.iter().map(|b| b.as_slice()).collect();
        writer.write_rows(r0, rows, &refs)?;
    }
    writer.finish()?;
    Ok(())
}

pub use crate::parcels::use_name_zh;

fn parcels_layer(scene: &Scene) -> VectorLayer {
    VectorLayer {
        name: "parcels".into(),
        crs: SCENE_CRS.into(),
        fields: vec![
            ("parcel_id".into(), FieldKind::Text),
            ("approved_use".into(), FieldKind::Text),
            ("use_name".into(), FieldKind::Text),
            ("basic_farmland".into(), FieldKind::Boolean),
            ("eco_redline".into(), FieldKind::Boolean),
        ],
        features: scene
            .parcels
            .iter()
            .map(|p| {
                (
                    Geometry::Polygon(p.polygon.clone()),
                    vec![
                        Value::from(p.id.as_str()),
                        Value::from(p.approved_use),
                        Value::from(use_name_zh(p.approved_use)),
                        Value::from(p.basic_farmland),
                        Value::from(p.eco_redline),
                    ],
                )
            })
            .collect(),
    }
}

fn permits_layer(scene: &Scene) -> VectorLayer {
    VectorLayer {
        name: "permits".into(),
        crs: SCENE_CRS.into(),
        fields: vec![
            ("permit_id".into(), FieldKind::Text),
            ("kind".into(), FieldKind::Text),
            ("permitted_use".into(), FieldKind::Text),
            ("parcel_id".into(), FieldKind::Text),
            ("valid_from".into(), FieldKind::Date),
            ("valid_to".into(), FieldKind::Date),
        ],
        features: scene
            .permits
            .iter()
            .map(|p| {
                (
                    Geometry::Polygon(p.footprint.clone()),
                    vec![
                        Value::from(p.permit_id.as_str()),
                        Value::from(p.kind),
                        Value::from(p.permitted_use),
                        Value::from(p.parcel_id.as_str()),
                        Value::from(p.valid_from),
                        Value::from(p.valid_to),
                    ],
                )
            })
            .collect(),
    }
}

fn write_truth(scene: &Scene, path: &Path) -> Result<(), SynthError> {
    let t = ToWgs84::new(SCENE_CRS).map_err(|e| SynthError::Crs(e.to_string()))?;
    let mut features = Vec::with_capacity(scene.truth.len());
    for (i, c) in scene.truth.iter().enumerate() {
        let g = t
            .multi_polygon(&c.geometry)
            .map_err(|e| SynthError::Crs(e.to_string()))?;
        let mut props = Map::new();
        props.insert("truth_id".into(), json!(i + 1));
        props.insert("kind".into(), json!(c.kind));
        props.insert("category".into(), json!(c.category.name()));
        props.insert("parcel_id".into(), json!(c.parcel_id));
        props.insert("permit_id".into(), json!(c.permit_id));
        props.insert("transition".into(), json!(c.transition));
        props.insert(
            "area_m2".into(),
            json!((c.geometry.unsigned_area() * 100.0).round() / 100.0),
        );
        props.insert("note".into(), json!(c.note));
        features.push(geojson::feature(Some(&Geometry::MultiPolygon(g)), props));
    }
    let mut members = Map::new();
    members.insert(
        "name".into(),
        json!("landwatch synthetic scene ground truth"),
    );
    members.insert("working_crs".into(), json!(SCENE_CRS));
    geojson::write_feature_collection(path, features, members)?;
    Ok(())
}

/// Pixel truth on the full scene grid: `truth_change.tif` (1 = land-use change) and
/// `truth_ignore.tif` (1 = not observable in the after image: cloud, shadow, no data).
fn write_truth_masks(scene: &Scene, out: &Path) -> Result<(), SynthError> {
    let n = scene.size_px;
    let grid = PixelGrid {
        to_scene: [ORIGIN.0, PIXEL_M, 0.0, ORIGIN.1, 0.0, -PIXEL_M],
        width: n,
        height: n,
        noise_offset: (0, 0),
    };
    let mut change = vec![0i32; n * n];
    let mut ignore = vec![0i32; n * n];
    for t in &scene.truth {
        let target = match t.category {
            Category::Violation | Category::Legal => &mut change,
            Category::Unobserved => &mut ignore,
            _ => continue,
        };
        for p in &t.geometry.0 {
            render::rasterize(&grid, p, 1, target);
        }
    }
    let gt = [ORIGIN.0, PIXEL_M, 0.0, ORIGIN.1, 0.0, -PIXEL_M];
    for (name, data) in [("truth_change.tif", change), ("truth_ignore.tif", ignore)] {
        let bytes: Vec<u8> = data.iter().map(|v| *v as u8).collect();
        let spec = GeoTiffSpec::new(SCENE_CRS, gt, n, n);
        crate::export::raster::write_geotiff(&out.join(name), &spec, &[&bytes])?;
    }
    Ok(())
}

fn scene_json(scene: &Scene) -> String {
    let v = json!({
        "generator": format!("landwatch synth {}", crate::VERSION),
        "seed": scene.seed,
        "size_px": scene.size_px,
        "pixel_m": PIXEL_M,
        "crs": SCENE_CRS,
        "origin": [ORIGIN.0, ORIGIN.1],
        "before": scene.dates.before.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "after": scene.dates.after.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "drone": {
            "acquired": scene.dates.drone.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "crs": DRONE_CRS,
            "pixel_m": DRONE_PIXEL_M,
            "shift_m": [scene.drone.shift_m.0, scene.drone.shift_m.1],
            "centre": [scene.drone.centre.0, scene.drone.centre.1],
        },
        "after_gain": scene.dates.after_gain,
        "after_offset": scene.dates.after_offset,
        "parcels": scene.parcels.len(),
        "permits": scene.permits.len(),
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

fn config_toml(scene: &Scene) -> String {
    format!(
        r#"# landwatch configuration for the synthetic scene (seed {seed}, {size}x{size} px).
# Paths are relative to this file. See `landwatch --help` and docs/ for every option.

[project]
name = "Synthetic scene, Wujiang district (seed {seed})"
region_code = "320509"

[imagery]
before = ["imagery/before"]
after = ["imagery/after", "imagery/drone"]

[parcels]
path = "parcels.gpkg"
layer = "parcels"
id_field = "parcel_id"
use_field = "approved_use"
permits = "permits.gpkg"
permits_layer = "permits"

[grid]
crs = "{crs}"
pixel_size = {pixel}
cell_size = 1024
halo = 32
origin = [{ox:.1}, {oy:.1}]

[output]
dir = "out"
"#,
        seed = scene.seed,
        size = scene.size_px,
        crs = SCENE_CRS,
        pixel = PIXEL_M,
        ox = ORIGIN.0,
        oy = ORIGIN.1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_scene_with_overlap() {
        let t = split(1000, 2, 2, 32);
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].1, (0, 0, 516, 516));
        assert_eq!(t[3].1, (484, 484, 516, 516));
        let s = split(1000, 3, 1, 32);
        assert_eq!(s[2].1 .0 + s[2].1 .2, 1000);
    }

    #[test]
    fn generated_config_parses() {
        let scene = build_scene(256, 1);
        let cfg = crate::config::Config::from_toml(
            &config_toml(&scene),
            Path::new("landwatch.toml"),
            Path::new("/tmp"),
        )
        .unwrap();
        assert_eq!(cfg.grid.origin, Some([ORIGIN.0, ORIGIN.1]));
        assert_eq!(cfg.project.region_code, "320509");
    }
}
