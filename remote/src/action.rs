//! A derivation as a REAPI `Action`, and the manifest the worker reads to rebuild it.
//!
//! The input root is flat and holds no symlinks, so it passes servers that refuse absolute
//! symlinks (BuildGrid's `symlinkAbsolutePathStrategy: DISALLOWED`) whatever the store paths
//! contain:
//!
//! ```text
//! manifest.json            the store directory, the .drv, its outputs and inputs, and every
//!                          path of the input closure and of the .drv's closure with its NAR
//!                          hash, size and references
//! nars/<base name>.nar     each of those paths as a NAR
//! ```
//!
//! A NAR's digest is the path's registered NAR hash (SHA-256) and size: the local database is
//! the cache of every subtree's digest, so nothing is hashed again to build an action, and an
//! unchanged path has the same digest in every action (the server's `FindMissingBlobs` says
//! it is there, and it is never uploaded twice). The `Command` runs `kiln remote-run-action
//! manifest.json`, which imports the NARs its store lacks and builds the derivation in
//! kiln's sandbox exactly as `realise` does here (see [`crate::runner`]); each output comes back
//! as the file `out/<output name>.nar`. The platform says which system the build needs
//! (`kiln-system`) and its `requiredSystemFeatures` (`kiln-features`).
use std::collections::{BTreeMap, BTreeSet};

use bazel_remote_apis::build::bazel::remote::execution::v2::{
    platform, Action, Command, Digest, Directory, DirectoryNode, FileNode, Platform,
};
use kiln_builder::plan::PlannedBuild;
use kiln_local_store::LocalStore;
use kiln_store::hash::HashAlgo;
use kiln_store::store_path::StorePath;
use serde::{Deserialize, Serialize};

use crate::cas::encode_message;
use crate::RemoteError;

/// The manifest's name in the input root.
pub const MANIFEST: &str = "manifest.json";
/// The folder of NARs in the input root.
pub const NARS: &str = "nars";
/// The folder the outputs' NARs are written to.
pub const OUTPUTS: &str = "out";
/// The platform property naming the Nix system a build needs.
pub const SYSTEM_PROPERTY: &str = "kiln-system";
/// The platform property naming one required system feature.
pub const FEATURE_PROPERTY: &str = "kiln-features";

/// What the worker needs to rebuild one derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The logical store directory (`/kiln/store`).
    pub store_dir: String,
    /// The `.drv`'s base name.
    pub drv: String,
    /// Output name → base name of its path.
    pub outputs: BTreeMap<String, String>,
    /// Output name → static output hash (SRI), for the realisations the build records.
    pub output_hashes: BTreeMap<String, String>,
    /// Base names of the paths the build reads directly.
    pub inputs: Vec<String>,
    /// Every path to import (the input closure and the `.drv`), sorted by base name.
    pub paths: Vec<ManifestPath>,
}

/// One store path of the closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPath {
    pub base_name: String,
    /// SHA-256 of the NAR, lower-case hex (also the blob's digest).
    pub nar_sha256: String,
    pub nar_size: u64,
    /// Base names.
    pub references: Vec<String>,
}

/// The NAR file of a path in the input root.
pub fn nar_file_name(base_name: &str) -> String {
    format!("{base_name}.nar")
}

/// The output file of an output in the `Command`.
pub fn output_file(output: &str) -> String {
    format!("{OUTPUTS}/{output}.nar")
}

/// Where a blob of an action comes from when it must be uploaded.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// A message or manifest, held in memory.
    Bytes(Vec<u8>),
    /// A valid store path, serialised as a NAR when uploaded.
    StorePath(StorePath),
}

/// An action ready to look up, upload and execute.
#[derive(Debug, Clone)]
pub struct PreparedAction {
    pub action_digest: Digest,
    /// Every blob the action needs, with where it comes from.
    pub blobs: Vec<(Digest, BlobSource)>,
    /// Output name → the output file the `Command` declares for it.
    pub output_files: BTreeMap<String, String>,
}

