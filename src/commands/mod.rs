//! One module per verb of the command line, plus two that verbs share: `input` (what an
//! evaluating verb evaluates) and `lock_advice` (the `kiln lock` command a stale lock asks for).
pub mod completions;
pub mod copy;
pub mod diff;
pub mod eval;
pub mod gc;
pub mod input;
pub mod instantiate;
pub mod key;
pub mod lock;
pub mod lock_advice;
pub mod log;
pub mod manpage;
pub mod path_info;
pub mod realise;
pub mod remote_worker;
pub mod shell;
pub mod show_derivation;
pub mod sign;
pub mod verify;
