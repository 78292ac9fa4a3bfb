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

#[test]
fn build_runs_and_writes_its_output() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let spec = fixture.shell_spec(
        "echo building in $PWD; mkdir $out; echo hello > $out/greeting; \
         echo scratch > /build/scratch; echo tmp > /tmp/t; cat /tmp/t",
    );
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?}, log: {log}");
    assert_eq!(outcome.status, Some(BuilderStatus::Exited(0)));
    assert_eq!(
        std::fs::read_to_string(fixture.out_host().join("greeting")).expect("output"),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(fixture.build_dir.join("scratch")).expect("build dir"),
        "scratch\n"
    );
    assert!(log.contains("building in /build"), "{log}");
    assert!(log.contains("tmp"), "{log}");
    // The staging directory is gone; only the input and the output remain in the store.
    let mut names: Vec<String> = std::fs::read_dir(&fixture.host_store)
        .expect("list store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [BUSYBOX_NAME, OUT_NAME]);
}

#[test]
fn output_may_be_a_plain_file_and_failures_are_reported() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let outcome = run(fixture.shell_spec("echo -n text > $out; exit 7"));
    assert_eq!(outcome.status, Some(BuilderStatus::Exited(7)));
    assert!(!outcome.success());
    assert_eq!(
        std::fs::read_to_string(fixture.out_host()).expect("file output"),
        "text"
    );

    let fixture = Fixture::new();
    let outcome = run(fixture.shell_spec("kill -SEGV $$"));
    assert_eq!(outcome.status, Some(BuilderStatus::Signaled(libc::SIGSEGV)));
}

#[test]
fn build_cannot_reach_a_host_tcp_server() {
    if !requirements_met() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let script = format!(
        "if echo ping | nc -w 2 127.0.0.1 {port}; then echo CONNECTED; exit 0; \
         else echo REFUSED; exit 3; fi"
    );

    let fixture = Fixture::new();
    let (outcome, log) = run_logged(fixture.shell_spec(&script));
    assert_eq!(outcome.status, Some(BuilderStatus::Exited(3)), "{log}");
    assert!(log.contains("REFUSED"), "{log}");
    assert!(
        listener.accept().is_err(),
        "the host server saw a connection"
    );

    // The same build with the host network reaches the server: the check above can fail.
    listener.set_nonblocking(false).expect("blocking");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut received = String::new();
        let _ = stream.read_to_string(&mut received);
        received
    });
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec(&script);
    spec.network = true;
    let (outcome, log) = run_logged(spec);
    assert_eq!(outcome.status, Some(BuilderStatus::Exited(0)), "{log}");
    assert_eq!(server.join().expect("server thread"), "ping\n");
}

#[test]
fn private_network_has_a_working_loopback() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let script = "nc -l -p 4321 > /build/received & tries=0; \
         until echo over-lo | nc 127.0.0.1 4321; do \
           tries=$((tries + 1)); [ $tries -gt 100 ] && exit 9; sleep 0.1; \
         done; wait; cat /build/received";
    let (outcome, log) = run_logged(fixture.shell_spec(script));
    assert!(outcome.success(), "{outcome:?} {log}");
    assert!(log.contains("over-lo"), "{log}");
}

#[test]
fn network_builds_see_the_host_resolver_files_read_only() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec(
        "for f in resolv.conf hosts services; do test -e /etc/$f && echo HAS-$f; done; \
         echo x >> /etc/hosts && echo HOSTS-WRITABLE; true",
    );
    spec.network = true;
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?} {log}");
    for file in ["resolv.conf", "hosts", "services"] {
        let on_host = Path::new("/etc").join(file).exists();
        assert_eq!(
            log.contains(&format!("HAS-{file}")),
            on_host,
            "{file}: {log}"
        );
    }
    assert!(!log.contains("HOSTS-WRITABLE"), "{log}");
}

#[test]
fn log_file_sink_gets_stdout_and_stderr_appended() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let log_path = fixture.dir.path().join("build.log");
    std::fs::write(&log_path, "previous\n").expect("seed log");
    let mut spec = fixture.shell_spec("echo out; echo err >&2");
    spec.log = LogSink::File(log_path.clone());
    let outcome = run(spec);
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(
        std::fs::read_to_string(&log_path).expect("log"),
        "previous\nout\nerr\n"
    );
}

