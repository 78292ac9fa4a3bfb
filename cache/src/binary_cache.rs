//! One binary cache: its transport, its `nix-cache-info`, narinfo look-ups, and pushing local
//! store paths to it (`copy --to`): each path's NAR is dumped, hashed, compressed and hashed
//! again in one streaming pass into a staging file, then stored as `nar/<FileHash>.nar<ext>`,
//! and its `.narinfo` written after it (with the path's own signatures and those of the given
//! secret keys), references before referrers. The cache is asked about the whole closure at
//! once and the missing paths are uploaded in parallel, `jobs` at a time, a path as soon as
//! the paths it refers to are in the cache. The realisations naming pushed paths follow, as
//! `realisations/<drv hash>!<output>.doi` documents (signed with the same keys), as Nix writes
//! them, and are read back by [`BinaryCache::realisation`].
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufWriter, Write};
use std::time::Duration;

use kiln_local_store::LocalStore;
use kiln_store::hash::{HashAlgo, HashEncoding};
use kiln_store::nar::{self, HashingSink};
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{StoreDir, StorePath};

use crate::cache_info::CacheInfo;
use crate::compression::Compression;
use crate::narinfo::NarInfo;
use crate::signing::SecretKey;
use crate::transport::{Transport, TransportError};

/// Why a cache operation failed; messages name the cache and the path.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{cache}: {message}")]
    Cache { cache: String, message: String },
    #[error("{cache}: '{path}': {message}")]
    Path {
        cache: String,
        path: String,
        message: String,
    },
    #[error("the local store: {0}")]
    Store(#[from] kiln_local_store::LocalStoreError),
}

/// How many narinfo queries run at once while pushing.
const QUERY_THREADS: usize = 16;

/// The file name of a path's narinfo: `<hash part>.narinfo`.
pub fn narinfo_file(path: &StorePath) -> String {
    format!("{}.narinfo", path.hash_part())
}

/// Where a cache keeps the realisation `id`: `realisations/<hash>!<output>.doi`, as Nix.
pub fn realisation_file(id: &DrvOutput) -> String {
    format!("realisations/{id}.doi")
}

/// A binary cache reached through its URL.
#[derive(Debug)]
pub struct BinaryCache {
    transport: Transport,
}

/// What pushing one path did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The cache had the path already.
    Present,
    /// The path was uploaded: NAR size and compressed file size.
    Uploaded { nar_size: u64, file_size: u64 },
}

impl BinaryCache {
    /// The cache at `url` (`file:///DIR`, `http(s)://…`).
    pub fn open(url: &str, stall_timeout: Duration) -> Result<BinaryCache, CacheError> {
        Ok(BinaryCache {
            transport: Transport::from_url(url, stall_timeout)?,
        })
    }

    /// The cache's URL.
    pub fn url(&self) -> &str {
        self.transport.url()
    }

