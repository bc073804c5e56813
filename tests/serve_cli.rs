//! End to end: `hrsync serve` over real HTTP. Every test works in its own folder holding
//! the shipped example config with its `[source.hr]` turned into a signed-JSON webhook
//! source, starts the built binary on a free port, signs deliveries with
//! `hrsync_hr::signed_json::sign` at the real time, and reads the outcome where an operator
//! would: the in-process sandbox's `.hrsync/sandbox.json`, `GET /healthz`, and `hrsync audit`
//! run as a separate process beside the running server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use hrsync_hr::signed_json;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET_ENV: &str = "HRSYNC_TEST_WEBHOOK_SECRET";
const SECRET: &str = "serve-cli-test-secret-4f1d9a";

/// How long the queues may take to drain after a delivery.
const SETTLE: Duration = Duration::from_secs(30);

// Group ids and licence sku ids of the example config's [[access]] rules.
const ALL_STAFF: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e01";
const ENGINEERING: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e02";
const GITHUB: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e03";
const SALES: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e05";
const CRM: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e06";
const US_BENEFITS: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e07";
const E5: &str = "7e3c9a10-5d2b-4f6e-8a71-00000000e501";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example config with its `[source.hr]` table (and `[source.hr.columns]`) replaced by
/// a signed-JSON source whose secret comes from the environment.
fn webhook_config() -> String {
    let config = std::fs::read_to_string(repo().join("examples/hrsync.toml")).unwrap();
    let start = config
        .find("[source.hr]\n")
        .expect("the example config has a [source.hr] table");
    let end = start
        + config[start..]
            .find("\n# ----")
            .expect("a comment rule follows the source tables");
    format!(
        "{}[source.hr]\nkind = \"signed-json\"\nwebhook_secret = {{ env = \"{SECRET_ENV}\" }}\n{}",
        &config[..start],
        &config[end..]
    )
}

