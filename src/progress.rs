//! The progress display of `kiln realise`, in the `--log-format` of the process (see
//! `crate::log_events`).
//!
//! `bar` (on a terminal): an indicatif display with one line per running
//! build (its name, elapsed time and the latest line of its log) under an overall bar
//! (done/total, elapsed). A `builtin:fetchurl` download turns its build's line into a byte
//! bar: bytes so far of the announced size, rate and ETA (bytes and rate alone when the server
//! announces no size). `line`: plain lines on standard error: `building '…'`, `built '…'
//! in 1.2 s`, failures, and lock waits; builder output and download progress stay out of them
//! (the log files name what was fetched). `raw`: the builders' output as it comes, and
//! failures. `json`: a `build` activity per build (its log lines as `log` events, a `result`
//! with its status) and a `download` activity under it per URL a `builtin:fetchurl` build
//! fetches, with `progress` events. Evaluation-time downloads (`builtins.fetchurl`) get
//! the same byte bar on a terminal, a `download` activity in JSON ([`eval_download_display`])
//! and print nothing elsewhere. Substitutions from binary caches get a byte bar per download
//! on a terminal ([`SubstitutionProgress`]; lines and JSON: `crate::substitution`).
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};
use kiln_builder::builtin_builders::{FetchProgress, ProgressCallback};
use kiln_builder::plan::PlannedBuild;
use kiln_builder::report::{BuildError, BuildEvents, BuildOutcome};
use kiln_cache::substitute::SubstituteEvent;
use kiln_store::store_path::{StoreDir, StorePath};
use serde_json::json;

use crate::log_events::{self, Activity, JsonLog, Level, LogFormat};

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

/// A download shown while it runs: `progress` receives the byte counts, `finish` ends the
/// display (clears the bar, or stops the JSON activity).
pub struct DownloadDisplay {
    pub progress: ProgressCallback,
    pub finish: Box<dyn FnOnce()>,
}

/// The display of an evaluation-time download of `name` (`builtins.fetchurl`): a byte bar
/// in the `bar` format, a `download` activity in `json`, nothing otherwise.
pub fn eval_download_display(name: &str) -> Option<DownloadDisplay> {
    match log_events::format() {
        LogFormat::Bar => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_prefix(name.to_owned());
            let for_callback = bar.clone();
            let styled = AtomicBool::new(false);
            let progress: ProgressCallback = Arc::new(move |progress: &FetchProgress| {
                if !styled.swap(true, Ordering::Relaxed) {
                    set_download_style(&for_callback, progress);
                }
                show_download(&for_callback, progress);
            });
            Some(DownloadDisplay {
                progress,
                finish: Box::new(move || bar.finish_and_clear()),
            })
        }
        LogFormat::Json => {
            let log = JsonLog;
            let id = log.start(
                Activity::Download,
                0,
                &format!("downloading '{name}'"),
                json!({ "name": name }),
            );
            let progress: ProgressCallback = Arc::new(move |progress: &FetchProgress| {
                log.progress(
                    id,
                    progress.bytes,
                    progress.total,
                    progress.bytes_per_second,
                );
            });
            Some(DownloadDisplay {
                progress,
                finish: Box::new(move || log.stop(id)),
            })
        }
        LogFormat::Line | LogFormat::Raw => None,
    }
}

/// The JSON activities of the running builds.
#[derive(Default)]
struct JsonBuilds {
    running: Mutex<HashMap<StorePath, JsonBuild>>,
}

/// The activity of one running build and of its current download.
struct JsonBuild {
    id: u64,
    /// The `download` activity under the build and its URL.
    download: Option<(u64, String)>,
}

/// Reports builds as they start, print and end.
pub struct Progress {
    dir: StoreDir,
    format: LogFormat,
    display: Option<BarDisplay>,
    json: JsonBuilds,
}

