//! `builtin:unpack`: unpacks a tar archive (gzip, xz, zstd, bzip2 or uncompressed, recognised by
//! its magic bytes) into the output directory.
//!
//! Attributes: `src` (the archive, a store path), `member` (optional: an archive inside the
//! archive to unpack instead, e.g. the `layer.tar` of a `docker save` tarball; it may be
//! compressed too) and `stripComponents` (optional: leading path components to drop, entries
//! with no more components are skipped, hardlink targets are stripped alike).
//!
//! Everything streams: the archive is decompressed while it is read, a member is read in place,
//! nothing is copied to a temporary file. The output is a root filesystem, so the unpack keeps
//! modes including setuid, setgid and sticky bits, owners (when running as root, which includes
//! root inside a user namespace; ids the namespace does not map are left to the builder with a
//! warning), symbolic links, hardlinks, extended attributes from pax `SCHILY.xattr.*` records
//! (`security.capability` included, when permitted), fifos and device nodes (skipped with a
//! warning where creating them is not permitted), and modification times.
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
pub mod output_tree;

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, futimens, makedev, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};
use tar::EntryType;

use self::compression::{decompressing_reader, Compression};
use self::output_tree::{clear_slot, kind_of, OutputTree, TreeError};
use super::fetchurl::LogCallback;

/// Whether unpacked entries get the owners the archive names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnerPolicy {
    /// Keep owners when running as (possibly namespaced) root, else leave them to the builder.
    #[default]
    Auto,
    /// Always try to keep owners (failures are warnings).
    Keep,
    /// Never change owners.
    Ignore,
}

/// Where the store's logical directory (the one in `src`) physically is, when they differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    pub logical: PathBuf,
    pub physical: PathBuf,
}

/// How unpacks behave; the scheduler fills this in.
#[derive(Clone, Default)]
pub struct UnpackOptions {
    pub owners: OwnerPolicy,
    /// Threads for xz decoding; 0 means one per CPU.
    pub xz_threads: u32,
    pub store_location: Option<StoreLocation>,
    pub log: Option<LogCallback>,
}

impl std::fmt::Debug for UnpackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnpackOptions")
            .field("owners", &self.owners)
            .field("xz_threads", &self.xz_threads)
            .field("store_location", &self.store_location)
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
    /// Things that could not be kept (owners, device nodes, xattrs), one line each.
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
    let src = match &options.store_location {
        Some(location) => match request.src.strip_prefix(&location.logical) {
            Ok(rest) => location.physical.join(rest),
            Err(_) => request.src.clone(),
        },
        None => request.src.clone(),
    };
    unpack_archive(
        &src,
        request.member.as_deref(),
        request.strip_components,
        out,
        options,
    )
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
            crate::build::remove_tree(out);
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
    let mut writer = EntryWriter::new(&tree, strip_components, options);
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

/// Splits an entry name into components, refusing absolute names and `..`.
fn safe_components(name: &[u8]) -> Result<Vec<&OsStr>, String> {
    if name.starts_with(b"/") {
        return Err("absolute path".to_owned());
    }
    let mut components = Vec::new();
    for part in name.split(|byte| *byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("`..` in path".to_owned()),
            part => components.push(OsStr::from_bytes(part)),
        }
    }
    Ok(components)
}

/// The attributes applied to a directory once everything inside it is written.
struct DirectoryAttributes {
    metadata: EntryMetadata,
}

/// What an entry says about itself beyond its name and contents.
struct EntryMetadata {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryMetadata {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Self> {
        let header = entry.header();
        let mut metadata = Self {
            mode: header.mode()? & 0o7777,
            uid: header.uid()?,
            gid: header.gid()?,
            mtime: i64::try_from(header.mtime()?).unwrap_or(i64::MAX),
            xattrs: Vec::new(),
        };
        if let Some(extensions) = entry.pax_extensions()? {
            for extension in extensions {
                let extension = extension?;
                let key = extension.key_bytes();
                let number = || {
                    std::str::from_utf8(extension.value_bytes())
                        .ok()
                        .and_then(|value| value.parse::<u64>().ok())
                };
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    metadata
                        .xattrs
                        .push((name.to_vec(), extension.value_bytes().to_vec()));
                } else if key == b"uid" {
                    metadata.uid = number().unwrap_or(metadata.uid);
                } else if key == b"gid" {
                    metadata.gid = number().unwrap_or(metadata.gid);
                }
            }
        }
        Ok(metadata)
    }
}

