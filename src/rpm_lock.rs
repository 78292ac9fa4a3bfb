//! The RPM lock file of `kiln lock` and the lock check of `kiln realise`, as a library.
//!
//! A value says which lock it uses through an attribute `kilnLock` (the stdlib's
//! `bootstrap.alma9` result carries one; anything else may carry the same):
//!
//! ```nix
//! kilnLock = {
//!   file = "/abs/path/lock.json";   # where the lock lives (null: the lock is given as a value)
//!   drv = <derivation>;             # the lock step: its output is the new lock's JSON
//!   problem = null;                 # or why the current lock cannot be used (missing, stale)
//! };
//! ```
//!
//! `kilnLock` is an ordinary attribute next to the derivation's own, so it changes neither the
//! .drv nor any output path. This module owns: discovering `kilnLock` ([`lock_target`], and
//! [`search_lock_problem`] for a locked value nested in another), the lock file's schema
//! ([`LockedPackage`], [`parse_packages`]), RPM version strings (`[EPOCH:]VERSION-RELEASE`,
//! [`LockedPackage::evr`]), the package diff between two locks ([`package_diff`]: `+ NAME
//! VERSION` added, `- NAME VERSION` removed, `~ NAME OLD → NEW` changed) and the atomic write
//! of a new lock ([`write_atomically`]: a temporary file in the same directory, then a rename).
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_eval::{EvalError, Evaluator, Value};
use serde::Deserialize;

/// Why a value's `kilnLock` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LockTargetError {
    /// Evaluating the value or its `kilnLock` failed; the caller renders the error.
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("`kilnLock.{name}` must be a string or null, not {json}")]
    NotAString { name: String, json: String },
}

/// Why a lock file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockFileError {
    #[error("{path} is not a lock file")]
    NotALockFile {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a value's `kilnLock` attribute says.
pub struct LockTarget {
    /// The lock file; `None` when the expression gives the lock as a value.
    pub file: Option<PathBuf>,
    /// The lock step (a derivation value).
    pub drv: Value,
    /// Why the current lock cannot be used, if it cannot.
    pub problem: Option<String>,
}

/// Reads `value.kilnLock`, if the value is an attribute set that has one.
pub fn lock_target(
    evaluator: &Evaluator,
    value: &Value,
) -> Result<Option<LockTarget>, LockTargetError> {
    let forced = evaluator.select_attr_path(value.clone(), "")?;
    let Value::Attrs(attrs) = &forced else {
        return Ok(None);
    };
    let Some(lock) = attrs.get_str("kilnLock") else {
        return Ok(None);
    };
    let field = |name: &str| -> Result<Option<String>, LockTargetError> {
        let value = evaluator.select_attr_path(lock.clone(), name)?;
        let json = evaluator.to_json(&value)?;
        serde_json::from_slice::<Option<String>>(&json).map_err(|_| LockTargetError::NotAString {
            name: name.to_owned(),
            json: String::from_utf8_lossy(&json).into_owned(),
        })
    };
    let file = field("file")?.map(PathBuf::from);
    let problem = field("problem")?;
    let drv = evaluator.select_attr_path(lock.clone(), "drv")?;
    Ok(Some(LockTarget { file, drv, problem }))
}

/// How many attributes deep [`search_lock_problem`] looks.
pub const SEARCH_DEPTH: usize = 3;

/// Attributes of a derivation's set that never lead to another value's lock (or repeat
/// another attribute), so the search does not force them.
const NOT_SEARCHED: &[&str] = &[
    "kilnLock",
    "drvAttrs",
    "drvPath",
    "outPath",
    "out",
    "all",
    "type",
    "outputName",
    "outputs",
];

/// A value with a lock problem reachable from `value` through at most `depth` attributes or
/// list elements (the AlmaLinux root that a build uses as its `rootfs`, say): the path to it
/// and its target. Values that fail to evaluate are passed over.
pub fn search_lock_problem(
    evaluator: &Evaluator,
    value: &Value,
    depth: usize,
) -> Option<(Vec<String>, LockTarget)> {
    if let Ok(Some(target)) = lock_target(evaluator, value) {
        if target.problem.is_some() {
            return Some((Vec::new(), target));
        }
    }
    if depth == 0 {
        return None;
    }
    let forced = evaluator.select_attr_path(value.clone(), "").ok()?;
    let children: Vec<(String, Value)> = match &forced {
        Value::Attrs(attrs) => attrs
            .iter()
            .filter(|(name, _)| !NOT_SEARCHED.contains(&name.as_str()))
            .map(|(name, item)| (name.as_str().to_owned(), item.clone()))
            .collect(),
        Value::List(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| (index.to_string(), item.clone()))
            .collect(),
        _ => return None,
    };
    children.into_iter().find_map(|(name, child)| {
        let forced = evaluator.select_attr_path(child, "").ok()?;
        if !matches!(forced, Value::Attrs(_) | Value::List(_)) {
            return None;
        }
        let (mut path, target) = search_lock_problem(evaluator, &forced, depth - 1)?;
        path.insert(0, name);
        Some((path, target))
    })
}

/// One locked package, as the lock file records it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub arch: String,
    #[serde(default)]
    pub epoch: String,
    pub version: String,
    pub release: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub url: String,
}

