//! A synthetic finding (a house built on basic farmland near Wujiang, Suzhou) for tests, benches
//! and the documentation: plain arrays and polygons, no files.

use super::input::{Acquisition, Chip, PacketInput, PermitFootprint, SourceTile};
use chrono::NaiveDate;
use geo::{LineString, MultiPolygon, Polygon};
use ndarray::{Array2, Array3};
use serde_json::json;

/// West edge of the example chip (EPSG:4549).
const X0: f64 = 561_552.0;
/// North edge of the example chip.
const Y0: f64 = 3_449_044.0;
const PIXEL: f64 = 0.5;
const WIDTH: usize = 160;
const HEIGHT: usize = 120;

/// A rectangle (or any ring) in metres east/south of the chip's north-west corner.
fn ring(offsets: &[(f64, f64)]) -> MultiPolygon<f64> {
    let mut pts: Vec<(f64, f64)> = offsets.iter().map(|(e, s)| (X0 + e, Y0 - s)).collect();
    if let Some(first) = pts.first().copied() {
        pts.push(first);
    }
    MultiPolygon::new(vec![Polygon::new(LineString::from(pts), vec![])])
}

/// Deterministic noise in [-1, 1].
fn noise(r: usize, c: usize, seed: u64) -> f32 {
    let mut h = (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (c as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed.wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h % 20_001) as f32 / 10_000.0 - 1.0
}

fn inside(m: &MultiPolygon<f64>, r: usize, c: usize) -> bool {
    use geo::Contains;
    let p = geo::Point::new(X0 + (c as f64 + 0.5) * PIXEL, Y0 - (r as f64 + 0.5) * PIXEL);
    m.contains(&p)
}

/// The example finding. Tests change fields of it freely.
#[doc(hidden)]
pub fn example_input() -> PacketInput {
    let change = ring(&[
        (30.0, 18.0),
        (56.0, 18.0),
        (56.0, 44.0),
        (42.0, 44.0),
        (42.0, 36.0),
        (30.0, 36.0),
    ]);
    let parcel = ring(&[(8.0, 6.0), (74.0, 6.0), (74.0, 54.0), (8.0, 54.0)]);
    let permit = ring(&[(48.0, 38.0), (70.0, 38.0), (70.0, 52.0), (48.0, 52.0)]);
    let gt = [X0, PIXEL, 0.0, Y0, 0.0, -PIXEL];
    let mut before = Array3::<f32>::zeros((3, HEIGHT, WIDTH));
    let mut after = Array3::<f32>::zeros((3, HEIGHT, WIDTH));
    let mut score = Array2::<f32>::zeros((HEIGHT, WIDTH));
    let mut after_valid = Array2::from_elem((HEIGHT, WIDTH), true);
    for r in 0..HEIGHT {
        for c in 0..WIDTH {
            let n = noise(r, c, 1);
            let road = (112..=118).contains(&r);
            // Crop rows running east-west in the field, a grey road along the south edge.
            let rows = if (r / 4) % 2 == 0 { 40.0 } else { -30.0 };
            let field = [
                420.0 + rows + 40.0 * n,
                690.0 + rows + 50.0 * n,
                360.0 + 30.0 * n,
            ];
            let asphalt = [880.0 + 30.0 * n, 870.0 + 30.0 * n, 850.0 + 30.0 * n];
            let b = if road { asphalt } else { field };
            let built = inside(&change, r, c);
            let a = if road {
                asphalt
            } else if built {
                let roof = if (c / 10 + r / 10) % 2 == 0 {
                    0.0
                } else {
                    120.0
                };
                [
                    1250.0 + roof + 40.0 * n,
                    1180.0 + roof + 40.0 * n,
                    1120.0 + roof + 40.0 * n,
                ]
            } else {
                // Later in the season: slightly greener everywhere.
                [field[0] - 20.0, field[1] + 40.0, field[2] - 10.0]
            };
            for k in 0..3 {
                before[(k, r, c)] = b[k];
                after[(k, r, c)] = a[k];
            }
            score[(r, c)] = if built {
                7.0 + 1.5 * n
            } else {
                1.0 + 0.6 * n.abs()
            };
            // A cloud edge in the after image's north-west corner.
            if r + c < 22 {
                after_valid[(r, c)] = false;
                score[(r, c)] = f32::NAN;
            }
        }
    }
    let dt =
        |y, m, d, h, mi| NaiveDate::from_ymd_opt(y, m, d).and_then(|x| x.and_hms_opt(h, mi, 0));
    PacketInput {
        case_id: "320509-20261128-0042".into(),
        run_id: "run-20261128T020000Z".into(),
        created_at: "2026-11-28T02:14:07Z".into(),
        finding_id: "f-b0db2d3d-r0001-c0002-0007".into(),
        parcel_id: "WJ-0318".into(),
        approved_use: "farmland".into(),
        approved_use_zh: "耕地".into(),
        control_layers: vec!["basic_farmland".into()],
        kind: "building_on_farmland".into(),
        kind_label: "占用耕地建房 / building on farmland".into(),
        rule_id: "R-FARM-BUILD".into(),
        severity: "high".into(),
        transition: "vegetation_to_built".into(),
        area_m2: 572.0,
        area_mu: 572.0 / 666.67,
        confidence: 0.91,
        rule_trace: json!({
            "outcome": "suspected",
            "rule_id": "R-FARM-BUILD",
            "kind": "building_on_farmland",
            "label": "占用耕地建房 / building on farmland",
            "transition": "vegetation_to_built",
            "parcel": {"id": "WJ-0318", "approved_use": "farmland", "control_layers": ["basic_farmland"]},
            "measured": {
                "piece_area_m2": 572.0,
                "unexplained_area_m2": 572.0,
                "explained_by_permits_m2": 0.0,
                "region_area_m2": 572.0,
                "parcel_changed_fraction": 0.181,
                "region_inside_parcel_fraction": 1.0
            },
            "thresholds": {"min_area_m2": 200.0, "permit_cover_fraction": 0.8, "field_operation_min_fraction": 0.6},
            "permits": [{
                "permit_id": "LS-2024-017",
                "kind": "temporary_use",
                "permitted_use": "temporary_use",
                "valid_from": "2024-03-01",
                "valid_to": "2025-02-28",
                "valid_at_after": false,
                "use_matches": false,
                "overlap_m2": 24.0,
                "status": "expired",
                "reason": "expired 2025-02-28, before the after date 2026-10-14; covers 24.0 m² of the change"
            }],
            "rules": [
                {"rule_id": "R-FARM-BUILD", "fired": true, "reason": "572.0 m² unexplained vs min_area_m2 200"},
                {"rule_id": "R-REDLINE", "fired": false, "reason": "parcel is not in eco_redline"}
            ],
            "wording": "疑似违法用地线索 / suspected violation: a lead for a field check, not a verdict"
        }),
        before: Acquisition {
            acquired_at: dt(2026, 4, 14, 2, 51),
            sensor_kind: Some("satellite".into()),
            platform: Some("GF-2 PMS".into()),
            observation: "satellite".into(),
        },
        after: Acquisition {
            acquired_at: dt(2026, 10, 14, 3, 5),
            sensor_kind: Some("satellite".into()),
            platform: Some("GF-7 MUX".into()),
            observation: "satellite".into(),
        },
        sources: vec![
            SourceTile {
                date: "before".into(),
                path: "imagery/before/gf2_20260414_r0_c0.tif".into(),
                sha256: "5d41402abc4b2a76b9719d911017c592e6b7a3c1f0a3c1f0a3c1f0a3c1f0a3c1".into(),
            },
            SourceTile {
                date: "after".into(),
                path: "imagery/after/gf7_20261014_r0_c0.tif".into(),
                sha256: "7c211433f02071597741e6ff5a8ea34789abbf43a1b2c3d4e5f60718293a4b5c".into(),
            },
        ],
        working_crs: "EPSG:4549".into(),
        change_polygon: change,
        parcel_polygon: parcel,
        permits: vec![PermitFootprint {
            permit_id: "LS-2024-017".into(),
            kind: "temporary_use".into(),
            permitted_use: "temporary_use".into(),
            valid_from: Some("2024-03-01".into()),
            valid_to: Some("2025-02-28".into()),
            footprint: permit,
        }],
        before_chip: Chip {
            rgb: before,
            valid: Array2::from_elem((HEIGHT, WIDTH), true),
            geo_transform: gt,
        },
        after_chip: Chip {
            rgb: after,
            valid: after_valid,
            geo_transform: gt,
        },
        score_chip: score,
        parameters: json!({
            "grid": {"crs": "EPSG:4549", "pixel_size": 0.5, "cell_size": 1024, "halo": 32},
            "detect": {"threshold": "otsu_or_chi2", "min_area_m2": {"construction": 200, "farmland": 400}},
            "rules": {"version": 1, "permit_cover_fraction": 0.8}
        }),
        config_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        detector: json!({"name": "spectral", "method": "IR-MAD + CVA"}),
        software_version: crate::VERSION.into(),
        git_commit: "0000000000000000000000000000000000000000".into(),
    }
}
