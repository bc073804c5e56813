//! The instants a worker's account changes at: the leave instant (the `leave` timer, or
//! `left_at` once it has passed), the start instant and the pre-hire window, across DST
//! changes, half-hour and +14 zones and leap days.
//!
//! Every expected instant is a literal worked out by hand from the tz rules, never computed
//! with jiff here. The 2026 switches used below:
//!
//! | zone               | standard | summer | summer starts (local)        | summer ends (local)          |
//! |--------------------|----------|--------|------------------------------|------------------------------|
//! | America/New_York   | -05:00   | -04:00 | Sun 2026-03-08 02:00 -> 03:00 | Sun 2026-11-01 02:00 -> 01:00 |
//! | Europe/London      | +00:00   | +01:00 | Sun 2026-03-29 01:00 -> 02:00 | Sun 2026-10-25 02:00 -> 01:00 |
//! | Australia/Sydney   | +10:00   | +11:00 | Sun 2026-10-04 02:00 -> 03:00 | Sun 2026-04-05 03:00 -> 02:00 |
//! | Asia/Kolkata       | +05:30   | none   |                              |                              |
//! | Pacific/Kiritimati | +14:00   | none   |                              |                              |
//!
//! A wall-clock time skipped by a jump forward resolves to the instant after the gap (02:30
//! becomes 03:30 summer time); a repeated one resolves to its first (summer-time) occurrence.

use hrsync_core::{
    Config, Decision, Lifecycle, NothingTaken, Presence, Status, Timer, TimerKind, Transition,
    Worker, WorkerKey, WorkerState, decide,
};
use jiff::civil::{Date, Time};
use jiff::{SignedDuration, Timestamp};

fn ts(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("bad timestamp literal {text}: {e}"))
}

fn day(text: &str) -> Date {
    text.parse()
        .unwrap_or_else(|e| panic!("bad date literal {text}: {e}"))
}

fn clock(text: &str) -> Time {
    format!("{text}:00")
        .parse()
        .unwrap_or_else(|e| panic!("bad time literal {text}: {e}"))
}

/// A minimal config with the lifecycle keys under test.
fn config(lifecycle: &str) -> Config {
    let text = format!(
        r#"
[identity]
upn = ["{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}@acme.com"]

[lifecycle]
{lifecycle}
"#
    );
    Config::parse(&text, "hrsync.toml").unwrap_or_else(|e| panic!("test config: {e}"))
}

fn worker(zone: Option<&str>, as_of: Timestamp) -> Worker {
    let mut worker = Worker::new(WorkerKey::new("hr", "1001"), "Ada", "Lovelace", as_of);
    worker.time_zone = zone.map(str::to_owned);
    worker.worker_type = Some("Employee".into());
    worker
}

fn decide_at(worker: &Worker, state: &WorkerState, config: &Config, now: Timestamp) -> Decision {
    decide(worker, state, config, now, &NothingTaken)
        .unwrap_or_else(|e| panic!("decide at {now}: {e}"))
}

