//! `hrsync.toml`: the one config file. Every error names the file, the key and what was
//! expected, with the line where the TOML parser knows it.

use std::collections::BTreeMap;
use std::fmt;

use std::ops::Range;

use jiff::civil::Time;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::template::{CANONICAL_FIELDS, Engine, TemplateError};
use crate::worker::EMPLOYEE_ID_MAX_CHARS;

pub mod notify;
pub use notify::{NotifyEvent, NotifyKind, NotifyTarget, SmtpTls};

/// A config that could not be loaded: where, which key, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// Dotted key path, e.g. `lifecycle.leave_at` or `access[1].when`.
    pub key: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a secret is for. Each function of the AWS runtime is given only the kinds its own
/// stage uses (`infra/template.yaml` grants each role its kinds' names alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretUse {
    /// The directory's credential: a client secret or a certificate (a federated credential
    /// has no secret).
    Directory,
    /// A credential of an HR system's API: fetch, poll and write-back.
    HrApi,
    /// A source's webhook secret: checks deliveries.
    Webhook,
    /// A `[[notify]]` target's: a chat webhook's URL, SMTP credentials.
    Notify,
}

impl SecretUse {
    /// The folder its secrets are named under on AWS (`hrsync/<folder>/...` in Secrets
    /// Manager, `<SsmParameterPath>/<folder>/...` in SSM): the names the template grants.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Directory => "directory",
            Self::HrApi => "hr-api",
            Self::Webhook => "webhook",
            Self::Notify => "notify",
        }
    }
}

/// Where a secret comes from. Secrets are never written inline in the config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// An SSM Parameter Store name (SecureString).
    Ssm(String),
    /// A Secrets Manager ARN or name.
    Secret(String),
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Table(BTreeMap<String, String>),
            Other(de::IgnoredAny),
        }
        const EXPECTED: &str = "a secret reference such as { env = \"NAME\" }, { ssm = \"/path\" } or { secret = \"arn:...\" }; secrets are never written inline";
        let Shape::Table(table) = Shape::deserialize(deserializer)? else {
            return Err(de::Error::custom(format!("expected {EXPECTED}")));
        };
        let mut entries = table.into_iter();
        match (entries.next(), entries.next()) {
            (Some((kind, name)), None) if !name.is_empty() => match kind.as_str() {
                "env" => Ok(Self::Env(name)),
                "ssm" => Ok(Self::Ssm(name)),
                "secret" => Ok(Self::Secret(name)),
                other => Err(de::Error::custom(format!(
                    "unknown secret source `{other}`, expected {EXPECTED}"
                ))),
            },
            _ => Err(de::Error::custom(format!("expected {EXPECTED}"))),
        }
    }
}

/// A minijinja template, syntax- and name-checked as it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TemplateText(pub String);

impl<'de> Deserialize<'de> for TemplateText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Engine::default()
            .add_template("template", &text)
            .map_err(|e| de::Error::custom(format!("bad template {text:?}: {}", e.message)))?;
        Ok(Self(text))
    }
}

/// A Jinja expression that decides a rule, e.g. `department == 'Sales'`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Condition(pub String);

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Engine::default()
            .add_condition("condition", &text)
            .map_err(|e| de::Error::custom(format!("bad condition {text:?}: {}", e.message)))?;
        Ok(Self(text))
    }
}

/// An IANA time zone name that exists in the bundled tz database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ZoneName(pub String);

impl ZoneName {
    pub fn utc() -> Self {
        Self("UTC".into())
    }
}

impl<'de> Deserialize<'de> for ZoneName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        jiff::tz::TimeZone::get(&name).map_err(|_| {
            de::Error::custom(format!(
                "unknown time zone {name:?}, expected an IANA name such as \"Europe/London\""
            ))
        })?;
        Ok(Self(name))
    }
}

/// A local wall-clock time written "HH:MM" (24-hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct LocalTime(pub Time);

impl From<LocalTime> for String {
    fn from(time: LocalTime) -> Self {
        time.0.strftime("%H:%M").to_string()
    }
}

impl LocalTime {
    pub fn parse(text: &str) -> Option<Self> {
        let (hour, minute) = text.split_once(':')?;
        if hour.len() != 2 || minute.len() != 2 {
            return None;
        }
        let hour: i8 = hour.parse().ok()?;
        let minute: i8 = minute.parse().ok()?;
        Time::new(hour, minute, 0, 0).ok().map(Self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid time {text:?}, expected \"HH:MM\" (24-hour, e.g. \"17:00\")"
            ))
        })
    }
}

/// A closed set of words in the config (`kind`, `null_policy`), read with a message that lists
/// the accepted words whatever the wrong value was.
trait Keyword: Sized + 'static {
    const WORDS: &'static [(&'static str, Self)];
    const EXPECTED: &'static str;
}

fn keyword<'de, D: Deserializer<'de>, T: Keyword + Copy>(deserializer: D) -> Result<T, D::Error> {
    struct Visitor<T>(std::marker::PhantomData<T>);
    impl<T: Keyword + Copy> de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTED)
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            T::WORDS
                .iter()
                .find(|(word, _)| *word == value)
                .map(|(_, keyword)| *keyword)
                .ok_or_else(|| {
                    E::custom(format!("unknown value `{value}`, expected {}", T::EXPECTED))
                })
        }
    }
    deserializer.deserialize_str(Visitor(std::marker::PhantomData))
}

macro_rules! keyword_serde {
    ($type:ty) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                keyword(deserializer)
            }
        }
    };
}

/// A whole number that is not negative, with a message naming what it counts.
struct WholeNumber(&'static str);

impl de::Visitor<'_> for WholeNumber {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u32, E> {
        u32::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u32, E> {
        u32::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }
}

fn days<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    deserializer.deserialize_u32(WholeNumber("a whole number of days (0 or more)"))
}

fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    deserializer.deserialize_u32(WholeNumber("a whole number (0 or more)"))
}

fn optional_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    count(deserializer).map(Some)
}

fn optional_days<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    days(deserializer).map(Some)
}

/// A whole percentage from 1 to 100.
struct Percentage;

impl Percentage {
    const EXPECTED: &'static str = "a whole percentage from 1 to 100";
}

impl de::Visitor<'_> for Percentage {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::EXPECTED)
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u32, E> {
        u32::try_from(value)
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(value), &self))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u32, E> {
        u32::try_from(value)
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }
}

