//! The Personio v2 API emulator, as strict as Personio documents it: a request no source says
//! works is refused. Sources, as in the connector: [O] Personio's own documentation (the API
//! reference at developer.personio.de, the OpenAPI components at github.com/personio/api-docs),
//! [S] secondary, [U] unverified.
//!
//! - `POST /v2/auth/token`: OAuth2 client credentials, a form (`client_id`, `client_secret`,
//!   `grant_type=client_credentials`) in `application/x-www-form-urlencoded` [O
//!   developer.personio.de/reference/post_v2-auth-token]. [`CLIENT_ID`] and [`CLIENT_SECRET`]
//!   get [`ACCESS_TOKEN`]; anything else is a 400 with an OAuth2 `error` (the reference files
//!   every refusal, bad credentials included, under "Bad Request") [O same page; the error
//!   body's keys are RFC 6749's, U for Personio].
//! - Every other call needs `Authorization: Bearer` [`ACCESS_TOKEN`], else 401.
//! - `GET /v2/persons/{id}`: the person, not wrapped; 404 when unknown [O
//!   developer.personio.de/reference/get_v2-persons-id].
//! - `GET /v2/persons?limit=&cursor=&id=&email=...`: `_data` and `_meta.links` [O
//!   developer.personio.de/reference/get_v2-persons].
//! - `GET /v2/persons/{person_id}/employments?limit=&cursor=`: the employments stored with
//!   [`put_employments`], most recent first, in pages [O
//!   developer.personio.de/reference/get_v2-persons-person-id-employments]; 404 for an
//!   unknown person.
//! - `GET /v2/org-units/{id}?type=`: the org units stored with [`put_org_unit`]; `id` is an
//!   int64 and `type` (`department` or `team`) is required [O
//!   developer.personio.de/reference/getorgunit]; a type that is not the unit's is a 404.
//! - `PATCH /v2/persons/{id}`: a JSON body of the documented person attributes only; `email`
//!   must be unique; 204, and the body is recorded in `Shared::written` and applied [O
//!   developer.personio.de/reference/patch_v2-persons-person-id].
//!
//! Errors are Personio's error response (`personio_trace_id`, `timestamp`, `errors[]` of
//! `title`, `detail`, `type`) as `application/problem+json` [O
//! github.com/personio/api-docs/blob/master/common-components-v2.json, ErrorResponse and its
//! examples; the media type from the reference pages' responses].

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{Emulator, State, lock};

pub const CLIENT_ID: &str = "papi-client-7b3e9c1d";
pub const CLIENT_SECRET: &str = "papi-secret-4f2a8d6e0b9c";
/// Personio's v2 bearer tokens (the shape is not part of any contract; [U]).
pub const ACCESS_TOKEN: &str = "papi-3d5f7a9b-1c2e-4f6a-8b0d-2e4f6a8b0c1d";

/// Employments per page when `limit` is not given, and the most a page may have [O
/// get_v2-persons-person-id-employments and get_v2-persons: "between 1 and 50, and the
/// default is 10"].
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 50;

const EMPLOYMENTS: &str = "personio.employments";
const ORG_UNITS: &str = "personio.org_units";
const SETTINGS: &str = "personio.settings";

/// The org unit types `GET /v2/org-units/{id}` takes: "e.g. team or department" [O getorgunit].
const ORG_UNIT_TYPES: [&str; 2] = ["department", "team"];

/// The attributes `PATCH /v2/persons/{id}` takes [O patch_v2-persons-person-id, Body Params].
const WRITABLE_PERSON_FIELDS: [&str; 7] = [
    "email",
    "first_name",
    "preferred_name",
    "last_name",
    "gender",
    "language_code",
    "custom_attributes",
];

/// Query parameters of `GET /v2/persons/{person_id}/employments` [O its reference: `limit`,
/// `cursor` and the `id`, `created_at`, `updated_at` filters with `.gt`/`.lt`]; any other is
/// refused, as the reference's "wrong filter format" example is.
const EMPLOYMENT_QUERY: [&str; 9] = [
    "limit",
    "cursor",
    "id",
    "created_at",
    "created_at.gt",
    "created_at.lt",
    "updated_at",
    "updated_at.gt",
    "updated_at.lt",
];

/// Query parameters of `GET /v2/persons` besides the employments' ones [O get_v2-persons].
const PERSON_ONLY_QUERY: [&str; 5] = [
    "email",
    "first_name",
    "last_name",
    "preferred_name",
    "status",
];

pub fn router(state: State) -> Router {
    Router::new()
        .route("/v2/auth/token", post(token))
        .route("/v2/persons", get(list_persons))
        .route("/v2/persons/{id}", get(get_person).patch(patch_person))
        .route("/v2/persons/{id}/employments", get(list_employments))
        .route("/v2/org-units/{id}", get(get_org_unit))
        .with_state(state)
}

