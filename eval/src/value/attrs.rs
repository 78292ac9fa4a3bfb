//! Attribute sets: entries kept sorted by the bytes of their names (the order Nix shows), with
//! small updates of big sets kept as layers over a shared base, so `//` on a large set does
//! not copy it; and where a set came from, for error positions.
use super::*;

/// An attribute set: entries sorted by the names' bytes, no duplicate names.
///
/// `big // small` (an overlay adding a few attributes to a package set) does not copy the big
/// set: the result is layered, the big set shared as its base under a small sorted delta that
/// wins. A delta is flattened into a new flat set once it grows past a sixteenth of its base,
/// so lookups stay two binary searches and a chain of overlays costs memory in proportion to
/// what each adds.
#[derive(Clone, Default)]
pub struct Attrs {
    pub(super) entries: Entries,
    /// The source this set was built from, for attribute positions (`unsafeGetAttrPos`).
    origin: Option<AttrsOrigin>,
}

/// One attribute: its name and value.
pub(super) type Entry = (Symbol, Value);

#[derive(Clone)]
pub(super) enum Entries {
    Flat(Vec<(Symbol, Value)>),
    Layered(Rc<Layer>),
}

/// `delta` over `base` (a flat set): `delta`'s entries win; `len` counts the names of both.
pub(super) struct Layer {
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

/// Where the names of a set were written.
#[derive(Clone)]
pub enum AttrsOrigin {
    /// A set literal.
    Literal(Rc<AttrsExpr>),
    /// A function's formals (`builtins.functionArgs`).
    Formals(Rc<Lambda>),
}

/// Sets up to this size are searched by comparing symbols (pointers), not names.
const LINEAR_SEARCH_MAX: usize = 8;

/// The value of `name` in sorted entries: a scan comparing symbols for small sets (most sets:
/// option declarations, function arguments, `{ name, value }` pairs), a binary search comparing
/// names for the others.
pub(super) fn find(entries: &[(Symbol, Value)], name: Symbol) -> Option<&Value> {
    if entries.len() <= LINEAR_SEARCH_MAX {
        return entries.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    }
    // Text order is the entries' order unless a name that is not UTF-8 exists; a match found
    // by it is the symbol itself either way, so only a miss may need the byte order.
    let found = match entries.binary_search_by(|(k, _)| k.cmp_text(name)) {
        Err(_) if !Symbol::all_utf8() => entries.binary_search_by(|(k, _)| k.cmp(&name)),
        found => found,
    };
    found.ok().map(|i| &entries[i].1)
}

/// `find`, remembering the index found in `hint`.
#[inline(never)]
fn find_and_hint<'a>(
    entries: &'a [(Symbol, Value)],
    name: Symbol,
    hint: &LookupHint,
) -> Option<&'a Value> {
    let index = if entries.len() <= LINEAR_SEARCH_MAX {
        entries.iter().position(|(k, _)| *k == name)
    } else {
        match entries.binary_search_by(|(k, _)| k.cmp_text(name)) {
            Err(_) if !Symbol::all_utf8() => entries.binary_search_by(|(k, _)| k.cmp(&name)),
            found => found,
        }
        .ok()
    }?;
    hint.set(index);
    Some(&entries[index].1)
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Flat(Vec::new())
    }
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

    /// `get` from a place in the code that remembers where its last lookup found the name
    /// (see `LookupHint`): that index is tried first and updated when the name is found
    /// elsewhere.
    #[inline]
    pub fn get_hinted(&self, name: Symbol, hint: &LookupHint) -> Option<&Value> {
        match &self.entries {
            Entries::Flat(entries) => match entries.get(hint.get()) {
                Some((found, value)) if *found == name => Some(value),
                _ => find_and_hint(entries, name, hint),
            },
            Entries::Layered(layer) => {
                find(&layer.delta, name).or_else(|| layer.base.get_hinted(name, hint))
            }
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
