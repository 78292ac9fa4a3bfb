//! The `kiln` binary: parses the command line and hands off to `kiln::cli`.

/// The evaluator allocates and frees many small objects (thunks, environments, attribute
/// vectors); mimalloc's thread-local free lists serve that pattern far better than glibc's
/// malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(kiln::cli::run());
}
