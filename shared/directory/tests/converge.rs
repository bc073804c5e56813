//! Convergence against the sandbox: joiners, movers, leavers and rehires end up exactly as
//! decided, with the fewest Graph requests, through faults and interrupted runs.

// Helpers outside #[test] functions unwrap too: a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hrsync_core::{
    AppliedIdentity, Config, DesiredIdentity, NothingTaken, Status, Worker, WorkerKey, WorkerState,
    decide,
};
use hrsync_directory::converge::{
    ConvergeError, Converged, Lookup, Recorded, Step, converge, recorded,
};
use hrsync_directory::graph::{Credential, GraphClient, GraphSettings, RetryPolicy};
use hrsync_directory::group_adds::{GroupAdds, Participant};
use hrsync_sandbox::{Faults, RunningSandbox, Sandbox, SandboxConfig, SeedGroup, SeedSku};
use jiff::Timestamp;
use jiff::civil::date;
use serde_json::Value;

const CONFIG: &str = r#"
[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example", "{{ given_name|slug }}.{{ family_name|slug }}{{ n }}@acme.example"]

[attributes]
department = "{{ department }}"
jobTitle = "{{ job_title }}"
usageLocation = "{{ country }}"
"employeeOrgData.costCenter" = "{{ cost_center }}"

[[access]]
when = "department == 'Engineering'"
groups = ["11111111-1111-1111-1111-111111111111"]
licenses = ["22222222-2222-2222-2222-222222222222"]

[[access]]
when = "department == 'Sales'"
groups = ["33333333-3333-3333-3333-333333333333"]

[[access]]
groups = ["44444444-4444-4444-4444-444444444444"]

[lifecycle]
default_time_zone = "Europe/London"
"#;

/// The groups and licence CONFIG names exist in the tenant.
fn seeded() -> SandboxConfig {
    let group = |id: &str, name: &str| SeedGroup {
        id: id.to_owned(),
        display_name: name.to_owned(),
        licenses: Vec::new(),
    };
    SandboxConfig {
        groups: vec![
            group("11111111-1111-1111-1111-111111111111", "Engineering"),
            group("33333333-3333-3333-3333-333333333333", "Sales"),
            group("44444444-4444-4444-4444-444444444444", "All staff"),
        ],
        skus: vec![SeedSku {
            id: "22222222-2222-2222-2222-222222222222".to_owned(),
            part_number: "ENTERPRISEPACK".to_owned(),
            units: 1000,
        }],
        ..SandboxConfig::default()
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339")
}

fn worker(id: &str, given: &str, family: &str, department: &str, manager: Option<&str>) -> Worker {
    let mut worker = Worker::new(
        WorkerKey::new("hr", id),
        given,
        family,
        at("2026-11-01T00:00:00Z"),
    );
    worker.hire_date = Some(date(2024, 1, 1));
    worker.department = Some(department.into());
    worker.job_title = Some("Engineer".into());
    worker.country = Some("GB".into());
    worker.cost_center = Some("CC-1".into());
    worker.manager_id = manager.map(str::to_owned);
    worker
}

fn client(sandbox: &RunningSandbox) -> GraphClient {
    let mut settings = GraphSettings::new(
        "contoso",
        "hrsync-test",
        Credential::ClientSecret("s3cret".into()),
    );
    settings.graph_endpoint = sandbox.url.clone();
    settings.authority_host = sandbox.url.clone();
    settings.retry = RetryPolicy {
        max_attempts: 12,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(1),
        lag_attempts: 12,
        lag_delay: Duration::from_millis(100),
    };
    GraphClient::new(settings, reqwest::Client::new())
}

/// A tiny state store: each worker's state, and the object ids managers are resolved from.
#[derive(Default)]
struct Store {
    states: Mutex<BTreeMap<WorkerKey, WorkerState>>,
}

impl Store {
    fn decide(&self, config: &Config, worker: &Worker, now: &str) -> Option<DesiredIdentity> {
        let mut states = self.states.lock().unwrap();
        let state = states.entry(worker.key.clone()).or_default();
        let decision = decide(worker, state, config, at(now), &NothingTaken).expect("decides");
        *state = decision.state;
        decision.desired
    }

    fn applied(&self, key: &WorkerKey) -> Option<AppliedIdentity> {
        self.states
            .lock()
            .unwrap()
            .get(key)
            .and_then(|s| s.applied.clone())
    }

    fn set_applied(&self, key: &WorkerKey, applied: Option<AppliedIdentity>) {
        self.states
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .applied = applied;
    }

    fn object_id(&self, key: &WorkerKey) -> Option<String> {
        self.applied(key).and_then(|a| a.object_id)
    }

    async fn converge(
        &self,
        graph: &GraphClient,
        key: &WorkerKey,
        lookup: Lookup,
    ) -> Result<Converged, ConvergeError> {
        self.converge_in(graph, key, lookup, None).await
    }

    /// Converges `key`, as one worker of `round` when there is one.
    async fn converge_in(
        &self,
        graph: &GraphClient,
        key: &WorkerKey,
        lookup: Lookup,
        round: Option<Participant>,
    ) -> Result<Converged, ConvergeError> {
        let desired = self
            .states
            .lock()
            .unwrap()
            .get(key)
            .and_then(|s| s.desired.clone());
        let ids = |manager: &WorkerKey| self.object_id(manager);
        let mut record = |step: &Step| {
            self.set_applied(key, step.after.clone());
            recorded()
        };
        converge(
            graph,
            key,
            desired.as_ref(),
            self.applied(key),
            lookup,
            &ids,
            &mut record,
            round,
        )
        .await
    }

    /// Converges `key` but "dies" before recording step `limit` (0-based): the directory has
    /// done that step, the store does not know it.
    async fn converge_dying_at(&self, graph: &GraphClient, key: &WorkerKey, limit: usize) {
        let desired = self
            .states
            .lock()
            .unwrap()
            .get(key)
            .and_then(|s| s.desired.clone());
        let ids = |manager: &WorkerKey| self.object_id(manager);
        let mut confirmed = 0;
        let stopped =
            || -> Recorded<'static> { Box::pin(std::future::ready(Err(ConvergeError::Stopped))) };
        let mut record = |step: &Step| {
            if confirmed == limit {
                return stopped();
            }
            confirmed += 1;
            self.set_applied(key, step.after.clone());
            recorded()
        };
        let result = converge(
            graph,
            key,
            desired.as_ref(),
            self.applied(key),
            Lookup::WhenUnknown,
            &ids,
            &mut record,
            None,
        )
        .await;
        assert!(matches!(result, Err(ConvergeError::Stopped)), "{result:?}");
    }
}

fn live_users(sandbox: &Sandbox) -> Vec<Value> {
    sandbox
        .users()
        .into_iter()
        .filter(|u| u.get("deletedDateTime").is_none_or(Value::is_null))
        .collect()
}

fn user_by_employee_id(sandbox: &Sandbox, id: &str) -> Value {
    let matches: Vec<Value> = live_users(sandbox)
        .into_iter()
        .filter(|u| u["employeeId"] == id)
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "exactly one account for employee {id}: {matches:?}"
    );
    matches.into_iter().next().unwrap()
}

fn graph_requests(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| !r.in_batch && r.path.starts_with("/v1.0"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// A sandbox, a client, the test config, and a store in which hr:1 (the manager) has an account.
async fn with_converged_boss() -> (RunningSandbox, GraphClient, Config, Store, Worker) {
    let running = Sandbox::start(seeded()).await.unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let store = Store::default();
    let boss = worker("1", "Grace", "Hopper", "Engineering", None);
    store.decide(&config, &boss, "2026-11-01T00:00:00Z");
    store
        .converge(&graph, &boss.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    (running, graph, config, store, boss)
}

#[tokio::test]
async fn a_joiner_with_manager_groups_and_license_takes_two_graph_requests() {
    let (running, graph, config, store, boss) = with_converged_boss().await;

    let ada = worker("2", "Ada", "Lovelace", "Engineering", Some("1"));
    store.decide(&config, &ada, "2026-11-01T00:00:00Z");
    running.sandbox.clear_requests();
    let done = store
        .converge(&graph, &ada.key, Lookup::AlreadyAbsent)
        .await
        .unwrap();
    assert!(done.deferred.is_empty());
    assert_eq!(
        graph_requests(&running.sandbox),
        ["POST /v1.0/users", "POST /v1.0/$batch"]
    );

    let user = user_by_employee_id(&running.sandbox, "2");
    assert_eq!(user["userPrincipalName"], "ada.lovelace@acme.example");
    assert_eq!(user["accountEnabled"], true);
    assert_eq!(user["department"], "Engineering");
    assert_eq!(user["usageLocation"], "GB");
    assert_eq!(user["employeeOrgData"]["costCenter"], "CC-1");
    let id = user["id"].as_str().unwrap();
    let boss_id = store.object_id(&boss.key).unwrap();
    assert_eq!(running.sandbox.manager_of(id), Some(boss_id));
    assert!(
        running
            .sandbox
            .group_members("11111111-1111-1111-1111-111111111111")
            .contains(&id.to_owned())
    );
    assert!(
        running
            .sandbox
            .group_members("44444444-4444-4444-4444-444444444444")
            .contains(&id.to_owned())
    );
    let applied = store.applied(&ada.key).unwrap();
    assert_eq!(applied.object_id.as_deref(), Some(id));
    assert!(
        applied
            .licenses
            .contains("22222222-2222-2222-2222-222222222222")
    );

    // Converging again changes nothing and sends nothing.
    running.sandbox.clear_requests();
    let again = store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    assert!(again.steps.is_empty());
    assert!(graph_requests(&running.sandbox).is_empty());
}

#[tokio::test]
async fn mover_leaver_and_rehire_converge_exactly() {
    let running = Sandbox::start(seeded()).await.unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let store = Store::default();
    let mut ada = worker("2", "Ada", "Lovelace", "Engineering", None);
    store.decide(&config, &ada, "2026-11-01T00:00:00Z");
    store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    let id = store.object_id(&ada.key).unwrap();

    // Mover: Engineering -> Sales, in one $batch.
    ada.as_of = at("2026-11-02T00:00:00Z");
    ada.department = Some("Sales".into());
    store.decide(&config, &ada, "2026-11-02T00:00:00Z");
    running.sandbox.clear_requests();
    store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    assert_eq!(graph_requests(&running.sandbox), ["POST /v1.0/$batch"]);
    assert!(
        !running
            .sandbox
            .group_members("11111111-1111-1111-1111-111111111111")
            .contains(&id)
    );
    assert!(
        running
            .sandbox
            .group_members("33333333-3333-3333-3333-333333333333")
            .contains(&id)
    );
    assert_eq!(
        user_by_employee_id(&running.sandbox, "2")["department"],
        "Sales"
    );

    // Leaver: disabled, sessions revoked, access removed.
    ada.as_of = at("2026-11-03T00:00:00Z");
    ada.status = Status::Terminated;
    ada.termination_date = Some(date(2026, 11, 3));
    ada.termination_type = Some("involuntary".into());
    store.decide(&config, &ada, "2026-11-03T10:00:00Z");
    running.sandbox.clear_requests();
    store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    let user = user_by_employee_id(&running.sandbox, "2");
    assert_eq!(user["accountEnabled"], false);
    assert!(
        user["signInSessionsValidFromDateTime"].is_string(),
        "sessions revoked: {user}"
    );
    assert!(
        !running
            .sandbox
            .group_members("33333333-3333-3333-3333-333333333333")
            .contains(&id)
    );
    let batch: Vec<String> = running
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.in_batch)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        batch.first().map(String::as_str),
        Some(format!("PATCH /v1.0/users/{id}").as_str()),
        "disable first: {batch:?}"
    );

    // Rehire into Engineering: the same account, enabled, with Engineering access only.
    ada.as_of = at("2027-02-01T00:00:00Z");
    ada.status = Status::Active;
    ada.hire_date = Some(date(2027, 2, 1));
    ada.termination_type = None;
    ada.department = Some("Engineering".into());
    store.decide(&config, &ada, "2027-02-01T09:00:00Z");
    store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    assert_eq!(live_users(&running.sandbox).len(), 1, "no second account");
    let user = user_by_employee_id(&running.sandbox, "2");
    assert_eq!(user["id"], id.as_str());
    assert_eq!(user["accountEnabled"], true);
    assert!(
        running
            .sandbox
            .group_members("11111111-1111-1111-1111-111111111111")
            .contains(&id)
    );
    assert!(
        !running
            .sandbox
            .group_members("33333333-3333-3333-3333-333333333333")
            .contains(&id)
    );
}

#[tokio::test]
async fn a_missing_manager_is_deferred_and_set_once_they_exist() {
    let running = Sandbox::start(seeded()).await.unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let store = Store::default();
    let ada = worker("2", "Ada", "Lovelace", "Engineering", Some("1"));
    store.decide(&config, &ada, "2026-11-01T00:00:00Z");
    let first = store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    assert_eq!(first.deferred, ["manager hr:1 has no account yet"]);
    let id = store.object_id(&ada.key).unwrap();
    assert!(
        running
            .sandbox
            .group_members("44444444-4444-4444-4444-444444444444")
            .contains(&id),
        "the rest is not blocked"
    );

    let boss = worker("1", "Grace", "Hopper", "Engineering", None);
    store.decide(&config, &boss, "2026-11-01T00:00:00Z");
    store
        .converge(&graph, &boss.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    let second = store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    assert!(second.deferred.is_empty());
    assert_eq!(running.sandbox.manager_of(&id), store.object_id(&boss.key));
}

/// Runs a joiner's convergence, stopping after `stop_after` recorded steps, then once more
/// to completion; returns the sandbox's final view of the worker.
async fn interrupted_joiner(stop_after: Option<usize>) -> (Value, Vec<String>, usize) {
    let (running, graph, config, store, _boss) = with_converged_boss().await;
    let ada = worker("2", "Ada", "Lovelace", "Engineering", Some("1"));
    store.decide(&config, &ada, "2026-11-01T00:00:00Z");
    if let Some(limit) = stop_after {
        store.converge_dying_at(&graph, &ada.key, limit).await;
    }
    store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    let user = user_by_employee_id(&running.sandbox, "2");
    let id = user["id"].as_str().unwrap().to_owned();
    let mut groups: Vec<String> = [
        "11111111-1111-1111-1111-111111111111",
        "44444444-4444-4444-4444-444444444444",
    ]
    .into_iter()
    .filter(|g| running.sandbox.group_members(g).contains(&id))
    .map(str::to_owned)
    .collect();
    groups.push(format!(
        "manager={}",
        running.sandbox.manager_of(&id).is_some()
    ));
    (user, groups, live_users(&running.sandbox).len())
}

#[tokio::test]
async fn a_run_interrupted_after_any_step_converges_to_the_same_directory() {
    let (reference, reference_groups, count) = interrupted_joiner(None).await;
    assert_eq!(count, 2);
    let comparable = |user: &Value| {
        let mut user = user.clone();
        for volatile in ["id", "createdDateTime", "signInSessionsValidFromDateTime"] {
            user.as_object_mut().unwrap().remove(volatile);
        }
        user
    };
    // A joiner has 5 steps: create, then manager, two groups and a license in one batch.
    for stop_after in 0..5 {
        let (user, groups, count) = interrupted_joiner(Some(stop_after)).await;
        assert_eq!(
            count, 2,
            "no duplicate account after stopping at step {stop_after}"
        );
        assert_eq!(
            comparable(&user),
            comparable(&reference),
            "stopped at step {stop_after}"
        );
        assert_eq!(groups, reference_groups, "stopped at step {stop_after}");
    }
}

#[tokio::test]
async fn joiners_movers_leavers_and_a_rehire_converge_through_throttling_outages_and_lag() {
    let faults = Faults {
        throttle_rate: 0.2,
        retry_after_secs: 0,
        error_rate: 0.05,
        replication_lag: Duration::from_secs(2),
        seed: 7,
    };
    let running = Sandbox::start(SandboxConfig { faults, ..seeded() })
        .await
        .unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let store = Arc::new(Store::default());
    let departments = ["Engineering", "Sales", "Finance"];
    let mut workers: Vec<Worker> = (1..=12)
        .map(|i| {
            let manager = (i > 1).then_some("1");
            worker(
                &i.to_string(),
                "Jane",
                &format!("Doe{i}"),
                departments[i % 3],
                manager,
            )
        })
        .collect();
    for w in &workers {
        store.decide(&config, w, "2026-11-01T00:00:00Z");
    }
    converge_all(&store, &graph, &workers).await;

    // Movers, leavers and one rehire, all at once.
    for (i, w) in workers.iter_mut().enumerate() {
        w.as_of = at("2026-11-10T00:00:00Z");
        match i % 4 {
            0 => w.department = Some("Sales".into()),
            1 => {
                w.status = Status::Terminated;
                w.termination_date = Some(date(2026, 11, 9));
            }
            _ => {}
        }
    }
    for w in &workers {
        store.decide(&config, w, "2026-11-10T00:00:00Z");
    }
    converge_all(&store, &graph, &workers).await;
    let rehire = &mut workers[1];
    rehire.as_of = at("2027-01-10T00:00:00Z");
    rehire.status = Status::Active;
    rehire.hire_date = Some(date(2027, 1, 10));
    store.decide(&config, rehire, "2027-01-10T09:00:00Z");
    converge_all(&store, &graph, &workers).await;

    assert_eq!(
        live_users(&running.sandbox).len(),
        workers.len(),
        "no duplicates"
    );
    for w in &workers {
        let user = user_by_employee_id(&running.sandbox, w.employee_id.as_str());
        let desired = store.states.lock().unwrap()[&w.key]
            .desired
            .clone()
            .unwrap();
        assert_eq!(user["accountEnabled"], desired.enabled, "{}", w.key);
        assert_eq!(
            user["department"].as_str(),
            w.department.as_deref(),
            "{}",
            w.key
        );
        let id = user["id"].as_str().unwrap().to_owned();
        for group in [
            "11111111-1111-1111-1111-111111111111",
            "33333333-3333-3333-3333-333333333333",
            "44444444-4444-4444-4444-444444444444",
        ] {
            assert_eq!(
                running.sandbox.group_members(group).contains(&id),
                desired.groups.contains(group),
                "{} in {group}",
                w.key
            );
        }
    }
    let log = running.sandbox.requests();
    assert!(log.iter().any(|r| r.faulted), "faults were injected");
    let creates = log
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1.0/users" && r.status == 201)
        .count();
    assert_eq!(
        creates,
        workers.len(),
        "each joiner created exactly once, the rehire reused its account"
    );
    // The writes the changes need: joiners 47 (12 creates, 11 managers, 12 + 4 + 4 memberships,
    // 4 licenses), movers 6 (hr:5: department + Sales; hr:9: department + Sales - Engineering -
    // license; hr:1 was already in Sales), leavers 12 (disable + revoke each, hr:2 -1 group,
    // hr:6 -2 groups -license, hr:10 -2 groups), the rehire 2 (enable, +1 group): 67. A write is
    // repeated only when a fault made the client send it again (a 424 retried with the request
    // it depended on), never otherwise.
    let writes = log
        .iter()
        .filter(|r| r.status < 300 && r.method != "GET" && r.path != "/v1.0/$batch")
        .count();
    let faulted = log.iter().filter(|r| r.faulted).count();
    assert!(
        (67..=67 + faulted).contains(&writes),
        "{writes} successful writes for 67 changes ({faulted} faulted requests)"
    );
}

/// Converges every worker concurrently (as the stage does across workers), retrying the
/// retryable failures the way the queue would.
async fn converge_all(store: &Arc<Store>, graph: &GraphClient, workers: &[Worker]) {
    let mut tasks = tokio::task::JoinSet::new();
    for w in workers {
        let (store, graph, key) = (Arc::clone(store), graph.clone(), w.key.clone());
        tasks.spawn(async move {
            for _ in 0..20 {
                match store.converge(&graph, &key, Lookup::WhenUnknown).await {
                    Ok(done) if done.deferred.is_empty() => return Ok(()),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(error) if error.is_retryable() => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    Err(error) => return Err(format!("{key}: {error}")),
                }
            }
            Err(format!("{key} did not converge in 20 attempts"))
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("converges");
    }
}

/// A leaver's convergence stopped after `stop_after` recorded steps, then run to completion.
async fn interrupted_leaver(stop_after: Option<usize>) -> (Value, Vec<String>, usize) {
    let running = Sandbox::start(seeded()).await.unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let store = Store::default();
    let mut ada = worker("2", "Ada", "Lovelace", "Engineering", None);
    store.decide(&config, &ada, "2026-11-01T00:00:00Z");
    store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    ada.as_of = at("2026-11-03T00:00:00Z");
    ada.status = Status::Terminated;
    ada.termination_date = Some(date(2026, 11, 3));
    ada.termination_type = Some("involuntary".into());
    store.decide(&config, &ada, "2026-11-03T10:00:00Z");
    if let Some(limit) = stop_after {
        store.converge_dying_at(&graph, &ada.key, limit).await;
    }
    store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    let user = user_by_employee_id(&running.sandbox, "2");
    let id = user["id"].as_str().unwrap().to_owned();
    let groups = [
        "11111111-1111-1111-1111-111111111111",
        "44444444-4444-4444-4444-444444444444",
    ]
    .into_iter()
    .filter(|g| running.sandbox.group_members(g).contains(&id))
    .map(str::to_owned)
    .collect();
    (user, groups, live_users(&running.sandbox).len())
}

#[tokio::test]
async fn a_leaver_interrupted_after_any_step_ends_disabled_revoked_and_stripped() {
    let (reference, groups, _) = interrupted_leaver(None).await;
    assert_eq!(reference["accountEnabled"], false);
    assert!(groups.is_empty());
    assert!(
        reference["assignedLicenses"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{reference}"
    );
    // A leaver has 4 steps: disable (with revoke), two group removals, the license removal.
    for stop_after in 0..4 {
        let (user, groups, count) = interrupted_leaver(Some(stop_after)).await;
        assert_eq!(count, 1);
        assert_eq!(
            user["accountEnabled"], false,
            "stopped at step {stop_after}"
        );
        assert!(
            user["signInSessionsValidFromDateTime"].is_string(),
            "sessions revoked (step {stop_after})"
        );
        assert!(
            groups.is_empty(),
            "stopped at step {stop_after}: {groups:?}"
        );
        assert_eq!(
            user["assignedLicenses"], reference["assignedLicenses"],
            "stopped at step {stop_after}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Workers converged together: group additions 20 to a request

const SALES_GROUP: &str = "33333333-3333-3333-3333-333333333333";
const ALL_GROUP: &str = "44444444-4444-4444-4444-444444444444";

/// Converges the workers concurrently as one round (every one joins before any converges).
async fn converge_round(
    store: &Arc<Store>,
    graph: &GraphClient,
    keys: &[WorkerKey],
) -> Vec<Converged> {
    let round = GroupAdds::new(graph.clone());
    let places: Vec<Participant> = keys.iter().map(|_| round.join()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (key, place) in keys.iter().cloned().zip(places) {
        let (store, graph) = (Arc::clone(store), graph.clone());
        tasks.spawn(async move {
            store
                .converge_in(&graph, &key, Lookup::AlreadyAbsent, Some(place))
                .await
        });
    }
    let mut done = Vec::new();
    while let Some(result) = tasks.join_next().await {
        done.push(result.expect("task").expect("converges"));
    }
    done
}

fn sales_joiners(store: &Store, config: &Config, ids: std::ops::Range<u32>) -> Vec<WorkerKey> {
    ids.map(|n| {
        let joiner = worker(&n.to_string(), "Sam", &format!("Seller{n}"), "Sales", None);
        store.decide(config, &joiner, "2026-11-01T00:00:00Z");
        joiner.key
    })
    .collect()
}

fn group_requests(sandbox: &Sandbox) -> Vec<(String, String)> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1.0/groups/"))
        .map(|r| (r.method, r.path))
        .collect()
}

#[tokio::test]
async fn a_round_of_45_joiners_adds_group_members_twenty_to_a_request() {
    let running = Sandbox::start(seeded()).await.unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let store = Arc::new(Store::default());
    let keys = sales_joiners(&store, &config, 100..145);

    let done = converge_round(&store, &graph, &keys).await;

    // 45 members of each of the two groups: 20 + 20 + 5, as PATCHes, never one POST each.
    let requests = group_requests(&running.sandbox);
    for group in [SALES_GROUP, ALL_GROUP] {
        let patches = requests
            .iter()
            .filter(|(m, p)| m == "PATCH" && *p == format!("/v1.0/groups/{group}"))
            .count();
        assert_eq!(patches, 3, "{requests:?}");
        assert_eq!(running.sandbox.group_members(group).len(), 45);
    }
    assert!(requests.iter().all(|(m, _)| m == "PATCH"), "{requests:?}");
    // Each worker's record has its own two additions.
    for converged in &done {
        let adds = converged
            .steps
            .iter()
            .filter(|s| s.name() == "add_group")
            .count();
        assert_eq!(adds, 2, "{converged:?}");
    }
    for key in &keys {
        let groups = store.applied(key).unwrap().groups;
        assert!(groups.contains(SALES_GROUP) && groups.contains(ALL_GROUP));
    }
}

/// Graph refuses a whole PATCH when one of its members already is one: the PATCH is split until
/// the member is alone (for whom "already a member" is success), and everyone ends up a member.
#[tokio::test]
async fn a_member_already_in_the_group_splits_its_patch_and_everyone_is_added() {
    let running = Sandbox::start(seeded()).await.unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let store = Arc::new(Store::default());
    let keys = sales_joiners(&store, &config, 200..208);
    // The first is created on its own and made a member of the Sales group behind hrsync's back.
    store
        .converge(&graph, &keys[0], Lookup::AlreadyAbsent)
        .await
        .unwrap();
    let first = store.object_id(&keys[0]).unwrap();
    let mut applied = store.applied(&keys[0]).unwrap();
    applied.groups.clear();
    store.set_applied(&keys[0], Some(applied));
    assert!(running.sandbox.group_members(SALES_GROUP).contains(&first));
    running.sandbox.clear_requests();

    converge_round(&store, &graph, &keys).await;

    let members = running.sandbox.group_members(SALES_GROUP);
    assert_eq!(members.len(), 8, "{members:?}");
    let patches = group_requests(&running.sandbox)
        .iter()
        .filter(|(m, p)| m == "PATCH" && *p == format!("/v1.0/groups/{SALES_GROUP}"))
        .count();
    // 8 refused, 4 + 4 (one refused), 2 + 2 (one refused), 1 + 1: seven PATCHes, not eight POSTs
    // and not a failure.
    assert_eq!(patches, 7);
    for key in &keys {
        assert!(store.applied(key).unwrap().groups.contains(SALES_GROUP));
    }
}

/// A create refused because the name is taken by the worker's own account (a run that died
/// after the create, before recording it): that account is converged, not a second one made.
#[tokio::test]
async fn a_name_held_by_the_workers_own_account_is_adopted_not_given_up() {
    let (running, graph, config, store, _boss) = with_converged_boss().await;
    let ada = worker("2", "Ada", "Lovelace", "Sales", None);
    store.decide(&config, &ada, "2026-11-01T00:00:00Z");
    store
        .converge(&graph, &ada.key, Lookup::AlreadyAbsent)
        .await
        .unwrap();
    let id = user_by_employee_id(&running.sandbox, "2")["id"].clone();
    // The record of the create is lost.
    store.set_applied(&ada.key, None);

    let done = store
        .converge(&graph, &ada.key, Lookup::AlreadyAbsent)
        .await
        .unwrap();

    assert_eq!(user_by_employee_id(&running.sandbox, "2")["id"], id);
    assert_eq!(
        store.object_id(&ada.key).as_deref(),
        id.as_str(),
        "the existing account is the worker's"
    );
    assert!(done.steps.iter().all(|s| s.name() != "create"));
}

/// A worker whose record id (HiBob's 19-digit backend id) is not the employee id the account
/// carries: an account found by the lookups must be looked up by the employee id.
fn bob_worker() -> Worker {
    let mut ada = worker("3332883854254932743", "Ada", "Lovelace", "Sales", None);
    ada.employee_id = "1042".into();
    ada
}

#[tokio::test]
async fn an_interrupted_create_is_found_by_the_employee_id_not_the_record_id() {
    let (running, graph, config, store, _boss) = with_converged_boss().await;
    let ada = bob_worker();
    store.decide(&config, &ada, "2026-11-01T00:00:00Z");
    store
        .converge(&graph, &ada.key, Lookup::AlreadyAbsent)
        .await
        .unwrap();
    let id = user_by_employee_id(&running.sandbox, "1042")["id"].clone();
    // The record of the create is lost: the lookup before creating finds the account.
    store.set_applied(&ada.key, None);
    let done = store
        .converge(&graph, &ada.key, Lookup::WhenUnknown)
        .await
        .unwrap();
    assert!(done.steps.iter().all(|s| s.name() != "create"), "{done:?}");
    assert_eq!(store.object_id(&ada.key).as_deref(), id.as_str());

    // And when the lookup was skipped, the refused create finds it too.
    store.set_applied(&ada.key, None);
    let done = store
        .converge(&graph, &ada.key, Lookup::AlreadyAbsent)
        .await
        .unwrap();
    assert!(done.steps.iter().all(|s| s.name() != "create"), "{done:?}");
    assert_eq!(store.object_id(&ada.key).as_deref(), id.as_str());
    assert_eq!(
        live_users(&running.sandbox).len(),
        2,
        "the boss and Ada, once"
    );
}
