//! Runtime values: the `Value` enum and its parts (strings with context, attribute sets kept
//! sorted by name bytes, shared lists, closures, primop applications, thunks and environment
//! frames). Every variant is cheap to clone: heap parts sit behind `Rc`.
use crate::builtins::Builtin;
use crate::error::EvalError;
use crate::Evaluator;
use kiln_lang::ir::{AttrsExpr, ExprRef, Lambda, LookupHint};
use kiln_lang::{Span, Symbol};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

mod attrs;
mod release;
mod string;

pub use attrs::Attrs;
pub use attrs::AttrsIter;
pub use attrs::AttrsOrigin;
pub use string::Context;
pub use string::ContextElem;
pub use string::NixString;

/// A Nix value. `Thunk` is the only variant that is not in weak head normal form.
#[derive(Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(NixString),
    /// An absolute, canonical path.
    Path(Rc<String>),
    Attrs(Rc<Attrs>),
    List(Rc<Vec<Value>>),
    Lambda(Rc<Closure>),
    PrimOp(&'static Builtin),
    PrimOpApp(Rc<PrimOpApp>),
    Thunk(Thunk),
}

impl Value {
    /// Nix's description of a value's type in error messages ("an integer", "a set", …).
    pub fn type_description(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Value::PrimOp(b) => format!("the built-in function '{}'", b.name).into(),
            Value::PrimOpApp(app) => format!(
                "the partially applied built-in function '{}'",
                app.builtin.name
            )
            .into(),
            other => other.simple_type_description().into(),
        }
    }

    fn simple_type_description(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) => "a string",
            Value::Path(_) => "a path",
            Value::Attrs(_) => "a set",
            Value::List(_) => "a list",
            Value::Lambda(_) => "a function",
            Value::PrimOp(_) => "a built-in function",
            Value::PrimOpApp(_) => "a partially applied built-in function",
            Value::Thunk(_) => "a thunk",
        }
    }

    /// The name `builtins.typeOf` returns.
    pub fn type_of(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Path(_) => "path",
            Value::Attrs(_) => "set",
            Value::List(_) => "list",
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => "lambda",
            Value::Thunk(_) => "thunk",
        }
    }

    pub fn string(text: impl Into<Vec<u8>>) -> Value {
        Value::String(NixString::new(text))
    }

    pub fn path(path: impl Into<String>) -> Value {
        Value::Path(Rc::new(path.into()))
    }

    /// A list value; every empty list shares one allocation (as Nix shares its empty list).
    pub fn list(items: Vec<Value>) -> Value {
        if items.is_empty() {
            return EMPTY_LIST.with(|empty| Value::List(empty.clone()));
        }
        Value::List(Rc::new(items))
    }

    /// A set value; every empty set shares one allocation.
    pub fn attrs(attrs: Attrs) -> Value {
        if attrs.is_empty() {
            return EMPTY_ATTRS.with(|empty| Value::Attrs(empty.clone()));
        }
        Value::Attrs(Rc::new(attrs))
    }

    pub fn is_function(&self) -> bool {
        matches!(
            self,
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_)
        )
    }

    /// Whether two values are the same heap object (Nix's pointer-equality shortcut, which it
    /// applies to elements of lists and sets: two elements naming the same value cell compare
    /// equal even when they are functions). A primop is one static object in kiln but a fresh
    /// cell in Nix each time `builtins.x` is evaluated, so primops never count as the same
    /// object here (`[ builtins.add ] == [ builtins.add ]` is false, as in Nix).
    pub fn same_object(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Thunk(a), Value::Thunk(b)) => Rc::ptr_eq(&a.0, &b.0),
            (Value::Attrs(a), Value::Attrs(b)) => Rc::ptr_eq(a, b),
            (Value::List(a), Value::List(b)) => Rc::ptr_eq(a, b),
            // Closures made from one unbound slot are one function (see `Slots`).
            (Value::Lambda(a), Value::Lambda(b)) => {
                Rc::ptr_eq(a, b)
                    || (Rc::ptr_eq(&a.lambda, &b.lambda) && Rc::ptr_eq(&a.env.0, &b.env.0))
            }
            (Value::PrimOpApp(a), Value::PrimOpApp(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Path(p) => write!(f, "{p}"),
            Value::Attrs(a) => f.debug_map().entries(a.iter()).finish(),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Lambda(_) => write!(f, "<LAMBDA>"),
            Value::PrimOp(b) => write!(f, "<PRIMOP {}>", b.name),
            Value::PrimOpApp(_) => write!(f, "<PRIMOP-APP>"),
            Value::Thunk(_) => write!(f, "<CODE>"),
        }
    }
}

