//! The build plan: the DAG of derivations that must be built to obtain the wanted outputs of some
//! `.drv` files, loaded from the store.
//!
//! A derivation enters the plan when one of its outputs that someone needs is not valid (or,
//! with `--check`, when it is a target whose outputs are valid and must be rebuilt for
//! comparison). Derivations whose needed outputs are all valid are left out together with
//! everything below them that nothing else needs. Every derivation in the plan builds all of its
//! outputs. Input sources must be valid: a missing one is an error, since nothing can build it.
//!
//! Content-addressed derivations (Nix's `ca-derivations`): a floating output has no path in its
//! `.drv` and a deferred one (input-addressed above a floating input) none until its inputs are
//! realised. Such an output counts as valid when the store has a realisation of it (by the
//! derivation's static output hash) at a valid path. A derivation that uses floating or deferred
//! outputs of its inputs is planned to be resolved before it is built (see [`crate::build`]);
//! the outputs such builds produce are known once the plan has run
//! ([`BuildPlan::realised_targets`]).
//!
//! Nothing in the store vouches for a `.drv` file: anyone can write one with `builtins.toFile`
//! and pull it into a build with `builtins.appendContext`. So before a derivation enters the
//! plan its paths are recomputed from its bytes: the `.drv`'s own path must be the text store
//! path of its contents (name, SHA-256 of the text, references = its input sources and input
//! derivations), and every output path must be what the derivation computes, as the evaluator
//! computes it (fixed-output: from the output hash, method and name; input-addressed: from the
//! hash modulo over the input derivations). A `.drv` naming someone else's output path — say an
//! honest fixed-output path, to register forged contents there — is refused.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kiln_local_store::{LocalStore, LocalStoreError};
use kiln_store::derivation::{Derivation, DerivationError, DrvHashCache};
use kiln_store::hash::Hash;
use kiln_store::realisation::DrvOutput;
use kiln_store::store_path::StorePath;

/// Why the plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] LocalStoreError),
    #[error("cannot read the derivation {path}: {source}")]
    ReadDrv {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] DerivationError),
    #[error("`{0}` is not a derivation (a `.drv` store path)")]
    NotADerivation(String),
    #[error("derivation `{drv}` has no output `{output}`")]
    NoSuchOutput { drv: String, output: String },
    #[error("output `{output}` of the content-addressed derivation `{drv}` has no realisation")]
    NotRealised { drv: String, output: String },
    #[error(
        "input source `{source_path}` of `{drv}` is not valid in the store and cannot be built"
    )]
    MissingSource { drv: String, source_path: String },
    #[error(
        "refusing the derivation {claimed}: its contents belong at {computed} (a forged `.drv`?)"
    )]
    DrvPathMismatch { claimed: String, computed: String },
    #[error("refusing the derivation {drv}: it claims the output `{output}` at {claimed}, but its output path is {computed} (a forged `.drv`?)")]
    OutputPathMismatch {
        drv: String,
        output: String,
        claimed: String,
        computed: String,
    },
}

/// Why a derivation is in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildReason {
    /// These outputs are needed and not valid.
    MissingOutputs(Vec<String>),
    /// `--check`: the outputs are valid and are rebuilt to compare.
    Check,
}

impl std::fmt::Display for BuildReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildReason::MissingOutputs(outputs) => {
                write!(
                    f,
                    "missing output{} ",
                    if outputs.len() == 1 { "" } else { "s" }
                )?;
                f.write_str(&outputs.join(", "))
            }
            BuildReason::Check => f.write_str("--check: rebuild to compare"),
        }
    }
}

/// One derivation to build.
#[derive(Debug, Clone)]
pub struct PlannedBuild {
    pub drv_path: StorePath,
    pub drv: Derivation,
    /// Output name → output path: all outputs of an input-addressed or fixed-output derivation;
    /// empty for floating and deferred ones, whose paths are known only after the build.
    pub outputs: BTreeMap<String, StorePath>,
    /// Output name → static output hash: the realisation ids (`<hash>!<output>`) the build
    /// records.
    pub output_hashes: BTreeMap<String, Hash>,
    /// The derivation uses floating or deferred outputs of its inputs, or is itself deferred:
    /// it is resolved against the realised outputs of its inputs before it is built.
    pub resolve: bool,
    pub reason: BuildReason,
    /// The store paths the build reads directly: its input sources and the outputs it uses of
    /// its input derivations whose paths are known (their closure is what the sandbox shows;
    /// resolution adds the others).
    pub inputs: BTreeSet<StorePath>,
    /// Indices (into [`BuildPlan::builds`]) of the builds that must finish first.
    pub depends_on: Vec<usize>,
}

