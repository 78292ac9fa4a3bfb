//! One system call of the sandbox setup, prepared by the parent and performed by the child.
//!
//! The child of `clone` is a copy of a possibly multi-threaded process, so until `execve` it may
//! only do async-signal-safe work: no allocation, no locks. Every argument of every step is
//! therefore built (as a `CString`) before the clone; [`Step::perform`] only passes pointers to
//! the kernel. When a step fails the child reports its index and `errno` through a pipe and the
//! parent renders the step with [`std::fmt::Display`]: the call and its arguments.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

/// One prepared system call (or a tightly bound pair, named as such).
#[derive(Debug)]
pub(crate) enum Step {
    /// `mount(source, target, fstype, flags, data)`.
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: MsFlags,
        data: Option<CString>,
    },
    /// `mkdir(path, mode)`; an existing directory is accepted, a symbolic link in its place
    /// (from a `rootfs` layer) is replaced by the directory. The steps make each component of
    /// a path in turn, so no path they use below the root goes through a link.
    Mkdir { path: CString, mode: u32 },
    /// `chmod(path, mode)`.
    Chmod { path: CString, mode: u32 },
    /// `open(path, O_CREAT | O_NOFOLLOW)` + `close`: an empty file to bind-mount a file over;
    /// a symbolic link in its place is replaced (a mount would follow it out of the root).
    CreateFile { path: CString },
    /// `open(O_NOFOLLOW)` + `write` + `close`; with `keep_existing`, an existing file (or
    /// link) is left alone, else a symbolic link in its place is replaced, never followed.
    WriteFile {
        path: CString,
        contents: Vec<u8>,
        keep_existing: bool,
    },
    /// `symlink(target, link)`.
    Symlink { target: CString, link: CString },
    /// `socket(AF_INET)` + `ioctl(SIOCSIFFLAGS, "lo", IFF_UP)`: loopback up in a new net ns.
    LoopbackUp,
    /// `chdir(path)`.
    Chdir { path: CString },
    /// `pivot_root(new_root, put_old)`.
    PivotRoot { new_root: CString, put_old: CString },
    /// `umount2(target, flags)`.
    Umount { target: CString, flags: MntFlags },
    /// `sethostname(name)`.
    SetHostname { name: CString },
    /// `setdomainname(name)`.
    SetDomainname { name: CString },
    /// `sigprocmask(SIG_SETMASK, {})` + `signal(n, SIG_DFL)` for every signal: the builder
    /// starts with the default dispositions (Rust ignores `SIGPIPE`).
    ResetSignals,
    /// `setsid()`.
    Setsid,
    /// `setgroups(0, NULL)`.
    ClearGroups,
    /// `setresgid(gid, gid, gid)`.
    SetGid { gid: u32 },
    /// `setresuid(uid, uid, uid)`.
    SetUid { uid: u32 },
    /// `prctl(PR_CAPBSET_DROP, n)` for every capability `n` not in `keep` (bit `n`), then
    /// `prctl(PR_CAP_AMBIENT_CLEAR_ALL)`. Made while the process still has `CAP_SETPCAP`.
    LimitBoundingSet { keep: u64 },
    /// `capset`: effective and permitted become `keep` (of what is still permitted),
    /// inheritable becomes empty.
    SetCapabilities { keep: u64 },
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    NoNewPrivileges,
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`, again after a change of ids (which clears it).
    ParentDeathSignal,
    /// `prctl(PR_SET_DUMPABLE, 0)`: the process's `/proc` files belong to root and no one
    /// without `CAP_SYS_PTRACE` may ptrace it.
    NotDumpable,
    /// `seccomp(SECCOMP_SET_MODE_FILTER, 0, program)`; `name` says which filter it is.
    Seccomp {
        name: &'static str,
        program: Vec<seccompiler::sock_filter>,
    },
    /// `move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)` + `close(fd)`: attach a
    /// detached mount inherited from the parent.
    MoveMount { fd: RawFd, target: CString },
    /// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE)` +
    /// `dup3(.., fd, O_CLOEXEC)`: a detached copy of a host tree at a fixed descriptor, to be
    /// attached with [`Step::MoveMount`] after `pivot_root`, inside the new root.
    OpenTree { path: CString, fd: RawFd },
    /// `umask(mask)`.
    Umask { mask: u32 },
    /// `unshare(CLONE_NEWCGROUP)`: a cgroup namespace rooted at the build's own group.
    UnshareCgroupNamespace,
}

