//! Strings and paths: interpolated strings, indented strings with Nix's indentation
//! stripping, static strings, and path literals resolved and normalised as Nix does.
use super::*;

impl Lowerer<'_, '_> {
    pub(super) fn lower_string(&mut self, s: &ast::Str) -> Result<ExprKind, SyntaxError> {
        let multiline = s.syntax().first_token().is_some_and(|t| t.text() == "''");
        // Indented strings lose their common indentation first; both kinds have their
        // escapes resolved.
        let source_parts = if multiline {
            indented_parts(s)
        } else {
            s.normalized_parts()
        };
        let mut parts = Vec::new();
        for part in source_parts {
            match part {
                InterpolPart::Literal(text) => {
                    if !text.is_empty() {
                        parts.push(StrPart::Literal(Rc::from(text)))
                    }
                }
                InterpolPart::Interpolation(interp) => {
                    let span = self.span(interp.syntax());
                    parts.push(StrPart::Interpolation(
                        self.lower_child(interp.expr(), span)?,
                    ));
                }
            }
        }
        Ok(match parts.as_slice() {
            [] => ExprKind::Str(StrLiteral::new(Rc::from(""))),
            [StrPart::Literal(text)] => ExprKind::Str(StrLiteral::new(text.clone())),
            _ => ExprKind::Interpolated(parts),
        })
    }

    /// The literal pieces and interpolations of a path node. rnix's own `parts()` panics on
    /// a path node with whitespace inside (`/.` and `${…}` on the next line), which
    /// `split_path_error` reports before lowering; this one reports it too.
    pub(super) fn path_parts(
        &self,
        node: &rnix::SyntaxNode,
    ) -> Result<Vec<InterpolPart<ast::PathContent>>, SyntaxError> {
        let mut parts = Vec::new();
        let mut path_ended = false;
        for child in node.children_with_tokens() {
            let span = Span::new(
                self.cx.file,
                u32::from(child.text_range().start()),
                u32::from(child.text_range().end()),
            );
            match child {
                rowan::NodeOrToken::Token(token) if !path_ended => {
                    match ast::PathContent::cast(token.clone()) {
                        Some(content) => parts.push(InterpolPart::Literal(content)),
                        None if token.kind().is_trivia() => path_ended = true,
                        None => {
                            return Err(self.error(
                                format!("syntax error, unexpected '{}'", token.text()),
                                span,
                            ))
                        }
                    }
                }
                rowan::NodeOrToken::Token(token) if token.kind().is_trivia() => {}
                rowan::NodeOrToken::Token(token) => {
                    return Err(self.error(
                        format!("syntax error, unexpected {}", bison_token(token.text())),
                        span,
                    ))
                }
                rowan::NodeOrToken::Node(node) => match ast::Interpol::cast(node) {
                    Some(interpolation) if !path_ended => {
                        parts.push(InterpolPart::Interpolation(interpolation))
                    }
                    _ => {
                        return Err(
                            self.error("syntax error, unexpected DOLLAR_CURLY".to_owned(), span)
                        )
                    }
                },
            }
        }
        Ok(parts)
    }

    pub(super) fn lower_path(
        &mut self,
        parts: Vec<InterpolPart<ast::PathContent>>,
        span: Span,
    ) -> Result<ExprKind, SyntaxError> {
        let mut out = Vec::new();
        for (index, part) in parts.into_iter().enumerate() {
            match part {
                InterpolPart::Literal(content) => {
                    let text = content.text();
                    let text = if index == 0 {
                        self.absolute_path_prefix(text, span)?
                    } else {
                        text.to_string()
                    };
                    out.push(StrPart::Literal(Rc::from(text)));
                }
                InterpolPart::Interpolation(interp) => {
                    let ispan = self.span(interp.syntax());
                    out.push(StrPart::Interpolation(
                        self.lower_child(interp.expr(), ispan)?,
                    ));
                }
            }
        }
        if let [StrPart::Literal(text)] = out.as_slice() {
            if text.len() > 1 && text.ends_with('/') {
                return Err(self.error(format!("path '{text}' has a trailing slash"), span));
            }
            return Ok(ExprKind::Path(PathExpr::Literal(Rc::from(canonical_path(
                text,
            )))));
        }
        Ok(ExprKind::Path(PathExpr::Interpolated(out)))
    }

    /// Makes the first literal of a path absolute: `~/` against home, relative against the
    /// file's directory.
    pub(super) fn absolute_path_prefix(
        &self,
        text: &str,
        span: Span,
    ) -> Result<String, SyntaxError> {
        if let Some(rest) = text.strip_prefix("~/") {
            let home = self
                .cx
                .home_dir
                .ok_or_else(|| self.error("cannot resolve '~': HOME is not set".into(), span))?;
            return Ok(format!("{}/{}", home.display(), rest));
        }
        if text.starts_with('/') {
            return Ok(text.to_string());
        }
        let joined = self.cx.base_dir.join(text);
        let mut s = joined.display().to_string();
        if text.ends_with('/') && !s.ends_with('/') {
            s.push('/');
        }
        Ok(s)
    }
}

/// A piece of an indented string as Nix 2.8's lexer splits it.
pub(super) enum IndentedPiece {
    /// A run of plain text.
    Text(String),
    /// The result of an escape (`'''`, `''$`, `''\\X`).
    Escape(String),
    Interpolation(ast::Interpol),
}

