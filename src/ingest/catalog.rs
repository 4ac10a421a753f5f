//! The catalogue: every raster under some paths, with its georeferencing, date, sensor, band roles
//! and content hash — or the specific reason it cannot be used.

use super::srs::{self, CrsInfo};
use super::IngestError;
use crate::bands::{BandRole, RoleSource};
use crate::grid::Bounds;
use chrono::{NaiveDate, NaiveDateTime};
use gdal::raster::RasterBand;
use gdal::{Dataset, DatasetOptions, GdalOpenFlags, Metadata};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a piece of catalogue metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaSource {
    /// The TIFF tag `TIFFTAG_DATETIME`.
    TiffDatetime,
    /// A metadata item in the file (`ACQUISITION_DATE`, `SENSOR_KIND`, …).
    Metadata,
    /// The `<file>.json` sidecar.
    Sidecar,
    /// The command line or the config.
    Override,
    /// Inferred from the pixel size and bands (a guess; confirm it in a sidecar or the config).
    Inferred,
}

/// The kind of platform that took an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// A satellite scene (0.5–30 m, often 4+ bands).
    Satellite,
    /// A drone orthophoto (centimetres, usually RGB).
    Drone,
    /// A crewed aerial survey.
    Aerial,
}

impl std::str::FromStr for SensorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "satellite" | "sat" => Ok(SensorKind::Satellite),
            "drone" | "uav" | "uas" => Ok(SensorKind::Drone),
            "aerial" | "airborne" => Ok(SensorKind::Aerial),
            other => Err(format!(
                "unknown sensor kind '{other}' (expected satellite, drone or aerial)"
            )),
        }
    }
}

/// The acquisition time of an image and where it was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acquisition {
    /// Acquisition time (local to the imagery provider; no time zone is assumed).
    pub time: NaiveDateTime,
    /// Where it came from.
    pub source: MetaSource,
}

/// The sensor kind of an image and where it was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// Satellite, drone or aerial.
    pub kind: SensorKind,
    /// The platform or sensor name when known (e.g. `GF-2 PMS`).
    pub platform: Option<String>,
    /// Where it came from.
    pub source: MetaSource,
}

/// One band of a raster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandInfo {
    /// 1-based band index, as GDAL numbers bands.
    pub index: usize,
    /// GDAL data type name (`Byte`, `UInt16`, `Float32`, …).
    pub data_type: String,
    /// What the band measures.
    pub role: BandRole,
    /// Where the role came from.
    pub role_source: RoleSource,
    /// GDAL's colour interpretation name.
    pub color_interpretation: String,
    /// The band description, if any.
    pub description: Option<String>,
    /// The nodata value, if any.
    pub nodata: Option<f64>,
    /// Block size (columns, rows).
    pub block_size: (usize, usize),
}

/// The ground footprint of a raster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// Bounds in the raster's own CRS.
    pub native: Bounds,
    /// Outline in WGS84 longitude/latitude (corners and edge points, closed ring), when transformable.
    pub wgs84: Option<Vec<[f64; 2]>>,
    /// Bounds of the WGS84 outline.
    pub wgs84_bounds: Option<Bounds>,
}

/// Everything the catalogue knows about one raster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RasterInfo {
    /// GDAL driver short name (`GTiff`, `PNG`, `ENVI`, …).
    pub driver: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Number of bands.
    pub band_count: usize,
    /// Data type of the first band.
    pub data_type: Option<String>,
    /// Nodata value of the first band.
    pub nodata: Option<f64>,
    /// Block size of the first band (columns, rows).
    pub block_size: Option<(usize, usize)>,
    /// `tiled` when blocks are smaller than the full width, else `striped`.
    pub layout: Option<String>,
    /// Compression (`DEFLATE`, `LZW`, `JPEG`, …) or `NONE`.
    pub compression: String,
    /// Number of overview levels of the first band.
    pub overviews: usize,
    /// Every band.
    pub bands: Vec<BandInfo>,
    /// The affine geotransform (GDAL order), when the file has one.
    pub geo_transform: Option<[f64; 6]>,
    /// Pixel size (x, y) in CRS units, both positive.
    pub pixel_size: Option<(f64, f64)>,
    /// Whether the geotransform has rotation terms.
    pub rotated: bool,
    /// The CRS, when the file has one.
    pub crs: Option<CrsInfo>,
    /// Where the image lies.
    pub footprint: Option<Footprint>,
    /// Number of ground control points.
    pub gcp_count: usize,
    /// When the image was taken.
    pub acquired: Option<Acquisition>,
    /// What took it.
    pub sensor: Option<Sensor>,
    /// Files that make up the dataset (main file first, then side-cars and overviews).
    pub files: Vec<PathBuf>,
    /// Size of the main file in bytes.
    pub file_size: u64,
    /// SHA-256 of the main file's bytes, lower-case hex.
    pub sha256: String,
}

