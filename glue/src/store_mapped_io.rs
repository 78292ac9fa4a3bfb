//! [`StoreMappedIo`]: the evaluator's file access with the logical store directory mapped to
//! where the store physically is (docs/architecture.md, "Stores: logical and physical"), so
//! that what an evaluation put into the store — `builtins.fetchTarball`'s tree,
//! `builtins.fetchurl`'s file — can be imported and read as Nix reads its own store
//! (`import (builtins.fetchTarball url)`). Paths outside the logical store directory are read
//! as they are; messages name the logical path.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_eval::{EvalIo, FileType, StdIo};

/// Reads the real file system, with `logical/…` served from `physical/…`.
pub struct StoreMappedIo {
    logical: PathBuf,
    physical: PathBuf,
    inner: StdIo,
}

impl StoreMappedIo {
    /// Maps the logical store directory `logical` (e.g. `/kiln/store`) to `physical`
    /// (`ROOT/store`).
    pub fn new(logical: impl Into<PathBuf>, physical: impl Into<PathBuf>) -> StoreMappedIo {
        StoreMappedIo {
            logical: logical.into(),
            physical: physical.into(),
            inner: StdIo,
        }
    }

    /// Where `path` is read from.
    fn located(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.logical) {
            Ok(rest) if rest.as_os_str().is_empty() => self.physical.clone(),
            Ok(rest) => self.physical.join(rest),
            Err(_) => path.to_owned(),
        }
    }

    /// The logical store directory always exists (`builtins.pathExists builtins.storeDir`),
    /// even before anything was put in the physical store.
    fn store_dir_itself(&self, path: &Path) -> Option<FileType> {
        (path == self.logical).then_some(FileType::Directory)
    }

    /// A message about the physical location, phrased with the logical path the user wrote.
    fn logical_message(&self, message: String) -> String {
        let (Some(physical), Some(logical)) = (self.physical.to_str(), self.logical.to_str())
        else {
            return message;
        };
        message.replace(physical, logical)
    }
}

impl EvalIo for StoreMappedIo {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.inner
            .read_file(&self.located(path))
            .map_err(|message| self.logical_message(message))
    }

    fn read_dir(&self, path: &Path) -> Result<BTreeMap<Vec<u8>, FileType>, String> {
        self.inner
            .read_dir(&self.located(path))
            .map_err(|message| self.logical_message(message))
    }

    fn file_type(&self, path: &Path) -> Option<FileType> {
        self.inner
            .file_type(&self.located(path))
            .or_else(|| self.store_dir_itself(path))
    }

    fn entry_type(&self, path: &Path) -> Option<FileType> {
        self.inner
            .entry_type(&self.located(path))
            .or_else(|| self.store_dir_itself(path))
    }

    fn get_env(&self, name: &str) -> Option<Vec<u8>> {
        self.inner.get_env(name)
    }

    fn current_time(&self) -> i64 {
        self.inner.current_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths_are_read_from_the_physical_store() {
        let tmp = tempfile::tempdir().unwrap();
        let physical = tmp.path().join("store");
        std::fs::create_dir_all(physical.join("abc-src/sub")).unwrap();
        std::fs::write(physical.join("abc-src/sub/f"), "text").unwrap();
        let io = StoreMappedIo::new("/kiln/store", &physical);
        assert_eq!(
            io.read_file(Path::new("/kiln/store/abc-src/sub/f"))
                .unwrap(),
            b"text"
        );
        assert_eq!(
            io.file_type(Path::new("/kiln/store/abc-src")),
            Some(FileType::Directory)
        );
        assert_eq!(
            io.read_dir(Path::new("/kiln/store/abc-src"))
                .unwrap()
                .into_keys()
                .collect::<Vec<_>>(),
            [b"sub".to_vec()]
        );
        let missing = io
            .read_file(Path::new("/kiln/store/abc-src/missing"))
            .unwrap_err();
        assert_eq!(
            missing,
            "opening file '/kiln/store/abc-src/missing': No such file or directory"
        );
        // Outside the store nothing is mapped; `/kiln/storey` is not inside `/kiln/store`.
        assert_eq!(io.file_type(Path::new("/kiln/storey/abc-src")), None);
        assert_eq!(
            io.file_type(tmp.path()),
            Some(FileType::Directory),
            "host paths are read as they are"
        );
    }

    #[test]
    fn the_store_directory_exists_before_the_physical_store_does() {
        let tmp = tempfile::tempdir().unwrap();
        let io = StoreMappedIo::new("/kiln/store", tmp.path().join("not-yet"));
        assert_eq!(
            io.file_type(Path::new("/kiln/store")),
            Some(FileType::Directory)
        );
        assert_eq!(io.entry_type(Path::new("/kiln/store/abc-x")), None);
    }
}
