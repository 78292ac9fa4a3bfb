//! Pushing what `realise` built to a binary cache (`--push-to URL` or the configuration's
//! `push-to`): after the builds, the closure of every output built in this run is uploaded,
//! signed with the configuration's `secret-key-files`, skipping what the cache has.
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let keys = global
        .config
        .secret_key_files
        .iter()
        .map(|file| read_secret_key(file))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cache = BinaryCache::open(url, DEFAULT_STALL_TIMEOUT)?;
    let dir = store.store_dir();
    let uploaded = AtomicUsize::new(0);
    cache
        .push_closure(
            store,
            &built,
            Compression::Xz,
            &keys,
            jobs,
            &|path, pushed| {
                if let Pushed::Uploaded { file_size, .. } = pushed {
                    uploaded.fetch_add(1, Ordering::SeqCst);
                    report_upload("pushed", &dir.print(path), cache.url(), *file_size);
                }
            },
        )
        .with_context(|| format!("cannot push the built paths to '{url}'"))?;
    log_events::info(&format!(
        "pushed {} paths to '{url}'",
        uploaded.into_inner()
    ));
    Ok(())
}

/// Reports one path uploaded to a binary cache: "`verb` 'path' to 'cache'" on a line, or in JSON a `copy`
/// activity (started, its `copied` result and stopped at once: the upload is reported when
/// it is done).
pub fn report_upload(verb: &str, path: &str, to: &str, file_size: u64) {
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
