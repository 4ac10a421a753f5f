//! Reading a grid cell from one or several source rasters: reprojection, resampling, mosaicking
//! and the validity mask (nodata, alpha, internal masks), all through GDAL.
//!
//! Sources already on the grid's pixel lattice are read directly (no resampling at all). Sources
//! in the grid's CRS whose pixels tile each grid pixel exactly (k × k, the grid's corners on
//! source pixel corners) are read directly too and averaged block by block. Any other source goes
//! through `gdalwarp` — bilinear, or area-average when the source is much finer than the grid (a
//! 5 cm drone orthophoto in another CRS read onto a 0.5 m grid).

use super::catalog::{open_raster, RasterInfo};
use super::srs;
use super::IngestError;
use crate::bands::BandRole;
use crate::detect::flat;
use crate::gdal_ext;
use crate::grid::{GridDef, Window};
use crate::image::CellImage;
use gdal::raster::GdalType;
use gdal::spatial_ref::SpatialRef;
use gdal::{Dataset, DriverManager};
use ndarray::{s, Array2, Array3};
use std::path::{Path, PathBuf};

/// One usable source raster.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// The file.
    pub path: PathBuf,
    /// Its catalogue description.
    pub info: RasterInfo,
}

/// All source rasters of one date, and the band roles to read from them (in output order).
#[derive(Debug, Clone)]
pub struct DateSources {
    /// The rasters, composited in order (later ones win where they have valid pixels).
    pub sources: Vec<ImageSource>,
    /// The roles to read.
    pub roles: Vec<BandRole>,
}

impl DateSources {
    /// The roles every source has (alpha and mask excluded), in the first source's band order.
    pub fn common_roles(sources: &[ImageSource]) -> Vec<BandRole> {
        let Some(first) = sources.first() else {
            return Vec::new();
        };
        first
            .info
            .roles()
            .into_iter()
            .filter(|r| !matches!(r, BandRole::Alpha | BandRole::Mask | BandRole::Unknown))
            .filter(|r| sources.iter().all(|s| s.info.band_with_role(*r).is_some()))
            .collect()
    }
}

/// How a source relates to the grid.
#[derive(Debug, Clone)]
enum Placement {
    /// Same CRS, each grid pixel exactly `k` × `k` source pixels, the grid origin on a source
    /// pixel corner: column/row of the grid origin in the source. `k = 1` is the grid's own
    /// lattice, read as is; a larger `k` (a 0.5 m scene on a 1 m grid, a 5 cm orthophoto on a
    /// 0.5 m grid) is averaged block by block as it is read (no warp).
    Lattice { dx: i64, dy: i64, k: usize },
    /// Anything else: warp, with this resampling.
    Warp { resampling: &'static str },
}

struct OpenSource {
    path: PathBuf,
    ds: Dataset,
    /// Band indices for the requested roles, in order.
    band_index: Vec<usize>,
    alpha_index: Option<usize>,
    mask_index: Option<usize>,
    placement: Placement,
    /// A band-subset VRT for warping, built on first use.
    vrt: Option<Dataset>,
    /// Grid bounds of the source (columns/rows on the grid), for skipping non-overlapping cells.
    grid_extent: (f64, f64, f64, f64),
    /// Whether every requested band holds integers (whose values are never NaN).
    integer_bands: bool,
    /// Whether a pixel that is 0 in every band is no data: integer imagery that declares no
    /// validity of its own (no nodata value, mask or alpha), as a scene's zero-filled collar.
    zero_is_nodata: bool,
}

/// Reads cells of one date. Holds open GDAL handles: `Send` but not `Sync` (GDAL datasets are
/// not), so threads share one behind a lock, or each opens its own.
pub struct CellReader {
    grid: GridDef,
    /// The grid's CRS as WKT, resolved once (a `SpatialRef` may not move between threads, and
    /// readers are shared by the scan workers): what warp buffers are georeferenced with.
    grid_wkt: String,
    roles: Vec<BandRole>,
    sources: Vec<OpenSource>,
}

fn cell_err(cell: &str, detail: String) -> IngestError {
    IngestError::CellRead {
        cell: cell.to_string(),
        detail,
    }
}

impl CellReader {
    /// Opens every source of a date for reading onto `grid`.
    pub fn new(grid: &GridDef, date: &DateSources) -> Result<CellReader, IngestError> {
        super::init_gdal();
        let grid_srs = srs::parse_crs(&grid.crs).map_err(|e| IngestError::Crs {
            path: PathBuf::from("<grid>"),
            detail: format!("grid CRS '{}' is not understood: {e}", grid.crs),
        })?;
        let grid_wkt = grid_srs.to_wkt().map_err(|e| IngestError::Crs {
            path: PathBuf::from("<grid>"),
            detail: format!("grid CRS '{}' has no WKT: {e}", grid.crs),
        })?;
        let mut sources = Vec::with_capacity(date.sources.len());
        for src in &date.sources {
            sources.push(open_source(grid, &grid_srs, src, &date.roles)?);
        }
        Ok(CellReader {
            grid: grid.clone(),
            grid_wkt,
            roles: date.roles.clone(),
            sources,
        })
    }

    /// Reads a window of the grid (normally a cell's read window).
    pub fn read(&mut self, cell_id: &str, window: &Window) -> Result<CellImage, IngestError> {
        let (w, h) = (window.width, window.height);
        let nb = self.roles.len();
        // Allocated by the first source to reach the window (read straight into it when it covers
        // the whole window), else zeroed here.
        let mut bands: Option<Array3<f32>> = None;
        let zeros = || Array3::<f32>::zeros((nb, h, w));
        let mut valid = Array2::<bool>::from_elem((h, w), false);
        let mut flagged: Option<Array2<bool>> = None;
        let mut contributing = Vec::new();
        let (wx0, wy0) = (window.x as f64, window.y as f64);
        let (wx1, wy1) = (wx0 + w as f64, wy0 + h as f64);

        // Consecutive warped sources go into one gdalwarp call; sources on the lattice are read.
        let mut pending_warp: Vec<usize> = Vec::new();
        for i in 0..self.sources.len() {
            let (gx0, gy0, gx1, gy1) = self.sources[i].grid_extent;
            if gx1 <= wx0 || gx0 >= wx1 || gy1 <= wy0 || gy0 >= wy1 {
                continue;
            }
            contributing.push(i);
            match self.sources[i].placement {
                Placement::Lattice { dx, dy, k: 1 } => {
                    if !pending_warp.is_empty() {
                        let b = bands.get_or_insert_with(zeros);
                        self.flush_warp(cell_id, window, &mut pending_warp, b, &mut valid)?;
                    }
                    let src = &self.sources[i];
                    read_aligned(
                        cell_id,
                        src,
                        dx,
                        dy,
                        window,
                        &mut bands,
                        &mut valid,
                        &mut flagged,
                    )?;
                }
                Placement::Lattice { dx, dy, k } => {
                    let b = bands.get_or_insert_with(zeros);
                    if !pending_warp.is_empty() {
                        self.flush_warp(cell_id, window, &mut pending_warp, b, &mut valid)?;
                    }
                    let src = &self.sources[i];
                    read_decimated(
                        cell_id,
                        src,
                        (dx, dy, k),
                        window,
                        b,
                        &mut valid,
                        &mut flagged,
                    )?;
                }
                Placement::Warp { .. } => pending_warp.push(i),
            }
        }
        let mut bands = bands.unwrap_or_else(zeros);
        self.flush_warp(cell_id, window, &mut pending_warp, &mut bands, &mut valid)?;
        Ok(CellImage {
            window: *window,
            roles: self.roles.clone(),
            bands,
            valid,
            flagged,
            contributing,
        })
    }

