//! Requests and responses, and builders for each write hrsync makes.
//!
//! A [`GraphRequest`] is plain data: it can be sent alone ([`GraphClient::send`]) or inside a
//! `$batch` ([`GraphClient::batch`]) with the same meaning. Each carries its own success rule
//! ([`AlsoOk`]), so "already a member" or "already gone" is success wherever it is sent, and the
//! [`GraphResponse`] applies that rule in [`GraphResponse::is_success`].
//!
//! URLs are relative to the service root (`/v1.0`), e.g. `/users/{id}`. Ids placed in a path are
//! percent-encoded; values placed in a `$filter` go through [`crate::odata::quote`] first and are then
//! percent-encoded as query values ([`with_query`]).
//!
//! `@odata.id` references in bodies are written relative (`/users/{id}`) and made absolute against
//! the client's `graph_endpoint` when sent (`https://graph.microsoft.com/v1.0/users/{id}`), so the
//! builders need no endpoint and the same request works against the sandbox.
//!
//! [`GraphClient::send`]: super::GraphClient::send
//! [`GraphClient::batch`]: super::GraphClient::batch

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use reqwest::Method;
use serde_json::{Value, json};

use super::error::GraphError;

/// A non-2xx outcome that still counts as success for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlsoOk {
    /// 404: the object or link is already gone (idempotent deletes and removals).
    NotFound,
    /// 400 whose message says the reference "already exist(s)" (adding an existing member).
    AlreadyExists,
    /// 400 "User does not have a corresponding license.": removing a license already removed.
    LicenseAlreadyRemoved,
    /// Any response with this status.
    Status(u16),
}

impl AlsoOk {
    /// Whether a response with this status and Graph error message is covered by the rule.
    pub fn matches(&self, status: u16, message: Option<&str>) -> bool {
        match self {
            AlsoOk::NotFound => status == 404,
            AlsoOk::AlreadyExists => {
                status == 400
                    && message.is_some_and(|m| m.to_ascii_lowercase().contains("already exist"))
            }
            AlsoOk::LicenseAlreadyRemoved => {
                status == 400
                    && message.is_some_and(|m| {
                        m.to_ascii_lowercase()
                            .contains("does not have a corresponding license")
                    })
            }
            AlsoOk::Status(s) => status == *s,
        }
    }
}

/// One Graph request. Its `Debug` output hides a `passwordProfile` in the body.
#[derive(Clone, PartialEq)]
pub struct GraphRequest {
    /// Unique within a batch; builders assign a fresh one (`r1`, `r2`, ...).
    pub id: String,
    /// HTTP method.
    pub method: Method,
    /// Path and query relative to `/v1.0`, starting with `/`.
    pub url: String,
    /// JSON body, if any (sent with `Content-Type: application/json`).
    pub body: Option<Value>,
    /// Ids of requests in the same batch that must succeed first (`dependsOn`).
    pub depends_on: Vec<String>,
    /// Extra headers (e.g. `ConsistencyLevel: eventual`).
    pub headers: Vec<(String, String)>,
    /// Sends `x-ms-throttle-priority: low`.
    pub low_priority: bool,
    /// Replication-lag reference errors (404, 400 "... does not exist") are retried with the
    /// policy's `lag_delay` backoff, up to `lag_attempts` times.
    pub lag_tolerant: bool,
    /// Non-2xx outcomes that count as success.
    pub also_ok: Vec<AlsoOk>,
    /// A 404 that [`AlsoOk::NotFound`] would accept is first asked again a few times: right
    /// after a write it may be replication lag rather than "already gone" (a just-added member).
    pub confirm_not_found: bool,
}

