//! Entra: converge the directory to the worker's desired identity
//! (hrsync_directory::converge), record what the directory now holds and audit each
//! confirmed step. Workers waiting for this one (as their manager) are nudged once it has an
//! account; a name someone else took meanwhile sends the worker back to mapping for another.

use std::collections::BTreeMap;
use std::time::Duration;

use hrsync_core::{PendingLicense, TimerKind, WorkerKey, WorkerState};
use hrsync_directory::converge::{ConvergeError, Lookup, Recorded, Step, adopt, converge};
use hrsync_directory::group_adds::Participant;
use jiff::Timestamp;

use super::mapping::Claim;
use super::writeback::owed;
use super::{CONFLICT_ROUNDS, Outcome, Pipeline, StageError, json, quoted};
use crate::notify::Notice;
use crate::ports::{
    AuditRecord, Nudge, Queue, QueueName, StateStore, StoreError, TimerSpec, Timers,
};
use hrsync_core::config::NotifyEvent;

/// How long mapping's finding that no account carries the worker's employee id is trusted: a
/// create within it needs no lookup of its own (a name Graph refuses is checked then).
pub const ABSENCE_TRUSTED_FOR: Duration = Duration::from_secs(3600);

/// When a licence without a free unit is tried again: 15 minutes, doubling per try, at most
/// every 2 hours (the worker's next directory run tries it too, if units were freed).
const LICENSE_RETRY_FIRST: Duration = Duration::from_secs(15 * 60);
const LICENSE_RETRY_MAX: Duration = Duration::from_secs(2 * 3600);

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    /// Converges the worker on its own (its group additions one request each).
    pub async fn entra(&self, nudge: &Nudge) -> Result<Outcome, StageError> {
        self.entra_in_round(nudge, None).await
    }

    /// Converges the worker; with a place in a `round`, its group additions go out with those
    /// of the round's other workers.
    pub async fn entra_in_round(
        &self,
        nudge: &Nudge,
        round: Option<Participant>,
    ) -> Result<Outcome, StageError> {
        let key = &nudge.worker;
        let Some(stored) = self.store.load(key).await? else {
            return Ok(Outcome::Nothing {
                worker: key.clone(),
            });
        };
        let state = stored.state;
        let Some(desired) = state.desired.clone() else {
            return Ok(Outcome::Nothing {
                worker: key.clone(),
            });
        };
        let stand_in = self.stand_in_manager(desired.manager.as_ref()).await?;
        let object_ids = |worker: &WorkerKey| stand_in.object_ids.get(worker).cloned();
        // The directory gets whoever stands in as the manager (the manager, or skip-level).
        let mut desired = desired;
        let manager = std::mem::replace(&mut desired.manager, stand_in.manager.clone());
        if let Some(manager) = &manager
            && desired.manager.as_ref() != Some(manager)
        {
            // Someone stands in: once the manager's own account exists, it takes over.
            self.wait_for_manager(key, manager, nudge).await?;
        }

        let mut steps: Vec<Step> = Vec::new();
        // Each confirmed step is kept, with its audit record, before the next request goes
        // out: a crash mid-run loses at most the record of the step in flight.
        // An account a refused create found carrying the employee id, when another worker
        // owns it: the run stops before writing to it, and the worker is held.
        let owned_by: std::sync::Mutex<Option<(String, WorkerKey)>> = Default::default();
        // Each confirmed step is kept, with its audit record, before the next request goes
        // out: a crash mid-run loses at most the record of the step in flight.
        let mut record = |step: &Step| -> Recorded<'_> {
            steps.push(step.clone());
            let step = step.clone();
            let owned_by = &owned_by;
            Box::pin(async move {
                let failed = |error: StageError| ConvergeError::Record {
                    message: error.message.clone(),
                    retryable: error.retryable,
                };
                if step.adopted
                    && let Some(account) = &step.after
                    && let Claim::Theirs { upn, owner } = self
                        .claim(key, &account.upn, account.mail.as_deref())
                        .await
                        .map_err(|e| failed(e.into()))?
                {
                    let message = format!("{upn} belongs to {owner}");
                    *owned_by
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((upn, owner));
                    return Err(ConvergeError::Record {
                        message,
                        retryable: false,
                    });
                }
                let audit = self.step_audit(nudge, &step);
                let after = step.after.clone();
                self.edit_state(key, None, &[audit], "recording a directory step", |s| {
                    s.applied = after.clone();
                })
                .await
                .map_err(failed)
            })
        };
        let now = self.clock.now();
        let mut lookup = match state.directory_checked_at {
            Some(at)
                if now.duration_since(at) < ABSENCE_TRUSTED_FOR.try_into().unwrap_or_default() =>
            {
                Lookup::AlreadyAbsent
            }
            _ => Lookup::WhenUnknown,
        };
        let mut current = state.applied.clone();
        let known = current.as_ref().is_some_and(|a| a.object_id.is_some());
        if !known
            && lookup == Lookup::WhenUnknown
            && let Some(employee_id) = desired
                .attributes
                .get("employeeId")
                .and_then(Option::as_deref)
        {
            // Looked up here rather than in converge: an account carrying the employee id may
            // be another worker's (another source with overlapping ids), and is then never
            // touched.
            if let Some(account) = self
                .directory()?
                .find_user_by_employee_id(employee_id)
                .await?
            {
                match self
                    .claim(key, &account.user_principal_name, account.mail.as_deref())
                    .await?
                {
                    Claim::Ours(_) => {
                        // Kept (and audited) before anything is written to it.
                        let adopted = Some(adopt(&account, &desired));
                        let after = WorkerState {
                            applied: adopted.clone(),
                            ..WorkerState::default()
                        };
                        let audit: Vec<_> = self
                            .adoption_audit("entra", nudge, &state, &after)
                            .into_iter()
                            .collect();
                        let recorded = adopted.clone();
                        self.edit_state(key, None, &audit, "recording an adopted account", |s| {
                            s.applied = recorded.clone();
                        })
                        .await?;
                        current = adopted;
                    }
                    Claim::Theirs { upn, owner } => {
                        return self.hold_owned(nudge, &upn, &owner).await;
                    }
                }
            }
            lookup = Lookup::AlreadyAbsent;
        }
        let result = converge(
            self.directory()?,
            key,
            Some(&desired),
            current.clone(),
            lookup,
            &object_ids,
            &mut record,
            round,
        )
        .await;
        let owned_by = owned_by
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((upn, owner)) = owned_by {
            return self.hold_owned(nudge, &upn, &owner).await;
        }
        // What the directory holds now: the run's result, or its last confirmed step.
        let applied = match &result {
            Ok(done) => done.applied.clone(),
            Err(_) => steps
                .last()
                .map_or_else(|| current.clone(), |s| s.after.clone()),
        };
        // The steps and their audit records are kept; what remains is the run's end.
        let kept = steps
            .last()
            .map_or_else(|| current.clone(), |s| s.after.clone());
        let mut audit: Vec<AuditRecord> = Vec::new();

        // A run that failed leaves the licences waiting as they were.
        let pending = match &result {
            Ok(done) => self.pending_licenses(&state, &done.pending_licenses, now),
            Err(_) => state.pending_licenses.clone(),
        };
        let mut newly_pending = Vec::new();
        for waiting in &pending {
            let known = state.pending_licenses.iter().any(|p| p.sku == waiting.sku);
            if !known {
                let record = self.pending_audit(nudge, waiting).await;
                newly_pending.push((waiting.clone(), record.after.clone()));
                audit.push(record);
            }
        }
        if applied != kept || !audit.is_empty() || pending != state.pending_licenses {
            // On the latest state: mapping may have written while the directory was converged.
            let recorded = applied.clone();
            let waiting = pending.clone();
            self.edit_state(key, None, &audit, "recording the directory", |s| {
                s.applied = recorded.clone();
                s.pending_licenses = waiting.clone();
            })
            .await?;
            if pending != state.pending_licenses {
                self.license_retry_timer(key, &pending).await?;
            }
            for (waiting, after) in &newly_pending {
                self.notify_license(key, waiting, after.as_ref()).await;
            }
        }
        // Waiters registered before this account was known are woken by every run that finds
        // it known, not only the one that recorded it: that run may have died before waking
        // them. One registering later sees the object id itself (`wait_for_manager`).
        if applied.as_ref().is_some_and(|a| a.object_id.is_some()) {
            self.wake_waiters(key, &nudge.trace).await?;
        }
        // From the config, not the connector: the entra function holds no HR connector.
        let writes_back = self
            .config
            .source(key.source())
            .is_some_and(|source| source.writes_back());
        // A new, renamed or adopted account whose mail HR has not got. Checked on every run,
        // not only the one that made the change: that one may have died before nudging.
        if writes_back && let Some(owed) = owed(&state, applied.as_ref()) {
            let next = Nudge::new(
                key.clone(),
                "identifiers changed".to_owned(),
                nudge.trace.clone(),
            );
            let dedup = format!("{key}#writeback#{}", owed.mail);
            self.queue
                .send(QueueName::Writeback, &next, &dedup, now)
                .await?;
        }
        match result {
            Ok(done) => {
                let mut deferred = done.deferred;
                let waiting = match &stand_in.wait {
                    Some(wait) if !deferred.is_empty() => Some(wait),
                    _ => None,
                };
                if let Some(wait) = waiting {
                    self.wait_for_manager(key, &wait.awaited, nudge).await?;
                    // Converge knows only that the manager has no account; this says why.
                    deferred.retain(|d| !d.starts_with("manager "));
                    deferred.push(wait.reason.clone());
                }
                self.record_manager_deferral(nudge, &state, waiting.map(|w| &w.reason))
                    .await?;
                Ok(Outcome::Converged {
                    worker: key.clone(),
                    steps: steps.iter().map(|s| s.name()).collect(),
                    deferred,
                    pending_licenses: done.pending_licenses,
                })
            }
            Err(ConvergeError::NameConflict { upn }) => {
                self.rename(key, &upn, nudge).await?;
                Ok(Outcome::Converged {
                    worker: key.clone(),
                    steps: steps.iter().map(|s| s.name()).collect(),
                    deferred: vec![format!(
                        "{upn} is taken in the directory: choosing another name"
                    )],
                    pending_licenses: Vec::new(),
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Keeps why the worker's manager is left unset, auditing each new reason once.
    async fn record_manager_deferral(
        &self,
        nudge: &Nudge,
        state: &WorkerState,
        reason: Option<&String>,
    ) -> Result<(), StageError> {
        if state.manager_deferred.as_ref() == reason {
            return Ok(());
        }
        let audit: Vec<AuditRecord> = reason
            .map(|reason| {
                self.audit(
                    &nudge.worker,
                    "entra",
                    "manager_deferred",
                    reason.clone(),
                    &nudge.trace,
                )
            })
            .into_iter()
            .collect();
        let kept = reason.cloned();
        self.edit_state(
            &nudge.worker,
            None,
            &audit,
            "recording a manager deferral",
            |s| {
                s.manager_deferred = kept.clone();
            },
        )
        .await
    }

    /// The object ids of the managers hrsync already made accounts for.
    async fn manager_ids(
        &self,
        manager: Option<&WorkerKey>,
    ) -> Result<BTreeMap<WorkerKey, String>, StoreError> {
        let mut ids = BTreeMap::new();
        if let Some(manager) = manager
            && let Some(stored) = self.store.load(manager).await?
            && let Some(id) = stored.state.applied.and_then(|a| a.object_id)
        {
            ids.insert(manager.clone(), id);
        }
        Ok(ids)
    }

    /// Waits for the manager's account; if it appeared while we registered, converge again now.
    async fn wait_for_manager(
        &self,
        key: &WorkerKey,
        manager: &WorkerKey,
        nudge: &Nudge,
    ) -> Result<(), StageError> {
        self.store.wait_for(manager, key).await?;
        if !self.manager_ids(Some(manager)).await?.is_empty() {
            // The account appeared meanwhile, and the run that recorded it may have woken the
            // waiters before we registered: this worker wakes itself. (Only itself: a manager of
            // hundreds of reports converged together would otherwise be woken for by each.)
            self.wake(key, manager, &nudge.trace).await?;
            self.store
                .forget_waiters(manager, std::slice::from_ref(key))
                .await?;
        }
        Ok(())
    }

    /// Nudges every worker waiting for `awaited` (now that it has an account) to converge
    /// again, and only then forgets them: a crash in between nudges them twice, never not.
    async fn wake_waiters(&self, awaited: &WorkerKey, trace: &str) -> Result<(), StageError> {
        let waiters = self.store.waiters(awaited).await?;
        for waiter in &waiters {
            self.wake(waiter, awaited, trace).await?;
        }
        if !waiters.is_empty() {
            self.store.forget_waiters(awaited, &waiters).await?;
        }
        Ok(())
    }

    /// A directory nudge for `waiter`: its manager `awaited` has an account.
    async fn wake(
        &self,
        waiter: &WorkerKey,
        awaited: &WorkerKey,
        trace: &str,
    ) -> Result<(), StageError> {
        let now = self.clock.now();
        let next = Nudge::new(
            waiter.clone(),
            format!("manager {awaited} has an account"),
            trace.to_owned(),
        );
        let dedup = format!("{waiter}#after#{awaited}@{now}");
        self.queue
            .send(QueueName::Directory, &next, &dedup, now)
            .await?;
        Ok(())
    }

    /// The UPN is someone else's in the directory: forget the chosen names so mapping picks
    /// the next free candidate (its preflight now sees this one taken).
    async fn rename(&self, key: &WorkerKey, upn: &str, nudge: &Nudge) -> Result<(), StageError> {
        for _ in 0..CONFLICT_ROUNDS {
            let Some(stored) = self.store.load(key).await? else {
                return Ok(());
            };
            let mut state = stored.state;
            if state
                .applied
                .as_ref()
                .is_some_and(|a| a.object_id.is_some())
            {
                return Ok(());
            }
            let released = state.identifiers.take();
            let record = self.audit(
                key,
                "entra",
                "name_taken",
                format!("{upn} belongs to another directory account; choosing another name"),
                &nudge.trace,
            );
            match self
                .store
                .save(key, &state, Some(stored.version), &[record])
                .await
            {
                Ok(version) => {
                    self.notify(Notice {
                        event: NotifyEvent::NameConflict,
                        id: format!("name#{key}#{upn}"),
                        worker: key.clone(),
                        display_name: self.display_name(key).await,
                        what: "A chosen name belongs to another directory account".into(),
                        why: format!(
                            "{upn} is taken in the directory by an account hrsync does not know as this worker's; hrsync chooses the next candidate name. If that account is this person's (a duplicate, or made by hand), give it the worker's employeeId so hrsync adopts it"
                        ),
                        commands: vec![format!("hrsync audit {}", quoted(&key.to_string()))],
                    })
                    .await;
                    if let Some(ids) = released {
                        self.store.release_name(&ids.upn, key).await?;
                        self.store.release_name(&ids.mail, key).await?;
                    }
                    let next = Nudge::new(
                        key.clone(),
                        "name taken in the directory",
                        nudge.trace.clone(),
                    );
                    self.queue
                        .send(
                            QueueName::WorkerEvents,
                            &next,
                            &format!("{key}#rename#v{version}"),
                            self.clock.now(),
                        )
                        .await?;
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StageError::transient(format!(
            "{key}: the state kept changing while renaming"
        )))
    }

    /// The licences still waiting after a run that found `unavailable` without a free unit:
    /// each tried again after a backoff that grows with its attempts; one assigned since (or no
    /// longer wanted) is dropped.
    fn pending_licenses(
        &self,
        state: &WorkerState,
        unavailable: &[(String, String)],
        now: Timestamp,
    ) -> Vec<PendingLicense> {
        unavailable
            .iter()
            .map(|(sku, reason)| {
                let before = state.pending_licenses.iter().find(|p| &p.sku == sku);
                let attempts = before.map_or(1, |p| p.attempts.saturating_add(1));
                let backoff = LICENSE_RETRY_FIRST
                    .saturating_mul(1 << attempts.saturating_sub(1).min(16))
                    .min(LICENSE_RETRY_MAX);
                PendingLicense {
                    sku: sku.clone(),
                    reason: reason.clone(),
                    since: before.map_or(now, |p| p.since),
                    attempts,
                    retry_at: now + jiff::SignedDuration::try_from(backoff).unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The audit record of a licence that starts waiting for a free unit.
    async fn pending_audit(&self, nudge: &Nudge, waiting: &PendingLicense) -> AuditRecord {
        let part = match &self.graph {
            Some(graph) => graph.license_part_number(&waiting.sku).await,
            None => None,
        };
        let mut record = self.audit(
            &nudge.worker,
            "entra",
            "license_pending",
            waiting.reason.clone(),
            &nudge.trace,
        );
        record.after = json(&serde_json::json!({
            "sku": waiting.sku,
            "part_number": part,
            "retry_at": waiting.retry_at,
        }));
        record
    }

    /// Tells the `[[notify]]` targets that a licence has no free unit.
    async fn notify_license(
        &self,
        key: &WorkerKey,
        waiting: &PendingLicense,
        after: Option<&serde_json::Value>,
    ) {
        let part = after
            .and_then(|a| a["part_number"].as_str())
            .map(str::to_owned)
            .or_else(|| self.config.label(&waiting.sku).map(str::to_owned));
        let licence = match part {
            Some(part) => format!("{part} ({})", waiting.sku),
            None => waiting.sku.clone(),
        };
        self.notify(Notice {
            event: NotifyEvent::LicenseExhausted,
            id: format!("license#{key}#{}#{}", waiting.sku, waiting.since),
            worker: key.clone(),
            display_name: self.display_name(key).await,
            what: format!("The licence {licence} has no free unit"),
            why: format!(
                "{} The rest of the account is done; the licence is tried again at {} (and on the worker's next change). Free or buy units of {licence}.",
                waiting.reason, waiting.retry_at
            ),
            commands: vec![format!(
                "hrsync audit {} --action license_pending",
                quoted(&key.to_string())
            )],
        })
        .await;
    }

    /// The worker's licence retry wakes it at the earliest retry, or goes.
    async fn license_retry_timer(
        &self,
        key: &WorkerKey,
        pending: &[PendingLicense],
    ) -> Result<(), StageError> {
        match pending.iter().map(|p| p.retry_at).min() {
            Some(at) => {
                self.timers
                    .put(&TimerSpec::new(key.clone(), TimerKind::LicenseRetry, at))
                    .await?
            }
            None => {
                self.timers
                    .delete(&TimerSpec::name_for(key, TimerKind::LicenseRetry))
                    .await?
            }
        }
        Ok(())
    }

    fn step_audit(&self, nudge: &Nudge, step: &Step) -> AuditRecord {
        let mut record = self.audit(
            &nudge.worker,
            "entra",
            step.name(),
            nudge.reason.clone(),
            &nudge.trace,
        );
        record.before = json(&step.before);
        record.after = json(&serde_json::json!({ "op": step.op, "account": step.after }));
        record
    }
}
