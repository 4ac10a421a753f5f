//! Scoring findings against injected truth: parcel-level and object-level precision, recall and F1,
//! overall and per violation kind, with the lists of misses and false alarms. Pure.

use geo::{Area, BooleanOps, BoundingRect, MultiPolygon};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One truth record.
#[derive(Debug, Clone)]
pub struct TruthItem {
    /// Kind (`building_on_farmland`, `harvest`, `cloud`, …; the simple schema's `violation`).
    pub kind: String,
    /// `violation`, `legal`, `cycle`, `unobserved`, `artefact`.
    pub category: String,
    /// Parcel id, if any.
    pub parcel_id: Option<String>,
    /// Geometry (any common CRS).
    pub geometry: MultiPolygon<f64>,
}

/// One finding as scored.
#[derive(Debug, Clone)]
pub struct FoundItem {
    /// Kind.
    pub kind: String,
    /// Parcel id.
    pub parcel_id: String,
    /// Geometry (same CRS as the truth).
    pub geometry: MultiPolygon<f64>,
}

/// Precision, recall, F1 with their counts. A ratio whose denominator is zero (no findings, or no
/// violations in the truth) is undefined, `None` (JSON `null`), not 0 or 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Prf {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives (`fn` in JSON).
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// TP / (TP + FP).
    pub precision: Option<f64>,
    /// TP / (TP + FN).
    pub recall: Option<f64>,
    /// Harmonic mean, when both are defined.
    pub f1: Option<f64>,
}

/// `num / den`, undefined when there is nothing to divide by.
fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The harmonic mean of precision and recall; 0 when both are 0, undefined when either is.
fn f1(precision: Option<f64>, recall: Option<f64>) -> Option<f64> {
    let (p, r) = (precision?, recall?);
    Some(if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    })
}

impl Prf {
    /// From counts.
    pub fn new(tp: usize, fp: usize, fn_: usize) -> Prf {
        let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        Prf {
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1: f1(precision, recall),
        }
    }
}

/// The parcel-level score of one violation kind. Recall follows the truth's kind (were its
/// parcels flagged, by a finding of any kind), precision the findings' kind (are the parcels
/// flagged with it violations, of any kind); `truth_flagged_as_kind` says how many truth parcels
/// were flagged with the very kind. The two sides count different parcels, so they are given
/// apart rather than as one TP/FP/FN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct KindScore {
    /// Violation parcels of this kind in the truth.
    pub truth: usize,
    /// Of them, parcels flagged by a finding of any kind.
    pub truth_flagged: usize,
    /// Of them, parcels flagged by a finding of this kind.
    pub truth_flagged_as_kind: usize,
    /// Parcels flagged with this kind (those scored: not spill-over, not hidden violations').
    pub found: usize,
    /// Of them, parcels with a violation of any kind in the truth.
    pub found_on_violation: usize,
    /// `found_on_violation / found`.
    pub precision: Option<f64>,
    /// `truth_flagged / truth`.
    pub recall: Option<f64>,
    /// Harmonic mean, when both are defined.
    pub f1: Option<f64>,
}

/// A missed violation or a false alarm.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    /// Parcel.
    pub parcel_id: String,
    /// Kind (truth kind for misses, finding kind for false alarms).
    pub kind: String,
    /// Area, in the CRS's units² (`landwatch eval`: square metres).
    pub area: f64,
    /// For false alarms: the truth kinds the finding overlaps (harvest, permitted …), if any.
    pub overlaps: Vec<String>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Parcel level: a parcel with a violation is found if any finding names it.
    pub parcel: Prf,
    /// Object level: a violation object is found if a finding overlaps it; a finding is right if
    /// it overlaps a violation object.
    pub object: Prf,
    /// Parcel level per violation kind (recall from the truth kind, precision from the finding kind).
    pub per_kind: BTreeMap<String, KindScore>,
    /// Violations that could not be observed (mostly under cloud, shadow or outside the after
    /// image), left out of the scores.
    pub unobservable: Vec<Miss>,
    /// Violation parcels not flagged.
    pub missed_parcels: Vec<Miss>,
    /// Flagged parcels without a violation of their own, onto which an injected change of a
    /// neighbouring parcel spills (a real change across the parcel edge): neither right nor wrong.
    pub spill_over_parcels: Vec<Miss>,
    /// Flagged parcels without a violation.
    pub false_alarm_parcels: Vec<Miss>,
    /// Violation objects no finding overlaps.
    pub missed_objects: Vec<Miss>,
    /// Findings that overlap no violation object.
    pub false_alarm_objects: Vec<Miss>,
}

