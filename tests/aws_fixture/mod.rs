//! A deployment of hrsync's AWS resources on a fresh moto server, as `infra/template.yaml`
//! makes them (table, FIFO queues and DLQs, schedule group, secrets), with the BambooHR
//! emulator as the HR source and the sandbox as the directory; and the events Lambda sends.
//! Shared by the end-to-end tests (`tests/aws_runtime.rs`) and the cold-start benchmark
//! (`shared/lambda/examples/cold_start.rs`).

#![allow(dead_code)] // each user takes what it needs

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::types::Message;
use hmac::{Hmac, Mac};
use hrsync_aws::queue::{QueueUrls, create_queues, queue_arn};
use hrsync_aws::store::create_table;
use hrsync_aws::timers::create_schedule_group;
use hrsync_hr_emulators::{Emulator, bamboohr};
use hrsync_pipeline::ports::QueueName;
use hrsync_sandbox::{RunningSandbox, Sandbox, SandboxConfig, SeedGroup, SeedSku};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::moto::Moto;

pub mod functions;

pub const SECRET: &str = "bamboo-private-key-7c1e";
/// Where the secrets are, named as the template lets each function read them: the webhook
/// secret for intake, the API key for intake and writeback (`infra/README.md`).
pub const WEBHOOK_PARAMETER: &str = "/hrsync/webhook/bamboo";
pub const API_KEY_SECRET: &str = "hrsync/hr-api/bamboo";
pub const GROUP: &str = "hrsync-timers";

pub struct Deployment {
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    pub sdk: aws_config::SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub urls: BTreeMap<QueueName, QueueUrls>,
    /// The `HRSYNC_*` variables the SAM template gives the functions.
    pub env: HashMap<String, String>,
    pub sandbox: RunningSandbox,
    pub hr: Emulator,
}

/// A file of the repository, from whichever package's tests include this module.
pub fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(path))
        .find(|candidate| candidate.exists())
        .unwrap_or_else(|| panic!("{path} in an ancestor of {}", env!("CARGO_MANIFEST_DIR")))
}

/// The example config with a BambooHR source (secrets in SSM SecureString) and the sandbox
/// at `directory_url`.
pub fn config(hr_url: &str, directory_url: &str, extra: &str) -> String {
    let example =
        std::fs::read_to_string(repo_file("examples/hrsync.toml")).expect("examples/hrsync.toml");
    let start = example.find("[source.hr]\n").expect("a [source.hr] table");
    let end = start + example[start..].find("\n# ----").expect("a rule after it");
    let source = format!(
        "[source.hr]\nkind = \"bamboohr\"\nbase_url = \"{hr_url}\"\nwebhook_secret = {{ ssm = \"/hrsync/webhook/bamboo\" }}\napi_key = {{ secret = \"hrsync/hr-api/bamboo\" }}\n{extra}"
    );
    let config = format!("{}{source}{}", &example[..start], &example[end..]);
    // BambooHR's employment statuses are not the example's worker types.
    config
        .replace(
            "scope = \"worker_type in ['Employee', 'Contractor']\"",
            "# scope: everyone",
        )
        .replace(
            "[directory]\nkind = \"sandbox\"\n",
            &format!("[directory]\nkind = \"sandbox\"\nurl = \"{directory_url}\"\n"),
        )
}

/// The example company's tenant: every group and licence its access rules grant exists.
pub fn example_tenant() -> SandboxConfig {
    let path = repo_file("examples/hrsync.toml");
    let text = std::fs::read_to_string(&path).expect("examples/hrsync.toml");
    let example = hrsync_core::Config::parse(&text, "examples/hrsync.toml").expect("it parses");
    SandboxConfig {
        groups: example
            .access_groups()
            .into_iter()
            .map(|id| SeedGroup {
                id: id.to_owned(),
                display_name: id.to_owned(),
                licenses: Vec::new(),
            })
            .collect(),
        skus: example
            .access_licenses()
            .into_iter()
            .map(|id| SeedSku {
                id: id.to_owned(),
                part_number: "SANDBOX".to_owned(),
                units: 10_000,
            })
            .collect(),
        ..SandboxConfig::default()
    }
}

impl Deployment {
    /// `extra`: more lines for the source's table.
    pub async fn start(extra: &str) -> Self {
        Self::start_in(extra, example_tenant()).await
    }

