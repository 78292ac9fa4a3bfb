//! NAR, Nix's archive format: serialising a file tree (regular files with their executable bit,
//! directories with entries sorted by name bytes, symlinks) into any `io::Write` — streaming, a
//! file is never held in memory whole — restoring a NAR to disk, and the NAR hash and size that
//! identify store contents. Only the executable bit of a mode is recorded; owners, times and
//! other bits are not part of a NAR.
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::hash::{Hash, HashAlgo, Hasher};

const MAGIC: &str = "nix-archive-1";
const COPY_BUFFER: usize = 64 * 1024;

/// Why a NAR could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    #[error("reading '{path}': {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing '{path}': {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("writing the archive: {0}")]
    Sink(io::Error),
    #[error("'{0}' has an unsupported file type (only regular files, directories and symlinks)")]
    UnsupportedFileType(PathBuf),
    #[error("'{0}' changed size while it was being archived")]
    FileChanged(PathBuf),
    #[error("invalid archive: {0}")]
    Invalid(String),
    #[error("the filter failed on '{0}'")]
    FilterFailed(PathBuf),
}

/// Decides for each entry below the root (given its path and `symlink_metadata`) whether it is
/// kept; `Err(())` stops the walk with [`NarError::FilterFailed`].
pub type NarFilter<'a> = &'a mut dyn FnMut(&Path, &fs::Metadata) -> Result<bool, ()>;

/// Writes the NAR's primitive items: length-prefixed strings padded to 8 bytes.
struct NarSink<'w, W: Write> {
    out: &'w mut W,
}

impl<W: Write> NarSink<'_, W> {
    fn bytes(&mut self, data: &[u8]) -> Result<(), NarError> {
        self.out
            .write_all(&(data.len() as u64).to_le_bytes())
            .and_then(|()| self.out.write_all(data))
            .and_then(|()| self.padding(data.len() as u64))
            .map_err(NarError::Sink)
    }

    fn str(&mut self, text: &str) -> Result<(), NarError> {
        self.bytes(text.as_bytes())
    }

    fn padding(&mut self, len: u64) -> io::Result<()> {
        self.out.write_all(&[0u8; 8][..padding_len(len)])
    }

    fn file_contents(&mut self, path: &Path, len: u64) -> Result<(), NarError> {
        let read_error = |source| NarError::Read {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(read_error)?;
        self.out
            .write_all(&len.to_le_bytes())
            .map_err(NarError::Sink)?;
        let mut limited = file.take(len);
        let mut buffer = vec![0u8; COPY_BUFFER.min(len as usize).max(1)];
        let mut written = 0u64;
        loop {
            let count = limited.read(&mut buffer).map_err(read_error)?;
            if count == 0 {
                break;
            }
            self.out
                .write_all(&buffer[..count])
                .map_err(NarError::Sink)?;
            written += count as u64;
        }
        if written != len {
            return Err(NarError::FileChanged(path.to_owned()));
        }
        self.padding(len).map_err(NarError::Sink)
    }
}

/// A failed NAR serialisation of a whole store object, naming the object.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialise {path} as a NAR: {source}")]
pub struct DumpError {
    pub path: PathBuf,
    #[source]
    pub source: NarError,
}

/// [`dump_path`] of a store object (to hash or verify it), its error naming the object.
pub fn dump_object(path: &Path, out: &mut impl Write) -> Result<(), DumpError> {
    dump_path(path, out).map_err(|source| DumpError {
        path: path.to_owned(),
        source,
    })
}

/// Serialises the file tree at `path` into `out`.
pub fn dump_path(path: &Path, out: &mut impl Write) -> Result<(), NarError> {
    dump_path_filtered(path, None, out)
}

/// Serialises the file tree at `path` into `out`, leaving out entries (and whole directories)
/// the filter rejects. The root itself is always included.
pub fn dump_path_filtered(
    path: &Path,
    mut filter: Option<NarFilter<'_>>,
    out: &mut impl Write,
) -> Result<(), NarError> {
    let mut sink = NarSink { out };
    sink.str(MAGIC)?;
    let metadata = fs::symlink_metadata(path).map_err(|source| NarError::Read {
        path: path.to_owned(),
        source,
    })?;
    dump_node(path, &metadata, &mut filter, &mut sink)
}

