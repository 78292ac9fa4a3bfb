//! `builtin:unpack`: unpacks a tar archive (gzip, xz, zstd, bzip2 or uncompressed, recognised by
//! its magic bytes) into the output directory.
//!
//! Attributes: `src` (the archive: a store path or a file inside one; anything else is refused,
//! naming it, so a build cannot read host files through the unpack), `member` (optional: an archive inside the
//! archive to unpack instead, e.g. the `layer.tar` of a `docker save` tarball; it may be
//! compressed too) and `stripComponents` (optional: leading path components to drop, entries
//! with no more components are skipped, hardlink targets are stripped alike).
//!
//! Everything streams: the archive is decompressed while it is read, a member is read in place,
//! nothing is copied to a temporary file. The unpack runs inside kiln (as root, when kiln is)
//! and writes into the store, so it takes from the archive only what is safe to share: names,
//! contents, symbolic links, hardlinks, modification times and modes without setuid and setgid
//! bits and without group and other write bits (the sticky bit is kept: root filesystems need
//! `/tmp`'s). Owners are not taken from the archive (everything belongs to kiln), extended
//! attributes (`SCHILY.xattr.*` records, `security.capability` among them) are not applied, and
//! device nodes and fifos are skipped with a warning in the build log naming each: they cannot
//! be store contents (a container base's `/dev/console` is one). The build's output
//! canonicalisation then enforces the same rules on the finished tree.
//!
//! Expansion is bounded: the logical sizes of all regular entries (sparse ones counted at their
//! full size) may not exceed [`UnpackOptions::max_unpacked_size`], by default
//! [`DEFAULT_UNPACK_SIZE_FACTOR`] times the archive's size and at least
//! [`DEFAULT_MIN_UNPACK_LIMIT`]; the entry that crosses the limit is named in the error. GNU
//! sparse entries are written sparse: their holes (read back from the tar reader as zeros) are
//! skipped, not written.
//!
//! Entries that would escape the output are refused with an error naming the entry: a `..`
//! component, an absolute name, a path through a symbolic link (see [`output_tree`]), a hardlink
//! whose target is outside the output. Nothing outside the output is touched. On an error the
//! output is left partial; the caller deletes it, as after any failed build.
//!
//! Which entry `member` names: the regular file whose path is exactly `member` (after dropping
//! `./` and duplicate slashes), else the one regular file whose path ends in `/member`. So
//! `member = "layer.tar"` finds a container base's layer both at the top and in the `docker
//! save` layout the real CentOS Stream tarballs use (`<sha256-hex>/layer.tar` next to
//! `manifest.json`), without naming the hash. Several entries ending in `/member` and none
//! named exactly is an error naming them all. One pass suffices in the usual cases: an exact
//! match is unpacked as soon as it is read; the first suffix match is unpacked as it is read
//! and the rest of the archive is only scanned to check it is the only one. Only when an exact
//! match follows a suffix match is the output cleared and the archive read a second time.
//! `manifest.json` is not consulted: the name rule needs no second file and also covers
//! tarballs that are not images.
//!
//! When no `member` is given and the archive turns out to be a `docker save` tarball (a
//! `manifest.json` naming exactly one layer), the unpack fails with an error suggesting the
//! `member` to use: the image's files are in the layer, not in the tarball around it.

pub mod compression;
mod entries;
pub mod output_tree;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tar::EntryType;

use self::compression::{decompressing_reader, Compression};
use self::entries::EntryWriter;
use self::output_tree::{OutputTree, TreeError};
use super::fetchurl::LogCallback;

/// The default limit of the unpacked size, as a multiple of the archive's size: generous for
/// real archives (a compressed root filesystem expands 3-10 times), small against a bomb.
pub const DEFAULT_UNPACK_SIZE_FACTOR: u64 = 100;

/// The default limit of the unpacked size is never below this (1 GiB), so small archives of
/// compressible data unpack.
pub const DEFAULT_MIN_UNPACK_LIMIT: u64 = 1 << 30;

/// The mode bits an unpacked entry may keep: no setuid, setgid, group write or other write.
const KEPT_MODE_BITS: u32 = 0o1755;

/// Where the store's logical directory (the one in `src`) physically is, when they differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    pub logical: PathBuf,
    pub physical: PathBuf,
}

/// How unpacks behave; the scheduler fills this in.
#[derive(Clone, Default)]
pub struct UnpackOptions {
    /// Threads for xz decoding; 0 means one per CPU.
    pub xz_threads: u32,
    /// Where the store is; [`unpack`] (the builder) refuses to run without it, since `src` must
    /// be inside the store.
    pub store_location: Option<StoreLocation>,
    /// The most bytes of regular-file contents (logical sizes) an unpack may create; `None`:
    /// [`DEFAULT_UNPACK_SIZE_FACTOR`] times the archive's size, at least
    /// [`DEFAULT_MIN_UNPACK_LIMIT`].
    pub max_unpacked_size: Option<u64>,
    pub log: Option<LogCallback>,
}

