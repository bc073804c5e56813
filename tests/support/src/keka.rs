//! The Keka API emulator: the `kekaapi` token grant and the HRIS employee reads.
//!
//! - `POST /connect/token` (form `grant_type=kekaapi`, `scope=kekaapi`, `client_id`,
//!   `client_secret`, `api_key`): `{"access_token", "expires_in", "token_type"}`; 400
//!   `invalid_client` for any other credential. Point `token_url` at
//!   `{base_url()}/connect/token`.
//! - `GET /api/v1/hris/employees/{id}`: `{"succeeded": true, "message", "errors": [],
//!   "data": {employee}}`; 404 with `succeeded: false` and `data: null` for an unknown id.
//! - `GET /api/v1/hris/employees?pageNumber=&pageSize=`: one page of `data` with
//!   `pageNumber`, `pageSize`, `totalRecords`, `totalPages` (Keka's list envelope;
//!   `pageSize` at most 200, default 100).
//!
//! Every API call needs `Authorization: Bearer ACCESS_TOKEN`, else 401. Keka documents no
//! call that sets an employee's official email, so there is no write route.
//!
//! Records are stored in Keka's employee shape (`firstName`, `email`, `jobTitle {title}`,
//! `groups [{title, groupType}]`, `reportsTo {id}`, ...).

use std::collections::HashMap;

use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use crate::{State, error, lock};

pub const CLIENT_ID: &str = "keka-client-id";
pub const CLIENT_SECRET: &str = "keka-client-secret";
pub const API_KEY: &str = "keka-api-key";
/// The access token the token endpoint hands out.
pub const ACCESS_TOKEN: &str = "keka-access-token-1";

/// The API root under the emulator's address (`base_url` = `emulator.base_url() + API`).
pub const API: &str = "/api/v1";

pub fn router(state: State) -> Router {
    Router::new()
        .route("/connect/token", post(token))
        .route("/api/v1/hris/employees", get(list))
        .route("/api/v1/hris/employees/{id}", get(read))
        .with_state(state)
}

/// A working, permanent employee who joined on 2024-01-15.
pub fn employee(id: &str, first_name: &str, last_name: &str) -> Value {
    json!({
        "id": id,
        "employeeNumber": "E-1",
        "firstName": first_name,
        "middleName": null,
        "lastName": last_name,
        "displayName": format!("{first_name} {last_name}"),
        "email": null,
        "personalEmail": null,
        "joiningDate": "2024-01-15T00:00:00",
        "exitDate": null,
        "employmentStatus": 0,
        "accountStatus": 1,
        "workerType": 1,
        "jobTitle": null,
        "reportsTo": null,
        "groups": [],
    })
}

async fn token(Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |key: &str| form.get(key).map(String::as_str);
    let valid = field("grant_type") == Some("kekaapi")
        && field("scope") == Some("kekaapi")
        && field("client_id") == Some(CLIENT_ID)
        && field("client_secret") == Some(CLIENT_SECRET)
        && field("api_key") == Some(API_KEY);
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    Json(json!({
        "access_token": ACCESS_TOKEN,
        "expires_in": 86400,
        "token_type": "Bearer",
        "scope": "kekaapi",
    }))
    .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(ACCESS_TOKEN)
}

async fn read(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let state = lock(&state);
    match state.employees.get(&id) {
        Some(record) => Json(json!({
            "succeeded": true,
            "message": null,
            "errors": [],
            "data": record,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "succeeded": false,
                "message": "Employee not found",
                "errors": ["Employee not found"],
                "data": null,
            })),
        )
            .into_response(),
    }
}

async fn list(
    Extract(state): Extract<State>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let number = |key: &str, default: usize| {
        query
            .get(key)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let page_number = number("pageNumber", 1).max(1);
    let page_size = number("pageSize", 100).clamp(1, 200);
    let state = lock(&state);
    let total = state.employees.len();
    let data: Vec<&Value> = state
        .employees
        .values()
        .skip((page_number - 1) * page_size)
        .take(page_size)
        .collect();
    Json(json!({
        "succeeded": true,
        "message": null,
        "errors": [],
        "data": data,
        "pageNumber": page_number,
        "pageSize": page_size,
        "totalRecords": total,
        "totalPages": total.div_ceil(page_size),
    }))
    .into_response()
}