/// Writes archive entries into an [`OutputTree`], collecting warnings and deferring directory
/// attributes to the end.
struct EntryWriter<'a> {
    tree: &'a OutputTree,
    strip_components: usize,
    options: &'a UnpackOptions,
    keep_owners: bool,
    directories: BTreeMap<Vec<OsString>, DirectoryAttributes>,
    entries: u64,
    bytes: u64,
    warnings: Vec<String>,
    owner_failures: u64,
    first_owner_failure: Option<String>,
    /// Reused for copying file contents (larger than `io::copy`'s, for fewer system calls).
    copy_buffer: Vec<u8>,
}

impl<'a> EntryWriter<'a> {
    fn new(tree: &'a OutputTree, strip_components: usize, options: &'a UnpackOptions) -> Self {
        let keep_owners = match options.owners {
            OwnerPolicy::Auto => Uid::effective().is_root(),
            OwnerPolicy::Keep => true,
            OwnerPolicy::Ignore => false,
        };
        Self {
            tree,
            strip_components,
            options,
            keep_owners,
            directories: BTreeMap::new(),
            entries: 0,
            bytes: 0,
            warnings: Vec::new(),
            owner_failures: 0,
            first_owner_failure: None,
            copy_buffer: vec![0; COPY_BUFFER_SIZE],
        }
    }

