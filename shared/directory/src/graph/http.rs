//! The client: settings, retry policy, and sending one request with retries.
//!
//! Retry rules for one request (and for the outer POST of a `$batch`):
//! - 429, 503, 504, or a 5xx/429 from the token endpoint: wait `Retry-After`
//!   (delta-seconds or HTTP-date) capped at `max_delay`, else exponential backoff with full jitter
//!   (`random(0 ..= min(max_delay, base_delay * 2^(n-1)))`); at most `max_attempts` attempts, then
//!   `Throttled` / `Unavailable`.
//! - A transport error (connection refused, DNS, TLS, timeout), to Graph or to the token endpoint:
//!   at most [`TRANSPORT_ATTEMPTS`] attempts, waits capped at [`TRANSPORT_MAX_WAIT`], then
//!   `Transport` naming the endpoint (scheme, host, port and its fixed path: `/v1.0` or the token
//!   path, never a query) and the cause in words. An endpoint that cannot be reached is reported
//!   within seconds, not after minutes of backoff.
//! - A refusal by the token endpoint (400/401 `invalid_client`, `unauthorized_client`, ...) is
//!   never retried.
//! - 401 from Graph: the cached token is dropped and the request is sent once more.
//! - A lag-tolerant request that gets a reference error (404, 400 "... does not exist"): retried up to
//!   `lag_attempts` times, waiting `lag_delay * n` (capped at `max_delay`), then `ReplicationLag`.
//!
//! A POST retried after a 503/504 or a transport error may have been applied the first time; Graph
//! then answers the retry with its own conflict (e.g. 400 "... already exists"), which the caller
//! sees as a `Graph` error. Logs above `debug` carry method, status and attempt, never URLs (they can
//! hold a name or an employee id), bodies or tokens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use serde_json::Value;

use hrsync_core::config::WriteLimit;

use super::auth::{Credential, TokenSource};
use super::error::GraphError;
use super::licenses::LicenseCounts;
use super::pace::WritePacer;
use super::requests::{GraphRequest, GraphResponse, absolute_refs};

/// Attempts (first included) of a request that meets a transport error, whatever
/// [`RetryPolicy::max_attempts`] says when that is larger.
pub const TRANSPORT_ATTEMPTS: u32 = 3;

/// The longest wait between two attempts after a transport error.
pub const TRANSPORT_MAX_WAIT: Duration = Duration::from_secs(1);

/// A transport error (no HTTP answer) from `endpoint`, the cause put in words: the chain of
/// `reqwest`'s sources names it, the URL left out.
pub(crate) fn transport_error(endpoint: &str, error: &reqwest::Error) -> GraphError {
    GraphError::Transport(format!(
        "cannot reach {endpoint}: {}",
        transport_cause(error)
    ))
}

/// "connection refused", "the host name could not be resolved", "timed out", "TLS: ...", or the
/// innermost source's text.
pub fn transport_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut texts = Vec::new();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
                std::io::ErrorKind::TimedOut => return "timed out".into(),
                _ => {}
            }
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>()
            && r.is_timeout()
        {
            return "timed out".into();
        }
        let text = e.to_string();
        texts.push(text.to_ascii_lowercase());
        innermost = text;
        source = e.source();
    }
    let all = texts.join(" ");
    if all.contains("dns error") || all.contains("failed to lookup address") {
        return format!("the host name could not be resolved ({innermost})");
    }
    if all.contains("connection refused") {
        return "connection refused".into();
    }
    if all.contains("certificate") || all.contains("tls") || all.contains("ssl") {
        return format!("TLS failed: {innermost}");
    }
    innermost
}

