//! JSON batching: `POST /v1.0/$batch` with `{"requests": [{id, method, url, headers?, body?,
//! dependsOn?}]}`, at most 20 per batch; the answer is `{"responses": [{id, status, headers?, body?}]}`
//! in any order.
//!
//! - Requests linked by `dependsOn` (directly or through others) always travel in the same batch;
//!   a linked group larger than 20 is refused (`InvalidRequest`). Groups are packed in input order.
//! - Each inner request is throttled separately: inner 429/503/504 (and reference errors of
//!   lag-tolerant requests) are sent again in a smaller batch, alone, after the longest `Retry-After`
//!   among them (else backoff), until success or the policy's attempts are spent. A request that
//!   failed with 424 because a dependency is being retried is retried with it. `dependsOn` entries
//!   naming requests that already succeeded are dropped on the retry.
//! - The outer 200 never hides an inner failure: every [`GraphResponse`] carries its own status;
//!   results come back in input order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::GraphError;
use super::http::GraphClient;
use super::requests::{GraphRequest, GraphResponse, Method, absolute_refs, check_batch_ids};

/// Graph's limit of requests per `$batch`.
pub const MAX_BATCH: usize = 20;

#[derive(Deserialize)]
struct BatchResponseBody {
    responses: Vec<InnerResponse>,
}