    /// The transport, for reading the cache's files.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    fn cache_error(&self, message: impl std::fmt::Display) -> CacheError {
        CacheError::Cache {
            cache: self.url().to_owned(),
            message: message.to_string(),
        }
    }

    fn path_error(
        &self,
        store_dir: &StoreDir,
        path: &StorePath,
        message: impl std::fmt::Display,
    ) -> CacheError {
        CacheError::Path {
            cache: self.url().to_owned(),
            path: store_dir.print(path),
            message: message.to_string(),
        }
    }

    /// The cache's `nix-cache-info`, `None` if it has none.
    pub fn cache_info(&self) -> Result<Option<CacheInfo>, CacheError> {
        let Some(bytes) = self.transport.get_small("nix-cache-info")? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        CacheInfo::parse(&text)
            .map(Some)
            .map_err(|e| self.cache_error(format!("invalid nix-cache-info: {e}")))
    }

    /// Checks that the cache serves `store_dir`, writing a `nix-cache-info` if it has none.
    pub fn prepare_for_upload(&self, store_dir: &StoreDir) -> Result<(), CacheError> {
        match self.cache_info()? {
            Some(info) => check_store_dir(self.url(), &info, store_dir),
            None => {
                let info = CacheInfo::new(store_dir.as_str());
                self.transport.put_bytes(
                    "nix-cache-info",
                    info.to_text().as_bytes(),
                    "text/x-nix-cache-info",
                )?;
                Ok(())
            }
        }
    }

    /// The realisation `id`, `None` if the cache has none.
    pub fn realisation(&self, id: &DrvOutput) -> Result<Option<Realisation>, CacheError> {
        let Some(bytes) = self.transport.get_small(&realisation_file(id))? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let realisation = Realisation::from_json(&text)
            .map_err(|e| self.cache_error(format!("invalid realisation {id}: {e}")))?;
        if &realisation.id != id {
            return Err(self.cache_error(format!(
                "the file of realisation {id} describes {}",
                realisation.id
            )));
        }
        Ok(Some(realisation))
    }

    /// Uploads `realisation` (replacing the cache's copy), signed with `keys`.
    pub fn push_realisation(
        &self,
        realisation: &Realisation,
        keys: &[SecretKey],
    ) -> Result<(), CacheError> {
        let mut signed = realisation.clone();
        let fingerprint = signed.fingerprint();
        for key in keys {
            signed.signatures.insert(key.sign(&fingerprint));
        }
        self.transport.put_bytes(
            &realisation_file(&signed.id),
            signed.to_json().to_string().as_bytes(),
            "application/json",
        )?;
        Ok(())
    }

    /// The narinfo of `path`, `None` if the cache does not have the path.
    pub fn narinfo(
        &self,
        store_dir: &StoreDir,
        path: &StorePath,
    ) -> Result<Option<NarInfo>, CacheError> {
        let Some(bytes) = self.transport.get_small(&narinfo_file(path))? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| self.path_error(store_dir, path, "the narinfo is not UTF-8"))?;
        let info = NarInfo::parse(text, store_dir)
            .map_err(|e| self.path_error(store_dir, path, format!("invalid narinfo: {e}")))?;
        if &info.path != path {
            return Err(self.path_error(
                store_dir,
                path,
                format!(
                    "the narinfo describes another path, '{}'",
                    store_dir.print(&info.path)
                ),
            ));
        }
        Ok(Some(info))
    }

    /// Whether the cache has a narinfo for `path`.
    pub fn has(&self, path: &StorePath) -> Result<bool, CacheError> {
        Ok(self.transport.exists(&narinfo_file(path))?)
    }

    /// Pushes the closure of `paths` from `store`, references first, skipping what the cache
    /// has, at most `jobs` uploads at once. `on_path` hears about each path of the closure.
    pub fn push_closure(
        &self,
        store: &LocalStore,
        paths: &[StorePath],
        compression: Compression,
        keys: &[SecretKey],
        jobs: usize,
        on_path: &(dyn Fn(&StorePath, &Pushed) + Sync),
    ) -> Result<(), CacheError> {
        use rayon::prelude::*;
        self.prepare_for_upload(store.store_dir())?;
        let closure = store.closure(paths)?;
        let order = references_first(store, &closure)?;
        let workers = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build()
            .map_err(|e| self.cache_error(format!("cannot start the upload threads: {e}")))?;
        // Which paths the cache has, asked for all at once (the answers are small).
        let queries = rayon::ThreadPoolBuilder::new()
            .num_threads(QUERY_THREADS)
            .build()
            .map_err(|e| self.cache_error(format!("cannot start the query threads: {e}")))?;
        let present: Vec<bool> = queries.install(|| {
            order
                .par_iter()
                .map(|path| self.has(path))
                .collect::<Result<_, _>>()
        })?;
        // Each missing path with the missing paths it refers to.
        let mut waiting: BTreeMap<StorePath, BTreeSet<StorePath>> = BTreeMap::new();
        let missing: BTreeSet<&StorePath> = order
            .iter()
            .zip(&present)
            .filter(|(_, present)| !**present)
            .map(|(path, _)| path)
            .collect();
        for (path, present) in order.iter().zip(&present) {
            if *present {
                on_path(path, &Pushed::Present);
                continue;
            }
            let references = store
                .references(path)?
                .into_iter()
                .filter(|r| r != path && missing.contains(r))
                .collect();
            waiting.insert(path.clone(), references);
        }
        while !waiting.is_empty() {
            let ready: Vec<StorePath> = waiting
                .iter()
                .filter(|(_, references)| references.iter().all(|r| !waiting.contains_key(r)))
                .map(|(path, _)| path.clone())
                .collect();
            if ready.is_empty() {
                return Err(self.cache_error("the paths to push refer to each other in a cycle"));
            }
            for path in &ready {
                waiting.remove(path);
            }
            // The cores are shared between the uploads running at once (each compressor with
            // its own threads would multiply the threads, and xz's memory, by the uploads).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = (cores / jobs.max(1).min(ready.len())).max(1) as u32;
            workers.install(|| {
                ready.par_iter().try_for_each(|path| {
                    let pushed = self.push(store, path, compression, keys, threads)?;
                    on_path(path, &pushed);
                    Ok::<(), CacheError>(())
                })
            })?;
        }
        // The realisations naming the paths, so that content-addressed outputs are found by
        // their derivations (early cutoff across machines).
        for path in &order {
            for realisation in store.realisations_of_path(path)? {
                self.push_realisation(&realisation, keys)?;
            }
        }
        Ok(())
    }

    /// Uploads one valid path (its references must be in the cache already), compressing on
    /// `threads` threads.
    pub fn push(
        &self,
        store: &LocalStore,
        path: &StorePath,
        compression: Compression,
        keys: &[SecretKey],
        threads: u32,
    ) -> Result<Pushed, CacheError> {
        let store_dir = store.store_dir();
        let local = store.query_path_info(path)?.ok_or_else(|| {
            self.path_error(store_dir, path, "the path is not valid in the local store")
        })?;
        let staging_dir = self.transport.staging_dir("nar/x")?;
        let staging = match &staging_dir {
            Some(dir) => tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir),
            None => tempfile::NamedTempFile::new(),
        }
        .map_err(|e| {
            self.path_error(
                store_dir,
                path,
                format!("cannot create a staging file: {e}"),
            )
        })?;
        let (nar_hash, nar_size, file_hash, file_size) = {
            let file = staging
                .as_file()
                .try_clone()
                .map_err(|e| self.path_error(store_dir, path, e))?;
            let file_sink = Tee {
                first: HashingSink::new(HashAlgo::Sha256),
                second: BufWriter::with_capacity(1 << 20, file),
            };
            let encoder = compression
                .encoder(file_sink, threads)
                .map_err(|e| self.path_error(store_dir, path, e))?;
            let mut nar_sink = Tee {
                first: HashingSink::new(HashAlgo::Sha256),
                second: encoder,
            };
            nar::dump_path(&store.physical_path(path), &mut nar_sink)
                .map_err(|e| self.path_error(store_dir, path, e))?;
            let (nar_hash, nar_size) = nar_sink.first.finish();
            let mut file_sink = nar_sink
                .second
                .finish()
                .map_err(|e| self.path_error(store_dir, path, e))?;
            file_sink
                .second
                .flush()
                .map_err(|e| self.path_error(store_dir, path, e))?;
            let (file_hash, file_size) = file_sink.first.finish();
            (nar_hash, nar_size, file_hash, file_size)
        };
        if nar_hash != local.nar_hash || nar_size != local.nar_size {
            return Err(self.path_error(
                store_dir,
                path,
                format!(
                    "the path was modified: its NAR hash is {} but the store recorded {} (run `kiln verify --check-contents`)",
                    nar_hash.to_sri(),
                    local.nar_hash.to_sri()
                ),
            ));
        }
        let url = format!(
            "nar/{}.nar{}",
            file_hash.encode(HashEncoding::Nixbase32, false),
            compression.extension()
        );
        if !self.transport.exists(&url)? {
            let staged = staging.into_temp_path();
            crate::transport::set_readable(&staged)
                .map_err(|e| self.path_error(store_dir, path, e))?;
            self.transport
                .put_file(&url, &staged, "application/x-nix-nar")?;
        }
        let mut info = NarInfo {
            path: path.clone(),
            url,
            compression,
            file_hash: Some(file_hash),
            file_size: Some(file_size),
            nar_hash,
            nar_size,
            references: local.references.clone(),
            deriver: local.deriver.clone(),
            signatures: local.signatures.clone(),
            ca: local.ca.clone(),
        };
        for key in keys {
            info.sign(store_dir, key);
        }
        self.transport.put_bytes(
            &narinfo_file(path),
            info.to_text(store_dir).as_bytes(),
            "text/x-nix-narinfo",
        )?;
        Ok(Pushed::Uploaded {
            nar_size,
            file_size,
        })
    }
}

