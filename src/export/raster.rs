//! GeoTIFF writing: tiled, compressed, georeferenced, with band descriptions and metadata.

use super::{commit, gdal_err, temp_path, ExportError};
use crate::ingest::srs;
use gdal::cpl::CslStringList;
use gdal::raster::{Buffer, ColorInterpretation, GdalType};
use gdal::{DriverManager, Metadata};
use std::path::Path;

/// How to write a GeoTIFF.
#[derive(Debug, Clone)]
pub struct GeoTiffSpec {
    /// CRS as `EPSG:xxxx` or WKT.
    pub crs: String,
    /// GDAL-order geotransform.
    pub geo_transform: [f64; 6],
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// One description per band (e.g. `blue`), empty for none.
    pub band_descriptions: Vec<String>,
    /// One colour interpretation name per band (`Red`, `Alpha`, …; `None` leaves GDAL's default).
    pub color_interpretations: Vec<Option<&'static str>>,
    /// Nodata value for every band.
    pub nodata: Option<f64>,
    /// Dataset metadata items (`TIFFTAG_DATETIME`, `ACQUISITION_DATE`, …).
    pub metadata: Vec<(String, String)>,
    /// Tile edge in pixels (a multiple of 16).
    pub block_size: usize,
    /// Compression: `DEFLATE`, `ZSTD`, `LZW`, `NONE`.
    pub compress: String,
    /// Compression level (`ZLEVEL` for DEFLATE, `ZSTD_LEVEL` for ZSTD); `None` is GDAL's default.
    pub level: Option<u8>,
    /// TIFF predictor: 1 none, 2 horizontal (integers), 3 floating point.
    pub predictor: u8,
}

impl GeoTiffSpec {
    /// A tiled DEFLATE GeoTIFF with no band names or metadata.
    pub fn new(crs: &str, geo_transform: [f64; 6], width: usize, height: usize) -> GeoTiffSpec {
        GeoTiffSpec {
            crs: crs.to_string(),
            geo_transform,
            width,
            height,
            band_descriptions: Vec::new(),
            color_interpretations: Vec::new(),
            nodata: None,
            metadata: Vec::new(),
            block_size: 256,
            compress: "DEFLATE".to_string(),
            level: None,
            predictor: 1,
        }
    }
}

/// Writes bands (each `width × height`, row-major) as a GeoTIFF, atomically.
pub fn write_geotiff<T: GdalType + Copy>(
    path: &Path,
    spec: &GeoTiffSpec,
    bands: &[&[T]],
) -> Result<(), ExportError> {
    let n = spec.width * spec.height;
    if bands.is_empty() || bands.iter().any(|b| b.len() != n) {
        return Err(ExportError::Invalid {
            path: path.to_path_buf(),
            detail: format!(
                "{} bands of {:?} pixels for a {}x{} raster",
                bands.len(),
                bands.iter().map(|b| b.len()).collect::<Vec<_>>(),
                spec.width,
                spec.height
            ),
        });
    }
    let mut w = GeoTiffWriter::create::<T>(path, spec, bands.len())?;
    let rows_per_chunk = spec.block_size.max(1);
    for r0 in (0..spec.height).step_by(rows_per_chunk) {
        let rows = rows_per_chunk.min(spec.height - r0);
        let chunk: Vec<&[T]> = bands
            .iter()
            .map(|b| &b[r0 * spec.width..(r0 + rows) * spec.width])
            .collect();
        w.write_rows(r0, rows, &chunk)?;
    }
    w.finish()
}

/// A GeoTIFF being written strip by strip (bounded memory), renamed into place by `finish`.
pub struct GeoTiffWriter {
    ds: gdal::Dataset,
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    width: usize,
    height: usize,
    bands: usize,
}

