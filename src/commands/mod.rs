//! One module per verb of the command line, plus `input`: what an evaluating verb evaluates.
pub mod eval;
pub mod input;
pub mod instantiate;
pub mod show_derivation;
pub mod gc;
pub mod log;
pub mod path_info;
pub mod realise;
pub mod verify;