fn overlap(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> f64 {
    match (a.bounding_rect(), b.bounding_rect()) {
        (Some(ra), Some(rb))
            if ra.min().x <= rb.max().x
                && rb.min().x <= ra.max().x
                && ra.min().y <= rb.max().y
                && rb.min().y <= ra.max().y =>
        {
            a.intersection(b).unsigned_area()
        }
        _ => 0.0,
    }
}

/// Whether any finding's bounding box meets the truth's: findings of another scene (or truth and
/// findings in different CRSs that both claim to be right) would otherwise be scored as all
/// false alarms and all misses, which reads like a detector that found nothing right.
pub fn share_ground(truth: &[TruthItem], found: &[FoundItem]) -> bool {
    let extent = truth
        .iter()
        .filter_map(|t| t.geometry.bounding_rect())
        .reduce(|a, b| {
            geo::Rect::new(
                (a.min().x.min(b.min().x), a.min().y.min(b.min().y)),
                (a.max().x.max(b.max().x), a.max().y.max(b.max().y)),
            )
        });
    let Some(e) = extent else {
        return false;
    };
    found
        .iter()
        .filter_map(|f| f.geometry.bounding_rect())
        .any(|r| {
            r.min().x <= e.max().x
                && e.min().x <= r.max().x
                && r.min().y <= e.max().y
                && e.min().y <= r.max().y
        })
}

/// The kinds of the truth items on parcel `p`, sorted, each once.
fn kinds_on<'a>(items: impl Iterator<Item = &'a TruthItem>, p: &str) -> Vec<String> {
    let mut k: Vec<String> = items
        .filter(|t| t.parcel_id.as_deref() == Some(p))
        .map(|t| t.kind.clone())
        .collect();
    k.sort();
    k.dedup();
    k
}

