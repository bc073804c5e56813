//! `hrsync serve --config FILE [--listen ADDR] [--now RFC3339]`: every stage and the timer
//! loop in one process, with the webhook endpoint in front.
//!
//! - `POST /webhooks/{source}`: a delivery for `[source.<source>]`, verified by the source's
//!   connector over the raw body (`hrsync_hr`: signed-json, bamboohr, hibob, personio, keka,
//!   scim). 202 when taken in: records that arrive whole are kept, thin events are queued for
//!   the fetch of the full record (hr-events), and the directory work follows
//!   asynchronously. A redelivery is recognised and counted as a duplicate. 200 for a
//!   vendor's handshake (HiBob's ping), and for SCIM a BulkResponse with a status per
//!   operation. 401 on a bad signature or token (no detail; audited under
//!   `<source>:#webhook` with the reason, size and digest, never the body), 400 on a body that
//!   does not parse (what is wrong, never the values; also audited), 404 for an unknown
//!   source, 413 above 1 MiB, 503 when the store cannot take it (the sender retries).
//! - `GET /healthz`: 200 and the queues' depths.
//!
//! Ctrl-C or SIGTERM stops taking deliveries, lets the message being handled finish, and
//! exits; anything not yet handled stays queued in the state file for the next start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hrsync_core::WorkerKey;
use hrsync_core::config::SourceKind;
use hrsync_hr::{Action, BadPayload, Connector, Delivery, Unauthorized};
use hrsync_pipeline::ports::{AuditRecord, Queue, QueueName, StateStore};
use hrsync_pipeline::stages::intake::{Incoming, Notice, poll};
use hrsync_pipeline::{Clock, Outcome, ShiftedClock, SystemClock};
use jiff::Timestamp;
use serde_json::json;
use tokio::sync::watch;

use crate::runtime::{Local, LocalRunner};

/// The worker key's employee id under which a source's refused deliveries are audited
/// (`hrsync audit <source>:#webhook`).
pub const REJECTED_DELIVERIES: &str = "#webhook";

/// The largest delivery taken.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Address of the webhook endpoint (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Start the run's clock at this instant (RFC 3339): timers due by then fire at once.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
}

struct App {
    runner: Arc<LocalRunner>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<usize> {
    let local = Local::open(&args.config)?;
    let lock = local.lock()?;
    let clock: Arc<dyn Clock> = match args.now {
        Some(start) => Arc::new(ShiftedClock::starting_at(start)),
        None => Arc::new(SystemClock),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let started = local.start(&lock, clock).await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        eprintln!(
            "hrsync: listening on http://{address} (directory: {})",
            started.connection.description
        );
        let app = Arc::new(App {
            runner: Arc::clone(&started.runner),
        });
        let router = Router::new()
            .route("/webhooks/{source}", post(webhook))
            .route("/healthz", get(healthz))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::clone(&app));

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("hrsync: stopping (finishing the work in hand)");
            let _ = stop_tx.send(true);
        });
        let server = axum::serve(listener, router).with_graceful_shutdown(stopped(stop_rx.clone()));
        for (name, source) in &local.config.sources {
            if let (Some(every), Some(connector)) =
                (source.poll_interval(), app.runner.pipeline().hr.get(name))
            {
                tokio::spawn(poll_every(
                    Arc::clone(&started.runner),
                    Arc::clone(connector),
                    every,
                    stop_rx.clone(),
                ));
            }
        }
        let runner = Arc::clone(&started.runner);
        let pipeline = tokio::spawn(async move { runner.run(stopped(stop_rx)).await });
        server.await.context("the webhook server failed")?;
        pipeline
            .await
            .context("the pipeline panicked")?
            .context("the pipeline stopped")?;
        eprintln!("hrsync: stopped");
        Ok(0)
    })
}

/// Polls a source's change feed at start and then every `every`, until stopped: the safety net
/// for webhooks that never came. A failed poll is logged and tried again next time (the
/// cursor only moves on success).
async fn poll_every(
    runner: Arc<LocalRunner>,
    connector: Arc<dyn Connector>,
    every: std::time::Duration,
    stop: watch::Receiver<bool>,
) {
    let source = connector.source().to_owned();
    loop {
        let pipeline = runner.pipeline();
        let now = pipeline.clock.now();
        match poll(&*pipeline.store, &*pipeline.queue, &*connector, now).await {
            Ok(0) => tracing::debug!(%source, "poll: nothing changed"),
            Ok(queued) => {
                tracing::info!(%source, queued, "poll: changed workers queued for a fetch");
                runner.wake();
            }
            Err(error) => {
                tracing::warn!(%source, %error, "poll failed; trying again at the next interval")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stopped(stop.clone()) => return,
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let mut queues = serde_json::Map::new();
    for name in QueueName::ALL {
        match app.runner.pipeline().queue.depth(name).await {
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

async fn webhook(
    State(app): State<Arc<App>>,
    Path(source_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(connector) = app.runner.pipeline().hr.get(&source_name) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no webhook source named {source_name:?} (a [source.<name>] that is not a csv export)")}),
        );
    };
    let pipeline = app.runner.pipeline();
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
    let mut tally = Tally::default();
    let mut operations = Vec::new();
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
                pipeline
                    .intake(Incoming {
                        snapshot,
                        delivery: &delivery,
                        cause: &cause,
                        trace: &trace,
                    })
                    .await
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
                app.runner.note(outcome);
                app.runner.wake();
                if let Some(operation) = &event.operation {
                    operations.push(scim_result(operation, &worker));
                }
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
    if connector_is_scim(&app, &source_name) {
        for refused in &parsed.refused {
            let operation = refused.operation.clone().unwrap_or_default();
            operations.push(scim_refusal(
                &operation,
                refused.method.as_deref(),
                &refused.problem,
            ));
        }
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"],
            "Operations": operations,
        });
        let mut response = reply(StatusCode::OK, body);
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/scim+json"),
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

fn connector_is_scim(app: &App, source: &str) -> bool {
    app.runner
        .pipeline()
        .config
        .source(source)
        .is_some_and(|config| config.kind == SourceKind::Scim)
}

/// A SCIM BulkResponse operation for a taken operation.
fn scim_result(bulk_id: &str, worker: &WorkerKey) -> serde_json::Value {
    json!({
        "method": "POST",
        "bulkId": bulk_id,
        "location": format!("/Users/{}", worker.employee_id()),
        "status": "202",
    })
}

/// A SCIM BulkResponse operation for a refused operation.
fn scim_refusal(bulk_id: &str, method: Option<&str>, problem: &str) -> serde_json::Value {
    json!({
        "method": method.unwrap_or("POST"),
        "bulkId": bulk_id,
        "status": "400",
        "response": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "scimType": "invalidValue",
            "detail": problem,
            "status": "400",
        },
    })
}

/// Audits a refused delivery: why, its size and digest, never its content (personal data).
/// Best effort: a store that cannot take it does not change the answer.
async fn reject(
    pipeline: &hrsync_pipeline::Pipeline<
        hrsync_local::SqliteStore,
        hrsync_local::SqliteQueue,
        hrsync_local::SqliteTimers,
    >,
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
