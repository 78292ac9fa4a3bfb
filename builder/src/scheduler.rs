//! The scheduler: runs a [`BuildPlan`] with `jobs` long-lived worker threads (the sandbox ties
//! each build's lifetime to the thread that started it, so workers live as long as the run).
//!
//! A build starts as soon as every build it depends on has finished successfully. When a build
//! fails, everything that depends on it is skipped; without `keep_going` no new build starts
//! (running ones finish). Builds that another kiln process is running are shared through the
//! store's output locks: the worker waits for the lock and then finds the outputs valid.
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use crate::build::{build_derivation, BuildSettings};
use crate::plan::BuildPlan;
use crate::report::{BuildError, BuildEvents, BuildOutcome};
use kiln_local_store::LocalStore;

/// How a plan is run.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// Number of builds run at once (at least 1).
    pub jobs: usize,
    /// Keep building what does not depend on a failed build.
    pub keep_going: bool,
    /// `--check`: rebuild valid target outputs and compare.
    pub check: bool,
    pub settings: BuildSettings,
}

impl ScheduleOptions {
    /// One job per CPU.
    pub fn default_jobs() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// What became of one planned build.
#[derive(Debug)]
pub enum BuildStatus {
    Succeeded(BuildOutcome),
    Failed(BuildError),
    /// A build it depends on failed (the index of that build's failed dependency).
    DependencyFailed(usize),
    /// Not started because another build failed and `keep_going` was off.
    NotStarted,
}

/// The result of running a plan: one status per build, in plan order.
#[derive(Debug)]
pub struct ScheduleReport {
    pub statuses: Vec<BuildStatus>,
}

impl ScheduleReport {
    /// Whether every build succeeded.
    pub fn success(&self) -> bool {
        self.statuses
            .iter()
            .all(|status| matches!(status, BuildStatus::Succeeded(_)))
    }

    /// Indices of the builds that failed themselves.
    pub fn failed(&self) -> Vec<usize> {
        self.statuses
            .iter()
            .enumerate()
            .filter(|(_, status)| matches!(status, BuildStatus::Failed(_)))
            .map(|(index, _)| index)
            .collect()
    }
}

struct State {
    statuses: Vec<Option<BuildStatus>>,
    waiting_on: Vec<usize>,
    ready: VecDeque<usize>,
    running: usize,
    stopped: bool,
}

/// Runs `plan` against `store` and reports what happened to every build.
pub fn run_plan(
    store: &LocalStore,
    plan: &BuildPlan,
    options: &ScheduleOptions,
    events: &Arc<dyn BuildEvents>,
) -> ScheduleReport {
    let count = plan.builds.len();
    let mut dependents = vec![Vec::new(); count];
    let mut waiting_on = vec![0; count];
    for (index, build) in plan.builds.iter().enumerate() {
        waiting_on[index] = build.depends_on.len();
        for &dependency in &build.depends_on {
            dependents[dependency].push(index);
        }
    }
    let ready = (0..count).filter(|&index| waiting_on[index] == 0).collect();
    let state = Mutex::new(State {
        statuses: (0..count).map(|_| None).collect(),
        waiting_on,
        ready,
        running: 0,
        stopped: false,
    });
    let wakeup = Condvar::new();
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());

    let worker = || loop {
        let index = {
            let mut guard = lock();
            loop {
                if guard.stopped && guard.running == 0 {
                    break None;
                }
                if !guard.stopped {
                    if let Some(index) = guard.ready.pop_front() {
                        guard.running += 1;
                        break Some(index);
                    }
                }
                if guard.running == 0 {
                    break None;
                }
                guard = wakeup.wait(guard).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(index) = index else {
            wakeup.notify_all();
            return;
        };
        let build = &plan.builds[index];
        events.build_started(build);
        let result = build_derivation(store, build, &options.settings, events, options.check);
        events.build_finished(build, &result);
        let mut guard = lock();
        guard.running -= 1;
        match result {
            Ok(outcome) => {
                guard.statuses[index] = Some(BuildStatus::Succeeded(outcome));
                for &dependent in &dependents[index] {
                    guard.waiting_on[dependent] -= 1;
                    if guard.waiting_on[dependent] == 0 && guard.statuses[dependent].is_none() {
                        guard.ready.push_back(dependent);
                    }
                }
            }
            Err(error) => {
                guard.statuses[index] = Some(BuildStatus::Failed(error));
                let mut pending = dependents[index].clone();
                while let Some(dependent) = pending.pop() {
                    if guard.statuses[dependent].is_none() {
                        guard.statuses[dependent] = Some(BuildStatus::DependencyFailed(index));
                        pending.extend(dependents[dependent].iter().copied());
                    }
                }
                if !options.keep_going {
                    guard.stopped = true;
                }
            }
        }
        drop(guard);
        wakeup.notify_all();
    };

    let jobs = options.jobs.max(1).min(count.max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(worker);
        }
    });
    let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
    ScheduleReport {
        statuses: state
            .statuses
            .into_iter()
            .map(|status| status.unwrap_or(BuildStatus::NotStarted))
            .collect(),
    }
}
