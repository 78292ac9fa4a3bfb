//! `kiln lock FILE [-A ATTR]`: write or renew the lock file an expression pins, and print what
//! changed.
//!
//! The selected value names its lock through `kilnLock` (see `crate::rpm_lock`). The command
//! realises `kilnLock.drv` with the network allowed (the lock step is the one
//! non-fixed-output build that needs it; the configuration's `[[rewrite]]` rules reach it
//! through `KILN_URL_REWRITES`, see `session::build_settings`), writes its output over
//! `kilnLock.file` atomically, and prints the package diff between the old and the new lock,
//! or `lock is up to date`. A missing lock file is created.
//!
//! The lock step is a derivation like any other: when its output is already valid it is
//! reused, not run again. Its inputs pin the release and the package set, so for frozen
//! repositories (AlmaLinux's vault) the answer does not change.
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_builder::plan::{BuildPlan, BuildTarget};
use kiln_builder::scheduler::ScheduleOptions;

use super::input::{self, InputArgs};
use super::lock_advice::target_failure;
use crate::rpm_lock::{lock_target, package_diff, parse_packages, write_atomically, PackageChange};
use crate::session;
use crate::session::write_stdout;
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Run at most N builds at once (default: the number of CPUs).
    #[arg(short = 'j', long = "max-jobs", value_name = "N")]
    pub jobs: Option<usize>,
}

/// A path as the user would like to read it: relative to the current directory when inside it.
fn shown_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|relative| !relative.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

pub fn run(global: &GlobalOptions, args: LockArgs) -> Result<(), Failure> {
    let store = Arc::new(session::open_store(global)?);
    let eval_store = Rc::new(kiln_glue::LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator(global, eval_store.clone());
    let values = input::evaluate(&evaluator, &args.input)?;
    let [value] = values.as_slice() else {
        return Err(anyhow!("`kiln lock` renews one lock: give at most one -A").into());
    };
    let what = match args.input.selection.attr.first() {
        Some(attr) => format!("`{attr}`"),
        None => "the expression".to_owned(),
    };
    let target = lock_target(&evaluator, value)
        .map_err(|error| target_failure(&evaluator, error))?
        .ok_or_else(|| {
        anyhow!("{what} has no `kilnLock` attribute: select a `bootstrap.alma9` root (or something else carrying `kilnLock`) with -A")
    })?;
    let file = target.file.ok_or_else(|| {
        anyhow!("{what} takes its lock as a value, not from a file: give `lock = ./FILE.json` to let `kiln lock` write it")
    })?;

    let drvs = evaluator
        .derivations_of(target.drv)
        .map_err(|e| input::reported(&evaluator, &e))?;
    let [drv] = drvs.as_slice() else {
        return Err(anyhow!("`kilnLock.drv` of {what} must be one derivation").into());
    };
    let drv_path = store
        .store_dir()
        .parse(drv)
        .with_context(|| format!("evaluation produced a bad .drv path `{drv}`"))?;
    eval_store
        .flush()
        .context("cannot register the derivations in the store")?;
    store
        .add_temp_root(&drv_path)
        .map_err(anyhow::Error::from)?;
    let targets = [BuildTarget::all_outputs(drv_path)];
    let plan = BuildPlan::load(&store, &targets, false).map_err(anyhow::Error::from)?;
    if !plan.is_empty() {
        let options = ScheduleOptions {
            jobs: args
                .jobs
                .or(global.config.jobs)
                .unwrap_or_else(ScheduleOptions::default_jobs),
            keep_going: false,
            check: false,
            // The lock step resolves packages online: that is what this command is for.
            settings: session::build_settings(global, true),
        };
        session::run_builds(&store, &plan, &options)?;
    }
    let targets = plan.realised_targets(&store).map_err(anyhow::Error::from)?;
    let output = targets
        .first()
        .and_then(|(_, outputs)| outputs.get("out").or_else(|| outputs.values().next()))
        .ok_or_else(|| anyhow!("the lock step has no output"))?;
    store.add_temp_root(output).map_err(anyhow::Error::from)?;
    let output_file = store.physical_path(output);
    let new_text = std::fs::read(&output_file).with_context(|| {
        format!(
            "cannot read the lock step's output {}",
            output_file.display()
        )
    })?;
    let new_packages = parse_packages(
        &String::from_utf8_lossy(&new_text),
        &store.store_dir().print(output),
    )
    .map_err(anyhow::Error::from)?;

    let shown = shown_path(&file);
    let old_text = match std::fs::read(&file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow!("cannot read {shown}: {e}").into()),
    };
    if old_text.as_deref() == Some(new_text.as_slice()) {
        println!("lock is up to date: {shown}");
        return Ok(());
    }
    // A lock that does not parse (hand-edited, truncated) is replaced; its packages count as
    // none.
    let old_packages = match &old_text {
        Some(text) => parse_packages(&String::from_utf8_lossy(text), &shown).unwrap_or_else(|e| {
            eprintln!("warning: {:#}; replacing it", anyhow::Error::from(e));
            Vec::new()
        }),
        None => Vec::new(),
    };
    write_atomically(&file, &new_text).map_err(anyhow::Error::from)?;
    let changes = package_diff(&old_packages, &new_packages);
    let mut stdout = String::new();
    for change in &changes {
        stdout.push_str(&format!("{change}\n"));
    }
    let count = |f: fn(&PackageChange) -> bool| changes.iter().filter(|c| f(c)).count();
    let summary = format!(
        "{} {shown}: {} package{}; {} added, {} removed, {} changed",
        if old_text.is_some() {
            "updated"
        } else {
            "created"
        },
        new_packages.len(),
        if new_packages.len() == 1 { "" } else { "s" },
        count(|c| matches!(c, PackageChange::Added { .. })),
        count(|c| matches!(c, PackageChange::Removed { .. })),
        count(|c| matches!(
            c,
            PackageChange::Changed { .. } | PackageChange::Replaced { .. }
        )),
    );
    stdout.push_str(&summary);
    stdout.push('\n');
    if changes.is_empty() {
        stdout.push_str("no package changed (the request, release or repositories did)\n");
    }
    write_stdout(stdout.as_bytes())?;
    Ok(())
}
