//! Parsing (rnix) and lowering of the rnix syntax tree to the IR in `ir.rs`. Owns scope
//! resolution (locals to (depth, slot), globals to a global slot, `with` lookups dynamic),
//! merging of nested attribute paths (`a.b = 1; a.c = 2;`), string/path normalisation and the
//! static errors Nix reports before evaluating: syntax errors, duplicate attributes, undefined
//! variables outside any `with`, invalid UTF-8.
use crate::error::SyntaxError;
use crate::ir::*;
use crate::source::{FileId, Span};
use crate::symbol::Symbol;
use rnix::ast::{self, AstToken, HasEntry, InterpolPart};
use rnix::{SyntaxKind, TextRange};
use rowan::ast::AstNode;
use std::collections::HashMap;
use std::path::{Component, Path};
use std::rc::Rc;

/// The names of the global frame (builtins and friends) and their slots.
#[derive(Debug, Default, Clone)]
pub struct Globals {
    slots: HashMap<Symbol, u32>,
}

impl Globals {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a name, returning its slot.
    pub fn add(&mut self, name: Symbol) -> u32 {
        let next = self.slots.len() as u32;
        *self.slots.entry(name).or_insert(next)
    }
    pub fn slot(&self, name: Symbol) -> Option<u32> {
        self.slots.get(&name).copied()
    }
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    pub fn names(&self) -> impl Iterator<Item = Symbol> + '_ {
        self.slots.keys().copied()
    }
}

/// What a source needs besides its text to be lowered.
pub struct LowerContext<'a> {
    pub file: FileId,
    /// The name used in Nix-style positions inside messages, e.g. `(string)` or the file path.
    pub display_name: &'a str,
    /// Directory relative paths resolve against.
    pub base_dir: &'a Path,
    /// `~` for `~/…` paths.
    pub home_dir: Option<&'a Path>,
    pub globals: &'a Globals,
    /// Names bound around the whole source, in an outermost frame (slot = index), as
    /// `scopedImport` provides them.
    pub outer_names: &'a [Symbol],
}

/// Parses and lowers `source`. Source bytes that are not UTF-8 are rejected by the caller when
/// reading (see `check_utf8`).
pub fn parse_and_lower(source: &str, cx: &LowerContext<'_>) -> Result<ExprRef, SyntaxError> {
    let parse = rnix::Root::parse(source);
    if let Some(error) = parse.errors().first() {
        return Err(syntax_error(error, source, cx.file));
    }
    let root = parse.tree();
    let expr = root.expr().ok_or_else(|| SyntaxError {
        message: "syntax error, unexpected end of file".into(),
        span: Span::new(cx.file, source.len() as u32, source.len() as u32),
        suggestion: None,
    })?;
    let mut lowerer = Lowerer {
        cx,
        source,
        scopes: Vec::new(),
        lambda_name: None,
    };
    if !cx.outer_names.is_empty() {
        let names = cx
            .outer_names
            .iter()
            .enumerate()
            .map(|(slot, name)| (*name, slot as u32))
            .collect();
        lowerer.scopes.push(Scope::Frame(names));
    }
    lowerer.lower(&expr)
}

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

