//! What happens to a finished build's outputs before they are registered: normalisation of
//! their metadata, reference scanning and NAR hashing (one pass over the NAR serialisation),
//! fixed-output hash checks, and the tree comparison behind `--check`.
//!
//! Normalisation (a choice, documented here): every entry's modification time is set to 1
//! (Unix epoch + 1 s, as Nix does); access times, modes — including setuid, setgid and sticky
//! bits and write bits — and owners are kept. Nix 2.8 also strips write bits and resets owners,
//! but kiln's outputs are often root filesystems used as the lower layers of later builds, which
//! need a writable sticky `/tmp`, setuid programs and real owners; the store is kept read-only
//! by the sandbox (inputs are bound read-only), not by modes. NAR hashes only see the executable
//! bit, so this choice does not change any hash.
//!
//! Reference scanning follows Nix: the NAR serialisation of an output (contents, file names and
//! symlink targets) is searched for the 32-character hash parts of the candidate paths (the
//! input closure and the derivation's own outputs).
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_store::hash::{Hash, HashAlgo, Hasher};
use kiln_store::nar::{self, HashingSink, NarError};
use kiln_store::nixbase32;
use kiln_store::store_path::{ContentAddressMethod, StorePath, HASH_PART_LEN};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use rayon::prelude::*;

/// Why an output could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot serialise {path} as a NAR: {source}")]
    Nar {
        path: PathBuf,
        #[source]
        source: NarError,
    },
    #[error("the output {path} of a flat fixed-output derivation must be a regular file")]
    FlatOutputNotAFile { path: PathBuf },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> OutputError + 'a {
    move |source| OutputError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Sets the modification time of `root` and everything under it to 1 (symlinks themselves,
/// not their targets), in parallel.
pub fn clamp_mtimes(root: &Path) -> Result<(), OutputError> {
    let mut entries = Vec::new();
    collect_entries(root, &mut entries)?;
    entries.par_iter().try_for_each(|path| {
        utimensat(
            nix::fcntl::AT_FDCWD,
            path.as_path(),
            &TimeSpec::UTIME_OMIT,
            &TimeSpec::new(1, 0),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|errno| OutputError::Io {
            action: "cannot set the modification time of",
            path: path.clone(),
            source: io::Error::from(errno),
        })
    })
}

fn collect_entries(path: &Path, into: &mut Vec<PathBuf>) -> Result<(), OutputError> {
    let metadata = fs::symlink_metadata(path).map_err(io_error("cannot inspect", path))?;
    into.push(path.to_owned());
    if metadata.is_dir() {
        for entry in fs::read_dir(path).map_err(io_error("cannot list", path))? {
            let entry = entry.map_err(io_error("cannot list", path))?;
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
    nar::dump_path(physical, &mut sink).map_err(|source| OutputError::Nar {
        path: physical.to_owned(),
        source,
    })?;
    let sink = sink.into_inner().map_err(|e| OutputError::Io {
        action: "cannot hash",
        path: physical.to_owned(),
        source: e.into_error(),
    })?;
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
            nar::dump_path(physical, &mut sink).map_err(|source| OutputError::Nar {
                path: physical.to_owned(),
                source,
            })?;
            sink.flush().map_err(io_error("cannot hash", physical))?;
        }
        ContentAddressMethod::Flat | ContentAddressMethod::Text => {
            let metadata =
                fs::symlink_metadata(physical).map_err(io_error("cannot inspect", physical))?;
            if !metadata.is_file() {
                return Err(OutputError::FlatOutputNotAFile {
                    path: physical.to_owned(),
                });
            }
            let mut file = fs::File::open(physical).map_err(io_error("cannot open", physical))?;
            let mut buffer = vec![0u8; 256 * 1024];
            loop {
                let read = file
                    .read(&mut buffer)
                    .map_err(io_error("cannot read", physical))?;
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
    let left_meta = fs::symlink_metadata(left).map_err(io_error("cannot inspect", left))?;
    let right_meta = fs::symlink_metadata(right).map_err(io_error("cannot inspect", right))?;
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
        let left_target = fs::read_link(left).map_err(io_error("cannot read link", left))?;
        let right_target = fs::read_link(right).map_err(io_error("cannot read link", right))?;
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
        let left_bytes = fs::read(left).map_err(io_error("cannot read", left))?;
        let right_bytes = fs::read(right).map_err(io_error("cannot read", right))?;
        if left_bytes != right_bytes {
            return differs("contents differ".to_owned());
        }
        return Ok(None);
    }
    let names = |dir: &Path| -> Result<BTreeSet<Vec<u8>>, OutputError> {
        use std::os::unix::ffi::OsStrExt;
        let mut names = BTreeSet::new();
        for entry in fs::read_dir(dir).map_err(io_error("cannot list", dir))? {
            let entry = entry.map_err(io_error("cannot list", dir))?;
            names.insert(entry.file_name().as_bytes().to_vec());
        }
        Ok(names)
    };
    let left_names = names(left)?;
    let right_names = names(right)?;
    for name in left_names.union(&right_names) {
        use std::os::unix::ffi::OsStrExt;
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
    use std::os::unix::fs::MetadataExt;

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
    fn clamping_sets_mtimes_to_one_and_keeps_modes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::create_dir(out.join("tmp")).unwrap();
        fs::set_permissions(out.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(out.join("prog"), "x").unwrap();
        fs::set_permissions(out.join("prog"), fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("/nonexistent", out.join("dangling")).unwrap();
        clamp_mtimes(&out).unwrap();
        for (name, mode) in [("tmp", 0o1777), ("prog", 0o4755)] {
            let meta = fs::metadata(out.join(name)).unwrap();
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
