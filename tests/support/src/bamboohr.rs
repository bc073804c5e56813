//! The BambooHR API emulator: the paths under a source's `base_url`
//! (`https://<company>.bamboohr.com/api/v1`).
//!
//! - Every request needs HTTP Basic auth with the API key as user (any password), else 401;
//!   the key is [`API_KEY`] unless `tables["bamboohr"]["api_key"]` holds another string.
//! - Reads need `Accept: application/json` (BambooHR answers XML otherwise): 406 without it.
//! - `GET /employees/{id}?fields=a,b&onlyCurrent=false`: `id` plus the requested fields the
//!   record has (BambooHR returns only `id` when no fields are asked for); 404 for an
//!   unknown id.
//! - `GET /employees/{id}/tables/{table}`: the rows in `tables[table][id]` (a JSON array;
//!   `[]` when none); 404 for an unknown employee; 403 for a table made unreadable with
//!   [`forbid_table`].
//! - `GET /employees/changed?since=<ISO 8601>`: `{latest, employees: {id: {id, action,
//!   lastChanged}}}` from [`Shared::changes`](crate::Shared::changes) strictly after
//!   `since`; `latest` is the newest change listed (absent when none); 400 without a
//!   readable `since`.
//! - `POST /employees/{id}` with a JSON object: the fields are applied to the record and the
//!   body recorded in `written`; 404 for an unknown id.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::{Emulator, State, basic_auth_is, error, lock};

/// The API key the emulator accepts unless told otherwise.
pub const API_KEY: &str = "key";

pub fn router(state: State) -> Router {
    let read = state.clone();
    let write = state.clone();
    let table = state.clone();
    let changed = state;
    Router::new()
        .route(
            "/employees/changed",
            get(
                move |headers: HeaderMap, query: Query<HashMap<String, String>>| {
                    changed_employees(changed, headers, query)
                },
            ),
        )
        .route(
            "/employees/{id}",
            get(
                move |headers: HeaderMap,
                      Path(id): Path<String>,
                      query: Query<HashMap<String, String>>| {
                    get_employee(read, headers, id, query)
                },
            )
            .post(
                move |headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes| {
                    update_employee(write, headers, id, body)
                },
            ),
        )
        .route(
            "/employees/{id}/tables/{table}",
            get(
                move |headers: HeaderMap, Path((id, name)): Path<(String, String)>| {
                    get_table(table, headers, id, name)
                },
            ),
        )
}

/// 401 for a wrong or missing API key.
fn refuse(state: &State, headers: &HeaderMap) -> Option<Response> {
    let key = lock(state)
        .tables
        .get("bamboohr")
        .and_then(|t| t.get("api_key"))
        .and_then(Value::as_str)
        .unwrap_or(API_KEY)
        .to_owned();
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (!basic_auth_is(authorization, &key, None))
        .then(|| error(StatusCode::UNAUTHORIZED, "invalid API key"))
}

/// 406 unless the client asks for JSON.
fn not_json(headers: &HeaderMap) -> Option<Response> {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    (!accept.contains("application/json")).then(|| {
        error(
            StatusCode::NOT_ACCEPTABLE,
            "this emulator answers JSON only: send Accept: application/json",
        )
    })
}

async fn get_employee(
    state: State,
    headers: HeaderMap,
    id: String,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = refuse(&state, &headers).or_else(|| not_json(&headers)) {
        return refused;
    }
    let shared = lock(&state);
    let Some(record) = shared.employees.get(&id) else {
        return error(StatusCode::NOT_FOUND, "employee not found");
    };
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.clone()));
    let fields = query.get("fields").map(String::as_str).unwrap_or_default();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if let Some(value) = record.get(field) {
            out.insert(field.to_owned(), value.clone());
        }
    }
    Json(Value::Object(out)).into_response()
}

async fn get_table(state: State, headers: HeaderMap, id: String, name: String) -> Response {
    if let Some(refused) = refuse(&state, &headers).or_else(|| not_json(&headers)) {
        return refused;
    }
    let shared = lock(&state);
    if !shared.employees.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, "employee not found");
    }
    let forbidden = shared
        .tables
        .get("bamboohr")
        .is_some_and(|t| t.contains_key(&format!("forbid:{name}")));
    if forbidden {
        return error(
            StatusCode::FORBIDDEN,
            "the API user does not have access to this table",
        );
    }
    let rows = shared
        .tables
        .get(&name)
        .and_then(|table| table.get(&id))
        .cloned()
        .unwrap_or_else(|| json!([]));
    Json(rows).into_response()
}

