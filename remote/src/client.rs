//! The REAPI client `realise --remote` builds with.
//!
//! [`RemoteExecutor::connect`] checks the server's capabilities first (SHA-256 digests,
//! execution enabled, its batch limit) and says clearly what is missing. Each build
//! ([`RemoteBuilder::build_remotely`]) then:
//!
//! 1. turns the derivation into an action ([`crate::action`]);
//! 2. asks the ActionCache: a result with exit code 0 whose outputs the CAS still holds is used
//!    without executing anything (a team sharing a cluster never builds a derivation twice);
//! 3. otherwise asks `FindMissingBlobs`, uploads only what the server lacks (NARs through
//!    ByteStream, small blobs in batches) and calls `Execute`;
//! 4. writes the remote builder's stdout and stderr into the build's log (so `kiln log` and the
//!    failure report show it), and on exit code 0 downloads each output's NAR, checks it
//!    against its digest and unpacks it at the output's host path. The builder then checks
//!    and registers the outputs exactly as a local build's.
//!
//! The stages of each remote build (queued, executing, downloading outputs, or served by the
//! ActionCache) are lines of its log, so the progress display shows them beside local builds.
//!
//! A failure of the cluster (unreachable, deadline, an execution that ends without a result) is
//! retried; after the retries the build falls back to a local build with a warning.
use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2::{
    action_cache_client::ActionCacheClient, capabilities_client::CapabilitiesClient,
    digest_function, execution_client::ExecutionClient, execution_stage, ActionResult, Digest,
    ExecuteOperationMetadata, ExecuteRequest, ExecuteResponse, GetActionResultRequest,
    GetCapabilitiesRequest,
};
use bazel_remote_apis::google::longrunning::operation;
use kiln_builder::plan::PlannedBuild;
use kiln_builder::remote::{RemoteBuilder, RemoteFailure, RemoteJob};
use kiln_builder::report::BuildError;
use kiln_local_store::fs_tree::delete_tree;
use kiln_local_store::LocalStore;
use tokio::runtime::Runtime;

use crate::action::{self, BlobSource, PreparedAction};
use crate::cas::Cas;
use crate::connection::{connect, BearerToken, Connection};
use crate::RemoteError;

/// The batch limit assumed when the server states none.
const DEFAULT_MAX_BATCH: usize = 4 << 20;

/// Where and how to build remotely.
#[derive(Clone)]
pub struct RemoteSettings {
    /// `grpc://host:port`.
    pub url: String,
    /// The REAPI instance name (often empty).
    pub instance_name: String,
    /// How many times an action is tried again after a failure of the cluster.
    pub retries: u32,
    /// The program the worker runs (`kiln`, found on the worker's `PATH`).
    pub program: String,
    /// Sent with every call.
    pub token: BearerToken,
}

impl RemoteSettings {
    pub fn new(url: &str) -> RemoteSettings {
        RemoteSettings {
            url: url.to_owned(),
            instance_name: String::new(),
            retries: 2,
            program: "kiln".to_owned(),
            token: BearerToken::default(),
        }
    }
}

/// What the executor did, for the summary `realise` prints.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemoteStats {
    /// Actions the cluster executed.
    pub executed: u64,
    /// Actions served by the ActionCache.
    pub cached: u64,
    /// Bytes uploaded to the CAS.
    pub uploaded_bytes: u64,
}

/// A connection to one REAPI instance.
pub struct RemoteExecutor {
    runtime: Runtime,
    channel: Connection,
    cas: Cas,
    settings: RemoteSettings,
    executed: AtomicU64,
    cached: AtomicU64,
    /// Blobs this client has uploaded or found present, each behind its own lock: builds
    /// running at once that share an input (a root filesystem) upload it once, not once each.
    blobs: Mutex<HashMap<BlobKey, BlobSlot>>,
}

/// A blob's digest (hash, size).
type BlobKey = (String, i64);
/// Whether a blob is known to be in the CAS; held while it is uploaded.
type BlobSlot = Arc<tokio::sync::Mutex<bool>>;

impl RemoteExecutor {
    /// Connects and checks the server's capabilities.
    pub fn connect(settings: RemoteSettings) -> Result<RemoteExecutor, RemoteError> {
        let runtime = crate::connection::runtime_for(&settings.url)?;
        let (channel, max_batch) = runtime.block_on(async {
            let channel = connect(&settings.url, settings.token.clone()).await?;
            let max_batch = check_capabilities(&channel, &settings).await?;
            Ok::<_, RemoteError>((channel, max_batch))
        })?;
        let cas = Cas::new(channel.clone(), &settings.instance_name, max_batch);
        Ok(RemoteExecutor {
            runtime,
            channel,
            cas,
            settings,
            executed: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            blobs: Mutex::new(HashMap::new()),
        })
    }

