//! `.drv` ATerm parsing, and printing what parsed: the print parses again to the same
//! derivation and prints byte-identically (unless the platform holds a quote or backslash,
//! which Nix, and so kiln, writes unescaped).
#![no_main]
use kiln_store::derivation::Derivation;
use kiln_store::store_path::StoreDir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A `.drv` is bytes: the builder, arguments and environment need not be UTF-8.
    for dir in ["/nix/store", "/kiln/store"].map(StoreDir::new) {
        check(data, &dir);
    }
});

fn check(text: &[u8], dir: &StoreDir) {
    let Ok(parsed) = Derivation::from_aterm(dir, "fuzz", text) else {
        return;
    };
    if parsed.platform.contains(['"', '\\']) {
        // Nix writes the platform quoted but unescaped (as kiln does, byte for byte): such a
        // .drv does not parse back, in Nix either.
        return;
    }
    let printed = parsed.to_aterm(dir);
    let again = Derivation::from_aterm(dir, "fuzz", &printed).expect("a printed .drv parses");
    assert_eq!(again, parsed, "print → parse round trip");
    assert_eq!(again.to_aterm(dir), printed, "printing is stable");
}
