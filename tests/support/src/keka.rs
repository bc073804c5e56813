//! The Keka API emulator, as strict as Keka's documentation: the `kekaapi` token grant and
//! the HRIS employee reads. What no source says Keka takes is refused (400), so a connector
//! that passes here asks only what Keka documents.
//!
//! Sources, named beside each rule below:
//! - [O] developers.keka.com: <https://developers.keka.com/docs/getting-started-with-webhooks>
//!   (the webhook's `employeeIndentifier` is the employee's identifier; the sample in
//!   `shared/hr/tests/samples/keka-webhook.txt` names it `<employee guid>`) and
//!   <https://developers.keka.com/reference/rate-limit>.
//! - [S] Keka's OpenAPI, the spec the developer portal is built from, as republished in
//!   github.com/konfig-sdks/keka-hr-java-sdk `api/openapi.yaml` (servers
//!   `https://{company}.{keka|kekademo}.com/api/v1`, token server `login.keka.com`).
//! - [U] not documented anywhere read; chosen strict.
//!
//! Routes (point `base_url` at `{base_url()}{API}`, `token_url` at `{base_url()}/connect/token`):
//! - `POST /connect/token`, form `grant_type=kekaapi`, `scope=kekaapi`, `client_id`,
//!   `client_secret`, `api_key`: `{"access_token", "expires_in": 86400, "token_type":
//!   "Bearer", "scope": "kekaapi"}`.
//! - `GET /api/v1/hris/employees/{id}`: `{"succeeded", "message", "errors", "data"}` with the
//!   employee in `data`; `id` is the employee's GUID.
//! - `GET /api/v1/hris/employees`: one page of `data` in Keka's paged envelope.
//!
//! Keka documents no call that sets an employee's official email, so there is no write route.
//! Records are stored in Keka's `EmployeeProfile` shape ([`employee`]).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::{State, lock};

/// Made-up credentials shaped like the samples integration guides show [S]: the client id a
/// GUID, the secret 20 characters, the API key base64 (with `+`, `/` and `=`, which the token
/// form must percent-encode).
pub const CLIENT_ID: &str = "b2e8c6a1-3f4d-4e5a-9c7b-1d2e3f4a5b6c";
pub const CLIENT_SECRET: &str = "kQ3vXn8RzT1pLm7Ws2Yd";
pub const API_KEY: &str = "q8Vt0Lw+3Nf/Xr2Ye5Hk1A==";
/// The access token the token endpoint hands out.
pub const ACCESS_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6Imtla2EtZW11bGF0b3IifQ.e30.c2lnbmF0dXJl";

/// The API root under the emulator's address (`base_url` = `emulator.base_url() + API`).
pub const API: &str = "/api/v1";

/// API calls Keka takes per minute before answering 429 ([O] rate-limit page: "50
/// requests/minute ... a 429 error with the reason rateLimitExceeded").
pub const RATE_LIMIT_PER_MINUTE: u64 = 50;

pub fn router(state: State) -> Router {
    Router::new()
        .route("/connect/token", post(token))
        .route("/api/v1/hris/employees", get(list))
        .route("/api/v1/hris/employees/{id}", get(read))
        .with_state(state)
}

/// A working, permanent employee who joined on 2024-01-15, in Keka's `EmployeeProfile`
/// shape ([S] OpenAPI `EmployeeProfile`). `id` is Keka's employee GUID (what webhooks name
/// and the API is read by); `employee_number` is the company-assigned number.
pub fn employee(id: &str, employee_number: &str, first_name: &str, last_name: &str) -> Value {
    assert!(
        is_guid(id),
        "Keka employee ids are GUIDs (36 characters), not {id:?}"
    );
    json!({
        "id": id,
        "employeeNumber": employee_number,
        "firstName": first_name,
        "middleName": null,
        "lastName": last_name,
        "displayName": format!("{first_name} {last_name}"),
        "email": null,
        "personalEmail": null,
        "city": null,
        "countryCode": null,
        "jobTitle": null,
        "secondaryJobTitle": null,
        "reportsTo": null,
        "l2Manager": null,
        "dottedLineManager": null,
        "timeType": 0,
        "workerType": 1,
        "joiningDate": "2024-01-15T00:00:00",
        "exitDate": null,
        "employmentStatus": 0,
        "accountStatus": 1,
        "exitStatus": null,
        "exitType": null,
        "exitReason": null,
        "currentAddress": null,
        "groups": [],
        "customFields": [],
    })
}

