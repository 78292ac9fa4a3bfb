//! Building hand-made `.drv` files with the plan and the scheduler: a DAG with a diamond,
//! references and derivers, fixed-output hash mismatches, failing builders and their logs,
//! `--check`, and refused network access. Needs busybox and user namespaces: under CI=true
//! their absence fails the tests, elsewhere the tests print why they skip.
mod fetch_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_builder::build::{
    host_system, BuildError, BuildEvents, BuildOutcome, BuildSettings, NoEvents,
};
use kiln_builder::builtin_builders::{BuiltinOptions, FetchOptions, FetchProgress};
use kiln_builder::log::BuildLog;
use kiln_builder::plan::{BuildPlan, BuildReason, BuildTarget};
use kiln_builder::scheduler::{run_plan, BuildStatus, ScheduleOptions, ScheduleReport};
use kiln_local_store::store_files::{add_text, commit_copy, stage_copy};
use kiln_local_store::LocalStore;
use kiln_store::derivation::{Derivation, DerivationOutput, DrvHashCache, FixedOutputHash};
use kiln_store::hash::Hash;
use kiln_store::store_path::{ContentAddressMethod, StoreDir, StorePath};

const BUSYBOX: &str = "/bin/busybox";

/// Whether the machine can run sandboxed busybox builds; panics under CI=true if not.
fn environment_ready() -> bool {
    let missing = if !Path::new(BUSYBOX).exists() {
        Some("busybox is not installed at /bin/busybox")
    } else if !std::process::Command::new("unshare")
        .args(["-Ur", "true"])
        .status()
        .is_ok_and(|status| status.success())
    {
        Some("user namespaces are not available")
    } else {
        None
    };
    match missing {
        None => true,
        Some(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and {reason}")
        }
        Some(reason) => {
            eprintln!("skipping: {reason}");
            false
        }
    }
}

struct TestStore {
    _root: tempfile::TempDir,
    store: LocalStore,
    dir: StoreDir,
    busybox: StorePath,
    hashes: DrvHashCache,
    drvs: BTreeMap<StorePath, Derivation>,
}

impl TestStore {
    fn new() -> TestStore {
        let root = tempfile::tempdir().unwrap();
        let dir = StoreDir::new("/kiln/store");
        let store = LocalStore::open(root.path().join("kiln"), dir.clone()).unwrap();
        // busybox picks its applet from argv[0], which must be `busybox` to take the applet
        // from argv[1]: import a directory holding `busybox`, as examples/busybox does.
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        let staged = stage_copy(
            &store,
            "busybox",
            &bin,
            ContentAddressMethod::Recursive,
            None,
        )
        .unwrap();
        let busybox = dir
            .make_fixed_output_path(
                ContentAddressMethod::Recursive,
                &staged.content_hash,
                "busybox",
                &BTreeSet::new(),
                false,
            )
            .unwrap();
        commit_copy(&store, staged, &busybox, ContentAddressMethod::Recursive).unwrap();
        TestStore {
            _root: root,
            store,
            dir,
            busybox,
            hashes: DrvHashCache::new(),
            drvs: BTreeMap::new(),
        }
    }

    /// Writes a busybox-sh derivation running `script`, using the `out` outputs of `inputs`
    /// (available to the script as `$input0`, `$input1`, ...).
    fn derivation(
        &mut self,
        name: &str,
        script: &str,
        inputs: &[&StorePath],
        fixed: Option<FixedOutputHash>,
        extra_env: &[(&str, &str)],
    ) -> StorePath {
        let mut drv = Derivation {
            name: name.to_owned(),
            platform: host_system(),
            builder: self.builder().into_bytes(),
            args: vec![b"sh".to_vec(), b"-c".to_vec(), script.as_bytes().to_vec()],
            ..Derivation::default()
        };
        drv.outputs.insert(
            "out".to_owned(),
            DerivationOutput {
                fixed,
                ..DerivationOutput::default()
            },
        );
        drv.input_srcs.insert(self.busybox.clone());
        for (index, input) in inputs.iter().enumerate() {
            drv.input_drvs
                .insert((*input).clone(), BTreeSet::from(["out".to_owned()]));
            let out = self.drvs[*input].outputs["out"].path.clone().unwrap();
            drv.set_env_var(&format!("input{index}"), self.dir.print(&out));
        }
        for (key, value) in [
            ("name", name),
            ("system", &host_system()),
            ("builder", &self.builder()),
        ] {
            drv.set_env_var(key, value.as_bytes());
        }
        for (key, value) in extra_env {
            drv.set_env_var(key, value.as_bytes());
        }
        self.write(drv)
    }

