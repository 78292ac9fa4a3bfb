//! End-to-end tests of `kiln realise` and its companions (`log`, `path-info`, `gc`, `verify`)
//! through the binary: the busybox example, no-op speed, parallelism, fixed-output hash
//! mismatches, a killed build, two concurrent realises, and garbage collection next to a running
//! build. They need busybox and user namespaces: under CI=true their absence fails the tests,
//! elsewhere the tests print why they skip.
mod common;

use common::sandbox::sandbox_ready;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The Nix prelude of the test expressions: busybox imported as a directory and `sh NAME
/// SCRIPT`, a derivation running a busybox shell script.
const PRELUDE: &str = r#"
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
    args = [ "sh" "-c" ("set -e; bb=${busybox}/busybox; " + script) ];
  };
in
"#;

/// A store root and a working directory.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store-root")
    }

    fn work(&self) -> PathBuf {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        work
    }

    /// Writes `body` (after the prelude) as `name` in the working directory.
    fn expression(&self, name: &str, body: &str) -> PathBuf {
        let file = self.work().join(name);
        std::fs::write(&file, format!("{PRELUDE}{body}")).unwrap();
        file
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .arg("--store")
            .arg(self.root())
            .args(args)
            .current_dir(self.work())
            .env_remove("KILN_STORE_DIR")
            .stdin(Stdio::null());
        command
    }

    fn kiln(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Every log file under the store's log directory with its number of build attempts.
    fn build_attempts(&self) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        let drvs = self.root().join("var/log/drvs");
        for prefix in std::fs::read_dir(&drvs).into_iter().flatten().flatten() {
            for log in std::fs::read_dir(prefix.path()).unwrap().flatten() {
                let text = std::fs::read_to_string(log.path()).unwrap();
                let attempts = text
                    .lines()
                    .filter(|l| l.starts_with("@kiln build "))
                    .count();
                found.push((log.file_name().to_string_lossy().into_owned(), attempts));
            }
        }
        found.sort();
        found
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

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox")
}

#[test]
fn example_builds_links_result_and_realising_again_is_a_fast_no_op() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    let example = example();
    let example = example.to_str().unwrap();
    let dry_run = t.kiln(&["realise", "--dry-run", example]);
    ok(&dry_run);
    let listed = String::from_utf8_lossy(&dry_run.stderr);
    assert!(
        listed.starts_with("3 derivations would be built:"),
        "{listed}"
    );
    assert!(
        listed.contains("-report.drv (missing output out)"),
        "{listed}"
    );
    assert!(!t.work().join("result").exists());

    let printed = ok(&t.kiln(&["realise", example]));
    let out = PathBuf::from(printed.trim());
    assert!(out.starts_with(t.root().join("store")), "{printed}");
    assert_eq!(std::fs::read_link(t.work().join("result")).unwrap(), out);
    assert_eq!(
        std::fs::read_to_string(t.work().join("result/greeting")).unwrap(),
        "hello from kiln\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.work().join("result/count"))
            .unwrap()
            .trim(),
        "10"
    );
    assert_eq!(t.build_attempts().len(), 3);

    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let again = ok(&t.kiln(&["realise", example]));
        times.push(start.elapsed());
        assert_eq!(again, printed);
    }
    times.sort();
    // Nothing was rebuilt, and the no-op is fast (median of five).
    assert!(t.build_attempts().iter().all(|(_, n)| *n == 1));
    assert!(
        times[2] < Duration::from_millis(if cfg!(debug_assertions) { 150 } else { 50 }),
        "{times:?}"
    );

    let log = ok(&t.kiln(&["log", "result"]));
    assert_eq!(log, "report done\n");
    let info = ok(&t.kiln(&["path-info", "-r", "result"]));
    assert_eq!(info.lines().count(), 2, "{info}");
    ok(&t.kiln(&["verify", "--check-contents"]));
}

#[test]
fn independent_builds_run_in_parallel_with_two_jobs() {
    if !sandbox_ready() {
        return;
    }
    let time_with = |jobs: &str| {
        let t = Sandbox::new();
        let file = t.expression(
            "sleepers.nix",
            r#"[ (sh "sleep-a" "$bb sleep 2; echo a > $out") (sh "sleep-b" "$bb sleep 2; echo b > $out") ]"#,
        );
        let start = Instant::now();
        let printed = ok(&t.kiln(&["realise", "-j", jobs, file.to_str().unwrap()]));
        let elapsed = start.elapsed();
        assert_eq!(printed.lines().count(), 2);
        assert!(t.work().join("result").exists() && t.work().join("result-2").exists());
        elapsed
    };
    let parallel = time_with("2");
    let serial = time_with("1");
    assert!(
        parallel >= Duration::from_secs(2) && parallel < Duration::from_millis(3500),
        "{parallel:?}"
    );
    assert!(serial >= Duration::from_secs(4), "{serial:?}");
}

