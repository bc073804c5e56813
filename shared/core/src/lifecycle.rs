//! The lifecycle decision: given HR's snapshot of a worker, what we stored, the config and
//! the instant `now`, who is this worker now, what should the directory hold, and when must
//! we look again.

use std::collections::BTreeMap;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

use crate::access;
use crate::config::{Config, NullPolicy, keys};
use crate::identity::{DesiredIdentity, Identifiers, PendingLicense, Presence};
use crate::limits::{self, DataProblem};
use crate::template::{self, TemplateError};
use crate::unique::{self, IdentifierError, NameRegistry};
use crate::worker::{InvalidWorker, Worker};

/// Where a worker stands in their employment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    PreHire,
    Active,
    LeaveScheduled,
    OnLeave,
    Terminated,
    Deleted,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreHire => "pre_hire",
            Self::Active => "active",
            Self::LeaveScheduled => "leave_scheduled",
            Self::OnLeave => "on_leave",
            Self::Terminated => "terminated",
            Self::Deleted => "deleted",
        }
    }

    pub fn has_left(self) -> bool {
        matches!(self, Self::Terminated | Self::Deleted)
    }

    fn is_employed(self) -> bool {
        matches!(self, Self::Active | Self::LeaveScheduled | Self::OnLeave)
    }
}

/// What happened to the worker with this decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Prehire,
    Join,
    Move,
    Leave,
    Rehire,
    None,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prehire => "prehire",
            Self::Join => "join",
            Self::Move => "move",
            Self::Leave => "leave",
            Self::Rehire => "rehire",
            Self::None => "none",
        }
    }
}

/// The kind of a one-time wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The pre-hire window opens: create the account, disabled.
    Prehire,
    /// The first day starts: enable the account.
    Start,
    /// The last day ends: disable the account.
    Leave,
    /// Staged offboarding: remove groups and licenses.
    RemoveAccess,
    /// Staged offboarding: delete the account.
    Delete,
    /// A licence that had no free unit is tried again.
    LicenseRetry,
}

impl TimerKind {
    pub const ALL: [TimerKind; 6] = [
        TimerKind::Prehire,
        TimerKind::Start,
        TimerKind::Leave,
        TimerKind::RemoveAccess,
        TimerKind::Delete,
        TimerKind::LicenseRetry,
    ];
}

/// A wake-up at which the worker must be decided again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timer {
    pub at: Timestamp,
    pub kind: TimerKind,
}

/// What the store keeps about a worker between decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    /// The newest snapshot accepted; an older one never wins over it.
    pub snapshot: Option<Worker>,
    pub lifecycle: Option<Lifecycle>,
    /// The instant the current employment ended (set while terminated).
    pub left_at: Option<Timestamp>,
    /// UPN and mail once chosen: kept for good, so a rehire gets the old account back.
    pub identifiers: Option<Identifiers>,
    /// hrsync has asked for an account for this worker at some point, so one may exist even
    /// if no directory write has been confirmed yet; it stays set for good.
    #[serde(default)]
    pub provisioned: bool,
    pub desired: Option<DesiredIdentity>,
    /// What the directory was last seen or made to hold.
    pub applied: Option<crate::identity::AppliedIdentity>,
    pub timers: Vec<Timer>,
    /// The work email the write-back stage last gave HR. A write-back is owed while the
    /// account's mail is neither this nor what HR's record holds.
    #[serde(default)]
    pub written_back: Option<String>,
    /// When the directory was last searched for an account carrying the worker's employee id
    /// and none was found (mapping's check); the entra stage trusts it for a while instead of
    /// looking again before it creates the account.
    #[serde(default)]
    pub directory_checked_at: Option<Timestamp>,
    /// Licences waiting for free units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_licenses: Vec<PendingLicense>,
    /// The last decision's data problems, so a runtime can tell when they change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<DataProblem>,
    /// Why the worker's manager was last left unset (audited when it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_deferred: Option<String>,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub transition: Transition,
    pub lifecycle: Lifecycle,
    /// `None`: hrsync has nothing to hold for this worker (not yet in the window, out of scope).
    pub desired: Option<DesiredIdentity>,
    /// Future wake-ups, earliest first.
    pub timers: Vec<Timer>,
    /// The worker's time zone, in which dates were read.
    pub time_zone: String,
    /// Which field or rule caused what, in order.
    pub explanation: Vec<String>,
    /// Values Graph would refuse, left out of `desired` instead of sent (also in `explanation`).
    pub problems: Vec<DataProblem>,
    /// The snapshot arrived older than the stored one and was ignored.
    pub stale: bool,
    /// What to store for the next decision.
    pub state: WorkerState,
}

