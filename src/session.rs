//! What the verbs share: the global options (store locations, search path, configuration,
//! `--option`), how a verb fails ([`Failure`]), opening the store the global options name, reading a store path from the command line, the settings of builds started from the
//! command line (the configuration's rewrite rules and limits), the fetch options of
//! evaluation-time downloads, and running a build plan with the progress display and the
//! failure report. Verbs import this module, never each other.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_builder::build::BuildSettings;
use kiln_builder::builtin_builders::fetchurl::{FetchOptions, UrlRewrite};
use kiln_builder::builtin_builders::{BuiltinOptions, UnpackOptions};
use kiln_builder::log::{printable, tail_lines, BuildLog};
use kiln_builder::plan::BuildPlan;
use kiln_builder::report::{BuildEvents, BuildOutcome};
use kiln_builder::sandbox::ResourceLimits;
use kiln_builder::scheduler::{run_plan, BuildStatus, ScheduleOptions};
use kiln_local_store::LocalStore;
use kiln_store::store_path::{StoreDir, StorePath};

use crate::config::{ByteSize, Config};
use crate::log_events::{self, LogFormat};
use crate::progress::Progress;

/// Options every command understands. After parsing, [`GlobalOptions::resolve`] reads the
/// configuration file and settles the values the flags left open.
#[derive(Args, Debug, Clone)]
pub struct GlobalOptions {
    /// The logical store directory hashed into every store path [default: /kiln/store].
    #[arg(
        long = "store-dir",
        global = true,
        env = "KILN_STORE_DIR",
        value_name = "DIR"
    )]
    store_dir_option: Option<String>,
    /// Where the store lives on this machine (holds `store/` and `var/`);
    /// default `$XDG_DATA_HOME/kiln`.
    #[arg(long = "store", global = true, env = "KILN_STORE", value_name = "ROOT")]
    pub store_root: Option<PathBuf>,
    /// Add a search path entry (`NAME=PATH` or `PATH`), searched before `KILN_PATH`.
    #[arg(short = 'I', global = true, value_name = "[NAME=]PATH")]
    pub include: Vec<String>,
    /// Read the configuration from this file instead of `$XDG_CONFIG_HOME/kiln/config.toml`.
    #[arg(
        long = "config",
        global = true,
        env = "KILN_CONFIG",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// Show every frame of an evaluation error's trace, not only the first few.
    #[arg(long = "show-trace", global = true)]
    pub show_trace: bool,
    /// Pure evaluation: no `getEnv`, `currentTime`, `storePath` or unpinned fetches.
    #[arg(long = "pure-eval", global = true)]
    pub pure_eval: bool,
    /// Set a setting, as Nix's `--option NAME VALUE`: `abort-on-warn`, `pure-eval`,
    /// `show-trace`, `require-sigs` (each `true` or `false`); `substituters`,
    /// `trusted-public-keys`, `secret-key-files` (space-separated lists).
    #[arg(long = "option", global = true, num_args = 2, value_names = ["NAME", "VALUE"])]
    pub option: Vec<String>,
    /// How progress and messages are reported on standard error: `bar` (default on a
    /// terminal), `line` (default elsewhere), `raw` (builder output) or `json` (one event per
    /// line).
    #[arg(
        long = "log-format",
        global = true,
        env = "KILN_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<LogFormat>,
    /// Stop evaluation after this many seconds (an error; builds are not counted).
    #[arg(long = "timeout", global = true, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Stop evaluation when the process holds more memory than this (`512M`, `4G`).
    #[arg(long = "max-memory", global = true, value_name = "SIZE")]
    pub max_memory: Option<ByteSize>,
    /// `builtins.warn` fails instead of going on (set by `--option abort-on-warn true`).
    #[arg(skip)]
    pub abort_on_warn: bool,
    /// The configuration file's settings (loaded by `resolve`).
    #[arg(skip)]
    pub config: Config,
    /// The logical store directory in force: the flag, else the configuration, else
    /// `/kiln/store` (set by `resolve`).
    #[arg(skip)]
    pub store_dir: String,
}

/// The logical store directory when neither a flag nor the configuration names one.
const DEFAULT_STORE_DIR: &str = "/kiln/store";

impl GlobalOptions {
    /// Loads the configuration file and settles the store directory.
    pub fn resolve(&mut self) -> anyhow::Result<()> {
        self.config = Config::load(self.config_file.as_deref())?;
        for pair in self.option.chunks(2) {
            let [name, value] = pair else {
                anyhow::bail!("--option needs a name and a value");
            };
            let words = || value.split_whitespace().map(str::to_owned);
            match name.as_str() {
                "substituters" => self.config.substituters = Some(words().collect()),
                "trusted-public-keys" => self.config.trusted_public_keys = words().collect(),
                "secret-key-files" => {
                    self.config.secret_key_files = words().map(PathBuf::from).collect()
                }
                _ => {}
            }
            if matches!(
                name.as_str(),
                "substituters" | "trusted-public-keys" | "secret-key-files"
            ) {
                continue;
            }
            let enabled = match value.as_str() {
                "true" => true,
                "false" => false,
                other => anyhow::bail!("--option {name}: expected true or false, not '{other}'"),
            };
            match name.as_str() {
                "abort-on-warn" => self.abort_on_warn = enabled,
                "pure-eval" => self.pure_eval = enabled,
                "show-trace" => self.show_trace = enabled,
                "require-sigs" => self.config.require_sigs = Some(enabled),
                other => anyhow::bail!(
                    "unknown setting '{other}' (kiln knows abort-on-warn, pure-eval, show-trace, require-sigs, substituters, trusted-public-keys, secret-key-files)"
                ),
            }
        }
        self.store_dir = self
            .store_dir_option
            .clone()
            .or_else(|| self.config.store_dir.clone())
            .unwrap_or_else(|| DEFAULT_STORE_DIR.to_string());
        Ok(())
    }

    /// The limits `--timeout` and `--max-memory` put on evaluation.
    pub fn eval_limits(&self) -> crate::eval_limits::EvalLimits {
        crate::eval_limits::EvalLimits {
            timeout: self.timeout.map(std::time::Duration::from_secs),
            max_memory: self.max_memory,
        }
    }

    /// The logical store directory given by `--store-dir` or `KILN_STORE_DIR`, if any.
    pub fn store_dir_flag(&self) -> Option<&str> {
        self.store_dir_option.as_deref()
    }

    /// The physical store root: `--store`, else the configuration's `store`, else
    /// `$XDG_DATA_HOME/kiln`, else `~/.local/share/kiln`.
    pub fn store_root(&self) -> PathBuf {
        if let Some(root) = self.store_root.as_ref().or(self.config.store.as_ref()) {
            return root.clone();
        }
        // Without HOME either, the root of the file system stands for it.
        kiln_local_store::LocalStore::default_root()
            .unwrap_or_else(|| PathBuf::from("/.local/share/kiln"))
    }
}

/// How a command ended, when not successfully.
#[derive(Debug)]
pub enum Failure {
    /// Evaluation or build failed; the message is already rendered for the terminal.
    Reported(String),
    /// Any other error the user can act on (missing file, bad store path, …).
    Error(anyhow::Error),
    /// Exit with this status, nothing to report (`kiln shell`: the status of its command).
    Exit(i32),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

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

/// Writes a verb's result to standard output and flushes it.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}