/// Scores findings against truth.
pub fn evaluate(truth: &[TruthItem], found: &[FoundItem]) -> Evaluation {
    let unobserved: Vec<&TruthItem> = truth
        .iter()
        .filter(|t| t.category == "unobserved")
        .collect();
    let mut violations = Vec::new();
    let mut unobservable = Vec::new();
    for t in truth.iter().filter(|t| t.category == "violation") {
        let area = t.geometry.unsigned_area();
        let hidden: f64 = unobserved
            .iter()
            .map(|u| overlap(&t.geometry, &u.geometry))
            .sum();
        let miss = Miss {
            parcel_id: t.parcel_id.clone().unwrap_or_default(),
            kind: t.kind.clone(),
            area,
            overlaps: vec![],
        };
        if area > 0.0 && hidden >= 0.5 * area {
            unobservable.push(miss);
        } else {
            violations.push(t);
        }
    }
    let hidden_parcels: BTreeSet<&str> =
        unobservable.iter().map(|m| m.parcel_id.as_str()).collect();
    let truth_parcels: BTreeSet<&str> = violations
        .iter()
        .filter_map(|t| t.parcel_id.as_deref())
        .collect();
    // Findings on parcels whose violation could not be seen are neither right nor wrong.
    let flagged: BTreeSet<&str> = found
        .iter()
        .map(|f| f.parcel_id.as_str())
        .filter(|p| truth_parcels.contains(p) || !hidden_parcels.contains(p))
        .collect();
    // A flagged parcel onto which a neighbour's injected change spills is not a false alarm: the
    // change is real, only the truth names the parcel it started in.
    let changes: Vec<&TruthItem> = truth
        .iter()
        .filter(|t| matches!(t.category.as_str(), "violation" | "legal"))
        .collect();
    let spill: BTreeSet<&str> = flagged
        .iter()
        .copied()
        .filter(|p| !truth_parcels.contains(p))
        .filter(|p| {
            found.iter().filter(|f| f.parcel_id == *p).any(|f| {
                changes.iter().any(|t| {
                    t.parcel_id.as_deref() != Some(*p) && overlap(&t.geometry, &f.geometry) >= 20.0
                })
            })
        })
        .collect();
    let flagged: BTreeSet<&str> = flagged.difference(&spill).copied().collect();
    let spill_over_parcels = spill
        .iter()
        .map(|p| Miss {
            parcel_id: p.to_string(),
            kind: found
                .iter()
                .filter(|f| f.parcel_id == *p)
                .map(|f| f.kind.clone())
                .collect::<Vec<_>>()
                .join(","),
            area: found
                .iter()
                .filter(|f| f.parcel_id == *p)
                .map(|f| f.geometry.unsigned_area())
                .sum(),
            overlaps: vec![],
        })
        .collect();
    let tp = flagged.intersection(&truth_parcels).count();
    let parcel = Prf::new(tp, flagged.len() - tp, truth_parcels.len() - tp);
    // A missed parcel is named by its violations' kinds (the harvest or permitted building also
    // on it is no miss); a false alarm by whatever the truth has there.
    let kinds_of = |p: &str| kinds_on(truth.iter(), p);
    let violation_kinds_of = |p: &str| kinds_on(violations.iter().copied(), p);
    let missed_parcels = truth_parcels
        .difference(&flagged)
        .map(|p| Miss {
            parcel_id: p.to_string(),
            kind: violation_kinds_of(p).join(","),
            area: violations
                .iter()
                .filter(|t| t.parcel_id.as_deref() == Some(*p))
                .map(|t| t.geometry.unsigned_area())
                .sum(),
            overlaps: vec![],
        })
        .collect();
    let false_alarm_parcels = flagged
        .difference(&truth_parcels)
        .map(|p| Miss {
            parcel_id: p.to_string(),
            kind: found
                .iter()
                .filter(|f| f.parcel_id == *p)
                .map(|f| f.kind.clone())
                .collect::<Vec<_>>()
                .join(","),
            area: found
                .iter()
                .filter(|f| f.parcel_id == *p)
                .map(|f| f.geometry.unsigned_area())
                .sum(),
            overlaps: kinds_of(p),
        })
        .collect();

    // Objects.
    let matched: Vec<bool> = violations
        .iter()
        .map(|t| {
            let a = t.geometry.unsigned_area();
            found.iter().any(|f| {
                let o = overlap(&t.geometry, &f.geometry);
                o > 0.0 && (o >= 0.1 * a || o >= 20.0)
            })
        })
        .collect();
    let mut false_alarm_objects = Vec::new();
    let mut right = 0;
    for f in found {
        if (hidden_parcels.contains(f.parcel_id.as_str()) || spill.contains(f.parcel_id.as_str()))
            && !truth_parcels.contains(f.parcel_id.as_str())
        {
            continue;
        }
        if violations
            .iter()
            .any(|t| overlap(&t.geometry, &f.geometry) > 0.0)
        {
            right += 1;
        } else {
            let mut ov: Vec<String> = truth
                .iter()
                .filter(|t| t.category != "artefact" && overlap(&t.geometry, &f.geometry) > 0.0)
                .map(|t| t.kind.clone())
                .collect();
            ov.sort();
            ov.dedup();
            false_alarm_objects.push(Miss {
                parcel_id: f.parcel_id.clone(),
                kind: f.kind.clone(),
                area: f.geometry.unsigned_area(),
                overlaps: ov,
            });
        }
    }
    // Precision counts findings (right / all scored findings); recall counts truth objects.
    let found_objects = matched.iter().filter(|m| **m).count();
    let (precision, recall) = (
        ratio(right, right + false_alarm_objects.len()),
        ratio(found_objects, violations.len()),
    );
    let object = Prf {
        tp: found_objects,
        fp: false_alarm_objects.len(),
        fn_: violations.len() - found_objects,
        precision,
        recall,
        f1: f1(precision, recall),
    };
    let missed_objects = violations
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(t, _)| Miss {
            parcel_id: t.parcel_id.clone().unwrap_or_default(),
            kind: t.kind.clone(),
            area: t.geometry.unsigned_area(),
            overlaps: vec![],
        })
        .collect();

    // Per kind.
    let mut per_kind = BTreeMap::new();
    let mut kinds: BTreeSet<String> = violations.iter().map(|t| t.kind.clone()).collect();
    kinds.extend(found.iter().map(|f| f.kind.clone()));
    for k in kinds {
        let truth_k: BTreeSet<&str> = violations
            .iter()
            .filter(|t| t.kind == k)
            .filter_map(|t| t.parcel_id.as_deref())
            .collect();
        let found_k: BTreeSet<&str> = found
            .iter()
            .filter(|f| f.kind == k)
            .map(|f| f.parcel_id.as_str())
            .filter(|p| flagged.contains(p))
            .collect();
        let truth_flagged = truth_k.iter().filter(|p| flagged.contains(**p)).count();
        let truth_flagged_as_kind = truth_k.iter().filter(|p| found_k.contains(**p)).count();
        let found_on_violation = found_k
            .iter()
            .filter(|p| truth_parcels.contains(**p))
            .count();
        let (precision, recall) = (
            ratio(found_on_violation, found_k.len()),
            ratio(truth_flagged, truth_k.len()),
        );
        let score = KindScore {
            truth: truth_k.len(),
            truth_flagged,
            truth_flagged_as_kind,
            found: found_k.len(),
            found_on_violation,
            precision,
            recall,
            f1: f1(precision, recall),
        };
        per_kind.insert(k, score);
    }
    Evaluation {
        parcel,
        object,
        per_kind,
        unobservable,
        missed_parcels,
        spill_over_parcels,
        false_alarm_parcels,
        missed_objects,
        false_alarm_objects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(x: f64, y: f64, s: f64) -> MultiPolygon<f64> {
        MultiPolygon::new(vec![geo::Rect::new((x, y), (x + s, y + s)).to_polygon()])
    }

    fn t(kind: &str, cat: &str, p: &str, g: MultiPolygon<f64>) -> TruthItem {
        TruthItem {
            kind: kind.into(),
            category: cat.into(),
            parcel_id: Some(p.into()),
            geometry: g,
        }
    }

    #[test]
    fn scores_parcels_and_objects() {
        let truth = vec![
            t("building_on_farmland", "violation", "A", sq(0.0, 0.0, 10.0)),
            t("excavation", "violation", "B", sq(100.0, 0.0, 10.0)),
            t("harvest", "cycle", "B", sq(120.0, 0.0, 10.0)),
            t("harvest", "cycle", "C", sq(200.0, 0.0, 50.0)),
            t("pond_digging", "violation", "D", sq(300.0, 0.0, 10.0)),
            TruthItem {
                kind: "cloud".into(),
                category: "unobserved".into(),
                parcel_id: None,
                geometry: sq(295.0, -5.0, 30.0),
            },
        ];
        let found = vec![
            FoundItem {
                kind: "building_on_farmland".into(),
                parcel_id: "A".into(),
                geometry: sq(2.0, 2.0, 6.0),
            },
            FoundItem {
                kind: "excavation".into(),
                parcel_id: "C".into(),
                geometry: sq(210.0, 10.0, 20.0),
            },
        ];
        let e = evaluate(&truth, &found);
        assert_eq!((e.parcel.tp, e.parcel.fp, e.parcel.fn_), (1, 1, 1));
        assert_eq!(
            e.unobservable.len(),
            1,
            "the pond under the cloud is left out"
        );
        assert_eq!(e.false_alarm_parcels[0].overlaps, vec!["harvest"]);
        assert_eq!(e.missed_parcels[0].parcel_id, "B");
        assert_eq!(
            e.missed_parcels[0].kind, "excavation",
            "the harvest is no miss"
        );
        assert_eq!((e.object.tp, e.object.fp, e.object.fn_), (1, 1, 1));
        assert_eq!(e.per_kind["building_on_farmland"].recall, Some(1.0));
        assert_eq!(e.per_kind["excavation"].precision, Some(0.0));
    }

    #[test]
    fn findings_elsewhere_share_no_ground_with_the_truth() {
        let truth = vec![
            t("excavation", "violation", "A", sq(0.0, 0.0, 10.0)),
            t("harvest", "cycle", "B", sq(100.0, 0.0, 10.0)),
        ];
        let at = |x: f64| FoundItem {
            kind: "excavation".into(),
            parcel_id: "C".into(),
            geometry: sq(x, 0.0, 5.0),
        };
        // Between the truth's features is still its ground; far off is not.
        assert!(share_ground(&truth, &[at(50.0)]));
        assert!(share_ground(&truth, &[at(5000.0), at(105.0)]));
        assert!(!share_ground(&truth, &[at(5000.0)]));
    }

    #[test]
    fn a_kind_flagged_as_another_is_counted_on_both_sides_and_nothing_is_made_up() {
        let truth = vec![
            t("building_on_farmland", "violation", "A", sq(0.0, 0.0, 10.0)),
            t("excavation", "violation", "B", sq(100.0, 0.0, 10.0)),
        ];
        let found = vec![FoundItem {
            kind: "excavation".into(),
            parcel_id: "A".into(),
            geometry: sq(2.0, 2.0, 6.0),
        }];
        let e = evaluate(&truth, &found);
        let b = e.per_kind["building_on_farmland"];
        assert_eq!(
            (b.truth, b.truth_flagged, b.truth_flagged_as_kind, b.found),
            (1, 1, 0, 0)
        );
        assert_eq!((b.precision, b.recall, b.f1), (None, Some(1.0), None));
        let x = e.per_kind["excavation"];
        assert_eq!(
            (x.truth, x.truth_flagged, x.found, x.found_on_violation),
            (1, 0, 1, 1)
        );
        assert_eq!(
            (x.precision, x.recall, x.f1),
            (Some(1.0), Some(0.0), Some(0.0))
        );
        // No findings at all: precision is undefined, not 0.
        let none = evaluate(&truth, &[]);
        assert_eq!(none.parcel.precision, None);
        assert_eq!(none.object.precision, None);
        assert_eq!(none.parcel.recall, Some(0.0));
    }
}
