//! What an evaluating command evaluates, as `nix-instantiate` takes it: a file (default
//! `./default.nix`) or an `-E` expression, auto-called with `--arg`/`--argstr`, and narrowed
//! with `-A` attribute paths. Also builds the evaluator from the global options.
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use kiln_eval::store_access::EvalStore;
use kiln_eval::{AutoArg, EvalOptions, Evaluator, SourceInput, Value};
use kiln_glue::{DownloadBar, StoreFetcher, StoreMappedIo};
use kiln_local_store::LocalStore;

use crate::session;
use crate::session::{Failure, GlobalOptions};

/// What to evaluate and how to narrow it: a file (or `-E`), then `-A`/`--arg`/`--argstr`.
/// Used by `eval` and `instantiate`; `realise` takes `SelectionArgs` beside its own paths.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// The file to evaluate (a directory means its `default.nix`); default `./default.nix`.
    #[arg(value_name = "FILE", conflicts_with = "expr")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub selection: SelectionArgs,
}

/// The expression-selecting arguments every evaluating verb shares.
#[derive(Args, Debug, Clone, Default)]
pub struct SelectionArgs {
    /// Evaluate this expression instead of a file (relative paths resolve against the
    /// current directory).
    #[arg(short = 'E', long = "expr", value_name = "EXPR")]
    pub expr: Option<String>,
    /// Select an attribute path of the result (`a.b.0`); may be repeated.
    #[arg(short = 'A', long = "attr", value_name = "ATTRPATH")]
    pub attr: Vec<String>,
    /// Pass `NAME = EXPR` to a function at the top (or along an attribute path).
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "EXPR"])]
    pub arg: Vec<String>,
    /// Pass `NAME = "VALUE"` (a string) to a function at the top.
    #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "VALUE"])]
    pub argstr: Vec<String>,
}

impl SelectionArgs {
    fn auto_args(&self) -> Vec<(String, AutoArg)> {
        let exprs = self
            .arg
            .chunks(2)
            .map(|p| (p[0].clone(), AutoArg::Expr(p[1].clone())));
        let strs = self
            .argstr
            .chunks(2)
            .map(|p| (p[0].clone(), AutoArg::Str(p[1].clone())));
        exprs.chain(strs).collect()
    }
}

/// The search path: `-I` entries first, then `KILN_PATH`.
pub fn search_path(global: &GlobalOptions) -> Vec<kiln_eval::SearchPathEntry> {
    let mut entries: Vec<_> = global
        .include
        .iter()
        .flat_map(|spec| kiln_eval::parse_search_path(spec))
        .collect();
    if let Ok(env) = std::env::var("KILN_PATH") {
        entries.extend(kiln_eval::parse_search_path(&env));
    }
    entries
}

/// The entries looked at after the search path and not listed in `builtins.nixPath` (as Nix
/// treats its own `<nix/…>` files): `kiln=` the embedded standard library and `nix=` its
/// copies of Nix's own files (`<nix/fetchurl.nix>`). `-I kiln=PATH` and `KILN_PATH` come
/// first, so they override the embedded library.
pub fn implicit_search_path(global: &GlobalOptions) -> Vec<kiln_eval::SearchPathEntry> {
    match crate::stdlib::materialise(&global.store_root()) {
        Ok(dir) => vec![
            kiln_eval::SearchPathEntry {
                prefix: Some("kiln".to_owned()),
                path: dir.clone(),
            },
            kiln_eval::SearchPathEntry {
                prefix: Some("nix".to_owned()),
                path: dir.join("corepkgs"),
            },
        ],
        Err(error) => {
            eprintln!("warning: cannot write the standard library for <kiln>: {error}");
            Vec::new()
        }
    }
}

