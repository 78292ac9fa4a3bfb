//! `builtin:unpack` on archives made here with the `tar` crate: every compression, a
//! `docker save` tarball with its `layer.tar`, special modes, owners, hardlinks, symlinks,
//! xattrs, nodes, `stripComponents`, and hostile archives that try to write outside the output.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use kiln_builder::builtin_builders::unpack::compression::Compression;
use kiln_builder::builtin_builders::{
    run_builtin, unpack, unpack_archive, BuiltinOptions, BuiltinOutcome, StoreLocation,
    UnpackError, UnpackOptions,
};
use tar::{EntryType, Header};

/// Builds tar archives entry by entry, writing names verbatim (even hostile ones).
struct Archive {
    builder: tar::Builder<Vec<u8>>,
}

impl Archive {
    fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(entry_type: EntryType, name: &str, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(entry_type);
        let raw = header.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn add(&mut self, mut header: Header, data: &[u8]) -> &mut Self {
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.add(Self::header(EntryType::Directory, name, mode, 0), &[])
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.add(
            Self::header(EntryType::Regular, name, mode, data.len() as u64),
            data,
        )
    }

    fn owned_file(&mut self, name: &str, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        let mut header = Self::header(EntryType::Regular, name, 0o644, data.len() as u64);
        header.set_uid(uid);
        header.set_gid(gid);
        self.add(header, data)
    }

    fn link(&mut self, entry_type: EntryType, name: &str, target: &str) -> &mut Self {
        let mut header = Self::header(entry_type, name, 0o777, 0);
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.add(header, &[])
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, name, target)
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, name, target)
    }

    fn node(&mut self, entry_type: EntryType, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut header = Self::header(entry_type, name, 0o666, 0);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.add(header, &[])
    }

    fn xattrs(&mut self, pairs: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(pairs.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        Compression::Xz => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
        Compression::Bzip2 => {
            let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
    }
}

/// A scratch directory holding the archive, the output and an `outside` directory that no
/// unpack may touch.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/secret"), b"secret\n").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn archive(&self, data: &[u8]) -> PathBuf {
        let path = self.path("archive");
        fs::write(&path, data).unwrap();
        path
    }

    /// Asserts that nothing outside the output changed.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["archive", "out", "outside"]);
        let outside: Vec<_> = fs::read_dir(self.path("outside"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["secret"]);
        let secret = fs::symlink_metadata(self.path("outside/secret")).unwrap();
        assert_eq!(secret.nlink(), 1, "the outside file gained a hardlink");
        assert_eq!(fs::read(self.path("outside/secret")).unwrap(), b"secret\n");
    }
}

