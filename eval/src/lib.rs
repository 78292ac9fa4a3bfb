//! kiln-eval: the evaluator. Owns values, thunks, environments, the builtins registry and
//! derivation construction; reaches the store only through a small trait.
//!
//! This file holds the public entry points the CLI uses (`Evaluator::new`, `eval_file`,
//! `eval_string`, `auto_call`, `select_attr_path`, `print_value`, `to_json`,
//! `derivations_of`, `render_error`) and the options (`EvalOptions`, search path parsing).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

/// The symbol of a name written in the evaluator's own source, interned once per place it is
/// written (interning hashes and compares the name, which hot builtins such as `tryEval` and
/// `listToAttrs` would otherwise pay on every call).
macro_rules! sym {
    ($name:literal) => {{
        static SYMBOL: std::sync::OnceLock<kiln_lang::Symbol> = std::sync::OnceLock::new();
        *SYMBOL.get_or_init(|| kiln_lang::Symbol::intern($name))
    }};
}

pub mod builtins;
pub mod error;
pub mod eval;
pub mod io;
pub mod messages;
pub mod print;
pub mod store_access;
pub mod value;

pub use error::{ErrorKind, EvalError, EvalResult, TraceFrame};
pub use eval::{with_eval_stack, with_eval_stack_until_exit, CoerceMode, Evaluator};
pub use io::{EvalIo, FileType, MemoryIo, StdIo};
pub use messages::{EvalMessage, EvalMessages, StderrMessages};
pub use value::{Attrs, Closure, Context, ContextElem, Env, NixString, PrimOpApp, Thunk, Value};

use eval::sym;
use kiln_lang::Span;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use store_access::EvalStore;

/// One entry of the search path (`-I`, `NIX_PATH`): `prefix=path` or a bare `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPathEntry {
    pub prefix: Option<String>,
    pub path: PathBuf,
}

/// Parses `NIX_PATH` syntax: entries separated by `:`, each `prefix=path` or `path`. A `:`
/// right after a URL scheme (`https://…`) does not split.
pub fn parse_search_path(spec: &str) -> Vec<SearchPathEntry> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' {
            let is_scheme = chars.peek() == Some(&'/')
                && current.rsplit('=').next().is_some_and(|s| {
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
                });
            if is_scheme {
                current.push(c);
                continue;
            }
            push_entry(&mut entries, &current);
            current.clear();
        } else {
            current.push(c);
        }
    }
    push_entry(&mut entries, &current);
    entries
}

fn push_entry(entries: &mut Vec<SearchPathEntry>, text: &str) {
    if text.is_empty() {
        return;
    }
    match text.split_once('=') {
        Some((prefix, path)) => entries.push(SearchPathEntry {
            prefix: Some(prefix.to_string()),
            path: PathBuf::from(path),
        }),
        None => entries.push(SearchPathEntry {
            prefix: None,
            path: PathBuf::from(text),
        }),
    }
}

