//! What the evidence writer needs to know about one finding: plain data, filled by the scan.

use chrono::NaiveDateTime;
use geo::MultiPolygon;
use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

/// One image date as the packet describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acquisition {
    /// When the image was taken (as catalogued; no time zone).
    pub acquired_at: Option<NaiveDateTime>,
    /// `satellite`, `drone`, `aerial`.
    pub sensor_kind: Option<String>,
    /// Platform or sensor name, e.g. `GF-2 PMS`.
    pub platform: Option<String>,
    /// The observation's name in the run (`satellite`, `drone`).
    pub observation: String,
}

/// A source raster consulted for the finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceTile {
    /// `before` or `after`.
    pub date: String,
    /// The file's path as given to landwatch.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// A permit footprint drawn in the packet, with its attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermitFootprint {
    /// Permit number.
    pub permit_id: String,
    /// Permit kind (land_use_approval, planning_permit, facility_agriculture, temporary_use).
    pub kind: String,
    /// Permitted use.
    pub permitted_use: String,
    /// First valid day (ISO date).
    pub valid_from: Option<String>,
    /// Last valid day (ISO date).
    pub valid_to: Option<String>,
    /// Footprint in the working CRS.
    pub footprint: MultiPolygon<f64>,
}

/// An image chip around the finding on the analysis grid.
#[derive(Debug, Clone)]
pub struct Chip {
    /// Red, green and blue in that order, as stored in the source (any scale).
    pub rgb: Array3<f32>,
    /// Pixels observed on this date.
    pub valid: Array2<bool>,
    /// GDAL geotransform of the chip in the working CRS.
    pub geo_transform: [f64; 6],
}

/// Everything written into one evidence packet.
#[derive(Debug, Clone)]
pub struct PacketInput {
    /// The case id, e.g. `320509-20261128-0042` (also the packet directory's name).
    pub case_id: String,
    /// The run that produced this version of the packet.
    pub run_id: String,
    /// When the packet was created (UTC, RFC 3339). Lives only in the manifest.
    pub created_at: String,
    /// The finding's stable id.
    pub finding_id: String,
    /// Parcel id.
    pub parcel_id: String,
    /// Approved use of the parcel (`farmland`, …) and its Chinese name.
    pub approved_use: String,
    /// Chinese name of the approved use (耕地, …).
    pub approved_use_zh: String,
    /// Control layers the parcel lies in (`basic_farmland`, `eco_redline`).
    pub control_layers: Vec<String>,
    /// Suspected violation kind (`building_on_farmland`, …).
    pub kind: String,
    /// Bilingual label of the kind, e.g. `占用耕地建房 / building on farmland`.
    pub kind_label: String,
    /// The rule that fired.
    pub rule_id: String,
    /// Severity (`low`, `medium`, `high`).
    pub severity: String,
    /// Land-cover transition (`vegetation_to_built`, …).
    pub transition: String,
    /// Suspected area in m² (for building beyond a permit: the excess only).
    pub area_m2: f64,
    /// The same in mu.
    pub area_mu: f64,
    /// Confidence in 0–1.
    pub confidence: f64,
    /// The full rule trace (measured numbers, thresholds, permits consulted and why).
    pub rule_trace: serde_json::Value,
    /// Before date.
    pub before: Acquisition,
    /// After date.
    pub after: Acquisition,
    /// Source rasters with their hashes.
    pub sources: Vec<SourceTile>,
    /// The working CRS (`EPSG:4549` or WKT).
    pub working_crs: String,
    /// The change polygon in the working CRS.
    pub change_polygon: MultiPolygon<f64>,
    /// The parcel polygon in the working CRS.
    pub parcel_polygon: MultiPolygon<f64>,
    /// Permits consulted.
    pub permits: Vec<PermitFootprint>,
    /// Before chip.
    pub before_chip: Chip,
    /// After chip.
    pub after_chip: Chip,
    /// Change score on the chip's grid (NaN where unobserved).
    pub score_chip: Array2<f32>,
    /// Every parameter of the run (detection, rules, grid), for the manifest.
    pub parameters: serde_json::Value,
    /// SHA-256 of the configuration file (and rules file) the run used.
    pub config_sha256: String,
    /// The detector (`spectral`, or the ONNX model's name, version, licence, training data).
    pub detector: serde_json::Value,
    /// landwatch version.
    pub software_version: String,
    /// The git commit landwatch was built from (or `unknown`).
    pub git_commit: String,
}
