//! How kiln reports to the person or program that runs it (`--log-format`), and the
//! machine-readable form of that report.
//!
//! Four formats: `bar` (indicatif bars, the default on a terminal; a non-terminal gets
//! `line` instead), `line` (one plain line per event, the default elsewhere), `raw` (the
//! builders' output as it comes, and messages) and `json` (one JSON object per line on
//! standard error, modelled on Nix's `--log-format internal-json`; the schema is in the README,
//! "Machine-readable progress"). The format is chosen once per process ([`set_format`]); the
//! verbs report messages through [`info`], [`warn`] and [`error`], and activities (builds,
//! downloads, substitutions, copies) through [`JsonLog`] when the format is `json` (the build
//! display is `crate::progress`).
//!
//! JSON events: `msg` (level and text), `start` (a new activity with a unique `id`, a `type`,
//! an optional `parent` and fields of its type), `progress` (bytes of a transfer), `log` (one
//! line of a builder's output), `result` (how an activity ended) and `stop` (the activity is
//! over; every `start` gets exactly one `stop`, also when kiln gives up on it).
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// The form of what kiln reports on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Progress bars on a terminal (lines elsewhere).
    Bar,
    /// One plain line per event.
    Line,
    /// The builders' output as it comes, and messages.
    Raw,
    /// One JSON object per line (see the README for the schema).
    Json,
}

impl LogFormat {
    /// The format in force for `flag`: the flag, else bars on a terminal, else lines. Bars
    /// asked for on a non-terminal become lines.
    pub fn resolve(flag: Option<LogFormat>, stderr_is_terminal: bool) -> LogFormat {
        match flag {
            Some(LogFormat::Bar) | None if stderr_is_terminal => LogFormat::Bar,
            Some(LogFormat::Bar) | None => LogFormat::Line,
            Some(other) => other,
        }
    }
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Settles the format of this process (the first call wins).
pub fn set_format(flag: Option<LogFormat>) {
    let _ = FORMAT.set(LogFormat::resolve(flag, std::io::stderr().is_terminal()));
}

/// The format in force ([`set_format`], else what a missing flag gives).
pub fn format() -> LogFormat {
    *FORMAT.get_or_init(|| LogFormat::resolve(None, std::io::stderr().is_terminal()))
}

/// Whether events are JSON.
pub fn is_json() -> bool {
    format() == LogFormat::Json
}

/// How important a message is (`level` of a `msg` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// Writes one JSON event line to standard error (whole lines: one `write` under the lock).
pub fn emit(event: &Value) {
    let mut line = event.to_string();
    line.push('\n');
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.flush();
}

/// Reports a message: a `msg` event in JSON, else the text on its own line(s), prefixed with
/// `error: ` or `warning: ` by level.
pub fn message(level: Level, text: &str) {
    if is_json() {
        emit(&json!({ "action": "msg", "level": level.name(), "msg": text }));
        return;
    }
    match level {
        Level::Error => eprintln!("error: {text}"),
        Level::Warn => eprintln!("warning: {text}"),
        Level::Info => eprintln!("{text}"),
    }
}

/// [`message`] at level info.
pub fn info(text: &str) {
    message(Level::Info, text);
}

/// [`message`] at level warn.
pub fn warn(text: &str) {
    message(Level::Warn, text);
}

/// [`message`] at level error.
pub fn error(text: &str) {
    message(Level::Error, text);
}

/// Evaluation traces and warnings in the log format: the text Nix prints (colour codes
/// removed off a terminal), or a `msg` event — level `warn` for warnings, `info` for traces
/// (Nix's internal JSON gives traces its error level; they are not errors).
pub struct EvalMessageLog;

impl kiln_eval::EvalMessages for EvalMessageLog {
    fn report(&self, message: kiln_eval::EvalMessage) {
        let text = message.render();
        if is_json() {
            let level = if message.is_warning() {
                Level::Warn
            } else {
                Level::Info
            };
            emit(&json!({ "action": "msg", "level": level.name(), "msg": text }));
        } else {
            eprintln!("{}", kiln_eval::error::for_stderr(&text));
        }
    }
}

/// The activity ids of this process: unique, from 1 (0 is "no parent").
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The kinds of activity (`type` of `start` and `result` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A derivation being built (fields `drv`, `name`).
    Build,
    /// A `builtin:fetchurl` download of a build, or an evaluation-time fetch (`url`, `name`).
    Download,
    /// A store path fetched from a binary cache (`path`, `cache`, `downloadSize`, `narSize`).
    Substitute,
    /// A store path uploaded to a binary cache (`path`, `to`, `fileSize`).
    Copy,
}

impl Activity {
    fn name(self) -> &'static str {
        match self {
            Activity::Build => "build",
            Activity::Download => "download",
            Activity::Substitute => "substitute",
            Activity::Copy => "copy",
        }
    }
}

/// The JSON event writer of activities. Each method writes one event; the caller pairs every
/// [`JsonLog::start`] with one [`JsonLog::stop`].
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLog;

impl JsonLog {
    /// Starts an activity and returns its id. `text` is a human sentence; `fields` are the
    /// activity's own fields (see [`Activity`]).
    pub fn start(&self, activity: Activity, parent: u64, text: &str, fields: Value) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut event = Map::new();
        event.insert("action".into(), "start".into());
        event.insert("id".into(), id.into());
        event.insert("parent".into(), parent.into());
        event.insert("type".into(), activity.name().into());
        event.insert("text".into(), text.into());
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        emit(&Value::Object(event));
        id
    }

    /// Bytes transferred so far by activity `id` (`expected` when the size is known).
    pub fn progress(&self, id: u64, done: u64, expected: Option<u64>, bytes_per_second: f64) {
        emit(&json!({
            "action": "progress",
            "id": id,
            "done": done,
            "expected": expected,
            "bytesPerSecond": bytes_per_second.round() as u64,
        }));
    }

    /// One line of output of activity `id` (a build's log).
    pub fn log(&self, id: u64, line: &str) {
        emit(&json!({ "action": "log", "id": id, "line": line }));
    }

    /// How activity `id` ended: `status` (`built`, `checked`, `already-valid`, `unchanged`, `fetched`,
    /// `copied`, `failed`) and fields of its type (`error`, `durationMs`, …).
    pub fn result(&self, id: u64, activity: Activity, status: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("action".into(), "result".into());
        event.insert("id".into(), id.into());
        event.insert("type".into(), activity.name().into());
        event.insert("status".into(), status.into());
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        emit(&Value::Object(event));
    }

    /// Activity `id` is over.
    pub fn stop(&self, id: u64) {
        emit(&json!({ "action": "stop", "id": id }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_on_a_terminal() {
        assert_eq!(LogFormat::resolve(None, true), LogFormat::Bar);
        assert_eq!(LogFormat::resolve(None, false), LogFormat::Line);
        assert_eq!(
            LogFormat::resolve(Some(LogFormat::Bar), false),
            LogFormat::Line
        );
        assert_eq!(
            LogFormat::resolve(Some(LogFormat::Json), true),
            LogFormat::Json
        );
        assert_eq!(
            LogFormat::resolve(Some(LogFormat::Raw), false),
            LogFormat::Raw
        );
    }
}
