//! kiln-glue: where the evaluator meets the store on this machine (docs/architecture.md,
//! "Evaluator and store"). The evaluator knows only its `EvalStore`, `EvalFetcher` and `EvalIo`
//! traits; this crate implements them over the local store and the builder's fetch and unpack
//! code:
//!
//! - [`LocalEvalStore`]: writes `toFile` texts, `.drv` files and source copies into a
//!   [`LocalStore`](kiln_local_store::LocalStore) and registers them (`kiln instantiate`,
//!   `kiln realise`);
//! - [`StoreFetcher`]: `builtins.fetchurl` and `builtins.fetchTarball` into the local store;
//! - [`StoreMappedIo`]: file access that reads the logical store directory where the store
//!   physically is, so an expression can import what evaluation fetched.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]
pub mod fetch;
pub mod local_eval_store;
pub mod store_mapped_io;

pub use fetch::{DownloadBar, DownloadDisplay, EvalFetchError, StoreFetcher, StoreOpener};
pub use local_eval_store::{LocalEvalStore, TEXT_BATCH_SIZE};
pub use store_mapped_io::StoreMappedIo;
