//! End to end, offline: the stdlib's CentOS-Stream-to-AlmaLinux bootstrap run against local
//! fixtures (`tests/e2e/make-fixtures.sh`: a small RPM repository and a stand-in container
//! base with dnf) served on 127.0.0.1. It locks, realises, checks the root filesystem (rpm
//! database, `/etc/os-release`, a `%post` scriptlet), that a second realise builds nothing,
//! that `--check` rebuilds to the same NAR hash, and that the result works as a `rootfs`.
//!
//! The expression differs from a real one only in the base tarball's hash (its pinned URL is
//! sent to the fixture server by a `[[rewrite]]` rule in the test's configuration) and in the
//! repository it locks against (the fixture repository is unsigned, so `gpgcheck = false`).
//!
//! Needs root (debootstrap makes the fixture base), rpm, createrepo-c, debootstrap,
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
{ port, baseSha256 }:
let
  kiln = import <kiln> { };
  # The pinned URL is kept; a [[rewrite]] rule in the test's configuration sends the fetch to
  # the fixture server. Only the hash is the fixture's.
  base = kiln.bootstrap.centosStream9 { sha256 = baseSha256; };
  repos = [ {
    name = "fixtures";
    baseurl = "http://127.0.0.1:${port}/repo/";
    gpgcheck = false;
  } ];
  packages = [ "almalinux-release" "greeter" ];
in
rec {
  lock = kiln.rpm.lock { inherit packages base repos; };
  root = kiln.bootstrap.alma9 { inherit packages base; lock = ./lock.json; };
  usesRoot = kiln.runInRoot {
    name = "uses-root";
    rootfs = root;
    script = "greet > $out; cat /etc/os-release >> $out";
  };
}
"#;

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
    // An organisation's mirror, as a user would configure it: the pinned compose URL is
    // rewritten to the fixture server at fetch time, so no path changes.
    let arch = &vars["ARCH"];
    let config = work.path().join("kiln.toml");
    std::fs::write(
        &config,
        format!(
            "[[rewrite]]\nfrom = \"https://cloud.centos.org/centos/9-stream/{arch}/images/CentOS-Stream-Container-Base-9-20240715.0.{arch}.tar.xz\"\nto = \"http://127.0.0.1:{port}/base.tar.xz\"\n"
        ),
    )
    .unwrap();
    let realise = |extra: &[&str]| -> Output {
        kiln(store.path(), work.path())
            .arg("--config")
            .arg(&config)
            .arg("realise")
            .args(["--argstr", "port", &port])
            .args(["--argstr", "baseSha256", &vars["BASE_SHA256"]])
            .args(extra)
            .output()
            .unwrap()
    };
    let result = work.path().join("result");
    let result_link = result.to_str().unwrap();

    // Lock: the only non-fixed-output step with network.
    let lock_out = succeeded(
        "realise -A lock",
        realise(&["-A", "lock", "--allow-network", "--no-out-link"]),
    );
    let lock_text = std::fs::read_to_string(lock_out.lines().last().unwrap()).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&lock_text).unwrap();
    let names: Vec<&str> = lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["almalinux-release", "busybox-kiln", "greeter"]);
    std::fs::write(work.path().join("lock.json"), &lock_text).unwrap();
    eprintln!("locked after {:?}", started.elapsed());

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
    eprintln!("e2e done after {:?}", started.elapsed());
}
