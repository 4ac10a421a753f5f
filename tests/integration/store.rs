//! The store commands through the real binary: `init`, `cases`, `case` (and reviewing a case),
//! `status`, on a store populated through the library, and the errors for a missing store.

use crate::common::{run, scratch, stderr, stdout};
use chrono::NaiveDate;
use landwatch::config::Config;
use landwatch::store::{CaseContext, FindingRecord, NewRun, PacketRecord, RunOutcome, Store};
use std::path::Path;

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> String {
    format!("POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")
}

fn finding(id: &str, parcel: &str, wkt: String) -> FindingRecord {
    FindingRecord {
        finding_id: id.into(),
        parcel_id: parcel.into(),
        kind: "farmland_construction".into(),
        rule_id: "R06-FARM-BUILD".into(),
        severity: "high".into(),
        transition: "vegetation_to_built".into(),
        area_m2: 120.0,
        confidence: 0.87,
        cells: vec!["b0db2d3d-r0000-c0000".into()],
        after_date: Some("2026-11-27".into()),
        geometry_wkt: wkt,
        properties: serde_json::json!({}),
    }
}

fn night(store: &mut Store, started_at: &str, findings: &[FindingRecord]) -> Vec<String> {
    let run_id = store
        .begin_run(&NewRun {
            started_at: started_at.into(),
            config_sha256: "c".into(),
            grid_fingerprint: "b0db2d3d".into(),
            full: false,
            software_version: landwatch::VERSION.into(),
            args: serde_json::json!([]),
        })
        .unwrap();
    let ctx = CaseContext {
        region_code: "320509".into(),
        day: NaiveDate::parse_from_str(&started_at[..10], "%Y-%m-%d").unwrap(),
        overlap_ratio: 0.3,
        reopen_growth: 0.5,
        reopen_growth_m2: 100.0,
    };
    let a = store
        .commit_findings(
            &run_id,
            &ctx,
            &["b0db2d3d-r0000-c0000".to_string()],
            findings,
        )
        .unwrap();
    for x in a.iter().filter(|x| x.is_new) {
        store
            .record_packet(
                &x.case_id,
                &PacketRecord {
                    version: 1,
                    dir: format!("packets/{}", x.case_id),
                    manifest_sha256: "ab".repeat(32),
                    run_id: run_id.clone(),
                    written_at: None,
                },
            )
            .unwrap();
    }
    store
        .finish_run(
            &run_id,
            &[],
            &RunOutcome {
                status: "done".into(),
                cells_processed: 1,
                cells_skipped_unchanged: 3,
                cells_detected: 1,
                cells_from_cache: 0,
                findings: findings.len(),
                new_cases: a.iter().filter(|x| x.is_new).count(),
                updated_cases: a.iter().filter(|x| !x.is_new).count(),
                disappeared_cases: 0,
                unobserved_protected_m2: 250.0,
                skipped_inputs: 0,
            },
        )
        .unwrap();
    a.into_iter().map(|x| x.case_id).collect()
}

/// A store with two nights: a case seen twice, a second case on another parcel, a split.
fn populated(dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    let path = dir.join("out/landwatch.db");
    let mut store = Store::open(&path).unwrap();
    let first = night(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[
            finding("f1", "P-001", rect(0.0, 0.0, 20.0, 10.0)),
            finding("f2", "P-002", rect(100.0, 0.0, 110.0, 10.0)),
        ],
    );
    let second = night(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[
            finding("g1", "P-001", rect(0.0, 0.0, 8.0, 10.0)),
            finding("g2", "P-001", rect(12.0, 0.0, 20.0, 10.0)),
            finding("f2", "P-002", rect(100.0, 0.0, 110.0, 10.0)),
        ],
    );
    let mut ids = first;
    ids.extend(second);
    (path, ids)
}

