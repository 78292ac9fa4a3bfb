//! The `kiln` binary: parses the command line and hands off to `kiln::cli`.

/// The evaluator allocates and frees many small objects (thunks, environments, attribute
/// vectors); mimalloc's thread-local free lists serve that pattern far better than glibc's
/// malloc (glibc: geometric mean of the eval benchmarks 0.83 of Nix's time, mimalloc 0.65).
/// By default mimalloc commits its arenas eagerly and the kernel backs them with transparent
/// huge pages: a 10,000-derivation evaluation takes 319 page faults instead of 11,121, but
/// its resident memory is counted in 2 MiB pages (62 MB instead of 50 MB).
/// `MIMALLOC_ARENA_EAGER_COMMIT=0` in the environment chooses the smaller footprint for about
/// 10% more time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(kiln::cli::run());
}