impl PlannedBuild {
    /// The `.drv`'s name without `.drv`.
    pub fn name(&self) -> &str {
        &self.drv.name
    }
}

/// One thing to obtain: a `.drv` and the outputs wanted from it (empty: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTarget {
    pub drv_path: StorePath,
    pub outputs: BTreeSet<String>,
}

impl BuildTarget {
    /// All outputs of `drv_path`.
    pub fn all_outputs(drv_path: StorePath) -> BuildTarget {
        BuildTarget {
            drv_path,
            outputs: BTreeSet::new(),
        }
    }
}

/// A target derivation and output name → path of its wanted outputs.
pub type TargetOutputs = (StorePath, BTreeMap<String, StorePath>);

/// The DAG of builds, in an order where every build comes after what it depends on.
#[derive(Debug, Clone, Default)]
pub struct BuildPlan {
    pub builds: Vec<PlannedBuild>,
    /// For each target: its derivation and output name → path of the wanted outputs whose
    /// paths are known before building (see [`BuildPlan::realised_targets`] for all of them).
    pub targets: Vec<TargetOutputs>,
    /// The targets as asked for.
    requested: Vec<BuildTarget>,
}

/// Reads and parses a `.drv` from the store (valid or not: `instantiate` may be concurrent).
pub fn read_derivation(store: &LocalStore, drv_path: &StorePath) -> Result<Derivation, PlanError> {
    read_derivation_text(store, drv_path).map(|(drv, _)| drv)
}

/// Reads and parses a `.drv`, also returning its text.
fn read_derivation_text(
    store: &LocalStore,
    drv_path: &StorePath,
) -> Result<(Derivation, Vec<u8>), PlanError> {
    if !drv_path.is_derivation() {
        return Err(PlanError::NotADerivation(store.store_dir().print(drv_path)));
    }
    let physical = store.physical_path(drv_path);
    let text = std::fs::read(&physical).map_err(|source| PlanError::ReadDrv {
        path: physical,
        source,
    })?;
    let drv = Derivation::from_drv_file(store.store_dir(), drv_path, &text)?;
    Ok((drv, text))
}

/// Checks that the `.drv` at `drv_path` with contents `text` is where its contents put it and
/// that its output paths are the ones it computes (see the module doc). `hashes` memoises the
/// hash modulo of input derivations, read from the store as needed.
pub fn verify_derivation_paths(
    store: &LocalStore,
    drv_path: &StorePath,
    drv: &Derivation,
    text: &[u8],
    hashes: &mut DrvHashCache,
) -> Result<(), PlanError> {
    let dir = store.store_dir();
    let own_path = drv.drv_path(dir, text).map_err(DerivationError::from)?;
    if &own_path != drv_path {
        return Err(PlanError::DrvPathMismatch {
            claimed: dir.print(drv_path),
            computed: dir.print(&own_path),
        });
    }
    let mut computed = drv.clone();
    let mut input_failure = None;
    let filled = computed.fill_output_paths(dir, &mut |input| {
        let mut load = |path: &StorePath| {
            read_derivation(store, path).map_err(|error| {
                let message = error.to_string();
                input_failure.get_or_insert(error);
                DerivationError::UnknownInput(message)
            })
        };
        hashes.hash_of_path(dir, input, &mut load).ok()
    });
    if let Some(error) = input_failure {
        return Err(error);
    }
    filled?;
    for (name, output) in &drv.outputs {
        let computed_path = computed
            .outputs
            .get(name)
            .and_then(|output| output.path.as_ref());
        if output.path.as_ref() != computed_path {
            return Err(PlanError::OutputPathMismatch {
                drv: dir.print(drv_path),
                output: name.clone(),
                claimed: output
                    .path
                    .as_ref()
                    .map(|p| dir.print(p))
                    .unwrap_or_default(),
                computed: computed_path.map(|p| dir.print(p)).unwrap_or_default(),
            });
        }
    }
    Ok(())
}

/// Output name → path of every output of `drv` whose path is known: written in the derivation,
/// or, for floating and deferred outputs, realised in the store (`None`: not realised yet).
/// `hashes` memoises the hash modulo of input derivations.
pub fn known_output_paths(
    store: &LocalStore,
    drv: &Derivation,
    hashes: &mut DrvHashCache,
) -> Result<BTreeMap<String, Option<StorePath>>, PlanError> {
    let mut known: BTreeMap<String, Option<StorePath>> = drv
        .outputs
        .iter()
        .map(|(name, output)| (name.clone(), output.path.clone()))
        .collect();
    if known.values().all(Option::is_some) {
        return Ok(known);
    }
    for (name, hash) in static_output_hashes(store, drv, hashes)? {
        if let Some(slot @ None) = known.get_mut(&name) {
            let id = DrvOutput {
                drv_hash: hash,
                output: name,
            };
            *slot = store.query_realisation(&id)?.map(|r| r.out_path);
        }
    }
    Ok(known)
}

