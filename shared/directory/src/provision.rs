//! Provisioning one worker end to end against a directory: decide with names that are free in
//! the directory as well (an existing account's names are adopted), then converge. Two deciders
//! racing for one name cannot both win: Graph refuses the second create, and the loser decides
//! again with that name taken.

use hrsync_core::{
    Config, DecideError, Decision, Identifiers, NameRegistry, Worker, WorkerKey, WorkerState,
};
use jiff::Timestamp;
use serde::Serialize;

use crate::converge::{ConvergeError, Converged, Lookup, Step, converge, recorded};
use crate::graph::{GraphClient, GraphError};

/// How many times a worker may lose a name race before giving up for this run.
const MAX_RENAMES: usize = 5;

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

impl ApplyReport {
    fn failed(error: impl ToString) -> Self {
        Self {
            status: "failed",
            steps: Vec::new(),
            deferred: Vec::new(),
            error: Some(error.to_string()),
        }
    }
}

/// The names in use: the caller's registry, which also learns names the directory holds for
/// someone hrsync does not know.
pub trait ForeignNames: NameRegistry + Sync {
    fn mark_foreign(&self, name: &str);
}

/// The outcome of [`settle`].
#[derive(Debug)]
pub struct Settled {
    pub decision: Result<Decision, DecideError>,
    /// The state to keep: the decision's, with what the directory now holds as `applied`.
    pub state: WorkerState,
    pub report: ApplyReport,
}

/// Decides `worker` with names free in the directory too, then converges its account.
pub async fn settle(
    graph: &GraphClient,
    config: &Config,
    worker: &Worker,
    mut state: WorkerState,
    now: Timestamp,
    names: &dyn ForeignNames,
    object_ids: &(dyn Fn(&WorkerKey) -> Option<String> + Sync),
) -> Settled {
    let decide = |state: &WorkerState| {
        hrsync_core::decide(worker, state, config, now, &|name: &str, by: &WorkerKey| {
            names.is_taken(name, by)
        })
    };
    let mut lookup = Lookup::WhenUnknown;
    // Names just confirmed free by the preflight: the first decision needs no further check.
    let mut names_verified = false;
    if state.applied.is_none() && state.identifiers.is_none() {
        // One `$batch` before the first create: is there an account for this employee id
        // already (from before hrsync: adopt its names), and are the names we would pick free?
        let first = match decide(&state) {
            Ok(decision) => decision,
            Err(error) => {
                let report = ApplyReport::failed(&error);
                return Settled {
                    decision: Err(error),
                    state,
                    report,
                };
            }
        };
        let candidates: Vec<&str> = match &first.state.identifiers {
            Some(ids) if ids.mail.eq_ignore_ascii_case(&ids.upn) => vec![ids.upn.as_str()],
            Some(ids) => vec![ids.upn.as_str(), ids.mail.as_str()],
            None => Vec::new(),
        };
        match graph
            .preflight(Some(&config.directory_employee_id(worker)), &candidates)
            .await
        {
            Ok(found) => match found.existing {
                Some(existing) => {
                    state.identifiers = Some(Identifiers {
                        mail: existing
                            .mail
                            .clone()
                            .unwrap_or_else(|| existing.user_principal_name.clone()),
                        upn: existing.user_principal_name,
                    });
                }
                None => {
                    lookup = Lookup::AlreadyAbsent;
                    names_verified = found.taken.is_empty();
                    for name in &found.taken {
                        names.mark_foreign(name);
                    }
                }
            },
            Err(error) => {
                return Settled {
                    decision: Ok(first),
                    state,
                    report: ApplyReport::failed(error),
                };
            }
        }
    }
    let mut renames = 0;
    loop {
        let checked = match std::mem::take(&mut names_verified) {
            true => decide(&state).map_err(Failure::Decide),
            false => decide_with_free_names(graph, names, &state, &decide).await,
        };
        let decision = match checked {
            Ok(decision) => decision,
            Err(Failure::Decide(error)) => {
                let report = ApplyReport::failed(&error);
                return Settled {
                    decision: Err(error),
                    state,
                    report,
                };
            }
            Err(Failure::Graph(error, decision)) => {
                return Settled {
                    decision: Ok(*decision),
                    state,
                    report: ApplyReport::failed(error),
                };
            }
        };
        let fresh_names = state.identifiers.is_none() && decision.state.identifiers.is_some();
        let mut steps = Vec::new();
        let mut latest = decision.state.applied.clone();
        let mut record = |step: &Step| {
            steps.push(step.name());
            latest = step.after.clone();
            recorded()
        };
        let ids = |key: &WorkerKey| object_ids(key);
        let result = converge(
            graph,
            &worker.key,
            decision.desired.as_ref(),
            decision.state.applied.clone(),
            lookup,
            &ids,
            &mut record,
            None,
        )
        .await;
        match result {
            Err(ConvergeError::NameConflict { upn }) if fresh_names && renames < MAX_RENAMES => {
                // Someone got there first (another decider, or an account created meanwhile).
                names.mark_foreign(&upn);
                renames += 1;
                lookup = Lookup::AlreadyAbsent;
            }
            result => return finish(decision, result, steps, latest),
        }
    }
}

