//! `ValidPathInfo`: what the database records about one valid store path.
use std::collections::{BTreeMap, BTreeSet};

use kiln_store::hash::Hash;
use kiln_store::store_path::StorePath;

/// The metadata of a valid store path, as registered at the end of a build and as read back.
///
/// Paths are [`StorePath`]s of the store's directory; the database keeps them printed in full
/// (`<store dir>/<hash>-<name>`), as Nix does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidPathInfo {
    /// The store path itself.
    pub path: StorePath,
    /// The hash (SHA-256 in practice) of the path's NAR serialisation, kept in the database
    /// as `<algo>:<base16>`.
    pub nar_hash: Hash,
    /// Length in bytes of the NAR serialisation.
    pub nar_size: u64,
    /// Store paths this one refers to (may include itself); each must be valid or registered
    /// in the same batch.
    pub references: BTreeSet<StorePath>,
    /// The `.drv` that built this path, if known.
    pub deriver: Option<StorePath>,
    /// Seconds since the Unix epoch at which the path became valid. `None` when registering
    /// means "now"; always `Some` when read from the database.
    pub registration_time: Option<i64>,
    /// The content address (`fixed:r:sha256:…`, `text:sha256:…`) for content-addressed paths.
    pub ca: Option<String>,
    /// For a `.drv` path: its output names and the output paths they map to, recorded in the
    /// `DerivationOutputs` table. Empty for every other path.
    pub derivation_outputs: BTreeMap<String, StorePath>,
    /// Signatures `NAME:base64` over the path's fingerprint (from a binary cache or
    /// `kiln sign`).
    pub signatures: BTreeSet<String>,
}

impl ValidPathInfo {
    /// A path info with no references, deriver, content address or derivation outputs.
    pub fn new(path: StorePath, nar_hash: Hash, nar_size: u64) -> Self {
        ValidPathInfo {
            path,
            nar_hash,
            nar_size,
            references: BTreeSet::new(),
            deriver: None,
            registration_time: None,
            ca: None,
            derivation_outputs: BTreeMap::new(),
            signatures: BTreeSet::new(),
        }
    }
}
