//! Runs the stages off the queues and fires the timers: the loop of `hrsync serve` and
//! `hrsync import` (the AWS runtime has Lambda's event source mappings and Scheduler instead).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hrsync_core::{Transition, WorkerKey};
use hrsync_directory::group_adds::{GroupAdds, Participant};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::metrics::Counters;
use crate::ports::{
    AuditRecord, Delivery, Nudge, Queue, QueueError, QueueName, RetryOutcome, StateStore,
    TimerSpec, Timers, timer_kind_str,
};
use crate::stages::{Outcome, Pipeline, StageError};

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Messages received per queue per round (each a different worker).
    pub batch: usize,
    /// How long a received message stays invisible before another receiver may take it.
    pub visibility: Duration,
    /// Deliveries before a failing message is dead-lettered.
    pub max_attempts: u32,
    /// Backoff of the first retry; it doubles per attempt, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Pause when there is nothing to do.
    pub idle: Duration,
    /// While a stage's service is down (an outage): how long its messages wait before the
    /// queue is tried again, with one message.
    pub outage_probe: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch: 32,
            visibility: Duration::from_secs(300),
            max_attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            idle: Duration::from_millis(50),
            outage_probe: Duration::from_secs(30),
        }
    }
}

/// What happened to each worker during a run (the import's summary).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub workers: BTreeMap<WorkerKey, WorkerReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerReport {
    /// The last transition mapping decided (none: the record changed nothing).
    pub transition: Option<Transition>,
    pub timers: usize,
    pub held: Option<String>,
    pub steps: Vec<String>,
    pub deferred: Vec<String>,
    /// Dead-lettered: the reason.
    pub failed: Option<String>,
    pub stale: bool,
    /// Licences waiting for a free unit.
    pub pending_licenses: Vec<PendingLicenseReport>,
}

/// A licence a worker waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingLicenseReport {
    pub sku: String,
    /// The SKU's `skuPartNumber` (e.g. `SPE_E3`), when known.
    pub part_number: Option<String>,
    pub reason: String,
}

/// Counts for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub workers: usize,
    pub joiners: usize,
    pub movers: usize,
    pub leavers: usize,
    pub rehires: usize,
    pub unchanged: usize,
    pub timers_set: usize,
    pub held: usize,
    pub failed: usize,
    pub directory_operations: usize,
    /// Workers with a licence waiting for a free unit.
    pub pending_licenses: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            workers: self.workers.len(),
            ..Summary::default()
        };
        for report in self.workers.values() {
            match report.transition {
                Some(Transition::Join | Transition::Prehire) => summary.joiners += 1,
                Some(Transition::Move) => summary.movers += 1,
                Some(Transition::Leave) => summary.leavers += 1,
                Some(Transition::Rehire) => summary.rehires += 1,
                Some(Transition::None) | None => summary.unchanged += 1,
            }
            summary.timers_set += report.timers;
            summary.held += usize::from(report.held.is_some());
            summary.failed += usize::from(report.failed.is_some());
            summary.directory_operations += report.steps.len();
            summary.pending_licenses += usize::from(!report.pending_licenses.is_empty());
        }
        summary
    }

    /// Adds what an audit record says happened, for a run whose stages ran in another
    /// process (`hrsync import` handing its export to `hrsync serve`).
    pub fn record_audit(&mut self, record: &AuditRecord) {
        let report = self.workers.entry(record.worker.clone()).or_default();
        match (record.stage.as_str(), record.action.as_str()) {
            ("mapping", "held") => {
                report.held = record
                    .after
                    .as_ref()
                    .and_then(|after| after["hold"].as_str())
                    .map(str::to_owned);
            }
            ("mapping", action) => {
                report.transition = match action {
                    "prehire" => Some(Transition::Prehire),
                    "join" => Some(Transition::Join),
                    "move" => Some(Transition::Move),
                    "leave" => Some(Transition::Leave),
                    "rehire" => Some(Transition::Rehire),
                    _ => Some(Transition::None),
                };
                report.held = None;
            }
            ("entra", "name_taken") => {}
            ("entra", "license_pending") => {
                let sku = record
                    .after
                    .as_ref()
                    .and_then(|after| after["sku"].as_str());
                if let Some(sku) = sku {
                    let part_number = record
                        .after
                        .as_ref()
                        .and_then(|after| after["part_number"].as_str().map(str::to_owned));
                    report.pending_licenses.push(PendingLicenseReport {
                        sku: sku.to_owned(),
                        part_number,
                        reason: record.cause.clone(),
                    });
                }
            }
            ("entra", action) => report.steps.push(action.to_owned()),
            (queue, "dead_lettered") => {
                report.failed = Some(format!("{queue}: {}", record.cause));
            }
            _ => {}
        }
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Received { worker }
            | Outcome::Queued { worker }
            | Outcome::Duplicate { worker }
            | Outcome::Nothing { worker } => {
                self.workers.entry(worker).or_default();
            }
            Outcome::Stale { worker } => self.workers.entry(worker).or_default().stale = true,
            Outcome::Mapped {
                worker,
                transition,
                timers,
                changed,
                ..
            } => {
                let report = self.workers.entry(worker).or_default();
                if changed || report.transition.is_none() {
                    report.transition = Some(transition);
                }
                report.timers = timers;
                report.held = None;
            }
            Outcome::Held { worker, hold, .. } => {
                self.workers.entry(worker).or_default().held = Some(hold)
            }
            Outcome::Converged {
                worker,
                steps,
                deferred,
                pending_licenses,
            } => {
                let report = self.workers.entry(worker).or_default();
                report.steps.extend(steps.iter().map(|s| (*s).to_owned()));
                report.deferred = deferred;
                report.pending_licenses = pending_licenses
                    .into_iter()
                    .map(|(sku, reason)| PendingLicenseReport {
                        sku,
                        part_number: None,
                        reason,
                    })
                    .collect();
            }
            Outcome::WrittenBack { worker } => {
                self.workers.entry(worker).or_default();
            }
        }
    }
}

