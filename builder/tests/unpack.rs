//! `builtin:unpack` on archives made here with the `tar` crate: every compression, a
//! `docker save` tarball with its `layer.tar`, hardlinks, symlinks, `stripComponents`, and
//! hostile archives: entries that try to write outside the output, setuid-root entries with
//! capability headers, foreign owners, device nodes and fifos, sparse bombs, and sources
//! outside the store.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
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

    /// Writes `data` as a store path of a store at `store/` and returns its logical path
    /// (under `/kiln/store`) and options that locate the store.
    fn store_archive(&self, data: &[u8]) -> (String, UnpackOptions) {
        let store = self.path("store");
        fs::create_dir_all(&store).unwrap();
        let base = "0c3zf58y2nqcg0bs3hvc8lrbjk8nc3b3-archive.tar";
        fs::write(store.join(base), data).unwrap();
        let options = UnpackOptions {
            store_location: Some(StoreLocation {
                logical: PathBuf::from("/kiln/store"),
                physical: store,
            }),
            ..UnpackOptions::default()
        };
        (format!("/kiln/store/{base}"), options)
    }

    /// Asserts that nothing outside the output changed.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "store")
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

impl Archive {
    /// A GNU sparse entry of logical size `real_size` whose only data is `tail` (512 bytes) at
    /// its end: a few hundred bytes in the archive, `real_size` bytes unpacked.
    fn sparse_file(&mut self, name: &str, real_size: u64, tail: &[u8; 512]) -> &mut Self {
        let mut header = Self::header(EntryType::GNUSparse, name, 0o644, 512);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.set_real_size(real_size);
        gnu.sparse[0].set_offset(real_size - 512);
        gnu.sparse[0].set_length(512);
        self.add(header, tail)
    }
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

#[test]
fn a_source_outside_the_store_is_refused_naming_it() {
    let scratch = Scratch::new();
    let (_, options) = scratch.store_archive(&sample_tree());
    // A private host file: unpacking it would publish it in the store.
    let secret = scratch.archive(&sample_tree());
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = scratch.path("out");
    for src in [
        secret.to_str().unwrap().to_owned(),
        "/kiln/store/../../etc/passwd".to_owned(),
        "/kiln/store/not-a-store-path".to_owned(),
    ] {
        let error = unpack(&env(&[("src", &src)]), &out, &options).unwrap_err();
        assert!(
            matches!(error, UnpackError::SourceOutsideStore { .. }),
            "{src}: {error}"
        );
        assert!(error.to_string().contains(&src), "{error}");
        assert!(!out.exists());
    }
    // A store path that is a symbolic link to the host file.
    let link = "0c3zf58y2nqcg0bs3hvc8lrbjk8nc3b3-link";
    std::os::unix::fs::symlink(&secret, scratch.path("store").join(link)).unwrap();
    let src = format!("/kiln/store/{link}");
    let error = unpack(&env(&[("src", &src)]), &out, &options).unwrap_err();
    assert!(
        matches!(error, UnpackError::SourceEscapesStore { .. }),
        "{error}"
    );
    assert!(!out.exists());
    // Without the store's location nothing can be checked: refused too.
    let error = unpack(&env(&[("src", &src)]), &out, &UnpackOptions::default()).unwrap_err();
    assert!(matches!(error, UnpackError::NoStoreLocation(_)), "{error}");
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
        let (src, options) = scratch.store_archive(&outer);
        let out = scratch.path("out");
        let report = unpack(
            &env(&[("src", &src), ("member", "./0123abcd/layer.tar")]),
            &out,
            &options,
        )
        .unwrap();
        assert_eq!(report.compression, layer_compression);
        assert_eq!(
            fs::read(out.join("etc/os-release")).unwrap(),
            b"ID=centos\n"
        );
        assert_eq!(mode(&out.join("tmp")), 0o1755);
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
    let (src, unpack_options) = scratch.store_archive(&docker_save(&layer));
    let error = run_builtin(
        "builtin:unpack",
        &env(&[("src", &src)]),
        &scratch.path("out"),
        &BuiltinOptions {
            unpack: unpack_options,
            ..BuiltinOptions::default()
        },
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
    let (src, unpack_options) = scratch.store_archive(&compress(&sample_tree(), Compression::Zstd));
    let outcome = run_builtin(
        "builtin:unpack",
        &env(&[("src", &src)]),
        &scratch.path("out"),
        &BuiltinOptions {
            unpack: unpack_options,
            ..BuiltinOptions::default()
        },
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
