//! Mapping: decide who the worker is now (hrsync_core::decide) on the latest HR record, with
//! unique names reserved in the store and free in the directory; pass the safety breaker;
//! store the decision conditionally on the version read; move the worker's timers; nudge the
//! directory stage.

use std::collections::HashSet;
use std::time::Duration;

use hrsync_core::{Decision, Identifiers, Presence, Worker, WorkerKey, WorkerState, decide, plan};
use hrsync_directory::converge::adopt;
use hrsync_directory::graph::DirectoryUser;
use jiff::Timestamp;

use super::{CONFLICT_ROUNDS, Outcome, Pipeline, StageError, json, quoted};
use crate::notify::Notice;
use crate::ports::{
    Hold, HoldStatus, Nudge, Queue, QueueName, Reservation, StateStore, StoreError, TimerSpec,
    Timers, name_key,
};
use hrsync_core::config::NotifyEvent;

/// Nudges whose reason starts with this come from an operator (`hrsync terminate`): an
/// emergency leaver is never held by the breaker.
pub const OPERATOR_TERMINATION: &str = "terminate:";

/// The breaker's window.
pub const BREAKER_WINDOW: Duration = Duration::from_secs(3600);

/// Rounds of "this name is taken, try the next candidate" before giving up.
const NAME_ROUNDS: usize = 64;

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    pub async fn mapping(&self, nudge: &Nudge) -> Result<Outcome, StageError> {
        let mut lost = None;
        for _ in 0..CONFLICT_ROUNDS {
            match self.map_once(nudge).await {
                Err(Mapping::Conflict(error)) => lost = Some(error),
                Err(Mapping::Failed(error)) => return Err(error),
                Err(Mapping::Owned { upn, owner }) => {
                    return self.hold_owned(nudge, &upn, &owner).await;
                }
                Ok(outcome) => return Ok(outcome),
            }
        }
        Err(lost.map_or_else(|| StageError::transient("conflict"), StageError::from))
    }

    async fn map_once(&self, nudge: &Nudge) -> Result<Outcome, Mapping> {
        let key = &nudge.worker;
        let now = self.clock.now();
        let (mut state, version) = match self.store.load(key).await? {
            Some(stored) => (stored.state, Some(stored.version)),
            None => (WorkerState::default(), None),
        };
        let incoming = match self.store.snapshot(key).await? {
            Some(snapshot) => snapshot,
            None => match &state.snapshot {
                Some(snapshot) => snapshot.clone(),
                None => {
                    return Ok(Outcome::Nothing {
                        worker: key.clone(),
                    });
                }
            },
        };
        let before = state.clone();
        let decision = self
            .decide_with_free_names(&incoming, &mut state, now)
            .await?;

        if !nudge.reason.starts_with(OPERATOR_TERMINATION)
            && disables(&before, &decision)
            && let Some(outcome) = self.breaker(key, &incoming, &nudge.trace, now).await?
        {
            return Ok(outcome);
        }

        // A newer record that changes nothing the directory or the timers see is stored
        // quietly: the audit is for decisions.
        let changed = decision.state.desired != before.desired
            || decision.state.lifecycle != before.lifecycle
            || decision.state.timers != before.timers
            || decision.state.identifiers != before.identifiers;
        let version = match (changed, decision.state != before) {
            (true, _) => {
                let mut audit = vec![self.decision_audit(nudge, &before, &decision)];
                audit.extend(self.adoption_audit("mapping", nudge, &before, &decision.state));
                self.store
                    .save(key, &decision.state, version, &audit)
                    .await?
            }
            (false, true) => {
                // A new record can bring problems without changing what the directory sees.
                let problems = (decision.state.problems != before.problems)
                    .then(|| self.problems_audit(nudge, &decision))
                    .flatten();
                let audit: Vec<_> = problems
                    .into_iter()
                    .chain(self.adoption_audit("mapping", nudge, &before, &decision.state))
                    .collect();
                self.store
                    .save(key, &decision.state, version, &audit)
                    .await?
            }
            (false, false) => version.unwrap_or_default(),
        };
        if changed && decision.transition == hrsync_core::Transition::Rehire {
            self.notify_rehire(nudge, &decision, version).await;
        }
        self.move_timers(key, &decision).await?;
        let pending = !plan(
            decision.state.desired.as_ref(),
            decision.state.applied.as_ref(),
        )
        .is_empty();
        if changed || pending {
            let next = Nudge::new(key.clone(), nudge.reason.clone(), nudge.trace.clone());
            let dedup = match changed {
                true => format!("{key}#v{version}"),
                false => format!("{key}#v{version}#{}", nudge.trace),
            };
            self.queue
                .send(QueueName::Directory, &next, &dedup, now)
                .await?;
        }
        Ok(Outcome::Mapped {
            worker: key.clone(),
            transition: decision.transition,
            lifecycle: decision.lifecycle,
            timers: decision.timers.len(),
            changed,
        })
    }

    /// Decides until newly chosen names are reserved for this worker in the store and free in
    /// the directory ([`DirectoryLookups`](crate::lookups::DirectoryLookups): a preflight, or the
    /// directory read once for the run). An account that already carries the worker's employee
    /// id (from before hrsync, or an interrupted run) keeps its names and becomes the worker's
    /// `applied`; when none does, the decision records when that was checked.
    async fn decide_with_free_names(
        &self,
        incoming: &Worker,
        state: &mut WorkerState,
        now: Timestamp,
    ) -> Result<Decision, Mapping> {
        let key = &incoming.key;
        let mut taken: HashSet<String> = HashSet::new();
        // An account found carrying the employee id: its names are the worker's, and it is
        // what the directory holds for the worker (so entra converges it, never creates).
        let mut adopted: Option<DirectoryUser> = None;
        for _ in 0..NAME_ROUNDS {
            let registry = |name: &str, _: &WorkerKey| taken.contains(&name_key(name));
            let mut decision = decide(incoming, state, &self.config, now, &registry)
                .map_err(StageError::permanent)?;
            let fresh = match (&state.identifiers, &decision.state.identifiers) {
                (None, Some(ids)) => ids.clone(),
                _ => {
                    if let (Some(account), Some(desired), None) =
                        (&adopted, &decision.desired, &decision.state.applied)
                    {
                        decision.state.applied = Some(adopt(account, desired));
                    }
                    return Ok(decision);
                }
            };
            let names = distinct_names(&fresh);
            let mut refused = false;
            for name in &names {
                if let Reservation::HeldBy(_) = self.store.reserve_name(name, key).await? {
                    taken.insert(name_key(name));
                    refused = true;
                }
            }
            if refused {
                self.release(&names, key).await?;
                continue;
            }
            let (found, checked_at) = self
                .lookups
                .preflight(
                    self.directory()?,
                    &self.config.directory_employee_id(incoming),
                    &names,
                    now,
                )
                .await
                .map_err(StageError::from)?;
            if let Some(existing) = found.existing {
                self.release(&names, key).await?;
                let ids = match self
                    .claim(key, &existing.user_principal_name, existing.mail.as_deref())
                    .await?
                {
                    Claim::Ours(ids) => ids,
                    Claim::Theirs { upn, owner } => return Err(Mapping::Owned { upn, owner }),
                };
                state.identifiers = Some(ids);
                adopted = Some(existing);
                continue;
            }
            if found.taken.is_empty() {
                decision.state.directory_checked_at = Some(checked_at);
                return Ok(decision);
            }
            for name in &found.taken {
                taken.insert(name_key(name));
            }
            self.release(&names, key).await?;
        }
        Err(StageError::permanent(format!(
            "{key}: no free name after {NAME_ROUNDS} candidates (see identity.upn)"
        ))
        .into())
    }

    /// Claims an account found carrying the worker's employee id: its names become this
    /// worker's. An account whose names are reserved for another worker is that worker's (two
    /// sources with overlapping employee ids, or two records for one person): nothing is
    /// claimed, and the caller holds the worker for a human ([`Pipeline::hold_owned`]), never
    /// taking the account over.
    pub(super) async fn claim(
        &self,
        key: &WorkerKey,
        upn: &str,
        mail: Option<&str>,
    ) -> Result<Claim, StoreError> {
        let ids = Identifiers {
            mail: mail.unwrap_or(upn).to_owned(),
            upn: upn.to_owned(),
        };
        let names = distinct_names(&ids);
        let mut claimed = Vec::new();
        for name in &names {
            match self.store.reserve_name(name, key).await? {
                Reservation::HeldBy(owner) => {
                    self.release(&claimed, key).await?;
                    return Ok(Claim::Theirs {
                        upn: upn.to_owned(),
                        owner,
                    });
                }
                _ => claimed.push(*name),
            }
        }
        Ok(Claim::Ours(ids))
    }

    /// Holds a worker whose employee id is carried by another worker's account.
    pub(super) async fn hold_owned(
        &self,
        nudge: &Nudge,
        upn: &str,
        owner: &WorkerKey,
    ) -> Result<Outcome, StageError> {
        let key = &nudge.worker;
        let now = self.clock.now();
        let id = format!("{key}#account-of#{owner}");
        if let Some(hold) = self.store.hold(&id).await? {
            return Ok(Outcome::Held {
                worker: key.clone(),
                hold: id,
                rejected: hold.status == HoldStatus::Rejected,
            });
        }
        let reason = format!(
            "the account {upn} carries this worker's employee id but belongs to {owner}: {key} will not take it over. If they are one person, correct the HR record of one of them; if they are two, give each source its own employee_id_prefix so their accounts' employeeIds differ"
        );
        self.store
            .put_hold(&Hold {
                id: id.clone(),
                worker: key.clone(),
                action: "adopt".into(),
                reason: reason.clone(),
                created_at: now,
                status: HoldStatus::Pending,
            })
            .await?;
        let mut record = self.audit(key, "mapping", "held", reason.clone(), &nudge.trace);
        record.after = json(&serde_json::json!({ "hold": id, "owner": owner.to_string() }));
        self.store.append_audit(&record).await?;
        self.notify_held(
            key,
            &id,
            "A worker is held: the account carrying their employee id is another worker's",
            reason,
        )
        .await;
        Ok(Outcome::Held {
            worker: key.clone(),
            hold: id,
            rejected: false,
        })
    }

    /// Tells the `[[notify]]` targets about a new hold.
    async fn notify_held(&self, key: &WorkerKey, id: &str, what: &str, why: String) {
        let notice = Notice {
            event: NotifyEvent::Held,
            id: format!("held#{id}"),
            worker: key.clone(),
            display_name: self.display_name(key).await,
            what: what.to_owned(),
            why,
            commands: vec![
                format!("hrsync holds approve {}", quoted(id)),
                format!("hrsync holds reject {}", quoted(id)),
                format!("hrsync audit {}", quoted(&key.to_string())),
            ],
        };
        self.notify(notice).await;
    }

    /// Tells the `[[notify]]` targets that a former worker is back.
    async fn notify_rehire(&self, nudge: &Nudge, decision: &Decision, version: u64) {
        let key = &nudge.worker;
        let mut why = nudge.reason.clone();
        if !decision.explanation.is_empty() {
            why = format!("{why}: {}", decision.explanation.join("; "));
        }
        let notice = Notice {
            event: NotifyEvent::Rehire,
            id: format!("rehire#{key}#v{version}"),
            worker: key.clone(),
            display_name: self.display_name(key).await,
            what: "A former worker is rehired: their old account comes back with the new role's access".into(),
            why,
            commands: vec![format!("hrsync audit {}", quoted(&key.to_string()))],
        };
        self.notify(notice).await;
    }

    async fn release(&self, names: &[&str], owner: &WorkerKey) -> Result<(), StoreError> {
        for name in names {
            self.store.release_name(name, owner).await?;
        }
        Ok(())
    }

    /// The safety breaker: `None` lets the disable through.
    async fn breaker(
        &self,
        key: &WorkerKey,
        incoming: &Worker,
        trace: &str,
        now: Timestamp,
    ) -> Result<Option<Outcome>, Mapping> {
        let Some(limit) = self.disable_limit().await? else {
            return Ok(None);
        };
        let id = format!("{key}#disable#{}", incoming.as_of);
        let held = |rejected| Outcome::Held {
            worker: key.clone(),
            hold: id.clone(),
            rejected,
        };
        if let Some(hold) = self.store.hold(&id).await? {
            return Ok(match hold.status {
                HoldStatus::Approved => None,
                HoldStatus::Pending => Some(held(false)),
                HoldStatus::Rejected => Some(held(true)),
            });
        }
        if self
            .store
            .take_budget("disable", &id, now, BREAKER_WINDOW, limit)
            .await?
        {
            return Ok(None);
        }
        let reason = format!(
            "more than {limit} disables within an hour (lifecycle.max_disables_per_hour / max_disables_percent)"
        );
        self.store
            .put_hold(&Hold {
                id: id.clone(),
                worker: key.clone(),
                action: "disable".into(),
                reason: reason.clone(),
                created_at: now,
                status: HoldStatus::Pending,
            })
            .await?;
        let mut record = self.audit(key, "mapping", "held", reason.clone(), trace);
        record.after = json(&serde_json::json!({ "hold": id }));
        self.store.append_audit(&record).await?;
        self.notify_held(
            key,
            &id,
            "A disable is held by the breaker for a human",
            reason,
        )
        .await;
        Ok(Some(held(false)))
    }

    /// The smaller of the configured limits, if any.
    async fn disable_limit(&self) -> Result<Option<u64>, StoreError> {
        let lifecycle = &self.config.lifecycle;
        let per_hour = lifecycle.max_disables_per_hour.map(u64::from);
        let percent = match lifecycle.max_disables_percent {
            Some(percent) => {
                let workers = self.store.workers().await?.len() as u64;
                // At least one: a tiny org's first leaver is not held by rounding.
                Some((workers * u64::from(percent)).div_ceil(100).max(1))
            }
            None => None,
        };
        Ok(match (per_hour, percent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// An account found carrying the worker's employee id became theirs (`adopt`): from
    /// before hrsync, or created by a run that died before recording it.
    pub(super) fn adoption_audit(
        &self,
        stage: &str,
        nudge: &Nudge,
        before: &WorkerState,
        after: &WorkerState,
    ) -> Option<crate::ports::AuditRecord> {
        let id = |state: &WorkerState| state.applied.as_ref().and_then(|a| a.object_id.clone());
        let (None, Some(object_id)) = (id(before), id(after)) else {
            return None;
        };
        let mut record = self.audit(
            &nudge.worker,
            stage,
            "adopt",
            format!(
                "{}: the account carrying the worker's employee id is theirs",
                nudge.reason
            ),
            &nudge.trace,
        );
        record.after = json(&serde_json::json!({ "object_id": object_id }));
        Some(record)
    }

    fn decision_audit(
        &self,
        nudge: &Nudge,
        before: &WorkerState,
        decision: &Decision,
    ) -> crate::ports::AuditRecord {
        let action = match decision.transition {
            hrsync_core::Transition::None => "update",
            transition => transition.as_str(),
        };
        let mut cause = nudge.reason.clone();
        if !decision.explanation.is_empty() {
            cause = format!("{cause}: {}", decision.explanation.join("; "));
        }
        let mut record = self.audit(&nudge.worker, "mapping", action, cause, &nudge.trace);
        record.before = json(&serde_json::json!({
            "lifecycle": before.lifecycle,
            "desired": before.desired,
        }));
        let mut after = serde_json::json!({
            "lifecycle": decision.state.lifecycle,
            "desired": decision.state.desired,
            "timers": decision.timers,
        });
        if !decision.problems.is_empty() {
            after["problems"] = serde_json::json!(decision.problems);
        }
        record.after = json(&after);
        record
    }

    /// Values Graph would refuse, which the decision left out of the directory's identity.
    fn problems_audit(
        &self,
        nudge: &Nudge,
        decision: &Decision,
    ) -> Option<crate::ports::AuditRecord> {
        if decision.problems.is_empty() {
            return None;
        }
        let messages: Vec<String> = decision.problems.iter().map(|p| p.to_string()).collect();
        let cause = format!("{}: {}", nudge.reason, messages.join("; "));
        let mut record = self.audit(
            &nudge.worker,
            "mapping",
            "data_problem",
            cause,
            &nudge.trace,
        );
        record.after = json(&serde_json::json!({ "problems": decision.problems }));
        Some(record)
    }

    /// The worker's timers become the decision's: new ones put, moved ones replaced, the rest
    /// deleted (a rescinded termination loses its leave timer).
    async fn move_timers(&self, key: &WorkerKey, decision: &Decision) -> Result<(), StageError> {
        let wanted: Vec<TimerSpec> = decision
            .timers
            .iter()
            .map(|timer| TimerSpec::new(key.clone(), timer.kind, timer.at))
            .collect();
        let current = self.timers.worker_timers(key).await?;
        for timer in &current {
            if !wanted.iter().any(|w| w.name == timer.name) {
                self.timers.delete(&timer.name).await?;
            }
        }
        for timer in &wanted {
            if !current.contains(timer) {
                self.timers.put(timer).await?;
            }
        }
        Ok(())
    }
}

/// Would this decision disable an account that is (or is about to be) enabled?
fn disables(before: &WorkerState, decision: &Decision) -> bool {
    let enabled = before.applied.as_ref().is_some_and(|a| a.enabled)
        || before
            .desired
            .as_ref()
            .is_some_and(|d| d.enabled && d.presence == Presence::Present);
    let disabled = decision
        .desired
        .as_ref()
        .is_some_and(|d| !d.enabled || d.presence == Presence::Deleted);
    enabled && disabled
}

fn distinct_names(ids: &Identifiers) -> Vec<&str> {
    match ids.mail.eq_ignore_ascii_case(&ids.upn) {
        true => vec![ids.upn.as_str()],
        false => vec![ids.upn.as_str(), ids.mail.as_str()],
    }
}

/// A lost conditional write is retried here (read again, decide again); anything else goes
/// back to the queue.
/// Whose an account found carrying a worker's employee id is.
pub(super) enum Claim {
    /// No other worker's: its names are now this worker's.
    Ours(Identifiers),
    /// Another worker's (its names are reserved for them).
    Theirs { upn: String, owner: WorkerKey },
}

enum Mapping {
    Conflict(StoreError),
    Failed(StageError),
    /// The account carrying the worker's employee id is another worker's.
    Owned {
        upn: String,
        owner: WorkerKey,
    },
}

impl From<StoreError> for Mapping {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => Self::Conflict(error),
            error => Self::Failed(error.into()),
        }
    }
}

impl From<StageError> for Mapping {
    fn from(error: StageError) -> Self {
        Self::Failed(error)
    }
}

impl From<crate::ports::QueueError> for Mapping {
    fn from(error: crate::ports::QueueError) -> Self {
        Self::Failed(error.into())
    }
}
