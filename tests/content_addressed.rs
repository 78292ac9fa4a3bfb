//! Content-addressed derivations end to end through the binary: the paths kiln realises for
//! floating outputs are the ones Nix 2.8's `nix-build` gives (with `ca-derivations`, sandbox
//! off, an isolated store in the same logical directory), the early cutoff of a graph A (CA) →
//! B → C, the verbs that show realisations, and realisations in binary caches (read by another
//! kiln store and by Nix). They need busybox and user namespaces (and
//! `nix-build` for the oracle test): under CI=true their absence fails the tests, elsewhere the
//! tests print why they skip.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::sandbox::sandbox_ready;
use common::OracleHome;

/// Busybox imported as a directory, and `ca NAME SCRIPT EXTRA` / `ia NAME SCRIPT EXTRA`:
/// content-addressed and input-addressed derivations running a busybox shell script.
const PRELUDE: &str = r#"
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  };
  ia = name: script: extra: derivation ({
    inherit name;
    system = builtins.currentSystem;
    builder = "${busybox}/busybox";
    args = [ "sh" "-c" ("set -e; bb=${busybox}/busybox; " + script) ];
  } // extra);
  ca = name: script: extra: ia name script ({ __contentAddressed = true; } // extra);
in
"#;

struct Workspace {
    dir: tempfile::TempDir,
    store_dir: Option<String>,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
            store_dir: None,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("kiln-root")
    }

    fn work(&self) -> PathBuf {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        work
    }

    fn expression(&self, name: &str, body: &str) -> PathBuf {
        let file = self.work().join(name);
        std::fs::write(&file, format!("{PRELUDE}{body}")).unwrap();
        file
    }

    fn kiln(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command.arg("--store").arg(self.root());
        if let Some(store_dir) = &self.store_dir {
            command.arg("--store-dir").arg(store_dir);
        }
        command
            .args(args)
            .current_dir(self.work())
            .env_remove("KILN_STORE_DIR")
            .stdin(Stdio::null());
        command
    }

    /// The `.drv` base names of the builds whose builder ran (one log attempt each).
    fn builder_runs(&self) -> Vec<String> {
        let mut runs = Vec::new();
        let drvs = self.root().join("var/log/drvs");
        for prefix in std::fs::read_dir(&drvs).into_iter().flatten().flatten() {
            for log in std::fs::read_dir(prefix.path()).unwrap().flatten() {
                let text = std::fs::read_to_string(log.path()).unwrap();
                let attempts = text
                    .lines()
                    .filter(|l| l.starts_with("@kiln build "))
                    .count();
                let name = log.file_name().to_string_lossy().into_owned();
                runs.extend(std::iter::repeat_n(name, attempts));
            }
        }
        runs.sort();
        runs
    }
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kiln failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn base_name(path: &str) -> String {
    Path::new(path.trim())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The runs of `after` that `before` does not have (as multisets).
fn new_runs(after: &[String], before: &[String]) -> Vec<String> {
    let mut remaining = before.to_vec();
    let mut new = Vec::new();
    for run in after {
        match remaining.iter().position(|r| r == run) {
            Some(index) => {
                remaining.remove(index);
            }
            None => new.push(run.clone()),
        }
    }
    new
}

/// The derivation names (`<name>.drv` without hash) of the builder runs.
fn names(runs: &[String]) -> Vec<String> {
    let mut names: Vec<String> = runs
        .iter()
        .map(|run| {
            let name = run.split_once('-').map_or(run.as_str(), |(_, n)| n);
            name.trim_end_matches(".bz2").to_owned()
        })
        .collect();
    names.sort();
    names
}

/// Outputs that refer to themselves, to a sibling output (through a placeholder), through a
/// symlink, a content-addressed derivation above another, and input-addressed derivations above
/// them (deferred until built).
const GRAPH: &str = r#"
let
  multi = ca "ca-multi" ''
    $bb mkdir -p $out/bin $dev
    echo $out > $out/self
    echo ${builtins.placeholder "dev"} > $out/dev-path
    $bb ln -s $out/self $out/bin/link
    echo dev > $dev/x
  '' { outputs = [ "out" "dev" ]; };
  flat = ca "ca-flat" "echo flat > $out" { outputHashMode = "flat"; outputHashAlgo = "sha1"; };
  above = ca "ca-above" "$bb mkdir $out; $bb cat ${multi}/self ${flat} > $out/both; echo ${multi.dev} > $out/dev" { };
  deferred = ia "deferred" "$bb mkdir $out; echo ${above} > $out/above; $bb cat ${above}/both > $out/copy" { };
in [ multi flat above deferred ]
"#;

#[test]
fn realised_paths_are_the_ones_nix_build_gives() {
    if !sandbox_ready() || !common::oracle_available("content_addressed") {
        return;
    }
    let mut t = Workspace::new();
    let store_dir = t.dir.path().join("store").to_string_lossy().into_owned();
    t.store_dir = Some(store_dir.clone());
    let file = t.expression("graph.nix", GRAPH);
    let home = OracleHome::new();
    let nix = home
        .nix_program("nix-build", &store_dir, "local")
        .arg("--no-out-link")
        .arg(&file)
        .current_dir(t.work())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        nix.status.success(),
        "nix-build failed:\n{}",
        String::from_utf8_lossy(&nix.stderr)
    );
    let nix_paths: Vec<String> = String::from_utf8_lossy(&nix.stdout)
        .lines()
        .map(base_name)
        .collect();
    assert!(nix_paths.len() >= 4, "{nix_paths:?}");
    let kiln_paths: Vec<String> =
        ok(&t.kiln(&["realise", "--no-out-link", file.to_str().unwrap()]))
            .lines()
            .map(base_name)
            .collect();
    for path in &nix_paths {
        assert!(
            kiln_paths.contains(path),
            "nix-build gave {path}; kiln realised {kiln_paths:?}"
        );
    }
    // The same derivations, the resolved ones (written before their builds) included.
    let drvs = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".drv"))
            .collect();
        names.sort();
        names
    };
    let nix_drvs = drvs(Path::new(&store_dir));
    assert_eq!(drvs(&t.root().join("store")), nix_drvs);
    assert!(nix_drvs.len() > 4, "{nix_drvs:?}");
    // The same bytes, references and content address as Nix registered.
    for path in &nix_paths {
        let logical = format!("{store_dir}/{path}");
        let nix_info = home
            .nix_program("nix", &store_dir, "local")
            .args(["path-info", "--json", &logical])
            .output()
            .unwrap();
        let nix_info: serde_json::Value = serde_json::from_slice(&nix_info.stdout).unwrap();
        let kiln_info: serde_json::Value =
            serde_json::from_str(&ok(&t.kiln(&["path-info", "--json", &logical]))).unwrap();
        for key in ["narHash", "narSize", "references", "ca"] {
            assert_eq!(nix_info[0][key], kiln_info[0][key], "{path}: {key}");
        }
    }
}