impl LockedPackage {
    /// `[EPOCH:]VERSION-RELEASE`, the epoch only when it is not 0.
    pub fn evr(&self) -> String {
        match self.epoch.as_str() {
            "" | "0" => format!("{}-{}", self.version, self.release),
            epoch => format!("{epoch}:{}-{}", self.version, self.release),
        }
    }
}

#[derive(Debug, Deserialize)]
struct LockContents {
    #[serde(default)]
    packages: Vec<LockedPackage>,
}

/// The packages of a lock file's text (`path` names it in the error).
pub fn parse_packages(text: &str, path: &str) -> Result<Vec<LockedPackage>, LockFileError> {
    serde_json::from_str::<LockContents>(text)
        .map(|contents| contents.packages)
        .map_err(|source| LockFileError::NotALockFile {
            path: path.to_owned(),
            source,
        })
}

/// One line of the package diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageChange {
    Added {
        name: String,
        evr: String,
    },
    Removed {
        name: String,
        evr: String,
    },
    Changed {
        name: String,
        old: String,
        new: String,
    },
    /// Same version, different file (URL or sha256): a rebuild or another repository.
    Replaced {
        name: String,
        evr: String,
    },
}

impl std::fmt::Display for PackageChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackageChange::Added { name, evr } => write!(f, "+ {name} {evr}"),
            PackageChange::Removed { name, evr } => write!(f, "- {name} {evr}"),
            PackageChange::Changed { name, old, new } => write!(f, "~ {name} {old} → {new}"),
            PackageChange::Replaced { name, evr } => {
                write!(f, "~ {name} {evr} (same version, another file)")
            }
        }
    }
}