fn sample_tree() -> Vec<u8> {
    Archive::new()
        .dir("./", 0o755)
        .dir("./bin/", 0o755)
        .file("./bin/tool", 0o755, b"#!/bin/sh\necho tool\n")
        .symlink("./bin/alias", "tool")
        .symlink("./lib", "/usr/lib")
        .dir("./etc/", 0o755)
        .file("./etc/conf", 0o644, b"key=value\n")
        .finish()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn each_compression_unpacks_the_same_tree() {
    let plain = sample_tree();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Bzip2,
    ] {
        let scratch = Scratch::new();
        let src = scratch.archive(&compress(&plain, compression));
        let out = scratch.path("out");
        let report = unpack_archive(&src, None, 0, &out, &UnpackOptions::default())
            .unwrap_or_else(|error| panic!("{compression}: {error}"));
        assert_eq!(report.compression, compression);
        assert_eq!(report.entries, 7);
        assert_eq!(
            fs::read(out.join("bin/tool")).unwrap(),
            b"#!/bin/sh\necho tool\n"
        );
        assert_eq!(mode(&out.join("bin/tool")), 0o755);
        assert_eq!(fs::read(out.join("etc/conf")).unwrap(), b"key=value\n");
        assert_eq!(mode(&out.join("etc/conf")), 0o644);
        assert_eq!(
            fs::read_link(out.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(
            fs::read_link(out.join("lib")).unwrap(),
            Path::new("/usr/lib")
        );
        assert_eq!(
            fs::metadata(out.join("etc/conf")).unwrap().mtime(),
            1_700_000_000
        );
        scratch.assert_outside_untouched();
    }
}

#[test]
fn setuid_setgid_and_sticky_bits_survive() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .dir("usr/bin/", 0o755)
            .file("usr/bin/su", 0o4755, b"su")
            .file("usr/bin/write", 0o2755, b"write")
            .dir("tmp/", 0o1777)
            .dir("readonly/", 0o555)
            .file("readonly/inside", 0o444, b"x")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    assert_eq!(mode(&out.join("usr/bin/su")), 0o4755);
    assert_eq!(mode(&out.join("usr/bin/write")), 0o2755);
    assert_eq!(mode(&out.join("tmp")), 0o1777);
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
fn owners_are_kept_when_running_as_root() {
    if !nix::unistd::Uid::effective().is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI runs the tests as root; owners cannot be checked otherwise");
        }
        println!("skipped: owners are only kept when running as root");
        return;
    }
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
    let report = unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let file = fs::metadata(out.join("home/user/file")).unwrap();
    assert_eq!((file.uid(), file.gid()), (1234, 5678));
    let link = fs::symlink_metadata(out.join("home/user/link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (1000, 100));
    let dir = fs::metadata(out.join("home/user")).unwrap();
    assert_eq!(
        (dir.uid(), dir.gid(), dir.mode() & 0o7777),
        (1000, 1000, 0o700)
    );
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
fn extended_attributes_are_kept() {
    // A version-2 file capability: effective, cap_net_raw (bit 13) permitted.
    let mut capability = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        capability.extend(word.to_le_bytes());
    }
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .xattrs(&[("SCHILY.xattr.user.kiln", b"hello")])
            .file("plain", 0o644, b"data")
            .xattrs(&[("SCHILY.xattr.security.capability", &capability)])
            .file("ping", 0o755, b"ping")
            .finish(),
    );
    let out = scratch.path("out");
    let report = unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    match get_xattr(&out.join("plain"), "user.kiln") {
        Some(value) => assert_eq!(value, b"hello"),
        None => assert!(
            report.warnings.iter().any(|w| w.contains("user.kiln")),
            "neither set nor warned: {:?}",
            report.warnings
        ),
    }
    match get_xattr(&out.join("ping"), "security.capability") {
        Some(value) => assert_eq!(value, capability),
        None => assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("security.capability")),
            "neither set nor warned: {:?}",
            report.warnings
        ),
    }
    if nix::unistd::Uid::effective().is_root() {
        assert_eq!(
            get_xattr(&out.join("ping"), "security.capability"),
            Some(capability)
        );
    }
}

#[test]
fn fifos_are_made_and_device_nodes_made_or_skipped_with_a_warning() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .node(EntryType::Fifo, "run/initctl", 0, 0)
            .node(EntryType::Char, "dev/null", 1, 3)
            .finish(),
    );
    let out = scratch.path("out");
    let report = unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    let fifo = fs::symlink_metadata(out.join("run/initctl")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o666);
    match fs::symlink_metadata(out.join("dev/null")) {
        Ok(null) => {
            assert!(null.file_type().is_char_device());
            assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        }
        Err(_) => assert!(
            report.warnings.iter().any(|w| w.contains("dev/null")),
            "{:?}",
            report.warnings
        ),
    }
}

#[test]
fn strip_components_drops_leading_directories_of_names_and_link_targets() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .dir("pkg-1.0/", 0o755)
            .file("pkg-1.0/README", 0o644, b"readme")
            .file("pkg-1.0/bin/x", 0o755, b"x")
            .hardlink("pkg-1.0/bin/y", "pkg-1.0/bin/x")
            .file("toplevel", 0o644, b"dropped")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 1, &out, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(out.join("README")).unwrap(), b"readme");
    assert_eq!(fs::read(out.join("bin/y")).unwrap(), b"x");
    assert!(!out.join("toplevel").exists());
    assert!(!out.join("pkg-1.0").exists());
}

