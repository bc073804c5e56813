//! Convergence, the logic of the `entra` stage: make the directory hold a worker's desired
//! identity with the fewest requests (a joiner: one create, then one `$batch` with its manager and
//! licence, its group additions sent with those of the other workers of the round), recording the
//! account after each confirmed step so that running again after a crash at any point finishes
//! the job without a duplicate account. A licence without a free unit waits (pending) and does not
//! hold the rest back.

use std::collections::BTreeMap;

use hrsync_core::{AppliedIdentity, DesiredIdentity, Op, WorkerKey, apply, plan};
use serde_json::{Map, Value};

use crate::graph::{DirectoryUser, GraphClient, GraphError, GraphRequest, NewUser, requests};
use crate::group_adds::Participant;

/// One directory change Graph confirmed, with the account before and after it (the audit record).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub op: Op,
    pub before: Option<AppliedIdentity>,
    pub after: Option<AppliedIdentity>,
    /// Not a write: `op` (a create) was refused because the worker's account exists, found by
    /// its employee id, and `after` is that account taken as theirs. The recorder may refuse it
    /// (an account another worker owns): the run stops before anything is written to it.
    pub adopted: bool,
}

impl Step {
    /// What the step did: `adopt` for an account taken as the worker's, else the op's name.
    pub fn name(&self) -> &'static str {
        match self.adopted {
            true => "adopt",
            false => self.op.name(),
        }
    }
}

/// What a convergence run did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Converged {
    pub applied: Option<AppliedIdentity>,
    pub steps: Vec<Step>,
    /// What must wait (a manager without an account yet); converge again later.
    pub deferred: Vec<String>,
    /// Licences not assigned for want of a free unit: `(skuId, why)`.
    pub pending_licenses: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("{op} failed: {error}")]
    Rejected { op: &'static str, error: GraphError },
    #[error("{upn} is already used by another account; the worker needs another name")]
    NameConflict { upn: String },
    #[error("stopped after a recorded step")]
    Stopped,
    /// The recorder could not keep a confirmed step (the state store failed): the run stops
    /// there, and the next one finds the account as the step left it.
    #[error("cannot record a confirmed step: {message}")]
    Record { message: String, retryable: bool },
}

impl ConvergeError {
    /// Retry the work later (throttling, outages, replication lag) rather than dead-letter it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Graph(error) => error.is_retryable(),
            Self::Rejected { error, .. } => error.is_retryable(),
            Self::NameConflict { .. } | Self::Stopped => false,
            Self::Record { retryable, .. } => *retryable,
        }
    }

    /// See [`GraphError::is_outage`].
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Graph(error) | Self::Rejected { error, .. } => error.is_outage(),
            Self::NameConflict { .. } | Self::Stopped | Self::Record { .. } => false,
        }
    }
}

/// Where the directory object ids of other workers (managers) come from: the state store.
pub trait ObjectIds {
    fn object_id(&self, worker: &WorkerKey) -> Option<String>;
}

impl<F: Fn(&WorkerKey) -> Option<String>> ObjectIds for F {
    fn object_id(&self, worker: &WorkerKey) -> Option<String> {
        self(worker)
    }
}

/// Whether to look the worker up by `employeeId` before creating an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Look it up whenever no object id is recorded: an interrupted run or an account from
    /// before hrsync may exist.
    WhenUnknown,
    /// The caller has just checked that no account carries this employee id (in the same
    /// `$batch` as its name checks), so a joiner costs one create and one `$batch`.
    AlreadyAbsent,
}

/// Called after each confirmed step with the account as it now is: the caller persists it and
/// audits the step. An `Err` stops the run there (the crash tests use that).
/// The step is persisted (and audited) before the next request goes out, so a crash loses at
/// most the record of the step in flight.
pub type Recorder<'a> = dyn FnMut(&Step) -> Recorded<'a> + Send + 'a;

/// What a [`Recorder`] returns: the recording, awaited before the run goes on.
pub type Recorded<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ConvergeError>> + Send + 'a>>;

/// A recorder that keeps nothing (the caller reads the steps from [`Converged`]).
pub fn recorded() -> Recorded<'static> {
    Box::pin(std::future::ready(Ok(())))
}

