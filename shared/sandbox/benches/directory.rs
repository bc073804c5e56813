//! The sandbox under a 10,000-user directory: a create, a GET by id and the indexed lookups
//! (`employeeId eq`, `proxyAddresses/any`) over HTTP on loopback, after populating it (10,000
//! users and 30,000 group memberships through `$batch`, timed once).
//!
//! The directory is kept in a SQLite data file (in a temp folder), as `hrsync sandbox --data`
//! keeps it, so every write's row is on disk before it is answered.
//!
//! `cargo bench -p hrsync-sandbox --bench directory`; `HRSYNC_BENCH_USERS` changes the size.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use hrsync_sandbox::{RunningSandbox, Sandbox, SandboxConfig, SeedGroup};
use serde_json::{Value, json};

const GROUPS: [&str; 3] = [
    "11111111-1111-1111-1111-111111111111",
    "33333333-3333-3333-3333-333333333333",
    "44444444-4444-4444-4444-444444444444",
];

struct World {
    _data: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    sandbox: RunningSandbox,
    http: reqwest::Client,
    token: String,
    ids: Vec<String>,
}

fn user(n: usize) -> Value {
    json!({
        "accountEnabled": true,
        "displayName": format!("Bench User {n}"),
        "mailNickname": format!("bench{n}"),
        "userPrincipalName": format!("bench{n}@acme.example"),
        "mail": format!("bench{n}@acme.example"),
        "employeeId": format!("E{n}"),
        "passwordProfile": {"password": "Bench-Passw0rd!"},
    })
}

impl World {
    async fn batch(&self, requests: Vec<Value>) -> Vec<Value> {
        let response: Value = self
            .http
            .post(format!("{}/$batch", self.sandbox.graph_url()))
            .bearer_auth(&self.token)
            .json(&json!({"requests": requests}))
            .send()
            .await
            .expect("batch")
            .json()
            .await
            .expect("json");
        response["responses"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn get(&self, path: &str) -> Value {
        self.runtime.block_on(async {
            self.http
                .get(format!("{}/{path}", self.sandbox.graph_url()))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json")
        })
    }
}

fn populate(users: usize) -> World {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let data = tempfile::tempdir().expect("temp dir");
    let file = data.path().join("sandbox.db");
    let (sandbox, http, token) = runtime.block_on(async {
        let sandbox = Sandbox::start(SandboxConfig {
            data: Some(file),
            groups: GROUPS
                .iter()
                .map(|id| SeedGroup {
                    id: (*id).to_owned(),
                    display_name: (*id).to_owned(),
                    licenses: Vec::new(),
                })
                .collect(),
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox");
        let http = reqwest::Client::new();
        let token: Value = http
            .post(sandbox.token_url("bench"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "bench"),
                ("client_secret", "s"),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        let token = token["access_token"].as_str().expect("token").to_owned();
        (sandbox, http, token)
    });
    let mut world = World {
        _data: data,
        runtime,
        sandbox,
        http,
        token,
        ids: Vec::new(),
    };
    let started = Instant::now();
    let ids = world.runtime.block_on(async {
        let mut ids = Vec::with_capacity(users);
        for chunk in (0..users).collect::<Vec<_>>().chunks(20) {
            let requests = chunk
                .iter()
                .map(|n| {
                    json!({"id": n.to_string(), "method": "POST", "url": "/users",
                           "headers": {"Content-Type": "application/json"}, "body": user(*n)})
                })
                .collect();
            let mut responses = world.batch(requests).await;
            responses.sort_by_key(|r| r["id"].as_str().and_then(|i| i.parse::<usize>().ok()));
            ids.extend(
                responses
                    .iter()
                    .filter_map(|r| r["body"]["id"].as_str().map(str::to_owned)),
            );
        }
        let created = started.elapsed();
        let memberships: Vec<(usize, &str)> = (0..ids.len())
            .flat_map(|i| GROUPS.iter().map(move |g| (i, *g)))
            .collect();
        for chunk in memberships.chunks(20) {
            let requests = chunk
                .iter()
                .enumerate()
                .map(|(k, (i, g))| {
                    json!({"id": k.to_string(), "method": "POST", "url": format!("/groups/{g}/members/$ref"),
                           "headers": {"Content-Type": "application/json"},
                           "body": {"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", ids[*i])}})
                })
                .collect();
            world.batch(requests).await;
        }
        eprintln!(
            "populate: {} users in {:.2?}, then {} memberships, {:.2?} in all",
            ids.len(),
            created,
            memberships.len(),
            started.elapsed()
        );
        ids
    });
    assert_eq!(ids.len(), users, "every create succeeded");
    world.ids = ids;
    world
}

fn bench(c: &mut Criterion) {
    let users = std::env::var("HRSYNC_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let world = populate(users);
    let mut group = c.benchmark_group(format!("sandbox with {users} users"));
    let next = AtomicUsize::new(users);
    group.bench_function("create a user", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let created: Value = world.runtime.block_on(async {
                world
                    .http
                    .post(format!("{}/users", world.sandbox.graph_url()))
                    .bearer_auth(&world.token)
                    .json(&user(n))
                    .send()
                    .await
                    .expect("create")
                    .json()
                    .await
                    .expect("json")
            });
            black_box(created)
        });
    });
    let id = world.ids[users / 2].clone();
    group.bench_function("get by id", |b| {
        b.iter(|| black_box(world.get(&format!("users/{id}?$select=id,employeeId"))));
    });
    let by_employee = format!(
        "users?$filter=employeeId%20eq%20%27E{}%27&$select=id",
        users / 3
    );
    group.bench_function("filter employeeId eq", |b| {
        b.iter(|| {
            let found = world.get(&by_employee);
            assert_eq!(found["value"].as_array().map(Vec::len), Some(1));
            black_box(found)
        });
    });
    let by_proxy = format!(
        "users?$filter=proxyAddresses/any(p:p%20eq%20%27smtp:bench{}@acme.example%27)&$select=id",
        users / 4
    );
    group.bench_function("filter proxyAddresses any", |b| {
        b.iter(|| {
            let found = world.get(&by_proxy);
            assert_eq!(found["value"].as_array().map(Vec::len), Some(1));
            black_box(found)
        });
    });
    group.finish();
    let stats = world.sandbox.sandbox.stats();
    eprintln!(
        "sandbox answered {} requests ({} reads, {} writes, {} batches)",
        stats.requests, stats.reads, stats.writes, stats.batches
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
