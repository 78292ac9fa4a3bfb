//! Garbage collection: temporary and permanent roots, what is kept and deleted, limits, temporaries of killed processes, and verification.
use super::*;

/// The store used by the GC tests: `result → b → a`, `c` alone, `d → c` held as a temporary
/// root by another store handle, `f → g` with `f`'s lock held, a dead chain `i → h`, a derivation
/// `b.drv` that built `b`, and a leftover `junk` that was never registered.
struct GcFixture {
    dir: tempfile::TempDir,
    store: LocalStore,
    other_handle: LocalStore,
    result_link: PathBuf,
    paths: std::collections::BTreeMap<&'static str, StorePath>,
}

fn gc_fixture() -> GcFixture {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let names = [
        ("a", 1),
        ("b", 2),
        ("c", 3),
        ("d", 4),
        ("f", 6),
        ("g", 7),
        ("h", 8),
        ("i", 9),
        ("b.drv", 10),
        ("junk", 11),
    ];
    let paths: std::collections::BTreeMap<&'static str, StorePath> = names
        .iter()
        .map(|&(name, n)| (name, store_path(n, name)))
        .collect();
    let p = |name: &str| paths[name].clone();
    let info = |name: &str, refs: &[&str]| {
        let refs: Vec<StorePath> = refs.iter().map(|r| p(r)).collect();
        let refs: Vec<&StorePath> = refs.iter().collect();
        with_refs(
            write_object(&store, &p(name), name.repeat(10).as_bytes()),
            &refs,
        )
    };
    let mut info_b = info("b", &["a"]);
    info_b.deriver = Some(p("b.drv"));
    let mut info_drv = info("b.drv", &[]);
    info_drv.derivation_outputs = [("out".to_string(), p("b"))].into();
    store
        .register_valid_paths(&[
            info("a", &[]),
            info_b,
            info("c", &[]),
            info("d", &["c"]),
            info("g", &[]),
            info("f", &["g"]),
            info("h", &[]),
            info("i", &["h"]),
            info_drv,
        ])
        .unwrap();
    let junk = store.physical_path(&p("junk"));
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("x"), b"0123456789").unwrap();

    let result_link = dir.path().join("project/result");
    std::fs::create_dir_all(result_link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(store.physical_path(&p("b")), &result_link).unwrap();
    store.add_indirect_root(&result_link).unwrap();

    let other_handle = open(dir.path());
    other_handle.add_temp_root(&p("d")).unwrap();
    GcFixture {
        dir,
        store,
        other_handle,
        result_link,
        paths,
    }
}

