//! `kiln lock FILE [-A ATTR]`: write or renew the lock file an expression pins, and print what
//! changed.
//!
//! The selected value says which lock it uses through an attribute `kilnLock` (the stdlib's
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
//! .drv nor any output path. The command realises `drv` with the network allowed (the lock
//! step is the one non-fixed-output build that needs it; the configuration's `[[rewrite]]`
//! rules reach it through `KILN_URL_REWRITES`, see `realise::build_settings`), writes its output
//! over `file` atomically (a temporary file in the same directory, then a rename), and prints
//! the package diff between the old and the new lock: `+ NAME VERSION` added, `- NAME VERSION`
//! removed, `~ NAME OLD → NEW` changed, or `lock is up to date`. A missing lock file is
//! created.
//!
//! The lock step is a derivation like any other: when its output is already valid it is
//! reused, not run again. Its inputs pin the release and the package set, so for frozen
//! repositories (AlmaLinux's vault) the answer does not change.
//!
//! `kiln realise` uses [`lock_problem`] before building: a selected value whose `kilnLock`
//! reports a problem fails with the exact `kiln lock` command (built from the command line the
//! user typed, see [`lock_command`]) that fixes it.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_builder::plan::{BuildPlan, BuildTarget};
use kiln_builder::scheduler::ScheduleOptions;
use kiln_eval::{Evaluator, Value};
use serde::Deserialize;

