//! The few GDAL calls the `gdal` crate does not wrap. All of landwatch's `unsafe` lives here.

use gdal::raster::{GdalDataType, GdalType};
use gdal::Dataset;
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::ptr;

/// GDAL's last error message on this thread, or a placeholder when there is none.
pub(crate) fn last_error() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local, NUL-terminated buffer that
    // stays valid until the next GDAL call on this thread; it is copied out immediately.
    let msg = unsafe {
        let p = gdal_sys::CPLGetLastErrorMsg();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    if msg.trim().is_empty() {
        "GDAL reported no detail".to_string()
    } else {
        msg
    }
}

/// A geometry with curves (circular arcs of a curve polygon or a multi-surface, as ArcGIS and
/// CAD exports hold) as the same geometry of straight segments, GDAL's default step of 4° of arc;
/// `None` when it has no curves.
pub(crate) fn linearised(g: &gdal::vector::Geometry) -> Option<gdal::vector::Geometry> {
    // SAFETY: OGR_GT_IsNonLinear reads a plain enum value.
    if unsafe { gdal_sys::OGR_GT_IsNonLinear(g.geometry_type()) } == 0 {
        return None;
    }
    // SAFETY: the handle of `g` is valid while `g` lives; OGR_G_GetLinearGeometry returns a new
    // geometry owned by the caller (or NULL), which is exported to WKB into a buffer of the size
    // OGR_G_WkbSize gives and destroyed before returning.
    let wkb = unsafe {
        let lin = gdal_sys::OGR_G_GetLinearGeometry(g.c_geometry(), 0.0, ptr::null_mut());
        if lin.is_null() {
            return None;
        }
        let size = usize::try_from(gdal_sys::OGR_G_WkbSize(lin)).unwrap_or(0);
        let mut buf = vec![0u8; size];
        let err =
            gdal_sys::OGR_G_ExportToWkb(lin, gdal_sys::OGRwkbByteOrder::wkbNDR, buf.as_mut_ptr());
        gdal_sys::OGR_G_DestroyGeometry(lin);
        if err != gdal_sys::OGRErr::OGRERR_NONE {
            return None;
        }
        buf
    };
    gdal::vector::Geometry::from_wkb(&wkb).ok()
}

/// Closes the geometry's unclosed rings (their last point made their first, `OGR_G_CloseRings`),
/// as a GeoJSON or GeoPackage writer may leave them; whether any ring was unclosed.
pub(crate) fn close_rings(g: &mut gdal::vector::Geometry) -> bool {
    // SAFETY: the handle of `g` is valid while `g` lives, and `g` is borrowed mutably, so no
    // other reference sees it change; OGR_G_CloseRings adds a point to each unclosed ring in
    // place (nothing for geometries without rings), and OGR_G_WkbSize only reads.
    unsafe {
        let before = gdal_sys::OGR_G_WkbSize(g.c_geometry());
        gdal_sys::OGR_G_CloseRings(g.c_geometry());
        gdal_sys::OGR_G_WkbSize(g.c_geometry()) != before
    }
}

/// The files that make up a dataset (main file first), as GDAL lists them.
pub(crate) fn file_list(ds: &Dataset) -> Vec<PathBuf> {
    let mut out = Vec::new();
    // SAFETY: the dataset handle is valid for the life of `ds`; GDALGetFileList returns a
    // NULL-terminated list of C strings owned by the caller, which is freed with CSLDestroy after
    // every entry has been copied.
    unsafe {
        let list = gdal_sys::GDALGetFileList(ds.c_dataset());
        if list.is_null() {
            return out;
        }
        let mut i = 0;
        loop {
            let entry = *list.add(i);
            if entry.is_null() {
                break;
            }
            out.push(PathBuf::from(
                CStr::from_ptr(entry).to_string_lossy().into_owned(),
            ));
            i += 1;
        }
        gdal_sys::CSLDestroy(list);
    }
    out
}

