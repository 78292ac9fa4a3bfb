//! `kiln path-info [-r] [--closure-size] [--json] PATH…`: what the store records about valid
//! paths (logical or physical paths, or `result` links): their logical store paths, with `-r`
//! their closure, with `--closure-size` the total NAR size of each path's closure, with
//! `--json` Nix's `path-info --json` objects (`narHash` in SRI form), plus `realisations`: the
//! realisations (`.doi` documents) that name the path. `DRV!OUTPUT` names an output of a
//! derivation, floating and deferred ones through their realisations.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;
use serde_json::{json, Value};

use crate::session::write_stdout;
use crate::session::{open_store, store_path_arg};
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct PathInfoArgs {
    /// Store paths to describe.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Describe the closure of the paths.
    #[arg(short = 'r', long = "recursive")]
    pub recursive: bool,
    /// Show the total NAR size of each path's closure.
    #[arg(short = 'S', long)]
    pub closure_size: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A store path argument, or `DRV!OUTPUT`: that output of the derivation, from the `.drv` or
/// (floating and deferred outputs) its realisation.
fn output_arg(store: &LocalStore, arg: &Path) -> anyhow::Result<StorePath> {
    let text = arg.to_string_lossy();
    let Some((drv_arg, output)) = text.rsplit_once('!') else {
        return store_path_arg(store, arg);
    };
    let drv_path = store_path_arg(store, Path::new(drv_arg))?;
    let drv = kiln_builder::plan::read_derivation(store, &drv_path)?;
    let mut hashes = kiln_store::derivation::DrvHashCache::new();
    let outputs = kiln_builder::plan::known_output_paths(store, &drv, &mut hashes)?;
    match outputs.get(output) {
        Some(Some(path)) => Ok(path.clone()),
        Some(None) => Err(anyhow!(
            "output '{output}' of '{}' is not realised yet",
            store.store_dir().print(&drv_path)
        )),
        None => Err(anyhow!(
            "derivation '{}' has no output '{output}'",
            store.store_dir().print(&drv_path)
        )),
    }
}

fn closure_size(store: &LocalStore, path: &StorePath) -> anyhow::Result<u64> {
    let mut total = 0;
    for member in store.closure(std::slice::from_ref(path))? {
        if let Some(info) = store.query_path_info(&member)? {
            total += info.nar_size;
        }
    }
    Ok(total)
}

pub fn run(global: &GlobalOptions, args: PathInfoArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let dir = store.store_dir();
    let mut paths = BTreeSet::new();
    for arg in &args.paths {
        let path = output_arg(&store, arg)?;
        if !store.is_valid(&path).map_err(anyhow::Error::from)? {
            return Err(anyhow!("path '{}' is not valid", dir.print(&path)).into());
        }
        paths.insert(path);
    }
    if args.recursive {
        let roots: Vec<StorePath> = paths.iter().cloned().collect();
        paths = store.closure(&roots).map_err(anyhow::Error::from)?;
    }
    let mut text = String::new();
    let mut objects = Vec::new();
    for path in &paths {
        let info = store
            .query_path_info(path)
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| anyhow!("path '{}' is not valid", dir.print(path)))?;
        let size = if args.closure_size {
            Some(closure_size(&store, path)?)
        } else {
            None
        };
        if args.json {
            let mut object = json!({
                "path": dir.print(path),
                "narHash": info.nar_hash.to_sri(),
                "narSize": info.nar_size,
                "references": info.references.iter().map(|r| dir.print(r)).collect::<Vec<_>>(),
                "registrationTime": info.registration_time,
                "valid": true,
            });
            if let Some(deriver) = &info.deriver {
                object["deriver"] = Value::from(dir.print(deriver));
            }
            if let Some(ca) = &info.ca {
                object["ca"] = Value::from(ca.clone());
            }
            if !info.signatures.is_empty() {
                object["signatures"] = Value::from_iter(info.signatures.iter().cloned());
            }
            if let Some(size) = size {
                object["closureSize"] = Value::from(size);
            }
            let realisations = store
                .realisations_of_path(path)
                .map_err(anyhow::Error::from)?;
            if !realisations.is_empty() {
                object["realisations"] = Value::from_iter(realisations.iter().map(|r| r.to_json()));
            }
            objects.push(object);
        } else if let Some(size) = size {
            text.push_str(&format!("{}\t{size}\n", dir.print(path)));
        } else {
            text.push_str(&format!("{}\n", dir.print(path)));
        }
    }
    if args.json {
        text = Value::Array(objects).to_string();
        text.push('\n');
    }
    write_stdout(text.as_bytes())?;
    Ok(())
}
