//! POSIX extended regular expressions as Nix 2.8 runs them (libstdc++'s `std::regex` with
//! `extended`), on top of `regex-automata`, for `builtins.match` and `builtins.split`.
//!
//! Semantics kept from Nix:
//! - matching is on bytes (a `.` is one byte; classes are ASCII/C-locale), and `.` also
//!   matches a newline; the pattern is bytes too, so a multi-byte character in a bracket
//!   expression stands for each of its bytes;
//! - the overall match is leftmost-*longest* (`split "a|ab" "xabx"` matches `ab`), while the
//!   capture groups inside it are assigned by alternative priority, as libstdc++ does
//!   (`match "(a|ab)(c|bcd)(d*)" "abcd"` is `[ "a" "bcd" "" ]`);
//! - inside a bracket expression `\` is an ordinary character, `]` first is literal and
//!   `[:class:]` names work;
//! - `split` walks matches as `std::regex_iterator` does: after an empty match it first tries a
//!   non-empty match at the same place, then searches again one byte further.
//!
//! Escapes are allowed only before the special characters `^$\.*+?()[]{}|`, as in libstdc++
//! (so `\d`, `\n`, `\/` and back-references are invalid there too).
//!
//! Known differences: `[=x=]` and `[.x.]` are refused; a `$` inside the pattern that would need to see past the chosen match end is judged
//! at that end. Compiled expressions are cached per pattern text for the evaluator thread.
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

/// The pattern was not a valid (supported) regular expression.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regular expression '{pattern}'")]
pub struct InvalidRegex {
    pub pattern: String,
}

/// One compiled Nix regular expression.
pub struct NixRegex {
    /// Leftmost-first: finds where the leftmost match starts.
    first: Regex,
    /// All-matches semantics: run anchored, gives the longest match end from a start.
    longest: Regex,
    /// `(?:re)\z` with groups: the captures of a match whose span is already known.
    captures: Regex,
}

/// A match: the overall span and each group's span (`None` when the group did not take part).
pub struct RegexMatch {
    pub span: Range<usize>,
    pub groups: Vec<Option<Range<usize>>>,
}

/// Compiled expressions (or the error) by pattern bytes.
type RegexCache = HashMap<Box<[u8]>, Result<Rc<NixRegex>, InvalidRegex>>;

thread_local! {
    static CACHE: RefCell<RegexCache> = RefCell::new(HashMap::new());
}

/// The compiled form of `pattern`, from the cache when it was compiled before.
pub fn compile(pattern: &[u8]) -> Result<Rc<NixRegex>, InvalidRegex> {
    if let Some(hit) = CACHE.with(|cache| cache.borrow().get(pattern).cloned()) {
        return hit;
    }
    let compiled = NixRegex::new(pattern).map(Rc::new);
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .insert(Box::from(pattern), compiled.clone())
    });
    compiled
}

