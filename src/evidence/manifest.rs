//! `manifest.json`: the versioned, signed description of a packet (schema in
//! `docs/evidence-manifest.md`), and the content fingerprint that stays the same across runs.

use super::input::{Acquisition, SourceTile};
use super::render::Stretch;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The manifest schema this code writes and reads.
pub const SCHEMA_VERSION: &str = "landwatch-evidence/1";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signature's file name (64 raw bytes: Ed25519 over the exact bytes of `manifest.json`).
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// The report's file name.
pub const REPORT_FILE: &str = "report.html";
/// Manifest members that name the run or the packet version, left out of `content_sha256`.
pub const RUN_MEMBERS: [&str; 5] = [
    "run_id",
    "created_at",
    "packet",
    "content_sha256",
    "signing",
];

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `landwatch-evidence/1`.
    pub schema_version: String,
    /// The case id (the packet directory's name without a version suffix).
    pub case_id: String,
    /// The finding's stable id.
    pub finding_id: String,
    /// The run that wrote this packet version.
    pub run_id: String,
    /// When this packet version was written (UTC, RFC 3339).
    pub created_at: String,
    /// Which version of the case's packet this is.
    pub packet: PacketVersion,
    /// SHA-256 of the manifest's content without the run members (see `content_sha256`): the
    /// packet fingerprint printed in `report.html`, equal for equal findings across runs.
    pub content_sha256: String,
    /// What was found and why.
    pub finding: FindingInfo,
    /// Permits consulted.
    pub permits: Vec<PermitInfo>,
    /// Both image dates.
    pub acquisitions: Acquisitions,
    /// Every source raster with its SHA-256.
    pub sources: Vec<SourceTile>,
    /// Where: CRS, centroid and the coordinate memorandum.
    pub location: Location,
    /// The software that wrote the packet.
    pub software: Software,
    /// The detector (as the scan describes it).
    pub detector: Value,
    /// Every parameter of the run.
    pub parameters: Value,
    /// SHA-256 of the configuration (and rules) the run used.
    pub config_sha256: String,
    /// How the pictures were made from the pixels.
    pub rendering: Rendering,
    /// The key that signs `manifest.json`.
    pub signing: SigningInfo,
    /// SHA-256 and size of every other file in the packet, by file name.
    pub files: BTreeMap<String, FileEntry>,
}

/// The packet's version within its case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketVersion {
    /// 1 for `<case-id>/`, n for `<case-id>.vn/`.
    pub version: u32,
    /// The directory name.
    pub directory: String,
    /// The version this one follows, when the finding changed since.
    pub supersedes: Option<Supersedes>,
}

/// A link to the previous packet version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Supersedes {
    /// Its directory name.
    pub directory: String,
    /// SHA-256 of its `manifest.json` (empty when it could not be read).
    pub manifest_sha256: String,
    /// Its content fingerprint (empty when it could not be read).
    pub content_sha256: String,
}

/// The finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingInfo {
    /// Parcel id.
    pub parcel_id: String,
    /// Approved use (`farmland`, …).
    pub approved_use: String,
    /// Its Chinese name (耕地, …).
    pub approved_use_zh: String,
    /// Control layers the parcel lies in.
    pub control_layers: Vec<String>,
    /// Suspected violation kind.
    pub kind: String,
    /// Bilingual label of the kind.
    pub kind_label: String,
    /// The rule that fired.
    pub rule_id: String,
    /// Severity.
    pub severity: String,
    /// Land-cover transition.
    pub transition: String,
    /// Suspected area, m².
    pub area_m2: f64,
    /// The same in mu (1 mu = 666.67 m²).
    pub area_mu: f64,
    /// Confidence, 0–1.
    pub confidence: f64,
    /// The full rule trace.
    pub rule_trace: Value,
}

/// A permit consulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermitInfo {
    /// Permit number.
    pub permit_id: String,
    /// Permit kind.
    pub kind: String,
    /// Permitted use.
    pub permitted_use: String,
    /// First valid day.
    pub valid_from: Option<String>,
    /// Last valid day.
    pub valid_to: Option<String>,
    /// Footprint area, m².
    pub footprint_area_m2: f64,
}