/// Builds the action of `build`, whose input closure is `closure` (all valid in `store`).
pub fn prepare(
    store: &LocalStore,
    build: &PlannedBuild,
    closure: &BTreeSet<StorePath>,
    program: &str,
) -> Result<PreparedAction, RemoteError> {
    // The `.drv` is registered on the worker with its references (input `.drv`s and sources),
    // so their closure travels too; `.drv` files are small.
    let mut paths: BTreeSet<StorePath> = closure.clone();
    paths.extend(store.closure(std::slice::from_ref(&build.drv_path))?);
    let mut manifest_paths = Vec::new();
    let mut blobs = Vec::new();
    let mut nar_nodes = Vec::new();
    for path in &paths {
        let info = store.query_path_info(path)?.ok_or_else(|| {
            RemoteError::Protocol(format!("{} is not valid", store.store_dir().print(path)))
        })?;
        if info.nar_hash.algo() != HashAlgo::Sha256 {
            return Err(RemoteError::Protocol(format!(
                "{} has no SHA-256 NAR hash",
                store.store_dir().print(path)
            )));
        }
        let digest = Digest {
            hash: info.nar_hash.to_hex(),
            size_bytes: info.nar_size as i64,
        };
        nar_nodes.push(FileNode {
            name: nar_file_name(path.base_name()),
            digest: Some(digest.clone()),
            is_executable: false,
            node_properties: None,
        });
        blobs.push((digest, BlobSource::StorePath(path.clone())));
        manifest_paths.push(ManifestPath {
            base_name: path.base_name().to_owned(),
            nar_sha256: info.nar_hash.to_hex(),
            nar_size: info.nar_size,
            references: info
                .references
                .iter()
                .map(|reference| reference.base_name().to_owned())
                .collect(),
        });
    }
    let manifest = Manifest {
        store_dir: store.store_dir().as_str().to_owned(),
        drv: build.drv_path.base_name().to_owned(),
        outputs: build
            .outputs
            .iter()
            .map(|(name, path)| (name.clone(), path.base_name().to_owned()))
            .collect(),
        output_hashes: build
            .output_hashes
            .iter()
            .map(|(name, hash)| (name.clone(), hash.to_sri()))
            .collect(),
        inputs: build
            .inputs
            .iter()
            .map(|path| path.base_name().to_owned())
            .collect(),
        paths: manifest_paths,
    };
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|error| RemoteError::Protocol(format!("cannot write the manifest: {error}")))?;
    let manifest_digest = crate::cas::digest_of(&manifest_bytes);
    blobs.push((manifest_digest.clone(), BlobSource::Bytes(manifest_bytes)));

    // Names are sorted, as the API requires (store paths sort by base name already).
    nar_nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let (nars_digest, nars_bytes) = encode_message(&Directory {
        files: nar_nodes,
        ..Directory::default()
    });
    blobs.push((nars_digest.clone(), BlobSource::Bytes(nars_bytes)));
    let (root_digest, root_bytes) = encode_message(&Directory {
        files: vec![FileNode {
            name: MANIFEST.to_owned(),
            digest: Some(manifest_digest),
            is_executable: false,
            node_properties: None,
        }],
        directories: vec![DirectoryNode {
            name: NARS.to_owned(),
            digest: Some(nars_digest),
        }],
        ..Directory::default()
    });
    blobs.push((root_digest.clone(), BlobSource::Bytes(root_bytes)));

    let output_files: BTreeMap<String, String> = build
        .outputs
        .keys()
        .map(|name| (name.clone(), output_file(name)))
        .collect();
    let mut declared: Vec<String> = output_files.values().cloned().collect();
    declared.sort();
    let platform = platform_of(build);
    #[allow(deprecated)]
    let command = Command {
        arguments: vec![
            program.to_owned(),
            "remote-run-action".to_owned(),
            MANIFEST.to_owned(),
        ],
        output_files: declared.clone(),
        output_paths: declared,
        platform: Some(platform.clone()),
        ..Command::default()
    };
    let (command_digest, command_bytes) = encode_message(&command);
    blobs.push((command_digest.clone(), BlobSource::Bytes(command_bytes)));
    let action = Action {
        command_digest: Some(command_digest),
        input_root_digest: Some(root_digest),
        do_not_cache: false,
        platform: Some(platform),
        ..Action::default()
    };
    let (action_digest, action_bytes) = encode_message(&action);
    blobs.push((action_digest.clone(), BlobSource::Bytes(action_bytes)));
    Ok(PreparedAction {
        action_digest,
        blobs,
        output_files,
    })
}

