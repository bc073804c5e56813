//! The one error type of the Graph client.
//!
//! Messages carry HTTP statuses, Graph error codes and Graph's own messages, never a token, a secret
//! or a request URL (a URL may hold an employee id or a name in its `$filter`).

use std::time::Duration;

/// What went wrong talking to the token endpoint or to Microsoft Graph.
///
/// [`GraphError::is_retryable`] tells the caller whether to retry the whole unit of work later
/// (requeue the message) or to dead-letter it: the client has already spent its own retry budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Still throttled (HTTP 429) after every attempt of the retry policy.
    #[error("throttled by Microsoft Graph (retry after {retry_after:?})")]
    Throttled {
        /// The last `Retry-After` Graph sent, if any.
        retry_after: Option<Duration>,
    },
    /// Still 503/504 (or another 5xx on the token endpoint) after every attempt.
    #[error("Microsoft Graph unavailable (HTTP {status})")]
    Unavailable {
        /// The last status seen.
        status: u16,
    },
    /// Connection, TLS or timeout error after every attempt. Never holds the request URL.
    #[error("transport error: {0}")]
    Transport(String),
    /// The token endpoint refused the credentials (`{"error", "error_description"}`).
    #[error("token request failed (HTTP {status}): {code}: {description}")]
    Auth {
        /// HTTP status of the token response.
        status: u16,
        /// OAuth `error`, e.g. `invalid_client`.
        code: String,
        /// OAuth `error_description` (Entra puts an `AADSTS...` code and trace ids in it).
        description: String,
    },
    /// A federated credential's assertion could not be had from its provider (AWS STS
    /// `GetWebIdentityToken` refused or unreachable): no token can be asked for. The message
    /// names the provider and the cause, never a token.
    #[error("cannot get the federated assertion from {0}")]
    Assertion(String),
    /// The credential in the settings cannot be used (bad PEM, not an RSA key, ...).
    #[error("unusable credential: {0}")]
    Credential(String),
    /// Graph answered with an error (`{"error": {"code", "message"}}`).
    #[error("Graph error HTTP {status} {code}: {message}")]
    Graph {
        /// HTTP status.
        status: u16,
        /// Graph `error.code`, e.g. `Request_BadRequest`.
        code: String,
        /// Graph `error.message`.
        message: String,
    },
    /// A reference error (404 "does not exist", 400 "... do not exist") that was still there after
    /// every replication-lag retry of a lag-tolerant request. Probably lag that outlasted the
    /// budget, so it is worth retrying later.
    #[error("object not visible yet (replication lag?) HTTP {status} {code}: {message}")]
    ReplicationLag {
        /// HTTP status.
        status: u16,
        /// Graph `error.code`.
        code: String,
        /// Graph `error.message`.
        message: String,
    },
    /// More than one user has the employee id that was looked up.
    #[error("{matches} users share the employee id that was looked up")]
    AmbiguousEmployeeId {
        /// How many users Graph returned (at most the `$top` asked for).
        matches: usize,
    },
    /// A request that cannot be sent as built (duplicate batch ids, a dependency chain over 20, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A response that does not have the expected shape.
    #[error("could not decode the response: {0}")]
    Decode(String),
}