/// Both image dates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acquisitions {
    /// Before.
    pub before: Acquisition,
    /// After.
    pub after: Acquisition,
}

/// A point in the working CRS and in WGS84.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// Easting (working CRS).
    pub x: f64,
    /// Northing (working CRS).
    pub y: f64,
    /// Longitude (WGS84, degrees).
    pub lon: f64,
    /// Latitude (WGS84, degrees).
    pub lat: f64,
}

/// One vertex of the change polygon (the coordinate memorandum, 坐标备忘).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Vertex {
    /// Polygon number, from 1.
    pub polygon: u32,
    /// Ring: 0 exterior, 1… holes.
    pub ring: u32,
    /// Vertex number within the ring, from 1 (the closing vertex is not repeated).
    pub point: u32,
    /// The coordinates.
    #[serde(flatten)]
    pub at: Coordinate,
}

/// Where the finding is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The working CRS (`EPSG:4549` or WKT).
    pub working_crs: String,
    /// Area-weighted centroid of the change polygon.
    pub centroid: Coordinate,
    /// Every vertex of the change polygon, in both CRSs.
    pub change_polygon_vertices: Vec<Vertex>,
    /// The chips' grid.
    pub chip: ChipGrid,
}

/// The chips' pixel grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChipGrid {
    /// Width, pixels.
    pub width: usize,
    /// Height, pixels.
    pub height: usize,
    /// GDAL geotransform in the working CRS.
    pub geo_transform: [f64; 6],
    /// Ground size of a pixel, m.
    pub pixel_size_m: f64,
}

/// The software.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Software {
    /// `landwatch`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The git commit it was built from.
    pub git_commit: String,
}

/// How pixels became pictures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendering {
    /// Percentiles of the joint contrast stretch.
    pub stretch_percentiles: [f64; 2],
    /// The stretch applied to both dates (red, green, blue); `before.tif`/`after.tif` hold
    /// `round(255 · clamp((v − lo) / (hi − lo), 0, 1))`.
    pub stretch: StretchInfo,
    /// Heat map range of `change.png` (`change.tif` holds the raw score).
    pub score_range: [f32; 2],
    /// Enlargement of the chips in the PNGs (nearest neighbour).
    pub display_scale: usize,
}

/// The stretch as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StretchInfo {
    /// Value mapped to 0, per band.
    pub lo: [f32; 3],
    /// Value mapped to 255, per band.
    pub hi: [f32; 3],
}

impl From<Stretch> for StretchInfo {
    fn from(s: Stretch) -> Self {
        StretchInfo { lo: s.lo, hi: s.hi }
    }
}

/// The signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningInfo {
    /// `Ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
    /// SHA-256 of the public key's bytes, hex.
    pub key_fingerprint_sha256: String,
    /// `manifest.sig`.
    pub signature_file: String,
}

/// A file of the packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A JSON value with object members sorted by key, recursively.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(x) = m.get(k) {
                    out.insert(k.clone(), canonical(x));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The content fingerprint: SHA-256 of the manifest as compact JSON with keys sorted, without the
/// run members (`RUN_MEMBERS`) and without the report's entry in `files` (the report prints this
/// fingerprint, so it cannot be part of it), numbers and strings exactly as `manifest.json` writes
/// them. Python's `json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` of
/// the loaded manifest gives the same text unless a number needs an exponent.
pub fn content_sha256(m: &Manifest) -> String {
    serde_json::to_vec(m)
        .ok()
        .and_then(|text| content_sha256_of_json(&text))
        .unwrap_or_default()
}

