//! The operator's levers and views, written once over the ports so every runtime shares them:
//! terminate a worker now, approve or reject what the breaker held, list and redrive dead
//! letters, and what `status`, `audit` and `timers` show. A command line only parses its
//! arguments, calls these and prints; whether the queued work then runs in that process, in a
//! running `hrsync serve` or in the AWS functions is the runtime's business.
//!
//! Hold approval is level-triggered: an approved hold whose worker has not been decided again
//! since is found by [`Operations::unfinished_approvals`] and nudged again (approving it again
//! does the same), so a crash between the approval and its nudge leaves no leaver enabled.

use std::collections::BTreeMap;

use hrsync_core::{Config, NothingTaken, Worker, WorkerKey, decide};
use jiff::Timestamp;
use serde::Serialize;

use crate::ports::{
    AuditRecord, DeadLetter, Hold, HoldStatus, Nudge, Queue, QueueDepth, QueueError, QueueName,
    StateStore, StoreError, TimerSpec, Timers,
};
use crate::stages::intake::{Incoming, take_in};
use crate::stages::mapping::OPERATOR_TERMINATION;
use crate::stages::{Outcome, Pipeline, StageError};
use crate::synthetic::{EMERGENCY, leaving_now};

/// What an operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("{}", .0.message)]
    Stage(StageError),
    /// The operator asked for something that cannot be done as asked (an unknown worker, a hold
    /// no longer pending...): the message says what and where to look.
    #[error("{0}")]
    Refused(String),
}

impl From<StageError> for OperationError {
    fn from(error: StageError) -> Self {
        Self::Stage(error)
    }
}

/// The stage name operators' audit records carry.
pub const OPERATOR_STAGE: &str = "cli";

/// The operations over one runtime's config and ports.
#[derive(Debug)]
pub struct Operations<'a, S, Q, T> {
    pub config: &'a Config,
    pub store: &'a S,
    pub queue: &'a Q,
    pub timers: &'a T,
}

/// Licences waiting for a free unit, by SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingLicenses {
    pub sku: String,
    /// How many workers wait for a unit.
    pub workers: usize,
    /// The earliest of their next tries.
    pub next_try: Timestamp,
    /// Why the first of them waits (Graph's answer, or what subscribedSkus showed).
    pub reason: String,
    pub waiting: Vec<String>,
}

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    /// The operator's levers and views over this pipeline's config and ports.
    pub fn operations(&self) -> Operations<'_, S, Q, T> {
        Operations {
            config: &self.config,
            store: &self.store,
            queue: &self.queue,
            timers: &self.timers,
        }
    }
}

