//! Integration tests of the local store: the database, output locks, crash leftovers, GC roots
//! and collection, verification, and two kiln processes sharing one store.
//!
//! Tests that need a second process re-run this test binary on one of the `#[ignore]`d
//! `child_*` functions of its modules (named by path, `processes::child_hold_lock`), passing
//! what it should do in environment variables.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use kiln_local_store::{
    GcOptions, LocalStore, LocalStoreError, OutputClaim, OutputLock, ValidPathInfo,
};
use kiln_store::hash::Hash;
use kiln_store::nar;
use kiln_store::realisation::{DrvOutput, Realisation};
use kiln_store::store_path::{StoreDir, StorePath};

const STORE_DIR: &str = "/kiln/store";

const NIXBASE32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// A well-formed store path whose hash part encodes `n`.
fn store_path(n: u32, name: &str) -> StorePath {
    let mut hash = String::new();
    let mut rest = n;
    for _ in 0..32 {
        hash.push(NIXBASE32[(rest % 32) as usize] as char);
        rest /= 32;
    }
    StorePath::from_base_name(&format!("{hash}-{name}")).unwrap()
}

fn print(path: &StorePath) -> String {
    StoreDir::new(STORE_DIR).print(path)
}

fn open(root: &Path) -> LocalStore {
    LocalStore::open(root, StoreDir::new(STORE_DIR)).unwrap()
}

/// Writes a one-file store object and returns its info (hash of the contents, not a NAR).
fn write_object(store: &LocalStore, path: &StorePath, contents: &[u8]) -> ValidPathInfo {
    std::fs::write(store.physical_path(path), contents).unwrap();
    ValidPathInfo::new(path.clone(), Hash::sha256(contents), contents.len() as u64)
}

fn with_refs(mut info: ValidPathInfo, refs: &[&StorePath]) -> ValidPathInfo {
    info.references = refs.iter().map(|r| (*r).clone()).collect();
    info
}

/// Runs the ignored test `name` of this binary in a child process with `env` set.
fn child(name: &str, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child tests need {name}"))
}

mod database;
mod gc;
mod processes;
