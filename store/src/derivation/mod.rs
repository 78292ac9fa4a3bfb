//! Store derivations: the `Derivation` type (outputs, input derivations with the outputs used,
//! input sources, platform, builder, arguments, environment), its ATerm form byte-identical to
//! Nix's `.drv` files (see `aterm`), `hashDerivationModulo` with a memo table (see
//! `hash_modulo`), output path computation for input-addressed, fixed-output, floating
//! content-addressed and deferred derivations (Nix's `ca-derivations`), resolution of a
//! derivation against the realised outputs of its inputs (see `resolve`), and the JSON of
//! `nix show-derivation` (see `json`).
//!
//! Maps are `BTreeMap`s keyed by strings, byte strings or `StorePath`s, so iteration is in
//! byte order, the order of Nix's `std::map` and of the ATerm file. The builder, arguments and
//! environment (names and values) are bytes, as Nix strings are; names of the derivation and
//! its outputs, paths and the platform are text.
mod aterm;
mod hash_modulo;
mod json;
mod resolve;

use std::collections::{BTreeMap, BTreeSet};

pub use hash_modulo::{DrvHashCache, DrvHashModulo};
pub use json::Json;
pub use resolve::{downstream_placeholder, hash_placeholder, rewrite_strings};

use crate::hash::{Hash, HashAlgo, HashError};
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
    #[error("derivation '{0}' mixes fixed-output, floating content-addressed and input-addressed outputs")]
    MixedOutputTypes(String),
    #[error("cannot resolve derivation '{drv}': output '{output}' of its input '{input}' is not realised")]
    UnrealisedInput {
        drv: String,
        input: String,
        output: String,
    },
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

/// How a floating content-addressed output (`__contentAddressed = true`) will be hashed once
/// built; its path is known only then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FloatingOutput {
    /// `Flat` or `Recursive`.
    pub method: ContentAddressMethod,
    pub algo: HashAlgo,
}

impl FloatingOutput {
    /// The `.drv` hashAlgo field: `r:sha256`, `sha1`, …
    pub fn method_algo(&self) -> String {
        self.method.method_algo(self.algo)
    }
}

