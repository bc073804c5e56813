//! The request pipeline every Graph request goes through (auth, write quota, faults, routing,
//! persistence, counters, request log) and the route table; the handlers live one file per
//! resource beside it.

mod deleted;
mod domains;
mod groups;
mod licenses;
mod manager;
mod users;

use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::directory::{Directory, User};
use super::filter::{self, Filter, Resource};
use super::schema::user_property;
use super::token::{self, percent_decode};
use super::{LoggedRequest, Shared, batch, lock};

const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Graph's page size when `$top` is not given.
const DEFAULT_PAGE: usize = 100;

/// A Graph request, from the wire or from a `$batch`.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: Method,
    /// The path under `/v1.0/`, still percent-encoded (`users/42/manager/$ref`).
    pub(crate) path: String,
    /// The raw query string.
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// `http://host/v1.0/`, for `@odata.context` and `@odata.nextLink`.
    pub(crate) base: String,
    pub(crate) in_batch: bool,
}

impl Req {
    pub(crate) fn is_batch(&self) -> bool {
        percent_decode(self.path.trim_matches('/'), false) == "$batch"
    }

    /// POST, PATCH, PUT and DELETE count against Graph's write quota.
    pub(crate) fn is_write(&self) -> bool {
        is_write(&self.method)
    }
}

pub(crate) fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    )
}

/// A response body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    None,
    Json(Value),
    /// `text/plain` (`GET /users/$count`).
    Text(String),
}

/// A Graph response: status, extra headers, body.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
}

impl Resp {
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Json(body),
        }
    }

    pub(crate) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: Body::None,
        }
    }

    pub(crate) fn text(text: String) -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Body::Text(text),
        }
    }

    /// `{"error":{"code","message"}}`; `innerError` is added when the response is finished.
    pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Self {
        Self::json(status, json!({"error": {"code": code, "message": message}}))
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `innerError` to an error body and the request-id headers.
    fn finish(&mut self, request_id: &str, client_request_id: &str, at: jiff::Timestamp) {
        if let Body::Json(body) = &mut self.body
            && let Some(error) = body.get_mut("error").and_then(Value::as_object_mut)
        {
            error.insert(
                "innerError".to_owned(),
                json!({
                    "date": at.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }),
            );
        }
        self.headers
            .push(("request-id".to_owned(), request_id.to_owned()));
        self.headers
            .push(("client-request-id".to_owned(), client_request_id.to_owned()));
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let (body, content_type) = match &self.body {
            Body::Json(v) => (
                serde_json::to_vec(v).unwrap_or_default(),
                Some(JSON_CONTENT_TYPE),
            ),
            Body::Text(t) => (t.clone().into_bytes(), Some("text/plain;charset=utf-8")),
            Body::None => (Vec::new(), None),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(name, value);
            }
        }
        response
    }
}

pub(crate) type Result<T = Resp> = std::result::Result<T, Resp>;

pub(crate) fn bad_request(code: &str, message: &str) -> Resp {
    Resp::error(StatusCode::BAD_REQUEST, code, message)
}

pub(crate) fn not_found(key: &str) -> Resp {
    Resp::error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

pub(crate) fn method_not_allowed() -> Resp {
    Resp::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request uri.",
    )
}

pub(crate) fn invalid_value(property: &str) -> Resp {
    bad_request(
        "Request_BadRequest",
        &format!("Invalid value specified for property '{property}' of resource 'User'."),
    )
}

pub(crate) fn required(property: &str) -> Resp {
    bad_request(
        "Request_BadRequest",
        &format!("Property {property} value is required but is empty or missing."),
    )
}

pub(crate) fn conflict(property: &str) -> Resp {
    Resp::json(
        StatusCode::BAD_REQUEST,
        json!({"error": {
            "code": "Request_BadRequest",
            "message": format!("Another object with the same value for property {property} already exists."),
            "details": [{"target": property, "code": "ObjectConflict"}],
        }}),
    )
}

/// How the pipeline answered, for the counters and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Handled,
    Faulted,
    Throttled,
}

