//! Strings with context: `NixString` (bytes shared behind `Rc`, with the set of store objects
//! it refers to) and its `Context` of `ContextElem`s (plain paths, whole derivations, outputs).
//!
//! A Nix string is a sequence of bytes, not of characters: `readFile` of a binary file, or
//! `substring` through a multi-byte character, gives bytes that are not UTF-8, and they are
//! kept as they are (lengths and positions count bytes). Text is decoded only where kiln needs
//! a Rust `str` — attribute names, paths, messages — and there invalid sequences become
//! U+FFFD (`to_str_lossy`).
use super::*;
use std::borrow::Cow;

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

/// A string's context: a set of elements, kept as a sorted vector without duplicates. Most
/// contexts hold one element (a derivation output), for which a tree set would allocate a
/// whole node of several hundred bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Context(Vec<ContextElem>);

/// The context of most strings is empty; it then costs one pointer instead of a whole set.
pub(super) struct StringData {
    text: Box<[u8]>,
    context: Option<Box<Context>>,
}

/// Immutable string bytes with their context, shared by reference count.
#[derive(Clone)]
pub struct NixString(Rc<StringData>);

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

impl NixString {
    /// A string without context; takes `&str`, `String`, `&[u8]` or `Vec<u8>`.
    pub fn new(text: impl Into<Vec<u8>>) -> Self {
        Self::with_context(text, Context::new())
    }

    pub fn with_context(text: impl Into<Vec<u8>>, context: Context) -> Self {
        NixString(Rc::new(StringData {
            text: text.into().into_boxed_slice(),
            context: (!context.is_empty()).then(|| Box::new(context)),
        }))
    }

    /// The string's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.text
    }

    /// The length in bytes (what `builtins.stringLength` returns).
    pub fn len(&self) -> usize {
        self.0.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.text.is_empty()
    }

    /// The text, if the bytes are UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0.text).ok()
    }

    /// The text, with every invalid UTF-8 sequence replaced by U+FFFD; borrowed when the bytes
    /// are UTF-8 already.
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        // `from_utf8` checks the common case (short, valid, often ASCII: attribute names)
        // several times faster than `from_utf8_lossy`'s chunk iterator.
        match std::str::from_utf8(&self.0.text) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&self.0.text),
        }
    }

    pub fn context(&self) -> &Context {
        self.0.context.as_deref().unwrap_or(&EMPTY_CONTEXT)
    }

    pub fn has_context(&self) -> bool {
        self.0.context.is_some()
    }
}

/// The text as a message shows it: invalid UTF-8 sequences as U+FFFD.
impl fmt::Display for NixString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

impl fmt::Debug for NixString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}
