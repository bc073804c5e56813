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
    }
}
