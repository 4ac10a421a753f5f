//! Matching a run's findings to the cases already known (pure: no IO, no clock).
//!
//! A finding matches a case on the *same parcel* when the overlap of their geometries, measured as
//! `area(F ∩ C) / min(area(F), area(C))`, is at least the configured ratio; a case whose parcel is
//! no longer in the run's parcel layer (re-surveyed) is matched so by findings on any parcel. From
//! the graph of matches:
//!
//! - every matched case is claimed by the one finding that matches it best (the finding that last
//!   updated the case first, then the larger overlap, then the smaller finding id);
//! - a finding that claims cases continues the oldest of them; the others are *merged* into it and
//!   become its parents;
//! - a finding that claims no case opens a new one; when it matched cases that other findings
//!   claimed (a region that split), those cases are its parents, and so are cases on other
//!   parcels still in the layer whose ground it overlaps as much (the layer re-surveyed, a
//!   parcel's id kept for part of it: findings are clipped to their parcels, so only moved
//!   boundaries make a finding overlap a case on another parcel) — such a case is never
//!   continued or merged across parcels;
//! - a case that no finding matched, whose cells were all processed in this run and which was
//!   mostly observed (less than half of it under cloud, shadow or without data), was not seen.
//!
//! The result depends only on the sets of cases and findings, never on their order.

use geo::{Area, BooleanOps, BoundingRect, Intersects, MultiPolygon, Polygon, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};
use std::collections::{BTreeMap, BTreeSet};

/// A case as matching sees it.
#[derive(Debug, Clone)]
pub struct KnownCase {
    /// Case id.
    pub id: String,
    /// The parcel it lies on.
    pub parcel_id: String,
    /// When it was first seen (RFC 3339); the oldest case continues in a merge.
    pub first_seen: String,
    /// The finding that last updated it; a finding with the same id is preferred.
    pub last_finding_id: String,
    /// The grid cells it touches.
    pub cells: Vec<String>,
    /// Its latest geometry (working CRS).
    pub geometry: MultiPolygon<f64>,
}

/// A finding as matching sees it.
#[derive(Debug, Clone)]
pub struct NewFinding {
    /// Finding id (stable for the same change on the same parcel).
    pub finding_id: String,
    /// The parcel it lies on.
    pub parcel_id: String,
    /// The change polygon (working CRS).
    pub geometry: MultiPolygon<f64>,
}

/// What happens to one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The finding continues an existing case; `merged` cases (sorted) are merged into it.
    Continue {
        /// The continuing case.
        case_id: String,
        /// Other cases this finding claimed, now merged into `case_id`.
        merged: Vec<String>,
    },
    /// The finding opens a new case; `parents` (sorted) are the cases it split from.
    New {
        /// Cases the finding matched but that other findings continue.
        parents: Vec<String>,
    },
}

/// The outcome of matching a run's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPlan {
    /// One decision per finding, in the order the findings were given.
    pub decisions: Vec<Decision>,
    /// Cases no finding matched although all their cells were processed (sorted).
    pub not_seen: Vec<String>,
    /// Cases no finding matched, all their cells processed, but at least
    /// [`UNOBSERVED_SHARE`] of them unobserved: not finding them means nothing (sorted).
    pub not_observed: Vec<String>,
}