impl std::fmt::Debug for UnpackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnpackOptions")
            .field("xz_threads", &self.xz_threads)
            .field("store_location", &self.store_location)
            .field("max_unpacked_size", &self.max_unpacked_size)
            .finish_non_exhaustive()
    }
}

/// What to unpack, as read from a derivation's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackRequest {
    /// The archive, as the derivation names it (a logical store path).
    pub src: PathBuf,
    pub member: Option<String>,
    pub strip_components: usize,
}

impl UnpackRequest {
    /// Reads `src`, `member` and `stripComponents` from a derivation's environment.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, UnpackError> {
        let src = env
            .get("src")
            .filter(|src| !src.is_empty())
            .ok_or(UnpackError::MissingAttribute("src"))?;
        let member = env.get("member").filter(|m| !m.is_empty()).cloned();
        let strip_components = match env.get("stripComponents").map(String::as_str) {
            None | Some("") => 0,
            Some(text) => text
                .parse()
                .map_err(|_| UnpackError::BadStripComponents(text.to_owned()))?,
        };
        Ok(Self {
            src: PathBuf::from(src),
            member,
            strip_components,
        })
    }
}

/// A finished unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// The compression of the archive that was unpacked (the member's, if one was named).
    pub compression: Compression,
    /// Entries created.
    pub entries: u64,
    /// Bytes of regular-file contents written.
    pub bytes: u64,
    /// Entries skipped (device nodes, fifos, unsupported types), one line each.
    pub warnings: Vec<String>,
}

/// Why `builtin:unpack` failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("builtin:unpack needs the attribute `{0}`")]
    MissingAttribute(&'static str),
    #[error("builtin:unpack: stripComponents must be a non-negative integer, not `{0}`")]
    BadStripComponents(String),
    #[error("builtin:unpack: cannot open {path}: {source}")]
    OpenSource {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("builtin:unpack: reading {archive}: {source}")]
    Read {
        archive: String,
        #[source]
        source: io::Error,
    },
    #[error("builtin:unpack: refusing entry `{entry}`: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("builtin:unpack: entry `{entry}`: {source}")]
    Entry {
        entry: String,
        #[source]
        source: TreeError,
    },
    #[error("builtin:unpack: no member `{member}` in {archive}{}", candidates_hint(.candidates))]
    MemberNotFound {
        member: String,
        archive: String,
        candidates: Vec<String>,
    },
    #[error("builtin:unpack: member `{member}` of {archive} is ambiguous: {} end in `/{member}`; name one of them exactly", .matches.join(", "))]
    MemberAmbiguous {
        member: String,
        archive: String,
        matches: Vec<String>,
    },
    #[error("builtin:unpack: {archive} is a `docker save` tarball; its files are in the layer: set member = \"{layer}\"")]
    DockerSaveWithoutMember { archive: String, layer: String },
    #[error("builtin:unpack: the source {src} is not inside the store {store}")]
    SourceOutsideStore { src: PathBuf, store: PathBuf },
    #[error("builtin:unpack: the source {src} resolves to {resolved}, outside the store")]
    SourceEscapesStore { src: PathBuf, resolved: PathBuf },
    #[error("builtin:unpack: needs the store's location to check `src` {0}")]
    NoStoreLocation(PathBuf),
    #[error("builtin:unpack: entry `{entry}` takes the unpacked size to {size} bytes, past the limit of {limit} bytes (the `max-unpack-size` setting)")]
    TooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error("builtin:unpack: creating the output {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: TreeError,
    },
}

fn candidates_hint(candidates: &[String]) -> String {
    if candidates.is_empty() {
        String::new()
    } else {
        format!("; archives it holds: {}", candidates.join(", "))
    }
}

/// Runs `builtin:unpack` for a derivation's environment into `out` (the physical location of
/// the output path, which must not exist yet).
pub fn unpack(
    env: &BTreeMap<String, String>,
    out: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let request = UnpackRequest::from_env(env)?;
    let location = options
        .store_location
        .as_ref()
        .ok_or_else(|| UnpackError::NoStoreLocation(request.src.clone()))?;
    let src = source_in_store(&request.src, location)?;
    unpack_archive(
        &src,
        request.member.as_deref(),
        request.strip_components,
        out,
        options,
    )
}

