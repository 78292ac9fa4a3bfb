//! `kiln instantiate`: evaluate, write the `.drv` files of the derivations found (Nix's
//! `getDerivations` rules: a derivation, the derivations among a set's attributes or a list's
//! elements) under the store root, and print their logical paths, one per line.
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use kiln_glue::LocalEvalStore;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StoreDir;

use super::input::{self, InputArgs};
use crate::session::write_stdout;
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct InstantiateArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

pub fn run(global: &GlobalOptions, args: InstantiateArgs) -> Result<(), Failure> {
    let store = Arc::new(
        LocalStore::open(global.store_root(), StoreDir::new(&global.store_dir))
            .context("cannot open the store")?,
    );
    let eval_store = Rc::new(LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator_over(global, eval_store.clone(), store);
    let mut out = String::new();
    for value in input::evaluate(&evaluator, &args.input)? {
        for drv_path in evaluator
            .derivations_of(value)
            .map_err(|e| input::reported(&evaluator, &e))?
        {
            out.push_str(&drv_path);
            out.push('\n');
        }
    }
    // The .drv files are registered in batches; they must be valid before anyone is told
    // their paths.
    eval_store
        .flush()
        .context("cannot register the derivations in the store")?;
    write_stdout(out.as_bytes())?;
    Ok(())
}
