//! The configuration file as a user relies on it: `[[rewrite]]` rules send a fetch to another
//! server without changing any `.drv` or output path, `store-dir` and `store` set the store,
//! and a misspelt key is an error naming it. Fetches go to a small HTTP server the test runs
//! on 127.0.0.1; nothing else is contacted.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const CONTENT: &[u8] = b"fetched through a rewrite rule\n";

fn kiln(config: &Path, root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env_remove("KILN_PATH")
        .env_remove("KILN_STORE_DIR")
        .env_remove("KILN_STORE")
        .env_remove("KILN_CONFIG")
        .env("XDG_CONFIG_HOME", root.join("no-such-config-home"))
        .arg("--config")
        .arg(config)
        .arg("--store")
        .arg(root.join("store-root"));
    command
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Serves `CONTENT` at `/mirror/file.txt` and 404 elsewhere, for as long as the test runs;
/// returns the port. Counts nothing and keeps no state: each connection is one request.
fn serve_mirror() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let response: Vec<u8> = if request_line.starts_with("GET /mirror/file.txt ") {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    CONTENT.len()
                )
                .into_bytes();
                r.extend_from_slice(CONTENT);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            };
            let _ = stream.write_all(&response);
        }
    });
    port
}

fn sha256_hex(data: &[u8]) -> String {
    kiln_store::hash::Hash::sha256(data).to_hex()
}

#[test]
fn a_rewrite_rule_redirects_a_fetch_and_changes_no_path() {
    let tmp = tempfile::tempdir().unwrap();
    let port = serve_mirror();
    // The upstream URL points at a port nobody listens on: only the rewrite can succeed.
    let expr = format!(
        "(import <kiln> {{}}).fetchurl {{ url = \"http://127.0.0.1:9/upstream/file.txt\"; sha256 = \"{}\"; }}",
        sha256_hex(CONTENT)
    );
    let plain = tmp.path().join("plain.toml");
    std::fs::write(&plain, "").unwrap();
    let rewriting = tmp.path().join("rewriting.toml");
    std::fs::write(
        &rewriting,
        format!(
            "[[rewrite]]\nfrom = \"http://127.0.0.1:9/upstream/\"\nto = \"http://127.0.0.1:{port}/mirror/\"\n"
        ),
    )
    .unwrap();

    let drv_plain = ok(kiln(&plain, tmp.path())
        .args(["instantiate", "-E", &expr])
        .output()
        .unwrap());
    let drv_rewriting = ok(kiln(&rewriting, tmp.path())
        .args(["instantiate", "-E", &expr])
        .output()
        .unwrap());
    assert_eq!(
        drv_plain, drv_rewriting,
        "a rewrite rule must not change the derivation"
    );
    let out_path = ok(kiln(&plain, tmp.path())
        .args(["eval", "-E", &format!("({expr}).outPath")])
        .output()
        .unwrap());

    let built = ok(kiln(&rewriting, tmp.path())
        .args(["realise", "--no-out-link", "-E", &expr])
        .output()
        .unwrap());
    let logical_name = out_path
        .trim_matches('"')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        Path::new(&built).file_name().unwrap().to_str().unwrap(),
        logical_name,
        "the output path is the one computed without the rule"
    );
    assert_eq!(std::fs::read(&built).unwrap(), CONTENT);
}

#[test]
fn store_settings_come_from_the_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "store-dir = \"/nix/store\"\n").unwrap();
    let path = ok(kiln(&config, tmp.path())
        .args(["eval", "-E", "builtins.storeDir"])
        .output()
        .unwrap());
    assert_eq!(path, "\"/nix/store\"");
    // A flag wins over the file.
    let path = ok(kiln(&config, tmp.path())
        .args([
            "--store-dir",
            "/other/store",
            "eval",
            "-E",
            "builtins.storeDir",
        ])
        .output()
        .unwrap());
    assert_eq!(path, "\"/other/store\"");
}

#[test]
fn a_misspelt_key_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "alow-network = true\n").unwrap();
    let output = kiln(&config, tmp.path())
        .args(["eval", "-E", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("alow-network"), "{stderr}");
    assert!(stderr.contains("config.toml"), "{stderr}");
}

#[test]
fn max_unpack_size_bounds_builtin_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "max-unpack-size = 1000\n").unwrap();
    let expr = r#"(import <kiln> {}).layer { name = "big"; files = {
        "small" = "x";
        "large" = builtins.concatStringsSep "" (builtins.genList (_: "0123456789") 200);
      }; }"#;
    let output = kiln(&config, tmp.path())
        .args(["realise", "--no-out-link", "-E", expr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("entry `large"), "{stderr}");
    assert!(stderr.contains("limit of 1000 bytes"), "{stderr}");
    // Within the default limit the same layer unpacks.
    std::fs::write(&config, "").unwrap();
    ok(kiln(&config, tmp.path())
        .args(["realise", "--no-out-link", "-E", expr])
        .output()
        .unwrap());
}
