//! The evaluator's only window on the store (docs/architecture.md, "Crates"): compute or add
//! text files, sources and `.drv` files. `kiln eval` runs with an implementation that only
//! computes paths; `kiln instantiate` with one that also writes them under the physical store
//! root. Store paths cross this boundary typed ([`StorePath`], printed against
//! [`EvalStore::store_dir`] only where they become Nix strings).
//!
//! [`ComputingStore`] (in `computing`) is the implementation that writes nothing; the one
//! that writes into the local store lives in `kiln-glue`. Both build on `source_ingestion`.
pub mod computing;
pub mod source_ingestion;

pub use computing::ComputingStore;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kiln_store::store_path::{StoreDir, StorePath};

/// How a host path is ingested into the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IngestionMethod {
    /// The file's bytes (`outputHashMode = "flat"`); only for regular files.
    Flat,
    /// The NAR serialisation of the file tree (path literals, `builtins.path` by default).
    Recursive,
}

/// The kind of a directory entry, as `builtins.filterSource`'s filter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    Directory,
    Symlink,
    Unknown,
}

impl EntryKind {
    /// The string Nix passes to a filter function: "regular", "directory", "symlink", "unknown".
    pub fn as_nix_str(self) -> &'static str {
        match self {
            EntryKind::Regular => "regular",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
            EntryKind::Unknown => "unknown",
        }
    }
}

/// An error from the store side, already phrased for the user, with the error that caused it
/// (its source chain is kept for `{:#}` and for callers that look at it).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreAccessError(Box<dyn std::error::Error + Send + Sync>);

impl StoreAccessError {
    /// An error that is only a message.
    pub fn new(message: impl Into<String>) -> StoreAccessError {
        StoreAccessError(message.into().into())
    }

    /// An error that is `cause` (its message and its sources).
    pub fn caused_by(cause: impl std::error::Error + Send + Sync + 'static) -> StoreAccessError {
        StoreAccessError(Box::new(cause))
    }
}

/// Returned by a filter to stop the walk; the filter keeps the reason (an evaluation error
/// inside a Nix filter function) itself and reports it once `add_path` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterAborted;

/// A filter deciding, for each entry below the root being added, whether it is kept.
pub type PathFilter<'a> = &'a mut dyn FnMut(&Path, EntryKind) -> Result<bool, FilterAborted>;

/// A text file for the store (`builtins.toFile`, a `.drv` file): its path is computed from
/// its name, contents and references.
#[derive(Clone, Copy, Debug)]
pub struct StoreText<'a> {
    pub name: &'a str,
    pub contents: &'a [u8],
    pub references: &'a BTreeSet<StorePath>,
}

/// A host path to copy into the store (path literals, `builtins.path`, `filterSource`).
#[derive(Clone, Copy, Debug)]
pub struct PathToAdd<'a> {
    /// The store path's name.
    pub name: &'a str,
    /// The host file or directory.
    pub source: &'a Path,
    pub method: IngestionMethod,
    /// The content hash (raw sha256 bytes) the copy must have, when one was given.
    pub expected_sha256: Option<[u8; 32]>,
}

/// Why `add_path` failed.
#[derive(Debug, thiserror::Error)]
pub enum AddPathError {
    #[error(transparent)]
    Store(#[from] StoreAccessError),
    #[error("the path filter stopped the copy")]
    FilterAborted,
}

/// What the evaluator needs from a store. Object safe: the evaluator holds an `Rc<dyn EvalStore>`.
pub trait EvalStore {
    /// The logical store directory hashed into paths, e.g. `/nix/store`.
    fn store_dir(&self) -> &StoreDir;

    /// A text file in the store (`builtins.toFile`, `.drv` files): computes its path from the
    /// name, contents and references, writes it unless read-only, and returns the path.
    fn add_text(&self, text: StoreText<'_>) -> Result<StorePath, StoreAccessError>;

    /// A `.drv` file: like `add_text`, and a writing store also records `outputs` (output
    /// name → output path) for the derivation.
    fn add_derivation(
        &self,
        text: StoreText<'_>,
        outputs: &BTreeMap<String, StorePath>,
    ) -> Result<StorePath, StoreAccessError> {
        let _ = outputs;
        self.add_text(text)
    }

    /// The contents of the store file `path` if this store holds it — `.drv` files of earlier evaluations that an expression refers to. Stores that only
    /// compute paths hold nothing.
    fn read_store_file(&self, path: &StorePath) -> Option<Vec<u8>> {
        let _ = path;
        None
    }

    /// The references of the store object `path` when this store knows it: `readFile` of a store file has them as its context, as in Nix, so a
    /// build that uses what it read also gets what that refers to.
    fn references(&self, path: &StorePath) -> Option<BTreeSet<StorePath>> {
        let _ = path;
        None
    }

    /// Copies `source` into the store under `name` (path literals, `builtins.path`,
    /// `filterSource`), keeping only entries the filter accepts; with `expected_sha256`
    /// (raw 32 bytes) the content hash must match. Returns the store path. Implementations
    /// cache unfiltered copies by source path, so a path literal used many times is hashed once.
    fn add_path(
        &self,
        path: PathToAdd<'_>,
        filter: Option<PathFilter<'_>>,
    ) -> Result<StorePath, AddPathError>;
}

/// What `builtins.fetchurl` and `builtins.fetchTarball` download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchKind {
    /// A file, added flat (`builtins.fetchurl`).
    File,
    /// A tarball, unpacked; its single top-level directory is added recursively
    /// (`builtins.fetchTarball`).
    Tarball,
}

/// One evaluation-time download.
#[derive(Clone, Copy, Debug)]
pub struct FetchSpec<'a> {
    pub kind: FetchKind,
    pub url: &'a str,
    /// The store path's name.
    pub name: &'a str,
    /// The pinned sha256 (raw 32 bytes): flat for a file, of the NAR for a tarball.
    pub expected_sha256: Option<[u8; 32]>,
}

/// A download that is in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedPath {
    /// Where it is.
    pub path: StorePath,
    /// The sha256 of what was added (flat for a file, of the NAR for a tarball). When the
    /// pinned path was valid already, this is the pinned hash and nothing was downloaded.
    pub sha256: [u8; 32],
}

/// Downloads at evaluation time into a writable store (the evaluator knows no HTTP:
/// docs/architecture.md, "Crates"; the command line injects an implementation through
/// `EvalOptions::fetcher`).
pub trait EvalFetcher {
    /// Fetches `spec` and adds it to the store under the path its content hash gives. With
    /// `expected_sha256` set and the pinned path already valid, nothing is downloaded. The
    /// caller compares `sha256` with the pinned hash.
    fn fetch(&self, spec: &FetchSpec<'_>) -> Result<FetchedPath, StoreAccessError>;
}