/// Drives a [`Pipeline`]: receives from its queues, runs the stage, acks, retries with
/// backoff or dead-letters; fires due timers into the worker-events queue.
#[derive(Debug)]
pub struct Runner<S, Q, T> {
    pipeline: Arc<Pipeline<S, Q, T>>,
    settings: RunnerSettings,
    report: Arc<Mutex<Report>>,
    /// What this process did, for `GET /metrics`.
    counters: Arc<Mutex<Counters>>,
    /// Cuts an idle pause short when work arrives in this process (a webhook).
    wake: tokio::sync::Notify,
    /// The queues whose stage's service is down, and how many deliveries an outage postponed.
    outages: Arc<Mutex<Outages>>,
}

/// Queues whose stage's service is down: their work waits, using up no tries, and the queue is
/// probed with one message at a time.
#[derive(Debug, Default)]
struct Outages {
    down: BTreeMap<QueueName, Outage>,
    /// Deliveries postponed by an outage since the runner started.
    postponed: u64,
    /// A draining run stops at an outage and says so in its error: no warning besides.
    draining: bool,
}

#[derive(Debug, Clone)]
struct Outage {
    /// What is wrong, naming the endpoint (no worker).
    what: String,
    since: jiff::Timestamp,
    /// The queue is not received from before then.
    probe_at: jiff::Timestamp,
}

/// Why [`Runner::drain`] stopped before the queues were empty.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A stage's service is down: the run stops at once instead of failing every worker.
    #[error(
        "{what}; stopped with {waiting} message(s) kept in the queues, none of their tries used \
         up: the next run (or hrsync serve) does them once that is fixed"
    )]
    Outage { what: String, waiting: u64 },
}