#[test]
fn fixed_output_hash_mismatch_fails_naming_both_hashes() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    // Wanted: sha256 of "something else"; the builder writes "hello\n". Values from
    // sha256sum and nix-hash.
    let file = t.expression(
        "fod.nix",
        r#"derivation {
          name = "fod";
          system = builtins.currentSystem;
          builder = "${busybox}/busybox";
          args = [ "sh" "-c" "echo hello > $out" ];
          outputHashMode = "flat";
          outputHashAlgo = "sha256";
          outputHash = "sha256-9B8/piX/Eg3cp+9Fa/ZjcezqI8Ep9OTDI2cQHttRbPg=";
        }"#,
    );
    let output = t.kiln(&["realise", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "sha256-9B8/piX/Eg3cp+9Fa/ZjcezqI8Ep9OTDI2cQHttRbPg=",
        "1y3ca7diw4374g1y9x19q4iymv3icgv6nigglzf0s4pz4nk3y7zl",
        "sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=",
        "00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq",
    ] {
        assert!(stderr.contains(expected), "{stderr} lacks {expected}");
    }
    let out = stderr
        .split_whitespace()
        .find(|word| word.starts_with("/kiln/store/") && word.ends_with("-fod:"))
        .unwrap_or_else(|| panic!("no output path in {stderr}"))
        .trim_end_matches(':');
    assert!(!t.kiln(&["path-info", out]).status.success());
    let leftovers: Vec<_> = std::fs::read_dir(t.root().join("store"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with("-fod"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Every byte value but NUL (which a Nix string cannot hold), so most of it is not UTF-8.
fn every_byte_but_nul() -> Vec<u8> {
    (1..=u8::MAX).collect()
}

#[test]
fn a_builder_gets_the_derivation_bytes_that_are_not_utf8_unchanged() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    let binary = every_byte_but_nul();
    std::fs::write(t.work().join("binary.dat"), &binary).unwrap();
    // The builder copies an environment value, an argument (`$0` of `sh -c`) and a
    // `passAsFile` file to its output, and the environment it was started with (the shell
    // drops variables whose names are not identifiers); every string there holds the file's
    // bytes or half of `é`.
    let file = t.expression(
        "bytes.nix",
        r#"let
          binary = builtins.readFile ./binary.dat;
          half = builtins.substring 0 1 "é";
        in derivation {
          name = "bytes";
          system = builtins.currentSystem;
          builder = "${busybox}/busybox";
          args = [ "sh" "-c" ''
            set -e; bb=${busybox}/busybox; $bb mkdir $out
            $bb printf '%s' "$value" > $out/value
            $bb printf '%s' "$0" > $out/argument
            $bb cat "$filedPath" > $out/filed
            $bb tr '\0' '\n' < /proc/$$/environ > $out/env
          '' (binary + half) ];
          value = binary;
          passAsFile = [ "filed" ];
          filed = half + binary;
          "name${half}" = "x${half}";
        }"#,
    );
    let printed = ok(&t.kiln(&["realise", file.to_str().unwrap()]));
    let out = PathBuf::from(printed.trim());
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    assert_eq!(read("value"), binary);
    assert_eq!(read("argument"), [&binary[..], b"\xc3"].concat());
    assert_eq!(read("filed"), [&b"\xc3"[..], &binary].concat());
    let env = read("env");
    assert!(
        env.split(|&byte| byte == b'\n')
            .any(|line| line == b"name\xc3=x\xc3"),
        "{}",
        String::from_utf8_lossy(&env)
    );
}

/// Waits until a build of the derivation named `name` has started (its log exists).
fn wait_for_build_start(t: &Sandbox, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !t
        .build_attempts()
        .iter()
        .any(|(log, _)| log.ends_with(&format!("-{name}.drv")))
    {
        assert!(
            Instant::now() < deadline,
            "the build of {name} never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_realise_leaves_a_store_that_the_next_one_completes() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    let file = t.expression(
        "slow.nix",
        r#"sh "slow" "$bb mkdir $out; echo partial > $out/a; $bb sleep 3; echo done > $out/b""#,
    );
    let file = file.to_str().unwrap();
    let mut child = t.spawn(&["realise", file]);
    wait_for_build_start(&t, "slow");
    std::thread::sleep(Duration::from_millis(300));
    // `Child::kill` is SIGKILL: kiln gets no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let builds = t.root().join("var/kiln/builds");
    assert!(
        build_dirs(&builds)
            .iter()
            .any(|name| name.starts_with("kiln-build-slow-")),
        "the killed build left no build directory under {}",
        builds.display()
    );
    let printed = ok(&t.kiln(&["realise", file]));
    let out = PathBuf::from(printed.trim());
    assert_eq!(std::fs::read_to_string(out.join("b")).unwrap(), "done\n");
    ok(&t.kiln(&["verify", "--check-contents"]));
    assert_eq!(
        build_dirs(&builds),
        Vec::<String>::new(),
        "stale build directories were left"
    );
}

/// The entries of the store's build-directory folder (directories and their lock files).
fn build_dirs(builds: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(builds)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn two_concurrent_realises_build_each_derivation_once() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    let file = t.expression(
        "graph.nix",
        r#"let
          a = sh "a" "$bb sleep 1; echo a > $out";
          b = sh "b" "$bb sleep 1; echo b > $out";
        in sh "top" "$bb cat ${a} ${b} > $out""#,
    );
    let file = file.to_str().unwrap();
    let first = t.spawn(&["realise", "--no-out-link", file]);
    let second = t.spawn(&["realise", "--no-out-link", file]);
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert_eq!(ok(&first), ok(&second));
    let attempts = t.build_attempts();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(attempts.iter().all(|(_, n)| *n == 1), "{attempts:?}");
}

#[test]
fn gc_deletes_unreachable_paths_and_spares_roots_and_running_builds() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    let file = t.expression(
        "gc.nix",
        r#"{
          kept = sh "kept" "echo kept > $out";
          dropped = sh "dropped" "echo dropped > $out";
          slow = sh "slow" "$bb sleep 2; echo slow > $out";
        }"#,
    );
    let file = file.to_str().unwrap();
    let kept = ok(&t.kiln(&["realise", "-A", "kept", "-o", "kept", file]));
    let dropped = ok(&t.kiln(&["realise", "-A", "dropped", "--no-out-link", file]));
    let mut slow = t.spawn(&["realise", "-A", "slow", "-o", "slow", file]);
    wait_for_build_start(&t, "slow");
    let gc = t.kiln(&["gc"]);
    ok(&gc);
    let slow_printed = {
        let status = slow.wait().unwrap();
        assert!(status.success());
        std::fs::read_link(t.work().join("slow")).unwrap()
    };
    assert_eq!(std::fs::read_to_string(&slow_printed).unwrap(), "slow\n");
    assert!(Path::new(kept.trim()).exists());
    assert!(!Path::new(dropped.trim()).exists());
    let gc_report = String::from_utf8_lossy(&gc.stderr);
    assert!(gc_report.contains("-dropped'"), "{gc_report}");
    assert!(!gc_report.contains("-busybox'"), "{gc_report}");
    ok(&t.kiln(&["verify", "--check-contents"]));
}

/// The honest fixed-output derivation of [`a_forged_drv_naming_an_honest_output_path_is_refused`]
/// (the hash is sha256 of "honest\n", from sha256sum).
const HONEST_PAYLOAD: &str = r#"
  honest = derivation {
    name = "payload";
    system = builtins.currentSystem;
    builder = "${busybox}/busybox";
    args = [ "sh" "-c" "printf 'honest\\n' > $out" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "sha256-ACScmun/8h3dsqSmyqQAM72ZNptmeKNeEFH8yNF138o=";
  };
"#;

#[test]
fn a_forged_drv_naming_an_honest_output_path_is_refused() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    // The attack: a `.drv` written with toFile (its own path is right: toFile makes a text
    // path with the busybox reference its contents carry) that is input-addressed but claims
    // the honest fixed-output path, so that building it would register "forged" there. A
    // harmless-looking derivation depends on it through appendContext.
    let attack = t.expression(
        "attack.nix",
        &format!(
            r#"let
  {HONEST_PAYLOAD}
  target = builtins.unsafeDiscardStringContext honest.outPath;
  bb = "${{busybox}}/busybox";
  system = builtins.currentSystem;
  forgedText = ''Derive([("out","${{target}}","","")],[],["${{busybox}}"],"${{system}}","${{bb}}",["sh","-c","echo forged > $out"],[("builder","${{bb}}"),("name","forged"),("out","${{target}}"),("system","${{system}}")])'';
  forgedFile = builtins.unsafeDiscardStringContext (builtins.toFile "forged.drv" forgedText);
  forged = builtins.appendContext forgedFile {{ ${{forgedFile}} = {{ outputs = [ "out" ]; }}; }};
in {{
  attack = sh "innocent" "echo ${{forged}} > $out";
  inherit honest target;
}}"#
        ),
    );
    let attack_path = attack.to_str().unwrap();
    let target = ok(&t.kiln(&["eval", "--json", attack_path, "-A", "target"]));
    let target = target.trim().trim_matches('"');
    assert!(target.ends_with("-payload"), "{target}");

    let output = t.kiln(&["realise", attack_path, "-A", "attack"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-forged.drv"), "{stderr}");
    assert!(
        stderr.contains(&format!("claims the output `out` at {target}")),
        "{stderr}"
    );
    assert!(stderr.contains("-forged"), "{stderr}");
    assert!(!t.kiln(&["path-info", target]).status.success());
    let physical = t.root().join("store").join(&target["/kiln/store/".len()..]);
    assert!(!physical.exists(), "something was written at {target}");

    // The honest derivation then builds its own content at its path.
    let realised = ok(&t.kiln(&["realise", attack_path, "-A", "honest"]));
    assert_eq!(Path::new(realised.trim()), physical);
    assert_eq!(std::fs::read(&physical).unwrap(), b"honest\n");
    ok(&t.kiln(&["verify", "--check-contents"]));
}

#[test]
fn log_and_the_failure_tail_strip_terminal_control_sequences() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    // The builder retitles the terminal (OSC 0 ... BEL), clears it (CSI 2J) and hides text
    // behind a bare carriage return, then fails.
    let file = t.expression(
        "noisy.nix",
        r#"sh "noisy" "printf 'start\\033]0;pwned\\007 title\n\\033[2Jcleared\tkept\nhidden\rshown\n'; exit 1""#,
    );
    let output = t.kiln(&["realise", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let check = |text: &str| {
        assert!(
            !text.contains(|c: char| c.is_control() && c != '\n' && c != '\t'),
            "{text:?}"
        );
        assert!(text.contains("start title\n"), "{text:?}");
        assert!(text.contains("cleared\tkept\n"), "{text:?}");
        assert!(text.contains("hiddenshown\n"), "{text:?}");
    };
    check(&stderr);
    let drv = stderr
        .split_whitespace()
        .find(|word| word.ends_with("-noisy.drv"))
        .unwrap_or_else(|| panic!("no .drv in {stderr}"));
    let log = t.kiln(&["log", drv]);
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    check(&String::from_utf8_lossy(&log.stdout));
    // The log file itself keeps what the builder printed.
    let raw = std::fs::read_dir(t.root().join("var/log/drvs"))
        .unwrap()
        .flatten()
        .flat_map(|prefix| std::fs::read_dir(prefix.path()).unwrap().flatten())
        .map(|entry| std::fs::read(entry.path()).unwrap())
        .find(|bytes| bytes.windows(5).any(|w| w == b"pwned"))
        .expect("the raw log");
    assert!(raw.contains(&0x1b));
}

/// The build groups kiln made under its own group of the v1 `pids` hierarchy (this machine's
/// kind of host) or of the v2 tree, for the leftover check.
fn leftover_build_groups() -> Vec<PathBuf> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut parents = vec![PathBuf::from("/sys/fs/cgroup/kiln")];
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        if controllers == Some("pids") {
            let own = path.unwrap_or("/").trim_start_matches('/');
            parents.push(Path::new("/sys/fs/cgroup/pids").join(own).join("kiln"));
        }
    }
    parents
        .iter()
        .flat_map(|parent| std::fs::read_dir(parent).into_iter().flatten().flatten())
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("build-"))
        })
        .collect()
}