/// Splits the raw text of an indented string into plain runs and unescaped escapes:
/// `'''` → `''`, `''$` → `$`, `''\\X` → X (`n`, `r`, `t` as control characters).
pub(super) fn split_indented(raw: &str, out: &mut Vec<IndentedPiece>) {
    let mut rest = raw;
    while let Some(i) = rest.find("''") {
        if i > 0 {
            out.push(IndentedPiece::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let mut chars = after.chars();
        match chars.next() {
            Some('\'') => {
                out.push(IndentedPiece::Escape("''".into()));
                rest = &after[1..];
            }
            Some('$') => {
                out.push(IndentedPiece::Escape("$".into()));
                rest = &after[1..];
            }
            Some('\\') => match chars.next() {
                Some(c) => {
                    let unescaped = match c {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        other => other,
                    };
                    out.push(IndentedPiece::Escape(unescaped.to_string()));
                    rest = &after[1 + c.len_utf8()..];
                }
                None => rest = "",
            },
            _ => {
                out.push(IndentedPiece::Text("''".into()));
                rest = after;
            }
        }
    }
    if !rest.is_empty() {
        out.push(IndentedPiece::Text(rest.to_string()));
    }
}

/// The parts of an indented string after Nix 2.8's indentation stripping: the minimum
/// indentation ignores escapes (they end a line's leading whitespace, like interpolations),
/// but stripping then treats escaped text like plain text (so an escaped `''\\n` starts a
/// line whose indentation is stripped too).
pub(super) fn indented_parts(s: &ast::Str) -> Vec<InterpolPart<String>> {
    let mut pieces: Vec<IndentedPiece> = Vec::new();
    for (index, part) in s.parts().enumerate() {
        match part {
            InterpolPart::Literal(content) => {
                let mut text = content.syntax().text();
                if index == 0 {
                    // The lexer drops spaces and one newline right after the opening quotes.
                    let spaces = text.len() - text.trim_start_matches(' ').len();
                    if text[spaces..].starts_with('\n') {
                        text = &text[spaces + 1..];
                    }
                }
                split_indented(text, &mut pieces);
            }
            InterpolPart::Interpolation(i) => pieces.push(IndentedPiece::Interpolation(i)),
        }
    }
    // Minimum indentation; whitespace-only lines do not count.
    let mut at_line_start = true;
    // Lines of only spaces do not count; with none left every leading space goes.
    let mut min_indent = usize::MAX;
    let mut current = 0usize;
    for piece in &pieces {
        match piece {
            IndentedPiece::Interpolation(_) | IndentedPiece::Escape(_) => {
                if at_line_start {
                    at_line_start = false;
                    min_indent = min_indent.min(current);
                }
            }
            IndentedPiece::Text(text) => {
                for c in text.chars() {
                    if at_line_start {
                        match c {
                            ' ' => current += 1,
                            '\n' => current = 0,
                            _ => {
                                at_line_start = false;
                                min_indent = min_indent.min(current);
                            }
                        }
                    } else if c == '\n' {
                        at_line_start = true;
                        current = 0;
                    }
                }
            }
        }
    }
    let count = pieces.len();
    let mut out: Vec<InterpolPart<String>> = Vec::with_capacity(count);
    at_line_start = true;
    let mut dropped = 0usize;
    for (index, piece) in pieces.into_iter().enumerate() {
        let text = match piece {
            IndentedPiece::Interpolation(i) => {
                at_line_start = false;
                dropped = 0;
                out.push(InterpolPart::Interpolation(i));
                continue;
            }
            IndentedPiece::Text(text) | IndentedPiece::Escape(text) => text,
        };
        let mut stripped = String::with_capacity(text.len());
        for c in text.chars() {
            if at_line_start {
                match c {
                    ' ' => {
                        if dropped >= min_indent {
                            stripped.push(c);
                        }
                        dropped += 1;
                    }
                    '\n' => {
                        dropped = 0;
                        stripped.push(c);
                    }
                    _ => {
                        at_line_start = false;
                        dropped = 0;
                        stripped.push(c);
                    }
                }
            } else {
                stripped.push(c);
                if c == '\n' {
                    at_line_start = true;
                }
            }
        }
        // A whitespace-only last line is dropped.
        if index + 1 == count {
            if let Some(p) = stripped.rfind('\n') {
                if stripped[p + 1..].chars().all(|c| c == ' ') {
                    stripped.truncate(p + 1);
                }
            }
        }
        match out.last_mut() {
            Some(InterpolPart::Literal(previous)) => previous.push_str(&stripped),
            _ => out.push(InterpolPart::Literal(stripped)),
        }
    }
    out
}

/// The text of a string without interpolations, or None.
pub(super) fn static_string(s: &ast::Str) -> Option<String> {
    let mut text = String::new();
    for part in s.normalized_parts() {
        match part {
            InterpolPart::Literal(lit) => text.push_str(&lit),
            InterpolPart::Interpolation(_) => return None,
        }
    }
    Some(text)
}

/// Lexical canonicalisation as Nix's `canonPath`: drops `.` and empty components, resolves `..`
/// without touching the file system.
pub fn canonical_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(name) => parts.push(name.to_str().unwrap_or("")),
        }
    }
    let mut out = String::with_capacity(path.len());
    for part in &parts {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}
