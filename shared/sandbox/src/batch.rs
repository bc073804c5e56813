//! `POST /v1.0/$batch`: up to 20 inner requests, validated as a whole before any runs, each then
//! dispatched through the same pipeline as a top-level request (auth inherited from the batch,
//! write quota and faults per inner request, logged with `in_batch`). Inner requests run in
//! request order, a request after those it depends on; one whose `dependsOn` names a request
//! that did not succeed is answered 424 without running. The batch itself answers 200 whenever
//! its payload is well formed, whatever its inner requests answered
//! (learn.microsoft.com/graph/json-batching).

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use super::routes::{Body, Req, Resp};
use super::{LoggedRequest, Shared};

/// Graph's limit on requests per batch.
pub(crate) const MAX_REQUESTS: usize = 20;

struct Item {
    id: String,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn invalid(message: &str) -> Resp {
    Resp::error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// `/users/x?$select=id` or `users/x` -> path and query. Only relative urls are accepted
/// (learn.microsoft.com/graph/json-batching: "url: the relative resource URL").
fn split_url(url: &str) -> Option<(String, Option<String>)> {
    if url.contains("://") {
        return None;
    }
    let rest = url.trim_start_matches('/');
    Some(match rest.split_once('?') {
        Some((path, query)) => (
            path.to_owned(),
            Some(query.to_owned()).filter(|q| !q.is_empty()),
        ),
        None => (rest.to_owned(), None),
    })
}

fn parse_item(value: &Value, seen: &[String]) -> Result<Item, Resp> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("Invalid batch payload format."))?;
    let id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(invalid(
                "Invalid batch payload format: every request needs an 'id'.",
            ));
        }
    };
    if seen.contains(&id) {
        return Err(invalid(&format!(
            "Invalid batch payload format: the request id '{id}' is used twice."
        )));
    }
    let method = obj
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        .ok_or_else(|| {
            invalid(&format!(
                "Invalid batch payload format: request '{id}' has no valid 'method'."
            ))
        })?;
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            invalid(&format!(
                "Invalid batch payload format: request '{id}' has no 'url'."
            ))
        })?;
    let (path, query) = split_url(url).ok_or_else(|| {
        invalid(&format!(
            "Invalid request: the url of request '{id}' must be relative to the version, e.g. /users, not '{url}'."
        ))
    })?;
    let mut headers = HeaderMap::new();
    if let Some(given) = obj.get("headers") {
        let given = given.as_object().ok_or_else(|| {
            invalid(&format!(
                "Invalid batch payload format: the headers of request '{id}' must be an object."
            ))
        })?;
        for (name, value) in given {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value),
            ) {
                headers.insert(name, value);
            }
        }
    }
    let body = obj.get("body").filter(|b| !b.is_null()).cloned();
    // Graph validates the whole batch first: a write step needs a body and its Content-Type, even
    // for an action that takes no parameters (revokeSignInSessions), or nothing runs
    // (microsoftgraph/msgraph-sdk-dotnet#2628; Softeria/ms-365-mcp-server#683).
    let write = matches!(method, Method::POST | Method::PATCH | Method::PUT);
    if (write || body.is_some()) && (body.is_none() || !headers.contains_key(header::CONTENT_TYPE))
    {
        return Err(invalid(&format!(
            "Write request id : {id} does not contain Content-Type header or body."
        )));
    }
    let depends_on = match obj.get("dependsOn") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|d| match d {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(&format!(
                    "Invalid batch payload format: 'dependsOn' of request '{id}'."
                ))
            })?,
        Some(_) => {
            return Err(invalid(&format!(
                "Invalid batch payload format: 'dependsOn' of request '{id}'."
            )));
        }
    };
    Ok(Item {
        id,
        method,
        path,
        query,
        headers,
        body,
        depends_on,
    })
}

