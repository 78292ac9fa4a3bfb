//! Hostile and broken binary caches: each bad narinfo or NAR is refused with a message naming
//! the cache and the path, registers nothing and leaves nothing at the path's place in the
//! store. Caches are directories (file://) or, for hangs and truncated downloads, a small HTTP
//! server on 127.0.0.1 run by the test.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_cache::compression::Compression;
use kiln_cache::narinfo::NarInfo;
use kiln_cache::signing::{SecretKey, TrustedKeys};
use kiln_cache::substitute::{SubstituteEvent, SubstituterSettings, Substituters};
use kiln_local_store::LocalStore;
use kiln_store::hash::Hash;
use kiln_store::nar;
use kiln_store::store_path::{StoreDir, StorePath};

const STORE_DIR: &str = "/kiln/store";
const PATH: &str = "0zzcsbn9g6ykg54i81f6ndghhs84zcgb-victim";

/// One NAR string item: length, bytes, padding.
fn item(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    out.extend(std::iter::repeat_n(0u8, (8 - bytes.len() % 8) % 8));
}

/// A NAR of a directory with these regular files, in the order given (not sorted, not
/// checked), so that hostile archives can be written.
fn directory_nar(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for token in ["nix-archive-1", "(", "type", "directory"] {
        item(&mut out, token.as_bytes());
    }
    for (name, contents) in entries {
        for token in ["entry", "(", "name"] {
            item(&mut out, token.as_bytes());
        }
        item(&mut out, name);
        for token in ["node", "(", "type", "regular", "contents"] {
            item(&mut out, token.as_bytes());
        }
        item(&mut out, contents);
        item(&mut out, b")");
        item(&mut out, b")");
    }
    item(&mut out, b")");
    out
}

fn good_nar() -> Vec<u8> {
    directory_nar(&[(b"a", b"first\n"), (b"b", b"second\n")])
}

struct Setup {
    dir: tempfile::TempDir,
    key: SecretKey,
    store_dir: StoreDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cache/nar")).unwrap();
        std::fs::write(
            dir.path().join("cache/nix-cache-info"),
            format!("StoreDir: {STORE_DIR}\n"),
        )
        .unwrap();
        Setup {
            dir,
            key: SecretKey::generate("trusted-1"),
            store_dir: StoreDir::new(STORE_DIR),
        }
    }

    fn cache(&self) -> std::path::PathBuf {
        self.dir.path().join("cache")
    }

    fn url(&self) -> String {
        format!("file://{}", self.cache().display())
    }

    fn path(&self) -> StorePath {
        StorePath::from_base_name(PATH).unwrap()
    }

    /// A signed narinfo for `nar` (uncompressed), which `edit` may change before signing.
    fn narinfo(&self, nar: &[u8], edit: impl FnOnce(&mut NarInfo)) -> NarInfo {
        let (nar_hash, nar_size) = hash_nar(nar);
        let mut info = NarInfo {
            path: self.path(),
            url: "nar/victim.nar".into(),
            compression: Compression::None,
            file_hash: Some(Hash::sha256(nar)),
            file_size: Some(nar.len() as u64),
            nar_hash,
            nar_size,
            references: BTreeSet::new(),
            deriver: None,
            signatures: BTreeSet::new(),
            ca: None,
        };
        edit(&mut info);
        info.sign(&self.store_dir, &self.key);
        info
    }

    fn publish(&self, nar: Option<&[u8]>, narinfo_text: &str) {
        if let Some(nar) = nar {
            std::fs::write(self.cache().join("nar/victim.nar"), nar).unwrap();
        }
        std::fs::write(
            self.cache()
                .join(format!("{}.narinfo", self.path().hash_part())),
            narinfo_text,
        )
        .unwrap();
    }

    fn settings(&self, url: &str, stall: Duration) -> SubstituterSettings {
        let mut trusted = TrustedKeys::default();
        trusted.insert(self.key.public_key());
        SubstituterSettings {
            urls: vec![url.to_owned()],
            trusted_keys: trusted,
            require_sigs: true,
            stall_timeout: stall,
            jobs: 2,
        }
    }

    /// Tries to substitute the path from `url`; returns the warnings. Asserts that nothing
    /// was registered or left behind.
    fn substitute_from(&self, url: &str, stall: Duration) -> String {
        let store =
            LocalStore::open(self.dir.path().join("store"), self.store_dir.clone()).unwrap();
        let warnings = Mutex::new(Vec::new());
        let on_event = |event: SubstituteEvent<'_>| {
            if let SubstituteEvent::Warning(text) = event {
                warnings.lock().unwrap().push(text);
            }
        };
        let substituters =
            Substituters::open(&self.settings(url, stall), &self.store_dir, &on_event);
        let wanted: BTreeSet<StorePath> = [self.path()].into();
        if let Some(closure) = substituters
            .closure_to_fetch(&store, &wanted, &on_event)
            .unwrap()
        {
            let failed = substituters.fetch_all(&store, &closure, &on_event);
            assert!(
                failed.contains(&self.path()),
                "the fetch should have failed"
            );
        }
        assert!(
            !store.is_valid(&self.path()).unwrap(),
            "nothing is registered"
        );
        assert!(
            std::fs::symlink_metadata(store.physical_path(&self.path())).is_err(),
            "no partial path is left"
        );
        let warnings = warnings.into_inner().unwrap().join("\n");
        assert!(
            warnings.contains(url.trim_end_matches('/')),
            "names the cache: {warnings}"
        );
        warnings
    }

    fn substitute(&self) -> String {
        let warnings = self.substitute_from(&self.url(), Duration::from_secs(5));
        assert!(
            warnings.contains(&self.store_dir.print(&self.path())),
            "names the path: {warnings}"
        );
        warnings
    }
}

