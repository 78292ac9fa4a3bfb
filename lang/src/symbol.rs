//! Interned identifiers and attribute names. A `Symbol` is a pointer to a string leaked into a
//! process-wide table, so equality and hashing are pointer operations while ordering and
//! display still see the bytes (attribute sets are kept in byte order of their names).
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};

/// An interned string. Two symbols are equal iff they were interned from equal strings.
#[derive(Clone, Copy)]
pub struct Symbol(&'static str);

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

thread_local! {
    /// The symbols this thread has seen, so the common case takes no lock.
    static SEEN: std::cell::RefCell<HashSet<&'static str, BuildFxHasher>> =
        std::cell::RefCell::new(HashSet::default());
}

fn table() -> &'static Mutex<HashSet<&'static str, BuildFxHasher>> {
    static TABLE: OnceLock<Mutex<HashSet<&'static str, BuildFxHasher>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashSet::default()))
}

impl Symbol {
    /// Interns `name`, leaking it the first time it is seen (symbols live for the process).
    pub fn intern(name: &str) -> Symbol {
        if let Some(found) = SEEN.with(|seen| seen.borrow().get(name).copied()) {
            return Symbol(found);
        }
        let symbol = Self::intern_shared(name);
        SEEN.with(|seen| seen.borrow_mut().insert(symbol.0));
        symbol
    }

    /// The symbol for `name` if it was ever interned, without interning it: a name nobody
    /// interned cannot be an attribute of any set.
    pub fn lookup(name: &str) -> Option<Symbol> {
        if let Some(found) = SEEN.with(|seen| seen.borrow().get(name).copied()) {
            return Some(Symbol(found));
        }
        let set = table().lock().unwrap_or_else(|poison| poison.into_inner());
        set.get(name).map(|found| Symbol(found))
    }

    fn intern_shared(name: &str) -> Symbol {
        // A poisoned lock only means another thread panicked while inserting; the set itself is
        // still consistent (insertion is a single call), so keep using it.
        let mut set = table().lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(existing) = set.get(name) {
            return Symbol(existing);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        set.insert(leaked);
        Symbol(leaked)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq for Symbol {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0.as_ptr(), other.0.as_ptr())
    }
}
impl Eq for Symbol {}

impl Hash for Symbol {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0.as_ptr() as usize).hash(state)
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
        if self == other {
            std::cmp::Ordering::Equal
        } else {
            self.0.as_bytes().cmp(other.0.as_bytes())
        }
    }
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
}
