//! Type predicates and reflection: `typeOf`, `isAttrs`, `isBool`, `isFloat`, `isFunction`,
//! `isInt`, `isList`, `isNull`, `isPath`, `isString`, `functionArgs`.
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::Evaluator;
use crate::value::{Attrs, AttrsOrigin, Value};
use kiln_lang::ir::Param;
use kiln_lang::Span;
use std::rc::Rc;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "typeOf",
        arity: 1,
        top_level: false,
        doc: "The type of a value as a string (\"int\", \"set\", \"lambda\", …).",
        func: type_of,
    },
    Builtin {
        name: "isAttrs",
        arity: 1,
        top_level: false,
        doc: "Whether the value is an attribute set.",
        func: is_attrs,
    },
    Builtin {
        name: "isBool",
        arity: 1,
        top_level: false,
        doc: "Whether the value is a Boolean.",
        func: is_bool,
    },
    Builtin {
        name: "isFloat",
        arity: 1,
        top_level: false,
        doc: "Whether the value is a float.",
        func: is_float,
    },
    Builtin {
        name: "isFunction",
        arity: 1,
        top_level: false,
        doc: "Whether the value is a function (lambda or builtin).",
        func: is_function,
    },
    Builtin {
        name: "isInt",
        arity: 1,
        top_level: false,
        doc: "Whether the value is an integer.",
        func: is_int,
    },
    Builtin {
        name: "isList",
        arity: 1,
        top_level: false,
        doc: "Whether the value is a list.",
        func: is_list,
    },
    Builtin {
        name: "isNull",
        arity: 1,
        top_level: true,
        doc: "Whether the value is null.",
        func: is_null,
    },
    Builtin {
        name: "isPath",
        arity: 1,
        top_level: false,
        doc: "Whether the value is a path.",
        func: is_path,
    },
    Builtin {
        name: "isString",
        arity: 1,
        top_level: false,
        doc: "Whether the value is a string.",
        func: is_string,
    },
    Builtin {
        name: "unsafeGetAttrPos",
        arity: 2,
        top_level: false,
        doc: "Where an attribute of a set literal is defined: { column, file, line }, or null.",
        func: unsafe_get_attr_pos,
    },
    Builtin {
        name: "functionArgs",
        arity: 1,
        top_level: false,
        doc: "The formal arguments of a function: name → has a default.",
        func: function_args,
    },
];

fn type_of(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    Ok(Value::string(ev.force(arg(args, 0), span)?.type_of()))
}

fn check(
    ev: &Evaluator,
    args: &[Value],
    span: Span,
    pred: fn(&Value) -> bool,
) -> EvalResult<Value> {
    Ok(Value::Bool(pred(&ev.force(arg(args, 0), span)?)))
}

fn is_attrs(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::Attrs(_)))
}
fn is_bool(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::Bool(_)))
}
fn is_float(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::Float(_)))
}
fn is_function(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, Value::is_function)
}
fn is_int(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::Int(_)))
}
fn is_list(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::List(_)))
}
fn is_null(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::Null))
}
fn is_path(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::Path(_)))
}
fn is_string(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    check(ev, args, span, |v| matches!(v, Value::String(_)))
}

fn function_args(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    match ev.force(arg(args, 0), span)? {
        Value::Lambda(closure) => match &closure.lambda.param {
            Param::Ident(_) => Ok(Value::attrs(Attrs::new())),
            Param::Pattern { formals, .. } => {
                let mut attrs = Attrs::from_unsorted(
                    formals
                        .iter()
                        .map(|f| (f.name, Value::Bool(f.default.is_some())))
                        .collect(),
                );
                attrs.set_origin(AttrsOrigin::Formals(Rc::clone(&closure.lambda)));
                Ok(Value::attrs(attrs))
            }
        },
        Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(Value::attrs(Attrs::new())),
        _ => Err(EvalError::eval("'functionArgs' requires a function").at(span)),
    }
}

fn unsafe_get_attr_pos(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let name = ev.force_string(arg(args, 0), span)?;
    let attrs = ev.force_attrs(arg(args, 1), span)?;
    let name = kiln_lang::Symbol::intern_bytes(name.as_bytes());
    if !attrs.contains(name) {
        return Ok(Value::Null);
    }
    Ok(match attrs.position_of(name) {
        Some(at) => ev.current_position(at),
        None => Value::Null,
    })
}
