//! Store directories and store paths: `StoreDir` (the logical directory hashed into every path,
//! such as `/nix/store` or `/kiln/store`), `StorePath` (`<nixbase32 hash>-<name>`) with Nix's name
//! rules, and the path constructors of Nix's `makeStorePath` family: text paths (`toFile`,
//! `.drv`), fixed-output and source paths, and derivation output paths.
//!
//! Name rules follow Nix 2.8, the oracle: non-empty, at most 211 bytes, only
//! `[A-Za-z0-9+-._?=]`. A leading `.` is accepted as Nix 2.8 does.
use std::collections::BTreeSet;
use std::fmt;

use crate::hash::{compress_hash, Hash, HashAlgo};
use crate::nixbase32;

/// The length of a store path's hash part in characters.
pub const HASH_PART_LEN: usize = 32;
/// The longest name a store path may have.
pub const MAX_NAME_LEN: usize = 211;

/// Why a store path or name is not acceptable. Messages follow Nix's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePathError {
    #[error("path '{0}' is not in the Nix store")]
    NotInStore(String),
    #[error("path '{0}' is not a store path")]
    NotAStorePath(String),
    #[error("store path '{0}' has an empty name")]
    EmptyName(String),
    #[error("store path '{0}' has a name longer than 211 characters")]
    NameTooLong(String),
    #[error("store path '{path}' contains illegal character '{character}'")]
    IllegalCharacter { path: String, character: char },
    #[error("invalid hash part in store path '{0}'")]
    InvalidHashPart(String),
    #[error("fixed-output store paths with references need a recursive sha256 hash")]
    ReferencesNeedSource,
}

/// Checks a store path name; `base_name` (`hash-name`) is what error messages show.
fn check_name(base_name: &str, name: &str) -> Result<(), StorePathError> {
    if name.is_empty() {
        return Err(StorePathError::EmptyName(base_name.to_owned()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(StorePathError::NameTooLong(base_name.to_owned()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c)))
    {
        return Err(StorePathError::IllegalCharacter {
            path: base_name.to_owned(),
            character: bad,
        });
    }
    Ok(())
}

/// A store path relative to its store directory: `<hash part>-<name>`. Orders as Nix does, by
/// the printed base name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    base_name: Box<str>,
}

impl StorePath {
    /// Builds a path from the 20-byte compressed digest and a name.
    pub fn from_digest(digest: &[u8; 20], name: &str) -> Result<StorePath, StorePathError> {
        let base_name = format!("{}-{}", nixbase32::encode(digest), name);
        check_name(&base_name, name)?;
        Ok(StorePath {
            base_name: base_name.into_boxed_str(),
        })
    }

    /// Parses `<hash part>-<name>` (no directory).
    pub fn from_base_name(base_name: &str) -> Result<StorePath, StorePathError> {
        let bytes = base_name.as_bytes();
        if bytes.len() < HASH_PART_LEN + 1 || bytes[HASH_PART_LEN] != b'-' {
            return Err(StorePathError::NotAStorePath(base_name.to_owned()));
        }
        if !bytes[..HASH_PART_LEN]
            .iter()
            .all(|b| nixbase32::is_digit(*b))
        {
            return Err(StorePathError::InvalidHashPart(base_name.to_owned()));
        }
        check_name(base_name, &base_name[HASH_PART_LEN + 1..])?;
        Ok(StorePath {
            base_name: base_name.into(),
        })
    }

    /// The nixbase32 hash part (32 characters).
    pub fn hash_part(&self) -> &str {
        &self.base_name[..HASH_PART_LEN]
    }

    /// The name after the hash part.
    pub fn name(&self) -> &str {
        &self.base_name[HASH_PART_LEN + 1..]
    }

    /// `<hash part>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.base_name
    }

    /// Whether this is a store derivation (`.drv`).
    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(".drv")
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_name)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({})", self.base_name)
    }
}

/// How file contents are turned into a content address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentAddressMethod {
    /// `text:` — a single file with references (`toFile`, `.drv`).
    Text,
    /// The bytes of a single regular file.
    Flat,
    /// The NAR serialisation of a file tree.
    Recursive,
}

