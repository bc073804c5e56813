//! The AWS runtime end to end on moto: the four functions' handlers (`hrsync_lambda::handle`,
//! called in-process with the JSON Lambda sends) over DynamoDB, SQS FIFO and EventBridge
//! Scheduler on a local moto server, the sandbox directory and the BambooHR emulator.
//!
//! Lambda's event source mappings are played by [`Aws::deliver`]: receive up to ten messages
//! (FIFO order), hand them over as an SQS event, delete the records the function did not
//! report failed. Scheduler is played by delivering a schedule's input to worker-events, as
//! moto does not fire schedules.

#[path = "aws_fixture/mod.rs"]
mod aws_fixture;
#[path = "../shared/aws/tests/moto/mod.rs"]
mod moto;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_fixture::functions::{Aws, FUNCTIONS};
use aws_fixture::{bamboo_webhook, employee, sqs_event};
use hrsync_aws::settings::Resources;
use hrsync_aws::store::DynamoStore;
use hrsync_core::{TimerKind, Worker, WorkerKey, WorkerState};
use hrsync_hr_emulators::bamboohr;
use hrsync_lambda::{Container, Function};
use hrsync_pipeline::ports::{
    AuditRecord, Hold, HoldStatus, Nudge, Queue, QueueName, Reservation, StateStore, StoreError,
    Stored,
};
use hrsync_pipeline::{DirectoryLookups, ManualClock, Pipeline};
use jiff::Timestamp;
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_signed_webhook_goes_through_the_four_functions_and_a_leaver_follows_its_schedule() {
    runtime().block_on(async {
        let aws = Aws::start().await;
        let ada = WorkerKey::new("hr", "42");
        let mut record = employee("42", "Ada", "Lovelace");
        aws.deployment.hr.put_employee("42", record.clone());

        // A hire: signed webhook -> intake (202, queued for the fetch) -> hr-events.
        let (status, answer) = aws.bamboo_event("employee.created", "42").await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["queued"], 1, "{answer}");
        assert_eq!(aws.visible(&aws.urls[&QueueName::HrEvents].url).await, 1);

        // Each function in turn, as its event source mapping would run it.
        let (fetched, _) = aws.deliver(Function::Intake).await;
        assert_eq!(fetched.len(), 1, "intake fetched the record from hr-events");
        assert_eq!(
            aws.visible(&aws.urls[&QueueName::WorkerEvents].url).await,
            1
        );
        let (mapped, _) = aws.deliver(Function::Mapping).await;
        assert_eq!(mapped.len(), 1);
        assert_eq!(aws.visible(&aws.urls[&QueueName::Directory].url).await, 1);
        let (converged, _) = aws.deliver(Function::Entra).await;
        assert_eq!(converged.len(), 1);
        let user = aws.user("42");
        assert_eq!(user["accountEnabled"], true, "{user:#}");
        assert_eq!(aws.visible(&aws.urls[&QueueName::Writeback].url).await, 1);
        let (written, _) = aws.deliver(Function::Writeback).await;
        assert_eq!(written.len(), 1);
        assert_eq!(
            aws.deployment.hr.written(),
            vec![("42".to_owned(), json!({"workEmail": user["mail"]}))],
            "the work email is written back to BambooHR once"
        );
        aws.settle().await;

        // A future-dated leaver: a schedule at 17:00 London on the last day (UTC in winter).
        let leave = |record: &mut Value, date: &str| record["terminationDate"] = json!(date);
        leave(&mut record, "2026-12-01");
        aws.hr_updates("42", &record).await;
        let schedule = aws.schedule(&ada).await.expect("a leave schedule");
        assert_eq!(
            schedule.schedule_expression(),
            Some("at(2026-12-01T17:00:00)")
        );
        assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
        assert_eq!(
            aws.user("42")["accountEnabled"],
            true,
            "not before the day ends"
        );

        // A changed date updates the same schedule.
        leave(&mut record, "2026-12-02");
        aws.hr_updates("42", &record).await;
        let schedule = aws.schedule(&ada).await.expect("the leave schedule");
        assert_eq!(
            schedule.schedule_expression(),
            Some("at(2026-12-02T17:00:00)")
        );

        // A rescinded termination deletes it.
        leave(&mut record, "0000-00-00");
        aws.hr_updates("42", &record).await;
        assert!(
            aws.schedule(&ada).await.is_none(),
            "the rescind deleted the schedule"
        );

        // Terminated again; at 17:00 Scheduler delivers the schedule's input to worker-events.
        leave(&mut record, "2026-12-01");
        aws.hr_updates("42", &record).await;
        let schedule = aws.schedule(&ada).await.expect("a leave schedule");
        let target = schedule.target().expect("a target");
        aws.clock
            .set("2026-12-01T17:00:01Z".parse().expect("an instant"));
        aws.sqs
            .send_message()
            .queue_url(&aws.urls[&QueueName::WorkerEvents].url)
            .message_body(target.input().expect("an input"))
            .message_group_id(
                target
                    .sqs_parameters()
                    .and_then(|p| p.message_group_id())
                    .expect("a group"),
            )
            .send()
            .await
            .expect("the schedule's delivery");
        aws.settle().await;
        assert_eq!(
            aws.user("42")["accountEnabled"],
            false,
            "disabled by the timer"
        );
        let store = &aws.pipeline().store;
        let audit = store.audit(&ada).await.expect("audit");
        assert!(
            audit
                .iter()
                .any(|r| r.stage == "mapping" && r.action == "leave"),
            "{audit:#?}"
        );
        assert!(
            audit
                .iter()
                .any(|r| r.stage == "entra" && r.action == "disable"),
            "{audit:#?}"
        );
    });
}

