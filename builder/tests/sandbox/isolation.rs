//! What a build cannot reach: the network, host files, its inputs, host processes; its own pid namespace, hostname, environment and /dev.
use super::*;

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
    // The listener is restarted until it has received something, and the client retried:
    // under load the first connection can come before the listener or carry nothing.
    let script = "(until [ -s /build/received ]; do nc -l -p 4321 > /build/received; done) & \
         tries=0; \
         until [ -s /build/received ]; do \
           echo over-lo | nc 127.0.0.1 4321; \
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
