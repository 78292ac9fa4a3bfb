//! One module per verb of the command line, plus `input`: what an evaluating verb evaluates.
pub mod copy;
pub mod eval;
pub mod gc;
pub mod input;
pub mod instantiate;
pub mod key;
pub mod lock;
pub mod log;
pub mod path_info;
pub mod realise;
pub mod show_derivation;
pub mod sign;
pub mod verify;
