//! The builders that run inside the kiln process instead of a sandbox: `builtin:fetchurl`
//! (download a fixed-output file), `builtin:unpack` (unpack a tar archive into a directory)
//! and `builtin:oci` (a reproducible container image of root-file-system layers).
//!
//! The scheduler calls [`run_builtin`] with a parsed derivation's environment and the physical
//! location of the output to create; hash verification of fetched files happens here, before the
//! function returns, and registration stays with the scheduler.

pub mod fetchurl;
pub mod oci;
pub mod unpack;

use std::collections::BTreeMap;
use std::path::Path;

pub use fetchurl::{
    fetch, fetchurl, FetchError, FetchOptions, FetchOutcome, FetchProgress, FetchRequest,
    HashMismatch, LogCallback, OutputHashMode, ProgressCallback, UrlRewrite,
};
pub use unpack::{
    unpack, unpack_archive, StoreLocation, UnpackError, UnpackOptions, UnpackReport, UnpackRequest,
};

/// A builder that kiln runs in-process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinBuilder {
    Fetchurl,
    Unpack,
    Oci,
}

impl BuiltinBuilder {
    /// Recognises a derivation's `builder` (`builtin:fetchurl`, `builtin:unpack`,
    /// `builtin:oci`).
    pub fn from_builder(builder: &str) -> Option<Self> {
        match builder {
            "builtin:fetchurl" => Some(Self::Fetchurl),
            "builtin:unpack" => Some(Self::Unpack),
            "builtin:oci" => Some(Self::Oci),
            _ => None,
        }
    }
}

/// Everything the builtin builders need besides the derivation.
#[derive(Debug, Clone, Default)]
pub struct BuiltinOptions {
    pub fetch: FetchOptions,
    pub unpack: UnpackOptions,
}

/// What a builtin builder did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltinOutcome {
    Fetched(FetchOutcome),
    Unpacked(UnpackReport),
    Image(oci::ImageReport),
}

/// Why a builtin builder failed.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    #[error("unknown builtin builder `{0}`")]
    UnknownBuilder(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Image(#[from] oci::ImageError),
}

/// Runs the builtin builder a derivation names, creating its output at `out`.
pub fn run_builtin(
    builder: &str,
    env: &BTreeMap<String, String>,
    out: &Path,
    options: &BuiltinOptions,
) -> Result<BuiltinOutcome, BuiltinError> {
    match BuiltinBuilder::from_builder(builder) {
        Some(BuiltinBuilder::Fetchurl) => {
            Ok(BuiltinOutcome::Fetched(fetchurl(env, out, &options.fetch)?))
        }
        Some(BuiltinBuilder::Unpack) => {
            Ok(BuiltinOutcome::Unpacked(unpack(env, out, &options.unpack)?))
        }
        // The store location the unpack options carry tells where layers are on disk.
        Some(BuiltinBuilder::Oci) => Ok(BuiltinOutcome::Image(oci::build_image(
            env,
            out,
            options.unpack.store_location.as_ref(),
        )?)),
        None => Err(BuiltinError::UnknownBuilder(builder.to_owned())),
    }
}