fn docker_save(layer: &[u8]) -> Vec<u8> {
    Archive::new()
        .dir("0123abcd/", 0o755)
        .file("0123abcd/VERSION", 0o644, b"1.0")
        .file("0123abcd/json", 0o644, b"{}")
        .file("0123abcd/layer.tar", 0o644, layer)
        .file(
            "manifest.json",
            0o644,
            br#"[{"Config":"cfg.json","RepoTags":["base:9"],"Layers":["0123abcd/layer.tar"]}]"#,
        )
        .finish()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

#[test]
fn a_docker_save_layer_is_unpacked_through_member() {
    let layer = Archive::new()
        .dir("./", 0o555)
        .dir("./etc/", 0o755)
        .file("./etc/os-release", 0o644, b"ID=centos\n")
        .dir("./tmp/", 0o1777)
        .finish();
    for (layer_compression, outer_compression) in [
        (Compression::None, Compression::Xz),
        (Compression::Gzip, Compression::None),
    ] {
        let scratch = Scratch::new();
        let outer = compress(
            &docker_save(&compress(&layer, layer_compression)),
            outer_compression,
        );
        scratch.archive(&outer);
        // The derivation names the logical store path; the unpack reads the physical one.
        let options = UnpackOptions {
            store_location: Some(StoreLocation {
                logical: PathBuf::from("/kiln/store"),
                physical: scratch.dir.path().to_owned(),
            }),
            ..UnpackOptions::default()
        };
        let out = scratch.path("out");
        let report = unpack(
            &env(&[
                ("src", "/kiln/store/archive"),
                ("member", "./0123abcd/layer.tar"),
            ]),
            &out,
            &options,
        )
        .unwrap();
        assert_eq!(report.compression, layer_compression);
        assert_eq!(
            fs::read(out.join("etc/os-release")).unwrap(),
            b"ID=centos\n"
        );
        assert_eq!(mode(&out.join("tmp")), 0o1777);
        assert_eq!(mode(&out), 0o555);
        assert!(!out.join("manifest.json").exists());
        fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        scratch.assert_outside_untouched();
    }
}

#[test]
fn a_docker_save_tarball_without_member_suggests_the_layer() {
    let scratch = Scratch::new();
    let layer = Archive::new().file("etc/os-release", 0o644, b"x").finish();
    let src = scratch.archive(&docker_save(&layer));
    let error = run_builtin(
        "builtin:unpack",
        &env(&[("src", src.to_str().unwrap())]),
        &scratch.path("out"),
        &BuiltinOptions::default(),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("docker save") && message.contains(r#"member = "0123abcd/layer.tar""#),
        "{message}"
    );
}

#[test]
fn a_missing_member_lists_the_archives_inside() {
    let scratch = Scratch::new();
    let layer = Archive::new().file("etc/os-release", 0o644, b"x").finish();
    let src = scratch.archive(&docker_save(&layer));
    let error = unpack_archive(
        &src,
        Some("other.tar"),
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&error, UnpackError::MemberNotFound { candidates, .. } if candidates == &["0123abcd/layer.tar"]),
        "{error}"
    );
    assert!(error.to_string().contains("0123abcd/layer.tar"));
}

/// A layer holding one file, `/which`, with the given contents.
fn marked_layer(mark: &[u8]) -> Vec<u8> {
    Archive::new().file("which", 0o644, mark).finish()
}

#[test]
fn a_member_name_finds_the_one_entry_ending_in_it() {
    // The real CentOS Stream tarball's layout: `<sha256-hex>/layer.tar` and `manifest.json`,
    // with the layer not at the top.
    let scratch = Scratch::new();
    let src = scratch.archive(&compress(
        &docker_save(&marked_layer(b"layer")),
        Compression::Xz,
    ));
    let out = scratch.path("out");
    unpack_archive(&src, Some("layer.tar"), 0, &out, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(out.join("which")).unwrap(), b"layer");
    // A name that merely ends in the same letters is not a match.
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .file("otherlayer.tar", 0o644, &marked_layer(b"no"))
            .finish(),
    );
    let error = unpack_archive(
        &src,
        Some("layer.tar"),
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(error, UnpackError::MemberNotFound { .. }),
        "{error}"
    );
}

#[test]
fn several_entries_ending_in_the_member_name_are_ambiguous() {
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .file("aaaa/layer.tar", 0o644, &marked_layer(b"a"))
            .file("bbbb/layer.tar", 0o644, &marked_layer(b"b"))
            .finish(),
    );
    let error = unpack_archive(
        &src,
        Some("layer.tar"),
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&error, UnpackError::MemberAmbiguous { matches, .. } if matches == &["aaaa/layer.tar", "bbbb/layer.tar"]),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("aaaa/layer.tar, bbbb/layer.tar"),
        "{message}"
    );
}

#[test]
fn an_exact_member_name_wins_over_suffix_matches_before_or_after_it() {
    for exact_first in [true, false] {
        let scratch = Scratch::new();
        let mut archive = Archive::new();
        if exact_first {
            archive.file("layer.tar", 0o644, &marked_layer(b"exact"));
        }
        archive
            .file("aaaa/layer.tar", 0o644, &marked_layer(b"a"))
            .file("bbbb/layer.tar", 0o644, &marked_layer(b"b"));
        if !exact_first {
            archive.file("./layer.tar", 0o644, &marked_layer(b"exact"));
        }
        let src = scratch.archive(&archive.finish());
        let out = scratch.path("out");
        unpack_archive(&src, Some("layer.tar"), 0, &out, &UnpackOptions::default()).unwrap();
        assert_eq!(fs::read(out.join("which")).unwrap(), b"exact");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
    }
}

