//! `toString`: Nix's string coercion with the "more" rules (numbers, Booleans, null, lists).
use super::{arg, Builtin};
use crate::error::EvalResult;
use crate::eval::{CoerceMode, Evaluator};
use crate::value::Value;
use kiln_lang::Span;

pub const BUILTINS: &[Builtin] = &[Builtin {
    name: "toString",
    arity: 1,
    top_level: true,
    doc: "Convert a value to a string (numbers, Booleans, null, lists, paths, sets with __toString/outPath).",
    func: to_string,
}];

fn to_string(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    Ok(Value::String(ev.coerce_to_string(
        arg(args, 0),
        span,
        CoerceMode::TO_STRING,
    )?))
}
