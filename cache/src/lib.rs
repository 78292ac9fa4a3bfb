//! kiln-cache: Nix binary caches. The formats (`narinfo`, `signing` keys and signatures,
//! `cache_info`, NAR `compression`), the transports that read and write a cache's files
//! (`transport`: `file://` and `http(s)://`), and one cache's look-ups and uploads
//! (`binary_cache`), and substituting paths from caches into the local store (`substitute`).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
pub mod binary_cache;
pub mod cache_info;
pub mod compression;
pub mod narinfo;
pub mod signing;
pub mod substitute;
pub mod transport;
