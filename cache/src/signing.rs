//! Nix's signing keys and signatures: ed25519 keys written `NAME:base64` (a secret key is the
//! 32-byte seed followed by the 32-byte public key, as `nix-store --generate-binary-cache-key`
//! writes it; a public key is the 32 bytes), signatures `NAME:base64(64 bytes)` over a path's
//! fingerprint, and the set of trusted public keys a signature is checked against.
use std::collections::BTreeMap;
use std::fmt;

use data_encoding::BASE64;
use ed25519_dalek::{Signer, Verifier};

/// Why a key or signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what} '{text}' is not NAME:BASE64")]
    NoName { what: &'static str, text: String },
    #[error("{what} named '{name}' is not valid base64")]
    Base64 { what: &'static str, name: String },
    #[error("{what} named '{name}' has {found} bytes, expected {expected}")]
    Length {
        what: &'static str,
        name: String,
        found: usize,
        expected: usize,
    },
    #[error("secret key '{0}' does not match the public key it carries")]
    Mismatch(String),
}

/// Splits `NAME:BASE64` and decodes the base64 into `N` bytes.
fn split_named<const N: usize>(
    what: &'static str,
    text: &str,
) -> Result<(String, [u8; N]), KeyError> {
    let text = text.trim();
    let (name, encoded) = text
        .split_once(':')
        .filter(|(name, encoded)| !name.is_empty() && !encoded.is_empty())
        .ok_or_else(|| KeyError::NoName {
            what,
            text: text.to_owned(),
        })?;
    let bytes = BASE64
        .decode(encoded.as_bytes())
        .map_err(|_| KeyError::Base64 {
            what,
            name: name.to_owned(),
        })?;
    let found = bytes.len();
    let array = <[u8; N]>::try_from(bytes).map_err(|_| KeyError::Length {
        what,
        name: name.to_owned(),
        found,
        expected: N,
    })?;
    Ok((name.to_owned(), array))
}

/// A secret signing key with its name.
pub struct SecretKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A fresh random key named `name`.
    pub fn generate(name: &str) -> SecretKey {
        SecretKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// Parses `NAME:base64(seed ‖ public key)`.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let (name, bytes) = split_named::<64>("secret key", text)?;
        let key = ed25519_dalek::SigningKey::from_keypair_bytes(&bytes)
            .map_err(|_| KeyError::Mismatch(name.clone()))?;
        Ok(SecretKey { name, key })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `NAME:base64(seed ‖ public key)`, as Nix writes a secret key file.
    pub fn to_text(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(&self.key.to_keypair_bytes())
        )
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The signature `NAME:base64(signature)` of `message` (a path's fingerprint).
    pub fn sign(&self, message: &str) -> String {
        let signature = self.key.sign(message.as_bytes());
        format!("{}:{}", self.name, BASE64.encode(&signature.to_bytes()))
    }
}

/// A public key with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// Parses `NAME:base64(public key)`.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let (name, bytes) = split_named::<32>("public key", text)?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Length {
                what: "public key",
                name: name.clone(),
                found: 32,
                expected: 32,
            })?;
        Ok(PublicKey { name, key })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `NAME:base64(public key)`.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }

    /// Whether `signature` (`NAME:base64`) is this key's signature of `message`; a signature
    /// under another name is not.
    pub fn verifies(&self, message: &str, signature: &str) -> bool {
        let Ok((name, bytes)) = split_named::<64>("signature", signature) else {
            return false;
        };
        name == self.name
            && self
                .key
                .verify(
                    message.as_bytes(),
                    &ed25519_dalek::Signature::from_bytes(&bytes),
                )
                .is_ok()
    }
}

/// The public keys signatures are checked against (`trusted-public-keys`), by name.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, PublicKey>,
}

