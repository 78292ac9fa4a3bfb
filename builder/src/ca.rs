//! Building content-addressed derivations and what depends on them, as Nix 2.8 does with
//! `ca-derivations`.
//!
//! * **Resolution.** A derivation that uses floating or deferred outputs of its inputs (or is
//!   deferred itself) is resolved before it is built: each used input output is looked up (its
//!   path in the input's `.drv`, or the input's realisation), the derivation rewritten to use
//!   those paths (`Derivation::resolve`) and written to the store. The resolved derivation is
//!   what runs. When its outputs are valid already — same inputs, same recipe — nothing runs:
//!   that is the early cutoff. Either way the original derivation's outputs are recorded as
//!   realisations pointing at the resolved one's outputs, with the input realisations their
//!   paths refer to (dependent realisations).
//! * **Floating outputs.** A floating derivation (after resolution, it has no input
//!   derivations) is skipped when every output is realised at a valid path. Otherwise it is
//!   built at scratch paths (Nix's `makeFallbackPath`: `rewrite:<drv>:name:<output>` with a zero
//!   hash), its output placeholders in the environment and arguments replaced by them. Each
//!   output, in reference order, is hashed modulo its own scratch hash part
//!   (`SelfReferenceHasher`), its final path computed from that hash and its references (a
//!   self-reference as `:self`, sibling outputs by their final paths), the scratch hash part
//!   rewritten to the final one in its bytes, and it is moved to the final path and registered
//!   with its content address. If the final path is valid already (the same bytes were built
//!   before), the new copy is dropped.
//! * **Realisations.** Every build records `<static output hash>!<output>` → path for its
//!   outputs (`kiln_store::realisation`).
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use kiln_local_store::fs_tree::delete_tree;
use kiln_local_store::{LocalStore, OutputClaim, ValidPathInfo};
use kiln_store::content_address::{content_hash_modulo, render_content_address};
use kiln_store::derivation::{
    hash_placeholder, rewrite_strings, Derivation, DerivationError, DrvHashCache,
};
use kiln_store::hash::{Hash, HashAlgo};
use kiln_store::nar;
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{output_path_name, StorePath, StorePathError};

use crate::build::{build_with_known_outputs, BuildContext};
use crate::outputs;
use crate::plan::{read_derivation, static_output_hashes, PlanError, PlannedBuild};
use crate::report::{BuildError, BuildOutcome, CaError};

/// One output of a floating build, at its scratch path, with the references found in it.
pub(crate) struct ScratchOutput {
    pub name: String,
    pub path: StorePath,
    pub host_path: PathBuf,
    pub references: BTreeSet<StorePath>,
}

/// The path of output `output` of the input derivation `input`: written in it, or realised.
fn realised_output(
    store: &LocalStore,
    input: &StorePath,
    output: &str,
    hashes: &mut DrvHashCache,
) -> Result<Option<StorePath>, PlanError> {
    let drv = read_derivation(store, input)?;
    if let Some(path) = drv.outputs.get(output).and_then(|o| o.path.clone()) {
        return Ok(Some(path));
    }
    let Some(hash) = static_output_hashes(store, &drv, hashes)?.remove(output) else {
        return Ok(None);
    };
    let id = DrvOutput {
        drv_hash: hash,
        output: output.to_owned(),
    };
    Ok(store.query_realisation(&id)?.map(|r| r.out_path))
}

/// `drv` resolved against the store (Nix's `tryResolve`): each used output of each input
/// derivation replaced by its path, written in the input or realised. Reading the store
/// failing is the outer error; an output that is not realised yet, the inner one.
pub fn resolve_in_store(
    store: &LocalStore,
    drv: &Derivation,
    hashes: &mut DrvHashCache,
) -> Result<Result<Derivation, DerivationError>, PlanError> {
    let mut failure = None;
    let resolved = drv.resolve(
        store.store_dir(),
        &mut |input, output| match realised_output(store, input, output, hashes) {
            Ok(path) => path,
            Err(error) => {
                failure.get_or_insert(error);
                None
            }
        },
    );
    match failure {
        Some(error) => Err(error),
        None => Ok(resolved),
    }
}

