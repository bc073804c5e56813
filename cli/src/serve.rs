//! `hrsync serve --config FILE [--listen ADDR] [--now RFC3339]`: every stage and the timer
//! loop in one process, with the webhook endpoint in front.
//!
//! `POST /webhooks/{source}` and `GET /healthz` are [`hrsync_pipeline::webhooks`], the same
//! router the intake Lambda serves. Sources with `poll_every` are polled at start and then at
//! that interval.
//!
//! The listener bounds what a client can hold: [`HEADER_TIMEOUT`] to send a request's
//! headers, [`REQUEST_TIMEOUT`] for the whole request (a 408 after it), at most
//! [`MAX_CONNECTIONS`] connections served at once (more wait in the listen backlog).
//!
//! Ctrl-C or SIGTERM stops taking deliveries and connections, gives the requests in flight at
//! most [`SHUTDOWN_GRACE`], lets the message being handled finish, and exits; anything not
//! yet handled stays queued in the state file for the next start.
//!
//! Rejected deliveries are counted and sampled by the endpoint; serve audits what was counted
//! since the last record every [`webhooks::REJECTION_WINDOW`] and when it stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use hrsync_hr::Connector;
use hrsync_local::{SqliteQueue, SqliteStore, SqliteTimers};
use hrsync_pipeline::stages::intake::poll;
use hrsync_pipeline::webhooks;
use hrsync_pipeline::{Clock, ShiftedClock, SystemClock};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::timeout::TimeoutLayer;

use crate::runtime::{Local, LocalRunner};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Address of the webhook endpoint, `HOST:PORT` (a host name or an IP address; port 0:
    /// any free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Start the run's clock at this instant (RFC 3339): timers due by then fire at once.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
}

/// One harmless authenticated read of each HR API a source reads (as `hrsync doctor` does):
/// a refused credential or an unreachable API stops the start with one error naming it,
/// rather than failing the first deliveries.
async fn check_hr_apis(local: &Local, runner: &LocalRunner) -> anyhow::Result<()> {
    let connectors = &runner.pipeline().hr;
    for name in local.config.sources.keys() {
        let Some(probe) = connectors
            .get(name)
            .and_then(|connector| connector.check(Timestamp::now()))
        else {
            continue;
        };
        probe.await.map_err(|e| {
            anyhow::anyhow!(
                "source {name}: {e}\n  fix: check api_url, that it is reachable from here, and the source's API credential and its permissions in the HR system (hrsync doctor checks each)"
            )
        })?;
    }
    Ok(())
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
        check_hr_apis(&local, &started.runner).await?;
        let listener = TcpListener::bind(args.listen.as_str())
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        eprintln!(
            "hrsync: listening on http://{address} (directory: {})",
            started.connection.description
        );
        // The queues' figures are for the operator: listening beyond loopback, /healthz says
        // only ok or unavailable.
        let health = match address.ip().is_loopback() {
            true => webhooks::Health::Detailed,
            false => webhooks::Health::Public,
        };
        let runner = Arc::clone(&started.runner);
        let endpoint = Arc::new(webhooks::Endpoint::new(
            Arc::clone(runner.pipeline()),
            Arc::new(move |outcome| {
                runner.note(outcome);
                runner.wake();
            }),
            health,
        ));
        // Counts of what hrsync did are for the operator's own scraper, like /healthz's figures.
        let scraped = Arc::clone(&started.runner);
        let loopback = health == webhooks::Health::Detailed;
        let router = endpoint.router().route(
            "/metrics",
            axum::routing::get(move || metrics(Arc::clone(&scraped), loopback)),
        );

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("hrsync: stopping (finishing the work in hand)");
            let _ = stop_tx.send(true);
        });
        let server = serve_http(listener, router, stop_rx.clone());
        for (name, source) in &local.config.sources {
            if let (Some(every), Some(connector)) = (
                source.poll_interval(),
                started.runner.pipeline().hr.get(name),
            ) {
                tokio::spawn(poll_every(
                    Arc::clone(&started.runner),
                    Arc::clone(connector),
                    every,
                    stop_rx.clone(),
                ));
            }
        }
        tokio::spawn(audit_rejections_every_window(
            Arc::clone(&endpoint),
            stop_rx.clone(),
        ));
        tokio::spawn(finish_approvals_every(
            Arc::clone(&started.runner),
            stop_rx.clone(),
        ));
        let runner = Arc::clone(&started.runner);
        let pipeline = tokio::spawn(async move { runner.run(stopped(stop_rx)).await });
        server.await;
        // The rejections counted since their last record would be lost with the process.
        endpoint.audit_rejections(true).await;
        pipeline
            .await
            .context("the pipeline panicked")?
            .context("the pipeline stopped")?;
        eprintln!("hrsync: stopped");
        Ok(0)
    })
}

