//! The [`StateStore`], [`Queue`] and [`Timers`] contracts as async test functions, so every
//! adapter (memory, SQLite, DynamoDB/SQS/Scheduler) is held to the same assertions. Enable the `contract-tests` feature from an
//! adapter's dev-dependencies and call each function from a `#[tokio::test]` (use the
//! multi-threaded runtime: the race tests want real parallelism).
//!
//! These are test helpers: they panic on the first broken promise.
//!
//! [`store_contract_cases!`] names every state-store case once, so no adapter's suite can
//! forget one: `store_contract_cases!(my_macro)` expands to `my_macro!(case, case, ...)`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Calls `$then!(...)` with the name of every [`StateStore`] contract case in this module.
#[macro_export]
macro_rules! store_contract_cases {
    ($then:ident) => {
        $then!(
            versioned_save_load,
            concurrent_writers_one_wins,
            audit_order_and_isolation,
            save_writes_its_audit_atomically,
            reservation_race,
            release_only_by_owner,
            dedupe_first_delivery,
            holds_lifecycle,
            worker_state_round_trip,
            hold_by_id,
            snapshot_inbox,
            delivered_matches_first_delivery,
            budget_sliding_window,
            budget_race,
            budget_counts_takes_stamped_later,
            waiters_wait_read_and_forget,
            poll_cursors,
            recent_audit_newest_first,
        );
    };
}

use std::collections::BTreeSet;
use std::sync::Arc;

use hrsync_core::{Config, NothingTaken, Status, Worker, WorkerKey, WorkerState, apply, plan};
use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::ports::{
    AuditRecord, DEDUP_WINDOW, Delivery, Hold, HoldStatus, Nudge, Queue, QueueDepth, QueueError,
    QueueName, Reservation, RetryOutcome, StateStore, StoreError, TimerSpec, Timers,
};

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

    assert_eq!(store.save(&ada, &marked(1), None, &[]).await.unwrap(), 1);
    let stored = store.load(&ada).await.unwrap().expect("saved");
    assert_eq!((stored.version, stored.state), (1, marked(1)));

    assert_eq!(store.save(&ada, &marked(2), Some(1), &[]).await.unwrap(), 2);
    let stale = store
        .save(&ada, &marked(3), Some(1), &[])
        .await
        .unwrap_err();
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
    let exists = store.save(&ada, &marked(3), None, &[]).await.unwrap_err();
    assert!(matches!(
        exists,
        StoreError::Conflict {
            expected: None,
            found: Some(2),
            ..
        }
    ));
    let missing = store
        .save(&key("2"), &marked(3), Some(4), &[])
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

    store.save(&key("10"), &marked(0), None, &[]).await.unwrap();
    store.save(&key("0"), &marked(0), None, &[]).await.unwrap();
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
                            .save(&worker, &marked(round * 100 + n), expected, &[])
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

