//! JSON and TOML builtins: `toJSON` (the printer is the evaluator's `to_json_with_context`:
//! paths are copied to the store, sets with `__toString`/`outPath` become strings, and the
//! result keeps the strings' context), `fromJSON` (integers stay integers, unsigned ones beyond
//! the 64-bit signed range wrap as in Nix, other numbers are floats; a repeated key keeps the
//! last value; `-0` is the integer 0) and `fromTOML` (dates and times are refused, as in Nix
//! 2.8). JSON is read by a small recursive-descent parser that builds values directly (the
//! evaluator thread's large stack bounds nesting); its error messages give line and column but
//! not nlohmann's wording.
use super::strings::force_string_no_context;
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::{sym, Evaluator};
use crate::value::{Attrs, NixString, Value};
use kiln_lang::Span;

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

/// Why a JSON text could not be read: the message and the byte offset where it was noticed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct JsonError {
    message: String,
    offset: usize,
}

/// A recursive-descent JSON reader building Nix values directly (RFC 8259 syntax).
struct JsonParser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> JsonParser<'a> {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, JsonError> {
        Err(JsonError {
            message: message.into(),
            offset: self.pos,
        })
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    fn unexpected<T>(&self, expected: &str) -> Result<T, JsonError> {
        match self.text.get(self.pos) {
            None => self.error(format!("unexpected end of input; expected {expected}")),
            Some(&c) => self.error(format!(
                "unexpected '{}'; expected {expected}",
                char::from(c).escape_default()
            )),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.text[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            self.error(format!("invalid literal; expected '{word}'"))
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        self.skip_whitespace();
        match self.text.get(self.pos) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::string(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.unexpected("'[', '{', or a literal"),
        }
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.text.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::list(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_whitespace();
            match self.text.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::list(items));
                }
                _ => return self.unexpected("',' or ']'"),
            }
        }
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.pos += 1; // '{'
        let mut entries = Vec::new();
        self.skip_whitespace();
        if self.text.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::attrs(Attrs::new()));
        }
        loop {
            self.skip_whitespace();
            if self.text.get(self.pos) != Some(&b'"') {
                return self.unexpected("a string");
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.text.get(self.pos) != Some(&b':') {
                return self.unexpected("':'");
            }
            self.pos += 1;
            let value = self.value()?;
            entries.push((sym(&key), value));
            self.skip_whitespace();
            match self.text.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return self.unexpected("',' or '}'"),
            }
        }
        // The last occurrence of a key wins: reverse, then keep first occurrences.
        entries.reverse();
        Ok(Value::attrs(Attrs::from_unsorted(entries)))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok());
        match digits {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => self.error("'\\u' must be followed by 4 hex digits"),
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // '"'
        let mut out: Vec<u8> = Vec::new();
        loop {
            let start = self.pos;
            while let Some(&c) = self.text.get(self.pos) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.extend_from_slice(&self.text[start..self.pos]);
            match self.text.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    // The input is a Rust string and escapes produce whole characters.
                    return String::from_utf8(out).or_else(|_| self.error("invalid UTF-8"));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.text.get(self.pos).copied();
                    self.pos += 1;
                    let c = match escaped {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let high = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&high) {
                                if !self.text[self.pos..].starts_with(b"\\u") {
                                    return self.error("surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF");
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return self.error("surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF");
                                }
                                0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                            } else {
                                high
                            };
                            match char::from_u32(code) {
                                Some(c) => c,
                                None => return self.error("invalid surrogate in '\\u' escape"),
                            }
                        }
                        _ => {
                            return self
                                .error("invalid string: forbidden character after backslash")
                        }
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(_) => return self.error("invalid string: control character must be escaped"),
                None => return self.error("invalid string: missing closing quote"),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.text.get(p.pos) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.text.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let int_digits = digits(self);
        if int_digits == 0 {
            return self.error("invalid number; expected digit after '-'");
        }
        if int_digits > 1 && self.text[self.pos - int_digits] == b'0' {
            return self.error("invalid number; leading zeros are not allowed");
        }
        let mut is_float = false;
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            is_float = true;
            if digits(self) == 0 {
                return self.error("invalid number; expected digit after '.'");
            }
        }
        if let Some(b'e' | b'E') = self.text.get(self.pos) {
            self.pos += 1;
            is_float = true;
            if let Some(b'+' | b'-') = self.text.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return self.error("invalid number; expected digit after exponent sign");
            }
        }
        // The slice is ASCII digits and signs.
        let literal = std::str::from_utf8(&self.text[start..self.pos]).unwrap_or_default();
        if !is_float {
            if let Ok(i) = literal.parse::<i64>() {
                return Ok(Value::Int(i));
            }
            if let Ok(u) = literal.parse::<u64>() {
                // Nix stores unsigned JSON numbers in its signed integer: they wrap.
                return Ok(Value::Int(u as i64));
            }
        }
        match literal.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Float(x)),
            _ => self.error(format!("number overflow parsing '{literal}'")),
        }
    }
}

/// Parses a JSON text into a Nix value.
/// Parses a JSON document given as bytes (a Nix string); strings in it must be UTF-8.
fn parse_json(text: &(impl AsRef<[u8]> + ?Sized)) -> Result<Value, JsonError> {
    let mut parser = JsonParser {
        text: text.as_ref(),
        pos: 0,
    };
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos < parser.text.len() {
        return parser.unexpected("end of input");
    }
    Ok(value)
}

fn from_json(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let text = ev.force_string(arg(args, 0), span)?;
    parse_json(text.as_bytes()).map_err(|e| {
        let before = &text.as_bytes()[..e.offset.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        EvalError::eval(format!(
            "while parsing JSON at line {line}, column {column}: {}",
            e.message
        ))
        .at(span)
    })
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
        parse_json(text).unwrap()
    }

    #[test]
    fn json_numbers_keep_nix_types() {
        // nix-instantiate 2.8: fromJSON "18446744073709551615" is -1, "1.0" is the float 1.
        assert!(matches!(parse("18446744073709551615"), Value::Int(-1)));
        assert!(matches!(parse("1.0"), Value::Float(x) if x == 1.0));
        assert!(matches!(parse("-5"), Value::Int(-5)));
        // "-0" is the integer 0, "-0.0" the float -0.
        assert!(matches!(parse("-0"), Value::Int(0)));
        assert!(matches!(parse("-0.0"), Value::Float(x) if x == 0.0 && x.is_sign_negative()));
        assert!(matches!(parse(" 1e5 "), Value::Float(x) if x == 100000.0));
        assert_eq!(
            parse_json("1e400").unwrap_err().message,
            "number overflow parsing '1e400'"
        );
        assert!(parse_json("[1,").is_err());
        assert!(parse_json("01").is_err());
        assert!(parse_json("[1] x").is_err());
    }

    #[test]
    fn json_strings_unescape() {
        let Value::String(s) = parse(r#""\u00e9\ud83d\ude00\n\"""#) else {
            panic!("not a string");
        };
        assert_eq!(s.as_bytes(), "é😀\n\"".as_bytes());
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
