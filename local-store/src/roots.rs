//! GC roots: permanent ones (symlinks under `var/gcroots/`), indirect ones (symlinks under
//! `var/gcroots/auto/` pointing at a `result` link elsewhere, which points into the store) and
//! temporary ones (paths a running kiln process is using, listed in its file under
//! `var/kiln/temproots/`).
//!
//! A temporary-roots file is named `<pid>-<n>` and locked exclusively by its owner for as long
//! as the owning `LocalStore` lives; the collector reads the files whose lock it cannot take and
//! deletes the others (their owner died). Roots are added under a shared GC lock, so a root is
//! either written before a collection starts (and seen by it) or after it ends; a caller that
//! adds a temporary root for a path must check the path's validity afterwards, as it may have
//! been collected just before.
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::Flock;
use sha2::{Digest, Sha256};

use super::error::{LocalStoreError, Result};
use super::lock::{lock_file, GcLock, LockMode};
use super::LocalStore;
use kiln_store::store_path::StorePath;

/// One GC root: a symlink and the store path it keeps alive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GcRoot {
    /// The link that makes this a root: a symlink under `var/gcroots/`, or for an indirect
    /// root the `result` link it points to.
    pub link: PathBuf,
    /// The store path reached.
    pub store_path: StorePath,
}

/// This process's temporary-roots file, locked while it is open.
pub(crate) struct TempRootsFile {
    file: Flock<File>,
    path: PathBuf,
    written: BTreeSet<StorePath>,
}

/// Distinguishes the temporary-roots files of several `LocalStore`s in one process.
static TEMP_ROOTS_SERIAL: AtomicU64 = AtomicU64::new(0);

impl TempRootsFile {
    fn create(dir: &Path) -> Result<Self> {
        let serial = TEMP_ROOTS_SERIAL.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{serial}", std::process::id()));
        // A file of that name can only be left by a dead process with our pid: start afresh.
        let _ = fs::remove_file(&path);
        let file = lock_file(&path, LockMode::Exclusive, true)?.ok_or_else(|| {
            LocalStoreError::io(
                "cannot lock",
                &path,
                io::Error::from(io::ErrorKind::WouldBlock),
            )
        })?;
        Ok(TempRootsFile {
            file,
            path,
            written: BTreeSet::new(),
        })
    }

    /// Appends `printed`, the full text of `store_path`, as one line.
    fn add(&mut self, store_path: &StorePath, printed: &str) -> Result<()> {
        if self.written.contains(store_path) {
            return Ok(());
        }
        let line = format!("{printed}\n");
        // The file is only read while we cannot write (GC lock), so a plain append is atomic
        // enough; `File` is unbuffered, so `write_all` reaches the file at once.
        (&*self.file)
            .write_all(line.as_bytes())
            .map_err(|e| LocalStoreError::io("cannot write temporary root to", &self.path, e))?;
        self.written.insert(store_path.clone());
        Ok(())
    }
}

impl Drop for TempRootsFile {
    fn drop(&mut self) {
        // Unlinked while still locked, so a collector never reads a file being abandoned as
        // someone else's; a failure only leaves a file the next collection removes.
        let _ = fs::remove_file(&self.path);
    }
}

impl LocalStore {
    /// Protects `path` from garbage collection for as long as this `LocalStore` lives. Check
    /// the path's validity after adding the root: a collection that finished just before may
    /// have deleted it.
    pub fn add_temp_root(&self, path: &StorePath) -> Result<()> {
        let _gc_lock = GcLock::acquire(&self.gc_lock_file(), LockMode::Shared)?;
        let mut temp_roots = self
            .temp_roots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if temp_roots.is_none() {
            *temp_roots = Some(TempRootsFile::create(&self.temp_roots_dir())?);
        }
        match temp_roots.as_mut() {
            Some(file) => file.add(path, &self.store_dir.print(path)),
            // Set just above.
            None => Ok(()),
        }
    }