impl<S, Q, T> Runner<S, Q, T>
where
    S: StateStore + 'static,
    Q: Queue + 'static,
    T: Timers + 'static,
{
    pub fn new(pipeline: Arc<Pipeline<S, Q, T>>, settings: RunnerSettings) -> Self {
        Self {
            pipeline,
            settings,
            report: Arc::default(),
            counters: Arc::default(),
            wake: tokio::sync::Notify::new(),
            outages: Arc::default(),
        }
    }

    /// Work was queued in this process: stop idling.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn pipeline(&self) -> &Arc<Pipeline<S, Q, T>> {
        &self.pipeline
    }

    pub fn report(&self) -> Report {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The counters since the process started.
    pub fn counters(&self) -> Counters {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records what a stage run outside the runner (intake) did.
    pub fn note(&self, outcome: Outcome) {
        lock(&self.counters).observe(&outcome);
        lock(&self.report).record(outcome);
    }

    /// Sends a worker-events nudge for every timer due now. The nudge goes out before the
    /// timer is removed, so a crash in between re-sends it (harmless: mapping decides again)
    /// rather than losing a leaver.
    pub async fn fire_timers(&self) -> Result<usize, QueueError> {
        let pipeline = &self.pipeline;
        let now = pipeline.clock.now();
        let mut fired = 0;
        loop {
            let due: Vec<TimerSpec> = pipeline
                .timers
                .next(256)
                .await?
                .into_iter()
                .filter(|t| t.at <= now)
                .collect();
            if due.is_empty() {
                return Ok(fired);
            }
            for timer in &due {
                self.send_timer(timer).await?;
            }
            // Whatever is due now, including a timer put since we looked (send is deduplicated).
            for timer in pipeline.timers.take_due(now).await? {
                self.send_timer(&timer).await?;
                fired += 1;
            }
        }
    }

    async fn send_timer(&self, timer: &TimerSpec) -> Result<(), QueueError> {
        let reason = format!("timer {} at {}", timer_kind_str(timer.kind), timer.at);
        let nudge = Nudge::new(
            timer.worker.clone(),
            reason,
            format!("timer:{}@{}", timer.name, timer.at),
        );
        let dedup = format!("{}@{}", timer.name, timer.at);
        self.pipeline
            .queue
            .send(
                QueueName::WorkerEvents,
                &nudge,
                &dedup,
                self.pipeline.clock.now(),
            )
            .await
    }

    /// One round: fire due timers, then one batch from each queue. Returns how many messages
    /// were handled.
    pub async fn step(&self) -> Result<usize, QueueError> {
        self.fire_timers().await?;
        let pipeline = &self.pipeline;
        let now = pipeline.clock.now();
        // One batch from every queue, all handled at once. One worker's messages on two queues
        // may run together (as separate Lambda functions would): every state write is
        // conditional on the version read, and the loser reads again.
        let mut running = JoinSet::new();
        // The round's directory deliveries add their group members together.
        let round = pipeline.graph.clone().map(GroupAdds::new);
        for queue in QueueName::ALL {
            pipeline
                .queue
                .dead_letter_abandoned(
                    queue,
                    now,
                    self.settings.max_attempts,
                    "its receiver stopped before finishing it, too many times",
                )
                .await?;
            let batch = match lock(&self.outages).down.get(&queue) {
                Some(outage) if outage.probe_at > now => continue,
                Some(_) => 1,
                None => self.settings.batch,
            };
            let deliveries = pipeline
                .queue
                .receive(queue, batch, now, self.settings.visibility)
                .await?;
            for delivery in deliveries {
                let pipeline = Arc::clone(&self.pipeline);
                let report = Arc::clone(&self.report);
                let counters = Arc::clone(&self.counters);
                let outages = Arc::clone(&self.outages);
                let settings = self.settings.clone();
                let place = round
                    .as_ref()
                    .filter(|_| queue == QueueName::Directory)
                    .map(GroupAdds::join);
                running.spawn(async move {
                    let kept = Kept {
                        report: &report,
                        counters: &counters,
                        outages: &outages,
                    };
                    handle(&pipeline, &settings, kept, delivery, place).await
                });
            }
        }
        let handled = running.len();
        while let Some(done) = running.join_next().await {
            match done {
                Ok(result) => result?,
                Err(panic) => {
                    return Err(QueueError::Backend(format!("a stage panicked: {panic}")));
                }
            }
        }
        Ok(handled)
    }

    /// Runs until every queue is empty (nothing visible, waiting or in flight); timers due
    /// meanwhile fire. Future timers are left for later.
    ///
    /// A stage's service going down stops it at once ([`DrainError::Outage`]): the work stays
    /// queued with its tries intact, rather than every worker failing its way to the
    /// dead-letter queue.
    pub async fn drain(&self) -> Result<(), DrainError> {
        lock(&self.outages).draining = true;
        loop {
            let postponed = lock(&self.outages).postponed;
            let handled = self.step().await?;
            if lock(&self.outages).postponed > postponed {
                return Err(self.outage_stop().await?);
            }
            if handled > 0 {
                continue;
            }
            let mut busy = false;
            for queue in QueueName::ALL {
                let depth = self.pipeline.queue.depth(queue).await?;
                busy |= depth.visible + depth.in_flight > 0;
            }
            let due = self
                .pipeline
                .timers
                .next(1)
                .await?
                .first()
                .is_some_and(|t| t.at <= self.pipeline.clock.now());
            if !busy && !due {
                return Ok(());
            }
            // Messages waiting out a retry backoff.
            self.pipeline.clock.pause(self.settings.idle).await;
        }
    }

    async fn outage_stop(&self) -> Result<DrainError, QueueError> {
        let what = lock(&self.outages)
            .down
            .values()
            .max_by_key(|outage| outage.since)
            .map(|outage| outage.what.clone())
            .unwrap_or_default();
        let mut waiting = 0;
        for queue in QueueName::ALL {
            let depth = self.pipeline.queue.depth(queue).await?;
            waiting += depth.visible + depth.in_flight;
        }
        Ok(DrainError::Outage { what, waiting })
    }

    /// Runs until `stop` resolves; a message being handled is finished first.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) -> Result<(), QueueError> {
        tokio::pin!(stop);
        loop {
            // Stop between rounds, not only when idle: a backlog stays queued for the next start.
            tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                () = std::future::ready(()) => {}
            }
            let handled = self.step().await?;
            if handled > 0 {
                continue;
            }
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = self.pipeline.clock.pause(self.settings.idle) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}

/// Where a handled delivery is kept track of: the run's report and the process's counters.
#[derive(Clone, Copy)]
struct Kept<'a> {
    report: &'a Mutex<Report>,
    counters: &'a Mutex<Counters>,
    outages: &'a Mutex<Outages>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn handle<S, Q, T>(
    pipeline: &Pipeline<S, Q, T>,
    settings: &RunnerSettings,
    kept: Kept<'_>,
    delivery: Delivery,
    round: Option<Participant>,
) -> Result<(), QueueError>
where
    S: StateStore,
    Q: Queue,
    T: Timers,
{
    let nudge = &delivery.nudge;
    let result = pipeline
        .consume_in_round(delivery.queue, nudge, round)
        .await;
    let settle = match result {
        Ok(outcome) => {
            if let Outcome::Converged { steps, .. } = &outcome
                && !steps.is_empty()
            {
                // One line per applied change; the worker only at debug.
                tracing::info!(operations = ?steps, "directory changes applied");
                tracing::debug!(worker = %nudge.worker, "directory changes applied");
            }
            lock(kept.counters).observe(&outcome);
            lock(kept.report).record(outcome);
            if let Some(outage) = lock(kept.outages).down.remove(&delivery.queue) {
                let now = pipeline.clock.now();
                let down_for = now.duration_since(outage.since).as_secs().max(0);
                // At the outage warning's level, so whoever saw the one sees the other.
                tracing::warn!(queue = %delivery.queue, down_for_s = down_for, "the service is back: {}'s work goes on", delivery.queue);
            }
            pipeline.queue.ack(&delivery).await
        }
        Err(error) => match &error.outage {
            Some(what) => postpone(pipeline, settings, kept.outages, &delivery, what).await,
            None => fail(pipeline, settings, kept, &delivery, &error).await,
        },
    };
    match settle {
        // A newer delivery of the same message reports instead (the work was idempotent).
        Err(QueueError::StaleReceipt { .. }) => Ok(()),
        other => other,
    }
}