/// Resolves `build` and builds (or finds valid) the resolved derivation; records the original
/// derivation's realisations (see the module doc).
pub(crate) fn build_resolved(
    cx: BuildContext<'_>,
    build: &PlannedBuild,
) -> Result<BuildOutcome, BuildError> {
    let store = cx.store;
    let dir = store.store_dir();
    let mut hashes = DrvHashCache::new();
    let resolved = resolve_in_store(store, &build.drv, &mut hashes)??;
    let aterm = resolved.to_aterm(dir);
    let resolved_path = resolved.drv_path(dir, &aterm)?;
    let known: BTreeMap<String, StorePath> = resolved
        .outputs
        .iter()
        .filter_map(|(name, output)| output.path.clone().map(|path| (name.clone(), path)))
        .collect();
    kiln_local_store::store_files::add_text(
        store,
        &resolved_path,
        &aterm,
        &resolved.references(),
        known.clone(),
    )
    .map_err(|e| CaError::WriteResolved {
        path: dir.print(&resolved_path),
        message: e.to_string(),
    })?;
    store.add_temp_root(&resolved_path)?;
    let resolved_build = PlannedBuild {
        drv_path: resolved_path.clone(),
        outputs: known,
        output_hashes: static_output_hashes(store, &resolved, &mut hashes)?,
        resolve: false,
        reason: build.reason.clone(),
        inputs: resolved.input_srcs.clone(),
        depends_on: Vec::new(),
        drv: resolved,
    };
    let outcome = if resolved_build.drv.is_floating() {
        build_floating(cx, &resolved_build)?
    } else {
        let outcome = build_with_known_outputs(cx, &resolved_build)?;
        record_realisations(store, &resolved_build)?;
        outcome
    };
    let mut realisations = Vec::new();
    for (name, hash) in &build.output_hashes {
        let Some(path) = realised_path(store, &resolved_build, name)? else {
            return Err(CaError::from(PlanError::NotRealised {
                drv: dir.print(&resolved_path),
                output: name.clone(),
            })
            .into());
        };
        let dependent_realisations = dependent_realisations(store, build, &path, &mut hashes)?;
        realisations.push(Realisation {
            id: DrvOutput {
                drv_hash: *hash,
                output: name.clone(),
            },
            out_path: path,
            signatures: BTreeSet::new(),
            dependent_realisations,
        });
    }
    store.register_realisations(&realisations)?;
    Ok(match outcome {
        BuildOutcome::AlreadyValid => BuildOutcome::Unchanged {
            resolved: resolved_path,
        },
        other => other,
    })
}

/// Where output `name` of `build` is: its known path, or its realisation.
fn realised_path(
    store: &LocalStore,
    build: &PlannedBuild,
    name: &str,
) -> Result<Option<StorePath>, BuildError> {
    if let Some(path) = build.outputs.get(name) {
        return Ok(Some(path.clone()));
    }
    let Some(hash) = build.output_hashes.get(name) else {
        return Ok(None);
    };
    let id = DrvOutput {
        drv_hash: *hash,
        output: name.to_owned(),
    };
    Ok(store.query_realisation(&id)?.map(|r| r.out_path))
}

/// The realisations of the input outputs of `build` that `path` refers to.
fn dependent_realisations(
    store: &LocalStore,
    build: &PlannedBuild,
    path: &StorePath,
    hashes: &mut DrvHashCache,
) -> Result<BTreeMap<DrvOutput, StorePath>, BuildError> {
    let references = store.references(path)?;
    let mut dependents = BTreeMap::new();
    for (input, used) in &build.drv.input_drvs {
        let drv = read_derivation(store, input)?;
        let input_hashes = static_output_hashes(store, &drv, hashes)?;
        for output in used {
            let Some(hash) = input_hashes.get(output) else {
                continue;
            };
            let id = DrvOutput {
                drv_hash: *hash,
                output: output.clone(),
            };
            if let Some(realisation) = store.query_realisation(&id)? {
                if references.contains(&realisation.out_path) {
                    dependents.insert(id, realisation.out_path);
                }
            }
        }
    }
    Ok(dependents)
}

/// Records `<static hash>!<output>` → path for the valid outputs of a build with known paths.
pub(crate) fn record_realisations(
    store: &LocalStore,
    build: &PlannedBuild,
) -> Result<(), BuildError> {
    let mut realisations = Vec::new();
    for (name, hash) in &build.output_hashes {
        let Some(path) = build.outputs.get(name) else {
            continue;
        };
        if !store.is_valid(path)? {
            continue;
        }
        realisations.push(Realisation {
            id: DrvOutput {
                drv_hash: *hash,
                output: name.clone(),
            },
            out_path: path.clone(),
            signatures: BTreeSet::new(),
            dependent_realisations: BTreeMap::new(),
        });
    }
    store.register_realisations(&realisations)?;
    Ok(())
}