/// The overlap of two geometries as a share of the smaller one: `area(A ∩ B) / min(area(A), area(B))`.
/// Zero when either is empty or they do not intersect.
pub fn overlap_ratio(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> f64 {
    let (Some(ra), Some(rb)) = (a.bounding_rect(), b.bounding_rect()) else {
        return 0.0;
    };
    if ra.max().x < rb.min().x
        || rb.max().x < ra.min().x
        || ra.max().y < rb.min().y
        || rb.max().y < ra.min().y
    {
        return 0.0;
    }
    let smaller = a.unsigned_area().min(b.unsigned_area());
    if smaller.is_nan() || smaller <= 0.0 {
        return 0.0;
    }
    let common = a.intersection(b).unsigned_area();
    (common / smaller).clamp(0.0, 1.0)
}

/// The share of a case that must be unobserved for "not seen" to mean nothing.
pub const UNOBSERVED_SHARE: f64 = 0.5;

/// The area a run could not see: the pieces it was given (the protected parcels it saw too
/// little, which may overlap), indexed by their bounding boxes. What lies under one case is
/// dissolved when that case asks ([`covered_share`]), so a county's worth of pieces costs a
/// lookup per case rather than a union of them all.
pub struct Unobserved {
    pieces: Vec<Polygon<f64>>,
    index: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl Unobserved {
    /// The area covered by `pieces` (overlaps count once).
    pub fn new(pieces: Vec<Polygon<f64>>) -> Unobserved {
        let boxes = pieces
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let r = p.bounding_rect()?;
                let (lo, hi) = (r.min(), r.max());
                Some(GeomWithData::new(
                    Rectangle::from_corners([lo.x, lo.y], [hi.x, hi.y]),
                    i,
                ))
            })
            .collect();
        Unobserved {
            pieces,
            index: RTree::bulk_load(boxes),
        }
    }

    /// No area (every ground seen, or unknown).
    pub fn none() -> Unobserved {
        Unobserved::new(Vec::new())
    }

    /// The union of the pieces whose bounding boxes meet `a`'s: all of the area within it.
    fn near(&self, a: &MultiPolygon<f64>) -> MultiPolygon<f64> {
        let Some(r) = a.bounding_rect() else {
            return MultiPolygon(Vec::new());
        };
        let (lo, hi) = (r.min(), r.max());
        let envelope = AABB::from_corners([lo.x, lo.y], [hi.x, hi.y]);
        let mut near: Vec<usize> = self
            .index
            .locate_in_envelope_intersecting(&envelope)
            .map(|g| g.data)
            .collect();
        // In the order given, so the union does not depend on the index's layout.
        near.sort_unstable();
        geo::unary_union(near.iter().map(|&i| &self.pieces[i]))
    }
}

/// The share of `a`'s area inside the unobserved area `b`.
pub fn covered_share(a: &MultiPolygon<f64>, b: &Unobserved) -> f64 {
    let area = a.unsigned_area();
    if b.pieces.is_empty() || area.is_nan() || area <= 0.0 {
        return 0.0;
    }
    let under = b.near(a);
    if under.0.is_empty() {
        return 0.0;
    }
    (a.intersection(&under).unsigned_area() / area).clamp(0.0, 1.0)
}

/// Matches findings to known cases (see the module documentation); `unobserved` is the area
/// this run could not see (empty when unknown).
pub fn plan_matches(
    cases: &[KnownCase],
    findings: &[NewFinding],
    processed_cells: &BTreeSet<String>,
    unobserved: &Unobserved,
    min_overlap: f64,
) -> MatchPlan {
    plan_matches_with(
        cases,
        findings,
        processed_cells,
        unobserved,
        min_overlap,
        &|_| false,
    )
}

