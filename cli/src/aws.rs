//! The operator commands against a deployed stack (`[runtime] kind = "aws"`): the same
//! [`Operations`] as on the local runtime, over the stack's DynamoDB table, SQS queues and
//! Scheduler group, with the caller's own AWS credentials and region (the SDK's standard
//! chain; `AWS_ENDPOINT_URL` is honoured, so a local AWS emulator works too). The work an
//! acting command queues is done by the stack's functions, as for a running `hrsync serve`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, bail};
use hrsync_aws::queue::{QueueUrls, SqsQueue};
use hrsync_aws::store::DynamoStore;
use hrsync_aws::timers::SchedulerTimers;
use hrsync_core::Config;
use hrsync_core::config::RuntimeConfig;
use hrsync_pipeline::operations::Operations;
use hrsync_pipeline::ports::QueueName;

/// The stack's resources, as the operator commands use them.
pub struct AwsRuntime {
    pub config: Arc<Config>,
    pub store: DynamoStore,
    pub queue: SqsQueue,
    pub timers: SchedulerTimers,
    /// What the resources were found from, for messages (`stack hrsync`, `the config`).
    pub described: String,
}

/// The names the commands need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Names {
    table: String,
    queues: BTreeMap<QueueName, QueueUrls>,
    schedule_group: String,
}

impl AwsRuntime {
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let sdk = aws_config::load_from_env().await;
        let runtime = &config.runtime;
        let (names, described) = match &runtime.stack {
            Some(stack) => (
                from_stack(&aws_sdk_cloudformation::Client::new(&sdk), stack).await?,
                format!("stack {stack}"),
            ),
            None => (
                from_config(&aws_sdk_sqs::Client::new(&sdk), runtime).await?,
                "[runtime] of the config".to_owned(),
            ),
        };
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), names.queues)?;
        Ok(Self {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), names.table),
            queue,
            timers: SchedulerTimers::reading(
                aws_sdk_scheduler::Client::new(&sdk),
                names.schedule_group,
            ),
            config: Arc::new(config),
            described,
        })
    }

    pub fn operations(&self) -> Operations<'_, DynamoStore, SqsQueue, SchedulerTimers> {
        Operations {
            config: &self.config,
            store: &self.store,
            queue: &self.queue,
            timers: &self.timers,
        }
    }
}

/// The stack outputs naming each resource (`infra/template.yaml`'s `Outputs`).
const TABLE_OUTPUT: &str = "StateTableName";
const SCHEDULE_GROUP_OUTPUT: &str = "TimerScheduleGroupName";

fn queue_outputs(queue: QueueName) -> (&'static str, &'static str) {
    match queue {
        QueueName::HrEvents => ("HrEventsQueueUrl", "HrEventsDeadLetterQueueUrl"),
        QueueName::WorkerEvents => ("WorkerEventsQueueUrl", "WorkerEventsDeadLetterQueueUrl"),
        QueueName::Directory => ("DirectoryQueueUrl", "DirectoryDeadLetterQueueUrl"),
        QueueName::Writeback => ("WritebackQueueUrl", "WritebackDeadLetterQueueUrl"),
    }
}

async fn from_stack(client: &aws_sdk_cloudformation::Client, stack: &str) -> anyhow::Result<Names> {
    let answer = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the outputs of stack {stack}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(&e)
            )
        })
        .context(
            "check [runtime] stack, the region (AWS_REGION) and that your AWS credentials may call cloudformation:DescribeStacks",
        )?;
    let Some(found) = answer.stacks().first() else {
        bail!("no stack {stack} in this account and region");
    };
    let outputs: HashMap<&str, &str> = found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
        .collect();
    let output = |key: &str| {
        outputs
            .get(key)
            .map(|value| (*value).to_owned())
            .with_context(|| {
                format!("stack {stack} has no output {key}: is it hrsync's infra/template.yaml?")
            })
    };
    let mut queues = BTreeMap::new();
    for queue in QueueName::ALL {
        let (url, dead) = queue_outputs(queue);
        queues.insert(
            queue,
            QueueUrls {
                url: output(url)?,
                dead_letter_url: output(dead)?,
            },
        );
    }
    Ok(Names {
        table: output(TABLE_OUTPUT)?,
        queues,
        schedule_group: output(SCHEDULE_GROUP_OUTPUT)?,
    })
}

/// The names given in `[runtime]`; each queue's DLQ is the target of its redrive policy.
async fn from_config(
    client: &aws_sdk_sqs::Client,
    runtime: &RuntimeConfig,
) -> anyhow::Result<Names> {
    let (Some(table), Some(given), Some(schedule_group)) =
        (&runtime.table, &runtime.queues, &runtime.schedule_group)
    else {
        bail!("[runtime] kind = \"aws\" needs stack, or table, queues and schedule_group");
    };
    let mut queues = BTreeMap::new();
    for queue in QueueName::ALL {
        let url = given
            .get(queue.as_str())
            .with_context(|| format!("[runtime] queues has no {queue}"))?;
        queues.insert(
            queue,
            QueueUrls {
                url: url.clone(),
                dead_letter_url: dead_letter_url(client, queue, url).await?,
            },
        );
    }
    Ok(Names {
        table: table.clone(),
        queues,
        schedule_group: schedule_group.clone(),
    })
}

async fn dead_letter_url(
    client: &aws_sdk_sqs::Client,
    queue: QueueName,
    url: &str,
) -> anyhow::Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the {queue} queue at {url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?;
    let policy = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .with_context(|| {
            format!("the {queue} queue at {url} has no redrive policy: is it hrsync's queue?")
        })?;
    let policy: serde_json::Value = serde_json::from_str(policy)
        .with_context(|| format!("the redrive policy of the {queue} queue"))?;
    let arn = policy["deadLetterTargetArn"]
        .as_str()
        .with_context(|| format!("the redrive policy of the {queue} queue names no DLQ"))?;
    // arn:aws:sqs:REGION:ACCOUNT:NAME
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let found = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot find the {queue} queue's DLQ {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?;
    found
        .queue_url()
        .map(str::to_owned)
        .with_context(|| format!("SQS gave no URL for {name}"))
}
