//! Scratch directories of running builds and evaluation-time fetches, kept under the store's
//! physical root (`ROOT/var/kiln/builds/<name>-<pid>-<serial>/`) rather than `$TMPDIR`, so that
//! what a killed kiln leaves behind is found again.
//!
//! Each directory has a sibling lock file (`<dir>.lock`) on which its owner holds an exclusive
//! `flock` for as long as the directory lives. The kernel drops the lock when the owner dies,
//! however it dies (SIGKILL included), so [`remove_stale`] — run when a scheduler starts — can
//! tell a directory in use from a leftover: it deletes every directory whose lock it can take.
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

use kiln_local_store::fs_tree::delete_tree;

/// The directory holding the scratch directories of a store rooted at `store_root`.
pub fn builds_dir(store_root: &Path) -> PathBuf {
    store_root.join("var/kiln/builds")
}

/// The lock file of a scratch directory.
fn lock_file_of(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// A scratch directory, locked while this value lives and removed (with its lock file) on drop.
pub struct ScratchDir {
    path: PathBuf,
    /// Held for the directory's lifetime; released by the kernel if the process dies.
    _lock: Flock<File>,
}

impl std::fmt::Debug for ScratchDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

impl ScratchDir {
    /// Creates a fresh, locked directory (mode 0700) under [`builds_dir`] named after `name`.
    pub fn create(store_root: &Path, name: &str) -> io::Result<ScratchDir> {
        let parent = builds_dir(store_root);
        fs::create_dir_all(&parent)?;
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{name}-{}-{serial}", std::process::id()));
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_file_of(&path))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        // A leftover of an earlier process with the same pid: ours now that we hold the lock.
        let _ = delete_tree(&path);
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ScratchDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = delete_tree(&self.path);
        // Removed while still locked, so nobody else can take the name's lock in between.
        let _ = fs::remove_file(lock_file_of(&self.path));
    }
}

/// Removes the scratch directories whose owner is gone (their lock can be taken) and returns
/// how many were removed. Directories of running builds, in this or any other process, stay.
pub fn remove_stale(store_root: &Path) -> io::Result<usize> {
    let parent = builds_dir(store_root);
    let entries = match fs::read_dir(&parent) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "lock") {
            // A lock file without its directory is handled with the directory's name below.
            let dir = path.with_extension("");
            if dir.exists() {
                continue;
            }
            if let Some(_lock) = try_lock(&path)? {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let lock_path = lock_file_of(&path);
        let lock = if lock_path.exists() {
            try_lock(&lock_path)?
        } else {
            // No lock file at all: not a live directory (owners make the lock first).
            try_lock_created(&lock_path)?
        };
        if let Some(_lock) = lock {
            let _ = delete_tree(&path);
            let _ = fs::remove_file(&lock_path);
            removed += 1;
        }
    }
    Ok(removed)
}

/// Takes the lock at `path` if nobody holds it.
fn try_lock(path: &Path) -> io::Result<Option<Flock<File>>> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        // Removed meanwhile by its owner or another cleaner.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(io::Error::from(errno)),
    }
}

/// Creates and takes the lock at `path`.
fn try_lock_created(path: &Path) -> io::Result<Option<Flock<File>>> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    try_lock(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_directory_stays_and_a_dropped_one_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let live = ScratchDir::create(root.path(), "live").unwrap();
        fs::write(live.path().join("file"), "x").unwrap();
        assert_eq!(remove_stale(root.path()).unwrap(), 0);
        assert!(live.path().join("file").exists());
        let path = live.path().to_owned();
        drop(live);
        assert!(!path.exists());
        assert!(!lock_file_of(&path).exists());
    }

    #[test]
    fn unlocked_leftovers_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let parent = builds_dir(root.path());
        // As a killed process leaves it: the directory and its (unlocked) lock file.
        let left = parent.join("left-1-0");
        fs::create_dir_all(left.join("build/sub")).unwrap();
        fs::write(lock_file_of(&left), "").unwrap();
        // A directory without a lock file, and a lock file without a directory.
        fs::create_dir_all(parent.join("bare-2-0")).unwrap();
        fs::write(parent.join("orphan-3-0.lock"), "").unwrap();
        let live = ScratchDir::create(root.path(), "live").unwrap();
        assert_eq!(remove_stale(root.path()).unwrap(), 2);
        let mut names: Vec<_> = fs::read_dir(&parent)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let live_name = live.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(names, [live_name.to_owned(), format!("{live_name}.lock")]);
    }
}
