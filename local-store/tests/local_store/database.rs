//! The database: layout and schema migrations, registration and queries, signatures, invalidation, crash leftovers and realisations.
use super::*;

#[test]
fn creates_layout_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for sub in ["store", "var/kiln/db.sqlite", "var/gcroots", "var/log"] {
        assert!(dir.path().join(sub).exists(), "{sub} missing");
    }
    assert_eq!(store.schema_version().unwrap(), 3);
    assert_eq!(store.store_dir().as_str(), STORE_DIR);
    let a = store_path(1, "a");
    assert_eq!(
        store.physical_path(&a),
        dir.path().join("store").join(a.base_name())
    );
    assert_eq!(
        store.store_path_of(Path::new(&format!("{}/bin/sh", print(&a)))),
        Some(a.clone())
    );
    assert_eq!(
        store.store_path_of(&store.physical_path(&a).join("bin")),
        Some(a.clone())
    );
    assert_eq!(store.store_path_of(Path::new("/elsewhere/x")), None);
    // Reopening an existing store keeps its schema.
    drop(store);
    assert_eq!(open(dir.path()).schema_version().unwrap(), 3);
}

#[test]
fn signatures_are_kept_and_added() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (store_path(1, "a"), store_path(2, "b"));
    let mut info_a = write_object(&store, &a, b"a");
    info_a.signatures = ["k1:c2ln".to_owned()].into();
    let info_b = write_object(&store, &b, b"b");
    store.register_valid_paths(&[info_a, info_b]).unwrap();
    let signatures = |path| store.query_path_info(path).unwrap().unwrap().signatures;
    assert_eq!(signatures(&a), ["k1:c2ln".to_owned()].into());
    assert!(signatures(&b).is_empty());
    store
        .add_signatures(&a, &["k0:AAAA".to_owned(), "k1:c2ln".to_owned()].into())
        .unwrap();
    assert_eq!(
        signatures(&a),
        ["k0:AAAA".to_owned(), "k1:c2ln".to_owned()].into()
    );
    assert!(store
        .add_signatures(&store_path(3, "c"), &["k:x".to_owned()].into())
        .is_err());
}

#[test]
fn a_version_1_database_gains_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store_path(1, "a");
    let info = write_object(&store, &a, b"a");
    store.register_valid_paths(&[info]).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("var/kiln/db.sqlite")).unwrap();
    conn.execute_batch("ALTER TABLE ValidPaths DROP COLUMN sigs; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    let store = open(dir.path());
    assert_eq!(store.schema_version().unwrap(), 3);
    assert!(store.is_valid(&a).unwrap());
    store
        .add_signatures(&a, &["k:x".to_owned()].into())
        .unwrap();
    assert_eq!(
        store.query_path_info(&a).unwrap().unwrap().signatures,
        ["k:x".to_owned()].into()
    );
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("var/kiln/db.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match LocalStore::open(dir.path(), StoreDir::new(STORE_DIR)) {
        Err(LocalStoreError::SchemaTooNew { found: 99, .. }) => {}
        other => panic!("expected SchemaTooNew, got {:?}", other.err()),
    }
}

