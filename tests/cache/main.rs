//! Binary caches end to end, with Nix 2.8 as the oracle: caches that `kiln copy --to` writes
//! (file:// and over HTTP to a small test server on 127.0.0.1) are accepted by `nix copy --from`
//! with signature checking on and by `nix path-info --sigs`; keys made by either tool sign for
//! the other. The builds need busybox and user namespaces, the checks Nix: under CI=true their
//! absence fails the tests, elsewhere the tests print why they skip.
//!
//! `pushing`: caches kiln writes, read by Nix; `substituting`: caches `realise` reads.
#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::sandbox::sandbox_ready;
use common::{oracle_available, OracleHome};

/// The logical store directory kiln and Nix share in these tests.
const NIX_STORE: &str = "/nix/store";

/// A three-path closure: an output referring to a `toFile` text and to busybox.
const CLOSURE: &str = r#"
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  };
  dep = builtins.toFile "dep.txt" "the dependency\n";
in derivation {
  name = "cached";
  system = builtins.currentSystem;
  builder = "${busybox}/busybox";
  args = [ "sh" "-c" "$0 mkdir $out; echo ${dep} > $out/refs; echo $0 >> $out/refs; $0 cp $0 $out/tool" "${busybox}/busybox" ];
}
"#;

/// A kiln store (logical directory /nix/store) and a working directory.
struct Kiln {
    dir: tempfile::TempDir,
}

impl Kiln {
    fn new() -> Kiln {
        let kiln = Kiln {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(kiln.work()).unwrap();
        kiln
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store-root")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .arg("--store")
            .arg(self.root())
            .arg("--store-dir")
            .arg(NIX_STORE)
            .arg("--config")
            .arg(self.work().join("config.toml"))
            .args(args)
            .current_dir(self.work())
            .env_remove("KILN_STORE_DIR")
            .stdin(Stdio::null());
        if !self.work().join("config.toml").exists() {
            std::fs::write(self.work().join("config.toml"), "").unwrap();
        }
        command
    }

    fn kiln(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Builds [`CLOSURE`] and returns the logical output path.
    fn build_closure(&self) -> String {
        std::fs::write(self.work().join("closure.nix"), CLOSURE).unwrap();
        let printed = ok(&self.kiln(&["realise", "--no-out-link", "closure.nix"]));
        let physical = PathBuf::from(printed.trim());
        let base = physical.file_name().unwrap().to_str().unwrap();
        format!("{NIX_STORE}/{base}")
    }

    /// `path-info --json` of the closure of `path`: path → (narHash, references).
    fn closure_info(&self, path: &str) -> BTreeMap<String, (String, Vec<String>)> {
        let json = ok(&self.kiln(&["path-info", "--json", "-r", path]));
        path_info_map(&json)
    }
}

/// Reads `path-info --json` output (kiln's or Nix's) into path → (narHash as SRI, sorted
/// references).
fn path_info_map(json: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let entries: Vec<serde_json::Value> = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(path, mut info)| {
                info["path"] = serde_json::Value::String(path);
                info
            })
            .collect(),
        other => panic!("unexpected path-info JSON: {other}"),
    };
    entries
        .into_iter()
        .map(|info| {
            let path = info["path"].as_str().unwrap().to_owned();
            let hash = info["narHash"].as_str().unwrap().to_owned();
            let mut references: Vec<String> = info["references"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            references.sort();
            (path, (hash, references))
        })
        .collect()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "command succeeded but should have failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Nix with its own state and a chroot store `local?root=…` whose logical directory is
/// /nix/store.
struct Nix {
    home: OracleHome,
}

impl Nix {
    fn new() -> Nix {
        Nix {
            home: OracleHome::new(),
        }
    }

    fn store_uri(&self) -> String {
        format!("local?root={}", self.home.path().join("root").display())
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = self.home.nix_program(program, NIX_STORE, &self.store_uri());
        command.args(args).stdin(Stdio::null());
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args).output().unwrap()
    }
}

fn ready(test: &str) -> bool {
    sandbox_ready() && oracle_available(test)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// A graph of two builds: `top` copies the output of `stage` at build time (no reference to
/// it) and refers to a `toFile` text and to busybox.
const TWO_LEVEL: &str = r#"
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  };
  sh = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "${busybox}/busybox";
    args = [ "sh" "-c" script "${busybox}/busybox" ];
  };
  stage = sh "stage" "echo made at build time > $out";
  dep = builtins.toFile "dep.txt" "the dependency\n";
