//! Whose account the directory gets as a worker's manager, and why there is none when there is
//! not: a manager who will never have an account (out of `lifecycle.scope`, or gone) is told
//! apart from one who will, and with `lifecycle.manager_fallback = "skip-level"` the next
//! manager up the chain who has an account stands in.

use std::collections::{BTreeMap, BTreeSet};

use hrsync_core::config::ManagerFallback;
use hrsync_core::{Lifecycle, WorkerKey, WorkerState};

use super::Pipeline;
use crate::ports::{Queue, StateStore, StoreError, Timers};

/// How many managers up the chain `skip-level` looks past the worker's own.
const MAX_SKIP_LEVELS: usize = 5;

/// The manager's account for converge, or whom the worker waits for and why.
#[derive(Debug, Default)]
pub struct StandIn {
    /// Whose account is set as the manager: the manager's, or (skip-level) one above them.
    /// Converge records it as the applied manager, so a later change of who stands in (the
    /// manager's own account appears) is a change it makes.
    pub manager: Option<WorkerKey>,
    /// Its object id.
    pub object_ids: BTreeMap<WorkerKey, String>,
    pub wait: Option<ManagerWait>,
}

/// A manager without an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerWait {
    /// The worker whose account wakes this one (the manager, or the one standing in).
    pub awaited: WorkerKey,
    /// Why, and what would fix it when waiting alone will not.
    pub reason: String,
}

/// Where a manager stands, from their stored state.
enum Standing {
    Account(String),
    /// Not yet: an account is coming.
    NotYet(String),
    /// Never, as things are; their own manager, if HR names one.
    Never(String, Option<WorkerKey>),
}

fn standing(manager: &WorkerKey, state: Option<&WorkerState>) -> Standing {
    let Some(state) = state else {
        return Standing::NotYet(format!(
            "manager {manager} has no account yet: no HR record of theirs has arrived (set once it does)"
        ));
    };
    if let Some(id) = state.applied.as_ref().and_then(|a| a.object_id.clone()) {
        return Standing::Account(id);
    }
    let above = state.snapshot.as_ref().and_then(|w| w.manager_key());
    match state.lifecycle {
        Some(Lifecycle::Terminated | Lifecycle::Deleted) => Standing::Never(
            format!("manager {manager} has left and will have no account"),
            above,
        ),
        Some(Lifecycle::PreHire) => {
            let start = state
                .snapshot
                .as_ref()
                .and_then(|w| w.hire_date)
                .map(|date| format!(" (they start on {date})"))
                .unwrap_or_default();
            Standing::NotYet(format!(
                "manager {manager} has no account yet{start}: set once it is created"
            ))
        }
        _ if state.desired.is_none() => Standing::Never(
            format!("manager {manager} is out of lifecycle.scope and will have no account"),
            above,
        ),
        _ => Standing::NotYet(format!(
            "manager {manager} has no account yet: it is being created"
        )),
    }
}

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    /// The account that stands in as `manager` for converge, or whom to wait for and why.
    pub(crate) async fn stand_in_manager(
        &self,
        manager: Option<&WorkerKey>,
    ) -> Result<StandIn, StoreError> {
        let Some(manager) = manager else {
            return Ok(StandIn::default());
        };
        let skip_level = self.config.lifecycle.manager_fallback == ManagerFallback::SkipLevel;
        let wait = |awaited: &WorkerKey, reason: String| StandIn {
            manager: Some(manager.clone()),
            object_ids: BTreeMap::new(),
            wait: Some(ManagerWait {
                awaited: awaited.clone(),
                reason,
            }),
        };
        let mut current = manager.clone();
        let mut passed: Vec<String> = Vec::new();
        let mut seen = BTreeSet::from([manager.clone()]);
        for _ in 0..=MAX_SKIP_LEVELS {
            let stored = self.store.load(&current).await?;
            let via = match passed.is_empty() {
                true => String::new(),
                false => format!(
                    "{}; standing in (manager_fallback = \"skip-level\"): ",
                    passed.join("; ")
                ),
            };
            match standing(&current, stored.as_ref().map(|s| &s.state)) {
                Standing::Account(id) => {
                    return Ok(StandIn {
                        object_ids: BTreeMap::from([(current.clone(), id)]),
                        manager: Some(current),
                        wait: None,
                    });
                }
                Standing::NotYet(reason) => return Ok(wait(&current, format!("{via}{reason}"))),
                Standing::Never(reason, above) if !skip_level => {
                    let fix = match above {
                        Some(_) => {
                            "set the worker's manager in HR to someone with an account, or set lifecycle.manager_fallback = \"skip-level\" to use the next manager up"
                        }
                        None => "set the worker's manager in HR to someone with an account",
                    };
                    return Ok(wait(manager, format!("{reason}: {fix}")));
                }
                Standing::Never(reason, Some(above)) if seen.insert(above.clone()) => {
                    passed.push(reason);
                    current = above;
                }
                Standing::Never(reason, _) => {
                    passed.push(reason);
                    return Ok(wait(
                        manager,
                        format!(
                            "{}; no manager above has an account: set the worker's manager in HR",
                            passed.join("; ")
                        ),
                    ));
                }
            }
        }
        Ok(wait(
            manager,
            format!(
                "{}; none of the {MAX_SKIP_LEVELS} managers above has an account: set the worker's manager in HR",
                passed.join("; ")
            ),
        ))
    }
}
