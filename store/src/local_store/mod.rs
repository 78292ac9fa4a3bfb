//! The local store: store objects under a physical root, the SQLite database that says which of
//! them are valid, per-output locks, GC roots and garbage collection.