/// A person in Personio's v2 shape [O get_v2-persons-id, Person]. Person ids are strings of
/// digits in Personio's examples (`5005`, `12345`) [O get_v2-persons-person-id-employments and
/// patch_v2-persons-person-id, x-path-examples].
pub fn person(id: &str, first_name: &str, last_name: &str, email: &str) -> Value {
    json!({
        "id": id,
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "preferred_name": null,
        "gender": "UNKNOWN",
        "language_code": "en",
        "status": "ACTIVE",
        "custom_attributes": [],
        "created_at": "2025-01-06T09:00:00Z",
        "updated_at": "2025-01-06T09:00:00Z",
    })
}

/// Adds a custom attribute to a person: `id` and `global_id` identify it, `value` is a string
/// [O github.com/personio/api-docs/blob/master/common-components-v2.json, CustomAttribute].
pub fn set_custom_attribute(
    person: &mut Value,
    id: &str,
    global_id: &str,
    label: &str,
    value: &str,
) {
    let attribute = json!({
        "id": id,
        "type": "STRING",
        "global_id": global_id,
        "label": label,
        "value": value,
    });
    match person["custom_attributes"].as_array_mut() {
        Some(attributes) => attributes.push(attribute),
        None => person["custom_attributes"] = json!([attribute]),
    }
}

/// An employment in Personio's v2 shape; `status` is ACTIVE, INACTIVE, ONBOARDING or LEAVE.
/// Employment ids are UUIDs [O get_v2-persons-person-id-employments, x-path-examples
/// `id=2306b77a-35fb-4b1d-8044-3b14f7f2ca65`]; supervisor, office, legal entity and cost
/// centres are nested ids only [O developer.personio.de/changelog/job-reference-now-available-on-employment:
/// "the existing nested-id pattern already used for supervisor, office, legal_entity, and
/// cost_center"]; org units are `{id, type}` [O getorgunit: "the Org Unit ID associated with
/// an Employment"; the employment's OrgUnit schema has a `type`]. The other field names are
/// [U].
pub fn employment(id: &str, person_id: &str, status: &str, start_date: &str) -> Value {
    json!({
        "id": id,
        "person": {"id": person_id},
        "status": status,
        "start_date": start_date,
        "type": "INTERNAL",
        "position": null,
        "supervisor": null,
        "office": null,
        "org_units": [],
        "legal_entity": null,
        "cost_centers": [],
        "termination": {"termination_date": null, "type": null, "reason": null, "terminated_at": null},
        "weekly_working_hours": 40,
        "created_at": "2025-01-06T09:00:00Z",
        "updated_at": "2025-01-06T09:00:00Z",
    })
}

/// Stores `person_id`'s employments, most recent first (the order Personio lists them in).
pub fn put_employments(emulator: &Emulator, person_id: &str, employments: Vec<Value>) {
    emulator
        .state()
        .tables
        .entry(EMPLOYMENTS.into())
        .or_default()
        .insert(person_id.to_owned(), Value::Array(employments));
}

/// Stores an org unit: `id` an int64 as text, `kind` `department` or `team`.
///
/// # Panics
/// When `id` is not an int64 or `kind` not a documented type (a fixture mistake).
pub fn put_org_unit(emulator: &Emulator, id: &str, kind: &str, name: &str) {
    assert!(
        id.parse::<i64>().is_ok(),
        "Personio org unit ids are int64s, not {id:?}"
    );
    assert!(ORG_UNIT_TYPES.contains(&kind), "no org unit type {kind:?}");
    emulator
        .state()
        .tables
        .entry(ORG_UNITS.into())
        .or_default()
        .insert(
            id.to_owned(),
            json!({"id": id, "type": kind, "name": name, "abbreviation": null, "description": null, "parent_id": null}),
        );
}

/// Renames a stored org unit (to test that a client does not keep a name forever).
pub fn rename_org_unit(emulator: &Emulator, id: &str, name: &str) {
    if let Some(unit) = emulator
        .state()
        .tables
        .get_mut(ORG_UNITS)
        .and_then(|units| units.get_mut(id))
    {
        unit["name"] = json!(name);
    }
}

/// Caps the employment pages at `size` items whatever `limit` asks (to test pagination).
pub fn set_page_size(emulator: &Emulator, size: usize) {
    emulator
        .state()
        .tables
        .entry(SETTINGS.into())
        .or_default()
        .insert("page_size".into(), json!(size));
}

/// Makes the next-page links point under `root` instead of the emulator (to test that a
/// client does not follow a link to another host).
pub fn set_link_root(emulator: &Emulator, root: &str) {
    emulator
        .state()
        .tables
        .entry(SETTINGS.into())
        .or_default()
        .insert("link_root".into(), json!(root));
}