#[test]
fn registers_and_queries_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, drv) = (
        store_path(1, "a"),
        store_path(2, "b"),
        store_path(3, "b.drv"),
    );
    let info_a = write_object(&store, &a, b"aaa");
    let mut info_b = with_refs(write_object(&store, &b, b"bbbb"), &[&a, &b]);
    info_b.deriver = Some(drv.clone());
    info_b.ca = Some("fixed:r:sha256:abc".into());
    let mut info_drv = with_refs(write_object(&store, &drv, b"Derive(...)"), &[&a]);
    info_drv.derivation_outputs = [("out".to_string(), b.clone())].into();

    assert!(!store.is_valid(&a).unwrap());
    store
        .register_valid_paths(&[info_b.clone(), info_drv.clone(), info_a.clone()])
        .unwrap();
    for path in [&a, &b, &drv] {
        assert!(store.is_valid(path).unwrap());
    }

    let got = store.query_path_info(&b).unwrap().unwrap();
    assert!(got.registration_time.is_some());
    assert_eq!(
        ValidPathInfo {
            registration_time: None,
            ..got
        },
        info_b
    );
    assert_eq!(store.references(&b).unwrap(), [a.clone(), b.clone()].into());
    assert_eq!(
        store.referrers(&a).unwrap(),
        [b.clone(), drv.clone()].into()
    );
    assert_eq!(
        store.closure(std::slice::from_ref(&drv)).unwrap(),
        [a.clone(), drv.clone()].into()
    );
    assert_eq!(
        store.closure(std::slice::from_ref(&b)).unwrap(),
        [a.clone(), b.clone()].into()
    );
    assert_eq!(
        store.derivation_outputs(&drv).unwrap(),
        [("out".to_string(), b.clone())].into()
    );
    assert_eq!(
        store.query_valid_derivers(&b).unwrap(),
        [drv.clone()].into()
    );
    assert_eq!(store.query_path_info(&store_path(9, "x")).unwrap(), None);
    assert!(matches!(
        store.references(&store_path(9, "x")),
        Err(LocalStoreError::InvalidPath(p)) if p == print(&store_path(9, "x"))
    ));
    assert_eq!(store.valid_paths().unwrap(), [a, b, drv].into());
}

#[test]
fn registration_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, missing) = (
        store_path(1, "a"),
        store_path(2, "b"),
        store_path(3, "gone"),
    );
    let info_a = write_object(&store, &a, b"a");
    let info_b = with_refs(write_object(&store, &b, b"b"), &[&missing]);
    match store.register_valid_paths(&[info_a, info_b]) {
        Err(LocalStoreError::InvalidReference { path, reference }) => {
            assert_eq!((path, reference), (print(&b), print(&missing)));
        }
        other => panic!("expected InvalidReference, got {other:?}"),
    }
    assert!(!store.is_valid(&a).unwrap());
    assert!(!store.is_valid(&b).unwrap());

    // An object missing from the physical store cannot become valid.
    let never_written = store_path(4, "never-written");
    let info_a = write_object(&store, &a, b"a");
    let err = store
        .register_valid_paths(&[
            info_a,
            ValidPathInfo::new(never_written.clone(), Hash::sha256(b""), 0),
        ])
        .unwrap_err();
    assert!(matches!(err, LocalStoreError::Io { .. }), "{err}");
    assert!(!store.is_valid(&a).unwrap());
}

#[test]
fn invalidation_respects_referrers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, drv) = (
        store_path(1, "a"),
        store_path(2, "b"),
        store_path(3, "x.drv"),
    );
    let info_a = write_object(&store, &a, b"a");
    let info_b = with_refs(write_object(&store, &b, b"b"), &[&a, &b]);
    let mut info_drv = write_object(&store, &drv, b"d");
    info_drv.derivation_outputs = [("out".to_string(), a.clone())].into();
    store
        .register_valid_paths(&[info_a, info_b, info_drv])
        .unwrap();

    match store.invalidate(std::slice::from_ref(&a)) {
        Err(LocalStoreError::PathInUse { path, referrer }) => {
            assert_eq!((path, referrer), (print(&a), print(&b)));
        }
        other => panic!("expected PathInUse, got {other:?}"),
    }
    assert!(store.is_valid(&a).unwrap());
    store.invalidate(&[a.clone(), b, drv]).unwrap();
    assert_eq!(store.valid_paths().unwrap(), BTreeSet::new());
    assert_eq!(store.query_valid_derivers(&a).unwrap(), BTreeSet::new());
    // The objects stay on disk as garbage.
    assert!(store.physical_path(&a).exists());
}

