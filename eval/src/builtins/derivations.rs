//! Derivations and store-writing builtins: `derivationStrict` (collects the environment,
//! coerces values as Nix does, turns string contexts into input derivations and sources,
//! computes output paths and writes the `.drv`; `__contentAddressed` derivations and those
//! depending on them follow Nix 2.8 with `ca-derivations`, which kiln always enables: floating
//! and deferred outputs get placeholders instead of paths), `derivation` (the Nix-source wrapper in
//! `derivation.nix`), `placeholder`, `toFile`, `path`, `filterSource` and `storeDir`. The
//! collection of the environment is in `collect`, the source-copying builtins in `sources`,
//! what the evaluator remembers of the derivations it made in `known`.
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::rc::Rc;

use kiln_lang::{Span, Symbol};
use kiln_store::derivation::{
    downstream_placeholder, hash_placeholder, Derivation, DerivationError, DerivationOutput,
    DrvHashModulo, FixedOutputHash, FloatingOutput,
};
use kiln_store::hash::{Hash, HashAlgo};
use kiln_store::store_path::{ContentAddressMethod, StoreDir, StorePath};

use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::{sym, CoerceMode, Evaluator};
use crate::store_access::{
    AddPathError, EntryKind, FilterAborted, IngestionMethod, PathToAdd, StoreText,
};
use crate::value::{Attrs, Context, ContextElem, LazyCall, NixString, Thunk, Value};

mod collect;
pub(crate) mod known;
mod sources;

use collect::collect_attrs;
use known::DrvRecord;
use sources::filter_source;
use sources::path;
use sources::to_file;

pub const BUILTINS: &[Builtin] = &[
    Builtin { name: "derivationStrict", arity: 1, top_level: true, doc: "Instantiate a derivation: write its .drv and return { drvPath, <output> = path; … }.", func: derivation_strict },
    Builtin { name: "derivation", arity: 0, top_level: true, doc: "Create a derivation from a set of attributes (name, system, builder, args, outputs, …).", func: derivation },
    Builtin { name: "placeholder", arity: 1, top_level: true, doc: "The placeholder string that stands for an output's path in a derivation's attributes.", func: placeholder },
    Builtin { name: "toFile", arity: 2, top_level: false, doc: "Write a string to a store file (name, contents) and return its path.", func: to_file },
    Builtin { name: "path", arity: 1, top_level: false, doc: "Copy a path to the store: { path, name?, filter?, recursive?, sha256? }.", func: path },
    Builtin { name: "filterSource", arity: 2, top_level: false, doc: "Copy a path to the store keeping the entries for which filter(path, type) is true.", func: filter_source },
    Builtin { name: "storeDir", arity: 0, top_level: false, doc: "The logical store directory, e.g. \"/nix/store\".", func: store_dir },
];

/// The Nix source of the `derivation` wrapper.
const DERIVATION_NIX: &str = include_str!("derivation.nix");

fn error(message: impl Into<String>, span: Span) -> EvalError {
    EvalError::eval(message).at(span)
}

fn store_dir_of(ev: &Evaluator) -> StoreDir {
    ev.store().store_dir().clone()
}

/// A string that must not refer to store paths (Nix's `forceStringNoCtx`).
fn force_string_no_context(ev: &Evaluator, value: &Value, span: Span) -> EvalResult<String> {
    let s = ev.force_string(value, span)?;
    if let Some(first) = s.context().iter().next() {
        return Err(error(
            format!(
                "the string '{}' is not allowed to refer to a store path (such as '{}')",
                s,
                first.encode()
            ),
            span,
        ));
    }
    Ok(s.to_str_lossy().into_owned())
}

fn derivation(ev: &Evaluator, _args: &[Value], span: Span) -> EvalResult<Value> {
    let wrapper = ev.eval_internal_source("derivation.nix", DERIVATION_NIX)?;
    ev.call(&wrapper, Value::PrimOp(&OUTPUT_SETS), span)
}

/// The attribute names `output_sets` uses, interned once per thread.
struct OutputSetNames {
    outputs: Symbol,
    all: Symbol,
    drv_attrs: Symbol,
    out_path: Symbol,
    drv_path: Symbol,
    type_: Symbol,
    output_name: Symbol,
}

