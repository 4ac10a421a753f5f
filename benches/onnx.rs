//! The learned detector's model runtime (tract), arrays in memory: no IO in the measurement.
//! Run with `cargo bench --bench onnx`.
//!
//! - `tile_256px_3band/convnet`: one 256 × 256 three-channel tile (before and after) through
//!   `fixtures/models/convnet_bench.onnx`, a small convolutional network (3×3 conv 6→16, ReLU,
//!   3×3 conv 16→16, ReLU, 1×1 conv 16→1, sigmoid: about 0.42 GFLOP per tile), one thread.
//! - `tile_256px_3band/absdiff`: the same tile through the per-pixel test model, the floor set by
//!   tract's per-run overhead and landwatch's output handling.
//! - `window_1088px/convnet`: the probability over a default cell's read window (1024 + two
//!   32-pixel halos) with 32 pixels of overlap: 25 tiles, normalisation and blending included,
//!   tiles in parallel on all cores.
//!
//! Criterion's element throughput is pixels per second (Melem/s = MPix/s).

#![allow(clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use landwatch::bands::BandRole;
use landwatch::detect::onnx::OnnxModel;
use landwatch::grid::Window;
use landwatch::image::CellImage;
use ndarray::{Array2, Array3, Array4};
use std::path::{Path, PathBuf};

fn descriptor(dir: &Path, model: &str, tile: usize) -> PathBuf {
    let path = dir.join(format!("{model}.toml"));
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/models")
        .join(format!("{model}.onnx"));
    std::fs::write(
        &path,
        format!(
            "[model]\nfile = \"{}\"\nname = \"{model}\"\nversion = \"bench\"\nlicense = \"CC0-1.0\"\ntrained_on = \"nothing\"\n\
             [input]\nbefore = \"t1\"\nafter = \"t2\"\nbands = [\"red\", \"green\", \"blue\"]\nscale = 0.00392156862745098\n\
             mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\ntile = {tile}\noverlap = 32\n\
             [output]\nname = \"prob\"\nkind = \"probability\"\n",
            file.display()
        ),
    )
    .expect("descriptor");
    path
}

fn image(n: usize, seed: usize) -> CellImage {
    let bands = Array3::from_shape_fn((3, n, n), |(k, y, x)| {
        ((k * 31 + y * 7 + x * 13 + seed * 101) % 251) as f32
    });
    CellImage {
        window: Window {
            x: 0,
            y: 0,
            width: n,
            height: n,
        },
        roles: vec![BandRole::Red, BandRole::Green, BandRole::Blue],
        bands,
        valid: Array2::from_elem((n, n), true),
        flagged: None,
        contributing: vec![0],
    }
}

fn bench_onnx(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tile = 256;
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut g = c.benchmark_group("tile_256px_3band");
    g.sample_size(20);
    g.throughput(Throughput::Elements((tile * tile) as u64));
    for model in ["convnet_bench", "absdiff_pair"] {
        let m = OnnxModel::load(&descriptor(dir.path(), model, tile)).expect("model");
        let input = Array4::from_shape_fn((1, 3, tile, tile), |(_, k, y, x)| {
            ((k + y * 3 + x) % 17) as f32 / 17.0
        });
        let label = model.trim_end_matches("_bench").trim_end_matches("_pair");
        g.bench_function(label, |b| {
            b.iter(|| one_thread.install(|| m.run_tile(input.clone(), input.clone()).expect("run")))
        });
    }
    g.finish();

    let n = 1088;
    let (before, after) = (image(n, 1), image(n, 2));
    let m = OnnxModel::load(&descriptor(dir.path(), "convnet_bench", tile)).expect("model");
    let mut g = c.benchmark_group("window_1088px");
    g.sample_size(10);
    g.throughput(Throughput::Elements((n * n) as u64));
    g.bench_function("convnet", |b| {
        b.iter(|| m.probability(&before, &after).expect("probability"))
    });
    g.finish();
}

criterion_group!(benches, bench_onnx);
criterion_main!(benches);
