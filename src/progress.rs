//! The progress display of `kiln realise`.
//!
//! On a terminal (standard error is a tty): an indicatif display with one line per running
//! build (its name, elapsed time and the latest line of its log) under an overall bar
//! (done/total, elapsed). Otherwise plain lines on standard error: `building '…'`, `built '…'
//! in 1.2 s`, failures, and lock waits; builder output stays in the log files.
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_builder::build::{BuildError, BuildEvents, BuildOutcome};
use kiln_builder::plan::PlannedBuild;
use kiln_store::store_path::{StoreDir, StorePath};

/// Reports builds as they start, print and end.
pub struct Progress {
    dir: StoreDir,
    display: Option<BarDisplay>,
}

struct BarDisplay {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<StorePath, ProgressBar>>,
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
                    .insert(build.drv_path.clone(), bar);
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
            if let Some(bar) = running.get(drv) {
                bar.set_message(line.to_owned());
            }
        }
    }

    fn build_finished(&self, build: &PlannedBuild, result: &Result<BuildOutcome, BuildError>) {
        let drv = self.dir.print(&build.drv_path);
        if let Some(display) = &self.display {
            let bar = display
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&build.drv_path);
            if let Some(bar) = bar {
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
            Ok(BuildOutcome::Built { .. }) => {}
            Err(error) => self.line(&format!("failed '{drv}': {error}")),
        }
    }
}
