//! Binary caches end to end, with Nix 2.8 as the oracle: caches that `kiln copy --to` writes
//! (file:// and over HTTP to a small test server on 127.0.0.1) are accepted by `nix copy --from`
//! with signature checking on and by `nix path-info --sigs`; keys made by either tool sign for
//! the other. The builds need busybox and user namespaces, the checks Nix: under CI=true their
//! absence fails the tests, elsewhere the tests print why they skip.
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

/// Pushes the closure with a key Nix generated, then lets Nix copy it back with signature
/// checking on: refused without the key, accepted with it, same paths, hashes, references.
fn nix_accepts_a_cache_kiln_pushed(url: &str, cache_dir: &Path, compression: &str) {
    let kiln = Kiln::new();
    let nix = Nix::new();
    let output = kiln.build_closure();
    let keys = kiln.work();
    ok(&nix.run(
        "nix-store",
        &[
            "--generate-binary-cache-key",
            "test-cache-1",
            keys.join("secret").to_str().unwrap(),
            keys.join("public").to_str().unwrap(),
        ],
    ));
    let public = std::fs::read_to_string(keys.join("public")).unwrap();
    std::fs::write(
        kiln.work().join("config.toml"),
        format!(
            "secret-key-files = [{:?}]\n",
            keys.join("secret").to_str().unwrap()
        ),
    )
    .unwrap();
    // The zstd runs push the expression (realised first: nothing to build, it is valid), the
    // others the store path.
    let installable = if compression == "zstd" {
        "closure.nix"
    } else {
        &output
    };
    let pushed = kiln.kiln(&[
        "copy",
        "--to",
        url,
        "--compression",
        compression,
        installable,
    ]);
    ok(&pushed);
    let report = String::from_utf8_lossy(&pushed.stderr);
    assert!(report.contains("copied 3 paths"), "{report}");
    let extension = match compression {
        "xz" => ".nar.xz",
        "zstd" => ".nar.zst",
        _ => ".nar",
    };
    let nars: Vec<String> = std::fs::read_dir(cache_dir.join("nar"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(nars.len(), 3, "{nars:?}");
    assert!(nars.iter().all(|n| n.ends_with(extension)), "{nars:?}");
    let leftovers: Vec<_> = walk(cache_dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second push, of the expression's outputs, finds everything there.
    let again = kiln.kiln(&["copy", "--to", url, "-j", "4", "closure.nix"]);
    ok(&again);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("copied 0 paths")
            && String::from_utf8_lossy(&again.stderr).contains("3 were there already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Nix lists the signatures ...
    let sigs = ok(&nix.run(
        "nix",
        &["path-info", "--store", url, "--sigs", "-r", &output],
    ));
    assert_eq!(sigs.lines().count(), 3, "{sigs}");
    assert!(
        sigs.lines().all(|line| line.contains("test-cache-1:")),
        "{sigs}"
    );
    // ... refuses the paths without the key (signature checking is on) ...
    let refused = failed(&nix.run("nix", &["copy", "--from", url, &output]));
    assert!(refused.contains("lacks a valid signature"), "{refused}");
    // ... and copies them with it.
    ok(&nix.run(
        "nix",
        &[
            "copy",
            "--from",
            url,
            "--trusted-public-keys",
            public.trim(),
            &output,
        ],
    ));
    let nix_info = path_info_map(&ok(&nix.run("nix", &["path-info", "--json", "-r", &output])));
    assert_eq!(nix_info, kiln.closure_info(&output));
    ok(&nix.run("nix-store", &["--verify", "--check-contents"]));
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

#[test]
fn nix_accepts_a_signed_file_cache_that_kiln_pushed() {
    if !ready("nix_accepts_a_signed_file_cache_that_kiln_pushed") {
        return;
    }
    for compression in ["xz", "zstd", "none"] {
        let cache = tempfile::tempdir().unwrap();
        let url = format!("file://{}", cache.path().display());
        nix_accepts_a_cache_kiln_pushed(&url, cache.path(), compression);
        let info = std::fs::read_to_string(cache.path().join("nix-cache-info")).unwrap();
        assert!(info.contains("StoreDir: /nix/store\n"), "{info}");
    }
}

#[test]
fn nix_accepts_a_cache_kiln_pushed_over_http() {
    if !ready("nix_accepts_a_cache_kiln_pushed_over_http") {
        return;
    }
    let server = TestServer::start();
    nix_accepts_a_cache_kiln_pushed(&server.url(), server.root(), "zstd");
    assert!(
        server.puts() >= 7,
        "NARs, narinfos and nix-cache-info are PUT"
    );
}

#[test]
fn keys_signatures_and_the_key_verbs_agree_with_nix() {
    if !ready("keys_signatures_and_the_key_verbs_agree_with_nix") {
        return;
    }
    let kiln = Kiln::new();
    let nix = Nix::new();
    let output = kiln.build_closure();
    // A key pair made by kiln ...
    ok(&kiln.kiln(&["key", "generate", "kiln-made-1", "-o", "kiln.sec"]));
    let secret = std::fs::read_to_string(kiln.work().join("kiln.sec")).unwrap();
    let public = std::fs::read_to_string(kiln.work().join("kiln.sec.pub")).unwrap();
    assert!(secret.starts_with("kiln-made-1:") && public.starts_with("kiln-made-1:"));
    let mut from_stdin = kiln.command(&["key", "public"]);
    from_stdin.stdin(std::fs::File::open(kiln.work().join("kiln.sec")).unwrap());
    assert_eq!(ok(&from_stdin.output().unwrap()).trim(), public.trim());
    let printed = ok(&kiln.kiln(&["key", "generate", "printed-1"]));
    assert!(printed.starts_with("printed-1:"), "{printed}");
    failed(&kiln.kiln(&["key", "generate", "bad:name"]));
    // ... signs paths with `kiln sign` (no secret-key-files), and Nix trusts the result.
    let signed = kiln.kiln(&["sign", "-r", "--key-file", "kiln.sec", &output]);
    ok(&signed);
    assert!(String::from_utf8_lossy(&signed.stderr).contains("added 3 signatures"));
    let again = kiln.kiln(&["sign", "-r", "--key-file", "kiln.sec", &output]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("added 0 signatures"));
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    ok(&kiln.kiln(&["copy", "--to", &url, &output]));
    ok(&nix.run(
        "nix",
        &[
            "copy",
            "--from",
            &url,
            "--trusted-public-keys",
            public.trim(),
            &output,
        ],
    ));
    // Nix's own signature of the same path, with the same key, is the one kiln made.
    let nix_sig = ok(&nix.run("nix", &["path-info", "--sigs", &output]));
    let narinfo_name = format!(
        "{}.narinfo",
        &output[NIX_STORE.len() + 1..NIX_STORE.len() + 33]
    );
    let narinfo = std::fs::read_to_string(cache.path().join(narinfo_name)).unwrap();
    let kiln_sig = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("Sig: "))
        .unwrap()
        .to_owned();
    assert!(nix_sig.contains(&kiln_sig), "{nix_sig}\n{narinfo}");
    ok(&nix.run(
        "nix",
        &[
            "store",
            "sign",
            "--key-file",
            kiln.work().join("kiln.sec").to_str().unwrap(),
            &output,
        ],
    ));
    let resigned = ok(&nix.run("nix", &["path-info", "--sigs", &output]));
    assert_eq!(resigned.matches("kiln-made-1:").count(), 1, "{resigned}");
}

#[test]
fn a_cache_of_another_store_dir_is_refused_naming_both() {
    if !sandbox_ready() {
        return;
    }
    let kiln = Kiln::new();
    let output = kiln.build_closure();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(
        cache.path().join("nix-cache-info"),
        "StoreDir: /kiln/store\n",
    )
    .unwrap();
    let url = format!("file://{}", cache.path().display());
    let refused = failed(&kiln.kiln(&["copy", "--to", &url, &output]));
    assert!(
        refused.contains("'/kiln/store'") && refused.contains("'/nix/store'"),
        "{refused}"
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
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

/// Builds [`TWO_LEVEL`] in a fresh store and pushes the output's closure to `url` signed with
/// a new key; returns the store, the output and the public key.
fn build_and_push(url: &str, compression: &str) -> (Kiln, String, String) {
    let builder = Kiln::new();
    let (secret, public) = builder.generate_key("team-cache-1");
    let (output, _) = builder.realise_two_level(&format!("secret-key-files = [{secret:?}]\n"));
    assert_eq!(builder.builds_run(), 2);
    ok(&builder.kiln(&["copy", "--to", url, "--compression", compression, &output]));
    (builder, output, public)
}

fn substituting_config(url: &str, public: &str) -> String {
    format!("substituters = [{url:?}]\ntrusted-public-keys = [{public:?}]\nstalled-download-timeout = 5\n")
}

#[test]
fn a_realise_whose_graph_is_in_a_cache_runs_no_builder() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let (builder, output, public) = build_and_push(&url, "xz");
    let expected = builder.closure_info(&output);
    assert_eq!(expected.len(), 3, "{expected:?}");

    let user = Kiln::new();
    std::fs::write(user.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        user.work().join("config.toml"),
        substituting_config(&url, &public),
    )
    .unwrap();
    let dry = user.kiln(&["realise", "--dry-run", "two.nix"]);
    ok(&dry);
    let listed = String::from_utf8_lossy(&dry.stderr);
    // The text and busybox are in the store once evaluated: only the output is fetched.
    assert!(listed.contains("1 path will be fetched ("), "{listed}");
    assert!(listed.contains("-top\n"), "{listed}");
    assert!(!listed.contains("will be built"), "{listed}");

    let (substituted, run) = user.realise_two_level(&substituting_config(&url, &public));
    let report = String::from_utf8_lossy(&run.stderr);
    assert_eq!(substituted, output);
    assert_eq!(user.builds_run(), 0, "no builder ran: {report}");
    assert!(report.contains(&format!("from '{url}'")), "{report}");
    assert_eq!(user.closure_info(&output), expected);
    // The build-time input was neither built nor fetched.
    let stage_outputs: Vec<_> = std::fs::read_dir(user.root().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-stage"))
        .collect();
    assert!(stage_outputs.is_empty(), "{stage_outputs:?}");
    ok(&user.kiln(&["verify", "--check-contents"]));
    let sigs = ok(&user.kiln(&["path-info", "--json", &output]));
    assert!(
        sigs.contains("team-cache-1:"),
        "signatures are registered: {sigs}"
    );
    // --no-substitute builds instead.
    let offline = Kiln::new();
    std::fs::write(offline.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        offline.work().join("config.toml"),
        substituting_config(&url, &public),
    )
    .unwrap();
    ok(&offline.kiln(&["realise", "--no-out-link", "--no-substitute", "two.nix"]));
    assert_eq!(offline.builds_run(), 2);
}

#[test]
fn inputs_of_a_build_are_fetched_and_the_dry_run_says_so() {
    if !sandbox_ready() {
        return;
    }
    // A cache holding only the build-time input (`stage`), not the top output.
    let first = tempfile::tempdir().unwrap();
    let (builder, _, public) = build_and_push(&format!("file://{}", first.path().display()), "xz");
    let stage = std::fs::read_dir(builder.root().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with("-stage"))
        .expect("the stage output");
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    ok(&builder.kiln(&["copy", "--to", &url, &format!("{NIX_STORE}/{stage}")]));

    let user = Kiln::new();
    std::fs::write(user.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        user.work().join("config.toml"),
        substituting_config(&url, &public),
    )
    .unwrap();
    let dry = user.kiln(&["realise", "--dry-run", "two.nix"]);
    let listed = ok_stderr(&dry);
    assert!(
        listed.contains("1 path will be fetched (") && listed.contains(&format!("{stage}\n")),
        "{listed}"
    );
    assert!(
        listed.contains("1 derivation will be built:") && listed.contains("-top.drv\n"),
        "{listed}"
    );
    assert_eq!(user.builds_run(), 0, "a dry run builds nothing");
    let (_, run) = user.realise_two_level(&substituting_config(&url, &public));
    assert_eq!(
        user.builds_run(),
        1,
        "only the top is built: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(user.root().join("store").join(&stage).exists());
}

/// Standard error of a command that succeeded.
fn ok_stderr(output: &Output) -> String {
    ok(output);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn substitution_over_http_with_the_substituters_flag() {
    if !sandbox_ready() {
        return;
    }
    let server = TestServer::start();
    let (builder, output, public) = build_and_push(&server.url(), "zstd");
    let user = Kiln::new();
    std::fs::write(user.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        user.work().join("config.toml"),
        format!("trusted-public-keys = [{public:?}]\n"),
    )
    .unwrap();
    let run = user.kiln(&[
        "realise",
        "--no-out-link",
        "--substituters",
        &server.url(),
        "two.nix",
    ]);
    ok(&run);
    assert_eq!(
        user.builds_run(),
        0,
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(user.closure_info(&output), builder.closure_info(&output));
    let gets = server.gets();
    assert!(gets.iter().any(|g| g.starts_with("GET nar/")), "{gets:?}");
    // `kiln copy --from` fetches a closure too.
    let copier = Kiln::new();
    std::fs::write(
        copier.work().join("config.toml"),
        format!("trusted-public-keys = [{public:?}]\n"),
    )
    .unwrap();
    ok(&copier.kiln(&["copy", "--from", &server.url(), &output]));
    assert_eq!(copier.closure_info(&output), builder.closure_info(&output));
}

#[test]
fn corrupted_nars_fall_back_to_building() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let (builder, output, public) = build_and_push(&url, "none");
    for nar in walk(&cache.path().join("nar")) {
        let mut bytes = std::fs::read(&nar).unwrap();
        let middle = bytes.len() - 20;
        bytes[middle] ^= 0x55;
        std::fs::write(&nar, bytes).unwrap();
    }
    let user = Kiln::new();
    let (rebuilt, run) = user.realise_two_level(&substituting_config(&url, &public));
    let report = String::from_utf8_lossy(&run.stderr);
    assert_eq!(rebuilt, output);
    assert!(report.contains("warning: cannot substitute"), "{report}");
    assert!(report.contains(&url), "{report}");
    assert_eq!(user.builds_run(), 2, "{report}");
    assert_eq!(user.closure_info(&output), builder.closure_info(&output));
    ok(&user.kiln(&["verify", "--check-contents"]));
}

#[test]
fn unsigned_or_untrusted_narinfos_are_not_used_unless_signatures_are_off() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let builder = Kiln::new();
    let (output, _) = builder.realise_two_level("");
    ok(&builder.kiln(&["copy", "--to", &url, &output]));
    let (_, stranger) = builder.generate_key("stranger-1");
    let user = Kiln::new();
    let (_, run) = user.realise_two_level(&substituting_config(&url, &stranger));
    let report = String::from_utf8_lossy(&run.stderr);
    assert!(report.contains("is unsigned"), "{report}");
    assert_eq!(user.builds_run(), 2, "{report}");

    let trusting = Kiln::new();
    std::fs::write(trusting.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        trusting.work().join("config.toml"),
        substituting_config(&url, &stranger),
    )
    .unwrap();
    ok(&trusting.kiln(&[
        "--option",
        "require-sigs",
        "false",
        "realise",
        "--no-out-link",
        "two.nix",
    ]));
    assert_eq!(trusting.builds_run(), 0);
    assert_eq!(
        trusting.closure_info(&output),
        builder.closure_info(&output)
    );
}

#[test]
fn kiln_substitutes_a_closure_that_nix_put_in_a_cache() {
    if !ready("kiln_substitutes_a_closure_that_nix_put_in_a_cache") {
        return;
    }
    // kiln builds and hands the closure to Nix ...
    let kiln_cache = tempfile::tempdir().unwrap();
    let kiln_url = format!("file://{}", kiln_cache.path().display());
    let (_, output, kiln_public) = build_and_push(&kiln_url, "xz");
    let nix = Nix::new();
    ok(&nix.run(
        "nix",
        &[
            "copy",
            "--from",
            &kiln_url,
            "--trusted-public-keys",
            &kiln_public,
            &output,
        ],
    ));
    // ... Nix signs it with its own key and writes its own cache ...
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = (keys.path().join("nix.sec"), keys.path().join("nix.pub"));
    ok(&nix.run(
        "nix-store",
        &[
            "--generate-binary-cache-key",
            "nix-made-1",
            secret.to_str().unwrap(),
            public.to_str().unwrap(),
        ],
    ));
    let public = std::fs::read_to_string(&public).unwrap();
    ok(&nix.run(
        "nix",
        &[
            "store",
            "sign",
            "-r",
            "--key-file",
            secret.to_str().unwrap(),
            &output,
        ],
    ));
    let nix_cache = tempfile::tempdir().unwrap();
    let nix_url = format!("file://{}", nix_cache.path().display());
    ok(&nix.run("nix", &["copy", "--to", &nix_url, &output]));
    let nix_info = path_info_map(&ok(&nix.run("nix", &["path-info", "--json", "-r", &output])));
    // ... which kiln substitutes from, building nothing, with the same paths, hashes, references.
    let user = Kiln::new();
    let (substituted, run) = user.realise_two_level(&substituting_config(&nix_url, public.trim()));
    assert_eq!(substituted, output);
    assert_eq!(
        user.builds_run(),
        0,
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(user.closure_info(&output), nix_info);
    // `kiln copy --from` too, with the key given by --option.
    let copier = Kiln::new();
    ok(&copier.kiln(&[
        "--option",
        "trusted-public-keys",
        public.trim(),
        "copy",
        "--from",
        &nix_url,
        &output,
    ]));
    assert_eq!(copier.closure_info(&output), nix_info);
}

#[test]
fn push_to_uploads_what_realise_builds_and_verify_sigs_reports_untrusted_paths() {
    if !sandbox_ready() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", cache.path().display());
    let ci = Kiln::new();
    let (secret, public) = ci.generate_key("ci-1");
    std::fs::write(ci.work().join("two.nix"), TWO_LEVEL).unwrap();
    std::fs::write(
        ci.work().join("config.toml"),
        format!("secret-key-files = [{secret:?}]\ntrusted-public-keys = [{public:?}]\n"),
    )
    .unwrap();
    let run = ci.kiln(&["realise", "--no-out-link", "--push-to", &url, "two.nix"]);
    let printed = ok(&run);
    let report = String::from_utf8_lossy(&run.stderr);
    // Both outputs built, with the closure of each: stage, top, the text and busybox.
    assert!(report.contains("pushed 4 paths"), "{report}");
    let narinfos = walk(cache.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "narinfo"))
        .count();
    assert_eq!(narinfos, 4);
    let output = format!(
        "{NIX_STORE}/{}",
        Path::new(printed.trim())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    );

    // The builder's own store holds the outputs unsigned: verify --sigs names them.
    let unsigned = failed(&ci.kiln(&["verify", "--sigs"]));
    assert!(
        unsigned.contains("-top' has no signature by a trusted key"),
        "{unsigned}"
    );
    assert!(
        unsigned.contains("-stage' has no signature by a trusted key"),
        "{unsigned}"
    );
    ok(&ci.kiln(&["sign", "--key-file", &secret, &output]));
    let unsigned = failed(&ci.kiln(&["verify", "--sigs"]));
    assert!(!unsigned.contains("-top'"), "{unsigned}");
    assert!(unsigned.contains("-stage'"), "{unsigned}");

    // A store that substituted from the cache holds signed paths only.
    let user = Kiln::new();
    user.realise_two_level(&substituting_config(&url, &public));
    assert_eq!(user.builds_run(), 0);
    ok(&user.kiln(&["verify", "--sigs"]));
    // With no trusted key, the substituted output is untrusted.
    std::fs::write(user.work().join("config.toml"), "").unwrap();
    let untrusted = failed(&user.kiln(&["verify", "--sigs"]));
    assert!(untrusted.contains("-top' has no signature"), "{untrusted}");
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