impl Shared {
    /// Answers one Graph request: auth, write quota, faults, routing; finishes, counts and logs
    /// the response.
    pub(crate) fn handle(&self, req: Req) -> Resp {
        let at = jiff::Timestamp::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = req
            .headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| request_id.clone(), str::to_owned);
        let (mut resp, outcome) = self.process(&req);
        resp.finish(&request_id, &client_request_id, at);
        self.count(&req.method, req.is_batch() && !req.in_batch);
        match outcome {
            Outcome::Faulted => self.counters.count_faulted(),
            Outcome::Throttled => self.counters.count_throttled(),
            Outcome::Handled => {}
        }
        self.record(LoggedRequest {
            method: req.method.to_string(),
            path: format!("/v1.0/{}", req.path),
            query: req.query.clone(),
            status: resp.status.as_u16(),
            faulted: outcome != Outcome::Handled,
            in_batch: req.in_batch,
            at,
        });
        resp
    }

    fn process(&self, req: &Req) -> (Resp, Outcome) {
        let (caller, roles) = match token::validate(self, &req.headers) {
            Ok(found) => found,
            Err(message) => {
                return (
                    Resp::error(
                        StatusCode::UNAUTHORIZED,
                        "InvalidAuthenticationToken",
                        message,
                    ),
                    Outcome::Handled,
                );
            }
        };
        let batch = req.is_batch();
        if !batch && let Err(resp) = crate::permissions::check(req, &roles) {
            return (resp, Outcome::Handled);
        }
        if req.is_write() && !batch {
            let limited = lock(&self.limiter).admit(&caller, Instant::now());
            if let Err(resp) = limited {
                return (resp, Outcome::Throttled);
            }
        }
        let fault = {
            let mut faults = lock(&self.faults);
            faults
                .roll()
                .map(|fault| faults.response(fault, &req.method))
        };
        if let Some(resp) = fault {
            return (resp, Outcome::Faulted);
        }
        if batch {
            if req.in_batch {
                return (
                    bad_request(
                        "BadRequest",
                        "A $batch request cannot contain a $batch request.",
                    ),
                    Outcome::Handled,
                );
            }
            return match req.method.as_str() {
                "POST" => (batch::run(self, req), Outcome::Handled),
                _ => (method_not_allowed(), Outcome::Handled),
            };
        }
        (dispatch(self, req), Outcome::Handled)
    }
}

/// Query options, decoded.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub(crate) filter: Option<String>,
    pub(crate) select: Option<Vec<String>>,
    pub(crate) top: Option<usize>,
    pub(crate) count: bool,
    pub(crate) skiptoken: Option<String>,
    /// `ConsistencyLevel: eventual` was sent.
    pub(crate) eventual: bool,
    /// The raw `name=value` pairs other than `$skiptoken`, for `@odata.nextLink`.
    raw_pairs: Vec<String>,
}

