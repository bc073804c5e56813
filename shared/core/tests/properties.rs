//! Properties of the decision and the plan over random workers and random stored states:
//! convergence, idempotency, stale snapshots, no deletes unless configured, clean rehires,
//! unique identifiers within a run, well-formed timers, leavers never enabled, and no value
//! beyond Graph's limits ever desired.
//!
//! A stored state is produced the way the pipeline produces it: by deciding earlier random
//! snapshots of the same worker at earlier instants and, most of the time, applying their
//! plans (the directory stage may not have run yet).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use hrsync_core::limits::{MAX_CHARS, NOT_CLEARABLE, is_usage_location, max_chars};
use hrsync_core::{
    AppliedIdentity, Config, DecideError, Decision, Lifecycle, NothingTaken, Op, Presence, Status,
    Transition, Worker, WorkerKey, WorkerState, apply, decide, plan,
};
use jiff::civil::{Date, Time};
use jiff::{SignedDuration, Span, Timestamp};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;

/// The instant the properties are checked around; every generated date is relative to it.
static NOW: LazyLock<Timestamp> = LazyLock::new(|| {
    "2026-06-15T12:00:00Z"
        .parse()
        .expect("a valid timestamp literal")
});

fn today() -> Date {
    jiff::civil::date(2026, 6, 15)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// Config variants: what differs is the staged offboarding and the empty-attribute policy.
struct Variant {
    name: &'static str,
    delete_after_days: Option<u32>,
    directory: &'static str,
    lifecycle: &'static str,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "keep",
        delete_after_days: None,
        directory: "",
        lifecycle: "remove_access_after_days = 0",
    },
    Variant {
        name: "staged",
        delete_after_days: None,
        directory: "null_policy = \"clear\"",
        lifecycle: "remove_access_after_days = 5\ndisable_on_leave = true",
    },
    Variant {
        name: "delete-30",
        delete_after_days: Some(30),
        directory: "",
        lifecycle: "remove_access_after_days = 3\ndelete_after_days = 30",
    },
    Variant {
        name: "delete-0",
        delete_after_days: Some(0),
        directory: "null_policy = \"clear\"",
        lifecycle: "delete_after_days = 0",
    },
];

fn config_text(variant: &Variant) -> String {
    format!(
        r#"
[directory]
kind = "sandbox"
{directory}

[identity]
upn = [
  "{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}@acme.com",
  "{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}{{{{ n }}}}@acme.com",
]
mail = [
  "{{{{ (preferred_name or given_name)|slug }}}}.{{{{ family_name|slug }}}}@acme.com",
  "{{{{ (preferred_name or given_name)|slug }}}}.{{{{ family_name|slug }}}}{{{{ n }}}}@acme.com",
]
display_name = "{{{{ preferred_name or given_name }}}} {{{{ family_name }}}}"

[attributes]
department = "{{{{ department }}}}"
jobTitle = "{{{{ job_title }}}}"
usageLocation = "{{{{ country }}}}"
companyName = "Acme"

[[access]]
name = "everyone"
groups = ["g-all"]

[[access]]
name = "engineering"
when = "department == 'Engineering'"
groups = ["g-eng", "g-builders"]
licenses = ["sku-e5"]

[[access]]
name = "sales"
when = "department == 'Sales' and country in ['GB', 'US']"
groups = ["g-sales"]

[[access]]
name = "india"
when = "country == 'IN'"
groups = ["g-india"]
licenses = ["sku-e3"]

[[access]]
name = "contractors"
when = "worker_type == 'Contractor'"
groups = ["g-contractors"]

[lifecycle]
scope = "worker_type in ['Employee', 'Contractor']"
default_time_zone = "Europe/London"
prehire_days = 7
leave_at = "17:00"
{lifecycle}
"#,
        directory = variant.directory,
        lifecycle = variant.lifecycle,
    )
}

static CONFIGS: LazyLock<Vec<Config>> = LazyLock::new(|| {
    VARIANTS
        .iter()
        .map(|variant| {
            Config::parse(&config_text(variant), variant.name)
                .unwrap_or_else(|e| panic!("test config {}: {e}", variant.name))
        })
        .collect()
});

