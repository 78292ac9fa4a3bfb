//! `kiln copy --to URL PATHS…`: push the closure of store paths (or links into the store, such
//! as `./result`) to a Nix binary cache, `file:///DIR` or `http(s)://…` (HTTP PUT), skipping
//! what the cache already has. NARs are compressed with xz (default), zstd, bzip2 or not at
//! all; narinfos carry the paths' own signatures and those of the configuration's
//! `secret-key-files`.
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kiln_cache::binary_cache::{BinaryCache, Pushed};
use kiln_cache::compression::Compression;
use kiln_cache::transport::DEFAULT_STALL_TIMEOUT;

use super::key::read_secret_key;
use super::realise::{open_store, store_path_arg};
use crate::cli::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The binary cache to push to: `file:///DIR`, `http://HOST/PREFIX`, `https://…`.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// How NARs are compressed: xz, zstd, bzip2 or none.
    #[arg(long, value_name = "METHOD", default_value = "xz")]
    pub compression: Compression,
    /// Store paths (or links into the store) whose closures are pushed.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(global: &GlobalOptions, args: CopyArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
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
    let cache = BinaryCache::open(&args.to, DEFAULT_STALL_TIMEOUT).map_err(anyhow::Error::from)?;
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
                    eprintln!("copied path '{}' to '{}'", dir.print(path), cache.url());
                }
            },
        )
        .with_context(|| format!("cannot copy to '{}'", args.to))?;
    eprintln!(
        "copied {uploaded} paths ({:.1} MiB compressed) to '{}'; {present} were there already",
        bytes as f64 / (1024.0 * 1024.0),
        cache.url()
    );
    Ok(())
}
