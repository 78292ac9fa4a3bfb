//! Integration tests of the local store: the database, output locks, crash leftovers, GC roots
//! and collection, verification, and two kiln processes sharing one store.
//!
//! Tests that need a second process re-run this test binary on one of the `#[ignore]`d
//! `child_*` functions below, passing what it should do in environment variables.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use kiln_local_store::{
    GcOptions, LocalStore, LocalStoreError, OutputClaim, OutputLock, ValidPathInfo,
};
use kiln_store::hash::Hash;
use kiln_store::nar;
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{StoreDir, StorePath};

const STORE_DIR: &str = "/kiln/store";
const NIXBASE32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// A well-formed store path whose hash part encodes `n`.
fn store_path(n: u32, name: &str) -> StorePath {
    let mut hash = String::new();
    let mut rest = n;
    for _ in 0..32 {
        hash.push(NIXBASE32[(rest % 32) as usize] as char);
        rest /= 32;
    }
    StorePath::from_base_name(&format!("{hash}-{name}")).unwrap()
}

fn print(path: &StorePath) -> String {
    StoreDir::new(STORE_DIR).print(path)
}

fn open(root: &Path) -> LocalStore {
    LocalStore::open(root, StoreDir::new(STORE_DIR)).unwrap()
}

/// Writes a one-file store object and returns its info (hash of the contents, not a NAR).
fn write_object(store: &LocalStore, path: &StorePath, contents: &[u8]) -> ValidPathInfo {
    std::fs::write(store.physical_path(path), contents).unwrap();
    ValidPathInfo::new(path.clone(), Hash::sha256(contents), contents.len() as u64)
}

fn with_refs(mut info: ValidPathInfo, refs: &[&StorePath]) -> ValidPathInfo {
    info.references = refs.iter().map(|r| (*r).clone()).collect();
    info
}

/// Runs the ignored test `name` of this binary in a child process with `env` set.
fn child(name: &str, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child tests need {name}"))
}

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

