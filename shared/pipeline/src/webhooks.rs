//! The HTTP face of intake: the webhook endpoint, the same router in `hrsync serve` (on its
//! own listener) and in the intake Lambda (a Function URL or HTTP API event, through
//! `lambda_http`).
//!
//! - `POST /webhooks/{source}`: a delivery for `[source.<source>]`, verified by the source's
//!   connector over the raw body. 202 `{"accepted","queued","duplicates","stale"}` when taken
//!   in: records that arrive whole are kept, thin events are queued for the fetch of the full
//!   record (hr-events), and the directory work follows asynchronously. A redelivery is
//!   recognised, counted as a duplicate and audited under its worker (`duplicate`), as is a
//!   record older than the one kept (`stale`). 200 for a vendor's handshake (HiBob's ping), and
//!   the connector's own answer where its protocol has one (SCIM's BulkResponse). 401 on a bad
//!   signature or token (no detail), 400 on a body that does not parse (what is wrong, never
//!   the values), 404 for an unknown source, 413 above [`MAX_BODY`], 503 when the store
//!   cannot take it (the sender retries).
//! - `GET /healthz`: 200 `{"status":"ok"}` or 503 `{"status":"unavailable"}` when the queues
//!   cannot be read ([`Health::Public`]: the intake Lambda's Function URL, open to anyone);
//!   [`Health::Detailed`] (`hrsync serve` on loopback) adds the queues' depths, and the error
//!   on 503. The error is logged either way.
//!
//! Rejections (401 `unauthorized`, 400 `unreadable`, and each record of a delivery `refused`
//! on its own) are audited under `<source>:#webhook` with the reason, size and digest, never
//! the body; but they cost the sender nothing, so they are counted and sampled rather than
//! each written ([`REJECTION_WINDOW`]): per source and action, the first at once, then at
//! most one record per window carrying `count`, the rejections since the previous record.
//! The counts live in the router's memory: what a process (or a Lambda container) counted
//! after its last record is lost when it ends, unless its owner calls
//! [`Endpoint::audit_rejections`] (`hrsync serve` does every window and when it stops).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hrsync_core::WorkerKey;
use hrsync_hr::{Action, BadPayload, Delivery, Unauthorized};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::ports::{AuditRecord, Queue, QueueName, StateStore, Timers};
use crate::stages::intake::{Incoming, Notice, audit_duplicate};
use crate::stages::{Outcome, Pipeline};

/// The worker key's employee id under which a source's refused deliveries are audited
/// (`hrsync audit <source>:#webhook`).
pub const REJECTED_DELIVERIES: &str = "#webhook";

/// The largest delivery taken.
pub const MAX_BODY: usize = 1024 * 1024;

/// Told of every outcome a delivery produced: `hrsync serve` wakes its runner and counts it;
/// the intake Lambda has nothing to wake (the queues' event source mappings do).
pub type OnTaken = Arc<dyn Fn(Outcome) + Send + Sync>;

/// How often a source's rejections of one kind are audited at most: the first at once, then
/// one record per window carrying their count. Bounds what unauthenticated requests can write
/// (on AWS each record is a DynamoDB transaction kept for 400 days).
pub const REJECTION_WINDOW: SignedDuration = SignedDuration::from_mins(1);

/// What `GET /healthz` tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Only whether the queues answer: for an endpoint anyone can reach.
    Public,
    /// The queues' depths too, and the error when they cannot be read: for the operator.
    Detailed,
}

struct Webhooks<S, Q, T> {
    pipeline: Arc<Pipeline<S, Q, T>>,
    on_taken: OnTaken,
    health: Health,
    rejections: Rejections,
}

/// The webhook endpoint over a pipeline: its [`router`](Endpoint::router), and what the
/// process that serves it runs beside it ([`audit_rejections`](Endpoint::audit_rejections)).
pub struct Endpoint<S, Q, T> {
    app: Arc<Webhooks<S, Q, T>>,
}

impl<S, Q, T> std::fmt::Debug for Endpoint<S, Q, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").finish_non_exhaustive()
    }
}

