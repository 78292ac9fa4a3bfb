//! Version builtins: `compareVersions`, `splitVersion` and `parseDrvName`, with Nix's rules for
//! splitting a version into components (runs of digits, or runs of other characters, with `.`
//! and `-` as separators) and for ordering them (numbers numerically, `pre` before anything,
//! an empty component before a number, letters before numbers, else byte order).
use super::strings::force_string_no_context;
use super::{arg, Builtin};
use crate::error::EvalResult;
use crate::eval::Evaluator;
use crate::value::{Attrs, Value};
use kiln_lang::Span;
use std::cmp::Ordering;

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "compareVersions",
        arity: 2,
        top_level: false,
        doc: "Compare two version strings: -1, 0 or 1.",
        func: compare_versions_builtin,
    },
    Builtin {
        name: "splitVersion",
        arity: 1,
        top_level: false,
        doc: "The components of a version string.",
        func: split_version,
    },
    Builtin {
        name: "parseDrvName",
        arity: 1,
        top_level: false,
        doc: "Split a package name into { name, version } at the first dash before a non-letter.",
        func: parse_drv_name,
    },
];

/// The next component of `version` from byte `*pos`, advancing `*pos` past it.
fn next_component<'a>(version: &'a [u8], pos: &mut usize) -> &'a [u8] {
    while *pos < version.len() && matches!(version[*pos], b'.' | b'-') {
        *pos += 1;
    }
    let start = *pos;
    if start == version.len() {
        return &[];
    }
    if version[start].is_ascii_digit() {
        while *pos < version.len() && version[*pos].is_ascii_digit() {
            *pos += 1;
        }
    } else {
        while *pos < version.len() && !matches!(version[*pos], b'0'..=b'9' | b'.' | b'-') {
            *pos += 1;
        }
    }
    &version[start..*pos]
}

/// A component as a number, as Nix's `string2Int<int>` (32 bits) reads it.
fn as_number(component: &[u8]) -> Option<i32> {
    if component.is_empty() || !component.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(component).ok()?.parse().ok()
}

fn component_less(c1: &[u8], c2: &[u8]) -> bool {
    let (n1, n2) = (as_number(c1), as_number(c2));
    match (n1, n2) {
        (Some(a), Some(b)) => a < b,
        _ if c1.is_empty() && n2.is_some() => true,
        _ if c1 == b"pre" && c2 != b"pre" => true,
        _ if c2 == b"pre" => false,
        (_, Some(_)) => true,
        (Some(_), _) => false,
        _ => c1 < c2,
    }
}

/// Nix's `compareVersions`.
pub fn compare_versions(v1: &str, v2: &str) -> Ordering {
    let (v1, v2) = (v1.as_bytes(), v2.as_bytes());
    let (mut p1, mut p2) = (0, 0);
    while p1 < v1.len() || p2 < v2.len() {
        let c1 = next_component(v1, &mut p1);
        let c2 = next_component(v2, &mut p2);
        if component_less(c1, c2) {
            return Ordering::Less;
        }
        if component_less(c2, c1) {
            return Ordering::Greater;
        }
    }
    Ordering::Equal
}

/// Nix's `splitVersion`: the components up to the first empty one.
pub fn version_components(version: &str) -> Vec<&str> {
    let bytes = version.as_bytes();
    let mut pos = 0;
    let mut components = Vec::new();
    while pos < bytes.len() {
        let component = next_component(bytes, &mut pos);
        if component.is_empty() {
            break;
        }
        // Components end at ASCII bytes or the end, so they are on character boundaries.
        components.push(&version[pos - component.len()..pos]);
    }
    components
}

/// Nix's `DrvName`: splits at the first `-` followed by a character that is not a letter.
pub fn split_drv_name(full: &str) -> (&str, &str) {
    let bytes = full.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'-' && i + 1 < bytes.len() && !bytes[i + 1].is_ascii_alphabetic() {
            return (&full[..i], &full[i + 1..]);
        }
    }
    (full, "")
}

fn compare_versions_builtin(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let v1 = force_string_no_context(ev, arg(args, 0), span)?;
    let v2 = force_string_no_context(ev, arg(args, 1), span)?;
    Ok(Value::Int(match compare_versions(&v1, &v2) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }))
}

fn split_version(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let version = force_string_no_context(ev, arg(args, 0), span)?;
    Ok(Value::list(
        version_components(&version)
            .into_iter()
            .map(Value::string)
            .collect(),
    ))
}

fn parse_drv_name(ev: &Evaluator, args: &[Value], span: Span) -> EvalResult<Value> {
    let full = force_string_no_context(ev, arg(args, 0), span)?;
    let (name, version) = split_drv_name(&full);
    Ok(Value::attrs(Attrs::from_sorted(vec![
        (sym!("name"), Value::string(name)),
        (sym!("version"), Value::string(version)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_nix_does() {
        // Expectations from nix-instantiate 2.8 (tests/lang/builtins-strings/compare-versions-edge).
        let cases = [
            ("", "1", Ordering::Less),
            ("a", "b", Ordering::Less),
            ("1.2.3", "1.2.3", Ordering::Equal),
            ("10", "9", Ordering::Greater),
            ("1pre", "1", Ordering::Less),
            ("2.0pre", "2.0", Ordering::Less),
            ("0.9", "0.10", Ordering::Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn versions_split_and_names_parse() {
        // nix-instantiate 2.8: splitVersion "1.2pre-3..a" == [ "1" "2" "pre" "3" "a" ].
        assert_eq!(
            version_components("1.2pre-3..a"),
            ["1", "2", "pre", "3", "a"]
        );
        assert_eq!(split_drv_name("x-y-2"), ("x-y", "2"));
        assert_eq!(split_drv_name("name-"), ("name-", ""));
        assert_eq!(split_drv_name("-1.0"), ("", "1.0"));
    }
}