    /// Reads the part of `window` this date's sources cover, and `margin` pixels around it
    /// (within the window), as an image whose `window` is that part: on a scene's edge most of a
    /// cell's window lies outside the imagery, no data however it is read. The whole window when
    /// that part is more than `max_share` of it, when a source reaching it is warped (a warp's
    /// output depends on the window it is made for) or when none reaches it.
    pub fn read_covered(
        &mut self,
        cell_id: &str,
        window: &Window,
        margin: usize,
        max_share: f64,
    ) -> Result<CellImage, IngestError> {
        match self
            .covered_part(window, margin)
            .filter(|p| p.len() as f64 <= max_share * window.len() as f64)
        {
            Some(part) => self.read(cell_id, &part),
            None => self.read(cell_id, window),
        }
    }

    /// The part of `window` the sources cover, grown by `margin` (see [`Self::read_covered`]).
    fn covered_part(&self, window: &Window, margin: usize) -> Option<Window> {
        let (wx0, wy0) = (window.x as f64, window.y as f64);
        let (wx1, wy1) = (wx0 + window.width as f64, wy0 + window.height as f64);
        let mut ext: Option<(f64, f64, f64, f64)> = None;
        for src in &self.sources {
            let (gx0, gy0, gx1, gy1) = src.grid_extent;
            if gx1 <= wx0 || gx0 >= wx1 || gy1 <= wy0 || gy0 >= wy1 {
                continue;
            }
            if matches!(src.placement, Placement::Warp { .. }) {
                return None;
            }
            ext = Some(ext.map_or((gx0, gy0, gx1, gy1), |e| {
                (e.0.min(gx0), e.1.min(gy0), e.2.max(gx1), e.3.max(gy1))
            }));
        }
        let (gx0, gy0, gx1, gy1) = ext?;
        // Outward to whole pixels; an edge within a millionth of a pixel of a whole one is on it.
        let snap = |v: f64, out: fn(f64) -> f64| {
            if (v - v.round()).abs() < 1e-6 {
                v.round() as i64
            } else {
                out(v) as i64
            }
        };
        let m = margin as i64;
        let (x0, y0) = (snap(gx0, f64::floor) - m, snap(gy0, f64::floor) - m);
        let (x1, y1) = (snap(gx1, f64::ceil) + m, snap(gy1, f64::ceil) + m);
        let grown = Window {
            x: x0,
            y: y0,
            width: (x1 - x0).max(0) as usize,
            height: (y1 - y0).max(0) as usize,
        };
        grown.intersection(window)
    }