impl ContentAddressMethod {
    /// The prefix of `printMethodAlgo`: `text:`, ``, `r:`.
    pub fn prefix(self) -> &'static str {
        match self {
            ContentAddressMethod::Text => "text:",
            ContentAddressMethod::Flat => "",
            ContentAddressMethod::Recursive => "r:",
        }
    }

    /// Nix's `printMethodAlgo`, e.g. `r:sha256`, as in a `.drv`'s hashAlgo field.
    pub fn method_algo(self, algo: HashAlgo) -> String {
        format!("{}{}", self.prefix(), algo)
    }

    /// Splits a `.drv` hashAlgo field (`r:sha256`, `text:sha256`, `sha1`) into method and algo.
    pub fn parse_method_algo(text: &str) -> Result<(Self, HashAlgo), crate::hash::HashError> {
        let (method, algo) = if let Some(rest) = text.strip_prefix("r:") {
            (ContentAddressMethod::Recursive, rest)
        } else if let Some(rest) = text.strip_prefix("text:") {
            (ContentAddressMethod::Text, rest)
        } else {
            (ContentAddressMethod::Flat, text)
        };
        Ok((method, algo.parse()?))
    }
}

/// A logical store directory such as `/nix/store`, without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreDir {
    dir: String,
}

impl StoreDir {
    /// `dir` is taken as given, minus trailing slashes.
    pub fn new(dir: &str) -> StoreDir {
        let trimmed = dir.trim_end_matches('/');
        StoreDir {
            dir: if trimmed.is_empty() {
                "/".to_owned()
            } else {
                trimmed.to_owned()
            },
        }
    }

    /// The directory as a string.
    pub fn as_str(&self) -> &str {
        &self.dir
    }

    /// The absolute path string of `path`.
    pub fn print(&self, path: &StorePath) -> String {
        let mut out = String::with_capacity(self.dir.len() + 1 + path.base_name.len());
        out.push_str(&self.dir);
        out.push('/');
        out.push_str(&path.base_name);
        out
    }

    /// Parses an absolute path string directly inside this directory.
    pub fn parse(&self, text: &str) -> Result<StorePath, StorePathError> {
        let base_name = text
            .strip_prefix(self.dir.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(text.to_owned()))?;
        if base_name.contains('/') {
            return Err(StorePathError::NotAStorePath(text.to_owned()));
        }
        StorePath::from_base_name(base_name)
    }

    /// Splits a path that may point inside a store path (`/nix/store/x-foo/bin/sh`) into the store
    /// path and the rest (`/bin/sh`, or empty).
    pub fn parse_prefix<'a>(&self, text: &'a str) -> Result<(StorePath, &'a str), StorePathError> {
        let inner = text
            .strip_prefix(self.dir.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(text.to_owned()))?;
        let end = inner.find('/').unwrap_or(inner.len());
        Ok((StorePath::from_base_name(&inner[..end])?, &inner[end..]))
    }

    /// Nix's `makeStorePath`: the path named `name` whose hash covers `path_type` (like `text`,
    /// `source`, `output:out`), the inner hash, this directory and the name.
    pub fn make_store_path(
        &self,
        path_type: &str,
        inner: &Hash,
        name: &str,
    ) -> Result<StorePath, StorePathError> {
        let fingerprint = format!(
            "{}:{}:{}:{}:{}",
            path_type,
            inner.algo(),
            inner.to_hex(),
            self.dir,
            name
        );
        let full = Hash::sha256(fingerprint.as_bytes());
        let mut digest = [0u8; 20];
        digest.copy_from_slice(&compress_hash(full.as_bytes(), 20));
        StorePath::from_digest(&digest, name)
    }

    /// Nix's `makeType`: `kind` followed by `:<reference>` for each reference in order and
    /// `:self` when the path refers to itself.
    fn make_type<'a>(
        &self,
        kind: &str,
        references: impl IntoIterator<Item = &'a StorePath>,
        self_reference: bool,
    ) -> String {
        let mut out = kind.to_owned();
        for reference in references {
            out.push(':');
            out.push_str(&self.print(reference));
        }
        if self_reference {
            out.push_str(":self");
        }
        out
    }

    /// The path of a text file (`builtins.toFile`, `.drv` files) with these contents and
    /// references.
    pub fn make_text_path(
        &self,
        name: &str,
        contents: &[u8],
        references: &BTreeSet<StorePath>,
    ) -> Result<StorePath, StorePathError> {
        let path_type = self.make_type("text", references, false);
        self.make_store_path(&path_type, &Hash::sha256(contents), name)
    }

    /// Nix's `makeFixedOutputPath`: recursive sha256 gives a `source:` path (which may have
    /// references); everything else an `output:out` path over `fixed:out:[r:]algo:hex:`.
    pub fn make_fixed_output_path(
        &self,
        method: ContentAddressMethod,
        hash: &Hash,
        name: &str,
        references: &BTreeSet<StorePath>,
        self_reference: bool,
    ) -> Result<StorePath, StorePathError> {
        if method == ContentAddressMethod::Text {
            let path_type = self.make_type("text", references, self_reference);
            return self.make_store_path(&path_type, hash, name);
        }
        if method == ContentAddressMethod::Recursive && hash.algo() == HashAlgo::Sha256 {
            let path_type = self.make_type("source", references, self_reference);
            return self.make_store_path(&path_type, hash, name);
        }
        if !references.is_empty() || self_reference {
            return Err(StorePathError::ReferencesNeedSource);
        }
        let inner = format!(
            "fixed:out:{}{}:{}:",
            method.prefix(),
            hash.algo(),
            hash.to_hex()
        );
        self.make_store_path("output:out", &Hash::sha256(inner.as_bytes()), name)
    }

    /// Nix's `makeOutputPath`: output `output` of a derivation named `drv_name` whose hash modulo
    /// is `drv_hash`. Outputs other than `out` get `-<output>` appended to the name.
    pub fn make_output_path(
        &self,
        output: &str,
        drv_hash: &Hash,
        drv_name: &str,
    ) -> Result<StorePath, StorePathError> {
        let name = output_path_name(drv_name, output);
        self.make_store_path(&format!("output:{output}"), drv_hash, &name)
    }
}

