//! String builtins: `stringLength`, `substring`, `concatStringsSep`, `replaceStrings`, `match`
//! and `split`. Lengths and positions count bytes, as in Nix; results keep the context of the
//! strings they are made of (for `replaceStrings`, a replacement's context only when it is
//! used). Strings are bytes, so a cut through a multi-byte character keeps the bytes on
//! each side, and concatenating the parts restores the character.
use super::regex::{compile, RegexMatch};
use super::{arg, Builtin};
use crate::error::{EvalError, EvalResult};
use crate::eval::{CoerceMode, Evaluator};
use crate::value::{Context, ContextElem, NixString, Value};
use kiln_lang::{Span, Symbol};

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "stringLength",
        arity: 1,
        top_level: false,
        doc: "The length of a string in bytes.",
        func: string_length,
    },
    Builtin {
        name: "substring",
        arity: 3,
        top_level: false,
        doc: "The part of a string from a start byte, of at most the given length.",
        func: substring,
    },
    Builtin {
        name: "concatStringsSep",
        arity: 2,
        top_level: false,
        doc: "Join a list of strings with a separator.",
        func: concat_strings_sep,
    },
    Builtin {
        name: "replaceStrings",
        arity: 3,
        top_level: false,
        doc: "Replace every occurrence of each string of a list by its counterpart.",
        func: replace_strings,
    },
    Builtin {
        name: "match",
        arity: 2,
        top_level: false,
        doc: "The groups of a POSIX regex matching a whole string, or null.",
        func: regex_match,
    },
    Builtin {
        name: "split",
        arity: 2,
        top_level: false,
        doc: "Split a string at the matches of a POSIX regex, keeping the groups.",
        func: split,
    },
];

/// A string that must not refer to store paths (Nix's `forceStringNoCtx`).
pub(crate) fn force_string_no_context(
    ev: &Evaluator,
    value: &Value,
    span: Span,
) -> EvalResult<String> {
    Ok(force_shared_string_no_context(ev, value, span)?
        .to_str_lossy()
        .into_owned())
}

/// An attribute name given as a string without context (`listToAttrs`, `hasAttr`, …),
/// interned without copying the text first.
pub(crate) fn force_attr_name(ev: &Evaluator, value: &Value, span: Span) -> EvalResult<Symbol> {
    Ok(Symbol::intern_bytes(
        force_shared_string_no_context(ev, value, span)?.as_bytes(),
    ))
}

/// A string without context, as the shared value.
fn force_shared_string_no_context(
    ev: &Evaluator,
    value: &Value,
    span: Span,
) -> EvalResult<NixString> {
    let s = ev.force_string(value, span)?;
    if let Some(first) = s.context().iter().next() {
        return Err(EvalError::eval(format!(
            "the string '{}' is not allowed to refer to a store path (such as '{}')",
            s,
            first.encode()
        ))
        .at(span));
    }
    Ok(s)
}

fn coerce(ev: &Evaluator, value: &Value, span: Span) -> EvalResult<NixString> {
    ev.coerce_to_string(value, span, CoerceMode::INTERPOLATION)
}

fn string_length(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let s = coerce(ev, arg(args, 0), span)?;
    Ok(Value::Int(s.len() as i64))
}

fn substring(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    // Nix 2.8 keeps start and length in a C `int`: truncate the same way.
    let start = ev.force_int(arg(args, 0), span)? as i32;
    let len = ev.force_int(arg(args, 1), span)? as i32;
    let s = coerce(ev, arg(args, 2), span)?;
    if start < 0 {
        return Err(EvalError::eval("negative start position in 'substring'").at(span));
    }
    let bytes = s.as_bytes();
    let start = start as usize;
    if start >= bytes.len() {
        return Ok(Value::String(NixString::with_context(
            "",
            s.context().clone(),
        )));
    }
    if start == 0 && (len < 0 || len as usize >= bytes.len()) {
        return Ok(Value::String(s));
    }
    // A negative length is a huge `size_t` in Nix: the rest of the string.
    let end = if len < 0 {
        bytes.len()
    } else {
        start.saturating_add(len as usize).min(bytes.len())
    };
    Ok(Value::String(NixString::with_context(
        &bytes[start..end],
        s.context().clone(),
    )))
}

