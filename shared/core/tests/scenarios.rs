//! Scenarios over time: given HR says this at this instant, the directory holds that.

use std::collections::BTreeSet;

use hrsync_core::{
    AppliedIdentity, Config, DataProblem, DecideError, Decision, Identifiers, InvalidWorker,
    Lifecycle, NothingTaken, Op, Presence, Status, TimerKind, Transition, Worker, WorkerKey,
    WorkerState, apply, decide, plan,
};
use jiff::Timestamp;
use jiff::civil::date;

const CONFIG: &str = r#"
[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example", "{{ given_name|slug }}.{{ family_name|slug }}{{ n }}@acme.example"]

[attributes]
department = "{{ department }}"
jobTitle = "{{ job_title }}"
usageLocation = "{{ country }}"

[[access]]
name = "engineering"
when = "department == 'Engineering'"
groups = ["g-eng"]
licenses = ["sku-e5"]

[[access]]
name = "sales"
when = "department == 'Sales'"
groups = ["g-sales"]

[[access]]
name = "everyone"
groups = ["g-all"]

[lifecycle]
scope = "worker_type != 'Intern'"
default_time_zone = "Europe/London"
leave_at = "17:00"
start_at = "08:00"
prehire_days = 7
remove_access_after_days = 3
"#;

fn config(extra: &str) -> Config {
    let text = format!("{CONFIG}{extra}");
    Config::parse(&text, "test.toml").expect("test config is valid")
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 literal")
}

fn worker(id: &str, as_of: &str) -> Worker {
    let mut worker = Worker::new(WorkerKey::new("hr", id), "Ada", "Lovelace", at(as_of));
    worker.hire_date = Some(date(2024, 3, 1));
    worker.department = Some("Engineering".into());
    worker.job_title = Some("Engineer".into());
    worker.worker_type = Some("Employee".into());
    worker.country = Some("GB".into());
    worker
}

/// One worker's life: state kept between decisions and a directory that applies each plan.
struct Life {
    config: Config,
    state: WorkerState,
}

impl Life {
    fn new(config: Config) -> Self {
        Self {
            config,
            state: WorkerState::default(),
        }
    }

    fn decide(&mut self, worker: &Worker, now: &str) -> (Decision, Vec<Op>) {
        let decision =
            decide(worker, &self.state, &self.config, at(now), &NothingTaken).expect("decides");
        let ops = plan(decision.desired.as_ref(), self.state.applied.as_ref());
        self.state = decision.state.clone();
        self.state.applied = apply(self.state.applied.take(), &ops);
        (decision, ops)
    }

    fn account(&self) -> &AppliedIdentity {
        self.state.applied.as_ref().expect("an account exists")
    }
}

fn groups(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn joiner_is_created_disabled_in_the_window_and_enabled_at_the_start_instant() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.hire_date = Some(date(2026, 12, 14));

    let (early, ops) = life.decide(&ada, "2026-11-20T12:00:00Z");
    assert_eq!(early.transition, Transition::Prehire);
    assert_eq!(early.lifecycle, Lifecycle::PreHire);
    assert!(
        early.desired.is_none() && ops.is_empty(),
        "no account before the window"
    );
    let kinds: Vec<_> = early.timers.iter().map(|t| (t.kind, t.at)).collect();
    // London is on GMT in December: 08:00 local is 08:00Z; the window opens 7 days earlier.
    assert_eq!(
        kinds,
        [
            (TimerKind::Prehire, at("2026-12-07T08:00:00Z")),
            (TimerKind::Start, at("2026-12-14T08:00:00Z"))
        ]
    );

    let (window, ops) = life.decide(&ada, "2026-12-07T08:00:00Z");
    assert_eq!(
        window.transition,
        Transition::Prehire,
        "the pre-hire account is created"
    );
    assert!(
        matches!(&ops[0], Op::Create { enabled: false, upn, .. } if upn == "ada.lovelace@acme.example")
    );
    assert!(!life.account().enabled);
    assert_eq!(life.account().groups, groups(&["g-all", "g-eng"]));

    let (start, ops) = life.decide(&ada, "2026-12-14T08:00:00Z");
    assert_eq!(start.transition, Transition::Join);
    assert_eq!(ops, [Op::Enable]);
    assert!(life.account().enabled);
    assert!(start.timers.is_empty());
}

#[test]
fn mover_loses_access_no_rule_grants_any_more() {
    let mut life = Life::new(config(""));
    let ada = worker("1", "2026-11-01T00:00:00Z");
    life.decide(&ada, "2026-11-01T00:00:00Z");
    assert_eq!(life.account().licenses, groups(&["sku-e5"]));

    let mut moved = ada.clone();
    moved.as_of = at("2026-11-02T00:00:00Z");
    moved.department = Some("Sales".into());
    let (decision, ops) = life.decide(&moved, "2026-11-02T00:00:00Z");
    assert_eq!(decision.transition, Transition::Move);
    assert!(ops.contains(&Op::RemoveGroup {
        group: "g-eng".into()
    }));
    assert!(ops.contains(&Op::RemoveLicense {
        sku: "sku-e5".into()
    }));
    assert_eq!(life.account().groups, groups(&["g-all", "g-sales"]));
    assert!(life.account().licenses.is_empty());
    assert_eq!(life.account().attributes["department"], "Sales");
    assert!(
        decision
            .explanation
            .iter()
            .any(|l| l.starts_with("move: department \"Engineering\" -> \"Sales\"")),
        "{:?}",
        decision.explanation
    );
}

#[test]
fn future_dated_leaver_is_cut_off_at_leave_at_then_stripped_of_access_after_grace() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    life.decide(&ada, "2026-11-01T00:00:00Z");

    ada.as_of = at("2026-11-10T00:00:00Z");
    ada.termination_date = Some(date(2026, 12, 18));
    ada.termination_type = Some("Voluntary".into());
    let (scheduled, ops) = life.decide(&ada, "2026-11-10T00:00:00Z");
    assert_eq!(scheduled.lifecycle, Lifecycle::LeaveScheduled);
    assert!(
        ops.is_empty(),
        "nothing changes before the leave instant: {ops:?}"
    );
    assert_eq!(scheduled.timers[0].kind, TimerKind::Leave);
    assert_eq!(scheduled.timers[0].at, at("2026-12-18T17:00:00Z"));

    let (before, ops) = life.decide(&ada, "2026-12-18T16:59:59Z");
    assert_eq!(before.lifecycle, Lifecycle::LeaveScheduled);
    assert!(ops.is_empty());

    let (left, ops) = life.decide(&ada, "2026-12-18T17:00:00Z");
    assert_eq!(left.transition, Transition::Leave);
    assert_eq!(
        ops.first(),
        Some(&Op::Disable),
        "disable comes first: {ops:?}"
    );
    assert!(!life.account().enabled);
    assert_eq!(
        life.account().groups,
        groups(&["g-all", "g-eng"]),
        "access kept during the grace period"
    );
    assert_eq!(
        left.timers.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [TimerKind::RemoveAccess]
    );
    assert_eq!(left.timers[0].at, at("2026-12-21T17:00:00Z"));

    let (stripped, _) = life.decide(&ada, "2026-12-21T17:00:00Z");
    assert_eq!(stripped.transition, Transition::None);
    assert!(life.account().groups.is_empty() && life.account().licenses.is_empty());
    assert!(
        stripped.timers.is_empty(),
        "no delete timer unless delete_after_days is set"
    );
    assert!(life.state.applied.is_some(), "never deleted by default");
}

