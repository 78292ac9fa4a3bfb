//! Command-line definition (clap) and dispatch to `commands::<verb>`. Owns the large-stack
//! thread every command runs on (the evaluator's `with_eval_stack`), and the mapping of
//! outcomes to exit codes: 0 ok, 1 evaluation or build failure, 2 usage, 3 internal.
use clap::{CommandFactory, Parser, Subcommand};

use crate::commands;
use crate::log_events;
use crate::session::{Failure, GlobalOptions};

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
    /// Explain why two derivations (or outputs, or expressions) differ.
    Diff(commands::diff::DiffArgs),
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
    /// Enter a root file system: an interactive shell, or a command, in a sandbox.
    Shell(commands::shell::ShellArgs),
    /// Run builds for a REAPI cluster: a bot of its Remote Workers API (Bots service).
    RemoteWorker(commands::remote_worker::RemoteWorkerArgs),
    /// Build one remote action from its manifest (what `remote-worker` runs).
    #[command(hide = true)]
    RemoteRunAction(commands::remote_worker::RemoteRunActionArgs),
    /// Print the shell completion script of bash, zsh, fish, elvish or powershell.
    Completions(commands::completions::CompletionsArgs),
    /// Print the manual page (roff), or write one page per verb into a directory.
    Manpage(commands::manpage::ManpageArgs),
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
    log_events::set_format(cli.global.log_format);
    if let Err(e) = cli.global.resolve() {
        log_events::error(&format!("{e:#}"));
        return 2;
    }
    // Every command runs on the evaluator's large-stack thread, which also sets the stack
    // floor the evaluator's recursion guard measures against; the process exits right after.
    let outcome =
        std::panic::catch_unwind(|| kiln_eval::with_eval_stack_until_exit(move || dispatch(cli)));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(Failure::Reported(text))) if log_events::is_json() => {
            log_events::message(log_events::Level::Error, text.trim_end());
            1
        }
        Ok(Err(Failure::Reported(text))) => {
            eprint!("{}", kiln_eval::error::for_stderr(&text));
            if !text.ends_with('\n') {
                eprintln!();
            }
            1
        }
        Ok(Err(Failure::Error(e))) => {
            log_events::error(&format!("{e:#}"));
            1
        }
        Ok(Err(Failure::Exit(code))) => code,
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
        Command::Diff(args) => commands::diff::run(&cli.global, args),
        Command::Log(args) => commands::log::run(&cli.global, args),
        Command::PathInfo(args) => commands::path_info::run(&cli.global, args),
        Command::Gc(args) => commands::gc::run(&cli.global, args),
        Command::Verify(args) => commands::verify::run(&cli.global, args),
        Command::Copy(args) => commands::copy::run(&cli.global, args),
        Command::Key(args) => commands::key::run(&cli.global, args),
        Command::Sign(args) => commands::sign::run(&cli.global, args),
        Command::Shell(args) => commands::shell::run(&cli.global, args),
        Command::RemoteWorker(args) => commands::remote_worker::run(&cli.global, args),
        Command::RemoteRunAction(args) => commands::remote_worker::run_action(&cli.global, args),
        Command::Completions(args) => commands::completions::run(Cli::command(), args),
        Command::Manpage(args) => commands::manpage::run(Cli::command(), args),
    }
}
