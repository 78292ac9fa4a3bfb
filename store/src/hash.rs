//! Hashes as Nix knows them: the algorithms md5, sha1, sha256 and sha512, a streaming hasher,
//! parsing of every form Nix accepts (`algo:base16|nixbase32|base64`, SRI `algo-base64`, and a
//! bare digest when the algorithm is known from context) and printing in those forms, plus
//! `compress_hash`, the XOR fold that shortens a sha256 to the 20 bytes of a store path.
use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use digest::Digest;

use crate::nixbase32;

/// A hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    /// The length of a digest in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
        }
    }

    /// The name Nix prints: `md5`, `sha1`, `sha256`, `sha512`.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// The length of the base-16 form.
    pub const fn base16_len(self) -> usize {
        self.digest_len() * 2
    }

    /// The length of the nixbase32 form.
    pub const fn base32_len(self) -> usize {
        nixbase32::encoded_len(self.digest_len())
    }

    /// The length of the (padded) base-64 form.
    pub const fn base64_len(self) -> usize {
        self.digest_len().div_ceil(3) * 4
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgo {
    type Err = HashError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "md5" => Ok(HashAlgo::Md5),
            "sha1" => Ok(HashAlgo::Sha1),
            "sha256" => Ok(HashAlgo::Sha256),
            "sha512" => Ok(HashAlgo::Sha512),
            _ => Err(HashError::UnknownAlgo(name.to_owned())),
        }
    }
}

/// Why a hash could not be parsed. The messages follow Nix's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("unknown hash algorithm '{0}'")]
    UnknownAlgo(String),
    #[error("hash '{0}' does not include a type, nor is the type otherwise known from context")]
    MissingAlgo(String),
    #[error("hash '{hash}' should have type '{expected}'")]
    AlgoMismatch { hash: String, expected: HashAlgo },
    #[error("hash '{0}' is not SRI")]
    NotSri(String),
    #[error("invalid {form} hash '{hash}'")]
    InvalidEncoding { form: &'static str, hash: String },
    #[error("hash '{hash}' has wrong length for hash type '{algo}'")]
    WrongLength { hash: String, algo: HashAlgo },
    #[error("empty hash requires explicit hash type")]
    EmptyWithoutAlgo,
}

/// How a digest is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashEncoding {
    Base16,
    Nixbase32,
    Base64,
    /// `algo-base64`, the Subresource Integrity form.
    Sri,
}

/// A digest together with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash {
    algo: HashAlgo,
    bytes: [u8; 64],
}

impl Hash {
    /// A hash from its raw digest; `None` when the length does not fit the algorithm.
    pub fn from_digest(algo: HashAlgo, digest: &[u8]) -> Option<Hash> {
        if digest.len() != algo.digest_len() {
            return None;
        }
        let mut bytes = [0u8; 64];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(Hash { algo, bytes })
    }

    /// The all-zero hash Nix substitutes for an empty `outputHash`.
    pub fn zero(algo: HashAlgo) -> Hash {
        Hash {
            algo,
            bytes: [0u8; 64],
        }
    }

    /// Hashes `data` in one go.
    pub fn digest(algo: HashAlgo, data: &[u8]) -> Hash {
        let mut hasher = Hasher::new(algo);
        hasher.update(data);
        hasher.finish()
    }

