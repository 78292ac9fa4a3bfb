//! The output directory of an unpack, written only through file descriptors.
//!
//! Every archive entry is reached from the output's root descriptor one component at a time with
//! `openat(O_DIRECTORY | O_NOFOLLOW)`, so nothing is ever created or changed through a symbolic
//! link, whether the link came from an earlier entry of the same archive or was swapped in while
//! the unpack runs: a symlink in the middle of a path is an error, a symlink at the end is
//! replaced, never followed. Names are validated before they get here (no `..`, no absolute
//! paths), so the walk cannot leave the output.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Why a path inside the output could not be reached or created.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("`{component}` is a symbolic link; refusing to write through it")]
    ThroughSymlink { component: PathBuf },
    #[error("`{component}` is not a directory")]
    NotADirectory { component: PathBuf },
    #[error("`{path}` is a non-empty directory and cannot be replaced")]
    DirectoryInTheWay { path: PathBuf },
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl TreeError {
    pub(crate) fn io(path: &Path, errno: Errno) -> Self {
        Self::Io {
            path: path.to_owned(),
            source: io::Error::from(errno),
        }
    }
}

/// The root of an unpack's output.
pub struct OutputTree {
    root: OwnedFd,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The mode directories get while the unpack runs: the owner must be able to create entries in
/// them whatever the archive says; the archive's modes are applied at the end.
pub const WORKING_DIR_MODE: u32 = 0o700;

impl OutputTree {
    /// Creates the output directory (which must not exist) and opens it.
    pub fn create(path: &Path) -> Result<Self, TreeError> {
        std::fs::DirBuilder::new()
            .create(path)
            .map_err(|source| TreeError::Io {
                path: path.to_owned(),
                source,
            })?;
        let root = openat(nix::fcntl::AT_FDCWD, path, DIR_FLAGS, Mode::empty())
            .map_err(|errno| TreeError::io(path, errno))?;
        Ok(Self { root })
    }

    /// Opens the directory `components` names (the root when empty), creating missing
    /// directories along the way when `create` is set.
    pub fn open_dir(&self, components: &[&OsStr], create: bool) -> Result<OwnedFd, TreeError> {
        let mut current = self.root.try_clone().map_err(|source| TreeError::Io {
            path: PathBuf::from("."),
            source,
        })?;
        let mut walked = PathBuf::new();
        for component in components {
            walked.push(component);
            current = open_child_dir(&current, component, create, &walked)?;
        }
        Ok(current)
    }

    /// Opens the parent directory of `components` (which must not be empty) and returns it with
    /// the last component.
    pub fn open_parent<'a>(
        &self,
        components: &[&'a OsStr],
        create: bool,
    ) -> Result<(OwnedFd, &'a OsStr), TreeError> {
        match components.split_last() {
            Some((leaf, parents)) => Ok((self.open_dir(parents, create)?, leaf)),
            None => Err(TreeError::NotADirectory {
                component: PathBuf::from("."),
            }),
        }
    }

    /// Opens a regular file to read back (never following a symlink).
    pub fn open_file(&self, components: &[&OsStr]) -> Result<File, TreeError> {
        let path: PathBuf = components.iter().collect();
        let (parent, leaf) = self.open_parent(components, false)?;
        let fd = openat(
            &parent,
            leaf,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| TreeError::io(&path, errno))?;
        Ok(File::from(fd))
    }
}

fn open_child_dir(
    parent: &OwnedFd,
    name: &OsStr,
    create: bool,
    walked: &Path,
) -> Result<OwnedFd, TreeError> {
    let mut created = false;
    loop {
        match openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) if create && !created => {
                match mkdirat(
                    parent,
                    name,
                    Mode::from_bits_truncate(WORKING_DIR_MODE | 0o055),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => created = true,
                    Err(errno) => return Err(TreeError::io(walked, errno)),
                }
            }
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                return Err(match kind_of(parent, name) {
                    Ok(Some(SFlag::S_IFLNK)) => TreeError::ThroughSymlink {
                        component: walked.to_owned(),
                    },
                    _ => TreeError::NotADirectory {
                        component: walked.to_owned(),
                    },
                })
            }
            Err(errno) => return Err(TreeError::io(walked, errno)),
        }
    }
}

/// The file type of `name` in `dir` (not following a symlink), `None` when it does not exist.
pub fn kind_of(dir: impl AsFd, name: &OsStr) -> Result<Option<SFlag>, Errno> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(SFlag::from_bits_truncate(
            stat.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

/// Makes room for a new non-directory entry `name` in `dir`: an existing file, link or node is
/// removed, an empty directory too; a non-empty directory is an error. `path` is for messages.
pub fn clear_slot(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<(), TreeError> {
    match kind_of(dir, name).map_err(|errno| TreeError::io(path, errno))? {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) => Ok(()),
            Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) => Err(TreeError::DirectoryInTheWay {
                path: path.to_owned(),
            }),
            Err(errno) => Err(TreeError::io(path, errno)),
        },
        Some(_) => unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|errno| TreeError::io(path, errno)),
    }
}
