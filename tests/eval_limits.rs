//! `--timeout` and `--max-memory` stop an evaluation that runs too long or holds too much
//! memory, with an error naming the limit, and leave an evaluation within its limits alone.
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln(args: &[&str]) -> (Output, Duration) {
    let store = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store")
        .arg(store.path())
        .args(args)
        .env_remove("KILN_LOG_FORMAT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (output, started.elapsed())
}

/// Exponential work in constant memory: minutes without a limit.
const SLOW: &str = "let fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2); in fib 45";

/// A list of 100 million strings: gigabytes without a limit.
const GREEDY: &str = "builtins.length (builtins.genList (x: toString x) 100000000)";

#[test]
fn a_timeout_stops_a_long_evaluation() {
    let (output, took) = kiln(&["--timeout", "1", "eval", "-E", SLOW]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: evaluation stopped after 1 s (--timeout 1)\n"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // As a JSON message too.
    let (output, _) = kiln(&["--log-format", "json", "--timeout", "1", "eval", "-E", SLOW]);
    let event: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(event["action"], "msg");
    assert_eq!(event["level"], "error");
}

#[test]
fn a_memory_limit_stops_a_greedy_evaluation() {
    let (output, took) = kiln(&["--max-memory", "200M", "eval", "-E", GREEDY]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: evaluation stopped: it used ")
            && stderr.ends_with("MiB of memory (--max-memory 200 MiB)\n"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn evaluations_within_their_limits_are_untouched() {
    let (output, _) = kiln(&[
        "--timeout",
        "30",
        "--max-memory",
        "1G",
        "eval",
        "-E",
        "builtins.length (builtins.genList (x: x) 1000)",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1000\n");
    let (output, _) = kiln(&["--max-memory", "12X", "eval", "-E", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid size \"12X\""));
}
