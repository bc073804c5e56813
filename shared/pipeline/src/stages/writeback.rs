//! Write-back: the generated work email (and username) goes back to the HR record, through
//! the source's connector. Sources that cannot take it (CSV exports, signed JSON, SCIM), or
//! whose config turned it off, are skipped, and so is a worker to whom nothing is owed
//! ([`owed`]).

use hrsync_core::{Identifiers, WorkerKey, WorkerState};

use super::{CONFLICT_ROUNDS, Outcome, Pipeline, StageError, json};
use crate::ports::{AuditRecord, Nudge, Queue, StateStore, StoreError, Stored, Timers};

/// What HR should be given: the account exists and its mail is neither what HR's record
/// holds (an earlier write-back, or HR set it itself: writing it again would only fire
/// another HR webhook) nor what was last written back (HR's record may not show it yet).
///
/// A state, not an event: entra nudges write-back on every run while something is owed, so
/// a run that died before nudging is made good by its redelivery.
pub(crate) fn owed(state: &WorkerState) -> Option<Identifiers> {
    let applied = state.applied.as_ref().filter(|a| a.object_id.is_some())?;
    let snapshot = state.snapshot.as_ref()?;
    let mail = applied.mail.clone().unwrap_or_else(|| applied.upn.clone());
    let holds = |known: Option<&str>| known.is_some_and(|known| known.eq_ignore_ascii_case(&mail));
    if holds(snapshot.work_email.as_deref()) || holds(state.written_back.as_deref()) {
        return None;
    }
    Some(Identifiers {
        mail,
        upn: applied.upn.clone(),
    })
}

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    pub async fn writeback(&self, nudge: &Nudge) -> Result<Outcome, StageError> {
        let key = &nudge.worker;
        let nothing = || {
            Ok(Outcome::Nothing {
                worker: key.clone(),
            })
        };
        let Some(connector) = self
            .hr
            .get(key.source())
            .filter(|connector| connector.writes_back())
        else {
            return nothing();
        };
        let Some(stored) = self.store.load(key).await? else {
            return nothing();
        };
        let (Some(identifiers), Some(snapshot)) = (owed(&stored.state), &stored.state.snapshot)
        else {
            return nothing();
        };
        connector.write_back(snapshot, &identifiers).await?;
        let mut record = self.audit(
            key,
            "writeback",
            "write_back",
            nudge.reason.clone(),
            &nudge.trace,
        );
        record.before = json(&serde_json::json!({ "work_email": snapshot.work_email }));
        record.after = json(&identifiers);
        self.record_written_back(key, stored, &identifiers.mail, &record)
            .await?;
        Ok(Outcome::WrittenBack {
            worker: key.clone(),
        })
    }

    /// Stores what HR was given, with its audit record, on the state read (or, if mapping or
    /// entra wrote since, on the latest: HR has it already, so a lost race is read again and
    /// never written to HR again).
    async fn record_written_back(
        &self,
        key: &WorkerKey,
        read: Stored,
        mail: &str,
        record: &AuditRecord,
    ) -> Result<(), StageError> {
        let mut latest = Some(read);
        for _ in 0..CONFLICT_ROUNDS {
            let stored = match latest.take() {
                Some(stored) => stored,
                None => self.store.load(key).await?.ok_or_else(|| {
                    StageError::permanent(format!("{key} vanished from the store"))
                })?,
            };
            let mut state = stored.state;
            state.written_back = Some(mail.to_owned());
            match self
                .store
                .save(
                    key,
                    &state,
                    Some(stored.version),
                    std::slice::from_ref(record),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StageError::transient(format!(
            "{key}: the state kept changing while recording the write-back"
        )))
    }
}
