//! Imagery ingest: find rasters, read their georeferencing and metadata, hash them, and read
//! grid cells from them through GDAL (reprojection, resampling, mosaicking, validity masks).
//!
//! This is the only module that reads imagery with GDAL.

pub mod catalog;
pub mod checksum;
pub mod groups;
pub mod plan;
pub mod read;
pub mod srs;
pub mod vector;

pub use crate::bands::{BandRole, RoleSource};
pub use crate::image::CellImage;
pub use catalog::{catalog_paths, describe_raster, CatalogEntry, CatalogOptions, RasterInfo};
pub use groups::{group_observations, Observation};
pub use read::{CellReader, DateSources, ImageSource};

use std::path::PathBuf;

/// Why a raster cannot be used, or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// GDAL could not open the file as a raster.
    #[error("{path}: GDAL cannot open this file as a raster ({detail}); check that it is a complete image file")]
    NotOpenable {
        /// The file.
        path: PathBuf,
        /// GDAL's message.
        detail: String,
    },
    /// The file's structure is broken (truncated, blocks past the end of the file).
    #[error("{path}: the file is corrupt: {detail}; re-copy or re-download it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is broken.
        detail: String,
    },
    /// Decoding pixels failed.
    #[error("{path}: pixels could not be decoded ({detail}); the file is probably corrupt or truncated, re-copy it")]
    PixelsUnreadable {
        /// The file.
        path: PathBuf,
        /// GDAL's message.
        detail: String,
    },
    /// No geotransform and no CRS: the image cannot be placed on the ground.
    #[error("{path}: no georeferencing (no geotransform and no CRS); georeference it first, e.g. `gdal_translate -a_srs EPSG:4549 -a_ullr ...`")]
    NoGeoreferencing {
        /// The file.
        path: PathBuf,
    },
    /// A CRS but no geotransform.
    #[error("{path}: has a CRS but no geotransform, so pixels cannot be placed; add one with `gdal_translate -a_ullr ...` or `gdal_edit.py`")]
    NoGeoTransform {
        /// The file.
        path: PathBuf,
    },
    /// A geotransform but no CRS.
    #[error("{path}: has a geotransform but no coordinate reference system; assign one with `gdal_edit.py -a_srs EPSG:<code>`")]
    NoCrs {
        /// The file.
        path: PathBuf,
    },
    /// Only ground control points, no geotransform.
    #[error("{path}: georeferenced only by {gcp_count} ground control points (no geotransform); rectify it first with `gdalwarp`")]
    GcpOnly {
        /// The file.
        path: PathBuf,
        /// How many GCPs the file has.
        gcp_count: usize,
    },
    /// The raster has no bands.
    #[error("{path}: the raster has no bands")]
    NoBands {
        /// The file.
        path: PathBuf,
    },
    /// The raster's CRS could not be interpreted or transformed.
    #[error("{path}: CRS problem: {detail}")]
    Crs {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The file could not be read from disk.
    #[error("{path}: cannot read the file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A band-role list does not fit the raster.
    #[error("{path}: band roles: {detail}")]
    BandRoles {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        detail: String,
    },
    /// The sidecar JSON is malformed.
    #[error("{path}: sidecar {sidecar} is not valid: {detail}")]
    Sidecar {
        /// The raster.
        path: PathBuf,
        /// The sidecar file.
        sidecar: PathBuf,
        /// The parse error.
        detail: String,
    },
    /// The grid's pixel size cannot be set as asked.
    #[error("grid in {crs}: pixel size: {detail}")]
    GridPixelSize {
        /// The grid CRS.
        crs: String,
        /// Why, and what to do.
        detail: String,
    },
    /// Reading or warping a cell failed.
    #[error("cell {cell}: {detail}")]
    CellRead {
        /// The cell id.
        cell: String,
        /// What failed, naming the file.
        detail: String,
    },
}

impl IngestError {
    /// A short machine-readable code for the kind of problem, used in JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            IngestError::NotOpenable { .. } => "not_openable",
            IngestError::Corrupt { .. } => "corrupt",
            IngestError::PixelsUnreadable { .. } => "pixels_unreadable",
            IngestError::NoGeoreferencing { .. } => "no_georeferencing",
            IngestError::NoGeoTransform { .. } => "no_geotransform",
            IngestError::NoCrs { .. } => "no_crs",
            IngestError::GcpOnly { .. } => "gcp_only",
            IngestError::NoBands { .. } => "no_bands",
            IngestError::Crs { .. } => "crs",
            IngestError::Io { .. } => "io",
            IngestError::BandRoles { .. } => "band_roles",
            IngestError::Sidecar { .. } => "sidecar",
            IngestError::GridPixelSize { .. } => "grid_pixel_size",
            IngestError::CellRead { .. } => "cell_read",
        }
    }
}

/// Sets GDAL's process-wide options once: block cache size, quiet error output routed to the log.
///
/// The default block cache (5% of RAM) made whole-file reads 2.3× slower on the development
/// machine than an explicit size, so the cache is always set explicitly: 256 MiB unless the
/// `GDAL_CACHEMAX` environment variable says otherwise. A scan reads each cell's window in one
/// request and goes through the grid row by row, so the blocks under the halo between two rows of
/// cells must stay cached from one row to the next: the blocks of both dates across the scene's
/// width. On the 5000² peer scene (4 UInt16 bands, 512 px blocks) 128 MiB fell short and those
/// blocks were decoded twice (DEFLATE decoding 1.8 s instead of 1.2 s of one thread's CPU, 0.6 s
/// more user time in all) for 135 MB less peak memory; 512 MiB cost 960 MB of peak memory at the
/// speed of 256. Below ~32 MiB blocks are decoded again within one window and the scan slows down
/// sharply. Much wider scenes want more (`GDAL_CACHEMAX`, in MiB).
pub fn init_gdal() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cache = std::env::var("GDAL_CACHEMAX").unwrap_or_else(|_| "256".to_string());
        // Setting a config option only fails for keys with interior NUL bytes.
        let _ = gdal::config::set_config_option("GDAL_CACHEMAX", &cache);
        let _ = gdal::config::set_config_option("CPL_LOG_ERRORS", "OFF");
        gdal::config::set_error_handler(|class, code, msg| {
            tracing::debug!(target: "gdal", ?class, code, "{msg}");
        });
    });
}
