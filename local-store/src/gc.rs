//! Garbage collection: delete every store object that no root reaches.
//!
//! Roots are the links under `var/gcroots/` (see `roots`), the temporary roots of running kiln
//! processes, and every output whose lock a running build holds. The live set is their closure
//! over references; with `keep_derivations` (Nix's default) a live path also keeps its valid
//! deriver, and with `keep_outputs` (off by default, as in Nix) a live derivation keeps its
//! valid outputs. Everything else is dead: valid paths outside the live set, anything in the
//! physical store directory that the database does not list (leftovers of crashed builds), and
//! the temporaries a killed kiln left there (see [`abandoned_temporary`]).
//!
//! The collector holds the GC lock exclusively for the whole run, so no root can be added
//! meanwhile. Each dead path is deleted under its output lock, taken without waiting: a path a
//! build holds is skipped, and so is everything it refers to. Valid dead paths are deleted
//! referrers first; each is invalidated in the database before its files are removed, so a
//! crash in between leaves only an invalid leftover, never a valid path without contents.
//! Realisations are no roots: those of a deleted path go with it (reported), so a
//! content-addressed output that was collected is built again when next needed.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;

use super::error::{LocalStoreError, Result};
use super::fs_tree;
use super::lock::{GcLock, LockMode};
use super::{LocalStore, OutputLock};
use kiln_store::store_path::StorePath;

/// What a collection does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// Only report what would be deleted (and how many bytes that would free).
    pub dry_run: bool,
    /// Stop once at least this many bytes have been freed.
    pub max_freed: Option<u64>,
    /// A live derivation keeps its valid outputs alive (Nix's `keep-outputs`, default off).
    pub keep_outputs: bool,
    /// A live path keeps its valid deriver alive (Nix's `keep-derivations`, default on).
    pub keep_derivations: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            max_freed: None,
            keep_outputs: false,
            keep_derivations: true,
        }
    }
}

/// What a collection did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The store paths deleted, in deletion order.
    pub deleted: Vec<StorePath>,
    /// Abandoned temporaries deleted from the physical store directory (their file names).
    pub temporaries: Vec<String>,
    /// Bytes freed (apparent size of the files whose last link was removed).
    pub bytes_freed: u64,
    /// Realisations (`<drv hash>!<output>`) that went with the deleted paths.
    pub realisations: Vec<String>,
}

impl LocalStore {
    /// The live set: roots of every kind and everything they keep alive. Only valid paths are
    /// followed; roots that are not valid are included as they are (a path being written).
    fn live_paths(&self, options: &GcOptions) -> Result<BTreeSet<StorePath>> {
        let mut roots: BTreeSet<StorePath> = self
            .find_roots()?
            .into_iter()
            .map(|root| root.store_path)
            .collect();
        roots.extend(self.read_temp_roots()?);
        roots.extend(self.held_output_locks()?);

        let mut live = BTreeSet::new();
        let mut pending: Vec<StorePath> = roots.into_iter().collect();
        while let Some(path) = pending.pop() {
            if !live.insert(path.clone()) {
                continue;
            }
            let Some(info) = self.query_path_info(&path)? else {
                continue;
            };
            pending.extend(info.references);
            if options.keep_derivations {
                if let Some(deriver) = info.deriver {
                    if self.is_valid(&deriver)? {
                        pending.push(deriver);
                    }
                }
            }
            if options.keep_outputs {
                for output in info.derivation_outputs.into_values() {
                    if self.is_valid(&output)? {
                        pending.push(output);
                    }
                }
            }
        }
        Ok(live)
    }