fn optional_percentage<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    deserializer.deserialize_u32(Percentage).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A CSV export read from a file.
    Csv,
    /// Worker records POSTed as JSON, each delivery signed with HMAC-SHA256
    /// (`hrsync_hr::signed_json`).
    SignedJson,
    /// BambooHR: event-based webhooks, the REST API with an API key.
    BambooHr,
    /// HiBob (Bob): v2 webhooks, the API with a service user.
    HiBob,
    /// Personio: v2 webhooks with a static token, the v2 API with OAuth2 client credentials.
    Personio,
    /// Keka: event-trigger webhooks with a static header, the HRIS API.
    Keka,
    /// SCIM BulkRequests as Entra's API-driven inbound provisioning takes them.
    Scim,
}

impl Keyword for SourceKind {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("csv", Self::Csv),
        ("signed-json", Self::SignedJson),
        ("bamboohr", Self::BambooHr),
        ("hibob", Self::HiBob),
        ("personio", Self::Personio),
        ("keka", Self::Keka),
        ("scim", Self::Scim),
    ];
    const EXPECTED: &'static str =
        "`csv`, `signed-json`, `bamboohr`, `hibob`, `personio`, `keka` or `scim`";
}
keyword_serde!(SourceKind);

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::SignedJson => "signed-json",
            Self::BambooHr => "bamboohr",
            Self::HiBob => "hibob",
            Self::Personio => "personio",
            Self::Keka => "keka",
            Self::Scim => "scim",
        }
    }

    /// Records are fetched from the vendor's API (`base_url` and a credential needed).
    pub fn has_api(self) -> bool {
        matches!(
            self,
            Self::BambooHr | Self::HiBob | Self::Personio | Self::Keka
        )
    }

    /// The vendor's API can take the work email back (Keka's documents no way to set it).
    pub fn can_write_back(self) -> bool {
        matches!(self, Self::BambooHr | Self::HiBob | Self::Personio)
    }

    /// The vendor field whose value is the worker's employee id when `employee_id_field` is
    /// not set. The vendors' own record ids are not always it: HiBob's backend id has 19
    /// digits and Keka's is a GUID, and the directory's `employeeId` holds 16 characters.
    pub fn default_employee_id_field(self) -> Option<&'static str> {
        match self {
            Self::HiBob => Some("work.employeeIdInCompany"),
            Self::Keka => Some("employeeNumber"),
            Self::BambooHr | Self::Personio => Some("id"),
            Self::Scim => Some("externalId"),
            Self::Csv | Self::SignedJson => None,
        }
    }

    /// Why the vendor field `field` can never be a directory employee id, when it is one
    /// of the vendor's documented ids longer than [`EMPLOYEE_ID_MAX_CHARS`].
    pub fn employee_id_field_problem(self, field: &str) -> Option<String> {
        let (id, what) = match (self, field) {
            (Self::HiBob, "root.id" | "id") => (
                "work.employeeIdInCompany",
                "Bob's backend id (19 digits, e.g. 3332883884017713238)",
            ),
            (Self::Keka, "id") => ("employeeNumber", "Keka's employee GUID (36 characters)"),
            _ => return None,
        };
        Some(format!(
            "{field} is {what}; the directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS} characters: use {id} (the default) or another field that fits"
        ))
    }

    /// The fields `employee_id_field` may name where the vendor's record has a fixed set of
    /// ids; `None`: any field of the vendor's record.
    pub fn employee_id_fields(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Keka => Some(&["employeeNumber"]),
            Self::Scim => Some(&["externalId", "employeeNumber"]),
            _ => None,
        }
    }

    /// The credential keys the vendor's API needs, besides `base_url`.
    pub fn credential_keys(self) -> &'static [&'static str] {
        match self {
            Self::BambooHr => &["api_key"],
            Self::HiBob => &["service_user_id", "token"],
            Self::Personio => &["client_id", "client_secret"],
            Self::Keka => &["client_id", "client_secret", "api_key"],
            Self::Csv | Self::SignedJson | Self::Scim => &[],
        }
    }
}

/// `[source.<name>]`: where workers come from. The name prefixes every worker key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// csv: canonical field (or `custom.<name>`, or `as_of`) -> the export's column header.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// csv: strftime format of date columns.
    #[serde(default = "default_date_format")]
    pub date_format: String,
    /// csv: field separator of the export.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Every kind but csv (required there): what proves a delivery is the HR system's: the
    /// signing key (signed-json, bamboohr, hibob) or the static token (personio, keka, scim).
    #[serde(default)]
    pub webhook_secret: Option<SecretRef>,
    /// keka: the custom header that carries `webhook_secret` (set on Keka's webhook action).
    #[serde(default)]
    pub webhook_header: Option<String>,
    /// The vendor's API root, e.g. `https://acme.bamboohr.com/api/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// bamboohr, keka: the API key.
    #[serde(default)]
    pub api_key: Option<SecretRef>,
    /// hibob: the service user's id.
    #[serde(default)]
    pub service_user_id: Option<SecretRef>,
    /// hibob: the service user's token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// personio, keka: the OAuth2 client id.
    #[serde(default)]
    pub client_id: Option<SecretRef>,
    /// personio, keka: the OAuth2 client secret.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// personio, keka: the OAuth2 token endpoint, when not the vendor's default.
    #[serde(default)]
    pub token_url: Option<String>,
    /// bamboohr: poll the change feed this often (`"15m"`, `"1h"`) for events the webhooks
    /// missed. Unset: no polling.
    #[serde(default)]
    pub poll_every: Option<String>,
    /// csv: this export lists every worker, so a worker missing from it has left.
    #[serde(default)]
    pub complete: bool,
    /// Write the identifiers hrsync chose (UPN, mail) back to the HR system. Unset: on
    /// where the source supports it (bamboohr, hibob, personio; not keka, csv, signed-json or scim).
    #[serde(default)]
    pub writeback: Option<bool>,
    /// Vendor sources: the vendor field that is the worker's employee id, the value written
    /// to the directory's `employeeId` and given to templates as `employee_id` (the vendor's
    /// own record id stays the key hrsync fetches and writes back by). Unset: the kind's
    /// default, [`SourceKind::default_employee_id_field`].
    #[serde(default)]
    pub employee_id_field: Option<String>,
    /// Put before each of this source's employee ids in the account's `employeeId` (e.g.
    /// `"C-"`), so that two sources whose ids overlap (an acquisition's HR system beside the
    /// main one) never look for or claim each other's accounts. Counts toward the directory's
    /// 16 characters.
    #[serde(default)]
    pub employee_id_prefix: Option<String>,
}

