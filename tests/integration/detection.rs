//! Issue 2: change detection through the binary, on synthetic scenes with exact truth.

use crate::common::{detect_refuses, run, scene, scratch, stderr, stdout};
use gdal::Dataset;
use serde_json::Value;
use std::path::Path;

fn read_u8(path: &Path) -> Vec<u8> {
    let ds = Dataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    ds.rasterband(1)
        .unwrap()
        .read_as::<u8>((0, 0), (w, h), (w, h), None)
        .unwrap()
        .data()
        .to_vec()
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Rasterises truth features of some kinds onto the scene grid (pixel centres), from the
/// generator's own GeoPackage-free truth: the GeoJSON, reprojected with GDAL.
fn truth_mask(dir: &Path, kinds: &[&str], size: usize) -> Vec<bool> {
    use gdal::vector::LayerAccess;
    let ds = Dataset::open(dir.join("truth.geojson")).unwrap();
    let mut layer = ds.layer(0).unwrap();
    let scene_srs = landwatch::ingest::srs::parse_crs("EPSG:4549").unwrap();
    let wgs = landwatch::ingest::srs::wgs84().unwrap();
    let ct = landwatch::ingest::srs::transform(&wgs, &scene_srs).unwrap();
    let mut polys = Vec::new();
    for f in layer.features() {
        let idx = f.field_index("kind").unwrap();
        let kind = f.field_as_string(idx).unwrap().unwrap_or_default();
        if !kinds.contains(&kind.as_str()) {
            continue;
        }
        let mut g = f.geometry().unwrap().clone();
        g.transform_inplace(&ct).unwrap();
        if let Ok(geo::Geometry::MultiPolygon(m)) = g.to_geo() {
            polys.extend(m.0);
        }
    }
    let grid = landwatch::synth::render::PixelGrid {
        to_scene: [561_152.0, 0.5, 0.0, 3_449_344.0, 0.0, -0.5],
        width: size,
        height: size,
        noise_offset: (0, 0),
    };
    let mut target = vec![0i32; size * size];
    for p in &polys {
        landwatch::synth::render::rasterize(&grid, p, 1, &mut target);
    }
    target.into_iter().map(|v| v == 1).collect()
}

#[test]
fn detection_on_a_4096_px_scene_meets_the_accuracy_targets() {
    let dir = scene(4096, 21);
    let out = scratch("detect-4096");
    let o = run([
        "detect",
        "--before",
        dir.join("imagery/before").to_str().unwrap(),
        "--after",
        dir.join("imagery/after").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = json_of(&o);
    assert_eq!(
        summary["grid"]["width"], 4096,
        "the grid is the before imagery's own"
    );

    // Pixel F1 of the land-use changes, clouds, shadows and the swath edge left out.
    let o = run([
        "eval-mask",
        "--json",
        "--truth",
        dir.join("truth_change.tif").to_str().unwrap(),
        "--mask",
        out.join("change_mask.tif").to_str().unwrap(),
        "--ignore",
        dir.join("truth_ignore.tif").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = json_of(&o);
    let f1 = m["metrics"]["f1"].as_f64().unwrap();
    eprintln!("synthetic 4096 px, seed 21: {}", m["metrics"]);
    assert!(f1 >= 0.95, "pixel F1 {f1} < 0.95: {}", m["metrics"]);

    let mask = read_u8(&out.join("change_mask.tif"));
    let truth = read_u8(&dir.join("truth_change.tif"));
    // Harvested and ripening fields are vegetation cycles, never built or bare.
    let cycles = truth_mask(&dir, &["harvest", "phenology"], 4096);
    let (mut n, mut flagged) = (0usize, 0usize);
    for i in 0..mask.len() {
        if cycles[i] && truth[i] == 0 && mask[i] != 255 {
            n += 1;
            if mask[i] == 1 {
                flagged += 1;
            }
        }
    }
    let frac = flagged as f64 / n as f64;
    eprintln!("vegetation-cycle pixels flagged as land-use change: {flagged} of {n}");
    assert!(
        frac < 0.005,
        "{:.2}% of harvest/phenology pixels flagged",
        100.0 * frac
    );
    let g: Value =
        serde_json::from_slice(&std::fs::read(out.join("changes.geojson")).unwrap()).unwrap();
    let cycle_regions = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["transition"] == "vegetation_cycle")
        .count();
    assert!(
        cycle_regions > 10,
        "harvested fields are reported as vegetation-cycle regions"
    );

    // The cloud and its shadow are unobserved, not change and not no-change.
    let cloud = truth_mask(&dir, &["cloud", "cloud_shadow"], 4096);
    let (mut n, mut unobserved) = (0usize, 0usize);
    for i in 0..mask.len() {
        if cloud[i] {
            n += 1;
            if mask[i] == 255 {
                unobserved += 1;
            }
        }
    }
    assert!(n > 1000);
    assert!(
        unobserved as f64 / n as f64 > 0.95,
        "only {unobserved} of {n} cloud/shadow pixels unobserved"
    );
}

#[test]
fn the_shifted_drone_orthophoto_gives_no_edge_regions() {
    let dir = scene(1024, 11);
    let out = scratch("detect-drone");
    let o = run([
        "detect",
        "--before",
        dir.join("imagery/before").to_str().unwrap(),
        "--after",
        dir.join("imagery/drone").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json_of(&o);
    // The co-registration found the injected shift (1.5 px west, 1 px north in the image).
    let shifts = s["shifts"].as_array().unwrap();
    assert!(
        !shifts.is_empty(),
        "no shift was corrected: {}",
        s["cell_stats"]
    );
    for sh in shifts {
        let (dx, dy) = (sh[1].as_f64().unwrap(), sh[2].as_f64().unwrap());
        assert!(
            (dx + 1.5).abs() < 0.35 && (dy + 1.0).abs() < 0.35,
            "shift ({dx}, {dy})"
        );
    }
    // Every land-use pixel lies on an injected change (a violation, a legal change or a field in
    // another crop stage; RGB alone cannot tell stubble from soil, the rules judge whole fields):
    // nothing along the field edges that the shift would light up.
    let mask = read_u8(&out.join("change_mask.tif"));
    let on_change = truth_mask(
        &dir,
        &[
            "building_on_farmland",
            "excavation",
            "pond_digging",
            "filled_water",
            "beyond_permit",
            "before_approval",
            "expired_temporary",
            "redline_construction",
            "permitted_building",
            "facility_agriculture",
            "construction_on_construction_land",
            "harvest",
            "phenology",
        ],
        1024,
    );
    let changed = mask.iter().filter(|v| **v == 1).count();
    let on_truth = mask
        .iter()
        .zip(&on_change)
        .filter(|(m, t)| **m == 1 && **t)
        .count();
    assert!(
        changed > 0,
        "the drone covers injected changes; none was found"
    );
    assert!(
        on_truth as f64 >= 0.97 * changed as f64,
        "{on_truth} of {changed} changed pixels on injected changes"
    );
    let observed = mask.iter().filter(|v| **v != 255).count();
    assert!(
        observed > 10_000,
        "the drone strip is observed ({observed} px)"
    );
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let dir = scene(1024, 11);
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let out = scratch(&format!("detect-threads-{threads}"));
        let o = run([
            "detect",
            "--threads",
            threads,
            "--before",
            dir.join("imagery/before").to_str().unwrap(),
            "--after",
            dir.join("imagery/after").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        outs.push(out);
    }
    for f in ["change_mask.tif", "change_score.tif", "changes.geojson"] {
        let a = std::fs::read(outs[0].join(f)).unwrap();
        let b = std::fs::read(outs[1].join(f)).unwrap();
        assert!(a == b, "{f} differs between 1 and 2 threads");
    }
}

#[test]
fn any_gdal_raster_works_and_outputs_are_georeferenced() {
    let dir = scene(1024, 11);
    let work = scratch("detect-envi");
    // One tile of each date as ENVI (raw binary + .hdr) instead of GeoTIFF.
    let envi = gdal::DriverManager::get_driver_by_name("ENVI").unwrap();
    for (src, dst) in [
        ("imagery/before/before_r0c0.tif", "before.dat"),
        ("imagery/after/after_r0c0.tif", "after.dat"),
    ] {
        let ds = Dataset::open(dir.join(src)).unwrap();
        ds.create_copy(&envi, work.join(dst), &Default::default())
            .unwrap();
    }
    let out = work.join("out");
    let o = run([
        "detect",
        "--before",
        work.join("before.dat").to_str().unwrap(),
        "--after",
        work.join("after.dat").to_str().unwrap(),
        "--bands-before",
        "blue,green,red,nir",
        "--bands-after",
        "blue,green,red,nir",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mask = Dataset::open(out.join("change_mask.tif")).unwrap();
    let before = Dataset::open(work.join("before.dat")).unwrap();
    assert_eq!(
        mask.geo_transform().unwrap(),
        before.geo_transform().unwrap(),
        "the mask lines up with the before image"
    );
    assert_eq!(mask.spatial_ref().unwrap().auth_code().unwrap(), 4549);
    use gdal::Metadata;
    assert_eq!(
        mask.metadata_item("COMPRESSION", "IMAGE_STRUCTURE")
            .as_deref(),
        Some("DEFLATE")
    );
    let band = mask.rasterband(1).unwrap();
    assert_eq!(band.band_type(), gdal::raster::GdalDataType::UInt8);
    assert_ne!(band.block_size().0, mask.raster_size().0, "tiled");
    let g: Value =
        serde_json::from_slice(&std::fs::read(out.join("changes.geojson")).unwrap()).unwrap();
    let f = &g["features"][0];
    assert!(f["properties"]["area_m2"].as_f64().unwrap() > 0.0);
    assert!(f["properties"]["area_mu"].as_f64().is_some());
    assert!(f["properties"]["transition"].is_string());
    let c = &f["geometry"]["coordinates"][0][0][0];
    assert!(
        (120.5..120.8).contains(&c[0].as_f64().unwrap()),
        "WGS84 longitude first"
    );

    // Missing bands are refused naming the file.
    let o = run([
        "detect",
        "--before",
        work.join("before.dat").to_str().unwrap(),
        "--after",
        work.join("after.dat").to_str().unwrap(),
        "--bands-after",
        "red,green,unknown,unknown",
        "--out",
        work.join("out2").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a missing band is refused before any work"
    );
    let text = stderr(&o);
    assert!(text.contains("after imagery has no blue band"), "{text}");
}

#[test]
fn eval_mask_reads_a_png_label() {
    let work = scratch("eval-png");
    let drv = gdal::DriverManager::get_driver_by_name("MEM").unwrap();
    let png = gdal::DriverManager::get_driver_by_name("PNG").unwrap();
    let gtiff = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let label = drv.create_with_band_type::<u8, _>("", 4, 2, 1).unwrap();
    let mut b = gdal::raster::Buffer::new((4, 2), vec![255u8, 255, 0, 0, 0, 0, 0, 255]);
    label
        .rasterband(1)
        .unwrap()
        .write((0, 0), (4, 2), &mut b)
        .unwrap();
    label
        .create_copy(&png, work.join("label.png"), &Default::default())
        .unwrap();
    let mask = drv.create_with_band_type::<u8, _>("", 4, 2, 1).unwrap();
    let mut b = gdal::raster::Buffer::new((4, 2), vec![1u8, 0, 1, 0, 0, 0, 255, 255]);
    mask.rasterband(1)
        .unwrap()
        .write((0, 0), (4, 2), &mut b)
        .unwrap();
    mask.create_copy(&gtiff, work.join("mask.tif"), &Default::default())
        .unwrap();
    let o = run([
        "eval-mask",
        "--json",
        "--truth",
        work.join("label.png").to_str().unwrap(),
        "--mask",
        work.join("mask.tif").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    // TP 1, FP 1, FN 1, TN 3, unobserved 2 (one of them truth change).
    assert_eq!(v["confusion"]["tp"], 1);
    assert_eq!(v["confusion"]["fp"], 1);
    assert_eq!(v["confusion"]["fn"], 1);
    assert_eq!(v["confusion"]["tn"], 3);
    assert_eq!(v["confusion"]["unobserved_truth_change"], 1);
    assert!((v["metrics"]["f1"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    let o = run([
        "eval-mask",
        "--truth",
        work.join("label.png").to_str().unwrap(),
        "--mask",
        crate::common::bin().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn detect_refuses_to_compare_a_file_with_itself() {
    let src = scene(1024, 3);
    let tile = src.join("imagery/before/before_r0c0.tif");
    let out = scratch("detect-same-file");
    detect_refuses(&tile, &tile, &out, "given as both before and after imagery");
}