/// Refuses a cache whose store directory is not `store_dir`, naming both.
pub fn check_store_dir(
    url: &str,
    info: &CacheInfo,
    store_dir: &StoreDir,
) -> Result<(), CacheError> {
    if info.store_dir.trim_end_matches('/') != store_dir.as_str() {
        return Err(CacheError::Cache {
            cache: url.to_owned(),
            message: format!(
                "the cache holds paths of the store directory '{}', not of the local store directory '{}'",
                info.store_dir,
                store_dir.as_str()
            ),
        });
    }
    Ok(())
}

/// `closure` ordered so that every path comes after the paths it refers to.
fn references_first(
    store: &LocalStore,
    closure: &BTreeSet<StorePath>,
) -> Result<Vec<StorePath>, CacheError> {
    let mut order = Vec::with_capacity(closure.len());
    let mut done = BTreeSet::new();
    // Depth-first, post-order, without recursion: (path, references pushed yet).
    for root in closure {
        let mut stack = vec![(root.clone(), false)];
        while let Some((path, expanded)) = stack.pop() {
            if done.contains(&path) {
                continue;
            }
            if expanded {
                done.insert(path.clone());
                order.push(path);
                continue;
            }
            stack.push((path.clone(), true));
            for reference in store.references(&path)? {
                if reference != path && !done.contains(&reference) {
                    stack.push((reference, false));
                }
            }
        }
    }
    Ok(order)
}

/// Writes everything to two writers.
struct Tee<A: Write, B: Write> {
    first: A,
    second: B,
}

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.second.write_all(buf)?;
        self.first.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.first.flush()?;
        self.second.flush()
    }
}
