//! Parcels of the approved land-use plan, control layers and permits: validated, indexed with an
//! R-tree, in the working CRS. Pure: built from features the ingest layer read.

use crate::ingest::vector::{VectorFeature, VectorLayerData};
use chrono::NaiveDate;
use geo::{Area, BooleanOps, BoundingRect, Intersects, MultiPolygon, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A parcel of the land-use plan.
#[derive(Debug, Clone, Serialize)]
pub struct Parcel {
    /// Parcel id (text, whatever the source type).
    pub id: String,
    /// Approved use, normalised to lower-case English (`farmland`, `construction`, …).
    pub approved_use: String,
    /// Inside permanent basic farmland (永久基本农田).
    pub basic_farmland: bool,
    /// Inside the ecological protection red line (生态保护红线).
    pub eco_redline: bool,
    /// A permit that covers the whole parcel (the simple schema's `permit_id`).
    pub parcel_permit: Option<String>,
    /// Outline in the working CRS.
    #[serde(skip)]
    pub polygon: MultiPolygon<f64>,
    /// Area in CRS units² (m² in a metric CRS).
    pub area: f64,
    /// Source layer and feature id (for messages).
    pub source: String,
}

impl Parcel {
    /// The control layers the parcel lies in.
    pub fn control_layers(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.basic_farmland {
            v.push("basic_farmland".to_string());
        }
        if self.eco_redline {
            v.push("eco_redline".to_string());
        }
        v
    }
}

/// A permit or approval with its footprint and validity.
#[derive(Debug, Clone, Serialize)]
pub struct Permit {
    /// Permit number.
    pub id: String,
    /// Kind: `land_use_approval`, `planning_permit`, `facility_agriculture`, `temporary_use`,
    /// `parcel_permit` (the simple schema's whole-parcel permit).
    pub kind: String,
    /// Permitted use: `construction`, `facility_agriculture`, `temporary_use`, `any`.
    pub permitted_use: String,
    /// First valid day (open when absent).
    pub valid_from: Option<NaiveDate>,
    /// Last valid day (open when absent).
    pub valid_to: Option<NaiveDate>,
    /// The parcel it was issued for, if recorded.
    pub parcel_id: Option<String>,
    /// Footprint in the working CRS.
    #[serde(skip)]
    pub footprint: MultiPolygon<f64>,
    /// Source layer and feature id.
    pub source: String,
}

impl Permit {
    /// Whether the permit is valid on a day.
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| f <= day) && self.valid_to.is_none_or(|t| t >= day)
    }
}

/// A parcel or permit problem that stops loading, naming the layer and features.
#[derive(Debug, thiserror::Error)]
pub enum ParcelError {
    /// Two features share a parcel id.
    #[error("{layer}: parcel id '{id}' is used by feature {first} and feature {second}; parcel ids must be unique")]
    DuplicateId {
        /// Layer.
        layer: String,
        /// The id.
        id: String,
        /// First feature.
        first: String,
        /// Second feature.
        second: String,
    },
    /// A required attribute is missing.
    #[error("{layer}: no field '{field}' (fields: {available}); {hint}")]
    MissingField {
        /// Layer.
        layer: String,
        /// The field.
        field: String,
        /// The fields there are.
        available: String,
        /// What to do.
        hint: &'static str,
    },
    /// No usable parcel at all.
    #[error("{layer}: no usable parcel: every one of its {count} features was rejected, the first as {first}")]
    Empty {
        /// Layer.
        layer: String,
        /// How many features it has.
        count: usize,
        /// The first rejected feature and why (`feature 1 (parcel_id A): a point, not an
        /// outline (a polygon)`).
        first: String,
    },
    /// A parcel's yes/no attribute holds something that is neither.
    #[error(
        "{feature}: {field} is '{value}', which is neither yes nor no ({spellings}){more}; \
             correct the value in the layer, so that a protected parcel is not read as \
             unprotected"
    )]
    NotAFlag {
        /// The file, layer and feature (with its parcel id).
        feature: String,
        /// The field.
        field: String,
        /// The value as read.
        value: String,
        /// The accepted spellings ([`FLAG_SPELLINGS`]).
        spellings: &'static str,
        /// How many other features hold such values, if any (`; 3 other features too`).
        more: String,
    },
    /// The parcels' layer has no features.
    #[error("{layer}: the layer has no features; if the parcels are in another layer of the file, name it with [parcels] layer in the config or --parcels-layer")]
    NoFeatures {
        /// Layer.
        layer: String,
    },
}

/// Something loading repaired or skipped, for the run summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParcelNote {
    /// Layer and feature (with its parcel or permit id when it has one).
    pub feature: String,
    /// What of which layer: `parcel_repaired`, `parcel_rejected`, `permit_repaired`,
    /// `permit_rejected`, `permit_without_outline` (a permit of a layer of outlines without its
    /// own, taken to permit its whole parcel), `permits_empty` (a permits layer without
    /// features), `permits_off_parcels` (a permits layer whose permits all lie apart from the
    /// parcels: in another CRS than its file says, most often), `control_off_parcels` (the same of a
    /// control layer), `control_repaired`, `control_rejected`, `control_empty`. Only a rejection or an empty layer skips input
    /// ([`ParcelNote::skips_input`]); a repaired feature is used.
    pub kind: String,
    /// What and why.
    pub message: String,
}

impl ParcelNote {
    /// Whether the note is of input left out (a rejected feature, an empty layer), which the run
    /// names as skipped (exit 2), rather than a warning about input that was used as repaired or
    /// read in a way to know of.
    pub fn skips_input(&self) -> bool {
        !NOTE_KINDS_USED.contains(&self.kind.as_str())
    }
}

/// The kinds of [`ParcelNote`] whose feature was used all the same.
const NOTE_KINDS_USED: &[&str] = &[
    "parcel_repaired",
    "permit_repaired",
    "control_repaired",
    "permit_without_outline",
];

/// Field names of the parcel layer.
#[derive(Debug, Clone)]
pub struct ParcelFields {
    /// Parcel id field.
    pub id: String,
    /// Approved-use field.
    pub approved_use: String,
    /// The layer's own approved-use values mapped to uses (`[parcels.uses]`).
    pub uses: BTreeMap<String, String>,
    /// The basic-farmland flag's field when the config names one (`[parcels]
    /// basic_farmland_field`, e.g. a register's `是否基本农田` or `JBNT`): it must then be there.
    /// `None`: `basic_farmland`, if the layer has it.
    pub basic_farmland: Option<String>,
    /// The ecological-red-line flag's field likewise (`[parcels] eco_redline_field`).
    pub eco_redline: Option<String>,
}

/// Normalises an approved-use value: the layer's own mapping (`[parcels.uses]`) first, then a
/// land-use class by name, synonym, land-use code or Chinese name ([`crate::land_use`]); any
/// other value is kept, trimmed and in lower case (a rules file may name it).
pub fn normalise_use(raw: &str, own: &BTreeMap<String, String>) -> String {
    let t = raw.trim();
    // The layer's own value as written, else in any case (a code such as `NT-1` given as `nt-1`).
    let own_use = own.get(t).or_else(|| {
        own.iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(t))
            .map(|(_, v)| v)
    });
    let t = own_use.map_or(t, |m| m.trim());
    match crate::land_use::class_of(t) {
        Some(class) => class.to_string(),
        None => t.to_ascii_lowercase(),
    }
}

/// Chinese names of the approved uses, as they appear in a county land-use plan.
pub fn use_name_zh(u: &str) -> &'static str {
    crate::land_use::name_zh(u)
}

/// Features (parcels or permits) whose use is a use nothing knows: one value of the layer's.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownUse {
    /// The value, normalised (empty when the features have none).
    pub value: String,
    /// How many features have it.
    pub count: usize,
    /// The first few of their ids.
    pub examples: Vec<String>,
}

/// The values of `(value, id)` pairs that `known` does not accept, each with how many ids have
/// it and the first few of them, most ids first.
fn unknown_values<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
    known: impl Fn(&str) -> bool,
) -> Vec<UnknownUse> {
    let mut by_value: BTreeMap<&str, UnknownUse> = BTreeMap::new();
    for (v, id) in items {
        if known(v) {
            continue;
        }
        let u = by_value.entry(v).or_insert_with(|| UnknownUse {
            value: v.to_string(),
            count: 0,
            examples: Vec::new(),
        });
        u.count += 1;
        if u.examples.len() < 3 {
            u.examples.push(id.to_string());
        }
    }
    let mut out: Vec<UnknownUse> = by_value.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out
}

