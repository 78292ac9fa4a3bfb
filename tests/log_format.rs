//! `--log-format`: the JSON events of `kiln realise` and `kiln copy` (every line of standard
//! error parses, every `start` has one `stop` after it, log lines and progress belong to a
//! running activity, a failed build says so) on a small graph with one failing build and a
//! `builtin:fetchurl` download from a server on 127.0.0.1; the `line` and `raw` forms on a
//! pipe. Needs busybox and user namespaces (under CI=true their absence fails the tests).
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::sandbox::sandbox_ready;
use serde_json::Value;

/// The body the test server sends for every request.
const BODY: &str = "downloaded by builtin:fetchurl\n";

/// Serves [`BODY`] on 127.0.0.1 to every connection until the test ends; returns its URL.
fn serve_body() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                BODY.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/file.txt")
}

/// `ok` and `dl` build, `bad` fails, `after` depends on `ok` and `bad` (so never starts).
fn graph(url: &str) -> String {
    format!(
        r#"
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {{
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  }};
  sh = name: script: derivation {{
    inherit name;
    system = builtins.currentSystem;
    builder = "${{busybox}}/busybox";
    args = [ "sh" "-c" ("set -e; bb=${{busybox}}/busybox; " + script) ];
  }};
  ok = sh "ok" "echo line one of ok; echo line two of ok; $bb mkdir $out; echo $bb > $out/uses";
  bad = sh "bad" "echo bad is about to fail; exit 3";
  dl = derivation {{
    name = "dl";
    builder = "builtin:fetchurl";
    system = "builtin";
    url = "{url}";
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "{body}";
  }};
in {{
  inherit ok bad dl;
  after = sh "after" "$bb ls ${{ok}} ${{bad}} > $out";
}}
"#,
        body = BODY.replace('\n', "\\n")
    )
}

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn kiln(&self, store: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--store")
            .arg(self.path().join(store))
            .args(args)
            .current_dir(self.path())
            .env_remove("KILN_STORE_DIR")
            .env_remove("KILN_LOG_FORMAT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Every line of `stderr` as a JSON object (panics naming a line that is not one).
fn parse_events(stderr: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(stderr.to_vec()).unwrap();
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nall of it:\n{text}"));
            assert!(event["action"].is_string(), "no action: {line}");
            event
        })
        .collect()
}

/// Checks the pairing rules and returns the `start` events by id.
fn check_pairing(events: &[Value]) -> BTreeMap<u64, Value> {
    let mut started = BTreeMap::new();
    let mut stopped = BTreeSet::new();
    for event in events {
        let action = event["action"].as_str().unwrap();
        let id = event["id"].as_u64();
        match action {
            "start" => {
                let id = id.expect("a start has an id");
                assert!(id > 0);
                assert!(event["type"].is_string() && event["text"].is_string());
                let parent = event["parent"].as_u64().expect("a start has a parent");
                assert!(
                    parent == 0 || (started.contains_key(&parent) && !stopped.contains(&parent)),
                    "parent {parent} is not running: {event}"
                );
                assert!(
                    started.insert(id, event.clone()).is_none(),
                    "id {id} started twice"
                );
            }
            "stop" => {
                let id = id.expect("a stop has an id");
                assert!(started.contains_key(&id), "stop before start: {event}");
                assert!(stopped.insert(id), "id {id} stopped twice");
            }
            "progress" | "log" | "result" => {
                let id = id.expect("has an id");
                assert!(
                    started.contains_key(&id) && !stopped.contains(&id),
                    "{action} of an activity that is not running: {event}"
                );
            }
            "msg" => {
                assert!(["error", "warn", "info"].contains(&event["level"].as_str().unwrap()));
                assert!(event["msg"].is_string());
            }
            other => panic!("unknown action {other}: {event}"),
        }
    }
    let unstopped: Vec<_> = started.keys().filter(|id| !stopped.contains(id)).collect();
    assert!(unstopped.is_empty(), "never stopped: {unstopped:?}");
    started
}

/// The start of the build activity whose `name` is `name`.
fn build_named<'a>(starts: &'a BTreeMap<u64, Value>, name: &str) -> (u64, &'a Value) {
    let found: Vec<_> = starts
        .iter()
        .filter(|(_, e)| e["type"] == "build" && e["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "builds named {name}: {found:?}");
    (*found[0].0, found[0].1)
}

fn of_id<'a>(events: &'a [Value], id: u64, action: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["id"].as_u64() == Some(id) && e["action"] == action)
        .collect()
}

