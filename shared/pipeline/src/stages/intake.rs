//! Intake: an HR record arrives (a webhook, a row of an export, an operator's termination).
//! Keep it as the worker's latest snapshot unless a newer one is kept, and nudge mapping.
//! Deliveries are checked before the work and marked after it: a crash in between only
//! means the redelivery does the (idempotent) work again.
//!
//! A record ignored as older than the one kept (`stale`) is audited under its worker, naming
//! the delivery and both instants, and so is a vendor's redelivery (`duplicate`: a thin event
//! here, a whole record in [`crate::webhooks`]): a change that never applied (a termination)
//! can be traced to the delivery that carried it. One record per dropped delivery: they come
//! from senders that passed verification. [`take_in`] itself does not audit a duplicate: an
//! export imported again repeats every unchanged row (the import's summary counts them).

use hrsync_core::{Worker, WorkerKey};
use hrsync_hr::Connector;
use jiff::{SignedDuration, Timestamp};

use super::{Outcome, Pipeline, StageError, json};
use crate::ports::{AuditRecord, Nudge, Queue, QueueName, StateStore, Timers};
use crate::synthetic::keep_operator_termination;

/// How long a delivery id is remembered: vendors redeliver for up to three days.
pub const DELIVERY_MEMORY: SignedDuration = SignedDuration::from_hours(72);

/// One HR record to take in.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub snapshot: &'a Worker,
    /// The delivery's identity (a webhook's delivery id, the export and row...), for dedupe.
    pub delivery: &'a str,
    /// Why it came: `webhook hr`, `import workers.csv`, `terminate: <reason>`...
    pub cause: &'a str,
    pub trace: &'a str,
}

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    pub async fn intake(&self, incoming: Incoming<'_>) -> Result<Outcome, StageError> {
        take_in(&*self.store, &*self.queue, self.clock.now(), incoming).await
    }

    /// [`take_notice`] on the pipeline's store, queue and clock.
    pub async fn notice(&self, notice: Notice<'_>) -> Result<Outcome, StageError> {
        take_notice(&*self.store, &*self.queue, self.clock.now(), notice).await
    }
}

/// The intake stage itself: it needs only the store and the queue, so a process that does
/// not run the other stages (`hrsync import` handing its export to a running `hrsync serve`,
/// the intake Lambda) can take records in.
pub async fn take_in<S: StateStore, Q: Queue>(
    store: &S,
    queue: &Q,
    now: Timestamp,
    incoming: Incoming<'_>,
) -> Result<Outcome, StageError> {
    let worker = incoming.snapshot.key.clone();
    if store.delivered(incoming.delivery, now).await? {
        return Ok(Outcome::Duplicate { worker });
    }
    let held = store.snapshot(&worker).await?;
    let merged = held
        .as_ref()
        .filter(|held| held.as_of <= incoming.snapshot.as_of)
        .and_then(|held| keep_operator_termination(held, incoming.snapshot));
    let snapshot = merged.as_ref().unwrap_or(incoming.snapshot);
    let kept = store.put_snapshot(snapshot).await?;
    if kept {
        let mut record = AuditRecord::new(
            &worker,
            now,
            "intake",
            "received",
            incoming.cause,
            incoming.trace,
        );
        record.after = json(&serde_json::json!({
            "as_of": incoming.snapshot.as_of,
            "operator_termination_kept": merged.is_some(),
        }));
        store.append_audit(&record).await?;
        let nudge = Nudge::new(worker.clone(), incoming.cause, incoming.trace);
        // The same record sent twice within the dedup window is one message.
        let dedup = format!("{worker}@{}", fingerprint(snapshot));
        queue
            .send(QueueName::WorkerEvents, &nudge, &dedup, now)
            .await?;
    } else {
        // What is kept now may be newer than what was read above (a concurrent delivery).
        let kept_as_of = store.snapshot(&worker).await?.map(|kept| kept.as_of);
        let newer = match kept_as_of {
            Some(kept) => format!("the record kept (as of {kept})"),
            None => "the record kept".to_owned(),
        };
        let mut record = AuditRecord::new(
            &worker,
            now,
            "intake",
            "stale",
            format!(
                "{}: delivery {} is as of {}, older than {newer}; ignored",
                incoming.cause, incoming.delivery, incoming.snapshot.as_of
            ),
            incoming.trace,
        );
        record.after = json(&serde_json::json!({
            "delivery": incoming.delivery,
            "as_of": incoming.snapshot.as_of,
            "kept_as_of": kept_as_of,
        }));
        store.append_audit(&record).await?;
    }
    let expires = now
        .checked_add(DELIVERY_MEMORY)
        .map_err(|e| StageError::permanent(format!("delivery expiry out of range: {e}")))?;
    store
        .first_delivery(incoming.delivery, now, expires)
        .await?;
    Ok(match kept {
        true => Outcome::Received { worker },
        false => Outcome::Stale { worker },
    })
}

