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

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
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

mod escapes;
mod members;
mod metadata;
