//! `kiln remote-run-action MANIFEST`: what an action's `Command` runs on the worker, in the
//! action's input root (see [`crate::action`]).
//!
//! It imports the NARs of the manifest into a store at the client's logical store directory
//! (so paths and hashes are the client's), builds the derivation with kiln's builder — the same
//! sandbox, environment and output checks as a local `realise` — printing the build's log on
//! stdout, and writes each output as a NAR at `out/<output name>.nar`, which the worker
//! uploads. The worker must let kiln's sandbox run: user namespaces (or root).
//!
//! The store is the worker's persistent one when the environment names it
//! (`KILN_REMOTE_STORE=<work_dir>/store`, set by `kiln remote-worker`; one store per logical
//! store directory beneath it, see [`worker_store_root`]), else a fresh one under the input
//! root. A path already valid there is not imported again (its NAR need not even be in the
//! input root: the worker leaves out the NARs of paths it finds valid there). An invalid path
//! is imported holding its output lock (taken in sorted order, like a build's), after deleting
//! whatever invalid leftover a killed import left, checked against the manifest's NAR hash as
//! it is unpacked (a mismatch is deleted and fails the action), and registered before the
//! locks drop, so concurrent actions never unpack one path twice nor see it half-written. Each
//! import and the count of paths found valid are reported on stderr (`kiln remote-run-action:
//! imported …`).
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_builder::build::{build_derivation, BuildSettings};
use kiln_builder::plan::{read_derivation, BuildReason, PlannedBuild};
use kiln_builder::report::BuildEvents;
use kiln_builder::sandbox::ResourceLimits;
use kiln_local_store::{LocalStore, OutputLock, ValidPathInfo};
use kiln_store::hash::{Hash, HashAlgo, Hasher};
use kiln_store::store_path::{StoreDir, StorePath};

use crate::action::{nar_file_name, output_file, Manifest, NARS};
use crate::RemoteError;

/// The store root the runner creates inside the input root when the worker has no store.
const STORE_ROOT: &str = "kiln-root";
/// The environment variable naming the worker's persistent store folder.
pub const WORKER_STORE_VARIABLE: &str = "KILN_REMOTE_STORE";

/// The root of the worker's store for the logical store directory `store_dir` under the
/// worker's store folder `base`: `base/<store_dir with each `%` written `%25` and each `/`
/// written `%2F`>`, so clients with different store directories never share a database.
pub fn worker_store_root(base: &Path, store_dir: &str) -> PathBuf {
    base.join(store_dir.replace('%', "%25").replace('/', "%2F"))
}

/// Prints the build's log lines on stdout.
struct StdoutLog;