in sh "top" "$0 mkdir $out; $0 cat ${stage} > $out/copied; echo ${dep} > $out/refs; echo $0 >> $out/refs"
"#;

impl Kiln {
    /// Writes [`TWO_LEVEL`] and the configuration, and realises it; returns the logical
    /// output path.
    fn realise_two_level(&self, config: &str) -> (String, Output) {
        std::fs::write(self.work().join("two.nix"), TWO_LEVEL).unwrap();
        std::fs::write(self.work().join("config.toml"), config).unwrap();
        let output = self.kiln(&["realise", "--no-out-link", "two.nix"]);
        let printed = ok(&output);
        let physical = PathBuf::from(printed.trim());
        let base = physical.file_name().unwrap().to_str().unwrap();
        (format!("{NIX_STORE}/{base}"), output)
    }

    /// How many builds ran in this store (their logs).
    fn builds_run(&self) -> usize {
        walk_if_exists(&self.root().join("var/log/drvs"))
            .iter()
            .filter(|p| p.is_file())
            .count()
    }

    fn generate_key(&self, name: &str) -> (String, String) {
        let file = format!("{name}.sec");
        ok(&self.kiln(&["key", "generate", name, "-o", &file]));
        let public = std::fs::read_to_string(self.work().join(format!("{file}.pub"))).unwrap();
        (
            self.work().join(file).to_str().unwrap().to_owned(),
            public.trim().to_owned(),
        )
    }
}

fn walk_if_exists(dir: &Path) -> Vec<PathBuf> {
    if dir.exists() {
        walk(dir)
    } else {
        Vec::new()
    }
}

/// A small HTTP/1.1 file server on 127.0.0.1 for a directory: GET, HEAD and PUT.
pub struct TestServer {
    dir: tempfile::TempDir,
    port: u16,
    puts: Arc<AtomicUsize>,
    gets: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let root = dir.path().to_owned();
        let puts = Arc::new(AtomicUsize::new(0));
        let gets = Arc::new(Mutex::new(Vec::new()));
        let (thread_puts, thread_gets) = (puts.clone(), gets.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, puts, gets) = (root.clone(), thread_puts.clone(), thread_gets.clone());
                std::thread::spawn(move || serve(stream, &root, &puts, &gets));
            }
        });
        TestServer {
            dir,
            port,
            puts,
            gets,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }

    pub fn gets(&self) -> Vec<String> {
        self.gets.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, root: &Path, puts: &AtomicUsize, gets: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let relative = target.strip_prefix("/cache/").unwrap_or("");
        let file = root.join(relative);
        let safe = !relative.is_empty() && !relative.split('/').any(|c| c == ".." || c.is_empty());
        let response = match method.as_str() {
            "PUT" if safe => {
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, body).unwrap();
                puts.fetch_add(1, Ordering::SeqCst);
                (200, Vec::new())
            }
            "GET" | "HEAD" if safe => {
                gets.lock().unwrap().push(format!("{method} {relative}"));
                match std::fs::read(&file) {
                    Ok(bytes) => (200, bytes),
                    Err(_) => (404, Vec::new()),
                }
            }
            _ => (400, Vec::new()),
        };
        let (status, body) = response;
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            _ => "Bad Request",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method != "HEAD" && writer.write_all(&body).is_err() {
            return;
        }
    }
}

mod pushing;
mod substituting;
