//! `kiln copy --to URL PATHS…`: push the closure of store paths (or links into the store, such
//! as `./result`) to a Nix binary cache, `file:///DIR` or `http(s)://…` (HTTP PUT), skipping
//! what the cache already has. NARs are compressed with xz (default), zstd, bzip2 or not at
//! all; narinfos carry the paths' own signatures and those of the configuration's
//! `secret-key-files`. `kiln copy --from URL PATHS…` fetches store paths with their closures
//! from a cache into the local store, checking signatures as substitution does.
use std::path::PathBuf;

use std::collections::BTreeSet;

use anyhow::Context;
use clap::Args;
use kiln_cache::binary_cache::{BinaryCache, Pushed};
use kiln_cache::compression::Compression;
use kiln_cache::substitute::{SubstituteEvent, Substituters};
use kiln_cache::transport::DEFAULT_STALL_TIMEOUT;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use super::key::read_secret_key;
use crate::cli::{Failure, GlobalOptions};
use crate::log_events;
use crate::session::{open_store, store_path_arg};

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
    /// Store paths (or links into the store) whose closures are pushed.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(global: &GlobalOptions, args: CopyArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let to = match (&args.to, &args.from) {
        (Some(to), _) => to.clone(),
        (None, Some(from)) => return copy_from(global, &store, from, &args.paths),
        (None, None) => return Err(anyhow::anyhow!("give --to URL or --from URL").into()),
    };
    let dir = store.store_dir().clone();
    let mut paths = Vec::new();
    for arg in &args.paths {
        let path = store_path_arg(&store, arg)?;
        if !store.is_valid(&path).map_err(anyhow::Error::from)? {
            return Err(anyhow::anyhow!("path '{}' is not valid", dir.print(&path)).into());
        }
        paths.push(path);
    }
    let keys = global
        .config
        .secret_key_files
        .iter()
        .map(|file| read_secret_key(file))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cache = BinaryCache::open(&to, DEFAULT_STALL_TIMEOUT).map_err(anyhow::Error::from)?;
    let (mut uploaded, mut present, mut bytes) = (0, 0, 0);
    cache
        .push_closure(
            &store,
            &paths,
            args.compression,
            &keys,
            |path, pushed| match pushed {
                Pushed::Present => present += 1,
                Pushed::Uploaded { file_size, .. } => {
                    uploaded += 1;
                    bytes += file_size;
                    crate::cache_push::report_upload(
                        &format!("copied path '{}' to '{}'", dir.print(path), cache.url()),
                        &dir.print(path),
                        cache.url(),
                        *file_size,
                    );
                }
            },
        )
        .with_context(|| format!("cannot copy to '{to}'"))?;
    log_events::info(&format!(
        "copied {uploaded} paths ({:.1} MiB compressed) to '{}'; {present} were there already",
        bytes as f64 / (1024.0 * 1024.0),
        cache.url()
    ));
    Ok(())
}

/// Fetches `args` (logical store paths) and their closures from the cache at `url`.
fn copy_from(
    global: &GlobalOptions,
    store: &LocalStore,
    url: &str,
    args: &[PathBuf],
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
    let jobs = global
        .config
        .jobs
        .unwrap_or_else(kiln_builder::scheduler::ScheduleOptions::default_jobs);
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
