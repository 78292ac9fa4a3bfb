//! Parsing (rnix) and lowering of the rnix syntax tree to the IR in `ir.rs`. Owns scope
//! resolution (locals to (depth, slot), globals to a global slot, `with` lookups dynamic),
//! expressions and lambdas, and the static errors Nix reports before evaluating: undefined
//! variables outside any `with` here; syntax errors and invalid UTF-8 in `syntax_errors`,
//! merging of nested attribute paths and duplicate attributes in `attrs`, strings, indented
//! strings and paths in `strings`, and the printing of expressions in `show`.
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

mod attrs;
mod show;
mod strings;
mod syntax_errors;

use show::float_in_range;
pub use show::show_expr;
pub use strings::canonical_path;
use strings::static_string;
pub use syntax_errors::check_utf8;
use syntax_errors::{bison_token, split_path_error, syntax_error};

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
    if let Some(offset) = crate::nesting::too_deep_at(source) {
        return Err(SyntaxError {
            message: "expression nested too deeply".into(),
            span: Span::new(cx.file, offset as u32, offset as u32 + 1),
            suggestion: None,
        });
    }
    let parse = rnix::Root::parse(source);
    if let Some(error) = parse.errors().first() {
        return Err(syntax_error(error, source, cx.file));
    }
    let root = parse.tree();
    if let Some(error) = split_path_error(root.syntax(), cx.file) {
        return Err(error);
    }
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

/// Stack left below which lowering continues on a new segment (a debug build's `lower` frame
/// alone is about 15 KiB).
const LOWERING_RED_ZONE: usize = 256 * 1024;

/// The size of each new stack segment.
const LOWERING_STACK_SEGMENT: usize = 8 * 1024 * 1024;

/// A lexical scope during lowering: a frame of named slots, or a `with` frame.
enum Scope {
    Frame(HashMap<Symbol, u32>),
    With,
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
                hint: Default::default(),
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

    /// Lowers `expr`. Chains of binary operators nest as deep as they are long (Nix takes
    /// 100,000 `+` in a row), so the recursion runs on a stack that grows when it runs low.
    fn lower(&mut self, expr: &ast::Expr) -> Result<ExprRef, SyntaxError> {
        stacker::maybe_grow(LOWERING_RED_ZONE, LOWERING_STACK_SEGMENT, || {
            self.lower_here(expr)
        })
    }

    fn lower_here(&mut self, expr: &ast::Expr) -> Result<ExprRef, SyntaxError> {
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
            ast::Expr::PathAbs(p) => self.lower_path(self.path_parts(p.syntax())?, span)?,
            ast::Expr::PathRel(p) => self.lower_path(self.path_parts(p.syntax())?, span)?,
            ast::Expr::PathHome(p) => self.lower_path(self.path_parts(p.syntax())?, span)?,
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
                if let (ExprKind::Global { name, .. }, Some(AttrName::Static(first, _))) =
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
                    path: vec![AttrName::fixed(body_sym)],
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
                        hint: LookupHint::default(),
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