/// The stage's service is down: the delivery waits, with its try given back, and the queue
/// is probed again after [`RunnerSettings::outage_probe`]. One warning per outage.
async fn postpone<S, Q, T>(
    pipeline: &Pipeline<S, Q, T>,
    settings: &RunnerSettings,
    outages: &Mutex<Outages>,
    delivery: &Delivery,
    what: &str,
) -> Result<(), QueueError>
where
    S: StateStore,
    Q: Queue,
    T: Timers,
{
    let now = pipeline.clock.now();
    pipeline
        .queue
        .postpone(delivery, now, settings.outage_probe)
        .await?;
    let probe_at = crate::ports::later(now, settings.outage_probe)?;
    let mut outages = lock(outages);
    outages.postponed += 1;
    let began = !outages.down.contains_key(&delivery.queue);
    let outage = outages.down.entry(delivery.queue).or_insert(Outage {
        what: what.to_owned(),
        since: now,
        probe_at,
    });
    outage.what = what.to_owned();
    outage.probe_at = probe_at;
    if began && !outages.draining {
        tracing::warn!(queue = %delivery.queue, retry_every_s = settings.outage_probe.as_secs(), "{what}: {}'s work waits, using up no tries", delivery.queue);
    }
    tracing::debug!(worker = %delivery.nudge.worker, queue = %delivery.queue, "postponed: the service is down");
    Ok(())
}

