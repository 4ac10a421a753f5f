//! Issue 7: the learned (ONNX) detector, with the tiny models of `fixtures/models` whose output
//! is known exactly (`scripts/make_test_models.py`): per pixel, from the normalised dates a and b,
//! p = sigmoid(8 · (mean over channels of |a − b| − 0.5)).

use crate::common::{run, scan_config, scene, scratch, stderr, stdout};
use gdal::{Dataset, Metadata};
use landwatch::bands::BandRole;
use landwatch::detect::onnx::{OnnxError, OnnxModel};
use landwatch::detect::{build_detector, DetectParams, DetectorConfig, DetectorKind};
use landwatch::export::raster::{write_geotiff, GeoTiffSpec};
use landwatch::grid::Window;
use landwatch::image::CellImage;
use ndarray::{Array2, Array3};
use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};

/// ImageNet normalisation for 8-bit RGB, as most published change-detection models use.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
const SCALE: f32 = 1.0 / 255.0;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models")
}

/// The function every absdiff fixture model computes, on raw (band, row, column) arrays in the
/// model's channel order.
fn known(
    before: &Array3<f32>,
    after: &Array3<f32>,
    scale: f32,
    mean: &[f32],
    std: &[f32],
) -> Array2<f32> {
    let (c, h, w) = before.dim();
    Array2::from_shape_fn((h, w), |(y, x)| {
        let d: f32 = (0..c)
            .map(|k| {
                let n = |v: f32| (v * scale - mean[k]) / std[k];
                (n(before[[k, y, x]]) - n(after[[k, y, x]])).abs()
            })
            .sum::<f32>()
            / c as f32;
        1.0 / (1.0 + (-8.0 * (d - 0.5)).exp())
    })
}

/// A deterministic 8-bit RGB pair (red, green, blue): textured ground, a bright roof and a dark
/// pond appearing in the after image, and a little noise everywhere.
fn rgb_pair(h: usize, w: usize) -> (Array3<f32>, Array3<f32>) {
    let noise = |k: usize, y: usize, x: usize, date: usize| -> f32 {
        let mut v = (k * 7919 + y * 104_729 + x * 1_299_709 + date * 15_485_863) as u64;
        v ^= v >> 13;
        v = v.wrapping_mul(0x5bd1_e995);
        v ^= v >> 15;
        (v % 1000) as f32 / 1000.0 * 12.0 - 6.0
    };
    let ground = |k: usize, y: usize, x: usize| -> f32 {
        let base = [95.0, 120.0, 70.0][k];
        base + 25.0 * ((x as f32 / 9.0).sin() * (y as f32 / 7.0).cos())
    };
    let before = Array3::from_shape_fn((3, h, w), |(k, y, x)| {
        (ground(k, y, x) + noise(k, y, x, 0))
            .clamp(0.0, 255.0)
            .round()
    });
    let after = Array3::from_shape_fn((3, h, w), |(k, y, x)| {
        let v = if (20..50).contains(&y) && (30..80).contains(&x) {
            [205.0, 195.0, 185.0][k]
        } else if (90..125).contains(&y) && (110..170).contains(&x) {
            [30.0, 50.0, 150.0][k]
        } else {
            ground(k, y, x)
        };
        (v + noise(k, y, x, 1)).clamp(0.0, 255.0).round()
    });
    (before, after)
}

fn cell_image(bands: Array3<f32>, roles: Vec<BandRole>) -> CellImage {
    let (_, h, w) = bands.dim();
    CellImage {
        window: Window {
            x: 0,
            y: 0,
            width: w,
            height: h,
        },
        roles,
        bands,
        valid: Array2::from_elem((h, w), true),
        flagged: None,
        contributing: vec![0],
    }
}

const RGB: [BandRole; 3] = [BandRole::Red, BandRole::Green, BandRole::Blue];