#[test]
fn a_poison_message_is_dead_lettered_with_its_reason_and_the_rest_of_the_batch_is_handled() {
    runtime().block_on(async {
        let aws = Aws::start().await;
        let queue = &aws.urls[&QueueName::WorkerEvents];
        aws.sqs
            .send_message()
            .queue_url(&queue.url)
            .message_body("this is not a nudge")
            .message_group_id("hr:13")
            .message_deduplication_id("poison-1")
            .send()
            .await
            .expect("send");
        let nudge = Nudge::new(WorkerKey::new("hr", "14"), "test", "test:1");
        aws.pipeline()
            .queue
            .send(QueueName::WorkerEvents, &nudge, "ok-1", aws.clock_now())
            .await
            .expect("send");

        let (ids, failed) = aws.deliver(Function::Mapping).await;
        assert_eq!(ids.len(), 2);
        assert!(failed.is_empty(), "nothing comes back: {failed:?}");
        assert_eq!(aws.visible(&queue.url).await, 0);
        let dead = aws
            .sqs
            .receive_message()
            .queue_url(&queue.dead_letter_url)
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        assert_eq!(dead.len(), 1, "{dead:#?}");
        assert_eq!(dead[0].body(), Some("this is not a nudge"));
        let reason = dead[0]
            .message_attributes()
            .and_then(|a| a.get("hrsync-reason"))
            .and_then(|v| v.string_value())
            .expect("a reason attribute");
        assert!(reason.starts_with("unreadable message: "), "{reason}");
    });
}

#[test]
fn a_failed_fetch_fails_only_its_record_and_the_later_ones_of_its_worker() {
    runtime().block_on(async {
        let aws = Aws::start().await;
        aws.deployment
            .hr
            .put_employee("7", employee("7", "Grace", "Hopper"));
        aws.deployment
            .hr
            .put_employee("8", employee("8", "Alan", "Turing"));
        let queue = &aws.pipeline().queue;
        let now = aws.clock_now();
        for (id, dedup) in [("7", "a1"), ("8", "b1"), ("7", "a2")] {
            let nudge = Nudge::new(WorkerKey::new("hr", id), "test", dedup);
            queue
                .send(QueueName::HrEvents, &nudge, dedup, now)
                .await
                .expect("send");
        }
        // Grace's fetch meets 503s on every attempt the client makes; Alan's is fine.
        aws.deployment.hr.fail_next(4, 503, Some(0));

        let (ids, failed) = aws.deliver(Function::Intake).await;
        assert_eq!(ids.len(), 3, "one batch of three");
        assert_eq!(
            failed,
            vec![ids[0].clone(), ids[2].clone()],
            "Grace's failed record and her later one, not Alan's"
        );
        let reads = |id: &str| {
            aws.deployment
                .hr
                .requests()
                .iter()
                .filter(|r| r.path.starts_with(&format!("/employees/{id}?")))
                .count()
        };
        assert_eq!(reads("7"), 4, "Grace's first record was tried (4 attempts)");
        assert_eq!(reads("8"), 1, "Alan's was fetched once");
        assert_eq!(
            aws.visible(&aws.urls[&QueueName::WorkerEvents].url).await,
            1,
            "only Alan's record went on to mapping"
        );

        // Redelivered in order after the backoff, both of Grace's records go through.
        let mut redelivered = Vec::new();
        for _ in 0..40 {
            if redelivered.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (ids, failed) = aws.deliver(Function::Intake).await;
            assert!(failed.is_empty(), "{failed:?}");
            redelivered.extend(ids);
        }
        assert_eq!(redelivered, [ids[0].clone(), ids[2].clone()], "in order");
        assert_eq!(reads("7"), 6);
    });
}

