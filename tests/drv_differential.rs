//! The derivation-level differential test: generated programs (`common::drvgen`) are
//! instantiated by Nix 2.8 (`nix-instantiate`, writing into a plain local store whose folder
//! is also the logical store directory) and by kiln (the same logical directory, its own
//! store root), and must agree on success or failure, the printed `.drv` paths, the bytes of
//! every `.drv` of the closure, the NAR hash of every input source, and `show-derivation -r`.
//! A divergent program is shrunk to a minimal one and reported with its first differing bytes.
//!
//! The normal run checks 300 programs. The long run is the same test with more:
//! `KILN_DIFF_PROGRAMS=50000 cargo test --release --test drv_differential -- --nocapture`
//! (`KILN_DIFF_SEED` picks another sequence of programs, `KILN_DIFF_KILN` another kiln binary). Without `nix-instantiate` the test
//! fails under `CI=true` and is skipped otherwise.
mod common;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::drvgen::{write_fixtures, Gen, Program};
use common::{diff, env_number, on_workers, oracle_available, worker_count, OracleHome};
use kiln_store::derivation::Derivation;
use kiln_store::nar;
use kiln_store::store_path::{StoreDir, StorePath};

/// One worker's oracle home, store folders and program folder.
struct Worker {
    home: OracleHome,
    /// The logical store directory of both tools, which is also the oracle's physical store.
    store_dir: PathBuf,
    kiln_root: PathBuf,
    programs: PathBuf,
    /// Programs both tools refused, and programs both instantiated (shrinking included).
    both_failed: std::cell::Cell<u64>,
    both_succeeded: std::cell::Cell<u64>,
}

impl Worker {
    fn new() -> Worker {
        let home = OracleHome::new();
        let store_dir = home.path().join("store");
        let kiln_root = home.path().join("kiln-root");
        let programs = home.path().join("programs");
        std::fs::create_dir_all(&programs).unwrap();
        write_fixtures(&programs);
        Worker {
            home,
            store_dir,
            kiln_root,
            programs,
            both_failed: Default::default(),
            both_succeeded: Default::default(),
        }
    }

    fn store_dir_text(&self) -> &str {
        self.store_dir.to_str().unwrap()
    }

    fn nix(&self, program: &str) -> Command {
        let mut command = self
            .home
            .nix_program(program, self.store_dir_text(), "local");
        command.current_dir(&self.programs);
        command
    }

    fn kiln(&self) -> Command {
        // A long run may pin another kiln binary (a release build, or a copy that later builds
        // of the workspace do not replace mid-run).
        let binary =
            std::env::var_os("KILN_DIFF_KILN").unwrap_or_else(|| env!("CARGO_BIN_EXE_kiln").into());
        let mut command = Command::new(binary);
        command
            .arg("--store-dir")
            .arg(&self.store_dir)
            .arg("--store")
            .arg(&self.kiln_root)
            .current_dir(&self.programs);
        command
    }

    /// Instantiates `program` with both tools; `None` when they agree, else what differs.
    fn divergence(&self, program: &Program) -> Option<String> {
        let file = self.programs.join("program.nix");
        std::fs::write(&file, program.render()).unwrap();
        let nix = self.nix("nix-instantiate").arg(&file).output().unwrap();
        let kiln = self.kiln().arg("instantiate").arg(&file).output().unwrap();
        match (nix.status.success(), kiln.status.success()) {
            (false, false) => {
                self.both_failed.set(self.both_failed.get() + 1);
                return None;
            }
            (true, true) => self.both_succeeded.set(self.both_succeeded.get() + 1),
            _ => {
                return Some(format!(
                    "Nix {} and kiln {}:\n  Nix:  {}\n  kiln: {}",
                    outcome(&nix),
                    outcome(&kiln),
                    first_line(&nix.stderr),
                    first_line(&kiln.stderr)
                ))
            }
        }
        let printed = String::from_utf8_lossy(&nix.stdout).into_owned();
        let kiln_printed = String::from_utf8_lossy(&kiln.stdout).into_owned();
        if printed != kiln_printed {
            return Some(format!(
                "printed paths differ:\n{}",
                diff(&printed, &kiln_printed)
            ));
        }
        let drvs: Vec<&str> = printed.lines().collect();
        if let Some(difference) = self.closure_difference(&drvs) {
            return Some(difference);
        }
        if drvs.is_empty() {
            return None;
        }
        let nix_shown = self
            .nix("nix")
            .args(["show-derivation", "-r"])
            .args(&drvs)
            .output()
            .unwrap();
        let kiln_shown = self
            .kiln()
            .args(["show-derivation", "-r"])
            .args(&drvs)
            .output()
            .unwrap();
        let (expected, actual) = (
            String::from_utf8_lossy(&nix_shown.stdout),
            String::from_utf8_lossy(&kiln_shown.stdout),
        );
        (expected != actual).then(|| {
            format!(
                "show-derivation -r differs:\n{}{}",
                diff(&expected, &actual),
                first_line(&kiln_shown.stderr)
            )
        })
    }

