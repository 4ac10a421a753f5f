//! What can go wrong while writing, signing or reading evidence; every variant names its file.

use std::path::PathBuf;

/// An evidence packet or key could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The operating system refused (create, write, fsync, rename, read).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file is not in landwatch's key format.
    #[error("key file {path}: {detail}")]
    KeyFormat {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// `keygen` will not overwrite an existing key.
    #[error("key file {path} already exists; landwatch never overwrites a key (move it away or choose another --name)")]
    KeyExists {
        /// The existing key file.
        path: PathBuf,
    },
    /// The operating system's random number generator failed.
    #[error("no randomness from the operating system for a new key: {detail}")]
    Randomness {
        /// The error.
        detail: String,
    },
    /// The finding's data cannot make a packet (empty chip, chips of different sizes, …).
    #[error("packet {case_id}: {detail}")]
    InvalidInput {
        /// The case id.
        case_id: String,
        /// What does not fit.
        detail: String,
    },
    /// The case id cannot be a directory name.
    #[error("case id {case_id:?} cannot name a packet directory: {detail}")]
    BadCaseId {
        /// The case id.
        case_id: String,
        /// Why.
        detail: String,
    },
    /// Coordinates could not be transformed (working CRS to WGS84).
    #[error("packet {case_id}: transforming coordinates from {crs} to WGS84: {detail}")]
    Transform {
        /// The case id.
        case_id: String,
        /// The working CRS.
        crs: String,
        /// GDAL's message.
        detail: String,
    },
    /// A packet file could not be rendered or written (PNG, GeoTIFF, GeoJSON, JSON).
    #[error("packet {case_id}: writing {file}: {detail}")]
    File {
        /// The case id.
        case_id: String,
        /// The file inside the packet.
        file: String,
        /// What failed.
        detail: String,
    },
    /// A zip archive could not be written or read.
    #[error("{path}: zip archive: {detail}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The packet directory named after this case holds the packet of another finding: the store
    /// that numbered the cases is not the one whose runs wrote the packets.
    #[error("{0}")]
    OtherFindingsPacket(Box<OtherFindingsPacket>),
    /// The path to verify is neither a packet directory nor a packet zip.
    #[error("{path}: not an evidence packet ({detail})")]
    NotAPacket {
        /// The path.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// A packet directory that holds another finding's packet than the one its case now names.
#[derive(Debug, thiserror::Error)]
#[error(
    "packets/{} holds the packet of another finding ({held_finding_id}, parcel {held_parcel_id}), \
     not of finding {finding_id} (parcel {parcel_id}) that case {case_id} now names — the store \
     that numbered these cases is not the one that wrote the packets; restore the store or move \
     the packets directory aside (the packet is not written and the existing one is left as it is)",
    dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
)]
pub struct OtherFindingsPacket {
    /// The existing packet directory.
    pub dir: PathBuf,
    /// The case the new packet is for.
    pub case_id: String,
    /// The finding the existing packet is of.
    pub held_finding_id: String,
    /// Its parcel.
    pub held_parcel_id: String,
    /// The finding the new packet would be of.
    pub finding_id: String,
    /// Its parcel.
    pub parcel_id: String,
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EvidenceError {
    let path = path.into();
    move |source| EvidenceError::Io { path, source }
}
