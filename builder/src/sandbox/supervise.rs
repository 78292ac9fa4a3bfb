//! The parent's side of a running sandbox: copy the builder's output to the log sink, collect
//! the init's reports, enforce the timeout and the silence timeout by killing the init (which
//! takes the whole pid namespace with it), and reap the init.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::child::{ReportKind, REPORT_LEN};
use super::error::SandboxError;

/// One record from the init (see the `child` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    pub kind: ReportKind,
    pub index: usize,
    pub value: i32,
}

/// What the supervision saw.
#[derive(Debug, Default)]
pub(crate) struct Supervised {
    pub reports: Vec<Report>,
    pub timed_out: bool,
    pub silent_timed_out: bool,
}

/// The sandbox's init, killed and reaped on drop unless [`InitProcess::reap`] ran.
#[derive(Debug)]
pub(crate) struct InitProcess {
    pid: Pid,
    reaped: bool,
}

impl InitProcess {
    pub(crate) fn new(pid: Pid) -> Self {
        InitProcess { pid, reaped: false }
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Kills the init with SIGKILL; the kernel then kills every process of its pid namespace.
    pub(crate) fn kill(&self) {
        // ESRCH (already gone) is the only expected failure and needs nothing.
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    /// Waits for the init to end and returns how it ended.
    pub(crate) fn reap(&mut self) -> Result<WaitStatus, SandboxError> {
        loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                Ok(status) => {
                    self.reaped = true;
                    return Ok(status);
                }
                Err(errno) => {
                    self.reaped = true;
                    return Err(SandboxError::syscall(
                        format!("waitpid({})", self.pid),
                        errno,
                    ));
                }
            }
        }
    }
}

impl Drop for InitProcess {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.reap();
        }
    }
}

fn remaining(deadline: Option<Instant>, now: Instant) -> Option<Duration> {
    deadline.map(|deadline| deadline.saturating_duration_since(now))
}

fn read_into(file: &mut File, buffer: &mut [u8]) -> Result<usize, SandboxError> {
    loop {
        match file.read(buffer) {
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(SandboxError::io("reading from the sandbox", err)),
            Ok(n) => return Ok(n),
        }
    }
}

/// Runs until both the log pipe and the report pipe are closed (the init is gone and so is
/// every process of the namespace), killing the init when a time limit passes.
pub(crate) fn supervise(
    init: &InitProcess,
    log_read: OwnedFd,
    report_read: OwnedFd,
    sink: &mut dyn Write,
    timeout: Option<Duration>,
    max_silent_time: Option<Duration>,
) -> Result<Supervised, SandboxError> {
    let start = Instant::now();
    let mut log = Some(File::from(log_read));
    let mut reports = Some(File::from(report_read));
    let mut pending = Vec::new();
    let mut supervised = Supervised::default();
    let mut last_output = start;
    let mut killed = false;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut sink_error = None;

    while log.is_some() || reports.is_some() {
        let now = Instant::now();
        let mut wait = None;
        if !killed {
            let hard = remaining(timeout.map(|t| start + t), now);
            let silent = remaining(max_silent_time.map(|t| last_output + t), now);
            if hard == Some(Duration::ZERO) || silent == Some(Duration::ZERO) {
                supervised.timed_out = hard == Some(Duration::ZERO);
                supervised.silent_timed_out = !supervised.timed_out;
                init.kill();
                killed = true;
                continue;
            }
            wait = [hard, silent].into_iter().flatten().min();
        }
        let timeout_ms = wait.map_or(-1, |w| {
            i32::try_from(w.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
        });
        let mut pollfds = Vec::with_capacity(2);
        for file in [&log, &reports].into_iter().flatten() {
            pollfds.push(libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `pollfds` is a valid array of `pollfds.len()` entries.
        let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as _, timeout_ms) };
        if ready < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                errno => {
                    init.kill();
                    return Err(SandboxError::syscall("poll(log and report pipes)", errno));
                }
            }
        }
        let readable = |fd: i32| {
            pollfds.iter().any(|p| {
                p.fd == fd && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
            })
        };
        if let Some(file) = log.as_mut() {
            if readable(file.as_raw_fd()) {
                let n = read_into(file, &mut buffer)?;
                if n == 0 {
                    log = None;
                } else {
                    last_output = Instant::now();
                    if sink_error.is_none() {
                        if let Err(err) = sink.write_all(&buffer[..n]) {
                            sink_error = Some(err);
                            init.kill();
                            killed = true;
                        }
                    }
                }
            }
        }
        if let Some(file) = reports.as_mut() {
            if readable(file.as_raw_fd()) {
                let n = read_into(file, &mut buffer)?;
                if n == 0 {
                    reports = None;
                } else {
                    pending.extend_from_slice(&buffer[..n]);
                }
            }
        }
    }
    if let Some(err) = sink_error {
        return Err(SandboxError::Log(err));
    }
    sink.flush().map_err(SandboxError::Log)?;
    for record in pending.chunks_exact(REPORT_LEN) {
        let word = |range: std::ops::Range<usize>| {
            let mut bytes = [0u8; 4];
            bytes.copy_from_slice(&record[range]);
            bytes
        };
        if let Some(kind) = ReportKind::from_raw(u32::from_ne_bytes(word(0..4))) {
            supervised.reports.push(Report {
                kind,
                index: u32::from_ne_bytes(word(4..8)) as usize,
                value: i32::from_ne_bytes(word(8..12)),
            });
        }
    }
    Ok(supervised)
}
