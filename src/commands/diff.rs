//! `kiln diff A B [-A ATTR] [--json]`: why two derivations differ (see `crate::drv_diff`).
//! Each of A and B is a `.drv` path, an output path whose deriver the store knows, an
//! expression file evaluated (with `-A`/`--arg`/`--argstr`, the same for both) to a
//! derivation, or `REV:FILE`: that file as git revision REV of the repository around the
//! current directory has it (the revision's tree is exported to a temporary directory, so
//! relative imports see that revision too). Prints the differences, or says that there are
//! none; exits 0 either way.
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Args;
use kiln_glue::LocalEvalStore;
use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use super::input::{self, InputArgs, SelectionArgs};
use crate::drv_diff;
use crate::session::write_stdout;
use crate::session::{open_store, store_path_arg, Failure, GlobalOptions};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The first derivation: a `.drv`, an output path, an expression file, or REV:FILE (the
    /// file at a git revision).
    #[arg(value_name = "A")]
    pub first: PathBuf,
    /// The second derivation, in the same forms.
    #[arg(value_name = "B")]
    pub second: PathBuf,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The derivation an argument names.
fn derivation_of(
    global: &GlobalOptions,
    store: &Arc<LocalStore>,
    arg: &Path,
    selection: &SelectionArgs,
) -> Result<StorePath, Failure> {
    if let Ok(path) = store_path_arg(store, arg) {
        if path.is_derivation() {
            return Ok(path);
        }
        let info = store.query_path_info(&path).map_err(anyhow::Error::from)?;
        let deriver = match info.and_then(|info| info.deriver) {
            Some(deriver) => Some(deriver),
            None => store
                .query_valid_derivers(&path)
                .map_err(anyhow::Error::from)?
                .into_iter()
                .next(),
        };
        return deriver.ok_or_else(|| {
            anyhow!(
                "no derivation is known to have built '{}'",
                store.store_dir().print(&path)
            )
            .into()
        });
    }
    // The exported revision lives until the evaluation is done.
    let (exported, file) = match git_revision_file(arg)? {
        Some((tree, file)) => (Some(tree), file),
        None => (None, arg.to_owned()),
    };
    let eval_store = Rc::new(LocalEvalStore::new(store.clone()));
    let evaluator = input::evaluator_over(global, eval_store.clone(), store.clone());
    let input_args = InputArgs {
        file: Some(file),
        selection: selection.clone(),
    };
    let mut found = Vec::new();
    for value in input::evaluate(&evaluator, &input_args)? {
        found.extend(
            evaluator
                .derivations_of(value)
                .map_err(|e| input::reported(&evaluator, &e))?,
        );
    }
    eval_store
        .flush()
        .context("cannot register the derivations in the store")?;
    drop(exported);
    let [drv] = found.as_slice() else {
        return Err(anyhow!(
            "'{}' gives {} derivations; select one with -A",
            arg.display(),
            found.len()
        )
        .into());
    };
    Ok(store
        .store_dir()
        .parse(drv)
        .with_context(|| format!("evaluation produced a bad .drv path `{drv}`"))?)
}

/// For `REV:FILE` (a file that does not exist as written, REV a commit of the git repository
/// around the current directory): the revision's tree exported to a temporary directory, and
/// FILE's place in it.
fn git_revision_file(arg: &Path) -> anyhow::Result<Option<(tempfile::TempDir, PathBuf)>> {
    let text = arg.to_string_lossy();
    let Some((revision, file)) = text.split_once(':') else {
        return Ok(None);
    };
    if arg.exists() || revision.is_empty() {
        return Ok(None);
    }
    let git = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        std::process::Command::new("git")
            .args(args)
            .output()
            .context("cannot run git")
    };
    let commit = git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{revision}^{{commit}}"),
    ])?;
    if !commit.status.success() {
        return Ok(None);
    }
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let prefix = git(&["rev-parse", "--show-prefix"])?;
    if !top.status.success() || !prefix.status.success() {
        return Ok(None);
    }
    let top = PathBuf::from(String::from_utf8_lossy(&top.stdout).trim());
    let prefix = String::from_utf8_lossy(&prefix.stdout).trim().to_owned();
    let tree = tempfile::Builder::new()
        .prefix("kiln-diff-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut archive = std::process::Command::new("git")
        .arg("-C")
        .arg(&top)
        .args(["archive", "--format=tar", revision])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run git archive")?;
    let Some(stdout) = archive.stdout.take() else {
        return Err(anyhow!("git archive gave no output"));
    };
    let unpacked = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(tree.path())
        .stdin(stdout)
        .status()
        .context("cannot run tar")?;
    let archived = archive.wait().context("cannot run git archive")?;
    if !unpacked.success() || !archived.success() {
        return Err(anyhow!(
            "cannot export revision '{revision}' of {}",
            top.display()
        ));
    }
    // FILE is relative to the current directory, as for files of the work tree.
    let inside = tree.path().join(&prefix).join(file);
    Ok(Some((tree, inside)))
}

pub fn run(global: &GlobalOptions, args: DiffArgs) -> Result<(), Failure> {
    let store = Arc::new(open_store(global)?);
    let first = derivation_of(global, &store, &args.first, &args.selection)?;
    let second = derivation_of(global, &store, &args.second, &args.selection)?;
    let differences = drv_diff::diff(&store, &first, &second)?;
    let dir = store.store_dir();
    let (first_text, second_text) = (dir.print(&first), dir.print(&second));
    let text = if args.json {
        let mut text = drv_diff::render_json(&first_text, &second_text, &differences).to_string();
        text.push('\n');
        text
    } else if first == second {
        format!("no differences: both are {first_text}\n")
    } else if differences.is_empty() {
        format!("{first_text} and {second_text} differ only in the store paths of their inputs\n")
    } else {
        format!(
            "- {first_text}\n+ {second_text}\n{}",
            drv_diff::render_text(&differences)
        )
    };
    write_stdout(text.as_bytes())?;
    Ok(())
}
