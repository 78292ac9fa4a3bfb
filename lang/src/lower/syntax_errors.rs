//! Syntax errors as Nix 2.8 words them: rnix's parse errors turned into Bison-style messages
//! (`syntax error, unexpected ID, expecting ';'`) with the token names Nix's grammar uses, and
//! the check that source text is UTF-8.
use super::*;

/// Nix refuses source that is not valid UTF-8; returns the text or the error at the first bad byte.
pub fn check_utf8(bytes: &[u8], file: FileId) -> Result<&str, SyntaxError> {
    std::str::from_utf8(bytes).map_err(|error| {
        let at = error.valid_up_to() as u32;
        SyntaxError {
            message: "invalid UTF-8 in source".into(),
            span: Span::new(file, at, at + 1),
            suggestion: None,
        }
    })
}

pub(super) fn token_name(kind: SyntaxKind) -> String {
    use SyntaxKind::*;
    match kind {
        TOKEN_IDENT => "ID".into(),
        TOKEN_INTEGER => "INT".into(),
        TOKEN_FLOAT => "FLOAT".into(),
        TOKEN_OR => "OR_KW".into(),
        TOKEN_INTERPOL_START => "DOLLAR_CURLY".into(),
        TOKEN_STRING_START => "'\"'".into(),
        TOKEN_L_PAREN => "'('".into(),
        TOKEN_R_PAREN => "')'".into(),
        TOKEN_L_BRACE => "'{'".into(),
        TOKEN_R_BRACE => "'}'".into(),
        TOKEN_L_BRACK => "'['".into(),
        TOKEN_R_BRACK => "']'".into(),
        TOKEN_SEMICOLON => "';'".into(),
        TOKEN_COLON => "':'".into(),
        TOKEN_ASSIGN => "'='".into(),
        TOKEN_COMMA => "','".into(),
        TOKEN_IN => "IN".into(),
        TOKEN_THEN => "THEN".into(),
        TOKEN_ELSE => "ELSE".into(),
        other => format!("{other:?}")
            .trim_start_matches("TOKEN_")
            .trim_start_matches("NODE_")
            .to_string(),
    }
}

/// The name Nix's Bison grammar gives the token `text` starts with (`EQ` for `==`, `'<'`
/// for `<`, …).
pub(super) fn bison_token(text: &str) -> String {
    const NAMED: &[(&str, &str)] = &[
        ("==", "EQ"),
        ("!=", "NEQ"),
        ("<=", "LEQ"),
        (">=", "GEQ"),
        ("&&", "AND"),
        ("||", "OR"),
        ("->", "IMPL"),
        ("//", "UPDATE"),
        ("++", "CONCAT"),
        ("${", "DOLLAR_CURLY"),
    ];
    for (op, name) in NAMED {
        if text.starts_with(op) {
            return (*name).to_string();
        }
    }
    match text.chars().next() {
        Some(c) => format!("'{c}'"),
        None => "end of file".to_string(),
    }
}

