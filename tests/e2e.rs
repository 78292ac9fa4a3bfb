//! End to end, offline: the stdlib's CentOS-Stream-to-AlmaLinux bootstrap run against local
//! fixtures (`tests/e2e/make-fixtures.sh`: signed RPM repositories laid out as AlmaLinux's
//! vault, and a stand-in container base with dnf — and device nodes and a fifo in its layer, as
//! real bases have — in the real tarball's `docker save` layout)
//! served on 127.0.0.1. `realise` first fails naming the `kiln lock` command (no lock, then a
//! stale one); `kiln lock` writes the lock and prints the package diff; then it realises,
//! checks the root filesystem (rpm database, `/etc/os-release`, a `%post` scriptlet), that a
//! second realise builds nothing, that `--check` rebuilds to the same NAR hash, that the
//! result works as a `rootfs`, and that a cosmetic change to the (content-addressed) CentOS
//! step's script rebuilds the CentOS root but nothing built in it (early cutoff), and a
//! change to the CentOS root that the AlmaLinux root does not see stops at the AlmaLinux root.
//!
//! The expression is the real one except for the base tarball's hash: the pinned CentOS
//! compose URL and the default vault repositories (gpgcheck on) are sent to the fixture server
//! by `[[rewrite]]` rules in the test's configuration, as an organisation's mirror would be.
//! The lock records the original vault URLs.
//!
//! Needs root (debootstrap makes the fixture base), rpm, gpg, createrepo-c, debootstrap,
//! busybox-static and the Debian mirror the first time (fixtures are cached by content under
//! `KILN_E2E_CACHE`, default the target directory). Skips with a reason when something is
//! missing, except under `CI=true`, where it fails.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns why the test cannot run here, if it cannot.
fn missing_requirement() -> Option<String> {
    // debootstrap (making the fixture base) needs root; the owner of /proc/self is our user.
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if uid.map_or(true, |uid| uid != 0) {
        return Some("making the fixtures (debootstrap) needs root".to_owned());
    }
    for tool in [
        "rpmbuild",
        "rpmsign",
        "gpg",
        "createrepo_c",
        "debootstrap",
        "busybox",
        "xz",
        "rpm",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// Serves the files under `root` over HTTP/1.0 on 127.0.0.1 (GET only); returns the port.
fn serve(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || answer(stream, &root));
        }
    });
    port
}

