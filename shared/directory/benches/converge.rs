//! End-to-end convergence bench against the in-process sandbox: Graph HTTP requests per joiner,
//! mover and leaver, and converged workers per second. Prints a table; run with
//! `cargo bench -p hrsync-directory --bench converge` (HRSYNC_BENCH_WORKERS, default 400).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hrsync_core::{Config, NameRegistry, Status, Worker, WorkerKey, WorkerState};
use hrsync_directory::graph::{Credential, GraphClient, GraphSettings, RetryPolicy};
use hrsync_directory::provision::{ForeignNames, settle};
use hrsync_sandbox::{Sandbox, SandboxConfig, SeedGroup, SeedSku};
use jiff::civil::date;

const CONFIG: &str = r#"
[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example", "{{ given_name|slug }}.{{ family_name|slug }}{{ n }}@acme.example"]

[attributes]
department = "{{ department }}"
jobTitle = "{{ job_title }}"
usageLocation = "{{ country }}"
companyName = "Acme Ltd"

[[access]]
groups = ["44444444-4444-4444-4444-444444444444"]

[[access]]
when = "department == 'Engineering'"
groups = ["11111111-1111-1111-1111-111111111111", "11111111-1111-1111-1111-111111111112"]
licenses = ["22222222-2222-2222-2222-222222222222"]

[[access]]
when = "department == 'Sales'"
groups = ["33333333-3333-3333-3333-333333333333"]
licenses = ["22222222-2222-2222-2222-222222222223"]
"#;

const CONCURRENCY: usize = 16;

/// The groups and licences CONFIG names exist in the tenant, with units for every worker.
fn seeded() -> SandboxConfig {
    let group = |id: &str| SeedGroup {
        id: id.to_owned(),
        display_name: id.to_owned(),
        licenses: Vec::new(),
    };
    let sku = |id: &str, part: &str| SeedSku {
        id: id.to_owned(),
        part_number: part.to_owned(),
        units: 1_000_000,
    };
    SandboxConfig {
        groups: vec![
            group("44444444-4444-4444-4444-444444444444"),
            group("11111111-1111-1111-1111-111111111111"),
            group("11111111-1111-1111-1111-111111111112"),
            group("33333333-3333-3333-3333-333333333333"),
        ],
        skus: vec![
            sku("22222222-2222-2222-2222-222222222222", "ENTERPRISEPACK"),
            sku("22222222-2222-2222-2222-222222222223", "SPE_E5"),
        ],
        ..SandboxConfig::default()
    }
}

#[derive(Default)]
struct Store {
    names: Mutex<HashMap<String, WorkerKey>>,
    states: Mutex<BTreeMap<WorkerKey, WorkerState>>,
}

impl NameRegistry for Store {
    fn is_taken(&self, name: &str, by: &WorkerKey) -> bool {
        self.names
            .lock()
            .unwrap()
            .get(&name.to_lowercase())
            .is_some_and(|o| o != by)
    }
}

impl ForeignNames for Store {
    fn mark_foreign(&self, name: &str) {
        self.names
            .lock()
            .unwrap()
            .insert(name.to_lowercase(), WorkerKey::new("directory", "unknown"));
    }
}

fn workers(count: usize) -> Vec<Worker> {
    let given = ["Jane", "John", "Zoë", "Ana", "Raj", "Mia", "Liam", "Grace"];
    let family = [
        "Smith", "García", "O'Brien", "Patel", "Kim", "Müller", "Nguyễn", "Okafor", "Rossi",
        "Silva",
    ];
    (0..count)
        .map(|i| {
            let mut w = Worker::new(
                WorkerKey::new("hr", (1000 + i).to_string()),
                given[i % given.len()],
                family[(i / given.len()) % family.len()],
                "2026-11-01T00:00:00Z".parse().unwrap(),
            );
            w.hire_date = Some(date(2024, 1, 1));
            w.department = Some(if i % 2 == 0 { "Engineering" } else { "Sales" }.into());
            w.job_title = Some("Engineer".into());
            w.country = Some("GB".into());
            w.manager_id = (i > 0).then(|| "1000".to_owned());
            w
        })
        .collect()
}

async fn phase(
    name: &str,
    graph: &GraphClient,
    config: &Arc<Config>,
    store: &Arc<Store>,
    sandbox: &Sandbox,
    workers: &[Worker],
    now: &str,
) {
    sandbox.clear_requests();
    let started = Instant::now();
    let now: jiff::Timestamp = now.parse().unwrap();
    let mut failed = 0;
    for chunk in workers.chunks(CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in chunk {
            let (graph, config, store, worker) = (
                graph.clone(),
                Arc::clone(config),
                Arc::clone(store),
                worker.clone(),
            );
            tasks.spawn(async move {
                let state = store
                    .states
                    .lock()
                    .unwrap()
                    .get(&worker.key)
                    .cloned()
                    .unwrap_or_default();
                let ids = |key: &WorkerKey| {
                    store
                        .states
                        .lock()
                        .unwrap()
                        .get(key)
                        .and_then(|s| s.applied.as_ref()?.object_id.clone())
                };
                let settled =
                    settle(&graph, &config, &worker, state, now, store.as_ref(), &ids).await;
                let ok = settled.report.status == "converged";
                if let Some(ids) = &settled.state.identifiers {
                    let mut names = store.names.lock().unwrap();
                    names.insert(ids.upn.to_lowercase(), worker.key.clone());
                    names.insert(ids.mail.to_lowercase(), worker.key.clone());
                }
                store
                    .states
                    .lock()
                    .unwrap()
                    .insert(worker.key.clone(), settled.state);
                ok
            });
        }
        while let Some(ok) = tasks.join_next().await {
            failed += usize::from(!ok.unwrap());
        }
    }
    let elapsed = started.elapsed();
    let log = sandbox.requests();
    let http = log
        .iter()
        .filter(|r| !r.in_batch && r.path.starts_with("/v1.0"))
        .count();
    let operations = log
        .iter()
        .filter(|r| r.in_batch || (r.path.starts_with("/v1.0") && !r.path.ends_with("$batch")))
        .count();
    let n = workers.len() as f64;
    println!(
        "{name:<8} {:>6} workers  {:>5.2} HTTP requests/worker  {:>5.2} Graph operations/worker  {:>8.0} workers/s  ({failed} failed, {:.2?})",
        workers.len(),
        http as f64 / n,
        operations as f64 / n,
        n / elapsed.as_secs_f64().max(f64::EPSILON),
        elapsed
    );
}

fn main() {
    let count: usize = std::env::var("HRSYNC_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let running = Sandbox::start(seeded()).await.unwrap();
        let mut settings =
            GraphSettings::new("contoso", "hrsync", Credential::ClientSecret("s".into()));
        settings.graph_endpoint = running.url.clone();
        settings.authority_host = running.url.clone();
        settings.retry = RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        };
        let graph = GraphClient::new(settings, reqwest::Client::new());
        let config = Arc::new(Config::parse(CONFIG, "bench.toml").unwrap());
        let store = Arc::new(Store::default());
        let mut all = workers(count);
        println!(
            "hrsync convergence against the in-process sandbox ({CONCURRENCY} workers at a time)"
        );
        // The manager first, so reports are not deferred.
        phase(
            "joiner",
            &graph,
            &config,
            &store,
            &running.sandbox,
            &all[..1],
            "2026-11-01T09:00:00Z",
        )
        .await;
        phase(
            "joiner",
            &graph,
            &config,
            &store,
            &running.sandbox,
            &all[1..],
            "2026-11-01T09:00:00Z",
        )
        .await;
        for w in &mut all[1..] {
            w.as_of = "2026-11-02T00:00:00Z".parse().unwrap();
            w.department = Some(
                if w.department.as_deref() == Some("Sales") {
                    "Engineering"
                } else {
                    "Sales"
                }
                .into(),
            );
        }
        phase(
            "mover",
            &graph,
            &config,
            &store,
            &running.sandbox,
            &all[1..],
            "2026-11-02T09:00:00Z",
        )
        .await;
        for w in &mut all[1..] {
            w.as_of = "2026-11-03T00:00:00Z".parse().unwrap();
            w.status = Status::Terminated;
            w.termination_date = Some(date(2026, 11, 3));
            w.termination_type = Some("involuntary".into());
        }
        phase(
            "leaver",
            &graph,
            &config,
            &store,
            &running.sandbox,
            &all[1..],
            "2026-11-03T09:00:00Z",
        )
        .await;
        phase(
            "again",
            &graph,
            &config,
            &store,
            &running.sandbox,
            &all[1..],
            "2026-11-03T10:00:00Z",
        )
        .await;
    });
}
