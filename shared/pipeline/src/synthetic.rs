//! HR records hrsync writes itself, on an operator's word (`hrsync terminate`) or because a
//! complete export no longer lists a worker: the worker's latest record, leaving now. They go
//! through the pipeline like any other record, so they are decided, audited and converged the
//! same way.

use hrsync_core::{Status, Worker};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// `termination_type` of an operator's emergency termination.
pub const EMERGENCY: &str = "emergency";
/// `termination_type` of a worker a complete export no longer lists.
pub const ABSENT_FROM_EXPORT: &str = "absent_from_export";
/// `termination_type` of a worker whose record the HR system deleted.
pub const DELETED_IN_HR: &str = "deleted_in_hr";

/// `latest`, terminated at `now` (the last day is today on the worker's clock; the cut-off is
/// this minute, so the leave instant is never after `now`).
pub fn leaving_now(latest: &Worker, now: Timestamp, default_zone: &str, kind: &str) -> Worker {
    let zone = latest
        .time_zone
        .as_deref()
        .and_then(|name| TimeZone::get(name).ok())
        .or_else(|| TimeZone::get(default_zone).ok())
        .unwrap_or(TimeZone::UTC);
    let local = now.to_zoned_datetime(zone).datetime();
    let minute = local
        .time()
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap_or(local.time());
    let mut leaving = latest.clone();
    leaving.status = Status::Terminated;
    leaving.termination_date = Some(local.date());
    leaving.termination_time = Some(minute);
    leaving.termination_type = Some(kind.to_owned());
    leaving.as_of = now.max(latest.as_of);
    leaving
}

/// An operator's termination stands until HR says otherwise: a later HR record that does not
/// know about it yet (no termination date, same employment) keeps the operator's termination,
/// so an emergency leaver is not re-enabled by the next routine sync. HR's own termination
/// date, or a rehire (a hire date after the operator's last day), replaces it.
pub fn keep_operator_termination(kept: &Worker, incoming: &Worker) -> Option<Worker> {
    let operator = kept.termination_type.as_deref() == Some(EMERGENCY);
    let last_day = kept.termination_date?;
    let rehired = incoming.hire_date.is_some_and(|hired| hired > last_day);
    if !operator || incoming.termination_date.is_some() || rehired {
        return None;
    }
    let mut merged = incoming.clone();
    merged.status = Status::Terminated;
    merged.termination_date = kept.termination_date;
    merged.termination_time = kept.termination_time;
    merged.termination_type = kept.termination_type.clone();
    Some(merged)
}
