//! `kiln lock` and `realise`'s lock check through the binary, with a stand-in lock step (a
//! busybox script writing lock JSON) instead of dnf: a missing lock makes `realise` fail naming
//! the exact `kiln lock` command (also when the root is reached through a build using it); `kiln lock` creates the file, prints added, removed and
//! changed packages, says when the lock is up to date; the `[[rewrite]]` rules reach the lock
//! step in `KILN_URL_REWRITES` without changing its .drv. Needs busybox and user namespaces
//! (under CI=true their absence fails the test, elsewhere it skips with the reason).
mod common;

use common::sandbox::sandbox_ready;
use std::process::{Command, Output};

/// A root whose lock is `./pins.json`; the stand-in lock step pins package `b` at the version
/// given by `--argstr bVersion`, and `a` unless `--argstr withA no`.
const EXPRESSION: &str = r#"
{ bVersion ? "2", withA ? "yes" }:
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  };
  pkg = name: version:
    ''{"arch":"x86_64","epoch":"0","name":"${name}","release":"1","sha256":"00","url":"https://repo.example/${name}.rpm","version":"${version}"}'';
  packages = (if withA == "yes" then [ (pkg "a" "1") ] else [ ]) ++ [ (pkg "b" bVersion) ];
  lockStep = derivation {
    name = "stand-in-lock";
    system = builtins.currentSystem;
    builder = "${busybox}/busybox";
    __network = true;
    args = [ "sh" "-c" ''
      ${busybox}/busybox printf '{"packages":[${builtins.concatStringsSep "," packages}],"rewrites":"%s"}\n' "$KILN_URL_REWRITES" > $out
    '' ];
  };
  lockFile = ./pins.json;
  current = if builtins.pathExists lockFile then builtins.readFile lockFile else null;
in
rec {
  root = derivation {
    name = "root";
    system = builtins.currentSystem;
    builder = "${busybox}/busybox";
    args = [ "sh" "-c" "${busybox}/busybox cp ${lockFile} $out" ];
  } // {
    kilnLock = {
      file = toString lockFile;
      drv = lockStep;
      problem =
        if current == null then "the lock ${toString lockFile} does not exist yet"
        else if builtins.match ".*\"version\":\"${bVersion}\".*" current == null then "the lock is stale"
        else null;
    };
  };
  lockDrv = lockStep;
  # A build using the root: its lock problem is found through the attribute `dep`.
  user = derivation {
    name = "user";
    system = builtins.currentSystem;
    builder = "${busybox}/busybox";
    args = [ "sh" "-c" "${busybox}/busybox cp $dep $out" ];
    dep = root;
  };
}
"#;

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("locked.nix"), EXPRESSION).unwrap();
        std::fs::write(
            dir.path().join("kiln.toml"),
            "[[rewrite]]\nfrom = \"https://repo.example/\"\nto = \"http://127.0.0.1:9/mirror/\"\n",
        )
        .unwrap();
        Workspace { dir }
    }

    fn kiln(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .current_dir(self.dir.path())
            .env_remove("KILN_PATH")
            .env_remove("KILN_STORE_DIR")
            .env_remove("KILN_CONFIG")
            .env("KILN_STORE", self.dir.path().join("store"))
            .args(["--config", "kiln.toml"])
            .args(args)
            .output()
            .unwrap()
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn lock_creates_renews_and_reports_the_package_diff() {
    if !sandbox_ready() {
        return;
    }
    let work = Workspace::new();
    let pins = work.dir.path().join("pins.json");

    // No lock yet: realise names the command that writes it, as typed here.
    let missing = work.kiln(&["realise", "locked.nix", "-A", "root", "--no-out-link"]);
    let (_, stderr) = text(&missing);
    assert!(!missing.status.success());
    assert!(stderr.contains("does not exist yet"), "{stderr}");
    assert!(
        stderr.contains("run: kiln --config kiln.toml lock locked.nix -A root\n"),
        "{stderr}"
    );

    // The same for a build using the root, with the attribute path to the root.
    let nested = work.kiln(&["realise", "locked.nix", "-A", "user", "--no-out-link"]);
    let (_, stderr) = text(&nested);
    assert!(!nested.status.success());
    assert!(
        stderr.contains("run: kiln --config kiln.toml lock locked.nix -A user.dep\n"),
        "{stderr}"
    );

    // kiln lock creates it.
    let created = work.kiln(&["lock", "locked.nix", "-A", "root"]);
    let (stdout, stderr) = text(&created);
    assert!(created.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(
            "+ a 1-1\n+ b 2-1\ncreated pins.json: 2 packages; 2 added, 0 removed, 0 changed\n"
        ),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&pins).unwrap();
    // The rewrite rules reached the lock step through the environment.
    assert!(
        written.contains(r#""rewrites":"https://repo.example/ http://127.0.0.1:9/mirror/""#),
        "{written}"
    );
    let built = work.kiln(&["realise", "locked.nix", "-A", "root", "--no-out-link"]);
    assert!(built.status.success(), "{:?}", text(&built));

    // Nothing changed: up to date.
    let again = work.kiln(&["lock", "locked.nix", "-A", "root"]);
    assert_eq!(text(&again).0, "lock is up to date: pins.json\n");

    // A stale lock: realise names the command with the arguments given.
    let stale = work.kiln(&[
        "realise",
        "locked.nix",
        "-A",
        "root",
        "--argstr",
        "bVersion",
        "3",
        "--argstr",
        "withA",
        "no",
    ]);
    let (_, stderr) = text(&stale);
    assert!(!stale.status.success());
    assert!(
        stderr.contains(
            "run: kiln --config kiln.toml lock locked.nix -A root --argstr bVersion 3 --argstr withA no\n"
        ),
        "{stderr}"
    );
    let renewed = work.kiln(&[
        "lock",
        "locked.nix",
        "-A",
        "root",
        "--argstr",
        "bVersion",
        "3",
        "--argstr",
        "withA",
        "no",
    ]);
    let (stdout, stderr) = text(&renewed);
    assert!(renewed.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(
            "- a 1-1\n~ b 2-1 → 3-1\nupdated pins.json: 1 package; 0 added, 1 removed, 1 changed\n"
        ),
        "{stdout}"
    );
}

#[test]
fn rewrite_rules_do_not_change_the_lock_step() {
    if !sandbox_ready() {
        return;
    }
    let work = Workspace::new();
    let with_rules = work.kiln(&["instantiate", "locked.nix", "-A", "lockDrv"]);
    std::fs::write(work.dir.path().join("kiln.toml"), "").unwrap();
    let without_rules = work.kiln(&["instantiate", "locked.nix", "-A", "lockDrv"]);
    assert!(with_rules.status.success(), "{:?}", text(&with_rules));
    assert_eq!(with_rules.stdout, without_rules.stdout);
}

#[test]
fn lock_refuses_a_value_without_kiln_lock() {
    let work = Workspace::new();
    let refused = work.kiln(&["lock", "locked.nix", "-A", "lockDrv"]);
    let (_, stderr) = text(&refused);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("`lockDrv` has no `kilnLock` attribute"),
        "{stderr}"
    );
}
