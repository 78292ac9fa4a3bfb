//! The `kiln` binary: parses the command line and hands off to `kiln::cli`.

/// The evaluator allocates and frees many small objects (thunks, environments, attribute
/// vectors); mimalloc's thread-local free lists serve that pattern far better than glibc's
/// malloc (glibc: geometric mean of the eval benchmarks 0.83 of Nix's time, mimalloc 0.65-0.70).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
