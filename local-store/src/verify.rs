//! Store verification: every valid path must exist on disk, and (when contents are checked)
//! its NAR serialisation must still have the hash and size the database recorded.
//! Verification only reports; it changes nothing.
use std::io;

use super::error::{LocalStoreError, Result};
use super::LocalStore;
use kiln_store::hash::Hash;
use kiln_store::nar::{self, HashingSink};
use kiln_store::store_path::StorePath;

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

/// The findings of [`LocalStore::verify`].
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

impl LocalStore {
    /// Checks that every valid path exists; with `check_contents`, also that its NAR
    /// serialisation still has the recorded hash and size.
    pub fn verify(&self, check_contents: bool) -> Result<VerifyReport> {
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
            if !check_contents {
                continue;
            }
            // Valid paths are not deleted while verifying unless a collection runs; a path
            // that vanished is reported by the next run.
            let Some(info) = self.query_path_info(&path)? else {
                continue;
            };
            let mut sink = HashingSink::new(info.nar_hash.algo());
            nar::dump_object(&physical, &mut sink)?;
            let (actual_hash, actual_size) = sink.finish();
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
