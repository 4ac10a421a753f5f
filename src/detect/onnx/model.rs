//! Loading an ONNX model with tract (pure Rust, no native runtime), checking it against its
//! descriptor, and computing a change probability over a read window by sliding-window inference.

use super::descriptor::{InputLayout, ModelDescriptor, OutputKind};
use super::window::{blend_tiles, mirror};
use super::OnnxError;
use crate::bands::BandRole;
use crate::image::CellImage;
use ndarray::{Array2, Array3, Array4, ArrayViewD, Axis};
use sha2::{Digest, Sha256};
use std::path::Path;
use tract_onnx::prelude::{
    Datum, DatumExt, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TVec,
    Tensor, TypedRunnableModel,
};
use tract_onnx::tract_hir::infer::Factoid;

/// A model loaded and optimised once, ready to run tiles from any number of threads.
pub struct OnnxModel {
    /// The validated descriptor.
    pub descriptor: ModelDescriptor,
    /// SHA-256 of the model file as loaded (hex).
    pub sha256: String,
    /// SHA-256 of the descriptor file (hex; empty for a model built from a descriptor in memory).
    pub descriptor_sha256: String,
    /// The optimised plan; tract's plans are `Send + Sync` and each run has its own state.
    plan: std::sync::Arc<TypedRunnableModel>,
    /// For a two-input model, whether the model's first input is the after date.
    after_first: bool,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("descriptor", &self.descriptor.path)
            .field("model", &self.descriptor.model.file)
            .field("sha256", &self.sha256)
            .finish()
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A dimension of an input fact, when the ONNX file fixes it.
fn fixed_dim(fact: &InferenceFact, i: usize) -> Option<i64> {
    fact.shape
        .dims()
        .nth(i)
        .and_then(|d| d.concretize())
        .and_then(|d| d.to_i64().ok())
}

impl OnnxModel {
    /// Reads a descriptor and loads, checks and optimises its model.
    pub fn load(descriptor_path: &Path) -> Result<OnnxModel, OnnxError> {
        let text = std::fs::read(descriptor_path).map_err(|source| OnnxError::DescriptorRead {
            path: descriptor_path.to_path_buf(),
            source,
        })?;
        let descriptor =
            ModelDescriptor::from_toml(&String::from_utf8_lossy(&text), descriptor_path)?;
        let mut model = OnnxModel::from_descriptor(descriptor)?;
        model.descriptor_sha256 = hex_sha256(&text);
        Ok(model)
    }

    /// Loads, checks and optimises the model a validated descriptor names.
    ///
    /// Every mismatch between descriptor and model is an error naming the descriptor, the field
    /// and what the model has instead: tensor names, channel count, tile size, output shape.
    pub fn from_descriptor(descriptor: ModelDescriptor) -> Result<OnnxModel, OnnxError> {
        let d = &descriptor;
        let file = &d.model.file;
        let bytes = std::fs::read(file).map_err(|source| OnnxError::ModelFile {
            descriptor: d.path.clone(),
            file: file.clone(),
            source,
        })?;
        let invalid = |detail: String| OnnxError::ModelInvalid {
            descriptor: d.path.clone(),
            file: file.clone(),
            detail,
        };
        let field = |section: &'static str, field: &'static str, detail: String| OnnxError::Field {
            descriptor: d.path.clone(),
            section,
            field,
            detail,
        };
        let sha256 = hex_sha256(&bytes);
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| invalid(format!("is not an ONNX model ({e:#})")))?;
        let dir = file.parent().and_then(|p| p.to_str());
        let parsed = onnx
            .parse(&proto, dir)
            .map_err(|e| invalid(format!("cannot be read by tract: {e:#}")))?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(invalid(format!(
                "refers to tensors it does not define: {}",
                parsed.unresolved_inputs.join(", ")
            )));
        }
        let mut model = parsed.model;

