//! Substitution: fetching store paths from binary caches instead of building them.
//!
//! [`Substituters`] holds the configured caches in `nix-cache-info` priority order (a cache
//! that is unreachable, or serves another store directory, is dropped with a warning). A
//! narinfo query asks the caches in that order, is made in parallel for many paths, and is
//! remembered for the rest of the run; a narinfo counts only if it parses, names the path
//! asked for, and (with `require-sigs`) carries a signature by a trusted key. Fetching a path
//! streams the NAR — download, decompress, hash and unpack in one pass, never the whole NAR in
//! memory — into the path's place in the store under its output lock, checks `NarHash` and
//! `NarSize`, gives the files their canonical modes and times, and registers the path with
//! its references, deriver, content address and signatures. Anything wrong (a broken
//! download, a hash mismatch, a NAR with `..` or unsorted entries) deletes what was written
//! and registers nothing; the caller hears a warning naming the cache and the path. A download
//! that breaks off (the connection failed mid-stream) is started again, [`NAR_ATTEMPTS`]
//! attempts in all; a NAR that arrives whole but wrong is not. Realisations (the paths of
//! content-addressed outputs) are looked up the same way, signed over their fingerprint.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use kiln_local_store::fs_tree::delete_tree;
use kiln_local_store::{LocalStore, OutputClaim, ValidPathInfo};
use kiln_store::hash::{Hash, HashAlgo, Hasher};
use kiln_store::nar;
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{StoreDir, StorePath};

use crate::binary_cache::{check_store_dir, BinaryCache, CacheError};
use crate::narinfo::NarInfo;
use crate::signing::TrustedKeys;

/// How many times a NAR download that breaks off is tried.
pub const NAR_ATTEMPTS: u32 = 3;
/// How often a running download reports its progress at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How many narinfo queries run at once (they are small; downloads are bounded by `jobs`).
pub const QUERY_THREADS: usize = 16;

/// How substitution is configured.
#[derive(Clone, Debug)]
pub struct SubstituterSettings {
    /// Cache URLs, in the configured order.
    pub urls: Vec<String>,
    /// The keys a narinfo's signature is checked against.
    pub trusted_keys: TrustedKeys,
    /// Whether a narinfo without a trusted signature is refused (Nix's `require-sigs`).
    pub require_sigs: bool,
    /// How long to wait for a cache that sends nothing.
    pub stall_timeout: Duration,
    /// How many downloads run at once.
    pub jobs: usize,
}

/// What is heard while substituting.
pub enum SubstituteEvent<'a> {
    /// A cache, a narinfo or a download failed; the path will be built instead.
    Warning(String),
    /// A download started: the path, the cache, and its compressed and NAR sizes.
    Started {
        path: &'a StorePath,
        cache: &'a str,
        download_size: Option<u64>,
        nar_size: u64,
    },
    /// A download goes on: bytes received so far of the compressed size (when known).
    Progress {
        path: &'a StorePath,
        cache: &'a str,
        bytes: u64,
        download_size: Option<u64>,
    },
    /// A path was fetched and registered: bytes downloaded, and how long it took.
    Fetched {
        path: &'a StorePath,
        cache: &'a str,
        bytes: u64,
        elapsed: Duration,
    },
}

/// A narinfo found in a cache (index into the substituters' caches).
#[derive(Clone, Debug)]
pub struct Found {
    pub cache: usize,
    pub info: NarInfo,
}

/// The configured caches and what was learnt from them during this run.
pub struct Substituters {
    caches: Vec<BinaryCache>,
    store_dir: StoreDir,
    trusted_keys: TrustedKeys,
    require_sigs: bool,
    jobs: usize,
    known: Mutex<BTreeMap<StorePath, Option<Found>>>,
}

