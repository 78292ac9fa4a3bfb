//! `kiln shell INSTALLABLE [-- COMMAND ARGS…]`: work inside a root file system.
//!
//! The installable (a root built by an expression, `-A root`, a store path, `./result`, or a
//! list of layers, topmost first) is fetched or built first (`crate::installable`); then an
//! interactive shell (`bash`, else `sh`, of the root) or COMMAND (searched in the session's
//! `PATH`) runs in the build sandbox's namespaces (`kiln_builder::sandbox` with a
//! `ShellSession`): the layers under an overlay whose writes are thrown away at exit (kept in
//! `--keep DIR`/upper instead), the layers' closure read-only at the logical store directory,
//! a fresh `/proc`, a minimal `/dev`, a private `/tmp`, no network unless `--network` (then the
//! host's `resolv.conf`). The current directory is bound read-write at the same path, and
//! `--bind SRC[:DST]` / `--ro-bind SRC[:DST]` add more.
//!
//! Who the session is: the invoking user. Unprivileged, the user's uid and gid map to
//! themselves (one id each) and the session has no capabilities. As root, the session runs as
//! root of a host id range of its own (never host root, as a root-file-system build), and the
//! bound host paths are id-mapped mounts so that what it writes there belongs to root.
//!
//! The terminal is the caller's (job control and window size as in any shell: the session is
//! not put in a new terminal session); the environment is `TERM`, `HOME` (a directory made
//! in the overlay: the caller's `$HOME` path, else `/root` for root), `USER`, `LOGNAME`,
//! `PATH` (a standard one), `PWD`, `PS1` (`[kiln shell] \w \$ `) and what `--keep-env NAME`
//! passes from the caller. kiln exits with COMMAND's status (128 + N when signal N killed it).
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use kiln_builder::sandbox::{
    Bind, BuilderStatus, IdMapPolicy, ResourceLimits, RootFs, Sandbox, SandboxSpec, ShellSession,
    StoreMount, DEFAULT_RANGE,
};

use super::input::SelectionArgs;
use crate::session::open_store;
use crate::session::{Failure, GlobalOptions};

