//! Source text bookkeeping: every file or expression string the evaluator reads is registered
//! in a `SourceMap` under a `FileId`; a `Span` (file + byte range) points back into it and can
//! be turned into a line/column position or a snippet for diagnostics.
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Index of a source in a `SourceMap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range inside one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: u32, end: u32) -> Self {
        Span { file, start, end }
    }
}

/// One registered source.
#[derive(Debug)]
pub struct SourceFile {
    /// What diagnostics call it: the file's path, or `«string»` for `-E` expressions.
    pub name: String,
    /// The file on disk, if it came from one.
    pub path: Option<PathBuf>,
    pub text: Rc<str>,
    line_starts: Vec<u32>,
}

/// A 1-based line and column (column counted in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// All sources seen by one evaluator.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a file read from `path`.
    pub fn add_file(&mut self, path: &Path, text: Rc<str>) -> FileId {
        self.add(path.display().to_string(), Some(path.to_path_buf()), text)
    }

    /// Registers source text with a display name (e.g. `«string»`).
    pub fn add(&mut self, name: String, path: Option<PathBuf>, text: Rc<str>) -> FileId {
        let mut line_starts = vec![0u32];
        for (offset, byte) in text.bytes().enumerate() {
            if byte == b'\n' {
                line_starts.push(offset as u32 + 1);
            }
        }
        self.files.push(SourceFile {
            name,
            path,
            text,
            line_starts,
        });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    /// Line and column of a byte offset.
    pub fn line_col(&self, id: FileId, offset: u32) -> Option<LineCol> {
        let file = self.file(id)?;
        let line_index = match file.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = file.line_starts[line_index] as usize;
        let end = (offset as usize).min(file.text.len());
        let column = file
            .text
            .get(line_start..end)
            .map_or(end - line_start, |s| s.chars().count())
            + 1;
        Some(LineCol {
            line: line_index + 1,
            column,
        })
    }

    /// The text of a whole 1-based line (without its newline).
    pub fn line_text(&self, id: FileId, line: usize) -> Option<&str> {
        let file = self.file(id)?;
        let start = *file.line_starts.get(line.checked_sub(1)?)? as usize;
        let end = file
            .line_starts
            .get(line)
            .map_or(file.text.len(), |&next| next as usize - 1);
        file.text.get(start..end)
    }

    /// The source text a span covers.
    pub fn snippet(&self, span: Span) -> Option<&str> {
        self.file(span.file)?
            .text
            .get(span.start as usize..span.end as usize)
    }

    /// `name:line:column` of a span's start, as used in "at FILE:L:C" notes.
    pub fn describe(&self, span: Span) -> String {
        match (self.file(span.file), self.line_col(span.file, span.start)) {
            (Some(file), Some(pos)) => format!("{}:{}:{}", file.name, pos.line, pos.column),
            _ => "«unknown»".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_lookup() {
        let mut map = SourceMap::new();
        let id = map.add("t".into(), None, Rc::from("ab\ncdé\nx"));
        assert_eq!(map.line_col(id, 0), Some(LineCol { line: 1, column: 1 }));
        assert_eq!(map.line_col(id, 3), Some(LineCol { line: 2, column: 1 }));
        assert_eq!(map.line_col(id, 7), Some(LineCol { line: 2, column: 4 }));
        assert_eq!(map.line_col(id, 8), Some(LineCol { line: 3, column: 1 }));
        assert_eq!(map.line_text(id, 2), Some("cdé"));
        assert_eq!(map.snippet(Span::new(id, 3, 5)), Some("cd"));
        assert_eq!(map.describe(Span::new(id, 4, 5)), "t:2:2");
    }
}

/// Nix's lexer treats a carriage return, alone or before a line feed, as a line end: it ends
/// a `#` comment, separates tokens, and becomes a plain line feed inside `"…"` strings. Inside
/// indented strings (`''…''`) it is an ordinary character, kept as it is. The text as kiln
/// parses (and shows) it: every `\r\n` and lone `\r` outside indented-string text turned into
/// `\n`; borrowed when there is no carriage return.
pub fn normalise_line_endings(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\r') {
        return std::borrow::Cow::Borrowed(text);
    }
    /// What encloses a token: code, a `"…"` string or an indented string.
    #[derive(PartialEq)]
    enum Context {
        Code,
        Quoted,
        Indented,
    }
    use rnix::SyntaxKind::{
        TOKEN_INTERPOL_END, TOKEN_INTERPOL_START, TOKEN_STRING_CONTENT, TOKEN_STRING_END,
        TOKEN_STRING_START,
    };
    let mut out = String::with_capacity(text.len());
    let mut stack = vec![Context::Code];
    let mut pending_cr = false;
    for (kind, token) in rnix::tokenize(text) {
        let inside = stack.last().unwrap_or(&Context::Code);
        let keep_raw = kind == TOKEN_STRING_CONTENT && *inside == Context::Indented;
        match kind {
            TOKEN_STRING_START if token == "''" => stack.push(Context::Indented),
            TOKEN_STRING_START => stack.push(Context::Quoted),
            TOKEN_INTERPOL_START => stack.push(Context::Code),
            TOKEN_STRING_END | TOKEN_INTERPOL_END if stack.len() > 1 => {
                stack.pop();
            }
            _ => {}
        }
        for c in token.chars() {
            // A `\r\n` split over two tokens still makes one line feed.
            if pending_cr {
                pending_cr = false;
                if c == '\n' {
                    continue;
                }
            }
            if c == '\r' && !keep_raw {
                out.push('\n');
                pending_cr = true;
            } else {
                out.push(c);
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod line_ending_tests {
    use super::normalise_line_endings;

    #[test]
    fn carriage_returns_become_line_feeds() {
        assert_eq!(normalise_line_endings("a\r\nb\rc\n\r\n"), "a\nb\nc\n\n");
        assert_eq!(
            normalise_line_endings("# c\rx\r\n\"a\rb\\\r\""),
            "# c\nx\n\"a\nb\\\n\""
        );
        assert!(matches!(
            normalise_line_endings("no returns\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn indented_strings_keep_carriage_returns() {
        assert_eq!(normalise_line_endings("''\r''"), "''\r''");
        assert_eq!(
            normalise_line_endings("[ ''a\r\nb${\"c\rd\"}\r'' ]\r\n"),
            "[ ''a\r\nb${\"c\nd\"}\r'' ]\n"
        );
    }
}