    /// Fills in the output paths of `drv` and writes it to the store.
    fn write(&mut self, mut drv: Derivation) -> StorePath {
        let (dir, drvs, hashes) = (&self.dir, &self.drvs, &mut self.hashes);
        drv.fill_output_paths(dir, &mut |input| {
            hashes
                .hash_of_path(dir, input, &mut |path| Ok(drvs[path].clone()))
                .ok()
        })
        .unwrap();
        let aterm = drv.to_aterm(&self.dir);
        let drv_path = drv.drv_path(&self.dir, &aterm).unwrap();
        let outputs = drv
            .outputs
            .iter()
            .map(|(name, output)| (name.clone(), output.path.clone().unwrap()))
            .collect();
        add_text(&self.store, &drv_path, &aterm, &drv.references(), outputs).unwrap();
        self.drvs.insert(drv_path.clone(), drv);
        drv_path
    }

    fn builder(&self) -> String {
        format!("{}/busybox", self.dir.print(&self.busybox))
    }

    fn out(&self, drv: &StorePath) -> StorePath {
        self.drvs[drv].outputs["out"].path.clone().unwrap()
    }

    fn plan(&self, targets: &[&StorePath], check: bool) -> BuildPlan {
        let targets: Vec<BuildTarget> = targets
            .iter()
            .map(|drv| BuildTarget::all_outputs((*drv).clone()))
            .collect();
        BuildPlan::load(&self.store, &targets, check).unwrap()
    }

    fn run(&self, plan: &BuildPlan, jobs: usize, check: bool) -> ScheduleReport {
        self.run_with(
            plan,
            ScheduleOptions {
                jobs,
                keep_going: false,
                check,
                settings: Default::default(),
            },
        )
    }

    fn run_with(&self, plan: &BuildPlan, options: ScheduleOptions) -> ScheduleReport {
        let events: Arc<dyn BuildEvents> = Arc::new(NoEvents);
        run_plan(&self.store, plan, &options, &events)
    }
}

fn failure(report: &ScheduleReport) -> &BuildError {
    report
        .statuses
        .iter()
        .find_map(|status| match status {
            BuildStatus::Failed(error) => Some(error),
            _ => None,
        })
        .expect("a failed build")
}

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

/// Adds a file to the store as a flat fixed-output source.
fn add_file(t: &TestStore, name: &str, contents: &[u8]) -> StorePath {
    let file = t._root.path().join(name);
    std::fs::write(&file, contents).unwrap();
    let staged = stage_copy(&t.store, name, &file, ContentAddressMethod::Flat, None).unwrap();
    let path = t
        .dir
        .make_fixed_output_path(
            ContentAddressMethod::Flat,
            &staged.content_hash,
            name,
            &BTreeSet::new(),
            false,
        )
        .unwrap();
    commit_copy(&t.store, staged, &path, ContentAddressMethod::Flat).unwrap();
    path
}