/// Under CI=true, a root kiln must be able to make build groups; elsewhere the test skips when
/// it is not root.
fn limits_enforceable() -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true: the resource-limit tests run as root"
    );
    eprintln!("skipping: resource limits are tested as root");
    false
}

#[test]
fn a_fork_bomb_stops_at_max_build_pids_and_its_group_is_removed() {
    if !sandbox_ready() || !limits_enforceable() {
        return;
    }
    let t = Sandbox::new();
    let script =
        r#"i=0; while [ $i -lt 100 ]; do $bb sleep 3 & i=$((i+1)); done; wait; echo $i > $out"#;
    let file = t.expression("forks.nix", &format!("sh \"forks\" {script:?}"));
    let file = file.to_str().unwrap();
    let child = t.spawn(&["realise", "--max-build-pids", "32", file]);
    let kiln_pid = child.id();
    let limited = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert!(
        !limited.status.success(),
        "100 processes under a limit of 32: {stderr}"
    );
    assert!(stderr.contains("fork"), "{stderr}");
    // The group of that build (named after the kiln process) is gone.
    let marker = format!("build-{kiln_pid}-");
    let leftovers: Vec<PathBuf> = leftover_build_groups()
        .into_iter()
        .filter(|path| path.to_string_lossy().contains(&marker))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The default limit (4096) lets the same build run.
    let printed = ok(&t.kiln(&["realise", file]));
    assert_eq!(
        std::fs::read_to_string(printed.trim()).unwrap().trim(),
        "100"
    );
}

