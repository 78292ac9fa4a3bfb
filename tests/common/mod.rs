//! Shared machinery of the integration tests: for the corpus tests (`lang`, `lang_oracle`,
//! `drv`, `drv_oracle`) finding the corpora, running `kiln` and the oracle (Nix 2.8's
//! `nix-instantiate`) in an isolated environment with a time limit, normalising absolute
//! paths, diffing outputs, and collecting every mismatch into one report; for the build tests
//! (`realise`, `lock`) whether sandboxed busybox builds can run (`sandbox`).
//!
//! Each test binary uses a different part of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod drv;
pub mod drvgen;
pub mod exprgen;
pub mod lang;
pub mod sandbox;

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Placeholder standing for the absolute corpus directory in committed expectations.
pub const DIR_PLACEHOLDER: &str = "@DIR@";

/// Value of `KILN_CORPUS_VAR` in every run (read by `builtins.getEnv` cases).
pub const CORPUS_VAR_VALUE: &str = "value from the corpus environment";

/// Value of `KILN_CORPUS_BYTES_VAR` in every run: bytes that are not UTF-8 (`getEnv` gives
/// them as they are).
pub const CORPUS_BYTES_VAR_VALUE: &[u8] = b"\xff\xfe-\xc3\xa9";

/// Longest time one evaluation may take before it counts as hung.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable selecting a subset of cases (comma-separated substrings of the names).
pub const FILTER_VAR: &str = "KILN_LANG_FILTER";

/// Environment variable selecting a subset of derivation cases.
pub const DRV_FILTER_VAR: &str = "KILN_DRV_FILTER";

/// The root package's directory (the repository root).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Canonical absolute path of a corpus folder under `tests/`, as the oracle prints it.
pub fn corpus_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("tests").join(name);
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("corpus directory {} is unreadable: {e}", dir.display()))
}

/// Replaces the absolute corpus directory with `@DIR@`.
pub fn normalise(text: &str, corpus: &Path) -> String {
    text.replace(&*corpus.to_string_lossy(), DIR_PLACEHOLDER)
}

/// Replaces `@DIR@` with the absolute corpus directory.
pub fn substitute(text: &str, corpus: &Path) -> String {
    text.replace(DIR_PLACEHOLDER, &corpus.to_string_lossy())
}

/// `normalise` over bytes (an output that need not be UTF-8).
pub fn normalise_bytes(bytes: &[u8], corpus: &Path) -> Vec<u8> {
    replace_bytes(
        bytes,
        corpus.as_os_str().as_encoded_bytes(),
        DIR_PLACEHOLDER.as_bytes(),
    )
}

/// `substitute` over bytes.
pub fn substitute_bytes(bytes: &[u8], corpus: &Path) -> Vec<u8> {
    replace_bytes(
        bytes,
        DIR_PLACEHOLDER.as_bytes(),
        corpus.as_os_str().as_encoded_bytes(),
    )
}