/// Why a worker could not be decided; the run goes on with the others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("invalid worker record: {0}")]
    InvalidWorker(#[from] InvalidWorker),
    #[error("template {0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
    #[error("date arithmetic out of range: {0}")]
    Time(String),
}

/// The instants that follow from the record, in the worker's zone.
struct Instants {
    /// The account is enabled from here.
    start: Option<Timestamp>,
    /// The account may exist (disabled) from here.
    window_opens: Option<Timestamp>,
    /// The account is disabled from here.
    leave: Option<Timestamp>,
}

/// Decides one worker. Pure: `now` is a parameter and names are checked through `names`.
pub fn decide(
    incoming: &Worker,
    state: &WorkerState,
    config: &Config,
    now: Timestamp,
    names: &dyn NameRegistry,
) -> Result<Decision, DecideError> {
    let mut why = Vec::new();
    let (worker, stale) = match &state.snapshot {
        Some(stored) if stored.as_of > incoming.as_of => {
            why.push(format!(
                "stale: snapshot as of {} is older than the stored one ({}); decided on the stored snapshot",
                incoming.as_of, stored.as_of
            ));
            (stored, true)
        }
        _ => (incoming, false),
    };
    worker.validate()?;
    let employee_id = config.directory_employee_id(worker);
    let length = employee_id.chars().count();
    if length > crate::worker::EMPLOYEE_ID_MAX_CHARS {
        return Err(InvalidWorker::new(
            "employee_id",
            format!(
                "with the source's employee_id_prefix it is {employee_id:?}, {length} characters; the directory's employeeId holds at most {}",
                crate::worker::EMPLOYEE_ID_MAX_CHARS
            ),
        )
        .into());
    }
    let lifecycle_config = &config.lifecycle;
    let zone_name = worker
        .time_zone
        .clone()
        .unwrap_or_else(|| lifecycle_config.default_time_zone.0.clone());
    let zone = TimeZone::get(&zone_name).map_err(|_| {
        InvalidWorker::new(
            "time_zone",
            format!("{zone_name:?} is not an IANA time zone"),
        )
    })?;
    let context = template::context(worker, None);

    let previous = state.lifecycle;
    let had_account = state.provisioned || state.applied.is_some();
    let in_scope = match &lifecycle_config.scope {
        Some(_) => config.engine().test(keys::SCOPE, &context)?,
        None => true,
    };
    if !in_scope {
        let scope = lifecycle_config
            .scope
            .as_ref()
            .map(|s| s.0.as_str())
            .unwrap_or_default();
        why.push(match had_account {
            true => format!(
                "scope: out of scope ({scope} is false): the account is disabled, not deleted"
            ),
            false => format!("scope: out of scope ({scope} is false): not provisioned"),
        });
    }
    // The end of an earlier employment must not leak into this one.
    let previous_left_at = state
        .left_at
        .filter(|_| previous.is_some_and(Lifecycle::has_left));
    let instants = instants(
        worker,
        config,
        &zone,
        &zone_name,
        now,
        previous_left_at,
        in_scope,
        had_account,
        &mut why,
    )?;

    let mut lifecycle = match instants {
        Instants {
            leave: Some(leave), ..
        } if now >= leave => Lifecycle::Terminated,
        Instants {
            start: Some(start), ..
        } if now < start => Lifecycle::PreHire,
        _ if worker.status == crate::Status::Leave => Lifecycle::OnLeave,
        Instants { leave: Some(_), .. } => Lifecycle::LeaveScheduled,
        _ => Lifecycle::Active,
    };
    let left_at = instants
        .leave
        .filter(|_| lifecycle == Lifecycle::Terminated);
    let delete_at = match (left_at, lifecycle_config.delete_after_days) {
        (Some(left), Some(days)) => Some(add_days(left, days, &zone)?),
        _ => None,
    };
    let remove_access_at = match left_at {
        Some(left) => Some(add_days(
            left,
            lifecycle_config.remove_access_after_days,
            &zone,
        )?),
        None => None,
    };
    if delete_at.is_some_and(|at| now >= at) && had_account {
        lifecycle = Lifecycle::Deleted;
        why.push(format!(
            "delete: {} days after leaving (lifecycle.delete_after_days) have passed",
            lifecycle_config.delete_after_days.unwrap_or_default()
        ));
    }

    let window_open = instants.window_opens.is_none_or(|opens| now >= opens);
    let presence = match lifecycle {
        _ if !in_scope && !had_account => None,
        Lifecycle::PreHire if window_open => Some(Presence::Present),
        Lifecycle::PreHire => had_account.then_some(Presence::IfExists),
        Lifecycle::Active | Lifecycle::LeaveScheduled | Lifecycle::OnLeave => {
            Some(Presence::Present)
        }
        Lifecycle::Terminated => Some(Presence::IfExists),
        Lifecycle::Deleted => Some(Presence::Deleted),
    };
    let keeps_access = match lifecycle {
        Lifecycle::PreHire => window_open,
        Lifecycle::Active | Lifecycle::LeaveScheduled | Lifecycle::OnLeave => true,
        Lifecycle::Terminated => remove_access_at.is_some_and(|at| now < at),
        Lifecycle::Deleted => false,
    };
    let enabled = match lifecycle {
        Lifecycle::Active | Lifecycle::LeaveScheduled => true,
        Lifecycle::OnLeave => !lifecycle_config.disable_on_leave,
        _ => false,
    };
    explain_lifecycle(
        lifecycle,
        enabled,
        window_open,
        &instants,
        had_account,
        &mut why,
    );

    let mut identifiers = state.identifiers.clone();
    let mut problems = Vec::new();
    let desired = match presence {
        None => None,
        Some(presence) => {
            if presence == Presence::Present && identifiers.is_none() {
                let chosen = unique::choose(config, worker, names)?;
                why.extend(chosen.explanation);
                identifiers = Some(chosen.identifiers);
            } else if let Some(ids) = identifiers
                .as_ref()
                .filter(|_| previous.is_some_and(Lifecycle::has_left) && lifecycle.is_employed())
            {
                why.push(format!(
                    "rehire: the old account {} is reused; access comes from the new record only",
                    ids.upn
                ));
            }
            let grants = match keeps_access {
                true => access::evaluate(config, &context)?,
                false => access::Grants::default(),
            };
            why.extend(grants.explanation);
            if !keeps_access && lifecycle.has_left() && had_account {
                why.push("access: groups and licenses removed (staged offboarding)".into());
            }
            // Only a create cannot do without a value: anything else goes ahead without the
            // values Graph would refuse, so bad data never holds up a leaver.
            let creating = presence == Presence::Present && state.applied.is_none();
            if let (true, Some(ids)) = (creating, &identifiers) {
                limits::check_names(ids)?;
            }
            let mut attributes = attributes(config, worker, &context, instants.leave)?;
            let applied = state.applied.as_ref();
            limits::check_attributes(&mut attributes, applied, creating, &mut problems)?;
            let licenses = limits::assignable_licenses(
                grants.licenses,
                &attributes,
                applied,
                config.attributes.contains_key("usageLocation"),
                &mut problems,
            );
            why.extend(problems.iter().map(|p| format!("data: {p}")));
            Some(DesiredIdentity {
                presence,
                identifiers: identifiers
                    .clone()
                    .filter(|_| presence != Presence::Deleted),
                enabled,
                attributes,
                groups: grants.groups,
                licenses,
                manager: worker.manager_key(),
            })
        }
    };

    let timers = match in_scope || had_account {
        true => wake_ups(&WakeUps {
            lifecycle,
            window_open,
            instants: &instants,
            remove_access: remove_access_at
                .filter(|_| lifecycle_config.remove_access_after_days > 0),
            delete: delete_at,
            license_retry: state
                .pending_licenses
                .iter()
                .filter(|p| {
                    desired
                        .as_ref()
                        .is_some_and(|d| d.licenses.contains(&p.sku))
                })
                .map(|p| p.retry_at)
                .min(),
            had_account,
            now,
        }),
        false => Vec::new(),
    };
    if state.timers.iter().any(|t| t.kind == TimerKind::Leave) && instants.leave.is_none() {
        why.push(
            "leave: termination rescinded: the leave timer is dropped and nothing is disabled"
                .into(),
        );
    }

    // Nothing happens to a worker hrsync neither holds nor will hold.
    let untouched = !in_scope && !had_account;
    let transition = match (stale || untouched, previous) {
        (true, _) => Transition::None,
        (false, previous) => transition(
            previous,
            lifecycle,
            state.desired.as_ref(),
            desired.as_ref(),
            &mut why,
        ),
    };
    let next = WorkerState {
        snapshot: Some(worker.clone()),
        lifecycle: Some(lifecycle),
        left_at,
        identifiers,
        provisioned: had_account || presence == Some(Presence::Present),
        desired: desired.clone(),
        applied: state.applied.clone(),
        timers: timers.clone(),
        written_back: state.written_back.clone(),
        directory_checked_at: state.directory_checked_at,
        pending_licenses: state.pending_licenses.clone(),
        problems: problems.clone(),
        manager_deferred: state.manager_deferred.clone(),
    };
    Ok(Decision {
        transition,
        lifecycle,
        desired,
        timers,
        time_zone: zone_name,
        explanation: why,
        problems,
        stale,
        state: next,
    })
}

