//! What the verbs share once their arguments are parsed: opening the store the global options
//! name, reading a store path from the command line, the settings of builds started from the
//! command line (the configuration's rewrite rules and limits), the fetch options of
//! evaluation-time downloads, and running a build plan with the progress display and the
//! failure report. Verbs import this module, never each other.
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use kiln_builder::build::{BuildEvents, BuildOutcome, BuildSettings};
use kiln_builder::builtin_builders::fetchurl::{FetchOptions, UrlRewrite};
use kiln_builder::builtin_builders::{BuiltinOptions, UnpackOptions};
use kiln_builder::log::{printable, tail_lines, BuildLog};
use kiln_builder::plan::BuildPlan;
use kiln_builder::sandbox::ResourceLimits;
use kiln_builder::scheduler::{run_plan, BuildStatus, ScheduleOptions};
use kiln_local_store::LocalStore;
use kiln_store::store_path::{StoreDir, StorePath};

use crate::cli::{Failure, GlobalOptions};
use crate::config::{ByteSize, Config};
use crate::log_events;
use crate::progress::Progress;

/// The default of `--max-silent-time`: a build silent for an hour is taken to hang.
pub const DEFAULT_MAX_SILENT_TIME_SECS: u64 = 3600;

/// How many log lines a failure report shows.
const LOG_TAIL_LINES: usize = 25;

/// Opens the store the global options name.
pub fn open_store(global: &GlobalOptions) -> anyhow::Result<LocalStore> {
    let root = global.store_root();
    // Roots, links and prefixes are compared as absolute paths.
    let root = std::path::absolute(&root)
        .with_context(|| format!("cannot make {} absolute", root.display()))?;
    LocalStore::open(&root, StoreDir::new(&global.store_dir))
        .with_context(|| format!("cannot open the store at {}", root.display()))
}

/// The store path a command-line argument names: a logical or physical store path, or a link
/// (such as `./result`) into the store; anything below a store object names that object.
pub fn store_path_arg(store: &LocalStore, arg: &Path) -> anyhow::Result<StorePath> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let absolute = cwd.join(arg);
    if let Some(path) = store.store_path_of(&absolute) {
        return Ok(path);
    }
    let resolved = std::fs::canonicalize(&absolute)
        .with_context(|| format!("`{}` is not in the store", arg.display()))?;
    let physical_root = std::fs::canonicalize(store.physical_store_dir())
        .unwrap_or_else(|_| store.physical_store_dir());
    resolved
        .strip_prefix(&physical_root)
        .ok()
        .and_then(|inside| inside.components().next())
        .and_then(|first| first.as_os_str().to_str())
        .and_then(|base| StorePath::from_base_name(base).ok())
        .or_else(|| store.store_path_of(&resolved))
        .ok_or_else(|| anyhow!("`{}` is not in the store", arg.display()))
}

/// The environment variable in which network builds receive the `[[rewrite]]` rules: one
/// `FROM TO` pair per line, in the configuration's order (first match wins). Builders that
/// download by themselves (dnf in the stdlib's RPM lock step) apply them; it is not a
/// derivation attribute, so no .drv or output path depends on the rules.
pub const URL_REWRITES_ENV: &str = "KILN_URL_REWRITES";

/// The settings of builds started from the command line: the configuration's rewrite rules,
/// applied by the builtin fetcher and handed to builds that have the network in
/// [`URL_REWRITES_ENV`].
pub fn build_settings(global: &GlobalOptions, allow_network: bool) -> BuildSettings {
    let rules = &global.config.rewrite;
    let mut network_env = std::collections::BTreeMap::new();
    if !rules.is_empty() {
        let lines: Vec<String> = rules
            .iter()
            .map(|rule| format!("{} {}", rule.from, rule.to))
            .collect();
        network_env.insert(URL_REWRITES_ENV.to_owned(), lines.join("\n"));
    }
    BuildSettings {
        build_cores: 0,
        allow_network,
        network_env,
        builtin: BuiltinOptions {
            fetch: fetch_options(global),
            unpack: UnpackOptions {
                max_unpacked_size: global.config.max_unpack_size,
                ..UnpackOptions::default()
            },
        },
        limits: build_limits(&global.config),
        ..BuildSettings::default()
    }
}

