//! Turns a [`SandboxSpec`] into the ordered system calls of the child ([`ChildPlan`]), in this
//! order: a cgroup namespace rooted at the build's control group → init takes uid/gid 0 of the namespace (when kiln is root, init starts as host root,
//! which the namespace does not map) and becomes non-dumpable → make `/` private → attach the
//! id-mapped layers → the new root (tmpfs or overlay) → directories and `/etc` files → the
//! store (inputs read-only) and `/build` → a fresh `/proc` with its kernel-tuning parts
//! read-only and its kernel-revealing files masked → a minimal `/dev` → network files or
//! loopback → `pivot_root` and detach the old root → hostname. Then the builder's own steps:
//! default signals, new session, the capability bounding set cut to what the builder keeps,
//! identity, the remaining capabilities, umask, `chdir /build`, `PR_SET_NO_NEW_PRIVS` and the
//! seccomp filters (see the `seccomp` module), right before `execve`.
//!
//! Everything that needs the host file system (file types, mount flags to preserve, which
//! device nodes exist) is looked up here, in the parent, before the clone.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

use super::child::{ChildPlan, FIRST_LAYER_FD};
use super::env::SANDBOX_BUILD_DIR;
use super::error::SandboxError;
use super::idmap::{IdMapping, NIXBLD_GID, NIXBLD_UID};
use super::seccomp::BuilderFilters;
use super::spec::{RootFs, SandboxSpec};
use super::step::Step;

/// The device nodes bound from the host into the sandbox's `/dev`, when the host has them.
const DEVICE_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The parts of `/proc` that tune the kernel, made read-only (as container runtimes do).
const PROC_READ_ONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];

/// The files of `/proc` that reveal kernel memory, keys or timers, covered with `/dev/null`.
const PROC_MASKED: [&str; 4] = ["kcore", "keys", "timer_list", "sched_debug"];

/// The host files bound read-only into `/etc` when the build may use the network.
const NETWORK_FILES: [&str; 3] = ["resolv.conf", "hosts", "services"];

/// The host staging directory of a build, which init makes its working directory first,
/// while it still has the host's ids (a parent directory only root may search, such as a
/// private temporary directory or `/root`, is then no obstacle): every later step names its
/// paths relative to it, and the host paths outside it (inputs, the build directory, the
/// overlay's upper and work directories) are bound into it at that point.
#[derive(Debug)]
pub(crate) struct StagingDirs<'a> {
    /// The absolute host path of the staging directory.
    pub dir: &'a Path,
    /// How many id-mapped layers are attached at [`layer_mount_point`]s.
    pub idmapped_layers: usize,
    /// Whether the parent passes the binds of a session as id-mapped detached mounts (after
    /// the layers); otherwise init clones them itself (`open_tree`) before `pivot_root`.
    pub idmapped_binds: bool,
}

/// Where the new root is mounted, relative to the staging directory.
pub(crate) const STAGING_ROOT: &str = "root";
/// The directory bound at the logical store directory (outputs land there), relative to the
/// staging directory; the inputs are bound onto mount points in it.
pub(crate) const STAGING_STORE: &str = "store";
/// Where the build directory is bound first, relative to the staging directory.
pub(crate) const STAGING_BUILD: &str = "build";
/// Where the parent of the overlay's upper and work directories is bound first.
pub(crate) const STAGING_OVERLAY: &str = "overlay";

