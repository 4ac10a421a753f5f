//! The run configuration (`landwatch.toml`): parsed and validated once, then passed by reference.
//!
//! Relative paths in the file are relative to the file's own directory, so a configuration can be
//! moved together with its data.

use crate::bands::BandRole;
use crate::grid::{DEFAULT_CELL_SIZE, DEFAULT_HALO};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A configuration problem, naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped fields.
    #[error("{path}: invalid configuration: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the line and field).
        detail: String,
    },
    /// A field has a value that cannot work.
    #[error("{path}: [{section}] {field}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The TOML section.
        section: &'static str,
        /// The field.
        field: &'static str,
        /// Why and what to do.
        detail: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who runs landwatch and where.
    #[serde(default)]
    pub project: ProjectConfig,
    /// Where the imagery is.
    #[serde(default)]
    pub imagery: ImageryConfig,
    /// Where the parcels and permits are.
    #[serde(default)]
    pub parcels: ParcelsConfig,
    /// The analysis grid.
    #[serde(default)]
    pub grid: GridConfig,
    /// Change detection.
    #[serde(default)]
    pub detect: crate::detect::DetectParams,
    /// The rules.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Which detector runs (spectral, or a learned ONNX model) and how detectors combine.
    #[serde(default)]
    pub detector: crate::detect::DetectorConfig,
    /// Where results go.
    #[serde(default)]
    pub output: OutputConfig,
    /// Evidence packets.
    #[serde(default)]
    pub evidence: EvidenceConfig,
    /// The store of runs and cases, and how findings continue cases.
    #[serde(default)]
    pub store: StoreConfig,
    /// The directory the configuration file is in; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[project]`: who runs landwatch and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// A name for reports.
    #[serde(default = "default_project_name")]
    pub name: String,
    /// The administrative region code that prefixes case ids (e.g. `320509` for Wujiang).
    #[serde(default = "default_region_code")]
    pub region_code: String,
}

fn default_project_name() -> String {
    "landwatch".to_string()
}

fn default_region_code() -> String {
    "000000".to_string()
}

impl Default for ProjectConfig {
    fn default() -> Self {
        ProjectConfig {
            name: default_project_name(),
            region_code: default_region_code(),
        }
    }
}

/// A list of paths, or one path written alone (`after = "imagery/after"` as well as
/// `after = ["imagery/after"]`).
fn one_or_more_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    struct Paths;
    impl<'de> serde::de::Visitor<'de> for Paths {
        type Value = Vec<PathBuf>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a path or a list of paths, e.g. [\"imagery/after\"]")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![PathBuf::from(v)])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut paths = Vec::new();
            while let Some(p) = seq.next_element::<PathBuf>()? {
                paths.push(p);
            }
            Ok(paths)
        }
    }
    d.deserialize_any(Paths)
}

/// `[imagery]`: before and after imagery (files or directories).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageryConfig {
    /// Rasters (or directories of rasters) of the earlier date.
    #[serde(default, deserialize_with = "one_or_more_paths")]
    pub before: Vec<PathBuf>,
    /// Rasters (or directories of rasters) of the later date(s).
    #[serde(default, deserialize_with = "one_or_more_paths")]
    pub after: Vec<PathBuf>,
    /// Band roles of the before imagery when the files do not say, e.g. `"blue,green,red,nir"`.
    pub bands_before: Option<String>,
    /// Band roles of the after imagery when the files do not say.
    pub bands_after: Option<String>,
}

