//! The evaluator core: the `Evaluator` state, the evaluation stack, and evaluation of IR nodes
//! to weak head normal form (variables, `let`, `with`, strings and paths). The rest of the
//! evaluator lives in the child modules, one idea each: `attrs` (set literals, selection,
//! `?`, lookups through `with`), `force` (thunks, blackholing, deep forcing), `calls`
//! (lambdas, primops, `__functor`), `operators`,
//! `coercion` (string coercion with context, equality, ordering), `import` (files, `import`,
//! the search path) and `speculation` (the integer shortcut below).
//!
//! Laziness: arguments, list elements, bindings and attribute values become thunks unless
//! they are literals, variables, lambdas or selections `x.a.b` whose every step is already
//! evaluated (that value is shared; nothing that could fail is done early). Two deliberate
//! shortcuts: such selections, and an integer operation on already-evaluated variables that
//! cannot fail (`n - 1`), computed at once instead of suspended; the result is the same, but
//! non-strict printing shows such values where Nix would show `<CODE>`. The same holds for
//! `map`/`genList` elements and `sort`/`foldl'` steps whose function is such an operation on
//! its parameters (`apply_lazily`, `call_n`).
use crate::builtins::{self, Builtin};
use crate::error::{ErrorKind, EvalError, EvalResult};
use crate::io::{EvalIo, FileType};
use crate::value::*;
use crate::EvalOptions;
use kiln_lang::ir::{self, AttrName, BinaryOp, ExprKind, ExprRef, Param, PathExpr, StrPart};
use kiln_lang::{Globals, LowerContext, SourceMap, Span, Symbol};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

mod attrs;
mod calls;
mod coercion;
mod force;
mod import;
mod operators;
mod speculation;

use coercion::reject_context;
pub use speculation::apply_lazily;
use speculation::speculate_binary_call;

/// How far `coerce_to_string` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoerceMode {
    /// Also accept integers, floats, Booleans, null and lists (`toString`, derivation env).
    pub more: bool,
    /// Copy paths to the store and return the store path (interpolation); otherwise return the
    /// path as is.
    pub copy_to_store: bool,
}

impl CoerceMode {
    /// `"${x}"`: strings, paths (copied), sets with `__toString`/`outPath`.
    pub const INTERPOLATION: CoerceMode = CoerceMode {
        more: false,
        copy_to_store: true,
    };
    /// `builtins.toString`.
    pub const TO_STRING: CoerceMode = CoerceMode {
        more: true,
        copy_to_store: false,
    };
}

/// Addresses of sets and lists already visited by a deep walk.
pub(crate) type SeenSet = std::collections::HashSet<usize, kiln_lang::symbol::BuildFxHasher>;

thread_local! {
    /// Lowest stack address evaluation may reach on this thread (0 = not yet known).
    static STACK_FLOOR: Cell<usize> = const { Cell::new(0) };
}

/// Stack reserved for the evaluation thread by `with_eval_stack`.
pub const EVAL_STACK_SIZE: usize = 1 << 30;

/// The stack pointer as the machine has it (not the address of a local, which a sanitizer's
/// fake stack can move off the real stack).
fn approximate_stack_pointer() -> usize {
    psm::stack_pointer() as usize
}

/// Runs `f` on a new thread with a 1 GiB stack (deep but finite Nix recursion needs it) and
/// returns its result. Panics in `f` are resumed on the caller's thread.
pub fn with_eval_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::Builder::new()
        .name("kiln-eval".into())
        .stack_size(EVAL_STACK_SIZE)
        .spawn(move || {
            // Leave 64 MiB of head room below the floor for builtins and the error path.
            let floor = approximate_stack_pointer().saturating_sub(EVAL_STACK_SIZE - (64 << 20));
            STACK_FLOOR.with(|f| f.set(floor));
            f()
        });
    match handle {
        Ok(handle) => match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(e) => panic!("cannot spawn the evaluation thread: {e}"),
    }
}

