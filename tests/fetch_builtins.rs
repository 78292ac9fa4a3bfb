//! `builtins.fetchurl` and `builtins.fetchTarball` as a user meets them in `kiln eval`: the
//! store paths equal Nix's, a pinned path already in the store is used without a download, a
//! wrong hash is Nix's "hash mismatch" error at the call, tarballs (gzip and xz) lose their
//! single top-level directory, `[[rewrite]]` rules redirect the download, pure mode wants a
//! hash, and a store that cannot be written is a clear error. Downloads come from a small HTTP
//! server the test runs on 127.0.0.1; nothing else is contacted.
//!
//! The golden paths come from the oracle (Nix 2.8), with a chroot store so that its logical
//! store directory is `/nix/store`, serving the same files over `python3 -m http.server`:
//!
//! ```text
//! NIX_REMOTE='local?root=/tmp/oracle' nix-instantiate --eval -E 'builtins.fetchurl "http://127.0.0.1:PORT/x"'
//! NIX_REMOTE='local?root=/tmp/oracle' nix-instantiate --eval -E \
//!   'builtins.fetchurl { url = "http://127.0.0.1:PORT/x"; sha256 = "00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq"; name = "foo"; }'
//! NIX_REMOTE='local?root=/tmp/oracle' nix-instantiate --eval -E 'builtins.fetchTarball "http://127.0.0.1:PORT/t.tar.gz"'
//! NIX_REMOTE='local?root=/tmp/oracle' nix-instantiate --eval -E 'builtins.fetchTarball "http://127.0.0.1:PORT/t.tar.xz"'
//! NIX_REMOTE='local?root=/tmp/oracle' nix-instantiate --eval -E \
//!   'builtins.fetchTarball { url = "http://127.0.0.1:PORT/t.tar.xz"; name = "bar"; }'
//! nix-hash --type sha256 --base32 /tmp/oracle/nix/store/5wwdi6fps3hgkapi4f68j10xwpsvddf7-source
//! ```
//!
//! where `x` holds `hello\n` and the tarballs hold `top/a` (`a\n`), `top/sub/b` (`b\n`,
//! executable) and the symlink `top/link -> a`, as [`tarball`] makes them.
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const FILE_CONTENT: &[u8] = b"hello\n";
const FILE_SHA256: &str = "00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq";
const FILE_PATH: &str = "/nix/store/974pyy65p8annw3kp4ibcknbhz1pndwm-x";
const FILE_PATH_NAMED_FOO: &str = "/nix/store/w8r2kfwk48haw3v8l15jjjvwnhhavxc6-foo";
const TARBALL_NAR_SHA256: &str = "0f4vbsigakn8r8f0fazw8bky1jyw95jl04kckaif8h3yqzidck94";
const TARBALL_PATH: &str = "/nix/store/5wwdi6fps3hgkapi4f68j10xwpsvddf7-source";
const TARBALL_PATH_NAMED_BAR: &str = "/nix/store/jzsmyxcik4gq3p5ngg8270wyrgwf9h15-bar";
/// A port nobody listens on (discard): only a store hit or a rewrite can make a fetch work.
const DEAD_BASE: &str = "http://127.0.0.1:9";

/// Serves fixed files and counts the requests it answered.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