fn hash_nar(nar: &[u8]) -> (Hash, u64) {
    (Hash::sha256(nar), nar.len() as u64)
}

#[test]
fn a_good_entry_is_substituted() {
    // The control: the same set-up with nothing wrong succeeds.
    let setup = Setup::new();
    let nar = good_nar();
    let info = setup.narinfo(&nar, |_| {});
    setup.publish(Some(&nar), &info.to_text(&setup.store_dir));
    let store = LocalStore::open(setup.dir.path().join("store"), setup.store_dir.clone()).unwrap();
    let on_event = |event: SubstituteEvent<'_>| {
        if let SubstituteEvent::Warning(text) = event {
            panic!("unexpected warning: {text}");
        }
    };
    let substituters = Substituters::open(
        &setup.settings(&setup.url(), Duration::from_secs(5)),
        &setup.store_dir,
        &on_event,
    );
    let wanted: BTreeSet<StorePath> = [setup.path()].into();
    let closure = substituters
        .closure_to_fetch(&store, &wanted, &on_event)
        .unwrap()
        .unwrap();
    assert!(substituters
        .fetch_all(&store, &closure, &on_event)
        .is_empty());
    let registered = store.query_path_info(&setup.path()).unwrap().unwrap();
    assert_eq!(registered.nar_hash, info.nar_hash);
    assert_eq!(registered.signatures, info.signatures);
    let physical = store.physical_path(&setup.path());
    assert_eq!(std::fs::read(physical.join("b")).unwrap(), b"second\n");
    assert_eq!(nar::hash_path(&physical).unwrap(), hash_nar(&nar));
}

#[test]
fn unsigned_and_untrusted_narinfos_are_refused() {
    let setup = Setup::new();
    let nar = good_nar();
    let mut info = setup.narinfo(&nar, |_| {});
    info.signatures.clear();
    setup.publish(Some(&nar), &info.to_text(&setup.store_dir));
    assert!(setup.substitute().contains("is unsigned"));
    info.sign(&setup.store_dir, &SecretKey::generate("trusted-1"));
    setup.publish(Some(&nar), &info.to_text(&setup.store_dir));
    assert!(setup.substitute().contains("no signature by a trusted key"));
    // A trusted signature over other contents does not count either.
    let mut forged = setup.narinfo(&good_nar(), |_| {});
    forged.nar_size += 8;
    setup.publish(Some(&nar), &forged.to_text(&setup.store_dir));
    assert!(setup.substitute().contains("no signature by a trusted key"));
}