thread_local! {
    static NAMES: OutputSetNames = OutputSetNames {
        outputs: Symbol::intern("outputs"),
        all: Symbol::intern("all"),
        drv_attrs: Symbol::intern("drvAttrs"),
        out_path: Symbol::intern("outPath"),
        drv_path: Symbol::intern("drvPath"),
        type_: Symbol::intern("type"),
        output_name: Symbol::intern("outputName"),
    };
}

/// The primop `derivation.nix` is given: a derivation's output sets (see there).
static OUTPUT_SETS: Builtin = Builtin {
    name: "derivationOutputSets",
    arity: 1,
    top_level: false,
    doc: "The output sets of a derivation (internal to `derivation`).",
    func: output_sets,
};

/// `derivation attrs`: for each output `o` (of `attrs.outputs`, default `[ "out" ]`) the set
/// `attrs // { <each output> = its set; all = [ sets ]; drvAttrs = attrs; } // { outPath =
/// strict.o; drvPath = strict.drvPath; type = "derivation"; outputName = o; }` where `strict`
/// is `derivationStrict attrs`, evaluated when a path is first needed; returns the first.
fn output_sets(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    NAMES.with(|names| build_output_sets(ev, args, span, names))
}

fn build_output_sets(
    ev: &Evaluator,
    args: &[Value],
    span: Span,
    fixed: &OutputSetNames,
) -> EvalResult<Value> {
    let attrs = ev.force_attrs(arg(args, 0), span)?;
    let names: Vec<NixString> = match attrs.get(fixed.outputs) {
        Some(outputs) => {
            let list = ev.force_list(outputs, span)?;
            list.iter()
                .map(|name| ev.force_string(name, span))
                .collect::<EvalResult<_>>()?
        }
        None => vec![NixString::new("out")],
    };
    if names.is_empty() {
        // `builtins.head outputSets` in Nix's derivation.nix.
        return Err(error("list index 0 is out of bounds", span));
    }
    let strict = Value::Thunk(Thunk::native({
        let input = Value::Attrs(attrs.clone());
        Box::new(move |ev: &Evaluator| derivation_strict(ev, &[input], span))
    }));
    // One cell per output (a set refers to all of them, itself included).
    let cells: Vec<Thunk> = names.iter().map(|_| Thunk::done(Value::Null)).collect();
    let all_cells = cells.clone();
    let all = Value::Thunk(Thunk::native(Box::new(move |_| {
        Ok(Value::list(
            all_cells
                .iter()
                .map(|cell| Value::Thunk(cell.clone()))
                .collect(),
        ))
    })));
    // `outPath = getAttr outputName strict` and `drvPath = getAttr "drvPath" strict`, as in
    // Nix's derivation.nix: lazy applications of the `getAttr` primop.
    let Some(get_attr) = super::attrs::BUILTINS.iter().find(|b| b.name == "getAttr") else {
        return Err(error("internal error: no getAttr builtin", span));
    };
    let select_call = Rc::new(LazyCall {
        function: Value::PrimOp(get_attr),
        span,
    });
    let drv_path = Value::Thunk(Thunk::apply2(
        select_call.clone(),
        Value::string("drvPath"),
        strict.clone(),
    ));
    // `attrs // listToAttrs outputSets // { all; drvAttrs; }`, shared by every output.
    let mut shared: Vec<(Symbol, Value)> = attrs.iter().map(|(k, v)| (k, v.clone())).collect();
    let mut overlay: Vec<(Symbol, Value)> = Vec::with_capacity(names.len() + 2);
    for (name, cell) in names.iter().zip(&cells) {
        overlay.push((
            Symbol::intern_bytes(name.as_bytes()),
            Value::Thunk(cell.clone()),
        ));
    }
    overlay.push((fixed.all, all));
    overlay.push((fixed.drv_attrs, Value::Attrs(attrs.clone())));
    shared = merge_later_wins(shared, overlay);
    for (name, cell) in names.iter().zip(&cells) {
        let out_path = Value::Thunk(Thunk::apply2(
            select_call.clone(),
            Value::String(name.clone()),
            strict.clone(),
        ));
        let own = vec![
            (fixed.out_path, out_path),
            (fixed.drv_path, drv_path.clone()),
            (fixed.type_, Value::string("derivation")),
            (fixed.output_name, Value::String(name.clone())),
        ];
        let mut set = Attrs::from_sorted(merge_later_wins(shared.clone(), own));
        // Positions of the input attributes stay those of the caller's set.
        if let Some(origin) = attrs.origin() {
            set.set_origin(origin.clone());
        }
        cell.set_value(Value::attrs(set));
    }
    // The first output's set (its cell was just filled).
    Ok(cells[0].value().unwrap_or(Value::Null))
}