/// The physical location of `src`, which must name a store path or a file inside one (no `.`
/// or `..` components) and, with symbolic links resolved, stay inside the physical store.
pub(crate) fn source_in_store(
    src: &Path,
    location: &StoreLocation,
) -> Result<PathBuf, UnpackError> {
    let outside = || UnpackError::SourceOutsideStore {
        src: src.to_owned(),
        store: location.logical.clone(),
    };
    let rest = src.strip_prefix(&location.logical).map_err(|_| outside())?;
    let mut components = rest.components();
    let first = match components.next() {
        Some(std::path::Component::Normal(first)) => first,
        _ => return Err(outside()),
    };
    let valid_base_name = first
        .to_str()
        .is_some_and(|name| kiln_store::store_path::StorePath::from_base_name(name).is_ok());
    if !valid_base_name
        || !components.all(|component| matches!(component, std::path::Component::Normal(_)))
    {
        return Err(outside());
    }
    let physical = location.physical.join(rest);
    let resolved = physical
        .canonicalize()
        .map_err(|source| UnpackError::OpenSource {
            path: physical.clone(),
            source,
        })?;
    let store = location
        .physical
        .canonicalize()
        .map_err(|source| UnpackError::OpenSource {
            path: location.physical.clone(),
            source,
        })?;
    if resolved.starts_with(&store) && resolved != store {
        Ok(resolved)
    } else {
        Err(UnpackError::SourceEscapesStore {
            src: src.to_owned(),
            resolved,
        })
    }
}

/// Unpacks the archive at `src` (or its `member`) into a new directory `out`.
pub fn unpack_archive(
    src: &Path,
    member: Option<&str>,
    strip_components: usize,
    out: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    match unpack_once(
        src,
        member,
        strip_components,
        out,
        options,
        MemberMatch::ExactOrSuffix,
    )? {
        Unpacked::Done(report) => Ok(report),
        Unpacked::ExactMemberAfterSuffixMatch(exact) => {
            // Rare: an entry ending in `/<member>` came before the entry named exactly
            // `<member>` and was unpacked first. The exact name wins: start again with it.
            log(
                options,
                &format!("member {exact} is named exactly; unpacking it instead"),
            );
            let _ = kiln_local_store::fs_tree::delete_tree(out);
            match unpack_once(
                src,
                Some(&exact),
                strip_components,
                out,
                options,
                MemberMatch::Exact,
            )? {
                Unpacked::Done(report) => Ok(report),
                // An exact-only pass never reports a suffix match.
                Unpacked::ExactMemberAfterSuffixMatch(_) => Err(UnpackError::MemberNotFound {
                    member: exact,
                    archive: src.display().to_string(),
                    candidates: Vec::new(),
                }),
            }
        }
    }
}

/// Which entries a `member` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberMatch {
    /// Only the entry whose (normalised) path is `member`.
    Exact,
    /// That entry, else the one entry whose path ends in `/member`.
    ExactOrSuffix,
}

/// How one pass over the archive ended.
enum Unpacked {
    Done(UnpackReport),
    /// A suffix match was unpacked, then an exact match turned up: the caller starts again.
    ExactMemberAfterSuffixMatch(String),
}

