//! The BambooHR API emulator, as strict as BambooHR's documentation: the paths under a
//! source's `base_url` (`https://<company>.bamboohr.com/api/v1`). What no source says
//! BambooHR takes is refused, so a connector that passes here asks only what BambooHR
//! documents.
//!
//! Sources, named beside each rule below:
//! - [O] BambooHR's OpenAPI, `specs/public.yaml` in github.com/BambooHR/bhr-api-python (the
//!   official SDK; the same reference as <https://documentation.bamboohr.com/reference>),
//!   <https://documentation.bamboohr.com/docs/list-of-field-names>, and BambooHR's "API Error
//!   Code Definitions" <https://bamboohr.screenstepslive.com/m/53907/l/587843-api-error-code-definitions>.
//! - [U] not documented anywhere read; chosen strict.
//!
//! Errors answer an empty body with the reason in `X-BambooHR-Error-Messsage` ([O] error
//! codes page: "the extra s in the message will be there").
//!
//! Routes:
//! - `GET /employees/{id}?fields=a,b&onlyCurrent=false`: `id` plus the requested fields.
//! - `GET /employees/{id}/tables/{table}`: the rows in `tables[table][id]` (`[]` when none);
//!   403 for a table made unreadable with [`forbid_table`].
//! - `GET /employees/changed?since=<ISO 8601>[&type=...]`: `{latest, employees: {id: {id,
//!   action, lastChanged}}}` from [`Shared::changes`](crate::Shared::changes) strictly after
//!   `since`.
//! - `POST /employees/{id}` with a JSON object: the fields are applied to the record and the
//!   body recorded in `written`; 200 with no body.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::{Emulator, State, basic_auth_is, lock};

/// The API key the emulator accepts unless told otherwise.
pub const API_KEY: &str = "key";

/// The header BambooHR puts its error message in (sic, [O]).
pub const ERROR_HEADER: &str = "X-BambooHR-Error-Messsage";

/// Fields per `GET /employees/{id}` ([O] "The maximum number of fields per request is 400").
pub const MAX_FIELDS: usize = 400;

/// The documented employee fields the emulator knows besides a record's own (custom) fields
/// ([O] list-of-field-names; a record's keys stand for the tenant's custom field aliases).
pub const FIELDS: &[&str] = &[
    "address1",
    "address2",
    "bestEmail",
    "city",
    "country",
    "dateOfBirth",
    "department",
    "displayName",
    "division",
    "employeeNumber",
    "employmentHistoryStatus",
    "firstName",
    "hireDate",
    "homeEmail",
    "jobTitle",
    "lastChanged",
    "lastName",
    "location",
    "middleName",
    "mobilePhone",
    "originalHireDate",
    "preferredName",
    "state",
    "status",
    "supervisor",
    "supervisorEId",
    "supervisorEmail",
    "supervisorId",
    "terminationDate",
    "workEmail",
    "workPhone",
];

/// The tables `GET /employees/{id}/tables/{table}` knows ([O] "e.g., jobInfo, compensation,
/// employmentStatus"; the others from list-of-field-names).
pub const TABLES: &[&str] = &[
    "compensation",
    "customBankDetails",
    "dependents",
    "emergencyContacts",
    "employmentStatus",
    "jobInfo",
];

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

/// An error as BambooHR answers it: the status, an empty body, the reason in
/// [`ERROR_HEADER`].
pub fn refused(status: StatusCode, message: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(message) {
        response.headers_mut().insert(ERROR_HEADER, value);
    }
    response
}

/// 401 for a wrong or missing API key ([O] Basic auth, the key as user, any password; 401
/// "Your API key is missing").
fn unauthorized(state: &State, headers: &HeaderMap) -> Option<Response> {
    let key = lock(state)
        .tables
        .get("bamboohr")
        .and_then(|t| t.get("api_key"))
        .and_then(Value::as_str)
        .unwrap_or(API_KEY)
        .to_owned();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (!basic_auth_is(authorization, &key, None))
        .then(|| refused(StatusCode::UNAUTHORIZED, "Invalid API key"))
}

/// 406 unless the client asks for JSON: BambooHR answers XML by default ([O] "This endpoint
/// can produce either JSON or XML"); this emulator speaks JSON only and refuses instead.
fn not_json(headers: &HeaderMap) -> Option<Response> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    (!accept.contains("application/json")).then(|| {
        refused(
            StatusCode::NOT_ACCEPTABLE,
            "this emulator answers JSON only: send Accept: application/json",
        )
    })
}

/// The first gate of every call: the key, then (reads) the JSON answer.
fn gate(state: &State, headers: &HeaderMap, read: bool) -> Option<Response> {
    unauthorized(state, headers).or_else(|| read.then(|| not_json(headers)).flatten())
}