impl TrustedKeys {
    /// Parses each `NAME:base64` key.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<TrustedKeys, KeyError> {
        let mut keys = BTreeMap::new();
        for text in texts {
            let key = PublicKey::parse(text)?;
            keys.insert(key.name.clone(), key);
        }
        Ok(TrustedKeys { keys })
    }

    /// Adds a key (replacing one of the same name).
    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.name.clone(), key);
    }

    /// Whether there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether one of `signatures` is a valid signature of `message` by a trusted key.
    pub fn any_valid<'a>(
        &self,
        message: &str,
        signatures: impl IntoIterator<Item = &'a String>,
    ) -> bool {
        signatures.into_iter().any(|signature| {
            signature
                .split_once(':')
                .and_then(|(name, _)| self.keys.get(name))
                .is_some_and(|key| key.verifies(message, signature))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From `nix-store --generate-binary-cache-key test-key-1 sk pk` (Nix 2.8).
    const SECRET: &str = "test-key-1:1Jx5P919ugXrv0n74sljH6k80DXYXWx8B/VJpY+apfEIpcKTRFm6M30idIznxePkv7wVBKdZT19n6kvo+Nzb/Q==";
    const PUBLIC: &str = "test-key-1:CKXCk0RZujN9InSM58Xj5L+8FQSnWU9fZ+pL6Pjc2/0=";
    // `nix store sign --key-file sk` of a path without references (Nix 2.8), and its
    // fingerprint as Nix computes it.
    const FINGERPRINT: &str = "1;/tmp/oracle/store/02gpr1sp5rbnzc1s7kpb3dgf7f0slcdy-d;sha256:19w0faprn432gw32zzlxhgy62azxf7sfz1gh1j4azr8pp6rcwm2w;480;";
    const SIGNATURE: &str = "test-key-1:2NrcJ6Am5auVpKxZ60XZjiFTMGnH95X+HfMa8EQ9szH8DvKHivhagqiEo4X9lqMhyIX4PjI5qi0Qm7Plj2poDA==";

    #[test]
    fn nix_keys_round_trip_and_sign_as_nix_signs() {
        let secret = SecretKey::parse(SECRET).unwrap();
        assert_eq!(secret.to_text(), SECRET);
        assert_eq!(secret.public_key().to_text(), PUBLIC);
        assert_eq!(secret.sign(FINGERPRINT), SIGNATURE);
        let public = PublicKey::parse(PUBLIC).unwrap();
        assert!(public.verifies(FINGERPRINT, SIGNATURE));
        assert!(!public.verifies(&FINGERPRINT.replace("480", "481"), SIGNATURE));
        let renamed = SIGNATURE.replace("test-key-1:", "other:");
        assert!(!public.verifies(FINGERPRINT, &renamed));
    }

    #[test]
    fn trusted_keys_accept_only_their_own_signatures() {
        let trusted = TrustedKeys::parse([PUBLIC]).unwrap();
        assert!(trusted.any_valid(FINGERPRINT, &[SIGNATURE.to_owned()]));
        let stranger = SecretKey::generate("test-key-1");
        let forged = stranger.sign(FINGERPRINT);
        assert!(!trusted.any_valid(FINGERPRINT, std::slice::from_ref(&forged)));
        assert!(trusted.any_valid(FINGERPRINT, &[forged, SIGNATURE.to_owned()]));
        assert!(!TrustedKeys::default().any_valid(FINGERPRINT, &[SIGNATURE.to_owned()]));
    }

    #[test]
    fn generated_keys_parse_back() {
        let secret = SecretKey::generate("cache.example-1");
        let again = SecretKey::parse(&secret.to_text()).unwrap();
        let public = PublicKey::parse(&again.public_key().to_text()).unwrap();
        assert!(public.verifies("message", &secret.sign("message")));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(matches!(
            SecretKey::parse("nocolon"),
            Err(KeyError::NoName { .. })
        ));
        assert!(matches!(
            PublicKey::parse(":AAAA"),
            Err(KeyError::NoName { .. })
        ));
        assert!(matches!(
            PublicKey::parse("k:!!!"),
            Err(KeyError::Base64 { .. })
        ));
        assert!(matches!(
            PublicKey::parse("k:AAAA"),
            Err(KeyError::Length { found: 3, .. })
        ));
        // A secret key whose public half is not its own.
        let mut bytes = BASE64
            .decode(SECRET.split_once(':').unwrap().1.as_bytes())
            .unwrap();
        bytes[40] ^= 1;
        let tampered = format!("test-key-1:{}", BASE64.encode(&bytes));
        assert!(matches!(
            SecretKey::parse(&tampered),
            Err(KeyError::Mismatch(_))
        ));
    }
}