impl Query {
    fn parse(raw: Option<&str>, headers: &HeaderMap) -> Result<Self> {
        let mut q = Query {
            eventual: headers
                .get("consistencylevel")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
            ..Query::default()
        };
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(raw_name, true);
            let value = percent_decode(raw_value, true);
            if name != "$skiptoken" {
                q.raw_pairs.push(pair.to_owned());
            }
            match name.as_str() {
                "$filter" => q.filter = Some(value),
                "$select" => {
                    q.select = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                "$top" => match value.parse::<usize>() {
                    Ok(n) if (1..=999).contains(&n) => q.top = Some(n),
                    _ => {
                        return Err(bad_request(
                            "Request_BadRequest",
                            &format!(
                                "Invalid page size specified: '{value}'. Must be between 1 and 999 inclusive."
                            ),
                        ));
                    }
                },
                "$count" => match value.as_str() {
                    "true" => q.count = true,
                    "false" => q.count = false,
                    _ => {
                        return Err(bad_request(
                            "BadRequest",
                            &format!("Invalid value '{value}' for $count; expected true or false."),
                        ));
                    }
                },
                "$skiptoken" => q.skiptoken = Some(value),
                other if other.starts_with('$') => {
                    return Err(bad_request(
                        "BadRequest",
                        &format!("Query option '{other}' is not supported by the hrsync sandbox."),
                    ));
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The query options given, by name.
    fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.filter.is_some() {
            out.push("$filter");
        }
        if self.select.is_some() {
            out.push("$select");
        }
        if self.top.is_some() {
            out.push("$top");
        }
        if self.count {
            out.push("$count");
        }
        if self.skiptoken.is_some() {
            out.push("$skiptoken");
        }
        out
    }

    /// Refuses the options this route does not implement, rather than ignoring them.
    pub(crate) fn only(&self, supported: &[&str]) -> Result<()> {
        match self.given().into_iter().find(|o| !supported.contains(o)) {
            None => Ok(()),
            Some(option) => Err(bad_request(
                "BadRequest",
                &format!(
                    "Query option '{option}' is not supported on this request by the hrsync sandbox."
                ),
            )),
        }
    }

    /// `ConsistencyLevel: eventual` and `$count=true`: Graph's advanced query parameters.
    pub(crate) fn advanced(&self) -> bool {
        self.count && self.eventual
    }

    /// `@odata.count` is returned only in an advanced query; without the header, `$count=true`
    /// is silently ignored (learn.microsoft.com/graph/aad-advanced-queries).
    pub(crate) fn wants_count(&self) -> bool {
        self.advanced()
    }

    /// The position a `$skiptoken` (ours: `sandbox-N`) continues after.
    pub(crate) fn skip_after(&self) -> Result<Option<u64>> {
        match &self.skiptoken {
            None => Ok(None),
            Some(token) => token
                .strip_prefix("sandbox-")
                .and_then(|n| n.parse().ok())
                .map(Some)
                .ok_or_else(|| bad_request("Request_BadRequest", "Invalid $skiptoken.")),
        }
    }
}

/// What a handler works with: the request, its decoded query and the directory (locked).
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) req: &'a Req,
    pub(crate) query: Query,
    pub(crate) dir: &'a mut Directory,
    pub(crate) now: Instant,
}

fn dispatch(shared: &Shared, req: &Req) -> Resp {
    let segments: Vec<String> = req
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let query = match Query::parse(req.query.as_deref(), &req.headers) {
        Ok(q) => q,
        Err(resp) => return resp,
    };
    let mut state = lock(&shared.state);
    let state = &mut *state;
    let mut ctx = Ctx {
        shared,
        req,
        query,
        dir: &mut state.dir,
        now: Instant::now(),
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let resp = route(&mut ctx, &segments).unwrap_or_else(|e| e);
    let changes = state.dir.take_journal();
    if let Some(store) = &mut state.store
        && let Err(e) = store.write(&state.dir, &changes)
    {
        tracing::error!(error = %e, "sandbox: cannot persist the directory");
        return Resp::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            &format!("The sandbox could not write its data file: {e}"),
        );
    }
    resp
}

/// The query options each route implements; everything else is refused.
fn supported_options(method: &str, segments: &[&str]) -> &'static [&'static str] {
    const COLLECTION: &[&str] = &["$filter", "$select", "$top", "$count", "$skiptoken"];
    const SELECT: &[&str] = &["$select"];
    const PAGE: &[&str] = &["$select", "$top", "$skiptoken"];
    if method != "GET" {
        return &[];
    }
    match segments {
        ["users"] | ["groups"] | ["groups", _, "members"] => COLLECTION,
        ["directory", "deletedItems", "microsoft.graph.user"] => COLLECTION,
        ["users", "$count"] => &["$filter"],
        ["users", _] | ["users", _, "manager"] | ["groups", _] => SELECT,
        ["directory", "deletedItems", _] => SELECT,
        ["users", _, "memberOf"] => PAGE,
        // learn.microsoft.com/graph/api/subscribedsku-list: "supports only the $select OData
        // query parameter".
        ["subscribedSkus"] => SELECT,
        _ => &[],
    }
}

