//! Writing the entries of one tar archive into the output tree of a `builtin:unpack`: names made
//! safe (no absolute names, no `..`), contents copied (sparse entries with their holes), links,
//! directories given their modes and times once everything inside them is written, modes
//! reduced to the kept bits, the unpacked-size limit enforced, and warnings for what is skipped
//! (see the parent module for the rules).
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, futimens, mkdirat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat};
use tar::EntryType;

use super::compression::Compression;
use super::output_tree::{self, clear_slot, kind_of, OutputTree, TreeError};
use super::{log, UnpackError, UnpackOptions, UnpackReport, KEPT_MODE_BITS};

/// Splits an entry name into components, refusing absolute names and `..`.
pub(super) fn safe_components(name: &[u8]) -> Result<Vec<&OsStr>, String> {
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
/// Owners and extended attributes are deliberately absent (see the module doc).
struct EntryMetadata {
    /// The archive's mode reduced to [`KEPT_MODE_BITS`].
    mode: u32,
    mtime: i64,
}

impl EntryMetadata {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Self> {
        let header = entry.header();
        Ok(Self {
            mode: header.mode()? & KEPT_MODE_BITS,
            mtime: i64::try_from(header.mtime()?).unwrap_or(i64::MAX),
        })
    }
}

/// Writes archive entries into an [`OutputTree`], collecting warnings and deferring directory
/// attributes to the end.
pub(super) struct EntryWriter<'a> {
    tree: &'a OutputTree,
    strip_components: usize,
    options: &'a UnpackOptions,
    directories: BTreeMap<Vec<OsString>, DirectoryAttributes>,
    entries: u64,
    bytes: u64,
    /// Logical sizes of the regular entries so far, and their limit.
    unpacked_size: u64,
    limit: u64,
    warnings: Vec<String>,
    /// Reused for copying file contents (larger than `io::copy`'s, for fewer system calls).
    copy_buffer: Vec<u8>,
}

impl<'a> EntryWriter<'a> {
    pub(super) fn new(
        tree: &'a OutputTree,
        strip_components: usize,
        options: &'a UnpackOptions,
        limit: u64,
    ) -> Self {
        Self {
            tree,
            strip_components,
            options,
            directories: BTreeMap::new(),
            entries: 0,
            bytes: 0,
            unpacked_size: 0,
            limit,
            warnings: Vec::new(),
            copy_buffer: vec![0; COPY_BUFFER_SIZE],
        }
    }

    pub(super) fn unpack_all<R: Read>(
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
        if matches!(
            entry_type,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse
        ) {
            // `size` is the logical size, holes of sparse entries included.
            self.unpacked_size = self.unpacked_size.saturating_add(entry.size());
            if self.unpacked_size > self.limit {
                return Err(EntryFailure::TooLarge {
                    size: self.unpacked_size,
                    limit: self.limit,
                });
            }
        }
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
                let sparse = entry_type == EntryType::GNUSparse;
                let written =
                    copy_contents(entry, &mut file, &mut self.copy_buffer, &path, sparse)?;
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
                    EntryType::Char => "character device",
                    EntryType::Block => "block device",
                    _ => "fifo",
                };
                self.warn(format!(
                    "{shown}: a {kind} cannot be store contents; skipped"
                ));
                return Ok(());
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

    /// Applies the (reduced) mode and the mtime through an open descriptor.
    fn apply_to_fd(
        &mut self,
        fd: impl AsFd + Copy,
        metadata: &EntryMetadata,
        shown: &str,
    ) -> Result<(), EntryFailure> {
        fchmod(fd, Mode::from_bits_truncate(metadata.mode))
            .map_err(|e| EntryFailure::Tree(TreeError::io(Path::new(shown), e)))?;
        let time = TimeSpec::new(metadata.mtime, 0);
        futimens(fd, &time, &time)
            .map_err(|e| EntryFailure::Tree(TreeError::io(Path::new(shown), e)))?;
        Ok(())
    }

    fn warn(&mut self, warning: String) {
        log(self.options, &format!("warning: {warning}"));
        self.warnings.push(warning);
    }

    /// Applies the deferred directory attributes, deepest first, and returns the report.
    pub(super) fn finish(mut self) -> Result<UnpackReport, UnpackError> {
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
    TooLarge { size: u64, limit: u64 },
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
            Self::TooLarge { size, limit } => UnpackError::TooLarge {
                entry: entry.to_owned(),
                size,
                limit,
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

/// The block size holes are found in when writing a sparse entry.
const HOLE_BLOCK: usize = 4096;

/// Copies an entry's contents into its file: read errors are the archive's, write errors the
/// output's. With `sparse`, blocks of zeros (the holes of a sparse entry, which the tar reader
/// yields as zeros) are skipped rather than written. Returns the logical size.
fn copy_contents(
    entry: &mut impl Read,
    file: &mut File,
    buffer: &mut [u8],
    path: &Path,
    sparse: bool,
) -> Result<u64, EntryFailure> {
    use std::io::{Seek, SeekFrom};
    let write_error = |source| {
        EntryFailure::Tree(TreeError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let mut written = 0u64;
    // Whether the file ends in a hole that was skipped (its length must be set at the end).
    let mut ends_in_hole = false;
    loop {
        let read = match entry.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(EntryFailure::Read(error)),
        };
        if sparse {
            for block in buffer[..read].chunks(HOLE_BLOCK) {
                if block.iter().all(|byte| *byte == 0) {
                    file.seek(SeekFrom::Current(block.len() as i64))
                        .map_err(write_error)?;
                    ends_in_hole = true;
                } else {
                    file.write_all(block).map_err(write_error)?;
                    ends_in_hole = false;
                }
            }
        } else {
            file.write_all(&buffer[..read]).map_err(write_error)?;
        }
        written += read as u64;
    }
    if ends_in_hole {
        file.set_len(written).map_err(write_error)?;
    }
    Ok(written)
}