thread_local! {
    static EMPTY_LIST: Rc<Vec<Value>> = Rc::new(Vec::new());
    static EMPTY_ATTRS: Rc<Attrs> = Rc::new(Attrs::new());
}

/// What `NixString::context` lends for a string without context.
static EMPTY_CONTEXT: Context = Context::new();

/// A lambda together with the environment it closes over.
pub struct Closure {
    pub lambda: Rc<Lambda>,
    pub env: Env,
    /// Made for a lazy position (an attribute, list element or binding) and not called yet.
    /// Nix puts a thunk there, so its non-strict printing shows `<CODE>` for it; kiln builds
    /// the closure at once (cheaper) and remembers this only for printing.
    pub unforced: Cell<bool>,
}

/// A builtin applied to fewer arguments than its arity.
pub struct PrimOpApp {
    pub builtin: &'static Builtin,
    pub args: Vec<Value>,
}

/// One frame of the environment chain: the slots a `let`, `rec`, lambda call or `with`
/// creates, and the enclosing frame.
pub struct EnvFrame {
    pub(crate) slots: RefCell<Slots>,
    pub(crate) parent: Option<Env>,
}

/// The slots of a frame; one-slot frames (most lambda calls, `with`) need no second
/// allocation.
///
/// A `let` or `rec` frame keeps the thunks and functions it makes for its own bindings
/// *unbound* until a binding is first read (`lazy` has a bit for each such slot below 64): an
/// unbound thunk holds a placeholder environment and a function only its lambda, so the frame
/// does not own a reference to itself. Reading the slot binds it: the thunk gets this frame
/// as its environment (once), and a function is made afresh as a closure over this frame on
/// every read (two such closures are the same object for `Value::same_object`). Without
/// this, every `let` binding a function, or a binding never read, would make a reference
/// cycle that keeps the frame and all it reaches alive for the rest of the evaluation.
pub(crate) enum Slots {
    One(Value),
    Many { values: Vec<Value>, lazy: u64 },
}

/// Slots from this index on are never unbound (their bit would not fit in `Slots::Many::lazy`).
pub(crate) const LAZY_SLOTS: u32 = 64;

impl Slots {
    #[inline]
    fn set(&mut self, slot: usize, value: Value) {
        match self {
            Slots::One(v) => *v = value,
            Slots::Many { values, lazy } => {
                if slot < LAZY_SLOTS as usize {
                    *lazy &= !(1u64 << slot);
                }
                values[slot] = value;
            }
        }
    }
}

/// A function about to be called: a value, or a closure over an unbound slot's function
/// that lives only for the call (see `Env::get_callee`).
pub(crate) enum Callee {
    Value(Value),
    Closure(Closure),
}

/// A shared environment frame.
#[derive(Clone)]
pub struct Env(pub(crate) Rc<EnvFrame>);

impl Env {
    pub fn new(slots: Vec<Value>, parent: Option<Env>) -> Env {
        Env(Rc::new(EnvFrame {
            slots: RefCell::new(Slots::Many {
                values: slots,
                lazy: 0,
            }),
            parent,
        }))
    }

    /// A frame with exactly one slot.
    pub fn single(value: Value, parent: Option<Env>) -> Env {
        Env(Rc::new(EnvFrame {
            slots: RefCell::new(Slots::One(value)),
            parent,
        }))
    }

    /// The frame `depth` levels up (0 = this one). Lowering proves the depth exists.
    #[inline]
    pub(crate) fn ancestor(&self, depth: u32) -> &Env {
        let mut env = self;
        for _ in 0..depth {
            env = match &env.0.parent {
                Some(parent) => parent,
                // Lowering resolved this depth against the scope chain it built, which is the
                // chain the evaluator builds at run time.
                None => unreachable!("environment chain shorter than its lowering"),
            };
        }
        env
    }