/// What the timers of a decision follow from.
struct WakeUps<'a> {
    lifecycle: Lifecycle,
    window_open: bool,
    instants: &'a Instants,
    remove_access: Option<Timestamp>,
    delete: Option<Timestamp>,
    /// The earliest retry of a licence waiting for free units.
    license_retry: Option<Timestamp>,
    had_account: bool,
    now: Timestamp,
}

/// The future instants at which the worker must be decided again, earliest first.
fn wake_ups(at: &WakeUps<'_>) -> Vec<Timer> {
    let pre_hire = at.lifecycle == Lifecycle::PreHire;
    let staged = at.had_account && at.lifecycle == Lifecycle::Terminated;
    let candidates = [
        (
            TimerKind::Prehire,
            at.instants
                .window_opens
                .filter(|_| pre_hire && !at.window_open),
        ),
        (TimerKind::Start, at.instants.start.filter(|_| pre_hire)),
        (TimerKind::Leave, at.instants.leave),
        (TimerKind::RemoveAccess, at.remove_access.filter(|_| staged)),
        (TimerKind::Delete, at.delete.filter(|_| staged)),
        (TimerKind::LicenseRetry, at.license_retry),
    ];
    let mut timers: Vec<Timer> = candidates
        .into_iter()
        .filter_map(|(kind, instant)| {
            instant
                .filter(|instant| *instant > at.now)
                .map(|at| Timer { at, kind })
        })
        .collect();
    timers.sort();
    timers
}