/// Entries of `base` updated by `overlay` (in any order; for a name repeated in `overlay` the
/// first wins, as `listToAttrs`), sorted by name.
fn merge_later_wins(
    base: Vec<(Symbol, Value)>,
    overlay: Vec<(Symbol, Value)>,
) -> Vec<(Symbol, Value)> {
    let overlay = Attrs::from_unsorted(overlay);
    let mut merged = Attrs::update(&Rc::new(Attrs::from_sorted(base)), &overlay).into_entries();
    // Kept for the derivation's lifetime: no spare capacity.
    merged.shrink_to_fit();
    merged
}

fn store_dir(ev: &Evaluator, _args: &[Value], _span: Span) -> EvalResult<Value> {
    Ok(Value::string(ev.store().store_dir().as_str()))
}

fn placeholder(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let output = force_string_no_context(ev, arg(args, 0), span)?;
    Ok(Value::string(hash_placeholder(&output)))
}

/// The store paths reachable from `root` through the references the evaluator knows (a
/// `.drv` it did not instantiate is read from the store).
fn known_closure(
    ev: &Evaluator,
    dir: &StoreDir,
    root: StorePath,
    span: Span,
) -> EvalResult<BTreeSet<StorePath>> {
    let mut closure = BTreeSet::new();
    let mut queue = VecDeque::from([root]);
    while let Some(path) = queue.pop_front() {
        if closure.contains(&path) {
            continue;
        }
        let lookup = |path: &StorePath| ev.known_paths.borrow().references(path);
        let mut references = lookup(&path);
        if references.is_none() && path.is_derivation() {
            input_hash_modulo(ev, dir, &path).map_err(|e| {
                error(
                    format!("cannot compute the closure of '{}': {e}", dir.print(&path)),
                    span,
                )
            })?;
            references = lookup(&path);
        }
        // Sources and other paths without a record have no references.
        if let Some(references) = references {
            queue.extend(references.iter().cloned());
        }
        closure.insert(path);
    }
    Ok(closure)
}

fn parse_store_path(dir: &StoreDir, path: &str, span: Span) -> EvalResult<StorePath> {
    dir.parse(path).map_err(|e| error(e.to_string(), span))
}

/// Turns the collected string context into input derivations and sources.
fn add_inputs(
    ev: &Evaluator,
    drv: &mut Derivation,
    dir: &StoreDir,
    context: &Context,
    span: Span,
) -> EvalResult<()> {
    for elem in context {
        match elem {
            ContextElem::Plain(path) => {
                drv.input_srcs.insert(parse_store_path(dir, path, span)?);
            }
            ContextElem::Output {
                drv: drv_path,
                output,
            } => {
                drv.input_drvs
                    .entry(parse_store_path(dir, drv_path, span)?)
                    .or_default()
                    .insert(output.clone());
            }
            ContextElem::AllOutputs(drv_path) => {
                let root = parse_store_path(dir, drv_path, span)?;
                for store_path in known_closure(ev, dir, root, span)? {
                    if store_path.is_derivation() {
                        let record = ev.known_paths.borrow().derivation(&store_path);
                        let outputs = record
                            .map(|record| record.output_names.iter().cloned().collect())
                            .ok_or_else(|| {
                                error(
                                    format!(
                                        "derivation '{}' was not instantiated by this evaluation",
                                        dir.print(&store_path)
                                    ),
                                    span,
                                )
                            })?;
                        drv.input_drvs.insert(store_path.clone(), outputs);
                    }
                    drv.input_srcs.insert(store_path);
                }
            }
        }
    }
    Ok(())
}