#[test]
fn output_locks_exclude_each_other_and_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let out = store_path(1, "out");
    let lock_file = dir
        .path()
        .join(format!("var/kiln/locks/{}.lock", out.base_name()));

    let held = OutputLock::try_acquire(&store, &out).unwrap().unwrap();
    assert!(lock_file.exists());
    assert!(OutputLock::try_acquire(&store, &out).unwrap().is_none());

    let waiter = {
        let store = Arc::clone(&store);
        let out = out.clone();
        std::thread::spawn(move || {
            let mut waited_for = Vec::new();
            let lock = OutputLock::acquire(&store, &out, |p| waited_for.push(p.clone())).unwrap();
            (waited_for, lock.path().clone())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!waiter.is_finished(), "acquire must wait for the holder");
    drop(held);
    let (waited_for, locked) = waiter.join().unwrap();
    assert_eq!(waited_for, vec![out.clone()]);
    assert_eq!(locked, out);
    assert!(!lock_file.exists(), "released locks delete their file");
}

/// Many threads race to lock and unlock one output; at no time do two hold it (the
/// deleted-lock-file race must not let a waiter lock a file nobody else sees).
#[test]
fn lock_file_deletion_race_never_admits_two_holders() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let out = store_path(1, "out");
    let inside = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, out, inside) = (Arc::clone(&store), out.clone(), Arc::clone(&inside));
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let _lock = OutputLock::acquire(&store, &out, |_| {}).unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// Two builders claim the same output at once: exactly one builds it, the other finds it
/// valid after waiting.
#[test]
fn concurrent_claims_build_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let out = store_path(1, "out");
    let builds = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (store, out, builds, barrier) = (
                Arc::clone(&store),
                out.clone(),
                Arc::clone(&builds),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                match store
                    .claim_outputs(std::slice::from_ref(&out), |_| {})
                    .unwrap()
                {
                    OutputClaim::AllValid => {}
                    OutputClaim::Locked(locks) => {
                        builds.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        let info = write_object(&store, &out, b"built");
                        store.register_valid_paths(&[info]).unwrap();
                        drop(locks);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    assert!(store.is_valid(&out).unwrap());
}

/// Child process: claims `KILN_TEST_PATH` in the store at `KILN_TEST_ROOT` and, if it has to
/// build it, appends a line to `KILN_TEST_LOG`, "builds" slowly and registers it.
#[test]
#[ignore = "run by two_processes_never_build_the_same_output_twice in child processes"]
fn child_claim_and_build() {
    let store = open(Path::new(&env_var("KILN_TEST_ROOT")));
    let out = StorePath::from_base_name(&env_var("KILN_TEST_PATH")).unwrap();
    match store
        .claim_outputs(std::slice::from_ref(&out), |_| {})
        .unwrap()
    {
        OutputClaim::AllValid => {}
        OutputClaim::Locked(locks) => {
            let log = env_var("KILN_TEST_LOG");
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(log)
                .unwrap();
            std::io::Write::write_all(&mut log, format!("{}\n", std::process::id()).as_bytes())
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let info = write_object(&store, &out, b"built");
            store.register_valid_paths(&[info]).unwrap();
            drop(locks);
        }
    }
    assert!(store.is_valid(&out).unwrap());
}

#[test]
fn two_processes_never_build_the_same_output_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let out = store_path(1, "shared-output");
    let log = dir.path().join("builds.log");
    let children: Vec<_> = (0..3)
        .map(|_| {
            child(
                "child_claim_and_build",
                &[
                    ("KILN_TEST_ROOT", dir.path().display().to_string()),
                    ("KILN_TEST_PATH", out.to_string()),
                    ("KILN_TEST_LOG", log.display().to_string()),
                ],
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a builder process failed");
    }
    let builds = std::fs::read_to_string(&log).unwrap();
    assert_eq!(builds.lines().count(), 1, "builds: {builds:?}");
    assert!(store.is_valid(&out).unwrap());
}

/// Child process: prints the default store root.
#[test]
#[ignore = "run by default_root_follows_xdg_data_home in child processes"]
fn child_print_default_root() {
    println!("root={:?}", LocalStore::default_root());
}

#[test]
fn default_root_follows_xdg_data_home() {
    let run = |env: &[(&str, &str)]| {
        let mut command = child("child_print_default_root", &[]);
        command.env_remove("XDG_DATA_HOME").env_remove("HOME");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        stdout
            .lines()
            .find_map(|line| line.split_once("root=").map(|(_, root)| root.to_owned()))
            .unwrap()
    };
    assert_eq!(
        run(&[("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")]),
        "Some(\"/data/kiln\")"
    );
    assert_eq!(
        run(&[("HOME", "/home/u")]),
        "Some(\"/home/u/.local/share/kiln\")"
    );
    assert_eq!(
        run(&[("XDG_DATA_HOME", ""), ("HOME", "/h")]),
        "Some(\"/h/.local/share/kiln\")"
    );
    assert_eq!(run(&[]), "None");
}

/// Child process: locks `KILN_TEST_PATH` in the store at `KILN_TEST_ROOT`, says so, and
/// sleeps until killed.
#[test]
#[ignore = "run by lock_held_by_a_dead_process_is_free in a child process"]
fn child_hold_lock() {
    let store = open(Path::new(&env_var("KILN_TEST_ROOT")));
    let _lock = OutputLock::acquire(
        &store,
        &StorePath::from_base_name(&env_var("KILN_TEST_PATH")).unwrap(),
        |_| {},
    )
    .unwrap();
    println!("locked");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn lock_held_by_a_dead_process_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let out = store_path(1, "out");
    let mut holder = child(
        "child_hold_lock",
        &[
            ("KILN_TEST_ROOT", dir.path().display().to_string()),
            ("KILN_TEST_PATH", out.to_string()),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = holder.stdout.take().unwrap();
    let saw_locked = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("locked"));
    assert!(saw_locked, "the child never took the lock");
    assert!(OutputLock::try_acquire(&store, &out).unwrap().is_none());
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(OutputLock::try_acquire(&store, &out).unwrap().is_some());
}

/// Child process: registers `KILN_TEST_COUNT` paths numbered from `KILN_TEST_FIRST`, one
/// transaction each, and reads them back.
#[test]
#[ignore = "run by two_processes_share_the_database in child processes"]
fn child_register_many() {
    let store = open(Path::new(&env_var("KILN_TEST_ROOT")));
    let first: u32 = env_var("KILN_TEST_FIRST").parse().unwrap();
    let count: u32 = env_var("KILN_TEST_COUNT").parse().unwrap();
    let base = store_path(0, "base");
    for n in first..first + count {
        let path = store_path(n, "item");
        let info = with_refs(write_object(&store, &path, &n.to_le_bytes()), &[&base]);
        store.register_valid_paths(&[info]).unwrap();
        assert!(store.is_valid(&path).unwrap());
        assert!(store.referrers(&base).unwrap().contains(&path));
    }
}

/// WAL and the busy timeout let several processes write one database at once without a
/// single "database is locked" failure.
#[test]
fn two_processes_share_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let base = store_path(0, "base");
    store
        .register_valid_paths(&[write_object(&store, &base, b"base")])
        .unwrap();
    let count = 150;
    let children: Vec<_> = (0..2)
        .map(|i| {
            child(
                "child_register_many",
                &[
                    ("KILN_TEST_ROOT", dir.path().display().to_string()),
                    ("KILN_TEST_FIRST", (1 + i * count).to_string()),
                    ("KILN_TEST_COUNT", count.to_string()),
                ],
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a writer process failed");
    }
    let journal: String = rusqlite::Connection::open(store.db_file())
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(store.valid_paths().unwrap().len(), 1 + 2 * count as usize);
    assert_eq!(store.referrers(&base).unwrap().len(), 2 * count as usize);
}

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
        "child_hold_temp_root",
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
fn many_processes_open_a_fresh_store_at_once() {
    // Creating the database (WAL switch, schema) must not fail with "database is locked" when
    // several kiln processes start on a new store together. Repeated on fresh roots, since the
    // race is only there while the database is new.
    for _ in 0..4 {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root").to_str().unwrap().to_string();
        let openers: Vec<_> = (0..6)
            .map(|_| {
                child("child_open_store", &[("KILN_TEST_ROOT", root.clone())])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for opener in openers {
            let output = opener.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
#[ignore = "run as a child process by many_processes_open_a_fresh_store_at_once"]
fn child_open_store() {
    open(Path::new(&env_var("KILN_TEST_ROOT")));
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
