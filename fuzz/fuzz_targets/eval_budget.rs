//! Shared by the evaluator targets: an evaluator over an in-memory file system and a store
//! that only computes paths, stopped by a budget — 100,000 function calls, and 256 MiB of
//! memory in use (counted by this binary's allocator) — so that a program that loops or
//! grows without end is an evaluation error, not a hang or an out-of-memory finding.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_eval::store_access::ComputingStore;
use kiln_eval::{EvalError, EvalOptions, Evaluator, MemoryIo, Value};
use kiln_store::store_path::StoreDir;

/// Counts the bytes in use.
pub struct CountingAllocator;

pub static IN_USE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator with the same layout; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size, Ordering::Relaxed);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

const MAX_CALLS: u32 = 100_000;
const MAX_BYTES_IN_USE: usize = 256 << 20;

/// Programs whose integer literals are small: `genList f 1000000000` allocates in one
/// builtin, between two calls, so the budget could not stop it.
#[allow(dead_code)] // used by the `eval` target only
pub fn has_only_small_numbers(source: &str) -> bool {
    let mut run = 0;
    for byte in source.bytes() {
        run = if byte.is_ascii_digit() { run + 1 } else { 0 };
        if run > 4 {
            return false;
        }
    }
    true
}

/// An evaluator with the budget, `files` in its file system.
pub fn evaluator(files: &[(&str, Vec<u8>)]) -> Evaluator {
    let mut options = EvalOptions::new(Rc::new(ComputingStore::new(StoreDir::new("/nix/store"))));
    let mut io = MemoryIo::default();
    for (path, bytes) in files {
        io.files.insert((*path).to_owned(), bytes.clone());
    }
    options.io = Rc::new(io);
    options.max_call_depth = 10_000;
    let calls = Cell::new(0u32);
    let baseline = IN_USE.load(Ordering::Relaxed);
    options.interrupt = Some(Rc::new(move || {
        calls.set(calls.get() + 1);
        if calls.get() > MAX_CALLS {
            return Some("fuzz budget: too many calls".to_owned());
        }
        let in_use = IN_USE.load(Ordering::Relaxed).saturating_sub(baseline);
        (in_use > MAX_BYTES_IN_USE).then(|| "fuzz budget: too much memory".to_owned())
    }));
    Evaluator::new(options)
}

/// Evaluates `source`; an error is rendered (which exercises the source snippets).
pub fn evaluate(ev: &Evaluator, source: &str) -> Result<Value, EvalError> {
    ev.eval_string(source, Path::new("/")).inspect_err(|e| {
        let _ = ev.render_error(e);
    })
}
