//! A hostile build (run by root or rootless) trying to escape: ptrace, core patterns, sysrq, setuid files, capabilities, inherited file descriptors; each attack is probed by a static helper and must be refused.
use super::*;

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
