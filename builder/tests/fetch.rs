//! `builtin:fetchurl` against a real HTTP server on 127.0.0.1: redirects, mirrors, retries,
//! truncated bodies, hash checks, rewrite rules, progress and the User-Agent. Hashes are golden
//! values from `nix hash file` / `nix hash path` (Nix 2.8).

mod fetch_support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fetch_support::{Reply, TestServer};
use kiln_builder::builtin_builders::{
    fetchurl, run_builtin, BuiltinError, BuiltinOptions, BuiltinOutcome, FetchError, FetchOptions,
    FetchProgress, UrlRewrite,
};

const HELLO: &[u8] = b"hello\n";
/// `nix hash file --sri` of "hello\n".
const HELLO_SRI: &str = "sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=";
const HELLO_NIX32: &str = "00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq";
/// `nix hash file` of "other\n".
const OTHER_SRI: &str = "sha256-fk+i64x6wIlznV3vxEifrWihANkggso1xrQKRSSCH4c=";
const OTHER_NIX32: &str = "11qzh8j4a2mlqqswm0i0v40a2s5dkx4c9vsxkmrqkh3sikms4kvy";
/// `nix hash path --base32` of "hello\n" as a file, plain and executable.
const HELLO_NAR_NIX32: &str = "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw";
const HELLO_EXECUTABLE_NAR_NIX32: &str = "1yhh619m3cy1mird7f0l7zsmiv9rayqn075zinda2g7rscwn0hv5";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// Options with fast retries and a log that the test can read.
fn options() -> (FetchOptions, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let options = FetchOptions {
        attempts_per_url: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        stall_timeout: Duration::from_secs(10),
        log: Some(Arc::new(move |line: &str| {
            sink.lock().unwrap().push(line.to_owned())
        })),
        ..FetchOptions::default()
    };
    (options, lines)
}

fn output() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    (dir, out)
}

