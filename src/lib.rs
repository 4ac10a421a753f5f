//! landwatch: nightly change detection over satellite and drone imagery for natural-resources
//! law enforcement.
//!
//! The data flows one way — catalogue → grid → detect → vectorize → overlay + rules → evidence →
//! store → review / export — and each stage is a module. The pure core (grid arithmetic,
//! detection, overlay, rules) works on arrays and plain structs; the IO shell (ingest, export,
//! synth's writers, the binary) touches files.
//!
//! A flag is a *suspected* violation (疑似违法用地线索): a lead for officers to check in the field,
//! never a verdict.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod bands;
pub mod config;
pub mod detect;
pub mod eval;
pub mod eval_findings;
pub mod evidence;
pub mod export;
mod gdal_ext;
pub mod grid;
pub mod image;
pub mod ingest;
pub mod land_use;
pub mod overlay;
pub mod parcels;
pub mod pipeline;
pub mod rasterize;
pub mod rules;
pub mod store;
pub mod synth;
pub mod vectorize;

/// The software version, recorded in every output.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit landwatch was built from (`unknown` outside a git checkout).
pub const GIT_COMMIT: &str = env!("LANDWATCH_GIT_COMMIT");