/// Looks `name` (`nixpkgs/lib`) up in search path entries (`<nixpkgs/lib>`).
pub(crate) fn find_in(
    ev: &Evaluator,
    entries: &[SearchPathEntry],
    name: &str,
    span: Span,
) -> EvalResult<Value> {
    let implicit = &ev.options().implicit_search_path;
    for entry in entries.iter().chain(implicit) {
        let candidate = match &entry.prefix {
            None => entry.path.join(name),
            Some(prefix) => {
                if name == prefix {
                    entry.path.clone()
                } else if let Some(rest) = name
                    .strip_prefix(prefix.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                {
                    entry.path.join(rest)
                } else {
                    continue;
                }
            }
        };
        // Relative entries (`-I lang/dir1`) are relative to the working directory.
        let candidate = if candidate.is_relative() {
            match std::env::current_dir() {
                Ok(cwd) => cwd.join(candidate),
                Err(_) => candidate,
            }
        } else {
            candidate
        };
        if ev.io().file_type(&candidate).is_some() {
            return Ok(Value::path(kiln_lang::lower::canonical_path(
                &candidate.display().to_string(),
            )));
        }
    }
    // A thrown error as in Nix, so `tryEval <missing>` catches it.
    Err(EvalError::new(
        ErrorKind::Throw,
        format!(
            "file '{name}' was not found in the Nix search path (add it using $NIX_PATH or -I)"
        ),
    )
    .at(span))
}

/// Everything an evaluator is configured with.
#[derive(Clone)]
pub struct EvalOptions {
    pub store: Rc<dyn EvalStore>,
    pub search_path: Vec<SearchPathEntry>,
    /// Entries consulted after any search path (also an explicit `findFile` list) and not
    /// part of `builtins.nixPath`, as Nix does for its `<nix/…>` files.
    pub implicit_search_path: Vec<SearchPathEntry>,
    /// Pure evaluation: no `getEnv`, `currentTime`, unpinned fetches.
    pub pure: bool,
    pub current_system: String,
    /// File system and environment access.
    pub io: Rc<dyn EvalIo>,
    /// Show every frame of an error's trace (`--show-trace`), not only the first few.
    pub show_trace: bool,
    /// `builtins.warn` fails instead of going on (`--option abort-on-warn true`).
    pub abort_on_warn: bool,
    /// Maximum nesting of function calls before "stack overflow; max-call-depth exceeded".
    pub max_call_depth: usize,
    /// Downloads for `builtins.fetchurl`/`builtins.fetchTarball`; without one they fail.
    pub fetcher: Option<Rc<dyn store_access::EvalFetcher>>,
    /// Where traces and warnings go (standard error, as Nix prints them, by default).
    pub messages: Rc<dyn EvalMessages>,
    /// Asked at every function call whether to stop (Nix's `checkInterrupt`): a reason stops
    /// the evaluation with that error. An embedder's budget of steps, time or memory.
    pub interrupt: Option<Rc<dyn Fn() -> Option<String>>>,
}

impl EvalOptions {
    /// Defaults: empty search path, impure, the host's system, the real file system.
    pub fn new(store: Rc<dyn EvalStore>) -> Self {
        EvalOptions {
            store,
            search_path: Vec::new(),
            implicit_search_path: Vec::new(),
            pure: false,
            current_system: host_system(),
            io: Rc::new(StdIo),
            max_call_depth: 1_000_000,
            show_trace: false,
            abort_on_warn: false,
            fetcher: None,
            messages: Rc::new(StderrMessages),
            interrupt: None,
        }
    }
}

/// The Nix system name of the host (`x86_64-linux`, `aarch64-linux`, …).
pub fn host_system() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// A `--arg`/`--argstr` value for auto-calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoArg {
    /// `--arg name EXPR`: a Nix expression (evaluated lazily, relative to the current directory).
    Expr(String),
    /// `--argstr name STRING`.
    Str(String),
}

/// What `parse_only` reads.
#[derive(Clone, Copy, Debug)]
pub enum SourceInput<'a> {
    File(&'a Path),
    Expr { source: &'a str, base_dir: &'a Path },
}

impl Evaluator {
    pub fn new(opts: EvalOptions) -> Self {
        Evaluator::create(opts)
    }

