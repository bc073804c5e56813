//! Write-back: the generated work email (and username) goes back to the HR record, through
//! the source's connector. Sources that cannot take it (CSV exports, signed JSON, SCIM), or
//! whose config turned it off, are skipped, and so is a worker to whom nothing is owed
//! ([`owed`]).

use hrsync_core::{AppliedIdentity, Identifiers, WorkerState};

use super::{Outcome, Pipeline, StageError, json};
use crate::ports::{Nudge, Queue, StateStore, Timers};

/// What HR should be given once the directory holds `applied`: the account exists and its
/// mail is neither what HR's record holds (an earlier write-back, or HR set it itself:
/// writing it again would only fire another HR webhook) nor what was last written back (HR's
/// record may not show it yet).
///
/// A state, not an event: entra nudges write-back on every run while something is owed, so
/// a run that died before nudging is made good by its redelivery.
pub(crate) fn owed(state: &WorkerState, applied: Option<&AppliedIdentity>) -> Option<Identifiers> {
    let applied = applied.filter(|a| a.object_id.is_some())?;
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
            .hr_connector(key.source())?
            .filter(|connector| connector.writes_back())
        else {
            return nothing();
        };
        let Some(stored) = self.store.load(key).await? else {
            return nothing();
        };
        let state = &stored.state;
        let (Some(identifiers), Some(snapshot)) =
            (owed(state, state.applied.as_ref()), &state.snapshot)
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
        // On the state read, or the latest if another stage wrote since: HR has the mail
        // already, so a lost race reads again and never writes to HR again.
        let mail = identifiers.mail.clone();
        self.edit_state(
            key,
            Some(stored),
            std::slice::from_ref(&record),
            "recording the write-back",
            |s| s.written_back = Some(mail.clone()),
        )
        .await?;
        Ok(Outcome::WrittenBack {
            worker: key.clone(),
        })
    }
}