impl<S, Q, T> Endpoint<S, Q, T>
where
    S: StateStore + 'static,
    Q: Queue + 'static,
    T: Timers + 'static,
{
    pub fn new(pipeline: Arc<Pipeline<S, Q, T>>, on_taken: OnTaken, health: Health) -> Self {
        Self {
            app: Arc::new(Webhooks {
                pipeline,
                on_taken,
                health,
                rejections: Rejections::default(),
            }),
        }
    }

    /// The webhook endpoint and the health check.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhooks/{source}", post(webhook::<S, Q, T>))
            .route("/healthz", get(healthz::<S, Q, T>))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(axum::middleware::from_fn(json_errors))
            .with_state(Arc::clone(&self.app))
    }

    /// Audits the rejections counted since their kind's last record: those whose window has
    /// passed, or all of them with `all` (before the process stops). Returns the records written.
    pub async fn audit_rejections(&self, all: bool) -> usize {
        let pipeline = &*self.app.pipeline;
        let due = self.app.rejections.due(pipeline.clock.now(), all);
        let written = due.len();
        for sample in due {
            write_rejection(pipeline, sample).await;
        }
        written
    }
}

/// The webhook endpoint and the health check over `pipeline` (see [`Endpoint`] to audit the
/// rejections still counted when the process stops).
pub fn router<S, Q, T>(
    pipeline: Arc<Pipeline<S, Q, T>>,
    on_taken: OnTaken,
    health: Health,
) -> Router
where
    S: StateStore + 'static,
    Q: Queue + 'static,
    T: Timers + 'static,
{
    Endpoint::new(pipeline, on_taken, health).router()
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Every error answer is JSON: those made outside the handlers (a body over [`MAX_BODY`], a
/// path or method no route takes, a request timeout) come as plain text or empty from axum
/// and tower, and become `{"error": ...}` here. Also put around `hrsync serve`'s timeout.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // `application/json`, and the `+json` types (SCIM's `application/scim+json`).
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim() == "application/json" || media.trim().ends_with("+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("the body is over {MAX_BODY} bytes"),
        StatusCode::NOT_FOUND => "no such endpoint: POST /webhooks/<source> or GET /healthz".into(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this endpoint".into(),
        StatusCode::REQUEST_TIMEOUT => "the request took too long to arrive".into(),
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    };
    let mut json = reply(status, json!({ "error": error }));
    // Keep what the original answer told the client beyond its body (Allow on a 405).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

async fn healthz<S, Q, T>(State(app): State<Arc<Webhooks<S, Q, T>>>) -> Response
where
    S: StateStore,
    Q: Queue,
    T: Timers,
{
    let mut queues = serde_json::Map::new();
    for name in QueueName::ALL {
        match app.pipeline.queue.depth(name).await {
            Ok(depth) => {
                queues.insert(
                    name.to_string(),
                    json!({"visible": depth.visible, "in_flight": depth.in_flight, "dead": depth.dead}),
                );
            }
            Err(error) => {
                tracing::warn!(queue = %name, %error, "health check: the queues cannot be read");
                let answer = match app.health {
                    Health::Public => json!({"status": "unavailable"}),
                    Health::Detailed => {
                        json!({"status": "unavailable", "error": error.to_string()})
                    }
                };
                return reply(StatusCode::SERVICE_UNAVAILABLE, answer);
            }
        }
    }
    let answer = match app.health {
        Health::Public => json!({"status": "ok"}),
        Health::Detailed => json!({"status": "ok", "queues": queues}),
    };
    reply(StatusCode::OK, answer)
}

async fn webhook<S, Q, T>(
    State(app): State<Arc<Webhooks<S, Q, T>>>,
    Path(source_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response
where
    S: StateStore,
    Q: Queue,
    T: Timers,
{
    let pipeline = &*app.pipeline;
    let Some(connector) = pipeline.hr.get(&source_name) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no webhook source named {source_name:?} (a [source.<name>] that is not a csv export)")}),
        );
    };
    let delivery = Delivery {
        headers: &headers,
        body: &body,
        // Replay protection is about the real world's time, not the run's clock.
        received_at: Timestamp::now(),
    };
    if let Err(Unauthorized(reason)) = connector.verify(&delivery) {
        reject(&app, &source_name, &delivery, "unauthorized", &reason).await;
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid signature"}),
        );
    }
    let parsed = match connector.parse(&delivery) {
        Ok(parsed) => parsed,
        Err(BadPayload(problem)) => {
            reject(&app, &source_name, &delivery, "unreadable", &problem).await;
            return reply(StatusCode::BAD_REQUEST, json!({"error": problem}));
        }
    };
    if parsed.handshake {
        return reply(StatusCode::OK, json!({"handshake": "ok"}));
    }
    // Records refused one by one (the rest of the delivery is taken): each is audited, so a
    // worker who never arrives can be traced to the delivery that carried them.
    for refused in &parsed.refused {
        let what = refused.operation.as_deref().unwrap_or("a record");
        reject(
            &app,
            &source_name,
            &delivery,
            "refused",
            &format!("{what} refused: {}", refused.problem),
        )
        .await;
    }
    let mut tally = Tally::default();
    for event in &parsed.events {
        let worker = WorkerKey::new(source_name.as_str(), event.employee_id.as_str());
        let delivery = format!("{source_name}:{}", event.dedupe);
        let trace = format!("webhook:{delivery}");
        let cause = match event.event_type.as_str() {
            "" => format!("webhook {source_name}"),
            event_type => format!("webhook {source_name}: {event_type}"),
        };
        let outcome = match &event.action {
            Action::Record(snapshot) => {
                let taken = pipeline
                    .intake(Incoming {
                        snapshot,
                        delivery: &delivery,
                        cause: &cause,
                        trace: &trace,
                    })
                    .await;
                // The intake stage leaves a redelivered record unaudited (an export imported
                // again repeats every row); a vendor's redelivery is worth a trace.
                match taken {
                    Ok(Outcome::Duplicate { worker }) => {
                        let now = pipeline.clock.now();
                        audit_duplicate(&*pipeline.store, &worker, now, &delivery, &cause, &trace)
                            .await
                            .map(|()| Outcome::Duplicate { worker })
                    }
                    taken => taken,
                }
            }
            Action::Fetch | Action::Deleted => {
                pipeline
                    .notice(Notice {
                        worker: &worker,
                        delivery: &delivery,
                        cause: &cause,
                        trace: &trace,
                    })
                    .await
            }
        };
        match outcome {
            Ok(outcome) => {
                tally.count(&outcome);
                (app.on_taken)(outcome);
            }
            Err(error) => {
                tracing::error!(source = %source_name, %error, "cannot take in a delivery");
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "cannot store the delivery now; retry"}),
                );
            }
        }
    }
    // One line per delivery; counts only (the workers are personal data: debug).
    tracing::info!(
        source = %source_name,
        accepted = tally.accepted,
        queued = tally.queued,
        duplicates = tally.duplicates,
        stale = tally.stale,
        "delivery taken in"
    );
    if let Some(answer) = connector.answer(&parsed) {
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
        let mut response = reply(status, answer.body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type),
        );
        return response;
    }
    reply(
        StatusCode::ACCEPTED,
        json!({
            "accepted": tally.accepted,
            "queued": tally.queued,
            "duplicates": tally.duplicates,
            "stale": tally.stale,
        }),
    )
}

