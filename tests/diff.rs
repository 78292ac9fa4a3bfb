//! `kiln diff`: pairs of derivations that differ by an environment variable deep in the graph
//! (text or bytes that are not UTF-8), by a source file, by an output name, by a content-addressed input's script, and identical
//! ones, in text (insta snapshots) and JSON. Expressions are instantiated into a fresh store;
//! their paths depend only on the expressions, so the snapshots are stable.
use std::path::Path;
use std::process::{Command, Output};

/// A graph top → mid → leaf, with a text source under mid; `EDIT` changes one thing.
fn graph(leaf_greeting: &str, notes: &str, top_outputs: &str, script: &str) -> String {
    format!(
        r#"
let
  leaf = derivation {{ name = "leaf"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "{script}" ]; greeting = "{leaf_greeting}"; }};
  notes = builtins.toFile "notes.txt" "{notes}";
  mid = derivation {{ name = "mid"; system = "x86_64-linux"; builder = "/bin/sh"; inherit leaf notes; }};
in derivation {{ name = "top"; system = "x86_64-linux"; builder = "/bin/sh"; inherit mid; outputs = [ {top_outputs} ]; }}
"#
    )
}

const SCRIPT: &str = r"echo hello\necho world > $out\nexit 0";
const NOTES: &str = r"one\ntwo\nthree\n";

fn kiln(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env_remove("KILN_PATH")
        .env_remove("KILN_STORE_DIR")
        .env_remove("KILN_STORE")
        .arg("--store")
        .arg(root);
    command
}

fn stdout(output: Output) -> String {
    assert!(
        output.status.success(),
        "kiln diff failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `kiln diff` of two expressions (files A and B), with `extra` arguments.
fn diff(first: &str, second: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.nix"), first).unwrap();
    std::fs::write(dir.path().join("b.nix"), second).unwrap();
    stdout(
        kiln(&dir.path().join("root"))
            .current_dir(dir.path())
            .args(["diff", "a.nix", "b.nix"])
            .args(extra)
            .output()
            .unwrap(),
    )
}

#[test]
fn an_environment_variable_deep_in_the_graph() {
    insta::assert_snapshot!(diff(
        &graph("hello", NOTES, r#""out""#, SCRIPT),
        &graph("bye", NOTES, r#""out""#, SCRIPT),
        &[]
    ));
}

#[test]
fn a_word_in_a_script() {
    insta::assert_snapshot!(diff(
        &graph("hello", NOTES, r#""out""#, SCRIPT),
        &graph(
            "hello",
            NOTES,
            r#""out""#,
            &SCRIPT.replace("world", "whole world")
        ),
        &[]
    ));
}

#[test]
fn a_source_file() {
    insta::assert_snapshot!(diff(
        &graph("hello", NOTES, r#""out""#, SCRIPT),
        &graph("hello", &NOTES.replace("two", "TWO"), r#""out""#, SCRIPT),
        &[]
    ));
}

#[test]
fn an_output_name() {
    insta::assert_snapshot!(diff(
        &graph("hello", NOTES, r#""out""#, SCRIPT),
        &graph("hello", NOTES, r#""out" "doc""#, SCRIPT),
        &[]
    ));
}

#[test]
fn identical_derivations() {
    let same = graph("hello", NOTES, r#""out""#, SCRIPT);
    let text = diff(&same, &same, &[]);
    assert!(
        text.starts_with("no differences: both are /kiln/store/"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&diff(&same, &same, &["--json"])).unwrap();
    assert_eq!(json["identical"], true);
    assert_eq!(json["differences"], serde_json::json!([]));
}

#[test]
fn json_names_the_chain_of_inputs() {
    let json: serde_json::Value = serde_json::from_str(&diff(
        &graph("hello", NOTES, r#""out""#, SCRIPT),
        &graph("bye", NOTES, r#""out""#, SCRIPT),
        &["--json"],
    ))
    .unwrap();
    assert_eq!(json["identical"], false);
    assert_eq!(
        json["differences"],
        serde_json::json!([{
            "kind": "env", "name": "greeting", "first": "hello", "second": "bye",
            "chain": ["top", "mid", "leaf"],
        }])
    );
}

/// Values that are not UTF-8 are compared as bytes: two that are shown alike (U+FFFD) still
/// differ.
#[test]
fn bytes_that_are_not_utf8_differ_as_bytes() {
    let json: serde_json::Value = serde_json::from_str(&diff(
        &graph(
            r#"${builtins.substring 1 1 "é"}"#,
            NOTES,
            r#""out""#,
            SCRIPT,
        ),
        &graph(
            r#"${builtins.substring 1 1 "ü"}"#,
            NOTES,
            r#""out""#,
            SCRIPT,
        ),
        &["--json"],
    ))
    .unwrap();
    assert_eq!(
        json["differences"],
        serde_json::json!([{
            "kind": "env", "name": "greeting", "first": "\u{fffd}", "second": "\u{fffd}",
            "chain": ["top", "mid", "leaf"],
        }])
    );
}

#[test]
fn a_content_addressed_input() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let chain = |script: &str| {
        format!(
            r#"let a = derivation {{ name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "{script}" ]; __contentAddressed = true; }};
               in derivation {{ name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${{a}} > $out" ]; }}"#
        )
    };
    std::fs::write(dir.path().join("a.nix"), chain("echo a > $out")).unwrap();
    std::fs::write(dir.path().join("b.nix"), chain("echo b > $out")).unwrap();
    let text = stdout(
        kiln(&root)
            .current_dir(dir.path())
            .args(["diff", "a.nix", "b.nix"])
            .output()
            .unwrap(),
    );
    // The dependent's arguments differ only by the input's placeholder: not reported.
    insta::assert_snapshot!(text);
}

#[test]
fn a_file_at_two_git_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("pkgs")).unwrap();
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
    };
    git(&["init", "-q"]);
    // An import relative to the file: the revision's copy of it is used.
    std::fs::write(repo.join("pkgs/leaf.nix"), r#"{ greeting = "hello"; }"#).unwrap();
    std::fs::write(
        repo.join("pkgs/default.nix"),
        r#"{ top = derivation ({ name = "top"; system = "x86_64-linux"; builder = "/bin/sh"; } // import ./leaf.nix); }"#,
    )
    .unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(repo.join("pkgs/leaf.nix"), r#"{ greeting = "bye"; }"#).unwrap();
    let text = stdout(
        kiln(&dir.path().join("root"))
            .current_dir(repo.join("pkgs"))
            .args(["diff", "HEAD:default.nix", "default.nix", "-A", "top"])
            .output()
            .unwrap(),
    );
    insta::assert_snapshot!(text);
}
