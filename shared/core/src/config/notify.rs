//! `[[notify]]`: where hrsync tells people about what needs them (a disable held by the
//! breaker, a dead-lettered worker, a rehire, a licence pool without free units, a name
//! conflict, a burst of refused webhook deliveries). Each target is a Slack or Microsoft Teams
//! incoming webhook, e-mail through SMTP, or, on AWS, an SNS topic or SES.

use serde::{Deserialize, Serialize};

use super::SecretRef;

/// Messages a target sends at most per minute when none is set.
pub const DEFAULT_MAX_PER_MINUTE: u32 = 10;

/// One `[[notify]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    pub kind: NotifyKind,
    /// Names the target in logs and counters (default: `<kind><index>`, e.g. `slack0`).
    #[serde(default)]
    pub name: Option<String>,
    /// The events sent to this target (default: all).
    #[serde(default)]
    pub events: Option<Vec<NotifyEvent>>,
    /// At most this many messages per minute; the rest are counted and summed up in one
    /// message once the target may send again.
    #[serde(default = "default_max_per_minute")]
    pub max_per_minute: u32,
    /// `slack` / `teams`: the incoming webhook's URL (a secret: whoever has it can post).
    #[serde(default)]
    pub url: Option<SecretRef>,
    /// `smtp`: the server.
    #[serde(default)]
    pub host: Option<String>,
    /// `smtp`: default 587 with `tls = "starttls"`, 465 with `"tls"`, 25 with `"none"`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `smtp`: `starttls` (default), `tls` (implicit TLS) or `none` (a relay on the host only).
    #[serde(default)]
    pub tls: Option<SmtpTls>,
    /// `smtp`: optional credentials, both or neither.
    #[serde(default)]
    pub username: Option<SecretRef>,
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// `smtp` / `ses`: the sender address.
    #[serde(default)]
    pub from: Option<String>,
    /// `smtp` / `ses`: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// `sns`: the topic's ARN.
    #[serde(default)]
    pub topic_arn: Option<String>,
}

fn default_max_per_minute() -> u32 {
    DEFAULT_MAX_PER_MINUTE
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Slack,
    Teams,
    Smtp,
    Sns,
    Ses,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Smtp => "smtp",
            Self::Sns => "sns",
            Self::Ses => "ses",
        }
    }

    /// Sent through AWS APIs with the function's role (no secret): the AWS runtime only.
    pub fn is_aws(self) -> bool {
        matches!(self, Self::Sns | Self::Ses)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

/// What a target can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The breaker (or an account owned by another worker) holds a worker for a human.
    Held,
    /// A worker's message ran out of attempts.
    DeadLettered,
    /// A former worker came back.
    Rehire,
    /// A licence has no free unit.
    LicenseExhausted,
    /// A chosen name belongs to another directory account.
    NameConflict,
    /// A source's webhook deliveries are being refused.
    WebhookRejected,
}

impl NotifyEvent {
    pub const ALL: [Self; 6] = [
        Self::Held,
        Self::DeadLettered,
        Self::Rehire,
        Self::LicenseExhausted,
        Self::NameConflict,
        Self::WebhookRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::DeadLettered => "dead_lettered",
            Self::Rehire => "rehire",
            Self::LicenseExhausted => "license_exhausted",
            Self::NameConflict => "name_conflict",
            Self::WebhookRejected => "webhook_rejected",
        }
    }
}