/// The approved uses of `parcels` that are neither a land-use class ([`crate::land_use::CLASSES`])
/// nor named by a rule (`rule_uses`), most parcels first: rules that name uses cannot fire on
/// them, so a scan names them rather than quietly check less.
pub fn unknown_uses<'a>(
    parcels: impl IntoIterator<Item = &'a Parcel>,
    rule_uses: &std::collections::BTreeSet<&str>,
) -> Vec<UnknownUse> {
    unknown_values(
        parcels
            .into_iter()
            .map(|p| (p.approved_use.as_str(), p.id.as_str())),
        |v| crate::land_use::is_class(v) || rule_uses.contains(v),
    )
}

/// The permitted uses of `permits` that the rules' `[settings.permitted_uses]` does not name
/// (`permitted_uses`), most permits first: such a permit explains no change, so a scan names it
/// rather than report the building it permits as suspected.
pub fn unknown_permitted_uses<'a>(
    permits: impl IntoIterator<Item = &'a Permit>,
    permitted_uses: &crate::overlay::PermittedUses,
) -> Vec<UnknownUse> {
    unknown_values(
        permits
            .into_iter()
            .map(|p| (p.permitted_use.as_str(), p.id.as_str())),
        |v| permitted_uses.contains_key(v),
    )
}

/// The spellings of a yes/no attribute (a parcel's `basic_farmland`, `eco_redline`), for messages
/// and docs.
pub const FLAG_SPELLINGS: &str = "yes: 是, true, t, yes, y, 1 or another number than 0; no: 否, \
     false, f, no, n, 0, ? (a dBase unknown), empty or NULL; in any case";

/// Reads a yes/no attribute ([`FLAG_SPELLINGS`]): `None` for a value that is neither, which must
/// not be read as "no" (a parcel of basic farmland marked `√` or `基本农田` would lose its
/// protection without a word).
pub fn flag(v: Option<&Value>) -> Option<bool> {
    match v {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) => n.as_f64().map(|x| x != 0.0),
        Some(Value::String(s)) => {
            let s = s.trim();
            match s.to_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "是" => Some(true),
                "false" | "f" | "no" | "n" | "否" | "?" | "" => Some(false),
                other => other
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(|x| x != 0.0),
            }
        }
        Some(_) => None,
    }
}

/// An attribute as text, as the parcels and permits read it ([`text`]): `eval` reads a truth's
/// and findings' ids so too, so that a truth's ids of a Real field match the findings'.
pub fn attribute_text(v: Option<&Value>) -> Option<String> {
    text(v)
}

/// An attribute as text: `None` when null or blank. A number is written as a person would: a
/// whole number held in a Real field (a Shapefile's `N(19,11)` or an ArcGIS Double, a
/// spreadsheet's numbers) without a decimal point, `81` rather than `81.0`, so that a parcel id
/// of a Real field is the one a permit register or a text id names.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            // Whole numbers up to 2^53, which a double holds exactly.
            (None, Some(x)) if x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0 => {
                format!("{x:.0}")
            }
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

/// The name under which `layer` holds the field `wanted`: the name itself, else the same name in
/// another case (`PARCEL_ID`), else its first ten characters (a Shapefile's table truncates
/// field names to ten: `basic_farmland` is `basic_farm` there), else its first ten bytes (a
/// UTF-8 `宗地编号` is `宗地编�` there). `wanted` when the layer has none of them.
fn field_name(layer: &VectorLayerData, wanted: &str) -> String {
    let names = layer_fields(layer);
    let keys = || names.iter();
    let truncated: String = wanted.chars().take(10).collect();
    // A Shapefile's table keeps ten *bytes* of a name: a UTF-8 name of Chinese characters is cut
    // after three of them and a part of the fourth, which reads as a replacement character
    // (宗地编号 is kept as 宗地编�) or not at all.
    let cut_at = (0..=10.min(wanted.len()))
        .rev()
        .find(|i| wanted.is_char_boundary(*i))
        .unwrap_or(0);
    let bytes_kept = &wanted[..cut_at];
    let byte_truncated = |k: &str| {
        wanted.len() > 10
            && !bytes_kept.is_empty()
            && k.trim_end_matches('\u{FFFD}')
                .eq_ignore_ascii_case(bytes_kept)
    };
    keys()
        .find(|k| k.as_str() == wanted)
        .or_else(|| keys().find(|k| k.eq_ignore_ascii_case(wanted)))
        .or_else(|| {
            (truncated.len() < wanted.len())
                .then(|| keys().find(|k| k.eq_ignore_ascii_case(&truncated)))
                .flatten()
        })
        .or_else(|| keys().find(|k| byte_truncated(k)))
        .cloned()
        .unwrap_or_else(|| wanted.to_string())
}

/// The names of a layer's fields (those its features hold, or for a layer without features, its
/// definition's).
fn layer_fields(layer: &VectorLayerData) -> Vec<String> {
    match layer.features.first() {
        Some(f) => f.attributes.keys().cloned().collect(),
        None => layer.fields.clone(),
    }
}

/// A date attribute: `None` when empty, an error naming it when it is not a date.
fn date_field(a: &BTreeMap<String, Value>, field: &str) -> Result<Option<NaiveDate>, String> {
    match text(a.get(field)) {
        None => Ok(None),
        Some(s) => crate::ingest::catalog::parse_local_datetime(&s)
            .map(|d| Some(d.date()))
            .ok_or_else(|| {
                format!(
                    "{field} '{s}' is not a date (written as {})",
                    crate::ingest::catalog::DATE_SPELLINGS
                )
            }),
    }
}

/// A feature for messages: its file, layer and feature id, and the id it holds (`id`: the field
/// and its value, e.g. `("parcel_id", "WJ-000019")`) when it has one, since a feature id alone is
/// hard to find (a GeoJSON file's count from 0).
fn describe(layer: &VectorLayerData, f: &VectorFeature, id: Option<(&str, &str)>) -> String {
    let mut d = format!(
        "{} layer {} feature {}",
        layer.path.display(),
        layer.layer,
        f.fid.map_or("?".into(), |x| x.to_string())
    );
    if let Some((field, value)) = id {
        d.push_str(&format!(" ({field} {value})"));
    }
    d
}

/// Notes what reading did to a feature's geometry — `{what}_repaired`, `{what}_rejected`, `what`
/// being `parcel`, `permit` or `control` — and gives the geometry, if it has one.
fn notes_of(
    f: &VectorFeature,
    what: &str,
    here: &str,
    notes: &mut Vec<ParcelNote>,
) -> Option<MultiPolygon<f64>> {
    if let Some(r) = &f.repaired {
        notes.push(ParcelNote {
            feature: here.to_string(),
            kind: format!("{what}_repaired"),
            message: r.clone(),
        });
    }
    if let Some(r) = &f.rejected {
        notes.push(ParcelNote {
            feature: here.to_string(),
            kind: format!("{what}_rejected"),
            message: r.clone(),
        });
    }
    f.geometry.clone()
}

/// Whether a feature was read without an outline at all (a row of a table, or a feature whose
/// geometry is empty), rather than with one that could not be used.
fn no_outline(f: &VectorFeature) -> bool {
    matches!(
        f.rejected.as_deref(),
        Some("no geometry") | Some("empty geometry")
    )
}