/// `[parcels]`: the approved land-use parcels and the permits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParcelsConfig {
    /// Parcel polygons (GeoPackage, Shapefile, GeoJSON).
    pub path: Option<PathBuf>,
    /// Layer name inside the file (default: the file's only layer, or of several the one named
    /// `parcels` or `DLTB`; a file of several without such a layer is refused, naming them).
    pub layer: Option<String>,
    /// The parcel id attribute.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// The approved-use attribute.
    #[serde(default = "default_use_field")]
    pub use_field: String,
    /// The layer's own approved-use values mapped to landwatch's classes (or to uses a rules file
    /// names), tried before the land-use codes and names landwatch knows (docs/RULES.md).
    #[serde(default)]
    pub uses: std::collections::BTreeMap<String, String>,
    /// The attribute marking basic farmland (yes/no), when it is not `basic_farmland`: a
    /// register's own name such as `是否基本农田` or `JBNT`; named, it must be in the layer.
    pub basic_farmland_field: Option<String>,
    /// The attribute marking the ecological red line, when it is not `eco_redline`.
    pub eco_redline_field: Option<String>,
    /// The CRS of the coordinates of the parcels, permits and control layers whose files say
    /// none (a Shapefile without its `.prj`, a GeoJSON file of metres without its `crs` member,
    /// which GDAL takes for degrees); a file that says one is read in its own.
    pub crs: Option<String>,
    /// Permit polygons (optional).
    pub permits: Option<PathBuf>,
    /// Layer name inside the permits file (default: the file's only layer, or of several the one
    /// named `permits`).
    pub permits_layer: Option<String>,
    /// Control layers given as separate polygon layers (basic farmland, ecological red line).
    #[serde(default)]
    pub control: Vec<ControlLayer>,
}

/// `[[parcels.control]]`: a control layer as its own polygon layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlLayer {
    /// The file.
    pub path: PathBuf,
    /// Layer name (default: the file's only layer, or of several the one named as `kind`).
    pub layer: Option<String>,
    /// `basic_farmland` or `eco_redline`.
    pub kind: String,
}

/// `[rules]`: which rules file to use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// A rules file (default: the rules built into landwatch, see `landwatch init`).
    pub path: Option<PathBuf>,
}

fn default_id_field() -> String {
    "parcel_id".to_string()
}

fn default_use_field() -> String {
    "approved_use".to_string()
}

impl Default for ParcelsConfig {
    fn default() -> Self {
        ParcelsConfig {
            path: None,
            layer: None,
            id_field: default_id_field(),
            use_field: default_use_field(),
            uses: Default::default(),
            basic_farmland_field: None,
            eco_redline_field: None,
            crs: None,
            permits: None,
            permits_layer: None,
            control: Vec::new(),
        }
    }
}

/// `[grid]`: the analysis grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// CRS of the grid (default: the parcels' CRS, or the imagery's projected CRS when the
    /// parcels' is geographic).
    pub crs: Option<String>,
    /// Pixel size in CRS units (metres for a projected CRS). Default: the first raster's.
    pub pixel_size: Option<f64>,
    /// Cell edge in pixels.
    #[serde(default = "default_cell_size")]
    pub cell_size: usize,
    /// Halo in pixels around each cell.
    #[serde(default = "default_halo")]
    pub halo: usize,
    /// North-west corner of the pixel lattice `[x, y]`; pin it to keep cell ids stable when the
    /// area grows. Default: derived from the area, snapped to whole cells.
    pub origin: Option<[f64; 2]>,
}

fn default_cell_size() -> usize {
    DEFAULT_CELL_SIZE
}

fn default_halo() -> usize {
    DEFAULT_HALO
}

impl GridConfig {
    /// Checks the values a grid cannot work with; on failure, the field and why. The config's
    /// validation and `landwatch grid`'s command-line overrides share it, so that neither prints a
    /// grid of no pixels (a zero pixel or cell size gives NaN bounds) or millions of cells.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(px) = self.pixel_size.filter(|p| !(p.is_finite() && *p > 0.0)) {
            return Err((
                "pixel_size",
                format!("must be a positive number of CRS units, got {px}"),
            ));
        }
        if !(16..=16384).contains(&self.cell_size) {
            return Err((
                "cell_size",
                format!(
                    "must be between 16 and 16384 pixels, got {}",
                    self.cell_size
                ),
            ));
        }
        if self.halo > self.cell_size / 2 {
            return Err((
                "halo",
                format!(
                    "must be at most half the cell size ({}), got {}",
                    self.cell_size / 2,
                    self.halo
                ),
            ));
        }
        if let Some(crs) = &self.crs {
            crate::ingest::srs::parse_crs(crs)
                .map_err(|e| ("crs", format!("'{crs}' is not a CRS GDAL understands: {e}")))?;
        }
        Ok(())
    }
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig {
            crs: None,
            pixel_size: None,
            cell_size: default_cell_size(),
            halo: default_halo(),
            origin: None,
        }
    }
}

