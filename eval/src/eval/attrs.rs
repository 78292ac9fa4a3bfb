//! Attribute sets in the evaluator: building a set literal (`rec`, inherited and dynamic
//! attributes, the legacy `__overrides`), selecting from one (`x.a.b`, `or`), `?`, the
//! lookup of a variable through `with`, and the errors of a missing attribute or of selecting
//! from something that is not a set.
use super::*;

impl Evaluator {
    /// `subject ? a.b.c`.
    #[inline(never)]
    pub(super) fn eval_has_attr(
        &self,
        subject: &ExprRef,
        path: &[AttrName],
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        let mut v = self.eval_operand(subject, env)?;
        for (step, attr_name) in path.iter().enumerate() {
            let Ok(name) = self.lookup_name(attr_name, env)? else {
                return Ok(Value::Bool(false));
            };
            // As Nix: every set along the path is forced, the value found last is not.
            if step > 0 {
                v = self.force(&v, span)?;
            }
            match v {
                Value::Attrs(attrs) => match get_at(&attrs, name, attr_name) {
                    Some(next) => v = next.clone(),
                    None => return Ok(Value::Bool(false)),
                },
                _ => return Ok(Value::Bool(false)),
            }
        }
        Ok(Value::Bool(true))
    }

    #[inline(never)]
    pub(super) fn lookup_with(
        &self,
        name: Symbol,
        with_depths: &[u32],
        hint: &ir::LookupHint,
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        for depth in with_depths {
            let ns = env.get(*depth, 0);
            let attrs = self.force_attrs(&ns, span)?;
            if let Some(v) = attrs.get_hinted(name, hint) {
                return Ok(v.clone());
            }
        }
        Err(EvalError::eval(format!("undefined variable '{name}'")).at(span))
    }

    /// An attribute name for a lookup (`.`/`?`): `Err(text)` when the name was never interned,
    /// so no set can have it (and interning it would only grow the symbol table).
    #[inline]
    pub(super) fn lookup_name(
        &self,
        name: &AttrName,
        env: &Env,
    ) -> EvalResult<Result<Symbol, NixString>> {
        match name {
            AttrName::Static(s, _) => Ok(Ok(*s)),
            AttrName::Dynamic(expr) => self.dynamic_lookup_name(expr, env),
        }
    }

    /// `lookup_name` of a name computed by an expression.
    #[inline(never)]
    pub(super) fn dynamic_lookup_name(
        &self,
        expr: &ExprRef,
        env: &Env,
    ) -> EvalResult<Result<Symbol, NixString>> {
        let s = self.eval_to_string(
            expr,
            env,
            CoerceMode {
                more: false,
                copy_to_store: true,
            },
        )?;
        reject_context(&s, expr.span)?;
        Ok(Symbol::lookup_bytes(s.as_bytes()).ok_or(s))
    }

    #[inline(never)]
    pub(super) fn eval_select(
        &self,
        subject: &ExprRef,
        path: &[AttrName],
        default: Option<&ExprRef>,
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        let mut v = self.eval_operand(subject, env)?;
        for step in path {
            let name = self.lookup_name(step, env)?;
            // `v` holds the set while its attribute is forced.
            let next = match &v {
                Value::Attrs(attrs) => {
                    match name
                        .as_ref()
                        .ok()
                        .and_then(|found| get_at(attrs, *found, step))
                    {
                        Some(Value::Thunk(thunk)) => self
                            .force_thunk(thunk, span)
                            .map_err(|e| attribute_frame(e, &name, span))?,
                        Some(value) => value.clone(),
                        None => {
                            if let Some(d) = default {
                                return self.eval(d, env);
                            }
                            return Err(missing_attribute(&name, attrs, span));
                        }
                    }
                }
                other => {
                    if let Some(d) = default {
                        return self.eval(d, env);
                    }
                    return Err(not_a_set(other, span));
                }
            };
            v = next;
        }
        Ok(v)
    }

