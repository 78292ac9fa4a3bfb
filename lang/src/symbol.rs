//! Interned identifiers and attribute names. A `Symbol` is a pointer to a string leaked into a
//! process-wide table, so equality and hashing are pointer operations while ordering and
//! display still see the bytes (attribute sets are kept in byte order of their names).
//!
//! Names are bytes, as Nix strings are, and are looked up by their bytes, so the evaluator
//! finds the symbol of a string without checking it is UTF-8 first. A symbol's text
//! (`as_str`) is UTF-8: for a name that is not, it is the name with U+FFFD for each invalid
//! sequence, in an allocation of its own (so the symbol stays distinct from the UTF-8 name of
//! that text and from other names that read the same), and `as_bytes` gives the name's bytes.
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Mutex, OnceLock};

/// An interned name. Two symbols are equal iff they were interned from equal bytes.
///
/// A thin pointer (to the name's leaked text reference), so an attribute, a name and its
/// value, takes three words rather than four.
#[derive(Clone, Copy)]
pub struct Symbol(&'static &'static str);

/// A small, fast, non-cryptographic hasher (FxHash's multiply-rotate) for symbol tables.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }
}

/// `BuildHasher` for `FxHasher`.
pub type BuildFxHasher = std::hash::BuildHasherDefault<FxHasher>;

/// A table entry: a UTF-8 name, hashed and compared as bytes so that the tables can be
/// searched with a byte slice (a slice that is not UTF-8 finds nothing there).
#[derive(Clone, Copy)]
struct Name(&'static &'static str);

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// As `Borrow` requires: the same hash and equality as the bytes.
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes() == other.0.as_bytes()
    }
}

impl Eq for Name {}

type NameTable = HashSet<Name, BuildFxHasher>;

thread_local! {
    /// The symbols this thread has seen, so the common case takes no lock.
    static SEEN: std::cell::RefCell<NameTable> = std::cell::RefCell::new(HashSet::default());
}

fn table() -> &'static Mutex<NameTable> {
    static TABLE: OnceLock<Mutex<NameTable>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashSet::default()))
}

/// Whether a name that is not UTF-8 was ever interned; until then a symbol's bytes are its
/// text's, with no lookup.
static NON_UTF8_NAMES: AtomicBool = AtomicBool::new(false);

/// The names that are not UTF-8, apart from the others (rare, so behind one lock).
#[derive(Default)]
struct NonUtf8Names {
    /// The name's bytes → its symbol's text.
    by_bytes: HashMap<&'static [u8], &'static &'static str>,
    /// The address of a symbol's text → the name's bytes.
    by_text: HashMap<usize, &'static [u8]>,
}

fn non_utf8_names() -> std::sync::MutexGuard<'static, NonUtf8Names> {
    static NAMES: OnceLock<Mutex<NonUtf8Names>> = OnceLock::new();
    NAMES
        .get_or_init(|| Mutex::new(NonUtf8Names::default()))
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

/// The symbol of `name` in this thread's table.
#[inline]
fn seen(name: &[u8]) -> Option<Symbol> {
    SEEN.with(|seen| seen.borrow().get(name).map(|found| Symbol(found.0)))
}

impl Symbol {
    /// Interns `name`, leaking it the first time it is seen (symbols live for the process).
    pub fn intern(name: &str) -> Symbol {
        match seen(name.as_bytes()) {
            Some(found) => found,
            None => Self::intern_unseen(name),
        }
    }

    /// Interns a name given as bytes, which need not be UTF-8. A name seen before is found
    /// without decoding it.
    pub fn intern_bytes(name: &[u8]) -> Symbol {
        if let Some(found) = seen(name) {
            return found;
        }
        match std::str::from_utf8(name) {
            Ok(text) => Self::intern_unseen(text),
            Err(_) => Self::intern_non_utf8(name),
        }
    }

    /// The symbol for `name` if it was ever interned, without interning it: a name nobody
    /// interned cannot be an attribute of any set.
    pub fn lookup(name: &str) -> Option<Symbol> {
        Self::lookup_bytes(name.as_bytes())
    }

    /// `lookup` of a name given as bytes.
    pub fn lookup_bytes(name: &[u8]) -> Option<Symbol> {
        if let Some(found) = seen(name) {
            return Some(found);
        }
        let found = {
            let set = table().lock().unwrap_or_else(|poison| poison.into_inner());
            set.get(name).map(|found| Symbol(found.0))
        };
        if found.is_none() && !Self::all_utf8() {
            return non_utf8_names().by_bytes.get(name).map(|text| Symbol(text));
        }
        found
    }

    /// Interns a UTF-8 name this thread has not seen yet.
    fn intern_unseen(name: &str) -> Symbol {
        let symbol = Self::intern_shared(name);
        SEEN.with(|seen| seen.borrow_mut().insert(Name(symbol.0)));
        symbol
    }

    fn intern_shared(name: &str) -> Symbol {
        // A poisoned lock only means another thread panicked while inserting; the set itself is
        // still consistent (insertion is a single call), so keep using it.
        let mut set = table().lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(existing) = set.get(name.as_bytes()) {
            return Symbol(existing.0);
        }
        let text: &'static str = Box::leak(Box::from(name));
        let leaked: &'static &'static str = Box::leak(Box::new(text));
        set.insert(Name(leaked));
        Symbol(leaked)
    }