/// A crashed build leaves a read-only directory that the database does not list: it is
/// invalid, and claiming the path removes it before anything is written.
#[test]
fn leftovers_of_a_crash_are_invalid_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = store_path(1, "out");
    {
        let store = open(dir.path());
        let physical = store.physical_path(&out);
        std::fs::create_dir_all(physical.join("bin")).unwrap();
        std::fs::write(physical.join("bin/tool"), b"half written").unwrap();
        std::fs::set_permissions(physical.join("bin"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
        std::fs::set_permissions(&physical, std::fs::Permissions::from_mode(0o555)).unwrap();
        // The "crash": the store goes away without registering anything.
    }
    let store = open(dir.path());
    let physical = store.physical_path(&out);
    assert!(physical.exists());
    assert!(!store.is_valid(&out).unwrap());
    let OutputClaim::Locked(locks) = store
        .claim_outputs(std::slice::from_ref(&out), |_| {})
        .unwrap()
    else {
        panic!("an invalid path must be claimed for building");
    };
    assert!(!physical.exists(), "the leftover must be deleted");
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].path(), &out);

    // A valid path is never touched.
    std::fs::write(&physical, b"done").unwrap();
    store
        .register_valid_paths(&[ValidPathInfo::new(out.clone(), Hash::sha256(b"done"), 4)])
        .unwrap();
    assert!(store.prepare_path_for_write(&locks[0]).unwrap());
    assert_eq!(std::fs::read(&physical).unwrap(), b"done");
}

fn drv_output(byte: u8, output: &str) -> DrvOutput {
    DrvOutput {
        drv_hash: Hash::sha256(&[byte]),
        output: output.to_owned(),
    }
}

#[test]
fn realisations_are_registered_queried_and_go_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b, other) = (store_path(1, "a"), store_path(2, "b"), store_path(3, "c"));
    let info_a = write_object(&store, &a, b"a");
    let info_b = with_refs(write_object(&store, &b, b"b"), &[&a]);
    let info_other = write_object(&store, &other, b"c");
    store
        .register_valid_paths(&[info_a, info_b, info_other])
        .unwrap();
    let realisation_a = Realisation {
        id: drv_output(1, "out"),
        out_path: a.clone(),
        signatures: ["k:one".to_owned()].into(),
        dependent_realisations: Default::default(),
    };
    let realisation_b = Realisation {
        id: drv_output(2, "out"),
        out_path: b.clone(),
        signatures: Default::default(),
        dependent_realisations: [(realisation_a.id.clone(), a.clone())].into(),
    };
    // A dependency must be known first (or in the same batch, before).
    assert!(matches!(
        store.register_realisations(std::slice::from_ref(&realisation_b)),
        Err(LocalStoreError::RealisationDependency { .. })
    ));
    store
        .register_realisations(&[realisation_a.clone(), realisation_b.clone()])
        .unwrap();
    assert_eq!(
        store.query_realisation(&realisation_b.id).unwrap(),
        Some(realisation_b.clone())
    );
    assert_eq!(
        store.query_realisation(&drv_output(9, "out")).unwrap(),
        None
    );
    assert_eq!(
        store.realisations_of_path(&a).unwrap(),
        vec![realisation_a.clone()]
    );
    // The same realisation again merges signatures; another path is a conflict.
    store
        .register_realisations(&[Realisation {
            signatures: ["k:two".to_owned()].into(),
            ..realisation_a.clone()
        }])
        .unwrap();
    assert_eq!(
        store
            .query_realisation(&realisation_a.id)
            .unwrap()
            .unwrap()
            .signatures,
        ["k:one".to_owned(), "k:two".to_owned()].into()
    );
    assert!(matches!(
        store.register_realisations(&[Realisation {
            out_path: other.clone(),
            ..realisation_a.clone()
        }]),
        Err(LocalStoreError::RealisationConflict { .. })
    ));
    // An output path that is not valid cannot be realised.
    assert!(store
        .register_realisations(&[Realisation {
            id: drv_output(4, "out"),
            out_path: store_path(4, "d"),
            signatures: Default::default(),
            dependent_realisations: Default::default(),
        }])
        .is_err());
    // Invalidating the paths (referrer and reference together) drops their realisations.
    store.invalidate(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(store.query_realisation(&realisation_a.id).unwrap(), None);
    assert_eq!(store.query_realisation(&realisation_b.id).unwrap(), None);
}

#[test]
fn a_version_2_database_gains_realisations() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("var/kiln/db.sqlite")).unwrap();
    conn.execute_batch(
        "DROP TABLE RealisationsRefs; DROP TABLE Realisations; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    let store = open(dir.path());
    assert_eq!(store.schema_version().unwrap(), 3);
    assert_eq!(
        store.query_realisation(&drv_output(1, "out")).unwrap(),
        None
    );
}