impl RasterInfo {
    /// The band roles in band order.
    pub fn roles(&self) -> Vec<BandRole> {
        self.bands.iter().map(|b| b.role).collect()
    }

    /// 1-based index of the first band with a role.
    pub fn band_with_role(&self, role: BandRole) -> Option<usize> {
        self.bands.iter().find(|b| b.role == role).map(|b| b.index)
    }
}

/// A problem that makes a raster unusable, in a form that serialises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Machine-readable kind (`corrupt`, `gcp_only`, `no_georeferencing`, …).
    pub kind: String,
    /// A sentence saying what is wrong and what to do.
    pub message: String,
}

impl From<&IngestError> for Problem {
    fn from(e: &IngestError) -> Self {
        Problem {
            kind: e.kind().to_string(),
            message: e.to_string(),
        }
    }
}

/// One catalogue line: a raster and either its description or why it is unusable (or both, when
/// the file opens but cannot be placed on the ground).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The file.
    pub path: PathBuf,
    /// What could be read about it.
    pub info: Option<RasterInfo>,
    /// Why it cannot be used, if it cannot.
    pub problem: Option<Problem>,
}

impl CatalogEntry {
    /// Whether the raster can be used for change detection.
    pub fn is_usable(&self) -> bool {
        self.problem.is_none() && self.info.is_some()
    }
}

/// Options for cataloguing.
#[derive(Debug, Clone, Default)]
pub struct CatalogOptions {
    /// Band roles to use instead of what the files say.
    pub bands: Option<Vec<BandRole>>,
    /// Sensor kind to use when the files do not say.
    pub sensor: Option<SensorKind>,
    /// Decode every block of every band to find corrupt pixels (slow on large files).
    pub verify_pixels: bool,
    /// Leave each entry's `sha256` empty: the caller hashes the files itself ([`sha256_file`]),
    /// later (`landwatch scan` does it beside detection).
    pub defer_hash: bool,
}

/// The optional `<file>.json` sidecar next to a raster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Acquisition time: `2026-05-01`, `2026-05-01T10:30:00` or `2026:05:01 10:30:00`.
    pub acquired_at: Option<String>,
    /// `satellite`, `drone` or `aerial`.
    pub sensor: Option<String>,
    /// Platform or sensor name.
    pub platform: Option<String>,
    /// Band roles in band order.
    pub bands: Option<Vec<String>>,
}

/// File name suffixes that are never rasters on their own (side-cars of rasters or other data).
const SKIP_SUFFIXES: &[&str] = &[
    ".aux.xml",
    ".ovr",
    ".msk",
    ".json",
    ".geojson",
    ".md",
    ".txt",
    ".rst",
    ".prj",
    ".cpg",
    ".dbf",
    ".shx",
    ".shp",
    ".gpkg",
    ".gpkg-wal",
    ".gpkg-shm",
    ".toml",
    ".csv",
    ".html",
    ".sig",
    ".zip",
    ".db",
    ".db-wal",
    ".db-shm",
    ".hdr",
    ".xml",
    ".lock",
    ".tsv",
    ".py",
    ".pdf",
    ".log",
    ".qmd",
    ".tmp",
];

/// Suffixes of files that ought to be rasters: when these fail to open it is a reported problem,
/// not a silent skip.
const RASTER_SUFFIXES: &[&str] = &[
    ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt", ".dat", ".bil", ".bsq",
    ".ntf", ".nc",
];

fn has_suffix(path: &Path, suffixes: &[&str]) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    suffixes.iter().any(|s| name.ends_with(s))
}

/// Whether a directory holds landwatch's own output: a scan's (`summary.json` beside
/// `findings.geojson`), an evidence packet (`manifest.sig`) or a store (`landwatch.db`). Its
/// rasters, the change scores and a packet's chips, are no imagery to compare.
fn is_landwatch_output(dir: &Path) -> bool {
    (dir.join("summary.json").is_file() && dir.join("findings.geojson").is_file())
        || dir.join("manifest.sig").is_file()
        || dir.join("landwatch.db").is_file()
}

