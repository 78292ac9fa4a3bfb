//! The worker's cache of input blobs: `<work_dir>/cas/<sha256>-<size>`, kept across actions
//! and across restarts of `kiln remote-worker`.
//!
//! A file of an input root whose blob is cached is hard-linked into the action's folder (copied
//! when linking fails, or when the file must be executable: a link shares the entry's mode)
//! instead of being downloaded (two actions that need the same missing blob at once download
//! it once); a downloaded blob is written to a temporary name in the cache
//! (`.tmp-…`, checked against its digest while it arrives), made read-only and renamed into
//! place, so an entry is never seen half-written. An entry is hashed again before each use
//! (an action may have written through its link, a disk may rot): a mismatch removes it and
//! the blob is downloaded again. The cache holds at most `limit` bytes: after each insertion
//! the least recently used entries (by modification time, set on each use) are removed; a blob
//! larger than the limit is not cached. Leftover temporary files (a worker killed mid-download)
//! are removed when the cache opens.
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bazel_remote_apis::build::bazel::remote::execution::v2::Digest;
use sha2::{Digest as _, Sha256};

use crate::cas::Cas;
use crate::RemoteError;

/// The default bound of the cache: 10 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 10 << 30;

/// Where a file of an input root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOrigin {
    /// The cache held it (and it hashed right).
    Cache,
    /// Downloaded from the CAS (and now cached, if it fits).
    Fetched,
}

/// The blob cache of one worker.
pub struct BlobCache {
    dir: PathBuf,
    limit: u64,
    /// The bytes the entries hold, as of the last eviction plus what was inserted since (an
    /// eviction scans the folder only when this exceeds the limit).
    total: AtomicU64,
    /// Serialises evictions (downloads and uses run concurrently).
    eviction: Mutex<()>,
    /// One lock per blob being looked up or downloaded, so that two actions needing the same
    /// missing blob download it once (the second finds it cached).
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RemoteError {
    let path = path.to_owned();
    move |source| RemoteError::Io {
        action,
        path,
        source,
    }
}

impl BlobCache {
    /// Opens (creating) the cache in `dir`, bounded to `limit` bytes, removing temporary files
    /// a killed worker left.
    pub fn open(dir: PathBuf, limit: u64) -> Result<BlobCache, RemoteError> {
        std::fs::create_dir_all(&dir).map_err(io_error("cannot create", &dir))?;
        for entry in std::fs::read_dir(&dir).map_err(io_error("cannot read", &dir))? {
            let entry = entry.map_err(io_error("cannot read", &dir))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let cache = BlobCache {
            dir,
            limit,
            total: AtomicU64::new(0),
            eviction: Mutex::new(()),
            in_flight: Mutex::new(HashMap::new()),
        };
        cache.evict()?;
        Ok(cache)
    }

    /// The entry of `digest`.
    pub fn entry_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}", digest.hash, digest.size_bytes))
    }

    /// Puts the blob `digest` at `dest` (which must not exist) with the given mode, from the
    /// cache when it holds a sound entry, else from the CAS (caching it).
    pub async fn materialise(
        &self,
        cas: &Cas,
        digest: &Digest,
        dest: &Path,
        executable: bool,
    ) -> Result<BlobOrigin, RemoteError> {
        let blob_lock = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            in_flight
                .entry(format!("{}-{}", digest.hash, digest.size_bytes))
                .or_default()
                .clone()
        };
        let outcome = {
            let _one = blob_lock.lock().await;
            self.materialise_locked(cas, digest, dest, executable).await
        };
        // The last user of the blob's lock forgets it.
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = format!("{}-{}", digest.hash, digest.size_bytes);
        if in_flight
            .get(&key)
            .is_some_and(|held| Arc::strong_count(held) <= 2)
        {
            in_flight.remove(&key);
        }
        outcome
    }

    async fn materialise_locked(
        &self,
        cas: &Cas,
        digest: &Digest,
        dest: &Path,
        executable: bool,
    ) -> Result<BlobOrigin, RemoteError> {
        let entry = self.entry_path(digest);
        // A concurrent eviction may remove the entry between the check and the link: then
        // the blob is fetched.
        if self.take_entry(digest, &entry).await? && place(&entry, dest, executable).is_ok() {
            return Ok(BlobOrigin::Cache);
        }
        let _ = std::fs::remove_file(dest);
        let size = u64::try_from(digest.size_bytes).unwrap_or(u64::MAX);
        if size > self.limit {
            cas.read_to_file(digest, dest).await?;
            set_mode(dest, executable)?;
            return Ok(BlobOrigin::Fetched);
        }
        let temporary = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(io_error("cannot create a temporary file in", &self.dir))?;
        // The download is checked against the digest as it arrives; a failure drops (removes)
        // the temporary file.
        cas.read_to_file(digest, temporary.path()).await?;
        std::fs::set_permissions(temporary.path(), std::fs::Permissions::from_mode(0o444))
            .map_err(io_error("cannot set the mode of", temporary.path()))?;
        // Placed before it is an entry, so an eviction cannot take it away first.
        place(temporary.path(), dest, executable)?;
        temporary.persist(&entry).map_err(|error| RemoteError::Io {
            action: "cannot rename a download to",
            path: entry.clone(),
            source: error.error,
        })?;
        if self.total.fetch_add(size, Ordering::Relaxed) + size > self.limit {
            self.evict()?;
        }
        Ok(BlobOrigin::Fetched)
    }

    /// Whether `entry` exists and hashes to `digest`; marks it used. A corrupt entry is
    /// removed (and reported on stderr).
    async fn take_entry(&self, digest: &Digest, entry: &Path) -> Result<bool, RemoteError> {
        if !entry.exists() {
            return Ok(false);
        }
        let checked = entry.to_owned();
        let sound = tokio::task::spawn_blocking(move || file_digest(&checked))
            .await
            .map_err(|error| RemoteError::Protocol(format!("hashing task: {error}")))?
            .map_err(io_error("cannot hash", entry))?;
        if sound.hash != digest.hash || sound.size_bytes != digest.size_bytes {
            eprintln!(
                "kiln remote-worker: corrupt cache entry {} (hashes to {}/{}); fetching it again",
                entry.display(),
                sound.hash,
                sound.size_bytes
            );
            std::fs::remove_file(entry).map_err(io_error("cannot remove", entry))?;
            return Ok(false);
        }
        // The modification time is the entry's last use, for eviction.
        if let Ok(file) = std::fs::File::options().write(true).open(entry) {
            let _ = file.set_modified(SystemTime::now());
        } else {
            // A read-only entry cannot be opened for writing by a non-root worker; relax it
            // for the moment of the touch.
            let _ = std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o644));
            if let Ok(file) = std::fs::File::options().write(true).open(entry) {
                let _ = file.set_modified(SystemTime::now());
            }
            let _ = std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o444));
        }
        Ok(true)
    }

    /// Removes the least recently used entries until the cache holds at most its limit.
    fn evict(&self) -> Result<(), RemoteError> {
        let _one = self
            .eviction
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut entries = Vec::new();
        let mut total: u64 = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io_error("cannot read", &self.dir))? {
            let entry = entry.map_err(io_error("cannot read", &self.dir))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let used = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            total += metadata.len();
            entries.push((used, metadata.len(), entry.path()));
        }
        entries.sort();
        for (_, size, path) in entries {
            if total <= self.limit {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
        self.total.store(total, Ordering::Relaxed);
        Ok(())
    }
}