use super::input::{self, InputArgs, SelectionArgs};
use super::realise;
use crate::cli::{Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Run at most N builds at once (default: the number of CPUs).
    #[arg(short = 'j', long = "max-jobs", value_name = "N")]
    pub jobs: Option<usize>,
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
pub fn lock_target(evaluator: &Evaluator, value: &Value) -> Result<Option<LockTarget>, Failure> {
    let reported = |e: kiln_eval::EvalError| input::reported(evaluator, &e);
    let forced = evaluator
        .select_attr_path(value.clone(), "")
        .map_err(reported)?;
    let Value::Attrs(attrs) = &forced else {
        return Ok(None);
    };
    let Some(lock) = attrs.get_str("kilnLock") else {
        return Ok(None);
    };
    let field = |name: &str| -> Result<Option<String>, Failure> {
        let value = evaluator
            .select_attr_path(lock.clone(), name)
            .map_err(reported)?;
        let json = evaluator.to_json(&value).map_err(reported)?;
        match serde_json::from_str::<Option<String>>(&json) {
            Ok(text) => Ok(text),
            Err(_) => Err(anyhow!("`kilnLock.{name}` must be a string or null, not {json}").into()),
        }
    };
    let file = field("file")?.map(PathBuf::from);
    let problem = field("problem")?;
    let drv = evaluator
        .select_attr_path(lock.clone(), "drv")
        .map_err(reported)?;
    Ok(Some(LockTarget { file, drv, problem }))
}

/// The `kiln lock` command that renews the lock of the value `realise` selected with `attr`
/// (`None`: the whole input), as the user would type it: the global options they gave (those
/// not coming from the environment), the file or `-E` expression, `-A`, `--arg`, `--argstr`.
pub fn lock_command(
    global: &GlobalOptions,
    file: Option<&Path>,
    selection: &SelectionArgs,
    attr: Option<&str>,
) -> String {
    let mut words: Vec<String> = vec!["kiln".to_owned()];
    let typed = |flag: &str, variable: &str, value: Option<String>, words: &mut Vec<String>| {
        if let Some(value) = value {
            if std::env::var(variable).ok().as_deref() != Some(value.as_str()) {
                words.push(flag.to_owned());
                words.push(value);
            }
        }
    };
    typed(
        "--store-dir",
        "KILN_STORE_DIR",
        global.store_dir_flag().map(str::to_owned),
        &mut words,
    );
    typed(
        "--store",
        "KILN_STORE",
        global
            .store_root
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        &mut words,
    );
    typed(
        "--config",
        "KILN_CONFIG",
        global
            .config_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        &mut words,
    );
    for include in &global.include {
        words.push("-I".to_owned());
        words.push(include.clone());
    }
    words.push("lock".to_owned());
    match (&selection.expr, file) {
        (Some(expr), _) => {
            words.push("-E".to_owned());
            words.push(expr.clone());
        }
        (None, Some(file)) => words.push(file.to_string_lossy().into_owned()),
        (None, None) => {}
    }
    if let Some(attr) = attr {
        words.push("-A".to_owned());
        words.push(attr.to_owned());
    }
    for (flag, pairs) in [("--arg", &selection.arg), ("--argstr", &selection.argstr)] {
        for pair in pairs.chunks(2) {
            words.push(flag.to_owned());
            words.extend(pair.iter().cloned());
        }
    }
    shell_line(&words)
}

/// Words joined into one line a POSIX shell reads back as the same words.
fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            shlex::try_quote(word)
                .map(|quoted| quoted.into_owned())
                // A word with a NUL byte cannot come from a command line; show it as is.
                .unwrap_or_else(|_| word.clone())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `realise`'s check before building: if a selected value reports a lock problem, the error
/// naming the command that fixes it.
pub fn lock_problem(
    global: &GlobalOptions,
    evaluator: &Evaluator,
    value: &Value,
    file: Option<&Path>,
    selection: &SelectionArgs,
    attr: Option<&str>,
) -> Result<Option<String>, Failure> {
    Ok(lock_target(evaluator, value)?
        .and_then(|target| problem_report(global, target, file, selection, attr)))
}

/// The error text for a target with a problem: the problem and the command that fixes it.
fn problem_report(
    global: &GlobalOptions,
    target: LockTarget,
    file: Option<&Path>,
    selection: &SelectionArgs,
    attr: Option<&str>,
) -> Option<String> {
    let problem = target.problem?;
    Some(match target.file {
        None => format!(
            "error: {problem}\n  the lock is given as a value: update it in the expression, or give a lock file and run `kiln lock`\n"
        ),
        Some(_) => format!(
            "error: {problem}\n  to write it, run: {}\n",
            lock_command(global, file, selection, attr)
        ),
    })
}

/// How many attributes deep [`nested_lock_problem`] looks.
const SEARCH_DEPTH: usize = 3;

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

/// When building a selected value failed to evaluate: the lock problem of a value reachable
/// from it through at most [`SEARCH_DEPTH`] attributes or list elements (the AlmaLinux root
/// that a build uses as its `rootfs`, say), as the error naming `kiln lock … -A PATH`, where
/// PATH is `attr` followed by the path found. Values that fail to evaluate are passed over.
pub fn nested_lock_problem(
    global: &GlobalOptions,
    evaluator: &Evaluator,
    value: &Value,
    file: Option<&Path>,
    selection: &SelectionArgs,
    attr: Option<&str>,
) -> Option<String> {
    let (path, target) = search_lock_problem(evaluator, value, SEARCH_DEPTH)?;
    let full: Vec<&str> = attr
        .into_iter()
        .chain(path.iter().map(String::as_str))
        .collect();
    let full = full.join(".");
    problem_report(
        global,
        target,
        file,
        selection,
        Some(full.as_str()).filter(|path| !path.is_empty()),
    )
}

fn search_lock_problem(
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
pub fn parse_packages(text: &str, path: &str) -> anyhow::Result<Vec<LockedPackage>> {
    serde_json::from_str::<LockContents>(text)
        .map(|contents| contents.packages)
        .with_context(|| format!("{path} is not a lock file"))
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
fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".kiln-lock-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    temporary
        .write_all(contents)
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("cannot write {}", temporary.path().display()))?;
    // Lock files are meant to be committed and read by everyone: not tempfile's 0600.
    std::fs::set_permissions(
        temporary.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .with_context(|| format!("cannot set the mode of {}", temporary.path().display()))?;
    temporary
        .persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A path as the user would like to read it: relative to the current directory when inside it.
fn shown_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|relative| !relative.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

pub fn run(global: &GlobalOptions, args: LockArgs) -> Result<(), Failure> {
    let store = Arc::new(realise::open_store(global)?);
    let eval_store = Rc::new(kiln_glue::LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator(global, eval_store.clone());
    let values = input::evaluate(&evaluator, &args.input)?;
    let [value] = values.as_slice() else {
        return Err(anyhow!("`kiln lock` renews one lock: give at most one -A").into());
    };
    let what = match args.input.selection.attr.first() {
        Some(attr) => format!("`{attr}`"),
        None => "the expression".to_owned(),
    };
    let target = lock_target(&evaluator, value)?.ok_or_else(|| {
        anyhow!("{what} has no `kilnLock` attribute: select a `bootstrap.alma9` root (or something else carrying `kilnLock`) with -A")
    })?;
    let file = target.file.ok_or_else(|| {
        anyhow!("{what} takes its lock as a value, not from a file: give `lock = ./FILE.json` to let `kiln lock` write it")
    })?;

    let drvs = evaluator
        .derivations_of(target.drv)
        .map_err(|e| input::reported(&evaluator, &e))?;
    let [drv] = drvs.as_slice() else {
        return Err(anyhow!("`kilnLock.drv` of {what} must be one derivation").into());
    };
    let drv_path = store
        .store_dir()
        .parse(drv)
        .with_context(|| format!("evaluation produced a bad .drv path `{drv}`"))?;
    eval_store
        .flush()
        .context("cannot register the derivations in the store")?;
    store
        .add_temp_root(&drv_path)
        .map_err(anyhow::Error::from)?;
    let targets = [BuildTarget::all_outputs(drv_path)];
    let plan = BuildPlan::load(&store, &targets, false).map_err(anyhow::Error::from)?;
    if !plan.is_empty() {
        let options = ScheduleOptions {
            jobs: args
                .jobs
                .or(global.config.jobs)
                .unwrap_or_else(ScheduleOptions::default_jobs),
            keep_going: false,
            check: false,
            // The lock step resolves packages online: that is what this command is for.
            settings: realise::build_settings(global, true),
        };
        realise::run_builds(&store, &plan, &options)?;
    }
    let output = plan
        .targets
        .first()
        .and_then(|(_, outputs)| outputs.get("out").or_else(|| outputs.values().next()))
        .ok_or_else(|| anyhow!("the lock step has no output"))?;
    store.add_temp_root(output).map_err(anyhow::Error::from)?;
    let output_file = store.physical_path(output);
    let new_text = std::fs::read(&output_file).with_context(|| {
        format!(
            "cannot read the lock step's output {}",
            output_file.display()
        )
    })?;
    let new_packages = parse_packages(
        &String::from_utf8_lossy(&new_text),
        &store.store_dir().print(output),
    )?;

    let shown = shown_path(&file);
    let old_text = match std::fs::read(&file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow!("cannot read {shown}: {e}").into()),
    };
    if old_text.as_deref() == Some(new_text.as_slice()) {
        println!("lock is up to date: {shown}");
        return Ok(());
    }
    // A lock that does not parse (hand-edited, truncated) is replaced; its packages count as
    // none.
    let old_packages = match &old_text {
        Some(text) => parse_packages(&String::from_utf8_lossy(text), &shown).unwrap_or_else(|e| {
            eprintln!("warning: {e:#}; replacing it");
            Vec::new()
        }),
        None => Vec::new(),
    };
    write_atomically(&file, &new_text)?;
    let changes = package_diff(&old_packages, &new_packages);
    let mut stdout = String::new();
    for change in &changes {
        stdout.push_str(&format!("{change}\n"));
    }
    let count = |f: fn(&PackageChange) -> bool| changes.iter().filter(|c| f(c)).count();
    let summary = format!(
        "{} {shown}: {} package{}; {} added, {} removed, {} changed",
        if old_text.is_some() {
            "updated"
        } else {
            "created"
        },
        new_packages.len(),
        if new_packages.len() == 1 { "" } else { "s" },
        count(|c| matches!(c, PackageChange::Added { .. })),
        count(|c| matches!(c, PackageChange::Removed { .. })),
        count(|c| matches!(
            c,
            PackageChange::Changed { .. } | PackageChange::Replaced { .. }
        )),
    );
    stdout.push_str(&summary);
    stdout.push('\n');
    if changes.is_empty() {
        stdout.push_str("no package changed (the request, release or repositories did)\n");
    }
    let mut out = std::io::stdout().lock();
    out.write_all(stdout.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")?;
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
    fn shell_lines_quote_what_needs_quoting() {
        let words = ["kiln", "lock", "-E", "import ./a.nix {}", "-A", "root"].map(String::from);
        assert_eq!(
            shell_line(&words),
            "kiln lock -E 'import ./a.nix {}' -A root"
        );
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