impl SourceConfig {
    /// A source of `kind` with every other key at its default (for code and tests that
    /// build one; files are read with `Config::load`).
    pub fn of_kind(kind: SourceKind) -> Self {
        Self {
            kind,
            columns: BTreeMap::new(),
            date_format: default_date_format(),
            delimiter: default_delimiter(),
            webhook_secret: None,
            webhook_header: None,
            base_url: None,
            api_key: None,
            service_user_id: None,
            token: None,
            client_id: None,
            client_secret: None,
            token_url: None,
            poll_every: None,
            complete: false,
            writeback: None,
            employee_id_field: None,
            employee_id_prefix: None,
        }
    }

    /// The vendor field that is the worker's employee id: `employee_id_field`, else the
    /// kind's default; `None` for csv and signed-json (the record's own `employee_id`).
    pub fn employee_id_field(&self) -> Option<&str> {
        self.employee_id_field
            .as_deref()
            .or_else(|| self.kind.default_employee_id_field())
    }

    /// How often to poll the change feed (`poll_every`), when set and valid.
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        let every: jiff::SignedDuration = self.poll_every.as_deref()?.parse().ok()?;
        std::time::Duration::try_from(every).ok()
    }

    /// Write-back is on: the vendor can take it and the config did not turn it off.
    pub fn writes_back(&self) -> bool {
        self.kind.can_write_back() && self.writeback != Some(false)
    }

    /// Every secret reference of the source, with what it is for: the webhook secret and
    /// the API credentials.
    pub fn secret_refs(&self) -> impl Iterator<Item = (SecretUse, &SecretRef)> {
        let webhook = self
            .webhook_secret
            .iter()
            .map(|secret| (SecretUse::Webhook, secret));
        let api = [
            &self.api_key,
            &self.service_user_id,
            &self.token,
            &self.client_id,
            &self.client_secret,
        ]
        .into_iter()
        .flatten()
        .map(|secret| (SecretUse::HrApi, secret));
        webhook.chain(api)
    }

    /// The secret reference of a credential key (`api_key`, `token`...).
    pub fn credential(&self, key: &str) -> Option<&SecretRef> {
        match key {
            "api_key" => self.api_key.as_ref(),
            "service_user_id" => self.service_user_id.as_ref(),
            "token" => self.token.as_ref(),
            "client_id" => self.client_id.as_ref(),
            "client_secret" => self.client_secret.as_ref(),
            _ => None,
        }
    }
}

fn default_date_format() -> String {
    "%Y-%m-%d".into()
}

fn default_delimiter() -> char {
    ','
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    /// The built-in Entra-compatible sandbox (no cloud account needed).
    #[default]
    Sandbox,
    /// Microsoft Graph (a real Entra tenant).
    Graph,
}

impl Keyword for DirectoryKind {
    const WORDS: &'static [(&'static str, Self)] =
        &[("sandbox", Self::Sandbox), ("graph", Self::Graph)];
    const EXPECTED: &'static str = "`sandbox` or `graph`";
}
keyword_serde!(DirectoryKind);

/// What an attribute template that renders empty means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NullPolicy {
    /// Leave the directory's value alone.
    #[default]
    Ignore,
    /// Clear the directory's value.
    Clear,
}

impl Keyword for NullPolicy {
    const WORDS: &'static [(&'static str, Self)] =
        &[("ignore", Self::Ignore), ("clear", Self::Clear)];
    const EXPECTED: &'static str = "`ignore` or `clear`";
}
keyword_serde!(NullPolicy);

/// `directory.federated`: where the Graph client's federated assertion comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Federation {
    /// AWS STS `GetWebIdentityToken`: a JWT for the caller's IAM role, signed by STS
    /// (IAM outbound identity federation). No secret is stored anywhere.
    Aws,
}

impl Keyword for Federation {
    const WORDS: &'static [(&'static str, Self)] = &[("aws", Self::Aws)];
    const EXPECTED: &'static str = "`aws`";
}
keyword_serde!(Federation);

/// The audience Entra expects in a federated assertion (the federated identity credential's
/// `audiences`): learn.microsoft.com/graph/api/resources/federatedidentitycredential.
pub const DEFAULT_FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// `[directory]`: where accounts live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    #[serde(default)]
    pub kind: DirectoryKind,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretRef>,
    /// A PEM holding the certificate and its private key.
    pub certificate: Option<CertificateRef>,
    /// `"aws"`: no secret; each token request presents a JWT from AWS STS
    /// `GetWebIdentityToken` (the AWS runtime only), matched by a federated identity
    /// credential on the app registration.
    pub federated: Option<Federation>,
    /// The audience asked of the federation's token issuer; default
    /// [`DEFAULT_FEDERATED_AUDIENCE`].
    pub federated_audience: Option<String>,
    #[serde(default = "default_graph_endpoint")]
    pub graph_endpoint: String,
    #[serde(default = "default_authority_host")]
    pub authority_host: String,
    #[serde(default)]
    pub null_policy: NullPolicy,
    /// Set `employeeLeaveDateTime` to the leave instant, so Entra Lifecycle Workflows see
    /// leavers (needs the `User-LifeCycleInfo.ReadWrite.All` permission).
    #[serde(default)]
    pub employee_leave_date: bool,
    /// Sandbox: the URL of a running `hrsync sandbox`; when absent, one runs in-process.
    pub url: Option<String>,
    /// Sandbox: the file the in-process sandbox keeps its directory in.
    pub data: Option<String>,
    /// Writes allowed per window, paced on the client so Graph never has to throttle:
    /// `"3000/150s"` (Graph's quota per app and tenant, the default for `kind = "graph"`), or
    /// `"off"` (the default for the sandbox).
    pub write_limit: Option<String>,
    /// Sandbox: the groups the in-process sandbox starts with, `"ID=NAME"` or
    /// `"ID=NAME@SKU,..."` (a licensing group); unset: every group the access rules name.
    #[serde(default)]
    pub sandbox_groups: Vec<String>,
    /// Sandbox: the licences the in-process sandbox's tenant owns, `"SKU=PART@UNITS"`; unset:
    /// every licence the access rules name, with 1,000,000 units.
    #[serde(default)]
    pub sandbox_skus: Vec<String>,
}

/// Graph's identity write quota per app and tenant (learn.microsoft.com/graph/throttling-limits).
pub const GRAPH_WRITE_LIMIT: WriteLimit = WriteLimit {
    writes: 3000,
    window: std::time::Duration::from_secs(150),
};

/// At most `writes` directory writes within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimit {
    pub writes: u32,
    pub window: std::time::Duration,
}

impl std::str::FromStr for WriteLimit {
    type Err = String;

