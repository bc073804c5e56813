//! Write-back: the generated work email (and username) goes back to the HR record. Sources
//! that cannot take it (CSV exports) are skipped; the vendors' connectors implement
//! [`WriteBack`].

use std::future::Future;
use std::pin::Pin;

use hrsync_core::{Identifiers, Worker};

use super::{Outcome, Pipeline, StageError, json};
use crate::ports::{Nudge, Queue, StateStore, Timers};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("write-back: {message}")]
pub struct WriteBackError {
    pub message: String,
    /// Worth another attempt (throttling, an outage).
    pub retryable: bool,
}

pub type WriteBackFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), WriteBackError>> + Send + 'a>>;

/// Writes identifiers back to the HR system a worker came from.
pub trait WriteBack: Send + Sync + std::fmt::Debug {
    /// Whether write-back is on for this source.
    fn supports(&self, source: &str) -> bool;

    fn write_back<'a>(
        &'a self,
        worker: &'a Worker,
        identifiers: &'a Identifiers,
    ) -> WriteBackFuture<'a>;
}

/// No source writes back.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWriteBack;

impl WriteBack for NoWriteBack {
    fn supports(&self, _: &str) -> bool {
        false
    }

    fn write_back<'a>(&'a self, _: &'a Worker, _: &'a Identifiers) -> WriteBackFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    pub async fn writeback(&self, nudge: &Nudge) -> Result<Outcome, StageError> {
        let key = &nudge.worker;
        let nothing = || {
            Ok(Outcome::Nothing {
                worker: key.clone(),
            })
        };
        if !self.writeback.supports(key.source()) {
            return nothing();
        }
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
        self.writeback
            .write_back(&snapshot, &identifiers)
            .await
            .map_err(|e| StageError {
                retryable: e.retryable,
                message: e.to_string(),
            })?;
        let mut record = self.audit(
            key,
            "writeback",
            "write_back",
            nudge.reason.clone(),
            &nudge.trace,
        );
        record.after = json(&identifiers);
        self.store.append_audit(&record).await?;
        Ok(Outcome::WrittenBack {
            worker: key.clone(),
        })
    }
}