enum Failure {
    Decide(DecideError),
    Graph(GraphError, Box<Decision>),
}

/// Decides until the newly chosen UPN and mail are free in the directory as well.
async fn decide_with_free_names(
    graph: &GraphClient,
    names: &dyn ForeignNames,
    state: &WorkerState,
    decide: &impl Fn(&WorkerState) -> Result<Decision, DecideError>,
) -> Result<Decision, Failure> {
    loop {
        let decision = decide(state).map_err(Failure::Decide)?;
        let fresh = match (&state.identifiers, &decision.state.identifiers) {
            (None, Some(ids)) => ids.clone(),
            _ => return Ok(decision),
        };
        let mut taken = None;
        let mail = (!fresh.mail.eq_ignore_ascii_case(&fresh.upn)).then_some(&fresh.mail);
        for name in std::iter::once(&fresh.upn).chain(mail) {
            match graph.name_in_use(name).await {
                Ok(true) => taken = Some(name.clone()),
                Ok(false) => {}
                Err(error) => return Err(Failure::Graph(error, Box::new(decision))),
            }
        }
        match taken {
            Some(name) => names.mark_foreign(&name),
            None => return Ok(decision),
        }
    }
}

fn finish(
    decision: Decision,
    result: Result<Converged, ConvergeError>,
    steps: Vec<&'static str>,
    latest: Option<hrsync_core::AppliedIdentity>,
) -> Settled {
    let mut state = decision.state.clone();
    let report = match result {
        Ok(done) => {
            state.applied = done.applied;
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
            state.applied = latest;
            ApplyReport {
                status: "failed",
                steps,
                deferred: Vec::new(),
                error: Some(error.to_string()),
            }
        }
    };
    Settled {
        decision: Ok(decision),
        state,
        report,
    }
}

/// Converges a worker again from its stored state (once a deferred manager has an account),
/// adding what happened to its `report`.
pub async fn converge_again(
    graph: &GraphClient,
    worker: &WorkerKey,
    state: &mut WorkerState,
    object_ids: &(dyn Fn(&WorkerKey) -> Option<String> + Sync),
    report: &mut ApplyReport,
) {
    let ids = |key: &WorkerKey| object_ids(key);
    let mut confirmed = Vec::new();
    let mut latest = None;
    let mut record = |step: &Step| {
        confirmed.push(step.name());
        latest = Some(step.after.clone());
        recorded()
    };
    let result = converge(
        graph,
        worker,
        state.desired.as_ref(),
        state.applied.clone(),
        Lookup::WhenUnknown,
        &ids,
        &mut record,
        None,
    )
    .await;
    match result {
        Ok(done) => {
            report.status = if done.deferred.is_empty() {
                "converged"
            } else {
                "deferred"
            };
            report.deferred = done.deferred;
            state.applied = done.applied;
        }
        Err(error) => {
            report.status = "failed";
            report.error = Some(error.to_string());
        }
    }
}
