//! `kiln manpage`: the manual pages, generated from the command line's clap definitions
//! (clap_mangen). Without an argument, `kiln(1)` in roff on standard output (`kiln manpage |
//! man -l -`); with `--out-dir DIR`, `kiln.1` and one page per verb (`kiln-realise.1`, …)
//! written into DIR, ready for a `man1` directory.
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::session::Failure;

#[derive(Args, Debug)]
pub struct ManpageArgs {
    /// Write `kiln.1` and a page per verb into this directory instead of printing `kiln.1`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The roff text of `kiln(1)`.
/// The page of `command` (the whole command line, handed down by the caller).
pub fn main_page(command: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    Ok(page)
}

pub fn run(command: clap::Command, args: ManpageArgs) -> Result<(), Failure> {
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        }
        None => {
            let page = main_page(command).context("cannot render the manual page")?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&page)
                .and_then(|()| stdout.flush())
                .context("cannot write to standard output")?;
        }
    }
    Ok(())
}