/// Writes the worker's state once, from "another container", just before the first save the
/// stage makes: that save then loses DynamoDB's conditional check.
struct Interfering {
    inner: DynamoStore,
    worker: WorkerKey,
    interfered: Mutex<bool>,
    saves: Mutex<Vec<Result<u64, StoreError>>>,
}

type RacingPipeline =
    Pipeline<Interfering, hrsync_aws::queue::SqsQueue, hrsync_aws::timers::SchedulerTimers>;

impl Interfering {
    /// A pipeline like `function`'s container's whose store interferes once with `worker`'s
    /// state.
    fn racing(aws: &Aws, function: Function, worker: &WorkerKey) -> (Arc<Self>, RacingPipeline) {
        let base = &aws.container(function).pipeline;
        let store = Arc::new(Self {
            inner: (*base.store).clone(),
            worker: worker.clone(),
            interfered: Mutex::new(false),
            saves: Mutex::new(Vec::new()),
        });
        let racing = Pipeline {
            config: Arc::clone(&base.config),
            store: Arc::clone(&store),
            queue: Arc::clone(&base.queue),
            timers: Arc::clone(&base.timers),
            graph: base.graph.clone(),
            lookups: DirectoryLookups::PerWorker,
            clock: Arc::clone(&base.clock),
            hr: base.hr.clone(),
            notify: Arc::clone(&base.notify),
        };
        (store, racing)
    }

    fn saves(&self) -> Vec<Result<u64, StoreError>> {
        self.saves.lock().expect("lock").clone()
    }
}

/// Receives `queue`'s one message and hands it to `pipeline`'s batch handler, as Lambda would.
async fn handle_one(aws: &Aws, pipeline: &RacingPipeline, queue: QueueName) {
    let messages = aws.receive(queue).await;
    assert_eq!(messages.len(), 1);
    let event = serde_json::from_value(sqs_event(queue, &messages)).expect("an SQS event");
    let settings = &aws.container(Function::Mapping).settings;
    let answer = hrsync_lambda::handle_batch(pipeline, settings, queue, event).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
}

impl StateStore for Interfering {
    async fn load(&self, worker: &WorkerKey) -> Result<Option<Stored>, StoreError> {
        self.inner.load(worker).await
    }

    async fn save(
        &self,
        worker: &WorkerKey,
        state: &WorkerState,
        expected: Option<u64>,
        audit: &[AuditRecord],
    ) -> Result<u64, StoreError> {
        let first = !std::mem::replace(&mut *self.interfered.lock().expect("lock"), true);
        if first && *worker == self.worker {
            let current = self.inner.load(worker).await?;
            let (state, version) = current
                .map(|s| (s.state, Some(s.version)))
                .unwrap_or_default();
            self.inner.save(worker, &state, version, &[]).await?;
        }
        let result = self.inner.save(worker, state, expected, audit).await;
        self.saves.lock().expect("lock").push(result.clone());
        result
    }