/// A (content-addressed) → B → C, A's script taking `COMMENT` and `CONTENT`.
fn chain(comment: &str, content: &str) -> String {
    format!(
        r##"
let
  a = ca "a" "# {comment}
$bb mkdir $out; echo {content} > $out/data; echo $out > $out/self" {{ }};
  b = ia "b" "$bb mkdir $out; $bb cat ${{a}}/data > $out/data; echo ${{a}} > $out/a" {{ }};
in ia "c" "echo building c; $bb mkdir $out; $bb cat ${{b}}/data > $out/data; echo ${{b}} > $out/b" {{ }}
"##
    )
}

#[test]
fn a_change_that_keeps_the_output_stops_the_rebuild_there() {
    if !sandbox_ready() {
        return;
    }
    let t = Workspace::new();
    let file = t.expression("chain.nix", &chain("first", "one"));
    let file = file.to_str().unwrap();
    let first = ok(&t.kiln(&["realise", file]));
    assert_eq!(names(&t.builder_runs()), ["a.drv", "b.drv", "c.drv"]);
    assert_eq!(
        std::fs::read_to_string(t.work().join("result/data")).unwrap(),
        "one\n"
    );

    // A cosmetic change to A's script: A runs again, gives the same bytes; B and C, resolved
    // against it, are the derivations built before and do not run.
    t.expression("chain.nix", &chain("second", "one"));
    let before = t.builder_runs();
    let output = t.kiln(&["realise", file]);
    let again = ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(again, first, "{stderr}");
    let runs = t.builder_runs();
    assert_eq!(names(&new_runs(&runs, &before)), ["a.drv"], "{stderr}");
    assert_eq!(
        stderr.matches("is unchanged once resolved").count(),
        2,
        "{stderr}"
    );
    // Nothing is left to do.
    let output = t.kiln(&["realise", file]);
    assert_eq!(ok(&output), first);
    assert_eq!(t.builder_runs(), runs);

    // A change to A's output: everything runs.
    t.expression("chain.nix", &chain("second", "two"));
    let third = ok(&t.kiln(&["realise", file]));
    assert_ne!(third, first);
    assert_eq!(
        std::fs::read_to_string(t.work().join("result/data")).unwrap(),
        "two\n"
    );
    assert_eq!(
        names(&new_runs(&t.builder_runs(), &runs)),
        ["a.drv", "b.drv", "c.drv"]
    );
}