/// Builds parcels from a layer. Invalid geometries were repaired or rejected on reading and are
/// reported in the notes; a duplicate parcel id is an error naming both features.
pub fn parcels_from_layer(
    layer: &VectorLayerData,
    fields: &ParcelFields,
    notes: &mut Vec<ParcelNote>,
) -> Result<Vec<Parcel>, ParcelError> {
    require_fields(
        layer,
        &[&fields.id, &fields.approved_use],
        "name the layer's fields in [parcels] id_field and use_field of the config, or with \
         --id-field and --use-field",
    )?;
    let named: Vec<&str> = [&fields.basic_farmland, &fields.eco_redline]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if !named.is_empty() {
        require_fields(
            layer,
            &named,
            "correct [parcels] basic_farmland_field or eco_redline_field in the config",
        )?;
    }
    let name = |wanted: &str| field_name(layer, wanted);
    let (id_field, use_field) = (name(&fields.id), name(&fields.approved_use));
    let (farmland_field, redline_field, permit_field) = (
        name(fields.basic_farmland.as_deref().unwrap_or("basic_farmland")),
        name(fields.eco_redline.as_deref().unwrap_or("eco_redline")),
        name("permit_id"),
    );
    if layer.features.is_empty() {
        return Err(ParcelError::NoFeatures {
            layer: format!("{} ({})", layer.path.display(), layer.layer),
        });
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    // (feature, field, value) of every yes/no attribute that is neither.
    let mut not_flags: Vec<(String, String, String)> = Vec::new();
    let notes_before = notes.len();
    for f in &layer.features {
        let Some(id) = text(f.attributes.get(&id_field)) else {
            notes.push(ParcelNote {
                feature: describe(layer, f, None),
                kind: "parcel_rejected".into(),
                message: format!("no {}", fields.id),
            });
            continue;
        };
        let here = describe(layer, f, Some((&fields.id, &id)));
        if let Some(first) = seen.insert(id.clone(), here.clone()) {
            return Err(ParcelError::DuplicateId {
                layer: format!("{} ({})", layer.path.display(), layer.layer),
                id,
                first,
                second: here,
            });
        }
        let Some(polygon) = notes_of(f, "parcel", &here, notes) else {
            continue;
        };
        let approved_use = normalise_use(
            &text(f.attributes.get(&use_field)).unwrap_or_default(),
            &fields.uses,
        );
        let mut flag_of = |field: &str| {
            let v = f.attributes.get(field);
            flag(v).unwrap_or_else(|| {
                let value = match v {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                not_flags.push((here.clone(), field.to_string(), value));
                false
            })
        };
        let (basic_farmland, eco_redline) = (flag_of(&farmland_field), flag_of(&redline_field));
        out.push(Parcel {
            id,
            approved_use,
            basic_farmland,
            eco_redline,
            parcel_permit: text(f.attributes.get(&permit_field)),
            area: polygon.unsigned_area(),
            polygon,
            source: here,
        });
    }
    if let Some((feature, field, value)) = not_flags.first().cloned() {
        let more = match not_flags.len() - 1 {
            0 => String::new(),
            1 => "; 1 other feature too".to_string(),
            n => format!("; {n} other features too"),
        };
        return Err(ParcelError::NotAFlag {
            feature,
            field,
            value,
            spellings: FLAG_SPELLINGS,
            more,
        });
    }
    if out.is_empty() {
        // The notes, which say why, are only logged once the parcels are loaded: the error says.
        let first = notes[notes_before..]
            .iter()
            .find(|n| n.kind == "parcel_rejected")
            .map_or_else(String::new, |n| format!("{}: {}", n.feature, n.message));
        return Err(ParcelError::Empty {
            layer: format!("{} ({})", layer.path.display(), layer.layer),
            count: layer.features.len(),
            first,
        });
    }
    Ok(out)
}

/// An error naming the first of `fields` a layer lacks, with the fields it has (for a layer
/// without features too: its definition says). A layer with neither features nor fields is
/// not refused here: a GeoJSON file takes its fields from its features, so an empty one
/// (`"features": []`) has none, and is the empty layer it is, not one lacking the fields.
fn require_fields(
    layer: &VectorLayerData,
    fields: &[&str],
    hint: &'static str,
) -> Result<(), ParcelError> {
    let available = layer_fields(layer);
    if layer.features.is_empty() && available.is_empty() {
        return Ok(());
    }
    match fields
        .iter()
        .find(|f| !available.contains(&field_name(layer, f)))
    {
        Some(field) => Err(ParcelError::MissingField {
            layer: format!("{} ({})", layer.path.display(), layer.layer),
            field: field.to_string(),
            available: available.join(", "),
            hint,
        }),
        _ => Ok(()),
    }
}

/// Builds permits from a layer (`permit_id`, `permitted_use`, optional `kind`, `valid_from`,
/// `valid_to`, `parcel_id`). A layer without `permit_id` or `permitted_use` is refused (another
/// layer given as permits would otherwise permit construction wherever it has polygons); a
/// feature with either empty is rejected, named in the notes. A permit without an outline — a
/// register kept as a table, each permit naming its parcel, or one marking each permit with a point
/// — takes the outline of the parcel of `parcels` its `parcel_id` names, or for a point naming
/// none, of the parcel the point lies in (the permit then covers the whole parcel); one that finds
/// no parcel so is rejected and named.
pub fn permits_from_layer(
    layer: &VectorLayerData,
    parcels: &[Parcel],
    notes: &mut Vec<ParcelNote>,
) -> Result<Vec<Permit>, ParcelError> {
    let outline_of: HashMap<&str, &MultiPolygon<f64>> = parcels
        .iter()
        .map(|p| (p.id.as_str(), &p.polygon))
        .collect();
    require_fields(
        layer,
        &["permit_id", "permitted_use"],
        "is this the permits layer? A permits layer has permit_id, permitted_use and optionally \
         kind, valid_from, valid_to, parcel_id (README, \"Inputs\")",
    )?;
    let name = |wanted: &str| field_name(layer, wanted);
    let [id_field, use_field, from_field, to_field, kind_field, parcel_field] = [
        "permit_id",
        "permitted_use",
        "valid_from",
        "valid_to",
        "kind",
        "parcel_id",
    ]
    .map(name);
    // An empty permits layer permits nothing: said, since it is more often the wrong layer (or
    // an export that lost its rows) than a district without a single permit.
    if layer.features.is_empty() {
        notes.push(ParcelNote {
            feature: format!("{} layer {}", layer.path.display(), layer.layer),
            kind: "permits_empty".into(),
            message: "the permits layer has no features, so no change is explained by a \
                      permit; if the permits are in another layer of the file, name it with \
                      [parcels] permits_layer in the config or --permits-layer"
                .into(),
        });
    }
    // Parcels by bounding box, built when a pin first needs one.
    let mut parcel_tree: Option<RectTree> = None;
    let mut out = Vec::new();
    for f in &layer.features {
        let a = &f.attributes;
        let read_id = text(a.get(&id_field));
        let here = describe(layer, f, read_id.as_deref().map(|id| ("permit_id", id)));
        let (Some(id), Some(permitted_use)) = (read_id.clone(), text(a.get(&use_field))) else {
            notes.push(ParcelNote {
                feature: here,
                kind: "permit_rejected".into(),
                message: "a permit needs a permit_id and a permitted_use (it explains nothing \
                          without them)"
                    .into(),
            });
            continue;
        };
        // An empty date leaves that end of the validity open; one that is not a date, or a
        // validity that ends before it starts, is an error in the register, not an open end.
        let validity = date_field(a, &from_field).and_then(|from| {
            let to = date_field(a, &to_field)?;
            match (from, to) {
                (Some(f), Some(t)) if f > t => Err(format!("valid_from {f} is after valid_to {t}")),
                _ => Ok((from, to)),
            }
        });
        let (valid_from, valid_to) = match validity {
            Ok(v) => v,
            Err(why) => {
                notes.push(ParcelNote {
                    feature: here,
                    kind: "permit_rejected".into(),
                    message: format!("permit {id}: {why}"),
                });
                continue;
            }
        };
        let mut parcel_id = text(a.get(&parcel_field));
        let footprint =
            if f.geometry.is_none() && f.repaired.is_none() && (no_outline(f) || f.pin.is_some()) {
                // The parcel the register names; for a pin naming none, the parcel the pin is in.
                let named = parcel_id
                    .as_deref()
                    .and_then(|p| outline_of.get(p).copied());
                let pinned = || {
                    let at = f.pin?.at;
                    let tree = parcel_tree.get_or_insert_with(|| {
                        rect_tree(parcels.iter().map(|p| p.polygon.bounding_rect()))
                    });
                    // The first in the layer's order, should parcels overlap there.
                    tree.locate_all_at_point(&[at.x(), at.y()])
                        .map(|h| h.data)
                        .filter(|i| parcels[*i].polygon.intersects(&at))
                        .min()
                        .map(|i| &parcels[i])
                };
                let footprint = match (named, parcel_id.is_none().then(pinned).flatten()) {
                    (Some(outline), _) => outline.clone(),
                    (None, Some(parcel)) => {
                        parcel_id = Some(parcel.id.clone());
                        parcel.polygon.clone()
                    }
                    (None, None) => {
                        let what = match f.pin {
                            Some(pin) => format!("is {}", pin.what),
                            None => "has no outline".to_string(),
                        };
                        notes.push(ParcelNote {
                            feature: here,
                            kind: "permit_rejected".into(),
                            message: format!(
                                "permit {id} {what} and {}: a permit needs its footprint or the \
                             parcel_id of the parcel it permits",
                                match (&parcel_id, f.pin) {
                                    (Some(p), _) => format!("its parcel_id '{p}' is no parcel's"),
                                    (None, Some(_)) =>
                                        "names no parcel_id nor lies in a parcel".into(),
                                    (None, None) => "no parcel_id".to_string(),
                                }
                            ),
                        });
                        continue;
                    }
                };
                // A feature of a layer of outlines that lost its own (a NULL or empty geometry)
                // is taken to permit its whole parcel, as a register's row is: said, since a
                // building beyond its footprint can then not be seen.
                if layer.has_geometry && f.pin.is_none() {
                    notes.push(ParcelNote {
                        feature: here.clone(),
                        kind: "permit_without_outline".into(),
                        message: format!(
                            "permit {id} has no outline ({}) in a layer of outlines: it is taken \
                             to permit the whole of parcel {}, so building beyond its footprint \
                             cannot be judged there; draw its footprint in the register",
                            f.rejected.as_deref().unwrap_or("no geometry"),
                            parcel_id.as_deref().unwrap_or("?")
                        ),
                    });
                }
                footprint
            } else {
                let Some(footprint) = notes_of(f, "permit", &here, notes) else {
                    continue;
                };
                footprint
            };
        out.push(Permit {
            id,
            kind: text(a.get(&kind_field))
                .unwrap_or_else(|| "permit".into())
                .to_ascii_lowercase(),
            permitted_use: crate::land_use::permitted_use_of(&permitted_use)
                .map_or_else(|| permitted_use.to_ascii_lowercase(), str::to_string),
            valid_from,
            valid_to,
            parcel_id,
            footprint,
            source: here,
        });
    }
    // Permits apart from the parcels ([`apart`]) would explain nothing, each permitted building
    // flagged, without a word.
    if let Some((own, theirs)) = apart(out.iter().map(|p| &p.footprint), parcels) {
        notes.push(ParcelNote {
            feature: format!("{} layer {}", layer.path.display(), layer.layer),
            kind: "permits_off_parcels".into(),
            message: format!(
                "the layer's {} permits lie apart from the parcels (the permits run from {}, the \
                 parcels from {}, in the working CRS), so no change is explained by a permit; \
                 is the layer's CRS, {}, the one its coordinates are in? If not, write the right \
                 one into the file (`ogr2ogr -a_srs EPSG:<code> fixed.gpkg {}`)",
                out.len(),
                shown(own),
                shown(theirs),
                layer.source_crs,
                layer.path.display()
            ),
        });
    }
    Ok(out)
}

/// The extent of polygons (their bounding boxes').
fn extent_rect<'a>(polygons: impl Iterator<Item = &'a MultiPolygon<f64>>) -> Option<Rect<f64>> {
    polygons.filter_map(|p| p.bounding_rect()).reduce(|a, b| {
        Rect::new(
            (a.min().x.min(b.min().x), a.min().y.min(b.min().y)),
            (a.max().x.max(b.max().x), a.max().y.max(b.max().y)),
        )
    })
}

/// An extent for messages: `x0, y0 to x1, y1` (whole units).
fn shown(r: Rect<f64>) -> String {
    format!(
        "{:.0}, {:.0} to {:.0}, {:.0}",
        r.min().x,
        r.min().y,
        r.max().x,
        r.max().y
    )
}

/// The extents of a layer's polygons and of the parcels when they do not meet: the layer is in
/// another place than the parcels, most often because its file says another CRS than its
/// coordinates are in (a Gauss-Krüger zone labelled UTM lands ~285 km away). A layer that
/// spans the parcels without a polygon on one (a county's red line, of which none is in the
/// parcels' township) is where it should be.
fn apart<'a>(
    polygons: impl Iterator<Item = &'a MultiPolygon<f64>>,
    parcels: &[Parcel],
) -> Option<(Rect<f64>, Rect<f64>)> {
    let (own, theirs) = (
        extent_rect(polygons)?,
        extent_rect(parcels.iter().map(|p| &p.polygon))?,
    );
    (!own.intersects(&theirs)).then_some((own, theirs))
}

