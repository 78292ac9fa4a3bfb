//! `kiln realise`: build derivations and hand out their outputs.
//!
//! What to build is either `.drv` store paths (logical `/kiln/store/…drv` or physical paths
//! under the store root, optionally `DRV!out,dev` for some outputs) or an expression (a FILE,
//! `-E`, with `-A`/`--arg`/`--argstr`); `crate::realisation` makes the outputs valid.
//!
//! Output: the physical paths of the wanted outputs, one per line (what the host user is handed
//! opens on the host: docs/architecture.md, "Stores: logical and physical"), and unless
//! `--no-out-link` a `result` symlink per output named as `nix-build` names them (`result`,
//! `result-dev`, `result-2`, …), each registered as an indirect GC root. Failures exit 1,
//! naming each failed derivation with the tail of its log.
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use kiln_local_store::LocalStore;

use super::input::SelectionArgs;
use crate::realisation::{realise, BuildOptions, Realised};
use crate::session::write_stdout;
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct RealiseArgs {
    /// A file to evaluate (default `./default.nix`), or `.drv` store paths to build
    /// (`DRV!out,dev` selects outputs).
    #[arg(value_name = "FILE | DRV")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Name of the result symlink (default `./result`).
    #[arg(short = 'o', long = "out-link", value_name = "LINK")]
    pub out_link: Option<PathBuf>,
    /// Create no result symlink.
    #[arg(long, conflicts_with = "out_link")]
    pub no_out_link: bool,
    #[command(flatten)]
    pub options: BuildOptions,
}

pub fn run(global: &GlobalOptions, args: RealiseArgs) -> Result<(), Failure> {
    let Some(Realised { store, targets }) =
        realise(global, &args.paths, &args.selection, &args.options)?
    else {
        return Ok(());
    };
    let mut stdout_text = String::new();
    for (index, outputs) in targets.iter().enumerate() {
        for (name, path) in outputs {
            let physical = store.physical_path(path);
            if !args.no_out_link && !args.options.check {
                let base = args
                    .out_link
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("result"));
                make_out_link(&store, &link_name(&base, index, name), &physical)?;
            }
            stdout_text.push_str(&physical.to_string_lossy());
            stdout_text.push('\n');
        }
    }
    write_stdout(stdout_text.as_bytes())?;
    Ok(())
}

/// `nix-build`'s result link names: `result`, `result-dev`; for later targets `result-2`,
/// `result-2-dev`, ….
fn link_name(base: &Path, target_index: usize, output: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    if target_index > 0 {
        name.push(format!("-{}", target_index + 1));
    }
    if output != "out" {
        name.push(format!("-{output}"));
    }
    PathBuf::from(name)
}

/// Points `link` at `target` (replacing an older link) and registers it as an indirect root.
fn make_out_link(store: &LocalStore, link: &Path, target: &Path) -> anyhow::Result<()> {
    let temporary = {
        let mut name = link.as_os_str().to_owned();
        name.push(format!(".tmp-{}", std::process::id()));
        PathBuf::from(name)
    };
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)
        .with_context(|| format!("cannot create the link {}", link.display()))?;
    // Register the root before the link points into the store, so a collection never sees
    // the link without the root.
    store
        .add_indirect_root(link)
        .with_context(|| format!("cannot register {} as a GC root", link.display()))?;
    std::fs::rename(&temporary, link)
        .with_context(|| format!("cannot create the link {}", link.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_links_are_named_as_nix_build_names_them() {
        let base = Path::new("result");
        assert_eq!(link_name(base, 0, "out"), Path::new("result"));
        assert_eq!(link_name(base, 0, "dev"), Path::new("result-dev"));
        assert_eq!(link_name(base, 1, "out"), Path::new("result-2"));
        assert_eq!(link_name(base, 2, "lib"), Path::new("result-3-lib"));
    }
}
