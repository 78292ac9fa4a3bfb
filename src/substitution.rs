//! What `realise` fetches from binary caches before it builds: the settings (`substituters`,
//! `trusted-public-keys`, `require-sigs`, `stalled-download-timeout` from the configuration,
//! `--substituters` and `--no-substitute` from the command line), and the walk of the
//! derivation graph that decides, with Nix's semantics, what is fetched: from the targets
//! down, a derivation whose missing outputs (with the closure of their references) are all in
//! a cache is fetched and its inputs are not looked at; otherwise it will be built and the
//! same question is asked of its input derivations. Whatever fails to fetch is left invalid,
//! so the build plan made afterwards builds it (Nix's `--fallback`, always on). A floating or
//! deferred output that this store has not realised is looked up as a realisation in the
//! caches; a realisation found names the path to fetch and is recorded once it is fetched.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use kiln_builder::plan::{output_paths, read_derivation, static_output_hashes, BuildTarget};
use kiln_cache::signing::TrustedKeys;
use kiln_cache::substitute::{Found, SubstituteEvent, SubstituterSettings, Substituters};
use kiln_cache::transport::DEFAULT_STALL_TIMEOUT;
use kiln_local_store::LocalStore;
use kiln_store::derivation::DrvHashCache;
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{StoreDir, StorePath};
use serde_json::json;

use crate::log_events::{self, Activity, JsonLog};
use crate::progress::SubstitutionProgress;
use crate::session::GlobalOptions;

/// The substitution settings in force, `None` when there is no cache to ask.
pub fn settings(
    global: &GlobalOptions,
    flag_urls: &[String],
    no_substitute: bool,
    jobs: usize,
) -> anyhow::Result<Option<SubstituterSettings>> {
    if no_substitute {
        return Ok(None);
    }
    let config = &global.config;
    let urls: Vec<String> = if flag_urls.is_empty() {
        config.substituters.clone().unwrap_or_default()
    } else {
        flag_urls
            .iter()
            .flat_map(|urls| urls.split_whitespace())
            .map(str::to_owned)
            .collect()
    };
    if urls.is_empty() {
        return Ok(None);
    }
    let trusted_keys = TrustedKeys::parse(config.trusted_public_keys.iter().map(String::as_str))
        .context("invalid trusted-public-keys")?;
    Ok(Some(SubstituterSettings {
        urls,
        trusted_keys,
        require_sigs: config.require_sigs.unwrap_or(true),
        stall_timeout: config
            .stalled_download_timeout
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_STALL_TIMEOUT),
        jobs,
    }))
}

/// What the walk decided.
#[derive(Default)]
pub struct SubstitutionPlan {
    /// Paths to fetch, each with the cache that has it.
    pub fetch: BTreeMap<StorePath, Found>,
    /// Derivations that will be built because some missing output is in no cache.
    pub build: BTreeSet<StorePath>,
    /// Realisations found in the caches for floating and deferred outputs, recorded once their
    /// paths are fetched.
    pub realisations: Vec<Realisation>,
}

