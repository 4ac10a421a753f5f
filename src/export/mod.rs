//! Writing the files landwatch produces: GeoTIFF rasters, GeoPackage and GeoJSON vectors, CSV.
//!
//! Every writer writes to a temporary name beside the target and renames it into place, so a
//! crash never leaves a half-written file under the final name.

pub mod geojson;
pub mod raster;
pub mod vector;

use std::path::{Path, PathBuf};

/// A text cell of a CSV file that spreadsheet programs open: text beginning with `=`, `+`, `-`,
/// `@`, a tab or a carriage return is prefixed with `'`, so that a spreadsheet shows it as text
/// instead of running it as a formula (a parcel id `=HYPERLINK(…)` of a layer; OWASP's advice
/// against CSV injection). Only for text: numbers are written as they are.
pub fn csv_text(s: String) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s
    }
}

/// A file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// GDAL failed while writing.
    #[error(
        "{path}: writing failed: {}{}",
        shorten(detail),
        disk_full_hint(detail)
    )]
    Gdal {
        /// The file.
        path: PathBuf,
        /// GDAL's message.
        detail: String,
    },
    /// The operating system refused.
    #[error("{path}: {source}{}", disk_full_hint(&source.to_string()))]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data handed to the writer does not fit its description.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        detail: String,
    },
}

/// GDAL's message cut to a readable length (SQLite errors repeat whole schemas).
fn shorten(detail: &str) -> String {
    const MAX: usize = 300;
    match detail.char_indices().nth(MAX) {
        Some((at, _)) => format!("{} …", &detail[..at]),
        None => detail.to_string(),
    }
}

/// What to do when the message says the disk is full (GDAL, SQLite and the OS word it apart).
fn disk_full_hint(detail: &str) -> &'static str {
    let d = detail.to_ascii_lowercase();
    if d.contains("no space left") || d.contains("disk is full") || d.contains("disk full") {
        "; the disk is full: free space there (df -h) and run again — files written by earlier \
         runs were left as they were"
    } else {
        ""
    }
}

pub(crate) fn gdal_err(path: &Path) -> impl Fn(gdal::errors::GdalError) -> ExportError + '_ {
    move |e| ExportError::Gdal {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The temporary name a file is written under before it is renamed into place: hidden, and
/// keeping the extension, which some GDAL drivers insist on (`.parcels.partial.gpkg`).
pub fn temp_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.extension() {
        Some(ext) => path.with_file_name(format!(".{stem}.partial.{}", ext.to_string_lossy())),
        None => path.with_file_name(format!(".{stem}.partial")),
    }
}

/// Moves a finished temporary file into place.
pub fn commit(tmp: &Path, path: &Path) -> Result<(), ExportError> {
    std::fs::rename(tmp, path).map_err(io_err(path))
}

/// Writes bytes atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    write_replacing(path, bytes, true)
}

/// Writes bytes under a temporary name and renames them into place, without waiting for the disk:
/// for files whose loss or truncation in a power cut is detected on reading and costs only time
/// (the detection cache, whose entries carry their own checksum). A reader never sees a partly
/// written file while the system runs.
pub fn write_replace_unsynced(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    write_replacing(path, bytes, false)
}

fn write_replacing(path: &Path, bytes: &[u8], sync: bool) -> Result<(), ExportError> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        if sync {
            f.sync_all().map_err(io_err(&tmp))?;
        }
        Ok(())
    })();
    if written.is_err() {
        // The file under its final name is untouched; no half-written one is left beside it.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    commit(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_that_a_spreadsheet_would_run_is_kept_text() {
        for (text, want) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("WJ-000019", "WJ-000019"),
            ("宗地,\"19\"", "宗地,\"19\""),
            ("", ""),
        ] {
            assert_eq!(csv_text(text.to_string()), want, "{text:?}");
        }
    }
}