/// The differences between two package lists, by name (and architecture, shown as
/// `NAME.ARCH` where one name has several), sorted by name.
pub fn package_diff(old: &[LockedPackage], new: &[LockedPackage]) -> Vec<PackageChange> {
    let key = |p: &LockedPackage| (p.name.clone(), p.arch.clone());
    let old_by_key: BTreeMap<_, _> = old.iter().map(|p| (key(p), p)).collect();
    let new_by_key: BTreeMap<_, _> = new.iter().map(|p| (key(p), p)).collect();
    let mut arches_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in old.iter().chain(new) {
        arches_of.entry(&p.name).or_default().insert(&p.arch);
    }
    let shown = |p: &LockedPackage| {
        if arches_of.get(p.name.as_str()).map_or(0, BTreeSet::len) > 1 {
            format!("{}.{}", p.name, p.arch)
        } else {
            p.name.clone()
        }
    };
    let keys: BTreeSet<_> = old_by_key.keys().chain(new_by_key.keys()).collect();
    keys.into_iter()
        .filter_map(
            |k| match (old_by_key.get(k).copied(), new_by_key.get(k).copied()) {
                (None, Some(added)) => Some(PackageChange::Added {
                    name: shown(added),
                    evr: added.evr(),
                }),
                (Some(removed), None) => Some(PackageChange::Removed {
                    name: shown(removed),
                    evr: removed.evr(),
                }),
                (Some(before), Some(after)) if before.evr() != after.evr() => {
                    Some(PackageChange::Changed {
                        name: shown(after),
                        old: before.evr(),
                        new: after.evr(),
                    })
                }
                (Some(before), Some(after))
                    if before.sha256 != after.sha256 || before.url != after.url =>
                {
                    Some(PackageChange::Replaced {
                        name: shown(after),
                        evr: after.evr(),
                    })
                }
                _ => None,
            },
        )
        .collect()
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over `path`.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), LockFileError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| LockFileError::Io {
            action,
            path,
            source,
        }
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".kiln-lock-")
        .tempfile_in(dir)
        .map_err(io_error("cannot create a temporary file in", dir))?;
    temporary
        .write_all(contents)
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(io_error("cannot write", temporary.path()))?;
    // Lock files are meant to be committed and read by everyone: not tempfile's 0600.
    std::fs::set_permissions(
        temporary.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .map_err(io_error("cannot set the mode of", temporary.path()))?;
    temporary
        .persist(path)
        .map_err(|e| e.error)
        .map_err(io_error("cannot write", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, epoch: &str, version: &str, release: &str) -> LockedPackage {
        LockedPackage {
            name: name.to_owned(),
            arch: "x86_64".to_owned(),
            epoch: epoch.to_owned(),
            version: version.to_owned(),
            release: release.to_owned(),
            sha256: format!("{name}-{version}"),
            url: format!("https://example.org/{name}.rpm"),
        }
    }

    #[test]
    fn diff_names_added_removed_and_changed_packages() {
        let old = [
            package("foo", "0", "1", "1"),
            package("glibc", "0", "2.34", "100.el9"),
            package("same", "0", "1", "1"),
        ];
        let new = [
            package("bash", "0", "5.1.8", "9.el9"),
            package("glibc", "0", "2.34", "105.el9"),
            package("same", "0", "1", "1"),
        ];
        let lines: Vec<String> = package_diff(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "+ bash 5.1.8-9.el9",
                "- foo 1-1",
                "~ glibc 2.34-100.el9 → 2.34-105.el9"
            ]
        );
    }

    #[test]
    fn epochs_show_when_not_zero_and_same_versions_with_other_files_are_reported() {
        let old = [package("perl", "4", "5.32", "1")];
        let mut rebuilt = package("perl", "4", "5.32", "1");
        rebuilt.sha256 = "other".to_owned();
        assert_eq!(
            package_diff(&old, &[rebuilt])
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["~ perl 4:5.32-1 (same version, another file)"]
        );
        assert!(package_diff(&old, &old).is_empty());
    }

    #[test]
    fn one_name_with_two_architectures_is_shown_with_the_architecture() {
        let mut i686 = package("glibc", "0", "2.34", "1");
        i686.arch = "i686".to_owned();
        let x86 = package("glibc", "0", "2.34", "1");
        let lines: Vec<String> = package_diff(std::slice::from_ref(&x86), &[x86.clone(), i686])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines, ["+ glibc.i686 2.34-1"]);
    }

    #[test]
    fn lock_files_parse_and_bad_ones_are_named() {
        let text = r#"{"arch":"x86_64","packages":[{"arch":"noarch","epoch":"0","name":"a","release":"1","sha256":"00","url":"u","version":"2"}],"release":"9.4","request":["a"]}"#;
        let packages = parse_packages(text, "lock.json").unwrap();
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].evr(), "2-1");
        let error = parse_packages("{", "lock.json").unwrap_err().to_string();
        assert!(error.starts_with("lock.json is not a lock file"), "{error}");
    }

    #[test]
    fn atomic_writes_replace_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lock.json");
        write_atomically(&file, b"one").unwrap();
        write_atomically(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }
}
