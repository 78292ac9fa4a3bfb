//! Running one planned build from start to registration. The sandboxed run is in
//! `build/sandboxed.rs`, what turns finished outputs into valid paths in
//! `build/registration.rs`.
//!
//! The steps, in order: claim the outputs (the per-output store locks; if another process built
//! them meanwhile there is nothing to do); protect the input closure with temporary roots; open
//! the log; run the builder — `builtin:fetchurl` and `builtin:unpack` inside this process,
//! anything else in the sandbox with Nix's environment, `/build` bound to a fresh build
//! directory under the store root (see [`crate::build_dirs`]), and the network only for fixed-output derivations (or `__network = true` with
//! `--allow-network`, reported as impure); then, on success, give the outputs of builds that had
//! the network fresh inodes and canonicalise every output (see [`crate::outputs`]), scan their
//! references and NAR-hash them (in parallel across outputs), check fixed-output hashes and
//! `allowedReferences`/`disallowedReferences`, and register every output in one transaction
//! before the locks are released. On any failure the partial outputs are deleted and the log is
//! kept.
//!
//! Outputs that are already valid (a `--check` rebuild, or a multi-output derivation of which
//! only some outputs were collected) are built into temporary names in the physical store
//! directory and compared or discarded; a valid path is never written.
//!
//! Content-addressed derivations (Nix 2.8's `ca-derivations` rules; see [`crate::ca`]): a
//! planned build marked `resolve` is first resolved against the realised outputs of its
//! inputs and the resolved `.drv` written to the store; if the resolved derivation's outputs are
//! valid (input-addressed) or realised (floating), nothing is built — the early cutoff. A
//! floating derivation is built at scratch paths, and each output moved to the path its content
//! gives. Every build records realisations of its outputs (`<static hash>!<output>`), and a
//! resolved one also those of the derivation it was resolved from.
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_local_store::fs_tree::delete_tree;
use kiln_local_store::{LocalStore, OutputClaim, ValidPathInfo};
use kiln_store::content_address::render_content_address;
use kiln_store::hash::Hash;
use kiln_store::nixbase32;
use kiln_store::store_path::StorePath;
use rayon::prelude::*;

use crate::build_dirs::ScratchDir;
use crate::builtin_builders::{run_builtin, BuiltinBuilder, BuiltinOptions, FetchProgress};
use crate::log::{BuildLog, LogWriter};
use crate::outputs::{self, OutputError, ScannedOutput};
use crate::plan::PlannedBuild;
use crate::remote::{RemoteFailure, RemoteHandle, RemoteJob, RemoteOutput};
use crate::report::{BuildError, BuildEvents, BuildOutcome};
mod registration;
mod sandboxed;

use registration::*;
use sandboxed::*;

use crate::sandbox::{
    nix_build_env, BuilderStatus, IdMapPolicy, LogSink, NixEnvParams, ResourceLimits, RootFs,
    Sandbox, SandboxSpec, StoreMount, SANDBOX_BUILD_DIR,
};

/// How builds run; the same for every build of one `realise`.
#[derive(Debug, Clone, Default)]
pub struct BuildSettings {
    /// `NIX_BUILD_CORES` (0: all).
    pub build_cores: u32,
    /// Kill a build after this long.
    pub timeout: Option<Duration>,
    /// Kill a build that prints nothing for this long.
    pub max_silent_time: Option<Duration>,
    /// Let non-fixed-output derivations with `__network = true` use the network.
    pub allow_network: bool,
    /// Extra environment variables for sandboxed builds that have the network (fixed-output
    /// ones and allowed `__network` ones). They are not derivation attributes, so no hash
    /// depends on them; the CLI passes the configuration's URL rewrite rules this way
    /// (`KILN_URL_REWRITES`), for downloads a builder makes itself (dnf in the RPM lock step).
    pub network_env: BTreeMap<String, String>,
    /// Settings of the in-process builders (their log callbacks are set per build).
    pub builtin: BuiltinOptions,
    /// How the sandbox's user namespace is mapped.
    pub id_map: IdMapPolicy,
    /// Memory and process limits of each sandboxed build.
    pub limits: ResourceLimits,
    /// Where builds run when not here (see [`crate::remote`]); `None`: all builds are local.
    pub remote: Option<RemoteHandle>,
    /// Bounds the builds that run on this machine when the scheduler runs more at once (the
    /// remote builds' count): `None`, the scheduler's own count.
    pub local_slots: Option<Arc<crate::remote::LocalSlots>>,
}