/// Walks the graph of `targets` (see the module doc).
pub fn plan(
    store: &LocalStore,
    targets: &[BuildTarget],
    substituters: &Substituters,
    on_event: &(dyn Fn(SubstituteEvent<'_>) + Sync),
) -> anyhow::Result<SubstitutionPlan> {
    let mut result = SubstitutionPlan::default();
    let mut level: BTreeMap<StorePath, BTreeSet<String>> = BTreeMap::new();
    for target in targets {
        level
            .entry(target.drv_path.clone())
            .or_default()
            .extend(target.outputs.iter().cloned());
    }
    let mut seen: BTreeSet<(StorePath, String)> = BTreeSet::new();
    let mut hashes = DrvHashCache::new();
    while !level.is_empty() {
        let mut examined = Vec::new();
        let mut asked = BTreeSet::new();
        for (drv_path, wanted) in std::mem::take(&mut level) {
            let drv = read_derivation(store, &drv_path)?;
            let mut outputs = output_paths(store, &drv_path, &drv)?;
            // Floating and deferred outputs not realised here: a cache's realisation names
            // their paths (Nix's `realisations/<id>.doi`).
            let unknown: Vec<String> = drv
                .outputs
                .keys()
                .filter(|name| !outputs.contains_key(*name))
                .filter(|name| wanted.is_empty() || wanted.contains(*name))
                .cloned()
                .collect();
            let mut unrealised = false;
            if !unknown.is_empty() {
                let static_hashes = static_output_hashes(store, &drv, &mut hashes)?;
                for name in unknown {
                    let found = static_hashes.get(&name).and_then(|hash| {
                        let id = DrvOutput {
                            drv_hash: *hash,
                            output: name.clone(),
                        };
                        substituters.realisation(&id, on_event)
                    });
                    match found {
                        Some(realisation) => {
                            outputs.insert(name, realisation.out_path.clone());
                            result.realisations.push(realisation);
                        }
                        None => unrealised = true,
                    }
                }
            }
            let mut missing = BTreeSet::new();
            for (name, path) in &outputs {
                let is_wanted = wanted.is_empty() || wanted.contains(name);
                if !is_wanted || !seen.insert((drv_path.clone(), name.clone())) {
                    continue;
                }
                if !result.fetch.contains_key(path) && !store.is_valid(path)? {
                    missing.insert(path.clone());
                }
            }
            if unrealised {
                // An output no cache names: the derivation is built, its inputs looked at.
                result.build.insert(drv_path.clone());
                for (input, used) in &drv.input_drvs {
                    level
                        .entry(input.clone())
                        .or_default()
                        .extend(used.iter().cloned());
                }
                continue;
            }
            asked.extend(missing.iter().cloned());
            examined.push((drv_path, drv, missing));
        }
        // One parallel round of queries for the whole level.
        substituters.query(&asked, on_event);
        for (drv_path, drv, missing) in examined {
            if missing.is_empty() {
                continue;
            }
            match substituters.closure_to_fetch(store, &missing, on_event)? {
                Some(closure) => result.fetch.extend(closure),
                None => {
                    result.build.insert(drv_path);
                    for (input, used) in &drv.input_drvs {
                        level
                            .entry(input.clone())
                            .or_default()
                            .extend(used.iter().cloned());
                    }
                }
            }
        }
    }
    Ok(result)
}

/// Reports the events of substitution in the process's log format: byte bars (`bar`, see
/// [`SubstitutionProgress`]), lines (`copying path '…' from '…'`, `fetched '…'`), or in JSON
/// a `substitute` activity per path with `progress` events and a `result` that says
/// `fetched`; a path whose fetch failed (a warning, which names no path) gets a `failed`
/// result when the report ends (on drop), so every `start` has its `stop`.
pub struct SubstitutionLog {
    store_dir: StoreDir,
    bars: Option<SubstitutionProgress>,
    /// JSON activity id and start of each running download.
    running: Mutex<BTreeMap<StorePath, (u64, std::time::Instant)>>,
}

impl SubstitutionLog {
    pub fn new(store_dir: StoreDir) -> SubstitutionLog {
        SubstitutionLog {
            bars: SubstitutionProgress::new(store_dir.clone()),
            store_dir,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<StorePath, (u64, std::time::Instant)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Clears the bars, if any.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.finish();
        }
    }

    /// Reports one event.
    pub fn event(&self, event: SubstituteEvent<'_>) {
        if let Some(bars) = &self.bars {
            return bars.event(event);
        }
        let json = log_events::is_json();
        match event {
            SubstituteEvent::Progress {
                path,
                bytes,
                download_size,
                ..
            } => {
                if let Some((id, started)) = self.running().get(path) {
                    let seconds = started.elapsed().as_secs_f64().max(0.001);
                    JsonLog.progress(*id, bytes, download_size, bytes as f64 / seconds);
                }
            }
            SubstituteEvent::Warning(text) => log_events::warn(&text),
            SubstituteEvent::Started {
                path,
                cache,
                download_size,
                nar_size,
            } => {
                let size = match download_size {
                    Some(bytes) => format!("{:.2} MiB download, ", mib(bytes)),
                    None => String::new(),
                };
                let text = format!(
                    "copying path '{}' from '{cache}' ({size}{:.2} MiB unpacked)...",
                    self.store_dir.print(path),
                    mib(nar_size)
                );
                if !json {
                    return log_events::info(&text);
                }
                let id = JsonLog.start(
                    Activity::Substitute,
                    0,
                    &text,
                    json!({
                        "path": self.store_dir.print(path),
                        "cache": cache,
                        "downloadSize": download_size,
                        "narSize": nar_size,
                    }),
                );
                self.running()
                    .insert(path.clone(), (id, std::time::Instant::now()));
            }
            SubstituteEvent::Fetched {
                path,
                cache,
                bytes,
                elapsed,
            } => {
                if json {
                    let id = self.running().remove(path);
                    if let Some((id, _)) = id {
                        JsonLog.result(
                            id,
                            Activity::Substitute,
                            "fetched",
                            json!({ "bytes": bytes, "durationMs": elapsed.as_millis() as u64 }),
                        );
                        JsonLog.stop(id);
                    }
                    return;
                }
                let seconds = elapsed.as_secs_f64().max(0.001);
                log_events::info(&format!(
                    "fetched '{}' from '{cache}': {:.2} MiB in {seconds:.1} s ({:.1} MiB/s)",
                    self.store_dir.print(path),
                    mib(bytes),
                    mib(bytes) / seconds
                ));
            }
        }
    }
}

impl Drop for SubstitutionLog {
    fn drop(&mut self) {
        for (_, (id, _)) in std::mem::take(&mut *self.running()) {
            JsonLog.result(id, Activity::Substitute, "failed", json!({}));
            JsonLog.stop(id);
        }
    }
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Before `realise` plans its builds: fetches what the caches have of the targets' graph.
/// With `dry_run`, prints what would be fetched and built instead and returns true (nothing
/// else is to be printed); returns false when substitution is off or when it has fetched.
pub fn substitute_missing(
    global: &GlobalOptions,
    store: &LocalStore,
    targets: &[BuildTarget],
    flag_urls: &[String],
    no_substitute: bool,
    jobs: usize,
    dry_run: bool,
) -> anyhow::Result<bool> {
    let Some(settings) = settings(global, flag_urls, no_substitute, jobs)? else {
        return Ok(false);
    };
    if all_targets_valid(store, targets)? {
        // A no-op realise asks no cache.
        return Ok(false);
    }
    let store_dir = store.store_dir().clone();
    let log = SubstitutionLog::new(store_dir.clone());
    let on_event = |event: SubstituteEvent<'_>| log.event(event);
    let substituters = Substituters::open(&settings, &store_dir, &on_event);
    if substituters.is_empty() {
        return Ok(false);
    }
    let plan = plan(store, targets, &substituters, &on_event)?;
    if dry_run && plan.fetch.is_empty() {
        // Nothing to fetch: `realise` lists the builds with their reasons.
        return Ok(false);
    }
    if dry_run {
        print_dry_run(store, &plan);
        return Ok(true);
    }
    if !plan.fetch.is_empty() {
        let failed = substituters.fetch_all(store, &plan.fetch, &on_event);
        log.finish();
        let fetched = plan.fetch.len() - failed.len();
        let bytes: u64 = plan
            .fetch
            .iter()
            .filter(|(path, _)| !failed.contains(*path))
            .map(|(_, found)| found.info.file_size.unwrap_or(found.info.nar_size))
            .sum();
        log_events::info(&format!(
            "fetched {fetched} path{} ({:.1} MiB) from binary caches{}",
            if fetched == 1 { "" } else { "s" },
            mib(bytes),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; {} will be built instead", failed.len())
            }
        ));
    }
    record_realisations(store, &plan.realisations)?;
    Ok(false)
}

/// Records the realisations the caches gave whose paths are valid now (fetched, or here
/// already), keeping the dependencies this store knows.
fn record_realisations(store: &LocalStore, realisations: &[Realisation]) -> anyhow::Result<()> {
    let mut usable = Vec::new();
    for realisation in realisations {
        if !store.is_valid(&realisation.out_path)? {
            continue;
        }
        let mut kept = realisation.clone();
        kept.dependent_realisations.clear();
        for (id, path) in &realisation.dependent_realisations {
            if store
                .query_realisation(id)?
                .is_some_and(|r| &r.out_path == path)
            {
                kept.dependent_realisations.insert(id.clone(), path.clone());
            }
        }
        usable.push(kept);
    }
    store
        .register_realisations(&usable)
        .context("cannot record the realisations fetched from binary caches")?;
    Ok(())
}

/// Whether every wanted output of every target is valid already.
fn all_targets_valid(store: &LocalStore, targets: &[BuildTarget]) -> anyhow::Result<bool> {
    for target in targets {
        let drv = read_derivation(store, &target.drv_path)?;
        let known = output_paths(store, &target.drv_path, &drv)?;
        for name in drv.outputs.keys() {
            let wanted = target.outputs.is_empty() || target.outputs.contains(name);
            if !wanted {
                continue;
            }
            match known.get(name) {
                Some(path) if store.is_valid(path)? => {}
                _ => return Ok(false),
            }
        }
    }
    Ok(true)
}

fn print_dry_run(store: &LocalStore, plan: &SubstitutionPlan) {
    let dir = store.store_dir();
    if !plan.fetch.is_empty() {
        let download: u64 = plan
            .fetch
            .values()
            .map(|found| found.info.file_size.unwrap_or(found.info.nar_size))
            .sum();
        let unpacked: u64 = plan.fetch.values().map(|found| found.info.nar_size).sum();
        log_events::info(&format!(
            "{} path{} will be fetched ({:.2} MiB download, {:.2} MiB unpacked):",
            plan.fetch.len(),
            if plan.fetch.len() == 1 { "" } else { "s" },
            mib(download),
            mib(unpacked)
        ));
        for path in plan.fetch.keys() {
            log_events::info(&format!("  {}", dir.print(path)));
        }
    }
    if plan.build.is_empty() {
        if plan.fetch.is_empty() {
            log_events::info("nothing to build: every output is valid");
        }
        return;
    }
    log_events::info(&format!(
        "{} derivation{} will be built:",
        plan.build.len(),
        if plan.build.len() == 1 { "" } else { "s" }
    ));
    for drv in &plan.build {
        log_events::info(&format!("  {}", dir.print(drv)));
    }
}
