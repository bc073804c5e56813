//! The four stages (DESIGN.md §3) as methods of [`Pipeline`], over the ports. Each takes a
//! nudge (or, for intake, an HR record), reads the latest state, converges and says what it
//! did in an [`Outcome`]; the runner acks, retries or dead-letters the message.
//!
//! | stage | reads | writes | sends |
//! |---|---|---|---|
//! | [`intake`] | the HR record (or a thin event) | the inbox snapshot, the delivery mark | worker-events (hr-events) |
//! | [`fetch`] | the vendor's API | the inbox snapshot | worker-events |
//! | [`mapping`] | inbox + state | state (decision), names, timers, holds | directory |
//! | [`entra`] | state | the directory, state (`applied`) | directory (waiters), writeback |
//! | [`writeback`] | state | the HR system | - |

pub mod entra;
pub mod fetch;
pub mod intake;
pub mod managers;
pub mod mapping;
pub mod writeback;

use std::fmt;
use std::sync::Arc;

use hrsync_core::{Config, Lifecycle, Transition, WorkerKey, WorkerState};
use hrsync_directory::converge::ConvergeError;
use hrsync_directory::graph::{GraphClient, GraphError};
use hrsync_directory::group_adds::Participant;
use hrsync_hr::{Connectors, HrError};

use crate::clock::Clock;
use crate::lookups::DirectoryLookups;
use crate::notify::{Notice, Notifications};
use crate::ports::{
    AuditRecord, Nudge, Queue, QueueError, QueueName, StateStore, StoreError, Stored, Timers,
};

/// Everything the stages run over. One per runtime (a process, a Lambda container).
pub struct Pipeline<S, Q, T> {
    pub config: Arc<Config>,
    pub store: Arc<S>,
    pub queue: Arc<Q>,
    pub timers: Arc<T>,
    /// The directory: Microsoft Graph, or the sandbox that speaks it. `None` in a runtime
    /// that never calls it (the intake and writeback functions hold no directory credential).
    pub graph: Option<GraphClient>,
    /// How mapping looks workers up in the directory: per worker, or the directory read once.
    pub lookups: DirectoryLookups,
    pub clock: Arc<dyn Clock>,
    /// The HR systems' connectors, by source name: fetch and write-back.
    pub hr: Connectors,
    /// `[[notify]]`: who is told about what needs a human ([`Notifications::none`]: nobody).
    pub notify: Arc<Notifications>,
}

impl<S, Q, T> fmt::Debug for Pipeline<S, Q, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    /// Runs the stage that consumes `queue` for one of its nudges.
    pub async fn consume(&self, queue: QueueName, nudge: &Nudge) -> Result<Outcome, StageError> {
        self.consume_in_round(queue, nudge, None).await
    }

    /// [`Pipeline::consume`], a directory nudge converging in a round of workers whose group
    /// additions go out together.
    pub async fn consume_in_round(
        &self,
        queue: QueueName,
        nudge: &Nudge,
        round: Option<Participant>,
    ) -> Result<Outcome, StageError> {
        match queue {
            QueueName::HrEvents => self.fetch(nudge).await,
            QueueName::WorkerEvents => self.mapping(nudge).await,
            QueueName::Directory => self.entra_in_round(nudge, round).await,
            QueueName::Writeback => self.writeback(nudge).await,
        }
    }

    /// The directory client, for the stages that call it.
    fn directory(&self) -> Result<&GraphClient, StageError> {
        self.graph.as_ref().ok_or_else(|| {
            StageError::permanent(
                "this runtime has no directory client: only the mapping and entra functions hold the directory credential",
            )
        })
    }

    /// Audit records of one stage run share the instant and the trace.
    fn audit(
        &self,
        worker: &WorkerKey,
        stage: &str,
        action: &str,
        cause: String,
        trace: &str,
    ) -> AuditRecord {
        AuditRecord::new(worker, self.clock.now(), stage, action, cause, trace)
    }

    /// Saves `edit` of the worker's state with `audit`, conditional on the version edited:
    /// `read` first when the caller has it, then the latest after each lost race (another
    /// stage wrote meanwhile). `doing` names the write in the error when races keep being lost.
    async fn edit_state(
        &self,
        key: &WorkerKey,
        read: Option<Stored>,
        audit: &[AuditRecord],
        doing: &str,
        edit: impl Fn(&mut WorkerState),
    ) -> Result<(), StageError> {
        let mut read = read;
        for _ in 0..CONFLICT_ROUNDS {
            let stored = match read.take() {
                Some(stored) => stored,
                None => self.store.load(key).await?.ok_or_else(|| {
                    StageError::permanent(format!("{key} vanished from the store"))
                })?,
            };
            let mut state = stored.state;
            edit(&mut state);
            match self
                .store
                .save(key, &state, Some(stored.version), audit)
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StageError::transient(format!(
            "{key}: the state kept changing while {doing}"
        )))
    }
}