/// Runs `gdalwarp` (the library form, `GDALWarp`) from `sources` into the existing dataset `dst`.
///
/// `args` are gdalwarp command-line options (e.g. `-r bilinear -dstalpha`). Sources are
/// composited in order: a later source overwrites an earlier one where it has valid pixels.
pub(crate) fn warp_into(
    sources: &[&Dataset],
    dst: &Dataset,
    args: &[String],
) -> Result<(), String> {
    let c_args: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| format!("warp option {a:?} contains NUL")))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut std::ffi::c_char> =
        c_args.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv.push(ptr::null_mut());
    let mut handles: Vec<gdal_sys::GDALDatasetH> = sources.iter().map(|d| d.c_dataset()).collect();

    // SAFETY: `argv` is a NULL-terminated array of valid C strings that outlives the call
    // (GDALWarpAppOptionsNew copies them). The options are freed on every path below.
    let options = unsafe { gdal_sys::GDALWarpAppOptionsNew(argv.as_mut_ptr(), ptr::null_mut()) };
    if options.is_null() {
        return Err(format!("invalid warp options {args:?}: {}", last_error()));
    }
    let mut usage_error: std::ffi::c_int = 0;
    // SAFETY: every handle in `handles` and `dst` is a valid open dataset borrowed for the call;
    // with a destination handle GDALWarp writes into it and returns that same handle, which
    // therefore must not be closed here (the `Dataset` owning it closes it).
    let out = unsafe {
        let out = gdal_sys::GDALWarp(
            ptr::null(),
            dst.c_dataset(),
            handles.len() as std::ffi::c_int,
            handles.as_mut_ptr(),
            options,
            &mut usage_error,
        );
        gdal_sys::GDALWarpAppOptionsFree(options);
        out
    };
    if out.is_null() || usage_error != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Adds a boolean attribute (OGR integer with subtype `OFSTBoolean`) to a layer, so GeoPackage
/// and QGIS show true/false.
pub(crate) fn add_boolean_field<L: gdal::vector::LayerAccess>(
    layer: &L,
    name: &str,
) -> Result<(), String> {
    let c_name = CString::new(name).map_err(|_| format!("field name {name:?} contains NUL"))?;
    // SAFETY: the field definition is created, configured, copied into the layer by
    // OGR_L_CreateField and destroyed here on every path; `c_layer` is the live handle of `layer`.
    unsafe {
        let fd = gdal_sys::OGR_Fld_Create(c_name.as_ptr(), gdal_sys::OGRFieldType::OFTInteger);
        if fd.is_null() {
            return Err(last_error());
        }
        gdal_sys::OGR_Fld_SetSubType(fd, gdal_sys::OGRFieldSubType::OFSTBoolean);
        let rv = gdal_sys::OGR_L_CreateField(layer.c_layer(), fd, 1);
        gdal_sys::OGR_Fld_Destroy(fd);
        if rv != gdal_sys::OGRErr::OGRERR_NONE {
            return Err(last_error());
        }
    }
    Ok(())
}

/// Writes a band's dirty blocks out of GDAL's block cache now (`GDALFlushRasterCache`): each is
/// compressed and written at this point instead of when the dataset closes. Band level, so the
/// TIFF directory is not rewritten.
pub(crate) fn flush_band(band: &gdal::raster::RasterBand) -> Result<(), String> {
    // SAFETY: the band handle is valid for the life of `band`, which borrows its dataset.
    let err = unsafe { gdal_sys::GDALFlushRasterCache(band.c_rasterband()) };
    cpl_result(err)
}