/// The mount point of id-mapped layer `index`, relative to the staging directory.
pub(crate) fn layer_mount_point(index: usize) -> PathBuf {
    Path::new("layers").join(index.to_string())
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, SandboxError> {
    CString::new(bytes)
        .map_err(|_| SandboxError::InvalidSpec(format!("{what} contains a NUL byte")))
}

fn cpath(path: &Path) -> Result<CString, SandboxError> {
    cstring(path.as_os_str().as_bytes(), &path.display().to_string())
}

fn cstr(text: &str) -> CString {
    // Only called with literals and formatted numbers, which contain no NUL byte.
    CString::new(text).unwrap_or_default()
}

/// `root` joined with an absolute in-sandbox path.
fn inside(root: &Path, sandbox_path: &Path) -> PathBuf {
    root.join(sandbox_path.strip_prefix("/").unwrap_or(sandbox_path))
}

/// The flags of the host mount holding `path` that a read-only remount in a user namespace
/// must repeat (the kernel refuses to clear locked flags).
fn locked_flags(path: &Path) -> Result<MsFlags, SandboxError> {
    let stat = statvfs(path)
        .map_err(|errno| SandboxError::syscall(format!("statvfs({})", path.display()), errno))?;
    let pairs = [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    Ok(pairs
        .into_iter()
        .filter(|(fs_flag, _)| stat.flags().contains(*fs_flag))
        .fold(MsFlags::empty(), |acc, (_, ms_flag)| acc | ms_flag))
}

fn bind(source: &Path, target: CString) -> Result<Step, SandboxError> {
    Ok(Step::Mount {
        source: Some(cpath(source)?),
        target,
        fstype: None,
        flags: MsFlags::MS_BIND | MsFlags::MS_REC,
        data: None,
    })
}

fn remount_read_only(source: &Path, target: CString) -> Result<Step, SandboxError> {
    Ok(Step::Mount {
        source: None,
        target,
        fstype: None,
        flags: MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(source)?,
        data: None,
    })
}

fn mount_fs(fstype: &str, target: CString, flags: MsFlags, data: Option<&str>) -> Step {
    Step::Mount {
        source: Some(cstr(fstype)),
        target,
        fstype: Some(cstr(fstype)),
        flags,
        data: data.map(cstr),
    }
}

/// Creates, in the host staging store directory (owned by the store's owner, which the
/// build's namespace may not map), what each input is bound onto: a directory or an empty
/// file, or the input's own symlink. Done by the parent before the clone; init only binds.
pub(crate) fn create_input_mount_points(
    spec: &SandboxSpec,
    staging_store: &Path,
) -> Result<(), SandboxError> {
    for input in &spec.inputs {
        let name = spec.store_entry_name(&input.logical_path)?;
        let host = &input.host_path;
        let target = staging_store.join(name);
        let metadata = std::fs::symlink_metadata(host)
            .map_err(|err| SandboxError::io(format!("inspecting {}", host.display()), err))?;
        let created = if metadata.file_type().is_symlink() {
            std::fs::read_link(host).and_then(|link| std::os::unix::fs::symlink(link, &target))
        } else if metadata.is_dir() {
            std::fs::create_dir(&target)
        } else {
            std::fs::File::create(&target).map(drop)
        };
        created.map_err(|err| {
            SandboxError::io(
                format!("creating the mount point {}", target.display()),
                err,
            )
        })?;
    }
    Ok(())
}

/// Steps that make `host` visible read-only at `target`, whose mount point
/// [`create_input_mount_points`] made (a symlink needs nothing more).
fn bind_read_only(host: &Path, target: &Path, steps: &mut Vec<Step>) -> Result<(), SandboxError> {
    let metadata = std::fs::symlink_metadata(host)
        .map_err(|err| SandboxError::io(format!("inspecting {}", host.display()), err))?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let target_c = cpath(target)?;
    steps.push(bind(host, target_c.clone())?);
    steps.push(remount_read_only(host, target_c)?);
    Ok(())
}

/// The flags of the sandbox's `/proc` mount, repeated by its read-only remounts.
const PROC_FLAGS: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Steps that make the kernel-tuning parts of the fresh `/proc` read-only and mask the files
/// that reveal kernel state. The host's `/proc` (same kernel) says which of them exist.
fn restrict_proc(root: &Path, steps: &mut Vec<Step>) -> Result<(), SandboxError> {
    let host_proc = Path::new("/proc");
    for entry in PROC_READ_ONLY {
        if std::fs::symlink_metadata(host_proc.join(entry)).is_err() {
            continue;
        }
        let target = cpath(&inside(root, &host_proc.join(entry)))?;
        steps.push(Step::Mount {
            source: Some(target.clone()),
            target: target.clone(),
            fstype: None,
            flags: MsFlags::MS_BIND | MsFlags::MS_REC,
            data: None,
        });
        steps.push(Step::Mount {
            source: None,
            target,
            fstype: None,
            flags: MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | PROC_FLAGS,
            data: None,
        });
    }
    for entry in PROC_MASKED {
        if std::fs::symlink_metadata(host_proc.join(entry)).is_err() {
            continue;
        }
        steps.push(Step::Mount {
            source: Some(cstr("/dev/null")),
            target: cpath(&inside(root, &host_proc.join(entry)))?,
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None,
        });
    }
    Ok(())
}

/// `mkdir` of every directory of an absolute in-sandbox path, from the top (existing ones are
/// accepted).
fn mkdir_all(path: &Path, steps: &mut Vec<Step>) -> Result<(), SandboxError> {
    let mut prefix = PathBuf::from("/");
    for component in path.components().skip(1) {
        prefix.push(component);
        steps.push(Step::Mkdir {
            path: cpath(&prefix)?,
            mode: 0o755,
        });
    }
    Ok(())
}

/// Nix 2.8's `/etc/passwd` of the sandbox.
fn passwd_contents() -> String {
    format!(
        "root:x:0:0:Nix build user:{SANDBOX_BUILD_DIR}:/noshell\n\
         nixbld:x:{NIXBLD_UID}:{NIXBLD_GID}:Nix build user:{SANDBOX_BUILD_DIR}:/noshell\n\
         nobody:x:65534:65534:Nobody:/:/noshell\n"
    )
}

/// Nix 2.8's `/etc/group` of the sandbox.
fn group_contents() -> String {
    format!("root:x:0:\nnixbld:!:{NIXBLD_GID}:\nnogroup:x:65534:\n")
}

/// Nix 2.8's `/etc/hosts` of a sandbox without network.
const HOSTS_CONTENTS: &str = "127.0.0.1 localhost\n::1 localhost\n";

/// Builds the plan for one sandbox.
pub(crate) fn build_plan(
    spec: &SandboxSpec,
    mapping: &IdMapping,
    staging: &StagingDirs<'_>,
    filters: BuilderFilters,
) -> Result<ChildPlan, SandboxError> {
    let root = Path::new(STAGING_ROOT);
    let store = Path::new(STAGING_STORE);
    let at = |sandbox_path: &str| cpath(&inside(root, Path::new(sandbox_path)));
    let keep_existing = matches!(spec.root, RootFs::Overlay { .. });
    // tmpfs mounts (`/` with `/tmp`, and `/dev/shm`) hold at most half the build's memory
    // limit each: their pages are charged to its control group too, so a full tmpfs is
    // "no space left on device" rather than the OOM killer.
    let tmpfs_size = spec
        .limits
        .memory_bytes
        .map(|bytes| format!(",size={}", (bytes / 2).max(1 << 20)))
        .unwrap_or_default();
    let overlay_root = keep_existing;
    let mut steps = vec![
        // Init is in the build's control group by now (the parent put it there before
        // releasing it): make that group the root of what the build can see of cgroups.
        Step::UnshareCgroupNamespace,
        Step::Chdir {
            path: cpath(staging.dir)?,
        },
        Step::Mount {
            source: None,
            target: cstr("/"),
            fstype: None,
            flags: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            data: None,
        },
    ];
    // With the host's ids still: bring every host path outside the staging directory into it.
    for input in &spec.inputs {
        let name = spec.store_entry_name(&input.logical_path)?;
        bind_read_only(&input.host_path, &store.join(name), &mut steps)?;
    }
    let session = spec.shell.as_ref();
    if session.is_none() {
        steps.push(bind(&spec.build_dir, cstr(STAGING_BUILD))?);
    }
    // The descriptor of each bind of a session: passed by the parent after the layers, or
    // cloned here by init onto the same numbers (everything from there on is free).
    let bind_fds: Vec<i32> = session
        .map(|session| {
            (0..session.binds.len())
                // At most MAX_LAYERS (64) layers and binds together.
                .map(|index| FIRST_LAYER_FD + (staging.idmapped_layers + index) as i32)
                .collect()
        })
        .unwrap_or_default();
    if let Some(session) = session {
        if !staging.idmapped_binds {
            for (bind, fd) in session.binds.iter().zip(&bind_fds) {
                steps.push(Step::OpenTree {
                    path: cpath(&bind.source)?,
                    fd: *fd,
                });
            }
        }
    }
    let mut overlay_dirs = None;
    if let RootFs::Overlay { upper, work, .. } = &spec.root {
        // `validate` checked that both have the same parent and a file name.
        let parent = upper.parent().unwrap_or(Path::new("/"));
        steps.push(bind(parent, cstr(STAGING_OVERLAY))?);
        let overlay = Path::new(STAGING_OVERLAY);
        overlay_dirs = Some((
            overlay.join(upper.file_name().unwrap_or_default()),
            overlay.join(work.file_name().unwrap_or_default()),
        ));
    }
    for index in 0..staging.idmapped_layers {
        steps.push(Step::MoveMount {
            // At most MAX_LAYERS (64) layers.
            fd: FIRST_LAYER_FD + index as i32,
            target: cpath(&layer_mount_point(index))?,
        });
    }

    if mapping.needs_idmapped_layers() {
        // Init starts with the host's root ids, which the namespace does not map: files it
        // created would get no owner and overlayfs refuses such a mounter.
        steps.push(Step::ClearGroups);
        steps.push(Step::SetGid { gid: 0 });
        steps.push(Step::SetUid { uid: 0 });
        // The change of ids cleared init's parent-death signal: set it again (the parent is
        // blocked waiting for init, so it cannot have died in between unless kiln was killed
        // in these few microseconds).
        steps.push(Step::ParentDeathSignal);
    }
    steps.push(Step::NotDumpable);
    let root_mount = match &spec.root {
        RootFs::Tmpfs => mount_fs(
            "tmpfs",
            cpath(root)?,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(&format!("mode=0755{tmpfs_size}")),
        ),
        RootFs::Overlay { lower_layers, .. } => {
            let lower: Vec<String> = if staging.idmapped_layers == 0 {
                lower_layers
                    .iter()
                    .map(|layer| layer.to_string_lossy().into_owned())
                    .collect()
            } else {
                (0..staging.idmapped_layers)
                    .map(|index| layer_mount_point(index).to_string_lossy().into_owned())
                    .collect()
            };
            let (upper, work) = overlay_dirs.unwrap_or_default();
            let options = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                lower.join(":"),
                upper.display(),
                work.display()
            );
            Step::Mount {
                source: Some(cstr("overlay")),
                target: cpath(root)?,
                fstype: Some(cstr("overlay")),
                flags: MsFlags::empty(),
                data: Some(cstring(options.as_bytes(), "overlay options")?),
            }
        }
    };
    steps.push(root_mount);

    for dir in [SANDBOX_BUILD_DIR, "/tmp", "/dev", "/proc", "/etc"] {
        if dir == SANDBOX_BUILD_DIR && session.is_some() {
            continue;
        }
        steps.push(Step::Mkdir {
            path: at(dir)?,
            mode: 0o755,
        });
    }
    if session.is_some() {
        // A session's /tmp is its own, whatever the root holds there (and not kept with the
        // overlay's writes).
        steps.push(mount_fs(
            "tmpfs",
            at("/tmp")?,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(&format!("mode=01777{tmpfs_size}")),
        ));
    } else {
        steps.push(Step::Chmod {
            path: at("/tmp")?,
            mode: 0o1777,
        });
    }
    let mut store_prefix = PathBuf::from("/");
    for component in spec.logical_store_dir.components().skip(1) {
        store_prefix.push(component);
        steps.push(Step::Mkdir {
            path: cpath(&inside(root, &store_prefix))?,
            mode: 0o755,
        });
    }
    steps.push(Step::WriteFile {
        path: at("/etc/passwd")?,
        contents: passwd_contents().into_bytes(),
        keep_existing,
    });
    steps.push(Step::WriteFile {
        path: at("/etc/group")?,
        contents: group_contents().into_bytes(),
        keep_existing,
    });
    if !spec.network {
        steps.push(Step::WriteFile {
            path: at("/etc/hosts")?,
            contents: HOSTS_CONTENTS.as_bytes().to_vec(),
            keep_existing,
        });
    }

    // The store: a host staging directory (outputs are created in it), holding exactly the
    // inputs, each bound read-only.
    let store_in_root = inside(root, &spec.logical_store_dir);
    // Recursive: the inputs bound onto it come along, read-only.
    steps.push(bind(store, cpath(&store_in_root)?)?);
    if session.is_none() {
        steps.push(bind(Path::new(STAGING_BUILD), at(SANDBOX_BUILD_DIR)?)?);
    }

    steps.push(mount_fs("proc", at("/proc")?, PROC_FLAGS, None));

    steps.push(mount_fs(
        "tmpfs",
        at("/dev")?,
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    ));
    for node in DEVICE_NODES {
        let host = Path::new("/dev").join(node);
        if host.exists() {
            let target = at(&format!("/dev/{node}"))?;
            steps.push(Step::CreateFile {
                path: target.clone(),
            });
            steps.push(bind(&host, target)?);
        }
    }
    steps.push(Step::Mkdir {
        path: at("/dev/shm")?,
        mode: 0o1777,
    });
    steps.push(mount_fs(
        "tmpfs",
        at("/dev/shm")?,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(&format!("mode=01777{tmpfs_size}")),
    ));
    steps.push(Step::Mkdir {
        path: at("/dev/pts")?,
        mode: 0o755,
    });
    steps.push(Step::Mount {
        source: Some(cstr("devpts")),
        target: at("/dev/pts")?,
        fstype: Some(cstr("devpts")),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        data: Some(cstr("newinstance,ptmxmode=0666,mode=0620")),
    });
    for (target, link) in [
        ("pts/ptmx", "/dev/ptmx"),
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ] {
        steps.push(Step::Symlink {
            target: cstr(target),
            link: at(link)?,
        });
    }

    if let Some(console) = session.and_then(|session| session.console.as_ref()) {
        let target = at("/dev/console")?;
        steps.push(Step::CreateFile {
            path: target.clone(),
        });
        steps.push(bind(console, target)?);
    }
    restrict_proc(root, &mut steps)?;

    if spec.network {
        for file in NETWORK_FILES {
            let host = Path::new("/etc").join(file);
            if host.exists() {
                let target = inside(root, &host);
                steps.push(Step::CreateFile {
                    path: cpath(&target)?,
                });
                steps.push(bind(&host, cpath(&target)?)?);
                steps.push(remount_read_only(&host, cpath(&target)?)?);
            }
        }
    } else {
        steps.push(Step::LoopbackUp);
    }

    steps.push(Step::Chdir { path: cpath(root)? });
    steps.push(Step::PivotRoot {
        new_root: cstr("."),
        put_old: cstr("."),
    });
    steps.push(Step::Umount {
        target: cstr("."),
        flags: MntFlags::MNT_DETACH,
    });
    steps.push(Step::Chdir { path: cstr("/") });
    if let Some(session) = session {
        // Inside the new root now: a symbolic link of the root resolves inside it.
        for (bind, fd) in session.binds.iter().zip(&bind_fds) {
            mkdir_all(bind.target.parent().unwrap_or(Path::new("/")), &mut steps)?;
            let target = cpath(&bind.target)?;
            if std::fs::metadata(&bind.source).is_ok_and(|m| m.is_dir()) {
                steps.push(Step::Mkdir {
                    path: target.clone(),
                    mode: 0o755,
                });
            } else {
                steps.push(Step::CreateFile {
                    path: target.clone(),
                });
            }
            steps.push(Step::MoveMount {
                fd: *fd,
                target: target.clone(),
            });
            if bind.read_only && !staging.idmapped_binds {
                steps.push(remount_read_only(&bind.source, target)?);
            }
        }
        mkdir_all(&session.home, &mut steps)?;
        mkdir_all(&session.working_dir, &mut steps)?;
    }
    steps.push(Step::SetHostname {
        name: cstr("localhost"),
    });
    steps.push(Step::SetDomainname {
        name: cstr("(none)"),
    });

    let keep = mapping.builder_capabilities(overlay_root);
    let mut builder_steps = vec![Step::ResetSignals];
    // A session stays in the caller's session, so that a terminal keeps its job control (the
    // seccomp filter refuses TIOCSTI, which could otherwise type into it).
    if session.is_none() {
        builder_steps.push(Step::Setsid);
    }
    builder_steps.push(Step::LimitBoundingSet { keep });
    if mapping.is_range() {
        builder_steps.push(Step::ClearGroups);
    }
    builder_steps.push(Step::SetGid {
        gid: mapping.builder_gid(overlay_root),
    });
    builder_steps.push(Step::SetUid {
        uid: mapping.builder_uid(overlay_root),
    });
    builder_steps.push(Step::SetCapabilities { keep });
    builder_steps.push(Step::Umask { mask: 0o022 });
    builder_steps.push(Step::Chdir {
        path: match session {
            Some(session) => cpath(&session.working_dir)?,
            None => cstr(SANDBOX_BUILD_DIR),
        },
    });
    builder_steps.push(Step::NoNewPrivileges);
    for (name, program) in filters.programs {
        builder_steps.push(Step::Seccomp { name, program });
    }

    let programs = match session {
        Some(session) => session
            .programs
            .iter()
            .map(|(program, argv0)| {
                Ok((cpath(program)?, cstring(OsStr::as_bytes(argv0), "argv[0]")?))
            })
            .collect::<Result<Vec<_>, SandboxError>>()?,
        None => {
            let program = cpath(&spec.builder)?;
            vec![(program.clone(), program)]
        }
    };
    let mut args = Vec::new();
    for arg in &spec.args {
        args.push(cstring(OsStr::as_bytes(arg), "a builder argument")?);
    }
    let envp = spec
        .env
        .iter()
        .map(|(name, value)| {
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            cstring(&entry, "the environment")
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChildPlan::new(steps, builder_steps, programs, args, envp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_match_nix_2_8() {
        assert_eq!(
            passwd_contents(),
            "root:x:0:0:Nix build user:/build:/noshell\n\
             nixbld:x:1000:100:Nix build user:/build:/noshell\n\
             nobody:x:65534:65534:Nobody:/:/noshell\n"
        );
        assert_eq!(
            group_contents(),
            "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n"
        );
    }

    #[test]
    fn inside_joins_absolute_sandbox_paths_under_the_root() {
        assert_eq!(
            inside(Path::new("/s/root"), Path::new("/kiln/store")),
            PathBuf::from("/s/root/kiln/store")
        );
    }
}
