//! What to run in a sandbox ([`SandboxSpec`]) and the checks made before anything is touched.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
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
    pub env: BTreeMap<String, String>,
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
        if self.outputs.is_empty() {
            return invalid("a build needs at least one output".to_owned());
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
        let host_store = self.outputs[0].host_path.parent();
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
        if !self.build_dir.is_dir() {
            return invalid(format!(
                "the build directory {} is not a directory",
                self.build_dir.display()
            ));
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') {
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
