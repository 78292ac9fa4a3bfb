//! [`PathIoError`]: a file-system error with what kiln was doing and the path it concerns —
//! the one shape the I/O errors of the store, the local store and the builder take, printed
//! as Nix prints them (`cannot open '/nix/store/…': No such file or directory`).
use std::io;
use std::path::{Path, PathBuf};

/// An I/O error on `path` while doing `action`.
#[derive(Debug, thiserror::Error)]
#[error("{action} '{path}': {source}")]
pub struct PathIoError {
    /// What kiln was doing, e.g. "cannot open".
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl PathIoError {
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> PathIoError {
        PathIoError {
            action,
            path: path.into(),
            source,
        }
    }

    /// The error for `map_err`: `fs::read(p).map_err(PathIoError::at("cannot read", p))?`.
    pub fn at<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> PathIoError + 'a {
        move |source| PathIoError::new(action, path, source)
    }
}
