//! kiln-lang: the front end. Owns source text (`SourceMap`, `Span`), parsing with rnix and
//! lowering the rnix AST into the scope-resolved IR that the evaluator runs.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

pub mod error;
pub mod ir;
pub mod lower;
pub mod nesting;
pub mod source;
pub mod suggest;
pub mod symbol;

pub use error::SyntaxError;
pub use lower::{check_utf8, parse_and_lower, Globals, LowerContext};
pub use source::{FileId, LineCol, SourceFile, SourceMap, Span};
pub use symbol::Symbol;
