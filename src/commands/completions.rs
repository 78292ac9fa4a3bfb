//! `kiln completions SHELL`: the completion script of a shell (bash, zsh, fish, elvish,
//! powershell), generated from the command line's clap definitions and printed on standard
//! output, so it always knows every verb and option of this binary.
use std::io::Write;

use clap::Args;
use clap_complete::Shell;

use crate::session::write_stdout;
use crate::session::Failure;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the completion script of `shell` for the `kiln` command to `out`.
/// Writes the completion script of `command` (the whole command line, handed down by the
/// caller so that this verb does not depend on the parser that dispatches to it).
pub fn write_script(mut command: clap::Command, shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut command, "kiln", out);
}

pub fn run(command: clap::Command, args: CompletionsArgs) -> Result<(), Failure> {
    let mut script = Vec::new();
    write_script(command, args.shell, &mut script);
    write_stdout(&script)?;
    Ok(())
}
