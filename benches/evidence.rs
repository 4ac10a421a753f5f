//! Writing evidence packets: one packet at a time, and 1,000 findings written in parallel (rayon)
//! as the scan does. Every packet is complete: three PNGs, three GeoTIFFs, GeoJSON, the report,
//! the manifest and its Ed25519 signature, fsynced and renamed into place.
//!
//! Run with `cargo bench --bench evidence`; the time per packet is the reciprocal of the reported
//! throughput (elements per second).

#![allow(clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use landwatch::evidence::{example_input, write_packet, PacketOptions, SigningKey};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static CASE: AtomicU64 = AtomicU64::new(0);

fn bench_packets(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let template = example_input();
    let opts = PacketOptions::default();
    let mut group = c.benchmark_group("evidence");

    group.throughput(Throughput::Elements(1));
    group.bench_function("one_packet", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut input = template.clone();
                input.case_id = format!("bench-{:07}", CASE.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                write_packet(dir.path(), &input, &key, &opts).expect("packet");
                total += t.elapsed();
            }
            total
        })
    });

    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000_findings_parallel", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let out = tempfile::tempdir_in(dir.path()).expect("temp dir");
                let inputs: Vec<_> = (0..1000)
                    .map(|_| {
                        let mut input = template.clone();
                        input.case_id =
                            format!("bench-{:07}", CASE.fetch_add(1, Ordering::Relaxed));
                        input
                    })
                    .collect();
                let t = Instant::now();
                inputs.par_iter().for_each(|input| {
                    write_packet(out.path(), input, &key, &opts).expect("packet");
                });
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench_packets);
criterion_main!(benches);
