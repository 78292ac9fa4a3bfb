//! Forcing: thunks to weak head normal form (blackholing a thunk while it is forced, so
//! infinite recursion is an error with the position it was forced from), deep forcing, the
//! call-depth check, and the typed `force_*` helpers the builtins use.
use super::*;
use std::os::unix::ffi::OsStrExt;

impl Evaluator {
    /// Fails with Nix's stack overflow error when the evaluation stack is nearly used up.
    pub(crate) fn check_stack(&self, span: Span) -> EvalResult<()> {
        if approximate_stack_pointer() < self.stack_floor {
            return Err(EvalError::new(
                ErrorKind::StackOverflow,
                "stack overflow (possible infinite recursion)",
            )
            .at(span));
        }
        Ok(())
    }

    /// Forces a value to weak head normal form.
    #[inline]
    pub fn force(&self, value: &Value, span: Span) -> EvalResult<Value> {
        match value {
            Value::Thunk(thunk) => self.force_thunk(thunk, span),
            other => Ok(other.clone()),
        }
    }

    /// Forces a thunk: an evaluated one (the common case) is read in this small inlined
    /// function, the others are evaluated out of line.
    #[inline]
    pub fn force_thunk(&self, thunk: &Thunk, span: Span) -> EvalResult<Value> {
        // A constant placeholder (written with immediates); the states that stay blackholed
        // while they are evaluated get their real position later.
        match thunk.replace_state(ThunkState::Blackhole(Span::default())) {
            ThunkState::Done(v) => {
                let value = v.clone();
                thunk.set_state(ThunkState::Done(v));
                Ok(value)
            }
            state => self.force_taken_thunk(thunk, state, span),
        }
    }

    /// `force_thunk` of a thunk that was not evaluated: `state` was taken out of it and a
    /// blackhole left in its place. Out of line, but it is on the stack once per level of
    /// lazy recursion, so the rarer states are in `force_other_thunk`.
    #[inline(never)]
    fn force_taken_thunk(&self, thunk: &Thunk, state: ThunkState, span: Span) -> EvalResult<Value> {
        let (expr, env) = match state {
            ThunkState::Suspended(expr, env) => (expr, env),
            other => return self.force_other_thunk(thunk, other, span),
        };
        thunk.set_state(ThunkState::Blackhole(expr.span));
        if let Err(e) = self.check_stack(span) {
            thunk.set_state(ThunkState::Blackhole(span));
            return Err(e);
        }
        match self.eval(&expr, &env) {
            Ok(Value::Thunk(inner)) => self.finish_thunk_with_thunk(thunk, &inner, span),
            Ok(v) => {
                thunk.set_state(ThunkState::Done(v.clone()));
                Ok(v)
            }
            Err(e) => {
                // Forcing it again evaluates it again (and fails the same way).
                thunk.set_state(ThunkState::Suspended(expr, env));
                Err(e)
            }
        }
    }

    /// A thunk whose evaluation gave another thunk (only transiently possible): force that.
    #[inline(never)]
    pub(super) fn finish_thunk_with_thunk(
        &self,
        thunk: &Thunk,
        inner: &Thunk,
        span: Span,
    ) -> EvalResult<Value> {
        let v = self.force_thunk(inner, span)?;
        thunk.set_state(ThunkState::Done(v.clone()));
        Ok(v)
    }

    /// Forces a thunk in any state but `Done` and `Suspended` (`thunk` holds a blackhole).
    #[inline(never)]
    pub(super) fn force_other_thunk(
        &self,
        thunk: &Thunk,
        state: ThunkState,
        span: Span,
    ) -> EvalResult<Value> {
        if let ThunkState::Blackhole(at) = state {
            thunk.set_state(ThunkState::Blackhole(at));
            return Err(EvalError::new(
                ErrorKind::InfiniteRecursion,
                "infinite recursion encountered",
            )
            .at(at));
        }
        thunk.set_state(ThunkState::Blackhole(span));
        self.check_stack(span).inspect_err(|_| {
            thunk.set_state(ThunkState::Blackhole(span));
        })?;
        let (result, restore) = match state {
            ThunkState::Apply(call, argument) => {
                let r = self.call(&call.function, argument.clone(), call.span);
                let restore = r.is_err().then(|| ThunkState::Apply(call, argument));
                (r, restore)
            }
            ThunkState::Apply2(call, arguments) => {
                let [first, second] = &*arguments;
                let r = self.call_n(&call.function, &[first.clone(), second.clone()], call.span);
                let restore = r.is_err().then(|| ThunkState::Apply2(call, arguments));
                (r, restore)
            }
            ThunkState::Native(f) => (f(self), None),
            ThunkState::Done(_) | ThunkState::Suspended(..) | ThunkState::Blackhole(_) => {
                unreachable!("handled by force_thunk")
            }
        };
        match result {
            Ok(Value::Thunk(inner)) => self.finish_thunk_with_thunk(thunk, &inner, span),
            Ok(v) => {
                thunk.set_state(ThunkState::Done(v.clone()));
                Ok(v)
            }
            Err(e) => {
                let restored = restore.unwrap_or_else(|| {
                    let message = e.message().to_string();
                    let kind = e.kind();
                    let at = e.span();
                    ThunkState::Native(Box::new(move |_| {
                        let err = EvalError::new(kind, message);
                        Err(match at {
                            Some(s) => err.at(s),
                            None => err,
                        })
                    }))
                });
                thunk.set_state(restored);
                Err(e)
            }
        }
    }

