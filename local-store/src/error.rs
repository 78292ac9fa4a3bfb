//! The error type of the local store: database, file-system and consistency failures, each
//! phrased for the user with the path it concerns.
use std::io;
use std::path::PathBuf;

use kiln_store::path_io_error::PathIoError;

/// Everything that can go wrong in the local store.
#[derive(Debug, thiserror::Error)]
pub enum LocalStoreError {
    /// SQLite refused a statement (after the busy timeout, if another process held the lock).
    #[error("store database {db}: {source}")]
    Database {
        db: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] PathIoError),
    /// Serialising a store object as a NAR (to hash it) failed.
    #[error(transparent)]
    Nar(#[from] kiln_store::nar::DumpError),
    /// The operation needs a valid path and the database does not list it.
    #[error("path `{0}` is not valid in the store")]
    InvalidPath(String),
    /// Registration would create a reference to a path that is neither valid nor in the batch.
    #[error("cannot register `{path}`: its reference `{reference}` is not valid")]
    InvalidReference { path: String, reference: String },
    /// Invalidation would leave a valid path referring to an invalid one.
    #[error("cannot invalidate `{path}`: it is still referenced by `{referrer}`")]
    PathInUse { path: String, referrer: String },
    /// The database was written by a newer kiln.
    #[error("the store database {db} has schema version {found}; this kiln understands up to {supported}")]
    SchemaTooNew {
        db: PathBuf,
        found: i64,
        supported: i64,
    },
    /// A realisation names another path for an output that already has one.
    #[error("cannot register the realisation of `{id}` at `{path}`: this store already realised it at `{existing}`")]
    RealisationConflict {
        id: String,
        path: String,
        existing: String,
    },
    /// A realisation depends on a realisation this store does not have (or has elsewhere).
    #[error("cannot register the realisation of `{id}`: it depends on `{dependency}`, which this store {problem}")]
    RealisationDependency {
        id: String,
        dependency: String,
        problem: &'static str,
    },
    /// A row that the schema's own constraints should have prevented.
    #[error("corrupt store database {db}: {detail}")]
    Corrupt { db: PathBuf, detail: String },
}

impl LocalStoreError {
    /// An [`LocalStoreError::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LocalStoreError::Io(PathIoError::new(action, path, source))
    }
}

/// Shorthand for results of the local store.
pub type Result<T, E = LocalStoreError> = std::result::Result<T, E>;