    /// In a sandbox tenant of the caller's.
    pub async fn start_in(extra: &str, tenant: SandboxConfig) -> Self {
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let scheduler = aws_sdk_scheduler::Client::new(&sdk);
        create_table(&aws_sdk_dynamodb::Client::new(&sdk), "hrsync")
            .await
            .expect("table");
        let urls = create_queues(&sqs, "hrsync-").await.expect("queues");
        let schedule_dlq = sqs
            .create_queue()
            .queue_name("hrsync-schedule-dlq")
            .send()
            .await
            .expect("schedule DLQ")
            .queue_url
            .expect("a URL");
        create_schedule_group(&scheduler, GROUP)
            .await
            .expect("group");
        aws_sdk_ssm::Client::new(&sdk)
            .put_parameter()
            .name(WEBHOOK_PARAMETER)
            .value(SECRET)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("SSM parameter");
        aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(API_KEY_SECRET)
            .secret_string(bamboohr::API_KEY)
            .send()
            .await
            .expect("secret");

        let hr = Emulator::start(bamboohr::router).await;
        let sandbox = Sandbox::start(tenant).await.expect("sandbox");
        let dir = tempfile::tempdir().expect("temp dir");
        let config_file = dir.path().join("hrsync.toml");
        std::fs::write(&config_file, config(hr.base_url(), &sandbox.url, extra)).expect("config");

        let worker_events_arn = queue_arn(&sqs, &urls[&QueueName::WorkerEvents].url)
            .await
            .expect("ARN");
        let schedule_dlq_arn = queue_arn(&sqs, &schedule_dlq).await.expect("ARN");
        let mut env: HashMap<String, String> = HashMap::from([
            ("HRSYNC_TABLE".to_owned(), "hrsync".to_owned()),
            (
                "HRSYNC_WORKER_EVENTS_QUEUE_ARN".to_owned(),
                worker_events_arn,
            ),
            ("HRSYNC_SCHEDULE_GROUP".to_owned(), GROUP.to_owned()),
            (
                "HRSYNC_SCHEDULER_ROLE_ARN".to_owned(),
                "arn:aws:iam::123456789012:role/hrsync-TimerSchedulerRole".to_owned(),
            ),
            ("HRSYNC_SCHEDULER_DLQ_ARN".to_owned(), schedule_dlq_arn),
            (
                "HRSYNC_CONFIG_FILE".to_owned(),
                config_file.to_string_lossy().into_owned(),
            ),
        ]);
        let variables = [
            ("HR_EVENTS", QueueName::HrEvents),
            ("WORKER_EVENTS", QueueName::WorkerEvents),
            ("DIRECTORY", QueueName::Directory),
            ("WRITEBACK", QueueName::Writeback),
        ];
        for (stem, queue) in variables {
            env.insert(format!("HRSYNC_{stem}_QUEUE_URL"), urls[&queue].url.clone());
            env.insert(
                format!("HRSYNC_{stem}_DEAD_LETTER_QUEUE_URL"),
                urls[&queue].dead_letter_url.clone(),
            );
        }
        Self {
            moto,
            dir,
            sdk,
            sqs,
            scheduler,
            urls,
            env,
            sandbox,
            hr,
        }
    }

    /// Receives up to `max` messages of `queue` as an event source mapping would.
    pub async fn receive(&self, queue: QueueName, max: i32, visibility: i32) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.urls[&queue].url)
            .max_number_of_messages(max)
            .visibility_timeout(visibility)
            .wait_time_seconds(0)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default()
    }
}

/// A webhook as a Function URL hands it to intake (payload 2.0, the body base64-encoded as
/// Lambda does for a non-text content type).
pub fn webhook_event(headers: &[(&str, String)], body: &[u8]) -> Value {
    use base64::Engine;
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_lowercase(), json!(value)))
        .chain([("content-type".to_owned(), json!("application/json"))])
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/webhooks/hr",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "hrsyncintake",
            "domainName": "hrsyncintake.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "hrsyncintake",
            "http": {
                "method": "POST",
                "path": "/webhooks/hr",
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "BambooHR"
            },
            "requestId": "webhook-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_953_600_000_u64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}

/// A BambooHR event webhook for employee `id` (`stamp` makes each body distinct), signed as
/// BambooHR signs it: the headers and the body.
pub fn bamboo_webhook(
    event: &str,
    id: &str,
    stamp: &str,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let body = serde_json::to_vec(&json!({
        "type": event,
        "timestamp": stamp,
        "data": {"companyId": "1", "employeeId": id, "changedFields": []},
    }))
    .expect("JSON");
    let timestamp = Timestamp::now().as_second().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
    mac.update(&body);
    mac.update(timestamp.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    (
        vec![
            ("X-BambooHR-Timestamp", timestamp),
            ("X-BambooHR-Signature", signature),
        ],
        body,
    )
}

/// The SQS event Lambda builds from received messages.
pub fn sqs_event(queue: QueueName, messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect();
            // As Lambda shapes them: camelCase, string values only here.
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let value = json!({
                        "stringValue": v.string_value(),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v.data_type(),
                    });
                    (k.clone(), value)
                })
                .collect();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:eu-west-1:123456789012:hrsync-{queue}.fifo"),
                "awsRegion": "eu-west-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// A BambooHR employee record in Engineering, in GB.
pub fn employee(id: &str, first: &str, last: &str) -> Value {
    let mut record = bamboohr::employee(id, first, last);
    record["department"] = json!("Engineering");
    record["country"] = json!("GB");
    record
}