    /// `"3000/150s"`; the window is a duration like `poll_every`'s (`150s`, `2m30s`, `1h`).
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || format!("{text:?} is not a limit like \"3000/150s\" or \"off\"");
        let (writes, window) = text.split_once('/').ok_or_else(expected)?;
        let writes: u32 = writes.trim().parse().map_err(|_| expected())?;
        let window: jiff::SignedDuration = window.trim().parse().map_err(|_| expected())?;
        let window = std::time::Duration::try_from(window).map_err(|_| expected())?;
        if writes == 0 || window.is_zero() {
            return Err(expected());
        }
        Ok(Self { writes, window })
    }
}

impl DirectoryConfig {
    /// The audience of the federated assertion: `federated_audience`, else
    /// `api://AzureADTokenExchange`.
    pub fn federated_audience(&self) -> &str {
        self.federated_audience
            .as_deref()
            .unwrap_or(DEFAULT_FEDERATED_AUDIENCE)
    }

    /// The write pacing in force: `write_limit`, else Graph's quota for a real tenant and none
    /// for the sandbox.
    pub fn write_limit(&self) -> Result<Option<WriteLimit>, String> {
        match self.write_limit.as_deref().map(str::trim) {
            Some("off") => Ok(None),
            Some(text) => text.parse().map(Some),
            None => Ok((self.kind == DirectoryKind::Graph).then_some(GRAPH_WRITE_LIMIT)),
        }
    }
}

/// Where the Graph certificate PEM is: a file path, or a secret reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CertificateRef {
    Path(String),
    Secret(SecretRef),
}

impl<'de> Deserialize<'de> for CertificateRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = CertificateRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a path to a PEM file, or a secret reference such as { secret = \"arn:...\" }",
                )
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<CertificateRef, E> {
                Ok(CertificateRef::Path(path.to_owned()))
            }
            fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<CertificateRef, M::Error> {
                SecretRef::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(CertificateRef::Secret)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            kind: DirectoryKind::default(),
            tenant_id: None,
            client_id: None,
            client_secret: None,
            certificate: None,
            federated: None,
            federated_audience: None,
            graph_endpoint: default_graph_endpoint(),
            authority_host: default_authority_host(),
            null_policy: NullPolicy::default(),
            employee_leave_date: false,
            url: None,
            data: None,
            write_limit: None,
            sandbox_groups: Vec::new(),
            sandbox_skus: Vec::new(),
        }
    }
}

fn default_graph_endpoint() -> String {
    "https://graph.microsoft.com".into()
}

fn default_authority_host() -> String {
    "https://login.microsoftonline.com".into()
}

/// `[identity]`: how names are generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// UPN candidates in order; the last one may use the counter `n` (2, 3, ...).
    pub upn: Vec<TemplateText>,
    /// Mail candidates; when absent, mail is the UPN.
    pub mail: Option<Vec<TemplateText>>,
    #[serde(default = "default_display_name")]
    pub display_name: TemplateText,
    /// The highest counter `n` tried in the last candidate before giving up.
    #[serde(default = "default_max_counter", deserialize_with = "count")]
    pub max_counter: u32,
}

fn default_display_name() -> TemplateText {
    TemplateText("{{ preferred_name or given_name }} {{ family_name }}".into())
}

fn default_max_counter() -> u32 {
    99
}

/// `[[access]]`: a birthright rule; re-evaluated on every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// A label for explanations; defaults to `access[<index>]`.
    pub name: Option<String>,
    /// When absent, the rule applies to every worker in scope.
    pub when: Option<Condition>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub licenses: Vec<String>,
}

/// `[state]`: where hrsync keeps what it knows between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The SQLite file; unset: `.hrsync/state.db` beside the config file (the CLI resolves
    /// it, since only it knows where the config file is).
    pub path: Option<String>,
}

/// `[runtime]`: where the pipeline this config drives runs, for the operator commands
/// (`status`, `audit`, `timers`, `terminate`, `holds`, `dlq`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub kind: RuntimeKind,
    /// `kind = "aws"`: the deployed stack, whose outputs name the table, queues and schedule
    /// group (read with the caller's own AWS credentials).
    pub stack: Option<String>,
    /// `kind = "aws"` without `stack`: the DynamoDB state table.
    pub table: Option<String>,
    /// `kind = "aws"` without `stack`: each queue's URL, by queue name (`hr-events`,
    /// `worker-events`, `directory`, `writeback`); their DLQs are read from their redrive policy.
    pub queues: Option<BTreeMap<String, String>>,
    /// `kind = "aws"` without `stack`: the EventBridge Scheduler group of the timers.
    pub schedule_group: Option<String>,
}

/// Where the pipeline runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    /// `hrsync serve` / `import` on the SQLite state of `[state]`.
    #[default]
    Local,
    /// The AWS functions of a deployed stack.
    Aws,
}

/// The queue names `[runtime] queues` takes, in pipeline order.
pub const RUNTIME_QUEUES: [&str; 4] = ["hr-events", "worker-events", "directory", "writeback"];

