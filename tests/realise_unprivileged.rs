//! `kiln realise` run by an unprivileged user: the README's busybox example builds in the
//! sandbox without root, through user namespaces alone. When the tests run as root, the
//! binary and the example are copied somewhere world-readable and run as `nobody` with
//! `setpriv`; as any other user they run as they are. Under CI=true a missing prerequisite
//! (busybox, user namespaces, setpriv) fails the test; elsewhere it is skipped with the reason.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The tests copy the kiln binary and execute the copy: run one at a time, or a copy still
/// open for writing in one test's thread is inherited by the other's fork and `exec` fails
/// with "Text file busy".
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn skip_or_fail(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {reason}");
    }
    eprintln!("skipping: {reason}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_busybox_example_builds_without_root() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !Path::new("/bin/busybox").exists() {
        return skip_or_fail("busybox is not installed at /bin/busybox");
    }
    let is_root = running_as_root();
    let setpriv_works = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "unshare",
            "-Ur",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if is_root && !setpriv_works {
        return skip_or_fail(
            "unprivileged user namespaces are not available (setpriv nobody unshare -Ur)",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let kiln = copy_of_kiln(tmp.path());
    let example = tmp.path().join("busybox");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox"),
        &example,
    );
    for file in [&example, &example.join("default.nix")] {
        let mode = if file.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let output = kiln_in(&kiln, tmp.path(), is_root)
        .arg("realise")
        .arg("-o")
        .arg(tmp.path().join("result"))
        .arg(&example)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "unprivileged realise failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let greeting = std::fs::read_to_string(tmp.path().join("result/greeting")).unwrap();
    assert_eq!(greeting, "hello from kiln\n");
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(tmp.path().join("store/store")).unwrap(),
    );
    if is_root {
        assert_eq!(owner, 65534, "the store belongs to the user who built it");
        // This host's memory and pids controllers are not delegated to that user: the builds
        // ran without their limits, and kiln says so instead of weakening them silently.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let delegated = std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
            .is_ok_and(|controllers| controllers.contains("memory"));
        if !delegated {
            assert!(
                stderr.contains("warning: this build ran without its memory and process limits"),
                "{stderr}"
            );
        }
    }
}

/// The attack: a `rootfs` layer whose `/tmp` and `/kiln` are links to a directory of the user
/// running kiln. Before the build enters its root, kiln makes the mount points and opens
/// `/tmp` to everyone: followed, those links would give the user's directory mode 1777 and a
/// new `store` directory. Rootless, kiln acts as that user, so only never following links
/// inside the root protects the directory.
#[test]
fn a_rootless_rootfs_build_does_not_write_through_the_layers_links() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !Path::new("/bin/busybox").exists() {
        return skip_or_fail("busybox is not installed at /bin/busybox");
    }
    let is_root = running_as_root();
    let tmp = tempfile::tempdir().unwrap();
    let kiln = copy_of_kiln(tmp.path());
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("notes"), "the user's own file\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    let expression = tmp.path().join("attack.nix");
    std::fs::write(
        &expression,
        format!(
            r#"
let
  busybox = builtins.path {{
    name = "busybox";
    path = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
    filter = path: type: baseNameOf path == "busybox";
  }};
  sh = name: script: extra: derivation ({{
    inherit name;
    system = builtins.currentSystem;
    builder = "${{busybox}}/busybox";
    args = [ "sh" "-c" script "${{busybox}}/busybox" ];
  }} // extra);
  layer = sh "links" "$0 mkdir -p $out/etc; $0 ln -s {victim} $out/tmp; $0 ln -s {victim} $out/kiln" {{ }};
in sh "use" "$0 echo hi > $out" {{ rootfs = layer; }}
"#,
            victim = victim.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&expression, std::fs::Permissions::from_mode(0o644)).unwrap();
    if is_root {
        // The user the victim directory belongs to runs kiln.
        std::os::unix::fs::chown(&victim, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::chown(victim.join("notes"), Some(65534), Some(65534)).unwrap();
    }
    let output = kiln_in(&kiln, tmp.path(), is_root)
        .args(["realise", "--no-out-link"])
        .arg(&expression)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("user namespace") && !output.status.success() && is_root {
        return skip_or_fail(&format!("no unprivileged user namespaces: {stderr}"));
    }
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the user's directory keeps its mode");
    let entries: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        ["notes"],
        "nothing was made in the user's directory"
    );
    assert!(output.status.success(), "the build still runs: {stderr}");
}

/// A world-readable copy of the kiln binary in `dir` (made world-writable), for `nobody`.
fn copy_of_kiln(dir: &Path) -> std::path::PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let kiln = dir.join("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &kiln).unwrap();
    std::fs::set_permissions(&kiln, std::fs::Permissions::from_mode(0o755)).unwrap();
    kiln
}

/// `kiln` run as `nobody` when the tests run as root (else as the current user), with its
/// home and store in `dir`; the caller adds the verb.
fn kiln_in(kiln: &Path, dir: &Path, is_root: bool) -> Command {
    let mut command = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(kiln);
        c
    } else {
        Command::new(kiln)
    };
    command
        .env("HOME", dir)
        .env_remove("KILN_STORE")
        .env_remove("KILN_STORE_DIR")
        .arg("--store")
        .arg(dir.join("store"));
    command
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
