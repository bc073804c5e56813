//! Connecting to the configured directory: a real tenant through Microsoft Graph, or a sandbox
//! directory already serving at `directory.url`. The same for `hrsync serve` and the Lambda
//! functions; only how secret references are resolved differs (`resolve`), and only the AWS
//! runtime has an assertion source for `federated = "aws"` (`assertions`). (The local runtime
//! starts an in-process sandbox itself when `directory.url` is not set, then connects here.)

use std::sync::Arc;

use hrsync_core::config::{CertificateRef, DirectoryConfig, DirectoryKind, SecretRef, WriteLimit};

use crate::graph::{AssertionSource, Credential, GraphClient, GraphSettings};

/// The longest wait for a TCP (and TLS) connection to Graph or the token endpoint.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the directory cannot be reached; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// A secret reference's value, or why it has none.
pub type Resolve<'a> = &'a (dyn Fn(&SecretRef) -> Result<String, String> + Sync);

/// A Graph client for the configured directory.
#[derive(Debug)]
pub struct Connection {
    pub graph: GraphClient,
    pub description: String,
}

/// Why `federated = "aws"` cannot be used where no assertion source was given.
pub const FEDERATED_ONLY_ON_AWS: &str = "directory.federated = \"aws\" works only in the AWS runtime (the Lambda functions), where the function's IAM role can call sts:GetWebIdentityToken; the local runtime needs directory.client_secret or directory.certificate";

/// Connects to Microsoft Graph, or to the sandbox at `directory.url`. `assertions`: where a
/// `federated` credential's assertions come from (`None`: this runtime has no provider, and
/// `federated` is refused with [`FEDERATED_ONLY_ON_AWS`]).
pub fn connect(
    config: &DirectoryConfig,
    resolve: Resolve<'_>,
    assertions: Option<Arc<dyn AssertionSource>>,
) -> Result<Connection, ConnectError> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
        // An address that swallows packets is reported within seconds, like a refused one.
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| ConnectError(format!("cannot build the HTTP client: {e}")))?;
    let resolve = |secret: &SecretRef| resolve(secret).map_err(ConnectError);
    let write_limit = config
        .write_limit()
        .map_err(|e| ConnectError(format!("directory.write_limit: {e}")))?;
    match config.kind {
        DirectoryKind::Graph => {
            let credential = match (&config.client_secret, &config.certificate) {
                (None, None) if config.federated.is_some() => match assertions {
                    Some(source) => Credential::Federated(source),
                    None => return Err(ConnectError(FEDERATED_ONLY_ON_AWS.into())),
                },
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
                        "directory: kind = \"graph\" needs exactly one of client_secret, certificate or federated = \"aws\"".into(),
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
            settings.write_limit = write_limit;
            Ok(Connection {
                // A whole export at once is bulk work: low priority leaves other apps their share.
                graph: GraphClient::new(settings, http).for_bulk(),
                description: format!("Microsoft Graph at {}", config.graph_endpoint),
            })
        }
        DirectoryKind::Sandbox => {
            let Some(url) = &config.url else {
                return Err(ConnectError(
                    "directory: kind = \"sandbox\" needs directory.url here (only the local runtime starts a sandbox in-process)".into(),
                ));
            };
            let url = url.trim_end_matches('/');
            let secret = match &config.client_secret {
                Some(secret) => resolve(secret)?,
                None => "sandbox".to_owned(),
            };
            Ok(Connection {
                graph: sandbox_client(url, secret, write_limit, http),
                description: format!("the sandbox directory at {url}"),
            })
        }
    }
}

/// A client for a sandbox serving at `url` (token endpoint and Graph on the same host).
pub fn sandbox_client(
    url: &str,
    client_secret: String,
    write_limit: Option<WriteLimit>,
    http: reqwest::Client,
) -> GraphClient {
    let mut settings =
        GraphSettings::new("sandbox", "hrsync", Credential::ClientSecret(client_secret));
    settings.graph_endpoint = url.to_owned();
    settings.authority_host = url.to_owned();
    settings.write_limit = write_limit;
    GraphClient::new(settings, http).for_bulk()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrsync_core::config::Federation;

    #[test]
    fn federated_needs_an_assertion_source() {
        let config = DirectoryConfig {
            kind: DirectoryKind::Graph,
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            federated: Some(Federation::Aws),
            ..DirectoryConfig::default()
        };
        let resolve = |_: &SecretRef| Err("no secrets here".to_owned());
        let error = connect(&config, &resolve, None).expect_err("no source of assertions");
        assert_eq!(error.0, FEDERATED_ONLY_ON_AWS);
    }
}
