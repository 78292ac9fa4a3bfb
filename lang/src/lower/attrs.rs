//! Attribute sets: nested attribute paths merged into one set (`a.b = 1; a.c = 2;`), `inherit`,
//! dynamic keys, duplicate-attribute errors, and the lowering of `rec` and plain sets and
//! `let` bindings built on them.
use super::*;

impl Lowerer<'_, '_> {
    pub(super) fn lower_attrpath(
        &mut self,
        path: Option<ast::Attrpath>,
        span: Span,
    ) -> Result<Vec<AttrName>, SyntaxError> {
        let path = path.ok_or_else(|| self.error("syntax error".into(), span))?;
        let mut names = Vec::new();
        for attr in path.attrs() {
            names.push(match self.key_name(&attr)? {
                KeyName::Static(sym) => AttrName::fixed(sym),
                KeyName::Dynamic(expr) => AttrName::Dynamic(self.lower(&expr)?),
            });
        }
        Ok(names)
    }

    /// Classifies an attribute name; string literals without interpolation are static
    /// (also inside `${…}`, as in Nix).
    pub(super) fn key_name(&self, attr: &ast::Attr) -> Result<KeyName, SyntaxError> {
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

    pub(super) fn collect_entries(
        &self,
        node: &impl HasEntry,
    ) -> Result<PendingAttrs, SyntaxError> {
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

    pub(super) fn pending_value(&self, value: ast::Expr) -> Result<Pending, SyntaxError> {
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
    pub(super) fn insert_path(
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
    pub(super) fn insert_static(
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
    pub(super) fn lower_pending(
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
                        path: vec![AttrName::fixed(name)],
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

    pub(super) fn lower_attrs(
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
}

/// A binding collected from `let`/attribute-set entries before lowering, so that nested
/// attribute paths can be merged and all names of a recursive scope are known up front.
pub(super) enum Pending {
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
pub(super) struct PendingAttrs {
    pub(super) statics: Vec<(Symbol, Pending, Span)>,
    pub(super) dynamics: Vec<(ast::Expr, Pending, Span)>,
    /// Written as `rec { … }`. Merging a later `rec` set into an earlier one does not make
    /// the earlier one recursive (Nix drops the later `rec`).
    recursive: bool,
}

pub(super) enum KeyName {
    Static(Symbol),
    Dynamic(ast::Expr),
}