fn timer_at(decision: &Decision, kind: TimerKind) -> Option<Timestamp> {
    decision
        .timers
        .iter()
        .find(|timer| timer.kind == kind)
        .map(|timer| timer.at)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

const SECOND: SignedDuration = SignedDuration::from_secs(1);

/// One leaver: the worker's zone (or none), the config's default zone (or unset: UTC), the
/// last day, `lifecycle.leave_at`, the record's `termination_time`, and the leave instant.
struct LeaveRow {
    zone: Option<&'static str>,
    default_zone: Option<&'static str>,
    last_day: &'static str,
    leave_at: &'static str,
    termination_time: Option<&'static str>,
    expected: &'static str,
}

const fn row(
    zone: &'static str,
    last_day: &'static str,
    leave_at: &'static str,
    expected: &'static str,
) -> LeaveRow {
    LeaveRow {
        zone: Some(zone),
        default_zone: None,
        last_day,
        leave_at,
        termination_time: None,
        expected,
    }
}

/// A row with every column: the record's zone, the config's default zone, the last day,
/// `leave_at`, the record's `termination_time`, and the leave instant.
const fn full(
    zone: Option<&'static str>,
    default_zone: Option<&'static str>,
    last_day: &'static str,
    leave_at: &'static str,
    termination_time: Option<&'static str>,
    expected: &'static str,
) -> LeaveRow {
    LeaveRow {
        zone,
        default_zone,
        last_day,
        leave_at,
        termination_time,
        expected,
    }
}

#[rustfmt::skip]
const LEAVE_ROWS: &[LeaveRow] = &[
    // America/New_York, spring forward on Sunday 2026-03-08.
    row("America/New_York", "2026-03-06", "17:00", "2026-03-06T22:00:00Z"), // EST
    row("America/New_York", "2026-03-08", "01:59", "2026-03-08T06:59:00Z"), // last EST minute
    row("America/New_York", "2026-03-08", "02:30", "2026-03-08T07:30:00Z"), // gap: 03:30 EDT
    row("America/New_York", "2026-03-08", "03:00", "2026-03-08T07:00:00Z"), // first EDT minute
    row("America/New_York", "2026-03-08", "17:00", "2026-03-08T21:00:00Z"), // EDT
    row("America/New_York", "2026-03-09", "17:00", "2026-03-09T21:00:00Z"), // EDT
    // America/New_York, fall back on Sunday 2026-11-01.
    row("America/New_York", "2026-10-30", "17:00", "2026-10-30T21:00:00Z"), // EDT
    row("America/New_York", "2026-11-01", "00:30", "2026-11-01T04:30:00Z"), // EDT
    row("America/New_York", "2026-11-01", "01:30", "2026-11-01T05:30:00Z"), // repeated: first, EDT
    row("America/New_York", "2026-11-01", "02:00", "2026-11-01T07:00:00Z"), // EST
    row("America/New_York", "2026-11-01", "17:00", "2026-11-01T22:00:00Z"), // EST
    row("America/New_York", "2028-02-29", "17:00", "2028-02-29T22:00:00Z"), // leap day, EST
    // Europe/London, spring forward on Sunday 2026-03-29, fall back on Sunday 2026-10-25.
    row("Europe/London", "2026-03-27", "17:00", "2026-03-27T17:00:00Z"), // GMT
    row("Europe/London", "2026-03-29", "01:30", "2026-03-29T01:30:00Z"), // gap: 02:30 BST
    row("Europe/London", "2026-03-29", "17:00", "2026-03-29T16:00:00Z"), // BST
    row("Europe/London", "2026-07-01", "23:59", "2026-07-01T22:59:00Z"), // BST
    row("Europe/London", "2026-10-23", "17:00", "2026-10-23T16:00:00Z"), // BST
    row("Europe/London", "2026-10-25", "01:30", "2026-10-25T00:30:00Z"), // repeated: first, BST
    row("Europe/London", "2026-10-25", "17:00", "2026-10-25T17:00:00Z"), // GMT
    row("Europe/London", "2028-02-29", "17:00", "2028-02-29T17:00:00Z"), // leap day, GMT
    // Australia/Sydney: summer time ends on Sunday 2026-04-05 (03:00 AEDT -> 02:00 AEST) ...
    row("Australia/Sydney", "2026-04-03", "17:00", "2026-04-03T06:00:00Z"), // AEDT
    row("Australia/Sydney", "2026-04-05", "02:30", "2026-04-04T15:30:00Z"), // repeated: first, AEDT
    row("Australia/Sydney", "2026-04-05", "17:00", "2026-04-05T07:00:00Z"), // AEST
    row("Australia/Sydney", "2026-04-06", "00:00", "2026-04-05T14:00:00Z"), // AEST midnight
    // ... and starts on Sunday 2026-10-04 (02:00 AEST -> 03:00 AEDT).
    row("Australia/Sydney", "2026-10-02", "17:00", "2026-10-02T07:00:00Z"), // AEST
    row("Australia/Sydney", "2026-10-04", "02:30", "2026-10-03T16:30:00Z"), // gap: 03:30 AEDT
    row("Australia/Sydney", "2026-10-04", "17:00", "2026-10-04T06:00:00Z"), // AEDT
    row("Australia/Sydney", "2026-10-05", "09:00", "2026-10-04T22:00:00Z"), // AEDT
    row("Australia/Sydney", "2028-02-29", "17:00", "2028-02-29T06:00:00Z"), // leap day, AEDT
    // Asia/Kolkata: a half-hour offset, no DST (the US switch day changes nothing here).
    row("Asia/Kolkata", "2026-03-08", "17:00", "2026-03-08T11:30:00Z"),
    row("Asia/Kolkata", "2026-06-30", "02:30", "2026-06-29T21:00:00Z"),
    row("Asia/Kolkata", "2026-12-31", "23:59", "2026-12-31T18:29:00Z"),
    // Pacific/Kiritimati: UTC+14, the last day ends while most of the world is on the day before.
    row("Pacific/Kiritimati", "2026-12-31", "17:00", "2026-12-31T03:00:00Z"),
    row("Pacific/Kiritimati", "2027-01-01", "00:30", "2026-12-31T10:30:00Z"),
    row("Pacific/Kiritimati", "2028-02-29", "17:00", "2028-02-29T03:00:00Z"),
    row("Pacific/Kiritimati", "2028-02-29", "08:00", "2028-02-28T18:00:00Z"),
    // No zone on the record: the config's default_time_zone, or UTC when that is unset.
    full(None, None, "2028-02-29", "17:00", None, "2028-02-29T17:00:00Z"),
    full(None, Some("America/New_York"), "2026-03-08", "17:00", None, "2026-03-08T21:00:00Z"),
    full(None, Some("Australia/Sydney"), "2026-04-05", "17:00", None, "2026-04-05T07:00:00Z"),
    full(None, Some("Europe/London"), "2026-07-01", "17:00", None, "2026-07-01T16:00:00Z"),
    // The record's zone wins over the default.
    full(Some("Asia/Kolkata"), Some("America/New_York"), "2026-03-08", "17:00", None, "2026-03-08T11:30:00Z"),
    // The record's termination_time overrides lifecycle.leave_at.
    full(Some("America/New_York"), None, "2026-06-15", "17:00", Some("09:15"), "2026-06-15T13:15:00Z"),
    full(Some("America/New_York"), None, "2026-03-08", "17:00", Some("02:30"), "2026-03-08T07:30:00Z"),
    full(Some("Europe/London"), None, "2026-10-25", "09:00", Some("23:30"), "2026-10-25T23:30:00Z"),
    full(None, Some("Pacific/Kiritimati"), "2028-03-01", "17:00", Some("00:00"), "2028-02-29T10:00:00Z"),
];

fn leave_config(row: &LeaveRow) -> Config {
    let mut lifecycle = format!("leave_at = \"{}\"\n", row.leave_at);
    if let Some(zone) = row.default_zone {
        lifecycle.push_str(&format!("default_time_zone = \"{zone}\"\n"));
    }
    config(&lifecycle)
}

fn leaver(row: &LeaveRow, as_of: Timestamp) -> Worker {
    let mut worker = worker(row.zone, as_of);
    worker.hire_date = Some(day("2020-01-06"));
    worker.termination_date = Some(day(row.last_day));
    worker.termination_time = row.termination_time.map(clock);
    worker.termination_type = Some("Voluntary".into());
    worker
}

fn describe(row: &LeaveRow) -> String {
    format!(
        "{} (default {}) last day {} leave_at {} termination_time {}",
        row.zone.unwrap_or("-"),
        row.default_zone.unwrap_or("-"),
        row.last_day,
        row.leave_at,
        row.termination_time.unwrap_or("-"),
    )
}

#[test]
fn leave_timer_fires_at_the_local_cut_off() {
    for row in LEAVE_ROWS {
        let config = leave_config(row);
        let expected = ts(row.expected);
        let now = expected - days(10);
        let decision = decide_at(&leaver(row, now), &WorkerState::default(), &config, now);
        let what = describe(row);
        assert_eq!(
            decision.time_zone,
            row.zone.or(row.default_zone).unwrap_or("UTC"),
            "{what}"
        );
        assert_eq!(decision.lifecycle, Lifecycle::LeaveScheduled, "{what}");
        assert_eq!(
            decision.timers,
            vec![Timer {
                at: expected,
                kind: TimerKind::Leave
            }],
            "{what}"
        );
        assert_eq!(decision.state.left_at, None, "{what}");
    }
}

#[test]
fn left_at_is_the_leave_instant_once_it_has_passed() {
    for row in LEAVE_ROWS {
        let config = leave_config(row);
        let expected = ts(row.expected);
        let what = describe(row);

        // Scheduled ten days ahead, then woken up at the cut-off itself.
        let before = expected - days(10);
        let scheduled = decide_at(
            &leaver(row, before),
            &WorkerState::default(),
            &config,
            before,
        );

        let last_second = decide_at(
            &leaver(row, before),
            &scheduled.state,
            &config,
            expected - SECOND,
        );
        assert_eq!(last_second.lifecycle, Lifecycle::LeaveScheduled, "{what}");
        assert!(
            last_second.desired.as_ref().is_some_and(|d| d.enabled),
            "{what}: still enabled one second before the cut-off"
        );

        let at_cut_off = decide_at(&leaver(row, before), &last_second.state, &config, expected);
        assert_eq!(at_cut_off.transition, Transition::Leave, "{what}");
        assert_eq!(at_cut_off.lifecycle, Lifecycle::Terminated, "{what}");
        assert_eq!(at_cut_off.state.left_at, Some(expected), "{what}");
        assert!(
            at_cut_off.desired.as_ref().is_some_and(|d| !d.enabled),
            "{what}: disabled at the cut-off"
        );
        assert_eq!(timer_at(&at_cut_off, TimerKind::Leave), None, "{what}");

        // First seen long after leaving: the instant is still the local cut-off, not `now`.
        let late = expected + days(40);
        let first_seen_late = decide_at(&leaver(row, late), &WorkerState::default(), &config, late);
        assert_eq!(first_seen_late.lifecycle, Lifecycle::Terminated, "{what}");
        assert_eq!(first_seen_late.state.left_at, Some(expected), "{what}");
    }
}

fn immediate_leaver(termination_type: &str, now: Timestamp) -> Worker {
    let mut worker = worker(Some("America/New_York"), now);
    worker.hire_date = Some(day("2021-04-12"));
    worker.termination_date = Some(day("2026-07-31"));
    worker.termination_type = Some(termination_type.into());
    worker
}

#[test]
fn involuntary_termination_cuts_off_at_now_not_at_leave_at() {
    let config = config("leave_at = \"17:00\"");
    let now = ts("2026-07-10T09:15:27Z");
    for kind in ["Involuntary", "involuntary", "INVOLUNTARY", " Involuntary "] {
        let decision = decide_at(
            &immediate_leaver(kind, now),
            &WorkerState::default(),
            &config,
            now,
        );
        assert_eq!(decision.lifecycle, Lifecycle::Terminated, "{kind:?}");
        assert_eq!(decision.state.left_at, Some(now), "{kind:?}");
        assert_eq!(timer_at(&decision, TimerKind::Leave), None, "{kind:?}");

        // The cut-off stays where it happened on every later decision.
        let later = now + days(3);
        let again = decide_at(
            &immediate_leaver(kind, now),
            &decision.state,
            &config,
            later,
        );
        assert_eq!(again.lifecycle, Lifecycle::Terminated, "{kind:?}");
        assert_eq!(again.state.left_at, Some(now), "{kind:?}");
    }
}

#[test]
fn involuntary_cut_off_disables_an_active_account_at_once() {
    let config = config("leave_at = \"17:00\"");
    let hired = ts("2026-05-01T12:00:00Z");
    let mut active = immediate_leaver("Involuntary", hired);
    active.termination_date = None;
    active.termination_type = None;
    let joined = decide_at(&active, &WorkerState::default(), &config, hired);
    assert!(joined.desired.as_ref().is_some_and(|d| d.enabled));

    let now = ts("2026-07-10T09:15:27Z");
    let decision = decide_at(
        &immediate_leaver("involuntary", now),
        &joined.state,
        &config,
        now,
    );
    assert_eq!(decision.transition, Transition::Leave);
    assert_eq!(decision.lifecycle, Lifecycle::Terminated);
    assert_eq!(decision.state.left_at, Some(now));
    let desired = decision
        .desired
        .expect("the account is still held, disabled");
    assert_eq!(desired.presence, Presence::IfExists);
    assert!(!desired.enabled);
}

#[test]
fn voluntary_termination_waits_for_leave_at() {
    let config = config("leave_at = \"17:00\"");
    let now = ts("2026-07-10T09:15:27Z");
    let decision = decide_at(
        &immediate_leaver("Voluntary", now),
        &WorkerState::default(),
        &config,
        now,
    );
    assert_eq!(decision.lifecycle, Lifecycle::LeaveScheduled);
    // 2026-07-31 17:00 EDT.
    assert_eq!(
        timer_at(&decision, TimerKind::Leave),
        Some(ts("2026-07-31T21:00:00Z"))
    );
}

#[test]
fn configured_immediate_types_match_in_any_case() {
    let config = config("immediate_termination_types = [\"Gross Misconduct\"]");
    let now = ts("2026-07-10T09:15:27Z");
    let decision = decide_at(
        &immediate_leaver("gross misconduct", now),
        &WorkerState::default(),
        &config,
        now,
    );
    assert_eq!(decision.state.left_at, Some(now));
    // "Involuntary" is no longer immediate once the list is replaced.
    let decision = decide_at(
        &immediate_leaver("Involuntary", now),
        &WorkerState::default(),
        &config,
        now,
    );
    assert_eq!(decision.lifecycle, Lifecycle::LeaveScheduled);
    assert_eq!(decision.state.left_at, None);
    assert_eq!(
        timer_at(&decision, TimerKind::Leave),
        Some(ts("2026-07-31T21:00:00Z"))
    );
}

#[test]
fn involuntary_type_left_over_from_an_earlier_employment_does_not_cut_off_a_rehire() {
    let config = config("leave_at = \"17:00\"");
    let now = ts("2026-07-10T09:15:27Z");
    let mut rehired = immediate_leaver("Involuntary", now);
    rehired.termination_date = Some(day("2024-02-29"));
    rehired.hire_date = Some(day("2025-01-06"));
    let decision = decide_at(&rehired, &WorkerState::default(), &config, now);
    assert_eq!(decision.lifecycle, Lifecycle::Active);
    assert_eq!(decision.state.left_at, None);

    // Without any termination date, an involuntary type alone does not end the employment.
    rehired.termination_date = None;
    let decision = decide_at(&rehired, &WorkerState::default(), &config, now);
    assert_eq!(decision.lifecycle, Lifecycle::Active);
}

/// One joiner: zone, hire date, `lifecycle.start_at`, `lifecycle.prehire_days`, the start
/// instant, and the instant the pre-hire window opens (same wall-clock time, N days before).
struct StartRow {
    zone: Option<&'static str>,
    default_zone: Option<&'static str>,
    hire_date: &'static str,
    start_at: &'static str,
    prehire_days: u32,
    start: &'static str,
    window_opens: &'static str,
}

const fn start_row(
    zone: &'static str,
    hire_date: &'static str,
    start_at: &'static str,
    prehire_days: u32,
    start: &'static str,
    window_opens: &'static str,
) -> StartRow {
    StartRow {
        zone: Some(zone),
        default_zone: None,
        hire_date,
        start_at,
        prehire_days,
        start,
        window_opens,
    }
}

#[rustfmt::skip]
const START_ROWS: &[StartRow] = &[
    // Start in EDT, window opens in EST: the same 09:00, one hour later in UTC.
    start_row("America/New_York", "2026-03-09", "09:00", 7, "2026-03-09T13:00:00Z", "2026-03-02T14:00:00Z"),
    // Start in EST, window opens on the repeated 01:30: its first (EDT) occurrence.
    start_row("America/New_York", "2026-11-08", "01:30", 7, "2026-11-08T06:30:00Z", "2026-11-01T05:30:00Z"),
    // Start in EDT, window opens in the spring gap: 02:30 does not exist, 03:30 EDT does.
    start_row("America/New_York", "2026-03-15", "02:30", 7, "2026-03-15T06:30:00Z", "2026-03-08T07:30:00Z"),
    // Start in the spring gap (02:30 -> 03:30 EDT); the window still opens at the configured
    // 02:30 on its own day (EST), not at the shifted 03:30.
    start_row("America/New_York", "2026-03-08", "02:30", 7, "2026-03-08T07:30:00Z", "2026-03-01T07:30:00Z"),
    // No pre-hire window: it opens at the start.
    start_row("America/New_York", "2026-06-01", "09:00", 0, "2026-06-01T13:00:00Z", "2026-06-01T13:00:00Z"),
    // Midnight start in BST, window opens at midnight GMT.
    start_row("Europe/London", "2026-03-30", "00:00", 3, "2026-03-29T23:00:00Z", "2026-03-27T00:00:00Z"),
    start_row("Europe/London", "2026-10-26", "09:00", 7, "2026-10-26T09:00:00Z", "2026-10-19T08:00:00Z"),
    // Sydney: start in AEDT (October), window in AEST; and the reverse in April.
    start_row("Australia/Sydney", "2026-10-05", "09:00", 7, "2026-10-04T22:00:00Z", "2026-09-27T23:00:00Z"),
    start_row("Australia/Sydney", "2026-04-07", "08:00", 5, "2026-04-06T22:00:00Z", "2026-04-01T21:00:00Z"),
    start_row("Asia/Kolkata", "2026-01-05", "09:30", 10, "2026-01-05T04:00:00Z", "2025-12-26T04:00:00Z"),
    // A 1 March start at +14 is still 29 February in UTC; the window opens on 28 February UTC.
    start_row("Pacific/Kiritimati", "2028-03-01", "00:00", 1, "2028-02-29T10:00:00Z", "2028-02-28T10:00:00Z"),
    StartRow {
        zone: None,
        default_zone: None,
        hire_date: "2028-03-01",
        start_at: "00:00",
        prehire_days: 1,
        start: "2028-03-01T00:00:00Z",
        window_opens: "2028-02-29T00:00:00Z",
    },
    StartRow {
        zone: None,
        default_zone: Some("Australia/Sydney"),
        hire_date: "2026-04-06",
        start_at: "00:00",
        prehire_days: 2,
        start: "2026-04-05T14:00:00Z",
        window_opens: "2026-04-03T13:00:00Z",
    },
];

fn start_config(row: &StartRow) -> Config {
    let mut lifecycle = format!(
        "start_at = \"{}\"\nprehire_days = {}\n",
        row.start_at, row.prehire_days
    );
    if let Some(zone) = row.default_zone {
        lifecycle.push_str(&format!("default_time_zone = \"{zone}\"\n"));
    }
    config(&lifecycle)
}

fn joiner(row: &StartRow, as_of: Timestamp) -> Worker {
    let mut worker = worker(row.zone, as_of);
    worker.hire_date = Some(day(row.hire_date));
    worker
}

#[test]
fn start_and_prehire_timers_keep_the_local_wall_clock() {
    for row in START_ROWS {
        let config = start_config(row);
        let (start, window_opens) = (ts(row.start), ts(row.window_opens));
        let what = format!(
            "{} (default {}) hire {} at {} with prehire_days {}",
            row.zone.unwrap_or("-"),
            row.default_zone.unwrap_or("-"),
            row.hire_date,
            row.start_at,
            row.prehire_days
        );
        let now = window_opens - days(10);
        let decision = decide_at(&joiner(row, now), &WorkerState::default(), &config, now);
        assert_eq!(decision.lifecycle, Lifecycle::PreHire, "{what}");
        assert_eq!(
            decision.desired, None,
            "{what}: no account before the window"
        );
        assert_eq!(
            timer_at(&decision, TimerKind::Prehire),
            Some(window_opens),
            "{what}"
        );
        assert_eq!(timer_at(&decision, TimerKind::Start), Some(start), "{what}");
    }
}

#[test]
fn account_exists_disabled_in_the_window_and_is_enabled_at_the_start() {
    for row in START_ROWS.iter().filter(|row| row.prehire_days > 0) {
        let config = start_config(row);
        let (start, window_opens) = (ts(row.start), ts(row.window_opens));
        let what = format!(
            "{} hire {} at {}",
            row.zone.unwrap_or("-"),
            row.hire_date,
            row.start_at
        );
        let as_of = window_opens - days(10);
        let worker = joiner(row, as_of);

        let before = decide_at(
            &worker,
            &WorkerState::default(),
            &config,
            window_opens - SECOND,
        );
        assert_eq!(before.transition, Transition::Prehire, "{what}");
        assert_eq!(before.desired, None, "{what}");

        let opened = decide_at(&worker, &before.state, &config, window_opens);
        assert_eq!(opened.lifecycle, Lifecycle::PreHire, "{what}");
        let desired = opened.desired.as_ref().expect("created in the window");
        assert_eq!(desired.presence, Presence::Present, "{what}");
        assert!(!desired.enabled, "{what}: disabled until the start");
        assert_eq!(timer_at(&opened, TimerKind::Prehire), None, "{what}");
        assert_eq!(
            opened.timers,
            vec![Timer {
                at: start,
                kind: TimerKind::Start
            }],
            "{what}"
        );

        let last_second = decide_at(&worker, &opened.state, &config, start - SECOND);
        assert_eq!(last_second.lifecycle, Lifecycle::PreHire, "{what}");

        let started = decide_at(&worker, &last_second.state, &config, start);
        assert_eq!(started.transition, Transition::Join, "{what}");
        assert_eq!(started.lifecycle, Lifecycle::Active, "{what}");
        assert!(
            started.desired.as_ref().is_some_and(|d| d.enabled),
            "{what}"
        );
        assert!(started.timers.is_empty(), "{what}");
    }
}

#[test]
fn a_leaver_with_status_terminated_and_a_future_date_leaves_on_that_date() {
    // HR often flips the status the day the termination is entered; the date still rules.
    let config = config("leave_at = \"17:00\"\ndefault_time_zone = \"Europe/London\"");
    let now = ts("2028-02-20T10:00:00Z");
    let mut worker = worker(None, now);
    worker.status = Status::Terminated;
    worker.hire_date = Some(day("2019-09-02"));
    worker.termination_date = Some(day("2028-02-29"));
    let decision = decide_at(&worker, &WorkerState::default(), &config, now);
    assert_eq!(decision.lifecycle, Lifecycle::LeaveScheduled);
    assert_eq!(
        timer_at(&decision, TimerKind::Leave),
        Some(ts("2028-02-29T17:00:00Z"))
    );
}
