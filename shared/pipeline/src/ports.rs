//! The ports: what the stages need from the world, as traits the runtimes implement.
//!
//! So far: the state store, the queues and the timers; the directory and the HR source
//! follow. Every method is async and `Send` so the same stage code runs on tokio in
//! `hrsync serve` and in a Lambda function. No port reads a clock: every instant is a
//! parameter (`now`), so a runtime can run days of scenario in milliseconds.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use hrsync_core::{TimerKind, Worker, WorkerKey, WorkerState};
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

impl AuditRecord {
    /// A record without before/after (add them with the fields).
    pub fn new(
        worker: &WorkerKey,
        at: Timestamp,
        stage: &str,
        action: &str,
        cause: impl Into<String>,
        trace: &str,
    ) -> Self {
        Self {
            worker: worker.clone(),
            at,
            stage: stage.into(),
            action: action.into(),
            cause: cause.into(),
            before: None,
            after: None,
            trace: Some(trace.to_owned()),
        }
    }
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

    /// Writes `state` if the stored version is `expected` (None = must not exist yet), and
    /// appends `audit` in the same transaction: a change and its audit land together or not at
    /// all. Returns the new version; otherwise [`StoreError::Conflict`] with the version found
    /// (and nothing is written).
    fn save(
        &self,
        worker: &WorkerKey,
        state: &WorkerState,
        expected: Option<u64>,
        audit: &[AuditRecord],
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

    /// One hold by id.
    fn hold(&self, id: &str) -> impl Future<Output = Result<Option<Hold>, StoreError>> + Send;

    /// The intake's inbox: keeps `snapshot` as the worker's latest HR record unless the one
    /// kept is newer (a later `as_of`; an equal `as_of` replaces it). True when kept. The
    /// mapping stage decides on it; it is never removed (level-triggered: deciding again on
    /// the same record changes nothing).
    fn put_snapshot(
        &self,
        snapshot: &Worker,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The latest HR record [`StateStore::put_snapshot`] kept for the worker.
    fn snapshot(
        &self,
        worker: &WorkerKey,
    ) -> impl Future<Output = Result<Option<Worker>, StoreError>> + Send;

    /// Intake dedupe without marking: true when `event` was delivered before and its entry has
    /// not expired at `now` (so [`StateStore::first_delivery`] would say false). Intake checks
    /// before its work and marks after it, so a crash in between loses nothing (the
    /// redelivery does the work again).
    fn delivered(
        &self,
        event: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A sliding-window budget (the breaker): atomically, if `key` already took from `budget`
    /// after `now - window` -> true (taking again is idempotent); else if fewer than `limit`
    /// keys took from it after `now - window` -> records `key` at `now`, true; else false.
    /// Takes stamped after `now` count too: concurrent callers read their clocks at different
    /// moments, and a late-running early reader must not slip past the limit.
    fn take_budget(
        &self,
        budget: &str,
        key: &str,
        now: Timestamp,
        window: Duration,
        limit: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that `waiter` waits for `awaited` (e.g. for the manager's account to exist).
    /// Idempotent.
    fn wait_for(
        &self,
        awaited: &WorkerKey,
        waiter: &WorkerKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Everyone waiting for `awaited`, sorted. Reading removes nothing: the waker nudges them
    /// first and forgets them after, so a crash in between nudges them again rather than
    /// never.
    fn waiters(
        &self,
        awaited: &WorkerKey,
    ) -> impl Future<Output = Result<Vec<WorkerKey>, StoreError>> + Send;

    /// Removes `waiters` from those waiting for `awaited` (the rest stay). Idempotent.
    fn forget_waiters(
        &self,
        awaited: &WorkerKey,
        waiters: &[WorkerKey],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The audit records of all workers at or after `since` and before `until`, newest first
    /// (equal instants: latest insertion first), at most `limit`.
    fn audit_between(
        &self,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// The most recent `limit` audit records of all workers, newest first.
    fn recent_audit(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send {
        self.audit_between(Timestamp::MIN, Timestamp::MAX, limit)
    }

    /// Where a source's poll of its change feed reached; `None` before the first poll.
    fn cursor(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Moves a source's poll cursor (one poller per source: the last write wins).
    fn put_cursor(
        &self,
        source: &str,
        cursor: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The version of the [`Nudge`] body this build writes.
pub const NUDGE_VERSION: u32 = 1;

/// How long a queue remembers a deduplication id (SQS FIFO's deduplication interval): a
/// send that repeats one within this window after the first is dropped.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A message body (DESIGN.md §3): "worker X may have changed". It carries no state: the
/// stage that receives it reads the latest state from the store and converges, so
/// duplicates, reordering and replays are harmless.
///
/// JSON: `{"v":1,"worker":"hr:123","reason":"...","trace":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nudge {
    /// [`NUDGE_VERSION`].
    pub v: u32,
    pub worker: WorkerKey,
    /// Why: `webhook`, `timer leave`, `reconcile`, ... (for logs and the audit's cause).
    pub reason: String,
    /// Correlates the log lines and audit records one HR event caused across stages.
    pub trace: String,
}

impl Nudge {
    pub fn new(worker: WorkerKey, reason: impl Into<String>, trace: impl Into<String>) -> Self {
        Self {
            v: NUDGE_VERSION,
            worker,
            reason: reason.into(),
            trace: trace.into(),
        }
    }
}

/// The pipeline's queues (DESIGN.md §3), each FIFO per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueName {
    /// intake (a thin webhook) -> intake's fetch of the full record.
    HrEvents,
    /// intake and timers -> mapping.
    WorkerEvents,
    /// mapping -> entra.
    Directory,
    /// entra -> writeback.
    Writeback,
}

impl QueueName {
    pub const ALL: [Self; 4] = [
        Self::HrEvents,
        Self::WorkerEvents,
        Self::Directory,
        Self::Writeback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HrEvents => "hr-events",
            Self::WorkerEvents => "worker-events",
            Self::Directory => "directory",
            Self::Writeback => "writeback",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == text)
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One received message. Hand it back with [`Queue::ack`] or [`Queue::retry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The receipt: valid until the message is acked, retried, or received again after its
    /// visibility timeout ran out.
    pub id: String,
    pub queue: QueueName,
    pub nudge: Nudge,
    /// 1 on the first delivery; every delivery (a redelivery after a visibility timeout, a
    /// retry) adds one.
    pub attempt: u32,
    /// The message group: the worker key, so one worker's messages are handled in order and
    /// one at a time.
    pub group: String,
}

/// The answer to [`Queue::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Visible again after the backoff, still at the head of its group.
    Retried,
    /// Out of attempts: moved to the queue's dead-letter list.
    DeadLettered,
}

/// A message that ran out of attempts, waiting for an operator (`hrsync dlq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Stable while it is dead-lettered; what [`Queue::redrive`] takes.
    pub id: String,
    pub nudge: Nudge,
    /// The reason the last attempt gave.
    pub reason: String,
    pub attempts: u32,
    /// When it was dead-lettered.
    pub at: Timestamp,
}

/// Counts for `hrsync status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Waiting to be received (including those waiting out a retry backoff).
    pub visible: u64,
    /// Received and not yet acked or retried (a receiver that died still counts until the
    /// message is received again after its visibility timeout).
    pub in_flight: u64,
    pub dead: u64,
}

/// Why a queue or the timers could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// I/O, a busy database, an instant out of range...
    #[error("queue: {0}")]
    Backend(String),
    /// A stored message or timer does not parse.
    #[error("queue: stored data does not parse: {0}")]
    Decode(String),
    /// The receipt is no longer valid: the message was acked or retried already, or its
    /// visibility timeout ran out and it was received again. Its outcome is the newer
    /// delivery's to report; the stage's work was idempotent anyway.
    #[error("queue {queue}: receipt {receipt} is no longer valid")]
    StaleReceipt { queue: QueueName, receipt: String },
}

impl QueueError {
    /// A backend error is worth another attempt; stale receipts and undecodable data are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Backend(_) => true,
            Self::Decode(_) | Self::StaleReceipt { .. } => false,
        }
    }
}

/// `now + by`, or a backend error when that lies beyond what an instant can hold.
pub fn later(now: Timestamp, by: Duration) -> Result<Timestamp, QueueError> {
    now.checked_add(by)
        .map_err(|e| QueueError::Backend(format!("{now} + {by:?} is out of range: {e}")))
}

/// A durable queue with SQS FIFO semantics: at-least-once, FIFO per group, deduplication,
/// visibility timeout, retries with backoff and a dead-letter list.
pub trait Queue: Send + Sync {
    /// At-least-once; messages of one group (the nudge's worker) are delivered in send
    /// order, one at a time (FIFO per worker, like SQS FIFO's MessageGroupId). `dedup` is the
    /// identity of the nudge: a send whose `dedup` was seen on this queue less than
    /// [`DEDUP_WINDOW`] before (counted from the first send) is dropped.
    fn send(
        &self,
        queue: QueueName,
        nudge: &Nudge,
        dedup: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Up to `max` deliveries, oldest first, at most one per group, each the head of a group
    /// with no message in flight and visible at `now`; each becomes invisible until
    /// `now + visibility` (then it is delivered again, with the next attempt number).
    fn receive(
        &self,
        queue: QueueName,
        max: usize,
        now: Timestamp,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, QueueError>> + Send;

    /// Done: the message is removed. [`QueueError::StaleReceipt`] if the receipt is no
    /// longer valid.
    fn ack(&self, delivery: &Delivery) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Failed: visible again at `now + backoff`, keeping its place at the head of its group
    /// (the group waits). Once the message has had `max_attempts` deliveries it moves to the
    /// queue's dead-letter list with `reason` instead.
    fn retry(
        &self,
        delivery: &Delivery,
        reason: &str,
        now: Timestamp,
        backoff: Duration,
        max_attempts: u32,
    ) -> impl Future<Output = Result<RetryOutcome, QueueError>> + Send;

    /// Failed for a reason that is not the message's (the service its stage needs is down):
    /// visible again at `now + delay`, keeping its place at the head of its group, and this
    /// delivery does not count as an attempt, so an outage never uses up a message's tries.
    /// (On SQS the receive still counts toward the redrive policy's `maxReceiveCount`.)
    fn postpone(
        &self,
        delivery: &Delivery,
        now: Timestamp,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Dead-letters, with `reason`, every message of `queue` delivered `max_receives` times
    /// whose last delivery was never settled (its receiver died: the visibility timeout passed
    /// with no ack or retry). Returns how many. The runtime calls it before `receive`, like
    /// SQS's `maxReceiveCount`, so a message that crashes its receiver cannot loop forever.
    fn dead_letter_abandoned(
        &self,
        queue: QueueName,
        now: Timestamp,
        max_receives: u32,
        reason: &str,
    ) -> impl Future<Output = Result<usize, QueueError>> + Send;

    /// The dead letters of `queue`, oldest message first.
    fn dead_letters(
        &self,
        queue: QueueName,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, QueueError>> + Send;

    /// Moves a dead letter back to its queue as a new message at the tail of its group
    /// (attempts start again, no deduplication); false if `id` is unknown. Should it be
    /// dead-lettered again, it comes back under the same `id`, so an operator's notes and
    /// commands about it stay true.
    fn redrive(
        &self,
        queue: QueueName,
        id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, QueueError>> + Send;

    fn depth(
        &self,
        queue: QueueName,
    ) -> impl Future<Output = Result<QueueDepth, QueueError>> + Send;
}

/// A named one-time wake-up: at `at`, the worker is decided again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerSpec {
    /// Deterministic per worker and kind ([`TimerSpec::name_for`]), so a changed date moves
    /// the timer instead of adding one.
    pub name: String,
    pub worker: WorkerKey,
    pub kind: TimerKind,
    pub at: Timestamp,
}

impl TimerSpec {
    pub fn new(worker: WorkerKey, kind: TimerKind, at: Timestamp) -> Self {
        Self {
            name: Self::name_for(&worker, kind),
            worker,
            kind,
            at,
        }
    }

    /// `hr:123#leave`.
    pub fn name_for(worker: &WorkerKey, kind: TimerKind) -> String {
        format!("{worker}#{}", timer_kind_str(kind))
    }
}

/// The snake_case name of a timer kind, as serde writes it.
pub fn timer_kind_str(kind: TimerKind) -> &'static str {
    match kind {
        TimerKind::Prehire => "prehire",
        TimerKind::Start => "start",
        TimerKind::Leave => "leave",
        TimerKind::RemoveAccess => "remove_access",
        TimerKind::Delete => "delete",
        TimerKind::LicenseRetry => "license_retry",
    }
}

/// The inverse of [`timer_kind_str`].
pub fn parse_timer_kind(text: &str) -> Option<TimerKind> {
    TimerKind::ALL
        .into_iter()
        .find(|kind| timer_kind_str(*kind) == text)
}

/// One-time wake-ups (EventBridge Scheduler `at()` schedules in AWS).
pub trait Timers: Send + Sync {
    /// Creates or replaces the wake-up `timer.name` (a changed date moves it).
    fn put(&self, timer: &TimerSpec) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Removes the wake-up; an unknown name is fine.
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Removes and returns every timer due at or before `now`, earliest first (ties by
    /// name). The runtime turns each into a worker-events nudge; delivery is at least once,
    /// and a stale wake-up is harmless because the pipeline decides again.
    fn take_due(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<TimerSpec>, QueueError>> + Send;

    /// The `limit` earliest timers (for `hrsync timers`), earliest first.
    fn next(&self, limit: usize)
    -> impl Future<Output = Result<Vec<TimerSpec>, QueueError>> + Send;

    /// One worker's timers, earliest first.
    fn worker_timers(
        &self,
        worker: &WorkerKey,
    ) -> impl Future<Output = Result<Vec<TimerSpec>, QueueError>> + Send;
}
