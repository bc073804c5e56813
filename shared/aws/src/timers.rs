//! The pipeline's [`Timers`] on EventBridge Scheduler: one one-time `at()` schedule per timer,
//! in the timers' own schedule group, delivering the wake-up nudge to the worker-events queue.
//!
//! # How the port maps to Scheduler
//!
//! - A timer is the schedule [`schedule_name`]`(timer.name)`: deterministic, so a changed date
//!   updates the same schedule ([`Timers::put`]: `CreateSchedule`, on `ConflictException`
//!   `UpdateSchedule`) and a rescind deletes it ([`Timers::delete`]: `DeleteSchedule`, a
//!   missing schedule is fine).
//! - `ScheduleExpression` = [`at_expression`]: `at(yyyy-mm-ddThh:mm:ss)` with
//!   `ScheduleExpressionTimezone: UTC`, the instant rounded **up** to the second (Scheduler has
//!   no sub-second precision, and a wake-up must not come early). `FlexibleTimeWindow: OFF`,
//!   `ActionAfterCompletion: DELETE` (a fired schedule removes itself).
//! - Target: the worker-events queue with the scheduler's role, `SqsParameters.MessageGroupId`
//!   = the worker (the queue's group), `Input` = [`wake_up`]`(timer)`, the very nudge the local
//!   runner sends for a due timer. Scheduler cannot set a deduplication id: the queue
//!   deduplicates on content, and the nudge's trace holds the timer's name and instant, so two
//!   real wake-ups never merge while a double delivery of one does. `RetryPolicy` (185
//!   attempts within a day) and `DeadLetterConfig` (the schedules' standard DLQ) on the target.
//! - The exact [`TimerSpec`] (sub-second instant, the original name) is kept as JSON in the
//!   schedule's `Description`, which is what [`Timers::next`], [`Timers::worker_timers`] and
//!   [`Timers::take_due`] return.
//!
//! # What differs from the SQLite timers
//!
//! - **Scheduler fires by itself**, within the minute, at least once, into worker-events; the
//!   Lambda runtime never calls [`Timers::take_due`]. It is implemented honestly for
//!   reconciles and tests: list the group's schedules, and take (delete) those due at or before
//!   `now`, earliest first; a schedule another caller deleted first is not returned, so each is
//!   taken once. Run beside Scheduler, a timer may be delivered by both: harmless, the
//!   pipeline decides again.
//! - An instant already past when put: Scheduler runs such a schedule at once; the port's
//!   "due" is the same.
//! - [`Timers::worker_timers`] looks up the worker's five deterministic names
//!   ([`TimerSpec::name_for`] of each kind) with `GetSchedule`, so it needs no listing; a timer
//!   put under a name of another form is found by [`Timers::next`] only.
//! - Not atomic across timers: each call is one or a few Scheduler requests.
//!
//! # IAM
//!
//! `scheduler:CreateSchedule`, `UpdateSchedule`, `DeleteSchedule`, `GetSchedule` on
//! `schedule/<group>/*` and `iam:PassRole` of the scheduler's role (put, delete,
//! worker_timers); [`Timers::next`] and [`Timers::take_due`] also `scheduler:ListSchedules`
//! (no resource-level restriction). [`create_schedule_group`] needs
//! `scheduler:CreateScheduleGroup` / `GetScheduleGroup`.

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, ScheduleState, SqsParameters, Target,
};
use hrsync_core::{TimerKind, WorkerKey};
use hrsync_pipeline::ports::{Nudge, QueueError, TimerSpec, Timers, timer_kind_str};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::queue::{aws_error, message_group_id, stable_hash};

/// Scheduler's longest schedule name.
pub const MAX_SCHEDULE_NAME_CHARS: usize = 64;

/// Scheduler's longest description (which holds the timer).
const MAX_DESCRIPTION_CHARS: usize = 512;

/// The target's retry policy: Scheduler's maximum attempts, within a day (a leaver's cut-off is
/// worth a day of retries; then the schedules' DLQ and its alarm).
pub const RETRY_ATTEMPTS: i32 = 185;
pub const RETRY_MAX_AGE_SECONDS: i32 = 86_400;