#[test]
fn termination_rescinded_drops_the_timer_and_disables_nothing() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.termination_date = Some(date(2026, 12, 18));
    life.decide(&ada, "2026-11-01T00:00:00Z");

    ada.as_of = at("2026-11-15T00:00:00Z");
    ada.termination_date = None;
    let (rescinded, ops) = life.decide(&ada, "2026-11-15T00:00:00Z");
    assert_eq!(rescinded.lifecycle, Lifecycle::Active);
    assert!(rescinded.timers.is_empty());
    assert!(ops.is_empty(), "{ops:?}");
    assert!(life.account().enabled);
    assert!(
        rescinded
            .explanation
            .iter()
            .any(|l| l.contains("termination rescinded"))
    );

    let (later, ops) = life.decide(&ada, "2026-12-19T00:00:00Z");
    assert_eq!(later.lifecycle, Lifecycle::Active);
    assert!(ops.is_empty());
}

#[test]
fn rehire_gets_the_old_account_back_with_access_from_the_new_record_only() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2025-01-01T00:00:00Z");
    ada.termination_date = Some(date(2025, 6, 30));
    ada.status = Status::Terminated;
    life.decide(&ada, "2025-01-01T00:00:00Z");
    life.decide(&ada, "2025-07-15T00:00:00Z");
    let old_upn = life.account().upn.clone();
    assert!(life.account().groups.is_empty());
    // Someone re-adds the old group by hand while the account sits disabled.
    life.state
        .applied
        .as_mut()
        .map(|a| a.groups.insert("g-eng".into()));

    let mut back = ada.clone();
    back.as_of = at("2026-11-01T00:00:00Z");
    back.status = Status::Active;
    back.hire_date = Some(date(2026, 11, 16));
    back.department = Some("Sales".into());
    let (rehired, ops) = life.decide(&back, "2026-11-16T08:00:00Z");
    assert_eq!(rehired.transition, Transition::Rehire);
    assert!(
        !ops.iter().any(|op| matches!(op, Op::Create { .. })),
        "the old account is reused: {ops:?}"
    );
    assert_eq!(life.account().upn, old_upn);
    assert!(life.account().enabled);
    assert_eq!(life.account().groups, groups(&["g-all", "g-sales"]));
    assert!(life.account().licenses.is_empty());
}