/// What the events of one delivery came to.
#[derive(Debug, Default)]
struct Tally {
    /// Taken: records kept, and thin events queued for their fetch.
    accepted: usize,
    /// Of those, thin events whose record is fetched next.
    queued: usize,
    duplicates: usize,
    stale: usize,
}

impl Tally {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Duplicate { .. } => self.duplicates += 1,
            Outcome::Stale { .. } => self.stale += 1,
            Outcome::Queued { .. } => {
                self.queued += 1;
                self.accepted += 1;
            }
            _ => self.accepted += 1,
        }
    }
}

/// Counts a rejection, and audits it when its kind is due ([`REJECTION_WINDOW`]): why, the
/// size and digest, never the content (personal data). Best effort: a store that cannot take
/// it does not change the answer.
async fn reject<S: StateStore, Q, T>(
    app: &Webhooks<S, Q, T>,
    source: &str,
    delivery: &Delivery<'_>,
    action: &'static str,
    reason: &str,
) {
    tracing::debug!(%source, action, %reason, "webhook rejected");
    let rejection = Rejection {
        reason: reason.to_owned(),
        bytes: delivery.body.len(),
        sha256: delivery.digest(),
    };
    let now = app.pipeline.clock.now();
    if let Some(sample) = app.rejections.count(source, action, now, rejection) {
        write_rejection(&app.pipeline, sample).await;
    }
}

