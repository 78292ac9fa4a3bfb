//! `kiln remote-run-action MANIFEST`: what an action's `Command` runs on the worker, in the
//! action's input root (see [`crate::action`]).
//!
//! It imports every NAR of the manifest into a store of its own under the input root (at the
//! client's logical store directory, so paths and hashes are the client's), builds the
//! derivation with kiln's builder — the same sandbox, environment and output checks as a local
//! `realise` — printing the build's log on stdout, and writes each output as a NAR at
//! `out/<output name>.nar`, which the worker uploads. The worker must let kiln's sandbox run:
//! user namespaces (or root).
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use kiln_builder::build::{build_derivation, BuildSettings};
use kiln_builder::plan::{read_derivation, BuildReason, PlannedBuild};
use kiln_builder::report::BuildEvents;
use kiln_builder::sandbox::ResourceLimits;
use kiln_local_store::{LocalStore, ValidPathInfo};
use kiln_store::hash::{Hash, HashAlgo};
use kiln_store::store_path::{StoreDir, StorePath};

use crate::action::{nar_file_name, output_file, Manifest, NARS};
use crate::RemoteError;

/// The store root the runner creates inside the input root.
const STORE_ROOT: &str = "kiln-root";

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
    let store = LocalStore::open(top.join(STORE_ROOT), StoreDir::new(&manifest.store_dir))
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

/// Unpacks every NAR of the manifest at its store path and registers them all.
fn import_closure(store: &LocalStore, manifest: &Manifest, nars: &Path) -> Result<(), RemoteError> {
    let mut infos = Vec::new();
    for entry in &manifest.paths {
        let path = parse_path(&entry.base_name)?;
        let nar = nars.join(nar_file_name(&entry.base_name));
        let file = std::fs::File::open(&nar).map_err(|source| RemoteError::Io {
            action: "cannot open",
            path: nar.clone(),
            source,
        })?;
        let physical = store.physical_path(&path);
        if !store.is_valid(&path)? {
            let _ = kiln_local_store::fs_tree::delete_tree(&physical);
            kiln_store::nar::restore(std::io::BufReader::new(file), &physical).map_err(
                |error| RemoteError::Io {
                    action: "cannot unpack",
                    path: nar.clone(),
                    source: std::io::Error::other(error.to_string()),
                },
            )?;
        }
        let hash = Hash::parse_bare(&entry.nar_sha256, HashAlgo::Sha256)
            .or_else(|_| {
                data_encoding::HEXLOWER
                    .decode(entry.nar_sha256.as_bytes())
                    .ok()
                    .and_then(|bytes| Hash::from_digest(HashAlgo::Sha256, &bytes))
                    .ok_or(())
            })
            .map_err(|()| RemoteError::Protocol(format!("bad NAR hash {}", entry.nar_sha256)))?;
        let mut info = ValidPathInfo::new(path, hash, entry.nar_size);
        info.references = entry
            .references
            .iter()
            .map(|base| parse_path(base))
            .collect::<Result<_, _>>()?;
        infos.push(info);
    }
    store.register_valid_paths(&infos)?;
    Ok(())
}
