//! The `kiln` binary: parses the command line and hands off to `kiln::cli`.
fn main() {
    std::process::exit(kiln::cli::run());
}
