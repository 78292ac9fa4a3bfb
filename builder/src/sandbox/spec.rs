//! What to run in a sandbox ([`SandboxSpec`]) and the checks made before anything is touched.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cgroup::ResourceLimits;
use super::error::SandboxError;
use super::idmap::IdMapPolicy;

/// A store path made visible in the sandbox: `host_path` (where it physically is) appears at
/// `logical_path` (a direct child of the logical store directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMount {
    /// The physical location on the host.
    pub host_path: PathBuf,
    /// The path inside the sandbox, `<logical store dir>/<hash>-<name>`.
    pub logical_path: PathBuf,
}

impl StoreMount {
    /// A store path at `host_path` seen at `logical_path`.
    pub fn new(host_path: impl Into<PathBuf>, logical_path: impl Into<PathBuf>) -> Self {
        StoreMount {
            host_path: host_path.into(),
            logical_path: logical_path.into(),
        }
    }
}

/// What the sandbox's `/` is made of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RootFs {
    /// An empty tmpfs holding only what the sandbox puts there (as in Nix).
    #[default]
    Tmpfs,
    /// An overlay of root-filesystem layers: `lower_layers` read-only (first = top), `upper`
    /// and `work` host directories with one parent receiving the writes (the caller throws
    /// them away). `/etc/passwd`, `/etc/group` and `/etc/hosts` of the layers are kept. Their
    /// parent must be searchable by the build's ids (mode 0711 at least when kiln is root).
    Overlay {
        /// Read-only layers, topmost first.
        lower_layers: Vec<PathBuf>,
        /// The writable upper directory.
        upper: PathBuf,
        /// overlayfs's work directory (same file system as `upper`, empty).
        work: PathBuf,
    },
}

/// A host path made visible at a path inside an interactive session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The host file or directory (absolute).
    pub source: PathBuf,
    /// Where it appears inside (absolute); missing directories are created in the root.
    pub target: PathBuf,
    /// Read-only inside.
    pub read_only: bool,
}

/// What makes a sandbox an interactive session (`kiln shell`) rather than a build: no outputs
/// and no `/build`; the caller's standard input, output and error (a terminal keeps its job
/// control: no new session); a private tmpfs at `/tmp`; host paths bound inside; the process
/// starts in `working_dir`, as the first of `programs` that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSession {
    /// An existing host directory that receives the staging directory of the session.
    pub staging_parent: PathBuf,
    /// Host paths bound inside, in order (a later one may be inside an earlier one).
    pub binds: Vec<Bind>,
    /// The working directory inside (created if missing).
    pub working_dir: PathBuf,
    /// The home directory inside (created if missing).
    pub home: PathBuf,
    /// The caller's terminal device (its standard input's), bound at `/dev/console` so that
    /// `tty` and `ttyname` name it.
    pub console: Option<PathBuf>,
    /// Programs tried in order with `execve`, each with its `argv[0]`: the first that exists
    /// runs (a `PATH` search, or `bash` else `sh`). [`SandboxSpec::args`] follow `argv[0]`.
    pub programs: Vec<(PathBuf, OsString)>,
}

/// Where the builder's stdout and stderr go.
#[derive(Default)]
pub enum LogSink {
    /// Appended to this file (created if missing).
    File(PathBuf),
    /// Written to the caller's writer (a pipe, a progress display, a buffer).
    Writer(Box<dyn Write + Send>),
    /// Read and dropped (the silence timeout still sees it).
    #[default]
    Discard,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogSink::File(path) => f.debug_tuple("File").field(path).finish(),
            LogSink::Writer(_) => f.write_str("Writer(..)"),
            LogSink::Discard => f.write_str("Discard"),
        }
    }
}