/// A save's audit records are written with it, and not at all when the save loses.
pub async fn save_writes_its_audit_atomically<S: StateStore>(store: Arc<S>) {
    let ada = key("1");
    let joined = [
        record(&ada, "2026-01-01T00:00:00Z", "join"),
        record(&ada, "2026-01-01T00:00:01Z", "create"),
    ];
    assert_eq!(
        store.save(&ada, &marked(1), None, &joined).await.unwrap(),
        1
    );
    assert_eq!(store.audit(&ada).await.unwrap(), joined.to_vec());

    let lost = [record(&ada, "2026-01-02T00:00:00Z", "move")];
    let conflict = store.save(&ada, &marked(2), None, &lost).await.unwrap_err();
    assert!(
        matches!(conflict, StoreError::Conflict { .. }),
        "{conflict:?}"
    );
    assert_eq!(
        store.audit(&ada).await.unwrap(),
        joined.to_vec(),
        "a save that lost its race leaves no audit behind"
    );
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

/// One hold by id: unknown is `None`; it reflects a resolution and survives a re-put.
pub async fn hold_by_id<S: StateStore>(store: Arc<S>) {
    assert_eq!(store.hold("1").await.unwrap(), None);
    let (first, second) = (
        hold("1", "2026-03-01T09:00:00Z"),
        hold("2", "2026-03-01T08:00:00Z"),
    );
    store.put_hold(&first).await.unwrap();
    store.put_hold(&second).await.unwrap();
    assert_eq!(store.hold("1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.hold("2").await.unwrap(), Some(second.clone()));
    assert_eq!(store.hold("3").await.unwrap(), None);

    assert!(store.resolve_hold("1", HoldStatus::Approved).await.unwrap());
    store.put_hold(&first).await.unwrap();
    let approved = Hold {
        status: HoldStatus::Approved,
        ..first
    };
    assert_eq!(store.hold("1").await.unwrap(), Some(approved));
    assert_eq!(store.hold("2").await.unwrap(), Some(second));
}

fn snapshot_of(worker: &WorkerKey, given_name: &str, as_of: &str) -> Worker {
    Worker::new(worker.clone(), given_name, "Lovelace", at(as_of))
}

/// The inbox keeps the newest record per worker: a newer one replaces it, an older one is
/// ignored (false), an equal `as_of` replaces it; workers are separate.
pub async fn snapshot_inbox<S: StateStore>(store: Arc<S>) {
    let (ada, bob) = (key("1"), key("2"));
    assert_eq!(store.snapshot(&ada).await.unwrap(), None);

    let mut first = snapshot_of(&ada, "Ada", "2026-03-01T09:00:00Z");
    first.hire_date = Some(date(2025, 6, 2));
    first.department = Some("Engineering".into());
    first.time_zone = Some("Europe/London".into());
    first.custom.insert("badge".into(), "B-0001".into());
    assert!(store.put_snapshot(&first).await.unwrap());
    assert_eq!(store.snapshot(&ada).await.unwrap(), Some(first.clone()));

    let older = snapshot_of(&ada, "Old", "2026-03-01T08:59:59Z");
    assert!(!store.put_snapshot(&older).await.unwrap());
    assert_eq!(store.snapshot(&ada).await.unwrap(), Some(first.clone()));

    let newer = snapshot_of(&ada, "Newer", "2026-03-02T09:00:00Z");
    assert!(store.put_snapshot(&newer).await.unwrap());
    assert_eq!(store.snapshot(&ada).await.unwrap(), Some(newer.clone()));

    let same_instant = snapshot_of(&ada, "Corrected", "2026-03-02T09:00:00Z");
    assert!(store.put_snapshot(&same_instant).await.unwrap());
    assert_eq!(
        store.snapshot(&ada).await.unwrap(),
        Some(same_instant.clone())
    );
    // The same record again is kept again (level-triggered intake).
    assert!(store.put_snapshot(&same_instant).await.unwrap());

    // Another worker's inbox is separate, whatever its instants.
    let bobs = snapshot_of(&bob, "Bob", "2026-01-01T00:00:00Z");
    assert!(store.put_snapshot(&bobs).await.unwrap());
    assert_eq!(store.snapshot(&bob).await.unwrap(), Some(bobs));
    assert_eq!(store.snapshot(&ada).await.unwrap(), Some(same_instant));
    assert_eq!(store.snapshot(&key("3")).await.unwrap(), None);

    // Sub-second instants compare as instants, not as text.
    let cyd = key("4");
    let half = snapshot_of(&cyd, "Half", "2026-03-01T12:00:00.5Z");
    assert!(store.put_snapshot(&half).await.unwrap());
    let whole = snapshot_of(&cyd, "Whole", "2026-03-01T12:00:00Z");
    assert!(!store.put_snapshot(&whole).await.unwrap());
    assert_eq!(store.snapshot(&cyd).await.unwrap(), Some(half));
}

/// `delivered` is true exactly when `first_delivery` would answer false (the event was seen
/// and its entry has not expired), and it never marks the event itself.
pub async fn delivered_matches_first_delivery<S: StateStore>(store: Arc<S>) {
    let t0 = at("2026-03-01T09:00:00Z");
    let hour = SignedDuration::from_hours(1);
    let minute = SignedDuration::from_mins(1);
    assert!(!store.delivered("evt-1", t0).await.unwrap(), "unseen");
    assert!(
        !store.delivered("evt-1", t0).await.unwrap(),
        "asking does not mark"
    );
    assert!(
        store.first_delivery("evt-1", t0, t0 + hour).await.unwrap(),
        "delivered did not mark the event"
    );
    assert!(store.delivered("evt-1", t0).await.unwrap());
    assert!(store.delivered("evt-1", t0 + hour - minute).await.unwrap());
    assert!(
        store
            .delivered("evt-1", t0 + hour - SignedDuration::from_nanos(1))
            .await
            .unwrap()
    );
    assert!(!store.delivered("evt-2", t0 + minute).await.unwrap());

    // At its expiry the entry counts as unseen, as first_delivery agrees.
    assert!(!store.delivered("evt-1", t0 + hour).await.unwrap());
    assert!(!store.delivered("evt-1", t0 + hour * 2).await.unwrap());
    assert!(
        store
            .first_delivery("evt-1", t0 + hour, t0 + hour * 2)
            .await
            .unwrap()
    );
    assert!(store.delivered("evt-1", t0 + hour).await.unwrap());

    // Sub-second instants compare as instants, not as text.
    let tick = at("2026-03-01T12:00:00.5Z");
    assert!(store.first_delivery("evt-3", t0, tick).await.unwrap());
    assert!(
        store
            .delivered("evt-3", at("2026-03-01T12:00:00Z"))
            .await
            .unwrap()
    );
    assert!(!store.delivered("evt-3", tick).await.unwrap());
}

/// A sliding-window budget: `limit` keys win within the window, the next loses; a key that
/// already took wins again without taking more; a take leaves the window `window` after it
/// was made; budgets are separate.
pub async fn budget_sliding_window<S: StateStore>(store: Arc<S>) {
    let t0 = at("2026-03-01T09:00:00Z");
    let hour = std::time::Duration::from_secs(3600);
    let mins = |n: i64| t0 + SignedDuration::from_mins(n);
    let take = |budget: &'static str, key: &'static str, now: Timestamp| {
        let store = Arc::clone(&store);
        async move { store.take_budget(budget, key, now, hour, 3).await.unwrap() }
    };
    assert!(take("disables", "a", mins(0)).await);
    assert!(take("disables", "b", mins(1)).await);
    assert!(take("disables", "c", mins(2)).await);
    assert!(
        !take("disables", "d", mins(3)).await,
        "the fourth key loses"
    );
    assert!(take("disables", "b", mins(4)).await, "taking again wins");
    assert!(
        !take("disables", "d", mins(5)).await,
        "and taking again took nothing more"
    );
    // Another budget is independent.
    assert!(take("deletes", "d", mins(5)).await);
    assert!(take("deletes", "a", mins(5)).await);

    // The window is (now - 1h, now]: at t0 + 1h, a's take (at t0) has left it.
    assert!(!take("disables", "d", mins(59)).await);
    assert!(take("disables", "d", mins(60)).await);
    assert!(!take("disables", "e", mins(60)).await);
    assert!(
        !take("disables", "a", mins(60)).await,
        "an expired take is no pass: a waits like anyone"
    );
    // At t0 + 61m b's take (t0 + 1m) leaves the window: a gets its place.
    assert!(take("disables", "a", mins(61)).await);
    // Taking again at t0 + 4m did not extend b's take: b is out, and the budget is full.
    assert!(!take("disables", "b", mins(61)).await);
    assert!(take("disables", "c", mins(61)).await, "c is still in");
    // The budget "deletes" saw none of this: d and a are in it, one place is left.
    assert!(take("deletes", "d", mins(61)).await);
    assert!(take("deletes", "e", mins(61)).await);
    assert!(!take("deletes", "f", mins(61)).await);

    // A limit of zero lets no new key through.
    assert!(
        !store
            .take_budget("disables", "z", mins(61), hour, 0)
            .await
            .unwrap()
    );
}

/// Many keys race for a budget of three: exactly three win, and only they win again.
pub async fn budget_race<S: StateStore + 'static>(store: Arc<S>) {
    const LIMIT: u64 = 3;
    let t0 = at("2026-03-01T09:00:00Z");
    let window = std::time::Duration::from_secs(3600);
    for round in 0..10 {
        let budget = format!("disables-{round}");
        let tasks: Vec<_> = (0..RACERS)
            .map(|n| {
                let store = Arc::clone(&store);
                let budget = budget.clone();
                tokio::spawn(async move {
                    let key = format!("k{n}");
                    let won = store
                        .take_budget(&budget, &key, t0, window, LIMIT)
                        .await
                        .unwrap();
                    (key, won)
                })
            })
            .collect();
        let mut winners = BTreeSet::new();
        for task in tasks {
            let (key, won) = task.await.expect("task");
            if won {
                winners.insert(key);
            }
        }
        assert_eq!(winners.len() as u64, LIMIT, "round {round}: {winners:?}");
        let later = t0 + SignedDuration::from_mins(1);
        for n in 0..RACERS {
            let key = format!("k{n}");
            let again = store
                .take_budget(&budget, &key, later, window, LIMIT)
                .await
                .unwrap();
            assert_eq!(again, winners.contains(&key), "round {round}: {key}");
        }
    }
}

/// `wait_for` is idempotent; `waiters` returns the waiters sorted (by key, not by text)
/// and removes nothing; `forget_waiters` removes exactly those named; each awaited worker
/// has its own.
pub async fn waiters_wait_read_and_forget<S: StateStore>(store: Arc<S>) {
    let (manager, other) = (key("m"), key("o"));
    // WorkerKey order puts hr:1 before hr2:0; text order would not.
    let (first, second, third) = (key("1"), WorkerKey::new("hr2", "0"), key("10"));
    assert_eq!(store.waiters(&manager).await.unwrap(), vec![]);
    store
        .forget_waiters(&manager, std::slice::from_ref(&first))
        .await
        .unwrap();

    store.wait_for(&manager, &second).await.unwrap();
    store.wait_for(&manager, &third).await.unwrap();
    store.wait_for(&manager, &first).await.unwrap();
    store.wait_for(&manager, &second).await.unwrap();
    store.wait_for(&other, &first).await.unwrap();

    let all = vec![first.clone(), third.clone(), second.clone()];
    assert_eq!(store.waiters(&manager).await.unwrap(), all);
    assert_eq!(
        store.waiters(&manager).await.unwrap(),
        all,
        "reading removes nothing"
    );
    assert_eq!(store.waiters(&key("nobody")).await.unwrap(), vec![]);

    store
        .forget_waiters(&manager, &[first.clone(), second.clone()])
        .await
        .unwrap();
    assert_eq!(store.waiters(&manager).await.unwrap(), vec![third.clone()]);
    store
        .forget_waiters(&manager, &[first.clone(), second.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.waiters(&manager).await.unwrap(),
        vec![third.clone()],
        "forgetting again changes nothing"
    );
    assert_eq!(
        store.waiters(&other).await.unwrap(),
        vec![first.clone()],
        "another worker's waiters are their own"
    );

    // Waiting again after being forgotten is a new wait.
    store.wait_for(&manager, &second).await.unwrap();
    assert_eq!(
        store.waiters(&manager).await.unwrap(),
        vec![third.clone(), second.clone()]
    );
    store
        .forget_waiters(&manager, &[third, second])
        .await
        .unwrap();
    assert_eq!(store.waiters(&manager).await.unwrap(), vec![]);
}

/// The most recent audit records of all workers, newest first, equal instants latest
/// insertion first (including records written by `save`), at most `limit`; and those of a
/// time window.
pub async fn recent_audit_newest_first<S: StateStore>(store: Arc<S>) {
    assert_eq!(store.recent_audit(10).await.unwrap(), vec![]);
    let (ada, bob, cyd) = (key("1"), key("2"), key("3"));
    let appended = [
        record(&ada, "2026-01-01T00:00:00Z", "join"),
        record(&bob, "2026-01-03T00:00:00Z", "move"),
        record(&ada, "2026-01-02T00:00:00Z", "create"),
        record(&bob, "2026-01-02T00:00:00Z", "add_group"),
        record(&ada, "2026-01-02T00:00:00.5Z", "leave"),
    ];
    for r in &appended {
        store.append_audit(r).await.unwrap();
    }
    let saved = record(&cyd, "2026-01-02T00:00:00Z", "held");
    store
        .save(&cyd, &marked(1), None, std::slice::from_ref(&saved))
        .await
        .unwrap();

    let actions = |records: Vec<AuditRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.action).collect()
    };
    let all = store.recent_audit(100).await.unwrap();
    assert_eq!(
        actions(all.clone()),
        ["move", "leave", "held", "add_group", "create", "join"]
    );
    assert_eq!(all[0], appended[1]);
    assert_eq!(all[2], saved);
    assert_eq!(
        actions(store.recent_audit(3).await.unwrap()),
        ["move", "leave", "held"]
    );
    assert_eq!(store.recent_audit(0).await.unwrap(), vec![]);
    assert_eq!(store.recent_audit(usize::MAX).await.unwrap(), all);

    // A window: at or after `since`, before `until`, across days.
    assert_eq!(
        actions(
            store
                .audit_between(at("2026-01-02T00:00:00Z"), at("2026-01-03T00:00:00Z"), 100)
                .await
                .unwrap()
        ),
        ["leave", "held", "add_group", "create"]
    );
    assert_eq!(
        actions(
            store
                .audit_between(at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00.5Z"), 2)
                .await
                .unwrap()
        ),
        ["held", "add_group"]
    );
    assert_eq!(
        store
            .audit_between(at("2026-01-04T00:00:00Z"), at("2027-01-01T00:00:00Z"), 100)
            .await
            .unwrap(),
        vec![]
    );
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

    let version = store.save(&zoe, &state, None, &[]).await.unwrap();
    let stored = store.load(&zoe).await.unwrap().expect("saved");
    assert_eq!(stored.version, version);
    assert_eq!(stored.state, state);
}

// ---------------------------------------------------------------------------------------
// Queue

const WE: QueueName = QueueName::WorkerEvents;

/// A visibility long enough that nothing is redelivered unless a test moves `now` past it.
const VISIBILITY: std::time::Duration = std::time::Duration::from_secs(60);

fn nudge(worker: &str, reason: &str) -> Nudge {
    Nudge::new(key(worker), reason, format!("trace-{reason}"))
}

fn reasons(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.nudge.reason.clone()).collect()
}

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

fn depth(visible: u64, in_flight: u64, dead: u64) -> QueueDepth {
    QueueDepth {
        visible,
        in_flight,
        dead,
    }
}

/// The body is the documented JSON; a message is received whole, once, and gone after ack.
pub async fn queue_send_receive_ack<Q: Queue>(queue: Arc<Q>) {
    let body = serde_json::to_value(nudge("123", "webhook")).unwrap();
    assert_eq!(
        body,
        json!({"v": 1, "worker": "hr:123", "reason": "webhook", "trace": "trace-webhook"})
    );
    assert_eq!(
        QueueName::ALL.map(QueueName::as_str),
        ["hr-events", "worker-events", "directory", "writeback"]
    );
    assert_eq!(QueueName::parse("directory"), Some(QueueName::Directory));

    let t0 = at("2026-03-01T09:00:00Z");
    assert_eq!(queue.receive(WE, 10, t0, VISIBILITY).await.unwrap(), vec![]);
    queue
        .send(WE, &nudge("123", "webhook"), "d1", t0)
        .await
        .unwrap();
    // Queues are separate.
    assert_eq!(
        queue
            .receive(QueueName::Directory, 10, t0, VISIBILITY)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 0, 0));

    let got = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(got.len(), 1);
    let delivery = &got[0];
    assert_eq!(delivery.nudge, nudge("123", "webhook"));
    assert_eq!(
        (delivery.queue, delivery.attempt, delivery.group.as_str()),
        (WE, 1, "hr:123")
    );
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 1, 0));
    // In flight: not delivered again.
    assert_eq!(queue.receive(WE, 10, t0, VISIBILITY).await.unwrap(), vec![]);

    queue.ack(delivery).await.unwrap();
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 0, 0));
    let late = t0 + SignedDuration::from_hours(1);
    assert_eq!(
        queue.receive(WE, 10, late, VISIBILITY).await.unwrap(),
        vec![]
    );
    // Acking twice: the receipt is gone.
    let again = queue.ack(delivery).await.unwrap_err();
    assert!(
        matches!(again, QueueError::StaleReceipt { .. }),
        "{again:?}"
    );
    assert!(!again.is_retryable());
}

