//! Evidence packets: one signed, verifiable directory per suspected violation.
//!
//! `write_packet` turns a `PacketInput` into `packets/<case-id>/` (or a new version
//! `<case-id>.vN/` when the finding changed): true-colour chips and a change heat map as PNG and
//! GeoTIFF, `finding.geojson`, `report.html`, `manifest.json` (schema `landwatch-evidence/1`,
//! documented in `docs/evidence-manifest.md`) and `manifest.sig` (Ed25519). `verify_packet`
//! checks a packet directory or zip. Files are never modified once their hash is recorded.

pub mod archive;
pub mod error;
#[doc(hidden)]
pub mod example;
pub mod input;
pub mod keys;
pub mod manifest;
pub mod packet;
pub mod render;
pub mod report;
pub mod verify;

pub use archive::{write_zip, zip_path};
pub use error::EvidenceError;
#[doc(hidden)]
pub use example::example_input;
pub use input::{Acquisition, Chip, PacketInput, PermitFootprint, SourceTile};
pub use keys::{
    fingerprint, load_signing_key, load_verifying_key, sign, verify, write_key_pair, KeyPairFiles,
    SigningKey, VerifyingKey,
};
pub use manifest::{Manifest, SCHEMA_VERSION};
pub use packet::{write_packet, PacketOptions, WrittenPacket};
pub use verify::{verify_packet, GivenKey, VerifyReport};