/// Whether `text` is a GUID as Keka writes them: `8-4-4-4-12` hex digits.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Keka's response envelope ([S] OpenAPI `EmployeeProfileResponse`, used for 404 too).
fn envelope(status: StatusCode, data: Value, message: Option<&str>) -> Response {
    let errors: Vec<&str> = message.into_iter().collect();
    (
        status,
        Json(json!({
            "succeeded": status.is_success(),
            "message": message,
            "errors": errors,
            "data": data,
        })),
    )
        .into_response()
}

/// 400 for a request no source says Keka takes [U].
fn refused(message: &str) -> Response {
    envelope(StatusCode::BAD_REQUEST, Value::Null, Some(message))
}

async fn token(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let oauth_error =
        |error: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    // [S] "form-url encoded in the body".
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Some(form) = form_encoded
        .then(|| serde_urlencoded_pairs(&body))
        .flatten()
    else {
        return oauth_error("invalid_request");
    };
    let field = |key: &str| form.get(key).map(String::as_str);
    // [S] OpenAPI example: 400 {"error": "unsupported_grant_type"}.
    if field("grant_type") != Some("kekaapi") {
        return oauth_error("unsupported_grant_type");
    }
    // [S] scope `kekaapi`; [U] the error names.
    if field("scope") != Some("kekaapi") {
        return oauth_error("invalid_scope");
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return oauth_error("invalid_client");
    }
    // [S] the key's form field is `api_key` (some integration guides write `apikey`: refused).
    if field("api_key") != Some(API_KEY) {
        return oauth_error("invalid_grant");
    }
    // [S] OpenAPI example answer.
    Json(json!({
        "access_token": ACCESS_TOKEN,
        "expires_in": 86400,
        "token_type": "Bearer",
        "scope": "kekaapi",
    }))
    .into_response()
}

/// A form body as a map; `None` when it is not one.
fn serde_urlencoded_pairs(body: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut pairs = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        pairs.insert(form_decode(key)?, form_decode(value)?);
    }
    Some(pairs)
}

fn form_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        bytes.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = (input.next()? as char).to_digit(16)?;
                let low = (input.next()? as char).to_digit(16)?;
                u8::try_from(high * 16 + low).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}

/// 401 without the bearer token ([S] OpenAPI: 401 Unauthorized, no body), 429 past the rate
/// limit ([O]).
fn gate(state: &State, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(ACCESS_TOKEN) {
        return Some(StatusCode::UNAUTHORIZED.into_response());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut shared = lock(state);
    let window = shared.tables.entry("keka".into()).or_default();
    let start = window.get("window_start").and_then(Value::as_u64);
    let count = window
        .get("window_count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // "Rate limits are enforced and automatically refilled in 60-second intervals."
    let (start, count) = match start {
        Some(start) if now < start + 60 => (start, count + 1),
        _ => (now, 1),
    };
    window.insert("window_start".into(), json!(start));
    window.insert("window_count".into(), json!(count));
    (count > RATE_LIMIT_PER_MINUTE).then(|| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "rateLimitExceeded"})),
        )
            .into_response()
    })
}

/// 400 for a query parameter the endpoint does not document.
fn undocumented(query: &HashMap<String, String>, documented: &[&str]) -> Option<Response> {
    query
        .keys()
        .find(|key| !documented.contains(&key.as_str()))
        .map(|key| refused(&format!("the query parameter {key} is not documented here")))
}

async fn read(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = gate(&state, &headers) {
        return refusal;
    }
    // [S] `GET /hris/employees/{id}` documents no query parameter.
    if let Some(refusal) = undocumented(&query, &[]) {
        return refusal;
    }
    // [O] the webhook's employee identifier is a GUID and [S] it is the record's `id`; no
    // source says an employee number (or anything else) reads a record [U].
    if !is_guid(&id) {
        return refused(&format!(
            "The value '{id}' is not a valid employee identifier."
        ));
    }
    let shared = lock(&state);
    match shared.employees.get(&id) {
        Some(record) => envelope(StatusCode::OK, record.clone(), None),
        // [S] OpenAPI: 404 answers the same envelope.
        None => envelope(
            StatusCode::NOT_FOUND,
            Value::Null,
            Some("Employee not found"),
        ),
    }
}

