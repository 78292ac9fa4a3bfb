//! Derivations whose `.drv` depends on what the oracle's store knows at evaluation time, so the
//! chroot-store goldens of `tests/drv/` cannot hold them: Nix 2.8 (`nix-instantiate`) writes
//! into a plain local store whose directory is also the logical store directory, kiln
//! instantiates the same expression for that logical directory into a store of its own, and
//! the printed paths and `.drv` bytes must be equal. Without `nix-instantiate` the tests fail
//! under `CI=true` and are skipped otherwise.
mod common;

use std::path::Path;
use std::process::Command;

use common::{oracle_available, OracleHome};

/// Instantiates `expression` (written to a file in a fresh folder next to `hello.txt`) with
/// the oracle and with kiln; asserts the same printed path and `.drv` text.
fn same_drv_as_oracle(test: &str, expression: &str) {
    if !oracle_available(test) {
        return;
    }
    let home = OracleHome::new();
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("hello.txt"), "hello\n").unwrap();
    let file = work.join("case.nix");
    std::fs::write(&file, expression).unwrap();
    let store_dir = home.path().join("store");
    let store_dir_text = store_dir.to_str().unwrap();

    let oracle = home
        .nix_instantiate(store_dir_text, "local")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        oracle.status.success(),
        "oracle: {}",
        String::from_utf8_lossy(&oracle.stderr)
    );
    let kiln_root = home.path().join("kiln-root");
    let kiln = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store-dir")
        .arg(&store_dir)
        .arg("--store")
        .arg(&kiln_root)
        .arg("instantiate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        kiln.status.success(),
        "kiln: {}",
        String::from_utf8_lossy(&kiln.stderr)
    );
    let printed = String::from_utf8(oracle.stdout).unwrap();
    assert_eq!(String::from_utf8(kiln.stdout).unwrap(), printed);
    let drv = Path::new(printed.trim());
    let expected = std::fs::read_to_string(drv).unwrap();
    let actual =
        std::fs::read_to_string(kiln_root.join("store").join(drv.file_name().unwrap())).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn read_file_of_a_store_text_carries_its_references() {
    same_drv_as_oracle(
        "read_file_of_a_store_text_carries_its_references",
        r#"let s = builtins.toFile "n" "${./hello.txt}a";
in derivation { name = "a"; system = "x"; builder = "b"; args = [ (builtins.readFile s) ]; }"#,
    );
}

#[test]
fn read_file_of_a_text_naming_a_drv_carries_the_drv() {
    same_drv_as_oracle(
        "read_file_of_a_text_naming_a_drv_carries_the_drv",
        r#"let
  dep = derivation { name = "dep"; system = "x"; builder = "b"; };
  s = builtins.toFile "n" (builtins.unsafeDiscardOutputDependency dep.drvPath);
in derivation { name = "a"; system = "x"; builder = "b"; args = [ (builtins.readFile s) ]; }"#,
    );
}
