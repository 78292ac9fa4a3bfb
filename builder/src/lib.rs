//! kiln-builder: turns `.drv` files into outputs: the build plan (a DAG), the scheduler, the
//! Linux sandbox and the builtin builders.
pub mod builtin_builders;
