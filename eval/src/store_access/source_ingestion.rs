//! What every [`EvalStore`](super::EvalStore) shares to ingest sources (path literals,
//! `builtins.path`, `filterSource`): the cache of unfiltered source copies by (source, name,
//! method), so a path literal used many times is hashed once; the store path a content hash
//! gives; the adaptation of the evaluator's filter to the NAR filter; and the errors Nix gives.
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use kiln_store::content_address::ContentHashError;
use kiln_store::hash::{Hash, HashAlgo};
use kiln_store::nar::NarError;
use kiln_store::store_path::{ContentAddressMethod, StoreDir, StorePath};

use crate::store_access::{
    AddPathError, EntryKind, FilterAborted, IngestionMethod, PathFilter, PathToAdd,
    StoreAccessError,
};

/// What an unfiltered source copy is cached by: source, name, method.
pub type SourceKey = (PathBuf, String, IngestionMethod);

/// Cache of unfiltered source copies: key → store path.
#[derive(Default)]
pub struct SourceCache {
    paths: RefCell<HashMap<SourceKey, StorePath>>,
}

impl SourceCache {
    pub fn get(&self, key: &SourceKey) -> Option<StorePath> {
        self.paths.borrow().get(key).cloned()
    }

    pub fn insert(&self, key: SourceKey, path: StorePath) {
        self.paths.borrow_mut().insert(key, path);
    }
}

pub fn content_address_method(method: IngestionMethod) -> ContentAddressMethod {
    match method {
        IngestionMethod::Flat => ContentAddressMethod::Flat,
        IngestionMethod::Recursive => ContentAddressMethod::Recursive,
    }
}

pub fn entry_kind(metadata: &fs::Metadata) -> EntryKind {
    let file_type = metadata.file_type();
    if file_type.is_file() {
        EntryKind::Regular
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else if file_type.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Unknown
    }
}

/// Adapts the evaluator's filter to the store's NAR filter.
pub fn nar_filter<'f>(
    filter: &'f mut dyn FnMut(&Path, EntryKind) -> Result<bool, FilterAborted>,
) -> impl FnMut(&Path, &fs::Metadata) -> Result<bool, ()> + 'f {
    move |path, metadata| filter(path, entry_kind(metadata)).map_err(|FilterAborted| ())
}

pub fn access_error(error: impl std::error::Error + Send + Sync + 'static) -> StoreAccessError {
    StoreAccessError::caused_by(error)
}

/// Maps a content-hash error, telling a stopped filter apart from real failures.
pub fn content_hash_error(error: ContentHashError) -> AddPathError {
    match error {
        ContentHashError::Nar(NarError::FilterFailed(_)) => AddPathError::FilterAborted,
        other => AddPathError::Store(access_error(other)),
    }
}

/// The path of a source with content hash `hash` ingested by `method`.
pub fn source_path(
    dir: &StoreDir,
    name: &str,
    method: ContentAddressMethod,
    hash: &Hash,
) -> Result<StorePath, StoreAccessError> {
    dir.make_fixed_output_path(method, hash, name, &BTreeSet::new(), false)
        .map_err(access_error)
}

/// The store path an expected sha256 (from `builtins.path { sha256 = …; }`) stands for.
pub fn expected_path(
    dir: &StoreDir,
    name: &str,
    method: ContentAddressMethod,
    expected_sha256: Option<[u8; 32]>,
) -> Result<Option<StorePath>, StoreAccessError> {
    let Some(digest) = expected_sha256 else {
        return Ok(None);
    };
    // 32 bytes are exactly a sha256 digest.
    let hash = Hash::from_digest(HashAlgo::Sha256, &digest)
        .ok_or_else(|| StoreAccessError::new("a sha256 hash has 32 bytes"))?;
    source_path(dir, name, method, &hash).map(Some)
}

/// Nix's error when the added contents do not match the expected hash.
pub fn mismatch_error(source: &Path) -> AddPathError {
    AddPathError::Store(StoreAccessError::new(format!(
        "store path mismatch in (possibly filtered) path added from '{}'",
        source.display()
    )))
}

/// Runs `add` for an unfiltered, cacheable request or directly for a filtered one.
pub fn with_source_cache(
    cache: &SourceCache,
    request: PathToAdd<'_>,
    filter: Option<PathFilter<'_>>,
    add: impl FnOnce(Option<PathFilter<'_>>) -> Result<StorePath, AddPathError>,
) -> Result<StorePath, AddPathError> {
    if filter.is_some() {
        return add(filter);
    }
    let key = (
        request.source.to_owned(),
        request.name.to_owned(),
        request.method,
    );
    if let Some(path) = cache.get(&key) {
        return Ok(path);
    }
    let path = add(None)?;
    cache.insert(key, path.clone());
    Ok(path)
}
