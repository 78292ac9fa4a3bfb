//! `kiln sign --key-file FILE PATHS…`: sign valid store paths with a Nix-format secret key, as
//! `nix store sign` does; the signatures are recorded in the store and travel with the paths
//! to binary caches.
use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;
use kiln_cache::narinfo::fingerprint;

use crate::config::read_secret_key;
use crate::session::{open_store, store_path_arg};
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The secret key (`NAME:base64`, from `kiln key generate`).
    #[arg(short = 'k', long = "key-file", value_name = "FILE")]
    pub key_file: PathBuf,
    /// Sign the closures of the paths, not only the paths.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Store paths (or links into the store) to sign.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(global: &GlobalOptions, args: SignArgs) -> Result<(), Failure> {
    let key = read_secret_key(&args.key_file)?;
    let store = open_store(global)?;
    let dir = store.store_dir().clone();
    let mut paths = Vec::new();
    for arg in &args.paths {
        paths.push(store_path_arg(&store, arg)?);
    }
    let paths: BTreeSet<_> = if args.recursive {
        store.closure(&paths).map_err(anyhow::Error::from)?
    } else {
        paths.into_iter().collect()
    };
    let mut added = 0;
    for path in &paths {
        let info = store
            .query_path_info(path)
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| anyhow::anyhow!("path '{}' is not valid", dir.print(path)))?;
        let signature = key.sign(&fingerprint(
            &dir,
            path,
            &info.nar_hash,
            info.nar_size,
            &info.references,
        ));
        if !info.signatures.contains(&signature) {
            store
                .add_signatures(path, &[signature].into())
                .map_err(anyhow::Error::from)?;
            added += 1;
        }
    }
    eprintln!("added {added} signatures");
    Ok(())
}
