//! Placeholders and resolution, Nix 2.8's `ca-derivations` rules: the placeholder of an output
//! inside its own derivation (`hashPlaceholder`), the placeholder a dependent sees for an output
//! whose path is not known yet (`downstreamPlaceholder`), and resolving a derivation once its
//! inputs are realised (`tryResolve`): every input derivation output is replaced by its realised
//! path — as an input source, and in the builder, arguments and environment where its
//! placeholder stood — and deferred outputs get their input-addressed paths from the result.
use std::collections::BTreeMap;

use super::{hash_modulo, Derivation, DerivationError};
use crate::hash::Hash;
use crate::store_path::{output_path_name, StoreDir, StorePath};

/// The string that stands for output `output` of the derivation being built, in its own
/// attributes (`builtins.placeholder`; the environment variable of a floating output).
pub fn hash_placeholder(output: &str) -> String {
    let hash = Hash::sha256(format!("nix-output:{output}").as_bytes());
    format!("/{}", hash.to_nixbase32())
}

/// The string that stands for output `output` of the derivation at `drv_path` in the attributes
/// of dependents while its path is unknown (a floating or deferred output).
pub fn downstream_placeholder(drv_path: &StorePath, output: &str) -> String {
    let drv_name = drv_path
        .name()
        .strip_suffix(".drv")
        .unwrap_or(drv_path.name());
    let clear_text = format!(
        "nix-upstream-output:{}:{}",
        drv_path.hash_part(),
        output_path_name(drv_name, output)
    );
    format!("/{}", Hash::sha256(clear_text.as_bytes()).to_nixbase32())
}

/// Nix's `rewriteStrings` over bytes: each rewrite in turn (in key order), every occurrence
/// replaced, scanning left to right without overlaps.
pub fn rewrite_strings(text: &[u8], rewrites: &BTreeMap<String, String>) -> Vec<u8> {
    let mut text = text.to_vec();
    for (from, to) in rewrites {
        if from == to || from.is_empty() {
            continue;
        }
        let mut found = memchr::memmem::find_iter(&text, from.as_bytes()).peekable();
        if found.peek().is_none() {
            continue;
        }
        let mut replaced = Vec::with_capacity(text.len());
        let mut start = 0;
        for at in found {
            // `find_iter` reports non-overlapping matches, left to right.
            replaced.extend_from_slice(&text[start..at]);
            replaced.extend_from_slice(to.as_bytes());
            start = at + from.len();
        }
        replaced.extend_from_slice(&text[start..]);
        text = replaced;
    }
    text
}

impl Derivation {
    /// The resolved form of this derivation: `realised(input, output)` gives the path of each
    /// used output of each input derivation. The result has no input derivations; their outputs
    /// are input sources, their placeholders are replaced by their paths, and deferred outputs
    /// become input-addressed with paths computed from the resolved derivation.
    pub fn resolve(
        &self,
        dir: &StoreDir,
        realised: &mut dyn FnMut(&StorePath, &str) -> Option<StorePath>,
    ) -> Result<Derivation, DerivationError> {
        let mut resolved = Derivation {
            input_drvs: BTreeMap::new(),
            ..self.clone()
        };
        let mut rewrites = BTreeMap::new();
        for (input, outputs) in &self.input_drvs {
            for output in outputs {
                let path =
                    realised(input, output).ok_or_else(|| DerivationError::UnrealisedInput {
                        drv: self.name.clone(),
                        input: dir.print(input),
                        output: output.clone(),
                    })?;
                rewrites.insert(downstream_placeholder(input, output), dir.print(&path));
                resolved.input_srcs.insert(path);
            }
        }
        resolved.builder = rewrite_strings(&resolved.builder, &rewrites);
        for arg in &mut resolved.args {
            *arg = rewrite_strings(arg, &rewrites);
        }
        let mut env = BTreeMap::new();
        for (key, value) in &self.env {
            env.entry(rewrite_strings(key, &rewrites))
                .or_insert_with(|| rewrite_strings(value, &rewrites));
        }
        resolved.env = env;
        let hash = hash_modulo::hash_modulo(&resolved, dir, true, &mut |input| {
            Err(DerivationError::UnknownInput(dir.print(input)))
        })?;
        let name = resolved.name.clone();
        for (output_name, output) in resolved.outputs.iter_mut() {
            if output.path.is_some() || output.fixed.is_some() || output.floating.is_some() {
                continue;
            }
            let Some(output_hash) = hash.output_hash(output_name) else {
                continue;
            };
            let path = dir.make_output_path(output_name, &output_hash, &name)?;
            resolved.env.insert(
                output_name.as_bytes().to_vec(),
                dir.print(&path).into_bytes(),
            );
            output.path = Some(path);
        }
        Ok(resolved)
    }
}
