//! Errors found before evaluation: syntax errors and the static errors of lowering.
use crate::source::Span;

/// A parse or lowering error with Nix's message and the span it points at.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
    /// A "did you mean" candidate (undefined variables).
    pub suggestion: Option<String>,
}