/// The static output hashes of `drv` (realisation ids), reading input derivations from the
/// store as needed.
pub fn static_output_hashes(
    store: &LocalStore,
    drv: &Derivation,
    hashes: &mut DrvHashCache,
) -> Result<BTreeMap<String, Hash>, PlanError> {
    let dir = store.store_dir();
    let mut input_failure = None;
    let result = drv.static_output_hashes(dir, &mut |input| {
        let mut load = |path: &StorePath| {
            read_derivation(store, path).map_err(|error| {
                let message = error.to_string();
                input_failure.get_or_insert(error);
                DerivationError::UnknownInput(message)
            })
        };
        hashes.hash_of_path(dir, input, &mut load)
    });
    if let Some(error) = input_failure {
        return Err(error);
    }
    Ok(result?)
}

/// Output name → path of the outputs of `drv` whose paths are known (see
/// [`known_output_paths`]); the others are left out.
pub fn output_paths(
    store: &LocalStore,
    _drv_path: &StorePath,
    drv: &Derivation,
) -> Result<BTreeMap<String, StorePath>, PlanError> {
    let mut hashes = DrvHashCache::new();
    Ok(known_output_paths(store, drv, &mut hashes)?
        .into_iter()
        .filter_map(|(name, path)| path.map(|path| (name, path)))
        .collect())
}

struct Loader<'a> {
    store: &'a LocalStore,
    check: bool,
    /// Parsed derivations and their outputs (`None`: floating or deferred, not realised).
    parsed: BTreeMap<StorePath, (Derivation, BTreeMap<String, Option<StorePath>>)>,
    /// The `.drv` texts of parsed derivations not yet verified (see the module doc).
    unverified: BTreeMap<StorePath, Vec<u8>>,
    /// Hash modulo of the input derivations seen while verifying.
    hashes: DrvHashCache,
    /// Derivation → index in `builds`, once decided that it must be built.
    index: BTreeMap<StorePath, usize>,
    /// (derivation, output) pairs already examined.
    visited: BTreeSet<(StorePath, String)>,
    builds: Vec<PlannedBuild>,
}

impl Loader<'_> {
    fn load(&mut self, drv_path: &StorePath) -> Result<(), PlanError> {
        if !self.parsed.contains_key(drv_path) {
            let (drv, text) = read_derivation_text(self.store, drv_path)?;
            let outputs = known_output_paths(self.store, &drv, &mut self.hashes)?;
            self.parsed.insert(drv_path.clone(), (drv, outputs));
            self.unverified.insert(drv_path.clone(), text);
        }
        Ok(())
    }

    /// Verifies the paths of a loaded derivation (once) before it enters the plan.
    fn verify(&mut self, drv_path: &StorePath) -> Result<(), PlanError> {
        if let Some(text) = self.unverified.remove(drv_path) {
            let (drv, _) = &self.parsed[drv_path];
            verify_derivation_paths(self.store, drv_path, drv, &text, &mut self.hashes)?;
        }
        Ok(())
    }

    /// Makes sure `wanted` outputs of `drv_path` will be valid; returns the index of its build
    /// if it has to be built.
    fn require(
        &mut self,
        drv_path: &StorePath,
        wanted: &BTreeSet<String>,
        is_target: bool,
    ) -> Result<Option<usize>, PlanError> {
        self.load(drv_path)?;
        let (_, outputs) = &self.parsed[drv_path];
        let wanted: BTreeSet<String> = if wanted.is_empty() {
            outputs.keys().cloned().collect()
        } else {
            wanted.clone()
        };
        let mut missing = Vec::new();
        for name in &wanted {
            let path = outputs.get(name).ok_or_else(|| PlanError::NoSuchOutput {
                drv: self.store.store_dir().print(drv_path),
                output: name.clone(),
            })?;
            if self.visited.contains(&(drv_path.clone(), name.clone())) {
                continue;
            }
            match path {
                Some(path) if self.store.is_valid(path)? => {}
                _ => missing.push(name.clone()),
            }
        }
        for name in &wanted {
            self.visited.insert((drv_path.clone(), name.clone()));
        }
        if let Some(&index) = self.index.get(drv_path) {
            return Ok(Some(index));
        }
        let reason = if !missing.is_empty() {
            BuildReason::MissingOutputs(missing)
        } else if is_target && self.check {
            BuildReason::Check
        } else {
            return Ok(None);
        };
        self.verify(drv_path)?;
        let (drv, outputs) = self.parsed[drv_path].clone();
        for source in &drv.input_srcs {
            if !self.store.is_valid(source)? {
                return Err(PlanError::MissingSource {
                    drv: self.store.store_dir().print(drv_path),
                    source_path: self.store.store_dir().print(source),
                });
            }
        }
        let mut depends_on = BTreeSet::new();
        let mut inputs = drv.input_srcs.clone();
        let mut resolve = drv.is_deferred() || (drv.is_floating() && !drv.input_drvs.is_empty());
        for (input, used) in &drv.input_drvs {
            if let Some(index) = self.require(input, used, false)? {
                depends_on.insert(index);
            }
            let (input_drv, input_outputs) = &self.parsed[input];
            // Placeholders of floating or deferred inputs stand in the derivation.
            resolve |= !input_drv.has_known_output_paths();
            for name in used {
                // `require` checked that every used output exists.
                if let Some(Some(path)) = input_outputs.get(name) {
                    inputs.insert(path.clone());
                }
            }
        }
        let output_hashes = static_output_hashes(self.store, &drv, &mut self.hashes)?;
        let outputs = outputs
            .into_iter()
            .filter_map(|(name, path)| path.map(|path| (name, path)))
            .filter(|(name, _)| drv.outputs.get(name).is_some_and(|o| o.path.is_some()))
            .collect();
        let index = self.builds.len();
        self.builds.push(PlannedBuild {
            drv_path: drv_path.clone(),
            drv,
            outputs,
            output_hashes,
            resolve,
            reason,
            inputs,
            depends_on: depends_on.into_iter().collect(),
        });
        self.index.insert(drv_path.clone(), index);
        Ok(Some(index))
    }
}

