//! Nix's `hashDerivationModulo`: a derivation's hash with every input derivation replaced by
//! that input's own hash modulo, so that output paths do not depend on how fixed-output inputs
//! were obtained. Fixed-output derivations hash to `sha256("fixed:out:<method algo>:<hex>:<path>")`
//! per output; floating content-addressed derivations and those depending on one hash as
//! input-addressed ones do, marked deferred. `DrvHashCache` memoises results by `.drv` path: evaluations create 10,000s of
//! derivations sharing inputs.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{aterm, Derivation, DerivationError};
use crate::hash::Hash;
use crate::store_path::{StoreDir, StorePath};

/// The hash modulo of a derivation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrvHashModulo {
    /// An input-addressed derivation: one hash over its rewritten ATerm.
    Regular(Hash),
    /// A fixed-output derivation: one hash per output.
    FixedOutput(BTreeMap<String, Hash>),
    /// A floating content-addressed derivation, or one with such an input somewhere below it
    /// (Nix's `DrvHash::Kind::Deferred`): one hash over its rewritten ATerm, but its outputs
    /// cannot be given paths from it.
    Deferred(Hash),
}

impl DrvHashModulo {
    /// The hash that stands for output `output` in a dependent's hash modulo (and in the
    /// realisation id `<hash>!<output>`).
    pub fn output_hash(&self, output: &str) -> Option<Hash> {
        match self {
            DrvHashModulo::Regular(hash) | DrvHashModulo::Deferred(hash) => Some(*hash),
            DrvHashModulo::FixedOutput(hashes) => hashes.get(output).copied(),
        }
    }

    /// Whether the derivation's outputs wait for floating outputs to be built.
    pub fn is_deferred(&self) -> bool {
        matches!(self, DrvHashModulo::Deferred(_))
    }
}

/// Computes the hash modulo of `drv`, asking `input_hash` for the hash modulo of each input.
/// As Nix 2.8: each input derivation is replaced by the hash of each output used (grouping the
/// outputs of inputs that hash alike), and a floating input makes the result deferred.
pub(super) fn hash_modulo(
    drv: &Derivation,
    dir: &StoreDir,
    mask_outputs: bool,
    input_hash: &mut dyn FnMut(&StorePath) -> Result<DrvHashModulo, DerivationError>,
) -> Result<DrvHashModulo, DerivationError> {
    if drv.is_fixed_output() {
        let mut hashes = BTreeMap::new();
        for (name, output) in &drv.outputs {
            // `is_fixed_output` checked that every output has a fixed hash.
            let Some(fixed) = &output.fixed else { continue };
            let path = match &output.path {
                Some(path) => path.clone(),
                None => fixed.output_path(dir, &drv.name, name)?,
            };
            let fingerprint = format!(
                "fixed:out:{}:{}:{}",
                fixed.method_algo(),
                fixed.hash.to_hex(),
                dir.print(&path)
            );
            hashes.insert(name.clone(), Hash::sha256(fingerprint.as_bytes()));
        }
        return Ok(DrvHashModulo::FixedOutput(hashes));
    }
    let mut deferred = drv.is_floating();
    let mut inputs_by_hash: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (input_path, outputs) in &drv.input_drvs {
        let input = input_hash(input_path)?;
        deferred |= input.is_deferred();
        for output in outputs {
            let hash = input.output_hash(output).ok_or_else(|| {
                DerivationError::UnknownInput(format!("{}!{output}", dir.print(input_path)))
            })?;
            inputs_by_hash
                .entry(hash.to_hex())
                .or_default()
                .insert(output.clone());
        }
    }
    let text = aterm::write(drv, dir, Some(&inputs_by_hash), mask_outputs);
    let hash = Hash::sha256(&text);
    Ok(if deferred {
        DrvHashModulo::Deferred(hash)
    } else {
        DrvHashModulo::Regular(hash)
    })
}

/// Memoised hash modulo (unmasked, as used for inputs) by `.drv` path.
#[derive(Debug, Default)]
pub struct DrvHashCache {
    hashes: HashMap<StorePath, DrvHashModulo>,
}

impl DrvHashCache {
    pub fn new() -> DrvHashCache {
        DrvHashCache::default()
    }

    /// The remembered hash modulo of `drv_path`.
    pub fn get(&self, drv_path: &StorePath) -> Option<&DrvHashModulo> {
        self.hashes.get(drv_path)
    }

    /// Remembers the hash modulo of `drv_path`.
    pub fn insert(&mut self, drv_path: StorePath, hash: DrvHashModulo) {
        self.hashes.insert(drv_path, hash);
    }

    /// The number of remembered derivations.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The unmasked hash modulo of the derivation at `drv_path`, loading it and any inputs not
    /// yet known with `load` and remembering every result.
    pub fn hash_of_path(
        &mut self,
        dir: &StoreDir,
        drv_path: &StorePath,
        load: &mut dyn FnMut(&StorePath) -> Result<Derivation, DerivationError>,
    ) -> Result<DrvHashModulo, DerivationError> {
        if let Some(hash) = self.hashes.get(drv_path) {
            return Ok(hash.clone());
        }
        let drv = load(drv_path)?;
        let hash = self.hash_of(dir, &drv, load)?;
        self.hashes.insert(drv_path.clone(), hash.clone());
        Ok(hash)
    }

    /// The unmasked hash modulo of `drv`, loading unknown inputs with `load`.
    pub fn hash_of(
        &mut self,
        dir: &StoreDir,
        drv: &Derivation,
        load: &mut dyn FnMut(&StorePath) -> Result<Derivation, DerivationError>,
    ) -> Result<DrvHashModulo, DerivationError> {
        hash_modulo(drv, dir, false, &mut |input| {
            self.hash_of_path(dir, input, load)
        })
    }
}