/// The Nix system name of this machine (`x86_64-linux`).
pub fn host_system() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// Where one output is written during the build.
struct OutputSlot {
    name: String,
    path: StorePath,
    /// Physical location written by the builder.
    host_path: PathBuf,
    /// Whether the path was valid before the build (then `host_path` is a temporary name and
    /// the result is compared or discarded, never registered).
    valid_before: bool,
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

/// The missing-limits warning goes to the events once per process (and into every affected
/// build's log).
static LIMITS_WARNING: std::sync::Once = std::sync::Once::new();

fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

/// What every step of a build needs besides the derivation, which changes on the way (a
/// content-addressed derivation is resolved, a floating one built at scratch paths).
#[derive(Clone, Copy)]
pub(crate) struct BuildContext<'a> {
    pub store: &'a LocalStore,
    pub settings: &'a BuildSettings,
    pub events: &'a Arc<dyn BuildEvents>,
    /// `--check`: valid outputs are rebuilt and compared.
    pub check: bool,
}

/// Builds `build` (see the module doc). With `check`, valid outputs are rebuilt and compared.
pub fn build_derivation(
    store: &LocalStore,
    build: &PlannedBuild,
    settings: &BuildSettings,
    events: &Arc<dyn BuildEvents>,
    check: bool,
) -> Result<BuildOutcome, BuildError> {
    let cx = BuildContext {
        store,
        settings,
        events,
        check,
    };
    if build.resolve {
        return crate::ca::build_resolved(cx, build);
    }
    if build.drv.is_floating() && build.outputs.is_empty() {
        return crate::ca::build_floating(cx, build);
    }
    let outcome = build_with_known_outputs(cx, build)?;
    crate::ca::record_realisations(store, build)?;
    Ok(outcome)
}

/// Builds a derivation whose output paths are in `build.outputs` (for a floating derivation:
/// its scratch paths, see [`crate::ca`]).
pub(crate) fn build_with_known_outputs(
    cx: BuildContext<'_>,
    build: &PlannedBuild,
) -> Result<BuildOutcome, BuildError> {
    let BuildContext {
        store,
        events,
        check,
        ..
    } = cx;
    let start = Instant::now();
    let paths: Vec<StorePath> = build.outputs.values().cloned().collect();
    // Hold the locks until registration is done (dropped at the end of this function).
    let _locks = match store.claim_outputs(&paths, |path| events.waiting_for_lock(build, path))? {
        OutputClaim::AllValid if !check => return Ok(BuildOutcome::AlreadyValid),
        OutputClaim::AllValid => Vec::new(),
        OutputClaim::Locked(locks) => locks,
    };
    // A floating build holds its scratch paths: another process that held them first may have
    // realised the outputs meanwhile.
    if build.drv.is_floating() && !check && crate::ca::all_realised(store, build)? {
        return Ok(BuildOutcome::AlreadyValid);
    }
    let mut slots = Vec::new();
    for (name, path) in &build.outputs {
        let valid_before = store.is_valid(path)?;
        let host_path = if valid_before {
            store.physical_store_dir().join(format!(
                ".kiln-check-{}-{}",
                unique_suffix(),
                path.base_name()
            ))
        } else {
            store.physical_path(path)
        };
        slots.push(OutputSlot {
            name: name.clone(),
            path: path.clone(),
            host_path,
            valid_before,
        });
    }
    let result = run_and_register(cx, build, &slots);
    for slot in &slots {
        if slot.valid_before || result.is_err() {
            let _ = delete_tree(&slot.host_path);
        }
    }
    let impure = result?;
    if slots.iter().all(|slot| slot.valid_before) {
        Ok(BuildOutcome::Checked {
            duration: start.elapsed(),
        })
    } else {
        Ok(BuildOutcome::Built {
            impure,
            duration: start.elapsed(),
        })
    }
}