#[allow(clippy::too_many_arguments)]
fn instants(
    worker: &Worker,
    config: &Config,
    zone: &TimeZone,
    zone_name: &str,
    now: Timestamp,
    previous_left_at: Option<Timestamp>,
    in_scope: bool,
    had_account: bool,
    why: &mut Vec<String>,
) -> Result<Instants, DecideError> {
    let lifecycle = &config.lifecycle;
    let start = match worker.hire_date {
        Some(date) => Some(local_instant(date, lifecycle.start_at.0, zone)?),
        None => None,
    };
    // The window opens at start_at on the calendar day `prehire_days` before the hire date.
    let window_opens = match worker.hire_date {
        Some(date) => {
            let day = date
                .checked_sub(Span::new().days(i64::from(lifecycle.prehire_days)))
                .map_err(|e| DecideError::Time(e.to_string()))?;
            Some(local_instant(day, lifecycle.start_at.0, zone)?)
        }
        None => None,
    };
    if let (Some(date), Some(start)) = (worker.hire_date, start) {
        why.push(format!(
            "start: hire_date {date} at {} (lifecycle.start_at) in {zone_name} is {start}",
            lifecycle.start_at.0.strftime("%H:%M")
        ));
    }
    let immediate_type = worker.termination_type.as_deref().filter(|kind| {
        lifecycle
            .immediate_termination_types
            .iter()
            .any(|immediate| immediate.eq_ignore_ascii_case(kind.trim()))
    });
    let ended_now = previous_left_at.unwrap_or(now);
    if let (Some(old), None) = (worker.termination_date, worker.current_termination_date()) {
        why.push(format!(
            "leave: termination_date {old} is before hire_date {}: an earlier employment, ignored",
            worker.hire_date.map(|d| d.to_string()).unwrap_or_default()
        ));
    }
    let leave = if !in_scope && had_account {
        Some(ended_now)
    } else if let Some(kind) = immediate_type
        .filter(|_| worker.current_termination_date().is_some() || worker.status.is_ended())
    {
        why.push(format!(
            "leave: termination_type {kind} is immediate (lifecycle.immediate_termination_types): cut off at {ended_now}, not at leave_at"
        ));
        Some(ended_now)
    } else if let Some(date) = worker.current_termination_date() {
        let (time, from) = match worker.termination_time {
            Some(time) => (time, "termination_time"),
            None => (lifecycle.leave_at.0, "lifecycle.leave_at"),
        };
        let at = local_instant(date, time, zone)?;
        why.push(format!(
            "leave: termination_date {date} at {} ({from}) in {zone_name} is {at}",
            time.strftime("%H:%M")
        ));
        Some(at)
    } else if worker.status.is_ended() {
        why.push(format!(
            "leave: status {} without a termination_date: cut off at {ended_now}",
            worker.status.as_str()
        ));
        Some(ended_now)
    } else {
        None
    };
    Ok(Instants {
        start,
        window_opens,
        leave,
    })
}