pub(crate) fn run(shared: &Shared, outer: &Req) -> Resp {
    let payload: Value = match serde_json::from_slice(&outer.body) {
        Ok(v) => v,
        Err(_) => return invalid("Invalid batch payload format."),
    };
    let Some(requests) = payload.get("requests").and_then(Value::as_array) else {
        return invalid("Invalid batch payload format: a 'requests' array is required.");
    };
    if requests.is_empty() {
        return invalid("Invalid batch payload format: the batch has no requests.");
    }
    if requests.len() > MAX_REQUESTS {
        return invalid(&format!(
            "Number of requests inside batch exceeds the limit. ({} requests; at most {MAX_REQUESTS})",
            requests.len()
        ));
    }
    let mut items = Vec::with_capacity(requests.len());
    let mut seen = Vec::with_capacity(requests.len());
    for request in requests {
        match parse_item(request, &seen) {
            Ok(item) => {
                seen.push(item.id.clone());
                items.push(item);
            }
            Err(resp) => return resp,
        }
    }
    let items = match run_order(items) {
        Ok(items) => items,
        Err(resp) => return resp,
    };

    let mut statuses: Vec<(String, u16)> = Vec::with_capacity(items.len());
    let mut responses = Vec::with_capacity(items.len());
    for item in items {
        let failed = item.depends_on.iter().find(|d| {
            statuses
                .iter()
                .any(|(id, status)| id == *d && !(200..300).contains(status))
        });
        let resp = match failed {
            Some(dependency) => {
                let resp = Resp::error(
                    StatusCode::FAILED_DEPENDENCY,
                    "FailedDependency",
                    &format!(
                        "The request '{}' depends on request '{dependency}', which failed.",
                        item.id
                    ),
                );
                shared.count(&item.method, false);
                shared.record(LoggedRequest {
                    method: item.method.to_string(),
                    path: format!("/v1.0/{}", item.path),
                    query: item.query.clone(),
                    status: resp.status.as_u16(),
                    faulted: false,
                    in_batch: true,
                    at: jiff::Timestamp::now(),
                });
                resp
            }
            None => {
                let mut headers = item.headers.clone();
                for inherited in [header::AUTHORIZATION, header::HOST] {
                    if let (false, Some(value)) = (
                        headers.contains_key(&inherited),
                        outer.headers.get(&inherited),
                    ) {
                        headers.insert(inherited, value.clone());
                    }
                }
                let body = match &item.body {
                    None => Bytes::new(),
                    Some(Value::String(s)) => Bytes::from(s.clone()),
                    Some(v) => Bytes::from(v.to_string()),
                };
                shared.handle(Req {
                    method: item.method.clone(),
                    path: item.path.clone(),
                    query: item.query.clone(),
                    headers,
                    body,
                    base: outer.base.clone(),
                    in_batch: true,
                })
            }
        };
        statuses.push((item.id.clone(), resp.status.as_u16()));
        let mut headers = Map::new();
        match &resp.body {
            Body::Json(_) => {
                headers.insert("Content-Type".to_owned(), json!("application/json"));
            }
            Body::Text(_) => {
                headers.insert("Content-Type".to_owned(), json!("text/plain"));
            }
            Body::None => {}
        }
        for (name, value) in &resp.headers {
            headers.insert(name.clone(), Value::String(value.clone()));
        }
        let mut entry = Map::new();
        entry.insert("id".to_owned(), Value::String(item.id));
        entry.insert("status".to_owned(), json!(resp.status.as_u16()));
        entry.insert("headers".to_owned(), Value::Object(headers));
        match resp.body {
            Body::Json(body) => {
                entry.insert("body".to_owned(), body);
            }
            Body::Text(text) => {
                entry.insert("body".to_owned(), Value::String(text));
            }
            Body::None => {}
        }
        responses.push(Value::Object(entry));
    }
    Resp::json(StatusCode::OK, json!({"responses": responses}))
}

/// The requests in an order that runs each after those it depends on (request order among
/// the free ones). A `dependsOn` naming no request of the batch, or a cycle, refuses the batch.
fn run_order(items: Vec<Item>) -> Result<Vec<Item>, Resp> {
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    for item in &items {
        if let Some(unknown) = item.depends_on.iter().find(|d| !ids.contains(d)) {
            return Err(invalid(&format!(
                "Invalid batch payload format: request '{}' depends on '{unknown}', which is not a request of the batch.",
                item.id
            )));
        }
    }
    let mut pending: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    let mut done: Vec<String> = Vec::with_capacity(pending.len());
    let mut ordered = Vec::with_capacity(pending.len());
    while ordered.len() < pending.len() {
        let ready = pending.iter().position(|slot| {
            slot.as_ref()
                .is_some_and(|item| item.depends_on.iter().all(|d| done.contains(d)))
        });
        let Some(index) = ready else {
            return Err(invalid(
                "Invalid batch payload format: the requests' dependsOn form a cycle.",
            ));
        };
        if let Some(item) = pending[index].take() {
            done.push(item.id.clone());
            ordered.push(item);
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_urls_are_relative() {
        assert_eq!(
            split_url("/users/42?$select=id"),
            Some(("users/42".to_owned(), Some("$select=id".to_owned())))
        );
        assert_eq!(split_url("users"), Some(("users".to_owned(), None)));
        assert_eq!(
            split_url("https://graph.microsoft.com/v1.0/groups/g/members/$ref"),
            None
        );
    }
}
