//! String context builtins: `unsafeDiscardStringContext`, `hasContext`, `getContext`,
//! `unsafeDiscardOutputDependency`, `appendContext`.
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::{sym, Evaluator};
use crate::value::{Attrs, Context, ContextElem, NixString, Value};
use kiln_lang::{Span, Symbol};
use std::collections::BTreeMap;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "unsafeDiscardStringContext",
        arity: 1,
        top_level: false,
        doc: "The string without its context.",
        func: discard_context,
    },
    Builtin {
        name: "hasContext",
        arity: 1,
        top_level: false,
        doc: "Whether the string has a context.",
        func: has_context,
    },
    Builtin {
        name: "getContext",
        arity: 1,
        top_level: false,
        doc: "The string's context as { path = { path?, allOutputs?, outputs? }; }.",
        func: get_context,
    },
    Builtin {
        name: "unsafeDiscardOutputDependency",
        arity: 1,
        top_level: false,
        doc: "Turn whole-derivation context elements into plain ones.",
        func: discard_output_dependency,
    },
    Builtin {
        name: "appendContext",
        arity: 2,
        top_level: false,
        doc: "Add context elements (getContext's format) to a string.",
        func: append_context,
    },
];

fn discard_context(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let s = ev.force_string(arg(args, 0), span)?;
    Ok(Value::string(s.as_bytes()))
}

fn has_context(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    Ok(Value::Bool(
        ev.force_string(arg(args, 0), span)?.has_context(),
    ))
}

#[derive(Default)]
struct PathInfo {
    path: bool,
    all_outputs: bool,
    outputs: Vec<String>,
}

fn get_context(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let s = ev.force_string(arg(args, 0), span)?;
    let mut by_path: BTreeMap<String, PathInfo> = BTreeMap::new();
    for elem in s.context() {
        match elem {
            ContextElem::Plain(p) => by_path.entry(p.clone()).or_default().path = true,
            ContextElem::AllOutputs(p) => by_path.entry(p.clone()).or_default().all_outputs = true,
            ContextElem::Output { drv, output } => by_path
                .entry(drv.clone())
                .or_default()
                .outputs
                .push(output.clone()),
        }
    }
    let entries = by_path
        .into_iter()
        .map(|(path, info)| {
            let mut fields: Vec<(Symbol, Value)> = Vec::new();
            if info.all_outputs {
                fields.push((sym!("allOutputs"), Value::Bool(true)));
            }
            if !info.outputs.is_empty() {
                fields.push((
                    sym!("outputs"),
                    Value::list(info.outputs.into_iter().map(Value::string).collect()),
                ));
            }
            if info.path {
                fields.push((sym!("path"), Value::Bool(true)));
            }
            (sym(&path), Value::attrs(Attrs::from_sorted(fields)))
        })
        .collect();
    Ok(Value::attrs(Attrs::from_unsorted(entries)))
}

fn discard_output_dependency(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let s = ev.force_string(arg(args, 0), span)?;
    let context: Context = s
        .context()
        .iter()
        .map(|e| match e {
            ContextElem::AllOutputs(p) => ContextElem::Plain(p.clone()),
            other => other.clone(),
        })
        .collect();
    Ok(Value::String(NixString::with_context(
        s.as_bytes(),
        context,
    )))
}

fn append_context(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let s = ev.force_string(arg(args, 0), span)?;
    let extra = ev.force_attrs(arg(args, 1), span)?;
    let mut context = s.context().clone();
    for (path, info) in extra.iter() {
        let info = ev.force_attrs(info, span)?;
        if let Some(v) = info.get(sym!("path")) {
            if ev.force_bool(v, span)? {
                context.insert(ContextElem::Plain(path.as_str().to_string()));
            }
        }
        if let Some(v) = info.get(sym!("allOutputs")) {
            if ev.force_bool(v, span)? {
                if !path.as_str().ends_with(".drv") {
                    return Err(EvalError::eval(format!(
                        "tried to add all-outputs context of {path}, which is not a derivation, to a string"
                    ))
                    .at(span));
                }
                context.insert(ContextElem::AllOutputs(path.as_str().to_string()));
            }
        }
        if let Some(v) = info.get(sym!("outputs")) {
            for output in ev.force_list(v, span)?.iter() {
                let output = ev.force_string(output, span)?;
                context.insert(ContextElem::Output {
                    drv: path.as_str().to_string(),
                    output: output.to_str_lossy().into_owned(),
                });
            }
        }
    }
    Ok(Value::String(NixString::with_context(
        s.as_bytes(),
        context,
    )))
}