fn show(value: &CStr) -> String {
    format!("{:?}", value.to_string_lossy())
}

fn show_opt(value: &Option<CString>) -> String {
    value.as_deref().map_or_else(|| "NULL".to_owned(), show)
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => write!(
                f,
                "mount({}, {}, {}, {:?}, {})",
                show_opt(source),
                show(target),
                show_opt(fstype),
                flags,
                show_opt(data)
            ),
            Step::Mkdir { path, mode } => write!(f, "mkdir({}, {mode:#o})", show(path)),
            Step::Chmod { path, mode } => write!(f, "chmod({}, {mode:#o})", show(path)),
            Step::CreateFile { path } => {
                write!(f, "open({}, O_WRONLY|O_CREAT, 0644)", show(path))
            }
            Step::WriteFile { path, .. } => write!(f, "open+write({}, 0644)", show(path)),
            Step::Symlink { target, link } => {
                write!(f, "symlink({}, {})", show(target), show(link))
            }
            Step::LoopbackUp => write!(
                f,
                "socket(AF_INET, SOCK_DGRAM) + ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP|IFF_RUNNING)"
            ),
            Step::Chdir { path } => write!(f, "chdir({})", show(path)),
            Step::PivotRoot { new_root, put_old } => {
                write!(f, "pivot_root({}, {})", show(new_root), show(put_old))
            }
            Step::Umount { target, flags } => {
                write!(f, "umount2({}, {:?})", show(target), flags)
            }
            Step::SetHostname { name } => write!(f, "sethostname({})", show(name)),
            Step::SetDomainname { name } => write!(f, "setdomainname({})", show(name)),
            Step::ResetSignals => write!(f, "sigprocmask(SIG_SETMASK, {{}}) + signal(*, SIG_DFL)"),
            Step::Setsid => write!(f, "setsid()"),
            Step::ClearGroups => write!(f, "setgroups(0, NULL)"),
            Step::SetGid { gid } => write!(f, "setresgid({gid}, {gid}, {gid})"),
            Step::SetUid { uid } => write!(f, "setresuid({uid}, {uid}, {uid})"),
            Step::LimitBoundingSet { keep } => write!(
                f,
                "prctl(PR_CAPBSET_DROP, every capability but {keep:#x}) + prctl(PR_CAP_AMBIENT_CLEAR_ALL)"
            ),
            Step::SetCapabilities { keep } => {
                write!(f, "capset(effective = permitted = {keep:#x}, inheritable = 0)")
            }
            Step::NoNewPrivileges => write!(f, "prctl(PR_SET_NO_NEW_PRIVS, 1)"),
            Step::ParentDeathSignal => write!(f, "prctl(PR_SET_PDEATHSIG, SIGKILL)"),
            Step::NotDumpable => write!(f, "prctl(PR_SET_DUMPABLE, 0)"),
            Step::Seccomp { name, program } => write!(
                f,
                "seccomp(SECCOMP_SET_MODE_FILTER, 0, {name}: {} instructions)",
                program.len()
            ),
            Step::MoveMount { fd, target } => write!(
                f,
                "move_mount({fd}, \"\", AT_FDCWD, {}, MOVE_MOUNT_F_EMPTY_PATH)",
                show(target)
            ),
            Step::OpenTree { path, fd } => write!(
                f,
                "open_tree(AT_FDCWD, {}, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE) onto descriptor {fd}",
                show(path)
            ),
            Step::Umask { mask } => write!(f, "umask({mask:#o})"),
            Step::UnshareCgroupNamespace => write!(f, "unshare(CLONE_NEWCGROUP)"),
        }
    }
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct` (linux/capability.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two `CapData` words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn check(result: libc::c_int) -> Result<(), Errno> {
    Errno::result(result).map(drop)
}

fn raw_syscall(call: impl FnOnce() -> libc::c_long) -> Result<(), Errno> {
    if call() < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits as libc::mode_t)
}

impl Step {
    /// Performs the step. Async-signal-safe: no allocation, only system calls on data
    /// prepared before the clone.
    pub(crate) fn perform(&self) -> Result<(), Errno> {
        match self {
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => nix::mount::mount(
                source.as_deref(),
                target.as_c_str(),
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            ),
            Step::Mkdir { path, mode: bits } => {
                match nix::unistd::mkdir(path.as_c_str(), mode(*bits)) {
                    Err(Errno::EEXIST) if remove_symlink(path)? => {
                        nix::unistd::mkdir(path.as_c_str(), mode(*bits))
                    }
                    Err(Errno::EEXIST) => Ok(()),
                    other => other,
                }
            }
            Step::Chmod { path, mode: bits } => {
                // SAFETY: `path` is a valid NUL-terminated string.
                check(unsafe { libc::chmod(path.as_ptr(), *bits as libc::mode_t) })
            }
            Step::CreateFile { path } => {
                let fd = open_no_follow(path, libc::O_WRONLY | libc::O_CREAT)?;
                // SAFETY: `fd` was just opened by us.
                unsafe { libc::close(fd) };
                Ok(())
            }
            Step::WriteFile {
                path,
                contents,
                keep_existing,
            } => write_file(path, contents, *keep_existing),
            Step::Symlink { target, link } => {
                // SAFETY: both are valid NUL-terminated strings.
                check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
            }
            Step::LoopbackUp => loopback_up(),
            Step::Chdir { path } => nix::unistd::chdir(path.as_c_str()),
            Step::PivotRoot { new_root, put_old } => {
                nix::unistd::pivot_root(new_root.as_c_str(), put_old.as_c_str())
            }
            Step::Umount { target, flags } => nix::mount::umount2(target.as_c_str(), *flags),
            Step::SetHostname { name } => {
                // SAFETY: pointer and length describe `name`'s bytes.
                check(unsafe { libc::sethostname(name.as_ptr(), name.as_bytes().len()) })
            }
            Step::SetDomainname { name } => {
                // SAFETY: pointer and length describe `name`'s bytes.
                check(unsafe { libc::setdomainname(name.as_ptr(), name.as_bytes().len()) })
            }
            Step::ResetSignals => reset_signals(),
            Step::Setsid => nix::unistd::setsid().map(drop),
            // The C library's wrappers of the three calls below broadcast the change to every
            // thread it believes exists (the parent's, which this process does not have) and
            // wait for them: the raw system calls change this process only, as wanted.
            Step::ClearGroups => raw_syscall(|| {
                // SAFETY: an empty group list.
                unsafe {
                    libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
                }
            }),
            Step::SetGid { gid } => raw_syscall(|| {
                // SAFETY: integer arguments only.
                unsafe { libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid) }
            }),
            Step::SetUid { uid } => raw_syscall(|| {
                // SAFETY: integer arguments only.
                unsafe { libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid) }
            }),
            Step::LimitBoundingSet { keep } => limit_bounding_set(*keep),
            Step::SetCapabilities { keep } => set_capabilities(*keep),
            Step::NoNewPrivileges => {
                // SAFETY: plain prctl with integer arguments.
                check(unsafe {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0)
                })
            }
            Step::ParentDeathSignal => {
                // SAFETY: plain prctl with integer arguments.
                check(unsafe {
                    libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGKILL as libc::c_ulong,
                        0,
                        0,
                        0,
                    )
                })
            }
            Step::NotDumpable => {
                // SAFETY: plain prctl with integer arguments.
                check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) })
            }
            Step::Seccomp { program, .. } => install_seccomp(program),
            Step::OpenTree { path, fd } => {
                // SAFETY: `path` is a valid NUL-terminated string; the result is a new
                // descriptor of this process.
                let opened = unsafe {
                    libc::syscall(
                        libc::SYS_open_tree,
                        libc::AT_FDCWD,
                        path.as_ptr(),
                        libc::OPEN_TREE_CLONE
                            | libc::OPEN_TREE_CLOEXEC
                            | libc::AT_RECURSIVE as libc::c_uint,
                    )
                };
                if opened < 0 {
                    return Err(Errno::last());
                }
                // Descriptor numbers fit in an int.
                let opened = opened as libc::c_int;
                if opened == *fd {
                    return Ok(());
                }
                // SAFETY: plain descriptor duplication onto a number init keeps free.
                let moved = check(unsafe { libc::dup3(opened, *fd, libc::O_CLOEXEC) });
                // SAFETY: closing the descriptor just opened.
                unsafe { libc::close(opened) };
                moved
            }
            Step::MoveMount { fd, target } => {
                // SAFETY: `fd` is a detached mount this process inherited; `target` and the
                // empty path are valid NUL-terminated strings.
                let moved = raw_syscall(|| unsafe {
                    libc::syscall(
                        libc::SYS_move_mount,
                        *fd,
                        c"".as_ptr(),
                        libc::AT_FDCWD,
                        target.as_ptr(),
                        libc::MOVE_MOUNT_F_EMPTY_PATH,
                    )
                });
                // SAFETY: the descriptor is ours and no longer needed.
                unsafe { libc::close(*fd) };
                moved
            }
            Step::Umask { mask } => {
                nix::sys::stat::umask(mode(*mask));
                Ok(())
            }
            Step::UnshareCgroupNamespace => {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            }
        }
    }
}

/// `open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0644)`; a symbolic link at `path` is removed
/// and the open tried again (what a link pointed at is never touched).
fn open_no_follow(path: &CStr, flags: libc::c_int) -> Result<libc::c_int, Errno> {
    let open = || {
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            )
        };
        Errno::result(fd)
    };
    match open() {
        Err(Errno::ELOOP) if remove_symlink(path)? => open(),
        other => other,
    }
}

/// Removes `path` if it is a symbolic link (returning true); anything else stays.
fn remove_symlink(path: &CStr) -> Result<bool, Errno> {
    // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
    let mut status: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `status` a writable `stat`.
    check(unsafe { libc::lstat(path.as_ptr(), &mut status) })?;
    if status.st_mode & libc::S_IFMT != libc::S_IFLNK {
        return Ok(false);
    }
    // SAFETY: `path` is a valid NUL-terminated string.
    check(unsafe { libc::unlink(path.as_ptr()) })?;
    Ok(true)
}

fn write_file(path: &CStr, contents: &[u8], keep_existing: bool) -> Result<(), Errno> {
    let exclusive = if keep_existing {
        libc::O_EXCL
    } else {
        libc::O_TRUNC
    };
    let fd = match open_no_follow(path, libc::O_WRONLY | libc::O_CREAT | exclusive) {
        // O_EXCL never follows a link: whatever is there is kept.
        Err(Errno::EEXIST) if keep_existing => return Ok(()),
        other => other?,
    };
    let mut written = 0;
    let mut result = Ok(());
    while written < contents.len() {
        let rest = &contents[written..];
        // SAFETY: the pointer and length describe `rest`.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            result = Err(Errno::last());
            break;
        }
        // `n` is non-negative here, so the conversion cannot lose anything.
        written += n as usize;
    }
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    result
}

fn loopback_up() -> Result<(), Errno> {
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    Errno::result(fd)?;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: `request` is a valid ifreq naming "lo"; the kernel fills in its flags.
    let mut result = check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut request) });
    if result.is_ok() {
        // SAFETY: SIOCGIFFLAGS initialised the flags member of the union.
        unsafe {
            request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        // SAFETY: as above.
        result = check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &request) });
    }
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    result
}

fn reset_signals() -> Result<(), Errno> {
    // SAFETY: an empty signal set is initialised by sigemptyset before use.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        check(libc::sigprocmask(
            libc::SIG_SETMASK,
            &empty,
            std::ptr::null_mut(),
        ))?;
        for signal in 1..32 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                // Signals the C library reserves for itself may refuse; that is harmless.
                libc::signal(signal, libc::SIG_DFL);
            }
        }
    }
    Ok(())
}

fn limit_bounding_set(keep: u64) -> Result<(), Errno> {
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: plain prctl with integer arguments.
        let dropped = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if dropped < 0 {
            match Errno::last() {
                // Past the kernel's last capability.
                Errno::EINVAL => break,
                errno => return Err(errno),
            }
        }
    }
    // SAFETY: as above.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

fn set_capabilities(keep: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and a two-element data array as the v3 ABI requires.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    Errno::result(got)?;
    for (word, entry) in data.iter_mut().enumerate() {
        // Splitting the 64-bit set into the two 32-bit words of the ABI.
        let wanted = (keep >> (32 * word)) as u32;
        entry.permitted &= wanted;
        entry.effective = entry.permitted;
        entry.inheritable = 0;
    }
    // SAFETY: as above.
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    Errno::result(set).map(drop)
}

/// `struct sock_fprog` (linux/filter.h).
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const seccompiler::sock_filter,
}

fn install_seccomp(program: &[seccompiler::sock_filter]) -> Result<(), Errno> {
    let prog = SockFprog {
        // The compiler refuses programs longer than BPF_MAXINSNS (4096).
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr(),
    };
    raw_syscall(|| {
        // SAFETY: `prog` describes `program`, which outlives the call; the kernel copies it.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0usize,
                &prog as *const SockFprog,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> CString {
        CString::new(text).expect("test strings have no NUL")
    }

    #[test]
    fn steps_name_the_syscall_and_its_arguments() {
        let bind = Step::Mount {
            source: Some(c("/host/in")),
            target: c("/root/kiln/store/in"),
            fstype: None,
            flags: MsFlags::MS_BIND | MsFlags::MS_REC,
            data: None,
        };
        assert_eq!(
            bind.to_string(),
            "mount(\"/host/in\", \"/root/kiln/store/in\", NULL, MsFlags(MS_BIND | MS_REC), NULL)"
        );
        assert_eq!(
            Step::Mkdir {
                path: c("/r/tmp"),
                mode: 0o1777
            }
            .to_string(),
            "mkdir(\"/r/tmp\", 0o1777)"
        );
        assert_eq!(
            Step::SetUid { uid: 1000 }.to_string(),
            "setresuid(1000, 1000, 1000)"
        );
    }

    #[test]
    fn links_in_the_root_are_replaced_never_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("outside");
        std::fs::write(outside.join("victim"), b"host file\n").expect("victim");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("root");
        let link = |name: &str, target: &std::path::Path| {
            std::os::unix::fs::symlink(target, root.join(name)).expect("symlink");
            c(root.join(name).to_str().expect("utf-8 temp path"))
        };
        let etc = link("etc", &outside);
        Step::Mkdir {
            path: etc,
            mode: 0o755,
        }
        .perform()
        .expect("mkdir over a link");
        assert!(root.join("etc").is_dir() && !root.join("etc").is_symlink());
        let passwd = link("etc/passwd", &outside.join("victim"));
        Step::WriteFile {
            path: passwd.clone(),
            contents: b"root:x:0:0::/:/bin/sh\n".to_vec(),
            keep_existing: false,
        }
        .perform()
        .expect("write over a link");
        assert_eq!(
            std::fs::read(root.join("etc/passwd")).expect("read"),
            b"root:x:0:0::/:/bin/sh\n"
        );
        let resolv = link("etc/resolv.conf", &outside.join("victim"));
        Step::CreateFile { path: resolv }
            .perform()
            .expect("create over a link");
        assert!(!root.join("etc/resolv.conf").is_symlink());
        let hosts = link("etc/hosts", &outside.join("victim"));
        Step::WriteFile {
            path: hosts,
            contents: b"127.0.0.1 localhost\n".to_vec(),
            keep_existing: true,
        }
        .perform()
        .expect("keep a link");
        assert!(root.join("etc/hosts").is_symlink(), "kept, not followed");
        assert_eq!(
            std::fs::read(outside.join("victim")).expect("victim"),
            b"host file\n",
            "nothing outside the root was written"
        );
        assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 1);
    }

    #[test]
    fn write_file_keeps_or_replaces_existing_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("passwd");
        let path_c = c(path.to_str().expect("utf-8 temp path"));
        Step::WriteFile {
            path: path_c.clone(),
            contents: b"first\n".to_vec(),
            keep_existing: true,
        }
        .perform()
        .expect("create");
        Step::WriteFile {
            path: path_c.clone(),
            contents: b"second\n".to_vec(),
            keep_existing: true,
        }
        .perform()
        .expect("keep");
        assert_eq!(std::fs::read(&path).expect("read"), b"first\n");
        Step::WriteFile {
            path: path_c,
            contents: b"third\n".to_vec(),
            keep_existing: false,
        }
        .perform()
        .expect("replace");
        assert_eq!(std::fs::read(&path).expect("read"), b"third\n");
    }
}
