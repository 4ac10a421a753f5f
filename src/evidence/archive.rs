//! Deterministic zip archives of packets: entries sorted by name under the packet directory's
//! name, DOS epoch timestamps, fixed permissions, deflate.

use super::error::{io_err, EvidenceError};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// The archive's path for a packet directory: `<dir>.zip` beside it.
pub fn zip_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".zip");
    dir.with_file_name(name)
}

/// The regular files directly inside a directory, by name.
pub fn read_dir_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, EvidenceError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type().map_err(io_err(&path))?;
        if ft.is_dir() {
            // A subdirectory is never part of a packet; list it so `verify` reports it as added.
            out.insert(format!("{name}/"), Vec::new());
        } else {
            out.insert(name, std::fs::read(&path).map_err(io_err(&path))?);
        }
    }
    Ok(out)
}

/// Writes `<dir>.zip` (atomically: a hidden temporary file, fsync, rename); returns its path.
pub fn write_zip(dir: &Path) -> Result<PathBuf, EvidenceError> {
    let path = zip_path(dir);
    let top = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let zerr = |e: &dyn std::fmt::Display| EvidenceError::Zip {
        path: path.clone(),
        detail: e.to_string(),
    };
    let files = read_dir_files(dir)?;
    let mut zw = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    for (name, bytes) in &files {
        if name.ends_with('/') {
            continue;
        }
        zw.start_file(format!("{top}/{name}"), opts)
            .map_err(|e| zerr(&e))?;
        zw.write_all(bytes).map_err(|e| zerr(&e))?;
    }
    let bytes = zw.finish().map_err(|e| zerr(&e))?.into_inner();
    crate::export::write_atomic(&path, &bytes).map_err(|e| EvidenceError::Zip {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    Ok(path)
}

/// Reads a packet zip: the top directory's name and its files (names relative to it).
/// Entries outside one top directory are kept under their full names, so `verify` reports them.
pub fn read_zip(path: &Path) -> Result<(String, BTreeMap<String, Vec<u8>>), EvidenceError> {
    let zerr = |e: &dyn std::fmt::Display| EvidenceError::Zip {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut za = ZipArchive::new(f).map_err(|e| zerr(&e))?;
    let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..za.len() {
        let mut entry = za.by_index(i).map_err(|e| zerr(&e))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| zerr(&e))?;
        raw.push((name, bytes));
    }
    let top = raw
        .first()
        .and_then(|(n, _)| n.split_once('/').map(|(t, _)| t.to_string()))
        .unwrap_or_default();
    let prefix = format!("{top}/");
    let mut files = BTreeMap::new();
    for (name, bytes) in raw {
        let rel = match name.strip_prefix(&prefix) {
            Some(r) if !top.is_empty() => r.to_string(),
            _ => name,
        };
        files.insert(rel, bytes);
    }
    Ok((top, files))
}