async fn list(
    Extract(state): Extract<State>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = gate(&state, &headers) {
        return refusal;
    }
    // [S] the documented parameters; the emulator models the filters it can, and refuses the
    // ones it cannot rather than ignore them.
    let documented = [
        "employeeIds",
        "employeeNumbers",
        "employmentStatus",
        "pageNumber",
        "pageSize",
    ];
    if let Some(key) = ["inProbation", "inNoticePeriod", "lastModified"]
        .iter()
        .find(|key| query.contains_key(**key))
    {
        return refused(&format!("the emulator does not model {key}"));
    }
    if let Some(refusal) = undocumented(&query, &documented) {
        return refusal;
    }
    let number = |key: &str, default: usize| match query.get(key) {
        None => Some(default),
        Some(text) => text.parse::<usize>().ok().filter(|n| *n >= 1),
    };
    // [S] "Default is 100. Max is 200"; [U] a larger page is refused, not clamped.
    let (Some(page_number), Some(page_size)) = (number("pageNumber", 1), number("pageSize", 100))
    else {
        return refused("pageNumber and pageSize are whole numbers from 1");
    };
    if page_size > 200 {
        return refused("pageSize is at most 200");
    }
    let list = |key: &str| -> Option<Vec<String>> {
        query
            .get(key)
            .map(|text| text.split(',').map(|s| s.trim().to_owned()).collect())
    };
    // [S] "allowed values are Working, Relieved" (employmentStatus 0 and 1).
    let statuses = match list("employmentStatus") {
        None => None,
        Some(words) => {
            let mut codes = Vec::new();
            for word in words {
                match word.as_str() {
                    "Working" => codes.push(0),
                    "Relieved" => codes.push(1),
                    _ => return refused("employmentStatus takes Working, Relieved"),
                }
            }
            Some(codes)
        }
    };
    let ids = list("employeeIds");
    let numbers = list("employeeNumbers");
    let shared = lock(&state);
    let matching: Vec<&Value> = shared
        .employees
        .values()
        .filter(|record| {
            let field = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_owned);
            ids.as_ref()
                .is_none_or(|ids| field("id").is_some_and(|id| ids.contains(&id)))
                && numbers.as_ref().is_none_or(|numbers| {
                    field("employeeNumber").is_some_and(|n| numbers.contains(&n))
                })
                && statuses.as_ref().is_none_or(|codes| {
                    record
                        .get("employmentStatus")
                        .and_then(Value::as_i64)
                        .is_some_and(|code| codes.contains(&code))
                })
        })
        .collect();
    let total = matching.len();
    let pages = total.div_ceil(page_size);
    let data: Vec<&Value> = matching
        .into_iter()
        .skip((page_number - 1) * page_size)
        .take(page_size)
        .collect();
    // [S] OpenAPI `EmployeeProfilePagedResponse`; [U] the page links are relative here.
    let link = |n: usize| format!("{API}/hris/employees?pageNumber={n}&pageSize={page_size}");
    Json(json!({
        "succeeded": true,
        "message": null,
        "errors": [],
        "data": data,
        "pageNumber": page_number,
        "pageSize": page_size,
        "firstPage": link(1),
        "lastPage": link(pages.max(1)),
        "totalPages": pages,
        "totalRecords": total,
        "nextPage": (page_number < pages).then(|| link(page_number + 1)),
        "previousPage": (page_number > 1).then(|| link(page_number - 1)),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::{form_decode, is_guid};

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("8d04399f-8057-4b0d-ab0f-d9b9a5fb0376"));
        assert!(!is_guid("EMP001"));
        assert!(!is_guid("8d04399f80574b0dab0fd9b9a5fb0376"));
        assert!(!is_guid("8d04399f-8057-4b0d-ab0f-d9b9a5fb037g"));
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(form_decode("a%2Bb+c").as_deref(), Some("a+b c"));
        assert_eq!(form_decode("%zz"), None);
    }
}
