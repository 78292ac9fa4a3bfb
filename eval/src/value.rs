//! Runtime values: the `Value` enum and its parts (strings with context, attribute sets kept
//! sorted by name bytes, shared lists, closures, primop applications, thunks and environment
//! frames). Every variant is cheap to clone: heap parts sit behind `Rc`.
use crate::builtins::Builtin;
use crate::error::EvalError;
use crate::Evaluator;
use kiln_lang::ir::{AttrsExpr, ExprRef, Lambda};
use kiln_lang::{Span, Symbol};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

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

    pub fn string(text: impl Into<String>) -> Value {
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
            (Value::Lambda(a), Value::Lambda(b)) => Rc::ptr_eq(a, b),
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
            Value::String(s) => write!(f, "{:?}", s.as_str()),
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

/// One element of a string's context: what store objects the string refers to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContextElem {
    /// A plain store path (a source, a text file).
    Plain(String),
    /// An output of a derivation: (the `.drv` path, the output name).
    Output { drv: String, output: String },
    /// A derivation with all its outputs (`=path` in Nix's encoding).
    AllOutputs(String),
}

impl ContextElem {
    /// Nix's string encoding: `path`, `!out!path`, `=path`.
    pub fn encode(&self) -> String {
        match self {
            ContextElem::Plain(p) => p.clone(),
            ContextElem::Output { drv, output } => format!("!{output}!{drv}"),
            ContextElem::AllOutputs(p) => format!("={p}"),
        }
    }

    /// Parses Nix's encoding back.
    pub fn decode(s: &str) -> ContextElem {
        if let Some(rest) = s.strip_prefix('=') {
            return ContextElem::AllOutputs(rest.to_string());
        }
        if let Some(rest) = s.strip_prefix('!') {
            if let Some((output, drv)) = rest.split_once('!') {
                return ContextElem::Output {
                    drv: drv.to_string(),
                    output: output.to_string(),
                };
            }
        }
        ContextElem::Plain(s.to_string())
    }
}

/// A string's context: a set of elements, kept as a sorted vector without duplicates. Most
/// contexts hold one element (a derivation output), for which a tree set would allocate a
/// whole node of several hundred bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Context(Vec<ContextElem>);

impl Context {
    pub const fn new() -> Self {
        Context(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds an element; returns whether it was new.
    pub fn insert(&mut self, elem: ContextElem) -> bool {
        match self.0.binary_search(&elem) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, elem);
                true
            }
        }
    }

    pub fn contains(&self, elem: &ContextElem) -> bool {
        self.0.binary_search(elem).is_ok()
    }

    /// The elements in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ContextElem> {
        self.0.iter()
    }

    /// Keeps the elements for which `keep` holds.
    pub fn retain(&mut self, keep: impl FnMut(&ContextElem) -> bool) {
        self.0.retain(keep);
    }
}

impl Extend<ContextElem> for Context {
    fn extend<I: IntoIterator<Item = ContextElem>>(&mut self, items: I) {
        let before = self.0.len();
        self.0.extend(items);
        if self.0.len() != before {
            self.0.sort();
            self.0.dedup();
        }
    }
}

impl FromIterator<ContextElem> for Context {
    fn from_iter<I: IntoIterator<Item = ContextElem>>(items: I) -> Self {
        let mut context = Context::new();
        context.extend(items);
        context
    }
}

impl<const N: usize> From<[ContextElem; N]> for Context {
    fn from(items: [ContextElem; N]) -> Self {
        items.into_iter().collect()
    }
}