/// `[evidence]`: the packets a scan writes for its findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Write packets at all (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The bureau's private signing key (`landwatch keygen`). Without one, the scan makes a key
    /// under `<output dir>/keys/` on first use and says so: register its fingerprint, or name
    /// the bureau's key here.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Also write one `.zip` per packet.
    #[serde(default)]
    pub zip: bool,
    /// Ground margin shown around a finding, in metres (default 30).
    #[serde(default = "default_margin_m")]
    pub margin_m: f64,
    /// Smallest chip edge in pixels (default 160).
    #[serde(default = "default_min_chip")]
    pub min_chip_px: usize,
    /// Largest chip edge in pixels (default 800); a larger finding is shown around its centre.
    #[serde(default = "default_max_chip")]
    pub max_chip_px: usize,
}

/// The widest `[evidence] margin_m`, metres.
const MAX_MARGIN_M: f64 = 1000.0;
/// The smallest and largest chip edge, pixels (`[evidence] min_chip_px`, `max_chip_px`).
const MIN_CHIP_PX: usize = 32;
const MAX_CHIP_PX: usize = 4096;

fn yes() -> bool {
    true
}
fn default_margin_m() -> f64 {
    30.0
}
fn default_min_chip() -> usize {
    160
}
fn default_max_chip() -> usize {
    800
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            enabled: true,
            key: None,
            zip: false,
            margin_m: default_margin_m(),
            min_chip_px: default_min_chip(),
            max_chip_px: default_max_chip(),
        }
    }
}

/// `[output]`: where results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Output directory.
    #[serde(default = "default_output_dir")]
    pub dir: PathBuf,
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("landwatch-out")
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: default_output_dir(),
        }
    }
}

/// `[store]`: the store of runs, cases and their history (`landwatch.db`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite store (default: `landwatch.db` in the output directory). Keep it on a local
    /// file system.
    pub path: Option<PathBuf>,
    /// A finding continues a case on the same parcel when
    /// `area(finding ∩ case) / min(area(finding), area(case))` is at least this.
    #[serde(default = "default_overlap_ratio")]
    pub overlap_ratio: f64,
    /// A case an analyst dismissed is opened again for review when its change grows past its
    /// area at the dismissal by this share (0.5: half as large again) … (or when it becomes a
    /// kind of a higher severity, whatever its area)
    #[serde(default = "default_reopen_growth")]
    pub reopen_growth: f64,
    /// … and by at least this many square metres (a night's noise in a finding's outline is
    /// not growth).
    #[serde(default = "default_reopen_growth_m2")]
    pub reopen_growth_m2: f64,
}

fn default_overlap_ratio() -> f64 {
    0.3
}

fn default_reopen_growth() -> f64 {
    0.5
}

fn default_reopen_growth_m2() -> f64 {
    100.0
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: None,
            overlap_ratio: default_overlap_ratio(),
            reopen_growth: default_reopen_growth(),
            reopen_growth_m2: default_reopen_growth_m2(),
        }
    }
}

/// The store's file name in the output directory when `[store] path` is not given.
pub const DEFAULT_STORE_FILE: &str = "landwatch.db";

