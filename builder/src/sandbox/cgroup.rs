//! Per-build resource limits: one control group per sandbox, holding its init and so every
//! process of the build, with a memory limit and a process-count limit.
//!
//! Where the group is made depends on the host, found at run time from `/proc/self/mountinfo`
//! and `/proc/self/cgroup`:
//! - **cgroup v2 with the `memory` and `pids` controllers** (pure v2 hosts): as root, under
//!   `<cgroup2 mount>/kiln/` (the controllers are enabled on the way down, since the root group
//!   may hold processes but `kiln/` holds none); unprivileged, as a sibling of kiln's own group
//!   in a delegated subtree (a systemd user session delegates `user@UID.service`), which needs
//!   the controllers enabled in the parent's `cgroup.subtree_control`.
//! - **cgroup v1** (hybrid hosts, where v2 has no memory/pids controller): a group in each of the
//!   `memory` and `pids` hierarchies, nested under kiln's own group there (so any limit on kiln
//!   itself still applies), when those are writable (as root).
//!
//! When no hierarchy can hold the group (an unprivileged kiln without delegation), the build
//! runs without these limits and [`BuildCgroup::create`] says why, for the caller to print: the
//! guarantee is never weakened silently. The kernel interface is a handful of files, written
//! here directly; after the build the group is removed (it is empty then: the pid namespace
//! dies with its init).
//!
//! Memory includes the build's tmpfs pages (`/tmp`, `/dev/shm` and a tmpfs root are charged to
//! the group that writes them), so the memory limit also bounds what a build keeps in RAM-backed
//! files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::unistd::Pid;

/// The default `max-build-pids`: far above what a compiler or package manager needs, far
/// below what exhausts a host.
pub const DEFAULT_MAX_BUILD_PIDS: u64 = 4096;

/// Limits for the processes of one build; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceLimits {
    /// The most memory (anonymous, page cache and tmpfs) the build may hold, in bytes.
    pub memory_bytes: Option<u64>,
    /// The most processes and threads the build may have at once.
    pub pids: Option<u64>,
}

impl ResourceLimits {
    /// The documented defaults: half of this machine's physical memory and
    /// [`DEFAULT_MAX_BUILD_PIDS`] processes.
    pub fn defaults() -> Self {
        ResourceLimits {
            memory_bytes: physical_memory().map(|total| total / 2),
            pids: Some(DEFAULT_MAX_BUILD_PIDS),
        }
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory_bytes.is_some() || self.pids.is_some()
    }
}

/// This machine's physical memory in bytes.
pub fn physical_memory() -> Option<u64> {
    let info = nix::sys::sysinfo::sysinfo().ok()?;
    Some(info.ram_total())
}

/// The control group(s) of one running build; removed on drop.
#[derive(Debug)]
pub struct BuildCgroup {
    /// The group directories (one for v2; one per controller for v1).
    dirs: Vec<PathBuf>,
    /// Where the memory controller's files are, and which interface they follow.
    memory: Option<(PathBuf, Version)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One mounted cgroup hierarchy of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    version: Version,
    /// Where it is mounted.
    mount_point: PathBuf,
    /// The controllers it carries (for v2: those listed in its root's `cgroup.controllers`).
    controllers: Vec<String>,
    /// This process's group in it, relative to the mount point.
    own_group: PathBuf,
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

impl BuildCgroup {
    /// Makes a group with `limits` for one build. `Ok(None)` when no limit is asked for;
    /// `Err(reason)` when the host offers no writable hierarchy with the needed controllers
    /// (the reason names what is missing).
    pub fn create(limits: &ResourceLimits) -> Result<Option<BuildCgroup>, String> {
        if !limits.any() {
            return Ok(None);
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|err| format!("cannot read /proc/self/mountinfo: {err}"))?;
        let membership = fs::read_to_string("/proc/self/cgroup")
            .map_err(|err| format!("cannot read /proc/self/cgroup: {err}"))?;
        let hierarchies = hierarchies(&mountinfo, &membership);
        let name = format!(
            "build-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let v2 = hierarchies.iter().find(|h| {
            h.version == Version::V2
                && h.controllers.iter().any(|c| c == "memory")
                && h.controllers.iter().any(|c| c == "pids")
        });
        if let Some(v2) = v2 {
            return create_v2(v2, &name, limits).map(Some);
        }
        let v1 = |controller: &str| {
            hierarchies
                .iter()
                .find(|h| h.version == Version::V1 && h.controllers.iter().any(|c| c == controller))
        };
        match (v1("memory"), v1("pids")) {
            (Some(memory), Some(pids)) => create_v1(memory, pids, &name, limits).map(Some),
            _ => Err(
                "this host has no cgroup hierarchy with the memory and pids controllers".to_owned(),
            ),
        }
    }

