//! What unpacked files keep and lose: setuid/setgid and write bits, hardlinks, owners, capability headers and xattrs, device nodes and fifos, sparse entries and their size limit.
use super::*;

#[test]
fn setuid_setgid_and_write_bits_are_dropped_and_sticky_bits_survive() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .dir("usr/bin/", 0o755)
            .file("usr/bin/su", 0o4755, b"su")
            .file("usr/bin/write", 0o2755, b"write")
            .file("shared", 0o666, b"anyone")
            .dir("tmp/", 0o1777)
            .dir("readonly/", 0o555)
            .file("readonly/inside", 0o444, b"x")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    assert_eq!(mode(&out.join("usr/bin/su")), 0o755);
    assert_eq!(mode(&out.join("usr/bin/write")), 0o755);
    assert_eq!(mode(&out.join("shared")), 0o644);
    assert_eq!(mode(&out.join("tmp")), 0o1755);
    assert_eq!(mode(&out.join("readonly")), 0o555);
    assert_eq!(mode(&out.join("readonly/inside")), 0o444);
}

#[test]
fn hardlinks_share_one_inode() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .file("a/one", 0o644, b"shared")
            .hardlink("b/two", "a/one")
            .hardlink("./a/three", "./a/one")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    let one = fs::metadata(out.join("a/one")).unwrap();
    assert_eq!(one.nlink(), 3);
    assert_eq!(fs::metadata(out.join("b/two")).unwrap().ino(), one.ino());
    assert_eq!(fs::metadata(out.join("a/three")).unwrap().ino(), one.ino());
}

#[test]
fn owners_in_the_archive_are_ignored() {
    let scratch = Scratch::new();
    let mut dir_header = Archive::header(EntryType::Directory, "home/user/", 0o700, 0);
    dir_header.set_uid(1000);
    dir_header.set_gid(1000);
    let mut link_header = Archive::header(EntryType::Symlink, "home/user/link", 0o777, 0);
    link_header.set_link_name("file").unwrap();
    link_header.set_uid(1000);
    link_header.set_gid(100);
    let src = scratch.archive(
        &Archive::new()
            .add(dir_header, &[])
            .owned_file("home/user/file", 1234, 5678, b"mine")
            .add(link_header, &[])
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    let me = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    for name in ["home/user", "home/user/file", "home/user/link"] {
        let meta = fs::symlink_metadata(out.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), me, "{name}");
    }
    assert_eq!(mode(&out.join("home/user")), 0o700);
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buffer = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated; the buffer is valid for its length.
    let len = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    (len >= 0).then(|| {
        buffer.truncate(len as usize);
        buffer
    })
}

#[test]
fn a_setuid_root_entry_with_a_capability_header_becomes_a_plain_file() {
    // A version-2 file capability: effective, cap_setuid (7) and cap_setgid (6) permitted.
    let mut capability = Vec::new();
    for word in [0x0200_0001u32, (1 << 7) | (1 << 6), 0, 0, 0] {
        capability.extend(word.to_le_bytes());
    }
    let scratch = Scratch::new();
    let mut root_shell = Archive::header(EntryType::Regular, "bin/rootshell", 0o4755, 5);
    root_shell.set_uid(0);
    root_shell.set_gid(0);
    let src = scratch.archive(
        &Archive::new()
            .xattrs(&[
                ("SCHILY.xattr.security.capability", &capability),
                ("SCHILY.xattr.user.kiln", b"hello"),
            ])
            .add(root_shell, b"shell")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    let shell = out.join("bin/rootshell");
    assert_eq!(fs::read(&shell).unwrap(), b"shell");
    assert_eq!(mode(&shell), 0o755);
    assert_eq!(get_xattr(&shell, "security.capability"), None);
    assert_eq!(get_xattr(&shell, "user.kiln"), None);
}

#[test]
fn device_nodes_and_fifos_are_skipped_with_a_warning_naming_each() {
    let scratch = Scratch::new();
    let (src, mut options) = scratch.store_archive(
        &Archive::new()
            .dir("dev/", 0o755)
            .node(EntryType::Char, "dev/console", 5, 1)
            .node(EntryType::Char, "dev/null", 1, 3)
            .node(EntryType::Block, "dev/sda", 8, 0)
            .node(EntryType::Fifo, "run/initctl", 0, 0)
            .file("etc/os-release", 0o644, b"ID=centos\n")
            .finish(),
    );
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    options.log = Some(std::sync::Arc::new(move |line: &str| {
        sink.lock().unwrap().push(line.to_owned())
    }));
    let out = scratch.path("out");
    let report = unpack(&env(&[("src", &src)]), &out, &options).unwrap();
    assert_eq!(
        fs::read(out.join("etc/os-release")).unwrap(),
        b"ID=centos\n"
    );
    let logged = lines.lock().unwrap().join("\n");
    for name in ["dev/console", "dev/null", "dev/sda", "run/initctl"] {
        assert!(
            fs::symlink_metadata(out.join(name)).is_err(),
            "{name} was created"
        );
        assert!(
            report.warnings.iter().any(|w| w.contains(name)),
            "{name}: {:?}",
            report.warnings
        );
        assert!(logged.contains(&format!("warning: {name}")), "{logged}");
    }
    assert!(out.join("dev").is_dir());
}

#[test]
fn a_sparse_entry_past_the_size_limit_is_refused_naming_it() {
    let scratch = Scratch::new();
    let archive = Archive::new()
        .file("small", 0o644, b"fine")
        .sparse_file("bomb", 45 << 20, &[7; 512])
        .finish();
    assert!(archive.len() < 10 << 10, "{}", archive.len());
    let src = scratch.archive(&archive);
    let options = UnpackOptions {
        max_unpacked_size: Some(1 << 20),
        ..UnpackOptions::default()
    };
    let out = scratch.path("out");
    let error = unpack_archive(&src, None, 0, &out, &options).unwrap_err();
    assert!(
        matches!(&error, UnpackError::TooLarge { entry, limit, .. } if entry == "bomb" && *limit == 1 << 20),
        "{error}"
    );
    assert!(!out.join("bomb").exists());
}

#[test]
fn sparse_entries_within_the_limit_are_written_with_holes() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .sparse_file("disk.img", 45 << 20, &[7; 512])
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    let image = out.join("disk.img");
    let meta = fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), 45 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    let contents = fs::read(&image).unwrap();
    assert!(contents[..(45 << 20) - 512].iter().all(|byte| *byte == 0));
    assert!(contents[(45 << 20) - 512..].iter().all(|byte| *byte == 7));
}