#[test]
fn builtin_unpack_runs_in_process_and_feeds_a_sandboxed_build() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    archive
        .append_data(&mut header, "top/hello.txt", &b"hello\n"[..])
        .unwrap();
    let tarball = add_file(&t, "hello.tar", &archive.into_inner().unwrap());

    let mut unpack = Derivation {
        name: "hello-src".to_owned(),
        platform: "builtin".to_owned(),
        builder: "builtin:unpack".into(),
        ..Derivation::default()
    };
    unpack.outputs.insert(
        "out".to_owned(),
        DerivationOutput {
            path: None,
            fixed: None,
            floating: None,
        },
    );
    unpack.input_srcs.insert(tarball.clone());
    for (key, value) in [
        ("name", "hello-src".to_owned()),
        ("system", "builtin".to_owned()),
        ("builder", "builtin:unpack".to_owned()),
        ("src", t.dir.print(&tarball)),
        ("stripComponents", "1".to_owned()),
    ] {
        unpack.set_env_var(key, value);
    }
    let unpack = t.write(unpack);
    let user = t.derivation(
        "user",
        "read line < $input0/hello.txt; echo \"got $line\" > $out",
        &[&unpack],
        None,
        &[],
    );
    let report = t.run(&t.plan(&[&user], false), 2, false);
    assert!(report.success(), "{report:?}");
    let out = t.store.physical_path(&t.out(&user));
    assert_eq!(std::fs::read_to_string(out).unwrap(), "got hello\n");
    let unpacked = t.store.query_path_info(&t.out(&unpack)).unwrap().unwrap();
    assert_eq!(unpacked.deriver.as_ref(), Some(&unpack));
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

/// A static C program that opens `argv[1]` read-write and passes the descriptor over the
/// abstract unix socket named `argv[2]` (the CVE-2024-27297 shape: fixed-output builds share
/// the host's network namespace, so abstract sockets reach processes outside the sandbox).
const FD_SENDER_C: &str = r#"
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int fd = open(argv[1], O_RDWR);
    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || sock < 0) return 3;
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    size_t length = strlen(argv[2]);
    memcpy(address.sun_path + 1, argv[2], length);
    if (connect(sock, (struct sockaddr *)&address,
                offsetof(struct sockaddr_un, sun_path) + 1 + length) != 0) return 4;
    char byte = 'x';
    struct iovec iov = { &byte, 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof fd);
    return sendmsg(sock, &message, 0) == 1 ? 0 : 5;
}
"#;

/// Compiles [`FD_SENDER_C`] statically and adds it to the store as `<path>/fd-sender`; `None`
/// (after printing why) when no C compiler is available, a panic under CI=true.
fn add_fd_sender(t: &TestStore) -> Option<StorePath> {
    let work = t._root.path().join("fd-sender-src");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("sender.c"), FD_SENDER_C).unwrap();
    let bin = t._root.path().join("fd-sender-bin");
    std::fs::create_dir(&bin).unwrap();
    let compiled = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(bin.join("fd-sender"))
        .arg(work.join("sender.c"))
        .status()
        .is_ok_and(|status| status.success());
    if !compiled {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and `cc -static` cannot build the descriptor-passing helper (install gcc and libc6-dev)"
        );
        eprintln!("skipping: `cc -static` is not available");
        return None;
    }
    let staged = stage_copy(
        &t.store,
        "fd-sender",
        &bin,
        ContentAddressMethod::Recursive,
        None,
    )
    .unwrap();
    let path = t
        .dir
        .make_fixed_output_path(
            ContentAddressMethod::Recursive,
            &staged.content_hash,
            "fd-sender",
            &BTreeSet::new(),
            false,
        )
        .unwrap();
    commit_copy(&t.store, staged, &path, ContentAddressMethod::Recursive).unwrap();
    Some(path)
}