/// Where the schedules deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTarget {
    /// The worker-events FIFO queue (content-based deduplication).
    pub queue_arn: String,
    /// The role Scheduler assumes to send to it (and to the DLQ).
    pub role_arn: String,
    /// The standard queue for wake-ups Scheduler gave up on.
    pub dead_letter_arn: String,
}

/// [`Timers`] on EventBridge Scheduler one-time schedules in one group.
#[derive(Debug, Clone)]
pub struct SchedulerTimers {
    client: Client,
    group: String,
    /// `None`: this process reads and deletes timers but sets none (the operator commands).
    target: Option<TimerTarget>,
}

impl SchedulerTimers {
    pub fn new(client: Client, group: impl Into<String>, target: TimerTarget) -> Self {
        Self {
            client,
            group: group.into(),
            target: Some(target),
        }
    }

    /// Timers that can be listed, taken and deleted, but not set: for a process that only
    /// looks (`hrsync status` against a stack); setting one is an error saying so.
    pub fn reading(client: Client, group: impl Into<String>) -> Self {
        Self {
            client,
            group: group.into(),
            target: None,
        }
    }

    /// The schedule group.
    pub fn group(&self) -> &str {
        &self.group
    }

    fn target(&self, timer: &TimerSpec) -> Result<Target, QueueError> {
        let Some(target) = &self.target else {
            return Err(QueueError::Backend(
                "this process cannot set timers (it has no schedule target)".into(),
            ));
        };
        let input = serde_json::to_string(&wake_up(timer))
            .map_err(|e| QueueError::Backend(format!("a nudge does not serialize: {e}")))?;
        Target::builder()
            .arn(&target.queue_arn)
            .role_arn(&target.role_arn)
            .input(input)
            .sqs_parameters(
                SqsParameters::builder()
                    .message_group_id(message_group_id(&timer.worker))
                    .build(),
            )
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(RETRY_ATTEMPTS)
                    .maximum_event_age_in_seconds(RETRY_MAX_AGE_SECONDS)
                    .build(),
            )
            .dead_letter_config(
                DeadLetterConfig::builder()
                    .arn(&target.dead_letter_arn)
                    .build(),
            )
            .build()
            .map_err(|e| QueueError::Backend(format!("a schedule target: {e}")))
    }

    /// The timer a schedule holds; `None` when there is no such schedule.
    async fn read(&self, schedule: &str) -> Result<Option<TimerSpec>, QueueError> {
        match self
            .client
            .get_schedule()
            .group_name(&self.group)
            .name(schedule)
            .send()
            .await
        {
            Ok(found) => {
                let description = found.description().unwrap_or_default();
                serde_json::from_str(description).map(Some).map_err(|e| {
                    QueueError::Decode(format!(
                        "schedule {schedule} of group {} holds no timer: {e}",
                        self.group
                    ))
                })
            }
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(aws_error("Scheduler GetSchedule", &e)),
        }
    }

    /// Every timer of the group (`ListSchedules`, then `GetSchedule` each), earliest first,
    /// with its schedule's name.
    async fn all(&self) -> Result<Vec<(String, TimerSpec)>, QueueError> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_schedules()
            .group_name(&self.group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("Scheduler ListSchedules", &e))?;
            names.extend(page.schedules.into_iter().filter_map(|s| s.name));
        }
        let mut timers = Vec::new();
        for name in names {
            // Gone meanwhile (fired, or taken by someone else): not listed.
            if let Some(timer) = self.read(&name).await? {
                timers.push((name, timer));
            }
        }
        timers.sort_by(|(_, a), (_, b)| (a.at, &a.name).cmp(&(b.at, &b.name)));
        Ok(timers)
    }

    /// Deletes a schedule; false if it was not there.
    async fn remove(&self, schedule: &str) -> Result<bool, QueueError> {
        match self
            .client
            .delete_schedule()
            .group_name(&self.group)
            .name(schedule)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(aws_error("Scheduler DeleteSchedule", &e)),
        }
    }
}

