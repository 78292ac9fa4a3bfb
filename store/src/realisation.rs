//! Realisations (Nix's `ca-derivations`): which store path an output of a derivation turned out
//! to be. An output is named by its [`DrvOutput`] id, `<hash>!<output>` where the hash is the
//! derivation's static output hash (its masked hash modulo, `sha256:<base16>`), so that two
//! `.drv` files that differ only in how their inputs were obtained share realisations. A
//! [`Realisation`] also names the realisations of the inputs its output refers to (dependent
//! realisations) and carries signatures over its [`Realisation::fingerprint`]; its JSON is the
//! `.doi` document Nix writes into binary caches.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::hash::{Hash, HashEncoding, HashError};
use crate::store_path::{StorePath, StorePathError};

/// Why a realisation id or document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealisationError {
    #[error("invalid derivation output id '{0}' (expected '<hash>!<output>')")]
    InvalidId(String),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error("invalid realisation document: {0}")]
    Document(String),
}

/// One output of a derivation, named by the derivation's static output hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DrvOutput {
    pub drv_hash: Hash,
    pub output: String,
}

impl DrvOutput {
    /// The hash half as Nix prints it: `sha256:<base16>`.
    pub fn hash_text(&self) -> String {
        self.drv_hash.encode(HashEncoding::Base16, true)
    }
}

impl fmt::Display for DrvOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}!{}", self.hash_text(), self.output)
    }
}

impl FromStr for DrvOutput {
    type Err = RealisationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (hash, output) = text
            .split_once('!')
            .ok_or_else(|| RealisationError::InvalidId(text.to_owned()))?;
        if output.is_empty() {
            return Err(RealisationError::InvalidId(text.to_owned()));
        }
        Ok(DrvOutput {
            drv_hash: Hash::parse_prefixed(hash)?,
            output: output.to_owned(),
        })
    }
}

/// The path an output was realised at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Realisation {
    pub id: DrvOutput,
    pub out_path: StorePath,
    /// `NAME:base64` signatures over [`Realisation::fingerprint`].
    pub signatures: BTreeSet<String>,
    /// The realisations of input outputs that `out_path` refers to.
    pub dependent_realisations: BTreeMap<DrvOutput, StorePath>,
}

impl Realisation {
    /// The JSON object of a `.doi` document (store paths as base names, as Nix writes them),
    /// keys in Nix's (sorted) order.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = self.unsigned_json();
        let signatures = self
            .signatures
            .iter()
            .map(|s| serde_json::Value::String(s.clone()))
            .collect();
        object.insert("signatures".into(), serde_json::Value::Array(signatures));
        serde_json::Value::Object(object)
    }

    fn unsigned_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let dependents = self
            .dependent_realisations
            .iter()
            .map(|(id, path)| {
                (
                    id.to_string(),
                    serde_json::Value::String(path.base_name().to_owned()),
                )
            })
            .collect();
        let mut object = serde_json::Map::new();
        object.insert(
            "dependentRealisations".into(),
            serde_json::Value::Object(dependents),
        );
        object.insert("id".into(), serde_json::Value::String(self.id.to_string()));
        object.insert(
            "outPath".into(),
            serde_json::Value::String(self.out_path.base_name().to_owned()),
        );
        object
    }

    /// What a signature signs: the compact JSON without `signatures`, keys sorted.
    pub fn fingerprint(&self) -> String {
        serde_json::Value::Object(self.unsigned_json()).to_string()
    }

    /// Reads a `.doi` document.
    pub fn from_json(text: &str) -> Result<Realisation, RealisationError> {
        let document = |message: &str| RealisationError::Document(message.to_owned());
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RealisationError::Document(e.to_string()))?;
        let id = value
            .get("id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| document("no 'id'"))?
            .parse()?;
        let out_path = StorePath::from_base_name(
            value
                .get("outPath")
                .and_then(|v| v.as_str())
                .ok_or_else(|| document("no 'outPath'"))?,
        )?;
        let mut signatures = BTreeSet::new();
        if let Some(list) = value.get("signatures").and_then(|v| v.as_array()) {
            for item in list {
                let text = item
                    .as_str()
                    .ok_or_else(|| document("a signature is not a string"))?;
                signatures.insert(text.to_owned());
            }
        }
        let mut dependent_realisations = BTreeMap::new();
        if let Some(map) = value
            .get("dependentRealisations")
            .and_then(|v| v.as_object())
        {
            for (key, path) in map {
                let path = path
                    .as_str()
                    .ok_or_else(|| document("a dependent realisation is not a path"))?;
                dependent_realisations.insert(key.parse()?, StorePath::from_base_name(path)?);
            }
        }
        Ok(Realisation {
            id,
            out_path,
            signatures,
            dependent_realisations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_fingerprints_are_sorted_compact_json() {
        let id: DrvOutput =
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!out"
                .parse()
                .expect("a valid id");
        assert_eq!(id.output, "out");
        assert_eq!(
            id.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!out"
        );
        assert!("sha256:abc".parse::<DrvOutput>().is_err());
        let realisation = Realisation {
            id: id.clone(),
            out_path: StorePath::from_base_name("00000000000000000000000000000000-a")
                .expect("a valid path"),
            signatures: BTreeSet::from(["k:sig".to_owned()]),
            dependent_realisations: BTreeMap::new(),
        };
        assert_eq!(
            realisation.fingerprint(),
            format!(
                r#"{{"dependentRealisations":{{}},"id":"{id}","outPath":"00000000000000000000000000000000-a"}}"#
            )
        );
        let back =
            Realisation::from_json(&realisation.to_json().to_string()).expect("its own document");
        assert_eq!(back, realisation);
    }
}
