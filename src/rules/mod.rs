//! Rules as data (`rules.toml`): which changes on which parcels are suspected violations, from
//! what area, how severe, and how permits apply. Every decision carries a rule trace.

use crate::detect::cover::Transition;
use crate::overlay::{PermitCheck, PermittedUses, Piece};
use crate::parcels::{Parcel, ParcelSet};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// The rules shipped with landwatch (written by `landwatch init`).
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// How a rule uses permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PermitCondition {
    /// Fires on the part no valid permit explains.
    #[default]
    None,
    /// Fires on the excess when a valid permit explains part of the change (少批多占).
    Partial,
    /// Fires when a permit that is not yet valid covers the change (未批先建).
    NotYetValid,
    /// Fires when an expired temporary-use permit covers the change (临时用地到期).
    ExpiredTemporary,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id, e.g. `R06-FARM-BUILD`.
    pub id: String,
    /// The suspected violation kind it reports.
    pub kind: String,
    /// Chinese label.
    pub label_zh: String,
    /// English label.
    pub label_en: String,
    /// Approved uses it applies to (empty: any).
    #[serde(default)]
    pub approved_use: Vec<String>,
    /// Control layers the parcel must be in, all of them (empty: none required).
    #[serde(default)]
    pub control: Vec<String>,
    /// Transitions it applies to.
    pub transitions: Vec<String>,
    /// Minimum suspected area, m².
    pub min_area_m2: f64,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// How permits apply.
    #[serde(default)]
    pub permit: PermitCondition,
}

/// Settings shared by the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Changes smaller than this inside one parcel are ignored, m².
    pub min_piece_m2: f64,
    /// Share of a farmland parcel a vegetation loss must fill to be a field operation.
    pub field_operation_min_fraction: f64,
    /// Share of the parcel's edge band the loss must reach (a field operation goes to the edges).
    pub field_operation_min_edge_contact: f64,
    /// Share of the region that must lie inside that parcel.
    pub field_operation_inside_fraction: f64,
    /// Share of a change a permit must cover for the permit-based kinds.
    pub permit_cover_fraction: f64,
    /// Which permitted uses explain which transitions.
    pub permitted_uses: PermittedUses,
}

/// A rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Format version (1).
    pub version: u32,
    /// Shared settings.
    pub settings: RuleSettings,
    /// The rules, in order: the first that fires makes the finding.
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

/// A rules file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not readable.
    #[error("{path}: cannot read the rules: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid TOML, or a field is wrong.
    #[error("{path}: invalid rules: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (names the rule and field).
        detail: String,
    },
}

impl RuleSet {
    /// The shipped rules.
    pub fn default_rules() -> RuleSet {
        // The shipped file is checked by a unit test; parsing it cannot fail at run time.
        RuleSet::parse(DEFAULT_RULES, "<built-in rules>").unwrap_or_else(|_| RuleSet {
            version: 1,
            settings: RuleSettings {
                min_piece_m2: 5.0,
                field_operation_min_fraction: 0.7,
                field_operation_min_edge_contact: 0.8,
                field_operation_inside_fraction: 0.6,
                permit_cover_fraction: 0.5,
                permitted_uses: PermittedUses::new(),
            },
            rules: Vec::new(),
        })
    }