/// The `PATH` of a session (`--keep-env PATH` passes the caller's instead).
const SESSION_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The prompt of an interactive session (`--keep-env PS1` passes the caller's instead).
const SESSION_PROMPT: &str = "[kiln shell] \\w \\$ ";

/// The shells tried, in order, when no COMMAND is given.
const DEFAULT_SHELLS: [&str; 4] = ["/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh"];

#[derive(Args, Debug)]
pub struct ShellArgs {
    /// What to enter: a file to evaluate (default `./default.nix`; with `-A`), a store path or
    /// a link into the store (`./result`), or a `.drv`.
    #[arg(value_name = "INSTALLABLE")]
    pub installable: Option<PathBuf>,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Bind a host path read-write inside, at DST (default: the same path); may be repeated.
    #[arg(long = "bind", value_name = "SRC[:DST]")]
    pub binds: Vec<String>,
    /// Bind a host path read-only inside, at DST (default: the same path); may be repeated.
    #[arg(long = "ro-bind", value_name = "SRC[:DST]")]
    pub ro_binds: Vec<String>,
    /// Pass this variable of kiln's environment into the session; may be repeated.
    #[arg(long = "keep-env", value_name = "NAME")]
    pub keep_env: Vec<String>,
    /// Share the host's network (and its resolv.conf, hosts and services files).
    #[arg(long)]
    pub network: bool,
    /// Keep what the session writes to the root: in DIR/upper (DIR/work is overlayfs's
    /// scratch). A later session with the same DIR starts from it.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// The command to run instead of an interactive shell, with its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `SRC[:DST]` as a bind: SRC made absolute (and resolved) against `cwd`, DST its path by
/// default.
fn parse_bind(text: &str, read_only: bool, cwd: &Path) -> anyhow::Result<Bind> {
    let (source, target) = match text.split_once(':') {
        Some((source, target)) => (source, Some(target)),
        None => (text, None),
    };
    let source = std::fs::canonicalize(cwd.join(source))
        .with_context(|| format!("--bind {text}: cannot resolve {source}"))?;
    let target = match target {
        Some(target) if Path::new(target).is_absolute() => PathBuf::from(target),
        Some(target) => bail!("--bind {text}: the destination {target} is not absolute"),
        None => source.clone(),
    };
    if target == Path::new("/") {
        bail!("--bind {text}: cannot bind over the root of the session");
    }
    Ok(Bind {
        source,
        target,
        read_only,
    })
}

/// Programs to try in order, each with its `argv[0]`.
type Candidates = Vec<(PathBuf, OsString)>;

/// The programs to try and the arguments after `argv[0]`.
fn programs(
    command: &[OsString],
    path: &str,
    cwd: &Path,
) -> anyhow::Result<(Candidates, Vec<OsString>)> {
    let Some((name, args)) = command.split_first() else {
        let shells = DEFAULT_SHELLS
            .iter()
            .map(|shell| {
                let argv0 = Path::new(shell).file_name().unwrap_or_default().to_owned();
                (PathBuf::from(shell), argv0)
            })
            .collect();
        return Ok((shells, Vec::new()));
    };
    if name.is_empty() {
        bail!("the command is empty");
    }
    let candidates = if name.as_bytes().contains(&b'/') {
        vec![(cwd.join(name), name.clone())]
    } else {
        path.split(':')
            .filter(|dir| Path::new(dir).is_absolute())
            .map(|dir| (Path::new(dir).join(name), name.clone()))
            .collect()
    };
    if candidates.is_empty() {
        bail!("PATH has no absolute directory to find {name:?} in");
    }
    Ok((candidates, args.to_vec()))
}

/// The session's environment (see the module doc).
fn session_env(
    keep_env: &[String],
    home: &Path,
    cwd: &Path,
    user: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    let term = std::env::var("TERM").unwrap_or_else(|_| "dumb".to_owned());
    env.insert("TERM".to_owned(), term);
    env.insert("HOME".to_owned(), home.to_string_lossy().into_owned());
    env.insert("PATH".to_owned(), SESSION_PATH.to_owned());
    env.insert("PWD".to_owned(), cwd.to_string_lossy().into_owned());
    env.insert("USER".to_owned(), user.to_owned());
    env.insert("LOGNAME".to_owned(), user.to_owned());
    env.insert("PS1".to_owned(), SESSION_PROMPT.to_owned());
    env.insert("KILN_SHELL".to_owned(), "1".to_owned());
    for name in keep_env {
        if name.is_empty() || name.contains('=') {
            bail!("--keep-env {name:?}: not a variable name");
        }
        match std::env::var(name) {
            Ok(value) => {
                env.insert(name.clone(), value);
            }
            // Kept means absent inside too.
            Err(_) => {
                env.remove(name);
            }
        }
    }
    Ok(env)
}

/// The upper and work directories of the overlay: in `keep` (created if missing) or in the
/// session's temporary directory. Their parent must let a session run by root (as its own
/// id range) pass through.
fn overlay_dirs(keep: Option<&Path>, scratch: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let parent = match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::canonicalize(dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?
        }
        None => scratch.to_owned(),
    };
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o711))
        .with_context(|| format!("cannot chmod {}", parent.display()))?;
    let (upper, work) = (parent.join("upper"), parent.join("work"));
    for dir in [&upper, &work] {
        if !dir.is_dir() {
            std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    Ok((upper, work))
}

/// A temporary directory removed (with whatever overlayfs and the session left in it, read-only
/// directories included) on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = kiln_local_store::fs_tree::delete_tree(&self.0);
    }
}

