//! `kiln diff A B [-A ATTR] [--json]`: why two derivations differ (see `crate::drv_diff`).
//! Each of A and B is a `.drv` path, an output path whose deriver the store knows, or an
//! expression file evaluated (with `-A`/`--arg`/`--argstr`, the same for both) to a derivation.
//! Prints the differences, or says that there are none; exits 0 either way.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_glue::LocalEvalStore;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use super::input::{self, InputArgs, SelectionArgs};
use crate::drv_diff;
use crate::session::{open_store, store_path_arg, Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The first derivation: a `.drv`, an output path, or an expression file.
    #[arg(value_name = "A")]
    pub first: PathBuf,
    /// The second derivation, in the same forms.
    #[arg(value_name = "B")]
    pub second: PathBuf,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The derivation an argument names.
fn derivation_of(
    global: &GlobalOptions,
    store: &Arc<LocalStore>,
    arg: &Path,
    selection: &SelectionArgs,
) -> Result<StorePath, Failure> {
    if let Ok(path) = store_path_arg(store, arg) {
        if path.is_derivation() {
            return Ok(path);
        }
        let info = store.query_path_info(&path).map_err(anyhow::Error::from)?;
        let deriver = match info.and_then(|info| info.deriver) {
            Some(deriver) => Some(deriver),
            None => store
                .query_valid_derivers(&path)
                .map_err(anyhow::Error::from)?
                .into_iter()
                .next(),
        };
        return deriver.ok_or_else(|| {
            anyhow!(
                "no derivation is known to have built '{}'",
                store.store_dir().print(&path)
            )
            .into()
        });
    }
    let eval_store = Rc::new(LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator_over(global, eval_store.clone(), store.clone());
    let input_args = InputArgs {
        file: Some(arg.to_owned()),
        selection: selection.clone(),
    };
    let mut found = Vec::new();
    for value in input::evaluate(&evaluator, &input_args)? {
        found.extend(
            evaluator
                .derivations_of(value)
                .map_err(|e| input::reported(&evaluator, &e))?,
        );
    }
    eval_store
        .flush()
        .context("cannot register the derivations in the store")?;
    let [drv] = found.as_slice() else {
        return Err(anyhow!(
            "'{}' gives {} derivations; select one with -A",
            arg.display(),
            found.len()
        )
        .into());
    };
    Ok(store
        .store_dir()
        .parse(drv)
        .with_context(|| format!("evaluation produced a bad .drv path `{drv}`"))?)
}

pub fn run(global: &GlobalOptions, args: DiffArgs) -> Result<(), Failure> {
    let store = Arc::new(open_store(global)?);
    let first = derivation_of(global, &store, &args.first, &args.selection)?;
    let second = derivation_of(global, &store, &args.second, &args.selection)?;
    let differences = drv_diff::diff(&store, &first, &second)?;
    let dir = store.store_dir();
    let (first_text, second_text) = (dir.print(&first), dir.print(&second));
    let text = if args.json {
        let mut text = drv_diff::render_json(&first_text, &second_text, &differences).to_string();
        text.push('\n');
        text
    } else if first == second {
        format!("no differences: both are {first_text}\n")
    } else if differences.is_empty() {
        format!("{first_text} and {second_text} differ only in the store paths of their inputs\n")
    } else {
        format!(
            "- {first_text}\n+ {second_text}\n{}",
            drv_diff::render_text(&differences)
        )
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;
    Ok(())
}
