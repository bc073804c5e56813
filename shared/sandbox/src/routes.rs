//! The request pipeline (auth, faults, routing, persistence, request log) and the Graph
//! handlers. Handlers are synchronous: each runs under the directory lock, so a request sees
//! and leaves a consistent directory, and a `$batch` dispatches its inner requests through the
//! same [`Shared::handle`].

use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::filter::{self, Filter};
use super::state::{
    DEFAULT_USER_PROPERTIES, Directory, Kind, UserRecord, deleted_upn, graph_timestamp, is_guid,
    user_property, valid_upn_alias,
};
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

/// A Graph response: status, extra headers, JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Value>,
}

impl Resp {
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub(crate) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
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
        if let Some(error) = self
            .body
            .as_mut()
            .and_then(|b| b.get_mut("error"))
            .and_then(Value::as_object_mut)
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
        let body = match &self.body {
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if self.body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(JSON_CONTENT_TYPE),
            );
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

type Result<T = Resp> = std::result::Result<T, Resp>;

fn bad_request(code: &str, message: &str) -> Resp {
    Resp::error(StatusCode::BAD_REQUEST, code, message)
}

fn not_found(key: &str) -> Resp {
    Resp::error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn method_not_allowed() -> Resp {
    Resp::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request uri.",
    )
}

fn invalid_value(property: &str) -> Resp {
    bad_request(
        "Request_BadRequest",
        &format!("Invalid value specified for property '{property}' of resource 'User'."),
    )
}

fn required(property: &str) -> Resp {
    bad_request(
        "Request_BadRequest",
        &format!("Property {property} value is required but is empty or missing."),
    )
}

fn conflict(property: &str) -> Resp {
    Resp::json(
        StatusCode::BAD_REQUEST,
        json!({"error": {
            "code": "Request_BadRequest",
            "message": format!("Another object with the same value for property {property} already exists."),
            "details": [{"target": property, "code": "ObjectConflict"}],
        }}),
    )
}

impl Shared {
    /// Answers one Graph request: auth, faults, routing; finishes and logs the response.
    pub(crate) fn handle(&self, req: Req) -> Resp {
        let at = jiff::Timestamp::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = req
            .headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| request_id.clone(), str::to_owned);
        let (mut resp, faulted) = self.process(&req);
        resp.finish(&request_id, &client_request_id, at);
        self.record(LoggedRequest {
            method: req.method.to_string(),
            path: format!("/v1.0/{}", req.path),
            query: req.query.clone(),
            status: resp.status.as_u16(),
            faulted,
            in_batch: req.in_batch,
            at,
        });
        resp
    }

    pub(crate) fn record(&self, entry: LoggedRequest) {
        lock(&self.log).push(entry);
    }

    fn process(&self, req: &Req) -> (Resp, bool) {
        if let Err(message) = token::validate(self, &req.headers) {
            return (
                Resp::error(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthenticationToken",
                    message,
                ),
                false,
            );
        }
        let fault = {
            let mut faults = lock(&self.faults);
            faults
                .roll()
                .map(|fault| faults.response(fault, &req.method))
        };
        if let Some(resp) = fault {
            return (resp, true);
        }
        if percent_decode(req.path.trim_matches('/'), false) == "$batch" {
            if req.in_batch {
                return (
                    bad_request(
                        "BadRequest",
                        "A $batch request cannot contain a $batch request.",
                    ),
                    false,
                );
            }
            return match req.method.as_str() {
                "POST" => (batch::run(self, req), false),
                _ => (method_not_allowed(), false),
            };
        }
        (dispatch(self, req), false)
    }
}

/// Query options, decoded.
#[derive(Debug, Default)]
struct Query {
    filter: Option<String>,
    select: Option<Vec<String>>,
    top: Option<usize>,
    count: bool,
    skip: usize,
    eventual: bool,
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
                            "BadRequest",
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
                "$skiptoken" => {
                    q.skip = value
                        .strip_prefix("sandbox-")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| bad_request("BadRequest", "Invalid $skiptoken."))?;
                }
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

    fn advanced(&self) -> bool {
        self.count && self.eventual
    }
}

struct Ctx<'a> {
    shared: &'a Shared,
    req: &'a Req,
    query: Query,
    dir: &'a mut Directory,
    now: Instant,
    changed: bool,
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
    let mut dir = lock(&shared.state);
    let mut ctx = Ctx {
        shared,
        req,
        query,
        dir: &mut dir,
        now: Instant::now(),
        changed: false,
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let resp = route(&mut ctx, &segments).unwrap_or_else(|e| e);
    let changed = ctx.changed;
    if changed
        && let Some(path) = &shared.settings.data
        && let Err(e) = dir.save(path)
    {
        tracing::error!(error = %e, "sandbox: cannot persist the directory");
    }
    resp
}