/// Lists candidate raster files under the given paths (directories are walked, sorted by path;
/// landwatch's own output directories found there are left out, with a warning).
pub fn candidate_files(paths: &[PathBuf]) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let walker = walkdir::WalkDir::new(p)
                .sort_by_file_name()
                .follow_links(true);
            let not_output = |e: &walkdir::DirEntry| {
                let output = e.file_type().is_dir() && is_landwatch_output(e.path());
                if output {
                    tracing::warn!(
                        "{}: left out of the imagery: it holds landwatch's own output (change \
                         scores, evidence chips), which is no imagery; keep the output directory \
                         outside the imagery directories",
                        e.path().display()
                    );
                }
                !output
            };
            for e in walker
                .into_iter()
                .filter_entry(not_output)
                .filter_map(Result::ok)
            {
                let name = e.file_name().to_string_lossy();
                if !e.file_type().is_file() || name.starts_with('.') {
                    continue;
                }
                if has_suffix(e.path(), SKIP_SUFFIXES) {
                    continue;
                }
                out.push((e.path().to_path_buf(), false));
            }
        } else {
            // An explicitly named file is always reported, whatever it is.
            out.push((p.clone(), true));
        }
    }
    out
}

/// Catalogues every raster under the paths, in parallel; the result is sorted by path.
pub fn catalog_paths(paths: &[PathBuf], opts: &CatalogOptions) -> Vec<CatalogEntry> {
    super::init_gdal();
    let candidates = candidate_files(paths);
    let mut entries: Vec<CatalogEntry> = candidates
        .par_iter()
        .filter_map(|(path, explicit)| {
            let entry = describe_raster(path, opts);
            let unopenable = entry.info.is_none();
            // A file in a walked directory that GDAL cannot open and that does not look like a
            // raster is simply not a raster (a PDF, a spreadsheet …): leave it out.
            if unopenable && !explicit && !has_suffix(path, RASTER_SUFFIXES) {
                None
            } else {
                Some(entry)
            }
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

/// Opens a raster read-only, with a clear error when GDAL cannot.
pub fn open_raster(path: &Path) -> Result<Dataset, IngestError> {
    super::init_gdal();
    // GDAL's own paths (`/vsicurl/…`, `NETCDF:…`) need not be files; a plain path that is no file
    // is said so, not "cannot open as a raster".
    if !path.exists()
        && !path.to_string_lossy().starts_with("/vsi")
        && !path.to_string_lossy().contains(':')
    {
        return Err(IngestError::NotFound {
            path: path.to_path_buf(),
        });
    }
    Dataset::open_ex(
        path,
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_RASTER
                | GdalOpenFlags::GDAL_OF_READONLY
                | GdalOpenFlags::GDAL_OF_VERBOSE_ERROR,
            ..Default::default()
        },
    )
    .map_err(|e| IngestError::NotOpenable {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Describes one raster. Never panics: every failure becomes the entry's `problem`.
pub fn describe_raster(path: &Path, opts: &CatalogOptions) -> CatalogEntry {
    let (info, problem) = match describe_inner(path, opts) {
        Ok((info, None)) => (Some(info), None),
        Ok((info, Some(e))) => (Some(info), Some(Problem::from(&e))),
        Err(e) => (None, Some(Problem::from(&e))),
    };
    CatalogEntry {
        path: path.to_path_buf(),
        info,
        problem,
    }
}

type Described = (RasterInfo, Option<IngestError>);

fn describe_inner(path: &Path, opts: &CatalogOptions) -> Result<Described, IngestError> {
    let ds = open_raster(path)?;
    let (width, height) = ds.raster_size();
    let band_count = ds.raster_count();
    let sidecar = read_sidecar(path)?;
    // A sensor the sidecar misspells would be guessed from the pixels without a word.
    if let Some(Err(e)) = sidecar
        .as_ref()
        .and_then(|s| s.sensor.as_deref())
        .map(str::parse::<SensorKind>)
    {
        return Err(IngestError::Sidecar {
            path: path.to_path_buf(),
            sidecar: sidecar_path(path),
            detail: e,
        });
    }
    let sha = if opts.defer_hash {
        String::new()
    } else {
        sha256_file(path)?
    };
    let file_size = std::fs::metadata(path)
        .map_err(|source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();

    let mut bands = Vec::with_capacity(band_count);
    for i in 1..=band_count {
        if let Ok(b) = ds.rasterband(i) {
            bands.push(band_info(i, &b));
        }
    }
    assign_roles(path, &mut bands, sidecar.as_ref(), opts.bands.as_deref())?;

    let gt = ds.geo_transform().ok();
    let srs = ds.spatial_ref().ok();
    let crs = srs.as_ref().map(srs::describe);
    let gcp_count = ds.gcps().len();
    let rotated = gt.map(|g| g[2] != 0.0 || g[4] != 0.0).unwrap_or(false);
    let pixel_size = gt.map(|g| {
        (
            (g[1] * g[1] + g[4] * g[4]).sqrt(),
            (g[2] * g[2] + g[5] * g[5]).sqrt(),
        )
    });
    let footprint = match (gt, srs.as_ref()) {
        (Some(g), Some(s)) => Some(footprint(&g, width, height, s)),
        (Some(g), None) => Some(Footprint {
            native: native_bounds(&g, width, height),
            wgs84: None,
            wgs84_bounds: None,
        }),
        _ => None,
    };

    let first = ds.rasterband(1).ok();
    let block_size = first.as_ref().map(|b| b.block_size());
    // A strip is exactly as wide as the image; a tile may be narrower or, on a narrow image,
    // wider (a tile exactly as wide as the image reads as a strip).
    let layout = block_size.map(|(bw, _)| {
        if bw != width {
            "tiled".to_string()
        } else {
            "striped".to_string()
        }
    });
    let compression = ds
        .metadata_item("COMPRESSION", "IMAGE_STRUCTURE")
        .unwrap_or_else(|| "NONE".to_string());
    let overviews = first
        .as_ref()
        .and_then(|b| b.overview_count().ok())
        .unwrap_or(0)
        .max(0) as usize;
    let mut files: Vec<PathBuf> = ds.file_list_paths();
    if files.is_empty() {
        files.push(path.to_path_buf());
    }

    let acquired = acquisition(path, &ds, sidecar.as_ref())?;
    let sensor = sensor(
        &ds,
        sidecar.as_ref(),
        opts.sensor,
        pixel_size,
        crs.as_ref(),
        &bands,
    );

    let info = RasterInfo {
        driver: ds.driver().short_name(),
        width,
        height,
        band_count,
        data_type: bands.first().map(|b| b.data_type.clone()),
        nodata: bands.first().and_then(|b| b.nodata),
        block_size,
        layout,
        compression,
        overviews,
        bands,
        geo_transform: gt,
        pixel_size,
        rotated,
        crs,
        footprint,
        gcp_count,
        acquired,
        sensor,
        files,
        file_size,
        sha256: sha,
    };

    let problem = usability_problem(path, &ds, &info, opts);
    Ok((info, problem))
}

/// The first reason, if any, that a described raster cannot be used.
fn usability_problem(
    path: &Path,
    ds: &Dataset,
    info: &RasterInfo,
    opts: &CatalogOptions,
) -> Option<IngestError> {
    let p = path.to_path_buf();
    if info.band_count == 0 {
        return Some(IngestError::NoBands { path: p });
    }
    match (info.geo_transform.is_some(), info.crs.is_some()) {
        (false, _) if info.gcp_count > 0 => {
            return Some(IngestError::GcpOnly {
                path: p,
                gcp_count: info.gcp_count,
            })
        }
        (false, false) => return Some(IngestError::NoGeoreferencing { path: p }),
        (false, true) => return Some(IngestError::NoGeoTransform { path: p }),
        (true, false) => return Some(IngestError::NoCrs { path: p }),
        (true, true) => {}
    }
    if let Some(g) = info.geo_transform {
        let how = if info.rotated {
            Some("rotated")
        } else if g[5] > 0.0 {
            Some("south-up")
        } else {
            None
        };
        if let Some(how) = how {
            return Some(IngestError::NotNorthUp { path: p, how });
        }
    }
    if let Err(e) = check_structure(path, ds, info) {
        return Some(e);
    }
    if opts.verify_pixels {
        if let Err(e) = decode_all_blocks(path, ds) {
            return Some(e);
        }
    }
    None
}

fn band_info(index: usize, b: &RasterBand) -> BandInfo {
    let ci = b.color_interpretation();
    let description = b.description().ok().filter(|d| !d.trim().is_empty());
    BandInfo {
        index,
        data_type: b.band_type().name(),
        role: BandRole::Unknown,
        role_source: RoleSource::Unknown,
        color_interpretation: ci.name(),
        description,
        nodata: b.no_data_value(),
        block_size: b.block_size(),
    }
}

fn role_from_color(ci: &str) -> Option<BandRole> {
    match ci {
        "Red" => Some(BandRole::Red),
        "Green" => Some(BandRole::Green),
        "Blue" => Some(BandRole::Blue),
        "Alpha" => Some(BandRole::Alpha),
        "NIR" => Some(BandRole::Nir),
        "SWIR" => Some(BandRole::Swir1),
        "RedEdge" => Some(BandRole::RedEdge),
        "Coastal" => Some(BandRole::Coastal),
        "Pan" => Some(BandRole::Pan),
        _ => None,
    }
}

/// Assigns band roles: override, then sidecar, then description, then colour interpretation.
fn assign_roles(
    path: &Path,
    bands: &mut [BandInfo],
    sidecar: Option<&Sidecar>,
    override_roles: Option<&[BandRole]>,
) -> Result<(), IngestError> {
    let from_list = |roles: Vec<BandRole>, bands: &mut [BandInfo], source: RoleSource| {
        if roles.len() > bands.len() {
            return Err(IngestError::BandRoles {
                path: path.to_path_buf(),
                detail: format!(
                    "{} roles given ({}) but the raster has only {} bands",
                    roles.len(),
                    roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(","),
                    bands.len()
                ),
            });
        }
        for (b, r) in bands.iter_mut().zip(roles) {
            b.role = r;
            b.role_source = source;
        }
        Ok(())
    };
    let single_band = bands.len() == 1;
    for b in bands.iter_mut() {
        if let Some(r) = b
            .description
            .as_deref()
            .and_then(BandRole::from_description)
        {
            b.role = r;
            b.role_source = RoleSource::Description;
        } else if let Some(r) = role_from_color(&b.color_interpretation) {
            b.role = r;
            b.role_source = RoleSource::ColorInterpretation;
        } else if b.color_interpretation == "Gray" && single_band {
            b.role = BandRole::Gray;
            b.role_source = RoleSource::ColorInterpretation;
        }
    }
    if let Some(list) = sidecar.and_then(|s| s.bands.as_ref()) {
        let roles = list
            .iter()
            .map(|s| s.parse::<BandRole>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IngestError::Sidecar {
                path: path.to_path_buf(),
                sidecar: sidecar_path(path),
                detail: e.to_string(),
            })?;
        from_list(roles, bands, RoleSource::Sidecar)?;
    }
    if let Some(roles) = override_roles {
        from_list(roles.to_vec(), bands, RoleSource::Override)?;
    }
    Ok(())
}

/// The path of a raster's sidecar: `<file>.json` (e.g. `scene.tif.json`).
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

fn read_sidecar(path: &Path) -> Result<Option<Sidecar>, IngestError> {
    let sc = sidecar_path(path);
    if !sc.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&sc).map_err(|source| IngestError::Io {
        path: sc.clone(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| IngestError::Sidecar {
            path: path.to_path_buf(),
            sidecar: sc,
            detail: e.to_string(),
        })
}

/// Parses the date/time spellings found in imagery metadata. A time with a UTC offset is taken
/// as its instant in UTC, the time scale of imagery metadata (times without an offset are read as
/// UTC too).
pub fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    parse_datetime_in(text, false)
}

/// Parses a date (or date and time) of a register as written: a time with a UTC offset keeps its
/// local date and time (`2026-10-15T00:00:00+08:00` is the 15th, the day the register means, not
/// the 14th in UTC). The spellings are those of [`parse_datetime`]; [`DATE_SPELLINGS`] lists them
/// for messages.
pub fn parse_local_datetime(text: &str) -> Option<NaiveDateTime> {
    parse_datetime_in(text, true)
}

/// The date spellings [`parse_local_datetime`] accepts, for messages refusing another.
pub const DATE_SPELLINGS: &str = "2026-01-15, 2026/1/15, 2026.01.15, 2026年1月15日 or \
    20260115, optionally with a time: 2026-01-15 08:30, 2026-01-15 08:30:00, 2026/1/15 8:30:00, \
    2026-01-15T08:30:00, 2026-01-15T08:30:00+08:00";

fn parse_datetime_in(text: &str, local: bool) -> Option<NaiveDateTime> {
    let t = text.trim().trim_end_matches('Z');
    const FORMATS: &[&str] = &[
        "%Y:%m:%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y.%m.%d %H:%M:%S",
        "%Y%m%dT%H%M%S",
    ];
    for f in FORMATS {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Some(dt);
        }
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Some(if local {
            dt.naive_local()
        } else {
            dt.naive_utc()
        });
    }
    // Dates alone, as registers in China also write them: 2026.01.15 and 2026年1月15日.
    for f in [
        "%Y-%m-%d",
        "%Y:%m:%d",
        "%Y%m%d",
        "%Y/%m/%d",
        "%Y.%m.%d",
        "%Y年%m月%d日",
    ] {
        if let Ok(d) = NaiveDate::parse_from_str(t, f) {
            return d.and_hms_opt(0, 0, 0);
        }
    }
    None
}

fn acquisition(
    path: &Path,
    ds: &Dataset,
    sidecar: Option<&Sidecar>,
) -> Result<Option<Acquisition>, IngestError> {
    if let Some(s) = sidecar.and_then(|s| s.acquired_at.as_deref()) {
        let time = parse_datetime(s).ok_or_else(|| IngestError::Sidecar {
            path: path.to_path_buf(),
            sidecar: sidecar_path(path),
            detail: format!("acquired_at '{s}' is not a date (use e.g. 2026-05-01T10:30:00)"),
        })?;
        return Ok(Some(Acquisition {
            time,
            source: MetaSource::Sidecar,
        }));
    }
    for key in [
        "ACQUISITION_DATE",
        "ACQUISITIONDATETIME",
        "ACQUISITION_DATETIME",
        "DATE_ACQUIRED",
    ] {
        if let Some(time) = ds
            .metadata_item(key, "")
            .as_deref()
            .and_then(parse_datetime)
        {
            return Ok(Some(Acquisition {
                time,
                source: MetaSource::Metadata,
            }));
        }
    }
    Ok(ds
        .metadata_item("TIFFTAG_DATETIME", "")
        .as_deref()
        .and_then(parse_datetime)
        .map(|time| Acquisition {
            time,
            source: MetaSource::TiffDatetime,
        }))
}

fn sensor(
    ds: &Dataset,
    sidecar: Option<&Sidecar>,
    override_kind: Option<SensorKind>,
    pixel_size: Option<(f64, f64)>,
    crs: Option<&CrsInfo>,
    bands: &[BandInfo],
) -> Option<Sensor> {
    let platform = sidecar
        .and_then(|s| s.platform.clone())
        .or_else(|| ds.metadata_item("SENSOR", ""))
        .or_else(|| ds.metadata_item("PLATFORM", ""));
    if let Some(kind) = sidecar
        .and_then(|s| s.sensor.as_deref())
        .and_then(|s| s.parse().ok())
    {
        return Some(Sensor {
            kind,
            platform,
            source: MetaSource::Sidecar,
        });
    }
    for key in ["SENSOR_KIND", "LANDWATCH_SENSOR"] {
        if let Some(kind) = ds.metadata_item(key, "").and_then(|s| s.parse().ok()) {
            return Some(Sensor {
                kind,
                platform,
                source: MetaSource::Metadata,
            });
        }
    }
    if let Some(kind) = override_kind {
        return Some(Sensor {
            kind,
            platform,
            source: MetaSource::Override,
        });
    }
    // A guess from the pixel size in metres: centimetre RGB imagery comes from drones.
    let metres = crs.and_then(|c| c.linear_unit_m)?;
    let (px, _) = pixel_size?;
    let px_m = px * metres;
    let has_nir = bands.iter().any(|b| b.role == BandRole::Nir);
    let kind = if px_m < 0.25 && !has_nir {
        SensorKind::Drone
    } else if px_m < 0.25 {
        SensorKind::Aerial
    } else {
        SensorKind::Satellite
    };
    Some(Sensor {
        kind,
        platform,
        source: MetaSource::Inferred,
    })
}

fn native_bounds(gt: &[f64; 6], width: usize, height: usize) -> Bounds {
    let corners = corner_points(gt, width, height, 1);
    let (mut b, rest) = (
        Bounds::from_corners(corners[0].0, corners[0].1, corners[0].0, corners[0].1),
        &corners[1..],
    );
    for &(x, y) in rest {
        b = b.union(&Bounds::from_corners(x, y, x, y));
    }
    b
}

/// Points along the raster's outline (corners plus `per_edge - 1` points per edge), clockwise.
fn corner_points(gt: &[f64; 6], width: usize, height: usize, per_edge: usize) -> Vec<(f64, f64)> {
    let apply = |c: f64, r: f64| (gt[0] + c * gt[1] + r * gt[2], gt[3] + c * gt[4] + r * gt[5]);
    let (w, h) = (width as f64, height as f64);
    let n = per_edge.max(1);
    let mut pts = Vec::with_capacity(4 * n);
    for i in 0..n {
        pts.push(apply(w * i as f64 / n as f64, 0.0));
    }
    for i in 0..n {
        pts.push(apply(w, h * i as f64 / n as f64));
    }
    for i in 0..n {
        pts.push(apply(w - w * i as f64 / n as f64, h));
    }
    for i in 0..n {
        pts.push(apply(0.0, h - h * i as f64 / n as f64));
    }
    pts
}

fn footprint(
    gt: &[f64; 6],
    width: usize,
    height: usize,
    s: &gdal::spatial_ref::SpatialRef,
) -> Footprint {
    let native = native_bounds(gt, width, height);
    let wgs84 = (|| {
        let ct = srs::transform(s, &srs::wgs84().ok()?).ok()?;
        let pts = corner_points(gt, width, height, 8);
        let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
        let mut ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
        srs::transform_points(&ct, &mut xs, &mut ys).ok()?;
        if xs.iter().chain(ys.iter()).any(|v| !v.is_finite()) {
            return None;
        }
        let mut ring: Vec<[f64; 2]> = xs.iter().zip(&ys).map(|(x, y)| [*x, *y]).collect();
        ring.push(ring[0]);
        Some(ring)
    })();
    let wgs84_bounds = wgs84.as_ref().map(|ring| {
        ring.iter().fold(
            Bounds::from_corners(ring[0][0], ring[0][1], ring[0][0], ring[0][1]),
            |b, p| b.union(&Bounds::from_corners(p[0], p[1], p[0], p[1])),
        )
    });
    Footprint {
        native,
        wgs84,
        wgs84_bounds,
    }
}

/// SHA-256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String, IngestError> {
    let io_err = |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks a TIFF's block table against the file size: a truncated file is caught without
/// decoding a single pixel. Other formats pass.
fn check_structure(path: &Path, ds: &Dataset, info: &RasterInfo) -> Result<(), IngestError> {
    if info.driver != "GTiff" {
        return Ok(());
    }
    let band_interleaved = ds
        .metadata_item("INTERLEAVE", "IMAGE_STRUCTURE")
        .map(|s| s == "BAND")
        .unwrap_or(false);
    let bands_to_check = if band_interleaved { info.band_count } else { 1 };
    for bi in 1..=bands_to_check {
        let band = ds.rasterband(bi).map_err(|e| IngestError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let (bw, bh) = band.block_size();
        if bw == 0 || bh == 0 {
            continue;
        }
        let (nx, ny) = (info.width.div_ceil(bw), info.height.div_ceil(bh));
        for by in 0..ny {
            for bx in 0..nx {
                let off = band.metadata_item(&format!("BLOCK_OFFSET_{bx}_{by}"), "TIFF");
                let size = band.metadata_item(&format!("BLOCK_SIZE_{bx}_{by}"), "TIFF");
                let (Some(off), Some(size)) = (off, size) else {
                    continue; // sparse block: allowed, reads as nodata/zero
                };
                let (Ok(off), Ok(size)) = (off.parse::<u64>(), size.parse::<u64>()) else {
                    continue;
                };
                if off + size > info.file_size {
                    return Err(IngestError::Corrupt {
                        path: path.to_path_buf(),
                        detail: format!(
                            "band {bi} block ({bx},{by}) ends at byte {} but the file has only {} bytes (truncated)",
                            off + size,
                            info.file_size
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Decodes every block of every band; the first failure names the band and block.
fn decode_all_blocks(path: &Path, ds: &Dataset) -> Result<(), IngestError> {
    let (w, h) = ds.raster_size();
    for bi in 1..=ds.raster_count() {
        let band = ds
            .rasterband(bi)
            .map_err(|e| IngestError::PixelsUnreadable {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        let (bw, bh) = band.block_size();
        let (bw, bh) = (bw.max(1), bh.max(1));
        let mut buf = vec![0f64; bw * bh];
        for y in (0..h).step_by(bh) {
            for x in (0..w).step_by(bw) {
                let (cw, ch) = (bw.min(w - x), bh.min(h - y));
                band.read_into_slice::<f64>(
                    (x as isize, y as isize),
                    (cw, ch),
                    (cw, ch),
                    &mut buf[..cw * ch],
                    None,
                )
                .map_err(|e| IngestError::PixelsUnreadable {
                    path: path.to_path_buf(),
                    detail: format!("band {bi} at pixel ({x},{y}): {e}"),
                })?;
            }
        }
    }
    Ok(())
}

trait FileListExt {
    fn file_list_paths(&self) -> Vec<PathBuf>;
}

impl FileListExt for Dataset {
    fn file_list_paths(&self) -> Vec<PathBuf> {
        crate::gdal_ext::file_list(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_date_spellings_of_imagery_metadata() {
        let want = NaiveDate::from_ymd_opt(2026, 5, 1)
            .unwrap()
            .and_hms_opt(10, 30, 0)
            .unwrap();
        assert_eq!(parse_datetime("2026:05:01 10:30:00"), Some(want));
        assert_eq!(parse_datetime("2026-05-01T10:30:00Z"), Some(want));
        assert_eq!(parse_datetime("2026-05-01T10:30:00+00:00"), Some(want));
        assert_eq!(
            parse_datetime("2026-05-01"),
            NaiveDate::from_ymd_opt(2026, 5, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
        );
        for date in [
            "2026/05/01",
            "2026.05.01",
            "2026.5.1",
            "2026年5月1日",
            "2026年05月01日",
        ] {
            assert_eq!(
                parse_datetime(date),
                NaiveDate::from_ymd_opt(2026, 5, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0),
                "{date}"
            );
        }
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime("2026年13月1日"), None);
    }

    #[test]
    fn a_register_s_dates_keep_their_day_and_imagery_times_their_instant() {
        let at = |d: u32, h: u32, m: u32| {
            NaiveDate::from_ymd_opt(2026, 10, d)
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap()
        };
        // An offset: imagery keeps the instant (in UTC), a register the date as written.
        let tz = "2026-10-15T00:00:00+08:00";
        assert_eq!(parse_datetime(tz), Some(at(14, 16, 0)));
        assert_eq!(parse_local_datetime(tz), Some(at(15, 0, 0)));
        assert_eq!(
            parse_local_datetime("2026-10-15T00:00:00Z"),
            Some(at(15, 0, 0))
        );
        // Dates with times as spreadsheets and databases write them.
        for (text, want) in [
            ("2026-10-15 00:00:00", at(15, 0, 0)),
            ("2026-10-15 08:30", at(15, 8, 30)),
            ("2026/10/1 0:00:00", at(1, 0, 0)),
            ("2026/10/15 8:30", at(15, 8, 30)),
            ("2026.10.15 08:30:00", at(15, 8, 30)),
            ("2026-10-15 08:30:00.5", at(15, 8, 30)),
        ] {
            use chrono::Timelike;
            let got = parse_local_datetime(text).map(|d| d.with_nanosecond(0).unwrap());
            assert_eq!(got, Some(want), "{text}");
        }
        assert_eq!(parse_local_datetime("15/10/2026"), None);
    }

    #[test]
    fn walks_directories_skipping_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "a.tif",
            "a.tif.json",
            "a.tif.aux.xml",
            "notes.md",
            "b.png",
            ".hidden.tif",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let files: Vec<String> = candidate_files(&[dir.path().to_path_buf()])
            .into_iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, vec!["a.tif", "b.png"]);
    }

    #[test]
    fn landwatch_s_own_output_under_an_imagery_directory_is_no_imagery() {
        // Last night's output written under the imagery: its change scores and packet chips;
        // a packet copied on its own; a store. Lookalikes without the markers are walked.
        let dir = tempfile::tempdir().unwrap();
        let files = [
            "a.tif",
            "out/summary.json",
            "out/findings.geojson",
            "out/change_score_satellite.tif",
            "out/packets/320509-20261201-0001/manifest.sig",
            "out/packets/320509-20261201-0001/after.tif",
            "copied/320509-20261201-0002/manifest.sig",
            "copied/320509-20261201-0002/before.tif",
            "store/landwatch.db",
            "store/x.tif",
            "other/summary.json",
            "other/b.tif",
        ];
        for name in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let found: Vec<String> = candidate_files(&[dir.path().to_path_buf()])
            .into_iter()
            .map(|(p, _)| {
                let rel = p.strip_prefix(dir.path()).unwrap().to_string_lossy();
                rel.replace('\\', "/")
            })
            .collect();
        assert_eq!(found, ["a.tif", "other/b.tif"]);
    }

    #[test]
    fn an_unopenable_tif_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.tif"), b"not a tiff").unwrap();
        std::fs::write(dir.path().join("readme.pdf"), b"not a raster").unwrap();
        let entries = catalog_paths(&[dir.path().to_path_buf()], &CatalogOptions::default());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].problem.as_ref().unwrap().kind, "not_openable");
        assert!(entries[0]
            .problem
            .as_ref()
            .unwrap()
            .message
            .contains("broken.tif"));
    }
}
