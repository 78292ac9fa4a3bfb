//! kiln-remote: builds on a Remote Execution API (REAPI v2) cluster.
//!
//! - [`client`]: the executor `realise --remote` uses: capabilities check, ActionCache
//!   lookup, uploads of what the server lacks, `Execute`, outputs back as NARs (it implements
//!   the builder's [`kiln_builder::remote::RemoteBuilder`] hook, so registration is the local
//!   build's);
//! - [`action`]: a derivation as an `Action` (its input closure as NAR blobs) and the manifest;
//! - [`cas`]: the content-addressable storage (batches and ByteStream);
//! - [`blob_cache`]: the worker's bounded cache of input blobs;
//! - [`connection`]: the gRPC channel and its bearer token;
//! - [`runner`]: what the `Command` runs on the worker (`kiln remote-run-action`);
//! - [`worker`]: kiln's own bot for the Remote Workers API that BuildGrid serves
//!   (`kiln remote-worker`), with the protocol's messages in [`bots`].
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
use std::path::PathBuf;

pub mod action;
pub mod blob_cache;
pub mod bots;
pub mod cas;
pub mod client;
pub mod connection;
pub mod runner;
pub mod worker;

/// What went wrong talking to a REAPI server or handling what it sent.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach the remote executor {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the remote executor answered {}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("the remote executor {0}")]
    Protocol(String),
    #[error("the CAS lacks blob {0}")]
    MissingBlob(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] kiln_local_store::LocalStoreError),
}

impl RemoteError {
    /// Whether the failure is the cluster's, not the build's: worth a retry, and then a local
    /// build.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            RemoteError::Connect { .. } | RemoteError::MissingBlob(_) => true,
            RemoteError::Rpc(status) => matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::NotFound
                    // An action whose inputs the CAS lost meanwhile, or a worker that could
                    // not fetch them: upload and execute again.
                    | tonic::Code::FailedPrecondition
            ),
            RemoteError::Protocol(_) => true,
            RemoteError::Config(_) | RemoteError::Io { .. } | RemoteError::Store(_) => false,
        }
    }
}