impl Timers for SchedulerTimers {
    async fn put(&self, timer: &TimerSpec) -> Result<(), QueueError> {
        let name = schedule_name(&timer.name);
        let expression = at_expression(timer.at)?;
        let description = serde_json::to_string(timer)
            .map_err(|e| QueueError::Backend(format!("a timer does not serialize: {e}")))?;
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(QueueError::Backend(format!(
                "timer {} is too long to keep in a schedule's description ({MAX_DESCRIPTION_CHARS} characters)",
                name
            )));
        }
        let target = self.target(timer)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| QueueError::Backend(format!("a flexible time window: {e}")))?;
        let created = self
            .client
            .create_schedule()
            .group_name(&self.group)
            .name(&name)
            .description(&description)
            .schedule_expression(&expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window.clone())
            .action_after_completion(ActionAfterCompletion::Delete)
            .state(ScheduleState::Enabled)
            .target(target.clone())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // It exists: move it (UpdateSchedule replaces every field).
            Err(e) if e.code() == Some("ConflictException") => self
                .client
                .update_schedule()
                .group_name(&self.group)
                .name(&name)
                .description(&description)
                .schedule_expression(&expression)
                .schedule_expression_timezone("UTC")
                .flexible_time_window(window)
                .action_after_completion(ActionAfterCompletion::Delete)
                .state(ScheduleState::Enabled)
                .target(target)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_error("Scheduler UpdateSchedule", &e)),
            Err(e) => Err(aws_error("Scheduler CreateSchedule", &e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), QueueError> {
        self.remove(&schedule_name(name)).await.map(|_| ())
    }

    /// See the module's doc: Scheduler fires on its own; this takes what is due and not fired.
    async fn take_due(&self, now: Timestamp) -> Result<Vec<TimerSpec>, QueueError> {
        let mut taken = Vec::new();
        for (schedule, timer) in self.all().await? {
            if timer.at > now {
                break;
            }
            if self.remove(&schedule).await? {
                taken.push(timer);
            }
        }
        Ok(taken)
    }

    async fn next(&self, limit: usize) -> Result<Vec<TimerSpec>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .all()
            .await?
            .into_iter()
            .take(limit)
            .map(|(_, t)| t)
            .collect())
    }

    async fn worker_timers(&self, worker: &WorkerKey) -> Result<Vec<TimerSpec>, QueueError> {
        let mut timers = Vec::new();
        for kind in TimerKind::ALL {
            let name = TimerSpec::name_for(worker, kind);
            if let Some(timer) = self.read(&schedule_name(&name)).await?
                && timer.worker == *worker
            {
                timers.push(timer);
            }
        }
        timers.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
        Ok(timers)
    }
}