#[test]
fn build_cannot_read_host_files_outside_its_inputs() {
    if !requirements_met() {
        return;
    }
    let secrets = tempfile::tempdir().expect("secret dir");
    let secret = secrets.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET").expect("write secret");
    let fixture = Fixture::new();
    let script = format!(
        "cat {secret} && echo LEAK-SECRET; cat /etc/shadow && echo LEAK-SHADOW; \
         ls {tmp} && echo LEAK-TMP; ls /; ls {STORE}",
        secret = secret.display(),
        tmp = fixture.dir.path().display()
    );
    let (outcome, log) = run_logged(fixture.shell_spec(&script));
    assert!(outcome.status.is_some(), "{outcome:?}");
    assert!(!log.contains("TOP-SECRET"), "{log}");
    assert!(!log.contains("LEAK-"), "{log}");
    // `ls /` shows only the sandbox's own skeleton, `ls /kiln/store` only the input.
    for expected in ["build", "dev", "etc", "kiln", "proc", "tmp", BUSYBOX_NAME] {
        assert!(log.contains(expected), "missing {expected} in {log}");
    }
    for unexpected in ["usr", "root", "home", "var"] {
        assert!(
            !log.lines().any(|line| line.trim() == unexpected),
            "host dir {unexpected} visible: {log}"
        );
    }
}

#[test]
fn build_cannot_write_into_an_input() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let input = fixture.busybox_logical();
    let script = format!(
        "echo x > {input}/new && echo WROTE-NEW; echo x >> {input}/bin/busybox && echo WROTE-BIN; \
         rm {input}/bin/sh && echo REMOVED; mount -o remount,rw {input} && echo REMOUNTED; \
         touch /build/ok && echo BUILD-WRITABLE"
    );
    let (outcome, log) = run_logged(fixture.shell_spec(&script));
    assert!(outcome.status.is_some(), "{outcome:?}");
    for forbidden in ["WROTE-NEW", "WROTE-BIN", "REMOVED", "REMOUNTED"] {
        assert!(!log.contains(forbidden), "{forbidden}: {log}");
    }
    assert!(log.contains("BUILD-WRITABLE"), "{log}");
    assert!(!fixture.host_store.join(BUSYBOX_NAME).join("new").exists());
    assert!(fixture
        .host_store
        .join(BUSYBOX_NAME)
        .join("bin/sh")
        .symlink_metadata()
        .is_ok());
}

#[test]
fn build_runs_in_its_own_pid_namespace() {
    if !requirements_met() {
        return;
    }
    let mut host_sleeper = Command::new("/bin/busybox")
        .args(["sleep", "1000"])
        .spawn()
        .expect("host process");
    let host_pid = host_sleeper.id();
    let fixture = Fixture::new();
    let script = format!(
        "echo mypid=$$; test -e /proc/{host_pid} && echo SEES-HOST; \
         ls -d /proc/[0-9]* > /build/procs; echo procs=$(wc -l < /build/procs)"
    );
    let (outcome, log) = run_logged(fixture.shell_spec(&script));
    let _ = host_sleeper.kill();
    let _ = host_sleeper.wait();
    assert!(outcome.success(), "{outcome:?} {log}");
    assert!(log.contains("mypid=2\n"), "{log}");
    assert!(!log.contains("SEES-HOST"), "{log}");
    // init and the shell (the shell expands the glob before `ls` runs): nothing else exists
    // in the namespace.
    assert!(log.contains("procs=2\n"), "{log}");
}

#[test]
fn timeout_kills_the_builder_and_all_its_children() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let marker = unique_marker(1);
    let script = format!("sleep 1{marker} & sleep 2{marker} & sleep 3{marker}; echo NOT-KILLED");
    let mut spec = fixture.shell_spec(&script);
    spec.timeout = Some(Duration::from_secs(2));
    let log = SharedLog::default();
    spec.log = LogSink::Writer(Box::new(log.clone()));
    let started = Instant::now();
    let build = std::thread::spawn(move || run(spec));
    // While the build runs, its sleepers are visible from the host (so the final check can
    // fail).
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_millis(1900) && seen.len() < 3 {
        seen = host_processes_with(&marker);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen.len(), 3, "sleepers not seen from the host");
    let outcome = build.join().expect("build thread");
    assert!(outcome.timed_out, "{outcome:?}");
    assert!(!outcome.silent_timed_out);
    assert_eq!(outcome.status, None);
    assert!(!outcome.success());
    assert!(outcome.duration < Duration::from_secs(10), "{outcome:?}");
    assert!(!log.text().contains("NOT-KILLED"));
    assert!(host_processes_with(&marker).is_empty());
}

