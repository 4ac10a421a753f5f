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
    /// No file at the path given.
    #[error("{path}: no such file; check the path (relative paths are from the configuration file's directory, or the current one on the command line)")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// GDAL could not open the file as a raster.
    #[error("{path}: GDAL cannot open this file as a raster ({detail}); check that it is a complete image file")]
    NotOpenable {
        /// The file.
        path: PathBuf,
        /// GDAL's message.
        detail: String,
    },
    /// GDAL could not open the file as a vector layer.
    #[error("{path}: GDAL cannot open this file as vector data ({detail}); parcels, permits and control layers are GeoPackage, Shapefile or GeoJSON")]
    NotOpenableVector {
        /// The file.
        path: PathBuf,
        /// GDAL's message, or which layer is missing.
        detail: String,
    },
    /// The vector file has not the layer asked for, or no layer at all.
    #[error("{path}: {detail}; name the layer in the configuration ([parcels] layer, permits_layer, or the control layer's layer)")]
    NoLayer {
        /// The file.
        path: PathBuf,
        /// Which layer is missing, and the layers there are.
        detail: String,
    },
    /// The vector file has several layers, none was named, and none (or more than one) is named
    /// for what it is read for.
    #[error("{path}: the file has several layers ({layers}) and none is named for the {what}; name the one that holds them with {naming}")]
    SeveralLayers {
        /// The file.
        path: PathBuf,
        /// What the layer is read for (`parcels`, `permits`, `eco_redline control layer`).
        what: String,
        /// The layers there are, with their feature counts.
        layers: String,
        /// The configuration key or flag that names a layer.
        naming: String,
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
    /// A vector layer that does not say which CRS its coordinates are in.
    #[error("{path}: layer '{layer}' does not say which coordinate reference system its coordinates are in (a Shapefile without its .prj?){hint}; state it with `[parcels] crs = \"EPSG:<code>\"` in the configuration or `--parcels-crs EPSG:<code>`, or write it into the file: `ogr2ogr -a_srs EPSG:<code> fixed.gpkg {path}`")]
    LayerNoCrs {
        /// The file.
        path: PathBuf,
        /// The layer.
        layer: String,
        /// What its coordinates look like (`; its coordinates look like …`), or empty.
        hint: String,
    },
    /// A vector layer that says its coordinates are degrees when they are not (a GeoJSON file of
    /// projected coordinates without its `crs` member, which GDAL takes for WGS 84).
    #[error("{path}: layer '{layer}' says its coordinates are longitude and latitude in degrees ({said}; a GeoJSON file without a `crs` member is taken to be in WGS 84), but they run from {extent}, which are no degrees{hint}; state the CRS they are in with `[parcels] crs = \"EPSG:<code>\"` in the configuration or `--parcels-crs EPSG:<code>`, or write it into the file: `ogr2ogr -a_srs EPSG:<code> fixed.gpkg {path}`")]
    LayerNotDegrees {
        /// The file.
        path: PathBuf,
        /// The layer.
        layer: String,
        /// The CRS the layer says.
        said: String,
        /// Its extent, `x0, y0 to x1, y1`.
        extent: String,
        /// What its coordinates look like (`; its coordinates look like …`), or empty.
        hint: String,
    },
    /// Only ground control points, no geotransform.
    #[error("{path}: georeferenced only by {gcp_count} ground control points (no geotransform); rectify it first with `gdalwarp`")]
    GcpOnly {
        /// The file.
        path: PathBuf,
        /// How many GCPs the file has.
        gcp_count: usize,
    },
    /// A geotransform that is not north-up (rotated, sheared, or rows going north).
    #[error("{path}: the raster is {how} (its geotransform is not north-up), which landwatch does not read; make a north-up copy with `gdalwarp {path} north_up.tif` (GDAL resamples it onto a north-up grid) and use that")]
    NotNorthUp {
        /// The file.
        path: PathBuf,
        /// `rotated` or `south-up`.
        how: &'static str,
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
            IngestError::NotFound { .. } => "not_found",
            IngestError::NotOpenable { .. } | IngestError::NotOpenableVector { .. } => {
                "not_openable"
            }
            IngestError::NoLayer { .. } => "no_layer",
            IngestError::SeveralLayers { .. } => "several_layers",
            IngestError::Corrupt { .. } => "corrupt",
            IngestError::PixelsUnreadable { .. } => "pixels_unreadable",
            IngestError::NoGeoreferencing { .. } => "no_georeferencing",
            IngestError::NoGeoTransform { .. } => "no_geotransform",
            IngestError::NoCrs { .. } | IngestError::LayerNoCrs { .. } => "no_crs",
            IngestError::LayerNotDegrees { .. } => "crs",
            IngestError::GcpOnly { .. } => "gcp_only",
            IngestError::NotNorthUp { .. } => "not_north_up",
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
/// `GDAL_CACHEMAX` environment variable says otherwise. A scan then sizes it to its imagery
/// ([`scan_block_cache_bytes`]).
pub fn init_gdal() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cache = std::env::var("GDAL_CACHEMAX").unwrap_or_else(|_| "256".to_string());
        // Setting a config option only fails for keys with interior NUL bytes.
        let _ = gdal::config::set_config_option("GDAL_CACHEMAX", &cache);
        let _ = gdal::config::set_config_option("CPL_LOG_ERRORS", "OFF");
        gdal::config::set_error_handler(|class, code, msg| {
            if msg.contains(" parsed incompletely to ") {
                PARTLY_PARSED.with(|kept| {
                    if let Some(kept) = kept.borrow_mut().as_mut() {
                        kept.push(msg.to_string());
                    }
                });
            }
            tracing::debug!(target: "gdal", ?class, code, "{msg}");
        });
    });
}

