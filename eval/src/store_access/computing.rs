//! [`ComputingStore`]: an [`EvalStore`] that computes every path exactly as Nix would but
//! writes nothing, for `kiln eval` and read-only evaluation.
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use kiln_store::content_address::content_hash;
use kiln_store::store_path::{StoreDir, StorePath};

use super::source_ingestion::{
    access_error, content_address_method, content_hash_error, expected_path, mismatch_error,
    nar_filter, source_path, with_source_cache, SourceCache,
};
use super::{AddPathError, EvalStore, PathFilter, PathToAdd, StoreAccessError, StoreText};

/// Computes store paths for the logical store directory; never touches a store. The texts
/// of `builtins.toFile` are kept in memory, so that the evaluation can read and import what
/// it "wrote" (as Nix can after writing them).
pub struct ComputingStore {
    dir: StoreDir,
    sources: SourceCache,
    texts: RefCell<HashMap<StorePath, Rc<[u8]>>>,
    /// The references of the texts that have any.
    text_references: RefCell<HashMap<StorePath, BTreeSet<StorePath>>>,
}

impl ComputingStore {
    pub fn new(dir: StoreDir) -> ComputingStore {
        ComputingStore {
            dir,
            sources: SourceCache::default(),
            texts: RefCell::new(HashMap::new()),
            text_references: RefCell::new(HashMap::new()),
        }
    }

    fn text_path(&self, text: StoreText<'_>) -> Result<StorePath, StoreAccessError> {
        self.dir
            .make_text_path(text.name, text.contents, text.references)
            .map_err(access_error)
    }
}

impl EvalStore for ComputingStore {
    fn store_dir(&self) -> &StoreDir {
        &self.dir
    }

    fn add_text(&self, text: StoreText<'_>) -> Result<StorePath, StoreAccessError> {
        let path = self.text_path(text)?;
        self.texts
            .borrow_mut()
            .entry(path.clone())
            .or_insert_with(|| Rc::from(text.contents));
        if !text.references.is_empty() {
            self.text_references
                .borrow_mut()
                .insert(path.clone(), text.references.clone());
        }
        Ok(path)
    }

    /// `.drv` texts are not kept: there can be many, and nothing reads them back.
    fn add_derivation(
        &self,
        text: StoreText<'_>,
        _outputs: &BTreeMap<String, StorePath>,
    ) -> Result<StorePath, StoreAccessError> {
        self.text_path(text)
    }

    fn read_store_file(&self, path: &StorePath) -> Option<Vec<u8>> {
        self.texts.borrow().get(path).map(|text| text.to_vec())
    }

    fn references(&self, path: &StorePath) -> Option<BTreeSet<StorePath>> {
        if !self.texts.borrow().contains_key(path) {
            return None;
        }
        Some(
            self.text_references
                .borrow()
                .get(path)
                .cloned()
                .unwrap_or_default(),
        )
    }

    fn add_path(
        &self,
        request: PathToAdd<'_>,
        filter: Option<PathFilter<'_>>,
    ) -> Result<StorePath, AddPathError> {
        let PathToAdd { name, source, .. } = request;
        let method_ca = content_address_method(request.method);
        let expected = expected_path(&self.dir, name, method_ca, request.expected_sha256)?;
        let path = with_source_cache(&self.sources, request, filter, |filter| {
            let hash = match filter {
                Some(filter) => {
                    let mut adapted = nar_filter(filter);
                    content_hash(source, method_ca, Some(&mut adapted))
                }
                None => content_hash(source, method_ca, None),
            }
            .map_err(content_hash_error)?;
            Ok(source_path(&self.dir, name, method_ca, &hash)?)
        })?;
        match expected {
            Some(expected) if expected != path => Err(mismatch_error(source)),
            _ => Ok(path),
        }
    }
}
