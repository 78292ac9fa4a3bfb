//! The Linux build sandbox: runs one builder process in fresh user, mount, pid, ipc, uts and
//! (unless the build may use the network) net namespaces, on a root that holds only what the
//! build may see: its inputs read-only at their logical store paths, `/build`, `/tmp`, a
//! minimal `/dev`, a fresh `/proc` and Nix's `/etc/passwd`, `/etc/group` and `/etc/hosts`.
//!
//! The pieces: [`SandboxSpec`] says what to run ([`spec`]); [`IdMapPolicy`] who the builder is
//! ([`idmap`]); the `plan` module turns the spec into prepared system calls which the
//! sandbox's init performs after `clone` (the `child` module, async-signal-safe because kiln
//! is multi-threaded); the `supervise` module copies the log and enforces the time limits.
//!
//! Outputs: the logical store directory inside the sandbox is a bind mount of a staging
//! directory next to the outputs' host paths (`<store>/.kiln-sandbox-<first output name>`), so
//! the builder can create each output as a file, a directory or a symlink. When the build ends
//! (successfully or not) every output the builder created is renamed, on the same file system,
//! to its host path, and the staging directory is deleted. Whether a build succeeded, and what
//! to do with partial outputs, is the caller's decision.
//!
//! Who the builder is and what it may do: see the `idmap` module (when kiln is root the build
//! runs under an unprivileged host id range of its own; a plain build is `nixbld` without
//! capabilities, a root-file-system build is root of its namespace with file capabilities
//! only), the `seccomp` module (system calls refused) and the `layers` module (id-mapped
//! root-file-system layers). When kiln is root, the host side the builder writes is handed to
//! its ids before the clone: the build directory (recursively), the overlay's upper and work
//! directories, and the staging store directory, which stays owned by the store's owner with
//! the builder's group and mode 1775, as in Nix. Host paths given to the sandbox (inputs,
//! layers, the build directory and their parents) must be reachable by those unprivileged
//! ids: a directory only root may search hides what is below it.
//!
//! An interactive session (`kiln shell`, [`ShellSession`]) runs in the same sandbox with what
//! the user asks for added: no outputs and no `/build`; the caller's stdin, stdout and stderr
//! (no new terminal session, so its job control works; see the `terminal` module); a private
//! `/tmp`; host paths bound at paths resolved inside the new root after `pivot_root`, cloned
//! with `open_tree` by init (unprivileged kiln) or id-mapped by the parent (kiln as root, so
//! that root inside writes there as root); the caller's own ids when kiln is unprivileged.
//!
//! Every process of a build dies with it: the builder runs as pid 2 under a small init (pid 1)
//! that reaps everything and exits when the builder exits, which makes the kernel kill the rest
//! of the pid namespace; a timeout kills the init; the death of the thread that started the
//! sandbox kills the init (`PR_SET_PDEATHSIG`). Init and everything under it run in a control
//! group of their own with the build's memory and process limits (the `cgroup` module), and in
//! a cgroup namespace rooted there. [`Sandbox::run`] blocks its thread until the
//! init is reaped, so that thread only dies early when the whole kiln process does.

mod cgroup;
mod child;
mod env;
mod error;
mod id_slots;
mod idmap;
mod layers;
mod plan;
mod seccomp;
mod spec;
mod step;
mod supervise;
mod terminal;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_local_store::fs_tree::delete_tree;
use nix::fcntl::OFlag;
use nix::unistd::{pipe2, Pid};

pub use cgroup::{physical_memory, ResourceLimits, DEFAULT_MAX_BUILD_PIDS};
pub use env::{nix_build_env, NixEnvParams, HOMELESS_SHELTER, SANDBOX_BUILD_DIR};
pub use error::SandboxError;
pub use id_slots::{FIRST_HOST_ID, SLOT_COUNT, SLOT_DIR, SLOT_SIZE};
pub use idmap::{
    find_subid_range, IdMapPolicy, IdMapping, SubIdRange, DEFAULT_RANGE, NIXBLD_GID, NIXBLD_UID,
    ROOTFS_CAPABILITIES,
};
pub use spec::{Bind, LogSink, RootFs, SandboxSpec, ShellSession, StoreMount};

use cgroup::BuildCgroup;
use child::{ChildFds, ReportKind, BOOTSTRAP_CALLS};
use plan::StagingDirs;
use supervise::{InitProcess, Report};

/// How the builder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal (this number) killed it.
    Signaled(i32),
}

