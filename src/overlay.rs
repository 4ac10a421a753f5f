//! Overlay: change regions against parcels and permit footprints, with exact polygon areas.
//! Pure: geometry in the working CRS in, pieces and permit checks out.

use crate::detect::cover::Transition;
use crate::parcels::{ParcelSet, Permit};
use chrono::NaiveDate;
use geo::{Area, BooleanOps, BoundingRect, GeodesicArea, MultiPolygon, Orient};
use serde::Serialize;
use std::collections::BTreeMap;

/// How one permit was judged against one piece of change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PermitCheck {
    /// Permit number.
    pub permit_id: String,
    /// Permit kind.
    pub kind: String,
    /// Permitted use.
    pub permitted_use: String,
    /// Validity (ISO dates; empty when open).
    pub valid_from: Option<String>,
    /// Last valid day.
    pub valid_to: Option<String>,
    /// Valid on the after date.
    pub valid_at_after: bool,
    /// Its permitted use explains the transition.
    pub use_matches: bool,
    /// Area of the change inside its footprint, m².
    pub overlap_m2: f64,
    /// `explains`, `not_yet_valid`, `expired`, `use_mismatch`.
    pub status: String,
    /// A sentence for the rule trace.
    pub reason: String,
}

/// The part of one change region inside one parcel, with the permits that touch it.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Index of the parcel in the `ParcelSet`.
    pub parcel: usize,
    /// The change inside the parcel.
    pub polygon: MultiPolygon<f64>,
    /// Its area, m².
    pub area_m2: f64,
    /// Share of the parcel it covers.
    pub parcel_fraction: f64,
    /// Share of the region that lies inside this parcel.
    pub region_fraction: f64,
    /// Permits whose footprint meets the piece.
    pub permits: Vec<(usize, PermitCheck)>,
    /// The piece inside each of those permits' footprints, in the same order.
    pub permit_overlaps: Vec<MultiPolygon<f64>>,
    /// How its areas were measured.
    pub measure: AreaMeasure,
    /// The control layers of their own (`ParcelSet::controls`) holding at least half of the
    /// piece: a building in the red line on a parcel mostly outside it is in the red line.
    pub control_layers: Vec<String>,
    /// The piece minus the footprints of permits that explain it.
    pub unexplained: MultiPolygon<f64>,
    /// Its area, m².
    pub unexplained_m2: f64,
}

/// How an area in the working CRS becomes square metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AreaMeasure {
    /// A projected CRS: the planar area times the square of its unit in metres (1 for metres).
    Planar {
        /// m² per square unit of the CRS.
        m2_per_unit2: f64,
    },
    /// A geographic CRS, x longitude and y latitude in degrees: the area on the ellipsoid.
    /// A square degree is a different area at every latitude, so no single factor is right
    /// over a county; WGS84's ellipsoid stands for CGCS2000's, whose flattening differs by
    /// about 1e-11 (well below a cm² on a parcel).
    Geodesic,
}

impl AreaMeasure {
    /// The area of a polygon, m².
    pub fn m2(&self, polygon: &MultiPolygon<f64>) -> f64 {
        match self {
            AreaMeasure::Planar { m2_per_unit2 } => polygon.unsigned_area() * m2_per_unit2,
            // The ellipsoid's area of a ring is the area to its left: a clockwise exterior (as
            // Shapefiles store them) would measure the rest of the Earth.
            AreaMeasure::Geodesic => polygon
                .orient(geo::orient::Direction::Default)
                .geodesic_area_unsigned(),
        }
    }
}

impl Piece {
    /// Area of the piece inside the footprints of the permits `which` picks, m². Where their
    /// footprints overlap (a land-use approval and the planning permit for the same building,
    /// a permit re-issued with the old one still in the register) the ground is counted once.
    pub fn covered_m2(&self, which: impl Fn(&PermitCheck) -> bool) -> f64 {
        let mut covered: Option<MultiPolygon<f64>> = None;
        for ((_, check), overlap) in self.permits.iter().zip(&self.permit_overlaps) {
            if which(check) {
                covered = Some(match covered {
                    Some(c) => c.union(overlap),
                    None => overlap.clone(),
                });
            }
        }
        covered.map_or(0.0, |c| self.measure.m2(&c))
    }
}

/// Which permitted uses explain which transitions (from the rules file).
pub type PermittedUses = BTreeMap<String, Vec<String>>;

