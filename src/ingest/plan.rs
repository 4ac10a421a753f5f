//! Planning the analysis grid from the configuration and the catalogued imagery: its CRS (the
//! config's, else the parcels', else the imagery's), pixel size, origin and extent.

use super::catalog::{CatalogEntry, RasterInfo};
use super::srs;
use super::IngestError;
use crate::grid::{Bounds, GridDef};
use std::path::{Path, PathBuf};

/// What the user asked for (config values, command-line overrides); `None` means "derive it".
#[derive(Debug, Clone, Default)]
pub struct GridRequest {
    /// Target CRS.
    pub crs: Option<String>,
    /// Pixel size in CRS units.
    pub pixel_size: Option<f64>,
    /// Pixel size in metres, used when `pixel_size` is not given: the ground resolution a
    /// learned detector expects ([`crate::detect::Detector::pixel_size_m`]), converted to the
    /// grid CRS's units (projected CRSs only).
    pub pixel_size_m: Option<f64>,
    /// Cell edge in pixels.
    pub cell_size: usize,
    /// Halo in pixels.
    pub halo: usize,
    /// Pinned origin.
    pub origin: Option<(f64, f64)>,
    /// The parcels file, whose CRS is the default.
    pub parcels: Option<PathBuf>,
    /// Layer name in the parcels file.
    pub parcels_layer: Option<String>,
    /// The CRS of the parcels' coordinates when the configuration states it (`[parcels] crs`).
    pub parcels_crs: Option<String>,
}

/// The CRS of a vector layer's coordinates (the named layer, else the first; [`vector_crs_as`]
/// chooses by role), as `EPSG:xxxx` or
/// WKT: the file's own, else `stated` (the configuration's `[parcels] crs`; see
/// [`super::vector::layer_srs`]).
pub fn vector_crs(
    path: &Path,
    layer: Option<&str>,
    stated: Option<&str>,
) -> Result<String, IngestError> {
    vector_crs_as(path, layer, None, stated)
}

/// [`vector_crs`] of the layer read for a `role` ([`super::vector::layer_for`]).
pub fn vector_crs_as(
    path: &Path,
    layer: Option<&str>,
    role: Option<&super::vector::LayerRole<'_>>,
    stated: Option<&str>,
) -> Result<String, IngestError> {
    crs_label(path, layer, role, stated, super::vector::layer_srs)
}

/// [`vector_crs_as`] of a layer that is read afterwards (`read_layer_as`), which logs what it
/// finds about the layer's CRS: this logs nothing, so that a warning is given once, not twice.
pub fn vector_crs_before_reading(
    path: &Path,
    layer: Option<&str>,
    role: Option<&super::vector::LayerRole<'_>>,
    stated: Option<&str>,
) -> Result<String, IngestError> {
    crs_label(path, layer, role, stated, super::vector::layer_srs_quietly)
}

/// How the CRS of a layer is found ([`super::vector::layer_srs`] or its quiet twin).
type LayerSrs = fn(
    &gdal::vector::Layer<'_>,
    &Path,
    Option<&str>,
) -> Result<Option<gdal::spatial_ref::SpatialRef>, IngestError>;

/// The label of the CRS `layer_srs` finds for the layer; a layer without one is refused.
fn crs_label(
    path: &Path,
    layer: Option<&str>,
    role: Option<&super::vector::LayerRole<'_>>,
    stated: Option<&str>,
    layer_srs: LayerSrs,
) -> Result<String, IngestError> {
    let ds = super::vector::open_vector(path)?;
    let lyr = super::vector::layer_for(&ds, path, layer, role)?;
    let s = layer_srs(&lyr, path, stated)?.ok_or_else(|| IngestError::NoCrs {
        path: path.to_path_buf(),
    })?;
    Ok(srs::describe(&s).label())
}

