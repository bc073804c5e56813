//! The ports: what the stages need from the world, as traits the runtimes implement.
//!
//! Only the state store exists so far; queues, timers and the directory follow. Every
//! method is async and `Send` so the same stage code runs on tokio in `hrsync serve` and
//! in a Lambda function.

use std::future::Future;

use hrsync_core::{WorkerKey, WorkerState};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[cfg(feature = "contract-tests")]
pub mod contract;

/// A worker's stored state and the version a conditional write must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub state: WorkerState,
    /// Starts at 1 with the first write; every write adds one.
    pub version: u64,
}

/// Why the store could not answer. Both kinds are worth another attempt, so a stage
/// hands either back to its queue (retry with backoff, then the dead-letter queue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency lost: someone wrote the worker since it was read.
    #[error(
        "{worker} was changed by someone else (expected version {expected:?}, found {found:?})"
    )]
    Conflict {
        worker: WorkerKey,
        expected: Option<u64>,
        found: Option<u64>,
    },
    /// I/O, a busy database, data that does not parse...
    #[error("state store: {0}")]
    Backend(String),
}

impl StoreError {
    /// A conflict is retried by reading again and deciding again (level-triggered, so the new
    /// decision is the right one); a backend error by trying again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict { .. } | Self::Backend(_) => true,
        }
    }
}

/// One audited step: what changed for a worker, why, and in which stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub worker: WorkerKey,
    pub at: Timestamp,
    /// `intake`, `mapping`, `entra`, `writeback` or `cli`.
    pub stage: String,
    /// What was done: `join`, `create`, `add_group`, `held`...
    pub action: String,
    /// What caused it: the HR event, the rule, the timer.
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// The answer to [`StateStore::reserve_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The name is the caller's (newly, or again).
    Won,
    /// Someone else reserved it first.
    HeldBy(WorkerKey),
}

/// An operation the safety breaker stopped until a human approves or rejects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Chosen by the stage and deterministic (e.g. worker + action), so a re-run of the
    /// stage finds its hold instead of adding another.
    pub id: String,
    pub worker: WorkerKey,
    pub action: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub status: HoldStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Pending,
    Approved,
    Rejected,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// The key a reserved name is stored under: Entra compares UPNs and mail case-insensitively,
/// so every store must fold case the same way.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Everything the pipeline keeps: per-worker state with optimistic concurrency, the audit
/// log, unique-name reservations, intake dedupe and the breaker's holds (DESIGN.md §6).
pub trait StateStore: Send + Sync {
    fn load(
        &self,
        worker: &WorkerKey,
    ) -> impl Future<Output = Result<Option<Stored>, StoreError>> + Send;

    /// Writes `state` if the stored version is `expected` (None = must not exist yet);
    /// returns the new version. Otherwise [`StoreError::Conflict`] with the version found.
    fn save(
        &self,
        worker: &WorkerKey,
        state: &WorkerState,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every worker with a stored state, sorted.
    fn workers(&self) -> impl Future<Output = Result<Vec<WorkerKey>, StoreError>> + Send;

    /// Append-only.
    fn append_audit(
        &self,
        record: &AuditRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A worker's audit records, oldest first (ties broken by insertion order).
    fn audit(
        &self,
        worker: &WorkerKey,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// Atomic: the first owner of a name (case-insensitive) wins; the same owner reserving
    /// again wins again.
    fn reserve_name(
        &self,
        name: &str,
        owner: &WorkerKey,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// Removes the reservation if `owner` holds it; anyone else's is left alone.
    fn release_name(
        &self,
        name: &str,
        owner: &WorkerKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn name_owner(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<WorkerKey>, StoreError>> + Send;

    /// Intake dedupe: true the first time `event` is seen (until `expires`), false for a
    /// redelivery. An entry whose `expires` is at or before `now` counts as unseen.
    fn first_delivery(
        &self,
        event: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a hold. A hold with the same id that already exists is kept as it is, so a
    /// stage that runs again cannot turn an approved hold back into a pending one.
    fn put_hold(&self, hold: &Hold) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Holds with this status (all when `None`), oldest first.
    fn holds(
        &self,
        status: Option<HoldStatus>,
    ) -> impl Future<Output = Result<Vec<Hold>, StoreError>> + Send;

    /// Pending -> Approved/Rejected; false if the hold is unknown or no longer pending
    /// (and for `Pending`, which resolves nothing).
    fn resolve_hold(
        &self,
        id: &str,
        status: HoldStatus,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
