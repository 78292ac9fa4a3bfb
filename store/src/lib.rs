//! kiln-store: what a store object is, independent of where it is kept: nixbase32, hashes,
//! store paths, content addresses, derivations and their ATerm form, hash modulo, and NAR.
//! Pure formats, byte-for-byte Nix's; the store on this machine (SQLite, locks, GC) is
//! `kiln-local-store` (docs/architecture.md, "Crates").
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]
pub mod content_address;
pub mod derivation;
pub mod hash;
pub mod nar;
pub mod nixbase32;
pub mod path_io_error;
pub mod realisation;
pub mod store_path;