/// The bounds of a raster's footprint in another CRS (edges densified before transforming).
pub fn bounds_in_crs(info: &RasterInfo, path: &Path, crs: &str) -> Result<Bounds, IngestError> {
    let crs_err = |detail: String| IngestError::Crs {
        path: path.to_path_buf(),
        detail,
    };
    let gt = info
        .geo_transform
        .ok_or_else(|| IngestError::NoGeoreferencing {
            path: path.to_path_buf(),
        })?;
    let src_wkt = info
        .crs
        .as_ref()
        .map(|c| c.wkt.clone())
        .ok_or_else(|| IngestError::NoCrs {
            path: path.to_path_buf(),
        })?;
    let from = srs::parse_crs(&src_wkt).map_err(|e| crs_err(e.to_string()))?;
    let to = srs::parse_crs(crs).map_err(|e| crs_err(e.to_string()))?;
    let ct = srs::transform(&from, &to).map_err(|e| crs_err(e.to_string()))?;
    let (w, h) = (info.width as f64, info.height as f64);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for k in 0..=16 {
        let t = k as f64 / 16.0;
        for (c, r) in [(t * w, 0.0), (w, t * h), (t * w, h), (0.0, t * h)] {
            xs.push(gt[0] + c * gt[1] + r * gt[2]);
            ys.push(gt[3] + c * gt[4] + r * gt[5]);
        }
    }
    srs::transform_points(&ct, &mut xs, &mut ys)
        .map_err(|e| crs_err(format!("footprint cannot be transformed to {crs}: {e}")))?;
    let mut b = Bounds::from_corners(xs[0], ys[0], xs[0], ys[0]);
    for (x, y) in xs.iter().zip(&ys) {
        b = b.union(&Bounds::from_corners(*x, *y, *x, *y));
    }
    Ok(b)
}

/// Size in `crs` units of one pixel of a raster, measured at its centre.
fn pixel_size_in(info: &RasterInfo, path: &Path, crs: &str) -> Result<f64, IngestError> {
    let gt = info
        .geo_transform
        .ok_or_else(|| IngestError::NoGeoreferencing {
            path: path.to_path_buf(),
        })?;
    let wkt = info.crs.as_ref().map(|c| c.wkt.clone()).unwrap_or_default();
    let crs_err = |e: gdal::errors::GdalError| IngestError::Crs {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let from = srs::parse_crs(&wkt).map_err(crs_err)?;
    let to = srs::parse_crs(crs).map_err(crs_err)?;
    let ct = srs::transform(&from, &to).map_err(crs_err)?;
    let (c, r) = (info.width as f64 / 2.0, info.height as f64 / 2.0);
    let p = |c: f64, r: f64| (gt[0] + c * gt[1] + r * gt[2], gt[3] + c * gt[4] + r * gt[5]);
    let pts = [p(c, r), p(c + 1.0, r), p(c, r + 1.0)];
    let mut xs: Vec<f64> = pts.iter().map(|q| q.0).collect();
    let mut ys: Vec<f64> = pts.iter().map(|q| q.1).collect();
    srs::transform_points(&ct, &mut xs, &mut ys).map_err(crs_err)?;
    let dx = (xs[1] - xs[0]).hypot(ys[1] - ys[0]);
    let dy = (xs[2] - xs[0]).hypot(ys[2] - ys[0]);
    Ok((dx * dy).sqrt())
}

/// A length in metres expressed in a projected CRS's linear unit (1 for metres, 0.3048… for
/// feet). A geographic CRS has no such unit: the error says to pin `[grid] pixel_size` in degrees
/// or to use a projected grid CRS.
pub fn metres_in_crs_units(crs: &str, metres: f64) -> Result<f64, IngestError> {
    let err = |detail: String| IngestError::GridPixelSize {
        crs: super::srs::short(crs).to_string(),
        detail,
    };
    let info = srs::parse_crs(crs)
        .map(|s| srs::describe(&s))
        .map_err(|e| err(e.to_string()))?;
    match info.linear_unit_m {
        Some(u) if !info.geographic && u > 0.0 => Ok(metres / u),
        _ => Err(err(format!(
            "a pixel size of {metres} m cannot be expressed in a geographic CRS; use a projected grid CRS ([grid] crs) or pin [grid] pixel_size in degrees"
        ))),
    }
}

/// Size in metres of one pixel of a grid with pixel size `pixel` in `crs` units (projected CRSs
/// only; `None` for geographic ones).
pub fn crs_units_in_metres(crs: &str, pixel: f64) -> Option<f64> {
    let info = srs::parse_crs(crs).ok().map(|s| srs::describe(&s))?;
    info.linear_unit_m
        .filter(|_| !info.geographic)
        .map(|u| pixel * u)
}

/// The same ground on a lattice of `metres`-sized pixels with the same origin (north-west
/// corner), for a detector that expects that ground resolution. A grid whose pixels are already
/// within 1% of it is returned unchanged, so imagery at the model's resolution stays on its own
/// pixel lattice.
pub fn regrid_to_pixel_size_m(grid: &GridDef, metres: f64) -> Result<GridDef, IngestError> {
    let current = (grid.pixel_width * grid.pixel_height).sqrt();
    if let Some(m) = crs_units_in_metres(&grid.crs, current) {
        if ((m - metres) / metres).abs() <= 0.01 {
            return Ok(grid.clone());
        }
    }
    let pixel = metres_in_crs_units(&grid.crs, metres)?;
    let span_x = grid.pixel_width * grid.width as f64;
    let span_y = grid.pixel_height * grid.height as f64;
    Ok(GridDef {
        pixel_width: pixel,
        pixel_height: pixel,
        width: ((span_x / pixel) - 1e-9).ceil().max(1.0) as usize,
        height: ((span_y / pixel) - 1e-9).ceil().max(1.0) as usize,
        ..grid.clone()
    })
}

/// The working CRS for parcels in `parcels_crs`: theirs when it is projected; when it is
/// geographic (degrees), the first of the rasters' CRSs that is projected, so that areas are
/// measured in metres and the imagery is read without warping onto a grid of degrees; theirs
/// when no raster has a projected CRS either.
pub fn working_crs_for<'a>(
    parcels_crs: &str,
    rasters: impl IntoIterator<Item = &'a RasterInfo>,
) -> String {
    let geographic = |crs: &str| {
        srs::parse_crs(crs)
            .map(|s| srs::describe(&s).geographic)
            .unwrap_or(false)
    };
    if !geographic(parcels_crs) {
        return parcels_crs.to_string();
    }
    rasters
        .into_iter()
        .filter_map(|r| r.crs.as_ref())
        .find(|c| !c.geographic)
        .map_or_else(|| parcels_crs.to_string(), |c| c.label())
}