/// How hard the client retries before giving the error to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request for throttling, 503/504 and transport errors (first try included).
    pub max_attempts: u32,
    /// First backoff step when Graph sends no `Retry-After`.
    pub base_delay: Duration,
    /// Cap on any single wait, `Retry-After` included.
    pub max_delay: Duration,
    /// Retries of a replication-lag reference error (lag-tolerant requests only).
    pub lag_attempts: u32,
    /// Step of the replication-lag backoff (`lag_delay * n`).
    pub lag_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            lag_attempts: 5,
            lag_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `failures + 1`, with full jitter.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let cap = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if cap_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(0..=cap_ms))
    }

    /// The wait after a retryable response: its `Retry-After` (capped), else backoff.
    pub(crate) fn wait_for(&self, retry_after: Option<Duration>, failures: u32) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_delay),
            None => self.backoff(failures),
        }
    }

    /// The wait before replication-lag retry `n` (1-based).
    /// How often a 404 of a `confirm_not_found` request is asked again: a few short tries, as a
    /// genuine "already gone" should not wait for the whole lag budget.
    pub(crate) fn confirm_attempts(&self) -> u32 {
        self.lag_attempts.min(3)
    }

    pub(crate) fn lag_wait(&self, n: u32) -> Duration {
        self.lag_delay.saturating_mul(n).min(self.max_delay)
    }
}

/// Where and as whom the client talks to Graph.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Directory (tenant) id or a verified domain.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// Secret or certificate.
    pub credential: Credential,
    /// e.g. `https://graph.microsoft.com` (no `/v1.0`); the token scope is `{graph_endpoint}/.default`.
    pub graph_endpoint: String,
    /// e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Writes allowed per window ([`WritePacer`]); `None`: unpaced.
    pub write_limit: Option<WriteLimit>,
    /// Requests on the wire at once; the rest wait their turn (a bulk round converges many
    /// workers concurrently).
    pub max_in_flight: usize,
}

