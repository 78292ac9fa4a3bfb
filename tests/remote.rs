//! Remote execution end to end against a real REAPI v2 server: BuildGrid 0.4.4 (from PyPI,
//! with PostgreSQL), started on 127.0.0.1 by each test through `remote/tests/buildgrid/start.sh`,
//! with kiln's own bot (`kiln remote-worker`) as its worker. The server needs the virtual
//! environment `.ci/run` makes (`target/buildgrid-venv`, or `$KILN_BUILDGRID_VENV`) and Debian's
//! PostgreSQL; the builds need busybox and user namespaces. Under CI=true their absence fails
//! the tests, elsewhere the tests print why they skip.
mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::sandbox::sandbox_ready;

/// One cluster at a time: each is a PostgreSQL, a Python server and a bot on two cores.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv() -> PathBuf {
    std::env::var_os("KILN_BUILDGRID_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/buildgrid-venv"))
}

/// Whether BuildGrid and PostgreSQL can run here (see the module doc).
fn server_ready() -> bool {
    let postgres = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .any(|dir| dir.path().join("bin/initdb").exists())
        })
        .unwrap_or(false);
    let missing = if !venv().join("bin/bgd").exists() {
        Some(format!(
            "BuildGrid is not installed in {} (.ci/run installs it)",
            venv().display()
        ))
    } else if !postgres {
        Some("PostgreSQL (Debian's postgresql) is not installed".to_owned())
    } else {
        None
    };
    match missing {
        None => true,
        Some(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and {reason}")
        }
        Some(reason) => {
            eprintln!("skipping: {reason}");
            false
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap()
}

/// A BuildGrid server, its database and (optionally) kiln's bot, stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    worker: Option<Child>,
}

impl Cluster {
    fn start(with_worker: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let status = Command::new("bash")
            .arg(repo_root().join("remote/tests/buildgrid/start.sh"))
            .arg(venv())
            .arg(dir.path().join("server"))
            .arg(port.to_string())
            .arg(free_port().to_string())
            .status()
            .unwrap();
        let mut cluster = Cluster {
            dir,
            port,
            worker: None,
        };
        assert!(
            status.success(),
            "start.sh failed: {}",
            cluster.server_log()
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "BuildGrid did not listen on {port}: {}",
                cluster.server_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if with_worker {
            cluster.start_worker();
        }
        cluster
    }

    fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server/server.log")).unwrap_or_default()
    }

    fn worker_log_path(&self) -> PathBuf {
        self.dir.path().join("worker.log")
    }