    /// The value of a slot `depth` frames up, bound to its frame if it was unbound.
    #[inline]
    pub(crate) fn get(&self, depth: u32, slot: u32) -> Value {
        self.read(depth, slot, false)
    }

    /// As `get`, for a read that forces the value (a variable evaluated, not passed on
    /// lazily): a function read so counts as forced from then on (see `Closure::unforced`).
    #[inline]
    pub(crate) fn get_forced(&self, depth: u32, slot: u32) -> Value {
        self.read(depth, slot, true)
    }

    /// `get` (`forced` false) and `get_forced` (true).
    #[inline]
    fn read(&self, depth: u32, slot: u32, forced: bool) -> Value {
        let frame = self.ancestor(depth);
        let slots = frame.0.slots.borrow();
        match &*slots {
            Slots::One(v) => v.clone(),
            Slots::Many { values, lazy } => {
                if slot < LAZY_SLOTS && lazy & (1u64 << slot) != 0 {
                    drop(slots);
                    return frame.bind_slot(slot, forced);
                }
                values[slot as usize].clone()
            }
        }
    }

    /// As `get_forced`, for a variable about to be called: a function in an unbound slot
    /// comes as a closure to call in place, with no shared closure made for it.
    #[inline]
    pub(crate) fn get_callee(&self, depth: u32, slot: u32) -> Callee {
        let frame = self.ancestor(depth);
        let slots = frame.0.slots.borrow();
        match &*slots {
            Slots::One(v) => Callee::Value(v.clone()),
            Slots::Many { values, lazy } => {
                if slot < LAZY_SLOTS && lazy & (1u64 << slot) != 0 {
                    if let Value::Lambda(template) = &values[slot as usize] {
                        template.unforced.set(false);
                        return Callee::Closure(Closure {
                            lambda: template.lambda.clone(),
                            env: frame.clone(),
                            unforced: Cell::new(false),
                        });
                    }
                    drop(slots);
                    return Callee::Value(frame.bind_slot(slot, true));
                }
                Callee::Value(values[slot as usize].clone())
            }
        }
    }

    /// Binds an unbound slot of this frame (see `Slots`) and returns its value.
    #[inline(never)]
    fn bind_slot(&self, slot: u32, forced: bool) -> Value {
        let mut slots = self.0.slots.borrow_mut();
        let Slots::Many { values, lazy } = &mut *slots else {
            unreachable!("only many-slot frames have unbound slots")
        };
        match &values[slot as usize] {
            Value::Lambda(template) => {
                if forced {
                    template.unforced.set(false);
                }
                Value::Lambda(Rc::new(Closure {
                    lambda: template.lambda.clone(),
                    env: self.clone(),
                    unforced: Cell::new(template.unforced.get()),
                }))
            }
            Value::Thunk(thunk) => {
                *lazy &= !(1u64 << slot);
                let thunk = thunk.clone();
                drop(slots);
                // Unread until now, so still suspended over the placeholder (or, for a second
                // slot aliasing the same binding, already bound to this frame).
                let state = thunk.replace_state(ThunkState::Blackhole(Span::default()));
                match state {
                    ThunkState::Suspended(expr, _) => {
                        thunk.set_state(ThunkState::Suspended(expr, self.clone()))
                    }
                    other => thunk.set_state(other),
                }
                Value::Thunk(thunk)
            }
            other => {
                *lazy &= !(1u64 << slot);
                other.clone()
            }
        }
    }

    /// The value of a slot of this frame as stored, unbound or not (to copy it into another
    /// slot of the same frame with `set_raw`).
    pub(crate) fn get_raw(&self, slot: u32) -> (Value, bool) {
        match &*self.0.slots.borrow() {
            Slots::One(v) => (v.clone(), false),
            Slots::Many { values, lazy } => (
                values[slot as usize].clone(),
                slot < LAZY_SLOTS && lazy & (1u64 << slot) != 0,
            ),
        }
    }

    pub(crate) fn set(&self, slot: u32, value: Value) {
        self.0.slots.borrow_mut().set(slot as usize, value);
    }

