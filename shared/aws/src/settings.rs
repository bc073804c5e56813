//! What a Lambda container reads once, at its start: the names of its AWS resources (the
//! `HRSYNC_*` environment variables the SAM template sets, `infra/README.md`), the config
//! (a file bundled with the function, or an SSM parameter), and every secret the config
//! references (SSM SecureString or Secrets Manager), fetched once and kept for the
//! container's life.

use std::collections::BTreeMap;

use hrsync_core::Config;
use hrsync_core::config::{SecretRef, SecretUse};

/// A setting that cannot be read; the message names the variable, parameter or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// The AWS resources of one deployment, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub table: String,
    pub hr_events_queue_url: String,
    pub worker_events_queue_url: String,
    pub directory_queue_url: String,
    pub writeback_queue_url: String,
    /// The dead-letter queue of each queue, in `QueueName::ALL` order.
    pub dead_letter_queue_urls: [String; 4],
    pub worker_events_queue_arn: String,
    pub schedule_group: String,
    pub scheduler_role_arn: String,
    pub scheduler_dlq_arn: String,
    /// The SSM parameter that holds `hrsync.toml` (unless `HRSYNC_CONFIG_FILE` names a
    /// bundled file).
    pub config_parameter: Option<String>,
    pub config_file: Option<String>,
}

impl Resources {
    /// From the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any lookup of variable names (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let required = |name: &str| {
            get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                SettingsError(format!(
                    "the environment variable {name} is not set (the SAM template sets it: infra/README.md)"
                ))
            })
        };
        let config_parameter = get("HRSYNC_CONFIG_PARAMETER").filter(|v| !v.is_empty());
        let config_file = get("HRSYNC_CONFIG_FILE").filter(|v| !v.is_empty());
        if config_parameter.is_none() && config_file.is_none() {
            return Err(SettingsError(
                "neither HRSYNC_CONFIG_FILE (a config bundled with the function) nor HRSYNC_CONFIG_PARAMETER (an SSM parameter holding it) is set".into(),
            ));
        }
        Ok(Self {
            table: required("HRSYNC_TABLE")?,
            hr_events_queue_url: required("HRSYNC_HR_EVENTS_QUEUE_URL")?,
            worker_events_queue_url: required("HRSYNC_WORKER_EVENTS_QUEUE_URL")?,
            directory_queue_url: required("HRSYNC_DIRECTORY_QUEUE_URL")?,
            writeback_queue_url: required("HRSYNC_WRITEBACK_QUEUE_URL")?,
            dead_letter_queue_urls: [
                required("HRSYNC_HR_EVENTS_DEAD_LETTER_QUEUE_URL")?,
                required("HRSYNC_WORKER_EVENTS_DEAD_LETTER_QUEUE_URL")?,
                required("HRSYNC_DIRECTORY_DEAD_LETTER_QUEUE_URL")?,
                required("HRSYNC_WRITEBACK_DEAD_LETTER_QUEUE_URL")?,
            ],
            worker_events_queue_arn: required("HRSYNC_WORKER_EVENTS_QUEUE_ARN")?,
            schedule_group: required("HRSYNC_SCHEDULE_GROUP")?,
            scheduler_role_arn: required("HRSYNC_SCHEDULER_ROLE_ARN")?,
            scheduler_dlq_arn: required("HRSYNC_SCHEDULER_DLQ_ARN")?,
            config_parameter,
            config_file,
        })
    }
}

/// The config: the bundled file when `config_file` is set, else the SSM parameter
/// (decrypted, so it may be a SecureString).
pub async fn load_config(
    resources: &Resources,
    ssm: &aws_sdk_ssm::Client,
) -> Result<Config, SettingsError> {
    if let Some(path) = &resources.config_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SettingsError(format!("cannot read the bundled config {path}: {e}")))?;
        return Config::parse(&text, path).map_err(|e| SettingsError(e.to_string()));
    }
    let name = resources.config_parameter.as_deref().unwrap_or_default();
    let text = ssm_parameter(ssm, name).await?;
    Config::parse(&text, &format!("ssm:{name}")).map_err(|e| SettingsError(e.to_string()))
}

/// The secrets a function uses, fetched once: of the config's references (the directory's
/// client secret or certificate, the sources' webhook secrets and API credentials), those
/// whose use the function has. The others are never read: the template does not let the
/// function read them.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<SecretRef, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values never reach a log.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    pub async fn fetch(
        config: &Config,
        uses: &[SecretUse],
        ssm: &aws_sdk_ssm::Client,
        secrets_manager: &aws_sdk_secretsmanager::Client,
    ) -> Result<Self, SettingsError> {
        let mut values = BTreeMap::new();
        for (using, reference) in config.secret_refs() {
            if !uses.contains(&using) || values.contains_key(reference) {
                continue;
            }
            let value = match reference {
                SecretRef::Env(name) => std::env::var(name).map_err(|_| {
                    SettingsError(format!(
                        "the secret reference {{ env = \"{name}\" }} names an unset environment variable"
                    ))
                }),
                SecretRef::Ssm(name) => ssm_parameter(ssm, name).await,
                SecretRef::Secret(id) => secret_value(secrets_manager, id).await,
            }
            .map_err(|SettingsError(problem)| {
                let folder = using.folder();
                SettingsError(format!(
                    "{problem} (on AWS a function may read only the secrets of its own stage; this one's are named hrsync/{folder}/... in Secrets Manager or <SsmParameterPath>/{folder}/... in SSM: infra/README.md)"
                ))
            })?;
            values.insert(reference.clone(), value);
        }
        Ok(Self(values))
    }

    /// The value of a reference fetched at start (the `resolve` the connectors and the
    /// directory are built with).
    pub fn resolve(&self, reference: &SecretRef) -> Result<String, String> {
        self.0
            .get(reference)
            .cloned()
            .ok_or_else(|| format!("the secret {reference:?} was not fetched at start"))
    }
}

async fn ssm_parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<String, SettingsError> {
    let answer = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            SettingsError(format!(
                "cannot read the SSM parameter {name}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(&e)
            ))
        })?;
    answer
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| SettingsError(format!("the SSM parameter {name} has no value")))
}

async fn secret_value(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<String, SettingsError> {
    let answer = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            SettingsError(format!(
                "cannot read the secret {id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    answer
        .secret_string
        .ok_or_else(|| SettingsError(format!("the secret {id} has no string value")))
}