    /// Compares every `.drv` of the closure of `drvs` byte for byte and every other input
    /// source by NAR hash.
    fn closure_difference(&self, drvs: &[&str]) -> Option<String> {
        let dir = StoreDir::new(self.store_dir_text());
        let mut pending: VecDeque<StorePath> = drvs
            .iter()
            .filter_map(|printed| dir.parse(printed.split('!').next()?).ok())
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(path) = pending.pop_front() {
            if !seen.insert(path.clone()) {
                continue;
            }
            let nix_file = self.store_dir.join(path.base_name());
            let kiln_file = self.kiln_root.join("store").join(path.base_name());
            if !path.is_derivation() {
                let hash = |file: &Path| nar::hash_path(file).map(|(hash, _)| hash.to_sri());
                let (expected, actual) = (hash(&nix_file), hash(&kiln_file));
                if expected.as_ref().ok() != actual.as_ref().ok() {
                    return Some(format!(
                        "the NAR of {} differs: Nix {expected:?}, kiln {actual:?}",
                        dir.print(&path)
                    ));
                }
                continue;
            }
            let expected = std::fs::read(&nix_file).unwrap_or_default();
            let actual = std::fs::read(&kiln_file).unwrap_or_default();
            if expected != actual {
                return Some(format!(
                    "{} differs:\n{}",
                    dir.print(&path),
                    diff(
                        &String::from_utf8_lossy(&expected),
                        &String::from_utf8_lossy(&actual)
                    )
                ));
            }
            if let Ok(drv) = Derivation::from_drv_file(&dir, &path, &expected) {
                pending.extend(drv.input_drvs.keys().cloned());
                pending.extend(drv.input_srcs.iter().cloned());
            }
        }
        None
    }

    /// The smallest program found that still diverges, with its divergence.
    fn shrink(&self, mut program: Program, mut divergence: String) -> (Program, String) {
        'smaller: loop {
            for candidate in program.shrink_candidates() {
                if let Some(found) = self.divergence(&candidate) {
                    program = candidate;
                    divergence = found;
                    continue 'smaller;
                }
            }
            return (program, divergence);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Nix leaves its store read-only; make it deletable again.
        make_writable(self.home.path());
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !metadata.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        make_writable(&entry.path());
    }
}

fn outcome(output: &Output) -> &'static str {
    if output.status.success() {
        "succeeded"
    } else {
        "failed"
    }
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .find(|line| line.starts_with("error"))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn generated_derivation_programs_agree_with_nix() {
    if !oracle_available("generated_derivation_programs_agree_with_nix") {
        return;
    }
    let count = env_number("KILN_DIFF_PROGRAMS", 300);
    let seed = env_number("KILN_DIFF_SEED", 1);
    let workers = worker_count() as u64;
    let results: Vec<(Vec<String>, u64, u64)> = on_workers(workers, |worker_index| {
        let worker = Worker::new();
        let mut reports = Vec::new();
        let mut index = worker_index;
        while index < count {
            let program = Gen::new(seed.wrapping_mul(1_000_003) ^ index).program();
            if let Some(divergence) = worker.divergence(&program) {
                let (minimal, divergence) = worker.shrink(program, divergence);
                reports.push(format!(
                    "program #{index} (seed {seed}), shrunk:\n{}{divergence}\n",
                    minimal.render()
                ));
            }
            index += workers;
            // Long runs say how far they got.
            if (index / workers).is_multiple_of(2500) {
                eprintln!(
                    "worker {worker_index}: {} programs checked, {} divergent",
                    index / workers,
                    reports.len()
                );
            }
        }
        (
            reports,
            worker.both_succeeded.get(),
            worker.both_failed.get(),
        )
    });
    let succeeded: u64 = results.iter().map(|r| r.1).sum();
    let failed: u64 = results.iter().map(|r| r.2).sum();
    let reports: Vec<String> = results.into_iter().flat_map(|r| r.0).collect();
    eprintln!(
        "{count} generated derivation programs checked (seed {seed}): {} divergent; \
         instantiations both succeeded {succeeded}, both failed {failed}",
        reports.len()
    );
    assert!(reports.is_empty(), "\n{}", reports.join("\n"));
}
