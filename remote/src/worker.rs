//! `kiln remote-worker`: kiln's own bot for a REAPI server that hands work out through the
//! Remote Workers API (`google.devtools.remoteworkers.v1test2.Bots`; BuildGrid serves it and
//! ships no bot of its own). Buildbarn, BuildBuddy and NativeLink each have a worker protocol of
//! their own, which this bot does not speak.
//!
//! The bot keeps one session: it advertises its system as the platform property
//! `kiln-system` (the property an action's platform matches), takes up to `jobs` leases at
//! once, and for each: reads the `Action` (inline or by digest), its `Command` and input root from the
//! CAS into a fresh directory, runs the command there (`kiln remote-run-action …` for kiln's
//! actions, found on the bot's `PATH`), uploads the output files, stdout and stderr, and
//! completes the lease with the `ActionResult`; the server caches it. The session is updated at
//! least every 20 s, so it does not expire, and at once when a lease finishes. Each lease it
//! starts is announced on stderr (`kiln remote-worker: executing action with input root
//! HASH/SIZE`), followed by where its input files came from (`input root: N fetched (B bytes),
//! N from the cache (B bytes), N valid in the worker store (B bytes)`) and the lines the
//! command wrote on stderr (`kiln remote-worker: action: …`).
//!
//! The work directory keeps, across actions and restarts:
//! - `cas/`, the cache of input blobs ([`crate::blob_cache`], bounded by `cache_bytes`);
//! - `store/`, the worker's store, which the command finds in `KILN_REMOTE_STORE`
//!   ([`crate::runner`]): `kiln remote-run-action` imports only the paths not valid there and
//!   builds there. For a kiln action, the bot reads the manifest first and does not fetch the
//!   NAR of a path valid in that store with the manifest's NAR hash (paths are never removed
//!   from it while the bot runs, so the runner finds it valid; do not collect its garbage
//!   while the bot runs);
//! - `action-*/`, each running action's input root, removed when it completes (and, left by a
//!   killed bot, when the bot starts).
//!
//! One bot per work directory.
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2::{
    Action, ActionResult, Command, Digest, Directory, OutputFile,
};
use bazel_remote_apis::google::protobuf::Any;
use bazel_remote_apis::google::rpc::Status;
use kiln_local_store::LocalStore;
use kiln_store::hash::HashAlgo;
use kiln_store::store_path::{StoreDir, StorePath};
use prost::Message;

use crate::action::{nar_file_name, Manifest, MANIFEST, NARS};
use crate::blob_cache::{BlobCache, BlobOrigin};
use crate::bots::{
    BotSession, BotsClient, CreateBotSessionRequest, Device, Property, UpdateBotSessionRequest,
    Worker, BOT_STATUS_OK, LEASE_ACTIVE, LEASE_CANCELLED, LEASE_COMPLETED, LEASE_PENDING,
};
use crate::cas::Cas;
use crate::connection::{connect, BearerToken};
use crate::RemoteError;

const ACTION_RESULT_TYPE: &str = "type.googleapis.com/build.bazel.remote.execution.v2.ActionResult";
/// gRPC code FAILED_PRECONDITION: the action could not be set up (a missing input, a bad
/// message).
const FAILED_PRECONDITION: i32 = 9;
/// gRPC code UNAVAILABLE: the CAS failed the bot; the client tries again.
const UNAVAILABLE: i32 = 14;

/// How the bot runs.
#[derive(Clone)]
pub struct WorkerSettings {
    pub url: String,
    pub instance_name: String,
    /// The bot's id (unique among the server's bots).
    pub bot_id: String,
    /// The Nix system it builds for (`x86_64-linux`).
    pub system: String,
    /// Where actions' input roots are laid out (one fresh folder each).
    pub work_dir: PathBuf,
    /// Sent with every call.
    pub token: BearerToken,
    /// Leases run at once.
    pub jobs: usize,
    /// The bound of the blob cache in `work_dir/cas`, in bytes.
    pub cache_bytes: u64,
}

