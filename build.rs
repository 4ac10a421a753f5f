//! Records the git commit landwatch is built from, for evidence manifests, and a hash of the
//! source code that detection results depend on, for the detection cache.

use std::process::Command;

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
