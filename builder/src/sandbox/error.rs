//! The errors of the build sandbox. Every failing system call is named with its arguments, so a
//! report such as "mount(...) failed: EPERM" says exactly which step of the setup went wrong.

use nix::errno::Errno;

/// Why a sandboxed build could not be run (a builder that runs and fails is not an error: it is
/// a [`super::SandboxOutcome`] with a non-zero status).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The [`super::SandboxSpec`] is inconsistent (paths outside the store, NUL bytes, ...).
    #[error("invalid sandbox specification: {0}")]
    InvalidSpec(String),
    /// A file-system operation of the calling process failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the paths involved.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A system call made by the calling (supervising) process failed.
    #[error("{call} failed: {errno}")]
    Syscall {
        /// The call with its arguments.
        call: String,
        /// The error number it returned.
        errno: Errno,
    },
    /// A step of the setup inside the new namespaces failed (reported by the sandbox's init).
    #[error("sandbox setup failed at {step}: {errno}")]
    Setup {
        /// The system call of the failing step, with its arguments.
        step: String,
        /// The error number it returned.
        errno: Errno,
    },
    /// The uid/gid maps of the sandbox's user namespace could not be installed.
    #[error("installing the uid/gid maps of sandbox process {pid}: {detail}")]
    IdMap {
        /// The host pid of the sandbox's init.
        pid: i32,
        /// What failed.
        detail: String,
    },
    /// The sandbox's init ended without reporting the builder's status (it was killed, or a
    /// step failed before it could report).
    #[error("the sandbox's init ended without reporting the builder's status ({0})")]
    InitLost(String),
    /// Copying the builder's output to the log sink failed.
    #[error("writing the build log: {0}")]
    Log(#[source] std::io::Error),
}

impl SandboxError {
    /// An [`SandboxError::Io`] with its context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }

    /// A [`SandboxError::Syscall`] for a call made by the supervising process.
    pub(crate) fn syscall(call: impl Into<String>, errno: Errno) -> Self {
        SandboxError::Syscall {
            call: call.into(),
            errno,
        }
    }
}
