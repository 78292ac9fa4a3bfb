//! `kiln realise`: build derivations and hand out their outputs.
//!
//! What to build is either `.drv` store paths (logical `/kiln/store/…drv` or physical paths
//! under the store root, optionally `DRV!out,dev` for some outputs) or an expression (a FILE,
//! `-E`, with `-A`/`--arg`/`--argstr`) that is evaluated and instantiated first, which writes
//! and registers the `.drv` files. A `.drv` given by path that exists but is not registered
//! (written by some other tool) is registered, with its input derivations, before the build so
//! that GC and `path-info` see it.
//!
//! Output: the physical paths of the wanted outputs, one per line (what the host user is handed
//! opens on the host: docs/architecture.md, "Stores: logical and physical"), and unless `--no-out-link` a `result` symlink per output
//! named as `nix-build` names them (`result`, `result-dev`, `result-2`, …), each registered as
//! an indirect GC root. Failures exit 1, naming each failed derivation with the tail of its log.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use kiln_builder::plan::{read_derivation, BuildPlan, BuildTarget};
use kiln_builder::scheduler::ScheduleOptions;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use super::input::{self, InputArgs, SelectionArgs};
use crate::cli::{Failure, GlobalOptions};
use crate::config::ByteSize;
use crate::log_events;
use crate::session::{
    build_settings, open_store, run_builds, store_path_arg, DEFAULT_MAX_SILENT_TIME_SECS,
};

