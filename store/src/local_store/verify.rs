//! Store verification: every valid path must exist on disk, and (when contents are checked)
//! its NAR serialisation must still have the hash and size the database recorded.
//! Verification only reports; it changes nothing.
use std::io;
use std::path::Path;

use super::error::{LocalStoreError, Result};
use super::LocalStore;
use crate::hash::Hash;
use crate::store_path::StorePath;

/// A valid path whose contents no longer match the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashMismatch {
    pub path: StorePath,
    /// NAR hash recorded at registration.
    pub expected_hash: Hash,
    /// NAR hash of what is on disk now (same algorithm).
    pub actual_hash: Hash,
    pub expected_size: u64,
    pub actual_size: u64,
}

/// The findings of [`LocalStore::verify_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many valid paths were examined.
    pub checked: usize,
    /// Valid paths with nothing at their physical location.
    pub missing: Vec<StorePath>,
    /// Valid paths whose contents changed (only filled when contents are checked).
    pub hash_mismatches: Vec<HashMismatch>,
}

impl VerifyReport {
    /// Whether the store is consistent.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.hash_mismatches.is_empty()
    }
}

/// Computes the NAR hash (with the given algorithm) and NAR size of the file tree at a
/// physical path.
pub type NarHasher<'a> = &'a dyn Fn(&Path, crate::hash::HashAlgo) -> io::Result<(Hash, u64)>;

impl LocalStore {
    /// Checks that every valid path exists; with `nar_hasher`, also that its contents still
    /// have the recorded NAR hash and size.
    pub fn verify_with(&self, nar_hasher: Option<NarHasher<'_>>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for path in self.valid_paths()? {
            report.checked += 1;
            let physical = self.physical_path(&path);
            match std::fs::symlink_metadata(&physical) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    report.missing.push(path);
                    continue;
                }
                Err(e) => return Err(LocalStoreError::io("cannot stat", physical, e)),
            }
            let Some(hasher) = nar_hasher else {
                continue;
            };
            // Valid paths are not deleted while verifying unless a collection runs; a path
            // that vanished is reported by the next run.
            let Some(info) = self.query_path_info(&path)? else {
                continue;
            };
            let (actual_hash, actual_size) = hasher(&physical, info.nar_hash.algo())
                .map_err(|e| LocalStoreError::io("cannot hash contents of", &physical, e))?;
            if actual_hash != info.nar_hash || actual_size != info.nar_size {
                report.hash_mismatches.push(HashMismatch {
                    path,
                    expected_hash: info.nar_hash,
                    actual_hash,
                    expected_size: info.nar_size,
                    actual_size,
                });
            }
        }
        Ok(report)
    }
}
