//! Plans run by the scheduler: a diamond with references, derivers and logs, fixed-output hash mismatches, failures and --keep-going, --check, rootfs layers, refused network, download progress.
use super::*;

#[test]
fn diamond_builds_with_references_deriver_and_logs() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let a = t.derivation("a", "echo building a; echo a > $out", &[], None, &[]);
    let b = t.derivation("b", "mkdir $out; echo b > $out/file", &[], None, &[]);
    let c = t.derivation(
        "c",
        "echo \"$input0 $input1/file\" > $out",
        &[&a, &b],
        None,
        &[],
    );
    let plan = t.plan(&[&c], false);
    assert_eq!(plan.builds.len(), 3);
    assert_eq!(plan.builds[2].drv_path, c);
    assert_eq!(plan.builds[2].depends_on.len(), 2);
    assert!(matches!(&plan.builds[0].reason, BuildReason::MissingOutputs(o) if o == &["out"]));
    let report = t.run(&plan, 2, false);
    assert!(report.success(), "{report:?}");

    let c_out = t.out(&c);
    let info = t.store.query_path_info(&c_out).unwrap().unwrap();
    assert_eq!(info.references, BTreeSet::from([t.out(&a), t.out(&b)]));
    assert_eq!(info.deriver.as_ref(), Some(&c));
    let physical = t.store.physical_path(&c_out);
    let text = std::fs::read_to_string(&physical).unwrap();
    assert_eq!(
        text,
        format!(
            "{} {}/file\n",
            t.dir.print(&t.out(&a)),
            t.dir.print(&t.out(&b))
        )
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&physical).unwrap().mtime(), 1);
    let log = BuildLog::of(&t.store.log_dir(), &a);
    assert_eq!(log.latest_attempt().unwrap().unwrap(), "building a\n");

    assert!(t.plan(&[&c], false).is_empty());
    assert!(t.store.verify(true).unwrap().is_ok());
}

#[test]
fn fixed_output_hash_mismatch_names_both_hashes_and_registers_nothing() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let wanted = Hash::sha256(b"something else");
    let fixed = FixedOutputHash {
        method: ContentAddressMethod::Flat,
        hash: wanted,
    };
    let drv = t.derivation("fod", "echo hello > $out", &[], Some(fixed), &[]);
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    let message = failure(&report).to_string();
    let got = Hash::sha256(b"hello\n");
    for expected in [
        wanted.to_sri(),
        wanted.to_nixbase32(),
        got.to_sri(),
        got.to_nixbase32(),
    ] {
        assert!(message.contains(&expected), "{message} lacks {expected}");
    }
    let out = t.out(&drv);
    assert!(!t.store.is_valid(&out).unwrap());
    assert!(!t.store.physical_path(&out).exists());

    let right = FixedOutputHash {
        method: ContentAddressMethod::Flat,
        hash: Hash::sha256(b"hello\n"),
    };
    let drv = t.derivation("fod-ok", "echo hello > $out", &[], Some(right), &[]);
    assert!(t.run(&t.plan(&[&drv], false), 1, false).success());
    let info = t.store.query_path_info(&t.out(&drv)).unwrap().unwrap();
    assert_eq!(
        info.ca.as_deref(),
        Some(format!("fixed:sha256:{}", right.hash.to_nixbase32()).as_str())
    );
}

#[test]
fn failure_keeps_the_log_deletes_the_output_and_skips_dependents() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let bad = t.derivation(
        "bad",
        "echo partial > $out; echo oops >&2; exit 3",
        &[],
        None,
        &[],
    );
    let top = t.derivation("top", "echo > $out", &[&bad], None, &[]);
    let report = t.run(&t.plan(&[&top], false), 2, false);
    assert!(
        matches!(failure(&report), BuildError::BuilderFailed { how } if how.contains("exit code 3"))
    );
    assert!(matches!(
        report.statuses[1],
        BuildStatus::DependencyFailed(0)
    ));
    assert!(!t.store.physical_path(&t.out(&bad)).exists());
    let log = BuildLog::of(&t.store.log_dir(), &bad)
        .latest_attempt()
        .unwrap()
        .unwrap();
    assert!(log.starts_with("oops\n"), "{log}");
}

#[test]
fn check_rebuilds_and_names_the_first_differing_file() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let stable = t.derivation("stable", "mkdir $out; echo same > $out/f", &[], None, &[]);
    let unstable = t.derivation(
        "unstable",
        "mkdir $out; echo same > $out/a; cat /proc/sys/kernel/random/uuid > $out/b",
        &[],
        None,
        &[],
    );
    assert!(t
        .run(&t.plan(&[&stable, &unstable], false), 2, false)
        .success());
    let plan = t.plan(&[&stable], true);
    assert!(matches!(plan.builds[0].reason, BuildReason::Check));
    let report = t.run(&plan, 1, true);
    assert!(matches!(
        report.statuses[0],
        BuildStatus::Succeeded(BuildOutcome::Checked { .. })
    ));
    let report = t.run(&t.plan(&[&unstable], true), 1, true);
    let message = failure(&report).to_string();
    let printed = t.dir.print(&t.out(&unstable));
    assert!(
        message.contains(&format!("{printed}/b: contents differ")),
        "{message}"
    );
    assert!(t.store.verify(true).unwrap().is_ok());
}

