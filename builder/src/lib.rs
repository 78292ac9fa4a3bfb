//! kiln-builder: turns `.drv` files into outputs: the build plan (a DAG), the scheduler, the
//! Linux sandbox, the builtin builders and content-addressed builds (resolution, floating
//! outputs, realisations), and the hook that hands a build to a remote cluster.
#![deny(clippy::unwrap_used, clippy::expect_used)]
pub mod build;
pub mod build_dirs;
pub mod builtin_builders;
pub mod ca;
pub mod log;
pub mod outputs;
pub mod plan;
pub mod remote;
pub mod report;
pub mod sandbox;
pub mod scheduler;
