//! `kiln eval`: evaluate and print a value exactly as `nix-instantiate --eval` does
//! (`--strict` forces it deeply, `--json` prints Nix's JSON, `--xml` Nix's XML, `--parse`
//! only checks syntax).
//! Evaluation is read-only: store paths are computed, nothing is written.
use std::rc::Rc;

use clap::Args;
use kiln_store::store_path::StoreDir;

use super::input::{self, InputArgs};
use crate::session::write_stdout;
use crate::session::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Evaluate the result deeply (every attribute and list element).
    #[arg(long)]
    pub strict: bool,
    /// Print the result as JSON.
    #[arg(long, conflicts_with = "xml")]
    pub json: bool,
    /// Print the result as XML (Nix's format: `builtins.toXML` plus positions).
    #[arg(long)]
    pub xml: bool,
    /// With --xml: leave out the file, line and column of attributes and functions.
    #[arg(long, requires = "xml")]
    pub no_location: bool,
    /// Only parse the input; exit 0 if it is syntactically valid, 1 otherwise.
    #[arg(long, conflicts_with_all = ["strict", "json", "xml"])]
    pub parse: bool,
}

pub fn run(global: &GlobalOptions, args: EvalArgs) -> Result<(), Failure> {
    let store = kiln_eval::store_access::ComputingStore::new(StoreDir::new(&global.store_dir));
    let evaluator = input::evaluator(global, Rc::new(store));
    if args.parse {
        return input::parse_only(&evaluator, &args.input);
    }
    let values = input::evaluate(&evaluator, &args.input)?;
    // Bytes: a Nix string need not be UTF-8, and is printed as it is.
    let mut out: Vec<u8> = Vec::new();
    for value in &values {
        let text = if args.json {
            evaluator.to_json(value)
        } else if args.xml {
            evaluator.print_xml(value, args.strict, !args.no_location)
        } else {
            evaluator.print_value(value, args.strict)
        }
        .map_err(|e| input::reported(&evaluator, &e))?;
        out.extend_from_slice(&text);
        // `nix-instantiate --eval --json` ends its output without a newline; the XML
        // document ends with its own.
        if !args.json && !args.xml {
            out.push(b'\n');
        }
    }
    write_stdout(&out)?;
    // The process ends next: its exit discards the heap at once, where dropping the
    // evaluator and the values would free them one by one.
    std::mem::forget(values);
    std::mem::forget(evaluator);
    Ok(())
}
