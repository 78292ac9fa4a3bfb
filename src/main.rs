//! The `kiln` binary: parses the command line and hands off to `kiln::cli`.

/// The evaluator allocates and frees many small objects (thunks, environments, attribute
/// vectors); mimalloc's thread-local free lists serve that pattern far better than glibc's
/// malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options (`mi_option_e` of mimalloc 3's `mimalloc.h`; the Rust binding names
/// only some of them).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Commits arena memory as it is used and gives freed pages back at once: the evaluator's
/// peak resident memory drops by 10-20% (an overlay fixpoint: 112 -> 93 MB) for no
/// measurable time. It must run before the first allocation (the first arena is reserved
/// then), hence a constructor in `.init_array`, which the C runtime calls before Rust's
/// runtime allocates anything.
extern "C" fn configure_allocator() {
    // SAFETY: plain option setters, called before any allocation or other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() {
    std::process::exit(kiln::cli::run());
}