    /// Registers `link` (typically a `result` symlink into the store, which need not exist
    /// yet) as an indirect GC root: whatever store path it points to stays alive until the link
    /// is removed. Returns the root symlink created under `var/gcroots/auto/`.
    pub fn add_indirect_root(&self, link: &Path) -> Result<PathBuf> {
        let link = std::path::absolute(link)
            .map_err(|e| LocalStoreError::io("cannot make absolute", link, e))?;
        let digest = Sha256::digest(link.as_os_str().as_encoded_bytes());
        let name = data_encoding::HEXLOWER.encode(&digest[..16]);
        let auto_dir = self.gcroots_dir().join("auto");
        let root = auto_dir.join(&name);
        let temporary = auto_dir.join(format!(".{name}.{}", std::process::id()));
        let _gc_lock = GcLock::acquire(&self.gc_lock_file(), LockMode::Shared)?;
        let _ = fs::remove_file(&temporary);
        std::os::unix::fs::symlink(&link, &temporary)
            .map_err(|e| LocalStoreError::io("cannot create GC root", &temporary, e))?;
        fs::rename(&temporary, &root)
            .map_err(|e| LocalStoreError::io("cannot create GC root", &root, e))?;
        Ok(root)
    }

    /// Every GC root under `var/gcroots/`, removing indirect roots whose link is gone.
    pub fn find_roots(&self) -> Result<Vec<GcRoot>> {
        let mut roots = Vec::new();
        let gcroots = self.gcroots_dir();
        self.scan_roots(&gcroots, &gcroots.join("auto"), &mut roots)?;
        roots.sort();
        Ok(roots)
    }

    fn scan_roots(&self, dir: &Path, auto_dir: &Path, roots: &mut Vec<GcRoot>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LocalStoreError::io("cannot read GC roots in", dir, e)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| LocalStoreError::io("cannot read GC roots in", dir, e))?;
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|e| LocalStoreError::io("cannot stat GC root", &path, e))?;
            if file_type.is_dir() {
                self.scan_roots(&path, auto_dir, roots)?;
            } else if file_type.is_symlink() {
                self.resolve_root(&path, path.starts_with(auto_dir), roots)?;
            }
        }
        Ok(())
    }

    fn resolve_root(&self, link: &Path, indirect: bool, roots: &mut Vec<GcRoot>) -> Result<()> {
        let target = read_link_absolute(link)
            .map_err(|e| LocalStoreError::io("cannot read GC root", link, e))?;
        if let Some(store_path) = self.store_path_of(&target) {
            roots.push(GcRoot {
                link: link.to_path_buf(),
                store_path,
            });
            return Ok(());
        }
        match fs::symlink_metadata(&target) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let final_target = read_link_absolute(&target)
                    .map_err(|e| LocalStoreError::io("cannot read GC root", &target, e))?;
                if let Some(store_path) = self.store_path_of(&final_target) {
                    roots.push(GcRoot {
                        link: target,
                        store_path,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && indirect => {
                fs::remove_file(link)
                    .map_err(|e| LocalStoreError::io("cannot remove dead GC root", link, e))?;
            }
            // A root pointing elsewhere (or a link that exists but is no symlink) keeps
            // nothing alive; it may point into the store again later.
            _ => {}
        }
        Ok(())
    }

    /// The temporary roots of every live kiln process; files of dead processes are deleted.
    /// The caller holds the GC lock exclusively.
    pub(crate) fn read_temp_roots(&self) -> Result<BTreeSet<StorePath>> {
        let dir = self.temp_roots_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => {
                return Err(LocalStoreError::io(
                    "cannot read temporary roots in",
                    dir,
                    e,
                ))
            }
        };
        let mut roots = BTreeSet::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| LocalStoreError::io("cannot read temporary roots in", &dir, e))?;
            let path = entry.path();
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if !is_file
                || path
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().first() == Some(&b'.'))
            {
                continue;
            }
            match lock_file(&path, LockMode::Exclusive, false)? {
                Some(_abandoned) => {
                    // Its owner is gone: unlink while holding the lock.
                    let _ = fs::remove_file(&path);
                }
                None => {
                    let mut text = String::new();
                    File::open(&path)
                        .and_then(|mut f| f.read_to_string(&mut text))
                        .map_err(|e| {
                            LocalStoreError::io("cannot read temporary roots", &path, e)
                        })?;
                    roots.extend(
                        text.lines()
                            .filter_map(|line| self.store_dir.parse(line).ok()),
                    );
                }
            }
        }
        Ok(roots)
    }
}

/// The target of symlink `link`, made absolute against the link's directory.
fn read_link_absolute(link: &Path) -> io::Result<PathBuf> {
    let target = fs::read_link(link)?;
    Ok(match link.parent() {
        Some(parent) if target.is_relative() => parent.join(target),
        _ => target,
    })
}