/// Personio's error response [O common-components-v2.json, ErrorResponse].
fn problem(status: StatusCode, title: &str, detail: &str, code: &str) -> Response {
    let body = json!({
        "personio_trace_id": "emulator-trace-0001",
        "timestamp": "2026-12-01T16:59:30+00:00",
        "errors": [{
            "title": title,
            "detail": detail,
            "type": format!("https://developer.personio.de/reference/errors#{code}"),
        }],
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn bad_request(detail: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Bad Request",
        detail,
        "common.invalid_request",
    )
}

fn not_found(what: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Resource not found",
        &format!(
            "The requested resource was not found. The resource could have been deleted or never existed in our system. ({what})"
        ),
        "common.requested_resource_not_found",
    )
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {ACCESS_TOKEN}"))
}

fn unauthorized() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "The access token is missing, invalid or expired.",
        "common.unauthorized",
    )
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A query string as (name, value) pairs, percent-decoded; `Err` names a parameter the
/// endpoint does not take or one given twice.
fn query(raw: Option<&str>, allowed: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut pairs = BTreeMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode(name), decode(value));
        if !allowed.contains(&name.as_str()) {
            return Err(format!("unknown query parameter {name}"));
        }
        if pairs.insert(name.clone(), value).is_some() {
            return Err(format!("query parameter {name} given twice"));
        }
    }
    Ok(pairs)
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match text
                .get(i + 1..i + 3)
                .map(|hex| u8::from_str_radix(hex, 16))
            {
                Some(Ok(byte)) => {
                    out.push(byte);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `limit`: 1 to 50, 10 when absent [O]; a cap set with [`set_page_size`] applies too.
fn page_limit(
    query: &BTreeMap<String, String>,
    settings: Option<&BTreeMap<String, Value>>,
) -> Result<usize, String> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                return Err(format!(
                    "limit must be an integer between 1 and {MAX_LIMIT}"
                ));
            }
        },
    };
    let cap = settings
        .and_then(|s| s.get("page_size"))
        .and_then(Value::as_u64)
        .and_then(|cap| usize::try_from(cap).ok());
    Ok(cap.map_or(limit, |cap| limit.min(cap)))
}

/// Cursors are opaque (`cur_82sQwR2eZvKilo2duNh219Kw` in the reference [O]); this one encodes
/// an offset.
fn cursor_offset(query: &BTreeMap<String, String>) -> Result<usize, String> {
    match query.get("cursor") {
        None => Ok(0),
        Some(cursor) => cursor
            .strip_prefix("cur_")
            .and_then(|rest| rest.parse::<usize>().ok())
            .ok_or_else(|| "invalid cursor".to_owned()),
    }
}

/// One page of `all` and the `_meta.links` of the next, under `root`.
fn page(all: &[Value], start: usize, limit: usize, root: &str, path: &str) -> Value {
    let data: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let end = start + data.len();
    let mut links = serde_json::Map::new();
    links.insert(
        "self".into(),
        json!({"href": format!("{root}{path}?limit={limit}")}),
    );
    if end < all.len() {
        links.insert(
            "next".into(),
            json!({"href": format!("{root}{path}?limit={limit}&cursor=cur_{end}")}),
        );
    }
    json!({"_data": data, "_meta": {"links": links}})
}

fn link_root(headers: &HeaderMap, settings: Option<&BTreeMap<String, Value>>) -> String {
    settings
        .and_then(|s| s.get("link_root"))
        .and_then(Value::as_str)
        .map_or_else(
            || {
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}")
            },
            str::to_owned,
        )
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if media_type(&headers) != "application/x-www-form-urlencoded" {
        return oauth_error(
            "invalid_request",
            "the request must be application/x-www-form-urlencoded",
        );
    }
    let form = match query(
        std::str::from_utf8(&body).ok(),
        &["client_id", "client_secret", "grant_type", "scope"],
    ) {
        Ok(form) => form,
        Err(_) => return oauth_error("invalid_request", "unknown or repeated parameter"),
    };
    let (Some(client_id), Some(client_secret), Some(grant_type)) = (
        form.get("client_id"),
        form.get("client_secret"),
        form.get("grant_type"),
    ) else {
        return oauth_error(
            "invalid_request",
            "client_id, client_secret and grant_type are required",
        );
    };
    if grant_type != "client_credentials" {
        return oauth_error("unsupported_grant_type", "use client_credentials");
    }
    if client_id != CLIENT_ID || client_secret != CLIENT_SECRET {
        return oauth_error("invalid_client", "client authentication failed");
    }
    axum::Json(json!({
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 86400,
        "scope": "personio:persons:read personio:persons:write",
    }))
    .into_response()
}