fn explains(uses: &PermittedUses, permit: &Permit, t: Transition) -> bool {
    uses.get(&permit.permitted_use)
        .or_else(|| uses.get(&permit.kind))
        .is_some_and(|ts| ts.iter().any(|n| n == t.name()))
}

/// Splits a region over the parcels it touches and judges the permits on each piece.
/// `measure` turns areas in the working CRS into m².
pub fn pieces(
    region: &MultiPolygon<f64>,
    transition: Transition,
    set: &ParcelSet,
    after_date: NaiveDate,
    uses: &PermittedUses,
    measure: AreaMeasure,
) -> Vec<Piece> {
    let Some(bb) = region.bounding_rect() else {
        return Vec::new();
    };
    let region_area = region.unsigned_area().max(1e-12);
    let mut out = Vec::new();
    for pi in set.parcels_near(&bb) {
        let parcel = &set.parcels[pi];
        let inside = region.intersection(&parcel.polygon);
        let a = inside.unsigned_area();
        if a <= 0.0 {
            continue;
        }
        let mut explained: Option<MultiPolygon<f64>> = None;
        let mut checks = Vec::new();
        let mut overlaps = Vec::new();
        let Some(ib) = inside.bounding_rect() else {
            continue;
        };
        for ki in set.permits_near(&ib) {
            let permit = &set.permits[ki];
            let overlap = inside.intersection(&permit.footprint);
            if overlap.unsigned_area() <= 0.0 {
                continue;
            }
            let valid = permit.valid_on(after_date);
            let matches = explains(uses, permit, transition);
            let (status, mut reason) = match (valid, matches) {
                (true, true) => (
                    "explains",
                    format!(
                        "valid on {after_date} and its permitted use '{}' covers {}",
                        permit.permitted_use,
                        transition.name()
                    ),
                ),
                (false, _) if permit.valid_from.is_some_and(|f| f > after_date) => (
                    "not_yet_valid",
                    format!(
                        "not yet valid on {after_date} (valid from {})",
                        permit.valid_from.map(|d| d.to_string()).unwrap_or_default()
                    ),
                ),
                (false, _) => (
                    "expired",
                    format!(
                        "expired before {after_date} (valid to {})",
                        permit.valid_to.map(|d| d.to_string()).unwrap_or_default()
                    ),
                ),
                (true, false) => (
                    "use_mismatch",
                    format!(
                        "permitted use '{}' does not cover {}",
                        permit.permitted_use,
                        transition.name()
                    ),
                ),
            };
            if !valid && !matches {
                // Neither before approval nor after expiry: this permit is for another use.
                reason.push_str(&format!(
                    "; its permitted use '{}' does not cover {} either",
                    permit.permitted_use,
                    transition.name()
                ));
            }
            if status == "explains" {
                explained = Some(match explained {
                    Some(e) => e.union(&permit.footprint),
                    None => permit.footprint.clone(),
                });
            }
            checks.push((
                ki,
                PermitCheck {
                    permit_id: permit.id.clone(),
                    kind: permit.kind.clone(),
                    permitted_use: permit.permitted_use.clone(),
                    valid_from: permit.valid_from.map(|d| d.to_string()),
                    valid_to: permit.valid_to.map(|d| d.to_string()),
                    valid_at_after: valid,
                    use_matches: matches,
                    overlap_m2: round2(measure.m2(&overlap)),
                    status: status.to_string(),
                    reason,
                },
            ));
            overlaps.push(overlap);
        }
        let unexplained = match &explained {
            Some(e) => inside.difference(e),
            None => inside.clone(),
        };
        let control_layers = set
            .controls
            .iter()
            .filter(|z| z.hold_half_of(&inside, a))
            .map(|z| z.kind.clone())
            .collect();
        out.push(Piece {
            parcel: pi,
            area_m2: measure.m2(&inside),
            parcel_fraction: a / parcel.area.max(1e-12),
            region_fraction: a / region_area,
            polygon: inside,
            permits: checks,
            permit_overlaps: overlaps,
            measure,
            control_layers,
            unexplained_m2: measure.m2(&unexplained),
            unexplained,
        });
    }
    out
}