/// What the bot keeps in its work directory (see the module doc).
struct Reuse {
    cache: BlobCache,
    /// The worker store folder (`work_dir/store`).
    store_base: PathBuf,
}

/// Runs the bot until the process is stopped; a lost server is waited for.
pub fn run_worker(settings: &WorkerSettings) -> Result<(), RemoteError> {
    let runtime = crate::connection::runtime_for(&settings.url)?;
    std::fs::create_dir_all(&settings.work_dir).map_err(|source| RemoteError::Io {
        action: "cannot create",
        path: settings.work_dir.clone(),
        source,
    })?;
    // Input roots a killed bot left (one bot per work directory: none is running).
    if let Ok(entries) = std::fs::read_dir(&settings.work_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("action-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let reuse = Arc::new(Reuse {
        cache: BlobCache::open(settings.work_dir.join("cas"), settings.cache_bytes)?,
        store_base: settings.work_dir.join("store"),
    });
    runtime.block_on(async {
        loop {
            match serve(settings, &reuse).await {
                Ok(()) => return Ok(()),
                Err(error) if error.is_infrastructure() => {
                    eprintln!("kiln remote-worker: {error}; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => return Err(error),
            }
        }
    })
}

async fn serve(settings: &WorkerSettings, reuse: &Arc<Reuse>) -> Result<(), RemoteError> {
    let channel = connect(&settings.url, settings.token.clone()).await?;
    let cas = Cas::new(channel.clone(), &settings.instance_name, 4 << 20);
    let mut bots = BotsClient::new(channel);
    let mut session = bots
        .create_bot_session(CreateBotSessionRequest {
            parent: settings.instance_name.clone(),
            bot_session: Some(BotSession {
                bot_id: settings.bot_id.clone(),
                status: BOT_STATUS_OK,
                worker: Some(Worker {
                    // BuildGrid's key for how many leases a bot runs at once.
                    configs: vec![Property {
                        key: "capacity".to_owned(),
                        value: settings.jobs.max(1).to_string(),
                    }],
                    devices: vec![Device {
                        handle: settings.bot_id.clone(),
                        properties: vec![Property {
                            key: crate::action::SYSTEM_PROPERTY.to_owned(),
                            value: settings.system.clone(),
                        }],
                    }],
                    properties: Vec::new(),
                }),
                ..BotSession::default()
            }),
        })
        .await?;
    eprintln!(
        "kiln remote-worker: session {} on {}",
        session.name, settings.url
    );
    let mut running: BTreeMap<String, LeaseTask> = BTreeMap::new();
    // Leases this bot has completed (the server may list one again before it drops it).
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let task_done = std::sync::Arc::new(tokio::sync::Notify::new());
    loop {
        let done: Vec<String> = running
            .iter()
            .filter(|(_, task)| task.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            let Some(task) = running.remove(&id) else {
                continue;
            };
            let outcome = task
                .await
                .map_err(|error| RemoteError::Protocol(format!("worker task: {error}")))?;
            finished.insert(id.clone());
            for lease in session.leases.iter_mut().filter(|lease| lease.id == id) {
                lease.state = LEASE_COMPLETED;
                match &outcome {
                    Ok(result) => {
                        lease.status = Some(Status::default());
                        lease.result = Some(Any {
                            type_url: ACTION_RESULT_TYPE.to_owned(),
                            value: result.encode_to_vec(),
                        });
                    }
                    Err((code, message)) => {
                        eprintln!("kiln remote-worker: lease {id}: {message}");
                        lease.status = Some(Status {
                            code: *code,
                            message: message.clone(),
                            details: Vec::new(),
                        });
                    }
                }
            }
        }
        // BuildGrid offers a lease as PENDING or, once it counts it as executing, ACTIVE.
        for lease in session.leases.iter_mut() {
            if running.len() >= settings.jobs.max(1) {
                break;
            }
            let offered = lease.state == LEASE_PENDING || lease.state == LEASE_ACTIVE;
            if !offered || finished.contains(&lease.id) || running.contains_key(&lease.id) {
                continue;
            }
            lease.state = LEASE_ACTIVE;
            let payload = lease.payload.clone().unwrap_or_default();
            let (cas, work_dir, reuse) = (cas.clone(), settings.work_dir.clone(), reuse.clone());
            let done = task_done.clone();
            running.insert(
                lease.id.clone(),
                tokio::spawn(async move {
                    let outcome = execute(&cas, &reuse, &payload, &work_dir).await;
                    done.notify_one();
                    outcome
                }),
            );
        }
        session
            .leases
            .retain(|lease| lease.state != LEASE_CANCELLED);
        let busy = !running.is_empty();
        let request = UpdateBotSessionRequest {
            name: session.name.clone(),
            bot_session: Some(session.clone()),
        };
        // The bot long-polls for leases (the server answers when it assigns one); a lease that
        // finishes meanwhile cuts the call short so its result is handed in at once (the
        // server offers again a lease it assigned in a call the bot gave up).
        let update = bots.update_bot_session(request, Duration::from_secs(20));
        tokio::select! {
            answer = update => {
                session = match answer {
                    Ok(updated) => updated,
                    Err(status) if status.code() == tonic::Code::DeadlineExceeded => session,
                    Err(status) => return Err(status.into()),
                };
            }
            () = task_done.notified(), if busy => {}
        }
    }
}

/// A running lease: its `ActionResult`, or the gRPC code and message of why it could not run.
type LeaseTask = tokio::task::JoinHandle<Result<ActionResult, (i32, String)>>;

/// Runs one lease's action and returns its result; `Err` when it could not be set up.
async fn execute(
    cas: &Cas,
    reuse: &Reuse,
    payload: &Any,
    work_dir: &Path,
) -> Result<ActionResult, (i32, String)> {
    execute_action(cas, reuse, payload, work_dir)
        .await
        .map_err(|error| match error {
            Setup::Remote(error) if error.is_infrastructure() => (UNAVAILABLE, error.to_string()),
            Setup::Remote(error) => (FAILED_PRECONDITION, error.to_string()),
            Setup::Other(message) => (FAILED_PRECONDITION, message),
        })
}

/// Why an action could not be run.
enum Setup {
    Remote(RemoteError),
    Other(String),
}

impl From<RemoteError> for Setup {
    fn from(error: RemoteError) -> Setup {
        Setup::Remote(error)
    }
}

impl From<String> for Setup {
    fn from(message: String) -> Setup {
        Setup::Other(message)
    }
}

async fn execute_action(
    cas: &Cas,
    reuse: &Reuse,
    payload: &Any,
    work_dir: &Path,
) -> Result<ActionResult, Setup> {
    let action = if payload
        .type_url
        .ends_with("build.bazel.remote.execution.v2.Action")
    {
        Action::decode(payload.value.as_slice()).map_err(|e| format!("unreadable Action: {e}"))?
    } else {
        let digest = Digest::decode(payload.value.as_slice())
            .map_err(|e| format!("unreadable lease payload: {e}"))?;
        let bytes = cas.read_bytes(&digest).await?;
        Action::decode(bytes.as_slice()).map_err(|e| format!("unreadable Action: {e}"))?
    };
    let (Some(command_digest), Some(root_digest)) =
        (&action.command_digest, &action.input_root_digest)
    else {
        return Err(Setup::Other(
            "the Action lacks its command or input root".to_owned(),
        ));
    };
    eprintln!(
        "kiln remote-worker: executing action with input root {}/{}",
        root_digest.hash, root_digest.size_bytes
    );
    let command_bytes = cas
        .read_bytes(command_digest)
        .await
        .map_err(|e| e.to_string())?;
    let command = Command::decode(command_bytes.as_slice())
        .map_err(|e| format!("unreadable Command: {e}"))?;
    let scratch = tempfile::Builder::new()
        .prefix("action-")
        .tempdir_in(work_dir)
        .map_err(|e| {
            format!(
                "cannot create an action folder in {}: {e}",
                work_dir.display()
            )
        })?;
    let root = scratch.path().to_owned();
    let kiln_action = command.arguments.get(1).map(String::as_str) == Some("remote-run-action");
    let valid_nars = if kiln_action {
        nars_valid_in_worker_store(cas, root_digest, &reuse.store_base).await
    } else {
        BTreeMap::new()
    };
    let mut counts = FetchCounts::default();
    fetch_tree(
        cas,
        &reuse.cache,
        root_digest,
        &root,
        &valid_nars,
        &mut counts,
    )
    .await
    .map_err(|e| e.to_string())?;
    eprintln!(
        "kiln remote-worker: input root: {} fetched ({} bytes), {} from the cache ({} bytes), \
         {} valid in the worker store ({} bytes)",
        counts.fetched.0,
        counts.fetched.1,
        counts.cached.0,
        counts.cached.1,
        counts.valid.0,
        counts.valid.1
    );
    #[allow(deprecated)]
    let declared: BTreeSet<String> = if command.output_paths.is_empty() {
        command.output_files.iter().cloned().collect()
    } else {
        command.output_paths.iter().cloned().collect()
    };
    for output in &declared {
        if let Some(parent) = root.join(output).parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
    }
    let Some((program, arguments)) = command.arguments.split_first() else {
        return Err(Setup::Other("the Command has no arguments".to_owned()));
    };
    let cwd = root.join(&command.working_directory);
    let mut process = std::process::Command::new(program);
    process
        .args(arguments)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    process.env(crate::runner::WORKER_STORE_VARIABLE, &reuse.store_base);
    for variable in &command.environment_variables {
        process.env(&variable.name, &variable.value);
    }
    let output = tokio::task::spawn_blocking(move || process.output())
        .await
        .map_err(|e| format!("command task: {e}"))?
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        eprintln!("kiln remote-worker: action: {line}");
    }
    let mut result = ActionResult {
        exit_code: output.status.code().unwrap_or(128),
        ..ActionResult::default()
    };
    result.stdout_digest = Some(upload_bytes(cas, output.stdout).await?);
    result.stderr_digest = Some(upload_bytes(cas, output.stderr).await?);
    for path in &declared {
        let file = root.join(path);
        let Ok(metadata) = std::fs::metadata(&file) else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let digest = crate::blob_cache::file_digest(&file)
            .map_err(|e| format!("cannot hash {}: {e}", file.display()))?;
        let missing = cas
            .find_missing(vec![digest.clone()])
            .await
            .map_err(|e| e.to_string())?;
        if !missing.is_empty() {
            cas.upload_file(&digest, &file)
                .await
                .map_err(|e| e.to_string())?;
        }
        result.output_files.push(OutputFile {
            path: path.clone(),
            digest: Some(digest),
            is_executable: metadata.permissions().mode() & 0o100 != 0,
            ..OutputFile::default()
        });
    }
    drop(scratch);
    Ok(result)
}

async fn upload_bytes(cas: &Cas, bytes: Vec<u8>) -> Result<Digest, String> {
    let digest = crate::cas::digest_of(&bytes);
    if digest.size_bytes > 0 {
        cas.upload_bytes(&digest, bytes)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(digest)
}

/// How many input files (and bytes) were downloaded, taken from the cache, or left out as
/// valid in the worker store.
#[derive(Default)]
struct FetchCounts {
    fetched: (u64, u64),
    cached: (u64, u64),
    valid: (u64, u64),
}

/// The NARs of a kiln action's input root (`nars/<name>` → digest) whose paths are valid in
/// the worker store with the manifest's NAR hash, so need not be fetched. Anything unreadable
/// (a manifest that does not parse, a store that does not open) leaves out nothing.
async fn nars_valid_in_worker_store(
    cas: &Cas,
    root_digest: &Digest,
    store_base: &Path,
) -> BTreeMap<PathBuf, Digest> {
    let mut valid = BTreeMap::new();
    let Ok(root_bytes) = cas.read_bytes(root_digest).await else {
        return valid;
    };
    let Ok(root) = Directory::decode(root_bytes.as_slice()) else {
        return valid;
    };
    let Some(manifest_digest) = root
        .files
        .iter()
        .find(|file| file.name == MANIFEST)
        .and_then(|file| file.digest.clone())
    else {
        return valid;
    };
    let Ok(manifest_bytes) = cas.read_bytes(&manifest_digest).await else {
        return valid;
    };
    let Ok(manifest) = serde_json::from_slice::<Manifest>(&manifest_bytes) else {
        return valid;
    };
    let store_root = crate::runner::worker_store_root(store_base, &manifest.store_dir);
    if !store_root.exists() {
        return valid;
    }
    let Ok(store) = LocalStore::open(store_root, StoreDir::new(&manifest.store_dir)) else {
        return valid;
    };
    for entry in &manifest.paths {
        let Ok(path) = StorePath::from_base_name(&entry.base_name) else {
            continue;
        };
        let Ok(Some(info)) = store.query_path_info(&path) else {
            continue;
        };
        if info.nar_hash.algo() == HashAlgo::Sha256 && info.nar_hash.to_hex() == entry.nar_sha256 {
            valid.insert(
                Path::new(NARS).join(nar_file_name(&entry.base_name)),
                Digest {
                    hash: entry.nar_sha256.clone(),
                    size_bytes: i64::try_from(entry.nar_size).unwrap_or(i64::MAX),
                },
            );
        }
    }
    valid
}

/// Lays out the input root `digest` at `dest` (which exists), taking files from the cache when
/// it holds them and leaving out the files of `left_out` (relative path → the digest they must
/// have to be left out). Symlinks with absolute targets and names that leave the folder are
/// refused.
async fn fetch_tree(
    cas: &Cas,
    cache: &BlobCache,
    digest: &Digest,
    dest: &Path,
    left_out: &BTreeMap<PathBuf, Digest>,
    counts: &mut FetchCounts,
) -> Result<(), RemoteError> {
    let mut pending = vec![(digest.clone(), dest.to_owned())];
    while let Some((digest, dir)) = pending.pop() {
        let bytes = cas.read_bytes(&digest).await?;
        let directory = Directory::decode(bytes.as_slice())
            .map_err(|e| RemoteError::Protocol(format!("sent an unreadable Directory: {e}")))?;
        let checked = |name: &str| -> Result<PathBuf, RemoteError> {
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(RemoteError::Protocol(format!(
                    "sent the bad entry name `{name}`"
                )));
            }
            Ok(dir.join(name))
        };
        for file in &directory.files {
            let path = checked(&file.name)?;
            let Some(file_digest) = &file.digest else {
                return Err(RemoteError::Protocol(format!(
                    "sent no digest for {}",
                    file.name
                )));
            };
            let size = u64::try_from(file_digest.size_bytes).unwrap_or(0);
            let relative = path.strip_prefix(dest).unwrap_or(&path);
            if left_out.get(relative) == Some(file_digest) {
                counts.valid.0 += 1;
                counts.valid.1 += size;
                continue;
            }
            let tally = match cache
                .materialise(cas, file_digest, &path, file.is_executable)
                .await?
            {
                BlobOrigin::Cache => &mut counts.cached,
                BlobOrigin::Fetched => &mut counts.fetched,
            };
            tally.0 += 1;
            tally.1 += size;
        }
        for symlink in &directory.symlinks {
            let path = checked(&symlink.name)?;
            if symlink.target.starts_with('/') {
                return Err(RemoteError::Protocol(format!(
                    "sent the absolute symlink {} -> {}",
                    symlink.name, symlink.target
                )));
            }
            std::os::unix::fs::symlink(&symlink.target, &path).map_err(|source| {
                RemoteError::Io {
                    action: "cannot create",
                    path: path.clone(),
                    source,
                }
            })?;
        }
        for child in &directory.directories {
            let path = checked(&child.name)?;
            std::fs::create_dir(&path).map_err(|source| RemoteError::Io {
                action: "cannot create",
                path: path.clone(),
                source,
            })?;
            let Some(child_digest) = &child.digest else {
                return Err(RemoteError::Protocol(format!(
                    "sent no digest for {}",
                    child.name
                )));
            };
            pending.push((child_digest.clone(), path));
        }
    }
    Ok(())
}
