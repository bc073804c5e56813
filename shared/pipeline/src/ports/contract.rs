//! The [`StateStore`] contract as async test functions, so every adapter (memory, SQLite,
//! DynamoDB) is held to the same assertions. Enable the `contract-tests` feature from an
//! adapter's dev-dependencies and call each function from a `#[tokio::test]` (use the
//! multi-threaded runtime: the race tests want real parallelism).
//!
//! These are test helpers: they panic on the first broken promise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use hrsync_core::{Config, NothingTaken, Status, Worker, WorkerKey, WorkerState, apply, plan};
use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::ports::{AuditRecord, Hold, HoldStatus, Reservation, StateStore, StoreError};

/// How many tasks race for one version or one name.
const RACERS: usize = 8;

fn key(id: &str) -> WorkerKey {
    WorkerKey::new("hr", id)
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 literal")
}

fn marked(n: u32) -> WorkerState {
    WorkerState {
        left_at: Some(Timestamp::UNIX_EPOCH + SignedDuration::from_secs(i64::from(n))),
        ..WorkerState::default()
    }
}

fn record(worker: &WorkerKey, at_: &str, action: &str) -> AuditRecord {
    AuditRecord {
        worker: worker.clone(),
        at: at(at_),
        stage: "mapping".into(),
        action: action.into(),
        cause: format!("test {action}"),
        before: Some(json!({"department": "Sales"})),
        after: Some(json!({"department": "Engineering", "groups": ["g-eng"]})),
        trace: Some(format!("trace-{action}")),
    }
}

fn hold(id: &str, created_at: &str) -> Hold {
    Hold {
        id: id.into(),
        worker: key(id),
        action: "disable".into(),
        reason: "max_disables_per_hour (25) reached".into(),
        created_at: at(created_at),
        status: HoldStatus::Pending,
    }
}

/// Versions start at 1 and grow by one; a write naming any other version (or `None` for an
/// existing worker) is a conflict that reports what it found.
pub async fn versioned_save_load<S: StateStore>(store: Arc<S>) {
    let ada = key("1");
    assert_eq!(store.load(&ada).await.unwrap(), None);
    assert_eq!(store.workers().await.unwrap(), Vec::<WorkerKey>::new());

    assert_eq!(store.save(&ada, &marked(1), None).await.unwrap(), 1);
    let stored = store.load(&ada).await.unwrap().expect("saved");
    assert_eq!((stored.version, stored.state), (1, marked(1)));

    assert_eq!(store.save(&ada, &marked(2), Some(1)).await.unwrap(), 2);
    let stale = store.save(&ada, &marked(3), Some(1)).await.unwrap_err();
    assert_eq!(
        stale,
        StoreError::Conflict {
            worker: ada.clone(),
            expected: Some(1),
            found: Some(2)
        }
    );
    assert!(stale.is_retryable());
    assert!(stale.to_string().contains("hr:1"), "{stale}");
    let exists = store.save(&ada, &marked(3), None).await.unwrap_err();
    assert!(matches!(
        exists,
        StoreError::Conflict {
            expected: None,
            found: Some(2),
            ..
        }
    ));
    let missing = store
        .save(&key("2"), &marked(3), Some(4))
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        StoreError::Conflict {
            expected: Some(4),
            found: None,
            ..
        }
    ));
    // Failed writes changed nothing.
    let stored = store.load(&ada).await.unwrap().expect("saved");
    assert_eq!((stored.version, stored.state), (2, marked(2)));
    assert_eq!(store.load(&key("2")).await.unwrap(), None);

    store.save(&key("10"), &marked(0), None).await.unwrap();
    store.save(&key("0"), &marked(0), None).await.unwrap();
    assert_eq!(
        store.workers().await.unwrap(),
        vec![key("0"), key("1"), key("10")]
    );
}

