//! The HiBob (Bob) API emulator: the documented people reads and the email write, under
//! the base URL a source is configured with (`https://api.hibob.com/v1` in production).
//!
//! - `POST /people/{id}` with `{"fields": [...], "humanReadable": ...}`: the employee's
//!   requested fields, each under its slash key (`"/work/title": {"value": ...}`) and in
//!   nested category objects (`"work": {"title": ...}`, root fields at the top), as Bob
//!   answers. `humanReadable: "APPEND"` adds a `humanReadable` node with list items' names;
//!   `"REPLACE"` answers the names instead of the machine values. Fields not stored are left
//!   out (Bob omits what the service user may not see). 404 for an unknown id.
//! - `POST /people/search` with `filters` (`root.id` / `root.email`, `equals`) and
//!   `showInactive` (default false: employees whose `internal.status` is `Inactive` are left
//!   out): `{"employees": [...]}`, all in one answer (no pagination).
//! - `PUT /people/{id}/email` with `{"email": "..."}`: recorded in `written` and applied.
//!
//! Every call needs `Authorization: Basic base64(SERVICE_USER_ID:TOKEN)`, else 401.
//!
//! As strict as Bob's documentation, or stricter where it says nothing:
//!
//! | rule | source |
//! |---|---|
//! | employees are keyed by backend ids of 19 digits (`3332883884017713238`); fixtures refuse others | apidocs.hibob.com/reference/post_people-identifier (path param: "the backend-id of the Employee", example from a profile URL) |
//! | the path identifier is a backend id or an email; anything else is 400 (stricter: no source says another form works) | same page: "Alternatively you can provide the employee's email address" |
//! | `fields` are dot-notation ids, at most 400; ids Bob does not know, and fields the service user may not see, are left out silently (200) | apidocs.hibob.com/docs/people-read-api-contract ("Silent omission", "at most 400 field IDs") |
//! | `humanReadable` is `APPEND` or `REPLACE`; anything else is 400 | apidocs.hibob.com/docs/how-to-work-with-lists-public-api ("Possible values") |
//! | search: at most one filter, on `root.id` or `root.email`, operator `equals`; else 400 | people-read-api-contract ("at most one filter object", "operator must be equals", "invalid filter parameters return 400") |
//! | `showInactive` is a search parameter (default false: active employees only) | people-read-api-contract |
//! | `work.employeeIdInCompany` (the *Employee ID* HR gives) is a number | apidocs.hibob.com/docs/fields-metadata (field types) [U: its exact type per tenant] |
//!
//! Records are stored in Bob's nested shape (`{"id", "firstName", "work": {...}, ...}`); the
//! names of list items (what `humanReadable` shows) are stored under `humanReadable` in the
//! same shape.

use axum::Router;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use serde_json::{Map, Value, json};

use crate::{Emulator, State, basic_auth_is, error, lock};

/// The service user id the emulator accepts.
pub const SERVICE_USER_ID: &str = "SERVICE-4242";
/// The service user's token the emulator accepts.
pub const TOKEN: &str = "bob-token-0123456789";

const OPTIONS: &str = "hibob.options";

pub fn router(state: State) -> Router {
    Router::new()
        .route("/people/search", post(search))
        .route("/people/{id}", post(read))
        .route("/people/{id}/email", put(set_email))
        .with_state(state)
}

/// The `n`th backend id, 19 digits like Bob's (`3332883800000000042` for 42).
pub fn backend_id(n: u64) -> String {
    format!("33328838{n:011}")
}

/// Whether `id` has the shape of a Bob backend id: 19 digits.
pub fn is_backend_id(id: &str) -> bool {
    id.len() == 19 && id.bytes().all(|b| b.is_ascii_digit())
}

/// An active employee with the basic fields, started 2024-01-15: `id` is the backend id (19
/// digits, see [`backend_id`]), `number` the *Employee ID* HR gave (`work.employeeIdInCompany`).
pub fn employee(id: &str, number: u64, first_name: &str, surname: &str) -> Value {
    assert!(
        is_backend_id(id),
        "Bob's backend ids have 19 digits (apidocs.hibob.com/reference/post_people-identifier): {id:?}"
    );
    json!({
        "id": id,
        "firstName": first_name,
        "surname": surname,
        "displayName": format!("{first_name} {surname}"),
        "work": {"startDate": "2024-01-15", "employeeIdInCompany": number},
        "internal": {"status": "Active", "lifecycleStatus": "employed"},
    })
}

