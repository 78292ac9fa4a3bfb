//! What happens to a finished build's outputs before they are registered: canonicalisation of
//! their metadata, fresh inodes for outputs of builds that had the network, reference scanning
//! and NAR hashing (one pass over the NAR serialisation), fixed-output hash checks, and the tree
//! comparison behind `--check`.
//!
//! Canonicalisation ([`canonicalise`]) makes every entry of an output (never following
//! symbolic links) safe to share with every user of the machine:
//! - when the caller names the host ids the build's files may have, an entry owned by anything
//!   else is refused before anything changes (Nix's "invalid ownership" check: it catches a hard
//!   link from the output to a file the build does not own, which would otherwise be chowned
//!   into the store);
//! - device nodes, fifos and sockets are refused, naming the file: they cannot be store contents;
//! - owner and group become the store owner's (kiln's effective uid and gid), so no foreign
//!   owner can rewrite a registered path;
//! - every extended attribute is removed except those in [`KEPT_XATTRS`] (empty), which removes
//!   file capabilities (`security.capability`) and ACLs;
//! - setuid and setgid bits and the group and other write bits are cleared. The owner's bits
//!   and the sticky bit are kept: the owner is the store owner, and builds see the store
//!   read-only, so the owner's write bit gives nobody else anything; root filesystems built
//!   here are used as lower layers of later builds and need `/tmp`'s sticky bit. Nix goes
//!   further (0444/0555), but NAR hashes only see the executable bit, so no hash depends on
//!   this choice;
//! - the modification time becomes 1 (Unix epoch + 1 s, as Nix does).
//!
//! Outputs of builds that had the network (fixed-output ones and allowed `__network` ones) get
//! fresh inodes first ([`refresh_inodes`]): such a build can hand a descriptor of its output to
//! a process outside its sandbox (over an abstract unix socket), which could write through it
//! after registration. Copying the tree to new inodes and deleting the original leaves every
//! such descriptor pointing at a deleted file.
//!
//! Reference scanning follows Nix: the NAR serialisation of an output (contents, file names and
//! symlink targets) is searched for the 32-character hash parts of the candidate paths (the
//! input closure and the derivation's own outputs).
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_store::hash::{Hash, HashAlgo, Hasher};
use kiln_store::nar::{self, HashingSink};
use kiln_store::nixbase32;
use kiln_store::path_io_error::PathIoError;
use kiln_store::store_path::{ContentAddressMethod, StorePath, HASH_PART_LEN};
use nix::fcntl::{AtFlags, AT_FDCWD};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use rayon::prelude::*;

