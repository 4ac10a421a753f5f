//! The model descriptor: a TOML file beside an ONNX model that says everything the pipeline needs
//! to run it (tensor names, band order, normalisation, tile size, output kind), so that no
//! model-specific code is ever written.
//!
//! ```toml
//! [model]
//! file = "model.onnx"          # relative to the descriptor
//! name = "bureau-cd"
//! version = "2026.03"
//! license = "internal use only"
//! trained_on = "LEVIR-CD train split + 2024 county orthophotos"
//! [input]
//! before = "t1"                # or `stacked = "x"` for one input with before then after channels
//! after = "t2"
//! bands = ["red", "green", "blue"]
//! scale = 0.00392156862745098  # raw × scale, then (x − mean) / std per channel
//! mean = [0.485, 0.456, 0.406]
//! std = [0.229, 0.224, 0.225]
//! tile = 256
//! overlap = 32
//! pixel_size_m = 0.5           # optional: the ground pixel size the model was trained at
//! [output]
//! name = "prob"
//! kind = "probability"         # probability | logit | softmax2
//! threshold = 0.5
//! ```

use super::OnnxError;
use crate::bands::BandRole;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A parsed and validated model descriptor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDescriptor {
    /// The descriptor file itself (for messages and evidence).
    pub path: PathBuf,
    /// `[model]`: which model, and what evidence says about it.
    pub model: ModelInfo,
    /// `[input]`: how imagery becomes the model's input.
    pub input: InputSpec,
    /// `[output]`: how the model's output becomes a change probability.
    pub output: OutputSpec,
}

/// `[model]`: the model file and the facts every evidence manifest repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// The ONNX file; relative paths are relative to the descriptor (resolved on load).
    pub file: PathBuf,
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
    /// The licence under which the bureau may use the model.
    pub license: String,
    /// What the model was trained on.
    pub trained_on: String,
}

/// How the model takes the two dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "layout")]
pub enum InputLayout {
    /// Two input tensors, one per date.
    Pair {
        /// The before date's tensor name.
        before: String,
        /// The after date's tensor name.
        after: String,
    },
    /// One input tensor holding the before date's channels, then the after date's.
    Stacked {
        /// The tensor name.
        stacked: String,
    },
}

/// `[input]`: tensor names, band order, normalisation and tiling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    /// Which input tensors, and how the dates are laid out.
    pub layout: InputLayout,
    /// Band roles in the model's channel order (per date).
    pub bands: Vec<BandRole>,
    /// Raw pixel value × `scale` …
    pub scale: f32,
    /// … then minus `mean` …
    pub mean: Vec<f32>,
    /// … divided by `std`, per channel.
    pub std: Vec<f32>,
    /// The model's input edge in pixels (tiles are square).
    pub tile: usize,
    /// Overlap of neighbouring tiles in pixels, blended so that no seams appear.
    pub overlap: usize,
    /// The ground pixel size the model expects, in metres (the grid is read at it).
    pub pixel_size_m: Option<f64>,
}

/// How to read the model's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A change probability in 0–1 (one channel; or two channels of which channel 1 is change).
    Probability,
    /// A logit: the probability is its sigmoid.
    Logit,
    /// Two channels of scores (no change, change): the probability is channel 1 of their softmax.
    Softmax2,
}

impl OutputKind {
    /// The name used in the descriptor.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Probability => "probability",
            OutputKind::Logit => "logit",
            OutputKind::Softmax2 => "softmax2",
        }
    }
}

/// `[output]`: the output tensor and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The output tensor name.
    pub name: String,
    /// What the output holds.
    pub kind: OutputKind,
    /// The change probability above which a pixel is changed.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
}

fn default_threshold() -> f32 {
    0.5
}

/// The file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    model: ModelInfo,
    input: RawInput,
    output: OutputSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    before: Option<String>,
    after: Option<String>,
    stacked: Option<String>,
    bands: Vec<String>,
    #[serde(default = "one")]
    scale: f32,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    tile: usize,
    #[serde(default)]
    overlap: usize,
    pixel_size_m: Option<f64>,
}

fn one() -> f32 {
    1.0
}

/// The largest tile edge accepted (a 8192² three-channel tile is already 800 MB of input).
const MAX_TILE: usize = 8192;

impl ModelDescriptor {
    /// Reads, parses and validates a descriptor; the model file path is resolved against the
    /// descriptor's directory (the model itself is not opened here).
    pub fn load(path: &Path) -> Result<ModelDescriptor, OnnxError> {
        let text = std::fs::read_to_string(path).map_err(|source| OnnxError::DescriptorRead {
            path: path.to_path_buf(),
            source,
        })?;
        ModelDescriptor::from_toml(&text, path)
    }