/// Sets a field (dot notation: `work.title`, `root.email`) of a stored-shape record.
pub fn set(record: &mut Value, field: &str, value: Value) {
    set_path(record, &segments(field), value);
}

/// Sets the human-readable value (a list item's name) of a field.
pub fn set_human(record: &mut Value, field: &str, name: &str) {
    let mut path = vec!["humanReadable".to_owned()];
    path.extend(segments(field));
    set_path(record, &path, Value::String(name.to_owned()));
}

/// From now on, `POST /people/{id}` answers 404 for inactive employees (only the search
/// with `showInactive` finds them).
pub fn hide_inactive_from_single_reads(emulator: &Emulator) {
    emulator
        .state()
        .tables
        .entry(OPTIONS.to_owned())
        .or_default()
        .insert("singleReadHidesInactive".to_owned(), Value::Bool(true));
}

/// `root.email` -> [email]; `work.reportsTo` -> [work, reportsTo].
fn segments(field: &str) -> Vec<String> {
    let mut parts = field.split('.');
    let first = parts.next().unwrap_or_default();
    let mut out = Vec::new();
    if first != "root" {
        out.push(first.to_owned());
    }
    out.extend(parts.map(str::to_owned));
    out
}

fn get_path<'a>(record: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(record, |current, segment| current.get(segment))
        .filter(|value| !value.is_null())
}

fn set_path(record: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = record;
    for segment in parents {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Some(object) = current.as_object_mut() else {
            return;
        };
        current = object
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !current.is_object() {
        *current = Value::Object(Map::new());
    }
    if let Some(object) = current.as_object_mut() {
        object.insert(last.clone(), value);
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    basic_auth_is(header, SERVICE_USER_ID, Some(TOKEN))
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "Unauthorized")
}

fn is_inactive(record: &Value) -> bool {
    get_path(record, &segments("internal.status")).and_then(Value::as_str) == Some("Inactive")
}

/// The most field ids one read may ask for (people-read-api-contract).
pub const MAX_FIELDS: usize = 400;

/// What a read asks for: its dot-notation field ids (`None`: Bob's default set) and its
/// `humanReadable`; a request Bob refuses is the 400 to answer.
#[allow(clippy::result_large_err)]
fn read_request(body: &Value) -> Result<(Option<Vec<String>>, Option<String>), Response> {
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, message);
    let fields = match body.get("fields") {
        None | Some(Value::Null) => None,
        Some(Value::Array(fields)) => {
            if fields.len() > MAX_FIELDS {
                return Err(bad("at most 400 field IDs"));
            }
            let mut ids = Vec::new();
            for field in fields {
                let Some(id) = field.as_str() else {
                    return Err(bad("fields must be strings"));
                };
                // A slash-notation or unknown id is an invalid id: left out, silently.
                if !id.contains('/') {
                    ids.push(id.to_owned());
                }
            }
            Some(ids)
        }
        Some(_) => return Err(bad("fields must be an array of field IDs")),
    };
    let human = match body.get("humanReadable") {
        None | Some(Value::Null) => None,
        Some(Value::String(mode)) if mode == "APPEND" || mode == "REPLACE" => Some(mode.clone()),
        Some(_) => return Err(bad("humanReadable must be APPEND or REPLACE")),
    };
    Ok((fields, human))
}