#[test]
fn involuntary_termination_cuts_off_at_once_whatever_the_date() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    life.decide(&ada, "2026-11-01T00:00:00Z");
    ada.as_of = at("2026-11-20T10:15:00Z");
    ada.termination_date = Some(date(2026, 11, 30));
    ada.termination_type = Some("INVOLUNTARY".into());
    let (fired, ops) = life.decide(&ada, "2026-11-20T10:15:00Z");
    assert_eq!(fired.transition, Transition::Leave);
    assert_eq!(ops.first(), Some(&Op::Disable));
    assert_eq!(fired.state.left_at, Some(at("2026-11-20T10:15:00Z")));
    // Deciding again later keeps the original cut-off instant.
    let (again, _) = life.decide(&ada, "2026-11-21T00:00:00Z");
    assert_eq!(again.state.left_at, Some(at("2026-11-20T10:15:00Z")));
}

#[test]
fn stale_snapshot_is_ignored() {
    let mut life = Life::new(config(""));
    let mut newer = worker("1", "2026-11-10T00:00:00Z");
    newer.department = Some("Sales".into());
    life.decide(&newer, "2026-11-10T00:00:00Z");
    let older = worker("1", "2026-11-01T00:00:00Z");
    let (decision, ops) = life.decide(&older, "2026-11-11T00:00:00Z");
    assert!(decision.stale);
    assert_eq!(decision.transition, Transition::None);
    assert!(ops.is_empty());
    assert_eq!(life.account().attributes["department"], "Sales");
}

#[test]
fn out_of_scope_worker_is_disabled_not_deleted_and_never_provisioned_otherwise() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    life.decide(&ada, "2026-11-01T00:00:00Z");
    ada.as_of = at("2026-11-02T00:00:00Z");
    ada.worker_type = Some("Intern".into());
    let (decision, ops) = life.decide(&ada, "2026-11-02T00:00:00Z");
    assert_eq!(decision.transition, Transition::Leave);
    assert!(ops.contains(&Op::Disable) && !ops.contains(&Op::Delete));
    assert!(life.state.applied.is_some());

    let mut intern = Life::new(config(""));
    let mut bob = worker("2", "2026-11-01T00:00:00Z");
    bob.worker_type = Some("Intern".into());
    let (decision, ops) = intern.decide(&bob, "2026-11-01T00:00:00Z");
    assert!(decision.desired.is_none() && ops.is_empty());
    assert_eq!(
        decision.transition,
        Transition::None,
        "an out-of-scope worker does not join"
    );
}

