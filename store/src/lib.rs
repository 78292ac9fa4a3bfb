//! kiln-store: everything about store paths and their contents: nixbase32, hashes, store
//! paths, derivations and their ATerm form, hash modulo, NAR, and the local store.
pub mod local_store;

pub mod derivation;
pub mod hash;
pub mod nar;
pub mod nixbase32;
pub mod store_files;
pub mod store_path;
