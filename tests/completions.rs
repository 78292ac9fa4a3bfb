//! `kiln completions` and `kiln manpage`: the generated bash, zsh and fish scripts name every
//! verb, the bash script completes verbs and options when bash runs it, and the manual pages
//! (one per verb with `--out-dir`) render with `man`'s formatter.
use std::process::{Command, Output};

/// The verbs a user can type; each must be completed and documented.
const VERBS: [&str; 16] = [
    "eval",
    "instantiate",
    "show-derivation",
    "realise",
    "lock",
    "log",
    "path-info",
    "gc",
    "verify",
    "copy",
    "key",
    "sign",
    "shell",
    "completions",
    "manpage",
    "help",
];

fn kiln(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("KILN_STORE_DIR")
        .env_remove("KILN_STORE")
        .output()
        .expect("the kiln binary runs");
    assert!(
        output.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn tool_or_skip(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and {name} is not installed");
        }
        eprintln!("skipping: {name} is not installed");
    }
    found
}

#[test]
fn every_shell_script_names_every_verb() {
    for shell in ["bash", "zsh", "fish"] {
        let script = String::from_utf8(kiln(&["completions", shell]).stdout).unwrap();
        for verb in VERBS {
            assert!(
                script.contains(verb),
                "the {shell} script does not mention `{verb}`"
            );
        }
        // Options of a verb come along too.
        assert!(script.contains("no-out-link"), "{shell}: no --no-out-link");
    }
    let unknown = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

/// Runs the bash completion function on the words typed so far; returns the candidates.
fn complete_in_bash(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kiln.bash");
    std::fs::write(&file, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let current = words.last().unwrap();
    let previous = words[words.len() - 2];
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _kiln kiln '{current}' '{previous}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let output = Command::new("bash")
        .args(["-c", &program])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_verbs_and_their_options() {
    if !tool_or_skip("bash") {
        return;
    }
    let script = String::from_utf8(kiln(&["completions", "bash"]).stdout).unwrap();
    assert_eq!(complete_in_bash(&script, &["kiln", "rea"]), ["realise"]);
    assert_eq!(
        complete_in_bash(&script, &["kiln", "pa"]),
        ["path-info"],
        "a verb with a dash"
    );
    let options = complete_in_bash(&script, &["kiln", "realise", "--no-"]);
    assert!(options.contains(&"--no-out-link".to_owned()), "{options:?}");
    assert!(
        options.contains(&"--no-substitute".to_owned()),
        "{options:?}"
    );
    // Values of an enumerated argument.
    assert_eq!(
        complete_in_bash(&script, &["kiln", "completions", "fi"]),
        ["fish"]
    );
}

#[test]
fn the_manual_pages_name_every_verb_and_render() {
    let page = String::from_utf8(kiln(&["manpage"]).stdout).unwrap();
    assert!(page.contains(".TH kiln 1"), "{page}");
    for verb in VERBS.iter().filter(|v| **v != "help") {
        assert!(
            page.contains(&verb.replace('-', "\\-")),
            "kiln.1 does not mention `{verb}`"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    kiln(&["manpage", "--out-dir", dir.path().to_str().unwrap()]);
    let realise = std::fs::read_to_string(dir.path().join("kiln-realise.1")).unwrap();
    assert!(realise.contains("\\-\\-no\\-out\\-link"), "{realise}");
    assert!(dir.path().join("kiln.1").exists());
    if !tool_or_skip("nroff") {
        return;
    }
    let rendered = Command::new("nroff")
        .args(["-man"])
        .arg(dir.path().join("kiln-realise.1"))
        .output()
        .unwrap();
    assert!(rendered.status.success());
    // nroff emboldens by overstriking (`c BACKSPACE c`): keep the last character of each.
    let raw = String::from_utf8_lossy(&rendered.stdout);
    let mut text = String::new();
    for c in raw.chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    let text = text.replace('\u{2010}', "-");
    assert!(text.contains("--no-out-link"), "{text}");
}
