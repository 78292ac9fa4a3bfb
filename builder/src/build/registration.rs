//! From a finished builder to valid store paths: the outputs get fresh inodes where the
//! build had the network and are canonicalised, scanned for references and NAR-hashed (in
//! parallel across outputs), checked against a fixed-output hash and
//! `allowedReferences`/`disallowedReferences`, and registered in one transaction.
use super::*;

/// How a build's outputs came to be, for their canonicalisation.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProducedBy {
    /// The host uids/gids (first, count) the build's files may have; `None`: not checked.
    pub(super) build_ids: Option<(u32, u32)>,
    /// The build had the network, so it may have handed descriptors of its outputs to
    /// processes outside the sandbox: the outputs get fresh inodes.
    pub(super) had_network: bool,
}

/// Gives an output fresh inodes if needed and canonicalises it (see [`outputs`]).
pub(super) fn canonicalise_output(
    host_path: &Path,
    produced: ProducedBy,
) -> Result<(), OutputError> {
    if produced.had_network {
        if let Some(range) = produced.build_ids {
            outputs::check_ownership(host_path, range)?;
        }
        outputs::refresh_inodes(host_path)?;
        // The copies are this process's own files.
        outputs::canonicalise(host_path, None)
    } else {
        outputs::canonicalise(host_path, produced.build_ids)
    }
}

/// Canonicalises, scans, hashes, checks and registers the outputs.
pub(super) fn finish_outputs(
    store: &LocalStore,
    build: &PlannedBuild,
    slots: &[OutputSlot],
    closure: &BTreeSet<StorePath>,
    check: bool,
    produced: ProducedBy,
) -> Result<(), BuildError> {
    let dir = store.store_dir();
    for slot in slots {
        if fs::symlink_metadata(&slot.host_path).is_err() {
            return Err(BuildError::MissingOutput {
                output: slot.name.clone(),
                path: dir.print(&slot.path),
            });
        }
    }
    let mut candidates = closure.clone();
    candidates.extend(slots.iter().map(|slot| slot.path.clone()));
    let scanned: Vec<ScannedOutput> = slots
        .par_iter()
        .map(|slot| {
            canonicalise_output(&slot.host_path, produced)?;
            outputs::scan_and_hash(&slot.host_path, &candidates)
        })
        .collect::<Result<_, OutputError>>()?;
    if build.drv.is_floating() {
        for (slot, scanned) in slots.iter().zip(&scanned) {
            check_reference_rules(store, build, &dir.print(&slot.path), &scanned.references)?;
        }
        let scratch: Vec<crate::ca::ScratchOutput> = slots
            .iter()
            .zip(scanned)
            .map(|(slot, scanned)| crate::ca::ScratchOutput {
                name: slot.name.clone(),
                path: slot.path.clone(),
                host_path: slot.host_path.clone(),
                references: scanned.references,
            })
            .collect();
        return crate::ca::finish_floating_outputs(store, build, scratch);
    }

    let mut infos = Vec::new();
    for (slot, scanned) in slots.iter().zip(scanned) {
        let printed = dir.print(&slot.path);
        let mut ca = None;
        if let Some(fixed) = build.drv.outputs.get(&slot.name).and_then(|o| o.fixed) {
            let got = outputs::content_hash(&slot.host_path, fixed.method, fixed.hash.algo())?;
            if got != fixed.hash {
                return Err(BuildError::HashMismatch {
                    path: printed,
                    wanted: Box::new(fixed.hash),
                    got: Box::new(got),
                });
            }
            if !scanned.references.is_empty() {
                return Err(BuildError::FixedOutputReferences {
                    path: printed,
                    references: print_paths(store, &scanned.references),
                });
            }
            ca = Some(render_content_address(fixed.method, &fixed.hash));
        }
        check_reference_rules(store, build, &printed, &scanned.references)?;
        if slot.valid_before {
            if !check {
                continue;
            }
            if let Some(registered) = store.query_path_info(&slot.path)? {
                if registered.nar_hash != scanned.nar_hash {
                    let first_difference = outputs::first_difference(
                        &store.physical_path(&slot.path),
                        &slot.host_path,
                    )?
                    .map(|(path, what)| {
                        let shown = if path.as_os_str().is_empty() {
                            printed.clone()
                        } else {
                            format!("{printed}/{}", path.display())
                        };
                        format!("{shown}: {what}")
                    });
                    return Err(BuildError::NotReproducible {
                        path: printed,
                        registered: registered.nar_hash.to_sri(),
                        rebuilt: scanned.nar_hash.to_sri(),
                        first_difference,
                    });
                }
            }
            continue;
        }
        let mut info = ValidPathInfo::new(slot.path.clone(), scanned.nar_hash, scanned.nar_size);
        info.references = scanned.references;
        info.deriver = Some(build.drv_path.clone());
        info.ca = ca;
        infos.push(info);
    }
    if !infos.is_empty() {
        store.register_valid_paths(&infos)?;
    }
    Ok(())
}

pub(super) fn print_paths(store: &LocalStore, paths: &BTreeSet<StorePath>) -> String {
    paths
        .iter()
        .map(|path| store.store_dir().print(path))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `allowedReferences` and `disallowedReferences`: lists of store paths or output names.
pub(super) fn check_reference_rules(
    store: &LocalStore,
    build: &PlannedBuild,
    printed: &str,
    references: &BTreeSet<StorePath>,
) -> Result<(), BuildError> {
    let resolve = |attribute: &str| -> Result<Option<BTreeSet<StorePath>>, BuildError> {
        let Some(value) = build.drv.env_var(attribute) else {
            return Ok(None);
        };
        // Store paths and output names: text that is not UTF-8 names neither, lossy or not.
        String::from_utf8_lossy(value)
            .split_whitespace()
            .map(|entry| {
                if let Some(path) = build.outputs.get(entry) {
                    return Ok(path.clone());
                }
                store
                    .store_dir()
                    .parse(entry)
                    .map_err(|_| BuildError::BadReferenceRule {
                        attribute: attribute.to_owned(),
                        entry: entry.to_owned(),
                    })
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Some)
    };
    if let Some(allowed) = resolve("allowedReferences")? {
        if let Some(reference) = references.difference(&allowed).next() {
            return Err(BuildError::ForbiddenReference {
                path: printed.to_owned(),
                reference: store.store_dir().print(reference),
                rule: "`allowedReferences` does not list",
            });
        }
    }
    if let Some(disallowed) = resolve("disallowedReferences")? {
        if let Some(reference) = references.intersection(&disallowed).next() {
            return Err(BuildError::ForbiddenReference {
                path: printed.to_owned(),
                reference: store.store_dir().print(reference),
                rule: "`disallowedReferences` forbids",
            });
        }
    }
    Ok(())
}