/// A thin HR event: the worker and the vendor's event name, the full record to be fetched.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub worker: &'a WorkerKey,
    /// The delivery's identity for dedupe (vendors redeliver for days).
    pub delivery: &'a str,
    /// Why it came: `webhook bamboo: employee.updated`.
    pub cause: &'a str,
    pub trace: &'a str,
}

/// Takes in a thin event: unless it was delivered before, queue the fetch of the full
/// record (hr-events). The fetch runs later, so the webhook answers at once.
pub async fn take_notice<S: StateStore, Q: Queue>(
    store: &S,
    queue: &Q,
    now: Timestamp,
    notice: Notice<'_>,
) -> Result<Outcome, StageError> {
    let worker = notice.worker.clone();
    if store.delivered(notice.delivery, now).await? {
        audit_duplicate(
            store,
            &worker,
            now,
            notice.delivery,
            notice.cause,
            notice.trace,
        )
        .await?;
        return Ok(Outcome::Duplicate { worker });
    }
    let nudge = Nudge::new(worker.clone(), notice.cause, notice.trace);
    queue
        .send(QueueName::HrEvents, &nudge, notice.delivery, now)
        .await?;
    let expires = now
        .checked_add(DELIVERY_MEMORY)
        .map_err(|e| StageError::permanent(format!("delivery expiry out of range: {e}")))?;
    store.first_delivery(notice.delivery, now, expires).await?;
    Ok(Outcome::Queued { worker })
}

/// Audits a delivery dropped because it was taken in before (within [`DELIVERY_MEMORY`]).
pub async fn audit_duplicate<S: StateStore>(
    store: &S,
    worker: &WorkerKey,
    now: Timestamp,
    delivery: &str,
    cause: &str,
    trace: &str,
) -> Result<(), StageError> {
    let mut record = AuditRecord::new(
        worker,
        now,
        "intake",
        "duplicate",
        format!("{cause}: delivery {delivery} was taken in before (a redelivery); dropped"),
        trace,
    );
    record.after = json(&serde_json::json!({ "delivery": delivery }));
    store.append_audit(&record).await?;
    Ok(())
}

/// One poll of a source's change feed (for events its webhooks missed): every worker changed
/// since the stored cursor is queued for a fetch, then the cursor moves. A crash in between
/// polls the same window again, and the per-change delivery ids make that harmless. The
/// first poll only sets the cursor. Returns how many workers were queued.
pub async fn poll<S: StateStore, Q: Queue>(
    store: &S,
    queue: &Q,
    connector: &dyn Connector,
    now: Timestamp,
) -> Result<usize, StageError> {
    let source = connector.source();
    let cursor = store.cursor(source).await?;
    // The vendor's feed is in the real world's time, whatever the run's clock says.
    let changes = connector
        .changed_since(cursor.as_deref(), Timestamp::now())
        .await?;
    let since = cursor.as_deref().unwrap_or("start");
    let cause = format!("poll {source}: changed since {since}");
    let mut queued = 0;
    for employee_id in &changes.employee_ids {
        let worker = WorkerKey::new(source, employee_id.as_str());
        let delivery = format!("poll:{source}:{since}:{employee_id}");
        let trace = format!("poll:{source}:{since}");
        let outcome = take_notice(
            store,
            queue,
            now,
            Notice {
                worker: &worker,
                delivery: &delivery,
                cause: &cause,
                trace: &trace,
            },
        )
        .await?;
        queued += usize::from(matches!(outcome, Outcome::Queued { .. }));
    }
    store.put_cursor(source, &changes.cursor).await?;
    Ok(queued)
}