    /// sha256 of `data`, the most common case.
    pub fn sha256(data: &[u8]) -> Hash {
        Hash::digest(HashAlgo::Sha256, data)
    }

    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algo.digest_len()]
    }

    /// Parses a hash that names its algorithm (`algo:digest` or SRI `algo-base64`).
    pub fn parse_prefixed(text: &str) -> Result<Hash, HashError> {
        Hash::parse_any(text, None)
    }

    /// Parses a hash in any form Nix accepts. `algo`, when known from context, is used for a
    /// bare digest and must agree with a prefix the text carries.
    pub fn parse_any(text: &str, algo: Option<HashAlgo>) -> Result<Hash, HashError> {
        let (prefix_algo, rest, is_sri) = split_algo_prefix(text)?;
        let algo = match (prefix_algo, algo) {
            (None, None) => return Err(HashError::MissingAlgo(text.to_owned())),
            (Some(parsed), Some(expected)) if parsed != expected => {
                return Err(HashError::AlgoMismatch {
                    hash: text.to_owned(),
                    expected,
                })
            }
            (Some(parsed), _) => parsed,
            (None, Some(expected)) => expected,
        };
        Hash::parse_digest(rest, algo, is_sri)
    }

    /// Parses an SRI hash `algo-base64`.
    pub fn parse_sri(text: &str) -> Result<Hash, HashError> {
        let (algo, rest) = text
            .split_once('-')
            .ok_or_else(|| HashError::NotSri(text.to_owned()))?;
        Hash::parse_digest(rest, algo.parse()?, true)
    }

    /// Parses a bare digest of a known algorithm in base16, nixbase32 or base64 (told apart by
    /// length, as Nix does).
    pub fn parse_bare(text: &str, algo: HashAlgo) -> Result<Hash, HashError> {
        Hash::parse_digest(text, algo, false)
    }

    /// Like Nix's `newHashAllowEmpty`: an empty string stands for the all-zero hash of `algo`
    /// (the caller should warn, printing the SRI form).
    pub fn parse_allow_empty(text: &str, algo: Option<HashAlgo>) -> Result<Hash, HashError> {
        if text.is_empty() {
            algo.map(Hash::zero).ok_or(HashError::EmptyWithoutAlgo)
        } else {
            Hash::parse_any(text, algo)
        }
    }

    fn parse_digest(rest: &str, algo: HashAlgo, is_sri: bool) -> Result<Hash, HashError> {
        let invalid = |form: &'static str| HashError::InvalidEncoding {
            form,
            hash: rest.to_owned(),
        };
        let digest = if !is_sri && rest.len() == algo.base16_len() {
            HEXLOWER_PERMISSIVE
                .decode(rest.as_bytes())
                .map_err(|_| invalid("base-16"))?
        } else if !is_sri && rest.len() == algo.base32_len() {
            nixbase32::decode(rest).map_err(|_| invalid("base-32"))?
        } else if is_sri || rest.len() == algo.base64_len() {
            let form = if is_sri { "SRI" } else { "base-64" };
            nix_base64_decode(rest).ok_or_else(|| invalid(form))?
        } else {
            return Err(HashError::WrongLength {
                hash: rest.to_owned(),
                algo,
            });
        };
        Hash::from_digest(algo, &digest)
            .ok_or_else(|| invalid(if is_sri { "SRI" } else { "base-64" }))
    }

    /// The digest written in `encoding`, with the `algo:` prefix when `with_algo` (SRI always
    /// carries its `algo-` prefix).
    pub fn encode(&self, encoding: HashEncoding, with_algo: bool) -> String {
        let body = match encoding {
            HashEncoding::Base16 => data_encoding::HEXLOWER.encode(self.as_bytes()),
            HashEncoding::Nixbase32 => nixbase32::encode(self.as_bytes()),
            HashEncoding::Base64 => BASE64.encode(self.as_bytes()),
            HashEncoding::Sri => {
                return format!("{}-{}", self.algo, BASE64.encode(self.as_bytes()))
            }
        };
        if with_algo {
            format!("{}:{}", self.algo, body)
        } else {
            body
        }
    }

    /// Base-16 without prefix.
    pub fn to_hex(&self) -> String {
        self.encode(HashEncoding::Base16, false)
    }

    /// nixbase32 without prefix.
    pub fn to_nixbase32(&self) -> String {
        self.encode(HashEncoding::Nixbase32, false)
    }

    /// The SRI form `algo-base64`.
    pub fn to_sri(&self) -> String {
        self.encode(HashEncoding::Sri, true)
    }
}

/// Splits `algo:` or `algo-` (SRI) off `text`. The colon form wins, as in Nix.
fn split_algo_prefix(text: &str) -> Result<(Option<HashAlgo>, &str, bool), HashError> {
    if let Some((algo, rest)) = text.split_once(':') {
        return Ok((Some(algo.parse()?), rest, false));
    }
    if let Some((algo, rest)) = text.split_once('-') {
        return Ok((Some(algo.parse()?), rest, true));
    }
    Ok((None, text, false))
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.encode(HashEncoding::Base16, true))
    }
}

/// The XOR fold Nix uses to shorten a digest to `len` bytes (20 for store paths).
pub fn compress_hash(digest: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (index, byte) in digest.iter().enumerate() {
        out[index % len] ^= byte;
    }
    out
}