impl BuildPlan {
    /// Loads the closure of `targets` from `store` and keeps what must be built. With `check`,
    /// targets whose outputs are all valid are planned as [`BuildReason::Check`] rebuilds.
    pub fn load(
        store: &LocalStore,
        targets: &[BuildTarget],
        check: bool,
    ) -> Result<BuildPlan, PlanError> {
        let mut loader = Loader {
            store,
            check,
            parsed: BTreeMap::new(),
            unverified: BTreeMap::new(),
            hashes: DrvHashCache::new(),
            index: BTreeMap::new(),
            visited: BTreeSet::new(),
            builds: Vec::new(),
        };
        let mut wanted_outputs = Vec::new();
        for target in targets {
            loader.require(&target.drv_path, &target.outputs, true)?;
            let (drv, outputs) = &loader.parsed[&target.drv_path];
            let wanted = outputs
                .iter()
                .filter(|(name, _)| target.outputs.is_empty() || target.outputs.contains(*name))
                // Outputs the derivation names (realised ones may change with a rebuild).
                .filter(|(name, _)| drv.outputs.get(*name).is_some_and(|o| o.path.is_some()))
                .filter_map(|(name, path)| path.clone().map(|path| (name.clone(), path)))
                .collect();
            wanted_outputs.push((target.drv_path.clone(), wanted));
        }
        Ok(BuildPlan {
            builds: loader.builds,
            targets: wanted_outputs,
            requested: targets.to_vec(),
        })
    }

    /// For each target: its derivation and output name → path of every wanted output, floating
    /// and deferred ones from their realisations (call it once the plan has run; an output
    /// without a realisation is an error).
    pub fn realised_targets(&self, store: &LocalStore) -> Result<Vec<TargetOutputs>, PlanError> {
        let mut hashes = DrvHashCache::new();
        let mut realised = Vec::new();
        for target in &self.requested {
            let drv = read_derivation(store, &target.drv_path)?;
            let mut wanted = BTreeMap::new();
            for (name, path) in known_output_paths(store, &drv, &mut hashes)? {
                if !target.outputs.is_empty() && !target.outputs.contains(&name) {
                    continue;
                }
                let path = path.ok_or_else(|| PlanError::NotRealised {
                    drv: store.store_dir().print(&target.drv_path),
                    output: name.clone(),
                })?;
                wanted.insert(name, path);
            }
            realised.push((target.drv_path.clone(), wanted));
        }
        Ok(realised)
    }

    /// Whether nothing has to be built.
    pub fn is_empty(&self) -> bool {
        self.builds.is_empty()
    }
}