/// The platform properties of a build, sorted by name then value as the API requires.
fn platform_of(build: &PlannedBuild) -> Platform {
    let mut properties = vec![platform::Property {
        name: SYSTEM_PROPERTY.to_owned(),
        value: build.drv.platform.clone(),
    }];
    // Feature names are text; bytes that are not UTF-8 name none, lossy or not.
    let features_text = build
        .drv
        .env_var("requiredSystemFeatures")
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let features: BTreeSet<&str> = features_text.split_whitespace().collect();
    properties.extend(features.into_iter().map(|feature| platform::Property {
        name: FEATURE_PROPERTY.to_owned(),
        value: feature.to_owned(),
    }));
    properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    Platform { properties }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_builder::plan::BuildReason;
    use kiln_local_store::ValidPathInfo;
    use kiln_store::derivation::Derivation;
    use kiln_store::store_path::StoreDir;
    use prost::Message;

    /// A store holding one source file and a `.drv` that reads it, built with `args`.
    fn store_with_build(args: &str) -> (tempfile::TempDir, LocalStore, PlannedBuild, StorePath) {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = StoreDir::new("/kiln/store");
        let store = LocalStore::open(dir.path().join("root"), store_dir.clone()).unwrap();
        let src = store_dir
            .make_text_path("src.txt", b"hello", &BTreeSet::new())
            .unwrap();
        std::fs::create_dir_all(store.physical_store_dir()).unwrap();
        std::fs::write(store.physical_path(&src), "hello").unwrap();
        let (hash, size) = kiln_store::nar::hash_path(&store.physical_path(&src)).unwrap();
        store
            .register_valid_paths(&[ValidPathInfo::new(src.clone(), hash, size)])
            .unwrap();
        let out = store_dir
            .make_text_path("x", args.as_bytes(), &BTreeSet::new())
            .unwrap();
        let (src_text, out_text) = (store_dir.print(&src), store_dir.print(&out));
        let aterm = format!(
            r#"Derive([("out","{out_text}","","")],[],["{src_text}"],"x86_64-linux","/bin/sh",["-c","{args}"],[("out","{out_text}")])"#
        );
        let references = BTreeSet::from([src.clone()]);
        let drv_path = store_dir
            .make_text_path("x.drv", aterm.as_bytes(), &references)
            .unwrap();
        std::fs::write(store.physical_path(&drv_path), &aterm).unwrap();
        let (hash, size) = kiln_store::nar::hash_path(&store.physical_path(&drv_path)).unwrap();
        let mut info = ValidPathInfo::new(drv_path.clone(), hash, size);
        info.references = references;
        store.register_valid_paths(&[info]).unwrap();
        let drv = Derivation::from_drv_file(&store_dir, &drv_path, aterm.as_bytes()).unwrap();
        let build = PlannedBuild {
            drv_path,
            drv,
            outputs: BTreeMap::from([("out".to_owned(), out)]),
            output_hashes: BTreeMap::new(),
            resolve: false,
            reason: BuildReason::MissingOutputs(vec!["out".to_owned()]),
            inputs: BTreeSet::from([src.clone()]),
            depends_on: Vec::new(),
        };
        (dir, store, build, src)
    }

    fn blob<'a>(prepared: &'a PreparedAction, digest: &Digest) -> &'a BlobSource {
        &prepared
            .blobs
            .iter()
            .find(|(candidate, _)| candidate == digest)
            .unwrap()
            .1
    }

    #[test]
    fn an_action_is_deterministic_and_names_each_path_by_its_registered_nar_hash() {
        let (_dir, store, build, src) = store_with_build("echo one");
        let closure = BTreeSet::from([src.clone()]);
        let first = prepare(&store, &build, &closure, "kiln").unwrap();
        let again = prepare(&store, &build, &closure, "kiln").unwrap();
        assert_eq!(first.action_digest, again.action_digest);

        let action_blob = match blob(&first, &first.action_digest) {
            BlobSource::Bytes(bytes) => Action::decode(bytes.as_slice()).unwrap(),
            BlobSource::StorePath(_) => panic!("the action is a message"),
        };
        let root = match blob(&first, action_blob.input_root_digest.as_ref().unwrap()) {
            BlobSource::Bytes(bytes) => Directory::decode(bytes.as_slice()).unwrap(),
            BlobSource::StorePath(_) => panic!("the root is a message"),
        };
        assert!(root.symlinks.is_empty());
        assert_eq!(root.files[0].name, MANIFEST);
        assert_eq!(root.directories[0].name, NARS);
        let nars = match blob(&first, root.directories[0].digest.as_ref().unwrap()) {
            BlobSource::Bytes(bytes) => Directory::decode(bytes.as_slice()).unwrap(),
            BlobSource::StorePath(_) => panic!("the folder is a message"),
        };
        let names: Vec<&str> = nars.files.iter().map(|file| file.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "names are sorted as the API requires");
        let info = store.query_path_info(&src).unwrap().unwrap();
        let src_node = nars
            .files
            .iter()
            .find(|file| file.name == nar_file_name(src.base_name()))
            .unwrap();
        assert_eq!(
            src_node.digest,
            Some(Digest {
                hash: info.nar_hash.to_hex(),
                size_bytes: info.nar_size as i64,
            })
        );
        assert!(matches!(
            blob(&first, src_node.digest.as_ref().unwrap()),
            BlobSource::StorePath(path) if path == &src
        ));
        assert_eq!(first.output_files["out"], "out/out.nar");
    }

    #[test]
    fn a_changed_derivation_changes_the_action_but_not_the_blobs_of_its_inputs() {
        let (_one, store_one, build_one, src) = store_with_build("echo one");
        let (_two, store_two, build_two, _) = store_with_build("echo two");
        let closure = BTreeSet::from([src.clone()]);
        let one = prepare(&store_one, &build_one, &closure, "kiln").unwrap();
        let two = prepare(&store_two, &build_two, &closure, "kiln").unwrap();
        assert_ne!(one.action_digest, two.action_digest);
        let source_digest = |prepared: &PreparedAction| {
            prepared
                .blobs
                .iter()
                .find(|(_, source)| matches!(source, BlobSource::StorePath(path) if path == &src))
                .map(|(digest, _)| digest.clone())
                .unwrap()
        };
        assert_eq!(source_digest(&one), source_digest(&two));
    }

    #[test]
    fn the_platform_carries_the_system_and_each_required_feature_sorted() {
        let (_dir, _store, mut build, _) = store_with_build("echo one");
        build
            .drv
            .set_env_var("requiredSystemFeatures", "kvm big-parallel");
        let properties: Vec<(String, String)> = platform_of(&build)
            .properties
            .into_iter()
            .map(|property| (property.name, property.value))
            .collect();
        assert_eq!(
            properties,
            [
                (FEATURE_PROPERTY, "big-parallel"),
                (FEATURE_PROPERTY, "kvm"),
                (SYSTEM_PROPERTY, "x86_64-linux"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
        );
    }
}