/// Why an output could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Io(#[from] PathIoError),
    #[error(transparent)]
    Nar(#[from] nar::DumpError),
    #[error("the output {path} of a flat fixed-output derivation must be a regular file")]
    FlatOutputNotAFile { path: PathBuf },
    #[error("invalid ownership on {path}: owner {uid}:{gid} is not one of the build's ids {first}..={last} (a hard link to a file the build does not own?)")]
    InvalidOwnership {
        path: PathBuf,
        uid: u32,
        gid: u32,
        first: u32,
        last: u32,
    },
    #[error("{path} is a {kind}: device nodes, fifos and sockets cannot be store contents")]
    SpecialFile { path: PathBuf, kind: &'static str },
}

/// Extended attributes canonicalisation keeps on output entries. Empty: no attribute is known
/// to be both needed in the store and safe to share (capabilities and ACLs are not).
pub const KEPT_XATTRS: &[&str] = &[];

/// The kind of an entry that cannot be store contents, if it is one.
fn special_kind(file_type: &fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_char_device() {
        Some("character device")
    } else if file_type.is_block_device() {
        Some("block device")
    } else if file_type.is_fifo() {
        Some("fifo")
    } else if file_type.is_socket() {
        Some("socket")
    } else {
        None
    }
}

/// Refuses any entry under `root` whose owner or group is outside `first..first + count`.
pub fn check_ownership(root: &Path, (first, count): (u32, u32)) -> Result<(), OutputError> {
    let mut entries = Vec::new();
    collect_entries(root, &mut entries)?;
    check_entries_ownership(&entries, (first, count))
}

fn check_entries_ownership(
    entries: &[(PathBuf, fs::Metadata)],
    (first, count): (u32, u32),
) -> Result<(), OutputError> {
    let inside = |id: u32| id >= first && u64::from(id) < u64::from(first) + u64::from(count);
    entries.par_iter().try_for_each(|(path, metadata)| {
        if inside(metadata.uid()) && inside(metadata.gid()) {
            Ok(())
        } else {
            Err(OutputError::InvalidOwnership {
                path: path.clone(),
                uid: metadata.uid(),
                gid: metadata.gid(),
                first,
                last: first.saturating_add(count.saturating_sub(1)),
            })
        }
    })
}

/// Canonicalises `root` and everything under it (see the module doc), in parallel.
/// `build_ids` are the host uids/gids (first, count) the build's files may have; `None` when
/// the files were created by this process (in-process builders, fresh copies).
pub fn canonicalise(root: &Path, build_ids: Option<(u32, u32)>) -> Result<(), OutputError> {
    let mut entries = Vec::new();
    collect_entries(root, &mut entries)?;
    if let Some(range) = build_ids {
        check_entries_ownership(&entries, range)?;
    }
    for (path, metadata) in &entries {
        if let Some(kind) = special_kind(&metadata.file_type()) {
            return Err(OutputError::SpecialFile {
                path: path.clone(),
                kind,
            });
        }
    }
    let (uid, gid) = (Uid::effective(), Gid::effective());
    entries
        .par_iter()
        .try_for_each(|(path, metadata)| canonicalise_entry(path, metadata, uid, gid))
}

fn canonicalise_entry(
    path: &Path,
    metadata: &fs::Metadata,
    uid: Uid,
    gid: Gid,
) -> Result<(), OutputError> {
    let failed = |action: &'static str| {
        move |errno: nix::errno::Errno| {
            OutputError::Io(PathIoError::new(action, path, io::Error::from(errno)))
        }
    };
    if metadata.uid() != uid.as_raw() || metadata.gid() != gid.as_raw() {
        // Changing the owner also clears setuid/setgid bits and `security.capability`.
        fchownat(
            AT_FDCWD,
            path,
            Some(uid),
            Some(gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(failed("cannot change the owner of"))?;
    }
    remove_xattrs(path)?;
    let is_symlink = metadata.file_type().is_symlink();
    if !is_symlink {
        let mode = metadata.mode() & 0o7777;
        let wanted = mode & !(0o6000 | 0o022);
        // A change of owner may have cleared bits already; set the wanted mode whenever the
        // old one had anything to remove.
        if wanted != mode || metadata.uid() != uid.as_raw() {
            fs::set_permissions(path, fs::Permissions::from_mode(wanted))
                .map_err(PathIoError::at("cannot change the mode of", path))?;
        }
    }
    utimensat(
        AT_FDCWD,
        path,
        &TimeSpec::UTIME_OMIT,
        &TimeSpec::new(1, 0),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(failed("cannot set the modification time of"))
}

/// Removes every extended attribute of `path` (not following symlinks) except [`KEPT_XATTRS`].
fn remove_xattrs(path: &Path) -> Result<(), OutputError> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        // A file system without extended attributes has none to remove.
        Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
        Err(source) => {
            return Err(OutputError::Io(PathIoError::new(
                "cannot list the extended attributes of",
                path,
                source,
            )))
        }
    };
    for name in names {
        if KEPT_XATTRS
            .iter()
            .any(|kept| name.as_bytes() == kept.as_bytes())
        {
            continue;
        }
        match xattr::remove(path, &name) {
            Ok(()) => {}
            // Removed meanwhile (a hard link to the same inode was handled in parallel).
            Err(error) if error.raw_os_error() == Some(libc::ENODATA) => {}
            Err(source) => {
                return Err(OutputError::Io(PathIoError::new(
                    "cannot remove an extended attribute of",
                    path,
                    source,
                )))
            }
        }
    }
    Ok(())
}

/// Gives `root` and everything under it new inodes: copies the tree to a new name beside it
/// (regular files byte for byte with their executable bit, directories created, symlinks
/// recreated), deletes the original and renames the copy into place. Device nodes, fifos and
/// sockets are refused. Ownership is not checked here: call [`check_ownership`] first.
pub fn refresh_inodes(root: &Path) -> Result<(), OutputError> {
    let parent = root.parent().unwrap_or(Path::new("/"));
    let base = root
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let copy = parent.join(format!(".kiln-fresh-{}-{base}", std::process::id()));
    let _ = kiln_local_store::fs_tree::delete_tree(&copy);
    let copied = copy_tree(root, &copy);
    if let Err(error) = copied {
        let _ = kiln_local_store::fs_tree::delete_tree(&copy);
        return Err(error);
    }
    let _ = kiln_local_store::fs_tree::delete_tree(root);
    if fs::symlink_metadata(root).is_ok() {
        let _ = kiln_local_store::fs_tree::delete_tree(&copy);
        return Err(OutputError::Io(PathIoError::new(
            "cannot delete the original of",
            root,
            io::Error::from(io::ErrorKind::DirectoryNotEmpty),
        )));
    }
    fs::rename(&copy, root).map_err(PathIoError::at("cannot move the fresh copy to", root))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), OutputError> {
    let metadata = fs::symlink_metadata(from).map_err(PathIoError::at("cannot inspect", from))?;
    let file_type = metadata.file_type();
    if let Some(kind) = special_kind(&file_type) {
        return Err(OutputError::SpecialFile {
            path: from.to_owned(),
            kind,
        });
    }
    if file_type.is_symlink() {
        let target = fs::read_link(from).map_err(PathIoError::at("cannot read link", from))?;
        std::os::unix::fs::symlink(target, to).map_err(PathIoError::at("cannot create", to))?;
        Ok(())
    } else if file_type.is_dir() {
        fs::create_dir(to).map_err(PathIoError::at("cannot create", to))?;
        let children = fs::read_dir(from)
            .map_err(PathIoError::at("cannot list", from))?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PathIoError::at("cannot list", from))?;
        children
            .par_iter()
            .try_for_each(|name| copy_tree(&from.join(name), &to.join(name)))
    } else {
        let executable = metadata.mode() & 0o100 != 0;
        let mut source = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(from)
            .map_err(PathIoError::at("cannot open", from))?;
        let mut target = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if executable { 0o755 } else { 0o644 })
            .open(to)
            .map_err(PathIoError::at("cannot create", to))?;
        io::copy(&mut source, &mut target).map_err(PathIoError::at("cannot copy", from))?;
        Ok(())
    }
}

