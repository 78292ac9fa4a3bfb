//! Function calls: lambdas with their formal-argument patterns, primops and their partial
//! applications, `__functor` sets, the call trace frames and the call-depth limit.
use super::*;

impl Evaluator {
    /// Applies a function value to one argument and returns the result in WHNF.
    pub fn call(&self, function: &Value, argument: Value, span: Span) -> EvalResult<Value> {
        match function {
            Value::Lambda(closure) => self.call_lambda(closure, argument, span),
            other => self.call_non_lambda(other, argument, span),
        }
    }

    /// Calls of builtins, partial applications and functors (out of line: `call` is on the
    /// stack once per level of recursion through lambdas).
    #[inline(never)]
    pub(super) fn call_non_lambda(
        &self,
        function: &Value,
        argument: Value,
        span: Span,
    ) -> EvalResult<Value> {
        match function {
            Value::Lambda(closure) => self.call_lambda(closure, argument, span),
            Value::PrimOp(builtin) => {
                if builtin.arity <= 1 {
                    self.call_builtin(builtin, &[argument], span)
                } else {
                    Ok(Value::PrimOpApp(Rc::new(PrimOpApp {
                        builtin,
                        args: vec![argument],
                    })))
                }
            }
            Value::PrimOpApp(app) if app.args.len() + 1 == app.builtin.arity => {
                // Saturating call: pass the arguments without building a vector.
                match app.args.as_slice() {
                    [a] => self.call_builtin(app.builtin, &[a.clone(), argument], span),
                    [a, b] => {
                        self.call_builtin(app.builtin, &[a.clone(), b.clone(), argument], span)
                    }
                    _ => {
                        let mut args = app.args.clone();
                        args.push(argument);
                        self.call_builtin(app.builtin, &args, span)
                    }
                }
            }
            Value::PrimOpApp(app) => {
                let mut args = Vec::with_capacity(app.args.len() + 1);
                args.extend(app.args.iter().cloned());
                args.push(argument);
                if args.len() >= app.builtin.arity {
                    self.call_builtin(app.builtin, &args, span)
                } else {
                    Ok(Value::PrimOpApp(Rc::new(PrimOpApp {
                        builtin: app.builtin,
                        args,
                    })))
                }
            }
            Value::Attrs(attrs) => match attrs.get(sym!("__functor")) {
                Some(functor) => {
                    let functor = self.force(functor, span)?;
                    let partial = self.call(&functor, function.clone(), span)?;
                    self.call(&partial, argument, span)
                }
                None => Err(not_callable(function, span)),
            },
            Value::Thunk(t) => {
                let f = self.force_thunk(t, span)?;
                self.call(&f, argument, span)
            }
            other => Err(not_callable(other, span)),
        }
    }

    /// Calls a function with several arguments in turn.
    pub fn call_n(&self, function: &Value, args: &[Value], span: Span) -> EvalResult<Value> {
        // `x: y: body` applied to two arguments: no intermediate closure value is built.
        if let (Value::Lambda(closure), [first, second]) = (function, args) {
            if let (Param::Ident(_), ExprKind::Lambda(inner)) =
                (&closure.lambda.param, &closure.lambda.body.kind)
            {
                if let Some(value) = speculate_binary_call(inner, first, second, &closure.env) {
                    return Ok(value);
                }
                closure.unforced.set(false);
                let inner_closure = Closure {
                    lambda: inner.clone(),
                    env: Env::single(first.clone(), Some(closure.env.clone())),
                    unforced: Cell::new(false),
                };
                return self.call_lambda(&inner_closure, second.clone(), span);
            }
        }
        let mut f = function.clone();
        for arg in args {
            f = self.call(&f, arg.clone(), span)?;
        }
        Ok(f)
    }

    pub(super) fn call_builtin(
        &self,
        builtin: &'static Builtin,
        args: &[Value],
        span: Span,
    ) -> EvalResult<Value> {
        (builtin.func)(self, args, span)
    }

    /// Records in an error's trace that it happened inside a call of `closure` made at `span`.
    #[cold]
    pub(super) fn add_call_frame(&self, e: EvalError, closure: &Closure, span: Span) -> EvalError {
        // An error about the call itself (a missing argument) already points at the call;
        // call-depth errors keep their frames, which show the recursion.
        if e.span() == Some(span) && e.trace().is_empty() && e.kind() != ErrorKind::StackOverflow {
            return e;
        }
        let message = match closure.lambda.name {
            Some(name) => format!("while calling '{name}'"),
            None => {
                let at = self.sources.borrow().describe(closure.lambda.span);
                format!("while calling an anonymous function (defined at {at})")
            }
        };
        e.add_trace(message, Some(span))
    }

    pub(super) fn enter_call(&self, span: Span) -> EvalResult<()> {
        let depth = self.call_depth.get() + 1;
        if depth > self.options.max_call_depth {
            return Err(EvalError::new(
                ErrorKind::StackOverflow,
                "stack overflow (possible infinite recursion)",
            )
            .at(span));
        }
        self.check_stack(span)?;
        if let Some(interrupt) = &self.options.interrupt {
            if let Some(reason) = interrupt() {
                return Err(EvalError::eval(reason).at(span));
            }
        }
        self.call_depth.set(depth);
        Ok(())
    }

