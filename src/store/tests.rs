//! Tests of the store on temporary SQLite files.

use super::*;
use proptest::prelude::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("landwatch.db")).unwrap();
    (dir, store)
}

fn new_run(started_at: &str) -> NewRun {
    NewRun {
        started_at: started_at.into(),
        config_sha256: "c0ffee".into(),
        grid_fingerprint: "b0db2d3d".into(),
        full: false,
        software_version: crate::VERSION.into(),
        args: serde_json::json!(["scan", "--config", "landwatch.toml"]),
    }
}

fn ctx(day: &str) -> CaseContext {
    CaseContext {
        region_code: "320509".into(),
        day: NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap(),
        overlap_ratio: 0.3,
        reopen_growth: 0.5,
        reopen_growth_m2: 100.0,
    }
}

fn rect_wkt(x0: f64, y0: f64, x1: f64, y1: f64) -> String {
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
        area_m2: 100.0,
        confidence: 0.9,
        cells: vec!["b0db2d3d-r0000-c0000".into()],
        after_date: Some("2026-11-27".into()),
        geometry_wkt: wkt,
        properties: serde_json::json!({"approved_use": "farmland"}),
    }
}

fn cells() -> Vec<String> {
    vec!["b0db2d3d-r0000-c0000".into()]
}

fn outcome(status: &str) -> RunOutcome {
    RunOutcome {
        status: status.into(),
        cells_processed: 1,
        cells_skipped_unchanged: 0,
        cells_detected: 1,
        cells_from_cache: 0,
        findings: 0,
        new_cases: 0,
        updated_cases: 0,
        disappeared_cases: 0,
        unobserved_protected_m2: 12.5,
        skipped_inputs: 0,
    }
}

/// Runs one whole run: begin, commit, finish; returns the assignments.
fn run_once(
    store: &mut Store,
    started_at: &str,
    findings: &[FindingRecord],
) -> (String, Vec<CaseAssignment>) {
    run_seeing(store, started_at, findings, &RunSight::default())
}

/// [`run_once`], the run also having seen `sight`.
fn run_seeing(
    store: &mut Store,
    started_at: &str,
    findings: &[FindingRecord],
    sight: &RunSight,
) -> (String, Vec<CaseAssignment>) {
    let run = store.begin_run(&new_run(started_at)).unwrap();
    let a = store
        .commit_findings_observed(&run, &ctx(&started_at[..10]), &cells(), findings, sight)
        .unwrap();
    store.finish_run(&run, &[], &outcome("done")).unwrap();
    (run, a)
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn status_of(store: &Store, id: &str) -> String {
    store.case(id).unwrap().unwrap().case.status
}

#[test]
fn a_new_store_is_migrated_with_wal_and_foreign_keys() {
    let (_dir, store) = temp_store();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    // Foreign keys are enforced: a finding for a run that does not exist is refused.
    let e = store.conn.execute(
        "INSERT INTO cells (run_id, cell_id, after_key, inputs_key) VALUES ('nope', 'c', 'a', 'i')",
        [],
    );
    assert!(e.is_err());
    for t in [
        "runs",
        "imagery",
        "cells",
        "findings",
        "cases",
        "case_parents",
        "case_geometries",
        "case_events",
        "packets",
        "case_sequences",
    ] {
        assert_eq!(count(&store, t), 0, "{t}");
    }
}

#[test]
fn reopening_is_a_no_op_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/landwatch.db");
    let mut store = Store::open(&path).unwrap();
    let run = store.begin_run(&new_run("2026-11-28T02:00:00Z")).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.status(5).unwrap().runs[0].id, run);
}

#[test]
fn a_newer_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("landwatch.db");
    drop(Store::open(&path).unwrap());
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let e = Store::open(&path).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(msg.contains("landwatch.db"), "{msg}");
    assert!(msg.contains("newer landwatch"), "{msg}");
}

#[test]
fn a_missing_store_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing.db");
    let msg = Store::open_existing(&path).unwrap_err().to_string();
    assert!(msg.contains("no store at"), "{msg}");
    assert!(msg.contains("nothing.db"), "{msg}");
    assert!(!path.exists());
}

#[test]
fn ids_are_readable_and_sortable() {
    let d = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
    assert_eq!(case_id("320509", d, 42), "320509-20261128-0042");
    assert_eq!(case_id("320509", d, 12345), "320509-20261128-12345");
    let r = run_id("2026-11-28T02:00:00Z").unwrap();
    assert!(r.starts_with("run-20261128T020000Z-"), "{r}");
    assert_eq!(r.len(), "run-20261128T020000Z-3f2a".len());
    let r = run_id("2026-11-28T10:00:00+08:00").unwrap();
    assert!(r.starts_with("run-20261128T020000Z-"), "{r}");
    assert!(run_id("yesterday").is_err());
}