/// Plans the grid over the union of the usable rasters' footprints.
pub fn plan_grid(req: &GridRequest, entries: &[&CatalogEntry]) -> Result<GridDef, IngestError> {
    let usable: Vec<(&Path, &RasterInfo)> = entries
        .iter()
        .filter(|e| e.is_usable())
        .filter_map(|e| e.info.as_ref().map(|i| (e.path.as_path(), i)))
        .collect();
    let first = usable.first().ok_or_else(|| IngestError::CellRead {
        cell: "<grid>".into(),
        detail: "no usable imagery to place a grid over".into(),
    })?;
    let crs = match (&req.crs, &req.parcels) {
        (Some(c), _) => c.clone(),
        (None, Some(p)) => working_crs_for(
            &vector_crs(p, req.parcels_layer.as_deref(), req.parcels_crs.as_deref())?,
            usable.iter().map(|u| u.1),
        ),
        (None, None) => {
            first
                .1
                .crs
                .as_ref()
                .map(|c| c.label())
                .ok_or_else(|| IngestError::NoCrs {
                    path: first.0.to_path_buf(),
                })?
        }
    };
    let pixel = match (req.pixel_size, req.pixel_size_m) {
        (Some(p), _) => p,
        (None, Some(m)) => metres_in_crs_units(&crs, m)?,
        (None, None) => pixel_size_in(first.1, first.0, &crs)?,
    };
    let mut extent: Option<Bounds> = None;
    for (path, info) in &usable {
        let b = bounds_in_crs(info, path, &crs)?;
        extent = Some(extent.map_or(b, |e| e.union(&b)));
    }
    let extent = extent.unwrap_or_else(|| Bounds::from_corners(0.0, 0.0, 0.0, 0.0));
    Ok(GridDef::covering(
        &crs,
        &extent,
        pixel,
        req.cell_size,
        req.halo,
        req.origin,
    ))
}

/// A grid that is exactly a raster's own pixel grid (north-up rasters only).
pub fn grid_of_raster(
    info: &RasterInfo,
    path: &Path,
    cell_size: usize,
    halo: usize,
) -> Result<GridDef, IngestError> {
    let gt = info
        .geo_transform
        .ok_or_else(|| IngestError::NoGeoreferencing {
            path: path.to_path_buf(),
        })?;
    if gt[2] != 0.0 || gt[4] != 0.0 || gt[5] >= 0.0 {
        return Err(IngestError::Crs {
            path: path.to_path_buf(),
            detail: "the raster is rotated or south-up; give a grid in the config instead".into(),
        });
    }
    let crs = info
        .crs
        .as_ref()
        .map(|c| c.label())
        .ok_or_else(|| IngestError::NoCrs {
            path: path.to_path_buf(),
        })?;
    Ok(GridDef {
        crs,
        origin_x: gt[0],
        origin_y: gt[3],
        pixel_width: gt[1],
        pixel_height: -gt[5],
        cell_size,
        halo,
        width: info.width,
        height: info.height,
    })
}