/// Links (or copies) the cache entry `entry` to `dest`.
fn place(entry: &Path, dest: &Path, executable: bool) -> Result<(), RemoteError> {
    if !executable && std::fs::hard_link(entry, dest).is_ok() {
        return Ok(());
    }
    std::fs::copy(entry, dest).map_err(io_error("cannot copy a cache entry to", dest))?;
    set_mode(dest, executable)
}

fn set_mode(path: &Path, executable: bool) -> Result<(), RemoteError> {
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_error("cannot set the mode of", path))
}

/// The SHA-256 digest of the file at `path`.
pub fn file_digest(path: &Path) -> std::io::Result<Digest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0i64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as i64;
    }
    Ok(Digest {
        hash: data_encoding::HEXLOWER.encode(&hasher.finalize()),
        size_bytes: size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of_text(text: &[u8]) -> Digest {
        crate::cas::digest_of(text)
    }

    fn write_entry(cache: &BlobCache, bytes: &[u8]) -> Digest {
        let digest = digest_of_text(bytes);
        std::fs::write(cache.entry_path(&digest), bytes).unwrap_or_else(|e| panic!("{e}"));
        digest
    }

    #[test]
    fn a_sound_entry_is_taken_and_a_corrupt_one_removed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache =
            BlobCache::open(dir.path().join("cas"), 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let sound = write_entry(&cache, b"sound");
        assert!(runtime
            .block_on(cache.take_entry(&sound, &cache.entry_path(&sound)))
            .unwrap_or_else(|e| panic!("{e}")));
        let corrupt = write_entry(&cache, b"original");
        std::fs::write(cache.entry_path(&corrupt), b"changed!").unwrap_or_else(|e| panic!("{e}"));
        assert!(!runtime
            .block_on(cache.take_entry(&corrupt, &cache.entry_path(&corrupt)))
            .unwrap_or_else(|e| panic!("{e}")));
        assert!(!cache.entry_path(&corrupt).exists());
    }

    #[test]
    fn eviction_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cache = BlobCache::open(dir.path().join("cas"), 10).unwrap_or_else(|e| panic!("{e}"));
        let old = write_entry(&cache, b"aaaaaa");
        let file = std::fs::File::options()
            .write(true)
            .open(cache.entry_path(&old))
            .unwrap_or_else(|e| panic!("{e}"));
        file.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000))
            .unwrap_or_else(|e| panic!("{e}"));
        let new = write_entry(&cache, b"bbbbbb");
        std::fs::write(dir.path().join("cas/.tmp-leftover"), b"x")
            .unwrap_or_else(|e| panic!("{e}"));
        cache.evict().unwrap_or_else(|e| panic!("{e}"));
        assert!(!cache.entry_path(&old).exists());
        assert!(cache.entry_path(&new).exists());
        BlobCache::open(dir.path().join("cas"), 10).unwrap_or_else(|e| panic!("{e}"));
        assert!(!dir.path().join("cas/.tmp-leftover").exists());
    }
}
