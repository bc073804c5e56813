//! `hrsync plan --apply`: converge each planned worker into the configured directory, with
//! unique names checked against the directory too, before the full pipeline exists.

use hrsync_core::{Config, DecideError, Decision, Identifiers, NameRegistry, WorkerState};
use hrsync_directory::converge::{ConvergeError, Lookup, Step, converge};
use hrsync_directory::graph::GraphClient;
use jiff::Timestamp;
use serde::Serialize;

/// What applying did for one worker.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// `converged`, `deferred` (something must wait, e.g. a manager without an account) or `failed`.
    pub status: &'static str,
    /// The confirmed directory operations, in order.
    pub steps: Vec<&'static str>,
    pub deferred: Vec<String>,
    pub error: Option<String>,
}

/// Marks names the directory holds for someone hrsync does not know.
pub trait ForeignNames: NameRegistry {
    fn mark_foreign(&self, name: &str);
}

/// Decides `worker` with names that are free in the directory as well, then converges it.
/// Returns the decision, the state to keep and the report.
pub async fn settle(
    graph: &GraphClient,
    config: &Config,
    worker: &hrsync_core::Worker,
    mut state: WorkerState,
    now: Timestamp,
    names: &dyn ForeignNames,
    object_ids: &(dyn Fn(&hrsync_core::WorkerKey) -> Option<String> + Sync),
) -> (Result<Decision, DecideError>, WorkerState, ApplyReport) {
    let failed = |state: WorkerState, error: String| {
        let report = ApplyReport {
            status: "failed",
            steps: Vec::new(),
            deferred: Vec::new(),
            error: Some(error),
        };
        (state, report)
    };
    let mut lookup = Lookup::WhenUnknown;
    if state.applied.is_none() && state.identifiers.is_none() {
        // An account from before hrsync keeps its names: adopt them instead of inventing new ones.
        match graph
            .find_user_by_employee_id(worker.employee_id.as_str())
            .await
        {
            Ok(Some(existing)) => {
                state.identifiers = Some(Identifiers {
                    mail: existing
                        .mail
                        .clone()
                        .unwrap_or_else(|| existing.user_principal_name.clone()),
                    upn: existing.user_principal_name,
                });
            }
            Ok(None) => lookup = Lookup::AlreadyAbsent,
            Err(error) => {
                let decision = hrsync_core::decide(
                    worker,
                    &state,
                    config,
                    now,
                    &|name: &str, by: &hrsync_core::WorkerKey| names.is_taken(name, by),
                );
                let (state, report) = failed(state, error.to_string());
                return (decision, state, report);
            }
        }
    }
    let decision = loop {
        let decision = match hrsync_core::decide(
            worker,
            &state,
            config,
            now,
            &|name: &str, by: &hrsync_core::WorkerKey| names.is_taken(name, by),
        ) {
            Ok(decision) => decision,
            Err(error) => {
                let (state, report) = failed(state, error.to_string());
                return (Err(error), state, report);
            }
        };
        let fresh = state
            .identifiers
            .is_none()
            .then(|| decision.state.identifiers.clone())
            .flatten();
        let Some(ids) = fresh else { break decision };
        let mut taken = None;
        for name in [&ids.upn, &ids.mail] {
            match graph.name_in_use(name).await {
                Ok(true) => taken = Some(name.clone()),
                Ok(false) => {}
                Err(error) => {
                    let (state, report) = failed(state, error.to_string());
                    return (Ok(decision), state, report);
                }
            }
        }
        match taken {
            Some(name) => names.mark_foreign(&name),
            None => break decision,
        }
    };

    let mut next = decision.state.clone();
    let mut steps = Vec::new();
    let mut latest = next.applied.clone();
    let mut record = |step: &Step| -> Result<(), ConvergeError> {
        steps.push(step.op.name());
        latest = step.after.clone();
        Ok(())
    };
    let object_ids = |key: &hrsync_core::WorkerKey| object_ids(key);
    let result = converge(
        graph,
        &worker.key,
        decision.desired.as_ref(),
        next.applied.clone(),
        lookup,
        &object_ids,
        &mut record,
    )
    .await;
    let report = match result {
        Ok(done) => {
            next.applied = done.applied;
            ApplyReport {
                status: if done.deferred.is_empty() {
                    "converged"
                } else {
                    "deferred"
                },
                steps,
                deferred: done.deferred,
                error: None,
            }
        }
        Err(error) => {
            next.applied = latest;
            ApplyReport {
                status: "failed",
                steps,
                deferred: Vec::new(),
                error: Some(error.to_string()),
            }
        }
    };
    (Ok(decision), next, report)
}
