//! `kiln copy --to URL INSTALLABLES…`: push the closure of store paths (or links into the
//! store, such as `./result`), or of the outputs of an expression (a FILE, `-E`, `-A`, realised
//! first as `realise` would, substituting and building what is missing), to a Nix binary
//! cache, `file:///DIR` or `http(s)://…` (HTTP PUT), skipping what the cache already has;
//! `-j` uploads run at once. NARs are compressed with xz (default), zstd, bzip2 or not at
//! all; narinfos carry the paths' own signatures and those of the configuration's
//! `secret-key-files`. `kiln copy --from URL PATHS…` fetches store paths with their closures
//! from a cache into the local store, checking signatures as substitution does.
use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kiln_cache::compression::Compression;
use kiln_cache::substitute::{SubstituteEvent, Substituters};
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;
use std::sync::Arc;

use super::input::SelectionArgs;
use crate::cache_push::push_closures;
use crate::log_events;
use crate::realisation::{realise, BuildOptions};
use crate::session::{open_store, store_path_arg};
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The binary cache to push to: `file:///DIR`, `http://HOST/PREFIX`, `https://…`.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub to: Option<String>,
    /// The binary cache to fetch the paths from.
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// How NARs are compressed: xz, zstd, bzip2 or none.
    #[arg(long, value_name = "METHOD", default_value = "xz")]
    pub compression: Compression,
    /// Upload (or download) at most N paths at once (default: the number of CPUs).
    #[arg(short = 'j', long = "max-jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Store paths (or links into the store) whose closures are copied; or, with `--to`, a
    /// FILE to evaluate (with `-A`/`-E`) whose outputs are realised and pushed.
    #[arg(value_name = "INSTALLABLE")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub selection: SelectionArgs,
}

pub fn run(global: &GlobalOptions, args: CopyArgs) -> Result<(), Failure> {
    let jobs = args
        .jobs
        .or(global.config.jobs)
        .unwrap_or_else(kiln_builder::scheduler::ScheduleOptions::default_jobs);
    let to = match (&args.to, &args.from) {
        (Some(to), _) => to.clone(),
        (None, Some(from)) => {
            let store = open_store(global)?;
            return copy_from(global, &store, from, &args.paths, jobs);
        }
        (None, None) => return Err(anyhow::anyhow!("give --to URL or --from URL").into()),
    };
    let (store, paths) = paths_to_push(global, &args)?;
    let pushed = push_closures(
        global,
        &store,
        &paths,
        &to,
        args.compression,
        jobs,
        "copied path",
    )
    .with_context(|| format!("cannot copy to '{to}'"))?;
    log_events::info(&format!(
        "copied {} paths ({:.1} MiB compressed) to '{}'; {} were there already",
        pushed.uploaded,
        pushed.bytes as f64 / (1024.0 * 1024.0),
        pushed.cache_url,
        pushed.present
    ));
    Ok(())
}

/// The store and the paths `copy --to` pushes the closures of: the arguments when they all
/// name store paths (and no expression is selected), else the outputs of realising them.
fn paths_to_push(
    global: &GlobalOptions,
    args: &CopyArgs,
) -> Result<(Arc<LocalStore>, Vec<StorePath>), Failure> {
    let selection = &args.selection;
    let selects = selection.expr.is_some() || !selection.attr.is_empty();
    if !selects && !args.paths.is_empty() {
        let store = open_store(global)?;
        let named: Option<Vec<StorePath>> = args
            .paths
            .iter()
            .map(|arg| store_path_arg(&store, arg).ok())
            .collect();
        if let Some(paths) = named {
            let dir = store.store_dir();
            for path in &paths {
                if !store.is_valid(path).map_err(anyhow::Error::from)? {
                    return Err(anyhow::anyhow!("path '{}' is not valid", dir.print(path)).into());
                }
            }
            return Ok((Arc::new(store), paths));
        }
    }
    if args.paths.is_empty() && !selects {
        return Err(anyhow::anyhow!("give the store paths or the expression to copy").into());
    }
    let options = BuildOptions {
        jobs: args.jobs,
        ..BuildOptions::default()
    };
    let Some(realised) = realise(global, &args.paths, selection, &options)? else {
        return Err(anyhow::anyhow!("nothing was realised").into());
    };
    let paths = realised
        .targets
        .into_iter()
        .flatten()
        .map(|(_, path)| path)
        .collect();
    Ok((realised.store, paths))
}

/// Fetches `args` (logical store paths) and their closures from the cache at `url`.
fn copy_from(
    global: &GlobalOptions,
    store: &LocalStore,
    url: &str,
    args: &[PathBuf],
    jobs: usize,
) -> Result<(), Failure> {
    let dir = store.store_dir().clone();
    let mut wanted = BTreeSet::new();
    for arg in args {
        let text = arg.to_string_lossy();
        let path = dir
            .parse(&text)
            .or_else(|_| StorePath::from_base_name(&text))
            .with_context(|| format!("'{text}' is not a store path of '{}'", dir.as_str()))?;
        wanted.insert(path);
    }
    let Some(settings) = crate::substitution::settings(global, &[url.to_owned()], false, jobs)?
    else {
        return Err(anyhow::anyhow!("no cache to copy from").into());
    };
    let log = crate::substitution::SubstitutionLog::new(dir.clone());
    let on_event = |event: SubstituteEvent<'_>| log.event(event);
    let substituters = Substituters::open(&settings, &dir, &on_event);
    if substituters.is_empty() {
        return Err(anyhow::anyhow!("cannot use the binary cache '{url}'").into());
    }
    let closure = substituters
        .closure_to_fetch(store, &wanted, &on_event)
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "'{url}' does not have (trusted) narinfos for every path of the closure"
            )
        })?;
    let failed = substituters.fetch_all(store, &closure, &on_event);
    log.finish();
    if !failed.is_empty() {
        return Err(anyhow::anyhow!(
            "{} of {} paths could not be fetched from '{url}'",
            failed.len(),
            closure.len()
        )
        .into());
    }
    log_events::info(&format!("copied {} paths from '{url}'", closure.len()));
    Ok(())
}
