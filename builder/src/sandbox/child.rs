//! The code that runs after `clone`, inside the new namespaces: the sandbox's init (pid 1).
//!
//! Init waits for the parent to install the uid/gid maps, performs the prepared setup steps,
//! forks the builder (pid 2), which drops to its identity and `execve`s, and then reaps every
//! process of the namespace until the builder exits. It reports the builder's wait status to
//! the parent and exits; the kernel then kills whatever the builder left behind, because the
//! pid namespace dies with its init. `PR_SET_PDEATHSIG` kills init (and so everything) if the
//! parent thread dies.
//!
//! Everything here is async-signal-safe (the parent may be multi-threaded): only system calls
//! on data prepared before the clone, no allocation.
//!
//! File descriptors in init: 0 = /dev/null, 1 and 2 = the log pipe (inherited by the builder),
//! 3 = the report pipe (close-on-exec), 4 = the sync pipe (close-on-exec), and from 5 on the
//! detached id-mapped root-file-system layers (see the `layers` module), which setup steps
//! attach and close; everything else is closed first, so that no descriptor of kiln or of
//! another concurrent build leaks into this sandbox. The builder starts with 0, 1 and 2 only.
//! In an interactive session 0, 1 and 2 stay the caller's (its terminal) and the log pipe is
//! closed.
//!
//! Init makes itself non-dumpable as soon as the parent has installed the maps (not earlier:
//! an unprivileged parent could no longer write the maps of a non-dumpable child), so its
//! `/proc/1/environ`, `/proc/1/fd` and ptrace are closed to the builder.

use std::ffi::{c_char, CString};
use std::os::fd::RawFd;

use nix::errno::Errno;

use super::step::Step;

/// Where a report record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum ReportKind {
    /// A bootstrap call of init failed (index into [`BOOTSTRAP_CALLS`]).
    Bootstrap = 1,
    /// A setup step failed (index into [`ChildPlan::setup`]).
    Setup = 2,
    /// A builder step failed (index into [`ChildPlan::builder_steps`]).
    Builder = 3,
    /// `execve` of the builder failed.
    Exec = 4,
    /// The builder exited; the value is its wait status.
    Status = 5,
}

impl ReportKind {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        [
            ReportKind::Bootstrap,
            ReportKind::Setup,
            ReportKind::Builder,
            ReportKind::Exec,
            ReportKind::Status,
        ]
        .into_iter()
        .find(|kind| *kind as u32 == raw)
    }
}

/// The size of one report record: kind (u32), index (u32), value (i32), native endian.
pub(crate) const REPORT_LEN: usize = 12;

/// The calls init makes before its setup steps, in order, as named in error reports.
pub(crate) const BOOTSTRAP_CALLS: [&str; 6] = [
    "prctl(PR_SET_PDEATHSIG, SIGKILL)",
    "fcntl(F_DUPFD_CLOEXEC) of the inherited descriptors",
    "dup2/dup3 onto descriptors 0-4 and the layers' from 5",
    "close_range(5 + layers, ~0U, 0)",
    "read(sync pipe)",
    "fork() of the builder",
];

const REPORT_FD: RawFd = 3;
const SYNC_FD: RawFd = 4;
/// The descriptor number of the first id-mapped layer in init.
pub(crate) const FIRST_LAYER_FD: RawFd = 5;
/// The most root-file-system layers one build may have.
pub(crate) const MAX_LAYERS: usize = 64;

/// One program the builder process may `execve`, with its NULL-terminated `argv`.
pub(crate) struct ExecCandidate {
    /// The program, as seen inside the sandbox.
    pub program: CString,
    /// Owns the `argv[0]` string `argv` points to.
    pub _argv0: CString,
    /// NULL-terminated `argv`: `argv[0]` of this candidate, then the shared arguments.
    pub argv: Vec<*const c_char>,
}

