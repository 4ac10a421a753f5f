//! Evidence packets: one signed, verifiable directory per suspected violation.

pub mod input;

pub use input::{Acquisition, Chip, PacketInput, PermitFootprint, SourceTile};