fn schedule_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The schedule of the timer `name`: the name itself when Scheduler accepts it (1 to 64 of
/// `[0-9a-zA-Z-_.]`), otherwise the name with other characters as `_`, cut to leave room for
/// `-` and a hash of the whole name: `hr:1#leave` -> `hr_1_leave-<32 hex>`. Deterministic, and
/// two timer names never share a schedule (short of a 128-bit hash collision).
pub fn schedule_name(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= MAX_SCHEDULE_NAME_CHARS
        && name.chars().all(schedule_name_char)
    {
        return name.to_owned();
    }
    let hash = stable_hash(name);
    let keep = MAX_SCHEDULE_NAME_CHARS - hash.len() - 1;
    let prefix: String = name
        .chars()
        .map(|c| if schedule_name_char(c) { c } else { '_' })
        .take(keep)
        .collect();
    format!("{prefix}-{hash}")
}

/// `at(yyyy-mm-ddThh:mm:ss)` in UTC for `at` rounded up to the whole second (Scheduler's
/// precision; a wake-up may be late, never early). Years outside 1970-9999 are refused:
/// Scheduler's format has four digits, and moto does not check it.
pub fn at_expression(at: Timestamp) -> Result<String, QueueError> {
    let second = at.as_second() + i64::from(at.subsec_nanosecond() > 0);
    let rounded = Timestamp::from_second(second)
        .map_err(|e| QueueError::Backend(format!("timer instant {at} out of range: {e}")))?;
    let utc = rounded.to_zoned_datetime(TimeZone::UTC);
    if !(1970..=9999).contains(&utc.year()) {
        return Err(QueueError::Backend(format!(
            "timer instant {at} is outside what a schedule can hold (years 1970-9999)"
        )));
    }
    Ok(format!("at({})", utc.strftime("%Y-%m-%dT%H:%M:%S")))
}

/// The nudge a timer's schedule delivers to worker-events: the one the local runner sends for
/// a due timer (`reason` = `timer <kind> at <at>`, `trace` = `timer:<name>@<at>`), unique per
/// timer name and instant because the queue deduplicates on content.
pub fn wake_up(timer: &TimerSpec) -> Nudge {
    Nudge::new(
        timer.worker.clone(),
        format!("timer {} at {}", timer_kind_str(timer.kind), timer.at),
        format!("timer:{}@{}", timer.name, timer.at),
    )
}

/// Creates the timers' schedule group (like the template's `TimerScheduleGroup`) and returns
/// its ARN; an existing group is fine. For tests and local demos: production groups come from
/// the template.
pub async fn create_schedule_group(client: &Client, name: &str) -> Result<String, QueueError> {
    match client.create_schedule_group().name(name).send().await {
        Ok(created) => Ok(created.schedule_group_arn),
        Err(e) if e.code() == Some("ConflictException") => {
            let found = client
                .get_schedule_group()
                .name(name)
                .send()
                .await
                .map_err(|e| aws_error("Scheduler GetScheduleGroup", &e))?;
            found
                .arn
                .ok_or_else(|| QueueError::Backend(format!("schedule group {name} has no ARN")))
        }
        Err(e) => Err(aws_error("Scheduler CreateScheduleGroup", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn valid_names_are_kept_others_sanitized_with_a_hash() {
        assert_eq!(schedule_name("hr-1_leave.v2"), "hr-1_leave.v2");
        let name = schedule_name("hr:1#leave");
        assert!(name.starts_with("hr_1_leave-"), "{name}");
        assert_eq!(name.len(), "hr_1_leave-".len() + 32);
        assert_eq!(name, schedule_name("hr:1#leave"), "deterministic");
        assert_ne!(name, schedule_name("hr_1_leave"));
        assert_ne!(name, schedule_name("hr:1#leavE"));

        let long = format!("personio:{}#remove_access", "9".repeat(80));
        for odd in [long.as_str(), "", "ü", &"a".repeat(65)] {
            let name = schedule_name(odd);
            assert!(name.len() <= MAX_SCHEDULE_NAME_CHARS, "{name}");
            assert!(name.chars().all(schedule_name_char), "{name}");
        }
        assert_ne!(
            schedule_name(&format!("{long}1")),
            schedule_name(&format!("{long}2"))
        );
    }

    #[test]
    fn at_expressions_are_utc_and_rounded_up() {
        assert_eq!(
            at_expression(at("2026-03-31T06:00:00Z")).unwrap(),
            "at(2026-03-31T06:00:00)"
        );
        assert_eq!(
            at_expression(at("2026-03-31T17:00:00+02:00")).unwrap(),
            "at(2026-03-31T15:00:00)"
        );
        assert_eq!(
            at_expression(at("2026-03-15T08:00:00.5Z")).unwrap(),
            "at(2026-03-15T08:00:01)"
        );
        assert_eq!(
            at_expression(at("2026-12-31T23:59:59.000000001Z")).unwrap(),
            "at(2027-01-01T00:00:00)"
        );
        assert!(at_expression(at("1969-12-31T23:59:59Z")).is_err());
        assert!(at_expression(Timestamp::MAX).is_err());
        assert_eq!(
            at_expression(at("9999-12-30T00:00:00Z")).unwrap(),
            "at(9999-12-30T00:00:00)"
        );
    }

    #[test]
    fn the_wake_up_is_the_runners_nudge() {
        let timer = TimerSpec::new(
            WorkerKey::new("hr", "1"),
            TimerKind::Leave,
            at("2026-03-31T06:00:00Z"),
        );
        let nudge = wake_up(&timer);
        assert_eq!(nudge.reason, "timer leave at 2026-03-31T06:00:00Z");
        assert_eq!(nudge.trace, "timer:hr:1#leave@2026-03-31T06:00:00Z");
        let moved = TimerSpec {
            at: at("2026-04-01T06:00:00Z"),
            ..timer.clone()
        };
        assert_ne!(
            serde_json::to_string(&wake_up(&moved)).unwrap(),
            serde_json::to_string(&nudge).unwrap(),
            "a moved timer is another message for content-based deduplication"
        );
    }
}