/// Two groups interleaved: each group is delivered in send order and one at a time, while
/// the other group goes on; `max` caps a batch.
pub async fn queue_fifo_per_group<Q: Queue>(queue: Arc<Q>) {
    let t0 = at("2026-03-01T09:00:00Z");
    for (n, (worker, reason)) in [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("b", "b2"),
        ("a", "a3"),
    ]
    .into_iter()
    .enumerate()
    {
        queue
            .send(WE, &nudge(worker, reason), &format!("d{n}"), t0)
            .await
            .unwrap();
    }
    let first = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&first), ["a1", "b1"], "one head per group");
    assert_eq!(queue.depth(WE).await.unwrap(), depth(3, 2, 0));
    // A's second message waits while A's first is in flight; B's goes on once B1 is done.
    queue.ack(&first[1]).await.unwrap();
    let second = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&second), ["b2"]);
    queue.ack(&first[0]).await.unwrap();
    queue.ack(&second[0]).await.unwrap();
    let third = queue.receive(WE, 1, t0, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&third), ["a2"]);
    assert_eq!(queue.receive(WE, 10, t0, VISIBILITY).await.unwrap(), vec![]);
    queue.ack(&third[0]).await.unwrap();
    let fourth = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&fourth), ["a3"]);
    assert_eq!(fourth[0].attempt, 1);
    queue.ack(&fourth[0]).await.unwrap();
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 0, 0));

    // `max` takes the oldest heads first.
    for (n, worker) in ["c", "d", "e"].into_iter().enumerate() {
        queue
            .send(WE, &nudge(worker, worker), &format!("m{n}"), t0)
            .await
            .unwrap();
    }
    let batch = queue.receive(WE, 2, t0, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&batch), ["c", "d"]);
    assert_eq!(
        reasons(&queue.receive(WE, 0, t0, VISIBILITY).await.unwrap()),
        Vec::<String>::new()
    );
}