fn concat_strings_sep(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let separator = ev.force_string(arg(args, 0), span)?;
    let list = ev.force_list(arg(args, 1), span)?;
    // Elements are gathered first and made a set once (extending a set element by element
    // would be quadratic for long lists of store paths).
    let mut elements: Vec<ContextElem> = separator.context().iter().cloned().collect();
    let mut parts = Vec::with_capacity(list.len());
    for item in list.iter() {
        let part = coerce(ev, item, span)?;
        if part.has_context() {
            elements.extend(part.context().iter().cloned());
        }
        parts.push(part);
    }
    let context: Context = elements.into_iter().collect();
    let total = parts.iter().map(|p| p.len()).sum::<usize>()
        + separator.len() * parts.len().saturating_sub(1);
    let mut text = Vec::with_capacity(total);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            text.extend_from_slice(separator.as_bytes());
        }
        text.extend_from_slice(part.as_bytes());
    }
    Ok(Value::String(NixString::with_context(text, context)))
}

fn replace_strings(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let from_list = ev.force_list(arg(args, 0), span)?;
    let to_list = ev.force_list(arg(args, 1), span)?;
    if from_list.len() != to_list.len() {
        return Err(EvalError::eval(
            "'from' and 'to' arguments to 'replaceStrings' have different lengths",
        )
        .at(span));
    }
    let from = from_list
        .iter()
        .map(|v| ev.force_string(v, span))
        .collect::<EvalResult<Vec<_>>>()?;
    // Replacements are forced only when their pattern matches (as current Nix does).
    let mut to: Vec<Option<NixString>> = vec![None; to_list.len()];
    let s = ev.force_string(arg(args, 2), span)?;
    let mut context: Context = s.context().clone();
    let text = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let mut changed = false;
    // Bytes that can start a match; with no empty pattern, runs of other bytes are copied in
    // one go.
    let patterns: Vec<&[u8]> = from.iter().map(|f| f.as_bytes()).collect();
    let has_empty = patterns.iter().any(|p| p.is_empty());
    let mut starts = [false; 256];
    for pattern in &patterns {
        if let Some(&first) = pattern.first() {
            starts[usize::from(first)] = true;
        }
    }
    // Loops one past the last byte so that an empty pattern also matches at the end.
    let mut p = 0;
    while p <= text.len() {
        if !has_empty {
            let run = text[p..]
                .iter()
                .position(|&b| starts[usize::from(b)])
                .unwrap_or(text.len() - p);
            out.extend_from_slice(&text[p..p + run]);
            p += run;
            if p == text.len() {
                break;
            }
        }
        let rest = &text[p..];
        let found = patterns
            .iter()
            .position(|pattern| rest.starts_with(pattern));
        match found {
            Some(i) => {
                changed = true;
                let replacement = match &to[i] {
                    Some(replacement) => replacement,
                    None => to[i].insert(ev.force_string(&to_list[i], span)?),
                };
                out.extend_from_slice(replacement.as_bytes());
                let pattern_len = from[i].len();
                if pattern_len == 0 {
                    if let Some(&byte) = text.get(p) {
                        out.push(byte);
                    }
                    p += 1;
                } else {
                    p += pattern_len;
                }
            }
            None => {
                if let Some(&byte) = text.get(p) {
                    out.push(byte);
                }
                p += 1;
            }
        }
    }
    if !changed {
        return Ok(Value::String(s));
    }
    for replacement in to.iter().flatten() {
        context.extend(replacement.context().iter().cloned());
    }
    Ok(Value::String(NixString::with_context(out, context)))
}

/// The group list of a match: strings, or null for groups that did not take part.
fn group_values(text: &[u8], found: &RegexMatch) -> Value {
    Value::list(
        found
            .groups
            .iter()
            .map(|group| match group {
                Some(range) => Value::string(&text[range.clone()]),
                None => Value::Null,
            })
            .collect(),
    )
}

fn regex_match(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let pattern = force_shared_string_no_context(ev, arg(args, 0), span)?;
    let regex = compile(pattern.as_bytes()).map_err(|e| EvalError::eval(e.to_string()).at(span))?;
    let s = ev.force_string(arg(args, 1), span)?;
    let text = s.as_bytes();
    Ok(match regex.match_whole(text) {
        Some(found) => group_values(text, &found),
        None => Value::Null,
    })
}