    /// Forces a value and everything inside it (`deepSeq`, `--strict`).
    pub fn deep_force(&self, value: &Value, span: Span) -> EvalResult<Value> {
        let v = self.force(value, span)?;
        let mut seen = SeenSet::default();
        self.deep_force_inner(&v, span, &mut seen)?;
        Ok(v)
    }

    pub(super) fn deep_force_inner(
        &self,
        value: &Value,
        span: Span,
        seen: &mut SeenSet,
    ) -> EvalResult<()> {
        self.check_stack(span)?;
        match value {
            Value::Attrs(attrs) => {
                if !seen.insert(Rc::as_ptr(attrs) as usize) {
                    return Ok(());
                }
                for (name, v) in attrs.iter() {
                    let forced = self.force(v, span).map_err(|e| {
                        e.add_trace(format!("while evaluating the attribute '{name}'"), None)
                    })?;
                    self.deep_force_inner(&forced, span, seen)?;
                }
            }
            Value::List(items) => {
                if !seen.insert(Rc::as_ptr(items) as usize) {
                    return Ok(());
                }
                for v in items.iter() {
                    let forced = self.force(v, span)?;
                    self.deep_force_inner(&forced, span, seen)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn force_int(&self, value: &Value, span: Span) -> EvalResult<i64> {
        match self.force(value, span)? {
            Value::Int(i) => Ok(i),
            other => Err(EvalError::type_mismatch("an integer", &other).at(span)),
        }
    }

    pub fn force_bool(&self, value: &Value, span: Span) -> EvalResult<bool> {
        match self.force(value, span)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::type_mismatch("a Boolean", &other).at(span)),
        }
    }

    /// A float, or an integer converted to one (as Nix's `forceFloat`).
    pub fn force_float(&self, value: &Value, span: Span) -> EvalResult<f64> {
        match self.force(value, span)? {
            Value::Float(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            other => Err(EvalError::type_mismatch("a float", &other).at(span)),
        }
    }

    /// A string value (no coercion).
    pub fn force_string(&self, value: &Value, span: Span) -> EvalResult<NixString> {
        match self.force(value, span)? {
            Value::String(s) => Ok(s),
            other => Err(EvalError::type_mismatch("a string", &other).at(span)),
        }
    }

    pub fn force_attrs(&self, value: &Value, span: Span) -> EvalResult<Rc<Attrs>> {
        match self.force(value, span)? {
            Value::Attrs(a) => Ok(a),
            other => Err(EvalError::type_mismatch("a set", &other).at(span)),
        }
    }

    pub fn force_list(&self, value: &Value, span: Span) -> EvalResult<Rc<Vec<Value>>> {
        match self.force(value, span)? {
            Value::List(l) => Ok(l),
            other => Err(EvalError::type_mismatch("a list", &other).at(span)),
        }
    }

    /// A callable value (lambda, primop, or a set with `__functor`).
    pub fn force_function(&self, value: &Value, span: Span) -> EvalResult<Value> {
        let v = self.force(value, span)?;
        match &v {
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(v),
            Value::Attrs(a) if a.contains(sym!("__functor")) => Ok(v),
            other => Err(EvalError::type_mismatch("a function", other).at(span)),
        }
    }

    /// A path, or a string coerced to an absolute path (Nix's `coerceToPath`).
    pub fn coerce_to_path(&self, value: &Value, span: Span) -> EvalResult<PathBuf> {
        let s = self.coerce_to_string(
            value,
            span,
            CoerceMode {
                more: false,
                copy_to_store: false,
            },
        )?;
        if !s.as_bytes().starts_with(b"/") {
            return Err(EvalError::eval(format!(
                "string '{s}' doesn't represent an absolute path"
            ))
            .at(span));
        }
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(s.as_bytes())))
    }
}
