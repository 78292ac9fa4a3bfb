//! Evaluation errors: their kind (which decides what `tryEval` catches), Nix's message, the
//! span they point at, a trace of the frames that led there, and the rustc-style renderer.
use crate::value::Value;
use kiln_lang::{SourceMap, Span, SyntaxError};
use std::fmt;

/// What went wrong, as far as catching is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `throw` — caught by `tryEval`.
    Throw,
    /// A failed `assert` — caught by `tryEval`.
    Assert,
    /// `abort`.
    Abort,
    /// A value of the wrong type.
    Type,
    /// Syntax errors and the static errors of lowering.
    Syntax,
    InfiniteRecursion,
    StackOverflow,
    /// Missing attributes, undefined variables at run time, bad arguments, I/O, …
    Eval,
}

/// One step of the trace: "while evaluating the attribute 'a'" at a position.
#[derive(Clone, Debug)]
pub struct TraceFrame {
    pub message: String,
    pub span: Option<Span>,
    /// How many times in a row this frame occurred (recursion).
    pub repeats: usize,
}

#[derive(Debug)]
pub struct ErrorData {
    pub kind: ErrorKind,
    pub message: String,
    pub span: Option<Span>,
    pub trace: Vec<TraceFrame>,
    /// Frames not kept because the trace was full.
    pub dropped_frames: usize,
    pub suggestion: Option<String>,
    /// A hint in the user's terms, shown as `= help: …` (beyond a "did you mean" name).
    pub help: Option<String>,
}

/// An evaluation error. Boxed so that `Result<Value, EvalError>` stays small.
#[derive(thiserror::Error)]
#[error("{}", .0.message)]
pub struct EvalError(pub Box<ErrorData>);

/// Traces are capped so that deep recursion does not build huge errors.
const MAX_TRACE: usize = 64;

/// Frames shown without `--show-trace`.
const SHORT_TRACE: usize = 6;

impl EvalError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EvalError(Box::new(ErrorData {
            kind,
            message: message.into(),
            span: None,
            trace: Vec::new(),
            dropped_frames: 0,
            suggestion: None,
            help: None,
        }))
    }

    /// A generic (uncatchable) evaluation error.
    pub fn eval(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Eval, message)
    }

    /// "value is an integer while a string was expected".
    pub fn type_mismatch(expected: &str, got: &Value) -> Self {
        Self::new(
            ErrorKind::Type,
            format!(
                "value is {} while {} was expected",
                got.type_description(),
                expected
            ),
        )
    }

    /// Sets the span unless one is already set (the innermost position wins).
    pub fn at(mut self, span: Span) -> Self {
        if self.0.span.is_none() {
            self.0.span = Some(span);
        }
        self
    }

    pub fn with_suggestion(mut self, suggestion: Option<String>) -> Self {
        self.0.suggestion = suggestion;
        self
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.0.help = help;
        self
    }

    /// Adds a frame to the trace (outermost last).
    pub fn add_trace(mut self, message: impl Into<String>, span: Option<Span>) -> Self {
        let message = message.into();
        if let Some(last) = self.0.trace.last_mut() {
            if last.span == span && last.message == message {
                last.repeats += 1;
                return self;
            }
        }
        if self.0.trace.len() < MAX_TRACE {
            self.0.trace.push(TraceFrame {
                message,
                span,
                repeats: 1,
            });
        } else {
            self.0.dropped_frames += 1;
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn span(&self) -> Option<Span> {
        self.0.span
    }

    pub fn trace(&self) -> &[TraceFrame] {
        &self.0.trace
    }

    /// Whether `builtins.tryEval` catches it (only `throw` and failed assertions, as in Nix).
    pub fn is_catchable(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Throw | ErrorKind::Assert)
    }

    /// Renders rustc-style, with the source line and caret under the span, then the trace,
    /// innermost frame first (runs of the same frame shown once, with a count); without
    /// `full` (`--show-trace`) only the first few frames:
    ///
    /// ```text
    /// error: attribute 'x' missing
    ///   --> /path/file.nix:3:5
    ///    |
    ///  3 |   a.x + 1
    ///    |   ^^^
    ///    = note: while calling 'f' at /path/file.nix:7:3
    ///    = note: while evaluating the attribute 'y' at /path/file.nix:2:3
    /// ```
    pub fn render(&self, sources: &SourceMap, full: bool) -> String {
        let mut out = format!("error: {}\n", self.0.message);
        let gutter = self
            .0
            .span
            .and_then(|span| sources.line_col(span.file, span.start))
            .map_or(1, |pos| pos.line.to_string().len())
            + 1;
        if let Some(span) = self.0.span {
            render_location(&mut out, sources, span, gutter);
        }
        let pad = " ".repeat(gutter + 1);
        if let Some(s) = &self.0.suggestion {
            out.push_str(&format!("{pad}= help: did you mean '{s}'?\n"));
        }
        if let Some(help) = &self.0.help {
            out.push_str(&format!("{pad}= help: {help}\n"));
        }
        let frames = &self.0.trace;
        let shown = if full {
            frames.len()
        } else {
            frames.len().min(SHORT_TRACE)
        };
        for frame in &frames[..shown] {
            let count = frame.repeats;
            let place = frame
                .span
                .map(|span| format!(" at {}", sources.describe(span)))
                .unwrap_or_default();
            let repeats = if count > 1 {
                format!(" ({count} times)")
            } else {
                String::new()
            };
            out.push_str(&format!("{pad}= note: {}{place}{repeats}\n", frame.message));
        }
        let hidden: usize =
            frames[shown..].iter().map(|f| f.repeats).sum::<usize>() + self.0.dropped_frames;
        if hidden > 0 {
            let more = if full {
                ""
            } else {
                " (--show-trace shows them)"
            };
            out.push_str(&format!("{pad}= note: … and {hidden} more frames{more}\n"));
        }
        out
    }
}

