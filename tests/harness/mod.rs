//! What the end-to-end tests of `hrsync serve` share: a site (a folder with a config), the
//! running server, signed deliveries, and reading the outcome where an operator would (the
//! sandbox's `.hrsync/sandbox.db`, `GET /healthz`, `hrsync audit`).

#![allow(dead_code)]

pub use std::collections::BTreeSet;
pub use std::path::{Path, PathBuf};
pub use std::process::{Child, Command, ExitStatus, Output, Stdio};
pub use std::time::{Duration, Instant};

pub use hrsync_hr::signed_json;
pub use reqwest::StatusCode;
pub use serde_json::{Value, json};

pub const SECRET_ENV: &str = "HRSYNC_TEST_WEBHOOK_SECRET";
pub const SECRET: &str = "serve-cli-test-secret-4f1d9a";

/// How long the queues may take to drain after a delivery.
pub const SETTLE: Duration = Duration::from_secs(30);

// Group ids and licence sku ids of the example config's [[access]] rules.
pub const ALL_STAFF: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e01";
pub const ENGINEERING: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e02";
pub const GITHUB: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e03";
pub const SALES: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e05";
pub const CRM: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e06";
pub const US_BENEFITS: &str = "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e07";
pub const E5: &str = "7e3c9a10-5d2b-4f6e-8a71-00000000e501";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example config with its `[source.hr]` table (and `[source.hr.columns]`) replaced by
/// a signed-JSON source whose secret comes from the environment.
pub fn webhook_config() -> String {
    config_with_source(&format!(
        "kind = \"signed-json\"\nwebhook_secret = {{ env = \"{SECRET_ENV}\" }}\n"
    ))
}

/// The example config with the body of its `[source.hr]` table (and `[source.hr.columns]`)
/// replaced by `table`.
pub fn config_with_source(table: &str) -> String {
    let config = std::fs::read_to_string(repo().join("examples/hrsync.toml")).unwrap();
    let start = config
        .find("[source.hr]\n")
        .expect("the example config has a [source.hr] table");
    let end = start
        + config[start..]
            .find("\n# ----")
            .expect("a comment rule follows the source tables");
    format!("{}[source.hr]\n{table}{}", &config[..start], &config[end..])
}

/// A folder with `hrsync.toml`; the state and the sandbox directory go in `.hrsync/` beside it.
pub struct Site {
    pub dir: tempfile::TempDir,
    /// Environment variables every command gets (the sources' secrets).
    pub env: Vec<(String, String)>,
    /// `--now` for `hrsync serve`.
    pub now: Option<String>,
}

impl Site {
    pub fn new() -> Self {
        Self::with_config(&webhook_config())
    }