#[test]
fn fetches_verifies_and_sends_the_user_agent() {
    let server = TestServer::start();
    server.route("/hello.txt", vec![Reply::ok(HELLO)]);
    let (dir, out) = output();
    let (options, log) = options();
    let outcome = fetchurl(
        &env(&[
            ("url", &server.url("/hello.txt")),
            ("outputHash", HELLO_NIX32),
            ("outputHashAlgo", "sha256"),
        ]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(fs::read(&out).unwrap(), HELLO);
    assert_eq!(outcome.hash.to_sri(), HELLO_SRI);
    assert_eq!(outcome.bytes, 6);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let requests = server.requests();
    assert_eq!(
        requests[0].header("user-agent"),
        Some(format!("kiln/{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains(&server.url("/hello.txt")), "{log}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn follows_redirects_and_reports_the_final_url() {
    let server = TestServer::start();
    server.route(
        "/old",
        vec![Reply::Redirect {
            status: 302,
            location: "/new".into(),
        }],
    );
    server.route("/new", vec![Reply::ok(HELLO)]);
    let (_dir, out) = output();
    let (options, log) = options();
    let outcome = fetchurl(
        &env(&[("url", &server.url("/old")), ("outputHash", HELLO_SRI)]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(outcome.url, server.url("/old"));
    assert_eq!(outcome.final_url, server.url("/new"));
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains(&server.url("/new")), "{log}");
}

#[test]
fn a_404_mirror_moves_on_to_the_next_without_retrying() {
    let server = TestServer::start();
    server.route("/good", vec![Reply::ok(HELLO)]);
    let (_dir, out) = output();
    let (options, log) = options();
    let urls = format!("{} {}", server.url("/missing"), server.url("/good"));
    let outcome = fetchurl(
        &env(&[("urls", &urls), ("outputHash", HELLO_SRI)]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(outcome.url, server.url("/good"));
    assert_eq!(server.hits("/missing"), 1);
    assert_eq!(server.hits("/good"), 1);
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("404"), "{log}");
}

#[test]
fn a_500_is_retried_until_it_succeeds() {
    let server = TestServer::start();
    server.route(
        "/flaky",
        vec![Reply::status(500), Reply::status(503), Reply::ok(HELLO)],
    );
    let (_dir, out) = output();
    let (options, _log) = options();
    fetchurl(
        &env(&[("url", &server.url("/flaky")), ("outputHash", HELLO_SRI)]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(server.hits("/flaky"), 3);
    assert_eq!(fs::read(&out).unwrap(), HELLO);
}

#[test]
fn persistent_server_errors_give_up_after_the_attempts_and_name_each_url() {
    let server = TestServer::start();
    server.route("/down", vec![Reply::status(502)]);
    let (dir, out) = output();
    let (options, _log) = options();
    let error = fetchurl(
        &env(&[
            ("url", &server.url("/down")),
            ("urls", &server.url("/gone")),
            ("outputHash", HELLO_SRI),
        ]),
        &out,
        &options,
    )
    .unwrap_err();
    assert_eq!(server.hits("/down"), 3);
    assert_eq!(server.hits("/gone"), 1);
    let message = error.to_string();
    assert!(message.contains(&server.url("/down")), "{message}");
    assert!(message.contains("502"), "{message}");
    assert!(message.contains(&server.url("/gone")), "{message}");
    assert!(message.contains("404"), "{message}");
    assert!(!out.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_truncated_body_is_retried() {
    let server = TestServer::start();
    server.route(
        "/cut",
        vec![
            Reply::Truncated {
                declared: 6,
                body: b"hel".to_vec(),
            },
            Reply::ok(HELLO),
        ],
    );
    let (_dir, out) = output();
    let (options, log) = options();
    fetchurl(
        &env(&[("url", &server.url("/cut")), ("outputHash", HELLO_SRI)]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(server.hits("/cut"), 2);
    assert_eq!(fs::read(&out).unwrap(), HELLO);
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("attempt 1 of 3"), "{log}");
}

#[test]
fn an_always_truncated_body_fails() {
    let server = TestServer::start();
    server.route(
        "/cut",
        vec![Reply::Truncated {
            declared: 6,
            body: b"hel".to_vec(),
        }],
    );
    let (_dir, out) = output();
    let (options, _log) = options();
    let error = fetchurl(
        &env(&[("url", &server.url("/cut")), ("outputHash", HELLO_SRI)]),
        &out,
        &options,
    )
    .unwrap_err();
    assert!(matches!(error, FetchError::AllUrlsFailed(_)), "{error}");
    assert_eq!(server.hits("/cut"), 3);
    assert!(!out.exists());
}

#[test]
fn a_wrong_hash_names_the_url_and_both_hashes_in_both_forms() {
    let server = TestServer::start();
    server.route("/other", vec![Reply::ok(b"other\n")]);
    let (_dir, out) = output();
    let (options, _log) = options();
    let error = fetchurl(
        &env(&[("url", &server.url("/other")), ("outputHash", HELLO_SRI)]),
        &out,
        &options,
    )
    .unwrap_err();
    assert!(matches!(error, FetchError::HashMismatch { .. }), "{error}");
    let message = error.to_string();
    for part in [
        server.url("/other"),
        HELLO_SRI.to_owned(),
        format!("sha256:{HELLO_NIX32}"),
        OTHER_SRI.to_owned(),
        format!("sha256:{OTHER_NIX32}"),
    ] {
        assert!(message.contains(&part), "{part} missing from {message}");
    }
    assert!(!out.exists(), "a mismatching download must not stay");
    // A mismatch is not transient: the URL is asked once.
    assert_eq!(server.hits("/other"), 1);
}

#[test]
fn a_mirror_serving_other_content_is_skipped_for_one_serving_the_right_file() {
    let server = TestServer::start();
    server.route("/other", vec![Reply::ok(b"other\n")]);
    server.route("/hello", vec![Reply::ok(HELLO)]);
    let (_dir, out) = output();
    let (options, _log) = options();
    let outcome = fetchurl(
        &env(&[
            ("url", &server.url("/other")),
            ("urls", &server.url("/hello")),
            ("outputHash", HELLO_SRI),
        ]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(outcome.url, server.url("/hello"));
    assert_eq!(fs::read(&out).unwrap(), HELLO);
}

#[test]
fn rewrite_rules_redirect_the_fetch_without_changing_the_derivation() {
    let server = TestServer::start();
    server.route("/mirror/centos/9/base.tar.xz", vec![Reply::ok(HELLO)]);
    let (_dir, out) = output();
    let (mut options, log) = options();
    options.rewrites = vec![
        UrlRewrite::new("https://unrelated.invalid/", "http://127.0.0.1:1/"),
        UrlRewrite::new(
            "https://cloud.centos.invalid/",
            server.url("/mirror/centos/"),
        ),
    ];
    let outcome = fetchurl(
        &env(&[
            ("url", "https://cloud.centos.invalid/9/base.tar.xz"),
            ("outputHash", HELLO_SRI),
        ]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(outcome.url, server.url("/mirror/centos/9/base.tar.xz"));
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("https://cloud.centos.invalid/9/base.tar.xz")
            && log.contains(&server.url("/mirror/centos/9/base.tar.xz")),
        "{log}"
    );
}

#[test]
fn recursive_mode_hashes_the_nar_of_the_file_with_or_without_a_length() {
    let server = TestServer::start();
    server.route("/sized", vec![Reply::ok(HELLO)]);
    server.route("/unsized", vec![Reply::BodyUntilClose(HELLO.to_vec())]);
    let (options, _log) = options();
    for (path, executable, hash) in [
        ("/sized", "", HELLO_NAR_NIX32),
        ("/sized", "1", HELLO_EXECUTABLE_NAR_NIX32),
        ("/unsized", "", HELLO_NAR_NIX32),
        ("/unsized", "1", HELLO_EXECUTABLE_NAR_NIX32),
    ] {
        let (_dir, out) = output();
        fetchurl(
            &env(&[
                ("url", &server.url(path)),
                ("outputHash", hash),
                ("outputHashAlgo", "sha256"),
                ("outputHashMode", "recursive"),
                ("executable", executable),
            ]),
            &out,
            &options,
        )
        .unwrap_or_else(|error| panic!("{path} executable={executable:?}: {error}"));
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, if executable == "1" { 0o755 } else { 0o644 });
    }
}

#[test]
fn connection_failures_are_retried_then_the_next_mirror_is_used() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/x", closed.local_addr().unwrap());
    drop(closed);
    let server = TestServer::start();
    server.route("/x", vec![Reply::ok(HELLO)]);
    let (_dir, out) = output();
    let (options, log) = options();
    let outcome = fetchurl(
        &env(&[
            ("url", &closed_url),
            ("urls", &server.url("/x")),
            ("outputHash", HELLO_SRI),
        ]),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(outcome.url, server.url("/x"));
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("giving up on") && log.contains("after 3 attempts"),
        "{log}"
    );
}

#[test]
fn progress_reports_end_with_the_whole_size() {
    let server = TestServer::start();
    let len = 3 * 1024 * 1024;
    server.route("/big", vec![Reply::Generated { len }]);
    let expected = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let bytes: Vec<u8> = (0..len).map(fetch_support::pattern_byte).collect();
        hasher.update(&bytes);
        format!(
            "sha256-{}",
            data_encoding::BASE64.encode(&hasher.finalize())
        )
    };
    let reports: Arc<Mutex<Vec<FetchProgress>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let (mut options, _log) = options();
    options.progress_interval = Duration::ZERO;
    options.progress = Some(Arc::new(move |progress: &FetchProgress| {
        sink.lock().unwrap().push(progress.clone())
    }));
    let (_dir, out) = output();
    fetchurl(
        &env(&[("url", &server.url("/big")), ("outputHash", &expected)]),
        &out,
        &options,
    )
    .unwrap();
    let reports = reports.lock().unwrap();
    assert!(reports.len() > 2);
    let last = reports.last().unwrap();
    assert_eq!((last.bytes, last.total), (len, Some(len)));
    assert!(last.bytes_per_second > 0.0);
    assert!(reports.windows(2).all(|w| w[0].bytes <= w[1].bytes));
}

/// `nix hash path --sri` of a directory with `a` ("hello\n"), executable `bin/x` ("#!x\n")
/// and a symlink `l -> a`.
const TREE_NAR_SRI: &str = "sha256-4N00U6nPKP2eetYtRLNDtR3z73wXJVgIbhxWK0R3ZKA=";

fn tree_nar() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("a"), b"hello\n").unwrap();
    fs::write(root.join("bin/x"), b"#!x\n").unwrap();
    fs::set_permissions(root.join("bin/x"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a", root.join("l")).unwrap();
    let mut nar = Vec::new();
    kiln_store::nar::dump_path(&root, &mut nar).unwrap();
    nar
}

#[test]
fn unpack_restores_a_plain_or_compressed_nar() {
    use std::io::Write;
    let nar = tree_nar();
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
    encoder.write_all(&nar).unwrap();
    let server = TestServer::start();
    server.route("/tree.nar", vec![Reply::ok(&nar)]);
    server.route("/tree.nar.xz", vec![Reply::ok(&encoder.finish().unwrap())]);
    let (options, _log) = options();
    for path in ["/tree.nar", "/tree.nar.xz"] {
        let (_dir, out) = output();
        let outcome = fetchurl(
            &env(&[
                ("url", &server.url(path)),
                ("outputHash", TREE_NAR_SRI),
                ("outputHashMode", "recursive"),
                ("unpack", "1"),
            ]),
            &out,
            &options,
        )
        .unwrap_or_else(|error| panic!("{path}: {error}"));
        assert_eq!(outcome.hash.to_sri(), TREE_NAR_SRI);
        assert_eq!(fs::read(out.join("a")).unwrap(), b"hello\n");
        assert_eq!(fs::read_link(out.join("l")).unwrap(), PathBuf::from("a"));
        let mode = fs::metadata(out.join("bin/x"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }
}

#[test]
fn unpack_retries_a_truncated_nar_but_not_a_malformed_one() {
    let nar = tree_nar();
    let server = TestServer::start();
    server.route(
        "/cut.nar",
        vec![
            Reply::Truncated {
                declared: nar.len() as u64,
                body: nar[..nar.len() / 2].to_vec(),
            },
            Reply::ok(&nar),
        ],
    );
    server.route("/bad.nar", vec![Reply::ok(b"this is not a NAR at all")]);
    let (options, _log) = options();
    let fetch = |path: &str, out: &std::path::Path| {
        fetchurl(
            &env(&[
                ("url", &server.url(path)),
                ("outputHash", TREE_NAR_SRI),
                ("outputHashMode", "recursive"),
                ("unpack", "1"),
            ]),
            out,
            &options,
        )
    };
    let (_dir, out) = output();
    fetch("/cut.nar", &out).unwrap();
    assert_eq!(server.hits("/cut.nar"), 2);
    let (dir, out) = output();
    let error = fetch("/bad.nar", &out).unwrap_err();
    assert!(error.to_string().contains("NAR"), "{error}");
    assert_eq!(server.hits("/bad.nar"), 1);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn run_builtin_dispatches_on_the_builder_name() {
    let server = TestServer::start();
    server.route("/hello", vec![Reply::ok(HELLO)]);
    let (_dir, out) = output();
    let options = BuiltinOptions::default();
    let outcome = run_builtin(
        "builtin:fetchurl",
        &env(&[("url", &server.url("/hello")), ("outputHash", HELLO_SRI)]),
        &out,
        &options,
    )
    .unwrap();
    assert!(matches!(outcome, BuiltinOutcome::Fetched(_)));
    let error = run_builtin("builtin:buildenv", &BTreeMap::new(), &out, &options).unwrap_err();
    assert!(matches!(error, BuiltinError::UnknownBuilder(name) if name == "builtin:buildenv"));
}