fn render_location(out: &mut String, sources: &SourceMap, span: Span, gutter: usize) {
    let (Some(file), Some(start)) = (
        sources.file(span.file),
        sources.line_col(span.file, span.start),
    ) else {
        return;
    };
    let pad = " ".repeat(gutter);
    out.push_str(&format!(
        "{pad}--> {}:{}:{}\n",
        file.name, start.line, start.column
    ));
    let Some(line_text) = sources.line_text(span.file, start.line) else {
        return;
    };
    // The caret covers the span on its first line (at least one character).
    let end_col = match sources.line_col(span.file, span.end) {
        Some(end) if end.line == start.line && end.column > start.column => end.column,
        _ if span.end > span.start => line_text.chars().count() + 1,
        _ => start.column + 1,
    };
    let width = end_col.saturating_sub(start.column).max(1);
    out.push_str(&format!("{pad} |\n"));
    out.push_str(&format!("{:>gutter$} | {}\n", start.line, line_text));
    out.push_str(&format!(
        "{pad} | {}{}\n",
        " ".repeat(start.column - 1),
        "^".repeat(width)
    ));
}

impl From<SyntaxError> for EvalError {
    fn from(e: SyntaxError) -> Self {
        EvalError::new(ErrorKind::Syntax, e.message)
            .at(e.span)
            .with_suggestion(e.suggestion)
    }
}

impl fmt::Debug for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub type EvalResult<T> = Result<T, EvalError>;

/// Text for standard error: ANSI escape sequences (colours that Nix-language code puts in its
/// messages, as nixpkgs' module system does) are removed when standard error is not a
/// terminal, as Nix does, so logs and pipes get plain text.
pub fn for_stderr(text: &str) -> std::borrow::Cow<'_, str> {
    use std::io::IsTerminal;
    if !text.contains('\u{1b}') || std::io::stderr().is_terminal() {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(strip_ansi_escapes(text))
}

/// Removes `ESC [ … final-byte` (CSI) sequences and lone escapes.
fn strip_ansi_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod ansi_tests {
    #[test]
    fn escape_sequences_are_removed() {
        assert_eq!(
            super::strip_ansi_escapes("a \u{1b}[1;35mwarn\u{1b}[0m b\u{1b}"),
            "a warn b"
        );
    }
}
