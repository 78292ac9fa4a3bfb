//! kiln-eval: the evaluator. Owns values, thunks, environments, the builtins registry and
//! derivation construction; reaches the store only through a small trait.

pub mod store_access;
pub mod store_impls;
