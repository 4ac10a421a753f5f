//! Writing one packet: every file into a hidden temporary directory beside the target, fsync,
//! then one rename; a changed finding gets a new version directory, an unchanged one is left alone.

use super::archive;
use super::error::{io_err, EvidenceError, OtherFindingsPacket};
use super::input::{Chip, PacketInput};
use super::keys::{self, SigningKey};
use super::manifest::{
    self, Acquisitions, ChipGrid, Coordinate, FileEntry, FindingInfo, Location, Manifest,
    PacketVersion, PermitInfo, Rendering, SigningInfo, Software, Supersedes, Vertex, MANIFEST_FILE,
    REPORT_FILE, SCHEMA_VERSION, SIGNATURE_FILE,
};
use super::render::{self, Frame, Labels, Overlays, Stretch};
use super::report;
use crate::export::geojson::{feature, ToWgs84};
use crate::export::raster::{write_geotiff, GeoTiffSpec};
use crate::overlay::AreaMeasure;
use geo::{Area, Centroid, Geometry, MultiPolygon};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks a temporary packet directory: `.<case-id>.partial-<pid>-<n>`.
pub const PARTIAL_MARK: &str = ".partial-";

/// How to write packets.
#[derive(Debug, Clone, Default)]
pub struct PacketOptions {
    /// Also write `<packet-dir>.zip`.
    pub zip: bool,
}

/// What `write_packet` did.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenPacket {
    /// The packet directory (`packets/<case-id>` or `packets/<case-id>.vN`).
    pub dir: PathBuf,
    /// Its version (1 for the bare case id).
    pub version: u32,
    /// True when an identical packet already existed and nothing was written.
    pub unchanged: bool,
    /// The content fingerprint (printed in the report).
    pub content_sha256: String,
    /// SHA-256 of `manifest.json`.
    pub manifest_sha256: String,
    /// The zip, when asked for.
    pub zip: Option<PathBuf>,
}

/// The directory name of a version of a case's packet.
pub fn version_dir_name(case_id: &str, version: u32) -> String {
    if version <= 1 {
        case_id.to_string()
    } else {
        format!("{case_id}.v{version}")
    }
}

fn check_case_id(case_id: &str) -> Result<(), EvidenceError> {
    let bad = |detail: &str| {
        Err(EvidenceError::BadCaseId {
            case_id: case_id.to_string(),
            detail: detail.to_string(),
        })
    };
    if case_id.is_empty() || case_id.len() > 200 {
        return bad("it must have 1 to 200 characters");
    }
    if case_id.starts_with('.') || case_id.contains("..") {
        return bad("it must not start with a dot or contain '..'");
    }
    if case_id.chars().any(|c| {
        c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
    }) {
        return bad("it must not contain path separators or characters Windows forbids");
    }
    if let Some((_, tail)) = case_id.rsplit_once(".v") {
        if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) {
            return bad("a trailing .vN is reserved for packet versions");
        }
    }
    if case_id.ends_with(".zip") {
        return bad("a trailing .zip is reserved for archives");
    }
    Ok(())
}

/// The existing versions of a case's packet in `packets_dir`, ascending.
pub fn existing_versions(packets_dir: &Path, case_id: &str) -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(packets_dir) else {
        return out;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let version = if name == case_id {
            Some(1)
        } else {
            name.strip_prefix(case_id)
                .and_then(|t| t.strip_prefix(".v"))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n >= 2)
        };
        if let Some(v) = version {
            out.push((v, e.path()));
        }
    }
    out.sort();
    out
}

