//! What an evaluation says besides its value: `builtins.trace` output, `builtins.warn`
//! warnings and the evaluator's own warnings (an empty hash taken as a pinned one). The
//! evaluator hands each [`EvalMessage`] to the [`EvalMessages`] sink of its options; the
//! command line installs one that renders through its log format (plain lines, or JSON `msg`
//! events), and [`StderrMessages`] — the default — writes Nix's text to standard error.
use crate::error::for_stderr;

/// One message of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalMessage {
    /// `builtins.trace`: the value shown as text (bytes that are not UTF-8 as U+FFFD).
    Trace(String),
    /// `builtins.warn`: the text the Nix code gave.
    UserWarning(String),
    /// A warning of the evaluator itself.
    Warning(String),
}

impl EvalMessage {
    /// Whether it is a warning (rather than a trace).
    pub fn is_warning(&self) -> bool {
        !matches!(self, EvalMessage::Trace(_))
    }

    /// The text as Nix prints it on standard error (`trace: …`, `evaluation warning: …`,
    /// `warning: …`), without the final newline.
    pub fn render(&self) -> String {
        match self {
            EvalMessage::Trace(text) => format!("trace: {text}"),
            EvalMessage::UserWarning(text) => user_warning_text(text),
            EvalMessage::Warning(text) => format!("warning: {text}"),
        }
    }
}

/// A `builtins.warn` message as current Nix prints it: continuation lines are aligned under
/// the first line's text, unless the message starts on a line of its own.
fn user_warning_text(message: &str) -> String {
    const PREFIX: &str = "evaluation warning:";
    if message.starts_with('\n') {
        format!("{PREFIX}{message}")
    } else {
        let indent = format!("\n{}", " ".repeat(PREFIX.len() + 1));
        format!("{PREFIX} {}", message.replace('\n', &indent))
    }
}

/// Where an evaluator's messages go.
pub trait EvalMessages {
    fn report(&self, message: EvalMessage);
}

/// Writes each message as Nix does: its text on standard error (colour codes removed when
/// standard error is not a terminal).
pub struct StderrMessages;

impl EvalMessages for StderrMessages {
    fn report(&self, message: EvalMessage) {
        eprintln!("{}", for_stderr(&message.render()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_render_as_nix_prints_them() {
        assert_eq!(EvalMessage::Trace("1".into()).render(), "trace: 1");
        assert_eq!(
            EvalMessage::UserWarning("a\nb".into()).render(),
            "evaluation warning: a\n                    b"
        );
        assert_eq!(
            EvalMessage::UserWarning("\na".into()).render(),
            "evaluation warning:\na"
        );
        assert_eq!(
            EvalMessage::Warning("found empty hash".into()).render(),
            "warning: found empty hash"
        );
        assert!(!EvalMessage::Trace(String::new()).is_warning());
    }
}
