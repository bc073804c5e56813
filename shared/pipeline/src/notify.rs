//! Notifications (`[[notify]]`): telling people about what needs them. The stages and the
//! runner hand a [`Notice`] to the pipeline's [`Notifications`], which sends it to each target
//! that wants its event, once (deduplicated in the store, so a stage that runs again does not
//! send it again) and at most `max_per_minute` per target (the store's sliding-window budget;
//! the rest are counted and summed up in one message when the target may send again).
//!
//! Sending is best effort: a target that fails or hangs (bounded by [`SEND_TIMEOUT`]) is
//! logged as a warning without personal data and counted, and never fails or retries the
//! pipeline's work. A notice carries the worker's display name, personal data that goes to
//! the targets only: logs name the event and the target, and the worker at debug level.
//!
//! Each target is a [`Notifier`]: Slack and Teams incoming webhooks here ([`ChatWebhook`]),
//! SMTP in the local runtime (`hrsync_local::smtp`), SNS and SES in the AWS runtime.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hrsync_core::config::{NotifyEvent, NotifyKind, NotifyTarget, SecretRef};
use hrsync_core::{Config, WorkerKey};
use jiff::Timestamp;

use crate::ports::StateStore;

/// How long one message may take to send before it is given up on.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a sent notice is remembered (a stage running again within it sends nothing).
pub const REMEMBERED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The rate limit's window.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One thing to tell: what happened, to whom, why, and the commands that act on it.
#[derive(Clone, PartialEq, Eq)]
pub struct Notice {
    pub event: NotifyEvent,
    /// The event's identity: the same event (a stage that runs again) has the same id and is
    /// sent once.
    pub id: String,
    pub worker: WorkerKey,
    /// Personal data: in the message only, never in a log.
    pub display_name: Option<String>,
    /// What happened, e.g. "A disable is held for a human".
    pub what: String,
    pub why: String,
    /// The exact commands that act on it.
    pub commands: Vec<String>,
}

impl fmt::Debug for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The display name never reaches a log.
        f.debug_struct("Notice")
            .field("event", &self.event)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Notice {
    /// The subject line (an e-mail's subject): what happened, and to whom.
    pub fn subject(&self) -> String {
        format!("hrsync: {} ({})", self.what, self.who())
    }

    fn who(&self) -> String {
        match &self.display_name {
            Some(name) => format!("{}, {name}", self.worker),
            None => self.worker.to_string(),
        }
    }

    /// The message: what, who, why, and the commands.
    pub fn text(&self) -> String {
        let mut text = format!(
            "hrsync: {}\nWho: {}\nWhy: {}\n",
            self.what,
            self.who(),
            self.why
        );
        for command in &self.commands {
            text.push_str(&format!("Run: {command}\n"));
        }
        text
    }
}

/// A message to one target: a subject (e-mail, SNS) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
}

/// Builds the target (`key` is `notify[<index>]`, which errors name); `Ok(None)`: this
/// runtime does not send that kind.
pub type BuildTarget<'a> =
    dyn Fn(&str, &NotifyTarget) -> Result<Option<Arc<dyn Notifier>>, String> + 'a;

pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// The port: one target's way of sending. The error says what failed without the target's
/// secret (a webhook URL) or the message's content.
pub trait Notifier: Send + Sync + fmt::Debug {
    fn send<'a>(&'a self, message: &'a Message) -> Sending<'a>;
}

/// A configured target.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub events: Option<Vec<NotifyEvent>>,
    pub max_per_minute: u32,
    pub notifier: Arc<dyn Notifier>,
}

impl Target {
    fn wants(&self, event: NotifyEvent) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&event))
    }
}

/// The pipeline's targets; [`Notifications::none`] sends nothing.
#[derive(Debug, Default)]
pub struct Notifications {
    targets: Vec<Target>,
    /// Per target: messages the rate limit kept back since its last message.
    suppressed: Mutex<HashMap<String, u64>>,
    sent: AtomicU64,
    failed: AtomicU64,
    timeout: Option<Duration>,
}

impl Notifications {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(targets: Vec<Target>) -> Self {
        Self {
            targets,
            ..Self::default()
        }
    }

