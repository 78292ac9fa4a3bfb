//! Paths of sources and texts checked against Nix 2.8 (`builtins.path`, `builtins.toFile` with
//! `NIX_STORE_DIR=/nix/store`) for a tree made here; the writing store must agree with the
//! computing one and leave valid, registered copies.
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::rc::Rc;
use std::sync::Arc;

use kiln_eval::store_access::{
    ComputingStore, EntryKind, EvalStore, FilterAborted, IngestionMethod,
};
use kiln_eval::{with_eval_stack, EvalOptions, Evaluator};
use kiln_local_store::LocalStore;
use kiln_store::hash::Hash;

use super::*;

/// The same tree as the store crate's NAR golden test.
fn make_tree(root: &Path) {
    fs::create_dir(root).unwrap();
    fs::write(root.join("hello.txt"), "hello\n").unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    fs::write(root.join("sub/B"), "").unwrap();
    fs::write(root.join("sub/a"), vec![7u8; 100_000]).unwrap();
    fs::create_dir(root.join("sub/empty")).unwrap();
    symlink("../hello.txt", root.join("sub/link")).unwrap();
}

const TREE: &str = "/nix/store/4zki4lhm030dqclcha05y8qjagn71csf-tree";
const FILE_FLAT: &str = "/nix/store/4c6wsvi6cnq8h7ibg70pv68bi43y92xs-f";
const FILE_RECURSIVE: &str = "/nix/store/664yy119pds2n905bls61j77r67z57cw-f";
const FILTERED_NO_SUB: &str = "/nix/store/25j26mgbi28w0q2ql1ij44w9la2q4q99-filtered";
const FILTERED_REGULAR_ONLY: &str = "/nix/store/8lsqyidqzmv7w4msqcnnn8rapi1256gm-tree";

/// No references.
static NO_REFERENCES: BTreeSet<StorePath> = BTreeSet::new();

fn text<'a>(name: &'a str, contents: &'a [u8]) -> StoreText<'a> {
    StoreText {
        name,
        contents,
        references: &NO_REFERENCES,
    }
}

fn to_add<'a>(
    name: &'a str,
    source: &'a Path,
    method: IngestionMethod,
    expected_sha256: Option<[u8; 32]>,
) -> PathToAdd<'a> {
    PathToAdd {
        name,
        source,
        method,
        expected_sha256,
    }
}

fn check_store(store: &dyn EvalStore, temp: &Path) {
    let printed = |path: Result<StorePath, AddPathError>| store.store_dir().print(&path.unwrap());
    let tree = temp.join("tree");
    let file = temp.join("f");
    let recursive = IngestionMethod::Recursive;
    assert_eq!(
        printed(store.add_path(to_add("tree", &tree, recursive, None), None)),
        TREE
    );
    assert_eq!(
        printed(store.add_path(to_add("f", &file, IngestionMethod::Flat, None), None)),
        FILE_FLAT
    );
    assert_eq!(
        printed(store.add_path(to_add("f", &file, recursive, None), None)),
        FILE_RECURSIVE
    );
    let mut no_sub = |path: &Path, _: EntryKind| Ok(!path.ends_with("sub"));
    assert_eq!(
        printed(store.add_path(
            to_add("filtered", &tree, recursive, None),
            Some(&mut no_sub)
        )),
        FILTERED_NO_SUB
    );
    let mut regular_only =
        |_: &Path, kind: EntryKind| Ok(kind != EntryKind::Symlink && kind != EntryKind::Directory);
    assert_eq!(
        printed(store.add_path(
            to_add("tree", &tree, recursive, None),
            Some(&mut regular_only)
        )),
        FILTERED_REGULAR_ONLY
    );
    let mut stop = |_: &Path, _: EntryKind| Err(FilterAborted);
    assert!(matches!(
        store.add_path(to_add("tree", &tree, recursive, None), Some(&mut stop)),
        Err(AddPathError::FilterAborted)
    ));
    // The flat hash of `f` as expected hash, then a hash that does not match.
    let flat_hash = Hash::sha256(b"hello");
    let mut digest = [0u8; 32];
    digest.copy_from_slice(flat_hash.as_bytes());
    assert_eq!(
        printed(store.add_path(
            to_add("f", &file, IngestionMethod::Flat, Some(digest)),
            None
        )),
        FILE_FLAT
    );
    assert!(store
        .add_path(
            to_add("f", &file, IngestionMethod::Flat, Some([1u8; 32])),
            None
        )
        .is_err());
    // builtins.toFile "foo" "hello"
    assert_eq!(
        store
            .store_dir()
            .print(&store.add_text(text("foo", b"hello")).unwrap()),
        "/nix/store/310sbjjj0kkf5zpszk81r054z76hsrww-foo"
    );
    assert!(store.add_text(text("a b", b"x")).is_err());
}

fn setup() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    make_tree(&temp.path().join("tree"));
    fs::write(temp.path().join("f"), "hello").unwrap();
    temp
}

