//! The evaluator core: the `Evaluator` state, evaluation of IR nodes to weak head normal form,
//! thunk forcing (with blackholing for infinite recursion), function calls (lambdas, primops,
//! `__functor`), operators, string coercion with context, equality and ordering, and `import`.
//!
//! Laziness: arguments, list elements, bindings and attribute values become thunks unless
//! they are literals, variables or lambdas. One deliberate shortcut: an integer operation
//! on already-evaluated variables that cannot fail (`n - 1`) is computed at once instead of
//! suspended; the result is the same, but non-strict printing shows such values where Nix
//! would show `<CODE>`. The same holds for `map`/`genList` elements and `sort`/`foldl'` steps
//! whose function is such an operation on its parameters (`apply_lazily`, `call_n`).
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

fn approximate_stack_pointer() -> usize {
    let marker = 0u8;
    std::ptr::addr_of!(marker) as usize
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

/// The evaluator: owns sources, the global frame, the import cache and the options.
pub struct Evaluator {
    pub(crate) options: EvalOptions,
    pub(crate) sources: RefCell<SourceMap>,
    pub(crate) globals: Globals,
    pub(crate) global_values: Vec<Value>,
    pub(crate) import_cache: RefCell<HashMap<PathBuf, Value>>,
    pub(crate) root_env: Env,
    call_depth: Cell<usize>,
    stack_floor: usize,
}

thread_local! {
    /// `__overrides`, looked for in every recursive set.
    static OVERRIDES: Symbol = Symbol::intern("__overrides");
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
        let (globals, global_values) = builtins::build_globals(&options);
        Evaluator {
            options,
            sources: RefCell::new(SourceMap::new()),
            globals,
            global_values,
            import_cache: RefCell::new(HashMap::new()),
            root_env: Env::new(Vec::new(), None),
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

    /// Registers source text and lowers it.
    pub(crate) fn parse_source(
        &self,
        text: &str,
        name: String,
        path: Option<PathBuf>,
        base_dir: &Path,
        outer_names: &[Symbol],
    ) -> EvalResult<ExprRef> {
        let display_name = match &path {
            Some(p) => p.display().to_string(),
            None => "(string)".to_string(),
        };
        let text = &*kiln_lang::source::normalise_line_endings(text);
        let file = self.sources.borrow_mut().add(name, path, Rc::from(text));
        let home = self.io().get_env("HOME").map(PathBuf::from);
        let cx = LowerContext {
            file,
            display_name: &display_name,
            base_dir,
            home_dir: home.as_deref(),
            globals: &self.globals,
            outer_names,
        };
        Ok(kiln_lang::parse_and_lower(text, &cx)?)
    }

    /// Reads and lowers a file (a directory means its `default.nix`).
    pub(crate) fn parse_file(&self, path: &Path, outer_names: &[Symbol]) -> EvalResult<ExprRef> {
        let path = self.resolve_import_path(path);
        let bytes = self.read_file_bytes(&path).map_err(EvalError::eval)?;
        let base_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t.to_string(),
            Err(_) => {
                let file = self
                    .sources
                    .borrow_mut()
                    .add_file(&path, Rc::from(String::from_utf8_lossy(&bytes).as_ref()));
                return Err(kiln_lang::check_utf8(&bytes, file)
                    .err()
                    .map(EvalError::from)
                    .unwrap_or_else(|| EvalError::eval("invalid UTF-8 in source")));
            }
        };
        self.parse_source(
            &text,
            path.display().to_string(),
            Some(path.clone()),
            &base_dir,
            outer_names,
        )
    }

    /// Whether `path` exists (on disk, or as a text this evaluation put in the store).
    fn file_exists(&self, path: &Path) -> bool {
        self.io().file_type(path).is_some() || self.store_text(path).is_some()
    }

    /// A file's contents: a text this evaluation put in the store (`builtins.toFile`, kept by
    /// stores that do not write) or the file itself.
    pub(crate) fn read_file_bytes(&self, path: &Path) -> Result<Vec<u8>, String> {
        match self.store_text(path) {
            Some(text) => Ok(text),
            None => self.io().read_file(path),
        }
    }

    /// The store's copy of `path` when it is a store path the store holds in memory.
    fn store_text(&self, path: &Path) -> Option<Vec<u8>> {
        let store = &self.options.store;
        path.to_str()
            .filter(|p| p.starts_with(store.store_dir()))
            .and_then(|p| store.read_store_file(p))
    }

    fn resolve_import_path(&self, path: &Path) -> PathBuf {
        if self.io().file_type(path) == Some(FileType::Directory) {
            path.join("default.nix")
        } else {
            path.to_path_buf()
        }
    }

    /// `import path`: evaluates a file once and caches its value.
    pub fn import_file(&self, path: &Path, span: Span) -> EvalResult<Value> {
        let resolved = self.resolve_import_path(path);
        if let Some(v) = self.import_cache.borrow().get(&resolved) {
            return self.force(v, span);
        }
        if !self.file_exists(&resolved) {
            return Err(EvalError::eval(format!(
                "getting status of '{}': No such file or directory",
                resolved.display()
            ))
            .at(span));
        }
        let expr = self.parse_file(&resolved, &[]).map_err(|e| e.at(span))?;
        let value = Value::Thunk(Thunk::suspended(expr, self.root_env.clone()));
        self.import_cache
            .borrow_mut()
            .insert(resolved, value.clone());
        self.force(&value, span)
    }

    /// `scopedImport scope path`: evaluates a file with the attributes of `scope` bound around
    /// it (shadowing builtins); not cached, as in Nix.
    pub fn scoped_import(&self, scope: &Attrs, path: &Path, span: Span) -> EvalResult<Value> {
        let resolved = self.resolve_import_path(path);
        if !self.file_exists(&resolved) {
            return Err(EvalError::eval(format!(
                "getting status of '{}': No such file or directory",
                resolved.display()
            ))
            .at(span));
        }
        let names: Vec<Symbol> = scope.names().collect();
        let expr = self.parse_file(&resolved, &names).map_err(|e| e.at(span))?;
        let env = Env::new(scope.values().cloned().collect(), None);
        self.eval(&expr, &env)
    }

    /// Evaluates Nix source that belongs to kiln itself (e.g. a builtin written in Nix, like
    /// `derivation`), with `name` shown in positions.
    pub fn eval_internal_source(&self, name: &str, source: &str) -> EvalResult<Value> {
        let expr = self.parse_source(source, format!("«{name}»"), None, Path::new("/"), &[])?;
        self.eval(&expr, &self.root_env)
    }

    // ----- forcing -------------------------------------------------------------------------

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

    pub fn force_thunk(&self, thunk: &Thunk, span: Span) -> EvalResult<Value> {
        let state = thunk.replace_state(ThunkState::Blackhole(span));
        // The common cases stay in this small frame (it is on the stack once per level of
        // lazy recursion); the others are in `force_other_thunk`.
        let (expr, env) = match state {
            ThunkState::Done(v) => {
                let value = v.clone();
                thunk.set_state(ThunkState::Done(v));
                return Ok(value);
            }
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
    fn finish_thunk_with_thunk(
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
    fn force_other_thunk(&self, thunk: &Thunk, state: ThunkState, span: Span) -> EvalResult<Value> {
        if let ThunkState::Blackhole(at) = state {
            thunk.set_state(ThunkState::Blackhole(at));
            return Err(EvalError::new(
                ErrorKind::InfiniteRecursion,
                "infinite recursion encountered",
            )
            .at(at));
        }
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

    fn deep_force_inner(&self, value: &Value, span: Span, seen: &mut SeenSet) -> EvalResult<()> {
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

    // ----- typed forcing -------------------------------------------------------------------

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
            Value::Attrs(a) if a.contains(sym("__functor")) => Ok(v),
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
        if !s.as_str().starts_with('/') {
            return Err(EvalError::eval(format!(
                "string '{}' doesn't represent an absolute path",
                s.as_str()
            ))
            .at(span));
        }
        Ok(PathBuf::from(s.as_str()))
    }

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

    /// A value for a lazy position: literals, variables and lambdas directly, anything else
    /// as a thunk.
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
            _ => Value::Thunk(Thunk::suspended(expr.clone(), env.clone())),
        }
    }

    /// The integer value of a literal or of a variable that is already evaluated, if any.
    #[inline]
    fn known_int(&self, expr: &ExprRef, env: &Env) -> Option<i64> {
        match &expr.kind {
            ExprKind::Int(i) => Some(*i),
            ExprKind::Local { depth, slot, .. } => evaluated_int(env.get(*depth, *slot)),
            _ => None,
        }
    }

    /// An integer operation whose operands are already known and which cannot fail is
    /// computed right away instead of suspended: the result is the same (evaluation is pure)
    /// and no thunk is allocated (`f (n - 1)`).
    #[inline]
    fn speculate_int_op(
        &self,
        op: BinaryOp,
        lhs: &ExprRef,
        rhs: &ExprRef,
        env: &Env,
    ) -> Option<Value> {
        if !is_speculable_int_op(op) {
            return None;
        }
        // Constant expressions stay suspended so that non-strict printing shows them as
        // `<CODE>` like Nix; only variable operands are worth speculating on.
        if matches!(lhs.kind, ExprKind::Int(_)) && matches!(rhs.kind, ExprKind::Int(_)) {
            return None;
        }
        let x = self.known_int(lhs, env)?;
        let y = self.known_int(rhs, env)?;
        int_op_without_failure(op, x, y)
    }

    /// Fills the slots of a new `let`/`rec` frame. Bindings that merely name another slot of
    /// the same frame take that slot's value once it is known (so `b = a;` shares `a`'s
    /// value, as in Nix); cycles among them become thunks (which then report infinite
    /// recursion when forced).
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
                frame.set(*slot, frame.get(0, *target));
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

    /// Evaluates an expression to weak head normal form.
    pub(crate) fn eval(&self, expr: &ExprRef, env: &Env) -> EvalResult<Value> {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(f) => Ok(Value::Float(*f)),
            ExprKind::Str(s) => Ok(Value::String(self.string_literal(s))),
            ExprKind::Local { depth, slot, .. } => match env.get(*depth, *slot) {
                Value::Thunk(thunk) => self.force_thunk(&thunk, span),
                value => Ok(value),
            },
            ExprKind::Global { slot, .. } => match &self.global_values[*slot as usize] {
                Value::Thunk(thunk) => self.force_thunk(thunk, span),
                value => Ok(value.clone()),
            },
            ExprKind::WithVar { name, with_depths } => {
                self.force(&self.lookup_with(*name, with_depths, env, span)?, span)
            }
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
                    let f = self.eval(inner_function, env)?;
                    if let Value::PrimOp(builtin) = f {
                        if builtin.arity == 2 {
                            return self.call_builtin2(builtin, first, argument, env, span);
                        }
                    }
                    let partial = self.call(&f, self.delay(first, env), function.span)?;
                    let arg = self.delay(argument, env);
                    return self.call(&partial, arg, span);
                }
                let f = self.eval(function, env)?;
                let arg = self.delay(argument, env);
                self.call(&f, arg, span)
            }
            ExprKind::If {
                condition,
                then_branch,
                else_branch,
            } => {
                let c = self.eval(condition, env)?;
                match c {
                    Value::Bool(true) => self.eval(then_branch, env),
                    Value::Bool(false) => self.eval(else_branch, env),
                    other => Err(EvalError::type_mismatch("a Boolean", &other).at(condition.span)),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.eval_binary(*op, lhs, rhs, env, span),
            ExprKind::Not(operand) => match self.eval(operand, env)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                other => Err(EvalError::type_mismatch("a Boolean", &other).at(span)),
            },
            ExprKind::Let { bindings, body } => {
                let frame = self.let_frame(bindings, env);
                self.eval(body, &frame)
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
            } => match self.eval(condition, env)? {
                Value::Bool(true) => self.eval(body, env),
                other => Err(assertion_error(shown, &other, span)),
            },
            ExprKind::Interpolated(parts) => self.eval_interpolation(parts, env, span),
            ExprKind::Path(path) => self.eval_path(path, env, span),
            ExprKind::CurPos => Ok(self.current_position(span)),
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

    /// `subject ? a.b.c`.
    #[inline(never)]
    fn eval_has_attr(
        &self,
        subject: &ExprRef,
        path: &[AttrName],
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        let mut v = self.eval(subject, env)?;
        for (step, name) in path.iter().enumerate() {
            let Ok(name) = self.lookup_name(name, env)? else {
                return Ok(Value::Bool(false));
            };
            // As Nix: every set along the path is forced, the value found last is not.
            if step > 0 {
                v = self.force(&v, span)?;
            }
            match v {
                Value::Attrs(attrs) => match attrs.get(name) {
                    Some(next) => v = next.clone(),
                    None => return Ok(Value::Bool(false)),
                },
                _ => return Ok(Value::Bool(false)),
            }
        }
        Ok(Value::Bool(true))
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
                sym("column"),
                Value::Int(pos.map_or(0, |p| p.column as i64)),
            ),
            (sym("file"), Value::string(file)),
            (sym("line"), Value::Int(pos.map_or(0, |p| p.line as i64))),
        ]))
    }

    #[inline(never)]
    fn lookup_with(
        &self,
        name: Symbol,
        with_depths: &[u32],
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        for depth in with_depths {
            let ns = env.get(*depth, 0);
            let attrs = self.force_attrs(&ns, span)?;
            if let Some(v) = attrs.get(name) {
                return Ok(v.clone());
            }
        }
        Err(EvalError::eval(format!("undefined variable '{name}'")).at(span))
    }

    /// An attribute name for a lookup (`.`/`?`): `Err(text)` when the name was never interned,
    /// so no set can have it (and interning it would only grow the symbol table).
    fn lookup_name(&self, name: &AttrName, env: &Env) -> EvalResult<Result<Symbol, String>> {
        match name {
            AttrName::Static(s) => Ok(Ok(*s)),
            AttrName::Dynamic(expr) => {
                let v = self.eval(expr, env)?;
                let s = self.coerce_to_string(
                    &v,
                    expr.span,
                    CoerceMode {
                        more: false,
                        copy_to_store: true,
                    },
                )?;
                reject_context(&s, expr.span)?;
                Ok(Symbol::lookup(s.as_str()).ok_or_else(|| s.as_str().to_string()))
            }
        }
    }

    #[inline(never)]
    fn eval_select(
        &self,
        subject: &ExprRef,
        path: &[AttrName],
        default: Option<&ExprRef>,
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        let mut v = self.eval(subject, env)?;
        for name in path {
            let name = self.lookup_name(name, env)?;
            let attrs = match &v {
                Value::Attrs(attrs) => attrs.clone(),
                other => {
                    if let Some(d) = default {
                        return self.eval(d, env);
                    }
                    return Err(not_a_set(other, span));
                }
            };
            match name.as_ref().ok().and_then(|name| attrs.get(*name)) {
                Some(next) => {
                    v = match next {
                        Value::Thunk(thunk) => self
                            .force_thunk(thunk, span)
                            .map_err(|e| attribute_frame(e, &name, span))?,
                        value => value.clone(),
                    }
                }
                None => {
                    if let Some(d) = default {
                        return self.eval(d, env);
                    }
                    return Err(missing_attribute(&name, &attrs, span));
                }
            }
        }
        Ok(v)
    }

    #[inline(never)]
    fn eval_attrs(&self, attrs: &Rc<ir::AttrsExpr>, env: &Env) -> EvalResult<Value> {
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
            {
                let slots = frame.0.slots.borrow();
                for (attr, v) in attrs.statics.iter().zip(slots.as_slice().iter()) {
                    entries.push((attr.name, v.clone()));
                }
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
            let name = sym(name.as_str());
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
    fn rec_overrides(
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

    #[inline(never)]
    fn eval_interpolation(&self, parts: &[StrPart], env: &Env, _span: Span) -> EvalResult<Value> {
        let mut text = String::new();
        let mut context = Context::new();
        for part in parts {
            match part {
                StrPart::Literal(s) => text.push_str(s),
                StrPart::Interpolation(expr) => {
                    let v = self.eval(expr, env)?;
                    let s = self.coerce_to_string(&v, expr.span, CoerceMode::INTERPOLATION)?;
                    text.push_str(s.as_str());
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
                            let v = self.eval(expr, env)?;
                            let s = self.coerce_to_string(
                                &v,
                                expr.span,
                                CoerceMode {
                                    more: false,
                                    copy_to_store: false,
                                },
                            )?;
                            text.push_str(s.as_str());
                        }
                    }
                }
                Ok(Value::path(kiln_lang::lower::canonical_path(&text)))
            }
            PathExpr::Search(name) => self.find_in_search_path(name, span),
        }
    }

    /// Resolves `<name/rest>` against the search path.
    pub fn find_in_search_path(&self, name: &str, span: Span) -> EvalResult<Value> {
        crate::find_in(self, &self.options.search_path, name, span)
    }

    // ----- calls ---------------------------------------------------------------------------

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
    fn call_non_lambda(&self, function: &Value, argument: Value, span: Span) -> EvalResult<Value> {
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
            Value::Attrs(attrs) => match attrs.get(sym("__functor")) {
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

    fn call_builtin(
        &self,
        builtin: &'static Builtin,
        args: &[Value],
        span: Span,
    ) -> EvalResult<Value> {
        (builtin.func)(self, args, span)
    }

    /// Records in an error's trace that it happened inside a call of `closure` made at `span`.
    #[cold]
    fn add_call_frame(&self, e: EvalError, closure: &Closure, span: Span) -> EvalError {
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

    fn enter_call(&self, span: Span) -> EvalResult<()> {
        let depth = self.call_depth.get() + 1;
        if depth > self.options.max_call_depth {
            return Err(EvalError::new(
                ErrorKind::StackOverflow,
                "stack overflow (possible infinite recursion)",
            )
            .at(span));
        }
        self.check_stack(span)?;
        self.call_depth.set(depth);
        Ok(())
    }

    fn call_lambda(&self, closure: &Closure, argument: Value, span: Span) -> EvalResult<Value> {
        self.enter_call(span)?;
        closure.unforced.set(false);
        let result = self.call_lambda_inner(closure, argument, span);
        self.call_depth.set(self.call_depth.get() - 1);
        result.map_err(|e| self.add_call_frame(e, closure, span))
    }

    fn function_description(&self, lambda: &ir::Lambda) -> String {
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

    fn call_lambda_inner(
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
        self.eval(&lambda.body, &frame)
    }

    /// The frame of a call of a `{ a, b ? d, ... }@args:` function: the formals bound from
    /// the argument set (defaults in the new frame), checked for missing and unexpected
    /// names. Out of line: `call_lambda_inner` is on the stack once per call level.
    #[inline(never)]
    fn pattern_frame(
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
            let v = match attrs.get(formal.name) {
                Some(v) => {
                    used += 1;
                    v.clone()
                }
                None => match &formal.default {
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

    // ----- operators -----------------------------------------------------------------------

    fn eval_binary(
        &self,
        op: BinaryOp,
        lhs: &ExprRef,
        rhs: &ExprRef,
        env: &Env,
        span: Span,
    ) -> EvalResult<Value> {
        match op {
            BinaryOp::And => {
                if !self.eval_bool(lhs, env, span)? {
                    return Ok(Value::Bool(false));
                }
                Ok(Value::Bool(self.eval_bool(rhs, env, span)?))
            }
            BinaryOp::Or => {
                if self.eval_bool(lhs, env, span)? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(rhs, env, span)?))
            }
            BinaryOp::Implication => {
                if !self.eval_bool(lhs, env, span)? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(rhs, env, span)?))
            }
            _ => {
                let a = self.eval(lhs, env)?;
                let b = self.eval(rhs, env)?;
                if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
                    let (x, y) = (*x, *y);
                    match op {
                        BinaryOp::Add => {
                            return x
                                .checked_add(y)
                                .map(Value::Int)
                                .ok_or_else(|| overflow("adding", x, y, span))
                        }
                        BinaryOp::Sub => {
                            return x
                                .checked_sub(y)
                                .map(Value::Int)
                                .ok_or_else(|| overflow("subtracting", x, y, span))
                        }
                        BinaryOp::Mul => {
                            return x
                                .checked_mul(y)
                                .map(Value::Int)
                                .ok_or_else(|| overflow("multiplying", x, y, span))
                        }
                        BinaryOp::Less => return Ok(Value::Bool(x < y)),
                        BinaryOp::LessOrEq => return Ok(Value::Bool(x <= y)),
                        BinaryOp::More => return Ok(Value::Bool(x > y)),
                        BinaryOp::MoreOrEq => return Ok(Value::Bool(x >= y)),
                        BinaryOp::Equal => return Ok(Value::Bool(x == y)),
                        BinaryOp::NotEqual => return Ok(Value::Bool(x != y)),
                        _ => {}
                    }
                }
                self.binary_values(op, a, b, span)
            }
        }
    }

    fn eval_bool(&self, expr: &ExprRef, env: &Env, span: Span) -> EvalResult<bool> {
        match self.eval(expr, env)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::type_mismatch("a Boolean", &other).at(span)),
        }
    }

    /// Applies a strict binary operator to two forced values.
    pub fn binary_values(&self, op: BinaryOp, a: Value, b: Value, span: Span) -> EvalResult<Value> {
        match op {
            BinaryOp::Add => self.add(a, b, span),
            BinaryOp::Sub => arith(a, b, span, "subtracting", i64::checked_sub, |x, y| x - y),
            BinaryOp::Mul => arith(a, b, span, "multiplying", i64::checked_mul, |x, y| x * y),
            BinaryOp::Div => {
                let zero = match &b {
                    Value::Int(0) => true,
                    Value::Float(f) => *f == 0.0,
                    _ => false,
                };
                if zero && matches!(a, Value::Int(_) | Value::Float(_)) {
                    return Err(EvalError::eval("division by zero").at(span));
                }
                arith(a, b, span, "dividing", i64::checked_div, |x, y| x / y)
            }
            BinaryOp::Equal => Ok(Value::Bool(self.equal(&a, &b, span)?)),
            BinaryOp::NotEqual => Ok(Value::Bool(!self.equal(&a, &b, span)?)),
            BinaryOp::Less => Ok(Value::Bool(self.less_than(&a, &b, span)?)),
            BinaryOp::More => Ok(Value::Bool(self.less_than(&b, &a, span)?)),
            BinaryOp::LessOrEq => Ok(Value::Bool(!self.less_than(&b, &a, span)?)),
            BinaryOp::MoreOrEq => Ok(Value::Bool(!self.less_than(&a, &b, span)?)),
            BinaryOp::Concat => {
                let x = self.force_list(&a, span)?;
                let y = self.force_list(&b, span)?;
                if x.is_empty() {
                    return Ok(Value::List(y));
                }
                if y.is_empty() {
                    return Ok(Value::List(x));
                }
                let mut items = Vec::with_capacity(x.len() + y.len());
                items.extend(x.iter().cloned());
                items.extend(y.iter().cloned());
                Ok(Value::list(items))
            }
            BinaryOp::Update => {
                let x = self.force_attrs(&a, span)?;
                let y = self.force_attrs(&b, span)?;
                if y.is_empty() {
                    return Ok(Value::Attrs(x));
                }
                if x.is_empty() {
                    return Ok(Value::Attrs(y));
                }
                Ok(Value::attrs(Attrs::update(&x, &y)))
            }
            BinaryOp::And | BinaryOp::Or | BinaryOp::Implication => {
                let x = self.force_bool(&a, span)?;
                let y = self.force_bool(&b, span)?;
                Ok(Value::Bool(match op {
                    BinaryOp::And => x && y,
                    BinaryOp::Or => x || y,
                    _ => !x || y,
                }))
            }
        }
    }

    #[inline(never)]
    fn add(&self, a: Value, b: Value, span: Span) -> EvalResult<Value> {
        match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => x
                .checked_add(*y)
                .map(Value::Int)
                .ok_or_else(|| overflow("adding", *x, *y, span)),
            (Value::Float(x), Value::Float(y)) => Ok(Value::Float(x + y)),
            (Value::Int(x), Value::Float(y)) => Ok(Value::Float(*x as f64 + y)),
            (Value::Float(x), Value::Int(y)) => Ok(Value::Float(x + *y as f64)),
            (Value::Path(p), _) => {
                let s = self.coerce_to_string(
                    &b,
                    span,
                    CoerceMode {
                        more: false,
                        copy_to_store: false,
                    },
                )?;
                if s.has_context() {
                    return Err(EvalError::eval(
                        "a string that refers to a store path cannot be appended to a path",
                    )
                    .at(span));
                }
                let joined = format!("{}{}", p, s.as_str());
                Ok(Value::path(kiln_lang::lower::canonical_path(&joined)))
            }
            (Value::String(x), _) => {
                let y = self.coerce_to_string(&b, span, CoerceMode::INTERPOLATION)?;
                let mut text = String::with_capacity(x.as_str().len() + y.as_str().len());
                text.push_str(x.as_str());
                text.push_str(y.as_str());
                let context = if y.has_context() {
                    let mut c = x.context().clone();
                    c.extend(y.context().iter().cloned());
                    c
                } else {
                    x.context().clone()
                };
                Ok(Value::String(NixString::with_context(text, context)))
            }
            (Value::Attrs(_), _) => {
                // A set with __toString/outPath concatenates like a string.
                let x = self.coerce_to_string(&a, span, CoerceMode::INTERPOLATION)?;
                self.add(Value::String(x), b, span)
            }
            (Value::Int(_) | Value::Float(_), _) => Err(EvalError::new(
                ErrorKind::Type,
                format!(
                    "cannot add {} to {}",
                    b.type_description(),
                    a.type_description()
                ),
            )
            .at(span)),
            _ => Err(EvalError::eval(format!(
                "cannot coerce {} to a string",
                a.type_description()
            ))
            .at(span)),
        }
    }

    // ----- coercion ------------------------------------------------------------------------

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
                &name,
                Path::new(path),
                crate::store_access::IngestionMethod::Recursive,
                None,
                None,
            )
            .map_err(|e| EvalError::eval(e.to_string()).at(span))
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
                if let Some(f) = attrs.get(sym("__toString")) {
                    let f = self.force(f, span)?;
                    let result = self.call(&f, v.clone(), span)?;
                    return self.coerce_to_string(&result, span, mode);
                }
                if let Some(out) = attrs.get(sym("outPath")) {
                    return self.coerce_to_string(out, span, mode);
                }
                Err(EvalError::new(ErrorKind::Type, "cannot coerce a set to a string").at(span))
            }
            Value::Int(i) if mode.more => Ok(NixString::new(i.to_string())),
            Value::Float(f) if mode.more => Ok(NixString::new(format!("{f:.6}"))),
            Value::Bool(b) if mode.more => Ok(NixString::new(if *b { "1" } else { "" })),
            Value::Null if mode.more => Ok(NixString::new("")),
            Value::List(items) if mode.more => {
                let mut text = String::new();
                let mut elements = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let s = self.coerce_to_string(item, span, mode)?;
                    text.push_str(s.as_str());
                    elements.extend(s.context().iter().cloned());
                    if i + 1 < items.len() {
                        // Nix skips the separator after an empty list element.
                        let empty_list =
                            matches!(self.force(item, span)?, Value::List(ref l) if l.is_empty());
                        if !empty_list {
                            text.push(' ');
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

    // ----- equality and ordering -----------------------------------------------------------

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
            (Value::String(x), Value::String(y)) => x.as_str() == y.as_str(),
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
                    if let (Some(p), Some(q)) = (x.get(sym("outPath")), y.get(sym("outPath"))) {
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
        match attrs.get(sym("type")) {
            Some(t) => {
                Ok(matches!(self.force(t, span)?, Value::String(s) if s.as_str() == "derivation"))
            }
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
            (Value::String(x), Value::String(y)) => Ok(x.as_str() < y.as_str()),
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
fn reject_context(s: &NixString, span: Span) -> EvalResult<()> {
    if let Some(elem) = s.context().iter().next() {
        let path = match elem {
            ContextElem::Plain(p) | ContextElem::AllOutputs(p) => p,
            ContextElem::Output { drv, .. } => drv,
        };
        return Err(EvalError::eval(format!(
            "the string '{}' is not allowed to refer to a store path (such as '{}')",
            s.as_str(),
            path
        ))
        .at(span));
    }
    Ok(())
}

fn not_callable(v: &Value, span: Span) -> EvalError {
    EvalError::new(
        ErrorKind::Type,
        format!(
            "attempt to call something which is not a function but {}",
            v.type_description()
        ),
    )
    .at(span)
}

fn overflow(verb: &str, x: i64, y: i64, span: Span) -> EvalError {
    if verb == "dividing" {
        return EvalError::eval("overflow in integer division").at(span);
    }
    let op = match verb {
        "adding" => "+",
        "subtracting" => "-",
        "multiplying" => "*",
        _ => "/",
    };
    EvalError::eval(format!("integer overflow in {verb} {x} {op} {y}")).at(span)
}

fn arith(
    a: Value,
    b: Value,
    span: Span,
    verb: &str,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> EvalResult<Value> {
    match (&a, &b) {
        (Value::Int(x), Value::Int(y)) => int_op(*x, *y)
            .map(Value::Int)
            .ok_or_else(|| overflow(verb, *x, *y, span)),
        (Value::Float(x), Value::Float(y)) => Ok(Value::Float(float_op(*x, *y))),
        (Value::Int(x), Value::Float(y)) => Ok(Value::Float(float_op(*x as f64, *y))),
        (Value::Float(x), Value::Int(y)) => Ok(Value::Float(float_op(*x, *y as f64))),
        (Value::Int(_) | Value::Float(_), other) | (other, _) => {
            Err(EvalError::type_mismatch("an integer", other).at(span))
        }
    }
}

/// Whether `op` on two integers can be computed eagerly (see `int_op_without_failure`).
#[inline]
fn is_speculable_int_op(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Less
            | BinaryOp::LessOrEq
            | BinaryOp::More
            | BinaryOp::MoreOrEq
            | BinaryOp::Equal
            | BinaryOp::NotEqual
    )
}

/// `x op y` for an operator accepted by `is_speculable_int_op`, or `None` when it would
/// overflow (then the operation stays suspended and reports its error when forced).
#[inline]
fn int_op_without_failure(op: BinaryOp, x: i64, y: i64) -> Option<Value> {
    Some(match op {
        BinaryOp::Add => Value::Int(x.checked_add(y)?),
        BinaryOp::Sub => Value::Int(x.checked_sub(y)?),
        BinaryOp::Mul => Value::Int(x.checked_mul(y)?),
        BinaryOp::Less => Value::Bool(x < y),
        BinaryOp::LessOrEq => Value::Bool(x <= y),
        BinaryOp::More => Value::Bool(x > y),
        BinaryOp::MoreOrEq => Value::Bool(x >= y),
        BinaryOp::Equal => Value::Bool(x == y),
        BinaryOp::NotEqual => Value::Bool(x != y),
        _ => return None,
    })
}

/// "while evaluating the attribute 'a'", added to an error from forcing `a` in `x.a`.
#[cold]
#[inline(never)]
fn attribute_frame(e: EvalError, name: &Result<Symbol, String>, span: Span) -> EvalError {
    let name = name.as_ref().map_or("", |n| n.as_str());
    e.add_trace(
        format!("while evaluating the attribute '{name}'"),
        Some(span),
    )
}

/// `x.a` where `x` has no `a`: the error, with the closest name `x` has as a suggestion.
#[cold]
#[inline(never)]
fn missing_attribute(name: &Result<Symbol, String>, attrs: &Attrs, span: Span) -> EvalError {
    let name = match name {
        Ok(symbol) => symbol.as_str().to_string(),
        Err(text) => text.clone(),
    };
    let suggestion = kiln_lang::suggest::closest(&name, attrs.names().map(|s| s.as_str()));
    EvalError::eval(format!("attribute '{name}' missing"))
        .at(span)
        .with_suggestion(suggestion)
}

/// Selecting from something that is not a set.
#[cold]
#[inline(never)]
fn not_a_set(value: &Value, span: Span) -> EvalError {
    EvalError::type_mismatch("a set", value).at(span)
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

/// The lazy value of `function argument` (elements of `map` and `genList`). When the function
/// is a one-parameter lambda whose body is its parameter or an integer operation on its
/// parameter and already known integers, and the argument is an evaluated scalar, the result
/// is computed at once: the same value, without a thunk (`genList (i: i) n`,
/// `map (x: x * 3) ints`). Anything else becomes an application thunk.
pub fn apply_lazily(call: &Rc<LazyCall>, argument: Value) -> Value {
    if let Some(value) = speculate_application(&call.function, &argument) {
        return value;
    }
    Value::Thunk(Thunk::apply(call.clone(), argument))
}

#[inline]
fn speculate_application(function: &Value, argument: &Value) -> Option<Value> {
    let Value::Lambda(closure) = function else {
        return None;
    };
    if !matches!(closure.lambda.param, Param::Ident(_)) {
        return None;
    }
    // Only scalars: returning a shared set, list, function or thunk could make Nix's
    // pointer-equality shortcut see an identity that Nix's fresh thunk would not have.
    if !matches!(
        argument,
        Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Null
    ) {
        return None;
    }
    match &closure.lambda.body.kind {
        ExprKind::Local {
            depth: 0, slot: 0, ..
        } => Some(argument.clone()),
        ExprKind::Binary { op, lhs, rhs } if is_speculable_int_op(*op) => {
            let x = known_int_in_call(lhs, argument, &closure.env)?;
            let y = known_int_in_call(rhs, argument, &closure.env)?;
            // As in `speculate_int_op`, constant expressions stay suspended.
            if matches!(lhs.kind, ExprKind::Int(_)) && matches!(rhs.kind, ExprKind::Int(_)) {
                return None;
            }
            int_op_without_failure(*op, x, y)
        }
        _ => None,
    }
}

/// `(a: b: body) first second` computed without frames when `body` is an integer operation
/// (as in `speculate_int_op`) on the parameters, literals and already known integers of the
/// closure's environment `env`: comparators of `sort`, steps of `foldl'`.
#[inline]
fn speculate_binary_call(
    inner: &ir::Lambda,
    first: &Value,
    second: &Value,
    env: &Env,
) -> Option<Value> {
    if !matches!(inner.param, Param::Ident(_)) {
        return None;
    }
    let ExprKind::Binary { op, lhs, rhs } = &inner.body.kind else {
        return None;
    };
    if !is_speculable_int_op(*op)
        || (matches!(lhs.kind, ExprKind::Int(_)) && matches!(rhs.kind, ExprKind::Int(_)))
    {
        return None;
    }
    let operand = |expr: &ExprRef| -> Option<i64> {
        let value = match &expr.kind {
            ExprKind::Int(i) => return Some(*i),
            ExprKind::Local {
                depth: 0, slot: 0, ..
            } => second.clone(),
            ExprKind::Local {
                depth: 1, slot: 0, ..
            } => first.clone(),
            ExprKind::Local { depth, slot, .. } if *depth >= 2 => env.get(depth - 2, *slot),
            _ => return None,
        };
        evaluated_int(value)
    };
    int_op_without_failure(*op, operand(lhs)?, operand(rhs)?)
}

/// The integer a value is or has been evaluated to, if any.
#[inline]
fn evaluated_int(value: Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(i),
        Value::Thunk(t) => match t.value() {
            Some(Value::Int(i)) => Some(i),
            _ => None,
        },
        _ => None,
    }
}

/// The integer an operand of a one-parameter lambda's body denotes when the lambda is called
/// with `argument` in `env` (the closure's environment), if it is known without evaluation.
#[inline]
fn known_int_in_call(expr: &ExprRef, argument: &Value, env: &Env) -> Option<i64> {
    let value = match &expr.kind {
        ExprKind::Int(i) => return Some(*i),
        ExprKind::Local {
            depth: 0, slot: 0, ..
        } => argument.clone(),
        ExprKind::Local { depth, slot, .. } if *depth > 0 => env.get(depth - 1, *slot),
        _ => return None,
    };
    evaluated_int(value)
}