    /// With another send timeout than [`SEND_TIMEOUT`] (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The targets of `config`, each built by the runtime's `build` (chat webhooks with
    /// [`chat_webhook`], SMTP locally, SNS and SES on AWS), which answers `Ok(None)` for a kind
    /// its runtime does not send (warned about, and left out). Errors name the key.
    pub fn from_config(config: &Config, build: &BuildTarget<'_>) -> Result<Self, String> {
        let mut targets = Vec::new();
        for (index, target) in config.notify.iter().enumerate() {
            let key = format!("notify[{index}]");
            let name = target.name(index);
            match build(&key, target)? {
                Some(notifier) => targets.push(Target {
                    name,
                    events: target.events.clone(),
                    max_per_minute: target.max_per_minute,
                    notifier,
                }),
                None => tracing::warn!(
                    target = %name,
                    kind = target.kind.as_str(),
                    "{key}: this runtime does not send kind {}; left out",
                    target.kind.as_str()
                ),
            }
        }
        Ok(Self::new(targets))
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Messages sent since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Messages that failed to send since start.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Sends `notice` to each target that wants it, once per target and within its rate.
    /// Never fails: problems are logged (without personal data) and counted.
    pub async fn dispatch<S: StateStore>(&self, store: &S, notice: &Notice, now: Timestamp) {
        for target in self.targets.iter().filter(|t| t.wants(notice.event)) {
            let mark = format!("notify#{}#{}", target.name, notice.id);
            let expires = now
                .checked_add(jiff::SignedDuration::try_from(REMEMBERED_FOR).unwrap_or_default())
                .unwrap_or(Timestamp::MAX);
            match store.first_delivery(&mark, now, expires).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(target = %target.name, id = %notice.id, "notice sent before");
                    continue;
                }
                // Better twice than never: sent anyway.
                Err(error) => {
                    tracing::warn!(target = %target.name, event = notice.event.as_str(), %error, "cannot check whether a notice was sent before")
                }
            }
            let budget = format!("notify#{}", target.name);
            let within = store
                .take_budget(
                    &budget,
                    &mark,
                    now,
                    RATE_WINDOW,
                    u64::from(target.max_per_minute),
                )
                .await
                .unwrap_or(true);
            if !within {
                *self.lock().entry(target.name.clone()).or_default() += 1;
                tracing::info!(target = %target.name, event = notice.event.as_str(), "notice kept back: the target's max_per_minute is reached");
                continue;
            }
            let kept_back = self.lock().remove(&target.name).unwrap_or_default();
            if kept_back > 0 {
                let summary = Message {
                    subject: format!("hrsync: {kept_back} notifications were not sent"),
                    text: format!(
                        "hrsync: {kept_back} more notifications were not sent within a minute (this target's max_per_minute is {}).\nRun: hrsync holds list\nRun: hrsync dlq list\nRun: hrsync audit --since <when>\n",
                        target.max_per_minute
                    ),
                };
                self.send(target, notice.event, &summary).await;
            }
            let message = Message {
                subject: notice.subject(),
                text: notice.text(),
            };
            self.send(target, notice.event, &message).await;
        }
    }

    async fn send(&self, target: &Target, event: NotifyEvent, message: &Message) {
        let timeout = self.timeout.unwrap_or(SEND_TIMEOUT);
        let result = match tokio::time::timeout(timeout, target.notifier.send(message)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {}s", timeout.as_secs_f32())),
        };
        match result {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target = %target.name, event = event.as_str(), "notification sent");
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target = %target.name, event = event.as_str(), %error, "a notification could not be sent (the work goes on)");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.suppressed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A `slack` or `teams` target's [`ChatWebhook`], its URL resolved with `resolve`; `Ok(None)`
/// for other kinds.
pub fn chat_webhook(
    key: &str,
    target: &NotifyTarget,
    resolve: &dyn Fn(&SecretRef) -> Result<String, String>,
    http: &reqwest::Client,
) -> Result<Option<Arc<dyn Notifier>>, String> {
    if !matches!(target.kind, NotifyKind::Slack | NotifyKind::Teams) {
        return Ok(None);
    }
    let url = target
        .url
        .as_ref()
        .ok_or_else(|| format!("{key}.url: is required"))?;
    let url = resolve(url).map_err(|e| format!("{key}.url: {e}"))?;
    let webhook =
        ChatWebhook::new(target.kind, &url, http.clone()).map_err(|e| format!("{key}.url: {e}"))?;
    Ok(Some(Arc::new(webhook)))
}

/// A Slack incoming webhook (`{"text": ...}`) or a Microsoft Teams webhook (a Workflows
/// "when a Teams webhook request is received" flow, or a channel's incoming webhook: a
/// message with one Adaptive Card).
pub struct ChatWebhook {
    kind: NotifyKind,
    /// A secret: whoever has it can post. Never in a log or an error.
    url: reqwest::Url,
    http: reqwest::Client,
}

impl fmt::Debug for ChatWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatWebhook")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ChatWebhook {
    pub fn new(kind: NotifyKind, url: &str, http: reqwest::Client) -> Result<Self, String> {
        let url =
            reqwest::Url::parse(url).map_err(|e| format!("the webhook URL does not parse: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("the webhook URL must be https".into());
        }
        Ok(Self { kind, url, http })
    }

    /// The JSON body of `message`.
    pub fn body(&self, message: &Message) -> serde_json::Value {
        match self.kind {
            NotifyKind::Teams => serde_json::json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        // One TextBlock a line: Teams does not break a TextBlock's text at
                        // a single newline.
                        "body": message
                            .text
                            .lines()
                            .map(|line| serde_json::json!({
                                "type": "TextBlock",
                                "text": line,
                                "wrap": true,
                            }))
                            .collect::<Vec<_>>(),
                    },
                }],
            }),
            _ => serde_json::json!({ "text": message.text }),
        }
    }
}

impl Notifier for ChatWebhook {
    fn send<'a>(&'a self, message: &'a Message) -> Sending<'a> {
        Box::pin(async move {
            let kind = self.kind.as_str();
            let answer = self
                .http
                .post(self.url.clone())
                .json(&self.body(message))
                .send()
                .await
                .map_err(|e| format!("{kind} webhook: {}", e.without_url()))?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            Err(format!("{kind} webhook answered {status}"))
        })
    }
}