#[test]
fn computing_store_matches_nix() {
    let temp = setup();
    let store = ComputingStore::new(StoreDir::new("/nix/store"));
    assert_eq!(store.store_dir().as_str(), "/nix/store");
    check_store(&store, temp.path());
}

#[test]
fn local_store_matches_nix_and_writes() {
    let temp = setup();
    let local =
        Arc::new(LocalStore::open(temp.path().join("root"), StoreDir::new("/nix/store")).unwrap());
    let store = LocalEvalStore::new(local.clone());
    check_store(&store, temp.path());
    store.flush().unwrap();
    for written in [
        TREE,
        FILE_FLAT,
        FILE_RECURSIVE,
        FILTERED_NO_SUB,
        FILTERED_REGULAR_ONLY,
    ] {
        let path = local.store_dir().parse(written).unwrap();
        assert!(local.is_valid(&path).unwrap(), "{written}");
        assert!(local.physical_path(&path).exists(), "{written}");
    }
    let tree = local.store_dir().parse(TREE).unwrap();
    let copied = local.physical_path(&tree);
    assert_eq!(
        fs::read_link(copied.join("sub/link")).unwrap(),
        Path::new("../hello.txt")
    );
    assert_eq!(
        kiln_store::nar::hash_path(&copied).unwrap(),
        kiln_store::nar::hash_path(&temp.path().join("tree")).unwrap()
    );
}

#[test]
fn local_store_records_derivation_outputs() {
    let temp = setup();
    let local =
        Arc::new(LocalStore::open(temp.path().join("root"), StoreDir::new("/nix/store")).unwrap());
    let store = LocalEvalStore::new(local.clone());
    let out = "/nix/store/mi5jw73wj50rdlzdiy7176r98bb4745m-base".to_owned();
    let outputs = std::collections::BTreeMap::from([(
        "out".to_owned(),
        local.store_dir().parse(&out).unwrap(),
    )]);
    let drv = store
        .add_derivation(text("base.drv", b"Derive([])"), &outputs)
        .unwrap();
    assert!(
        !local.is_valid(&drv).unwrap(),
        "texts are registered in batches"
    );
    store.flush().unwrap();
    assert!(local.is_valid(&drv).unwrap());
    let recorded = local.derivation_outputs(&drv).unwrap();
    assert_eq!(
        recorded.get("out").map(|p| local.store_dir().print(p)),
        Some(out)
    );
}

#[test]
fn local_store_reads_store_paths_physically() {
    let temp = setup();
    let local =
        Arc::new(LocalStore::open(temp.path().join("root"), StoreDir::new("/kiln/store")).unwrap());
    let store = LocalEvalStore::new(local.clone());
    let written = store.add_text(text("f", b"hello")).unwrap();
    store.flush().unwrap();
    let written = local.store_dir().print(&written);
    let copied = store
        .add_path(
            to_add("f", Path::new(&written), IngestionMethod::Flat, None),
            None,
        )
        .unwrap();
    let direct = ComputingStore::new(StoreDir::new("/kiln/store"))
        .add_path(
            to_add("f", &temp.path().join("f"), IngestionMethod::Flat, None),
            None,
        )
        .unwrap();
    assert_eq!(copied, direct);
}

#[test]
fn inputs_from_earlier_evaluations_are_read_from_the_store() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().to_owned();
    let open = |root: &Path| {
        let local = LocalStore::open(root, StoreDir::new("/nix/store")).unwrap();
        Rc::new(LocalEvalStore::new(Arc::new(local)))
    };
    let first_root = root.clone();
    let base_drv = with_eval_stack(move || {
        let base = r#"derivation { name = "base"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ (builtins.toFile "a" "b") ]; }"#;
        let first = open(&first_root);
        let ev = Evaluator::new(EvalOptions::new(first.clone()));
        let value = ev
            .eval_string(&format!("({base}).drvPath"), Path::new("/"))
            .unwrap();
        let base_drv = String::from_utf8(ev.to_json(&value).unwrap()).unwrap();
        first.flush().unwrap();
        base_drv
    });
    // A fresh evaluator (which knows nothing of the first one's derivations) refers
    // to the .drv only through its path and context.
    let result = with_eval_stack(move || {
        let ev = Evaluator::new(EvalOptions::new(open(&root)));
        let source = format!(
            r#"let drv = builtins.appendContext {base_drv} {{ {base_drv} = {{ allOutputs = true; outputs = [ "out" ]; }}; }}; in (derivation {{ name = "whole"; system = "x86_64-linux"; builder = "/bin/sh"; d = drv; }}).drvPath"#
        );
        let value = ev
            .eval_string(&source, Path::new("/"))
            .map_err(|e| e.message().to_owned())?;
        ev.to_json(&value)
            .map(|json| String::from_utf8(json).unwrap())
            .map_err(|e| e.message().to_owned())
    });
    // Same as the "whole derivation context" case: `=drv` pulls in the closure, the
    // output context adds `out`.
    assert_eq!(
        result.unwrap(),
        r#""/nix/store/gm4glf2r9b1x7k6dgljh0rh1fhjfx3yj-whole.drv""#
    );
}
