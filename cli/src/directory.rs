//! The directory `hrsync` commands talk to: Microsoft Graph or a sandbox at `directory.url`
//! ([`hrsync_directory::connect`]), or, when `kind = "sandbox"` names no URL, a sandbox this
//! process starts on `directory.data` and keeps running while the command does.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hrsync_core::config::{DirectoryConfig, DirectoryKind, SecretRef};
use hrsync_directory::graph::GraphClient;
use hrsync_sandbox::{RunningSandbox, Sandbox, SandboxConfig};

/// Where the in-process sandbox keeps its directory when `directory.data` is not set,
/// relative to the config file's folder (like `directory.data` itself).
pub const DEFAULT_SANDBOX_DATA: &str = ".hrsync/sandbox.json";

/// A Graph client, and the in-process sandbox it talks to when there is one (kept alive here).
#[derive(Debug)]
pub struct Connection {
    pub graph: GraphClient,
    pub description: String,
    _sandbox: Option<RunningSandbox>,
}

/// `base`: the config file's folder, against which a relative `directory.data` is read.
pub async fn connect(config: &DirectoryConfig, base: &Path) -> anyhow::Result<Connection> {
    let resolve = |secret: &SecretRef| resolve(secret).map_err(|e| format!("{e:#}"));
    if config.kind == DirectoryKind::Sandbox && config.url.is_none() {
        return start_in_process(config, base).await;
    }
    let connection = hrsync_directory::connect::connect(config, &resolve)?;
    Ok(Connection {
        graph: connection.graph,
        description: connection.description,
        _sandbox: None,
    })
}

async fn start_in_process(config: &DirectoryConfig, base: &Path) -> anyhow::Result<Connection> {
    let data = base.join(PathBuf::from(
        config.data.as_deref().unwrap_or(DEFAULT_SANDBOX_DATA),
    ));
    if let Some(parent) = data.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let running = Sandbox::start(SandboxConfig {
        data: Some(data.clone()),
        ..SandboxConfig::default()
    })
    .await
    .context("cannot start the sandbox directory")?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let write_limit = config
        .write_limit()
        .map_err(|e| anyhow::anyhow!("directory.write_limit: {e}"))?;
    Ok(Connection {
        graph: hrsync_directory::connect::sandbox_client(
            &running.url,
            "sandbox".into(),
            write_limit,
            http,
        ),
        description: format!("the sandbox directory in {}", data.display()),
        _sandbox: Some(running),
    })
}

/// Secrets this command can read itself; cloud stores are read by the AWS runtime.
pub(crate) fn resolve(secret: &SecretRef) -> anyhow::Result<String> {
    match secret {
        SecretRef::Env(name) => std::env::var(name).with_context(|| {
            format!(
                "the secret reference {{ env = \"{name}\" }} names an unset environment variable"
            )
        }),
        SecretRef::Ssm(name) => bail!(
            "{{ ssm = \"{name}\" }} is read by the AWS runtime; locally use {{ env = \"...\" }}"
        ),
        SecretRef::Secret(name) => {
            bail!(
                "{{ secret = \"{name}\" }} is read by the AWS runtime; locally use {{ env = \"...\" }}"
            )
        }
    }
}
