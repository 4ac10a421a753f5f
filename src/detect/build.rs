//! Choosing and building the detector a run uses: the `[detector]` section of the configuration
//! (or `--detector`, `--model`, `--combine`), turned into a shared `Arc<dyn Detector>` once per
//! run, before any imagery is read.

use super::onnx::{OnnxDetector, OnnxError, OnnxModel};
use super::{Combine, DetectParams, Detector, SpectralDetector};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// Which detector runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// The classical spectral detector alone.
    #[default]
    Spectral,
    /// A learned ONNX model (with the spectral detector's land-cover cues).
    Onnx,
}

impl FromStr for DetectorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spectral" => Ok(DetectorKind::Spectral),
            "onnx" => Ok(DetectorKind::Onnx),
            _ => Err(format!(
                "unknown detector '{s}' (expected \"spectral\" or \"onnx\")"
            )),
        }
    }
}

/// How a learned model's change pixels combine with the spectral detector's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CombinePolicy {
    /// The model alone decides what changed.
    #[default]
    Learned,
    /// A pixel changed only where both detectors say so (fewer false alarms).
    Both,
    /// A pixel changed where either detector says so (fewer misses); regions only one detector
    /// saw get a lower confidence.
    Either,
}

impl CombinePolicy {
    /// The policy as the spectral detector applies it.
    pub fn combine(self) -> Combine {
        match self {
            CombinePolicy::Learned => Combine::Replace,
            CombinePolicy::Both => Combine::Both,
            CombinePolicy::Either => Combine::Either,
        }
    }
}

impl FromStr for CombinePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "learned" => Ok(CombinePolicy::Learned),
            "both" => Ok(CombinePolicy::Both),
            "either" => Ok(CombinePolicy::Either),
            _ => Err(format!(
                "unknown combination '{s}' (expected \"learned\", \"both\" or \"either\")"
            )),
        }
    }
}

/// `[detector]`: which detector runs, and for a learned one, which model and how it combines
/// with the spectral detector.
///
/// ```toml
/// [detector]
/// kind = "onnx"                 # "spectral" (default) or "onnx"
/// model = "models/cd/model.toml"  # the model descriptor, relative to the configuration file
/// combine = "learned"           # "learned" (default), "both" or "either"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Which detector.
    #[serde(default)]
    pub kind: DetectorKind,
    /// The model descriptor (TOML) for `kind = "onnx"`; after `Config::load` it is resolved
    /// against the configuration file's directory.
    pub model: Option<PathBuf>,
    /// How the model's changes combine with the spectral detector's (`kind = "onnx"` only;
    /// default `learned`).
    pub combine: Option<CombinePolicy>,
}

impl DetectorConfig {
    /// Checks that the fields fit together; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.kind {
            DetectorKind::Onnx if self.model.is_none() => Err((
                "model",
                "kind = \"onnx\" needs the model descriptor: model = \"path/to/model.toml\"".into(),
            )),
            DetectorKind::Spectral if self.model.is_some() => {
                Err(("model", "a model is only used with kind = \"onnx\"".into()))
            }
            DetectorKind::Spectral if self.combine.is_some() => Err((
                "combine",
                "the combination policy is only used with kind = \"onnx\"".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The ground pixel size the configured detector expects, in metres, read from the model
    /// descriptor alone (the model is not loaded): for commands that plan a grid without
    /// running detection.
    pub fn pixel_size_m(&self) -> Result<Option<f64>, BuildError> {
        match (self.kind, &self.model) {
            (DetectorKind::Onnx, Some(path)) => {
                Ok(super::onnx::ModelDescriptor::load(path)?.input.pixel_size_m)
            }
            _ => Ok(None),
        }
    }
}

/// Why a detector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The `[detector]` fields do not fit together.
    #[error("[detector] {field}: {detail}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The model or its descriptor is unusable.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
}

/// Builds the detector a run uses, once, before any imagery is read.
///
/// For `kind = "onnx"` this reads the descriptor, loads and optimises the model (once per
/// process: building again with the same descriptor reuses it) and checks the descriptor against
/// the model, so that every misconfiguration fails here with an error naming the descriptor and
/// the field. The band roles are checked later against the imagery, with
/// [`Detector::check_bands`], before any cell is read.
pub fn build_detector(
    config: &DetectorConfig,
    params: &DetectParams,
) -> Result<Arc<dyn Detector>, BuildError> {
    config
        .validate()
        .map_err(|(field, detail)| BuildError::Config { field, detail })?;
    match (config.kind, &config.model) {
        (DetectorKind::Onnx, Some(path)) => {
            let model = OnnxModel::load_shared(path)?;
            Ok(Arc::new(OnnxDetector::new(
                model,
                params.clone(),
                config.combine.unwrap_or_default().combine(),
            )))
        }
        _ => Ok(Arc::new(SpectralDetector {
            params: params.clone(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_fields_are_checked() {
        assert_eq!("onnx".parse::<DetectorKind>(), Ok(DetectorKind::Onnx));
        assert!("cnn".parse::<DetectorKind>().unwrap_err().contains("cnn"));
        assert_eq!("either".parse::<CombinePolicy>(), Ok(CombinePolicy::Either));
        assert_eq!(CombinePolicy::Learned.combine(), Combine::Replace);
        let onnx = DetectorConfig {
            kind: DetectorKind::Onnx,
            ..Default::default()
        };
        assert_eq!(onnx.validate().unwrap_err().0, "model");
        let spectral = DetectorConfig {
            combine: Some(CombinePolicy::Both),
            ..Default::default()
        };
        assert_eq!(spectral.validate().unwrap_err().0, "combine");
        let e = build_detector(&onnx, &DetectParams::default())
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("[detector] model"), "{e}");
        let d = build_detector(&DetectorConfig::default(), &DetectParams::default()).unwrap();
        assert_eq!(d.name(), "spectral");
        assert_eq!(d.describe(), serde_json::json!({"kind": "spectral"}));
    }
}
