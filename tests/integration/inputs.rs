//! Imagery a bureau really receives: files of one night that do not all fit (a stray old tile, a
//! file whose bands cannot be told, a band that lost its name). Each is named, the rest is
//! scanned.

use crate::common::{copy_dir, run, scan_config, scene, scratch, stderr, stdout};
use serde_json::Value;
use std::path::Path;

/// A copy of the synthetic scene's configuration, parcels and imagery (files only).
fn scene_copy(name: &str) -> std::path::PathBuf {
    let src = scene(1024, 3);
    let dir = scratch(name);
    copy_dir(&src, &dir);
    for d in ["before", "after", "drone"] {
        copy_dir(&src.join("imagery").join(d), &dir.join("imagery").join(d));
    }
    dir
}

fn skipped_of_kind<'a>(summary: &'a Value, kind: &str) -> Vec<&'a Value> {
    summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

fn sidecar(image: &Path, json: &str) {
    let mut name = image.as_os_str().to_owned();
    name.push(".json");
    std::fs::write(name, json).unwrap();
}

#[test]
fn a_night_s_files_that_do_not_fit_are_named_and_the_rest_is_scanned() {
    let dir = scene_copy("inputs-misfits");
    let after = dir.join("imagery/after");
    // One tile of the satellite mosaic dated before the before imagery (2026-04-12); the drone
    // image's bands unknowable; another tile's near infrared without a name.
    sidecar(
        &after.join("after_r0c1.tif"),
        r#"{"acquired_at": "2026-01-05T02:51:00"}"#,
    );
    sidecar(
        &dir.join("imagery/drone/drone_after.tif"),
        r#"{"bands": ["unknown", "unknown", "unknown"]}"#,
    );
    sidecar(
        &after.join("after_r0c2.tif"),
        r#"{"bands": ["blue", "green", "red", "unknown"]}"#,
    );
    let out = dir.join("out");
    let o = scan_config(
        &dir.join("landwatch.toml"),
        &out,
        &["--no-packets", "--json"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let summary: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The old tile alone is left out, named; the rest of its mosaic is compared.
    let old = skipped_of_kind(&summary, "older_than_before");
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0]["what"].as_str().unwrap().ends_with("after_r0c1.tif"));
    assert!(old[0]["message"].as_str().unwrap().contains("2026-01-05"));
    // The drone observation is skipped, its file named; the satellite is still scanned.
    let bands = skipped_of_kind(&summary, "bands");
    assert_eq!(bands.len(), 1, "{bands:?}");
    let m = bands[0]["message"].as_str().unwrap();
    assert!(
        m.contains("drone_after.tif") && m.contains("no blue band"),
        "{m}"
    );
    // The tile whose fourth band has no name is named: compared without near infrared.
    let unused = skipped_of_kind(&summary, "unused_band");
    assert_eq!(unused.len(), 1, "{unused:?}");
    let m = unused[0]["message"].as_str().unwrap();
    assert!(
        m.contains("after_r0c2.tif") && m.contains("band(s) 4"),
        "{m}"
    );
    assert!(summary["findings"].as_u64().unwrap() > 0, "{summary}");
    // No finding is dated before its before date.
    let findings: Value =
        serde_json::from_slice(&std::fs::read(out.join("findings.geojson")).unwrap()).unwrap();
    for f in findings["features"].as_array().unwrap() {
        let p = &f["properties"];
        let (b, a) = (p["before_date"].as_str(), p["after_date"].as_str());
        if let (Some(b), Some(a)) = (b, a) {
            assert!(a >= b, "after {a} before {b}: {p}");
        }
        assert_ne!(p["observation"], "drone", "{p}");
    }
    // Every skip is in the log too, as a warning.
    let log = stderr(&o);
    for what in ["after_r0c1.tif", "drone_after.tif", "after_r0c2.tif"] {
        assert!(
            log.lines().any(|l| l.contains("WARN") && l.contains(what)),
            "{what}: {log}"
        );
    }
}

#[test]
fn a_rotated_or_south_up_raster_is_refused_in_the_catalogue_with_what_to_do() {
    let src = scene(1024, 3).join("imagery/after/after_r0c0.tif");
    let dir = scratch("inputs-not-north-up");
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let original = gdal::Dataset::open(&src).unwrap();
    let g = original.geo_transform().unwrap();
    let (sin, cos) = 10f64.to_radians().sin_cos();
    let p = g[1];
    for (name, gt) in [
        (
            "rotated.tif",
            [g[0], p * cos, -p * sin, g[3], -p * sin, -p * cos],
        ),
        ("south_up.tif", [g[0], p, 0.0, g[3] - 1000.0, 0.0, p]),
    ] {
        let path = dir.join(name);
        let mut copy = original
            .create_copy(
                &driver,
                path.to_str().unwrap(),
                &gdal::cpl::CslStringList::new(),
            )
            .unwrap();
        copy.set_geo_transform(&gt).unwrap();
        drop(copy);
        let o = run(["catalog", "--json", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        let entries: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let problem = &entries[0]["problem"];
        assert_eq!(problem["kind"], "not_north_up", "{name}: {entries}");
        let m = problem["message"].as_str().unwrap();
        let how = if name == "rotated.tif" {
            "rotated"
        } else {
            "south-up"
        };
        assert!(
            m.contains(how) && m.contains("gdalwarp") && m.contains(name),
            "{m}"
        );
    }
}

#[test]
fn a_missing_path_an_empty_directory_and_a_misspelt_sidecar_are_each_said_so() {
    let dir = scene_copy("inputs-nothing-there");
    let good = dir.join("imagery/after/after_r0c0.tif");
    let missing = dir.join("imagery/after/not_here.tif");
    // The catalogue lists what it can and names what is not there.
    let o = run([
        "catalog",
        "--json",
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let entries: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let kinds: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["problem"]["kind"])
        .collect();
    assert_eq!(kinds.len(), 2, "{entries}");
    assert!(kinds.contains(&&Value::Null) && kinds.contains(&&Value::from("not_found")));
    // A sensor the sidecar misspells is not guessed over.
    sidecar(&good, r#"{"sensor": "satelite"}"#);
    let o = run(["catalog", "--json", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let entries: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(entries[0]["problem"]["kind"], "sidecar", "{entries}");
    assert!(entries[0]["problem"]["message"]
        .as_str()
        .unwrap()
        .contains("satelite"));
    // An after directory with no raster in it: the message names it.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = run([
        "scan",
        "--config",
        dir.join("landwatch.toml").to_str().unwrap(),
        "--after",
        empty.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
        "--no-packets",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("no raster file under") && err.contains("empty"),
        "{err}"
    );
}

#[test]
fn an_empty_configuration_is_named_with_what_to_do() {
    let dir = scratch("inputs-empty-config");
    let cfg = dir.join("landwatch.toml");
    std::fs::write(&cfg, "").unwrap();
    let o = run(["scan", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("landwatch.toml names no [imagery]") && err.contains("landwatch init"),
        "{err}"
    );
}