#[derive(Deserialize)]
struct InnerResponse {
    id: String,
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

/// Splits request indices into batches of at most [`MAX_BATCH`], keeping every `dependsOn`-linked
/// group in one batch. Each batch lists indices in input order.
pub(crate) fn plan_chunks(requests: &[GraphRequest]) -> Result<Vec<Vec<usize>>, GraphError> {
    let index: HashMap<&str, usize> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    // Union-find over indices.
    let mut parent: Vec<usize> = (0..requests.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, r) in requests.iter().enumerate() {
        for d in &r.depends_on {
            if let Some(&j) = index.get(d.as_str()) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    // Groups in order of their first member.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    for i in 0..requests.len() {
        let r = root(&mut parent, i);
        let g = *group_of_root.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for group in groups {
        if group.len() > MAX_BATCH {
            return Err(GraphError::InvalidRequest(format!(
                "{} requests are linked by dependsOn; a batch holds at most {MAX_BATCH}",
                group.len()
            )));
        }
        if current.len() + group.len() > MAX_BATCH {
            chunks.push(std::mem::take(&mut current));
        }
        current.extend(group);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    for chunk in &mut chunks {
        chunk.sort_unstable();
    }
    Ok(chunks)
}

/// One inner request of the `$batch` body.
fn inner_request(request: &GraphRequest, in_round: &BTreeSet<&str>, api_base: &str) -> Value {
    let mut inner = Map::new();
    inner.insert("id".into(), json!(request.id));
    inner.insert("method".into(), json!(request.method.as_str()));
    let url = if request.url.starts_with('/') {
        request.url.clone()
    } else {
        format!("/{}", request.url)
    };
    inner.insert("url".into(), json!(url));
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        headers.insert(name.clone(), json!(value));
    }
    if request.low_priority {
        headers.insert("x-ms-throttle-priority".into(), json!("low"));
    }
    if let Some(body) = &request.body {
        if !headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            headers.insert("Content-Type".into(), json!("application/json"));
        }
        inner.insert("body".into(), absolute_refs(body, api_base));
    }
    if !headers.is_empty() {
        inner.insert("headers".into(), Value::Object(headers));
    }
    let depends: Vec<&str> = request
        .depends_on
        .iter()
        .map(String::as_str)
        .filter(|d| in_round.contains(d))
        .collect();
    if !depends.is_empty() {
        inner.insert("dependsOn".into(), json!(depends));
    }
    Value::Object(inner)
}

impl GraphClient {
    /// Sends `requests` as `$batch` calls of at most 20 and returns one response per request, in
    /// input order, each with its own status (check [`GraphResponse::is_success`] or
    /// [`GraphResponse::error`]). `Err` only when a whole batch call failed (after its own retries)
    /// or the requests cannot be batched (duplicate ids, unknown or oversized `dependsOn` groups).
    pub async fn batch(
        &self,
        requests: Vec<GraphRequest>,
    ) -> Result<Vec<GraphResponse>, GraphError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut requests = requests;
        if self.is_bulk() {
            for request in &mut requests {
                request.low_priority = true;
            }
        }
        check_batch_ids(&requests)?;
        let chunks = plan_chunks(&requests)?;
        let mut results: Vec<Option<GraphResponse>> = vec![None; requests.len()];
        for chunk in chunks {
            self.run_chunk(&requests, chunk, &mut results).await?;
        }
        results
            .into_iter()
            .map(|r| {
                r.ok_or_else(|| GraphError::Decode("a batched request got no response".into()))
            })
            .collect()
    }

    async fn run_chunk(
        &self,
        requests: &[GraphRequest],
        chunk: Vec<usize>,
        results: &mut [Option<GraphResponse>],
    ) -> Result<(), GraphError> {
        let policy = self.retry_policy().clone();
        let max_attempts = policy.max_attempts.max(1);
        let api_base = self.api_base().to_owned();
        let mut throttle_attempts: HashMap<usize, u32> = HashMap::new();
        let mut lag_retries: HashMap<usize, u32> = HashMap::new();
        let mut pending = chunk;
        let mut round = 0u32;
        loop {
            round += 1;
            let in_round: BTreeSet<&str> =
                pending.iter().map(|&i| requests[i].id.as_str()).collect();
            let body = json!({
                "requests": pending
                    .iter()
                    .map(|&i| inner_request(&requests[i], &in_round, &api_base))
                    .collect::<Vec<_>>()
            });
            let mut outer = GraphRequest::with_json(Method::POST, "/$batch", body);
            outer.low_priority = pending.iter().all(|&i| requests[i].low_priority);
            tracing::debug!(requests = pending.len(), round, "Graph $batch");
            let outer = self.send(&outer).await?;
            let parsed: BatchResponseBody = outer
                .body
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| GraphError::Decode(format!("$batch response: {e}")))?
                .ok_or_else(|| GraphError::Decode("$batch response has no body".into()))?;
            let mut by_id: HashMap<String, InnerResponse> = parsed
                .responses
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();

            let mut retry: BTreeSet<usize> = BTreeSet::new();
            let mut wait = Duration::ZERO;
            for &i in &pending {
                let request = &requests[i];
                let inner = by_id.remove(&request.id).ok_or_else(|| {
                    GraphError::Decode(format!(
                        "$batch response has no entry for request {:?}",
                        request.id
                    ))
                })?;
                let headers = inner
                    .headers
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k.to_ascii_lowercase(), v)
                    })
                    .collect();
                let response = GraphResponse::new(
                    request.id.clone(),
                    inner.status,
                    inner.body,
                    headers,
                    request.rules(),
                );
                if response.status == 404 && request.confirm_not_found {
                    let n = lag_retries.entry(i).or_insert(0);
                    if *n < policy.confirm_attempts() {
                        *n += 1;
                        retry.insert(i);
                        wait = wait.max(policy.lag_wait(*n));
                    }
                } else if !response.is_success() {
                    if matches!(response.status, 429 | 503 | 504) {
                        let used = throttle_attempts.entry(i).or_insert(1);
                        if *used < max_attempts {
                            *used += 1;
                            retry.insert(i);
                            wait = wait.max(policy.wait_for(response.retry_after(), *used - 1));
                        }
                    } else if request.lag_tolerant && response.is_reference_error() {
                        let n = lag_retries.entry(i).or_insert(0);
                        if *n < policy.lag_attempts {
                            *n += 1;
                            retry.insert(i);
                            wait = wait.max(policy.lag_wait(*n));
                        }
                    }
                }
                results[i] = Some(response);
            }
            // A 424 (failed dependency) goes again with the dependency it waited for.
            loop {
                let retried_ids: BTreeSet<&str> =
                    retry.iter().map(|&i| requests[i].id.as_str()).collect();
                let extra: Vec<usize> = pending
                    .iter()
                    .copied()
                    .filter(|i| !retry.contains(i))
                    .filter(|&i| results[i].as_ref().is_some_and(|r| r.status == 424))
                    .filter(|&i| {
                        requests[i]
                            .depends_on
                            .iter()
                            .any(|d| retried_ids.contains(d.as_str()))
                    })
                    .collect();
                if extra.is_empty() {
                    break;
                }
                retry.extend(extra);
            }
            if retry.is_empty() {
                return Ok(());
            }
            tracing::info!(
                retried = retry.len(),
                round,
                wait_ms = wait.as_millis() as u64,
                "retrying throttled or lagging requests of a $batch"
            );
            tokio::time::sleep(wait).await;
            pending = retry.into_iter().collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str) -> GraphRequest {
        GraphRequest::get(format!("/users/{id}")).id(id)
    }

    #[test]
    fn chunks_of_twenty_in_order() {
        let requests: Vec<_> = (0..45).map(|i| req(&i.to_string())).collect();
        let chunks = plan_chunks(&requests).expect("plan");
        let sizes: Vec<_> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![20, 20, 5]);
        assert_eq!(chunks[0][0], 0);
        assert_eq!(chunks[2][4], 44);
    }

    #[test]
    fn dependency_chains_stay_together() {
        let mut requests: Vec<_> = (0..19).map(|i| req(&format!("a{i}"))).collect();
        // A chain of three that would straddle the first boundary.
        requests.push(req("c0"));
        requests.push(req("c1").depends_on("c0"));
        requests.push(req("c2").depends_on("c1"));
        let chunks = plan_chunks(&requests).expect("plan");
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), 19);
        assert_eq!(chunks[1], vec![19, 20, 21]);

        let long: Vec<_> = (0..21)
            .map(|i| {
                let r = req(&format!("l{i}"));
                if i == 0 {
                    r
                } else {
                    r.depends_on(format!("l{}", i - 1))
                }
            })
            .collect();
        assert!(matches!(
            plan_chunks(&long),
            Err(GraphError::InvalidRequest(_))
        ));
    }

    /// Every request hrsync can send, as a `$batch` step: Graph refuses a whole batch with an
    /// outer 400 when one write step (POST, PATCH, PUT) lacks a body or `Content-Type`
    /// (microsoftgraph/msgraph-sdk-dotnet#2628), even for actions that take no body.
    #[test]
    fn every_write_step_carries_a_json_body_and_content_type() {
        use crate::graph::requests as r;
        use crate::graph::users;
        let leave: jiff::Timestamp = "2026-03-31T06:00:00Z".parse().expect("ts");
        let mut properties = BTreeMap::new();
        properties.insert("department".to_owned(), json!("Sales"));
        let (live, deleted) = users::preflight_requests(Some("42"), &["ada@contoso.com"]);
        let (live, deleted) = (live.expect("live"), deleted.expect("deleted"));
        let every = vec![
            GraphRequest::with_json(
                Method::POST,
                "/users",
                users::create_user_body(&users::NewUser {
                    user_principal_name: "ada@contoso.com".into(),
                    mail_nickname: "ada".into(),
                    display_name: "Ada".into(),
                    account_enabled: true,
                    mail: None,
                    properties: BTreeMap::new(),
                }),
            ),
            r::update_user("u", &properties),
            r::set_manager("u", "m"),
            r::remove_manager("u"),
            r::add_member("g", "u"),
            r::add_members("g", &["u", "v"]),
            r::remove_member("g", "u"),
            r::assign_licenses("u", &["s"], &[]),
            r::remove_licenses("u", &["s"]),
            r::revoke_sessions("u"),
            r::set_enabled("u", false),
            r::set_leave_date("u", leave),
            r::delete_user("u"),
            users::find_by_employee_id_request("42"),
            live,
            deleted,
        ];
        let in_round = BTreeSet::new();
        for request in &every {
            let step = inner_request(request, &in_round, "https://graph.microsoft.com/v1.0");
            let method = step["method"].as_str().expect("method");
            if matches!(method, "POST" | "PATCH" | "PUT") {
                assert!(
                    step["body"].is_object(),
                    "{method} {} has no JSON body: {step}",
                    request.url
                );
                assert_eq!(
                    step["headers"]["Content-Type"], "application/json",
                    "{method} {}",
                    request.url
                );
            }
        }
    }

    #[test]
    fn inner_request_shape() {
        let r = GraphRequest::with_json(Method::PATCH, "/users/u1", json!({"city": "Oslo"}))
            .id("2")
            .depends_on("1")
            .depends_on("gone")
            .low_priority();
        let in_round: BTreeSet<&str> = ["1", "2"].into_iter().collect();
        assert_eq!(
            inner_request(&r, &in_round, "https://g/v1.0"),
            json!({
                "id": "2",
                "method": "PATCH",
                "url": "/users/u1",
                "headers": {"Content-Type": "application/json", "x-ms-throttle-priority": "low"},
                "body": {"city": "Oslo"},
                "dependsOn": ["1"]
            })
        );
    }
}
