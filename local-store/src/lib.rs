//! kiln-local-store: the store on this machine — store objects under a physical root, the SQLite database that says which of
//! them are valid, per-output locks, GC roots and garbage collection.
//!
//! Layout under the physical root (default `$XDG_DATA_HOME/kiln`, i.e. `~/.local/share/kiln`):
//!
//! ```text
//! store/                 store objects, one entry per store path base name
//! var/kiln/db.sqlite     the database (see `db`): a path is valid iff it is listed there
//! var/kiln/locks/        one lock file per output path being written (see `lock`)
//! var/kiln/temproots/    temporary roots of running kiln processes (see `roots`)
//! var/kiln/gc.lock       serialises garbage collection against new roots
//! var/gcroots/           GC roots: symlinks; `auto/` holds indirect roots (`result` links)
//! var/log/               build logs
//! ```
//!
//! Store paths cross this API as [`StorePath`]s of the store's logical directory (the one
//! hashed into paths, e.g. `/kiln/store`); [`LocalStore::physical_path`] maps them to where the
//! object really lives. Anything under `store/` that the database does not list is
//! garbage: [`LocalStore::prepare_path_for_write`] removes it before its name is reused, and the
//! collector removes it when nobody holds its lock.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]
pub mod store_files;

mod db;
mod error;
pub mod fs_tree;
mod gc;
mod lock;
mod path_info;
mod roots;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use error::{LocalStoreError, Result};
pub use gc::{GcOptions, GcReport};
pub use lock::OutputLock;
pub use path_info::ValidPathInfo;
pub use roots::GcRoot;
pub use verify::{HashMismatch, VerifyReport};

use db::StoreDb;
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{StoreDir, StorePath};
use roots::TempRootsFile;

/// A store on the local file system (see the module doc for its layout).
pub struct LocalStore {
    root: PathBuf,
    store_dir: StoreDir,
    db: Mutex<StoreDb>,
    temp_roots: Mutex<Option<TempRootsFile>>,
}

/// The outcome of [`LocalStore::claim_outputs`].
#[derive(Debug)]
pub enum OutputClaim {
    /// Every requested path is already valid (perhaps built by another process while we
    /// waited); no lock is kept.
    AllValid,
    /// At least one path is invalid. All requested paths are locked (in sorted order) and
    /// protected as temporary roots, and leftovers of the invalid ones have been deleted.
    Locked(Vec<OutputLock>),
}

impl LocalStore {
    /// The default physical root: `$XDG_DATA_HOME/kiln`, else `$HOME/.local/share/kiln`.
    pub fn default_root() -> Option<PathBuf> {
        let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        if let Some(data_home) = non_empty("XDG_DATA_HOME") {
            return Some(PathBuf::from(data_home).join("kiln"));
        }
        non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share/kiln"))
    }

