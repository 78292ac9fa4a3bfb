//! What a verb that works on built things (`kiln shell`) is pointed at — an *installable* —
//! and making it exist: a store path or a link into the store (such as `./result`), a `.drv`
//! (all its outputs), or an expression (a FILE or `-E`, with `-A`/`--arg`/`--argstr`) whose
//! value is a derivation or a list of them (as a `rootfs = [ … ]` list: topmost first). What is
//! missing is fetched from the binary caches or built, with the configuration's build
//! settings, as `kiln realise` would; the result is the store paths in order (a derivation
//! gives its `out` output, else its first).
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use kiln_builder::plan::{BuildPlan, BuildTarget};
use kiln_builder::scheduler::ScheduleOptions;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use crate::cli::{Failure, GlobalOptions};
use crate::commands::input::{self, InputArgs, SelectionArgs};
use crate::session::{build_settings, run_builds, store_path_arg, DEFAULT_MAX_SILENT_TIME_SECS};

/// The store paths `installable` (with `selection`) names, fetched or built as needed, each
/// kept alive by a temporary GC root for the rest of the process.
pub fn realise(
    global: &GlobalOptions,
    store: &Arc<LocalStore>,
    installable: Option<&Path>,
    selection: &SelectionArgs,
) -> Result<Vec<StorePath>, Failure> {
    let mut ready = Vec::new();
    let mut targets = Vec::new();
    match installable {
        Some(arg) if selection.expr.is_none() && looks_like_store_path(store, arg) => {
            let path = store_path_arg(store, arg)?;
            if path.is_derivation() {
                targets.push(BuildTarget::all_outputs(path));
            } else {
                store.add_temp_root(&path).map_err(anyhow::Error::from)?;
                if !store.is_valid(&path).map_err(anyhow::Error::from)? {
                    return Err(anyhow!(
                        "'{}' is not a valid store path",
                        store.store_dir().print(&path)
                    )
                    .into());
                }
                ready.push(path);
            }
        }
        _ => targets = instantiate(global, store, installable, selection)?,
    }
    if targets.is_empty() {
        if ready.is_empty() {
            return Err(anyhow!("the installable names no derivation and no store path").into());
        }
        return Ok(ready);
    }
    for target in &targets {
        store
            .add_temp_root(&target.drv_path)
            .map_err(anyhow::Error::from)?;
    }
    let jobs = global
        .config
        .jobs
        .unwrap_or_else(ScheduleOptions::default_jobs);
    crate::substitution::substitute_missing(global, store, &targets, &[], false, jobs, false)?;
    let plan = BuildPlan::load(store, &targets, false).map_err(anyhow::Error::from)?;
    if !plan.is_empty() {
        let mut settings = build_settings(global, global.config.allow_network.unwrap_or(false));
        let seconds = |configured: Option<u64>, default: u64| {
            Some(configured.unwrap_or(default))
                .filter(|&secs| secs > 0)
                .map(Duration::from_secs)
        };
        settings.timeout = seconds(global.config.timeout, 0);
        settings.max_silent_time =
            seconds(global.config.max_silent_time, DEFAULT_MAX_SILENT_TIME_SECS);
        let options = ScheduleOptions {
            jobs,
            keep_going: false,
            check: false,
            settings,
        };
        run_builds(store, &plan, &options)?;
    }
    let mut paths = Vec::new();
    for (drv, outputs) in &plan.targets {
        let path = outputs
            .get("out")
            .or_else(|| outputs.values().next())
            .ok_or_else(|| anyhow!("'{}' has no output to use", store.store_dir().print(drv)))?;
        store.add_temp_root(path).map_err(anyhow::Error::from)?;
        if !store.is_valid(path).map_err(anyhow::Error::from)? {
            return Err(anyhow!(
                "output '{}' was deleted (by a concurrent garbage collection?); run again",
                store.store_dir().print(path)
            )
            .into());
        }
        paths.push(path.clone());
    }
    Ok(paths)
}

/// Whether `arg` names something in the store (a store path, a `.drv` or a link into the
/// store) rather than a file to evaluate.
fn looks_like_store_path(store: &LocalStore, arg: &Path) -> bool {
    if arg.extension().is_some_and(|e| e == "nix") || arg.is_dir() && !is_store_link(store, arg) {
        return false;
    }
    store_path_arg(store, arg).is_ok()
}

/// Whether a directory argument is (a link to) a store object, like `./result`.
fn is_store_link(store: &LocalStore, arg: &Path) -> bool {
    std::fs::canonicalize(arg).is_ok_and(|resolved| {
        let physical = std::fs::canonicalize(store.physical_store_dir())
            .unwrap_or_else(|_| store.physical_store_dir());
        resolved.starts_with(physical) || store.store_path_of(&resolved).is_some()
    })
}

/// Evaluates the expression and writes its derivations.
fn instantiate(
    global: &GlobalOptions,
    store: &Arc<LocalStore>,
    file: Option<&Path>,
    selection: &SelectionArgs,
) -> Result<Vec<BuildTarget>, Failure> {
    let input_args = InputArgs {
        file: file.map(Path::to_path_buf),
        selection: selection.clone(),
    };
    let eval_store = Rc::new(kiln_glue::LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator_over(global, eval_store.clone(), store.clone());
    let mut targets = Vec::new();
    for value in input::evaluate(&evaluator, &input_args)? {
        let drvs = evaluator
            .derivations_of(value)
            .map_err(|e| input::reported(&evaluator, &e))?;
        for drv in drvs {
            let drv_path = store
                .store_dir()
                .parse(&drv)
                .with_context(|| format!("evaluation produced a bad .drv path `{drv}`"))?;
            targets.push(BuildTarget::all_outputs(drv_path));
        }
    }
    eval_store
        .flush()
        .context("cannot register the derivations in the store")?;
    Ok(targets)
}