type Listener<'a> = &'a (dyn Fn(SubstituteEvent<'_>) + Sync);

impl Substituters {
    /// Opens the caches of `settings` for a store of `store_dir`, dropping (with a warning
    /// through `on_event`) those that cannot be used.
    pub fn open(
        settings: &SubstituterSettings,
        store_dir: &StoreDir,
        on_event: Listener<'_>,
    ) -> Substituters {
        let mut usable = Vec::new();
        for url in &settings.urls {
            let opened = BinaryCache::open(url, settings.stall_timeout).and_then(|cache| {
                let info = cache.cache_info()?.ok_or_else(|| CacheError::Cache {
                    cache: cache.url().to_owned(),
                    message: "it has no nix-cache-info".into(),
                })?;
                check_store_dir(cache.url(), &info, store_dir)?;
                Ok((info.priority, cache))
            });
            match opened {
                Ok(cache) => usable.push(cache),
                Err(error) => on_event(SubstituteEvent::Warning(format!(
                    "binary cache unusable, not substituting from it: {error}"
                ))),
            }
        }
        // Stable: equal priorities keep the configured order.
        usable.sort_by_key(|(priority, _)| *priority);
        Substituters {
            caches: usable.into_iter().map(|(_, cache)| cache).collect(),
            store_dir: store_dir.clone(),
            trusted_keys: settings.trusted_keys.clone(),
            require_sigs: settings.require_sigs,
            jobs: settings.jobs.max(1),
            known: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether there is any cache to ask.
    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    /// The URL of cache `index`.
    pub fn cache_url(&self, index: usize) -> &str {
        self.caches.get(index).map_or("", |cache| cache.url())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, BTreeMap<StorePath, Option<Found>>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks the caches about one path (no memo).
    fn ask(&self, path: &StorePath, on_event: Listener<'_>) -> Option<Found> {
        for (index, cache) in self.caches.iter().enumerate() {
            match cache.narinfo(&self.store_dir, path) {
                Ok(None) => {}
                Ok(Some(info)) => {
                    if self.require_sigs && !info.is_trusted(&self.store_dir, &self.trusted_keys) {
                        on_event(SubstituteEvent::Warning(format!(
                            "{}: '{}': the narinfo {}; not using it",
                            cache.url(),
                            self.store_dir.print(path),
                            if info.signatures.is_empty() {
                                "is unsigned"
                            } else {
                                "has no signature by a trusted key"
                            }
                        )));
                        continue;
                    }
                    return Some(Found { cache: index, info });
                }
                Err(error) => on_event(SubstituteEvent::Warning(format!("{error}"))),
            }
        }
        None
    }

    /// The first realisation of `id` found in the caches (in priority order) that (with
    /// `require-sigs`) carries a signature by a trusted key over its fingerprint.
    pub fn realisation(&self, id: &DrvOutput, on_event: Listener<'_>) -> Option<Realisation> {
        for cache in &self.caches {
            match cache.realisation(id) {
                Ok(None) => {}
                Ok(Some(realisation)) => {
                    if self.require_sigs
                        && !self
                            .trusted_keys
                            .any_valid(&realisation.fingerprint(), &realisation.signatures)
                    {
                        on_event(SubstituteEvent::Warning(format!(
                            "{}: realisation '{id}' has no signature by a trusted key; not using it",
                            cache.url()
                        )));
                        continue;
                    }
                    return Some(realisation);
                }
                Err(error) => on_event(SubstituteEvent::Warning(format!("{error}"))),
            }
        }
        None
    }

    /// Looks `paths` up (in parallel, at most [`QUERY_THREADS`] at once; each path once per
    /// run).
    pub fn query(
        &self,
        paths: &BTreeSet<StorePath>,
        on_event: Listener<'_>,
    ) -> BTreeMap<StorePath, Found> {
        let pending: Vec<&StorePath> = {
            let known = self.known();
            paths.iter().filter(|p| !known.contains_key(*p)).collect()
        };
        if !pending.is_empty() && !self.caches.is_empty() {
            let next = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for _ in 0..QUERY_THREADS.min(pending.len()) {
                    scope.spawn(|| loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(path) = pending.get(index) else {
                            break;
                        };
                        let found = self.ask(path, on_event);
                        self.known().insert((*path).clone(), found);
                    });
                }
            });
        }
        let known = self.known();
        paths
            .iter()
            .filter_map(|path| {
                known
                    .get(path)
                    .cloned()
                    .flatten()
                    .map(|found| (path.clone(), found))
            })
            .collect()
    }

    /// What must be fetched to make `paths` valid: the paths and their references, without
    /// what `store` has. `None` if some path of that closure is in no cache.
    pub fn closure_to_fetch(
        &self,
        store: &LocalStore,
        paths: &BTreeSet<StorePath>,
        on_event: Listener<'_>,
    ) -> Result<Option<BTreeMap<StorePath, Found>>, CacheError> {
        let mut result = BTreeMap::new();
        let mut frontier: BTreeSet<StorePath> = BTreeSet::new();
        for path in paths {
            if !store.is_valid(path)? {
                frontier.insert(path.clone());
            }
        }
        while !frontier.is_empty() {
            let found = self.query(&frontier, on_event);
            let mut next = BTreeSet::new();
            for path in &frontier {
                let Some(entry) = found.get(path) else {
                    return Ok(None);
                };
                for reference in &entry.info.references {
                    if !result.contains_key(reference)
                        && !frontier.contains(reference)
                        && !store.is_valid(reference)?
                    {
                        next.insert(reference.clone());
                    }
                }
                result.insert(path.clone(), entry.clone());
            }
            frontier = next;
        }
        Ok(Some(result))
    }

    /// Fetches `paths` (each with its references in the set or valid already), references
    /// first, at most `jobs` downloads at once. Returns the paths that could not be fetched
    /// (each reported by a warning), with those that refer to them.
    pub fn fetch_all(
        &self,
        store: &LocalStore,
        paths: &BTreeMap<StorePath, Found>,
        on_event: Listener<'_>,
    ) -> BTreeSet<StorePath> {
        let mut remaining: BTreeMap<StorePath, Found> = paths.clone();
        let mut failed = BTreeSet::new();
        while !remaining.is_empty() {
            // Paths whose references are all done (or are themselves).
            let ready: Vec<StorePath> = remaining
                .iter()
                .filter(|(path, found)| {
                    found
                        .info
                        .references
                        .iter()
                        .all(|r| r == *path || !remaining.contains_key(r))
                })
                .map(|(path, _)| path.clone())
                .collect();
            if ready.is_empty() {
                // A reference cycle between narinfos: nothing more can be registered.
                for path in remaining.keys() {
                    on_event(SubstituteEvent::Warning(format!(
                        "'{}': its references form a cycle in the cache; not substituting it",
                        self.store_dir.print(path)
                    )));
                }
                failed.extend(remaining.into_keys());
                break;
            }
            let wave: Vec<(StorePath, Found)> = ready
                .iter()
                .filter_map(|path| remaining.remove_entry(path))
                .collect();
            let mut runnable = Vec::new();
            for (path, found) in wave {
                if found.info.references.iter().any(|r| failed.contains(r)) {
                    on_event(SubstituteEvent::Warning(format!(
                        "'{}': a path it refers to could not be fetched; not substituting it",
                        self.store_dir.print(&path)
                    )));
                    failed.insert(path);
                } else {
                    runnable.push((path, found));
                }
            }
            let next = AtomicUsize::new(0);
            let wave_failed = Mutex::new(Vec::new());
            std::thread::scope(|scope| {
                for _ in 0..self.jobs.min(runnable.len()) {
                    scope.spawn(|| loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some((path, found)) = runnable.get(index) else {
                            break;
                        };
                        if let Err(error) = self.fetch(store, found, on_event) {
                            on_event(SubstituteEvent::Warning(format!(
                                "cannot substitute: {error}; it will be built"
                            )));
                            wave_failed
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(path.clone());
                        }
                    });
                }
            });
            failed.extend(wave_failed.into_inner().unwrap_or_else(|p| p.into_inner()));
        }
        failed
    }

    /// Fetches one path into `store` (see the module doc). Nothing is registered unless the
    /// NAR is complete and its hash and size are the narinfo's.
    pub fn fetch(
        &self,
        store: &LocalStore,
        found: &Found,
        on_event: Listener<'_>,
    ) -> Result<(), CacheError> {
        let cache = &self.caches[found.cache];
        let info = &found.info;
        let locks = match store.claim_outputs(std::slice::from_ref(&info.path), |_| {})? {
            OutputClaim::AllValid => return Ok(()),
            OutputClaim::Locked(locks) => locks,
        };
        let started = Instant::now();
        on_event(SubstituteEvent::Started {
            path: &info.path,
            cache: cache.url(),
            download_size: info.file_size,
            nar_size: info.nar_size,
        });
        let destination = store.physical_path(&info.path);
        let mut attempt = 1;
        let downloaded = loop {
            let outcome = self.download(cache, info, &destination, on_event);
            if outcome.is_err() {
                if let Err(removal) = delete_tree(&destination) {
                    on_event(SubstituteEvent::Warning(format!(
                        "cannot remove the partial '{}': {removal}",
                        destination.display()
                    )));
                }
            }
            match outcome {
                Ok(bytes) => break bytes,
                Err(failed) if failed.broke_off && attempt < NAR_ATTEMPTS => {
                    on_event(SubstituteEvent::Warning(format!(
                        "{}; trying again (attempt {} of {NAR_ATTEMPTS})",
                        failed.error,
                        attempt + 1
                    )));
                    attempt += 1;
                }
                Err(failed) => return Err(failed.error),
            }
        };
        let mut registered = ValidPathInfo::new(info.path.clone(), info.nar_hash, info.nar_size);
        registered.references = info.references.clone();
        registered.deriver = info.deriver.clone();
        registered.ca = info.ca.clone();
        registered.signatures = info.signatures.clone();
        if let Err(error) = store.register_valid_paths(&[registered]) {
            let _ = delete_tree(&destination);
            return Err(error.into());
        }
        drop(locks);
        on_event(SubstituteEvent::Fetched {
            path: &info.path,
            cache: cache.url(),
            bytes: downloaded,
            elapsed: started.elapsed(),
        });
        Ok(())
    }

    /// One attempt at downloading and unpacking the NAR of `info` to `destination`: the bytes
    /// downloaded, or why not (a partial tree may be left for the caller to remove).
    fn download(
        &self,
        cache: &BinaryCache,
        info: &NarInfo,
        destination: &Path,
        on_event: Listener<'_>,
    ) -> Result<u64, FailedDownload> {
        let path_error = |message: String| CacheError::Path {
            cache: cache.url().to_owned(),
            path: self.store_dir.print(&info.path),
            message,
        };
        let whole = |error: CacheError| FailedDownload {
            error,
            broke_off: false,
        };
        let body = cache
            .transport()
            .get(&info.url)
            .map_err(|e| whole(e.into()))?;
        let body = body.ok_or_else(|| {
            whole(path_error(format!(
                "the NAR '{}' is missing from the cache",
                info.url
            )))
        })?;
        let downloaded = AtomicU64::new(0);
        let broke_off = AtomicBool::new(false);
        let report = |bytes: u64| {
            on_event(SubstituteEvent::Progress {
                path: &info.path,
                cache: cache.url(),
                bytes,
                download_size: info.file_size,
            })
        };
        let counted = CountingReader {
            inner: body,
            count: 0,
            total: &downloaded,
            broke_off: &broke_off,
            last_report: Instant::now(),
            report: &report,
        };
        // Decompression runs on its own thread, ahead of hashing and unpacking by at most
        // PIPELINE_CHUNKS chunks: both cores work and memory stays bounded.
        let (sender, receiver) = mpsc::sync_channel::<io::Result<Vec<u8>>>(PIPELINE_CHUNKS);
        let compression = info.compression;
        let unpacked = std::thread::scope(|scope| {
            scope.spawn(move || decompress_into(compression, counted, &sender));
            let mut hashing = HashingReader {
                inner: ChannelReader {
                    receiver,
                    chunk: Vec::new(),
                    position: 0,
                },
                hasher: Hasher::new(HashAlgo::Sha256),
                size: 0,
                limit: info.nar_size,
            };
            // `hashing` (and the receiver) is dropped when this returns, which stops the
            // decompressing thread if it is still sending.
            nar::restore(&mut hashing, destination)
                .map_err(|e| path_error(format!("invalid NAR: {e}")))
                .and_then(|()| {
                    // Whatever follows the archive still counts towards its hash and size.
                    io::copy(&mut hashing, &mut io::sink())
                        .map(drop)
                        .map_err(|e| path_error(format!("invalid NAR: {e}")))
                })
                .and_then(|()| {
                    let (hash, size) = (hashing.hasher.finish(), hashing.size);
                    check_nar(info, &hash, size).map_err(path_error)
                })
        })
        .and_then(|()| {
            canonicalise(destination)
                .map_err(|e| path_error(format!("cannot set the modes of the unpacked files: {e}")))
        });
        match unpacked {
            Ok(()) => Ok(downloaded.load(Ordering::SeqCst)),
            Err(error) => Err(FailedDownload {
                error,
                broke_off: broke_off.load(Ordering::SeqCst),
            }),
        }
    }
}

/// Why one download attempt failed, and whether the connection broke off (worth another try).
struct FailedDownload {
    error: CacheError,
    broke_off: bool,
}

/// Checks the NAR's hash and size against the narinfo's.
fn check_nar(info: &NarInfo, hash: &Hash, size: u64) -> Result<(), String> {
    if size != info.nar_size {
        return Err(format!(
            "the NAR has {size} bytes, the narinfo says {}",
            info.nar_size
        ));
    }
    if hash != &info.nar_hash {
        return Err(format!(
            "hash mismatch: the NAR's hash is {}, the narinfo says {}",
            hash.to_sri(),
            info.nar_hash.to_sri()
        ));
    }
    Ok(())
}

/// How many decompressed chunks may wait for the unpacking thread.
const PIPELINE_CHUNKS: usize = 4;
/// The size of one decompressed chunk.
const CHUNK_SIZE: usize = 1 << 20;

/// Decompresses `input` and sends it on in chunks; an error is sent as the last message.
fn decompress_into<R: Read + Send>(
    compression: crate::compression::Compression,
    input: R,
    sender: &mpsc::SyncSender<io::Result<Vec<u8>>>,
) {
    let mut decoded = match compression.decoder(input) {
        Ok(decoded) => decoded,
        Err(error) => {
            let _ = sender.send(Err(error));
            return;
        }
    };
    loop {
        let mut chunk = vec![0u8; CHUNK_SIZE];
        let mut filled = 0;
        while filled < chunk.len() {
            match decoded.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let _ = sender.send(Err(error));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        chunk.truncate(filled);
        // A closed channel means the unpacking side gave up: stop.
        if sender.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Reads the chunks another thread sends.
struct ChannelReader {
    receiver: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    position: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.chunk.len() {
            match self.receiver.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.position = 0;
                }
                Ok(Err(error)) => return Err(error),
                // The sender finished: the end of the stream.
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let count = buf.len().min(self.chunk.len() - self.position);
        buf[..count].copy_from_slice(&self.chunk[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}

/// Counts the bytes read, reports them now and then, and notes a read that failed.
struct CountingReader<'a, R> {
    inner: R,
    count: u64,
    total: &'a AtomicU64,
    broke_off: &'a AtomicBool,
    last_report: Instant,
    report: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = match self.inner.read(buf) {
            Ok(read) => read,
            Err(error) => {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.broke_off.store(true, Ordering::SeqCst);
                }
                return Err(error);
            }
        };
        self.count += read as u64;
        self.total.store(self.count, Ordering::SeqCst);
        if read == 0 || self.last_report.elapsed() >= PROGRESS_INTERVAL {
            self.last_report = Instant::now();
            (self.report)(self.count);
        }
        Ok(read)
    }
}

/// Hashes what is read and refuses to read past `limit` bytes.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
    limit: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.size += read as u64;
        if self.size > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the NAR is longer than the narinfo's {} bytes", self.limit),
            ));
        }
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// Modes 0444/0555 and modification time 1 s, as every store object has; directories last.
fn canonicalise(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::symlink_metadata(path)?;
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        return Ok(());
    }
    if file_type.is_dir() {
        for entry in fs::read_dir(path)? {
            canonicalise(&entry?.path())?;
        }
    }
    let executable = file_type.is_dir() || metadata.permissions().mode() & 0o100 != 0;
    let one_second = std::time::UNIX_EPOCH + Duration::from_secs(1);
    let times = fs::FileTimes::new()
        .set_accessed(one_second)
        .set_modified(one_second);
    fs::File::open(path)?.set_times(times)?;
    fs::set_permissions(
        path,
        fs::Permissions::from_mode(if executable { 0o555 } else { 0o444 }),
    )
}