#[test]
fn json_events_of_a_graph_with_a_failing_build_parse_and_pair_up() {
    if !sandbox_ready() {
        return;
    }
    let work = Work::new();
    std::fs::write(work.path().join("graph.nix"), graph(&serve_body())).unwrap();
    let output = work.kiln(
        "store",
        &[
            "--log-format",
            "json",
            "realise",
            "--keep-going",
            "-j",
            "2",
            "graph.nix",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = parse_events(&output.stderr);
    let starts = check_pairing(&events);

    let (ok, _) = build_named(&starts, "ok");
    let lines: Vec<_> = of_id(&events, ok, "log")
        .iter()
        .map(|e| e["line"].as_str().unwrap().to_owned())
        .collect();
    assert!(lines.contains(&"line one of ok".to_owned()), "{lines:?}");
    assert!(lines.contains(&"line two of ok".to_owned()), "{lines:?}");
    let result = of_id(&events, ok, "result");
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["status"], "built");
    assert!(result[0]["durationMs"].is_u64());

    let (bad, bad_start) = build_named(&starts, "bad");
    assert!(bad_start["drv"].as_str().unwrap().ends_with("-bad.drv"));
    let result = of_id(&events, bad, "result");
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["status"], "failed");
    assert!(
        result[0]["error"].as_str().unwrap().contains("exit code 3"),
        "{}",
        result[0]
    );

    // The build that depends on the failed one never starts.
    assert!(!starts
        .values()
        .any(|e| e["type"] == "build" && e["name"] == "after"));

    // The download: an activity under its build, with progress up to the whole body.
    let (dl, _) = build_named(&starts, "dl");
    let downloads: Vec<_> = starts
        .iter()
        .filter(|(_, e)| e["type"] == "download")
        .collect();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    let (download, start) = downloads[0];
    assert_eq!(start["parent"].as_u64(), Some(dl));
    assert!(start["url"].as_str().unwrap().ends_with("/file.txt"));
    let progress = of_id(&events, *download, "progress");
    let last = progress.last().expect("progress events");
    assert_eq!(last["done"].as_u64(), Some(BODY.len() as u64));
    assert_eq!(last["expected"].as_u64(), Some(BODY.len() as u64));
    assert_eq!(of_id(&events, dl, "result")[0]["status"], "built");

    // The failure report closes the stream as an error message.
    let last = events.last().unwrap();
    assert_eq!(last["action"], "msg");
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("1 build failed"),
        "{last}"
    );
}

#[test]
fn json_events_of_copy_to_and_from_a_cache_pair_up() {
    if !sandbox_ready() {
        return;
    }
    let work = Work::new();
    std::fs::write(
        work.path().join("graph.nix"),
        graph("http://127.0.0.1:9/unused"),
    )
    .unwrap();
    let built = work.kiln("store", &["realise", "-A", "ok", "graph.nix"]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let path = String::from_utf8(built.stdout).unwrap().trim().to_owned();
    let cache = format!("file://{}", work.path().join("cache").display());
    let output = work.kiln(
        "store",
        &[
            "--log-format",
            "json",
            "copy",
            "--to",
            &cache,
            "--compression",
            "zstd",
            &path,
        ],
    );
    assert!(output.status.success());
    let events = parse_events(&output.stderr);
    let starts = check_pairing(&events);
    let copies: Vec<_> = starts.values().filter(|e| e["type"] == "copy").collect();
    // The output and busybox, its only reference.
    assert_eq!(copies.len(), 2, "{copies:?}");
    for (id, start) in &starts {
        assert_eq!(of_id(&events, *id, "result")[0]["status"], "copied");
        assert!(start["to"].as_str().unwrap().starts_with("file://"));
    }

    // Fetching it into a second store (signatures not required for this check).
    let logical = format!(
        "/kiln/store/{}",
        PathBuf::from(&path).file_name().unwrap().to_string_lossy()
    );
    let output = work.kiln(
        "other-store",
        &[
            "--log-format",
            "json",
            "--option",
            "require-sigs",
            "false",
            "copy",
            "--from",
            &cache,
            &logical,
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = parse_events(&output.stderr);
    let starts = check_pairing(&events);
    let fetched: Vec<_> = starts
        .iter()
        .filter(|(_, e)| e["type"] == "substitute")
        .collect();
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    for (id, start) in fetched {
        assert_eq!(of_id(&events, *id, "result")[0]["status"], "fetched");
        assert!(start["narSize"].as_u64().unwrap() > 0);
    }
}

#[test]
fn a_pipe_gets_lines_and_raw_gets_the_builders_output() {
    if !sandbox_ready() {
        return;
    }
    let work = Work::new();
    std::fs::write(
        work.path().join("graph.nix"),
        graph("http://127.0.0.1:9/unused"),
    )
    .unwrap();
    // No flag, standard error a pipe: lines, no bar drawing, no builder output.
    let output = work.kiln("store", &["realise", "-A", "ok", "graph.nix"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("building '/kiln/store/"), "{text}");
    assert!(text.contains("built '/kiln/store/"), "{text}");
    assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains("line one of ok"), "{text}");
    // `bar` asked for on a pipe: lines too.
    let output = work.kiln(
        "store",
        &["--log-format", "bar", "realise", "-A", "bad", "graph.nix"],
    );
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("building '/kiln/store/"), "{text}");
    assert!(!text.contains('\r'), "{text:?}");
    // raw: the builder's own lines, as they are.
    let output = work.kiln(
        "store",
        &[
            "--log-format",
            "raw",
            "realise",
            "--check",
            "-A",
            "ok",
            "graph.nix",
        ],
    );
    assert!(output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(
        text.lines().any(|l| l == "line one of ok") && !text.contains("building '"),
        "{text}"
    );
}

#[test]
fn evaluation_traces_and_warnings_follow_the_log_format() {
    let work = Work::new();
    let expr = r#"builtins.trace "seen" (builtins.warn "careful" 1)"#;
    let output = work.kiln("store", &["--log-format", "json", "eval", "-E", expr]);
    assert!(output.status.success(), "{output:?}");
    let events = parse_events(&output.stderr);
    let messages: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["level"].as_str().unwrap(), e["msg"].as_str().unwrap()))
        .collect();
    assert_eq!(
        messages,
        [
            ("info", "trace: seen"),
            ("warn", "evaluation warning: careful")
        ]
    );
    let output = work.kiln("store", &["eval", "-E", expr]);
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "trace: seen\nevaluation warning: careful\n"
    );
}