/// 400 for a query parameter the endpoint does not document [U].
fn undocumented(query: &HashMap<String, String>, documented: &[&str]) -> Option<Response> {
    query
        .keys()
        .find(|key| !documented.contains(&key.as_str()))
        .map(|key| {
            refused(
                StatusCode::BAD_REQUEST,
                &format!("Unknown query parameter {key}"),
            )
        })
}

/// Employee ids are whole numbers ([O] "employeeId": "67890" in every sample); another id
/// is "the ID of the object specified in the request is invalid" → 404 ([O] error codes).
fn is_employee_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the tenant has `field`: a documented field, or one of the record's own.
fn known_field(record: &Value, field: &str) -> bool {
    FIELDS.contains(&field) || record.get(field).is_some()
}

async fn get_employee(
    state: State,
    headers: HeaderMap,
    id: String,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = gate(&state, &headers, true) {
        return refusal;
    }
    // [O] `fields` and `onlyCurrent` are the query parameters of get-employee.
    if let Some(refusal) = undocumented(&query, &["fields", "onlyCurrent"]) {
        return refusal;
    }
    // [O] the spec says both "default: firstName,lastName" and "all other named properties
    // are included only when explicitly requested": a request without fields is refused [U].
    let fields: Vec<&str> = query
        .get("fields")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if fields.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "fields is required by this emulator: name the fields to read",
        );
    }
    if fields.len() > MAX_FIELDS {
        return refused(
            StatusCode::BAD_REQUEST,
            "The request exceeded the maximum number of allowed fields (400)",
        );
    }
    // [O] `onlyCurrent` is a boolean.
    if let Some(flag) = query.get("onlyCurrent")
        && !matches!(flag.as_str(), "true" | "false")
    {
        return refused(StatusCode::BAD_REQUEST, "onlyCurrent is true or false");
    }
    if !is_employee_id(&id) {
        return refused(StatusCode::NOT_FOUND, "Invalid employee id");
    }
    let shared = lock(&state);
    let Some(record) = shared.employees.get(&id) else {
        return refused(StatusCode::NOT_FOUND, "Employee not found");
    };
    // [O] 406 "The request contains references to nonexistent fields".
    if let Some(unknown) = fields.iter().find(|f| !known_field(record, f)) {
        return refused(
            StatusCode::NOT_ACCEPTABLE,
            &format!("Invalid field: {unknown}"),
        );
    }
    // [O] "The `id` field is always present"; the requested fields follow, empty as null.
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.clone()));
    for field in fields {
        let value = record.get(field).cloned().unwrap_or(Value::Null);
        out.insert(field.to_owned(), value);
    }
    Json(Value::Object(out)).into_response()
}

async fn get_table(state: State, headers: HeaderMap, id: String, name: String) -> Response {
    if let Some(refusal) = gate(&state, &headers, true) {
        return refusal;
    }
    // [O] 404 "The employee or table does not exist".
    if !is_employee_id(&id) || !TABLES.contains(&name.as_str()) {
        return refused(StatusCode::NOT_FOUND, "Employee or table not found");
    }
    let shared = lock(&state);
    if !shared.employees.contains_key(&id) {
        return refused(StatusCode::NOT_FOUND, "Employee not found");
    }
    let forbidden = shared
        .tables
        .get("bamboohr")
        .is_some_and(|t| t.contains_key(&format!("forbid:{name}")));
    if forbidden {
        // [O] 403: "Verify your key belongs to an enabled user with the required access".
        return refused(
            StatusCode::FORBIDDEN,
            "You do not have access to this resource",
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
    if let Some(refusal) = gate(&state, &headers, true) {
        return refusal;
    }
    // [O] get-changed-employee-ids takes `since` (required) and `type`.
    if let Some(refusal) = undocumented(&query, &["since", "type"]) {
        return refusal;
    }
    // [O] 400 "The since parameter is missing, is not a valid ISO 8601 date, or the type
    // parameter is invalid"; [U] only the documented example's form is taken
    // (`2013-10-20T19:20:30+01:00`: seconds, then `Z` or an offset; no fraction).
    let Some(since_text) = query.get("since") else {
        return refused(StatusCode::BAD_REQUEST, "since is required");
    };
    let Some(since) = strict_instant(since_text) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "since is not a valid ISO 8601 date and time",
        );
    };
    let wanted = match query.get("type").map(String::as_str) {
        None | Some("all") => None,
        Some(kind @ ("inserted" | "updated" | "deleted")) => Some(kind.to_owned()),
        Some(_) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "type is inserted, updated, deleted or all",
            );
        }
    };
    let shared = lock(&state);
    let mut employees = Map::new();
    let mut latest: Option<i64> = None;
    for (id, action, at) in &shared.changes {
        // Whole seconds, as BambooHR writes them.
        let Some(seconds) = unix_seconds(at) else {
            continue;
        };
        if seconds <= since
            || wanted
                .as_ref()
                .is_some_and(|kind| !action.eq_ignore_ascii_case(kind))
        {
            continue;
        }
        employees.insert(
            id.clone(),
            json!({"id": id, "action": action, "lastChanged": rfc3339(seconds)}),
        );
        latest = latest.max(Some(seconds));
    }
    // [O] `latest` and `employees` are required; [U] with nothing changed, `latest` is the
    // `since` asked (nothing newer was seen).
    let latest = latest.map_or_else(|| since_text.clone(), rfc3339);
    Json(json!({"latest": latest, "employees": employees})).into_response()
}

