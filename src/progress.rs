//! The progress display of `kiln realise`.
//!
//! On a terminal (standard error is a tty): an indicatif display with one line per running
//! build (its name, elapsed time and the latest line of its log) under an overall bar
//! (done/total, elapsed). A `builtin:fetchurl` download turns its build's line into a byte
//! bar: bytes so far of the announced size, rate and ETA (bytes and rate alone when the server
//! announces no size). Otherwise plain lines on standard error: `building '…'`, `built '…'
//! in 1.2 s`, failures, and lock waits; builder output and download progress stay out of them
//! (the log files name what was fetched). Evaluation-time downloads (`builtins.fetchurl`) get
//! the same byte bar on a terminal ([`eval_download_bar`]) and print nothing elsewhere.
//! Substitutions from binary caches ([`SubstitutionProgress`]) get a byte bar per download
//! (bytes of the compressed size, rate, time left) on a terminal, and a line when each starts
//! and ends elsewhere.
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};
use kiln_builder::build::{BuildError, BuildEvents, BuildOutcome};
use kiln_builder::builtin_builders::{FetchProgress, ProgressCallback};
use kiln_builder::plan::PlannedBuild;
use kiln_cache::substitute::SubstituteEvent;
use kiln_store::store_path::{StoreDir, StorePath};

/// Reports builds as they start, print and end.
pub struct Progress {
    dir: StoreDir,
    display: Option<BarDisplay>,
}

struct BarDisplay {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<StorePath, RunningBar>>,
}

/// The line of one running build.
struct RunningBar {
    bar: ProgressBar,
    /// Whether it shows a download (a byte bar) rather than a spinner.
    downloading: bool,
}

/// The byte bar of a download whose size is known (the message is [`download_rate`]'s).
const DOWNLOAD_TEMPLATE: &str = "  {spinner} {prefix} [{bar:20}] {bytes}/{total_bytes} {wide_msg}";
/// The byte counter of a download of unknown size.
const DOWNLOAD_TEMPLATE_NO_SIZE: &str = "  {spinner} {prefix} {bytes} {wide_msg}";

/// The rate of a download and, when its size is known, the time left at that rate — from the
/// fetcher's own measurement of the attempt (bytes over time since it started).
fn download_rate(progress: &FetchProgress) -> String {
    let rate = progress.bytes_per_second;
    let mut text = format!("{}/s", HumanBytes(rate as u64));
    if let Some(total) = progress.total {
        if rate > 0.0 {
            let left = total.saturating_sub(progress.bytes) as f64 / rate;
            text.push_str(&format!(
                " eta {}",
                HumanDuration(Duration::from_secs_f64(left.ceil()))
            ));
        }
    }
    text
}

/// Turns `bar` into a download's byte bar (a counter when the size is unknown).
fn set_download_style(bar: &ProgressBar, progress: &FetchProgress) {
    let template = match progress.total {
        Some(_) => DOWNLOAD_TEMPLATE,
        None => DOWNLOAD_TEMPLATE_NO_SIZE,
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
}

/// Shows one progress report on a download's bar.
fn show_download(bar: &ProgressBar, progress: &FetchProgress) {
    if let Some(total) = progress.total {
        bar.set_length(total);
    }
    // A retry starts again from zero.
    bar.set_position(progress.bytes);
    bar.set_message(download_rate(progress));
}

/// A byte bar for an evaluation-time download of `name` (`builtins.fetchurl`) when standard
/// error is a terminal: a callback for the fetcher and the bar to clear when it is done.
pub fn eval_download_bar(name: &str) -> Option<(ProgressBar, ProgressCallback)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_prefix(name.to_owned());
    let for_callback = bar.clone();
    let styled = std::sync::atomic::AtomicBool::new(false);
    let callback: ProgressCallback = std::sync::Arc::new(move |progress: &FetchProgress| {
        if !styled.swap(true, std::sync::atomic::Ordering::Relaxed) {
            set_download_style(&for_callback, progress);
        }
        show_download(&for_callback, progress);
    });
    Some((bar, callback))
}