async fn list_persons(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let query = match query(
        raw.as_deref(),
        &[&EMPLOYMENT_QUERY[..], &PERSON_ONLY_QUERY[..]].concat(),
    ) {
        Ok(query) => query,
        Err(problem) => return bad_request(&problem),
    };
    let state = lock(&state);
    let settings = state.tables.get(SETTINGS);
    let (limit, start) = match (page_limit(&query, settings), cursor_offset(&query)) {
        (Ok(limit), Ok(start)) => (limit, start),
        (Err(problem), _) | (_, Err(problem)) => return bad_request(&problem),
    };
    // `id` and `email` take one or more comma-separated values [O get_v2-persons].
    let wanted = |name: &str, value: &Value| {
        query.get(name).is_none_or(|list| {
            value
                .as_str()
                .is_some_and(|v| list.split(',').any(|w| w.trim() == v))
        })
    };
    let all: Vec<Value> = state
        .employees
        .values()
        .filter(|person| wanted("id", &person["id"]) && wanted("email", &person["email"]))
        .cloned()
        .collect();
    axum::Json(page(
        &all,
        start,
        limit,
        &link_root(&headers, settings),
        "/v2/persons",
    ))
    .into_response()
}

async fn get_person(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    if let Err(problem) = query(raw.as_deref(), &[]) {
        return bad_request(&problem);
    }
    let state = lock(&state);
    match state.employees.get(&id) {
        Some(person) => axum::Json(person.clone()).into_response(),
        None => not_found("person"),
    }
}

async fn patch_person(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    if media_type(&headers) != "application/json" {
        return bad_request("the body must be application/json");
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body is not a JSON object");
    };
    if fields.is_empty() {
        return bad_request("the body changes nothing");
    }
    if let Some(unknown) = fields
        .keys()
        .find(|k| !WRITABLE_PERSON_FIELDS.contains(&k.as_str()))
    {
        return bad_request(&format!("{unknown} is not a writable person attribute"));
    }
    let mut state = lock(&state);
    if !state.employees.contains_key(&id) {
        return not_found("person");
    }
    if let Some(email) = fields.get("email") {
        // "Email of the employee. The email must be unique" [O]; `nullable: false`.
        let Some(email) = email.as_str().filter(|e| e.contains('@')) else {
            return bad_request("email must be an email address");
        };
        let taken = state
            .employees
            .iter()
            .any(|(other, person)| *other != id && person["email"] == email);
        if taken {
            return bad_request("email is already used by another person");
        }
    }
    if let Some(Value::Object(person)) = state.employees.get_mut(&id) {
        for (key, value) in &fields {
            person.insert(key.clone(), value.clone());
        }
    }
    state.written.push((id, Value::Object(fields)));
    StatusCode::NO_CONTENT.into_response()
}

async fn list_employments(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let query = match query(raw.as_deref(), &EMPLOYMENT_QUERY) {
        Ok(query) => query,
        Err(problem) => return bad_request(&problem),
    };
    let state = lock(&state);
    let settings = state.tables.get(SETTINGS);
    let (limit, start) = match (page_limit(&query, settings), cursor_offset(&query)) {
        (Ok(limit), Ok(start)) => (limit, start),
        (Err(problem), _) | (_, Err(problem)) => return bad_request(&problem),
    };
    if !state.employees.contains_key(&id) {
        return not_found("person");
    }
    let all = state
        .tables
        .get(EMPLOYMENTS)
        .and_then(|table| table.get(&id))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    axum::Json(page(
        &all,
        start,
        limit,
        &link_root(&headers, settings),
        &format!("/v2/persons/{id}/employments"),
    ))
    .into_response()
}

async fn get_org_unit(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let query = match query(raw.as_deref(), &["type", "include_parent_chain"]) {
        Ok(query) => query,
        Err(problem) => return bad_request(&problem),
    };
    // Path `id`: int64, required [O getorgunit].
    if id.parse::<i64>().is_err() {
        return bad_request("id must be an int64");
    }
    // Query `type`: string, required, "e.g. team or department" [O getorgunit].
    let Some(kind) = query.get("type") else {
        return bad_request("the query parameter type is required (e.g. team or department)");
    };
    if !ORG_UNIT_TYPES.contains(&kind.as_str()) {
        return bad_request("type must be team or department");
    }
    if let Some(chain) = query.get("include_parent_chain")
        && !matches!(chain.as_str(), "true" | "false")
    {
        return bad_request("include_parent_chain must be true or false");
    }
    let state = lock(&state);
    match state.tables.get(ORG_UNITS).and_then(|t| t.get(&id)) {
        Some(unit) if unit["type"] == kind.as_str() => axum::Json(unit.clone()).into_response(),
        _ => not_found(&format!("{kind} {id}")),
    }
}
