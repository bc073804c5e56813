//! `POST /v1.0/$batch`: up to 20 inner requests, each dispatched through the same pipeline as a
//! top-level request (auth inherited from the batch, faults drawn per inner request, logged with
//! `in_batch`). Inner requests run in request order; one whose `dependsOn` names a request that
//! did not succeed is answered 424 without running. The batch itself answers 200 whenever its
//! payload is well formed, whatever its inner requests answered.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use super::routes::{Req, Resp};
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

/// `/users/x?$select=id`, `users/x`, `/v1.0/users/x` or an absolute Graph url -> path and query.
fn split_url(url: &str) -> (String, Option<String>) {
    let mut rest = url;
    if let Some((_, after_scheme)) = rest.split_once("://") {
        rest = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    }
    let rest = rest.trim_start_matches('/');
    let rest = rest.strip_prefix("v1.0/").unwrap_or(rest);
    match rest.split_once('?') {
        Some((path, query)) => (
            path.to_owned(),
            Some(query.to_owned()).filter(|q| !q.is_empty()),
        ),
        None => (rest.to_owned(), None),
    }
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
    let (path, query) = split_url(url);
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
    if let Some(unknown) = depends_on.iter().find(|d| !seen.contains(d)) {
        return Err(invalid(&format!(
            "Invalid batch payload format: request '{id}' depends on '{unknown}', which is not an earlier request of the batch."
        )));
    }
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
        if resp.body.is_some() {
            headers.insert("Content-Type".to_owned(), json!("application/json"));
        }
        for (name, value) in &resp.headers {
            headers.insert(name.clone(), Value::String(value.clone()));
        }
        let mut entry = Map::new();
        entry.insert("id".to_owned(), Value::String(item.id));
        entry.insert("status".to_owned(), json!(resp.status.as_u16()));
        entry.insert("headers".to_owned(), Value::Object(headers));
        if let Some(body) = resp.body {
            entry.insert("body".to_owned(), body);
        }
        responses.push(Value::Object(entry));
    }
    Resp::json(StatusCode::OK, json!({"responses": responses}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_urls_are_relative_to_v1() {
        assert_eq!(
            split_url("/users/42?$select=id"),
            ("users/42".to_owned(), Some("$select=id".to_owned()))
        );
        assert_eq!(split_url("users"), ("users".to_owned(), None));
        assert_eq!(split_url("/v1.0/users/42"), ("users/42".to_owned(), None));
        assert_eq!(
            split_url("https://graph.microsoft.com/v1.0/groups/g/members/$ref"),
            ("groups/g/members/$ref".to_owned(), None)
        );
    }
}
