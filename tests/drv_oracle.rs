//! Guards the derivation corpus: re-instantiates every case of `tests/drv/` with the oracle
//! (Nix 2.8's `nix-instantiate`, writing into a fresh chroot store per case and store
//! directory) and checks that it still produces the committed goldens exactly. Without
//! `nix-instantiate` the test fails under `CI=true` and is skipped otherwise.
//! `KILN_DRV_FILTER` selects cases.
mod common;

use std::path::{Path, PathBuf};

use common::drv::{
    cases, compare, golden, other_objects, read_drv_files, Instantiation, STORE_DIRS,
};
use common::{corpus_dir, oracle_available, OracleHome, Report};

/// The folder of `root` that holds the store object `base_name` (the chroot store's
/// physical store directory).
fn physical_store(root: &Path, base_name: &str) -> Option<PathBuf> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if dir.join(base_name).exists() {
            return Some(dir);
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() && entry.file_name() != "var" {
                pending.push(path);
            }
        }
    }
    None
}

/// Makes a chroot store deletable again (Nix leaves its store read-only).
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_symlink() {
            continue;
        }
        if let Ok(meta) = path.metadata() {
            let mut perms = meta.permissions();
            perms.set_mode(perms.mode() | 0o700);
            let _ = std::fs::set_permissions(&path, perms);
            if meta.is_dir() {
                make_writable(&path);
            }
        }
    }
}

#[test]
fn oracle_still_agrees_with_derivation_goldens() {
    if !oracle_available("drv_oracle") {
        return;
    }
    let corpus = corpus_dir("drv");
    let home = OracleHome::new();
    let mut report = Report::new();
    for case in cases(&corpus) {
        for (store_dir, key) in STORE_DIRS {
            report.checked();
            let label = format!("{} ({store_dir})", case.name);
            let expected = golden(&corpus, key, &case);
            let root = tempfile::tempdir().expect("a temporary chroot store");
            let uri = format!("local?root={}", root.path().display());
            let mut command = home.nix_instantiate(store_dir, &uri);
            command.current_dir(&corpus);
            if let Some(attr) = &case.attr {
                command.args(["-A", attr]);
            }
            command.arg(&case.file);
            let run = common::run_with_timeout(&mut command)
                .unwrap_or_else(|e| panic!("{label}: cannot run nix-instantiate: {e}"));
            if run.code != Some(0) {
                report.fail(
                    &label,
                    format!(
                        "    the oracle failed ({}):\n{}\n",
                        run.describe_end(),
                        run.stderr
                    ),
                );
                continue;
            }
            let printed = run.stdout_text();
            let first = printed.lines().next().unwrap_or_default();
            let first = first.split('!').next().unwrap_or_default();
            let base_name = Path::new(first)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(store) = physical_store(root.path(), &base_name) else {
                report.fail(
                    &label,
                    format!("    {base_name} not found in the chroot store\n"),
                );
                continue;
            };
            let actual = Instantiation {
                printed,
                drv_files: read_drv_files(&store),
                other_objects: other_objects(&store),
            };
            let mut problems = compare(&expected, &actual, true).unwrap_or_default();
            if expected.other_objects != actual.other_objects {
                problems.push_str(&format!(
                    "    other store objects differ: committed {:?}, oracle {:?}\n",
                    expected.other_objects, actual.other_objects
                ));
            }
            if !problems.is_empty() {
                report.fail(&label, problems);
            }
            make_writable(root.path());
        }
    }
    report.finish("drv_oracle");
}