    /// Interns a name that is not UTF-8: its text, with U+FFFD for each invalid sequence, is
    /// an allocation of its own, so the symbol differs from every other.
    fn intern_non_utf8(name: &[u8]) -> Symbol {
        let mut names = non_utf8_names();
        if let Some(text) = names.by_bytes.get(name) {
            return Symbol(text);
        }
        let bytes: &'static [u8] = Box::leak(Box::from(name));
        let text: &'static str =
            Box::leak(String::from_utf8_lossy(bytes).into_owned().into_boxed_str());
        let text: &'static &'static str = Box::leak(Box::new(text));
        names.by_bytes.insert(bytes, text);
        names.by_text.insert(text.as_ptr() as usize, bytes);
        NON_UTF8_NAMES.store(true, AtomicOrdering::Release);
        Symbol(text)
    }

    /// The name as text: UTF-8, with U+FFFD for each invalid sequence of a name that is not.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Whether every name interned so far is UTF-8. While it holds, `cmp_text` orders
    /// symbols as `cmp` does without looking at that for each comparison (a binary search
    /// asks once).
    #[inline]
    pub fn all_utf8() -> bool {
        !NON_UTF8_NAMES.load(AtomicOrdering::Relaxed)
    }

    /// The byte order of the symbols' texts: `cmp`'s order while `all_utf8` holds.
    #[inline]
    pub fn cmp_text(self, other: Symbol) -> std::cmp::Ordering {
        if self == other {
            std::cmp::Ordering::Equal
        } else {
            self.0.as_bytes().cmp(other.0.as_bytes())
        }
    }

    /// The name's bytes.
    #[inline]
    pub fn as_bytes(self) -> &'static [u8] {
        if NON_UTF8_NAMES.load(AtomicOrdering::Acquire) {
            return self.bytes_when_some_are_not_utf8();
        }
        self.0.as_bytes()
    }

    #[cold]
    #[inline(never)]
    fn bytes_when_some_are_not_utf8(self) -> &'static [u8] {
        // The text of a name that is not UTF-8 holds at least one U+FFFD.
        if self.0.contains('\u{fffd}') {
            if let Some(bytes) = non_utf8_names().by_text.get(&(self.0.as_ptr() as usize)) {
                return bytes;
            }
        }
        self.0.as_bytes()
    }
}

impl PartialEq for Symbol {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}
impl Eq for Symbol {}

impl Hash for Symbol {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0 as *const &str as usize).hash(state)
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
/// Byte order of the names, the order Nix shows attributes in.
impl Ord for Symbol {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Symbol::all_utf8() {
            self.cmp_text(*other)
        } else if self == other {
            std::cmp::Ordering::Equal
        } else {
            // Two distinct symbols may share a text only when one is not UTF-8: their bytes
            // tell them apart.
            compare_bytes(*self, *other)
        }
    }
}

#[cold]
#[inline(never)]
fn compare_bytes(a: Symbol, b: Symbol) -> std::cmp::Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_identity() {
        assert!(Symbol::lookup("never-interned-name").is_none());
        let abc = Symbol::intern("abc");
        assert_eq!(Symbol::lookup("abc"), Some(abc));
        let a = Symbol::intern("abc");
        let b = Symbol::intern(&String::from("abc"));
        assert_eq!(a, b);
        assert_ne!(a, Symbol::intern("abd"));
        assert!(Symbol::intern("a") < Symbol::intern("b"));
        assert!(Symbol::intern("B") < Symbol::intern("a"));
    }

    #[test]
    fn names_given_as_bytes() {
        let cafe = Symbol::intern("café");
        assert_eq!(Symbol::lookup_bytes("café".as_bytes()), Some(cafe));
        assert_eq!(Symbol::intern_bytes("café".as_bytes()), cafe);
        assert!(Symbol::lookup_bytes(b"never-interned-\xff").is_none());
        // A name that is not UTF-8 reads with U+FFFD but stays its own symbol, with its bytes.
        let half = Symbol::intern_bytes(b"caf\xc3");
        assert_eq!(half.as_str(), "caf\u{fffd}");
        assert_eq!(half.as_bytes(), b"caf\xc3");
        assert_eq!(Symbol::lookup_bytes(b"caf\xc3"), Some(half));
        assert_eq!(Symbol::intern_bytes(b"caf\xc3"), half);
        let other_half = Symbol::intern_bytes(b"caf\xa9");
        let replacement = Symbol::intern("caf\u{fffd}");
        assert_ne!(half, other_half);
        assert_ne!(half, replacement);
        assert_eq!(other_half.as_bytes(), b"caf\xa9");
        assert_eq!(replacement.as_bytes(), "caf\u{fffd}".as_bytes());
        // Ordered by bytes, as Nix orders attribute names.
        let mut names = [replacement, half, other_half, cafe];
        names.sort();
        assert_eq!(names, [other_half, half, cafe, replacement]);
        assert!(Symbol::lookup_bytes(b"caf\xff").is_none());
    }
}
