//! The evaluator's downloader: [`StoreFetcher`] implements `builtins.fetchurl` and
//! `builtins.fetchTarball`'s side effects over the local store, with the builder's HTTP fetch
//! (retries, proxies, the configuration's `[[rewrite]]` rules) and its tar unpacker.
//!
//! A fetch works in a scratch directory under the store root (see
//! `kiln_builder::build_dirs`): the download lands there, a tarball is unpacked next to it and
//! must hold exactly one top-level entry (as in Nix), and what is kept is copied into the store
//! under the path its content hash gives (flat sha256 for a file, NAR sha256 for a tarball's
//! tree, the names Nix gives), registered and protected by a temporary root for the rest of
//! the process. A pinned path that the store already holds is returned without any download.
//!
//! A download may be shown (the command line shows a byte bar on a terminal) through a
//! [`DownloadDisplay`]; without one nothing is shown. The store is opened on the first fetch,
//! so `kiln eval` stays read-only unless an expression downloads something; a store that
//! cannot be opened for writing is a clear error then.
use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_builder::build_dirs::ScratchDir;
use kiln_builder::builtin_builders::{
    fetch, unpack_archive, FetchError, FetchOptions, FetchRequest, OutputHashMode,
    ProgressCallback, UnpackError, UnpackOptions,
};
use kiln_eval::store_access::{EvalFetcher, FetchKind, FetchSpec, FetchedPath, StoreAccessError};
use kiln_local_store::store_files::{commit_copy, stage_copy, StoreFilesError};
use kiln_local_store::{LocalStore, LocalStoreError};
use kiln_store::hash::{Hash, HashAlgo};
use kiln_store::store_path::{ContentAddressMethod, StorePath, StorePathError};

