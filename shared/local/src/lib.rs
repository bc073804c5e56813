//! The local runtime of hrsync: the pipeline's ports on embedded parts, so the whole product
//! runs as one process (`hrsync serve`, `hrsync import`) with its state in one SQLite file.
//!
//! So far: the state store ([`SqliteStore`]). The durable queue and the timers follow, in the
//! same file.

pub mod store;

pub use store::SqliteStore;
