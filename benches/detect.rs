//! The spectral detector on one 2048 × 2048 four-band cell (plus a 32-pixel halo), arrays in
//! memory: no IO in the measurement. Run with `cargo bench --bench detect`.

#![allow(clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use landwatch::bands::BandRole;
use landwatch::detect::{CellInput, Detector, SpectralDetector};
use landwatch::grid::Window;
use landwatch::image::CellImage;
use landwatch::synth::model::{build_scene, ORIGIN, PIXEL_M};
use landwatch::synth::render::{render, PixelGrid, Shot};
use ndarray::{Array2, Array3};

fn cell_image(shot: Shot, size: usize) -> CellImage {
    let scene = build_scene(size, 7);
    let grid = PixelGrid {
        to_scene: [ORIGIN.0, PIXEL_M, 0.0, ORIGIN.1, 0.0, -PIXEL_M],
        width: size,
        height: size,
        noise_offset: (0, 0),
    };
    let r = render(&scene, &grid, shot);
    let mut bands = Array3::<f32>::zeros((4, size, size));
    for (b, data) in r.bands.iter().enumerate() {
        for (i, v) in data.iter().enumerate() {
            bands[[b, i / size, i % size]] = *v;
        }
    }
    CellImage {
        window: Window {
            x: 0,
            y: 0,
            width: size,
            height: size,
        },
        roles: vec![
            BandRole::Blue,
            BandRole::Green,
            BandRole::Red,
            BandRole::Nir,
        ],
        bands,
        valid: Array2::from_shape_vec((size, size), r.valid).expect("shape"),
        flagged: None,
        contributing: vec![0],
    }
}

fn bench_detect(c: &mut Criterion) {
    let size = 2048 + 64;
    let before = cell_image(Shot::Before, size);
    let after = cell_image(Shot::After, size);
    let detector = SpectralDetector::default();
    let input = CellInput {
        cell_id: "bench",
        before: &before,
        after: &after,
        core_offset: (32, 32),
        core_size: (2048, 2048),
        pixel_area_m2: 0.25,
    };
    let mut g = c.benchmark_group("detect");
    g.sample_size(10);
    g.throughput(Throughput::Elements((2048 * 2048) as u64));
    g.bench_function("spectral_2048px_4band_cell", |b| {
        b.iter(|| detector.detect(&input).expect("detect"))
    });
    g.finish();
}

criterion_group!(benches, bench_detect);
criterion_main!(benches);
