//! `kiln verify [--check-contents] [--sigs]`: check that every valid path exists and, with
//! `--check-contents`, still has the NAR hash recorded when it was registered; with `--sigs`,
//! that every path that is not content-addressed carries a signature by one of the
//! configuration's `trusted-public-keys`. Every realisation is checked too: the realisations
//! it depends on must be at paths its output refers to. Reports only; exits 1 if anything is
//! wrong.
use clap::Args;

use crate::session::open_store;
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Also rehash every valid path and compare with the database.
    #[arg(long)]
    pub check_contents: bool,
    /// Also report paths without a signature by a trusted key (`trusted-public-keys`).
    #[arg(long)]
    pub sigs: bool,
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
    // A realisation's dependencies must be what its output refers to.
    let realisations = store.all_realisations().map_err(anyhow::Error::from)?;
    for realisation in &realisations {
        let references = store
            .references(&realisation.out_path)
            .map_err(anyhow::Error::from)?;
        for (dependency, path) in &realisation.dependent_realisations {
            if !references.contains(path) {
                problems.push_str(&format!(
                    "error: realisation '{}' depends on '{dependency}' at '{}', which its output '{}' does not refer to\n",
                    realisation.id,
                    dir.print(path),
                    dir.print(&realisation.out_path)
                ));
            }
        }
    }
    if args.sigs {
        let trusted = kiln_cache::signing::TrustedKeys::parse(
            global.config.trusted_public_keys.iter().map(String::as_str),
        )
        .map_err(anyhow::Error::from)?;
        for path in store.valid_paths().map_err(anyhow::Error::from)? {
            let Some(info) = store.query_path_info(&path).map_err(anyhow::Error::from)? else {
                continue;
            };
            if info.ca.is_some() {
                continue;
            }
            let fingerprint = kiln_cache::narinfo::fingerprint(
                dir,
                &path,
                &info.nar_hash,
                info.nar_size,
                &info.references,
            );
            if !trusted.any_valid(&fingerprint, &info.signatures) {
                problems.push_str(&format!(
                    "error: path '{}' has no signature by a trusted key\n",
                    dir.print(&path)
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Reported(problems));
    }
    eprintln!(
        "checked {} valid paths and {} realisations: all fine",
        report.checked,
        realisations.len()
    );
    Ok(())
}