/// The result of a sandboxed build that ran (its builder may still have failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOutcome {
    /// How the builder ended; `None` when kiln killed the sandbox first (time limits, log
    /// errors).
    pub status: Option<BuilderStatus>,
    /// The build ran longer than [`SandboxSpec::timeout`] and was killed.
    pub timed_out: bool,
    /// The build was silent longer than [`SandboxSpec::max_silent_time`] and was killed.
    pub silent_timed_out: bool,
    /// Wall time from the start of the setup to the end of the last process.
    pub duration: Duration,
    /// The kernel killed a process of the build because the build reached its memory limit.
    pub memory_limit_hit: bool,
    /// Why the resource limits asked for could not be applied (the build ran without them).
    pub limits_not_applied: Option<String>,
}

impl SandboxOutcome {
    /// Whether the builder exited with status 0 within its limits.
    pub fn success(&self) -> bool {
        self.status == Some(BuilderStatus::Exited(0)) && !self.timed_out && !self.silent_timed_out
    }
}

/// One build, checked and ready to run.
#[derive(Debug)]
pub struct Sandbox {
    spec: SandboxSpec,
    mapping: IdMapping,
}

/// The host staging directory of one build (see [`plan::StagingDirs`]); deleted on drop.
struct Staging {
    dir: PathBuf,
    store: PathBuf,
}

impl Staging {
    fn create(spec: &SandboxSpec, idmapped_layers: usize) -> Result<Self, SandboxError> {
        let (parent, name) = spec.staging_location();
        let dir = parent.join(name);
        if std::fs::symlink_metadata(&dir).is_ok() {
            delete_tree(&dir)
                .map_err(|err| SandboxError::io(format!("removing {}", dir.display()), err))?;
        }
        let staging = Staging {
            store: dir.join(plan::STAGING_STORE),
            dir,
        };
        let mut dirs = vec![
            staging.dir.clone(),
            staging.dir.join(plan::STAGING_ROOT),
            staging.store.clone(),
            staging.dir.join(plan::STAGING_BUILD),
        ];
        if matches!(spec.root, RootFs::Overlay { .. }) {
            dirs.push(staging.dir.join(plan::STAGING_OVERLAY));
        }
        if idmapped_layers > 0 {
            dirs.push(staging.dir.join("layers"));
        }
        dirs.extend(
            (0..idmapped_layers).map(|index| staging.dir.join(plan::layer_mount_point(index))),
        );
        for path in &dirs {
            std::fs::create_dir(path)
                .map_err(|err| SandboxError::io(format!("creating {}", path.display()), err))?;
        }
        std::fs::set_permissions(&staging.store, std::fs::Permissions::from_mode(0o1775))
            .map_err(|err| SandboxError::io(format!("chmod {}", staging.store.display()), err))?;
        Ok(staging)
    }

    /// Moves each output the builder created to its host path.
    fn collect_outputs(&self, spec: &SandboxSpec) -> Result<(), SandboxError> {
        for output in &spec.outputs {
            let name = spec.store_entry_name(&output.logical_path)?;
            let built = self.store.join(name);
            if let Ok(metadata) = std::fs::symlink_metadata(&built) {
                move_path(&built, &output.host_path, &metadata)?;
            }
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: a leftover staging directory is removed by the next build of the
        // same output, which holds the same lock.
        let _ = delete_tree(&self.dir);
    }
}

/// Renames `from` to `to`; a read-only directory is made writable for the rename (its `..`
/// changes) when kiln is not root.
fn move_path(from: &Path, to: &Path, metadata: &std::fs::Metadata) -> Result<(), SandboxError> {
    let rename = || {
        std::fs::rename(from, to).map_err(|err| {
            SandboxError::io(
                format!("moving output {} to {}", from.display(), to.display()),
                err,
            )
        })
    };
    let needs_write = metadata.is_dir()
        && metadata.mode() & 0o200 == 0
        && !nix::unistd::Uid::effective().is_root();
    if !needs_write {
        return rename();
    }
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|err| SandboxError::io(format!("chmod {}", path.display()), err))
    };
    chmod(from, metadata.mode() | 0o200)?;
    rename()?;
    chmod(to, metadata.mode())
}

fn open_sink(log: LogSink) -> Result<Box<dyn Write + Send>, SandboxError> {
    Ok(match log {
        LogSink::File(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|err| SandboxError::io(format!("opening log {}", path.display()), err))?,
        ),
        LogSink::Writer(writer) => writer,
        LogSink::Discard => Box::new(std::io::sink()),
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|errno| SandboxError::syscall("pipe2(O_CLOEXEC)", errno))
}