fn split(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let pattern = force_shared_string_no_context(ev, arg(args, 0), span)?;
    let regex = compile(pattern.as_bytes()).map_err(|e| EvalError::eval(e.to_string()).at(span))?;
    let s = ev.force_string(arg(args, 1), span)?;
    let text = s.as_bytes();
    let matches = regex.find_all(text);
    if matches.is_empty() {
        return Ok(Value::list(vec![Value::String(s)]));
    }
    let mut items = Vec::with_capacity(2 * matches.len() + 1);
    let mut previous_end = 0;
    for found in &matches {
        items.push(Value::string(&text[previous_end..found.span.start]));
        items.push(group_values(text, found));
        previous_end = found.span.end;
    }
    items.push(Value::string(&text[previous_end..]));
    Ok(Value::list(items))
}

#[cfg(test)]
mod tests {
    use super::super::lists::run_nix;

    /// Expectations from nix-instantiate 2.8.
    #[test]
    fn string_builtins_match_nix() {
        let cases = [
            (
                r#"builtins.split "a*" "baaa""#,
                r#"[ "" [ ] "b" [ ] "" [ ] "" ]"#,
            ),
            (r#"builtins.split "a|ab" "xabx""#, r#"[ "x" [ ] "x" ]"#),
            (
                r#"builtins.split "(a)|b" "ab""#,
                r#"[ "" [ "a" ] "" [ null ] "" ]"#,
            ),
            (
                r#"builtins.split "" "ab""#,
                r#"[ "" [ ] "a" [ ] "b" [ ] "" ]"#,
            ),
            (
                r#"builtins.match "(a|ab)(c|bcd)(d*)" "abcd""#,
                r#"[ "a" "bcd" "" ]"#,
            ),
            (r#"builtins.match "" """#, "[ ]"),
            (r#"builtins.match "a" "b""#, "null"),
            (
                r#"builtins.match "\\d" "1""#,
                r#"error: invalid regular expression '\d'"#,
            ),
            (r#"builtins.substring 1 (-1) "hello""#, r#""ello""#),
            (r#"builtins.substring 10 2 "hello""#, r#""""#),
            (
                r#"builtins.substring (-1) 2 "hello""#,
                "error: negative start position in 'substring'",
            ),
            (
                r#"builtins.replaceStrings ["a" ""] ["X" "-"] "bab""#,
                r#""-bX-b-""#,
            ),
            (
                r#"builtins.replaceStrings [ "" ] [ "-" ] "abc""#,
                r#""-a-b-c-""#,
            ),
            (
                r#"builtins.replaceStrings [ "a" ] [ ] "abc""#,
                "error: 'from' and 'to' arguments to 'replaceStrings' have different lengths",
            ),
            (r#"builtins.concatStringsSep "," []"#, r#""""#),
            (r#"builtins.concatStringsSep ", " ["a" "b"]"#, r#""a, b""#),
            (
                r#"builtins.concatStringsSep "," [1]"#,
                "error: cannot coerce an integer to a string",
            ),
            (r#"builtins.stringLength "héllo""#, "6"),
            (r#"builtins.compareVersions "1.2" "1.10""#, "-1"),
            (
                r#"builtins.parseDrvName "hello-2.1""#,
                r#"{ name = "hello"; version = "2.1"; }"#,
            ),
            (
                r#"builtins.hashString "sha256" """#,
                r#""e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855""#,
            ),
            (
                r#"builtins.hashString "crc32" """#,
                "error: unknown hash algorithm 'crc32'",
            ),
            (
                r#"builtins.fromJSON "[0, -1, 1e2, 1.5E-1]""#,
                "[ 0 -1 100 0.15 ]",
            ),
            (
                r#"builtins.toJSON { a = [ 1 "x" null ]; }"#,
                r#""{\"a\":[1,\"x\",null]}""#,
            ),
            (
                r#"builtins.fromTOML "a = 1.5\nb = [1, \"x\"]\n[c]\nd = true""#,
                r#"{ a = 1.5; b = [ 1 "x" ]; c = { d = true; }; }"#,
            ),
        ];
        for (src, want) in cases {
            assert_eq!(run_nix(src), want, "{src}");
        }
    }
}