/// Everything the child needs, prepared by the parent before the clone.
pub(crate) struct ChildPlan {
    /// Steps performed by init, in order, ending with the builder's root in place.
    pub setup: Vec<Step>,
    /// Steps performed by the builder process after the fork, before `execve`.
    pub builder_steps: Vec<Step>,
    /// The programs tried in order (a build has one); the first that exists runs.
    pub candidates: Vec<ExecCandidate>,
    /// Owns the strings `argv[1..]` of every candidate point into.
    pub _args_storage: Vec<CString>,
    /// Owns the strings `envp` points into.
    pub _envp_storage: Vec<CString>,
    /// NULL-terminated `envp`.
    pub envp: Vec<*const c_char>,
}

impl ChildPlan {
    /// Builds the `execve` arrays; each pointer points into a `CString` owned by the plan, and
    /// moving a `CString` does not move its heap buffer. `programs` are `(program, argv[0])`.
    pub(crate) fn new(
        setup: Vec<Step>,
        builder_steps: Vec<Step>,
        programs: Vec<(CString, CString)>,
        args_storage: Vec<CString>,
        envp_storage: Vec<CString>,
    ) -> Self {
        let candidates = programs
            .into_iter()
            .map(|(program, argv0)| {
                let argv = std::iter::once(argv0.as_ptr())
                    .chain(args_storage.iter().map(|arg| arg.as_ptr()))
                    .chain(std::iter::once(std::ptr::null()))
                    .collect();
                ExecCandidate {
                    program,
                    _argv0: argv0,
                    argv,
                }
            })
            .collect();
        let envp = envp_storage
            .iter()
            .map(|var| var.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        ChildPlan {
            setup,
            builder_steps,
            candidates,
            _args_storage: args_storage,
            _envp_storage: envp_storage,
            envp,
        }
    }
}

/// The descriptors the child inherits from the parent (numbers in the parent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildFds<'a> {
    /// Write end of the report pipe.
    pub report: RawFd,
    /// Read end of the sync pipe.
    pub sync: RawFd,
    /// Write end of the log pipe.
    pub log: RawFd,
    /// `/dev/null`, the builder's stdin.
    pub devnull: RawFd,
    /// Detached id-mapped layers (at most [`MAX_LAYERS`]), moved to [`FIRST_LAYER_FD`] on.
    pub layers: &'a [RawFd],
    /// Keep the inherited descriptors 0, 1 and 2 (the caller's) for the builder.
    pub passthrough_stdio: bool,
}

fn report(fd: RawFd, kind: ReportKind, index: usize, value: i32) {
    let mut record = [0u8; REPORT_LEN];
    record[0..4].copy_from_slice(&(kind as u32).to_ne_bytes());
    // Plans hold a few hundred steps at most, far below u32::MAX.
    record[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
    record[8..12].copy_from_slice(&value.to_ne_bytes());
    // A record is smaller than PIPE_BUF, so the write is atomic. If it fails the parent still
    // sees the pipe close without a status and reports that.
    // SAFETY: the pointer and length describe `record`.
    unsafe { libc::write(fd, record.as_ptr().cast(), REPORT_LEN) };
}

fn fail(fd: RawFd, kind: ReportKind, index: usize, errno: Errno) -> ! {
    report(fd, kind, index, errno as i32);
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(127) }
}

fn check(result: libc::c_int) -> Result<libc::c_int, Errno> {
    Errno::result(result)
}