/// Converges one worker's account. With a place in a `round`, its group additions go out
/// together with those of the round's other workers ([`GroupAdds`](crate::group_adds::GroupAdds));
/// without, one request each.
#[allow(clippy::too_many_arguments)]
pub async fn converge(
    graph: &GraphClient,
    worker: &WorkerKey,
    desired: Option<&DesiredIdentity>,
    applied: Option<AppliedIdentity>,
    lookup: Lookup,
    object_ids: &(dyn ObjectIds + Sync),
    record: &mut Recorder<'_>,
    round: Option<Participant>,
) -> Result<Converged, ConvergeError> {
    let mut run = Run {
        graph,
        record,
        current: applied,
        steps: Vec::new(),
        deferred: Vec::new(),
        pending_licenses: Vec::new(),
        round,
    };
    let Some(desired) = desired else {
        return Ok(run.finish());
    };
    let known = run.current.as_ref().is_some_and(|a| a.object_id.is_some());
    // The account carries the worker's employee id, which is not always the key's record id
    // (HiBob's backend id has 19 digits; the account carries Bob's Employee ID).
    let employee_id = desired
        .attributes
        .get("employeeId")
        .and_then(Option::as_deref);
    if !known
        && lookup == Lookup::WhenUnknown
        && let Some(employee_id) = employee_id
    {
        // Never create before looking: the account may exist from an interrupted run (the
        // create succeeded, the record did not) or from before hrsync.
        if let Some(user) = graph.find_user_by_employee_id(employee_id).await? {
            tracing::debug!(%worker, "an account carrying the employee id exists: converged, not created");
            run.current = Some(adopt(&user, desired));
        }
    }
    let mut ops = plan(Some(desired), run.current.as_ref());
    if matches!(ops.first(), Some(Op::Create { .. })) {
        let create = ops.remove(0);
        if let Some(existing) = run.create(employee_id, create.clone()).await? {
            // The name is held by an account carrying the worker's employee id (an interrupted
            // run, or one made before hrsync): converge that one, once the recorder took it.
            let step = Step {
                op: create,
                before: run.current.clone(),
                after: Some(adopt(&existing, desired)),
                adopted: true,
            };
            (run.record)(&step).await?;
            run.current = step.after.clone();
            run.steps.push(step);
            ops = plan(Some(desired), run.current.as_ref());
        }
    }
    run.batch(ops, object_ids).await?;
    Ok(run.finish())
}

struct Run<'a, 'r> {
    graph: &'a GraphClient,
    record: &'a mut Recorder<'r>,
    current: Option<AppliedIdentity>,
    steps: Vec<Step>,
    deferred: Vec<String>,
    pending_licenses: Vec<(String, String)>,
    round: Option<Participant>,
}

impl Run<'_, '_> {
    fn finish(self) -> Converged {
        Converged {
            applied: self.current,
            steps: self.steps,
            deferred: self.deferred,
            pending_licenses: self.pending_licenses,
        }
    }

    /// Applies a confirmed op to the model of the account and hands the step to the recorder.
    async fn confirmed(&mut self, op: Op, object_id: Option<String>) -> Result<(), ConvergeError> {
        let before = self.current.clone();
        self.current = apply(self.current.take(), std::slice::from_ref(&op));
        if let (Some(account), Some(id)) = (self.current.as_mut(), object_id) {
            account.object_id = Some(id);
        }
        let step = Step {
            op,
            before,
            after: self.current.clone(),
            adopted: false,
        };
        (self.record)(&step).await?;
        self.steps.push(step);
        Ok(())
    }

