//! Derivations whose `.drv` depends on what the oracle's store knows at evaluation time, or on
//! files the test writes (a binary file), so the chroot-store goldens of `tests/drv/` cannot
//! hold them: Nix 2.8 (`nix-instantiate`) writes into a plain local store whose directory is
//! also the logical store directory, kiln instantiates the same expression for that logical
//! directory into a store of its own, and the printed paths, the `.drv` bytes of the closure and
//! the bytes `show-derivation -r` prints must be equal. Without `nix-instantiate` the tests fail
//! under `CI=true` and are skipped otherwise.
mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{oracle_available, OracleHome};
use kiln_store::derivation::Derivation;
use kiln_store::store_path::{StoreDir, StorePath};

/// Every byte value but NUL (which a Nix string cannot hold): `binary.dat` of the cases.
fn every_byte_but_nul() -> Vec<u8> {
    (1..=u8::MAX).collect()
}

/// Instantiates `expression` (written to a file in a fresh folder next to `hello.txt` and
/// `binary.dat`) with the oracle and with kiln; asserts the same printed paths, the same bytes
/// of every `.drv` of the closure and the same `show-derivation -r` output.
fn same_drv_as_oracle(test: &str, expression: &str) {
    if !oracle_available(test) {
        return;
    }
    let home = OracleHome::new();
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(work.join("binary.dat"), every_byte_but_nul()).unwrap();
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
    let dir = StoreDir::new(store_dir_text);
    let mut pending: Vec<StorePath> = printed
        .lines()
        .map(|line| dir.parse(line).unwrap())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) || !path.is_derivation() {
            continue;
        }
        let expected = std::fs::read(store_dir.join(path.base_name())).unwrap();
        let actual = std::fs::read(kiln_root.join("store").join(path.base_name()))
            .unwrap_or_else(|e| panic!("kiln wrote no {}: {e}", dir.print(&path)));
        assert!(
            actual == expected,
            "{} differs:\n  Nix:  {}\n  kiln: {}",
            dir.print(&path),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(&actual)
        );
        let drv = Derivation::from_drv_file(&dir, &path, &expected).unwrap();
        pending.extend(drv.input_drvs.keys().cloned());
    }

    let drvs: Vec<&str> = printed.lines().collect();
    let oracle_shown = home
        .nix_program("nix", store_dir_text, "local")
        .args(["show-derivation", "-r"])
        .args(&drvs)
        .output()
        .unwrap();
    assert!(
        oracle_shown.status.success(),
        "oracle: {}",
        String::from_utf8_lossy(&oracle_shown.stderr)
    );
    let kiln_shown = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store-dir")
        .arg(&store_dir)
        .arg("--store")
        .arg(&kiln_root)
        .args(["show-derivation", "-r"])
        .args(&drvs)
        .output()
        .unwrap();
    assert!(
        kiln_shown.stdout == oracle_shown.stdout,
        "show-derivation -r differs:\n  Nix:  {}\n  kiln: {}{}",
        String::from_utf8_lossy(&oracle_shown.stdout),
        String::from_utf8_lossy(&kiln_shown.stdout),
        String::from_utf8_lossy(&kiln_shown.stderr)
    );
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

/// Half of `é` (a byte that is not UTF-8 on its own) and the bytes of `binary.dat`.
const BYTES_PRELUDE: &str = r#"let
  half = builtins.substring 0 1 "é";
  binary = builtins.readFile ./binary.dat;
in "#;

#[test]
fn environment_values_that_are_not_utf8_are_written_as_their_bytes() {
    same_drv_as_oracle(
        "environment_values_that_are_not_utf8_are_written_as_their_bytes",
        &format!(
            r#"{BYTES_PRELUDE}derivation {{ name = "a"; system = "x"; builder = "b"; value = binary; other = "x${{half}}y"; }}"#
        ),
    );
}

#[test]
fn a_builder_and_arguments_that_are_not_utf8_are_written_as_their_bytes() {
    same_drv_as_oracle(
        "a_builder_and_arguments_that_are_not_utf8_are_written_as_their_bytes",
        &format!(
            r#"{BYTES_PRELUDE}derivation {{ name = "a"; system = "x"; builder = "/b${{half}}"; args = [ (builtins.substring 0 2 "aé") binary "${{half}}${{half}}" ]; }}"#
        ),
    );
}

#[test]
fn attribute_names_that_are_not_utf8_are_environment_variables() {
    same_drv_as_oracle(
        "attribute_names_that_are_not_utf8_are_environment_variables",
        &format!(
            r#"{BYTES_PRELUDE}derivation {{ name = "a"; system = "x"; builder = "b"; ${{half}} = "v"; "x${{half}}y" = binary; passAsFile = [ "x${{half}}y" ]; }}"#
        ),
    );
}

#[test]
fn structured_attributes_hold_bytes_that_are_not_utf8() {
    same_drv_as_oracle(
        "structured_attributes_hold_bytes_that_are_not_utf8",
        &format!(
            r#"{BYTES_PRELUDE}derivation {{ name = "a"; system = "x"; builder = "/b${{half}}"; __structuredAttrs = true; value = binary; ${{half}} = [ half {{ ${{half}} = binary; }} ]; }}"#
        ),
    );
}

#[test]
fn dependents_hash_inputs_whose_bytes_are_not_utf8() {
    same_drv_as_oracle(
        "dependents_hash_inputs_whose_bytes_are_not_utf8",
        &format!(
            r#"{BYTES_PRELUDE}let
  dep = derivation {{ name = "dep"; system = "x"; builder = "b"; value = binary; args = [ half ]; }};
  fixed = derivation {{ name = "fixed"; system = "x"; builder = "b"; value = binary; outputHash = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="; }};
in derivation {{ name = "top"; system = "x"; builder = "${{dep}}/bin/b${{half}}"; inherit fixed; }}"#
        ),
    );
}

#[test]
fn content_addressed_derivations_with_bytes_and_their_deferred_dependents() {
    same_drv_as_oracle(
        "content_addressed_derivations_with_bytes_and_their_deferred_dependents",
        &format!(
            r#"{BYTES_PRELUDE}let
  ca = derivation {{ name = "ca"; system = "x"; builder = "b${{half}}"; value = binary; __contentAddressed = true; outputs = [ "out" "dev" ]; }};
in derivation {{ name = "top"; system = "x"; builder = "b"; args = [ "${{ca.dev}}${{half}}" ]; ${{half}} = ca; }}"#
        ),
    );
}
