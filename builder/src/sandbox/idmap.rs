//! Who the builder is: the uid/gid mapping of the sandbox's user namespace.
//!
//! Policy ([`IdMapPolicy::Auto`]):
//! - kiln runs as root: the build takes an unprivileged host id range of its own (see the
//!   `id_slots` module: 65536 ids from 0x34000000 + slot * 65536, held for the life of the
//!   build) and ids `0..65536` inside map to it. Host uid 0 is not mapped at all, so nothing
//!   the builder does reaches a host object owned by root. A plain build (tmpfs root) runs as
//!   uid 1000 / gid 100 (`nixbld`, as in Nix's sandbox) with no capabilities; a build with a
//!   root file system runs as uid 0 inside with only the capabilities that act on files and
//!   ids of its own user namespace (see [`ROOTFS_CAPABILITIES`]).
//! - kiln runs unprivileged, `newuidmap`/`newgidmap` exist and `/etc/subuid` and `/etc/subgid`
//!   give the user a range: uid 0 inside is the user, `1..=count` inside is the subordinate
//!   range; the builder runs as root inside with [`ROOTFS_CAPABILITIES`] only, so it can
//!   `chown` (the files it writes on the host belong to the user, who is uid 0 inside).
//! - otherwise, as Nix 2.8 does: one id, the builder runs as uid 1000 / gid 100 (`nixbld`)
//!   mapped to the calling user, with no capabilities and `setgroups` denied.
//!
//! - an interactive session of a user who is not root (`kiln shell`, [`IdMapPolicy::Caller`]):
//!   one id, the caller's uid and gid mapped to themselves, so the session is the user inside
//!   as outside, without capabilities. (Run by root, a session takes a host root range like a
//!   root-file-system build.)
//!
//! Why the root builder keeps [`ROOTFS_CAPABILITIES`]: package managers (rpm, dnf, dpkg) must
//! `chown` files to system users, `chroot` for scriptlets, set file capabilities and switch
//! ids. Every one of these capabilities is checked against the build's own user namespace,
//! whose map holds only the build's unprivileged range, so they act only on files owned by
//! that range (or on files made visible through an id-mapped layer) and on processes of the
//! build: they reach no host object. Every other capability (`CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`,
//! `CAP_NET_ADMIN`, `CAP_NET_RAW`, `CAP_MKNOD`, `CAP_SYS_MODULE`, ...) is removed from the
//! bounding, permitted, effective, inheritable and ambient sets before `execve`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nix::unistd::{Gid, Pid, Uid, User};

use super::error::SandboxError;
use super::id_slots::{IdSlot, SLOT_SIZE};

/// The uid of the builder under the Nix 2.8 single-id mapping (`nixbld`).
pub const NIXBLD_UID: u32 = 1000;
/// The gid of the builder under the Nix 2.8 single-id mapping (`nixbld`).
pub const NIXBLD_GID: u32 = 100;
/// How many ids a range mapping covers when kiln runs as root.
pub const DEFAULT_RANGE: u32 = SLOT_SIZE;

/// The capabilities a root builder keeps, by name and number (linux/capability.h); see the
/// module documentation.
pub const ROOTFS_CAPABILITY_NUMBERS: [(&str, u32); 13] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
];

/// The capability set (bit `n` = capability `n`) of a builder that is root inside.
pub const ROOTFS_CAPABILITIES: u64 = {
    let mut set = 0u64;
    let mut i = 0;
    while i < ROOTFS_CAPABILITY_NUMBERS.len() {
        set |= 1 << ROOTFS_CAPABILITY_NUMBERS[i].1;
        i += 1;
    }
    set
};

