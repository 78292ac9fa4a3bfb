//! The caller's terminal during an interactive session: the session's processes share it
//! (same terminal session, so its shell can make its own jobs the foreground process group),
//! so while the session runs kiln ignores `SIGINT` and `SIGQUIT` (a key pressed while kiln's
//! own group is in the foreground reaches the session's command and not kiln, which reports
//! how the command ended), and afterwards, if its process group was the terminal's foreground
//! when the session started, makes it the foreground again (with `SIGTTOU` ignored for the
//! call, since kiln is in the background then). A kiln started in the background leaves the
//! terminal alone.

use std::os::fd::BorrowedFd;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{getpgrp, tcgetpgrp, tcsetpgrp};

/// What [`SessionTerminal::claim`] changed, undone on drop.
pub(crate) struct SessionTerminal {
    saved: Vec<(Signal, SigAction)>,
    /// Standard input is a terminal whose foreground process group was kiln's.
    was_foreground: bool,
}

fn ignore(signal: Signal) -> Option<SigAction> {
    let ignored = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN runs no code of ours in a signal context.
    unsafe { sigaction(signal, &ignored) }.ok()
}

impl SessionTerminal {
    /// Ignores the terminal's interrupt and quit signals in kiln until drop.
    pub(crate) fn claim() -> SessionTerminal {
        let saved = [Signal::SIGINT, Signal::SIGQUIT]
            .into_iter()
            .filter_map(|signal| ignore(signal).map(|old| (signal, old)))
            .collect();
        SessionTerminal {
            saved,
            was_foreground: tcgetpgrp(std::io::stdin()).is_ok_and(|group| group == getpgrp()),
        }
    }
}

impl Drop for SessionTerminal {
    fn drop(&mut self) {
        if self.was_foreground {
            let previous = ignore(Signal::SIGTTOU);
            // SAFETY: descriptor 0 is open for the life of the process (it was a terminal
            // when the session started).
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            // Best effort: the terminal may have gone away with the session.
            let _ = tcsetpgrp(stdin, getpgrp());
            if let Some(previous) = previous {
                // SAFETY: restores the disposition saved above.
                let _ = unsafe { sigaction(Signal::SIGTTOU, &previous) };
            }
        }
        for (signal, old) in &self.saved {
            // SAFETY: restores a disposition saved by `claim`.
            let _ = unsafe { sigaction(*signal, old) };
        }
    }
}
