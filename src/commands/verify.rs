//! `kiln verify [--check-contents]`: check that every valid path exists and, with
//! `--check-contents`, still has the NAR hash recorded when it was registered. Reports only;
//! exits 1 if anything is wrong.
use clap::Args;

use crate::cli::{Failure, GlobalOptions};
use crate::session::open_store;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Also rehash every valid path and compare with the database.
    #[arg(long)]
    pub check_contents: bool,
}

pub fn run(global: &GlobalOptions, args: VerifyArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let report = store
        .verify(args.check_contents)
        .map_err(anyhow::Error::from)?;
    let dir = store.store_dir();
    let mut problems = String::new();
    for path in &report.missing {
        problems.push_str(&format!("error: path '{}' is missing\n", dir.print(path)));
    }
    for mismatch in &report.hash_mismatches {
        problems.push_str(&format!(
            "error: path '{}' was modified! expected hash '{}', got '{}'\n",
            dir.print(&mismatch.path),
            mismatch.expected_hash.to_sri(),
            mismatch.actual_hash.to_sri()
        ));
    }
    if !problems.is_empty() {
        return Err(Failure::Reported(problems));
    }
    eprintln!("checked {} valid paths: all fine", report.checked);
    Ok(())
}
