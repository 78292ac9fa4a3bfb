//! The `kiln` binary: parses the command line and hands off to `kiln::cli`.

/// The evaluator allocates and frees many small objects (thunks, environments, attribute
/// vectors); mimalloc's thread-local free lists serve that pattern far better than glibc's
/// malloc. Its defaults favour time: `MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0`
/// in the environment lowers peak memory by 10-20% on large evaluations (an overlay fixpoint
/// of 20,000 attributes: 110 -> 89 MB) for 15-25% more time spent in the kernel.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(kiln::cli::run());
}
