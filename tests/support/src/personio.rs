//! The Personio v2 API emulator.
//!
//! - `POST /v2/auth/token`: OAuth2 client credentials (a form with `client_id`,
//!   `client_secret`, `grant_type=client_credentials`); [`CLIENT_ID`] and [`CLIENT_SECRET`]
//!   get [`ACCESS_TOKEN`], anything else a 401.
//! - Every other call needs `Authorization: Bearer` [`ACCESS_TOKEN`] (else 401).
//! - `GET /v2/persons/{id}`, `GET /v2/persons?id=`: persons from `Shared::employees`.
//! - `GET /v2/persons/{id}/employments?limit=&cursor=`: the employments stored with
//!   [`put_employments`] (most recent first, as given), in pages of `limit` (default 10,
//!   1 to 50; [`set_page_size`] caps it) with the next page's URL in
//!   `_meta.links.next.href` and an opaque `cursor`.
//! - `GET /v2/org-units/{id}`: org units stored with [`put_org_unit`].
//! - `PATCH /v2/persons/{id}`: records the body in `Shared::written` and applies `email`
//!   (and any other top-level field given) to the stored person; answers 204.

use axum::Router;
use axum::extract::{Form, Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Emulator, State, error, lock};

pub const CLIENT_ID: &str = "personio-client-id";
pub const CLIENT_SECRET: &str = "personio-client-secret";
pub const ACCESS_TOKEN: &str = "personio-access-token";

const EMPLOYMENTS: &str = "personio.employments";
const ORG_UNITS: &str = "personio.org_units";
const SETTINGS: &str = "personio.settings";

pub fn router(state: State) -> Router {
    Router::new()
        .route("/v2/auth/token", post(token))
        .route("/v2/persons", get(list_persons))
        .route("/v2/persons/{id}", get(get_person).patch(patch_person))
        .route("/v2/persons/{id}/employments", get(list_employments))
        .route("/v2/org-units/{id}", get(get_org_unit))
        .with_state(state)
}

/// A person in Personio's v2 shape.
pub fn person(id: &str, first_name: &str, last_name: &str, email: &str) -> Value {
    json!({
        "id": id,
        "first_name": first_name,
        "last_name": last_name,
        "preferred_name": null,
        "email": email,
        "gender": "UNKNOWN",
        "language_code": "en",
        "status": "ACTIVE",
        "employments": [],
        "custom_attributes": [],
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    })
}

/// An employment in Personio's v2 shape; `status` is ACTIVE, INACTIVE, ONBOARDING or LEAVE.
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
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
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

/// Stores an org unit (`type` DEPARTMENT or TEAM).
pub fn put_org_unit(emulator: &Emulator, id: &str, kind: &str, name: &str) {
    emulator
        .state()
        .tables
        .entry(ORG_UNITS.into())
        .or_default()
        .insert(id.to_owned(), json!({"id": id, "type": kind, "name": name}));
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

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {ACCESS_TOKEN}"))
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "invalid or missing access token")
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "personio_trace_id": "emulator",
            "errors": [{"title": "Resource not found", "detail": what}],
        })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
}

async fn token(Form(form): Form<TokenForm>) -> Response {
    if form.grant_type.as_deref() != Some("client_credentials") {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if form.client_id.as_deref() != Some(CLIENT_ID)
        || form.client_secret.as_deref() != Some(CLIENT_SECRET)
    {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    axum::Json(json!({
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 86400,
        "scope": "personio:persons:read personio:persons:write",
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct PersonsQuery {
    id: Option<String>,
}

async fn list_persons(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Query(query): Query<PersonsQuery>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let state = lock(&state);
    let data: Vec<Value> = state
        .employees
        .iter()
        .filter(|(id, _)| query.id.as_ref().is_none_or(|wanted| wanted == *id))
        .map(|(_, person)| person.clone())
        .collect();
    axum::Json(json!({"_data": data, "_meta": {"links": {}}})).into_response()
}

async fn get_person(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
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
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not a JSON object");
    };
    let mut state = lock(&state);
    let Some(Value::Object(person)) = state.employees.get_mut(&id) else {
        return not_found("person");
    };
    for (key, value) in &fields {
        person.insert(key.clone(), value.clone());
    }
    state.written.push((id, Value::Object(fields)));
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_employments(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let limit = page.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 50");
    }
    let start = match page.cursor.as_deref().map(|c| c.strip_prefix("after-")) {
        None => 0,
        Some(Some(offset)) => match offset.parse::<usize>() {
            Ok(offset) => offset,
            Err(_) => return error(StatusCode::BAD_REQUEST, "invalid cursor"),
        },
        Some(None) => return error(StatusCode::BAD_REQUEST, "invalid cursor"),
    };
    let state = lock(&state);
    if !state.employees.contains_key(&id) {
        return not_found("person");
    }
    let limit = state
        .tables
        .get(SETTINGS)
        .and_then(|t| t.get("page_size"))
        .and_then(Value::as_u64)
        .map_or(limit, |cap| {
            limit.min(usize::try_from(cap).unwrap_or(limit))
        });
    let all = state
        .tables
        .get(EMPLOYMENTS)
        .and_then(|table| table.get(&id))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let data: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let end = start + data.len();
    let mut links = serde_json::Map::new();
    if end < all.len() {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        let root = state
            .tables
            .get(SETTINGS)
            .and_then(|t| t.get("link_root"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("http://{host}"), str::to_owned);
        links.insert(
            "next".into(),
            json!({"href": format!("{root}/v2/persons/{id}/employments?limit={limit}&cursor=after-{end}")}),
        );
    }
    axum::Json(json!({"_data": data, "_meta": {"links": links}})).into_response()
}

async fn get_org_unit(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let state = lock(&state);
    match state.tables.get(ORG_UNITS).and_then(|t| t.get(&id)) {
        Some(unit) => axum::Json(unit.clone()).into_response(),
        None => not_found("org unit"),
    }
}