/// Every occurrence of `from` (not empty) in `bytes` replaced by `to`.
fn replace_bytes(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = rest.windows(from.len()).position(|window| window == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// `diff` of two outputs given as bytes: as text when both are UTF-8, else both shown with
/// every byte outside printable ASCII escaped.
pub fn diff_bytes(expected: &[u8], actual: &[u8]) -> String {
    match (std::str::from_utf8(expected), std::str::from_utf8(actual)) {
        (Ok(expected), Ok(actual)) => diff(expected, actual),
        _ => format!(
            "    expected: \"{}\"\n    actual:   \"{}\"\n",
            expected.escape_ascii(),
            actual.escape_ascii()
        ),
    }
}

/// Whether `name` passes the comma-separated substring filter in `var` (no filter: all pass).
pub fn selected(name: &str, var: &str) -> bool {
    match std::env::var(var) {
        Ok(filter) if !filter.trim().is_empty() => filter
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .any(|part| name.contains(part)),
        _ => true,
    }
}

/// What a finished child process produced.
#[derive(Debug)]
pub struct RunOutput {
    /// Exit code; `None` when killed by a signal or by the time limit.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub timed_out: bool,
}

impl RunOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The first line of stderr that starts with `error: `.
    pub fn first_error_line(&self) -> Option<&str> {
        self.stderr.lines().find(|line| line.starts_with("error: "))
    }

    /// One line describing how the process ended, for reports.
    pub fn describe_end(&self) -> String {
        if self.timed_out {
            format!("killed after {}s", RUN_TIMEOUT.as_secs())
        } else {
            match self.code {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_string(),
            }
        }
    }
}

/// Runs `command` to completion (stdin closed), killing it after [`RUN_TIMEOUT`].
pub fn run_with_timeout(command: &mut Command) -> std::io::Result<RunOutput> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let mut stdout_pipe = child.stdout.take().expect("stdout was piped above");
    let mut stderr_pipe = child.stderr.take().expect("stderr was piped above");
    let stdout_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf);
        buf
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = stdout_reader.join().unwrap_or_default();
    let stderr = stderr_reader.join().unwrap_or_default();
    Ok(RunOutput {
        code: if timed_out { None } else { status.code() },
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
    })
}

/// The kiln binary under test.
pub fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

/// Applies the corpus environment (`getEnv` variables) to a command.
pub fn corpus_env(command: &mut Command) -> &mut Command {
    command
        .env("KILN_CORPUS_VAR", CORPUS_VAR_VALUE)
        .env(
            "KILN_CORPUS_BYTES_VAR",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(CORPUS_BYTES_VAR_VALUE),
        )
        .env_remove("KILN_CORPUS_UNSET_VAR")
        .env_remove("NIX_PATH")
        .env_remove("KILN_PATH")
}

/// Whether the oracle is installed. When it is missing: panics under `CI=true`, otherwise
/// prints why the calling test is skipped and returns false.
pub fn oracle_available(test: &str) -> bool {
    let found = Command::new("nix-instantiate")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: nix-instantiate (Debian's nix-bin) is required when CI=true, but it is not installed");
    }
    eprintln!("{test}: skipped: nix-instantiate (Debian's nix-bin) is not installed");
    false
}

/// An isolated configuration and state folder for the oracle, deleted on drop. Content-addressed
/// derivations are on (`ca-derivations`), as they always are in kiln.
pub struct OracleHome {
    dir: tempfile::TempDir,
}

impl OracleHome {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kiln-oracle-")
            .tempdir()
            .expect("a temporary folder for the oracle");
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(&conf).expect("oracle configuration folder");
        std::fs::write(
            conf.join("nix.conf"),
            "build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command ca-derivations\n",
        )
        .expect("oracle configuration file");
        OracleHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `nix-instantiate` with this home's configuration and state, the given logical store
    /// directory and store URI (`dummy://` writes nothing).
    pub fn nix_instantiate(&self, store_dir: &str, store_uri: &str) -> Command {
        self.nix_program("nix-instantiate", store_dir, store_uri)
    }

    /// Any of Nix's programs (`nix-instantiate`, `nix`) with this home's configuration and
    /// state, the given logical store directory and store URI.
    pub fn nix_program(&self, program: &str, store_dir: &str, store_uri: &str) -> Command {
        let mut command = Command::new(program);
        let home = self.path();
        command
            .env("NIX_CONF_DIR", home.join("conf"))
            .env("NIX_STATE_DIR", home.join("var"))
            .env("NIX_LOG_DIR", home.join("var/log"))
            .env("NIX_STORE_DIR", store_dir)
            .env("NIX_REMOTE", store_uri)
            // Nix keeps what caches answered (narinfos, `nix-cache-info`) in
            // `$XDG_CACHE_HOME/nix`; shared between tests, a cache URL whose port another test
            // used before would answer with that test's narinfo (another key's signature).
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env_remove("NIX_PATH");
        corpus_env(&mut command);
        command
    }
}

