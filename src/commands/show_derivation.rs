//! `kiln show-derivation`: print `.drv` files as the JSON of `nix show-derivation` — an object
//! keyed by derivation path, in store-path order, with `-r` adding every derivation of the
//! reference closure. Strings are written as the derivation's bytes, UTF-8 or not, as Nix 2.8
//! writes them.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_local_store::LocalStore;
use kiln_store::derivation::{Derivation, Json};
use kiln_store::store_path::{StoreDir, StorePath};

use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct ShowDerivationArgs {
    /// `.drv` files, by logical store path or by their location under the store root.
    #[arg(value_name = "DRV", required = true)]
    pub paths: Vec<PathBuf>,
    /// Also show every derivation these depend on.
    #[arg(short, long)]
    pub recursive: bool,
}

pub fn run(global: &GlobalOptions, args: ShowDerivationArgs) -> Result<(), Failure> {
    let dir = StoreDir::new(&global.store_dir);
    let store =
        LocalStore::open(global.store_root(), dir.clone()).context("cannot open the store")?;
    let given: Vec<StorePath> = args
        .paths
        .iter()
        .map(|p| {
            let absolute = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            store
                .store_path_of(&absolute)
                .filter(StorePath::is_derivation)
                .ok_or_else(|| anyhow!("'{}' is not a derivation in the store", p.display()))
        })
        .collect::<Result<_, _>>()?;
    // With -r, as Nix: every derivation in the reference closure of the given ones — through
    // `inputDrvs`, and through `inputSrcs` too (a text naming a `.drv`, for example).
    let shown_paths: Vec<StorePath> = if args.recursive {
        store
            .closure(&given)
            .context("cannot compute the closure")?
            .into_iter()
            .filter(StorePath::is_derivation)
            .collect()
    } else {
        given
    };
    // Keyed by base name: Nix orders store paths by hash part, then name.
    let mut shown: BTreeMap<String, Json> = BTreeMap::new();
    for path in shown_paths {
        if shown.contains_key(path.base_name()) {
            continue;
        }
        let drv = read_derivation(&store, &dir, &path)?;
        shown.insert(path.base_name().to_string(), drv.to_json(&dir));
    }
    let object = Json::Object(
        shown
            .into_iter()
            .map(|(base, json)| (format!("{}/{}", dir.as_str(), base).into_bytes(), json))
            .collect(),
    );
    let mut text = object.to_pretty();
    text.push(b'\n');
    std::io::stdout()
        .lock()
        .write_all(&text)
        .context("cannot write to standard output")?;
    Ok(())
}

fn read_derivation(
    store: &LocalStore,
    dir: &StoreDir,
    path: &StorePath,
) -> anyhow::Result<Derivation> {
    let file = store.physical_path(path);
    let text = std::fs::read(&file).with_context(|| format!("cannot read '{}'", file.display()))?;
    Derivation::from_drv_file(dir, path, &text)
        .with_context(|| format!("cannot parse '{}'", dir.print(path)))
}