/// Runs the builder and registers the outputs; returns whether the build was impure.
fn run_and_register(
    cx: BuildContext<'_>,
    build: &PlannedBuild,
    slots: &[OutputSlot],
) -> Result<bool, BuildError> {
    let BuildContext {
        store,
        settings,
        events,
        check,
    } = cx;
    let dir = store.store_dir();
    let drv = &build.drv;
    let fixed_output = drv.is_fixed_output();
    let builtin = builtin_builder(drv);
    let wants_network = drv.env_var("__network") == Some(b"1");
    if wants_network && !fixed_output && !settings.allow_network {
        return Err(BuildError::NetworkRefused);
    }
    let impure = wants_network && !fixed_output;
    let remote = settings
        .remote
        .as_ref()
        .filter(|remote| builtin.is_none() && !impure && !check && remote.0.accepts(build));
    let host = host_system();
    if remote.is_none() && drv.platform != host && !(builtin.is_some() && drv.platform == "builtin")
    {
        return Err(BuildError::WrongPlatform {
            platform: drv.platform.clone(),
            host,
        });
    }

    let inputs: Vec<StorePath> = build.inputs.iter().cloned().collect();
    let closure = store.closure(&inputs)?;
    for path in &closure {
        store.add_temp_root(path)?;
    }

    let log = BuildLog::of(&store.log_dir(), &build.drv_path);
    let log_error = |source| BuildError::Log {
        path: log.file().to_owned(),
        source,
    };
    let log_file = log
        .start_attempt(&dir.print(&build.drv_path))
        .map_err(log_error)?;
    let events_for_lines = events.clone();
    let drv_for_lines = build.drv_path.clone();
    let writer = LogWriter::new(
        log_file,
        Some(Arc::new(move |line: &str| {
            events_for_lines.log_line(&drv_for_lines, line)
        })),
    );

    let result = (|| {
        let produced = if builtin.is_some() {
            let _slot = settings.local_slots.as_ref().map(|slots| slots.acquire());
            run_builtin_builder(cx, build, &writer, slots)?;
            // In-process builders create the files themselves: kiln's own, no network handed
            // to anything else.
            ProducedBy {
                build_ids: None,
                had_network: false,
            }
        } else if let Some(produced) = remote
            .map(|remote| run_remote(store, build, events, &writer, slots, &closure, remote))
            .transpose()?
            .flatten()
        {
            produced
        } else {
            let _slot = settings.local_slots.as_ref().map(|slots| slots.acquire());
            let network = fixed_output || impure;
            let build_ids = run_sandboxed(cx, build, &writer, slots, &closure, network)?;
            ProducedBy {
                build_ids,
                had_network: network,
            }
        };
        finish_outputs(store, build, slots, &closure, check, produced)
    })();
    if let Err(error) = &result {
        writer.note(&format!("kiln: build failed: {error}"));
    }
    result.map(|()| impure)
}

/// Hands the build to the remote builder. `Ok(None)`: the cluster could not run it, and the
/// build runs here (the partial outputs are removed and a warning is logged).
fn run_remote(
    store: &LocalStore,
    build: &PlannedBuild,
    events: &Arc<dyn BuildEvents>,
    writer: &LogWriter,
    slots: &[OutputSlot],
    closure: &BTreeSet<StorePath>,
    remote: &RemoteHandle,
) -> Result<Option<ProducedBy>, BuildError> {
    let job = RemoteJob {
        store,
        build,
        closure,
        outputs: slots
            .iter()
            .map(|slot| RemoteOutput {
                name: slot.name.clone(),
                path: slot.path.clone(),
                host_path: slot.host_path.clone(),
            })
            .collect(),
        log: writer,
        events,
    };
    match remote.0.build_remotely(&job) {
        // The outputs were unpacked from NARs by this process: nothing else holds them, and
        // their owner is whoever runs kiln.
        Ok(()) => Ok(Some(ProducedBy {
            build_ids: None,
            had_network: false,
        })),
        Err(RemoteFailure::Build(error)) => Err(error),
        Err(RemoteFailure::Unavailable(reason)) => {
            for slot in slots {
                let _ = delete_tree(&slot.host_path);
            }
            let warning = format!(
                "remote execution of {} failed ({reason}); building it locally",
                store.store_dir().print(&build.drv_path)
            );
            writer.note(&format!("kiln: {warning}"));
            events.warning(&warning);
            Ok(None)
        }
    }
}

