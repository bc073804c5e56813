//! The AWS runtime's functions played in-process over a [`Deployment`]: each function's
//! container built as its Lambda's would be, an event source mapping's poll ([`Aws::deliver`]),
//! and the queues settled. Shared by `tests/aws_runtime.rs` and the CLI's tests against a stack.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::QueueAttributeName;
use hrsync_aws::queue::QueueUrls;
use hrsync_aws::settings::Resources;
use hrsync_aws::timers::schedule_name;
use hrsync_core::{TimerKind, WorkerKey};
use hrsync_lambda::{Container, Function};
use hrsync_pipeline::ManualClock;
use hrsync_pipeline::ports::{QueueName, StateStore, Stored, TimerSpec};
use jiff::Timestamp;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use super::{Deployment, GROUP, bamboo_webhook, employee, sqs_event, webhook_event};

/// How long the simulated event source mapping keeps received messages invisible.
pub const VISIBILITY: i32 = 5;

pub struct Aws {
    pub deployment: Deployment,
    pub sqs: aws_sdk_sqs::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub urls: BTreeMap<QueueName, QueueUrls>,
    /// Each function's own container, in `FUNCTIONS` order: each reads only its stage's
    /// secrets.
    pub containers: Vec<Container>,
    pub clock: Arc<ManualClock>,
}

pub const FUNCTIONS: [Function; 4] = [
    Function::Intake,
    Function::Mapping,
    Function::Entra,
    Function::Writeback,
];

impl Aws {
    /// A fresh moto with the template's table, queues and schedule group, the secrets in SSM
    /// and Secrets Manager, and each function's container built as its Lambda's would be.
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// With `extra` lines in the source's table.
    pub async fn start_with(extra: &str) -> Self {
        Self::start_in(extra, super::example_tenant()).await
    }

    /// In a sandbox tenant of the test's.
    pub async fn start_in(extra: &str, tenant: hrsync_sandbox::SandboxConfig) -> Self {
        // RUST_LOG=info shows what the functions did.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let deployment = Deployment::start_in(extra, tenant).await;
        let env = deployment.env.clone();
        let resources =
            Resources::from_lookup(|name| env.get(name).cloned()).expect("the resources");
        let clock = Arc::new(ManualClock::new(
            "2026-11-29T12:00:00Z".parse().expect("an instant"),
        ));
        let mut containers = Vec::new();
        for function in FUNCTIONS {
            let container = Container::build(function, &resources, &deployment.sdk, clock.clone())
                .await
                .unwrap_or_else(|e| panic!("the {function:?} container builds: {e}"));
            containers.push(container);
        }
        Self {
            sqs: deployment.sqs.clone(),
            scheduler: deployment.scheduler.clone(),
            urls: deployment.urls.clone(),
            deployment,
            containers,
            clock,
        }
    }

    /// `function`'s container.
    pub fn container(&self, function: Function) -> &Container {
        let index = FUNCTIONS.iter().position(|f| *f == function);
        &self.containers[index.expect("one of the four")]
    }

    /// The pipeline over the deployment's table and queues (any function's sees the same).
    pub fn pipeline(&self) -> &hrsync_lambda::AwsPipeline {
        &self.container(Function::Mapping).pipeline
    }