/// What the `[[access]]` rules above grant, written out independently of the engine.
fn granted(worker: &Worker) -> (BTreeSet<String>, BTreeSet<String>) {
    let department = worker.department.as_deref();
    let country = worker.country.as_deref();
    let mut groups = vec!["g-all"];
    let mut licenses = vec![];
    if department == Some("Engineering") {
        groups.extend(["g-eng", "g-builders"]);
        licenses.push("sku-e5");
    }
    if department == Some("Sales") && matches!(country, Some("GB" | "US")) {
        groups.push("g-sales");
    }
    if country == Some("IN") {
        groups.push("g-india");
        licenses.push("sku-e3");
    }
    if worker.worker_type.as_deref() == Some("Contractor") {
        groups.push("g-contractors");
    }
    let set = |items: Vec<&str>| items.into_iter().map(str::to_owned).collect();
    (set(groups), set(licenses))
}

const GIVEN: &[&str] = &["Ada", "José", "Zoë", "Mary Ann", "Li"];
const FAMILY: &[&str] = &["Lovelace", "García", "O'Brien", "van der Berg", "Nguyễn"];
const PREFERRED: &[Option<&str>] = &[None, None, Some("Sam"), Some("Jo")];
const TERMINATION_TYPES: &[Option<&str>] = &[
    None,
    Some("Voluntary"),
    Some("Involuntary"),
    Some("INVOLUNTARY"),
    Some("Retirement"),
];
const WORKER_TYPES: &[Option<&str>] = &[
    Some("Employee"),
    Some("Employee"),
    Some("Employee"),
    Some("Contractor"),
    Some("Intern"),
    None,
];
const DEPARTMENTS: &[Option<&str>] = &[
    None,
    Some("Engineering"),
    Some("Sales"),
    Some("Finance"),
    Some("People"),
];
const COUNTRIES: &[Option<&str>] = &[None, Some("GB"), Some("US"), Some("IN"), Some("AU")];
const ZONES: &[Option<&str>] = &[
    None,
    Some("America/New_York"),
    Some("Europe/London"),
    Some("Australia/Sydney"),
    Some("Asia/Kolkata"),
    Some("Pacific/Kiritimati"),
];
const MANAGERS: &[Option<&str>] = &[None, Some("2001"), Some("2002")];
const TITLES: &[Option<&str>] = &[None, Some("Engineer"), Some("Account Executive")];

fn text(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

fn date_at(offset_days: i64) -> Date {
    today()
        .checked_add(Span::new().days(offset_days))
        .expect("a date near today")
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        5 => Just(Status::Active),
        1 => Just(Status::Inactive),
        2 => Just(Status::Terminated),
        1 => Just(Status::Leave),
    ]
}

/// Any valid snapshot of worker `hr:<id>`, with dates around today and `as_of` up to 30 days
/// before [`NOW`].
fn worker_with_id(id: &'static str) -> impl Strategy<Value = Worker> {
    let who = (select(GIVEN), select(FAMILY), select(PREFERRED));
    let employment = (
        status(),
        proptest::option::weighted(0.9, -900i64..=60),
        proptest::option::weighted(0.5, -400i64..=90),
        proptest::option::weighted(0.3, (0i8..24, prop_oneof![Just(0i8), Just(30)])),
        select(TERMINATION_TYPES),
    );
    let org = (
        select(WORKER_TYPES),
        select(DEPARTMENTS),
        select(COUNTRIES),
        select(ZONES),
        select(MANAGERS),
        select(TITLES),
    );
    (who, employment, org, 0i64..=30 * 86_400).prop_map(
        move |(
            (given, family, preferred),
            (status, hire, termination, termination_time, termination_type),
            (worker_type, department, country, zone, manager, title),
            lag,
        )| {
            let mut worker = Worker::new(WorkerKey::new("hr", id), given, family, *NOW - secs(lag));
            worker.preferred_name = text(preferred);
            worker.status = status;
            // A worker who is not (yet) gone must have a hire date.
            let hire = hire.or((!status.is_ended()).then_some(-30));
            worker.hire_date = hire.map(date_at);
            worker.termination_date = termination.map(date_at);
            worker.termination_time = termination_time
                .map(|(hour, minute)| Time::new(hour, minute, 0, 0).expect("a valid time"));
            worker.termination_type = text(termination_type);
            worker.worker_type = text(worker_type);
            worker.department = text(department);
            worker.country = text(country);
            worker.time_zone = text(zone);
            worker.manager_id = text(manager);
            worker.job_title = text(title);
            worker
        },
    )
}

fn worker() -> impl Strategy<Value = Worker> {
    worker_with_id("1001")
}