/// One output of a derivation. Nix's five kinds map to: input-addressed (`path` only), fixed
/// (`fixed`, `path` computed from it), floating (`floating`, no path), deferred (nothing: an
/// input-addressed output whose path waits for the realised outputs of floating inputs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DerivationOutput {
    /// The output path; `None` while it is still being computed, and for floating and deferred
    /// outputs (printed as `""`).
    pub path: Option<StorePath>,
    /// For fixed-output derivations, the declared content hash.
    pub fixed: Option<FixedOutputHash>,
    /// For floating content-addressed derivations, the method and algorithm.
    pub floating: Option<FloatingOutput>,
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
    /// The builder, arguments and environment are bytes, as Nix strings are: not necessarily
    /// UTF-8, written into the `.drv` and handed to the build as they are.
    pub builder: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    pub env: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Derivation {
    /// Whether every output has a fixed content hash (Nix's `CAFixed` derivation type).
    pub fn is_fixed_output(&self) -> bool {
        !self.outputs.is_empty() && self.outputs.values().all(|o| o.fixed.is_some())
    }

    /// Whether every output is floating content-addressed (`__contentAddressed = true`).
    pub fn is_floating(&self) -> bool {
        !self.outputs.is_empty() && self.outputs.values().all(|o| o.floating.is_some())
    }

    /// Whether the outputs are input-addressed but deferred: their paths wait for floating
    /// inputs to be realised (every output without a path, a fixed hash or a floating method).
    pub fn is_deferred(&self) -> bool {
        !self.outputs.is_empty()
            && self
                .outputs
                .values()
                .all(|o| o.path.is_none() && o.fixed.is_none() && o.floating.is_none())
    }

    /// Whether the output paths are written in the derivation (input-addressed or fixed).
    pub fn has_known_output_paths(&self) -> bool {
        !self.outputs.is_empty() && self.outputs.values().all(|o| o.path.is_some())
    }

    /// The store paths a `.drv` file refers to: input sources and input derivations.
    pub fn references(&self) -> BTreeSet<StorePath> {
        self.input_srcs
            .iter()
            .chain(self.input_drvs.keys())
            .cloned()
            .collect()
    }

    /// The value of environment variable `name`, if set.
    pub fn env_var(&self, name: &str) -> Option<&[u8]> {
        self.env.get(name.as_bytes()).map(Vec::as_slice)
    }

    /// Sets environment variable `name` to `value`.
    pub fn set_env_var(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.env.insert(name.as_bytes().to_vec(), value.into());
    }

    /// Whether `name` (an environment variable's name) is the name of an output.
    pub fn is_output_name(&self, name: &[u8]) -> bool {
        std::str::from_utf8(name).is_ok_and(|name| self.outputs.contains_key(name))
    }

    /// The ATerm of the `.drv` file, byte-identical to Nix's (not necessarily UTF-8: the
    /// builder, arguments and environment are written as the bytes they are).
    pub fn to_aterm(&self, dir: &StoreDir) -> Vec<u8> {
        aterm::write(self, dir, None, false)
    }

    /// Parses a `.drv` file; `name` is the derivation name (the file name without `.drv`).
    pub fn from_aterm(
        dir: &StoreDir,
        name: &str,
        text: &[u8],
    ) -> Result<Derivation, DerivationError> {
        aterm::parse(dir, name, text)
    }

    /// Parses a `.drv` file given its store path.
    pub fn from_drv_file(
        dir: &StoreDir,
        drv_path: &StorePath,
        text: &[u8],
    ) -> Result<Derivation, DerivationError> {
        let name = drv_path
            .name()
            .strip_suffix(".drv")
            .unwrap_or(drv_path.name());
        aterm::parse(dir, name, text)
    }

    /// The path of this derivation's `.drv` file, given its ATerm.
    pub fn drv_path(&self, dir: &StoreDir, aterm: &[u8]) -> Result<StorePath, StorePathError> {
        dir.make_text_path(&format!("{}.drv", self.name), aterm, &self.references())
    }

    /// Fills in the output paths (and the matching environment variables) of a derivation
    /// under construction, as `derivationStrict` does: fixed-output derivations get their path
    /// from the declared hash; floating content-addressed ones no path and the output's
    /// [`hash_placeholder`] in the environment; input-addressed ones a path from the hash modulo
    /// of the masked derivation, unless an input is floating (then they stay deferred: no path,
    /// an empty variable). `input_hash` gives the hash modulo of each input derivation.
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
                self.env.insert(
                    output_name.as_bytes().to_vec(),
                    dir.print(&path).into_bytes(),
                );
                output.path = Some(path);
            }
            return Ok(());
        }
        if self.is_floating() {
            for (output_name, output) in self.outputs.iter_mut() {
                output.path = None;
                self.env.insert(
                    output_name.as_bytes().to_vec(),
                    hash_placeholder(output_name).into_bytes(),
                );
            }
            return Ok(());
        }
        if self
            .outputs
            .values()
            .any(|o| o.fixed.is_some() || o.floating.is_some())
        {
            return Err(DerivationError::MixedOutputTypes(self.name.clone()));
        }
        for (output_name, output) in self.outputs.iter_mut() {
            output.path = None;
            self.env.insert(output_name.as_bytes().to_vec(), Vec::new());
        }
        let masked_hash = hash_modulo::hash_modulo(self, dir, true, &mut |drv_path| {
            input_hash(drv_path).ok_or_else(|| DerivationError::UnknownInput(dir.print(drv_path)))
        })?;
        let hash = match masked_hash {
            DrvHashModulo::Regular(hash) => hash,
            // An input is floating: the outputs stay deferred.
            DrvHashModulo::Deferred(_) => return Ok(()),
            // Only fixed-output derivations hash to per-output hashes, handled above.
            DrvHashModulo::FixedOutput(_) => {
                return Err(DerivationError::MixedOutputTypes(self.name.clone()))
            }
        };
        for (output_name, output) in self.outputs.iter_mut() {
            let path = dir.make_output_path(output_name, &hash, &self.name)?;
            self.env.insert(
                output_name.as_bytes().to_vec(),
                dir.print(&path).into_bytes(),
            );
            output.path = Some(path);
        }
        Ok(())
    }

    /// Nix's `staticOutputHashes`: the hash modulo of the masked derivation for each output,
    /// the derivation half of a realisation's id (`<hash>!<output>`).
    pub fn static_output_hashes(
        &self,
        dir: &StoreDir,
        input_hash: &mut dyn FnMut(&StorePath) -> Result<DrvHashModulo, DerivationError>,
    ) -> Result<BTreeMap<String, Hash>, DerivationError> {
        let hash = hash_modulo::hash_modulo(self, dir, true, input_hash)?;
        Ok(self
            .outputs
            .keys()
            .filter_map(|name| hash.output_hash(name).map(|h| (name.clone(), h)))
            .collect())
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
    /// `{ drvPath: … }`); its strings are the derivation's bytes.
    pub fn to_json(&self, dir: &StoreDir) -> Json {
        let key = |text: &str| text.as_bytes().to_vec();
        let outputs = self
            .outputs
            .iter()
            .map(|(name, output)| {
                let mut entry = Vec::new();
                // Floating and deferred outputs have no path (Nix leaves the key out).
                if let Some(path) = &output.path {
                    entry.push((key("path"), Json::text(dir.print(path))));
                }
                if let Some(fixed) = &output.fixed {
                    entry.push((key("hashAlgo"), Json::text(fixed.method_algo())));
                    entry.push((key("hash"), Json::text(fixed.hash.to_hex())));
                }
                if let Some(floating) = &output.floating {
                    entry.push((key("hashAlgo"), Json::text(floating.method_algo())));
                }
                (key(name), Json::Object(entry))
            })
            .collect();
        let input_srcs = self
            .input_srcs
            .iter()
            .map(|p| Json::text(dir.print(p)))
            .collect();
        let input_drvs = self
            .input_drvs
            .iter()
            .map(|(path, outputs)| {
                let names = outputs
                    .iter()
                    .map(|name| Json::text(name.as_str()))
                    .collect();
                (dir.print(path).into_bytes(), Json::Array(names))
            })
            .collect();
        let args = self.args.iter().cloned().map(Json::String).collect();
        let env = self
            .env
            .iter()
            .map(|(name, value)| (name.clone(), Json::String(value.clone())))
            .collect();
        Json::Object(vec![
            (key("outputs"), Json::Object(outputs)),
            (key("inputSrcs"), Json::Array(input_srcs)),
            (key("inputDrvs"), Json::Object(input_drvs)),
            (key("system"), Json::text(self.platform.as_str())),
            (key("builder"), Json::String(self.builder.clone())),
            (key("args"), Json::Array(args)),
            (key("env"), Json::Object(env)),
        ])
    }
}

#[cfg(test)]
mod tests;