#[test]
fn path_info_log_verify_and_gc_understand_realisations() {
    if !sandbox_ready() {
        return;
    }
    let t = Workspace::new();
    let file = t.expression("chain.nix", &chain("first", "one"));
    let file = file.to_str().unwrap();
    let c_drv = ok(&t.kiln(&["instantiate", file])).trim().to_owned();
    let c_out = ok(&t.kiln(&["realise", file])).trim().to_owned();

    // The output of the deferred C is named through its derivation's realisation.
    let named = ok(&t.kiln(&["path-info", &format!("{c_drv}!out")]));
    assert_eq!(base_name(&named), base_name(&c_out));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&t.kiln(&["path-info", "--json", "result"]))).unwrap();
    let realisations = info[0]["realisations"].as_array().unwrap();
    // C as written (deferred) and C resolved name the same output.
    assert_eq!(realisations.len(), 2, "{info}");
    for realisation in realisations {
        assert_eq!(realisation["outPath"], base_name(&c_out));
        assert!(realisation["id"].as_str().unwrap().ends_with("!out"));
    }
    // The deferred C's realisation depends on B's, whose output C's refers to.
    assert!(
        realisations
            .iter()
            .any(|r| r["dependentRealisations"].as_object().unwrap().len() == 1),
        "{info}"
    );

    // C built as its resolved derivation; its log is found from either.
    assert_eq!(ok(&t.kiln(&["log", "result"])), "building c\n");
    assert_eq!(ok(&t.kiln(&["log", &c_drv])), "building c\n");
    let verified = t.kiln(&["verify", "--check-contents"]);
    ok(&verified);
    assert!(
        String::from_utf8_lossy(&verified.stderr).contains("realisations: all fine"),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // Collected outputs take their realisations with them, and are built again.
    std::fs::remove_file(t.work().join("result")).unwrap();
    let collected = t.kiln(&["gc"]);
    ok(&collected);
    let report = String::from_utf8_lossy(&collected.stderr);
    assert!(
        report.contains("realisations of content-addressed outputs went with them"),
        "{report}"
    );
    let not_realised = t.kiln(&["path-info", &format!("{c_drv}!out")]);
    assert!(!not_realised.status.success());
    let runs = t.builder_runs().len();
    assert_eq!(ok(&t.kiln(&["realise", file])).trim(), c_out);
    assert!(t.builder_runs().len() > runs);
}