impl<S: StateStore, Q: Queue, T: Timers> Operations<'_, S, Q, T> {
    /// The worker's latest HR record: the intake's inbox, else the one the state was decided on.
    pub async fn latest_record(&self, key: &WorkerKey) -> Result<Option<Worker>, StoreError> {
        if let Some(snapshot) = self.store.snapshot(key).await? {
            return Ok(Some(snapshot));
        }
        Ok(self
            .store
            .load(key)
            .await?
            .and_then(|stored| stored.state.snapshot))
    }

    /// Would mapping change the worker's stored decision now (a changed config, time passed,
    /// a record taken in but not yet decided, a disable the breaker held)?
    pub async fn decides_differently(
        &self,
        key: &WorkerKey,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(stored) = self.store.load(key).await? else {
            return Ok(true);
        };
        let Some(latest) = self.latest_record(key).await? else {
            return Ok(false);
        };
        Ok(
            match decide(&latest, &stored.state, self.config, now, &NothingTaken) {
                Ok(decision) => decision.state != stored.state,
                // Mapping reports it.
                Err(_) => true,
            },
        )
    }

    /// The zone the worker's dates are read in (theirs, else `lifecycle.default_time_zone`).
    pub async fn worker_zone(&self, key: &WorkerKey) -> Result<String, StoreError> {
        let zone = self.latest_record(key).await?.and_then(|w| w.time_zone);
        Ok(zone.unwrap_or_else(|| self.config.lifecycle.default_time_zone.0.clone()))
    }

    /// Every queue's depth, in pipeline order.
    pub async fn depths(&self) -> Result<BTreeMap<QueueName, QueueDepth>, QueueError> {
        let mut depths = BTreeMap::new();
        for queue in QueueName::ALL {
            depths.insert(queue, self.queue.depth(queue).await?);
        }
        Ok(depths)
    }

    /// Every worker's licences waiting for a free unit, by SKU (reads every worker's state).
    pub async fn pending_licenses(&self) -> Result<Vec<PendingLicenses>, StoreError> {
        let mut by_sku: BTreeMap<String, PendingLicenses> = BTreeMap::new();
        for key in self.store.workers().await? {
            let Some(stored) = self.store.load(&key).await? else {
                continue;
            };
            for pending in stored.state.pending_licenses {
                let entry =
                    by_sku
                        .entry(pending.sku.to_lowercase())
                        .or_insert_with(|| PendingLicenses {
                            sku: pending.sku.clone(),
                            workers: 0,
                            next_try: pending.retry_at,
                            reason: pending.reason.clone(),
                            waiting: Vec::new(),
                        });
                entry.workers += 1;
                entry.next_try = entry.next_try.min(pending.retry_at);
                entry.waiting.push(key.to_string());
            }
        }
        Ok(by_sku.into_values().collect())
    }

    /// The next `limit` timers, or the worker's.
    pub async fn timers(
        &self,
        worker: Option<&WorkerKey>,
        limit: usize,
    ) -> Result<Vec<TimerSpec>, QueueError> {
        let mut timers = match worker {
            Some(key) => self.timers.worker_timers(key).await?,
            None => self.timers.next(limit).await?,
        };
        timers.truncate(limit);
        Ok(timers)
    }

    /// The dead letters of one queue, or of all, oldest first per queue.
    pub async fn dead_letters(
        &self,
        queue: Option<QueueName>,
    ) -> Result<Vec<(QueueName, DeadLetter)>, QueueError> {
        let queues = match queue {
            Some(queue) => vec![queue],
            None => QueueName::ALL.to_vec(),
        };
        let mut all = Vec::new();
        for queue in queues {
            let letters = self.queue.dead_letters(queue).await?;
            all.extend(letters.into_iter().map(|letter| (queue, letter)));
        }
        Ok(all)
    }

    /// Emergency leaver: the worker leaves now (`reason` audited), through intake, never held
    /// by the breaker. The work it queues is left to the runtime.
    pub async fn terminate(
        &self,
        key: &WorkerKey,
        reason: &str,
        now: Timestamp,
    ) -> Result<Outcome, OperationError> {
        let latest = self.latest_record(key).await?.ok_or_else(|| {
            OperationError::Refused(format!(
                "unknown worker {key}: hrsync has no HR record of them"
            ))
        })?;
        let zone = &self.config.lifecycle.default_time_zone.0;
        let leaving = leaving_now(&latest, now, zone, EMERGENCY);
        let delivery = format!("terminate:{key}:{now}");
        let cause = format!("{OPERATOR_TERMINATION} {reason}");
        let mut record = AuditRecord::new(key, now, OPERATOR_STAGE, "terminate", reason, &delivery);
        record.after = Some(serde_json::json!({ "termination_type": EMERGENCY, "at": now }));
        self.store.append_audit(&record).await?;
        let incoming = Incoming {
            snapshot: &leaving,
            delivery: &delivery,
            cause: &cause,
            trace: &delivery,
        };
        Ok(take_in(self.store, self.queue, now, incoming).await?)
    }

    /// The holds named (every pending one with `all`) that can be approved or rejected: an id
    /// unknown, or resolved otherwise, is refused before anything is changed. Approving an
    /// approved hold again is allowed (it sends its nudge again).
    pub async fn holds_to_resolve(
        &self,
        ids: &[String],
        all: bool,
        to: HoldStatus,
    ) -> Result<Vec<Hold>, OperationError> {
        if all {
            return Ok(self.store.holds(Some(HoldStatus::Pending)).await?);
        }
        let mut holds: Vec<Hold> = Vec::new();
        let mut refused = Vec::new();
        for id in ids {
            match self.store.hold(id).await? {
                Some(hold) if hold.status == HoldStatus::Pending || hold.status == to => {
                    if !holds.iter().any(|h| h.id == hold.id) {
                        holds.push(hold);
                    }
                }
                Some(hold) => refused.push(format!("{id} (already {})", hold.status.as_str())),
                None => refused.push(format!("{id} (unknown)")),
            }
        }
        match refused.is_empty() {
            true => Ok(holds),
            false => Err(OperationError::Refused(format!(
                "holds that cannot be {}: {} (see `hrsync holds list --status all`)",
                to.as_str(),
                refused.join(", ")
            ))),
        }
    }

    /// Approves `hold` (audited once) and nudges mapping, which, finding it approved, lets the
    /// held operation through. An already approved hold is only nudged again: the approval
    /// stands even if the nudge is lost, and [`Operations::unfinished_approvals`] finds it.
    pub async fn approve(&self, hold: &Hold, now: Timestamp) -> Result<(), OperationError> {
        let trace = format!("approve:{}", hold.id);
        if hold.status == HoldStatus::Pending {
            if !self
                .store
                .resolve_hold(&hold.id, HoldStatus::Approved)
                .await?
            {
                let status = self.store.hold(&hold.id).await?.map(|h| h.status);
                if status != Some(HoldStatus::Approved) {
                    return Err(OperationError::Refused(format!(
                        "hold {} is no longer pending (someone resolved it meanwhile)",
                        hold.id
                    )));
                }
            }
            let cause = format!("approved hold {}: {}", hold.id, hold.reason);
            let record = AuditRecord::new(
                &hold.worker,
                now,
                OPERATOR_STAGE,
                "hold_approved",
                cause,
                &trace,
            );
            self.store.append_audit(&record).await?;
        }
        let nudge = Nudge::new(hold.worker.clone(), "hold approved", trace);
        let dedup = format!("approve#{}@{now}", hold.id);
        self.queue
            .send(QueueName::WorkerEvents, &nudge, &dedup, now)
            .await?;
        Ok(())
    }

    /// Rejects `hold`, audited with `why`: the held operation never happens.
    pub async fn reject(
        &self,
        hold: &Hold,
        why: &str,
        now: Timestamp,
    ) -> Result<(), OperationError> {
        if !self
            .store
            .resolve_hold(&hold.id, HoldStatus::Rejected)
            .await?
        {
            return Err(OperationError::Refused(format!(
                "hold {} is no longer pending (someone resolved it meanwhile)",
                hold.id
            )));
        }
        let trace = format!("reject:{}", hold.id);
        let cause = format!("rejected hold {} ({}): {why}", hold.id, hold.reason);
        let record = AuditRecord::new(
            &hold.worker,
            now,
            OPERATOR_STAGE,
            "hold_rejected",
            cause,
            &trace,
        );
        self.store.append_audit(&record).await?;
        Ok(())
    }

    /// Approved holds whose worker mapping would still decide differently: an approval whose
    /// nudge was lost (the process died in between), or whose work is still queued. Each is
    /// nudged again (deduplicated per hold and instant); returns how many.
    pub async fn unfinished_approvals(&self, now: Timestamp) -> Result<usize, OperationError> {
        let mut nudged = 0;
        for hold in self.store.holds(Some(HoldStatus::Approved)).await? {
            if self.decides_differently(&hold.worker, now).await? {
                self.approve(&hold, now).await?;
                nudged += 1;
            }
        }
        Ok(nudged)
    }

    /// Before dead letters of the directory or write-back stage go back: their workers whose
    /// decision would change now (the fix was in the config, or time moved on) are nudged to
    /// mapping first, so the redriven work carries out the new decision instead of failing on
    /// the old one. Returns the workers nudged; the runtime lets mapping finish before
    /// [`Operations::redrive`].
    pub async fn decide_again_before_redrive(
        &self,
        letters: &[(QueueName, DeadLetter)],
        now: Timestamp,
    ) -> Result<Vec<WorkerKey>, OperationError> {
        let mut nudged: Vec<WorkerKey> = Vec::new();
        for (queue, letter) in letters {
            let worker = &letter.nudge.worker;
            if matches!(queue, QueueName::Directory | QueueName::Writeback)
                && !nudged.contains(worker)
                && self.decides_differently(worker, now).await?
            {
                nudged.push(worker.clone());
                let nudge = Nudge::new(worker.clone(), "redrive", format!("redrive:{}", letter.id));
                let dedup = format!("redrive#{}@{now}", letter.id);
                self.queue
                    .send(QueueName::WorkerEvents, &nudge, &dedup, now)
                    .await?;
            }
        }
        Ok(nudged)
    }

    /// Puts each dead letter back on its queue, audited with why it had failed.
    pub async fn redrive(
        &self,
        letters: &[(QueueName, DeadLetter)],
        now: Timestamp,
    ) -> Result<(), OperationError> {
        for (queue, letter) in letters {
            if !self.queue.redrive(*queue, &letter.id, now).await? {
                return Err(OperationError::Refused(format!(
                    "dead letter {} of {queue} is gone (redriven meanwhile?)",
                    letter.id
                )));
            }
            let trace = format!("redrive:{}", letter.id);
            let cause = format!("redrove {queue} message {}: {}", letter.id, letter.reason);
            let record = AuditRecord::new(
                &letter.nudge.worker,
                now,
                OPERATOR_STAGE,
                "redrive",
                cause,
                &trace,
            );
            self.store.append_audit(&record).await?;
        }
        Ok(())
    }
}