#[test]
fn run_builtin_unpacks() {
    let scratch = Scratch::new();
    let src = scratch.archive(&compress(&sample_tree(), Compression::Zstd));
    let outcome = run_builtin(
        "builtin:unpack",
        &env(&[("src", src.to_str().unwrap())]),
        &scratch.path("out"),
        &BuiltinOptions::default(),
    )
    .unwrap();
    assert!(matches!(outcome, BuiltinOutcome::Unpacked(report) if report.entries == 7));
}

/// Unpacks a hostile archive and checks the error names the entry and nothing outside changed.
fn assert_refused(archive: Vec<u8>, entry: &str) -> UnpackError {
    let scratch = Scratch::new();
    let src = scratch.archive(&archive);
    let error = unpack_archive(
        &src,
        None,
        0,
        &scratch.path("out"),
        &UnpackOptions::default(),
    )
    .expect_err("a hostile archive must be refused");
    let message = error.to_string();
    assert!(
        message.contains(&format!("`{entry}`")),
        "the error should name `{entry}`: {message}"
    );
    scratch.assert_outside_untouched();
    error
}

#[test]
fn dot_dot_names_are_refused() {
    let error = assert_refused(
        Archive::new()
            .file("fine", 0o644, b"ok")
            .file("../outside/evil", 0o644, b"evil")
            .finish(),
        "../outside/evil",
    );
    assert!(matches!(error, UnpackError::UnsafeEntry { .. }));
    assert_refused(
        Archive::new()
            .file("a/../../outside/evil", 0o644, b"evil")
            .finish(),
        "a/../../outside/evil",
    );
}

#[test]
fn absolute_names_are_refused() {
    let scratch = Scratch::new();
    let target = scratch.path("outside/evil");
    let name = target.to_str().unwrap();
    let error = assert_refused(Archive::new().file(name, 0o644, b"evil").finish(), name);
    assert!(matches!(error, UnpackError::UnsafeEntry { .. }));
    assert!(!target.exists());
}

#[test]
fn writes_through_a_symlink_are_refused() {
    let scratch = Scratch::new();
    let outside = scratch.path("outside");
    let outside = outside.to_str().unwrap();
    // The link points at a real directory outside (absolute), or reaches it relatively.
    for target in [outside, "../outside"] {
        let error = assert_refused(
            Archive::new()
                .symlink("link", target)
                .file("link/evil", 0o644, b"evil")
                .finish(),
            "link/evil",
        );
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
    // A directory replaced by a symlink later in the same archive.
    assert_refused(
        Archive::new()
            .dir("a/", 0o755)
            .symlink("a", "../outside")
            .file("a/evil", 0o644, b"evil")
            .finish(),
        "a/evil",
    );
    // A file entry whose name is an existing symlink replaces the link, never writes through.
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .symlink("secret", "../outside/secret")
            .file("secret", 0o644, b"replaced")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(out.join("secret")).unwrap(), b"replaced");
    scratch.assert_outside_untouched();
}

#[test]
fn hardlinks_to_outside_paths_are_refused() {
    let scratch = Scratch::new();
    let secret = scratch.path("outside/secret");
    for target in ["../outside/secret", secret.to_str().unwrap()] {
        let error = assert_refused(Archive::new().hardlink("h", target).finish(), "h");
        assert!(matches!(error, UnpackError::UnsafeEntry { .. }), "{error}");
    }
    // Through a symlink inside the archive.
    assert_refused(
        Archive::new()
            .symlink("d", "../outside")
            .hardlink("h", "d/secret")
            .finish(),
        "h",
    );
    // A hardlink to an in-archive symlink links the symlink itself, never its target.
    let scratch = Scratch::new();
    let src = scratch.archive(
        &Archive::new()
            .symlink("s", "../outside/secret")
            .hardlink("h", "s")
            .finish(),
    );
    let out = scratch.path("out");
    unpack_archive(&src, None, 0, &out, &UnpackOptions::default()).unwrap();
    assert!(fs::symlink_metadata(out.join("h"))
        .unwrap()
        .file_type()
        .is_symlink());
    scratch.assert_outside_untouched();
}