/// The record as Bob answers a read of `fields`.
fn answer(record: &Value, fields: Option<&[String]>, human_readable: Option<&str>) -> Value {
    let default_fields: Vec<String>;
    let fields = match fields {
        Some(fields) => fields,
        None => {
            default_fields = [
                "root.id",
                "root.firstName",
                "root.surname",
                "root.displayName",
                "root.email",
                "work.startDate",
                "work.title",
                "work.department",
                "work.site",
            ]
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
            &default_fields
        }
    };
    let mut out = Value::Object(Map::new());
    let mut readable = Value::Object(Map::new());
    let human_path = |path: &[String]| {
        let mut full = vec!["humanReadable".to_owned()];
        full.extend_from_slice(path);
        full
    };
    for field in fields {
        let path = segments(field);
        let Some(machine) = get_path(record, &path) else {
            continue;
        };
        let human = get_path(record, &human_path(&path))
            .cloned()
            .unwrap_or_else(|| match machine {
                Value::String(_) | Value::Object(_) | Value::Array(_) => machine.clone(),
                other => Value::String(other.to_string()),
            });
        let value = match human_readable {
            Some("REPLACE") => human.clone(),
            _ => machine.clone(),
        };
        let slash = format!("/{}", field.replace('.', "/"));
        if let Some(object) = out.as_object_mut() {
            object.insert(slash, json!({"value": value.clone()}));
        }
        set_path(&mut out, &path, value);
        set_path(&mut readable, &path, human);
    }
    if let Some(id) = record.get("id")
        && let Some(object) = out.as_object_mut()
    {
        object.insert("id".to_owned(), id.clone());
    }
    if human_readable == Some("APPEND")
        && let Some(object) = out.as_object_mut()
    {
        object.insert("humanReadable".to_owned(), readable);
    }
    out
}

async fn read(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(value @ Value::Object(_)) => value,
            _ => return error(StatusCode::BAD_REQUEST, "Bad request"),
        }
    };
    if !is_backend_id(&id) && !id.contains('@') {
        return error(
            StatusCode::BAD_REQUEST,
            "identifier must be an employee's backend id or email",
        );
    }
    let (fields, human) = match read_request(&request) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let state = lock(&state);
    let hides_inactive = state
        .tables
        .get(OPTIONS)
        .and_then(|options| options.get("singleReadHidesInactive"))
        == Some(&Value::Bool(true));
    let found = state.employees.get(&id).or_else(|| {
        state
            .employees
            .values()
            .find(|record| record.get("email").and_then(Value::as_str) == Some(id.as_str()))
    });
    let Some(record) = found.filter(|record| !(hides_inactive && is_inactive(record))) else {
        return error(StatusCode::NOT_FOUND, "Employee not found");
    };
    axum::Json(answer(record, fields.as_deref(), human.as_deref())).into_response()
}

async fn search(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Bad request");
    };
    let (fields, human) = match read_request(&request) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let show_inactive = request
        .get("showInactive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut filters = Vec::new();
    if let Some(given) = request.get("filters") {
        let Some(given) = given.as_array().filter(|f| !f.is_empty()) else {
            return error(StatusCode::BAD_REQUEST, "filters must be a non-empty array");
        };
        if given.len() > 1 {
            return error(StatusCode::BAD_REQUEST, "at most one filter object");
        }
        for filter in given {
            let path = filter.get("fieldPath").and_then(Value::as_str);
            let operator = filter.get("operator").and_then(Value::as_str);
            let values: Vec<String> = filter
                .get("values")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            match (path, operator) {
                (Some(path @ ("root.id" | "root.email")), Some("equals")) if !values.is_empty() => {
                    filters.push((path.to_owned(), values));
                }
                _ => return error(StatusCode::BAD_REQUEST, "unsupported filter"),
            }
        }
    }
    let state = lock(&state);
    let employees: Vec<Value> = state
        .employees
        .values()
        .filter(|record| show_inactive || !is_inactive(record))
        .filter(|record| {
            filters.iter().all(|(path, values)| {
                get_path(record, &segments(path))
                    .and_then(Value::as_str)
                    .is_some_and(|v| values.iter().any(|wanted| wanted == v))
            })
        })
        .map(|record| answer(record, fields.as_deref(), human.as_deref()))
        .collect();
    axum::Json(json!({"employees": employees})).into_response()
}

async fn set_email(
    Extract(state): Extract<State>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    if !is_backend_id(&id) && !id.contains('@') {
        return error(
            StatusCode::BAD_REQUEST,
            "identifier must be an employee's backend id or email",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Bad request");
    };
    let Some(email) = request
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| e.contains('@'))
        .map(str::to_owned)
    else {
        return error(StatusCode::BAD_REQUEST, "email is required");
    };
    let mut state = lock(&state);
    let Some(record) = state.employees.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "Employee not found");
    };
    if record.get("email").and_then(Value::as_str) == Some(email.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    set(record, "root.email", Value::String(email));
    state.written.push((id, request));
    StatusCode::OK.into_response()
}