#[test]
fn case_numbers_run_per_region_and_day() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[
            finding("fb", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0)),
            finding("fa", "p2", rect_wkt(0.0, 0.0, 10.0, 10.0)),
        ],
    );
    // Numbers follow finding ids, not input order.
    assert_eq!(a[0].case_id, "320509-20261128-0002");
    assert_eq!(a[1].case_id, "320509-20261128-0001");
    assert!(a.iter().all(|x| x.is_new && x.parents.is_empty()));
    let (_, b) = run_once(
        &mut store,
        "2026-11-28T14:00:00Z",
        &[finding("fc", "p3", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    assert_eq!(b[0].case_id, "320509-20261128-0003");
    let (_, c) = run_once(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[finding("fd", "p4", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    assert_eq!(c[0].case_id, "320509-20261129-0001");
}

#[test]
fn a_finding_seen_again_updates_its_case() {
    let (_dir, mut store) = temp_store();
    let (r1, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let mut grown = finding("f1b", "p1", rect_wkt(0.0, 0.0, 14.0, 10.0));
    grown.area_m2 = 140.0;
    let (r2, b) = run_once(&mut store, "2026-11-29T02:00:00Z", &[grown]);
    assert_eq!(a[0].case_id, b[0].case_id);
    assert!(!b[0].is_new);
    let d = store.case(&a[0].case_id).unwrap().unwrap();
    assert_eq!(d.case.first_seen, "2026-11-28T02:00:00Z");
    assert_eq!(d.case.last_seen, "2026-11-29T02:00:00Z");
    assert_eq!(d.case.area_m2, 140.0);
    assert_eq!(d.first_run_id, r1);
    assert_eq!(d.last_run_id, r2);
    assert_eq!(d.geometries.len(), 2);
    assert_eq!(d.findings.len(), 2);
    let whats: Vec<&str> = d.events.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, ["opened", "seen"]);
    assert_eq!(count(&store, "cases"), 1);
}

#[test]
fn committing_the_same_findings_twice_in_a_run_adds_nothing() {
    let (_dir, mut store) = temp_store();
    let fs = [
        finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0)),
        finding("f2", "p1", rect_wkt(5.0, 0.0, 15.0, 10.0)),
        finding("f3", "p2", rect_wkt(0.0, 0.0, 10.0, 10.0)),
    ];
    let run = store.begin_run(&new_run("2026-11-28T02:00:00Z")).unwrap();
    let a = store
        .commit_findings(&run, &ctx("2026-11-28"), &cells(), &fs)
        .unwrap();
    let tables = [
        "cases",
        "findings",
        "case_events",
        "case_geometries",
        "case_parents",
    ];
    let before: Vec<i64> = tables.iter().map(|t| count(&store, t)).collect();
    let b = store
        .commit_findings(&run, &ctx("2026-11-28"), &cells(), &fs)
        .unwrap();
    assert_eq!(a, b);
    let after: Vec<i64> = tables.iter().map(|t| count(&store, t)).collect();
    assert_eq!(before, after);
}

#[test]
fn a_run_redone_after_a_kill_finds_the_same_cases_and_calls_them_new() {
    let (_dir, mut store) = temp_store();
    let fs = [finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))];
    let killed = store.begin_run(&new_run("2026-11-28T02:00:00Z")).unwrap();
    let a = store
        .commit_findings(&killed, &ctx("2026-11-28"), &cells(), &fs)
        .unwrap();
    // The process dies before finish_run; the next run marks it and redoes the cells.
    assert_eq!(store.mark_interrupted_runs().unwrap(), 1);
    assert!(matches!(
        store.commit_findings(&killed, &ctx("2026-11-28"), &cells(), &fs),
        Err(StoreError::RunNotRunning { .. })
    ));
    assert!(store.cell_marks("b0db2d3d").unwrap().is_empty());
    let (_, b) = run_once(&mut store, "2026-11-28T02:10:00Z", &fs);
    assert_eq!(a, b);
    assert!(b[0].is_new);
    assert_eq!(count(&store, "cases"), 1);
    // A later run sees it as an update.
    let (_, c) = run_once(&mut store, "2026-11-29T02:00:00Z", &fs);
    assert!(!c[0].is_new);
    let st = store.status(10).unwrap();
    assert_eq!(st.runs[2].status, "interrupted");
}

#[test]
fn a_split_keeps_the_id_for_the_best_overlap_and_records_lineage() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 20.0, 10.0))],
    );
    let parent = a[0].case_id.clone();
    // Two pieces; the left one sticks out less (ratio 1 vs 0.5 of the smaller).
    let (_, b) = run_once(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[
            finding("g2", "p1", rect_wkt(15.0, 0.0, 25.0, 10.0)),
            finding("g1", "p1", rect_wkt(0.0, 0.0, 8.0, 10.0)),
        ],
    );
    assert_eq!(b[1].case_id, parent);
    assert!(!b[1].is_new);
    assert_eq!(b[0].case_id, "320509-20261129-0001");
    assert!(b[0].is_new);
    assert_eq!(b[0].parents, vec![parent.clone()]);
    let d = store.case(&parent).unwrap().unwrap();
    assert_eq!(d.children, vec![b[0].case_id.clone()]);
    assert!(d.events.iter().any(|e| e.what == "split"));
    let rows = store.cases(&CaseFilter::default()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].parents, vec![parent]);
}

