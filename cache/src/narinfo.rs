//! `.narinfo` files, a binary cache's description of one store path, parsed and printed as Nix
//! writes them (`StorePath`, `URL`, `Compression`, `FileHash`, `FileSize`, `NarHash`,
//! `NarSize`, `References`, `Deriver`, `Sig`, `CA`), and the fingerprint
//! `1;<path>;<narHash>;<narSize>;<refs>` that signatures cover.
use std::collections::BTreeSet;

use kiln_store::hash::{Hash, HashAlgo, HashEncoding};
use kiln_store::store_path::{StoreDir, StorePath};

use crate::compression::Compression;
use crate::signing::{SecretKey, TrustedKeys};

/// Why a narinfo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarInfoError {
    #[error("line {line} is not 'Key: value'")]
    NotKeyValue { line: usize },
    #[error("the field '{0}' is missing")]
    Missing(&'static str),
    #[error("the field '{field}' is invalid: '{value}'")]
    Invalid { field: &'static str, value: String },
    #[error("the store path '{path}' is not in the store directory '{expected}'")]
    OtherStoreDir { path: String, expected: String },
}

/// What a narinfo says about one store path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfo {
    /// The store path described.
    pub path: StorePath,
    /// Where the (compressed) NAR is, relative to the cache's root.
    pub url: String,
    /// How the file at `url` is compressed.
    pub compression: Compression,
    /// Hash of the compressed file.
    pub file_hash: Option<Hash>,
    /// Size of the compressed file.
    pub file_size: Option<u64>,
    /// sha256 of the NAR.
    pub nar_hash: Hash,
    /// Size of the NAR.
    pub nar_size: u64,
    /// The paths this one refers to.
    pub references: BTreeSet<StorePath>,
    /// The derivation that built it.
    pub deriver: Option<StorePath>,
    /// Signatures `NAME:base64` over the fingerprint.
    pub signatures: BTreeSet<String>,
    /// The content address, for content-addressed paths.
    pub ca: Option<String>,
}

fn invalid(field: &'static str, value: &str) -> NarInfoError {
    NarInfoError::Invalid {
        field,
        value: value.to_owned(),
    }
}