    /// Evaluates a file (a directory means its `default.nix`) to weak head normal form.
    pub fn eval_file(&self, path: &Path) -> Result<Value, EvalError> {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| EvalError::eval(format!("cannot get the current directory: {e}")))?
                .join(path)
        };
        let absolute = PathBuf::from(kiln_lang::lower::canonical_path(
            &absolute.display().to_string(),
        ));
        self.import_file(&absolute, Span::default())
    }

    /// Evaluates an expression given as text (`-E`); relative paths resolve against `base_dir`.
    pub fn eval_string(&self, source: &str, base_dir: &Path) -> Result<Value, EvalError> {
        let expr = self.parse_source(source, "«string»".into(), None, base_dir, &[])?;
        self.eval(&expr, &self.root_env)
    }

    /// Parses and lowers without evaluating (`--parse`), reporting syntax and static errors.
    pub fn parse_only(&self, input: SourceInput<'_>) -> Result<(), EvalError> {
        match input {
            SourceInput::File(path) => self.parse_file(path, &[]).map(|_| ()),
            SourceInput::Expr { source, base_dir } => self
                .parse_source(source, "«string»".into(), None, base_dir, &[])
                .map(|_| ()),
        }
    }

    /// Calls a function at the top with `--arg`/`--argstr` values (defaults otherwise), as
    /// `nix-instantiate` does; anything else is returned forced.
    pub fn auto_call(&self, v: Value, args: &[(String, AutoArg)]) -> Result<Value, EvalError> {
        let span = Span::default();
        let v = self.force(&v, span)?;
        let mut arg_values = Vec::new();
        for (name, arg) in args {
            let value = match arg {
                AutoArg::Str(s) => Value::string(s.clone()),
                AutoArg::Expr(e) => {
                    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
                    self.eval_string(e, &dir)?
                }
            };
            arg_values.push((sym(name), value));
        }
        let all_args = Attrs::from_unsorted(arg_values);
        match &v {
            Value::Lambda(closure) => match &closure.lambda.param {
                kiln_lang::ir::Param::Pattern {
                    formals, ellipsis, ..
                } => {
                    let mut passed = Vec::new();
                    for formal in formals {
                        match all_args.get(formal.name) {
                            Some(value) => passed.push((formal.name, value.clone())),
                            None if formal.default.is_some() => {}
                            None => {
                                return Err(EvalError::eval(format!(
                                    "cannot evaluate a function that has an argument without a value ('{}')",
                                    formal.name
                                ))
                                .at(formal.span))
                            }
                        }
                    }
                    let arg = if *ellipsis {
                        all_args
                    } else {
                        Attrs::from_unsorted(passed)
                    };
                    self.call(&v, Value::attrs(arg), span)
                }
                kiln_lang::ir::Param::Ident(_) => Ok(v),
            },
            Value::Attrs(attrs) if attrs.contains(sym!("__functor")) => {
                let functor =
                    self.force(attrs.get(sym!("__functor")).unwrap_or(&Value::Null), span)?;
                let f = self.call(&functor, v.clone(), span)?;
                self.auto_call(f, args)
            }
            _ => Ok(v),
        }
    }

    /// Follows an attribute path like `-A a.b.0` (numbers index lists, `"a.b"` quotes).
    pub fn select_attr_path(&self, v: Value, path: &str) -> Result<Value, EvalError> {
        let span = Span::default();
        let mut current = self.force(&v, span)?;
        for component in split_attr_path(path) {
            if component.is_empty() {
                continue;
            }
            current = match (&current, component.parse::<usize>()) {
                (Value::List(items), Ok(index)) => match items.get(index) {
                    Some(item) => self.force(item, span)?,
                    None => {
                        return Err(EvalError::eval(format!(
                            "list index {index} in selection path '{path}' is out of range"
                        )))
                    }
                },
                (Value::Attrs(attrs), _) => match attrs.get(sym(&component)) {
                    Some(item) => self.force(item, span)?,
                    None => {
                        return Err(EvalError::eval(format!(
                            "attribute '{component}' in selection path '{path}' not found"
                        )))
                    }
                },
                (other, _) => {
                    return Err(EvalError::eval(format!(
                        "the expression selected by the selection path '{path}' should be a set but is {}",
                        other.type_description()
                    )))
                }
            };
        }
        Ok(current)
    }

    /// The value as JSON, as `--json` prints it (bytes: strings that are not UTF-8 are copied).
    pub fn to_json(&self, v: &Value) -> Result<Vec<u8>, EvalError> {
        Ok(self.to_json_with_context(v, Span::default())?.0)
    }

    /// The `.drv` paths `nix-instantiate` would instantiate for a value (Nix's
    /// `getDerivations`: a derivation; the derivations among a set's attributes, recursing into
    /// sets with `recurseForDerivations = true`; list elements, recursively).
    pub fn derivations_of(&self, v: Value) -> Result<Vec<String>, EvalError> {
        let mut out = Vec::new();
        let v = self.force(&v, Span::default())?;
        self.collect_derivations(&v, true, &mut out)?;
        Ok(out)
    }

    fn derivation_path(&self, attrs: &Attrs) -> EvalResult<String> {
        let span = Span::default();
        let drv_path = attrs
            .get(sym!("drvPath"))
            .ok_or_else(|| EvalError::eval("derivation has no 'drvPath' attribute"))?;
        let drv = self
            .coerce_to_string(
                drv_path,
                span,
                CoerceMode {
                    more: false,
                    copy_to_store: false,
                },
            )?
            .to_str_lossy()
            .into_owned();
        let output = match attrs.get(sym!("outputName")) {
            Some(o) => self.force_string(o, span)?.to_str_lossy().into_owned(),
            None => "out".to_string(),
        };
        Ok(if output == "out" {
            drv
        } else {
            format!("{drv}!{output}")
        })
    }

    fn collect_derivations(&self, v: &Value, top: bool, out: &mut Vec<String>) -> EvalResult<()> {
        let span = Span::default();
        match v {
            Value::Attrs(attrs) => {
                if self.is_derivation(attrs, span)? {
                    let path = self.derivation_path(attrs)?;
                    if !out.contains(&path) {
                        out.push(path);
                    }
                    return Ok(());
                }
                let recurse = match attrs.get(sym!("recurseForDerivations")) {
                    Some(r) => self.force_bool(r, span)?,
                    None => false,
                };
                if !top && !recurse {
                    return Ok(());
                }
                for (_, item) in attrs.iter() {
                    let item = self.force(item, span)?;
                    match &item {
                        Value::Attrs(inner) if self.is_derivation(inner, span)? => {
                            self.collect_derivations(&item, false, out)?
                        }
                        Value::Attrs(_) => self.collect_derivations(&item, false, out)?,
                        _ => {}
                    }
                }
            }
            Value::List(items) => {
                for item in items.iter() {
                    let item = self.force(item, span)?;
                    if matches!(item, Value::Attrs(_) | Value::List(_)) {
                        self.collect_derivations(&item, false, out)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Renders an error rustc-style with its source snippet and trace.
    pub fn render_error(&self, e: &EvalError) -> String {
        e.render(&self.sources.borrow(), self.options().show_trace)
    }
}

/// Splits `a."b.c".0` into `a`, `b.c`, `0`.
fn split_attr_path(path: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in path.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests;
