//! kiln-cache: Nix binary caches. The formats (`narinfo`, `signing` keys and signatures,
//! `cache_info`, NAR `compression`), the transports that read and write a cache's files
//! (`transport`: `file://` and `http(s)://`), pushing store paths to a cache (`upload`) and
//! substituting paths from caches into the local store (`substitute`).
pub mod cache_info;
pub mod compression;
pub mod narinfo;
pub mod signing;
