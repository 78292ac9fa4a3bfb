//! Paths, files and the environment: `import`, `readFile`, `readDir`, `readFileType`,
//! `pathExists`, `baseNameOf`, `dirOf`, `getEnv`, `toPath`, `storePath`, `findFile`, and the
//! constants `currentSystem`, `currentTime`, `nixPath`, `langVersion`, `nixVersion`. File
//! access goes through `EvalIo`; in pure mode `getEnv` returns "" and
//! `currentTime`/`currentSystem`/`storePath` are refused. Also the fetchers kiln does not
//! implement yet (`fetchGit`, `fetchMercurial`, `fetchTree`, `getFlake`): they answer with a
//! clear error rather than being missing.
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::{CoerceMode, Evaluator};
use crate::value::{Attrs, Context, ContextElem, NixString, Value};
use kiln_lang::{Span, Symbol};

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "readFileType",
        arity: 1,
        top_level: false,
        doc: "What is at a path, without following a final symlink: \"regular\" | \"directory\" | \"symlink\" | \"unknown\".",
        func: read_file_type,
    },
    Builtin {
        name: "storePath",
        arity: 1,
        top_level: false,
        doc: "A path inside the store as a string that depends on its store path (impure only).",
        func: store_path,
    },
    Builtin {
        name: "fetchGit",
        arity: 1,
        top_level: false,
        doc: "Not supported yet: fetching a Git repository.",
        func: fetch_git,
    },
    Builtin {
        name: "fetchMercurial",
        arity: 1,
        top_level: false,
        doc: "Not supported yet: fetching a Mercurial repository.",
        func: fetch_mercurial,
    },
    Builtin {
        name: "fetchTree",
        arity: 1,
        top_level: false,
        doc: "Not supported yet: fetching a source tree described by an attribute set or URL.",
        func: fetch_tree,
    },
    Builtin {
        name: "getFlake",
        arity: 1,
        top_level: false,
        doc: "Not supported yet: evaluating a flake.",
        func: get_flake,
    },
    Builtin {
        name: "import",
        arity: 1,
        top_level: true,
        doc: "Evaluate the Nix file at a path (a directory means its default.nix).",
        func: import,
    },
    Builtin {
        name: "scopedImport",
        arity: 2,
        top_level: true,
        doc: "Evaluate a Nix file with the given attributes bound around it (shadowing builtins).",
        func: scoped_import,
    },
    Builtin {
        name: "readFile",
        arity: 1,
        top_level: false,
        doc: "The contents of a file as a string.",
        func: read_file,
    },
    Builtin {
        name: "readDir",
        arity: 1,
        top_level: false,
        doc:
            "A directory's entries: name → \"regular\" | \"directory\" | \"symlink\" | \"unknown\".",
        func: read_dir,
    },
    Builtin {
        name: "pathExists",
        arity: 1,
        top_level: false,
        doc: "Whether something exists at a path.",
        func: path_exists,
    },
    Builtin {
        name: "baseNameOf",
        arity: 1,
        top_level: true,
        doc: "The last component of a path or string.",
        func: base_name_of,
    },
    Builtin {
        name: "dirOf",
        arity: 1,
        top_level: true,
        doc: "Everything but the last component of a path or string.",
        func: dir_of,
    },
    Builtin {
        name: "getEnv",
        arity: 1,
        top_level: false,
        doc: "An environment variable of the evaluating process (\"\" if unset or pure).",
        func: get_env,
    },
    Builtin {
        name: "toPath",
        arity: 1,
        top_level: false,
        doc: "An absolute path string, checked (deprecated).",
        func: to_path,
    },
    Builtin {
        name: "findFile",
        arity: 2,
        top_level: false,
        doc: "Look a name up in a search path list as used for <name>.",
        func: find_file,
    },
    Builtin {
        name: "currentSystem",
        arity: 0,
        top_level: false,
        doc: "The platform being evaluated on, e.g. \"x86_64-linux\".",
        func: current_system,
    },
    Builtin {
        name: "currentTime",
        arity: 0,
        top_level: false,
        doc: "Seconds since the epoch when first used.",
        func: current_time,
    },
    Builtin {
        name: "nixPath",
        arity: 0,
        top_level: false,
        doc: "The search path as a list of { prefix, path }.",
        func: nix_path,
    },
    Builtin {
        name: "langVersion",
        arity: 0,
        top_level: false,
        doc: "The language version (6, as Nix 2.8).",
        func: lang_version,
    },
    Builtin {
        name: "nixVersion",
        arity: 0,
        top_level: false,
        doc: "The Nix version kiln is compatible with (\"2.8.0\").",
        func: nix_version,
    },
];

