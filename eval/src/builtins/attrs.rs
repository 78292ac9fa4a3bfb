//! Attribute-set builtins: `attrNames`, `attrValues`, `hasAttr`, `getAttr`, `listToAttrs`,
//! `mapAttrs`, `removeAttrs`, `intersectAttrs`, `catAttrs` and `zipAttrsWith`. Results keep
//! the sets' byte order of names, so most are linear merges over sorted entries; values stay
//! lazy wherever Nix leaves them lazy (`mapAttrs`, `zipAttrsWith`, `listToAttrs`).
use super::lists::required_attr;
use super::strings::force_attr_name;
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::Evaluator;
use crate::value::{Attrs, LazyCall, Thunk, Value};
use kiln_lang::{Span, Symbol};
use std::rc::Rc;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "attrNames",
        arity: 1,
        top_level: false,
        doc: "The names of a set's attributes, sorted.",
        func: attr_names,
    },
    Builtin {
        name: "attrValues",
        arity: 1,
        top_level: false,
        doc: "The values of a set's attributes, in the order of their names.",
        func: attr_values,
    },
    Builtin {
        name: "hasAttr",
        arity: 2,
        top_level: false,
        doc: "Whether a set has an attribute of the given name.",
        func: has_attr,
    },
    Builtin {
        name: "getAttr",
        arity: 2,
        top_level: false,
        doc: "The attribute of the given name of a set.",
        func: get_attr,
    },
    Builtin {
        name: "listToAttrs",
        arity: 1,
        top_level: false,
        doc: "A set from a list of { name, value } (the first occurrence of a name wins).",
        func: list_to_attrs,
    },
    Builtin {
        name: "mapAttrs",
        arity: 2,
        top_level: false,
        doc: "Apply a function of name and value to every attribute (lazily).",
        func: map_attrs,
    },
    Builtin {
        name: "removeAttrs",
        arity: 2,
        top_level: true,
        doc: "A set without the attributes named in a list.",
        func: remove_attrs,
    },
    Builtin {
        name: "intersectAttrs",
        arity: 2,
        top_level: false,
        doc: "The attributes of the second set whose names are in the first.",
        func: intersect_attrs,
    },
    Builtin {
        name: "catAttrs",
        arity: 2,
        top_level: false,
        doc: "The values of the named attribute in each set of a list that has it.",
        func: cat_attrs,
    },
    Builtin {
        name: "zipAttrsWith",
        arity: 2,
        top_level: false,
        doc: "Merge a list of sets, combining each name's values with a function.",
        func: zip_attrs_with,
    },
];

fn attr_names(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let attrs = ev.force_attrs(arg(args, 0), span)?;
    Ok(Value::list(
        attrs.names().map(|name| ev.symbol_string(name)).collect(),
    ))
}

fn attr_values(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let attrs = ev.force_attrs(arg(args, 0), span)?;
    Ok(Value::list(attrs.values().cloned().collect()))
}

fn has_attr(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let name = force_attr_name(ev, arg(args, 0), span)?;
    let attrs = ev.force_attrs(arg(args, 1), span)?;
    Ok(Value::Bool(attrs.contains(name)))
}

fn get_attr(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let name = force_attr_name(ev, arg(args, 0), span)?;
    let attrs = ev.force_attrs(arg(args, 1), span)?;
    let value = attrs.get(name).cloned().ok_or_else(|| {
        EvalError::eval(format!("attribute '{name}' missing for call to 'getAttr'")).at(span)
    })?;
    ev.force(&value, span)
}

fn list_to_attrs(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let list = ev.force_list(arg(args, 0), span)?;
    let mut entries = Vec::with_capacity(list.len());
    for item in list.iter() {
        let pair = ev.force_attrs(item, span)?;
        let name = required_attr(&pair, sym!("name"), "listToAttrs", span)?;
        let name = force_attr_name(ev, &name, span)?;
        let value = required_attr(&pair, sym!("value"), "listToAttrs", span)?;
        entries.push((name, value));
    }
    Ok(Value::attrs(Attrs::from_unsorted(entries)))
}

/// A suspended `f a b`.
fn lazy_call2(call: &Rc<LazyCall>, first: Value, second: Value) -> Value {
    Value::Thunk(Thunk::apply2(call.clone(), first, second))
}

fn map_attrs(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let attrs = ev.force_attrs(arg(args, 1), span)?;
    let call = Rc::new(LazyCall {
        function: arg(args, 0).clone(),
        span,
    });
    let entries = attrs
        .iter()
        .map(|(name, value)| {
            let mapped = lazy_call2(&call, ev.symbol_string(name), value.clone());
            (name, mapped)
        })
        .collect();
    // Same names in the same order.
    Ok(Value::attrs(Attrs::from_sorted(entries)))
}

fn remove_attrs(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let attrs = ev.force_attrs(arg(args, 0), span)?;
    let names = ev.force_list(arg(args, 1), span)?;
    let mut removed: Vec<Symbol> = Vec::with_capacity(names.len());
    for name in names.iter() {
        removed.push(force_attr_name(ev, name, span)?);
    }
    if removed.iter().all(|name| !attrs.contains(*name)) {
        return Ok(Value::Attrs(attrs));
    }
    let entries = attrs
        .iter()
        .filter(|(name, _)| !removed.contains(name))
        .map(|(name, value)| (name, value.clone()))
        .collect();
    Ok(Value::attrs(Attrs::from_sorted(entries)))
}