/// Identifies a record's content (deterministic across runs: `DefaultHasher::new` has fixed keys).
fn fingerprint(snapshot: &Worker) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(snapshot)
        .unwrap_or_default()
        .hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::memory::{MemoryQueue, MemoryStore};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn record(as_of: &str) -> Worker {
        Worker::new(WorkerKey::new("hr", "7001"), "Ada", "Lovelace", at(as_of))
    }

    async fn take(
        store: &MemoryStore,
        queue: &MemoryQueue,
        snapshot: &Worker,
        delivery: &str,
    ) -> Outcome {
        let incoming = Incoming {
            snapshot,
            delivery,
            cause: "webhook hr: employee.updated",
            trace: &format!("webhook:{delivery}"),
        };
        take_in(store, queue, at("2026-05-01T09:00:00Z"), incoming)
            .await
            .unwrap()
    }

    /// `(action, cause)` of the worker's intake records, oldest first.
    async fn intake_audit(store: &MemoryStore, worker: &WorkerKey) -> Vec<AuditRecord> {
        store
            .audit(worker)
            .await
            .unwrap()
            .into_iter()
            .filter(|record| record.stage == "intake")
            .collect()
    }

    #[tokio::test]
    async fn a_record_read_again_is_a_duplicate_left_to_the_caller_to_audit() {
        let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
        let row = record("2026-05-01T08:00:00Z");
        take(&store, &queue, &row, "import:hr:7001:abc").await;
        let again = take(&store, &queue, &row, "import:hr:7001:abc").await;
        assert!(matches!(again, Outcome::Duplicate { .. }), "{again:?}");
        let records = intake_audit(&store, &row.key).await;
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(
            actions,
            ["received"],
            "an export imported again is not audited row by row"
        );
    }

    #[tokio::test]
    async fn an_older_record_is_audited_as_stale_with_both_instants() {
        let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
        let newer = record("2026-05-01T08:00:00Z");
        let mut older = record("2026-04-30T17:00:00Z");
        older.status = hrsync_core::Status::Terminated;
        take(&store, &queue, &newer, "hr:evt-2#7001").await;
        let outcome = take(&store, &queue, &older, "hr:evt-1#7001").await;
        assert!(matches!(outcome, Outcome::Stale { .. }), "{outcome:?}");

        let records = intake_audit(&store, &newer.key).await;
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["received", "stale"], "{records:#?}");
        let stale = &records[1];
        assert!(
            stale.cause.contains("hr:evt-1#7001")
                && stale.cause.contains("2026-04-30T17:00:00Z")
                && stale.cause.contains("2026-05-01T08:00:00Z"),
            "the cause names the delivery and both instants: {}",
            stale.cause
        );
        assert_eq!(
            stale.after,
            Some(serde_json::json!({
                "delivery": "hr:evt-1#7001",
                "as_of": "2026-04-30T17:00:00Z",
                "kept_as_of": "2026-05-01T08:00:00Z",
            }))
        );
    }

    #[tokio::test]
    async fn a_redelivered_notice_is_audited_as_a_duplicate() {
        let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
        let worker = WorkerKey::new("bamboo", "42");
        let notice = Notice {
            worker: &worker,
            delivery: "bamboo:evt-9",
            cause: "webhook bamboo: employee.updated",
            trace: "webhook:bamboo:evt-9",
        };
        let now = at("2026-05-01T09:00:00Z");
        let first = take_notice(&store, &queue, now, notice.clone())
            .await
            .unwrap();
        assert!(matches!(first, Outcome::Queued { .. }), "{first:?}");
        let again = take_notice(&store, &queue, now, notice).await.unwrap();
        assert!(matches!(again, Outcome::Duplicate { .. }), "{again:?}");

        let records = intake_audit(&store, &worker).await;
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["duplicate"], "{records:#?}");
        assert!(
            records[0].cause.contains("bamboo:evt-9"),
            "{}",
            records[0].cause
        );
        assert_eq!(records[0].trace.as_deref(), Some("webhook:bamboo:evt-9"));
    }
}
