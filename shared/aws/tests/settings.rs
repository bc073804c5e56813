//! What a Lambda container reads at start, against moto: the config from SSM, every secret the
//! config references from SSM (SecureString) and Secrets Manager, and the resource names from
//! the environment.

mod moto;
/// Secretless Graph access (STS web identity tokens), in this binary: each test binary links
/// the AWS SDK.
mod sts;

use std::collections::HashMap;

use aws_sdk_ssm::types::ParameterType;
use hrsync_aws::settings::{Resources, Secrets, load_config};
use hrsync_core::config::{SecretRef, SecretUse};
use moto::Moto;

const CONFIG: &str = r#"[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example"]

[source.bamboo]
kind = "bamboohr"
base_url = "https://acme.bamboohr.com/api/v1"
api_key = { ssm = "/hrsync/hr-api/bamboo" }
webhook_secret = { secret = "hrsync/webhook/bamboo" }
"#;

/// What the intake function uses: the webhook secrets and the HR API credentials.
const INTAKE: &[SecretUse] = &[SecretUse::Webhook, SecretUse::HrApi];

fn environment(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        "HRSYNC_TABLE",
        "HRSYNC_HR_EVENTS_QUEUE_URL",
        "HRSYNC_WORKER_EVENTS_QUEUE_URL",
        "HRSYNC_DIRECTORY_QUEUE_URL",
        "HRSYNC_WRITEBACK_QUEUE_URL",
        "HRSYNC_HR_EVENTS_DEAD_LETTER_QUEUE_URL",
        "HRSYNC_WORKER_EVENTS_DEAD_LETTER_QUEUE_URL",
        "HRSYNC_DIRECTORY_DEAD_LETTER_QUEUE_URL",
        "HRSYNC_WRITEBACK_DEAD_LETTER_QUEUE_URL",
        "HRSYNC_WORKER_EVENTS_QUEUE_ARN",
        "HRSYNC_SCHEDULE_GROUP",
        "HRSYNC_SCHEDULER_ROLE_ARN",
        "HRSYNC_SCHEDULER_DLQ_ARN",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), format!("value-of-{name}")))
    .collect();
    for (name, value) in extra {
        env.insert((*name).to_owned(), (*value).to_owned());
    }
    env
}

#[test]
fn resources_come_from_the_environment_and_a_missing_one_is_named() {
    let env = environment(&[("HRSYNC_CONFIG_PARAMETER", "/hrsync/config")]);
    let resources = Resources::from_lookup(|name| env.get(name).cloned()).expect("complete");
    assert_eq!(resources.table, "value-of-HRSYNC_TABLE");
    assert_eq!(
        resources.dead_letter_queue_urls[3],
        "value-of-HRSYNC_WRITEBACK_DEAD_LETTER_QUEUE_URL"
    );
    assert_eq!(
        resources.config_parameter.as_deref(),
        Some("/hrsync/config")
    );

    let mut missing = env.clone();
    missing.remove("HRSYNC_SCHEDULE_GROUP");
    let error = Resources::from_lookup(|name| missing.get(name).cloned()).unwrap_err();
    assert!(
        error.0.contains("HRSYNC_SCHEDULE_GROUP") && error.0.contains("infra/README.md"),
        "{error}"
    );

    let no_config = environment(&[]);
    let error = Resources::from_lookup(|name| no_config.get(name).cloned()).unwrap_err();
    assert!(error.0.contains("HRSYNC_CONFIG_PARAMETER"), "{error}");
}

#[tokio::test]
async fn the_config_and_its_secrets_are_read_once_from_ssm_and_secrets_manager() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
    ssm.put_parameter()
        .name("/hrsync/config")
        .value(CONFIG)
        .r#type(ParameterType::String)
        .send()
        .await
        .expect("put the config");
    put_secure(&ssm, "/hrsync/hr-api/bamboo", "api-key-1234").await;
    secrets_manager
        .create_secret()
        .name("hrsync/webhook/bamboo")
        .secret_string("webhook-key-5678")
        .send()
        .await
        .expect("create the webhook secret");

    let env = environment(&[("HRSYNC_CONFIG_PARAMETER", "/hrsync/config")]);
    let resources = Resources::from_lookup(|name| env.get(name).cloned()).unwrap();
    let config = load_config(&resources, &ssm).await.expect("the config");
    assert!(config.source("bamboo").is_some());

    let secrets = Secrets::fetch(&config, INTAKE, &ssm, &secrets_manager)
        .await
        .expect("the secrets");
    assert_eq!(
        secrets.resolve(&SecretRef::Ssm("/hrsync/hr-api/bamboo".into())),
        Ok("api-key-1234".to_owned())
    );
    assert_eq!(
        secrets.resolve(&SecretRef::Secret("hrsync/webhook/bamboo".into())),
        Ok("webhook-key-5678".to_owned())
    );
    let shown = format!("{secrets:?}");
    assert!(
        !shown.contains("api-key-1234") && !shown.contains("webhook-key-5678"),
        "values never reach a log: {shown}"
    );
    assert!(
        secrets
            .resolve(&SecretRef::Ssm("/hrsync/other".into()))
            .is_err(),
        "only what the config references is known"
    );
}