    pub fn stats(&self) -> RemoteStats {
        RemoteStats {
            executed: self.executed.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            uploaded_bytes: self.cas.uploaded_bytes(),
        }
    }

    /// One try of a build: the ActionCache, else upload and execute; then the outputs.
    async fn attempt(&self, job: &RemoteJob<'_>, prepared: &PreparedAction) -> Result<(), Attempt> {
        let instance = self.settings.instance_name.clone();
        let mut action_cache = ActionCacheClient::new(self.channel.clone());
        let cached = match action_cache
            .get_action_result(GetActionResultRequest {
                instance_name: instance.clone(),
                action_digest: Some(prepared.action_digest.clone()),
                ..GetActionResultRequest::default()
            })
            .await
        {
            Ok(response) => Some(response.into_inner()),
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => return Err(Attempt::Remote(status.into())),
        };
        if let Some(result) = cached.filter(|result| result.exit_code == 0) {
            job.log
                .note("kiln: served by the remote action cache; nothing was executed");
            match self.take_result(job, prepared, &result).await {
                Ok(()) => {
                    self.cached.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                // The cache entry outlived its outputs: execute again.
                Err(Attempt::Remote(RemoteError::MissingBlob(_))) => clear_outputs(job),
                Err(other) => return Err(other),
            }
        }

        self.upload_missing(job.store, prepared)
            .await
            .map_err(Attempt::Remote)?;
        let mut execution = ExecutionClient::new(self.channel.clone());
        let mut operations = execution
            .execute(ExecuteRequest {
                instance_name: instance,
                skip_cache_lookup: false,
                action_digest: Some(prepared.action_digest.clone()),
                ..ExecuteRequest::default()
            })
            .await
            .map_err(|status| Attempt::Remote(status.into()))?
            .into_inner();
        let mut finished = None;
        let mut stage = None;
        while let Some(operation) = operations
            .message()
            .await
            .map_err(|status| Attempt::Remote(status.into()))?
        {
            // The stages reach the progress display as log lines.
            let now = operation
                .metadata
                .as_ref()
                .and_then(|any| {
                    <ExecuteOperationMetadata as prost::Message>::decode(any.value.as_slice()).ok()
                })
                .map(|metadata| metadata.stage);
            if now.is_some() && now != stage {
                stage = now;
                match now.and_then(|value| execution_stage::Value::try_from(value).ok()) {
                    Some(execution_stage::Value::Queued) => job.log.note("kiln: remote: queued"),
                    Some(execution_stage::Value::Executing) => {
                        job.log.note("kiln: remote: executing")
                    }
                    _ => {}
                }
            }
            if operation.done {
                finished = operation.result;
                break;
            }
        }
        let response = match finished {
            Some(operation::Result::Response(any)) => <ExecuteResponse as prost::Message>::decode(
                any.value.as_slice(),
            )
            .map_err(|error| {
                Attempt::Remote(RemoteError::Protocol(format!(
                    "sent an unreadable ExecuteResponse: {error}"
                )))
            })?,
            Some(operation::Result::Error(status)) => {
                return Err(Attempt::Remote(RemoteError::Rpc(tonic::Status::new(
                    tonic::Code::from(status.code),
                    status.message,
                ))))
            }
            None => {
                return Err(Attempt::Remote(RemoteError::Protocol(
                    "ended the execution without a result".to_owned(),
                )))
            }
        };
        if let Some(status) = response.status.filter(|status| status.code != 0) {
            return Err(Attempt::Remote(RemoteError::Rpc(tonic::Status::new(
                tonic::Code::from(status.code),
                status.message,
            ))));
        }
        let result = response.result.ok_or_else(|| {
            Attempt::Remote(RemoteError::Protocol("sent no ActionResult".to_owned()))
        })?;
        if response.cached_result {
            job.log
                .note("kiln: served by the remote action cache; nothing was executed");
            self.cached.fetch_add(1, Ordering::Relaxed);
        } else {
            self.executed.fetch_add(1, Ordering::Relaxed);
        }
        self.take_result(job, prepared, &result).await
    }

    /// Uploads the blobs of `prepared` that the server lacks. A blob another build of this run
    /// is uploading is waited for, not uploaded again.
    async fn upload_missing(
        &self,
        store: &LocalStore,
        prepared: &PreparedAction,
    ) -> Result<(), RemoteError> {
        let slot = |key: &(String, i64)| {
            let mut blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
            blobs.entry(key.clone()).or_default().clone()
        };
        let mut unknown = Vec::new();
        for (digest, _) in &prepared.blobs {
            let key = (digest.hash.clone(), digest.size_bytes);
            if !*slot(&key).lock().await {
                unknown.push(digest.clone());
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let missing: BTreeSet<(String, i64)> = self
            .cas
            .find_missing(unknown.clone())
            .await?
            .into_iter()
            .map(|digest| (digest.hash, digest.size_bytes))
            .collect();
        for (digest, source) in &prepared.blobs {
            let key = (digest.hash.clone(), digest.size_bytes);
            let slot = slot(&key);
            let mut present = slot.lock().await;
            if *present {
                continue;
            }
            if missing.contains(&key) {
                self.upload_blob(store, digest, source).await?;
            }
            *present = true;
        }
        Ok(())
    }

    async fn upload_blob(
        &self,
        store: &LocalStore,
        digest: &Digest,
        source: &BlobSource,
    ) -> Result<(), RemoteError> {
        match source {
            BlobSource::Bytes(bytes) => self.cas.upload_bytes(digest, bytes.clone()).await,
            BlobSource::StorePath(path) => {
                let physical = store.physical_path(path);
                let nar = tempfile::NamedTempFile::new().map_err(|source| RemoteError::Io {
                    action: "cannot create a temporary file for the NAR of",
                    path: physical.clone(),
                    source,
                })?;
                let mut writer = std::io::BufWriter::new(nar.as_file());
                kiln_store::nar::dump_path(&physical, &mut writer).map_err(|error| {
                    RemoteError::Io {
                        action: "cannot serialise",
                        path: physical.clone(),
                        source: std::io::Error::other(error.to_string()),
                    }
                })?;
                writer.flush().map_err(|source| RemoteError::Io {
                    action: "cannot write the NAR of",
                    path: physical.clone(),
                    source,
                })?;
                drop(writer);
                self.cas.upload_file(digest, nar.path()).await
            }
        }
    }

    /// Copies the builder's output into the log, then (exit code 0) the outputs into place.
    async fn take_result(
        &self,
        job: &RemoteJob<'_>,
        prepared: &PreparedAction,
        result: &ActionResult,
    ) -> Result<(), Attempt> {
        let mut log = job.log.clone();
        for (raw, digest) in [
            (&result.stdout_raw, &result.stdout_digest),
            (&result.stderr_raw, &result.stderr_digest),
        ] {
            let text = match digest
                .as_ref()
                .filter(|d| d.size_bytes > 0 && raw.is_empty())
            {
                Some(digest) => self.cas.read_bytes(digest).await.map_err(Attempt::Remote)?,
                None => raw.clone(),
            };
            if !text.is_empty() {
                let _ = log.write_all(&text);
                if !text.ends_with(b"\n") {
                    let _ = log.write_all(b"\n");
                }
            }
        }
        let _ = log.flush();
        if result.exit_code != 0 {
            return Err(Attempt::Build(BuildError::BuilderFailed {
                how: format!(
                    "failed on the remote cluster with exit code {}",
                    result.exit_code
                ),
            }));
        }
        job.log.note("kiln: remote: downloading outputs");
        for output in &job.outputs {
            let Some(file) = prepared.output_files.get(&output.name) else {
                continue;
            };
            let Some(digest) = result
                .output_files
                .iter()
                .find(|candidate| &candidate.path == file)
                .and_then(|candidate| candidate.digest.clone())
            else {
                return Err(Attempt::Build(BuildError::MissingOutput {
                    output: output.name.clone(),
                    path: job.store.store_dir().print(&output.path),
                }));
            };
            let download = output.host_path.with_file_name(format!(
                ".kiln-remote-{}-{}.nar",
                std::process::id(),
                output.path.base_name()
            ));
            let fetched = self.cas.read_to_file(&digest, &download).await;
            let restored = fetched.and_then(|()| restore_nar(&download, &output.host_path));
            let _ = std::fs::remove_file(&download);
            restored.map_err(Attempt::Remote)?;
        }
        Ok(())
    }
}

fn restore_nar(nar: &Path, dest: &Path) -> Result<(), RemoteError> {
    let file = std::fs::File::open(nar).map_err(|source| RemoteError::Io {
        action: "cannot open",
        path: nar.to_owned(),
        source,
    })?;
    kiln_store::nar::restore(std::io::BufReader::new(file), dest).map_err(|error| RemoteError::Io {
        action: "cannot unpack the NAR of",
        path: dest.to_owned(),
        source: std::io::Error::other(error.to_string()),
    })
}

fn clear_outputs(job: &RemoteJob<'_>) {
    for output in &job.outputs {
        let _ = delete_tree(&output.host_path);
    }
}

/// How one try ended.
enum Attempt {
    /// The cluster or the transfer failed.
    Remote(RemoteError),
    /// The build failed.
    Build(BuildError),
}

/// Checks that the server can run kiln's actions; returns its batch limit.
async fn check_capabilities(
    channel: &Connection,
    settings: &RemoteSettings,
) -> Result<usize, RemoteError> {
    let url = &settings.url;
    let capabilities = CapabilitiesClient::new(channel.clone())
        .get_capabilities(GetCapabilitiesRequest {
            instance_name: settings.instance_name.clone(),
        })
        .await
        .map_err(|status| RemoteError::Connect {
            url: url.clone(),
            message: format!("GetCapabilities: {}: {}", status.code(), status.message()),
        })?
        .into_inner();
    let sha256 = digest_function::Value::Sha256 as i32;
    let cache = capabilities.cache_capabilities.ok_or_else(|| {
        RemoteError::Config(format!(
            "remote executor {url} has no CAS (no cache capabilities)"
        ))
    })?;
    if !cache.digest_functions.contains(&sha256) {
        return Err(RemoteError::Config(format!(
            "remote executor {url} does not accept SHA-256 digests, which kiln's NAR hashes are"
        )));
    }
    let execution = capabilities.execution_capabilities.ok_or_else(|| {
        RemoteError::Config(format!(
            "remote executor {url} cannot execute (no execution capabilities)"
        ))
    })?;
    if !execution.exec_enabled {
        return Err(RemoteError::Config(format!(
            "remote executor {url} has execution disabled (a cache-only instance?)"
        )));
    }
    if execution.digest_function != sha256 && !execution.digest_functions.contains(&sha256) {
        return Err(RemoteError::Config(format!(
            "remote executor {url} does not execute with SHA-256 digests"
        )));
    }
    Ok(usize::try_from(cache.max_batch_total_size_bytes)
        .ok()
        .filter(|&limit| limit > 0)
        .unwrap_or(DEFAULT_MAX_BATCH))
}

impl RemoteBuilder for RemoteExecutor {
    fn accepts(&self, build: &PlannedBuild) -> bool {
        let prefers_local = build.drv.env_var("preferLocalBuild") == Some(b"1");
        // Content-addressed builds (resolution, floating outputs) stay local for now.
        !prefers_local && !build.resolve && !build.drv.is_floating() && !build.outputs.is_empty()
    }

    fn build_remotely(&self, job: &RemoteJob<'_>) -> Result<(), RemoteFailure> {
        let prepared = action::prepare(job.store, job.build, job.closure, &self.settings.program)
            .map_err(|error| RemoteFailure::Unavailable(error.to_string()))?;
        job.log.note(&format!(
            "kiln: building on {} (action {}/{})",
            self.settings.url, prepared.action_digest.hash, prepared.action_digest.size_bytes
        ));
        let mut last = String::new();
        for attempt in 0..=self.settings.retries {
            if attempt > 0 {
                job.log.note(&format!(
                    "kiln: remote attempt {attempt} failed ({last}); trying again"
                ));
                std::thread::sleep(Duration::from_millis(500 << attempt.min(4)));
            }
            clear_outputs(job);
            match self.runtime.block_on(self.attempt(job, &prepared)) {
                Ok(()) => return Ok(()),
                Err(Attempt::Build(error)) => return Err(RemoteFailure::Build(error)),
                Err(Attempt::Remote(error)) if error.is_infrastructure() => {
                    last = error.to_string()
                }
                Err(Attempt::Remote(error)) => {
                    return Err(RemoteFailure::Build(BuildError::Remote(error.to_string())))
                }
            }
        }
        clear_outputs(job);
        Err(RemoteFailure::Unavailable(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_is_a_clear_connection_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap();
        let error =
            RemoteExecutor::connect(RemoteSettings::new(&format!("grpc://127.0.0.1:{port}")))
                .err()
                .unwrap();
        assert!(error.is_infrastructure());
        assert!(
            error
                .to_string()
                .starts_with("cannot reach the remote executor grpc://127.0.0.1:"),
            "{error}"
        );
    }
}