impl GraphError {
    /// Whether retrying the same work later may succeed (requeue), as opposed to dead-lettering.
    ///
    /// Retryable: throttling, unavailability, transport errors, replication lag, token endpoint
    /// 5xx/429, and Graph 408 (timeout), 409 (e.g. `Directory_ConcurrencyViolation`), 412
    /// (precondition failed: re-read and retry), 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            GraphError::Throttled { .. }
            | GraphError::Unavailable { .. }
            | GraphError::Transport(_)
            | GraphError::Assertion(_)
            | GraphError::ReplicationLag { .. } => true,
            GraphError::Auth { status, .. } => *status >= 500 || *status == 429,
            GraphError::Graph { status, .. } => {
                matches!(status, 408 | 409 | 412 | 429) || *status >= 500
            }
            GraphError::Credential(_)
            | GraphError::AmbiguousEmployeeId { .. }
            | GraphError::InvalidRequest(_)
            | GraphError::Decode(_) => false,
        }
    }

    /// Graph as a whole is unreachable or refuses the app's credential (or the federated
    /// assertion cannot be had): every request fails alike until that is fixed, whatever the
    /// worker.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            GraphError::Transport(_) | GraphError::Auth { .. } | GraphError::Assertion(_)
        )
    }

    /// The `AADSTS` number of a token endpoint refusal (`error_description` starts with it).
    pub fn aadsts(&self) -> Option<u32> {
        let GraphError::Auth { description, .. } = self else {
            return None;
        };
        let digits: String = description
            .trim_start()
            .strip_prefix("AADSTS")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    /// A token endpoint refusal in words: what was refused, with the first sentence of Entra's
    /// description (no trace or correlation ids), e.g. `the token endpoint refused the client
    /// secret (AADSTS7000215: Invalid client secret provided.)`. `None` for other errors.
    pub fn refusal(&self) -> Option<String> {
        let GraphError::Auth {
            status,
            code,
            description,
        } = self
        else {
            return None;
        };
        let first = description.lines().next().unwrap_or_default().trim();
        let sentence = match first.find(". ") {
            Some(end) => &first[..=end],
            None => first,
        };
        let what = match self.aadsts() {
            Some(7_000_215 | 7_000_222) => "the client secret",
            Some(700_027 | 700_024 | 50_027 | 5_002_723) => "the certificate assertion",
            Some(70_021 | 700_211 | 700_212 | 700_213) => "the federated assertion",
            Some(700_016) => "the client id",
            Some(90_002 | 900_023 | 90_013) => "the tenant id",
            Some(1_002_012 | 70_011 | 500_011) => "the scope",
            _ => "the credential",
        };
        let detail = if sentence.is_empty() {
            format!("HTTP {status} {code}")
        } else {
            sentence.to_owned()
        };
        Some(format!("the token endpoint refused {what} ({detail})"))
    }

    /// How an operator fixes this error, when it has a well-known cause.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            GraphError::Auth { .. } => Some(match self.aadsts() {
                Some(7_000_215) => {
                    "put the client secret's Value (not its Secret ID) where directory.client_secret points, or add a new secret under the app registration's Certificates & secrets"
                }
                Some(7_000_222) => {
                    "the client secret has expired: add a new one under the app registration's Certificates & secrets and put its Value where directory.client_secret points"
                }
                Some(700_027 | 700_024 | 50_027 | 5_002_723) => {
                    "upload the certificate (its public part) to the app registration's Certificates & secrets, and check directory.certificate holds the matching private key"
                }
                Some(70_021 | 700_211 | 700_212 | 700_213) => {
                    "add a federated identity credential to the app registration: issuer from `aws iam get-outbound-web-identity-federation-info`, subject the function role's ARN, audience directory.federated_audience (api://AzureADTokenExchange); docs/entra-setup.md, \"Secretless from AWS\""
                }
                Some(700_016) => {
                    "directory.client_id must be the Application (client) ID of an app registration in directory.tenant_id"
                }
                Some(90_002 | 900_023 | 90_013) => {
                    "directory.tenant_id must be the Directory (tenant) ID from the app registration's Overview"
                }
                Some(1_002_012 | 70_011 | 500_011) => {
                    "directory.graph_endpoint must be the Graph root, e.g. https://graph.microsoft.com"
                }
                Some(7_000_218) => "set directory.client_secret or directory.certificate",
                _ => {
                    "check directory.tenant_id, directory.client_id and the credential against the app registration"
                }
            }),
            GraphError::Transport(message) => Some(if message.contains("connection refused") {
                "nothing listens there: check the host and port (directory.graph_endpoint, authority_host or url) and that the service is up"
            } else if message.contains("could not be resolved") {
                "the host name is unknown here: check its spelling in directory.graph_endpoint, authority_host or url, and this machine's DNS"
            } else if message.contains("TLS") {
                "the TLS connection failed: check the URL's scheme and host, and any proxy that intercepts TLS (its CA must be trusted)"
            } else {
                "check the address (directory.graph_endpoint, authority_host or url), and that it is up and reachable from here (proxy, firewall)"
            }),
            GraphError::Assertion(_) => Some(
                "allow the function's role sts:GetWebIdentityToken (infra/template.yaml does) and enable outbound identity federation once per account: `aws iam enable-outbound-web-identity-federation`",
            ),
            GraphError::Credential(_) => Some(
                "directory.certificate must hold the certificate and its unencrypted RSA private key, PEM",
            ),
            GraphError::Graph { status: 403, .. } => Some(
                "grant the app the application permission this call needs (API permissions, then Grant admin consent); docs/entra-setup.md lists them",
            ),
            _ => None,
        }
    }

    /// The HTTP status behind this error, when there is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Throttled { .. } => Some(429),
            GraphError::Unavailable { status }
            | GraphError::Auth { status, .. }
            | GraphError::Graph { status, .. }
            | GraphError::ReplicationLag { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        assert!(GraphError::Throttled { retry_after: None }.is_retryable());
        assert!(GraphError::Unavailable { status: 503 }.is_retryable());
        assert!(GraphError::Transport("reset".into()).is_retryable());
        let graph = |status| GraphError::Graph {
            status,
            code: "c".into(),
            message: "m".into(),
        };
        assert!(!graph(400).is_retryable());
        assert!(!graph(403).is_retryable());
        assert!(!graph(404).is_retryable());
        assert!(graph(409).is_retryable());
        assert!(graph(500).is_retryable());
        let auth = |status| GraphError::Auth {
            status,
            code: "invalid_client".into(),
            description: "d".into(),
        };
        assert!(!auth(401).is_retryable());
        assert!(auth(503).is_retryable());
        assert!(!GraphError::AmbiguousEmployeeId { matches: 2 }.is_retryable());
        let sts = GraphError::Assertion("AWS STS GetWebIdentityToken: AccessDenied".into());
        assert!(sts.is_retryable());
        assert!(sts.is_outage());
        assert!(
            sts.fix()
                .is_some_and(|f| f.contains("sts:GetWebIdentityToken"))
        );
    }

    #[test]
    fn token_refusals_are_put_in_words() {
        let err = GraphError::Auth {
            status: 401,
            code: "invalid_client".into(),
            description: "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the value.\r\nTrace ID: t\r\nCorrelation ID: c".into(),
        };
        assert_eq!(err.aadsts(), Some(7_000_215));
        assert_eq!(
            err.refusal().as_deref(),
            Some(
                "the token endpoint refused the client secret (AADSTS7000215: Invalid client secret provided.)"
            )
        );
        assert!(err.fix().is_some_and(|f| f.contains("Value")));
        assert_eq!(GraphError::Decode("x".into()).refusal(), None);
    }
}
