//! `kiln diff A B`: why two derivations differ (see `crate::derivation_diff`). Each of A and B
//! is a `.drv` path, an output path whose deriver the store knows (such as `./result`), or an
//! expression file evaluated with the shared `-A`/`--arg` selection (so `kiln diff -A root
//! old/alma.nix new/alma.nix` compares two versions of a file), which must name one
//! derivation. Prints the differences (`--json`: a JSON array) and exits 1, or says that
//! nothing differs and exits 0.
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use super::input::SelectionArgs;
use crate::derivation_diff::{diff, render};
use crate::realisation::instantiate;
use crate::session::{open_store, store_path_arg, Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The first derivation: a `.drv`, an output path, or a FILE to evaluate.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second derivation, given the same ways.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Print the differences as a JSON array.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &GlobalOptions, args: DiffArgs) -> Result<(), Failure> {
    let store = Arc::new(open_store(global)?);
    let a = derivation_of(global, &store, &args.a, &args.selection)?;
    let b = derivation_of(global, &store, &args.b, &args.selection)?;
    let differences = diff(&store, &a, &b)?;
    let dir = store.store_dir();
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&differences).context("cannot print JSON")?;
        json.push('\n');
        json
    } else if differences.is_empty() {
        format!(
            "'{}' and '{}' do not differ\n",
            dir.print(&a),
            dir.print(&b)
        )
    } else {
        render(&differences)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Failure::Exit(1))
    }
}

/// The derivation an argument names (see the module doc).
fn derivation_of(
    global: &GlobalOptions,
    store: &Arc<LocalStore>,
    arg: &std::path::Path,
    selection: &SelectionArgs,
) -> Result<StorePath, Failure> {
    let in_store = arg.extension().is_none_or(|e| e != "nix");
    if in_store {
        if let Ok(path) = store_path_arg(store, arg) {
            if path.is_derivation() {
                return Ok(path);
            }
            let info = store
                .query_path_info(&path)
                .map_err(anyhow::Error::from)?
                .ok_or_else(|| anyhow!("'{}' is not valid", store.store_dir().print(&path)))?;
            return info.deriver.ok_or_else(|| {
                anyhow!(
                    "the store does not know the derivation of '{}'",
                    store.store_dir().print(&path)
                )
                .into()
            });
        }
    }
    let targets = instantiate(global, &[arg.to_path_buf()], selection, store)?;
    match targets.as_slice() {
        [one] => Ok(one.drv_path.clone()),
        [] => Err(anyhow!("'{}' names no derivation", arg.display()).into()),
        many => Err(anyhow!(
            "'{}' names {} derivations; select one with -A",
            arg.display(),
            many.len()
        )
        .into()),
    }
}
