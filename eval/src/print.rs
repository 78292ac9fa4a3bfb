//! Showing values as `nix-instantiate --eval [--strict]` prints them, and converting them to
//! JSON with `builtins.toJSON` semantics (`__toString`, `outPath`, paths copied to the store).
//! Both produce bytes: a string's bytes are copied as they are, whether UTF-8 or not, and
//! only the characters Nix escapes are escaped.
use crate::error::{ErrorKind, EvalError, EvalResult};
use crate::eval::SeenSet;
use crate::eval::{CoerceMode, Evaluator};
use crate::value::{Context, Value};
use kiln_lang::Span;
use std::io::Write;
use std::rc::Rc;

/// Formats a float like C++'s default stream output (`%g`, 6 significant digits).
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let scientific = format!("{x:.5e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", strip(mantissa), sign, exponent.abs())
    } else {
        let decimals = (5 - exponent).max(0) as usize;
        strip(&format!("{x:.decimals$}"))
    }
}

/// Quotes a string as Nix prints it.
pub fn escape_string(s: &[u8], out: &mut Vec<u8>) {
    quote(s, out, |next| next == Some(&b'{'));
}

/// Quotes an attribute name as Nix 2.8 prints one that is not an identifier: as a string,
/// except that every `$` is escaped (`{ "\$a" = 1; }`), not only one before `{`.
fn escape_attribute_name(name: &[u8], out: &mut Vec<u8>) {
    quote(name, out, |_| true);
}

/// `"…"` with `"`, `\`, line feed, carriage return and tab escaped, and `$` when
/// `escape_dollar` says so of the byte after it. Every other byte is copied.
fn quote(s: &[u8], out: &mut Vec<u8>, escape_dollar: impl Fn(Option<&u8>) -> bool) {
    out.push(b'"');
    let mut bytes = s.iter().peekable();
    while let Some(&b) = bytes.next() {
        match (b, quoted_escape(b)) {
            (_, Some(escape)) => out.extend_from_slice(escape),
            (b'$', None) if escape_dollar(bytes.peek().copied()) => out.extend_from_slice(b"\\$"),
            (b, None) => out.push(b),
        }
    }
    out.push(b'"');
}

/// The escape of `b` shared by Nix's value printer and its JSON writer: `"`, `\`, line feed,
/// carriage return and tab.
fn quoted_escape(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        _ => return None,
    })
}

/// Whether an attribute name can be printed without quotes.
fn is_plain_identifier(name: &str) -> bool {
    // Nix 2.8 quotes only this keyword when printing attribute names.
    const KEYWORDS: &[&str] = &["if"];
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
        && !KEYWORDS.contains(&name)
}

impl Evaluator {
    /// Shows a value like `nix-instantiate --eval`; with `strict` everything is forced first.
    /// The result is bytes: strings are printed as the bytes they hold.
    pub fn print_value(&self, value: &Value, strict: bool) -> EvalResult<Vec<u8>> {
        let span = Span::default();
        let value = if strict {
            self.deep_force(value, span)?
        } else {
            self.force(value, span)?
        };
        let mut out = Vec::new();
        let mut seen = SeenSet::default();
        // The top-level value is a copy in Nix: a small list there never counts as seen.
        match &value {
            // The top-level value is forced, so a lambda there is never `<CODE>`.
            Value::Lambda(_) => out.extend_from_slice(b"<LAMBDA>"),
            _ => self.print_into(&value, None, strict, &mut out, &mut seen),
        }
        Ok(out)
    }

