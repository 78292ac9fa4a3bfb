//! `kiln log PATH`: print the build log of the last build of a derivation, given the `.drv` or
//! one of its outputs (logical or physical path, or a `result` link), without terminal control
//! sequences (a build must not drive the user's terminal). A derivation resolved before its
//! build (it uses content-addressed outputs) shows the log of its resolved derivation.
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_builder::log::{printable, BuildLog};
use kiln_local_store::LocalStore;
use kiln_store::derivation::DrvHashCache;
use kiln_store::store_path::StorePath;

use crate::session::write_stdout;
use crate::session::{open_store, store_path_arg};
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct LogArgs {
    /// A `.drv` path or an output path.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// The path of `drv` resolved against the realised outputs of its inputs, if it has input
/// derivations and all of them are realised.
fn resolved_derivation(
    store: &LocalStore,
    drv_path: &StorePath,
) -> anyhow::Result<Option<StorePath>> {
    let drv = kiln_builder::plan::read_derivation(store, drv_path)?;
    if drv.input_drvs.is_empty() {
        return Ok(None);
    }
    let dir = store.store_dir();
    let mut hashes = DrvHashCache::new();
    let Ok(resolved) = kiln_builder::ca::resolve_in_store(store, &drv, &mut hashes)? else {
        return Ok(None);
    };
    let aterm = resolved.to_aterm(dir);
    Ok(Some(resolved.drv_path(dir, &aterm)?))
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
    let mut text = log
        .latest_attempt()
        .with_context(|| format!("cannot read {}", log.file().display()))?;
    if text.is_none() {
        // A derivation resolved before its build (content-addressed inputs) logs under the
        // resolved derivation.
        if let Some(resolved) = resolved_derivation(&store, &drv)? {
            let log = BuildLog::of(&store.log_dir(), &resolved);
            text = log
                .latest_attempt()
                .with_context(|| format!("cannot read {}", log.file().display()))?;
        }
    }
    let text =
        text.ok_or_else(|| anyhow!("no build log for '{}'", store.store_dir().print(&drv)))?;
    write_stdout(printable(&text).as_bytes())?;
    Ok(())
}
