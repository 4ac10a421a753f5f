//! Issue 6: the store through `landwatch scan`: incremental nightly runs, stable cases, one run at
//! a time, and crash safety under SIGKILL.

use crate::common::{bin, run, scan_config, scene, scratch, stderr, stdout};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A private copy of a generated scene (tests change its files).
fn scene_copy(size: usize, seed: u64, name: &str) -> PathBuf {
    let src = scene(size, seed);
    let dst = scratch(name);
    let o = Command::new("cp")
        .args(["-a", &format!("{}/.", src.display()), dst.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    dst
}

fn scan_cmd(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("LANDWATCH_LOG", "warn");
    c.args([
        "scan",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    c.env_remove("LANDWATCH_CRASH_AT");
    c
}

/// A store command's `--json` output, on the store of `cfg` and `out`.
fn store_json(args: &[&str], cfg: &Path, out: &Path) -> Value {
    let mut all = args.to_vec();
    all.extend([
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let o = run(all);
    assert!(o.status.success(), "{}", stderr(&o));
    json_of(&o)
}

fn cases(cfg: &Path, out: &Path) -> Vec<Value> {
    let mut v: Vec<Value> = store_json(&["cases"], cfg, out).as_array().unwrap().clone();
    v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    v
}

/// What must be the same after any crash and rerun: each case (id, parcel, status, kind, area)
/// and each packet directory with the hashes of its evidence files (the manifest names the run
/// and the output directory, and the report prints the manifest's fingerprint, so those two
/// differ between output directories by design).
fn state(cfg: &Path, out: &Path) -> (Vec<String>, BTreeMap<String, String>) {
    let cs = cases(cfg, out)
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {} {:.1}",
                c["id"].as_str().unwrap(),
                c["parcel_id"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["area_m2"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    let mut packets = BTreeMap::new();
    for e in std::fs::read_dir(out.join("packets")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() && !name.starts_with('.') {
            let m: Value =
                serde_json::from_slice(&std::fs::read(p.join("manifest.json")).unwrap()).unwrap();
            let mut files: Vec<String> = m["files"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.as_str() != "report.html")
                .map(|(k, v)| format!("{k}={}", v["sha256"].as_str().unwrap()))
                .collect();
            files.sort();
            assert!(files.len() >= 7, "{files:?}");
            packets.insert(name, files.join(" "));
            let o = run(["verify", p.to_str().unwrap()]);
            assert!(o.status.success(), "{}: {}", p.display(), stdout(&o));
        }
    }
    (cs, packets)
}

#[test]
fn a_second_nightly_scan_opens_no_new_case_and_touches_nothing() {
    let dir = scene(1024, 3);
    let cfg = dir.join("landwatch.toml");
    let out = scratch("nightly-twice");
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let first = json_of(&o);
    let n = first["findings"].as_u64().unwrap() as usize;
    assert!(n >= 5);
    let opened = first["cases"].as_array().unwrap();
    assert_eq!(opened.len(), n);
    assert!(opened.iter().all(|c| c["is_new"] == true));
    let before = std::fs::read(out.join("findings.geojson")).unwrap();
    let state1 = state(&cfg, &out);

    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let second = json_of(&o);
    assert_eq!(second["cells_scanned"].as_u64(), Some(0), "{second}");
    assert!(second["cells_unchanged"].as_u64().unwrap() >= 1);
    assert_eq!(std::fs::read(out.join("findings.geojson")).unwrap(), before);
    assert_eq!(state(&cfg, &out), state1);

    // --full redoes every cell: the same cases are seen again, none is opened.
    let mut c = scan_cmd(&cfg, &out);
    c.arg("--full");
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let third = json_of(&o);
    assert!(third["cells_scanned"].as_u64().unwrap() >= 1);
    let seen = third["cases"].as_array().unwrap();
    assert_eq!(seen.len(), n);
    assert!(seen.iter().all(|c| c["is_new"] == false), "{third}");
    assert_eq!(state(&cfg, &out), state1);
    // … on the same imagery, which each case's history says; its geometry is recorded once.
    for c in seen {
        let case = store_json(&["case", c["case_id"].as_str().unwrap()], &cfg, &out);
        assert_eq!(case["geometries"].as_array().unwrap().len(), 1, "{case}");
        let last = case["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["what"], "seen", "{case}");
        assert!(
            last["why"].as_str().unwrap().starts_with(
                "seen again on the same imagery (its cells judged again: a --full run"
            ),
            "{last}"
        );
    }
    // The human summary says when there is nothing to do.
    let o = scan_config(&cfg, &out, &[]);
    assert!(stdout(&o).contains("nothing new"), "{}", stdout(&o));
    let o = run([
        "status",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_new_after_image_over_part_of_the_area_processes_only_its_cells() {
    let dir = scene_copy(1024, 3, "nightly-partial-scene");
    let cfg = dir.join("landwatch.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("cell_size = 1024"), "{text}");
    std::fs::write(&cfg, text.replace("cell_size = 1024", "cell_size = 256")).unwrap();
    let out = scratch("nightly-partial");
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(2),
        "{}",
        stderr(&o)
    );
    let first = json_of(&o);
    let all = first["cells_scanned"].as_u64().unwrap();
    assert!(all >= 12, "{first}");
    let cases1 = cases(&cfg, &out).len();

    // A new after image over the north-west corner only (a copy of part of a tile).
    let tiles: Vec<PathBuf> = std::fs::read_dir(dir.join("imagery/after"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .collect();
    let nw = tiles
        .iter()
        .find(|p| p.to_string_lossy().contains("r0c0"))
        .expect("tile r0c0");
    let o = Command::new("gdal_translate")
        .args(["-q", "-srcwin", "0", "0", "200", "200"])
        .arg(nw)
        .arg(dir.join("imagery/after/after_patch.tif"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(2),
        "{}",
        stderr(&o)
    );
    let second = json_of(&o);
    let redone = second["cells_scanned"].as_u64().unwrap();
    let unchanged = second["cells_unchanged"].as_u64().unwrap();
    eprintln!("incremental: first run {all} cells; after a 100 m x 100 m patch: {redone} processed, {unchanged} unchanged");
    assert!((1..=4).contains(&redone), "{second}");
    assert_eq!(redone + unchanged, all);
    assert_eq!(second["cells_detected"].as_u64(), Some(redone), "{second}");
    // The same changes under the patch continue their cases.
    assert!(
        second["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["is_new"] == false),
        "{second}"
    );
    assert_eq!(cases(&cfg, &out).len(), cases1);

    // A rules change re-evaluates every cell, and the cases found again continue.
    let init = scratch("nightly-partial-init");
    let o = run(["init", init.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rules = std::fs::read_to_string(init.join("rules.toml")).unwrap();
    assert!(rules.contains("min_area_m2 = 400.0"));
    std::fs::write(
        dir.join("my-rules.toml"),
        rules.replacen("min_area_m2 = 400.0", "min_area_m2 = 390.0", 1),
    )
    .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(!text.contains("[rules]"));
    std::fs::write(&cfg, format!("{text}\n[rules]\npath = \"my-rules.toml\"\n")).unwrap();
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(2),
        "{}",
        stderr(&o)
    );
    let third = json_of(&o);
    assert_eq!(third["cells_scanned"].as_u64(), Some(all), "{third}");
    // …from the detection cache: no cell is detected again.
    assert_eq!(third["cells_from_cache"].as_u64(), Some(all), "{third}");
    assert_eq!(third["cells_detected"].as_u64(), Some(0), "{third}");
    assert_eq!(cases(&cfg, &out).len(), cases1);
    // The second night carried the unchanged cells' scores over into its score raster, whose
    // windows the third night's cache entries were checked against: its score raster is the
    // one a night that detects every cell writes.
    let fresh = scratch("nightly-partial-fresh");
    let o = scan_cmd(&cfg, &fresh).arg("--no-cache").output().unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(2),
        "{}",
        stderr(&o)
    );
    assert_eq!(score_rasters(&out), score_rasters(&fresh));
}

/// An output directory's score rasters, in name order (at least one).
fn score_raster_paths(out: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("change_score_"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    paths
}

/// The bytes of an output directory's score rasters, in name order.
fn score_rasters(out: &Path) -> Vec<Vec<u8>> {
    score_raster_paths(out)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn a_second_scan_on_the_same_store_refuses_cleanly_and_a_dead_holders_lock_is_taken_over() {
    let dir = scene(1024, 3);
    let cfg = dir.join("landwatch.toml");
    let out = scratch("nightly-lock");
    std::fs::create_dir_all(&out).unwrap();
    let store = out.join("landwatch.db");
    {
        // This test process holds the lock, as a running scan would.
        let _held = landwatch::store::acquire(&store, "test holder").unwrap();
        let t = std::time::Instant::now();
        let o = scan_cmd(&cfg, &out).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let msg = stderr(&o);
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(t.elapsed().as_secs() < 20, "it must refuse at once");
        assert!(!out.join("findings.geojson").exists());
    }
    // A lock file left by a killed process (its pid is gone): taken over.
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let lock = landwatch::store::lock::lock_path(&store);
    std::fs::write(
        &lock,
        format!("{{\"pid\":{dead},\"host\":\"{}\",\"started_at\":\"2026-11-27T02:00:00Z\",\"holder\":\"landwatch scan\"}}", landwatch::store::lock::host_name()),
    )
    .unwrap();
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn sigkill_at_any_point_then_a_rerun_gives_exactly_the_cases_and_packets_of_a_clean_run() {
    let dir = scene(1024, 3);
    let cfg = dir.join("landwatch.toml");
    let clean = scratch("kill-clean");
    let o = scan_cmd(&cfg, &clean).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let want = state(&cfg, &clean);
    assert!(
        want.0.len() >= 5 && want.1.len() == want.0.len(),
        "{want:?}"
    );
    let loops: usize = std::env::var("LANDWATCH_KILL_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for round in 0..loops {
        for point in [
            "catalogue",
            "detect",
            "store_commit",
            "after_commit",
            "packets",
            "finish",
        ] {
            let out = scratch(&format!("kill-{point}-{round}"));
            let mut c = scan_cmd(&cfg, &out);
            c.env("LANDWATCH_CRASH_AT", point);
            let o = c.output().unwrap();
            assert_eq!(
                o.status.signal(),
                Some(9),
                "{point}: the run was not killed: {:?} {}",
                o.status,
                stderr(&o)
            );
            let o = scan_cmd(&cfg, &out).output().unwrap();
            assert!(o.status.success(), "{point}: rerun failed: {}", stderr(&o));
            let s = json_of(&o);
            // The rerun redid the interrupted work (nothing was marked done by the killed run).
            assert!(s["cells_scanned"].as_u64().unwrap() >= 1, "{point}: {s}");
            assert_eq!(state(&cfg, &out), want, "after a kill at {point}");
            // No half-written packet is left under a packet's name.
            for e in std::fs::read_dir(out.join("packets")).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().to_string();
                assert!(!name.contains(".partial-"), "{point}: left {name}");
            }
            // Passed: free the disk (20 loops × 6 points would otherwise keep gigabytes).
            let _ = std::fs::remove_dir_all(&out);
        }
    }
}

/// The cache entries of an output directory.
fn cache_entries(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("cache/detect"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lwdc"))
        .collect();
    v.sort();
    v
}

/// What a scan found, as the outputs say it: the findings and change regions (GeoJSON), the
/// change scores (GeoTIFF bytes) and the summary's numbers.
fn results(out: &Path, summary: &Value) -> (Value, Value, Vec<Vec<u8>>, Vec<Value>) {
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(name)).unwrap()).unwrap()
    };
    let numbers = [
        "findings",
        "findings_by_kind",
        "coverage",
        "unobserved_protected_m2",
        "observations",
        "cells_scanned",
        "skipped",
    ]
    .iter()
    .map(|k| summary[*k].clone())
    .collect();
    (
        read("findings.geojson"),
        read("changes.geojson"),
        score_rasters(out),
        numbers,
    )
}

fn scan_ok(cfg: &Path, out: &Path, extra: &[&str]) -> (Value, String) {
    let mut c = scan_cmd(cfg, out);
    c.arg("--no-packets").args(extra);
    let o = c.output().unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(2),
        "{}",
        stderr(&o)
    );
    (json_of(&o), stderr(&o))
}

#[test]
fn a_rules_change_rejudges_cached_detections_exactly_and_a_detection_change_detects_again() {
    let dir = scene_copy(1024, 3, "cache-scene");
    let cfg = dir.join("landwatch.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("cell_size = 1024", "cell_size = 256")).unwrap();
    let out = scratch("cache-nightly");
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));

    // First night: every cell is detected, and cached.
    let (first, _) = scan_ok(&cfg, &out, &[]);
    let all = n(&first, "cells_scanned");
    assert!(all >= 12, "{first}");
    assert_eq!(n(&first, "cells_detected"), all, "{first}");
    assert_eq!(n(&first, "cells_from_cache"), 0, "{first}");
    assert_eq!(cache_entries(&out).len() as u64, all);
    // With nothing to look up, the imagery was hashed beside detection and the entries were
    // given their keys after it (the second night finds them valid).
    let hashed_beside = |v: &Value| v["stage_seconds"].get("content_hashes").is_some();
    assert!(hashed_beside(&first), "{first}");
    let findings1 = results(&out, &first).0;

    // A rules change: every cell is judged again, from the cache, with other findings…
    let init = scratch("cache-init");
    let o = run(["init", init.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rules = std::fs::read_to_string(init.join("rules.toml")).unwrap();
    assert!(rules.contains("min_area_m2 = 400.0"));
    let write_rules = |from: &str, to: &str| {
        std::fs::write(dir.join("my-rules.toml"), rules.replace(from, to)).unwrap();
    };
    write_rules("min_area_m2 = 400.0", "min_area_m2 = 100.0");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n[rules]\npath = \"my-rules.toml\"\n")).unwrap();
    let (second, _) = scan_ok(&cfg, &out, &[]);
    assert_eq!(n(&second, "cells_scanned"), all, "{second}");
    assert_eq!(n(&second, "cells_detected"), 0, "{second}");
    assert_eq!(n(&second, "cells_from_cache"), all, "{second}");
    assert!(
        !hashed_beside(&second),
        "entries to look up need the hashes first: {second}"
    );
    let cached = results(&out, &second);
    assert_ne!(
        cached.0, findings1,
        "the rules change must change the findings"
    );
    // The store records where the run's cells came from.
    let o = run([
        "status",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs = json_of(&o)["runs"].clone();
    assert_eq!(runs[0]["cells_from_cache"].as_u64(), Some(all), "{runs}");
    assert_eq!(runs[0]["cells_detected"].as_u64(), Some(0), "{runs}");
    assert_eq!(runs[1]["cells_detected"].as_u64(), Some(all), "{runs}");
    // …exactly those of a scan that detects everything with the new rules.
    let fresh = scratch("cache-fresh");
    let (f, _) = scan_ok(&cfg, &fresh, &["--no-cache"]);
    assert_eq!(n(&f, "cells_detected"), all, "{f}");
    assert!(!fresh.join("cache").exists());
    assert!(
        cached == results(&fresh, &f),
        "cached and fresh results differ"
    );

    // The human summary says where the cells came from.
    write_rules("min_area_m2 = 400.0", "min_area_m2 = 150.0");
    let o = run([
        "scan",
        "--no-packets",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        stdout(&o).contains(&format!(
            "cells: 0 detected, {all} from the detection cache"
        )),
        "{}",
        stdout(&o)
    );

    // An entry keeps only its scores' digest; the scores are read back from the last run's
    // score raster. Without it (one raster damaged, the others deleted), every cell is detected
    // again, saying why and naming the files, and the next run finds them all in the cache again.
    let rasters = score_raster_paths(&out);
    std::fs::write(&rasters[0], b"not a GeoTIFF").unwrap();
    for p in &rasters[1..] {
        std::fs::remove_file(p).unwrap();
    }
    write_rules("min_area_m2 = 400.0", "min_area_m2 = 160.0");
    let (gone, err) = scan_ok(&cfg, &out, &[]);
    assert_eq!(n(&gone, "cells_detected"), all, "{gone}");
    assert_eq!(n(&gone, "cells_from_cache"), 0, "{gone}");
    let damaged = rasters[0].display().to_string();
    assert!(
        err.contains(&format!("score raster {damaged} cannot be opened")),
        "{err}"
    );
    assert!(err.contains("not in the last run's score raster"), "{err}");
    assert!(
        rasters
            .iter()
            .any(|p| err.contains(&p.display().to_string()))
            && err.contains(".lwdc"),
        "the warning names the raster and the entry: {err}"
    );
    write_rules("min_area_m2 = 400.0", "min_area_m2 = 170.0");
    let (back, err) = scan_ok(&cfg, &out, &[]);
    assert_eq!(n(&back, "cells_from_cache"), all, "{back}");
    assert!(!err.contains("score raster"), "{err}");
    let fresh = scratch("cache-fresh-3");
    let (f, _) = scan_ok(&cfg, &fresh, &["--no-cache"]);
    assert!(
        results(&out, &back) == results(&fresh, &f),
        "results from the cache after a lost score raster differ from a fresh scan"
    );

    // A detection parameter change detects every cell again.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n[detect]\nclosing_px = 2\n")).unwrap();
    let (third, _) = scan_ok(&cfg, &out, &[]);
    assert_eq!(n(&third, "cells_detected"), all, "{third}");
    assert_eq!(n(&third, "cells_from_cache"), 0, "{third}");
    assert_eq!(cache_entries(&out).len() as u64, all);

    // A corrupt entry is named, never trusted: its cell is detected again, the results are
    // those of a scan without cache, and the entry is rewritten.
    let entries = cache_entries(&out);
    let victim = &entries[entries.len() / 2];
    let mut bytes = std::fs::read(victim).unwrap();
    let i = bytes.len() - 100;
    bytes[i] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();
    // And a truncated one.
    let short = &entries[0];
    let bytes = std::fs::read(short).unwrap();
    std::fs::write(short, &bytes[..bytes.len() / 3]).unwrap();
    write_rules("min_area_m2 = 400.0", "min_area_m2 = 120.0");
    let (fourth, err) = scan_ok(&cfg, &out, &[]);
    for p in [victim, short] {
        assert!(
            err.contains(&p.display().to_string()) && err.contains("corrupt"),
            "no warning naming {}: {err}",
            p.display()
        );
    }
    assert_eq!(n(&fourth, "cells_detected"), 2, "{fourth}");
    assert_eq!(n(&fourth, "cells_from_cache"), all - 2, "{fourth}");
    let fresh = scratch("cache-fresh-2");
    let (f, _) = scan_ok(&cfg, &fresh, &["--no-cache"]);
    assert!(
        results(&out, &fourth) == results(&fresh, &f),
        "results after a corrupt entry differ from a fresh scan"
    );
    write_rules("min_area_m2 = 400.0", "min_area_m2 = 130.0");
    let (fifth, err) = scan_ok(&cfg, &out, &[]);
    assert_eq!(n(&fifth, "cells_from_cache"), all, "{fifth}");
    assert!(!err.contains("corrupt"), "{err}");

    // --full detects everything again, whatever the cache holds.
    let (full, _) = scan_ok(&cfg, &out, &["--full"]);
    assert_eq!(n(&full, "cells_detected"), all, "{full}");
    assert_eq!(n(&full, "cells_from_cache"), 0, "{full}");
}

/// Overwrites the middle third of a file's bytes (tile data, not the TIFF's header or block
/// table, so the file still opens and only decoding its tiles fails).
fn corrupt_middle(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 3..2 * n / 3] {
        *b = b.wrapping_mul(7).wrapping_add(13);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cells_that_cannot_be_read_are_skipped_input_never_nothing_new() {
    let dir = scene_copy(1024, 3, "nightly-unreadable-scene");
    let cfg = dir.join("landwatch.toml");
    let out = scratch("nightly-unreadable");
    let after: Vec<PathBuf> = std::fs::read_dir(dir.join("imagery/after"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .collect();
    assert!(!after.is_empty());
    let originals: Vec<Vec<u8>> = after.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for p in &after {
        corrupt_middle(p);
    }
    let human = |out: &Path| scan_config(&cfg, out, &[]);
    // Every cell's after date fails to decode: every cell is skipped, named, and the run says so
    // with exit code 2 — not "nothing new" and exit 0, which would tell the night's operator that
    // all was checked.
    for attempt in ["first", "second (the failed cells are tried again)"] {
        let o = human(&out);
        let text = stdout(&o);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{attempt} run: {text}{}",
            stderr(&o)
        );
        assert!(!text.contains("nothing new"), "{attempt} run: {text}");
        assert!(
            text.contains("SKIPPED [cell_read]"),
            "{attempt} run: {text}"
        );
        assert!(
            text.contains("failed (SKIPPED above)"),
            "{attempt} run: {text}"
        );
    }
    // Repaired, the cells are detected and their cases opened.
    for (p, b) in after.iter().zip(&originals) {
        std::fs::write(p, b).unwrap();
    }
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let repaired = json_of(&o);
    assert!(
        repaired["cells_scanned"].as_u64().unwrap() >= 1,
        "{repaired}"
    );
    assert!(repaired["findings"].as_u64().unwrap() >= 5, "{repaired}");
    // Nothing new, but a file in the imagery that cannot be opened is still named, every night,
    // with exit code 2.
    std::fs::write(
        dir.join("imagery/after/partial_download.tif"),
        b"II*\0garbage",
    )
    .unwrap();
    let o = human(&out);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{text}{}", stderr(&o));
    assert!(text.contains("nothing new"), "{text}");
    assert!(
        text.contains("SKIPPED [") && text.contains("partial_download.tif"),
        "{text}"
    );
}

/// The synthetic scene's configuration and a fresh output directory for a test's nights.
fn first_night_dirs(name: &str) -> (PathBuf, PathBuf) {
    (scene(1024, 3).join("landwatch.toml"), scratch(name))
}

/// A store command (`status`, `cases`, `case ID` …) on a test's configuration and output.
fn store_cmd(cfg: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    run(all)
}

#[test]
fn packets_that_could_not_be_written_are_written_by_the_next_run() {
    let (cfg, out) = first_night_dirs("nightly-packets-owed");
    // Where the packets go, a file: no packet can be written (as a full or read-only disk).
    std::fs::write(out.join("packets"), b"in the way").unwrap();
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let first = json_of(&o);
    let n = first["findings"].as_u64().unwrap() as usize;
    assert!(n >= 5);
    assert_eq!(first["packets"]["failed"].as_array().unwrap().len(), n);
    let o = store_cmd(&cfg, &out, &["status"]);
    assert!(
        stdout(&o).contains(&format!("{n} input(s) skipped or packet(s) failed")),
        "{}",
        stdout(&o)
    );
    // The disk is fixed: the next night writes every packet owed, for the same cases.
    std::fs::remove_file(out.join("packets")).unwrap();
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let second = json_of(&o);
    assert!(second["cells_scanned"].as_u64().unwrap() >= 1, "{second}");
    assert_eq!(
        second["packets"]["written"].as_u64(),
        Some(n as u64),
        "{second}"
    );
    assert!(second["cases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["is_new"] == false));
    let (cases, packets) = state(&cfg, &out);
    assert_eq!((cases.len(), packets.len()), (n, n));
    // And then there is nothing new.
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["cells_scanned"].as_u64(), Some(0));
}

#[test]
fn a_run_redoes_cells_when_what_it_takes_the_imagery_for_changes_not_when_a_path_is_spelt_otherwise(
) {
    let dir = scene_copy(1024, 3, "nightly-keys");
    let scan_in = |config: &str| {
        let o = Command::new(bin())
            .current_dir(&dir)
            .env("LANDWATCH_LOG", "warn")
            .args(["scan", "--config", config, "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        json_of(&o)
    };
    let first = scan_in("landwatch.toml");
    assert!(first["cells_scanned"].as_u64().unwrap() >= 1);
    let packets = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("out/packets"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let written = packets();
    assert!(!written.is_empty());
    // The same configuration named by its full path, or through `..`: nothing new, no packet.
    let full = dir.join("landwatch.toml");
    let dotted = format!(
        "../{}/landwatch.toml",
        dir.file_name().unwrap().to_string_lossy()
    );
    for config in [full.to_str().unwrap(), dotted.as_str()] {
        let again = scan_in(config);
        assert_eq!(
            again["cells_scanned"].as_u64(),
            Some(0),
            "{config}: {again}"
        );
    }
    assert_eq!(packets(), written);
    // A sidecar dates an after tile otherwise: its bytes are the same, what the run takes it for
    // is not.
    std::fs::write(
        dir.join("imagery/after/after_r0c1.tif.json"),
        r#"{"acquired_at": "2026-10-20T02:51:00"}"#,
    )
    .unwrap();
    let redated = scan_in("landwatch.toml");
    assert!(redated["cells_scanned"].as_u64().unwrap() >= 1, "{redated}");
    assert_eq!(scan_in("landwatch.toml")["cells_scanned"].as_u64(), Some(0));
    // So does a band override in the configuration.
    let cfg = std::fs::read_to_string(&full).unwrap();
    std::fs::write(
        &full,
        cfg.replace(
            "[imagery]\n",
            "[imagery]\nbands_before = \"nir,green,red,blue\"\n",
        ),
    )
    .unwrap();
    let rebanded = scan_in("landwatch.toml");
    assert!(
        rebanded["cells_scanned"].as_u64().unwrap() >= 1,
        "{rebanded}"
    );
}

#[test]
fn a_night_that_fails_is_in_the_store_with_why() {
    let (cfg, out) = first_night_dirs("nightly-failed-run");
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The next night's only after file is no image at all.
    let junk = out.join("junk.tif");
    std::fs::write(&junk, b"not an image").unwrap();
    let mut c = scan_cmd(&cfg, &out);
    c.args(["--after", junk.to_str().unwrap()]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = store_cmd(&cfg, &out, &["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json_of(&o);
    let newest = &s["runs"][0];
    assert_eq!(newest["status"], "failed", "{s}");
    let why = newest["error"].as_str().unwrap();
    assert!(why.contains("no usable after imagery"), "{why}");
    assert_eq!(s["runs"][1]["status"], "done", "{s}");
    // The human status says it too.
    let o = store_cmd(&cfg, &out, &["status"]);
    assert!(stdout(&o).contains("failed: "), "{}", stdout(&o));
}

#[test]
fn case_ids_carry_the_day_on_the_bureau_s_clock() {
    let (cfg, out) = first_night_dirs("nightly-local-day");
    // Fourteen hours east of UTC (a POSIX TZ string, no zone file needed).
    let day = || {
        (chrono::Utc::now() + chrono::Duration::hours(14))
            .format("%Y%m%d")
            .to_string()
    };
    let before = day();
    let mut c = scan_cmd(&cfg, &out);
    c.args(["--no-packets"]).env("TZ", "XYZ-14");
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let after = day();
    for case in json_of(&o)["cases"].as_array().unwrap() {
        let id = case["case_id"].as_str().unwrap();
        assert!(
            id.contains(&format!("-{before}-")) || id.contains(&format!("-{after}-")),
            "{id}: the day fourteen hours east is {before}"
        );
    }
}

#[test]
fn after_a_kill_mid_packets_the_store_records_each_packet_under_the_run_its_manifest_names() {
    let (cfg, out) = first_night_dirs("kill-packets-record");
    let mut c = scan_cmd(&cfg, &out);
    c.env("LANDWATCH_CRASH_AT", "packets");
    let o = c.output().unwrap();
    assert_eq!(o.status.signal(), Some(9), "{}", stderr(&o));
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "rerun failed: {}", stderr(&o));
    let mut runs_named = std::collections::BTreeSet::new();
    let mut written = Vec::new();
    for case in cases(&cfg, &out) {
        let id = case["id"].as_str().unwrap();
        let o = store_cmd(&cfg, &out, &["case", id, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let d = json_of(&o);
        let packets = d["packets"].as_array().unwrap();
        assert_eq!(packets.len(), 1, "{id}: {packets:?}");
        for p in packets {
            let dir = Path::new(p["dir"].as_str().unwrap());
            let m: Value =
                serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
            assert_eq!(p["run_id"], m["run_id"], "{id}: the store's record of {p}");
            written.push((
                m["run_id"].as_str().unwrap().to_string(),
                m["created_at"].clone(),
                p["recorded_at"].clone(),
            ));
            runs_named.insert(m["run_id"].as_str().unwrap().to_string());
        }
    }
    // The killed run wrote some of the packets, the rerun the others; those of the killed run
    // are recorded as written when their manifests say.
    assert_eq!(runs_named.len(), 2, "{runs_named:?}");
    let o = store_cmd(&cfg, &out, &["status", "--json"]);
    let status = json_of(&o);
    let killed = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "interrupted")
        .and_then(|r| r["id"].as_str())
        .unwrap();
    assert!(runs_named.contains(killed), "{runs_named:?}");
    for (run_id, created_at, recorded_at) in &written {
        if run_id == killed {
            assert_eq!(created_at, recorded_at, "{run_id}");
        }
    }
}

#[test]
fn an_incremental_run_reports_no_protected_parcel_of_unchanged_cells_as_unobserved() {
    let dir = scene_copy(1024, 3, "nightly-coverage-scene");
    let cfg = dir.join("landwatch.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("cell_size = 1024", "cell_size = 512")).unwrap();
    let out = scratch("nightly-coverage");
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let first = json_of(&o);
    assert_eq!(first["cells_scanned"], 4, "{first}");
    let protected1: u64 = first["coverage"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let unobserved1 = first["unobserved_protected_m2"].as_f64().unwrap();

    // A new after image over the north-west corner only: one cell is processed again.
    let o = Command::new("gdal_translate")
        .args(["-q", "-srcwin", "0", "0", "200", "200"])
        .arg(dir.join("imagery/after/after_r0c0.tif"))
        .arg(dir.join("imagery/after/after_patch.tif"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = scan_cmd(&cfg, &out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let second = json_of(&o);
    assert_eq!(second["cells_scanned"], 1, "{second}");
    assert_eq!(second["cells_unchanged"], 3, "{second}");
    // The parcels of the unchanged cells were not looked at tonight: not reported unobserved, and
    // their area not counted as protected area not observed.
    let cov = second["coverage"].as_object().unwrap();
    assert!(cov.get("unobserved").is_none(), "{second}");
    let protected2: u64 = cov.values().map(|v| v.as_u64().unwrap()).sum();
    assert!(protected2 >= 1 && protected2 < protected1, "{second}");
    let unobserved2 = second["unobserved_protected_m2"].as_f64().unwrap();
    assert!(
        unobserved2 <= unobserved1 + 1.0,
        "{unobserved2} > {unobserved1}: {second}"
    );
    // The coverage layer agrees with the summary.
    let o = Command::new("ogrinfo")
        .args(["-q", "-sql", "SELECT COUNT(*) AS n FROM coverage"])
        .arg(out.join("coverage.gpkg"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("n (Integer) = {protected2}")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