    /// Sets a slot, unbound if `unbound` (the value a thunk over a placeholder environment or
    /// a function template, see `Slots`; only slots below `LAZY_SLOTS` of a many-slot frame).
    pub(crate) fn set_raw(&self, slot: u32, value: Value, unbound: bool) {
        let mut slots = self.0.slots.borrow_mut();
        slots.set(slot as usize, value);
        if unbound {
            match &mut *slots {
                Slots::Many { lazy, .. } if slot < LAZY_SLOTS => *lazy |= 1u64 << slot,
                // Callers only leave slots with a bit unbound.
                _ => unreachable!("an unbound value in a slot without a bit"),
            }
        }
    }
}

/// A function with the call site of a builtin that applies it lazily to many arguments
/// (`map f`, `genList f`, `mapAttrs f`), shared by all the thunks it makes.
pub struct LazyCall {
    pub function: Value,
    pub span: Span,
}

/// A native suspended computation (lazy results of builtins).
pub type NativeThunk = Box<dyn FnOnce(&Evaluator) -> Result<Value, EvalError>>;

/// The state of a thunk.
pub enum ThunkState {
    /// IR to evaluate in an environment.
    Suspended(ExprRef, Env),
    /// A function application deferred until needed (`map f xs` elements): the shared
    /// function and call site, and this element's argument.
    Apply(Rc<LazyCall>, Value),
    /// `f a b` deferred (`mapAttrs f`, `zipAttrsWith f` values).
    Apply2(Rc<LazyCall>, Box<[Value; 2]>),
    /// A native computation.
    Native(NativeThunk),
    /// Being evaluated: forcing it again is infinite recursion. Holds where it was forced.
    Blackhole(Span),
    Done(Value),
}

/// A suspended computation shared by everyone holding it; evaluated at most once.
///
/// The state sits in a `Cell` (no borrow flag, so a thunk takes 48 bytes): readers take the
/// state out, look at it and put it back, which no other code can observe in between.
#[derive(Clone)]
pub struct Thunk(pub(crate) Rc<Cell<ThunkState>>);

impl Thunk {
    fn from_state(state: ThunkState) -> Thunk {
        Thunk(Rc::new(Cell::new(state)))
    }

    pub fn suspended(expr: ExprRef, env: Env) -> Thunk {
        Thunk::from_state(ThunkState::Suspended(expr, env))
    }

    pub fn apply(call: Rc<LazyCall>, argument: Value) -> Thunk {
        Thunk::from_state(ThunkState::Apply(call, argument))
    }

    pub fn apply2(call: Rc<LazyCall>, first: Value, second: Value) -> Thunk {
        Thunk::from_state(ThunkState::Apply2(call, Box::new([first, second])))
    }

    pub fn native(f: NativeThunk) -> Thunk {
        Thunk::from_state(ThunkState::Native(f))
    }

    pub fn done(value: Value) -> Thunk {
        Thunk::from_state(ThunkState::Done(value))
    }

    /// Replaces the state, returning the previous one.
    pub(crate) fn replace_state(&self, state: ThunkState) -> ThunkState {
        self.0.replace(state)
    }

    /// Sets the state, dropping the previous one. The previous state is almost always the
    /// blackhole a reader left (which owns nothing), so its drop is skipped inline.
    #[inline]
    pub(crate) fn set_state(&self, state: ThunkState) {
        let previous = self.0.replace(state);
        if let ThunkState::Blackhole(_) = previous {
            std::mem::forget(previous);
        }
    }

    /// Sets the value of the thunk (used to close the `builtins.builtins` loop).
    pub(crate) fn set_value(&self, value: Value) {
        self.set_state(ThunkState::Done(value));
    }

    /// The value if already evaluated.
    pub fn value(&self) -> Option<Value> {
        let state = self.replace_state(ThunkState::Blackhole(Span::default()));
        let value = match &state {
            ThunkState::Done(v) => Some(v.clone()),
            _ => None,
        };
        self.set_state(state);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::attrs::Entries;
    use super::string::StringData;
    use super::*;

    fn names(a: &Attrs) -> Vec<&'static str> {
        a.names().map(|s| s.as_str()).collect()
    }

