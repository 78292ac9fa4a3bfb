//! File locks: one `flock` per output path (`OutputLock`) and the store-wide GC lock.
//!
//! An output's lock file is `var/kiln/locks/<base name>.lock`, outside the store directory so
//! that it never shows up where the store is mounted into a sandbox and never collides with a
//! store object whose name ends in `.lock`. `flock` locks belong to the open file, so a lock held
//! by a process that died is free again, and two threads of one process exclude each other.
//!
//! A released output lock deletes its lock file while still holding it. Another process may have
//! opened that file just before and be waiting on it; when it gets the lock it finds the file
//! unlinked (link count 0) and starts over with a fresh file, so two holders can never each lock
//! a different file under the same name (the race Nix's `PathLocks` handles the same way).
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::{LocalStoreError, Result};
use super::LocalStore;
use kiln_store::store_path::StorePath;

/// Whether a lock is taken for exclusive or shared use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

/// Opens `file` (creating it) and locks it; `None` if `wait` is false and another open file
/// holds a conflicting lock. Retries when the file was unlinked while we waited for it.
pub(crate) fn lock_file(file: &Path, mode: LockMode, wait: bool) -> Result<Option<Flock<File>>> {
    let arg = match (mode, wait) {
        (LockMode::Shared, true) => FlockArg::LockShared,
        (LockMode::Shared, false) => FlockArg::LockSharedNonblock,
        (LockMode::Exclusive, true) => FlockArg::LockExclusive,
        (LockMode::Exclusive, false) => FlockArg::LockExclusiveNonblock,
    };
    loop {
        let mut handle = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)
            .map_err(|e| LocalStoreError::io("cannot open lock file", file, e))?;
        let locked = loop {
            match Flock::lock(handle, arg) {
                Ok(locked) => break locked,
                Err((returned, Errno::EINTR)) => handle = returned,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, errno)) => {
                    return Err(LocalStoreError::io(
                        "cannot lock",
                        file,
                        io::Error::from(errno),
                    ))
                }
            }
        };
        let metadata = locked
            .metadata()
            .map_err(|e| LocalStoreError::io("cannot stat lock file", file, e))?;
        if metadata.nlink() > 0 {
            return Ok(Some(locked));
        }
        // The previous holder deleted the file after we opened it: lock a fresh one.
    }
}

/// An exclusive lock on one output path, released (and its lock file deleted) on drop.
///
/// Whoever builds or writes a store path holds its lock from before the first byte is written
/// until the path is registered (or its partial contents deleted). After acquiring, re-check
/// validity: another process may have built the path meanwhile ([`LocalStore::claim_outputs`]
/// does all of this).
#[derive(Debug)]
pub struct OutputLock {
    path: StorePath,
    lock_file: PathBuf,
    held: Option<Flock<File>>,
}

impl OutputLock {
    /// Locks `path`, waiting as long as another process or thread holds it. `on_wait` is called
    /// once, with the path, before waiting (to print "waiting for lock on …").
    pub fn acquire(
        store: &LocalStore,
        path: &StorePath,
        on_wait: impl FnOnce(&StorePath),
    ) -> Result<Self> {
        if let Some(lock) = Self::try_acquire(store, path)? {
            return Ok(lock);
        }
        on_wait(path);
        let lock_file = store.lock_file_of(path);
        let held = lock_file_blocking(&lock_file)?;
        Ok(OutputLock {
            path: path.clone(),
            lock_file,
            held: Some(held),
        })
    }

    /// Locks `path` if nobody holds it; `None` otherwise.
    pub fn try_acquire(store: &LocalStore, path: &StorePath) -> Result<Option<Self>> {
        let lock_file = store.lock_file_of(path);
        Ok(lock_file_with(&lock_file, false)?.map(|held| OutputLock {
            path: path.clone(),
            lock_file,
            held: Some(held),
        }))
    }

    /// The store path this lock protects.
    pub fn path(&self) -> &StorePath {
        &self.path
    }
}

fn lock_file_with(file: &Path, wait: bool) -> Result<Option<Flock<File>>> {
    lock_file(file, LockMode::Exclusive, wait)
}

fn lock_file_blocking(lock_file: &Path) -> Result<Flock<File>> {
    // A blocking lock only returns `None` on EWOULDBLOCK, which a blocking flock never reports.
    lock_file_with(lock_file, true)?.ok_or_else(|| {
        LocalStoreError::io(
            "cannot lock",
            lock_file,
            io::Error::from(Errno::EWOULDBLOCK),
        )
    })
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock (see the module doc), then unlock. A failure to
        // unlink only leaves a stale lock file behind, which the next holder or GC removes.
        let _ = std::fs::remove_file(&self.lock_file);
        drop(self.held.take());
    }
}

/// The store-wide GC lock (`var/kiln/gc.lock`): the collector holds it exclusively for a whole
/// run; adding a root (temporary or indirect) holds it shared, so a root is either seen by a
/// collection or added after it has finished.
pub(crate) struct GcLock {
    _held: Flock<File>,
}

impl GcLock {
    pub(crate) fn acquire(file: &Path, mode: LockMode) -> Result<Self> {
        let held = lock_file(file, mode, true)?.ok_or_else(|| {
            LocalStoreError::io("cannot lock", file, io::Error::from(Errno::EWOULDBLOCK))
        })?;
        Ok(GcLock { _held: held })
    }
}