impl fmt::Debug for GraphRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body.as_ref().map(|body| {
            let mut body = body.clone();
            if let Some(profile) = body.get_mut("passwordProfile") {
                *profile = Value::String("<redacted>".into());
            }
            body
        });
        f.debug_struct("GraphRequest")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("body", &body)
            .field("depends_on", &self.depends_on)
            .field("headers", &self.headers)
            .field("low_priority", &self.low_priority)
            .field("lag_tolerant", &self.lag_tolerant)
            .field("also_ok", &self.also_ok)
            .field("confirm_not_found", &self.confirm_not_found)
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn fresh_id() -> String {
    format!("r{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

impl GraphRequest {
    /// A request with a fresh id and no body, headers or rules.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        GraphRequest {
            id: fresh_id(),
            method,
            url: url.into(),
            body: None,
            depends_on: Vec::new(),
            headers: Vec::new(),
            low_priority: false,
            lag_tolerant: false,
            also_ok: Vec::new(),
            confirm_not_found: false,
        }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::DELETE, url)
    }

    /// `method url` with a JSON body.
    pub fn with_json(method: Method, url: impl Into<String>, body: Value) -> Self {
        let mut r = Self::new(method, url);
        r.body = Some(body);
        r
    }

    /// Replaces the id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Adds a `dependsOn` entry.
    pub fn depends_on(mut self, id: impl Into<String>) -> Self {
        self.depends_on.push(id.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Marks the request low priority (`x-ms-throttle-priority: low`).
    pub fn low_priority(mut self) -> Self {
        self.low_priority = true;
        self
    }

    /// Marks the request tolerant of replication lag.
    pub fn lag_tolerant(mut self) -> Self {
        self.lag_tolerant = true;
        self
    }

    /// Asks a 404 again before accepting it (see the field).
    pub fn confirm_not_found(mut self) -> Self {
        self.confirm_not_found = true;
        self
    }

    /// Adds a success rule.
    pub fn also_ok(mut self, rule: AlsoOk) -> Self {
        self.also_ok.push(rule);
        self
    }

    pub(crate) fn rules(&self) -> ResponseRules {
        ResponseRules {
            also_ok: self.also_ok.clone(),
            lag_tolerant: self.lag_tolerant,
        }
    }
}

/// The success rules a response inherits from its request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ResponseRules {
    also_ok: Vec<AlsoOk>,
    lag_tolerant: bool,
}

/// One Graph response: for a single request, or one inner response of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphResponse {
    /// The request's id.
    pub id: String,
    /// HTTP status of this request (for a batch, the inner status, never the outer 200).
    pub status: u16,
    /// Parsed JSON body; a non-JSON body is kept as a JSON string; `None` when empty.
    pub body: Option<Value>,
    /// Response headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    rules: ResponseRules,
}

impl GraphResponse {
    pub(crate) fn new(
        id: String,
        status: u16,
        body: Option<Value>,
        headers: BTreeMap<String, String>,
        rules: ResponseRules,
    ) -> Self {
        GraphResponse {
            id,
            status,
            body,
            headers,
            rules,
        }
    }