/// A folder with `hrsync.toml`; the state and the sandbox directory go in `.hrsync/` beside it.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hrsync.toml"), webhook_config()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hrsync"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env(SECRET_ENV, SECRET)
            .env_remove("RUST_LOG");
        command
    }

    /// A read-only command with `--config hrsync.toml --format json`.
    fn run_json(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--config", "hrsync.toml", "--format", "json"]);
        self.command(&all).output().expect("the hrsync binary runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run_json(args);
        assert!(
            output.status.success(),
            "hrsync {args:?} failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of hrsync {args:?} is one JSON document ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// `hrsync audit <worker> --format json`: the records, oldest first.
    fn audit(&self, worker: &str) -> Vec<Value> {
        self.json(&["audit", worker]).as_array().unwrap().clone()
    }

    /// `(stage, action)` of the worker's audit records, oldest first.
    fn audit_steps(&self, worker: &str) -> Vec<(String, String)> {
        self.audit(worker)
            .iter()
            .map(|r| (text(&r["stage"]), text(&r["action"])))
            .collect()
    }

    /// The sandbox directory as written to `.hrsync/sandbox.json` (empty before its first change).
    fn directory(&self) -> Value {
        match std::fs::read_to_string(self.path(".hrsync/sandbox.json")) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
            Err(e) => panic!("cannot read sandbox.json: {e}"),
        }
    }

    /// The sandbox's users (their Graph properties), each with `groups`: the ids of the
    /// groups it is a member of, sorted.
    fn users(&self) -> Vec<Value> {
        let directory = self.directory();
        let groups = directory["groups"].as_array().cloned().unwrap_or_default();
        directory["users"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|record| {
                let mut user = record["user"].clone();
                let id = user["id"].clone();
                let mut member_of: Vec<String> = groups
                    .iter()
                    .filter(|g| g["members"].as_array().is_some_and(|m| m.contains(&id)))
                    .map(|g| text(&g["id"]))
                    .collect();
                member_of.sort();
                user["groups"] = json!(member_of);
                user
            })
            .collect()
    }

    fn users_with(&self, employee_id: &str) -> Vec<Value> {
        self.users()
            .into_iter()
            .filter(|u| u["employeeId"] == employee_id)
            .collect()
    }

    /// The one sandbox user with this employeeId.
    fn user(&self, employee_id: &str) -> Value {
        let mut users = self.users_with(employee_id);
        assert_eq!(
            users.len(),
            1,
            "exactly one account for employee {employee_id}: {users:#?}"
        );
        users.remove(0)
    }

    fn serve(&self) -> Serve {
        Serve::start(self, "serve.log")
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"))
        .to_owned()
}

fn position(steps: &[(String, String)], stage: &str, action: &str) -> usize {
    steps
        .iter()
        .position(|(s, a)| s == stage && a == action)
        .unwrap_or_else(|| panic!("{stage} {action} in {steps:?}"))
}

fn count(steps: &[(String, String)], stage: &str, action: &str) -> usize {
    steps
        .iter()
        .filter(|(s, a)| s == stage && a == action)
        .count()
}

fn sorted(values: &[&str]) -> Vec<String> {
    let mut values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    values.sort();
    values
}

fn sku_ids(user: &Value) -> BTreeSet<String> {
    user["assignedLicenses"]
        .as_array()
        .map(|licenses| licenses.iter().map(|l| text(&l["skuId"])).collect())
        .unwrap_or_default()
}

fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A running `hrsync serve --listen 127.0.0.1:0`, killed when dropped so a failing test
/// leaves no process behind. Its stderr goes to a file in the site.
struct Serve {
    child: Child,
    base: String,
    log: PathBuf,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reply: the status and the raw body.
struct Reply {
    status: StatusCode,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the reply is JSON ({e}): {:?}", self.body))
    }
}

impl Serve {
    /// Starts `hrsync serve`, its stderr in `log_name` in the site, without waiting.
    fn spawn(site: &Site, log_name: &str) -> Self {
        let log = site.path(log_name);
        let child = site
            .command(&[
                "serve",
                "--config",
                "hrsync.toml",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("hrsync serve starts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        Self {
            child,
            base: String::new(),
            log,
            runtime,
            client,
        }
    }

    /// Starts `hrsync serve` and waits until it listens.
    fn start(site: &Site, log_name: &str) -> Self {
        let mut serve = Self::spawn(site, log_name);
        let deadline = Instant::now() + SETTLE;
        serve.base = loop {
            let log = serve.log_text();
            if let Some(address) = listening_address(&log) {
                break format!("http://{address}");
            }
            if let Some(status) = serve.child.try_wait().unwrap() {
                panic!("hrsync serve exited ({status}) before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "hrsync serve did not print `hrsync: listening on http://...` within {SETTLE:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        serve
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn request(&self, request: reqwest::RequestBuilder) -> Reply {
        self.runtime.block_on(async {
            let response = request.send().await.unwrap_or_else(|e| {
                panic!(
                    "the request is answered ({e:?}); serve's log:\n{}",
                    self.log_text()
                )
            });
            let status = response.status();
            let body = response.text().await.unwrap();
            Reply { status, body }
        })
    }

    /// POSTs `body` to `/webhooks/{source}` with these headers, as given.
    fn post(&self, source: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
        let mut request = self
            .client
            .post(format!("{}/webhooks/{source}", self.base))
            .header("Content-Type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        self.request(request)
    }

    /// POSTs `body` signed at `signed_at` (Unix seconds) with the test secret.
    fn post_signed_at(
        &self,
        source: &str,
        body: &[u8],
        signed_at: i64,
        delivery: Option<&str>,
    ) -> Reply {
        let mut headers = vec![
            (signed_json::TIMESTAMP_HEADER, signed_at.to_string()),
            (
                signed_json::SIGNATURE_HEADER,
                signed_json::sign(SECRET.as_bytes(), signed_at, body),
            ),
        ];
        if let Some(delivery) = delivery {
            headers.push((signed_json::DELIVERY_HEADER, delivery.to_owned()));
        }
        self.post(source, &headers, body.to_vec())
    }

    /// Delivers `body` to the `hr` source, signed now.
    fn deliver(&self, body: &Value, delivery: Option<&str>) -> Reply {
        let body = serde_json::to_vec(body).unwrap();
        self.post_signed_at("hr", &body, now_seconds(), delivery)
    }

    /// Delivers `body`, which must be taken in (202); returns the counts it answered with.
    fn deliver_ok(&self, body: &Value, delivery: Option<&str>) -> Value {
        let reply = self.deliver(body, delivery);
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "the delivery {delivery:?} is taken in: {}",
            reply.body
        );
        reply.json()
    }

    fn healthz(&self) -> Reply {
        self.request(self.client.get(format!("{}/healthz", self.base)))
    }

    /// Waits until `/healthz` shows every queue empty (nothing visible or in flight) on
    /// several polls in a row, and no dead letter; returns the last `/healthz`.
    fn settle(&self) -> Value {
        self.settle_within(SETTLE)
    }

    fn settle_within(&self, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let mut quiet = 0;
        loop {
            let reply = self.healthz();
            assert_eq!(reply.status, StatusCode::OK, "/healthz: {}", reply.body);
            let health = reply.json();
            let queues = health["queues"]
                .as_object()
                .unwrap_or_else(|| panic!("/healthz lists the queues: {health}"));
            for (name, depth) in queues {
                assert_eq!(
                    depth["dead"],
                    0,
                    "no dead letter in {name}: {health}\nserve's log:\n{}",
                    self.log_text()
                );
            }
            let busy: u64 = queues
                .values()
                .map(|d| d["visible"].as_u64().unwrap() + d["in_flight"].as_u64().unwrap())
                .sum();
            quiet = if busy == 0 { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "the queues did not drain within {within:?}: {health}\nserve's log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the process to exit by itself.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hrsync serve did not exit within {within:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `ADDR` from `hrsync: listening on http://ADDR (directory: ...)`.
fn listening_address(log: &str) -> Option<&str> {
    let line = log
        .lines()
        .find(|l| l.starts_with("hrsync: listening on http://"))?;
    let rest = &line["hrsync: listening on http://".len()..];
    // The line is complete once the directory's description follows the address.
    let (address, _) = rest.split_once(' ')?;
    Some(address)
}

/// An active employee hired in 2024, as a signed-JSON worker object.
fn employee(id: &str, given: &str, family: &str, department: &str) -> Value {
    json!({
        "employee_id": id,
        "given_name": given,
        "family_name": family,
        "status": "active",
        "hire_date": "2024-01-08",
        "worker_type": "Employee",
        "job_title": "Specialist",
        "department": department,
        "country": "GB",
    })
}

// -------------------------------------------------------------------------------------------

#[test]
fn a_new_hire_webhook_creates_an_enabled_account_with_its_birthright_groups() {
    let site = Site::new();
    let serve = site.serve();
    let mut hire = employee("9001", "Grace", "Hopper", "Engineering");
    hire["country"] = json!("US");
    hire["job_title"] = json!("Software Engineer");

    let answer = serve.deliver_ok(&hire, Some("hire-9001"));
    assert_eq!(
        answer,
        json!({"accepted": 1, "queued": 0, "duplicates": 0, "stale": 0})
    );
    serve.settle();

    let user = site.user("9001");
    assert_eq!(user["userPrincipalName"], "grace.hopper@acme.example");
    assert_eq!(user["displayName"], "Grace Hopper");
    assert_eq!(user["accountEnabled"], true, "{user:#}");
    assert_eq!(user["department"], "Engineering");
    assert_eq!(user["jobTitle"], "Software Engineer");
    assert_eq!(user["usageLocation"], "US");
    // All Staff (everyone), Engineering (+ GitHub), US staff; not Sales, not Contractors.
    assert_eq!(
        user["groups"],
        json!(sorted(&[ALL_STAFF, ENGINEERING, GITHUB, US_BENEFITS])),
        "{user:#}"
    );
    assert_eq!(sku_ids(&user), BTreeSet::from([E5.to_owned()]), "{user:#}");

    // The audit, read by another process while serve runs.
    let records = site.audit("hr:9001");
    let steps: Vec<(String, String)> = records
        .iter()
        .map(|r| (text(&r["stage"]), text(&r["action"])))
        .collect();
    let received = position(&steps, "intake", "received");
    let joined = position(&steps, "mapping", "join");
    let created = position(&steps, "entra", "create");
    assert!(received < joined && joined < created, "{steps:?}");
    assert_eq!(count(&steps, "entra", "create"), 1, "{steps:?}");
    assert_eq!(records[received]["cause"], "webhook hr");
    assert_eq!(
        records[received]["trace"], "webhook:hr:hire-9001#9001",
        "the trace names the source, the delivery and the worker"
    );
    assert_eq!(
        records[created]["after"]["account"]["upn"],
        "grace.hopper@acme.example"
    );
}

/// The three records of one worker: hired in Sales (T1), moved to Engineering (T2), left
/// with a last day in the past (T3).
fn life_of_9100() -> [(&'static str, Value); 3] {
    let mut hire = employee("9100", "Tony", "Stark", "Sales");
    hire["as_of"] = json!("2026-04-01T09:00:00Z");
    let mut moved = hire.clone();
    moved["department"] = json!("Engineering");
    moved["as_of"] = json!("2026-04-01T10:00:00Z");
    let mut gone = moved.clone();
    gone["status"] = json!("terminated");
    gone["termination_date"] = json!("2026-03-31");
    gone["termination_type"] = json!("voluntary");
    gone["as_of"] = json!("2026-04-01T11:00:00Z");
    [("evt-hire", hire), ("evt-move", moved), ("evt-leave", gone)]
}

/// What two directories are compared on.
fn view(user: &Value) -> Value {
    json!({
        "userPrincipalName": user["userPrincipalName"],
        "displayName": user["displayName"],
        "accountEnabled": user["accountEnabled"],
        "department": user["department"],
        "employeeId": user["employeeId"],
        "groups": user["groups"],
        "licenses": sku_ids(user),
    })
}

#[test]
fn webhooks_delivered_twice_and_out_of_order_reach_the_in_order_end_state() {
    let events = life_of_9100();

    let shuffled_site = Site::new();
    let shuffled = shuffled_site.serve();
    // (index into events, expected answer): move, hire, move, leave, hire, leave.
    let order = [
        (
            1,
            json!({"accepted": 1, "queued": 0, "duplicates": 0, "stale": 0}),
        ),
        (
            0,
            json!({"accepted": 0, "queued": 0, "duplicates": 0, "stale": 1}),
        ),
        (
            1,
            json!({"accepted": 0, "queued": 0, "duplicates": 1, "stale": 0}),
        ),
        (
            2,
            json!({"accepted": 1, "queued": 0, "duplicates": 0, "stale": 0}),
        ),
        (
            0,
            json!({"accepted": 0, "queued": 0, "duplicates": 1, "stale": 0}),
        ),
        (
            2,
            json!({"accepted": 0, "queued": 0, "duplicates": 1, "stale": 0}),
        ),
    ];
    for (index, expected) in &order {
        let (delivery, body) = &events[*index];
        let answer = shuffled.deliver_ok(body, Some(delivery));
        assert_eq!(&answer, expected, "the answer to {delivery}");
        shuffled.settle();
    }

    let user = shuffled_site.user("9100");
    assert_eq!(
        user["accountEnabled"], false,
        "the newest record (a leaver) wins"
    );
    assert_eq!(user["department"], "Engineering", "{user:#}");
    assert_eq!(user["groups"], json!([]), "access goes at once: {user:#}");
    assert_eq!(sku_ids(&user), BTreeSet::new(), "{user:#}");
    assert_eq!(shuffled_site.users().len(), 1);
    let steps = shuffled_site.audit_steps("hr:9100");
    assert_eq!(count(&steps, "entra", "create"), 1, "{steps:?}");
    assert_eq!(
        count(&steps, "intake", "received"),
        2,
        "only the move and the leave are kept (the hire came stale, the rest were repeats): {steps:?}"
    );

    let in_order_site = Site::new();
    let in_order = in_order_site.serve();
    // What the account looks like after each record: (enabled, department, groups).
    let expected = [
        (true, "Sales", sorted(&[ALL_STAFF, SALES, CRM])),
        (
            true,
            "Engineering",
            sorted(&[ALL_STAFF, ENGINEERING, GITHUB]),
        ),
        (false, "Engineering", Vec::new()),
    ];
    for ((delivery, body), (enabled, department, groups)) in events.iter().zip(expected) {
        let answer = in_order.deliver_ok(body, Some(delivery));
        assert_eq!(
            answer,
            json!({"accepted": 1, "queued": 0, "duplicates": 0, "stale": 0}),
            "the answer to {delivery}"
        );
        in_order.settle();
        let user = in_order_site.user("9100");
        assert_eq!(
            user["accountEnabled"], enabled,
            "after {delivery}: {user:#}"
        );
        assert_eq!(user["department"], department, "after {delivery}: {user:#}");
        assert_eq!(user["groups"], json!(groups), "after {delivery}: {user:#}");
    }
    assert_eq!(in_order_site.users().len(), 1);
    assert_eq!(
        view(&shuffled_site.user("9100")),
        view(&in_order_site.user("9100"))
    );
}

#[test]
fn rejected_deliveries_get_their_status_and_create_nothing() {
    let site = Site::new();
    let serve = site.serve();

    let health = serve.healthz();
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let health = health.json();
    assert_eq!(health["status"], "ok");
    for queue in ["worker-events", "directory", "writeback"] {
        for key in ["visible", "in_flight", "dead"] {
            assert_eq!(health["queues"][queue][key], 0, "{queue}.{key}: {health}");
        }
    }

    // A bad signature: the body altered by one byte after signing.
    let body = serde_json::to_vec(&employee("9201", "Mallory", "Forger", "Sales")).unwrap();
    let signed_at = now_seconds();
    let signature = signed_json::sign(SECRET.as_bytes(), signed_at, &body);
    let mut altered = body.clone();
    let at = altered
        .windows(7)
        .position(|w| w == b"Mallory")
        .expect("the name is in the body");
    altered[at] = b'N';
    let reply = serve.post(
        "hr",
        &[
            (signed_json::TIMESTAMP_HEADER, signed_at.to_string()),
            (signed_json::SIGNATURE_HEADER, signature.clone()),
        ],
        altered,
    );
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body, r#"{"error":"invalid signature"}"#);

    // The same signature under another secret's key: refused too.
    let reply = serve.post(
        "hr",
        &[
            (signed_json::TIMESTAMP_HEADER, signed_at.to_string()),
            (
                signed_json::SIGNATURE_HEADER,
                signed_json::sign(b"not the secret", signed_at, &body),
            ),
        ],
        body.clone(),
    );
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);

    // Missing headers: none, no signature, no timestamp.
    let reply = serve.post("hr", &[], body.clone());
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body, r#"{"error":"invalid signature"}"#);
    let reply = serve.post(
        "hr",
        &[(signed_json::TIMESTAMP_HEADER, signed_at.to_string())],
        body.clone(),
    );
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    let reply = serve.post(
        "hr",
        &[(signed_json::SIGNATURE_HEADER, signature.clone())],
        body.clone(),
    );
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);

    // Correctly signed, 10 minutes ago: a replay.
    let reply = serve.post_signed_at("hr", &body, now_seconds() - 600, None);
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.body, r#"{"error":"invalid signature"}"#);

    // An unknown source.
    let reply = serve.post_signed_at("workday", &body, now_seconds(), None);
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert!(reply.json()["error"].as_str().unwrap().contains("workday"));

    // A required field missing: the error names it (and not the values).
    let mut nameless = employee("9202", "Nobody", "Noname", "Sales");
    nameless.as_object_mut().unwrap().remove("given_name");
    let reply = serve.deliver(&nameless, None);
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let error = text(&reply.json()["error"]);
    assert!(error.contains("given_name"), "{error}");
    assert!(!error.contains("Noname"), "no values in the error: {error}");

    // Over 1 MiB, correctly signed.
    let mut huge = employee("9203", "Big", "Body", "Sales");
    huge["custom"] = json!({"padding": "x".repeat(1024 * 1024)});
    let huge = serde_json::to_vec(&huge).unwrap();
    assert!(huge.len() > 1024 * 1024);
    let reply = serve.post_signed_at("hr", &huge, now_seconds(), None);
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );

    // None of those was taken in; a good delivery still is.
    let health = serve.settle();
    assert_eq!(health["status"], "ok");
    for worker in ["hr:9201", "hr:9202", "hr:9203"] {
        let output = site.run_json(&["audit", worker]);
        assert!(
            !output.status.success()
                && String::from_utf8_lossy(&output.stderr).contains("unknown worker"),
            "nothing is known of {worker}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(site.users().is_empty(), "{:#?}", site.users());

    let answer = serve.deliver_ok(&employee("9209", "Honest", "Sender", "Sales"), None);
    assert_eq!(answer["accepted"], 1);
    serve.settle();
    let users = site.users();
    let ids: Vec<&Value> = users.iter().map(|u| &u["employeeId"]).collect();
    assert_eq!(ids, [&json!("9209")]);
    assert_eq!(site.json(&["status"])["workers"], 1);
}

#[test]
fn a_batch_delivery_of_three_workers_creates_three_accounts() {
    let site = Site::new();
    let serve = site.serve();
    let batch = json!({"workers": [
        employee("9301", "Ada", "Lovelace", "Engineering"),
        employee("9302", "Alan", "Turing", "Sales"),
        employee("9303", "Edsger", "Dijkstra", "Finance"),
    ]});
    let answer = serve.deliver_ok(&batch, Some("batch-1"));
    assert_eq!(
        answer,
        json!({"accepted": 3, "queued": 0, "duplicates": 0, "stale": 0})
    );
    serve.settle();

    assert_eq!(site.users().len(), 3, "{:#?}", site.users());
    for (id, upn) in [
        ("9301", "ada.lovelace@acme.example"),
        ("9302", "alan.turing@acme.example"),
        ("9303", "edsger.dijkstra@acme.example"),
    ] {
        let user = site.user(id);
        assert_eq!(user["userPrincipalName"], upn);
        assert_eq!(user["accountEnabled"], true, "{user:#}");
        assert!(
            user["groups"]
                .as_array()
                .unwrap()
                .contains(&json!(ALL_STAFF)),
            "{user:#}"
        );
    }

    // The same batch again is three duplicates.
    let answer = serve.deliver_ok(&batch, Some("batch-1"));
    assert_eq!(
        answer,
        json!({"accepted": 0, "queued": 0, "duplicates": 3, "stale": 0})
    );
}

#[test]
fn sigterm_right_after_a_delivery_stops_cleanly_and_a_restart_finishes_the_work() {
    let site = Site::new();
    let ids = ["9401", "9402", "9403", "9404", "9405"];
    let mut serve = site.serve();
    let batch = json!({"workers": ids
        .iter()
        .map(|id| employee(id, "Worker", &format!("Number{id}"), "Sales"))
        .collect::<Vec<_>>()});
    let answer = serve.deliver_ok(&batch, Some("before-sigterm"));
    assert_eq!(answer["accepted"], 5);

    let killed = Command::new("kill")
        .args(["-TERM", &serve.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = serve.wait_exit(Duration::from_secs(10));
    let log = serve.log_text();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(log.contains("hrsync: stopped"), "{log}");
    drop(serve);

    let again = Serve::start(&site, "serve-again.log");
    again.settle();
    for id in ids {
        let user = site.user(id);
        assert_eq!(user["accountEnabled"], true, "{user:#}");
        let steps = site.audit_steps(&format!("hr:{id}"));
        assert_eq!(count(&steps, "entra", "create"), 1, "{id}: {steps:?}");
    }
    assert_eq!(site.users().len(), ids.len());
}

/// Regression: SIGTERM with a backlog exits promptly and leaves the rest queued for the next
/// start. Was: the runner looked at the stop signal only when a round handled nothing, so it
/// drained the whole backlog first (1,000 workers: 190 s, beyond any process manager's
/// stop timeout).
#[test]
fn sigterm_with_a_backlog_exits_promptly_and_leaves_the_rest_queued() {
    let site = Site::new();
    let ids: Vec<String> = (0..400).map(|i| (30000 + i).to_string()).collect();
    let mut serve = site.serve();
    let batch = json!({"workers": ids
        .iter()
        .map(|id| employee(id, "Worker", &format!("Number{id}"), "Sales"))
        .collect::<Vec<_>>()});
    let answer = serve.deliver_ok(&batch, Some("backlog"));
    assert_eq!(answer["accepted"], ids.len());

    let killed = Command::new("kill")
        .args(["-TERM", &serve.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = serve.wait_exit(Duration::from_secs(10));
    let log = serve.log_text();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(log.contains("hrsync: stopped"), "{log}");
    drop(serve);

    let again = Serve::start(&site, "serve-again.log");
    again.settle_within(Duration::from_secs(600));
    assert_eq!(site.users().len(), ids.len());
    for id in [&ids[0], &ids[199], &ids[399]] {
        let steps = site.audit_steps(&format!("hr:{id}"));
        assert_eq!(count(&steps, "entra", "create"), 1, "{id}: {steps:?}");
    }
}

#[test]
fn a_second_serve_on_the_same_config_fails_fast_naming_the_other_process() {
    let site = Site::new();
    let first = site.serve();

    let mut second = Serve::spawn(&site, "second.log");
    let status = second.wait_exit(Duration::from_secs(10));
    let stderr = second.log_text();
    assert!(
        !status.success(),
        "the second serve fails: {status}\n{stderr}"
    );
    assert!(stderr.contains("another hrsync process"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");

    // The first one is unharmed.
    let health = first.healthz();
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let answer = first.deliver_ok(&employee("9501", "Still", "Serving", "Sales"), None);
    assert_eq!(answer["accepted"], 1);
    first.settle();
    assert_eq!(site.user("9501")["accountEnabled"], true);
}