async fn write_rejection<S: StateStore, Q, T>(pipeline: &Pipeline<S, Q, T>, sample: Sample) {
    let Sample {
        source,
        action,
        count,
        since,
        latest,
    } = sample;
    tracing::warn!(%source, action, count, reason = %latest.reason, "webhook deliveries rejected");
    let key = WorkerKey::new(source.as_str(), REJECTED_DELIVERIES);
    let cause = match count {
        1 => format!("webhook {source}: {}", latest.reason),
        _ => format!(
            "webhook {source}: {count} {action} since {since}; the latest: {}",
            latest.reason
        ),
    };
    let mut record = AuditRecord::new(
        &key,
        pipeline.clock.now(),
        "intake",
        action,
        cause,
        &format!("webhook:{source}:sha256:{}", latest.sha256),
    );
    record.after = Some(json!({
        "count": count,
        "since": since,
        "bytes": latest.bytes,
        "sha256": latest.sha256,
    }));
    if let Err(error) = pipeline.store.append_audit(&record).await {
        tracing::error!(%source, %error, "cannot audit rejected deliveries");
    }
    pipeline
        .notify(crate::notify::Notice {
            event: hrsync_core::config::NotifyEvent::WebhookRejected,
            id: format!("rejected#{source}#{action}#{since}#{count}"),
            worker: key.clone(),
            display_name: None,
            what: format!("Webhook deliveries to source {source} are refused ({action})"),
            why: format!(
                "{}. A sender with a wrong or rotated secret, a changed payload, or someone probing the endpoint",
                record.cause
            ),
            commands: vec![
                format!(
                    "hrsync audit {} --action {action}",
                    crate::stages::quoted(&key.to_string())
                ),
                "hrsync doctor".into(),
            ],
        })
        .await;
}

/// Rejections counted and not yet audited, per source and action. Only configured sources get
/// here (an unknown one is a 404), so the map stays as small as the config.
#[derive(Debug, Default)]
struct Rejections {
    kinds: Mutex<HashMap<(String, &'static str), Pending>>,
}

#[derive(Debug)]
struct Pending {
    /// When this kind was last audited (never: due at once).
    audited_at: Option<Timestamp>,
    /// Rejections since then.
    count: u64,
    /// When the first of them came.
    since: Timestamp,
    /// The last of them, the example the next record names.
    latest: Option<Rejection>,
}

/// What one rejected delivery is audited with.
#[derive(Debug, Clone)]
struct Rejection {
    reason: String,
    bytes: usize,
    sha256: String,
}

/// One audit record's worth of rejections.
#[derive(Debug)]
struct Sample {
    source: String,
    action: &'static str,
    count: u64,
    since: Timestamp,
    latest: Rejection,
}

impl Rejections {
    /// Counts a rejection; returns what to audit when its kind is due (the first ever, or a
    /// window after its last record), this rejection included.
    fn count(
        &self,
        source: &str,
        action: &'static str,
        now: Timestamp,
        rejection: Rejection,
    ) -> Option<Sample> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = kinds
            .entry((source.to_owned(), action))
            .or_insert_with(|| Pending {
                audited_at: None,
                count: 0,
                since: now,
                latest: None,
            });
        if pending.count == 0 {
            pending.since = now;
        }
        pending.count += 1;
        pending.latest = Some(rejection);
        pending.take(source, action, now, false)
    }

    /// Takes every kind with rejections not yet audited whose window has passed (all of them
    /// with `all`).
    fn due(&self, now: Timestamp, all: bool) -> Vec<Sample> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds
            .iter_mut()
            .filter_map(|((source, action), pending)| pending.take(source, action, now, all))
            .collect()
    }
}