    /// 2xx, or covered by one of the request's [`AlsoOk`] rules.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
            || self
                .rules
                .also_ok
                .iter()
                .any(|r| r.matches(self.status, self.error_message()))
    }

    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Graph's `error.code`, when the body is an error.
    pub fn error_code(&self) -> Option<&str> {
        self.body.as_ref()?.get("error")?.get("code")?.as_str()
    }

    /// Graph's `error.message`, when the body is an error.
    pub fn error_message(&self) -> Option<&str> {
        self.body.as_ref()?.get("error")?.get("message")?.as_str()
    }

    /// `Retry-After` (delta-seconds or HTTP-date), uncapped.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?)
    }

    /// Whether this is a replication-lag reference error: 404, or 400 whose message says an
    /// object "does not exist" / "do not exist" (Graph's wording for a just-created object that a
    /// replica has not seen yet).
    pub fn is_reference_error(&self) -> bool {
        match self.status {
            404 => true,
            400 => self.error_message().is_some_and(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("does not exist") || m.contains("do not exist")
            }),
            _ => false,
        }
    }

    /// The typed error for a response that is not a success, `None` for a success. Statuses the
    /// client retries are reported as what they mean once retries are over: 429 -> `Throttled`,
    /// 503/504 -> `Unavailable`, a reference error of a lag-tolerant request -> `ReplicationLag`.
    pub fn error(&self) -> Option<GraphError> {
        if self.is_success() {
            return None;
        }
        let code = self.error_code().unwrap_or_default().to_owned();
        let message = match self.error_message() {
            Some(m) => m.to_owned(),
            None => match &self.body {
                Some(Value::String(s)) => s.chars().take(500).collect(),
                _ => String::new(),
            },
        };
        Some(match self.status {
            429 => GraphError::Throttled {
                retry_after: self.retry_after(),
            },
            503 | 504 => GraphError::Unavailable {
                status: self.status,
            },
            status if self.rules.lag_tolerant && self.is_reference_error() => {
                GraphError::ReplicationLag {
                    status,
                    code,
                    message,
                }
            }
            status => GraphError::Graph {
                status,
                code,
                message,
            },
        })
    }

    /// `Ok(self)` on success, else the typed error.
    pub fn into_result(self) -> Result<Self, GraphError> {
        match self.error() {
            None => Ok(self),
            Some(e) => Err(e),
        }
    }
}

/// `Retry-After`: delta-seconds, or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let now = jiff::Timestamp::now();
    let ms = at.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

fn percent_encode(value: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes one path segment (an object id or a UPN): everything but unreserved and `@`.
pub fn encode_path_segment(segment: &str) -> String {
    percent_encode(segment, |b| b == b'@')
}

/// Percent-encodes a query value: everything but unreserved characters and `, : / ( ) @ $`, so a
/// `'`, space, `&`, `=`, `+` or `#` in a `$filter` literal cannot change the query.
pub fn encode_query_value(value: &str) -> String {
    percent_encode(value, |b| {
        matches!(b, b',' | b':' | b'/' | b'(' | b')' | b'@' | b'$')
    })
}

/// `path?name=value&...` with each value percent-encoded (names are used as given, e.g.
/// `$filter`).
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let mut url = path.to_owned();
    for (i, (name, value)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(name);
        url.push('=');
        url.push_str(&encode_query_value(value));
    }
    url
}