    /// Puts `pid` (and so every process it will start) into the group.
    pub fn add_process(&self, pid: Pid) -> io::Result<()> {
        for dir in &self.dirs {
            fs::write(dir.join("cgroup.procs"), pid.as_raw().to_string())?;
        }
        Ok(())
    }

    /// Whether the kernel killed a process of the group because it reached its memory limit.
    pub fn memory_limit_hit(&self) -> bool {
        let Some((dir, version)) = &self.memory else {
            return false;
        };
        let (file, key) = match version {
            Version::V2 => ("memory.events", "oom_kill"),
            Version::V1 => ("memory.oom_control", "oom_kill"),
        };
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|text| counter(&text, key))
            .is_some_and(|count| count > 0)
    }
}

impl Drop for BuildCgroup {
    fn drop(&mut self) {
        // The build's processes are gone (its pid namespace died with init); a group whose last
        // process is still being torn down refuses removal for a moment.
        for dir in &self.dirs {
            for _ in 0..50 {
                match fs::remove_dir(dir) {
                    Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// `key N` from a flat keyed file (`memory.events`, `memory.oom_control`).
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value)
        .map_err(|err| format!("cannot write {value:?} to {}: {err}", path.display()))
}

fn make_dir(path: &Path) -> Result<(), String> {
    match fs::create_dir(path) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => Err(format!(
            "cannot create the control group {}: {err}",
            path.display()
        )),
        _ => Ok(()),
    }
}

fn create_v2(
    hierarchy: &Hierarchy,
    name: &str,
    limits: &ResourceLimits,
) -> Result<BuildCgroup, String> {
    let root = &hierarchy.mount_point;
    let parent = if nix::unistd::Uid::effective().is_root() {
        // The root group may hold processes and still hand controllers down; `kiln/` holds
        // only build groups.
        write(&root.join("cgroup.subtree_control"), "+memory +pids")?;
        let parent = root.join("kiln");
        make_dir(&parent)?;
        write(&parent.join("cgroup.subtree_control"), "+memory +pids")?;
        parent
    } else {
        // A sibling of kiln's own group: kiln's group holds kiln, so it cannot hand
        // controllers down, but a delegated parent can.
        let own = root.join(&hierarchy.own_group);
        let parent = own
            .parent()
            .filter(|parent| parent.starts_with(root) && *parent != root.as_path())
            .ok_or_else(|| {
                "kiln's control group has no delegated parent to hold build groups".to_owned()
            })?
            .to_owned();
        let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        for controller in ["memory", "pids"] {
            if !enabled.split_whitespace().any(|c| c == controller) {
                return Err(format!(
                    "the {controller} controller is not delegated to {} (cgroup.subtree_control)",
                    parent.display()
                ));
            }
        }
        parent
    };
    let dir = parent.join(name);
    make_dir(&dir)?;
    let group = BuildCgroup {
        dirs: vec![dir.clone()],
        memory: Some((dir.clone(), Version::V2)),
    };
    if let Some(bytes) = limits.memory_bytes {
        write(&dir.join("memory.max"), &bytes.to_string())?;
        // No swap beyond the limit: what the build holds is what it is charged.
        if dir.join("memory.swap.max").exists() {
            write(&dir.join("memory.swap.max"), "0")?;
        }
    }
    if let Some(pids) = limits.pids {
        write(&dir.join("pids.max"), &pids.to_string())?;
    }
    Ok(group)
}

fn create_v1(
    memory: &Hierarchy,
    pids: &Hierarchy,
    name: &str,
    limits: &ResourceLimits,
) -> Result<BuildCgroup, String> {
    let group_in = |hierarchy: &Hierarchy| -> Result<PathBuf, String> {
        let parent = hierarchy
            .mount_point
            .join(&hierarchy.own_group)
            .join("kiln");
        make_dir(&parent)?;
        let dir = parent.join(name);
        make_dir(&dir)?;
        Ok(dir)
    };
    let memory_dir = group_in(memory)?;
    let mut group = BuildCgroup {
        dirs: vec![memory_dir.clone()],
        memory: Some((memory_dir.clone(), Version::V1)),
    };
    let pids_dir = group_in(pids)?;
    group.dirs.push(pids_dir.clone());
    if let Some(bytes) = limits.memory_bytes {
        write(
            &memory_dir.join("memory.limit_in_bytes"),
            &bytes.to_string(),
        )?;
    }
    if let Some(count) = limits.pids {
        write(&pids_dir.join("pids.max"), &count.to_string())?;
    }
    Ok(group)
}

/// The cgroup hierarchies mounted for this process, with its own group in each.
fn hierarchies(mountinfo: &str, membership: &str) -> Vec<Hierarchy> {
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        // `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = before.split(' ').collect();
        let mut after_fields = after.split(' ');
        let (Some(fstype), Some(_source), Some(super_options)) = (
            after_fields.next(),
            after_fields.next(),
            after_fields.next(),
        ) else {
            continue;
        };
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        // Only mounts of a hierarchy's root show every group.
        if *root != "/" {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mount_path(mount_point));
        match fstype {
            "cgroup2" => {
                let controllers = fs::read_to_string(mount_point.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                if let Some(own_group) = own_group(membership, |id, _| id == "0") {
                    found.push(Hierarchy {
                        version: Version::V2,
                        mount_point,
                        controllers,
                        own_group,
                    });
                }
            }
            "cgroup" => {
                let controllers: Vec<String> = super_options
                    .split(',')
                    .filter(|option| !matches!(*option, "rw" | "ro") && !option.contains('='))
                    .map(str::to_owned)
                    .collect();
                let own = own_group(membership, |id, listed| {
                    id != "0"
                        && controllers
                            .iter()
                            .all(|c| listed.split(',').any(|l| l == c))
                });
                if let (Some(own_group), false) = (own, controllers.is_empty()) {
                    found.push(Hierarchy {
                        version: Version::V1,
                        mount_point,
                        controllers,
                        own_group,
                    });
                }
            }
            _ => {}
        }
    }
    found
}

/// This process's group (relative) from the `/proc/self/cgroup` line `ID:CONTROLLERS:/PATH`
/// that `matches(ID, CONTROLLERS)`.
fn own_group(membership: &str, matches: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    membership.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        matches(id, controllers).then(|| PathBuf::from(path.trim_start_matches('/')))
    })
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/jobs/1
2:cpu,cpuacct:/x
0::/
";

    #[test]
    fn v1_hierarchies_carry_their_controllers_and_our_group() {
        let found = hierarchies(HYBRID_MOUNTINFO, HYBRID_CGROUP);
        let memory = found
            .iter()
            .find(|h| h.controllers == ["memory"])
            .expect("memory hierarchy");
        assert_eq!(memory.version, Version::V1);
        assert_eq!(memory.mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(memory.own_group, Path::new("jobs/1"));
        let cpu = found
            .iter()
            .find(|h| h.controllers == ["cpu", "cpuacct"])
            .expect("cpu hierarchy");
        assert_eq!(cpu.own_group, Path::new("x"));
        assert!(found.iter().any(|h| h.version == Version::V2));
        assert!(!found
            .iter()
            .any(|h| h.controllers.iter().any(|c| c.starts_with("name"))));
    }

    #[test]
    fn flat_keyed_counters_are_read() {
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n";
        assert_eq!(counter(events, "oom_kill"), Some(2));
        assert_eq!(counter(events, "oom"), Some(1));
        assert_eq!(
            counter("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            None
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn no_limits_make_no_group() {
        assert!(matches!(
            BuildCgroup::create(&ResourceLimits::default()),
            Ok(None)
        ));
    }
}