async fn fail<S, Q, T>(
    pipeline: &Pipeline<S, Q, T>,
    settings: &RunnerSettings,
    kept: Kept<'_>,
    delivery: &Delivery,
    error: &StageError,
) -> Result<(), QueueError>
where
    S: StateStore,
    Q: Queue,
    T: Timers,
{
    let outcome = settle_failure(pipeline, settings, delivery, error).await?;
    let dead_lettered = outcome == RetryOutcome::DeadLettered;
    lock(kept.counters).failed(delivery.queue, dead_lettered);
    if dead_lettered {
        lock(kept.report)
            .workers
            .entry(delivery.nudge.worker.clone())
            .or_default()
            .failed = Some(format!("{}: {}", delivery.queue, error.message));
    }
    Ok(())
}

/// Settles a delivery whose stage failed: another attempt after a backoff (doubling per
/// attempt), or, out of attempts or on a permanent error, the dead-letter queue with the
/// reason, audited. The runner's way and the Lambda functions' way alike.
pub async fn settle_failure<S, Q, T>(
    pipeline: &Pipeline<S, Q, T>,
    settings: &RunnerSettings,
    delivery: &Delivery,
    error: &StageError,
) -> Result<RetryOutcome, QueueError>
where
    S: StateStore,
    Q: Queue,
    T: Timers,
{
    let now = pipeline.clock.now();
    let worker = &delivery.nudge.worker;
    // The worker and the reason may name a person: debug only (the reason is kept with the
    // message, and in the audit once it is dead-lettered).
    tracing::debug!(%worker, error = %error, "stage failed");
    // A permanent error has had its last attempt.
    let max_attempts = match error.retryable {
        true => settings.max_attempts,
        false => delivery.attempt,
    };
    let exponent = delivery.attempt.saturating_sub(1).min(16);
    let backoff = settings
        .first_backoff
        .saturating_mul(1 << exponent)
        .min(settings.max_backoff);
    let outcome = pipeline
        .queue
        .retry(delivery, &error.message, now, backoff, max_attempts)
        .await?;
    // A retry that may still succeed is routine (info); work given up on is a warning.
    if outcome == RetryOutcome::Retried {
        tracing::info!(queue = %delivery.queue, attempt = delivery.attempt, backoff_ms = backoff.as_millis() as u64, "stage failed; retrying after the backoff");
    } else {
        tracing::warn!(queue = %delivery.queue, attempt = delivery.attempt, retryable = error.retryable, "stage failed and was dead-lettered (why: hrsync dlq list; the worker: RUST_LOG=debug)");
        let record = AuditRecord::new(
            worker,
            now,
            delivery.queue.as_str(),
            "dead_lettered",
            error.message.clone(),
            &delivery.nudge.trace,
        );
        if let Err(audit_error) = pipeline.store.append_audit(&record).await {
            tracing::error!(error = %audit_error, "cannot audit a dead letter");
        }
        let queue = delivery.queue;
        let key = crate::stages::quoted(&worker.to_string());
        pipeline
            .notify(crate::notify::Notice {
                event: hrsync_core::config::NotifyEvent::DeadLettered,
                // The receipt tells this dead-lettering from a later one of the same nudge;
                // hashed, as an SQS receipt is long for a store key.
                id: format!(
                    "dead#{queue}#{worker}#{}#{:016x}",
                    delivery.nudge.trace,
                    receipt_digest(&delivery.id)
                ),
                worker: worker.clone(),
                display_name: pipeline.display_name(worker).await,
                what: format!("A worker's {queue} message failed and was dead-lettered"),
                why: format!("after {} attempt(s): {}", delivery.attempt, error.message),
                commands: vec![
                    format!("hrsync dlq list --queue {queue}"),
                    "hrsync dlq redrive <ID from the list> (after fixing the cause)".into(),
                    format!("hrsync audit {key}"),
                ],
            })
            .await;
    }
    Ok(outcome)
}

/// A short digest of a receipt (the same in every process of one build).
fn receipt_digest(receipt: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    receipt.hash(&mut hasher);
    hasher.finish()
}
