//! String coercion with context (`"${x}"`, `toString`, paths copied to the store), equality
//! and ordering of values as Nix defines them.
use super::*;

impl Evaluator {
    /// Copies a path into the store (once per path) and returns the store path.
    pub fn copy_path_to_store(&self, path: &str, span: Span) -> EvalResult<String> {
        if self.io().file_type(Path::new(path)).is_none() {
            return Err(EvalError::eval(format!(
                "getting status of '{path}': No such file or directory"
            ))
            .at(span));
        }
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "source".into());
        self.store()
            .add_path(
                crate::store_access::PathToAdd {
                    name: &name,
                    source: Path::new(path),
                    method: crate::store_access::IngestionMethod::Recursive,
                    expected_sha256: None,
                },
                None,
            )
            .map(|stored| self.store().store_dir().print(&stored))
            .map_err(|e| EvalError::eval(e.to_string()).at(span))
    }

    /// Evaluates `expr` and coerces the value to a string (string and path interpolation,
    /// dynamic attribute names), errors placed at `expr`.
    pub(crate) fn eval_to_string(
        &self,
        expr: &ExprRef,
        env: &Env,
        mode: CoerceMode,
    ) -> EvalResult<NixString> {
        let v = self.eval(expr, env)?;
        self.coerce_to_string(&v, expr.span, mode)
    }

    /// Nix's `coerceToString`.
    pub fn coerce_to_string(
        &self,
        value: &Value,
        span: Span,
        mode: CoerceMode,
    ) -> EvalResult<NixString> {
        let v = self.force(value, span)?;
        match &v {
            Value::String(s) => Ok(s.clone()),
            Value::Path(p) => {
                if mode.copy_to_store {
                    let store_path = self.copy_path_to_store(p, span)?;
                    let mut context = Context::new();
                    context.insert(ContextElem::Plain(store_path.clone()));
                    Ok(NixString::with_context(store_path, context))
                } else {
                    Ok(NixString::new(p.as_str()))
                }
            }
            Value::Attrs(attrs) => {
                if let Some(f) = attrs.get(sym!("__toString")) {
                    let f = self.force(f, span)?;
                    let result = self.call(&f, v.clone(), span)?;
                    return self.coerce_to_string(&result, span, mode);
                }
                if let Some(out) = attrs.get(sym!("outPath")) {
                    return self.coerce_to_string(out, span, mode);
                }
                Err(EvalError::new(ErrorKind::Type, "cannot coerce a set to a string").at(span))
            }
            Value::Int(i) if mode.more => Ok(NixString::new(i.to_string())),
            Value::Float(f) if mode.more => Ok(NixString::new(format!("{f:.6}"))),
            Value::Bool(b) if mode.more => Ok(NixString::new(if *b { "1" } else { "" })),
            Value::Null if mode.more => Ok(NixString::new("")),
            Value::List(items) if mode.more => {
                let mut text = Vec::new();
                let mut elements = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let s = self.coerce_to_string(item, span, mode)?;
                    text.extend_from_slice(s.as_bytes());
                    elements.extend(s.context().iter().cloned());
                    if i + 1 < items.len() {
                        // Nix skips the separator after an empty list element.
                        let empty_list =
                            matches!(self.force(item, span)?, Value::List(ref l) if l.is_empty());
                        if !empty_list {
                            text.push(b' ');
                        }
                    }
                }
                Ok(NixString::with_context(
                    text,
                    elements.into_iter().collect(),
                ))
            }
            other => Err(EvalError::new(
                ErrorKind::Type,
                format!("cannot coerce {} to a string", other.type_description()),
            )
            .at(span)),
        }
    }

    /// Nix's `==`.
    pub fn equal(&self, a: &Value, b: &Value, span: Span) -> EvalResult<bool> {
        self.check_stack(span)?;
        let a = self.force(a, span)?;
        let b = self.force(b, span)?;
        Ok(match (&a, &b) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => *x as f64 == *y,
            (Value::String(x), Value::String(y)) => x.as_bytes() == y.as_bytes(),
            (Value::Path(x), Value::Path(y)) => x == y,
            (Value::List(x), Value::List(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (p, q) in x.iter().zip(y.iter()) {
                    if !p.same_object(q) && !self.equal(p, q, span)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Value::Attrs(x), Value::Attrs(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if self.is_derivation(x, span)? && self.is_derivation(y, span)? {
                    if let (Some(p), Some(q)) = (x.get(sym!("outPath")), y.get(sym!("outPath"))) {
                        return self.equal(p, q, span);
                    }
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for ((k1, v1), (k2, v2)) in x.iter().zip(y.iter()) {
                    if k1 != k2 {
                        return Ok(false);
                    }
                    if !v1.same_object(v2) && !self.equal(v1, v2, span)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        })
    }

    /// Whether a set is a derivation (`type = "derivation"`).
    pub fn is_derivation(&self, attrs: &Attrs, span: Span) -> EvalResult<bool> {
        match attrs.get(sym!("type")) {
            Some(t) => Ok(
                matches!(self.force(t, span)?, Value::String(s) if s.as_bytes() == b"derivation"),
            ),
            None => Ok(false),
        }
    }

    /// Nix's `<` (numbers, strings, paths, lists lexicographically).
    pub fn less_than(&self, a: &Value, b: &Value, span: Span) -> EvalResult<bool> {
        let a = self.force(a, span)?;
        let b = self.force(b, span)?;
        match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => Ok(x < y),
            (Value::Float(x), Value::Float(y)) => Ok(x < y),
            (Value::Int(x), Value::Float(y)) => Ok((*x as f64) < *y),
            (Value::Float(x), Value::Int(y)) => Ok(*x < *y as f64),
            (Value::String(x), Value::String(y)) => Ok(x.as_bytes() < y.as_bytes()),
            (Value::Path(x), Value::Path(y)) => Ok(x < y),
            (Value::List(x), Value::List(y)) => {
                for (p, q) in x.iter().zip(y.iter()) {
                    if !self.equal(p, q, span)? {
                        return self.less_than(p, q, span);
                    }
                }
                Ok(x.len() < y.len())
            }
            _ => Err(EvalError::eval(format!(
                "cannot compare {} with {}",
                a.type_description(),
                b.type_description()
            ))
            .at(span)),
        }
    }
}

/// Attribute names may not refer to store paths.
pub(super) fn reject_context(s: &NixString, span: Span) -> EvalResult<()> {
    if let Some(elem) = s.context().iter().next() {
        let path = match elem {
            ContextElem::Plain(p) | ContextElem::AllOutputs(p) => p,
            ContextElem::Output { drv, .. } => drv,
        };
        return Err(EvalError::eval(format!(
            "the string '{}' is not allowed to refer to a store path (such as '{}')",
            s, path
        ))
        .at(span));
    }
    Ok(())
}
