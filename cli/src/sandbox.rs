//! `hrsync sandbox`: the Entra-compatible Graph server, standalone, for trying hrsync and for
//! pointing other tools at (`graph_endpoint` and `authority_host` = its URL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use hrsync_sandbox::{
    DEFAULT_APP_ROLES, DEFAULT_VERIFIED_DOMAINS, Faults, FederatedCredential, Sandbox,
    SandboxConfig, SeedGroup, SeedSku, WriteLimit,
};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// SQLite file the directory is kept in (created when missing; survives restarts; a legacy
    /// JSON data file is migrated in place).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// The only client secret the token endpoint accepts (default: any).
    #[arg(long, value_name = "SECRET")]
    client_secret: Option<String>,
    /// A licence the tenant owns, with its prepaid units (repeatable), e.g.
    /// 05e9a617-0261-4cee-bb44-138d3ef5d965=SPE_E3@100.
    #[arg(long = "sku", value_name = "ID=PART@UNITS")]
    skus: Vec<SeedSku>,
    /// A group that exists (repeatable); with @SKU,... it licenses its members (group-based
    /// licensing).
    #[arg(long = "group", value_name = "ID=NAME[@SKU,...]")]
    groups: Vec<SeedGroup>,
    /// Also seed the tenant an hrsync.toml expects: its `directory.sandbox_groups` and
    /// `sandbox_skus`, else every group and licence its access rules grant (as the in-process
    /// sandbox does).
    #[arg(long, value_name = "HRSYNC.TOML")]
    seed_from: Option<PathBuf>,
    /// A verified domain userPrincipalNames may use (repeatable; default: acme.example and
    /// example.com).
    #[arg(long = "domain", value_name = "NAME")]
    domains: Vec<String>,
    /// An application permission granted to the app (repeatable), e.g. User.ReadWrite.All;
    /// a Graph request that needs a permission not granted is 403 Authorization_RequestDenied.
    /// Default: User.ReadWrite.All, GroupMember.ReadWrite.All, LicenseAssignment.ReadWrite.All,
    /// LicenseAssignment.Read.All, Domain.Read.All.
    #[arg(long = "app-role", value_name = "PERMISSION")]
    app_roles: Vec<String>,
    /// A federated identity credential on the app (workload identity federation), e.g.
    /// issuer=https://<id>.tokens.sts.global.api.aws,subject=arn:aws:iam::<account>:role/<role>;
    /// audience defaults to api://AzureADTokenExchange. Repeatable, at most 20.
    #[arg(
        long = "federated-credential",
        value_name = "issuer=URL,subject=ID[,audience=AUD]"
    )]
    federated_credentials: Vec<FederatedCredential>,
    /// Graph's write quota per app and tenant, e.g. 3000/150s (default: unlimited).
    #[arg(long, value_name = "WRITES/DURATION")]
    write_limit: Option<WriteLimit>,
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
    let (mut groups, mut skus) = (args.groups, args.skus);
    if let Some(path) = &args.seed_from {
        let config = crate::runtime::load_config(path)?;
        let (from_groups, from_skus) = crate::directory::seeds(&config)?;
        groups.extend(from_groups);
        skus.extend(from_skus);
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
        groups,
        skus,
        verified_domains: if args.domains.is_empty() {
            DEFAULT_VERIFIED_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect()
        } else {
            args.domains
        },
        client_secret: args.client_secret,
        write_limit: args.write_limit,
        app_roles: if args.app_roles.is_empty() {
            DEFAULT_APP_ROLES.iter().map(|r| (*r).to_owned()).collect()
        } else {
            args.app_roles
        },
        federated_credentials: args.federated_credentials,
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