#[test]
fn delete_only_when_configured_and_only_after_the_days_have_passed() {
    let mut life = Life::new(config("delete_after_days = 30\n"));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    life.decide(&ada, "2026-11-01T00:00:00Z");
    ada.as_of = at("2026-11-02T00:00:00Z");
    ada.termination_date = Some(date(2026, 11, 6));
    let (left, _) = life.decide(&ada, "2026-11-06T17:00:00Z");
    let delete = left
        .timers
        .iter()
        .find(|t| t.kind == TimerKind::Delete)
        .expect("a delete timer");
    assert_eq!(delete.at, at("2026-12-06T17:00:00Z"));
    let (_, ops) = life.decide(&ada, "2026-12-06T16:59:00Z");
    assert!(!ops.contains(&Op::Delete));
    let (gone, ops) = life.decide(&ada, "2026-12-06T17:00:00Z");
    assert_eq!(gone.lifecycle, Lifecycle::Deleted);
    assert_eq!(ops, [Op::Delete]);
    assert!(life.state.applied.is_none());
    let (after, ops) = life.decide(&ada, "2026-12-07T00:00:00Z");
    assert_eq!(after.desired.map(|d| d.presence), Some(Presence::Deleted));
    assert!(ops.is_empty());
}

#[test]
fn leaver_first_seen_after_leaving_gets_no_account_but_an_existing_one_is_disabled() {
    let config = config("");
    let mut bob = worker("2", "2026-11-01T00:00:00Z");
    bob.status = Status::Terminated;
    bob.termination_date = Some(date(2026, 10, 30));
    let decision = decide(
        &bob,
        &WorkerState::default(),
        &config,
        at("2026-11-01T00:00:00Z"),
        &NothingTaken,
    )
    .expect("decides");
    assert!(
        decision.timers.is_empty(),
        "no staged-offboarding timers without an account: {:?}",
        decision.timers
    );
    assert_eq!(decision.transition, Transition::None);
    let desired = decision
        .desired
        .expect("converge an account that may exist");
    assert_eq!(desired.presence, Presence::IfExists);
    assert!(
        plan(Some(&desired), None).is_empty(),
        "never create an account for a leaver"
    );
    let existing = AppliedIdentity {
        object_id: Some("o-2".into()),
        upn: "bob@acme.example".into(),
        mail: None,
        enabled: true,
        attributes: Default::default(),
        groups: groups(&["g-legacy"]),
        licenses: Default::default(),
        manager: None,
    };
    let ops = plan(Some(&desired), Some(&existing));
    assert_eq!(ops.first(), Some(&Op::Disable));
    assert!(ops.contains(&Op::RemoveGroup {
        group: "g-legacy".into()
    }));
}

#[test]
fn a_template_that_fails_is_an_error_for_that_worker_only() {
    let config = Config::parse(
        "[identity]\nupn = [\"{{ given_name|slug }}@acme.example\"]\ndisplay_name = \"{{ given_name }}{{ range(custom.repeat|int)|join }}\"\n",
        "t.toml",
    )
    .expect("valid");
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.custom.insert("repeat".into(), "1000000000".into());
    let err = decide(
        &ada,
        &WorkerState::default(),
        &config,
        at("2026-11-01T00:00:00Z"),
        &NothingTaken,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("template identity.display_name: "),
        "{err}"
    );
}

#[test]
fn exhausted_names_give_a_clear_error() {
    let config = Config::parse(
        "[identity]\nupn = [\"{{ given_name|slug }}@acme.example\", \"{{ given_name|slug }}{{ n }}@acme.example\"]\nmax_counter = 3\n",
        "t.toml",
    )
    .expect("valid");
    let ada = worker("1", "2026-11-01T00:00:00Z");
    let everything_taken = |_: &str, _: &WorkerKey| true;
    let err = decide(
        &ada,
        &WorkerState::default(),
        &config,
        at("2026-11-01T00:00:00Z"),
        &everything_taken,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no free UPN after 3 candidates (ada@acme.example ... ada3@acme.example); raise identity.max_counter or add a template"
    );
}