    pub(super) fn call_lambda(
        &self,
        closure: &Closure,
        argument: Value,
        span: Span,
    ) -> EvalResult<Value> {
        self.enter_call(span)?;
        closure.unforced.set(false);
        let result = self.call_lambda_inner(closure, argument, span);
        self.call_depth.set(self.call_depth.get() - 1);
        result.map_err(|e| self.add_call_frame(e, closure, span))
    }

    pub(super) fn function_description(&self, lambda: &ir::Lambda) -> String {
        let sources = self.sources.borrow();
        let pos = sources.line_col(lambda.span.file, lambda.span.start);
        let name = sources
            .file(lambda.span.file)
            .map(|f| {
                if f.path.is_some() {
                    f.name.clone()
                } else {
                    "(string)".into()
                }
            })
            .unwrap_or_default();
        let what = match lambda.name {
            Some(n) => format!("'{n}'"),
            None => "anonymous function".to_string(),
        };
        match pos {
            Some(p) => format!("{} at {}:{}:{}", what, name, p.line, p.column),
            None => what,
        }
    }

    pub(super) fn call_lambda_inner(
        &self,
        closure: &Closure,
        argument: Value,
        span: Span,
    ) -> EvalResult<Value> {
        let lambda = &closure.lambda;
        let frame = match &lambda.param {
            Param::Ident(_) => Env::single(argument, Some(closure.env.clone())),
            Param::Pattern {
                formals,
                ellipsis,
                bind,
            } => self.pattern_frame(closure, formals, *ellipsis, bind.is_some(), argument, span)?,
        };
        let result = self.eval(&lambda.body, &frame);
        frame.release();
        result
    }

    /// The frame of a call of a `{ a, b ? d, ... }@args:` function: the formals bound from
    /// the argument set (defaults in the new frame), checked for missing and unexpected
    /// names. Out of line: `call_lambda_inner` is on the stack once per call level.
    #[inline(never)]
    pub(super) fn pattern_frame(
        &self,
        closure: &Closure,
        formals: &[ir::Formal],
        ellipsis: bool,
        bind: bool,
        argument: Value,
        span: Span,
    ) -> EvalResult<Env> {
        let lambda = &closure.lambda;
        let attrs = self.force_attrs(&argument, span)?;
        let frame = Env::new(
            vec![Value::Null; lambda.frame_size as usize],
            Some(closure.env.clone()),
        );
        let mut used = 0usize;
        for (slot, formal) in formals.iter().enumerate() {
            let v = match attrs.get_hinted(formal.name, &formal.hint) {
                Some(v) => {
                    used += 1;
                    v.clone()
                }
                None => match &formal.default {
                    // Left unbound until read, so an unused default does not keep the frame
                    // alive (see `Slots`).
                    Some(default) if (slot as u32) < LAZY_SLOTS => {
                        let (value, unbound) = self.delay_unbound(default, &frame);
                        frame.set_raw(slot as u32, value, unbound);
                        continue;
                    }
                    Some(default) => match default.kind {
                        // Another formal of this frame may not be filled in yet.
                        ExprKind::Local { depth: 0, .. } => {
                            Value::Thunk(Thunk::suspended(default.clone(), frame.clone()))
                        }
                        _ => self.delay(default, &frame),
                    },
                    None => {
                        // A misspelt argument: an unexpected name close to the missing one.
                        let misspelt = attrs
                            .names()
                            .filter(|name| !formals.iter().any(|f| f.name == *name))
                            .find(|name| {
                                kiln_lang::suggest::closest(
                                    name.as_str(),
                                    std::iter::once(formal.name.as_str()),
                                )
                                .is_some()
                            });
                        return Err(EvalError::new(
                            ErrorKind::Type,
                            format!(
                                "{} called without required argument '{}'",
                                self.function_description(lambda),
                                formal.name
                            ),
                        )
                        .at(span)
                        .with_help(misspelt.map(|name| {
                            format!(
                                "it was given '{}': did you mean '{}'?",
                                name.as_str(),
                                formal.name
                            )
                        })));
                    }
                },
            };
            frame.set(slot as u32, v);
        }
        if !ellipsis && used < attrs.len() {
            for name in attrs.names() {
                if !formals.iter().any(|f| f.name == name) {
                    let suggestion = kiln_lang::suggest::closest(
                        name.as_str(),
                        formals.iter().map(|f| f.name.as_str()),
                    );
                    return Err(EvalError::new(
                        ErrorKind::Type,
                        format!(
                            "{} called with unexpected argument '{}'",
                            self.function_description(lambda),
                            name
                        ),
                    )
                    .at(span)
                    .with_suggestion(suggestion));
                }
            }
        }
        if bind {
            frame.set(formals.len() as u32, argument);
        }
        Ok(frame)
    }
}

pub(super) fn not_callable(v: &Value, span: Span) -> EvalError {
    EvalError::new(
        ErrorKind::Type,
        format!(
            "attempt to call something which is not a function but {}",
            v.type_description()
        ),
    )
    .at(span)
}