    /// Opens the store at physical `root` serving the logical directory `store_dir` (such as
    /// `/kiln/store`), creating its directories and database as needed.
    pub fn open(root: impl Into<PathBuf>, store_dir: StoreDir) -> Result<Self> {
        let root = root.into();
        let store = LocalStore {
            db: Mutex::new(StoreDb::open_in(&root, store_dir.clone())?),
            root,
            store_dir,
            temp_roots: Mutex::new(None),
        };
        for dir in [
            store.physical_store_dir(),
            store.locks_dir(),
            store.temp_roots_dir(),
            store.gcroots_dir().join("auto"),
            store.log_dir(),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| LocalStoreError::io("cannot create directory", dir, e))?;
        }
        Ok(store)
    }

    /// The physical root this store lives under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The logical store directory, hashed into every path (e.g. `/kiln/store`).
    pub fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    /// Where store objects physically are: `ROOT/store`.
    pub fn physical_store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The GC roots directory: `ROOT/var/gcroots`.
    pub fn gcroots_dir(&self) -> PathBuf {
        self.root.join("var/gcroots")
    }

    /// The build log directory: `ROOT/var/log`.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("var/log")
    }

    /// The database file: `ROOT/var/kiln/db.sqlite`.
    pub fn db_file(&self) -> PathBuf {
        db_file_in(&self.root)
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join("var/kiln/locks")
    }

    fn temp_roots_dir(&self) -> PathBuf {
        self.root.join("var/kiln/temproots")
    }

    fn gc_lock_file(&self) -> PathBuf {
        self.root.join("var/kiln/gc.lock")
    }

    /// Where the object of `path` physically lives: `ROOT/store/<hash>-<name>`.
    pub fn physical_path(&self, path: &StorePath) -> PathBuf {
        self.physical_store_dir().join(path.base_name())
    }

    /// The store path of the store object containing `location`, which may be under the
    /// physical store directory or the logical one (`/kiln/store/abc-foo/bin/sh` gives
    /// `abc-foo`); `None` for locations outside the store.
    pub fn store_path_of(&self, location: &Path) -> Option<StorePath> {
        let physical = self.physical_store_dir();
        let inside = location
            .strip_prefix(&physical)
            .or_else(|_| location.strip_prefix(self.store_dir.as_str()))
            .ok()?;
        let first = inside.components().next()?.as_os_str().to_str()?;
        StorePath::from_base_name(first).ok()
    }

    fn lock_file_of(&self, path: &StorePath) -> PathBuf {
        self.locks_dir().join(format!("{}.lock", path.base_name()))
    }

    fn db(&self) -> MutexGuard<'_, StoreDb> {
        // A panic while holding the connection cannot leave a transaction half applied
        // (rusqlite rolls back on drop), so a poisoned connection is still consistent.
        self.db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64> {
        self.db().schema_version()
    }

    /// Whether the database lists `path` as valid.
    pub fn is_valid(&self, path: &StorePath) -> Result<bool> {
        self.db().is_valid(path)
    }

    /// Every valid path.
    pub fn valid_paths(&self) -> Result<BTreeSet<StorePath>> {
        self.db().valid_paths()
    }

    /// What the database records about `path`; `None` if it is not valid.
    pub fn query_path_info(&self, path: &StorePath) -> Result<Option<ValidPathInfo>> {
        self.db().query_path_info(path)
    }

    /// Makes every path of `infos` valid in one transaction (all or nothing). This is the last
    /// step of a build: the objects must be complete on disk. References must be valid already
    /// or registered in the same batch. Registering a valid path again updates its record.
    /// Fails, registering nothing, if an object is missing from the physical store.
    pub fn register_valid_paths(&self, infos: &[ValidPathInfo]) -> Result<()> {
        for info in infos {
            let physical = self.physical_path(&info.path);
            std::fs::symlink_metadata(&physical).map_err(|e| {
                LocalStoreError::io("cannot register missing store object", physical, e)
            })?;
        }
        self.db().register_valid_paths(infos)
    }

    /// Adds signatures (`NAME:base64`) to the valid `path`.
    pub fn add_signatures(&self, path: &StorePath, signatures: &BTreeSet<String>) -> Result<()> {
        self.db().add_signatures(path, signatures)
    }

    /// Records realisations of derivation outputs (content-addressed derivations) in one
    /// transaction; see the database module for the rules.
    pub fn register_realisations(&self, realisations: &[Realisation]) -> Result<()> {
        self.db().register_realisations(realisations)
    }

    /// The realisation of the derivation output `id`, if any (its path is valid: a realisation
    /// goes when its path is invalidated).
    pub fn query_realisation(&self, id: &DrvOutput) -> Result<Option<Realisation>> {
        self.db().query_realisation(id)
    }

    /// Every realisation in the store.
    pub fn all_realisations(&self) -> Result<Vec<Realisation>> {
        self.db().all_realisations()
    }

    /// The realisations whose output is `path`.
    pub fn realisations_of_path(&self, path: &StorePath) -> Result<Vec<Realisation>> {
        self.db().realisations_of_path(path)
    }

    /// The paths `path` refers to; fails if `path` is not valid.
    pub fn references(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        self.db().references(path)
    }

    /// The valid paths that refer to `path`; fails if `path` is not valid.
    pub fn referrers(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        self.db().referrers(path)
    }

    /// `paths` and everything they refer to, transitively; fails if any path reached is not
    /// valid.
    pub fn closure(&self, paths: &[StorePath]) -> Result<BTreeSet<StorePath>> {
        let db = self.db();
        let mut closure = BTreeSet::new();
        let mut pending: Vec<StorePath> = paths.to_vec();
        while let Some(path) = pending.pop() {
            if closure.contains(&path) {
                continue;
            }
            let references = db.references(&path)?;
            pending.extend(
                references
                    .into_iter()
                    .filter(|reference| !closure.contains(reference)),
            );
            closure.insert(path);
        }
        Ok(closure)
    }

    /// The outputs (name → path) recorded for the valid derivation `drv`.
    pub fn derivation_outputs(&self, drv: &StorePath) -> Result<BTreeMap<String, StorePath>> {
        self.db().derivation_outputs(drv)
    }

    /// The valid derivations that list `output` among their outputs.
    pub fn query_valid_derivers(&self, output: &StorePath) -> Result<BTreeSet<StorePath>> {
        self.db().valid_derivers(output)
    }

    /// Makes `paths` invalid in one transaction; fails, changing nothing, if a valid path
    /// outside the set still refers to one of them. The objects stay on disk (as garbage).
    pub fn invalidate(&self, paths: &[StorePath]) -> Result<()> {
        self.db().invalidate(paths)
    }

    /// Deletes whatever lies at the physical location of the path `lock` protects, unless the
    /// path is valid. Call it before writing a path: an invalid leftover (a crashed build, a
    /// collection interrupted after invalidating) must not be mistaken for output. Returns
    /// whether the path is valid (then nothing was deleted and it must not be written).
    pub fn prepare_path_for_write(&self, lock: &OutputLock) -> Result<bool> {
        if self.is_valid(lock.path())? {
            return Ok(true);
        }
        let physical = self.physical_path(lock.path());
        fs_tree::delete_tree(&physical)
            .map_err(|e| LocalStoreError::io("cannot delete invalid leftover", physical, e))?;
        Ok(false)
    }

    /// Claims `paths` (the outputs of one build) for writing: locks them all in sorted order
    /// (calling `on_wait` for each that another process holds), makes them temporary roots,
    /// and re-checks validity. If all are valid the locks are released and
    /// [`OutputClaim::AllValid`] is returned; otherwise leftovers of the invalid ones are
    /// deleted and the locks are handed back, to be dropped after registration.
    pub fn claim_outputs(
        &self,
        paths: &[StorePath],
        mut on_wait: impl FnMut(&StorePath),
    ) -> Result<OutputClaim> {
        let sorted: BTreeSet<&StorePath> = paths.iter().collect();
        let mut locks = Vec::with_capacity(sorted.len());
        for path in &sorted {
            locks.push(OutputLock::acquire(self, path, &mut on_wait)?);
        }
        for path in &sorted {
            self.add_temp_root(path)?;
        }
        let mut all_valid = true;
        for lock in &locks {
            all_valid &= self.prepare_path_for_write(lock)?;
        }
        Ok(if all_valid {
            OutputClaim::AllValid
        } else {
            OutputClaim::Locked(locks)
        })
    }
}

fn db_file_in(root: &Path) -> PathBuf {
    root.join("var/kiln/db.sqlite")
}

impl StoreDb {
    /// Opens the database of the store at `root`, creating its directory. Opening is
    /// serialised between processes by a file lock next to the database: switching a new
    /// database to WAL and creating its schema can fail with "database is locked" at once,
    /// without waiting, when two processes open a fresh store together.
    fn open_in(root: &Path, store_dir: StoreDir) -> Result<Self> {
        let file = db_file_in(root);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LocalStoreError::io("cannot create directory", dir, e))?;
        }
        let _opening = lock::lock_file(
            &file.with_extension("open.lock"),
            lock::LockMode::Exclusive,
            true,
        )?;
        StoreDb::open(&file, store_dir)
    }
}