/// Number of cases checked at once: the child processes mostly wait (process start-up, file
/// system), so a few more than the CPUs keeps the machine busy without crowding it.
pub fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(2)
        .clamp(2, 8)
}

/// Applies `check` to every item on [`worker_count`] threads; results keep the items' order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], check: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..worker_count().min(items.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                let result = check(item);
                *results[index]
                    .lock()
                    .expect("no worker panics while holding a slot") = Some(result);
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("no worker panics while holding a slot")
                .expect("every item was checked")
        })
        .collect()
}

/// A readable difference between an expected and an actual text.
pub fn diff(expected: &str, actual: &str) -> String {
    let mut out = String::new();
    let expected_lines: Vec<&str> = expected.split_inclusive('\n').collect();
    let actual_lines: Vec<&str> = actual.split_inclusive('\n').collect();
    if expected_lines.len() <= 1 && actual_lines.len() <= 1 {
        let _ = writeln!(out, "    expected: {expected:?}");
        let _ = writeln!(out, "    actual:   {actual:?}");
        if let Some(at) = first_difference(expected, actual) {
            let _ = writeln!(
                out,
                "    first difference at byte {at}: expected {:?}, actual {:?}",
                excerpt(expected, at),
                excerpt(actual, at)
            );
        }
        return out;
    }
    for index in 0..expected_lines.len().max(actual_lines.len()) {
        match (expected_lines.get(index), actual_lines.get(index)) {
            (Some(e), Some(a)) if e == a => {
                let _ = writeln!(out, "      {:?}", e);
            }
            (e, a) => {
                if let Some(e) = e {
                    let _ = writeln!(out, "    - {:?}", e);
                }
                if let Some(a) = a {
                    let _ = writeln!(out, "    + {:?}", a);
                }
            }
        }
    }
    out
}

fn first_difference(a: &str, b: &str) -> Option<usize> {
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (common < a.len() || common < b.len()).then_some(common)
}

fn excerpt(text: &str, at: usize) -> String {
    let bytes = text.as_bytes();
    let end = (at + 40).min(bytes.len());
    String::from_utf8_lossy(&bytes[at.min(bytes.len())..end]).into_owned()
}

/// Collects the failures of all cases and fails once, listing every one of them.
#[derive(Default)]
pub struct Report {
    failures: Vec<(String, String)>,
    checked: usize,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one checked case (or case and variant).
    pub fn checked(&mut self) {
        self.checked += 1;
    }

    pub fn fail(&mut self, case: &str, detail: impl Into<String>) {
        self.failures.push((case.to_string(), detail.into()));
    }

    pub fn failure_count(&self) -> usize {
        self.failures.len()
    }

    /// Panics with every failure when there is at least one; `what` names the test.
    pub fn finish(self, what: &str) {
        if self.checked == 0 {
            panic!("{what}: no case was selected (check the filter variable)");
        }
        if self.failures.is_empty() {
            eprintln!("{what}: all {} cases pass", self.checked);
            return;
        }
        let mut text = String::new();
        for (case, detail) in &self.failures {
            let _ = writeln!(text, "--- {case}\n{}", detail.trim_end());
        }
        let _ = writeln!(
            text,
            "\n{what}: {} of {} cases fail: {}",
            self.failures.len(),
            self.checked,
            self.failures
                .iter()
                .map(|(case, _)| case.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        panic!("{text}");
    }
}

/// The message of an expected error line: the text after `error: `.
pub fn error_message(line: &str) -> &str {
    line.trim_end_matches('\n')
        .strip_prefix("error: ")
        .unwrap_or(line)
}

/// Runs `work(index)` on `workers` threads at once (index 0 to workers-1) and returns what each
/// returned, in order: the generated-program tests give each worker its own oracle home and
/// stores, and every `workers`-th program.
pub fn on_workers<R: Send>(workers: u64, work: impl Fn(u64) -> R + Sync) -> Vec<R> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|index| scope.spawn(move || work(index)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a worker panicked"))
            .collect()
    })
}

/// A number from the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