#[test]
fn an_invalid_upn_names_the_template_and_the_problem() {
    let config = Config::parse(
        "[identity]\nupn = [\"{{ given_name }}@acme.example\"]\n",
        "t.toml",
    )
    .expect("valid");
    let mut zoe = worker("1", "2026-11-01T00:00:00Z");
    zoe.given_name = "Zoë".into();
    let err = decide(
        &zoe,
        &WorkerState::default(),
        &config,
        at("2026-11-01T00:00:00Z"),
        &NothingTaken,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "identity.upn[0] rendered \"Zoë@acme.example\", which is not a valid UPN: 'ë' is not allowed before @ (only A-Z a-z 0-9 ' . - _ ! # ^ ~)"
    );
}

#[test]
fn on_leave_keeps_the_account_unless_configured() {
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.status = Status::Leave;
    let kept = decide(
        &ada,
        &WorkerState::default(),
        &config(""),
        at("2026-11-01T00:00:00Z"),
        &NothingTaken,
    )
    .expect("decides");
    assert_eq!(kept.lifecycle, Lifecycle::OnLeave);
    assert_eq!(kept.desired.map(|d| d.enabled), Some(true));
    let off = decide(
        &ada,
        &WorkerState::default(),
        &config("disable_on_leave = true\n"),
        at("2026-11-01T00:00:00Z"),
        &NothingTaken,
    )
    .expect("decides");
    assert_eq!(off.desired.map(|d| d.enabled), Some(false));
}

#[test]
fn employee_leave_date_follows_the_leave_instant_when_enabled_and_is_cleared_on_rescind() {
    let mut life = Life::new(
        Config::parse(
            &format!("[directory]\nemployee_leave_date = true\n{CONFIG}"),
            "t.toml",
        )
        .expect("valid"),
    );
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.termination_date = Some(date(2026, 12, 18));
    life.decide(&ada, "2026-11-01T00:00:00Z");
    assert_eq!(
        life.account().attributes["employeeLeaveDateTime"],
        "2026-12-18T17:00:00Z"
    );

    ada.as_of = at("2026-11-05T00:00:00Z");
    ada.termination_date = None;
    let (_, ops) = life.decide(&ada, "2026-11-05T00:00:00Z");
    assert!(
        ops.iter().any(
            |op| matches!(op, Op::Update { clear, .. } if clear.contains("employeeLeaveDateTime"))
        ),
        "{ops:?}"
    );
    assert!(
        !life
            .account()
            .attributes
            .contains_key("employeeLeaveDateTime")
    );

    let off = decide(
        &ada,
        &WorkerState::default(),
        &config(""),
        at("2026-11-05T00:00:00Z"),
        &NothingTaken,
    )
    .expect("decides");
    assert!(
        !off.desired
            .expect("account")
            .attributes
            .contains_key("employeeLeaveDateTime"),
        "off by default"
    );
}

/// The first decision on `worker`, on 2026-03-01 at 09:00.
fn first_decision(config: &Config, worker: &Worker) -> Result<Decision, hrsync_core::DecideError> {
    decide(
        worker,
        &WorkerState::default(),
        config,
        at("2026-03-01T09:00:00Z"),
        &NothingTaken,
    )
}

#[test]
fn a_source_prefix_goes_before_the_employee_id_in_the_account_and_counts_toward_its_length() {
    let config = config(
        "\n[source.hr]\nkind = \"signed-json\"\nwebhook_secret = { env = \"S\" }\nemployee_id_prefix = \"ACQ-\"\n",
    );
    let ada = worker("1042", "2026-03-01T09:00:00Z");
    let decision = first_decision(&config, &ada).expect("decides");
    let desired = decision.desired.expect("an account");
    assert_eq!(
        desired.attributes["employeeId"].as_deref(),
        Some("ACQ-1042")
    );

    // 13 characters fit alone, not with the prefix: refused before the directory sees it.
    let long = worker("1234567890123", "2026-03-01T09:00:00Z");
    let error = first_decision(&config, &long).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid worker record: employee_id: with the source's employee_id_prefix it is \"ACQ-1234567890123\", 17 characters; the directory's employeeId holds at most 16"
    );
}