#[test]
fn a_merge_continues_the_oldest_case() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-27T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 8.0, 10.0))],
    );
    let (_, b) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[
            finding("f1", "p1", rect_wkt(0.0, 0.0, 8.0, 10.0)),
            finding("f2", "p1", rect_wkt(12.0, 0.0, 20.0, 10.0)),
        ],
    );
    let (old, young) = (a[0].case_id.clone(), b[1].case_id.clone());
    assert_ne!(old, young);
    store
        .set_case_status(&young, "confirmed", "王警官", "a shed, field-checked")
        .unwrap();
    let (_, c) = run_once(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[finding("f3", "p1", rect_wkt(0.0, 0.0, 20.0, 10.0))],
    );
    assert_eq!(c[0].case_id, old);
    assert_eq!(c[0].parents, vec![young.clone()]);
    let y = store.case(&young).unwrap().unwrap();
    assert_eq!(y.case.status, "merged");
    assert_eq!(y.merged_into.as_deref(), Some(old.as_str()));
    let merged_event = y.events.iter().find(|e| e.what == "merged").unwrap();
    assert_eq!(merged_event.related_case.as_deref(), Some(old.as_str()));
    assert_eq!(merged_event.from_status.as_deref(), Some("confirmed"));
    // The open case that continues it says what the analyst had decided on the merged one.
    let o = store.case(&old).unwrap().unwrap();
    assert_eq!(o.case.status, "open");
    let from = o.events.iter().find(|e| e.what == "merged_from").unwrap();
    assert!(
        from.why.starts_with(&format!(
            "case {young} merged into this case; it had been confirmed ("
        )) && from.why.ends_with(
            ", by 王警官: a shed, field-checked), a decision on its ground alone that stays \
                 with it: review this case as a whole"
        ),
        "{}",
        from.why
    );
    // A merged case is not matched again and cannot be reviewed.
    let (_, d) = run_once(
        &mut store,
        "2026-11-30T02:00:00Z",
        &[finding("f3", "p1", rect_wkt(0.0, 0.0, 20.0, 10.0))],
    );
    assert_eq!(d[0].case_id, old);
    let e = store
        .set_case_status(&young, "confirmed", "analyst", "x")
        .unwrap_err();
    assert!(e.to_string().contains(&old), "{e}");
}

#[test]
fn another_parcel_opens_another_case() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let (_, b) = run_once(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[
            finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0)),
            finding("f9", "p2", rect_wkt(0.0, 0.0, 10.0, 10.0)),
        ],
    );
    assert_eq!(b[0].case_id, a[0].case_id);
    assert_ne!(b[1].case_id, a[0].case_id);
    // A new case on the other parcel, linked to the case whose ground it shares.
    assert!(
        b[1].is_new && b[1].parents == [a[0].case_id.clone()],
        "{:?}",
        b[1]
    );
    // From then on each parcel's case goes on by itself.
    let (_, c) = run_once(
        &mut store,
        "2026-11-30T02:00:00Z",
        &[
            finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0)),
            finding("f9", "p2", rect_wkt(0.0, 0.0, 10.0, 10.0)),
        ],
    );
    assert_eq!(
        c.iter()
            .map(|c| (c.case_id.clone(), c.is_new))
            .collect::<Vec<_>>(),
        [(a[0].case_id.clone(), false), (b[1].case_id.clone(), false)]
    );
}

#[test]
fn a_case_no_longer_flagged_where_its_change_is_still_seen_says_why() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[
            finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0)),
            finding("f2", "p2", rect_wkt(20.0, 0.0, 30.0, 10.0)),
        ],
    );
    // The next night sees both changes again; a permit registered since explains the first, and
    // the one unflagged change on p2 lies elsewhere in it (or the one over it is on p1).
    let change = |parcel: &str, wkt: String, why: &str| UnflaggedChange {
        parcel_id: parcel.into(),
        geometry_wkt: wkt,
        area_m2: 100.0,
        why: why.into(),
    };
    let run = store.begin_run(&new_run("2026-11-29T02:00:00Z")).unwrap();
    store
        .commit_findings_observed(
            &run,
            &ctx("2026-11-29"),
            &cells(),
            &[],
            &RunSight {
                unflagged: &[
                    change(
                        "p1",
                        rect_wkt(0.0, 0.0, 10.0, 10.0),
                        "valid permits explain 100.0 m² of the 100.0 m² (GH-1)",
                    ),
                    change("p2", rect_wkt(40.0, 0.0, 50.0, 10.0), "elsewhere"),
                    change("p1", rect_wkt(20.0, 0.0, 30.0, 10.0), "another parcel's"),
                ],
                ..Default::default()
            },
        )
        .unwrap();
    store.finish_run(&run, &[], &outcome("done")).unwrap();
    let why = |id: &str| {
        let d = store.case(id).unwrap().unwrap();
        assert_eq!(d.case.status, "disappeared");
        d.events
            .iter()
            .find(|e| e.what == "disappeared")
            .unwrap()
            .why
            .clone()
    };
    assert_eq!(
        why(&a[0].case_id),
        "no finding matched it although every cell it touches was processed: the change is \
         still seen there (100.0 m²), but no rule flags it now: valid permits explain 100.0 m² \
         of the 100.0 m² (GH-1)"
    );
    assert_eq!(
        why(&a[1].case_id),
        "no finding matched it although every cell it touches was processed"
    );
    // A change that cannot be read is refused.
    let run = store.begin_run(&new_run("2026-11-30T02:00:00Z")).unwrap();
    let bad = [change("p1", "POINT(0 0)".into(), "?")];
    assert!(store
        .commit_findings_observed(
            &run,
            &ctx("2026-11-30"),
            &cells(),
            &[],
            &RunSight {
                unflagged: &bad,
                ..Default::default()
            },
        )
        .is_err());
}

