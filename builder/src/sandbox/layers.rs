//! Id-mapped root-file-system layers for builds run by root (and the host paths bound into a
//! session run by root, see [`idmapped_trees`]).
//!
//! Store files belong to the store's owner (host root), and host uid 0 is not mapped in a
//! build's user namespace, so a layer bound as it is would show every file as `nobody` and
//! root inside could not write through the overlay. Each lower layer is therefore cloned as a
//! detached mount (`open_tree(OPEN_TREE_CLONE | AT_SYMLINK_NOFOLLOW)`) and made id-mapped,
//! read-only, `nosuid` and `nodev` with `mount_setattr(MOUNT_ATTR_IDMAP)`, using a user
//! namespace whose maps are the build's own (0 -> base, 65536 ids): on-disk owner 0 then
//! appears as 0 inside, and anything written goes to the overlay's upper directory as the
//! build's unprivileged ids. The namespace comes from a short-lived helper process cloned
//! with `CLONE_NEWUSER`; its `/proc/<pid>/ns/user` descriptor keeps the namespace alive after
//! the helper is killed. The detached mounts are created here, in the parent (only the host's
//! root may id-map a file system mounted in the initial user namespace), inherited by the
//! sandbox's init at fixed descriptor numbers and attached with `move_mount` (see the `child`
//! and `plan` modules).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::error::SandboxError;
use super::idmap::IdMapping;

/// A user namespace with the build's maps, owned through its `/proc/<pid>/ns/user` descriptor.
fn mapped_user_namespace(mapping: &IdMapping) -> Result<File, SandboxError> {
    // A fork-like clone of a possibly multi-threaded process: the child only makes
    // async-signal-safe system calls until it is killed.
    // SAFETY: see above; the child never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: plain prctl and pause calls; `_exit` is never reached in practice.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            loop {
                libc::pause();
            }
        }
    }
    if pid < 0 {
        return Err(SandboxError::syscall(
            "clone(CLONE_NEWUSER|SIGCHLD) of the id-map helper",
            Errno::last(),
        ));
    }
    // A pid always fits in a pid_t.
    let helper = Pid::from_raw(pid as libc::pid_t);
    let opened = mapping.install(helper).and_then(|()| {
        let path = format!("/proc/{helper}/ns/user");
        File::open(&path).map_err(|err| SandboxError::io(format!("opening {path}"), err))
    });
    // ESRCH is impossible (unreaped child); nothing else can go wrong with SIGKILL.
    let _ = kill(helper, Signal::SIGKILL);
    while let Err(Errno::EINTR) = waitpid(helper, None) {}
    opened
}

/// Detached, id-mapped, `nosuid` and `nodev` clones of host paths (read-only where asked),
/// in order: the layers of a build, or the host paths bound into a session run by root (the
/// invoking user's files keep their owners in both directions: what root inside writes there
/// belongs to host root).
pub(crate) fn idmapped_trees(
    trees: &[(PathBuf, bool)],
    mapping: &IdMapping,
) -> Result<Vec<OwnedFd>, SandboxError> {
    let userns = mapped_user_namespace(mapping)?;
    let mut mounts = Vec::with_capacity(trees.len());
    for (layer, read_only) in trees {
        let path = CString::new(layer.as_os_str().as_bytes()).map_err(|_| {
            SandboxError::InvalidSpec(format!("{} contains a NUL byte", layer.display()))
        })?;
        // SAFETY: `path` is a valid NUL-terminated string; the result is a new descriptor.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_SYMLINK_NOFOLLOW as u32,
            )
        };
        if fd < 0 {
            return Err(SandboxError::syscall(
                format!(
                    "open_tree({}, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_SYMLINK_NOFOLLOW)",
                    layer.display()
                ),
                Errno::last(),
            ));
        }
        // SAFETY: `open_tree` returned a new descriptor that nothing else owns; descriptor
        // numbers fit in an int.
        let tree = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        let read_only_attr = if *read_only {
            libc::MOUNT_ATTR_RDONLY
        } else {
            0
        };
        let attr = libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_IDMAP
                | read_only_attr
                | libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV,
            attr_clr: 0,
            propagation: 0,
            // A descriptor is non-negative.
            userns_fd: userns.as_raw_fd() as u64,
        };
        // SAFETY: `tree` is a detached mount, the path is empty with AT_EMPTY_PATH, and
        // `attr` is a valid mount_attr of the size passed.
        let set = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                &attr as *const libc::mount_attr,
                std::mem::size_of::<libc::mount_attr>(),
            )
        };
        if set < 0 {
            return Err(SandboxError::syscall(
                format!(
                    "mount_setattr(open_tree of {}, MOUNT_ATTR_IDMAP{}|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV)",
                    layer.display(),
                    if *read_only { "|MOUNT_ATTR_RDONLY" } else { "" }
                ),
                Errno::last(),
            ));
        }
        mounts.push(tree);
    }
    Ok(mounts)
}
