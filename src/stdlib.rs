//! The standard library (`stdlib/`, written in the Nix language) embedded in the binary, and
//! how `<kiln>` finds it.
//!
//! The evaluator reads source files from the file system (imports, relative paths, `./x` inside
//! the library all need a real directory), so the embedded files are materialised once into a
//! content-addressed directory under the store root: `ROOT/var/kiln/stdlib/<sha256>/`, where the
//! hash covers every file's name and contents. The directory is written into a temporary sibling
//! and renamed into place, so a reader never sees a half-written library and two processes
//! racing to write it both end up using the same complete copy. A new kiln version with a
//! different library gets a different directory; the old one is left alone (it is tiny).
//!
//! If the store root cannot be written (a read-only home, say), the library is materialised
//! under the system temporary directory instead, with the same naming. The search path gets
//! `kiln=<that directory>` as its last entry, so `-I kiln=PATH` and `KILN_PATH` override it.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kiln_store::hash::Hash;

/// The library's files: a path relative to the library root, and its contents.
pub const STDLIB_FILES: &[(&str, &str)] = &[
    ("default.nix", include_str!("../stdlib/default.nix")),
    ("fetch.nix", include_str!("../stdlib/fetch.nix")),
    ("layer.nix", include_str!("../stdlib/layer.nix")),
    ("oci.nix", include_str!("../stdlib/oci.nix")),
    ("bootstrap.nix", include_str!("../stdlib/bootstrap.nix")),
    ("rpm.nix", include_str!("../stdlib/rpm.nix")),
    (
        "corepkgs/fetchurl.nix",
        include_str!("../stdlib/corepkgs/fetchurl.nix"),
    ),
];

/// The hex SHA-256 naming the library's directory: it covers every file's path and contents,
/// each length-prefixed so that no two different libraries share a name.
pub fn content_hash() -> String {
    let mut framed = Vec::new();
    for (name, text) in STDLIB_FILES {
        for part in [name.as_bytes(), text.as_bytes()] {
            framed.extend_from_slice(&(part.len() as u64).to_le_bytes());
            framed.extend_from_slice(part);
        }
    }
    Hash::sha256(&framed).to_hex()
}

/// Where the library lives under a store root (whether written yet or not).
pub fn directory_under(store_root: &Path) -> PathBuf {
    store_root.join("var/kiln/stdlib").join(content_hash())
}

/// Writes the library into `parent/<hash>/` unless it is already there, and returns that
/// directory.
pub fn materialise_in(parent: &Path) -> io::Result<PathBuf> {
    let target = parent.join(content_hash());
    if target.join("default.nix").is_file() {
        return Ok(target);
    }
    fs::create_dir_all(parent)?;
    let staging = tempfile_dir(parent)?;
    let written = write_files(&staging).and_then(|()| fs::rename(&staging, &target));
    if let Err(error) = written {
        let _ = fs::remove_dir_all(&staging);
        // Another process may have renamed its complete copy into place first.
        if target.join("default.nix").is_file() {
            return Ok(target);
        }
        return Err(error);
    }
    Ok(target)
}

/// The library directory for a store root: materialised under `ROOT/var/kiln/stdlib`, else
/// under the temporary directory when the store root is not writable.
pub fn materialise(store_root: &Path) -> io::Result<PathBuf> {
    match materialise_in(&store_root.join("var/kiln/stdlib")) {
        Ok(dir) => Ok(dir),
        Err(store_error) => {
            let fallback = std::env::temp_dir().join(format!("kiln-stdlib-{}", user_id()));
            materialise_in(&fallback).map_err(|_| store_error)
        }
    }
}

fn user_id() -> u32 {
    // The owner of this process's /proc entry is its user; it only keeps users' copies apart.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

fn tempfile_dir(parent: &Path) -> io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!(".tmp-{}-{nanos}", std::process::id()));
    fs::create_dir(&dir)?;
    Ok(dir)
}

fn write_files(dir: &Path) -> io::Result<()> {
    for (name, text) in STDLIB_FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materialises_once_with_every_file() {
        let root = tempfile::tempdir().unwrap();
        let first = materialise(root.path()).unwrap();
        assert_eq!(first, directory_under(root.path()));
        for (name, text) in STDLIB_FILES {
            assert_eq!(fs::read_to_string(first.join(name)).unwrap(), *text);
        }
        let second = materialise(root.path()).unwrap();
        assert_eq!(first, second);
        let entries: Vec<_> = fs::read_dir(root.path().join("var/kiln/stdlib"))
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 1, "no staging directory is left behind");
    }

    #[test]
    fn the_hash_names_the_contents() {
        assert_eq!(content_hash().len(), 64);
        assert_eq!(content_hash(), content_hash());
    }
}