    /// Parses and validates descriptor text; `path` names the file in messages and anchors the
    /// model file's relative path.
    pub fn from_toml(text: &str, path: &Path) -> Result<ModelDescriptor, OnnxError> {
        let raw: RawDescriptor = toml::from_str(text).map_err(|e| OnnxError::DescriptorParse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let field = |section: &'static str, field: &'static str, detail: String| OnnxError::Field {
            descriptor: path.to_path_buf(),
            section,
            field,
            detail,
        };
        let mut model = raw.model;
        for (name, value) in [
            ("name", &model.name),
            ("version", &model.version),
            ("license", &model.license),
            ("trained_on", &model.trained_on),
        ] {
            if value.trim().is_empty() {
                return Err(field(
                    "model",
                    name,
                    "must not be empty: it is copied into every evidence manifest".into(),
                ));
            }
        }
        if model.file.as_os_str().is_empty() {
            return Err(field("model", "file", "must name the ONNX file".into()));
        }
        if model.file.is_relative() {
            let base = path.parent().unwrap_or_else(|| Path::new(""));
            model.file = base.join(&model.file);
        }

        let i = raw.input;
        let nonempty = |s: &str| !s.trim().is_empty();
        let layout = match (i.before, i.after, i.stacked) {
            (Some(b), Some(a), None) if nonempty(&b) && nonempty(&a) => {
                if a == b {
                    return Err(field(
                        "input",
                        "after",
                        format!("names the same tensor as `before` ('{a}')"),
                    ));
                }
                InputLayout::Pair {
                    before: b,
                    after: a,
                }
            }
            (None, None, Some(s)) if nonempty(&s) => InputLayout::Stacked { stacked: s },
            (_, _, Some(_)) => {
                return Err(field(
                    "input",
                    "stacked",
                    "give either `stacked` (one input with the before channels, then the after channels) or `before` and `after`, not both".into(),
                ))
            }
            (None, _, None) => {
                return Err(field(
                    "input",
                    "before",
                    "missing: name the before date's input tensor (or use `stacked` for a model with one input)".into(),
                ))
            }
            (_, None, None) => {
                return Err(field(
                    "input",
                    "after",
                    "missing: name the after date's input tensor".into(),
                ))
            }
            _ => {
                return Err(field(
                    "input",
                    "before",
                    "tensor names must not be empty".into(),
                ))
            }
        };
        if i.bands.is_empty() {
            return Err(field(
                "input",
                "bands",
                "must list the band roles in the model's channel order, e.g. [\"red\", \"green\", \"blue\"]".into(),
            ));
        }
        let mut bands = Vec::with_capacity(i.bands.len());
        for b in &i.bands {
            let role: BandRole = b.parse().map_err(|e: crate::bands::UnknownBandRole| {
                field("input", "bands", e.to_string())
            })?;
            if matches!(role, BandRole::Alpha | BandRole::Mask | BandRole::Unknown) {
                return Err(field(
                    "input",
                    "bands",
                    format!("'{b}' is not a spectral band a model can take"),
                ));
            }
            if bands.contains(&role) {
                return Err(field("input", "bands", format!("'{b}' is listed twice")));
            }
            bands.push(role);
        }
        let n = bands.len();
        if !(i.scale.is_finite() && i.scale != 0.0) {
            return Err(field(
                "input",
                "scale",
                format!("must be a finite non-zero number, got {}", i.scale),
            ));
        }
        let mean = i.mean.unwrap_or_else(|| vec![0.0; n]);
        let std = i.std.unwrap_or_else(|| vec![1.0; n]);
        for (name, v) in [("mean", &mean), ("std", &std)] {
            if v.len() != n {
                return Err(field(
                    "input",
                    name,
                    format!(
                        "has {} value(s) but `bands` lists {n} band(s); give one per band",
                        v.len()
                    ),
                ));
            }
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(field(
                "input",
                "mean",
                format!("{m} is not a finite number"),
            ));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(field(
                "input",
                "std",
                format!("every value must be positive, got {s}"),
            ));
        }
        if !(8..=MAX_TILE).contains(&i.tile) {
            return Err(field(
                "input",
                "tile",
                format!("must be between 8 and {MAX_TILE} pixels, got {}", i.tile),
            ));
        }
        if 2 * i.overlap > i.tile {
            return Err(field(
                "input",
                "overlap",
                format!(
                    "must be at most half the tile ({}), got {}",
                    i.tile / 2,
                    i.overlap
                ),
            ));
        }
        if let Some(p) = i.pixel_size_m.filter(|p| !(p.is_finite() && *p > 0.0)) {
            return Err(field(
                "input",
                "pixel_size_m",
                format!("must be a positive number of metres, got {p}"),
            ));
        }
        let output = raw.output;
        if output.name.trim().is_empty() {
            return Err(field(
                "output",
                "name",
                "must name the output tensor".into(),
            ));
        }
        if !(output.threshold > 0.0 && output.threshold < 1.0) {
            return Err(field(
                "output",
                "threshold",
                format!(
                    "is a change probability and must be between 0 and 1 (exclusive), got {}",
                    output.threshold
                ),
            ));
        }
        Ok(ModelDescriptor {
            path: path.to_path_buf(),
            model,
            input: InputSpec {
                layout,
                bands,
                scale: i.scale,
                mean,
                std,
                tile: i.tile,
                overlap: i.overlap,
                pixel_size_m: i.pixel_size_m,
            },
            output,
        })
    }

    /// The input tensor names in the order the descriptor gives them.
    pub fn input_names(&self) -> Vec<&str> {
        match &self.input.layout {
            InputLayout::Pair { before, after } => vec![before.as_str(), after.as_str()],
            InputLayout::Stacked { stacked } => vec![stacked.as_str()],
        }
    }

    /// Channels of each input tensor: the bands, or twice the bands for a stacked input.
    pub fn input_channels(&self) -> usize {
        match self.input.layout {
            InputLayout::Pair { .. } => self.input.bands.len(),
            InputLayout::Stacked { .. } => 2 * self.input.bands.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[model]
file = "m.onnx"
name = "test"
version = "1"
license = "CC0-1.0"
trained_on = "nothing"
[input]
before = "t1"
after = "t2"
bands = ["red", "green", "blue"]
scale = 0.5
mean = [0.1, 0.2, 0.3]
std = [1.0, 2.0, 4.0]
tile = 64
overlap = 16
pixel_size_m = 0.5
[output]
name = "prob"
kind = "probability"
"#;

    fn parse(text: &str) -> Result<ModelDescriptor, OnnxError> {
        ModelDescriptor::from_toml(text, Path::new("/models/cd/model.toml"))
    }

    #[test]
    fn a_complete_descriptor_parses_and_resolves_the_model_file() {
        let d = parse(GOOD).unwrap();
        assert_eq!(d.model.file, PathBuf::from("/models/cd/m.onnx"));
        assert_eq!(
            d.input.bands,
            vec![BandRole::Red, BandRole::Green, BandRole::Blue]
        );
        assert_eq!(d.input_names(), vec!["t1", "t2"]);
        assert_eq!(d.input_channels(), 3);
        assert_eq!(d.output.threshold, 0.5);
        assert_eq!(d.input.pixel_size_m, Some(0.5));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                "before = \"t1\"\nafter = \"t2\"",
                "stacked = \"x\"\nbefore = \"t1\"",
                "[input] stacked",
            ),
            ("after = \"t2\"\n", "", "[input] after"),
            ("\"blue\"]", "\"purple\"]", "purple"),
            ("mean = [0.1, 0.2, 0.3]", "mean = [0.1]", "[input] mean"),
            (
                "std = [1.0, 2.0, 4.0]",
                "std = [1.0, 0.0, 4.0]",
                "[input] std",
            ),
            ("tile = 64", "tile = 4", "[input] tile"),
            ("overlap = 16", "overlap = 40", "[input] overlap"),
            (
                "pixel_size_m = 0.5",
                "pixel_size_m = -2",
                "[input] pixel_size_m",
            ),
            (
                "kind = \"probability\"",
                "kind = \"probabilty\"",
                "probabilty",
            ),
            (
                "kind = \"probability\"",
                "kind = \"logit\"\nthreshold = 2.0",
                "[output] threshold",
            ),
            ("license = \"CC0-1.0\"", "license = \"\"", "[model] license"),
            ("scale = 0.5", "scale = 0.5\ncolour = 1", "colour"),
        ];
        for (from, to, expect) in cases {
            assert!(GOOD.contains(from), "{from}");
            let e = parse(&GOOD.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(e.contains(expect), "{expect}: {e}");
            assert!(e.contains("/models/cd/model.toml"), "{e}");
        }
    }

    #[test]
    fn a_stacked_input_has_twice_the_channels_and_defaults_apply() {
        let text = GOOD
            .replacen("before = \"t1\"\nafter = \"t2\"", "stacked = \"x\"", 1)
            .replacen(
                "scale = 0.5\nmean = [0.1, 0.2, 0.3]\nstd = [1.0, 2.0, 4.0]\n",
                "",
                1,
            );
        let d = parse(&text).unwrap();
        assert_eq!(d.input_names(), vec!["x"]);
        assert_eq!(d.input_channels(), 6);
        assert_eq!(
            (d.input.scale, d.input.mean.clone(), d.input.std.clone()),
            (1.0, vec![0.0; 3], vec![1.0; 3])
        );
    }
}