    #[inline(never)]
    pub(super) fn eval_attrs(&self, attrs: &Rc<ir::AttrsExpr>, env: &Env) -> EvalResult<Value> {
        let (entries, value_env) = if attrs.recursive {
            let frame = Env::new(vec![Value::Null; attrs.statics.len()], Some(env.clone()));
            let overrides_name = OVERRIDES.with(|name| *name);
            let overrides_slot = attrs
                .statics
                .binary_search_by(|a| a.name.cmp(&overrides_name))
                .ok();
            if overrides_slot.is_some() {
                // Overrides replace slots after the fact, so no slot may alias another.
                for (i, a) in attrs.statics.iter().enumerate() {
                    let thunk = Thunk::suspended(a.value.clone(), frame.clone());
                    frame.set(i as u32, Value::Thunk(thunk));
                }
            } else {
                self.fill_frame(
                    &frame,
                    attrs
                        .statics
                        .iter()
                        .enumerate()
                        .map(|(i, a)| (i as u32, &a.value)),
                );
            }
            let overrides = match overrides_slot {
                Some(slot) => self.rec_overrides(attrs, slot, &frame)?,
                None => Vec::new(),
            };
            let mut entries = Vec::with_capacity(attrs.statics.len() + attrs.dynamics.len());
            for (slot, attr) in attrs.statics.iter().enumerate() {
                entries.push((attr.name, frame.get(0, slot as u32)));
            }
            if !overrides.is_empty() {
                entries.extend(overrides);
                entries.sort_by_key(|entry| entry.0);
            }
            (entries, frame)
        } else {
            let mut entries = Vec::with_capacity(attrs.statics.len() + attrs.dynamics.len());
            for attr in &attrs.statics {
                entries.push((attr.name, self.delay(&attr.value, env)));
            }
            (entries, env.clone())
        };
        let mut result = Attrs::from_sorted(entries);
        result.set_origin(AttrsOrigin::Literal(Rc::clone(attrs)));
        for dynamic in &attrs.dynamics {
            let name_value = self.eval(&dynamic.name, &value_env)?;
            if matches!(name_value, Value::Null) {
                continue;
            }
            let name = self.coerce_to_string(
                &name_value,
                dynamic.name.span,
                CoerceMode {
                    more: false,
                    copy_to_store: true,
                },
            )?;
            reject_context(&name, dynamic.name.span)?;
            let name = Symbol::intern_bytes(name.as_bytes());
            if result.contains(name) {
                let position = self.sources.borrow().describe(dynamic.span);
                return Err(EvalError::eval(format!(
                    "dynamic attribute '{name}' already defined at {position}"
                ))
                .at(dynamic.span));
            }
            result.insert(name, self.delay(&dynamic.value, &value_env));
        }
        Ok(Value::attrs(result))
    }

    /// `rec { __overrides = { … }; … }`, a legacy feature Nix still honours: each attribute
    /// of `__overrides` replaces the recursive set's attribute of that name (in the set and
    /// for the other attributes that refer to it) or is added to the set. Returns the added
    /// ones; replacements are written into `frame`. `slot` is `__overrides`' slot.
    #[inline(never)]
    pub(super) fn rec_overrides(
        &self,
        attrs: &ir::AttrsExpr,
        slot: usize,
        frame: &Env,
    ) -> EvalResult<Vec<(Symbol, Value)>> {
        let span = attrs.statics[slot].value.span;
        let overrides = self.force_attrs(&frame.get(0, slot as u32), span)?;
        let mut added = Vec::new();
        for (name, value) in overrides.iter() {
            match attrs.statics.binary_search_by(|a| a.name.cmp(&name)) {
                Ok(target) => frame.set(target as u32, value.clone()),
                Err(_) => added.push((name, value.clone())),
            }
        }
        Ok(added)
    }
}

/// The value of `name` in `attrs`, found by the lookup hint of `step` (the place `name` is
/// written) when `name` is written there and not computed.
#[inline]
pub(super) fn get_at<'a>(attrs: &'a Attrs, name: Symbol, step: &AttrName) -> Option<&'a Value> {
    match step {
        AttrName::Static(_, hint) => attrs.get_hinted(name, hint),
        AttrName::Dynamic(_) => attrs.get(name),
    }
}

/// "while evaluating the attribute 'a'", added to an error from forcing `a` in `x.a`.
#[cold]
#[inline(never)]
pub(super) fn attribute_frame(
    e: EvalError,
    name: &Result<Symbol, NixString>,
    span: Span,
) -> EvalError {
    let name = name.as_ref().map_or("", |n| n.as_str());
    e.add_trace(
        format!("while evaluating the attribute '{name}'"),
        Some(span),
    )
}

/// `x.a` where `x` has no `a`: the error, with the closest name `x` has as a suggestion.
#[cold]
#[inline(never)]
pub(super) fn missing_attribute(
    name: &Result<Symbol, NixString>,
    attrs: &Attrs,
    span: Span,
) -> EvalError {
    let name = match name {
        Ok(symbol) => symbol.as_str().to_string(),
        Err(text) => text.to_str_lossy().into_owned(),
    };
    let suggestion = kiln_lang::suggest::closest(&name, attrs.names().map(|s| s.as_str()));
    EvalError::eval(format!("attribute '{name}' missing"))
        .at(span)
        .with_suggestion(suggestion)
}

/// Selecting from something that is not a set.
#[cold]
#[inline(never)]
pub(super) fn not_a_set(value: &Value, span: Span) -> EvalError {
    EvalError::type_mismatch("a set", value).at(span)
}
