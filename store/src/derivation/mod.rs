//! Store derivations: the `Derivation` type (outputs, input derivations with the outputs used,
//! input sources, platform, builder, arguments, environment), its ATerm form byte-identical to
//! Nix's `.drv` files (see `aterm`), `hashDerivationModulo` with a memo table (see
//! `hash_modulo`), output path computation for input-addressed and fixed-output derivations, and
//! the JSON of `nix show-derivation`.
//!
//! Maps are `BTreeMap`s keyed by strings or `StorePath`s, so iteration is in byte order, the
//! order of Nix's `std::map` and of the ATerm file.
mod aterm;
mod hash_modulo;

use std::collections::{BTreeMap, BTreeSet};

pub use hash_modulo::{DrvHashCache, DrvHashModulo};

use crate::hash::{Hash, HashError};
use crate::store_path::{
    output_path_name, ContentAddressMethod, StoreDir, StorePath, StorePathError,
};

/// Why a derivation could not be parsed or completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerivationError {
    #[error("error parsing derivation '{name}' at byte {offset}: {message}")]
    Parse {
        name: String,
        offset: usize,
        message: String,
    },
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("derivation '{0}': content-addressed outputs without a fixed hash are not supported")]
    FloatingContentAddress(String),
    #[error("derivation '{0}' mixes fixed-output and input-addressed outputs")]
    MixedOutputTypes(String),
    #[error("input derivation '{0}' is unknown (not instantiated in this evaluation)")]
    UnknownInput(String),
}

/// The fixed content hash of a fixed-output derivation's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixedOutputHash {
    /// `Flat` or `Recursive` (`Text` only appears in store path content addresses).
    pub method: ContentAddressMethod,
    pub hash: Hash,
}

impl FixedOutputHash {
    /// The `.drv` hashAlgo field: `r:sha256`, `sha1`, …
    pub fn method_algo(&self) -> String {
        self.method.method_algo(self.hash.algo())
    }

    /// The output path this hash fixes for output `output` of the derivation `drv_name`.
    pub fn output_path(
        &self,
        dir: &StoreDir,
        drv_name: &str,
        output: &str,
    ) -> Result<StorePath, StorePathError> {
        dir.make_fixed_output_path(
            self.method,
            &self.hash,
            &output_path_name(drv_name, output),
            &BTreeSet::new(),
            false,
        )
    }
}

/// One output of a derivation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivationOutput {
    /// The output path; `None` while it is still being computed (printed as `""`).
    pub path: Option<StorePath>,
    /// For fixed-output derivations, the declared content hash.
    pub fixed: Option<FixedOutputHash>,
}