fn route(ctx: &mut Ctx<'_>, segments: &[&str]) -> Result {
    let method = ctx.req.method.as_str().to_owned();
    let m = method.as_str();
    match segments {
        ["users"] => match m {
            "GET" => list_users(ctx),
            "POST" => create_user(ctx),
            _ => Err(method_not_allowed()),
        },
        ["users", key] => match m {
            "GET" => get_user(ctx, key),
            "PATCH" => update_user(ctx, key),
            "DELETE" => delete_user(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "manager"] => match m {
            "GET" => get_manager(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "manager", "$ref"] => match m {
            "GET" => get_manager_ref(ctx, key),
            "PUT" => set_manager(ctx, key),
            "DELETE" => remove_manager(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "memberOf"] => match m {
            "GET" => member_of(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "assignLicense"] => match m {
            "POST" => assign_license(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "licenseDetails"] => match m {
            "GET" => license_details(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["users", key, "revokeSignInSessions"] => match m {
            "POST" => revoke_sessions(ctx, key),
            _ => Err(method_not_allowed()),
        },
        ["directory", "deletedItems", "microsoft.graph.user"] => match m {
            "GET" => list_deleted(ctx),
            _ => Err(method_not_allowed()),
        },
        ["directory", "deletedItems", id] => match m {
            "GET" => get_deleted(ctx, id),
            "DELETE" => purge_deleted(ctx, id),
            _ => Err(method_not_allowed()),
        },
        ["directory", "deletedItems", id, "restore"] => match m {
            "POST" => restore_deleted(ctx, id),
            _ => Err(method_not_allowed()),
        },
        ["groups", id] => match m {
            "GET" => get_group(ctx, id),
            "PATCH" => patch_group(ctx, id),
            _ => Err(method_not_allowed()),
        },
        ["groups", id, "members"] => match m {
            "GET" => list_members(ctx, id),
            _ => Err(method_not_allowed()),
        },
        ["groups", id, "members", "$ref"] => match m {
            "POST" => add_member(ctx, id),
            _ => Err(method_not_allowed()),
        },
        ["groups", id, "members", member, "$ref"] => match m {
            "DELETE" => remove_member(ctx, id, member),
            _ => Err(method_not_allowed()),
        },
        ["subscribedSkus"] => match m {
            "GET" => subscribed_skus(ctx),
            _ => Err(method_not_allowed()),
        },
        _ => {
            let known = ["users", "directory", "groups", "subscribedSkus"];
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
// Helpers

impl Ctx<'_> {
    fn context(&self, what: &str) -> String {
        match &self.query.select {
            Some(select) => format!("{}$metadata#{what}({})", self.req.base, select.join(",")),
            None => format!("{}$metadata#{what}", self.req.base),
        }
    }

    /// A user reads may see: live and replicated.
    fn readable(&self, key: &str) -> Result<usize> {
        self.dir
            .live_index(key)
            .filter(|&i| self.dir.users[i].is_visible(self.now))
            .ok_or_else(|| not_found(key))
    }

    /// A user a write is addressed to: live; while it is replicating, half of the writes land
    /// on a replica that does not know it yet (404).
    fn writable(&mut self, key: &str) -> Result<usize> {
        let index = self.dir.live_index(key).ok_or_else(|| not_found(key))?;
        if self.dir.users[index].is_lagging(self.now) && lock(&self.shared.faults).coin() {
            return Err(not_found(key));
        }
        Ok(index)
    }

    fn body_object(&self) -> Result<Map<String, Value>> {
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

    fn check_user_select(&self) -> Result<()> {
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

    fn project(&self, user: &Map<String, Value>, defaults: &[&str]) -> Map<String, Value> {
        let mut out = Map::new();
        match &self.query.select {
            Some(select) => {
                out.insert(
                    "id".to_owned(),
                    user.get("id").cloned().unwrap_or(Value::Null),
                );
                for property in select {
                    out.insert(
                        property.clone(),
                        user.get(property).cloned().unwrap_or(Value::Null),
                    );
                }
            }
            None => {
                for property in defaults {
                    let fallback = if *property == "businessPhones" {
                        json!([])
                    } else {
                        Value::Null
                    };
                    out.insert(
                        (*property).to_owned(),
                        user.get(*property).cloned().unwrap_or(fallback),
                    );
                }
            }
        }
        out
    }

    fn parse_filter(&self) -> Result<Option<Filter>> {
        let Some(text) = &self.query.filter else {
            return Ok(None);
        };
        let filter = filter::parse(text).map_err(|e| bad_request(e.code, &e.message))?;
        if let Some(why) = &filter.advanced
            && !self.query.advanced()
        {
            let message = if why == "the 'ne' operator" {
                "Filter operator 'NotEqualsMatch' is not supported.".to_owned()
            } else {
                format!(
                    "Unsupported Query: {why} needs advanced query parameters (the 'ConsistencyLevel: eventual' header and $count=true)."
                )
            };
            return Err(bad_request("Request_UnsupportedQuery", &message));
        }
        Ok(Some(filter))
    }

    /// A page of a user collection, with `@odata.count` and `@odata.nextLink` as Graph does.
    fn user_page(&self, users: Vec<Map<String, Value>>, context: String) -> Resp {
        let total = users.len();
        let page = self.query.top.unwrap_or(DEFAULT_PAGE);
        let start = self.query.skip.min(total);
        let end = start.saturating_add(page).min(total);
        let mut body = Map::new();
        body.insert("@odata.context".to_owned(), Value::String(context));
        if self.query.count {
            body.insert("@odata.count".to_owned(), json!(total));
        }
        if end < total {
            let mut pairs = self.query.raw_pairs.clone();
            pairs.push(format!("$skiptoken=sandbox-{end}"));
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
            Value::Array(
                users
                    .into_iter()
                    .skip(start)
                    .take(end - start)
                    .map(Value::Object)
                    .collect(),
            ),
        );
        Resp::json(StatusCode::OK, Value::Object(body))
    }

    fn check_upn_domain(&self, upn: &str) -> Result<()> {
        let domain = upn
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if self.shared.settings.verified_domains.contains(&domain) {
            return Ok(());
        }
        Err(Resp::json(
            StatusCode::BAD_REQUEST,
            json!({"error": {
                "code": "Request_BadRequest",
                "message": "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.",
                "details": [{"target": "userPrincipalName", "code": "InvalidValue"}],
            }}),
        ))
    }

    fn full_user(&self, index: usize, context: &str) -> Value {
        let mut out = self.dir.users[index].user.clone();
        out.insert(
            "@odata.context".to_owned(),
            Value::String(format!("{}$metadata#{context}", self.req.base)),
        );
        Value::Object(out)
    }
}

/// The `@odata.id` of a reference payload, reduced to the id it names (its last path segment).
fn reference_target(body: &Map<String, Value>) -> Result<String> {
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

/// Validates one property of a user write. `Ok(None)`: the property is cleared (`null`).
fn check_property(name: &str, value: &Value) -> Result<Option<Value>> {
    let kind = user_property(name).ok_or_else(|| {
        bad_request(
            "BadRequest",
            &format!(
                "Property '{name}' does not exist on type 'microsoft.graph.user'. Make sure to only use property names that are defined by the type or mark the type as open type."
            ),
        )
    })?;
    if kind == Kind::ReadOnly {
        return Err(bad_request(
            "Request_BadRequest",
            &format!("Property '{name}' is read-only and cannot be set."),
        ));
    }
    if value.is_null() {
        return Ok(None);
    }
    let ok = match kind {
        Kind::Str(max) => value
            .as_str()
            .is_some_and(|s| max.is_none_or(|m| s.chars().count() <= m)),
        Kind::Bool => value.is_boolean(),
        Kind::DateTime => value
            .as_str()
            .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok()),
        Kind::UsageLocation => value
            .as_str()
            .is_some_and(|s| s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic())),
        Kind::StrList(max) => value.as_array().is_some_and(|items| {
            items.iter().all(Value::is_string) && max.is_none_or(|m| items.len() <= m)
        }),
        Kind::Object(members) => value.as_object().is_some_and(|obj| {
            obj.iter()
                .all(|(k, v)| members.contains(&k.as_str()) && (v.is_string() || v.is_null()))
        }),
        Kind::Extension => match value {
            Value::String(_) | Value::Bool(_) | Value::Number(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        },
        Kind::PasswordProfile | Kind::ReadOnly => false,
    };
    let ok = ok
        && match name {
            "userPrincipalName" => value.as_str().is_some_and(|upn| {
                matches!(upn.split_once('@'), Some((alias, domain))
                    if valid_upn_alias(alias) && !domain.is_empty() && !domain.contains('@'))
            }),
            "mail" => value.as_str().is_some_and(|mail| {
                mail.is_ascii()
                    && !mail.chars().any(char::is_whitespace)
                    && matches!(mail.split_once('@'), Some((a, d)) if !a.is_empty() && !d.is_empty() && !d.contains('@'))
            }),
            _ => true,
        };
    if !ok {
        return Err(invalid_value(name));
    }
    Ok(Some(match kind {
        Kind::UsageLocation => {
            Value::String(value.as_str().unwrap_or_default().to_ascii_uppercase())
        }
        Kind::Object(members) => {
            // Members left out are cleared, as Graph does for employeeOrgData.
            let given = value.as_object().cloned().unwrap_or_default();
            Value::Object(
                members
                    .iter()
                    .filter(|m| name == "employeeOrgData" || given.contains_key(**m))
                    .map(|m| {
                        (
                            (*m).to_owned(),
                            given.get(*m).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect(),
            )
        }
        _ => value.clone(),
    }))
}

/// A `passwordProfile` must carry a non-empty `password` (and may carry the two booleans).
fn check_password_profile(value: &Value) -> Result<()> {
    let Some(profile) = value.as_object() else {
        return Err(invalid_value("passwordProfile"));
    };
    for (key, v) in profile {
        let ok = match key.as_str() {
            "password" => v.is_string() || v.is_null(),
            "forceChangePasswordNextSignIn" | "forceChangePasswordNextSignInWithMfa" => {
                v.is_boolean() || v.is_null()
            }
            _ => false,
        };
        if !ok {
            return Err(invalid_value("passwordProfile"));
        }
    }
    match profile.get("password").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => Ok(()),
        _ => Err(required("passwordProfile.password")),
    }
}

/// Makes `mail` the primary SMTP address: the old primary stays as an `smtp:` alias.
fn proxies_for_mail(current: &Map<String, Value>, mail: Option<&str>) -> Value {
    let mut proxies: Vec<String> = current
        .get("proxyAddresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for p in &mut proxies {
        if let Some(rest) = p.strip_prefix("SMTP:") {
            *p = format!("smtp:{rest}");
        }
    }
    if let Some(mail) = mail {
        proxies.retain(|p| !p.eq_ignore_ascii_case(&format!("smtp:{mail}")));
        proxies.insert(0, format!("SMTP:{mail}"));
    }
    json!(proxies)
}

const REQUIRED_ON_CREATE: [&str; 4] = [
    "accountEnabled",
    "displayName",
    "mailNickname",
    "userPrincipalName",
];

// ---------------------------------------------------------------------------------------------
// Users

fn list_users(ctx: &mut Ctx<'_>) -> Result {
    let now = ctx.now;
    let context = ctx.context("users");
    list(
        ctx,
        |u| u.is_visible(now),
        &DEFAULT_USER_PROPERTIES,
        context,
    )
}

/// A `$filter`ed, `$select`ed page of the users `include` keeps.
fn list(
    ctx: &mut Ctx<'_>,
    include: impl Fn(&super::state::UserRecord) -> bool,
    default_properties: &[&str],
    context: String,
) -> Result {
    ctx.check_user_select()?;
    let filter = ctx.parse_filter()?;
    let users: Vec<Map<String, Value>> = ctx
        .dir
        .users
        .iter()
        .filter(|u| include(u))
        .filter(|u| filter.as_ref().is_none_or(|f| f.matches(&u.user)))
        .map(|u| ctx.project(&u.user, default_properties))
        .collect();
    Ok(ctx.user_page(users, context))
}

fn get_user(ctx: &mut Ctx<'_>, key: &str) -> Result {
    ctx.check_user_select()?;
    let index = ctx.readable(key)?;
    let mut body = ctx.project(&ctx.dir.users[index].user, &DEFAULT_USER_PROPERTIES);
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{}/$entity", ctx.context("users"))),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

fn create_user(ctx: &mut Ctx<'_>) -> Result {
    let body = ctx.body_object()?;
    let mut user = Map::new();
    let mut password = None;
    for (name, value) in &body {
        if name.starts_with('@') {
            continue;
        }
        if name == "passwordProfile" {
            password = Some(check_password_profile(value));
            continue;
        }
        if let Some(v) = check_property(name, value)? {
            user.insert(name.clone(), v);
        }
    }
    for property in REQUIRED_ON_CREATE {
        if !user.contains_key(property) {
            return Err(required(property));
        }
    }
    match password {
        None => return Err(required("passwordProfile")),
        Some(result) => result?,
    }
    let upn = user
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    ctx.check_upn_domain(&upn)?;
    let mail = user.get("mail").and_then(Value::as_str).map(str::to_owned);
    let mut claims = vec![("userPrincipalName", upn.to_lowercase())];
    if let Some(mail) = &mail {
        claims.push(("proxyAddresses", mail.to_lowercase()));
    }
    if let Some((property, _)) = ctx.dir.conflicting_claim(&claims, None) {
        return Err(conflict(property));
    }

    let id = uuid::Uuid::new_v4().to_string();
    let proxies = proxies_for_mail(&Map::new(), mail.as_deref());
    user.insert("id".to_owned(), Value::String(id.clone()));
    user.insert(
        "createdDateTime".to_owned(),
        Value::String(graph_timestamp(jiff::Timestamp::now())),
    );
    user.insert("proxyAddresses".to_owned(), proxies);
    user.insert("assignedLicenses".to_owned(), json!([]));
    user.entry("businessPhones").or_insert_with(|| json!([]));
    let lag = lock(&ctx.shared.faults).replication_lag();
    ctx.dir.users.push(UserRecord {
        user,
        manager_id: None,
        visible_at: (!lag.is_zero()).then(|| ctx.now + lag),
    });
    ctx.changed = true;
    let index = ctx.dir.users.len() - 1;
    Ok(
        Resp::json(StatusCode::CREATED, ctx.full_user(index, "users/$entity"))
            .header("Location", &format!("{}users/{id}", ctx.req.base)),
    )
}

fn update_user(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let index = ctx.writable(key)?;
    let body = ctx.body_object()?;
    let current = ctx.dir.users[index].user.clone();
    let id = ctx.dir.users[index].id().to_owned();
    let mut next = current.clone();
    for (name, value) in &body {
        if name.starts_with('@') {
            continue;
        }
        if name == "passwordProfile" {
            check_password_profile(value)?;
            continue;
        }
        match check_property(name, value)? {
            None if REQUIRED_ON_CREATE.contains(&name.as_str()) => return Err(invalid_value(name)),
            None => {
                next.remove(name);
            }
            Some(Value::Object(given)) if name == "onPremisesExtensionAttributes" => {
                let mut merged = next
                    .get(name)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                merged.extend(given);
                next.insert(name.clone(), Value::Object(merged));
            }
            Some(v) => {
                next.insert(name.clone(), v);
            }
        }
    }

    let old_upn = current
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let new_upn = next
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let old_mail = current
        .get("mail")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    let new_mail = next.get("mail").and_then(Value::as_str).map(str::to_owned);
    let mut claims = Vec::new();
    if !new_upn.eq_ignore_ascii_case(old_upn) {
        ctx.check_upn_domain(&new_upn)?;
        claims.push(("userPrincipalName", new_upn.to_lowercase()));
    }
    let mail_changed = new_mail.as_ref().map(|m| m.to_lowercase()) != old_mail;
    if mail_changed {
        if let Some(mail) = &new_mail {
            claims.push(("proxyAddresses", mail.to_lowercase()));
        }
        next.insert(
            "proxyAddresses".to_owned(),
            proxies_for_mail(&current, new_mail.as_deref()),
        );
    }
    if let Some((property, _)) = ctx.dir.conflicting_claim(&claims, Some(&id)) {
        return Err(conflict(property));
    }
    if next != current {
        ctx.dir.users[index].user = next;
        ctx.changed = true;
    }
    Ok(Resp::no_content())
}

/// Soft delete: `deletedDateTime` is set and, as Entra does, the UPN is prefixed with the object
/// id without hyphens (`{id}{upn}`), which is why a deleted user is found by
/// `endsWith(userPrincipalName,'...')`.
fn delete_user(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let index = ctx.writable(key)?;
    let record = &mut ctx.dir.users[index];
    if let Some(upn) = record.str_prop("userPrincipalName") {
        let mangled = deleted_upn(record.id(), upn);
        record
            .user
            .insert("userPrincipalName".to_owned(), Value::String(mangled));
    }
    record.user.insert(
        "deletedDateTime".to_owned(),
        Value::String(graph_timestamp(jiff::Timestamp::now())),
    );
    ctx.changed = true;
    Ok(Resp::no_content())
}

fn revoke_sessions(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let index = ctx.writable(key)?;
    ctx.dir.users[index].user.insert(
        "signInSessionsValidFromDateTime".to_owned(),
        Value::String(graph_timestamp(jiff::Timestamp::now())),
    );
    ctx.changed = true;
    Ok(Resp::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata#Edm.Boolean", ctx.req.base), "value": true}),
    ))
}

// ---------------------------------------------------------------------------------------------
// Manager

fn manager_index(ctx: &Ctx<'_>, key: &str) -> Result<usize> {
    let index = ctx.readable(key)?;
    ctx.dir.users[index]
        .manager_id
        .as_deref()
        .and_then(|m| ctx.dir.live_index(m))
        .filter(|&i| ctx.dir.users[i].is_visible(ctx.now))
        .ok_or_else(|| not_found("manager"))
}

fn get_manager(ctx: &mut Ctx<'_>, key: &str) -> Result {
    ctx.check_user_select()?;
    let manager = manager_index(ctx, key)?;
    let mut body = ctx.project(&ctx.dir.users[manager].user, &DEFAULT_USER_PROPERTIES);
    body.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!(
            "{}$metadata#directoryObjects/$entity",
            ctx.req.base
        )),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

fn get_manager_ref(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let manager = manager_index(ctx, key)?;
    Ok(Resp::json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}$metadata#$ref", ctx.req.base),
            "@odata.id": format!("{}directoryObjects/{}", ctx.req.base, ctx.dir.users[manager].id()),
        }),
    ))
}

fn set_manager(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let index = ctx.writable(key)?;
    let target = reference_target(&ctx.body_object()?)?;
    let manager = ctx.readable(&target)?;
    let manager_id = ctx.dir.users[manager].id().to_owned();
    if ctx.dir.users[index].manager_id.as_deref() != Some(manager_id.as_str()) {
        ctx.dir.users[index].manager_id = Some(manager_id);
        ctx.changed = true;
    }
    Ok(Resp::no_content())
}

fn remove_manager(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let index = ctx.writable(key)?;
    if ctx.dir.users[index].manager_id.take().is_none() {
        return Err(not_found("manager"));
    }
    ctx.changed = true;
    Ok(Resp::no_content())
}

// ---------------------------------------------------------------------------------------------
// Groups

fn group_json(group: &super::state::GroupRecord) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("@odata.type".to_owned(), json!("#microsoft.graph.group"));
    out.insert("id".to_owned(), json!(group.id));
    out.insert("displayName".to_owned(), json!(group.display_name));
    out.insert("securityEnabled".to_owned(), json!(true));
    out.insert("mailEnabled".to_owned(), json!(false));
    out.insert("groupTypes".to_owned(), json!([]));
    out
}

fn project_group(ctx: &Ctx<'_>, group: &super::state::GroupRecord) -> Map<String, Value> {
    let full = group_json(group);
    match &ctx.query.select {
        None => full,
        Some(select) => {
            let mut out = Map::new();
            out.insert("@odata.type".to_owned(), json!("#microsoft.graph.group"));
            out.insert("id".to_owned(), json!(group.id));
            for property in select {
                out.insert(
                    property.clone(),
                    full.get(property).cloned().unwrap_or(Value::Null),
                );
            }
            out
        }
    }
}

/// A group a membership write addresses; created on first use when no groups were seeded.
fn group_for_write(ctx: &mut Ctx<'_>, id: &str) -> Result<usize> {
    if let Some(index) = ctx.dir.group_index(id) {
        return Ok(index);
    }
    if !ctx.shared.settings.auto_groups {
        return Err(not_found(id));
    }
    ctx.dir.groups.push(super::state::GroupRecord {
        id: id.to_owned(),
        display_name: id.to_owned(),
        members: Vec::new(),
    });
    ctx.changed = true;
    Ok(ctx.dir.groups.len() - 1)
}

/// The canonical id of a user a membership write references, or Graph's error for it.
fn member_to_add(ctx: &Ctx<'_>, group: usize, user_key: &str) -> Result<String> {
    let index = ctx
        .dir
        .live_index(user_key)
        .ok_or_else(|| not_found(user_key))?;
    if ctx.dir.users[index].is_lagging(ctx.now) {
        return Err(bad_request(
            "Request_BadRequest",
            "The source resource object or one of the objects being referenced do not exist.",
        ));
    }
    let user_id = ctx.dir.users[index].id().to_owned();
    if ctx.dir.groups[group]
        .members
        .iter()
        .any(|m| m.eq_ignore_ascii_case(&user_id))
    {
        return Err(bad_request(
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        ));
    }
    Ok(user_id)
}

fn add_member(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    let target = reference_target(&ctx.body_object()?)?;
    let group = group_for_write(ctx, group_id)?;
    let user_id = member_to_add(ctx, group, &target)?;
    ctx.dir.groups[group].members.push(user_id);
    ctx.changed = true;
    Ok(Resp::no_content())
}

fn remove_member(ctx: &mut Ctx<'_>, group_id: &str, member: &str) -> Result {
    let group = ctx
        .dir
        .group_index(group_id)
        .ok_or_else(|| not_found(group_id))?;
    let member_id = ctx
        .dir
        .live_index(member)
        .map_or_else(|| member.to_owned(), |i| ctx.dir.users[i].id().to_owned());
    let members = &mut ctx.dir.groups[group].members;
    let position = members
        .iter()
        .position(|m| m.eq_ignore_ascii_case(&member_id))
        .ok_or_else(|| not_found(member))?;
    members.remove(position);
    ctx.changed = true;
    Ok(Resp::no_content())
}

fn patch_group(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    let body = ctx.body_object()?;
    let mut to_add = Vec::new();
    let mut display_name = None;
    for (name, value) in &body {
        match name.as_str() {
            "members@odata.bind" => {
                let urls = value
                    .as_array()
                    .filter(|a| a.iter().all(Value::is_string))
                    .ok_or_else(|| {
                        bad_request(
                            "BadRequest",
                            "'members@odata.bind' must be an array of reference urls.",
                        )
                    })?;
                if urls.len() > 20 {
                    return Err(bad_request(
                        "Request_BadRequest",
                        "At most 20 members can be added in a single request.",
                    ));
                }
                for url in urls {
                    let mut reference = Map::new();
                    reference.insert("@odata.id".to_owned(), url.clone());
                    to_add.push(reference_target(&reference)?);
                }
            }
            "displayName" => {
                display_name = Some(value.as_str().map(str::to_owned).ok_or_else(|| {
                    bad_request(
                        "Request_BadRequest",
                        "Invalid value specified for property 'displayName' of resource 'Group'.",
                    )
                })?);
            }
            other if other.starts_with('@') => {}
            other => {
                return Err(bad_request(
                    "BadRequest",
                    &format!(
                        "Property '{other}' is not supported on groups by the hrsync sandbox."
                    ),
                ));
            }
        }
    }
    let group = if to_add.is_empty() {
        ctx.dir
            .group_index(group_id)
            .ok_or_else(|| not_found(group_id))?
    } else {
        group_for_write(ctx, group_id)?
    };
    let mut ids: Vec<String> = Vec::new();
    for key in &to_add {
        let id = member_to_add(ctx, group, key)?;
        if ids.iter().any(|i| i.eq_ignore_ascii_case(&id)) {
            return Err(bad_request(
                "Request_BadRequest",
                "One or more added object references already exist for the following modified properties: 'members'.",
            ));
        }
        ids.push(id);
    }
    if let Some(name) = display_name {
        ctx.dir.groups[group].display_name = name;
        ctx.changed = true;
    }
    if !ids.is_empty() {
        ctx.dir.groups[group].members.extend(ids);
        ctx.changed = true;
    }
    Ok(Resp::no_content())
}

fn get_group(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    let group = ctx.dir.group(group_id).ok_or_else(|| not_found(group_id))?;
    let mut body = project_group(ctx, group);
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{}/$entity", ctx.context("groups"))),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

fn list_members(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    ctx.check_user_select()?;
    let members: Vec<String> = match ctx.dir.group(group_id) {
        Some(group) => group.members.clone(),
        None if ctx.shared.settings.auto_groups => Vec::new(),
        None => return Err(not_found(group_id)),
    };
    let users: Vec<Map<String, Value>> = members
        .iter()
        .filter_map(|m| ctx.dir.live_index(m))
        .filter(|&i| ctx.dir.users[i].is_visible(ctx.now))
        .map(|i| {
            let mut u = ctx.project(&ctx.dir.users[i].user, &DEFAULT_USER_PROPERTIES);
            u.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
            u
        })
        .collect();
    Ok(ctx.user_page(users, ctx.context("directoryObjects")))
}

fn member_of(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let index = ctx.readable(key)?;
    let user_id = ctx.dir.users[index].id().to_owned();
    let groups: Vec<Map<String, Value>> = ctx
        .dir
        .groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(&user_id)))
        .map(|g| project_group(ctx, g))
        .collect();
    Ok(ctx.user_page(groups, ctx.context("directoryObjects")))
}

// ---------------------------------------------------------------------------------------------
// Licenses

fn guid_error() -> Resp {
    bad_request(
        "BadRequest",
        "Cannot convert a primitive value to the expected type 'Edm.Guid'. See the inner exception for more details",
    )
}

fn unknown_sku(sku: &str) -> Resp {
    bad_request(
        "Request_BadRequest",
        &format!("License {sku} does not correspond to a valid company License."),
    )
}

fn assign_license(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let index = ctx.writable(key)?;
    let body = ctx.body_object()?;
    let (Some(add), Some(remove)) = (
        body.get("addLicenses").and_then(Value::as_array),
        body.get("removeLicenses").and_then(Value::as_array),
    ) else {
        return Err(bad_request(
            "Request_BadRequest",
            "Both 'addLicenses' and 'removeLicenses' are required (use an empty array for none).",
        ));
    };
    let mut adds: Vec<(String, Vec<Value>)> = Vec::new();
    for license in add {
        let sku = license
            .get("skuId")
            .and_then(Value::as_str)
            .filter(|s| is_guid(s))
            .ok_or_else(guid_error)?;
        let disabled = match license.get("disabledPlans") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(plans)) if plans.iter().all(|p| p.as_str().is_some_and(is_guid)) => {
                plans.clone()
            }
            Some(_) => return Err(guid_error()),
        };
        if !ctx.shared.settings.auto_skus && ctx.dir.sku(sku).is_none() {
            return Err(unknown_sku(sku));
        }
        adds.push((sku.to_lowercase(), disabled));
    }
    let assigned: Vec<Value> = ctx.dir.users[index]
        .user
        .get("assignedLicenses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |sku: &str| {
        assigned.iter().any(|l| {
            l.get("skuId")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(sku))
        })
    };
    let mut removes = Vec::new();
    for sku in remove {
        let sku = sku.as_str().filter(|s| is_guid(s)).ok_or_else(guid_error)?;
        if !ctx.shared.settings.auto_skus && ctx.dir.sku(sku).is_none() {
            return Err(unknown_sku(sku));
        }
        if !has(sku) {
            return Err(bad_request(
                "Request_BadRequest",
                "User does not have a corresponding license.",
            ));
        }
        removes.push(sku.to_lowercase());
    }
    if !adds.is_empty() && ctx.dir.users[index].str_prop("usageLocation").is_none() {
        return Err(bad_request(
            "Request_BadRequest",
            "License assignment cannot be done for user with invalid usage location.",
        ));
    }

    let mut next: Vec<Value> = assigned
        .into_iter()
        .filter(|l| {
            let sku = l
                .get("skuId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            !removes.contains(&sku) && !adds.iter().any(|(a, _)| *a == sku)
        })
        .collect();
    for (sku, disabled) in &adds {
        next.push(json!({"disabledPlans": disabled, "skuId": sku}));
        if ctx.dir.sku(sku).is_none() {
            ctx.dir.skus.push(super::state::SkuRecord {
                sku_id: sku.clone(),
                sku_part_number: format!("SANDBOX_{}", sku[..8].to_ascii_uppercase()),
            });
        }
    }
    ctx.dir.users[index]
        .user
        .insert("assignedLicenses".to_owned(), Value::Array(next));
    ctx.changed = true;
    Ok(Resp::json(
        StatusCode::OK,
        ctx.full_user(index, "users/$entity"),
    ))
}

fn license_details(ctx: &mut Ctx<'_>, key: &str) -> Result {
    use base64::Engine as _;
    let index = ctx.readable(key)?;
    let user_id = ctx.dir.users[index].id().to_owned();
    let details: Vec<Value> = ctx.dir.users[index]
        .user
        .get("assignedLicenses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("skuId").and_then(Value::as_str))
        .map(|sku| {
            let part = ctx.dir.sku(sku).map(|s| s.sku_part_number.clone()).unwrap_or_default();
            json!({
                "id": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{user_id}:{sku}")),
                "skuId": sku,
                "skuPartNumber": part,
                "servicePlans": [],
            })
        })
        .collect();
    Ok(Resp::json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}$metadata#users('{user_id}')/licenseDetails", ctx.req.base),
            "value": details,
        }),
    ))
}

fn subscribed_skus(ctx: &mut Ctx<'_>) -> Result {
    let skus: Vec<Value> = ctx
        .dir
        .skus
        .iter()
        .map(|sku| {
            let consumed = ctx
                .dir
                .users
                .iter()
                .filter(|u| !u.is_deleted())
                .filter(|u| {
                    u.user
                        .get("assignedLicenses")
                        .and_then(Value::as_array)
                        .is_some_and(|ls| {
                            ls.iter().any(|l| {
                                l.get("skuId")
                                    .and_then(Value::as_str)
                                    .is_some_and(|s| s.eq_ignore_ascii_case(&sku.sku_id))
                            })
                        })
                })
                .count();
            json!({
                "id": format!("sandbox_{}", sku.sku_id),
                "skuId": sku.sku_id,
                "skuPartNumber": sku.sku_part_number,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": consumed,
                "prepaidUnits": {"enabled": 10000, "suspended": 0, "warning": 0, "lockedOut": 0},
                "servicePlans": [],
            })
        })
        .collect();
    Ok(Resp::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata#subscribedSkus", ctx.req.base), "value": skus}),
    ))
}

// ---------------------------------------------------------------------------------------------
// Deleted items

/// A deleted user's default properties: a live user's, and when it was deleted.
const DELETED_DEFAULT_PROPERTIES: [&str; 12] = {
    let mut out = [""; 12];
    let mut i = 0;
    while i < DEFAULT_USER_PROPERTIES.len() {
        out[i] = DEFAULT_USER_PROPERTIES[i];
        i += 1;
    }
    out[11] = "deletedDateTime";
    out
};

fn list_deleted(ctx: &mut Ctx<'_>) -> Result {
    let context = ctx.context("directory/deletedItems/microsoft.graph.user");
    list(
        ctx,
        super::state::UserRecord::is_deleted,
        &DELETED_DEFAULT_PROPERTIES,
        context,
    )
}

fn get_deleted(ctx: &mut Ctx<'_>, id: &str) -> Result {
    ctx.check_user_select()?;
    let index = ctx.dir.deleted_index(id).ok_or_else(|| not_found(id))?;
    let mut body = ctx.project(&ctx.dir.users[index].user, &DELETED_DEFAULT_PROPERTIES);
    body.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!(
            "{}$metadata#directory/deletedItems/$entity",
            ctx.req.base
        )),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

fn restore_deleted(ctx: &mut Ctx<'_>, id: &str) -> Result {
    let index = ctx.dir.deleted_index(id).ok_or_else(|| not_found(id))?;
    let record = &ctx.dir.users[index];
    let original_upn = record.original_upn();
    let mut claims = Vec::new();
    if let Some(upn) = &original_upn {
        claims.push(("userPrincipalName", upn.to_lowercase()));
    }
    for claim in record.claims().into_iter().skip(1) {
        claims.push(("proxyAddresses", claim));
    }
    let user_id = record.id().to_owned();
    if let Some((property, _)) = ctx.dir.conflicting_claim(&claims, Some(&user_id)) {
        return Err(conflict(property));
    }
    if let Some(upn) = original_upn {
        ctx.dir.users[index]
            .user
            .insert("userPrincipalName".to_owned(), Value::String(upn));
    }
    ctx.dir.users[index].user.remove("deletedDateTime");
    ctx.changed = true;
    let mut body = ctx.full_user(index, "directoryObjects/$entity");
    if let Some(obj) = body.as_object_mut() {
        obj.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
    }
    Ok(Resp::json(StatusCode::OK, body))
}

fn purge_deleted(ctx: &mut Ctx<'_>, id: &str) -> Result {
    let index = ctx.dir.deleted_index(id).ok_or_else(|| not_found(id))?;
    let removed = ctx.dir.users.remove(index);
    let removed_id = removed.id();
    for group in &mut ctx.dir.groups {
        group
            .members
            .retain(|m| !m.eq_ignore_ascii_case(removed_id));
    }
    for user in &mut ctx.dir.users {
        if user
            .manager_id
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(removed_id))
        {
            user.manager_id = None;
        }
    }
    ctx.changed = true;
    Ok(Resp::no_content())
}