impl IntoIterator for Context {
    type Item = ContextElem;
    type IntoIter = std::vec::IntoIter<ContextElem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Context {
    type Item = &'a ContextElem;
    type IntoIter = std::slice::Iter<'a, ContextElem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The context of most strings is empty; it then costs one pointer instead of a whole set.
struct StringData {
    text: Box<str>,
    context: Option<Box<Context>>,
}

/// What `NixString::context` lends for a string without context.
static EMPTY_CONTEXT: Context = Context::new();

/// Immutable string text with its context, shared by reference count.
#[derive(Clone)]
pub struct NixString(Rc<StringData>);

impl NixString {
    pub fn new(text: impl Into<String>) -> Self {
        Self::with_context(text, Context::new())
    }

    pub fn with_context(text: impl Into<String>, context: Context) -> Self {
        NixString(Rc::new(StringData {
            text: text.into().into_boxed_str(),
            context: (!context.is_empty()).then(|| Box::new(context)),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    pub fn context(&self) -> &Context {
        self.0.context.as_deref().unwrap_or(&EMPTY_CONTEXT)
    }

    pub fn has_context(&self) -> bool {
        self.0.context.is_some()
    }
}

impl fmt::Debug for NixString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// An attribute set: entries sorted by the names' bytes, no duplicate names.
///
/// `big // small` (an overlay adding a few attributes to a package set) does not copy the big
/// set: the result is layered, the big set shared as its base under a small sorted delta that
/// wins. A delta is flattened into a new flat set once it grows past a sixteenth of its base,
/// so lookups stay two binary searches and a chain of overlays costs memory in proportion to
/// what each adds.
#[derive(Clone, Default)]
pub struct Attrs {
    entries: Entries,
    /// The source this set was built from, for attribute positions (`unsafeGetAttrPos`).
    origin: Option<AttrsOrigin>,
}

/// One attribute: its name and value.
type Entry = (Symbol, Value);

#[derive(Clone)]
enum Entries {
    Flat(Vec<(Symbol, Value)>),
    Layered(Rc<Layer>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Flat(Vec::new())
    }
}

/// `delta` over `base` (a flat set): `delta`'s entries win; `len` counts the names of both.
struct Layer {
    base: Rc<Attrs>,
    delta: Vec<(Symbol, Value)>,
    len: usize,
}

/// The entries of a set in name order (merging a layered set's delta into its base).
pub struct AttrsIter<'a> {
    base: std::slice::Iter<'a, (Symbol, Value)>,
    delta: std::iter::Peekable<std::slice::Iter<'a, (Symbol, Value)>>,
    remaining: usize,
}

impl<'a> Iterator for AttrsIter<'a> {
    type Item = (Symbol, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let next_base = self.base.as_slice().first();
            let item = match (next_base, self.delta.peek()) {
                (None, None) => return None,
                (Some(_), None) => self.base.next(),
                (None, Some(_)) => self.delta.next(),
                (Some(b), Some(d)) => match b.0.cmp(&d.0) {
                    std::cmp::Ordering::Less => self.base.next(),
                    std::cmp::Ordering::Greater => self.delta.next(),
                    std::cmp::Ordering::Equal => {
                        // Shadowed by the delta.
                        self.base.next();
                        continue;
                    }
                },
            };
            self.remaining = self.remaining.saturating_sub(1);
            return item.map(|(k, v)| (*k, v));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for AttrsIter<'_> {}

/// Where the names of a set were written.
#[derive(Clone)]
pub enum AttrsOrigin {
    /// A set literal.
    Literal(Rc<AttrsExpr>),
    /// A function's formals (`builtins.functionArgs`).
    Formals(Rc<Lambda>),
}

impl Attrs {
    pub fn new() -> Self {
        Self::default()
    }

    /// From entries already sorted by name with unique names (the caller proves it).
    pub fn from_sorted(entries: Vec<(Symbol, Value)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        Attrs {
            entries: Entries::Flat(entries),
            origin: None,
        }
    }

    /// From entries in any order; for a repeated name the first occurrence wins (as in
    /// `listToAttrs`).
    pub fn from_unsorted(mut entries: Vec<(Symbol, Value)>) -> Self {
        entries.sort_by_key(|entry| entry.0); // stable: the first occurrence stays first
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        Attrs::from_sorted(entries)
    }

    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Flat(entries) => entries.len(),
            Entries::Layered(layer) => layer.len,
        }
    }

    /// The source the set came from, if known.
    pub fn origin(&self) -> Option<&AttrsOrigin> {
        self.origin.as_ref()
    }

    /// Remembers the source the set came from (for attribute positions).
    pub fn set_origin(&mut self, origin: AttrsOrigin) {
        self.origin = Some(origin);
    }

    /// Where an attribute was defined, if the set came from a source that names it.
    pub fn position_of(&self, name: Symbol) -> Option<Span> {
        match self.origin.as_ref()? {
            AttrsOrigin::Literal(literal) => literal
                .statics
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.span),
            AttrsOrigin::Formals(lambda) => match &lambda.param {
                kiln_lang::ir::Param::Pattern { formals, .. } => {
                    formals.iter().find(|f| f.name == name).map(|f| f.span)
                }
                kiln_lang::ir::Param::Ident(_) => None,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, name: Symbol) -> Option<&Value> {
        match &self.entries {
            Entries::Flat(entries) => find(entries, name),
            Entries::Layered(layer) => find(&layer.delta, name).or_else(|| layer.base.get(name)),
        }
    }

    pub fn get_str(&self, name: &str) -> Option<&Value> {
        self.get(Symbol::intern(name))
    }

    pub fn contains(&self, name: Symbol) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> AttrsIter<'_> {
        let (base, delta): (&[Entry], &[Entry]) = match &self.entries {
            Entries::Flat(entries) => (entries, &[]),
            Entries::Layered(layer) => (layer.base.flat_entries(), &layer.delta),
        };
        AttrsIter {
            base: base.iter(),
            delta: delta.iter().peekable(),
            remaining: self.len(),
        }
    }

    pub fn names(&self) -> impl ExactSizeIterator<Item = Symbol> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// The entries of a flat set (a base is always flat).
    fn flat_entries(&self) -> &[(Symbol, Value)] {
        match &self.entries {
            Entries::Flat(entries) => entries,
            // Only a layer's base is read here, and `update` always makes that base flat.
            Entries::Layered(_) => unreachable!("a layer's base is flat"),
        }
    }

    pub fn into_entries(self) -> Vec<(Symbol, Value)> {
        match self.entries {
            Entries::Flat(entries) => entries,
            Entries::Layered(_) => self.iter().map(|(k, v)| (k, v.clone())).collect(),
        }
    }

    /// Inserts or replaces one attribute, keeping the order.
    pub fn insert(&mut self, name: Symbol, value: Value) {
        if let Entries::Layered(_) = self.entries {
            let flat = self.iter().map(|(k, v)| (k, v.clone())).collect();
            self.entries = Entries::Flat(flat);
        }
        let Entries::Flat(entries) = &mut self.entries else {
            unreachable!("made flat above")
        };
        match entries.binary_search_by(|(k, _)| k.cmp(&name)) {
            Ok(i) => entries[i].1 = value,
            Err(i) => entries.insert(i, (name, value)),
        }
    }

    /// `a // b`: `b`'s attributes win. A few attributes over a big set make a layered set
    /// sharing the big one; otherwise a linear merge.
    pub fn update(a: &Rc<Attrs>, b: &Attrs) -> Attrs {
        let (base, delta): (Rc<Attrs>, &[Entry]) = match &a.entries {
            Entries::Flat(_) => (a.clone(), &[]),
            Entries::Layered(layer) => (layer.base.clone(), &layer.delta),
        };
        if (delta.len() + b.len()) * 16 < base.len() {
            // Merge the old delta with `b` (`b` wins), counting the names new to the base.
            let mut merged: Vec<(Symbol, Value)> = Vec::with_capacity(delta.len() + b.len());
            let mut old = delta.iter().peekable();
            for (name, value) in b.iter() {
                while let Some(entry) = old.next_if(|entry| entry.0 < name) {
                    merged.push(entry.clone());
                }
                old.next_if(|entry| entry.0 == name);
                merged.push((name, value.clone()));
            }
            merged.extend(old.cloned());
            let added = merged
                .iter()
                .filter(|(name, _)| base.get(*name).is_none())
                .count();
            return Attrs {
                entries: Entries::Layered(Rc::new(Layer {
                    len: base.len() + added,
                    base,
                    delta: merged,
                })),
                origin: None,
            };
        }
        let mut out = Vec::with_capacity(a.len() + b.len());
        let mut left = a.iter().peekable();
        for (name, value) in b.iter() {
            while let Some((k, v)) = left.next_if(|(k, _)| *k < name) {
                out.push((k, v.clone()));
            }
            left.next_if(|(k, _)| *k == name);
            out.push((name, value.clone()));
        }
        out.extend(left.map(|(k, v)| (k, v.clone())));
        Attrs::from_sorted(out)
    }
}

/// Binary search of sorted entries.
fn find(entries: &[(Symbol, Value)], name: Symbol) -> Option<&Value> {
    entries
        .binary_search_by(|(k, _)| k.cmp(&name))
        .ok()
        .map(|i| &entries[i].1)
}

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
pub(crate) enum Slots {
    One(Value),
    Many(Vec<Value>),
}

impl Slots {
    #[inline]
    pub(crate) fn get(&self, slot: usize) -> &Value {
        match self {
            Slots::One(v) => v,
            Slots::Many(values) => &values[slot],
        }
    }

    #[inline]
    fn set(&mut self, slot: usize, value: Value) {
        match self {
            Slots::One(v) => *v = value,
            Slots::Many(values) => values[slot] = value,
        }
    }

    pub(crate) fn as_slice(&self) -> &[Value] {
        match self {
            Slots::One(v) => std::slice::from_ref(v),
            Slots::Many(values) => values,
        }
    }
}

/// A shared environment frame.
#[derive(Clone)]
pub struct Env(pub(crate) Rc<EnvFrame>);

impl Env {
    pub fn new(slots: Vec<Value>, parent: Option<Env>) -> Env {
        Env(Rc::new(EnvFrame {
            slots: RefCell::new(Slots::Many(slots)),
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

    pub(crate) fn get(&self, depth: u32, slot: u32) -> Value {
        self.ancestor(depth)
            .0
            .slots
            .borrow()
            .get(slot as usize)
            .clone()
    }

    pub(crate) fn set(&self, slot: u32, value: Value) {
        self.0.slots.borrow_mut().set(slot as usize, value);
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

    /// Sets the state (dropping the previous one).
    pub(crate) fn set_state(&self, state: ThunkState) {
        self.0.set(state);
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