impl NarInfo {
    /// Parses a narinfo whose paths must lie in `store_dir`. Unknown fields are ignored and a
    /// missing `Compression` means bzip2, as in Nix.
    pub fn parse(text: &str, store_dir: &StoreDir) -> Result<NarInfo, NarInfoError> {
        let mut path = None;
        let mut url = None;
        let mut compression = None;
        let mut file_hash = None;
        let mut file_size = None;
        let mut nar_hash = None;
        let mut nar_size = None;
        let mut references = BTreeSet::new();
        let mut deriver = None;
        let mut signatures = BTreeSet::new();
        let mut ca = None;
        let base_name = |field: &'static str, value: &str| {
            StorePath::from_base_name(value).map_err(|_| invalid(field, value))
        };
        // Lines end at a line feed only, as Nix splits them: a carriage return is part of the
        // value (`str::lines` would drop one, so a value ending in `\r` would not print back).
        for (index, line) in text.split('\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|key| (key, "")))
                .ok_or(NarInfoError::NotKeyValue { line: index + 1 })?;
            match key {
                "StorePath" => {
                    let in_dir = value
                        .strip_prefix(store_dir.as_str())
                        .is_some_and(|rest| rest.starts_with('/'));
                    if !in_dir {
                        return Err(NarInfoError::OtherStoreDir {
                            path: value.to_owned(),
                            expected: store_dir.as_str().to_owned(),
                        });
                    }
                    let parsed = store_dir
                        .parse(value)
                        .map_err(|_| invalid("StorePath", value))?;
                    path = Some(parsed);
                }
                "URL" => {
                    if value.is_empty() {
                        return Err(invalid("URL", value));
                    }
                    url = Some(value.to_owned());
                }
                "Compression" => {
                    compression = Some(
                        Compression::from_name(value)
                            .ok_or_else(|| invalid("Compression", value))?,
                    )
                }
                "FileHash" => {
                    file_hash =
                        Some(Hash::parse_prefixed(value).map_err(|_| invalid("FileHash", value))?)
                }
                "FileSize" => {
                    file_size = Some(value.parse().map_err(|_| invalid("FileSize", value))?)
                }
                "NarHash" => {
                    let hash =
                        Hash::parse_prefixed(value).map_err(|_| invalid("NarHash", value))?;
                    if hash.algo() != HashAlgo::Sha256 {
                        return Err(invalid("NarHash", value));
                    }
                    nar_hash = Some(hash);
                }
                "NarSize" => nar_size = Some(value.parse().map_err(|_| invalid("NarSize", value))?),
                "References" => {
                    for reference in value.split(' ').filter(|r| !r.is_empty()) {
                        references.insert(base_name("References", reference)?);
                    }
                }
                "Deriver" if value != "unknown-deriver" && !value.is_empty() => {
                    deriver = Some(base_name("Deriver", value)?);
                }
                "Sig" if !value.is_empty() => {
                    signatures.insert(value.to_owned());
                }
                "CA" if !value.is_empty() => ca = Some(value.to_owned()),
                _ => {}
            }
        }
        let nar_size: u64 = nar_size.ok_or(NarInfoError::Missing("NarSize"))?;
        if nar_size == 0 {
            return Err(invalid("NarSize", "0"));
        }
        Ok(NarInfo {
            path: path.ok_or(NarInfoError::Missing("StorePath"))?,
            url: url.ok_or(NarInfoError::Missing("URL"))?,
            compression: compression.unwrap_or(Compression::Bzip2),
            file_hash,
            file_size,
            nar_hash: nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size,
            references,
            deriver,
            signatures,
            ca,
        })
    }

    /// The narinfo text, field by field as Nix prints it.
    pub fn to_text(&self, store_dir: &StoreDir) -> String {
        let mut text = String::new();
        text.push_str(&format!("StorePath: {}\n", store_dir.print(&self.path)));
        text.push_str(&format!("URL: {}\n", self.url));
        text.push_str(&format!("Compression: {}\n", self.compression.name()));
        if let Some(hash) = &self.file_hash {
            text.push_str(&format!(
                "FileHash: {}\n",
                hash.encode(HashEncoding::Nixbase32, true)
            ));
        }
        if let Some(size) = self.file_size.filter(|&size| size != 0) {
            text.push_str(&format!("FileSize: {size}\n"));
        }
        text.push_str(&format!(
            "NarHash: {}\n",
            self.nar_hash.encode(HashEncoding::Nixbase32, true)
        ));
        text.push_str(&format!("NarSize: {}\n", self.nar_size));
        let references: Vec<&str> = self.references.iter().map(StorePath::base_name).collect();
        text.push_str(&format!("References: {}\n", references.join(" ")));
        if let Some(deriver) = &self.deriver {
            text.push_str(&format!("Deriver: {}\n", deriver.base_name()));
        }
        for signature in &self.signatures {
            text.push_str(&format!("Sig: {signature}\n"));
        }
        if let Some(ca) = &self.ca {
            text.push_str(&format!("CA: {ca}\n"));
        }
        text
    }

    /// The message signatures cover.
    pub fn fingerprint(&self, store_dir: &StoreDir) -> String {
        fingerprint(
            store_dir,
            &self.path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
        )
    }

    /// Adds this key's signature.
    pub fn sign(&mut self, store_dir: &StoreDir, key: &SecretKey) {
        self.signatures
            .insert(key.sign(&self.fingerprint(store_dir)));
    }

    /// Whether a trusted key signed this narinfo.
    pub fn is_trusted(&self, store_dir: &StoreDir, keys: &TrustedKeys) -> bool {
        keys.any_valid(&self.fingerprint(store_dir), &self.signatures)
    }
}

