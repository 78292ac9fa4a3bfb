//! Pushing what `realise` built to a binary cache (`--push-to URL` or the configuration's
//! `push-to`): after the builds, the closure of every output built in this run is uploaded,
//! signed with the configuration's `secret-key-files`, skipping what the cache has.
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use kiln_builder::plan::BuildPlan;
use kiln_cache::binary_cache::{BinaryCache, Pushed};
use kiln_cache::compression::Compression;
use kiln_cache::transport::DEFAULT_STALL_TIMEOUT;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use serde_json::json;

use crate::config::read_secret_key;
use crate::log_events::{self, Activity, JsonLog};
use crate::session::GlobalOptions;

/// Uploads the closures of the outputs of `plan`'s builds that are valid now to `url`.
pub fn push_built(
    global: &GlobalOptions,
    store: &LocalStore,
    plan: &BuildPlan,
    url: &str,
    jobs: usize,
) -> anyhow::Result<()> {
    let mut built: Vec<StorePath> = Vec::new();
    let mut hashes = kiln_store::derivation::DrvHashCache::new();
    for build in &plan.builds {
        // Floating and deferred outputs are known from their realisations once built.
        let outputs = kiln_builder::plan::known_output_paths(store, &build.drv, &mut hashes)?;
        for path in outputs.values().flatten() {
            if store.is_valid(path)? {
                built.push(path.clone());
            }
        }
    }
    if built.is_empty() {
        return Ok(());
    }
    let pushed = push_closures(global, store, &built, url, Compression::Xz, jobs, "pushed")
        .with_context(|| format!("cannot push the built paths to '{url}'"))?;
    log_events::info(&format!("pushed {} paths to '{url}'", pushed.uploaded));
    Ok(())
}

/// What [`push_closures`] did.
pub struct PushCounts {
    /// The cache's URL as it names itself.
    pub cache_url: String,
    /// Paths uploaded.
    pub uploaded: u64,
    /// Paths the cache had already.
    pub present: u64,
    /// Compressed bytes uploaded.
    pub bytes: u64,
}

/// Uploads the closures of `paths` to the cache at `url`, signed with the configuration's
/// `secret-key-files`, skipping what the cache has; each upload is reported as
/// "`verb` 'path' to 'url'".
pub fn push_closures(
    global: &GlobalOptions,
    store: &LocalStore,
    paths: &[StorePath],
    url: &str,
    compression: Compression,
    jobs: usize,
    verb: &str,
) -> anyhow::Result<PushCounts> {
    let keys = global
        .config
        .secret_key_files
        .iter()
        .map(|file| read_secret_key(file))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cache = BinaryCache::open(url, DEFAULT_STALL_TIMEOUT)?;
    let dir = store.store_dir();
    let (uploaded, present, bytes) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    cache.push_closure(
        store,
        paths,
        compression,
        &keys,
        jobs,
        &|path, pushed| match pushed {
            Pushed::Present => {
                present.fetch_add(1, Ordering::SeqCst);
            }
            Pushed::Uploaded { file_size, .. } => {
                uploaded.fetch_add(1, Ordering::SeqCst);
                bytes.fetch_add(*file_size, Ordering::SeqCst);
                report_upload(verb, &dir.print(path), cache.url(), *file_size);
            }
        },
    )?;
    Ok(PushCounts {
        cache_url: cache.url().to_owned(),
        uploaded: uploaded.into_inner(),
        present: present.into_inner(),
        bytes: bytes.into_inner(),
    })
}

/// Reports one path uploaded to a binary cache: "`verb` 'path' to 'cache'" on a line, or in JSON a `copy`
/// activity (started, its `copied` result and stopped at once: the upload is reported when
/// it is done).
fn report_upload(verb: &str, path: &str, to: &str, file_size: u64) {
    let text = format!("{verb} '{path}' to '{to}'");
    if !log_events::is_json() {
        return log_events::info(&text);
    }
    let id = JsonLog.start(Activity::Copy, 0, &text, json!({ "path": path, "to": to }));
    JsonLog.result(
        id,
        Activity::Copy,
        "copied",
        json!({ "fileSize": file_size }),
    );
    JsonLog.stop(id);
}