pub(super) fn syntax_error(error: &rnix::ParseError, source: &str, file: FileId) -> SyntaxError {
    use rnix::ParseError as E;
    let range_span =
        |range: &TextRange| Span::new(file, u32::from(range.start()), u32::from(range.end()));
    let eof = Span::new(file, source.len() as u32, source.len() as u32);
    let expecting = |kinds: &[SyntaxKind]| {
        let names: Vec<String> = kinds.iter().map(|k| token_name(*k)).collect();
        if names.is_empty() {
            String::new()
        } else {
            format!(", expecting {}", names.join(" or "))
        }
    };
    let (message, span) = match error {
        E::UnexpectedExtra(range) => {
            let text = source[usize::from(range.start())..usize::from(range.end())].trim_start();
            let token = bison_token(text);
            // A second comparison in a row (`a < b < c`) is where Nix's grammar has no
            // continuation at all, so Bison lists no expected tokens.
            let non_associative = ["<", ">", "<=", ">=", "==", "!="]
                .iter()
                .any(|op| text.starts_with(op));
            let message = if non_associative {
                format!("syntax error, unexpected {token}")
            } else {
                format!("syntax error, unexpected {token}, expecting end of file")
            };
            (message, range_span(range))
        }
        E::UnexpectedWanted(_, range, wanted)
            if wanted.contains(&SyntaxKind::TOKEN_STRING_END)
                && usize::from(range.end()) >= source.trim_end().len() =>
        {
            (
                "syntax error, unexpected end of file, expecting '\"'".to_string(),
                eof,
            )
        }
        E::UnexpectedWanted(got, range, wanted) if wanted.contains(&SyntaxKind::TOKEN_IDENT) => {
            let got_text = source[usize::from(range.start())..usize::from(range.end())]
                .trim()
                .chars()
                .next()
                .map(String::from)
                .unwrap_or_default();
            let got = match got {
                SyntaxKind::TOKEN_ASSIGN
                | SyntaxKind::TOKEN_SEMICOLON
                | SyntaxKind::TOKEN_R_BRACE
                | SyntaxKind::TOKEN_R_PAREN
                | SyntaxKind::TOKEN_DOT => format!("'{got_text}'"),
                other => token_name(*other),
            };
            (
                format!(
                    "syntax error, unexpected {got}, expecting ID or OR_KW or DOLLAR_CURLY or '\"'"
                ),
                range_span(range),
            )
        }
        E::Unexpected(range) => {
            let text = &source[usize::from(range.start())..usize::from(range.end())];
            (
                format!("syntax error, unexpected '{}'", text.trim()),
                range_span(range),
            )
        }
        E::UnexpectedWanted(got, range, wanted) => (
            format!(
                "syntax error, unexpected {}{}",
                token_name(*got),
                expecting(wanted)
            ),
            range_span(range),
        ),
        E::UnexpectedDoubleBind(range) => (
            "syntax error, unexpected '@'".to_string(),
            range_span(range),
        ),
        E::UnexpectedEOF => ("syntax error, unexpected end of file".to_string(), eof),
        E::UnexpectedEOFWanted(wanted) => (
            format!("syntax error, unexpected end of file{}", expecting(wanted)),
            eof,
        ),
        E::DuplicatedArgs(range, name) => (
            format!("duplicate formal function argument '{name}'"),
            range_span(range),
        ),
        E::RecursionLimitExceeded => ("expression nested too deeply".to_string(), eof),
        other => (format!("syntax error: {other}"), eof),
    };
    SyntaxError {
        message,
        span,
        suggestion: None,
    }
}

/// Nix's lexer ends a path at whitespace or a comment, so a `${…}` after it is a token its
/// grammar does not expect there, while rnix's parser keeps such an interpolation inside the
/// path node (`/.` and `${""}` on the next line). The first such path in the tree, as Nix's
/// error.
pub(super) fn split_path_error(root: &rnix::SyntaxNode, file: FileId) -> Option<SyntaxError> {
    use SyntaxKind::*;
    root.descendants()
        .filter(|node| matches!(node.kind(), NODE_PATH_ABS | NODE_PATH_REL | NODE_PATH_HOME))
        .find_map(|path| {
            let after_trivia = path
                .children_with_tokens()
                .skip_while(|child| !child.kind().is_trivia())
                .find(|child| !child.kind().is_trivia())?;
            let unexpected = match &after_trivia {
                rowan::NodeOrToken::Token(token) => bison_token(token.text()),
                rowan::NodeOrToken::Node(_) => "DOLLAR_CURLY".to_owned(),
            };
            let range = after_trivia.text_range();
            Some(SyntaxError {
                message: format!(
                    "syntax error, unexpected {unexpected}{}",
                    expected_after(&path)
                ),
                span: Span::new(file, u32::from(range.start()), u32::from(range.end())),
                suggestion: None,
            })
        })
}

/// What Bison expects after a complete expression that ends at the end of `node`: the
/// closing token of the nearest construct around it that has one (`;` of a binding, `)`,
/// `then`, …), the end of the file at the top, nothing named inside a list (too many
/// tokens could follow there for Bison to list them).
fn expected_after(node: &rnix::SyntaxNode) -> String {
    use SyntaxKind::*;
    let end = node.text_range().end();
    for ancestor in node.ancestors().skip(1) {
        if ancestor.kind() == NODE_ROOT {
            return ", expecting end of file".to_owned();
        }
        let closer = ancestor
            .children_with_tokens()
            .filter_map(|child| child.into_token())
            .find(|token| token.text_range().start() >= end && !token.kind().is_trivia());
        match closer.map(|token| token.kind()) {
            Some(TOKEN_R_BRACK) => return String::new(),
            Some(
                kind @ (TOKEN_R_PAREN | TOKEN_SEMICOLON | TOKEN_R_BRACE | TOKEN_INTERPOL_END
                | TOKEN_THEN | TOKEN_ELSE | TOKEN_IN),
            ) => {
                let name = match kind {
                    TOKEN_INTERPOL_END => "'}'".to_owned(),
                    other => token_name(other),
                };
                return format!(", expecting {name}");
            }
            _ => {}
        }
    }
    String::new()
}