#[test]
fn malformed_narinfos_and_narinfos_of_other_paths_are_refused() {
    let setup = Setup::new();
    let nar = good_nar();
    let text = setup.narinfo(&nar, |_| {}).to_text(&setup.store_dir);
    setup.publish(Some(&nar), &text.replace("NarSize: ", "NarSize: x"));
    assert!(setup.substitute().contains("invalid narinfo"));
    setup.publish(Some(&nar), &text.replace("-victim", "-impostor"));
    assert!(setup.substitute().contains("describes another path"));
    setup.publish(Some(&nar), &text.replace(STORE_DIR, "/nix/store"));
    let warnings = setup.substitute();
    assert!(
        warnings.contains("/nix/store") && warnings.contains("'/kiln/store'"),
        "{warnings}"
    );
}

#[test]
fn nars_whose_hash_or_size_differ_are_refused() {
    let setup = Setup::new();
    let nar = good_nar();
    let other = directory_nar(&[(b"a", b"first\n"), (b"b", b"other!\n")]);
    let info = setup.narinfo(&nar, |_| {});
    setup.publish(Some(&other), &info.to_text(&setup.store_dir));
    assert!(setup.substitute().contains("hash mismatch"));
    let longer = setup.narinfo(&nar, |info| info.nar_size += 8);
    setup.publish(Some(&nar), &longer.to_text(&setup.store_dir));
    assert!(setup.substitute().contains("the NAR has"));
    let shorter = setup.narinfo(&nar, |info| info.nar_size -= 8);
    setup.publish(Some(&nar), &shorter.to_text(&setup.store_dir));
    assert!(setup.substitute().contains("longer than"));
}

#[test]
fn hostile_nars_are_refused() {
    let setup = Setup::new();
    let cases: [(&str, Vec<u8>); 5] = [
        ("dot-dot", directory_nar(&[(b"..", b"escape")])),
        ("absolute", directory_nar(&[(b"/etc", b"escape")])),
        ("slash", directory_nar(&[(b"a/../../x", b"escape")])),
        ("duplicate", directory_nar(&[(b"a", b"1"), (b"a", b"2")])),
        ("unsorted", directory_nar(&[(b"b", b"1"), (b"a", b"2")])),
    ];
    for (case, nar) in cases {
        // The narinfo is honest about the hostile NAR: only the NAR's structure is wrong.
        let info = setup.narinfo(&nar, |_| {});
        setup.publish(Some(&nar), &info.to_text(&setup.store_dir));
        let warnings = setup.substitute();
        assert!(warnings.contains("invalid NAR"), "{case}: {warnings}");
    }
}

#[test]
fn truncated_and_missing_nars_are_refused() {
    let setup = Setup::new();
    let nar = good_nar();
    let info = setup.narinfo(&nar, |_| {});
    setup.publish(
        Some(&nar[..nar.len() - 24]),
        &info.to_text(&setup.store_dir),
    );
    assert!(setup.substitute().contains("truncated"));
    std::fs::remove_file(setup.cache().join("nar/victim.nar")).unwrap();
    assert!(setup.substitute().contains("missing from the cache"));
}

/// How the test server answers a request for a NAR.
#[derive(Clone, Copy)]
enum NarService {
    /// Sends half of it, then closes the connection.
    Truncated,
    /// Never answers.
    Hangs,
    /// Answers the first request for each file with a 503, and breaks off the first whole
    /// answer for a NAR halfway; then serves well.
    FailsOnce,
}

