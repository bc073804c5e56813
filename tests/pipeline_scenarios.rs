//! End-to-end scenarios through the real local runtime: the pipeline's stages on the SQLite
//! store, queue and timers, against the sandbox directory over HTTP, with a manual clock so
//! days pass in milliseconds. Each asserts what the directory holds and what the audit says.

// Helpers outside #[test] functions unwrap too: a failed unwrap there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use hrsync_core::{Config, Status, TimerKind, Worker, WorkerKey};
use hrsync_directory::graph::{Credential, GraphClient, GraphSettings, RetryPolicy};
use hrsync_hr_emulators::{Emulator, bamboohr};
use hrsync_local::{SqliteQueue, SqliteStore, SqliteTimers};
use hrsync_pipeline::ports::{
    DeadLetter, Delivery, HoldStatus, Nudge, Queue, QueueDepth, QueueError, QueueName,
    RetryOutcome, StateStore, Timers,
};
use hrsync_pipeline::stages::intake::Incoming;
use hrsync_pipeline::synthetic::{EMERGENCY, leaving_now};
use hrsync_pipeline::{
    AuditRecord, Clock, DirectoryLookups, DrainError, ManualClock, Outcome, Pipeline, Runner,
    RunnerSettings, operations::Operations,
};
use hrsync_sandbox::{RunningSandbox, Sandbox, SandboxConfig, SeedGroup, SeedSku};
use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tempfile::TempDir;

const ALL_STAFF: &str = "00000000-0000-0000-0000-0000000000a1";
const ENGINEERING: &str = "00000000-0000-0000-0000-0000000000e1";
const SALES: &str = "00000000-0000-0000-0000-0000000000b1";

fn config(extra_lifecycle: &str) -> Config {
    Config::parse(&config_text(extra_lifecycle), "hrsync.toml").expect("scenario config parses")
}

fn config_text(extra_lifecycle: &str) -> String {
    format!(
        r#"
[source.hr]
kind = "signed-json"
webhook_secret = {{ env = "HR_WEBHOOK_SECRET" }}

[identity]
upn = ["{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}@acme.example", "{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}{{{{ n }}}}@acme.example"]

[attributes]
employeeId = "{{{{ employee_id }}}}"
department = "{{{{ department }}}}"
usageLocation = "{{{{ country }}}}"

[[access]]
name = "All staff"
groups = ["{ALL_STAFF}"]

[[access]]
name = "Engineering"
when = "department == 'Engineering'"
groups = ["{ENGINEERING}"]

[[access]]
name = "Sales"
when = "department == 'Sales'"
groups = ["{SALES}"]

[lifecycle]
default_time_zone = "Europe/London"
leave_at = "17:00"
start_at = "08:00"
prehire_days = 7
immediate_termination_types = ["involuntary"]
{extra_lifecycle}
"#
    )
}

/// The tenant the scenarios run in: the groups their access rules grant exist.
fn tenant() -> SandboxConfig {
    let group = |id: &str, name: &str| SeedGroup {
        id: id.to_owned(),
        display_name: name.to_owned(),
        licenses: Vec::new(),
    };
    SandboxConfig {
        groups: vec![
            group(ALL_STAFF, "All staff"),
            group(ENGINEERING, "Engineering"),
            group(SALES, "Sales"),
        ],
        ..SandboxConfig::default()
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339")
}

type LocalRunner = Runner<SqliteStore, SqliteQueue, SqliteTimers>;

/// One runtime: a state file, a sandbox over HTTP, a manual clock.
struct World {
    _dir: TempDir,
    clock: Arc<ManualClock>,
    sandbox: RunningSandbox,
    runner: LocalRunner,
    deliveries: std::sync::atomic::AtomicUsize,
}

impl World {
    async fn new(config: Config, start: &str) -> Self {
        Self::with_hr(config, start, hrsync_hr::Connectors::default()).await
    }

    /// With the HR systems' connectors (fetch, write-back).
    async fn with_hr(config: Config, start: &str, hr: hrsync_hr::Connectors) -> Self {
        Self::in_tenant(config, start, hr, tenant()).await
    }

    /// `text`'s config from 2026-12-01 09:00 in a tenant owning `units` E3 licences.
    async fn with_e3_licences(text: &str, units: u32) -> Self {
        let mut tenant = tenant();
        tenant.skus = vec![SeedSku {
            id: E3.to_owned(),
            part_number: "SPE_E3".to_owned(),
            units,
        }];
        let config = Config::parse(text, "hrsync.toml").unwrap();
        Self::in_tenant(
            config,
            "2026-12-01T09:00:00Z",
            hrsync_hr::Connectors::default(),
            tenant,
        )
        .await
    }

    /// In a tenant of its own.
    async fn in_tenant(
        config: Config,
        start: &str,
        hr: hrsync_hr::Connectors,
        tenant: SandboxConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
        let sandbox = Sandbox::start(tenant).await.unwrap();
        let mut settings =
            GraphSettings::new("contoso", "hrsync", Credential::ClientSecret("s".into()));
        settings.graph_endpoint = sandbox.url.clone();
        settings.authority_host = sandbox.url.clone();
        settings.retry = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            lag_attempts: 5,
            lag_delay: Duration::from_millis(20),
        };
        let clock = Arc::new(ManualClock::new(at(start)));
        // `[[notify]]` targets of the config, their secrets from [`notify::SECRETS`].
        let notify = Arc::new(
            hrsync_pipeline::Notifications::from_config(
                &config,
                &|key: &str, target: &hrsync_core::config::NotifyTarget| {
                    let http = reqwest::Client::new();
                    match hrsync_pipeline::notify::chat_webhook(
                        key,
                        target,
                        &notify::resolve,
                        &http,
                    )? {
                        Some(webhook) => Ok(Some(webhook)),
                        None => hrsync_local::smtp::notifier(key, target, &notify::resolve),
                    }
                },
            )
            .expect("the notify targets build")
            .with_timeout(Duration::from_secs(2)),
        );
        let pipeline = Pipeline {
            config: Arc::new(config),
            queue: Arc::new(store.queue()),
            timers: Arc::new(store.timers()),
            store: Arc::new(store),
            graph: Some(GraphClient::new(settings, reqwest::Client::new())),
            lookups: DirectoryLookups::PerWorker,
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            hr,
            notify,
        };
        let runner = Runner::new(Arc::new(pipeline), RunnerSettings::default());
        Self {
            _dir: dir,
            clock,
            sandbox,
            runner,
            deliveries: Default::default(),
        }
    }

    fn pipeline(&self) -> &Pipeline<SqliteStore, SqliteQueue, SqliteTimers> {
        self.runner.pipeline()
    }

    /// HR says `worker` (a webhook or an export row); the pipeline runs until it is quiet.
    async fn hr(&self, worker: &Worker) -> Outcome {
        let n = self
            .deliveries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let outcome = self
            .deliver(worker, &format!("delivery-{n}"), "webhook hr")
            .await;
        self.settle().await;
        outcome
    }

    async fn deliver(&self, worker: &Worker, delivery: &str, cause: &str) -> Outcome {
        self.pipeline()
            .intake(Incoming {
                snapshot: worker,
                delivery,
                cause,
                trace: delivery,
            })
            .await
            .expect("intake takes the record")
    }

    async fn settle(&self) {
        // A pipeline that never drains is a failure, not a hang.
        tokio::time::timeout(Duration::from_secs(60), self.runner.drain())
            .await
            .expect("the pipeline drains within a minute")
            .expect("the pipeline drains");
        for queue in QueueName::ALL {
            let dead = self.pipeline().queue.dead_letters(queue).await.unwrap();
            assert!(dead.is_empty(), "{queue} dead letters: {dead:?}");
        }
    }

    /// Moves the clock to `to` and lets due timers fire.
    async fn at(&self, to: &str) {
        self.clock.set(at(to));
        self.settle().await;
    }

    fn user(&self, employee_id: &str) -> Value {
        let users: Vec<Value> = self
            .sandbox
            .sandbox
            .users()
            .into_iter()
            .filter(|u| u["employeeId"] == employee_id && u.get("deletedDateTime").is_none())
            .collect();
        assert_eq!(
            users.len(),
            1,
            "exactly one account for {employee_id}: {users:#?}"
        );
        users.into_iter().next().unwrap()
    }

    fn accounts(&self, employee_id: &str) -> usize {
        self.sandbox
            .sandbox
            .users()
            .iter()
            .filter(|u| u["employeeId"] == employee_id)
            .count()
    }

    fn enabled(&self, employee_id: &str) -> bool {
        self.user(employee_id)["accountEnabled"].as_bool().unwrap()
    }

    fn id(&self, employee_id: &str) -> String {
        self.user(employee_id)["id"].as_str().unwrap().to_owned()
    }

    /// The groups (of the scenario's three) the account is a member of.
    fn groups(&self, employee_id: &str) -> Vec<&'static str> {
        let id = self.id(employee_id);
        [ALL_STAFF, ENGINEERING, SALES]
            .into_iter()
            .filter(|g| self.sandbox.sandbox.group_members(g).contains(&id))
            .collect()
    }

    /// Takes in (without running the pipeline) Grace (1000) and her reports with these employee
    /// ids, half of them in Sales and half in Engineering, as an export's rows.
    async fn take_in_a_team(&self, reports: std::ops::RangeInclusive<u32>) {
        let boss = worker(
            "1000",
            "Grace",
            "Hopper",
            "Engineering",
            "2026-12-01T09:00:00Z",
        );
        self.deliver(&boss, "boss", "export").await;
        for n in reports {
            let department = if n % 2 == 0 { "Sales" } else { "Engineering" };
            let id = n.to_string();
            let mut report = worker(
                &id,
                "Sam",
                &format!("Report{n}"),
                department,
                "2026-12-01T09:00:00Z",
            );
            report.manager_id = Some("1000".into());
            self.deliver(&report, &format!("row-{n}"), "export").await;
        }
    }

    /// The leaver was cut off the way Graph takes it: the disable and the session revocation
    /// as steps of one `$batch` (each write step with its JSON body, or Graph refuses the whole
    /// batch), both answered with success, and the account's sessions revoked.
    fn cut_off_in_one_batch(&self, employee_id: &str) {
        let id = self.id(employee_id);
        let log = self.sandbox.sandbox.requests();
        let step = |method: &str, path: String| {
            log.iter()
                .find(|r| r.in_batch && r.method == method && r.path == path)
                .unwrap_or_else(|| panic!("no $batch step {method} {path}: {log:#?}"))
                .status
        };
        assert_eq!(step("PATCH", format!("/v1.0/users/{id}")), 204);
        assert_eq!(
            step("POST", format!("/v1.0/users/{id}/revokeSignInSessions")),
            200
        );
        assert!(
            log.iter().all(|r| r.status != 400 || r.in_batch),
            "no $batch was refused whole: {log:#?}"
        );
        assert!(
            self.user(employee_id)["signInSessionsValidFromDateTime"].is_string(),
            "sessions revoked"
        );
    }

    /// Ada (2) joins reporting to Grace (1), who has no account yet; returns Ada's object id.
    async fn report_without_a_manager_account(&self) -> String {
        let mut report = worker(
            "2",
            "Ada",
            "Lovelace",
            "Engineering",
            "2026-03-02T09:00:00Z",
        );
        report.manager_id = Some("1".into());
        self.hr(&report).await;
        let ada = self.id("2");
        assert!(self.enabled("2"));
        assert_eq!(
            self.sandbox.sandbox.manager_of(&ada),
            None,
            "no manager account yet"
        );
        ada
    }

    /// Another runtime over the same state, queue and directory, whose process dies once:
    /// on the first send whose reason starts with `dies_at`.
    fn runtime_dying_once_at(
        &self,
        dies_at: &'static str,
    ) -> Runner<SqliteStore, Watched, SqliteTimers> {
        self.watched_runtime(Some(dies_at), RunnerSettings::default())
    }

    /// Another runtime over the same state, queue and directory, its queue [`Watched`].
    fn watched_runtime(
        &self,
        dies_at: Option<&'static str>,
        settings: RunnerSettings,
    ) -> Runner<SqliteStore, Watched, SqliteTimers> {
        let real = self.pipeline();
        Runner::new(
            Arc::new(Pipeline {
                config: Arc::clone(&real.config),
                store: Arc::clone(&real.store),
                queue: Arc::new(Watched {
                    inner: real.store.queue(),
                    dies_at,
                    died: false.into(),
                    wakes: 0.into(),
                }),
                timers: Arc::clone(&real.timers),
                graph: real.graph.clone(),
                lookups: DirectoryLookups::PerWorker,
                clock: Arc::clone(&real.clock),
                hr: real.hr.clone(),
                notify: Arc::clone(&real.notify),
            }),
            settings,
        )
    }

    async fn audit(&self, employee_id: &str) -> Vec<AuditRecord> {
        self.pipeline()
            .store
            .audit(&key(employee_id))
            .await
            .unwrap()
    }

    async fn actions(&self, employee_id: &str) -> Vec<String> {
        self.audit(employee_id)
            .await
            .into_iter()
            .map(|r| format!("{}:{}", r.stage, r.action))
            .collect()
    }
}