/// The hash modulo of an input derivation: remembered, or read from the store (a `.drv` of an
/// earlier evaluation), remembering it and its inputs.
fn input_hash_modulo(
    ev: &Evaluator,
    dir: &StoreDir,
    drv_path: &StorePath,
) -> Result<DrvHashModulo, DerivationError> {
    if let Some(record) = ev.known_paths.borrow().derivation(drv_path) {
        return Ok(record.hash_modulo.clone());
    }
    let aterm = ev
        .store()
        .read_store_file(drv_path)
        .ok_or_else(|| DerivationError::UnknownInput(dir.print(drv_path)))?;
    let drv = Derivation::from_drv_file(dir, drv_path, &aterm)?;
    let hash = drv.hash_modulo(dir, false, &mut |input| input_hash_modulo(ev, dir, input))?;
    ev.known_paths.borrow_mut().add_derivation(
        drv_path.clone(),
        drv.references().iter().cloned().collect(),
        DrvRecord {
            hash_modulo: hash.clone(),
            output_names: drv.outputs.keys().cloned().collect(),
        },
    );
    Ok(hash)
}

fn derivation_strict(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let attrs = ev.force_attrs(arg(args, 0), span)?;
    let name_value = attrs.get(sym!("name")).ok_or_else(|| {
        error(
            "attribute 'name' missing for call to 'derivationStrict'",
            span,
        )
    })?;
    let drv_name = force_string_no_context(ev, name_value, span).map_err(|e| {
        e.add_trace(
            "while evaluating the derivation attribute 'name'",
            Some(span),
        )
    })?;
    let collected = collect_attrs(ev, &attrs, &drv_name, span)?;
    let dir = store_dir_of(ev);

    let mut drv = Derivation {
        name: drv_name.clone(),
        platform: collected.platform,
        builder: collected.builder,
        args: collected.args,
        env: collected.env,
        ..Derivation::default()
    };
    add_inputs(ev, &mut drv, &dir, &collected.context, span)?;
    if drv.builder.is_empty() {
        return Err(error("required attribute 'builder' missing", span));
    }
    if drv.platform.is_empty() {
        return Err(error("required attribute 'system' missing", span));
    }
    if drv_name.ends_with(".drv") {
        return Err(error(
            "derivation names are not allowed to end in '.drv'",
            span,
        ));
    }
    match &collected.output_hash {
        Some(output_hash) => {
            if collected.outputs != ["out"] {
                return Err(error(
                    "multiple outputs are not supported in fixed-output derivations",
                    span,
                ));
            }
            let algo = collected.output_hash_algo.parse::<HashAlgo>().ok();
            let hash = Hash::parse_allow_empty(output_hash, algo)
                .map_err(|e| error(e.to_string(), span))?;
            if output_hash.is_empty() {
                ev.report(crate::EvalMessage::Warning(format!(
                    "found empty hash, assuming '{}'",
                    hash.to_sri()
                )));
            }
            let fixed = FixedOutputHash {
                method: collected.ingestion.unwrap_or(ContentAddressMethod::Flat),
                hash,
            };
            drv.outputs.insert(
                "out".to_owned(),
                DerivationOutput {
                    fixed: Some(fixed),
                    ..DerivationOutput::default()
                },
            );
        }
        None if collected.content_addressed => {
            // As Nix: an unknown or missing algorithm is SHA-256, the method recursive.
            let floating = FloatingOutput {
                method: collected
                    .ingestion
                    .unwrap_or(ContentAddressMethod::Recursive),
                algo: collected
                    .output_hash_algo
                    .parse::<HashAlgo>()
                    .unwrap_or(HashAlgo::Sha256),
            };
            for output in &collected.outputs {
                drv.outputs.insert(
                    output.clone(),
                    DerivationOutput {
                        floating: Some(floating),
                        ..DerivationOutput::default()
                    },
                );
            }
        }
        None => {
            for output in &collected.outputs {
                drv.outputs
                    .insert(output.clone(), DerivationOutput::default());
            }
        }
    }
    drv.fill_output_paths(&dir, &mut |input| input_hash_modulo(ev, &dir, input).ok())
        .map_err(|e| error(e.to_string(), span))?;

    let aterm = drv.to_aterm(&dir);
    let references = drv.references();
    let outputs: BTreeMap<String, StorePath> = drv
        .outputs
        .iter()
        .filter_map(|(name, output)| output.path.clone().map(|p| (name.clone(), p)))
        .collect();
    let parsed_drv_path = ev
        .store()
        .add_derivation(
            StoreText {
                name: &format!("{drv_name}.drv"),
                contents: &aterm,
                references: &references,
            },
            &outputs,
        )
        .map_err(|e| error(e.to_string(), span))?;
    let hash_modulo = drv
        .hash_modulo(&dir, false, &mut |input| input_hash_modulo(ev, &dir, input))
        .map_err(|e| error(e.to_string(), span))?;
    ev.known_paths.borrow_mut().add_derivation(
        parsed_drv_path.clone(),
        references.into_iter().collect(),
        DrvRecord {
            hash_modulo,
            output_names: drv.outputs.keys().cloned().collect(),
        },
    );
    let drv_path = dir.print(&parsed_drv_path);

    let mut result: Vec<(kiln_lang::Symbol, Value)> = Vec::with_capacity(drv.outputs.len() + 1);
    let drv_context = Context::from([ContextElem::AllOutputs(drv_path.clone())]);
    result.push((
        sym!("drvPath"),
        Value::String(NixString::with_context(drv_path.clone(), drv_context)),
    ));
    // Floating and deferred outputs have no path yet: dependents see a placeholder, replaced by
    // the realised path when they are resolved before their build.
    let values: Vec<(String, String)> = drv
        .outputs
        .keys()
        .map(|name| {
            let value = outputs
                .get(name)
                .map(|path| dir.print(path))
                .unwrap_or_else(|| downstream_placeholder(&parsed_drv_path, name));
            (name.clone(), value)
        })
        .collect();
    for (output, path) in values {
        let context = Context::from([ContextElem::Output {
            drv: drv_path.clone(),
            output: output.clone(),
        }]);
        result.push((
            sym(&output),
            Value::String(NixString::with_context(path, context)),
        ));
    }
    Ok(Value::attrs(Attrs::from_unsorted(result)))
}