#[test]
fn silence_timeout_kills_a_quiet_build() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec("echo start; sleep 1; echo still-talking; sleep 1000");
    spec.max_silent_time = Some(Duration::from_millis(1500));
    let (outcome, log) = run_logged(spec);
    assert!(outcome.silent_timed_out, "{outcome:?}");
    assert!(!outcome.timed_out);
    assert!(log.contains("still-talking"), "{log}");
    assert!(
        outcome.duration >= Duration::from_millis(2500),
        "{outcome:?}"
    );
}

#[test]
fn children_die_when_the_builder_exits() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let marker = unique_marker(2);
    let script = format!("sleep 1{marker} & sleep 0.2; exit 0");
    let outcome = run(fixture.shell_spec(&script));
    assert!(outcome.success(), "{outcome:?}");
    assert!(host_processes_with(&marker).is_empty());
}

#[test]
fn hostname_is_localhost_and_env_is_exactly_the_given_one() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec("unused");
    spec.builder = format!("{}/bin/env", fixture.busybox_logical()).into();
    spec.args = Vec::new();
    let outputs = BTreeMap::from([("out".to_owned(), fixture.out_logical())]);
    let drv_env = BTreeMap::from([
        (b"name".to_vec(), b"test".to_vec()),
        (
            b"PATH".to_vec(),
            format!("{}/bin", fixture.busybox_logical()).into_bytes(),
        ),
    ]);
    spec.env = nix_build_env(
        &drv_env,
        &outputs,
        &NixEnvParams {
            store_dir: STORE,
            build_cores: 2,
            fixed_output: false,
        },
    );
    let expected: Vec<String> = spec
        .env
        .iter()
        .map(|(k, v)| format!("{}={}", k.display(), v.display()))
        .collect();
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?} {log}");
    let mut seen: Vec<String> = log.lines().map(str::to_owned).collect();
    seen.sort();
    assert_eq!(seen, expected);

    let fixture = Fixture::new();
    let (outcome, log) = run_logged(
        fixture.shell_spec("hostname; cat /proc/sys/kernel/domainname; cat /etc/hosts; id"),
    );
    assert!(outcome.success(), "{outcome:?} {log}");
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("localhost"));
    assert_eq!(lines.next(), Some("(none)"));
    assert_eq!(lines.next(), Some("127.0.0.1 localhost"));
    assert_eq!(lines.next(), Some("::1 localhost"));
}

#[test]
fn dev_is_minimal_and_works() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let script = "ls /dev; head -c 16 /dev/urandom | wc -c; echo x > /dev/null && echo NULL-OK; \
                  echo shm > /dev/shm/f && cat /dev/shm/f; readlink /dev/fd; ls -ld /tmp";
    let (outcome, log) = run_logged(fixture.shell_spec(script));
    assert!(outcome.success(), "{outcome:?} {log}");
    for expected in [
        "full", "null", "ptmx", "pts", "random", "shm", "urandom", "zero", "stderr",
    ] {
        assert!(
            log.lines().any(|l| l == expected),
            "no /dev/{expected}: {log}"
        );
    }
    assert!(
        !log.lines().any(|l| l == "sda" || l == "kmsg" || l == "mem"),
        "{log}"
    );
    assert!(log.contains("16\n"), "{log}");
    assert!(log.contains("NULL-OK"), "{log}");
    assert!(log.contains("shm\n"), "{log}");
    assert!(log.contains("/proc/self/fd"), "{log}");
    assert!(log.contains("drwxrwxrwt"), "{log}");
}

