//! What an evaluator remembers about the store objects it created: the hash modulo and output
//! names of every derivation it instantiated (or read back from the store as an input), and
//! the references of every `.drv` and `toFile` text, for `=drv` contexts that need a closure.
//! Store paths are content addressed — the same path always names the same contents — so the
//! table never goes stale, and it turns the 10,000s of shared inputs of a package set into
//! lookups. It belongs to its [`Evaluator`](crate::Evaluator) and goes with it.
use std::collections::HashMap;
use std::rc::Rc;

use kiln_lang::symbol::BuildFxHasher;
use kiln_store::derivation::DrvHashModulo;
use kiln_store::store_path::StorePath;

/// What is remembered about an instantiated derivation.
pub(crate) struct DrvRecord {
    pub(crate) hash_modulo: DrvHashModulo,
    /// Sorted (a slice: a tree set would allocate a node of hundreds of bytes per record).
    pub(crate) output_names: Box<[String]>,
}

/// Derivations and texts this evaluator knows (see the module doc).
#[derive(Default)]
pub(crate) struct KnownPaths {
    derivations: HashMap<StorePath, Rc<DrvRecord>, BuildFxHasher>,
    references: HashMap<StorePath, Rc<[StorePath]>, BuildFxHasher>,
}

impl KnownPaths {
    pub(crate) fn derivation(&self, path: &StorePath) -> Option<Rc<DrvRecord>> {
        self.derivations.get(path).cloned()
    }

    pub(crate) fn references(&self, path: &StorePath) -> Option<Rc<[StorePath]>> {
        self.references.get(path).cloned()
    }

    /// Remembers a text's references.
    pub(crate) fn add_text(&mut self, path: StorePath, references: Rc<[StorePath]>) {
        self.references.insert(path, references);
    }

    /// Remembers a derivation and its references.
    pub(crate) fn add_derivation(
        &mut self,
        path: StorePath,
        references: Rc<[StorePath]>,
        record: DrvRecord,
    ) {
        self.references.insert(path.clone(), references);
        self.derivations.insert(path, Rc::new(record));
    }
}