/// Notes a control layer whose polygons lie apart from the parcels (`control_off_parcels`,
/// skipped input; [`apart`]): it would mark no parcel, and no change, without a word, a
/// building inside the red line not flagged as such.
pub fn note_control_off_parcels(
    layer: &VectorLayerData,
    zones: &ControlZones,
    parcels: &[Parcel],
    notes: &mut Vec<ParcelNote>,
) {
    let Some((own, theirs)) = apart(zones.polygons.iter(), parcels) else {
        return;
    };
    let kind = &zones.kind;
    notes.push(ParcelNote {
        feature: format!("{} layer {}", layer.path.display(), layer.layer),
        kind: "control_off_parcels".into(),
        message: format!(
            "the {kind} control layer's {} polygons lie apart from the parcels (they run from {}, \
             the parcels from {}, in the working CRS), so it marks no parcel or change {kind}; \
             is the layer's CRS, {}, the one its coordinates are in? If not, write the right one \
             into the file (`ogr2ogr -a_srs EPSG:<code> fixed.gpkg {}`)",
            zones.polygons.len(),
            shown(own),
            shown(theirs),
            layer.source_crs,
            layer.path.display()
        ),
    });
}

/// The polygons of a control layer of `kind` (`basic_farmland`, `eco_redline`), noting each
/// feature whose geometry was repaired (`control_repaired`, used) or rejected (`control_rejected`:
/// left out, so parcels under it are not marked), and a layer without features
/// (`control_empty`), which marks no parcel.
pub fn control_polygons(
    layer: &VectorLayerData,
    kind: &str,
    notes: &mut Vec<ParcelNote>,
) -> Vec<MultiPolygon<f64>> {
    if layer.features.is_empty() {
        notes.push(ParcelNote {
            feature: format!("{} layer {}", layer.path.display(), layer.layer),
            kind: "control_empty".into(),
            message: format!(
                "the {kind} control layer has no features, so it marks no parcel {kind}; if its \
                 polygons are in another layer of the file, name that one in \
                 [[parcels.control]] layer"
            ),
        });
    }
    let mut out = Vec::new();
    for f in &layer.features {
        let mut own = Vec::new();
        let polygon = notes_of(f, "control", &describe(layer, f, None), &mut own);
        for n in &mut own {
            if n.kind == "control_rejected" {
                n.message = format!(
                    "{}: this {kind} polygon is left out, so the parcels under it are not \
                     marked {kind}; fix its geometry",
                    n.message
                );
            }
        }
        notes.extend(own);
        out.extend(polygon);
    }
    out
}

/// A control layer's polygons (basic farmland, the ecological red line), indexed: a parcel lies
/// in the layer when at least half of it does, and so does a change.
pub struct ControlZones {
    /// `basic_farmland` or `eco_redline`.
    pub kind: String,
    polygons: Vec<MultiPolygon<f64>>,
    tree: RectTree,
}

impl ControlZones {
    /// Indexes a control layer's polygons.
    pub fn new(kind: &str, polygons: Vec<MultiPolygon<f64>>) -> ControlZones {
        let tree = rect_tree(polygons.iter().map(|p| p.bounding_rect()));
        ControlZones {
            kind: kind.to_string(),
            polygons,
            tree,
        }
    }

    /// Whether at least half of `area` (of planar area `area_units`, in the CRS's units) lies in
    /// the zones.
    pub fn hold_half_of(&self, area: &MultiPolygon<f64>, area_units: f64) -> bool {
        let Some(b) = area.bounding_rect() else {
            return false;
        };
        // Control layers hold overlapping polygons (a zone drawn twice, two editions of one
        // map merged): the ground they share is counted once.
        let mut inside: Option<MultiPolygon<f64>> = None;
        for hit in self.tree.locate_in_envelope_intersecting(&aabb(&b)) {
            let part = area.intersection(&self.polygons[hit.data]);
            if part.0.is_empty() {
                continue;
            }
            inside = Some(match inside {
                Some(i) => i.union(&part),
                None => part,
            });
        }
        area_units > 0.0 && inside.map_or(0.0, |i| i.unsigned_area()) >= 0.5 * area_units
    }
}

/// Marks parcels that lie (by at least half their area) inside a control layer's polygons.
pub fn apply_control_layer(parcels: &mut [Parcel], zones: &ControlZones) {
    for p in parcels.iter_mut() {
        if zones.hold_half_of(&p.polygon, p.area) {
            match zones.kind.as_str() {
                "basic_farmland" => p.basic_farmland = true,
                "eco_redline" => p.eco_redline = true,
                _ => {}
            }
        }
    }
}

/// Bounding boxes, each with the index of its item.
pub(crate) type RectTree = RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>;

fn aabb(r: &Rect<f64>) -> AABB<[f64; 2]> {
    AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y])
}

/// The items' bounding boxes (`None`: an empty item, left out), indexed by position.
pub(crate) fn rect_tree(rects: impl Iterator<Item = Option<Rect<f64>>>) -> RectTree {
    let items: Vec<_> = rects
        .enumerate()
        .filter_map(|(i, r)| {
            r.map(|r| {
                GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                )
            })
        })
        .collect();
    RTree::bulk_load(items)
}

/// The indices of the boxes of `tree` that meet a rectangle, in order.
pub(crate) fn indices_near(tree: &RectTree, r: &Rect<f64>) -> Vec<usize> {
    let mut v: Vec<usize> = tree
        .locate_in_envelope_intersecting(&aabb(r))
        .map(|g| g.data)
        .collect();
    v.sort_unstable();
    v
}

