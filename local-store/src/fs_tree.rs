//! Removing and measuring file trees in the physical store. Store objects are often read-only
//! (outputs are made so after a build, and root filesystems have read-only directories), so
//! deletion first gives the owner write permission on each directory. Symlinks are never
//! followed. Builds, substitutions and the sandbox delete their partial trees with it too.
//!
//! "Bytes freed" counts the apparent size of every regular file and symlink whose last link is
//! removed, as Nix's collector does; directories count nothing.
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Recursively deletes `path` (a file, symlink or directory), returning the bytes freed.
/// A path that does not exist frees nothing.
pub fn delete_tree(path: &Path) -> io::Result<u64> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !metadata.is_dir() {
        fs::remove_file(path)?;
        return Ok(freed_by_unlinking(&metadata));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700))?;
    }
    let mut freed = 0;
    for entry in fs::read_dir(path)? {
        freed += delete_tree(&entry?.path())?;
    }
    fs::remove_dir(path)?;
    Ok(freed)
}

/// The bytes that deleting `path` would free, without deleting anything.
pub(crate) fn tree_size(path: &Path) -> io::Result<u64> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !metadata.is_dir() {
        return Ok(freed_by_unlinking(&metadata));
    }
    let mut size = 0;
    for entry in fs::read_dir(path)? {
        size += tree_size(&entry?.path())?;
    }
    Ok(size)
}

fn freed_by_unlinking(metadata: &fs::Metadata) -> u64 {
    if metadata.file_type().is_file() && metadata.nlink() > 1 {
        0
    } else {
        metadata.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_read_only_trees_and_counts_file_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("obj");
        fs::create_dir_all(top.join("sub")).unwrap();
        fs::write(top.join("sub/file"), b"12345").unwrap();
        fs::write(top.join("other"), b"abc").unwrap();
        std::os::unix::fs::symlink("other", top.join("link")).unwrap();
        fs::set_permissions(top.join("sub"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(&top, fs::Permissions::from_mode(0o555)).unwrap();

        assert_eq!(tree_size(&top).unwrap(), 5 + 3 + 5);
        assert_eq!(delete_tree(&top).unwrap(), 5 + 3 + 5);
        assert!(!top.exists());
        assert_eq!(delete_tree(&top).unwrap(), 0);
    }
}