    /// Prints `value`. `cell` is the thunk it was reached through, if any: Nix stores lists
    /// of up to two elements inside the value cell itself, so such a list is «repeated» only
    /// when the same cell is met again (`let x = [ x ]; in x` shows `[ [ «repeated» ] ]`).
    ///
    /// Without `strict`, a lambda not called yet and reached directly (not through a thunk)
    /// shows `<CODE>`: Nix has an unevaluated thunk in its place (see `Closure::unforced`).
    fn print_into(
        &self,
        value: &Value,
        cell: Option<usize>,
        strict: bool,
        out: &mut Vec<u8>,
        seen: &mut SeenSet,
    ) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.extend_from_slice(format_float(*f).as_bytes()),
            Value::String(s) => escape_string(s.as_bytes(), out),
            Value::Path(p) => out.extend_from_slice(p.as_bytes()),
            Value::Attrs(attrs) => {
                if !attrs.is_empty() && !seen.insert(Rc::as_ptr(attrs) as usize) {
                    out.extend_from_slice("«repeated»".as_bytes());
                    return;
                }
                out.extend_from_slice(b"{ ");
                for (name, v) in attrs.iter() {
                    if is_plain_identifier(name.as_str()) {
                        out.extend_from_slice(name.as_str().as_bytes());
                    } else {
                        escape_attribute_name(name.as_bytes(), out);
                    }
                    out.extend_from_slice(b" = ");
                    self.print_into(v, None, strict, out, seen);
                    out.extend_from_slice(b"; ");
                }
                out.push(b'}');
            }
            Value::List(items) => {
                let key = if items.len() <= 2 {
                    cell
                } else {
                    Some(Rc::as_ptr(items) as usize)
                };
                if !items.is_empty() && key.is_some_and(|key| !seen.insert(key)) {
                    out.extend_from_slice("«repeated»".as_bytes());
                    return;
                }
                out.extend_from_slice(b"[ ");
                for v in items.iter() {
                    self.print_into(v, None, strict, out, seen);
                    out.push(b' ');
                }
                out.push(b']');
            }
            Value::Lambda(closure) if !strict && cell.is_none() && closure.unforced.get() => {
                out.extend_from_slice(b"<CODE>")
            }
            Value::Lambda(_) => out.extend_from_slice(b"<LAMBDA>"),
            Value::PrimOp(_) => out.extend_from_slice(b"<PRIMOP>"),
            Value::PrimOpApp(_) => out.extend_from_slice(b"<PRIMOP-APP>"),
            Value::Thunk(t) => match t.value() {
                Some(v) => {
                    let cell = Some(Rc::as_ptr(&t.0) as usize);
                    self.print_into(&v, cell, strict, out, seen)
                }
                None => out.extend_from_slice(b"<CODE>"),
            },
        }
    }

    /// The value as JSON (`builtins.toJSON`, `--json`), with the context of the strings used.
    /// Bytes, like Nix's: a string that is not UTF-8 is copied as it is.
    pub fn to_json_with_context(
        &self,
        value: &Value,
        span: Span,
    ) -> EvalResult<(Vec<u8>, Context)> {
        self.to_json_as(value, span, JsonEscapes::Current)
    }

    /// The value as JSON with the escapes chosen, and the context of the strings used.
    pub fn to_json_as(
        &self,
        value: &Value,
        span: Span,
        escapes: JsonEscapes,
    ) -> EvalResult<(Vec<u8>, Context)> {
        let mut out = Vec::new();
        let mut context = Context::new();
        let mut json_string = |s: &[u8], out: &mut Vec<u8>| json_string_as(s, out, escapes);
        self.json_into(value, span, &mut out, &mut context, &mut json_string)?;
        Ok((out, context))
    }

    fn json_into(
        &self,
        value: &Value,
        span: Span,
        out: &mut Vec<u8>,
        context: &mut Context,
        json_string: &mut dyn FnMut(&[u8], &mut Vec<u8>),
    ) -> EvalResult<()> {
        self.check_stack(span)?;
        let v = self.force(value, span)?;
        match &v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.extend_from_slice(format_float(*f).as_bytes()),
            Value::String(s) => {
                json_string(s.as_bytes(), out);
                context.extend(s.context().iter().cloned());
            }
            Value::Path(_) => {
                let s = self.coerce_to_string(&v, span, CoerceMode::INTERPOLATION)?;
                json_string(s.as_bytes(), out);
                context.extend(s.context().iter().cloned());
            }
            Value::Attrs(attrs) => {
                if attrs.contains(sym!("__toString")) {
                    let s = self.coerce_to_string(&v, span, CoerceMode::INTERPOLATION)?;
                    json_string(s.as_bytes(), out);
                    context.extend(s.context().iter().cloned());
                    return Ok(());
                }
                if let Some(out_path) = attrs.get(sym!("outPath")) {
                    return self.json_into(out_path, span, out, context, json_string);
                }
                out.push(b'{');
                for (i, (name, item)) in attrs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_string(name.as_bytes(), out);
                    out.push(b':');
                    self.json_into(item, span, out, context, json_string)
                        .map_err(|e| {
                            e.add_trace(format!("while evaluating the attribute '{name}'"), None)
                        })?;
                }
                out.push(b'}');
            }
            Value::List(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.json_into(item, span, out, context, json_string)?;
                }
                out.push(b']');
            }
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => {
                return Err(EvalError::new(
                    ErrorKind::Type,
                    format!("cannot convert {} to JSON", v.type_description()),
                )
                .at(span))
            }

            Value::Thunk(_) => unreachable!("forced above"),
        }
        Ok(())
    }
}