impl GeoTiffWriter {
    /// Creates the file under its temporary name with the spec's georeferencing and metadata.
    pub fn create<T: GdalType + Copy>(
        path: &Path,
        spec: &GeoTiffSpec,
        band_count: usize,
    ) -> Result<GeoTiffWriter, ExportError> {
        crate::ingest::init_gdal();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(super::io_err(dir))?;
        }
        let tmp = temp_path(path);
        let e = gdal_err(path);
        let driver = DriverManager::get_driver_by_name("GTiff").map_err(&e)?;
        let mut opts = CslStringList::new();
        let tiled = spec.width > spec.block_size || spec.height > spec.block_size;
        if tiled {
            opts.set_name_value("TILED", "YES").map_err(&e)?;
            opts.set_name_value("BLOCKXSIZE", &spec.block_size.to_string())
                .map_err(&e)?;
            opts.set_name_value("BLOCKYSIZE", &spec.block_size.to_string())
                .map_err(&e)?;
        }
        opts.set_name_value("COMPRESS", &spec.compress)
            .map_err(&e)?;
        match (spec.compress.as_str(), spec.level) {
            ("DEFLATE", Some(l)) => opts.set_name_value("ZLEVEL", &l.to_string()).map_err(&e)?,
            ("ZSTD", Some(l)) => opts
                .set_name_value("ZSTD_LEVEL", &l.to_string())
                .map_err(&e)?,
            _ => {}
        }
        if spec.compress != "NONE" {
            opts.set_name_value("PREDICTOR", &spec.predictor.to_string())
                .map_err(&e)?;
        }
        opts.set_name_value("NUM_THREADS", "ALL_CPUS").map_err(&e)?;
        opts.set_name_value("BIGTIFF", "IF_SAFER").map_err(&e)?;
        if band_count > 1 {
            opts.set_name_value("INTERLEAVE", "PIXEL").map_err(&e)?;
        }
        let mut ds = driver
            .create_with_band_type_with_options::<T, _>(
                &tmp,
                spec.width,
                spec.height,
                band_count,
                &opts,
            )
            .map_err(&e)?;
        let srs = srs::parse_crs(&spec.crs).map_err(&e)?;
        ds.set_spatial_ref(&srs).map_err(&e)?;
        ds.set_geo_transform(&spec.geo_transform).map_err(&e)?;
        for (k, v) in &spec.metadata {
            ds.set_metadata_item(k, v, "").map_err(&e)?;
        }
        for bi in 0..band_count {
            let mut band = ds.rasterband(bi + 1).map_err(&e)?;
            if let Some(nd) = spec.nodata {
                band.set_no_data_value(Some(nd)).map_err(&e)?;
            }
            if let Some(Some(name)) = spec.color_interpretations.get(bi) {
                let ci = ColorInterpretation::from_name(name).map_err(&e)?;
                band.set_color_interpretation(ci).map_err(&e)?;
            }
            if let Some(desc) = spec.band_descriptions.get(bi).filter(|d| !d.is_empty()) {
                band.set_description(desc).map_err(&e)?;
            }
        }
        Ok(GeoTiffWriter {
            ds,
            path: path.to_path_buf(),
            tmp,
            width: spec.width,
            height: spec.height,
            bands: band_count,
        })
    }

    /// Writes `rows` full rows starting at row `r0`, one slice per band.
    ///
    /// Write whole rows of tiles, every band at once: a pixel-interleaved tile is then complete
    /// when it leaves GDAL's block cache and is compressed exactly once.
    pub fn write_rows<T: GdalType + Copy>(
        &mut self,
        r0: usize,
        rows: usize,
        bands: &[&[T]],
    ) -> Result<(), ExportError> {
        let e = gdal_err(&self.path);
        if bands.len() != self.bands || bands.iter().any(|b| b.len() != rows * self.width) {
            return Err(ExportError::Invalid {
                path: self.path.clone(),
                detail: format!("strip at row {r0}: wrong band count or length"),
            });
        }
        for (bi, data) in bands.iter().enumerate() {
            let mut band = self.ds.rasterband(bi + 1).map_err(&e)?;
            let mut buf = Buffer::new((self.width, rows), data.to_vec());
            band.write((0, r0 as isize), (self.width, rows), &mut buf)
                .map_err(&e)?;
        }
        Ok(())
    }

    /// Writes a window (`width × height` pixels at column `x`, row `y`), one slice per band.
    pub fn write_window<T: GdalType + Copy>(
        &mut self,
        x: usize,
        y: usize,
        width: usize,
        height: usize,
        bands: &[&[T]],
    ) -> Result<(), ExportError> {
        let e = gdal_err(&self.path);
        if bands.len() != self.bands || bands.iter().any(|b| b.len() != width * height) {
            return Err(ExportError::Invalid {
                path: self.path.clone(),
                detail: format!("window at ({x},{y}): wrong band count or length"),
            });
        }
        for (bi, data) in bands.iter().enumerate() {
            let mut band = self.ds.rasterband(bi + 1).map_err(&e)?;
            crate::gdal_ext::write_band_window(&mut band, (x, y), (width, height), data).map_err(
                |detail| ExportError::Invalid {
                    path: self.path.clone(),
                    detail: format!("writing a window at ({x},{y}): {detail}"),
                },
            )?;
        }
        Ok(())
    }

    /// Compresses and writes the blocks written so far (GDAL keeps them in its block cache
    /// otherwise, and a run would compress them all at the end, on one thread). Only for blocks
    /// that are complete: a block flushed and then written again is read back and stored twice.
    pub fn flush(&mut self) -> Result<(), ExportError> {
        let e = gdal_err(&self.path);
        for bi in 0..self.bands {
            let band = self.ds.rasterband(bi + 1).map_err(&e)?;
            crate::gdal_ext::flush_band(&band).map_err(|detail| ExportError::Invalid {
                path: self.path.clone(),
                detail: format!("writing blocks: {detail}"),
            })?;
        }
        Ok(())
    }

    /// Flushes, closes and renames the file into place — once it reads back whole: GDAL 3.6
    /// does not report a write that failed while closing (a full disk), and renaming such a file
    /// would replace a good one with a broken one. A file that does not is removed.
    pub fn finish(self) -> Result<(), ExportError> {
        let e = gdal_err(&self.path);
        let (width, height, bands) = (self.width, self.height, self.bands);
        let written = self
            .ds
            .close()
            .map_err(&e)
            .and_then(|_| check_written(&self.tmp, &self.path, (width, height), bands));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(err);
        }
        commit(&self.tmp, &self.path)
    }
}

