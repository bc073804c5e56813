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
//!   signature or token (no detail; audited under `<source>:#webhook` with the reason, size
//!   and digest, never the body), 400 on a body that does not parse (what is wrong, never the
//!   values; also audited), 404 for an unknown source, 413 above [`MAX_BODY`], 503 when the
//!   store cannot take it (the sender retries).
//! - `GET /healthz`: 200 and the queues' depths.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hrsync_core::WorkerKey;
use hrsync_hr::{Action, BadPayload, Delivery, Unauthorized};
use jiff::Timestamp;
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

struct Webhooks<S, Q, T> {
    pipeline: Arc<Pipeline<S, Q, T>>,
    on_taken: OnTaken,
}

/// The webhook endpoint and the health check over `pipeline`.
pub fn router<S, Q, T>(pipeline: Arc<Pipeline<S, Q, T>>, on_taken: OnTaken) -> Router
where
    S: StateStore + 'static,
    Q: Queue + 'static,
    T: Timers + 'static,
{
    Router::new()
        .route("/webhooks/{source}", post(webhook::<S, Q, T>))
        .route("/healthz", get(healthz::<S, Q, T>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(Webhooks { pipeline, on_taken }))
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
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
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "unavailable", "error": error.to_string()}),
                );
            }
        }
    }
    reply(StatusCode::OK, json!({"status": "ok", "queues": queues}))
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
        tracing::warn!(source = %source_name, %reason, "webhook rejected");
        reject(pipeline, &source_name, &delivery, "unauthorized", &reason).await;
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid signature"}),
        );
    }
    let parsed = match connector.parse(&delivery) {
        Ok(parsed) => parsed,
        Err(BadPayload(problem)) => {
            tracing::warn!(source = %source_name, %problem, "webhook unreadable");
            reject(pipeline, &source_name, &delivery, "unreadable", &problem).await;
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
        tracing::debug!(source = %source_name, problem = %refused.problem, "webhook record refused");
        reject(
            pipeline,
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

/// Audits a refused delivery: why, its size and digest, never its content (personal data).
/// Best effort: a store that cannot take it does not change the answer.
async fn reject<S: StateStore, Q, T>(
    pipeline: &Pipeline<S, Q, T>,
    source: &str,
    delivery: &Delivery<'_>,
    action: &str,
    reason: &str,
) {
    let key = WorkerKey::new(source, REJECTED_DELIVERIES);
    let mut record = AuditRecord::new(
        &key,
        pipeline.clock.now(),
        "intake",
        action,
        format!("webhook {source}: {reason}"),
        &format!("webhook:{source}:sha256:{}", delivery.digest()),
    );
    record.after = Some(json!({
        "bytes": delivery.body.len(),
        "sha256": delivery.digest(),
    }));
    if let Err(error) = pipeline.store.append_audit(&record).await {
        tracing::error!(%source, %error, "cannot audit a rejected delivery");
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
        let config = Config::parse(CONFIG, "hrsync.toml").unwrap();
        let http = reqwest::Client::new();
        let resolve = |_: &hrsync_core::config::SecretRef| Ok(SECRET.to_owned());
        let hr = Connectors::from_config(&config.sources, &resolve, &http).unwrap();
        let settings = GraphSettings::new("tenant", "client", Credential::ClientSecret("s".into()));
        let clock = Arc::new(ManualClock::new("2026-05-01T09:00:00Z".parse().unwrap()));
        let pipeline = Pipeline {
            config: Arc::new(config),
            store: Arc::new(MemoryStore::new()),
            queue: Arc::new(MemoryQueue::new()),
            timers: Arc::new(MemoryTimers::new()),
            // Never called: the webhook endpoint does not reach the directory.
            graph: GraphClient::new(settings, http),
            lookups: DirectoryLookups::PerWorker,
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            hr,
        };
        (Arc::new(pipeline), clock)
    }

    fn endpoint(pipeline: &Arc<TestPipeline>) -> Router {
        router(Arc::clone(pipeline), Arc::new(|_| {}))
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
        assert!(
            duplicate.cause.contains("hr:evt-leave#7001")
                && duplicate.cause.contains("taken in before"),
            "the cause names the delivery and why it was dropped: {}",
            duplicate.cause
        );
        assert_eq!(
            duplicate.trace.as_deref(),
            Some("webhook:hr:evt-leave#7001")
        );
        assert_eq!(
            duplicate.after,
            Some(json!({"delivery": "hr:evt-leave#7001"}))
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
            records[1].cause.contains("hr:evt-1#7002"),
            "{}",
            records[1].cause
        );
    }
}
