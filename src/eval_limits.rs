//! Limits on evaluation: `--timeout SECONDS` (the longest evaluation may run) and
//! `--max-memory SIZE` (the most resident memory the process may hold while it evaluates).
//! The evaluator has no way to be interrupted between steps, so a watch thread measures:
//! every few milliseconds it adds up the time spent evaluating and reads the process's
//! resident set from `/proc/self/statm`; past a limit it reports the error and ends the
//! process with status 1. Nothing is lost by ending there: evaluation writes only `.drv`
//! and text files, which are registered only after they are whole, and an unregistered file
//! is garbage for `kiln gc`.
//!
//! The clock runs while an evaluation is [`armed`](arm): from the first evaluator a command
//! makes until [`disarm`] (a realise disarms when it starts building; builds have their own
//! limits).
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::ByteSize;
use crate::log_events;

/// How often the watch thread looks.
const POLL: Duration = Duration::from_millis(20);

/// What is limited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalLimits {
    pub timeout: Option<Duration>,
    pub max_memory: Option<ByteSize>,
}

impl EvalLimits {
    fn is_unlimited(&self) -> bool {
        self.timeout.is_none() && self.max_memory.is_none()
    }
}

/// The clock of the evaluation.
struct Watch {
    limits: EvalLimits,
    /// Evaluation time before the current stretch.
    spent: Duration,
    /// When the current stretch began, while armed.
    since: Option<Instant>,
}

static WATCH: OnceLock<Mutex<Watch>> = OnceLock::new();

/// Starts (or resumes) the clock, starting the watch thread the first time.
pub fn arm(limits: EvalLimits) {
    if limits.is_unlimited() {
        return;
    }
    let watch = WATCH.get_or_init(|| {
        std::thread::Builder::new()
            .name("kiln-eval-limits".into())
            .spawn(watch_loop)
            .map_err(|error| log_events::warn(&format!("evaluation limits not enforced: {error}")))
            .ok();
        Mutex::new(Watch {
            limits,
            spent: Duration::ZERO,
            since: None,
        })
    });
    let mut watch = watch
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    watch.limits = limits;
    if watch.since.is_none() {
        watch.since = Some(Instant::now());
    }
}

/// Stops the clock: what follows is not evaluation.
pub fn disarm() {
    if let Some(watch) = WATCH.get() {
        let mut watch = watch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(since) = watch.since.take() {
            watch.spent += since.elapsed();
        }
    }
}

fn watch_loop() {
    loop {
        std::thread::sleep(POLL);
        let Some(watch) = WATCH.get() else {
            continue;
        };
        let verdict = {
            let watch = watch
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some(since) = watch.since else {
                continue;
            };
            exceeded(
                &watch.limits,
                watch.spent + since.elapsed(),
                resident_bytes(),
            )
        };
        if let Some(message) = verdict {
            log_events::error(&message);
            std::process::exit(1);
        }
    }
}

/// The message for a limit that `spent` and `resident` go past, if one is.
fn exceeded(limits: &EvalLimits, spent: Duration, resident: Option<u64>) -> Option<String> {
    if let Some(timeout) = limits.timeout {
        if spent >= timeout {
            return Some(format!(
                "evaluation stopped after {} s (--timeout {})",
                spent.as_secs(),
                timeout.as_secs()
            ));
        }
    }
    if let (Some(ByteSize(max)), Some(resident)) = (limits.max_memory, resident) {
        if resident > max {
            return Some(format!(
                "evaluation stopped: it used {} MiB of memory (--max-memory {} MiB)",
                resident >> 20,
                max >> 20
            ));
        }
    }
    None
}

/// The process's resident set in bytes (`/proc/self/statm`, second field, in pages).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()?;
    Some(pages * u64::try_from(page_size).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_exceeded_past_their_value() {
        let limits = EvalLimits {
            timeout: Some(Duration::from_secs(2)),
            max_memory: Some(ByteSize(100 << 20)),
        };
        assert_eq!(
            exceeded(&limits, Duration::from_secs(1), Some(50 << 20)),
            None
        );
        assert_eq!(
            exceeded(&limits, Duration::from_secs(2), None).as_deref(),
            Some("evaluation stopped after 2 s (--timeout 2)")
        );
        assert_eq!(
            exceeded(&limits, Duration::ZERO, Some(101 << 20)).as_deref(),
            Some("evaluation stopped: it used 101 MiB of memory (--max-memory 100 MiB)")
        );
        assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
    }
}
