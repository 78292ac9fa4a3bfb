//! Running builds: outputs and failures, logs, timeouts, children killed with the builder or with kiln, id mappings, setup errors, overlay roots, the unprivileged user, and a start-up benchmark.
use super::*;

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