#[test]
fn hr_values_are_data_in_templates_never_template_code() {
    let config = config("");
    let mut ada = worker("1042", "2026-03-01T09:00:00Z");
    ada.given_name = "{{ 7 * 7 }}".into();
    ada.family_name = "{% for x in range(3) %}x{% endfor %}".into();
    ada.department = Some("{{ config }}".into());
    let decision = first_decision(&config, &ada).expect("decides");
    let desired = decision.desired.expect("an account");
    let display = desired.attributes["displayName"].clone().unwrap();
    assert_eq!(
        display, "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}",
        "rendered as text, not evaluated"
    );
    assert_eq!(
        desired.attributes["department"].as_deref(),
        Some("{{ config }}")
    );
    let upn = &desired.identifiers.expect("names").upn;
    assert!(!upn.contains("49") && !upn.contains("xxx"), "{upn}");
}

// Graph's limits (shared/core/src/limits.rs): what Graph would refuse is never sent.

fn attributes_of(op: &Op) -> Option<&std::collections::BTreeMap<String, String>> {
    match op {
        Op::Create { attributes, .. } => Some(attributes),
        Op::Update { set, .. } => Some(set),
        _ => None,
    }
}

/// Every property some op of the plan sets or clears.
fn touched(ops: &[Op]) -> Vec<String> {
    let mut names: Vec<String> = ops
        .iter()
        .filter_map(attributes_of)
        .flat_map(|a| a.keys().cloned())
        .collect();
    for op in ops {
        if let Op::Update { clear, .. } = op {
            names.extend(clear.iter().cloned());
        }
    }
    names
}

#[test]
fn an_over_long_job_title_is_left_out_of_the_new_account_and_reported() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.job_title = Some(format!("{}Architects", "Principal ".repeat(19)));
    let (joined, ops) = life.decide(&ada, "2026-11-01T00:00:00Z");
    assert_eq!(joined.transition, Transition::Join);
    assert!(matches!(&ops[0], Op::Create { .. }), "{ops:?}");
    assert!(!touched(&ops).contains(&"jobTitle".to_owned()), "{ops:?}");
    assert_eq!(life.account().attributes["department"], "Engineering");
    let message = "jobTitle has 200 characters and Graph takes at most 128: not sent, the directory keeps its value; shorten it in HR or change attributes.jobTitle";
    assert_eq!(
        joined.problems,
        [DataProblem {
            property: "jobTitle".into(),
            length: Some(200),
            limit: Some(128),
            message: message.into(),
        }]
    );
    assert!(
        joined.explanation.contains(&format!("data: {message}")),
        "{:?}",
        joined.explanation
    );
    assert_eq!(
        joined.state.problems, joined.problems,
        "kept, so a runtime sees when they change"
    );
}

#[test]
fn over_long_values_never_hold_up_a_leaver_and_the_directory_keeps_its_values() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    life.decide(&ada, "2026-11-01T00:00:00Z");
    assert_eq!(life.account().attributes["jobTitle"], "Engineer");

    ada.as_of = at("2026-11-20T10:15:00Z");
    ada.termination_date = Some(date(2026, 11, 20));
    ada.termination_type = Some("involuntary".into());
    ada.job_title = Some("x".repeat(129));
    ada.department = Some("d".repeat(65));
    ada.given_name = "A".repeat(300);
    let (fired, ops) = life.decide(&ada, "2026-11-20T10:15:00Z");
    assert_eq!(fired.transition, Transition::Leave);
    assert_eq!(ops.first(), Some(&Op::Disable), "{ops:?}");
    assert!(!life.account().enabled);
    assert!(
        touched(&ops).is_empty(),
        "nothing Graph would refuse is sent: {ops:?}"
    );
    assert_eq!(life.account().attributes["jobTitle"], "Engineer");
    assert_eq!(life.account().attributes["department"], "Engineering");
    let refused: Vec<(&str, Option<usize>, Option<usize>)> = fired
        .problems
        .iter()
        .map(|p| (p.property.as_str(), p.length, p.limit))
        .collect();
    assert_eq!(
        refused,
        [
            ("department", Some(65), Some(64)),
            ("displayName", Some(309), Some(256)),
            ("jobTitle", Some(129), Some(128)),
        ]
    );
}