/// A streaming hasher for any of the algorithms; also an `io::Write` sink.
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algo: HashAlgo) -> Hasher {
        match algo {
            HashAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Hash {
        let (algo, digest): (HashAlgo, Vec<u8>) = match self {
            Hasher::Md5(h) => (HashAlgo::Md5, h.finalize().to_vec()),
            Hasher::Sha1(h) => (HashAlgo::Sha1, h.finalize().to_vec()),
            Hasher::Sha256(h) => (HashAlgo::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (HashAlgo::Sha512, h.finalize().to_vec()),
        };
        // The digest length is fixed by the algorithm that produced it.
        let mut bytes = [0u8; 64];
        bytes[..digest.len()].copy_from_slice(&digest);
        Hash { algo, bytes }
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Base64 decoding as Nix does it: decoding stops at the first `=` (so anything after the
/// padding is ignored: `sha256-…=x` is accepted, by Nix 2.8 and current Nix alike), line feeds
/// are skipped, any other character outside the alphabet is an error, and leftover bits are
/// dropped. The caller checks the digest's length.
fn nix_base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut acc) = (0u32, 0u32);
    for byte in text.bytes() {
        let digit = match byte {
            b'=' => break,
            b'\n' => continue,
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6 | u32::from(digit)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Only the low 8 bits are kept.
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values: `nix hash to-base16/to-base32/to-base64/to-sri` (Nix 2.8).
    const HELLO_HEX: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const HELLO_B32: &str = "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic";
    const HELLO_SRI: &str = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

    #[test]
    fn parses_every_form() {
        let expected = Hash::sha256(b"hello");
        for text in [
            format!("sha256:{HELLO_HEX}"),
            format!("sha256:{HELLO_B32}"),
            HELLO_SRI.to_owned(),
            "sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=".to_owned(),
        ] {
            assert_eq!(Hash::parse_prefixed(&text).unwrap(), expected, "{text}");
        }
        assert_eq!(
            Hash::parse_bare(HELLO_B32, HashAlgo::Sha256).unwrap(),
            expected
        );
        assert_eq!(
            Hash::parse_any(&HELLO_HEX.to_uppercase(), Some(HashAlgo::Sha256)).unwrap(),
            expected
        );
        assert_eq!(Hash::parse_sri(HELLO_SRI).unwrap(), expected);
    }

    #[test]
    fn prints_every_form() {
        let hash = Hash::sha256(b"hello");
        assert_eq!(hash.to_hex(), HELLO_HEX);
        assert_eq!(hash.to_nixbase32(), HELLO_B32);
        assert_eq!(hash.to_sri(), HELLO_SRI);
        assert_eq!(
            hash.encode(HashEncoding::Nixbase32, true),
            format!("sha256:{HELLO_B32}")
        );
    }

    #[test]
    fn other_algorithms() {
        // `builtins.hashString` via the oracle.
        assert_eq!(
            Hash::digest(HashAlgo::Md5, b"hello").to_hex(),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert_eq!(
            Hash::digest(HashAlgo::Sha1, b"hello").to_nixbase32(),
            "9m1skbnr5i43n3yypvda5s65vhfwdx5a"
        );
        assert_eq!(
            Hash::digest(HashAlgo::Sha512, b"hello")
                .to_nixbase32()
                .len(),
            103
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Hash::parse_any(HELLO_HEX, None),
            Err(HashError::MissingAlgo(_))
        ));
        assert!(matches!(
            Hash::parse_any(&format!("sha256:{HELLO_HEX}"), Some(HashAlgo::Sha1)),
            Err(HashError::AlgoMismatch { .. })
        ));
        assert!(matches!(
            Hash::parse_any("sha256:abc", None),
            Err(HashError::WrongLength { .. })
        ));
        assert!(matches!(
            Hash::parse_any("blake3:abc", None),
            Err(HashError::UnknownAlgo(_))
        ));
        assert_eq!(
            Hash::parse_allow_empty("", Some(HashAlgo::Sha256)).unwrap(),
            Hash::zero(HashAlgo::Sha256)
        );
    }

    #[test]
    fn compresses_like_nix() {
        let folded = compress_hash(&[1, 2, 3, 4, 5], 2);
        assert_eq!(folded, vec![1 ^ 3 ^ 5, 2 ^ 4]);
    }
}