/// Receives one descriptor sent with SCM_RIGHTS on `stream`.
fn receive_descriptor(stream: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    for control in message.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = control {
            // SAFETY: the kernel installed this descriptor in our table for us; nothing else
            // owns it.
            return unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no descriptor received");
}

#[test]
fn a_descriptor_leaked_by_a_fixed_output_build_cannot_poison_the_registered_path() {
    use std::io::Write;
    use std::os::linux::net::SocketAddrExt;
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let Some(sender) = add_fd_sender(&t) else {
        return;
    };
    // The attacker's receiver, outside every sandbox, in the host's network namespace.
    let socket_name = format!("kiln-poison-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(&socket_name).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        receive_descriptor(&stream)
    });

    let honest = b"honest contents\n";
    let fixed = FixedOutputHash {
        method: ContentAddressMethod::Flat,
        hash: Hash::sha256(honest),
    };
    let mut drv = Derivation {
        name: "poisoned".to_owned(),
        platform: host_system(),
        builder: t.builder().into_bytes(),
        args: vec![
            "sh".into(),
            "-c".into(),
            format!(
                "printf 'honest contents\\n' > $out && {}/fd-sender $out {socket_name}",
                t.dir.print(&sender)
            )
            .into_bytes(),
        ],
        ..Derivation::default()
    };
    drv.outputs.insert(
        "out".to_owned(),
        DerivationOutput {
            path: None,
            fixed: Some(fixed),
            floating: None,
        },
    );
    drv.input_srcs.insert(t.busybox.clone());
    drv.input_srcs.insert(sender.clone());
    for (key, value) in [("name", "poisoned".to_owned()), ("builder", t.builder())] {
        drv.set_env_var(key, value);
    }
    let attacker = t.write(drv);
    let report = t.run(&t.plan(&[&attacker], false), 1, false);
    assert!(report.success(), "{report:?}");
    let leaked = receiver.join().unwrap();

    // After registration the attacker writes through the descriptor it kept.
    let out = t.out(&attacker);
    let physical = t.store.physical_path(&out);
    let mut leaked = std::fs::File::from(leaked);
    leaked.write_all(b"POISONED, run me as root\n").unwrap();
    leaked.sync_all().unwrap();

    assert_eq!(std::fs::read(&physical).unwrap(), honest);
    let report = t.store.verify(true).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let info = t.store.query_path_info(&out).unwrap().unwrap();
    assert_eq!(
        info.nar_hash,
        kiln_store::nar::hash_path(&physical).unwrap().0
    );

    // An honest derivation with the same name and hash gets the same path, unpoisoned.
    let innocent = t.derivation(
        "poisoned",
        "printf 'honest contents\\n' > $out",
        &[],
        Some(fixed),
        &[],
    );
    assert_eq!(t.out(&innocent), out);
    assert!(t.plan(&[&innocent], false).is_empty());
    assert_eq!(std::fs::read(&physical).unwrap(), honest);
}

#[test]
fn outputs_lose_setuid_bits_foreign_owners_and_world_write_bits() {
    use std::os::unix::fs::MetadataExt;
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let drv = t.derivation(
        "dangerous",
        "mkdir $out $out/tmp && echo x > $out/prog && echo y > $out/shared \
         && chown 1234:1234 $out/prog $out/shared; chmod 6777 $out/prog \
         && chmod 666 $out/shared && chmod 1777 $out/tmp",
        &[],
        None,
        &[],
    );
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    assert!(report.success(), "{report:?}");
    let out = t.store.physical_path(&t.out(&drv));
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    for (name, mode) in [("prog", 0o755), ("shared", 0o644), ("tmp", 0o1755)] {
        let meta = std::fs::symlink_metadata(out.join(name)).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{name}");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{name}");
        assert_eq!(meta.mtime(), 1, "{name}");
    }
    assert!(t.store.verify(true).unwrap().is_ok());
}

#[test]
fn a_drv_stored_under_a_path_its_contents_do_not_give_is_refused() {
    let mut t = TestStore::new();
    let honest = t.derivation("honest", "echo > $out", &[], None, &[]);
    let drv = t.drvs[&honest].clone();
    let aterm = drv.to_aterm(&t.dir);
    // The same text stored where other contents belong.
    let forged_path = t
        .dir
        .make_text_path("honest.drv", b"other contents", &drv.references())
        .unwrap();
    let outputs = [("out".to_owned(), t.out(&honest))].into_iter().collect();
    add_text(&t.store, &forged_path, &aterm, &drv.references(), outputs).unwrap();
    let error = BuildPlan::load(
        &t.store,
        &[BuildTarget::all_outputs(forged_path.clone())],
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains(&t.dir.print(&forged_path)), "{error}");
    assert!(error.contains(&t.dir.print(&honest)), "{error}");
}

