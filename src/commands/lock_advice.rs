//! The advice `kiln realise` gives when a value it builds carries a `kilnLock` whose lock is
//! missing or stale (see `crate::rpm_lock`): the problem and the exact `kiln lock` command
//! that fixes it, built from the command line the user typed (the global options they gave,
//! the file or `-E` expression, `-A`, `--arg`, `--argstr`). Shared by `realise` and `lock`,
//! which do not import each other.
use std::path::Path;

use anyhow::anyhow;
use kiln_eval::{Evaluator, Value};

use super::input::{self, SelectionArgs};
use crate::rpm_lock::{
    lock_target, search_lock_problem, LockTarget, LockTargetError, SEARCH_DEPTH,
};
use crate::session::{Failure, GlobalOptions};

/// A `kilnLock` that could not be read, as the command's failure.
pub fn target_failure(evaluator: &Evaluator, error: LockTargetError) -> Failure {
    match error {
        LockTargetError::Eval(error) => input::reported(evaluator, &error),
        other => anyhow!("{other}").into(),
    }
}

/// How the user invoked `realise`: what the `kiln lock` command that the advice names repeats.
#[derive(Clone, Copy)]
pub struct Invocation<'a> {
    pub global: &'a GlobalOptions,
    /// The file evaluated (`None` with `-E`).
    pub file: Option<&'a Path>,
    pub selection: &'a SelectionArgs,
}

/// The `kiln lock` command that renews the lock of the value `realise` selected with `attr`
/// (`None`: the whole input), as the user would type it: the global options they gave (those
/// not coming from the environment), the file or `-E` expression, `-A`, `--arg`, `--argstr`.
pub fn lock_command(invocation: Invocation<'_>, attr: Option<&str>) -> String {
    let Invocation {
        global,
        file,
        selection,
    } = invocation;
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
    invocation: Invocation<'_>,
    evaluator: &Evaluator,
    value: &Value,
    attr: Option<&str>,
) -> Result<Option<String>, Failure> {
    Ok(lock_target(evaluator, value)
        .map_err(|error| target_failure(evaluator, error))?
        .and_then(|target| problem_report(invocation, target, attr)))
}

/// The error text for a target with a problem: the problem and the command that fixes it.
fn problem_report(
    invocation: Invocation<'_>,
    target: LockTarget,
    attr: Option<&str>,
) -> Option<String> {
    let problem = target.problem?;
    Some(match target.file {
        None => format!(
            "error: {problem}\n  the lock is given as a value: update it in the expression, or give a lock file and run `kiln lock`\n"
        ),
        Some(_) => format!(
            "error: {problem}\n  to write it, run: {}\n",
            lock_command(invocation, attr)
        ),
    })
}

/// When building a selected value failed to evaluate: the lock problem of a value reachable
/// from it through at most [`SEARCH_DEPTH`] attributes or list elements (the AlmaLinux root
/// that a build uses as its `rootfs`, say), as the error naming `kiln lock … -A PATH`, where
/// PATH is `attr` followed by the path found. Values that fail to evaluate are passed over.
pub fn nested_lock_problem(
    invocation: Invocation<'_>,
    evaluator: &Evaluator,
    value: &Value,
    attr: Option<&str>,
) -> Option<String> {
    let (path, target) = search_lock_problem(evaluator, value, SEARCH_DEPTH)?;
    let full: Vec<&str> = attr
        .into_iter()
        .chain(path.iter().map(String::as_str))
        .collect();
    let full = full.join(".");
    problem_report(
        invocation,
        target,
        Some(full.as_str()).filter(|path| !path.is_empty()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_quote_what_needs_quoting() {
        let words = ["kiln", "lock", "-E", "import ./a.nix {}", "-A", "root"].map(String::from);
        assert_eq!(
            shell_line(&words),
            "kiln lock -E 'import ./a.nix {}' -A root"
        );
    }
}