fn explain_lifecycle(
    lifecycle: Lifecycle,
    enabled: bool,
    window_open: bool,
    instants: &Instants,
    had_account: bool,
    why: &mut Vec<String>,
) {
    let state = if enabled { "enabled" } else { "disabled" };
    let line = match lifecycle {
        Lifecycle::PreHire if window_open => format!("lifecycle: pre-hire window is open: account exists {state} until the start"),
        Lifecycle::PreHire if had_account => "lifecycle: pre-hire, window not open yet: the existing account stays disabled".to_owned(),
        Lifecycle::PreHire => format!(
            "lifecycle: pre-hire, no account until the window opens at {}",
            instants.window_opens.map(|t| t.to_string()).unwrap_or_default()
        ),
        Lifecycle::Active => format!("lifecycle: active: account {state}"),
        Lifecycle::LeaveScheduled => format!("lifecycle: leave scheduled: account {state} until the leave instant"),
        Lifecycle::OnLeave => format!("lifecycle: on leave (status Leave): account {state} (lifecycle.disable_on_leave)"),
        Lifecycle::Terminated if had_account => "lifecycle: terminated: account disabled and sign-in sessions revoked".to_owned(),
        Lifecycle::Terminated => "lifecycle: terminated before hrsync provisioned an account: none is created; an existing one is disabled".to_owned(),
        Lifecycle::Deleted => "lifecycle: deleted".to_owned(),
    };
    why.push(line);
}