fn collect_entries(
    path: &Path,
    into: &mut Vec<(PathBuf, fs::Metadata)>,
) -> Result<(), OutputError> {
    let metadata = fs::symlink_metadata(path).map_err(PathIoError::at("cannot inspect", path))?;
    let is_dir = metadata.is_dir();
    into.push((path.to_owned(), metadata));
    if is_dir {
        for entry in fs::read_dir(path).map_err(PathIoError::at("cannot list", path))? {
            let entry = entry.map_err(PathIoError::at("cannot list", path))?;
            collect_entries(&entry.path(), into)?;
        }
    }
    Ok(())
}

/// The NAR hash, NAR size and the references found in one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedOutput {
    pub nar_hash: Hash,
    pub nar_size: u64,
    pub references: BTreeSet<StorePath>,
}

/// Serialises `physical` as a NAR once, hashing it (SHA-256) and searching it for the hash parts
/// of `candidates`.
pub fn scan_and_hash(
    physical: &Path,
    candidates: &BTreeSet<StorePath>,
) -> Result<ScannedOutput, OutputError> {
    let by_hash: BTreeMap<&str, &StorePath> = candidates
        .iter()
        .map(|path| (path.hash_part(), path))
        .collect();
    let scanner = ReferenceScanner::new(by_hash.keys().map(|hash| hash.as_bytes().to_vec()));
    let mut sink = BufWriter::with_capacity(
        256 * 1024,
        ScanningSink {
            hashing: HashingSink::new(HashAlgo::Sha256),
            scanner,
        },
    );
    nar::dump_object(physical, &mut sink)?;
    let sink = sink
        .into_inner()
        .map_err(|e| OutputError::Io(PathIoError::new("cannot hash", physical, e.into_error())))?;
    let (nar_hash, nar_size) = sink.hashing.finish();
    let references = sink
        .scanner
        .found
        .iter()
        .filter_map(|hash| std::str::from_utf8(hash).ok())
        .filter_map(|hash| by_hash.get(hash).map(|path| (*path).clone()))
        .collect();
    Ok(ScannedOutput {
        nar_hash,
        nar_size,
        references,
    })
}