/// [`content_sha256`] of a manifest's JSON text (`manifest.json` as written, or any spacing of
/// it), or `None` when it is not a JSON object.
pub fn content_sha256_of_json(text: &[u8]) -> Option<String> {
    use serde_json::value::RawValue;
    let text = std::str::from_utf8(text).ok()?;
    let mut top: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    for k in RUN_MEMBERS {
        top.remove(k);
    }
    let files: Option<BTreeMap<String, &RawValue>> = match top.get("files") {
        Some(f) => {
            let mut f: BTreeMap<String, &RawValue> = serde_json::from_str(f.get()).ok()?;
            f.remove(REPORT_FILE);
            Some(f)
        }
        None => None,
    };
    let mut out = String::with_capacity(text.len());
    out.push('{');
    for (i, (k, v)) in top.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).ok()?);
        out.push(':');
        match (k.as_str(), &files) {
            ("files", Some(f)) => canonical_object(f, &mut out)?,
            _ => canonical_text(v, &mut out)?,
        }
    }
    out.push('}');
    Some(hex::encode(Sha256::digest(out.as_bytes())))
}

/// Writes JSON `raw` compactly with object keys sorted; numbers, strings and literals are copied
/// as written (never re-read as floating point, which may not give back the same digits).
fn canonical_text(raw: &serde_json::value::RawValue, out: &mut String) -> Option<()> {
    use serde_json::value::RawValue;
    let t = raw.get().trim();
    match t.as_bytes().first()? {
        b'{' => {
            let m: BTreeMap<String, &RawValue> = serde_json::from_str(t).ok()?;
            canonical_object(&m, out)
        }
        b'[' => {
            let a: Vec<&RawValue> = serde_json::from_str(t).ok()?;
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_text(v, out)?;
            }
            out.push(']');
            Some(())
        }
        _ => {
            out.push_str(t);
            Some(())
        }
    }
}

/// An object's members in key order (a `BTreeMap` sorts keys by their UTF-8 bytes, which is
/// their order by code point, as Python's `sort_keys`).
fn canonical_object(
    m: &BTreeMap<String, &serde_json::value::RawValue>,
    out: &mut String,
) -> Option<()> {
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).ok()?);
        out.push(':');
        canonical_text(v, out)?;
    }
    out.push('}');
    Some(())
}

/// The fingerprint as landwatch computed it before 1 December 2026: the manifest re-read into
/// JSON values, whose parser may put a float one unit in the last place off the digits written
/// (so an independent checker could not always recompute it). Packets written then still verify
/// by it; new packets carry [`content_sha256`].
pub fn legacy_content_sha256(m: &Manifest) -> String {
    let mut v = match serde_json::to_vec(m).and_then(|b| serde_json::from_slice::<Value>(&b)) {
        Ok(v) => v,
        Err(_) => return String::new(),
    };
    if let Value::Object(obj) = &mut v {
        for k in RUN_MEMBERS {
            obj.remove(k);
        }
        if let Some(Value::Object(files)) = obj.get_mut("files") {
            files.remove(REPORT_FILE);
        }
    }
    let bytes = serde_json::to_vec(&canonical(&v)).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The manifest's bytes as written: pretty JSON and a final newline.
pub fn to_bytes(m: &Manifest) -> Result<Vec<u8>, serde_json::Error> {
    let mut b = serde_json::to_vec_pretty(m)?;
    b.push(b'\n');
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_of_the_numbers_as_written() {
        // A float that serde_json's default parser reads one unit in the last place off: the
        // fingerprint must hash the digits written, as Python's json does.
        let text = r#"{
  "z": [1, 0.11999999731779099, "雨"],
  "a": {"y": 2.5, "b": null},
  "run_id": "r1", "created_at": "t", "packet": {}, "content_sha256": "x", "signing": {},
  "files": {"report.html": {"sha256": "h"}, "after.png": {"sha256": "p", "bytes": 3}}
}"#;
        let expected = r#"{"a":{"b":null,"y":2.5},"files":{"after.png":{"bytes":3,"sha256":"p"}},"z":[1,0.11999999731779099,"雨"]}"#;
        assert_eq!(
            content_sha256_of_json(text.as_bytes()).unwrap(),
            sha256_hex(expected.as_bytes())
        );
        // Spacing and member order do not matter; anything but an object is no manifest.
        let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            content_sha256_of_json(compact.as_bytes()),
            content_sha256_of_json(text.as_bytes())
        );
        assert!(content_sha256_of_json(b"[1]").is_none());
    }
}
