//! Content hashes as the builtin builders need them: parsing a derivation's expected
//! `outputHash` (SRI, `algo:hash`, or a bare hex / nixbase32 / base64 digest together with
//! `outputHashAlgo`), incremental hashing of streamed bytes, the NAR framing of a single file
//! (so `outputHashMode = "recursive"` fetches are hashed while they stream), and printing in the
//! two forms error messages show: SRI and nixbase32.
//!
//! The store crate owns the canonical hash types; this module only covers what the builtin
//! builders need to verify a download before the scheduler registers it.

use std::fmt;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use digest::DynDigest;

/// A hash algorithm a fixed-output derivation may name in `outputHashAlgo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// Parses Nix's algorithm names (`md5`, `sha1`, `sha256`, `sha512`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "md5" => Some(Self::Md5),
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The name Nix prints (`sha256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// A fresh incremental hasher for this algorithm.
    pub fn hasher(self) -> ContentHasher {
        let inner: Box<dyn DynDigest + Send> = match self {
            Self::Md5 => Box::new(md5::Md5::default()),
            Self::Sha1 => Box::new(sha1::Sha1::default()),
            Self::Sha256 => Box::new(sha2::Sha256::default()),
            Self::Sha512 => Box::new(sha2::Sha512::default()),
        };
        ContentHasher {
            algorithm: self,
            inner,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an `outputHash` could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashParseError {
    #[error("unknown hash algorithm `{0}`")]
    UnknownAlgorithm(String),
    #[error("hash `{0}` names no algorithm and `outputHashAlgo` is not set")]
    MissingAlgorithm(String),
    #[error("hash `{hash}` is not a valid {algorithm} hash in hex, nixbase32, base64 or SRI form")]
    BadDigest {
        hash: String,
        algorithm: HashAlgorithm,
    },
    #[error("hash `{hash}` is for {found} but `outputHashAlgo` says {declared}")]
    AlgorithmConflict {
        hash: String,
        found: HashAlgorithm,
        declared: HashAlgorithm,
    },
}

/// A digest together with its algorithm.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentHash {
    algorithm: HashAlgorithm,
    digest: Vec<u8>,
}

impl ContentHash {
    /// Builds a hash from raw digest bytes; `None` when the length does not fit the algorithm.
    pub fn from_digest(algorithm: HashAlgorithm, digest: Vec<u8>) -> Option<Self> {
        (digest.len() == algorithm.digest_len()).then_some(Self { algorithm, digest })
    }

    /// Parses a derivation's `outputHash`, with `outputHashAlgo` (which may be empty when the
    /// hash is in SRI form), the way Nix accepts them.
    pub fn parse(hash: &str, declared_algorithm: &str) -> Result<Self, HashParseError> {
        let declared = match declared_algorithm {
            "" => None,
            name => Some(
                HashAlgorithm::parse(name)
                    .ok_or_else(|| HashParseError::UnknownAlgorithm(name.to_owned()))?,
            ),
        };
        let (algorithm, encoded, sri) = if let Some((name, rest)) = hash.split_once('-') {
            match HashAlgorithm::parse(name) {
                Some(algorithm) => (algorithm, rest, true),
                None => return Err(HashParseError::UnknownAlgorithm(name.to_owned())),
            }
        } else if let Some((name, rest)) = hash.split_once(':') {
            let algorithm = HashAlgorithm::parse(name)
                .ok_or_else(|| HashParseError::UnknownAlgorithm(name.to_owned()))?;
            (algorithm, rest, false)
        } else {
            let algorithm =
                declared.ok_or_else(|| HashParseError::MissingAlgorithm(hash.to_owned()))?;
            (algorithm, hash, false)
        };
        if let Some(declared) = declared {
            if declared != algorithm {
                return Err(HashParseError::AlgorithmConflict {
                    hash: hash.to_owned(),
                    found: algorithm,
                    declared,
                });
            }
        }
        let bad = || HashParseError::BadDigest {
            hash: hash.to_owned(),
            algorithm,
        };
        let len = algorithm.digest_len();
        let digest = if sri {
            BASE64.decode(encoded.as_bytes()).map_err(|_| bad())?
        } else if encoded.len() == 2 * len {
            HEXLOWER_PERMISSIVE
                .decode(encoded.as_bytes())
                .map_err(|_| bad())?
        } else if encoded.len() == nixbase32_len(len) {
            nixbase32_decode(encoded).ok_or_else(bad)?
        } else {
            BASE64.decode(encoded.as_bytes()).map_err(|_| bad())?
        };
        Self::from_digest(algorithm, digest).ok_or_else(bad)
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// `sha256-<base64>`.
    pub fn to_sri(&self) -> String {
        format!("{}-{}", self.algorithm, BASE64.encode(&self.digest))
    }

    /// `sha256:<nixbase32>`, the form `nix hash to-base32` prints with its algorithm.
    pub fn to_nixbase32(&self) -> String {
        format!("{}:{}", self.algorithm, nixbase32_encode(&self.digest))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sri())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.to_sri(), self.to_nixbase32())
    }
}

/// An incremental hasher that reports the algorithm it was made for.
pub struct ContentHasher {
    algorithm: HashAlgorithm,
    inner: Box<dyn DynDigest + Send>,
}

impl ContentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    pub fn finish(self) -> ContentHash {
        ContentHash {
            algorithm: self.algorithm,
            digest: self.inner.finalize().into_vec(),
        }
    }
}

/// Feeds `hasher` the NAR framing that precedes a single regular file's contents
/// (`nix-archive-1 ( type regular [executable ""] contents <size>`).
pub fn nar_file_prefix(hasher: &mut ContentHasher, executable: bool, size: u64) {
    for token in ["nix-archive-1", "(", "type", "regular"] {
        nar_string(hasher, token.as_bytes());
    }
    if executable {
        nar_string(hasher, b"executable");
        nar_string(hasher, b"");
    }
    nar_string(hasher, b"contents");
    hasher.update(&size.to_le_bytes());
}

/// Feeds `hasher` the NAR framing that follows a single regular file's `size` content bytes.
pub fn nar_file_suffix(hasher: &mut ContentHasher, size: u64) {
    hasher.update(&[0u8; 8][..nar_padding(size)]);
    nar_string(hasher, b")");
}

fn nar_string(hasher: &mut ContentHasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
    hasher.update(&[0u8; 8][..nar_padding(bytes.len() as u64)]);
}

fn nar_padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

const NIXBASE32_ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

fn nixbase32_len(bytes: usize) -> usize {
    (bytes * 8).div_ceil(5)
}

/// Nix's base-32: 5-bit groups taken from the end of the digest, least significant bits first.
fn nixbase32_encode(bytes: &[u8]) -> String {
    let len = nixbase32_len(bytes.len());
    (0..len)
        .rev()
        .map(|n| {
            let bit = n * 5;
            let (byte, shift) = (bit / 8, bit % 8);
            let low = u16::from(bytes[byte]) >> shift;
            let high = bytes
                .get(byte + 1)
                .map_or(0, |b| u16::from(*b) << (8 - shift));
            char::from(NIXBASE32_ALPHABET[usize::from((low | high) & 0x1f)])
        })
        .collect()
}

fn nixbase32_decode(text: &str) -> Option<Vec<u8>> {
    let size = text.len() * 5 / 8;
    let mut bytes = vec![0u8; size];
    for (n, c) in text.bytes().rev().enumerate() {
        let digit = NIXBASE32_ALPHABET.iter().position(|a| *a == c)? as u16;
        let bit = n * 5;
        let (byte, shift) = (bit / 8, bit % 8);
        let spread = digit << shift;
        *bytes.get_mut(byte)? |= spread as u8;
        let carry = (spread >> 8) as u8;
        match bytes.get_mut(byte + 1) {
            Some(next) => *next |= carry,
            None if carry != 0 => return None,
            None => {}
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values from `nix hash to-base32` / `to-sri` / `nix hash path` (Nix 2.8).
    const ABC_SHA256_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const ABC_SHA256_NIX32: &str = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
    const ABC_SHA256_SRI: &str = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";

    fn hash_bytes(algorithm: HashAlgorithm, bytes: &[u8]) -> ContentHash {
        let mut hasher = algorithm.hasher();
        hasher.update(bytes);
        hasher.finish()
    }

    #[test]
    fn every_encoding_parses_to_the_same_hash() {
        let expected = hash_bytes(HashAlgorithm::Sha256, b"abc");
        for (text, algo) in [
            (ABC_SHA256_HEX, "sha256"),
            (ABC_SHA256_NIX32, "sha256"),
            ("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "sha256"),
            (ABC_SHA256_SRI, ""),
            (ABC_SHA256_SRI, "sha256"),
            (&format!("sha256:{ABC_SHA256_NIX32}"), ""),
        ] {
            assert_eq!(
                ContentHash::parse(text, algo),
                Ok(expected.clone()),
                "{text}"
            );
        }
        assert_eq!(expected.to_sri(), ABC_SHA256_SRI);
        assert_eq!(
            expected.to_nixbase32(),
            format!("sha256:{ABC_SHA256_NIX32}")
        );
    }

    #[test]
    fn sha1_prints_like_nix() {
        let hash = hash_bytes(HashAlgorithm::Sha1, b"abc");
        assert_eq!(hash.to_nixbase32(), "sha1:kpcd173cq987hw957sx6m0868wv3x6d9");
        assert_eq!(hash.to_sri(), "sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    }

    #[test]
    fn bad_hashes_are_refused() {
        assert!(matches!(
            ContentHash::parse(ABC_SHA256_HEX, ""),
            Err(HashParseError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            ContentHash::parse(ABC_SHA256_SRI, "sha1"),
            Err(HashParseError::AlgorithmConflict { .. })
        ));
        assert!(matches!(
            ContentHash::parse("abcd", "sha256"),
            Err(HashParseError::BadDigest { .. })
        ));
        assert!(matches!(
            ContentHash::parse(&ABC_SHA256_NIX32.replace('1', "e"), "sha256"),
            Err(HashParseError::BadDigest { .. })
        ));
        assert!(matches!(
            ContentHash::parse("blake9-xyz", ""),
            Err(HashParseError::UnknownAlgorithm(_))
        ));
    }

    #[test]
    fn nar_framing_of_a_single_file_matches_nix_hash_path() {
        for (executable, expected) in [
            (
                false,
                "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
            ),
            (true, "1yhh619m3cy1mird7f0l7zsmiv9rayqn075zinda2g7rscwn0hv5"),
        ] {
            let mut hasher = HashAlgorithm::Sha256.hasher();
            nar_file_prefix(&mut hasher, executable, 6);
            hasher.update(b"hello\n");
            nar_file_suffix(&mut hasher, 6);
            assert_eq!(hasher.finish().to_nixbase32(), format!("sha256:{expected}"));
        }
    }

    #[test]
    fn md5_and_sha512_flat_hashes_match_nix() {
        assert_eq!(
            hash_bytes(HashAlgorithm::Md5, b"hello\n").to_nixbase32(),
            "md5:4425hx5d1mc9y39llj4k4nm55i"
        );
        assert_eq!(
            hash_bytes(HashAlgorithm::Sha512, b"hello\n").to_nixbase32(),
            "sha512:0lrc0dwnvipqviibf7qfm1y492qvjwb1zhkcyi05cndmva1mr5gjcgrnz1x36djmk0sfg8djd2n0qv68vib2jg590mwznar9jcjphp7"
        );
    }
}