/// Writers that read the same version race; exactly one wins, and its state is stored.
pub async fn concurrent_writers_one_wins<S: StateStore + 'static>(store: Arc<S>) {
    for (round, expected) in [(0u32, None), (1, Some(1))] {
        let worker = key("race");
        let tasks: Vec<_> = (0..RACERS as u32)
            .map(|n| {
                let store = Arc::clone(&store);
                let worker = worker.clone();
                tokio::spawn(async move {
                    (
                        n,
                        store
                            .save(&worker, &marked(round * 100 + n), expected)
                            .await,
                    )
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                (n, Ok(version)) => winners.push((n, version)),
                (_, Err(StoreError::Conflict { found, .. })) => {
                    assert_eq!(found, Some(round as u64 + 1));
                }
                (_, Err(e)) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (n, version) = winners[0];
        let stored = store.load(&worker).await.unwrap().expect("saved");
        assert_eq!(stored.version, version);
        assert_eq!(stored.state, marked(round * 100 + n));
    }
}

/// Records come back whole, per worker, oldest first, equal instants in insertion order.
pub async fn audit_order_and_isolation<S: StateStore>(store: Arc<S>) {
    let (ada, bob) = (key("1"), key("2"));
    let appended = [
        record(&ada, "2026-01-02T00:00:00Z", "move"),
        record(&bob, "2026-01-01T00:00:00Z", "join"),
        record(&ada, "2026-01-01T00:00:00Z", "join"),
        record(&ada, "2026-01-01T00:00:00.5Z", "create"),
        record(&ada, "2026-01-01T00:00:00Z", "add_group"),
        record(&ada, "2026-01-03T00:00:00Z", "leave"),
    ];
    for r in &appended {
        store.append_audit(r).await.unwrap();
    }
    let mut minimal = record(&bob, "2026-01-05T00:00:00Z", "held");
    (minimal.before, minimal.after, minimal.trace) = (None, None, None);
    store.append_audit(&minimal).await.unwrap();

    let actions = |records: &[AuditRecord]| -> Vec<String> {
        records.iter().map(|r| r.action.clone()).collect()
    };
    let ada_log = store.audit(&ada).await.unwrap();
    assert_eq!(
        actions(&ada_log),
        ["join", "add_group", "create", "move", "leave"]
    );
    assert_eq!(ada_log[0], appended[2]);
    assert_eq!(
        store.audit(&bob).await.unwrap(),
        vec![appended[1].clone(), minimal]
    );
    assert_eq!(store.audit(&key("3")).await.unwrap(), vec![]);
}

/// Many owners reserve one name at once (in different cases): one wins, the rest learn who.
pub async fn reservation_race<S: StateStore + 'static>(store: Arc<S>) {
    for round in 0..10 {
        let name = format!("ada.lovelace{round}@acme.example");
        let tasks: Vec<_> = (0..RACERS)
            .map(|n| {
                let store = Arc::clone(&store);
                let name = if n % 2 == 0 {
                    name.clone()
                } else {
                    name.to_uppercase()
                };
                tokio::spawn(async move {
                    let owner = key(&format!("{round}-{n}"));
                    let answer = store.reserve_name(&name, &owner).await.unwrap();
                    (owner, answer)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("task"));
        }
        let winners: Vec<_> = answers
            .iter()
            .filter(|(_, a)| *a == Reservation::Won)
            .map(|(owner, _)| owner.clone())
            .collect();
        assert_eq!(winners.len(), 1, "{answers:?}");
        let winner = &winners[0];
        for (owner, answer) in &answers {
            if owner != winner {
                assert_eq!(answer, &Reservation::HeldBy(winner.clone()));
            }
        }
        assert_eq!(
            store
                .name_owner(&name.to_uppercase())
                .await
                .unwrap()
                .as_ref(),
            Some(winner)
        );
        // Reserving again is idempotent for the owner.
        assert_eq!(
            store
                .reserve_name(&name.to_uppercase(), winner)
                .await
                .unwrap(),
            Reservation::Won
        );
    }
    assert_eq!(store.name_owner("nobody@acme.example").await.unwrap(), None);
}

/// Only the owner's release removes a reservation.
pub async fn release_only_by_owner<S: StateStore>(store: Arc<S>) {
    let (ada, bob) = (key("1"), key("2"));
    let name = "Ada.Lovelace@acme.example";
    assert_eq!(
        store.reserve_name(name, &ada).await.unwrap(),
        Reservation::Won
    );
    store.release_name(name, &bob).await.unwrap();
    assert_eq!(store.name_owner(name).await.unwrap(), Some(ada.clone()));
    assert_eq!(
        store.reserve_name(name, &bob).await.unwrap(),
        Reservation::HeldBy(ada.clone())
    );
    store
        .release_name("ADA.LOVELACE@ACME.EXAMPLE", &ada)
        .await
        .unwrap();
    assert_eq!(store.name_owner(name).await.unwrap(), None);
    assert_eq!(
        store.reserve_name(name, &bob).await.unwrap(),
        Reservation::Won
    );
    // Releasing a name nobody holds is fine.
    store.release_name("free@acme.example", &ada).await.unwrap();
}

/// First delivery true, redelivery false until the entry expires, then true once more.
pub async fn dedupe_first_delivery<S: StateStore>(store: Arc<S>) {
    let t0 = at("2026-03-01T09:00:00Z");
    let hour = SignedDuration::from_hours(1);
    let minute = SignedDuration::from_mins(1);
    assert!(store.first_delivery("evt-1", t0, t0 + hour).await.unwrap());
    assert!(
        !store
            .first_delivery("evt-1", t0 + minute, t0 + minute + hour)
            .await
            .unwrap()
    );
    assert!(
        store
            .first_delivery("evt-2", t0 + minute, t0 + hour)
            .await
            .unwrap()
    );
    // A redelivery does not extend the first entry: at its expiry the event is new again.
    assert!(
        !store
            .first_delivery("evt-1", t0 + hour - minute, t0 + hour * 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .first_delivery("evt-1", t0 + hour, t0 + hour * 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .first_delivery("evt-1", t0 + hour + minute, t0 + hour * 3)
            .await
            .unwrap()
    );
    // Sub-second instants compare as instants, not as text.
    let tick = at("2026-03-01T12:00:00.5Z");
    assert!(store.first_delivery("evt-3", t0, tick).await.unwrap());
    assert!(
        !store
            .first_delivery("evt-3", at("2026-03-01T12:00:00Z"), tick)
            .await
            .unwrap()
    );
    assert!(
        store
            .first_delivery("evt-3", tick, tick + hour)
            .await
            .unwrap()
    );
}

/// Pending -> approved or rejected, once; a re-put never resets a decision.
pub async fn holds_lifecycle<S: StateStore>(store: Arc<S>) {
    let (first, second) = (
        hold("1", "2026-03-01T09:00:00Z"),
        hold("2", "2026-03-01T08:00:00Z"),
    );
    store.put_hold(&first).await.unwrap();
    store.put_hold(&second).await.unwrap();
    let ids = |holds: Vec<Hold>| -> Vec<String> { holds.into_iter().map(|h| h.id).collect() };
    assert_eq!(ids(store.holds(None).await.unwrap()), ["2", "1"]);
    assert_eq!(
        store.holds(Some(HoldStatus::Pending)).await.unwrap(),
        vec![second.clone(), first.clone()]
    );

    assert!(store.resolve_hold("1", HoldStatus::Approved).await.unwrap());
    assert!(!store.resolve_hold("1", HoldStatus::Approved).await.unwrap());
    assert!(!store.resolve_hold("1", HoldStatus::Rejected).await.unwrap());
    assert!(
        !store
            .resolve_hold("unknown", HoldStatus::Approved)
            .await
            .unwrap()
    );
    assert!(!store.resolve_hold("2", HoldStatus::Pending).await.unwrap());

    // The stage runs again and puts its (pending) hold again: the approval stands.
    store.put_hold(&first).await.unwrap();
    let approved = store.holds(Some(HoldStatus::Approved)).await.unwrap();
    assert_eq!(
        approved,
        vec![Hold {
            status: HoldStatus::Approved,
            ..first.clone()
        }]
    );
    assert_eq!(
        ids(store.holds(Some(HoldStatus::Pending)).await.unwrap()),
        ["2"]
    );
    assert!(store.resolve_hold("2", HoldStatus::Rejected).await.unwrap());
    assert_eq!(
        ids(store.holds(Some(HoldStatus::Rejected)).await.unwrap()),
        ["2"]
    );
    assert_eq!(
        store.holds(Some(HoldStatus::Pending)).await.unwrap(),
        vec![]
    );
    assert_eq!(ids(store.holds(None).await.unwrap()), ["2", "1"]);
}

const CONFIG: &str = r#"
[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example", "{{ given_name|slug }}.{{ family_name|slug }}{{ n }}@acme.example"]
display_name = "{{ preferred_name or given_name }} {{ family_name }}"

[attributes]
department = "{{ department }}"
jobTitle = "{{ job_title }}"
officeLocation = "{{ location }}"
employeeType = "{{ custom.badge }}"

[[access]]
name = "engineering"
when = "department == 'Engineering'"
groups = ["g-eng"]
licenses = ["sku-e5"]

[[access]]
name = "everyone"
groups = ["g-all"]

[lifecycle]
default_time_zone = "Europe/London"
leave_at = "17:00"
remove_access_after_days = 3
"#;

/// The state a real decision produces (snapshot, identifiers, desired and applied identity,
/// timers in a non-UTC zone) survives the store unchanged.
pub async fn worker_state_round_trip<S: StateStore>(store: Arc<S>) {
    let config = Config::parse(CONFIG, "contract.toml").expect("contract config is valid");
    let zoe = key("42");
    let mut worker = Worker::new(
        zoe.clone(),
        "Zoë",
        "O'Brien-Smith",
        at("2026-03-01T08:15:30.123456789Z"),
    );
    worker.preferred_name = Some("Zo".into());
    worker.hire_date = Some(date(2025, 6, 2));
    worker.termination_date = Some(date(2026, 3, 31));
    worker.termination_type = Some("voluntary".into());
    worker.department = Some("Engineering".into());
    worker.job_title = Some("Engineer — Platform".into());
    worker.location = Some("Sydney".into());
    worker.time_zone = Some("Australia/Sydney".into());
    worker.manager_id = Some("7".into());
    worker.status = Status::Active;
    worker.custom.insert("badge".into(), "B-0042".into());

    let decision = hrsync_core::decide(
        &worker,
        &WorkerState::default(),
        &config,
        at("2026-03-02T00:00:00Z"),
        &NothingTaken,
    )
    .expect("decides");
    let mut state = decision.state;
    let ops = plan(state.desired.as_ref(), state.applied.as_ref());
    state.applied = apply(None, &ops).map(|mut applied| {
        applied.object_id = Some("00000000-0000-0000-0000-000000000042".into());
        applied
    });
    // The state really is rich, so the round trip proves something.
    assert!(state.snapshot.is_some() && state.identifiers.is_some() && state.provisioned);
    let desired = state.desired.as_ref().expect("desired");
    assert_eq!(
        desired.groups,
        BTreeSet::from(["g-all".into(), "g-eng".into()])
    );
    assert!(desired.manager.is_some() && state.applied.is_some());
    assert!(!state.timers.is_empty(), "a leave timer lies ahead");

    let version = store.save(&zoe, &state, None).await.unwrap();
    let stored = store.load(&zoe).await.unwrap().expect("saved");
    assert_eq!(stored.version, version);
    assert_eq!(stored.state, state);
}