impl RuntimeConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let named = [
            ("table", self.table.is_some()),
            ("queues", self.queues.is_some()),
            ("schedule_group", self.schedule_group.is_some()),
        ];
        match self.kind {
            RuntimeKind::Local => {
                let given = self.stack.is_some().then_some("stack").into_iter().chain(
                    named
                        .iter()
                        .filter(|(_, given)| *given)
                        .map(|(key, _)| *key),
                );
                if let Some(key) = given.into_iter().next() {
                    return Err((
                        format!("runtime.{key}"),
                        "names AWS resources: it needs kind = \"aws\"".into(),
                    ));
                }
            }
            RuntimeKind::Aws => {
                let direct: Vec<&str> = named
                    .iter()
                    .filter(|(_, given)| *given)
                    .map(|(key, _)| *key)
                    .collect();
                match (&self.stack, direct.len()) {
                    (Some(_), 0) => {}
                    (Some(_), _) => {
                        return Err((
                            format!("runtime.{}", direct[0]),
                            "comes from the stack's outputs: give stack, or table, queues and schedule_group, not both".into(),
                        ));
                    }
                    (None, 3) => {}
                    (None, _) => {
                        let missing: Vec<&str> = named
                            .iter()
                            .filter(|(_, given)| !*given)
                            .map(|(key, _)| *key)
                            .collect();
                        return Err((
                            "runtime".into(),
                            format!(
                                "kind = \"aws\" needs stack = \"NAME\" (the deployed stack), or table, queues and schedule_group (missing: {})",
                                missing.join(", ")
                            ),
                        ));
                    }
                }
                if let Some(stack) = &self.stack
                    && stack.trim().is_empty()
                {
                    return Err(("runtime.stack".into(), "is empty".into()));
                }
                if let Some(queues) = &self.queues {
                    for name in queues.keys() {
                        if !RUNTIME_QUEUES.contains(&name.as_str()) {
                            return Err((
                                format!("runtime.queues.{name}"),
                                format!(
                                    "is not a queue of hrsync (one of {})",
                                    RUNTIME_QUEUES.join(", ")
                                ),
                            ));
                        }
                    }
                    if let Some(missing) = RUNTIME_QUEUES.iter().find(|q| !queues.contains_key(**q))
                    {
                        return Err((
                            format!("runtime.queues.{missing}"),
                            "is missing: give each queue's URL".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `[lifecycle]`: when accounts are created, enabled, disabled, stripped and deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Workers for whom this is false are not provisioned (and are disabled if they were).
    pub scope: Option<Condition>,
    /// Zone of workers whose record has no `time_zone`.
    #[serde(default = "ZoneName::utc")]
    pub default_time_zone: ZoneName,
    /// Local time on the last day at which a leaver is cut off.
    #[serde(default = "default_leave_at")]
    pub leave_at: LocalTime,
    /// Local time on the first day at which a joiner's account is enabled.
    #[serde(default = "default_start_at")]
    pub start_at: LocalTime,
    /// Create the account (disabled) this many days before the start.
    #[serde(default, deserialize_with = "days")]
    pub prehire_days: u32,
    /// `termination_type` values (any case) that cut the worker off at once, not at `leave_at`.
    #[serde(default = "default_immediate_types")]
    pub immediate_termination_types: Vec<String>,
    /// Days after the leave instant at which groups and licenses are removed (0: at once).
    #[serde(default, deserialize_with = "days")]
    pub remove_access_after_days: u32,
    /// Days after the leave instant at which the account is deleted; unset: never delete.
    #[serde(default, deserialize_with = "optional_days")]
    pub delete_after_days: Option<u32>,
    /// Disable the account while the worker is on leave.
    #[serde(default)]
    pub disable_on_leave: bool,
    /// Breaker for the pipeline runtimes: more disables than this in an hour wait for approval.
    #[serde(default, deserialize_with = "optional_count")]
    pub max_disables_per_hour: Option<u32>,
    /// Breaker, relative: more disables within an hour than this percentage of the workers
    /// hrsync knows (every worker in the state store) wait for approval (1 to 100).
    #[serde(default, deserialize_with = "optional_percentage")]
    pub max_disables_percent: Option<u32>,
    /// Whose account stands in when a worker's manager will never have one (out of scope,
    /// or left): none, or the next manager up the chain who has one.
    #[serde(default)]
    pub manager_fallback: ManagerFallback,
}

/// `lifecycle.manager_fallback`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManagerFallback {
    /// The worker's manager stays unset until HR names one who has an account.
    #[default]
    None,
    /// The manager's own manager (and so on up, a few levels), the first who has an account.
    SkipLevel,
}

impl Keyword for ManagerFallback {
    const WORDS: &'static [(&'static str, Self)] =
        &[("none", Self::None), ("skip-level", Self::SkipLevel)];
    const EXPECTED: &'static str = "`none` or `skip-level`";
}
keyword_serde!(ManagerFallback);

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            scope: None,
            default_time_zone: ZoneName::utc(),
            leave_at: default_leave_at(),
            start_at: default_start_at(),
            prehire_days: 0,
            immediate_termination_types: default_immediate_types(),
            remove_access_after_days: 0,
            delete_after_days: None,
            disable_on_leave: false,
            max_disables_per_hour: None,
            max_disables_percent: None,
            manager_fallback: ManagerFallback::None,
        }
    }
}

fn default_leave_at() -> LocalTime {
    LocalTime(jiff::civil::time(17, 0, 0, 0))
}

fn default_start_at() -> LocalTime {
    LocalTime(jiff::civil::time(0, 0, 0, 0))
}

fn default_immediate_types() -> Vec<String> {
    vec!["involuntary".into()]
}

/// The whole `hrsync.toml`, validated and with its templates compiled.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, rename = "source")]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub directory: DirectoryConfig,
    pub identity: IdentityConfig,
    /// Graph property -> template.
    #[serde(default)]
    pub attributes: BTreeMap<String, TemplateText>,
    #[serde(default)]
    pub access: Vec<AccessRule>,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Display names of the group ids and skuIds the rules name (`"<id>" = "All Staff"`),
    /// shown instead of the ids in plans, audits and summaries.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `[[notify]]`: who is told about what needs a human (config/notify.rs).
    #[serde(default)]
    pub notify: Vec<NotifyTarget>,
    #[serde(skip)]
    engine: Engine,
}

/// Config keys of the compiled templates, used to render them.
pub(crate) mod keys {
    pub fn upn(index: usize) -> String {
        format!("identity.upn[{index}]")
    }
    pub fn mail(index: usize) -> String {
        format!("identity.mail[{index}]")
    }
    pub const DISPLAY_NAME: &str = "identity.display_name";
    pub fn attribute(name: &str) -> String {
        format!("attributes.{name}")
    }
    pub fn access_when(index: usize) -> String {
        format!("access[{index}].when")
    }
    pub const SCOPE: &str = "lifecycle.scope";
}

impl Config {
    /// Every secret reference of the config with what it is for: the directory's
    /// credential, then each source's.
    pub fn secret_refs(&self) -> impl Iterator<Item = (SecretUse, &SecretRef)> {
        let certificate = match &self.directory.certificate {
            Some(CertificateRef::Secret(secret)) => Some(secret),
            _ => None,
        };
        let directory = self
            .directory
            .client_secret
            .iter()
            .chain(certificate)
            .map(|secret| (SecretUse::Directory, secret));
        let notify = self
            .notify
            .iter()
            .flat_map(NotifyTarget::secret_refs)
            .map(|secret| (SecretUse::Notify, secret));
        directory
            .chain(self.sources.values().flat_map(SourceConfig::secret_refs))
            .chain(notify)
    }