/// A GDAL call's error code as a result, with GDAL's last message on failure.
fn cpl_result(err: gdal_sys::CPLErr::Type) -> Result<(), String> {
    if err == gdal_sys::CPLErr::CE_None {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// Writes `data` (`width × height` values, row after row) to a window of a band
/// (`GDALRasterIO`), straight from the caller's slice: the `gdal` crate's `write` takes an owned
/// buffer, which would mean copying every window written.
pub(crate) fn write_band_window<T: gdal::raster::GdalType + Copy>(
    band: &mut gdal::raster::RasterBand,
    (x, y): (usize, usize),
    (width, height): (usize, usize),
    data: &[T],
) -> Result<(), String> {
    if data.len() != width * height {
        return Err(format!(
            "{} values for a {width} × {height} window",
            data.len()
        ));
    }
    let [cx, cy, cw, ch] = c_window((x, y), (width, height))?;
    // SAFETY: the band handle is valid for the life of `band`; `data` holds `width × height`
    // values of `T`'s GDAL type, packed (spacings 0: GDAL's defaults for that layout), which
    // GDAL only reads when writing (the pointer is `*mut` in the C signature only).
    let err = unsafe {
        gdal_sys::GDALRasterIO(
            band.c_rasterband(),
            gdal_sys::GDALRWFlag::GF_Write,
            cx,
            cy,
            cw,
            ch,
            data.as_ptr() as *mut std::ffi::c_void,
            cw,
            ch,
            T::gdal_ordinal(),
            0,
            0,
        )
    };
    cpl_result(err)
}

/// A size or position as the C `int` GDAL takes.
fn c_int(v: usize, what: &str) -> Result<std::ffi::c_int, String> {
    std::ffi::c_int::try_from(v).map_err(|_| format!("{what} {v} is too large for GDAL"))
}

/// A window (column, row, width, height) as the C `int`s GDAL takes.
fn c_window(
    (x, y): (usize, usize),
    (width, height): (usize, usize),
) -> Result<[std::ffi::c_int; 4], String> {
    Ok([
        c_int(x, "column")?,
        c_int(y, "row")?,
        c_int(width, "width")?,
        c_int(height, "height")?,
    ])
}

/// Sets the size of GDAL's process-wide block cache (`GDALSetCacheMax64`); GDAL evicts the
/// least recently used blocks beyond it.
pub(crate) fn set_cache_max(bytes: u64) {
    // SAFETY: a setter of one process-wide number, safe to call at any time.
    unsafe { gdal_sys::GDALSetCacheMax64(bytes.min(i64::MAX as u64) as i64) };
}

/// Where [`read_bands_f32_padded`] puts a window: a band-sequential `f32` cube of `dims` (bands,
/// rows, columns), the window's first pixel at `at` (row, column) of each band.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CubeRegion {
    pub dims: (usize, usize, usize),
    pub at: (usize, usize),
}

/// Reads a window of several bands (1-based) as `f32`, band after band (a `bands × height ×
/// width` array), as [`read_bands_f32_padded`] does.
pub(crate) fn read_bands_f32(
    ds: &Dataset,
    bands: &[usize],
    at: (usize, usize),
    (width, height): (usize, usize),
) -> Result<Vec<f32>, String> {
    let region = CubeRegion {
        dims: (bands.len(), height, width),
        at: (0, 0),
    };
    read_bands_f32_padded(ds, bands, at, (width, height), region)
}

/// Reads a window of several bands (1-based) as `f32` into a region of a new band-sequential
/// cube, zeros around it. One dataset-level request (`GDALDatasetRasterIOEx`), so that a
/// pixel-interleaved file's blocks are copied out for all bands at once, straight to where they
/// go; `Byte`, `Int16` and `UInt16` bands are read as themselves and converted here
/// ([`for_each_row`]). Only the values outside the region are zeroed: a successful read writes
/// every value inside it, and a failed one returns the error and drops the cube.
pub(crate) fn read_bands_f32_padded(
    ds: &Dataset,
    bands: &[usize],
    (x, y): (usize, usize),
    (width, height): (usize, usize),
    region: CubeRegion,
) -> Result<Vec<f32>, String> {
    let (nb, h, w) = region.dims;
    let (oy, ox) = region.at;
    if nb != bands.len() || oy + height > h || ox + width > w {
        return Err(format!(
            "a {width} × {height} px read of {} bands does not fit at {:?} of a {:?} cube",
            bands.len(),
            region.at,
            region.dims,
        ));
    }
    let len = nb * h * w;
    let mut buf: Vec<f32> = Vec::with_capacity(len);
    if len == 0 {
        return Ok(buf);
    }
    let out = &mut buf.spare_capacity_mut()[..len];
    let zero = std::mem::MaybeUninit::new(0.0f32);
    for plane in out.chunks_exact_mut(h * w) {
        for (r, row) in plane.chunks_exact_mut(w).enumerate() {
            if (oy..oy + height).contains(&r) {
                row[..ox].fill(zero);
                row[ox + width..].fill(zero);
            } else {
                row.fill(zero);
            }
        }
    }
    // Integer bands whose every value is exactly an `f32` travel as themselves.
    let at = ((x, y), (width, height));
    let place = (h, w, oy, ox);
    match common_type(ds, bands) {
        Some(GdalDataType::UInt16) => convert_rows::<u16>(ds, bands, at, out, place)?,
        Some(GdalDataType::Int16) => convert_rows::<i16>(ds, bands, at, out, place)?,
        Some(GdalDataType::UInt8) => convert_rows::<u8>(ds, bands, at, out, place)?,
        _ => {
            // SAFETY: the region lies inside the cube (checked above), for which `out` has room:
            // GDAL writes `nb` bands of `height` rows of `width` values, each at `oy·w + ox` plus
            // row · `w` plus band · `h·w` values.
            unsafe {
                raster_io::<f32>(
                    ds,
                    bands,
                    (x, y),
                    (width, height),
                    out.as_mut_ptr().cast::<f32>().add(oy * w + ox),
                    (w, h * w),
                )?;
            }
        }
    }
    // SAFETY: every value outside the region was zeroed above, and the read, which returned
    // without error, wrote every value inside it (`for_each_row` hands over every row of every
    // band, and `convert_rows` writes each whole).
    unsafe { buf.set_len(len) };
    Ok(buf)
}

/// `GDALDatasetRasterIOEx` reading a window of `bands` as `T` to `dst`, rows `spacing.0` values
/// apart and bands `spacing.1` apart.
///
/// # Safety
/// `dst` must be valid for writes of every value GDAL writes: `bands.len()` bands of `height`
/// rows of `width` values, value `(k, r, c)` at `dst + k·spacing.1 + r·spacing.0 + c`.
unsafe fn raster_io<T: gdal::raster::GdalType>(
    ds: &Dataset,
    bands: &[usize],
    (x, y): (usize, usize),
    (width, height): (usize, usize),
    dst: *mut T,
    (line, band): (usize, usize),
) -> Result<(), String> {
    let mut band_map = bands
        .iter()
        .map(|&b| c_int(b, "band"))
        .collect::<Result<Vec<_>, _>>()?;
    let [cx, cy, cw, ch] = c_window((x, y), (width, height))?;
    let n = c_int(bands.len(), "band count")?;
    let f = std::mem::size_of::<T>() as gdal_sys::GSpacing;
    // SAFETY: the dataset handle is valid for the life of `ds`; `band_map` holds `n` band
    // numbers; `dst` is valid for what GDAL writes with these spacings (the caller's contract).
    let err = unsafe {
        gdal_sys::GDALDatasetRasterIOEx(
            ds.c_dataset(),
            gdal_sys::GDALRWFlag::GF_Read,
            cx,
            cy,
            cw,
            ch,
            dst.cast(),
            cw,
            ch,
            T::gdal_ordinal(),
            n,
            band_map.as_mut_ptr(),
            f,
            f * line as gdal_sys::GSpacing,
            f * band as gdal_sys::GSpacing,
            ptr::null_mut(),
        )
    };
    cpl_result(err)
}

/// Bytes read at a time by [`for_each_row`] (256 KiB): a strip small enough to stay in the CPU's
/// cache between GDAL's copy into it and the caller's conversion out of it.
const STRIP_BYTES: usize = 1 << 18;

/// Reads a window of several bands (1-based) of type `T` strip by strip of rows, as their own
/// type, and hands every row of every band to `put(band, row, values)`. GDAL's own integer →
/// `f32` conversion copies a value at a time; in the bands' own type its copy out of the block
/// cache is a `memcpy` of each row, and [`convert_rows`] converts eight values at a time.
fn for_each_row<T: GdalType + Copy + Default>(
    ds: &Dataset,
    bands: &[usize],
    (x, y): (usize, usize),
    (width, height): (usize, usize),
    mut put: impl FnMut(usize, usize, &[T]),
) -> Result<(), String> {
    let nb = bands.len();
    if nb == 0 || width == 0 || height == 0 {
        return Ok(());
    }
    let per_row = nb * width * std::mem::size_of::<T>();
    let rows = (STRIP_BYTES / per_row).clamp(1, height);
    let mut strip: Vec<T> = vec![T::default(); nb * rows * width];
    for r0 in (0..height).step_by(rows) {
        let n = rows.min(height - r0);
        // SAFETY: `strip` holds `nb × rows × width` values; GDAL writes `nb` bands of `n ≤ rows`
        // rows of `width` values, value `(k, r, c)` at `k·rows·width + r·width + c`.
        unsafe {
            raster_io::<T>(
                ds,
                bands,
                (x, y + r0),
                (width, n),
                strip.as_mut_ptr(),
                (width, rows * width),
            )?;
        }
        for k in 0..nb {
            let band = &strip[k * rows * width..][..n * width];
            for (r, row) in band.chunks_exact(width).enumerate() {
                put(k, r0 + r, row);
            }
        }
    }
    Ok(())
}

/// Reads a window (`at`: position and size) of bands of type `T` through [`for_each_row`] into
/// `out`, a band-sequential cube of `(h, w)` planes with the window at row `oy`, column `ox`:
/// every value of the window written, exactly (each `T` is exactly an `f32`).
fn convert_rows<T: GdalType + Copy + Default>(
    ds: &Dataset,
    bands: &[usize],
    (at, (width, height)): ((usize, usize), (usize, usize)),
    out: &mut [std::mem::MaybeUninit<f32>],
    (h, w, oy, ox): (usize, usize, usize, usize),
) -> Result<(), String>
where
    f32: From<T>,
{
    for_each_row::<T>(ds, bands, at, (width, height), |k, r, row| {
        let start = k * h * w + (oy + r) * w + ox;
        for (d, v) in out[start..start + width].iter_mut().zip(row) {
            d.write(f32::from(*v));
        }
    })
}

/// The data type all of `bands` share, if they share one.
pub(crate) fn common_type(ds: &Dataset, bands: &[usize]) -> Option<GdalDataType> {
    let mut types = bands
        .iter()
        .map(|&b| ds.rasterband(b).ok().map(|b| b.band_type()));
    let first = types.next()??;
    types.all(|t| t == Some(first)).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gdal::raster::Buffer;
    use gdal::DriverManager;

    /// A `w` × `h` GeoTIFF of four `T` bands, tiled 64 × 64 and pixel-interleaved (as satellite
    /// scenes come), band `b` at (x, y) holding `value(b, x, y)`.
    fn tiff<T: GdalType + Copy>(
        dir: &std::path::Path,
        name: &str,
        (w, h): (usize, usize),
        value: impl Fn(usize, usize, usize) -> T,
    ) -> Dataset {
        crate::ingest::init_gdal();
        let path = dir.join(name);
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let opts = gdal::raster::RasterCreationOptions::from_iter([
            "TILED=YES",
            "BLOCKXSIZE=64",
            "BLOCKYSIZE=64",
            "INTERLEAVE=PIXEL",
            "COMPRESS=DEFLATE",
        ]);
        let ds = driver
            .create_with_band_type_with_options::<T, _>(&path, w, h, 4, &opts)
            .unwrap();
        for b in 0..4 {
            let data: Vec<T> = (0..w * h).map(|i| value(b, i % w, i / w)).collect();
            let mut buf = Buffer::new((w, h), data);
            ds.rasterband(b + 1)
                .unwrap()
                .write((0, 0), (w, h), &mut buf)
                .unwrap();
        }
        drop(ds);
        Dataset::open(&path).unwrap()
    }

    #[test]
    fn integer_bands_read_as_the_same_f32_values_as_gdal_converts_and_zeros_around_them() {
        let dir = tempfile::tempdir().unwrap();
        let value = |b: usize, x: usize, y: usize| (x * 7 + y * 131 + b * 9001 + x * y) as u16;
        // Wide enough that a strip is a few rows (131 072 values / (3 bands × 700)), and tall
        // enough for many strips, the last one short.
        let (w, h) = (700, 530);
        let ints = tiff::<u16>(dir.path(), "u16.tif", (w, h), value);
        let floats = tiff::<f32>(dir.path(), "f32.tif", (w, h), |b, x, y| {
            f32::from(value(b, x, y))
        });
        assert_eq!(common_type(&ints, &[3, 1, 4]), Some(GdalDataType::UInt16));
        assert_eq!(
            common_type(&floats, &[3, 1, 4]),
            Some(GdalDataType::Float32)
        );
        let bands = [3, 1, 4];
        let (at, size) = ((13, 29), (611, 487));
        let direct = read_bands_f32(&ints, &bands, at, size).unwrap();
        assert_eq!(direct, read_bands_f32(&floats, &bands, at, size).unwrap());
        for (i, v) in direct.iter().enumerate() {
            let (k, r, c) = (i / (size.0 * size.1), i / size.0 % size.1, i % size.0);
            assert_eq!(*v, f32::from(value(bands[k] - 1, at.0 + c, at.1 + r)));
        }
        // Placed at (rows 5, columns 40) of a larger cube: zeros around it.
        let region = CubeRegion {
            dims: (3, size.1 + 9, size.0 + 50),
            at: (5, 40),
        };
        let padded = read_bands_f32_padded(&ints, &bands, at, size, region).unwrap();
        assert_eq!(
            padded,
            read_bands_f32_padded(&floats, &bands, at, size, region).unwrap()
        );
        let (_, ch, cw) = region.dims;
        for (i, v) in padded.iter().enumerate() {
            let (k, r, c) = (i / (ch * cw), i / cw % ch, i % cw);
            let inside = (5..5 + size.1).contains(&r) && (40..40 + size.0).contains(&c);
            let want = if inside {
                direct[k * size.0 * size.1 + (r - 5) * size.0 + c - 40]
            } else {
                0.0
            };
            assert_eq!(*v, want, "band {k}, row {r}, column {c}");
        }
        // A region that does not fit is refused.
        let too_small = CubeRegion {
            dims: (3, size.1, size.0),
            at: (1, 0),
        };
        assert!(read_bands_f32_padded(&ints, &bands, at, size, too_small).is_err());
        // Bytes and signed 16-bit values (negative ones too) travel the same way.
        let bytes = tiff::<u8>(dir.path(), "u8.tif", (w, h), |b, x, y| {
            (value(b, x, y) % 251) as u8
        });
        let byte_floats = tiff::<f32>(dir.path(), "u8f.tif", (w, h), |b, x, y| {
            f32::from((value(b, x, y) % 251) as u8)
        });
        let signed = tiff::<i16>(dir.path(), "i16.tif", (w, h), |b, x, y| {
            value(b, x, y) as i16
        });
        let signed_floats = tiff::<f32>(dir.path(), "i16f.tif", (w, h), |b, x, y| {
            f32::from(value(b, x, y) as i16)
        });
        assert_eq!(common_type(&bytes, &bands), Some(GdalDataType::UInt8));
        assert_eq!(common_type(&signed, &bands), Some(GdalDataType::Int16));
        for (native, float) in [(&bytes, &byte_floats), (&signed, &signed_floats)] {
            assert_eq!(
                read_bands_f32_padded(native, &bands, at, size, region).unwrap(),
                read_bands_f32_padded(float, &bands, at, size, region).unwrap()
            );
        }
    }
}
