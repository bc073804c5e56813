//! What a Lambda container reads at start, against moto: the config from SSM, every secret the
//! config references from SSM (SecureString) and Secrets Manager, and the resource names from
//! the environment.

mod moto;

use std::collections::HashMap;

use aws_sdk_ssm::types::ParameterType;
use hrsync_aws::settings::{Resources, Secrets, load_config};
use hrsync_core::config::SecretRef;
use moto::Moto;

const CONFIG: &str = r#"[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example"]

[source.bamboo]
kind = "bamboohr"
base_url = "https://acme.bamboohr.com/api/v1"
api_key = { ssm = "/hrsync/bamboo-api-key" }
webhook_secret = { secret = "hrsync/bamboo-webhook" }
"#;

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
    ssm.put_parameter()
        .name("/hrsync/bamboo-api-key")
        .value("api-key-1234")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("put the api key");
    secrets_manager
        .create_secret()
        .name("hrsync/bamboo-webhook")
        .secret_string("webhook-key-5678")
        .send()
        .await
        .expect("create the webhook secret");

    let env = environment(&[("HRSYNC_CONFIG_PARAMETER", "/hrsync/config")]);
    let resources = Resources::from_lookup(|name| env.get(name).cloned()).unwrap();
    let config = load_config(&resources, &ssm).await.expect("the config");
    assert!(config.source("bamboo").is_some());

    let secrets = Secrets::fetch(&config, &ssm, &secrets_manager)
        .await
        .expect("the secrets");
    assert_eq!(
        secrets.resolve(&SecretRef::Ssm("/hrsync/bamboo-api-key".into())),
        Ok("api-key-1234".to_owned())
    );
    assert_eq!(
        secrets.resolve(&SecretRef::Secret("hrsync/bamboo-webhook".into())),
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
    ssm.put_parameter()
        .name("/hrsync/bamboo-api-key")
        .value("api-key-1234")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let error = Secrets::fetch(&config, &ssm, &secrets_manager)
        .await
        .unwrap_err();
    assert!(error.0.contains("hrsync/bamboo-webhook"), "{error}");
}
