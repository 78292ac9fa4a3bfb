//! nixbase32, hashes in every notation Nix accepts (SRI, prefixed, bare) and store paths:
//! parsing never panics, and what parses prints back to a text that parses to the same value.
#![no_main]
use kiln_store::hash::{Hash, HashEncoding};
use kiln_store::nixbase32;
use kiln_store::store_path::{StoreDir, StorePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = nixbase32::decode(text) {
        assert_eq!(
            nixbase32::decode(&nixbase32::encode(&bytes)).ok(),
            Some(bytes)
        );
    }
    for parsed in [Hash::parse_sri(text), Hash::parse_any(text, None)] {
        if let Ok(hash) = parsed {
            let sri = hash.to_sri();
            assert_eq!(Hash::parse_sri(&sri).ok(), Some(hash));
            let nix32 = hash.encode(HashEncoding::Nixbase32, true);
            assert_eq!(Hash::parse_any(&nix32, None).ok(), Some(hash));
        }
    }
    let dir = StoreDir::new("/nix/store");
    if let Ok(path) = dir.parse(text) {
        assert_eq!(dir.parse(&dir.print(&path)).ok(), Some(path));
    }
    if let Ok(path) = StorePath::from_base_name(text) {
        assert_eq!(StorePath::from_base_name(path.base_name()).ok(), Some(path));
    }
});
