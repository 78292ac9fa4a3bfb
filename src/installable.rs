//! What a verb that works on built things (`kiln shell`) is pointed at — an *installable* —
//! and making it exist: a store path or a link into the store (such as `./result`), a `.drv`
//! (all its outputs), or an expression (a FILE or `-E`, with `-A`/`--arg`/`--argstr`) whose
//! value is a derivation or a list of them (as a `rootfs = [ … ]` list: topmost first). What is
//! missing is fetched from the binary caches or built, with the configuration's build
//! settings, as `kiln realise` would; the result is the store paths in order (a derivation
//! gives its `out` output, else its first).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use crate::commands::input::SelectionArgs;
use crate::realisation::{self, BuildOptions};
use crate::session::{store_path_arg, Failure, GlobalOptions};

/// The store paths `installable` (with `selection`) names, fetched or built as needed (by
/// `crate::realisation`, as `realise` does), each kept alive by a temporary GC root for the
/// rest of the process.
pub fn realise(
    global: &GlobalOptions,
    store: &Arc<LocalStore>,
    installable: Option<&Path>,
    selection: &SelectionArgs,
) -> Result<Vec<StorePath>, Failure> {
    if let Some(arg) = installable {
        if selection.expr.is_none() && looks_like_store_path(store, arg) {
            let path = store_path_arg(store, arg)?;
            if !path.is_derivation() {
                store.add_temp_root(&path).map_err(anyhow::Error::from)?;
                if !store.is_valid(&path).map_err(anyhow::Error::from)? {
                    return Err(anyhow!(
                        "'{}' is not a valid store path",
                        store.store_dir().print(&path)
                    )
                    .into());
                }
                return Ok(vec![path]);
            }
        }
    }
    let paths: Vec<PathBuf> = installable.map(Path::to_path_buf).into_iter().collect();
    let Some(realised) = realisation::realise(global, &paths, selection, &BuildOptions::default())?
    else {
        return Err(anyhow!("nothing was realised").into());
    };
    let mut chosen = Vec::new();
    for outputs in realised.targets {
        let path = outputs
            .iter()
            .find(|(name, _)| name == "out")
            .or_else(|| outputs.first())
            .map(|(_, path)| path.clone())
            .ok_or_else(|| anyhow!("a derivation of the installable has no output to use"))?;
        chosen.push(path);
    }
    if chosen.is_empty() {
        return Err(anyhow!("the installable names no derivation and no store path").into());
    }
    Ok(chosen)
}

/// Whether `arg` names something in the store (a store path, a `.drv` or a link into the
/// store) rather than a file to evaluate.
fn looks_like_store_path(store: &LocalStore, arg: &Path) -> bool {
    if arg.extension().is_some_and(|e| e == "nix") || arg.is_dir() && !is_store_link(store, arg) {
        return false;
    }
    store_path_arg(store, arg).is_ok()
}

/// Whether a directory argument is (a link to) a store object, like `./result`.
fn is_store_link(store: &LocalStore, arg: &Path) -> bool {
    std::fs::canonicalize(arg).is_ok_and(|resolved| {
        let physical = std::fs::canonicalize(store.physical_store_dir())
            .unwrap_or_else(|_| store.physical_store_dir());
        resolved.starts_with(physical) || store.store_path_of(&resolved).is_some()
    })
}
