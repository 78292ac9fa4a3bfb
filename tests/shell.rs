//! `kiln shell`: a command in a built root (a busybox root file system made by a derivation)
//! sees the root's `/etc/os-release` and not the host's files, its exit status is kiln's,
//! files it writes to the bound current directory belong to the invoking user (root, and an
//! unprivileged user through `setpriv`), the network is unreachable without `--network`,
//! writes to the root are discarded unless `--keep DIR`, `--bind`, `--ro-bind` and
//! `--keep-env` do what they say, and an interactive session driven through a pseudo-terminal
//! (`script`) shows its prompt and runs `exit 3`. Needs busybox and user namespaces; under
//! CI=true their absence (or that of `script`, `setpriv`) fails the tests.
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::sandbox::sandbox_ready;

/// A root file system of busybox applets with an `/etc/os-release`.
const ROOT: &str = r#"
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  };
in derivation {
  name = "busybox-root";
  system = builtins.currentSystem;
  builder = "${busybox}/busybox";
  args = [ "sh" "-c" ''
    set -e
    bb=${busybox}/busybox
    $bb mkdir -p $out/bin $out/etc $out/root
    $bb cp $bb $out/bin/busybox
    for applet in sh ls cat echo id touch stat mkdir rm nc env true sleep test; do
      $bb ln -s busybox $out/bin/$applet
    done
    echo 'ID=kiln-busybox' > $out/etc/os-release
  '' ];
}
"#;

fn skip_or_fail(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {reason}");
    }
    eprintln!("skipping: {reason}");
    false
}

fn running_as_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A world-readable directory with the kiln binary, the root expression, a store and a
/// project directory (the current directory of the sessions), usable by `nobody` too.
struct Place {
    dir: tempfile::TempDir,
    /// Run kiln as uid/gid 65534 through `setpriv` (the tests run as root in CI).
    unprivileged: bool,
}

