//! Arithmetic builtins: `add`, `sub`, `mul`, `div`, `lessThan`, `bitAnd`, `bitOr`, `bitXor`,
//! `ceil`, `floor` — the same semantics as the operators (overflow and division by zero are
//! errors).
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::Evaluator;
use crate::value::Value;
use kiln_lang::ir::BinaryOp;
use kiln_lang::Span;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "add",
        arity: 2,
        top_level: false,
        doc: "Sum of two numbers.",
        func: add,
    },
    Builtin {
        name: "sub",
        arity: 2,
        top_level: false,
        doc: "Difference of two numbers.",
        func: sub,
    },
    Builtin {
        name: "mul",
        arity: 2,
        top_level: false,
        doc: "Product of two numbers.",
        func: mul,
    },
    Builtin {
        name: "div",
        arity: 2,
        top_level: false,
        doc: "Quotient of two numbers (integer division truncates).",
        func: div,
    },
    Builtin {
        name: "lessThan",
        arity: 2,
        top_level: false,
        doc: "Whether the first value is less than the second.",
        func: less_than,
    },
    Builtin {
        name: "bitAnd",
        arity: 2,
        top_level: false,
        doc: "Bitwise AND of two integers.",
        func: bit_and,
    },
    Builtin {
        name: "bitOr",
        arity: 2,
        top_level: false,
        doc: "Bitwise OR of two integers.",
        func: bit_or,
    },
    Builtin {
        name: "bitXor",
        arity: 2,
        top_level: false,
        doc: "Bitwise XOR of two integers.",
        func: bit_xor,
    },
    Builtin {
        name: "ceil",
        arity: 1,
        top_level: false,
        doc: "Round a number up to an integer.",
        func: ceil,
    },
    Builtin {
        name: "floor",
        arity: 1,
        top_level: false,
        doc: "Round a number down to an integer.",
        func: floor,
    },
];

/// Forces both operands to numbers ("value is X while an integer was expected" otherwise).
fn numbers(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<(Value, Value)> {
    let mut out = Vec::with_capacity(2);
    for v in &args[..2] {
        let v = ev.force(v, span)?;
        if !matches!(v, Value::Int(_) | Value::Float(_)) {
            return Err(EvalError::type_mismatch("an integer", &v).at(span));
        }
        out.push(v);
    }
    let b = out.pop().unwrap_or(Value::Null);
    let a = out.pop().unwrap_or(Value::Null);
    Ok((a, b))
}

fn op(ev: &Evaluator, args: &[Value], span: Span, op: BinaryOp) -> EvalResult<Value> {
    let (a, b) = numbers(ev, args, span)?;
    ev.binary_values(op, a, b, span)
}

fn add(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    op(ev, args, span, BinaryOp::Add)
}
fn sub(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    op(ev, args, span, BinaryOp::Sub)
}
fn mul(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    op(ev, args, span, BinaryOp::Mul)
}
fn div(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    op(ev, args, span, BinaryOp::Div)
}

fn less_than(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    Ok(Value::Bool(ev.less_than(
        arg(args, 0),
        arg(args, 1),
        span,
    )?))
}

fn bits(ev: &Evaluator, args: &[Value], span: Span, f: fn(i64, i64) -> i64) -> EvalResult<Value> {
    let a = ev.force_int(arg(args, 0), span)?;
    let b = ev.force_int(arg(args, 1), span)?;
    Ok(Value::Int(f(a, b)))
}
fn bit_and(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    bits(ev, args, span, |a, b| a & b)
}
fn bit_or(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    bits(ev, args, span, |a, b| a | b)
}
fn bit_xor(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    bits(ev, args, span, |a, b| a ^ b)
}

fn round(ev: &Evaluator, args: &[Value], span: Span, f: fn(f64) -> f64) -> EvalResult<Value> {
    match ev.force(arg(args, 0), span)? {
        Value::Int(i) => Ok(Value::Int(i)),
        Value::Float(x) => {
            // Current Nix refuses a result outside the 64-bit range (Nix 2.8's conversion was
            // undefined behaviour, in practice INT64_MIN).
            let rounded = f(x);
            let limit = -(i64::MIN as f64);
            if rounded >= -limit && rounded < limit {
                Ok(Value::Int(rounded as i64))
            } else {
                Err(EvalError::eval(format!(
                    "NixFloat argument {} is not in the range of NixInt",
                    crate::print::format_float(x)
                ))
                .at(span))
            }
        }
        other => Err(EvalError::type_mismatch("a float", &other).at(span)),
    }
}
fn ceil(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    round(ev, args, span, f64::ceil)
}
fn floor(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    round(ev, args, span, f64::floor)
}
