//! What a build reports to its caller: its outcome, why it failed ([`BuildError`], with the
//! content-addressed steps' [`CaError`]), and the events it emits while it runs
//! ([`BuildEvents`], for a progress display). Kept apart from the build steps so that what
//! only reports on builds (the scheduler, the remote hook, the command line) does not
//! import them.
use std::path::PathBuf;
use std::time::Duration;

use kiln_local_store::LocalStoreError;
use kiln_store::content_address::ContentHashError;
use kiln_store::derivation::DerivationError;
use kiln_store::hash::Hash;
use kiln_store::store_path::{StorePath, StorePathError};

use crate::builtin_builders::{BuiltinError, FetchProgress};
use crate::outputs::OutputError;
use crate::plan::{PlanError, PlannedBuild};
use crate::sandbox::SandboxError;

/// What a successful build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// The outputs were built and registered.
    Built {
        /// The derivation used the network although it is not fixed-output.
        impure: bool,
        duration: Duration,
    },
    /// Another process built the outputs while we waited for their locks.
    AlreadyValid,
    /// Resolved against its inputs' realised outputs, the derivation (`resolved`) turned out to
    /// have valid outputs already: nothing was built (early cutoff).
    Unchanged { resolved: StorePath },
    /// `--check`: the rebuild produced the same NAR hashes as the valid outputs.
    Checked { duration: Duration },
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] LocalStoreError),
    #[error("cannot write the build log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the build directory {path}: {source}")]
    BuildDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("derivation asks for the network (`__network = true`) but is not fixed-output; pass --allow-network to allow it")]
    NetworkRefused,
    #[error("a `{platform}` derivation cannot be built on `{host}`")]
    WrongPlatform { platform: String, host: String },
    #[error("`rootfs` entry `{0}` is not a store path")]
    BadRootfs(String),
    #[error("the builtin builder `{builder}` takes text, but the variable `{name}` is not UTF-8")]
    BuiltinEnvNotText { builder: String, name: String },
    #[error("`rootfs` layer `{layer}` is refused: {reason}")]
    RootfsRefused { layer: String, reason: String },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Builtin(#[from] BuiltinError),
    #[error("builder {how}")]
    BuilderFailed { how: String },
    #[error("remote build: {0}")]
    Remote(String),
    #[error("builtin:{builder}: refusing the {what} {input}: {reason}")]
    BuiltinInputRefused {
        builder: &'static str,
        what: &'static str,
        input: String,
        reason: String,
    },
    #[error("builder did not produce the output `{output}` ({path})")]
    MissingOutput { output: String, path: String },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("hash mismatch in fixed-output derivation output {path}:\n  wanted: {wanted_sri} ({wanted_nix32})\n  got:    {got_sri} ({got_nix32})", wanted_sri = .wanted.to_sri(), wanted_nix32 = .wanted.to_nixbase32(), got_sri = .got.to_sri(), got_nix32 = .got.to_nixbase32())]
    HashMismatch {
        path: String,
        wanted: Box<Hash>,
        got: Box<Hash>,
    },
    #[error("the fixed-output derivation output {path} refers to store paths: {references}")]
    FixedOutputReferences { path: String, references: String },
    #[error("output {path} refers to {reference}, which {rule}")]
    ForbiddenReference {
        path: String,
        reference: String,
        rule: &'static str,
    },
    #[error("`{attribute}` names `{entry}`, which is neither an output nor a store path")]
    BadReferenceRule { attribute: String, entry: String },
    #[error(transparent)]
    ContentAddressed(#[from] CaError),
    #[error("--check: output {path} is not reproducible: NAR hash {registered} became {rebuilt}{first}", first = .first_difference.as_ref().map(|d| format!("; first difference: {d}")).unwrap_or_default())]
    NotReproducible {
        path: String,
        registered: String,
        rebuilt: String,
        first_difference: Option<String>,
    },
}

/// Receives what happens during builds (for a progress display). All methods default to
/// doing nothing.
pub trait BuildEvents: Send + Sync {
    /// A build is about to claim its outputs and run.
    fn build_started(&self, _build: &PlannedBuild) {}
    /// Another process holds the lock of `path`; the build waits for it.
    fn waiting_for_lock(&self, _build: &PlannedBuild, _path: &StorePath) {}
    /// The builder of `drv` printed a line.
    fn log_line(&self, _drv: &StorePath, _line: &str) {}
    /// `builtin:fetchurl` of `drv` received more of its download (bytes so far, size, rate).
    fn download_progress(&self, _drv: &StorePath, _progress: &FetchProgress) {}
    /// Something the user should know that is not a failure (said once per process for a
    /// given cause, e.g. builds running without their resource limits).
    fn warning(&self, _text: &str) {}
    /// A build ended.
    fn build_finished(&self, _build: &PlannedBuild, _result: &Result<BuildOutcome, BuildError>) {}
}

/// Events that go nowhere.
pub struct NoEvents;

impl BuildEvents for NoEvents {}

/// Why a content-addressed build could not be prepared or finished.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Plan(#[from] Box<PlanError>),
    #[error(transparent)]
    Derivation(#[from] DerivationError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error("cannot write the resolved derivation {path}: {message}")]
    WriteResolved { path: String, message: String },
    #[error("cannot hash the content-addressed output {path}: {source}")]
    ContentHash {
        path: String,
        #[source]
        source: ContentHashError,
    },
    #[error("cannot rewrite {path} to its final path: {message}")]
    Rewrite { path: String, message: String },
    #[error(
        "the outputs of {drv} refer to each other in a cycle; content-addressed outputs cannot"
    )]
    OutputCycle { drv: String },
    #[error("output `{output}` of {drv} has no floating content address")]
    NotFloating { drv: String, output: String },
    #[error("--check: output `{output}` of {drv} is not reproducible: it was realised at {realised}, the rebuild gives {rebuilt}")]
    NotReproducible {
        drv: String,
        output: String,
        realised: String,
        rebuilt: String,
    },
}

impl From<PlanError> for CaError {
    fn from(error: PlanError) -> CaError {
        CaError::Plan(Box::new(error))
    }
}

impl From<PlanError> for BuildError {
    fn from(error: PlanError) -> BuildError {
        BuildError::ContentAddressed(error.into())
    }
}

impl From<DerivationError> for BuildError {
    fn from(error: DerivationError) -> BuildError {
        BuildError::ContentAddressed(error.into())
    }
}

impl From<StorePathError> for BuildError {
    fn from(error: StorePathError) -> BuildError {
        BuildError::ContentAddressed(error.into())
    }
}