/// Nix's fingerprint of a path: `1;<path>;<sha256:nixbase32>;<narSize>;<ref>,<ref>…` with full
/// paths, references sorted.
pub fn fingerprint(
    store_dir: &StoreDir,
    path: &StorePath,
    nar_hash: &Hash,
    nar_size: u64,
    references: &BTreeSet<StorePath>,
) -> String {
    let references: Vec<String> = references.iter().map(|r| store_dir.print(r)).collect();
    format!(
        "1;{};{};{};{}",
        store_dir.print(path),
        nar_hash.encode(HashEncoding::Nixbase32, true),
        nar_size,
        references.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::PublicKey;

    /// Written by `nix copy --to file://…` (Nix 2.8) after `nix store sign` with the key below.
    const SIGNED: &str = "StorePath: /tmp/oracle/store2/k17hl58zl2bhkmv3yfk6iwdikgydi6sk-t
URL: nar/04hkl33pam6dcjgwyz8fvf939lgspz8cl3rzsqrc5bbr11m6xkdy.nar.xz
Compression: xz
FileHash: sha256:04hkl33pam6dcjgwyz8fvf939lgspz8cl3rzsqrc5bbr11m6xkdy
FileSize: 184
NarHash: sha256:0l8zx5x554r6vhmg2qvwrh05yy1qxjamav7f2j73blm4ri44wrpg
NarSize: 176
References: 5z81nwlqq5xl49rk890hsdzgi7z9lbgc-dep.txt
Deriver: 0zzcsbn9g6ykg54i81f6ndghhs84zcgb-t.drv
Sig: test-key-1:cvjElSMBElnOQCZQS0PP36Ko+uJah/9J1RZF2c5PK+HoyWwl2pFcicuzBb/+efhSPnoJclZbG1jjtecptRBnCA==
";
    /// A content-addressed path without references, `?compression=zstd` (Nix 2.8).
    const CONTENT_ADDRESSED: &str =
        "StorePath: /tmp/oracle/store2/5z81nwlqq5xl49rk890hsdzgi7z9lbgc-dep.txt
URL: nar/0vff07vxc79k0bj0npwsyb80bdaakv995wf2llf5ckxcgr52b9ls.nar.zst
Compression: zstd
FileHash: sha256:0vff07vxc79k0bj0npwsyb80bdaakv995wf2llf5ckxcgr52b9ls
FileSize: 90
NarHash: sha256:1jp038j604f16957rp4bk4946mzhq6xlv7qffa6prrqpiivsy6h8
NarSize: 128
References: 
CA: text:sha256:0k0fnnsqkllrh4yryksv8621zq3scrr5g126b86mpd2p7mj28jd8
";
    const SECRET: &str = "test-key-1:1Jx5P919ugXrv0n74sljH6k80DXYXWx8B/VJpY+apfEIpcKTRFm6M30idIznxePkv7wVBKdZT19n6kvo+Nzb/Q==";
    const PUBLIC: &str = "test-key-1:CKXCk0RZujN9InSM58Xj5L+8FQSnWU9fZ+pL6Pjc2/0=";

    fn dir() -> StoreDir {
        StoreDir::new("/tmp/oracle/store2")
    }

    #[test]
    fn nix_narinfos_parse_and_print_back_byte_for_byte() {
        for text in [SIGNED, CONTENT_ADDRESSED] {
            let info = NarInfo::parse(text, &dir()).unwrap();
            assert_eq!(info.to_text(&dir()), text);
        }
        let info = NarInfo::parse(SIGNED, &dir()).unwrap();
        assert_eq!(info.compression, Compression::Xz);
        assert_eq!(info.nar_size, 176);
        assert_eq!(info.references.len(), 1);
        assert_eq!(info.deriver.unwrap().name(), "t.drv");
        let ca = NarInfo::parse(CONTENT_ADDRESSED, &dir()).unwrap();
        assert!(ca.references.is_empty());
        assert_eq!(ca.compression, Compression::Zstd);
    }

    #[test]
    fn carriage_returns_are_kept_so_printing_is_stable() {
        // Found by the narinfo fuzz target: `str::lines` dropped one trailing carriage return
        // per parse, so a signature ending in several changed at every print and parse.
        let text = SIGNED.replacen("\nSig: ", "\nSig: x:y\r\r\nSig: ", 1);
        let info = NarInfo::parse(&text, &dir()).unwrap();
        assert!(info.signatures.contains("x:y\r\r"));
        let printed = info.to_text(&dir());
        assert_eq!(
            NarInfo::parse(&printed, &dir()).unwrap().to_text(&dir()),
            printed
        );
        // A line ending in a carriage return is not a CRLF line ending to Nix either.
        let crlf = SIGNED.replace('\n', "\r\n");
        assert!(NarInfo::parse(&crlf, &dir()).is_err());
    }

    #[test]
    fn the_fingerprint_and_signature_are_nix_s() {
        let info = NarInfo::parse(SIGNED, &dir()).unwrap();
        assert_eq!(
            info.fingerprint(&dir()),
            "1;/tmp/oracle/store2/k17hl58zl2bhkmv3yfk6iwdikgydi6sk-t;\
             sha256:0l8zx5x554r6vhmg2qvwrh05yy1qxjamav7f2j73blm4ri44wrpg;176;\
             /tmp/oracle/store2/5z81nwlqq5xl49rk890hsdzgi7z9lbgc-dep.txt"
        );
        let trusted = TrustedKeys::parse([PUBLIC]).unwrap();
        assert!(info.is_trusted(&dir(), &trusted));
        let mut unsigned = info.clone();
        unsigned.signatures.clear();
        assert!(!unsigned.is_trusted(&dir(), &trusted));
        unsigned.sign(&dir(), &SecretKey::parse(SECRET).unwrap());
        assert_eq!(unsigned.signatures, info.signatures);
        let mut other_refs = info.clone();
        other_refs.references.clear();
        assert!(!other_refs.is_trusted(&dir(), &trusted));
        let mut other_key = TrustedKeys::default();
        other_key.insert(
            PublicKey::parse("test-key-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap(),
        );
        assert!(!info.is_trusted(&dir(), &other_key));
    }

    #[test]
    fn bad_narinfos_are_refused() {
        let other = NarInfo::parse(SIGNED, &StoreDir::new("/nix/store")).unwrap_err();
        assert!(
            matches!(other, NarInfoError::OtherStoreDir { .. }),
            "{other}"
        );
        assert!(
            other.to_string().contains("/tmp/oracle/store2")
                && other.to_string().contains("/nix/store")
        );
        for (field, broken) in [
            (
                "NarHash",
                SIGNED.replace("NarHash: sha256:0l8", "NarHash: sha256:xyz"),
            ),
            ("NarSize", SIGNED.replace("NarSize: 176", "NarSize: many")),
            ("NarSize", SIGNED.replace("NarSize: 176", "NarSize: 0")),
            (
                "References",
                SIGNED.replace("5z81nwlqq5xl49rk890hsdzgi7z9lbgc-dep.txt", "../etc"),
            ),
            (
                "Compression",
                SIGNED.replace("Compression: xz", "Compression: lz77"),
            ),
            (
                "StorePath",
                SIGNED.replace("k17hl58zl2bhkmv3yfk6iwdikgydi6sk-t", "k17/t"),
            ),
        ] {
            let error = NarInfo::parse(&broken, &dir()).unwrap_err();
            assert!(error.to_string().contains(field), "{field}: {error}");
        }
        let missing = SIGNED.replace("URL: ", "Url: ");
        assert_eq!(
            NarInfo::parse(&missing, &dir()),
            Err(NarInfoError::Missing("URL"))
        );
        assert!(matches!(
            NarInfo::parse("garbage", &dir()),
            Err(NarInfoError::NotKeyValue { line: 1 })
        ));
        let no_compression = SIGNED.replace("Compression: xz\n", "");
        assert_eq!(
            NarInfo::parse(&no_compression, &dir()).unwrap().compression,
            Compression::Bzip2
        );
    }
}
