//! `.narinfo` parsing, and printing what parsed: the print parses to the same narinfo.
#![no_main]
use kiln_cache::narinfo::NarInfo;
use kiln_store::store_path::StoreDir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dir in ["/nix/store", "/kiln/store"].map(StoreDir::new) {
        check(text, &dir);
    }
});

fn check(text: &str, dir: &StoreDir) {
    let Ok(info) = NarInfo::parse(text, dir) else {
        return;
    };
    let printed = info.to_text(dir);
    let again = NarInfo::parse(&printed, dir).expect("a printed narinfo parses");
    assert_eq!(
        again.to_text(dir),
        printed,
        "print → parse → print is stable"
    );
}