/// The resource limits of each build: the configuration's, else the documented defaults
/// ([`ResourceLimits::defaults`]); 0 turns a limit off.
fn build_limits(config: &Config) -> ResourceLimits {
    let defaults = ResourceLimits::defaults();
    ResourceLimits {
        memory_bytes: match config.max_build_memory {
            Some(ByteSize(bytes)) => Some(bytes).filter(|&b| b > 0),
            None => defaults.memory_bytes,
        },
        pids: match config.max_build_pids {
            Some(count) => Some(count).filter(|&c| c > 0),
            None => defaults.pids,
        },
    }
}

/// Runs a build plan with the progress display; on failure, the report names each failed
/// derivation with the tail of its log.
pub fn run_builds(
    store: &Arc<LocalStore>,
    plan: &BuildPlan,
    options: &ScheduleOptions,
) -> Result<(), Failure> {
    // Build directories that a killed kiln left behind (their lock is free) go first.
    if let Err(error) = kiln_builder::build_dirs::remove_stale(store.root()) {
        log_events::warn(&format!("cannot remove stale build directories: {error}"));
    }
    let progress = Arc::new(Progress::new(store.store_dir().clone(), plan.builds.len()));
    let events: Arc<dyn BuildEvents> = progress.clone();
    let report = run_plan(store, plan, options, &events);
    progress.finish();

    let dir = store.store_dir();
    for (build, status) in plan.builds.iter().zip(&report.statuses) {
        if let BuildStatus::Succeeded(BuildOutcome::Built { impure: true, .. }) = status {
            log_events::warn(&format!(
                "{} used the network (impure; allowed by --allow-network, or by `kiln lock` for its lock step)",
                dir.print(&build.drv_path)
            ));
        }
    }
    if report.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut failed = 0;
    for (build, status) in plan.builds.iter().zip(&report.statuses) {
        let drv = dir.print(&build.drv_path);
        match status {
            BuildStatus::Failed(error) => {
                failed += 1;
                text.push_str(&format!(
                    "error: build of '{drv}' failed: {}\n",
                    printable(&error.to_string())
                ));
                let log = BuildLog::of(&store.log_dir(), &build.drv_path);
                if let Ok(Some(attempt)) = log.latest_attempt() {
                    let attempt = printable(&attempt);
                    let tail = tail_lines(&attempt, LOG_TAIL_LINES);
                    if !tail.is_empty() {
                        text.push_str(&format!("  last {} log lines:\n", tail.len()));
                        for line in tail {
                            text.push_str(&format!("  > {line}\n"));
                        }
                    }
                }
                text.push_str(&format!("  full log: kiln log {drv}\n"));
            }
            BuildStatus::DependencyFailed(dependency) => {
                text.push_str(&format!(
                    "error: cannot build '{drv}': its dependency '{}' failed\n",
                    dir.print(&plan.builds[*dependency].drv_path)
                ));
            }
            BuildStatus::NotStarted | BuildStatus::Succeeded(_) => {}
        }
    }
    text.push_str(&format!(
        "error: {failed} build{} failed\n",
        if failed == 1 { "" } else { "s" }
    ));
    Err(Failure::Reported(text))
}

/// The fetch options the global options give: the configuration's rewrite rules.
pub fn fetch_options(global: &GlobalOptions) -> FetchOptions {
    FetchOptions {
        rewrites: global
            .config
            .rewrite
            .iter()
            .map(|rule| UrlRewrite::new(&rule.from, &rule.to))
            .collect(),
        ..FetchOptions::default()
    }
}