impl Progress {
    /// A display for `total` builds in the process's log format.
    pub fn new(dir: StoreDir, total: usize) -> Progress {
        let format = log_events::format();
        let display = (format == LogFormat::Bar).then(|| {
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
        Progress {
            dir,
            format,
            display,
            json: JsonBuilds::default(),
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some(display) = &self.display {
            display.overall.finish_and_clear();
            let _ = display.multi.clear();
        }
    }

    /// A message, above the bars when there are bars.
    fn message(&self, level: Level, text: &str) {
        match &self.display {
            Some(display) => display.multi.suspend(|| log_events::message(level, text)),
            None => log_events::message(level, text),
        }
    }

    fn json_running(&self) -> std::sync::MutexGuard<'_, HashMap<StorePath, JsonBuild>> {
        self.json.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// The `status` and fields of a build's JSON `result`.
fn json_result(result: &Result<BuildOutcome, BuildError>) -> (&'static str, serde_json::Value) {
    let millis = |duration: &Duration| duration.as_millis() as u64;
    match result {
        Ok(BuildOutcome::Built { duration, impure }) => (
            "built",
            json!({ "durationMs": millis(duration), "impure": impure }),
        ),
        Ok(BuildOutcome::Checked { duration }) => {
            ("checked", json!({ "durationMs": millis(duration) }))
        }
        Ok(BuildOutcome::AlreadyValid) => ("already-valid", json!({})),
        Ok(BuildOutcome::Unchanged { resolved }) => {
            ("unchanged", json!({ "resolved": resolved.to_string() }))
        }
        Err(error) => (
            "failed",
            json!({ "error": kiln_builder::log::printable(&error.to_string()) }),
        ),
    }
}

impl BuildEvents for Progress {
    fn build_started(&self, build: &PlannedBuild) {
        let drv = self.dir.print(&build.drv_path);
        match self.format {
            LogFormat::Bar => {
                let Some(display) = &self.display else {
                    return;
                };
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
            LogFormat::Line => eprintln!("building '{drv}'..."),
            LogFormat::Raw => {}
            LogFormat::Json => {
                let id = JsonLog.start(
                    Activity::Build,
                    0,
                    &format!("building '{drv}'"),
                    json!({ "drv": drv, "name": build.name() }),
                );
                self.json_running()
                    .insert(build.drv_path.clone(), JsonBuild { id, download: None });
            }
        }
    }

    fn waiting_for_lock(&self, build: &PlannedBuild, path: &StorePath) {
        self.message(
            Level::Info,
            &format!(
                "waiting for another kiln to finish '{}' ({})",
                self.dir.print(path),
                build.name()
            ),
        );
    }

    fn warning(&self, text: &str) {
        self.message(Level::Warn, text);
    }

    fn log_line(&self, drv: &StorePath, line: &str) {
        match self.format {
            LogFormat::Bar => {
                if let Some(display) = &self.display {
                    let running = display.running.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(running) = running.get(drv) {
                        running.bar.set_message(kiln_builder::log::printable(line));
                    }
                }
            }
            LogFormat::Raw => {
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(stderr, "{line}");
            }
            LogFormat::Json => {
                let id = self.json_running().get(drv).map(|build| build.id);
                if let Some(id) = id {
                    JsonLog.log(id, line);
                }
            }
            LogFormat::Line => {}
        }
    }

    fn download_progress(&self, drv: &StorePath, progress: &FetchProgress) {
        if self.format == LogFormat::Json {
            let mut running = self.json_running();
            let Some(build) = running.get_mut(drv) else {
                return;
            };
            let id = match &build.download {
                Some((id, url)) if *url == progress.url => *id,
                other => {
                    // A new URL (a mirror, after a failed one): a new download activity.
                    if let Some((previous, _)) = other {
                        JsonLog.stop(*previous);
                    }
                    let id = JsonLog.start(
                        Activity::Download,
                        build.id,
                        &format!("downloading '{}'", progress.url),
                        json!({ "url": progress.url }),
                    );
                    build.download = Some((id, progress.url.clone()));
                    id
                }
            };
            JsonLog.progress(
                id,
                progress.bytes,
                progress.total,
                progress.bytes_per_second,
            );
            return;
        }
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
        if self.format == LogFormat::Json {
            let Some(running) = self.json_running().remove(&build.drv_path) else {
                return;
            };
            if let Some((download, _)) = running.download {
                JsonLog.stop(download);
            }
            let (status, fields) = json_result(result);
            JsonLog.result(running.id, Activity::Build, status, fields);
            JsonLog.stop(running.id);
            return;
        }
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
            Ok(BuildOutcome::Built { duration, .. }) if self.format == LogFormat::Line => {
                eprintln!("built '{drv}' in {}", seconds(*duration))
            }
            Ok(BuildOutcome::Checked { duration }) => self.message(
                Level::Info,
                &format!("checked '{drv}' in {}", seconds(*duration)),
            ),
            Ok(BuildOutcome::AlreadyValid) => {
                self.message(Level::Info, &format!("'{drv}' was built by another kiln"))
            }
            Ok(BuildOutcome::Unchanged { resolved }) => self.message(
                Level::Info,
                &format!(
                    "'{drv}' is unchanged once resolved ('{}'): not rebuilt",
                    self.dir.print(resolved)
                ),
            ),
            Ok(BuildOutcome::Built { .. }) => {}
            Err(error) => self.message(
                Level::Info,
                &format!(
                    "failed '{drv}': {}",
                    kiln_builder::log::printable(&error.to_string())
                ),
            ),
        }
    }
}

/// The byte bar of a substitution whose download size the narinfo gives.
const SUBSTITUTION_TEMPLATE: &str =
    "  {spinner} {prefix} [{bar:20}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
/// The byte counter of a substitution of unknown download size.
const SUBSTITUTION_TEMPLATE_NO_SIZE: &str = "  {spinner} {prefix} {bytes} {bytes_per_sec}";

/// The byte bars of downloads from binary caches (`bar` log format only; lines and JSON are
/// `crate::substitution`'s).
pub struct SubstitutionProgress {
    dir: StoreDir,
    multi: MultiProgress,
    running: Mutex<HashMap<StorePath, ProgressBar>>,
}

impl SubstitutionProgress {
    /// The bars for the substitutions of a store of `dir`, `None` unless the log format is
    /// `bar`.
    pub fn new(dir: StoreDir) -> Option<SubstitutionProgress> {
        (log_events::format() == LogFormat::Bar).then(|| SubstitutionProgress {
            dir,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            running: Mutex::new(HashMap::new()),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<StorePath, ProgressBar>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Shows one event.
    pub fn event(&self, event: SubstituteEvent<'_>) {
        match event {
            SubstituteEvent::Warning(text) => self.multi.suspend(|| log_events::warn(&text)),
            SubstituteEvent::Started {
                path,
                download_size,
                ..
            } => {
                let bar = self.multi.add(ProgressBar::new(download_size.unwrap_or(0)));
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
                self.running().insert(path.clone(), bar);
            }
            SubstituteEvent::Progress { path, bytes, .. } => {
                if let Some(bar) = self.running().get(path) {
                    // A new attempt starts again from zero.
                    bar.set_position(bytes);
                }
            }
            SubstituteEvent::Fetched {
                path,
                cache,
                bytes,
                elapsed,
            } => {
                let bar = self.running().remove(path);
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let seconds = elapsed.as_secs_f64().max(0.001);
                let text = format!(
                    "fetched '{}' from '{cache}': {} in {seconds:.1} s ({}/s)",
                    self.dir.print(path),
                    HumanBytes(bytes),
                    HumanBytes((bytes as f64 / seconds) as u64)
                );
                self.multi.suspend(|| log_events::info(&text));
            }
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        let _ = self.multi.clear();
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