/// As `with_eval_stack`, for a process that ends as soon as `f` returns: the thread is left
/// parked instead of ending, so the allocator does not sweep the thread's heap page by page as
/// the thread ends (a tenth of the time of a large evaluation); the process's exit discards
/// it at once. Panics in `f` are resumed on the caller's thread.
pub fn with_eval_stack_until_exit<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("kiln-eval".into())
        .stack_size(EVAL_STACK_SIZE)
        .spawn(move || {
            let floor = approximate_stack_pointer().saturating_sub(EVAL_STACK_SIZE - (64 << 20));
            STACK_FLOOR.with(|f| f.set(floor));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            if sender.send(outcome).is_ok() {
                loop {
                    std::thread::park();
                }
            }
        });
    if let Err(e) = spawned {
        panic!("cannot spawn the evaluation thread: {e}");
    }
    match receiver.recv() {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the evaluation thread ended without a result"),
    }
}

/// The evaluator: owns sources, the global frame, the import cache and the options.
pub struct Evaluator {
    pub(crate) options: EvalOptions,
    pub(crate) sources: RefCell<SourceMap>,
    pub(crate) globals: Globals,
    pub(crate) global_values: Vec<Value>,
    pub(crate) import_cache: RefCell<HashMap<PathBuf, Value>>,
    /// The string value of each attribute name handed out as a string (`attrNames`,
    /// `mapAttrs`, `zipAttrsWith`), made once per name and then shared.
    symbol_strings: RefCell<HashMap<Symbol, NixString, kiln_lang::symbol::BuildFxHasher>>,
    pub(crate) root_env: Env,
    /// The derivations and texts this evaluation made (`derivationStrict`, `toFile`).
    pub(crate) known_paths: RefCell<builtins::KnownPaths>,
    /// `builtins.builtins`: the thunk through which the global set contains itself.
    builtins_self: Thunk,
    call_depth: Cell<usize>,
    stack_floor: usize,
}

thread_local! {
    /// `__overrides`, looked for in every recursive set.
    static OVERRIDES: Symbol = Symbol::intern("__overrides");
}

/// Cuts `builtins.builtins`, the one loop every evaluator makes, so that the global set is
/// freed with the evaluator (an embedder or a fuzzer making many evaluators leaked one set
/// each).
impl Drop for Evaluator {
    fn drop(&mut self) {
        self.builtins_self.set_value(Value::Null);
    }
}

pub(crate) fn sym(name: &str) -> Symbol {
    Symbol::intern(name)
}

impl Evaluator {
    pub(crate) fn create(options: EvalOptions) -> Self {
        let mut stack_floor = STACK_FLOOR.with(|f| f.get());
        if stack_floor == 0 {
            // Not on a `with_eval_stack` thread: assume the usual 8 MiB main stack and keep
            // well inside it.
            stack_floor = approximate_stack_pointer().saturating_sub(6 << 20);
        }
        let (globals, global_values, builtins_self) = builtins::build_globals(&options);
        Evaluator {
            options,
            sources: RefCell::new(SourceMap::new()),
            globals,
            global_values,
            import_cache: RefCell::new(HashMap::new()),
            symbol_strings: RefCell::new(HashMap::default()),
            root_env: Env::new(Vec::new(), None),
            known_paths: RefCell::default(),
            builtins_self,
            call_depth: Cell::new(0),
            stack_floor,
        }
    }

    pub fn options(&self) -> &EvalOptions {
        &self.options
    }

    pub fn io(&self) -> &dyn EvalIo {
        &*self.options.io
    }

    /// Hands a trace or warning to the options' sink.
    pub fn report(&self, message: crate::EvalMessage) {
        self.options.messages.report(message);
    }

    pub fn store(&self) -> &dyn crate::store_access::EvalStore {
        &*self.options.store
    }