    /// Reads and validates a rules file.
    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        RuleSet::parse(&text, &path.display().to_string())
    }

    /// Parses and validates rules text.
    pub fn parse(text: &str, name: &str) -> Result<RuleSet, RulesError> {
        let invalid = |detail: String| RulesError::Invalid {
            path: name.to_string(),
            detail,
        };
        let set: RuleSet = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if set.version != 1 {
            return Err(invalid(format!(
                "version {} is not supported (expected 1)",
                set.version
            )));
        }
        // Settings out of their range would judge nonsense (a negative share, a share above 1).
        let s = &set.settings;
        let in_range = |key: &str, v: f64, low_open: bool, high: Option<f64>| {
            let ok = v.is_finite()
                && if low_open { v > 0.0 } else { v >= 0.0 }
                && high.is_none_or(|h| v <= h);
            let range = match (low_open, high) {
                (true, Some(h)) => format!("more than 0 and at most {h}"),
                (false, Some(h)) => format!("from 0 to {h}"),
                (_, None) => "0 or more (m²)".to_string(),
            };
            if ok {
                Ok(())
            } else {
                Err(invalid(format!("[settings] {key} = {v}: must be {range}")))
            }
        };
        in_range("min_piece_m2", s.min_piece_m2, false, None)?;
        for (key, v) in [
            (
                "field_operation_min_fraction",
                s.field_operation_min_fraction,
            ),
            (
                "field_operation_min_edge_contact",
                s.field_operation_min_edge_contact,
            ),
            (
                "field_operation_inside_fraction",
                s.field_operation_inside_fraction,
            ),
        ] {
            in_range(key, v, false, Some(1.0))?;
        }
        // A permit covering no share of a change would cover every change near it.
        in_range(
            "permit_cover_fraction",
            s.permit_cover_fraction,
            true,
            Some(1.0),
        )?;
        let mut ids = std::collections::HashSet::new();
        for (i, r) in set.rules.iter().enumerate() {
            for (key, v) in [("id", &r.id), ("kind", &r.kind)] {
                if v.trim().is_empty() {
                    return Err(invalid(format!(
                        "rule {} ([[rule]] number {} in the file): {key} is empty; give it a \
                         {}",
                        if r.id.trim().is_empty() {
                            "without an id"
                        } else {
                            r.id.as_str()
                        },
                        i + 1,
                        if key == "id" {
                            "stable id, such as R11-MY-RULE (findings and cases name it)"
                        } else {
                            "violation kind, such as building_on_farmland"
                        }
                    )));
                }
            }
            if !ids.insert(r.id.clone()) {
                return Err(invalid(format!("rule id '{}' appears twice", r.id)));
            }
            for t in &r.transitions {
                if Transition::from_name(t).is_none() {
                    let known: Vec<&str> = Transition::ALL.iter().map(|t| t.name()).collect();
                    return Err(invalid(format!(
                        "rule {}: unknown transition '{t}' (known: {})",
                        r.id,
                        known.join(", ")
                    )));
                }
            }
            for c in &r.control {
                if !["basic_farmland", "eco_redline"].contains(&c.as_str()) {
                    return Err(invalid(format!(
                        "rule {}: unknown control layer '{c}' (basic_farmland, eco_redline)",
                        r.id
                    )));
                }
            }
            if !["low", "medium", "high"].contains(&r.severity.as_str()) {
                return Err(invalid(format!(
                    "rule {}: severity '{}' (low, medium, high)",
                    r.id, r.severity
                )));
            }
            if !(r.min_area_m2.is_finite() && r.min_area_m2 >= 0.0) {
                return Err(invalid(format!("rule {}: min_area_m2 must be ≥ 0", r.id)));
            }
        }
        for (use_, ts) in &set.settings.permitted_uses {
            for t in ts {
                if Transition::from_name(t).is_none() {
                    return Err(invalid(format!(
                        "settings.permitted_uses.{use_}: unknown transition '{t}'"
                    )));
                }
            }
        }
        Ok(set)
    }
}

/// How a whole parcel lost its vegetation in a run (all regions together), and how far the piece
/// being judged reaches the parcel's edges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FieldLoss {
    /// Share of the parcel's area.
    pub fraction: f64,
    /// Share of the parcel's edge band (two pixels wide) the loss reaches.
    pub edge_contact: f64,
    /// Share of the parcel's edge band the piece being judged covers, measured for losses of
    /// vegetation to bare ground (`None` for other transitions). A harvest or ploughing goes to
    /// the field's edges, and so does each part of it; bare ground that reaches none of them
    /// inside a harvested field (a pit, a heap of soil) is not part of the operation.
    pub piece_edge_contact: Option<f64>,
}

/// What the rules decided about one piece of change.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// The rule that fired, if any.
    pub rule: Option<Rule>,
    /// Suspected area, m² (for beyond-permit: the excess only).
    pub suspected_m2: f64,
    /// Whether the suspected part is the unexplained remainder (permits cut it) or the whole piece.
    pub suspected_is_remainder: bool,
    /// The rule trace: every rule considered and why it fired or not, the numbers and permits.
    pub trace: Value,
    /// When no rule fired, why, in a sentence (the permits that explain the change, the
    /// thresholds it stays below, a harvest): what a case that is no longer flagged says.
    pub why_not: Option<String>,
}

/// The control layers a piece is in: its parcel's, and those of their own holding at least half of
/// the piece itself.
pub fn control_layers(parcel: &Parcel, piece: &Piece) -> Vec<String> {
    let mut layers = parcel.control_layers();
    for c in &piece.control_layers {
        if !layers.contains(c) {
            layers.push(c.clone());
        }
    }
    layers.sort();
    layers
}

/// The area of the piece, m², that permits of a status cover (each place once), for the rules of
/// not-yet-valid and expired permits: only permits whose permitted use would explain the change
/// count, since a permit for a pond neither approves in advance nor once approved a building.
fn permit_cover(piece: &Piece, status: &str, temporary_only: bool) -> f64 {
    piece.covered_m2(|c| {
        c.status == status
            && c.use_matches
            && (!temporary_only || c.kind == "temporary_use" || c.permitted_use == "temporary_use")
    })
}