    /// A webhook through the Function URL: the HTTP status and body of intake's answer.
    pub async fn webhook(&self, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let answer = self
            .invoke(Function::Intake, &webhook_event(headers, body))
            .await;
        let status = answer["statusCode"].as_u64().expect("a status") as u16;
        let body = answer["body"].as_str().unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// A signed BambooHR event webhook for employee `id`.
    pub async fn bamboo_event(&self, event: &str, id: &str) -> (u16, Value) {
        let (headers, body) = bamboo_webhook(event, id, &self.clock_now().to_string());
        self.webhook(&headers, &body).await
    }

    pub fn clock_now(&self) -> Timestamp {
        use hrsync_pipeline::Clock;
        self.clock.now()
    }

    pub async fn invoke(&self, function: Function, event: &Value) -> Value {
        let raw = serde_json::value::to_raw_value(event).expect("JSON");
        hrsync_lambda::handle(
            function,
            self.container(function),
            LambdaEvent::new(raw, Context::default()),
        )
        .await
        .unwrap_or_else(|e| panic!("{function:?} failed the invocation: {e}"))
    }

    /// Receives up to ten messages of `queue` as the event source mapping would.
    pub async fn receive(&self, queue: QueueName) -> Vec<aws_sdk_sqs::types::Message> {
        self.deployment.receive(queue, 10, VISIBILITY).await
    }

    /// One event source mapping poll of the function's queue: the ids handed over and the
    /// ids reported failed. Records not reported failed are deleted, as Lambda does.
    pub async fn deliver(&self, function: Function) -> (Vec<String>, Vec<String>) {
        let queue = function.queue();
        let messages = self.receive(queue).await;
        if messages.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let answer = self.invoke(function, &sqs_event(queue, &messages)).await;
        let answer: SqsBatchResponse = serde_json::from_value(answer).expect("a batch response");
        let failed: Vec<String> = answer
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let mut ids = Vec::new();
        for message in &messages {
            let id = message.message_id().unwrap_or_default().to_owned();
            if !failed.contains(&id) {
                // Already gone when the function dead-lettered it: SQS accepts the delete.
                self.sqs
                    .delete_message()
                    .queue_url(&self.urls[&queue].url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
            ids.push(id);
        }
        (ids, failed)
    }

    /// Every function polls its queue until a whole round finds nothing.
    pub async fn settle(&self) {
        let functions = [
            Function::Intake,
            Function::Mapping,
            Function::Entra,
            Function::Writeback,
        ];
        for _ in 0..50 {
            let mut handled = 0;
            for function in functions {
                let (ids, failed) = self.deliver(function).await;
                assert!(failed.is_empty(), "{function:?} failed {failed:?}");
                handled += ids.len();
            }
            if handled == 0 {
                return;
            }
        }
        panic!("the queues did not settle in 50 rounds");
    }

    pub fn user(&self, employee_id: &str) -> Value {
        self.deployment
            .sandbox
            .sandbox
            .users()
            .into_iter()
            .find(|u| u["employeeId"] == employee_id)
            .unwrap_or_else(|| panic!("no account for employee {employee_id}"))
    }

    pub async fn schedule(
        &self,
        worker: &WorkerKey,
    ) -> Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
        self.schedule_of(worker, TimerKind::Leave).await
    }

    pub async fn schedule_of(
        &self,
        worker: &WorkerKey,
        kind: TimerKind,
    ) -> Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
        let name = schedule_name(&TimerSpec::name_for(worker, kind));
        match self
            .scheduler
            .get_schedule()
            .group_name(GROUP)
            .name(name)
            .send()
            .await
        {
            Ok(schedule) => Some(schedule),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("GetSchedule: {e:?}"),
        }
    }

    pub async fn visible(&self, url: &str) -> u64 {
        let answer = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let count = |name| {
            answer
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    /// HR changes the record and says so a minute later: the webhook, then every function
    /// until the queues settle.
    pub async fn hr_updates(&self, id: &str, record: &Value) {
        self.deployment.hr.put_employee(id, record.clone());
        self.advance(1);
        assert_eq!(self.bamboo_event("employee.updated", id).await.0, 202);
        self.settle().await;
    }

    /// HR creates employee `id` and sends the signed webhook (taken: 202).
    pub async fn hr_creates(&self, id: &str, first_name: &str, last_name: &str) {
        self.deployment
            .hr
            .put_employee(id, employee(id, first_name, last_name));
        assert_eq!(self.bamboo_event("employee.created", id).await.0, 202);
    }

    /// The worker's stored state, which must exist.
    pub async fn stored(&self, worker: &WorkerKey) -> Stored {
        self.pipeline()
            .store
            .load(worker)
            .await
            .expect("load")
            .expect("a state")
    }

    pub fn advance(&self, minutes: i64) {
        self.clock.advance(jiff::SignedDuration::from_mins(minutes));
    }
}
