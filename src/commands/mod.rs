//! One module per verb of the command line, plus `input`: what an evaluating verb evaluates.
pub mod eval;
pub mod input;
pub mod instantiate;
pub mod show_derivation;
