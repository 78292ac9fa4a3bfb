//! Writing new store objects into a [`LocalStore`]: text files (`builtins.toFile`, `.drv`
//! files) and copies of host files and trees (path literals, `builtins.path`,
//! `filterSource`). Every object is written under a temporary name in `ROOT/store` and renamed
//! into place, under the path's lock, then registered as valid in the database — a path that
//! is already valid is reused untouched. Copies are canonicalised as in Nix: regular files are
//! read-only (0444, or 0555 when the owner could execute them), directories 0555, and files and
//! directories get modification time 1.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_store::path_io_error::PathIoError;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_store::content_address::{content_hash, render_content_address, ContentHashError};
use kiln_store::hash::{Hash, HashAlgo};
use kiln_store::nar::{self, NarError, NarFilter};
use kiln_store::store_path::{ContentAddressMethod, StorePath, StorePathError};

use crate::{LocalStore, LocalStoreError, OutputLock, ValidPathInfo};

/// Why a store object could not be added.
#[derive(Debug, thiserror::Error)]
pub enum StoreFilesError {
    #[error(transparent)]
    LocalStore(#[from] LocalStoreError),
    #[error(transparent)]
    Nar(#[from] NarError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error(transparent)]
    Io(#[from] PathIoError),
    #[error("'{0}' is not a regular file; only regular files can be added flat")]
    NotARegularFile(PathBuf),
    #[error("'{path}' changed while it was being copied into the store (expected {expected}, copied {actual})")]
    SourceChanged {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl From<ContentHashError> for StoreFilesError {
    fn from(error: ContentHashError) -> StoreFilesError {
        match error {
            ContentHashError::Nar(error) => StoreFilesError::Nar(error),
            ContentHashError::Io(error) => StoreFilesError::Io(error),
            ContentHashError::NotARegularFile(path) => StoreFilesError::NotARegularFile(path),
        }
    }
}

/// A temporary name in the physical store directory, unique within this machine.
fn temp_location(store: &LocalStore, name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    store
        .physical_store_dir()
        .join(format!(".tmp-{pid}-{serial}-{name}"))
}

/// The lock on `path` with any invalid leftover there removed, ready to be written; `None`
/// when `path` is valid already (before or once the lock is held).
fn lock_unless_valid(
    store: &LocalStore,
    path: &StorePath,
) -> Result<Option<OutputLock>, StoreFilesError> {
    if store.is_valid(path)? {
        return Ok(None);
    }
    let lock = OutputLock::acquire(store, path, |_| {})?;
    if store.prepare_path_for_write(&lock)? {
        return Ok(None);
    }
    Ok(Some(lock))
}

/// Writes `path` (a text file with `contents`) unless it is already valid, and registers it with
/// its references. `derivation_outputs` is for `.drv` files (output name → output path).
pub fn add_text(
    store: &LocalStore,
    path: &StorePath,
    contents: &[u8],
    references: &BTreeSet<StorePath>,
    derivation_outputs: BTreeMap<String, StorePath>,
) -> Result<(), StoreFilesError> {
    let Some(lock) = lock_unless_valid(store, path)? else {
        return Ok(());
    };
    write_text_file(store, path, contents)?;
    let info = text_path_info(path, contents, references, derivation_outputs);
    register(store, info)?;
    drop(lock);
    Ok(())
}

/// Writes `contents` to the physical location of `path` through a temporary name, replacing
/// whatever invalid leftover is there (text paths are content addressed and never build
/// outputs, so any file at that name holds the same bytes or is garbage).
fn write_text_file(
    store: &LocalStore,
    path: &StorePath,
    contents: &[u8],
) -> Result<(), StoreFilesError> {
    let temp = temp_location(store, path.name());
    let result = (|| {
        // Created read-only with its canonical time: one open, write and futimens per file.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&temp)
            .map_err(PathIoError::at("cannot create", &temp))?;
        file.write_all(contents)
            .map_err(PathIoError::at("cannot write", &temp))?;
        file.set_times(canonical_times())
            .map_err(PathIoError::at("cannot set times of", &temp))?;
        drop(file);
        let physical = store.physical_path(path);
        fs::rename(&temp, &physical)
            .map_err(PathIoError::at("cannot move into place", &physical))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn text_path_info(
    path: &StorePath,
    contents: &[u8],
    references: &BTreeSet<StorePath>,
    derivation_outputs: BTreeMap<String, StorePath>,
) -> ValidPathInfo {
    let (nar_hash, nar_size) = nar::hash_bytes(contents);
    let mut info = ValidPathInfo::new(path.clone(), nar_hash, nar_size);
    info.references = references.clone();
    info.ca = Some(render_content_address(
        ContentAddressMethod::Text,
        &Hash::sha256(contents),
    ));
    info.derivation_outputs = derivation_outputs;
    info
}

/// Text files (`.drv` files, `toFile` texts) written right away and registered together in
/// one transaction by [`TextBatch::flush`] — an evaluation writes 10,000s of them, and one
/// transaction per file would dominate. Until the flush they are invalid, hence garbage to
/// everyone else; should another process remove one meanwhile, the flush writes it again.
/// Add referenced texts before the texts that refer to them (evaluation order does that).
#[derive(Default)]
pub struct TextBatch {
    pending: Vec<(ValidPathInfo, Vec<u8>)>,
    members: std::collections::HashSet<StorePath>,
}

impl TextBatch {
    pub fn new() -> TextBatch {
        TextBatch::default()
    }

    /// The number of texts waiting for registration.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether `path` is waiting in this batch.
    pub fn contains(&self, path: &StorePath) -> bool {
        self.members.contains(path)
    }

    /// The references of `path` when it is waiting in this batch.
    pub fn references(&self, path: &StorePath) -> Option<&BTreeSet<StorePath>> {
        if !self.members.contains(path) {
            return None;
        }
        self.pending
            .iter()
            .find(|(info, _)| info.path == *path)
            .map(|(info, _)| &info.references)
    }

    /// Writes `path` unless it is valid or already in the batch, and queues its registration.
    pub fn add(
        &mut self,
        store: &LocalStore,
        path: &StorePath,
        contents: &[u8],
        references: &BTreeSet<StorePath>,
        derivation_outputs: BTreeMap<String, StorePath>,
    ) -> Result<(), StoreFilesError> {
        if self.members.contains(path) || store.is_valid(path)? {
            return Ok(());
        }
        write_text_file(store, path, contents)?;
        let info = text_path_info(path, contents, references, derivation_outputs);
        self.members.insert(path.clone());
        self.pending.push((info, contents.to_vec()));
        Ok(())
    }

    /// Registers every queued text in one transaction, first rewriting any that disappeared.
    pub fn flush(&mut self, store: &LocalStore) -> Result<(), StoreFilesError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        for (info, contents) in &self.pending {
            if fs::symlink_metadata(store.physical_path(&info.path)).is_err() {
                write_text_file(store, &info.path, contents)?;
            }
        }
        let infos: Vec<ValidPathInfo> = self.pending.iter().map(|(info, _)| info.clone()).collect();
        register_batch(store, &infos)?;
        self.pending.clear();
        self.members.clear();
        Ok(())
    }
}

/// The one place where a newly written store object becomes valid.
fn register(store: &LocalStore, info: ValidPathInfo) -> Result<(), StoreFilesError> {
    register_batch(store, &[info])
}

/// Registers several newly written objects in one transaction.
fn register_batch(store: &LocalStore, infos: &[ValidPathInfo]) -> Result<(), StoreFilesError> {
    store.register_valid_paths(infos)?;
    Ok(())
}

/// A copy of a host tree made under a temporary name in the store, not yet at its final path.
pub struct StagedCopy {
    location: PathBuf,
    /// The content hash (flat or NAR sha256) of what was copied.
    pub content_hash: Hash,
    nar_hash: Hash,
    nar_size: u64,
}

impl Drop for StagedCopy {
    fn drop(&mut self) {
        if self.location.as_os_str().is_empty() {
            return;
        }
        // Best effort: a leftover temporary is garbage that the collector removes anyway.
        let _ = make_writable(&self.location);
        let _ = if self.location.is_dir() {
            fs::remove_dir_all(&self.location)
        } else {
            fs::remove_file(&self.location)
        };
    }
}

fn make_writable(path: &Path) -> io::Result<()> {
    let metadata = fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
        for entry in fs::read_dir(path)? {
            make_writable(&entry?.path())?;
        }
    }
    Ok(())
}

/// Copies `source` (keeping what `filter` accepts) to a temporary name in the store and hashes
/// the copy. `method` decides the content hash: flat (a regular file's bytes) or recursive.
pub fn stage_copy(
    store: &LocalStore,
    name: &str,
    source: &Path,
    method: ContentAddressMethod,
    mut filter: Option<NarFilter<'_>>,
) -> Result<StagedCopy, StoreFilesError> {
    let temp = temp_location(store, name);
    let mut staged = StagedCopy {
        location: PathBuf::new(),
        content_hash: Hash::zero(HashAlgo::Sha256),
        nar_hash: Hash::zero(HashAlgo::Sha256),
        nar_size: 0,
    };
    if method == ContentAddressMethod::Flat {
        // As Nix: a flat addition reads the file's bytes (through a symlink) and stores them as
        // a plain, non-executable file; the filter is not consulted.
        let metadata = fs::metadata(source).map_err(PathIoError::at("cannot stat", source))?;
        if !metadata.is_file() {
            return Err(StoreFilesError::NotARegularFile(source.to_owned()));
        }
        staged.location = temp.clone();
        copy_flat(source, &metadata, &temp)?;
    } else {
        let metadata =
            fs::symlink_metadata(source).map_err(PathIoError::at("cannot stat", source))?;
        // From here on the temporary is removed again if anything fails.
        staged.location = temp.clone();
        copy_tree(source, &metadata, &temp, &mut filter)?;
    }
    let (nar_hash, nar_size) = nar::hash_path(&temp)?;
    staged.nar_hash = nar_hash;
    staged.nar_size = nar_size;
    staged.content_hash = match method {
        ContentAddressMethod::Flat => content_hash(&temp, method, None)?,
        _ => nar_hash,
    };
    Ok(staged)
}

/// Moves a staged copy to `path` (unless that is already valid) and registers it with the
/// content address `ca_method`.
pub fn commit_copy(
    store: &LocalStore,
    staged: StagedCopy,
    path: &StorePath,
    ca_method: ContentAddressMethod,
) -> Result<(), StoreFilesError> {
    let Some(lock) = lock_unless_valid(store, path)? else {
        return Ok(());
    };
    let physical = store.physical_path(path);
    fs::rename(&staged.location, &physical)
        .map_err(PathIoError::at("cannot move into place", &physical))?;
    let mut info = ValidPathInfo::new(path.clone(), staged.nar_hash, staged.nar_size);
    info.ca = Some(render_content_address(ca_method, &staged.content_hash));
    let mut staged = staged;
    staged.location = PathBuf::new();
    register(store, info)?;
    drop(lock);
    Ok(())
}

/// Whether the owner may execute the file: Nix's test for the NAR executable flag.
fn is_executable(metadata: &fs::Metadata) -> bool {
    metadata.permissions().mode() & 0o100 != 0
}

/// Access and modification time 1 (one second after the epoch), as Nix gives store files.
fn canonical_times() -> fs::FileTimes {
    let one_second = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1);
    fs::FileTimes::new()
        .set_accessed(one_second)
        .set_modified(one_second)
}

/// Gives a copied entry its canonical mode and modification time 1.
fn canonicalise(path: &Path, metadata: &fs::Metadata) -> Result<(), StoreFilesError> {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        return Ok(());
    }
    let mode = if file_type.is_dir() || is_executable(metadata) {
        0o555
    } else {
        0o444
    };
    let times = canonical_times();
    let handle = fs::File::open(path).map_err(PathIoError::at("cannot open", path))?;
    handle
        .set_times(times)
        .map_err(PathIoError::at("cannot set times of", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(PathIoError::at("cannot set permissions of", path))?;
    Ok(())
}

/// Copies a regular file's bytes to `dest` as a non-executable file (flat ingestion).
fn copy_flat(source: &Path, metadata: &fs::Metadata, dest: &Path) -> Result<(), StoreFilesError> {
    copy_regular_file(source, metadata, dest, 0o644)
}

/// Copies a regular file to `dest` with `mode`, checks it did not change size meanwhile and
/// gives it the store's canonical metadata.
fn copy_regular_file(
    source: &Path,
    metadata: &fs::Metadata,
    dest: &Path,
    mode: u32,
) -> Result<(), StoreFilesError> {
    fs::copy(source, dest).map_err(PathIoError::at("cannot copy", source))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .map_err(PathIoError::at("cannot set permissions of", dest))?;
    let copied = fs::symlink_metadata(dest).map_err(PathIoError::at("cannot stat", dest))?;
    if copied.len() != metadata.len() {
        return Err(StoreFilesError::SourceChanged {
            path: source.to_owned(),
            expected: format!("{} bytes", metadata.len()),
            actual: format!("{} bytes", copied.len()),
        });
    }
    canonicalise(dest, &copied)
}

fn copy_tree(
    source: &Path,
    metadata: &fs::Metadata,
    dest: &Path,
    filter: &mut Option<NarFilter<'_>>,
) -> Result<(), StoreFilesError> {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        let target = fs::read_link(source).map_err(PathIoError::at("cannot read link", source))?;
        std::os::unix::fs::symlink(&target, dest)
            .map_err(PathIoError::at("cannot create link", dest))?;
        return Ok(());
    }
    if file_type.is_file() {
        let mode = 0o644 | (metadata.permissions().mode() & 0o100);
        return copy_regular_file(source, metadata, dest, mode);
    }
    if !file_type.is_dir() {
        return Err(NarError::UnsupportedFileType(source.to_owned()).into());
    }
    fs::create_dir(dest).map_err(PathIoError::at("cannot create directory", dest))?;
    let mut names = Vec::new();
    for entry in fs::read_dir(source).map_err(PathIoError::at("cannot read directory", source))? {
        names.push(
            entry
                .map_err(PathIoError::at("cannot read directory", source))?
                .file_name(),
        );
    }
    names.sort();
    for name in names {
        let child = source.join(&name);
        let child_metadata =
            fs::symlink_metadata(&child).map_err(PathIoError::at("cannot stat", &child))?;
        if let Some(filter) = filter.as_mut() {
            if !filter(&child, &child_metadata)
                .map_err(|()| NarError::FilterFailed(child.clone()))?
            {
                continue;
            }
        }
        copy_tree(&child, &child_metadata, &dest.join(&name), filter)?;
    }
    let dir_metadata = fs::symlink_metadata(dest).map_err(PathIoError::at("cannot stat", dest))?;
    canonicalise(dest, &dir_metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_store::store_path::StoreDir;

    fn open_store(root: &Path) -> LocalStore {
        LocalStore::open(root, StoreDir::new("/nix/store")).unwrap()
    }

    #[test]
    fn text_files_are_written_once_and_registered() {
        let temp = tempfile::tempdir().unwrap();
        let store = open_store(temp.path());
        let dir = store.store_dir().clone();
        let path = dir
            .make_text_path("foo", b"hello", &BTreeSet::new())
            .unwrap();
        add_text(&store, &path, b"hello", &BTreeSet::new(), BTreeMap::new()).unwrap();
        let physical = store.physical_path(&path);
        assert_eq!(fs::read(&physical).unwrap(), b"hello");
        assert_eq!(
            fs::metadata(&physical).unwrap().permissions().mode() & 0o777,
            0o444
        );
        let info = store.query_path_info(&path).unwrap().unwrap();
        assert_eq!(info.nar_hash, nar::hash_bytes(b"hello").0);
        assert_eq!(
            info.ca.as_deref(),
            Some("text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic")
        );
        // A second write of the same path reuses it.
        add_text(&store, &path, b"hello", &BTreeSet::new(), BTreeMap::new()).unwrap();
        let leftovers: Vec<_> = fs::read_dir(store.physical_store_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn text_batches_register_together() {
        let temp = tempfile::tempdir().unwrap();
        let store = open_store(temp.path());
        let dir = store.store_dir().clone();
        let inner = dir.make_text_path("inner", b"x", &BTreeSet::new()).unwrap();
        let contents = format!("uses {}", dir.print(&inner));
        let refs = BTreeSet::from([inner.clone()]);
        let outer = dir
            .make_text_path("outer", contents.as_bytes(), &refs)
            .unwrap();
        let mut batch = TextBatch::new();
        batch
            .add(&store, &inner, b"x", &BTreeSet::new(), BTreeMap::new())
            .unwrap();
        batch
            .add(&store, &outer, contents.as_bytes(), &refs, BTreeMap::new())
            .unwrap();
        batch
            .add(&store, &inner, b"x", &BTreeSet::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(batch.len(), 2);
        assert!(!store.is_valid(&outer).unwrap());
        // Another process's collector removed an unregistered text: the flush rewrites it.
        fs::remove_file(store.physical_path(&inner)).unwrap();
        batch.flush(&store).unwrap();
        assert!(batch.is_empty());
        assert!(store.is_valid(&inner).unwrap() && store.is_valid(&outer).unwrap());
        assert_eq!(fs::read(store.physical_path(&inner)).unwrap(), b"x");
        assert_eq!(store.references(&outer).unwrap(), refs);
    }

    #[test]
    fn trees_are_copied_canonically() {
        let temp = tempfile::tempdir().unwrap();
        let store = open_store(&temp.path().join("root"));
        let source = temp.path().join("src");
        fs::create_dir_all(source.join("sub")).unwrap();
        fs::write(source.join("a"), "a").unwrap();
        fs::write(source.join("skip"), "skip").unwrap();
        fs::write(source.join("sub/run"), "#!/bin/sh").unwrap();
        fs::set_permissions(source.join("sub/run"), fs::Permissions::from_mode(0o700)).unwrap();
        let mut filter = |path: &Path, _: &fs::Metadata| Ok(!path.ends_with("skip"));
        let staged = stage_copy(
            &store,
            "src",
            &source,
            ContentAddressMethod::Recursive,
            Some(&mut filter),
        )
        .unwrap();
        let mut filter = |path: &Path, _: &fs::Metadata| Ok(!path.ends_with("skip"));
        let expected =
            content_hash(&source, ContentAddressMethod::Recursive, Some(&mut filter)).unwrap();
        assert_eq!(staged.content_hash, expected);
        let dir = store.store_dir().clone();
        let path = dir
            .make_fixed_output_path(
                ContentAddressMethod::Recursive,
                &expected,
                "src",
                &BTreeSet::new(),
                false,
            )
            .unwrap();
        commit_copy(&store, staged, &path, ContentAddressMethod::Recursive).unwrap();
        let physical = store.physical_path(&path);
        assert!(!physical.join("skip").exists());
        let run = fs::metadata(physical.join("sub/run")).unwrap();
        assert_eq!(run.permissions().mode() & 0o777, 0o555);
        assert_eq!(
            fs::metadata(&physical).unwrap().permissions().mode() & 0o777,
            0o555
        );
        assert!(store.is_valid(&path).unwrap());
        assert_eq!(nar::hash_path(&physical).unwrap().0, expected);
    }

    #[test]
    fn flat_copies_need_regular_files() {
        let temp = tempfile::tempdir().unwrap();
        let store = open_store(&temp.path().join("root"));
        assert!(matches!(
            stage_copy(&store, "x", temp.path(), ContentAddressMethod::Flat, None),
            Err(StoreFilesError::NotARegularFile(_))
        ));
        let file = temp.path().join("f");
        fs::write(&file, "hello").unwrap();
        let staged = stage_copy(&store, "f", &file, ContentAddressMethod::Flat, None).unwrap();
        assert_eq!(staged.content_hash, Hash::sha256(b"hello"));
        // An executable file and a symlink to a file are added as the plain file's bytes
        // (Nix's NAR for them is that of a non-executable file).
        let executable = temp.path().join("x");
        fs::write(&executable, "hello").unwrap();
        fs::set_permissions(&executable, fs::Permissions::from_mode(0o755)).unwrap();
        let link = temp.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for source in [&executable, &link] {
            let other = stage_copy(&store, "f", source, ContentAddressMethod::Flat, None).unwrap();
            assert_eq!(other.content_hash, staged.content_hash);
            assert_eq!(other.nar_hash, staged.nar_hash, "{}", source.display());
        }
    }
}