    fn flush_warp(
        &mut self,
        cell_id: &str,
        window: &Window,
        pending: &mut Vec<usize>,
        bands: &mut Array3<f32>,
        valid: &mut Array2<bool>,
    ) -> Result<(), IngestError> {
        if pending.is_empty() {
            return Ok(());
        }
        let idx = std::mem::take(pending);
        // The coarsest choice wins: average only when every source is much finer than the grid.
        let resampling = if idx.iter().all(|&i| {
            matches!(
                self.sources[i].placement,
                Placement::Warp {
                    resampling: "average"
                }
            )
        }) {
            "average"
        } else {
            "bilinear"
        };
        for &i in &idx {
            if self.sources[i].vrt.is_none() {
                let vrt = band_subset_vrt(&self.sources[i]).map_err(|e| cell_err(cell_id, e))?;
                self.sources[i].vrt = Some(vrt);
            }
        }
        let srcs: Vec<&Dataset> = idx
            .iter()
            .filter_map(|&i| self.sources[i].vrt.as_ref())
            .collect();
        let names = || {
            idx.iter()
                .map(|&i| self.sources[i].path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let nb = self.roles.len();
        let (w, h) = (window.width, window.height);
        let driver = DriverManager::get_driver_by_name("MEM")
            .map_err(|e| cell_err(cell_id, format!("GDAL MEM driver: {e}")))?;
        let mut dst = driver
            .create_with_band_type::<f32, _>("", w, h, nb + 1)
            .map_err(|e| cell_err(cell_id, format!("allocating the warp buffer: {e}")))?;
        dst.set_geo_transform(&self.grid.window_geo_transform(window))
            .and_then(|_| dst.set_projection(&self.grid_wkt))
            .map_err(|e| cell_err(cell_id, format!("setting up the warp buffer: {e}")))?;
        let args: Vec<String> = [
            "-r",
            resampling,
            "-dstalpha",
            "-wo",
            "UNIFIED_SRC_NODATA=YES",
            "-wm",
            "256",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        gdal_ext::warp_into(&srcs, &dst, &args)
            .map_err(|e| cell_err(cell_id, format!("warping {} onto the grid: {e}", names())))?;

        let mut buf = vec![0f32; w * h];
        let alpha_band = dst
            .rasterband(nb + 1)
            .map_err(|e| cell_err(cell_id, e.to_string()))?;
        alpha_band
            .read_into_slice::<f32>((0, 0), (w, h), (w, h), &mut buf, None)
            .map_err(|e| cell_err(cell_id, e.to_string()))?;
        let alpha = Array2::from_shape_vec((h, w), buf.clone())
            .map_err(|e| cell_err(cell_id, e.to_string()))?;
        let warped_valid = alpha.mapv(|a| a > 127.5);
        for b in 0..nb {
            let band = dst
                .rasterband(b + 1)
                .map_err(|e| cell_err(cell_id, e.to_string()))?;
            band.read_into_slice::<f32>((0, 0), (w, h), (w, h), &mut buf, None)
                .map_err(|e| cell_err(cell_id, e.to_string()))?;
            let mut target = bands.slice_mut(s![b, .., ..]);
            for ((t, v), ok) in target.iter_mut().zip(buf.iter()).zip(warped_valid.iter()) {
                if *ok {
                    *t = *v;
                }
            }
        }
        valid.zip_mut_with(&warped_valid, |v, w| *v |= *w);
        // Keep the MEM dataset alive until here; dropping it frees the buffer.
        drop(dst);
        Ok(())
    }
}

fn open_source(
    grid: &GridDef,
    grid_srs: &SpatialRef,
    src: &ImageSource,
    roles: &[BandRole],
) -> Result<OpenSource, IngestError> {
    let ds = open_raster(&src.path)?;
    let info = &src.info;
    let mut band_index = Vec::with_capacity(roles.len());
    for r in roles {
        let i = info
            .band_with_role(*r)
            .ok_or_else(|| IngestError::BandRoles {
                path: src.path.clone(),
                detail: format!(
                    "no {r} band (the bands are {}); name the bands with --bands or a sidecar",
                    info.roles()
                        .iter()
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            })?;
        band_index.push(i);
    }
    let alpha_index = info.band_with_role(BandRole::Alpha);
    let mask_index = info.band_with_role(BandRole::Mask);
    let gt = info
        .geo_transform
        .ok_or_else(|| IngestError::NoGeoreferencing {
            path: src.path.clone(),
        })?;
    let src_srs = ds.spatial_ref().map_err(|_| IngestError::NoCrs {
        path: src.path.clone(),
    })?;

    // Where the source lies on the grid, and how finely it samples it.
    let ct = srs::transform(&src_srs, grid_srs).map_err(|e| IngestError::Crs {
        path: src.path.clone(),
        detail: format!("cannot transform to the grid CRS: {e}"),
    })?;
    let (w, h) = (info.width as f64, info.height as f64);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for k in 0..=8 {
        let t = k as f64 / 8.0;
        for (c, r) in [(t * w, 0.0), (w, t * h), (t * w, h), (0.0, t * h)] {
            xs.push(gt[0] + c * gt[1] + r * gt[2]);
            ys.push(gt[3] + c * gt[4] + r * gt[5]);
        }
    }
    // Two points one source pixel apart at the centre, to measure the source's pixel size on the grid.
    let (cc, cr) = (w / 2.0, h / 2.0);
    for (c, r) in [(cc, cr), (cc + 1.0, cr), (cc, cr + 1.0)] {
        xs.push(gt[0] + c * gt[1] + r * gt[2]);
        ys.push(gt[3] + c * gt[4] + r * gt[5]);
    }
    srs::transform_points(&ct, &mut xs, &mut ys).map_err(|e| IngestError::Crs {
        path: src.path.clone(),
        detail: format!("footprint cannot be transformed to the grid CRS: {e}"),
    })?;
    let n = xs.len();
    let (px0, py0) = grid.world_to_pixel(xs[n - 3], ys[n - 3]);
    let (px1, py1) = grid.world_to_pixel(xs[n - 2], ys[n - 2]);
    let (px2, py2) = grid.world_to_pixel(xs[n - 1], ys[n - 1]);
    let src_px_on_grid = (((px1 - px0).hypot(py1 - py0)) * ((px2 - px0).hypot(py2 - py0))).sqrt();
    let mut ext = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for k in 0..n - 3 {
        let (c, r) = grid.world_to_pixel(xs[k], ys[k]);
        ext = (ext.0.min(c), ext.1.min(r), ext.2.max(c), ext.3.max(r));
    }

    let same = srs::same_crs(&src_srs, grid_srs);
    let rel = |a: f64, b: f64| ((a - b) / b).abs() < 1e-9;
    // Each grid pixel exactly k × k source pixels (k = 1: the same pixels), the grid origin on a
    // source pixel corner.
    let lattice = (same && gt[2] == 0.0 && gt[4] == 0.0 && gt[1] > 0.0 && gt[5] < 0.0)
        .then(|| {
            let k = (grid.pixel_width / gt[1]).round();
            let whole = |a: f64| (a - a.round()).abs() < 1e-6;
            let dx = (grid.origin_x - gt[0]) / gt[1];
            let dy = (gt[3] - grid.origin_y) / -gt[5];
            (k >= 1.0
                && rel(k * gt[1], grid.pixel_width)
                && rel(-k * gt[5], grid.pixel_height)
                && whole(dx)
                && whole(dy))
            .then(|| Placement::Lattice {
                dx: dx.round() as i64,
                dy: dy.round() as i64,
                k: k as usize,
            })
        })
        .flatten();
    let placement = lattice.unwrap_or(Placement::Warp {
        resampling: if src_px_on_grid < 1.0 / 1.5 {
            "average"
        } else {
            "bilinear"
        },
    });
    let integer_bands = band_index.iter().all(|&bi| {
        ds.rasterband(bi)
            .map(|b| b.band_type().is_integer())
            .unwrap_or(false)
    });
    // Imagery that says nothing of its validity: a satellite scene's collar outside its footprint
    // is zeros, and taken as ground it is a dark change along the whole edge. No land surface is
    // 0 in every band of integer imagery.
    let zero_is_nodata = integer_bands
        && alpha_index.is_none()
        && band_index.iter().all(|&bi| {
            ds.rasterband(bi)
                .and_then(|b| b.mask_flags())
                .is_ok_and(|f| f.is_all_valid())
        });
    if zero_is_nodata {
        tracing::debug!(
            "{}: no nodata value, mask or alpha band: pixels 0 in every band are no data",
            src.path.display()
        );
    }
    Ok(OpenSource {
        path: src.path.clone(),
        integer_bands,
        zero_is_nodata,
        ds,
        band_index,
        alpha_index,
        mask_index,
        placement,
        vrt: None,
        grid_extent: ext,
    })
}

/// A VRT with just the requested bands (and the alpha band, last), for gdalwarp.
fn band_subset_vrt(src: &OpenSource) -> Result<Dataset, String> {
    let mut args: Vec<String> = Vec::new();
    for b in src.band_index.iter().chain(src.alpha_index.iter()) {
        args.push("-b".into());
        args.push(b.to_string());
    }
    let opts = gdal::programs::raster::BuildVRTOptions::new(args).map_err(|e| e.to_string())?;
    let vrt = gdal::programs::raster::build_vrt(None, &[&src.ds], Some(opts))
        .map_err(|e| format!("building a band-subset VRT: {e}"))?;
    // What the direct reads take as no data, the warp does too (UNIFIED_SRC_NODATA: no data
    // where every band is).
    if src.zero_is_nodata {
        for b in 1..=src.band_index.len() {
            vrt.rasterband(b)
                .and_then(|mut band| band.set_no_data_value(Some(0.0)))
                .map_err(|e| format!("setting no data on the band-subset VRT: {e}"))?;
        }
    }
    Ok(vrt)
}

/// Pastes an aligned source into the cell: a plain windowed read, no resampling.
#[allow(clippy::too_many_arguments)]
fn read_aligned(
    cell_id: &str,
    src: &OpenSource,
    dx: i64,
    dy: i64,
    window: &Window,
    bands: &mut Option<Array3<f32>>,
    valid: &mut Array2<bool>,
    flagged: &mut Option<Array2<bool>>,
) -> Result<(), IngestError> {
    let (sw, sh) = src.ds.raster_size();
    // The source's pixels placed on the grid (its pixel (0, 0) at grid pixel (-dx, -dy)), and the
    // part of the window they cover: read from source pixel (cx0, cy0), put at (ox, oy).
    let on_grid = Window {
        x: -dx,
        y: -dy,
        width: sw,
        height: sh,
    };
    let Some(part) = window.intersection(&on_grid) else {
        return Ok(());
    };
    let (cx0, cy0) = (part.x + dx, part.y + dy);
    let (rw, rh) = (part.width, part.height);
    let (ox, oy) = ((part.x - window.x) as usize, (part.y - window.y) as usize);
    let path = || src.path.display();
    let read = |bi: usize| -> Result<Vec<f32>, IngestError> {
        read_band_window::<f32>(&src.ds, bi, cx0 as usize, cy0 as usize, rw, rh)
            .map_err(|e| cell_err(cell_id, format!("{}: {e}", path())))
    };

    // Validity: the dataset mask (alpha or internal mask) when there is one, else nodata values
    // (a pixel is nodata when every read band holds its nodata value).
    let mut ok = vec![true; rw * rh];
    let band1 = src
        .ds
        .rasterband(src.band_index.first().copied().unwrap_or(1))
        .map_err(|e| cell_err(cell_id, e.to_string()))?;
    let flags = band1
        .mask_flags()
        .map_err(|e| cell_err(cell_id, e.to_string()))?;
    // The first source to reach the window is read straight into the cell's bands (zeros around
    // it when it does not cover all of the window), and its invalid pixels zeroed afterwards: what
    // pasting the valid ones onto zeros gives, without a copy. A later source's part is read in
    // one request too, band-sequential, and pasted where its pixels are valid.
    let nb = src.band_index.len();
    let (h, w) = (window.height, window.width);
    let into_cell = bands.is_none();
    let read_err = |e: String| cell_err(cell_id, format!("{}: {e}", path()));
    let (at_source, size) = ((cx0 as usize, cy0 as usize), (rw, rh));
    let read_part = || gdal_ext::read_bands_f32(&src.ds, &src.band_index, at_source, size);
    let mut covered: Vec<f32> = Vec::new();
    if into_cell {
        // Zeros only around the part read, when it does not cover the window.
        let region = gdal_ext::CubeRegion {
            dims: (nb, h, w),
            at: (oy, ox),
        };
        let cube =
            gdal_ext::read_bands_f32_padded(&src.ds, &src.band_index, at_source, size, region)
                .map_err(read_err)?;
        let cube = Array3::from_shape_vec((nb, h, w), cube)
            .map_err(|e| cell_err(cell_id, e.to_string()))?;
        *bands = Some(cube);
    } else {
        covered = read_part().map_err(read_err)?;
    }
    // A source has a band for each of the cell's roles (`open_source`).
    let bands = bands.get_or_insert_with(|| Array3::zeros((nb, h, w)));
    // Where the values read are: in the cell's bands at (oy, ox), or in `covered` from its start.
    let (buf, bw, bh, at): (&[f32], usize, usize, (usize, usize)) = if into_cell {
        (bands.as_slice().unwrap_or(&[]), w, h, (oy, ox))
    } else {
        (&covered, rw, rh, (0, 0))
    };
    // Row `r` of band `k` of what was read.
    let row = |k: usize, r: usize| {
        let start = k * bh * bw + (at.0 + r) * bw + at.1;
        &buf[start..start + rw]
    };
    if let Some(ai) = src.alpha_index {
        let a = read(ai)?;
        ok.iter_mut().zip(&a).for_each(|(o, v)| *o = *v > 0.0);
    } else if flags.is_per_dataset() && !flags.is_all_valid() {
        let m = band1
            .open_mask_band()
            .and_then(|mb| {
                let mut buf = vec![0u8; rw * rh];
                mb.read_into_slice::<u8>(
                    (cx0 as isize, cy0 as isize),
                    (rw, rh),
                    (rw, rh),
                    &mut buf,
                    None,
                )?;
                Ok(buf)
            })
            .map_err(|e| cell_err(cell_id, format!("{}: mask: {e}", path())))?;
        ok.iter_mut().zip(&m).for_each(|(o, v)| *o = *v > 0);
    } else {
        let nodatas: Vec<Option<f64>> = src
            .band_index
            .iter()
            .map(|&bi| src.ds.rasterband(bi).ok().and_then(|b| b.no_data_value()))
            .collect();
        if src.zero_is_nodata {
            // Valid where any band is not 0: branch-free passes that vectorise, all of a row's
            // bands at once for the usual three or four.
            for (r, ok_row) in ok.chunks_exact_mut(rw.max(1)).enumerate() {
                match nb {
                    4 => {
                        let (b0, b1, b2, b3) = (row(0, r), row(1, r), row(2, r), row(3, r));
                        for ((((o, v0), v1), v2), v3) in
                            ok_row.iter_mut().zip(b0).zip(b1).zip(b2).zip(b3)
                        {
                            *o = (*v0 != 0.0) | (*v1 != 0.0) | (*v2 != 0.0) | (*v3 != 0.0);
                        }
                    }
                    3 => {
                        let (b0, b1, b2) = (row(0, r), row(1, r), row(2, r));
                        for (((o, v0), v1), v2) in ok_row.iter_mut().zip(b0).zip(b1).zip(b2) {
                            *o = (*v0 != 0.0) | (*v1 != 0.0) | (*v2 != 0.0);
                        }
                    }
                    _ => {
                        ok_row.fill(false);
                        for k in 0..nb {
                            ok_row
                                .iter_mut()
                                .zip(row(k, r))
                                .for_each(|(o, v)| *o |= *v != 0.0);
                        }
                    }
                }
            }
        } else if nodatas.iter().any(|n| n.is_some()) {
            let mut rows: Vec<&[f32]> = Vec::with_capacity(nb);
            for (r, ok_row) in ok.chunks_exact_mut(rw.max(1)).enumerate() {
                rows.clear();
                rows.extend((0..nb).map(|k| row(k, r)));
                for (c, o) in ok_row.iter_mut().enumerate() {
                    let all_nodata = rows.iter().zip(&nodatas).all(|(d, nd)| match nd {
                        Some(nd) if nd.is_nan() => d[c].is_nan(),
                        Some(nd) => (d[c] as f64 - nd).abs() < 1e-6 * nd.abs().max(1.0),
                        None => false,
                    });
                    *o = !all_nodata;
                }
            }
        }
    }
    // NaN pixels are never valid, whatever the nodata declaration says (integer bands have none).
    if !src.integer_bands {
        for (r, ok_row) in ok.chunks_exact_mut(rw.max(1)).enumerate() {
            for k in 0..nb {
                ok_row
                    .iter_mut()
                    .zip(row(k, r))
                    .for_each(|(o, v)| *o &= !v.is_nan());
            }
        }
    }

    if into_cell {
        if ok.iter().any(|o| !o) {
            let all = bands.as_slice_mut().unwrap_or(&mut []);
            for plane in all.chunks_exact_mut((h * w).max(1)) {
                for (r, ok_row) in ok.chunks_exact(rw.max(1)).enumerate() {
                    let start = (oy + r) * w + ox;
                    for (t, o) in plane[start..start + rw].iter_mut().zip(ok_row) {
                        if !o {
                            *t = 0.0;
                        }
                    }
                }
            }
        }
    } else {
        // Row by row: each row of the target is contiguous, so the copy runs over plain slices.
        for (b, d) in covered.chunks_exact((rw * rh).max(1)).enumerate() {
            for r in 0..rh {
                let mut row = bands.slice_mut(s![b, oy + r, ox..ox + rw]);
                let (src_row, ok_row) = (&d[r * rw..(r + 1) * rw], &ok[r * rw..(r + 1) * rw]);
                match row.as_slice_mut() {
                    Some(t) => {
                        // A select, not a branch: the loop vectorises.
                        for ((t, v), o) in t.iter_mut().zip(src_row).zip(ok_row) {
                            *t = if *o { *v } else { *t };
                        }
                    }
                    None => {
                        for ((t, v), o) in row.iter_mut().zip(src_row).zip(ok_row) {
                            if *o {
                                *t = *v;
                            }
                        }
                    }
                }
            }
        }
    }
    // Row by row over plain slices, as above.
    for (mut vt, ok_row) in valid
        .slice_mut(s![oy..oy + rh, ox..ox + rw])
        .rows_mut()
        .into_iter()
        .zip(ok.chunks_exact(rw.max(1)))
    {
        match vt.as_slice_mut() {
            Some(v) => v.iter_mut().zip(ok_row).for_each(|(v, o)| *v |= *o),
            None => vt.iter_mut().zip(ok_row).for_each(|(v, o)| *v |= *o),
        }
    }
    if let Some(mi) = src.mask_index {
        let m = read(mi)?;
        let f = flagged.get_or_insert_with(|| Array2::from_elem(valid.dim(), false));
        let mut ft = f.slice_mut(s![oy..oy + rh, ox..ox + rw]);
        ft.iter_mut().zip(&m).for_each(|(f, v)| *f |= *v != 0.0);
    }
    Ok(())
}

/// Fine pixels read at a time by [`read_decimated`]: a strip small enough to stay in the CPU's
/// cache between GDAL's copy into it and the averaging out of it (1 MiB a band as `f32`).
const DECIMATE_STRIP_PX: usize = 1 << 18;

/// Reads a source whose pixels tile each grid pixel `k` × `k` into the cell: strip by strip of
/// grid rows (memory bounded whatever `k`), each an aligned read of the source's own pixels, then
/// every grid pixel is the mean of its valid source pixels (the area average `gdalwarp -r
/// average` would compute, without the warp), and valid when at least half of them are.
/// Like an aligned read, the source's valid pixels replace what earlier sources put there.
fn read_decimated(
    cell_id: &str,
    src: &OpenSource,
    (dx, dy, k): (i64, i64, usize),
    window: &Window,
    bands: &mut Array3<f32>,
    valid: &mut Array2<bool>,
    flagged: &mut Option<Array2<bool>>,
) -> Result<(), IngestError> {
    let (w, h) = (window.width, window.height);
    let nb = bands.dim().0;
    let rows = (DECIMATE_STRIP_PX / (w * k * k).max(1)).clamp(1, h.max(1));
    let half = (k * k).div_ceil(2) as u32;
    // Sums in f32: exact for 16-bit imagery up to k = 16 (256 × 65 535 < 2^24); beyond, or for
    // floating-point sources, the mean is off by float rounding (~1e-7 of the value) at most.
    let mut sums = vec![0f32; nb * w];
    let mut counts = vec![0u32; w];
    let mut flags = vec![0u32; w];
    for r0 in (0..h).step_by(rows) {
        let r1 = (r0 + rows).min(h);
        let fine = Window {
            x: window.x * k as i64,
            y: (window.y + r0 as i64) * k as i64,
            width: w * k,
            height: (r1 - r0) * k,
        };
        let (mut fb, mut ff) = (None, None);
        let mut fv = Array2::from_elem((fine.height, fine.width), false);
        read_aligned(cell_id, src, dx, dy, &fine, &mut fb, &mut fv, &mut ff)?;
        // Nothing of the source in this strip.
        let Some(fb) = fb else { continue };
        let (fb, fv, ff) = (flat(&fb), flat(&fv), ff.as_ref().map(flat));
        let (fb, fv, ff) = (&*fb, &*fv, ff.as_deref());
        let fw = fine.width;
        let plane = fine.height * fw;
        for r in r0..r1 {
            sums.fill(0.0);
            counts.fill(0);
            flags.fill(0);
            for fr in (r - r0) * k..(r - r0 + 1) * k {
                let row = fr * fw..(fr + 1) * fw;
                // Invalid source pixels were read as zeros: summing every pixel sums the valid.
                for (b, sums) in sums.chunks_exact_mut(w).enumerate() {
                    block_sums(k, sums, &fb[b * plane..][row.clone()], |v| *v);
                }
                block_sums(k, &mut counts, &fv[row.clone()], |v| *v as u32);
                if let Some(ff) = ff {
                    block_sums(k, &mut flags, &ff[row.clone()], |v| *v as u32);
                }
            }
            let vrow = valid.slice_mut(s![r, ..]).into_slice().unwrap_or(&mut []);
            for (v, c) in vrow.iter_mut().zip(&counts) {
                *v |= *c >= half;
            }
            for (b, sums) in sums.chunks_exact(w).enumerate() {
                let row = bands
                    .slice_mut(s![b, r, ..])
                    .into_slice()
                    .unwrap_or(&mut []);
                for ((t, s), c) in row.iter_mut().zip(sums).zip(&counts) {
                    if *c >= half {
                        *t = *s / *c as f32;
                    }
                }
            }
            if ff.is_some() {
                let f = flagged.get_or_insert_with(|| Array2::from_elem(valid.dim(), false));
                let frow = f.slice_mut(s![r, ..]).into_slice().unwrap_or(&mut []);
                frow.iter_mut().zip(&flags).for_each(|(f, n)| *f |= *n > 0);
            }
        }
    }
    Ok(())
}

/// Adds each run of `k` values of a fine row to its block's total.
fn block_sums<T: Copy, A: Copy + std::ops::AddAssign + Default>(
    k: usize,
    totals: &mut [A],
    row: &[T],
    value: impl Fn(&T) -> A,
) {
    // Pairs (a 0.5 m scene on a 1 m grid) are the common case: unrolled, they vectorise.
    if k == 2 {
        for (t, px) in totals.iter_mut().zip(row.chunks_exact(2)) {
            *t += value(&px[0]);
            *t += value(&px[1]);
        }
        return;
    }
    for (t, px) in totals.iter_mut().zip(row.chunks_exact(k)) {
        for v in px {
            *t += value(v);
        }
    }
}

/// Reads a window of one band (1-based) as `T`, exactly as stored (no resampling).
pub fn read_band_window<T: Copy + GdalType + Default>(
    ds: &Dataset,
    band: usize,
    x: usize,
    y: usize,
    width: usize,
    height: usize,
) -> Result<Vec<T>, gdal::errors::GdalError> {
    let b = ds.rasterband(band)?;
    let mut buf = vec![T::default(); width * height];
    b.read_into_slice::<T>(
        (x as isize, y as isize),
        (width, height),
        (width, height),
        &mut buf,
        None,
    )?;
    Ok(buf)
}

/// Band 1 of a raster on the analysis grid (such as a change score the run wrote), read by grid
/// window. One per thread, like every GDAL dataset.
pub struct SingleBandReader {
    ds: Dataset,
    path: PathBuf,
}

impl SingleBandReader {
    /// Opens the raster.
    pub fn open(path: &Path) -> Result<SingleBandReader, IngestError> {
        let ds = open_raster(path)?;
        Ok(SingleBandReader {
            ds,
            path: path.to_path_buf(),
        })
    }

    /// Band 1 over a grid window as `f32`; NaN where the window lies outside the raster.
    pub fn read_f32(&self, win: &Window) -> Result<Array2<f32>, IngestError> {
        let (w, h) = self.ds.raster_size();
        let mut out = Array2::from_elem((win.height, win.width), f32::NAN);
        let raster = Window {
            x: 0,
            y: 0,
            width: w,
            height: h,
        };
        let Some(part) = win.intersection(&raster) else {
            return Ok(out);
        };
        let (x0, y0, rw, rh) = (part.x, part.y, part.width, part.height);
        let v = read_band_window::<f32>(&self.ds, 1, x0 as usize, y0 as usize, rw, rh).map_err(
            |e| IngestError::PixelsUnreadable {
                path: self.path.clone(),
                detail: e.to_string(),
            },
        )?;
        let (ox, oy) = ((x0 - win.x) as usize, (y0 - win.y) as usize);
        for r in 0..rh {
            out.slice_mut(ndarray::s![oy + r, ox..ox + rw])
                .iter_mut()
                .zip(&v[r * rw..(r + 1) * rw])
                .for_each(|(o, x)| *o = *x);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::catalog::{describe_raster, CatalogOptions};

    /// A GeoTIFF in EPSG:32651 of four UInt16 bands (nodata 0) with north-west corner `origin`
    /// and square pixels of `px` metres, holding `value(band, column, row)`.
    fn raster(
        dir: &Path,
        (w, h): (usize, usize),
        px: f64,
        origin: (f64, f64),
        value: impl Fn(usize, usize, usize) -> u16,
    ) -> ImageSource {
        super::super::init_gdal();
        let path = dir.join(format!("fine-{px}.tif"));
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut ds = driver
            .create_with_band_type::<u16, _>(&path, w, h, 4)
            .unwrap();
        ds.set_geo_transform(&[origin.0, px, 0.0, origin.1, 0.0, -px])
            .unwrap();
        ds.set_spatial_ref(&srs::parse_crs("EPSG:32651").unwrap())
            .unwrap();
        for b in 0..4 {
            let mut band = ds.rasterband(b + 1).unwrap();
            band.set_no_data_value(Some(0.0)).unwrap();
            let data: Vec<u16> = (0..w * h).map(|i| value(b, i % w, i / w)).collect();
            let mut buf = gdal::raster::Buffer::new((w, h), data);
            band.write((0, 0), (w, h), &mut buf).unwrap();
        }
        drop(ds);
        catalogued(path)
    }

    /// The raster at `path` catalogued with its four bands named blue, green, red, nir.
    fn catalogued(path: PathBuf) -> ImageSource {
        let opts = CatalogOptions {
            bands: Some(vec![
                BandRole::Blue,
                BandRole::Green,
                BandRole::Red,
                BandRole::Nir,
            ]),
            ..CatalogOptions::default()
        };
        let info = describe_raster(&path, &opts).info.unwrap();
        ImageSource { path, info }
    }

    /// A reader of `src`'s four bands onto a 1 m grid over the square kilometre south-east of
    /// (300000, 3450000).
    fn reader_on_a_1m_grid(src: &ImageSource) -> CellReader {
        reader_on_a_grid(src, 1.0)
    }

    /// [`reader_on_a_1m_grid`] with pixels of `pixel` metres.
    fn reader_on_a_grid(src: &ImageSource, pixel: f64) -> CellReader {
        let grid = GridDef::covering(
            "EPSG:32651",
            &crate::grid::Bounds {
                min_x: 300000.0,
                min_y: 3449000.0,
                max_x: 301000.0,
                max_y: 3450000.0,
            },
            pixel,
            1024,
            32,
            Some((300000.0, 3450000.0)),
        );
        let date = DateSources {
            sources: vec![src.clone()],
            roles: DateSources::common_roles(std::slice::from_ref(src)),
        };
        assert_eq!(date.roles.len(), 4);
        CellReader::new(&grid, &date).unwrap()
    }

    /// What averaging `k` × `k` blocks must give: per grid pixel the mean of the valid source
    /// pixels under it, valid when at least half of them are.
    fn expected(
        src: &ImageSource,
        value: impl Fn(usize, usize, usize) -> u16,
        (dx, dy, k): (i64, i64, usize),
        win: &Window,
    ) -> (Array3<f32>, Array2<bool>) {
        let (sw, sh) = (src.info.width as i64, src.info.height as i64);
        let mut bands = Array3::zeros((4, win.height, win.width));
        let mut valid = Array2::from_elem((win.height, win.width), false);
        for r in 0..win.height {
            for c in 0..win.width {
                let (mut sums, mut n) = ([0f64; 4], 0);
                for j in 0..k as i64 {
                    for i in 0..k as i64 {
                        let sx = (win.x + c as i64) * k as i64 + i + dx;
                        let sy = (win.y + r as i64) * k as i64 + j + dy;
                        if sx < 0 || sy < 0 || sx >= sw || sy >= sh {
                            continue;
                        }
                        let v: Vec<u16> =
                            (0..4).map(|b| value(b, sx as usize, sy as usize)).collect();
                        // Nodata when every band holds the nodata value.
                        if v.iter().all(|v| *v == 0) {
                            continue;
                        }
                        n += 1;
                        for b in 0..4 {
                            sums[b] += v[b] as f64;
                        }
                    }
                }
                if 2 * n >= k * k {
                    valid[[r, c]] = true;
                    for b in 0..4 {
                        bands[[b, r, c]] = (sums[b] / n as f64) as f32;
                    }
                }
            }
        }
        (bands, valid)
    }

    #[test]
    fn a_finer_lattice_is_averaged_block_by_block_without_a_warp() {
        let dir = tempfile::tempdir().unwrap();
        // A hole of nodata whose edges cut grid pixels (some half, some three quarters empty).
        let value = |b: usize, x: usize, y: usize| -> u16 {
            if (101..157).contains(&x) && (41..90).contains(&y) {
                0
            } else {
                (100 + 7 * b + (x * 13 + y * 31 + x * y) % 251) as u16
            }
        };
        // A 1 m grid whose origin is one and three 0.5 m source pixels west and north of the
        // raster's corner (a 1 × 1 m pixel half or a quarter on the raster along its edges); and
        // a 5 cm source on the same grid (k = 20). Windows reach past the raster on every side,
        // and the first is tall enough to be read in several strips.
        for (px, size, (ox, oy)) in [(0.5, (601, 1203), (1, 3)), (0.05, (460, 340), (7, 2))] {
            let origin = (300000.0 + ox as f64 * px, 3450000.0 - oy as f64 * px);
            let src = raster(dir.path(), size, px, origin, value);
            let k = (1.0 / px).round() as usize;
            let mut reader = reader_on_a_1m_grid(&src);
            assert!(matches!(
                reader.sources[0].placement,
                Placement::Lattice { dx, dy, k: kk } if (dx, dy, kk) == (-ox, -oy, k)
            ));
            let (fw, fh) = (size.0.div_ceil(k) + 3, size.1.div_ceil(k) + 3);
            let win = Window {
                x: -2,
                y: -1,
                width: fw,
                height: fh,
            };
            let got = reader.read("c", &win).unwrap();
            let (want_bands, want_valid) = expected(&src, value, (-ox, -oy, k), &win);
            assert_eq!(got.valid, want_valid, "validity at {px} m");
            assert!(
                want_valid.iter().any(|v| !v) && want_valid.iter().filter(|v| **v).count() > 100
            );
            for ((g, w), v) in got
                .bands
                .iter()
                .zip(&want_bands)
                .zip(want_valid.iter().cycle())
            {
                if *v {
                    assert!((g - w).abs() < 1e-3, "{g} != {w} at {px} m");
                }
            }
        }
    }

    #[test]
    fn imagery_that_declares_no_validity_takes_zeros_in_every_band_as_no_data() {
        // A scene's zero-filled collar without a nodata value: the pixels 0 in every band are no
        // data, read directly, averaged or warped; a pixel 0 in one band only is ground.
        let dir = tempfile::tempdir().unwrap();
        let value = |b: usize, x: usize, y: usize| -> u16 {
            let collar = x < y / 2;
            if collar || (b == 0 && (300..320).contains(&x)) {
                0
            } else {
                (100 + 7 * b + (x * 13 + y * 31) % 251) as u16
            }
        };
        let src = raster(dir.path(), (601, 403), 0.5, (300000.0, 3450000.0), value);
        let ds = gdal::Dataset::open_ex(
            &src.path,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        for b in 1..=4 {
            ds.rasterband(b).unwrap().set_no_data_value(None).unwrap();
        }
        drop(ds);
        let src = catalogued(src.path);
        assert!(src.info.bands.iter().all(|b| b.nodata.is_none()));
        // Averaged 2 × 2 onto the 1 m grid: as the same file with nodata 0 declared.
        let mut reader = reader_on_a_1m_grid(&src);
        assert!(reader.sources[0].zero_is_nodata);
        let win = Window {
            x: 0,
            y: 0,
            width: 301,
            height: 201,
        };
        let got = reader.read("c", &win).unwrap();
        let (_, want_valid) = expected(&src, value, (0, 0, 2), &win);
        assert_eq!(got.valid, want_valid);
        assert!(!got.valid[[200, 10]] && got.valid[[10, 155]] && got.valid[[200, 200]]);
        // Read directly onto a grid of its own pixels: as the same file with nodata 0 declared.
        let mut direct = reader_on_a_grid(&src, 0.5);
        assert!(matches!(
            direct.sources[0].placement,
            Placement::Lattice { dx: 0, dy: 0, k: 1 }
        ));
        let win = Window {
            x: 0,
            y: 0,
            width: 601,
            height: 403,
        };
        let got = direct.read("c", &win).unwrap();
        let (_, want_valid) = expected(&src, value, (0, 0, 1), &win);
        assert_eq!(got.valid, want_valid);
        assert!(!got.valid[[400, 10]] && got.valid[[10, 310]] && got.valid[[400, 400]]);
        // Warped onto a grid whose pixels do not tile the source's: the collar is no data too.
        let grid = GridDef::covering(
            "EPSG:32651",
            &crate::grid::Bounds {
                min_x: 300000.0,
                min_y: 3449800.0,
                max_x: 300300.0,
                max_y: 3450000.0,
            },
            0.7,
            256,
            8,
            Some((300000.0, 3450000.0)),
        );
        let date = DateSources {
            sources: vec![src.clone()],
            roles: DateSources::common_roles(std::slice::from_ref(&src)),
        };
        let mut warped = CellReader::new(&grid, &date).unwrap();
        assert!(matches!(
            warped.sources[0].placement,
            Placement::Warp { .. }
        ));
        let win = Window {
            x: 0,
            y: 0,
            width: 256,
            height: 256,
        };
        let got = warped.read("c", &win).unwrap();
        // (x, y) in metres from the corner: the collar is x < y / 4 (source x < y / 2 px).
        let at = |x: f64, y: f64| got.valid[[(y / 0.7) as usize, (x / 0.7) as usize]];
        assert!(!at(5.0, 140.0) && !at(20.0, 170.0), "collar read as ground");
        assert!(at(100.0, 100.0) && at(50.0, 20.0) && at(152.0, 50.0));
    }

    #[test]
    fn the_covered_part_of_a_window_reads_as_the_whole_window_does_there() {
        let dir = tempfile::tempdir().unwrap();
        // A hole of nodata (every band 0) at the imagery's edge.
        let value = |b: usize, x: usize, y: usize| -> u16 {
            if x < 5 && (22..27).contains(&y) {
                0
            } else {
                (1 + b * 100 + (x * 7 + y * 3) % 97) as u16
            }
        };
        // A window reaching past the imagery to the west, east and south.
        let win = Window {
            x: -4,
            y: 10,
            width: 64,
            height: 70,
        };
        // The imagery's columns 0..40 and rows 10..30 of the window, 3 px around (within it).
        let part = Window {
            x: -3,
            y: 10,
            width: 46,
            height: 23,
        };
        // 40 × 30 m on the grid's lattice (read as is), and in 0.5 m pixels (averaged 2 × 2).
        for (px, size) in [(1.0, (40, 30)), (0.5, (80, 60))] {
            let src = raster(dir.path(), size, px, (300000.0, 3450000.0), value);
            let mut reader = reader_on_a_1m_grid(&src);
            let k = (1.0 / px) as usize;
            let whole = reader.read("c", &win).unwrap();
            let (want_bands, want_valid) = expected(&src, value, (0, 0, k), &win);
            assert_eq!(whole.valid, want_valid, "validity at {px} m");
            assert!(want_valid.iter().any(|v| !v) && want_valid.iter().any(|v| *v));
            let close = whole
                .bands
                .iter()
                .zip(&want_bands)
                .all(|(g, w)| (g - w).abs() < 1e-3);
            assert!(close, "values at {px} m");
            let got = reader.read_covered("c", &win, 3, 0.85).unwrap();
            assert_eq!(got.window, part);
            let want = whole.on_window(&part);
            assert_eq!((&got.valid, &got.bands), (&want.valid, &want.bands));
            assert_eq!(got.contributing, whole.contributing);
        }
        let src = raster(dir.path(), (40, 30), 1.0, (300000.0, 3450000.0), value);
        let mut reader = reader_on_a_1m_grid(&src);
        // When the covered part is most of the window, the whole window.
        let most = Window {
            x: 0,
            y: 0,
            width: 42,
            height: 31,
        };
        assert_eq!(
            reader.read_covered("c", &most, 3, 0.85).unwrap().window,
            most
        );
        // When no source reaches the window, the whole window (all no data).
        let away = Window {
            x: 100,
            y: 100,
            width: 8,
            height: 8,
        };
        let none = reader.read_covered("c", &away, 3, 0.85).unwrap();
        assert_eq!(none.window, away);
        assert!(none.valid.iter().all(|v| !v));
    }

    #[test]
    fn a_later_source_wins_where_its_pixels_are_valid() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Both on the grid's lattice: the first over columns 0..30, the second over 20..50 with a
        // hole of nodata in its first rows.
        let first = raster(
            d1.path(),
            (30, 20),
            1.0,
            (300000.0, 3450000.0),
            |b, x, y| (1 + b + x + 100 * y) as u16,
        );
        let second = raster(
            d2.path(),
            (30, 20),
            1.0,
            (300020.0, 3450000.0),
            |b, x, y| {
                if y < 4 {
                    0
                } else {
                    (5000 + b + x + 100 * y) as u16
                }
            },
        );
        let mut reader = reader_on_a_1m_grid(&first);
        let date = DateSources {
            sources: vec![first.clone(), second.clone()],
            roles: reader.roles.clone(),
        };
        reader = CellReader::new(&reader.grid, &date).unwrap();
        let win = Window {
            x: -2,
            y: -1,
            width: 56,
            height: 24,
        };
        for img in [
            reader.read("c", &win).unwrap(),
            reader.read_covered("c", &win, 1, 1.0).unwrap(),
        ] {
            let whole = img.on_window(&win);
            for r in 0..24 {
                for c in 0..56 {
                    let (x, y) = (c as i64 - 2, r as i64 - 1);
                    let in1 = (0..30).contains(&x) && (0..20).contains(&y);
                    let in2 = (20..50).contains(&x) && (4..20).contains(&y);
                    let want = if in2 {
                        (5000 + 2 + (x - 20) + 100 * y) as f32
                    } else if in1 {
                        (1 + 2 + x + 100 * y) as f32
                    } else {
                        0.0
                    };
                    assert_eq!(whole.valid[[r, c]], in1 || in2, "validity at {x},{y}");
                    assert_eq!(whole.bands[[2, r, c]], want, "band 3 at {x},{y}");
                }
            }
            assert_eq!(img.contributing, vec![0, 1]);
        }
    }

    #[test]
    fn a_finer_lattice_off_the_grid_is_warped() {
        let dir = tempfile::tempdir().unwrap();
        // Half a source pixel off the grid's lattice: no whole blocks to average.
        let src = raster(
            dir.path(),
            (40, 40),
            0.5,
            (300000.25, 3450000.0),
            |b, x, y| (1 + b + x + y) as u16,
        );
        let mut reader = reader_on_a_1m_grid(&src);
        assert!(matches!(
            reader.sources[0].placement,
            Placement::Warp {
                resampling: "average"
            }
        ));
        // A warp's output depends on its window: the whole window is read, not the covered part.
        let win = Window {
            x: -4,
            y: -4,
            width: 64,
            height: 64,
        };
        assert_eq!(reader.read_covered("c", &win, 3, 0.85).unwrap().window, win);
    }
}