async fn changed_employees(
    state: State,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = refuse(&state, &headers).or_else(|| not_json(&headers)) {
        return refused;
    }
    let Some(since) = query.get("since").and_then(|s| unix_seconds(s)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "since is required, an ISO 8601 date and time",
        );
    };
    let shared = lock(&state);
    let mut employees = Map::new();
    let mut latest: Option<(i64, String)> = None;
    for (id, action, at) in &shared.changes {
        let Some(seconds) = unix_seconds(at) else {
            continue;
        };
        if seconds <= since {
            continue;
        }
        employees.insert(
            id.clone(),
            json!({"id": id, "action": action, "lastChanged": at}),
        );
        if latest.as_ref().is_none_or(|(newest, _)| seconds >= *newest) {
            latest = Some((seconds, at.clone()));
        }
    }
    let mut body = Map::new();
    if let Some((_, at)) = latest {
        body.insert("latest".into(), Value::String(at));
    }
    body.insert("employees".into(), Value::Object(employees));
    Json(Value::Object(body)).into_response()
}

async fn update_employee(
    state: State,
    headers: HeaderMap,
    id: String,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = refuse(&state, &headers) {
        return refused;
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object of field names and values",
        );
    };
    let mut shared = lock(&state);
    let Some(Value::Object(record)) = shared.employees.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "employee not found");
    };
    for (name, value) in &fields {
        record.insert(name.clone(), value.clone());
    }
    shared.written.push((id, Value::Object(fields)));
    StatusCode::OK.into_response()
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM|±HHMM)`.
pub fn unix_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    let number = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let mut rest = text.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = fraction.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = rest.get(1..)?.replace(':', "");
            if zone.len() != 4 || !zone.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i64 = zone.get(..2)?.parse().ok()?;
            let minutes: i64 = zone.get(2..)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// An active BambooHR employee as `GET /employees/{id}` has it (values are strings, as
/// BambooHR sends them; empty dates are `0000-00-00`).
pub fn employee(id: &str, first_name: &str, last_name: &str) -> Value {
    json!({
        "id": id,
        "firstName": first_name,
        "lastName": last_name,
        "middleName": null,
        "preferredName": null,
        "workEmail": null,
        "homeEmail": null,
        "status": "Active",
        "employmentHistoryStatus": "Full-Time",
        "hireDate": "2026-01-05",
        "terminationDate": "0000-00-00",
        "jobTitle": null,
        "department": null,
        "division": null,
        "location": null,
        "country": null,
        "supervisorEId": null,
        "supervisorId": null,
        "employeeNumber": null,
    })
}

/// Sets the rows of the employee's `employmentStatus` table (`[{date, employmentStatus,
/// terminationTypeId, terminationReasonId, ...}]`).
pub fn put_employment_status(emulator: &Emulator, id: &str, rows: Value) {
    emulator
        .state()
        .tables
        .entry("employmentStatus".into())
        .or_default()
        .insert(id.to_owned(), rows);
}

/// Records a change for the change feed (`action`: Inserted, Updated or Deleted; `at`:
/// RFC 3339).
pub fn record_change(emulator: &Emulator, id: &str, action: &str, at: &str) {
    emulator
        .state()
        .changes
        .push((id.to_owned(), action.to_owned(), at.to_owned()));
}

/// Makes `GET /employees/{id}/tables/{table}` answer 403, as for an API user without access
/// to the table.
pub fn forbid_table(emulator: &Emulator, table: &str) {
    emulator
        .state()
        .tables
        .entry("bamboohr".into())
        .or_default()
        .insert(format!("forbid:{table}"), Value::Bool(true));
}

/// Makes the emulator accept another API key.
pub fn set_api_key(emulator: &Emulator, key: &str) {
    emulator
        .state()
        .tables
        .entry("bamboohr".into())
        .or_default()
        .insert("api_key".into(), Value::String(key.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

    #[test]
    fn reads_iso_8601_instants() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2026-01-31T18:42:00+00:00"),
            Some(1_769_884_920)
        );
        assert_eq!(
            unix_seconds("2026-01-31T19:42:00+0100"),
            Some(1_769_884_920)
        );
        assert_eq!(
            unix_seconds("2026-01-31T18:42:00.123Z"),
            Some(1_769_884_920)
        );
        assert_eq!(unix_seconds("2026-01-31"), None);
        assert_eq!(unix_seconds("yesterday"), None);
    }
}