/// A store derivation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derivation {
    /// The derivation's name (the `.drv` file is `<name>.drv`; not part of the ATerm).
    pub name: String,
    pub outputs: BTreeMap<String, DerivationOutput>,
    /// Input derivations and the names of the outputs used from each.
    pub input_drvs: BTreeMap<StorePath, BTreeSet<String>>,
    pub input_srcs: BTreeSet<StorePath>,
    /// The `system` attribute.
    pub platform: String,
    pub builder: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl Derivation {
    /// Whether every output has a fixed content hash (Nix's `CAFixed` derivation type).
    pub fn is_fixed_output(&self) -> bool {
        !self.outputs.is_empty() && self.outputs.values().all(|o| o.fixed.is_some())
    }

    /// The store paths a `.drv` file refers to: input sources and input derivations.
    pub fn references(&self) -> BTreeSet<StorePath> {
        self.input_srcs
            .iter()
            .chain(self.input_drvs.keys())
            .cloned()
            .collect()
    }

    /// The ATerm text of the `.drv` file, byte-identical to Nix's.
    pub fn to_aterm(&self, dir: &StoreDir) -> String {
        aterm::write(self, dir, None, false)
    }

    /// Parses a `.drv` file; `name` is the derivation name (the file name without `.drv`).
    pub fn from_aterm(
        dir: &StoreDir,
        name: &str,
        text: &str,
    ) -> Result<Derivation, DerivationError> {
        aterm::parse(dir, name, text)
    }

    /// Parses a `.drv` file given its store path.
    pub fn from_drv_file(
        dir: &StoreDir,
        drv_path: &StorePath,
        text: &str,
    ) -> Result<Derivation, DerivationError> {
        let name = drv_path
            .name()
            .strip_suffix(".drv")
            .unwrap_or(drv_path.name());
        aterm::parse(dir, name, text)
    }

    /// The path of this derivation's `.drv` file, given its ATerm text.
    pub fn drv_path(&self, dir: &StoreDir, aterm: &str) -> Result<StorePath, StorePathError> {
        dir.make_text_path(
            &format!("{}.drv", self.name),
            aterm.as_bytes(),
            &self.references(),
        )
    }

    /// Fills in the output paths (and the matching environment variables) of a derivation
    /// under construction, as `derivationStrict` does: fixed-output derivations get their path
    /// from the declared hash; input-addressed ones from the hash modulo of the masked
    /// derivation. `input_hash` gives the hash modulo of each input derivation.
    pub fn fill_output_paths(
        &mut self,
        dir: &StoreDir,
        input_hash: &mut dyn FnMut(&StorePath) -> Option<DrvHashModulo>,
    ) -> Result<(), DerivationError> {
        if self.is_fixed_output() {
            let name = self.name.clone();
            for (output_name, output) in self.outputs.iter_mut() {
                // `is_fixed_output` checked that every output has a fixed hash.
                let Some(fixed) = output.fixed else { continue };
                let path = fixed.output_path(dir, &name, output_name)?;
                self.env.insert(output_name.clone(), dir.print(&path));
                output.path = Some(path);
            }
            return Ok(());
        }
        if self.outputs.values().any(|o| o.fixed.is_some()) {
            return Err(DerivationError::MixedOutputTypes(self.name.clone()));
        }
        for (output_name, output) in self.outputs.iter_mut() {
            output.path = None;
            self.env.insert(output_name.clone(), String::new());
        }
        let masked_hash = hash_modulo::hash_modulo(self, dir, true, &mut |drv_path| {
            input_hash(drv_path).ok_or_else(|| DerivationError::UnknownInput(dir.print(drv_path)))
        })?;
        let DrvHashModulo::Regular(hash) = masked_hash else {
            // Only fixed-output derivations hash to per-output hashes, handled above.
            return Err(DerivationError::MixedOutputTypes(self.name.clone()));
        };
        for (output_name, output) in self.outputs.iter_mut() {
            let path = dir.make_output_path(output_name, &hash, &self.name)?;
            self.env.insert(output_name.clone(), dir.print(&path));
            output.path = Some(path);
        }
        Ok(())
    }

    /// Nix's `hashDerivationModulo`; see [`DrvHashCache`] for the memoised form.
    pub fn hash_modulo(
        &self,
        dir: &StoreDir,
        mask_outputs: bool,
        input_hash: &mut dyn FnMut(&StorePath) -> Result<DrvHashModulo, DerivationError>,
    ) -> Result<DrvHashModulo, DerivationError> {
        hash_modulo::hash_modulo(self, dir, mask_outputs, input_hash)
    }

    /// The object `nix show-derivation` prints for this derivation (without the enclosing
    /// `{ drvPath: … }`).
    pub fn to_json(&self, dir: &StoreDir) -> serde_json::Value {
        use serde_json::{Map, Value};
        let mut outputs = Map::new();
        for (name, output) in &self.outputs {
            let mut entry = Map::new();
            let path = output
                .path
                .as_ref()
                .map(|p| dir.print(p))
                .unwrap_or_default();
            entry.insert("path".into(), Value::String(path));
            if let Some(fixed) = &output.fixed {
                entry.insert("hashAlgo".into(), Value::String(fixed.method_algo()));
                entry.insert("hash".into(), Value::String(fixed.hash.to_hex()));
            }
            outputs.insert(name.clone(), Value::Object(entry));
        }
        let input_srcs = self
            .input_srcs
            .iter()
            .map(|p| Value::String(dir.print(p)))
            .collect();
        let input_drvs = self
            .input_drvs
            .iter()
            .map(|(path, outputs)| {
                let names = outputs.iter().cloned().map(Value::String).collect();
                (dir.print(path), Value::Array(names))
            })
            .collect();
        let env = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut object = Map::new();
        object.insert("outputs".into(), Value::Object(outputs));
        object.insert("inputSrcs".into(), Value::Array(input_srcs));
        object.insert("inputDrvs".into(), Value::Object(input_drvs));
        object.insert("system".into(), Value::String(self.platform.clone()));
        object.insert("builder".into(), Value::String(self.builder.clone()));
        let args = self.args.iter().cloned().map(Value::String).collect();
        object.insert("args".into(), Value::Array(args));
        object.insert("env".into(), Value::Object(env));
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests;