    async fn workers(&self) -> Result<Vec<WorkerKey>, StoreError> {
        self.inner.workers().await
    }
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.append_audit(record).await
    }
    async fn audit(&self, worker: &WorkerKey) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit(worker).await
    }
    async fn reserve_name(&self, name: &str, owner: &WorkerKey) -> Result<Reservation, StoreError> {
        self.inner.reserve_name(name, owner).await
    }
    async fn release_name(&self, name: &str, owner: &WorkerKey) -> Result<(), StoreError> {
        self.inner.release_name(name, owner).await
    }
    async fn name_owner(&self, name: &str) -> Result<Option<WorkerKey>, StoreError> {
        self.inner.name_owner(name).await
    }
    async fn first_delivery(
        &self,
        event: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.first_delivery(event, now, expires).await
    }
    async fn put_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        self.inner.put_hold(hold).await
    }
    async fn holds(&self, status: Option<HoldStatus>) -> Result<Vec<Hold>, StoreError> {
        self.inner.holds(status).await
    }
    async fn resolve_hold(&self, id: &str, status: HoldStatus) -> Result<bool, StoreError> {
        self.inner.resolve_hold(id, status).await
    }
    async fn hold(&self, id: &str) -> Result<Option<Hold>, StoreError> {
        self.inner.hold(id).await
    }
    async fn put_snapshot(&self, snapshot: &Worker) -> Result<bool, StoreError> {
        self.inner.put_snapshot(snapshot).await
    }
    async fn snapshot(&self, worker: &WorkerKey) -> Result<Option<Worker>, StoreError> {
        self.inner.snapshot(worker).await
    }
    async fn delivered(&self, event: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.inner.delivered(event, now).await
    }
    async fn take_budget(
        &self,
        budget: &str,
        key: &str,
        now: Timestamp,
        window: Duration,
        limit: u64,
    ) -> Result<bool, StoreError> {
        self.inner
            .take_budget(budget, key, now, window, limit)
            .await
    }
    async fn wait_for(&self, awaited: &WorkerKey, waiter: &WorkerKey) -> Result<(), StoreError> {
        self.inner.wait_for(awaited, waiter).await
    }
    async fn waiters(&self, awaited: &WorkerKey) -> Result<Vec<WorkerKey>, StoreError> {
        self.inner.waiters(awaited).await
    }
    async fn forget_waiters(
        &self,
        awaited: &WorkerKey,
        waiters: &[WorkerKey],
    ) -> Result<(), StoreError> {
        self.inner.forget_waiters(awaited, waiters).await
    }
    async fn audit_between(
        &self,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_between(since, until, limit).await
    }
    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.inner.cursor(source).await
    }
    async fn put_cursor(&self, source: &str, cursor: &str) -> Result<(), StoreError> {
        self.inner.put_cursor(source, cursor).await
    }
}

#[test]
fn a_concurrent_state_update_loses_the_conditional_write_and_mapping_decides_again() {
    runtime().block_on(async {
        let aws = Aws::start().await;
        aws.hr_creates("9", "Katherine", "Johnson").await;
        aws.deliver(Function::Intake).await;
        let katherine = WorkerKey::new("hr", "9");

        // Mapping in a container whose store sees another writer get in first.
        let (store, racing) = Interfering::racing(&aws, Function::Mapping, &katherine);
        handle_one(&aws, &racing, QueueName::WorkerEvents).await;

        let saves = store.saves();
        assert!(
            matches!(
                saves.first(),
                Some(Err(StoreError::Conflict {
                    expected: None,
                    found: Some(1),
                    ..
                }))
            ),
            "the first save lost to the other writer: {saves:?}"
        );
        assert_eq!(
            saves.get(1),
            Some(&Ok(2)),
            "read again, decided again, saved: {saves:?}"
        );
        let stored = aws.stored(&katherine).await;
        assert_eq!(stored.version, 2);
        assert!(
            stored.state.provisioned,
            "the decision after the retry was kept"
        );
    });
}

/// The write-back's record of what HR was given loses its conditional write to another
/// container: it is stored on the latest state, and HR is written once.
#[test]
fn a_write_back_that_loses_the_conditional_write_records_it_on_the_latest_state() {
    runtime().block_on(async {
        let aws = Aws::start().await;
        aws.hr_creates("9", "Katherine", "Johnson").await;
        for function in [Function::Intake, Function::Mapping, Function::Entra] {
            aws.deliver(function).await;
        }
        let katherine = WorkerKey::new("hr", "9");
        let before = aws.stored(&katherine).await;

        let (store, racing) = Interfering::racing(&aws, Function::Writeback, &katherine);
        handle_one(&aws, &racing, QueueName::Writeback).await;

        let saves = store.saves();
        assert!(
            matches!(saves.first(), Some(Err(StoreError::Conflict { .. }))),
            "the first save lost to the other writer: {saves:?}"
        );
        assert_eq!(saves.get(1), Some(&Ok(before.version + 2)), "{saves:?}");
        let mail = aws.user("9")["mail"].clone();
        assert_eq!(
            aws.deployment.hr.written(),
            vec![("9".to_owned(), json!({ "workEmail": mail }))],
            "HR is written once"
        );
        let stored = aws.stored(&katherine).await;
        assert_eq!(stored.state.written_back.as_deref(), mail.as_str());
    });
}