/// An evaluator over the given store access; `builtins.fetchurl`/`fetchTarball` open the
/// store the global options name when they first download.
pub fn evaluator(global: &GlobalOptions, store: Rc<dyn EvalStore>) -> Evaluator {
    let for_open = global.clone();
    let open = Box::new(move || {
        session::open_store(&for_open).map_err(|error| format!("{error}: {}", error.root_cause()))
    });
    evaluator_with_fetcher(
        global,
        store,
        StoreFetcher::lazy(open, session::fetch_options(global)),
    )
}

/// An evaluator that writes into `local` (through `store`) and downloads into it too.
pub fn evaluator_over(
    global: &GlobalOptions,
    store: Rc<dyn EvalStore>,
    local: Arc<LocalStore>,
) -> Evaluator {
    evaluator_with_fetcher(
        global,
        store,
        StoreFetcher::over(local, session::fetch_options(global)),
    )
}

fn evaluator_with_fetcher(
    global: &GlobalOptions,
    store: Rc<dyn EvalStore>,
    fetcher: StoreFetcher,
) -> Evaluator {
    crate::eval_limits::arm(global.eval_limits());
    let mut options = EvalOptions::new(store);
    options.search_path = search_path(global);
    options.implicit_search_path = implicit_search_path(global);
    options.show_trace = global.show_trace;
    options.abort_on_warn = global.abort_on_warn;
    options.pure = global.pure_eval;
    options.messages = Rc::new(crate::log_events::EvalMessageLog);
    // A download shows a byte bar on a terminal, or a JSON activity (see `crate::progress`).
    let fetcher = fetcher.with_display(Box::new(|name: &str| {
        crate::progress::eval_download_display(name).map(|display| DownloadBar {
            progress: display.progress,
            finish: display.finish,
        })
    }));
    options.fetcher = Some(Rc::new(fetcher));
    // Store paths (fetched trees, sources) are read where the store physically is.
    let root = global.store_root();
    let physical = std::path::absolute(&root).unwrap_or(root).join("store");
    if Path::new(&global.store_dir) != physical {
        options.io = Rc::new(StoreMappedIo::new(&global.store_dir, physical));
    }
    Evaluator::new(options)
}

/// Renders an evaluation error as the command's failure.
pub fn reported(evaluator: &Evaluator, error: &kiln_eval::EvalError) -> Failure {
    Failure::Reported(evaluator.render_error(error))
}

/// Evaluates the input and returns one value per `-A` path (or the whole value), each
/// auto-called as `nix-instantiate` does.
pub fn evaluate(evaluator: &Evaluator, input: &InputArgs) -> Result<Vec<Value>, Failure> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = match (&input.selection.expr, &input.file) {
        (Some(expr), _) => evaluator.eval_string(expr, &cwd),
        (None, Some(file)) => evaluator.eval_file(&absolute(&cwd, file)),
        (None, None) => evaluator.eval_file(&cwd.join("default.nix")),
    }
    .map_err(|e| reported(evaluator, &e))?;
    let auto_args = input.selection.auto_args();
    let paths: Vec<&str> = if input.selection.attr.is_empty() {
        vec![""]
    } else {
        input.selection.attr.iter().map(String::as_str).collect()
    };
    paths
        .into_iter()
        .map(|path| {
            let selected = if path.is_empty() {
                root.clone()
            } else {
                evaluator.select_attr_path(evaluator.auto_call(root.clone(), &auto_args)?, path)?
            };
            evaluator.auto_call(selected, &auto_args)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| reported(evaluator, &e))
}

fn absolute(cwd: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        cwd.join(file)
    }
}

/// `--parse`: checks the input's syntax without evaluating it.
pub fn parse_only(evaluator: &Evaluator, input: &InputArgs) -> Result<(), Failure> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let file = match &input.file {
        Some(file) => absolute(&cwd, file),
        None => cwd.join("default.nix"),
    };
    let source = match &input.selection.expr {
        Some(expr) => SourceInput::Expr {
            source: expr,
            base_dir: &cwd,
        },
        None => SourceInput::File(&file),
    };
    evaluator
        .parse_only(source)
        .map_err(|e| reported(evaluator, &e))
}
