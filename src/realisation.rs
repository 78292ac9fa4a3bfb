//! Making outputs valid, for `realise` and for the verbs that need the outputs of what they are
//! given (`copy --to FILE -A …`): the targets (`.drv` store paths, optionally `DRV!out,dev`, or
//! an expression evaluated and instantiated, which writes and registers the `.drv` files; a
//! `.drv` that exists but is not registered is registered with its input derivations first),
//! then substitution from binary caches, the build plan, the builds in the sandbox (or on a
//! REAPI cluster with `--remote`, through kiln-remote), and the
//! push of what was built (`--push-to`). [`BuildOptions`] are the flags that steer it.
use crate::commands::lock_advice::{lock_problem, nested_lock_problem, Invocation};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use kiln_builder::plan::{read_derivation, BuildPlan, BuildTarget};
use kiln_builder::remote::{LocalSlots, RemoteHandle};
use kiln_builder::scheduler::ScheduleOptions;
use kiln_local_store::LocalStore;
use kiln_remote::client::{RemoteExecutor, RemoteSettings};
use kiln_remote::connection::BearerToken;
use kiln_store::store_path::StorePath;

use crate::commands::input::{self, InputArgs, SelectionArgs};
use crate::config::ByteSize;
use crate::log_events;
use crate::session::{
    build_settings, open_store, run_builds, store_path_arg, DEFAULT_MAX_SILENT_TIME_SECS,
};
use crate::session::{Failure, GlobalOptions};

/// The flags that steer substituting and building (`realise`'s, also taken by verbs that
/// realise what they are given).
#[derive(Args, Debug, Clone, Default)]
pub struct BuildOptions {
    /// Run at most N builds at once (default: the number of CPUs).
    #[arg(short = 'j', long = "max-jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Keep building what does not depend on a failed build.
    #[arg(short = 'k', long)]
    pub keep_going: bool,
    /// Only print what would be built, and why.
    #[arg(long)]
    pub dry_run: bool,
    /// Rebuild the (valid) outputs and fail if a rebuild differs.
    #[arg(long)]
    pub check: bool,
    /// Kill a build that runs longer than this many seconds (0: never; the default).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Kill a build that prints nothing for this many seconds (0: never; default 3600).
    #[arg(long, value_name = "SECONDS")]
    pub max_silent_time: Option<u64>,
    /// The most memory one build may hold, e.g. 8G (0: no limit; default: half the RAM).
    #[arg(long, value_name = "SIZE")]
    pub max_build_memory: Option<ByteSize>,
    /// The most processes one build may run at once (0: no limit; default 4096).
    #[arg(long, value_name = "COUNT")]
    pub max_build_pids: Option<u64>,
    /// Let derivations with `__network = true` use the network (reported as impure).
    #[arg(long)]
    pub allow_network: bool,
    /// Binary caches to substitute from (space-separated URLs), instead of the
    /// configuration's `substituters`.
    #[arg(long, value_name = "URLS")]
    pub substituters: Vec<String>,
    /// Fetch nothing from binary caches; build what is missing.
    #[arg(long)]
    pub no_substitute: bool,
    /// Upload every path built to this binary cache (default: the configuration's `push-to`).
    #[arg(long, value_name = "URL")]
    pub push_to: Option<String>,
    /// Build on this REAPI v2 cluster (`grpc://HOST:PORT`; default: the configuration's
    /// `remote-executor`); what it cannot run is built here.
    #[arg(long = "remote", value_name = "URL")]
    pub remote: Option<String>,
    /// Send at most N builds to the cluster at once (default 64).
    #[arg(long, value_name = "N")]
    pub remote_jobs: Option<usize>,
}

/// Whether an argument names a `.drv` (possibly with `!outputs`) rather than a file to evaluate.
fn is_drv_arg(arg: &Path) -> bool {
    let text = arg.to_string_lossy();
    let path = text.split('!').next().unwrap_or_default();
    path.ends_with(".drv")
}

