//! Build logs: one text file per derivation under the store's log directory,
//! `ROOT/var/log/drvs/<first two characters of the .drv base name>/<the rest>` (Nix's layout,
//! uncompressed).
//!
//! Every build attempt appends to the derivation's file, starting with a header line
//! (`@kiln build <drv> pid <pid> at <unix seconds>`), so a log records every attempt: a failed
//! build's log is kept for `kiln log` and a rebuild adds to it rather than erasing the evidence.
//! [`BuildLog::latest_attempt`] returns the text of the last attempt, which is what `kiln log`
//! prints.
//!
//! Logs hold whatever builders print, so text shown on a terminal goes through [`printable`]
//! first: a build must not retitle the user's terminal, clear it, or overwrite earlier lines.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_store::store_path::StorePath;

/// The prefix of the line that opens each build attempt in a log file.
pub const ATTEMPT_HEADER: &str = "@kiln build ";

/// The log file of one derivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLog {
    file: PathBuf,
}

impl BuildLog {
    /// The log of `drv` under the log directory `log_dir` (`ROOT/var/log`).
    pub fn of(log_dir: &Path, drv: &StorePath) -> BuildLog {
        let base = drv.base_name();
        let (prefix, rest) = base.split_at(2.min(base.len()));
        BuildLog {
            file: log_dir.join("drvs").join(prefix).join(rest),
        }
    }

    /// Where the log file is.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Opens the file for appending and writes the header of a new attempt.
    pub fn start_attempt(&self, drv_printed: &str) -> io::Result<File> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        writeln!(
            file,
            "{ATTEMPT_HEADER}{drv_printed} pid {} at {now}",
            std::process::id()
        )?;
        Ok(file)
    }

    /// The whole file; `None` if no build of the derivation was ever logged.
    pub fn read_all(&self) -> io::Result<Option<String>> {
        match std::fs::read(&self.file) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The builder's output in the last attempt (without its header line).
    pub fn latest_attempt(&self) -> io::Result<Option<String>> {
        Ok(self
            .read_all()?
            .map(|text| latest_attempt_of(&text).to_owned()))
    }

    /// How many attempts the file records.
    pub fn attempts(&self) -> io::Result<usize> {
        Ok(self.read_all()?.map_or(0, |text| {
            text.lines()
                .filter(|line| line.starts_with(ATTEMPT_HEADER))
                .count()
        }))
    }
}

/// The text after the last attempt header of a log (all of it if there is none).
fn latest_attempt_of(text: &str) -> &str {
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        if line.starts_with(ATTEMPT_HEADER) {
            start = offset;
        }
    }
    &text[start..]
}

/// The last `count` lines of `text`.
/// `text` without terminal control sequences: escape sequences (CSI, OSC, ...) are removed by
/// `strip-ansi-escapes`, then every remaining control character except tab and newline (a
/// lone carriage return, BEL, DEL, C1 controls) is dropped.
pub fn printable(text: &str) -> String {
    // The stripper drops tabs with the other C0 controls: strip between them.
    let stripped: Vec<String> = text
        .split('\t')
        .map(strip_ansi_escapes::strip_str)
        .collect();
    stripped
        .join("\t")
        .chars()
        .filter(|c| !c.is_control() || *c == '\t' || *c == '\n')
        .collect()
}

pub fn tail_lines(text: &str, count: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].to_vec()
}

/// Receives each complete line a builder prints (for a progress display).
pub type LineCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// A writer that appends a build's output to its log file and hands each complete line to a
/// callback. Cloning shares the same file and line buffer.
#[derive(Clone)]
pub struct LogWriter {
    inner: Arc<Mutex<LogWriterState>>,
}

struct LogWriterState {
    file: File,
    partial: Vec<u8>,
    on_line: Option<LineCallback>,
}

impl LogWriter {
    /// Writes into `file` (opened by [`BuildLog::start_attempt`]).
    pub fn new(file: File, on_line: Option<LineCallback>) -> LogWriter {
        LogWriter {
            inner: Arc::new(Mutex::new(LogWriterState {
                file,
                partial: Vec::new(),
                on_line,
            })),
        }
    }

    /// Appends one line written by kiln itself (not by the builder).
    pub fn note(&self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        // A log that cannot be written must not fail the build; the text is still reported.
        let _ = self.clone().write_all(&bytes);
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.file.write_all(buf)?;
        if let Some(on_line) = state.on_line.clone() {
            state.partial.extend_from_slice(buf);
            while let Some(end) = state.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = state.partial.drain(..=end).collect();
                on_line(String::from_utf8_lossy(&line[..end]).trim_end_matches('\r'));
            }
            if state.partial.len() > 64 * 1024 {
                state.partial.clear();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_has_no_control_sequences() {
        let text = "a\u{1b}]0;pwned\u{7}b\u{1b}[2Jc\rd\te\u{1b}[31mred\u{1b}[0m\u{7f}\u{9b}\n";
        assert_eq!(printable(text), "abcd\tered\n");
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
    }

    fn drv() -> StorePath {
        StorePath::from_base_name("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello.drv").unwrap()
    }

    #[test]
    fn log_file_is_split_by_the_first_two_characters() {
        let log = BuildLog::of(Path::new("/r/var/log"), &drv());
        assert_eq!(
            log.file(),
            Path::new("/r/var/log/drvs/7h/7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello.drv")
        );
    }

    #[test]
    fn attempts_append_and_latest_attempt_is_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = BuildLog::of(dir.path(), &drv());
        assert_eq!(log.latest_attempt().unwrap(), None);
        let lines = Arc::new(Mutex::new(Vec::new()));
        for text in ["first\n", "second\npartial"] {
            let seen = lines.clone();
            let mut writer = LogWriter::new(
                log.start_attempt("/kiln/store/x.drv").unwrap(),
                Some(Arc::new(move |line: &str| {
                    seen.lock().unwrap().push(line.to_owned())
                })),
            );
            writer.write_all(text.as_bytes()).unwrap();
        }
        assert_eq!(log.attempts().unwrap(), 2);
        assert_eq!(log.latest_attempt().unwrap().unwrap(), "second\npartial");
        assert_eq!(*lines.lock().unwrap(), ["first", "second"]);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(tail_lines("a", 5), ["a"]);
    }
}