#[test]
fn a_bad_signature_gets_401_and_an_audit_record_without_the_body() {
    runtime().block_on(async {
        let aws = Aws::start().await;
        let body = br#"{"type":"employee.created","data":{"employeeId":"42"}}"#;
        let (status, answer) = aws
            .webhook(
                &[
                    (
                        "X-BambooHR-Timestamp",
                        Timestamp::now().as_second().to_string(),
                    ),
                    ("X-BambooHR-Signature", "0".repeat(64)),
                ],
                body,
            )
            .await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(
            answer,
            json!({"error": "invalid signature"}),
            "no detail leaked"
        );
        assert_eq!(aws.visible(&aws.urls[&QueueName::HrEvents].url).await, 0);
        let audit = aws
            .pipeline()
            .store
            .audit(&WorkerKey::new("hr", "#webhook"))
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "{audit:#?}");
        assert_eq!(audit[0].action, "unauthorized");
        assert_eq!(audit[0].after.as_ref().expect("after")["bytes"], body.len());
        let text = serde_json::to_string(&audit[0]).expect("JSON");
        assert!(!text.contains("employee.created"), "{text}");
    });
}

#[test]
fn the_scheduled_poll_queues_a_hire_whose_webhook_never_came() {
    runtime().block_on(async {
        let aws = Aws::start_with("poll_every = \"15m\"\n").await;
        let poll = json!({"poll": true});
        // The first poll only starts the cursor.
        assert_eq!(
            aws.invoke(Function::Intake, &poll).await,
            json!({"queued": {"hr": 0}})
        );
        aws.deployment
            .hr
            .put_employee("42", employee("42", "Ada", "Lovelace"));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        bamboohr::record_change(
            &aws.deployment.hr,
            "42",
            "Inserted",
            &Timestamp::now().to_string(),
        );
        assert_eq!(
            aws.invoke(Function::Intake, &poll).await,
            json!({"queued": {"hr": 1}})
        );
        aws.settle().await;
        assert_eq!(aws.user("42")["accountEnabled"], true);
    });
}

#[test]
fn a_refused_credential_dead_letters_the_fetch_with_the_reason_and_an_audit_record() {
    runtime().block_on(async {
        let aws = Aws::start().await;
        aws.deployment
            .hr
            .put_employee("42", employee("42", "Ada", "Lovelace"));
        bamboohr::set_api_key(&aws.deployment.hr, "rotated-key");
        assert_eq!(aws.bamboo_event("employee.created", "42").await.0, 202);
        let (ids, failed) = aws.deliver(Function::Intake).await;
        assert_eq!(ids.len(), 1);
        assert!(
            failed.is_empty(),
            "a permanent error is not retried: {failed:?}"
        );

        let dead = aws
            .pipeline()
            .queue
            .dead_letters(QueueName::HrEvents)
            .await
            .expect("dead letters");
        assert_eq!(dead.len(), 1, "{dead:#?}");
        assert!(dead[0].reason.contains("401"), "{}", dead[0].reason);
        let audit = aws
            .pipeline()
            .store
            .audit(&WorkerKey::new("hr", "42"))
            .await
            .expect("audit");
        assert!(
            audit
                .iter()
                .any(|r| r.stage == "hr-events" && r.action == "dead_lettered"),
            "{audit:#?}"
        );
        assert_eq!(
            aws.visible(&aws.urls[&QueueName::WorkerEvents].url).await,
            0
        );

        // Redriven before the key is fixed, it dies again: under the same dead-letter id.
        let queue = &aws.pipeline().queue;
        let now = Timestamp::now();
        assert!(
            queue
                .redrive(QueueName::HrEvents, &dead[0].id, now)
                .await
                .unwrap()
        );
        let (ids, failed) = aws.deliver(Function::Intake).await;
        assert_eq!((ids.len(), failed.len()), (1, 0));
        let again = queue.dead_letters(QueueName::HrEvents).await.unwrap();
        assert_eq!(again.len(), 1, "{again:#?}");
        assert_eq!(again[0].id, dead[0].id, "the id the operator knows it by");
    });
}

