//! Content addresses of store objects: the hash of a host file or tree as a
//! content-addressing method sees it (the bytes of a flat file, the NAR of a tree), and the
//! `ca` text Nix records for a content-addressed path.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::hash::{Hash, HashAlgo, HashEncoding, Hasher};
use crate::nar::{self, NarError, NarFilter};
use crate::path_io_error::PathIoError;
use crate::store_path::ContentAddressMethod;

/// Why the content hash of a host path could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ContentHashError {
    #[error(transparent)]
    Nar(#[from] NarError),
    #[error(transparent)]
    Io(#[from] PathIoError),
    #[error("'{0}' is not a regular file; only regular files can be added flat")]
    NotARegularFile(PathBuf),
}

/// Writes the bytes of the regular file `source` (flat ingestion) to `sink`.
fn copy_flat_file(source: &Path, sink: &mut impl io::Write) -> Result<(), ContentHashError> {
    let metadata = fs::metadata(source).map_err(PathIoError::at("cannot stat", source))?;
    if !metadata.is_file() {
        return Err(ContentHashError::NotARegularFile(source.to_owned()));
    }
    let mut file = fs::File::open(source).map_err(PathIoError::at("cannot open", source))?;
    io::copy(&mut file, sink).map_err(PathIoError::at("cannot read", source))?;
    Ok(())
}

/// The content address Nix records for a path: `text:sha256:<nixbase32>` or
/// `fixed:[r:]<algo>:<nixbase32>`.
pub fn render_content_address(method: ContentAddressMethod, hash: &Hash) -> String {
    let hash = hash.encode(HashEncoding::Nixbase32, true);
    match method {
        ContentAddressMethod::Text => format!("text:{hash}"),
        ContentAddressMethod::Flat => format!("fixed:{hash}"),
        ContentAddressMethod::Recursive => format!("fixed:r:{hash}"),
    }
}

/// The content hash of a host file or tree as `method` sees it: the sha256 of the bytes (flat)
/// or of the NAR (recursive, with the filter applied).
pub fn content_hash(
    source: &Path,
    method: ContentAddressMethod,
    filter: Option<NarFilter<'_>>,
) -> Result<Hash, ContentHashError> {
    match method {
        ContentAddressMethod::Recursive | ContentAddressMethod::Text => {
            Ok(nar::hash_path_filtered(source, filter)?.0)
        }
        ContentAddressMethod::Flat => {
            let mut hasher = Hasher::new(HashAlgo::Sha256);
            copy_flat_file(source, &mut hasher)?;
            Ok(hasher.finish())
        }
    }
}

/// Nix's `HashModuloSink`: hashes a stream in which every occurrence of `modulus` (the hash part
/// of the path the bytes were built at) is replaced by as many zero bytes, then appends
/// `|<offset>` for each occurrence, so that a self-referencing output hashes the same wherever
/// it was built, and not like the same bytes with zeros written in.
pub struct SelfReferenceHasher {
    hasher: Hasher,
    modulus: Vec<u8>,
    /// Bytes not yet hashed: the tail that may hold the start of an occurrence.
    pending: Vec<u8>,
    /// Bytes hashed so far.
    offset: u64,
    occurrences: Vec<u64>,
}

impl SelfReferenceHasher {
    pub fn new(algo: HashAlgo, modulus: &str) -> SelfReferenceHasher {
        SelfReferenceHasher {
            hasher: Hasher::new(algo),
            modulus: modulus.as_bytes().to_vec(),
            pending: Vec::new(),
            offset: 0,
            occurrences: Vec::new(),
        }
    }

    fn consume(&mut self, data: &[u8], last: bool) {
        self.pending.extend_from_slice(data);
        let width = self.modulus.len();
        if width > 0 {
            let mut start = 0;
            while start + width <= self.pending.len() {
                if self.pending[start..start + width] == self.modulus[..] {
                    self.occurrences.push(self.offset + start as u64);
                    self.pending[start..start + width].fill(0);
                    start += width;
                } else {
                    start += 1;
                }
            }
        }
        // Keep what could still begin an occurrence.
        let keep = if last {
            0
        } else {
            width.saturating_sub(1).min(self.pending.len())
        };
        let ready = self.pending.len() - keep;
        self.hasher.update(&self.pending[..ready]);
        self.offset += ready as u64;
        self.pending.drain(..ready);
    }

    /// The hash, and whether `modulus` occurred.
    pub fn finish(mut self) -> (Hash, bool) {
        self.consume(&[], true);
        for offset in &self.occurrences {
            self.hasher.update(format!("|{offset}").as_bytes());
        }
        let found = !self.occurrences.is_empty();
        (self.hasher.finish(), found)
    }
}

impl io::Write for SelfReferenceHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.consume(buf, false);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The content hash of a floating content-addressed output built at a path whose hash part is
/// `modulus`, as `method` sees it (see [`SelfReferenceHasher`]), and whether it refers to that
/// path. Flat outputs must be regular files.
pub fn content_hash_modulo(
    source: &Path,
    method: ContentAddressMethod,
    algo: HashAlgo,
    modulus: &str,
) -> Result<(Hash, bool), ContentHashError> {
    let mut sink =
        io::BufWriter::with_capacity(256 * 1024, SelfReferenceHasher::new(algo, modulus));
    match method {
        ContentAddressMethod::Recursive | ContentAddressMethod::Text => {
            nar::dump_path(source, &mut sink)?;
        }
        ContentAddressMethod::Flat => copy_flat_file(source, &mut sink)?,
    }
    let hasher = sink
        .into_inner()
        .map_err(|e| PathIoError::new("cannot hash", source, e.into_error()))?;
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// The same bytes fed whole or in every split give the same hash; occurrences become zeros
    /// followed by their offsets.
    #[test]
    fn self_references_are_hashed_modulo_their_hash_part() {
        let modulus = "abcd";
        let data = b"xxabcdyyabcabcdz";
        let whole = {
            let mut hasher = SelfReferenceHasher::new(HashAlgo::Sha256, modulus);
            hasher.write_all(data).unwrap_or_default();
            hasher.finish()
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(b"xx\0\0\0\0yyabc\0\0\0\0z|2|11");
        assert_eq!(whole, (Hash::sha256(&expected), true));
        for split in 0..data.len() {
            let mut hasher = SelfReferenceHasher::new(HashAlgo::Sha256, modulus);
            hasher.write_all(&data[..split]).unwrap_or_default();
            hasher.write_all(&data[split..]).unwrap_or_default();
            assert_eq!(hasher.finish(), whole, "split at {split}");
        }
        let mut plain = SelfReferenceHasher::new(HashAlgo::Sha256, modulus);
        plain.write_all(b"nothing here").unwrap_or_default();
        assert_eq!(plain.finish(), (Hash::sha256(b"nothing here"), false));
    }
}
