//! `hrsync serve --config FILE [--listen ADDR] [--now RFC3339]`: every stage and the timer
//! loop in one process, with the webhook endpoint in front.
//!
//! `POST /webhooks/{source}` and `GET /healthz` are [`hrsync_pipeline::webhooks`], the same
//! router the intake Lambda serves. Sources with `poll_every` are polled at start and then at
//! that interval.
//!
//! Ctrl-C or SIGTERM stops taking deliveries, lets the message being handled finish, and
//! exits; anything not yet handled stays queued in the state file for the next start.
//!
//! Rejected deliveries are counted and sampled by the endpoint; serve audits what was counted
//! since the last record every [`webhooks::REJECTION_WINDOW`] and when it stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hrsync_hr::Connector;
use hrsync_local::{SqliteQueue, SqliteStore, SqliteTimers};
use hrsync_pipeline::stages::intake::poll;
use hrsync_pipeline::webhooks;
use hrsync_pipeline::{Clock, ShiftedClock, SystemClock};
use jiff::Timestamp;
use tokio::sync::watch;

use crate::runtime::{Local, LocalRunner};

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
        let router = endpoint.router();

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("hrsync: stopping (finishing the work in hand)");
            let _ = stop_tx.send(true);
        });
        let server = axum::serve(listener, router).with_graceful_shutdown(stopped(stop_rx.clone()));
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
        let runner = Arc::clone(&started.runner);
        let pipeline = tokio::spawn(async move { runner.run(stopped(stop_rx)).await });
        server.await.context("the webhook server failed")?;
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