    pub fn with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hrsync.toml"), config).unwrap();
        Self {
            dir,
            env: Vec::new(),
            now: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hrsync"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env(SECRET_ENV, SECRET)
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// A read-only command with `--config hrsync.toml --format json`.
    pub fn run_json(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--config", "hrsync.toml", "--format", "json"]);
        self.command(&all).output().expect("the hrsync binary runs")
    }

    pub fn json(&self, args: &[&str]) -> Value {
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
    pub fn audit(&self, worker: &str) -> Vec<Value> {
        self.json(&["audit", worker]).as_array().unwrap().clone()
    }

    /// `(stage, action)` of the worker's audit records, oldest first.
    pub fn audit_steps(&self, worker: &str) -> Vec<(String, String)> {
        self.audit(worker)
            .iter()
            .map(|r| (text(&r["stage"]), text(&r["action"])))
            .collect()
    }

    /// The in-process sandbox's directory, read from its data file `.hrsync/sandbox.db` without
    /// changing it (empty before the first command started it).
    pub fn directory(&self) -> Value {
        let data = self.path(".hrsync/sandbox.db");
        if !data.exists() {
            return json!({});
        }
        hrsync_sandbox::read_data_file(&data)
            .unwrap_or_else(|e| panic!("cannot read the sandbox's data file: {e}"))
    }

    /// The sandbox's users (their Graph properties), each with `groups`: the ids of the
    /// groups it is a member of, sorted.
    pub fn users(&self) -> Vec<Value> {
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

    pub fn users_with(&self, employee_id: &str) -> Vec<Value> {
        self.users()
            .into_iter()
            .filter(|u| u["employeeId"] == employee_id)
            .collect()
    }

    /// The one sandbox user with this employeeId.
    pub fn user(&self, employee_id: &str) -> Value {
        let mut users = self.users_with(employee_id);
        assert_eq!(
            users.len(),
            1,
            "exactly one account for employee {employee_id}: {users:#?}"
        );
        users.remove(0)
    }

    pub fn serve(&self) -> Serve {
        Serve::start(self, "serve.log")
    }
}

pub fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"))
        .to_owned()
}

pub fn position(steps: &[(String, String)], stage: &str, action: &str) -> usize {
    steps
        .iter()
        .position(|(s, a)| s == stage && a == action)
        .unwrap_or_else(|| panic!("{stage} {action} in {steps:?}"))
}

pub fn count(steps: &[(String, String)], stage: &str, action: &str) -> usize {
    steps
        .iter()
        .filter(|(s, a)| s == stage && a == action)
        .count()
}

pub fn sorted(values: &[&str]) -> Vec<String> {
    let mut values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    values.sort();
    values
}

pub fn sku_ids(user: &Value) -> BTreeSet<String> {
    user["assignedLicenses"]
        .as_array()
        .map(|licenses| licenses.iter().map(|l| text(&l["skuId"])).collect())
        .unwrap_or_default()
}

pub fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A running `hrsync serve --listen 127.0.0.1:0`, killed when dropped so a failing test
/// leaves no process behind. Its stderr goes to a file in the site.
pub struct Serve {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    pub runtime: tokio::runtime::Runtime,
    pub client: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reply: the status and the raw body.
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the reply is JSON ({e}): {:?}", self.body))
    }
}

impl Serve {
    /// Starts `hrsync serve`, its stderr in `log_name` in the site, without waiting.
    pub fn spawn(site: &Site, log_name: &str) -> Self {
        Self::spawn_on(site, log_name, "127.0.0.1:0")
    }

    /// [`Serve::spawn`] listening on `listen`.
    pub fn spawn_on(site: &Site, log_name: &str, listen: &str) -> Self {
        let log = site.path(log_name);
        let mut args = vec!["serve", "--config", "hrsync.toml", "--listen", listen];
        if let Some(now) = &site.now {
            args.extend(["--now", now.as_str()]);
        }
        let child = site
            .command(&args)
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
    pub fn start(site: &Site, log_name: &str) -> Self {
        Self::start_on(site, log_name, "127.0.0.1:0")
    }

    /// [`Serve::start`] listening on `listen`.
    pub fn start_on(site: &Site, log_name: &str, listen: &str) -> Self {
        let mut serve = Self::spawn_on(site, log_name, listen);
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn request(&self, request: reqwest::RequestBuilder) -> Reply {
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
    pub fn post(&self, source: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
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
    pub fn post_signed_at(
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
    pub fn deliver(&self, body: &Value, delivery: Option<&str>) -> Reply {
        let body = serde_json::to_vec(body).unwrap();
        self.post_signed_at("hr", &body, now_seconds(), delivery)
    }

    /// Delivers `body`, which must be taken in (202); returns the counts it answered with.
    pub fn deliver_ok(&self, body: &Value, delivery: Option<&str>) -> Value {
        let reply = self.deliver(body, delivery);
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "the delivery {delivery:?} is taken in: {}",
            reply.body
        );
        reply.json()
    }

    pub fn healthz(&self) -> Reply {
        self.request(self.client.get(format!("{}/healthz", self.base)))
    }

    /// Waits until `/healthz` shows every queue empty (nothing visible or in flight) on
    /// several polls in a row, and no dead letter; returns the last `/healthz`.
    pub fn settle(&self) -> Value {
        self.settle_within(SETTLE)
    }

    pub fn settle_within(&self, within: Duration) -> Value {
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
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
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
pub fn listening_address(log: &str) -> Option<&str> {
    let line = log
        .lines()
        .find(|l| l.starts_with("hrsync: listening on http://"))?;
    let rest = &line["hrsync: listening on http://".len()..];
    // The line is complete once the directory's description follows the address.
    let (address, _) = rest.split_once(' ')?;
    Some(address)
}

/// An active employee hired in 2024, as a signed-JSON worker object.
pub fn employee(id: &str, given: &str, family: &str, department: &str) -> Value {
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