impl GraphSettings {
    /// Settings for the global cloud with the default retry policy.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
    ) -> Self {
        GraphSettings {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential,
            graph_endpoint: "https://graph.microsoft.com".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            retry: RetryPolicy::default(),
            write_limit: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Requests in flight at once by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// An async Microsoft Graph client. Cheap to clone (an `Arc` inside); clones share the token cache.
#[derive(Debug, Clone)]
pub struct GraphClient {
    pub(crate) inner: Arc<Inner>,
    /// Every request goes as `x-ms-throttle-priority: low` (bulk and reconcile work).
    bulk: bool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    http: reqwest::Client,
    tokens: TokenSource,
    /// `{graph_endpoint}/v1.0`
    api_base: String,
    retry: RetryPolicy,
    pacer: Option<WritePacer>,
    in_flight: tokio::sync::Semaphore,
    /// The tenant's licence units as this client last saw them.
    pub(crate) licenses: LicenseCounts,
}

/// What one attempt led to.
enum Step {
    Done(GraphResponse),
    Fail(GraphError),
}

impl GraphClient {
    /// A client over `http` (set its timeouts there). Nothing is sent until the first request.
    pub fn new(settings: GraphSettings, http: reqwest::Client) -> Self {
        let graph_endpoint = settings.graph_endpoint.trim_end_matches('/').to_owned();
        let tokens = TokenSource::new(
            &settings.authority_host,
            &settings.tenant_id,
            &graph_endpoint,
            &settings.client_id,
            settings.credential,
        );
        GraphClient {
            inner: Arc::new(Inner {
                http,
                tokens,
                api_base: format!("{graph_endpoint}/v1.0"),
                retry: settings.retry,
                pacer: settings.write_limit.map(WritePacer::new),
                in_flight: tokio::sync::Semaphore::new(settings.max_in_flight.max(1)),
                licenses: LicenseCounts::default(),
            }),
            bulk: false,
        }
    }

    /// The same client (same token cache) marking every request low priority, for bulk and
    /// reconcile work, so that interactive traffic of other apps keeps its share of the quota.
    pub fn for_bulk(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            bulk: true,
        }
    }

    /// Whether requests go as low priority ([`GraphClient::for_bulk`]).
    pub fn is_bulk(&self) -> bool {
        self.bulk
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// `{graph_endpoint}/v1.0`.
    pub fn api_base(&self) -> &str {
        &self.inner.api_base
    }

    /// Sends one request with the full retry policy. `Ok` only when the response is a success
    /// (2xx or one of the request's [`AlsoOk`](super::AlsoOk) rules); otherwise the typed error.
    pub async fn send(&self, request: &GraphRequest) -> Result<GraphResponse, GraphError> {
        self.execute(request).await?.into_result()
    }

    /// Sends one request with retries and returns the final response whatever its status; `Err`
    /// only when no response could be had (token, transport).
    pub(crate) async fn execute(
        &self,
        request: &GraphRequest,
    ) -> Result<GraphResponse, GraphError> {
        let retry = &self.inner.retry;
        let max_attempts = retry.max_attempts.max(1);
        let mut failures = 0u32;
        let mut transport_failures = 0u32;
        let transport_attempts = max_attempts.min(TRANSPORT_ATTEMPTS);
        let mut lag_retries = 0u32;
        let mut reauthenticated = false;
        loop {
            let token = match self.inner.tokens.token(&self.inner.http).await {
                Ok(t) => t,
                Err(e @ GraphError::Transport(_)) => {
                    transport_failures += 1;
                    if transport_failures >= transport_attempts {
                        return Err(e);
                    }
                    let wait = retry.backoff(transport_failures).min(TRANSPORT_MAX_WAIT);
                    tracing::info!(attempt = transport_failures, wait_ms = wait.as_millis() as u64, error = %e, "token endpoint unreachable; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    if failures >= max_attempts {
                        return Err(match e {
                            GraphError::Auth { status, .. } if status >= 500 => {
                                GraphError::Unavailable { status }
                            }
                            other => other,
                        });
                    }
                    let wait = retry.backoff(failures);
                    tracing::info!(attempt = failures, wait_ms = wait.as_millis() as u64, error = %e, "token request failed; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(pacer) = &self.inner.pacer {
                pacer.admit(writes(request)).await;
            }
            let response = match self.send_once(request, &token.value).await {
                Step::Done(r) => r,
                Step::Fail(e) => {
                    transport_failures += 1;
                    if transport_failures >= transport_attempts {
                        return Err(e);
                    }
                    let wait = retry.backoff(transport_failures).min(TRANSPORT_MAX_WAIT);
                    tracing::info!(method = %request.method, attempt = transport_failures, wait_ms = wait.as_millis() as u64, error = %e, "Graph transport error; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            if response.status == 404
                && request.confirm_not_found
                && lag_retries < retry.confirm_attempts()
            {
                lag_retries += 1;
                let wait = retry.lag_wait(lag_retries);
                tracing::info!(method = %request.method, retry = lag_retries, wait_ms = wait.as_millis() as u64, "404 may be replication lag; asking again before taking it as already gone");
                tokio::time::sleep(wait).await;
                continue;
            }
            if response.is_success() {
                return Ok(response);
            }
            match response.status {
                401 if !reauthenticated => {
                    reauthenticated = true;
                    tracing::info!(method = %request.method, "Graph answered 401; dropping the cached token and retrying once");
                    self.inner.tokens.invalidate(token.generation).await;
                }
                429 | 503 | 504 => {
                    failures += 1;
                    if failures >= max_attempts {
                        tracing::warn!(method = %request.method, status = response.status, attempts = failures, "Graph still throttled or unavailable; giving up");
                        return Ok(response);
                    }
                    let wait = retry.wait_for(response.retry_after(), failures);
                    tracing::info!(method = %request.method, status = response.status, attempt = failures, wait_ms = wait.as_millis() as u64, "Graph throttled or unavailable; retrying");
                    tokio::time::sleep(wait).await;
                }
                _ if request.lag_tolerant
                    && response.is_reference_error()
                    && lag_retries < retry.lag_attempts =>
                {
                    lag_retries += 1;
                    let wait = retry.lag_wait(lag_retries);
                    tracing::info!(method = %request.method, status = response.status, retry = lag_retries, wait_ms = wait.as_millis() as u64, "reference not visible yet (replication lag?); retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(response),
            }
        }
    }

    /// The endpoint of the token requests: `{authority_host}/{tenant}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> &str {
        self.inner.tokens.token_url()
    }

    /// Gets an access token (the cached one if still good), with the bounded retries of a
    /// transport error: whether the app can sign in at all.
    pub async fn check_token(&self) -> Result<(), GraphError> {
        let retry = &self.inner.retry;
        let attempts = retry.max_attempts.clamp(1, TRANSPORT_ATTEMPTS);
        let mut failures = 0;
        loop {
            match self.inner.tokens.token(&self.inner.http).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_retryable() && failures + 1 < attempts => {
                    failures += 1;
                    tokio::time::sleep(retry.backoff(failures).min(TRANSPORT_MAX_WAIT)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The application permissions the app's token grants (its `roles` claim), `None` when the
    /// token does not say. Gets a token if none is cached.
    pub async fn granted_roles(&self) -> Result<Option<Vec<String>>, GraphError> {
        self.inner.tokens.roles(&self.inner.http).await
    }

    fn unreachable(&self, error: &reqwest::Error) -> GraphError {
        transport_error(
            &format!("Microsoft Graph at {}", self.inner.api_base),
            error,
        )
    }

    async fn send_once(&self, request: &GraphRequest, token: &str) -> Step {
        let url = if request.url.starts_with('/') {
            format!("{}{}", self.inner.api_base, request.url)
        } else {
            format!("{}/{}", self.inner.api_base, request.url)
        };
        tracing::debug!(method = %request.method, url = %url, id = %request.id, "Graph request");
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), &url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if request.low_priority || self.bulk {
            builder = builder.header("x-ms-throttle-priority", "low");
        }
        builder = match &request.body {
            Some(body) => builder.json(&absolute_refs(body, &self.inner.api_base)),
            None if matches!(
                request.method,
                reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
            ) =>
            {
                builder
                    .header(reqwest::header::CONTENT_LENGTH, "0")
                    .body(Vec::<u8>::new())
            }
            None => builder,
        };
        let Ok(_permit) = self.inner.in_flight.acquire().await else {
            return Step::Fail(GraphError::Transport("the client is shutting down".into()));
        };
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return Step::Fail(self.unreachable(&e)),
        };
        let status = response.status().as_u16();
        let headers: BTreeMap<String, String> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    name.as_str().to_ascii_lowercase(),
                    value.to_str().ok()?.to_owned(),
                ))
            })
            .collect();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Step::Fail(self.unreachable(&e)),
        };
        tracing::debug!(method = %request.method, url = %url, status, "Graph response");
        Step::Done(GraphResponse::new(
            request.id.clone(),
            status,
            parse_body(&bytes),
            headers,
            request.rules(),
        ))
    }
}

/// The writes a request makes: one for a POST, PATCH, PUT or DELETE, and for a `$batch` one per
/// such inner request (the outer POST is only the envelope).
fn writes(request: &GraphRequest) -> u32 {
    let is_write = |method: &str| !method.eq_ignore_ascii_case("GET");
    if request.url == "/$batch" {
        let inner = request
            .body
            .as_ref()
            .and_then(|body| body.get("requests"))
            .and_then(Value::as_array);
        return inner.map_or(0, |steps| {
            steps
                .iter()
                .filter(|step| step["method"].as_str().is_some_and(is_write))
                .count() as u32
        });
    }
    u32::from(is_write(request.method.as_str()))
}

/// JSON if it parses, else the text as a JSON string; `None` when empty.
pub(crate) fn parse_body(bytes: &[u8]) -> Option<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            ..RetryPolicy::default()
        };
        for n in 1..10 {
            assert!(policy.backoff(n) <= Duration::from_millis(250));
        }
        assert!(policy.backoff(1) <= Duration::from_millis(100));
        assert_eq!(
            policy.wait_for(Some(Duration::from_secs(120)), 1),
            Duration::from_millis(250)
        );
        assert_eq!(policy.wait_for(Some(Duration::ZERO), 3), Duration::ZERO);
        assert_eq!(policy.lag_wait(2), Duration::from_millis(250));
    }

    #[test]
    fn bodies_are_parsed_leniently() {
        assert_eq!(parse_body(b""), None);
        assert_eq!(parse_body(b"{\"a\":1}"), Some(serde_json::json!({"a": 1})));
        assert_eq!(parse_body(b"oops"), Some(Value::String("oops".into())));
    }
}
