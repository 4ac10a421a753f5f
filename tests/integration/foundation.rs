//! Issue 1: the scene generator, the catalogue and the analysis grid, through the binary.

use crate::common::{files_under, run, scene, scratch, stderr, stdout};
use gdal::raster::GdalDataType;
use gdal::{Dataset, Metadata};
use serde_json::Value;
use std::path::Path;

#[test]
fn every_command_has_help() {
    for cmd in [
        "catalog",
        "grid",
        "detect",
        "eval-mask",
        "scan",
        "eval",
        "synth",
        "demo",
        "keygen",
        "verify",
        "cases",
        "case",
        "status",
        "init",
    ] {
        let o = run([cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help failed");
        let text = stdout(&o);
        assert!(text.contains("Usage: landwatch"), "{cmd}: {text}");
        assert!(text.contains("Exit codes: 0 "), "{cmd}: {text}");
        // The command's own options first, the logging flags every command takes apart after.
        let (own, logging) = (text.find("-h, --help"), text.find("Logging (any command):"));
        assert!(own.is_some() && logging > own, "{cmd}: {text}");
        assert!(
            text[logging.unwrap()..].contains("--log-json"),
            "{cmd}: {text}"
        );
    }
    // An ad-hoc scan without --out writes somewhere: the help says where.
    let o = run(["scan", "--help"]);
    assert!(stdout(&o).contains("landwatch-out"), "{}", stdout(&o));
    // Every file the scan writes is named (the score rasters, the packets and the store were
    // not), and the filter that wins over -v and -q is (README's).
    let scan_help = stdout(&run(["scan", "--help"]));
    for file in ["change_score_<observation>.tif", "packets/", "landwatch.db"] {
        assert!(scan_help.contains(file), "{file}: {scan_help}");
    }
    let o = run(["--help"]);
    assert!(stdout(&o).contains("Exit codes"));
    assert!(stdout(&o).contains("LANDWATCH_LOG"), "{}", stdout(&o));
    let o = run(["--version"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Every flag README's table of commands names is one the command's `--help` lists.
#[test]
fn the_flags_readme_names_are_the_commands_own() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `landwatch "))
        .collect();
    assert!(rows.len() >= 14, "{rows:?}");
    for row in rows {
        let command = row["| `landwatch ".len()..]
            .split([' ', '`'])
            .next()
            .unwrap();
        let help = stdout(&run([command, "--help"]));
        let flags = row
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2);
        for flag in flags {
            assert!(
                help.contains(flag),
                "README names {flag} for `landwatch {command}`, which its --help does not list"
            );
        }
    }
}

/// A usage error exits with 1, "failed": clap's own 2 is landwatch's "done, with skipped inputs",
/// which a night's check would take for a run.
#[test]
fn a_usage_error_is_a_failure() {
    for args in [
        &["scan", "--bogus"][..],
        &["scan", "--config"],
        &["eval", "--truth", "t.geojson"],
        &[],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("Usage: landwatch") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
    }
}

/// `-q` leaves a cron job's log with warnings and errors only; the human summary on standard
/// output stays.
#[test]
fn quiet_logs_warnings_and_errors_only() {
    let src = scene(1024, 3);
    let cfg = src.join("landwatch.toml");
    let scan = |out: &str, quiet: bool| {
        let out = scratch(out);
        let mut cmd = std::process::Command::new(crate::common::bin());
        cmd.env_remove("LANDWATCH_LOG").args([
            "scan",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-cache",
        ]);
        if quiet {
            cmd.arg("-q");
        }
        let o = cmd.output().expect("the landwatch binary runs");
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let (loud, quiet) = (scan("quiet-not", false), scan("quiet", true));
    // Both runs make a signing key (no key is configured) and warn about it.
    for o in [&loud, &quiet] {
        assert!(stderr(o).contains("WARN"), "{}", stderr(o));
        assert!(stdout(o).contains("suspected violation"), "{}", stdout(o));
    }
    assert!(stderr(&loud).contains("INFO"), "{}", stderr(&loud));
    assert!(!stderr(&quiet).contains("INFO"), "{}", stderr(&quiet));
}

#[test]
fn an_output_path_that_is_a_file_is_refused_plainly() {
    let src = scene(1024, 3);
    let file = scratch("out-is-a-file").join("results");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = file.to_str().unwrap();
    let before = src.join("imagery/before/before_r0c0.tif");
    let after = src.join("imagery/after/after_r0c0.tif");
    let parcels = src.join("parcels.gpkg");
    let (b, a, p) = (
        before.to_str().unwrap(),
        after.to_str().unwrap(),
        parcels.to_str().unwrap(),
    );
    let commands: [&[&str]; 5] = [
        &["synth", "--size", "256", "--out", out],
        &["demo", "--out", out],
        &["detect", "--before", b, "--after", a, "--out", out],
        &[
            "scan",
            "--before",
            b,
            "--after",
            a,
            "--parcels",
            p,
            "--out",
            out,
        ],
        &["init", out],
    ];
    for args in commands {
        let o = run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{out} is a file, not a directory")),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn synth_is_byte_for_byte_deterministic() {
    let a = scratch("synth-det-a");
    let b = scratch("synth-det-b");
    let c = scratch("synth-det-c");
    for (dir, seed) in [(&a, "5"), (&b, "5"), (&c, "6")] {
        let o = run([
            "synth",
            "--out",
            dir.to_str().unwrap(),
            "--size",
            "512",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let files = files_under(&a);
    assert_eq!(files, files_under(&b));
    assert!(files.len() >= 14, "{files:?}");
    let mut differs = 0;
    for f in &files {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(
            x == y,
            "{} differs between two runs with the same seed",
            f.display()
        );
        if std::fs::read(c.join(f)).ok() != Some(x) {
            differs += 1;
        }
    }
    assert!(differs >= 10, "another seed changed only {differs} files");
}

fn epsg_of(ds: &Dataset) -> i32 {
    ds.spatial_ref().unwrap().auth_code().unwrap()
}

#[test]
fn synth_writes_the_promised_formats() {
    let dir = scene(1024, 11);
    let before = Dataset::open(dir.join("imagery/before/before_r0c0.tif")).unwrap();
    assert_eq!(epsg_of(&before), 4549);
    assert_eq!(before.raster_count(), 4);
    let b1 = before.rasterband(1).unwrap();
    assert_eq!(b1.band_type(), GdalDataType::UInt16);
    assert_eq!(b1.block_size(), (512, 512));
    assert_eq!(
        before
            .metadata_item("COMPRESSION", "IMAGE_STRUCTURE")
            .as_deref(),
        Some("DEFLATE")
    );
    assert_eq!(before.geo_transform().unwrap()[1], 0.5);
    assert!(before
        .metadata_item("TIFFTAG_DATETIME", "")
        .unwrap()
        .starts_with("2026:04:12"));
    let tiles = std::fs::read_dir(dir.join("imagery/after"))
        .unwrap()
        .count();
    assert!(tiles >= 2, "the after date is split over several tiles");

    let drone = Dataset::open(dir.join("imagery/drone/drone_after.tif")).unwrap();
    assert_eq!(epsg_of(&drone), 32651);
    assert_eq!(drone.raster_count(), 4);
    assert_eq!(
        drone.rasterband(1).unwrap().band_type(),
        GdalDataType::UInt8
    );
    assert!((drone.geo_transform().unwrap()[1] - 0.05).abs() < 1e-9);
    assert_eq!(
        drone.rasterband(4).unwrap().color_interpretation().name(),
        "Alpha"
    );

    for (file, layer, fields) in [
        (
            "parcels.gpkg",
            "parcels",
            &["parcel_id", "approved_use", "basic_farmland", "eco_redline"][..],
        ),
        (
            "permits.gpkg",
            "permits",
            &[
                "permit_id",
                "kind",
                "permitted_use",
                "valid_from",
                "valid_to",
            ][..],
        ),
    ] {
        use gdal::vector::LayerAccess;
        let ds = Dataset::open(dir.join(file)).unwrap();
        let lyr = ds.layer_by_name(layer).unwrap();
        assert_eq!(lyr.spatial_ref().unwrap().auth_code().unwrap(), 4549);
        let names: Vec<String> = lyr.defn().fields().map(|f| f.name()).collect();
        for f in fields {
            assert!(names.iter().any(|n| n == f), "{file} lacks {f}: {names:?}");
        }
        assert!(lyr.feature_count() > 0, "{file} is empty");
    }

    let truth: Value =
        serde_json::from_slice(&std::fs::read(dir.join("truth.geojson")).unwrap()).unwrap();
    let kinds: Vec<&str> = truth["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["kind"].as_str().unwrap())
        .collect();
    for k in [
        "harvest",
        "cloud",
        "cloud_shadow",
        "misregistration",
        "radiometric_shift",
        "building_on_farmland",
    ] {
        assert!(kinds.contains(&k), "truth lacks {k}");
    }
    // RFC 7946: longitude/latitude near Suzhou.
    let c = &truth["features"][0]["geometry"]["coordinates"][0][0][0];
    let (lon, lat) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
    assert!(
        (120.5..120.8).contains(&lon) && (31.0..31.3).contains(&lat),
        "{lon},{lat}"
    );

    let cfg = std::fs::read_to_string(dir.join("landwatch.toml")).unwrap();
    assert!(
        cfg.contains("imagery/drone")
            && cfg.contains("parcels.gpkg")
            && cfg.contains("permits.gpkg")
    );
}

#[test]
fn catalog_describes_the_synthetic_imagery() {
    let dir = scene(1024, 11);
    let o = run(["catalog", "--json", dir.join("imagery").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let entries: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 4 + 3 + 1);
    let drone = entries
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("drone_after.tif"))
        .unwrap();
    let info = &drone["info"];
    assert_eq!(info["crs"]["epsg"], 32651);
    assert_eq!(info["sensor"]["kind"], "drone");
    assert_eq!(info["acquired"]["time"], "2026-10-16T03:20:00");
    let roles: Vec<&str> = info["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["red", "green", "blue", "alpha"]);
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    let sat = entries
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("before_r0c0.tif"))
        .unwrap();
    let roles: Vec<&str> = sat["info"]["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["blue", "green", "red", "nir"]);
    assert_eq!(sat["info"]["acquired"]["source"], "metadata");
    // The sha256 is the file's.
    let bytes = std::fs::read(sat["path"].as_str().unwrap()).unwrap();
    use sha2::Digest;
    assert_eq!(
        sat["info"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes))
    );
}

/// Writes a small GeoTIFF with GDAL (optionally without georeferencing or with GCPs only).
fn write_tif(path: &Path, georef: bool, gcps: bool) {
    use gdal::DriverManager;
    let drv = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = drv.create_with_band_type::<u8, _>(path, 32, 24, 3).unwrap();
    let srs = gdal::spatial_ref::SpatialRef::from_epsg(32651).unwrap();
    if georef {
        ds.set_geo_transform(&[300000.0, 1.0, 0.0, 3450000.0, 0.0, -1.0])
            .unwrap();
        ds.set_spatial_ref(&srs).unwrap();
    }
    if gcps {
        let g = |id: &str, p: f64, l: f64| gdal::Gcp {
            id: id.into(),
            info: String::new(),
            pixel: p,
            line: l,
            x: 300000.0 + p,
            y: 3450000.0 - l,
            z: 0.0,
        };
        ds.set_gcps(
            vec![g("1", 0.0, 0.0), g("2", 32.0, 0.0), g("3", 0.0, 24.0)],
            &srs,
        )
        .unwrap();
    }
    for b in 1..=3 {
        let mut band = ds.rasterband(b).unwrap();
        let mut buf = gdal::raster::Buffer::new((32, 24), vec![b as u8 * 40; 32 * 24]);
        band.write((0, 0), (32, 24), &mut buf).unwrap();
    }
}

#[test]
fn catalog_names_each_unusable_file_and_goes_on() {
    let dir = scratch("catalog-bad");
    write_tif(&dir.join("good.tif"), true, false);
    write_tif(&dir.join("plain.tif"), false, false);
    write_tif(&dir.join("gcps.tif"), false, true);
    std::fs::write(dir.join("notes.tif"), b"this is not a TIFF").unwrap();
    // A tiled, compressed copy of a scene tile, cut short: the block table points past the end.
    let src = scene(1024, 11).join("imagery/before/before_r0c0.tif");
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(dir.join("truncated.tif"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    std::fs::write(dir.join("readme.md"), b"not imagery").unwrap();

    let o = run(["catalog", "--json", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let entries: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let kind_of = |name: &str| -> Option<String> {
        entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(name))
            .map(|e| e["problem"]["kind"].as_str().unwrap_or("ok").to_string())
    };
    assert_eq!(kind_of("good.tif").as_deref(), Some("ok"));
    assert_eq!(kind_of("plain.tif").as_deref(), Some("no_georeferencing"));
    assert_eq!(kind_of("gcps.tif").as_deref(), Some("gcp_only"));
    assert_eq!(kind_of("notes.tif").as_deref(), Some("not_openable"));
    assert_eq!(kind_of("truncated.tif").as_deref(), Some("corrupt"));
    assert_eq!(
        kind_of("readme.md"),
        None,
        "non-raster files are not listed"
    );

    // The human-readable form names the file and the reason.
    let o = run(["catalog", dir.to_str().unwrap()]);
    let text = stdout(&o);
    assert!(
        text.contains("gcps.tif: georeferenced only by 3 ground control points"),
        "{text}"
    );
    assert!(text.contains("5 raster(s): 1 usable, 4 unusable"), "{text}");
}

#[test]
fn sidecar_and_band_override_name_the_bands() {
    let dir = scratch("catalog-sidecar");
    let tif = dir.join("scene.tif");
    write_tif(&tif, true, false);
    std::fs::write(
        dir.join("scene.tif.json"),
        r#"{"acquired_at": "2026-06-01T10:00:00", "sensor": "satellite", "platform": "GF-2", "bands": ["nir", "red", "green"]}"#,
    )
    .unwrap();
    let o = run(["catalog", "--json", tif.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let info = &v[0]["info"];
    assert_eq!(info["acquired"]["source"], "sidecar");
    assert_eq!(info["sensor"]["platform"], "GF-2");
    assert_eq!(info["bands"][0]["role"], "nir");
    assert_eq!(info["bands"][0]["role_source"], "sidecar");

    let o = run([
        "catalog",
        "--json",
        "--bands",
        "red,green,blue",
        tif.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["info"]["bands"][0]["role"], "red");
    assert_eq!(v[0]["info"]["bands"][0]["role_source"], "override");

    let o = run(["catalog", "--bands", "red,purple", tif.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("purple"), "{}", stderr(&o));

    std::fs::write(dir.join("scene.tif.json"), r#"{"acquired_at": "soon"}"#).unwrap();
    let o = run(["catalog", "--json", tif.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("acquired_at 'soon' is not a date"),
        "{}",
        stdout(&o)
    );
}

/// Reads a band of an exported cell as f32.
fn band(ds: &Dataset, b: usize) -> Vec<f32> {
    let (w, h) = ds.raster_size();
    ds.rasterband(b)
        .unwrap()
        .read_as::<f32>((0, 0), (w, h), (w, h), None)
        .unwrap()
        .data()
        .to_vec()
}

/// A band and its validity, `w` pixels wide.
struct Img<'a> {
    px: &'a [f32],
    valid: &'a [f32],
    w: usize,
    h: usize,
}

/// Normalised cross-correlation of `a` shifted by (dx, dy) against `b`, over pixels valid in both.
fn ncc(a: &Img, b: &Img, dx: i64, dy: i64) -> f64 {
    let (w, h) = (a.w, a.h);
    let (va, vb) = (a.valid, b.valid);
    let (a, b) = (a.px, b.px);
    let (mut sa, mut sb, mut saa, mut sbb, mut sab, mut n) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for y in 8..h as i64 - 8 {
        for x in 8..w as i64 - 8 {
            let (xa, ya) = (x + dx, y + dy);
            let (ia, ib) = (
                (ya as usize) * w + xa as usize,
                (y as usize) * w + x as usize,
            );
            if va[ia] < 0.5 || vb[ib] < 0.5 {
                continue;
            }
            let (p, q) = (a[ia] as f64, b[ib] as f64);
            sa += p;
            sb += q;
            saa += p * p;
            sbb += q * q;
            sab += p * q;
            n += 1.0;
        }
    }
    let cov = sab / n - sa / n * sb / n;
    cov / ((saa / n - (sa / n).powi(2)).sqrt() * (sbb / n - (sb / n).powi(2)).sqrt())
}

#[test]
fn drone_and_satellite_land_on_the_same_cell_pixels() {
    let dir = scene(1024, 11);
    let scene_json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("scene.json")).unwrap()).unwrap();
    let o = run([
        "grid",
        "--config",
        dir.join("landwatch.toml").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The cell that contains the drone flight's centre.
    let centre = &scene_json["drone"]["centre"];
    let (cx, cy) = (centre[0].as_f64().unwrap(), centre[1].as_f64().unwrap());
    let cell = g["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            let b = &c["bounds"];
            cx >= b["min_x"].as_f64().unwrap()
                && cx < b["max_x"].as_f64().unwrap()
                && cy >= b["min_y"].as_f64().unwrap()
                && cy < b["max_y"].as_f64().unwrap()
        })
        .unwrap();
    let id = cell["id"].as_str().unwrap();
    assert!(id.starts_with(g["fingerprint"].as_str().unwrap()));
    let out = scratch("grid-export");
    let o = run([
        "grid",
        "--config",
        dir.join("landwatch.toml").to_str().unwrap(),
        "--export-cell",
        id,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sat = Dataset::open(out.join(format!("{id}_after_satellite.tif"))).unwrap();
    let drone = Dataset::open(out.join(format!("{id}_after_drone.tif"))).unwrap();
    assert_eq!(sat.raster_size(), drone.raster_size());
    assert_eq!(sat.geo_transform().unwrap(), drone.geo_transform().unwrap());
    let (w, h) = sat.raster_size();
    // Satellite bands: blue, green, red, nir, valid. Drone: red, green, blue, valid.
    let (sg, sv) = (band(&sat, 2), band(&sat, 5));
    let (dg, dv) = (band(&drone, 2), band(&drone, 4));
    let valid_px = dv.iter().filter(|v| **v > 0.5).count();
    assert!(
        valid_px > 10_000,
        "the drone covers {valid_px} px of the cell"
    );
    // The drone was geolocated with a known error; the content must sit exactly that far away.
    let shift = &scene_json["drone"]["shift_m"];
    let want = (
        -shift[0].as_f64().unwrap() / 0.5,
        shift[1].as_f64().unwrap() / 0.5,
    );
    let mut best = (0i64, 0i64, f64::MIN);
    let mut score = std::collections::HashMap::new();
    for dy in -4..=4 {
        for dx in -4..=4 {
            let r = ncc(
                &Img {
                    px: &dg,
                    valid: &dv,
                    w,
                    h,
                },
                &Img {
                    px: &sg,
                    valid: &sv,
                    w,
                    h,
                },
                dx,
                dy,
            );
            score.insert((dx, dy), r);
            if r > best.2 {
                best = (dx, dy, r);
            }
        }
    }
    // Sub-pixel peak by parabola fits along each axis.
    let sub = |m: f64, c: f64, p: f64| 0.5 * (m - p) / (m - 2.0 * c + p);
    let (bx, by) = (best.0, best.1);
    let fx = bx as f64 + sub(score[&(bx - 1, by)], best.2, score[&(bx + 1, by)]);
    let fy = by as f64 + sub(score[&(bx, by - 1)], best.2, score[&(bx, by + 1)]);
    assert!(
        best.2 > 0.8,
        "drone and satellite content do not match (r = {})",
        best.2
    );
    assert!(
        (fx - want.0).abs() < 0.35 && (fy - want.1).abs() < 0.35,
        "content offset ({fx:.2}, {fy:.2}) px, expected the injected ({:.2}, {:.2})",
        want.0,
        want.1
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let dir = scratch("bad-config");
    let cfg = dir.join("landwatch.toml");
    std::fs::write(&cfg, "[grid]\npixel_size = 0\n").unwrap();
    let o = run(["grid", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("[grid] pixel_size"), "{}", stderr(&o));
    std::fs::write(&cfg, "[imagery]\nbefor = []\n").unwrap();
    let o = run(["grid", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("befor"), "{}", stderr(&o));
}

/// `grid`'s own flags are held to the config's limits: a zero cell or pixel size printed a grid
/// of NaN bounds and exited 0, a one-pixel cell listed millions of cells.
#[test]
fn grid_flags_out_of_range_are_refused_naming_the_flag() {
    let tif = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rasterio/byte.tif");
    let tif = tif.to_str().unwrap();
    for (args, says) in [
        (
            ["--cell-size", "0"],
            "--cell-size: must be between 16 and 16384",
        ),
        (
            ["--cell-size", "1"],
            "--cell-size: must be between 16 and 16384",
        ),
        (
            ["--pixel-size", "0"],
            "--pixel-size: must be a positive number",
        ),
        (
            ["--halo", "5000"],
            "--halo: must be at most half the cell size",
        ),
        // This one was blamed on the first raster ("before_r0c0.tif: CRS problem").
        (
            ["--crs", "EPSG:999999"],
            "--crs: 'EPSG:999999' is not a CRS",
        ),
    ] {
        let o = run(["grid", tif, args[0], args[1]]);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stdout(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).contains("NaN"), "{args:?}: {}", stdout(&o));
    }
    let o = run(["grid", tif, "--cell-size", "16", "--halo", "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `landwatch demo --out out --size size --seed seed`.
fn demo(out: &Path, size: u32, seed: u64) -> std::process::Output {
    run([
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--size",
        &size.to_string(),
        "--seed",
        &seed.to_string(),
    ])
}

/// A second demo into the same directory scanned nothing ("nothing new"), checked no packet and
/// pointed at no report.
#[test]
fn a_second_demo_into_the_same_directory_does_it_all_again() {
    let out = scratch("demo-twice");
    for round in 0..2 {
        let o = demo(&out, 512, 5);
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(!text.contains("nothing new"), "round {round}: {text}");
        assert!(
            text.contains("4/4 checking an evidence packet") && text.contains("INTACT"),
            "round {round}: {text}"
        );
        assert!(text.contains("report.html"), "round {round}: {text}");
    }
}

#[test]
fn the_demo_runs_the_whole_pipeline_and_points_at_a_report() {
    let out = scratch("demo-1024");
    let o = demo(&out, 1024, 3);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for step in ["1/4", "2/4", "3/4", "4/4", "INTACT", "report.html", "疑似"] {
        assert!(text.contains(step), "no {step} in:\n{text}");
    }
    let report = text
        .lines()
        .find_map(|l| l.split("A4): ").nth(1))
        .expect("a report path");
    assert!(std::path::Path::new(report.trim()).is_file(), "{report}");
    assert!(out.join("results/findings.csv").is_file());
}

/// A size the demo cannot make is refused before anything is written (it printed "generating
/// a 0x0 px scene" and left an empty directory behind).
#[test]
fn a_demo_of_a_size_it_cannot_make_is_refused_before_anything_is_written() {
    let out = scratch("demo-size").join("demo");
    for size in ["0", "255", "40001"] {
        let o = run(["demo", "--out", out.to_str().unwrap(), "--size", size]);
        assert_eq!(o.status.code(), Some(1), "{size}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("between 256 and 40000"),
            "{}",
            stderr(&o)
        );
        assert!(!stdout(&o).contains("generating"), "{}", stdout(&o));
        assert!(!out.exists(), "{size}: {} was created", out.display());
    }
}
