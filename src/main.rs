//! The `kiln` binary: parses the command line and hands off to `kiln::cli`.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The evaluator allocates and frees many small objects (thunks, environments, attribute
/// vectors); mimalloc's thread-local free lists serve that pattern far better than glibc's
/// malloc (glibc: geometric mean of the eval benchmarks 0.83 of Nix's time, mimalloc 0.65-0.70).
///
/// Unlike the `mimalloc` crate's allocator, which asks for every block through mimalloc's aligned entry
/// point, blocks that need no more than word alignment (almost all of them) take `mi_malloc`'s
/// inlined small-block path: every mimalloc block is word-aligned.
struct Allocator;

/// The alignment every mimalloc block has.
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

// SAFETY: each method forwards to the mimalloc function with the same contract (size and
// alignment as the layout asks, freeing with `mi_free`); blocks from `mi_malloc`,
// `mi_zalloc` and `mi_realloc` are word-aligned, which is all the layouts sent there ask.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD_ALIGN {
                libmimalloc_sys::mi_malloc(layout.size()) as *mut u8
            } else {
                libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD_ALIGN {
                libmimalloc_sys::mi_zalloc(layout.size()) as *mut u8
            } else {
                libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see the impl; `ptr` came from one of the allocation functions above.
        unsafe { libmimalloc_sys::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl; `ptr` came from one of the allocation functions above.
        unsafe {
            if layout.align() <= WORD_ALIGN {
                libmimalloc_sys::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align())
                    as *mut u8
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// `mi_option_arena_eager_commit` in mimalloc 3's `mi_option_e` (the Rust binding does not
/// name it).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// By default mimalloc commits its arenas eagerly and the kernel backs them with transparent
/// huge pages: a 10,000-derivation evaluation takes 319 page faults instead of 11,121, but its
/// resident memory is counted in 2 MiB pages (56 MB instead of 42 MB, above Nix's 53 MB). kiln
/// commits memory as it uses it: peak memory below Nix's on every benchmark, for about 8% more
/// time. `MIMALLOC_ARENA_EAGER_COMMIT=1` in the environment chooses speed instead (mimalloc
/// reads it after this setting). The option must be set before the first allocation reserves
/// an arena, hence a constructor in `.init_array`, which runs before Rust's runtime allocates.
extern "C" fn configure_allocator() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
        return;
    }
    // SAFETY: a plain option setter, called before any allocation or other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
}

#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() {
    std::process::exit(kiln::cli::run());
}
