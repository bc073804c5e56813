//! What a Lambda container builds once, before its first event, and keeps for its life.

use std::collections::BTreeMap;
use std::sync::Arc;

use hrsync_aws::queue::{QueueUrls, SqsQueue};
use hrsync_aws::settings::{Resources, Secrets, SettingsError, load_config};
use hrsync_aws::store::DynamoStore;
use hrsync_aws::sts::StsAssertions;
use hrsync_aws::timers::{SchedulerTimers, TimerTarget};
use hrsync_core::config::{Federation, SecretUse};
use hrsync_directory::connect::Connection;
use hrsync_directory::graph::AssertionSource;
use hrsync_hr::{Connectors, Webhooks};
use hrsync_pipeline::ports::QueueName;
use hrsync_pipeline::{Clock, DirectoryLookups, Pipeline, RunnerSettings, SystemClock};

use crate::Function;

/// The pipeline over DynamoDB, SQS FIFO and EventBridge Scheduler.
pub type AwsPipeline = Pipeline<DynamoStore, SqsQueue, SchedulerTimers>;

/// Everything the handlers borrow.
#[derive(Debug)]
pub struct Container {
    pub pipeline: Arc<AwsPipeline>,
    /// The intake function's webhook endpoint (the router `hrsync serve` runs too).
    pub webhooks: axum::Router,
    /// Backoff and attempts of a failed message; `max_attempts` is the queues'
    /// `maxReceiveCount`, so a message the stage gave up on is dead-lettered with its reason
    /// before SQS would move it without one.
    pub settings: RunnerSettings,
    /// Keeps an in-process sandbox directory alive (never on AWS: `directory.url` or Graph).
    _directory: Option<Connection>,
}

impl Container {
    /// From the environment the SAM template sets (`infra/README.md`): resources, then the
    /// config (bundled or SSM), then the secrets of `function`'s own stage, fetched once.
    pub async fn from_env(function: Function) -> Result<Self, SettingsError> {
        let resources = Resources::from_env()?;
        let sdk = aws_config::load_from_env().await;
        Self::build(function, &resources, &sdk, Arc::new(SystemClock)).await
    }

    /// `function`'s container from named resources, an SDK config and a clock (the tests
    /// point the SDK at moto and set the time). It reads only the secrets its stage uses
    /// and builds only the clients it calls: the template lets no function read another
    /// stage's secrets.
    pub async fn build(
        function: Function,
        resources: &Resources,
        sdk: &aws_config::SdkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SettingsError> {
        let ssm = aws_sdk_ssm::Client::new(sdk);
        let config = load_config(resources, &ssm).await?;
        let uses = function.secret_uses();
        let secrets = Secrets::fetch(
            &config,
            uses,
            &ssm,
            &aws_sdk_secretsmanager::Client::new(sdk),
        )
        .await?;
        let resolve = |secret: &hrsync_core::config::SecretRef| secrets.resolve(secret);
        let hr = match function {
            Function::Intake => connectors(&config, Webhooks::Taken, &resolve)?,
            Function::Writeback => connectors(&config, Webhooks::NotTaken, &resolve)?,
            Function::Mapping | Function::Entra => Connectors::default(),
        };
        // Graph, or a sandbox serving at `directory.url` (the functions never run one). With
        // `federated = "aws"`, each token request presents a JWT STS signs for this function's
        // role (only mapping and entra, the functions that call Graph, build one).
        let directory = match uses.contains(&SecretUse::Directory) {
            true => {
                let assertions: Option<Arc<dyn AssertionSource>> = match config.directory.federated
                {
                    Some(Federation::Aws) => Some(Arc::new(StsAssertions::new(
                        sdk,
                        config.directory.federated_audience(),
                    )?)),
                    None => None,
                };
                Some(
                    hrsync_directory::connect::connect(&config.directory, &resolve, assertions)
                        .map_err(|e| SettingsError(e.to_string()))?,
                )
            }
            false => None,
        };

        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_urls(resources))
            .map_err(|e| SettingsError(e.to_string()))?;
        let timers = SchedulerTimers::new(
            aws_sdk_scheduler::Client::new(sdk),
            &resources.schedule_group,
            TimerTarget {
                queue_arn: resources.worker_events_queue_arn.clone(),
                role_arn: resources.scheduler_role_arn.clone(),
                dead_letter_arn: resources.scheduler_dlq_arn.clone(),
            },
        );
        let notify = Arc::new(notifications(&config, sdk)?);
        let pipeline = Arc::new(Pipeline {
            config: Arc::new(config),
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &resources.table,
            )),
            queue: Arc::new(queue),
            timers: Arc::new(timers),
            graph: directory.as_ref().map(|d| d.graph.clone()),
            lookups: DirectoryLookups::PerWorker,
            clock,
            hr,
            notify,
        });
        // The Function URL is open to anyone: /healthz says only ok or unavailable.
        let webhooks = hrsync_pipeline::webhooks::router(
            Arc::clone(&pipeline),
            Arc::new(|_outcome| {}),
            hrsync_pipeline::webhooks::Health::Public,
        );
        Ok(Self {
            pipeline,
            webhooks,
            settings: RunnerSettings {
                max_attempts: hrsync_aws::queue::TEMPLATE_MAX_RECEIVE_COUNT,
                ..RunnerSettings::default()
            },
            _directory: directory,
        })
    }
}

/// The `[[notify]]` targets the AWS runtime sends to: SNS topics and SES, through the function's
/// role (no secret). Chat webhooks and SMTP are left out with a warning: any function can
/// dead-letter a worker, so every function's role would have to read their secrets; subscribe
/// a chat or a mailbox to an SNS topic instead.
fn notifications(
    config: &hrsync_core::Config,
    sdk: &aws_config::SdkConfig,
) -> Result<hrsync_pipeline::Notifications, SettingsError> {
    let build = |key: &str, target: &hrsync_core::config::NotifyTarget| {
        hrsync_aws::notify::notifier(sdk, key, target)
    };
    hrsync_pipeline::Notifications::from_config(config, &build).map_err(SettingsError)
}

/// The HR connectors over the secrets fetched at start.
fn connectors(
    config: &hrsync_core::Config,
    webhooks: Webhooks,
    resolve: hrsync_hr::sources::Resolve<'_>,
) -> Result<Connectors, SettingsError> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| SettingsError(format!("cannot build the HTTP client: {e}")))?;
    Connectors::from_config(&config.sources, webhooks, resolve, &http)
        .map_err(|e| SettingsError(e.to_string()))
}

fn queue_urls(resources: &Resources) -> BTreeMap<QueueName, QueueUrls> {
    let urls = [
        &resources.hr_events_queue_url,
        &resources.worker_events_queue_url,
        &resources.directory_queue_url,
        &resources.writeback_queue_url,
    ];
    QueueName::ALL
        .into_iter()
        .zip(urls.into_iter().zip(&resources.dead_letter_queue_urls))
        .map(|(queue, (url, dead_letter_url))| {
            (
                queue,
                QueueUrls {
                    url: url.clone(),
                    dead_letter_url: dead_letter_url.clone(),
                },
            )
        })
        .collect()
}