impl Pending {
    fn take(
        &mut self,
        source: &str,
        action: &'static str,
        now: Timestamp,
        all: bool,
    ) -> Option<Sample> {
        let due = all
            || self
                .audited_at
                .is_none_or(|at| now.duration_since(at) >= REJECTION_WINDOW);
        if self.count == 0 || !due {
            return None;
        }
        let latest = self.latest.take()?;
        let sample = Sample {
            source: source.to_owned(),
            action,
            count: self.count,
            since: self.since,
            latest,
        };
        self.audited_at = Some(now);
        self.count = 0;
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::Request;
    use hrsync_core::Config;
    use hrsync_directory::graph::{Credential, GraphClient, GraphSettings};
    use hrsync_hr::{Connectors, signed_json};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::lookups::DirectoryLookups;
    use crate::memory::{MemoryQueue, MemoryStore, MemoryTimers};
    use crate::ports::{DeadLetter, Nudge, QueueDepth, QueueError, RetryOutcome};

    /// An error answer made outside the handlers becomes JSON; one already JSON, SCIM's
    /// included, is left as it is.
    #[tokio::test]
    async fn error_answers_are_json_and_json_answers_are_kept() {
        let router = Router::new()
            .route("/plain", get(|| async { (StatusCode::BAD_REQUEST, "plain text") }))
            .route(
                "/scim",
                get(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        [(header::CONTENT_TYPE, "application/scim+json")],
                        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400"}"#,
                    )
                }),
            )
            .layer(axum::middleware::from_fn(json_errors));
        let get_body = |path: &'static str| {
            let router = router.clone();
            async move {
                let request = Request::get(path).body(Body::empty()).unwrap();
                let response = router.oneshot(request).await.unwrap();
                let kind = response.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (kind, String::from_utf8(bytes.to_vec()).unwrap())
            }
        };
        let (kind, body) = get_body("/plain").await;
        assert_eq!(kind, "application/json");
        assert_eq!(body, r#"{"error":"bad request"}"#);
        let (kind, body) = get_body("/scim").await;
        assert_eq!(kind, "application/scim+json");
        assert!(body.contains("scim:api:messages:2.0:Error"), "{body}");
        let (_, body) = get_body("/nowhere").await;
        assert!(body.contains("no such endpoint"), "{body}");
    }

    const SECRET: &str = "webhooks-test-secret";
    const CONFIG: &str = r#"
[source.hr]
kind = "signed-json"
webhook_secret = { env = "HRSYNC_WEBHOOKS_TEST_SECRET" }