#[test]
fn memory_beyond_max_build_memory_is_refused_in_tmpfs_and_killed_in_ram() {
    if !sandbox_ready() || !limits_enforceable() {
        return;
    }
    let t = Sandbox::new();
    let file = t.expression(
        "memory.nix",
        r#"{
          shm = sh "fill-shm" "$bb dd if=/dev/zero of=/dev/shm/fill bs=1M count=200; echo > $out";
          ram = sh "fill-ram" "$bb awk 'BEGIN { s = \"x\"; while (1) s = s s }'; echo > $out";
          small = sh "small" "$bb dd if=/dev/zero of=/dev/shm/fill bs=1M count=8; echo ok > $out";
        }"#,
    );
    let file = file.to_str().unwrap();
    let realise = |attr: &str| t.kiln(&["realise", "--max-build-memory", "64M", "-A", attr, file]);
    let shm = realise("shm");
    let stderr = String::from_utf8_lossy(&shm.stderr);
    assert!(
        !shm.status.success(),
        "200 MB in a 64 MB /dev/shm: {stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let ram = realise("ram");
    let stderr = String::from_utf8_lossy(&ram.stderr);
    assert!(!ram.status.success(), "{stderr}");
    assert!(
        stderr.contains("memory limit of 67108864 bytes (max-build-memory)"),
        "{stderr}"
    );
    ok(&realise("small"));
}