fn route(ctx: &mut Ctx<'_>, segments: &[&str]) -> Result {
    let method = ctx.req.method.as_str().to_owned();
    let m = method.as_str();
    ctx.query.only(supported_options(m, segments))?;
    let allow = |ok: bool, handler: &mut dyn FnMut() -> Result| -> Result {
        if ok {
            handler()
        } else {
            Err(method_not_allowed())
        }
    };
    match segments {
        ["users"] => match m {
            "GET" => users::list(ctx),
            "POST" => users::create(ctx),
            _ => Err(method_not_allowed()),
        },
        ["users", "$count"] => allow(m == "GET", &mut || users::count(ctx)),
        ["users", key] => match m {
            "GET" => users::get(ctx, key),
            "PATCH" => users::update(ctx, key),
            "DELETE" => users::delete(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "manager"] => allow(m == "GET", &mut || manager::get(ctx, key)),
        ["users", key, "manager", "$ref"] => match m {
            "GET" => manager::get_ref(ctx, key),
            "PUT" => manager::set(ctx, key),
            "DELETE" => manager::remove(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "memberOf"] => allow(m == "GET", &mut || groups::member_of(ctx, key)),
        ["users", key, "assignLicense"] => allow(m == "POST", &mut || licenses::assign(ctx, key)),
        ["users", key, "licenseDetails"] => allow(m == "GET", &mut || licenses::details(ctx, key)),
        ["users", key, "revokeSignInSessions"] => {
            allow(m == "POST", &mut || users::revoke_sessions(ctx, key))
        }
        ["directory", "deletedItems", "microsoft.graph.user"] => {
            allow(m == "GET", &mut || deleted::list(ctx))
        }
        ["directory", "deletedItems", id] => match m {
            "GET" => deleted::get(ctx, id),
            "DELETE" => deleted::purge(ctx, id),
            _ => Err(method_not_allowed()),
        },
        ["directory", "deletedItems", id, "restore"] => {
            allow(m == "POST", &mut || deleted::restore(ctx, id))
        }
        ["groups"] => allow(m == "GET", &mut || groups::list(ctx)),
        ["groups", id] => match m {
            "GET" => groups::get(ctx, id),
            "PATCH" => groups::patch(ctx, id),
            _ => Err(method_not_allowed()),
        },
        ["groups", id, "members"] => allow(m == "GET", &mut || groups::members(ctx, id)),
        ["groups", id, "members", "$ref"] => {
            allow(m == "POST", &mut || groups::add_member(ctx, id))
        }
        ["groups", id, "members", member, "$ref"] => allow(m == "DELETE", &mut || {
            groups::remove_member(ctx, id, member)
        }),
        ["subscribedSkus"] => allow(m == "GET", &mut || licenses::subscribed_skus(ctx)),
        ["domains"] => allow(m == "GET", &mut || domains::list(ctx)),
        ["domains", name] => allow(m == "GET", &mut || domains::get(ctx, name)),
        _ => {
            let known = ["users", "directory", "groups", "subscribedSkus", "domains"];
            let unknown = match segments.first() {
                Some(first) if !known.contains(first) => (*first).to_owned(),
                _ => segments.last().map(|s| (*s).to_owned()).unwrap_or_default(),
            };
            Err(bad_request(
                "BadRequest",
                &format!("Resource not found for the segment '{unknown}'."),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the handlers

impl Ctx<'_> {
    pub(crate) fn context(&self, what: &str) -> String {
        match &self.query.select {
            Some(select) => format!("{}$metadata#{what}({})", self.req.base, select.join(",")),
            None => format!("{}$metadata#{what}", self.req.base),
        }
    }

    /// A user reads may see: live and replicated.
    pub(crate) fn readable(&self, key: &str) -> Result<u64> {
        self.dir
            .live_user(key)
            .filter(|&s| self.dir.user(s).is_some_and(|u| u.is_visible(self.now)))
            .ok_or_else(|| not_found(key))
    }

    /// A user a write is addressed to: live; while it is replicating, half of the writes land
    /// on a replica that does not know it yet (404).
    pub(crate) fn writable(&mut self, key: &str) -> Result<u64> {
        let seq = self.dir.live_user(key).ok_or_else(|| not_found(key))?;
        if self.user(seq).is_lagging(self.now) && lock(&self.shared.faults).coin() {
            return Err(not_found(key));
        }
        Ok(seq)
    }

    /// A user known to exist (looked up in this request).
    pub(crate) fn user(&self, seq: u64) -> &User {
        match self.dir.user(seq) {
            Some(u) => u,
            None => unreachable_user(),
        }
    }

    pub(crate) fn body_object(&self) -> Result<Map<String, Value>> {
        if self.req.body.iter().all(u8::is_ascii_whitespace) {
            return Err(bad_request(
                "BadRequest",
                "Empty Payload. JSON content expected.",
            ));
        }
        match serde_json::from_slice::<Value>(&self.req.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(bad_request(
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            )),
        }
    }

    pub(crate) fn check_user_select(&self) -> Result<()> {
        for property in self.query.select.iter().flatten() {
            if user_property(property).is_none() {
                return Err(bad_request(
                    "BadRequest",
                    &format!(
                        "Could not find a property named '{property}' on type 'microsoft.graph.user'."
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A user's `$select`ed properties, or its default property set.
    pub(crate) fn project(&self, user: &User, defaults: &[&str]) -> Map<String, Value> {
        project_user(user, self.query.select.as_deref(), defaults)
    }

    /// The `$filter`, parsed, refused with Graph's error when it needs the advanced query
    /// parameters and they are missing.
    pub(crate) fn parse_filter(&self, resource: Resource) -> Result<Option<Filter>> {
        let Some(text) = &self.query.filter else {
            return Ok(None);
        };
        let filter = filter::parse(text, resource).map_err(|e| bad_request(e.code, &e.message))?;
        if let Some(why) = &filter.advanced
            && !self.query.advanced()
        {
            return Err(bad_request(
                "Request_UnsupportedQuery",
                &format!(
                    "{why} is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
                ),
            ));
        }
        Ok(Some(filter))
    }

    /// A collection page: `value`, `@odata.count` when asked for in an advanced query, and an
    /// `@odata.nextLink` continuing after `next` when there is more.
    pub(crate) fn page(
        &self,
        items: Vec<Map<String, Value>>,
        context: String,
        count: Option<usize>,
        next: Option<String>,
    ) -> Resp {
        let mut body = Map::new();
        body.insert("@odata.context".to_owned(), Value::String(context));
        if let Some(count) = count.filter(|_| self.query.wants_count()) {
            body.insert("@odata.count".to_owned(), json!(count));
        }
        if let Some(next) = next {
            let mut pairs = self.query.raw_pairs.clone();
            pairs.push(format!("$skiptoken={next}"));
            body.insert(
                "@odata.nextLink".to_owned(),
                Value::String(format!(
                    "{}{}?{}",
                    self.req.base,
                    self.req.path,
                    pairs.join("&")
                )),
            );
        }
        body.insert(
            "value".to_owned(),
            Value::Array(items.into_iter().map(Value::Object).collect()),
        );
        Resp::json(StatusCode::OK, Value::Object(body))
    }

    pub(crate) fn page_size(&self) -> usize {
        self.query.top.unwrap_or(DEFAULT_PAGE)
    }
}

#[allow(clippy::panic)]
fn unreachable_user() -> ! {
    panic!("a user looked up in this request vanished")
}

/// A user's `$select`ed properties (and `id`), or `defaults`; licences are computed.
pub(crate) fn project_user(
    user: &User,
    select: Option<&[String]>,
    defaults: &[&str],
) -> Map<String, Value> {
    let value = |property: &str| -> Value {
        match property {
            "assignedLicenses" => user.assigned_licenses(),
            "licenseAssignmentStates" => user.license_assignment_states(),
            "businessPhones" => user.props.get(property).cloned().unwrap_or(json!([])),
            _ => user.props.get(property).cloned().unwrap_or(Value::Null),
        }
    };
    let mut out = Map::new();
    match select {
        Some(select) => {
            out.insert("id".to_owned(), value("id"));
            for property in select {
                out.insert(property.clone(), value(property));
            }
        }
        None => {
            for property in defaults {
                out.insert((*property).to_owned(), value(property));
            }
        }
    }
    out
}

/// The `@odata.id` of a reference payload, reduced to the id it names (its last path segment).
pub(crate) fn reference_target(body: &Map<String, Value>) -> Result<String> {
    let url = body
        .get("@odata.id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad_request(
                "BadRequest",
                "The reference payload must contain an '@odata.id' string.",
            )
        })?;
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let last = path.rsplit('/').next().unwrap_or_default();
    let id = percent_decode(last, false);
    if id.is_empty() {
        return Err(bad_request(
            "BadRequest",
            &format!("Invalid '@odata.id' reference '{url}'."),
        ));
    }
    Ok(id)
}