fn drv_target(store: &LocalStore, arg: &Path) -> anyhow::Result<BuildTarget> {
    let text = arg.to_string_lossy();
    let (path, outputs) = match text.split_once('!') {
        Some((path, outputs)) => (
            path.to_owned(),
            outputs
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        None => (text.into_owned(), BTreeSet::new()),
    };
    let drv_path = store_path_arg(store, Path::new(&path))?;
    if !drv_path.is_derivation() {
        bail!("`{path}` is not a derivation");
    }
    Ok(BuildTarget { drv_path, outputs })
}

/// Registers `drv` (and, first, its input derivations) if its file exists but the database does
/// not list it.
fn ensure_registered(store: &LocalStore, drv: &StorePath) -> anyhow::Result<()> {
    if store.is_valid(drv)? {
        return Ok(());
    }
    let parsed = read_derivation(store, drv)?;
    for input in parsed.input_drvs.keys() {
        ensure_registered(store, input)?;
    }
    let outputs = kiln_builder::plan::output_paths(store, drv, &parsed)?;
    let contents = std::fs::read(store.physical_path(drv))
        .with_context(|| format!("cannot read {}", store.store_dir().print(drv)))?;
    kiln_local_store::store_files::add_text(store, drv, &contents, &parsed.references(), outputs)
        .with_context(|| format!("cannot register {}", store.store_dir().print(drv)))?;
    Ok(())
}

/// Evaluates the expression input and instantiates its derivations.
fn instantiate(
    global: &GlobalOptions,
    paths: &[PathBuf],
    selection: &SelectionArgs,
    store: &Arc<LocalStore>,
) -> Result<Vec<BuildTarget>, Failure> {
    if paths.len() > 1 {
        return Err(anyhow!("give one file to evaluate, or `.drv` paths only").into());
    }
    let input_args = InputArgs {
        file: paths.first().cloned(),
        selection: selection.clone(),
    };
    let eval_store = Rc::new(kiln_glue::LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator_over(global, eval_store.clone(), store.clone());
    let mut targets = Vec::new();
    let values = input::evaluate(&evaluator, &input_args)?;
    let invocation = Invocation {
        global,
        file: input_args.file.as_deref(),
        selection,
    };
    for (index, value) in values.iter().enumerate() {
        // A value carrying `kilnLock` (an AlmaLinux root) whose lock is missing or stale
        // fails here, naming the `kiln lock` command that fixes it.
        let attr = selection.attr.get(index).map(String::as_str);
        if let Some(text) = lock_problem(invocation, &evaluator, value, attr)? {
            return Err(Failure::Reported(text));
        }
    }
    for (index, value) in values.into_iter().enumerate() {
        let drvs = evaluator.derivations_of(value.clone()).map_err(|e| {
            // A build that uses an AlmaLinux root with a missing or stale lock (as its
            // `rootfs`, say) fails here: name the `kiln lock` command for that root.
            let attr = selection.attr.get(index).map(String::as_str);
            nested_lock_problem(invocation, &evaluator, &value, attr)
                .map(Failure::Reported)
                .unwrap_or_else(|| input::reported(&evaluator, &e))
        })?;
        for drv in drvs {
            let drv_path = store
                .store_dir()
                .parse(&drv)
                .with_context(|| format!("evaluation produced a bad .drv path `{drv}`"))?;
            targets.push(BuildTarget::all_outputs(drv_path));
        }
    }
    // The .drv files are registered in batches: make them valid before planning builds.
    eval_store
        .flush()
        .context("cannot register the derivations in the store")?;
    crate::eval_limits::disarm();
    Ok(targets)
}

/// What a realise made valid: each target's wanted outputs (name, path), in target order.
pub struct Realised {
    pub store: Arc<LocalStore>,
    pub targets: Vec<Vec<(String, StorePath)>>,
}

/// Makes valid the outputs of `paths` (`.drv` paths, or one FILE evaluated with `selection`):
/// substitutes, builds, pushes (`--push-to`); with `--dry-run` prints the plan and returns
/// `None`. Makes no result links.
pub fn realise(
    global: &GlobalOptions,
    paths: &[PathBuf],
    selection: &SelectionArgs,
    options: &BuildOptions,
) -> Result<Option<Realised>, Failure> {
    let store = Arc::new(open_store(global)?);
    let targets =
        if !paths.is_empty() && selection.expr.is_none() && paths.iter().all(|p| is_drv_arg(p)) {
            let mut targets = Vec::new();
            for arg in paths {
                let target = drv_target(&store, arg)?;
                ensure_registered(&store, &target.drv_path)?;
                targets.push(target);
            }
            targets
        } else {
            instantiate(global, paths, selection, &store)?
        };
    for target in &targets {
        // Keep the derivations alive while we build from them.
        store
            .add_temp_root(&target.drv_path)
            .map_err(anyhow::Error::from)?;
    }
    if !options.check {
        let jobs = options
            .jobs
            .or(global.config.jobs)
            .unwrap_or_else(ScheduleOptions::default_jobs);
        let dry_run_printed = crate::substitution::substitute_missing(
            global,
            &store,
            &targets,
            &options.substituters,
            options.no_substitute,
            jobs,
            options.dry_run,
        )?;
        if dry_run_printed {
            return Ok(None);
        }
    }
    let plan = BuildPlan::load(&store, &targets, options.check).map_err(anyhow::Error::from)?;

    if options.dry_run {
        print_dry_run(&store, &plan);
        return Ok(None);
    }

    if !plan.is_empty() {
        build(global, &store, &plan, options)?;
        if let Some(url) = options.push_to.as_ref().or(global.config.push_to.as_ref()) {
            let jobs = options
                .jobs
                .or(global.config.jobs)
                .unwrap_or_else(ScheduleOptions::default_jobs);
            crate::cache_push::push_built(global, &store, &plan, url, jobs)?;
        }
    }

    let mut realised = Vec::new();
    // Floating and deferred outputs are known from their realisations once built.
    let targets = plan.realised_targets(&store).map_err(anyhow::Error::from)?;
    for (_, outputs) in &targets {
        for path in outputs.values() {
            // Outputs that were valid before (not built by us) are protected from a concurrent
            // collection only from here on; check that they survived until now.
            store.add_temp_root(path).map_err(anyhow::Error::from)?;
            if !store.is_valid(path).map_err(anyhow::Error::from)? {
                return Err(anyhow!(
                    "output '{}' was deleted (by a concurrent garbage collection?); run again",
                    store.store_dir().print(path)
                )
                .into());
            }
        }
        realised.push(
            outputs
                .iter()
                .map(|(name, path)| (name.clone(), path.clone()))
                .collect(),
        );
    }
    Ok(Some(Realised {
        store,
        targets: realised,
    }))
}

fn print_dry_run(store: &LocalStore, plan: &BuildPlan) {
    let dir = store.store_dir();
    if plan.is_empty() {
        log_events::info("nothing to build: every output is valid");
        return;
    }
    log_events::info(&format!(
        "{} derivation{} would be built:",
        plan.builds.len(),
        if plan.builds.len() == 1 { "" } else { "s" }
    ));
    for build in &plan.builds {
        log_events::info(&format!(
            "  {} ({})",
            dir.print(&build.drv_path),
            build.reason
        ));
    }
}

fn build(
    global: &GlobalOptions,
    store: &Arc<LocalStore>,
    plan: &BuildPlan,
    options: &BuildOptions,
) -> Result<(), Failure> {
    let mut settings = build_settings(
        global,
        options.allow_network || global.config.allow_network.unwrap_or(false),
    );
    let seconds = |flag: Option<u64>, configured: Option<u64>, default: u64| {
        Some(flag.or(configured).unwrap_or(default))
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs)
    };
    settings.timeout = seconds(options.timeout, global.config.timeout, 0);
    settings.max_silent_time = seconds(
        options.max_silent_time,
        global.config.max_silent_time,
        DEFAULT_MAX_SILENT_TIME_SECS,
    );
    if let Some(ByteSize(bytes)) = options.max_build_memory {
        settings.limits.memory_bytes = Some(bytes).filter(|&b| b > 0);
    }
    if let Some(count) = options.max_build_pids {
        settings.limits.pids = Some(count).filter(|&c| c > 0);
    }
    let mut jobs = options
        .jobs
        .or(global.config.jobs)
        .unwrap_or_else(ScheduleOptions::default_jobs);
    let remote = match options
        .remote
        .as_ref()
        .or(global.config.remote_executor.as_ref())
    {
        Some(url) => {
            let mut remote_settings = RemoteSettings::new(url);
            if let Some(instance) = &global.config.remote_instance_name {
                remote_settings.instance_name = instance.clone();
            }
            if let Some(file) = &global.config.remote_token_file {
                remote_settings.token =
                    BearerToken::from_file(file).map_err(anyhow::Error::from)?;
            }
            match RemoteExecutor::connect(remote_settings) {
                Ok(executor) => {
                    // Remote builds wait on the network, not on this machine's CPUs; what
                    // builds here keeps the local count.
                    settings.local_slots = Some(Arc::new(LocalSlots::new(jobs)));
                    jobs = options
                        .remote_jobs
                        .or(global.config.remote_jobs)
                        .unwrap_or(DEFAULT_REMOTE_JOBS)
                        .max(1);
                    Some(Arc::new(executor))
                }
                // A cluster that is down is no reason not to build: everything builds here.
                Err(error) if error.is_infrastructure() => {
                    log_events::warn(&format!("{error}; building locally"));
                    None
                }
                // A cluster that cannot run kiln's actions is a configuration to fix.
                Err(error) => return Err(anyhow::Error::from(error).into()),
            }
        }
        None => None,
    };
    settings.remote = remote
        .clone()
        .map(|executor| RemoteHandle(executor as Arc<dyn kiln_builder::remote::RemoteBuilder>));
    let schedule = ScheduleOptions {
        jobs,
        keep_going: options.keep_going,
        check: options.check,
        settings,
    };
    let result = run_builds(store, plan, &schedule);
    if let Some(executor) = remote {
        let stats = executor.stats();
        log_events::info(&format!(
            "remote: {} built on the cluster, {} from its action cache, {} bytes uploaded",
            stats.executed, stats.cached, stats.uploaded_bytes
        ));
    }
    result
}

/// Builds sent to a remote cluster at once when neither `--remote-jobs` nor the configuration
/// says.
const DEFAULT_REMOTE_JOBS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drv_arguments_are_recognised() {
        assert!(is_drv_arg(Path::new("/kiln/store/abc-x.drv")));
        assert!(is_drv_arg(Path::new("/kiln/store/abc-x.drv!out,dev")));
        assert!(!is_drv_arg(Path::new("default.nix")));
    }
}