/// The derivation `use` of a `rootfs` test: a busybox build whose root file system is
/// `rootfs` (a Nix expression).
fn rootfs_user(rootfs: &str) -> String {
    format!(
        r#"derivation {{
          name = "use";
          system = builtins.currentSystem;
          builder = "${{busybox}}/busybox";
          args = [ "sh" "-c" "echo hi > $out" ];
          rootfs = {rootfs};
        }}"#
    )
}

#[test]
fn a_rootfs_layer_that_is_a_symlink_to_a_host_directory_is_refused() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    // The attack: an output that is a symlink to the host's /etc, used as a root layer,
    // would make overlayfs show the host's /etc as the build's `/`.
    let evil = r#"sh "evil" "$bb ln -s /etc $out""#;
    let printed = ok(&t.kiln(&["realise", t.expression("evil.nix", evil).to_str().unwrap()]));
    let evil_name = PathBuf::from(printed.trim())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let file = t.expression("use.nix", &rootfs_user(&format!("({evil})")));
    let output = t.kiln(&["realise", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`rootfs` layer `/kiln/store/{evil_name}` is refused"
        )) && stderr.contains("symbolic link"),
        "{stderr}"
    );
}

#[test]
fn a_rootfs_layer_outside_the_input_closure_is_refused() {
    if !sandbox_ready() {
        return;
    }
    let t = Sandbox::new();
    std::fs::create_dir_all(t.work().join("layer/etc")).unwrap();
    std::fs::write(t.work().join("layer/etc/os-release"), "ID=layer\n").unwrap();
    // Imported at evaluation: a valid store path owned by the store's owner.
    let layer = r#"builtins.path { name = "layer"; path = ./layer; }"#;
    let printed = ok(&t.kiln(&[
        "eval",
        t.expression("layer.nix", &format!("{layer} + \"\""))
            .to_str()
            .unwrap(),
    ]));
    let layer_name = printed
        .trim()
        .trim_matches('"')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // The path without its context: a valid store path the derivation does not depend on.
    let file = t.expression(
        "use.nix",
        &rootfs_user(&format!(
            r#"builtins.unsafeDiscardStringContext "${{{layer}}}""#
        )),
    );
    let output = t.kiln(&["realise", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`rootfs` layer `/kiln/store/{layer_name}` is refused"
        )) && stderr.contains("not in the derivation's input closure"),
        "{stderr}"
    );
    // With its context the same layer is used.
    let file = t.expression(
        "use-ok.nix",
        &rootfs_user(&format!("({layer})")).replace("echo hi", "cat /etc/os-release"),
    );
    let printed = ok(&t.kiln(&["realise", file.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(printed.trim()).unwrap(),
        "ID=layer\n"
    );
}
