//! Reading grid cells through GDAL: an aligned satellite cell (direct windowed reads, mosaicked
//! from overlapping tiles) and a cell over the 5 cm drone orthophoto (warped, area-averaged).
//!
//! Run with `cargo bench --bench ingest`. The scene is generated once into a temporary folder.

#![allow(clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use landwatch::config::Config;
use landwatch::ingest::plan::{plan_grid, GridRequest};
use landwatch::ingest::{catalog_paths, group_observations, CatalogOptions, CellReader};

fn bench_cells(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = landwatch::synth::generate(&landwatch::synth::SynthOptions {
        out: dir.path().to_path_buf(),
        size: 2048,
        seed: 1,
    })
    .expect("synth");
    let cfg = Config::load(&summary.out.join("landwatch.toml")).expect("config");
    let before = catalog_paths(&cfg.before_paths(), &CatalogOptions::default());
    let after = catalog_paths(&cfg.after_paths(), &CatalogOptions::default());
    let all: Vec<_> = before.iter().chain(&after).collect();
    let req = GridRequest {
        crs: cfg.grid.crs.clone(),
        pixel_size: cfg.grid.pixel_size,
        pixel_size_m: None,
        cell_size: 1024,
        halo: 32,
        origin: cfg.grid.origin.map(|o| (o[0], o[1])),
        parcels: None,
        parcels_layer: None,
        parcels_crs: None,
    };
    let grid = plan_grid(&req, &all).expect("grid");
    let cells = grid.cells();
    let sat = group_observations(&before).remove(0);
    let drone = group_observations(&after)
        .into_iter()
        .find(|o| o.name == "drone")
        .expect("drone observation");
    let drone_cell = cells
        .iter()
        .find(|cell| {
            let b = grid.window_bounds(&cell.core);
            drone.sources.sources[0]
                .info
                .footprint
                .as_ref()
                .and_then(|f| f.wgs84_bounds)
                .is_some()
                && landwatch::ingest::plan::bounds_in_crs(
                    &drone.sources.sources[0].info,
                    &drone.sources.sources[0].path,
                    &grid.crs,
                )
                .ok()
                .and_then(|d| d.intersection(&b))
                .is_some()
        })
        .expect("a cell under the drone")
        .clone();

    let mut g = c.benchmark_group("read_cell");
    g.sample_size(10);
    let px = (cells[0].read.width * cells[0].read.height) as u64;
    g.throughput(Throughput::Elements(px));
    let mut reader = CellReader::new(&grid, &sat.sources).expect("reader");
    g.bench_function("satellite_aligned_1088px_4band", |b| {
        b.iter(|| reader.read(&cells[0].id, &cells[0].read).expect("read"))
    });
    let mut reader = CellReader::new(&grid, &drone.sources).expect("reader");
    g.bench_function("drone_5cm_warped_to_0.5m_1088px", |b| {
        b.iter(|| reader.read(&drone_cell.id, &drone_cell.read).expect("read"))
    });
    g.finish();
}

criterion_group!(benches, bench_cells);
criterion_main!(benches);