fn dump_node<W: Write>(
    path: &Path,
    metadata: &fs::Metadata,
    filter: &mut Option<NarFilter<'_>>,
    sink: &mut NarSink<'_, W>,
) -> Result<(), NarError> {
    let read_error = |source| NarError::Read {
        path: path.to_owned(),
        source,
    };
    sink.str("(")?;
    let file_type = metadata.file_type();
    if file_type.is_file() {
        sink.str("type")?;
        sink.str("regular")?;
        if metadata.permissions().mode() & 0o100 != 0 {
            sink.str("executable")?;
            sink.str("")?;
        }
        sink.str("contents")?;
        sink.file_contents(path, metadata.len())?;
    } else if file_type.is_dir() {
        sink.str("type")?;
        sink.str("directory")?;
        let mut entries = Vec::new();
        for entry in fs::read_dir(path).map_err(read_error)? {
            entries.push(entry.map_err(read_error)?.file_name());
        }
        entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in entries {
            let child = path.join(&name);
            let child_metadata = fs::symlink_metadata(&child).map_err(|source| NarError::Read {
                path: child.clone(),
                source,
            })?;
            if let Some(filter) = filter.as_mut() {
                if !filter(&child, &child_metadata)
                    .map_err(|()| NarError::FilterFailed(child.clone()))?
                {
                    continue;
                }
            }
            sink.str("entry")?;
            sink.str("(")?;
            sink.str("name")?;
            sink.bytes(name.as_bytes())?;
            sink.str("node")?;
            dump_node(&child, &child_metadata, filter, sink)?;
            sink.str(")")?;
        }
    } else if file_type.is_symlink() {
        sink.str("type")?;
        sink.str("symlink")?;
        sink.str("target")?;
        let target = fs::read_link(path).map_err(read_error)?;
        sink.bytes(target.as_os_str().as_bytes())?;
    } else {
        return Err(NarError::UnsupportedFileType(path.to_owned()));
    }
    sink.str(")")
}

/// Writes the NAR of a single regular file with the given contents.
pub fn dump_bytes(contents: &[u8], executable: bool, out: &mut impl Write) -> Result<(), NarError> {
    let len = contents.len() as u64;
    out.write_all(&file_prefix(executable, len))
        .and_then(|()| out.write_all(contents))
        .and_then(|()| out.write_all(&file_suffix(len)))
        .map_err(NarError::Sink)
}

/// The bytes of a single regular file's NAR before its `size` content bytes
/// (`nix-archive-1 ( type regular [executable ""] contents <size>`): with [`file_suffix`],
/// the framing that lets a file be NAR-hashed while it streams in.
pub fn file_prefix(executable: bool, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for token in [MAGIC, "(", "type", "regular"] {
        push_string(&mut out, token.as_bytes());
    }
    if executable {
        push_string(&mut out, b"executable");
        push_string(&mut out, b"");
    }
    push_string(&mut out, b"contents");
    out.extend_from_slice(&size.to_le_bytes());
    out
}

/// The bytes of a single regular file's NAR after its `size` content bytes: the padding and
/// the closing `)`.
pub fn file_suffix(size: u64) -> Vec<u8> {
    let mut out = vec![0u8; padding_len(size)];
    push_string(&mut out, b")");
    out
}

/// Appends a NAR string: its length, its bytes, zero padding to 8 bytes.
fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    out.resize(out.len() + padding_len(bytes.len() as u64), 0);
}

