//! A learned change detector: a bureau's own ONNX model, described by a TOML descriptor, run in
//! pure Rust with tract.
//!
//! The model is loaded and optimised once per process ([`OnnxModel::load_shared`]) and shared by
//! every worker thread. Per cell it computes a change probability over the whole read window by
//! sliding-window inference ([`window`]) and hands it to the spectral detector's
//! [`SpectralDetector::detect_with`], which supplies everything else a result needs (clouds and
//! unobserved pixels, covers and transitions from the after image's land-cover cues, morphology,
//! regions, confidence), combined with its own change pixels as the [`Combine`] policy says.
//!
//! The model file is the only file this module reads, once, when the detector is built; per-cell
//! detection does no IO.

pub mod descriptor;
pub mod model;
pub mod window;

use super::{
    CellInput, CellResult, Combine, DetectError, DetectParams, Detector, GivenChange,
    SpectralDetector,
};
use crate::bands::BandRole;
pub use descriptor::{InputLayout, ModelDescriptor, OutputKind};
pub use model::OnnxModel;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A problem with a model or its descriptor, naming the descriptor file and the field.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The descriptor could not be read.
    #[error("{path}: cannot read the model descriptor: {source}")]
    DescriptorRead {
        /// The descriptor file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The descriptor is not valid TOML, misses a section or has unknown or mistyped fields.
    #[error("{path}: invalid model descriptor: {detail}")]
    DescriptorParse {
        /// The descriptor file.
        path: PathBuf,
        /// The parser's message (names the line and field).
        detail: String,
    },
    /// A descriptor field is invalid or does not match the model.
    #[error("{descriptor}: [{section}] {field}: {detail}")]
    Field {
        /// The descriptor file.
        descriptor: PathBuf,
        /// The TOML section.
        section: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong and what the model has instead.
        detail: String,
    },
    /// The model file is missing or unreadable.
    #[error("{descriptor}: [model] file: cannot read {file}: {source}")]
    ModelFile {
        /// The descriptor file.
        descriptor: PathBuf,
        /// The model file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model file is not an ONNX model tract can run.
    #[error("{descriptor}: [model] file: {file} {detail}")]
    ModelInvalid {
        /// The descriptor file.
        descriptor: PathBuf,
        /// The model file.
        file: PathBuf,
        /// What tract said.
        detail: String,
    },
    /// Running the model failed.
    #[error("model {model}: inference failed: {detail}")]
    Inference {
        /// The model's name.
        model: String,
        /// What failed.
        detail: String,
    },
}

impl OnnxModel {
    /// Loads a model once per process: later calls with the same descriptor (by canonical path)
    /// return the same shared, already optimised model.
    pub fn load_shared(descriptor_path: &Path) -> Result<Arc<OnnxModel>, OnnxError> {
        type Cache = Mutex<HashMap<PathBuf, Arc<OnnxModel>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let key =
            std::fs::canonicalize(descriptor_path).map_err(|source| OnnxError::DescriptorRead {
                path: descriptor_path.to_path_buf(),
                source,
            })?;
        let cache = CACHE.get_or_init(Default::default);
        let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(&key) {
            return Ok(m.clone());
        }
        let model = Arc::new(OnnxModel::load(descriptor_path)?);
        map.insert(key, model.clone());
        Ok(model)
    }
}

/// The learned detector: an ONNX model's change probability, combined with the spectral
/// detector's cues as the policy says.
#[derive(Debug, Clone)]
pub struct OnnxDetector {
    model: Arc<OnnxModel>,
    spectral: SpectralDetector,
    combine: Combine,
}

impl OnnxDetector {
    /// A detector around a loaded model; `params` configure the spectral side (clouds, covers,
    /// morphology, minimum mapping units, and its own change pixels for `Both`/`Either`).
    pub fn new(model: Arc<OnnxModel>, params: DetectParams, combine: Combine) -> OnnxDetector {
        OnnxDetector {
            model,
            spectral: SpectralDetector { params },
            combine,
        }
    }

    /// The model.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// The combination policy.
    pub fn combine(&self) -> Combine {
        self.combine
    }
}

/// The policy's name as the configuration spells it.
pub fn combine_name(c: Combine) -> &'static str {
    match c {
        Combine::Replace => "learned",
        Combine::Both => "both",
        Combine::Either => "either",
    }
}

impl Detector for OnnxDetector {
    fn name(&self) -> String {
        match self.combine {
            Combine::Replace => format!("onnx:{}", self.model.name()),
            c => format!("onnx:{}+spectral:{}", self.model.name(), combine_name(c)),
        }
    }

    fn check_bands(&self, before: &[BandRole], after: &[BandRole]) -> Result<(), String> {
        let d = &self.model.descriptor;
        for (date, roles) in [("before", before), ("after", after)] {
            if let Some(missing) = d.input.bands.iter().find(|b| !roles.contains(b)) {
                return Err(format!(
                    "{}: [input] bands: the model needs a {missing} band, but the {date} imagery has {}; name the bands with --bands-{date} or a sidecar",
                    d.path.display(),
                    roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
                ));
            }
        }
        // Regions get their transition from the spectral land-cover cues, which need the visible
        // bands whatever the model takes.
        self.spectral.check_bands(before, after).map_err(|e| {
            format!("{e} (the learned detector uses them for the land-cover cues that name each region's transition)")
        })
    }

    fn detect(&self, input: &CellInput<'_>) -> Result<CellResult, DetectError> {
        let score = self
            .model
            .probability(input.before, input.after)
            .map_err(|e| DetectError::Model {
                cell: input.cell_id.to_string(),
                detail: e.to_string(),
            })?;
        let given = GivenChange {
            score,
            threshold: self.model.descriptor.output.threshold,
            combine: self.combine,
        };
        self.spectral.detect_with(input, Some(&given))
    }

    fn describe(&self) -> serde_json::Value {
        let d = &self.model.descriptor;
        json!({
            "kind": "onnx",
            "name": self.name(),
            "combine": combine_name(self.combine),
            "model": {
                "name": d.model.name,
                "version": d.model.version,
                "license": d.model.license,
                "trained_on": d.model.trained_on,
                "file": d.model.file,
                "sha256": self.model.sha256,
                "descriptor": d.path,
                "descriptor_sha256": self.model.descriptor_sha256,
            },
            "input": d.input,
            "output": d.output,
            "runtime": format!("tract-onnx {}", TRACT_VERSION),
        })
    }

    fn pixel_size_m(&self) -> Option<f64> {
        self.model.descriptor.input.pixel_size_m
    }

    fn score_description(&self) -> String {
        match self.combine {
            Combine::Replace => format!(
                "change probability (model {} {}); threshold {}",
                self.model.name(),
                self.model.descriptor.model.version,
                self.model.descriptor.output.threshold
            ),
            c => format!(
                "combined change score ({}: model {} and spectral, each relative to its threshold, in spectral units)",
                combine_name(c),
                self.model.name()
            ),
        }
    }
}

/// The tract version landwatch is built with (recorded in evidence).
pub const TRACT_VERSION: &str = "0.23";