/// [`plan_matches`], where `parcel_gone` says which parcels are no longer in the run's parcel
/// layer (re-surveyed: split, merged or renumbered): a case on such a parcel is matched by
/// findings on any parcel over the same ground; every other case only by findings on its own.
pub fn plan_matches_with(
    cases: &[KnownCase],
    findings: &[NewFinding],
    processed_cells: &BTreeSet<String>,
    unobserved: &Unobserved,
    min_overlap: f64,
    parcel_gone: &dyn Fn(&str) -> bool,
) -> MatchPlan {
    // Edges of the match graph, keyed by ids so that nothing depends on input order.
    let mut by_case: BTreeMap<&str, Vec<(&NewFinding, f64)>> = BTreeMap::new();
    let mut by_finding: BTreeMap<&str, Vec<&KnownCase>> = BTreeMap::new();
    // Cases on other parcels still in the layer whose ground a finding overlaps: lineage only.
    let mut moved_from: BTreeMap<&str, Vec<&KnownCase>> = BTreeMap::new();
    let boxes: Vec<Option<Rect<f64>>> = findings
        .iter()
        .map(|f| f.geometry.bounding_rect())
        .collect();
    for c in cases {
        let Some(case_box) = c.geometry.bounding_rect() else {
            continue;
        };
        let gone = parcel_gone(&c.parcel_id);
        for (f, b) in findings.iter().zip(&boxes) {
            if !b.is_some_and(|b| b.intersects(&case_box)) {
                continue;
            }
            let r = overlap_ratio(&f.geometry, &c.geometry);
            if !(r >= min_overlap && r > 0.0) {
                continue;
            }
            if f.parcel_id == c.parcel_id || gone {
                by_case.entry(&c.id).or_default().push((f, r));
                by_finding.entry(&f.finding_id).or_default().push(c);
            } else {
                moved_from.entry(&f.finding_id).or_default().push(c);
            }
        }
    }
    // Each matched case is claimed by its best finding.
    let case_of: BTreeMap<&str, &KnownCase> = cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut claimed: BTreeMap<&str, Vec<&KnownCase>> = BTreeMap::new();
    for (case_id, edges) in &by_case {
        let Some(case) = case_of.get(case_id) else {
            continue;
        };
        let best = edges.iter().max_by(|(fa, ra), (fb, rb)| {
            let same_a = fa.finding_id == case.last_finding_id;
            let same_b = fb.finding_id == case.last_finding_id;
            same_a
                .cmp(&same_b)
                .then(ra.total_cmp(rb))
                // The smaller id wins a tie, so it must compare as the larger here.
                .then(fb.finding_id.cmp(&fa.finding_id))
        });
        if let Some((f, _)) = best {
            claimed.entry(&f.finding_id).or_default().push(case);
        }
    }
    let decisions = findings
        .iter()
        .map(|f| match claimed.get(f.finding_id.as_str()) {
            Some(own) if !own.is_empty() => {
                let mut own: Vec<&KnownCase> = own.clone();
                own.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.id.cmp(&b.id)));
                let mut merged: Vec<String> = own[1..].iter().map(|c| c.id.clone()).collect();
                merged.sort();
                Decision::Continue {
                    case_id: own[0].id.clone(),
                    merged,
                }
            }
            _ => {
                let mut parents: Vec<String> = [&by_finding, &moved_from]
                    .iter()
                    .filter_map(|edges| edges.get(f.finding_id.as_str()))
                    .flatten()
                    .map(|c| c.id.clone())
                    .collect();
                parents.sort();
                parents.dedup();
                Decision::New { parents }
            }
        })
        .collect();
    let (not_seen, not_observed): (Vec<&KnownCase>, Vec<&KnownCase>) = cases
        .iter()
        .filter(|c| !by_case.contains_key(c.id.as_str()))
        .filter(|c| !c.cells.is_empty() && c.cells.iter().all(|x| processed_cells.contains(x)))
        .partition(|c| covered_share(&c.geometry, unobserved) < UNOBSERVED_SHARE);
    let sorted_ids = |cs: Vec<&KnownCase>| {
        let mut ids: Vec<String> = cs.into_iter().map(|c| c.id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    MatchPlan {
        decisions,
        not_seen: sorted_ids(not_seen),
        not_observed: sorted_ids(not_observed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, MultiPolygon};
    use proptest::prelude::*;

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![
            (x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)
        ]])
    }

    fn case(id: &str, parcel: &str, seen: &str, g: MultiPolygon<f64>) -> KnownCase {
        KnownCase {
            id: id.into(),
            parcel_id: parcel.into(),
            first_seen: seen.into(),
            last_finding_id: format!("f-{id}"),
            cells: vec!["c1".into()],
            geometry: g,
        }
    }

    fn finding(id: &str, parcel: &str, g: MultiPolygon<f64>) -> NewFinding {
        NewFinding {
            finding_id: id.into(),
            parcel_id: parcel.into(),
            geometry: g,
        }
    }

    fn none() -> Unobserved {
        Unobserved::none()
    }

    fn pieces(ps: &[MultiPolygon<f64>]) -> Unobserved {
        Unobserved::new(ps.iter().flat_map(|p| p.0.clone()).collect())
    }

    fn cells(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlap_is_relative_to_the_smaller_geometry() {
        let big = rect(0.0, 0.0, 10.0, 10.0);
        let small = rect(0.0, 0.0, 2.0, 2.0);
        assert!((overlap_ratio(&big, &small) - 1.0).abs() < 1e-9);
        let half = rect(5.0, 0.0, 15.0, 10.0);
        assert!((overlap_ratio(&big, &half) - 0.5).abs() < 1e-9);
        assert_eq!(overlap_ratio(&big, &rect(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(overlap_ratio(&big, &MultiPolygon(vec![])), 0.0);
    }

    #[test]
    fn one_finding_one_case_continues_it() {
        let cases = [case("A", "p1", "t1", rect(0.0, 0.0, 10.0, 10.0))];
        let fs = [finding("f1", "p1", rect(1.0, 1.0, 11.0, 11.0))];
        let plan = plan_matches(&cases, &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(
            plan.decisions,
            vec![Decision::Continue {
                case_id: "A".into(),
                merged: vec![]
            }]
        );
        assert!(plan.not_seen.is_empty());
    }

    #[test]
    fn another_parcel_never_continues_a_case_but_a_finding_over_its_ground_splits_from_it() {
        // p1's boundary moved (a re-survey that kept its id for part of it): the change on what
        // is now p2 opens a new case, split from p1's case, which is not continued across parcels.
        let cases = [case("A", "p1", "t1", rect(0.0, 0.0, 10.0, 10.0))];
        let fs = [finding("f1", "p2", rect(0.0, 0.0, 10.0, 10.0))];
        let plan = plan_matches(&cases, &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(
            plan.decisions,
            vec![Decision::New {
                parents: vec!["A".into()]
            }]
        );
        assert_eq!(plan.not_seen, vec!["A".to_string()]);
        // The part still on p1 continues it; the part on p2 splits from it.
        let fs = [
            finding("f1", "p1", rect(0.0, 0.0, 6.0, 10.0)),
            finding("f2", "p2", rect(6.0, 0.0, 10.0, 10.0)),
        ];
        let plan = plan_matches(&cases, &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(
            plan.decisions,
            vec![
                Decision::Continue {
                    case_id: "A".into(),
                    merged: vec![]
                },
                Decision::New {
                    parents: vec!["A".into()]
                }
            ]
        );
        // A neighbour's finding beside the case (parcels clipped apart) is no relation.
        let fs = [finding("f2", "p2", rect(10.0, 0.0, 20.0, 10.0))];
        let plan = plan_matches(&cases, &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(plan.decisions, vec![Decision::New { parents: vec![] }]);
    }

    #[test]
    fn below_the_ratio_is_no_match() {
        let cases = [case("A", "p1", "t1", rect(0.0, 0.0, 10.0, 10.0))];
        // 2 of 10 m² of the smaller geometry overlap: 0.2 < 0.3.
        let fs = [finding("f1", "p1", rect(9.0, 0.0, 19.0, 10.0))];
        let plan = plan_matches(&cases, &fs, &cells(&[]), &none(), 0.3);
        assert_eq!(plan.decisions, vec![Decision::New { parents: vec![] }]);
        // The case's cell was not processed: it is not declared unseen.
        assert!(plan.not_seen.is_empty());
    }

    #[test]
    fn a_split_keeps_the_id_for_the_best_overlap() {
        let cases = [case("A", "p1", "t1", rect(0.0, 0.0, 10.0, 10.0))];
        let fs = [
            finding("f2", "p1", rect(0.0, 0.0, 4.0, 10.0)),
            finding("f1", "p1", rect(6.0, 0.0, 10.0, 10.0)),
            finding("f3", "p1", rect(4.0, 0.0, 6.0, 10.0)),
        ];
        let plan = plan_matches(&cases, &fs, &cells(&["c1"]), &none(), 0.3);
        // All three lie wholly inside A (ratio 1): the tie goes to the smaller finding id.
        assert_eq!(
            plan.decisions,
            vec![
                Decision::New {
                    parents: vec!["A".into()]
                },
                Decision::Continue {
                    case_id: "A".into(),
                    merged: vec![]
                },
                Decision::New {
                    parents: vec!["A".into()]
                },
            ]
        );
        // With a larger piece, the larger overlap does not win over the ratio (all are 1), but a
        // piece that sticks out does lose.
        let fs = [
            finding("f1", "p1", rect(5.0, 0.0, 15.0, 10.0)),
            finding("f2", "p1", rect(0.0, 0.0, 5.0, 10.0)),
        ];
        let plan = plan_matches(&cases, &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(
            plan.decisions[1],
            Decision::Continue {
                case_id: "A".into(),
                merged: vec![]
            }
        );
        assert_eq!(
            plan.decisions[0],
            Decision::New {
                parents: vec!["A".into()]
            }
        );
    }

    #[test]
    fn a_merge_continues_the_oldest_case() {
        let cases = [
            case("B", "p1", "2026-11-02", rect(6.0, 0.0, 10.0, 10.0)),
            case("A", "p1", "2026-11-01", rect(0.0, 0.0, 4.0, 10.0)),
            case("C", "p1", "2026-10-30", rect(50.0, 50.0, 60.0, 60.0)),
        ];
        let fs = [finding("f1", "p1", rect(0.0, 0.0, 10.0, 10.0))];
        let plan = plan_matches(&cases, &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(
            plan.decisions,
            vec![Decision::Continue {
                case_id: "A".into(),
                merged: vec!["B".into()]
            }]
        );
        assert_eq!(plan.not_seen, vec!["C".to_string()]);
    }

    #[test]
    fn a_case_whose_parcel_is_gone_continues_on_the_parcel_now_there() {
        // The parcel layer re-surveyed: p1 split into p7 and p8, p2 kept. The change on p1's
        // ground, now on p7 (and a little on p8), continues p1's case (p8's piece splits from
        // it); a finding on p2's neighbour p9 over p2's case's ground (p2's boundary moved) never
        // takes p2's case, which is still there, but its new case is split from it.
        let a = case("A", "p1", "t1", rect(0.0, 0.0, 10.0, 10.0));
        let b = case("B", "p2", "t1", rect(20.0, 0.0, 30.0, 10.0));
        let fs = [
            finding("f7", "p7", rect(0.0, 0.0, 8.0, 10.0)),
            finding("f8", "p8", rect(8.0, 0.0, 10.0, 10.0)),
            finding("f9", "p9", rect(20.0, 0.0, 30.0, 10.0)),
        ];
        let gone = |p: &str| p == "p1";
        let plan = plan_matches_with(
            &[a.clone(), b.clone()],
            &fs,
            &cells(&["c1"]),
            &none(),
            0.3,
            &gone,
        );
        assert_eq!(
            plan.decisions,
            vec![
                Decision::Continue {
                    case_id: "A".into(),
                    merged: vec![]
                },
                Decision::New {
                    parents: vec!["A".into()]
                },
                Decision::New {
                    parents: vec!["B".into()]
                },
            ]
        );
        assert_eq!(plan.not_seen, vec!["B".to_string()]);
        // With every parcel still there, cases stay on their own parcels; the new cases over
        // their ground are split from them.
        let plan = plan_matches(&[a, b], &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(
            plan.decisions,
            ["A", "A", "B"]
                .map(|p| Decision::New {
                    parents: vec![p.into()]
                })
                .to_vec()
        );
        assert_eq!(plan.not_seen, vec!["A".to_string(), "B".to_string()]);
    }

    #[test]
    fn the_finding_that_last_updated_a_case_keeps_it() {
        // Two identical findings and two identical cases, each case last updated by one of them:
        // each keeps its own case instead of one merging both.
        let g = rect(0.0, 0.0, 10.0, 10.0);
        let mut a = case("A", "p1", "t1", g.clone());
        a.last_finding_id = "f2".into();
        let mut b = case("B", "p1", "t1", g.clone());
        b.last_finding_id = "f1".into();
        let fs = [finding("f1", "p1", g.clone()), finding("f2", "p1", g)];
        let plan = plan_matches(&[a, b], &fs, &cells(&["c1"]), &none(), 0.3);
        assert_eq!(
            plan.decisions,
            vec![
                Decision::Continue {
                    case_id: "B".into(),
                    merged: vec![]
                },
                Decision::Continue {
                    case_id: "A".into(),
                    merged: vec![]
                },
            ]
        );
    }

    #[test]
    fn unseen_needs_every_cell_of_the_case_processed() {
        let mut a = case("A", "p1", "t1", rect(0.0, 0.0, 10.0, 10.0));
        a.cells = vec!["c1".into(), "c2".into()];
        let plan = plan_matches(std::slice::from_ref(&a), &[], &cells(&["c1"]), &none(), 0.3);
        assert!(plan.not_seen.is_empty());
        let plan = plan_matches(&[a], &[], &cells(&["c1", "c2", "c3"]), &none(), 0.3);
        assert_eq!(plan.not_seen, vec!["A".to_string()]);
    }

    #[test]
    fn a_case_under_cloud_is_not_declared_unseen() {
        let a = case("A", "p1", "t1", rect(0.0, 0.0, 10.0, 10.0));
        let cloud = pieces(&[rect(-5.0, -5.0, 7.0, 15.0)]);
        let plan = plan_matches(std::slice::from_ref(&a), &[], &cells(&["c1"]), &cloud, 0.3);
        assert!(plan.not_seen.is_empty());
        assert_eq!(plan.not_observed, vec!["A".to_string()]);
        let haze = pieces(&[rect(-5.0, -5.0, 3.0, 15.0)]);
        let plan = plan_matches(&[a], &[], &cells(&["c1"]), &haze, 0.3);
        assert_eq!(plan.not_seen, vec!["A".to_string()]);
        assert!(plan.not_observed.is_empty());
    }

    #[test]
    fn overlapping_pieces_count_once_and_far_ones_not_at_all() {
        let a = rect(0.0, 0.0, 10.0, 10.0);
        // Two pieces over the same left 40 %, and one far away.
        let two = pieces(&[
            rect(-5.0, -5.0, 4.0, 15.0),
            rect(-1.0, -1.0, 4.0, 11.0),
            rect(100.0, 100.0, 200.0, 200.0),
        ]);
        assert!((covered_share(&a, &two) - 0.4).abs() < 1e-9);
        // Pieces meeting inside the case add up; a county of pieces elsewhere adds nothing.
        let mut many = vec![rect(0.0, 0.0, 3.0, 10.0), rect(3.0, 0.0, 6.0, 10.0)];
        for k in 0..2000 {
            let x = 1000.0 + 20.0 * k as f64;
            many.push(rect(x, 0.0, x + 10.0, 10.0));
        }
        assert!((covered_share(&a, &pieces(&many)) - 0.6).abs() < 1e-9);
        assert_eq!(covered_share(&a, &none()), 0.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The share under the indexed pieces is the share under their whole union.
        #[test]
        fn the_share_under_the_pieces_is_the_share_under_their_union(
            boxes in proptest::collection::vec((0.0f64..40.0, 0.0f64..40.0, 1.0f64..15.0, 1.0f64..15.0), 0..12),
            case in (0.0f64..40.0, 0.0f64..40.0, 1.0f64..20.0, 1.0f64..20.0),
        ) {
            let rects: Vec<MultiPolygon<f64>> =
                boxes.iter().map(|(x, y, w, h)| rect(*x, *y, x + w, y + h)).collect();
            let a = rect(case.0, case.1, case.0 + case.2, case.1 + case.3);
            let whole = geo::unary_union(rects.iter().flat_map(|m| m.0.iter()));
            let expected = if whole.0.is_empty() {
                0.0
            } else {
                (a.intersection(&whole).unsigned_area() / a.unsigned_area()).clamp(0.0, 1.0)
            };
            // Boolean operations snap to a grid scaled to their inputs' extent, which differs
            // between the two: the same share to a millionth.
            prop_assert!((covered_share(&a, &pieces(&rects)) - expected).abs() < 1e-6);
        }
    }

    /// A small model of the store for property tests: applies a plan like `commit_findings`.
    fn apply(book: &mut Vec<KnownCase>, fs: &[NewFinding], plan: &MatchPlan, run: usize) -> usize {
        let mut opened = 0;
        for (f, d) in fs.iter().zip(&plan.decisions) {
            match d {
                Decision::Continue { case_id, merged } => {
                    book.retain(|c| !merged.contains(&c.id));
                    if let Some(c) = book.iter_mut().find(|c| &c.id == case_id) {
                        c.geometry = f.geometry.clone();
                        c.last_finding_id = f.finding_id.clone();
                    }
                }
                Decision::New { .. } => {
                    opened += 1;
                    let id = format!("case-{run}-{}", book.len());
                    book.push(KnownCase {
                        id,
                        parcel_id: f.parcel_id.clone(),
                        first_seen: format!("run-{run}"),
                        last_finding_id: f.finding_id.clone(),
                        cells: vec!["c1".into()],
                        geometry: f.geometry.clone(),
                    });
                }
            }
        }
        opened
    }

    fn arb_findings() -> impl Strategy<Value = Vec<NewFinding>> {
        prop::collection::vec(
            (
                0u8..3,
                0.0f64..80.0,
                0.0f64..80.0,
                1.0f64..30.0,
                1.0f64..30.0,
            ),
            0..12,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (p, x, y, w, h))| {
                    finding(
                        &format!("f{i:02}"),
                        &format!("p{p}"),
                        rect(x, y, x + w, y + h),
                    )
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn matching_the_same_findings_again_opens_nothing(fs in arb_findings(), ratio in 0.05f64..0.9) {
            let processed = cells(&["c1"]);
            let mut book = Vec::new();
            let first = plan_matches(&book, &fs, &processed, &none(), ratio);
            apply(&mut book, &fs, &first, 1);
            let ids_after_first: Vec<String> = book.iter().map(|c| c.id.clone()).collect();
            let second = plan_matches(&book, &fs, &processed, &none(), ratio);
            let opened = apply(&mut book, &fs, &second, 2);
            prop_assert_eq!(opened, 0);
            let all_continue = second
                .decisions
                .iter()
                .all(|d| matches!(d, Decision::Continue { merged, .. } if merged.is_empty()));
            prop_assert!(all_continue, "{:?}", second.decisions);
            prop_assert!(second.not_seen.is_empty());
            let ids_after_second: Vec<String> = book.iter().map(|c| c.id.clone()).collect();
            prop_assert_eq!(ids_after_first, ids_after_second);
        }

        #[test]
        fn the_plan_does_not_depend_on_input_order(fs in arb_findings(), ratio in 0.05f64..0.9) {
            let processed = cells(&["c1"]);
            let mut book = Vec::new();
            let first = plan_matches(&book, &fs, &processed, &none(), ratio);
            apply(&mut book, &fs, &first, 1);
            // Shift every finding a little and match in reverse order, against reversed cases.
            let moved: Vec<NewFinding> = fs.iter().map(|f| {
                let mut f = f.clone();
                use geo::Translate;
                f.geometry = f.geometry.translate(1.5, -0.5);
                f
            }).collect();
            let forward = plan_matches(&book, &moved, &processed, &none(), ratio);
            let mut rev_book = book.clone();
            rev_book.reverse();
            let mut rev_moved = moved.clone();
            rev_moved.reverse();
            let mut backward = plan_matches(&rev_book, &rev_moved, &processed, &none(), ratio);
            backward.decisions.reverse();
            prop_assert_eq!(forward, backward);
        }
    }
}