#[test]
fn root_range_mapping_runs_plain_builds_as_nixbld_in_an_unprivileged_range() {
    if !requirements_met() {
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: the host-root id range needs kiln to run as root");
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec(
        "id -u; id -g; mkdir $out; touch $out/f; chown 123:456 $out/f || echo refused; \
         mkdir $out/ro; chmod 0555 $out/ro; mkdir /build/locked; chmod 0 /build/locked",
    );
    spec.id_map = IdMapPolicy::HostRootRange { count: 65536 };
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?} {log}");
    assert!(log.starts_with("1000\n100\n"), "{log}");
    assert!(log.ends_with("refused\n"), "{log}");
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(fixture.out_host().join("f")).expect("stat");
    let in_slots = |id: u32| {
        id >= FIRST_HOST_ID
            && u64::from(id) < u64::from(FIRST_HOST_ID) + u64::from(SLOT_COUNT) * 65536
            && (id - FIRST_HOST_ID) % 65536 == 1000
    };
    assert!(in_slots(metadata.uid()), "uid {}", metadata.uid());
    assert_eq!(
        metadata.uid() - metadata.gid(),
        1000 - 100,
        "uid and gid of one slot"
    );
    let ro = std::fs::metadata(fixture.out_host().join("ro")).expect("stat ro");
    assert_eq!(ro.mode() & 0o7777, 0o555);
}

#[test]
fn nixbld_mapping_runs_the_builder_as_uid_1000() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec("id -u; id -g; whoami; mkdir $out; touch $out/f");
    spec.id_map = IdMapPolicy::Nixbld;
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?} {log}");
    assert!(log.starts_with("1000\n100\nnixbld\n"), "{log}");
    assert!(fixture.out_host().join("f").exists());
}

