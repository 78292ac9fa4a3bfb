//! The store-writing builtins besides `derivationStrict`: `toFile` (a text with the references
//! its context names), and `path` and `filterSource` (copies of host files and trees, filtered
//! through a Nix function, with an optional expected hash), all through the `EvalStore`.
use super::*;

/// A string holding a store path, with that path as its context.
pub(super) fn store_path_string(dir: &StoreDir, path: &StorePath) -> Value {
    let path = dir.print(path);
    let context = Context::from([ContextElem::Plain(path.clone())]);
    Value::String(NixString::with_context(path, context))
}

pub(super) fn to_file(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let name = force_string_no_context(ev, arg(args, 0), span)?;
    let contents = ev.force_string(arg(args, 1), span)?;
    let dir = store_dir_of(ev);
    let mut references = BTreeSet::new();
    for elem in contents.context() {
        match elem {
            ContextElem::Plain(path) => {
                references.insert(parse_store_path(&dir, path, span)?);
            }
            other => {
                return Err(error(
                    format!(
                        "in 'toFile': the file named '{name}' must not contain a reference to a derivation but contains ({})",
                        other.encode()
                    ),
                    span,
                ))
            }
        }
    }
    let path = ev
        .store()
        .add_text(StoreText {
            name: &name,
            contents: contents.as_bytes(),
            references: &references,
        })
        .map_err(|e| error(e.to_string(), span))?;
    ev.known_paths
        .borrow_mut()
        .add_text(path.clone(), references.into_iter().collect());
    Ok(store_path_string(&dir, &path))
}

/// What `builtins.path` and `filterSource` were asked to add.
pub(super) struct AddPathRequest<'a> {
    name: String,
    source: std::path::PathBuf,
    filter: Option<&'a Value>,
    method: IngestionMethod,
    expected_sha256: Option<[u8; 32]>,
}

pub(super) fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Adds a host path to the store, calling the Nix filter function for each entry.
pub(super) fn add_path(
    ev: &Evaluator,
    request: AddPathRequest<'_>,
    span: Span,
) -> EvalResult<Value> {
    let mut filter_error: Option<EvalError> = None;
    let to_add = PathToAdd {
        name: &request.name,
        source: &request.source,
        method: request.method,
        expected_sha256: request.expected_sha256,
    };
    let result = match request.filter {
        Some(filter) => {
            let mut call_filter = |path: &Path, kind: EntryKind| -> Result<bool, FilterAborted> {
                let args = [
                    Value::string(path.to_string_lossy().into_owned()),
                    Value::string(kind.as_nix_str()),
                ];
                let verdict = ev
                    .call_n(filter, &args, span)
                    .and_then(|v| ev.force_bool(&v, span));
                verdict.map_err(|e| {
                    filter_error = Some(e);
                    FilterAborted
                })
            };
            ev.store().add_path(to_add, Some(&mut call_filter))
        }
        None => ev.store().add_path(to_add, None),
    };
    let trace = format!("while adding path '{}'", request.source.display());
    match result {
        Ok(path) => Ok(store_path_string(ev.store().store_dir(), &path)),
        Err(AddPathError::FilterAborted) => Err(filter_error
            .unwrap_or_else(|| error("the path filter failed", span))
            .add_trace(trace, Some(span))),
        Err(AddPathError::Store(e)) => Err(error(e.to_string(), span).add_trace(trace, Some(span))),
    }
}

pub(super) fn path(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let attrs = ev.force_attrs(arg(args, 0), span)?;
    let mut source = None;
    let mut name = String::new();
    let mut filter = None;
    let mut method = IngestionMethod::Recursive;
    let mut expected_sha256 = None;
    for (key, value) in attrs.iter() {
        match key.as_str() {
            "path" => source = Some(ev.coerce_to_path(value, span)?),
            "name" => name = force_string_no_context(ev, value, span)?,
            "filter" => filter = Some(ev.force(value, span)?),
            "recursive" => {
                method = if ev.force_bool(value, span)? {
                    IngestionMethod::Recursive
                } else {
                    IngestionMethod::Flat
                }
            }
            "sha256" => {
                let text = force_string_no_context(ev, value, span)?;
                let hash = Hash::parse_allow_empty(&text, Some(HashAlgo::Sha256))
                    .map_err(|e| error(e.to_string(), span))?;
                let mut digest = [0u8; 32];
                digest.copy_from_slice(hash.as_bytes());
                expected_sha256 = Some(digest);
            }
            other => {
                return Err(error(
                    format!("unsupported argument '{other}' to 'addPath'"),
                    span,
                ))
            }
        }
    }
    let source = source.ok_or_else(|| error("'path' required", span))?;
    if name.is_empty() {
        name = base_name(&source);
    }
    let request = AddPathRequest {
        name,
        source,
        filter: filter.as_ref(),
        method,
        expected_sha256,
    };
    add_path(ev, request, span)
}

pub(super) fn filter_source(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let source = ev.coerce_to_path(arg(args, 1), span)?;
    let filter = ev.force(arg(args, 0), span)?;
    if !filter.is_function() {
        return Err(EvalError::type_mismatch("a function", &filter).at(span));
    }
    let request = AddPathRequest {
        name: base_name(&source),
        source,
        filter: Some(&filter),
        method: IngestionMethod::Recursive,
        expected_sha256: None,
    };
    add_path(ev, request, span)
}
