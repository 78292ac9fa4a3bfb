//! [`LocalEvalStore`]: an [`EvalStore`] that writes what evaluation creates — `toFile` texts,
//! `.drv` files, copies of sources — into a [`LocalStore`] and registers them as valid.
//! Copies of sources are registered at once; texts are written at once and registered in
//! batches (see [`TextBatch`]): every [`TEXT_BATCH_SIZE`] texts, on [`LocalEvalStore::flush`],
//! and when the store is dropped. Call `flush` before handing out the paths, to see errors
//! (dropping does not report them).
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use kiln_eval::store_access::source_ingestion::{
    access_error, content_address_method, content_hash_error, expected_path, mismatch_error,
    nar_filter, source_path, with_source_cache, SourceCache,
};
use kiln_eval::store_access::{
    AddPathError, EvalStore, PathFilter, PathToAdd, StoreAccessError, StoreText,
};
use kiln_local_store::store_files::{commit_copy, stage_copy, StoreFilesError, TextBatch};
use kiln_local_store::LocalStore;
use kiln_store::content_address::content_hash;
use kiln_store::nar::NarError;
use kiln_store::store_path::{StoreDir, StorePath};

/// Maps a store error, telling a stopped filter apart from real failures.
fn add_path_error(error: StoreFilesError) -> AddPathError {
    match error {
        StoreFilesError::Nar(NarError::FilterFailed(_)) => AddPathError::FilterAborted,
        other => AddPathError::Store(access_error(other)),
    }
}

/// How many texts are registered per transaction.
pub const TEXT_BATCH_SIZE: usize = 4096;

/// Writes into a local store under its physical root.
pub struct LocalEvalStore {
    store: Arc<LocalStore>,
    dir: StoreDir,
    sources: SourceCache,
    texts: RefCell<TextBatch>,
}

impl LocalEvalStore {
    pub fn new(store: Arc<LocalStore>) -> LocalEvalStore {
        let dir = store.store_dir().clone();
        LocalEvalStore {
            store,
            dir,
            sources: SourceCache::default(),
            texts: RefCell::new(TextBatch::new()),
        }
    }

    /// Where a path inside the logical store directory physically is (`None` for host paths).
    fn physical_location(&self, source: &Path) -> Option<std::path::PathBuf> {
        let (store_path, rest) = self.dir.parse_prefix(source.to_str()?).ok()?;
        let object = self.store.physical_path(&store_path);
        let rest = rest.trim_start_matches('/');
        Some(if rest.is_empty() {
            object
        } else {
            object.join(rest)
        })
    }

    /// Registers the texts written since the last flush.
    pub fn flush(&self) -> Result<(), StoreAccessError> {
        self.texts
            .borrow_mut()
            .flush(&self.store)
            .map_err(access_error)
    }

    /// The store written to.
    pub fn local_store(&self) -> &Arc<LocalStore> {
        &self.store
    }

    fn write_text(
        &self,
        text: StoreText<'_>,
        derivation_outputs: BTreeMap<String, StorePath>,
    ) -> Result<StorePath, StoreAccessError> {
        let path = self
            .dir
            .make_text_path(text.name, text.contents, text.references)
            .map_err(access_error)?;
        let mut texts = self.texts.borrow_mut();
        texts
            .add(
                &self.store,
                &path,
                text.contents,
                text.references,
                derivation_outputs,
            )
            .map_err(access_error)?;
        if texts.len() >= TEXT_BATCH_SIZE {
            texts.flush(&self.store).map_err(access_error)?;
        }
        Ok(path)
    }
}

impl EvalStore for LocalEvalStore {
    fn store_dir(&self) -> &StoreDir {
        &self.dir
    }

    fn add_text(&self, text: StoreText<'_>) -> Result<StorePath, StoreAccessError> {
        self.write_text(text, BTreeMap::new())
    }

    fn add_derivation(
        &self,
        text: StoreText<'_>,
        outputs: &BTreeMap<String, StorePath>,
    ) -> Result<StorePath, StoreAccessError> {
        self.write_text(text, outputs.clone())
    }

    fn read_store_file(&self, path: &StorePath) -> Option<Vec<u8>> {
        let known = self.texts.borrow().contains(path) || self.store.is_valid(path).ok()?;
        if !known {
            return None;
        }
        std::fs::read(self.store.physical_path(path)).ok()
    }

    fn references(&self, path: &StorePath) -> Option<BTreeSet<StorePath>> {
        match self.texts.borrow().references(path) {
            Some(pending) => Some(pending.clone()),
            None if self.store.is_valid(path).ok()? => self.store.references(path).ok(),
            None => None,
        }
    }

    fn add_path(
        &self,
        request: PathToAdd<'_>,
        filter: Option<PathFilter<'_>>,
    ) -> Result<StorePath, AddPathError> {
        // A source inside the logical store directory is read where it physically lives.
        let physical_source = self.physical_location(request.source);
        let source = physical_source.as_deref().unwrap_or(request.source);
        let request = PathToAdd { source, ..request };
        let name = request.name;
        let method_ca = content_address_method(request.method);
        let expected = expected_path(&self.dir, name, method_ca, request.expected_sha256)?;
        if let Some(expected) = &expected {
            if self.store.is_valid(expected).map_err(access_error)? {
                return Ok(expected.clone());
            }
        }
        let path = with_source_cache(&self.sources, request, filter, |filter| {
            let path = match filter {
                Some(filter) => {
                    let mut adapted = nar_filter(filter);
                    let staged =
                        stage_copy(&self.store, name, source, method_ca, Some(&mut adapted))
                            .map_err(add_path_error)?;
                    let path = source_path(&self.dir, name, method_ca, &staged.content_hash)?;
                    commit_copy(&self.store, staged, &path, method_ca).map_err(add_path_error)?;
                    path
                }
                None => {
                    let hash = content_hash(source, method_ca, None).map_err(content_hash_error)?;
                    let path = source_path(&self.dir, name, method_ca, &hash)?;
                    if !self.store.is_valid(&path).map_err(access_error)? {
                        let staged = stage_copy(&self.store, name, source, method_ca, None)
                            .map_err(add_path_error)?;
                        if staged.content_hash != hash {
                            return Err(add_path_error(StoreFilesError::SourceChanged {
                                path: source.to_owned(),
                                expected: hash.to_sri(),
                                actual: staged.content_hash.to_sri(),
                            }));
                        }
                        commit_copy(&self.store, staged, &path, method_ca)
                            .map_err(add_path_error)?;
                    }
                    path
                }
            };
            Ok(path)
        })?;
        match expected {
            Some(expected) if expected != path => Err(mismatch_error(source)),
            _ => Ok(path),
        }
    }
}

/// Dropping registers what is still pending, for callers that return early on an error path
/// (every caller that goes on flushes first and sees the error). An error here is not
/// reported — the caller is already reporting the first one — and texts it could not register
/// stay invalid, as if never written, until the garbage collector removes them.
impl Drop for LocalEvalStore {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests;