/// An earlier snapshot, decided `days_before` days before [`NOW`] with `as_of` `lag`
/// seconds before that; `entra_ran` says whether its plan reached the directory.
#[derive(Debug, Clone)]
struct Step {
    worker: Worker,
    days_before: i64,
    lag: i64,
    entra_ran: bool,
}

fn history() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            worker(),
            1i64..=500,
            0i64..=2 * 86_400,
            proptest::bool::weighted(0.85),
        )
            .prop_map(|(worker, days_before, lag, entra_ran)| Step {
                worker,
                days_before,
                lag,
                entra_ran,
            }),
        0..=3,
    )
}

fn decide_now(
    worker: &Worker,
    state: &WorkerState,
    config: &Config,
    now: Timestamp,
) -> Result<Decision, TestCaseError> {
    decide(worker, state, config, now, &NothingTaken).map_err(|e| {
        TestCaseError::fail(format!(
            "decide failed at {now}: {e}\nworker: {worker:?}\nstate: {state:?}"
        ))
    })
}

/// The store and directory after a decision: its state, with its plan applied when the
/// directory stage ran.
fn converge(decision: &Decision, entra_ran: bool) -> (WorkerState, Vec<Op>) {
    let mut next = decision.state.clone();
    let ops = plan(decision.desired.as_ref(), next.applied.as_ref());
    if entra_ran {
        next.applied = apply(next.applied.take(), &ops);
    }
    (next, ops)
}

/// Replays earlier snapshots in time order into a stored state.
fn prior_state(config: &Config, history: &[Step]) -> Result<WorkerState, TestCaseError> {
    let mut steps = history.to_vec();
    steps.sort_by_key(|step| std::cmp::Reverse(step.days_before));
    let mut state = WorkerState::default();
    for step in steps {
        let now = *NOW - days(step.days_before);
        let mut worker = step.worker;
        worker.as_of = now - secs(step.lag);
        let decision = decide_now(&worker, &state, config, now)?;
        state = converge(&decision, step.entra_ran).0;
    }
    Ok(state)
}

/// A random worker, a random stored state for it, and a `now` on the day of [`NOW`] or
/// the next (so local cut-offs at 17:00 fall on both sides of it).
fn scenario() -> impl Strategy<Value = (usize, Vec<Step>, Worker, i64)> {
    (0..VARIANTS.len(), history(), worker(), 0i64..=2 * 86_400)
}

fn applied_enabled(applied: Option<&AppliedIdentity>) -> bool {
    applied.is_some_and(|account| account.enabled)
}

/// Every property with a documented limit, and usageLocation, rendered straight from an HR
/// field (`custom.<property>`), so any value can reach it; the display name too.
static LIMITS_CONFIGS: LazyLock<Vec<Config>> = LazyLock::new(|| {
    ["ignore", "clear"]
        .iter()
        .map(|policy| {
            let mut text = format!(
                "[directory]\nnull_policy = \"{policy}\"\n\n[identity]\nupn = [\"{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}@acme.com\"]\ndisplay_name = \"{{{{ custom.displayName }}}}\"\n\n[attributes]\n"
            );
            for (property, _) in MAX_CHARS {
                if !matches!(property, "displayName" | "employeeId" | "mailNickname") {
                    text += &format!("{property} = \"{{{{ custom.{property} }}}}\"\n");
                }
            }
            text += "usageLocation = \"{{ custom.usageLocation }}\"\n\n[[access]]\ngroups = [\"g-all\"]\nlicenses = [\"sku-e5\"]\n";
            Config::parse(&text, policy).unwrap_or_else(|e| panic!("limits config {policy}: {e}"))
        })
        .collect()
});

/// The HR fields the limits configs render: every limited attribute, the display name and the
/// usage location.
fn limited_fields() -> Vec<&'static str> {
    MAX_CHARS
        .iter()
        .map(|(property, _)| *property)
        .filter(|p| !matches!(*p, "employeeId" | "mailNickname"))
        .chain(["usageLocation"])
        .collect()
}

/// Any text, most often near some limit (64, 128, 256, 1024), in ASCII or not.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        select(&["GB", "gb", "UK", "US", "XX", "G", "GBR"][..]).prop_map(str::to_owned),
        "[a-zA-Z0-9 é'ß😀-]{1,70}",
        "[a-z é😀]{120,135}",
        "[a-z😀]{250,262}",
        "[a-z ]{1020,1030}",
    ]
}