#[test]
fn a_display_name_too_long_for_a_new_account_is_an_error_but_an_existing_account_goes_on() {
    let config = config("");
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.preferred_name = Some("A".repeat(260));
    let error = decide(
        &ada,
        &WorkerState::default(),
        &config,
        at("2026-11-01T00:00:00Z"),
        &NothingTaken,
    )
    .unwrap_err();
    assert_eq!(
        error,
        DecideError::InvalidWorker(InvalidWorker::new(
            "displayName",
            "has 269 characters and Graph takes at most 256, so the account cannot be created; shorten it in HR or change identity.display_name"
        ))
    );
    assert_eq!(
        error.to_string(),
        "invalid worker record: displayName: has 269 characters and Graph takes at most 256, so the account cannot be created; shorten it in HR or change identity.display_name"
    );

    // The account exists: its name stays as it is and the rest converges.
    let mut life = Life::new(config);
    let mut short = ada.clone();
    short.preferred_name = None;
    life.decide(&short, "2026-11-01T00:00:00Z");
    ada.as_of = at("2026-11-02T00:00:00Z");
    ada.department = Some("Sales".into());
    let (moved, ops) = life.decide(&ada, "2026-11-02T00:00:00Z");
    assert_eq!(moved.transition, Transition::Move);
    assert_eq!(life.account().attributes["displayName"], "Ada Lovelace");
    assert_eq!(life.account().attributes["department"], "Sales");
    assert!(ops.contains(&Op::RemoveGroup {
        group: "g-eng".into()
    }));
    assert_eq!(moved.problems.len(), 1, "{:?}", moved.problems);
    assert_eq!(moved.problems[0].property, "displayName");
}

#[test]
fn a_licence_waits_for_a_usage_location_and_the_problem_says_what_to_set() {
    let mut life = Life::new(config(""));
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    ada.country = None;
    let (joined, ops) = life.decide(&ada, "2026-11-01T00:00:00Z");
    assert!(
        !ops.iter().any(|op| matches!(op, Op::AssignLicense { .. })),
        "Graph refuses a licence without a usageLocation: {ops:?}"
    );
    assert_eq!(
        life.account().groups,
        groups(&["g-all", "g-eng"]),
        "the rest converges"
    );
    assert_eq!(
        joined.problems,
        [DataProblem {
            property: "usageLocation".into(),
            length: None,
            limit: None,
            message: "licence sku-e5 not assigned: the account has no usageLocation, which Graph requires before a licence; give the worker a country in HR that attributes.usageLocation renders as a two-letter ISO 3166 code".into(),
        }]
    );

    // "UK" is not ISO 3166: neither sent nor good enough for the licence.
    ada.as_of = at("2026-11-02T00:00:00Z");
    ada.country = Some("UK".into());
    let (uk, ops) = life.decide(&ada, "2026-11-02T00:00:00Z");
    assert!(ops.is_empty(), "{ops:?}");
    let refused: Vec<&str> = uk.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].starts_with(
        "usageLocation \"UK\" is not a two-letter ISO 3166 country code (e.g. GB, US): not sent"
    ));
    assert!(refused[1].starts_with("licence sku-e5 not assigned"));

    // Once HR has it, the usage location goes first, then the licence.
    ada.as_of = at("2026-11-03T00:00:00Z");
    ada.country = Some("GB".into());
    let (fixed, ops) = life.decide(&ada, "2026-11-03T00:00:00Z");
    assert!(fixed.problems.is_empty(), "{:?}", fixed.problems);
    let update = ops.iter().position(|op| matches!(op, Op::Update { set, .. } if set.get("usageLocation").map(String::as_str) == Some("GB")));
    let license = ops.iter().position(|op| {
        *op == Op::AssignLicense {
            sku: "sku-e5".into(),
        }
    });
    assert!(update.is_some() && update < license, "{ops:?}");
    assert_eq!(life.account().licenses, groups(&["sku-e5"]));

    // HR loses the country again: the account keeps its usage location, and with it the licence.
    ada.as_of = at("2026-11-04T00:00:00Z");
    ada.country = None;
    let (kept, ops) = life.decide(&ada, "2026-11-04T00:00:00Z");
    assert!(
        ops.is_empty() && kept.problems.is_empty(),
        "{ops:?} {:?}",
        kept.problems
    );
    assert_eq!(life.account().licenses, groups(&["sku-e5"]));
}