/// Moves the inherited descriptors to their fixed numbers and closes every other one.
fn arrange_fds(fds: ChildFds<'_>) -> Result<(), (usize, Errno)> {
    // `Sandbox::run` refuses more layers than MAX_LAYERS; the bound keeps this copy-free.
    let layer_count = fds.layers.len().min(MAX_LAYERS);
    // At most 64 layers: the sum stays far below i32::MAX.
    let first_free = FIRST_LAYER_FD + layer_count as RawFd;
    let dup_high = |fd: RawFd| {
        // SAFETY: duplicating a descriptor we own.
        check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first_free) }).map_err(|e| (1, e))
    };
    let report = dup_high(fds.report)?;
    let sync = dup_high(fds.sync)?;
    let log = dup_high(fds.log)?;
    let devnull = dup_high(fds.devnull)?;
    let mut layers = [0 as RawFd; MAX_LAYERS];
    for (slot, fd) in layers.iter_mut().zip(fds.layers) {
        *slot = dup_high(*fd)?;
    }
    if !fds.passthrough_stdio {
        for (from, to) in [(devnull, 0), (log, 1), (log, 2)] {
            // SAFETY: plain descriptor duplication.
            check(unsafe { libc::dup2(from, to) }).map_err(|e| (2, e))?;
        }
    }
    let fixed = [(report, REPORT_FD), (sync, SYNC_FD)].into_iter().chain(
        layers[..layer_count]
            .iter()
            .zip(FIRST_LAYER_FD..)
            .map(|(from, to)| (*from, to)),
    );
    for (from, to) in fixed {
        // SAFETY: plain descriptor duplication.
        check(unsafe { libc::dup3(from, to, libc::O_CLOEXEC) }).map_err(|e| (2, e))?;
    }
    // SAFETY: closes descriptors this process does not use; `first_free` is positive.
    check(unsafe { libc::close_range(first_free as libc::c_uint, u32::MAX, 0) })
        .map_err(|e| (3, e))?;
    Ok(())
}

/// The child's entry point right after `clone`. Never returns.
pub(crate) fn run_child(plan: &ChildPlan, fds: ChildFds<'_>) -> ! {
    if let Err(errno) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        fail(fds.report, ReportKind::Bootstrap, 0, errno);
    }
    if let Err((index, errno)) = arrange_fds(fds) {
        fail(fds.report, ReportKind::Bootstrap, index, errno);
    }
    // Wait until the parent has installed the uid/gid maps. End of file means the parent
    // gave up (or died): leave quietly.
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into `byte`.
        let n = unsafe { libc::read(SYNC_FD, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        if n < 0 {
            fail(REPORT_FD, ReportKind::Bootstrap, 4, Errno::last());
        }
        // SAFETY: `_exit` never returns.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(SYNC_FD) };

    for (index, step) in plan.setup.iter().enumerate() {
        if let Err(errno) = step.perform() {
            fail(REPORT_FD, ReportKind::Setup, index, errno);
        }
    }

    // A raw fork: the C library's `fork` takes its allocator and at-fork locks, which other
    // threads of the parent may have held at the moment of the clone (they would never be
    // released here).
    // SAFETY: this process has a single thread; the child only makes system calls.
    let builder = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if builder < 0 {
        fail(REPORT_FD, ReportKind::Bootstrap, 5, Errno::last());
    }
    if builder == 0 {
        exec_builder(plan);
    }
    // A pid always fits in a pid_t.
    supervise_namespace(builder as libc::pid_t)
}

fn exec_builder(plan: &ChildPlan) -> ! {
    for (index, step) in plan.builder_steps.iter().enumerate() {
        if let Err(errno) = step.perform() {
            fail(REPORT_FD, ReportKind::Builder, index, errno);
        }
    }
    let mut errno = Errno::ENOENT;
    for candidate in &plan.candidates {
        // SAFETY: `program`, `argv` and `envp` are NUL-terminated strings and NULL-terminated
        // arrays prepared by the parent.
        unsafe {
            libc::execve(
                candidate.program.as_ptr(),
                candidate.argv.as_ptr(),
                plan.envp.as_ptr(),
            )
        };
        errno = Errno::last();
        // As `execvp` does: a missing program (or directory) means try the next one.
        if !matches!(errno, Errno::ENOENT | Errno::ENOTDIR) {
            break;
        }
    }
    fail(REPORT_FD, ReportKind::Exec, 0, errno)
}

/// Init's life after the fork: reap everything until the builder exits, report its status.
fn supervise_namespace(builder: libc::pid_t) -> ! {
    // Init keeps nothing of the builder's stdio, so the log pipe closes when the builder's
    // processes are gone.
    for fd in 0..3 {
        // SAFETY: closing our own descriptors.
        unsafe { libc::close(fd) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for any child of init.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == builder {
            report(REPORT_FD, ReportKind::Status, 0, status);
            break;
        }
        if pid < 0 && Errno::last() != Errno::EINTR {
            break;
        }
    }
    // SAFETY: `_exit` never returns; the kernel kills the rest of the pid namespace.
    unsafe { libc::_exit(0) }
}