#[tokio::test]
async fn a_missing_parameter_or_secret_is_named() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);

    let env = environment(&[("HRSYNC_CONFIG_PARAMETER", "/hrsync/nowhere")]);
    let resources = Resources::from_lookup(|name| env.get(name).cloned()).unwrap();
    let error = load_config(&resources, &ssm).await.unwrap_err();
    assert!(error.0.contains("/hrsync/nowhere"), "{error}");

    let config = hrsync_core::Config::parse(CONFIG, "hrsync.toml").unwrap();
    put_secure(&ssm, "/hrsync/hr-api/bamboo", "api-key-1234").await;
    let error = Secrets::fetch(&config, INTAKE, &ssm, &secrets_manager)
        .await
        .unwrap_err();
    assert!(error.0.contains("hrsync/webhook/bamboo"), "{error}");
}

/// Finding 8 of the security review: a function reads only the secrets of its own stage, so
/// one whose role may not read another stage's secrets still starts, and a missing secret
/// of its own says how the template expects it to be named.
#[tokio::test]
async fn only_the_secrets_of_the_uses_asked_for_are_read() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
    let config = hrsync_core::Config::parse(
        &format!(
            "{CONFIG}\n[directory]\nkind = \"graph\"\ntenant_id = \"contoso\"\nclient_id = \"hrsync\"\nclient_secret = {{ ssm = \"/hrsync/directory/graph\" }}\n"
        ),
        "hrsync.toml",
    )
    .unwrap();
    put_secure(&ssm, "/hrsync/directory/graph", "graph-secret-9").await;

    // Neither the API key nor the webhook secret exists: a directory-only fetch never asks.
    let directory = Secrets::fetch(&config, &[SecretUse::Directory], &ssm, &secrets_manager)
        .await
        .expect("only the directory's secret is read");
    assert_eq!(
        directory.resolve(&SecretRef::Ssm("/hrsync/directory/graph".into())),
        Ok("graph-secret-9".to_owned())
    );
    assert!(
        directory
            .resolve(&SecretRef::Ssm("/hrsync/hr-api/bamboo".into()))
            .is_err()
    );

    put_secure(&ssm, "/hrsync/hr-api/bamboo", "api-key-1234").await;
    let api = Secrets::fetch(&config, &[SecretUse::HrApi], &ssm, &secrets_manager)
        .await
        .expect("the API key alone: the webhook secret is not asked for");
    assert!(
        api.resolve(&SecretRef::Ssm("/hrsync/directory/graph".into()))
            .is_err(),
        "the directory's secret is not read for the HR API"
    );

    let error = Secrets::fetch(&config, INTAKE, &ssm, &secrets_manager)
        .await
        .unwrap_err();
    assert!(
        error.0.contains("hrsync/webhook/bamboo") && error.0.contains("hrsync/webhook/..."),
        "names the secret and where the template lets this function read: {error}"
    );
}

/// Puts a SecureString parameter.
async fn put_secure(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {name}: {e}"));
}

/// `[[notify]]` on AWS: a message published to an SNS topic reaches its subscribers (an SQS
/// queue here, as an operator's subscription would), and one sent through SES v2 is sent from
/// a verified identity only, as SES does.
#[tokio::test]
async fn notifications_reach_an_sns_topics_subscribers_and_go_out_through_ses() {
    use aws_sdk_sqs::types::QueueAttributeName;
    use hrsync_aws::notify::{SesNotifier, SnsNotifier};
    use hrsync_pipeline::notify::{Message, Notifier};

    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let message = Message {
        subject: "hrsync: A disable is held by the breaker for a human (hr:71, Zoë Wilson)".into(),
        text: "hrsync: A disable is held by the breaker for a human\nWho: hr:71, Zoë Wilson\nWhy: more than 1 disables within an hour\nRun: hrsync holds approve 'hr:71#disable'\n".into(),
    };

    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name("hrsync-notify")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name("it-ops")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .unwrap();
    SnsNotifier::new(sns, &topic).send(&message).await.unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1, "{received:?}");
    let envelope: serde_json::Value = serde_json::from_str(received[0].body().unwrap()).unwrap();
    assert_eq!(envelope["Message"], message.text.as_str());
    assert_eq!(
        envelope["Subject"],
        "hrsync: A disable is held by the breaker for a human (hr:71, Zo? Wilson)",
        "SNS takes an ASCII subject"
    );

    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let notifier = SesNotifier::new(
        ses.clone(),
        "hrsync@acme.example",
        &["it-ops@acme.example".to_owned()],
    );
    let refused = notifier.send(&message).await.unwrap_err();
    assert!(refused.contains("not verified"), "{refused}");
    ses.create_email_identity()
        .email_identity("acme.example")
        .send()
        .await
        .unwrap();
    notifier.send(&message).await.unwrap();
    let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", moto.endpoint))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent = data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["source"], "hrsync@acme.example");
    assert_eq!(sent[0]["subject"], message.subject.as_str());
    assert_eq!(sent[0]["body"], message.text.as_str());
    assert_eq!(
        sent[0]["destinations"]["ToAddresses"],
        serde_json::json!(["it-ops@acme.example"])
    );
}
