//! JSON and TOML builtins: `toJSON` (the printer is the evaluator's `to_json_with_context`:
//! paths are copied to the store, sets with `__toString`/`outPath` become strings, and the
//! result keeps the strings' context), `fromJSON` (integers stay integers, unsigned ones beyond
//! the 64-bit signed range wrap as in Nix, other numbers are floats; a repeated key keeps the
//! last value) and `fromTOML` (dates and times are refused, as in Nix 2.8). Both parsers build
//! values directly from the text, without an intermediate tree.
use super::strings::force_string_no_context;
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::{sym, Evaluator};
use crate::value::{Attrs, NixString, Value};
use kiln_lang::Span;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "toJSON",
        arity: 1,
        top_level: false,
        doc: "The value as a JSON string (with the context of the strings in it).",
        func: to_json,
    },
    Builtin {
        name: "fromJSON",
        arity: 1,
        top_level: false,
        doc: "The value a JSON string denotes.",
        func: from_json,
    },
    Builtin {
        name: "fromTOML",
        arity: 1,
        top_level: true,
        doc: "The set a TOML document denotes.",
        func: from_toml,
    },
];

fn to_json(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let (text, context) = ev.to_json_with_context(arg(args, 0), span)?;
    Ok(Value::String(NixString::with_context(text, context)))
}

/// A Nix value read from JSON or TOML by serde.
struct Parsed(Value);

struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok(Parsed(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Parsed, E> {
        Ok(Parsed(Value::Null))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Parsed, E> {
        Ok(Parsed(Value::Bool(b)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Parsed, E> {
        Ok(Parsed(Value::Int(i)))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Parsed, E> {
        // Nix stores unsigned JSON numbers in its signed integer: they wrap.
        Ok(Parsed(Value::Int(u as i64)))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Parsed, E> {
        Ok(Parsed(Value::Float(x)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Parsed, E> {
        Ok(Parsed(Value::string(s)))
    }

    fn visit_string<E>(self, s: String) -> Result<Parsed, E> {
        Ok(Parsed(Value::string(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Parsed(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Parsed(Value::list(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Parsed(value) = map.next_value()?;
            entries.push((sym(&key), value));
        }
        // The last occurrence of a key wins: reverse, then keep first occurrences.
        entries.reverse();
        Ok(Parsed(Value::attrs(Attrs::from_unsorted(entries))))
    }
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Parsed, D::Error> {
        deserializer.deserialize_any(ParsedVisitor)
    }
}

fn from_json(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let text = ev.force_string(arg(args, 0), span)?;
    let mut deserializer = serde_json::Deserializer::from_str(text.as_str());
    // Deep documents are fine: the evaluator thread has a large stack.
    deserializer.disable_recursion_limit();
    let parsed = Parsed::deserialize(&mut deserializer).and_then(|parsed| {
        deserializer.end()?;
        Ok(parsed)
    });
    match parsed {
        Ok(Parsed(value)) => Ok(value),
        Err(e) => Err(EvalError::eval(format!("while parsing JSON: {e}")).at(span)),
    }
}

/// Converts a parsed TOML value; dates and times are refused as in Nix 2.8.
fn toml_value(value: toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::string(s),
        toml::Value::Integer(i) => Value::Int(i),
        toml::Value::Float(x) => Value::Float(x),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(_) => return Err("Dates and times are not supported".into()),
        toml::Value::Array(items) => Value::list(
            items
                .into_iter()
                .map(toml_value)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        toml::Value::Table(table) => toml_table(table)?,
    })
}

fn toml_table(table: toml::Table) -> Result<Value, String> {
    let entries = table
        .into_iter()
        .map(|(name, value)| Ok((sym(&name), toml_value(value)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Value::attrs(Attrs::from_unsorted(entries)))
}

fn from_toml(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let text = force_string_no_context(ev, arg(args, 0), span)?;
    text.parse::<toml::Table>()
        .map_err(|e| e.message().to_owned())
        .and_then(toml_table)
        .map_err(|message| {
            EvalError::eval(format!("while parsing a TOML string: {message}")).at(span)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        Parsed::deserialize(&mut deserializer).unwrap().0
    }

    #[test]
    fn json_numbers_keep_nix_types() {
        // nix-instantiate 2.8: fromJSON "18446744073709551615" is -1, "1.0" is the float 1.
        assert!(matches!(parse("18446744073709551615"), Value::Int(-1)));
        assert!(matches!(parse("1.0"), Value::Float(x) if x == 1.0));
        assert!(matches!(parse("-5"), Value::Int(-5)));
    }

    #[test]
    fn json_repeated_keys_keep_the_last_value() {
        // nix-instantiate 2.8: fromJSON ''{"a":1,"a":2}'' is { a = 2; }.
        let Value::Attrs(attrs) = parse(r#"{"a":1,"a":2,"b":null}"#) else {
            panic!("not a set");
        };
        assert!(matches!(attrs.get_str("a"), Some(Value::Int(2))));
        assert!(matches!(attrs.get_str("b"), Some(Value::Null)));
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn toml_dates_are_refused() {
        let table: toml::Table = "a = 1979-05-27T07:32:00Z".parse().unwrap();
        assert_eq!(
            toml_table(table).err().as_deref(),
            Some("Dates and times are not supported")
        );
    }
}