async fn update_employee(
    state: State,
    headers: HeaderMap,
    id: String,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refusal) = gate(&state, &headers, false) {
        return refusal;
    }
    // [O] the body is JSON or XML; this emulator takes JSON.
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return refused(
            StatusCode::BAD_REQUEST,
            "send the fields as JSON (Content-Type: application/json)",
        );
    }
    // [O] 400 "Provided JSON is malformed".
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return refused(StatusCode::BAD_REQUEST, "Provided JSON is malformed");
    };
    if !is_employee_id(&id) {
        return refused(StatusCode::NOT_FOUND, "Invalid employee id");
    }
    let mut shared = lock(&state);
    let Some(record) = shared.employees.get(&id).cloned() else {
        return refused(StatusCode::NOT_FOUND, "Employee not found");
    };
    // [O] 406 "references to nonexistent fields".
    if let Some(unknown) = fields.keys().find(|f| !known_field(&record, f)) {
        return refused(
            StatusCode::NOT_ACCEPTABLE,
            &format!("Invalid field: {unknown}"),
        );
    }
    // [O] 409 "duplicate email" ("For employees, duplicate emails are not allowed").
    if let Some(mail) = fields.get("workEmail").and_then(Value::as_str) {
        let taken = shared.employees.iter().any(|(other, record)| {
            *other != id
                && record
                    .get("workEmail")
                    .and_then(Value::as_str)
                    .is_some_and(|theirs| theirs.eq_ignore_ascii_case(mail))
        });
        if taken {
            return refused(StatusCode::CONFLICT, "Duplicate email");
        }
    }
    if let Some(Value::Object(record)) = shared.employees.get_mut(&id) {
        for (name, value) in &fields {
            record.insert(name.clone(), value.clone());
        }
    }
    shared.written.push((id, Value::Object(fields)));
    // [O] "Employee updated successfully. No response body is returned."
    StatusCode::OK.into_response()
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS` then `Z` or `±HH:MM` / `±HHMM`, and
/// no fraction: the form of BambooHR's own examples.
pub fn strict_instant(text: &str) -> Option<i64> {
    let documented = text.as_bytes().get(10) == Some(&b'T')
        && !text.get(19..).is_some_and(|rest| rest.starts_with('.'));
    documented.then(|| unix_seconds(text)).flatten()
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM|±HHMM)` (the fraction
/// dropped).
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

/// `YYYY-MM-DDTHH:MM:SS+00:00`, as BambooHR writes `latest` and `lastChanged` ([O] sample).
pub fn rfc3339(seconds: i64) -> String {
    // Civil from days (Howard Hinnant's algorithm).
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// An active BambooHR employee as `GET /employees/{id}` has it (values are strings, as
/// BambooHR sends them; empty dates are `0000-00-00`). `id` is BambooHR's employee id, a
/// whole number ("67890" in BambooHR's samples).
pub fn employee(id: &str, first_name: &str, last_name: &str) -> Value {
    assert!(
        is_employee_id(id),
        "BambooHR employee ids are whole numbers, not {id:?}"
    );
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
/// RFC 3339, a fraction of a second ignored).
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
    use super::{rfc3339, strict_instant, unix_seconds};

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

    #[test]
    fn since_takes_the_documented_form_only() {
        assert_eq!(
            strict_instant("2013-10-20T19:20:30+01:00"),
            unix_seconds("2013-10-20T18:20:30Z")
        );
        assert_eq!(strict_instant("2026-01-31T18:42:00.123Z"), None);
        assert_eq!(strict_instant("2026-01-31 18:42:00 00:00"), None);
    }

    #[test]
    fn writes_instants_as_bamboohr_does() {
        assert_eq!(rfc3339(1_769_884_920), "2026-01-31T18:42:00+00:00");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00+00:00");
    }
}