/// A deduplication id repeated within 5 minutes of its first send is dropped, per queue;
/// after the window it is a new message.
pub async fn queue_dedup_window<Q: Queue>(queue: Arc<Q>) {
    let t0 = at("2026-03-01T09:00:00Z");
    let minute = SignedDuration::from_mins(1);
    queue
        .send(WE, &nudge("1", "first"), "evt-1", t0)
        .await
        .unwrap();
    queue
        .send(WE, &nudge("1", "dup"), "evt-1", t0 + minute)
        .await
        .unwrap();
    // The same id on another queue is another message.
    queue
        .send(
            QueueName::Directory,
            &nudge("1", "other-queue"),
            "evt-1",
            t0,
        )
        .await
        .unwrap();
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 0, 0));
    assert_eq!(
        queue.depth(QueueName::Directory).await.unwrap(),
        depth(1, 0, 0)
    );

    // Just inside the window (counted from the first send, not extended by the duplicate).
    let window = SignedDuration::try_from(DEDUP_WINDOW).unwrap();
    let inside = t0 + window - SignedDuration::from_millis(1);
    queue
        .send(WE, &nudge("1", "dup2"), "evt-1", inside)
        .await
        .unwrap();
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 0, 0));
    // Even once the first was received and acked, the id is remembered.
    let got = queue.receive(WE, 10, inside, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&got), ["first"]);
    queue.ack(&got[0]).await.unwrap();
    queue
        .send(WE, &nudge("1", "dup3"), "evt-1", inside)
        .await
        .unwrap();
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 0, 0));

    // At the end of the window it is accepted.
    queue
        .send(WE, &nudge("1", "later"), "evt-1", t0 + window)
        .await
        .unwrap();
    let got = queue
        .receive(WE, 10, t0 + window, VISIBILITY)
        .await
        .unwrap();
    assert_eq!(reasons(&got), ["later"]);
}