/// Everything one sandboxed build needs.
#[derive(Debug)]
pub struct SandboxSpec {
    /// The store directory hashed into paths (`/kiln/store`), where store paths appear.
    pub logical_store_dir: PathBuf,
    /// Store paths bound read-only (the input closure, nothing else).
    pub inputs: Vec<StoreMount>,
    /// Output paths: the builder creates `logical_path` (file, directory or symlink); after the
    /// build it is moved to `host_path`, which must not exist yet. All outputs' host paths must
    /// share one parent directory (the physical store).
    pub outputs: Vec<StoreMount>,
    /// A host directory, bound read-write at `/build` (the builder's working directory).
    pub build_dir: PathBuf,
    /// The program to run, as seen inside the sandbox (`argv[0]`).
    pub builder: PathBuf,
    /// `argv[1..]`.
    pub args: Vec<OsString>,
    /// Exactly the builder's environment (see [`super::nix_build_env`]).
    /// Names and values are bytes (not necessarily UTF-8), as the derivation gives them.
    pub env: BTreeMap<OsString, OsString>,
    /// Share the host's network (and bind its `/etc/resolv.conf`, `/etc/hosts`,
    /// `/etc/services` read-only) instead of a private loopback-only one.
    pub network: bool,
    /// What `/` is made of.
    pub root: RootFs,
    /// How the user namespace is mapped.
    pub id_map: IdMapPolicy,
    /// Kill the build after this long.
    pub timeout: Option<Duration>,
    /// Kill the build when it prints nothing for this long.
    pub max_silent_time: Option<Duration>,
    /// Where the builder's output goes.
    pub log: LogSink,
    /// Memory and process limits of the build's control group; the memory limit also sizes
    /// the tmpfs mounts (`/`, `/dev/shm`).
    pub limits: ResourceLimits,
    /// An interactive session instead of a build (then `outputs` is empty, `build_dir` and
    /// `builder` are not used and `root` is an overlay).
    pub shell: Option<ShellSession>,
}

impl SandboxSpec {
    /// A spec with no inputs, outputs, arguments or environment, no network, a tmpfs root,
    /// automatic id mapping, no time or resource limits and a discarded log.
    pub fn new(
        logical_store_dir: impl Into<PathBuf>,
        build_dir: impl Into<PathBuf>,
        builder: impl Into<PathBuf>,
    ) -> Self {
        SandboxSpec {
            logical_store_dir: logical_store_dir.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            build_dir: build_dir.into(),
            builder: builder.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            network: false,
            root: RootFs::Tmpfs,
            id_map: IdMapPolicy::Auto,
            timeout: None,
            max_silent_time: None,
            log: LogSink::Discard,
            limits: ResourceLimits::default(),
            shell: None,
        }
    }