impl BuildEvents for StdoutLog {
    fn log_line(&self, _drv: &StorePath, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

fn parse_path(text: &str) -> Result<StorePath, RemoteError> {
    StorePath::from_base_name(text)
        .map_err(|error| RemoteError::Protocol(format!("manifest names `{text}`: {error}")))
}

/// Runs the action described by the manifest at `manifest_path` (in the current directory,
/// the input root). `Err` is a failure to set up or to build; the caller exits non-zero.
pub fn run_action(manifest_path: &Path) -> Result<(), String> {
    let text = std::fs::read(manifest_path)
        .map_err(|error| format!("cannot read {}: {error}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|error| format!("cannot parse {}: {error}", manifest_path.display()))?;
    let top = manifest_path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|error| format!("cannot resolve the input root: {error}"))?;
    let root = match std::env::var_os(WORKER_STORE_VARIABLE).filter(|value| !value.is_empty()) {
        Some(base) => worker_store_root(Path::new(&base), &manifest.store_dir),
        None => top.join(STORE_ROOT),
    };
    let store = LocalStore::open(root, StoreDir::new(&manifest.store_dir))
        .map_err(|error| error.to_string())?;
    import_closure(&store, &manifest, &top.join(NARS)).map_err(|error| error.to_string())?;

    let drv_path = parse_path(&manifest.drv).map_err(|error| error.to_string())?;
    let drv = read_derivation(&store, &drv_path).map_err(|error| error.to_string())?;
    let mut outputs = BTreeMap::new();
    for (name, base) in &manifest.outputs {
        outputs.insert(name.clone(), parse_path(base).map_err(|e| e.to_string())?);
    }
    let mut output_hashes = BTreeMap::new();
    for (name, sri) in &manifest.output_hashes {
        let hash = Hash::parse_sri(sri).map_err(|error| format!("output hash {sri}: {error}"))?;
        output_hashes.insert(name.clone(), hash);
    }
    let inputs = manifest
        .inputs
        .iter()
        .map(|base| parse_path(base))
        .collect::<Result<_, _>>()
        .map_err(|error| error.to_string())?;
    let build = PlannedBuild {
        drv_path,
        drv,
        outputs: outputs.clone(),
        output_hashes,
        resolve: false,
        reason: BuildReason::MissingOutputs(outputs.keys().cloned().collect()),
        inputs,
        depends_on: Vec::new(),
    };
    let settings = BuildSettings {
        limits: ResourceLimits::defaults(),
        ..BuildSettings::default()
    };
    let events: Arc<dyn BuildEvents> = Arc::new(StdoutLog);
    build_derivation(&store, &build, &settings, &events, false)
        .map_err(|error| format!("build of {} failed: {error}", manifest.drv))?;

    let out_dir = top.join(crate::action::OUTPUTS);
    std::fs::create_dir_all(&out_dir)
        .map_err(|error| format!("cannot create {}: {error}", out_dir.display()))?;
    for (name, path) in &outputs {
        let file_path = top.join(output_file(name));
        let file = std::fs::File::create(&file_path)
            .map_err(|error| format!("cannot create {}: {error}", file_path.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        kiln_store::nar::dump_path(&store.physical_path(path), &mut writer)
            .map_err(|error| format!("cannot serialise output {name}: {error}"))?;
        writer
            .flush()
            .map_err(|error| format!("cannot write {}: {error}", file_path.display()))?;
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.write_all(&buffer[..read])?;
        Ok(read)
    }
}

/// Imports every path of the manifest that is not valid in `store`: under the paths' output
/// locks (sorted), leftovers deleted, NARs unpacked, all registered at once.
fn import_closure(store: &LocalStore, manifest: &Manifest, nars: &Path) -> Result<(), RemoteError> {
    let mut wanted = BTreeMap::new();
    let mut already_valid = 0usize;
    for entry in &manifest.paths {
        let path = parse_path(&entry.base_name)?;
        if store.is_valid(&path)? {
            already_valid += 1;
        } else {
            wanted.insert(path, entry);
        }
    }
    // Held until registration; a BTreeMap iterates in sorted order, as every locker locks.
    let mut locks = Vec::new();
    let mut infos = Vec::new();
    for (path, entry) in &wanted {
        let lock = OutputLock::acquire(store, path, |_| {})?;
        // Another action may have imported it while we waited; else an invalid leftover (a
        // worker killed mid-import) is deleted.
        if store.prepare_path_for_write(&lock)? {
            already_valid += 1;
            continue;
        }
        locks.push(lock);
        let hash = Hash::parse_bare(&entry.nar_sha256, HashAlgo::Sha256)
            .or_else(|_| {
                data_encoding::HEXLOWER
                    .decode(entry.nar_sha256.as_bytes())
                    .ok()
                    .and_then(|bytes| Hash::from_digest(HashAlgo::Sha256, &bytes))
                    .ok_or(())
            })
            .map_err(|()| RemoteError::Protocol(format!("bad NAR hash {}", entry.nar_sha256)))?;
        let nar = nars.join(nar_file_name(&entry.base_name));
        let file = std::fs::File::open(&nar).map_err(|source| RemoteError::Io {
            action: "cannot open",
            path: nar.clone(),
            source,
        })?;
        // The NAR is hashed as it is unpacked: what a store holds must be what the client
        // registered, whatever happened to the file since the worker checked it.
        let physical = store.physical_path(path);
        let mut reader = HashingReader {
            inner: std::io::BufReader::new(file),
            hasher: Hasher::new(HashAlgo::Sha256),
        };
        let unpacked = kiln_store::nar::restore(&mut reader, &physical);
        let got = reader.hasher.finish();
        if let Err(error) = unpacked {
            let _ = kiln_local_store::fs_tree::delete_tree(&physical);
            return Err(RemoteError::Io {
                action: "cannot unpack",
                path: nar.clone(),
                source: std::io::Error::other(error.to_string()),
            });
        }
        if got != hash {
            let _ = kiln_local_store::fs_tree::delete_tree(&physical);
            return Err(RemoteError::Protocol(format!(
                "sent {} with NAR hash {}, not {}",
                entry.base_name,
                got.to_hex(),
                entry.nar_sha256
            )));
        }
        eprintln!("kiln remote-run-action: imported {}", entry.base_name);
        let mut info = ValidPathInfo::new(path.clone(), hash, entry.nar_size);
        info.references = entry
            .references
            .iter()
            .map(|base| parse_path(base))
            .collect::<Result<_, _>>()?;
        infos.push(info);
    }
    store.register_valid_paths(&infos)?;
    drop(locks);
    eprintln!(
        "kiln remote-run-action: {} imported, {already_valid} already valid in the store",
        infos.len()
    );
    Ok(())
}