/// Whether a GeoTIFF just written reads back: it opens with the size and bands written, and
/// every block of its first band has its place in the file (a block that could not be written
/// has none; without `SPARSE_OK` GDAL writes every block).
fn check_written(
    tmp: &Path,
    path: &Path,
    (width, height): (usize, usize),
    bands: usize,
) -> Result<(), ExportError> {
    let broken = |detail: String| ExportError::Gdal {
        path: path.to_path_buf(),
        detail: format!("the file written does not read back ({detail}); the disk may be full"),
    };
    let ds = gdal::Dataset::open(tmp).map_err(|e| broken(e.to_string()))?;
    if ds.raster_size() != (width, height) || ds.raster_count() != bands {
        return Err(broken(format!(
            "{:?} pixels in {} bands, {:?} in {bands} written",
            ds.raster_size(),
            ds.raster_count(),
            (width, height)
        )));
    }
    let file_len = std::fs::metadata(tmp)
        .map_err(|e| broken(e.to_string()))?
        .len();
    let band = ds.rasterband(1).map_err(|e| broken(e.to_string()))?;
    let (bx, by) = band.block_size();
    let number = |key: String| {
        band.metadata_item(&key, "TIFF")
            .and_then(|v| v.parse::<u64>().ok())
    };
    for y in 0..height.div_ceil(by.max(1)) {
        for x in 0..width.div_ceil(bx.max(1)) {
            let offset = number(format!("BLOCK_OFFSET_{x}_{y}")).unwrap_or(0);
            let size = number(format!("BLOCK_SIZE_{x}_{y}")).unwrap_or(0);
            if offset == 0 || offset + size > file_len {
                return Err(broken(format!("block ({x}, {y}) of band 1 is missing")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metre grid in EPSG:4549 of `width` × `height` pixels in square blocks of `block`.
    fn test_spec(width: usize, height: usize, block: usize) -> GeoTiffSpec {
        let mut spec = GeoTiffSpec::new(
            "EPSG:4549",
            [500000.0, 1.0, 0.0, 3000000.0, 0.0, -1.0],
            width,
            height,
        );
        spec.block_size = block;
        spec
    }

    #[test]
    fn a_file_that_does_not_read_back_whole_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tif");
        let spec = test_spec(700, 600, 256);
        let band = vec![7u8; 700 * 600];
        write_geotiff(&path, &spec, &[&band]).unwrap();
        check_written(&path, &path, (700, 600), 1).unwrap();
        let e = check_written(&path, &path, (700, 601), 1).unwrap_err();
        assert!(e.to_string().contains("does not read back"), "{e}");
        // Cut short, as a write that ran out of disk leaves it.
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.tif");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(check_written(&cut, &path, (700, 600), 1).is_err());
        // Blocks never given their place (a sparse file) are missing ones.
        let sparse = dir.path().join("sparse.tif");
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut opts = CslStringList::new();
        for (k, v) in [("TILED", "YES"), ("SPARSE_OK", "TRUE")] {
            opts.set_name_value(k, v).unwrap();
        }
        let ds = driver
            .create_with_band_type_with_options::<u8, _>(&sparse, 700, 600, 1, &opts)
            .unwrap();
        ds.close().unwrap();
        let e = check_written(&sparse, &path, (700, 600), 1).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn windows_of_a_multi_band_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.tif");
        let k = 1024;
        let spec = test_spec(2 * k, k + k / 2, 512);
        let mut w = GeoTiffWriter::create::<u8>(&path, &spec, 4).unwrap();
        for (x, y) in [(k, 0), (0, 0), (0, k), (k, k)] {
            let (ww, hh) = (k, if y == k { k / 2 } else { k });
            let bands: Vec<Vec<u8>> = (0..4).map(|b| vec![(x + y + b) as u8; ww * hh]).collect();
            let refs: Vec<&[u8]> = bands.iter().map(|b| b.as_slice()).collect();
            w.write_window(x, y, ww, hh, &refs).unwrap();
        }
        w.finish().unwrap();
        let ds = gdal::Dataset::open(&path).unwrap();
        for b in 0..4 {
            let v = ds
                .rasterband(b + 1)
                .unwrap()
                .read_as::<u8>((1040, 1040), (1, 1), (1, 1), None)
                .unwrap();
            assert_eq!(v.data()[0], b as u8, "band {}", b + 1);
            let v = ds
                .rasterband(b + 1)
                .unwrap()
                .read_as::<u8>((1040, 5), (1, 1), (1, 1), None)
                .unwrap();
            assert_eq!(v.data()[0], b as u8, "band {}", b + 1);
        }
    }

    #[test]
    fn flushing_whole_blocks_stores_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let k = 512;
        let mut spec = test_spec(2 * k, k + k / 3, 256);
        spec.compress = "ZSTD".into();
        spec.nodata = Some(f64::NAN);
        let write = |name: &str, flush: bool| {
            let path = dir.path().join(name);
            let mut w = GeoTiffWriter::create::<f32>(&path, &spec, 1).unwrap();
            for (x, y) in [(0, 0), (k, 0), (0, k), (k, k)] {
                let (ww, hh) = (k, if y == k { k / 3 } else { k });
                let v: Vec<f32> = (0..ww * hh)
                    .map(|i| ((i * 7 + x + y) % 1000) as f32 * 0.37)
                    .collect();
                w.write_window(x, y, ww, hh, &[&v]).unwrap();
                if flush {
                    w.flush().unwrap();
                }
            }
            w.finish().unwrap();
            let ds = gdal::Dataset::open(&path).unwrap();
            let px = ds
                .rasterband(1)
                .unwrap()
                .read_as::<f32>((0, 0), (2 * k, k + k / 3), (2 * k, k + k / 3), None)
                .unwrap();
            (std::fs::metadata(&path).unwrap().len(), px.data().to_vec())
        };
        let (size_at_end, px_at_end) = write("end.tif", false);
        let (size_flushed, px_flushed) = write("flushed.tif", true);
        assert_eq!(px_flushed, px_at_end);
        // Same blocks, each stored once: the same size up to the directory's placement.
        assert!(
            size_flushed.abs_diff(size_at_end) < 4096,
            "{size_flushed} vs {size_at_end}"
        );
    }
}
