//! One run at a time per manifest: an exclusive OS lock on a file beside it.
//!
//! Two runs appending to one manifest lose each other's lines, so a run locks
//! `.{manifest}.lock` (the manifest itself is replaced by renames, which a lock would not
//! follow) for as long as it writes. The lock is the operating system's (`flock` on Unix), so
//! it goes with the process: a killed run leaves the file but no lock. The holder writes its
//! PID into the file, for the second run's message, and removes the file when it is done
//! (so a finished directory holds only the run's files). Shards have manifests of their own,
//! so they lock different files and run side by side in one directory.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A held lock on a manifest; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct ManifestLock {
    file: File,
    path: PathBuf,
    /// The directory, when this lock created it: removed again if the run left it empty.
    created: Option<PathBuf>,
}

/// Attempts to lock a lock file that other runs keep removing (each attempt follows one).
const MAX_RETRIES: usize = 1000;

impl Drop for ManifestLock {
    fn drop(&mut self) {
        // Removed while still locked: a run waiting on this file then finds it gone and
        // retries on a new one.
        if still_at(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        // A run that failed before writing anything leaves no directory behind.
        if let Some(dir) = &self.created {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl ManifestLock {
    /// Locks `manifest` (creating its directory if needed). When another process holds it:
    /// with `wait`, blocks until it is released; without, fails at once, naming the holder.
    pub fn acquire(manifest: &Path, wait: bool) -> Result<ManifestLock> {
        let path = lock_path(manifest);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let created = dir.filter(|d| !d.exists()).map(Path::to_path_buf);
        // A holder removes the file as it lets go, so a lock won on a file no longer at `path`
        // guards nothing: try again on the new one. Each retry means another run finished.
        // Likewise a run that made the directory removes it when it leaves it empty.
        for _ in 0..MAX_RETRIES {
            if let Some(dir) = dir {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            let mut file = match open(&path) {
                Ok(file) => file,
                Err(Error::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) if wait => {
                    file.lock().map_err(|e| Error::io(&path, e))?;
                }
                Err(TryLockError::WouldBlock) => return Err(busy(manifest, &mut file)),
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
            if still_at(&file, &path) {
                write_pid(&mut file).map_err(|e| Error::io(&path, e))?;
                return Ok(ManifestLock {
                    file,
                    path,
                    created,
                });
            }
        }
        Err(Error::Invalid(format!(
            "could not lock {}: it was replaced {MAX_RETRIES} times in a row",
            path.display()
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// The error for a lock another process holds, naming it by the PID it wrote.
fn busy(manifest: &Path, file: &mut File) -> Error {
    let holder = match holder_pid(file) {
        Some(pid) => format!("another gradcam run (PID {pid})"),
        None => "another gradcam run".to_string(),
    };
    Error::Invalid(format!(
        "{holder} is writing {}; wait for it to finish, give this run another --out, or pass \
         --wait-lock to wait",
        manifest.display()
    ))
}

/// Whether `path` still names the open `file` (not removed or replaced since it was opened).
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Elsewhere an open file cannot be removed, so it is always still there.
#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// `.{name}.lock` beside `manifest`.
pub fn lock_path(manifest: &Path) -> PathBuf {
    let name = manifest
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    manifest.with_file_name(format!(".{name}.lock"))
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_holder_and_succeeds_once_released() {
        let dir = std::env::temp_dir().join(format!("gradcam-lock-{}", std::process::id()));
        let manifest = dir.join("sub/manifest.jsonl");
        let first = ManifestLock::acquire(&manifest, false).unwrap();
        assert_eq!(first.path(), dir.join("sub/.manifest.jsonl.lock"));
        // A second open file description conflicts with the first even in one process.
        let e = ManifestLock::acquire(&manifest, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("(PID {})", std::process::id())) && e.contains("--wait-lock"),
            "{e}"
        );
        // Another shard's manifest is another lock.
        let shard = dir.join("sub/manifest.shard-1-of-2.jsonl");
        drop(ManifestLock::acquire(&shard, false).unwrap());
        let lock_file = first.path().to_path_buf();
        drop(first);
        assert!(!lock_file.exists(), "removed when released");
        assert!(
            !dir.join("sub").exists(),
            "the directory it made, left empty, too"
        );
        ManifestLock::acquire(&manifest, false).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn waiting_runs_take_turns_though_each_removes_the_file() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = std::env::temp_dir().join(format!("gradcam-turns-{}", std::process::id()));
        let manifest = dir.join("manifest.jsonl");
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10 {
                        let _lock = ManifestLock::acquire(&manifest, true).unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two holders at once");
        assert!(!lock_path(&manifest).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