impl Place {
    fn new(unprivileged: bool) -> Place {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        if unprivileged {
            // Where `nobody` can run it (the build tree may be private).
            let kiln = dir.path().join("kiln");
            std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &kiln).unwrap();
            std::fs::set_permissions(&kiln, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.path().join("root.nix"), ROOT).unwrap();
        let place = Place { dir, unprivileged };
        std::fs::create_dir(place.project()).unwrap();
        if unprivileged {
            std::os::unix::fs::chown(place.project(), Some(65534), Some(65534)).unwrap();
        }
        place
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn project(&self) -> PathBuf {
        self.path().join("project")
    }

    fn kiln(&self) -> PathBuf {
        if self.unprivileged {
            self.path().join("kiln")
        } else {
            PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let kiln = self.kiln();
        let mut command = if self.unprivileged {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&kiln);
            c
        } else {
            Command::new(&kiln)
        };
        command
            .arg("--store")
            .arg(self.path().join("store"))
            .args(args)
            .current_dir(self.project())
            .env("HOME", self.path().join("home"))
            .env_remove("KILN_STORE_DIR")
            .env_remove("KILN_LOG_FORMAT")
            .stdin(Stdio::null());
        command
    }

    /// `kiln shell ../root.nix [options] -- command…`.
    fn shell(&self, options: &[&str], command: &[&str]) -> Output {
        let mut args = vec!["shell", "../root.nix"];
        args.extend(options);
        args.push("--");
        args.extend(command);
        output_of(&mut self.command(&args))
    }
}

/// Runs `command`; a copied binary may be briefly busy (another test's fork held the copy's
/// descriptor open): try again then.
fn output_of(command: &mut Command) -> Output {
    for _ in 0..50 {
        match command.output() {
            Err(e) if e.raw_os_error() == Some(libc_etxtbsy()) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => return other.unwrap(),
        }
    }
    panic!("{command:?} stayed busy");
}

fn libc_etxtbsy() -> i32 {
    nix::errno::Errno::ETXTBSY as i32
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kiln shell failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn unprivileged_ready() -> bool {
    let works = Command::new("setpriv")
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
    works
        || skip_or_fail(
            "unprivileged user namespaces are not available (setpriv nobody unshare -Ur)",
        )
}

#[test]
fn a_command_sees_the_root_and_its_exit_status_is_kilns() {
    if !sandbox_ready() {
        return;
    }
    let place = Place::new(false);
    let secret = place.path().join("host-only");
    std::fs::write(&secret, "not for the session").unwrap();
    let text = stdout_of(&place.shell(&[], &["cat", "/etc/os-release"]));
    assert_eq!(text, "ID=kiln-busybox\n");
    // Outside the binds the host is out of sight; inside, the directory is the same path.
    let text = stdout_of(&place.shell(
        &[],
        &[
            "sh",
            "-c",
            &format!("test -e {} || echo hidden; pwd", secret.display()),
        ],
    ));
    assert_eq!(text, format!("hidden\n{}\n", place.project().display()));
    let failed = place.shell(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7));
    let killed = place.shell(&[], &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(killed.status.code(), Some(128 + 15));
    let missing = place.shell(&[], &["no-such-program"]);
    assert_ne!(missing.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("execve"), "{stderr}");
}

fn check_ownership(unprivileged: bool) {
    let place = Place::new(unprivileged);
    let text = stdout_of(&place.shell(
        &[],
        &[
            "sh",
            "-c",
            "id -u; touch made-inside; mkdir sub; echo data > sub/file",
        ],
    ));
    let (uid, gid) = if unprivileged { (65534, 65534) } else { (0, 0) };
    assert_eq!(text, format!("{uid}\n"), "the session is the invoking user");
    for path in ["made-inside", "sub", "sub/file"] {
        let metadata = std::fs::metadata(place.project().join(path)).unwrap();
        assert_eq!(
            (metadata.uid(), metadata.gid()),
            (uid, gid),
            "{path} belongs to the invoking user"
        );
    }
    assert_eq!(
        std::fs::read_to_string(place.project().join("sub/file")).unwrap(),
        "data\n"
    );
}

#[test]
fn files_written_to_the_current_directory_belong_to_root_when_root_runs_it() {
    if !sandbox_ready() {
        return;
    }
    if !running_as_root() {
        eprintln!("skipping: not running as root");
        return;
    }
    check_ownership(false);
}

#[test]
fn files_written_to_the_current_directory_belong_to_an_unprivileged_user() {
    if !sandbox_ready() {
        return;
    }
    if running_as_root() {
        if !unprivileged_ready() {
            return;
        }
        check_ownership(true);
    } else {
        check_ownership(false);
    }
}

#[test]
fn the_network_is_unreachable_without_network() {
    if !sandbox_ready() {
        return;
    }
    let place = Place::new(false);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    listener.set_nonblocking(true).unwrap();
    let probe = format!("echo through | nc 127.0.0.1 {port} && echo connected");
    let output = place.shell(&[], &["sh", "-c", &probe]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("connected"), "{stdout}");
    assert!(
        listener.accept().is_err(),
        "the host's loopback was reached without --network"
    );
    // With --network the host's own loopback answers.
    let accepted = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let mut received = String::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.read_to_string(&mut received).unwrap();
        received
    });
    let text = stdout_of(&place.shell(&["--network"], &["sh", "-c", &probe]));
    assert!(text.contains("connected"), "{text}");
    assert_eq!(accepted.join().unwrap(), "through\n");
}