struct ScanningSink {
    hashing: HashingSink,
    scanner: ReferenceScanner,
}

impl Write for ScanningSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hashing.write_all(buf)?;
        self.scanner.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Finds which of a set of 32-character nixbase32 hash parts occur in a byte stream fed in
/// chunks (a hash split across two chunks is found too).
pub struct ReferenceScanner {
    wanted: HashSet<Vec<u8>>,
    found: BTreeSet<Vec<u8>>,
    carry: Vec<u8>,
}

impl ReferenceScanner {
    pub fn new(hash_parts: impl IntoIterator<Item = Vec<u8>>) -> ReferenceScanner {
        ReferenceScanner {
            wanted: hash_parts.into_iter().collect(),
            found: BTreeSet::new(),
            carry: Vec::new(),
        }
    }

    /// Searches the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.wanted.is_empty() {
            return;
        }
        // A hash may straddle chunks: search the tail of the previous chunks joined with this
        // one (chunks are large behind the NAR writer's buffer, so the copy is cheap).
        let joined = if self.carry.is_empty() {
            chunk.to_vec()
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(chunk);
            joined
        };
        self.search(&joined);
        let keep = joined.len().min(HASH_PART_LEN - 1);
        self.carry = joined[joined.len() - keep..].to_vec();
    }

    fn search(&mut self, bytes: &[u8]) {
        let mut start = 0;
        'windows: while start + HASH_PART_LEN <= bytes.len() {
            for offset in (0..HASH_PART_LEN).rev() {
                if !nixbase32::is_digit(bytes[start + offset]) {
                    start += offset + 1;
                    continue 'windows;
                }
            }
            let window = &bytes[start..start + HASH_PART_LEN];
            if let Some(hash) = self.wanted.take(window) {
                self.found.insert(hash);
            }
            start += 1;
        }
    }

    /// The hash parts seen so far.
    pub fn found(&self) -> impl Iterator<Item = &[u8]> {
        self.found.iter().map(Vec::as_slice)
    }
}

