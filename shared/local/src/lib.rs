//! The local runtime of hrsync: the pipeline's ports on embedded parts, so the whole product
//! runs as one process (`hrsync serve`, `hrsync import`) with its state in one SQLite file.
//!
//! The state store ([`SqliteStore`]), the durable queues ([`SqliteQueue`]) and the timers
//! ([`SqliteTimers`]) share one file and one connection, so the runtime can later commit a
//! state change and the nudge it causes in one transaction.
//!
//! The state file, SQLite's side files and the folder hrsync makes for them are the owner's
//! alone ([`files`]).

pub mod files;
pub mod queue;
pub mod smtp;
pub mod store;
pub mod timers;

pub use queue::SqliteQueue;
pub use store::SqliteStore;
pub use timers::SqliteTimers;