fn token_name(kind: SyntaxKind) -> String {
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
fn bison_token(text: &str) -> String {
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

fn syntax_error(error: &rnix::ParseError, source: &str, file: FileId) -> SyntaxError {
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

/// A lexical scope during lowering: a frame of named slots, or a `with` frame.
enum Scope {
    Frame(HashMap<Symbol, u32>),
    With,
}

/// A binding collected from `let`/attribute-set entries before lowering, so that nested
/// attribute paths can be merged and all names of a recursive scope are known up front.
enum Pending {
    Expr(ast::Expr),
    /// `inherit x;` — a variable looked up outside the scope the set itself creates.
    Inherit(Symbol, Span),
    /// `inherit (from) x;`
    InheritFrom(ast::Expr, Symbol, Span),
    Nested(PendingAttrs),
}

/// The bindings of one attribute set (or `let`) being collected. A set literal bound to a
/// name stays `Nested` (rather than an opaque expression) so later bindings can merge into it,
/// as Nix's parser does: `a = rec { b = c; }; a.c = 1;` adds `c` to the recursive set.
#[derive(Default)]
struct PendingAttrs {
    statics: Vec<(Symbol, Pending, Span)>,
    dynamics: Vec<(ast::Expr, Pending, Span)>,
    /// Written as `rec { … }`. Merging a later `rec` set into an earlier one does not make
    /// the earlier one recursive (Nix drops the later `rec`).
    recursive: bool,
}

enum KeyName {
    Static(Symbol),
    Dynamic(ast::Expr),
}

struct Lowerer<'a, 'c> {
    cx: &'a LowerContext<'c>,
    source: &'a str,
    scopes: Vec<Scope>,
    /// The binding name for the lambda about to be lowered.
    lambda_name: Option<Symbol>,
}

fn node_span(file: FileId, node: &rnix::SyntaxNode) -> Span {
    let range = node.text_range();
    Span::new(file, u32::from(range.start()), u32::from(range.end()))
}

impl Lowerer<'_, '_> {
    fn span(&self, node: &rnix::SyntaxNode) -> Span {
        node_span(self.cx.file, node)
    }

    fn error(&self, message: String, span: Span) -> SyntaxError {
        SyntaxError {
            message,
            span,
            suggestion: None,
        }
    }

    fn mk(&self, kind: ExprKind, span: Span) -> ExprRef {
        Rc::new(Expr { kind, span })
    }

    fn position_text(&self, span: Span) -> String {
        let before = &self.source[..span.start as usize];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        format!("{}:{}:{}", self.cx.display_name, line, column)
    }

    /// Resolves a variable, ignoring the `skip` innermost scopes.
    fn resolve(&self, name: Symbol, skip: usize, span: Span) -> Result<ExprKind, SyntaxError> {
        let mut with_depths = Vec::new();
        let usable = self.scopes.len().saturating_sub(skip);
        for (index, scope) in self.scopes[..usable].iter().enumerate().rev() {
            let depth = (self.scopes.len() - 1 - index) as u32;
            match scope {
                Scope::Frame(names) => {
                    if let Some(&slot) = names.get(&name) {
                        return Ok(ExprKind::Local { depth, slot, name });
                    }
                }
                Scope::With => with_depths.push(depth),
            }
        }
        if let Some(slot) = self.cx.globals.slot(name) {
            return Ok(ExprKind::Global { slot, name });
        }
        if !with_depths.is_empty() {
            return Ok(ExprKind::WithVar {
                name,
                with_depths: with_depths.into(),
            });
        }
        let mut candidates: Vec<&str> = Vec::new();
        for scope in &self.scopes {
            if let Scope::Frame(names) = scope {
                candidates.extend(names.keys().map(|s| s.as_str()));
            }
        }
        Err(SyntaxError {
            message: format!("undefined variable '{name}'"),
            span,
            suggestion: crate::suggest::closest(name.as_str(), candidates.into_iter()),
        })
    }

    fn lower(&mut self, expr: &ast::Expr) -> Result<ExprRef, SyntaxError> {
        let span = self.span(expr.syntax());
        let kind = match expr {
            ast::Expr::Paren(p) => return self.lower_child(p.expr(), span),
            ast::Expr::Root(r) => return self.lower_child(r.expr(), span),
            ast::Expr::Error(_) => return Err(self.error("syntax error".into(), span)),
            ast::Expr::Literal(lit) => match lit.kind() {
                ast::LiteralKind::Integer(i) => match i.value() {
                    Ok(v) => ExprKind::Int(v),
                    Err(_) => {
                        return Err(
                            self.error(format!("invalid integer '{}'", i.syntax().text()), span)
                        )
                    }
                },
                ast::LiteralKind::Float(f) => match f.value() {
                    Ok(v) if float_in_range(v, f.syntax().text()) => ExprKind::Float(v),
                    _ => {
                        return Err(
                            self.error(format!("invalid float '{}'", f.syntax().text()), span)
                        )
                    }
                },
                ast::LiteralKind::Uri(u) => {
                    ExprKind::Str(StrLiteral::new(Rc::from(u.syntax().text())))
                }
            },
            ast::Expr::Ident(ident) => {
                let name = Symbol::intern(&ident.syntax().text().to_string());
                if name.as_str() == "__curPos" {
                    ExprKind::CurPos
                } else {
                    self.resolve(name, 0, span)?
                }
            }
            ast::Expr::CurPos(_) => ExprKind::CurPos,
            ast::Expr::Str(s) => self.lower_string(s)?,
            ast::Expr::PathAbs(p) => self.lower_path(p.parts(), span)?,
            ast::Expr::PathRel(p) => self.lower_path(p.parts(), span)?,
            ast::Expr::PathHome(p) => self.lower_path(p.parts(), span)?,
            ast::Expr::PathSearch(p) => {
                let text = p
                    .content()
                    .map(|c| c.text().to_string())
                    .unwrap_or_default();
                let inner = text.trim_start_matches('<').trim_end_matches('>');
                // `<p>` is `__findFile __nixPath "p"`: when either name is rebound by a
                // `let`, `rec` or argument, the rebinding is used, as in Nix.
                let find_file = self.resolve(Symbol::intern("__findFile"), 0, span)?;
                let nix_path = self.resolve(Symbol::intern("__nixPath"), 0, span)?;
                if matches!(find_file, ExprKind::Global { .. })
                    && matches!(nix_path, ExprKind::Global { .. })
                {
                    ExprKind::Path(PathExpr::Search(Rc::from(inner)))
                } else {
                    let function = self.mk(
                        ExprKind::Apply {
                            function: self.mk(find_file, span),
                            argument: self.mk(nix_path, span),
                        },
                        span,
                    );
                    ExprKind::Apply {
                        function,
                        argument: self.mk(ExprKind::Str(StrLiteral::new(Rc::from(inner))), span),
                    }
                }
            }
            ast::Expr::List(list) => {
                let mut items = Vec::new();
                for item in list.items() {
                    items.push(self.lower(&item)?);
                }
                ExprKind::List(items)
            }
            ast::Expr::Select(select) => {
                let mut subject = self.lower_child(select.expr(), span)?;
                let mut path = self.lower_attrpath(select.attrpath(), span)?;
                // `builtins.name` is the global `__name` when `builtins` is not shadowed: resolve
                // it now instead of searching the builtins set at every use.
                if let (ExprKind::Global { name, .. }, Some(AttrName::Static(first))) =
                    (&subject.kind, path.first())
                {
                    let direct = Symbol::intern(&format!("__{first}"));
                    if name.as_str() == "builtins" {
                        if let Some(slot) = self.cx.globals.slot(direct) {
                            path.remove(0);
                            if path.is_empty() {
                                return Ok(self.mk(ExprKind::Global { slot, name: direct }, span));
                            }
                            subject =
                                self.mk(ExprKind::Global { slot, name: direct }, subject.span);
                        }
                    }
                }
                let default = match select.default_expr() {
                    Some(d) => Some(self.lower(&d)?),
                    None => None,
                };
                ExprKind::Select {
                    subject,
                    path,
                    default,
                }
            }
            ast::Expr::HasAttr(has) => {
                let subject = self.lower_child(has.expr(), span)?;
                let path = self.lower_attrpath(has.attrpath(), span)?;
                ExprKind::HasAttr { subject, path }
            }
            ast::Expr::Apply(apply) => {
                let function = self.lower_child(apply.lambda(), span)?;
                let argument = self.lower_child(apply.argument(), span)?;
                ExprKind::Apply { function, argument }
            }
            ast::Expr::Lambda(lambda) => ExprKind::Lambda(self.lower_lambda(lambda, span)?),
            ast::Expr::IfElse(ifelse) => ExprKind::If {
                condition: self.lower_child(ifelse.condition(), span)?,
                then_branch: self.lower_child(ifelse.body(), span)?,
                else_branch: self.lower_child(ifelse.else_body(), span)?,
            },
            ast::Expr::Assert(assert) => {
                let shown = assert
                    .condition()
                    .map(|c| show_expr(&c))
                    .unwrap_or_default();
                ExprKind::Assert {
                    condition: self.lower_child(assert.condition(), span)?,
                    body: self.lower_child(assert.body(), span)?,
                    shown: Rc::from(shown),
                }
            }
            ast::Expr::With(with) => {
                let namespace = self.lower_child(with.namespace(), span)?;
                self.scopes.push(Scope::With);
                let body = self.lower_child(with.body(), span);
                self.scopes.pop();
                ExprKind::With {
                    namespace,
                    body: body?,
                }
            }
            ast::Expr::UnaryOp(op) => {
                let operand = self.lower_child(op.expr(), span)?;
                match op.operator() {
                    Some(ast::UnaryOpKind::Invert) => ExprKind::Not(operand),
                    _ => ExprKind::Binary {
                        op: BinaryOp::Sub,
                        lhs: self.mk(ExprKind::Int(0), span),
                        rhs: operand,
                    },
                }
            }
            ast::Expr::BinOp(bin) => {
                let lhs = self.lower_child(bin.lhs(), span)?;
                let rhs = self.lower_child(bin.rhs(), span)?;
                use ast::BinOpKind as K;
                let op = match bin.operator() {
                    Some(K::Add) => BinaryOp::Add,
                    Some(K::Sub) => BinaryOp::Sub,
                    Some(K::Mul) => BinaryOp::Mul,
                    Some(K::Div) => BinaryOp::Div,
                    Some(K::Concat) => BinaryOp::Concat,
                    Some(K::Update) => BinaryOp::Update,
                    Some(K::And) => BinaryOp::And,
                    Some(K::Or) => BinaryOp::Or,
                    Some(K::Implication) => BinaryOp::Implication,
                    Some(K::Equal) => BinaryOp::Equal,
                    Some(K::NotEqual) => BinaryOp::NotEqual,
                    Some(K::Less) => BinaryOp::Less,
                    Some(K::LessOrEq) => BinaryOp::LessOrEq,
                    Some(K::More) => BinaryOp::More,
                    Some(K::MoreOrEq) => BinaryOp::MoreOrEq,
                    Some(K::PipeRight) => {
                        return Ok(self.mk(
                            ExprKind::Apply {
                                function: rhs,
                                argument: lhs,
                            },
                            span,
                        ))
                    }
                    Some(K::PipeLeft) => {
                        return Ok(self.mk(
                            ExprKind::Apply {
                                function: lhs,
                                argument: rhs,
                            },
                            span,
                        ))
                    }
                    None => return Err(self.error("syntax error".into(), span)),
                };
                // Nix reports operator errors at the operator's position.
                ExprKind::Binary { op, lhs, rhs }
            }
            ast::Expr::AttrSet(set) => {
                let pending = self.collect_entries(set)?;
                let recursive = set.rec_token().is_some();
                ExprKind::Attrs(self.lower_attrs(pending, recursive)?)
            }
            ast::Expr::LetIn(let_in) => {
                let pending = self.collect_entries(let_in)?;
                if let Some((name, _, span)) = pending.dynamics.first() {
                    let _ = name;
                    return Err(self.error("dynamic attributes not allowed in let".into(), *span));
                }
                let mut names = HashMap::new();
                for (index, (name, _, _)) in pending.statics.iter().enumerate() {
                    names.insert(*name, index as u32);
                }
                self.scopes.push(Scope::Frame(names));
                let result = (|| {
                    let mut bindings = Vec::new();
                    for (name, value, span) in pending.statics {
                        bindings.push(self.lower_pending(value, span, 1, Some(name))?);
                    }
                    let body = self.lower_child(let_in.body(), span)?;
                    Ok(ExprKind::Let { bindings, body })
                })();
                self.scopes.pop();
                result?
            }
            ast::Expr::LegacyLet(legacy) => {
                let pending = self.collect_entries(legacy)?;
                let body_sym = Symbol::intern("body");
                let attrs = self.lower_attrs(pending, true)?;
                let attrs_expr = self.mk(ExprKind::Attrs(attrs), span);
                ExprKind::Select {
                    subject: attrs_expr,
                    path: vec![AttrName::Static(body_sym)],
                    default: None,
                }
            }
        };
        Ok(self.mk(kind, span))
    }

    fn lower_child(
        &mut self,
        child: Option<ast::Expr>,
        span: Span,
    ) -> Result<ExprRef, SyntaxError> {
        match child {
            Some(expr) => self.lower(&expr),
            None => Err(self.error("syntax error, unexpected end of file".into(), span)),
        }
    }

    fn lower_string(&mut self, s: &ast::Str) -> Result<ExprKind, SyntaxError> {
        let multiline = s.syntax().first_token().is_some_and(|t| t.text() == "''");
        let mut parts = Vec::new();
        if multiline {
            for part in indented_parts(s) {
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
            return Ok(match parts.as_slice() {
                [] => ExprKind::Str(StrLiteral::new(Rc::from(""))),
                [StrPart::Literal(text)] => ExprKind::Str(StrLiteral::new(text.clone())),
                _ => ExprKind::Interpolated(parts),
            });
        }
        for part in s.normalized_parts() {
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

    fn lower_path(
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
    fn absolute_path_prefix(&self, text: &str, span: Span) -> Result<String, SyntaxError> {
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

    fn lower_attrpath(
        &mut self,
        path: Option<ast::Attrpath>,
        span: Span,
    ) -> Result<Vec<AttrName>, SyntaxError> {
        let path = path.ok_or_else(|| self.error("syntax error".into(), span))?;
        let mut names = Vec::new();
        for attr in path.attrs() {
            names.push(match self.key_name(&attr)? {
                KeyName::Static(sym) => AttrName::Static(sym),
                KeyName::Dynamic(expr) => AttrName::Dynamic(self.lower(&expr)?),
            });
        }
        Ok(names)
    }

    /// Classifies an attribute name; string literals without interpolation are static
    /// (also inside `${…}`, as in Nix).
    fn key_name(&self, attr: &ast::Attr) -> Result<KeyName, SyntaxError> {
        match attr {
            ast::Attr::Ident(ident) => Ok(KeyName::Static(Symbol::intern(
                &ident.syntax().text().to_string(),
            ))),
            ast::Attr::Str(s) => Ok(match static_string(s) {
                Some(text) => KeyName::Static(Symbol::intern(&text)),
                None => KeyName::Dynamic(ast::Expr::Str(s.clone())),
            }),
            ast::Attr::Dynamic(dynamic) => {
                let span = self.span(dynamic.syntax());
                let inner = dynamic
                    .expr()
                    .ok_or_else(|| self.error("syntax error".into(), span))?;
                if let ast::Expr::Str(s) = &inner {
                    if let Some(text) = static_string(s) {
                        return Ok(KeyName::Static(Symbol::intern(&text)));
                    }
                }
                Ok(KeyName::Dynamic(inner))
            }
        }
    }

    fn collect_entries(&self, node: &impl HasEntry) -> Result<PendingAttrs, SyntaxError> {
        let mut attrs = PendingAttrs::default();
        for entry in node.entries() {
            match entry {
                ast::Entry::Inherit(inherit) => {
                    let from = inherit.from().and_then(|f| f.expr());
                    for attr in inherit.attrs() {
                        let span = self.span(attr.syntax());
                        let name = match self.key_name(&attr)? {
                            KeyName::Static(name) => name,
                            KeyName::Dynamic(_) => {
                                return Err(self.error(
                                    "dynamic attributes not allowed in inherit".into(),
                                    span,
                                ))
                            }
                        };
                        let value = match &from {
                            Some(from) => Pending::InheritFrom(from.clone(), name, span),
                            None => Pending::Inherit(name, span),
                        };
                        // Nix 2.8 places inherited attributes one column early.
                        let defined_at =
                            Span::new(span.file, span.start.saturating_sub(1), span.end);
                        self.insert_static(&mut attrs, name, value, defined_at, name.as_str())?;
                    }
                }
                ast::Entry::AttrpathValue(binding) => {
                    let bspan = self.span(binding.syntax());
                    let path = binding
                        .attrpath()
                        .ok_or_else(|| self.error("syntax error".into(), bspan))?;
                    let value = binding
                        .value()
                        .ok_or_else(|| self.error("syntax error".into(), bspan))?;
                    let keys: Vec<ast::Attr> = path.attrs().collect();
                    let full = path.syntax().text().to_string();
                    let path_span = self.span(path.syntax());
                    self.insert_path(&mut attrs, &keys, value, &full, path_span)?;
                }
            }
        }
        Ok(attrs)
    }

    fn pending_value(&self, value: ast::Expr) -> Result<Pending, SyntaxError> {
        if let ast::Expr::AttrSet(set) = &value {
            let mut nested = self.collect_entries(set)?;
            nested.recursive = set.rec_token().is_some();
            return Ok(Pending::Nested(nested));
        }
        Ok(Pending::Expr(value))
    }

    /// Inserts `keys = value` the way Nix 2.8's parser (`addAttr`) does; `full` is the whole
    /// attribute path as written (for messages) and `path_span` its span, recorded as where
    /// each created attribute is defined. Intermediate names descend into an existing set
    /// binding (literal, `rec` or path-made) and create a set otherwise.
    fn insert_path(
        &self,
        attrs: &mut PendingAttrs,
        keys: &[ast::Attr],
        value: ast::Expr,
        full: &str,
        path_span: Span,
    ) -> Result<(), SyntaxError> {
        let Some((first, rest)) = keys.split_first() else {
            return Ok(());
        };
        if rest.is_empty() {
            let leaf = self.pending_value(value)?;
            return match self.key_name(first)? {
                KeyName::Dynamic(name) => {
                    attrs.dynamics.push((name, leaf, path_span));
                    Ok(())
                }
                KeyName::Static(name) => self.insert_static(attrs, name, leaf, path_span, full),
            };
        }
        match self.key_name(first)? {
            KeyName::Dynamic(name) => {
                let mut nested = PendingAttrs::default();
                self.insert_path(&mut nested, rest, value, full, path_span)?;
                attrs
                    .dynamics
                    .push((name, Pending::Nested(nested), path_span));
                Ok(())
            }
            KeyName::Static(name) => match attrs.statics.iter_mut().find(|(n, _, _)| *n == name) {
                Some((_, Pending::Nested(existing), _)) => {
                    self.insert_path(existing, rest, value, full, path_span)
                }
                Some((_, _, first_span)) => Err(self.error(
                    format!(
                        "attribute '{full}' already defined at {}",
                        self.position_text(*first_span)
                    ),
                    path_span,
                )),
                None => {
                    let mut nested = PendingAttrs::default();
                    self.insert_path(&mut nested, rest, value, full, path_span)?;
                    attrs
                        .statics
                        .push((name, Pending::Nested(nested), path_span));
                    Ok(())
                }
            },
        }
    }

    /// Adds a static binding. A name bound twice is an error unless both values are set
    /// literals: then the second set's attributes join the first (one level deep, a static
    /// name in both is an error; the second set's `rec` is dropped — as in Nix; its dynamic
    /// attributes are kept, as in current Nix, where 2.8 lost them).
    fn insert_static(
        &self,
        attrs: &mut PendingAttrs,
        name: Symbol,
        value: Pending,
        span: Span,
        shown_name: &str,
    ) -> Result<(), SyntaxError> {
        let Some(index) = attrs.statics.iter().position(|(n, _, _)| *n == name) else {
            attrs.statics.push((name, value, span));
            return Ok(());
        };
        let first_span = attrs.statics[index].2;
        match (&mut attrs.statics[index].1, value) {
            (Pending::Nested(old), Pending::Nested(new)) => {
                for (n, v, s) in new.statics {
                    if let Some((_, _, old_span)) = old.statics.iter().find(|(o, _, _)| *o == n) {
                        return Err(self.error(
                            format!(
                                "attribute '{}' already defined at {}",
                                n.as_str(),
                                self.position_text(s)
                            ),
                            *old_span,
                        ));
                    }
                    old.statics.push((n, v, s));
                }
                // Nix 2.8 dropped these; current Nix keeps them (a fixed bug).
                old.dynamics.extend(new.dynamics);
                Ok(())
            }
            _ => Err(self.error(
                format!(
                    "attribute '{}' already defined at {}",
                    shown_name,
                    self.position_text(first_span)
                ),
                span,
            )),
        }
    }

    /// Lowers a collected binding. `inherit_skip` is how many scopes a plain `inherit x`
    /// must look past (1 when the enclosing `let`/`rec` scope is innermost).
    fn lower_pending(
        &mut self,
        value: Pending,
        span: Span,
        inherit_skip: usize,
        name: Option<Symbol>,
    ) -> Result<ExprRef, SyntaxError> {
        match value {
            Pending::Expr(expr) => {
                if let ast::Expr::Lambda(_) = &expr {
                    self.lambda_name = name;
                }
                self.lower(&expr)
            }
            Pending::Inherit(name, span) => {
                let kind = self.resolve(name, inherit_skip, span)?;
                Ok(self.mk(kind, span))
            }
            Pending::InheritFrom(from, name, span) => {
                let subject = self.lower(&from)?;
                Ok(self.mk(
                    ExprKind::Select {
                        subject,
                        path: vec![AttrName::Static(name)],
                        default: None,
                    },
                    span,
                ))
            }
            Pending::Nested(nested) => {
                let recursive = nested.recursive;
                let attrs = self.lower_attrs(nested, recursive)?;
                Ok(self.mk(ExprKind::Attrs(attrs), span))
            }
        }
    }

    fn lower_attrs(
        &mut self,
        mut pending: PendingAttrs,
        recursive: bool,
    ) -> Result<Rc<AttrsExpr>, SyntaxError> {
        pending.statics.sort_by_key(|entry| entry.0);
        if recursive {
            let names = pending
                .statics
                .iter()
                .enumerate()
                .map(|(i, (n, _, _))| (*n, i as u32))
                .collect();
            self.scopes.push(Scope::Frame(names));
        }
        let skip = usize::from(recursive);
        let result = (|| {
            let mut statics = Vec::new();
            for (name, value, span) in pending.statics {
                statics.push(StaticAttr {
                    name,
                    value: self.lower_pending(value, span, skip, Some(name))?,
                    span,
                });
            }
            let mut dynamics = Vec::new();
            for (name, value, span) in pending.dynamics {
                dynamics.push(DynamicAttr {
                    name: self.lower(&name)?,
                    value: self.lower_pending(value, span, skip, None)?,
                    span,
                });
            }
            Ok(Rc::new(AttrsExpr {
                recursive,
                statics,
                dynamics,
            }))
        })();
        if recursive {
            self.scopes.pop();
        }
        result
    }

    fn lower_lambda(
        &mut self,
        lambda: &ast::Lambda,
        span: Span,
    ) -> Result<Rc<Lambda>, SyntaxError> {
        let name = self.lambda_name.take();
        let param = lambda
            .param()
            .ok_or_else(|| self.error("syntax error".into(), span))?;
        let mut names = HashMap::new();
        let (param, formal_defaults) = match &param {
            ast::Param::IdentParam(ident) => {
                let name = ident
                    .ident()
                    .map(|i| Symbol::intern(&i.syntax().text().to_string()))
                    .ok_or_else(|| self.error("syntax error".into(), span))?;
                names.insert(name, 0);
                (Param::Ident(name), Vec::new())
            }
            ast::Param::Pattern(pattern) => {
                let mut formals = Vec::new();
                let mut defaults = Vec::new();
                for (index, entry) in pattern.pat_entries().enumerate() {
                    let fspan = self.span(entry.syntax());
                    let name = entry
                        .ident()
                        .map(|i| Symbol::intern(&i.syntax().text().to_string()))
                        .ok_or_else(|| self.error("syntax error".into(), fspan))?;
                    if names.insert(name, index as u32).is_some() {
                        return Err(self.error(
                            format!("duplicate formal function argument '{name}'"),
                            fspan,
                        ));
                    }
                    formals.push(Formal {
                        name,
                        default: None,
                        span: fspan,
                    });
                    defaults.push(entry.default());
                }
                let bind = pattern
                    .pat_bind()
                    .and_then(|b| b.ident())
                    .map(|i| Symbol::intern(&i.syntax().text().to_string()));
                if let Some(bind) = bind {
                    let slot = formals.len() as u32;
                    if names.insert(bind, slot).is_some() {
                        return Err(self
                            .error(format!("duplicate formal function argument '{bind}'"), span));
                    }
                }
                (
                    Param::Pattern {
                        formals,
                        ellipsis: pattern.ellipsis_token().is_some(),
                        bind,
                    },
                    defaults,
                )
            }
        };
        let frame_size = names.len() as u32;
        self.scopes.push(Scope::Frame(names));
        let result = (|| {
            let mut param = param;
            if let Param::Pattern { formals, .. } = &mut param {
                for (formal, default) in formals.iter_mut().zip(formal_defaults) {
                    if let Some(default) = default {
                        formal.default = Some(self.lower(&default)?);
                    }
                }
            }
            let body = self.lower_child(lambda.body(), span)?;
            Ok(Rc::new(Lambda {
                name,
                param,
                body,
                frame_size,
                span,
            }))
        })();
        self.scopes.pop();
        result
    }
}

/// A piece of an indented string as Nix 2.8's lexer splits it.
enum IndentedPiece {
    /// A run of plain text.
    Text(String),
    /// The result of an escape (`'''`, `''$`, `''\\X`).
    Escape(String),
    Interpolation(ast::Interpol),
}

/// Splits the raw text of an indented string into plain runs and unescaped escapes:
/// `'''` → `''`, `''$` → `$`, `''\\X` → X (`n`, `r`, `t` as control characters).
fn split_indented(raw: &str, out: &mut Vec<IndentedPiece>) {
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
fn indented_parts(s: &ast::Str) -> Vec<InterpolPart<String>> {
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
fn static_string(s: &ast::Str) -> Option<String> {
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

/// Shows an expression the way Nix 2.8 does in "assertion '…' failed" messages (operators
/// parenthesised); constructs without a special form are shown as written.
pub fn show_expr(expr: &ast::Expr) -> String {
    match expr {
        ast::Expr::Paren(p) => p.expr().map(|e| show_expr(&e)).unwrap_or_default(),
        ast::Expr::BinOp(bin) => {
            let lhs = bin.lhs().map(|e| show_expr(&e)).unwrap_or_default();
            let rhs = bin.rhs().map(|e| show_expr(&e)).unwrap_or_default();
            let op = bin
                .syntax()
                .children_with_tokens()
                .filter_map(|c| c.into_token())
                .find(|t| ast::BinOpKind::from_kind(t.kind()).is_some())
                .map(|t| t.text().to_string())
                .unwrap_or_default();
            format!("({lhs} {op} {rhs})")
        }
        ast::Expr::UnaryOp(op) => {
            let inner = op.expr().map(|e| show_expr(&e)).unwrap_or_default();
            match op.operator() {
                Some(ast::UnaryOpKind::Invert) => format!("(! {inner})"),
                _ => format!("(__sub 0 {inner})"),
            }
        }
        ast::Expr::Select(select) => {
            let subject = select.expr().map(|e| show_expr(&e)).unwrap_or_default();
            let path = select
                .attrpath()
                .map(|p| p.syntax().text().to_string())
                .unwrap_or_default();
            match select.default_expr() {
                Some(d) => format!("({subject}).{path} or {}", show_expr(&d)),
                None => format!("({subject}).{path}"),
            }
        }
        ast::Expr::HasAttr(has) => {
            let subject = has.expr().map(|e| show_expr(&e)).unwrap_or_default();
            let path = has
                .attrpath()
                .map(|p| p.syntax().text().to_string())
                .unwrap_or_default();
            format!("(({subject}) ? {path})")
        }
        ast::Expr::List(list) => {
            let mut out = String::from("[ ");
            for item in list.items() {
                out.push('(');
                out.push_str(&show_expr(&item));
                out.push_str(") ");
            }
            out.push(']');
            out
        }
        ast::Expr::AttrSet(set) => {
            let mut out = String::new();
            if set.rec_token().is_some() {
                out.push_str("rec ");
            }
            out.push_str("{ ");
            for entry in set.entries() {
                match entry {
                    ast::Entry::AttrpathValue(b) => {
                        let path = b
                            .attrpath()
                            .map(|p| p.syntax().text().to_string())
                            .unwrap_or_default();
                        let value = b.value().map(|e| show_expr(&e)).unwrap_or_default();
                        out.push_str(&format!("{path} = {value}; "));
                    }
                    ast::Entry::Inherit(i) => {
                        out.push_str(&i.syntax().text().to_string());
                        out.push(' ');
                    }
                }
            }
            out.push('}');
            out
        }
        ast::Expr::Apply(apply) => {
            let f = apply.lambda().map(|e| show_expr(&e)).unwrap_or_default();
            let a = apply.argument().map(|e| show_expr(&e)).unwrap_or_default();
            format!("({f} {a})")
        }
        other => other.syntax().text().to_string(),
    }
}

/// Whether a float literal's value is what the C library's `strtod`, which Nix uses, accepts
/// without a range error: finite, and neither rounded to zero nor to a subnormal number from a
/// non-zero literal (`1.0e400`, `1.0e-400` and `2.0e-310` are "invalid float" in Nix).
fn float_in_range(value: f64, literal: &str) -> bool {
    if !value.is_finite() {
        return false;
    }
    if value == 0.0 {
        let mantissa = literal.split(['e', 'E']).next().unwrap_or(literal);
        return !mantissa.bytes().any(|byte| matches!(byte, b'1'..=b'9'));
    }
    value.abs() >= f64::MIN_POSITIVE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower_str(src: &str) -> Result<ExprRef, SyntaxError> {
        let mut globals = Globals::new();
        globals.add(Symbol::intern("true"));
        let cx = LowerContext {
            file: FileId(0),
            display_name: "(string)",
            base_dir: Path::new("/base/dir"),
            home_dir: Some(Path::new("/home/u")),
            globals: &globals,
            outer_names: &[],
        };
        parse_and_lower(src, &cx)
    }

    #[test]
    fn resolves_locals_globals_and_with() {
        let e = lower_str("let a = 1; in x: a").unwrap();
        let ExprKind::Let { body, .. } = &e.kind else {
            panic!()
        };
        let ExprKind::Lambda(l) = &body.kind else {
            panic!()
        };
        assert!(matches!(
            l.body.kind,
            ExprKind::Local {
                depth: 1,
                slot: 0,
                ..
            }
        ));
        let e = lower_str("with {}; [ true zz ]").unwrap();
        let ExprKind::With { body, .. } = &e.kind else {
            panic!()
        };
        let ExprKind::List(items) = &body.kind else {
            panic!()
        };
        assert!(matches!(items[0].kind, ExprKind::Global { .. }));
        assert!(matches!(items[1].kind, ExprKind::WithVar { .. }));
    }

    #[test]
    fn undefined_variable_is_static_error() {
        let err = lower_str("let abc = 1; in abd").unwrap_err();
        assert_eq!(err.message, "undefined variable 'abd'");
        assert_eq!((err.span.start, err.span.end), (16, 19));
        assert_eq!(err.suggestion.as_deref(), Some("abc"));
    }

    #[test]
    fn duplicate_attributes_are_rejected() {
        let err = lower_str("{ a = 1; a = 2; }").unwrap_err();
        assert_eq!(err.message, "attribute 'a' already defined at (string):1:3");
        assert_eq!(err.span.start, 9);
        let err = lower_str("{ a.b = 1; a = 2; }").unwrap_err();
        assert_eq!(err.message, "attribute 'a' already defined at (string):1:3");
        assert!(lower_str("{ a.b = 1; a.c = 2; }").is_ok());
        assert!(lower_str("{ a = { b = 1; }; a.c = 2; }").is_ok());
        assert!(lower_str("{ a = { b = 1; }; a = { c = 2; }; }").is_ok());
        assert!(lower_str("{ a = 1; a.c = 2; }").is_err());
    }

    #[test]
    fn paths_are_resolved() {
        let e = lower_str("./x/../y").unwrap();
        let ExprKind::Path(PathExpr::Literal(p)) = &e.kind else {
            panic!()
        };
        assert_eq!(&**p, "/base/dir/y");
        let e = lower_str("~/a").unwrap();
        let ExprKind::Path(PathExpr::Literal(p)) = &e.kind else {
            panic!()
        };
        assert_eq!(&**p, "/home/u/a");
        assert!(lower_str("./a/").is_err());
    }

    #[test]
    fn indented_strings_strip_indentation() {
        let e = lower_str("''\n    a\n      b ''$ '''\n  ''").unwrap();
        let ExprKind::Str(s) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(&*s.text, "a\n  b $ ''\n");
    }

    #[test]
    fn syntax_errors_have_spans() {
        let err = lower_str("(x: 1").unwrap_err();
        assert!(err.message.starts_with("syntax error"), "{}", err.message);
        assert_eq!(canonical_path("/a/./b//c/.."), "/a/b");
    }

    #[test]
    fn assertion_text_is_shown_like_nix() {
        let root = rnix::Root::parse("{a=1;}.a == [1 \"x\" null]").tree();
        assert_eq!(
            show_expr(&root.expr().unwrap()),
            "(({ a = 1; }).a == [ (1) (\"x\") (null) ])"
        );
    }
}