/// Writes a `builtin:unpack` derivation of `src` (with `tarball` as its input source, if any).
fn unpack_derivation(
    t: &mut TestStore,
    name: &str,
    src: &str,
    tarball: Option<&StorePath>,
) -> StorePath {
    let mut unpack = Derivation {
        name: name.to_owned(),
        platform: "builtin".to_owned(),
        builder: "builtin:unpack".into(),
        ..Derivation::default()
    };
    unpack.outputs.insert(
        "out".to_owned(),
        DerivationOutput {
            path: None,
            fixed: None,
            floating: None,
        },
    );
    unpack.input_srcs.extend(tarball.cloned());
    for (key, value) in [
        ("name", name),
        ("system", "builtin"),
        ("builder", "builtin:unpack"),
        ("src", src),
    ] {
        unpack.set_env_var(key, value.as_bytes());
    }
    t.write(unpack)
}

#[test]
fn an_unpacked_layer_with_device_nodes_and_a_fifo_registers_without_them() {
    let mut t = TestStore::new();
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |name: &str, entry_type: tar::EntryType, data: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(entry_type);
        header.set_device_major(5).unwrap();
        header.set_device_minor(1).unwrap();
        header.set_cksum();
        archive.append_data(&mut header, name, data).unwrap();
    };
    add("dev/console", tar::EntryType::Char, b"", 0o600);
    add("dev/null", tar::EntryType::Char, b"", 0o666);
    add("dev/loop0", tar::EntryType::Block, b"", 0o660);
    add("run/initctl", tar::EntryType::Fifo, b"", 0o600);
    add(
        "etc/os-release",
        tar::EntryType::Regular,
        b"ID=centos\n",
        0o644,
    );
    let tarball = add_file(&t, "layer.tar", &archive.into_inner().unwrap());
    let src = t.dir.print(&tarball);
    let drv = unpack_derivation(&mut t, "layer", &src, Some(&tarball));
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    assert!(report.success(), "{report:?}");
    let out = t.store.physical_path(&t.out(&drv));
    assert_eq!(
        std::fs::read(out.join("etc/os-release")).unwrap(),
        b"ID=centos\n"
    );
    let log = BuildLog::of(&t.store.log_dir(), &drv)
        .latest_attempt()
        .unwrap()
        .unwrap();
    for name in ["dev/console", "dev/null", "dev/loop0", "run/initctl"] {
        assert!(std::fs::symlink_metadata(out.join(name)).is_err(), "{name}");
        assert!(log.contains(&format!("warning: {name}")), "{log}");
    }
    assert!(t.store.verify(true).unwrap().is_ok());
}

#[test]
fn unpacking_a_host_file_outside_the_store_is_refused() {
    let mut t = TestStore::new();
    let secret = t._root.path().join("secret.tar");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(7);
    header.set_mode(0o600);
    header.set_cksum();
    archive
        .append_data(&mut header, "shadow", &b"secret\n"[..])
        .unwrap();
    std::fs::write(&secret, archive.into_inner().unwrap()).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let src = secret.to_str().unwrap().to_owned();
    let drv = unpack_derivation(&mut t, "steal", &src, None);
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    let message = failure(&report).to_string();
    assert!(message.contains(&src), "{message}");
    assert!(!t.store.is_valid(&t.out(&drv)).unwrap());
    assert!(!t.store.physical_path(&t.out(&drv)).exists());
}

#[test]
fn an_output_holding_a_fifo_is_refused_naming_it() {
    if !environment_ready() {
        return;
    }
    let mut t = TestStore::new();
    let drv = t.derivation("fifo", "mkdir $out && mkfifo $out/pipe", &[], None, &[]);
    let report = t.run(&t.plan(&[&drv], false), 1, false);
    let message = failure(&report).to_string();
    assert!(message.contains("/pipe is a fifo"), "{message}");
    assert!(!t.store.is_valid(&t.out(&drv)).unwrap());
}