    fn unpack_all<R: Read>(
        &mut self,
        mut archive: tar::Archive<R>,
        archive_name: &str,
    ) -> Result<(), UnpackError> {
        let read_error = |source| UnpackError::Read {
            archive: archive_name.to_owned(),
            source,
        };
        for entry in archive.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            let name = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&name).into_owned();
            self.write_entry(&mut entry, &name, &shown)
                .map_err(|failure| failure.into_error(&shown, archive_name))?;
        }
        Ok(())
    }

    fn write_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &[u8],
        shown: &str,
    ) -> Result<(), EntryFailure> {
        let components = safe_components(name).map_err(EntryFailure::Unsafe)?;
        let entry_type = entry.header().entry_type();
        if components.len() < self.strip_components
            || (components.len() == self.strip_components && !entry_type.is_dir())
        {
            return Ok(());
        }
        let components = &components[self.strip_components..];
        let metadata = EntryMetadata::read(entry).map_err(EntryFailure::Read)?;
        let path: PathBuf = components.iter().collect();
        match entry_type {
            EntryType::Directory => {
                if let Some((leaf, parents)) = components.split_last() {
                    let parent = self.tree.open_dir(parents, true)?;
                    match kind_of(&parent, leaf).map_err(|e| TreeError::io(&path, e))? {
                        Some(SFlag::S_IFDIR) => {}
                        existing => {
                            if existing.is_some() {
                                clear_slot(&parent, leaf, &path)?;
                            }
                            mkdirat(
                                &parent,
                                *leaf,
                                Mode::from_bits_truncate(output_tree::WORKING_DIR_MODE),
                            )
                            .map_err(|e| TreeError::io(&path, e))?;
                        }
                    }
                }
                let key = components.iter().map(|c| c.to_os_string()).collect();
                self.directories
                    .insert(key, DirectoryAttributes { metadata });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let (parent, leaf) = self.tree.open_parent(components, true)?;
                clear_slot(&parent, leaf, &path)?;
                let fd = openat(
                    &parent,
                    leaf,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| TreeError::io(&path, e))?;
                let mut file = File::from(fd);
                let written = copy_contents(entry, &mut file, &mut self.copy_buffer, &path)?;
                self.bytes += written;
                self.apply_to_fd(file.as_fd(), &metadata, shown)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|target| !target.is_empty())
                    .ok_or_else(|| EntryFailure::Unsafe("symbolic link without a target".into()))?
                    .into_owned();
                let (parent, leaf) = self.tree.open_parent(components, true)?;
                clear_slot(&parent, leaf, &path)?;
                symlinkat(OsStr::from_bytes(&target), &parent, leaf)
                    .map_err(|e| TreeError::io(&path, e))?;
                self.chown_at(&parent, leaf, &metadata, shown);
                let time = TimeSpec::new(metadata.mtime, 0);
                // Times of a link are cosmetic: a file system that cannot set them is no reason
                // to fail the unpack.
                let _ = utimensat(&parent, leaf, &time, &time, UtimensatFlags::NoFollowSymlink);
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| EntryFailure::Unsafe("hardlink without a target".into()))?
                    .into_owned();
                let target_components = safe_components(&target).map_err(|reason| {
                    EntryFailure::Unsafe(format!(
                        "hardlink to `{}` outside the output ({reason})",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                if target_components.len() <= self.strip_components {
                    self.warn(format!(
                        "{shown}: hardlink target `{}` is removed by stripComponents; skipped",
                        String::from_utf8_lossy(&target)
                    ));
                    return Ok(());
                }
                let target_components = &target_components[self.strip_components..];
                if target_components == components {
                    return Ok(());
                }
                let target_path: PathBuf = target_components.iter().collect();
                let (target_parent, target_leaf) =
                    self.tree.open_parent(target_components, false)?;
                let (parent, leaf) = self.tree.open_parent(components, true)?;
                clear_slot(&parent, leaf, &path)?;
                linkat(&target_parent, target_leaf, &parent, leaf, AtFlags::empty()).map_err(
                    |errno| {
                        EntryFailure::Tree(TreeError::Io {
                            path: path.clone(),
                            source: io::Error::new(
                                io::Error::from(errno).kind(),
                                format!(
                                    "hardlink to `{}`: {}",
                                    target_path.display(),
                                    errno.desc()
                                ),
                            ),
                        })
                    },
                )?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind = match entry_type {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let header = entry.header();
                let device = makedev(
                    u64::from(header.device_major().ok().flatten().unwrap_or(0)),
                    u64::from(header.device_minor().ok().flatten().unwrap_or(0)),
                );
                let (parent, leaf) = self.tree.open_parent(components, true)?;
                clear_slot(&parent, leaf, &path)?;
                match mknodat(
                    &parent,
                    leaf,
                    kind,
                    Mode::from_bits_truncate(metadata.mode & 0o777),
                    device,
                ) {
                    Ok(()) => {}
                    Err(errno @ (Errno::EPERM | Errno::EACCES | Errno::EOPNOTSUPP)) => {
                        self.warn(format!(
                            "{shown}: cannot create the node ({errno}); skipped"
                        ));
                        return Ok(());
                    }
                    Err(errno) => return Err(TreeError::io(&path, errno).into()),
                }
                self.chown_at(&parent, leaf, &metadata, shown);
                // A node's mode must go through fchmodat on the name: opening a fifo or a
                // device to use fchmod could block or have side effects.
                nix::sys::stat::fchmodat(
                    &parent,
                    leaf,
                    Mode::from_bits_truncate(metadata.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| TreeError::io(&path, e))?;
            }
            EntryType::XGlobalHeader => return Ok(()),
            other => {
                self.warn(format!(
                    "{shown}: unsupported entry type {other:?}; skipped"
                ));
                return Ok(());
            }
        }
        self.entries += 1;
        Ok(())
    }

    /// Applies owner, mode, xattrs and mtime through an open descriptor (in that order: a
    /// change of owner clears setuid bits and capabilities).
    fn apply_to_fd(
        &mut self,
        fd: impl AsFd + Copy,
        metadata: &EntryMetadata,
        shown: &str,
    ) -> Result<(), EntryFailure> {
        if self.keep_owners {
            if let Err(errno) = fchown(fd, Some(to_uid(metadata.uid)), Some(to_gid(metadata.gid))) {
                self.owner_failed(shown, metadata, errno);
            }
        }
        fchmod(fd, Mode::from_bits_truncate(metadata.mode))
            .map_err(|e| EntryFailure::Tree(TreeError::io(Path::new(shown), e)))?;
        for (name, value) in &metadata.xattrs {
            if let Err(errno) = set_xattr(fd, name, value) {
                self.warn(format!(
                    "{shown}: cannot set extended attribute {} ({errno}); skipped",
                    String::from_utf8_lossy(name)
                ));
            }
        }
        let time = TimeSpec::new(metadata.mtime, 0);
        futimens(fd, &time, &time)
            .map_err(|e| EntryFailure::Tree(TreeError::io(Path::new(shown), e)))?;
        Ok(())
    }

    fn chown_at(&mut self, parent: &OwnedFd, leaf: &OsStr, metadata: &EntryMetadata, shown: &str) {
        if self.keep_owners {
            if let Err(errno) = fchownat(
                parent,
                leaf,
                Some(to_uid(metadata.uid)),
                Some(to_gid(metadata.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                self.owner_failed(shown, metadata, errno);
            }
        }
    }

    fn owner_failed(&mut self, shown: &str, metadata: &EntryMetadata, errno: Errno) {
        self.owner_failures += 1;
        if self.first_owner_failure.is_none() {
            self.first_owner_failure = Some(format!(
                "{shown} ({}:{}: {errno})",
                metadata.uid, metadata.gid
            ));
        }
    }

    fn warn(&mut self, warning: String) {
        log(self.options, &format!("warning: {warning}"));
        self.warnings.push(warning);
    }

    /// Applies the deferred directory attributes, deepest first, and returns the report.
    fn finish(mut self) -> Result<UnpackReport, UnpackError> {
        let directories = std::mem::take(&mut self.directories);
        for (components, attributes) in directories.iter().rev() {
            let components: Vec<&OsStr> = components.iter().map(OsString::as_os_str).collect();
            let path: PathBuf = components.iter().collect();
            let shown = path.display().to_string();
            let dir =
                self.tree
                    .open_dir(&components, false)
                    .map_err(|source| UnpackError::Entry {
                        entry: shown.clone(),
                        source,
                    })?;
            self.apply_to_fd(dir.as_fd(), &attributes.metadata, &shown)
                .map_err(|failure| failure.into_error(&shown, "the output"))?;
        }
        if let Some(first) = self.first_owner_failure.take() {
            let count = self.owner_failures;
            self.warn(format!(
                "{count} entries keep the builder's owner: their owners are not mapped here, e.g. {first}"
            ));
        }
        Ok(UnpackReport {
            compression: Compression::None,
            entries: self.entries,
            bytes: self.bytes,
            warnings: self.warnings,
        })
    }
}

/// Why one entry failed, before the entry's name is attached.
enum EntryFailure {
    Unsafe(String),
    Tree(TreeError),
    Read(io::Error),
}

impl From<TreeError> for EntryFailure {
    fn from(error: TreeError) -> Self {
        Self::Tree(error)
    }
}

impl EntryFailure {
    fn into_error(self, entry: &str, archive: &str) -> UnpackError {
        match self {
            Self::Unsafe(reason) => UnpackError::UnsafeEntry {
                entry: entry.to_owned(),
                reason,
            },
            Self::Tree(source) => UnpackError::Entry {
                entry: entry.to_owned(),
                source,
            },
            Self::Read(source) => UnpackError::Read {
                archive: format!("{archive} (entry `{entry}`)"),
                source,
            },
        }
    }
}

const COPY_BUFFER_SIZE: usize = 256 * 1024;

/// Copies an entry's contents into its file: read errors are the archive's, write errors the
/// output's.
fn copy_contents(
    entry: &mut impl Read,
    file: &mut File,
    buffer: &mut [u8],
    path: &Path,
) -> Result<u64, EntryFailure> {
    let mut written = 0u64;
    loop {
        let read = match entry.read(buffer) {
            Ok(0) => return Ok(written),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(EntryFailure::Read(error)),
        };
        file.write_all(&buffer[..read]).map_err(|source| {
            EntryFailure::Tree(TreeError::Io {
                path: path.to_owned(),
                source,
            })
        })?;
        written += read as u64;
    }
}

fn to_uid(id: u64) -> Uid {
    Uid::from_raw(u32::try_from(id).unwrap_or(u32::MAX))
}

fn to_gid(id: u64) -> Gid {
    Gid::from_raw(u32::try_from(id).unwrap_or(u32::MAX))
}

fn set_xattr(fd: impl AsFd, name: &[u8], value: &[u8]) -> Result<(), Errno> {
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: the descriptor is open for the duration of the call, `name` is NUL-terminated and
    // `value` is a valid slice of the given length.
    let result = unsafe {
        libc::fsetxattr(
            fd.as_fd().as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(result).map(drop)
}

fn log(options: &UnpackOptions, line: &str) {
    if let Some(log) = &options.log {
        log(line);
    }
}

#[cfg(test)]
mod tests {
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