    #[test]
    fn attrs_stay_sorted_and_update_merges() {
        let s = Symbol::intern;
        let a = Attrs::from_unsorted(vec![
            (s("b"), Value::Int(1)),
            (s("a"), Value::Int(2)),
            (s("b"), Value::Int(3)),
        ]);
        assert_eq!(names(&a), ["a", "b"]);
        assert!(matches!(a.get(s("b")), Some(Value::Int(1))));
        let b = Attrs::from_unsorted(vec![(s("c"), Value::Int(4)), (s("a"), Value::Int(5))]);
        let merged = Attrs::update(&Rc::new(a), &b);
        assert_eq!(names(&merged), ["a", "b", "c"]);
        assert!(matches!(merged.get(s("a")), Some(Value::Int(5))));
        assert!(merged.get(s("zz")).is_none());
    }

    #[test]
    fn small_updates_of_big_sets_are_layered_and_behave_as_merges() {
        let s = Symbol::intern;
        let names: Vec<String> = (0..1000).map(|i| format!("n{i:04}")).collect();
        let big = Rc::new(Attrs::from_unsorted(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (s(n), Value::Int(i as i64)))
                .collect(),
        ));
        let mut current = big.clone();
        let mut expected: std::collections::BTreeMap<String, i64> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as i64))
            .collect();
        // Overlays replacing one attribute and adding one, many times over.
        for round in 0..20i64 {
            let replaced = format!("n{:04}", round * 3);
            let added = format!("extra{round}");
            let overlay = Attrs::from_unsorted(vec![
                (s(&replaced), Value::Int(1000 + round)),
                (s(&added), Value::Int(-round)),
            ]);
            expected.insert(replaced, 1000 + round);
            expected.insert(added, -round);
            current = Rc::new(Attrs::update(&current, &overlay));
            assert_eq!(current.len(), expected.len());
            let got: Vec<(String, i64)> = current
                .iter()
                .map(|(k, v)| match v {
                    Value::Int(i) => (k.as_str().to_string(), *i),
                    _ => panic!("an int"),
                })
                .collect();
            let want: Vec<(String, i64)> = expected.iter().map(|(k, v)| (k.clone(), *v)).collect();
            assert_eq!(got, want, "round {round}");
            assert_eq!(current.iter().len(), expected.len());
            for (k, v) in &expected {
                assert!(matches!(current.get(s(k)), Some(Value::Int(i)) if i == v));
            }
        }
        assert!(
            matches!(current.entries, Entries::Layered(_)),
            "small overlays share the base"
        );
        // Inserting into a layered set flattens it.
        let mut flat = (*current).clone();
        flat.insert(s("zzz"), Value::Null);
        assert_eq!(flat.len(), expected.len() + 1);
        assert!(matches!(flat.entries, Entries::Flat(_)));
    }

    #[test]
    fn context_encoding_round_trips() {
        for e in [
            ContextElem::Plain("/nix/store/x".into()),
            ContextElem::AllOutputs("/nix/store/y.drv".into()),
            ContextElem::Output {
                drv: "/nix/store/y.drv".into(),
                output: "out".into(),
            },
        ] {
            assert_eq!(ContextElem::decode(&e.encode()), e);
        }
    }

    #[test]
    fn values_are_small() {
        assert!(std::mem::size_of::<Value>() <= 16);
        // An attribute: a thin symbol and a value.
        assert!(std::mem::size_of::<(Symbol, Value)>() <= 24);
        // Text pointer and length plus one pointer for the (usually absent) context.
        assert!(std::mem::size_of::<StringData>() <= 24);
        // Flat or layered, a set's header stays three words plus its origin.
        assert!(std::mem::size_of::<Attrs>() <= 40);
        // With the two reference counts a thunk fills a 48-byte allocation.
        assert!(std::mem::size_of::<Cell<ThunkState>>() <= 32);
    }

    #[test]
    fn strings_keep_their_context() {
        let plain = NixString::new("a");
        assert!(!plain.has_context());
        assert!(plain.context().is_empty());
        let elem = ContextElem::Plain("/nix/store/x".into());
        let with = NixString::with_context("b", Context::from([elem.clone()]));
        assert!(with.has_context());
        assert_eq!(with.context().iter().collect::<Vec<_>>(), [&elem]);
        let emptied = NixString::with_context("c", Context::new());
        assert!(!emptied.has_context());
    }
}
