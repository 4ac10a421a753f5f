//! Helpers shared by the integration tests: run the real binary, generate scenes once.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The landwatch binary built for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_landwatch"))
}

/// Runs landwatch with arguments; returns the output (never panics on a non-zero exit).
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(bin())
        .args(args)
        .env("LANDWATCH_LOG", "warn")
        .output()
        .expect("the landwatch binary runs")
}

/// `landwatch eval --json --truth truth --findings findings`, which must succeed: its report.
pub fn eval_json(truth: &Path, findings: &Path) -> serde_json::Value {
    let o = run([
        "eval",
        "--json",
        "--truth",
        truth.to_str().unwrap(),
        "--findings",
        findings.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// `landwatch scan --config cfg --out out` with `extra` arguments after them.
pub fn scan_config(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "scan",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(args)
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch directory under `target/` that survives the test (for inspection after failures).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Copies the files of `from` (not its subdirectories' contents) into `to`, made if need be.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A synthetic scene generated once per test binary: (size, seed) → directory.
pub fn scene(size: usize, seed: u64) -> PathBuf {
    type Scenes = std::sync::Mutex<Vec<((usize, u64), PathBuf)>>;
    static SCENES: OnceLock<Scenes> = OnceLock::new();
    let lock = SCENES.get_or_init(Default::default);
    let mut scenes = lock.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = scenes.iter().find(|(k, _)| *k == (size, seed)) {
        return p.clone();
    }
    remove_stale_scenes(size, seed);
    let dir = scratch(&format!("scene-{size}-{seed}-{}", std::process::id()));
    let o = run([
        "synth",
        "--out",
        dir.to_str().unwrap(),
        "--size",
        &size.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    scenes.push(((size, seed), dir.clone()));
    dir
}

/// Removes scenes left by earlier test processes that are no longer running (each is ~200 MB).
fn remove_stale_scenes(size: usize, seed: u64) {
    let prefix = format!("scene-{size}-{seed}-");
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Every file under a directory, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Runs `landwatch detect` on these dates, expecting it to refuse them (exit 1) with a message
/// containing `says`, and no output written.
pub fn detect_refuses(before: &Path, after: &Path, out: &Path, says: &str) {
    let o = run([
        "detect",
        "--before",
        before.to_str().unwrap(),
        "--after",
        after.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains(says), "{says}: {}", stderr(&o));
    assert!(!out.join("change_mask.tif").exists());
}