/// Why an evaluation-time fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalFetchError {
    #[error("cannot download '{url}': downloads need a writable store, and {reason}")]
    NoStore { url: String, reason: String },
    #[error("cannot make a scratch directory for '{url}' under {root}: {source}")]
    Scratch {
        url: String,
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unable to download '{url}': {reason}")]
    Download { url: String, reason: String },
    #[error("cannot unpack the tarball downloaded from '{url}': {source}")]
    Unpack {
        url: String,
        #[source]
        source: UnpackError,
    },
    #[error("tarball '{url}' contains an unexpected number of top-level files")]
    TopLevel { url: String },
    #[error("cannot read the unpacked tarball from '{url}': {source}")]
    ReadUnpacked {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot add the download from '{url}' to the store: {source}")]
    AddToStore {
        url: String,
        #[source]
        source: StoreFilesError,
    },
    #[error(transparent)]
    Store(#[from] LocalStoreError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
}

/// Opens the store on the first download; the error says why it cannot be opened.
pub type StoreOpener = Box<dyn Fn() -> Result<LocalStore, String>>;

/// How the store is reached: opened on first use, or handed over by a command that has it open.
enum StoreSource {
    Lazy {
        open: StoreOpener,
        store: OnceCell<Result<Arc<LocalStore>, String>>,
    },
    Open(Arc<LocalStore>),
}

/// A download being shown: `progress` receives the byte counts, `finish` clears the display.
pub struct DownloadBar {
    pub progress: ProgressCallback,
    pub finish: Box<dyn FnOnce()>,
}

/// Starts showing the download of the named store object, or shows nothing (`None`).
pub type DownloadDisplay = Box<dyn Fn(&str) -> Option<DownloadBar>>;

/// Downloads into the local store for the evaluator (see the module doc).
pub struct StoreFetcher {
    source: StoreSource,
    options: FetchOptions,
    display: Option<DownloadDisplay>,
}

impl StoreFetcher {
    /// A fetcher that opens the store with `open` when it first downloads.
    pub fn lazy(open: StoreOpener, options: FetchOptions) -> StoreFetcher {
        StoreFetcher {
            source: StoreSource::Lazy {
                open,
                store: OnceCell::new(),
            },
            options,
            display: None,
        }
    }

    /// A fetcher over a store the command already has open.
    pub fn over(store: Arc<LocalStore>, options: FetchOptions) -> StoreFetcher {
        StoreFetcher {
            source: StoreSource::Open(store),
            options,
            display: None,
        }
    }

    /// Shows each download through `display`.
    pub fn with_display(mut self, display: DownloadDisplay) -> StoreFetcher {
        self.display = Some(display);
        self
    }

    fn store(&self, url: &str) -> Result<&Arc<LocalStore>, EvalFetchError> {
        match &self.source {
            StoreSource::Open(store) => Ok(store),
            StoreSource::Lazy { open, store } => store
                .get_or_init(|| open().map(Arc::new))
                .as_ref()
                .map_err(|reason| EvalFetchError::NoStore {
                    url: url.to_owned(),
                    reason: reason.clone(),
                }),
        }
    }

    /// Runs one fetch (see [`EvalFetcher::fetch`]).
    pub fn fetch_into_store(&self, spec: &FetchSpec<'_>) -> Result<FetchedPath, EvalFetchError> {
        let store = self.store(spec.url)?;
        let method = match spec.kind {
            FetchKind::File => ContentAddressMethod::Flat,
            FetchKind::Tarball => ContentAddressMethod::Recursive,
        };
        if let Some(digest) = spec.expected_sha256 {
            if let Some(hash) = Hash::from_digest(HashAlgo::Sha256, &digest) {
                let pinned = fixed_path(store, method, &hash, spec.name)?;
                if store.is_valid(&pinned)? {
                    store.add_temp_root(&pinned)?;
                    return Ok(FetchedPath {
                        path: pinned,
                        sha256: digest,
                    });
                }
            }
        }
        let scratch = ScratchDir::create(store.root(), "kiln-fetch").map_err(|source| {
            EvalFetchError::Scratch {
                url: spec.url.to_owned(),
                root: store.root().to_owned(),
                source,
            }
        })?;
        let download = scratch.path().join("download");
        let request = FetchRequest {
            urls: vec![spec.url.to_owned()],
            expected: Hash::zero(HashAlgo::Sha256),
            verify: false,
            mode: OutputHashMode::Flat,
            executable: false,
            unpack: false,
        };
        let mut options = self.options.clone();
        let bar = self.display.as_ref().and_then(|display| display(spec.name));
        let finish = bar.map(|bar| {
            options.progress = Some(bar.progress);
            bar.finish
        });
        let fetched = fetch(&request, &download, &options);
        if let Some(finish) = finish {
            finish();
        }
        fetched.map_err(|error| EvalFetchError::Download {
            url: spec.url.to_owned(),
            reason: download_failure(error),
        })?;
        let source = match spec.kind {
            FetchKind::File => download,
            FetchKind::Tarball => {
                unpack_tarball(&download, &scratch.path().join("unpacked"), spec.url)?
            }
        };
        let add_error = |source| EvalFetchError::AddToStore {
            url: spec.url.to_owned(),
            source,
        };
        let staged = stage_copy(store, spec.name, &source, method, None).map_err(add_error)?;
        let hash = staged.content_hash;
        let path = fixed_path(store, method, &hash, spec.name)?;
        commit_copy(store, staged, &path, method).map_err(add_error)?;
        store.add_temp_root(&path)?;
        let mut sha256 = [0u8; 32];
        // Staged copies are hashed with sha256: 32 bytes.
        sha256.copy_from_slice(hash.as_bytes());
        Ok(FetchedPath { path, sha256 })
    }
}

/// Why a download of one URL failed, without repeating the URL.
fn download_failure(error: FetchError) -> String {
    match error {
        FetchError::AllUrlsFailed(mut failures) if failures.len() == 1 => failures.remove(0).reason,
        other => other.to_string(),
    }
}

/// The fixed-output path of content with `hash` added by `method` under `name`.
fn fixed_path(
    store: &LocalStore,
    method: ContentAddressMethod,
    hash: &Hash,
    name: &str,
) -> Result<StorePath, StorePathError> {
    store
        .store_dir()
        .make_fixed_output_path(method, hash, name, &BTreeSet::new(), false)
}

/// Unpacks `archive` into `into` and returns its single top-level entry.
fn unpack_tarball(archive: &Path, into: &Path, url: &str) -> Result<PathBuf, EvalFetchError> {
    unpack_archive(archive, None, 0, into, &UnpackOptions::default()).map_err(|source| {
        EvalFetchError::Unpack {
            url: url.to_owned(),
            source,
        }
    })?;
    let read_error = |source| EvalFetchError::ReadUnpacked {
        url: url.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(into).map_err(read_error)?;
    let first = entries.next().transpose().map_err(read_error)?;
    match (first, entries.next()) {
        (Some(only), None) => Ok(only.path()),
        _ => Err(EvalFetchError::TopLevel {
            url: url.to_owned(),
        }),
    }
}

impl EvalFetcher for StoreFetcher {
    fn fetch(&self, spec: &FetchSpec<'_>) -> Result<FetchedPath, StoreAccessError> {
        self.fetch_into_store(spec)
            .map_err(StoreAccessError::caused_by)
    }
}
