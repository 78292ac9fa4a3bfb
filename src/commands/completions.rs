//! `kiln completions SHELL`: the completion script of a shell (bash, zsh, fish, elvish,
//! powershell), generated from the command line's clap definitions and printed on standard
//! output, so it always knows every verb and option of this binary.
use std::io::Write;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the completion script of `shell` for the `kiln` command to `out`.
pub fn write_script(shell: Shell, out: &mut dyn Write) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "kiln", out);
}

pub fn run(_global: &GlobalOptions, args: CompletionsArgs) -> Result<(), Failure> {
    let mut script = Vec::new();
    write_script(args.shell, &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    Ok(())
}
