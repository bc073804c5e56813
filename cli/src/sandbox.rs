//! `hrsync sandbox`: the Entra-compatible Graph server, standalone, for trying hrsync and for
//! pointing other tools at (`graph_endpoint` and `authority_host` = its URL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use hrsync_sandbox::{Faults, Sandbox, SandboxConfig};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// JSON file the directory is kept in (created when missing; survives restarts).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Share of requests answered 429 with Retry-After (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Share of requests answered 503/504 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Retry-After seconds on throttled and unavailable answers.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
    /// Milliseconds a new user stays invisible to reads and references.
    #[arg(long, default_value_t = 0)]
    replication_lag_ms: u64,
    /// Seed of the fault RNG.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: SandboxArgs) -> anyhow::Result<()> {
    for (name, rate) in [
        ("--throttle-rate", args.throttle_rate),
        ("--error-rate", args.error_rate),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "{name} must be between 0 and 1, not {rate}"
        );
    }
    let config = SandboxConfig {
        data: args.data,
        faults: Faults {
            throttle_rate: args.throttle_rate,
            retry_after_secs: args.retry_after,
            error_rate: args.error_rate,
            replication_lag: Duration::from_millis(args.replication_lag_ms),
            seed: args.seed,
        },
        ..SandboxConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let sandbox = Sandbox::new(config)?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        eprintln!("hrsync sandbox: Graph at {url}/v1.0, tokens at {url}/<tenant>/oauth2/v2.0/token (Ctrl-C stops)");
        sandbox
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