#[test]
fn init_writes_a_config_that_loads_rules_and_keys_and_never_overwrites() {
    let dir = scratch("store-init").join("site");
    let o = run(["init", dir.to_str().unwrap(), "--region-code", "320509"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = Config::load(&dir.join("landwatch.toml")).unwrap();
    assert_eq!(cfg.project.region_code, "320509");
    assert_eq!(cfg.store_path(), dir.join("out/landwatch.db"));
    assert_eq!(cfg.store.overlap_ratio, 0.3);
    assert_eq!(cfg.rules.path.as_deref(), Some(Path::new("rules.toml")));
    let rules = landwatch::rules::RuleSet::load(&cfg.resolve(Path::new("rules.toml"))).unwrap();
    assert_eq!(rules, landwatch::rules::RuleSet::default_rules());
    landwatch::evidence::load_signing_key(&dir.join("keys/bureau.key")).unwrap();
    // The scan signs with the key init wrote.
    assert_eq!(
        cfg.evidence.key.as_deref().map(|k| cfg.resolve(k)),
        Some(dir.join("keys/bureau.key"))
    );
    landwatch::evidence::load_verifying_key(&dir.join("keys/bureau.pub")).unwrap();
    let text = std::fs::read_to_string(dir.join("landwatch.toml")).unwrap();
    for section in [
        "[project]",
        "[imagery]",
        "[parcels]",
        "[grid]",
        "[detect]",
        "[detector]",
        "[rules]",
        "[output]",
        "[store]",
    ] {
        assert!(text.contains(section), "{section} missing");
    }
    // A second init names the files it will not overwrite, and changes nothing.
    let before = std::fs::read(dir.join("keys/bureau.key")).unwrap();
    let o = run(["init", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("landwatch.toml") && e.contains("rules.toml"),
        "{e}"
    );
    assert!(e.contains("bureau.key"), "{e}");
    assert_eq!(std::fs::read(dir.join("keys/bureau.key")).unwrap(), before);
    // A bad region code is refused before anything is written.
    let other = dir.with_file_name("other");
    let o = run(["init", other.to_str().unwrap(), "--region-code", "32-05"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("region_code"), "{}", stderr(&o));
    assert!(!other.join("landwatch.toml").exists());
}

/// The project `init` writes scans once its data is where its landwatch.toml says, and the
/// configuration says how protected parcels are marked (it did not).
#[test]
fn a_project_init_wrote_scans_once_its_data_is_where_it_says() {
    let src = crate::common::scene(1024, 3);
    let dir = scratch("store-init-scan").join("site");
    let o = run(["init", dir.to_str().unwrap(), "--region-code", "320509"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("landwatch.toml")).unwrap();
    assert!(
        text.contains("basic_farmland") && text.contains("eco_redline") && text.contains("是"),
        "{text}"
    );
    crate::common::copy_dir(&src.join("imagery/before"), &dir.join("imagery/before"));
    crate::common::copy_dir(&src.join("imagery/after"), &dir.join("imagery/after"));
    for file in ["parcels.gpkg", "permits.gpkg"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    let o = run([
        "scan",
        "-q",
        "--json",
        "--no-packets",
        "--config",
        dir.join("landwatch.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(summary["findings"].as_u64() > Some(0), "{summary}");
    assert!(dir.join("out/findings.geojson").exists());
    let cases = stdout(&run([
        "cases",
        "--config",
        dir.join("landwatch.toml").to_str().unwrap(),
    ]));
    assert!(cases.contains("320509-"), "{cases}");
}

#[test]
fn cases_lists_json_and_a_table() {
    let dir = scratch("store-cases");
    let (db, ids) = populated(&dir);
    let o = run(["cases", "--store", db.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    for c in arr {
        for k in [
            "id",
            "parcel_id",
            "status",
            "kind",
            "first_seen",
            "last_seen",
        ] {
            assert!(c[k].is_string(), "{k} in {c}");
        }
        assert!(c["parents"].is_array());
    }
    assert_eq!(arr[0]["id"], ids[0].as_str());
    assert_eq!(arr[0]["first_seen"], "2026-11-28T02:00:00Z");
    assert_eq!(arr[0]["last_seen"], "2026-11-29T02:00:00Z");
    let split = arr
        .iter()
        .find(|c| c["id"] == "320509-20261129-0001")
        .unwrap();
    assert_eq!(split["parents"], serde_json::json!([ids[0]]));
    // Filters.
    let o = run([
        "cases",
        "--store",
        db.to_str().unwrap(),
        "--json",
        "--since",
        "2026-11-29",
        "--status",
        "open",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let o = run([
        "cases",
        "--store",
        db.to_str().unwrap(),
        "--status",
        "guilty",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("guilty"), "{}", stderr(&o));
    // The table, with the bilingual note.
    let o = run(["cases", "--store", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(
        t.contains("疑似违法用地线索") && t.contains("Suspected violations"),
        "{t}"
    );
    assert!(t.contains(&ids[0]) && t.contains("P-002"), "{t}");
    assert!(t.contains("3 case(s)"), "{t}");
    // Found through the config too.
    let cfg = dir.join("landwatch.toml");
    std::fs::write(&cfg, "[output]\ndir = \"out\"\n").unwrap();
    let o = run(["cases", "--config", cfg.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn case_shows_history_and_records_a_review() {
    let dir = scratch("store-case");
    let (db, ids) = populated(&dir);
    let db = db.to_str().unwrap();
    let o = run(["case", &ids[0], "--store", db, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["id"], ids[0].as_str());
    assert_eq!(v["status"], "open");
    assert_eq!(v["geometries"].as_array().unwrap().len(), 2);
    assert_eq!(v["packets"].as_array().unwrap().len(), 1);
    assert_eq!(v["children"], serde_json::json!(["320509-20261129-0001"]));
    let whats: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(whats, ["opened", "packet", "seen", "split"]);
    // An analyst's decision goes into the audit log.
    let decide = |by: &str, why: &str| {
        run([
            "case",
            &ids[0],
            "--store",
            db,
            "--set-status",
            "confirmed",
            "--by",
            by,
            "--reason",
            why,
        ])
    };
    let o = decide("Wang Fang", "field check: new shed on farmland");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("status set to 'confirmed' (was 'open') by Wang Fang"),
        "{}",
        stdout(&o)
    );
    let o = run(["case", &ids[0], "--store", db]);
    let t = stdout(&o);
    assert!(t.contains("status      confirmed"), "{t}");
    assert!(t.contains("Wang Fang") && t.contains("field check"), "{t}");
    assert!(t.contains("[open → confirmed]"), "{t}");
    // The same decision again (a second field check) is recorded again, and said to be.
    let o = decide("Li Wei", "second field check: the shed is still there");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("already 'confirmed'; the decision is recorded again, by Li Wei"),
        "{}",
        stdout(&o)
    );
    let t = stdout(&run(["case", &ids[0], "--store", db]));
    assert!(t.contains("second field check"), "{t}");
    // --set-status needs --by and --reason.
    let o = run(["case", &ids[0], "--store", db, "--set-status", "dismissed"]);
    assert_eq!(o.status.code(), Some(1), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("--by"), "{}", stderr(&o));
    // Unknown case.
    let o = run(["case", "320509-20000101-0001", "--store", db]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no case '320509-20000101-0001'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn status_shows_runs_and_counts() {
    let dir = scratch("store-status");
    let (db, _) = populated(&dir);
    let db = db.to_str().unwrap();
    let o = run(["status", "--store", db, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "done");
    assert_eq!(runs[0]["new_cases"], 1);
    assert_eq!(runs[0]["updated_cases"], 2);
    assert_eq!(runs[1]["new_cases"], 2);
    assert_eq!(runs[0]["unobserved_protected_m2"], 250.0);
    assert_eq!(v["cases_by_status"]["open"], 3);
    assert!(v["lock"].is_null());
    let o = run(["status", "--store", db, "--last", "1"]);
    let t = stdout(&o);
    assert!(t.contains("last 1 run(s)"), "{t}");
    assert!(t.contains("1 new, 2 updated"), "{t}");
    assert!(t.contains("250.0 m²"), "{t}");
}

#[test]
fn a_missing_store_says_how_to_create_it() {
    let dir = scratch("store-missing");
    let db = dir.join("nothing/landwatch.db");
    for cmd in ["cases", "status"] {
        let o = run([cmd, "--store", db.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        let e = stderr(&o);
        assert!(
            e.contains("no store at") && e.contains("nothing/landwatch.db"),
            "{e}"
        );
    }
    let cfg = dir.join("landwatch.toml");
    std::fs::write(&cfg, "[output]\ndir = \"results\"\n").unwrap();
    let o = run(["status", "--config", cfg.to_str().unwrap()]);
    let e = stderr(&o);
    assert!(e.contains("results/landwatch.db"), "{e}");
    assert!(e.contains("landwatch scan --config"), "{e}");
    // No store was created by looking.
    assert!(!dir.join("results/landwatch.db").exists());
    let o = run(["cases"]);
    assert!(stderr(&o).contains("--store"), "{}", stderr(&o));
}

#[test]
fn the_read_commands_never_change_a_store() {
    let dir = scratch("store-read-only");
    let (db, ids) = populated(&dir);
    let dbs = db.to_str().unwrap();

    // An empty file where the store should be is no store yet, and stays an empty file.
    let empty = dir.join("empty/landwatch.db");
    std::fs::create_dir_all(empty.parent().unwrap()).unwrap();
    std::fs::write(&empty, b"").unwrap();
    for args in [
        vec!["status", "--store", empty.to_str().unwrap()],
        vec!["cases", "--store", empty.to_str().unwrap()],
        vec![
            "case",
            "320509-20261128-0001",
            "--store",
            empty.to_str().unwrap(),
        ],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("no store at") && e.contains("yet"), "{e}");
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "{args:?}");
    }

    // A store of an older schema is read as it is, never migrated by looking: the commands
    // say that a scan upgrades it.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    for args in [
        vec!["status", "--store", dbs],
        vec!["cases", "--store", dbs],
        vec!["case", ids[0].as_str(), "--store", dbs],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("schema version 1") && e.contains("landwatch scan"),
            "{e}"
        );
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "not migrated by a read command");
    conn.pragma_update(None, "user_version", landwatch::store::SCHEMA_VERSION)
        .unwrap();
    drop(conn);
    let o = run(["status", "--store", dbs]);
    assert!(o.status.success(), "{}", stderr(&o));
}
