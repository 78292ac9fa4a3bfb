//! Content addresses of store objects: the hash of a host file or tree as a
//! content-addressing method sees it (the bytes of a flat file, the NAR of a tree), and the
//! `ca` text Nix records for a content-addressed path.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::hash::{Hash, HashAlgo, HashEncoding, Hasher};
use crate::nar::{self, NarError, NarFilter};
use crate::store_path::ContentAddressMethod;

/// Why the content hash of a host path could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ContentHashError {
    #[error(transparent)]
    Nar(#[from] NarError),
    #[error("{action} '{path}': {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("'{0}' is not a regular file; only regular files can be added flat")]
    NotARegularFile(PathBuf),
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ContentHashError + 'a {
    move |source| ContentHashError::Io {
        action,
        path: path.to_owned(),
        source,
    }
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
            let metadata = fs::metadata(source).map_err(io_error("cannot stat", source))?;
            if !metadata.is_file() {
                return Err(ContentHashError::NotARegularFile(source.to_owned()));
            }
            let mut file = fs::File::open(source).map_err(io_error("cannot open", source))?;
            let mut hasher = Hasher::new(HashAlgo::Sha256);
            io::copy(&mut file, &mut hasher).map_err(io_error("cannot read", source))?;
            Ok(hasher.finish())
        }
    }
}