/// An unacked message comes back after its visibility timeout with the next attempt
/// number; the old receipt is then stale.
pub async fn queue_visibility_timeout<Q: Queue>(queue: Arc<Q>) {
    let t0 = at("2026-03-01T09:00:00Z");
    queue.send(WE, &nudge("1", "a1"), "a1", t0).await.unwrap();
    queue.send(WE, &nudge("1", "a2"), "a2", t0).await.unwrap();
    let first = queue.receive(WE, 10, t0, secs(30)).await.unwrap();
    assert_eq!(
        (reasons(&first), first[0].attempt),
        (vec!["a1".to_owned()], 1)
    );

    let just_before = t0 + SignedDuration::from_millis(29_999);
    assert_eq!(
        queue.receive(WE, 10, just_before, secs(30)).await.unwrap(),
        vec![]
    );
    let expired = t0 + SignedDuration::from_secs(30);
    let second = queue.receive(WE, 10, expired, secs(30)).await.unwrap();
    assert_eq!(reasons(&second), ["a1"], "the head again, not a2");
    assert_eq!(second[0].attempt, 2);
    assert_ne!(second[0].id, first[0].id);

    // The first receiver finishes late: its receipt no longer counts.
    let stale = queue.ack(&first[0]).await.unwrap_err();
    assert!(
        matches!(stale, QueueError::StaleReceipt { queue: WE, .. }),
        "{stale:?}"
    );
    let stale = queue
        .retry(&first[0], "late", expired, secs(1), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, QueueError::StaleReceipt { .. }),
        "{stale:?}"
    );
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 1, 0));

    queue.ack(&second[0]).await.unwrap();
    let third = queue.receive(WE, 10, expired, secs(30)).await.unwrap();
    assert_eq!(
        (reasons(&third), third[0].attempt),
        (vec!["a2".to_owned()], 1)
    );
}

