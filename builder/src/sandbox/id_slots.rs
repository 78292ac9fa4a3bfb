//! Machine-wide allocation of the unprivileged host id ranges that builds run under when kiln
//! is root (like Nix's `auto-allocate-uids`).
//!
//! There are [`SLOT_COUNT`] ranges of [`SLOT_SIZE`] ids, the first starting at host id
//! [`FIRST_HOST_ID`] (0x34000000, far above any id a distribution hands out). A build takes a
//! slot by holding an exclusive `flock` on `/run/kiln/build-ids/<slot>` for as long as it runs;
//! the kernel releases the lock when the holder dies, however it dies. The directory is
//! machine-wide (not per store), so two builds never share a range even when they belong to
//! different stores or different kiln processes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::SandboxError;

/// The first host id of slot 0.
pub const FIRST_HOST_ID: u32 = 0x3400_0000;
/// How many ids one slot (one build) has.
pub const SLOT_SIZE: u32 = 65536;
/// How many builds can hold a range at the same time.
pub const SLOT_COUNT: u32 = 128;
/// Where the slot lock files live.
pub const SLOT_DIR: &str = "/run/kiln/build-ids";

/// One held slot: the range `base..base + SLOT_SIZE` belongs to this build until drop.
pub struct IdSlot {
    slot: u32,
    _lock: Flock<File>,
}

impl std::fmt::Debug for IdSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdSlot").field("slot", &self.slot).finish()
    }
}

impl PartialEq for IdSlot {
    fn eq(&self, other: &Self) -> bool {
        self.slot == other.slot
    }
}

impl Eq for IdSlot {}

impl IdSlot {
    /// Takes the first free slot.
    pub fn acquire() -> Result<Self, SandboxError> {
        Self::acquire_in(Path::new(SLOT_DIR))
    }

    /// A slot from a private directory, for unit tests elsewhere in the sandbox.
    #[cfg(test)]
    pub(crate) fn acquire_in_for_tests(dir: &Path) -> Self {
        match Self::acquire_in(dir) {
            Ok(slot) => slot,
            Err(err) => panic!("taking a test slot: {err}"),
        }
    }

    fn acquire_in(dir: &Path) -> Result<Self, SandboxError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|err| SandboxError::io(format!("creating {}", dir.display()), err))?;
        for slot in 0..SLOT_COUNT {
            let path = dir.join(slot.to_string());
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|err| SandboxError::io(format!("opening {}", path.display()), err))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(IdSlot { slot, _lock: lock }),
                Err((_, Errno::EWOULDBLOCK)) => continue,
                Err((_, errno)) => {
                    return Err(SandboxError::syscall(
                        format!("flock({}, LOCK_EX|LOCK_NB)", path.display()),
                        errno,
                    ))
                }
            }
        }
        Err(SandboxError::InvalidSpec(format!(
            "all {SLOT_COUNT} build id ranges in {} are in use",
            dir.display()
        )))
    }

    /// The slot number.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The first host id of the slot's range.
    pub fn base(&self) -> u32 {
        FIRST_HOST_ID + self.slot * SLOT_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_holders_get_distinct_ranges_and_drop_frees_a_slot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = IdSlot::acquire_in(dir.path()).expect("first slot");
        let second = IdSlot::acquire_in(dir.path()).expect("second slot");
        assert_eq!((first.slot(), second.slot()), (0, 1));
        assert_eq!(first.base(), 0x3400_0000);
        assert_eq!(second.base(), 0x3400_0000 + 65536);
        drop(first);
        let third = IdSlot::acquire_in(dir.path()).expect("slot 0 again");
        assert_eq!(third.slot(), 0);
    }

    #[test]
    fn the_last_range_ends_below_the_top_of_the_id_space() {
        let last_end = u64::from(FIRST_HOST_ID) + u64::from(SLOT_COUNT) * u64::from(SLOT_SIZE);
        assert!(last_end < u64::from(u32::MAX));
    }
}