fn serve(files: HashMap<&'static str, Vec<u8>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let target = request_line.split_whitespace().nth(1).unwrap_or("");
            let response = match files.get(target) {
                Some(body) => {
                    let mut response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    response.extend_from_slice(body);
                    response
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    Server { base, requests }
}

/// The tarball the golden paths were made from, uncompressed.
fn tarball() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        header.set_uid(1000);
        header.set_gid(1000);
        if let Some(target) = link {
            header.set_link_name(target).unwrap();
        }
        builder.append_data(&mut header, path, data).unwrap();
    };
    add("top/", tar::EntryType::Directory, 0o755, b"", None);
    add("top/a", tar::EntryType::Regular, 0o644, b"a\n", None);
    add("top/link", tar::EntryType::Symlink, 0o777, b"", Some("a"));
    add("top/sub/", tar::EntryType::Directory, 0o755, b"", None);
    add("top/sub/b", tar::EntryType::Regular, 0o755, b"b\n", None);
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn standard_server() -> Server {
    let tar = tarball();
    serve(HashMap::from([
        ("/x", FILE_CONTENT.to_vec()),
        ("/t.tar.gz", gzip(&tar)),
        ("/t.tar.xz", xz(&tar)),
        // Two top-level entries: not a source tarball.
        ("/two.tar.gz", gzip(&two_top_level_entries())),
    ]))
}

fn two_top_level_entries() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for name in ["one", "two"] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(1);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1);
        builder.append_data(&mut header, name, &b"x"[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `kiln` with an isolated store (logical directory `/nix/store`) and configuration.
fn kiln(root: &Path, config: &str) -> Command {
    let config_file = root.join("config.toml");
    std::fs::write(&config_file, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env_remove("KILN_PATH")
        .env_remove("KILN_STORE_DIR")
        .env_remove("KILN_STORE")
        .env("KILN_CONFIG", &config_file)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .arg("--store")
        .arg(root.join("store-root"))
        .args(["--store-dir", "/nix/store"]);
    command
}

fn eval(root: &Path, expr: &str) -> Output {
    kiln(root, "").args(["eval", "-E", expr]).output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "kiln failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn failure(output: Output) -> String {
    assert!(!output.status.success(), "kiln should have failed");
    String::from_utf8(output.stderr).unwrap()
}

fn quoted(path: &str) -> String {
    format!("\"{path}\"")
}

#[test]
fn fetchurl_paths_equal_nix_and_carry_their_context() {
    let tmp = tempfile::tempdir().unwrap();
    let server = standard_server();
    let base = &server.base;
    assert_eq!(
        ok(eval(tmp.path(), &format!("builtins.fetchurl \"{base}/x\""))),
        quoted(FILE_PATH)
    );
    assert_eq!(
        ok(eval(
            tmp.path(),
            &format!(
                "builtins.fetchurl {{ url = \"{base}/x\"; sha256 = \"{FILE_SHA256}\"; name = \"foo\"; }}"
            )
        )),
        quoted(FILE_PATH_NAMED_FOO)
    );
    let context = ok(kiln(tmp.path(), "")
        .args([
            "eval",
            "--json",
            "--strict",
            "-E",
            &format!("builtins.getContext (builtins.fetchurl \"{base}/x\")"),
        ])
        .output()
        .unwrap());
    assert_eq!(context, format!("{{\"{FILE_PATH}\":{{\"path\":true}}}}"));
    let stored = tmp.path().join("store-root/store").join(&FILE_PATH[11..]);
    assert_eq!(std::fs::read(stored).unwrap(), FILE_CONTENT);
}

#[test]
fn a_pinned_path_in_the_store_is_used_without_a_download() {
    let tmp = tempfile::tempdir().unwrap();
    let server = standard_server();
    let pinned = |base: &str| {
        format!("builtins.fetchurl {{ url = \"{base}/x\"; sha256 = \"{FILE_SHA256}\"; }}")
    };
    assert_eq!(
        ok(eval(tmp.path(), &pinned(&server.base))),
        quoted(FILE_PATH)
    );
    let served = server.requests.load(Ordering::SeqCst);
    assert_eq!(served, 1);
    // Nobody listens there now: the store must answer.
    assert_eq!(ok(eval(tmp.path(), &pinned(DEAD_BASE))), quoted(FILE_PATH));
    let tarball = |base: &str| {
        format!("builtins.fetchTarball {{ url = \"{base}/t.tar.xz\"; sha256 = \"{TARBALL_NAR_SHA256}\"; }}")
    };
    assert_eq!(
        ok(eval(tmp.path(), &tarball(&server.base))),
        quoted(TARBALL_PATH)
    );
    assert_eq!(
        ok(eval(tmp.path(), &tarball(DEAD_BASE))),
        quoted(TARBALL_PATH)
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), served + 1);
}

#[test]
fn a_wrong_hash_is_a_hash_mismatch_at_the_call() {
    let tmp = tempfile::tempdir().unwrap();
    let server = standard_server();
    let zeros = "0000000000000000000000000000000000000000000000000000";
    let stderr = failure(eval(
        tmp.path(),
        &format!(
            "builtins.fetchurl {{ url = \"{}/x\"; sha256 = \"{zeros}\"; }}",
            server.base
        ),
    ));
    let expected = format!(
        "error: hash mismatch in file downloaded from '{}/x':\n  specified: sha256:{zeros}\n  got:       sha256:{FILE_SHA256}\n",
        server.base
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(stderr.contains("«string»:1:1"), "no position: {stderr}");
    let stderr = failure(eval(
        tmp.path(),
        &format!(
            "builtins.fetchTarball {{ url = \"{}/t.tar.gz\"; sha256 = \"{zeros}\"; }}",
            server.base
        ),
    ));
    assert!(
        stderr.contains(&format!("got:       sha256:{TARBALL_NAR_SHA256}")),
        "{stderr}"
    );
}

#[test]
fn tarballs_lose_their_top_level_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let server = standard_server();
    let base = &server.base;
    for archive in ["t.tar.gz", "t.tar.xz"] {
        assert_eq!(
            ok(eval(
                tmp.path(),
                &format!("builtins.fetchTarball \"{base}/{archive}\"")
            )),
            quoted(TARBALL_PATH),
            "{archive}"
        );
    }
    assert_eq!(
        ok(eval(
            tmp.path(),
            &format!("builtins.fetchTarball {{ url = \"{base}/t.tar.xz\"; name = \"bar\"; }}")
        )),
        quoted(TARBALL_PATH_NAMED_BAR)
    );
    let unpacked = tmp
        .path()
        .join("store-root/store")
        .join(&TARBALL_PATH[11..]);
    assert_eq!(std::fs::read(unpacked.join("sub/b")).unwrap(), b"b\n");
    assert_eq!(
        std::fs::read_link(unpacked.join("link")).unwrap(),
        Path::new("a")
    );
    // The tree is readable where the evaluator sees it, under the logical store directory.
    let read_back = format!(
        "let t = builtins.fetchTarball \"{base}/t.tar.gz\"; in [ (builtins.readFile (t + \"/sub/b\")) (builtins.attrNames (builtins.readDir t)) ]"
    );
    assert_eq!(
        ok(kiln(tmp.path(), "")
            .args(["eval", "--strict", "-E", &read_back])
            .output()
            .unwrap()),
        "[ \"b\\n\" [ \"a\" \"link\" \"sub\" ] ]"
    );
    let stderr = failure(eval(
        tmp.path(),
        &format!("builtins.fetchTarball \"{base}/two.tar.gz\""),
    ));
    assert!(
        stderr.contains(&format!(
            "tarball '{base}/two.tar.gz' contains an unexpected number of top-level files"
        )),
        "{stderr}"
    );
}

#[test]
fn a_rewrite_rule_redirects_the_download() {
    let tmp = tempfile::tempdir().unwrap();
    let server = standard_server();
    let config = format!(
        "[[rewrite]]\nfrom = \"{DEAD_BASE}/upstream/\"\nto = \"{}/\"\n",
        server.base
    );
    let output = kiln(tmp.path(), &config)
        .args([
            "eval",
            "-E",
            &format!("builtins.fetchurl \"{DEAD_BASE}/upstream/x\""),
        ])
        .output()
        .unwrap();
    assert_eq!(ok(output), quoted(FILE_PATH));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn arguments_and_pure_mode_are_checked_as_nix_checks_them() {
    let tmp = tempfile::tempdir().unwrap();
    let server = standard_server();
    let stderr = failure(
        kiln(tmp.path(), "")
            .args([
                "--pure-eval",
                "eval",
                "-E",
                &format!("builtins.fetchTarball \"{}/t.tar.gz\"", server.base),
            ])
            .output()
            .unwrap(),
    );
    assert!(
        stderr.starts_with(
            "error: in pure evaluation mode, 'fetchTarball' requires a 'sha256' argument"
        ),
        "{stderr}"
    );
    let stderr = failure(eval(
        tmp.path(),
        &format!(
            "builtins.fetchurl {{ url = \"{}/x\"; foo = 1; }}",
            server.base
        ),
    ));
    assert!(
        stderr.starts_with("error: unsupported argument 'foo' to 'fetchurl'"),
        "{stderr}"
    );
    let stderr = failure(eval(tmp.path(), "builtins.fetchurl { }"));
    assert!(
        stderr.starts_with("error: 'url' argument required"),
        "{stderr}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn without_a_writable_store_a_fetch_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let server = standard_server();
    // A regular file where the store root should be: nothing can be created below it.
    let blocked = tmp.path().join("not-a-directory");
    std::fs::write(&blocked, "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env_remove("KILN_CONFIG")
        .env("XDG_CONFIG_HOME", tmp.path().join("no-config"))
        .arg("--store")
        .arg(&blocked)
        .args([
            "eval",
            "-E",
            &format!("builtins.fetchurl \"{}/x\"", server.base),
        ])
        .output()
        .unwrap();
    let stderr = failure(output);
    assert!(
        stderr.contains(&format!(
            "cannot download '{}/x': downloads need a writable store",
            server.base
        )),
        "{stderr}"
    );
    // Evaluation without fetches still works on that store.
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env_remove("KILN_CONFIG")
        .env("XDG_CONFIG_HOME", tmp.path().join("no-config"))
        .arg("--store")
        .arg(&blocked)
        .args(["eval", "-E", "1 + 1"])
        .output()
        .unwrap();
    assert_eq!(ok(output), "2");
}
