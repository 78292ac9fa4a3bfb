//! The hook through which a build runs on another machine (a remote execution cluster).
//!
//! The builder knows no network protocol: a [`RemoteBuilder`] (kiln-remote's REAPI client)
//! is handed a build after its outputs are locked, its input closure is protected and its log
//! is open, and writes each output at the host path it is given. Everything after that is the
//! local build's own code: canonicalisation, reference scan, NAR hash, fixed-output checks and
//! registration in one transaction (see [`crate::build`]). A remote failure that is not the
//! builder's fault ([`RemoteFailure::Unavailable`]) makes the build run locally instead.
//!
//! With a remote builder the scheduler runs many builds at once (they wait on the network);
//! [`LocalSlots`] keeps the ones that run here (builtins, `preferLocalBuild`, fallbacks) to
//! the local job count.
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use kiln_local_store::LocalStore;
use kiln_store::store_path::StorePath;

use crate::log::LogWriter;
use crate::plan::PlannedBuild;
use crate::report::{BuildError, BuildEvents};

/// One output the remote build must produce.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub name: String,
    pub path: StorePath,
    /// Where the output's files go on this machine (removed by the caller on failure).
    pub host_path: PathBuf,
}

/// What a remote build is given.
pub struct RemoteJob<'a> {
    pub store: &'a LocalStore,
    pub build: &'a PlannedBuild,
    /// The closure of the build's inputs (all valid in `store`).
    pub closure: &'a BTreeSet<StorePath>,
    pub outputs: Vec<RemoteOutput>,
    /// The build's log: the remote builder's output goes here, as a local build's does.
    pub log: &'a LogWriter,
    pub events: &'a Arc<dyn BuildEvents>,
}

/// Why a remote build produced no outputs.
#[derive(Debug)]
pub enum RemoteFailure {
    /// The cluster could not run it (unreachable, overloaded, deadline exceeded, after its
    /// retries): the build runs locally instead.
    Unavailable(String),
    /// The build itself failed (the builder exited non-zero, or its outputs were refused).
    Build(BuildError),
}

/// Runs builds elsewhere.
pub trait RemoteBuilder: Send + Sync {
    /// Whether `build` may run remotely (kiln's in-process builders, `preferLocalBuild` and
    /// builds the client does not handle stay local).
    fn accepts(&self, build: &PlannedBuild) -> bool;
    /// Runs `job` and writes every output at its host path.
    fn build_remotely(&self, job: &RemoteJob<'_>) -> Result<(), RemoteFailure>;
}

/// A shared [`RemoteBuilder`] in the build settings.
#[derive(Clone)]
pub struct RemoteHandle(pub Arc<dyn RemoteBuilder>);

impl fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteHandle")
    }
}

/// A counting semaphore over the builds that run on this machine.
#[derive(Debug)]
pub struct LocalSlots {
    free: Mutex<usize>,
    released: Condvar,
}

/// One held slot, given back on drop.
pub struct LocalSlot<'a> {
    slots: &'a LocalSlots,
}

impl LocalSlots {
    /// `count` builds at once (at least one).
    pub fn new(count: usize) -> LocalSlots {
        LocalSlots {
            free: Mutex::new(count.max(1)),
            released: Condvar::new(),
        }
    }

    /// Waits for a free slot and takes it.
    pub fn acquire(&self) -> LocalSlot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.released.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        LocalSlot { slots: self }
    }
}

impl Drop for LocalSlot<'_> {
    fn drop(&mut self) {
        let mut free = self.slots.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.slots.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn local_slots_never_let_more_builds_run_than_their_count() {
        let slots = LocalSlots::new(2);
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    let _slot = slots.acquire();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