/// The content hash of an output under a fixed-output method: the file's bytes for `Flat`,
/// its NAR serialisation for `Recursive`.
pub fn content_hash(
    physical: &Path,
    method: ContentAddressMethod,
    algo: HashAlgo,
) -> Result<Hash, OutputError> {
    let mut hasher = Hasher::new(algo);
    match method {
        ContentAddressMethod::Recursive => {
            let mut sink = BufWriter::with_capacity(256 * 1024, HasherWriter(&mut hasher));
            nar::dump_object(physical, &mut sink)?;
            sink.flush()
                .map_err(PathIoError::at("cannot hash", physical))?;
        }
        ContentAddressMethod::Flat | ContentAddressMethod::Text => {
            let metadata = fs::symlink_metadata(physical)
                .map_err(PathIoError::at("cannot inspect", physical))?;
            if !metadata.is_file() {
                return Err(OutputError::FlatOutputNotAFile {
                    path: physical.to_owned(),
                });
            }
            let mut file =
                fs::File::open(physical).map_err(PathIoError::at("cannot open", physical))?;
            let mut buffer = vec![0u8; 256 * 1024];
            loop {
                let read = file
                    .read(&mut buffer)
                    .map_err(PathIoError::at("cannot read", physical))?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
        }
    }
    Ok(hasher.finish())
}

struct HasherWriter<'a>(&'a mut Hasher);

impl Write for HasherWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The first difference between two trees, in NAR order (names sorted bytewise), as a path
/// relative to the roots (empty for the roots themselves) and what differs; `None` if the trees
/// have the same NAR serialisation.
pub fn first_difference(
    left: &Path,
    right: &Path,
) -> Result<Option<(PathBuf, String)>, OutputError> {
    compare_entries(left, right, Path::new(""))
}

