//! One HTTP client for every vendor's API: authentication, and retries of throttling and
//! outages.
//!
//! - 429, 502, 503, 504 and transport errors are retried: the wait is the response's
//!   `Retry-After` (delta-seconds or an HTTP date), capped at `max_delay`, else an exponential
//!   backoff. After `max_attempts` the error is [`HrError::retryable`]: the queue retries the
//!   message later, so a long outage never loses the event.
//! - 401 with an OAuth2 token: the token is fetched again and the request sent once more.
//! - 401 and 403 otherwise: a permanent error that names the credential to check.
//! - Any other status is the caller's to read (a 404 is "no such worker").
//!
//! - Record ids go into paths through [`id_segment`]: an id a URL would resolve away (`.`,
//!   `..`) or with control characters is refused before any request.
//!
//! Logs above `debug` carry the vendor, method, status and attempt; never URLs (they hold
//! employee ids), bodies or credentials.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::connector::{HrError, id_problem};

/// Attempts (first included) of a request that meets a transport error (connection refused,
/// DNS, TLS, timeout): an API that cannot be reached is reported within seconds, naming where
/// and why.
pub const TRANSPORT_ATTEMPTS: u32 = 3;

/// A transport error in words: "connection refused", "the host name could not be resolved
/// (...)", "timed out", "TLS failed: ...", or the innermost source's text (never the URL).
pub fn transport_cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".into();
    }
    let mut innermost = String::from("the request could not be sent");
    let mut texts = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
                std::io::ErrorKind::TimedOut => return "timed out".into(),
                _ => {}
            }
        }
        innermost = e.to_string();
        texts.push(innermost.to_ascii_lowercase());
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

/// `scheme://host:port` of `url`, without its path, query or credentials.
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", parsed.scheme()),
            (Some(host), None) => format!("{}://{host}", parsed.scheme()),
            _ => "the configured URL".to_owned(),
        },
        Err(_) => "the configured URL".to_owned(),
    }
}

/// How hard a request is retried before the error goes to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff step when the vendor sends no `Retry-After`.
    pub base_delay: Duration,
    /// Cap on any single wait, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    fn wait(&self, retry_after: Option<Duration>, failures: u32) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_delay),
            None => self
                .base_delay
                .saturating_mul(1 << failures.saturating_sub(1).min(16))
                .min(self.max_delay),
        }
    }
}

/// How requests prove who they are. Every credential is a [`SecretString`], whose `Debug`
/// is redacted: an [`ApiClient`] (and a connector) can be logged with `{:?}`.
#[derive(Debug)]
pub enum Auth {
    None,
    /// HTTP Basic (BambooHR: the API key as user, any password; HiBob: service user id and
    /// token).
    Basic {
        user: SecretString,
        password: SecretString,
    },
    /// A static bearer token.
    Bearer(SecretString),
    /// OAuth2 client credentials (Personio, Keka): the form is POSTed to `token_url`, the
    /// `access_token` cached until shortly before `expires_in`. Every form value is held as
    /// a secret (the client id and secret, Keka's API key are among them).
    OAuth2 {
        token_url: String,
        form: Vec<(String, SecretString)>,
        cached: Mutex<Option<(SecretString, Timestamp)>>,
    },
}

impl Auth {
    pub fn oauth2(token_url: impl Into<String>, form: Vec<(String, SecretString)>) -> Self {
        Self::OAuth2 {
            token_url: token_url.into(),
            form,
            cached: Mutex::new(None),
        }
    }
}

/// A response the caller reads.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The body as `T`; a body that does not fit is a permanent error naming the vendor.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, HrError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HrError::permanent(format!(
                "{what}: the response does not have the documented shape ({e})"
            ))
        })
    }

    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// A permanent error for an unexpected status, with the vendor's own message where it
    /// gives a short one.
    pub fn unexpected(&self, what: &str) -> HrError {
        let text = String::from_utf8_lossy(&self.body);
        let detail: String = text.chars().take(200).collect();
        let error = format!("{what}: HTTP {} {detail}", self.status.as_u16());
        let error =
            match self.status.is_server_error() || self.status == StatusCode::TOO_MANY_REQUESTS {
                true => HrError::retryable(error),
                false => HrError::permanent(error),
            };
        error.with_status(self.status.as_u16())
    }
}