    pub fn sources(&self) -> std::cell::Ref<'_, SourceMap> {
        self.sources.borrow()
    }

    /// A global value (a builtin or constant) by name.
    pub fn global(&self, name: &str) -> Option<Value> {
        self.globals
            .slot(sym(name))
            .map(|slot| self.global_values[slot as usize].clone())
    }

    // ----- parsing -------------------------------------------------------------------------

    // ----- forcing -------------------------------------------------------------------------

    // ----- typed forcing -------------------------------------------------------------------

    // ----- evaluation ----------------------------------------------------------------------

    /// The value of a string literal, made once per literal and then shared.
    #[inline]
    fn string_literal(&self, literal: &ir::StrLiteral) -> NixString {
        let shared = literal
            .evaluated
            .get_or_init(|| Rc::new(NixString::new(&*literal.text)));
        match shared.downcast_ref::<NixString>() {
            Some(s) => s.clone(),
            // Only this evaluator fills the slot, always with a `NixString`.
            None => NixString::new(&*literal.text),
        }
    }

    /// An attribute name as a string value, shared by every use of the name.
    pub fn symbol_string(&self, name: Symbol) -> Value {
        let mut strings = self.symbol_strings.borrow_mut();
        Value::String(
            strings
                .entry(name)
                .or_insert_with(|| NixString::new(name.as_bytes()))
                .clone(),
        )
    }

    /// A value for a lazy position: literals, variables, lambdas and already-evaluated
    /// selections directly, anything else as a thunk.
    #[inline]
    pub(crate) fn delay(&self, expr: &ExprRef, env: &Env) -> Value {
        match &expr.kind {
            ExprKind::Int(i) => Value::Int(*i),
            ExprKind::Float(f) => Value::Float(*f),
            ExprKind::Str(s) => Value::String(self.string_literal(s)),
            ExprKind::Path(PathExpr::Literal(p)) => Value::path(p.to_string()),
            ExprKind::Local { depth, slot, .. } => env.get(*depth, *slot),
            ExprKind::Global { slot, .. } => self.global_values[*slot as usize].clone(),
            ExprKind::Lambda(lambda) => Value::Lambda(Rc::new(Closure {
                lambda: lambda.clone(),
                env: env.clone(),
                unforced: Cell::new(true),
            })),
            ExprKind::Binary { op, lhs, rhs } => match self.speculate_int_op(*op, lhs, rhs, env) {
                Some(value) => value,
                None => Value::Thunk(Thunk::suspended(expr.clone(), env.clone())),
            },
            ExprKind::Select { subject, path, .. } => {
                match self.evaluated_select(subject, path, env) {
                    Some(value) => value,
                    None => Value::Thunk(Thunk::suspended(expr.clone(), env.clone())),
                }
            }
            _ => Value::Thunk(Thunk::suspended(expr.clone(), env.clone())),
        }
    }

    /// `x.a.b` in a lazy position when every step is already evaluated (`lib.mkOption`,
    /// `types.str` once forced, `cfg.enable` of a forced configuration): its value, shared,
    /// instead of a thunk that would find the same value. Anything not yet evaluated (and so
    /// anything that could fail) stays suspended.
    #[inline(never)]
    fn evaluated_select(&self, subject: &ExprRef, path: &[AttrName], env: &Env) -> Option<Value> {
        let mut value = match &subject.kind {
            ExprKind::Local { depth, slot, .. } => env.get(*depth, *slot),
            ExprKind::Global { slot, .. } => self.global_values[*slot as usize].clone(),
            _ => return None,
        };
        for name in path {
            let AttrName::Static(name, hint) = name else {
                return None;
            };
            let next = match &value {
                Value::Attrs(attrs) => attrs.get_hinted(*name, hint)?.clone(),
                Value::Thunk(thunk) => match thunk.value()? {
                    Value::Attrs(attrs) => attrs.get_hinted(*name, hint)?.clone(),
                    _ => return None,
                },
                _ => return None,
            };
            value = next;
        }
        match value {
            Value::Thunk(thunk) => thunk.value(),
            value => Some(value),
        }
    }

    /// Fills the slots of a new `let`/`rec` frame. Bindings that merely name another slot of
    /// the same frame take that slot's value once it is known (so `b = a;` shares `a`'s
    /// value, as in Nix); cycles among them become thunks (which then report infinite
    /// recursion when forced). Thunks and functions over the frame itself are left unbound
    /// until read (see `Slots`), so the frame does not keep itself alive.
    #[inline(never)]
    fn fill_frame<'e>(&self, frame: &Env, bindings: impl Iterator<Item = (u32, &'e ExprRef)>) {
        let mut aliases: Vec<(u32, u32, &'e ExprRef)> = Vec::new();
        for (slot, expr) in bindings {
            match expr.kind {
                ExprKind::Local {
                    depth: 0,
                    slot: target,
                    ..
                } => aliases.push((slot, target, expr)),
                _ if slot < LAZY_SLOTS => {
                    let (value, unbound) = self.delay_unbound(expr, frame);
                    frame.set_raw(slot, value, unbound);
                }
                _ => frame.set(slot, self.delay(expr, frame)),
            }
        }
        let mut progress = true;
        while progress && !aliases.is_empty() {
            progress = false;
            let pending: Vec<u32> = aliases.iter().map(|(slot, _, _)| *slot).collect();
            aliases.retain(|(slot, target, _)| {
                if pending.contains(target) {
                    return true;
                }
                match frame.get_raw(*target) {
                    (value, unbound) if !unbound || *slot < LAZY_SLOTS => {
                        frame.set_raw(*slot, value, unbound)
                    }
                    _ => frame.set(*slot, frame.get(0, *target)),
                }
                progress = true;
                false
            });
        }
        for (slot, _, expr) in aliases {
            frame.set(
                slot,
                Value::Thunk(Thunk::suspended(expr.clone(), frame.clone())),
            );
        }
    }

    /// `delay` for a binding or default of `frame` itself: a new thunk or function over
    /// `frame` is returned unbound (over the empty root frame, a placeholder), with `true`.
    /// Another slot of `frame` may not be filled in yet, so naming one makes a thunk.
    #[inline]
    pub(crate) fn delay_unbound(&self, expr: &ExprRef, frame: &Env) -> (Value, bool) {
        let unbound_thunk = || {
            (
                Value::Thunk(Thunk::suspended(expr.clone(), self.root_env.clone())),
                true,
            )
        };
        match &expr.kind {
            ExprKind::Lambda(lambda) => (
                Value::Lambda(Rc::new(Closure {
                    lambda: lambda.clone(),
                    env: self.root_env.clone(),
                    unforced: Cell::new(true),
                })),
                true,
            ),
            ExprKind::Local { depth: 0, .. } => unbound_thunk(),
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Str(_)
            | ExprKind::Path(PathExpr::Literal(_))
            | ExprKind::Local { .. }
            | ExprKind::Global { .. } => (self.delay(expr, frame), false),
            ExprKind::Binary { op, lhs, rhs } => {
                match self.speculate_int_op(*op, lhs, rhs, frame) {
                    Some(value) => (value, false),
                    None => unbound_thunk(),
                }
            }
            ExprKind::Select { subject, path, .. } => {
                match self.evaluated_select(subject, path, frame) {
                    Some(value) => (value, false),
                    None => unbound_thunk(),
                }
            }
            _ => unbound_thunk(),
        }
    }

    /// `eval` for an operand (a condition, an operator's side, the set of a selection),
    /// which is most often a variable or a constant: those are evaluated here, inlined,
    /// without entering `eval`, whose frame every other kind of node needs.
    #[inline(always)]
    pub(crate) fn eval_operand(&self, expr: &ExprRef, env: &Env) -> EvalResult<Value> {
        match &expr.kind {
            ExprKind::Local { depth, slot, .. } => match env.get_forced(*depth, *slot) {
                Value::Thunk(thunk) => self.force_thunk(&thunk, expr.span),
                value => Ok(value),
            },
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            _ => self.eval(expr, env),
        }
    }

    /// Evaluates an expression to weak head normal form.
    pub(crate) fn eval(&self, expr: &ExprRef, env: &Env) -> EvalResult<Value> {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(f) => Ok(Value::Float(*f)),
            ExprKind::Str(s) => Ok(Value::String(self.string_literal(s))),
            ExprKind::Local { depth, slot, .. } => match env.get_forced(*depth, *slot) {
                Value::Thunk(thunk) => self.force_thunk(&thunk, span),
                value => Ok(value),
            },
            ExprKind::Global { slot, .. } => match &self.global_values[*slot as usize] {
                Value::Thunk(thunk) => self.force_thunk(thunk, span),
                value => Ok(value.clone()),
            },
            ExprKind::WithVar {
                name,
                with_depths,
                hint,
            } => self.force(
                &self.lookup_with(*name, with_depths, hint, env, span)?,
                span,
            ),
            ExprKind::Lambda(lambda) => Ok(Value::Lambda(Rc::new(Closure {
                lambda: lambda.clone(),
                env: env.clone(),
                unforced: Cell::new(false),
            }))),
            ExprKind::Apply { function, argument } => {
                // `f a b`: a saturated builtin call is made directly, without partial
                // applications in between.
                if let ExprKind::Apply {
                    function: inner_function,
                    argument: first,
                } = &function.kind
                {
                    let f = self.eval_callee(inner_function, env)?;
                    if let Callee::Value(Value::PrimOp(builtin)) = f {
                        if builtin.arity == 2 {
                            return self.call_builtin2(builtin, first, argument, env, span);
                        }
                    }
                    let partial = self.call_callee(&f, self.delay(first, env), function.span)?;
                    let arg = self.delay(argument, env);
                    return self.call(&partial, arg, span);
                }
                let f = self.eval_callee(function, env)?;
                let arg = self.delay(argument, env);
                self.call_callee(&f, arg, span)
            }
            ExprKind::If {
                condition,
                then_branch,
                else_branch,
            } => {
                let c = self.eval_operand(condition, env)?;
                match c {
                    Value::Bool(true) => self.eval(then_branch, env),
                    Value::Bool(false) => self.eval(else_branch, env),
                    other => Err(EvalError::type_mismatch("a Boolean", &other).at(condition.span)),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.eval_binary(*op, lhs, rhs, env, span),
            ExprKind::Not(operand) => match self.eval_operand(operand, env)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                other => Err(EvalError::type_mismatch("a Boolean", &other).at(span)),
            },
            ExprKind::Let { bindings, body } => {
                let frame = self.let_frame(bindings, env);
                let result = self.eval(body, &frame);
                frame.release();
                result
            }
            ExprKind::With { namespace, body } => {
                let ns = self.delay(namespace, env);
                let frame = Env::single(ns, Some(env.clone()));
                self.eval(body, &frame)
            }
            ExprKind::Attrs(attrs) => self.eval_attrs(attrs, env),
            ExprKind::List(items) => Ok(Value::list(
                items.iter().map(|item| self.delay(item, env)).collect(),
            )),
            ExprKind::Select {
                subject,
                path,
                default,
            } => self.eval_select(subject, path, default.as_ref(), env, span),
            ExprKind::HasAttr { subject, path } => self.eval_has_attr(subject, path, env, span),
            ExprKind::Assert {
                condition,
                body,
                shown,
            } => match self.eval_operand(condition, env)? {
                Value::Bool(true) => self.eval(body, env),
                other => Err(assertion_error(shown, &other, span)),
            },
            ExprKind::Interpolated(parts) => self.eval_interpolation(parts, env, span),
            ExprKind::Path(path) => self.eval_path(path, env, span),
            ExprKind::CurPos => Ok(self.current_position(span)),
        }
    }

    /// The function of an application, evaluated.
    #[inline]
    fn eval_callee(&self, expr: &ExprRef, env: &Env) -> EvalResult<Callee> {
        if let ExprKind::Local { depth, slot, .. } = &expr.kind {
            return match env.get_callee(*depth, *slot) {
                Callee::Value(Value::Thunk(thunk)) => {
                    self.force_thunk(&thunk, expr.span).map(Callee::Value)
                }
                callee => Ok(callee),
            };
        }
        self.eval(expr, env).map(Callee::Value)
    }

    #[inline]
    fn call_callee(&self, callee: &Callee, argument: Value, span: Span) -> EvalResult<Value> {
        match callee {
            Callee::Value(function) => self.call(function, argument, span),
            Callee::Closure(closure) => self.call_lambda(closure, argument, span),
        }
    }

    /// `builtin a b` with both arguments delayed (kept out of `eval`'s stack frame).
    #[inline(never)]
    fn call_builtin2(
        &self,
        builtin: &'static Builtin,
        first: &ExprRef,
        second: &ExprRef,
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        let args = [self.delay(first, env), self.delay(second, env)];
        self.call_builtin(builtin, &args, span)
    }

    /// The frame of a `let`, its bindings filled in.
    #[inline(never)]
    fn let_frame(&self, bindings: &[ExprRef], env: &Env) -> Env {
        let frame = Env::new(vec![Value::Null; bindings.len()], Some(env.clone()));
        self.fill_frame(
            &frame,
            bindings.iter().enumerate().map(|(i, b)| (i as u32, b)),
        );
        frame
    }

    /// The file name, line and column of a span's start, if it is in a known source.
    pub(crate) fn describe_position(&self, span: Span) -> Option<(String, u32, u32)> {
        let sources = self.sources.borrow();
        let pos = sources.line_col(span.file, span.start)?;
        let file = sources.file(span.file)?.name.clone();
        Some((file.to_string(), pos.line as u32, pos.column as u32))
    }

    /// `__curPos`: `{ column, file, line }` of a span.
    #[inline(never)]
    pub(crate) fn current_position(&self, span: Span) -> Value {
        let sources = self.sources.borrow();
        let pos = sources.line_col(span.file, span.start);
        let file = sources
            .file(span.file)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        Value::attrs(Attrs::from_sorted(vec![
            (
                sym!("column"),
                Value::Int(pos.map_or(0, |p| p.column as i64)),
            ),
            (sym!("file"), Value::string(file)),
            (sym!("line"), Value::Int(pos.map_or(0, |p| p.line as i64))),
        ]))
    }

    #[inline(never)]
    fn eval_interpolation(&self, parts: &[StrPart], env: &Env, _span: Span) -> EvalResult<Value> {
        let mut text = Vec::new();
        let mut context = Context::new();
        for part in parts {
            match part {
                StrPart::Literal(s) => text.extend_from_slice(s.as_bytes()),
                StrPart::Interpolation(expr) => {
                    let s = self.eval_to_string(expr, env, CoerceMode::INTERPOLATION)?;
                    text.extend_from_slice(s.as_bytes());
                    if s.has_context() {
                        context.extend(s.context().iter().cloned());
                    }
                }
            }
        }
        Ok(Value::String(NixString::with_context(text, context)))
    }

    #[inline(never)]
    fn eval_path(&self, path: &PathExpr, env: &Env, span: Span) -> EvalResult<Value> {
        match path {
            PathExpr::Literal(p) => Ok(Value::path(p.to_string())),
            PathExpr::Interpolated(parts) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        StrPart::Literal(s) => text.push_str(s),
                        StrPart::Interpolation(expr) => {
                            let s = self.eval_to_string(
                                expr,
                                env,
                                CoerceMode {
                                    more: false,
                                    copy_to_store: false,
                                },
                            )?;
                            text.push_str(&s.to_str_lossy());
                        }
                    }
                }
                Ok(Value::path(kiln_lang::lower::canonical_path(&text)))
            }
            PathExpr::Search(name) => self.find_in_search_path(name, span),
        }
    }

    // ----- calls ---------------------------------------------------------------------------

    // ----- operators -----------------------------------------------------------------------

    // ----- coercion ------------------------------------------------------------------------

    // ----- equality and ordering -----------------------------------------------------------
}

/// A failed `assert` (false, or not a Boolean).
#[cold]
#[inline(never)]
fn assertion_error(shown: &str, condition: &Value, span: Span) -> EvalError {
    match condition {
        Value::Bool(_) => {
            EvalError::new(ErrorKind::Assert, format!("assertion '{shown}' failed")).at(span)
        }
        other => EvalError::type_mismatch("a Boolean", other).at(span),
    }
}