fn answer(mut stream: TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let relative = path.trim_start_matches('/');
    let file = root.join(relative);
    let head = request.starts_with("HEAD ");
    let inside = !relative.split('/').any(|part| part == "..");
    match std::fs::File::open(&file)
        .ok()
        .filter(|_| inside && file.is_file())
    {
        Some(mut opened) => {
            let length = opened.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            );
            if !head {
                let mut buffer = vec![0; 1 << 16];
                while let Ok(n) = opened.read(&mut buffer) {
                    if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        None => {
            let _ = write!(
                stream,
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    }
}

fn kiln(store: &Path, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .current_dir(dir)
        .env_remove("KILN_PATH")
        .env_remove("KILN_STORE_DIR")
        .arg("--store")
        .arg(store);
    command
}

fn succeeded(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The fixture variables `make-fixtures.sh` writes (`NAME='value'` lines).
fn fixture_env(dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("fixtures.env"))
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

const EXPRESSION: &str = r#"
{ baseSha256 }:
let
  kiln = import <kiln> { };
  # The pinned compose URL is kept (a [[rewrite]] rule sends the fetch to the fixture
  # server); only the hash is the fixture's.
  base = kiln.bootstrap.centosStream9 { sha256 = baseSha256; };
  packages = [ "almalinux-release" "greeter" ];
in
rec {
  root = kiln.bootstrap.alma9 { inherit packages base; lock = ./lock.json; };
  usesRoot = kiln.runInRoot {
    name = "uses-root";
    rootfs = root;
    script = "greet > $out; cat /etc/os-release >> $out";
  };
}
"#;

/// A lock made for another package set, with versions that differ from the fixtures'.
const STALE_LOCK: &str = r#"{"arch":"ARCH","packages":[{"arch":"noarch","epoch":"0","name":"almalinux-release","release":"1.el9","sha256":"00","url":"https://vault.almalinux.org/9.4/BaseOS/ARCH/os/Packages/almalinux-release-9.3-1.el9.noarch.rpm","version":"9.3"},{"arch":"ARCH","epoch":"0","name":"foo","release":"1","sha256":"00","url":"https://vault.almalinux.org/9.4/BaseOS/ARCH/os/Packages/foo-1.0-1.ARCH.rpm","version":"1.0"}],"release":"9.4","repositories":[],"request":["almalinux-release"]}"#;

#[test]
fn alma9_bootstrap_from_local_fixtures() {
    if let Some(reason) = missing_requirement() {
        assert!(!in_ci(), "the e2e test cannot run under CI: {reason}");
        eprintln!("skipping the e2e test: {reason}");
        return;
    }
    let started = Instant::now();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = std::env::var_os("KILN_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target/e2e-fixtures"));
    let made = Command::new("sh")
        .arg(manifest.join("tests/e2e/make-fixtures.sh"))
        .arg(&cache)
        .output()
        .unwrap();
    // The script prints the fixture directory last; the tools it runs (rpmbuild…) may print
    // before it on a first run.
    let printed = succeeded("make-fixtures.sh", made);
    let fixtures = PathBuf::from(printed.lines().last().unwrap_or_default());
    let vars = fixture_env(&fixtures);
    eprintln!("fixtures ready after {:?}", started.elapsed());
    let port = serve(fixtures.clone()).to_string();

    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("default.nix"), EXPRESSION).unwrap();
    // An organisation's mirror, as a user would configure it: the pinned compose URL and the
    // vault are rewritten to the fixture server at fetch (and lock) time, so no path changes.
    let arch = &vars["ARCH"];
    let config = work.path().join("kiln.toml");
    std::fs::write(
        &config,
        format!(
            "[[rewrite]]\nfrom = \"https://cloud.centos.org/centos/9-stream/{arch}/images/CentOS-Stream-Container-Base-9-20240715.0.{arch}.tar.xz\"\nto = \"http://127.0.0.1:{port}/base.tar.xz\"\n\
             [[rewrite]]\nfrom = \"https://vault.almalinux.org/\"\nto = \"http://127.0.0.1:{port}/vault/\"\n"
        ),
    )
    .unwrap();
    let run = |verb: &str, extra: &[&str]| -> Output {
        kiln(store.path(), work.path())
            .arg("--config")
            .arg(&config)
            .arg(verb)
            .args(["--argstr", "baseSha256", &vars["BASE_SHA256"]])
            .args(extra)
            .output()
            .unwrap()
    };
    let realise = |extra: &[&str]| run("realise", extra);
    let result = work.path().join("result");
    let result_link = result.to_str().unwrap();
    let lock_command = format!(
        "run: kiln --store {} --config {} lock -A root --argstr baseSha256 {}\n",
        store.path().display(),
        config.display(),
        vars["BASE_SHA256"]
    );

    // No lock yet: realise fails, naming the command that writes it.
    let unlocked = realise(&["-A", "root", "--no-out-link"]);
    let stderr = String::from_utf8_lossy(&unlocked.stderr).into_owned();
    assert!(!unlocked.status.success(), "{stderr}");
    assert!(stderr.contains("does not exist yet"), "{stderr}");
    assert!(stderr.contains(&lock_command), "{stderr}");
    // A build using the root as its rootfs: the command selects the root through it.
    let nested = realise(&["-A", "usesRoot", "--no-out-link"]);
    let stderr = String::from_utf8_lossy(&nested.stderr).into_owned();
    assert!(!nested.status.success(), "{stderr}");
    assert!(
        stderr.contains(&lock_command.replace("-A root", "-A usesRoot.rootfs")),
        "{stderr}"
    );
    // A stale lock: the same.
    let lock_file = work.path().join("lock.json");
    std::fs::write(&lock_file, STALE_LOCK.replace("ARCH", arch)).unwrap();
    let stale = realise(&["-A", "root", "--no-out-link"]);
    let stderr = String::from_utf8_lossy(&stale.stderr).into_owned();
    assert!(!stale.status.success(), "{stderr}");
    assert!(stderr.contains("is stale"), "{stderr}");
    assert!(stderr.contains(&lock_command), "{stderr}");

    // kiln lock: the only non-fixed-output step with network; dnf checks the signatures.
    let diff = succeeded("kiln lock", run("lock", &["-A", "root"]));
    eprintln!("locked after {:?}:\n{diff}", started.elapsed());
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "~ almalinux-release 9.3-1.el9 → 9.4-1.el9",
            "+ busybox-kiln 1.0-1.el9",
            "- foo 1.0-1",
            "+ greeter 2.0-3.el9",
        ],
        "{diff}"
    );
    let lock_text = std::fs::read_to_string(&lock_file).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&lock_text).unwrap();
    let packages = lock["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["almalinux-release", "busybox-kiln", "greeter"]);
    // The lock records the vault's URLs, not the mirror's.
    let urls: Vec<&str> = packages
        .iter()
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "https://vault.almalinux.org/9.4/BaseOS/ARCH/os/Packages/almalinux-release-9.4-1.el9.noarch.rpm".replace("ARCH", arch),
            format!("https://vault.almalinux.org/9.4/BaseOS/{arch}/os/Packages/busybox-kiln-1.0-1.el9.{arch}.rpm"),
            format!("https://vault.almalinux.org/9.4/AppStream/{arch}/os/Packages/greeter-2.0-3.el9.noarch.rpm"),
        ]
    );
    assert!(lock["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["gpgcheck"] == true));
    let again = succeeded("second kiln lock", run("lock", &["-A", "root"]));
    assert_eq!(again, "lock is up to date: lock.json");

    let built = succeeded(
        "realise -A root",
        realise(&["-A", "root", "-o", result_link]),
    );
    eprintln!("built {built} after {:?}", started.elapsed());
    let packages = succeeded(
        "rpm -qa",
        Command::new("rpm")
            .arg("--root")
            .arg(&result)
            .args(["--dbpath", "/var/lib/rpm", "-qa", "--qf", "%{NAME}\n"])
            .output()
            .unwrap(),
    );
    let mut packages: Vec<&str> = packages.lines().collect();
    packages.sort();
    assert_eq!(packages, ["almalinux-release", "busybox-kiln", "greeter"]);
    let os_release = std::fs::read_to_string(result.join("etc/os-release")).unwrap();
    assert!(os_release.contains("ID=\"almalinux\""), "{os_release}");
    let post = std::fs::read_to_string(result.join("var/lib/greeter/post-ran")).unwrap();
    assert_eq!(post, "post ran\n");
    // The base's layer holds /dev/console, /dev/null and a fifo: skipped by the unpack, so the
    // root has no such entries.
    for node in ["dev/console", "dev/null", "run/initctl"] {
        assert!(
            std::fs::symlink_metadata(result.join(node)).is_err(),
            "{node} reached the store"
        );
    }

    // A second realise builds nothing.
    let again = realise(&["-A", "root", "--no-out-link"]);
    let again_err = String::from_utf8_lossy(&again.stderr).into_owned();
    assert_eq!(succeeded("second realise", again), built);
    assert!(!again_err.contains("building"), "{again_err}");
    // --check rebuilds to the same NAR hash.
    succeeded(
        "realise --check",
        realise(&["-A", "root", "--check", "--no-out-link"]),
    );
    let installed = succeeded(
        "rpm -qa installtime",
        Command::new("rpm")
            .arg("--root")
            .arg(&result)
            .args([
                "--dbpath",
                "/var/lib/rpm",
                "-qa",
                "--qf",
                "%{INSTALLTIME}\n",
            ])
            .output()
            .unwrap(),
    );
    assert!(installed.lines().all(|t| t == "1"), "{installed}");

    let used = succeeded(
        "realise -A usesRoot",
        realise(&["-A", "usesRoot", "--no-out-link"]),
    );
    let text = std::fs::read_to_string(used.lines().last().unwrap()).unwrap();
    assert!(text.starts_with("hello from greeter\n"), "{text}");
    assert!(text.contains("AlmaLinux"), "{text}");

    // Early cutoff on the real library: a cosmetic change to the CentOS step's script (a copy
    // of the stdlib given with -I) rebuilds the CentOS root — content-addressed, to the same
    // bytes — and nothing built in it: the AlmaLinux root and the step using it are the
    // derivations built before once resolved.
    let library = work.path().join("stdlib-cosmetic");
    succeeded(
        "copying the stdlib",
        Command::new("cp")
            .arg("-a")
            .arg(manifest.join("stdlib"))
            .arg(&library)
            .output()
            .unwrap(),
    );
    let bootstrap = library.join("bootstrap.nix");
    let original = std::fs::read_to_string(&bootstrap).unwrap();
    let marker =
        "        set -eu\n        mkdir -p \"$out\"\n        # The root as the build sees it";
    assert!(original.contains(marker), "the CentOS step's script moved");
    std::fs::write(
        &bootstrap,
        original.replacen(
            marker,
            &marker.replacen("set -eu\n", "set -eu\n        # a cosmetic change\n", 1),
            1,
        ),
    )
    .unwrap();
    let cosmetic = kiln(store.path(), work.path())
        .arg("-I")
        .arg(format!("kiln={}", library.display()))
        .arg("--config")
        .arg(&config)
        .arg("realise")
        .args(["--argstr", "baseSha256", &vars["BASE_SHA256"]])
        .args(["-A", "usesRoot", "--no-out-link"])
        .output()
        .unwrap();
    let cosmetic_err = String::from_utf8_lossy(&cosmetic.stderr).into_owned();
    assert_eq!(succeeded("realise after a cosmetic change", cosmetic), used);
    let built_lines: Vec<&str> = cosmetic_err
        .lines()
        .filter(|l| l.starts_with("built '"))
        .collect();
    assert_eq!(built_lines.len(), 1, "{cosmetic_err}");
    assert!(
        built_lines[0].contains(&format!("-centos-stream-9-{arch}.drv'")),
        "{cosmetic_err}"
    );
    for unchanged in [
        format!("-almalinux-9.4-{arch}.drv'"),
        "-uses-root.drv'".to_owned(),
    ] {
        assert!(
            cosmetic_err
                .lines()
                .any(|l| l.contains(&unchanged) && l.contains("is unchanged once resolved")),
            "{unchanged}: {cosmetic_err}"
        );
    }

    // A change to the CentOS root that the AlmaLinux root does not see (one more file in the
    // base): the CentOS root and the AlmaLinux root are rebuilt, the AlmaLinux root comes out
    // bit-identical (dnf installs into its own root), and the step using it is not rebuilt.
    let cosmetic_text = std::fs::read_to_string(&bootstrap).unwrap();
    assert!(cosmetic_text.contains(": > \"$out\"/etc/resolv.conf\n"));
    std::fs::write(
        &bootstrap,
        cosmetic_text.replacen(
            ": > \"$out\"/etc/resolv.conf\n",
            ": > \"$out\"/etc/resolv.conf\n        echo note > \"$out\"/etc/kiln-note\n",
            1,
        ),
    )
    .unwrap();
    let changed_base = kiln(store.path(), work.path())
        .arg("-I")
        .arg(format!("kiln={}", library.display()))
        .arg("--config")
        .arg(&config)
        .arg("realise")
        .args(["--argstr", "baseSha256", &vars["BASE_SHA256"]])
        .args(["-A", "usesRoot", "--no-out-link"])
        .output()
        .unwrap();
    let changed_err = String::from_utf8_lossy(&changed_base.stderr).into_owned();
    assert_eq!(
        succeeded("realise after a change to the base", changed_base),
        used
    );
    let built_lines: Vec<&str> = changed_err
        .lines()
        .filter(|l| l.starts_with("built '"))
        .collect();
    assert_eq!(built_lines.len(), 2, "{changed_err}");
    assert!(
        changed_err
            .lines()
            .any(|l| l.contains("-uses-root.drv'") && l.contains("is unchanged once resolved")),
        "{changed_err}"
    );
    eprintln!("e2e done after {:?}", started.elapsed());
}