fn transition(
    previous: Option<Lifecycle>,
    now: Lifecycle,
    before: Option<&DesiredIdentity>,
    after: Option<&DesiredIdentity>,
    why: &mut Vec<String>,
) -> Transition {
    match (previous, now) {
        (Some(previous), _) if previous.has_left() && !now.has_left() => Transition::Rehire,
        (Some(previous), now) if !previous.has_left() && now.has_left() => Transition::Leave,
        (_, now) if now.has_left() => Transition::None,
        (None, Lifecycle::PreHire) => Transition::Prehire,
        (Some(Lifecycle::PreHire), Lifecycle::PreHire)
            if before.map(|d| d.presence) != Some(Presence::Present)
                && after.map(|d| d.presence) == Some(Presence::Present) =>
        {
            Transition::Prehire
        }
        (None | Some(Lifecycle::PreHire), _) if now.is_employed() => Transition::Join,
        (Some(previous), now) if previous.is_employed() && now.is_employed() => {
            match moved(before, after) {
                Some(changes) => {
                    why.push(format!("move: {changes}"));
                    Transition::Move
                }
                None => Transition::None,
            }
        }
        _ => Transition::None,
    }
}

/// What changed between two desired identities of an employed worker, if anything.
fn moved(before: Option<&DesiredIdentity>, after: Option<&DesiredIdentity>) -> Option<String> {
    let (before, after) = (before?, after?);
    let mut changes = Vec::new();
    let names: std::collections::BTreeSet<&String> = before
        .attributes
        .keys()
        .chain(after.attributes.keys())
        .collect();
    for name in names {
        let (old, new) = (before.attributes.get(name), after.attributes.get(name));
        if old != new {
            let show = |v: Option<&Option<String>>| v.cloned().flatten().unwrap_or_default();
            changes.push(format!("{name} {:?} -> {:?}", show(old), show(new)));
        }
    }
    for (what, old, new) in [
        ("group", &before.groups, &after.groups),
        ("license", &before.licenses, &after.licenses),
    ] {
        changes.extend(new.difference(old).map(|x| format!("+{what} {x}")));
        changes.extend(old.difference(new).map(|x| format!("-{what} {x}")));
    }
    if before.manager != after.manager {
        let show = |m: &Option<crate::WorkerKey>| {
            m.as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "none".into())
        };
        changes.push(format!(
            "manager {} -> {}",
            show(&before.manager),
            show(&after.manager)
        ));
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}

/// Renders `[attributes]` plus the display name and the employee id the directory matches on.
fn attributes(
    config: &Config,
    worker: &Worker,
    context: &minijinja::Value,
    leave: Option<Timestamp>,
) -> Result<BTreeMap<String, Option<String>>, TemplateError> {
    let mut out = BTreeMap::new();
    if config.directory.employee_leave_date {
        // Entra Lifecycle Workflows run leaver tasks from this; cleared when a leave is withdrawn.
        let at = leave.map(|at| at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        out.insert("employeeLeaveDateTime".to_owned(), at);
    }
    out.insert(
        "employeeId".to_owned(),
        Some(config.directory_employee_id(worker)),
    );
    out.insert(
        "displayName".to_owned(),
        Some(config.engine().render(keys::DISPLAY_NAME, context)?),
    );
    // `employeeId` is set above (config load allows only `{{ employee_id }}` there).
    for name in config
        .attributes
        .keys()
        .filter(|name| *name != "employeeId")
    {
        let value = config.engine().render(&keys::attribute(name), context)?;
        match (value.is_empty(), config.directory.null_policy) {
            (false, _) => {
                out.insert(name.clone(), Some(value));
            }
            (true, NullPolicy::Clear) => {
                out.insert(name.clone(), None);
            }
            (true, NullPolicy::Ignore) => {}
        }
    }
    Ok(out)
}

/// The instant a local wall-clock time on a date happens in a zone. A time skipped by a
/// DST jump resolves to the instant after the gap; a repeated one to its first occurrence.
pub fn local_instant(date: Date, time: Time, zone: &TimeZone) -> Result<Timestamp, DecideError> {
    zone.to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .map_err(|e| DecideError::Time(e.to_string()))
}

/// `days` calendar days later (or earlier) in the zone, keeping the wall-clock time.
fn add_days(
    at: Timestamp,
    days: impl Into<i64>,
    zone: &TimeZone,
) -> Result<Timestamp, DecideError> {
    let days = days.into();
    at.to_zoned_datetime(zone.clone())
        .checked_add(Span::new().days(days))
        .map(|zoned| zoned.timestamp())
        .map_err(|e| DecideError::Time(e.to_string()))
}
