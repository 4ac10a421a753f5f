//! The real-data suite over `../shared/data` (real GeoTIFFs, real before/after pairs).
//!
//! It runs when the folder exists. When `LANDWATCH_SHARED_DATA` names the folder (the test
//! script sets it whenever `../shared/data` exists, and CI has it), a missing folder or any file
//! that misbehaves fails the suite: it never skips silently.

use crate::common::{run, stderr, stdout};
use landwatch::grid::Window;
use landwatch::ingest::catalog::{describe_raster, open_raster, CatalogOptions};
use landwatch::ingest::checksum::gdal_checksum;
use landwatch::ingest::plan::grid_of_raster;
use landwatch::ingest::read::read_band_window;
use landwatch::ingest::{CellReader, DateSources, ImageSource};
use serde_json::Value;
use std::path::PathBuf;

/// The shared data folder, or `None` (with a note on stderr) when it is not there and not asked for.
pub fn data_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LANDWATCH_SHARED_DATA") {
        let p = PathBuf::from(p);
        assert!(
            p.join("EXPECTED_GDAL_CHECKSUMS.tsv").is_file(),
            "LANDWATCH_SHARED_DATA={} does not hold the shared data (no EXPECTED_GDAL_CHECKSUMS.tsv)",
            p.display()
        );
        return Some(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.join("EXPECTED_GDAL_CHECKSUMS.tsv").is_file() {
        Some(p)
    } else {
        eprintln!(
            "real-data suite: ../shared/data not found and LANDWATCH_SHARED_DATA not set; not run"
        );
        None
    }
}

/// One row of EXPECTED_GDAL_CHECKSUMS.tsv.
struct Expected {
    file: String,
    ok: bool,
    width: usize,
    height: usize,
    bands: usize,
    dtype: String,
    checksums: Vec<u16>,
}

fn expected(dir: &std::path::Path) -> Vec<Expected> {
    let text = std::fs::read_to_string(dir.join("EXPECTED_GDAL_CHECKSUMS.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let ok = f[1] == "OK";
            Expected {
                file: f[0].to_string(),
                ok,
                width: if ok { f[2].parse().unwrap() } else { 0 },
                height: if ok { f[3].parse().unwrap() } else { 0 },
                bands: if ok { f[4].parse().unwrap() } else { 0 },
                dtype: f.get(5).unwrap_or(&"").to_string(),
                checksums: if ok {
                    f[6].split(',').map(|c| c.trim().parse().unwrap()).collect()
                } else {
                    vec![]
                },
            }
        })
        .collect()
}

/// EPSG codes stated in the folders' SOURCE.md files.
const EXPECTED_EPSG: &[(&str, Option<u32>)] = &[
    ("geotiff/rasterio/RGB.byte.tif", Some(32618)),
    ("geotiff/rasterio/rgb_deflate.tif", Some(32618)),
    ("geotiff/rasterio/rgb_lzw.tif", Some(32618)),
    ("geotiff/rasterio/RGBA.uint16.tif", Some(32612)),
    ("geotiff/rasterio/all-nodata.tif", Some(32628)),
    ("geotiff/rasterio/alpha.tif", Some(3857)),
    ("geotiff/rasterio/cogeo.tif", Some(3857)),
    ("geotiff/rasterio/red.tif", Some(4326)),
    ("geotiff/rasterio/world.byte.tif", Some(4326)),
    ("geotiff/rasterio/byte.tif", Some(26711)),
    ("geotiff/rasterio/test_esri_wkt.tif", None),
    ("geotiff/rasterio/goes.tif", None),
    (
        "geotiff/georust/m_3607824_se_17_1_20160620_sub.tif",
        Some(26917),
    ),
    ("geotiff/georust/labels.tif", Some(32617)),
    (
        "geotiff/osgeo_spot_drone/Ortho-DroneMapper_center100.tif",
        Some(32613),
    ),
    ("geotiff/osgeo_spot_drone/SP27GTIF.tiff", Some(26771)),
    ("geotiff/osgeo_spot_drone/UTM2GTIF.tiff", Some(26716)),
    ("geotiff/testdata_repo/utm.tif", Some(32617)),
    (
        "geotiff/testdata_repo/lcv_landuse.cropland_hyde_p_10km_s0..0cm_2016_v3.2.tif",
        Some(4326),
    ),
    (
        "geotiff/testdata_repo/no_pixelscale_or_tiepoints.tiff",
        Some(4326),
    ),
    ("geotiff/testdata_repo/nt_20201024_f18_nrt_s.tif", None),
    (
        "change/bitemporal_opengeos/naip/m_4709963_se_14_1_20090818.tif",
        Some(26914),
    ),
    (
        "change/bitemporal_opengeos/landsat_pucallpa/1985.tif",
        Some(4326),
    ),
    ("change/bitemporal_opengeos/elevation/dsm.tif", Some(26918)),
];