#[test]
fn a_missing_builder_is_a_setup_error_naming_execve() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec("unused");
    spec.builder = "/kiln/store/no-such-builder".into();
    let err = Sandbox::new(spec)
        .expect("valid spec")
        .run()
        .expect_err("exec must fail");
    match &err {
        SandboxError::Setup { step, errno } => {
            assert!(
                step.starts_with("execve(\"/kiln/store/no-such-builder\""),
                "{err}"
            );
            assert_eq!(*errno, nix::errno::Errno::ENOENT);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(!fixture.out_host().exists());
}

#[test]
fn invalid_specs_are_refused_before_anything_runs() {
    let fixture = Fixture::new();
    let mut spec = fixture.shell_spec("true");
    spec.inputs[0].logical_path = "/elsewhere/x-busybox".into();
    assert!(matches!(
        Sandbox::new(spec),
        Err(SandboxError::InvalidSpec(_))
    ));
    std::fs::write(fixture.out_host(), "old").expect("existing output");
    assert!(matches!(
        Sandbox::new(fixture.shell_spec("true")),
        Err(SandboxError::InvalidSpec(_))
    ));
}

#[test]
fn overlay_root_shows_the_layers_and_keeps_them_unchanged() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let layers = fixture.dir.path().join("layers");
    let lower = layers.join("lower");
    std::fs::create_dir_all(lower.join("etc")).expect("lower");
    std::fs::write(lower.join("etc/os-release"), "ID=layer\n").expect("os-release");
    std::fs::write(lower.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
    let upper = layers.join("upper");
    let work = layers.join("work");
    std::fs::create_dir(&upper).expect("upper");
    std::fs::create_dir(&work).expect("work");
    let mut spec = fixture.shell_spec(
        "cat /etc/os-release; cat /etc/passwd; echo changed > /etc/os-release; echo new > /added",
    );
    spec.root = RootFs::Overlay {
        lower_layers: vec![lower.clone()],
        upper: upper.clone(),
        work,
    };
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?} {log}");
    assert!(
        log.starts_with("ID=layer\nroot:x:0:0::/root:/bin/sh\n"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(lower.join("etc/os-release")).expect("lower intact"),
        "ID=layer\n"
    );
    assert!(upper.join("added").exists());
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

#[test]
fn unprivileged_user_can_run_a_sandboxed_build() {
    if !requirements_met() {
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: the unprivileged test switches users with setpriv, which needs root");
        return;
    }
    let fixture = Fixture::new();
    for dir in [&fixture.host_store, &fixture.build_dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    // A read-only output directory must still be moved into the store, and a read-only
    // leftover in the store directory must still be cleaned up, without root's powers.
    let probe = probe_command(
        &fixture,
        "id -u; mkdir $out; echo unprivileged > $out/who; chmod 0555 $out; \
         mkdir /kiln/store/junk; touch /kiln/store/junk/x; chmod 0555 /kiln/store/junk",
    );
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(probe.get_program())
        .args(probe.get_args());
    let output = command.output().expect("run setpriv");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("mapping: Nixbld"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1000\n");
    let who = fixture.out_host().join("who");
    assert_eq!(
        std::fs::read_to_string(&who).expect("output"),
        "unprivileged\n"
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&who).expect("stat"));
    assert_eq!(owner, 65534);
    let out_mode = std::fs::metadata(fixture.out_host())
        .expect("stat out")
        .permissions();
    assert_eq!(out_mode.mode() & 0o7777, 0o555);
    let mut names: Vec<String> = std::fs::read_dir(&fixture.host_store)
        .expect("list store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [BUSYBOX_NAME, OUT_NAME]);
}

/// Kills a child process when the test ends, even by a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killing_kiln_kills_the_sandbox() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let marker = unique_marker(3);
    let probe = probe_command(&fixture, &format!("sleep 1{marker} & sleep 2{marker}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("probe");
    let mut probe = KillOnDrop(probe);
    let started = Instant::now();
    while host_processes_with(&marker).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sleepers never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    probe.0.kill().expect("kill probe");
    probe.0.wait().expect("reap probe");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host_processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "sandbox outlived kiln");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Median wall time of 200 trivial builds; run with
/// `cargo test --release -p kiln-builder --test sandbox -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_trivial_builds() {
    if !requirements_met() {
        return;
    }
    let fixture = Fixture::new();
    let mut times = Vec::new();
    for _ in 0..200 {
        let mut spec = fixture.shell_spec("unused");
        spec.builder = format!("{}/bin/true", fixture.busybox_logical()).into();
        spec.args = Vec::new();
        let started = Instant::now();
        let outcome = run(spec);
        times.push(started.elapsed());
        assert!(outcome.success());
    }
    times.sort();
    println!(
        "200 trivial sandboxed builds: median {:?}, min {:?}, max {:?}",
        times[100], times[0], times[199]
    );
}

/// The attack probe (`tests/attacks/probe.c`), compiled once per test process with
/// `cc -static`; `None` (after printing why) when there is no C compiler, a panic in CI.
fn attack_probe() -> Option<&'static Path> {
    static PROBE: std::sync::OnceLock<Option<(tempfile::TempDir, PathBuf)>> =
        std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("probe dir");
            let binary = dir.path().join("probe");
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/probe.c");
            let compiled = Command::new("cc")
                .args(["-static", "-O1", "-o"])
                .arg(&binary)
                .arg(&source)
                .output();
            match compiled {
                Ok(output) if output.status.success() => Some((dir, binary)),
                other => {
                    let why = format!("cc -static of the attack probe failed: {other:?}");
                    if std::env::var("CI").as_deref() == Ok("true") {
                        panic!("{why}");
                    }
                    eprintln!("skipping: {why}");
                    None
                }
            }
        })
        .as_ref()
        .map(|(_, binary)| binary.as_path())
}

const PROBE_NAME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-attack-probe";

/// Whether this test can attack a sandbox as root: root, sandbox requirements, the probe.
fn attack_setup() -> Option<&'static Path> {
    if !requirements_met() {
        return None;
    }
    if !nix::unistd::Uid::effective().is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the attack tests run as root in CI");
        }
        eprintln!("skipping: the attacks are made against kiln run as root");
        return None;
    }
    attack_probe()
}

/// A spec running `script` (in busybox's sh) with the probe at `$PROBE`, as kiln run as root
/// maps it.
fn attack_spec(fixture: &Fixture, probe: &Path, script: &str) -> SandboxSpec {
    let probe_dir = fixture.host_store.join(PROBE_NAME);
    if !probe_dir.exists() {
        std::fs::create_dir(&probe_dir).expect("probe input");
        std::fs::copy(probe, probe_dir.join("probe")).expect("copy probe");
    }
    let probe_logical = format!("{STORE}/{PROBE_NAME}/probe");
    let mut spec = fixture.shell_spec(&format!("PROBE={probe_logical}\n{script}"));
    spec.inputs
        .push(StoreMount::new(&probe_dir, format!("{STORE}/{PROBE_NAME}")));
    spec.id_map = IdMapPolicy::Auto;
    spec
}

/// The value of a `/proc/self/status` field in the probe's output.
fn status_field<'a>(log: &'a str, field: &str) -> &'a str {
    log.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in {log}"))
}