fn intersect_attrs(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let first = ev.force_attrs(arg(args, 0), span)?;
    let second = ev.force_attrs(arg(args, 1), span)?;
    // `callPackage` intersects a function's few formals with a whole package set: look the
    // smaller set's names up in the bigger one (binary searches) instead of walking both.
    let entries = if first.len() <= second.len() {
        first
            .names()
            .filter_map(|name| second.get(name).map(|value| (name, value.clone())))
            .collect()
    } else {
        second
            .iter()
            .filter(|(name, _)| first.contains(*name))
            .map(|(name, value)| (name, value.clone()))
            .collect()
    };
    Ok(Value::attrs(Attrs::from_sorted(entries)))
}

fn cat_attrs(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let name = force_attr_name(ev, arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    let mut values = Vec::with_capacity(list.len());
    for item in list.iter() {
        let attrs = ev.force_attrs(item, span)?;
        if let Some(value) = attrs.get(name) {
            values.push(value.clone());
        }
    }
    Ok(Value::list(values))
}

fn zip_attrs_with(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let call = Rc::new(LazyCall {
        function: ev.force_function(arg(args, 0), span)?,
        span,
    });
    let list = ev.force_list(arg(args, 1), span)?;
    // Every (name, value) of every set in list order; a stable sort by name then groups each
    // name's values in list order (the sets are small and few: no hash table needed).
    let mut all: Vec<(Symbol, Value)> = Vec::new();
    for item in list.iter() {
        let attrs = ev.force_attrs(item, span)?;
        all.extend(attrs.iter().map(|(name, value)| (name, value.clone())));
    }
    all.sort_by_key(|entry| entry.0);
    let mut entries = Vec::new();
    let mut rest = all.into_iter().peekable();
    while let Some((name, first)) = rest.next() {
        let mut values = vec![first];
        while let Some((_, value)) = rest.next_if(|entry| entry.0 == name) {
            values.push(value);
        }
        let zipped = lazy_call2(&call, ev.symbol_string(name), Value::list(values));
        entries.push((name, zipped));
    }
    Ok(Value::attrs(Attrs::from_sorted(entries)))
}

#[cfg(test)]
mod tests {
    use super::super::lists::run_nix;
    use super::*;

    /// Expectations from nix-instantiate 2.8.
    #[test]
    fn attr_builtins_match_nix() {
        let cases = [
            (
                r#"builtins.attrNames (builtins.listToAttrs [{name="b"; value=1;} {name="a"; value=throw "x";} {name="b"; value=2;}])"#,
                r#"[ "a" "b" ]"#,
            ),
            (
                r#"(builtins.listToAttrs [{name="b"; value=1;} {name="b"; value=2;}]).b"#,
                "1",
            ),
            (
                "builtins.listToAttrs [{}]",
                "error: attribute 'name' missing for call to 'listToAttrs'",
            ),
            (
                r#"builtins.getAttr "x" {}"#,
                "error: attribute 'x' missing for call to 'getAttr'",
            ),
            (
                "builtins.removeAttrs {} [1]",
                "error: value is an integer while a string was expected",
            ),
            (
                "builtins.zipAttrsWith (n: v: v) [{a=1;} {a=2; b=3;}]",
                "{ a = [ 1 2 ]; b = [ 3 ]; }",
            ),
            (
                "builtins.zipAttrsWith (n: v: n) [{b=1;} {a=1;}]",
                r#"{ a = "a"; b = "b"; }"#,
            ),
            (
                "builtins.mapAttrs (n: v: v + 1) { a = 1; b = 2; }",
                "{ a = 2; b = 3; }",
            ),
            (
                "builtins.attrNames (builtins.mapAttrs (n: v: throw n) { a = 1; })",
                r#"[ "a" ]"#,
            ),
            (
                "builtins.intersectAttrs { a = 0; c = 0; } { a = 1; b = 2; c = 3; }",
                "{ a = 1; c = 3; }",
            ),
            (r#"builtins.catAttrs "a" [{a=1;} {b=2;} {a=3;}]"#, "[ 1 3 ]"),
            // The first set bigger than the second, and smaller.
            (
                "builtins.intersectAttrs { a = 0; b = 0; c = 0; d = 0; } { b = 1; d = 2; e = 3; }",
                "{ b = 1; d = 2; }",
            ),
            (
                "builtins.intersectAttrs { b = 0; } { a = 1; b = 2; c = 3; }",
                "{ b = 2; }",
            ),
            (
                "builtins.zipAttrsWith (n: v: v) [{b=1; a=1;} {c=2; b=2;} {b=3;}]",
                "{ a = [ 1 ]; b = [ 1 2 3 ]; c = [ 2 ]; }",
            ),
            (
                "builtins.removeAttrs { a = 1; b = 2; } [ \"a\" ]",
                "{ b = 2; }",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(run_nix(src), want, "{src}");
        }
    }

    #[test]
    fn missing_attribute_message_names_the_builtin() {
        let attrs = Attrs::new();
        let err = required_attr(&attrs, sym!("value"), "listToAttrs", Span::default()).unwrap_err();
        assert_eq!(
            err.message(),
            "attribute 'value' missing for call to 'listToAttrs'"
        );
        assert!(matches!(err.kind(), crate::error::ErrorKind::Eval));
    }
}