proptest! {
    // Failures are reported with their shrunk input; nothing is written next to the tests.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Applying a plan and planning again yields nothing.
    #[test]
    fn planning_after_applying_the_plan_yields_nothing(
        (variant, history, worker, offset) in scenario()
    ) {
        let config = &CONFIGS[variant];
        let state = prior_state(config, &history)?;
        let now = *NOW + secs(offset);
        let decision = decide_now(&worker, &state, config, now)?;
        let ops = plan(decision.desired.as_ref(), state.applied.as_ref());
        let applied = apply(state.applied.clone(), &ops);
        let again = plan(decision.desired.as_ref(), applied.as_ref());
        prop_assert!(again.is_empty(), "first plan {ops:?}\nsecond plan {again:?}\ndesired {:?}", decision.desired);
    }

    /// Deciding the same snapshot again on the returned state changes nothing.
    #[test]
    fn deciding_the_same_snapshot_twice_changes_nothing(
        (variant, history, worker, offset) in scenario()
    ) {
        let config = &CONFIGS[variant];
        let state = prior_state(config, &history)?;
        let now = *NOW + secs(offset);
        let first = decide_now(&worker, &state, config, now)?;
        let second = decide_now(&worker, &first.state, config, now)?;
        prop_assert_eq!(second.transition, Transition::None, "first: {:?}", first.transition);
        prop_assert_eq!(second.lifecycle, first.lifecycle);
        prop_assert_eq!(&second.desired, &first.desired);
        prop_assert_eq!(&second.timers, &first.timers);
        prop_assert_eq!(&second.state, &first.state);
    }

    /// An older snapshot arriving after a newer one is ignored.
    #[test]
    fn a_stale_snapshot_never_wins(
        (variant, history, newer, offset) in scenario(),
        older in worker(),
        older_by in 1i64..=30 * 86_400,
    ) {
        let config = &CONFIGS[variant];
        let state = prior_state(config, &history)?;
        let now = *NOW + secs(offset);
        let mut older = older;
        older.as_of = newer.as_of - secs(older_by);

        let alone = decide_now(&newer, &state, config, now)?;
        let after = decide_now(&older, &alone.state, config, now)?;
        prop_assert!(after.stale);
        prop_assert_eq!(after.transition, Transition::None);
        prop_assert_eq!(after.lifecycle, alone.lifecycle);
        prop_assert_eq!(&after.desired, &alone.desired);
        prop_assert_eq!(&after.timers, &alone.timers);
        // The newest snapshot seen is kept: `newer`, or one already stored that is newer still.
        prop_assert_eq!(&after.state.snapshot, &alone.state.snapshot);
        prop_assert!(after.state.snapshot.as_ref().is_some_and(|kept| kept.as_of >= newer.as_of));
    }

    /// Accounts are deleted only when `delete_after_days` is set, and then only once that
    /// many days have passed since the leave instant.
    #[test]
    fn nothing_is_deleted_unless_configured_and_due(
        variant in 0..VARIANTS.len(),
        steps in prop::collection::vec(
            (worker(), 0i64..=60 * 24, 0i64..=2 * 86_400, proptest::bool::weighted(0.85)),
            1..=5,
        ),
    ) {
        let config = &CONFIGS[variant];
        let delete_after = VARIANTS[variant].delete_after_days;
        let mut state = WorkerState::default();
        let mut now = *NOW - days(150);
        let mut last = None;
        let mut snapshots = Vec::new();
        for (mut worker, gap_hours, lag, entra_ran) in steps {
            now += SignedDuration::from_hours(gap_hours);
            worker.as_of = now - secs(lag);
            snapshots.push((worker.clone(), now, entra_ran));
            last = Some(worker);
        }
        // Wake-ups after the last snapshot: the next day, a month on, and over a year on.
        if let Some(last) = last {
            for later in [1, 31, 400] {
                snapshots.push((last.clone(), now + days(later), true));
            }
        }
        for (worker, now, entra_ran) in snapshots {
            let decision = decide_now(&worker, &state, config, now)?;
            let (next, ops) = converge(&decision, entra_ran);
            if ops.contains(&Op::Delete) {
                let Some(days_after) = delete_after else {
                    return Err(TestCaseError::fail(format!(
                        "delete planned without delete_after_days at {now}: {decision:?}"
                    )));
                };
                prop_assert_eq!(decision.lifecycle, Lifecycle::Deleted);
                let Some(left_at) = decision.state.left_at else {
                    return Err(TestCaseError::fail(format!("delete without a leave instant: {decision:?}")));
                };
                // A month of calendar days may be an hour short across a DST change.
                let due = left_at + SignedDuration::from_hours(24 * i64::from(days_after)) - SignedDuration::from_hours(1);
                prop_assert!(now >= due, "deleted at {now}, left at {left_at}, {days_after} days");
            }
            state = next;
        }
    }

    /// A rehire gets the old account back with exactly the access the new record earns:
    /// nothing from the earlier employment survives.
    #[test]
    fn a_rehire_gets_only_what_the_new_record_grants(
        variant in 0..VARIANTS.len(),
        first in worker(),
        (old_department, new_department) in (select(DEPARTMENTS), select(DEPARTMENTS))
            .prop_filter("a different department", |(a, b)| a != b),
        (old_type, new_type) in (select(&["Employee", "Contractor"][..]), select(&["Employee", "Contractor"][..])),
        new_country in select(COUNTRIES),
        (termination_type, leave_status) in (select(TERMINATION_TYPES), prop_oneof![Just(Status::Terminated), Just(Status::Inactive), Just(Status::Active)]),
        wake_ups in prop::collection::vec(1i64..=60, 0..=2),
        rehired_days_ago in 0i64..=30,
        keep_old_termination in any::<bool>(),
        offset in 0i64..=86_400,
    ) {
        let config = &CONFIGS[variant];
        // Employed and provisioned.
        let mut joiner = first;
        joiner.status = Status::Active;
        joiner.hire_date = Some(date_at(-400));
        joiner.termination_date = None;
        joiner.termination_time = None;
        joiner.termination_type = None;
        joiner.worker_type = Some(old_type.to_owned());
        joiner.department = text(old_department);
        let joined_at = *NOW - days(300);
        joiner.as_of = joined_at;
        let joined = decide_now(&joiner, &WorkerState::default(), config, joined_at)?;
        let (state, _) = converge(&joined, true);
        let upn = state.applied.as_ref().map(|a| a.upn.clone());
        prop_assert!(upn.is_some(), "provisioned: {joined:?}");
        prop_assert_eq!(state.applied.as_ref().map(|a| &a.groups), Some(&granted(&joiner).0));

        // Leaves 200 days ago; the leave is seen the next day and at a few wake-ups.
        let mut leaver = joiner.clone();
        leaver.status = leave_status;
        leaver.termination_date = Some(date_at(-200));
        leaver.termination_type = text(termination_type);
        let left_seen = *NOW - days(199);
        leaver.as_of = left_seen;
        let mut state = state;
        let mut at = left_seen;
        for step in std::iter::once(0).chain(wake_ups) {
            at += days(step);
            let decision = decide_now(&leaver, &state, config, at)?;
            prop_assert!(decision.lifecycle.has_left(), "{decision:?}");
            state = converge(&decision, true).0;
        }

        // Rehired in another department.
        let mut rehire = leaver.clone();
        rehire.status = Status::Active;
        rehire.hire_date = Some(date_at(-rehired_days_ago));
        if !keep_old_termination {
            rehire.termination_date = None;
            rehire.termination_type = None;
        }
        rehire.worker_type = Some(new_type.to_owned());
        rehire.department = text(new_department);
        rehire.country = text(new_country);
        rehire.as_of = *NOW;
        let now = *NOW + secs(offset);
        // Graph takes a licence only once the account has a usageLocation: the one HR gives
        // now, or the one the account kept (unless it was deleted in between).
        let location = rehire
            .country
            .clone()
            .or_else(|| state.applied.as_ref().and(joiner.country.clone()));
        let decision = decide_now(&rehire, &state, config, now)?;
        prop_assert_eq!(decision.transition, Transition::Rehire, "{:?}", decision.explanation);
        prop_assert_eq!(decision.lifecycle, Lifecycle::Active);
        let (state, _) = converge(&decision, true);
        let applied = state.applied.as_ref();
        let (groups, mut licenses) = granted(&rehire);
        if location.is_none() {
            licenses.clear();
        }
        prop_assert_eq!(applied.map(|a| &a.groups), Some(&groups), "{:?}", decision.explanation);
        prop_assert_eq!(applied.map(|a| &a.licenses), Some(&licenses));
        prop_assert_eq!(applied.map(|a| a.upn.clone()), upn, "the old account comes back");
        prop_assert!(applied_enabled(applied));
    }

    /// Workers with the same name decided in one run, checked through one registry, all get
    /// different UPNs and mail addresses; deciding one again keeps what it got.
    #[test]
    fn identifiers_are_unique_within_a_run(
        variant in 0..VARIANTS.len(),
        people in prop::collection::vec(
            (
                select(&[("José", "García"), ("Jose", "Garcia"), ("JOSÉ", "GARCÍA"), ("José ", " García")][..]),
                select(PREFERRED),
                select(ZONES),
                select(DEPARTMENTS),
                proptest::bool::weighted(0.2),
            ),
            2..=20,
        ),
    ) {
        let config = &CONFIGS[variant];
        let taken: RefCell<HashMap<String, WorkerKey>> = RefCell::new(HashMap::new());
        let registry = |name: &str, by: &WorkerKey| -> bool {
            taken.borrow().get(&name.to_lowercase()).is_some_and(|owner| owner != by)
        };
        let mut chosen: Vec<(WorkerKey, String, String)> = Vec::new();
        for (index, ((given, family), preferred, zone, department, redeliver)) in people.into_iter().enumerate() {
            let key = WorkerKey::new("hr", (5000 + index).to_string());
            let mut worker = Worker::new(key.clone(), given, family, *NOW);
            worker.preferred_name = text(preferred);
            worker.time_zone = text(zone);
            worker.department = text(department);
            worker.worker_type = Some("Employee".into());
            worker.hire_date = Some(date_at(-100));
            let decision = decide(&worker, &WorkerState::default(), config, *NOW, &registry)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Some(ids) = decision.state.identifiers.clone() else {
                return Err(TestCaseError::fail(format!("no identifiers chosen: {decision:?}")));
            };
            {
                let mut taken = taken.borrow_mut();
                taken.insert(ids.upn.to_lowercase(), key.clone());
                taken.insert(ids.mail.to_lowercase(), key.clone());
            }
            if redeliver {
                let again = decide(&worker, &decision.state, config, *NOW + secs(60), &registry)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(again.state.identifiers.as_ref(), Some(&ids));
            }
            chosen.push((key, ids.upn, ids.mail));
        }
        let upns: HashSet<String> = chosen.iter().map(|(_, upn, _)| upn.to_lowercase()).collect();
        let mails: HashSet<String> = chosen.iter().map(|(_, _, mail)| mail.to_lowercase()).collect();
        prop_assert_eq!(upns.len(), chosen.len(), "{:?}", chosen);
        prop_assert_eq!(mails.len(), chosen.len(), "{:?}", chosen);
        // One worker's UPN is never another worker's mail.
        let mut owner: HashMap<String, &WorkerKey> = HashMap::new();
        for (key, upn, mail) in &chosen {
            for address in [upn.to_lowercase(), mail.to_lowercase()] {
                let first = *owner.entry(address.clone()).or_insert(key);
                prop_assert_eq!(first, key, "{} is used by two workers: {:?}", address, chosen);
            }
        }
    }

    /// Every timer lies strictly in the future, earliest first.
    #[test]
    fn timers_are_in_the_future_and_sorted(
        (variant, history, worker, offset) in scenario()
    ) {
        let config = &CONFIGS[variant];
        let state = prior_state(config, &history)?;
        let now = *NOW + secs(offset);
        let decision = decide_now(&worker, &state, config, now)?;
        for timer in &decision.timers {
            prop_assert!(timer.at > now, "{timer:?} is not after {now}");
        }
        prop_assert!(decision.timers.windows(2).all(|pair| pair[0] <= pair[1]), "{:?}", decision.timers);
        prop_assert_eq!(&decision.state.timers, &decision.timers);
    }

    /// A worker who has left is never enabled, neither desired nor once the plan is applied.
    #[test]
    fn a_leaver_is_never_enabled(
        (variant, history, worker, offset) in scenario()
    ) {
        let config = &CONFIGS[variant];
        let state = prior_state(config, &history)?;
        let now = *NOW + secs(offset);
        let decision = decide_now(&worker, &state, config, now)?;
        if decision.lifecycle.has_left() {
            prop_assert!(
                decision.desired.as_ref().is_none_or(|d| !d.enabled),
                "{:?}", decision.desired
            );
            let (next, _) = converge(&decision, true);
            prop_assert!(!applied_enabled(next.applied.as_ref()), "{:?}", next.applied);
            if let Some(desired) = &decision.desired {
                prop_assert_ne!(desired.presence, Presence::Present, "a leaver's account is never created");
            }
        }
    }

    /// Whatever HR sends, no desired attribute breaks Graph's limits: a value that would is
    /// left out and reported, a licence waits for a usageLocation, and only an account about
    /// to be created can be refused, for a displayName it cannot do without.
    #[test]
    fn no_desired_attribute_ever_breaks_a_graph_limit(
        policy in 0..2usize,
        values in prop::collection::vec(any_value(), 15),
        leaves in any::<bool>(),
        existing in proptest::option::of(select(&[None, Some("GB")][..])),
    ) {
        let config = &LIMITS_CONFIGS[policy];
        let fields = limited_fields();
        let mut worker = Worker::new(WorkerKey::new("hr", "1001"), "Ada", "Lovelace", *NOW);
        worker.hire_date = Some(date_at(-100));
        // An account from an earlier, tidy record (with or without a usage location).
        let state = match existing {
            None => WorkerState::default(),
            Some(location) => {
                let mut tidy = worker.clone();
                tidy.as_of = *NOW - days(10);
                tidy.custom.insert("displayName".into(), "Ada Lovelace".into());
                if let Some(location) = location {
                    tidy.custom.insert("usageLocation".into(), location.into());
                }
                let decision = decide_now(&tidy, &WorkerState::default(), config, *NOW - days(10))?;
                converge(&decision, true).0
            }
        };
        for (field, value) in fields.iter().zip(&values) {
            worker.custom.insert((*field).to_owned(), value.clone());
        }
        if leaves {
            worker.status = Status::Terminated;
            worker.termination_date = Some(date_at(-1));
        }
        let creating = !leaves && state.applied.is_none();
        let breaks = |property: &str, value: &str| {
            (value.is_empty() && NOT_CLEARABLE.contains(&property))
                || (property == "usageLocation" && !value.is_empty() && !is_usage_location(value))
                || max_chars(property).is_some_and(|max| value.chars().count() > max)
        };
        // Templates render trimmed.
        let display = worker.custom["displayName"].trim();
        let decision = match decide(&worker, &state, config, *NOW, &NothingTaken) {
            Err(DecideError::InvalidWorker(invalid)) => {
                prop_assert!(creating, "only a create can be refused: {invalid}");
                prop_assert_eq!(invalid.field, "displayName");
                prop_assert!(breaks("displayName", display), "{invalid}");
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("decide failed: {other}"))),
            Ok(decision) => decision,
        };
        prop_assert!(!(creating && breaks("displayName", display)), "a new account needs a display name Graph takes");
        let Some(desired) = decision.desired.as_ref() else {
            return Err(TestCaseError::fail(format!("no desired identity: {decision:?}")));
        };
        for (property, value) in &desired.attributes {
            match value {
                Some(value) => prop_assert!(!breaks(property, value), "{property} = {value:?} is desired"),
                None => prop_assert!(!NOT_CLEARABLE.contains(&property.as_str()), "{property} cleared"),
            }
        }
        for (field, value) in fields.iter().zip(values.iter().map(|v| v.trim())) {
            // An empty value is only sent (and so only refused) as the display name.
            if breaks(field, value) && (!value.is_empty() || *field == "displayName") {
                prop_assert!(
                    decision.problems.iter().any(|p| p.property == *field),
                    "{field} = {value:?} left out without a word: {:?}", decision.problems
                );
            }
        }
        let location = desired
            .attributes
            .get("usageLocation")
            .cloned()
            .flatten()
            .or_else(|| state.applied.as_ref().and_then(|a| a.attributes.get("usageLocation").cloned()));
        if location.is_none() {
            let held = state.applied.as_ref().map(|a| a.licenses.clone()).unwrap_or_default();
            prop_assert!(desired.licenses.is_subset(&held), "a licence without a usageLocation: {desired:?}");
        }
        // Nothing the plan sends breaks a limit either (the account as the directory holds it).
        for op in plan(Some(desired), state.applied.as_ref()) {
            if let Op::Create { attributes, .. } | Op::Update { set: attributes, .. } = &op {
                for (property, value) in attributes {
                    prop_assert!(!breaks(property, value), "{property} = {value:?} sent");
                }
            }
        }
    }
}
