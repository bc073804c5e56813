//! Two deciders that share nothing race for one name: the directory's uniqueness decides, and
//! the loser takes the next candidate. Never two accounts with one UPN, never a lost joiner.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hrsync_core::{Config, NameRegistry, Worker, WorkerKey, WorkerState};
use hrsync_directory::graph::{Credential, GraphClient, GraphSettings, RetryPolicy};
use hrsync_directory::provision::{ForeignNames, settle};
use hrsync_sandbox::{Faults, RunningSandbox, Sandbox, SandboxConfig};
use jiff::civil::date;
use serde_json::Value;

const CONFIG: &str = r#"
[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example", "{{ given_name|slug }}.{{ family_name|slug }}{{ n }}@acme.example"]
"#;

/// One decider's memory of names: nothing shared with the other decider.
#[derive(Default)]
struct Names(Mutex<HashMap<String, WorkerKey>>);

impl NameRegistry for Names {
    fn is_taken(&self, name: &str, by: &WorkerKey) -> bool {
        self.0
            .lock()
            .unwrap()
            .get(&name.to_lowercase())
            .is_some_and(|owner| owner != by)
    }
}

impl ForeignNames for Names {
    fn mark_foreign(&self, name: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(name.to_lowercase(), WorkerKey::new("directory", "unknown"));
    }
}

fn jane(id: &str) -> Worker {
    let mut worker = Worker::new(
        WorkerKey::new("hr", id),
        "Jane",
        "Smith",
        "2026-11-01T00:00:00Z".parse().unwrap(),
    );
    worker.hire_date = Some(date(2024, 1, 1));
    worker
}

fn client(sandbox: &RunningSandbox) -> GraphClient {
    let mut settings =
        GraphSettings::new("contoso", "hrsync", Credential::ClientSecret("s".into()));
    settings.graph_endpoint = sandbox.url.clone();
    settings.authority_host = sandbox.url.clone();
    settings.retry = RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(1),
        lag_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    GraphClient::new(settings, reqwest::Client::new())
}

async fn provision(graph: &GraphClient, config: &Config, worker: &Worker, names: &Names) -> String {
    let none = |_: &WorkerKey| None;
    let settled = settle(
        graph,
        config,
        worker,
        WorkerState::default(),
        "2026-11-01T09:00:00Z".parse().unwrap(),
        names,
        &none,
    )
    .await;
    assert_eq!(settled.report.status, "converged", "{:?}", settled.report);
    settled.state.applied.unwrap().upn
}

fn upns(sandbox: &Sandbox) -> Vec<String> {
    let mut upns: Vec<String> = sandbox
        .users()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_owned())
        .collect();
    upns.sort();
    upns
}

#[tokio::test]
async fn the_loser_of_a_name_race_takes_the_next_candidate() {
    // Replication lag hides the winner's account from the loser's name check: only the
    // directory's own uniqueness stands between them.
    let faults = Faults {
        replication_lag: Duration::from_millis(800),
        ..Faults::default()
    };
    let running = Sandbox::start(SandboxConfig {
        faults,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let first = provision(&graph, &config, &jane("1"), &Names::default()).await;
    let second = provision(&graph, &config, &jane("2"), &Names::default()).await;
    assert_eq!(first, "jane.smith@acme.example");
    assert_eq!(second, "jane.smith2@acme.example");
    assert_eq!(
        upns(&running.sandbox),
        ["jane.smith2@acme.example", "jane.smith@acme.example"]
    );
    let by_employee: Vec<Value> = running
        .sandbox
        .users()
        .into_iter()
        .map(|u| u["employeeId"].clone())
        .collect();
    assert_eq!(by_employee.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_simultaneous_joiners_with_one_name_get_distinct_upns() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let graph = client(&running);
    let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
    let (a, b) = (jane("1"), jane("2"));
    let (names_a, names_b) = (Names::default(), Names::default());
    let (first, second) = tokio::join!(
        provision(&graph, &config, &a, &names_a),
        provision(&graph, &config, &b, &names_b)
    );
    assert_ne!(first, second);
    assert_eq!(
        upns(&running.sandbox),
        ["jane.smith2@acme.example", "jane.smith@acme.example"]
    );
}