/// The change polygon a manifest's coordinate memorandum describes, in the working CRS or, with
/// `wgs84`, in longitude and latitude.
fn change_polygon_of(m: &Manifest, wgs84: bool) -> MultiPolygon<f64> {
    use geo::{LineString, Polygon};
    // The memorandum lists polygon by polygon, ring by ring (exterior first), point by point.
    let mut polygons: Vec<Polygon<f64>> = Vec::new();
    let mut ring: Vec<(f64, f64)> = Vec::new();
    let mut at_ring = None;
    let close = |ring: &mut Vec<(f64, f64)>, hole: bool, polygons: &mut Vec<Polygon<f64>>| {
        let line = LineString::from(std::mem::take(ring));
        match polygons.last_mut() {
            Some(p) if hole => p.interiors_push(line),
            _ if !hole => polygons.push(Polygon::new(line, vec![])),
            _ => {}
        }
    };
    for v in &m.location.change_polygon_vertices {
        if at_ring != Some((v.polygon, v.ring)) {
            if let Some((_, r)) = at_ring {
                close(&mut ring, r > 0, &mut polygons);
            }
            at_ring = Some((v.polygon, v.ring));
        }
        ring.push(if wgs84 {
            (v.at.lon, v.at.lat)
        } else {
            (v.at.x, v.at.y)
        });
    }
    if let Some((_, r)) = at_ring {
        close(&mut ring, r > 0, &mut polygons);
    }
    MultiPolygon::new(polygons)
}

/// Whether an existing packet under a case's name can be an earlier version of the new one:
/// the same finding, or a change on the same ground (a finding that grew or shrank gets another
/// finding id, and a re-surveyed parcel another parcel id, but a case is only ever continued by
/// a finding overlapping it). Overlaps below a thousandth of the smaller polygon are taken for
/// shared edges (the coordinates are rounded), not shared ground.
fn same_case(previous: &Manifest, new: &Manifest) -> bool {
    use geo::BooleanOps;
    if previous.finding_id == new.finding_id {
        return true;
    }
    let wgs84 = previous.location.working_crs != new.location.working_crs;
    let (a, b) = (
        change_polygon_of(previous, wgs84),
        change_polygon_of(new, wgs84),
    );
    let smaller = a.unsigned_area().min(b.unsigned_area());
    smaller > 0.0 && a.intersection(&b).unsigned_area() > 1e-3 * smaller
}