fn import(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let path = ev.coerce_to_path(arg(args, 0), span)?;
    ev.import_file(&path, span)
}

fn scoped_import(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let scope = ev.force_attrs(arg(args, 0), span)?;
    let path = ev.coerce_to_path(arg(args, 1), span)?;
    ev.scoped_import(&scope, &path, span)
}

fn read_file(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let path = ev.coerce_to_path(arg(args, 0), span)?;
    let bytes = ev
        .read_file_bytes(&path)
        .map_err(|e| EvalError::eval(e).at(span))?;
    // Nix strings are bytes, kept as they are, but Nix 2.8 keeps them NUL-terminated and so
    // refuses a file holding a NUL byte.
    if bytes.contains(&0) {
        return Err(EvalError::eval(format!(
            "the contents of the file '{}' cannot be represented as a Nix string",
            path.display()
        ))
        .at(span));
    }
    // As Nix: a file inside a store object carries that object's references as its context.
    let store = &ev.options().store;
    let dir = store.store_dir();
    let references = path
        .to_str()
        .and_then(|p| dir.parse_prefix(p).ok())
        .and_then(|(object, _)| store.references(&object))
        .unwrap_or_default();
    Ok(Value::String(NixString::with_context(
        bytes,
        references
            .iter()
            .map(|reference| ContextElem::Plain(dir.print(reference)))
            .collect(),
    )))
}

fn read_dir(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let path = ev.coerce_to_path(arg(args, 0), span)?;
    let entries = ev
        .io()
        .read_dir(&path)
        .map_err(|e| EvalError::eval(e).at(span))?;
    Ok(Value::attrs(Attrs::from_unsorted(
        entries
            .into_iter()
            .map(|(name, kind)| {
                (
                    Symbol::intern_bytes(&name),
                    Value::string(kind.as_nix_str()),
                )
            })
            .collect(),
    )))
}

fn path_exists(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let path = ev.coerce_to_path(arg(args, 0), span)?;
    // As Nix, a symlink exists even when what it points to does not (`lstat`).
    Ok(Value::Bool(ev.io().entry_type(&path).is_some()))
}

fn read_file_type(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let path = ev.coerce_to_path(arg(args, 0), span)?;
    match ev.io().entry_type(&path) {
        Some(kind) => Ok(Value::string(kind.as_nix_str())),
        None => Err(EvalError::eval(format!(
            "getting status of '{}': No such file or directory",
            path.display()
        ))
        .at(span)),
    }
}

/// `builtins.storePath`: the path as a string whose context is the store path it lies in.
/// Unlike Nix, whether the store path is valid is not checked: the evaluator's store
/// interface can add paths but not query them.
fn store_path(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    if ev.options().pure {
        return Err(
            EvalError::eval("'builtins.storePath' is not allowed in pure evaluation mode").at(span),
        );
    }
    let path = ev.coerce_to_path(arg(args, 0), span)?;
    let text = path.display().to_string();
    let dir = ev.store().store_dir();
    let Ok((store_path, _)) = dir.parse_prefix(&text) else {
        return Err(EvalError::eval(format!("path '{text}' is not in the Nix store")).at(span));
    };
    let context: Context = [ContextElem::Plain(dir.print(&store_path))].into();
    Ok(Value::String(NixString::with_context(
        text.clone(),
        context,
    )))
}

fn not_supported(name: &str, span: Span) -> EvalResult<Value> {
    Err(EvalError::eval(format!("'builtins.{name}' is not supported yet by kiln")).at(span))
}

fn fetch_git(_ev: &Evaluator, _args: &[Value], span: Span) -> EvalResult<Value> {
    not_supported("fetchGit", span)
}