/// What a stage run did, for the runner's report.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The record was queued for mapping.
    Received {
        worker: WorkerKey,
    },
    /// A thin event was queued for the fetch of the full record.
    Queued {
        worker: WorkerKey,
    },
    /// A redelivery of an event already handled.
    Duplicate {
        worker: WorkerKey,
    },
    /// Older than the record kept; ignored.
    Stale {
        worker: WorkerKey,
    },
    Mapped {
        worker: WorkerKey,
        transition: Transition,
        lifecycle: Lifecycle,
        /// Timers the worker now has.
        timers: usize,
        /// The state changed (false: the same record decided again).
        changed: bool,
    },
    /// The breaker held a disable until someone approves it (or it was rejected).
    Held {
        worker: WorkerKey,
        hold: String,
        rejected: bool,
    },
    Converged {
        worker: WorkerKey,
        /// The confirmed directory operations, in order.
        steps: Vec<&'static str>,
        /// What must wait (a manager without an account yet).
        deferred: Vec<String>,
        /// Licences without a free unit: `(skuId, why)`.
        pending_licenses: Vec<(String, String)>,
    },
    WrittenBack {
        worker: WorkerKey,
    },
    /// Nothing to do (no record, nothing desired, write-back not supported).
    Nothing {
        worker: WorkerKey,
    },
}

/// Why a stage run failed; the runner retries it with backoff (then dead-letters it) or
/// dead-letters it at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub message: String,
    pub retryable: bool,
    /// The service the stage needs (Graph, an HR API) is unreachable or refuses hrsync's
    /// credential: not this message's fault, and every other message needing that service
    /// fails alike. What is wrong, naming the endpoint and the cause but no worker.
    pub outage: Option<String>,
}

impl StageError {
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: false,
            outage: None,
        }
    }

    pub fn transient(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: true,
            outage: None,
        }
    }
}

impl From<StoreError> for StageError {
    fn from(error: StoreError) -> Self {
        Self {
            retryable: error.is_retryable(),
            message: error.to_string(),
            outage: None,
        }
    }
}

impl From<QueueError> for StageError {
    fn from(error: QueueError) -> Self {
        Self {
            retryable: error.is_retryable(),
            message: error.to_string(),
            outage: None,
        }
    }
}

impl From<HrError> for StageError {
    fn from(error: HrError) -> Self {
        Self {
            retryable: error.retryable,
            message: error.message,
            outage: error.outage,
        }
    }
}

impl From<GraphError> for StageError {
    fn from(error: GraphError) -> Self {
        Self {
            retryable: error.is_retryable(),
            outage: error.is_outage().then(|| error.to_string()),
            message: error.to_string(),
        }
    }
}

impl From<ConvergeError> for StageError {
    fn from(error: ConvergeError) -> Self {
        Self {
            retryable: error.is_retryable(),
            outage: error.is_outage().then(|| error.to_string()),
            message: error.to_string(),
        }
    }
}

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    /// `source`'s HR connector (`None`: a source without one, csv). A source this run was
    /// started without (`hrsync import` of another source, without this one's credential) is
    /// an outage for its work: kept, for a run that has the credential.
    pub(crate) fn hr_connector(
        &self,
        source: &str,
    ) -> Result<Option<&Arc<dyn hrsync_hr::Connector>>, StageError> {
        if let Some(why) = self.hr.left_out(source) {
            return Err(StageError {
                message: format!("this run was started without source {source}: {why}"),
                retryable: true,
                outage: Some(format!(
                    "work of source {source} is queued, and this run was started without it ({why}); \
                     run hrsync serve or hrsync import with its credential"
                )),
            });
        }
        Ok(self.hr.get(source))
    }
}

impl<S: StateStore, Q, T> Pipeline<S, Q, T> {
    /// Tells the `[[notify]]` targets (best effort: never fails, see [`crate::notify`]).
    pub(crate) async fn notify(&self, notice: Notice) {
        if self.notify.is_empty() {
            return;
        }
        tracing::debug!(worker = %notice.worker, event = notice.event.as_str(), "notifying");
        self.notify
            .dispatch(&*self.store, &notice, self.clock.now())
            .await;
    }

    /// The worker's display name for a notice (personal data: notices only), when there are
    /// targets to tell: the desired `displayName`, else the HR record's names.
    pub(crate) async fn display_name(&self, key: &WorkerKey) -> Option<String> {
        if self.notify.is_empty() {
            return None;
        }
        let state = self.store.load(key).await.ok().flatten().map(|s| s.state);
        let desired = state
            .as_ref()
            .and_then(|s| s.desired.as_ref())
            .and_then(|d| d.attributes.get("displayName").cloned().flatten());
        if desired.is_some() {
            return desired;
        }
        let snapshot = match self.store.snapshot(key).await.ok().flatten() {
            Some(snapshot) => Some(snapshot),
            None => state.and_then(|s| s.snapshot),
        }?;
        let given = snapshot
            .preferred_name
            .as_deref()
            .unwrap_or(&snapshot.given_name);
        Some(
            format!("{given} {}", snapshot.family_name)
                .trim()
                .to_owned(),
        )
    }
}

/// A worker key quoted for a shell command (keys and hold ids hold `:` and `#`).
pub(crate) fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// JSON for an audit record's before/after.
fn json<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// How many times a stage reads again after losing a conditional write before handing the
/// message back to its queue.
const CONFLICT_ROUNDS: usize = 5;