/// Parcels and permits with R-trees over their bounding boxes.
pub struct ParcelSet {
    /// Parcels.
    pub parcels: Vec<Parcel>,
    /// Permits (including one per whole-parcel permit of the simple schema).
    pub permits: Vec<Permit>,
    /// Control layers given as layers of their own: a change at least half inside one is in
    /// it, whatever the share of its parcel that is.
    pub controls: Vec<ControlZones>,
    parcel_tree: RectTree,
    permit_tree: RectTree,
}

impl ParcelSet {
    /// Indexes parcels and permits; whole-parcel permits become permits on the parcel's outline.
    pub fn new(parcels: Vec<Parcel>, mut permits: Vec<Permit>) -> ParcelSet {
        for p in &parcels {
            if let Some(pid) = &p.parcel_permit {
                permits.push(Permit {
                    id: pid.clone(),
                    kind: "parcel_permit".into(),
                    permitted_use: "any".into(),
                    valid_from: None,
                    valid_to: None,
                    parcel_id: Some(p.id.clone()),
                    footprint: p.polygon.clone(),
                    source: p.source.clone(),
                });
            }
        }
        let parcel_tree = rect_tree(parcels.iter().map(|p| p.polygon.bounding_rect()));
        let permit_tree = rect_tree(permits.iter().map(|p| p.footprint.bounding_rect()));
        ParcelSet {
            parcels,
            permits,
            controls: Vec::new(),
            parcel_tree,
            permit_tree,
        }
    }

    /// The set with control layers of their own (`[[parcels.control]]`).
    pub fn with_controls(mut self, controls: Vec<ControlZones>) -> ParcelSet {
        self.controls = controls;
        self
    }

    /// Indices of parcels whose bounding box meets a rectangle.
    pub fn parcels_near(&self, r: &Rect<f64>) -> Vec<usize> {
        indices_near(&self.parcel_tree, r)
    }

    /// Indices of permits whose bounding box meets a rectangle.
    pub fn permits_near(&self, r: &Rect<f64>) -> Vec<usize> {
        indices_near(&self.permit_tree, r)
    }

    /// The bounds of all parcels.
    pub fn bounds(&self) -> Option<crate::grid::Bounds> {
        let e = self.parcel_tree.root().envelope();
        let (lo, hi) = (e.lower(), e.upper());
        (lo[0] <= hi[0]).then(|| crate::grid::Bounds::from_corners(lo[0], lo[1], hi[0], hi[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::vector::Pin;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn square(x: f64, y: f64, s: f64) -> MultiPolygon<f64> {
        MultiPolygon::new(vec![geo::Rect::new((x, y), (x + s, y + s)).to_polygon()])
    }

    type TestFeature<'a> = (Option<&'a str>, &'a str, Option<MultiPolygon<f64>>);

    fn layer(features: Vec<TestFeature<'_>>) -> VectorLayerData {
        VectorLayerData {
            path: PathBuf::from("parcels.gpkg"),
            layer: "parcels".into(),
            source_crs: "EPSG:4549".into(),
            has_geometry: true,
            fields: ["parcel_id", "approved_use", "basic_farmland"]
                .map(String::from)
                .to_vec(),
            features: features
                .into_iter()
                .enumerate()
                .map(|(i, (id, use_, g))| {
                    let mut a = BTreeMap::new();
                    a.insert("parcel_id".to_string(), id.map_or(Value::Null, Value::from));
                    a.insert("approved_use".to_string(), Value::from(use_));
                    a.insert("basic_farmland".to_string(), Value::from(1));
                    VectorFeature {
                        fid: Some(i as u64 + 1),
                        rejected: g.is_none().then(|| "empty geometry".to_string()),
                        geometry: g,
                        attributes: a,
                        repaired: None,
                        pin: None,
                    }
                })
                .collect(),
        }
    }

    /// Parcels A (0–10 m) and B (20–30 m), side by side.
    fn parcels_a_and_b() -> Vec<Parcel> {
        parcels_from_layer(
            &layer(vec![
                (Some("A"), "farmland", Some(square(0.0, 0.0, 10.0))),
                (Some("B"), "farmland", Some(square(20.0, 0.0, 10.0))),
            ]),
            &fields(),
            &mut vec![],
        )
        .unwrap()
    }

    /// Makes a feature a permit of a register: its id, permitted use and parcel_id.
    fn as_permit(f: &mut VectorFeature, id: &str, permitted_use: &str, parcel: Option<&str>) {
        f.attributes.insert("permit_id".into(), Value::from(id));
        f.attributes
            .insert("permitted_use".into(), Value::from(permitted_use));
        f.attributes
            .insert("parcel_id".into(), parcel.map_or(Value::Null, Value::from));
    }

    fn fields() -> ParcelFields {
        ParcelFields {
            id: "parcel_id".into(),
            approved_use: "approved_use".into(),
            uses: BTreeMap::new(),
            basic_farmland: None,
            eco_redline: None,
        }
    }

    #[test]
    fn a_permit_marked_by_a_point_covers_the_parcel_it_names_or_lies_in() {
        let parcels = parcels_a_and_b();
        // Pins of a register: the parcel_id is the register's word (P-1 names B from inside A);
        // a pin naming none is in the parcel under it; one between parcels, or naming a parcel
        // there is not, finds none.
        let mut register = layer(vec![(Some("x"), "farmland", None); 4]);
        for (f, (id, parcel, (x, y))) in register.features.iter_mut().zip([
            ("P-1", Some("B"), (5.0, 5.0)),
            ("P-2", None, (25.0, 5.0)),
            ("P-3", None, (15.0, 5.0)),
            ("P-4", Some("Z"), (5.0, 5.0)),
        ]) {
            f.rejected = Some("a point, not an outline (a polygon)".into());
            f.pin = Some(Pin {
                what: "a point",
                at: geo::Point::new(x, y),
            });
            as_permit(f, id, "construction", parcel);
        }
        let mut notes = vec![];
        let p = permits_from_layer(&register, &parcels, &mut notes).unwrap();
        let got: Vec<(&str, Option<&str>)> = p
            .iter()
            .map(|p| (p.id.as_str(), p.parcel_id.as_deref()))
            .collect();
        assert_eq!(got, [("P-1", Some("B")), ("P-2", Some("B"))]);
        assert!(p.iter().all(|p| p.footprint == parcels[1].polygon));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].message.contains("P-3 is a point")
                && notes[0].message.contains("nor lies in a parcel"),
            "{notes:?}"
        );
        assert!(notes[1].message.contains("'Z' is no parcel's"), "{notes:?}");
    }

    /// Each note's kind and whether it is skipped input.
    fn kinds_of(notes: &[ParcelNote]) -> Vec<(&str, bool)> {
        notes
            .iter()
            .map(|n| (n.kind.as_str(), n.skips_input()))
            .collect()
    }

    #[test]
    fn notes_say_which_register_and_id_and_only_what_was_left_out_skips_input() {
        // A repaired parcel is used: a warning, not skipped input; a rejected one is skipped.
        let mut l = layer(vec![
            (Some("WJ-1"), "farmland", Some(square(0.0, 0.0, 10.0))),
            (Some("WJ-2"), "farmland", None),
        ]);
        l.features[0].repaired = Some("self-intersection repaired".into());
        let mut notes = vec![];
        let p = parcels_from_layer(&l, &fields(), &mut notes).unwrap();
        assert_eq!(p.len(), 1);
        let kinds = kinds_of(&notes);
        assert_eq!(
            kinds,
            [("parcel_repaired", false), ("parcel_rejected", true)]
        );
        // Each names the parcel by its id as well as by its feature id.
        assert!(
            notes[0].feature.ends_with("feature 1 (parcel_id WJ-1)"),
            "{notes:?}"
        );
        assert!(
            notes[1].feature.ends_with("feature 2 (parcel_id WJ-2)"),
            "{notes:?}"
        );
        // The permits register's notes are the permits'.
        let mut permits = layer(vec![
            (Some("A"), "farmland", Some(square(0.0, 0.0, 10.0))),
            (Some("B"), "farmland", Some(square(0.0, 0.0, 10.0))),
        ]);
        as_permit(&mut permits.features[0], "P-1", "construction", None);
        as_permit(&mut permits.features[1], "P-2", "construction", None);
        permits.features[0].repaired = Some("repaired".into());
        permits.features[1]
            .attributes
            .insert("valid_to".into(), Value::from("soon"));
        let mut notes = vec![];
        permits_from_layer(&permits, &[], &mut notes).unwrap();
        let kinds = kinds_of(&notes);
        assert_eq!(
            kinds,
            [("permit_repaired", false), ("permit_rejected", true)]
        );
        assert!(
            notes[1].feature.ends_with("feature 2 (permit_id P-2)"),
            "{notes:?}"
        );
    }

    #[test]
    fn overlapping_control_polygons_count_their_common_ground_once() {
        let mut parcels = parcels_a_and_b();
        // The test layer marks its parcels basic farmland by a field; eco_redline is left to
        // the control layer.
        assert!(!parcels[0].eco_redline);
        let strip = MultiPolygon::new(vec![Rect::new((0.0, 0.0), (3.0, 10.0)).to_polygon()]);
        let share = strip.intersection(&parcels[0].polygon).unsigned_area() / parcels[0].area;
        assert!(share > 0.0 && share < 0.5, "{share}");
        // The same strip twice (a zone drawn twice): still under half of the parcel.
        apply_control_layer(
            &mut parcels,
            &ControlZones::new("eco_redline", vec![strip.clone(), strip]),
        );
        assert!(!parcels[0].eco_redline);
        // Two strips side by side that together hold more than half of it do mark it.
        let rest = MultiPolygon::new(vec![Rect::new((3.0, 0.0), (8.0, 10.0)).to_polygon()]);
        let strip = MultiPolygon::new(vec![Rect::new((0.0, 0.0), (3.0, 10.0)).to_polygon()]);
        apply_control_layer(
            &mut parcels,
            &ControlZones::new("eco_redline", vec![strip, rest]),
        );
        assert!(parcels[0].eco_redline && !parcels[1].eco_redline);
    }

    #[test]
    fn a_control_layer_s_repaired_rejected_or_missing_polygons_are_noted() {
        let mut l = layer(vec![
            (None, "", Some(square(0.0, 0.0, 10.0))),
            (None, "", Some(square(20.0, 0.0, 10.0))),
            (None, "", None),
        ]);
        l.layer = "redline".into();
        l.features[1].repaired = Some("a self-intersection repaired".into());
        l.features[2].rejected = Some("invalid geometry that cannot be repaired".into());
        let mut notes = vec![];
        let polys = control_polygons(&l, "eco_redline", &mut notes);
        assert_eq!(polys.len(), 2);
        let kinds = kinds_of(&notes);
        assert_eq!(
            kinds,
            [("control_repaired", false), ("control_rejected", true)]
        );
        assert!(
            notes[1].feature.ends_with("layer redline feature 3")
                && notes[1].message.contains("not marked eco_redline"),
            "{notes:?}"
        );
        // A layer without features marks nothing, and says so.
        l.features.clear();
        let mut notes = vec![];
        assert!(control_polygons(&l, "eco_redline", &mut notes).is_empty());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].skips_input() && notes[0].message.contains("no features"));
    }