        // Inputs: the descriptor's names, exactly.
        let inputs: Vec<String> = model
            .input_outlets()
            .map_err(|e| invalid(e.to_string()))?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let wanted = d.input_names();
        let (names_field, layout_field) = match &d.input.layout {
            InputLayout::Pair { .. } => (["before", "after"], "before"),
            InputLayout::Stacked { .. } => (["stacked", "stacked"], "stacked"),
        };
        for (k, name) in wanted.iter().enumerate() {
            if !inputs.iter().any(|i| i == name) {
                return Err(field(
                    "input",
                    names_field[k],
                    format!(
                        "the model has no input tensor '{name}' (its inputs: {})",
                        inputs.join(", ")
                    ),
                ));
            }
        }
        if inputs.len() != wanted.len() {
            return Err(field(
                "input",
                layout_field,
                format!(
                    "the model has {} inputs ({}) but the descriptor names {} ({}); a model with one input for both dates takes `stacked`",
                    inputs.len(),
                    inputs.join(", "),
                    wanted.len(),
                    wanted.join(", ")
                ),
            ));
        }
        let channels = d.input_channels();
        let tile = d.input.tile;
        for (ix, name) in inputs.iter().enumerate() {
            let k = wanted.iter().position(|w| *w == name.as_str()).unwrap_or(0);
            let fact = model.input_fact(ix).map_err(|e| invalid(e.to_string()))?;
            if let Some(dt) = fact.datum_type.concretize() {
                if dt != f32::datum_type() {
                    return Err(field(
                        "input",
                        names_field[k],
                        format!("the model's input '{name}' is {dt:?}; landwatch feeds Float32: export the model with float32 inputs"),
                    ));
                }
            }
            if let Some(rank) = fact.shape.rank().concretize() {
                if rank != 4 {
                    return Err(field(
                        "input",
                        names_field[k],
                        format!("the model's input '{name}' has {rank} dimensions; landwatch feeds (batch, channel, row, column)"),
                    ));
                }
            }
            if let Some(c) = fixed_dim(fact, 1) {
                if c != channels as i64 {
                    let what = match d.input.layout {
                        InputLayout::Pair { .. } => format!("{} band(s)", d.input.bands.len()),
                        InputLayout::Stacked { .. } => format!(
                            "{} band(s) per date, {channels} channels stacked",
                            d.input.bands.len()
                        ),
                    };
                    return Err(field(
                        "input",
                        "bands",
                        format!("lists {what}, but the model's input '{name}' has {c} channel(s)"),
                    ));
                }
            }
            for (axis, label) in [(2, "rows"), (3, "columns")] {
                if let Some(n) = fixed_dim(fact, axis) {
                    if n != tile as i64 {
                        return Err(field(
                            "input",
                            "tile",
                            format!(
                                "is {tile}, but the model's input '{name}' has a fixed {n} {label}; set tile = {n}"
                            ),
                        ));
                    }
                }
            }
            if let Some(b) = fixed_dim(fact, 0) {
                if b != 1 {
                    return Err(field(
                        "input",
                        names_field[k],
                        format!("the model's input '{name}' has a fixed batch of {b}; export it with batch 1 or a dynamic batch"),
                    ));
                }
            }
            model
                .set_input_fact(ix, f32::fact([1, channels, tile, tile]).into())
                .map_err(|e| invalid(e.to_string()))?;
        }
        let after_first = match &d.input.layout {
            InputLayout::Pair { after, .. } => inputs.first() == Some(after),
            InputLayout::Stacked { .. } => false,
        };