/// Asserts that every attack line of the probe's output says "blocked", and that each of
/// `attacks` was tried.
fn assert_blocked(log: &str, attacks: &[&str]) {
    for attack in attacks {
        let line = log
            .lines()
            .find(|line| line.starts_with(&format!("{attack}: ")))
            .unwrap_or_else(|| panic!("{attack} was not tried: {log}"));
        assert!(line.contains(": blocked ("), "{line}\n{log}");
    }
    assert!(!log.contains("SUCCEEDED"), "{log}");
}

const ATTACKS: &str = "$PROBE ptrace-init; $PROBE core-pattern; $PROBE sysrq; \
    $PROBE unshare-user; $PROBE clone-user; $PROBE clone3; $PROBE mount-cgroup2; \
    $PROBE mount-tmpfs; $PROBE keys; $PROBE perf; $PROBE packet; $PROBE init-environ; \
    $PROBE init-fd; $PROBE kcore; $PROBE status; $PROBE uid-map";

const ATTACK_NAMES: [&str; 14] = [
    "ptrace-attach",
    "ptrace-seize",
    "core-pattern",
    "sysrq-trigger",
    "unshare-newuser",
    "clone-newuser",
    "mount-cgroup2",
    "mount-tmpfs",
    "add_key",
    "keyctl",
    "perf_event_open",
    "af_packet",
    "init-environ",
    "init-fd3",
];

fn check_common_hardening(log: &str) {
    assert_blocked(log, &ATTACK_NAMES);
    assert!(log.contains("clone3: ENOSYS\n"), "{log}");
    assert!(
        log.contains("kcore: empty\n") || log.contains("kcore: unopenable\n"),
        "{log}"
    );
    assert_eq!(status_field(log, "NoNewPrivs"), "1", "{log}");
    assert_eq!(status_field(log, "Seccomp"), "2", "{log}");
    // `uid_map` as the builder sees it: "<inside> <host> <count>"; host root is not mapped.
    let map: Vec<u64> = status_field(log, "uid_map")
        .split_whitespace()
        .map(|field| field.parse().expect("numeric uid_map"))
        .collect();
    assert_eq!(map.len(), 3, "{log}");
    assert_eq!(map[0], 0);
    assert!(map[1] >= u64::from(FIRST_HOST_ID), "{log}");
    assert_eq!(map[2], 65536);
}

#[test]
fn attacks_from_a_plain_build_run_by_root_are_blocked() {
    let Some(probe) = attack_setup() else {
        return;
    };
    let fixture = Fixture::new();
    let spec = attack_spec(&fixture, probe, &format!("{ATTACKS}; mkdir $out"));
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?} {log}");
    check_common_hardening(&log);
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&log, set), "0000000000000000", "{set}: {log}");
    }
    assert!(status_field(&log, "Uid").starts_with("1000\t"), "{log}");
}