/// JSON string escaping as Nix does it: `"`, `\` and the control characters below 0x20
/// are escaped, every other byte is copied (so bytes that are not UTF-8 stay as they are).
pub fn json_string(s: &[u8], out: &mut Vec<u8>) {
    json_string_as(s, out, JsonEscapes::Current);
}

/// Which JSON escapes a backspace and a form feed get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonEscapes {
    /// `\b` and `\f`, as current Nix writes them (`builtins.toJSON`, `--json`; a deliberate
    /// departure from 2.8, see `tests/lang/newer-nix/`).
    Current,
    /// `\u0008` and `\u000c`, as Nix 2.8 writes them — what a `.drv` written by 2.8 holds in
    /// `__json`, so what its path is computed from.
    Nix28,
}

/// [`json_string`] with the escapes chosen.
pub fn json_string_as(s: &[u8], out: &mut Vec<u8>, escapes: JsonEscapes) {
    let short = escapes == JsonEscapes::Current;
    out.push(b'"');
    for &b in s {
        if let Some(escape) = quoted_escape(b) {
            out.extend_from_slice(escape);
            continue;
        }
        match b {
            0x08 if short => out.extend_from_slice(b"\\b"),
            0x0c if short => out.extend_from_slice(b"\\f"),
            b if b < 0x20 => {
                let _ = write!(out, "\\u{b:04x}");
            }
            b => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_cpp_streams() {
        // Expected strings are nix-instantiate 2.8 output.
        let cases = [
            (1.0, "1"),
            (2.5, "2.5"),
            (1e10, "1e+10"),
            (0.00001, "1e-05"),
            (123456789.0, "1.23457e+08"),
            (1.0 / 3.0, "0.333333"),
            (1234567.0, "1.23457e+06"),
            (-2.0, "-2"),
            (1.5e300, "1.5e+300"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (0.0001, "0.0001"),
            (0.1, "0.1"),
        ];
        for (x, want) in cases {
            assert_eq!(format_float(x), want, "{x}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        escape_string(b"a\"${b}\n\t\r\\\xff", &mut out);
        assert_eq!(out, &b"\"a\\\"\\${b}\\n\\t\\r\\\\\xff\""[..]);
        let mut json = Vec::new();
        json_string(b"\"\x01\x7f\xc3\xa9\xff", &mut json);
        assert_eq!(json, &b"\"\\\"\\u0001\x7f\xc3\xa9\xff\""[..]);
        assert!(is_plain_identifier("c"));
        assert!(!is_plain_identifier("a b"));
        assert!(!is_plain_identifier("if"));
        assert!(!is_plain_identifier(""));
    }
}
