//! Freeing a frame caught in reference cycles of its own making, when its scope ends.
//!
//! Values are reference-counted, so a frame that its own thunks refer to (a `let` binding
//! read, handed to a function that dropped it, and never forced; a set of such thunks) keeps
//! itself alive after its scope has ended. `Env::release`, called as a `let` body or a call
//! with formals returns, looks at what the frame's slots reach (a bounded search that does not
//! go up to enclosing frames) and counts the references each object found gets from inside
//! that part of the graph. An object with more references than that is held from outside
//! (the result being returned, another frame, the Rust stack); everything it reaches is live.
//! If the frame is referred to only from inside and is not reachable from anything live, no
//! one can reach it any more, and emptying its slots breaks the cycles. References the search
//! cannot see (a native thunk's captures, a thunk being evaluated, an enclosing frame) only
//! make objects look held from outside, so the frame is kept when in doubt.
use super::attrs::Entries;
use super::*;
use kiln_lang::symbol::BuildFxHasher;
use std::collections::HashMap;

/// How many objects `Env::release` looks at before it gives up and keeps the frame.
const SEARCH_BUDGET: usize = 64;

/// An object of the graph the search found, held so its address stays unique meanwhile.
enum Handle {
    Thunk(Thunk),
    Closure(Rc<Closure>),
    Attrs(Rc<Attrs>),
    List(Rc<Vec<Value>>),
    App(Rc<PrimOpApp>),
    Call(Rc<LazyCall>),
    Env(Env),
}

struct Node {
    handle: Handle,
    /// The object's reference count when first found (before the search held it).
    strong: usize,
    /// References to it from the slots searched and from objects found.
    internal: usize,
}

/// The part of the graph below one frame's slots.
struct Search<'f> {
    frame: &'f Env,
    /// References to `frame` found.
    frame_internal: usize,
    nodes: Vec<Node>,
    index: HashMap<usize, u32, BuildFxHasher>,
    /// (from, to) between nodes; `None` as `from` is the frame's slots.
    edges: Vec<(Option<u32>, u32)>,
    /// Nodes whose references are still to be followed.
    pending: Vec<u32>,
}

impl Env {
    /// Gives up a handle to a frame whose scope has ended, first emptying its slots if
    /// nothing outside the frame's own objects can reach it any more (see this module).
    #[inline]
    pub(crate) fn release(self) {
        // Most frames are held by nothing else by now, and are simply dropped.
        if Rc::strong_count(&self.0) != 1 {
            self.release_shared();
        }
    }

    /// `release` of a frame something else still holds.
    #[inline(never)]
    fn release_shared(self) {
        let count = Rc::strong_count(&self.0);
        let Ok(slots) = self.0.slots.try_borrow() else {
            return;
        };
        let Slots::Many { values, .. } = &*slots else {
            return;
        };
        // Cheap test first: the frame's other holders must all be the thunks and functions
        // of its own slots (deeper cycles are left alone).
        let direct: usize = values.iter().map(|v| direct_reference(v, &self)).sum();
        if direct + 1 != count {
            return;
        }
        let mut search = Search {
            frame: &self,
            frame_internal: 0,
            nodes: Vec::new(),
            index: HashMap::default(),
            edges: Vec::new(),
            pending: Vec::new(),
        };
        for value in values.iter() {
            if search.value(None, value).is_none() {
                return;
            }
        }
        drop(slots);
        if search.run().is_none() || search.frame_internal + 1 != count || search.frame_is_live() {
            return;
        }
        drop(search);
        let emptied = match self.0.slots.try_borrow_mut() {
            Ok(mut slots) => match &mut *slots {
                Slots::Many { values, lazy } => {
                    *lazy = 0;
                    std::mem::take(values)
                }
                Slots::One(_) => return,
            },
            Err(_) => return,
        };
        // Dropped with the slots no longer borrowed: the frame's thunks and functions let go
        // of it, and `self` is the last handle.
        drop(emptied);
    }
}

