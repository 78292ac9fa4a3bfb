//! The builtins registry. Each family module exports `BUILTINS: &[Builtin]`; `FAMILIES` lists
//! them. A builtin receives its arguments unevaluated (`&[Value]`, exactly `arity` of them) and
//! forces what it needs through the `Evaluator` (`force`, `force_int`, `force_string`,
//! `force_attrs`, `force_list`, `coerce_to_string`, `call`, …), raising type errors with
//! `EvalError::type_mismatch` (Nix's "value is X while Y was expected"). Builtins of arity 0
//! are constants, computed lazily on first use.
//!
//! Names are registered as in Nix: every builtin is in the `builtins` set under its name and
//! in the global scope as `__name`; those marked `top_level` are global under their plain name
//! too (`map`, `toString`, `throw`, …).
use crate::error::EvalResult;
use crate::eval::{sym, Evaluator};
use crate::value::{Attrs, Thunk, Value};
use crate::EvalOptions;
use kiln_lang::{Globals, Span, Symbol};

pub mod arithmetic;
pub mod attrs;
pub mod context;
pub mod control;
pub mod conversion;
pub mod derivations;
pub(crate) use derivations::known::KnownPaths;
pub mod fetchers;
pub mod hashing;
pub mod json;
pub mod lists;
pub mod paths;
pub mod regex;
pub mod strings;
pub mod types;
pub mod versions;
pub mod xml;

/// How a builtin is implemented: receives exactly `arity` unforced arguments and the span of
/// the call.
pub type BuiltinFn = fn(&Evaluator, &[Value], Span) -> EvalResult<Value>;

/// One builtin function or constant.
pub struct Builtin {
    /// The name inside `builtins` (e.g. `"add"`).
    pub name: &'static str,
    /// Number of arguments; 0 for constants.
    pub arity: usize,
    /// Whether it is also a global under its plain name (as `map` or `throw` in Nix).
    pub top_level: bool,
    /// One line for `kiln eval --help-builtins`.
    pub doc: &'static str,
    pub func: BuiltinFn,
}

/// All builtin families, in registration order (later entries win on name clashes).
pub const FAMILIES: &[&[Builtin]] = &[
    control::BUILTINS,
    types::BUILTINS,
    arithmetic::BUILTINS,
    paths::BUILTINS,
    context::BUILTINS,
    conversion::BUILTINS,
    xml::BUILTINS,
    derivations::BUILTINS,
    lists::BUILTINS,
    attrs::BUILTINS,
    strings::BUILTINS,
    versions::BUILTINS,
    hashing::BUILTINS,
    json::BUILTINS,
    fetchers::BUILTINS,
];

/// Every registered builtin.
pub fn all_builtins() -> impl Iterator<Item = &'static Builtin> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

/// The value a builtin stands for: the primop itself, or for constants a lazy thunk.
fn builtin_value(builtin: &'static Builtin) -> Value {
    if builtin.arity == 0 {
        Value::Thunk(Thunk::native(Box::new(move |ev: &Evaluator| {
            (builtin.func)(ev, &[], Span::default())
        })))
    } else {
        Value::PrimOp(builtin)
    }
}

/// Builds the global frame: `builtins`, `true`/`false`/`null`, `__name` for every builtin and
/// plain names for the top-level ones. Also returns the thunk through which `builtins`
/// contains itself, for the evaluator to cut when it goes (reference counting would keep the
/// loop, and so the whole set, alive).
pub(crate) fn build_globals(_options: &EvalOptions) -> (Globals, Vec<Value>, Thunk) {
    let mut globals = Globals::new();
    let mut values: Vec<Value> = Vec::new();
    let set = |globals: &mut Globals, values: &mut Vec<Value>, name: Symbol, value: Value| {
        let slot = globals.add(name) as usize;
        if slot == values.len() {
            values.push(value);
        } else {
            values[slot] = value;
        }
    };
    let mut entries: Vec<(Symbol, Value)> = Vec::new();
    for builtin in all_builtins() {
        let value = builtin_value(builtin);
        entries.push((sym(builtin.name), value.clone()));
        set(
            &mut globals,
            &mut values,
            sym(&format!("__{}", builtin.name)),
            value.clone(),
        );
        if builtin.top_level {
            set(&mut globals, &mut values, sym(builtin.name), value);
        }
    }
    for (name, value) in [
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("null", Value::Null),
    ] {
        entries.push((sym(name), value.clone()));
        set(&mut globals, &mut values, sym(name), value);
    }
    // `builtins.builtins` is the set itself: close the loop through a thunk.
    let self_ref = Thunk::done(Value::Null);
    entries.push((sym!("builtins"), Value::Thunk(self_ref.clone())));
    entries.reverse(); // later registrations win in from_unsorted's first-occurrence rule
    let builtins_set = Value::attrs(Attrs::from_unsorted(entries));
    self_ref.set_value(builtins_set.clone());
    set(&mut globals, &mut values, sym!("builtins"), builtins_set);
    (globals, values, self_ref)
}

/// Helper for builtins: the argument at `index` (the registry guarantees `arity` arguments).
#[inline]
pub fn arg(args: &[Value], index: usize) -> &Value {
    &args[index]
}