#[test]
fn a_case_on_a_parcel_no_longer_in_the_layer_says_so() {
    let (_dir, mut store) = temp_store();
    let g = rect_wkt(0.0, 0.0, 10.0, 10.0);
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", g.clone())],
    );
    let id = a[0].case_id.clone();
    let ids: HashSet<String> = ["p7".to_string()].into();
    let sight = RunSight {
        parcel_ids: Some(&ids),
        ..Default::default()
    };
    // Seen on the parcel now there: the same case, on p7, saying why.
    let (_, b) = run_seeing(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[finding("f7", "p7", g)],
        &sight,
    );
    assert_eq!(b[0].case_id, id);
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(d.case.parcel_id, "p7");
    let seen = d.events.iter().find(|e| e.what == "seen").unwrap();
    assert!(seen.why.ends_with("its parcel p1 is no longer in the parcel layer (re-surveyed?): the same ground lies on parcel p7 now"), "{}", seen.why);
    // Not seen, on a parcel since gone: the disappearance says that too, and why the change,
    // still seen on the parcel there now, is no longer flagged.
    let ids: HashSet<String> = ["p9".to_string()].into();
    let run = store.begin_run(&new_run("2026-11-30T02:00:00Z")).unwrap();
    let still = [UnflaggedChange {
        parcel_id: "p9".into(),
        geometry_wkt: rect_wkt(0.0, 0.0, 10.0, 10.0),
        area_m2: 100.0,
        why: "no rule flags vegetation_to_built on a parcel of approved use 'construction'".into(),
    }];
    store
        .commit_findings_observed(
            &run,
            &ctx("2026-11-30"),
            &cells(),
            &[],
            &RunSight {
                parcel_ids: Some(&ids),
                unflagged: &still,
                ..Default::default()
            },
        )
        .unwrap();
    let d = store.case(&id).unwrap().unwrap();
    let gone = d.events.iter().find(|e| e.what == "disappeared").unwrap();
    assert_eq!(
        gone.why,
        "no finding matched it although every cell it touches was processed: the change is \
         still seen there (100.0 m²), but no rule flags it now: no rule flags vegetation_to_built \
         on a parcel of approved use 'construction'; its parcel p7 is no longer in the parcel \
         layer"
    );
}

#[test]
fn a_change_on_ground_a_parcel_gave_to_another_opens_a_case_split_from_its_case() {
    // The survey kept p1's id for part of it and gave the rest to a new parcel p2: the part of
    // the change there opens a new case, split from p1's case, which the part on p1 continues.
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let id = a[0].case_id.clone();
    let ids: HashSet<String> = ["p1".to_string(), "p2".to_string()].into();
    let (_, b) = run_seeing(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[
            finding("f1", "p1", rect_wkt(0.0, 0.0, 6.0, 10.0)),
            finding("f2", "p2", rect_wkt(6.0, 0.0, 10.0, 10.0)),
        ],
        &RunSight {
            parcel_ids: Some(&ids),
            ..Default::default()
        },
    );
    assert_eq!(b[0].case_id, id);
    let child = store.case(&b[1].case_id).unwrap().unwrap();
    assert_eq!(
        (child.case.parcel_id.as_str(), child.case.parents.clone()),
        ("p2", vec![id.clone()])
    );
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(d.children, vec![b[1].case_id.clone()]);
    let split = d.events.iter().find(|e| e.what == "split").unwrap();
    assert_eq!(
        split.why,
        format!(
            "part of its region is now case {}, on parcel p2: the parcel layer gives that \
             ground to parcel p2 now (re-surveyed?)",
            b[1].case_id
        )
    );
}

#[test]
fn a_dismissed_case_is_opened_again_when_its_change_grows() {
    let (_dir, mut store) = temp_store();
    let sized = |id: &str, area: f64| FindingRecord {
        area_m2: area,
        ..finding(id, "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))
    };
    let (_, a) = run_once(&mut store, "2026-11-28T02:00:00Z", &[sized("f1", 120.0)]);
    let id = a[0].case_id.clone();
    store
        .set_case_status(
            &id,
            "dismissed",
            "王警官",
            "a shed the village committee allowed",
        )
        .unwrap();
    // A night's noise (+30 m²), then growth of half again but under 100 m² (+70 m² of 140 m²
    // recorded since): the analyst's decision stands.
    run_once(&mut store, "2026-11-29T02:00:00Z", &[sized("f1", 150.0)]);
    assert_eq!(status_of(&store, &id), "dismissed");
    run_once(&mut store, "2026-11-30T02:00:00Z", &[sized("f1", 190.0)]);
    assert_eq!(status_of(&store, &id), "dismissed");
    // More than half again and more than 100 m² over the dismissed 120 m²: open for review.
    run_once(&mut store, "2026-12-01T02:00:00Z", &[sized("f1", 260.0)]);
    assert_eq!(status_of(&store, &id), "open");
    let d = store.case(&id).unwrap().unwrap();
    let e = d.events.iter().find(|e| e.what == "reopened").unwrap();
    assert_eq!(
        (e.from_status.as_deref(), e.to_status.as_deref()),
        (Some("dismissed"), Some("open"))
    );
    assert!(
        e.why
            .starts_with("grew from 120.0 m² to 260.0 m² since it was dismissed (")
            && e.why
                .contains(", by 王警官): open again for review (finding f1)"),
        "{}",
        e.why
    );
    // Confirmed or referred cases keep their status whatever they do.
    store
        .set_case_status(&id, "referred", "王警官", "sent to the brigade")
        .unwrap();
    run_once(&mut store, "2026-12-02T02:00:00Z", &[sized("f1", 900.0)]);
    assert_eq!(status_of(&store, &id), "referred");
}

#[test]
fn a_finding_on_older_imagery_leaves_the_case_as_the_newer_imagery_showed_it() {
    let (_dir, mut store) = temp_store();
    let seen = |area: f64, kind: &str, on: &str| FindingRecord {
        area_m2: area,
        kind: kind.into(),
        after_date: Some(on.into()),
        ..finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))
    };
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[seen(300.0, "farmland_construction", "2026-11-27")],
    );
    let id = a[0].case_id.clone();
    assert_eq!(a[0].kept_newer, None);
    // An archive scene of two days earlier shows a smaller excavation there.
    let (_, a) = run_once(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[seen(120.0, "excavation", "2026-11-25T02:51:00")],
    );
    assert_eq!(a[0].kept_newer, NaiveDate::from_ymd_opt(2026, 11, 27));
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(
        (
            d.case.kind.as_str(),
            d.case.area_m2,
            d.after_date.as_deref()
        ),
        ("farmland_construction", 300.0, Some("2026-11-27"))
    );
    assert_eq!(d.geometries.len(), 1);
    let e = d.events.last().unwrap();
    assert_eq!(e.what, "seen_older");
    assert!(
        e.why.starts_with(
            "seen on older imagery, of 2026-11-25 (finding f1: excavation on parcel p1, 120.0 m²)"
        ),
        "{}",
        e.why
    );
    // Dismissed as it was at 300 m²: the older sighting's 120 m² is not what the analyst
    // judged, so the same 300 m² seen again does not reopen it as "grown".
    store
        .set_case_status(&id, "dismissed", "王警官", "a shed the village allowed")
        .unwrap();
    run_once(
        &mut store,
        "2026-11-30T02:00:00Z",
        &[seen(300.0, "farmland_construction", "2026-11-29")],
    );
    assert_eq!(status_of(&store, &id), "dismissed");
    // The same day's imagery (another observation of it) updates the case as usual.
    let (_, a) = run_once(
        &mut store,
        "2026-12-01T02:00:00Z",
        &[seen(310.0, "farmland_construction", "2026-11-29T10:00:00")],
    );
    assert_eq!(a[0].kept_newer, None);
    assert_eq!(store.case(&id).unwrap().unwrap().case.area_m2, 310.0);
}

