//! `kiln log PATH`: print the build log of the last build of a derivation, given the `.drv` or
//! one of its outputs (logical or physical path, or a `result` link), without terminal control
//! sequences (a build must not drive the user's terminal).
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_builder::log::{printable, BuildLog};

use crate::session::{open_store, store_path_arg};
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct LogArgs {
    /// A `.drv` path or an output path.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

pub fn run(global: &GlobalOptions, args: LogArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let path = store_path_arg(&store, &args.path)?;
    let printed = store.store_dir().print(&path);
    let drv = if path.is_derivation() {
        path
    } else {
        let recorded = store
            .query_path_info(&path)
            .map_err(anyhow::Error::from)?
            .and_then(|info| info.deriver);
        match recorded {
            Some(drv) => drv,
            None => store
                .query_valid_derivers(&path)
                .map_err(anyhow::Error::from)?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("no derivation is known to have built '{printed}'"))?,
        }
    };
    let log = BuildLog::of(&store.log_dir(), &drv);
    let text = log
        .latest_attempt()
        .with_context(|| format!("cannot read {}", log.file().display()))?
        .ok_or_else(|| anyhow!("no build log for '{}'", store.store_dir().print(&drv)))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(printable(&text).as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    Ok(())
}