/// How the sandbox's user namespace should be mapped; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdMapPolicy {
    /// Choose from the calling user and the machine (see the module documentation).
    #[default]
    Auto,
    /// Nix 2.8: the builder is uid 1000 / gid 100, mapped to the caller's uid and gid.
    Nixbld,
    /// kiln is root: ids `0..count` map to an unprivileged host range taken for this build
    /// (at most [`DEFAULT_RANGE`] ids).
    HostRootRange {
        /// How many ids are mapped.
        count: u32,
    },
    /// kiln is unprivileged: 0 maps to the caller, `1..=n` to its `/etc/subuid` and
    /// `/etc/subgid` ranges, installed with `newuidmap`/`newgidmap`; the builder runs as root.
    Subordinate,
    /// kiln is unprivileged: the caller's uid and gid map to themselves (one id each) and the
    /// process runs as the caller, without capabilities (an interactive session).
    Caller,
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
    /// See [`IdMapPolicy::Caller`].
    Caller {
        /// The caller's uid, the same inside.
        uid: u32,
        /// The caller's gid, the same inside.
        gid: u32,
    },
    /// See [`IdMapPolicy::Nixbld`].
    Nixbld {
        /// The caller's uid.
        host_uid: u32,
        /// The caller's gid.
        host_gid: u32,
    },
    /// See [`IdMapPolicy::HostRootRange`]: ids `0..count` inside are `base..base + count` on
    /// the host.
    HostRootRange {
        /// The host id inside id 0 maps to.
        base: u32,
        /// How many ids are mapped.
        count: u32,
        /// The machine-wide slot holding the range, released when the last clone is dropped.
        slot: Arc<IdSlot>,
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
            IdMapPolicy::Caller => {
                if host_uid == 0 {
                    return Err(SandboxError::InvalidSpec(
                        "root's sessions run in a host id range of their own, not as host root"
                            .to_owned(),
                    ));
                }
                Ok(IdMapping::Caller {
                    uid: host_uid,
                    gid: host_gid,
                })
            }
            IdMapPolicy::HostRootRange { count } => {
                if host_uid != 0 {
                    return Err(SandboxError::InvalidSpec(
                        "a host-root id range needs kiln to run as root".to_owned(),
                    ));
                }
                if *count == 0 || *count > DEFAULT_RANGE {
                    return Err(SandboxError::InvalidSpec(format!(
                        "a host-root id range holds 1 to {DEFAULT_RANGE} ids, not {count}"
                    )));
                }
                Self::host_root_range(*count)
            }
            IdMapPolicy::Subordinate => Self::subordinate(host_uid, host_gid).ok_or_else(|| {
                SandboxError::InvalidSpec(
                    "a subordinate id range needs newuidmap, newgidmap and entries for this user in /etc/subuid and /etc/subgid".to_owned(),
                )
            }),
            IdMapPolicy::Auto => {
                if host_uid == 0 {
                    Self::host_root_range(DEFAULT_RANGE)
                } else {
                    Ok(Self::subordinate(host_uid, host_gid)
                        .unwrap_or(IdMapping::Nixbld { host_uid, host_gid }))
                }
            }
        }
    }

    fn host_root_range(count: u32) -> Result<Self, SandboxError> {
        let slot = IdSlot::acquire()?;
        Ok(IdMapping::HostRootRange {
            base: slot.base(),
            count,
            slot: Arc::new(slot),
        })
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

    /// Whether the builder runs as uid 0 inside (with [`ROOTFS_CAPABILITIES`]) rather than as
    /// `nixbld` without capabilities; `overlay_root` says whether the build has a root file
    /// system of layers.
    pub fn builder_is_root(&self, overlay_root: bool) -> bool {
        match self {
            IdMapping::Nixbld { .. } | IdMapping::Caller { .. } => false,
            IdMapping::HostRootRange { .. } => overlay_root,
            IdMapping::Subordinate { .. } => true,
        }
    }

    /// The uid the builder runs as inside the sandbox.
    pub fn builder_uid(&self, overlay_root: bool) -> u32 {
        match self {
            IdMapping::Caller { uid, .. } => *uid,
            _ if self.builder_is_root(overlay_root) => 0,
            _ => NIXBLD_UID,
        }
    }

    /// The gid the builder runs as inside the sandbox.
    pub fn builder_gid(&self, overlay_root: bool) -> u32 {
        match self {
            IdMapping::Caller { gid, .. } => *gid,
            _ if self.builder_is_root(overlay_root) => 0,
            _ => NIXBLD_GID,
        }
    }

    /// The capabilities (bit `n` = capability `n`) the builder keeps.
    pub fn builder_capabilities(&self, overlay_root: bool) -> u64 {
        if self.builder_is_root(overlay_root) {
            ROOTFS_CAPABILITIES
        } else {
            0
        }
    }

    /// Whether more than one id is mapped (supplementary groups may be cleared).
    pub fn is_range(&self) -> bool {
        !matches!(self, IdMapping::Nixbld { .. } | IdMapping::Caller { .. })
    }

    /// The host range `(first, count)` the build's uids and gids map to when kiln is root:
    /// every file a build creates is owned by an id of this range (before canonicalisation).
    /// `None` for the rootless mappings, whose files belong to the calling user (and its
    /// subordinate ids, see [`IdMapping::host_uid_ranges`]).
    pub fn host_range(&self) -> Option<(u32, u32)> {
        match self {
            IdMapping::HostRootRange { base, count, .. } => Some((*base, *count)),
            _ => None,
        }
    }

    /// Every host uid range `(first, count)` the build's files may be owned by.
    pub fn host_uid_ranges(&self) -> Vec<(u32, u32)> {
        self.host_id_ranges(false)
    }

    /// Every host gid range `(first, count)` the build's files may have as group.
    pub fn host_gid_ranges(&self) -> Vec<(u32, u32)> {
        self.host_id_ranges(true)
    }

    /// Every host id range (of gids if `group`, else of uids) the build's files may carry.
    fn host_id_ranges(&self, group: bool) -> Vec<(u32, u32)> {
        let pick = |uid: &u32, gid: &u32| if group { *gid } else { *uid };
        match self {
            IdMapping::Nixbld { host_uid, host_gid } => vec![(pick(host_uid, host_gid), 1)],
            IdMapping::Caller { uid, gid } => vec![(pick(uid, gid), 1)],
            IdMapping::HostRootRange { base, count, .. } => vec![(*base, *count)],
            IdMapping::Subordinate {
                host_uid,
                host_gid,
                uids,
                gids,
                ..
            } => {
                let range = if group { gids } else { uids };
                vec![(pick(host_uid, host_gid), 1), (range.start, range.count)]
            }
        }
    }

    /// The host uid that uid `inside` of the sandbox is, if mapped.
    pub fn host_uid(&self, inside: u32) -> Option<u32> {
        self.host_id(inside, false)
    }

    /// The host gid that gid `inside` of the sandbox is, if mapped.
    pub fn host_gid(&self, inside: u32) -> Option<u32> {
        self.host_id(inside, true)
    }

    /// The host id (a gid if `group`, else a uid) that id `inside` of the sandbox is.
    fn host_id(&self, inside: u32, group: bool) -> Option<u32> {
        let pick = |uid: &u32, gid: &u32| if group { *gid } else { *uid };
        match self {
            IdMapping::Nixbld { host_uid, host_gid } => {
                (inside == pick(&NIXBLD_UID, &NIXBLD_GID)).then_some(pick(host_uid, host_gid))
            }
            IdMapping::Caller { uid, gid } => {
                let id = pick(uid, gid);
                (inside == id).then_some(id)
            }
            IdMapping::HostRootRange { base, count, .. } => {
                (inside < *count).then(|| base + inside)
            }
            IdMapping::Subordinate {
                host_uid,
                host_gid,
                uids,
                gids,
                ..
            } => {
                let range = if group { gids } else { uids };
                match inside {
                    0 => Some(pick(host_uid, host_gid)),
                    n if n <= range.count => Some(range.start + (n - 1)),
                    _ => None,
                }
            }
        }
    }

    /// Whether store files (owned by kiln's user on the host) must be shown through id-mapped
    /// mounts for their owners to appear inside: only when kiln is root, since host uid 0 is
    /// not mapped; the rootless mappings map the calling user already.
    pub(crate) fn needs_idmapped_layers(&self) -> bool {
        matches!(self, IdMapping::HostRootRange { .. })
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
            IdMapping::Caller { uid, gid } => {
                write_proc(pid, &proc_dir.join("setgroups"), "deny")?;
                write_proc(pid, &proc_dir.join("uid_map"), &format!("{uid} {uid} 1\n"))?;
                write_proc(pid, &proc_dir.join("gid_map"), &format!("{gid} {gid} 1\n"))
            }
            IdMapping::HostRootRange { base, count, .. } => {
                let map = format!("0 {base} {count}\n");
                write_proc(pid, &proc_dir.join("uid_map"), &map)?;
                write_proc(pid, &proc_dir.join("gid_map"), &map)
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
        assert_eq!(mapping.builder_uid(true), 1000);
        assert_eq!(mapping.builder_gid(false), 100);
        assert_eq!(mapping.builder_capabilities(true), 0);
        assert!(!mapping.is_range());
        assert_eq!(mapping.host_uid(1000), Some(4242));
        assert_eq!(mapping.host_uid(0), None);
    }

    #[test]
    fn a_caller_mapping_keeps_the_callers_ids_without_capabilities() {
        let mapping = IdMapping::Caller {
            uid: 4242,
            gid: 4343,
        };
        assert_eq!(
            (mapping.builder_uid(true), mapping.builder_gid(true)),
            (4242, 4343)
        );
        assert_eq!(mapping.builder_capabilities(true), 0);
        assert_eq!(mapping.host_uid(4242), Some(4242));
        assert_eq!(mapping.host_uid(0), None);
        assert!(!mapping.is_range() && !mapping.needs_idmapped_layers());
    }

    fn range_mapping() -> IdMapping {
        let dir = tempfile::tempdir().expect("temp dir");
        // The slot itself is not used beyond its base here.
        let slot = IdSlot::acquire_in_for_tests(dir.path());
        IdMapping::HostRootRange {
            base: slot.base(),
            count: DEFAULT_RANGE,
            slot: Arc::new(slot),
        }
    }

    #[test]
    fn host_root_range_maps_into_the_unprivileged_slot() {
        let mapping = range_mapping();
        assert_eq!(mapping.host_range(), Some((0x3400_0000, 65536)));
        assert_eq!(mapping.host_uid(0), Some(0x3400_0000));
        assert_eq!(mapping.host_gid(100), Some(0x3400_0000 + 100));
        assert_eq!(mapping.host_uid(65536), None);
        assert!(mapping.needs_idmapped_layers());
        // A plain build is nixbld without capabilities; a root file system build is root
        // with the namespaced file capabilities only.
        assert_eq!(
            (mapping.builder_uid(false), mapping.builder_gid(false)),
            (1000, 100)
        );
        assert_eq!(mapping.builder_capabilities(false), 0);
        assert_eq!(
            (mapping.builder_uid(true), mapping.builder_gid(true)),
            (0, 0)
        );
        assert_eq!(mapping.builder_capabilities(true), ROOTFS_CAPABILITIES);
        assert_eq!(ROOTFS_CAPABILITIES & (1 << 21), 0, "no CAP_SYS_ADMIN");
        assert_eq!(ROOTFS_CAPABILITIES & (1 << 19), 0, "no CAP_SYS_PTRACE");
        assert_eq!(ROOTFS_CAPABILITIES.count_ones(), 13);
    }
}