impl Sandbox {
    /// Checks `spec` and resolves its id mapping.
    pub fn new(spec: SandboxSpec) -> Result<Self, SandboxError> {
        spec.validate()?;
        let mapping = IdMapping::resolve(&spec.id_map)?;
        Ok(Sandbox { spec, mapping })
    }

    /// The id mapping this sandbox will install.
    pub fn id_mapping(&self) -> &IdMapping {
        &self.mapping
    }

    /// Runs the build to its end; returns how the builder ended. Setup failures are errors
    /// naming the failing system call.
    pub fn run(self) -> Result<SandboxOutcome, SandboxError> {
        let start = Instant::now();
        let Sandbox { mut spec, mapping } = self;
        let lower_layers = match &spec.root {
            RootFs::Overlay { lower_layers, .. } if mapping.needs_idmapped_layers() => {
                lower_layers.clone()
            }
            _ => Vec::new(),
        };
        // A session run by root sees its binds through id-mapped mounts too, so that what it
        // writes there belongs to the invoking user (see the `layers` module).
        let idmapped_binds = spec.shell.is_some() && mapping.needs_idmapped_layers();
        let mut trees: Vec<(PathBuf, bool)> =
            lower_layers.iter().map(|l| (l.clone(), true)).collect();
        if let (true, Some(session)) = (idmapped_binds, &spec.shell) {
            trees.extend(
                session
                    .binds
                    .iter()
                    .map(|b| (b.source.clone(), b.read_only)),
            );
        }
        let layer_mounts = if trees.is_empty() {
            Vec::new()
        } else {
            layers::idmapped_trees(&trees, &mapping)?
        };
        let staging = Staging::create(&spec, lower_layers.len())?;
        plan::create_input_mount_points(&spec, &staging.store)?;
        hand_over_to_builder(&spec, &mapping, &staging)?;
        let child_plan = plan::build_plan(
            &spec,
            &mapping,
            &StagingDirs {
                dir: &staging.dir,
                idmapped_layers: lower_layers.len(),
                idmapped_binds,
            },
            seccomp::builder_filters()?,
        )?;
        let layer_fds: Vec<RawFd> = layer_mounts.iter().map(AsRawFd::as_raw_fd).collect();
        let mut sink = open_sink(std::mem::take(&mut spec.log))?;
        let (cgroup, limits_not_applied) = match BuildCgroup::create(&spec.limits) {
            Ok(cgroup) => (cgroup, None),
            Err(reason) => (None, Some(reason)),
        };
        let (report_read, report_write) = pipe()?;
        let (sync_read, sync_write) = pipe()?;
        let (log_read, log_write) = pipe()?;
        let devnull =
            File::open("/dev/null").map_err(|err| SandboxError::io("opening /dev/null", err))?;
        let fds = ChildFds {
            report: report_write.as_raw_fd(),
            sync: sync_read.as_raw_fd(),
            log: log_write.as_raw_fd(),
            devnull: devnull.as_raw_fd(),
            layers: &layer_fds,
            passthrough_stdio: spec.shell.is_some(),
        };
        // A session on the caller's terminal: kiln ignores the terminal's interrupt and quit
        // keys while it runs (they reach the session's foreground processes) and takes the
        // terminal back afterwards.
        let _terminal = spec
            .shell
            .as_ref()
            .map(|_| terminal::SessionTerminal::claim());

        let mut flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS;
        if !spec.network {
            flags |= libc::CLONE_NEWNET;
        }
        // A fork-like clone (no new stack): the child continues here on a copy of this stack
        // and only runs `run_child`, which is async-signal-safe.
        // SAFETY: see above; the child never returns from `run_child`.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid == 0 {
            child::run_child(&child_plan, fds);
        }
        if pid < 0 {
            return Err(SandboxError::syscall(
                format!("clone({})", describe_clone_flags(spec.network)),
                nix::errno::Errno::last(),
            ));
        }
        // A pid always fits in a pid_t.
        let mut init = InitProcess::new(Pid::from_raw(pid as libc::pid_t));
        drop((report_write, sync_read, log_write, devnull, layer_mounts));

        if let Some(cgroup) = &cgroup {
            cgroup.add_process(init.pid()).map_err(|err| {
                SandboxError::io("adding the sandbox's init to its control group", err)
            })?;
        }
        mapping.install(init.pid())?;
        let mut sync = File::from(sync_write);
        sync.write_all(b"1")
            .map_err(|err| SandboxError::io("releasing the sandbox's init", err))?;
        drop(sync);

        let supervised = supervise::supervise(
            &init,
            log_read,
            report_read,
            sink.as_mut(),
            spec.timeout,
            spec.max_silent_time,
        )?;
        let init_status = init.reap()?;

