//! One run at a time: the run lock `<store>.lock`.
//!
//! Mutual exclusion is an exclusive `flock(2)` on the lock file, which the kernel releases when the
//! holding process ends in any way, SIGKILL included; so a stale lock cannot block a run. The file's
//! content only *describes* the holder (JSON: pid, host, started_at, holder) for the message a
//! refused run prints. A lock file left by a killed process is taken over with a warning.
//!
//! The holder deletes the file while still holding the lock, then releases it. A process that had
//! opened the old file and gets its lock afterwards sees that the path no longer names that file
//! and tries again, so two processes never both believe they hold the lock.
//!
//! `flock` locks are local to a machine: keep the store on a local file system.

use super::error::StoreError;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Who holds the lock: the content of the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When the lock was taken (RFC 3339 UTC).
    pub started_at: String,
    /// What the holder does, e.g. `landwatch scan`.
    pub holder: String,
}

/// The held run lock; released (and the lock file removed) on drop.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    info: LockInfo,
    /// The description found in a lock file left by a process that is gone, if any.
    taken_over: Option<LockInfo>,
}

impl RunLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this process wrote into the lock file.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// The holder described by a lock file a killed process left behind, when this lock took it over.
    pub fn taken_over(&self) -> Option<&LockInfo> {
        self.taken_over.as_ref()
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock (see the module documentation); the lock
        // itself goes with the file descriptor.
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The lock file of a store: `<store>.lock`.
pub fn lock_path(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the run lock of the store at `store_path`, or says who holds it.
pub fn acquire(store_path: &Path, holder: &str) -> Result<RunLock, StoreError> {
    let path = lock_path(store_path);
    let io = |source| StoreError::LockIo {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // A few attempts: each retry means the file was replaced between our open and our lock.
    for _ in 0..100 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if !try_lock_exclusive(&file).map_err(io)? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            // The holder may not have written its description yet (it writes right after locking).
            let info = serde_json::from_str::<LockInfo>(&text).unwrap_or_else(|_| LockInfo {
                pid: 0,
                host: "an unknown host".into(),
                started_at: String::new(),
                holder: String::new(),
            });
            return Err(StoreError::Locked {
                path: path.clone(),
                pid: info.pid,
                host: info.host,
                since: if info.started_at.is_empty() {
                    "an unknown time".into()
                } else {
                    info.started_at
                },
                holder: if info.holder.is_empty() {
                    "unknown holder".into()
                } else {
                    info.holder
                },
            });
        }
        if !same_file(&file, &path) {
            continue;
        }
        let mut old = String::new();
        file.read_to_string(&mut old).map_err(io)?;
        let taken_over = if old.trim().is_empty() {
            None
        } else {
            let prev = serde_json::from_str::<LockInfo>(&old).ok();
            match &prev {
                Some(p) => tracing::warn!(
                    lock = %path.display(),
                    "taking over the run lock left by pid {} on {} since {} ({}): that process is gone{}",
                    p.pid,
                    p.host,
                    p.started_at,
                    p.holder,
                    if pid_alive(p.pid) && p.host == host_name() {
                        " (a process with that pid runs now, but it does not hold the lock)"
                    } else {
                        ""
                    }
                ),
                None => tracing::warn!(
                    lock = %path.display(),
                    "taking over a run lock file with unreadable content: its holder is gone"
                ),
            }
            prev
        };
        let info = LockInfo {
            pid: std::process::id(),
            host: host_name(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            holder: holder.to_string(),
        };
        let text = serde_json::to_string(&info).unwrap_or_default();
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        return Ok(RunLock {
            file,
            path,
            info,
            taken_over,
        });
    }
    Err(io(std::io::Error::other(
        "the lock file kept being replaced while taking the lock",
    )))
}

/// Reads who holds the lock of a store, if a lock file exists (for `landwatch status`).
pub fn current_holder(store_path: &Path) -> Option<(LockInfo, bool)> {
    let path = lock_path(store_path);
    let file = File::open(&path).ok()?;
    let text = std::fs::read_to_string(&path).ok()?;
    let info = serde_json::from_str::<LockInfo>(&text).ok()?;
    // Held when we cannot lock it ourselves; a probe lock is released at once with the file.
    let held = matches!(try_lock_shared(&file), Ok(false));
    Some((info, held))
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

fn try_lock_shared(file: &File) -> std::io::Result<bool> {
    flock(file, libc::LOCK_SH | libc::LOCK_NB)
}

/// `flock(2)`; Ok(false) when another process holds a conflicting lock.
fn flock(file: &File, op: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: the descriptor is owned by `file`, which outlives the call; flock does not
        // touch memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// This machine's host name (from /proc; "localhost" when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether a process with this pid exists on this machine.
pub fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_with_pid_host_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("landwatch.db");
        let lock = acquire(&store, "landwatch scan (test)").unwrap();
        assert!(lock_path(&store).exists());
        // flock locks belong to open file descriptions: a second open in this process conflicts
        // like another process would.
        let e = acquire(&store, "second").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&host_name()), "{msg}");
        assert!(msg.contains(&lock.info().started_at), "{msg}");
        assert!(msg.contains("landwatch scan (test)"), "{msg}");
        assert!(matches!(e, StoreError::Locked { .. }));
        let (info, held) = current_holder(&store).unwrap();
        assert!(held);
        assert_eq!(&info, lock.info());
    }

    #[test]
    fn released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("landwatch.db");
        drop(acquire(&store, "first").unwrap());
        assert!(!lock_path(&store).exists());
        let again = acquire(&store, "second").unwrap();
        assert!(again.taken_over().is_none());
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("landwatch.db");
        let stale = LockInfo {
            pid: 4_000_000, // above pid_max: never a live process
            host: host_name(),
            started_at: "2026-11-28T02:00:00Z".into(),
            holder: "landwatch scan".into(),
        };
        assert!(!pid_alive(stale.pid));
        std::fs::write(lock_path(&store), serde_json::to_string(&stale).unwrap()).unwrap();
        let lock = acquire(&store, "after the crash").unwrap();
        assert_eq!(lock.taken_over(), Some(&stale));
        let text = std::fs::read_to_string(lock_path(&store)).unwrap();
        let now: LockInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(now.pid, std::process::id());
        assert_eq!(now.holder, "after the crash");
        // Garbage in a lock file nobody holds is taken over too.
        drop(lock);
        std::fs::write(lock_path(&store), "not json").unwrap();
        assert!(acquire(&store, "x").is_ok());
    }

    #[test]
    fn the_lock_file_sits_beside_the_store() {
        assert_eq!(
            lock_path(Path::new("/srv/lw/landwatch.db")),
            PathBuf::from("/srv/lw/landwatch.db.lock")
        );
        assert!(pid_alive(std::process::id()));
    }
}