/// `GET /metrics`: the Prometheus text exposition, on a loopback listener only.
async fn metrics(runner: Arc<LocalRunner>, loopback: bool) -> axum::response::Response {
    use axum::response::IntoResponse;
    let error = |status: StatusCode, error: String| {
        (status, axum::Json(serde_json::json!({ "error": error }))).into_response()
    };
    if !loopback {
        return error(
            StatusCode::NOT_FOUND,
            "metrics are served only when serve listens on loopback (scrape it from the same host)"
                .into(),
        );
    }
    match hrsync_pipeline::metrics::render(&runner).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the queues cannot be read: {e}"),
        ),
    }
}

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take in all, its body included (a delivery is at most 1 MiB, and
/// taking it in is a few store writes per record); then it is answered 408. A delivery cut
/// short is taken in again when the sender retries (deliveries are deduplicated).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog until one closes.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a stop waits for the requests in flight before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop`, then lets the requests in flight finish for at
/// most [`SHUTDOWN_GRACE`]. HTTP/1 on hyper directly (the way axum's own examples do it):
/// `axum::serve` has no header timeout, connection limit or bounded shutdown.
async fn serve_http(listener: TcpListener, router: Router, stop: watch::Receiver<bool>) {
    let router = router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(webhooks::json_errors));
    let service = TowerToHyperService::new(router);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    loop {
        // A free place first, then the connection: the ones beyond the cap stay in the backlog.
        let place = tokio::select! {
            place = Arc::clone(&connections).acquire_owned() => place,
            () = stopped(stop.clone()) => break,
        };
        let Ok(place) = place else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(stop.clone()) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a webhook connection ended with an error");
            }
            drop(place);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "hrsync: requests still open after {}s dropped",
            SHUTDOWN_GRACE.as_secs()
        );
    }
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

/// Audits the rejections the endpoint counted, once their window has passed, until stopped.
async fn audit_rejections_every_window(
    endpoint: Arc<webhooks::Endpoint<SqliteStore, SqliteQueue, SqliteTimers>>,
    stop: watch::Receiver<bool>,
) {
    let every = webhooks::REJECTION_WINDOW.unsigned_abs();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stopped(stop.clone()) => return,
        }
        endpoint.audit_rejections(false).await;
    }
}

/// How often `serve` looks for approved holds not yet carried out (an approval whose nudge
/// was lost: `hrsync holds approve` died after approving).
const UNFINISHED_APPROVALS_EVERY: Duration = Duration::from_secs(60);

async fn finish_approvals_every(runner: Arc<LocalRunner>, stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(UNFINISHED_APPROVALS_EVERY) => {}
            () = stopped(stop.clone()) => return,
        }
        let pipeline = runner.pipeline();
        match pipeline
            .operations()
            .unfinished_approvals(pipeline.clock.now())
            .await
        {
            Ok(0) => {}
            Ok(approvals) => {
                tracing::warn!(
                    approvals,
                    "approved holds not yet carried out (an approval's nudge was lost): nudged again"
                );
                runner.wake();
            }
            Err(error) => tracing::warn!(%error, "cannot look for unfinished approvals"),
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