/// A body to send.
#[derive(Debug, Clone)]
pub enum Body {
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// A vendor API: base URL, authentication, retries.
#[derive(Debug)]
pub struct ApiClient {
    vendor: &'static str,
    http: reqwest::Client,
    base_url: String,
    auth: Auth,
    retry: RetryPolicy,
    extra_headers: Vec<(String, String)>,
}

impl ApiClient {
    pub fn new(vendor: &'static str, http: reqwest::Client, base_url: &str, auth: Auth) -> Self {
        Self {
            vendor,
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            retry: RetryPolicy::default(),
            extra_headers: Vec::new(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A header sent with every request (a vendor's API version, an API key header).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// One harmless read for `hrsync doctor`: `Ok("GET /path answered 200")` (the query left out)
    /// when the vendor answers it with a success, else the error.
    pub async fn probe(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        what: String,
    ) -> Result<String, HrError> {
        let response = self
            .send(method.clone(), path, body.as_ref(), &what)
            .await?;
        if !response.is_success() {
            return Err(response.unexpected(&what));
        }
        let bare = path.split('?').next().unwrap_or(path);
        Ok(format!(
            "{} {method} {bare} answered {}",
            self.vendor,
            response.status.as_u16()
        ))
    }

    /// `scheme://host:port` of the base URL: where the API is, without the path (which may
    /// name a company) or anything else.
    fn host(&self) -> String {
        origin(&self.base_url)
    }

    /// Sends `method` to `base_url + path` (`path` starts with `/` and may carry a query),
    /// with retries; `what` names the call in errors (`fetch employee 42`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Body>,
        what: &str,
    ) -> Result<ApiResponse, HrError> {
        let url = format!("{}{path}", self.base_url);
        let mut failures = 0;
        let mut refreshed = false;
        let mut transport: Option<String> = None;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(reqwest::header::ACCEPT, "application/json");
            for (name, value) in &self.extra_headers {
                request = request.header(name, value);
            }
            request = self.authorize(request, what).await?;
            request = match body {
                Some(Body::Json(json)) => request.json(json),
                Some(Body::Form(form)) => request.form(form),
                None => request,
            };
            let outcome = request.send().await;
            let retry_after = match outcome {
                Err(error) => {
                    tracing::debug!(vendor = self.vendor, %error, "transport error");
                    transport = Some(transport_cause(&error));
                    None
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let bytes = response.bytes().await.map(|b| b.to_vec());
                    match (status, bytes) {
                        (StatusCode::UNAUTHORIZED, _)
                            if matches!(self.auth, Auth::OAuth2 { .. }) && !refreshed =>
                        {
                            refreshed = true;
                            self.forget_token().await;
                            continue;
                        }
                        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => {
                            let why = format!(
                                "{} refused the credential (HTTP {}): check the source's API credential and its permissions",
                                self.vendor,
                                status.as_u16()
                            );
                            let refused = HrError::permanent(format!("{what}: {why}"))
                                .with_status(status.as_u16());
                            // A 403 may be about one record's fields; a 401 is every call's.
                            return Err(match status {
                                StatusCode::UNAUTHORIZED => refused.as_outage(why),
                                _ => refused,
                            });
                        }
                        (status, Ok(body)) if !is_retryable(status) => {
                            return Ok(ApiResponse { status, body });
                        }
                        (status, _) => {
                            tracing::info!(
                                vendor = self.vendor,
                                method = %method,
                                status = status.as_u16(),
                                attempt = failures + 1,
                                "HR API call to retry"
                            );
                            retry_after
                        }
                    }
                }
            };
            failures += 1;
            if let Some(cause) = &transport
                && failures >= self.retry.max_attempts.min(TRANSPORT_ATTEMPTS)
            {
                let why = format!(
                    "cannot reach {} at {}: {cause} (after {failures} attempts)",
                    self.vendor,
                    self.host()
                );
                return Err(HrError::retryable(format!("{what}: {why}")).as_outage(why));
            }
            if failures >= self.retry.max_attempts {
                return Err(HrError::retryable(format!(
                    "{what}: {} did not answer after {failures} attempts (throttled or unavailable)",
                    self.vendor
                )));
            }
            tokio::time::sleep(self.retry.wait(retry_after, failures)).await;
        }
    }

    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::RequestBuilder, HrError> {
        Ok(match &self.auth {
            Auth::None => request,
            Auth::Basic { user, password } => {
                let pair = format!("{}:{}", user.expose_secret(), password.expose_secret());
                request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                )
            }
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Auth::OAuth2 { .. } => request.bearer_auth(self.token(what).await?.expose_secret()),
        })
    }

    async fn forget_token(&self) {
        if let Auth::OAuth2 { cached, .. } = &self.auth {
            *cached.lock().await = None;
        }
    }

    /// The cached OAuth2 access token, fetched when missing or about to expire.
    async fn token(&self, what: &str) -> Result<SecretString, HrError> {
        let Auth::OAuth2 {
            token_url,
            form,
            cached,
        } = &self.auth
        else {
            return Err(HrError::permanent("not an OAuth2 client"));
        };
        let mut cached = cached.lock().await;
        let now = Timestamp::now();
        if let Some((token, expires)) = cached.as_ref()
            && *expires > now
        {
            return Ok(token.clone());
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        let form: Vec<(&str, &str)> = form
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose_secret()))
            .collect();
        let mut failures = 0;
        let response = loop {
            let outcome = self.http.post(token_url).form(&form).send().await;
            let mut transport = None;
            let retry_after = match outcome {
                Ok(response) if !is_retryable(response.status()) => break response,
                Ok(response) => retry_after(response.headers()),
                Err(error) => {
                    transport = Some(transport_cause(&error));
                    None
                }
            };
            failures += 1;
            if let Some(cause) = transport
                && failures >= self.retry.max_attempts.min(TRANSPORT_ATTEMPTS)
            {
                let why = format!(
                    "cannot reach the {} token endpoint at {}: {cause} (after {failures} attempts)",
                    self.vendor,
                    origin(token_url)
                );
                return Err(HrError::retryable(format!("{what}: {why}")).as_outage(why));
            }
            if failures >= self.retry.max_attempts {
                return Err(HrError::retryable(format!(
                    "{what}: the {} token endpoint did not answer after {failures} attempts",
                    self.vendor
                )));
            }
            tokio::time::sleep(self.retry.wait(retry_after, failures)).await;
        };
        let status = response.status();
        if !status.is_success() {
            let why = format!(
                "the {} token endpoint at {} refused the client credentials (HTTP {}): check client_id and client_secret",
                self.vendor,
                origin(token_url),
                status.as_u16()
            );
            return Err(HrError::permanent(format!("{what}: {why}")).as_outage(why));
        }
        let token: TokenResponse = response.json().await.map_err(|e| {
            HrError::permanent(format!(
                "{what}: the {} token response has no access_token ({e})",
                self.vendor
            ))
        })?;
        // Renew a minute early so a token never expires in flight.
        let lifetime = token.expires_in.unwrap_or(3600).saturating_sub(60).max(0);
        let expires = now
            .checked_add(jiff::SignedDuration::from_secs(lifetime))
            .unwrap_or(now);
        let token = SecretString::from(token.access_token);
        *cached = Some((token.clone(), expires));
        Ok(token)
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    ) || status == StatusCode::INTERNAL_SERVER_ERROR
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?;
    let wait = date.timestamp().duration_since(Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// `id` as one percent-encoded path segment, or a permanent error when it breaks
/// [`id_problem`]: checked here, before any URL is built, whatever the id came from (a
/// webhook, a change feed, a queued message).
pub fn id_segment(source: &str, vendor: &str, id: &str) -> Result<String, HrError> {
    match id_problem(id) {
        Some(problem) => Err(HrError::permanent(format!(
            "source {source}: the {vendor} record id {problem}: refused before any request is built"
        ))),
        None => Ok(encode(id)),
    }
}

/// Percent-encodes one path segment or query value (an employee id, a date).
pub fn encode(value: &str) -> String {
    use std::fmt::Write;
    value.bytes().fold(String::new(), |mut out, byte| {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char);
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("7"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn waits_are_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.wait(Some(Duration::from_secs(3600)), 1),
            policy.max_delay
        );
        assert_eq!(policy.wait(None, 1), policy.base_delay);
        assert_eq!(policy.wait(None, 30), policy.max_delay);
    }

    /// A server answering every request with `status`; its `http://127.0.0.1:PORT`.
    async fn answering(status: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    fn client(base_url: &str) -> ApiClient {
        ApiClient::new(
            "HiBob",
            reqwest::Client::new(),
            base_url,
            Auth::Bearer(SecretString::from("token")),
        )
    }

    /// An API that refuses the credential (401) or cannot be reached fails every call alike:
    /// an outage, said without the worker. One record's 403 is not.
    #[tokio::test]
    async fn a_refused_credential_or_an_unreachable_api_is_an_outage() {
        let refused = client(&answering("401 Unauthorized").await)
            .send(Method::GET, "/v1/people/4242", None, "fetch employee 4242")
            .await
            .unwrap_err();
        let what = refused.outage.as_deref().expect("a 401 is an outage");
        assert!(
            what.contains("HiBob refused the credential (HTTP 401)"),
            "{what}"
        );
        assert!(!what.contains("4242"), "{what}");

        let forbidden = client(&answering("403 Forbidden").await)
            .send(Method::GET, "/v1/people/4242", None, "fetch employee 4242")
            .await
            .unwrap_err();
        assert_eq!(forbidden.outage, None, "{forbidden:?}");

        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let unreachable = client(&closed)
            .with_retry(RetryPolicy {
                base_delay: Duration::from_millis(1),
                ..RetryPolicy::default()
            })
            .send(Method::GET, "/v1/people/4242", None, "fetch employee 4242")
            .await
            .unwrap_err();
        let what = unreachable
            .outage
            .as_deref()
            .expect("unreachable is an outage");
        assert!(
            what.starts_with(&format!("cannot reach HiBob at {closed}: ")),
            "{what}"
        );
    }

    #[test]
    fn encode_escapes_everything_but_unreserved() {
        assert_eq!(encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(encode("2026-01-01T00:00:00Z"), "2026-01-01T00%3A00%3A00Z");
        // What would end a path segment or start a query, a fragment or an escape.
        assert_eq!(encode("a/b?c#d%e"), "a%2Fb%3Fc%23d%25e");
    }
}