#[test]
fn writes_to_the_root_are_discarded_unless_kept() {
    if !sandbox_ready() {
        return;
    }
    let place = Place::new(false);
    stdout_of(&place.shell(&[], &["sh", "-c", "echo changed > /etc/os-release"]));
    let text = stdout_of(&place.shell(&[], &["cat", "/etc/os-release"]));
    assert_eq!(text, "ID=kiln-busybox\n", "the write was discarded");
    let keep = place.path().join("kept");
    let keep_option = keep.to_str().unwrap();
    stdout_of(&place.shell(
        &["--keep", keep_option],
        &[
            "sh",
            "-c",
            "echo kept > /etc/marker; echo tmp > /tmp/scratch",
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(keep.join("upper/etc/marker")).unwrap(),
        "kept\n"
    );
    assert!(
        !keep.join("upper/tmp/scratch").exists(),
        "/tmp is the session's own"
    );
    let text = stdout_of(&place.shell(&["--keep", keep_option], &["cat", "/etc/marker"]));
    assert_eq!(
        text, "kept\n",
        "a later session starts from the kept writes"
    );
    let absent = place.shell(&[], &["cat", "/etc/marker"]);
    assert!(!absent.status.success());
}

#[test]
fn binds_and_kept_variables() {
    if !sandbox_ready() {
        return;
    }
    let place = Place::new(false);
    let data = place.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in"), "from the host\n").unwrap();
    let bind = format!("{}:/mnt/rw", data.display());
    let ro_bind = format!("{}:/mnt/ro", data.display());
    let output = place
        .command(&[
            "shell",
            "../root.nix",
            "--bind",
            &bind,
            "--ro-bind",
            &ro_bind,
            "--keep-env",
            "KEPT",
            "--",
            "sh",
            "-c",
            "cat /mnt/ro/in; echo out > /mnt/rw/out; touch /mnt/ro/refused || echo read-only; \
             echo \"kept=$KEPT dropped=$DROPPED home=$HOME\"; touch $HOME/writable && echo home-ok",
        ])
        .env("KEPT", "yes")
        .env("DROPPED", "no")
        .output()
        .unwrap();
    let text = stdout_of(&output);
    let home = place.path().join("home");
    assert_eq!(
        text,
        format!(
            "from the host\nread-only\nkept=yes dropped= home={}\nhome-ok\n",
            home.display()
        )
    );
    assert_eq!(std::fs::read_to_string(data.join("out")).unwrap(), "out\n");
    assert!(!data.join("refused").exists());
    assert!(
        !home.exists(),
        "HOME is made in the overlay, not on the host"
    );
}

#[test]
fn a_realised_root_is_entered_through_its_result_link() {
    if !sandbox_ready() {
        return;
    }
    let place = Place::new(false);
    let output = place
        .command(&["realise", "-o", "../result", "../root.nix"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let output = place
        .command(&["shell", "../result", "--", "cat", "/etc/os-release"])
        .output()
        .unwrap();
    assert_eq!(stdout_of(&output), "ID=kiln-busybox\n");
}

#[test]
fn an_interactive_session_on_a_pseudo_terminal_shows_a_prompt_and_exits_3() {
    if !sandbox_ready() {
        return;
    }
    if !Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip_or_fail("script (util-linux) is not installed");
        return;
    }
    let place = Place::new(false);
    // Built first, so that the session starts at once.
    stdout_of(&place.shell(&[], &["true"]));
    let kiln = format!(
        "{} --store {} shell ../root.nix",
        place.kiln().display(),
        place.path().join("store").display()
    );
    // `script` runs kiln on a new pseudo-terminal: the session's shell is interactive.
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &kiln, "/dev/null"])
        .current_dir(place.project())
        .env("HOME", place.path().join("home"))
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    stdin.write_all(b"echo marker-$((6 * 7)) $(tty)\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"exit 3\n").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("[kiln shell] "), "no prompt: {text}");
    assert!(text.contains("marker-42 /dev/"), "{text}");
    assert_eq!(output.status.code(), Some(3), "{text}");
}

/// A static C program that tries to type a command into its terminal (`TIOCSTI`).
const TIOCSTI_PROBE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
int main(void) {
    const char *typed = "echo injected\n";
    for (const char *c = typed; *c; c++) {
        if (ioctl(0, TIOCSTI, c) != 0) {
            printf("TIOCSTI refused: %s\n", errno == EPERM ? "EPERM" : strerror(errno));
            return 0;
        }
    }
    printf("TIOCSTI typed into the terminal\n");
    return 1;
}
"#;

#[test]
fn the_session_cannot_type_into_the_users_terminal() {
    if !sandbox_ready() {
        return;
    }
    let place = Place::new(false);
    let source = place.path().join("tiocsti.c");
    std::fs::write(&source, TIOCSTI_PROBE).unwrap();
    let compiled = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(place.project().join("tiocsti"))
        .arg(&source)
        .output();
    if !compiled.as_ref().is_ok_and(|o| o.status.success()) {
        skip_or_fail(&format!("cc -static failed: {compiled:?}"));
        return;
    }
    stdout_of(&place.shell(&[], &["true"]));
    let kiln = format!(
        "{} --store {} shell ../root.nix -- ./tiocsti",
        place.kiln().display(),
        place.path().join("store").display()
    );
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &kiln, "/dev/null"])
        .current_dir(place.project())
        .env("HOME", place.path().join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("TIOCSTI refused: EPERM"), "{text}");
    assert!(output.status.success(), "{text}");
}

#[test]
fn a_list_of_layers_is_entered_with_the_first_on_top() {
    if !sandbox_ready() {
        return;
    }
    let place = Place::new(false);
    let layers = r#"
      let
        root = import ../root.nix;
        top = (import <kiln> { }).layer { name = "top"; files."etc/os-release" = "ID=top\n"; };
      in [ top root ]"#;
    let output = output_of(&mut place.command(&[
        "shell",
        "-E",
        layers,
        "--",
        "sh",
        "-c",
        "cat /etc/os-release; ls /bin/busybox",
    ]));
    assert_eq!(stdout_of(&output), "ID=top\n/bin/busybox\n");
}