    fn start_worker(&mut self) {
        let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
        let path = format!(
            "{}:{}",
            kiln.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(self.worker_log_path()).unwrap();
        let child = Command::new(&kiln)
            .args([
                "remote-worker",
                "-j",
                "2",
                "--executor",
                &self.url(),
                "--work-dir",
            ])
            .arg(self.dir.path().join("worker"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.worker = Some(child);
    }

    fn worker_dir(&self) -> PathBuf {
        self.dir.path().join("worker")
    }

    fn worker_log(&self) -> String {
        std::fs::read_to_string(self.worker_log_path()).unwrap_or_default()
    }

    /// Kills the bot (as a crash would) and starts a new one on the same work directory; its
    /// log starts afresh.
    fn restart_worker(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            worker.kill().unwrap();
            worker.wait().unwrap();
        }
        self.start_worker();
    }

    /// How many actions the bot has executed.
    fn executed(&self) -> usize {
        std::fs::read_to_string(self.worker_log_path())
            .unwrap_or_default()
            .matches("executing action")
            .count()
    }

    /// Kills the server (not the database) at once, as a crash would.
    fn kill_server(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("server/server.pid")).unwrap();
        Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        let _ = Command::new("bash")
            .arg(repo_root().join("remote/tests/buildgrid/stop.sh"))
            .arg(self.dir.path().join("server"))
            .status();
    }
}

/// A store root and a working directory of one client.
struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn new() -> Client {
        let client = Client {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(client.dir.path().join("config.toml"), "").unwrap();
        client
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store-root")
    }

    fn kiln(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("--store")
            .arg(self.root())
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("KILN_STORE_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Writes the graph's expression and its large source; returns the expression's path.
    fn write_graph(&self, salt: &str) -> String {
        let large: Vec<u8> = (0..6u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(self.dir.path().join("large.bin"), large).unwrap();
        self.write("graph.nix", &graph(salt))
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// `realise FILE` (with `--remote URL` when given); the output and its printed paths.
    fn realise(&self, file: &str, remote: Option<&str>) -> (Output, Vec<String>) {
        let mut args = vec!["realise", file, "--no-out-link"];
        if let Some(url) = remote {
            args.extend(["--remote", url]);
        }
        let output = self.kiln(&args);
        let paths = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        (output, paths)
    }

    /// `path-info -r --json` of a physical output path: (path, NAR hash) of its closure.
    fn closure_hashes(&self, physical: &str) -> Vec<(String, String)> {
        let output = self.kiln(&["path-info", "-r", "--json", physical]);
        assert!(output.status.success(), "{}", stderr(&output));
        let infos: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut hashes: Vec<(String, String)> = infos
            .as_array()
            .unwrap()
            .iter()
            .map(|info| {
                (
                    info["path"].as_str().unwrap().to_owned(),
                    info["narHash"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        hashes.sort();
        hashes
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Two independent builds and one that reads both; `left` holds an absolute symlink (which
/// BuildGrid refuses in a tree: outputs travel as NARs), `right` reads a 6 MiB source and
/// writes a 6 MiB output (larger than BuildGrid's 4 MiB batches: both go through ByteStream).
/// `salt` keeps each test's actions its own. The source is written next to the expression.
fn graph(salt: &str) -> String {
    format!(
        r#"
let
  large = builtins.path {{ name = "large-source"; path = ./large.bin; }};
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {{
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  }};
  sh = "${{busybox}}/busybox";
  mk = name: script: derivation {{
    inherit name;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" script ];
    salt = "{salt}";
  }};
  left = mk "left" "${{sh}} mkdir $out; echo left > $out/value; ${{sh}} ln -s /etc/passwd $out/absolute; ${{sh}} ln -s ${{sh}} $out/tool";
  right = mk "right" "${{sh}} mkdir $out; echo right > $out/value; ${{sh}} cat ${{large}} > $out/large; echo more >> $out/large";
in mk "both" "${{sh}} mkdir $out; ${{sh}} cat ${{left}}/value ${{right}}/value > $out/both; ${{sh}} ln -s ${{left}} $out/left; echo the both builder ran >&2"
"#
    )
}

#[test]
fn remote_realise_matches_local_and_the_action_cache_serves_a_wiped_store() {
    if !sandbox_ready() || !server_ready() {
        return;
    }
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = Cluster::start(true);
    let local = Client::new();
    let file = local.write_graph("cache");
    let (output, local_paths) = local.realise(&file, None);
    assert!(
        output.status.success(),
        "local realise: {}",
        stderr(&output)
    );
    let local_hashes = local.closure_hashes(&local_paths[0]);

    let remote = Client::new();
    let file = remote.write_graph("cache");
    let (output, remote_paths) = remote.realise(&file, Some(&cluster.url()));
    assert!(
        output.status.success(),
        "remote realise: {}\nserver: {}",
        stderr(&output),
        cluster.server_log()
    );
    let logical = |physical: &str| Path::new(physical).file_name().unwrap().to_owned();
    assert_eq!(logical(&remote_paths[0]), logical(&local_paths[0]));
    assert_eq!(remote.closure_hashes(&remote_paths[0]), local_hashes);
    assert_eq!(cluster.executed(), 3, "the bot runs each of the 3 builds");
    assert!(
        stderr(&output).contains("3 built on the cluster, 0 from its action cache"),
        "{}",
        stderr(&output)
    );
    // The build log is kept locally, as a local build's.
    let log = remote.kiln(&["log", &remote_paths[0]]);
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("the both builder ran"),
        "kiln log: {}{}",
        String::from_utf8_lossy(&log.stdout),
        stderr(&log)
    );

    // A wiped store: every action is answered by the ActionCache, nothing executes.
    std::fs::remove_dir_all(remote.root()).unwrap();
    let (output, again) = remote.realise(&file, Some(&cluster.url()));
    assert!(
        output.status.success(),
        "second realise: {}",
        stderr(&output)
    );
    assert_eq!(again, remote_paths);
    assert_eq!(remote.closure_hashes(&again[0]), local_hashes);
    assert_eq!(
        cluster.executed(),
        3,
        "the server executed nothing the second time"
    );
    assert!(
        stderr(&output)
            .contains("0 built on the cluster, 3 from its action cache, 0 bytes uploaded"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_failed_remote_build_reports_its_log_and_escapes_fail_remotely_as_locally() {
    if !sandbox_ready() || !server_ready() {
        return;
    }
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = Cluster::start(true);
    let client = Client::new();
    let failing = client.write(
        "failing.nix",
        r#"
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path { name = "busybox"; path = binDir; filter = path: type: baseNameOf path == "busybox"; };
in derivation {
  name = "failing";
  system = builtins.currentSystem;
  builder = "${busybox}/busybox";
  args = [ "sh" "-c" "echo remote-failure-marker; exit 3" ];
}
"#,
    );
    let (output, _) = client.realise(&failing, Some(&cluster.url()));
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("remote-failure-marker"), "{text}");
    assert!(text.contains("remote cluster with exit code"), "{text}");

    // A host file outside the store, and the server's own port: neither is reachable from a
    // build, here or on the cluster.
    let secret = client.write("host-secret", "not for builds\n");
    let escape = client.write(
        "escape.nix",
        &format!(
            r#"
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {{ name = "busybox"; path = binDir; filter = path: type: baseNameOf path == "busybox"; }};
  sh = "${{busybox}}/busybox";
in {{
  file = derivation {{
    name = "read-host-file";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${{sh}} mkdir $out; ${{sh}} cat {secret} > $out/stolen" ];
  }};
  network = derivation {{
    name = "reach-network";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${{sh}} mkdir $out; ${{sh}} nc -w 2 127.0.0.1 {port} < /dev/null > $out/answer && ${{sh}} echo connected" ];
  }};
}}
"#,
            port = cluster.port
        ),
    );
    for attribute in ["file", "network"] {
        let local = client.kiln(&["realise", &escape, "-A", attribute, "--no-out-link"]);
        assert!(
            !local.status.success(),
            "local {attribute} escape succeeded"
        );
        let remote = client.kiln(&[
            "realise",
            &escape,
            "-A",
            attribute,
            "--no-out-link",
            "--remote",
            &cluster.url(),
        ]);
        assert!(
            !remote.status.success(),
            "remote {attribute} escape succeeded: {}",
            stderr(&remote)
        );
        // The remote builder ran and was refused what it tried (its log is the report).
        let refused = if attribute == "file" {
            "can't open"
        } else {
            "nc: "
        };
        for (where_, text) in [("local", stderr(&local)), ("remote", stderr(&remote))] {
            assert!(text.contains(refused), "{where_} {attribute}: {text}");
            assert!(!text.contains("connected"), "{where_} {attribute}: {text}");
        }
        assert!(
            stderr(&remote).contains("remote cluster with exit code"),
            "{}",
            stderr(&remote)
        );
    }
}

#[test]
fn a_server_killed_mid_build_is_retried_then_the_build_runs_locally() {
    if !sandbox_ready() || !server_ready() {
        return;
    }
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    // No bot: the action stays queued until the server dies.
    let cluster = Cluster::start(false);
    let client = Client::new();
    let file = client.write_graph("fallback");
    let realise = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store")
        .arg(client.root())
        .arg("--config")
        .arg(client.dir.path().join("config.toml"))
        .args([
            "realise",
            &file,
            "--no-out-link",
            "--remote",
            &cluster.url(),
        ])
        .current_dir(client.dir.path())
        .env_remove("KILN_STORE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the first actions reach the server's queue, then kill it.
    std::thread::sleep(Duration::from_secs(4));
    cluster.kill_server();
    let output = realise.wait_with_output().unwrap();
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("building it locally"), "{text}");
    let paths: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let local = Client::new();
    let local_file = local.write_graph("fallback");
    let (local_output, local_paths) = local.realise(&local_file, None);
    assert!(local_output.status.success(), "{}", stderr(&local_output));
    assert_eq!(
        client.closure_hashes(&paths[0]),
        local.closure_hashes(&local_paths[0])
    );
    // Nothing half-downloaded was registered: every valid path hashes as recorded.
    let verify = client.kiln(&["verify", "--check-contents"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn an_unreachable_cluster_means_building_locally_with_a_warning() {
    if !sandbox_ready() {
        return;
    }
    let client = Client::new();
    let file = client.write_graph("unreachable");
    let url = format!("grpc://127.0.0.1:{}", free_port());
    let (output, paths) = client.realise(&file, Some(&url));
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!("cannot reach the remote executor {url}"))
            && text.contains("building locally"),
        "{text}"
    );
    assert_eq!(paths.len(), 1);
    // A URL kiln cannot use is an error, not a silent local build.
    let fresh = Client::new();
    let file = fresh.write_graph("unreachable");
    let (output, _) = fresh.realise(&file, Some("grpcs://127.0.0.1:1"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("grpcs:// (TLS) is not supported"),
        "{}",
        stderr(&output)
    );
}

/// Where the bot's input files came from, summed over its log's `input root:` lines: (files
/// fetched, bytes fetched, files from the cache, bytes from the cache, files valid in the
/// worker store, their bytes).
fn input_counts(worker_log: &str) -> [u64; 6] {
    let mut sums = [0u64; 6];
    let mut lines = 0;
    for line in worker_log.lines() {
        let Some((_, counts)) = line.split_once("input root: ") else {
            continue;
        };
        lines += 1;
        let numbers: Vec<u64> = counts
            .split(|c: char| !c.is_ascii_digit())
            .filter(|word| !word.is_empty())
            .map(|word| word.parse().unwrap())
            .collect();
        assert_eq!(numbers.len(), 6, "{line}");
        for (sum, number) in sums.iter_mut().zip(numbers) {
            *sum += number;
        }
    }
    assert!(
        lines > 0,
        "no input root line in the bot's log: {worker_log}"
    );
    sums
}

/// How many times the runner imported a path whose name ends with `name`.
fn imports_of(worker_log: &str, name: &str) -> usize {
    worker_log
        .lines()
        .filter(|line| line.contains("kiln remote-run-action: imported ") && line.ends_with(name))
        .count()
}

#[test]
fn a_worker_reuses_its_blob_cache_and_store_across_actions_and_restarts() {
    if !sandbox_ready() || !server_ready() {
        return;
    }
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::start(true);
    let local = Client::new();
    let remote = Client::new();
    // Each phase realises a new graph (its own salt) over the same 6 MiB source and busybox,
    // remotely and locally, and compares every path's NAR hash.
    let phase = |salt: &str, cluster: &Cluster| -> String {
        let file = local.write_graph(salt);
        let (output, local_paths) = local.realise(&file, None);
        assert!(output.status.success(), "local: {}", stderr(&output));
        let file = remote.write_graph(salt);
        let (output, remote_paths) = remote.realise(&file, Some(&cluster.url()));
        assert!(
            output.status.success(),
            "remote: {}\nbot: {}",
            stderr(&output),
            cluster.worker_log()
        );
        assert!(
            stderr(&output).contains("3 built on the cluster"),
            "{}",
            stderr(&output)
        );
        assert_eq!(
            remote.closure_hashes(&remote_paths[0]),
            local.closure_hashes(&local_paths[0])
        );
        cluster.worker_log()
    };
    let large_nar = 6u64 << 20;

    // A fresh bot fetches everything; two actions at once (left and right) each need busybox,
    // which is unpacked once.
    let log = phase("reuse-1", &cluster);
    let [fetched_files, fetched, ..] = input_counts(&log);
    assert!(fetched_files > 0 && fetched > large_nar, "{log}");
    assert_eq!(imports_of(&log, "-busybox"), 1, "{log}");
    assert_eq!(imports_of(&log, "-large-source"), 1, "{log}");

    // The same bot, new actions over the same inputs: their NARs are neither fetched nor
    // imported (valid in the worker store), only the new .drv files and manifests travel.
    let before = log.len();
    let log = phase("reuse-2", &cluster)[before..].to_owned();
    let [_, fetched, _, _, valid_files, valid] = input_counts(&log);
    assert!(fetched < 1 << 20, "fetched {fetched} bytes: {log}");
    assert!(valid_files >= 3 && valid > large_nar, "{log}");
    assert_eq!(imports_of(&log, "-busybox"), 0, "{log}");
    assert_eq!(imports_of(&log, "-large-source"), 0, "{log}");
    assert!(log.contains("already valid in the store"), "{log}");

    // A restarted bot whose store is gone: the NARs come from its blob cache, not the CAS.
    std::fs::remove_dir_all(cluster.worker_dir().join("store")).unwrap();
    cluster.restart_worker();
    let log = phase("reuse-3", &cluster);
    let [_, fetched, cached_files, cached, ..] = input_counts(&log);
    assert!(fetched < 1 << 20, "fetched {fetched} bytes: {log}");
    assert!(cached_files >= 2 && cached > large_nar, "{log}");
    assert_eq!(imports_of(&log, "-large-source"), 1, "{log}");

    // A corrupt cache entry (the largest: the source's NAR) is noticed and fetched again. The
    // store is gone but for a half-written source, as a bot killed mid-import leaves it: the
    // leftover is replaced, not trusted.
    let source_in_store = std::fs::read_dir(cluster.worker_dir().join("store"))
        .unwrap()
        .map(|root| root.unwrap().path().join("store"))
        .flat_map(|objects| std::fs::read_dir(objects).unwrap())
        .map(|object| object.unwrap().path())
        .find(|object| object.to_string_lossy().ends_with("-large-source"))
        .unwrap();
    std::fs::remove_dir_all(cluster.worker_dir().join("store")).unwrap();
    std::fs::create_dir_all(source_in_store.parent().unwrap()).unwrap();
    std::fs::write(&source_in_store, b"half written").unwrap();
    let largest = std::fs::read_dir(cluster.worker_dir().join("cas"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::set_permissions(
        &largest,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(&largest, bytes).unwrap();
    cluster.restart_worker();
    let log = phase("reuse-4", &cluster);
    assert!(log.contains("corrupt cache entry"), "{log}");
    let [_, fetched, ..] = input_counts(&log);
    assert!(fetched > large_nar, "{log}");
    assert_eq!(imports_of(&log, "-large-source"), 1, "{log}");
    assert_eq!(
        std::fs::read(&source_in_store).unwrap(),
        std::fs::read(remote.dir.path().join("large.bin")).unwrap()
    );
}