pub fn run(global: &GlobalOptions, args: ShellArgs) -> Result<(), Failure> {
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .context("cannot read the current directory")?;
    if cwd == Path::new("/") {
        return Err(anyhow!(
            "the current directory is bound into the session: run kiln shell from a directory other than /"
        )
        .into());
    }
    let mut binds = vec![Bind {
        source: cwd.clone(),
        target: cwd.clone(),
        read_only: false,
    }];
    for text in &args.binds {
        binds.push(parse_bind(text, false, &cwd)?);
    }
    for text in &args.ro_binds {
        binds.push(parse_bind(text, true, &cwd)?);
    }

    let store = Arc::new(open_store(global)?);
    let layers =
        crate::installable::realise(global, &store, args.installable.as_deref(), &args.selection)?;
    let dir = store.store_dir().clone();
    let mut lower_layers = Vec::new();
    for layer in &layers {
        let physical = store.physical_path(layer);
        if !std::fs::symlink_metadata(&physical).is_ok_and(|m| m.is_dir()) {
            return Err(anyhow!(
                "'{}' is not a directory, so not a root file system",
                dir.print(layer)
            )
            .into());
        }
        lower_layers.push(physical);
    }
    let closure = store.closure(&layers).map_err(anyhow::Error::from)?;

    let is_root = nix::unistd::Uid::effective().is_root();
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("user{}", nix::unistd::Uid::effective()));
    let home = match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() && home != Path::new("/") => home,
        _ if is_root => PathBuf::from("/root"),
        _ => PathBuf::from("/home").join(&user),
    };
    let env = session_env(&args.keep_env, &home, &cwd, &user)?;
    let path = env.get("PATH").map(String::as_str).unwrap_or(SESSION_PATH);
    let (programs, command_args) = programs(&args.command, path, &cwd)?;

    let scratch_dir = tempfile::Builder::new()
        .prefix("kiln-shell-")
        .tempdir()
        .context("cannot create a temporary directory")?
        .keep();
    let scratch = Scratch(scratch_dir);
    let (upper, work) = overlay_dirs(args.keep.as_deref(), &scratch.0)?;

    let mut spec = SandboxSpec::new(dir.as_str(), &scratch.0, &programs[0].0);
    spec.args = command_args;
    spec.env = env
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
    spec.network = args.network;
    spec.inputs = closure
        .iter()
        .map(|path| StoreMount::new(store.physical_path(path), dir.print(path)))
        .collect();
    spec.root = RootFs::Overlay {
        lower_layers,
        upper,
        work,
    };
    spec.id_map = if is_root {
        IdMapPolicy::HostRootRange {
            count: DEFAULT_RANGE,
        }
    } else {
        IdMapPolicy::Caller
    };
    spec.limits = ResourceLimits::default();
    spec.shell = Some(ShellSession {
        staging_parent: scratch.0.clone(),
        binds,
        working_dir: cwd,
        home,
        console: nix::unistd::ttyname(std::io::stdin()).ok(),
        programs,
    });
    let outcome = Sandbox::new(spec)
        .and_then(Sandbox::run)
        .context("cannot start the session")?;
    // The work directory of a kept overlay is overlayfs's scratch, of no use afterwards.
    if let Some(keep) = &args.keep {
        let _ = kiln_local_store::fs_tree::delete_tree(&keep.join("work").join("work"));
    }
    match outcome.status {
        Some(BuilderStatus::Exited(0)) => Ok(()),
        Some(BuilderStatus::Exited(code)) => Err(Failure::Exit(code)),
        Some(BuilderStatus::Signaled(signal)) => Err(Failure::Exit(128 + signal)),
        None => Err(anyhow!("the session was killed").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_searched_in_path_and_a_path_is_taken_as_it_is() {
        let cwd = Path::new("/work");
        let (found, args) =
            programs(&["ls".into(), "-l".into()], "/usr/bin:relative:/bin", cwd).unwrap();
        assert_eq!(
            found,
            vec![
                (PathBuf::from("/usr/bin/ls"), OsString::from("ls")),
                (PathBuf::from("/bin/ls"), OsString::from("ls")),
            ]
        );
        assert_eq!(args, vec![OsString::from("-l")]);
        let (found, _) = programs(&["./run.sh".into()], SESSION_PATH, cwd).unwrap();
        assert_eq!(found[0].0, PathBuf::from("/work/./run.sh"));
        let (found, args) = programs(&[], SESSION_PATH, cwd).unwrap();
        assert_eq!(
            found[0],
            (PathBuf::from("/bin/bash"), OsString::from("bash"))
        );
        assert!(args.is_empty());
    }

    #[test]
    fn binds_default_to_the_same_path_and_refuse_the_root() {
        let cwd = std::env::temp_dir();
        let bind = parse_bind(".", true, &cwd).unwrap();
        assert_eq!(bind.target, bind.source);
        assert!(bind.read_only);
        let bind = parse_bind(".:/data", false, &cwd).unwrap();
        assert_eq!(bind.target, PathBuf::from("/data"));
        assert!(parse_bind(".:data", false, &cwd).is_err());
        assert!(parse_bind(".:/", false, &cwd).is_err());
        assert!(parse_bind("/does/not/exist", false, &cwd).is_err());
    }
}