#[test]
fn without_a_usage_location_attribute_the_problem_says_to_configure_one() {
    let config = Config::parse(
        "[identity]\nupn = [\"{{ given_name|slug }}@acme.example\"]\n\n[[access]]\nlicenses = [\"sku-e3\"]\n",
        "t.toml",
    )
    .expect("valid");
    let ada = worker("1", "2026-11-01T00:00:00Z");
    let decision = first_decision(&config, &ada).expect("decides");
    assert!(decision.desired.expect("an account").licenses.is_empty());
    assert_eq!(
        decision.problems[0].message,
        "licence sku-e3 not assigned: the account has no usageLocation, which Graph requires before a licence; set usageLocation in [attributes] (e.g. usageLocation = \"{{ country }}\")"
    );
}

#[test]
fn a_usage_location_is_never_cleared_even_with_null_policy_clear() {
    let config = Config::parse(
        &format!("[directory]\nnull_policy = \"clear\"\n{CONFIG}"),
        "t.toml",
    )
    .expect("valid");
    let mut life = Life::new(config);
    let mut ada = worker("1", "2026-11-01T00:00:00Z");
    life.decide(&ada, "2026-11-01T00:00:00Z");
    ada.as_of = at("2026-11-02T00:00:00Z");
    ada.country = None;
    ada.job_title = None;
    let (decision, ops) = life.decide(&ada, "2026-11-02T00:00:00Z");
    let cleared: Vec<&String> = ops
        .iter()
        .flat_map(|op| match op {
            Op::Update { clear, .. } => clear.iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(
        cleared,
        ["jobTitle"],
        "Graph cannot clear usageLocation: {ops:?}"
    );
    assert_eq!(life.account().attributes["usageLocation"], "GB");
    assert_eq!(life.account().licenses, groups(&["sku-e5"]));
    assert_eq!(
        decision.problems[0].message,
        "usageLocation rendered empty and Graph cannot clear it: not sent, the directory keeps \"GB\"; give the worker a value in HR or change attributes.usageLocation"
    );
}

#[test]
fn names_graph_would_refuse_stop_the_create_with_the_property_named() {
    let long_domain = format!("{}.example", "a".repeat(41));
    let config = Config::parse(
        &format!("[identity]\nupn = [\"{{{{ given_name|slug }}}}@{long_domain}\"]\n"),
        "t.toml",
    )
    .expect("valid");
    let ada = worker("1", "2026-11-01T00:00:00Z");
    let error = first_decision(&config, &ada).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "identity.upn[0] rendered \"ada@{long_domain}\", which is not a valid UPN: the part after @ has 49 characters (at most 48)"
        )
    );

    // Names kept from an earlier employment are checked again before an account is made.
    let state = WorkerState {
        identifiers: Some(Identifiers {
            upn: format!("ada@{long_domain}"),
            mail: format!("ada@{long_domain}"),
        }),
        ..WorkerState::default()
    };
    let error = decide(
        &ada,
        &state,
        &config,
        at("2026-11-01T00:00:00Z"),
        &NothingTaken,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "invalid worker record: userPrincipalName: \"ada@{long_domain}\": the part after @ has 49 characters (at most 48), so the account cannot be created; change identity.upn"
        )
    );
}