impl Progress {
    /// A display for `total` builds; bars only if standard error is a terminal.
    pub fn new(dir: StoreDir, total: usize) -> Progress {
        let display = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("[{pos}/{len} built] {elapsed_precise} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            overall.enable_steady_tick(Duration::from_millis(200));
            BarDisplay {
                multi,
                overall,
                running: Mutex::new(HashMap::new()),
            }
        });
        Progress { dir, display }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some(display) = &self.display {
            display.overall.finish_and_clear();
            let _ = display.multi.clear();
        }
    }

    fn line(&self, text: &str) {
        match &self.display {
            Some(display) => display.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

impl BuildEvents for Progress {
    fn build_started(&self, build: &PlannedBuild) {
        let drv = self.dir.print(&build.drv_path);
        match &self.display {
            Some(display) => {
                let bar = display.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix} {elapsed} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(build.name().to_owned());
                bar.enable_steady_tick(Duration::from_millis(200));
                display
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        build.drv_path.clone(),
                        RunningBar {
                            bar,
                            downloading: false,
                        },
                    );
            }
            None => eprintln!("building '{drv}'..."),
        }
    }

    fn waiting_for_lock(&self, build: &PlannedBuild, path: &StorePath) {
        self.line(&format!(
            "waiting for another kiln to finish '{}' ({})",
            self.dir.print(path),
            build.name()
        ));
    }

    fn log_line(&self, drv: &StorePath, line: &str) {
        if let Some(display) = &self.display {
            let running = display.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(running) = running.get(drv) {
                running.bar.set_message(kiln_builder::log::printable(line));
            }
        }
    }

    fn download_progress(&self, drv: &StorePath, progress: &FetchProgress) {
        let Some(display) = &self.display else {
            return;
        };
        let mut running = display.running.lock().unwrap_or_else(|p| p.into_inner());
        let Some(running) = running.get_mut(drv) else {
            return;
        };
        if !running.downloading {
            running.downloading = true;
            set_download_style(&running.bar, progress);
        }
        show_download(&running.bar, progress);
    }

    fn build_finished(&self, build: &PlannedBuild, result: &Result<BuildOutcome, BuildError>) {
        let drv = self.dir.print(&build.drv_path);
        if let Some(display) = &self.display {
            let bar = display
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&build.drv_path);
            if let Some(RunningBar { bar, .. }) = bar {
                bar.finish_and_clear();
                display.multi.remove(&bar);
            }
            display.overall.inc(1);
        }
        match result {
            Ok(BuildOutcome::Built { duration, .. }) if self.display.is_none() => {
                eprintln!("built '{drv}' in {}", seconds(*duration))
            }
            Ok(BuildOutcome::Checked { duration }) => {
                self.line(&format!("checked '{drv}' in {}", seconds(*duration)))
            }
            Ok(BuildOutcome::AlreadyValid) => {
                self.line(&format!("'{drv}' was built by another kiln"))
            }
            Ok(BuildOutcome::Unchanged { resolved }) => self.line(&format!(
                "'{drv}' is unchanged once resolved ('{}'): not rebuilt",
                self.dir.print(resolved)
            )),
            Ok(BuildOutcome::Built { .. }) => {}
            Err(error) => self.line(&format!(
                "failed '{drv}': {}",
                kiln_builder::log::printable(&error.to_string())
            )),
        }
    }
}

/// The byte bar of a substitution whose download size the narinfo gives.
const SUBSTITUTION_TEMPLATE: &str =
    "  {spinner} {prefix} [{bar:20}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
/// The byte counter of a substitution of unknown download size.
const SUBSTITUTION_TEMPLATE_NO_SIZE: &str = "  {spinner} {prefix} {bytes} {bytes_per_sec}";

/// Reports downloads from binary caches: bars on a terminal, lines elsewhere.
pub struct SubstitutionProgress {
    dir: StoreDir,
    bars: Option<(MultiProgress, Mutex<HashMap<StorePath, ProgressBar>>)>,
}

impl SubstitutionProgress {
    /// A display for the substitutions of a store of `dir`.
    pub fn new(dir: StoreDir) -> SubstitutionProgress {
        let bars = std::io::stderr().is_terminal().then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        SubstitutionProgress { dir, bars }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _)) => multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Shows one event.
    pub fn event(&self, event: SubstituteEvent<'_>) {
        match event {
            SubstituteEvent::Warning(text) => self.line(&format!("warning: {text}")),
            SubstituteEvent::Started {
                path,
                cache,
                download_size,
                nar_size,
            } => {
                if let Some((multi, running)) = &self.bars {
                    let bar = multi.add(ProgressBar::new(download_size.unwrap_or(0)));
                    let template = match download_size {
                        Some(_) => SUBSTITUTION_TEMPLATE,
                        None => SUBSTITUTION_TEMPLATE_NO_SIZE,
                    };
                    bar.set_style(
                        ProgressStyle::with_template(template)
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(path.name().to_owned());
                    bar.enable_steady_tick(Duration::from_millis(200));
                    running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(path.clone(), bar);
                    return;
                }
                let size = match download_size {
                    Some(bytes) => format!("{} download, ", HumanBytes(bytes)),
                    None => String::new(),
                };
                eprintln!(
                    "copying path '{}' from '{cache}' ({size}{} unpacked)...",
                    self.dir.print(path),
                    HumanBytes(nar_size)
                );
            }
            SubstituteEvent::Progress { path, bytes, .. } => {
                if let Some((_, running)) = &self.bars {
                    let running = running.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(bar) = running.get(path) {
                        // A new attempt starts again from zero.
                        bar.set_position(bytes);
                    }
                }
            }
            SubstituteEvent::Fetched {
                path,
                cache,
                bytes,
                elapsed,
            } => {
                if let Some((multi, running)) = &self.bars {
                    let bar = running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(path);
                    if let Some(bar) = bar {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                }
                let seconds = elapsed.as_secs_f64().max(0.001);
                self.line(&format!(
                    "fetched '{}' from '{cache}': {} in {seconds:.1} s ({}/s)",
                    self.dir.print(path),
                    HumanBytes(bytes),
                    HumanBytes((bytes as f64 / seconds) as u64)
                ));
            }
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some((multi, _)) = &self.bars {
            let _ = multi.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(bytes: u64, total: Option<u64>, bytes_per_second: f64) -> FetchProgress {
        FetchProgress {
            url: "http://127.0.0.1/x".to_owned(),
            bytes,
            total,
            bytes_per_second,
        }
    }

    #[test]
    fn a_download_shows_its_rate_and_the_time_left() {
        assert_eq!(
            download_rate(&report(1 << 20, Some(3 << 20), (1 << 20) as f64)),
            "1.00 MiB/s eta 2 seconds"
        );
        assert_eq!(download_rate(&report(10, None, 1024.0)), "1.00 KiB/s");
        assert_eq!(download_rate(&report(0, Some(10), 0.0)), "0 B/s");
    }
}