/// A retried message waits out its backoff at the head of its group (the group waits with
/// it), comes back with the next attempt number, and is dead-lettered with the reason
/// after `max_attempts`; a redrive puts it back at the tail of its group.
/// A message whose receivers keep dying (no ack, no retry) is dead-lettered after
/// `max_receives` deliveries; one that was retried is left to `retry`'s own limit.
pub async fn queue_abandoned_messages_are_dead_lettered<Q: Queue>(queue: Arc<Q>) {
    let t0 = at("2026-03-01T09:00:00Z");
    let reason = "not settled after 2 deliveries (receiver gone)";
    queue
        .send(WE, &nudge("1", "crash"), "crash", t0)
        .await
        .unwrap();
    queue
        .send(WE, &nudge("2", "flaky"), "flaky", t0)
        .await
        .unwrap();
    let first = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(first.len(), 2);
    let flaky = first.iter().find(|d| d.group == "hr:2").unwrap();
    queue
        .retry(flaky, "graph 503", t0, secs(1), 5)
        .await
        .unwrap();
    // In flight (not yet visible again) and below the limit: nothing is swept.
    assert_eq!(
        queue
            .dead_letter_abandoned(WE, t0, 1, reason)
            .await
            .unwrap(),
        0
    );

    let t1 = t0 + SignedDuration::from_secs(61);
    assert_eq!(
        queue
            .dead_letter_abandoned(WE, t1, 2, reason)
            .await
            .unwrap(),
        0,
        "one delivery so far"
    );
    let second = queue.receive(WE, 10, t1, VISIBILITY).await.unwrap();
    let crash = second.iter().find(|d| d.group == "hr:1").unwrap();
    assert_eq!(crash.attempt, 2);
    let flaky = second.iter().find(|d| d.group == "hr:2").unwrap();
    queue
        .retry(flaky, "graph 503", t1, secs(1), 5)
        .await
        .unwrap();

    let t2 = t1 + SignedDuration::from_secs(61);
    assert_eq!(
        queue
            .dead_letter_abandoned(WE, t2, 2, reason)
            .await
            .unwrap(),
        1
    );
    let dead = queue.dead_letters(WE).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].nudge.reason.as_str(),
            dead[0].reason.as_str(),
            dead[0].attempts
        ),
        ("crash", reason, 2)
    );
    let rest = queue.receive(WE, 10, t2, VISIBILITY).await.unwrap();
    assert_eq!(
        reasons(&rest),
        vec!["flaky".to_owned()],
        "the retried message is not swept"
    );
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 1, 1));
}

pub async fn queue_retry_dead_letter_redrive<Q: Queue>(queue: Arc<Q>) {
    let t0 = at("2026-03-01T09:00:00Z");
    let max = 3;
    queue.send(WE, &nudge("1", "a1"), "a1", t0).await.unwrap();
    queue.send(WE, &nudge("1", "a2"), "a2", t0).await.unwrap();
    queue.send(WE, &nudge("2", "b1"), "b1", t0).await.unwrap();

    let mut now = t0;
    for attempt in 1..max {
        let got = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
        let a = got.iter().find(|d| d.group == "hr:1").expect("a1 is due");
        assert_eq!((a.nudge.reason.as_str(), a.attempt), ("a1", attempt));
        if let Some(b) = got.iter().find(|d| d.group == "hr:2") {
            queue.ack(b).await.unwrap();
        }
        let outcome = queue
            .retry(a, &format!("graph 503 #{attempt}"), now, secs(10), max)
            .await
            .unwrap();
        assert_eq!(outcome, RetryOutcome::Retried);
        assert_eq!(queue.depth(WE).await.unwrap(), depth(2, 0, 0));
        // During the backoff the whole group waits: a2 is not delivered.
        let waiting = now + SignedDuration::from_millis(9_999);
        assert_eq!(
            queue.receive(WE, 10, waiting, VISIBILITY).await.unwrap(),
            vec![]
        );
        now += SignedDuration::from_secs(10);
    }
    let last = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
    assert_eq!(
        (reasons(&last), last[0].attempt),
        (vec!["a1".to_owned()], max)
    );
    let outcome = queue
        .retry(
            &last[0],
            "graph 400: invalid usageLocation",
            now,
            secs(10),
            max,
        )
        .await
        .unwrap();
    assert_eq!(outcome, RetryOutcome::DeadLettered);
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 0, 1));

    let dead = queue.dead_letters(WE).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].nudge, nudge("1", "a1"));
    assert_eq!(dead[0].reason, "graph 400: invalid usageLocation");
    assert_eq!((dead[0].attempts, dead[0].at), (max, now));
    assert_eq!(
        queue.dead_letters(QueueName::Directory).await.unwrap(),
        vec![]
    );

    // The group moves on to a2 at once.
    let next = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&next), ["a2"]);

    assert!(!queue.redrive(WE, "no-such-id", now).await.unwrap());
    assert!(
        !queue
            .redrive(QueueName::Directory, &dead[0].id, now)
            .await
            .unwrap()
    );
    assert!(queue.redrive(WE, &dead[0].id, now).await.unwrap());
    assert!(
        !queue.redrive(WE, &dead[0].id, now).await.unwrap(),
        "only once"
    );
    assert_eq!(queue.dead_letters(WE).await.unwrap(), vec![]);
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 1, 0));
    // Behind a2 (in flight), then delivered with its attempts starting again.
    assert_eq!(
        queue.receive(WE, 10, now, VISIBILITY).await.unwrap(),
        vec![]
    );
    queue.ack(&next[0]).await.unwrap();
    let redriven = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
    assert_eq!(
        (reasons(&redriven), redriven[0].attempt),
        (vec!["a1".to_owned()], 1)
    );
    queue.ack(&redriven[0]).await.unwrap();
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 0, 0));
}