#[test]
fn a_dismissed_case_is_opened_again_when_its_change_becomes_more_serious() {
    let (_dir, mut store) = temp_store();
    let of_kind = |kind: &str, severity: &str| FindingRecord {
        kind: kind.into(),
        severity: severity.into(),
        ..finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))
    };
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[of_kind("excavation", "medium")],
    );
    let id = a[0].case_id.clone();
    store
        .set_case_status(
            &id,
            "dismissed",
            "李科长",
            "a fish pond being dug with approval",
        )
        .unwrap();
    // The same kind again, or a less serious one: the decision stands.
    run_once(
        &mut store,
        "2026-11-29T02:00:00Z",
        &[of_kind("excavation", "medium")],
    );
    run_once(
        &mut store,
        "2026-11-30T02:00:00Z",
        &[of_kind("other", "low")],
    );
    assert_eq!(status_of(&store, &id), "dismissed");
    // A building where the pond was dismissed: open for review, the same area.
    run_once(
        &mut store,
        "2026-12-01T02:00:00Z",
        &[of_kind("building_on_farmland", "high")],
    );
    assert_eq!(status_of(&store, &id), "open");
    let d = store.case(&id).unwrap().unwrap();
    let e = d.events.iter().find(|e| e.what == "reopened").unwrap();
    assert!(
        e.why.starts_with(
            "became building_on_farmland (high) from excavation (medium) since it was dismissed ("
        ) && e.why.contains("by 李科长)"),
        "{}",
        e.why
    );
}

#[test]
fn a_case_not_seen_disappears_and_is_reopened_when_seen_again() {
    let (_dir, mut store) = temp_store();
    let f = finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0));
    let (_, a) = run_once(&mut store, "2026-11-28T02:00:00Z", std::slice::from_ref(&f));
    let id = a[0].case_id.clone();
    // A run that processed other cells only says nothing about it.
    let run = store.begin_run(&new_run("2026-11-29T02:00:00Z")).unwrap();
    store
        .commit_findings(&run, &ctx("2026-11-29"), &["other".to_string()], &[])
        .unwrap();
    store.finish_run(&run, &[], &outcome("done")).unwrap();
    assert_eq!(status_of(&store, &id), "open");
    // A run that processed its cell and found nothing marks it, never deletes it.
    let (gone, _) = run_once(&mut store, "2026-11-30T02:00:00Z", &[]);
    assert_eq!(status_of(&store, &id), "disappeared");
    assert_eq!(store.run_event_counts(&gone).unwrap()["disappeared"], 1);
    run_once(&mut store, "2026-12-01T02:00:00Z", &[]);
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(
        d.events.iter().filter(|e| e.what == "disappeared").count(),
        1
    );
    let (_, b) = run_once(&mut store, "2026-12-02T02:00:00Z", &[f]);
    assert_eq!(b[0].case_id, id);
    assert_eq!(status_of(&store, &id), "open");
    assert_eq!(count(&store, "cases"), 1);
    let d = store.case(&id).unwrap().unwrap();
    let reopened = d.events.iter().find(|e| e.what == "reopened").unwrap();
    assert_eq!(reopened.from_status.as_deref(), Some("disappeared"));
    assert_eq!(reopened.to_status.as_deref(), Some("open"));
}

