//! Records the git commit landwatch is built from, for evidence manifests, and a hash of the
//! source code that detection results depend on, for the detection cache.

use std::process::Command;

/// Every function Debian bookworm's zlib 1.2.13 (`libz.so.1`) exports except `gzprintf` and
/// `gzvprintf` (variadic, which zlib-rs offers on nightly Rust only, and which no library landwatch
/// loads imports): the binary's zlib-rs provides each, so that a stream or gzFile is never
/// begun by one zlib and continued by the other. zlib-rs inflates ~1.5× as fast as zlib 1.2.13:
/// the bottom row of a GeoTIFF's tiles, which GDAL asks libtiff for in part and which libtiff
/// then decodes through zlib rather than libdeflate.
const ZLIB_FUNCTIONS: &[&str] = &[
    "adler32",
    "adler32_combine",
    "adler32_combine64",
    "adler32_z",
    "compress",
    "compress2",
    "compressBound",
    "crc32",
    "crc32_combine",
    "crc32_combine64",
    "crc32_combine_gen",
    "crc32_combine_gen64",
    "crc32_combine_op",
    "crc32_z",
    "deflate",
    "deflateBound",
    "deflateCopy",
    "deflateEnd",
    "deflateGetDictionary",
    "deflateInit2_",
    "deflateInit_",
    "deflateParams",
    "deflatePending",
    "deflatePrime",
    "deflateReset",
    "deflateResetKeep",
    "deflateSetDictionary",
    "deflateSetHeader",
    "deflateTune",
    "get_crc_table",
    "gzbuffer",
    "gzclearerr",
    "gzclose",
    "gzclose_r",
    "gzclose_w",
    "gzdirect",
    "gzdopen",
    "gzeof",
    "gzerror",
    "gzflush",
    "gzfread",
    "gzfwrite",
    "gzgetc",
    "gzgetc_",
    "gzgets",
    "gzoffset",
    "gzoffset64",
    "gzopen",
    "gzopen64",
    "gzputc",
    "gzputs",
    "gzread",
    "gzrewind",
    "gzseek",
    "gzseek64",
    "gzsetparams",
    "gztell",
    "gztell64",
    "gzungetc",
    "gzwrite",
    "inflate",
    "inflateBack",
    "inflateBackEnd",
    "inflateBackInit_",
    "inflateCodesUsed",
    "inflateCopy",
    "inflateEnd",
    "inflateGetDictionary",
    "inflateGetHeader",
    "inflateInit2_",
    "inflateInit_",
    "inflateMark",
    "inflatePrime",
    "inflateReset",
    "inflateReset2",
    "inflateResetKeep",
    "inflateSetDictionary",
    "inflateSync",
    "inflateSyncPoint",
    "inflateUndermine",
    "inflateValidate",
    "uncompress",
    "uncompress2",
    "zError",
    "zlibCompileFlags",
    "zlibVersion",
];

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() == 40)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LANDWATCH_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves (a branch's ref file changes on commit).
    for p in [".git/HEAD", ".git/index"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    // zlib-rs (libz-rs-sys) serves every zlib call in the process (see ZLIB_FUNCTIONS): each
    // function is pulled into the executable (`-u`) and put in its dynamic symbol table, where
    // the dynamic linker looks first; the bin test checks the list through the same variable.
    for f in ZLIB_FUNCTIONS {
        println!("cargo:rustc-link-arg-bins=-Wl,-u,{f}");
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={f}");
    }
    println!(
        "cargo:rustc-env=LANDWATCH_ZLIB_FUNCTIONS={}",
        ZLIB_FUNCTIONS.join(" ")
    );
    println!(
        "cargo:rustc-env=LANDWATCH_DETECT_CODE={}",
        detect_code_hash()
    );
}

/// The code whose change can change what detection returns for a cell: the detectors, reading
/// imagery, the grid, the pixel types, and the locked versions of every dependency. A cached
/// detection made by other code is never used (see `pipeline::cache`).
const DETECT_CODE: [&str; 6] = [
    "src/detect",
    "src/ingest",
    "src/grid.rs",
    "src/image.rs",
    "src/bands.rs",
    "Cargo.lock",
];

fn detect_code_hash() -> String {
    use std::hash::{Hash, Hasher};
    let mut files = Vec::new();
    for p in DETECT_CODE {
        println!("cargo:rerun-if-changed={p}");
        collect(std::path::Path::new(p), &mut files);
    }
    files.sort();
    // Not cryptographic: it only has to change when the code does.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        f.hash(&mut h);
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

fn collect(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            collect(&e.path(), out);
        }
    } else if p.is_file() {
        out.push(p.to_path_buf());
    }
}