/// A delivery postponed because its stage's service is down keeps its place at the head of
/// its group and uses up none of its tries, however long the outage.
pub async fn queue_postpone_keeps_place_and_tries<Q: Queue>(queue: Arc<Q>) {
    let t0 = at("2026-03-01T09:00:00Z");
    queue.send(WE, &nudge("1", "a1"), "a1", t0).await.unwrap();
    queue.send(WE, &nudge("1", "a2"), "a2", t0).await.unwrap();
    let mut now = t0;
    for _ in 0..6 {
        let got = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
        assert_eq!((reasons(&got), got[0].attempt), (vec!["a1".to_owned()], 1));
        queue.postpone(&got[0], now, secs(30)).await.unwrap();
        assert!(
            matches!(
                queue.ack(&got[0]).await,
                Err(QueueError::StaleReceipt { .. })
            ),
            "a postponed delivery is settled"
        );
        assert_eq!(queue.depth(WE).await.unwrap(), depth(2, 0, 0));
        let waiting = now + SignedDuration::from_millis(29_999);
        assert_eq!(
            queue.receive(WE, 10, waiting, VISIBILITY).await.unwrap(),
            vec![],
            "the group waits out the delay"
        );
        now += SignedDuration::from_secs(30);
    }
    let got = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
    let outcome = queue
        .retry(&got[0], "graph 503", now, secs(1), 2)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RetryOutcome::Retried,
        "six postponements used no try"
    );
}

/// A redriven message that fails again is dead-lettered under the id it had.
pub async fn queue_dead_letter_keeps_its_id_across_redrive<Q: Queue>(queue: Arc<Q>) {
    let now = at("2026-03-01T09:00:00Z");
    queue.send(WE, &nudge("1", "a1"), "a1", now).await.unwrap();
    queue.send(WE, &nudge("2", "b1"), "b1", now).await.unwrap();
    let mut first = None;
    for reason in ["graph 400 #1", "graph 400 #2", "graph 400 #3"] {
        let got = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
        for delivery in &got {
            let outcome = queue
                .retry(delivery, reason, now, secs(1), 1)
                .await
                .unwrap();
            assert_eq!(outcome, RetryOutcome::DeadLettered);
        }
        let dead = queue.dead_letters(WE).await.unwrap();
        assert_eq!(dead.len(), 2, "{dead:?}");
        assert!(dead.iter().all(|d| d.reason == reason), "{dead:?}");
        let ids: Vec<String> = dead.iter().map(|d| d.id.clone()).collect();
        assert_eq!(
            ids,
            *first.get_or_insert_with(|| ids.clone()),
            "the same ids after a redrive"
        );
        for id in &ids {
            assert!(queue.redrive(WE, id, now).await.unwrap());
        }
    }
}

/// Receivers racing over many groups never hold the same message, nor two messages of one
/// group, at once; every message arrives exactly once and each group in send order.
pub async fn queue_concurrent_receivers<Q: Queue + 'static>(queue: Arc<Q>) {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;

    const GROUPS: usize = 10;
    const PER_GROUP: usize = 5;
    let t0 = at("2026-03-01T09:00:00Z");
    for n in 0..PER_GROUP {
        for g in 0..GROUPS {
            queue
                .send(
                    WE,
                    &nudge(&format!("g{g}"), &n.to_string()),
                    &format!("{g}-{n}"),
                    t0,
                )
                .await
                .unwrap();
        }
    }
    let in_flight = Arc::new(Mutex::new(HashSet::<String>::new()));
    let received = Arc::new(Mutex::new(BTreeMap::<String, Vec<usize>>::new()));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (queue, in_flight, received) = (
                Arc::clone(&queue),
                Arc::clone(&in_flight),
                Arc::clone(&received),
            );
            tokio::spawn(async move {
                loop {
                    let got = queue.receive(WE, 3, t0, VISIBILITY).await.unwrap();
                    if got.is_empty() {
                        let done: usize = received.lock().unwrap().values().map(Vec::len).sum();
                        if done == GROUPS * PER_GROUP {
                            return;
                        }
                        tokio::task::yield_now().await;
                        continue;
                    }
                    for delivery in &got {
                        assert_eq!(delivery.attempt, 1, "nothing is redelivered");
                        assert!(
                            in_flight.lock().unwrap().insert(delivery.group.clone()),
                            "{} delivered while another of its group is in flight",
                            delivery.group
                        );
                        received
                            .lock()
                            .unwrap()
                            .entry(delivery.group.clone())
                            .or_default()
                            .push(delivery.nudge.reason.parse().unwrap());
                    }
                    tokio::task::yield_now().await;
                    for delivery in &got {
                        in_flight.lock().unwrap().remove(&delivery.group);
                        queue.ack(delivery).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("receiver");
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), GROUPS);
    for (group, order) in received.iter() {
        assert_eq!(order, &(0..PER_GROUP).collect::<Vec<_>>(), "{group}");
    }
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 0, 0));
}

// ---------------------------------------------------------------------------------------
// Timers

fn timer(worker: &str, kind: hrsync_core::TimerKind, at_: &str) -> TimerSpec {
    TimerSpec::new(key(worker), kind, at(at_))
}