fn fetch_mercurial(_ev: &Evaluator, _args: &[Value], span: Span) -> EvalResult<Value> {
    not_supported("fetchMercurial", span)
}

fn fetch_tree(_ev: &Evaluator, _args: &[Value], span: Span) -> EvalResult<Value> {
    not_supported("fetchTree", span)
}

fn get_flake(_ev: &Evaluator, _args: &[Value], span: Span) -> EvalResult<Value> {
    not_supported("getFlake", span)
}

fn base_name_of(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let s = ev.coerce_to_string(
        arg(args, 0),
        span,
        CoerceMode {
            more: false,
            copy_to_store: false,
        },
    )?;
    let text = s.as_bytes();
    let trimmed = text.strip_suffix(b"/").unwrap_or(text);
    let base = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    Ok(Value::String(NixString::with_context(
        base,
        s.context().clone(),
    )))
}

fn parent_of(text: &[u8]) -> &[u8] {
    match text.iter().rposition(|&b| b == b'/') {
        None => b".",
        Some(0) => b"/",
        Some(i) => &text[..i],
    }
}

fn dir_of(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    match ev.force(arg(args, 0), span)? {
        Value::Path(p) => Ok(Value::path(
            String::from_utf8_lossy(parent_of(p.as_bytes())).into_owned(),
        )),
        other => {
            let s = ev.coerce_to_string(
                &other,
                span,
                CoerceMode {
                    more: false,
                    copy_to_store: false,
                },
            )?;
            Ok(Value::String(NixString::with_context(
                parent_of(s.as_bytes()),
                s.context().clone(),
            )))
        }
    }
}

fn get_env(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let name = ev.force_string(arg(args, 0), span)?;
    if ev.options().pure {
        return Ok(Value::string(""));
    }
    Ok(Value::string(
        ev.io().get_env(&name.to_str_lossy()).unwrap_or_default(),
    ))
}

fn to_path(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let path = ev.coerce_to_path(arg(args, 0), span)?;
    Ok(Value::string(kiln_lang::lower::canonical_path(
        &path.display().to_string(),
    )))
}

fn find_file(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let list = ev.force_list(arg(args, 0), span)?;
    let name = ev.force_string(arg(args, 1), span)?;
    let mut entries = Vec::new();
    for item in list.iter() {
        let item = ev.force_attrs(item, span)?;
        let prefix = match item.get(sym!("prefix")) {
            Some(p) => ev.force_string(p, span)?.to_str_lossy().into_owned(),
            None => String::new(),
        };
        let path = match item.get(sym!("path")) {
            Some(p) => ev.coerce_to_path(p, span)?,
            None => return Err(EvalError::eval("attribute 'path' missing").at(span)),
        };
        entries.push(crate::SearchPathEntry {
            prefix: (!prefix.is_empty()).then_some(prefix),
            path,
        });
    }
    crate::find_in(ev, &entries, &name.to_str_lossy(), span)
}

fn current_system(ev: &Evaluator, _args: &[Value], _span: Span) -> EvalResult<Value> {
    Ok(Value::string(ev.options().current_system.clone()))
}

fn current_time(ev: &Evaluator, _args: &[Value], span: Span) -> EvalResult<Value> {
    if ev.options().pure {
        return Err(EvalError::eval("attribute 'currentTime' missing").at(span));
    }
    Ok(Value::Int(ev.io().current_time()))
}

fn nix_path(ev: &Evaluator, _args: &[Value], _span: Span) -> EvalResult<Value> {
    Ok(Value::list(
        ev.options()
            .search_path
            .iter()
            .map(|entry| {
                Value::attrs(Attrs::from_sorted(vec![
                    (
                        sym!("path"),
                        Value::string(entry.path.display().to_string()),
                    ),
                    (
                        sym!("prefix"),
                        Value::string(entry.prefix.clone().unwrap_or_default()),
                    ),
                ]))
            })
            .collect(),
    ))
}

fn lang_version(_ev: &Evaluator, _args: &[Value], _span: Span) -> EvalResult<Value> {
    Ok(Value::Int(6))
}

fn nix_version(_ev: &Evaluator, _args: &[Value], _span: Span) -> EvalResult<Value> {
    Ok(Value::string("2.8.0"))
}
