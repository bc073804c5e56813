//! Connecting to the configured directory: a real tenant through Microsoft Graph, or the
//! sandbox (a running one at `directory.url`, or one started in this process on `directory.data`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hrsync_core::config::{CertificateRef, DirectoryConfig, DirectoryKind, SecretRef};
use hrsync_directory::graph::{Credential, GraphClient, GraphSettings};
use hrsync_directory::sandbox::{RunningSandbox, Sandbox, SandboxConfig};

/// Where the in-process sandbox keeps its directory when `directory.data` is not set,
/// relative to the config file's folder (like `directory.data` itself).
pub const DEFAULT_SANDBOX_DATA: &str = ".hrsync/sandbox.json";

/// A Graph client, and the in-process sandbox it talks to when there is one (kept alive here).
pub struct Connection {
    pub graph: GraphClient,
    pub description: String,
    _sandbox: Option<RunningSandbox>,
}

/// `base`: the config file's folder, against which a relative `directory.data` is read.
pub async fn connect(config: &DirectoryConfig, base: &Path) -> anyhow::Result<Connection> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    match config.kind {
        DirectoryKind::Graph => {
            let credential = match (&config.client_secret, &config.certificate) {
                (Some(secret), None) => Credential::ClientSecret(resolve(secret)?),
                (None, Some(certificate)) => {
                    let pem = match certificate {
                        CertificateRef::Path(path) => std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read the certificate {path}"))?,
                        CertificateRef::Secret(secret) => resolve(secret)?,
                    };
                    Credential::Certificate {
                        certificate_pem: pem.clone(),
                        private_key_pem: pem,
                    }
                }
                _ => bail!(
                    "directory: kind = \"graph\" needs exactly one of client_secret or certificate"
                ),
            };
            let mut settings = GraphSettings::new(
                config.tenant_id.clone().unwrap_or_default(),
                config.client_id.clone().unwrap_or_default(),
                credential,
            );
            settings.graph_endpoint = config.graph_endpoint.clone();
            settings.authority_host = config.authority_host.clone();
            Ok(Connection {
                // A whole export at once is bulk work: low priority leaves other apps their share.
                graph: GraphClient::new(settings, http).for_bulk(),
                description: format!("Microsoft Graph at {}", config.graph_endpoint),
                _sandbox: None,
            })
        }
        DirectoryKind::Sandbox => {
            let (url, sandbox) = match &config.url {
                Some(url) => (url.trim_end_matches('/').to_owned(), None),
                None => {
                    let data = base.join(PathBuf::from(
                        config.data.as_deref().unwrap_or(DEFAULT_SANDBOX_DATA),
                    ));
                    if let Some(parent) = data.parent().filter(|p| !p.as_os_str().is_empty()) {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("cannot create {}", parent.display()))?;
                    }
                    let running = Sandbox::start(SandboxConfig {
                        data: Some(data),
                        ..SandboxConfig::default()
                    })
                    .await
                    .context("cannot start the sandbox directory")?;
                    (running.url.clone(), Some(running))
                }
            };
            let mut settings = GraphSettings::new(
                "sandbox",
                "hrsync",
                Credential::ClientSecret("sandbox".into()),
            );
            settings.graph_endpoint = url.clone();
            settings.authority_host = url.clone();
            let description = match &sandbox {
                Some(_) => format!(
                    "the sandbox directory in {}",
                    base.join(config.data.as_deref().unwrap_or(DEFAULT_SANDBOX_DATA))
                        .display()
                ),
                None => format!("the sandbox directory at {url}"),
            };
            Ok(Connection {
                graph: GraphClient::new(settings, http).for_bulk(),
                description,
                _sandbox: sandbox,
            })
        }
    }
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
