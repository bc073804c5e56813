//! Builds the connector of each configured source, resolving its secrets once. Secrets are
//! held in `secrecy`'s types from here on: their `Debug` is redacted and their memory
//! zeroed when dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::connector::{Connector, Unauthorized};
use crate::{bamboohr, hibob, keka, personio, scim, signed_json};

/// A source that cannot be set up, naming the config key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source.{name}{}: {problem}", key.as_ref().map(|k| format!(".{k}")).unwrap_or_default())]
pub struct SetupError {
    pub name: String,
    pub key: Option<String>,
    pub problem: String,
}

/// Resolves a secret reference to its value (an environment variable, SSM, Secrets Manager).
pub type Resolve<'a> = &'a (dyn Fn(&SecretRef) -> Result<String, String> + Sync);

/// Whether the connectors check deliveries. Where no webhook arrives (the writeback
/// function), the webhook secrets are neither read nor held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhooks {
    Taken,
    NotTaken,
}

/// What a vendor connector is built from.
#[derive(Clone, Copy)]
pub struct Setup<'a> {
    pub name: &'a str,
    pub config: &'a SourceConfig,
    pub resolve: Resolve<'a>,
    pub http: &'a reqwest::Client,
    pub webhooks: Webhooks,
}

/// A source's webhook secret, or nothing where no webhook is taken: then every delivery
/// is refused.
pub struct WebhookSecret(Option<SecretSlice<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "WebhookSecret([REDACTED])",
            None => "WebhookSecret(not held)",
        })
    }
}

impl WebhookSecret {
    /// The secret deliveries are checked with.
    pub fn bytes(&self) -> Result<&[u8], Unauthorized> {
        self.0
            .as_ref()
            .map(|secret| secret.expose_secret())
            .ok_or_else(|| Unauthorized("this runtime takes no webhooks".into()))
    }
}

impl std::fmt::Debug for Setup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("name", &self.name)
            .field("kind", &self.config.kind)
            .finish_non_exhaustive()
    }
}

impl Setup<'_> {
    pub fn error(&self, key: Option<&str>, problem: impl Into<String>) -> SetupError {
        SetupError {
            name: self.name.to_owned(),
            key: key.map(str::to_owned),
            problem: problem.into(),
        }
    }

    /// The value of a required secret key (`api_key`, `token`, `webhook_secret`...), in a
    /// [`SecretString`]: its `Debug` is redacted, so no connector's `Debug` shows a secret.
    pub fn secret(&self, key: &str) -> Result<SecretString, SetupError> {
        let reference = match key {
            "webhook_secret" => self.config.webhook_secret.as_ref(),
            other => self.config.credential(other),
        }
        .ok_or_else(|| self.error(Some(key), "is required"))?;
        let value = (self.resolve)(reference).map_err(|e| self.error(Some(key), e))?;
        if value.is_empty() {
            return Err(self.error(Some(key), "resolves to an empty value"));
        }
        Ok(value.into())
    }

    /// The `webhook_secret` (a key or token compared with what arrives), required where
    /// webhooks are taken and never read elsewhere.
    pub fn webhook_secret(&self) -> Result<WebhookSecret, SetupError> {
        if self.webhooks == Webhooks::NotTaken {
            return Ok(WebhookSecret(None));
        }
        let value = self.secret("webhook_secret")?;
        Ok(WebhookSecret(Some(
            value.expose_secret().as_bytes().to_vec().into(),
        )))
    }

    /// The vendor's API root, without a trailing `/`.
    pub fn base_url(&self) -> Result<&str, SetupError> {
        self.config
            .base_url
            .as_deref()
            .map(|url| url.trim_end_matches('/'))
            .ok_or_else(|| self.error(Some("base_url"), "is required"))
    }

    pub fn writes_back(&self) -> bool {
        self.config.writes_back()
    }
}

/// The connectors of every source that takes webhooks, by source name.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    ready: BTreeMap<String, Arc<dyn Connector>>,
    /// Sources this run does without, and why (see [`Connectors::as_far_as_possible`]).
    left_out: BTreeMap<String, String>,
}

impl Connectors {
    /// Builds a connector for every source but the csv ones.
    pub fn from_config<'a>(
        sources: impl IntoIterator<Item = (&'a String, &'a SourceConfig)>,
        webhooks: Webhooks,
        resolve: Resolve<'_>,
        http: &reqwest::Client,
    ) -> Result<Self, SetupError> {
        let mut connectors = Self::default();
        for (name, config) in sources {
            if let Some(connector) = connect(Setup {
                name,
                config,
                resolve,
                http,
                webhooks,
            })? {
                connectors.insert(connector);
            }
        }
        Ok(connectors)
    }

    /// Like [`Connectors::from_config`], for a run that works for one source (`hrsync import`)
    /// and need not hold the others' credentials: a source that cannot be set up here (its
    /// secret is not available) is left out, with the reason ([`Connectors::left_out`]).
    pub fn as_far_as_possible<'a>(
        sources: impl IntoIterator<Item = (&'a String, &'a SourceConfig)>,
        webhooks: Webhooks,
        resolve: Resolve<'_>,
        http: &reqwest::Client,
    ) -> Self {
        let mut connectors = Self::default();
        for (name, config) in sources {
            let one = Self::from_config([(name, config)], webhooks, resolve, http);
            match one {
                Ok(one) => connectors.ready.extend(one.ready),
                Err(error) => {
                    connectors.left_out.insert(name.clone(), error.to_string());
                }
            }
        }
        connectors
    }

    pub fn insert(&mut self, connector: Arc<dyn Connector>) {
        self.left_out.remove(connector.source());
        self.ready.insert(connector.source().to_owned(), connector);
    }

    pub fn get(&self, source: &str) -> Option<&Arc<dyn Connector>> {
        self.ready.get(source)
    }

    /// Why this run does without `source`'s connector, if it does.
    pub fn left_out(&self, source: &str) -> Option<&str> {
        self.left_out.get(source).map(String::as_str)
    }

    /// The sources this run does without, and why.
    pub fn all_left_out(&self) -> impl Iterator<Item = (&str, &str)> {
        self.left_out
            .iter()
            .map(|(s, why)| (s.as_str(), why.as_str()))
    }
}

/// The connector of one source; `None` for a csv source (read from files, not delivered).
pub fn connect(setup: Setup<'_>) -> Result<Option<Arc<dyn Connector>>, SetupError> {
    Ok(Some(match setup.config.kind {
        SourceKind::Csv => return Ok(None),
        SourceKind::SignedJson => Arc::new(signed_json::SignedJson::new(setup)?),
        SourceKind::BambooHr => Arc::new(bamboohr::BambooHr::new(setup)?),
        SourceKind::HiBob => Arc::new(hibob::HiBob::new(setup)?),
        SourceKind::Personio => Arc::new(personio::Personio::new(setup)?),
        SourceKind::Keka => Arc::new(keka::Keka::new(setup)?),
        SourceKind::Scim => Arc::new(scim::Scim::new(setup)?),
    }))
}
