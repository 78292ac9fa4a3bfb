//! The local store: store objects under a physical root, the SQLite database that says which of
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
//! Store paths cross this API as absolute logical paths (`<store dir>/<hash>-<name>`, e.g.
//! `/kiln/store/…`), the directory hashed into paths; [`LocalStore::physical_path`] maps them
//! to where the object really lives. Anything under `store/` that the database does not list is
//! garbage: [`LocalStore::prepare_path_for_write`] removes it before its name is reused, and the
//! collector removes it when nobody holds its lock.
mod db;
mod error;
mod fs_tree;
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
use roots::TempRootsFile;

/// The characters of nixbase32, the alphabet of a store path's hash part.
const NIXBASE32_ALPHABET: &str = "0123456789abcdfghijklmnpqrsvwxyz";
/// Length of a store path's hash part in nixbase32 characters.
const HASH_PART_LEN: usize = 32;

/// A store on the local file system (see the module doc for its layout).
pub struct LocalStore {
    root: PathBuf,
    store_dir: String,
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
    pub fn open(root: impl Into<PathBuf>, store_dir: impl Into<String>) -> Result<Self> {
        let root = root.into();
        let mut store_dir = store_dir.into();
        while store_dir.len() > 1 && store_dir.ends_with('/') {
            store_dir.pop();
        }
        let store = LocalStore {
            db: Mutex::new(StoreDb::open_in(&root)?),
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
    pub fn store_dir(&self) -> &str {
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

    /// The base name (`<hash>-<name>`) of logical store path `path`, checked for shape.
    pub fn base_name<'a>(&self, path: &'a str) -> Result<&'a str> {
        path.strip_prefix(self.store_dir.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|base| is_store_base_name(base))
            .ok_or_else(|| LocalStoreError::NotAStorePath {
                path: path.to_owned(),
                store_dir: self.store_dir.clone(),
            })
    }

    /// Where the object of logical store path `path` physically lives: `ROOT/store/<base>`.
    pub fn physical_path(&self, path: &str) -> Result<PathBuf> {
        Ok(self.physical_store_dir().join(self.base_name(path)?))
    }

    /// The logical store path of the store object containing `location`, which may be under
    /// the physical store directory or the logical one (`/kiln/store/abc-foo/bin/sh` gives
    /// `/kiln/store/abc-foo`); `None` for locations outside the store.
    pub fn store_path_of(&self, location: &Path) -> Option<String> {
        let physical = self.physical_store_dir();
        let inside = location
            .strip_prefix(&physical)
            .or_else(|_| location.strip_prefix(&self.store_dir))
            .ok()?;
        let first = inside.components().next()?.as_os_str().to_str()?;
        is_store_base_name(first).then(|| format!("{}/{}", self.store_dir, first))
    }

    fn lock_file_of(&self, path: &str) -> Result<PathBuf> {
        Ok(self
            .locks_dir()
            .join(format!("{}.lock", self.base_name(path)?)))
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
    pub fn is_valid(&self, path: &str) -> Result<bool> {
        self.base_name(path)?;
        self.db().is_valid(path)
    }

    /// Every valid path.
    pub fn valid_paths(&self) -> Result<BTreeSet<String>> {
        self.db().valid_paths()
    }

    /// What the database records about `path`; `None` if it is not valid.
    pub fn query_path_info(&self, path: &str) -> Result<Option<ValidPathInfo>> {
        self.base_name(path)?;
        self.db().query_path_info(path)
    }

    /// Makes every path of `infos` valid in one transaction (all or nothing). This is the last
    /// step of a build: the objects must be complete on disk. References must be valid already
    /// or registered in the same batch. Registering a valid path again updates its record.
    pub fn register_valid_paths(&self, infos: &[ValidPathInfo]) -> Result<()> {
        for info in infos {
            self.base_name(&info.path)?;
            for other in info
                .references
                .iter()
                .chain(info.deriver.iter())
                .chain(info.derivation_outputs.values())
            {
                self.base_name(other)?;
            }
        }
        self.db().register_valid_paths(infos)
    }

    /// The paths `path` refers to; fails if `path` is not valid.
    pub fn references(&self, path: &str) -> Result<BTreeSet<String>> {
        self.db().references(path)
    }

    /// The valid paths that refer to `path`; fails if `path` is not valid.
    pub fn referrers(&self, path: &str) -> Result<BTreeSet<String>> {
        self.db().referrers(path)
    }

    /// `paths` and everything they refer to, transitively; fails if any path reached is not
    /// valid.
    pub fn closure<S: AsRef<str>>(&self, paths: &[S]) -> Result<BTreeSet<String>> {
        let db = self.db();
        let mut closure = BTreeSet::new();
        let mut pending: Vec<String> = paths.iter().map(|p| p.as_ref().to_owned()).collect();
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
    pub fn derivation_outputs(&self, drv: &str) -> Result<BTreeMap<String, String>> {
        self.db().derivation_outputs(drv)
    }

    /// The valid derivations that list `output` among their outputs.
    pub fn query_valid_derivers(&self, output: &str) -> Result<BTreeSet<String>> {
        self.db().valid_derivers(output)
    }

    /// Makes `paths` invalid in one transaction; fails, changing nothing, if a valid path
    /// outside the set still refers to one of them. The objects stay on disk (as garbage).
    pub fn invalidate<S: AsRef<str>>(&self, paths: &[S]) -> Result<()> {
        let paths: Vec<String> = paths.iter().map(|p| p.as_ref().to_owned()).collect();
        self.db().invalidate(&paths)
    }

    /// Deletes whatever lies at the physical location of the path `lock` protects, unless the
    /// path is valid. Call it before writing a path: an invalid leftover (a crashed build, a
    /// collection interrupted after invalidating) must not be mistaken for output. Returns
    /// whether the path is valid (then nothing was deleted and it must not be written).
    pub fn prepare_path_for_write(&self, lock: &OutputLock) -> Result<bool> {
        if self.is_valid(lock.path())? {
            return Ok(true);
        }
        let physical = self.physical_path(lock.path())?;
        fs_tree::delete_tree(&physical)
            .map_err(|e| LocalStoreError::io("cannot delete invalid leftover", physical, e))?;
        Ok(false)
    }

    /// Claims `paths` (the outputs of one build) for writing: locks them all in sorted order
    /// (calling `on_wait` for each that another process holds), makes them temporary roots,
    /// and re-checks validity. If all are valid the locks are released and
    /// [`OutputClaim::AllValid`] is returned; otherwise leftovers of the invalid ones are
    /// deleted and the locks are handed back, to be dropped after registration.
    pub fn claim_outputs<S: AsRef<str>>(
        &self,
        paths: &[S],
        mut on_wait: impl FnMut(&str),
    ) -> Result<OutputClaim> {
        let sorted: BTreeSet<&str> = paths.iter().map(|p| p.as_ref()).collect();
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
    /// Opens the database of the store at `root`, creating its directory.
    fn open_in(root: &Path) -> Result<Self> {
        let file = db_file_in(root);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LocalStoreError::io("cannot create directory", dir, e))?;
        }
        StoreDb::open(&file)
    }
}

/// Whether `base` has the shape `<32 nixbase32 chars>-<name>` with a name Nix accepts.
fn is_store_base_name(base: &str) -> bool {
    let Some((hash, name)) = base.split_at_checked(HASH_PART_LEN) else {
        return false;
    };
    let Some(name) = name.strip_prefix('-') else {
        return false;
    };
    hash.chars().all(|c| NIXBASE32_ALPHABET.contains(c))
        && !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_base_names_are_checked() {
        assert!(is_store_base_name(
            "0c4bqxqjx35ijc3ycbn3n01jcikpwqy4-hello-2.12"
        ));
        assert!(!is_store_base_name("0c4bqxqjx35ijc3ycbn3n01jcikpwqy4-"));
        assert!(!is_store_base_name(
            "0c4bqxqjx35ijc3ycbn3n01jcikpwqy4-.hidden"
        ));
        assert!(!is_store_base_name("ec4bqxqjx35ijc3ycbn3n01jcikpwqy4-e"));
        assert!(!is_store_base_name(
            "0c4bqxqjx35ijc3ycbn3n01jcikpwqy4_hello"
        ));
        assert!(!is_store_base_name("short-hello"));
        assert!(!is_store_base_name("0c4bqxqjx35ijc3ycbn3n01jcikpwqy4-a/b"));
    }
}