    #[test]
    fn a_permit_of_a_layer_of_outlines_without_its_own_is_said_to_permit_its_whole_parcel() {
        let parcels = parcels_a_and_b();
        // A layer of footprints, one of which lost its geometry (NULL).
        let mut permits = layer(vec![
            (Some("A"), "farmland", Some(square(0.0, 0.0, 5.0))),
            (Some("B"), "farmland", None),
        ]);
        as_permit(&mut permits.features[0], "P-1", "construction", Some("A"));
        as_permit(&mut permits.features[1], "P-2", "construction", Some("B"));
        permits.features[1].rejected = Some("no geometry".into());
        let mut notes = vec![];
        let p = permits_from_layer(&permits, &parcels, &mut notes).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].footprint, parcels[1].polygon);
        assert_eq!(notes.len(), 1, "{notes:?}");
        let n = &notes[0];
        assert_eq!(n.kind, "permit_without_outline");
        assert!(!n.skips_input());
        assert!(
            n.feature.ends_with("feature 2 (permit_id P-2)")
                && n.message.contains("whole of parcel B")
                && n.message.contains("beyond its footprint cannot be judged"),
            "{n:?}"
        );
    }

    #[test]
    fn duplicate_ids_name_both_features() {
        let l = layer(vec![
            (Some("A"), "耕地", Some(square(0.0, 0.0, 10.0))),
            (Some("A"), "farmland", Some(square(20.0, 0.0, 10.0))),
        ]);
        let e = parcels_from_layer(&l, &fields(), &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'A'") && e.contains("feature 1") && e.contains("feature 2"),
            "{e}"
        );
    }

    #[test]
    fn a_layer_whose_every_feature_is_rejected_is_refused_saying_why() {
        // A layer of points given as the parcels (the permits' pins, say): the reason is in the
        // error, since the run stops before the notes are logged.
        let mut l = layer(vec![
            (Some("A"), "farmland", None),
            (Some("B"), "farmland", None),
        ]);
        for f in &mut l.features {
            f.rejected = Some("a point, not an outline (a polygon)".into());
        }
        let e = parcels_from_layer(&l, &fields(), &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("every one of its 2 features was rejected")
                && e.contains("feature 1 (parcel_id A): a point, not an outline"),
            "{e}"
        );
    }

    #[test]
    fn rejected_geometries_are_noted_and_uses_normalised() {
        let l = layer(vec![
            (Some("A"), "耕地", Some(square(0.0, 0.0, 10.0))),
            (Some("B"), "Forest", None),
        ]);
        let mut notes = vec![];
        let p = parcels_from_layer(&l, &fields(), &mut notes).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].approved_use, "farmland");
        assert!(p[0].basic_farmland);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].feature.contains("feature 2") && notes[0].message.contains("empty"));
        // A layer without features: its fields are checked all the same, and it is said to have
        // no features (not that every feature was rejected).
        let e = parcels_from_layer(
            &layer(vec![]),
            &ParcelFields {
                id: "pid".into(),
                approved_use: "u".into(),
                uses: BTreeMap::new(),
                basic_farmland: None,
                eco_redline: None,
            },
            &mut vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no field 'pid'") && e.contains("approved_use"),
            "{e}"
        );
        let e = parcels_from_layer(&layer(vec![]), &fields(), &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("(parcels): the layer has no features") && e.contains("--parcels-layer"),
            "{e}"
        );
        // An empty permits layer permits nothing: noted as skipped input, naming the layer.
        let mut permits = layer(vec![]);
        permits.layer = "permits".into();
        permits
            .fields
            .extend(["permit_id", "permitted_use"].map(String::from));
        let mut notes = vec![];
        assert!(permits_from_layer(&permits, &[], &mut notes)
            .unwrap()
            .is_empty());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].kind, "permits_empty");
        assert!(notes[0].skips_input());
        assert!(
            notes[0].feature == "parcels.gpkg layer permits"
                && notes[0].message.contains("--permits-layer"),
            "{notes:?}"
        );
        // Without the permit fields, an empty layer is refused like any other.
        permits.fields.truncate(3);
        assert!(permits_from_layer(&permits, &[], &mut vec![]).is_err());
        // An empty GeoJSON file (`"features": []`) has no fields at all, its fields being its
        // features': it is an empty layer, not one lacking the fields.
        permits.fields.clear();
        let mut notes = vec![];
        assert!(permits_from_layer(&permits, &[], &mut notes)
            .unwrap()
            .is_empty());
        assert_eq!(notes[0].kind, "permits_empty", "{notes:?}");
        let mut parcels = layer(vec![]);
        parcels.fields.clear();
        let e = parcels_from_layer(&parcels, &fields(), &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("the layer has no features"), "{e}");
    }

    /// A register names its flags its own way (`是否基本农田`, `JBNT`): the config names the
    /// field, which must then be there; unnamed, such a field is not read (no parcel protected).
    #[test]
    fn protection_flags_are_read_from_the_fields_the_config_names() {
        let mut l = layer(vec![
            (Some("A"), "farmland", Some(square(0.0, 0.0, 10.0))),
            (Some("B"), "farmland", Some(square(20.0, 0.0, 10.0))),
        ]);
        for (k, (farmland, redline)) in [("是", "否"), ("否", "是")].into_iter().enumerate() {
            let a = &mut l.features[k].attributes;
            a.remove("basic_farmland");
            a.insert("是否基本农田".into(), Value::from(farmland));
            a.insert("STBHHX".into(), Value::from(redline));
        }
        let flags = |p: &[Parcel]| -> Vec<(bool, bool)> {
            p.iter()
                .map(|p| (p.basic_farmland, p.eco_redline))
                .collect()
        };
        let p = parcels_from_layer(&l, &fields(), &mut vec![]).unwrap();
        assert_eq!(flags(&p), [(false, false), (false, false)]);
        let named = ParcelFields {
            basic_farmland: Some("是否基本农田".into()),
            eco_redline: Some("stbhhx".into()),
            ..fields()
        };
        let p = parcels_from_layer(&l, &named, &mut vec![]).unwrap();
        assert_eq!(flags(&p), [(true, false), (false, true)]);
        // A field named that the layer lacks is an error naming it and the fields there are.
        let wrong = ParcelFields {
            basic_farmland: Some("JBNT".into()),
            ..fields()
        };
        let e = parcels_from_layer(&l, &wrong, &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("JBNT") && e.contains("是否基本农田") && e.contains("basic_farmland_field"),
            "{e}"
        );
    }

    #[test]
    fn yes_no_flags_are_read_in_their_spellings_and_others_refused_by_feature() {
        // Registers write a protected parcel's flag as 是/否, Y/N, true/false, T/F (a dBase
        // logical), 1/0; anything else must not silently read as "no".
        let yes = [
            "是", "Y", "y", "true", "TRUE", "T", "yes", "1", " 1 ", "2", "1.0",
        ];
        let no = ["否", "N", "false", "F", "no", "0", "0.0", "?", "", " "];
        for (values, expected) in [(&yes[..], true), (&no[..], false)] {
            for v in values {
                assert_eq!(flag(Some(&Value::from(*v))), Some(expected), "{v:?}");
            }
        }
        assert_eq!(flag(Some(&Value::from(1))), Some(true));
        assert_eq!(flag(Some(&Value::from(0))), Some(false));
        assert_eq!(flag(Some(&Value::Bool(true))), Some(true));
        assert_eq!(flag(Some(&Value::Null)), Some(false));
        assert_eq!(flag(None), Some(false));
        for v in ["√", "基本农田", "x", "nan"] {
            assert_eq!(flag(Some(&Value::from(v))), None, "{v:?}");
        }
        let mut l = layer(vec![
            (Some("A"), "farmland", Some(square(0.0, 0.0, 10.0))),
            (Some("B"), "farmland", Some(square(20.0, 0.0, 10.0))),
            (Some("C"), "farmland", Some(square(40.0, 0.0, 10.0))),
        ]);
        for (k, v) in ["是", "否", "Y"].into_iter().enumerate() {
            l.features[k]
                .attributes
                .insert("basic_farmland".into(), Value::from(v));
        }
        let p = parcels_from_layer(&l, &fields(), &mut vec![]).unwrap();
        assert_eq!(
            p.iter().map(|p| p.basic_farmland).collect::<Vec<_>>(),
            [true, false, true]
        );
        // A value that is neither refuses the layer, naming the file, layer, feature and value.
        l.features[1]
            .attributes
            .insert("basic_farmland".into(), Value::from("基本农田"));
        l.features[2]
            .attributes
            .insert("eco_redline".into(), Value::from("√"));
        let e = parcels_from_layer(&l, &fields(), &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "parcels.gpkg layer parcels feature 2 (parcel_id B): basic_farmland is '基本农田'"
            ) && e.contains("是, true")
                && e.contains("1 other feature too")
                && e.contains("correct the value"),
            "{e}"
        );
    }

    #[test]
    fn a_shapefile_s_truncated_or_upper_case_field_names_are_found() {
        // A Shapefile's table keeps ten characters of a name, and tools often write them in
        // upper case: the control layers' flags and the permit fields are found all the same.
        let mut l = layer(vec![(Some("A"), "farmland", Some(square(0.0, 0.0, 10.0)))]);
        let renamed = |a: &mut BTreeMap<String, Value>, from: &str, to: &str| {
            let v = a.remove(from).unwrap();
            a.insert(to.to_string(), v);
        };
        let a = &mut l.features[0].attributes;
        renamed(a, "parcel_id", "PARCEL_ID");
        renamed(a, "approved_use", "approved_u");
        renamed(a, "basic_farmland", "BASIC_FARM");
        a.insert("eco_redlin".into(), Value::from("是"));
        a.insert("eco_redline_zone".into(), Value::from(0));
        let p = parcels_from_layer(&l, &fields(), &mut vec![]).unwrap();
        assert_eq!(
            (p[0].id.as_str(), p[0].approved_use.as_str()),
            ("A", "farmland")
        );
        assert!(p[0].basic_farmland && p[0].eco_redline);
        assert_eq!(field_name(&l, "approved_use"), "approved_u");
        assert_eq!(field_name(&l, "permit_id"), "permit_id");
        // A UTF-8 Shapefile's Chinese names, cut at ten bytes in the middle of a character.
        let a = &mut l.features[0].attributes;
        a.insert("宗地编\u{FFFD}".into(), Value::from("WJ-1"));
        a.insert("地类名".into(), Value::from("旱地"));
        a.insert("宗地".into(), Value::from("no"));
        assert_eq!(field_name(&l, "宗地编号"), "宗地编\u{FFFD}");
        assert_eq!(field_name(&l, "地类名称"), "地类名");
        // A name of ten bytes or fewer is not taken for a cut one.
        assert_eq!(field_name(&l, "宗地号"), "宗地号");
        let chinese = ParcelFields {
            id: "宗地编号".into(),
            approved_use: "地类名称".into(),
            uses: BTreeMap::new(),
            basic_farmland: None,
            eco_redline: None,
        };
        let p = parcels_from_layer(&l, &chinese, &mut vec![]).unwrap();
        assert_eq!(
            (p[0].id.as_str(), p[0].approved_use.as_str()),
            ("WJ-1", "farmland")
        );

        let mut permits = layer(vec![(Some("A"), "farmland", Some(square(0.0, 0.0, 10.0)))]);
        let a = &mut permits.features[0].attributes;
        a.insert("PERMIT_ID".into(), Value::from("P-1"));
        a.insert("permitted_".into(), Value::from("construction"));
        a.insert("VALID_TO".into(), Value::from("2026-12-31"));
        let p = permits_from_layer(&permits, &[], &mut vec![]).unwrap();
        assert_eq!(
            (p[0].id.as_str(), p[0].permitted_use.as_str()),
            ("P-1", "construction")
        );
        assert_eq!(p[0].valid_to, NaiveDate::from_ymd_opt(2026, 12, 31));
    }

    #[test]
    fn a_register_without_outlines_permits_the_parcels_it_names() {
        let parcels = parcels_a_and_b();
        // Rows of a table: no outline, each naming a parcel (or not, or one there is not).
        let mut register = layer(vec![
            (Some("A"), "farmland", None),
            (Some("X"), "farmland", None),
            (None, "farmland", None),
        ]);
        register.has_geometry = false;
        for (f, (id, parcel)) in register.features.iter_mut().zip([
            ("P-1", Some("B")),
            ("P-2", Some("Z")),
            ("P-3", None),
        ]) {
            f.rejected = Some("no geometry".into());
            as_permit(f, id, "建设用地", parcel);
        }
        let mut notes = vec![];
        let p = permits_from_layer(&register, &parcels, &mut notes).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].id.as_str(), p[0].permitted_use.as_str()),
            ("P-1", "construction")
        );
        assert_eq!(p[0].footprint, parcels[1].polygon);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].message.contains("P-2") && notes[0].message.contains("'Z' is no parcel's")
        );
        assert!(notes[1].message.contains("P-3") && notes[1].message.contains("no parcel_id"));
        // Without the parcels (or with an outline that is unusable), nothing is made up.
        let mut notes = vec![];
        assert!(permits_from_layer(&register, &[], &mut notes)
            .unwrap()
            .is_empty());
        assert_eq!(notes.len(), 3);
    }

    #[test]
    fn a_permits_or_control_layer_apart_from_the_parcels_is_named() {
        // A permits layer whose file says another CRS than its coordinates are in lands
        // hundreds of km from the parcels: every permit would be ignored without a word.
        let parcels = parcels_a_and_b();
        let mut permits = layer(vec![
            (Some("A"), "farmland", Some(square(300_000.0, 0.0, 5.0))),
            (Some("B"), "farmland", Some(square(300_020.0, 0.0, 5.0))),
        ]);
        permits.layer = "permits".into();
        as_permit(&mut permits.features[0], "P-1", "construction", None);
        as_permit(&mut permits.features[1], "P-2", "construction", None);
        let mut notes = vec![];
        let p = permits_from_layer(&permits, &parcels, &mut notes).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(kinds_of(&notes), [("permits_off_parcels", true)]);
        assert!(
            notes[0].feature == "parcels.gpkg layer permits"
                && notes[0]
                    .message
                    .contains("the layer's 2 permits lie apart from the parcels")
                && notes[0].message.contains("300000, 0 to 300025, 5")
                && notes[0].message.contains("EPSG:4549"),
            "{notes:?}"
        );
        // Over the parcels' ground, even on none of them (between A and B): where it should be.
        permits.features[0].geometry = Some(square(-100.0, 0.0, 5.0));
        permits.features[1].geometry = Some(square(12.0, 2.0, 5.0));
        let mut notes = vec![];
        permits_from_layer(&permits, &parcels, &mut notes).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        // A control layer likewise: apart, named; over the parcels' ground, not.
        let zones = |polygons| ControlZones::new("eco_redline", polygons);
        let mut notes = vec![];
        let far = zones(vec![square(300_000.0, 0.0, 5.0)]);
        note_control_off_parcels(&permits, &far, &parcels, &mut notes);
        assert_eq!(kinds_of(&notes), [("control_off_parcels", true)]);
        assert!(
            notes[0]
                .message
                .contains("eco_redline control layer's 1 polygons lie apart"),
            "{notes:?}"
        );
        let mut notes = vec![];
        let between = zones(vec![square(12.0, 2.0, 5.0)]);
        note_control_off_parcels(&permits, &between, &parcels, &mut notes);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn whole_numbers_of_a_real_field_are_ids_without_a_decimal_point() {
        // A Shapefile's N(19,11) or an ArcGIS Double holds parcel ids 81, 4 as 81.0, 4.0: they
        // are the parcels 81 and 4 a permit register (text) names, not "81.0".
        let mut l = layer(vec![
            (None, "farmland", Some(square(0.0, 0.0, 10.0))),
            (None, "farmland", Some(square(20.0, 0.0, 10.0))),
        ]);
        l.features[0]
            .attributes
            .insert("parcel_id".into(), Value::from(81.0));
        l.features[1]
            .attributes
            .insert("parcel_id".into(), Value::from(-4.0));
        let parcels = parcels_from_layer(&l, &fields(), &mut vec![]).unwrap();
        let ids: Vec<&str> = parcels.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["81", "-4"]);
        let mut register = layer(vec![(None, "farmland", None)]);
        register.has_geometry = false;
        register.features[0].rejected = Some("no geometry".into());
        as_permit(&mut register.features[0], "P-1", "construction", Some("81"));
        let mut notes = vec![];
        let p = permits_from_layer(&register, &parcels, &mut notes).unwrap();
        assert_eq!(p.len(), 1, "{notes:?}");
        assert_eq!(p[0].parcel_id.as_deref(), Some("81"));
        // A fraction stays one; so does a dated number of a Real field (20260115.0 is a date).
        assert_eq!(text(Some(&Value::from(81.5))).as_deref(), Some("81.5"));
        let a = BTreeMap::from([("valid_to".to_string(), Value::from(20260115.0))]);
        assert_eq!(
            date_field(&a, "valid_to").unwrap(),
            NaiveDate::from_ymd_opt(2026, 1, 15)
        );
    }

    #[test]
    fn a_layer_s_own_uses_map_first_and_unknown_uses_are_counted() {
        let own: BTreeMap<String, String> = [
            ("nt-1".to_string(), "耕地".to_string()),
            ("ORCH".to_string(), "Orchard-B".to_string()),
        ]
        .into();
        // The layer's own value in any case, mapped through the classes; then codes and names.
        assert_eq!(normalise_use(" NT-1 ", &own), "farmland");
        assert_eq!(normalise_use("orch", &own), "orchard-b");
        assert_eq!(normalise_use("0103", &own), "farmland");
        assert_eq!(normalise_use("农村宅基地", &own), "construction");
        assert_eq!(normalise_use("X9", &own), "x9");

        let l = layer(vec![
            (Some("A"), "x9", Some(square(0.0, 0.0, 10.0))),
            (Some("B"), "0103", Some(square(20.0, 0.0, 10.0))),
            (Some("C"), "X9", Some(square(40.0, 0.0, 10.0))),
            (Some("D"), "", Some(square(60.0, 0.0, 10.0))),
            (Some("E"), "orchard-b", Some(square(80.0, 0.0, 10.0))),
        ]);
        let p = parcels_from_layer(&l, &fields(), &mut vec![]).unwrap();
        // A use a rule names is known; classes are known; the rest counted, most parcels first.
        let rule_uses = ["orchard-b"].into_iter().collect();
        let u = unknown_uses(&p, &rule_uses);
        assert_eq!(
            u,
            vec![
                UnknownUse {
                    value: "x9".into(),
                    count: 2,
                    examples: vec!["A".into(), "C".into()],
                },
                UnknownUse {
                    value: String::new(),
                    count: 1,
                    examples: vec!["D".into()],
                },
            ]
        );
        assert_eq!(unknown_uses(&p, &Default::default()).len(), 3);
    }
    #[test]
    fn a_layer_without_the_permit_fields_is_refused_and_incomplete_permits_rejected() {
        // The parcels given as permits: refused, naming the field and the fields there are.
        let parcels = layer(vec![(Some("A"), "farmland", Some(square(0.0, 0.0, 10.0)))]);
        let e = permits_from_layer(&parcels, &[], &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no field 'permit_id'") && e.contains("approved_use"),
            "{e}"
        );
        // A permits layer: a feature without a permitted use explains nothing and is rejected.
        let mut permits = layer(vec![
            (Some("A"), "farmland", Some(square(0.0, 0.0, 10.0))),
            (Some("B"), "farmland", Some(square(20.0, 0.0, 10.0))),
            (None, "farmland", Some(square(40.0, 0.0, 10.0))),
        ]);
        for (f, (id, use_)) in permits.features.iter_mut().zip([
            (Value::from("P-1"), Value::from("Construction")),
            (Value::from("P-2"), Value::Null),
            (Value::Null, Value::from("construction")),
        ]) {
            f.attributes.insert("permit_id".into(), id);
            f.attributes.insert("permitted_use".into(), use_);
        }
        let mut notes = vec![];
        let p = permits_from_layer(&permits, &[], &mut notes).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].id.as_str(), p[0].permitted_use.as_str()),
            ("P-1", "construction")
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes
            .iter()
            .all(|n| n.kind == "permit_rejected" && n.message.contains("permitted_use")));
        assert!(notes[0].feature.contains("feature 2") && notes[1].feature.contains("feature 3"));
        assert_eq!((p[0].valid_from, p[0].valid_to), (None, None));
        // Validity: empty ends are open; a date that is not one, or an end before the start, is
        // an error in the register (never an open end, which would permit for ever).
        let a = &mut permits.features[0].attributes;
        a.insert("valid_from".into(), Value::from("2026-03-01"));
        a.insert("valid_to".into(), Value::from(""));
        let p = permits_from_layer(&permits, &[], &mut vec![]).unwrap();
        assert_eq!(p[0].valid_from, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(p[0].valid_to, None);
        // A date with a time and an offset is the day written (not the day in UTC); a spreadsheet's
        // date and time is a date.
        let a = &mut permits.features[0].attributes;
        a.insert(
            "valid_from".into(),
            Value::from("2026-10-15T00:00:00+08:00"),
        );
        a.insert("valid_to".into(), Value::from("2027/1/1 0:00:00"));
        let p = permits_from_layer(&permits, &[], &mut vec![]).unwrap();
        assert_eq!(p[0].valid_from, NaiveDate::from_ymd_opt(2026, 10, 15));
        assert_eq!(p[0].valid_to, NaiveDate::from_ymd_opt(2027, 1, 1));
        for (from, to, why) in [
            (
                "2026-03-01",
                "2026-13-45",
                "valid_to '2026-13-45' is not a date",
            ),
            (
                "2026-03-01",
                "2025-03-01",
                "valid_from 2026-03-01 is after valid_to 2025-03-01",
            ),
            (
                "soon",
                "",
                "valid_from 'soon' is not a date (written as 2026-01-15, ",
            ),
        ] {
            let a = &mut permits.features[0].attributes;
            a.insert("valid_from".into(), Value::from(from));
            a.insert("valid_to".into(), Value::from(to));
            let mut notes = vec![];
            let p = permits_from_layer(&permits, &[], &mut notes).unwrap();
            assert!(p.is_empty(), "{from} {to}");
            assert!(
                notes[0].message.contains(why) && notes[0].message.contains("P-1"),
                "{notes:?}"
            );
            assert!(notes[0].feature.contains("feature 1"), "{notes:?}");
        }
    }

    #[test]
    fn index_finds_neighbours_and_whole_parcel_permits() {
        let mut l = layer(vec![
            (Some("A"), "farmland", Some(square(0.0, 0.0, 10.0))),
            (Some("B"), "farmland", Some(square(100.0, 0.0, 10.0))),
        ]);
        l.features[1]
            .attributes
            .insert("permit_id".into(), Value::from("P-1"));
        let parcels = parcels_from_layer(&l, &fields(), &mut vec![]).unwrap();
        let set = ParcelSet::new(parcels, vec![]);
        let near = set.parcels_near(&geo::Rect::new((95.0, 2.0), (99.0, 3.0)));
        assert!(near.is_empty());
        let near = set.parcels_near(&geo::Rect::new((95.0, 2.0), (101.0, 3.0)));
        assert_eq!(near, vec![1]);
        assert_eq!(set.permits.len(), 1);
        assert_eq!(set.permits[0].kind, "parcel_permit");
        assert!(set.permits[0].valid_on(NaiveDate::from_ymd_opt(2030, 1, 1).unwrap()));
    }
}