/// Put creates or moves a named timer; delete removes it (unknown names are fine); a
/// worker's timers and the upcoming ones come earliest first.
pub async fn timers_put_replace_delete<T: Timers>(timers: Arc<T>) {
    use hrsync_core::TimerKind::{Leave, RemoveAccess, Start};
    let leave = timer("1", Leave, "2026-03-31T06:00:00Z");
    assert_eq!(leave.name, "hr:1#leave");
    assert_eq!(
        TimerSpec::new(key("1"), RemoveAccess, at("2026-01-01T00:00:00Z")).name,
        "hr:1#remove_access"
    );

    timers.put(&leave).await.unwrap();
    timers
        .put(&timer("1", RemoveAccess, "2026-04-03T06:00:00Z"))
        .await
        .unwrap();
    timers
        .put(&timer("2", Start, "2026-03-15T08:00:00.5Z"))
        .await
        .unwrap();
    timers
        .put(&timer("2", Leave, "2026-03-15T08:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        timers.worker_timers(&key("1")).await.unwrap(),
        vec![
            leave.clone(),
            timer("1", RemoveAccess, "2026-04-03T06:00:00Z")
        ]
    );
    // Sub-second instants order as instants.
    let names = |ts: Vec<TimerSpec>| -> Vec<String> { ts.into_iter().map(|t| t.name).collect() };
    assert_eq!(
        names(timers.next(3).await.unwrap()),
        ["hr:2#leave", "hr:2#start", "hr:1#leave"]
    );

    // A rescheduled leave moves the same timer.
    let moved = timer("1", Leave, "2026-03-10T06:00:00Z");
    timers.put(&moved).await.unwrap();
    assert_eq!(
        names(timers.next(10).await.unwrap()),
        [
            "hr:1#leave",
            "hr:2#leave",
            "hr:2#start",
            "hr:1#remove_access"
        ]
    );
    assert_eq!(timers.worker_timers(&key("1")).await.unwrap()[0], moved);

    timers.delete("hr:1#leave").await.unwrap();
    timers.delete("hr:1#leave").await.unwrap();
    timers.delete("never-existed").await.unwrap();
    assert_eq!(
        names(timers.worker_timers(&key("1")).await.unwrap()),
        ["hr:1#remove_access"]
    );
    assert_eq!(timers.worker_timers(&key("3")).await.unwrap(), vec![]);
    assert_eq!(timers.next(0).await.unwrap(), vec![]);
}

/// `take_due` hands out what is due (at or before `now`), earliest first, exactly once;
/// what is not due yet stays.
pub async fn timers_take_due<T: Timers>(timers: Arc<T>) {
    use hrsync_core::TimerKind::{Delete, Leave, Prehire, Start};
    let all = [
        timer("3", Start, "2026-03-02T09:00:00Z"),
        timer("1", Leave, "2026-03-01T17:00:00Z"),
        timer("2", Prehire, "2026-03-01T08:00:00Z"),
        timer("4", Delete, "2026-03-01T17:00:00.000000001Z"),
    ];
    for t in &all {
        timers.put(t).await.unwrap();
    }
    assert_eq!(
        timers.take_due(at("2026-03-01T07:59:59Z")).await.unwrap(),
        vec![]
    );
    let due = timers.take_due(at("2026-03-01T17:00:00Z")).await.unwrap();
    assert_eq!(due, vec![all[2].clone(), all[1].clone()]);
    // Taken means gone: a second call at the same instant finds nothing.
    assert_eq!(
        timers.take_due(at("2026-03-01T17:00:00Z")).await.unwrap(),
        vec![]
    );
    assert_eq!(
        timers.next(10).await.unwrap(),
        vec![all[3].clone(), all[0].clone()]
    );
    // A timer put again after it fired is a new wake-up.
    timers.put(&all[1]).await.unwrap();
    let due = timers.take_due(at("2026-03-05T00:00:00Z")).await.unwrap();
    assert_eq!(due, vec![all[1].clone(), all[3].clone(), all[0].clone()]);
    assert_eq!(timers.next(10).await.unwrap(), vec![]);
}

/// A take stamped after the caller's `now` still counts: concurrent callers read their clocks
/// at different moments, and an early reader that runs late must not slip past the limit.
pub async fn poll_cursors<S: StateStore>(store: Arc<S>) {
    assert_eq!(
        store.cursor("bamboo").await.unwrap(),
        None,
        "none before a poll"
    );
    store
        .put_cursor("bamboo", "2026-01-31T18:42:00+00:00")
        .await
        .unwrap();
    store.put_cursor("personio", "abc").await.unwrap();
    store
        .put_cursor("bamboo", "2026-02-01T00:00:00+00:00")
        .await
        .unwrap();
    assert_eq!(
        store.cursor("bamboo").await.unwrap().as_deref(),
        Some("2026-02-01T00:00:00+00:00"),
        "the last write wins"
    );
    assert_eq!(
        store.cursor("personio").await.unwrap().as_deref(),
        Some("abc"),
        "one cursor per source"
    );
}

pub async fn budget_counts_takes_stamped_later<S: StateStore>(store: Arc<S>) {
    let hour = std::time::Duration::from_secs(3600);
    let later = at("2026-06-01T09:00:00.000002Z");
    let earlier = at("2026-06-01T09:00:00.000001Z");
    assert!(
        store
            .take_budget("disable", "a", later, hour, 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_budget("disable", "b", earlier, hour, 1)
            .await
            .unwrap(),
        "the take stamped a microsecond later fills the budget"
    );
    assert!(
        store
            .take_budget("disable", "a", earlier, hour, 1)
            .await
            .unwrap(),
        "a already took"
    );
}
