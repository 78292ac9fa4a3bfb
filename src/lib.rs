//! The kiln command-line program as a library, so integration tests can drive it.
pub mod cache_push;
pub mod cli;
pub mod commands;
pub mod config;
pub mod eval_fetch;
pub mod progress;
pub mod stdlib;
pub mod store_io;
pub mod substitution;