[identity]
upn = ["{{ given_name|slug }}.{{ family_name|slug }}@acme.example"]
"#;

    type TestPipeline = Pipeline<MemoryStore, MemoryQueue, MemoryTimers>;

    /// A pipeline on the memory ports with a signed-JSON source `hr` and a manual clock.
    fn pipeline() -> (Arc<TestPipeline>, Arc<ManualClock>) {
        pipeline_on(MemoryQueue::new())
    }

    fn pipeline_on<Q: Queue>(
        queue: Q,
    ) -> (
        Arc<Pipeline<MemoryStore, Q, MemoryTimers>>,
        Arc<ManualClock>,
    ) {
        pipeline_notifying(queue, crate::notify::Notifications::none())
    }

    fn pipeline_notifying<Q: Queue>(
        queue: Q,
        notify: crate::notify::Notifications,
    ) -> (
        Arc<Pipeline<MemoryStore, Q, MemoryTimers>>,
        Arc<ManualClock>,
    ) {
        let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
        let http = reqwest::Client::new();
        let resolve = |_: &hrsync_core::config::SecretRef| Ok(SECRET.to_owned());
        let hr =
            Connectors::from_config(&config.sources, hrsync_hr::Webhooks::Taken, &resolve, &http)
                .unwrap();
        let settings = GraphSettings::new("tenant", "client", Credential::ClientSecret("s".into()));
        let clock = Arc::new(ManualClock::new("2026-05-01T09:00:00Z".parse().unwrap()));
        let pipeline = Pipeline {
            config: Arc::new(config),
            store: Arc::new(MemoryStore::new()),
            queue: Arc::new(queue),
            timers: Arc::new(MemoryTimers::new()),
            // Never called: the webhook endpoint does not reach the directory.
            graph: Some(GraphClient::new(settings, http)),
            lookups: DirectoryLookups::PerWorker,
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            hr,
            notify: Arc::new(notify),
        };
        (Arc::new(pipeline), clock)
    }

    /// What an AWS error can say: names of the account's resources.
    const QUEUE_ERROR: &str =
        "AccessDenied: arn:aws:sqs:eu-west-1:123456789012:hrsync-worker-events.fifo";

    /// A queue whose every call fails, as SQS does when the role lost its permissions.
    struct Down;

    fn down<T>() -> Result<T, QueueError> {
        Err(QueueError::Backend(QUEUE_ERROR.to_owned()))
    }

    impl Queue for Down {
        async fn send(
            &self,
            _: QueueName,
            _: &Nudge,
            _: &str,
            _: Timestamp,
        ) -> Result<(), QueueError> {
            down()
        }
        async fn receive(
            &self,
            _: QueueName,
            _: usize,
            _: Timestamp,
            _: std::time::Duration,
        ) -> Result<Vec<crate::ports::Delivery>, QueueError> {
            down()
        }
        async fn ack(&self, _: &crate::ports::Delivery) -> Result<(), QueueError> {
            down()
        }
        async fn retry(
            &self,
            _: &crate::ports::Delivery,
            _: &str,
            _: Timestamp,
            _: std::time::Duration,
            _: u32,
        ) -> Result<RetryOutcome, QueueError> {
            down()
        }
        async fn postpone(
            &self,
            _: &crate::ports::Delivery,
            _: Timestamp,
            _: std::time::Duration,
        ) -> Result<(), QueueError> {
            down()
        }
        async fn dead_letter_abandoned(
            &self,
            _: QueueName,
            _: Timestamp,
            _: u32,
            _: &str,
        ) -> Result<usize, QueueError> {
            down()
        }
        async fn dead_letters(&self, _: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
            down()
        }
        async fn redrive(&self, _: QueueName, _: &str, _: Timestamp) -> Result<bool, QueueError> {
            down()
        }
        async fn depth(&self, _: QueueName) -> Result<QueueDepth, QueueError> {
            down()
        }
    }

    fn endpoint(pipeline: &Arc<TestPipeline>) -> Router {
        router(Arc::clone(pipeline), Arc::new(|_| {}), Health::Public)
    }

    /// A delivery to `hr` signed now with the test secret.
    fn signed(body: &Value, delivery: &str) -> Request<Body> {
        let body = serde_json::to_vec(body).unwrap();
        let at = Timestamp::now().as_second();
        Request::post("/webhooks/hr")
            .header("content-type", "application/json")
            .header(signed_json::TIMESTAMP_HEADER, at.to_string())
            .header(
                signed_json::SIGNATURE_HEADER,
                signed_json::sign(SECRET.as_bytes(), at, &body),
            )
            .header(signed_json::DELIVERY_HEADER, delivery)
            .body(Body::from(body))
            .unwrap()
    }

    async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("a JSON answer ({e}): {body:?}"));
        (status, body)
    }

    fn employee(id: &str, as_of: &str) -> Value {
        json!({
            "employee_id": id,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "status": "active",
            "hire_date": "2024-01-08",
            "as_of": as_of,
        })
    }

    async fn audit(pipeline: &TestPipeline, worker: &str) -> Vec<AuditRecord> {
        let key = WorkerKey::try_from(worker.to_owned()).unwrap();
        pipeline.store.audit(&key).await.unwrap()
    }

    #[tokio::test]
    async fn a_redelivered_record_is_answered_as_a_duplicate_and_audited_naming_the_delivery() {
        let (pipeline, _) = pipeline();
        let router = endpoint(&pipeline);
        let leaver = employee("7001", "2026-05-01T08:00:00Z");
        for expected in [
            json!({"accepted": 1, "queued": 0, "duplicates": 0, "stale": 0}),
            json!({"accepted": 0, "queued": 0, "duplicates": 1, "stale": 0}),
        ] {
            let (status, answer) = send(&router, signed(&leaver, "evt-leave")).await;
            assert_eq!((status, answer), (StatusCode::ACCEPTED, expected));
        }

        let records = audit(&pipeline, "hr:7001").await;
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["received", "duplicate"], "{records:#?}");
        let duplicate = &records[1];
        // The delivery is named by its signed bytes (the unsigned X-Hrsync-Delivery never is).
        let delivery = duplicate.after.as_ref().unwrap()["delivery"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            delivery.starts_with("hr:sha256:") && delivery.ends_with("#7001"),
            "{delivery}"
        );
        assert!(
            duplicate.cause.contains(&delivery) && duplicate.cause.contains("taken in before"),
            "the cause names the delivery and why it was dropped: {}",
            duplicate.cause
        );
        assert_eq!(
            duplicate.trace.as_deref(),
            Some(format!("webhook:{delivery}").as_str())
        );
    }

    #[tokio::test]
    async fn an_older_record_is_answered_as_stale_and_audited() {
        let (pipeline, _) = pipeline();
        let router = endpoint(&pipeline);
        let newer = employee("7002", "2026-05-01T08:00:00Z");
        let older = employee("7002", "2026-04-30T17:00:00Z");
        send(&router, signed(&newer, "evt-2")).await;
        let (status, answer) = send(&router, signed(&older, "evt-1")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(answer["stale"], 1, "{answer}");

        let records = audit(&pipeline, "hr:7002").await;
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["received", "stale"], "{records:#?}");
        assert!(
            records[1].cause.contains("hr:sha256:") && records[1].cause.contains("#7002"),
            "{}",
            records[1].cause
        );
    }

    fn unsigned(body: &Value) -> Request<Body> {
        Request::post("/webhooks/hr")
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap()
    }

    /// The `count` each record carries.
    fn counts(records: &[AuditRecord]) -> Vec<u64> {
        records
            .iter()
            .map(|r| {
                r.after
                    .as_ref()
                    .and_then(|a| a["count"].as_u64())
                    .unwrap_or_else(|| panic!("each rejection record carries its count: {r:#?}"))
            })
            .collect()
    }

    /// A Slack webhook on loopback keeping the texts it is sent.
    async fn slack() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let texts: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let kept = Arc::clone(&texts);
        let app = Router::new().route(
            "/hook",
            post(move |body: Json<Value>| {
                let kept = Arc::clone(&kept);
                async move {
                    let text = body.0["text"].as_str().unwrap_or_default().to_owned();
                    kept.lock().unwrap().push(text);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, texts)
    }

    #[tokio::test]
    async fn a_burst_of_refused_deliveries_is_told_once_then_once_a_window() {
        use crate::notify::{ChatWebhook, Notifications, Target};
        let (url, texts) = slack().await;
        let webhook = ChatWebhook::new(
            hrsync_core::config::NotifyKind::Slack,
            &url,
            reqwest::Client::new(),
        )
        .unwrap();
        let notify = Notifications::new(vec![Target {
            name: "ops".into(),
            events: Some(vec![hrsync_core::config::NotifyEvent::WebhookRejected]),
            max_per_minute: 10,
            notifier: Arc::new(webhook),
        }]);
        let (pipeline, clock) = pipeline_notifying(MemoryQueue::new(), notify);
        let endpoint = Endpoint::new(Arc::clone(&pipeline), Arc::new(|_| {}), Health::Public);
        let router = endpoint.router();
        let body = employee("7100", "2026-05-01T08:00:00Z");
        for _ in 0..50 {
            let (status, _) = send(&router, unsigned(&body)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let told = texts.lock().unwrap().clone();
        assert_eq!(told.len(), 1, "the burst is told once: {told:#?}");
        for expected in [
            "hrsync: Webhook deliveries to source hr are refused (unauthorized)",
            "Who: hr:#webhook\n",
            "Why: webhook hr: ",
            "Run: hrsync audit 'hr:#webhook' --action unauthorized",
            "Run: hrsync doctor",
        ] {
            assert!(told[0].contains(expected), "{expected:?} in {}", told[0]);
        }
        clock.advance(SignedDuration::from_secs(61));
        send(&router, unsigned(&body)).await;
        let told = texts.lock().unwrap().clone();
        assert_eq!(told.len(), 2, "{told:#?}");
        assert!(told[1].contains("unauthorized since"), "{}", told[1]);
    }

    #[tokio::test]
    async fn unsigned_posts_are_audited_at_once_then_counted_for_a_minute() {
        let (pipeline, clock) = pipeline();
        let endpoint = Endpoint::new(Arc::clone(&pipeline), Arc::new(|_| {}), Health::Public);
        let router = endpoint.router();
        let body = employee("7100", "2026-05-01T08:00:00Z");
        let start = clock.now();
        for _ in 0..2000 {
            let (status, _) = send(&router, unsigned(&body)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let records = audit(&pipeline, "hr:#webhook").await;
        assert_eq!(
            records.len(),
            1,
            "the first rejection is audited at once, the rest only counted: {:#?}",
            &records[..records.len().min(3)]
        );
        assert_eq!(counts(&records), [1]);
        assert_eq!(records[0].action, "unauthorized");
        assert_eq!(
            records[0].after.as_ref().unwrap()["bytes"],
            serde_json::to_vec(&body).unwrap().len()
        );

        // Another kind of rejection is audited at once too: a signed body missing a field.
        let mut nameless = employee("7101", "2026-05-01T08:00:00Z");
        nameless.as_object_mut().unwrap().remove("given_name");
        let (status, _) = send(&router, signed(&nameless, "evt-nameless")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let records = audit(&pipeline, "hr:#webhook").await;
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["unauthorized", "unreadable"]);

        // Within the window nothing is due; a minute on, the next rejection brings the count.
        clock.advance(SignedDuration::from_secs(30));
        assert_eq!(endpoint.audit_rejections(false).await, 0);
        clock.advance(SignedDuration::from_secs(31));
        send(&router, unsigned(&body)).await;
        let records = audit(&pipeline, "hr:#webhook").await;
        let unauthorized: Vec<AuditRecord> = records
            .into_iter()
            .filter(|r| r.action == "unauthorized")
            .collect();
        assert_eq!(counts(&unauthorized), [1, 2000], "{unauthorized:#?}");
        let sampled = &unauthorized[1];
        assert_eq!(
            sampled.after.as_ref().unwrap()["since"],
            json!(start),
            "the count runs from the first rejection after the last record"
        );
        assert!(
            sampled
                .cause
                .starts_with("webhook hr: 2000 unauthorized since ")
                && sampled.cause.contains("the latest: "),
            "{}",
            sampled.cause
        );

        // Rejections still counted are audited when the process stops.
        for _ in 0..5 {
            send(&router, unsigned(&body)).await;
        }
        assert_eq!(endpoint.audit_rejections(true).await, 1);
        assert_eq!(
            endpoint.audit_rejections(true).await,
            0,
            "nothing counted twice"
        );
        let records = audit(&pipeline, "hr:#webhook").await;
        let unauthorized: Vec<AuditRecord> = records
            .into_iter()
            .filter(|r| r.action == "unauthorized")
            .collect();
        assert_eq!(counts(&unauthorized), [1, 2000, 5]);
        assert_eq!(counts(&unauthorized).iter().sum::<u64>(), 2006);
    }

    fn health_check() -> Request<Body> {
        Request::get("/healthz").body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn public_health_says_ok_or_unavailable_and_nothing_else() {
        let (up, _) = pipeline();
        let public = router(Arc::clone(&up), Arc::new(|_| {}), Health::Public);
        assert_eq!(
            send(&public, health_check()).await,
            (StatusCode::OK, json!({"status": "ok"})),
            "no queue figures for anyone who asks"
        );

        let (broken, _) = pipeline_on(Down);
        let public = router(Arc::clone(&broken), Arc::new(|_| {}), Health::Public);
        assert_eq!(
            send(&public, health_check()).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable"})
            ),
            "no error text for anyone who asks"
        );
    }

    #[tokio::test]
    async fn detailed_health_gives_the_operator_the_queues_and_the_error() {
        let (up, _) = pipeline();
        let detailed = router(up, Arc::new(|_| {}), Health::Detailed);
        let (status, answer) = send(&detailed, health_check()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["status"], "ok");
        for name in QueueName::ALL {
            assert_eq!(
                answer["queues"][name.to_string()],
                json!({"visible": 0, "in_flight": 0, "dead": 0}),
                "{answer}"
            );
        }

        let (broken, _) = pipeline_on(Down);
        let detailed = router(broken, Arc::new(|_| {}), Health::Detailed);
        let (status, answer) = send(&detailed, health_check()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer["status"], "unavailable");
        assert!(
            answer["error"].as_str().unwrap().contains("AccessDenied"),
            "{answer}"
        );
    }
}