    /// `POST /users`. A name Graph says is taken may be held by the worker's own account (an
    /// interrupted run whose record was lost, or an account from before hrsync): that account is
    /// returned, to be converged instead; held by anyone else, it is a [`ConvergeError::NameConflict`].
    async fn create(
        &mut self,
        employee_id: Option<&str>,
        create: Op,
    ) -> Result<Option<DirectoryUser>, ConvergeError> {
        let Op::Create {
            upn,
            mail,
            mail_nickname,
            enabled,
            attributes,
        } = &create
        else {
            return Ok(None);
        };
        let mut properties = graph_properties(attributes.iter().map(|(k, v)| (k, Some(v))));
        let display_name = match properties.remove("displayName") {
            Some(Value::String(name)) => name,
            _ => upn.clone(),
        };
        let user = NewUser {
            user_principal_name: upn.clone(),
            mail_nickname: mail_nickname.clone(),
            display_name,
            account_enabled: *enabled,
            mail: Some(mail.clone()),
            properties: properties.into_iter().collect(),
        };
        match self.graph.create_user(&user).await {
            Ok(created) => {
                self.confirmed(create, Some(created.id)).await?;
                Ok(None)
            }
            Err(GraphError::Graph {
                status: 400,
                message,
                ..
            }) if message.contains("already exists") => {
                let existing = match employee_id {
                    Some(id) => self.graph.find_user_by_employee_id(id).await?,
                    None => None,
                };
                existing
                    .map(Some)
                    .ok_or_else(|| ConvergeError::NameConflict { upn: upn.clone() })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Everything after the create in one `$batch` (chunks of 20): a disable first, attribute
    /// changes before licenses (usageLocation), all license changes in one `assignLicense`.
    async fn batch(
        &mut self,
        ops: Vec<Op>,
        object_ids: &(dyn ObjectIds + Sync),
    ) -> Result<(), ConvergeError> {
        let Some(user) = self.current.as_ref().and_then(|a| a.object_id.clone()) else {
            return Ok(());
        };
        let mut calls: Vec<(GraphRequest, Vec<Op>)> = Vec::new();
        let mut round_adds: Vec<String> = Vec::new();
        let (licenses, others): (Vec<Op>, Vec<Op>) = ops
            .into_iter()
            .partition(|op| matches!(op, Op::AssignLicense { .. } | Op::RemoveLicense { .. }));
        let mut disable_id = None;
        let mut update_id = None;
        for op in others {
            let request = match &op {
                Op::Create { .. } => continue,
                Op::Disable => requests::set_enabled(&user, false),
                Op::Enable => requests::set_enabled(&user, true),
                Op::Update { set, clear } => {
                    let changes = set
                        .iter()
                        .map(|(k, v)| (k, Some(v)))
                        .chain(clear.iter().map(|k| (k, None)));
                    requests::update_user(&user, &graph_properties(changes))
                }
                Op::SetManager { manager } => match object_ids.object_id(manager) {
                    Some(manager_id) => requests::set_manager(&user, &manager_id),
                    None => {
                        self.deferred
                            .push(format!("manager {manager} has no account yet"));
                        continue;
                    }
                },
                Op::RemoveManager => requests::remove_manager(&user),
                Op::AddGroup { group } if self.round.is_some() => {
                    round_adds.push(group.clone());
                    continue;
                }
                Op::AddGroup { group } => requests::add_member(group, &user),
                Op::RemoveGroup { group } => requests::remove_member(group, &user),
                Op::Delete => requests::delete_user(&user),
                Op::AssignLicense { .. } | Op::RemoveLicense { .. } => continue,
            };
            let id = (calls.len() + 1).to_string();
            match op {
                Op::Disable => {
                    // A disable counts as done only once the sessions are revoked too, so a
                    // failed revoke is sent again by the next run.
                    disable_id = Some(id.clone());
                    calls.push((request.id(id.clone()), Vec::new()));
                    let revoke = requests::revoke_sessions(&user)
                        .id(format!("{id}-revoke"))
                        .depends_on(id);
                    calls.push((revoke, vec![op]));
                    continue;
                }
                Op::Update { .. } => update_id = Some(id.clone()),
                _ => {}
            }
            calls.push((request.id(id), vec![op]));
        }
        // Additions after the attributes (usageLocation); removals on their own, so that one
        // already gone (after an interrupted run) does not fail the additions.
        let (adds, removals): (Vec<Op>, Vec<Op>) = licenses
            .into_iter()
            .partition(|op| matches!(op, Op::AssignLicense { .. }));
        let skus = |ops: &[Op]| -> Vec<String> {
            ops.iter()
                .filter_map(|op| match op {
                    Op::AssignLicense { sku } | Op::RemoveLicense { sku } => Some(sku.clone()),
                    _ => None,
                })
                .collect()
        };
        let mut assign_id = None;
        if !adds.is_empty() {
            // Only licences with a free unit are asked for; the others wait, without a request
            // Graph would refuse.
            let reservation = self.graph.reserve_licenses(&skus(&adds)).await?;
            self.pending_licenses.extend(reservation.unavailable);
            let granted: Vec<Op> = adds
                .into_iter()
                .filter(|op| matches!(op, Op::AssignLicense { sku } if reservation.granted.contains(sku)))
                .collect();
            if !granted.is_empty() {
                let id = (calls.len() + 1).to_string();
                let mut request =
                    requests::assign_licenses(&user, &skus(&granted), &[]).id(id.clone());
                if let Some(update) = &update_id {
                    request = request.depends_on(update.clone());
                }
                assign_id = Some(id);
                calls.push((request, granted));
            }
        }
        let mut removal_id = None;
        if !removals.is_empty() {
            let id = (calls.len() + 1).to_string();
            let request = requests::remove_licenses(&user, &skus(&removals)).id(id.clone());
            removal_id = Some(id);
            calls.push((request, removals));
        }
        if let Some(disable) = &disable_id {
            // A leaver is cut off before anything else happens to the account.
            for (request, _) in calls
                .iter_mut()
                .filter(|(r, _)| &r.id != disable && r.depends_on.is_empty())
            {
                request.depends_on.push(disable.clone());
            }
        }
        let mut failure = None;
        if !calls.is_empty() {
            let (requests, ops): (Vec<GraphRequest>, Vec<Vec<Op>>) = calls.into_iter().unzip();
            let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
            let responses = self.graph.batch(requests).await?;
            for ((ops, response), id) in ops.into_iter().zip(&responses).zip(ids) {
                let licenses = skus(&ops);
                let is_assign = assign_id.as_ref() == Some(&id);
                if response.is_success() {
                    if removal_id.as_ref() == Some(&id) {
                        self.graph.release_licenses(&licenses).await;
                    }
                    for op in ops {
                        self.confirmed(op, None).await?;
                    }
                    continue;
                }
                if is_assign {
                    // The units set aside were not used.
                    self.graph.release_licenses(&licenses).await;
                }
                match response.error() {
                    Some(error) if is_assign && error.is_license_exhausted() => {
                        let reason = error.to_string();
                        for sku in &licenses {
                            if reason
                                .to_ascii_lowercase()
                                .contains(&sku.to_ascii_lowercase())
                            {
                                self.graph.licenses_exhausted(sku).await;
                            }
                            self.pending_licenses.push((sku.clone(), reason.clone()));
                        }
                    }
                    Some(error) if failure.is_none() => {
                        failure = Some(ConvergeError::Rejected {
                            op: ops.first().map_or("disable", Op::name),
                            error,
                        });
                    }
                    _ => {}
                }
            }
        }
        if let Some(round) = self.round.take() {
            let results = round.add(&user, &round_adds).await;
            for (group, result) in round_adds.into_iter().zip(results) {
                match result {
                    Ok(()) => self.confirmed(Op::AddGroup { group }, None).await?,
                    Err(error) if failure.is_none() => {
                        failure = Some(ConvergeError::Rejected {
                            op: "add_group",
                            error,
                        });
                    }
                    Err(_) => {}
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Graph properties from hrsync attribute names: a dotted name (`employeeOrgData.costCenter`)
/// is a property of a complex property; `None` clears.
fn graph_properties<'a>(
    attributes: impl IntoIterator<Item = (&'a String, Option<&'a String>)>,
) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in attributes {
        let value = value.map_or(Value::Null, |v| Value::String(v.clone()));
        match name.split_once('.') {
            Some((outer, inner)) => {
                let entry = out
                    .entry(outer.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = entry {
                    map.insert(inner.to_owned(), value);
                }
            }
            None => {
                out.insert(name.clone(), value);
            }
        }
    }
    out
}

/// The applied model of an account found in the directory: the attributes hrsync manages, as
/// the directory holds them. Memberships and licenses are not read back: adding what is already
/// there succeeds, and what hrsync never granted is not its to remove.
pub fn adopt(user: &DirectoryUser, desired: &DesiredIdentity) -> AppliedIdentity {
    let read = |name: &str| -> Option<String> {
        match name {
            "displayName" => user.display_name.clone(),
            "employeeId" => user.employee_id.clone(),
            _ => {
                let value = match name.split_once('.') {
                    Some((outer, inner)) => user.properties.get(outer)?.get(inner)?,
                    None => user.properties.get(name)?,
                };
                value.as_str().map(str::to_owned)
            }
        }
    };
    AppliedIdentity {
        object_id: Some(user.id.clone()),
        upn: user.user_principal_name.clone(),
        mail: user.mail.clone(),
        enabled: user.account_enabled,
        attributes: desired
            .attributes
            .keys()
            .filter_map(|name| Some((name.clone(), read(name)?)))
            .collect(),
        groups: Default::default(),
        licenses: Default::default(),
        manager: None,
    }
}
