//! Control builtins: `throw`, `abort`, `tryEval`, `seq`, `deepSeq`, `trace`, `warn`,
//! `addErrorContext`, `break`.
use super::{arg, Builtin};
use crate::error::{ErrorKind, EvalError, EvalResult};
use crate::eval::{CoerceMode, Evaluator};
use crate::value::{Attrs, Value};
use kiln_lang::Span;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "throw",
        arity: 1,
        top_level: true,
        doc: "Raise a catchable error with the given message.",
        func: throw,
    },
    Builtin {
        name: "abort",
        arity: 1,
        top_level: true,
        doc: "Abort evaluation with the given message (not catchable).",
        func: abort,
    },
    Builtin {
        name: "tryEval",
        arity: 1,
        top_level: false,
        doc: "Evaluate to { success, value }, catching throw and assert failures.",
        func: try_eval,
    },
    Builtin {
        name: "seq",
        arity: 2,
        top_level: false,
        doc: "Force the first argument to weak head normal form, return the second.",
        func: seq,
    },
    Builtin {
        name: "deepSeq",
        arity: 2,
        top_level: false,
        doc: "Force the first argument completely, return the second.",
        func: deep_seq,
    },
    Builtin {
        name: "trace",
        arity: 2,
        top_level: false,
        doc: "Print the first argument to stderr, return the second.",
        func: trace,
    },
    Builtin {
        name: "break",
        arity: 1,
        top_level: false,
        doc: "The argument itself (a breakpoint in Nix's debugger; kiln has no debugger).",
        func: break_point,
    },
    Builtin {
        name: "warn",
        arity: 2,
        top_level: false,
        doc: "Print the first argument (a string) as an evaluation warning, return the second.",
        func: warn,
    },
    Builtin {
        name: "addErrorContext",
        arity: 2,
        top_level: false,
        doc: "Add a message to the trace of errors raised by the second argument.",
        func: add_error_context,
    },
];

fn message(ev: &Evaluator, v: &Value, span: Span) -> EvalResult<String> {
    Ok(ev
        .coerce_to_string(
            v,
            span,
            CoerceMode {
                more: false,
                copy_to_store: false,
            },
        )?
        .to_str_lossy()
        .into_owned())
}

fn throw(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let text = message(ev, arg(args, 0), span)?;
    Err(EvalError::new(ErrorKind::Throw, text).at(span))
}

fn abort(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let text = message(ev, arg(args, 0), span)?;
    Err(EvalError::new(
        ErrorKind::Abort,
        format!("evaluation aborted with the following error message: '{text}'"),
    )
    .at(span))
}

fn try_eval(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let (success, value) = match ev.force(arg(args, 0), span) {
        Ok(v) => (true, v),
        Err(e) if e.is_catchable() => (false, Value::Bool(false)),
        Err(e) => return Err(e),
    };
    Ok(Value::attrs(Attrs::from_sorted(vec![
        (sym!("success"), Value::Bool(success)),
        (sym!("value"), value),
    ])))
}

fn seq(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    ev.force(arg(args, 0), span)?;
    ev.force(arg(args, 1), span)
}

fn deep_seq(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    ev.deep_force(arg(args, 0), span)?;
    ev.force(arg(args, 1), span)
}

fn trace(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let v = ev.force(arg(args, 0), span)?;
    let shown = match &v {
        // Standard error shows text: bytes that are not UTF-8 become U+FFFD there.
        Value::String(s) => s.to_str_lossy().into_owned(),
        other => String::from_utf8_lossy(&ev.print_value(other, false)?).into_owned(),
    };
    ev.report(crate::EvalMessage::Trace(shown));
    ev.force(arg(args, 1), span)
}

fn break_point(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    ev.force(arg(args, 0), span)
}

fn warn(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    // Only strings, as Nix: other values are left for a future extension there.
    let text = ev.force_string(arg(args, 0), span)?;
    ev.report(crate::EvalMessage::UserWarning(
        text.to_str_lossy().into_owned(),
    ));
    if ev.options().abort_on_warn {
        // As current Nix with `--option abort-on-warn true`: the warning becomes an error
        // whose trace shows where it came from.
        return Err(EvalError::eval(
            "aborting to reveal stack trace of warning, as abort-on-warn is set",
        )
        .at(span));
    }
    ev.force(arg(args, 1), span)
}

fn add_error_context(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    match ev.force(arg(args, 1), span) {
        Ok(v) => Ok(v),
        Err(e) => {
            let context = message(ev, arg(args, 0), span)?;
            Err(e.add_trace(context, None))
        }
    }
}