fn key(id: &str) -> WorkerKey {
    WorkerKey::new("hr", id)
}

fn worker(id: &str, given: &str, family: &str, department: &str, as_of: &str) -> Worker {
    let mut worker = Worker::new(key(id), given, family, at(as_of));
    worker.hire_date = Some(date(2024, 1, 8));
    worker.department = Some(department.into());
    worker.country = Some("GB".into());
    worker.worker_type = Some("Employee".into());
    worker
}

fn leaving(mut worker: Worker, last_day: Date, as_of: &str) -> Worker {
    worker.termination_date = Some(last_day);
    worker.as_of = at(as_of);
    worker
}

#[tokio::test]
async fn joiner_whose_manager_arrives_later_self_heals() {
    let world = World::new(config(""), "2026-03-02T09:00:00Z").await;
    let ada = world.report_without_a_manager_account().await;

    world.clock.advance(SignedDuration::from_hours(2));
    world
        .hr(&worker(
            "1",
            "Grace",
            "Hopper",
            "Engineering",
            "2026-03-02T11:00:00Z",
        ))
        .await;
    assert_eq!(
        world.sandbox.sandbox.manager_of(&ada),
        Some(world.id("1")),
        "the report's manager is set once the manager has an account"
    );
    let actions = world.actions("2").await;
    assert!(
        actions.contains(&"entra:set_manager".to_owned()),
        "{actions:?}"
    );
}

/// A queue whose process dies once, on the first send whose reason starts with `dies_at`
/// (the send is lost and the stage fails, as a crash there would leave it); everything else
/// goes to the real queue.
/// The runtime's queue, watched: its process dies once, on the first send whose reason starts
/// with `dies_at`; and the wake-ups of workers waiting for their manager's account are counted.
struct Watched {
    inner: SqliteQueue,
    dies_at: Option<&'static str>,
    died: std::sync::atomic::AtomicBool,
    wakes: std::sync::atomic::AtomicUsize,
}

impl Queue for Watched {
    async fn send(
        &self,
        queue: QueueName,
        nudge: &Nudge,
        dedup: &str,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        if queue == QueueName::Directory && dedup.contains("#after#") {
            self.wakes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if self
            .dies_at
            .is_some_and(|dies_at| nudge.reason.starts_with(dies_at))
            && !self.died.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(QueueError::Backend(format!(
                "the process died sending {:?}",
                nudge.reason
            )));
        }
        self.inner.send(queue, nudge, dedup, now).await
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        now: Timestamp,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(queue, max, now, visibility).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.inner.ack(delivery).await
    }

    async fn retry(
        &self,
        delivery: &Delivery,
        reason: &str,
        now: Timestamp,
        backoff: Duration,
        max_attempts: u32,
    ) -> Result<RetryOutcome, QueueError> {
        self.inner
            .retry(delivery, reason, now, backoff, max_attempts)
            .await
    }

    async fn postpone(
        &self,
        delivery: &Delivery,
        now: Timestamp,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.inner.postpone(delivery, now, delay).await
    }

    async fn dead_letter_abandoned(
        &self,
        queue: QueueName,
        now: Timestamp,
        max_receives: u32,
        reason: &str,
    ) -> Result<usize, QueueError> {
        self.inner
            .dead_letter_abandoned(queue, now, max_receives, reason)
            .await
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters(queue).await
    }

