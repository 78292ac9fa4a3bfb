//! Command-line definition (clap) and dispatch to `commands::<verb>`; maps errors to exit codes
//! (0 ok, 1 evaluation or build failure, 2 usage, 3 internal error).
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "kiln", version, about = "A Nix-compatible functional build tool")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn run() -> i32 {
    match Cli::try_parse() {
        Ok(_cli) => 0,
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                2
            } else {
                0
            }
        }
    }
}
