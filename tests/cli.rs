//! The command line as a user meets it: diagnostics for common mistakes (insta snapshots),
//! exit codes, `--parse`, `--arg`/`--argstr`/`-A`, and `show-derivation` against Nix's.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env_remove("KILN_PATH")
        .env_remove("KILN_STORE_DIR")
        .env_remove("KILN_STORE");
    command
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli")
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the kiln binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Evaluates a fixture that must fail; returns its stderr with the fixture folder replaced by
/// `@DIR@`, so snapshots do not depend on where the checkout lives.
fn diagnostic(case: &str) -> String {
    let output = run(kiln().arg("eval").arg(fixtures().join(case)));
    assert_eq!(
        output.status.code(),
        Some(1),
        "{case} must fail with exit code 1"
    );
    String::from_utf8_lossy(&output.stderr).replace(fixtures().to_str().unwrap(), "@DIR@")
}

#[test]
fn diagnostic_missing_semicolon() {
    insta::assert_snapshot!(diagnostic("missing-semicolon.nix"));
}

#[test]
fn diagnostic_misspelled_attribute() {
    insta::assert_snapshot!(diagnostic("misspelled-attribute.nix"));
}

#[test]
fn diagnostic_wrong_argument() {
    insta::assert_snapshot!(diagnostic("wrong-argument.nix"));
}

#[test]
fn diagnostic_type_error() {
    insta::assert_snapshot!(diagnostic("type-error.nix"));
}

#[test]
fn diagnostic_undefined_variable() {
    insta::assert_snapshot!(diagnostic("undefined-variable.nix"));
}

#[test]
fn diagnostic_infinite_recursion() {
    insta::assert_snapshot!(diagnostic("infinite-recursion.nix"));
}

#[test]
fn diagnostic_stack_overflow() {
    // How deep the recursion gets depends on the build's stack frames; the frame count is
    // replaced before comparing.
    let text = diagnostic("stack-overflow.nix");
    let (rest, after) = text
        .split_once(" times)")
        .expect("the recursive frame shows its repeat count");
    let (before, count) = rest.rsplit_once(" (").expect("a repeat count");
    assert!(
        count.parse::<u64>().unwrap() > 1000,
        "recursion of {count} calls"
    );
    insta::assert_snapshot!(format!("{before} (N times){after}"));
}

#[test]
fn diagnostic_call_frames() {
    insta::assert_snapshot!(diagnostic("call-frames.nix"));
}

#[test]
fn usage_errors_exit_with_2() {
    let output = run(kiln().args(["eval", "--no-such-flag"]));
    assert_eq!(output.status.code(), Some(2));
    let output = run(kiln().arg("no-such-command"));
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn parse_only_checks_syntax() {
    let ok = run(kiln().args(["eval", "--parse", "-E", "let x = 1; in x + undefinedLater"]));
    // An undefined variable is a static error in Nix, found while parsing.
    assert_eq!(ok.status.code(), Some(1));
    let ok = run(kiln().args(["eval", "--parse", "-E", "{ a = 1; }.a"]));
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = run(kiln()
        .arg("eval")
        .arg("--parse")
        .arg(fixtures().join("missing-semicolon.nix")));
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn auto_call_with_arg_argstr_and_attribute_paths() {
    let output = run(kiln().args([
        "eval", "--strict", "--arg", "n", "20 + 1", "--argstr", "who", "kiln", "-E",
        "{ n, who, greeting ? \"hi\" }: { answer = n * 2; text = \"${greeting} ${who}\"; list = [ { x = n; } ]; }",
    ]));
    assert_eq!(
        stdout(&output),
        "{ answer = 42; list = [ { x = 21; } ]; text = \"hi kiln\"; }\n"
    );
    let output = run(kiln().args([
        "eval",
        "--arg",
        "n",
        "2",
        "-A",
        "list.0.x",
        "-E",
        "{ n }: { list = [ { x = n * 5; } ]; }",
    ]));
    assert_eq!(stdout(&output), "10\n");
}

#[test]
fn the_readme_example_evaluates() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tour.nix");
    let output = run(kiln().args(["eval", "--strict"]).arg(example));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout(&output).contains("greeting = \"hello, kiln!\";"));
    assert!(stdout(&output).contains("-curl-8.6.0.drv"));
}