#[test]
fn keep_going_builds_what_does_not_depend_on_a_failure_and_timeouts_kill() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let slow = t.derivation("slow", "while :; do :; done", &[], None, &[]);
    let fine = t.derivation("fine", "echo fine > $out", &[], None, &[]);
    let plan = t.plan(&[&slow, &fine], false);
    let settings = kiln_builder::build::BuildSettings {
        timeout: Some(std::time::Duration::from_secs(1)),
        ..Default::default()
    };
    let report = t.run_with(
        &plan,
        ScheduleOptions {
            jobs: 1,
            keep_going: true,
            check: false,
            settings,
        },
    );
    assert!(
        matches!(failure(&report), BuildError::BuilderFailed { how } if how.contains("timed out")),
        "{report:?}"
    );
    assert!(t.store.is_valid(&t.out(&fine)).unwrap());
    assert!(!t.store.is_valid(&t.out(&slow)).unwrap());
}

#[test]
fn rootfs_layers_become_the_root_of_the_build() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let bb = t.builder();
    let layer = t.derivation(
        "layer",
        &format!(
            "{bb} mkdir -p $out/bin $out/etc $out/tmp; {bb} cp {bb} $out/bin/busybox; \
             echo from-the-layer > $out/etc/motd"
        ),
        &[],
        None,
        &[],
    );
    let layer_out = t.dir.print(&t.out(&layer));
    let mut user = t.drvs[&layer].clone();
    user.name = "user".to_owned();
    user.builder = b"/bin/busybox".to_vec();
    user.args = vec![
        "sh".into(),
        "-c".into(),
        "/bin/busybox cat /etc/motd > $out; echo scratch > /tmp/x".into(),
    ];
    user.input_srcs.clear();
    user.input_drvs = BTreeMap::from([(layer.clone(), BTreeSet::from(["out".to_owned()]))]);
    user.set_env_var("name", "user");
    user.set_env_var("rootfs", layer_out);
    user.outputs.get_mut("out").unwrap().path = None;
    let user = t.write(user);
    let report = t.run(&t.plan(&[&user], false), 1, false);
    assert!(report.success(), "{report:?}");
    let out = t.store.physical_path(&t.out(&user));
    assert_eq!(std::fs::read_to_string(out).unwrap(), "from-the-layer\n");
    // The layer itself is untouched by the build's writes.
    assert!(!t.store.physical_path(&t.out(&layer)).join("tmp/x").exists());
}

#[test]
fn network_is_refused_to_non_fixed_output_derivations() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let drv = t.derivation("net", "echo > $out", &[], None, &[("__network", "1")]);
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    assert!(matches!(failure(&report), BuildError::NetworkRefused));
}

/// Records the download progress events of a run.
#[derive(Default)]
struct DownloadRecorder {
    reports: Mutex<Vec<(StorePath, u64, Option<u64>)>>,
}

impl BuildEvents for DownloadRecorder {
    fn download_progress(&self, drv: &StorePath, progress: &FetchProgress) {
        self.reports
            .lock()
            .unwrap()
            .push((drv.clone(), progress.bytes, progress.total));
    }
}

#[test]
fn builtin_fetchurl_reports_its_download_progress_to_the_events() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let server = fetch_support::TestServer::start();
    let len: u64 = 2 * 1024 * 1024;
    server.route("/big", vec![fetch_support::Reply::Generated { len }]);
    let body: Vec<u8> = (0..len).map(fetch_support::pattern_byte).collect();
    let mut drv = Derivation {
        name: "big".to_owned(),
        platform: "builtin".to_owned(),
        builder: "builtin:fetchurl".into(),
        ..Derivation::default()
    };
    let hash = Hash::sha256(&body);
    drv.outputs.insert(
        "out".to_owned(),
        DerivationOutput {
            path: None,
            fixed: Some(FixedOutputHash {
                method: ContentAddressMethod::Flat,
                hash,
            }),
            floating: None,
        },
    );
    for (key, value) in [
        ("name", "big".to_owned()),
        ("system", "builtin".to_owned()),
        ("builder", "builtin:fetchurl".to_owned()),
        ("url", server.url("/big")),
        ("outputHash", hash.to_sri()),
        ("outputHashMode", "flat".to_owned()),
    ] {
        drv.set_env_var(key, value);
    }
    let drv = t.write(drv);
    let recorder = Arc::new(DownloadRecorder::default());
    let events: Arc<dyn BuildEvents> = recorder.clone();
    let options = ScheduleOptions {
        jobs: 1,
        keep_going: false,
        check: false,
        settings: BuildSettings {
            builtin: BuiltinOptions {
                fetch: FetchOptions {
                    progress_interval: Duration::ZERO,
                    ..FetchOptions::default()
                },
                ..BuiltinOptions::default()
            },
            ..BuildSettings::default()
        },
    };
    let report = run_plan(&t.store, &t.plan(&[&drv], false), &options, &events);
    assert!(report.success(), "{report:?}");
    let reports = recorder.reports.lock().unwrap();
    assert!(reports.len() > 2, "{} reports", reports.len());
    assert!(reports.iter().all(|(of, _, _)| of == &drv));
    assert!(
        reports.windows(2).all(|w| w[0].1 <= w[1].1),
        "bytes went back"
    );
    assert_eq!(reports.last().map(|r| (r.1, r.2)), Some((len, Some(len))));
}