/// `[[notify]] kind = "sns"` on AWS: the intake function dead-letters a fetch its HR API
/// refuses, and the topic's subscribers (an SQS queue here) are told what, who, why and the
/// commands, by the function's role, with no secret.
#[test]
fn a_dead_letter_is_published_to_the_notify_topic() {
    runtime().block_on(async {
        const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:hrsync-notify";
        let aws = Aws::start_with(&format!(
            "\n[[notify]]\nkind = \"sns\"\ntopic_arn = \"{TOPIC}\"\nevents = [\"dead_lettered\"]\n"
        ))
        .await;
        let sns = aws_sdk_sns::Client::new(&aws.deployment.sdk);
        let topic = sns
            .create_topic()
            .name("hrsync-notify")
            .send()
            .await
            .expect("topic")
            .topic_arn
            .expect("an ARN");
        assert_eq!(topic, TOPIC);
        let inbox = aws
            .sqs
            .create_queue()
            .queue_name("it-ops")
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("a URL");
        let inbox_arn = aws
            .sqs
            .get_queue_attributes()
            .queue_url(&inbox)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("attributes")
            .attributes
            .expect("attributes")[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        sns.subscribe()
            .topic_arn(TOPIC)
            .protocol("sqs")
            .endpoint(&inbox_arn)
            .send()
            .await
            .expect("subscribe");

        aws.deployment
            .hr
            .put_employee("42", employee("42", "Ada", "Lovelace"));
        bamboohr::set_api_key(&aws.deployment.hr, "rotated-key");
        assert_eq!(aws.bamboo_event("employee.created", "42").await.0, 202);
        aws.deliver(Function::Intake).await;

        let told = aws
            .sqs
            .receive_message()
            .queue_url(&inbox)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        assert_eq!(told.len(), 1, "{told:#?}");
        let envelope: Value = serde_json::from_str(told[0].body().expect("a body")).expect("JSON");
        let text = envelope["Message"].as_str().expect("the message");
        for expected in [
            "hrsync: A worker's hr-events message failed and was dead-lettered",
            "Who: hr:42",
            "Why: after 1 attempt(s): ",
            "401",
            "Run: hrsync dlq list --queue hr-events",
            "Run: hrsync audit 'hr:42'",
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
    });
}

/// A licence with no free unit on AWS: the entra function converges the rest of the account,
/// records the licence as waiting (not a failure, not a dead letter) and sets the worker's
/// license_retry schedule in EventBridge Scheduler, which the template lets it do.
#[test]
fn a_licence_with_no_free_unit_waits_with_a_retry_schedule() {
    runtime().block_on(async {
        let mut tenant = aws_fixture::example_tenant();
        for sku in &mut tenant.skus {
            sku.units = 0;
        }
        let aws = Aws::start_in("", tenant).await;
        let ada = WorkerKey::new("hr", "42");
        // An employee outside Engineering: the example grants her Microsoft 365 E3.
        let mut record = employee("42", "Ada", "Lovelace");
        record["employmentHistoryStatus"] = json!("Employee");
        record["department"] = json!("Sales");
        record["country"] = json!("GB");
        aws.deployment.hr.put_employee("42", record);
        assert_eq!(aws.bamboo_event("employee.created", "42").await.0, 202);
        aws.settle().await;

        let user = aws.user("42");
        assert_eq!(user["accountEnabled"], true, "{user:#}");
        let state = aws.stored(&ada).await.state;
        let wanted = &state.desired.as_ref().expect("desired").licenses;
        assert!(!wanted.is_empty(), "the example grants Ada a licence");
        let waiting: Vec<&str> = state
            .pending_licenses
            .iter()
            .map(|p| p.sku.as_str())
            .collect();
        assert_eq!(waiting.len(), wanted.len(), "{state:#?}");
        let retry = aws
            .schedule_of(&ada, TimerKind::LicenseRetry)
            .await
            .expect("a license_retry schedule");
        let at = state.pending_licenses[0].retry_at;
        assert_eq!(
            retry.schedule_expression(),
            Some(format!("at({})", at.strftime("%Y-%m-%dT%H:%M:%S")).as_str())
        );
        for queue in QueueName::ALL {
            assert_eq!(
                aws.visible(&aws.urls[&queue].dead_letter_url).await,
                0,
                "{queue}: nothing dead-lettered"
            );
        }
    });
}

/// Finding 8 of the security review: each function reads only its own stage's secrets and
/// builds only the clients it calls. Intake checks webhooks and calls the HR API; mapping
/// and entra call the directory; writeback calls the HR API. A function started where only
/// its own secrets exist (as its role lets it read no others) starts; one missing its own
/// says so.
#[test]
fn each_function_reads_only_the_secrets_of_its_own_stage() {
    runtime().block_on(async {
        let deployment = aws_fixture::Deployment::start("").await;
        // The directory as Microsoft Graph (the sandbox speaks it), its client secret in SSM.
        let config_file = deployment.env["HRSYNC_CONFIG_FILE"].clone();
        let sandbox = &deployment.sandbox.url;
        let text = std::fs::read_to_string(&config_file).expect("the config");
        let graph = format!(
            "[directory]\nkind = \"graph\"\ntenant_id = \"contoso\"\nclient_id = \"hrsync\"\nclient_secret = {{ ssm = \"{DIRECTORY_PARAMETER}\" }}\ngraph_endpoint = \"{sandbox}\"\nauthority_host = \"{sandbox}\"\n"
        );
        let sandbox_table = format!("[directory]\nkind = \"sandbox\"\nurl = \"{sandbox}\"\n");
        assert!(text.contains(&sandbox_table));
        std::fs::write(&config_file, text.replace(&sandbox_table, &graph)).expect("config");
        let ssm = aws_sdk_ssm::Client::new(&deployment.sdk);
        let secrets_manager = aws_sdk_secretsmanager::Client::new(&deployment.sdk);
        ssm.put_parameter()
            .name(DIRECTORY_PARAMETER)
            .value("graph-client-secret")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("SSM parameter");
        let env = deployment.env.clone();
        let resources = Resources::from_lookup(|name| env.get(name).cloned()).expect("resources");
        let clock = Arc::new(ManualClock::new(
            "2026-11-29T12:00:00Z".parse().expect("an instant"),
        ));
        let build = |function: Function| {
            let (resources, sdk, clock) = (&resources, &deployment.sdk, clock.clone());
            async move { Container::build(function, resources, sdk, clock).await }
        };

        // Every secret there: each function holds only its own clients.
        for function in FUNCTIONS {
            let container = build(function).await.expect("builds");
            let pipeline = &container.pipeline;
            let directory = matches!(function, Function::Mapping | Function::Entra);
            assert_eq!(pipeline.graph.is_some(), directory, "{function:?}");
            let hr = pipeline.hr.get("hr");
            assert_eq!(
                hr.is_some(),
                !directory,
                "{function:?}: HR connectors only where the HR API is called"
            );
            if function == Function::Writeback {
                let (headers, body) = bamboo_webhook("employee.created", "42", "2026-11-29T12:00:00Z");
                let mut map = lambda_http::http::HeaderMap::new();
                for (name, value) in &headers {
                    map.insert(
                        lambda_http::http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                        value.parse().expect("a value"),
                    );
                }
                let delivery = hrsync_hr::Delivery {
                    headers: &map,
                    body: &body,
                    received_at: clock_now(&clock),
                };
                let refused = hr.expect("a connector").verify(&delivery).unwrap_err();
                assert!(refused.0.contains("takes no webhooks"), "{refused}");
            }
        }

        // Only the directory's secret: mapping and entra start, the HR side does not.
        ssm.delete_parameter()
            .name(aws_fixture::WEBHOOK_PARAMETER)
            .send()
            .await
            .expect("deleted");
        secrets_manager
            .delete_secret()
            .secret_id(aws_fixture::API_KEY_SECRET)
            .force_delete_without_recovery(true)
            .send()
            .await
            .expect("deleted");
        for function in [Function::Mapping, Function::Entra] {
            build(function).await.expect("the directory's secret is enough");
        }
        let error = build(Function::Writeback).await.unwrap_err();
        assert!(
            error.0.contains(aws_fixture::API_KEY_SECRET) && error.0.contains("hrsync/hr-api/..."),
            "{error}"
        );

        // The API key back: writeback starts; intake still needs the webhook secret.
        secrets_manager
            .create_secret()
            .name(aws_fixture::API_KEY_SECRET)
            .secret_string(bamboohr::API_KEY)
            .send()
            .await
            .expect("secret");
        build(Function::Writeback)
            .await
            .expect("the API key is enough for writeback");
        let error = build(Function::Intake).await.unwrap_err();
        assert!(
            error.0.contains(aws_fixture::WEBHOOK_PARAMETER)
                && error.0.contains("<SsmParameterPath>/webhook/..."),
            "{error}"
        );

        // The webhook secret back and the directory's gone: intake and writeback start.
        ssm.put_parameter()
            .name(aws_fixture::WEBHOOK_PARAMETER)
            .value(aws_fixture::SECRET)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("SSM parameter");
        ssm.delete_parameter()
            .name(DIRECTORY_PARAMETER)
            .send()
            .await
            .expect("deleted");
        for function in [Function::Intake, Function::Writeback] {
            build(function)
                .await
                .expect("no directory credential is read");
        }
        let error = build(Function::Entra).await.unwrap_err();
        assert!(error.0.contains(DIRECTORY_PARAMETER), "{error}");
    });
}

/// Where the Graph client secret is kept in [`each_function_reads_only_the_secrets_of_its_own_stage`].
const DIRECTORY_PARAMETER: &str = "/hrsync/directory/graph-client-secret";

fn clock_now(clock: &ManualClock) -> Timestamp {
    use hrsync_pipeline::Clock;
    clock.now()
}

/// `[directory] federated = "aws"`: mapping and entra sign in to Graph with a JWT from STS
/// `GetWebIdentityToken` for their role (here the loopback STS stub, through the real SDK),
/// no directory secret is read, and intake and writeback never ask STS. No moto: the config
/// is bundled and nothing else is called while the containers are built.
#[test]
fn mapping_and_entra_sign_in_to_graph_with_an_sts_token_and_no_secret() {
    use hrsync_hr_emulators::sts::StsStub;
    use hrsync_sandbox::{FederatedCredential, Sandbox, SandboxConfig};

    const ROLE: &str = "arn:aws:iam::123456789012:role/hrsync-EntraRole";
    runtime().block_on(async {
        let stub = StsStub::start(ROLE).await;
        let sandbox = Sandbox::start(SandboxConfig {
            client_secret: Some("no-secret-is-used".into()),
            federated_credentials: vec![FederatedCredential {
                issuer: stub.url().to_owned(),
                subject: ROLE.into(),
                audiences: vec!["api://AzureADTokenExchange".into()],
            }],
            ..SandboxConfig::default()
        })
        .await
        .expect("the sandbox starts");
        let dir = tempfile::tempdir().expect("a temp dir");
        let config_file = dir.path().join("hrsync.toml");
        std::fs::write(
            &config_file,
            format!(
                "[identity]\nupn = [\"{{{{ given_name|slug }}}}@acme.example\"]\n\n[directory]\nkind = \"graph\"\ntenant_id = \"contoso\"\nclient_id = \"hrsync\"\nfederated = \"aws\"\ngraph_endpoint = \"{url}\"\nauthority_host = \"{url}\"\n",
                url = sandbox.url
            ),
        )
        .expect("the config");
        let queue = |name: &str| format!("http://127.0.0.1:9/123456789012/{name}.fifo");
        let resources = Resources::from_lookup(|name| {
            Some(match name {
                "HRSYNC_CONFIG_FILE" => config_file.display().to_string(),
                "HRSYNC_CONFIG_PARAMETER" => return None,
                "HRSYNC_TABLE" => "hrsync".into(),
                name if name.ends_with("_ARN") => {
                    "arn:aws:sqs:eu-west-1:123456789012:unused".into()
                }
                "HRSYNC_SCHEDULE_GROUP" => "hrsync".into(),
                name => queue(&name.to_ascii_lowercase()),
            })
        })
        .expect("resources");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "AKIDEXAMPLE",
                "test-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(stub.url())
            .load()
            .await;
        let clock = Arc::new(ManualClock::new(
            "2026-11-29T12:00:00Z".parse().expect("an instant"),
        ));

        for function in [Function::Intake, Function::Writeback] {
            let container = Container::build(function, &resources, &sdk, clock.clone())
                .await
                .expect("builds");
            assert!(container.pipeline.graph.is_none(), "{function:?}");
        }
        assert!(stub.requests().is_empty(), "only the Graph-calling functions ask STS");

        for function in [Function::Mapping, Function::Entra] {
            let container = Container::build(function, &resources, &sdk, clock.clone())
                .await
                .expect("builds without a directory secret");
            let graph = container.pipeline.graph.as_ref().expect("a Graph client");
            graph
                .check_token()
                .await
                .expect("Entra (the sandbox) takes the STS token");
        }
        let requests = stub.requests();
        assert_eq!(requests.len(), 2, "one STS token per function's Graph token");
        assert!(requests.iter().all(|r| r.audiences == ["api://AzureADTokenExchange"]
            && r.duration_seconds == Some(300)
            && r.signing_algorithm.as_deref() == Some("RS256")));
        assert_eq!(sandbox.sandbox.stats().tokens, 2);
    });
}