thread_local! {
    /// GDAL's warnings of this thread about a value of a numeric field it read only in part
    /// (`Value '是' of field parcels.basic_farm parsed incompletely to real 0.`: text in a
    /// Shapefile's numeric column), kept while a vector layer is read ([`keep_partly_parsed`]).
    static PARTLY_PARSED: std::cell::RefCell<Option<Vec<String>>> =
        const { std::cell::RefCell::new(None) };
}

/// Starts (`true`) or stops keeping this thread's warnings of values GDAL parsed only in part.
pub(crate) fn keep_partly_parsed(on: bool) {
    PARTLY_PARSED.with(|kept| *kept.borrow_mut() = on.then(Vec::new));
}

/// The warnings of values GDAL parsed only in part kept since the last call.
pub(crate) fn take_partly_parsed() -> Vec<String> {
    PARTLY_PARSED.with(|kept| {
        kept.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

/// The smallest block cache a scan sets: below ~32 MiB blocks are decoded again within one
/// cell's window.
const SCAN_CACHE_MIN: u64 = 64 << 20;
/// The largest: memory stays bounded however wide the scene (wider rows of cells then decode
/// the blocks under the halo between two rows twice).
const SCAN_CACHE_MAX: u64 = 1 << 30;

/// The GDAL block cache a scan of these rasters on this grid needs for each source block to be
/// decoded once, clamped to 64 MiB – 1 GiB.
///
/// A scan reads each cell's window (core and halo) in one request and goes through the grid
/// row by row, so the blocks under the halo between two rows of cells must stay cached from one
/// row to the next: per raster, the rows of blocks one window spans plus one, across the
/// raster's width, all bands (a pixel-interleaved file's bands are decoded together). The change
/// score rasters' blocks of one row of cells stay in the cache too once written. On the 5000²
/// peer scene (two files of 4 UInt16 bands in 512 px blocks, a grid 5960 px wide) that is
/// 183 MiB: counted with a probe on libtiff, the 200 blocks are decoded once each down to a
/// 160 MiB cache and 216 times at 128 MiB, and the 256 MiB the scan used before only touched
/// ~70 MB more memory (~17 000 more page faults).
pub fn scan_block_cache_bytes(
    rasters: &[&RasterInfo],
    grid: &crate::grid::GridDef,
    score_rasters: usize,
) -> u64 {
    let window_rows = (grid.cell_size + 2 * grid.halo) as f64;
    let mut need: u64 = 0;
    for r in rasters {
        let (bw, bh) = r.block_size.unwrap_or((r.width, 1));
        let (bw, bh) = (bw.max(1), bh.max(1));
        let pixel_bytes: u64 = r
            .bands
            .iter()
            .map(|b| {
                gdal::raster::GdalDataType::from_name(&b.data_type)
                    .map(|t| t.bytes() as u64)
                    .unwrap_or(8)
            })
            .sum();
        // The raster's rows under one window of the grid (its pixels may be finer or coarser;
        // an estimate is enough: only speed depends on it).
        let scale = r
            .pixel_size
            .map(|(_, py)| grid.pixel_height / py)
            .filter(|s| s.is_finite())
            .unwrap_or(1.0)
            .clamp(1.0 / 16.0, 16.0);
        let rows = (window_rows * scale).ceil() as u64;
        let block_rows = rows.div_ceil(bh as u64) + 1;
        let across = r.width.div_ceil(bw) as u64;
        need = need.saturating_add(across * (bw * bh) as u64 * pixel_bytes * block_rows);
    }
    let score_row = grid.width as u64 * grid.cell_size as u64 * 4;
    need = need.saturating_add(score_rasters as u64 * score_row);
    need.clamp(SCAN_CACHE_MIN, SCAN_CACHE_MAX)
}

/// Sets GDAL's block cache to `bytes` for the rest of the process, unless the `GDAL_CACHEMAX`
/// environment variable chose a size.
pub fn size_block_cache(bytes: u64) {
    init_gdal();
    if std::env::var_os("GDAL_CACHEMAX").is_some() {
        return;
    }
    tracing::debug!("GDAL block cache: {} MiB", bytes >> 20);
    crate::gdal_ext::set_cache_max(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{Bounds, GridDef};

    /// A sparse tiled GeoTIFF (256 px blocks, none written) of four UInt16 bands, catalogued.
    fn tiled(dir: &std::path::Path, name: &str, size: (usize, usize), px: f64) -> RasterInfo {
        init_gdal();
        let path = dir.join(name);
        let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut opts = gdal::cpl::CslStringList::new();
        for (k, v) in [
            ("TILED", "YES"),
            ("BLOCKXSIZE", "256"),
            ("BLOCKYSIZE", "256"),
            ("SPARSE_OK", "TRUE"),
        ] {
            opts.set_name_value(k, v).unwrap();
        }
        let mut ds = driver
            .create_with_band_type_with_options::<u16, _>(&path, size.0, size.1, 4, &opts)
            .unwrap();
        ds.set_geo_transform(&[300000.0, px, 0.0, 3450000.0, 0.0, -px])
            .unwrap();
        drop(ds);
        describe_raster(&path, &CatalogOptions::default())
            .info
            .unwrap()
    }

    fn grid(width: usize) -> GridDef {
        let b = Bounds {
            min_x: 300000.0,
            min_y: 3449700.0,
            max_x: 300000.0 + width as f64 * 0.5,
            max_y: 3450000.0,
        };
        GridDef::covering("EPSG:32651", &b, 0.5, 1024, 32, Some((300000.0, 3450000.0)))
    }

    #[test]
    fn the_scan_cache_holds_the_block_rows_under_a_row_of_cells() {
        let dir = tempfile::tempdir().unwrap();
        let wide = tiled(dir.path(), "wide.tif", (8000, 600), 0.5);
        // 32 blocks across of 256² × 4 UInt16 bands, over the 5 block rows one 1088-row window
        // spans plus one; and one row of cells of the score raster (8000 × 1024 f32).
        let per_raster = 32 * 256 * 256 * 8 * 6;
        let score = 8000 * 1024 * 4;
        assert_eq!(
            scan_block_cache_bytes(&[&wide], &grid(8000), 1),
            per_raster + score
        );
        assert_eq!(
            scan_block_cache_bytes(&[&wide, &wide], &grid(8000), 1),
            2 * per_raster + score
        );
        // Pixels twice as coarse as the grid's: half the rows under a window (544: 3 block rows
        // plus one).
        let coarse = tiled(dir.path(), "coarse.tif", (8000, 600), 1.0);
        assert_eq!(
            scan_block_cache_bytes(&[&coarse], &grid(8000), 0),
            32 * 256 * 256 * 8 * 4
        );
        // Clamped both ways.
        let small = tiled(dir.path(), "small.tif", (300, 300), 0.5);
        assert_eq!(scan_block_cache_bytes(&[&small], &grid(300), 1), 64 << 20);
        let many: Vec<&RasterInfo> = std::iter::repeat_n(&wide, 20).collect();
        assert_eq!(scan_block_cache_bytes(&many, &grid(8000), 1), 1 << 30);
    }
}
