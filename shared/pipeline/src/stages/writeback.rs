//! Write-back: the generated work email (and username) goes back to the HR record, through
//! the source's connector. Sources that cannot take it (CSV exports, signed JSON, SCIM), or
//! whose config turned it off, are skipped, and so is a record that already has it.

use hrsync_core::Identifiers;

use super::{Outcome, Pipeline, StageError, json};
use crate::ports::{Nudge, Queue, StateStore, Timers};

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
        let (Some(snapshot), Some(applied)) = (stored.state.snapshot, stored.state.applied) else {
            return nothing();
        };
        let identifiers = Identifiers {
            mail: applied.mail.clone().unwrap_or_else(|| applied.upn.clone()),
            upn: applied.upn.clone(),
        };
        // HR already has it (an earlier write-back, or HR set it itself): writing it again
        // would only fire another HR webhook.
        if snapshot
            .work_email
            .as_deref()
            .is_some_and(|mail| mail.eq_ignore_ascii_case(&identifiers.mail))
        {
            return nothing();
        }
        connector.write_back(&snapshot, &identifiers).await?;
        let mut record = self.audit(
            key,
            "writeback",
            "write_back",
            nudge.reason.clone(),
            &nudge.trace,
        );
        record.before = json(&serde_json::json!({ "work_email": snapshot.work_email }));
        record.after = json(&identifiers);
        self.store.append_audit(&record).await?;
        Ok(Outcome::WrittenBack {
            worker: key.clone(),
        })
    }
}