#[derive(Args, Debug)]
pub struct RealiseArgs {
    /// A file to evaluate (default `./default.nix`), or `.drv` store paths to build
    /// (`DRV!out,dev` selects outputs).
    #[arg(value_name = "FILE | DRV")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Run at most N builds at once (default: the number of CPUs).
    #[arg(short = 'j', long = "max-jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Name of the result symlink (default `./result`).
    #[arg(short = 'o', long = "out-link", value_name = "LINK")]
    pub out_link: Option<PathBuf>,
    /// Create no result symlink.
    #[arg(long, conflicts_with = "out_link")]
    pub no_out_link: bool,
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
    args: &RealiseArgs,
    store: &Arc<LocalStore>,
) -> Result<Vec<BuildTarget>, Failure> {
    if args.paths.len() > 1 {
        return Err(anyhow!("give one file to evaluate, or `.drv` paths only").into());
    }
    let input_args = InputArgs {
        file: args.paths.first().cloned(),
        selection: args.selection.clone(),
    };
    let eval_store = Rc::new(kiln_glue::LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator_over(global, eval_store.clone(), store.clone());
    let mut targets = Vec::new();
    let values = input::evaluate(&evaluator, &input_args)?;
    for (index, value) in values.iter().enumerate() {
        // A value carrying `kilnLock` (an AlmaLinux root) whose lock is missing or stale
        // fails here, naming the `kiln lock` command that fixes it.
        let attr = args.selection.attr.get(index).map(String::as_str);
        if let Some(text) = super::lock_advice::lock_problem(
            global,
            &evaluator,
            value,
            input_args.file.as_deref(),
            &args.selection,
            attr,
        )? {
            return Err(Failure::Reported(text));
        }
    }
    for (index, value) in values.into_iter().enumerate() {
        let drvs = evaluator.derivations_of(value.clone()).map_err(|e| {
            // A build that uses an AlmaLinux root with a missing or stale lock (as its
            // `rootfs`, say) fails here: name the `kiln lock` command for that root.
            let attr = args.selection.attr.get(index).map(String::as_str);
            super::lock_advice::nested_lock_problem(
                global,
                &evaluator,
                &value,
                input_args.file.as_deref(),
                &args.selection,
                attr,
            )
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
    Ok(targets)
}

pub fn run(global: &GlobalOptions, args: RealiseArgs) -> Result<(), Failure> {
    let store = Arc::new(open_store(global)?);
    let targets = if !args.paths.is_empty()
        && args.selection.expr.is_none()
        && args.paths.iter().all(|p| is_drv_arg(p))
    {
        let mut targets = Vec::new();
        for arg in &args.paths {
            let target = drv_target(&store, arg)?;
            ensure_registered(&store, &target.drv_path)?;
            targets.push(target);
        }
        targets
    } else {
        instantiate(global, &args, &store)?
    };
    for target in &targets {
        // Keep the derivations alive while we build from them.
        store
            .add_temp_root(&target.drv_path)
            .map_err(anyhow::Error::from)?;
    }
    if !args.check {
        let jobs = args
            .jobs
            .or(global.config.jobs)
            .unwrap_or_else(ScheduleOptions::default_jobs);
        let dry_run_printed = crate::substitution::substitute_missing(
            global,
            &store,
            &targets,
            &args.substituters,
            args.no_substitute,
            jobs,
            args.dry_run,
        )?;
        if dry_run_printed {
            return Ok(());
        }
    }
    let plan = BuildPlan::load(&store, &targets, args.check).map_err(anyhow::Error::from)?;

    if args.dry_run {
        print_dry_run(&store, &plan);
        return Ok(());
    }

    if !plan.is_empty() {
        build(global, &store, &plan, &args)?;
        if let Some(url) = args.push_to.as_ref().or(global.config.push_to.as_ref()) {
            crate::cache_push::push_built(global, &store, &plan, url)?;
        }
    }

    let mut stdout_text = String::new();
    for (index, (_, outputs)) in plan.targets.iter().enumerate() {
        for (name, path) in outputs {
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
            let physical = store.physical_path(path);
            if !args.no_out_link && !args.dry_run && !args.check {
                let base = args
                    .out_link
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("result"));
                make_out_link(&store, &link_name(&base, index, name), &physical)?;
            }
            stdout_text.push_str(&physical.to_string_lossy());
            stdout_text.push('\n');
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(stdout_text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    Ok(())
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
    args: &RealiseArgs,
) -> Result<(), Failure> {
    let mut settings = build_settings(
        global,
        args.allow_network || global.config.allow_network.unwrap_or(false),
    );
    let seconds = |flag: Option<u64>, configured: Option<u64>, default: u64| {
        Some(flag.or(configured).unwrap_or(default))
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs)
    };
    settings.timeout = seconds(args.timeout, global.config.timeout, 0);
    settings.max_silent_time = seconds(
        args.max_silent_time,
        global.config.max_silent_time,
        DEFAULT_MAX_SILENT_TIME_SECS,
    );
    if let Some(ByteSize(bytes)) = args.max_build_memory {
        settings.limits.memory_bytes = Some(bytes).filter(|&b| b > 0);
    }
    if let Some(count) = args.max_build_pids {
        settings.limits.pids = Some(count).filter(|&c| c > 0);
    }
    let options = ScheduleOptions {
        jobs: args
            .jobs
            .or(global.config.jobs)
            .unwrap_or_else(ScheduleOptions::default_jobs),
        keep_going: args.keep_going,
        check: args.check,
        settings,
    };
    run_builds(store, plan, &options)
}

/// `nix-build`'s result link names: `result`, `result-dev`; for later targets `result-2`,
/// `result-2-dev`, ….
fn link_name(base: &Path, target_index: usize, output: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    if target_index > 0 {
        name.push(format!("-{}", target_index + 1));
    }
    if output != "out" {
        name.push(format!("-{output}"));
    }
    PathBuf::from(name)
}

/// Points `link` at `target` (replacing an older link) and registers it as an indirect root.
fn make_out_link(store: &LocalStore, link: &Path, target: &Path) -> anyhow::Result<()> {
    let temporary = {
        let mut name = link.as_os_str().to_owned();
        name.push(format!(".tmp-{}", std::process::id()));
        PathBuf::from(name)
    };
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)
        .with_context(|| format!("cannot create the link {}", link.display()))?;
    // Register the root before the link points into the store, so a collection never sees
    // the link without the root.
    store
        .add_indirect_root(link)
        .with_context(|| format!("cannot register {} as a GC root", link.display()))?;
    std::fs::rename(&temporary, link)
        .with_context(|| format!("cannot create the link {}", link.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_links_are_named_as_nix_build_names_them() {
        let base = Path::new("result");
        assert_eq!(link_name(base, 0, "out"), Path::new("result"));
        assert_eq!(link_name(base, 0, "dev"), Path::new("result-dev"));
        assert_eq!(link_name(base, 1, "out"), Path::new("result-2"));
        assert_eq!(link_name(base, 2, "lib"), Path::new("result-3-lib"));
    }

    #[test]
    fn drv_arguments_are_recognised() {
        assert!(is_drv_arg(Path::new("/kiln/store/abc-x.drv")));
        assert!(is_drv_arg(Path::new("/kiln/store/abc-x.drv!out,dev")));
        assert!(!is_drv_arg(Path::new("default.nix")));
    }
}
