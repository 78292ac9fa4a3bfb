//! Command-line definition (clap) and dispatch to `commands::<verb>`. Owns the global options
//! (store locations, search path), the large-stack thread every command runs on (the evaluator's `with_eval_stack`), and the
//! mapping of outcomes to exit codes: 0 ok, 1 evaluation or build failure, 2 usage, 3 internal.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "A Nix-compatible functional build tool",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Evaluate a Nix expression and print its value, as `nix-instantiate --eval`.
    Eval(commands::eval::EvalArgs),
    /// Evaluate an expression and write the `.drv` files of its derivations, printing their paths.
    Instantiate(commands::instantiate::InstantiateArgs),
    /// Print derivations as JSON, as `nix show-derivation`.
    ShowDerivation(commands::show_derivation::ShowDerivationArgs),
    /// Build derivations (from `.drv` paths or an expression) and print their output paths.
    Realise(commands::realise::RealiseArgs),
    /// Write or renew the lock file an expression pins (`kilnLock`) and print the package diff.
    Lock(commands::lock::LockArgs),
    /// Print the build log of a derivation or of the derivation that built an output.
    Log(commands::log::LogArgs),
    /// Show what the store records about valid paths.
    PathInfo(commands::path_info::PathInfoArgs),
    /// Delete the store paths that no GC root reaches.
    Gc(commands::gc::GcArgs),
    /// Check that valid paths exist and (optionally) still have their recorded hashes.
    Verify(commands::verify::VerifyArgs),
    /// Push store paths and their closures to a Nix binary cache.
    Copy(commands::copy::CopyArgs),
    /// Make and show Nix-format signing keys for binary caches.
    Key(commands::key::KeyArgs),
    /// Sign valid store paths with a secret key.
    Sign(commands::sign::SignArgs),
}

/// How a command ended, when not successfully.
#[derive(Debug)]
pub enum Failure {
    /// Evaluation or build failed; the message is already rendered for the terminal.
    Reported(String),
    /// Any other error the user can act on (missing file, bad store path, …).
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

/// Parses the arguments, runs the command on a large-stack thread, and returns the exit code.
pub fn run() -> i32 {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if let Err(e) = cli.global.resolve() {
        eprintln!("error: {e:#}");
        return 2;
    }
    // Every command runs on the evaluator's large-stack thread, which also sets the stack
    // floor the evaluator's recursion guard measures against; the process exits right after.
    let outcome =
        std::panic::catch_unwind(|| kiln_eval::with_eval_stack_until_exit(move || dispatch(cli)));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(Failure::Reported(text))) => {
            eprint!("{}", kiln_eval::error::for_stderr(&text));
            if !text.ends_with('\n') {
                eprintln!();
            }
            1
        }
        Ok(Err(Failure::Error(e))) => {
            eprintln!("error: {e:#}");
            1
        }
        // The panic message has already been printed by the panic hook.
        Err(_) => 3,
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Eval(args) => commands::eval::run(&cli.global, args),
        Command::Instantiate(args) => commands::instantiate::run(&cli.global, args),
        Command::ShowDerivation(args) => commands::show_derivation::run(&cli.global, args),
        Command::Realise(args) => commands::realise::run(&cli.global, args),
        Command::Lock(args) => commands::lock::run(&cli.global, args),
        Command::Log(args) => commands::log::run(&cli.global, args),
        Command::PathInfo(args) => commands::path_info::run(&cli.global, args),
        Command::Gc(args) => commands::gc::run(&cli.global, args),
        Command::Verify(args) => commands::verify::run(&cli.global, args),
        Command::Copy(args) => commands::copy::run(&cli.global, args),
        Command::Key(args) => commands::key::run(&cli.global, args),
        Command::Sign(args) => commands::sign::run(&cli.global, args),
    }
}