/// Serves the file cache of `setup` over HTTP, except NARs, served as `service` says.
fn serve(setup: &Setup, service: NarService) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = setup.cache();
    let requests: std::sync::Arc<Mutex<Vec<String>>> = Default::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let target = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let relative = target.trim_start_matches('/');
                let mut stream = stream;
                let Ok(body) = std::fs::read(root.join(relative)) else {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    return;
                };
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let seen_before = {
                    let mut requests = requests.lock().unwrap();
                    requests.push(relative.to_owned());
                    requests.iter().filter(|r| *r == relative).count() - 1
                };
                if let NarService::FailsOnce = service {
                    if seen_before == 0 {
                        let _ = stream.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
                        );
                        return;
                    }
                    if seen_before == 1 && relative.starts_with("nar/") {
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(&body[..body.len() / 2]);
                        return;
                    }
                }
                if !relative.starts_with("nar/") || matches!(service, NarService::FailsOnce) {
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                    return;
                }
                match service {
                    NarService::Truncated => {
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(&body[..body.len() / 2]);
                    }
                    NarService::Hangs => {
                        let mut rest = Vec::new();
                        let _ = reader.read_to_end(&mut rest);
                    }
                    NarService::FailsOnce => {}
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_truncated_download_and_a_hanging_cache_are_refused() {
    let setup = Setup::new();
    let nar = good_nar();
    let info = setup.narinfo(&nar, |_| {});
    setup.publish(Some(&nar), &info.to_text(&setup.store_dir));
    let truncated = serve(&setup, NarService::Truncated);
    let warnings = setup.substitute_from(&truncated, Duration::from_secs(5));
    assert!(warnings.contains("invalid NAR"), "{warnings}");
    let hanging = serve(&setup, NarService::Hangs);
    let start = Instant::now();
    let warnings = setup.substitute_from(&hanging, Duration::from_secs(1));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(
        warnings.contains("timed out") || warnings.contains("timeout"),
        "{warnings}"
    );
}

#[test]
fn server_errors_and_a_download_that_breaks_off_are_tried_again() {
    let setup = Setup::new();
    let nar = good_nar();
    let info = setup.narinfo(&nar, |_| {});
    setup.publish(Some(&nar), &info.to_text(&setup.store_dir));
    let url = serve(&setup, NarService::FailsOnce);
    let store = LocalStore::open(setup.dir.path().join("store"), setup.store_dir.clone()).unwrap();
    let events = Mutex::new(Vec::new());
    let on_event = |event: SubstituteEvent<'_>| match event {
        SubstituteEvent::Warning(text) => events.lock().unwrap().push(text),
        SubstituteEvent::Progress { bytes, .. } => {
            events.lock().unwrap().push(format!("progress {bytes}"))
        }
        _ => {}
    };
    let substituters = Substituters::open(
        &setup.settings(&url, Duration::from_secs(5)),
        &setup.store_dir,
        &on_event,
    );
    assert!(!substituters.is_empty(), "{:?}", events.lock().unwrap());
    let wanted: BTreeSet<StorePath> = [setup.path()].into();
    let closure = substituters
        .closure_to_fetch(&store, &wanted, &on_event)
        .unwrap()
        .expect("the narinfo is found after a 503");
    let failed = substituters.fetch_all(&store, &closure, &on_event);
    let events = events.into_inner().unwrap().join("\n");
    assert!(failed.is_empty(), "{events}");
    assert!(store.is_valid(&setup.path()).unwrap());
    assert!(
        events.contains("trying again (attempt 2 of 3)"),
        "the broken-off download is reported and retried: {events}"
    );
    assert!(
        events.contains(&format!("progress {}", nar.len())),
        "the download reports its bytes: {events}"
    );
}

#[test]
fn an_unreachable_cache_is_a_warning() {
    let setup = Setup::new();
    // A port nobody listens on (bound, then closed).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let store = LocalStore::open(setup.dir.path().join("store"), setup.store_dir.clone()).unwrap();
    let warnings = Mutex::new(Vec::new());
    let on_event = |event: SubstituteEvent<'_>| {
        if let SubstituteEvent::Warning(text) = event {
            warnings.lock().unwrap().push(text);
        }
    };
    let substituters = Substituters::open(
        &setup.settings(&url, Duration::from_secs(2)),
        &setup.store_dir,
        &on_event,
    );
    assert!(substituters.is_empty());
    let wanted: BTreeSet<StorePath> = [setup.path()].into();
    assert!(substituters
        .closure_to_fetch(&store, &wanted, &on_event)
        .unwrap()
        .is_none());
    let warnings = warnings.into_inner().unwrap().join("\n");
    assert!(
        warnings.contains(&url) && warnings.contains("unusable"),
        "{warnings}"
    );
}
