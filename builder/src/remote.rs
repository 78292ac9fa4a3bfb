//! The hook through which a build runs on another machine (a remote execution cluster).
//!
//! The builder knows no network protocol: a [`RemoteBuilder`] (kiln-remote's REAPI client)
//! is handed a build after its outputs are locked, its input closure is protected and its log
//! is open, and writes each output at the host path it is given. Everything after that is the
//! local build's own code: canonicalisation, reference scan, NAR hash, fixed-output checks and
//! registration in one transaction (see [`crate::build`]). A remote failure that is not the
//! builder's fault ([`RemoteFailure::Unavailable`]) makes the build run locally instead.
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use crate::build::{BuildError, BuildEvents};
use crate::log::LogWriter;
use crate::plan::PlannedBuild;

/// One output the remote build must produce.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub name: String,
    pub path: StorePath,
    /// Where the output's files go on this machine (removed by the caller on failure).
    pub host_path: PathBuf,
}

/// What a remote build is given.
pub struct RemoteJob<'a> {
    pub store: &'a LocalStore,
    pub build: &'a PlannedBuild,
    /// The closure of the build's inputs (all valid in `store`).
    pub closure: &'a BTreeSet<StorePath>,
    pub outputs: Vec<RemoteOutput>,
    /// The build's log: the remote builder's output goes here, as a local build's does.
    pub log: &'a LogWriter,
    pub events: &'a Arc<dyn BuildEvents>,
}

/// Why a remote build produced no outputs.
#[derive(Debug)]
pub enum RemoteFailure {
    /// The cluster could not run it (unreachable, overloaded, deadline exceeded, after its
    /// retries): the build runs locally instead.
    Unavailable(String),
    /// The build itself failed (the builder exited non-zero, or its outputs were refused).
    Build(BuildError),
}

/// Runs builds elsewhere.
pub trait RemoteBuilder: Send + Sync {
    /// Whether `build` may run remotely (kiln's in-process builders, `preferLocalBuild` and
    /// builds the client does not handle stay local).
    fn accepts(&self, build: &PlannedBuild) -> bool;
    /// Runs `job` and writes every output at its host path.
    fn build_remotely(&self, job: &RemoteJob<'_>) -> Result<(), RemoteFailure>;
}

/// A shared [`RemoteBuilder`] in the build settings.
#[derive(Clone)]
pub struct RemoteHandle(pub Arc<dyn RemoteBuilder>);

impl fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteHandle")
    }
}