    /// The configured display name of a group id or skuId (ids compare without case).
    pub fn label(&self, id: &str) -> Option<&str> {
        self.labels
            .get(id)
            .or_else(|| {
                self.labels
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(id))
                    .map(|(_, name)| name)
            })
            .map(String::as_str)
    }

    /// Every group id the access rules grant, once each, in rule order.
    pub fn access_groups(&self) -> Vec<&str> {
        unique_in_order(self.access.iter().flat_map(|rule| &rule.groups))
    }

    /// Every skuId the access rules grant, once each, in rule order.
    pub fn access_licenses(&self) -> Vec<&str> {
        unique_in_order(self.access.iter().flat_map(|rule| &rule.licenses))
    }

    /// Parses and validates a config; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let error = |key: Option<String>, span: Option<Range<usize>>, message: String| {
            let (line, column) = span.map(|s| line_column(text, s.start)).unzip();
            ConfigError {
                file: file.to_owned(),
                key,
                line,
                column,
                message,
            }
        };
        let document = DeTable::parse(text)
            .map_err(|e| error(None, e.span(), parse_message(text, e.message(), e.span())))?;
        let spans = document.clone();
        let mut config: Config =
            serde_path_to_error::deserialize(toml::Deserializer::from(document)).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let key = (path != ".").then_some(path);
                error(
                    key,
                    inner.span(),
                    parse_message(text, inner.message(), inner.span()),
                )
            })?;
        let at = |key: &str| span_of(&spans, key);
        config
            .validate(|key| is_written(&spans, key))
            .map_err(|(key, message)| error(Some(key.clone()), at(&key), message))?;
        config.compile().map_err(|e: TemplateError| {
            error(Some(e.template.clone()), at(&e.template), e.message)
        })?;
        Ok(config)
    }

    /// The `employeeId` the worker's account carries: their source's `employee_id_prefix`
    /// and their employee id.
    pub fn directory_employee_id(&self, worker: &crate::Worker) -> String {
        let prefix = self
            .sources
            .get(worker.key.source())
            .and_then(|source| source.employee_id_prefix.as_deref())
            .unwrap_or_default();
        format!("{prefix}{}", worker.employee_id)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Rules that span several keys, which serde cannot check field by field. `written` says
    /// whether a dotted key is in the file (a key with a default cannot tell by its value).
    fn validate(&self, written: impl Fn(&str) -> bool) -> Result<(), (String, String)> {
        if self.identity.upn.is_empty() {
            return Err((
                "identity.upn".into(),
                "needs at least one candidate template".into(),
            ));
        }
        if self.identity.mail.as_ref().is_some_and(Vec::is_empty) {
            return Err((
                "identity.mail".into(),
                "needs at least one candidate template, or leave it out to use the UPN".into(),
            ));
        }
        if self.identity.max_counter < 2 {
            return Err(("identity.max_counter".into(), "must be at least 2".into()));
        }
        for (name, source) in &self.sources {
            if name.is_empty() || name.contains(':') {
                return Err((
                    format!("source.{name}"),
                    "a source name must be non-empty and contain no ':'".into(),
                ));
            }
            match source.kind {
                SourceKind::Csv => Self::validate_csv(name, source)?,
                _ => Self::validate_webhook_source(name, source, &written)?,
            }
        }
        if let Some(template) = self.attributes.get("employeeId")
            && template.0.split_whitespace().collect::<String>() != "{{employee_id}}"
        {
            return Err((
                "attributes.employeeId".into(),
                "is how hrsync finds each worker's account, so it is always the worker's employee_id: choose the HR field with source.<name>.employee_id_field, and remove this line".into(),
            ));
        }
        let mut prefixes: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, source) in &self.sources {
            let Some(prefix) = source.employee_id_prefix.as_deref() else {
                continue;
            };
            let key = format!("source.{name}.employee_id_prefix");
            let fine = !prefix.is_empty()
                && prefix.chars().count() <= 8
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"'\"\\".contains(c));
            if !fine {
                return Err((
                    key,
                    "must be 1 to 8 visible ASCII characters, no quotes or backslash (e.g. \"C-\"): it is part of each account's employeeId".into(),
                ));
            }
            if let Some(other) = prefixes.insert(prefix, name) {
                return Err((
                    key,
                    format!("{prefix:?} is source.{other}'s prefix too: each source needs its own"),
                ));
            }
        }
        for name in self.attributes.keys() {
            if let Some(owner) = reserved_attribute(name) {
                return Err((
                    format!("attributes.{name}"),
                    format!("is set by hrsync from {owner}; remove it here"),
                ));
            }
        }
        for (index, rule) in self.access.iter().enumerate() {
            if rule.groups.is_empty() && rule.licenses.is_empty() {
                return Err((
                    format!("access[{index}]"),
                    "grants nothing: give it groups or licenses".into(),
                ));
            }
        }
        self.runtime.validate()?;
        let directory = &self.directory;
        if let Err(message) = directory.write_limit() {
            return Err(("directory.write_limit".into(), message));
        }
        for (key, given) in [
            ("sandbox_groups", !directory.sandbox_groups.is_empty()),
            ("sandbox_skus", !directory.sandbox_skus.is_empty()),
        ] {
            let in_process = directory.kind == DirectoryKind::Sandbox && directory.url.is_none();
            if given && !in_process {
                return Err((
                    format!("directory.{key}"),
                    "seeds the in-process sandbox only (kind = \"sandbox\" without url); a separate `hrsync sandbox` takes --group / --sku".into(),
                ));
            }
        }
        if directory.kind == DirectoryKind::Graph {
            for (key, value) in [
                ("tenant_id", &directory.tenant_id),
                ("client_id", &directory.client_id),
            ] {
                if value.as_deref().is_none_or(str::is_empty) {
                    return Err((
                        format!("directory.{key}"),
                        "is required when kind = \"graph\"".into(),
                    ));
                }
            }
            let given = [
                directory.client_secret.is_some(),
                directory.certificate.is_some(),
                directory.federated.is_some(),
            ];
            if given.iter().filter(|given| **given).count() != 1 {
                return Err((
                    "directory".into(),
                    "kind = \"graph\" needs exactly one of client_secret, certificate or federated = \"aws\"".into(),
                ));
            }
        }
        if directory.federated.is_none() && directory.federated_audience.is_some() {
            return Err((
                "directory.federated_audience".into(),
                "applies only with federated = \"aws\"".into(),
            ));
        }
        if directory.federated.is_some() && directory.kind != DirectoryKind::Graph {
            return Err((
                "directory.federated".into(),
                "applies only to kind = \"graph\"".into(),
            ));
        }
        self.validate_notify()?;
        if let Some(audience) = &directory.federated_audience
            && (audience.trim().is_empty() || audience.trim() != audience)
        {
            return Err((
                "directory.federated_audience".into(),
                "must be the federated identity credential's audience, without surrounding spaces (default api://AzureADTokenExchange)".into(),
            ));
        }
        Ok(())
    }

    /// `[[notify]]`: each target's keys, and names that tell targets apart.
    fn validate_notify(&self) -> Result<(), (String, String)> {
        let mut names = std::collections::BTreeSet::new();
        for (index, target) in self.notify.iter().enumerate() {
            let key = format!("notify[{index}]");
            target.validate(&key)?;
            if !names.insert(target.name(index)) {
                return Err((
                    format!("{key}.name"),
                    format!("{:?} names another target too", target.name(index)),
                ));
            }
        }
        Ok(())
    }

    /// `kind = "csv"`: the column mapping names known fields and the ones a worker needs.
    fn validate_csv(name: &str, source: &SourceConfig) -> Result<(), (String, String)> {
        if source.webhook_secret.is_some() {
            return Err((
                format!("source.{name}.webhook_secret"),
                "applies to webhook sources only: a csv export is read from a file, not delivered to a webhook".into(),
            ));
        }
        let vendor_keys = [
            ("base_url", source.base_url.is_some()),
            ("webhook_header", source.webhook_header.is_some()),
            ("token_url", source.token_url.is_some()),
            ("poll_every", source.poll_every.is_some()),
            ("writeback", source.writeback == Some(true)),
        ]
        .into_iter()
        .chain(
            [
                "api_key",
                "service_user_id",
                "token",
                "client_id",
                "client_secret",
            ]
            .map(|key| (key, source.credential(key).is_some())),
        );
        for (key, given) in vendor_keys {
            if given {
                return Err((
                    format!("source.{name}.{key}"),
                    "does not apply to kind = \"csv\": an export is read from a file".into(),
                ));
            }
        }
        if source.employee_id_field.is_some() {
            return Err((
                format!("source.{name}.employee_id_field"),
                "does not apply to kind = \"csv\": map the export's column with columns.employee_id".into(),
            ));
        }
        for field in source.columns.keys() {
            let known = CANONICAL_FIELDS.contains(&field.as_str())
                || matches!(field.as_str(), "as_of" | "termination_time")
                || field.strip_prefix("custom.").is_some_and(|n| !n.is_empty());
            if !known {
                return Err((
                    format!("source.{name}.columns.{field}"),
                    format!(
                        "unknown field `{field}`, expected one of {}, termination_time, as_of or custom.<name>",
                        CANONICAL_FIELDS.join(", ")
                    ),
                ));
            }
        }
        for required in ["employee_id", "given_name", "family_name"] {
            if !source.columns.contains_key(required) {
                return Err((
                    format!("source.{name}.columns"),
                    format!(
                        "missing the column for `{required}`, e.g. {required} = \"<header in the export>\""
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every kind but csv: a webhook secret, the vendor's API root and credentials where it
    /// has an API, and none of the keys that only csv reads or that belong to another kind.
    fn validate_webhook_source(
        name: &str,
        source: &SourceConfig,
        written: impl Fn(&str) -> bool,
    ) -> Result<(), (String, String)> {
        let kind = source.kind.as_str();
        const CSV_ONLY: [(&str, &str); 4] = [
            ("columns", ": webhook sources map the vendor's own fields"),
            (
                "date_format",
                ": webhook sources read the vendor's own date format",
            ),
            (
                "delimiter",
                ": webhook sources receive JSON, not delimited text",
            ),
            (
                "complete",
                ": a webhook delivery carries the workers that changed, so a worker missing from it has not left",
            ),
        ];
        for (key, why) in CSV_ONLY {
            let key = format!("source.{name}.{key}");
            if written(&key) {
                return Err((key, format!("applies to kind = \"csv\" only{why}")));
            }
        }
        if source.webhook_secret.is_none() {
            let what = match source.kind {
                SourceKind::SignedJson => "the key that signs each delivery",
                SourceKind::BambooHr => "the webhook's private key, which signs each delivery",
                SourceKind::HiBob => "the webhook secret, which signs each delivery",
                SourceKind::Personio => "the token Personio sends in Authorization",
                SourceKind::Keka => "the value of the custom header set on Keka's webhook action",
                _ => "the bearer token senders present",
            };
            return Err((
                format!("source.{name}"),
                format!(
                    "kind = \"{kind}\" needs webhook_secret = {{ env = \"NAME\" }} (or ssm / secret): {what}"
                ),
            ));
        }
        let credentials = source.kind.credential_keys();
        for key in [
            "api_key",
            "service_user_id",
            "token",
            "client_id",
            "client_secret",
        ] {
            let given = source.credential(key).is_some();
            let needed = credentials.contains(&key);
            if given && !needed {
                return Err((
                    format!("source.{name}.{key}"),
                    format!("does not apply to kind = \"{kind}\""),
                ));
            }
            if needed && !given {
                return Err((
                    format!("source.{name}"),
                    format!(
                        "kind = \"{kind}\" needs {key} = {{ env = \"NAME\" }} (or ssm / secret) for its API"
                    ),
                ));
            }
        }
        match (source.kind.has_api(), &source.base_url) {
            (true, None) => {
                return Err((
                    format!("source.{name}"),
                    format!(
                        "kind = \"{kind}\" needs base_url, the vendor's API root (e.g. {})",
                        example_base_url(source.kind)
                    ),
                ));
            }
            (true, Some(url)) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return Err((
                    format!("source.{name}.base_url"),
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
            (false, Some(_)) => {
                return Err((
                    format!("source.{name}.base_url"),
                    format!("does not apply to kind = \"{kind}\": it has no API to call"),
                ));
            }
            _ => {}
        }
        if source.token_url.is_some()
            && !matches!(source.kind, SourceKind::Personio | SourceKind::Keka)
        {
            return Err((
                format!("source.{name}.token_url"),
                format!("does not apply to kind = \"{kind}\""),
            ));
        }
        if let Some(every) = &source.poll_every {
            let key = format!("source.{name}.poll_every");
            if source.kind != SourceKind::BambooHr {
                return Err((
                    key,
                    format!("does not apply to kind = \"{kind}\": it has no change feed to poll"),
                ));
            }
            let long_enough = source
                .poll_interval()
                .is_some_and(|d| d >= std::time::Duration::from_secs(10));
            if !long_enough {
                return Err((
                    key,
                    format!(
                        "{every:?} is not a duration of 10 seconds or more, e.g. \"15m\" or \"1h\""
                    ),
                ));
            }
        }
        if source.webhook_header.is_some() && source.kind != SourceKind::Keka {
            return Err((
                format!("source.{name}.webhook_header"),
                format!("does not apply to kind = \"{kind}\""),
            ));
        }
        if let Some(field) = &source.employee_id_field {
            let key = format!("source.{name}.employee_id_field");
            if source.kind.default_employee_id_field().is_none() {
                return Err((
                    key,
                    format!(
                        "does not apply to kind = \"{kind}\": its records carry employee_id themselves"
                    ),
                ));
            }
            if field.trim().is_empty() {
                return Err((
                    key,
                    "is empty: name the vendor field, or leave it out".into(),
                ));
            }
            if let Some(problem) = source.kind.employee_id_field_problem(field) {
                return Err((key, problem));
            }
            let personio_attribute = source.kind == SourceKind::Personio
                && field
                    .strip_prefix("custom_attributes.")
                    .is_some_and(|id| !id.is_empty());
            if source.kind == SourceKind::Personio && field != "id" && !personio_attribute {
                return Err((
                    key,
                    "kind = \"personio\" takes id (the person id) or custom_attributes.<attribute id>".into(),
                ));
            }
            if let Some(allowed) = source.kind.employee_id_fields()
                && !allowed.contains(&field.as_str())
            {
                return Err((
                    key,
                    format!("kind = \"{kind}\" takes one of {}", allowed.join(", ")),
                ));
            }
        }
        if source.writeback == Some(true) && !source.kind.can_write_back() {
            return Err((
                format!("source.{name}.writeback"),
                format!(
                    "kind = \"{kind}\" cannot take identifiers back (no documented API call for it)"
                ),
            ));
        }
        Ok(())
    }

    fn compile(&mut self) -> Result<(), TemplateError> {
        let mut engine = Engine::default();
        for (index, template) in self.identity.upn.iter().enumerate() {
            engine.add_template(&keys::upn(index), &template.0)?;
        }
        for (index, template) in self.identity.mail.iter().flatten().enumerate() {
            engine.add_template(&keys::mail(index), &template.0)?;
        }
        engine.add_template(keys::DISPLAY_NAME, &self.identity.display_name.0)?;
        for (name, template) in &self.attributes {
            engine.add_template(&keys::attribute(name), &template.0)?;
        }
        for (index, rule) in self.access.iter().enumerate() {
            if let Some(when) = &rule.when {
                engine.add_condition(&keys::access_when(index), &when.0)?;
            }
        }
        if let Some(scope) = &self.lifecycle.scope {
            engine.add_condition(keys::SCOPE, &scope.0)?;
        }
        self.engine = engine;
        Ok(())
    }

    /// The `[source.<name>]` table of a name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.get(name)
    }
}

fn example_base_url(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::BambooHr => "https://acme.bamboohr.com/api/v1",
        SourceKind::HiBob => "https://api.hibob.com/v1",
        SourceKind::Personio => "https://api.personio.de",
        SourceKind::Keka => "https://acme.keka.com/api/v1",
        _ => "https://hr.example.com/api",
    }
}

/// Graph properties that hrsync sets itself, and the config that controls each.
fn reserved_attribute(name: &str) -> Option<&'static str> {
    match name {
        "userPrincipalName" | "mail" | "mailNickname" => Some("[identity] upn/mail"),
        "displayName" => Some("identity.display_name"),
        "accountEnabled" => Some("the lifecycle"),
        "employeeLeaveDateTime" => Some("the leave instant (directory.employee_leave_date)"),
        "passwordProfile" => Some("the directory on create"),
        "manager" => Some("the worker's manager_id"),
        _ => None,
    }
}

/// The parser's message on one line, naming the key where it only says "duplicate key".
fn parse_message(text: &str, message: &str, span: Option<Range<usize>>) -> String {
    let message = message.trim().replace('\n', "; ");
    match span.and_then(|span| text.get(span)) {
        Some(key) if message == "duplicate key" => {
            format!("duplicate key `{}`", key.trim_matches('"'))
        }
        _ => message,
    }
}

/// Where a dotted key path such as `access[1].when` or `source.hr.columns` is written: the
/// deepest part of it that exists (a missing key points at its table).
fn span_of(document: &Spanned<DeTable<'_>>, path: &str) -> Option<Range<usize>> {
    find(document, path).0
}

/// Whether a dotted key path is written in the file, whole.
fn is_written(document: &Spanned<DeTable<'_>>, path: &str) -> bool {
    find(document, path).1
}

/// The span of the deepest part of a dotted key path that exists, and whether all of it does.
fn find(document: &Spanned<DeTable<'_>>, path: &str) -> (Option<Range<usize>>, bool) {
    let mut span = None;
    let mut table = Some(document.get_ref());
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some(value) = table.and_then(|t| {
            t.iter()
                .find(|(key, _)| key.get_ref() == name)
                .map(|(_, v)| v)
        }) else {
            return (span, false);
        };
        let value = match (index, value.get_ref()) {
            (Some(i), DeValue::Array(items)) => {
                span = Some(value.span());
                let Some(item) = items.get(i) else {
                    return (span, false);
                };
                item
            }
            _ => value,
        };
        span = Some(value.span());
        table = match value.get_ref() {
            DeValue::Table(inner) => Some(inner),
            _ => None,
        };
    }
    (span, true)
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn unique_in_order<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut seen = std::collections::BTreeSet::new();
    ids.map(String::as_str)
        .filter(|id| seen.insert(id.to_ascii_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(certificate: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[directory]\nkind = \"graph\"\ntenant_id = \"t\"\nclient_id = \"c\"\ncertificate = {certificate}\n\n[identity]\nupn = [\"{{{{ given_name|slug }}}}@acme.example\"]\n"
        );
        Config::parse(&text, "hrsync.toml")
    }

    #[test]
    fn certificate_is_a_path_or_a_secret_reference() {
        let path = graph("\"/etc/hrsync/graph.pem\"").unwrap();
        assert_eq!(
            path.directory.certificate,
            Some(CertificateRef::Path("/etc/hrsync/graph.pem".into()))
        );
        let secret =
            graph("{ secret = \"arn:aws:secretsmanager:eu-west-1:1:secret:graph\" }").unwrap();
        assert_eq!(
            secret.directory.certificate,
            Some(CertificateRef::Secret(SecretRef::Secret(
                "arn:aws:secretsmanager:eu-west-1:1:secret:graph".into()
            )))
        );
        let err = graph("42").unwrap_err();
        assert_eq!(
            err.to_string(),
            "hrsync.toml:5:15: directory.certificate: invalid type: integer `42`, expected a path to a PEM file, or a secret reference such as { secret = \"arn:...\" }"
        );
    }
}