/// Nix's `makeFallbackPath`: where output `output` of the floating derivation at `drv_path`
/// is built.
pub fn scratch_path(
    store: &LocalStore,
    drv_path: &StorePath,
    drv_name: &str,
    output: &str,
) -> Result<StorePath, StorePathError> {
    store.store_dir().make_store_path(
        &format!("rewrite:{}:name:{output}", drv_path.base_name()),
        &Hash::zero(HashAlgo::Sha256),
        &output_path_name(drv_name, output),
    )
}

/// Builds a floating derivation without input derivations, unless every output is realised
/// at a valid path already (then [`BuildOutcome::AlreadyValid`]).
pub(crate) fn build_floating(
    cx: BuildContext<'_>,
    build: &PlannedBuild,
) -> Result<BuildOutcome, BuildError> {
    let BuildContext { store, check, .. } = cx;
    if !check && all_realised(store, build)? {
        return Ok(BuildOutcome::AlreadyValid);
    }
    let dir = store.store_dir();
    let mut scratch = BTreeMap::new();
    let mut rewrites = BTreeMap::new();
    for name in build.drv.outputs.keys() {
        let path = scratch_path(store, &build.drv_path, &build.drv.name, name)?;
        rewrites.insert(hash_placeholder(name), dir.print(&path));
        scratch.insert(name.clone(), path);
    }
    let mut drv = build.drv.clone();
    for value in drv.env.values_mut() {
        *value = rewrite_strings(value, &rewrites);
    }
    for arg in &mut drv.args {
        *arg = rewrite_strings(arg, &rewrites);
    }
    let scratch_build = PlannedBuild {
        drv,
        outputs: scratch,
        ..build.clone()
    };
    let outcome = build_with_known_outputs(cx, &scratch_build)?;
    // `--check`: the rebuild gave the realised paths again (else it failed).
    Ok(match outcome {
        BuildOutcome::Built { duration, .. } if check => BuildOutcome::Checked { duration },
        other => other,
    })
}

