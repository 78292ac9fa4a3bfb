//! Who the builder is: the uid/gid mapping of the sandbox's user namespace.
//!
//! Policy ([`IdMapPolicy::Auto`]):
//! - kiln runs as root: ids `0..65536` inside map to the same ids outside and the builder runs as
//!   root, so root-filesystem builds can `chown` and their outputs keep real owners. The builder
//!   loses `CAP_SYS_ADMIN` (see the `child` module), so it cannot remount its read-only inputs.
//! - kiln runs unprivileged, `newuidmap`/`newgidmap` exist and `/etc/subuid` and `/etc/subgid`
//!   give the user a range: uid 0 inside is the user, `1..=count` inside is the subordinate
//!   range; the builder runs as root inside (minus `CAP_SYS_ADMIN`), so it can `chown`.
//! - otherwise, as Nix 2.8 does: one id, the builder runs as uid 1000 / gid 100 (`nixbld`)
//!   mapped to the calling user, with no capabilities and `setgroups` denied.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Gid, Pid, Uid, User};

use super::error::SandboxError;

/// The uid of the builder under the Nix 2.8 single-id mapping (`nixbld`).
pub const NIXBLD_UID: u32 = 1000;
/// The gid of the builder under the Nix 2.8 single-id mapping (`nixbld`).
pub const NIXBLD_GID: u32 = 100;
/// How many ids a range mapping covers when kiln runs as root.
pub const DEFAULT_RANGE: u32 = 65536;

/// How the sandbox's user namespace should be mapped; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdMapPolicy {
    /// Choose from the calling user and the machine (see the module documentation).
    #[default]
    Auto,
    /// Nix 2.8: the builder is uid 1000 / gid 100, mapped to the caller's uid and gid.
    Nixbld,
    /// kiln is root: ids `0..count` map to themselves; the builder runs as root.
    HostRootRange {
        /// How many ids are mapped.
        count: u32,
    },
    /// kiln is unprivileged: 0 maps to the caller, `1..=n` to its `/etc/subuid` and
    /// `/etc/subgid` ranges, installed with `newuidmap`/`newgidmap`; the builder runs as root.
    Subordinate,
}

/// A contiguous range of subordinate ids from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIdRange {
    /// The first host id of the range.
    pub start: u32,
    /// How many ids it holds.
    pub count: u32,
}

/// A resolved mapping, ready to be installed for one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMapping {
    /// See [`IdMapPolicy::Nixbld`].
    Nixbld {
        /// The caller's uid.
        host_uid: u32,
        /// The caller's gid.
        host_gid: u32,
    },
    /// See [`IdMapPolicy::HostRootRange`].
    HostRootRange {
        /// How many ids are mapped.
        count: u32,
    },
    /// See [`IdMapPolicy::Subordinate`].
    Subordinate {
        /// The caller's uid (mapped to 0).
        host_uid: u32,
        /// The caller's gid (mapped to 0).
        host_gid: u32,
        /// The subordinate uids (mapped from 1).
        uids: SubIdRange,
        /// The subordinate gids (mapped from 1).
        gids: SubIdRange,
        /// The `newuidmap` program.
        newuidmap: PathBuf,
        /// The `newgidmap` program.
        newgidmap: PathBuf,
    },
}

impl IdMapping {
    /// Resolves a policy for the calling process.
    pub fn resolve(policy: &IdMapPolicy) -> Result<Self, SandboxError> {
        let host_uid = Uid::effective().as_raw();
        let host_gid = Gid::effective().as_raw();
        match policy {
            IdMapPolicy::Nixbld => Ok(IdMapping::Nixbld { host_uid, host_gid }),
            IdMapPolicy::HostRootRange { count } => {
                if host_uid != 0 {
                    return Err(SandboxError::InvalidSpec(
                        "a host-root id range needs kiln to run as root".to_owned(),
                    ));
                }
                Ok(IdMapping::HostRootRange { count: *count })
            }
            IdMapPolicy::Subordinate => Self::subordinate(host_uid, host_gid).ok_or_else(|| {
                SandboxError::InvalidSpec(
                    "a subordinate id range needs newuidmap, newgidmap and entries for this user in /etc/subuid and /etc/subgid".to_owned(),
                )
            }),
            IdMapPolicy::Auto => {
                if host_uid == 0 {
                    Ok(IdMapping::HostRootRange {
                        count: DEFAULT_RANGE,
                    })
                } else {
                    Ok(Self::subordinate(host_uid, host_gid)
                        .unwrap_or(IdMapping::Nixbld { host_uid, host_gid }))
                }
            }
        }
    }

    fn subordinate(host_uid: u32, host_gid: u32) -> Option<Self> {
        let newuidmap = find_program("newuidmap")?;
        let newgidmap = find_program("newgidmap")?;
        let user_name = User::from_uid(Uid::from_raw(host_uid))
            .ok()
            .flatten()
            .map(|user| user.name);
        let subuid = std::fs::read_to_string("/etc/subuid").ok()?;
        let subgid = std::fs::read_to_string("/etc/subgid").ok()?;
        let uids = find_subid_range(&subuid, user_name.as_deref(), host_uid)?;
        let gids = find_subid_range(&subgid, user_name.as_deref(), host_uid)?;
        Some(IdMapping::Subordinate {
            host_uid,
            host_gid,
            uids,
            gids,
            newuidmap,
            newgidmap,
        })
    }

