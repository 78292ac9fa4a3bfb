//! [`ComputingStore`]: an [`EvalStore`] that computes every path exactly as Nix would but
//! writes nothing, for `kiln eval` and read-only evaluation.
use std::collections::BTreeSet;
use std::path::Path;

use kiln_store::store_files::content_hash;
use kiln_store::store_path::StoreDir;

use super::{
    access_error, add_path_error, content_address_method, expected_path, mismatch_error,
    nar_filter, parse_references, source_path, with_source_cache, SourceCache,
};
use crate::store_access::{AddPathError, EvalStore, IngestionMethod, PathFilter, StoreAccessError};

/// Computes store paths for the logical store directory; never touches a store.
pub struct ComputingStore {
    dir: StoreDir,
    sources: SourceCache,
}

impl ComputingStore {
    pub fn new(dir: StoreDir) -> ComputingStore {
        ComputingStore {
            dir,
            sources: SourceCache::default(),
        }
    }
}

impl EvalStore for ComputingStore {
    fn store_dir(&self) -> &str {
        self.dir.as_str()
    }

    fn add_text(
        &self,
        name: &str,
        contents: &[u8],
        references: &BTreeSet<String>,
    ) -> Result<String, StoreAccessError> {
        let references = parse_references(&self.dir, references)?;
        let path = self
            .dir
            .make_text_path(name, contents, &references)
            .map_err(access_error)?;
        Ok(self.dir.print(&path))
    }

    fn add_path(
        &self,
        name: &str,
        source: &Path,
        method: IngestionMethod,
        filter: Option<PathFilter<'_>>,
        expected_sha256: Option<[u8; 32]>,
    ) -> Result<String, AddPathError> {
        let method_ca = content_address_method(method);
        let expected = expected_path(&self.dir, name, method_ca, expected_sha256)?;
        let path = with_source_cache(&self.sources, name, source, method, filter, |filter| {
            let hash = match filter {
                Some(filter) => {
                    let mut adapted = nar_filter(filter);
                    content_hash(source, method_ca, Some(&mut adapted))
                }
                None => content_hash(source, method_ca, None),
            }
            .map_err(add_path_error)?;
            let path = source_path(&self.dir, name, method_ca, &hash)?;
            Ok(self.dir.print(&path))
        })?;
        match expected {
            Some(expected) if self.dir.print(&expected) != path => Err(mismatch_error(source)),
            _ => Ok(path),
        }
    }
}