/// Removes temporary directories a crashed writer left for this case (never a finished packet).
fn remove_partials(packets_dir: &Path, case_id: &str) {
    let prefix = format!(".{case_id}{PARTIAL_MARK}");
    if let Ok(rd) = std::fs::read_dir(packets_dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A temporary directory removed on drop unless it was renamed into place.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn fsync_dir(dir: &Path) -> Result<(), EvidenceError> {
    // Directories can be opened read-only and synced on Unix; elsewhere this is a no-op.
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), EvidenceError> {
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// Flushes every file of a directory to disk, all at once: concurrent fsyncs share the
/// filesystem's journal commits, which makes a packet about three times faster to make durable
/// than syncing its files one after another.
fn sync_files(dir: &Path) -> Result<(), EvidenceError> {
    let mut paths = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        paths.push(e.map_err(io_err(dir))?.path());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .map(|p| {
                scope.spawn(move || {
                    std::fs::File::open(p)
                        .and_then(|f| f.sync_all())
                        .map_err(io_err(p))
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&paths)
            .map(|(h, p)| {
                h.join().unwrap_or_else(|_| {
                    Err(EvidenceError::Io {
                        path: p.clone(),
                        source: std::io::Error::other("fsync thread failed"),
                    })
                })
            })
            .collect::<Result<Vec<()>, EvidenceError>>()
    })?;
    Ok(())
}

fn check_input(input: &PacketInput) -> Result<(usize, usize), EvidenceError> {
    let bad = |detail: String| EvidenceError::InvalidInput {
        case_id: input.case_id.clone(),
        detail,
    };
    let (h, w) = input.before_chip.valid.dim();
    if h == 0 || w == 0 {
        return Err(bad("the before chip is empty".into()));
    }
    for (name, chip) in [("before", &input.before_chip), ("after", &input.after_chip)] {
        if chip.valid.dim() != (h, w) || chip.rgb.dim() != (3, h, w) {
            return Err(bad(format!(
                "the {name} chip is {:?} with a {:?} mask; expected (3, {h}, {w}) and ({h}, {w})",
                chip.rgb.dim(),
                chip.valid.dim()
            )));
        }
    }
    if input.score_chip.dim() != (h, w) {
        return Err(bad(format!(
            "the score chip is {:?}, expected ({h}, {w})",
            input.score_chip.dim()
        )));
    }
    if input.before_chip.geo_transform != input.after_chip.geo_transform {
        return Err(bad(
            "before and after chips have different geotransforms".into()
        ));
    }
    if input.change_polygon.0.is_empty() {
        return Err(bad("the change polygon is empty".into()));
    }
    Ok((h, w))
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (v * k).round() / k
}

/// Everything derived from the input before any file is written.
struct Derived {
    centroid: Coordinate,
    vertices: Vec<Vertex>,
    wgs84_change: MultiPolygon<f64>,
    wgs84_parcel: MultiPolygon<f64>,
    wgs84_permits: Vec<MultiPolygon<f64>>,
    /// Each permit's footprint area, m², in the order of `PacketInput::permits`.
    permit_areas_m2: Vec<f64>,
    metres_per_unit: f64,
}

fn derive(input: &PacketInput) -> Result<Derived, EvidenceError> {
    let terr = |e: gdal::errors::GdalError| EvidenceError::Transform {
        case_id: input.case_id.clone(),
        crs: input.working_crs.clone(),
        detail: e.to_string(),
    };
    let to84 = ToWgs84::new(&input.working_crs).map_err(terr)?;
    let c = input
        .change_polygon
        .centroid()
        .ok_or_else(|| EvidenceError::InvalidInput {
            case_id: input.case_id.clone(),
            detail: "the change polygon has no centroid (zero area)".into(),
        })?;
    let coord = |x: f64, y: f64| -> Result<Coordinate, EvidenceError> {
        let (lon, lat) = to84.point(x, y).map_err(terr)?;
        Ok(Coordinate {
            x: round_to(x, 3),
            y: round_to(y, 3),
            lon: round_to(lon, 9),
            lat: round_to(lat, 9),
        })
    };
    let centroid = coord(c.x(), c.y())?;
    let mut vertices = Vec::new();
    for (pi, p) in input.change_polygon.0.iter().enumerate() {
        for (ri, ring) in std::iter::once(p.exterior())
            .chain(p.interiors())
            .enumerate()
        {
            let pts: Vec<_> = ring.coords().collect();
            // The closing vertex repeats the first; list it once.
            let n = if pts.len() > 1 && pts.first() == pts.last() {
                pts.len() - 1
            } else {
                pts.len()
            };
            for (k, pt) in pts.iter().take(n).enumerate() {
                vertices.push(Vertex {
                    polygon: pi as u32 + 1,
                    ring: ri as u32,
                    point: k as u32 + 1,
                    at: coord(pt.x, pt.y)?,
                });
            }
        }
    }
    let srs = crate::ingest::srs::parse_crs(&input.working_crs).map_err(terr)?;
    let info = crate::ingest::srs::describe(&srs);
    let metres_per_unit = if info.geographic {
        // Degrees: metres per degree of longitude at the finding (the scale bar runs along a row).
        111_320.0 * centroid.lat.to_radians().cos()
    } else {
        info.linear_unit_m.unwrap_or(1.0)
    };
    // Areas as the findings' own are measured: on the ellipsoid in degrees (a degree of latitude
    // is not the finding's degree of longitude, so one factor squared would be ~14 % low at
    // Suzhou), planar times the unit squared otherwise.
    let measure = if info.geographic {
        AreaMeasure::Geodesic
    } else {
        AreaMeasure::Planar {
            m2_per_unit2: metres_per_unit * metres_per_unit,
        }
    };
    Ok(Derived {
        centroid,
        vertices,
        wgs84_change: to84.multi_polygon(&input.change_polygon).map_err(terr)?,
        wgs84_parcel: to84.multi_polygon(&input.parcel_polygon).map_err(terr)?,
        wgs84_permits: input
            .permits
            .iter()
            .map(|p| to84.multi_polygon(&p.footprint))
            .collect::<Result<_, _>>()
            .map_err(terr)?,
        permit_areas_m2: input
            .permits
            .iter()
            .map(|p| measure.m2(&p.footprint))
            .collect(),
        metres_per_unit,
    })
}

fn finding_geojson(input: &PacketInput, d: &Derived) -> Result<Vec<u8>, serde_json::Error> {
    let props = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let date = |a: &super::input::Acquisition| a.acquired_at.map(|t| t.to_string());
    let mut features = vec![feature(
        Some(&Geometry::MultiPolygon(d.wgs84_change.clone())),
        props(json!({
            "role": "change",
            "case_id": input.case_id,
            "finding_id": input.finding_id,
            "parcel_id": input.parcel_id,
            "kind": input.kind,
            "kind_label": input.kind_label,
            "rule_id": input.rule_id,
            "severity": input.severity,
            "transition": input.transition,
            "area_m2": input.area_m2,
            "area_mu": input.area_mu,
            "confidence": input.confidence,
            "before_date": date(&input.before),
            "after_date": date(&input.after),
            "wording": "疑似违法用地线索 / suspected violation: a lead for a field check",
        })),
    )];
    features.push(feature(
        Some(&Geometry::MultiPolygon(d.wgs84_parcel.clone())),
        props(json!({
            "role": "parcel",
            "parcel_id": input.parcel_id,
            "approved_use": input.approved_use,
            "approved_use_zh": input.approved_use_zh,
            "control_layers": input.control_layers,
        })),
    ));
    for (p, g) in input.permits.iter().zip(&d.wgs84_permits) {
        let (status, reason) = report::permit_verdict(&input.rule_trace, &p.permit_id)
            .map(|(s, r)| (Some(s), Some(r)))
            .unwrap_or((None, None));
        features.push(feature(
            Some(&Geometry::MultiPolygon(g.clone())),
            props(json!({
                "role": "permit",
                "permit_id": p.permit_id,
                "kind": p.kind,
                "permitted_use": p.permitted_use,
                "valid_from": p.valid_from,
                "valid_to": p.valid_to,
                "status": status,
                "reason": reason,
            })),
        ));
    }
    let fc = json!({
        "type": "FeatureCollection",
        "name": input.case_id,
        "features": features,
    });
    let mut bytes = serde_json::to_vec_pretty(&fc)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn date_label(a: &super::input::Acquisition) -> String {
    let when = a
        .acquired_at
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "date unknown".into());
    let mut s = format!(
        "{when}  {}",
        a.sensor_kind.as_deref().unwrap_or("sensor unknown")
    );
    if let Some(p) = &a.platform {
        s.push(' ');
        s.push_str(p);
    }
    s
}

/// Keeps only ASCII for text on the PNGs (the embedded font has no CJK); others become `?`.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn chip_tif(
    dir: &Path,
    name: &str,
    input: &PacketInput,
    chip: &Chip,
    stretch: &Stretch,
    date: &super::input::Acquisition,
) -> Result<(), crate::export::ExportError> {
    let (h, w) = chip.valid.dim();
    let mut spec = GeoTiffSpec::new(&input.working_crs, chip.geo_transform, w, h);
    spec.block_size = 512;
    spec.predictor = 2;
    spec.band_descriptions = ["red", "green", "blue", "alpha"].map(String::from).to_vec();
    spec.color_interpretations = vec![Some("Red"), Some("Green"), Some("Blue"), Some("Alpha")];
    spec.metadata = chip_metadata(input, name, date);
    let bands = render::stretched_bands(chip, stretch);
    let refs: Vec<&[u8]> = bands.iter().map(|b| b.as_slice()).collect();
    write_geotiff(&dir.join(name), &spec, &refs)
}

fn chip_metadata(
    input: &PacketInput,
    name: &str,
    date: &super::input::Acquisition,
) -> Vec<(String, String)> {
    let mut md = vec![
        ("LANDWATCH_CASE_ID".to_string(), input.case_id.clone()),
        ("LANDWATCH_FILE".to_string(), name.to_string()),
        (
            "TIFFTAG_SOFTWARE".to_string(),
            format!("landwatch {}", input.software_version),
        ),
    ];
    if let Some(t) = date.acquired_at {
        md.push((
            "TIFFTAG_DATETIME".to_string(),
            t.format("%Y:%m:%d %H:%M:%S").to_string(),
        ));
        md.push(("ACQUISITION_DATE".to_string(), t.to_string()));
    }
    if let Some(k) = &date.sensor_kind {
        md.push(("SENSOR_KIND".to_string(), k.clone()));
    }
    md
}

/// Writes the packet for one finding into `packets_dir` and signs its manifest.
///
/// The packet goes to `packets_dir/<case-id>/` when there is none yet. When the newest existing
/// version has the same content fingerprint, nothing is written and that version is returned;
/// otherwise the finding changed and a new version `<case-id>.vN/` is written beside the old ones,
/// which are never touched. The files are written into `.<case-id>.partial-…` and renamed into
/// place in one step, so a crash leaves no half-written packet under a packet's name. One writer
/// per case at a time (the scan writes each case once per run).
pub fn write_packet(
    packets_dir: &Path,
    input: &PacketInput,
    key: &SigningKey,
    opts: &PacketOptions,
) -> Result<WrittenPacket, EvidenceError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    check_case_id(&input.case_id)?;
    let (h, w) = check_input(input)?;
    let case = input.case_id.as_str();
    let ferr = |file: &str| {
        let file = file.to_string();
        move |e: &dyn std::fmt::Display| EvidenceError::File {
            case_id: case.to_string(),
            file: file.clone(),
            detail: e.to_string(),
        }
    };
    let d = derive(input)?;

    // Pictures.
    let stretch = render::joint_stretch(&[&input.before_chip, &input.after_chip]);
    let frame = Frame {
        geo_transform: input.before_chip.geo_transform,
        width: w,
        height: h,
        metres_per_unit: d.metres_per_unit,
    };
    let permit_polys: Vec<&MultiPolygon<f64>> =
        input.permits.iter().map(|p| &p.footprint).collect();
    let overlays = Overlays {
        change: &input.change_polygon,
        parcel: &input.parcel_polygon,
        permits: &permit_polys,
    };
    let crs = report::crs_label(&input.working_crs);
    let footer = vec![
        ascii(&format!(
            "Centre E {:.2}  N {:.2}  ({})",
            d.centroid.x,
            d.centroid.y,
            if crs.len() <= 24 {
                crs.as_str()
            } else {
                "working CRS"
            }
        )),
        format!(
            "WGS84 {:.6} E, {:.6} N   case {}",
            d.centroid.lon,
            d.centroid.lat,
            ascii(case)
        ),
    ];
    let labels = |title: String| Labels {
        title: ascii(&title),
        footer: footer.clone(),
    };
    let before_png = render::encode_png(&render::true_colour(
        &input.before_chip,
        &stretch,
        frame,
        &overlays,
        &labels(format!("BEFORE  {}", date_label(&input.before))),
    ))
    .map_err(|e| ferr("before.png")(&e))?;
    let after_png = render::encode_png(&render::true_colour(
        &input.after_chip,
        &stretch,
        frame,
        &overlays,
        &labels(format!("AFTER  {}", date_label(&input.after))),
    ))
    .map_err(|e| ferr("after.png")(&e))?;
    let range = render::score_range(&input.score_chip);
    let change_png = render::encode_png(&render::heat_map(
        &input.score_chip,
        range,
        frame,
        &overlays,
        &labels(format!(
            "CHANGE SCORE  {} -> {}",
            input
                .before
                .acquired_at
                .map(|t| t.date().to_string())
                .unwrap_or_default(),
            input
                .after
                .acquired_at
                .map(|t| t.date().to_string())
                .unwrap_or_default()
        )),
    ))
    .map_err(|e| ferr("change.png")(&e))?;
    let geojson = finding_geojson(input, &d).map_err(|e| ferr("finding.geojson")(&e))?;

    // Files into the temporary directory.
    std::fs::create_dir_all(packets_dir).map_err(io_err(packets_dir))?;
    remove_partials(packets_dir, case);
    let mut tmp = TempDir {
        path: packets_dir.join(format!(
            ".{case}{PARTIAL_MARK}{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )),
        keep: false,
    };
    std::fs::create_dir(&tmp.path).map_err(io_err(&tmp.path))?;
    let t = tmp.path.clone();
    write_file(&t.join("before.png"), &before_png)?;
    write_file(&t.join("after.png"), &after_png)?;
    write_file(&t.join("change.png"), &change_png)?;
    write_file(&t.join("finding.geojson"), &geojson)?;
    chip_tif(
        &t,
        "before.tif",
        input,
        &input.before_chip,
        &stretch,
        &input.before,
    )
    .map_err(|e| ferr("before.tif")(&e))?;
    chip_tif(
        &t,
        "after.tif",
        input,
        &input.after_chip,
        &stretch,
        &input.after,
    )
    .map_err(|e| ferr("after.tif")(&e))?;
    {
        let mut spec = GeoTiffSpec::new(&input.working_crs, input.before_chip.geo_transform, w, h);
        spec.block_size = 512;
        spec.predictor = 3;
        spec.nodata = Some(f64::NAN);
        spec.band_descriptions = vec!["change_score".to_string()];
        spec.metadata = chip_metadata(input, "change.tif", &input.after);
        let score: Vec<f32> = input.score_chip.iter().copied().collect();
        write_geotiff(&t.join("change.tif"), &spec, &[score.as_slice()])
            .map_err(|e| ferr("change.tif")(&e))?;
    }
    let mut files: BTreeMap<String, FileEntry> = BTreeMap::new();
    for (name, bytes) in archive::read_dir_files(&t)? {
        files.insert(
            name,
            FileEntry {
                sha256: manifest::sha256_hex(&bytes),
                bytes: bytes.len() as u64,
            },
        );
    }

    // The manifest without the run members, to decide whether anything changed.
    let verifying = key.verifying_key();
    let mut m = Manifest {
        schema_version: SCHEMA_VERSION.to_string(),
        case_id: input.case_id.clone(),
        finding_id: input.finding_id.clone(),
        run_id: input.run_id.clone(),
        created_at: input.created_at.clone(),
        packet: PacketVersion {
            version: 1,
            directory: case.to_string(),
            supersedes: None,
        },
        content_sha256: String::new(),
        finding: FindingInfo {
            parcel_id: input.parcel_id.clone(),
            approved_use: input.approved_use.clone(),
            approved_use_zh: input.approved_use_zh.clone(),
            control_layers: input.control_layers.clone(),
            kind: input.kind.clone(),
            kind_label: input.kind_label.clone(),
            rule_id: input.rule_id.clone(),
            severity: input.severity.clone(),
            transition: input.transition.clone(),
            area_m2: input.area_m2,
            area_mu: input.area_mu,
            confidence: input.confidence,
            rule_trace: input.rule_trace.clone(),
        },
        permits: input
            .permits
            .iter()
            .zip(&d.permit_areas_m2)
            .map(|(p, area_m2)| PermitInfo {
                permit_id: p.permit_id.clone(),
                kind: p.kind.clone(),
                permitted_use: p.permitted_use.clone(),
                valid_from: p.valid_from.clone(),
                valid_to: p.valid_to.clone(),
                footprint_area_m2: round_to(*area_m2, 2),
            })
            .collect(),
        acquisitions: Acquisitions {
            before: input.before.clone(),
            after: input.after.clone(),
        },
        sources: input.sources.clone(),
        location: Location {
            working_crs: input.working_crs.clone(),
            centroid: d.centroid,
            change_polygon_vertices: d.vertices.clone(),
            chip: ChipGrid {
                width: w,
                height: h,
                geo_transform: input.before_chip.geo_transform,
                pixel_size_m: frame.metres_per_pixel(),
            },
        },
        software: Software {
            name: "landwatch".to_string(),
            version: input.software_version.clone(),
            git_commit: input.git_commit.clone(),
        },
        detector: input.detector.clone(),
        parameters: input.parameters.clone(),
        config_sha256: input.config_sha256.clone(),
        rendering: Rendering {
            stretch_percentiles: [render::STRETCH_PERCENTILES.0, render::STRETCH_PERCENTILES.1],
            stretch: stretch.into(),
            score_range: [range.0, range.1],
            display_scale: frame.scale(),
        },
        signing: SigningInfo {
            algorithm: "Ed25519".to_string(),
            public_key: hex::encode(verifying.as_bytes()),
            key_fingerprint_sha256: keys::fingerprint(&verifying),
            signature_file: SIGNATURE_FILE.to_string(),
        },
        files,
    };
    m.content_sha256 = manifest::content_sha256(&m);

    let versions = existing_versions(packets_dir, case);
    if let Some((v, dir)) = versions.last() {
        let previous = std::fs::read(dir.join(MANIFEST_FILE)).ok();
        let parsed = previous
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Manifest>(b).ok());
        // The same finding: the newest packet's fingerprint is this one's (or, written by a
        // landwatch before 1 December 2026, the one that landwatch computed for this content).
        let same = parsed.as_ref().is_some_and(|p| {
            p.content_sha256 == m.content_sha256
                || p.content_sha256 == manifest::legacy_content_sha256(&m)
        });
        // A packet of another finding under this case's name: the cases were numbered by
        // another store than the one whose runs wrote these packets (a lost or replaced store
        // restarts the day's case numbers). Chaining onto it would present one suspected
        // violation as a version of another's evidence.
        if let Some(p) = parsed.as_ref().filter(|p| !same && !same_case(p, &m)) {
            return Err(EvidenceError::OtherFindingsPacket(Box::new(
                OtherFindingsPacket {
                    dir: dir.clone(),
                    case_id: case.to_string(),
                    held_finding_id: p.finding_id.clone(),
                    held_parcel_id: p.finding.parcel_id.clone(),
                    finding_id: m.finding_id.clone(),
                    parcel_id: m.finding.parcel_id.clone(),
                },
            )));
        }
        if same {
            let zip = match (opts.zip, archive::zip_path(dir)) {
                (true, z) if !z.exists() => Some(archive::write_zip(dir)?),
                (true, z) => Some(z),
                (false, _) => None,
            };
            return Ok(WrittenPacket {
                dir: dir.clone(),
                version: *v,
                unchanged: true,
                content_sha256: m.content_sha256,
                manifest_sha256: previous
                    .as_deref()
                    .map(manifest::sha256_hex)
                    .unwrap_or_default(),
                zip,
            });
        }
        m.packet.supersedes = Some(Supersedes {
            directory: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            manifest_sha256: previous
                .as_deref()
                .map(manifest::sha256_hex)
                .unwrap_or_default(),
            content_sha256: parsed.map(|p| p.content_sha256).unwrap_or_default(),
        });
    }
    let version = versions.last().map(|(v, _)| v + 1).unwrap_or(1);
    m.packet.version = version;
    m.packet.directory = version_dir_name(case, version);

    // The report prints the content fingerprint; its own hash joins the manifest afterwards.
    let html = report::render(
        input,
        &m,
        &report::Pictures {
            before: &before_png,
            after: &after_png,
            change: &change_png,
        },
    );
    write_file(&t.join(REPORT_FILE), html.as_bytes())?;
    m.files.insert(
        REPORT_FILE.to_string(),
        FileEntry {
            sha256: manifest::sha256_hex(html.as_bytes()),
            bytes: html.len() as u64,
        },
    );
    let manifest_bytes = manifest::to_bytes(&m).map_err(|e| ferr(MANIFEST_FILE)(&e))?;
    let signature = keys::sign(key, &manifest_bytes);
    write_file(&t.join(MANIFEST_FILE), &manifest_bytes)?;
    write_file(&t.join(SIGNATURE_FILE), &signature)?;
    sync_files(&t)?;
    fsync_dir(&t)?;

    let dir = packets_dir.join(&m.packet.directory);
    if dir.exists() {
        return Err(EvidenceError::Io {
            path: dir,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "another writer created this packet version meanwhile",
            ),
        });
    }
    std::fs::rename(&t, &dir).map_err(io_err(&dir))?;
    tmp.keep = true;
    fsync_dir(packets_dir)?;
    let zip = if opts.zip {
        Some(archive::write_zip(&dir)?)
    } else {
        None
    };
    Ok(WrittenPacket {
        dir,
        version,
        unchanged: false,
        content_sha256: m.content_sha256,
        manifest_sha256: manifest::sha256_hex(&manifest_bytes),
        zip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_s_footprint_area_on_a_grid_in_degrees_is_the_ellipsoid_s() {
        // The example finding moved onto a grid in degrees near Suzhou (a unit of the example,
        // a metre, becomes 1e-5 degree); its permit is 22 × 14 units.
        use geo::MapCoords;
        let (lon0, lat0, deg) = (120.9, 31.15, 1e-5);
        let mut input = crate::evidence::example_input();
        let (x0, y0) = (561_552.0, 3_449_044.0);
        let to_degrees = |m: &MultiPolygon<f64>| {
            m.map_coords(|c| geo::Coord {
                x: lon0 + (c.x - x0) * deg,
                y: lat0 + (c.y - y0) * deg,
            })
        };
        input.working_crs = "EPSG:4490".into();
        input.change_polygon = to_degrees(&input.change_polygon);
        input.parcel_polygon = to_degrees(&input.parcel_polygon);
        input.permits[0].footprint = to_degrees(&input.permits[0].footprint);
        let d = derive(&input).unwrap();
        // A degree of longitude and of latitude on the ellipsoid at the permit's latitude.
        let (a, e2) = (6_378_137.0_f64, 0.006_694_380_022_9_f64);
        let lat = (lat0 - 45.0 * deg).to_radians();
        let w = 1.0 - e2 * lat.sin().powi(2);
        let lon_m = std::f64::consts::PI / 180.0 * a * lat.cos() / w.sqrt();
        let lat_m = std::f64::consts::PI / 180.0 * a * (1.0 - e2) / w.powf(1.5);
        let expected = (22.0 * deg * lon_m) * (14.0 * deg * lat_m);
        let got = d.permit_areas_m2[0];
        assert!((got / expected - 1.0).abs() < 1e-4, "{got} vs {expected}");
    }

    #[test]
    fn case_ids_that_cannot_name_a_directory_are_refused() {
        for bad in [
            "", "../x", ".hidden", "a/b", "a\\b", "x.v2", "x.zip", "a\nb",
        ] {
            assert!(check_case_id(bad).is_err(), "{bad:?}");
        }
        for good in ["320509-20261128-0042", "case_1.v", "case.v2a"] {
            assert!(check_case_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn version_names() {
        assert_eq!(version_dir_name("c", 1), "c");
        assert_eq!(version_dir_name("c", 3), "c.v3");
    }
}
