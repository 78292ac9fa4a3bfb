//! What a hostile build leaves behind: a leaked descriptor into a fixed output, setuid bits, foreign owners and world-writable files, fifos, and a `.drv` stored under a path its contents do not give.
use super::*;

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