/// Rounds to centimetres² precision for output.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parcels::Parcel;
    use proptest::prelude::*;

    const PLANAR: AreaMeasure = AreaMeasure::Planar { m2_per_unit2: 1.0 };

    fn sq(x: f64, y: f64, w: f64, h: f64) -> MultiPolygon<f64> {
        MultiPolygon::new(vec![geo::Rect::new((x, y), (x + w, y + h)).to_polygon()])
    }

    fn parcel(id: &str, poly: MultiPolygon<f64>) -> Parcel {
        Parcel {
            id: id.into(),
            approved_use: "farmland".into(),
            basic_farmland: false,
            eco_redline: false,
            parcel_permit: None,
            area: poly.unsigned_area(),
            polygon: poly,
            source: id.into(),
        }
    }

    fn permit(valid: (u32, u32), footprint: MultiPolygon<f64>) -> Permit {
        Permit {
            id: "GH-1".into(),
            kind: "planning_permit".into(),
            permitted_use: "construction".into(),
            valid_from: NaiveDate::from_ymd_opt(2026, valid.0, 1),
            valid_to: NaiveDate::from_ymd_opt(2026, valid.1, 28),
            parcel_id: None,
            footprint,
            source: "permits".into(),
        }
    }

    fn uses() -> PermittedUses {
        let mut u = PermittedUses::new();
        u.insert("construction".into(), vec!["vegetation_to_built".into()]);
        u
    }

    #[test]
    fn a_region_over_two_parcels_and_a_partial_permit() {
        let set = ParcelSet::new(
            vec![
                parcel("A", sq(0.0, 0.0, 50.0, 50.0)),
                parcel("B", sq(50.0, 0.0, 50.0, 50.0)),
            ],
            vec![permit((1, 12), sq(0.0, 0.0, 30.0, 50.0))],
        );
        let region = sq(20.0, 10.0, 40.0, 20.0);
        let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
        let p = pieces(
            &region,
            Transition::VegetationToBuilt,
            &set,
            after,
            &uses(),
            PLANAR,
        );
        assert_eq!(p.len(), 2);
        let a = p.iter().find(|x| set.parcels[x.parcel].id == "A").unwrap();
        assert!((a.area_m2 - 600.0).abs() < 1e-6);
        assert!(
            (a.unexplained_m2 - 400.0).abs() < 1e-6,
            "only the part outside the footprint counts"
        );
        assert_eq!(a.permits[0].1.status, "explains");
        let b = p.iter().find(|x| set.parcels[x.parcel].id == "B").unwrap();
        assert!((b.area_m2 - 200.0).abs() < 1e-6 && b.permits.is_empty());
        // Not yet valid: explains nothing.
        let set2 = ParcelSet::new(
            vec![parcel("A", sq(0.0, 0.0, 50.0, 50.0))],
            vec![permit((11, 12), sq(0.0, 0.0, 50.0, 50.0))],
        );
        let p = pieces(
            &region,
            Transition::VegetationToBuilt,
            &set2,
            after,
            &uses(),
            PLANAR,
        );
        assert_eq!(p[0].permits[0].1.status, "not_yet_valid");
        assert!((p[0].unexplained_m2 - p[0].area_m2).abs() < 1e-6);
    }

    #[test]
    fn an_area_on_the_ellipsoid_is_the_same_whichever_way_its_ring_runs() {
        // 0.001° square near Suzhou: ~95 m east-west by ~111 m north-south.
        let one_way = sq(120.9, 31.15, 0.001, 0.001);
        let mut ring = one_way.0[0].exterior().clone();
        ring.0.reverse();
        let other_way = MultiPolygon::new(vec![geo::Polygon::new(ring, vec![])]);
        let (a, b) = (
            AreaMeasure::Geodesic.m2(&one_way),
            AreaMeasure::Geodesic.m2(&other_way),
        );
        assert!((10_000.0..11_000.0).contains(&a), "{a}");
        assert!((a - b).abs() < 1e-6 * a, "{a} vs {b}");
    }

    #[test]
    fn a_permit_is_valid_on_its_first_and_its_last_day() {
        let set_for = |from: NaiveDate, to: NaiveDate| {
            let mut p = permit((1, 12), sq(0.0, 0.0, 50.0, 50.0));
            (p.valid_from, p.valid_to) = (Some(from), Some(to));
            ParcelSet::new(vec![parcel("A", sq(0.0, 0.0, 50.0, 50.0))], vec![p])
        };
        let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
        let (before, next) = (after.pred_opt().unwrap(), after.succ_opt().unwrap());
        let far = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        let long_ago = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        for (from, to, status) in [
            (long_ago, after, "explains"),
            (after, far, "explains"),
            (long_ago, before, "expired"),
            (next, far, "not_yet_valid"),
        ] {
            let region = sq(10.0, 10.0, 20.0, 20.0);
            let p = pieces(
                &region,
                Transition::VegetationToBuilt,
                &set_for(from, to),
                after,
                &uses(),
                PLANAR,
            );
            assert_eq!(p[0].permits[0].1.status, status, "{from}..{to}");
        }
    }

    proptest! {
        #[test]
        fn intersection_area_never_exceeds_either(
            x in -20.0f64..60.0, y in -20.0f64..60.0, w in 1.0f64..60.0, h in 1.0f64..60.0,
        ) {
            let parcel_poly = sq(0.0, 0.0, 50.0, 40.0);
            let set = ParcelSet::new(vec![parcel("A", parcel_poly.clone())], vec![]);
            let region = sq(x, y, w, h);
            let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
            for p in pieces(&region, Transition::VegetationToBuilt, &set, after, &uses(), PLANAR) {
                // Boolean operations snap to a fixed-point grid: allow a relative 1e-6.
                let tol = 1e-6 * region.unsigned_area().max(1.0);
                prop_assert!(p.area_m2 <= region.unsigned_area() + tol, "{} > {}", p.area_m2, region.unsigned_area());
                prop_assert!(p.area_m2 <= parcel_poly.unsigned_area() + tol);
                prop_assert!(p.unexplained_m2 <= p.area_m2 + 1e-6);
            }
        }

        /// Over parcels that tile the ground, the pieces of a region add up to the region; each
        /// piece's unexplained part is the piece less what lies in the footprints of matching
        /// valid permits (overlapping ones counted once), never negative; and the permits'
        /// cover counts their common ground once.
        #[test]
        fn pieces_add_up_and_the_excess_is_what_matching_permits_leave(
            x in 1.0f64..60.0, y in 1.0f64..30.0, w in 1.0f64..38.0, h in 1.0f64..18.0,
            fx in 0.0f64..90.0, fy in 0.0f64..40.0, fw in 1.0f64..40.0, fh in 1.0f64..30.0,
            shift in 0.0f64..10.0, second_valid in proptest::bool::ANY,
        ) {
            let footprint = sq(fx, fy, fw, fh);
            let mut second = permit((1, 12), sq(fx + shift, fy, fw, fh));
            second.id = "GH-2".into();
            if !second_valid {
                second.valid_from = NaiveDate::from_ymd_opt(2027, 1, 1);
                second.valid_to = None;
            }
            let set = ParcelSet::new(
                vec![
                    parcel("A", sq(0.0, 0.0, 50.0, 50.0)),
                    parcel("B", sq(50.0, 0.0, 50.0, 50.0)),
                ],
                vec![permit((1, 12), footprint.clone()), second.clone()],
            );
            let region = sq(x, y, w, h);
            let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
            let ps = pieces(&region, Transition::VegetationToBuilt, &set, after, &uses(), PLANAR);
            let tol = 1e-6 * region.unsigned_area().max(1.0);
            let total: f64 = ps.iter().map(|p| p.area_m2).sum();
            prop_assert!((total - region.unsigned_area()).abs() < tol, "{total} vs {}", region.unsigned_area());
            let explaining = if second_valid { footprint.union(&second.footprint) } else { footprint };
            for p in &ps {
                let inside = p.polygon.intersection(&explaining).unsigned_area();
                prop_assert!(p.unexplained_m2 >= 0.0);
                prop_assert!((p.unexplained_m2 - (p.area_m2 - inside)).abs() < tol, "{} vs {} - {inside}", p.unexplained_m2, p.area_m2);
                let cover = p.covered_m2(|c| c.status == "explains");
                prop_assert!((cover - inside).abs() < tol, "{cover} vs {inside}");
                prop_assert!(cover <= p.area_m2 + tol);
            }
        }

        #[test]
        fn a_change_entirely_inside_a_matching_valid_permit_leaves_nothing_unexplained(
            x in 1.0f64..20.0, y in 1.0f64..20.0, w in 1.0f64..20.0, h in 1.0f64..15.0,
        ) {
            let set = ParcelSet::new(
                vec![parcel("A", sq(0.0, 0.0, 50.0, 40.0))],
                vec![permit((1, 12), sq(0.5, 0.5, 45.0, 38.0))],
            );
            let region = sq(x, y, w, h);
            let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
            for p in pieces(&region, Transition::VegetationToBuilt, &set, after, &uses(), PLANAR) {
                prop_assert!(p.unexplained_m2 < 1e-6, "{}", p.unexplained_m2);
            }
        }
    }
}
