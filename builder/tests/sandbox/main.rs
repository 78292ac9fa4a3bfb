//! Integration tests of the build sandbox. They need user namespaces and Debian's
//! `busybox-static` at /bin/busybox: without them they are skipped with a printed reason, or
//! fail when CI=true.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_builder::sandbox::{
    nix_build_env, BuilderStatus, IdMapPolicy, LogSink, NixEnvParams, RootFs, Sandbox,
    SandboxError, SandboxOutcome, SandboxSpec, StoreMount, FIRST_HOST_ID, ROOTFS_CAPABILITIES,
    SLOT_COUNT,
};

const STORE: &str = "/kiln/store";

const BUSYBOX_NAME: &str = "0123456789abcdfghijklmnpqrsvwxyz-busybox";

const OUT_NAME: &str = "zyxwvsrqpnmlkjihgfdcba9876543210-test-out";

/// Whether the machine can run sandboxed builds; panics in CI when it cannot.
fn requirements_met() -> bool {
    let max_userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let missing = if !Path::new("/bin/busybox").is_file() {
        Some("/bin/busybox (Debian's busybox-static) is missing")
    } else if max_userns == 0 {
        Some("user namespaces are disabled (/proc/sys/user/max_user_namespaces)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("sandbox tests cannot run: {reason}")
        }
        Some(reason) => {
            eprintln!("skipping sandbox test: {reason}");
            false
        }
    }
}

/// A fake store holding busybox (with applet links) as an input, one output slot and a
/// build directory, all under a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    host_store: PathBuf,
    build_dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        let host_store = dir.path().join("store");
        let bin = host_store.join(BUSYBOX_NAME).join("bin");
        std::fs::create_dir_all(&bin).expect("create busybox input");
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        let applets = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&applets.stdout).lines() {
            if applet != "busybox" && !applet.contains('/') {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
            }
        }
        let build_dir = dir.path().join("build");
        std::fs::create_dir(&build_dir).expect("create build dir");
        Fixture {
            dir,
            host_store,
            build_dir,
        }
    }

    fn busybox_logical(&self) -> String {
        format!("{STORE}/{BUSYBOX_NAME}")
    }

    fn out_host(&self) -> PathBuf {
        self.host_store.join(OUT_NAME)
    }

    fn out_logical(&self) -> String {
        format!("{STORE}/{OUT_NAME}")
    }

    /// A spec running `sh -c script` with busybox as the only input.
    fn shell_spec(&self, script: &str) -> SandboxSpec {
        let mut spec = SandboxSpec::new(
            STORE,
            &self.build_dir,
            format!("{}/bin/sh", self.busybox_logical()),
        );
        spec.args = vec!["-c".into(), script.into()];
        spec.inputs = vec![StoreMount::new(
            self.host_store.join(BUSYBOX_NAME),
            self.busybox_logical(),
        )];
        spec.outputs = vec![StoreMount::new(self.out_host(), self.out_logical())];
        spec.env = BTreeMap::from([
            (
                "PATH".into(),
                format!("{}/bin", self.busybox_logical()).into(),
            ),
            ("out".into(), self.out_logical().into()),
        ]);
        spec
    }
}

/// A log sink whose contents the test can read afterwards.
#[derive(Clone, Default)]
struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

fn run(spec: SandboxSpec) -> SandboxOutcome {
    Sandbox::new(spec)
        .expect("valid spec")
        .run()
        .expect("sandbox runs")
}

fn run_logged(mut spec: SandboxSpec) -> (SandboxOutcome, String) {
    let log = SharedLog::default();
    spec.log = LogSink::Writer(Box::new(log.clone()));
    let outcome = run(spec);
    (outcome, log.text())
}

/// A number unique to this test process, put into `sleep` arguments to find them from the host.
fn unique_marker(test: u8) -> String {
    format!("{test}{:07}", std::process::id())
}

/// Host pids of `sleep` processes whose command line contains `marker`.
fn host_processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let mut cmdline = Vec::new();
        if let Ok(mut file) = std::fs::File::open(entry.path().join("cmdline")) {
            let _ = file.read_to_end(&mut cmdline);
        }
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.starts_with("sleep ") && text.contains(marker) {
            found.push(pid);
        }
    }
    found
}

/// The probe binary, run as another user or killed mid-build.
fn probe_command(fixture: &Fixture, script: &str) -> Command {
    probe_command_with_inputs(fixture, &[], script)
}

/// [`probe_command`] with more inputs (`host=logical` pairs).
fn probe_command_with_inputs(fixture: &Fixture, inputs: &[String], script: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln-sandbox-probe"));
    command
        .arg("--store-dir")
        .arg(STORE)
        .arg("--build-dir")
        .arg(&fixture.build_dir);
    for input in inputs {
        command.arg("--input").arg(input);
    }
    command
        .arg("--input")
        .arg(format!(
            "{}={}",
            fixture.host_store.join(BUSYBOX_NAME).display(),
            fixture.busybox_logical()
        ))
        .arg("--output")
        .arg(format!(
            "{}={}",
            fixture.out_host().display(),
            fixture.out_logical()
        ))
        .arg("--env")
        .arg(format!("out={}", fixture.out_logical()))
        .arg("--env")
        .arg(format!("PATH={}/bin", fixture.busybox_logical()))
        .arg("--")
        .arg(format!("{}/bin/sh", fixture.busybox_logical()))
        .arg("-c")
        .arg(script);
    command
}

mod attacks;
mod isolation;
mod lifecycle;