/// Writes a descriptor for a fixture model into `dir`; `edit` rewrites its text.
fn descriptor(dir: &Path, name: &str, model: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = format!(
        r#"[model]
file = "{}"
name = "absdiff-test"
version = "1.0"
license = "CC0-1.0"
trained_on = "nothing: a fixed function for tests"
[input]
before = "t1"
after = "t2"
bands = ["red", "green", "blue"]
scale = {SCALE}
mean = {MEAN:?}
std = {STD:?}
tile = 64
overlap = 16
[output]
name = "prob"
kind = "probability"
threshold = 0.5
"#,
        models().join(model).display()
    );
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// A rewrite of a descriptor's text.
type Edit = Box<dyn Fn(String) -> String>;

fn same(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_probability_is_the_models_known_function_for_every_output_kind() {
    let dir = scratch("onnx-known");
    let (b, a) = rgb_pair(150, 200);
    let expected = known(&b, &a, SCALE, &MEAN, &STD);
    let (before, after) = (cell_image(b, RGB.to_vec()), cell_image(a, RGB.to_vec()));
    for (model, output, kind) in [
        ("absdiff_pair.onnx", "prob", "probability"),
        ("absdiff_logit.onnx", "logit", "logit"),
        ("absdiff_softmax2.onnx", "scores", "softmax2"),
    ] {
        let d = descriptor(&dir, &format!("{kind}.toml"), model, |t| {
            t.replace("name = \"prob\"", &format!("name = \"{output}\""))
                .replace("kind = \"probability\"", &format!("kind = \"{kind}\""))
        });
        let m = OnnxModel::load(&d).unwrap();
        let p = m.probability(&before, &after).unwrap();
        let err = same(&p, &expected);
        assert!(err < 1e-5, "{kind}: largest difference {err}");
        // The pair has both changes and stable ground, so the comparison means something.
        assert!(
            p[[30, 50]] > 0.95 && p[[100, 140]] > 0.95 && p[[5, 5]] < 0.2,
            "{kind}"
        );
    }
}

#[test]
fn bands_are_taken_by_role_whatever_the_imagery_order() {
    let dir = scratch("onnx-roles");
    let (b, a) = rgb_pair(70, 90);
    let expected = known(&b, &a, SCALE, &MEAN, &STD);
    // The same pixels stored blue, green, red, nir.
    let reorder = |x: &Array3<f32>| {
        Array3::from_shape_fn((4, 70, 90), |(k, y, xx)| match k {
            0 => x[[2, y, xx]],
            1 => x[[1, y, xx]],
            2 => x[[0, y, xx]],
            _ => 1000.0,
        })
    };
    let bgrn = vec![
        BandRole::Blue,
        BandRole::Green,
        BandRole::Red,
        BandRole::Nir,
    ];
    let m = OnnxModel::load(&descriptor(&dir, "m.toml", "absdiff_pair.onnx", |t| t)).unwrap();
    let p = m
        .probability(
            &cell_image(reorder(&b), bgrn.clone()),
            &cell_image(reorder(&a), bgrn),
        )
        .unwrap();
    assert!(same(&p, &expected) < 1e-5);
}

#[test]
fn the_sliding_window_with_overlap_equals_one_whole_image_run() {
    let dir = scratch("onnx-window");
    let (b, a) = rgb_pair(150, 200);
    let (before, after) = (cell_image(b, RGB.to_vec()), cell_image(a, RGB.to_vec()));
    let tiled =
        OnnxModel::load(&descriptor(&dir, "tiled.toml", "absdiff_pair.onnx", |t| t)).unwrap();
    let whole = OnnxModel::load(&descriptor(&dir, "whole.toml", "absdiff_pair.onnx", |t| {
        t.replace("tile = 64", "tile = 256")
            .replace("overlap = 16", "overlap = 0")
    }))
    .unwrap();
    let p_tiled = tiled.probability(&before, &after).unwrap();
    let p_whole = whole.probability(&before, &after).unwrap();
    // 150 × 200 in 64-pixel tiles with 16 pixels of overlap is 4 × 4 tiles; at 256 it is one.
    let err = same(&p_tiled, &p_whole);
    assert!(err < 1e-6, "largest difference {err}");
}

#[test]
fn stacked_and_two_input_models_give_the_same_answer() {
    let dir = scratch("onnx-stacked");
    let (b, a) = rgb_pair(100, 130);
    let (before, after) = (cell_image(b, RGB.to_vec()), cell_image(a, RGB.to_vec()));
    let pair = OnnxModel::load(&descriptor(&dir, "pair.toml", "absdiff_pair.onnx", |t| t)).unwrap();
    let stacked = OnnxModel::load(&descriptor(
        &dir,
        "stacked.toml",
        "absdiff_stacked.onnx",
        |t| t.replace("before = \"t1\"\nafter = \"t2\"", "stacked = \"x\""),
    ))
    .unwrap();
    let err = same(
        &pair.probability(&before, &after).unwrap(),
        &stacked.probability(&before, &after).unwrap(),
    );
    assert!(err < 1e-6, "largest difference {err}");
    // Naming the after tensor first in the ONNX graph changes nothing either: inputs go by name.
    let swapped = OnnxModel::load(&descriptor(
        &dir,
        "swapped.toml",
        "absdiff_pair.onnx",
        |t| {
            t.replace(
                "before = \"t1\"\nafter = \"t2\"",
                "before = \"t2\"\nafter = \"t1\"",
            )
        },
    ))
    .unwrap();
    // |a − b| is symmetric, so swapping the dates gives the same probability.
    let err = same(
        &pair.probability(&before, &after).unwrap(),
        &swapped.probability(&before, &after).unwrap(),
    );
    assert!(err < 1e-6, "{err}");
}

#[test]
fn pixels_without_data_enter_the_model_as_no_change() {
    let dir = scratch("onnx-nodata");
    let (b, a) = rgb_pair(80, 100);
    let mut after = cell_image(a, RGB.to_vec());
    for y in 20..50 {
        for x in 30..80 {
            after.valid[[y, x]] = false;
        }
    }
    let m = OnnxModel::load(&descriptor(&dir, "m.toml", "absdiff_pair.onnx", |t| t)).unwrap();
    let p = m.probability(&cell_image(b, RGB.to_vec()), &after).unwrap();
    let no_change = 1.0 / (1.0 + 4f32.exp());
    assert!((p[[30, 50]] - no_change).abs() < 1e-6, "{}", p[[30, 50]]);
}

/// Every misconfiguration fails when the detector is built, naming the descriptor and the field.
#[test]
fn each_misconfiguration_gives_its_own_error() {
    let dir = scratch("onnx-errors");
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf model \xff\xfe").unwrap();
    let cases: Vec<(&str, &str, Edit, &[&str])> = vec![
        (
            "missing_file",
            "absdiff_pair.onnx",
            Box::new(|t: String| t.replace("absdiff_pair.onnx", "no_such_model.onnx")),
            &["[model] file", "no_such_model.onnx"],
        ),
        (
            "unreadable_file",
            "absdiff_pair.onnx",
            Box::new({
                let g = garbage.display().to_string();
                let from = models().join("absdiff_pair.onnx").display().to_string();
                move |t: String| t.replace(&from, &g)
            }),
            &["[model] file", "garbage.onnx", "not an ONNX model"],
        ),
        (
            "before_name",
            "absdiff_pair.onnx",
            Box::new(|t: String| t.replace("before = \"t1\"", "before = \"image_a\"")),
            &["[input] before", "image_a", "t1, t2"],
        ),
        (
            "after_name",
            "absdiff_pair.onnx",
            Box::new(|t: String| t.replace("after = \"t2\"", "after = \"image_b\"")),
            &["[input] after", "image_b"],
        ),
        (
            "stacked_on_pair",
            "absdiff_pair.onnx",
            Box::new(|t: String| t.replace("before = \"t1\"\nafter = \"t2\"", "stacked = \"t1\"")),
            &["[input] stacked", "2 inputs"],
        ),
        (
            "output_name",
            "absdiff_pair.onnx",
            Box::new(|t: String| t.replace("name = \"prob\"", "name = \"change\"")),
            &["[output] name", "change", "prob"],
        ),
        (
            "channels",
            "absdiff_fixed64.onnx",
            Box::new(|t: String| {
                t.replace(
                    "[\"red\", \"green\", \"blue\"]",
                    "[\"red\", \"green\", \"blue\", \"nir\"]",
                )
                .replace(
                    "mean = [0.485, 0.456, 0.406]",
                    "mean = [0.485, 0.456, 0.406, 0.5]",
                )
                .replace(
                    "std = [0.229, 0.224, 0.225]",
                    "std = [0.229, 0.224, 0.225, 0.2]",
                )
            }),
            &["[input] bands", "4 band(s)", "3 channel(s)"],
        ),
        (
            "tile",
            "absdiff_fixed64.onnx",
            Box::new(|t: String| t.replace("tile = 64", "tile = 128")),
            &["[input] tile", "128", "fixed 64"],
        ),
        (
            "softmax_on_one_channel",
            "absdiff_pair.onnx",
            Box::new(|t: String| t.replace("kind = \"probability\"", "kind = \"softmax2\"")),
            &["[output] kind", "softmax2"],
        ),
        (
            "mean_length",
            "absdiff_pair.onnx",
            Box::new(|t: String| t.replace("mean = [0.485, 0.456, 0.406]", "mean = [0.485]")),
            &["[input] mean", "1 value(s)"],
        ),
    ];
    for (name, model, edit, expect) in cases {
        let d = descriptor(&dir, &format!("{name}.toml"), model, edit);
        let e: OnnxError = OnnxModel::load(&d)
            .err()
            .unwrap_or_else(|| panic!("{name}: loaded"));
        let msg = e.to_string();
        assert!(msg.contains(&format!("{name}.toml")), "{name}: {msg}");
        for x in expect {
            assert!(msg.contains(x), "{name}: expected '{x}' in: {msg}");
        }
    }
    let e = OnnxModel::load(&dir.join("absent.toml"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("absent.toml") && e.contains("cannot read the model descriptor"),
        "{e}"
    );

    // Band roles the imagery lacks, checked before any cell is read.
    let d = descriptor(&dir, "roles.toml", "absdiff_pair.onnx", |t| {
        t.replace("\"blue\"]", "\"nir\"]")
    });
    let det = build_detector(
        &DetectorConfig {
            kind: DetectorKind::Onnx,
            model: Some(d),
            combine: None,
        },
        &DetectParams::default(),
    )
    .unwrap();
    let e = det.check_bands(&RGB, &RGB).unwrap_err();
    assert!(
        e.contains("roles.toml")
            && e.contains("[input] bands")
            && e.contains("nir")
            && e.contains("before"),
        "{e}"
    );
    let rgbn = [
        BandRole::Red,
        BandRole::Green,
        BandRole::Blue,
        BandRole::Nir,
    ];
    assert!(det.check_bands(&rgbn, &rgbn).is_ok());
}

#[test]
fn a_model_is_loaded_once_per_process() {
    let dir = scratch("onnx-shared");
    let d = descriptor(&dir, "m.toml", "absdiff_pair.onnx", |t| t);
    let a = OnnxModel::load_shared(&d).unwrap();
    let b = OnnxModel::load_shared(&dir.join(".").join("m.toml")).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

// ---- Through the binary ----

/// Writes an 8-bit RGB pair as georeferenced GeoTIFFs (0.5 m pixels, UTM 51N).
fn write_pair(dir: &Path, b: &Array3<f32>, a: &Array3<f32>) -> (PathBuf, PathBuf) {
    let (_, h, w) = b.dim();
    let mut spec = GeoTiffSpec::new(
        "EPSG:32651",
        [300_000.0, 0.5, 0.0, 3_450_000.0, 0.0, -0.5],
        w,
        h,
    );
    spec.color_interpretations = vec![Some("Red"), Some("Green"), Some("Blue")];
    spec.block_size = 64;
    let mut out = Vec::new();
    for (name, img) in [("before.tif", b), ("after.tif", a)] {
        let bands: Vec<Vec<u8>> = img
            .outer_iter()
            .map(|band| band.iter().map(|v| *v as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = bands.iter().map(|v| v.as_slice()).collect();
        let path = dir.join(name);
        write_geotiff(&path, &spec, &refs).unwrap();
        out.push(path);
    }
    (out[0].clone(), out[1].clone())
}

fn read_f32(path: &Path) -> (usize, usize, Vec<f32>) {
    let ds = Dataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    let v = ds
        .rasterband(1)
        .unwrap()
        .read_as::<f32>((0, 0), (w, h), (w, h), None)
        .unwrap()
        .data()
        .to_vec();
    (w, h, v)
}

fn detect_args(before: &Path, after: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "detect".into(),
        "--json".into(),
        "--before".into(),
        before.display().to_string(),
        "--after".into(),
        after.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn detect_with_an_onnx_model_writes_the_models_probability_and_names_the_model() {
    let dir = scratch("onnx-cli");
    let (b, a) = rgb_pair(160, 200);
    let expected = known(&b, &a, SCALE, &MEAN, &STD);
    let (bp, ap) = write_pair(&dir, &b, &a);
    let d = descriptor(&dir, "m.toml", "absdiff_pair.onnx", |t| t);
    let out = dir.join("out");
    let o = run(detect_args(
        &bp,
        &ap,
        &out,
        &["--detector", "onnx", "--model", d.to_str().unwrap()],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["detector"], "onnx:absdiff-test");
    let info = &s["detector_info"];
    assert_eq!(info["kind"], "onnx");
    assert_eq!(info["combine"], "learned");
    assert_eq!(info["model"]["name"], "absdiff-test");
    assert_eq!(info["model"]["version"], "1.0");
    assert_eq!(info["model"]["license"], "CC0-1.0");
    assert_eq!(
        info["model"]["trained_on"],
        "nothing: a fixed function for tests"
    );
    let bytes = std::fs::read(models().join("absdiff_pair.onnx")).unwrap();
    assert_eq!(
        info["model"]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    // The score is the model's probability wherever both dates were observed.
    let (w, h, score) = read_f32(&out.join("change_score.tif"));
    assert_eq!(
        (w, h),
        (200, 160),
        "the mask is on the before image's own grid"
    );
    let mut compared = 0;
    for (i, v) in score.iter().enumerate() {
        if v.is_finite() {
            let e = expected[[i / w, i % w]];
            assert!((v - e).abs() < 1e-5, "pixel {i}: {v} vs {e}");
            compared += 1;
        }
    }
    assert!(compared > w * h * 9 / 10, "{compared}");
    assert_eq!(
        s["threshold"][1].as_f64(),
        Some(0.5),
        "thresholds are the model's"
    );
    // The mask holds the roof and the pond and little else.
    let (_, _, mask) = read_f32(&out.join("change_mask.tif"));
    let at = |y: usize, x: usize| mask[y * w + x];
    assert_eq!((at(35, 55), at(107, 140)), (1.0, 1.0));
    let changed = mask.iter().filter(|v| **v == 1.0).count();
    assert!(changed > 2500 && changed < 4500, "{changed}");
    let ds = Dataset::open(out.join("change_score.tif")).unwrap();
    let desc = ds.rasterband(1).unwrap().description().unwrap();
    assert!(
        desc.contains("change probability") && desc.contains("absdiff-test"),
        "{desc}"
    );
}

#[test]
fn the_grid_is_read_at_the_models_pixel_size() {
    let dir = scratch("onnx-pixel-size");
    let (b, a) = rgb_pair(160, 200);
    let (bp, ap) = write_pair(&dir, &b, &a);
    let d = descriptor(&dir, "m.toml", "absdiff_pair.onnx", |t| {
        t.replace("overlap = 16", "overlap = 16\npixel_size_m = 1.0")
    });
    let o = run(detect_args(
        &bp,
        &ap,
        &dir.join("out"),
        &["--model", d.to_str().unwrap()],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["grid"]["pixel_width"].as_f64(), Some(1.0));
    assert_eq!(
        (s["grid"]["width"].as_u64(), s["grid"]["height"].as_u64()),
        (Some(100), Some(80))
    );
    assert_eq!(
        (
            s["grid"]["origin_x"].as_f64(),
            s["grid"]["origin_y"].as_f64()
        ),
        (Some(300_000.0), Some(3_450_000.0))
    );
    // A pinned [grid] pixel_size wins over the model's.
    let cfg = dir.join("landwatch.toml");
    std::fs::write(&cfg, "[grid]\npixel_size = 0.5\n").unwrap();
    let o = run(detect_args(
        &bp,
        &ap,
        &dir.join("out2"),
        &[
            "--model",
            d.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["grid"]["pixel_width"].as_f64(), Some(0.5));
    assert!(stderr(&o).contains("expects 1 m pixels"), "{}", stderr(&o));
    // `landwatch grid` shows the grid a configured model implies.
    std::fs::write(
        &cfg,
        format!(
            "[grid]\ncrs = \"EPSG:32651\"\n[detector]\nkind = \"onnx\"\nmodel = \"{}\"\n",
            d.display()
        ),
    )
    .unwrap();
    let o = run([
        "grid",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        bp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(g["grid"]["pixel_width"].as_f64(), Some(1.0));
}

#[test]
fn misconfigurations_fail_through_the_binary_before_any_work() {
    let dir = scratch("onnx-cli-errors");
    let (b, a) = rgb_pair(64, 64);
    let (bp, ap) = write_pair(&dir, &b, &a);
    let run_with = |extra: &[&str]| {
        let out = dir.join("out");
        let o = run(detect_args(&bp, &ap, &out, extra));
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stdout(&o));
        assert!(
            !out.join("change_mask.tif").exists(),
            "{extra:?}: no work was done"
        );
        stderr(&o)
    };
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "missing.toml",
            Box::new(|t: String| t.replace("absdiff_pair.onnx", "gone.onnx")),
            vec!["[model] file", "gone.onnx"],
        ),
        (
            "names.toml",
            Box::new(|t: String| t.replace("before = \"t1\"", "before = \"x1\"")),
            vec!["[input] before", "x1"],
        ),
        (
            "channels.toml",
            Box::new(|t: String| {
                t.replace("absdiff_pair.onnx", "absdiff_fixed64.onnx")
                    .replace("\"blue\"]", "\"blue\", \"nir\"]")
                    .replace("0.406]", "0.406, 0.5]")
                    .replace("0.225]", "0.225, 0.2]")
            }),
            vec!["[input] bands", "3 channel(s)"],
        ),
        (
            "tile.toml",
            Box::new(|t: String| {
                t.replace("absdiff_pair.onnx", "absdiff_fixed64.onnx")
                    .replace("tile = 64", "tile = 256")
            }),
            vec!["[input] tile", "fixed 64"],
        ),
        (
            "output.toml",
            Box::new(|t: String| t.replace("name = \"prob\"", "name = \"p\"")),
            vec!["[output] name"],
        ),
        (
            "roles.toml",
            Box::new(|t: String| t.replace("\"blue\"]", "\"nir\"]")),
            vec!["[input] bands", "nir", "before imagery has red,green,blue"],
        ),
    ];
    for (name, edit, expect) in cases {
        let d = descriptor(&dir, name, "absdiff_pair.onnx", edit);
        let e = run_with(&["--detector", "onnx", "--model", d.to_str().unwrap()]);
        assert!(e.contains(name), "{name}: {e}");
        for x in expect {
            assert!(e.contains(x), "{name}: expected '{x}' in: {e}");
        }
    }
    let e = run_with(&["--model", dir.join("nowhere.toml").to_str().unwrap()]);
    assert!(
        e.contains("nowhere.toml") && e.contains("cannot read the model descriptor"),
        "{e}"
    );
    let e = run_with(&["--detector", "onnx"]);
    assert!(e.contains("--detector onnx needs --model"), "{e}");
    let good = descriptor(&dir, "good.toml", "absdiff_pair.onnx", |t| t);
    let e = run_with(&["--detector", "spectral", "--model", good.to_str().unwrap()]);
    assert!(
        e.contains("--model is only used with --detector onnx"),
        "{e}"
    );
    let e = run_with(&["--combine", "both"]);
    assert!(
        e.contains("--combine is only used with a learned detector"),
        "{e}"
    );
    // The same choices from the config file: the section and field are named.
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[detector]\nkind = \"onnx\"\n").unwrap();
    let e = run_with(&["--config", cfg.to_str().unwrap()]);
    assert!(
        e.contains("bad.toml") && e.contains("[detector] model"),
        "{e}"
    );
}

#[test]
fn the_config_chooses_the_model_relative_to_itself() {
    let dir = scratch("onnx-config");
    let (b, a) = rgb_pair(96, 96);
    let (bp, ap) = write_pair(&dir, &b, &a);
    std::fs::create_dir_all(dir.join("models")).unwrap();
    descriptor(&dir.join("models"), "cd.toml", "absdiff_pair.onnx", |t| t);
    let cfg = dir.join("landwatch.toml");
    std::fs::write(
        &cfg,
        "[detector]\nkind = \"onnx\"\nmodel = \"models/cd.toml\"\ncombine = \"either\"\n",
    )
    .unwrap();
    let o = run(detect_args(
        &bp,
        &ap,
        &dir.join("out"),
        &["--config", cfg.to_str().unwrap()],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["detector"], "onnx:absdiff-test+spectral:either");
    assert_eq!(s["detector_info"]["combine"], "either");
    // The command line overrides the config.
    let o = run(detect_args(
        &bp,
        &ap,
        &dir.join("out2"),
        &["--config", cfg.to_str().unwrap(), "--detector", "spectral"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["detector"], "spectral");
    assert_eq!(s["detector_info"], serde_json::json!({"kind": "spectral"}));
}

/// Counts truth pixels found and changed pixels, from a mask and a truth raster on one grid.
fn recall_precision(mask: &[f32], truth: &[f32]) -> (f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    for (m, t) in mask.iter().zip(truth) {
        match (*m == 1.0, *t > 0.0) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            _ => {}
        }
    }
    (
        tp as f64 / (tp + fn_).max(1) as f64,
        tp as f64 / (tp + fp).max(1) as f64,
    )
}

#[test]
fn detect_with_an_onnx_model_runs_end_to_end_on_a_synthetic_scene_under_each_policy() {
    let scene = scene(1024, 11);
    let dir = scratch("onnx-scene");
    // The synthetic scene is 4-band UInt16 reflectance × 10 000.
    let d = descriptor(&dir, "m.toml", "absdiff_pair.onnx", |t| {
        t.replace(&format!("scale = {SCALE}"), "scale = 0.0001")
            .replace("mean = [0.485, 0.456, 0.406]", "mean = [0.1, 0.1, 0.1]")
            .replace("std = [0.229, 0.224, 0.225]", "std = [0.05, 0.05, 0.05]")
            .replace("tile = 64", "tile = 256")
            .replace("overlap = 16", "overlap = 32\npixel_size_m = 0.5")
    });
    let truth = read_f32(&scene.join("truth_change.tif")).2;
    let mut learned_p: Vec<f32> = Vec::new();
    for policy in ["learned", "both", "either"] {
        let out = dir.join(format!("out-{policy}"));
        let o = run(detect_args(
            &scene.join("imagery/before"),
            &scene.join("imagery/after"),
            &out,
            &[
                "--detector",
                "onnx",
                "--model",
                d.to_str().unwrap(),
                "--combine",
                policy,
            ],
        ));
        assert!(
            o.status.code() == Some(0) || o.status.code() == Some(2),
            "{policy}: {}",
            stderr(&o)
        );
        let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(s["detector_info"]["combine"], policy);
        let (w, h, mask) = read_f32(&out.join("change_mask.tif"));
        assert_eq!((w, h), (1024, 1024));
        let (r, p) = recall_precision(&mask, &truth);
        eprintln!(
            "synthetic 1024/11, onnx absdiff, {policy}: recall {r:.3} precision {p:.3}, {} changed px, {} regions",
            s["changed_px"],
            s["regions"].as_array().map_or(0, |v| v.len())
        );
        assert!(
            r > 0.8 && p > 0.8,
            "{policy}: recall {r:.3} precision {p:.3}"
        );
        // Clouds and shadows stay unobserved whatever the model says.
        assert!(mask.contains(&255.0), "{policy}");
        if policy == "learned" {
            learned_p = read_f32(&out.join("change_score.tif")).2;
        }
        // Alone or confirmed by the spectral detector, every changed pixel is one the model
        // flagged; with `either` the spectral detector may add its own.
        let beyond_model = mask
            .iter()
            .zip(&learned_p)
            .filter(|(m, p)| **m == 1.0 && (p.is_nan() || **p <= 0.5))
            .count();
        if policy != "either" {
            assert_eq!(beyond_model, 0, "{policy}");
        }
    }
}

#[test]
fn scan_with_an_onnx_model_finds_the_violations_and_names_the_model_in_every_manifest() {
    let scene = scene(1024, 11);
    let dir = scratch("onnx-scan");
    let d = descriptor(&dir, "m.toml", "absdiff_pair.onnx", |t| {
        t.replace(&format!("scale = {SCALE}"), "scale = 0.0001")
            .replace("mean = [0.485, 0.456, 0.406]", "mean = [0.1, 0.1, 0.1]")
            .replace("std = [0.229, 0.224, 0.225]", "std = [0.05, 0.05, 0.05]")
            .replace("tile = 64", "tile = 256")
            .replace("overlap = 16", "overlap = 32\npixel_size_m = 0.5")
    });
    let out = dir.join("out");
    let o = scan_config(
        &scene.join("landwatch.toml"),
        &out,
        &[
            "--detector",
            "onnx",
            "--model",
            d.to_str().unwrap(),
            "--combine",
            "both",
            "--json",
        ],
    );
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(2),
        "{}",
        stderr(&o)
    );
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let n = s["findings"].as_u64().unwrap();
    assert!(n >= 3, "{s}");
    // The scan's summary names the model as `detect`'s does (docs/DETECTORS.md).
    assert_eq!(s["detector_info"]["model"]["name"], "absdiff-test");
    assert_eq!(s["detector_info"]["combine"], "both");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["detector_info"], s["detector_info"]);
    let e = crate::common::eval_json(&scene.join("truth.geojson"), &out.join("findings.geojson"));
    eprintln!(
        "scan 1024/11 with the onnx absdiff model (both): parcel precision {} recall {}",
        e["parcel"]["precision"], e["parcel"]["recall"]
    );
    assert!(
        e["parcel"]["precision"].as_f64().unwrap() >= 0.9,
        "{}",
        e["parcel"]
    );
    let packets = s["packets"]["cases"].as_array().unwrap();
    assert_eq!(packets.len() as u64, n);
    for p in packets {
        let m: Value = serde_json::from_slice(
            &std::fs::read(Path::new(p["dir"].as_str().unwrap()).join("manifest.json")).unwrap(),
        )
        .unwrap();
        let model = &m["detector"]["model"];
        assert_eq!(model["name"], "absdiff-test", "{}", m["detector"]);
        assert_eq!(model["version"], "1.0");
        assert!(model["license"].is_string());
        assert_eq!(model["sha256"].as_str().map(str::len), Some(64));
    }
}