/// Makes relative references absolute against `api_base` (`https://graph.microsoft.com/v1.0`):
/// an `@odata.id` (`/users/{id}`), and the urls of a `...@odata.bind` array.
pub(crate) fn absolute_refs(body: &Value, api_base: &str) -> Value {
    let mut body = body.clone();
    let absolute = |reference: &mut String| {
        if reference.starts_with('/') {
            *reference = format!("{api_base}{reference}");
        }
    };
    if let Some(object) = body.as_object_mut() {
        for (key, value) in object.iter_mut() {
            match value {
                Value::String(reference) if key == "@odata.id" => absolute(reference),
                Value::Array(references) if key.ends_with("@odata.bind") => {
                    for reference in references {
                        if let Value::String(reference) = reference {
                            absolute(reference);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    body
}

fn user_path(id: &str) -> String {
    format!("/users/{}", encode_path_segment(id))
}

/// `PATCH /users/{id}` with the given properties (a JSON `null` clears one). Graph answers
/// `204 No Content`. Lag tolerant (the id may come from a create a moment ago).
pub fn update_user(id: &str, properties: &BTreeMap<String, Value>) -> GraphRequest {
    let body = Value::Object(properties.clone().into_iter().collect());
    GraphRequest::with_json(Method::PATCH, user_path(id), body).lag_tolerant()
}

/// `PUT /users/{id}/manager/$ref` with `{"@odata.id": "{graph}/v1.0/users/{manager}"}`; `204`.
/// Lag tolerant: either user may be brand new.
pub fn set_manager(user_id: &str, manager_id: &str) -> GraphRequest {
    GraphRequest::with_json(
        Method::PUT,
        format!("{}/manager/$ref", user_path(user_id)),
        json!({ "@odata.id": user_path(manager_id) }),
    )
    .lag_tolerant()
}

/// `DELETE /users/{id}/manager/$ref`; `204`, and 404 (no manager) is success.
pub fn remove_manager(user_id: &str) -> GraphRequest {
    GraphRequest::delete(format!("{}/manager/$ref", user_path(user_id)))
        .also_ok(AlsoOk::NotFound)
        .confirm_not_found()
}

/// `POST /groups/{group}/members/$ref` with `{"@odata.id": "{graph}/v1.0/directoryObjects/{user}"}`;
/// `204`, and 400 "One or more added object references already exist" is success. Lag tolerant
/// (400 "... do not exist" for a just-created user is retried).
pub fn add_member(group_id: &str, user_id: &str) -> GraphRequest {
    GraphRequest::with_json(
        Method::POST,
        format!("/groups/{}/members/$ref", encode_path_segment(group_id)),
        json!({ "@odata.id": format!("/directoryObjects/{}", encode_path_segment(user_id)) }),
    )
    .also_ok(AlsoOk::AlreadyExists)
    .lag_tolerant()
}

/// Graph's limit of members added by one `PATCH /groups/{id}`
/// (learn.microsoft.com/graph/api/group-post-members).
pub const MAX_MEMBERS_PER_PATCH: usize = 20;

/// `PATCH /groups/{group}` with `members@odata.bind` = the users (at most
/// [`MAX_MEMBERS_PER_PATCH`]); `204`. Graph refuses the request (400 "... already exist") when one
/// of them is a member already, so a lone user has [`AlsoOk::AlreadyExists`]. Lag tolerant.
pub fn add_members<S: AsRef<str>>(group_id: &str, user_ids: &[S]) -> GraphRequest {
    let references: Vec<Value> = user_ids
        .iter()
        .map(|user| {
            json!(format!(
                "/directoryObjects/{}",
                encode_path_segment(user.as_ref())
            ))
        })
        .collect();
    let request = GraphRequest::with_json(
        Method::PATCH,
        format!("/groups/{}", encode_path_segment(group_id)),
        json!({ "members@odata.bind": references }),
    )
    .lag_tolerant();
    match user_ids.len() {
        1 => request.also_ok(AlsoOk::AlreadyExists),
        _ => request,
    }
}

/// `DELETE /groups/{group}/members/{user}/$ref`; `204`, and 404 (not a member) is success.
pub fn remove_member(group_id: &str, user_id: &str) -> GraphRequest {
    GraphRequest::delete(format!(
        "/groups/{}/members/{}/$ref",
        encode_path_segment(group_id),
        encode_path_segment(user_id)
    ))
    .also_ok(AlsoOk::NotFound)
    .confirm_not_found()
}

/// `POST /users/{id}/assignLicense` with `addLicenses: [{skuId, disabledPlans: []}]` and
/// `removeLicenses: [skuId]`; `200` with the user. `usageLocation` must be set before. Lag tolerant.
pub fn assign_licenses<S: AsRef<str>>(user_id: &str, add: &[S], remove: &[S]) -> GraphRequest {
    let add: Vec<Value> = add
        .iter()
        .map(|sku| json!({ "skuId": sku.as_ref(), "disabledPlans": [] }))
        .collect();
    let remove: Vec<&str> = remove.iter().map(AsRef::as_ref).collect();
    GraphRequest::with_json(
        Method::POST,
        format!("{}/assignLicense", user_path(user_id)),
        json!({ "addLicenses": add, "removeLicenses": remove }),
    )
    .lag_tolerant()
}

/// `POST /users/{id}/assignLicense` removing `skus` only; a license the user no longer has
/// (400 "User does not have a corresponding license.") counts as removed. Lag tolerant.
pub fn remove_licenses<S: AsRef<str>>(user_id: &str, skus: &[S]) -> GraphRequest {
    assign_licenses::<S>(user_id, &[], skus).also_ok(AlsoOk::LicenseAlreadyRemoved)
}

/// `POST /users/{id}/revokeSignInSessions` with the body `{}`; `200` `{"value": true}` (any 2xx
/// is taken as success: a known issue makes it answer with an unexpected 2xx code). Revocation can
/// take minutes to bite. The action takes no parameters, but inside a `$batch` a write step
/// without a body and `Content-Type` makes Graph refuse the whole batch with an outer 400 (the
/// leaver's disable with it): microsoftgraph/msgraph-sdk-dotnet#2628.
pub fn revoke_sessions(user_id: &str) -> GraphRequest {
    GraphRequest::with_json(
        Method::POST,
        format!("{}/revokeSignInSessions", user_path(user_id)),
        json!({}),
    )
    .lag_tolerant()
}

/// `PATCH /users/{id}` `{"accountEnabled": enabled}`; `204`. Lag tolerant.
pub fn set_enabled(user_id: &str, enabled: bool) -> GraphRequest {
    GraphRequest::with_json(
        Method::PATCH,
        user_path(user_id),
        json!({ "accountEnabled": enabled }),
    )
    .lag_tolerant()
}

/// `PATCH /users/{id}` `{"employeeLeaveDateTime": "<RFC 3339, UTC>"}`; `204`. Needs
/// `User-LifeCycleInfo.ReadWrite.All`. Lag tolerant. (Clear it with [`update_user`] and `null`.)
pub fn set_leave_date(user_id: &str, leave: jiff::Timestamp) -> GraphRequest {
    GraphRequest::with_json(
        Method::PATCH,
        user_path(user_id),
        json!({ "employeeLeaveDateTime": leave.to_string() }),
    )
    .lag_tolerant()
}

/// `DELETE /users/{id}` (soft delete, restorable for 30 days); `204`, and 404 is success.
pub fn delete_user(user_id: &str) -> GraphRequest {
    GraphRequest::delete(user_path(user_id))
        .also_ok(AlsoOk::NotFound)
        .confirm_not_found()
}

/// Checks a list of requests for a batch: ids non-empty and unique, dependencies known.
pub(crate) fn check_batch_ids(requests: &[GraphRequest]) -> Result<(), GraphError> {
    let mut seen = BTreeSet::new();
    for r in requests {
        if r.id.is_empty() {
            return Err(GraphError::InvalidRequest(
                "a batched request has an empty id".into(),
            ));
        }
        if !seen.insert(r.id.as_str()) {
            return Err(GraphError::InvalidRequest(format!(
                "duplicate batch request id {:?}",
                r.id
            )));
        }
    }
    for r in requests {
        if let Some(d) = r.depends_on.iter().find(|d| !seen.contains(d.as_str())) {
            return Err(GraphError::InvalidRequest(format!(
                "request {:?} depends on unknown id {d:?}",
                r.id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(req: &GraphRequest, status: u16, body: Option<Value>) -> GraphResponse {
        GraphResponse::new(req.id.clone(), status, body, BTreeMap::new(), req.rules())
    }

    fn error_body(message: &str) -> Option<Value> {
        Some(json!({"error": {"code": "Request_BadRequest", "message": message}}))
    }

    #[test]
    fn also_ok_rules_apply_to_their_request_only() {
        let add = add_member("g", "u");
        let exists = error_body(
            "One or more added object references already exist for the following modified properties: 'members'.",
        );
        assert!(response(&add, 400, exists.clone()).is_success());
        assert!(response(&add, 204, None).is_success());
        assert!(!response(&add, 400, error_body("Invalid value")).is_success());
        let patch = update_user("u", &BTreeMap::new());
        assert!(!response(&patch, 400, exists).is_success());

        let del = delete_user("u");
        assert!(response(&del, 404, None).is_success());
        assert!(!response(&patch, 404, None).is_success());
    }

    #[test]
    fn errors_are_typed() {
        let add = add_member("g", "u");
        let lag = response(
            &add,
            400,
            error_body(
                "The source resource object or one of the objects being referenced do not exist",
            ),
        );
        assert!(lag.is_reference_error());
        assert!(matches!(
            lag.error(),
            Some(GraphError::ReplicationLag { status: 400, .. })
        ));
        let del = remove_member("g", "u");
        let forbidden = response(&del, 403, error_body("Insufficient privileges"));
        assert!(matches!(
            forbidden.error(),
            Some(GraphError::Graph { status: 403, ref code, .. }) if code == "Request_BadRequest"
        ));
        let mut throttled = response(&del, 429, None);
        throttled.headers.insert("retry-after".into(), "7".into());
        assert_eq!(
            throttled.error(),
            Some(GraphError::Throttled {
                retry_after: Some(Duration::from_secs(7))
            })
        );
    }

    #[test]
    fn builders_match_graph_endpoints() {
        let r = set_manager("u1", "m1");
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.url, "/users/u1/manager/$ref");
        assert_eq!(r.body, Some(json!({"@odata.id": "/users/m1"})));
        assert!(r.lag_tolerant);
        assert_eq!(
            absolute_refs(
                r.body.as_ref().expect("body"),
                "https://graph.microsoft.com/v1.0"
            ),
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/users/m1"})
        );
        let r = add_member("g1", "u1");
        assert_eq!(r.url, "/groups/g1/members/$ref");
        assert_eq!(r.body, Some(json!({"@odata.id": "/directoryObjects/u1"})));
        assert_eq!(remove_member("g1", "u1").url, "/groups/g1/members/u1/$ref");
        assert_eq!(remove_manager("u1").method, Method::DELETE);
        let r = assign_licenses("u1", &["sku-a"], &["sku-b"]);
        assert_eq!(r.url, "/users/u1/assignLicense");
        assert_eq!(
            r.body,
            Some(
                json!({"addLicenses": [{"skuId": "sku-a", "disabledPlans": []}], "removeLicenses": ["sku-b"]})
            )
        );
        assert_eq!(revoke_sessions("u1").url, "/users/u1/revokeSignInSessions");
        assert_eq!(
            set_enabled("u1", false).body,
            Some(json!({"accountEnabled": false}))
        );
        let ts: jiff::Timestamp = "2026-03-31T17:00:00Z".parse().expect("ts");
        assert_eq!(
            set_leave_date("u1", ts).body,
            Some(json!({"employeeLeaveDateTime": "2026-03-31T17:00:00Z"}))
        );
        let mut props = BTreeMap::new();
        props.insert("department".to_owned(), json!("Sales"));
        props.insert("jobTitle".to_owned(), Value::Null);
        assert_eq!(
            update_user("u1", &props).body,
            Some(json!({"department": "Sales", "jobTitle": null}))
        );
        // A UPN as id is encoded, not interpreted.
        assert_eq!(delete_user("a#b/c@x.com").url, "/users/a%23b%2Fc@x.com");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query(
                "/users",
                &[("$filter", "employeeId eq 'a''b'"), ("$select", "id,mail")]
            ),
            "/users?$filter=employeeId%20eq%20%27a%27%27b%27&$select=id,mail"
        );
        assert_eq!(encode_query_value("a&b=c+d#e"), "a%26b%3Dc%2Bd%23e");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&future)
            .expect("format");
        let parsed = parse_retry_after(&text).expect("date");
        assert!(parsed > Duration::from_secs(25) && parsed <= Duration::from_secs(30));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn batch_ids_are_checked() {
        let a = GraphRequest::get("/a").id("1");
        let b = GraphRequest::get("/b").id("1");
        assert!(check_batch_ids(&[a.clone(), b]).is_err());
        let c = GraphRequest::get("/c").id("2").depends_on("9");
        assert!(check_batch_ids(&[a.clone(), c]).is_err());
        let d = GraphRequest::get("/d").id("2").depends_on("1");
        assert!(check_batch_ids(&[a, d]).is_ok());
    }
}
