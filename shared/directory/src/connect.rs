//! Connecting to the configured directory: a real tenant through Microsoft Graph, or the
//! sandbox (a running one at `directory.url`, or one started in this process on
//! `directory.data`). The same for `hrsync serve` and the Lambda functions; only how secret
//! references are resolved differs (`resolve`).

use std::path::{Path, PathBuf};

use hrsync_core::config::{CertificateRef, DirectoryConfig, DirectoryKind, SecretRef};

use crate::graph::{Credential, GraphClient, GraphSettings};
use crate::sandbox::{RunningSandbox, Sandbox, SandboxConfig};

/// Why the directory cannot be reached; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// A secret reference's value, or why it has none.
pub type Resolve<'a> = &'a (dyn Fn(&SecretRef) -> Result<String, String> + Sync);

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

/// `base`: the folder against which a relative `directory.data` is read (the config file's).
pub async fn connect(
    config: &DirectoryConfig,
    base: &Path,
    resolve: Resolve<'_>,
) -> Result<Connection, ConnectError> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConnectError(format!("cannot build the HTTP client: {e}")))?;
    let resolve = |secret: &SecretRef| resolve(secret).map_err(ConnectError);
    match config.kind {
        DirectoryKind::Graph => {
            let credential = match (&config.client_secret, &config.certificate) {
                (Some(secret), None) => Credential::ClientSecret(resolve(secret)?),
                (None, Some(certificate)) => {
                    let pem = match certificate {
                        CertificateRef::Path(path) => {
                            std::fs::read_to_string(path).map_err(|e| {
                                ConnectError(format!("cannot read the certificate {path}: {e}"))
                            })?
                        }
                        CertificateRef::Secret(secret) => resolve(secret)?,
                    };
                    Credential::Certificate {
                        certificate_pem: pem.clone(),
                        private_key_pem: pem,
                    }
                }
                _ => {
                    return Err(ConnectError(
                        "directory: kind = \"graph\" needs exactly one of client_secret or certificate".into(),
                    ));
                }
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
                        std::fs::create_dir_all(parent).map_err(|e| {
                            ConnectError(format!("cannot create {}: {e}", parent.display()))
                        })?;
                    }
                    let running = Sandbox::start(SandboxConfig {
                        data: Some(data),
                        ..SandboxConfig::default()
                    })
                    .await
                    .map_err(|e| {
                        ConnectError(format!("cannot start the sandbox directory: {e}"))
                    })?;
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
