//! `kiln diff`: why two derivations differ, on pairs that differ by one environment variable
//! deep in the graph, by a source file, by an output name, and on identical inputs; the text
//! and JSON reports are insta snapshots (store paths are the same on every machine: the
//! logical store directory is fixed and the expressions need nothing from the host).
use std::path::Path;
use std::process::{Command, Output};

/// A chain base → mid → top whose base runs `script`, with a source file `notes.txt`.
fn graph(script: &str, notes: &str, top_outputs: &str) -> String {
    format!(
        r#"
let
  mk = name: attrs: derivation ({{
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
  }} // attrs);
  notes = builtins.toFile "notes.txt" "{notes}";
  base = mk "base" rec {{ args = [ "-c" script ]; script = "{script}"; }};
  mid = mk "mid" {{ args = [ "-c" "cp ${{base}} $out" ]; }};
in mk "top" {{
  args = [ "-c" "cat ${{mid}} ${{notes}} > $out" ];
  outputs = [ {top_outputs} ];
}}
"#
    )
}

const SCRIPT: &str = "mkdir -p $out/etc; echo 'NAME=AlmaLinux' > $out/etc/os-release; echo 'VERSION_ID=9.4' >> $out/etc/os-release; touch $out/stamp";

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--store-dir")
        .arg("/kiln/store")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(args)
        .current_dir(dir)
        .env_remove("KILN_STORE_DIR")
        .output()
        .unwrap()
}

/// Writes the two expressions and runs `kiln diff` (with `extra` arguments) on them.
fn diff_of(a: &str, b: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    std::fs::write(dir.path().join("a.nix"), a).unwrap();
    std::fs::write(dir.path().join("b.nix"), b).unwrap();
    let mut args = vec!["diff"];
    args.extend_from_slice(extra);
    args.extend(["a.nix", "b.nix"]);
    let output = kiln(dir.path(), &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.trim().is_empty(), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn an_environment_variable_deep_in_the_graph() {
    let changed = SCRIPT.replace("9.4", "9.5");
    let (code, text) = diff_of(
        &graph(SCRIPT, "hello", r#""out""#),
        &graph(&changed, "hello", r#""out""#),
        &[],
    );
    assert_eq!(code, 1);
    insta::assert_snapshot!(text);
    let (_, json) = diff_of(
        &graph(SCRIPT, "hello", r#""out""#),
        &graph(&changed, "hello", r#""out""#),
        &["--json"],
    );
    insta::assert_snapshot!("an_environment_variable_deep_in_the_graph_json", json);
}

#[test]
fn a_source_file() {
    let (code, text) = diff_of(
        &graph(SCRIPT, "first line\nsecond line\n", r#""out""#),
        &graph(SCRIPT, "first line\nthe second line\n", r#""out""#),
        &[],
    );
    assert_eq!(code, 1);
    insta::assert_snapshot!(text);
}

#[test]
fn an_output_name() {
    let (code, text) = diff_of(
        &graph(SCRIPT, "hello", r#""out""#),
        &graph(SCRIPT, "hello", r#""out" "doc""#),
        &[],
    );
    assert_eq!(code, 1);
    insta::assert_snapshot!(text);
}

#[test]
fn identical_inputs_do_not_differ() {
    let (code, text) = diff_of(
        &graph(SCRIPT, "hello", r#""out""#),
        &graph(SCRIPT, "hello", r#""out""#),
        &[],
    );
    assert_eq!(code, 0);
    assert!(text.ends_with("do not differ\n"), "{text}");
}