#[test]
fn a_binary_cache_carries_realisations_to_another_store() {
    if !sandbox_ready() {
        return;
    }
    let builder = Workspace::new();
    let file = builder.expression("chain.nix", &chain("first", "one"));
    let built = ok(&builder.kiln(&["realise", file.to_str().unwrap()]));
    let cache = builder.dir.path().join("cache");
    let url = format!("file://{}", cache.display());
    let key = builder.dir.path().join("cache.sec");
    ok(&builder.kiln(&[
        "key",
        "generate",
        "test-cache-1",
        "-o",
        key.to_str().unwrap(),
    ]));
    let public = std::fs::read_to_string(builder.dir.path().join("cache.sec.pub")).unwrap();
    let config = builder.dir.path().join("push.toml");
    std::fs::write(
        &config,
        format!("secret-key-files = [{:?}]\n", key.to_str().unwrap()),
    )
    .unwrap();
    ok(&builder.kiln(&[
        "--config",
        config.to_str().unwrap(),
        "copy",
        "--to",
        &url,
        "result",
    ]));
    // Nix's layout: realisations/<hash>!<output>.doi, signed.
    let documents: Vec<String> = std::fs::read_dir(cache.join("realisations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        documents
            .iter()
            .all(|d| d.starts_with("sha256:") && d.ends_with("!out.doi")),
        "{documents:?}"
    );
    assert!(!documents.is_empty());

    // Another machine with the same expression: nothing is built, the output is fetched
    // through the realisation of the deferred C.
    let user = Workspace::new();
    let file = user.expression("chain.nix", &chain("first", "one"));
    let config = user.dir.path().join("use.toml");
    std::fs::write(
        &config,
        format!(
            "substituters = [{url:?}]\ntrusted-public-keys = [{:?}]\n",
            public.trim()
        ),
    )
    .unwrap();
    let output = user.kiln(&[
        "--config",
        config.to_str().unwrap(),
        "realise",
        file.to_str().unwrap(),
    ]);
    let fetched = ok(&output);
    assert_eq!(base_name(&fetched), base_name(&built));
    assert!(user.builder_runs().is_empty(), "{:?}", user.builder_runs());
    // The realisation is recorded: a second realise asks no cache and builds nothing.
    let again = ok(&user.kiln(&["realise", file.to_str().unwrap()]));
    assert_eq!(again, fetched);
    assert!(user.builder_runs().is_empty());

    // Untrusted realisations are not used: the chain is built.
    let stranger = Workspace::new();
    let file = stranger.expression("chain.nix", &chain("first", "one"));
    let config = stranger.dir.path().join("use.toml");
    std::fs::write(&config, format!("substituters = [{url:?}]\n")).unwrap();
    let output = stranger.kiln(&[
        "--config",
        config.to_str().unwrap(),
        "realise",
        file.to_str().unwrap(),
    ]);
    assert_eq!(base_name(&ok(&output)), base_name(&built));
    assert_eq!(names(&stranger.builder_runs()), ["a.drv", "b.drv", "c.drv"]);
}

#[test]
fn nix_build_substitutes_through_the_realisations_kiln_pushes() {
    if !sandbox_ready() || !common::oracle_available("content_addressed") {
        return;
    }
    let mut t = Workspace::new();
    let store_dir = t.dir.path().join("store").to_string_lossy().into_owned();
    t.store_dir = Some(store_dir.clone());
    let file = t.expression("chain.nix", &chain("first", "one"));
    let built = ok(&t.kiln(&["realise", file.to_str().unwrap()]));
    let key = t.dir.path().join("cache.sec");
    ok(&t.kiln(&[
        "key",
        "generate",
        "kiln-test-1",
        "-o",
        key.to_str().unwrap(),
    ]));
    let public = std::fs::read_to_string(t.dir.path().join("cache.sec.pub")).unwrap();
    let push = t.dir.path().join("push.toml");
    std::fs::write(
        &push,
        format!("secret-key-files = [{:?}]\n", key.to_str().unwrap()),
    )
    .unwrap();
    let url = format!("file://{}", t.dir.path().join("cache").display());
    ok(&t.kiln(&[
        "--config",
        push.to_str().unwrap(),
        "copy",
        "--to",
        &url,
        "result",
    ]));

    // Nix, with the cache as substituter and the key trusted, builds nothing: it resolves
    // through kiln's realisations and fetches the same path.
    let home = OracleHome::new();
    let nix = home
        .nix_program("nix-build", &store_dir, "local")
        .args(["--no-out-link", "--option", "substituters", &url])
        .args(["--option", "trusted-public-keys", public.trim()])
        .arg(&file)
        .current_dir(t.work())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&nix.stderr);
    assert!(nix.status.success(), "nix-build failed:\n{stderr}");
    assert_eq!(
        base_name(&String::from_utf8_lossy(&nix.stdout)),
        base_name(&built)
    );
    assert!(!stderr.contains("building '"), "{stderr}");
    assert!(stderr.contains("copying path"), "{stderr}");
}

#[test]
fn two_concurrent_realises_build_a_floating_derivation_once() {
    if !sandbox_ready() {
        return;
    }
    let t = Workspace::new();
    let file = t.expression(
        "slow.nix",
        r#"let a = ca "a" "$bb sleep 1; echo a > $out" { };
           in ia "b" "$bb cat ${a} > $out" { }"#,
    );
    let file = file.to_str().unwrap();
    let spawn = || {
        t.command(&["realise", "--no-out-link", file])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert_eq!(ok(&first), ok(&second));
    assert_eq!(names(&t.builder_runs()), ["a.drv", "b.drv"]);
}

#[test]
fn check_rebuilds_a_floating_derivation_and_names_a_difference() {
    if !sandbox_ready() {
        return;
    }
    let t = Workspace::new();
    let file = t.expression(
        "checks.nix",
        r#"{
          same = ca "same" "echo same > $out" { };
          random = ca "random" "$bb head -c 16 /dev/urandom | $bb od -x > $out" { };
        }"#,
    );
    let file = file.to_str().unwrap();
    let same = ok(&t.kiln(&["realise", "-A", "same", "--no-out-link", file]));
    ok(&t.kiln(&["realise", "-A", "random", "--no-out-link", file]));
    let runs = t.builder_runs().len();
    let checked = t.kiln(&["realise", "-A", "same", "--check", "--no-out-link", file]);
    assert_eq!(ok(&checked), same);
    assert_eq!(t.builder_runs().len(), runs + 1);
    assert!(String::from_utf8_lossy(&checked.stderr).contains("checked '"));
    let differs = t.kiln(&["realise", "-A", "random", "--check", "--no-out-link", file]);
    let stderr = String::from_utf8_lossy(&differs.stderr);
    assert!(!differs.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not reproducible: it was realised at"),
        "{stderr}"
    );
}