    /// The uid the builder runs as inside the sandbox.
    pub fn builder_uid(&self) -> u32 {
        match self {
            IdMapping::Nixbld { .. } => NIXBLD_UID,
            IdMapping::HostRootRange { .. } | IdMapping::Subordinate { .. } => 0,
        }
    }

    /// The gid the builder runs as inside the sandbox.
    pub fn builder_gid(&self) -> u32 {
        match self {
            IdMapping::Nixbld { .. } => NIXBLD_GID,
            IdMapping::HostRootRange { .. } | IdMapping::Subordinate { .. } => 0,
        }
    }

    /// Whether more than one id is mapped (the builder is root inside and may `chown`).
    pub fn is_range(&self) -> bool {
        !matches!(self, IdMapping::Nixbld { .. })
    }

    /// Installs the maps for the sandbox whose init has host pid `pid` (still waiting on its
    /// sync pipe). `setgroups` is denied first for the single-id mapping, as the kernel requires.
    pub(crate) fn install(&self, pid: Pid) -> Result<(), SandboxError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        match self {
            IdMapping::Nixbld { host_uid, host_gid } => {
                write_proc(pid, &proc_dir.join("setgroups"), "deny")?;
                write_proc(
                    pid,
                    &proc_dir.join("uid_map"),
                    &format!("{NIXBLD_UID} {host_uid} 1\n"),
                )?;
                write_proc(
                    pid,
                    &proc_dir.join("gid_map"),
                    &format!("{NIXBLD_GID} {host_gid} 1\n"),
                )
            }
            IdMapping::HostRootRange { count } => {
                write_proc(pid, &proc_dir.join("uid_map"), &format!("0 0 {count}\n"))?;
                write_proc(pid, &proc_dir.join("gid_map"), &format!("0 0 {count}\n"))
            }
            IdMapping::Subordinate {
                host_uid,
                host_gid,
                uids,
                gids,
                newuidmap,
                newgidmap,
            } => {
                run_map_helper(pid, newuidmap, *host_uid, *uids)?;
                run_map_helper(pid, newgidmap, *host_gid, *gids)
            }
        }
    }
}

fn write_proc(pid: Pid, path: &Path, contents: &str) -> Result<(), SandboxError> {
    std::fs::write(path, contents).map_err(|err| SandboxError::IdMap {
        pid: pid.as_raw(),
        detail: format!("writing {contents:?} to {}: {err}", path.display()),
    })
}

fn run_map_helper(
    pid: Pid,
    program: &Path,
    host_id: u32,
    range: SubIdRange,
) -> Result<(), SandboxError> {
    let args = [
        pid.as_raw().to_string(),
        "0".to_owned(),
        host_id.to_string(),
        "1".to_owned(),
        "1".to_owned(),
        range.start.to_string(),
        range.count.to_string(),
    ];
    let output = Command::new(program)
        .args(&args)
        .output()
        .map_err(|err| SandboxError::IdMap {
            pid: pid.as_raw(),
            detail: format!("running {}: {err}", program.display()),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SandboxError::IdMap {
            pid: pid.as_raw(),
            detail: format!(
                "{} {} failed ({}): {}",
                program.display(),
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// Finds `name` in `PATH`, then in the usual system directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The first range for the user (by name or by numeric uid) in an `/etc/subuid`-style file
/// (`owner:start:count` per line).
pub fn find_subid_range(contents: &str, user_name: Option<&str>, uid: u32) -> Option<SubIdRange> {
    let uid_text = uid.to_string();
    contents.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        let start = fields.next()?.trim().parse().ok()?;
        let count: u32 = fields.next()?.trim().parse().ok()?;
        let is_ours = Some(owner) == user_name || owner == uid_text;
        (is_ours && count > 0).then_some(SubIdRange { start, count })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_range_matches_name_or_uid() {
        let file = "# comment\nalice:100000:65536\nbob:165536:1000\n1001:300000:10\n";
        assert_eq!(
            find_subid_range(file, Some("bob"), 1000),
            Some(SubIdRange {
                start: 165536,
                count: 1000
            })
        );
        assert_eq!(
            find_subid_range(file, Some("carol"), 1001),
            Some(SubIdRange {
                start: 300000,
                count: 10
            })
        );
        assert_eq!(find_subid_range(file, Some("dave"), 1002), None);
        assert_eq!(find_subid_range("erin:1:0\n", Some("erin"), 5), None);
    }

    #[test]
    fn nixbld_mapping_runs_builder_as_uid_1000() {
        let mapping = IdMapping::Nixbld {
            host_uid: 4242,
            host_gid: 4242,
        };
        assert_eq!(mapping.builder_uid(), 1000);
        assert_eq!(mapping.builder_gid(), 100);
        assert!(!mapping.is_range());
        assert!(IdMapping::HostRootRange { count: 10 }.is_range());
    }
}