#[test]
fn every_listed_raster_is_catalogued_right_and_reads_to_gdals_checksums() {
    let Some(dir) = data_dir() else { return };
    let rows = expected(&dir);
    assert!(
        rows.len() >= 40,
        "the TSV lists only {} rasters",
        rows.len()
    );
    // Through the binary: size, bands, type and CRS of everything under the folder.
    let o = run(["catalog", "--json", dir.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "some files are unusable by design: {}",
        stderr(&o)
    );
    let entries: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let entry = |file: &str| -> Value {
        entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} is missing from the catalogue"))
            .clone()
    };
    let mut failures = Vec::new();
    for r in &rows {
        let e = entry(&r.file);
        if !r.ok {
            // corrupt.tif: listed with its specific reason.
            if e["problem"]["kind"] != "corrupt" {
                failures.push(format!(
                    "{}: expected a 'corrupt' problem, got {}",
                    r.file, e["problem"]
                ));
            }
            continue;
        }
        let info = &e["info"];
        let got = (
            info["width"].as_u64().unwrap_or(0) as usize,
            info["height"].as_u64().unwrap_or(0) as usize,
            info["band_count"].as_u64().unwrap_or(0) as usize,
            info["data_type"].as_str().unwrap_or("").to_string(),
        );
        if got != (r.width, r.height, r.bands, r.dtype.clone()) {
            failures.push(format!(
                "{}: catalogued {got:?}, expected {}x{}x{} {}",
                r.file, r.width, r.height, r.bands, r.dtype
            ));
        }
        // Our own reading path reproduces GDAL's checksums, band by band.
        let path = dir.join(&r.file);
        let ds = open_raster(&path).unwrap();
        for (b, want) in r.checksums.iter().enumerate() {
            let floating = r.dtype.starts_with("Float");
            match read_band_window::<f64>(&ds, b + 1, 0, 0, r.width, r.height) {
                Ok(px) => {
                    let sum = gdal_checksum(&px, floating);
                    if sum != *want {
                        failures.push(format!(
                            "{} band {}: checksum {sum}, GDAL says {want}",
                            r.file,
                            b + 1
                        ));
                    }
                }
                Err(err) => failures.push(format!("{} band {}: read failed: {err}", r.file, b + 1)),
            }
        }
    }
    for (file, epsg) in EXPECTED_EPSG {
        let e = entry(file);
        let got = e["info"]["crs"]["epsg"].as_u64().map(|c| c as u32);
        if got != *epsg {
            failures.push(format!("{file}: EPSG {got:?}, expected {epsg:?}"));
        }
        if epsg.is_none()
            && e["info"]["crs"]["wkt"]
                .as_str()
                .is_none_or(|w| w.len() < 20)
        {
            failures.push(format!("{file}: no EPSG code, so the WKT must be given"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unusable_real_files_get_their_specific_reasons() {
    let Some(dir) = data_dir() else { return };
    let opts = CatalogOptions::default();
    for (file, kind, words) in [
        ("geotiff/rasterio/corrupt.tif", "corrupt", "truncated"),
        (
            "geotiff/georust/gcp.tif",
            "gcp_only",
            "210 ground control points",
        ),
        (
            "change/levir_dev/A/val_27_0000_0256.png",
            "no_georeferencing",
            "no georeferencing",
        ),
        (
            "change/levir_dev/label/val_27_0000_0256.png",
            "no_georeferencing",
            "no georeferencing",
        ),
        (
            "geotiff/georust/tinymarble.tif",
            "no_geotransform",
            "no geotransform",
        ),
        (
            "geotiff/rasterio/rotated.tif",
            "no_crs",
            "no coordinate reference system",
        ),
    ] {
        let e = describe_raster(&dir.join(file), &opts);
        let p = e.problem.unwrap_or_else(|| panic!("{file} was accepted"));
        assert_eq!(p.kind, kind, "{file}: {}", p.message);
        assert!(
            p.message.contains(file.rsplit('/').next().unwrap()),
            "{}",
            p.message
        );
        assert!(p.message.contains(words), "{file}: {}", p.message);
    }
    // The corrupt file's pixels: a clean error, never a panic.
    let ds = open_raster(&dir.join("geotiff/rasterio/corrupt.tif")).unwrap();
    assert!(read_band_window::<u8>(&ds, 1, 0, 0, 1024, 1024).is_err());
    // Deep verification decodes pixels and names the band and place.
    let deep = CatalogOptions {
        verify_pixels: true,
        ..Default::default()
    };
    let e = describe_raster(&dir.join("geotiff/rasterio/cogeo.tif"), &deep);
    assert!(e.problem.is_none(), "{:?}", e.problem);
}

fn source(dir: &std::path::Path, file: &str) -> ImageSource {
    let path = dir.join(file);
    let e = describe_raster(&path, &CatalogOptions::default());
    assert!(e.is_usable(), "{file}: {:?}", e.problem);
    ImageSource {
        path,
        info: e.info.unwrap(),
    }
}

/// The four extreme points of a validity mask (topmost, rightmost, bottommost, leftmost pixel
/// centres), in grid pixel coordinates.
fn extreme_points(valid: &ndarray::Array2<bool>) -> [(f64, f64); 4] {
    let pts: Vec<(f64, f64)> = valid
        .indexed_iter()
        .filter(|(_, v)| **v)
        .map(|((r, c), _)| (c as f64 + 0.5, r as f64 + 0.5))
        .collect();
    let by =
        |f: &dyn Fn(&(f64, f64)) -> f64| *pts.iter().min_by(|a, b| f(a).total_cmp(&f(b))).unwrap();
    [by(&|p| p.1), by(&|p| -p.0), by(&|p| -p.1), by(&|p| p.0)]
}

#[test]
fn the_two_spot_files_land_on_the_same_ground() {
    let Some(dir) = data_dir() else { return };
    let utm = source(&dir, "geotiff/osgeo_spot_drone/UTM2GTIF.tiff");
    let feet = source(&dir, "geotiff/osgeo_spot_drone/SP27GTIF.tiff");
    // One grid: the UTM scene's own lattice, widened by 20 pixels so both footprints fit.
    let mut grid = grid_of_raster(&utm.info, &utm.path, 4096, 0).unwrap();
    let m = 20usize;
    grid.origin_x -= m as f64 * grid.pixel_width;
    grid.origin_y += m as f64 * grid.pixel_height;
    grid.width += 2 * m;
    grid.height += 2 * m;
    let window = Window {
        x: 0,
        y: 0,
        width: grid.width,
        height: grid.height,
    };
    let read = |s: &ImageSource| {
        let roles = s.info.roles();
        let mut r = CellReader::new(
            &grid,
            &DateSources {
                sources: vec![s.clone()],
                roles,
            },
        )
        .unwrap();
        r.read("spot", &window).unwrap()
    };
    let a = read(&utm);
    let b = read(&feet);

    // Each file lands exactly where its own georeferencing puts it: the corners of its valid
    // region are its corners transformed into the grid CRS, within one pixel.
    let sp = landwatch::ingest::srs::parse_crs("EPSG:26771").unwrap();
    let to = landwatch::ingest::srs::parse_crs(&grid.crs).unwrap();
    let ct = landwatch::ingest::srs::transform(&sp, &to).unwrap();
    let gt = feet.info.geo_transform.unwrap();
    let (w, h) = (feet.info.width as f64, feet.info.height as f64);
    let corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
    let mut xs: Vec<f64> = corners
        .iter()
        .map(|(c, r)| gt[0] + c * gt[1] + r * gt[2])
        .collect();
    let mut ys: Vec<f64> = corners
        .iter()
        .map(|(c, r)| gt[3] + c * gt[4] + r * gt[5])
        .collect();
    landwatch::ingest::srs::transform_points(&ct, &mut xs, &mut ys).unwrap();
    let want: Vec<(f64, f64)> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| grid.world_to_pixel(*x, *y))
        .collect();
    // The State Plane scene is rotated against UTM. Along its left and right edges, row by row,
    // the first and last valid pixel lie within one pixel of the edge its georeferencing gives.
    let edge_x = |p: (f64, f64), q: (f64, f64), y: f64| p.0 + (y - p.1) / (q.1 - p.1) * (q.0 - p.0);
    let (top, bottom) = (
        want[0].1.max(want[1].1) + 3.0,
        want[2].1.min(want[3].1) - 3.0,
    );
    let (mut worst, mut sum, mut n): (f64, f64, f64) = (0.0, 0.0, 0.0);
    for r in (top.ceil() as usize)..(bottom.floor() as usize) {
        let y = r as f64 + 0.5;
        let row: Vec<usize> = (0..grid.width).filter(|&c| b.valid[[r, c]]).collect();
        let (first, last) = (row[0] as f64 + 0.5, *row.last().unwrap() as f64 + 0.5);
        for d in [
            first - edge_x(want[0], want[3], y),
            edge_x(want[1], want[2], y) - last,
        ] {
            worst = worst.max(d.abs());
            sum += d;
            n += 1.0;
        }
    }
    // A whole-pixel mask quantises an edge to ±0.5 px, and bilinear alpha blurs it by a little more.
    assert!(
        worst <= 1.05,
        "the State Plane scene's edge is {worst:.4} px from where its georeferencing puts it"
    );
    assert!(
        (sum / n).abs() <= 0.5,
        "the State Plane scene is offset by {:.3} px on average",
        sum / n
    );
    let got = extreme_points(&a.valid);
    assert_eq!(got[0].1, m as f64 + 0.5, "UTM scene top edge");
    assert_eq!(got[3].0, m as f64 + 0.5, "UTM scene left edge");

    // The two deliveries cover the same ground: their footprint centres agree within 1.5 px.
    // (They disagree by 12.6 m in northing in the files themselves, which `gdaltransform` confirms
    // independently of landwatch; see the issue note.)
    let centre = |v: &ndarray::Array2<bool>| {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for ((r, c), ok) in v.indexed_iter() {
            if *ok {
                sx += c as f64 + 0.5;
                sy += r as f64 + 0.5;
                n += 1.0;
            }
        }
        (sx / n, sy / n)
    };
    let (ca, cb) = (centre(&a.valid), centre(&b.valid));
    let d = (ca.0 - cb.0).hypot(ca.1 - cb.1);
    assert!(
        d <= 1.5,
        "footprint centres {ca:?} and {cb:?} are {d:.2} px apart"
    );
}

#[test]
fn nodata_and_alpha_become_the_validity_mask() {
    let Some(dir) = data_dir() else { return };
    for (file, want) in [
        ("geotiff/rasterio/all-nodata.tif", 0.0),
        // The drone crop's alpha band is opaque everywhere.
        (
            "geotiff/osgeo_spot_drone/Ortho-DroneMapper_center100.tif",
            1.0,
        ),
        ("geotiff/rasterio/RGBA.uint16.tif", -1.0),
    ] {
        let s = source(&dir, file);
        let grid = grid_of_raster(&s.info, &s.path, 4096, 0).unwrap();
        let roles = landwatch::ingest::DateSources::common_roles(std::slice::from_ref(&s));
        let mut r = CellReader::new(
            &grid,
            &DateSources {
                sources: vec![s.clone()],
                roles,
            },
        )
        .unwrap();
        let img = r
            .read(
                "whole",
                &Window {
                    x: 0,
                    y: 0,
                    width: grid.width,
                    height: grid.height,
                },
            )
            .unwrap();
        if want >= 0.0 {
            assert_eq!(img.valid_fraction(), want, "{file}");
        } else {
            // The alpha band masks part of these images: some pixels valid, some not.
            let f = img.valid_fraction();
            assert!(f > 0.05 && f < 1.0, "{file}: valid fraction {f}");
            // The mask is the alpha band itself.
            let ds = open_raster(&s.path).unwrap();
            let alpha_band = s
                .info
                .band_with_role(landwatch::ingest::BandRole::Alpha)
                .unwrap();
            let alpha =
                read_band_window::<f64>(&ds, alpha_band, 0, 0, grid.width, grid.height).unwrap();
            let from_alpha = alpha.iter().filter(|a| **a > 0.0).count() as f64 / alpha.len() as f64;
            assert!(
                (f - from_alpha).abs() < 1e-9,
                "{file}: {f} vs alpha {from_alpha}"
            );
        }
    }
}

/// A cell read (all bands in one request when one file covers the window) gives each band's
/// values exactly as a read of that band alone does, with invalid pixels zeroed: pixel- and
/// band-interleaved files, bytes and UInt16, nodata and alpha masks, windows at the origin and
/// inside the image.
#[test]
fn cell_reads_equal_band_by_band_reads() {
    let Some(dir) = data_dir() else { return };
    for file in [
        "geotiff/rasterio/RGB.byte.tif",
        "geotiff/rasterio/RGBA.uint16.tif",
        "geotiff/rasterio/rgb_deflate.tif",
        "geotiff/georust/m_3607824_se_17_1_20160620_sub.tif",
    ] {
        let s = source(&dir, file);
        let grid = grid_of_raster(&s.info, &s.path, 4096, 0).unwrap();
        let roles = DateSources::common_roles(std::slice::from_ref(&s));
        let mut r = CellReader::new(
            &grid,
            &DateSources {
                sources: vec![s.clone()],
                roles: roles.clone(),
            },
        )
        .unwrap();
        let ds = open_raster(&s.path).unwrap();
        let (gw, gh) = (grid.width, grid.height);
        for window in [
            Window {
                x: 0,
                y: 0,
                width: gw,
                height: gh,
            },
            Window {
                x: 3,
                y: 5,
                width: gw - 10,
                height: gh - 7,
            },
        ] {
            let img = r.read("w", &window).unwrap();
            assert_eq!(img.bands.dim(), (roles.len(), window.height, window.width));
            for (k, role) in roles.iter().enumerate() {
                let bi = s.info.band_with_role(*role).unwrap();
                let want = read_band_window::<f32>(
                    &ds,
                    bi,
                    window.x as usize,
                    window.y as usize,
                    window.width,
                    window.height,
                )
                .unwrap();
                let got = img.bands.index_axis(ndarray::Axis(0), k);
                for ((g, w), ok) in got.iter().zip(&want).zip(img.valid.iter()) {
                    let w = if *ok { *w } else { 0.0 };
                    assert_eq!(g.to_bits(), w.to_bits(), "{file} band {bi} {window:?}");
                }
            }
        }
    }
}

/// Copies a PNG into a GeoTIFF with a 0.5 m geotransform (LEVIR tiles carry no georeferencing).
fn georeference_png(png: &std::path::Path, out: &std::path::Path) {
    let src = gdal::Dataset::open(png).unwrap();
    let drv = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = src.create_copy(&drv, out, &Default::default()).unwrap();
    ds.set_geo_transform(&[300_000.0, 0.5, 0.0, 3_450_128.0, 0.0, -0.5])
        .unwrap();
    ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(32651).unwrap())
        .unwrap();
}

fn read_band_u8(path: &std::path::Path, band: usize) -> Vec<f32> {
    let ds = gdal::Dataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    read_band_window::<f32>(&ds, band, 0, 0, w, h).unwrap()
}

/// The reference: band-standardised change-vector magnitude with an Otsu threshold.
fn cva_otsu_baseline(a: &std::path::Path, b: &std::path::Path) -> Vec<bool> {
    let std = |v: &[f32]| {
        let n = v.len() as f32;
        let m = v.iter().sum::<f32>() / n;
        let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / n)
            .sqrt()
            .max(1e-6);
        v.iter().map(|x| (x - m) / s).collect::<Vec<f32>>()
    };
    let mut mag = vec![0f32; read_band_u8(a, 1).len()];
    for band in 1..=3 {
        let (x, y) = (std(&read_band_u8(a, band)), std(&read_band_u8(b, band)));
        for i in 0..mag.len() {
            mag[i] += (x[i] - y[i]).powi(2);
        }
    }
    let mag: Vec<f32> = mag.into_iter().map(f32::sqrt).collect();
    let t = landwatch::detect::threshold::otsu(&mag).unwrap_or(f32::MAX);
    mag.into_iter().map(|v| v > t).collect()
}

#[derive(Default, Debug)]
struct Pooled {
    tp: u64,
    fp: u64,
    fn_: u64,
}

impl Pooled {
    fn add(&mut self, pred: &[bool], truth: &[bool]) {
        for (p, t) in pred.iter().zip(truth) {
            match (p, t) {
                (true, true) => self.tp += 1,
                (true, false) => self.fp += 1,
                (false, true) => self.fn_ += 1,
                _ => {}
            }
        }
    }
    fn prf(&self) -> (f64, f64, f64) {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        (
            p,
            r,
            if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            },
        )
    }
}

#[test]
fn levir_dev_tiles_are_scored_against_the_plain_cva_baseline() {
    let Some(dir) = data_dir() else { return };
    let levir = dir.join("change/levir_dev");
    let work = crate::common::scratch("levir");
    let vhr = work.join("vhr.toml");
    // The documented preset for very-high-resolution RGB imagery (docs/DETECTION.md).
    std::fs::write(
        &vhr,
        "[detect]\nthreshold = \"otsu\"\nsmooth_px = 1\nillumination_angle_deg = 0\n",
    )
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(levir.join("A"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".png")
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 4);
    let (mut base, mut default, mut preset) =
        (Pooled::default(), Pooled::default(), Pooled::default());
    for n in &names {
        for d in ["A", "B", "label"] {
            georeference_png(
                &levir.join(d).join(format!("{n}.png")),
                &work.join(format!("{d}_{n}.tif")),
            );
        }
        let (a, b) = (
            work.join(format!("A_{n}.tif")),
            work.join(format!("B_{n}.tif")),
        );
        let truth: Vec<bool> = read_band_u8(&work.join(format!("label_{n}.tif")), 1)
            .iter()
            .map(|v| *v > 0.0)
            .collect();
        base.add(&cva_otsu_baseline(&a, &b), &truth);
        for (cfg, pooled) in [(None, &mut default), (Some(&vhr), &mut preset)] {
            let out = work.join(format!("out_{n}_{}", cfg.is_some()));
            let mut args = vec![
                "detect".to_string(),
                "--before".into(),
                a.display().to_string(),
                "--after".into(),
                b.display().to_string(),
                "--out".into(),
                out.display().to_string(),
            ];
            if let Some(c) = cfg {
                args.extend(["--config".to_string(), c.display().to_string()]);
            }
            let o = run(&args);
            assert!(o.status.success(), "{n}: {}", stderr(&o));
            let mask: Vec<bool> = read_band_u8(&out.join("change_mask.tif"), 1)
                .iter()
                .map(|v| *v == 1.0)
                .collect();
            assert_eq!(
                mask.len(),
                truth.len(),
                "{n}: the mask is on the tile's own grid"
            );
            pooled.add(&mask, &truth);
        }
    }
    let (bp, br, bf) = base.prf();
    let (dp, dr, df) = default.prf();
    let (vp, vr, vf) = preset.prf();
    eprintln!("LEVIR dev (4 tiles, pooled pixels): plain CVA+Otsu P {bp:.3} R {br:.3} F1 {bf:.3}");
    eprintln!("  landwatch default            P {dp:.3} R {dr:.3} F1 {df:.3}");
    eprintln!("  landwatch VHR-RGB preset     P {vp:.3} R {vr:.3} F1 {vf:.3}");
    assert!(
        vf > bf,
        "the VHR preset ({vf:.3}) must beat plain CVA + Otsu ({bf:.3})"
    );
}

#[test]
fn naip_2009_2020_flags_little_built_or_bare_change() {
    let Some(dir) = data_dir() else { return };
    let naip = dir.join("change/bitemporal_opengeos/naip");
    let out = crate::common::scratch("naip");
    let o = run([
        "detect",
        "--json",
        "--before",
        naip.join("m_4709963_se_14_1_20090818.tif")
            .to_str()
            .unwrap(),
        "--after",
        naip.join("m_4709963_se_14_1_20200831.tif")
            .to_str()
            .unwrap(),
        "--bands-before",
        "red,green,blue,nir",
        "--bands-after",
        "red,green,blue,nir",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The after grid is one row shorter and offset: the mask is still on the before's grid.
    assert_eq!(
        (s["grid"]["width"].as_u64(), s["grid"]["height"].as_u64()),
        (Some(934), Some(724))
    );
    let observed_m2 = s["observed_px"].as_f64().unwrap() * 25.0;
    let area = |t: &str| s["area_m2_by_transition"][t].as_f64().unwrap_or(0.0);
    let built_bare =
        area("vegetation_to_built") + area("vegetation_to_bare") + area("bare_to_built");
    let frac = built_bare / observed_m2;
    eprintln!(
        "NAIP 2009→2020: land-use change {:.2}% of the observed area; built/bare {:.2}%; water gained {:.2}%; vegetation cycles {:.2}%",
        100.0 * s["changed_fraction"].as_f64().unwrap(),
        100.0 * frac,
        100.0 * (area("vegetation_to_water") + area("bare_to_water")) / observed_m2,
        100.0 * area("vegetation_cycle") / observed_m2
    );
    assert!(
        frac < 0.02,
        "{:.2}% of the area flagged as built or bare change",
        100.0 * frac
    );
}

/// Issue 7: a LEVIR dev tile through `detect --detector onnx`, with the fixture model whose
/// output is known exactly (`fixtures/models/absdiff_pair.onnx`): the score written is that
/// function of the real pixels, and the mask stays on the tile's own 0.5 m grid.
#[test]
fn a_levir_dev_tile_runs_through_the_onnx_detector() {
    let Some(dir) = data_dir() else { return };
    let levir = dir.join("change/levir_dev");
    let work = crate::common::scratch("levir-onnx");
    let name = "val_27_0000_0256";
    for d in ["A", "B", "label"] {
        georeference_png(
            &levir.join(d).join(format!("{name}.png")),
            &work.join(format!("{d}.tif")),
        );
    }
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/absdiff_pair.onnx");
    let descriptor = work.join("model.toml");
    std::fs::write(
        &descriptor,
        format!(
            r#"[model]
file = "{}"
name = "absdiff-test"
version = "1.0"
license = "CC0-1.0"
trained_on = "nothing: a fixed function for tests"
[input]
before = "t1"
after = "t2"
bands = ["red", "green", "blue"]
scale = 0.00392156862745098
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
tile = 256
overlap = 32
pixel_size_m = 0.5
[output]
name = "prob"
kind = "probability"
threshold = 0.5
"#,
            model.display()
        ),
    )
    .unwrap();
    let out = work.join("out");
    let o = run([
        "detect",
        "--json",
        "--before",
        work.join("A.tif").to_str().unwrap(),
        "--after",
        work.join("B.tif").to_str().unwrap(),
        "--detector",
        "onnx",
        "--model",
        descriptor.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["detector"], "onnx:absdiff-test");
    assert_eq!(s["detector_info"]["model"]["license"], "CC0-1.0");
    assert_eq!(
        (
            s["grid"]["width"].as_u64(),
            s["grid"]["pixel_width"].as_f64()
        ),
        (Some(256), Some(0.5))
    );
    let (a, b) = (work.join("A.tif"), work.join("B.tif"));
    let bands: Vec<(Vec<f32>, Vec<f32>)> = (1..=3)
        .map(|k| (read_band_u8(&a, k), read_band_u8(&b, k)))
        .collect();
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let score = read_band_u8(&out.join("change_score.tif"), 1);
    let mut compared = 0;
    for (i, v) in score.iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        let d: f32 = (0..3)
            .map(|k| {
                let n = |x: f32| (x / 255.0 - mean[k]) / std[k];
                (n(bands[k].0[i]) - n(bands[k].1[i])).abs()
            })
            .sum::<f32>()
            / 3.0;
        let p = 1.0 / (1.0 + (-8.0 * (d - 0.5)).exp());
        assert!((v - p).abs() < 1e-4, "pixel {i}: {v} vs {p}");
        compared += 1;
    }
    assert!(compared > 256 * 200, "{compared} pixels observed");
    let mask = read_band_u8(&out.join("change_mask.tif"), 1);
    let truth: Vec<bool> = read_band_u8(&work.join("label.tif"), 1)
        .iter()
        .map(|v| *v > 0.0)
        .collect();
    let mut pooled = Pooled::default();
    pooled.add(&mask.iter().map(|v| *v == 1.0).collect::<Vec<_>>(), &truth);
    let (p, r, f) = pooled.prf();
    eprintln!(
        "LEVIR {name}, toy absdiff model through the ONNX detector: P {p:.3} R {r:.3} F1 {f:.3}"
    );
    assert!(mask.iter().all(|v| [0.0, 1.0, 255.0].contains(v)));
}
