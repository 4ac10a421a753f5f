//! The few GDAL calls the `gdal` crate does not wrap. All of landwatch's `unsafe` lives here.

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

/// Where [`read_bands_f32_into`] puts a window: a band-sequential `f32` cube of `dims` (bands,
/// rows, columns), the window's first pixel at `at` (row, column) of each band.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CubeRegion {
    pub dims: (usize, usize, usize),
    pub at: (usize, usize),
}

/// Reads a window of several bands (1-based) as `f32` into a region of a band-sequential cube, in
/// one dataset-level request (`GDALDatasetRasterIOEx`): a pixel-interleaved file's blocks are
/// then copied out for all bands at once, straight to where the caller wants them. Values of the
/// cube outside the region are left as they are; after a failed read the region's are undefined.
pub(crate) fn read_bands_f32_into(
    ds: &Dataset,
    bands: &[usize],
    (x, y): (usize, usize),
    (width, height): (usize, usize),
    out: &mut [f32],
    region: CubeRegion,
) -> Result<(), String> {
    let (nb, h, w) = region.dims;
    let (oy, ox) = region.at;
    if nb != bands.len() || out.len() != nb * h * w || oy + height > h || ox + width > w {
        return Err(format!(
            "a {width} × {height} px read of {} bands does not fit at {:?} of a {:?} cube of {} values",
            bands.len(),
            region.at,
            region.dims,
            out.len()
        ));
    }
    if out.is_empty() {
        return Ok(());
    }
    // SAFETY: the region lies inside `out` (checked above): GDAL writes `bands.len()` bands of
    // `height` rows of `width` values, each at `oy·w + ox` plus row · `w` plus band · `h·w` values.
    unsafe {
        raster_io_f32(
            ds,
            bands,
            (x, y),
            (width, height),
            out.as_mut_ptr().add(oy * w + ox),
            (w, h * w),
        )
    }
}

/// Reads a window of several bands (1-based) as `f32`, band after band (a `bands × height ×
/// width` array), as [`read_bands_f32_into`] does. The buffer is not zeroed first: GDAL writes
/// every value of a successful read, and a failed one returns the error and drops the buffer.
pub(crate) fn read_bands_f32(
    ds: &Dataset,
    bands: &[usize],
    (x, y): (usize, usize),
    (width, height): (usize, usize),
) -> Result<Vec<f32>, String> {
    let plane = width * height;
    let len = plane * bands.len();
    let mut buf: Vec<f32> = Vec::with_capacity(len);
    // SAFETY: `buf` has room for `len` values, every one of which GDAL writes (band-sequential,
    // rows of `width`) when it returns without error; only then is the length set.
    unsafe {
        raster_io_f32(
            ds,
            bands,
            (x, y),
            (width, height),
            buf.as_mut_ptr(),
            (width, plane),
        )?;
        buf.set_len(len);
    }
    Ok(buf)
}

/// `GDALDatasetRasterIOEx` reading a window of `bands` as `f32` to `dst`, rows `spacing.0` values
/// apart and bands `spacing.1` apart.
///
/// # Safety
/// `dst` must be valid for writes of every value GDAL writes: `bands.len()` bands of `height`
/// rows of `width` values, value `(k, r, c)` at `dst + k·spacing.1 + r·spacing.0 + c`.
unsafe fn raster_io_f32(
    ds: &Dataset,
    bands: &[usize],
    (x, y): (usize, usize),
    (width, height): (usize, usize),
    dst: *mut f32,
    (line, band): (usize, usize),
) -> Result<(), String> {
    let mut band_map = bands
        .iter()
        .map(|&b| c_int(b, "band"))
        .collect::<Result<Vec<_>, _>>()?;
    let [cx, cy, cw, ch] = c_window((x, y), (width, height))?;
    let n = c_int(bands.len(), "band count")?;
    let f = std::mem::size_of::<f32>() as gdal_sys::GSpacing;
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
            gdal_sys::GDALDataType::GDT_Float32,
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