#[test]
fn imagery_older_than_what_showed_a_case_gone_does_not_open_it_again() {
    let (_dir, mut store) = temp_store();
    let seen = |area: f64, on: &str| FindingRecord {
        area_m2: area,
        after_date: Some(on.into()),
        ..finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))
    };
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[seen(100.0, "2026-11-27")],
    );
    let id = a[0].case_id.clone();
    // The night of 30 November, on imagery of the 29th, no longer sees it.
    let acquired = HashMap::from([(id.clone(), NaiveDate::from_ymd_opt(2026, 11, 29).unwrap())]);
    let sight = RunSight {
        case_acquired: Some(&acquired),
        ..Default::default()
    };
    run_seeing(&mut store, "2026-11-30T02:00:00Z", &[], &sight);
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(
        (d.case.status.as_str(), d.gone_date.as_deref()),
        ("disappeared", Some("2026-11-29"))
    );
    // An archive scene of the 28th, delivered late, still shows the change: it was there on the
    // 28th, and gone by the 29th. The case stays disappeared, as it was.
    let (_, a) = run_once(
        &mut store,
        "2026-12-01T02:00:00Z",
        &[seen(140.0, "2026-11-28")],
    );
    assert_eq!(a[0].case_id, id);
    assert_eq!(a[0].kept_newer, NaiveDate::from_ymd_opt(2026, 11, 29));
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(
        (
            d.case.status.as_str(),
            d.case.area_m2,
            d.after_date.as_deref(),
            d.gone_date.as_deref()
        ),
        ("disappeared", 100.0, Some("2026-11-27"), Some("2026-11-29"))
    );
    assert!(!d.events.iter().any(|e| e.what == "reopened"));
    let e = d.events.last().unwrap();
    assert_eq!(e.what, "seen_older");
    assert!(
        e.why
            .ends_with("the imagery of 2026-11-29 no longer showed it: the case stays disappeared"),
        "{}",
        e.why
    );
    // Imagery of the same day as the one that no longer showed it, or later, opens it again.
    let (_, a) = run_once(
        &mut store,
        "2026-12-02T02:00:00Z",
        &[seen(150.0, "2026-11-29")],
    );
    assert_eq!(a[0].kept_newer, None);
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(
        (
            d.case.status.as_str(),
            d.case.area_m2,
            d.gone_date.as_deref()
        ),
        ("open", 150.0, None)
    );
    assert_eq!(d.events.iter().filter(|e| e.what == "reopened").count(), 1);
}

#[test]
fn a_case_under_cloud_does_not_disappear() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let run = store.begin_run(&new_run("2026-11-29T02:00:00Z")).unwrap();
    let cloud = vec![
        rect_wkt(-5.0, -5.0, 4.0, 20.0),
        rect_wkt(3.0, -5.0, 8.0, 20.0),
    ];
    store
        .commit_findings_observed(
            &run,
            &ctx("2026-11-29"),
            &cells(),
            &[],
            &RunSight {
                unobserved_wkt: &cloud,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(status_of(&store, &a[0].case_id), "open");
    let d = store.case(&a[0].case_id).unwrap().unwrap();
    let e = d.events.last().unwrap();
    assert_eq!(e.what, "not_judged");
    assert!(
        e.why.contains("at least half of it was not observed"),
        "{}",
        e.why
    );
    assert!(store
        .commit_findings_observed(
            &run,
            &ctx("2026-11-29"),
            &cells(),
            &[],
            &RunSight {
                unobserved_wkt: &["LINESTRING(0 0,1 1)".into()],
                ..Default::default()
            }
        )
        .is_err());
}

#[test]
fn a_case_the_run_saw_too_little_of_does_not_disappear_and_one_it_saw_says_how_much() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let id = a[0].case_id.clone();
    let areas = store.case_areas().unwrap();
    assert_eq!(areas.len(), 1);
    assert_eq!(areas[0].0, id);
    let night = |store: &mut Store, at: &str, share: f64| {
        let run = store.begin_run(&new_run(at)).unwrap();
        let seen = HashMap::from([(id.clone(), share)]);
        store
            .commit_findings_observed(
                &run,
                &ctx(&at[..10]),
                &cells(),
                &[],
                &RunSight {
                    case_observed: Some(&seen),
                    ..Default::default()
                },
            )
            .unwrap();
    };
    // Half of it seen: not finding it means nothing, and the case's log says so.
    night(&mut store, "2026-11-29T02:00:00Z", 0.5);
    assert_eq!(status_of(&store, &id), "open");
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(
        d.events.iter().map(|e| e.what.as_str()).collect::<Vec<_>>(),
        ["opened", "not_judged"]
    );
    assert_eq!(
        d.events[1].why,
        "not judged: only 50 % of it was observed; not finding it means nothing"
    );
    night(&mut store, "2026-11-30T02:00:00Z", 0.97);
    assert_eq!(status_of(&store, &id), "disappeared");
    let d = store.case(&id).unwrap().unwrap();
    let why = &d
        .events
        .iter()
        .find(|e| e.what == "disappeared")
        .unwrap()
        .why;
    assert!(
        why.contains("processed and 97 % of it was observed"),
        "{why}"
    );
    // A disappeared case is no longer watched.
    assert!(store.case_areas().unwrap().is_empty());
}