/// Child process: makes `KILN_TEST_PATH` a temporary root of the store at `KILN_TEST_ROOT`,
/// says so, and sleeps until killed.
#[test]
#[ignore = "run by temp_roots_of_a_dead_process_protect_nothing in a child process"]
fn child_hold_temp_root() {
    let store = open(Path::new(&env_var("KILN_TEST_ROOT")));
    let path = StorePath::from_base_name(&env_var("KILN_TEST_PATH")).unwrap();
    store.add_temp_root(&path).unwrap();
    println!("rooted");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn temp_roots_of_a_dead_process_protect_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let path = store_path(1, "in-use");
    store
        .register_valid_paths(&[write_object(&store, &path, b"x")])
        .unwrap();
    let mut holder = child(
        "gc::child_hold_temp_root",
        &[
            ("KILN_TEST_ROOT", dir.path().display().to_string()),
            ("KILN_TEST_PATH", path.to_string()),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = holder.stdout.take().unwrap();
    let rooted = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("rooted"));
    assert!(rooted, "the child never added its root");
    let temp_roots_dir = dir.path().join("var/kiln/temproots");
    assert_eq!(std::fs::read_dir(&temp_roots_dir).unwrap().count(), 1);
    assert_eq!(store.gc(&GcOptions::default()).unwrap().deleted, vec![]);

    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(
        store.gc(&GcOptions::default()).unwrap().deleted,
        vec![path.clone()]
    );
    assert!(!store.is_valid(&path).unwrap());
    assert_eq!(
        std::fs::read_dir(&temp_roots_dir).unwrap().count(),
        0,
        "the dead process's file is removed"
    );
}

#[test]
fn finds_direct_and_indirect_roots_and_drops_dead_ones() {
    let fixture = gc_fixture();
    let store = &fixture.store;
    let gone_link = fixture.dir.path().join("project/old-result");
    std::os::unix::fs::symlink(store.physical_path(&fixture.paths["c"]), &gone_link).unwrap();
    let gone_root = store.add_indirect_root(&gone_link).unwrap();
    std::fs::remove_file(&gone_link).unwrap();
    // A direct root, by logical path.
    std::os::unix::fs::symlink(
        format!("{}/bin/sh", print(&fixture.paths["h"])),
        store.gcroots_dir().join("pinned"),
    )
    .unwrap();

    let roots: Vec<(PathBuf, StorePath)> = store
        .find_roots()
        .unwrap()
        .into_iter()
        .map(|root| (root.link, root.store_path))
        .collect();
    assert_eq!(
        roots,
        vec![
            (fixture.result_link.clone(), fixture.paths["b"].clone()),
            (
                store.gcroots_dir().join("pinned"),
                fixture.paths["h"].clone()
            ),
        ]
    );
    assert!(
        std::fs::symlink_metadata(&gone_root).is_err(),
        "a dead indirect root is removed"
    );
}

#[test]
fn gc_deletes_only_what_nothing_reaches() {
    let fixture = gc_fixture();
    let store = &fixture.store;
    let p = |name: &str| fixture.paths[name].clone();
    let held = OutputLock::try_acquire(store, &p("f")).unwrap().unwrap();

    let dry = store
        .gc(&GcOptions {
            dry_run: true,
            ..GcOptions::default()
        })
        .unwrap();
    let expected: BTreeSet<StorePath> = [p("h"), p("i"), p("junk")].into();
    assert_eq!(
        dry.deleted.iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(dry.bytes_freed, 10 + 10 + 10);
    for path in &expected {
        assert!(store.physical_path(path).exists(), "dry run deleted {path}");
    }

    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(
        report.deleted.iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(report.bytes_freed, 30);
    let position = |path: &StorePath| report.deleted.iter().position(|d| d == path).unwrap();
    assert!(position(&p("i")) < position(&p("h")), "referrers go first");
    for path in &expected {
        assert!(!store.physical_path(path).exists());
        assert!(!store.is_valid(path).unwrap());
    }
    // Reached from the indirect root (with the deriver kept), the temporary root of the other
    // handle, and the held lock.
    for kept in ["a", "b", "b.drv", "c", "d", "f", "g"] {
        assert!(store.is_valid(&p(kept)).unwrap(), "{kept} was collected");
        assert!(store.physical_path(&p(kept)).exists());
    }

    // Once the lock is released, the handle dropped and the result link removed, the rest
    // goes too.
    drop(held);
    drop(fixture.other_handle);
    std::fs::remove_file(&fixture.result_link).unwrap();
    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(
        report.deleted.iter().cloned().collect::<BTreeSet<_>>(),
        ["a", "b", "b.drv", "c", "d", "f", "g"]
            .iter()
            .map(|n| p(n))
            .collect()
    );
    assert_eq!(store.valid_paths().unwrap(), BTreeSet::new());
}

#[test]
fn gc_keep_options_follow_derivers_and_outputs() {
    let fixture = gc_fixture();
    let store = &fixture.store;
    let p = |name: &str| fixture.paths[name].clone();
    // Without keep-derivations the deriver of a live path may go.
    let report = store
        .gc(&GcOptions {
            dry_run: true,
            keep_derivations: false,
            ..GcOptions::default()
        })
        .unwrap();
    assert!(report.deleted.contains(&p("b.drv")));

    // With keep-outputs a rooted derivation keeps its output (and that output's closure).
    std::fs::remove_file(&fixture.result_link).unwrap();
    std::os::unix::fs::symlink(store.physical_path(&p("b.drv")), &fixture.result_link).unwrap();
    let report = store
        .gc(&GcOptions {
            dry_run: true,
            keep_outputs: true,
            ..GcOptions::default()
        })
        .unwrap();
    assert!(!report.deleted.contains(&p("b")));
    assert!(!report.deleted.contains(&p("a")));
    let report = store
        .gc(&GcOptions {
            dry_run: true,
            ..GcOptions::default()
        })
        .unwrap();
    assert!(report.deleted.contains(&p("b")));
    assert!(report.deleted.contains(&p("a")));
}

#[test]
fn gc_stops_after_max_freed() {
    let fixture = gc_fixture();
    let store = &fixture.store;
    let report = store
        .gc(&GcOptions {
            max_freed: Some(15),
            ..GcOptions::default()
        })
        .unwrap();
    assert_eq!(report.deleted.len(), 2);
    assert_eq!(report.bytes_freed, 20);
}

#[test]
fn verify_reports_missing_and_changed_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let paths: Vec<StorePath> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(n, name)| store_path(n as u32 + 1, name))
        .collect();
    let infos: Vec<ValidPathInfo> = paths
        .iter()
        .map(|path| {
            let physical = store.physical_path(path);
            std::fs::create_dir(&physical).unwrap();
            std::fs::write(physical.join("file"), b"contents").unwrap();
            let (nar_hash, nar_size) = nar::hash_path(&physical).unwrap();
            ValidPathInfo::new(path.clone(), nar_hash, nar_size)
        })
        .collect();
    store.register_valid_paths(&infos).unwrap();
    let clean = store.verify(true).unwrap();
    assert_eq!(clean.checked, 3);
    assert!(clean.is_ok(), "{clean:?}");

    let (a, b, c) = (&paths[0], &paths[1], &paths[2]);
    std::fs::remove_dir_all(store.physical_path(b)).unwrap();
    std::fs::write(store.physical_path(c).join("file"), b"tampered!").unwrap();

    let quick = store.verify(false).unwrap();
    assert_eq!((quick.checked, quick.missing.clone()), (3, vec![b.clone()]));
    assert!(quick.hash_mismatches.is_empty());

    let full = store.verify(true).unwrap();
    assert_eq!(full.missing, vec![b.clone()]);
    assert_eq!(full.hash_mismatches.len(), 1);
    let mismatch = &full.hash_mismatches[0];
    assert_eq!(&mismatch.path, c);
    assert_eq!(mismatch.expected_hash, infos[2].nar_hash);
    assert_eq!(mismatch.actual_size, mismatch.expected_size + 8);
    assert_ne!(mismatch.actual_hash, mismatch.expected_hash);
    assert!(!full.is_ok());
    assert!(store.is_valid(a).unwrap());
}

#[test]
fn gc_removes_the_temporaries_of_killed_processes_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let physical_dir = store.physical_store_dir();
    let make = |name: &str| {
        let path = physical_dir.join(name);
        std::fs::create_dir_all(path.join("sub")).unwrap();
        std::fs::write(path.join("sub/file"), b"partial").unwrap();
        std::fs::set_permissions(path.join("sub"), std::fs::Permissions::from_mode(0o555)).unwrap();
        path
    };
    // Pid numbers stay below 2^22 on Linux: this process never runs.
    let gone_fresh = make(".kiln-fresh-2147483647-aaaa-out");
    let gone_check = make(".kiln-check-2147483647-0-aaaa-out");
    let own_source = make(&format!(".tmp-{}-0-src", std::process::id()));
    let free = store_path(7, "free");
    let held = store_path(8, "held");
    let free_staging = make(&format!(".kiln-sandbox-{}", free.base_name()));
    let held_staging = make(&format!(".kiln-sandbox-{}", held.base_name()));
    let _lock = OutputLock::try_acquire(&store, &held).unwrap().unwrap();

    let dry = store
        .gc(&GcOptions {
            dry_run: true,
            ..GcOptions::default()
        })
        .unwrap();
    assert_eq!(dry.temporaries.len(), 3, "{dry:?}");
    assert!(gone_fresh.exists());

    let report = store.gc(&GcOptions::default()).unwrap();
    let mut removed = report.temporaries.clone();
    removed.sort();
    let mut expected: Vec<String> = [&gone_check, &gone_fresh, &free_staging]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(removed, expected);
    assert!(report.bytes_freed > 0);
    for gone in [&gone_fresh, &gone_check, &free_staging] {
        assert!(!gone.exists(), "{}", gone.display());
    }
    // A running process's copy and a staging directory whose build holds its lock stay.
    assert!(own_source.exists() && held_staging.exists());
}