/// Rewrites POSIX ERE syntax into `regex-syntax` syntax.
fn translate(pattern: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    while i < pattern.len() {
        let b = pattern[i];
        match b {
            b'\\' => {
                // Only the special characters may be escaped (libstdc++ refuses `\d`, `\n`,
                // `\/`, back-references, …).
                let next = *pattern.get(i + 1)?;
                if !b"^$\\.*+?()[]{}|".contains(&next) {
                    return None;
                }
                push_literal(&mut out, next);
                i += 2;
            }
            b'{' if pattern.get(i + 1) == Some(&b',') => return None,
            b'[' => {
                i = translate_bracket(pattern, i, &mut out)?;
            }
            b'(' if pattern.get(i + 1) == Some(&b'?') => return None,
            _ => {
                push_byte(&mut out, b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Appends `b` as it is when it is ASCII (a special character keeps its meaning), else as
/// the escape of that one byte.
fn push_byte(out: &mut String, b: u8) {
    if b.is_ascii() {
        out.push(char::from(b));
    } else {
        out.push_str(&format!("\\x{b:02X}"));
    }
}

/// Appends `b` as a literal byte.
fn push_literal(out: &mut String, b: u8) {
    if b"\\.+*?()|[]{}^$#&-~".contains(&b) {
        out.push('\\');
    }
    push_byte(out, b);
}

/// Translates the bracket expression starting at `pattern[start] == b'['`; returns the index
/// after its closing `]`.
fn translate_bracket(pattern: &[u8], start: usize, out: &mut String) -> Option<usize> {
    let mut i = start + 1;
    out.push('[');
    if pattern.get(i) == Some(&b'^') {
        out.push('^');
        i += 1;
    }
    if pattern.get(i) == Some(&b']') {
        out.push_str("\\]");
        i += 1;
    }
    loop {
        let b = *pattern.get(i)?;
        match b {
            b']' => {
                out.push(']');
                return Some(i + 1);
            }
            b'[' if pattern.get(i + 1) == Some(&b':') => {
                // A character class name, copied up to its ":]".
                let close = (i + 2..pattern.len().saturating_sub(1))
                    .find(|&j| pattern[j] == b':' && pattern[j + 1] == b']')?;
                for &name_byte in &pattern[i..close + 2] {
                    push_byte(out, name_byte);
                }
                i = close + 2;
            }
            b'[' if matches!(pattern.get(i + 1), Some(b'=') | Some(b'.')) => return None,
            b'\\' | b'[' | b'&' | b'~' => {
                out.push('\\');
                out.push(char::from(b));
                i += 1;
            }
            b'-' if pattern.get(i + 1) == Some(&b'-') => {
                out.push_str("\\-");
                i += 1;
            }
            _ => {
                push_byte(out, b);
                i += 1;
            }
        }
    }
}

impl NixRegex {
    fn new(pattern: &[u8]) -> Result<NixRegex, InvalidRegex> {
        let invalid = || InvalidRegex {
            pattern: String::from_utf8_lossy(pattern).into_owned(),
        };
        let translated = translate(pattern).ok_or_else(invalid)?;
        let syntax = syntax::Config::new()
            .unicode(false)
            .utf8(false)
            .dot_matches_new_line(true);
        let build = |text: &str, kind: MatchKind| {
            Regex::builder()
                .syntax(syntax)
                .configure(meta::Config::new().match_kind(kind).utf8_empty(false))
                .build(text)
                .map_err(|_| invalid())
        };
        Ok(NixRegex {
            first: build(&translated, MatchKind::LeftmostFirst)?,
            longest: build(&translated, MatchKind::All)?,
            captures: build(&format!("(?:{translated})\\z"), MatchKind::LeftmostFirst)?,
        })
    }

    /// Number of capture groups (without the whole match).
    pub fn group_count(&self) -> usize {
        self.captures.captures_len().saturating_sub(1)
    }

    /// The longest match starting exactly at `start`; with `non_empty`, only a non-empty one.
    fn longest_at(&self, text: &[u8], start: usize, non_empty: bool) -> Option<usize> {
        let input = Input::new(text).range(start..).anchored(Anchored::Yes);
        let end = self.longest.search_half(&input)?.offset();
        (!non_empty || end > start).then_some(end)
    }

    /// The captures of the match known to span `span`.
    fn captures_of(&self, text: &[u8], span: Range<usize>) -> RegexMatch {
        let mut caps = self.captures.create_captures();
        let input = Input::new(&text[..span.end])
            .range(span.start..)
            .anchored(Anchored::Yes);
        self.captures.search_captures(&input, &mut caps);
        let groups = (1..caps.group_len())
            .map(|g| caps.get_group(g).map(|s| s.range()))
            .collect();
        RegexMatch { span, groups }
    }

    /// Whether the whole of `text` matches, with the groups (`builtins.match`).
    pub fn match_whole(&self, text: &[u8]) -> Option<RegexMatch> {
        let mut caps = self.captures.create_captures();
        let input = Input::new(text).anchored(Anchored::Yes);
        self.captures.search_captures(&input, &mut caps);
        caps.get_match()?;
        let groups = (1..caps.group_len())
            .map(|g| caps.get_group(g).map(|s| s.range()))
            .collect();
        Some(RegexMatch {
            span: 0..text.len(),
            groups,
        })
    }

    /// The leftmost-longest match at or after `from`.
    fn search(&self, text: &[u8], from: usize) -> Option<Range<usize>> {
        let found = self.first.search(&Input::new(text).range(from..))?;
        let start = found.start();
        let end = self.longest_at(text, start, false).unwrap_or(found.end());
        Some(start..end.max(found.end()))
    }

    /// Every match as `std::sregex_iterator` yields them (`builtins.split`).
    pub fn find_all(&self, text: &[u8]) -> Vec<RegexMatch> {
        let mut matches = Vec::new();
        let mut next = self.search(text, 0);
        while let Some(span) = next {
            let end = span.end;
            let empty = span.is_empty();
            matches.push(self.captures_of(text, span));
            next = if !empty {
                self.search(text, end)
            } else if end >= text.len() {
                None
            } else {
                match self.longest_at(text, end, true) {
                    Some(longer) => Some(end..longer),
                    None => self.search(text, end + 1),
                }
            };
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(pattern: &str, text: &str) -> Vec<Range<usize>> {
        compile(pattern.as_bytes())
            .unwrap()
            .find_all(text.as_bytes())
            .into_iter()
            .map(|m| m.span)
            .collect()
    }

    #[test]
    fn split_walks_like_std_regex_iterator() {
        // Spans behind nix-instantiate 2.8's `split "x*" "ab"` and `split "a*" "baaa"`.
        assert_eq!(spans("x*", "ab"), [0..0, 1..1, 2..2]);
        assert_eq!(spans("a*", "baaa"), [0..0, 1..4, 4..4]);
    }

    #[test]
    fn overall_match_is_longest_groups_by_priority() {
        assert_eq!(spans("a|ab", "xabx"), vec![1..3]);
        let re = compile(b"(a|ab)(c|bcd)(d*)").unwrap();
        let m = re.match_whole(b"abcd").unwrap();
        assert_eq!(m.groups, [Some(0..1), Some(1..4), Some(4..4)]);
    }

    #[test]
    fn posix_syntax_translates() {
        let re = compile(b"[[:alpha:]]+([[:digit:]]*)").unwrap();
        assert!(re.match_whole(b"abc123").is_some());
        assert!(compile(b"a.b").unwrap().match_whole(b"a\nb").is_some());
        assert!(compile(b"[]a]+").unwrap().match_whole(b"]a]").is_some());
        assert!(compile(b"[\\]+").unwrap().match_whole(b"\\\\").is_some());
        assert!(compile(b"a\\.b").unwrap().match_whole(b"axb").is_none());
        assert!(compile(b"(").is_err());
        assert!(compile(b"(a)\\1").is_err());
        assert!(compile(b"\\d").is_err());
        assert!(compile(b"a{,2}").is_err());
        assert!(compile(b"\\{").unwrap().match_whole(b"{").is_some());
        assert!(compile(b"a**").unwrap().match_whole(b"aa").is_some());
        assert!(compile(b"(|a)").unwrap().match_whole(b"a").is_some());
        assert!(compile(b".").unwrap().match_whole("é".as_bytes()).is_none());
        assert_eq!(compile(b"(a)|(b)").unwrap().group_count(), 2);
        // The pattern is bytes: a two-byte character in brackets stands for each byte
        // (nix-instantiate 2.8: `match "[é]" (substring 0 1 "é")` is `[ ]`).
        let bracket = compile("[é]".as_bytes()).unwrap();
        assert!(bracket.match_whole(&[0xc3]).is_some());
        assert!(bracket.match_whole("é".as_bytes()).is_none());
        assert!(compile("é+".as_bytes())
            .unwrap()
            .match_whole("éé".as_bytes())
            .is_none());
        assert!(compile(b"\xff+")
            .unwrap()
            .match_whole(b"\xff\xff")
            .is_some());
    }
}