/// 1 if `value` is a thunk suspended over `frame` or a function closing over it.
fn direct_reference(value: &Value, frame: &Env) -> usize {
    match value {
        Value::Lambda(closure) => usize::from(Rc::ptr_eq(&closure.env.0, &frame.0)),
        Value::Thunk(thunk) => {
            let state = thunk.replace_state(ThunkState::Blackhole(Span::default()));
            let found = match &state {
                ThunkState::Suspended(_, env) => usize::from(Rc::ptr_eq(&env.0, &frame.0)),
                _ => 0,
            };
            thunk.set_state(state);
            found
        }
        _ => 0,
    }
}

impl Search<'_> {
    /// Records a reference from `from` to the object `value` is, if it is one. `None` when
    /// the budget is spent.
    fn value(&mut self, from: Option<u32>, value: &Value) -> Option<()> {
        let (address, strong, handle) = match value {
            Value::Null
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::String(_)
            | Value::Path(_)
            | Value::PrimOp(_) => return Some(()),
            Value::Thunk(t) => (
                Rc::as_ptr(&t.0) as usize,
                Rc::strong_count(&t.0),
                Handle::Thunk(t.clone()),
            ),
            Value::Lambda(c) => (
                Rc::as_ptr(c) as usize,
                Rc::strong_count(c),
                Handle::Closure(c.clone()),
            ),
            Value::Attrs(a) => (
                Rc::as_ptr(a) as usize,
                Rc::strong_count(a),
                Handle::Attrs(a.clone()),
            ),
            Value::List(l) => (
                Rc::as_ptr(l) as usize,
                Rc::strong_count(l),
                Handle::List(l.clone()),
            ),
            Value::PrimOpApp(p) => (
                Rc::as_ptr(p) as usize,
                Rc::strong_count(p),
                Handle::App(p.clone()),
            ),
        };
        // `strong` was read before the clone beside it.
        self.node(from, address, strong, handle)
    }

    fn env(&mut self, from: u32, env: &Env) -> Option<()> {
        if Rc::ptr_eq(&env.0, &self.frame.0) {
            self.frame_internal += 1;
            return Some(());
        }
        let address = Rc::as_ptr(&env.0) as usize;
        let strong = Rc::strong_count(&env.0);
        self.node(Some(from), address, strong, Handle::Env(env.clone()))
    }

    fn call(&mut self, from: u32, call: &Rc<LazyCall>) -> Option<()> {
        let address = Rc::as_ptr(call) as usize;
        let strong = Rc::strong_count(call);
        self.node(Some(from), address, strong, Handle::Call(call.clone()))
    }

    /// Records a reference to the object at `address` (with `strong` references before the
    /// search held it), adding it to the graph when new.
    fn node(
        &mut self,
        from: Option<u32>,
        address: usize,
        strong: usize,
        handle: Handle,
    ) -> Option<()> {
        let to = match self.index.get(&address) {
            Some(&to) => to,
            None => {
                if self.nodes.len() == SEARCH_BUDGET {
                    return None;
                }
                let to = self.nodes.len() as u32;
                self.nodes.push(Node {
                    handle,
                    strong,
                    internal: 0,
                });
                self.index.insert(address, to);
                self.pending.push(to);
                to
            }
        };
        self.nodes[to as usize].internal += 1;
        self.edges.push((from, to));
        Some(())
    }

    /// Follows the references of every node found, until none is left or the budget is spent.
    fn run(&mut self) -> Option<()> {
        while let Some(at) = self.pending.pop() {
            let handle = match &self.nodes[at as usize].handle {
                Handle::Thunk(t) => Handle::Thunk(t.clone()),
                Handle::Closure(c) => Handle::Closure(c.clone()),
                Handle::Attrs(a) => Handle::Attrs(a.clone()),
                Handle::List(l) => Handle::List(l.clone()),
                Handle::App(p) => Handle::App(p.clone()),
                Handle::Call(c) => Handle::Call(c.clone()),
                Handle::Env(e) => Handle::Env(e.clone()),
            };
            let from = Some(at);
            match &handle {
                Handle::Thunk(thunk) => {
                    let state = thunk.replace_state(ThunkState::Blackhole(Span::default()));
                    let found = match &state {
                        ThunkState::Suspended(_, env) => self.env(at, env),
                        ThunkState::Done(value) => self.value(from, value),
                        ThunkState::Apply(call, argument) => self
                            .call(at, call)
                            .and_then(|()| self.value(from, argument)),
                        ThunkState::Apply2(call, arguments) => self
                            .call(at, call)
                            .and_then(|()| self.value(from, &arguments[0]))
                            .and_then(|()| self.value(from, &arguments[1])),
                        // What a native thunk holds, or a thunk being evaluated, is out of
                        // sight: the objects look held from outside.
                        ThunkState::Native(_) | ThunkState::Blackhole(_) => Some(()),
                    };
                    thunk.set_state(state);
                    found?;
                }
                Handle::Closure(closure) => self.env(at, &closure.env)?,
                Handle::Attrs(attrs) => {
                    // A layered set shares its base: its entries are not the set's own.
                    let Entries::Flat(entries) = &attrs.entries else {
                        return None;
                    };
                    for (_, value) in entries {
                        self.value(from, value)?;
                    }
                }
                Handle::List(items) => {
                    for value in items.iter() {
                        self.value(from, value)?;
                    }
                }
                Handle::App(app) => {
                    for value in &app.args {
                        self.value(from, value)?;
                    }
                }
                Handle::Call(call) => self.value(from, &call.function)?,
                Handle::Env(env) => {
                    // The enclosing frame is not searched (it is out of sight), except for
                    // being `frame` itself.
                    if let Some(parent) = &env.0.parent {
                        if Rc::ptr_eq(&parent.0, &self.frame.0) {
                            self.frame_internal += 1;
                        }
                    }
                    let Ok(slots) = env.0.slots.try_borrow() else {
                        return None;
                    };
                    let values: &[Value] = match &*slots {
                        Slots::One(value) => std::slice::from_ref(value),
                        Slots::Many { values, .. } => values,
                    };
                    for value in values {
                        self.value(from, value)?;
                    }
                }
            }
        }
        Some(())
    }

    /// Whether `frame` is reachable from an object held from outside the graph searched.
    fn frame_is_live(&self) -> bool {
        let mut live: Vec<bool> = self
            .nodes
            .iter()
            .map(|node| node.strong > node.internal)
            .collect();
        let mut stack: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| live[i as usize])
            .collect();
        if stack.is_empty() {
            return false;
        }
        let mut successors: Vec<Vec<u32>> = vec![Vec::new(); self.nodes.len()];
        for &(from, to) in &self.edges {
            if let Some(from) = from {
                successors[from as usize].push(to);
            }
        }
        while let Some(at) = stack.pop() {
            for &next in &successors[at as usize] {
                if !live[next as usize] {
                    live[next as usize] = true;
                    stack.push(next);
                }
            }
        }
        // The frame is referred to by the live nodes' thunks and functions, or by frames
        // whose parent it is: find whether any live node holds it.
        self.nodes
            .iter()
            .zip(&live)
            .any(|(node, &live)| live && holds_frame(&node.handle, self.frame))
    }
}

/// Whether the object refers to `frame` directly (a thunk suspended over it, a function closing
/// over it, a frame inside it).
fn holds_frame(handle: &Handle, frame: &Env) -> bool {
    match handle {
        Handle::Thunk(thunk) => direct_reference(&Value::Thunk(thunk.clone()), frame) == 1,
        Handle::Closure(closure) => Rc::ptr_eq(&closure.env.0, &frame.0),
        Handle::Env(env) => env
            .0
            .parent
            .as_ref()
            .is_some_and(|parent| Rc::ptr_eq(&parent.0, &frame.0)),
        Handle::Attrs(_) | Handle::List(_) | Handle::App(_) | Handle::Call(_) => false,
    }
}
