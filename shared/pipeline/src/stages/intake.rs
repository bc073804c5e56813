//! Intake: an HR record arrives (a webhook, a row of an export, an operator's termination).
//! Keep it as the worker's latest snapshot unless a newer one is kept, and nudge mapping.
//! Deliveries are checked before the work and marked after it: a crash in between only
//! means the redelivery does the (idempotent) work again.

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