#[test]
fn a_confirmed_case_stays_matched_and_keeps_its_status() {
    let (_dir, mut store) = temp_store();
    let f = finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0));
    let (_, a) = run_once(&mut store, "2026-11-28T02:00:00Z", std::slice::from_ref(&f));
    let id = a[0].case_id.clone();
    store
        .set_case_status(
            &id,
            "confirmed",
            "Wang Fang",
            "field check 2026-11-30: new shed",
        )
        .unwrap();
    let (_, b) = run_once(&mut store, "2026-12-01T02:00:00Z", &[f]);
    assert_eq!(b[0].case_id, id);
    assert_eq!(status_of(&store, &id), "confirmed");
    // Not seen: the analyst's status stays, the log says so.
    run_once(&mut store, "2026-12-02T02:00:00Z", &[]);
    let d = store.case(&id).unwrap().unwrap();
    assert_eq!(d.case.status, "confirmed");
    assert!(d.events.iter().any(|e| e.what == "not_seen"));
    let review = d.events.iter().find(|e| e.what == "status").unwrap();
    assert_eq!(review.who, "Wang Fang");
    assert_eq!(review.why, "field check 2026-11-30: new shed");
    assert_eq!(review.from_status.as_deref(), Some("open"));
    assert_eq!(review.to_status.as_deref(), Some("confirmed"));
    assert_eq!(review.run_id, None);
}

#[test]
fn status_changes_are_checked() {
    let (_dir, mut store) = temp_store();
    let (_, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let id = &a[0].case_id;
    let e = store
        .set_case_status(id, "guilty", "a", "b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("confirmed, dismissed, referred"), "{e}");
    assert!(store.set_case_status(id, "merged", "a", "b").is_err());
    assert!(store.set_case_status(id, "dismissed", " ", "b").is_err());
    assert!(store.set_case_status(id, "dismissed", "a", "").is_err());
    let e = store
        .set_case_status("320509-20000101-0001", "dismissed", "a", "b")
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSuchCase { .. }));
    store
        .set_case_status(id, "referred", "Li Lei", "to the enforcement brigade")
        .unwrap();
    let listed = store
        .cases(&CaseFilter {
            status: Some("referred".into()),
            since: None,
        })
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(store
        .cases(&CaseFilter {
            status: Some("nonsense".into()),
            since: None
        })
        .is_err());
}

#[test]
fn cases_filter_by_last_seen() {
    let (_dir, mut store) = temp_store();
    run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let run = store.begin_run(&new_run("2026-11-30T02:00:00Z")).unwrap();
    store
        .commit_findings(
            &run,
            &ctx("2026-11-30"),
            &["elsewhere".into()],
            &[finding("f2", "p2", rect_wkt(0.0, 0.0, 10.0, 10.0))],
        )
        .unwrap();
    let since = |d: &str| CaseFilter {
        status: None,
        since: Some(NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()),
    };
    assert_eq!(store.cases(&since("2026-11-28")).unwrap().len(), 2);
    assert_eq!(store.cases(&since("2026-11-29")).unwrap().len(), 1);
    assert_eq!(store.cases(&since("2026-11-30")).unwrap().len(), 1);
    assert_eq!(store.cases(&since("2026-12-01")).unwrap().len(), 0);
}

#[test]
fn cells_are_marked_only_when_the_run_finishes() {
    let (_dir, mut store) = temp_store();
    let run = store.begin_run(&new_run("2026-11-28T02:00:00Z")).unwrap();
    let done = |c: &str, k: &str| CellDone {
        cell_id: c.into(),
        after_key: k.into(),
        inputs_key: "i1".into(),
    };
    assert!(store.cell_marks("b0db2d3d").unwrap().is_empty());
    store
        .finish_run(
            &run,
            &[done("c1", "a1"), done("c2", "a1")],
            &outcome("done"),
        )
        .unwrap();
    let run2 = store.begin_run(&new_run("2026-11-29T02:00:00Z")).unwrap();
    store
        .finish_run(&run2, &[done("c2", "a2")], &outcome("done_with_skips"))
        .unwrap();
    let marks = store.cell_marks("b0db2d3d").unwrap();
    assert_eq!(marks.len(), 2);
    assert_eq!(marks["c1"].run_id, run);
    assert_eq!(
        marks["c2"],
        CellMark {
            run_id: run2.clone(),
            after_key: "a2".into(),
            inputs_key: "i1".into()
        }
    );
    assert!(store.cell_marks("another-grid").unwrap().is_empty());
    // A finished run cannot be finished again, and outcomes are checked.
    assert!(matches!(
        store.finish_run(&run2, &[], &outcome("done")),
        Err(StoreError::RunNotRunning { .. })
    ));
    let run3 = store.begin_run(&new_run("2026-11-30T02:00:00Z")).unwrap();
    assert!(store.finish_run(&run3, &[], &outcome("ok")).is_err());
    assert!(matches!(
        store.finish_run("run-x", &[], &outcome("done")),
        Err(StoreError::NoSuchRun { .. })
    ));
    let st = store.status(2).unwrap();
    assert_eq!(st.runs.len(), 2);
    assert_eq!(st.runs[0].id, run3);
    assert_eq!(st.runs[0].status, "running");
    assert_eq!(st.runs[1].status, "done_with_skips");
    assert_eq!(st.runs[1].unobserved_protected_m2, Some(12.5));
}

#[test]
fn imagery_is_upserted_by_path_and_hash() {
    let (_dir, mut store) = temp_store();
    let img = |sha: &str| ImageryRecord {
        path: "/data/after/t1.tif".into(),
        sha256: sha.into(),
        acquired_at: Some("2026-11-27T02:51:00".into()),
        date_role: "after".into(),
    };
    store.record_imagery(&[img("aa")]).unwrap();
    store.record_imagery(&[img("aa")]).unwrap();
    assert_eq!(count(&store, "imagery"), 1);
    store.record_imagery(&[img("bb")]).unwrap();
    assert_eq!(store.status(1).unwrap().imagery_files, 2);
    let mut bad = img("cc");
    bad.date_role = "during".into();
    assert!(store.record_imagery(&[bad]).is_err());
}