fn run_builtin_builder(
    cx: BuildContext<'_>,
    build: &PlannedBuild,
    writer: &LogWriter,
    slots: &[OutputSlot],
) -> Result<(), BuildError> {
    let BuildContext {
        store,
        settings,
        events,
        ..
    } = cx;
    let out = slots
        .iter()
        .find(|slot| slot.name == "out")
        .or(slots.first())
        .ok_or_else(|| BuildError::MissingOutput {
            output: "out".to_owned(),
            path: store.store_dir().print(&build.drv_path),
        })?;
    let mut options = settings.builtin.clone();
    let line_writer = writer.clone();
    let log: crate::builtin_builders::LogCallback =
        Arc::new(move |line: &str| line_writer.note(line));
    options.fetch.log = Some(log.clone());
    let configured_progress = options.fetch.progress.take();
    let events_for_progress = events.clone();
    let drv_for_progress = build.drv_path.clone();
    options.fetch.progress = Some(Arc::new(move |progress: &FetchProgress| {
        if let Some(configured) = &configured_progress {
            configured(progress);
        }
        events_for_progress.download_progress(&drv_for_progress, progress);
    }));
    options.unpack.log = Some(log);
    if options.unpack.store_location.is_none() {
        options.unpack.store_location = Some(crate::builtin_builders::StoreLocation {
            logical: PathBuf::from(store.store_dir().as_str()),
            physical: store.physical_store_dir(),
        });
    }
    let builder = String::from_utf8_lossy(&build.drv.builder).into_owned();
    let env = build
        .drv
        .env
        .iter()
        .map(
            |(name, value)| match (std::str::from_utf8(name), std::str::from_utf8(value)) {
                (Ok(name), Ok(value)) => Ok((name.to_owned(), value.to_owned())),
                _ => Err(BuildError::BuiltinEnvNotText {
                    builder: builder.clone(),
                    name: String::from_utf8_lossy(name).into_owned(),
                }),
            },
        )
        .collect::<Result<BTreeMap<String, String>, BuildError>>()?;
    // A missing attribute is reported by the builder itself.
    match builtin_builder(&build.drv) {
        Some(BuiltinBuilder::Unpack) => {
            if let Some(src) = env.get("src") {
                check_builtin_input(store, "unpack", "source", src, true)?;
            }
        }
        Some(BuiltinBuilder::Oci) => {
            for layer in env
                .get("layers")
                .into_iter()
                .flat_map(|l| l.split_whitespace())
            {
                check_builtin_input(store, "oci", "layer", layer, false)?;
            }
        }
        _ => {}
    }
    run_builtin(&builder, &env, &out.host_path, &options)?;
    Ok(())
}

/// The builtin builder `drv` names (`builtin:fetchurl`, …), if any.
fn builtin_builder(drv: &kiln_store::derivation::Derivation) -> Option<BuiltinBuilder> {
    std::str::from_utf8(&drv.builder)
        .ok()
        .and_then(BuiltinBuilder::from_builder)
}

/// A store path a builtin builder reads (`builtin:unpack`'s `src`, `builtin:oci`'s layers)
/// must be valid; `file_inside` allows a file inside one (the builders themselves check that
/// what they open stays inside the store on disk).
fn check_builtin_input(
    store: &LocalStore,
    builder: &'static str,
    what: &'static str,
    input: &str,
    file_inside: bool,
) -> Result<(), BuildError> {
    let refused = |reason: &str| BuildError::BuiltinInputRefused {
        builder,
        what,
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let path = if file_inside {
        let (path, _) = store
            .store_dir()
            .parse_prefix(input)
            .map_err(|_| refused("it is not inside the store"))?;
        path
    } else {
        store
            .store_dir()
            .parse(input)
            .map_err(|_| refused("it is not a store path"))?
    };
    if !store.is_valid(&path)? {
        return Err(refused("its store path is not valid"));
    }
    Ok(())
}
