//! The integration test crate: runs the real `landwatch` binary on generated scenes and on the
//! real data in `../shared/data` (see `real_data`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
mod detection;
mod evidence;
mod fixtures;
mod foundation;
mod inputs;
mod nightly;
mod onnx;
mod real_data;
mod scan;
mod store;
