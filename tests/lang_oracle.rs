//! Guards the language corpus: re-runs the oracle (Nix 2.8's `nix-instantiate`) on every case
//! of `tests/lang/` and checks that it still gives the committed expectations, and that it
//! still disagrees with the hand-written `newer-nix/` cases. Without `nix-instantiate` the
//! test fails under `CI=true` and is skipped otherwise. `KILN_LANG_FILTER` selects cases.
mod common;

use std::path::Path;

use common::lang::{cases, Expectation, LangCase};
use common::{
    corpus_dir, diff, diff_bytes, normalise, normalise_bytes, oracle_available, OracleHome, Report,
};

/// What the oracle says about one case: the same shape as the committed expectations, and
/// the `trace: …` lines of a successful run.
fn oracle_says(
    home: &OracleHome,
    case: &LangCase,
    corpus: &Path,
    flags: &[&str],
) -> (Expectation, Vec<String>) {
    let mut command = home.nix_instantiate("/nix/store", "dummy://");
    command.current_dir(corpus).arg("--eval").args(flags);
    command.arg(&case.file);
    let run = common::run_with_timeout(&mut command)
        .unwrap_or_else(|e| panic!("{}: cannot run nix-instantiate: {e}", case.name));
    match run.code {
        Some(0) => {
            let trace = run
                .stderr
                .lines()
                .filter(|line| line.starts_with("trace: "))
                .map(|line| normalise(line, corpus))
                .collect();
            (
                Expectation::Output(normalise_bytes(&run.stdout, corpus)),
                trace,
            )
        }
        _ => (
            Expectation::Error(normalise(
                run.first_error_line()
                    .unwrap_or("(no `error: ` line on stderr)"),
                corpus,
            )),
            Vec::new(),
        ),
    }
}

fn describe(expectation: &Expectation) -> String {
    match expectation {
        Expectation::Output(text) => format!("output \"{}\"", text.escape_ascii()),
        Expectation::Error(line) => format!("error {line:?}"),
    }
}

fn compare(expected: &Expectation, actual: &Expectation) -> Option<String> {
    match (expected, actual) {
        (a, b) if a == b => None,
        (Expectation::Output(a), Expectation::Output(b)) => Some(diff_bytes(a, b)),
        (Expectation::Error(a), Expectation::Error(b)) => Some(diff(a, b)),
        (a, b) => Some(format!(
            "    committed: {}\n    oracle:    {}\n",
            describe(a),
            describe(b)
        )),
    }
}

/// Every disagreement between the oracle and one case's committed expectations, as
/// (label, detail) pairs.
fn check_case(home: &OracleHome, case: &LangCase, corpus: &Path) -> Vec<(String, String)> {
    let mut failures = Vec::new();
    let (plain, trace) = oracle_says(home, case, corpus, &["--strict"]);
    if case.is_newer_nix() {
        if plain == case.plain {
            failures.push((
                case.name.clone(),
                "    Nix 2.8 now agrees with this newer-nix case: move it to a regular group \
                 and regenerate it with regen.sh\n"
                    .to_string(),
            ));
        }
        return failures;
    }
    if let Some(detail) = compare(&case.plain, &plain) {
        failures.push((case.name.clone(), detail));
        return failures;
    }
    if trace != case.trace {
        failures.push((
            format!("{} (trace)", case.name),
            format!(
                "    committed: {:?}\n    oracle:    {:?}\n",
                case.trace, trace
            ),
        ));
    }
    if let Some(json_expected) = &case.json {
        let (json, _) = oracle_says(home, case, corpus, &["--strict", "--json"]);
        if let Some(detail) = compare(json_expected, &json) {
            failures.push((format!("{} (--json)", case.name), detail));
        }
    }
    for (suffix, flags, expected) in &case.extra {
        let (actual, _) = oracle_says(home, case, corpus, flags);
        if let Some(detail) = compare(expected, &actual) {
            failures.push((format!("{} ({suffix})", case.name), detail));
        }
    }
    failures
}

#[test]
fn oracle_still_agrees_with_language_corpus() {
    if !oracle_available("lang_oracle") {
        return;
    }
    let corpus = corpus_dir("lang");
    let home = OracleHome::new();
    let cases = cases(&corpus);
    let outcomes = common::parallel_map(&cases, |case| check_case(&home, case, &corpus));
    let mut report = Report::new();
    for failures in outcomes {
        report.checked();
        for (name, detail) in failures {
            report.fail(&name, detail);
        }
    }
    report.finish("lang_oracle");
}
