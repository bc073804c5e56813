//! The pipeline stages and the ports they run over; adapters live in shared/local (SQLite)
//! and shared/aws (DynamoDB, SQS, Scheduler).
//!
//! Stages are level-triggered (DESIGN.md §1): a message only says "worker X may have
//! changed"; each stage reads the latest state from the [`ports::StateStore`], decides with
//! `hrsync_core`, and writes back conditionally on the version it read.

pub mod clock;
pub mod lookups;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod operations;
pub mod ports;
pub mod runner;
pub mod stages;
pub mod synthetic;
pub mod webhooks;

pub use clock::{Clock, ManualClock, ShiftedClock, SystemClock};
pub use lookups::DirectoryLookups;
pub use memory::{MemoryQueue, MemoryStore, MemoryTimers};
pub use notify::{Notice, Notifications, Notifier};
pub use ports::{
    AuditRecord, Hold, HoldStatus, Reservation, StateStore, StoreError, Stored, name_key,
};
pub use runner::{
    DrainError, PendingLicenseReport, Report, Runner, RunnerSettings, Summary, WorkerReport,
    settle_failure,
};
pub use stages::{Outcome, Pipeline, StageError};