        let mut status = None;
        for Report { kind, index, value } in supervised.reports.iter().copied() {
            let step = match kind {
                ReportKind::Status => {
                    status = Some(decode_wait_status(value));
                    continue;
                }
                ReportKind::Bootstrap => BOOTSTRAP_CALLS
                    .get(index)
                    .map_or_else(|| format!("bootstrap call #{index}"), |s| s.to_string()),
                ReportKind::Setup => describe(&child_plan.setup, index),
                ReportKind::Builder => describe(&child_plan.builder_steps, index),
                ReportKind::Exec => format!(
                    "execve({:?}, {} arguments, {} variables)",
                    spec.builder.display().to_string(),
                    spec.args.len() + 1,
                    spec.env.len()
                ),
            };
            return Err(SandboxError::Setup {
                step,
                errno: nix::errno::Errno::from_raw(value),
            });
        }
        let memory_limit_hit = cgroup.as_ref().is_some_and(BuildCgroup::memory_limit_hit);
        let killed = supervised.timed_out || supervised.silent_timed_out || memory_limit_hit;
        if status.is_none() && !killed {
            return Err(SandboxError::InitLost(format!("{init_status:?}")));
        }
        staging.collect_outputs(&spec)?;
        Ok(SandboxOutcome {
            status,
            timed_out: supervised.timed_out,
            silent_timed_out: supervised.silent_timed_out,
            duration: start.elapsed(),
            memory_limit_hit,
            limits_not_applied,
        })
    }
}

/// When kiln is root, gives the builder's host ids what it must write: the build directory
/// (recursively: `passAsFile` files are already in it), the overlay's upper and work
/// directories, and the staging store directory's group (mode 1775, owner unchanged).
fn hand_over_to_builder(
    spec: &SandboxSpec,
    mapping: &IdMapping,
    staging: &Staging,
) -> Result<(), SandboxError> {
    if mapping.host_range().is_none() {
        return Ok(());
    }
    let overlay_root = matches!(spec.root, RootFs::Overlay { .. });
    let unmapped = || {
        SandboxError::InvalidSpec("the builder's ids are outside the build's id range".to_owned())
    };
    let uid = mapping
        .host_uid(mapping.builder_uid(overlay_root))
        .ok_or_else(unmapped)?;
    let gid = mapping
        .host_gid(mapping.builder_gid(overlay_root))
        .ok_or_else(unmapped)?;
    let chown = |path: &Path, uid: Option<u32>| {
        std::os::unix::fs::lchown(path, uid, Some(gid)).map_err(|err| {
            SandboxError::io(format!("handing {} to the builder", path.display()), err)
        })
    };
    if spec.shell.is_none() {
        chown_tree(&spec.build_dir, &|path| chown(path, Some(uid)))?;
        // Only the builder (and root) may look into its build directory, as in Nix.
        std::fs::set_permissions(&spec.build_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|err| SandboxError::io(format!("chmod {}", spec.build_dir.display()), err))?;
    }
    if let RootFs::Overlay { upper, work, .. } = &spec.root {
        chown(upper, Some(uid))?;
        chown(work, Some(uid))?;
    }
    chown(&staging.store, None)?;
    std::fs::set_permissions(&staging.store, std::fs::Permissions::from_mode(0o1775))
        .map_err(|err| SandboxError::io(format!("chmod {}", staging.store.display()), err))
}

/// Applies `change` to `path` and, for a directory, to everything below it (never following
/// a symbolic link).
fn chown_tree(
    path: &Path,
    change: &dyn Fn(&Path) -> Result<(), SandboxError>,
) -> Result<(), SandboxError> {
    change(path)?;
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|err| SandboxError::io(format!("inspecting {}", path.display()), err))?;
    if metadata.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|err| SandboxError::io(format!("listing {}", path.display()), err))?;
        for entry in entries {
            let entry = entry
                .map_err(|err| SandboxError::io(format!("listing {}", path.display()), err))?;
            chown_tree(&entry.path(), change)?;
        }
    }
    Ok(())
}

fn describe(steps: &[step::Step], index: usize) -> String {
    steps
        .get(index)
        .map_or_else(|| format!("step #{index}"), |step| step.to_string())
}

fn describe_clone_flags(network: bool) -> &'static str {
    if network {
        "CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS|SIGCHLD"
    } else {
        "CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWNET|SIGCHLD"
    }
}

fn decode_wait_status(status: i32) -> BuilderStatus {
    if libc::WIFSIGNALED(status) {
        BuilderStatus::Signaled(libc::WTERMSIG(status))
    } else {
        BuilderStatus::Exited(libc::WEXITSTATUS(status))
    }
}