/// One pass over the archive: unpacks it, or the member `member` names (see the module doc
/// for the matching rule).
fn unpack_once(
    src: &Path,
    member: Option<&str>,
    strip_components: usize,
    out: &Path,
    options: &UnpackOptions,
    matching: MemberMatch,
) -> Result<Unpacked, UnpackError> {
    let file = File::open(src).map_err(|source| UnpackError::OpenSource {
        path: src.to_owned(),
        source,
    })?;
    let archive_size = file
        .metadata()
        .map_err(|source| UnpackError::OpenSource {
            path: src.to_owned(),
            source,
        })?
        .len();
    let limit = options.max_unpacked_size.unwrap_or_else(|| {
        archive_size
            .saturating_mul(DEFAULT_UNPACK_SIZE_FACTOR)
            .max(DEFAULT_MIN_UNPACK_LIMIT)
    });
    let tree = OutputTree::create(out).map_err(|source| UnpackError::Output {
        path: out.to_owned(),
        source,
    })?;
    let threads = match options.xz_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => n,
    };
    let archive_name = src.display().to_string();
    let read_error = |archive: &str| {
        let archive = archive.to_owned();
        move |source| UnpackError::Read { archive, source }
    };
    let (outer_compression, reader) =
        decompressing_reader(file, threads).map_err(read_error(&archive_name))?;
    let mut writer = EntryWriter::new(&tree, strip_components, options, limit);
    let mut outer = tar::Archive::new(reader);
    let compression = match member {
        Some(member) => {
            log(
                options,
                &format!("unpacking member {member} of {archive_name} ({outer_compression})"),
            );
            let wanted = normalised_name(member.as_bytes());
            let mut suffix = b"/".to_vec();
            suffix.extend_from_slice(&wanted);
            let mut candidates = Vec::new();
            // The entries ending in `/member`, and what unpacking the first of them gave.
            let mut suffix_matches: Vec<String> = Vec::new();
            let mut found = None;
            for entry in outer.entries().map_err(read_error(&archive_name))? {
                let entry = entry.map_err(read_error(&archive_name))?;
                let name = normalised_name(&entry.path_bytes());
                let shown = String::from_utf8_lossy(&name).into_owned();
                let regular = matches!(
                    entry.header().entry_type(),
                    EntryType::Regular | EntryType::Continuous
                );
                let exact = regular && name == wanted;
                let by_suffix =
                    regular && matching == MemberMatch::ExactOrSuffix && name.ends_with(&suffix);
                if exact && !suffix_matches.is_empty() {
                    return Ok(Unpacked::ExactMemberAfterSuffixMatch(shown));
                }
                if by_suffix {
                    suffix_matches.push(shown.clone());
                }
                if (exact || by_suffix) && found.is_none() {
                    let member_name = format!("{archive_name}:{shown}");
                    let (compression, inner) =
                        decompressing_reader(entry, threads).map_err(read_error(&member_name))?;
                    log(options, &format!("member {shown} is {compression}"));
                    writer.unpack_all(tar::Archive::new(inner), &member_name)?;
                    found = Some(compression);
                    if exact {
                        // An exact name wins over any suffix match: nothing more to look for.
                        break;
                    }
                    continue;
                }
                if shown.ends_with(".tar") || shown.contains(".tar.") {
                    candidates.push(shown);
                }
            }
            if suffix_matches.len() > 1 {
                return Err(UnpackError::MemberAmbiguous {
                    member: member.to_owned(),
                    archive: archive_name,
                    matches: suffix_matches,
                });
            }
            found.ok_or_else(|| UnpackError::MemberNotFound {
                member: member.to_owned(),
                archive: archive_name.clone(),
                candidates,
            })?
        }
        None => {
            log(
                options,
                &format!("unpacking {archive_name} ({outer_compression})"),
            );
            writer.unpack_all(outer, &archive_name)?;
            if strip_components == 0 {
                if let Some(layer) = docker_save_single_layer(&tree) {
                    return Err(UnpackError::DockerSaveWithoutMember {
                        archive: archive_name,
                        layer,
                    });
                }
            }
            outer_compression
        }
    };
    let mut report = writer.finish()?;
    report.compression = compression;
    log(
        options,
        &format!(
            "unpacked {} entries, {} bytes",
            report.entries, report.bytes
        ),
    );
    Ok(Unpacked::Done(report))
}

/// The one layer a `docker save` tarball's `manifest.json` names, if it names exactly one.
fn docker_save_single_layer(tree: &OutputTree) -> Option<String> {
    let mut manifest = tree.open_file(&[OsStr::new("manifest.json")]).ok()?;
    let mut text = Vec::new();
    (&mut manifest).take(1 << 20).read_to_end(&mut text).ok()?;
    let manifest: serde_json::Value = serde_json::from_slice(&text).ok()?;
    match manifest.as_array()?.as_slice() {
        [image] => match image.get("Layers")?.as_array()?.as_slice() {
            [layer] => layer.as_str().map(str::to_owned),
            _ => None,
        },
        _ => None,
    }
}

/// An entry name without `./` prefixes and duplicate or trailing slashes, for comparing names.
fn normalised_name(name: &[u8]) -> Vec<u8> {
    name.split(|byte| *byte == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .collect::<Vec<_>>()
        .join(&b'/')
}

fn log(options: &UnpackOptions, line: &str) {
    if let Some(log) = &options.log {
        log(line);
    }
}

#[cfg(test)]
mod tests {
    use super::entries::safe_components;
    use super::*;

    #[test]
    fn names_are_split_and_checked() {
        assert_eq!(
            safe_components(b"./usr//bin/./ls").unwrap(),
            ["usr", "bin", "ls"].map(OsStr::new)
        );
        assert!(safe_components(b"/etc/passwd").is_err());
        assert!(safe_components(b"usr/../../x").is_err());
        assert!(safe_components(b"./").unwrap().is_empty());
        assert_eq!(normalised_name(b"./abc//layer.tar"), b"abc/layer.tar");
    }

    #[test]
    fn request_attributes_are_read() {
        let env: BTreeMap<String, String> = [
            ("src", "/kiln/store/abc-base.tar.xz"),
            ("member", "x/layer.tar"),
            ("stripComponents", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let request = UnpackRequest::from_env(&env).unwrap();
        assert_eq!(request.member.as_deref(), Some("x/layer.tar"));
        assert_eq!(request.strip_components, 1);
        let mut bad = env.clone();
        bad.insert("stripComponents".into(), "-1".into());
        assert!(matches!(
            UnpackRequest::from_env(&bad),
            Err(UnpackError::BadStripComponents(_))
        ));
        assert!(matches!(
            UnpackRequest::from_env(&BTreeMap::new()),
            Err(UnpackError::MissingAttribute("src"))
        ));
    }
}