#[test]
fn a_rootfs_build_run_by_root_keeps_only_namespaced_capabilities_and_works() {
    let Some(probe) = attack_setup() else {
        return;
    };
    let fixture = Fixture::new();
    let layers = fixture.dir.path().join("layers");
    let lower = layers.join("lower");
    std::fs::create_dir_all(lower.join("etc")).expect("lower");
    // Owned by host root and readable by its owner only: root inside reads it only if the
    // layer is id-mapped (host uid 0 is not mapped in the build's namespace).
    std::fs::write(lower.join("etc/shadow"), "root:secret\n").expect("shadow");
    std::fs::set_permissions(
        lower.join("etc/shadow"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod shadow");
    let upper = layers.join("upper");
    let work = layers.join("work");
    std::fs::create_dir(&upper).expect("upper");
    std::fs::create_dir(&work).expect("work");
    let mut spec = attack_spec(
        &fixture,
        probe,
        &format!(
            "{ATTACKS}; cat /etc/shadow; stat -c 'owner %u:%g' /etc/shadow; \
             echo new > /added; chown 1234:5678 /added; echo changed >> /etc/shadow; \
             stat -c 'added %u:%g' /added; mkdir $out"
        ),
    );
    spec.root = RootFs::Overlay {
        lower_layers: vec![lower.clone()],
        upper: upper.clone(),
        work,
    };
    let (outcome, log) = run_logged(spec);
    assert!(outcome.success(), "{outcome:?} {log}");
    check_common_hardening(&log);
    let kept = format!("{ROOTFS_CAPABILITIES:016x}");
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_field(&log, set), kept, "{set}: {log}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(status_field(&log, set), "0000000000000000", "{set}: {log}");
    }
    assert!(status_field(&log, "Uid").starts_with("0\t"), "{log}");
    assert!(log.contains("root:secret\nowner 0:0\n"), "{log}");
    assert!(log.contains("added 1234:5678\n"), "{log}");
    // The layer is unchanged; the writes landed in the upper directory under the build's
    // unprivileged host ids.
    assert_eq!(
        std::fs::read_to_string(lower.join("etc/shadow")).expect("lower intact"),
        "root:secret\n"
    );
    use std::os::unix::fs::MetadataExt;
    let added = std::fs::metadata(upper.join("added")).expect("added in upper");
    assert!(added.uid() >= FIRST_HOST_ID + 1234, "{}", added.uid());
    assert_eq!(
        added.uid() - FIRST_HOST_ID - 1234,
        added.gid() - FIRST_HOST_ID - 5678
    );
}

#[test]
fn the_builder_inherits_only_stdin_stdout_and_stderr() {
    let Some(probe) = attack_setup() else {
        return;
    };
    let fixture = Fixture::new();
    let mut spec = attack_spec(&fixture, probe, "unused");
    spec.builder = format!("{STORE}/{PROBE_NAME}/probe").into();
    spec.args = vec!["fds".into()];
    // Descriptors kiln holds open (this one not close-on-exec) must not reach the builder.
    let leaked = std::fs::File::open("/dev/null").expect("open");
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    nix::fcntl::fcntl(
        &leaked,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .expect("clear cloexec");
    let (outcome, log) = run_logged(spec);
    drop(leaked);
    // The probe made no output directory: a failed build, but it ran.
    assert_eq!(outcome.status, Some(BuilderStatus::Exited(0)), "{log}");
    assert_eq!(log, "fds: 0 1 2\n", "descriptor {raw} of kiln: {log}");
}

#[test]
fn a_symlinked_or_missing_overlay_layer_is_refused() {
    let fixture = Fixture::new();
    let link = fixture.dir.path().join("etc-link");
    std::os::unix::fs::symlink("/etc", &link).expect("symlink");
    for layer in [link, fixture.dir.path().join("missing")] {
        let mut spec = fixture.shell_spec("true");
        spec.root = RootFs::Overlay {
            lower_layers: vec![layer.clone()],
            upper: fixture.dir.path().join("upper"),
            work: fixture.dir.path().join("work"),
        };
        match Sandbox::new(spec) {
            Err(SandboxError::InvalidSpec(message)) => {
                assert!(message.contains(&layer.display().to_string()), "{message}")
            }
            other => panic!("layer {} accepted: {other:?}", layer.display()),
        }
    }
}

#[test]
fn attacks_from_a_rootless_build_are_blocked() {
    // kiln run by an unprivileged user (65534, switched to with setpriv, so the test needs
    // root): the builder is nixbld mapped to that user, and the same attacks fail.
    let Some(probe) = attack_setup() else {
        return;
    };
    let fixture = Fixture::new();
    for dir in [&fixture.host_store, &fixture.build_dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let probe_dir = fixture.host_store.join(PROBE_NAME);
    std::fs::create_dir(&probe_dir).expect("probe input");
    std::fs::copy(probe, probe_dir.join("probe")).expect("copy probe");
    std::fs::set_permissions(&probe_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let command = probe_command_with_inputs(
        &fixture,
        &[format!("{}={STORE}/{PROBE_NAME}", probe_dir.display())],
        &format!("PROBE={STORE}/{PROBE_NAME}/probe\n{ATTACKS}; mkdir $out"),
    );
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(command.get_program())
        .args(command.get_args())
        .output()
        .expect("run setpriv");
    let log = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{log}");
    assert!(stderr.contains("mapping: Nixbld"), "{stderr}");
    assert_blocked(&log, &ATTACK_NAMES);
    assert!(log.contains("clone3: ENOSYS\n"), "{log}");
    assert_eq!(status_field(&log, "NoNewPrivs"), "1", "{log}");
    assert_eq!(status_field(&log, "Seccomp"), "2", "{log}");
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&log, set), "0000000000000000", "{set}: {log}");
    }
    let map: Vec<&str> = status_field(&log, "uid_map").split_whitespace().collect();
    assert_eq!(map, ["1000", "65534", "1"], "{log}");
}