#[test]
fn packets_are_recorded_once_per_version() {
    let (_dir, mut store) = temp_store();
    let (run, a) = run_once(
        &mut store,
        "2026-11-28T02:00:00Z",
        &[finding("f1", "p1", rect_wkt(0.0, 0.0, 10.0, 10.0))],
    );
    let id = &a[0].case_id;
    let rec = |v: u32, h: &str| PacketRecord {
        version: v,
        dir: if v == 1 {
            format!("packets/{id}")
        } else {
            format!("packets/{id}.v{v}")
        },
        manifest_sha256: h.into(),
        run_id: run.clone(),
        written_at: None,
    };
    store.record_packet(id, &rec(1, "h1")).unwrap();
    store.record_packet(id, &rec(1, "h1")).unwrap();
    assert!(store.record_packet(id, &rec(1, "other")).is_err());
    store.record_packet(id, &rec(2, "h2")).unwrap();
    assert!(matches!(
        store.record_packet("nope", &rec(1, "h")),
        Err(StoreError::NoSuchCase { .. })
    ));
    let d = store.case(id).unwrap().unwrap();
    assert_eq!(d.packets.len(), 2);
    assert_eq!(d.case.latest_packet, Some(format!("packets/{id}.v2")));
    assert_eq!(d.events.iter().filter(|e| e.what == "packet").count(), 2);
}

#[test]
fn bad_findings_are_named() {
    let (_dir, mut store) = temp_store();
    let run = store.begin_run(&new_run("2026-11-28T02:00:00Z")).unwrap();
    let e = store
        .commit_findings(
            &run,
            &ctx("2026-11-28"),
            &cells(),
            &[finding("f1", "p1", "POINT(1 2)".into())],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("f1") && e.contains("p1") && e.contains("point"),
        "{e}"
    );
    let e = store
        .commit_findings(
            &run,
            &ctx("2026-11-28"),
            &cells(),
            &[
                finding("f1", "p1", rect_wkt(0.0, 0.0, 1.0, 1.0)),
                finding("f1", "p2", rect_wkt(0.0, 0.0, 1.0, 1.0)),
            ],
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::DuplicateFinding { .. }));
    assert_eq!(count(&store, "cases"), 0);
    let mut c = ctx("2026-11-28");
    c.region_code = "32-05".into();
    assert!(store.commit_findings(&run, &c, &cells(), &[]).is_err());
    assert!(parse_polygons("MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))").is_ok());
    assert!(parse_polygons("GEOMETRYCOLLECTION(POLYGON((0 0,1 0,1 1,0 0)))").is_ok());
    assert!(parse_polygons("POLYGON((0 0,1 0").is_err());
}

fn arb_findings() -> impl Strategy<Value = Vec<FindingRecord>> {
    prop::collection::vec((0u8..3, 0u8..40, 0u8..40, 1u8..20, 1u8..20), 0..10).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (p, x, y, w, h))| {
                let (x, y, w, h) = (x as f64, y as f64, w as f64, h as f64);
                finding(
                    &format!("f{i:02}"),
                    &format!("p{p}"),
                    rect_wkt(x, y, x + w, y + h),
                )
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn the_same_findings_on_the_next_night_open_no_case(fs in arb_findings()) {
        let (_dir, mut store) = temp_store();
        let (_, first) = run_once(&mut store, "2026-11-28T02:00:00Z", &fs);
        let cases_before = count(&store, "cases");
        let (_, second) = run_once(&mut store, "2026-11-29T02:00:00Z", &fs);
        prop_assert_eq!(count(&store, "cases"), cases_before);
        prop_assert!(second.iter().all(|a| !a.is_new));
        let ids = |v: &[CaseAssignment]| v.iter().map(|a| a.case_id.clone()).collect::<Vec<_>>();
        prop_assert_eq!(ids(&first), ids(&second));
        let statuses: BTreeSet<String> = store
            .cases(&CaseFilter::default())
            .unwrap()
            .into_iter()
            .map(|c| c.status)
            .collect();
        prop_assert!(statuses.iter().all(|s| s == "open"));
    }
}

#[test]
fn a_version_1_store_is_migrated_and_runs_record_where_their_cells_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("landwatch.db");
    {
        // A store as the first schema left it, with a finished run.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(include_str!("migrations/0001_initial.sql"))
            .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO runs (id, started_at, status, config_sha256, grid_fingerprint, full,
               software_version, args, cells_processed)
             VALUES ('run-old', '2026-11-27T02:00:00Z', 'done', 'x', 'fp', 0, '0.1.0', '[]', 4)",
            [],
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let run = store.begin_run(&new_run("2026-11-28T02:00:00Z")).unwrap();
    let mut o = outcome("done");
    o.cells_processed = 5;
    o.cells_detected = 2;
    o.cells_from_cache = 3;
    store.finish_run(&run, &[], &o).unwrap();
    let runs = store.status(5).unwrap().runs;
    assert_eq!(runs[0].id, run);
    assert_eq!(
        (runs[0].cells_detected, runs[0].cells_from_cache),
        (Some(2), Some(3))
    );
    assert_eq!(runs[1].id, "run-old");
    assert_eq!(runs[1].cells_processed, Some(4));
    assert_eq!(
        (runs[1].cells_detected, runs[1].cells_from_cache),
        (None, None)
    );
}