/// Runs Nix 2.8 against a store under `root`; `None` (with the reason printed) when nix-bin is
/// missing outside CI.
fn oracle(root: &Path, args: &[&str]) -> Option<String> {
    let conf = root.join("nixconf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("nix.conf"),
        "build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command ca-derivations\n",
    )
    .unwrap();
    let (program, rest) = args.split_first().unwrap();
    let result = Command::new(program)
        .args(rest)
        .env("NIX_STORE_DIR", root.join("store"))
        .env("NIX_STATE_DIR", root.join("state"))
        .env("NIX_LOG_DIR", root.join("state/log"))
        .env("NIX_CONF_DIR", &conf)
        .env("NIX_REMOTE", "")
        .output();
    match result {
        Ok(output) => {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Some(stdout(&output))
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the comparison with Nix: cannot run {program}: {e}");
            None
        }
        Err(e) => panic!("CI=true but {program} cannot run: {e} (install nix-bin)"),
    }
}

/// Instantiates `file` (with `-A attr`) with kiln into a store whose logical directory is a
/// real folder, then requires `kiln show-derivation -r` to print what `nix show-derivation -r`
/// prints for the same `.drv` (which the oracle writes into that folder).
fn show_derivation_matches_nix(file: &Path, attr: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let mut instantiate = kiln();
    instantiate
        .arg("instantiate")
        .arg("--store-dir")
        .arg(&store_dir)
        .arg("--store")
        .arg(tmp.path().join("kiln"));
    if let Some(attr) = attr {
        instantiate.args(["-A", attr]);
    }
    let output = run(instantiate.arg(file));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let drv = stdout(&output).trim().to_string();
    let shown = run(kiln()
        .arg("show-derivation")
        .arg("-r")
        .arg("--store-dir")
        .arg(&store_dir)
        .arg("--store")
        .arg(tmp.path().join("kiln"))
        .arg(&drv));
    assert_eq!(
        shown.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let mut nix_args = vec!["nix-instantiate"];
    if let Some(attr) = attr {
        nix_args.extend(["-A", attr]);
    }
    nix_args.push(file.to_str().unwrap());
    let Some(nix_drv) = oracle(tmp.path(), &nix_args) else {
        return;
    };
    assert_eq!(
        nix_drv.trim(),
        drv,
        "kiln and Nix disagree on the .drv path"
    );
    let nix_shown = oracle(tmp.path(), &["nix", "show-derivation", "-r", &drv]).unwrap();
    assert_eq!(stdout(&shown), nix_shown);
}

#[test]
fn show_derivation_prints_what_nix_prints() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packages.nix");
    show_derivation_matches_nix(&example, Some("curl"));
}

#[test]
fn show_derivation_recursive_follows_input_sources_to_derivations() {
    // `dep.drv` is reachable only through a text in `inputSrcs` that names it.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("through-sources.nix");
    std::fs::write(
        &file,
        r#"let
  dep = derivation { name = "dep"; system = "x"; builder = "b"; };
  names = builtins.toFile "names-dep" (builtins.unsafeDiscardOutputDependency dep.drvPath);
in derivation { name = "top"; system = "x"; builder = "b"; args = [ "${names}" ]; }
"#,
    )
    .unwrap();
    show_derivation_matches_nix(&file, None);
}

#[test]
fn show_derivation_of_content_addressed_and_deferred_derivations() {
    // Floating outputs show their method and algorithm, deferred ones nothing (no path).
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ca.nix");
    std::fs::write(
        &file,
        r#"let
  a = derivation { name = "a"; system = "x"; builder = "b"; __contentAddressed = true; outputs = [ "out" "dev" ]; };
in derivation { name = "top"; system = "x"; builder = "b"; args = [ "${a.dev}" ]; }
"#,
    )
    .unwrap();
    show_derivation_matches_nix(&file, None);
}

#[test]
fn eval_reads_and_imports_what_to_file_wrote() {
    // `kiln eval` writes nothing to the store, yet, as with Nix (which writes the file), the
    // evaluation can read and import the texts `builtins.toFile` made.
    let store = tempfile::tempdir().expect("a temporary store root");
    let output = run(kiln().arg("--store").arg(store.path()).args([
        "eval",
        "-E",
        r#"import (builtins.toFile "three.nix" "1 + 2") + builtins.stringLength (builtins.readFile (builtins.toFile "b" "xyz"))"#,
    ]));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(stdout(&output), "6\n");
    assert!(
        !store.path().join("store").exists(),
        "kiln eval wrote to the store"
    );
}