    /// Store paths whose output lock a running build holds; stale lock files are removed.
    fn held_output_locks(&self) -> Result<BTreeSet<StorePath>> {
        let dir = self.locks_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(LocalStoreError::io("cannot read locks in", dir, e)),
        };
        let mut held = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| LocalStoreError::io("cannot read locks in", &dir, e))?;
            let file_name = entry.file_name();
            let Some(path) = file_name
                .to_str()
                .and_then(|name| name.strip_suffix(".lock"))
                .and_then(|base| StorePath::from_base_name(base).ok())
            else {
                continue;
            };
            // Taking a free lock and dropping it at once removes the stale file.
            if OutputLock::try_acquire(self, &path)?.is_none() {
                held.insert(path);
            }
        }
        Ok(held)
    }

    /// Names in the physical store directory that the database does not list.
    fn invalid_store_entries(&self, valid: &BTreeSet<StorePath>) -> Result<BTreeSet<StorePath>> {
        let dir = self.physical_store_dir();
        let entries = fs::read_dir(&dir)
            .map_err(|e| LocalStoreError::io("cannot read store directory", &dir, e))?;
        let mut invalid = BTreeSet::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| LocalStoreError::io("cannot read store directory", &dir, e))?;
            let file_name = entry.file_name();
            let Some(path) = file_name
                .to_str()
                .and_then(|base| StorePath::from_base_name(base).ok())
            else {
                continue;
            };
            if !valid.contains(&path) {
                invalid.insert(path);
            }
        }
        Ok(invalid)
    }

    /// Collects garbage (see the module doc).
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        let _gc_lock = GcLock::acquire(&self.gc_lock_file(), LockMode::Exclusive)?;
        let live = self.live_paths(options)?;
        let valid = self.valid_paths()?;
        let dead: BTreeSet<StorePath> = valid.difference(&live).cloned().collect();
        let leftovers: Vec<StorePath> = self
            .invalid_store_entries(&valid)?
            .into_iter()
            .filter(|path| !live.contains(path))
            .collect();

        let mut report = GcReport::default();
        let budget_left =
            |report: &GcReport| options.max_freed.is_none_or(|max| report.bytes_freed < max);

        for path in leftovers {
            if !budget_left(&report) {
                return Ok(report);
            }
            let Some(lock) = OutputLock::try_acquire(self, &path)? else {
                continue;
            };
            // It may have been built and registered since we listed the valid paths.
            if self.is_valid(&path)? {
                continue;
            }
            self.delete_locked(&lock, options.dry_run, &mut report)?;
        }

        self.delete_abandoned_temporaries(options.dry_run, &mut report)?;

        let (order, referrers) = self.referrers_first(&dead)?;
        let mut kept = BTreeSet::new();
        for path in order {
            if !budget_left(&report) {
                break;
            }
            let referred_by_kept = referrers
                .get(&path)
                .is_some_and(|by| by.iter().any(|r| kept.contains(r)));
            let lock = if referred_by_kept {
                None
            } else {
                OutputLock::try_acquire(self, &path)?
            };
            let Some(lock) = lock else {
                kept.insert(path);
                continue;
            };
            let realisations = self.realisations_of_path(&path)?;
            if !options.dry_run {
                match self.invalidate(std::slice::from_ref(&path)) {
                    Ok(()) => {}
                    // A build registered a path referring to this one since the live set was
                    // computed: it is alive after all.
                    Err(LocalStoreError::PathInUse { .. }) => {
                        kept.insert(path);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            report
                .realisations
                .extend(realisations.into_iter().map(|r| r.id.to_string()));
            self.delete_locked(&lock, options.dry_run, &mut report)?;
        }
        Ok(report)
    }

    /// Deletes (or, for a dry run, measures) the object `lock` protects and records it.
    fn delete_locked(&self, lock: &OutputLock, dry_run: bool, report: &mut GcReport) -> Result<()> {
        let physical = self.physical_path(lock.path());
        let bytes = if dry_run {
            fs_tree::tree_size(&physical)
                .map_err(|e| LocalStoreError::io("cannot measure", &physical, e))?
        } else {
            fs_tree::delete_tree(&physical)
                .map_err(|e| LocalStoreError::io("cannot delete", &physical, e))?
        };
        report.bytes_freed += bytes;
        report.deleted.push(lock.path().clone());
        Ok(())
    }

    /// Deletes what killed kiln processes left in the physical store directory (see
    /// [`abandoned_temporary`]); a staging directory is deleted under its output's lock.
    fn delete_abandoned_temporaries(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        let dir = self.physical_store_dir();
        let entries = fs::read_dir(&dir)
            .map_err(|e| LocalStoreError::io("cannot read store directory", &dir, e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| LocalStoreError::io("cannot read store directory", &dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let _lock = match abandoned_temporary(&name) {
                Some(Abandoned::ProcessGone) => None,
                Some(Abandoned::IfOutputUnlocked(base)) => {
                    let Ok(path) = StorePath::from_base_name(base) else {
                        continue;
                    };
                    match OutputLock::try_acquire(self, &path)? {
                        Some(lock) => Some(lock),
                        None => continue,
                    }
                }
                None => continue,
            };
            let location = entry.path();
            let bytes = if dry_run {
                fs_tree::tree_size(&location)
            } else {
                fs_tree::delete_tree(&location)
            }
            .map_err(|e| LocalStoreError::io("cannot delete", &location, e))?;
            report.bytes_freed += bytes;
            report.temporaries.push(name);
        }
        Ok(())
    }

    /// `dead` ordered so that every path comes after all of its referrers in `dead`, and the
    /// referrers of each path within `dead` (self-references left out).
    #[allow(clippy::type_complexity)]
    fn referrers_first(
        &self,
        dead: &BTreeSet<StorePath>,
    ) -> Result<(Vec<StorePath>, BTreeMap<StorePath, BTreeSet<StorePath>>)> {
        let mut referrers = BTreeMap::new();
        for path in dead {
            let mut by = self.referrers(path)?;
            by.retain(|r| r != path && dead.contains(r));
            referrers.insert(path.clone(), by);
        }
        let mut order = Vec::with_capacity(dead.len());
        let mut visited = BTreeSet::new();
        for start in dead {
            // Iterative depth-first search; `true` marks a path whose referrers are all placed.
            let mut stack = vec![(start.clone(), false)];
            while let Some((path, referrers_placed)) = stack.pop() {
                if referrers_placed {
                    order.push(path);
                    continue;
                }
                if !visited.insert(path.clone()) {
                    continue;
                }
                stack.push((path.clone(), true));
                if let Some(by) = referrers.get(&path) {
                    stack.extend(
                        by.iter()
                            .filter(|r| !visited.contains(*r))
                            .map(|r| (r.clone(), false)),
                    );
                }
            }
        }
        Ok((order, referrers))
    }
}

/// When a temporary in the physical store directory is abandoned.
#[derive(Debug, PartialEq, Eq)]
enum Abandoned<'a> {
    /// The process that made it is gone.
    ProcessGone,
    /// Nobody holds the output lock of this store path (base name).
    IfOutputUnlocked(&'a str),
}

/// Whether `name` is a temporary that a kiln process left behind: `.tmp-PID-…` (a source being
/// added), `.kiln-fresh-PID-…` (an output being copied to fresh inodes), `.kiln-check-PID-…`
/// (a `--check` rebuild) and `.kiln-rewrite-PID-…` (a content-addressed output being rewritten
/// to its final path) of a process that no longer runs, or `.kiln-sandbox-BASE` (a build's
/// staging directory), abandoned once the output lock of `BASE` is free. A pid reused since is
/// taken as alive: the temporary then waits for a later collection.
fn abandoned_temporary(name: &str) -> Option<Abandoned<'_>> {
    if let Some(base) = name.strip_prefix(".kiln-sandbox-") {
        return Some(Abandoned::IfOutputUnlocked(base));
    }
    let rest = [".tmp-", ".kiln-fresh-", ".kiln-check-", ".kiln-rewrite-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))?;
    let pid: i32 = rest.split('-').next()?.parse().ok()?;
    let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::ESRCH,
    };
    (!alive).then_some(Abandoned::ProcessGone)
}

#[cfg(test)]
mod temporary_tests {
    use super::{abandoned_temporary, Abandoned};

    #[test]
    fn temporaries_of_gone_processes_and_unlocked_staging_are_abandoned() {
        let own = std::process::id();
        assert_eq!(abandoned_temporary(&format!(".tmp-{own}-3-src")), None);
        assert_eq!(abandoned_temporary(&format!(".kiln-fresh-{own}-x")), None);
        // Pid numbers are below 2^22 on Linux: this one never runs.
        assert_eq!(
            abandoned_temporary(".kiln-fresh-2147483647-abc-name"),
            Some(Abandoned::ProcessGone)
        );
        assert_eq!(
            abandoned_temporary(".kiln-check-2147483647-0-abc-name"),
            Some(Abandoned::ProcessGone)
        );
        assert_eq!(
            abandoned_temporary(".kiln-rewrite-2147483647-abc-name"),
            Some(Abandoned::ProcessGone)
        );
        assert_eq!(
            abandoned_temporary(".kiln-sandbox-abc-name"),
            Some(Abandoned::IfOutputUnlocked("abc-name"))
        );
        assert_eq!(abandoned_temporary("abc-name"), None);
        assert_eq!(abandoned_temporary(".tmp-notapid-x"), None);
    }
}
