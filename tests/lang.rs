//! Runs `kiln eval --strict` (and `--json`, and for the printing group lazily and `--xml`) on every case of the language corpus
//! (`tests/lang/`, see its README.md) and compares with the oracle's expectations, reporting
//! every mismatching case at once. `KILN_LANG_FILTER=a,b` selects the cases whose
//! `group/name` contains `a` or `b`.
mod common;

use std::path::Path;

use common::lang::{cases, Expectation, LangCase};
use common::{
    corpus_dir, diff_bytes, error_message, kiln, substitute, substitute_bytes, Report, RunOutput,
};

/// The logical store directory the expectations were generated with.
const STORE_DIR: &str = "/nix/store";

fn run_kiln(case: &LangCase, corpus: &Path, store_root: &Path, flags: &[&str]) -> RunOutput {
    let mut command = kiln();
    command
        .current_dir(corpus)
        .args(["--store-dir", STORE_DIR, "--store"])
        .arg(store_root)
        .arg("eval")
        .args(flags);
    command.arg(&case.file);
    common::corpus_env(&mut command);
    common::run_with_timeout(&mut command)
        .unwrap_or_else(|e| panic!("{}: cannot run kiln: {e}", case.name))
}

/// Compares one run with its expectation; `None` when they agree.
fn check(expected: &Expectation, run: &RunOutput, corpus: &Path) -> Option<String> {
    match expected {
        Expectation::Output(text) => {
            let want = substitute_bytes(text, corpus);
            let got = &run.stdout;
            if run.code == Some(0) && *got == want {
                return None;
            }
            let mut detail = String::new();
            if run.code != Some(0) {
                detail.push_str(&format!(
                    "    expected success, got {}; stderr:\n{}\n",
                    run.describe_end(),
                    indent(&run.stderr)
                ));
            }
            if *got != want {
                detail.push_str(&diff_bytes(&want, got));
            }
            Some(detail)
        }
        Expectation::Error(line) => {
            let message = required_message(&substitute(error_message(line), corpus));
            if run.code == Some(1) && run.stderr.contains(&message) {
                return None;
            }
            Some(format!(
                "    expected exit code 1 and stderr containing {message:?}\n    got {}, stdout {:?}, stderr:\n{}\n",
                run.describe_end(),
                run.stdout_text(),
                indent(&run.stderr)
            ))
        }
    }
}

/// The case's source (its first lines), to show with a failure.
fn source_excerpt(case: &LangCase) -> String {
    let text = std::fs::read_to_string(&case.file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", case.file.display()));
    let mut excerpt: String = text
        .lines()
        .take(6)
        .map(|line| format!("    source | {line}\n"))
        .collect();
    if text.lines().count() > 6 {
        excerpt.push_str("    source | …\n");
    }
    excerpt
}

/// Checks that the expected `trace: …` lines appear in order among the lines of stderr.
fn check_trace(expected: &[String], run: &RunOutput, corpus: &Path) -> Option<String> {
    let mut stderr_lines = run.stderr.lines();
    for line in expected {
        let want = substitute(line, corpus);
        if !stderr_lines.any(|got| got == want) {
            return Some(format!(
                "    expected the trace line {want:?} (after the previous ones) on stderr:\n{}\n",
                indent(&run.stderr)
            ));
        }
    }
    None
}

/// The part of an expected error message kiln must print. Nix 2.8's syntax errors name its
/// bison grammar's tokens (`unexpected IN, expecting ';'`), which a different parser cannot
/// reproduce, so only their `syntax error` prefix is required; every other message is
/// required in full.
fn required_message(message: &str) -> String {
    const SYNTAX_ERROR: &str = "syntax error";
    if message.starts_with(SYNTAX_ERROR) {
        SYNTAX_ERROR.to_string()
    } else {
        message.to_string()
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .take(12)
        .map(|line| format!("      | {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every mismatch of one case, as (label, detail) pairs.
fn check_case(case: &LangCase, corpus: &Path, store_root: &Path) -> Vec<(String, String)> {
    let source = source_excerpt(case);
    let plain = run_kiln(case, corpus, store_root, &["--strict"]);
    if let Some(detail) = check(&case.plain, &plain, corpus) {
        return vec![(case.name.clone(), format!("{source}{detail}"))];
    }
    if let Some(detail) = check_trace(&case.trace, &plain, corpus) {
        return vec![(
            format!("{} (trace)", case.name),
            format!("{source}{detail}"),
        )];
    }
    if let Some(json_expected) = &case.json {
        let json = run_kiln(case, corpus, store_root, &["--strict", "--json"]);
        if let Some(detail) = check(json_expected, &json, corpus) {
            return vec![(
                format!("{} (--json)", case.name),
                format!("{source}{detail}"),
            )];
        }
    }
    for (suffix, flags, expected) in &case.extra {
        let run = run_kiln(case, corpus, store_root, flags);
        if let Some(detail) = check(expected, &run, corpus) {
            return vec![(
                format!("{} ({suffix})", case.name),
                format!("{source}{detail}"),
            )];
        }
    }
    Vec::new()
}

#[test]
fn language_corpus_matches_oracle_expectations() {
    let corpus = corpus_dir("lang");
    let store_root = tempfile::tempdir().expect("a temporary store root");
    let cases = cases(&corpus);
    let outcomes =
        common::parallel_map(&cases, |case| check_case(case, &corpus, store_root.path()));
    let mut report = Report::new();
    for failures in outcomes {
        report.checked();
        for (name, detail) in failures {
            report.fail(&name, detail);
        }
    }
    report.finish("lang");
}