/// The name of output `output` of a derivation named `drv_name`.
pub fn output_path_name(drv_name: &str, output: &str) -> String {
    if output == "out" {
        drv_name.to_owned()
    } else {
        format!("{drv_name}-{output}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_paths_match_oracle() {
        // nix-instantiate --eval -E 'builtins.toFile "foo" "hello"'
        let nix = StoreDir::new("/nix/store");
        let path = nix
            .make_text_path("foo", b"hello", &BTreeSet::new())
            .unwrap();
        assert_eq!(
            nix.print(&path),
            "/nix/store/310sbjjj0kkf5zpszk81r054z76hsrww-foo"
        );
        let other = StoreDir::new("/tmp/store/nixstore/");
        let path = other
            .make_text_path("foo", b"hello", &BTreeSet::new())
            .unwrap();
        assert_eq!(path.base_name(), "4v4305wzjrv1qpcddzw164p534pidpsk-foo");
    }

    #[test]
    fn text_paths_with_references_match_oracle() {
        // builtins.toFile "a" "x${builtins.toFile "b" "y"}${builtins.toFile "c" "z"}"
        // with NIX_STORE_DIR=/tmp/store/nixstore.
        let dir = StoreDir::new("/tmp/store/nixstore");
        let b = dir.make_text_path("b", b"y", &BTreeSet::new()).unwrap();
        let c = dir.make_text_path("c", b"z", &BTreeSet::new()).unwrap();
        let contents = format!("x{}{}", dir.print(&b), dir.print(&c));
        let refs = BTreeSet::from([b, c]);
        let a = dir.make_text_path("a", contents.as_bytes(), &refs).unwrap();
        assert_eq!(a.base_name(), "6y98dsijs9m0c0hkl4yi1shwjri4822s-a");
    }

    #[test]
    fn names_follow_nix_rules() {
        let dir = StoreDir::new("/nix/store");
        let empty = BTreeSet::new();
        assert!(dir.make_text_path(".a", b"x", &empty).is_ok());
        assert!(dir.make_text_path("a+b-c._?=", b"x", &empty).is_ok());
        assert!(dir.make_text_path(&"x".repeat(211), b"x", &empty).is_ok());
        assert!(matches!(
            dir.make_text_path(&"x".repeat(212), b"x", &empty),
            Err(StorePathError::NameTooLong(_))
        ));
        assert!(matches!(
            dir.make_text_path("a b", b"x", &empty),
            Err(StorePathError::IllegalCharacter { character: ' ', .. })
        ));
        assert!(matches!(
            dir.make_text_path("", b"x", &empty),
            Err(StorePathError::EmptyName(_))
        ));
    }

    #[test]
    fn parses_and_prints() {
        let dir = StoreDir::new("/nix/store");
        let text = "/nix/store/310sbjjj0kkf5zpszk81r054z76hsrww-foo";
        let path = dir.parse(text).unwrap();
        assert_eq!(path.hash_part(), "310sbjjj0kkf5zpszk81r054z76hsrww");
        assert_eq!(path.name(), "foo");
        assert_eq!(dir.print(&path), text);
        let inside = format!("{text}/bin/sh");
        let (inner, rest) = dir.parse_prefix(&inside).unwrap();
        assert_eq!((inner, rest), (path, "/bin/sh"));
        assert!(dir.parse("/usr/bin/foo").is_err());
        assert!(dir
            .parse("/nix/store/310sbjjj0kkf5zpszk81r054z76hsrwe-foo")
            .is_err());
    }
}