impl NotifyTarget {
    /// The target's name: its `name`, else `<kind><index>`.
    pub fn name(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}{index}", self.kind.as_str()))
    }

    /// Whether this target is told about `event`.
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.contains(&event))
    }

    /// `smtp`: the port, from `tls` when not given.
    pub fn smtp_port(&self) -> u16 {
        self.port
            .unwrap_or(match self.tls.unwrap_or(SmtpTls::Starttls) {
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
                SmtpTls::None => 25,
            })
    }

    /// The secret references of this target.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.url
            .iter()
            .chain(self.username.iter())
            .chain(self.password.iter())
    }

    /// Required keys per kind, and keys another kind's only. `key` is `notify[<index>]`.
    pub(crate) fn validate(&self, key: &str) -> Result<(), (String, String)> {
        let err = |field: &str, message: String| Err((format!("{key}.{field}"), message));
        let kind = self.kind.as_str();
        if let Some(name) = &self.name
            && (name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)))
        {
            return err("name", "must be letters, digits, '-' or '_'".into());
        }
        if self.max_per_minute == 0 {
            return err(
                "max_per_minute",
                "must be at least 1 (leave the target out to send nothing)".into(),
            );
        }
        if self.events.as_ref().is_some_and(Vec::is_empty) {
            return err(
                "events",
                format!(
                    "lists no event: leave it out for all, or name some of {}",
                    NotifyEvent::ALL.map(NotifyEvent::as_str).join(", ")
                ),
            );
        }
        let given = [
            ("url", self.url.is_some()),
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("tls", self.tls.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
            ("topic_arn", self.topic_arn.is_some()),
        ];
        let (required, allowed): (&[&str], &[&str]) = match self.kind {
            NotifyKind::Slack | NotifyKind::Teams => (&["url"], &["url"]),
            NotifyKind::Smtp => (
                &["host", "from", "to"],
                &["host", "port", "tls", "username", "password", "from", "to"],
            ),
            NotifyKind::Sns => (&["topic_arn"], &["topic_arn"]),
            NotifyKind::Ses => (&["from", "to"], &["from", "to"]),
        };
        for (field, present) in given {
            if present && !allowed.contains(&field) {
                return err(field, format!("does not apply to kind = \"{kind}\""));
            }
            if !present && required.contains(&field) {
                return err(field, format!("is required for kind = \"{kind}\""));
            }
        }
        if self.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return err("host", "must name the SMTP server".into());
        }
        if self.username.is_some() != self.password.is_some() {
            return err(
                if self.username.is_some() {
                    "password"
                } else {
                    "username"
                },
                "SMTP credentials need both username and password (or neither)".into(),
            );
        }
        if self.tls == Some(SmtpTls::None) && self.username.is_some() {
            return err(
                "tls",
                "\"none\" would send the SMTP password in clear: use \"starttls\" or \"tls\""
                    .into(),
            );
        }
        let address = |text: &str| {
            let (local, domain) = text.rsplit_once('@').unwrap_or_default();
            !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace)
                || text.contains('<') && text.trim_end().ends_with('>')
        };
        if let Some(from) = &self.from
            && !address(from)
        {
            return err("from", format!("{from:?} is not an e-mail address"));
        }
        for (i, to) in self.to.iter().enumerate() {
            if !address(to) {
                return err(
                    &format!("to[{i}]"),
                    format!("{to:?} is not an e-mail address"),
                );
            }
        }
        if let Some(arn) = &self.topic_arn {
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" {
                return err(
                    "topic_arn",
                    format!("{arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, SecretRef, SecretUse};

    fn parse(notify: &str) -> Result<Config, ConfigError> {
        let text =
            format!("[identity]\nupn = [\"{{{{ given_name|slug }}}}@acme.example\"]\n\n{notify}");
        Config::parse(&text, "hrsync.toml")
    }

    /// The error's key and message, for a config that must not load.
    fn refused(notify: &str) -> (String, String) {
        let error = parse(notify).expect_err("refused");
        (error.key.clone().unwrap_or_default(), error.to_string())
    }

    #[test]
    fn targets_parse_with_their_secrets_for_notify() {
        let config = parse(
            r#"
[[notify]]
kind = "slack"
url = { env = "SLACK_URL" }
events = ["held", "dead_lettered"]

[[notify]]
kind = "smtp"
host = "smtp.acme.example"
from = "hrsync@acme.example"
to = ["it@acme.example"]
username = { env = "SMTP_USER" }
password = { ssm = "/hrsync/notify/smtp" }

[[notify]]
kind = "sns"
topic_arn = "arn:aws:sns:eu-west-1:123456789012:hrsync"
"#,
        )
        .unwrap();
        assert_eq!(config.notify.len(), 3);
        assert!(config.notify[0].wants(super::NotifyEvent::Held));
        assert!(!config.notify[0].wants(super::NotifyEvent::Rehire));
        assert!(
            config.notify[2].wants(super::NotifyEvent::Rehire),
            "all by default"
        );
        assert_eq!(config.notify[1].smtp_port(), 587, "STARTTLS by default");
        assert_eq!(config.notify[0].name(0), "slack0");
        let notify: Vec<_> = config
            .secret_refs()
            .filter(|(using, _)| *using == SecretUse::Notify)
            .map(|(_, secret)| secret.clone())
            .collect();
        assert_eq!(
            notify,
            vec![
                SecretRef::Env("SLACK_URL".into()),
                SecretRef::Env("SMTP_USER".into()),
                SecretRef::Ssm("/hrsync/notify/smtp".into()),
            ]
        );
    }

    #[test]
    fn every_bad_target_names_its_key() {
        for (notify, key, says) in [
            (
                "[[notify]]\nkind = \"pager\"\n",
                "notify[0].kind",
                "unknown variant `pager`",
            ),
            (
                "[[notify]]\nkind = \"slack\"\n",
                "notify[0].url",
                "is required for kind = \"slack\"",
            ),
            (
                "[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\n",
                "notify[0].url",
                "secrets are never written inline",
            ),
            (
                "[[notify]]\nkind = \"teams\"\nurl = { env = \"U\" }\nevents = [\"held\", \"fired\"]\n",
                "notify[0].events[1]",
                "unknown variant `fired`",
            ),
            (
                "[[notify]]\nkind = \"teams\"\nurl = { env = \"U\" }\nevents = []\n",
                "notify[0].events",
                "lists no event",
            ),
            (
                "[[notify]]\nkind = \"slack\"\nurl = { env = \"U\" }\nhost = \"smtp\"\n",
                "notify[0].host",
                "does not apply to kind = \"slack\"",
            ),
            (
                "[[notify]]\nkind = \"smtp\"\nhost = \"smtp.acme.example\"\nto = [\"it@acme.example\"]\n",
                "notify[0].from",
                "is required for kind = \"smtp\"",
            ),
            (
                "[[notify]]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"hrsync@acme.example\"\nto = [\"nobody\"]\n",
                "notify[0].to[0]",
                "is not an e-mail address",
            ),
            (
                "[[notify]]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"a@acme.example\"\nto = [\"b@acme.example\"]\nusername = { env = \"U\" }\n",
                "notify[0].password",
                "both username and password",
            ),
            (
                "[[notify]]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"a@acme.example\"\nto = [\"b@acme.example\"]\ntls = \"none\"\nusername = { env = \"U\" }\npassword = { env = \"P\" }\n",
                "notify[0].tls",
                "in clear",
            ),
            (
                "[[notify]]\nkind = \"sns\"\ntopic_arn = \"hrsync\"\n",
                "notify[0].topic_arn",
                "not an SNS topic ARN",
            ),
            (
                "[[notify]]\nkind = \"ses\"\nfrom = \"a@acme.example\"\n",
                "notify[0].to",
                "is required for kind = \"ses\"",
            ),
            (
                "[[notify]]\nkind = \"slack\"\nurl = { env = \"U\" }\nmax_per_minute = 0\n",
                "notify[0].max_per_minute",
                "at least 1",
            ),
            (
                "[[notify]]\nkind = \"slack\"\nname = \"ops\"\nurl = { env = \"U\" }\n\n[[notify]]\nkind = \"teams\"\nname = \"ops\"\nurl = { env = \"V\" }\n",
                "notify[1].name",
                "names another target",
            ),
        ] {
            let (got, message) = refused(notify);
            assert_eq!(got, key, "{message}");
            assert!(message.contains(says), "{says:?} in {message}");
        }
    }
}

#[cfg(test)]
mod readme {
    /// The README's `[[notify]]` examples are configs that load.
    #[test]
    fn the_readmes_notify_examples_parse() {
        let readme = include_str!("../../../../README.md");
        let section = readme
            .split("### Notifications")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README has a Notifications section");
        let blocks: Vec<&str> = section
            .split("```toml\n")
            .skip(1)
            .filter_map(|rest| rest.split("```").next())
            .collect();
        let targets: Vec<usize> = blocks
            .iter()
            .map(|block| {
                let text = format!(
                    "[identity]\nupn = [\"{{{{ given_name|slug }}}}@acme.example\"]\n\n{block}"
                );
                crate::Config::parse(&text, "README.md")
                    .expect("the example parses")
                    .notify
                    .len()
            })
            .collect();
        assert_eq!(targets, [3, 2], "the local and the AWS examples");
    }
}