    async fn redrive(
        &self,
        queue: QueueName,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, QueueError> {
        self.inner.redrive(queue, id, now).await
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        self.inner.depth(queue).await
    }
}

/// Runs the dying runtime until it is quiet, and checks that it did die where it was meant to.
async fn drain_dying(dying: &Runner<SqliteStore, Watched, SqliteTimers>) {
    tokio::time::timeout(Duration::from_secs(60), dying.drain())
        .await
        .expect("drains within a minute")
        .expect("drains");
    let died = &dying.pipeline().queue.died;
    assert!(
        died.load(std::sync::atomic::Ordering::SeqCst),
        "the run died where the test meant it to"
    );
}

/// Found by the crash test (`tests/crash.rs`): the manager's entra run recorded its new
/// account, then died before the reports waiting for it were nudged. Its redelivery saw the
/// account already known and woke nobody, so the report never got its manager.
#[tokio::test]
async fn report_gets_its_manager_even_if_the_managers_run_dies_before_waking_it() {
    let world = World::new(config(""), "2026-03-02T09:00:00Z").await;
    let ada = world.report_without_a_manager_account().await;

    // The manager is handled by a runtime that dies once, sending the report's nudge.
    let dying = world.runtime_dying_once_at("manager ");
    world.clock.advance(SignedDuration::from_hours(2));
    let manager = worker(
        "1",
        "Grace",
        "Hopper",
        "Engineering",
        "2026-03-02T11:00:00Z",
    );
    world.deliver(&manager, "manager-hired", "webhook hr").await;
    drain_dying(&dying).await;
    world.settle().await;

    assert_eq!(
        world.sandbox.sandbox.manager_of(&ada),
        Some(world.id("1")),
        "the report's manager is set once the manager has an account"
    );
}

/// The same class of bug as above, found by reading entra after it: the run that created the
/// account died before sending the write-back nudge, and its redelivery (nothing left to
/// create) never sent it, so HR never got the work email.
#[tokio::test]
async fn work_email_is_written_back_even_if_the_run_that_made_the_account_dies_first() {
    let emulator = Emulator::start(bamboohr::router).await;
    let text = config_text("").replace(
        "kind = \"signed-json\"\nwebhook_secret = { env = \"HR_WEBHOOK_SECRET\" }",
        &format!(
            "kind = \"bamboohr\"\nbase_url = \"{}\"\nwebhook_secret = {{ env = \"W\" }}\napi_key = {{ env = \"K\" }}",
            emulator.base_url()
        ),
    );
    let config = Config::parse(&text, "hrsync.toml").expect("bamboohr scenario config parses");
    let resolve = |_: &hrsync_core::config::SecretRef| Ok(bamboohr::API_KEY.to_owned());
    let hr = hrsync_hr::Connectors::from_config(
        &config.sources,
        hrsync_hr::Webhooks::Taken,
        &resolve,
        &reqwest::Client::new(),
    )
    .expect("the connector builds");
    let world = World::with_hr(config, "2026-03-02T09:00:00Z", hr).await;
    emulator.put_employee("2", bamboohr::employee("2", "Ada", "Lovelace"));

    let dying = world.runtime_dying_once_at("identifiers changed");
    let ada = worker(
        "2",
        "Ada",
        "Lovelace",
        "Engineering",
        "2026-03-02T09:00:00Z",
    );
    world.deliver(&ada, "ada-hired", "webhook hr").await;
    drain_dying(&dying).await;
    world.settle().await;
    let written = |emulator: &Emulator| -> Vec<Value> {
        emulator
            .written()
            .into_iter()
            .map(|(id, body)| serde_json::json!({ "id": id, "body": body }))
            .collect()
    };
    assert_eq!(
        written(&emulator),
        vec![
            serde_json::json!({ "id": "2", "body": { "workEmail": "ada.lovelace@acme.example" } })
        ],
        "HR gets the work email once"
    );

    // A later change, while HR's record still lacks the mail, writes nothing again.
    world.clock.advance(SignedDuration::from_hours(1));
    world
        .hr(&worker(
            "2",
            "Ada",
            "Lovelace",
            "Sales",
            "2026-03-02T10:00:00Z",
        ))
        .await;
    assert_eq!(world.groups("2"), vec![ALL_STAFF, SALES]);
    assert_eq!(written(&emulator).len(), 1, "{:?}", written(&emulator));
}

#[tokio::test]
async fn mover_changing_department_swaps_groups_and_the_audit_says_why() {
    let world = World::new(config(""), "2026-03-02T09:00:00Z").await;
    world
        .hr(&worker(
            "7",
            "Alan",
            "Turing",
            "Sales",
            "2026-03-02T09:00:00Z",
        ))
        .await;
    assert_eq!(world.groups("7"), vec![ALL_STAFF, SALES]);

    world.clock.advance(SignedDuration::from_hours(24));
    world
        .hr(&worker(
            "7",
            "Alan",
            "Turing",
            "Engineering",
            "2026-03-03T09:00:00Z",
        ))
        .await;
    assert_eq!(world.groups("7"), vec![ALL_STAFF, ENGINEERING]);
    assert_eq!(world.user("7")["department"], "Engineering");

    let audit = world.audit("7").await;
    let moved = audit
        .iter()
        .find(|r| r.stage == "mapping" && r.action == "move")
        .expect("a move");
    assert!(
        moved.cause.contains("webhook hr"),
        "cause names the HR event: {}",
        moved.cause
    );
    assert!(
        moved.cause.contains("Engineering"),
        "cause names the rule or field: {}",
        moved.cause
    );
    let entra: Vec<&str> = audit
        .iter()
        .filter(|r| r.stage == "entra" && r.at == at("2026-03-03T09:00:00Z"))
        .map(|r| r.action.as_str())
        .collect();
    assert!(
        entra.contains(&"remove_group")
            && entra.contains(&"add_group")
            && entra.contains(&"update"),
        "{entra:?}"
    );
    assert_eq!(world.accounts("7"), 1);
}

#[tokio::test]
async fn future_leaver_is_cut_off_at_17_00_sydney_on_the_last_day() {
    let world = World::new(config(""), "2026-12-01T00:00:00Z").await;
    let mut bruce = worker("61", "Bruce", "Wayne", "Sales", "2026-12-01T00:00:00Z");
    bruce.time_zone = Some("Australia/Sydney".into());
    world.hr(&bruce).await;
    world
        .hr(&leaving(bruce, date(2026, 12, 4), "2026-12-01T01:00:00Z"))
        .await;
    // 17:00 AEDT (UTC+11) on 4 December is 06:00 UTC.
    let timers = world
        .pipeline()
        .timers
        .worker_timers(&key("61"))
        .await
        .unwrap();
    assert!(
        timers.iter().any(|t| t.at == at("2026-12-04T06:00:00Z")),
        "{timers:?}"
    );

    world.at("2026-12-04T05:59:59Z").await;
    assert!(world.enabled("61"), "not before 17:00 Sydney");
    world.sandbox.sandbox.clear_requests();
    world.at("2026-12-04T06:00:00Z").await;
    assert!(!world.enabled("61"), "disabled at 17:00 Sydney");
    world.cut_off_in_one_batch("61");
    let disable = world
        .audit("61")
        .await
        .into_iter()
        .find(|r| r.action == "disable")
        .expect("audited");
    assert_eq!(disable.at, at("2026-12-04T06:00:00Z"), "not after");
    assert!(
        world.groups("61").is_empty(),
        "access removed with the leave (remove_access_after_days = 0)"
    );
}

#[tokio::test]
async fn termination_rescinded_the_day_before_disables_nothing() {
    let world = World::new(config(""), "2026-12-01T09:00:00Z").await;
    let clark = worker("62", "Clark", "Kent", "Sales", "2026-12-01T09:00:00Z");
    world.hr(&clark).await;
    world
        .hr(&leaving(
            clark.clone(),
            date(2026, 12, 10),
            "2026-12-01T10:00:00Z",
        ))
        .await;
    assert_eq!(
        world
            .pipeline()
            .timers
            .worker_timers(&key("62"))
            .await
            .unwrap()
            .len(),
        1
    );

    world.clock.set(at("2026-12-09T12:00:00Z"));
    let mut rescinded = clark;
    rescinded.as_of = at("2026-12-09T12:00:00Z");
    world.hr(&rescinded).await;
    assert!(
        world
            .pipeline()
            .timers
            .worker_timers(&key("62"))
            .await
            .unwrap()
            .iter()
            .all(|t| t.kind != hrsync_core::TimerKind::Leave)
    );

    world.at("2026-12-11T09:00:00Z").await;
    assert!(world.enabled("62"));
    assert!(
        !world
            .actions("62")
            .await
            .contains(&"entra:disable".to_owned())
    );
}

#[tokio::test]
async fn rehire_six_months_later_gets_the_same_account_with_new_role_access_only() {
    let world = World::new(config(""), "2026-01-05T09:00:00Z").await;
    let diana = worker("63", "Diana", "Prince", "Sales", "2026-01-05T09:00:00Z");
    world.hr(&diana).await;
    let account = world.id("63");
    let upn = world.user("63")["userPrincipalName"].clone();
    world
        .hr(&leaving(
            diana.clone(),
            date(2026, 1, 30),
            "2026-01-06T09:00:00Z",
        ))
        .await;
    world.sandbox.sandbox.clear_requests();
    world.at("2026-01-31T09:00:00Z").await;
    assert!(!world.enabled("63"));
    world.cut_off_in_one_batch("63");

    world.clock.set(at("2026-07-31T09:00:00Z"));
    let mut back = diana;
    back.hire_date = Some(date(2026, 7, 31));
    back.department = Some("Engineering".into());
    back.as_of = at("2026-07-31T09:00:00Z");
    world.hr(&back).await;
    world.at("2026-07-31T09:00:00Z").await;

    assert_eq!(world.id("63"), account, "the same account");
    assert_eq!(world.user("63")["userPrincipalName"], upn, "the same name");
    assert!(world.enabled("63"));
    assert_eq!(
        world.groups("63"),
        vec![ALL_STAFF, ENGINEERING],
        "no Sales group from the old role"
    );
    assert_eq!(world.accounts("63"), 1);
    assert!(
        world
            .actions("63")
            .await
            .contains(&"mapping:rehire".to_owned())
    );
}

#[tokio::test]
async fn emergency_termination_disables_now_and_is_not_held() {
    // A breaker of one disable per hour, already spent: an operator's termination still goes.
    let world = World::new(config("max_disables_per_hour = 1"), "2026-05-04T09:00:00Z").await;
    let bruce = worker(
        "64",
        "Bruce",
        "Banner",
        "Engineering",
        "2026-05-04T09:00:00Z",
    );
    let other = worker(
        "65",
        "Peter",
        "Parker",
        "Engineering",
        "2026-05-04T09:00:00Z",
    );
    world.hr(&bruce).await;
    world.hr(&other).await;
    world
        .hr(&leaving(other, date(2026, 5, 3), "2026-05-04T09:10:00Z"))
        .await;
    assert!(!world.enabled("65"), "the budget's one disable");

    world.clock.set(at("2026-05-04T14:23:30Z"));
    let now = world.clock.now();
    let emergency = leaving_now(&bruce, now, "Europe/London", EMERGENCY);
    world
        .deliver(
            &emergency,
            "terminate:hr:64",
            "terminate: credentials leaked",
        )
        .await;
    world.settle().await;
    assert!(!world.enabled("64"));
    let audit = world.audit("64").await;
    let leave = audit.iter().find(|r| r.action == "leave").expect("a leave");
    assert!(
        leave.cause.starts_with("terminate: credentials leaked"),
        "{}",
        leave.cause
    );
    assert!(world.pipeline().store.holds(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn thirty_leavers_with_a_limit_of_25_an_hour_are_held_then_approved() {
    let world = World::new(config("max_disables_per_hour = 25"), "2026-06-01T09:00:00Z").await;
    let staff: Vec<Worker> = (0..30)
        .map(|i| {
            worker(
                &format!("{}", 100 + i),
                "Worker",
                &format!("Number{i}"),
                "Sales",
                "2026-06-01T09:00:00Z",
            )
        })
        .collect();
    for (i, w) in staff.iter().enumerate() {
        world
            .deliver(w, &format!("join-{i}"), "import staff.csv")
            .await;
    }
    world.settle().await;
    world.clock.set(at("2026-06-02T09:00:00Z"));
    for (i, w) in staff.iter().enumerate() {
        let gone = leaving(w.clone(), date(2026, 6, 1), "2026-06-02T09:00:00Z");
        world
            .deliver(&gone, &format!("leave-{i}"), "import staff-2.csv")
            .await;
    }
    world.settle().await;

    let disabled = staff
        .iter()
        .filter(|w| !world.enabled(&w.employee_id))
        .count();
    assert_eq!(disabled, 25, "25 disables in the hour");
    let held = world
        .pipeline()
        .store
        .holds(Some(HoldStatus::Pending))
        .await
        .unwrap();
    assert_eq!(held.len(), 5);
    for hold in &held {
        assert!(
            world.enabled(hold.worker.employee_id()),
            "held means not executed"
        );
        assert!(
            world
                .actions(hold.worker.employee_id())
                .await
                .contains(&"mapping:held".to_owned())
        );
    }

    // An operator approves; the approval nudges the worker through the pipeline again.
    for hold in &held {
        assert!(
            world
                .pipeline()
                .store
                .resolve_hold(&hold.id, HoldStatus::Approved)
                .await
                .unwrap()
        );
        let nudge = Nudge::new(
            hold.worker.clone(),
            "hold approved",
            format!("approve:{}", hold.id),
        );
        world
            .pipeline()
            .queue
            .send(
                QueueName::WorkerEvents,
                &nudge,
                &format!("approve#{}", hold.id),
                world.clock.now(),
            )
            .await
            .unwrap();
    }
    world.settle().await;
    assert!(
        staff.iter().all(|w| !world.enabled(&w.employee_id)),
        "all 30 disabled after approval"
    );
    assert!(
        world
            .pipeline()
            .store
            .holds(Some(HoldStatus::Pending))
            .await
            .unwrap()
            .is_empty()
    );
}

/// The sandbox's users reduced to what matters, for comparing two worlds.
fn directory_view(world: &World) -> Vec<Value> {
    let mut users: Vec<Value> = world
        .sandbox
        .sandbox
        .users()
        .into_iter()
        .map(|u| {
            let id = u["id"].as_str().unwrap().to_owned();
            let groups: Vec<&str> = [ALL_STAFF, ENGINEERING, SALES]
                .into_iter()
                .filter(|g| world.sandbox.sandbox.group_members(g).contains(&id))
                .collect();
            serde_json::json!({
                "upn": u["userPrincipalName"], "enabled": u["accountEnabled"],
                "department": u["department"], "employeeId": u["employeeId"], "groups": groups,
            })
        })
        .collect();
    users.sort_by_key(|u| u["upn"].as_str().unwrap_or_default().to_owned());
    users
}

#[tokio::test]
async fn webhooks_delivered_twice_and_out_of_order_reach_the_same_end_state() {
    let hired = worker("70", "Tony", "Stark", "Sales", "2026-04-01T09:00:00Z");
    let mut moved = hired.clone();
    moved.department = Some("Engineering".into());
    moved.as_of = at("2026-04-01T10:00:00Z");
    let gone = leaving(moved.clone(), date(2026, 3, 31), "2026-04-01T11:00:00Z");
    let events = [("e1", &hired), ("e2", &moved), ("e3", &gone)];

    let in_order = World::new(config(""), "2026-04-01T12:00:00Z").await;
    for (id, event) in &events {
        in_order.deliver(event, id, "webhook hr").await;
        in_order.settle().await;
    }
    // The move arrives before the hire, each event twice. (Had the leave come first, no
    // account would ever be made: a leaver first seen after leaving gets none.)
    let shuffled = World::new(config(""), "2026-04-01T12:00:00Z").await;
    for index in [1, 0, 1, 2, 0, 2] {
        let (id, event) = events[index];
        shuffled.deliver(event, id, "webhook hr").await;
        shuffled.settle().await;
    }
    assert_eq!(directory_view(&in_order), directory_view(&shuffled));
    assert!(!shuffled.enabled("70"), "the newest record (a leaver) wins");
    assert_eq!(shuffled.accounts("70"), 1);
}

#[tokio::test]
async fn an_hr_record_that_is_never_employed_creates_nothing_and_a_stale_one_changes_nothing() {
    let world = World::new(config(""), "2026-04-01T12:00:00Z").await;
    let mut intern = worker("80", "Ian", "Intern", "Sales", "2026-04-01T12:00:00Z");
    intern.status = Status::Terminated;
    intern.termination_date = Some(date(2025, 1, 1));
    world.hr(&intern).await;
    assert_eq!(
        world.accounts("80"),
        0,
        "a leaver first seen after leaving gets no account"
    );

    let current = worker("81", "Nia", "Now", "Engineering", "2026-04-01T12:00:00Z");
    world.hr(&current).await;
    let mut older = current.clone();
    older.department = Some("Sales".into());
    older.as_of = at("2026-03-01T00:00:00Z");
    assert!(matches!(world.hr(&older).await, Outcome::Stale { .. }));
    assert_eq!(world.groups("81"), vec![ALL_STAFF, ENGINEERING]);
}

#[tokio::test]
async fn an_emergency_termination_stands_until_hr_records_a_leave_or_a_rehire() {
    let world = World::new(config(""), "2026-05-04T09:00:00Z").await;
    let bruce = worker(
        "66",
        "Bruce",
        "Wayne",
        "Engineering",
        "2026-05-04T09:00:00Z",
    );
    world.hr(&bruce).await;
    world.clock.set(at("2026-05-04T14:00:00Z"));
    let emergency = leaving_now(&bruce, world.clock.now(), "Europe/London", EMERGENCY);
    world
        .deliver(&emergency, "terminate:hr:66", "terminate: laptop stolen")
        .await;
    world.settle().await;
    assert!(!world.enabled("66"));

    // The next routine sync from HR does not know about it yet: the account stays disabled.
    world.clock.set(at("2026-05-05T09:00:00Z"));
    let mut routine = bruce.clone();
    routine.as_of = at("2026-05-05T09:00:00Z");
    world.hr(&routine).await;
    assert!(
        !world.enabled("66"),
        "a routine HR record does not undo an emergency termination"
    );
    let received = world
        .audit("66")
        .await
        .into_iter()
        .rev()
        .find(|r| r.action == "received")
        .unwrap();
    assert_eq!(received.after.unwrap()["operator_termination_kept"], true);

    // HR rehires him later: the rehire wins.
    world.clock.set(at("2026-09-01T09:00:00Z"));
    let mut rehired = bruce;
    rehired.hire_date = Some(date(2026, 9, 1));
    rehired.as_of = at("2026-09-01T09:00:00Z");
    world.hr(&rehired).await;
    assert!(world.enabled("66"));
    assert!(
        world
            .actions("66")
            .await
            .contains(&"mapping:rehire".to_owned())
    );
}

// ---------------------------------------------------------------------------------------------
// Licences that run out

const E3: &str = "05e9a617-0261-4cee-bb44-138d3ef5d965";

/// In Graph, `assignLicense` beyond a SKU's prepaid units answers 400 "Subscription with SKU
/// {id} does not have any available licenses." The rest of each worker converges; the licence
/// waits (pending, audited, retried by a timer), without a request per worker that Graph would
/// refuse, and is assigned once units are freed.
#[tokio::test]
async fn three_hundred_joiners_for_a_hundred_licences_get_everything_but_200_licences_wait() {
    let text = format!(
        "{}\n[[access]]\nname = \"Employees\"\nlicenses = [\"{E3}\"]\n",
        config_text("")
    );
    let world = World::with_e3_licences(&text, 100).await;
    world.take_in_a_team(1001..=1299).await;
    world.settle().await;

    assert_eq!(
        world.sandbox.sandbox.users().len(),
        300,
        "every joiner has an account"
    );
    let boss_id = world.id("1000");
    assert_eq!(licensed(&world), 100, "as many licensed as there are units");
    for n in 1001..1300 {
        let id = world.id(&n.to_string());
        assert_eq!(
            world.sandbox.sandbox.manager_of(&id).as_ref(),
            Some(&boss_id)
        );
        assert!(world.groups(&n.to_string()).contains(&ALL_STAFF));
    }
    let waiting = pending_workers(&world).await;
    assert_eq!(waiting.len(), 200, "the other 200 wait");
    let sample = &waiting[0];
    assert!(
        world
            .actions(sample.employee_id())
            .await
            .contains(&"entra:license_pending".to_owned())
    );
    let timers = world.pipeline().timers.worker_timers(sample).await.unwrap();
    assert!(
        timers.iter().any(|t| t.kind == TimerKind::LicenseRetry),
        "{timers:?}"
    );
    // No request Graph would refuse: one assignLicense per licensed worker, and the units read
    // once.
    let log = world.sandbox.sandbox.requests();
    let assigns = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/assignLicense"))
        .count();
    assert_eq!(assigns, 100, "no retry storm");
    let readings = log
        .iter()
        .filter(|r| r.path == "/v1.0/subscribedSkus")
        .count();
    assert_eq!(readings, 1);

    // The retry finds no unit yet: still waiting, and still no request to Graph.
    world.sandbox.sandbox.clear_requests();
    world.at("2026-12-01T09:20:00Z").await;
    assert_eq!(pending_workers(&world).await.len(), 200);
    assert!(
        world
            .sandbox
            .sandbox
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/assignLicense")),
        "the waiting workers ask Graph nothing while no unit is free"
    );

    // 30 licensed workers leave (their licences freed at once): 30 waiting ones get them at
    // their next try.
    let leavers: Vec<String> = (1001..1300)
        .map(|n| n.to_string())
        .filter(|id| !waiting.contains(&key(id)))
        .take(30)
        .collect();
    for id in &leavers {
        let mut leaver = worker(
            id,
            "Sam",
            &format!("Report{id}"),
            "Sales",
            "2026-12-01T10:00:00Z",
        );
        leaver.manager_id = Some("1000".into());
        leaver.termination_type = Some("involuntary".into());
        let leaver = leaving(leaver, date(2026, 12, 1), "2026-12-01T10:00:00Z");
        world
            .deliver(&leaver, &format!("leave-{id}"), "export")
            .await;
    }
    world.at("2026-12-01T10:00:00Z").await;
    world.at("2026-12-01T11:00:00Z").await;
    assert_eq!(pending_workers(&world).await.len(), 170);
    assert_eq!(licensed(&world), 100, "the freed units are in use again");
}

/// Accounts holding a licence.
fn licensed(world: &World) -> usize {
    world
        .sandbox
        .sandbox
        .users()
        .iter()
        .filter(|u| {
            u["assignedLicenses"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
        })
        .count()
}

/// The workers whose state holds a licence waiting for a unit.
async fn pending_workers(world: &World) -> Vec<WorkerKey> {
    let store = &world.pipeline().store;
    let mut waiting = Vec::new();
    for key in store.workers().await.unwrap() {
        let state = store.load(&key).await.unwrap().unwrap().state;
        if state.pending_licenses.iter().any(|p| p.sku == E3) {
            waiting.push(key);
        }
    }
    waiting
}

/// A manager and 300 reports taken in together and converged in rounds as large as an import's:
/// every report gets its manager, and each waiting report is woken about once, not once for every
/// report that saw the manager's account appear (which made a 1,000-worker import with one
/// manager take minutes).
#[tokio::test]
async fn three_hundred_reports_of_one_manager_converged_together_are_each_woken_about_once() {
    let world = World::new(config(""), "2026-12-01T09:00:00Z").await;
    let bulk = world.watched_runtime(
        None,
        RunnerSettings {
            batch: 500,
            ..RunnerSettings::default()
        },
    );
    world.take_in_a_team(1001..=1300).await;
    tokio::time::timeout(Duration::from_secs(120), bulk.drain())
        .await
        .expect("drains within two minutes")
        .expect("drains");

    let boss_id = world.id("1000");
    for n in 1001..=1300 {
        let id = world.id(&n.to_string());
        assert_eq!(
            world.sandbox.sandbox.manager_of(&id).as_ref(),
            Some(&boss_id)
        );
    }
    let wakes = bulk
        .pipeline()
        .queue
        .wakes
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(wakes <= 2 * 300, "{wakes} wake-ups for 300 waiting reports");
}

/// Two HR systems whose employee ids overlap (an acquisition's HRIS beside the main one); `hr2`
/// with these extra keys.
fn two_sources(hr2_extra: &str) -> Config {
    let text = config_text("").replace(
        "[identity]",
        &format!("[source.hr2]\nkind = \"signed-json\"\nwebhook_secret = {{ env = \"HR2_WEBHOOK_SECRET\" }}\n{hr2_extra}\n[identity]"),
    );
    Config::parse(&text, "hrsync.toml").expect("two sources parse")
}

/// Ada (`hr:1001`) has her account; Bob is `hr2:1001`, someone else, and his involuntary leave.
async fn ada_and_bob_1001(world: &World) -> (Worker, Worker) {
    let ada = worker(
        "1001",
        "Ada",
        "Lovelace",
        "Engineering",
        "2026-03-02T09:00:00Z",
    );
    world.hr(&ada).await;
    let mut bob = worker("1001", "Bob", "Other", "Sales", "2026-03-02T09:05:00Z");
    bob.key = WorkerKey::new("hr2", "1001");
    let mut gone = bob.clone();
    gone.status = Status::Terminated;
    gone.termination_date = Some(date(2026, 3, 2));
    gone.termination_type = Some("involuntary".into());
    gone.as_of = at("2026-03-02T09:10:00Z");
    (bob, gone)
}

#[tokio::test]
async fn another_source_with_the_same_employee_id_is_held_and_never_takes_the_account_over() {
    let world = World::new(two_sources(""), "2026-03-02T09:00:00Z").await;
    let (bob, gone) = ada_and_bob_1001(&world).await;
    let account = world.id("1001");
    let outcome = world.hr(&bob).await;
    assert!(matches!(outcome, Outcome::Received { .. }), "{outcome:?}");
    world.hr(&gone).await;

    // Ada's account is untouched: still hers, enabled, her name, her groups.
    assert_eq!(world.accounts("1001"), 1, "no second account");
    let user = world.user("1001");
    assert_eq!(user["id"], account.as_str());
    assert_eq!(user["accountEnabled"], true, "{user:#}");
    assert_eq!(user["displayName"], "Ada Lovelace");
    assert_eq!(world.groups("1001"), vec![ALL_STAFF, ENGINEERING]);

    // Bob is held for a human, saying whose account it is and what to do.
    let holds = world
        .pipeline()
        .store
        .holds(Some(HoldStatus::Pending))
        .await
        .unwrap();
    let held: Vec<_> = holds.iter().filter(|h| h.worker == bob.key).collect();
    assert_eq!(held.len(), 1, "{holds:#?}");
    assert!(
        held[0].reason.contains("hr:1001") && held[0].reason.contains("employee_id_prefix"),
        "{:?}",
        held[0].reason
    );
    let bob_state = world
        .pipeline()
        .store
        .load(&bob.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bob_state.state.applied.and_then(|a| a.object_id),
        None,
        "the account is not recorded as Bob's"
    );
}

#[tokio::test]
async fn with_its_own_employee_id_prefix_the_other_source_gets_its_own_account() {
    let world = World::new(
        two_sources("employee_id_prefix = \"B-\"\n"),
        "2026-03-02T09:00:00Z",
    )
    .await;
    let (bob, gone) = ada_and_bob_1001(&world).await;
    world.hr(&bob).await;
    assert_eq!(world.user("1001")["displayName"], "Ada Lovelace");
    assert_eq!(world.user("B-1001")["displayName"], "Bob Other");
    world.hr(&gone).await;
    assert!(!world.enabled("B-1001"), "Bob leaves");
    assert!(world.enabled("1001"), "Ada stays");
    let holds = world.pipeline().store.holds(None).await.unwrap();
    assert!(holds.is_empty(), "{holds:#?}");
}

// ---------------------------------------------------------------------------------------------
// Data Graph would refuse

/// Whether the account holds a licence.
fn holds_a_licence(world: &World, employee_id: &str) -> bool {
    world.user(employee_id)["assignedLicenses"]
        .as_array()
        .is_some_and(|l| !l.is_empty())
}

/// HR data beyond Graph's limits never reaches Graph: Ada's 200-character job title is left out
/// of her new account, and Bob, whose record has no country (so no usageLocation), gets
/// everything but his licence, which Graph refuses without one. The mapping audit says what to
/// fix, and Graph never had to answer 400.
#[tokio::test]
async fn data_graph_would_refuse_is_left_out_audited_and_never_sent() {
    let attributes = "[attributes]\njobTitle = \"{{ job_title }}\"\n";
    let text = format!(
        "{}\n[[access]]\nname = \"Employees\"\nlicenses = [\"{E3}\"]\n",
        config_text("").replacen("[attributes]\n", attributes, 1)
    );
    let world = World::with_e3_licences(&text, 10).await;
    let mut ada = worker(
        "11",
        "Ada",
        "Lovelace",
        "Engineering",
        "2026-12-01T09:00:00Z",
    );
    ada.job_title = Some(format!("{}Architects", "Principal ".repeat(19)));
    world.hr(&ada).await;
    let mut bob = worker("12", "Bob", "Kahn", "Sales", "2026-12-01T09:00:00Z");
    bob.country = None;
    world.hr(&bob).await;

    let user = world.user("11");
    assert!(world.enabled("11"));
    assert_eq!(user["department"], "Engineering");
    assert_eq!(user["usageLocation"], "GB");
    assert!(user.get("jobTitle").is_none_or(Value::is_null), "{user}");
    assert_eq!(world.groups("11"), vec![ALL_STAFF, ENGINEERING]);
    assert!(holds_a_licence(&world, "11"));
    assert!(world.enabled("12"));
    assert_eq!(world.groups("12"), vec![ALL_STAFF, SALES]);
    assert!(!holds_a_licence(&world, "12"));
    let log = world.sandbox.sandbox.requests();
    assert!(
        log.iter().all(|r| r.status != 400),
        "Graph never had to refuse a request: {:#?}",
        log.iter().filter(|r| r.status == 400).collect::<Vec<_>>()
    );

    let joined = |audit: Vec<AuditRecord>| {
        audit
            .into_iter()
            .find(|r| r.stage == "mapping" && r.action == "join")
            .expect("a join")
    };
    let ada_joined = joined(world.audit("11").await);
    let too_long = "jobTitle has 200 characters and Graph takes at most 128: not sent, the directory keeps its value; shorten it in HR or change attributes.jobTitle";
    assert_eq!(
        ada_joined.after.as_ref().unwrap()["problems"],
        serde_json::json!([{
            "property": "jobTitle",
            "length": 200,
            "limit": 128,
            "message": too_long,
        }])
    );
    assert!(
        ada_joined.cause.contains(&format!("data: {too_long}")),
        "{}",
        ada_joined.cause
    );
    let bob_joined = joined(world.audit("12").await);
    assert_eq!(
        bob_joined.after.as_ref().unwrap()["problems"],
        serde_json::json!([{
            "property": "usageLocation",
            "message": format!("licence {E3} not assigned: the account has no usageLocation, which Graph requires before a licence; give the worker a country in HR that attributes.usageLocation renders as a two-letter ISO 3166 code"),
        }])
    );

    // A later record whose title is still too long changes nothing Graph sees, but it is audited.
    world.clock.advance(SignedDuration::from_hours(24));
    ada.as_of = at("2026-12-02T09:00:00Z");
    ada.job_title = Some("Architect ".repeat(30).trim_end().to_owned());
    world.hr(&ada).await;
    let noted = |audit: Vec<AuditRecord>| -> Vec<AuditRecord> {
        audit
            .into_iter()
            .filter(|r| r.stage == "mapping" && r.action == "data_problem")
            .collect()
    };
    let problems = noted(world.audit("11").await);
    assert_eq!(problems.len(), 1, "the new record's problem is audited");
    assert_eq!(
        problems[0].after.as_ref().unwrap()["problems"][0]["length"],
        299
    );
    assert!(
        problems[0].cause.contains("jobTitle has 299 characters"),
        "{}",
        problems[0].cause
    );
    // The same problem in the next day's record is not audited again.
    world.clock.advance(SignedDuration::from_hours(24));
    ada.as_of = at("2026-12-03T09:00:00Z");
    world.hr(&ada).await;
    assert_eq!(noted(world.audit("11").await).len(), 1);
    assert!(world.user("11").get("jobTitle").is_none_or(Value::is_null));
    assert!(
        world
            .sandbox
            .sandbox
            .requests()
            .iter()
            .all(|r| r.status != 400),
        "still no 400"
    );
}

/// A TCP forwarder to the sandbox that can be switched off: while down it takes each
/// connection and closes it at once, as a dead load balancer or a cut network does.
struct Switch {
    url: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Switch {
    /// Down at first.
    async fn to(target: &str) -> Self {
        let target = target.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_up = Arc::clone(&up);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_up.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { url, up, task }
    }

    fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Graph going down in the middle of the work stops the run within seconds with one error
/// naming Graph and the cause, instead of every worker failing its way to the dead-letter
/// queue; the work stays queued with its tries intact (here across more runs than a message
/// has tries), and the run after Graph is back does all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graph_outage_stops_the_run_at_once_and_keeps_the_work() {
    let world = World::new(config(""), "2026-12-01T08:00:00Z").await;
    let switch = Switch::to(&world.sandbox.url).await;
    let mut settings =
        GraphSettings::new("contoso", "hrsync", Credential::ClientSecret("s".into()));
    // The token endpoint answers; Graph itself is behind the switch.
    settings.authority_host = world.sandbox.url.clone();
    settings.graph_endpoint = switch.url.clone();
    let real = world.pipeline();
    let runner = Runner::new(
        Arc::new(Pipeline {
            config: Arc::clone(&real.config),
            store: Arc::clone(&real.store),
            queue: Arc::clone(&real.queue),
            timers: Arc::clone(&real.timers),
            graph: Some(GraphClient::new(settings, reqwest::Client::new())),
            lookups: DirectoryLookups::PerWorker,
            clock: Arc::clone(&real.clock),
            hr: real.hr.clone(),
            notify: Arc::clone(&real.notify),
        }),
        RunnerSettings::default(),
    );
    world.take_in_a_team(1001..=1030).await;

    let max_attempts = RunnerSettings::default().max_attempts;
    for run in 0..=max_attempts {
        let started = std::time::Instant::now();
        let stopped = tokio::time::timeout(Duration::from_secs(60), runner.drain())
            .await
            .expect("the run stops rather than hangs");
        let Err(DrainError::Outage { what, waiting }) = stopped else {
            panic!("run {run}: stopped by the outage, not {stopped:?}");
        };
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "run {run} stopped within seconds: {:?}",
            started.elapsed()
        );
        assert!(
            what.contains(&format!(
                "cannot reach Microsoft Graph at {}/v1.0",
                switch.url
            )),
            "{what}"
        );
        assert!(
            !what.contains("1001") && !what.contains("Sam"),
            "no worker: {what}"
        );
        assert_eq!(waiting, 31, "every worker's work is kept");
        // The next run comes after the queue's pause.
        world.clock.advance(SignedDuration::from_mins(1));
    }
    for queue in QueueName::ALL {
        let dead = real.queue.dead_letters(queue).await.unwrap();
        assert!(dead.is_empty(), "an outage dead-letters nothing: {dead:?}");
    }
    assert!(
        world
            .audit("1000")
            .await
            .iter()
            .all(|r| r.action != "dead_lettered"),
        "nothing failed"
    );

    switch.up();
    tokio::time::timeout(Duration::from_secs(120), runner.drain())
        .await
        .expect("the run ends")
        .expect("Graph is back: the run does all the work");
    assert!(world.enabled("1000"));
    for n in 1001..=1030 {
        assert!(world.enabled(&n.to_string()), "{n} has an account");
    }
}

/// Approving a held disable is level-triggered: the process dies between the approval and its
/// nudge to mapping (the approval is kept, the nudge lost), and the leaver is not left enabled:
/// the next runtime start (or approving it again) finds the unfinished approval and carries
/// it out, once.
#[tokio::test]
async fn an_approval_whose_nudge_was_lost_is_carried_out_at_the_next_start() {
    let world = World::new(config("max_disables_per_hour = 1"), "2026-05-04T09:00:00Z").await;
    let (first, second) = (
        worker(
            "66",
            "Wanda",
            "Maximoff",
            "Engineering",
            "2026-05-04T09:00:00Z",
        ),
        worker("67", "Sam", "Wilson", "Engineering", "2026-05-04T09:00:00Z"),
    );
    world.hr(&first).await;
    world.hr(&second).await;
    world
        .hr(&leaving(first, date(2026, 5, 3), "2026-05-04T09:10:00Z"))
        .await;
    world
        .hr(&leaving(second, date(2026, 5, 3), "2026-05-04T09:11:00Z"))
        .await;
    assert!(!world.enabled("66"), "the budget's one disable");
    assert!(world.enabled("67"), "the second is held");
    let store = &world.pipeline().store;
    let held = store.holds(Some(HoldStatus::Pending)).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");

    // The operator's process dies sending the nudge, after the approval was kept.
    let dying = world.runtime_dying_once_at("hold approved");
    let ops = Operations {
        config: &dying.pipeline().config,
        store: &*dying.pipeline().store,
        queue: &*dying.pipeline().queue,
        timers: &*dying.pipeline().timers,
    };
    let now = world.clock.now();
    let died = ops.approve(&held[0], now).await;
    assert!(died.is_err(), "{died:?}");
    let hold = store.hold(&held[0].id).await.unwrap().unwrap();
    assert_eq!(hold.status, HoldStatus::Approved);
    world.settle().await;
    assert!(
        world.enabled("67"),
        "the lost nudge left the leaver enabled"
    );

    // The next start finds it.
    let ops = Operations {
        config: &world.pipeline().config,
        store: &*world.pipeline().store,
        queue: &*world.pipeline().queue,
        timers: &*world.pipeline().timers,
    };
    assert_eq!(
        ops.unfinished_approvals(world.clock.now()).await.unwrap(),
        1
    );
    world.settle().await;
    assert!(!world.enabled("67"), "the approved disable is carried out");
    assert_eq!(
        ops.unfinished_approvals(world.clock.now()).await.unwrap(),
        0,
        "finished: nothing to nudge again"
    );
    let approvals = world
        .audit("67")
        .await
        .into_iter()
        .filter(|r| r.action == "hold_approved")
        .count();
    assert_eq!(approvals, 1, "approved once");
}

/// `[[notify]]`: real receivers on loopback (an HTTP server for Slack and Teams webhooks, an
/// SMTP server speaking enough SMTP for lettre), each capturing what it was sent.
mod notify {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use hrsync_core::config::{NotifyEvent, SecretRef};
    use hrsync_pipeline::{Notice, settle_failure};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// The secrets the scenarios' `[[notify]]` targets name (`{ env = "..." }`), by name: set
    /// here rather than in the process's environment.
    pub static SECRETS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

    pub fn resolve(secret: &SecretRef) -> Result<String, String> {
        let SecretRef::Env(name) = secret else {
            return Err(format!("unexpected {secret:?}"));
        };
        SECRETS
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| format!("{name} is not set"))
    }

    /// An HTTP receiver answering every POST with `status`, keeping the JSON bodies.
    struct Chat {
        url: String,
        bodies: Arc<Mutex<Vec<Value>>>,
    }

    impl Chat {
        async fn start(status: u16) -> Self {
            let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
            let kept = Arc::clone(&bodies);
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: axum::Json<Value>| {
                    let kept = Arc::clone(&kept);
                    async move {
                        kept.lock().unwrap().push(body.0);
                        axum::http::StatusCode::from_u16(status).unwrap()
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/hook", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self { url, bodies }
        }

        fn texts(&self) -> Vec<String> {
            self.bodies
                .lock()
                .unwrap()
                .iter()
                .map(|body| match body["text"].as_str() {
                    Some(text) => text.to_owned(),
                    // Teams: a message with one Adaptive Card, a TextBlock a line.
                    None => {
                        assert_eq!(body["type"], "message", "{body}");
                        let card = &body["attachments"][0];
                        assert_eq!(
                            card["contentType"], "application/vnd.microsoft.card.adaptive",
                            "{body}"
                        );
                        assert_eq!(card["content"]["type"], "AdaptiveCard", "{body}");
                        card["content"]["body"]
                            .as_array()
                            .unwrap_or_else(|| panic!("neither Slack nor Teams: {body}"))
                            .iter()
                            .map(|block| format!("{}\n", block["text"].as_str().unwrap()))
                            .collect()
                    }
                })
                .collect()
        }
    }

    /// A minimal SMTP server: EHLO, MAIL, RCPT, DATA, QUIT; keeps each message's envelope and
    /// data.
    struct Smtp {
        port: u16,
        mails: Arc<Mutex<Vec<String>>>,
    }

    impl Smtp {
        async fn start() -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let mails: Arc<Mutex<Vec<String>>> = Arc::default();
            let kept = Arc::clone(&mails);
            tokio::spawn(async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let kept = Arc::clone(&kept);
                    tokio::spawn(async move {
                        let (read, mut write) = socket.into_split();
                        let mut lines = BufReader::new(read).lines();
                        write.write_all(b"220 loopback ESMTP\r\n").await.unwrap();
                        let mut mail = String::new();
                        let mut in_data = false;
                        while let Ok(Some(line)) = lines.next_line().await {
                            if in_data {
                                if line == "." {
                                    in_data = false;
                                    kept.lock().unwrap().push(std::mem::take(&mut mail));
                                    write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                                } else {
                                    mail.push_str(&line);
                                    mail.push('\n');
                                }
                                continue;
                            }
                            let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                            let answer: &[u8] = match verb.as_str() {
                                "EHLO" => b"250-loopback\r\n250 8BITMIME\r\n",
                                "MAIL" | "RCPT" => {
                                    mail.push_str(&line);
                                    mail.push('\n');
                                    b"250 2.1.0 ok\r\n"
                                }
                                "DATA" => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                "QUIT" => {
                                    let _ = write.write_all(b"221 bye\r\n").await;
                                    return;
                                }
                                _ => b"250 ok\r\n",
                            };
                            write.write_all(answer).await.unwrap();
                        }
                    });
                }
            });
            Self { port, mails }
        }

        fn mails(&self) -> Vec<String> {
            self.mails.lock().unwrap().clone()
        }
    }

    /// A unique secret name holding `url`.
    fn secret(name: &str, url: &str) -> String {
        let name = format!("HRSYNC_NOTIFY_TEST_{name}");
        SECRETS.lock().unwrap().insert(name.clone(), url.to_owned());
        name
    }

    fn config_with(lifecycle: &str, notify: &str) -> Config {
        Config::parse(
            &format!("{}\n{notify}", config_text(lifecycle)),
            "hrsync.toml",
        )
        .expect("the config with [[notify]] parses")
    }

    /// The breaker holds the second disable: Slack and e-mail say what, who, why and the
    /// commands, once each.
    #[tokio::test]
    async fn a_held_disable_is_told_to_slack_and_by_email_once() {
        let slack = Chat::start(200).await;
        let smtp = Smtp::start().await;
        let url = secret("HELD_SLACK", &slack.url);
        let config = config_with(
            "max_disables_per_hour = 1",
            &format!(
                r#"
[[notify]]
kind = "slack"
url = {{ env = "{url}" }}

[[notify]]
kind = "smtp"
host = "127.0.0.1"
port = {}
tls = "none"
from = "hrsync@acme.example"
to = ["it-ops@acme.example"]
events = ["held"]
"#,
                smtp.port
            ),
        );
        let world = World::new(config, "2026-05-04T09:00:00Z").await;
        let first = worker("70", "Wanda", "Maximoff", "Sales", "2026-05-04T09:00:00Z");
        let second = worker("71", "Sam", "Wilson", "Sales", "2026-05-04T09:00:00Z");
        world.hr(&first).await;
        world.hr(&second).await;
        world
            .hr(&leaving(first, date(2026, 5, 3), "2026-05-04T09:10:00Z"))
            .await;
        let held = leaving(second, date(2026, 5, 3), "2026-05-04T09:11:00Z");
        world.hr(&held).await;
        assert!(world.enabled("71"), "held");
        let hold = world.pipeline().store.holds(None).await.unwrap()[0]
            .id
            .clone();
        // The same record again: the stage runs again and finds its hold.
        world.clock.set(at("2026-05-04T09:12:00Z"));
        world.deliver(&held, "again", "webhook hr").await;
        world.settle().await;

        let texts = slack.texts();
        assert_eq!(texts.len(), 1, "once: {texts:#?}");
        let text = &texts[0];
        for expected in [
            "A disable is held by the breaker for a human",
            "Who: hr:71, Sam Wilson",
            "Why: more than 1 disables within an hour",
            &format!("Run: hrsync holds approve '{hold}'"),
            &format!("Run: hrsync holds reject '{hold}'"),
            "Run: hrsync audit 'hr:71'",
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
        let mails = smtp.mails();
        assert_eq!(mails.len(), 1, "{mails:#?}");
        let mail = &mails[0];
        assert!(mail.contains("MAIL FROM:<hrsync@acme.example>"), "{mail}");
        assert!(mail.contains("RCPT TO:<it-ops@acme.example>"), "{mail}");
        assert!(
            mail.contains("Subject: hrsync: A disable is held"),
            "{mail}"
        );
        assert!(
            mail.contains(&format!("hrsync holds approve '{hold}'")),
            "{mail}"
        );
    }

    /// A rehire goes to Teams as an Adaptive Card; a dead letter to a Slack that answers 500
    /// fails to send, is counted, and fails nothing.
    #[tokio::test]
    async fn a_rehire_reaches_teams_and_a_failing_receiver_fails_no_work() {
        let teams = Chat::start(202).await;
        let broken = Chat::start(500).await;
        let teams_url = secret("REHIRE_TEAMS", &teams.url);
        let broken_url = secret("REHIRE_BROKEN", &broken.url);
        let config = config_with(
            "",
            &format!(
                r#"
[[notify]]
kind = "teams"
url = {{ env = "{teams_url}" }}
events = ["rehire", "dead_lettered"]

[[notify]]
kind = "slack"
name = "broken"
url = {{ env = "{broken_url}" }}
"#
            ),
        );
        let world = World::new(config, "2026-01-05T09:00:00Z").await;
        let diana = worker("63", "Diana", "Prince", "Sales", "2026-01-05T09:00:00Z");
        world.hr(&diana).await;
        world
            .hr(&leaving(
                diana.clone(),
                date(2026, 1, 30),
                "2026-01-06T09:00:00Z",
            ))
            .await;
        world.at("2026-01-31T09:00:00Z").await;
        world.clock.set(at("2026-07-31T09:00:00Z"));
        let mut back = diana;
        back.hire_date = Some(date(2026, 7, 31));
        back.department = Some("Engineering".into());
        back.as_of = at("2026-07-31T09:00:00Z");
        world.hr(&back).await;
        assert!(
            world.enabled("63"),
            "the work is done though a receiver fails"
        );

        let texts = teams.texts();
        assert_eq!(texts.len(), 1, "{texts:#?}");
        assert!(
            texts[0].contains("A former worker is rehired"),
            "{}",
            texts[0]
        );
        assert!(
            texts[0].contains("Who: hr:63, Diana Prince"),
            "{}",
            texts[0]
        );
        assert!(
            texts[0].contains("Run: hrsync audit 'hr:63'"),
            "{}",
            texts[0]
        );
        assert_eq!(broken.bodies.lock().unwrap().len(), 1, "tried once");
        assert_eq!(world.pipeline().notify.failed(), 1);

        // A worker's message dead-lettered (both runtimes settle failures this way).
        let pipeline = world.pipeline();
        let nudge = hrsync_pipeline::ports::Nudge::new(key("63"), "webhook hr", "trace-dlq");
        pipeline
            .queue
            .send(
                QueueName::Directory,
                &nudge,
                "dlq-test",
                pipeline.clock.now(),
            )
            .await
            .unwrap();
        let delivery = pipeline
            .queue
            .receive(
                QueueName::Directory,
                1,
                pipeline.clock.now(),
                Duration::from_secs(60),
            )
            .await
            .unwrap()
            .remove(0);
        let error = hrsync_pipeline::StageError::permanent("Graph refused the manager");
        let outcome = settle_failure(pipeline, &RunnerSettings::default(), &delivery, &error)
            .await
            .unwrap();
        assert_eq!(outcome, RetryOutcome::DeadLettered);
        let texts = teams.texts();
        assert_eq!(texts.len(), 2, "{texts:#?}");
        for expected in [
            "A worker's directory message failed and was dead-lettered",
            "Who: hr:63, Diana Prince",
            "Why: after 1 attempt(s): Graph refused the manager",
            "Run: hrsync dlq list --queue directory",
            "Run: hrsync dlq redrive",
        ] {
            assert!(texts[1].contains(expected), "{expected:?} in {}", texts[1]);
        }
    }

    /// A licence without a free unit is told once, however often the worker converges.
    #[tokio::test]
    async fn a_licence_without_a_free_unit_is_told_once() {
        let slack = Chat::start(200).await;
        let url = secret("LICENCE_SLACK", &slack.url);
        let text = format!(
            "{}\n[[access]]\nname = \"Employees\"\nlicenses = [\"{E3}\"]\n\n[[notify]]\nkind = \"slack\"\nurl = {{ env = \"{url}\" }}\nevents = [\"license_exhausted\"]\n",
            config_text("")
        );
        let world = World::with_e3_licences(&text, 0).await;
        let ada = worker("80", "Ada", "Lovelace", "Sales", "2026-12-01T09:00:00Z");
        world.hr(&ada).await;
        world.at("2026-12-01T12:00:00Z").await;
        let texts = slack.texts();
        assert_eq!(texts.len(), 1, "{texts:#?}");
        for expected in [
            &format!("The licence SPE_E3 ({E3}) has no free unit"),
            "Who: hr:80, Ada Lovelace",
            "Run: hrsync audit 'hr:80' --action license_pending",
        ] {
            assert!(texts[0].contains(expected), "{expected:?} in {}", texts[0]);
        }
    }

    /// Someone takes the chosen name in the directory between mapping and entra: hrsync picks
    /// the next candidate, and says so.
    #[tokio::test]
    async fn a_name_taken_meanwhile_is_told() {
        let slack = Chat::start(200).await;
        let url = secret("NAME_SLACK", &slack.url);
        let config = config_with(
            "",
            &format!(
                "[[notify]]\nkind = \"slack\"\nurl = {{ env = \"{url}\" }}\nevents = [\"name_conflict\"]\n"
            ),
        );
        let world = World::new(config, "2026-05-04T09:00:00Z").await;
        let ada = worker("90", "Ada", "Lovelace", "Sales", "2026-05-04T09:00:00Z");
        world.deliver(&ada, "ada", "webhook hr").await;
        let pipeline = world.pipeline();
        pipeline
            .mapping(&Nudge::new(key("90"), "webhook hr", "ada"))
            .await
            .expect("mapping decides");
        // Made by hand meanwhile.
        let graph = pipeline.graph.as_ref().unwrap();
        graph
            .create_user(&hrsync_directory::graph::NewUser {
                user_principal_name: "ada.lovelace@acme.example".into(),
                mail_nickname: "ada.lovelace".into(),
                display_name: "Ada (by hand)".into(),
                account_enabled: true,
                mail: None,
                properties: Default::default(),
            })
            .await
            .unwrap();
        world.settle().await;
        assert_eq!(
            world.user("90")["userPrincipalName"],
            "ada.lovelace2@acme.example"
        );
        let texts = slack.texts();
        assert_eq!(texts.len(), 1, "{texts:#?}");
        for expected in [
            "A chosen name belongs to another directory account",
            "Who: hr:90, Ada Lovelace",
            "Why: ada.lovelace@acme.example is taken in the directory",
            "Run: hrsync audit 'hr:90'",
        ] {
            assert!(texts[0].contains(expected), "{expected:?} in {}", texts[0]);
        }
    }

    /// A target that takes the connection and never answers holds the work up for the send
    /// timeout at most, and the notice counts as failed.
    #[tokio::test]
    async fn a_receiver_that_never_answers_is_given_up_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = secret(
            "HANGING_SLACK",
            &format!("http://{}/hook", listener.local_addr().unwrap()),
        );
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = config_with(
            "",
            &format!("[[notify]]\nkind = \"slack\"\nurl = {{ env = \"{url}\" }}\n"),
        );
        let world = World::new(config, "2026-05-04T09:00:00Z").await;
        let pipeline = world.pipeline();
        let notice = Notice {
            event: NotifyEvent::Rehire,
            id: "hanging".into(),
            worker: key("1"),
            display_name: None,
            what: "Event".into(),
            why: "testing".into(),
            commands: Vec::new(),
        };
        let started = std::time::Instant::now();
        pipeline
            .notify
            .dispatch(&*pipeline.store, &notice, pipeline.clock.now())
            .await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(5),
            "given up on after the send timeout (2 s here): {took:?}"
        );
        assert_eq!(pipeline.notify.failed(), 1);
        assert_eq!(pipeline.notify.sent(), 0);
    }

    /// A burst of notices to a target of 2 a minute: 2 sent, the rest kept back and summed up
    /// in one message with the next one sent; the same notice twice is sent once.
    #[tokio::test]
    async fn a_burst_is_limited_per_target_and_summed_up_and_a_notice_is_sent_once() {
        let slack = Chat::start(200).await;
        let url = secret("BURST_SLACK", &slack.url);
        let config = config_with(
            "",
            &format!(
                "[[notify]]\nkind = \"slack\"\nurl = {{ env = \"{url}\" }}\nmax_per_minute = 2\n"
            ),
        );
        let world = World::new(config, "2026-05-04T09:00:00Z").await;
        let pipeline = world.pipeline();
        let notice = |n: u32| Notice {
            event: NotifyEvent::NameConflict,
            id: format!("burst-{n}"),
            worker: key(&n.to_string()),
            display_name: Some(format!("Worker {n}")),
            what: format!("Event {n}"),
            why: "testing".into(),
            commands: vec![format!("hrsync audit 'hr:{n}'")],
        };
        let now = pipeline.clock.now();
        for n in 0..6 {
            pipeline
                .notify
                .dispatch(&*pipeline.store, &notice(n), now)
                .await;
        }
        // Sent before: not again, and it takes no budget.
        pipeline
            .notify
            .dispatch(&*pipeline.store, &notice(0), now)
            .await;
        assert_eq!(slack.texts().len(), 2, "{:#?}", slack.texts());

        world.clock.set(at("2026-05-04T09:01:01Z"));
        pipeline
            .notify
            .dispatch(&*pipeline.store, &notice(9), pipeline.clock.now())
            .await;
        let texts = slack.texts();
        assert_eq!(
            texts.len(),
            4,
            "2, then the summary and the next: {texts:#?}"
        );
        assert!(texts[0].contains("Event 0") && texts[1].contains("Event 1"));
        assert!(
            texts[2].contains("4 more notifications were not sent within a minute"),
            "{}",
            texts[2]
        );
        assert!(texts[3].contains("Event 9"), "{}", texts[3]);
    }
}