impl GridConfig {
    /// Whether the file pins the grid (a CRS, pixel size or origin); otherwise commands that can
    /// work on an image's own pixel grid do so.
    pub fn is_pinned(&self) -> bool {
        self.crs.is_some() || self.pixel_size.is_some() || self.origin.is_some()
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_toml(&text, path, &base)
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        // Absolute, so that every path resolved from the file is the same however the file was
        // named (`landwatch.toml`, `./site/landwatch.toml` or its full path): paths are part of
        // what an incremental run compares and of what the store and the packets record.
        let base = if base_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base_dir
        };
        cfg.base_dir = std::fs::canonicalize(base)
            .or_else(|_| std::path::absolute(base))
            .unwrap_or_else(|_| base.to_path_buf());
        cfg.validate(path)?;
        // The model descriptor is named relative to this file, like every other path; it is
        // resolved here because the detector is built from `[detector]` alone.
        if let Some(m) = cfg.detector.model.take() {
            cfg.detector.model = Some(cfg.resolve(&m));
        }
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |section, field, detail: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            section,
            field,
            detail,
        };
        if let Err((field, detail)) = self.grid.check() {
            return Err(invalid("grid", field, detail));
        }
        // A packet's chips: a margin of ground around the finding, a size in pixels between a
        // smallest and a largest edge (a chip of thousands of pixels a side is no field map).
        let e = &self.evidence;
        if !(e.margin_m.is_finite() && (0.0..=MAX_MARGIN_M).contains(&e.margin_m)) {
            return Err(invalid(
                "evidence",
                "margin_m",
                format!(
                    "must be from 0 to {MAX_MARGIN_M} metres of ground around a finding, got {}",
                    e.margin_m
                ),
            ));
        }
        if !(MIN_CHIP_PX..=MAX_CHIP_PX).contains(&e.max_chip_px) {
            return Err(invalid(
                "evidence",
                "max_chip_px",
                format!(
                    "must be from {MIN_CHIP_PX} to {MAX_CHIP_PX} pixels, got {}",
                    e.max_chip_px
                ),
            ));
        }
        if !(MIN_CHIP_PX..=e.max_chip_px).contains(&e.min_chip_px) {
            return Err(invalid(
                "evidence",
                "min_chip_px",
                format!(
                    "must be from {MIN_CHIP_PX} pixels to max_chip_px ({}), got {}",
                    e.max_chip_px, e.min_chip_px
                ),
            ));
        }
        // The grid's CRS was checked with the rest of [grid] above.
        if let Some(crs) = &self.parcels.crs {
            crate::ingest::srs::parse_crs(crs).map_err(|e| {
                invalid(
                    "parcels",
                    "crs",
                    format!("'{crs}' is not a CRS GDAL understands: {e}"),
                )
            })?;
        }
        for (field, roles) in [
            ("bands_before", &self.imagery.bands_before),
            ("bands_after", &self.imagery.bands_after),
        ] {
            if let Some(r) = roles {
                crate::bands::parse_role_list(r)
                    .map_err(|e| invalid("imagery", field, e.to_string()))?;
            }
        }
        for c in &self.parcels.control {
            if !["basic_farmland", "eco_redline"].contains(&c.kind.as_str()) {
                return Err(invalid(
                    "parcels.control",
                    "kind",
                    format!(
                        "'{}' is not a control layer kind (basic_farmland, eco_redline)",
                        c.kind
                    ),
                ));
            }
        }
        if let Some((from, _)) = self
            .parcels
            .uses
            .iter()
            .find(|(k, v)| k.trim().is_empty() || v.trim().is_empty())
        {
            return Err(invalid(
                "parcels",
                "uses",
                format!(
                    "'{from}' maps to no use: each entry maps one of the layer's values to a use, \
                     e.g. \"0103\" = \"farmland\""
                ),
            ));
        }
        if let Err(detail) = self.detect.validate() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                section: "detect",
                field: "parameters",
                detail,
            });
        }
        self.detector
            .validate()
            .map_err(|(field, detail)| invalid("detector", field, detail))?;
        let r = self.store.overlap_ratio;
        if !(r > 0.0 && r <= 1.0) {
            return Err(invalid(
                "store",
                "overlap_ratio",
                format!("must be a share in (0, 1], e.g. 0.3; got {r}"),
            ));
        }
        for (field, v, e) in [
            ("reopen_growth", self.store.reopen_growth, "0.5"),
            ("reopen_growth_m2", self.store.reopen_growth_m2, "100"),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(
                    "store",
                    field,
                    format!("must be a number ≥ 0, e.g. {e}; got {v}"),
                ));
            }
        }
        if self.project.region_code.trim().is_empty()
            || !self
                .project
                .region_code
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "project",
                "region_code",
                format!(
                    "must be letters and digits only (it prefixes case ids), got '{}'",
                    self.project.region_code
                ),
            ));
        }
        Ok(())
    }

    /// Resolves a path from the file against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The before imagery paths, resolved.
    pub fn before_paths(&self) -> Vec<PathBuf> {
        self.imagery
            .before
            .iter()
            .map(|p| self.resolve(p))
            .collect()
    }

    /// The after imagery paths, resolved.
    pub fn after_paths(&self) -> Vec<PathBuf> {
        self.imagery.after.iter().map(|p| self.resolve(p)).collect()
    }

    /// The output directory, resolved.
    pub fn output_dir(&self) -> PathBuf {
        self.resolve(&self.output.dir)
    }

    /// The store file, resolved: `[store] path`, else `landwatch.db` in the output directory.
    pub fn store_path(&self) -> PathBuf {
        match &self.store.path {
            Some(p) => self.resolve(p),
            None => self.output_dir().join(DEFAULT_STORE_FILE),
        }
    }

    /// Band-role override for one date, parsed (validated in `load`).
    pub fn band_override(&self, after: bool) -> Option<Vec<BandRole>> {
        let s = if after {
            self.imagery.bands_after.as_deref()
        } else {
            self.imagery.bands_before.as_deref()
        }?;
        crate::bands::parse_role_list(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("landwatch.toml"), Path::new("/data/site"))
    }

    #[test]
    fn defaults_and_relative_paths() {
        let cfg = parse("[imagery]\nbefore = [\"img/before\"]\n").unwrap();
        assert_eq!(cfg.grid.cell_size, 1024);
        assert_eq!(
            cfg.before_paths(),
            vec![PathBuf::from("/data/site/img/before")]
        );
        assert_eq!(cfg.output_dir(), PathBuf::from("/data/site/landwatch-out"));
        assert_eq!(
            cfg.store_path(),
            PathBuf::from("/data/site/landwatch-out/landwatch.db")
        );
        assert_eq!(cfg.store.overlap_ratio, 0.3);
    }

    /// A cron line's config written by hand: one folder of imagery given alone, not as a list.
    #[test]
    fn imagery_given_as_one_path_or_a_list() {
        let one = parse("[imagery]\nbefore = \"img/before\"\nafter = \"img/after\"\n").unwrap();
        let list =
            parse("[imagery]\nbefore = [\"img/before\"]\nafter = [\"img/after\"]\n").unwrap();
        assert_eq!(one.imagery, list.imagery);
        assert_eq!(
            one.after_paths(),
            vec![PathBuf::from("/data/site/img/after")]
        );
        let e = parse("[imagery]\nafter = 5\n").unwrap_err().to_string();
        assert!(e.contains("a path or a list of paths"), "{e}");
    }

    #[test]
    fn protection_flag_fields_are_named_in_the_parcels_section() {
        let cfg = parse("[parcels]\nbasic_farmland_field = \"是否基本农田\"\n").unwrap();
        assert_eq!(
            cfg.parcels.basic_farmland_field.as_deref(),
            Some("是否基本农田")
        );
        assert_eq!(cfg.parcels.eco_redline_field, None);
    }

    #[test]
    fn the_store_section() {
        let cfg = parse("[store]\npath = \"db/lw.db\"\noverlap_ratio = 0.5\n").unwrap();
        assert_eq!(cfg.store_path(), PathBuf::from("/data/site/db/lw.db"));
        assert_eq!(cfg.store.overlap_ratio, 0.5);
        let e = parse("[store]\noverlap_ratio = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[store] overlap_ratio"), "{e}");
        assert_eq!(
            (cfg.store.reopen_growth, cfg.store.reopen_growth_m2),
            (0.5, 100.0)
        );
        let cfg = parse("[store]\nreopen_growth = 1.0\nreopen_growth_m2 = 50\n").unwrap();
        assert_eq!(
            (cfg.store.reopen_growth, cfg.store.reopen_growth_m2),
            (1.0, 50.0)
        );
        let e = parse("[store]\nreopen_growth = -1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[store] reopen_growth"), "{e}");
    }

    #[test]
    fn evidence_values_out_of_range_are_refused_naming_the_key_and_range() {
        let cfg =
            parse("[evidence]\nmargin_m = 0\nmin_chip_px = 100\nmax_chip_px = 100\n").unwrap();
        assert_eq!(cfg.evidence.min_chip_px, 100);
        for (text, key, range) in [
            (
                "margin_m = -30",
                "[evidence] margin_m",
                "from 0 to 1000 metres",
            ),
            (
                "margin_m = 1e9",
                "[evidence] margin_m",
                "from 0 to 1000 metres",
            ),
            (
                "min_chip_px = 900\nmax_chip_px = 100",
                "[evidence] min_chip_px",
                "to max_chip_px (100), got 900",
            ),
            (
                "min_chip_px = 0",
                "[evidence] min_chip_px",
                "from 32 pixels",
            ),
            (
                "max_chip_px = 100000",
                "[evidence] max_chip_px",
                "from 32 to 4096 pixels",
            ),
        ] {
            let e = parse(&format!("[evidence]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains(range), "{text}: {e}");
        }
    }

    #[test]
    fn the_parcels_own_uses() {
        let cfg = parse("[parcels.uses]\n\"NT-1\" = \"farmland\"\n\"0604\" = \"construction\"\n")
            .unwrap();
        assert_eq!(cfg.parcels.uses.len(), 2);
        assert_eq!(cfg.parcels.uses["NT-1"], "farmland");
        let e = parse("[parcels.uses]\n\"NT-1\" = \" \"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[parcels] uses") && e.contains("'NT-1' maps to no use"),
            "{e}"
        );
    }

    #[test]
    fn the_parcels_crs_is_checked() {
        let cfg = parse("[parcels]\ncrs = \"EPSG:4528\"\n").unwrap();
        assert_eq!(cfg.parcels.crs.as_deref(), Some("EPSG:4528"));
        let e = parse("[parcels]\ncrs = \"EPSG:999999\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[parcels] crs") && e.contains("EPSG:999999"),
            "{e}"
        );
    }

    #[test]
    fn the_detector_section_resolves_the_model_against_the_file() {
        let cfg =
            parse("[detector]\nkind = \"onnx\"\nmodel = \"models/cd.toml\"\ncombine = \"both\"\n")
                .unwrap();
        assert_eq!(cfg.detector.kind, crate::detect::DetectorKind::Onnx);
        assert_eq!(
            cfg.detector.model,
            Some(PathBuf::from("/data/site/models/cd.toml"))
        );
        assert_eq!(
            cfg.detector.combine,
            Some(crate::detect::CombinePolicy::Both)
        );
        assert_eq!(
            parse("").unwrap().detector.kind,
            crate::detect::DetectorKind::Spectral
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_field() {
        let e = parse("[grid]\npixel_sise = 0.5\n").unwrap_err().to_string();
        assert!(e.contains("pixel_sise"), "{e}");
        let e = parse("[grid]\npixel_size = -1\n").unwrap_err().to_string();
        assert!(e.contains("[grid] pixel_size"), "{e}");
        let e = parse("[grid]\ncrs = \"EPSG:999999\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[grid] crs"), "{e}");
        let e = parse("[detector]\nkind = \"onnx\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[detector] model"), "{e}");
        let e = parse("[detector]\nkind = \"cnn\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cnn"), "{e}");
        let e = parse("[imagery]\nbands_after = \"red,purple\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("purple"), "{e}");
    }
}