#[cfg(test)]
mod tests {
    //! Values and `.drv` paths from Nix 2.8 (`nix-instantiate --eval --strict --json`,
    //! `NIX_STORE_DIR=/nix/store`).
    use std::rc::Rc;

    use super::*;
    use crate::store_access::ComputingStore;
    use crate::EvalOptions;

    fn eval_json(source: &str) -> String {
        let source = source.to_owned();
        crate::with_eval_stack(move || {
            let store = Rc::new(ComputingStore::new(StoreDir::new("/nix/store")));
            let ev = Evaluator::new(EvalOptions::new(store));
            let value = ev
                .eval_string(&source, Path::new("/"))
                .map_err(|e| e.message().to_owned())?;
            ev.to_json(&value)
                .map(|json| String::from_utf8_lossy(&json).into_owned())
                .map_err(|e| e.message().to_owned())
        })
        .unwrap_or_else(|message| format!("error: {message}"))
    }

    const CASES: &[(&str, &str, &str)] = &[
        (
            "simple",
            r#"(derivation { name = "hello"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; }).drvPath"#,
            r#""/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv""#,
        ),
        (
            "outputs",
            r#"let d = derivation { name = "multi"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "lib" ]; }; in [ d.drvPath d.outPath d.dev.outPath d.lib.outPath d.dev.outputName (builtins.length d.all) ]"#,
            r#"["/nix/store/v27a425rg4n7prwzpyyw0y1fw2ssc46f-multi.drv","/nix/store/h49lgbknv1fggzyb77p6d3ag1frnz354-multi","/nix/store/cnr8n8g7k3l7913d10wbs7mk11byk3qm-multi-dev","/nix/store/vscn60gjvw2l9cclny9zr26kvxb7gl5d-multi-lib","dev",3]"#,
        ),
        (
            "fixed",
            r#"let d = derivation { name = "src.tar.gz"; system = "x86_64-linux"; builder = "/bin/sh"; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; }; in [ d.drvPath d.outPath ]"#,
            r#"["/nix/store/6ijd7y2x0jsjk4m1sazxwhm7cysf3g52-src.tar.gz.drv","/nix/store/jfkjc5c0hdbcjn3hsz8frxk264d3y06f-src.tar.gz"]"#,
        ),
        (
            "fixed recursive",
            r#"let d = derivation { name = "src"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"; }; in [ d.drvPath d.outPath ]"#,
            r#"["/nix/store/y93aafa6nnsm1vzz5rcmpp48zibf3v4k-src.drv","/nix/store/2870zx9jg3wa9hgyrncqisbxch35845m-src"]"#,
        ),
        (
            "fixed sha1",
            r#"let d = derivation { name = "f"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "recursive"; outputHashAlgo = "sha1"; outputHash = "9m1skbnr5i43n3yypvda5s65vhfwdx5a"; }; in [ d.drvPath d.outPath ]"#,
            r#"["/nix/store/28x9yn426qjxd4ybc987makxvck71xzb-f.drv","/nix/store/w3b7frjrr2yxd9v9bxlk8hy1dvi0kk6n-f"]"#,
        ),
        (
            "dependencies",
            r#"let base = derivation { name = "base"; system = "x86_64-linux"; builder = "/bin/sh"; }; fo = derivation { name = "fo"; system = "x86_64-linux"; builder = "/bin/sh"; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; dep = base; }; top = derivation { name = "top"; system = "x86_64-linux"; builder = "${base}/bin/sh"; inherit fo; lst = [ 1 true false null "x" 2.5 [] "y" ]; n = 42; }; in [ top.drvPath top.outPath ]"#,
            r#"["/nix/store/8dk1p3xlcj4ijdb1n641kqsxyawivp8s-top.drv","/nix/store/lanacj5rd44fxjzlhfg8vqg245px5i9l-top"]"#,
        ),
        (
            "structured attrs",
            r#"(derivation { name = "s"; system = "x86_64-linux"; builder = "/bin/sh"; __structuredAttrs = true; x = { b = [ 1 "two" null true ]; a = 2; }; outputs = [ "out" "doc" ]; }).drvPath"#,
            r#""/nix/store/wprwr4z3yjjjby5b2dxzqc8d1ak1b89j-s.drv""#,
        ),
        (
            "ignore nulls",
            r#"(derivation { name = "n"; system = "x86_64-linux"; builder = "/bin/sh"; __ignoreNulls = true; a = null; b = "x"; }).drvPath"#,
            r#""/nix/store/z3rfy2g4317fwjysv1sal3y90lafch5v-n.drv""#,
        ),
        (
            "toFile",
            r#"let f = builtins.toFile "script.sh" "echo ${builtins.toFile "inner" "x"}"; in [ f (derivation { name = "t"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ f ]; }).drvPath ]"#,
            r#"["/nix/store/w5jwaci6zin5a0jmfpgmia0152jr5kn2-script.sh","/nix/store/nr01748miawww1rygsvd1i9s1ydfnnnm-t.drv"]"#,
        ),
        (
            "placeholder",
            r#"[ (builtins.placeholder "out") (derivation { name = "p"; system = "x86_64-linux"; builder = "/bin/sh"; x = builtins.placeholder "out"; }).drvPath ]"#,
            r#"["/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9","/nix/store/7b17nw96shgvcj9qbm1va9kavipv9svz-p.drv"]"#,
        ),
        (
            "whole derivation context",
            r#"let base = derivation { name = "base"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ (builtins.toFile "a" "b") ]; }; in (derivation { name = "whole"; system = "x86_64-linux"; builder = "/bin/sh"; d = base.drvPath; }).drvPath"#,
            r#""/nix/store/gm4glf2r9b1x7k6dgljh0rh1fhjfx3yj-whole.drv""#,
        ),
        (
            "content-addressed and deferred outputs are placeholders",
            r#"let a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; __contentAddressed = true; outputs = [ "out" "dev" ]; }; b = derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; inherit a; }; in [ a.drvPath a.outPath a.dev.outPath b.drvPath b.outPath ]"#,
            r#"["/nix/store/ps2vxd8d8ibk6rvpprkhz0wys449f3c4-a.drv","/17sb7nxfzvwmslz400br7rpdd502h573lbi198gf36dkr39d73k1","/079xyv64rfch7k67q4x9xjf7r7aqkhbj5xxc5hvwfrzkiaynksj8","/nix/store/qb4kapixjpn92pbs0adh09ddgbmjp845-b.drv","/1hsrcipy45c1gjjyhyban5dg02a3jai4qdam2jy6a2lb95j32ggk"]"#,
        ),
        ("storeDir", "builtins.storeDir", r#""/nix/store""#),
    ];

    #[test]
    fn derivations_match_nix() {
        let mut failures = Vec::new();
        for (name, source, expected) in CASES {
            let actual = eval_json(source);
            if actual != *expected {
                failures.push(format!(
                    "{name}:\n  expected {expected}\n  actual   {actual}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn errors_match_nix() {
        let cases = [
            (
                r#"derivation { system = "x"; builder = "y"; }"#,
                "attribute 'name' missing for call to 'derivationStrict'",
            ),
            (
                r#"derivation { name = "a"; system = "x"; }"#,
                "required attribute 'builder' missing",
            ),
            (
                r#"derivation { name = "a"; builder = "x"; }"#,
                "required attribute 'system' missing",
            ),
            (
                r#"derivation { name = "a.drv"; builder = "x"; system = "y"; }"#,
                "derivation names are not allowed to end in '.drv'",
            ),
            (
                r#"derivation { name = "a"; builder = "x"; system = "y"; outputs = [ "out" "out" ]; }"#,
                "duplicate derivation output 'out'",
            ),
            (
                r#"derivation { name = "a"; builder = "x"; system = "y"; outputs = [ "out" "dev" ]; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; }"#,
                "multiple outputs are not supported in fixed-output derivations",
            ),
            (
                r#"builtins.toFile "x" "${(derivation { name = "a"; builder = "x"; system = "y"; })}""#,
                "in 'toFile': the file named 'x' must not contain a reference to a derivation",
            ),
        ];
        for (source, expected) in cases {
            let actual = eval_json(&format!("({source}).drvPath or ({source})"));
            assert!(actual.contains(expected), "{source}: {actual}");
        }
    }

    /// Strings that are not UTF-8 (half of `é`) in the environment, the arguments, the builder,
    /// `__json` and an attribute name: Nix 2.8 writes their bytes into the `.drv` as they are
    /// (paths from `nix-instantiate --eval --strict --json`, `NIX_STORE_DIR=/nix/store`).
    #[test]
    fn attributes_that_are_not_utf8_keep_their_bytes() {
        let half = r#"builtins.substring 0 1 "é""#;
        let cases = [
            (format!("a = {half};"), "jzc1j84r13342v82rrqqycfxv62fkcjn"),
            (
                format!("args = [ ({half}) ];"),
                "43s2n7hbni0pbbffx2pvdalfqd2qbvpv",
            ),
            (
                format!("__structuredAttrs = true; a = [ ({half}) ];"),
                "p2vkyw28kx4mnn2yphlydw3hbiip60i5",
            ),
            (
                format!("${{{half}}} = \"v\";"),
                "6c12rmxmilxjdm3g2lwx991ingjdajgw",
            ),
            (
                format!("builder = \"/b${{{half}}}\";"),
                "n7n8idm39qkmwala69kms3i59a5kzqaz",
            ),
            (
                format!(
                    "__structuredAttrs = true; ${{{half}}} = {half}; builder = \"/b${{{half}}}\";"
                ),
                "rcjfbdrawmm15ass8jvv1pc07m9wypk7",
            ),
        ];
        for (attrs, hash) in cases {
            let source = format!(
                r#"(derivation ({{ name = "a"; builder = "/b"; system = "x"; }} // {{ {attrs} }})).drvPath"#
            );
            assert_eq!(
                eval_json(&source),
                format!(r#""/nix/store/{hash}-a.drv""#),
                "{source}"
            );
        }
    }

    /// The platform is text in kiln's derivations; a `system` that is not UTF-8 (which Nix 2.8
    /// writes raw) is refused rather than changed into another `.drv` path than Nix's.
    #[test]
    fn a_system_that_is_not_utf8_is_refused() {
        let half = r#"builtins.substring 0 1 "é""#;
        for structured in ["false", "true"] {
            let source = format!(
                r#"(derivation {{ name = "a"; builder = "/b"; system = "x${{{half}}}"; __structuredAttrs = {structured}; }}).drvPath"#
            );
            let actual = eval_json(&source);
            assert!(
                actual
                    .contains("'system' is not valid UTF-8, which kiln's derivations cannot hold"),
                "{source}: {actual}"
            );
        }
    }
}