    /// Checks the spec before anything is created.
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let invalid = |message: String| Err(SandboxError::InvalidSpec(message));
        if !self.logical_store_dir.is_absolute() {
            return invalid(format!(
                "the logical store directory {} is not absolute",
                self.logical_store_dir.display()
            ));
        }
        if !self.builder.is_absolute() {
            return invalid(format!(
                "the builder {} is not an absolute path",
                self.builder.display()
            ));
        }
        match &self.shell {
            None if self.outputs.is_empty() => {
                return invalid("a build needs at least one output".to_owned());
            }
            Some(_) if !self.outputs.is_empty() => {
                return invalid("a shell session has no outputs".to_owned());
            }
            Some(_) if !matches!(self.root, RootFs::Overlay { .. }) => {
                return invalid("a shell session needs a root file system".to_owned());
            }
            Some(session) => {
                session.validate()?;
                if let RootFs::Overlay { lower_layers, .. } = &self.root {
                    if lower_layers.len() + session.binds.len() > super::child::MAX_LAYERS {
                        return invalid(format!(
                            "a session has at most {} layers and binds together",
                            super::child::MAX_LAYERS
                        ));
                    }
                }
            }
            None => {}
        }
        let mut names = std::collections::BTreeSet::new();
        for mount in self.inputs.iter().chain(&self.outputs) {
            let name = self.store_entry_name(&mount.logical_path)?;
            if !names.insert(name.to_owned()) {
                return invalid(format!(
                    "{} is given twice among inputs and outputs",
                    mount.logical_path.display()
                ));
            }
        }
        for input in &self.inputs {
            if std::fs::symlink_metadata(&input.host_path).is_err() {
                return invalid(format!(
                    "input {} does not exist",
                    input.host_path.display()
                ));
            }
        }
        let host_store = self.outputs.first().and_then(|o| o.host_path.parent());
        for output in &self.outputs {
            if output.host_path.parent() != host_store || output.host_path.file_name().is_none() {
                return invalid(format!(
                    "output {} is not in the same directory as {}",
                    output.host_path.display(),
                    self.outputs[0].host_path.display()
                ));
            }
            if std::fs::symlink_metadata(&output.host_path).is_ok() {
                return invalid(format!(
                    "output {} already exists",
                    output.host_path.display()
                ));
            }
        }
        if self.shell.is_none() && !self.build_dir.is_dir() {
            return invalid(format!(
                "the build directory {} is not a directory",
                self.build_dir.display()
            ));
        }
        for name in self.env.keys() {
            if name.is_empty() || name.as_bytes().contains(&b'=') {
                return invalid(format!("invalid environment variable name {name:?}"));
            }
        }
        if let RootFs::Overlay {
            lower_layers,
            upper,
            work,
        } = &self.root
        {
            if lower_layers.is_empty() {
                return invalid("an overlay root needs at least one lower layer".to_owned());
            }
            if lower_layers.len() > super::child::MAX_LAYERS {
                return invalid(format!(
                    "an overlay root has at most {} lower layers, not {}",
                    super::child::MAX_LAYERS,
                    lower_layers.len()
                ));
            }
            for layer in lower_layers {
                // Never followed: a layer that is a symlink (to the host's /etc, say) would
                // make the host's directory the build's root.
                let is_dir = std::fs::symlink_metadata(layer).is_ok_and(|m| m.is_dir());
                if !is_dir {
                    return invalid(format!(
                        "overlay layer {} is not a directory (symbolic links are refused)",
                        layer.display()
                    ));
                }
            }
            if upper.parent() != work.parent() || upper.file_name().is_none() || upper == work {
                return invalid(format!(
                    "the overlay's upper directory {} and work directory {} must be two directories with the same parent",
                    upper.display(),
                    work.display()
                ));
            }
            for layer in lower_layers.iter().chain([upper, work]) {
                let text = layer.to_string_lossy();
                if text.contains([',', ':', '\\']) || !layer.is_absolute() {
                    return invalid(format!(
                        "overlay layer {} must be absolute and free of ',', ':' and '\\'",
                        layer.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The directory the staging directory is created in and the staging directory's name.
    pub(crate) fn staging_location(&self) -> (PathBuf, String) {
        if let Some(session) = &self.shell {
            return (
                session.staging_parent.clone(),
                format!(".kiln-shell-{}", std::process::id()),
            );
        }
        // `validate` checked that a build has an output with a parent and a file name.
        let first = self.outputs.first().map(|o| o.host_path.as_path());
        let parent = first.and_then(Path::parent).unwrap_or(Path::new("/"));
        let name = first
            .and_then(Path::file_name)
            .unwrap_or_default()
            .to_string_lossy();
        (parent.to_owned(), format!(".kiln-sandbox-{name}"))
    }

    /// The name of a store entry, checking that it lies directly in the logical store dir.
    pub(crate) fn store_entry_name<'a>(&self, logical: &'a Path) -> Result<&'a str, SandboxError> {
        match (
            logical.parent(),
            logical.file_name().and_then(|n| n.to_str()),
        ) {
            (Some(parent), Some(name)) if parent == self.logical_store_dir => Ok(name),
            _ => Err(SandboxError::InvalidSpec(format!(
                "{} is not directly inside the logical store directory {}",
                logical.display(),
                self.logical_store_dir.display()
            ))),
        }
    }
}

impl ShellSession {
    fn validate(&self) -> Result<(), SandboxError> {
        let invalid = |message: String| Err(SandboxError::InvalidSpec(message));
        if !self.staging_parent.is_dir() {
            return invalid(format!(
                "the staging parent {} is not a directory",
                self.staging_parent.display()
            ));
        }
        for bind in &self.binds {
            if !bind.source.is_absolute() || !bind.target.is_absolute() {
                return invalid(format!(
                    "bind {} -> {}: both paths must be absolute",
                    bind.source.display(),
                    bind.target.display()
                ));
            }
            if bind
                .target
                .components()
                .any(|c| c == std::path::Component::ParentDir)
            {
                return invalid(format!(
                    "bind target {} contains '..'",
                    bind.target.display()
                ));
            }
            if std::fs::metadata(&bind.source).is_err() {
                return invalid(format!(
                    "bind source {} does not exist",
                    bind.source.display()
                ));
            }
        }
        for path in [&self.working_dir, &self.home] {
            if !path.is_absolute() {
                return invalid(format!("{} is not an absolute path", path.display()));
            }
        }
        if self.programs.is_empty() || self.programs.iter().any(|(p, _)| !p.is_absolute()) {
            return invalid("a session needs absolute programs to run".to_owned());
        }
        Ok(())
    }
}