/// Judges one piece (a change region inside one parcel) against the rules.
///
/// `field` describes how the whole parcel lost its vegetation in this run, all regions together
/// (a harvest read in pieces, a building in a harvested field).
pub fn judge(
    rules: &RuleSet,
    piece: &Piece,
    parcel: &Parcel,
    transition: Transition,
    region_area_m2: f64,
    field: FieldLoss,
) -> Judgement {
    let s = &rules.settings;
    let controls = control_layers(parcel, piece);
    let mut considered = Vec::new();
    let permits: Vec<&PermitCheck> = piece.permits.iter().map(|(_, c)| c).collect();
    let explained_m2 = piece.area_m2 - piece.unexplained_m2;
    let measured = json!({
        "piece_area_m2": round2(piece.area_m2),
        "unexplained_area_m2": round2(piece.unexplained_m2),
        "explained_by_permits_m2": round2(explained_m2),
        "region_area_m2": round2(region_area_m2),
        "parcel_changed_fraction": round3(piece.parcel_fraction),
        "parcel_vegetation_loss_fraction": round3(field.fraction),
        "parcel_edge_contact": round3(field.edge_contact),
        "piece_edge_contact": field.piece_edge_contact.map(round3),
        "region_inside_parcel_fraction": round3(piece.region_fraction),
    });
    let base = |considered: Vec<Value>, outcome: &str, note: Option<String>| {
        json!({
            "outcome": outcome,
            "transition": transition.name(),
            "parcel": {"id": parcel.id, "approved_use": parcel.approved_use, "control_layers": controls},
            "measured": measured,
            "permits": permits,
            "rules": considered,
            "note": note,
        })
    };
    if piece.area_m2 < s.min_piece_m2 {
        let note = format!(
            "{:.1} m² inside the parcel, below min_piece_m2 = {}",
            piece.area_m2, s.min_piece_m2
        );
        return Judgement {
            rule: None,
            suspected_m2: 0.0,
            suspected_is_remainder: false,
            trace: base(considered, "sliver", Some(note.clone())),
            why_not: Some(note),
        };
    }
    // Harvest and ploughing: a whole field losing its vegetation at once, out to its edges — the
    // piece judged among them: bare ground inside a harvested field, clear of its edges, is not
    // the harvest.
    let filled = piece.parcel_fraction.max(field.fraction);
    if transition == Transition::VegetationToBare
        && ["farmland", "garden"].contains(&parcel.approved_use.as_str())
        && filled >= s.field_operation_min_fraction
        && field.edge_contact >= s.field_operation_min_edge_contact
        && field.piece_edge_contact.is_some_and(|c| c > 0.0)
        && piece.region_fraction >= s.field_operation_inside_fraction
    {
        let note = format!(
            "the field lost its vegetation over {:.0}% of its area (≥ {:.0}%), out to {:.0}% of its edges (≥ {:.0}%): a harvest or ploughing, not a suspected violation",
            100.0 * filled,
            100.0 * s.field_operation_min_fraction,
            100.0 * field.edge_contact,
            100.0 * s.field_operation_min_edge_contact
        );
        return Judgement {
            rule: None,
            suspected_m2: 0.0,
            suspected_is_remainder: false,
            trace: base(considered, "field_operation", Some(note.clone())),
            why_not: Some(note),
        };
    }
    // The reasons of the rules that applied to this parcel and transition but did not fire.
    let mut applicable: Vec<String> = Vec::new();
    for r in &rules.rules {
        let mut why = |fired: bool, reason: String| {
            considered.push(json!({"rule_id": r.id, "fired": fired, "reason": reason}));
        };
        if !r.approved_use.is_empty() && !r.approved_use.contains(&parcel.approved_use) {
            why(
                false,
                format!(
                    "approved use '{}' not in {:?}",
                    parcel.approved_use, r.approved_use
                ),
            );
            continue;
        }
        if let Some(missing) = r.control.iter().find(|c| !controls.contains(c)) {
            why(false, format!("parcel is not in {missing}"));
            continue;
        }
        if !r.transitions.iter().any(|t| t == transition.name()) {
            why(
                false,
                format!(
                    "transition {} not in {:?}",
                    transition.name(),
                    r.transitions
                ),
            );
            continue;
        }
        // Thresholds are judged on the suspected area as the finding and its trace report it (to
        // the cm²): 199.996 m² is reported as 200.00 m² and is at least 200.
        let unexplained = round2(piece.unexplained_m2);
        let (ok, area, remainder, reason) = match r.permit {
            PermitCondition::None => {
                // What valid permits explain is never counted, and the rest is judged whatever
                // they explain: excavation or a pond beyond a permit's footprint has no
                // beyond-footprint rule of its own to go to.
                let ok = unexplained >= r.min_area_m2;
                let explained = if explained_m2 >= 1.0 {
                    format!("{explained_m2:.1} m² explained by valid permits, not counted; ")
                } else {
                    String::new()
                };
                let reason = format!(
                    "{explained}{unexplained:.2} m² unexplained vs min_area_m2 {}",
                    r.min_area_m2
                );
                (ok, piece.unexplained_m2, true, reason)
            }
            PermitCondition::Partial => {
                let ok = explained_m2 >= 1.0 && unexplained >= r.min_area_m2;
                (
                    ok,
                    piece.unexplained_m2,
                    true,
                    format!(
                    "valid permits explain {explained_m2:.1} m²; excess {unexplained:.2} m² vs min_area_m2 {}",
                    r.min_area_m2
                ),
                )
            }
            PermitCondition::NotYetValid | PermitCondition::ExpiredTemporary => {
                let (status, temp) = if r.permit == PermitCondition::NotYetValid {
                    ("not_yet_valid", false)
                } else {
                    ("expired", true)
                };
                let cover = permit_cover(piece, status, temp);
                let ok = cover >= s.permit_cover_fraction * piece.area_m2
                    && unexplained >= r.min_area_m2;
                (ok, piece.unexplained_m2, true, format!(
                    "{status} permits cover {cover:.1} m² of {:.1} m² (≥ {:.0}% needed); unexplained {unexplained:.2} m² vs min_area_m2 {}",
                    piece.area_m2, 100.0 * s.permit_cover_fraction, r.min_area_m2
                ))
            }
        };
        if !ok {
            applicable.push(format!("{}: {reason}", r.id));
        }
        why(ok, reason);
        if ok {
            let trace = json!({
                "outcome": "suspected",
                "rule_id": r.id,
                "kind": r.kind,
                "label": format!("{} / {}", r.label_zh, r.label_en),
                "transition": transition.name(),
                "parcel": {"id": parcel.id, "approved_use": parcel.approved_use, "control_layers": controls},
                "measured": measured,
                "thresholds": {"min_area_m2": r.min_area_m2, "permit_cover_fraction": s.permit_cover_fraction, "field_operation_min_fraction": s.field_operation_min_fraction},
                "permits": permits,
                "rules": considered,
                "wording": "疑似违法用地线索 / suspected violation: a lead for a field check, not a verdict",
            });
            return Judgement {
                rule: Some(r.clone()),
                suspected_m2: area,
                suspected_is_remainder: remainder,
                trace,
                why_not: None,
            };
        }
    }
    let explaining: Vec<&str> = piece
        .permits
        .iter()
        .filter(|(_, c)| c.status == "explains")
        .map(|(_, c)| c.permit_id.as_str())
        .collect();
    let why_not = if explained_m2 >= 1.0 && !explaining.is_empty() {
        format!(
            "valid permits explain {explained_m2:.1} m² of the {:.1} m² ({})",
            piece.area_m2,
            explaining.join(", ")
        )
    } else if !applicable.is_empty() {
        applicable.join("; ")
    } else {
        format!(
            "no rule flags {} on a parcel of approved use '{}'{}",
            transition.name(),
            parcel.approved_use,
            if controls.is_empty() {
                String::new()
            } else {
                format!(" ({})", controls.join(", "))
            }
        )
    };
    Judgement {
        rule: None,
        suspected_m2: 0.0,
        suspected_is_remainder: false,
        trace: base(considered, "no_rule", None),
        why_not: Some(why_not),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Convenience for tests and tools: the parcel of a piece.
pub fn parcel_of<'a>(set: &'a ParcelSet, piece: &Piece) -> &'a Parcel {
    &set.parcels[piece.parcel]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::pieces;
    use crate::parcels::{Parcel, Permit};
    use chrono::NaiveDate;
    use geo::{Area, MultiPolygon};

    fn sq(x: f64, y: f64, w: f64, h: f64) -> MultiPolygon<f64> {
        MultiPolygon::new(vec![geo::Rect::new((x, y), (x + w, y + h)).to_polygon()])
    }

    fn parcel(use_: &str, basic: bool, redline: bool) -> Parcel {
        let p = sq(0.0, 0.0, 60.0, 50.0);
        Parcel {
            id: "P1".into(),
            approved_use: use_.into(),
            basic_farmland: basic,
            eco_redline: redline,
            parcel_permit: None,
            area: p.unsigned_area(),
            polygon: p,
            source: "test".into(),
        }
    }

    fn permit(
        kind: &str,
        use_: &str,
        from: (i32, u32),
        to: (i32, u32),
        fp: MultiPolygon<f64>,
    ) -> Permit {
        Permit {
            id: format!("{kind}-1"),
            kind: kind.into(),
            permitted_use: use_.into(),
            valid_from: NaiveDate::from_ymd_opt(from.0, from.1, 1),
            valid_to: NaiveDate::from_ymd_opt(to.0, to.1, 28),
            parcel_id: Some("P1".into()),
            footprint: fp,
            source: "test".into(),
        }
    }

    fn run(p: Parcel, permits: Vec<Permit>, region: MultiPolygon<f64>, t: Transition) -> Judgement {
        let rules = RuleSet::default_rules();
        let set = ParcelSet::new(vec![p], permits);
        let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
        let ps = pieces(
            &region,
            t,
            &set,
            after,
            &rules.settings.permitted_uses,
            crate::overlay::AreaMeasure::Planar { m2_per_unit2: 1.0 },
        );
        judge(
            &rules,
            &ps[0],
            &set.parcels[0],
            t,
            region.unsigned_area(),
            FieldLoss {
                fraction: ps[0].parcel_fraction,
                edge_contact: 1.0,
                piece_edge_contact: Some(1.0),
            },
        )
    }

    fn kind(j: &Judgement) -> Option<String> {
        j.rule.as_ref().map(|r| r.kind.clone())
    }

    #[test]
    fn shipped_rules_parse_and_cover_every_violation_kind() {
        let r = RuleSet::parse(DEFAULT_RULES, "default").unwrap();
        for k in [
            "building_on_farmland",
            "excavation",
            "pond_digging",
            "filled_water",
            "before_approval",
            "beyond_permit",
            "expired_temporary",
            "redline_construction",
        ] {
            assert!(r.rules.iter().any(|x| x.kind == k), "no rule for {k}");
        }
        let e = RuleSet::parse("version = 1\n[settings]\nmin_piece_m2 = 1\nfield_operation_min_fraction = 0.9\nfield_operation_min_edge_contact = 0.8\nfield_operation_inside_fraction = 0.9\npermit_cover_fraction = 0.5\n[settings.permitted_uses]\n[[rule]]\nid='X'\nkind='k'\nlabel_zh='z'\nlabel_en='e'\ntransitions=['veg_to_roof']\nmin_area_m2=1\nseverity='high'\n", "r.toml").unwrap_err();
        assert!(
            e.to_string().contains("veg_to_roof") && e.to_string().contains("rule X"),
            "{e}"
        );
    }

    #[test]
    fn settings_out_of_range_and_empty_ids_are_refused_naming_the_key_and_range() {
        let rules = |settings: &str, id: &str| {
            format!(
                "version = 1\n[settings]\nmin_piece_m2 = 5\nfield_operation_min_fraction = 0.7\n\
                 field_operation_min_edge_contact = 0.8\nfield_operation_inside_fraction = 0.6\n\
                 permit_cover_fraction = 0.5\n{settings}\n[settings.permitted_uses]\n[[rule]]\n\
                 id='{id}'\nkind='k'\nlabel_zh='z'\nlabel_en='e'\ntransitions=['other']\n\
                 min_area_m2=1\nseverity='high'\n"
            )
        };
        // The settings are written twice when changed: TOML takes no key twice, so replace.
        let with = |key: &str, value: &str| {
            let text = rules("", "R1");
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap()
                .to_string();
            text.replace(&line, &format!("{key} = {value}"))
        };
        assert!(RuleSet::parse(&rules("", "R1"), "my.toml").is_ok());
        for (key, value, range) in [
            ("permit_cover_fraction", "-1.0", "more than 0 and at most 1"),
            ("permit_cover_fraction", "1.5", "more than 0 and at most 1"),
            ("permit_cover_fraction", "0.0", "more than 0 and at most 1"),
            ("min_piece_m2", "-5.0", "0 or more"),
            ("field_operation_min_fraction", "-0.1", "from 0 to 1"),
            ("field_operation_min_edge_contact", "1.2", "from 0 to 1"),
            ("field_operation_inside_fraction", "nan", "from 0 to 1"),
        ] {
            let e = RuleSet::parse(&with(key, value), "my.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("my.toml: ")
                    && e.contains(&format!("[settings] {key} = "))
                    && e.contains(range),
                "{key} = {value}: {e}"
            );
        }
        for id in ["", "  "] {
            let e = RuleSet::parse(&rules("", id), "my.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("[[rule]] number 1") && e.contains("id is empty"),
                "{e}"
            );
        }
    }

    #[test]
    fn each_kind_of_violation_fires_its_rule() {
        let b = sq(10.0, 10.0, 20.0, 15.0); // 300 m²
        assert_eq!(
            kind(&run(
                parcel("farmland", false, false),
                vec![],
                b.clone(),
                Transition::VegetationToBuilt
            ))
            .as_deref(),
            Some("building_on_farmland")
        );
        // 300 m² of bare soil is below the 400 m² of excavation (and says so).
        let j = run(
            parcel("farmland", false, false),
            vec![],
            b.clone(),
            Transition::VegetationToBare,
        );
        assert_eq!(kind(&j), None);
        assert!(
            j.why_not
                .as_deref()
                .is_some_and(|w| w.contains("300.00 m² unexplained vs min_area_m2 400")),
            "{:?}",
            j.why_not
        );
        let big = sq(5.0, 5.0, 30.0, 20.0);
        assert_eq!(
            kind(&run(
                parcel("farmland", false, false),
                vec![],
                big.clone(),
                Transition::VegetationToBare
            ))
            .as_deref(),
            Some("excavation")
        );
        assert_eq!(
            kind(&run(
                parcel("farmland", true, false),
                vec![],
                b.clone(),
                Transition::VegetationToWater
            ))
            .as_deref(),
            Some("pond_digging")
        );
        assert_eq!(
            kind(&run(
                parcel("water", false, false),
                vec![],
                b.clone(),
                Transition::WaterToLand
            ))
            .as_deref(),
            Some("filled_water")
        );
        assert_eq!(
            kind(&run(
                parcel("forest", false, true),
                vec![],
                sq(10.0, 10.0, 10.0, 12.0),
                Transition::VegetationToBuilt
            ))
            .as_deref(),
            Some("redline_construction")
        );
        // A valid permit covering everything explains it.
        let fp = sq(8.0, 8.0, 24.0, 19.0);
        let valid = permit(
            "planning_permit",
            "construction",
            (2026, 1),
            (2027, 12),
            fp.clone(),
        );
        let j = run(
            parcel("farmland", false, false),
            vec![valid.clone()],
            b.clone(),
            Transition::VegetationToBuilt,
        );
        assert_eq!(kind(&j), None, "{}", j.trace);
        assert_eq!(
            j.why_not.as_deref(),
            Some("valid permits explain 300.0 m² of the 300.0 m² (planning_permit-1)")
        );
        // Beyond the footprint: only the excess counts.
        let wide = sq(10.0, 10.0, 40.0, 15.0); // 600 m², 270 outside the footprint
        let j = run(
            parcel("farmland", false, false),
            vec![valid],
            wide,
            Transition::VegetationToBuilt,
        );
        assert_eq!(kind(&j).as_deref(), Some("beyond_permit"));
        assert!((j.suspected_m2 - 270.0).abs() < 1e-6, "{}", j.suspected_m2);
        // Not yet valid, expired temporary.
        let later = permit(
            "planning_permit",
            "construction",
            (2026, 12),
            (2028, 12),
            fp.clone(),
        );
        assert_eq!(
            kind(&run(
                parcel("farmland", false, false),
                vec![later],
                b.clone(),
                Transition::VegetationToBuilt
            ))
            .as_deref(),
            Some("before_approval")
        );
        let expired = permit("temporary_use", "temporary_use", (2026, 5), (2026, 8), fp);
        assert_eq!(
            kind(&run(
                parcel("farmland", false, false),
                vec![expired],
                b,
                Transition::VegetationToBuilt
            ))
            .as_deref(),
            Some("expired_temporary")
        );
    }

    #[test]
    fn overlapping_permits_cover_the_ground_they_share_once() {
        // 600 m² of building; two not-yet-valid permits (a land-use approval and the planning
        // permit for the same plot) with one footprint over 35 % of it: 35 % is covered, short of
        // the 50 % that makes it building before approval, so it is building on farmland.
        let region = sq(10.0, 10.0, 40.0, 15.0);
        let footprint = sq(10.0, 10.0, 14.0, 15.0);
        let mut approval = permit(
            "land_use_approval",
            "construction",
            (2026, 12),
            (2028, 12),
            footprint.clone(),
        );
        approval.id = "YD-1".into();
        let planning = permit(
            "planning_permit",
            "construction",
            (2026, 12),
            (2028, 12),
            footprint,
        );
        let j = run(
            parcel("farmland", false, false),
            vec![approval, planning],
            region,
            Transition::VegetationToBuilt,
        );
        assert_eq!(
            kind(&j).as_deref(),
            Some("building_on_farmland"),
            "{}",
            j.trace
        );
        let r03 = &j.trace["rules"][2];
        assert_eq!(r03["rule_id"], "R03-BEFORE-APPROVAL");
        assert!(
            r03["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("not_yet_valid permits cover 210.0 m² of 600.0 m²")),
            "{r03}"
        );
    }

    #[test]
    fn building_before_approval_counts_the_whole_unexplained_change() {
        // 600 m² built; a permit valid only from December covers 60 % of it. None of it is
        // permitted on the after date, so all 600 m² are suspected, not only the 360 m².
        let later = permit(
            "planning_permit",
            "construction",
            (2026, 12),
            (2028, 12),
            sq(10.0, 10.0, 24.0, 15.0),
        );
        let j = run(
            parcel("farmland", false, false),
            vec![later],
            sq(10.0, 10.0, 40.0, 15.0),
            Transition::VegetationToBuilt,
        );
        assert_eq!(kind(&j).as_deref(), Some("before_approval"), "{}", j.trace);
        assert!((j.suspected_m2 - 600.0).abs() < 1e-6, "{}", j.suspected_m2);
        assert_eq!(j.trace["permits"][0]["overlap_m2"], 360.0);
    }

    #[test]
    fn a_change_inside_a_control_layer_is_in_it_whatever_the_share_of_its_parcel() {
        // A red line of its own over a fifth of a grassland parcel (3000 m²): the parcel is not
        // in it, but a 300 m² building wholly inside the line is, and one outside is not.
        use crate::parcels::ControlZones;
        let rules = RuleSet::default_rules();
        let zone = sq(0.0, 0.0, 30.0, 20.0);
        let set = ParcelSet::new(vec![parcel("grassland", false, false)], vec![])
            .with_controls(vec![ControlZones::new("eco_redline", vec![zone])]);
        let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
        let judged = |region: MultiPolygon<f64>| {
            let t = Transition::VegetationToBuilt;
            let measure = crate::overlay::AreaMeasure::Planar { m2_per_unit2: 1.0 };
            let ps = pieces(
                &region,
                t,
                &set,
                after,
                &rules.settings.permitted_uses,
                measure,
            );
            let field = FieldLoss::default();
            judge(
                &rules,
                &ps[0],
                &set.parcels[0],
                t,
                region.unsigned_area(),
                field,
            )
        };
        let inside = judged(sq(5.0, 2.0, 20.0, 15.0));
        assert_eq!(
            kind(&inside).as_deref(),
            Some("redline_construction"),
            "{}",
            inside.trace
        );
        assert_eq!(
            inside.trace["parcel"]["control_layers"],
            json!(["eco_redline"])
        );
        let outside = judged(sq(35.0, 25.0, 20.0, 15.0));
        assert_eq!(kind(&outside), None, "{}", outside.trace);
        assert_eq!(
            outside.trace["rules"][0]["reason"],
            "parcel is not in eco_redline"
        );
    }

    #[test]
    fn the_minimum_area_is_judged_on_the_area_as_reported() {
        // "At least min_area_m2" (200 m² for building on farmland), on the suspected area as the
        // finding and its trace give it, to the cm².
        for (height, fires, says) in [
            (10.0, true, "200.00 m² unexplained vs min_area_m2 200"),
            (9.9998, true, "200.00 m² unexplained vs min_area_m2 200"),
            (9.9995, false, "199.99 m² unexplained vs min_area_m2 200"),
        ] {
            let j = run(
                parcel("farmland", false, false),
                vec![],
                sq(10.0, 10.0, 20.0, height),
                Transition::VegetationToBuilt,
            );
            assert_eq!(j.rule.is_some(), fires, "{height}: {}", j.trace);
            let r06 = j.trace["rules"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["rule_id"] == "R06-FARM-BUILD"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(r06["reason"], says, "{height}: {}", j.trace);
            if fires {
                assert_eq!(j.trace["measured"]["unexplained_area_m2"], 200.0);
            }
        }
    }

    #[test]
    fn a_permit_for_another_use_is_no_approval_before_or_after_the_fact() {
        // A pond's filing, valid only from December, over a building: not building before
        // approval (the filing approves no building), but building on farmland.
        let b = sq(10.0, 10.0, 20.0, 15.0);
        let pond = permit(
            "facility_agriculture",
            "aquaculture",
            (2026, 12),
            (2028, 12),
            sq(8.0, 8.0, 24.0, 19.0),
        );
        let j = run(
            parcel("farmland", false, false),
            vec![pond],
            b.clone(),
            Transition::VegetationToBuilt,
        );
        assert_eq!(
            kind(&j).as_deref(),
            Some("building_on_farmland"),
            "{}",
            j.trace
        );
        let check = &j.trace["permits"][0];
        assert_eq!(check["status"], "not_yet_valid");
        assert!(
            check["reason"].as_str().is_some_and(|r| r.ends_with(
                "its permitted use 'aquaculture' does not cover vegetation_to_built either"
            )),
            "{check}"
        );
        // An expired temporary permit for a pond over a building: not use after expiry either.
        let pond = permit(
            "temporary_use",
            "aquaculture",
            (2026, 5),
            (2026, 8),
            sq(8.0, 8.0, 24.0, 19.0),
        );
        let j = run(
            parcel("farmland", false, false),
            vec![pond],
            b,
            Transition::VegetationToBuilt,
        );
        assert_eq!(
            kind(&j).as_deref(),
            Some("building_on_farmland"),
            "{}",
            j.trace
        );
    }

    #[test]
    fn excavation_beyond_a_permit_s_footprint_is_flagged_on_the_excess() {
        // 1000 m² dug; a valid construction permit explains the 100 m² inside its footprint.
        // No beyond-footprint rule takes excavation: the excavation rule judges the 900 m² left.
        let region = sq(5.0, 5.0, 50.0, 20.0);
        let valid = permit(
            "planning_permit",
            "construction",
            (2026, 1),
            (2027, 12),
            sq(5.0, 5.0, 5.0, 20.0),
        );
        let j = run(
            parcel("farmland", false, false),
            vec![valid],
            region,
            Transition::VegetationToBare,
        );
        assert_eq!(kind(&j).as_deref(), Some("excavation"), "{}", j.trace);
        assert!((j.suspected_m2 - 900.0).abs() < 1e-6, "{}", j.suspected_m2);
        assert!(j.suspected_is_remainder);
        assert_eq!(j.trace["measured"]["unexplained_area_m2"], 900.0);
        assert_eq!(j.trace["measured"]["explained_by_permits_m2"], 100.0);
        let fired = &j.trace["rules"][j.trace["rules"].as_array().map_or(0, |r| r.len() - 1)];
        assert_eq!(fired["rule_id"], "R07-FARM-EXCAVATION");
        assert_eq!(
            fired["reason"],
            "100.0 m² explained by valid permits, not counted; 900.00 m² unexplained vs min_area_m2 400"
        );
    }

    /// A harvested field with a pit dug inside it: the field lost its vegetation all over and
    /// out to its edges, but the pit reaches none of them — an excavation, not the harvest.
    #[test]
    fn bare_ground_clear_of_a_harvested_field_s_edges_is_not_the_harvest() {
        let rules = RuleSet::default_rules();
        let set = ParcelSet::new(vec![parcel("farmland", false, false)], vec![]);
        let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
        let pit = sq(20.0, 15.0, 25.0, 20.0);
        let ps = pieces(
            &pit,
            Transition::VegetationToBare,
            &set,
            after,
            &rules.settings.permitted_uses,
            crate::overlay::AreaMeasure::Planar { m2_per_unit2: 1.0 },
        );
        let field = |contact| FieldLoss {
            fraction: 0.97,
            edge_contact: 1.0,
            piece_edge_contact: Some(contact),
        };
        let judged = |f| {
            judge(
                &rules,
                &ps[0],
                &set.parcels[0],
                Transition::VegetationToBare,
                pit.unsigned_area(),
                f,
            )
        };
        let j = judged(field(0.0));
        assert_eq!(kind(&j).as_deref(), Some("excavation"), "{}", j.trace);
        assert_eq!(j.trace["measured"]["piece_edge_contact"], 0.0);
        // The same piece reaching the edge band is part of the operation.
        let j = judged(field(0.2));
        assert_eq!(kind(&j), None);
        assert_eq!(j.trace["outcome"], "field_operation");
    }

    #[test]
    fn a_whole_field_turning_bare_is_a_field_operation() {
        let whole = sq(0.5, 0.5, 59.0, 49.0);
        let j = run(
            parcel("farmland", false, false),
            vec![],
            whole,
            Transition::VegetationToBare,
        );
        assert_eq!(kind(&j), None);
        assert_eq!(j.trace["outcome"], "field_operation");
        assert!(j.why_not.unwrap().contains("a harvest or ploughing"));
        // Construction land is not judged by these rules.
        let j = run(
            parcel("construction", false, false),
            vec![],
            sq(10.0, 10.0, 20.0, 15.0),
            Transition::VegetationToBuilt,
        );
        assert_eq!(kind(&j), None);
        assert_eq!(
            j.why_not.as_deref(),
            Some("no rule flags vegetation_to_built on a parcel of approved use 'construction'")
        );
    }

    proptest::proptest! {
        /// Whatever the parcel, its control layers, the transition and the field statistics, no
        /// rule fires on a change that lies wholly inside the footprint of a permit valid on the
        /// after date whose permitted use explains the change.
        #[test]
        fn no_rule_fires_inside_a_matching_valid_permit(
            x in 3.0f64..30.0, y in 3.0f64..25.0, w in 1.0f64..25.0, h in 1.0f64..20.0,
            use_i in 0usize..6, basic in proptest::bool::ANY, redline in proptest::bool::ANY,
            t_i in 0usize..6, fraction in 0.0f64..1.0, edge in 0.0f64..1.0,
        ) {
            let uses = ["farmland", "garden", "forest", "grassland", "water", "construction"];
            let ts = [
                Transition::VegetationToBuilt,
                Transition::BareToBuilt,
                Transition::VegetationToBare,
                Transition::VegetationToWater,
                Transition::BareToWater,
                Transition::WaterToLand,
            ];
            let rules = RuleSet::default_rules();
            let p = parcel(uses[use_i], basic, redline);
            let permit = permit("land_use_approval", "any", (2025, 1), (2027, 12), sq(2.0, 2.0, 56.0, 46.0));
            let set = ParcelSet::new(vec![p], vec![permit]);
            let after = NaiveDate::from_ymd_opt(2026, 10, 14).unwrap();
            let region = sq(x, y, w, h);
            let t = ts[t_i];
            let ps = pieces(&region, t, &set, after, &rules.settings.permitted_uses, crate::overlay::AreaMeasure::Planar { m2_per_unit2: 1.0 });
            proptest::prop_assert_eq!(ps.len(), 1);
            let j = judge(&rules, &ps[0], &set.parcels[0], t, region.unsigned_area(), FieldLoss { fraction, edge_contact: edge, piece_edge_contact: Some(edge) });
            proptest::prop_assert!(j.rule.is_none(), "fired {:?}: {}", j.rule.map(|r| r.id), j.trace);
        }
    }
}