/// Whether every output of the floating `build` is realised (by its static output hash) at a
/// valid path.
pub(crate) fn all_realised(store: &LocalStore, build: &PlannedBuild) -> Result<bool, BuildError> {
    if build.output_hashes.len() != build.drv.outputs.len() {
        return Ok(false);
    }
    for (name, hash) in &build.output_hashes {
        let id = DrvOutput {
            drv_hash: *hash,
            output: name.clone(),
        };
        match store.query_realisation(&id)? {
            Some(realisation) if store.is_valid(&realisation.out_path)? => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// The order in which to finish the outputs: an output after the siblings it refers to.
fn reference_order(build: &PlannedBuild, outputs: &[ScratchOutput]) -> Result<Vec<usize>, CaError> {
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < outputs.len() {
        let next = (0..outputs.len()).find(|&index| {
            !done.contains(&index)
                && outputs.iter().enumerate().all(|(other, sibling)| {
                    other == index
                        || done.contains(&other)
                        || !outputs[index].references.contains(&sibling.path)
                })
        });
        let Some(index) = next else {
            return Err(CaError::OutputCycle {
                drv: build.drv.name.clone(),
            });
        };
        done.insert(index);
        order.push(index);
    }
    Ok(order)
}

/// Replaces hash parts (same length) everywhere in the tree at `host_path` — file contents,
/// names and link targets — through its NAR.
fn rewrite_tree(host_path: &Path, rewrites: &BTreeMap<String, String>) -> Result<(), CaError> {
    let failed = |message: String| CaError::Rewrite {
        path: host_path.display().to_string(),
        message,
    };
    let mut bytes = Vec::new();
    nar::dump_path(host_path, &mut bytes).map_err(|e| failed(e.to_string()))?;
    for (from, to) in rewrites {
        let (from, to) = (from.as_bytes(), to.as_bytes());
        if from.len() != to.len() || from.is_empty() {
            continue;
        }
        let mut start = 0;
        while start + from.len() <= bytes.len() {
            if &bytes[start..start + from.len()] == from {
                bytes[start..start + from.len()].copy_from_slice(to);
                start += from.len();
            } else {
                start += 1;
            }
        }
    }
    let file_name = host_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging =
        host_path.with_file_name(format!(".kiln-rewrite-{}-{file_name}", std::process::id()));
    let _ = delete_tree(&staging);
    nar::restore(bytes.as_slice(), &staging).map_err(|e| failed(e.to_string()))?;
    delete_tree(host_path).map_err(|e| failed(e.to_string()))?;
    fs::rename(&staging, host_path).map_err(|e| failed(e.to_string()))?;
    outputs::canonicalise(host_path, None).map_err(|e| failed(e.to_string()))?;
    Ok(())
}

/// Moves each output of a floating build from its scratch path to the path its content gives,
/// registers it and records its realisation (see the module doc).
pub(crate) fn finish_floating_outputs(
    store: &LocalStore,
    build: &PlannedBuild,
    outputs: Vec<ScratchOutput>,
) -> Result<(), BuildError> {
    let dir = store.store_dir();
    let order = reference_order(build, &outputs)?;
    // Scratch hash part → final hash part of the outputs finished so far.
    let mut rewrites: BTreeMap<String, String> = BTreeMap::new();
    let mut realisations = Vec::new();
    // Held until the realisations are recorded.
    let mut locks = Vec::new();
    for index in order {
        let output = &outputs[index];
        let floating = build
            .drv
            .outputs
            .get(&output.name)
            .and_then(|o| o.floating)
            .ok_or_else(|| CaError::NotFloating {
                drv: dir.print(&build.drv_path),
                output: output.name.clone(),
            })?;
        let refers_to_sibling = output
            .references
            .iter()
            .any(|r| r != &output.path && rewrites.contains_key(r.hash_part()));
        if refers_to_sibling {
            rewrite_tree(&output.host_path, &rewrites)?;
        }
        let own_hash_part = output.path.hash_part().to_owned();
        let (hash, _) = content_hash_modulo(
            &output.host_path,
            floating.method,
            floating.algo,
            &own_hash_part,
        )
        .map_err(|source| CaError::ContentHash {
            path: dir.print(&output.path),
            source,
        })?;
        let mut self_reference = false;
        let mut references = BTreeSet::new();
        for reference in &output.references {
            if reference == &output.path {
                self_reference = true;
            } else if let Some(final_hash) = rewrites.get(reference.hash_part()) {
                references.insert(StorePath::from_base_name(&format!(
                    "{final_hash}-{}",
                    reference.name()
                ))?);
            } else {
                references.insert(reference.clone());
            }
        }
        let final_path = dir.make_fixed_output_path(
            floating.method,
            &hash,
            &output_path_name(&build.drv.name, &output.name),
            &references,
            self_reference,
        )?;
        rewrites.insert(own_hash_part.clone(), final_path.hash_part().to_owned());
        // A rebuild (`--check`) that gives other bytes than the realised ones.
        if let Some(hash) = build.output_hashes.get(&output.name) {
            let id = DrvOutput {
                drv_hash: *hash,
                output: output.name.clone(),
            };
            if let Some(realised) = store.query_realisation(&id)? {
                if realised.out_path != final_path {
                    return Err(CaError::NotReproducible {
                        drv: dir.print(&build.drv_path),
                        output: output.name.clone(),
                        realised: dir.print(&realised.out_path),
                        rebuilt: dir.print(&final_path),
                    }
                    .into());
                }
            }
        }
        match store.claim_outputs(std::slice::from_ref(&final_path), |_| {})? {
            OutputClaim::AllValid => {
                // The same bytes were built before: keep the valid copy.
                let _ = delete_tree(&output.host_path);
            }
            OutputClaim::Locked(claimed) => {
                if self_reference {
                    let own = BTreeMap::from([(
                        own_hash_part.clone(),
                        final_path.hash_part().to_owned(),
                    )]);
                    rewrite_tree(&output.host_path, &own)?;
                }
                let physical = store.physical_path(&final_path);
                fs::rename(&output.host_path, &physical).map_err(|e| CaError::Rewrite {
                    path: output.host_path.display().to_string(),
                    message: format!("cannot move it to {}: {e}", physical.display()),
                })?;
                let (nar_hash, nar_size) =
                    nar::hash_path(&physical).map_err(|e| CaError::Rewrite {
                        path: physical.display().to_string(),
                        message: e.to_string(),
                    })?;
                let mut info = ValidPathInfo::new(final_path.clone(), nar_hash, nar_size);
                info.references = references.clone();
                if self_reference {
                    info.references.insert(final_path.clone());
                }
                info.deriver = Some(build.drv_path.clone());
                info.ca = Some(render_content_address(floating.method, &hash));
                store.register_valid_paths(&[info])?;
                locks.extend(claimed);
            }
        }
        if let Some(hash) = build.output_hashes.get(&output.name) {
            realisations.push(Realisation {
                id: DrvOutput {
                    drv_hash: *hash,
                    output: output.name.clone(),
                },
                out_path: final_path,
                signatures: BTreeSet::new(),
                dependent_realisations: BTreeMap::new(),
            });
        }
    }
    store.register_realisations(&realisations)?;
    drop(locks);
    Ok(())
}