/// How many zero bytes pad `len` bytes to a multiple of 8.
fn padding_len(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

/// A sink that hashes and counts what is written to it.
pub struct HashingSink {
    hasher: Hasher,
    size: u64,
}

impl HashingSink {
    pub fn new(algo: HashAlgo) -> HashingSink {
        HashingSink {
            hasher: Hasher::new(algo),
            size: 0,
        }
    }

    /// The hash and the number of bytes written.
    pub fn finish(self) -> (Hash, u64) {
        (self.hasher.finish(), self.size)
    }
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sha256 NAR hash and NAR size of the tree at `path`.
pub fn hash_path(path: &Path) -> Result<(Hash, u64), NarError> {
    hash_path_filtered(path, None)
}

/// The sha256 NAR hash and NAR size of the tree at `path`, keeping what the filter accepts.
pub fn hash_path_filtered(
    path: &Path,
    filter: Option<NarFilter<'_>>,
) -> Result<(Hash, u64), NarError> {
    let mut sink = HashingSink::new(HashAlgo::Sha256);
    dump_path_filtered(path, filter, &mut sink)?;
    Ok(sink.finish())
}

/// The sha256 NAR hash and size of a single non-executable regular file with these contents.
pub fn hash_bytes(contents: &[u8]) -> (Hash, u64) {
    let mut sink = HashingSink::new(HashAlgo::Sha256);
    // Writing into a hasher cannot fail.
    let _ = dump_bytes(contents, false, &mut sink);
    sink.finish()
}

/// Reads NAR items from a stream.
struct NarSource<R: Read> {
    input: R,
}

impl<R: Read> NarSource<R> {
    fn u64(&mut self) -> Result<u64, NarError> {
        let mut buffer = [0u8; 8];
        self.input
            .read_exact(&mut buffer)
            .map_err(|e| NarError::Invalid(format!("truncated archive: {e}")))?;
        Ok(u64::from_le_bytes(buffer))
    }

    fn skip_padding(&mut self, len: u64) -> Result<(), NarError> {
        let pad = ((8 - len % 8) % 8) as usize;
        let mut buffer = [0u8; 8];
        self.input
            .read_exact(&mut buffer[..pad])
            .map_err(|e| NarError::Invalid(format!("truncated archive: {e}")))?;
        if buffer[..pad].iter().any(|b| *b != 0) {
            return Err(NarError::Invalid("non-zero padding".into()));
        }
        Ok(())
    }

    /// A string item of at most `limit` bytes.
    fn bytes(&mut self, limit: u64) -> Result<Vec<u8>, NarError> {
        let len = self.u64()?;
        if len > limit {
            return Err(NarError::Invalid(format!(
                "string of {len} bytes is too long"
            )));
        }
        let mut data = vec![0u8; len as usize];
        self.input
            .read_exact(&mut data)
            .map_err(|e| NarError::Invalid(format!("truncated archive: {e}")))?;
        self.skip_padding(len)?;
        Ok(data)
    }

    fn token(&mut self) -> Result<Vec<u8>, NarError> {
        self.bytes(4096)
    }

    fn expect(&mut self, token: &str) -> Result<(), NarError> {
        let found = self.token()?;
        if found != token.as_bytes() {
            return Err(NarError::Invalid(format!(
                "expected '{token}', found '{}'",
                String::from_utf8_lossy(&found)
            )));
        }
        Ok(())
    }
}

/// Restores the NAR read from `input` at `dest`, which must not exist yet.
pub fn restore(input: impl Read, dest: &Path) -> Result<(), NarError> {
    let mut source = NarSource { input };
    source.expect(MAGIC)?;
    restore_node(&mut source, dest)
}

fn restore_node<R: Read>(source: &mut NarSource<R>, dest: &Path) -> Result<(), NarError> {
    let write_error = |source| NarError::Write {
        path: dest.to_owned(),
        source,
    };
    source.expect("(")?;
    source.expect("type")?;
    let kind = source.token()?;
    match kind.as_slice() {
        b"regular" => {
            let mut tag = source.token()?;
            let executable = tag == b"executable";
            if executable {
                source.expect("")?;
                tag = source.token()?;
            }
            if tag != b"contents" {
                return Err(NarError::Invalid("expected 'contents'".into()));
            }
            let len = source.u64()?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dest)
                .map_err(write_error)?;
            let copied =
                io::copy(&mut (&mut source.input).take(len), &mut file).map_err(write_error)?;
            if copied != len {
                return Err(NarError::Invalid("truncated file contents".into()));
            }
            source.skip_padding(len)?;
            if executable {
                let mode = file.metadata().map_err(write_error)?.permissions().mode();
                file.set_permissions(fs::Permissions::from_mode(mode | 0o111))
                    .map_err(write_error)?;
            }
            source.expect(")")
        }
        b"symlink" => {
            source.expect("target")?;
            let target = source.bytes(4096)?;
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), dest)
                .map_err(write_error)?;
            source.expect(")")
        }
        b"directory" => {
            fs::create_dir(dest).map_err(write_error)?;
            let mut previous: Option<Vec<u8>> = None;
            loop {
                let tag = source.token()?;
                if tag == b")" {
                    return Ok(());
                }
                if tag != b"entry" {
                    return Err(NarError::Invalid("expected 'entry' or ')'".into()));
                }
                source.expect("(")?;
                source.expect("name")?;
                let name = source.bytes(255)?;
                if name.is_empty()
                    || name == b"."
                    || name == b".."
                    || name.contains(&b'/')
                    || name.contains(&0)
                {
                    return Err(NarError::Invalid(format!(
                        "invalid entry name '{}'",
                        String::from_utf8_lossy(&name)
                    )));
                }
                if previous.as_ref().is_some_and(|p| p >= &name) {
                    return Err(NarError::Invalid("directory entries are not sorted".into()));
                }
                source.expect("node")?;
                restore_node(source, &dest.join(std::ffi::OsStr::from_bytes(&name)))?;
                source.expect(")")?;
                previous = Some(name);
            }
        }
        other => Err(NarError::Invalid(format!(
            "unknown file type '{}'",
            String::from_utf8_lossy(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn single_file_framing_matches_nix_hash_path() {
        // `nix hash path --base32` (Nix 2.8) of a file holding "hello\n", plain and executable.
        for (executable, expected) in [
            (
                false,
                "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
            ),
            (true, "1yhh619m3cy1mird7f0l7zsmiv9rayqn075zinda2g7rscwn0hv5"),
        ] {
            let mut framed = Hasher::new(HashAlgo::Sha256);
            framed.update(&file_prefix(executable, 6));
            framed.update(b"hello\n");
            framed.update(&file_suffix(6));
            let framed = framed.finish();
            assert_eq!(framed.to_nixbase32(), expected);

            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("f");
            fs::write(&file, "hello\n").unwrap();
            let mode = if executable { 0o755 } else { 0o644 };
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                hash_path(&file).unwrap().0,
                framed,
                "the streaming dump agrees"
            );
        }
    }

    const GOLDEN_TREE_SHA256: &str =
        "c27f8793d78f781eafe77d1997074b776ed2d6e3e6c13099dffb3d5c6d60ca9a";
    const GOLDEN_TREE_NAR_SIZE: u64 = 101_440;
    const GOLDEN_FILE_HELLO_NIXBASE32: &str =
        "0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa";

    /// A tree with every node type; golden hashes from `nix-store --dump DIR | sha256sum` and
    /// `nix hash path` (Nix 2.8) of the same tree.
    fn make_tree(root: &Path) {
        fs::create_dir(root).unwrap();
        fs::write(root.join("hello.txt"), "hello\n").unwrap();
        fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/B"), "").unwrap();
        fs::write(root.join("sub/a"), vec![7u8; 100_000]).unwrap();
        fs::create_dir(root.join("sub/empty")).unwrap();
        symlink("../hello.txt", root.join("sub/link")).unwrap();
    }

    #[test]
    fn tree_hash_matches_nix() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("tree");
        make_tree(&root);
        let (hash, size) = hash_path(&root).unwrap();
        assert_eq!(hash.to_hex(), GOLDEN_TREE_SHA256);
        assert_eq!(size, GOLDEN_TREE_NAR_SIZE);
    }

    #[test]
    fn single_file_hash_matches_nix() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("f");
        fs::write(&file, "hello").unwrap();
        let (hash, size) = hash_path(&file).unwrap();
        assert_eq!(hash, hash_bytes(b"hello").0);
        assert_eq!(hash.to_nixbase32(), GOLDEN_FILE_HELLO_NIXBASE32);
        assert_eq!(size, 120);
    }

    #[test]
    fn filter_leaves_out_entries() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("tree");
        make_tree(&root);
        let mut seen = Vec::new();
        let mut filter = |path: &Path, _: &fs::Metadata| {
            seen.push(path.strip_prefix(&root).unwrap().to_owned());
            Ok(!path.ends_with("sub"))
        };
        let filtered = hash_path_filtered(&root, Some(&mut filter)).unwrap();
        assert_eq!(
            seen.len(),
            3,
            "entries below a rejected directory are not visited"
        );
        fs::remove_dir_all(root.join("sub")).unwrap();
        assert_eq!(filtered, hash_path(&root).unwrap());
    }

    #[test]
    fn restore_round_trips() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("tree");
        make_tree(&root);
        let mut nar = Vec::new();
        dump_path(&root, &mut nar).unwrap();
        let copy = temp.path().join("copy");
        restore(nar.as_slice(), &copy).unwrap();
        let mut again = Vec::new();
        dump_path(&copy, &mut again).unwrap();
        assert_eq!(nar, again);
        assert!(restore(&nar[..nar.len() - 8], &temp.path().join("broken")).is_err());
    }
}
