//! `hrsync serve --config FILE [--listen ADDR] [--now RFC3339]`: every stage and the timer
//! loop in one process, with the webhook endpoint in front.
//!
//! - `POST /webhooks/{source}`: a delivery for `[source.<source>]`, verified by the source's
//!   scheme over the raw body (`signed-json`: see `hrsync_hr::signed_json`). 202 when taken in
//!   (the directory work follows asynchronously), 401 on a bad signature (no detail), 400 on a
//!   body that does not parse (what is wrong, never the values), 404 for an unknown source,
//!   413 above 1 MiB, 503 when the store cannot take it (the sender retries).
//! - `GET /healthz`: 200 and the queues' depths.
//!
//! Ctrl-C or SIGTERM stops taking deliveries, lets the message being handled finish, and
//! exits; anything not yet handled stays queued in the state file for the next start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hrsync_core::config::SourceKind;
use hrsync_hr::signed_json::{self, SignedHeaders};
use hrsync_pipeline::ports::{Queue, QueueName};
use hrsync_pipeline::stages::intake::Incoming;
use hrsync_pipeline::{Clock, Outcome, ShiftedClock, SystemClock};
use jiff::Timestamp;
use serde_json::json;
use tokio::sync::watch;

use crate::directory::resolve;
use crate::runtime::{Local, LocalRunner};

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

/// A source that takes webhooks, with its secret resolved at start.
struct WebhookSource {
    kind: SourceKind,
    secret: Vec<u8>,
}

struct App {
    runner: Arc<LocalRunner>,
    sources: BTreeMap<String, WebhookSource>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<usize> {
    let local = Local::open(&args.config)?;
    let lock = local.lock()?;
    let clock: Arc<dyn Clock> = match args.now {
        Some(start) => Arc::new(ShiftedClock::starting_at(start)),
        None => Arc::new(SystemClock),
    };
    let mut sources = BTreeMap::new();
    for (name, source) in &local.config.sources {
        if let Some(secret) = &source.webhook_secret {
            let secret =
                resolve(secret).with_context(|| format!("source.{name}.webhook_secret"))?;
            if secret.is_empty() {
                bail!("source.{name}.webhook_secret is empty: every delivery would be refused");
            }
            sources.insert(
                name.clone(),
                WebhookSource {
                    kind: source.kind,
                    secret: secret.into_bytes(),
                },
            );
        }
    }
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
            sources,
        });
        let router = Router::new()
            .route("/webhooks/{source}", post(webhook))
            .route("/healthz", get(healthz))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(app);

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("hrsync: stopping (finishing the work in hand)");
            let _ = stop_tx.send(true);
        });
        let server = axum::serve(listener, router).with_graceful_shutdown(stopped(stop_rx.clone()));
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
    let Some(source) = app.sources.get(&source_name) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no webhook source named {source_name:?} (a [source.<name>] with a webhook_secret)")}),
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed_at = match source.kind {
        SourceKind::SignedJson => {
            let signed = SignedHeaders {
                timestamp: header(signed_json::TIMESTAMP_HEADER),
                signature: header(signed_json::SIGNATURE_HEADER),
                delivery: header(signed_json::DELIVERY_HEADER),
            };
            // Replay protection is about the real world's time, not the run's clock.
            match signed_json::verify(&source.secret, &signed, &body, Timestamp::now()) {
                Ok(signed_at) => signed_at,
                Err(error) => {
                    tracing::warn!(source = %source_name, %error, "webhook rejected");
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": "invalid signature"}),
                    );
                }
            }
        }
        _ => {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("source {source_name:?} does not take webhooks")}),
            );
        }
    };
    let workers = match signed_json::parse(&source_name, &body, signed_at) {
        Ok(workers) => workers,
        Err(error) => return reply(StatusCode::BAD_REQUEST, json!({"error": error.to_string()})),
    };
    let delivery = signed_json::delivery_id(header(signed_json::DELIVERY_HEADER), signed_at, &body);
    let pipeline = app.runner.pipeline();
    let cause = format!("webhook {source_name}");
    let (mut accepted, mut duplicates, mut stale) = (0, 0, 0);
    for worker in &workers {
        let delivery = format!("{source_name}:{delivery}#{}", worker.key);
        let trace = format!("webhook:{delivery}");
        match pipeline
            .intake(Incoming {
                snapshot: worker,
                delivery: &delivery,
                cause: &cause,
                trace: &trace,
            })
            .await
        {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Duplicate { .. } => duplicates += 1,
                    Outcome::Stale { .. } => stale += 1,
                    _ => accepted += 1,
                }
                app.runner.note(outcome);
                app.runner.wake();
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
    reply(
        StatusCode::ACCEPTED,
        json!({"accepted": accepted, "duplicates": duplicates, "stale": stale}),
    )
}
