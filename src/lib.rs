//! The kiln command-line program as a library, so integration tests can drive it.
#![deny(clippy::unwrap_used, clippy::expect_used)]
pub mod cache_push;
pub mod cli;
pub mod commands;
pub mod config;
pub mod drv_diff;
pub mod eval_limits;
pub mod installable;
pub mod log_events;
pub mod progress;
pub mod realisation;
pub mod rpm_lock;
pub mod session;
pub mod stdlib;
pub mod substitution;