        // Output: the descriptor's name, one of the model's outputs.
        let outputs: Vec<(tract_onnx::prelude::OutletId, String)> = model
            .output_outlets()
            .map_err(|e| invalid(e.to_string()))?
            .iter()
            .map(|o| (*o, model.outlet_label(*o).unwrap_or_default().to_string()))
            .collect();
        let Some((outlet, _)) = outputs.iter().find(|(_, n)| *n == d.output.name) else {
            return Err(field(
                "output",
                "name",
                format!(
                    "the model has no output tensor '{}' (its outputs: {})",
                    d.output.name,
                    outputs
                        .iter()
                        .map(|(_, n)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        model
            .select_output_outlets(&[*outlet])
            .map_err(|e| invalid(e.to_string()))?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| {
                invalid(format!(
                    "cannot be prepared for ({channels}, {tile}, {tile}) inputs: {e:#}"
                ))
            })?;
        let loaded = OnnxModel {
            descriptor,
            sha256,
            descriptor_sha256: String::new(),
            plan,
            after_first,
        };
        // One dry run on a blank tile proves the whole chain (and the output's shape) before
        // any imagery is read.
        let blank = Array4::<f32>::zeros((1, loaded.descriptor.input.bands.len(), tile, tile));
        loaded.try_tile(blank.clone(), blank).map_err(|e| match e {
            TileError::Run(detail) => OnnxError::ModelInvalid {
                descriptor: loaded.descriptor.path.clone(),
                file: loaded.descriptor.model.file.clone(),
                detail: format!("fails on a blank {tile}x{tile} tile: {detail}"),
            },
            TileError::Output { field, detail } => OnnxError::Field {
                descriptor: loaded.descriptor.path.clone(),
                section: "output",
                field,
                detail: format!("the output '{}' {detail}", loaded.descriptor.output.name),
            },
        })?;
        Ok(loaded)
    }

    /// The model's name as the descriptor gives it.
    pub fn name(&self) -> &str {
        &self.descriptor.model.name
    }

    /// Runs one tile: normalised before and after inputs of shape (1, bands, tile, tile) in, the
    /// change probability of shape (tile, tile) out.
    pub fn run_tile(
        &self,
        before: Array4<f32>,
        after: Array4<f32>,
    ) -> Result<Array2<f32>, OnnxError> {
        self.try_tile(before, after).map_err(|e| match e {
            TileError::Run(detail) => OnnxError::Inference {
                model: self.descriptor.model.name.clone(),
                detail,
            },
            TileError::Output { detail, .. } => OnnxError::Inference {
                model: self.descriptor.model.name.clone(),
                detail: format!("output '{}' {detail}", self.descriptor.output.name),
            },
        })
    }

    fn try_tile(&self, before: Array4<f32>, after: Array4<f32>) -> Result<Array2<f32>, TileError> {
        let run = |e: String| TileError::Run(e);
        let inputs: TVec<_> = match &self.descriptor.input.layout {
            InputLayout::Pair { .. } => {
                let (b, a) = (Tensor::from(before), Tensor::from(after));
                if self.after_first {
                    [a.into_tvalue(), b.into_tvalue()].into_iter().collect()
                } else {
                    [b.into_tvalue(), a.into_tvalue()].into_iter().collect()
                }
            }
            InputLayout::Stacked { .. } => {
                let stacked = ndarray::concatenate(Axis(1), &[before.view(), after.view()])
                    .map_err(|e| run(e.to_string()))?;
                [Tensor::from(stacked).into_tvalue()].into_iter().collect()
            }
        };
        let out = self.plan.run(inputs).map_err(|e| run(format!("{e:#}")))?;
        let first = out
            .first()
            .ok_or_else(|| run("the model returned no output".into()))?;
        let as_f32 = first.cast_to::<f32>().map_err(|e| TileError::Output {
            field: "name",
            detail: format!("is not numeric: {e}"),
        })?;
        let view = as_f32
            .to_plain_array_view::<f32>()
            .map_err(|e| run(e.to_string()))?;
        to_probability(
            view,
            self.descriptor.output.kind,
            self.descriptor.input.tile,
        )
        .map_err(|(field, detail)| TileError::Output { field, detail })
    }

    /// The change probability over a whole read window, by sliding-window inference.
    ///
    /// Bands are taken by role in the descriptor's order and normalised (raw × scale, then
    /// (x − mean) / std); pixels not valid on either date (no data, source masks) enter the model
    /// as the normalised zero on both dates, so that no-data edges do not look like change to a
    /// network's receptive field. Tiles run in parallel and are blended with a separable taper.
    pub fn probability(
        &self,
        before: &CellImage,
        after: &CellImage,
    ) -> Result<Array2<f32>, OnnxError> {
        let (h, w) = before.valid.dim();
        if after.valid.dim() != (h, w) {
            return Err(OnnxError::Inference {
                model: self.descriptor.model.name.clone(),
                detail: format!(
                    "the dates were read onto different windows ({h}x{w} and {:?})",
                    after.valid.dim()
                ),
            });
        }
        let valid = Array2::from_shape_fn((h, w), |(y, x)| {
            let ok = |img: &CellImage| {
                img.valid[[y, x]] && !img.flagged.as_ref().is_some_and(|f| f[[y, x]])
            };
            ok(before) && ok(after)
        });
        let nb = self.normalised(before, &valid)?;
        let na = self.normalised(after, &valid)?;
        let (tile, overlap) = (self.descriptor.input.tile, self.descriptor.input.overlap);
        let c = self.descriptor.input.bands.len();
        blend_tiles(h, w, tile, overlap, |y0, x0| {
            let cut = |img: &Array3<f32>| {
                Array4::from_shape_fn((1, c, tile, tile), |(_, k, ty, tx)| {
                    img[[k, mirror(y0 + ty, h), mirror(x0 + tx, w)]]
                })
            };
            self.run_tile(cut(&nb), cut(&na))
        })
    }

    /// One date's bands in the model's order, normalised; invalid pixels set to zero.
    fn normalised(&self, img: &CellImage, valid: &Array2<bool>) -> Result<Array3<f32>, OnnxError> {
        let spec = &self.descriptor.input;
        let idx: Vec<usize> = spec
            .bands
            .iter()
            .map(|role| {
                img.roles
                    .iter()
                    .position(|r| r == role)
                    .ok_or_else(|| self.missing_band(*role, &img.roles))
            })
            .collect::<Result<_, _>>()?;
        let (h, w) = valid.dim();
        Ok(Array3::from_shape_fn((idx.len(), h, w), |(k, y, x)| {
            if valid[[y, x]] {
                (img.bands[[idx[k], y, x]] * spec.scale - spec.mean[k]) / spec.std[k]
            } else {
                0.0
            }
        }))
    }

    fn missing_band(&self, role: BandRole, have: &[BandRole]) -> OnnxError {
        OnnxError::Field {
            descriptor: self.descriptor.path.clone(),
            section: "input",
            field: "bands",
            detail: format!(
                "the model needs a {role} band, the imagery has {}",
                have.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
            ),
        }
    }
}

/// Why a tile failed: the model did not run, or its output does not fit the descriptor (the
/// field to blame, and how).
enum TileError {
    Run(String),
    Output { field: &'static str, detail: String },
}

/// Turns a model output into a (tile, tile) change probability, or names the descriptor field
/// (`[output] name` for a wrong shape, `kind` for a wrong channel count) and what is wrong.
fn to_probability(
    view: ArrayViewD<'_, f32>,
    kind: OutputKind,
    tile: usize,
) -> Result<Array2<f32>, (&'static str, String)> {
    let shape = view.shape().to_vec();
    let channels = match shape.as_slice() {
        [1, c, h, w] if *h == tile && *w == tile => *c,
        [1, h, w] | [h, w] if *h == tile && *w == tile => 1,
        _ => {
            return Err((
                "name",
                format!(
                    "has shape {shape:?}; landwatch needs one change map per pixel of the {tile}x{tile} tile: (1, 1, {tile}, {tile}), or (1, 2, {tile}, {tile}) for two classes"
                ),
            ))
        }
    };
    let plane = |c: usize| -> Array2<f32> {
        let v = view.to_shape((channels, tile, tile));
        match v {
            Ok(v) => v.index_axis(Axis(0), c).to_owned(),
            Err(_) => Array2::from_elem((tile, tile), f32::NAN),
        }
    };
    let sigmoid = |z: f32| 1.0 / (1.0 + (-z).exp());
    match (kind, channels) {
        (OutputKind::Probability, 1) => Ok(plane(0)),
        (OutputKind::Probability, 2) => Ok(plane(1)),
        (OutputKind::Logit, 1) => Ok(plane(0).mapv(sigmoid)),
        (OutputKind::Softmax2, 2) => {
            let (c0, c1) = (plane(0), plane(1));
            let mut p = c1;
            p.zip_mut_with(&c0, |a, b| *a = sigmoid(*a - *b));
            Ok(p)
        }
        (OutputKind::Softmax2, n) => Err((
            "kind",
            format!("has {n} channel(s); kind = \"softmax2\" needs 2 (no change, change)"),
        )),
        (k, n) => Err((
            "kind",
            format!(
                "has {n} channel(s); kind = \"{}\" needs 1{}",
                k.name(),
                if k == OutputKind::Probability {
                    " (or 2 class probabilities, channel 1 = change)"
                } else {
                    ""
                }
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    #[test]
    fn output_kinds_become_probabilities() {
        let tile = 2;
        let logits = ArrayD::from_shape_vec(vec![1, 1, 2, 2], vec![0.0, 2.0, -2.0, 100.0]).unwrap();
        let p = to_probability(logits.view(), OutputKind::Logit, tile).unwrap();
        assert!((p[[0, 0]] - 0.5).abs() < 1e-6 && (p[[0, 1]] - 0.880_797).abs() < 1e-5);
        assert!((p[[1, 1]] - 1.0).abs() < 1e-6);
        let two = ArrayD::from_shape_vec(
            vec![1, 2, 2, 2],
            vec![0.0, 0.0, 1.0, 3.0, 0.0, 2.0, 1.0, 1.0],
        )
        .unwrap();
        let p = to_probability(two.view(), OutputKind::Softmax2, tile).unwrap();
        assert!((p[[0, 0]] - 0.5).abs() < 1e-6);
        assert!((p[[0, 1]] - 0.880_797).abs() < 1e-5);
        assert!((p[[1, 1]] - 1.0 / (1.0 + 2f32.exp())).abs() < 1e-6);
        let p = to_probability(two.view(), OutputKind::Probability, tile).unwrap();
        assert_eq!(p[[0, 1]], 2.0);
        let (field, e) = to_probability(two.view(), OutputKind::Logit, tile).unwrap_err();
        assert!(field == "kind" && e.contains("needs 1"), "{e}");
        let (field, e) = to_probability(logits.view(), OutputKind::Probability, 4).unwrap_err();
        assert!(field == "name" && e.contains("[1, 1, 2, 2]"), "{e}");
    }
}
