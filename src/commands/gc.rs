//! `kiln gc [--dry-run] [--max-freed BYTES]`: delete the store paths no GC root reaches
//! (`result` links, `var/gcroots`, running builds and kiln processes), printing each one.
use clap::Args;
use kiln_local_store::GcOptions;

use crate::session::open_store;
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Only print what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after freeing at least this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_freed: Option<u64>,
}

pub fn run(global: &GlobalOptions, args: GcArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let report = store
        .gc(&GcOptions {
            dry_run: args.dry_run,
            max_freed: args.max_freed,
            ..GcOptions::default()
        })
        .map_err(anyhow::Error::from)?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleting"
    };
    for path in &report.deleted {
        eprintln!("{verb} '{}'", store.store_dir().print(path));
    }
    for name in &report.temporaries {
        eprintln!(
            "{verb} '{}' (left by a killed kiln)",
            store.physical_store_dir().join(name).display()
        );
    }
    if !report.realisations.is_empty() {
        eprintln!(
            "{} realisation{} of content-addressed outputs {} with them",
            report.realisations.len(),
            if report.realisations.len() == 1 {
                ""
            } else {
                "s"
            },
            if args.dry_run { "would go" } else { "went" }
        );
    }
    eprintln!(
        "{} store paths {}, {:.2} MiB freed",
        report.deleted.len(),
        if args.dry_run {
            "would be deleted"
        } else {
            "deleted"
        },
        report.bytes_freed as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