fn compare_entries(
    left: &Path,
    right: &Path,
    relative: &Path,
) -> Result<Option<(PathBuf, String)>, OutputError> {
    let left_meta = fs::symlink_metadata(left).map_err(PathIoError::at("cannot inspect", left))?;
    let right_meta =
        fs::symlink_metadata(right).map_err(PathIoError::at("cannot inspect", right))?;
    let differs = |what: String| Ok(Some((relative.to_owned(), what)));
    let kind = |meta: &fs::Metadata| {
        if meta.is_dir() {
            "directory"
        } else if meta.file_type().is_symlink() {
            "symlink"
        } else {
            "regular file"
        }
    };
    if kind(&left_meta) != kind(&right_meta) {
        return differs(format!(
            "a {} became a {}",
            kind(&left_meta),
            kind(&right_meta)
        ));
    }
    if left_meta.file_type().is_symlink() {
        let left_target = fs::read_link(left).map_err(PathIoError::at("cannot read link", left))?;
        let right_target =
            fs::read_link(right).map_err(PathIoError::at("cannot read link", right))?;
        if left_target != right_target {
            return differs(format!(
                "symlink target {} became {}",
                left_target.display(),
                right_target.display()
            ));
        }
        return Ok(None);
    }
    if left_meta.is_file() {
        let executable = |meta: &fs::Metadata| meta.permissions().mode() & 0o100 != 0;
        if executable(&left_meta) != executable(&right_meta) {
            return differs("the executable bit differs".to_owned());
        }
        if left_meta.len() != right_meta.len() {
            return differs(format!(
                "size {} became {}",
                left_meta.len(),
                right_meta.len()
            ));
        }
        let left_bytes = fs::read(left).map_err(PathIoError::at("cannot read", left))?;
        let right_bytes = fs::read(right).map_err(PathIoError::at("cannot read", right))?;
        if left_bytes != right_bytes {
            return differs("contents differ".to_owned());
        }
        return Ok(None);
    }
    let names = |dir: &Path| -> Result<BTreeSet<Vec<u8>>, OutputError> {
        let mut names = BTreeSet::new();
        for entry in fs::read_dir(dir).map_err(PathIoError::at("cannot list", dir))? {
            let entry = entry.map_err(PathIoError::at("cannot list", dir))?;
            names.insert(entry.file_name().as_bytes().to_vec());
        }
        Ok(names)
    };
    let left_names = names(left)?;
    let right_names = names(right)?;
    for name in left_names.union(&right_names) {
        let name_os = std::ffi::OsStr::from_bytes(name);
        let child = relative.join(name_os);
        match (left_names.contains(name), right_names.contains(name)) {
            (true, false) => return Ok(Some((child, "missing from the rebuild".to_owned()))),
            (false, true) => return Ok(Some((child, "only in the rebuild".to_owned()))),
            _ => {}
        }
        if let Some(found) = compare_entries(&left.join(name_os), &right.join(name_os), &child)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz";
    const HASH_B: &str = "0c3zf58y2nqcg0bs3hvc8lrbjk8nc3b3";

    fn path(hash: &str, name: &str) -> StorePath {
        StorePath::from_base_name(&format!("{hash}-{name}")).unwrap()
    }

    #[test]
    fn scanner_finds_hashes_split_across_chunks() {
        let text = format!("xx/kiln/store/{HASH_A}-foo yy {HASH_B}");
        let mut scanner = ReferenceScanner::new([HASH_A, HASH_B].map(|h| h.as_bytes().to_vec()));
        for chunk in text.as_bytes().chunks(7) {
            scanner.feed(chunk);
        }
        let found: Vec<&[u8]> = scanner.found().collect();
        assert_eq!(found, [HASH_B.as_bytes(), HASH_A.as_bytes()]);
    }

    #[test]
    fn scanner_ignores_hashes_not_asked_for() {
        let mut scanner = ReferenceScanner::new([HASH_A.as_bytes().to_vec()]);
        scanner.feed(HASH_B.as_bytes());
        assert_eq!(scanner.found().count(), 0);
    }

    #[test]
    fn scan_finds_references_in_contents_and_symlinks_and_hashes_the_nar() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("file"), format!("/kiln/store/{HASH_A}-a/bin")).unwrap();
        std::os::unix::fs::symlink(format!("/kiln/store/{HASH_B}-b"), out.join("link")).unwrap();
        let candidates: BTreeSet<StorePath> =
            [path(HASH_A, "a"), path(HASH_B, "b"), path(HASH_B, "b")]
                .into_iter()
                .collect();
        let scanned = scan_and_hash(&out, &candidates).unwrap();
        assert_eq!(scanned.references, candidates);
        assert_eq!(
            (scanned.nar_hash, scanned.nar_size),
            nar::hash_path(&out).unwrap()
        );
    }

    #[test]
    fn canonicalising_clears_dangerous_bits_and_sets_mtimes_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::create_dir(out.join("tmp")).unwrap();
        fs::set_permissions(out.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(out.join("prog"), "x").unwrap();
        fs::set_permissions(out.join("prog"), fs::Permissions::from_mode(0o6775)).unwrap();
        fs::write(out.join("shared"), "x").unwrap();
        fs::set_permissions(out.join("shared"), fs::Permissions::from_mode(0o666)).unwrap();
        std::os::unix::fs::symlink("/nonexistent", out.join("dangling")).unwrap();
        canonicalise(&out, None).unwrap();
        for (name, mode) in [("tmp", 0o1755), ("prog", 0o755), ("shared", 0o644)] {
            let meta = fs::symlink_metadata(out.join(name)).unwrap();
            assert_eq!(meta.mtime(), 1, "{name}");
            assert_eq!(meta.mode() & 0o7777, mode, "{name}");
        }
        assert_eq!(
            fs::symlink_metadata(out.join("dangling")).unwrap().mtime(),
            1
        );
        assert_eq!(fs::metadata(&out).unwrap().mtime(), 1);
    }

    #[test]
    fn canonicalising_gives_entries_to_the_store_owner_and_removes_xattrs() {
        if !Uid::effective().is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "this test needs root in CI"
            );
            eprintln!("skipped: changing owners and setting capabilities needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let prog = out.join("prog");
        fs::write(&prog, "x").unwrap();
        std::os::unix::fs::chown(&out, Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::chown(&prog, Some(1234), Some(5678)).unwrap();
        fs::set_permissions(&prog, fs::Permissions::from_mode(0o4755)).unwrap();
        // cap_setuid,cap_setgid=ep (VFS_CAP_REVISION_2).
        let capability: [u8; 20] = [
            0x01, 0x00, 0x00, 0x02, 0xc0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        xattr::set(&prog, "security.capability", &capability).unwrap();
        let user_xattr = xattr::set(&prog, "user.note", b"hi").is_ok();
        canonicalise(&out, Some((1234, 1))).expect_err("gid 5678 is outside the range");
        assert_eq!(fs::metadata(&prog).unwrap().uid(), 1234, "nothing changed");
        canonicalise(&out, Some((1000, 10000))).unwrap();
        let meta = fs::metadata(&prog).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        assert_eq!(meta.mode() & 0o7777, 0o755);
        assert_eq!(xattr::get(&prog, "security.capability").unwrap(), None);
        if user_xattr {
            assert_eq!(xattr::get(&prog, "user.note").unwrap(), None);
        }
    }

    #[test]
    fn canonicalising_refuses_special_files_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        nix::unistd::mkfifo(
            &out.join("pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let error = canonicalise(&out, None).unwrap_err().to_string();
        assert!(error.contains("out/pipe is a fifo"), "{error}");
        let error = refresh_inodes(&out).unwrap_err().to_string();
        assert!(error.contains("out/pipe is a fifo"), "{error}");
        assert!(out.join("pipe").exists(), "the original is kept on failure");
    }

    #[test]
    fn refreshed_outputs_have_new_inodes_and_the_same_nar() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(out.join("sub")).unwrap();
        fs::write(out.join("sub/data"), "contents").unwrap();
        fs::write(out.join("run"), "#!/bin/sh").unwrap();
        fs::set_permissions(out.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("sub/data", out.join("link")).unwrap();
        canonicalise(&out, None).unwrap();
        let before = nar::hash_path(&out).unwrap();
        let mut held = fs::OpenOptions::new()
            .write(true)
            .open(out.join("sub/data"))
            .unwrap();
        let old_inode = fs::metadata(out.join("sub/data")).unwrap().ino();
        refresh_inodes(&out).unwrap();
        canonicalise(&out, None).unwrap();
        assert_ne!(fs::metadata(out.join("sub/data")).unwrap().ino(), old_inode);
        held.write_all(b"poison").unwrap();
        assert_eq!(fs::read(out.join("sub/data")).unwrap(), b"contents");
        assert_eq!(nar::hash_path(&out).unwrap(), before);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no copy left behind"
        );
    }

    #[test]
    fn flat_and_recursive_content_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "hello\n").unwrap();
        let flat = content_hash(&file, ContentAddressMethod::Flat, HashAlgo::Sha256).unwrap();
        assert_eq!(flat, Hash::sha256(b"hello\n"));
        let recursive =
            content_hash(&file, ContentAddressMethod::Recursive, HashAlgo::Sha256).unwrap();
        assert_eq!(recursive, nar::hash_path(&file).unwrap().0);
        assert!(content_hash(dir.path(), ContentAddressMethod::Flat, HashAlgo::Sha256).is_err());
    }

    #[test]
    fn first_difference_names_the_first_differing_file() {
        let dir = tempfile::tempdir().unwrap();
        let (left, right) = (dir.path().join("l"), dir.path().join("r"));
        for side in [&left, &right] {
            fs::create_dir_all(side.join("a")).unwrap();
            fs::write(side.join("a/same"), "same").unwrap();
        }
        assert_eq!(first_difference(&left, &right).unwrap(), None);
        fs::write(left.join("a/z"), "1").unwrap();
        fs::write(right.join("a/z"), "2").unwrap();
        fs::write(right.join("b"), "only right").unwrap();
        let (where_, what) = first_difference(&left, &right).unwrap().unwrap();
        assert_eq!(where_, Path::new("a/z"));
        assert_eq!(what, "contents differ");
    }
}
