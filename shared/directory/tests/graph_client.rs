//! The Graph client against small axum stubs of the token endpoint and Graph, bound on
//! 127.0.0.1:0 inside each test (the Entra-compatible sandbox is not used here).
//!
//! Fixtures: `tests/fixtures/graph_test_*.pem|der` are a throwaway self-signed RSA-2048 certificate
//! and key made with `openssl req -x509 -newkey rsa:2048 -nodes` for these tests only.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hrsync_directory::graph::{
    AlsoOk, Credential, GraphClient, GraphError, GraphRequest, GraphSettings, Method, NewUser,
    RetryPolicy, requests,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The stub

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    headers: HashMap<String, String>,
    body: Option<Value>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The raw (still percent-encoded) value of a query parameter.
    fn raw_param(&self, name: &str) -> Option<&str> {
        self.query
            .as_deref()?
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
    }

    fn batch_requests(&self) -> Vec<Value> {
        self.body
            .as_ref()
            .and_then(|b| b["requests"].as_array().cloned())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }
    fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
        }
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn graph_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}

type Responder = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;
type TokenResponder = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Debug, Clone)]
struct TokenCall {
    path: String,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

struct StubState {
    token_calls: Mutex<Vec<TokenCall>>,
    graph_calls: Mutex<Vec<Recorded>>,
    responder: Responder,
    token_responder: TokenResponder,
}

struct Stub {
    base: String,
    state: Arc<StubState>,
}

impl Stub {
    fn token_calls(&self) -> Vec<TokenCall> {
        self.state.token_calls.lock().expect("lock").clone()
    }
    fn graph_calls(&self) -> Vec<Recorded> {
        self.state.graph_calls.lock().expect("lock").clone()
    }
}

/// Tokens `tok-1`, `tok-2`, ... valid for `expires_in` seconds.
fn tokens_valid_for(expires_in: u64) -> TokenResponder {
    Arc::new(move |n| {
        Reply::json(
            200,
            json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                   "access_token": format!("tok-{}", n + 1)}),
        )
    })
}

async fn start(token_responder: TokenResponder, responder: Responder) -> Stub {
    let state = Arc::new(StubState {
        token_calls: Mutex::new(Vec::new()),
        graph_calls: Mutex::new(Vec::new()),
        responder,
        token_responder,
    });
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token_handler))
        .fallback(graph_handler)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Stub {
        base: format!("http://{addr}"),
        state,
    }
}

async fn start_graph(responder: Responder) -> Stub {
    start(tokens_valid_for(3599), responder).await
}

fn reply_to_response(reply: Reply) -> Response {
    let mut builder =
        Response::builder().status(StatusCode::from_u16(reply.status).expect("status"));
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    match reply.body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .expect("response"),
        None => builder.body(axum::body::Body::empty()).expect("response"),
    }
}

async fn token_handler(
    State(state): State<Arc<StubState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&String::from_utf8_lossy(&body));
    let n = {
        let mut calls = state.token_calls.lock().expect("lock");
        calls.push(TokenCall {
            path: uri.path().to_owned(),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            form,
        });
        calls.len() - 1
    };
    reply_to_response((state.token_responder)(n))
}

async fn graph_handler(State(state): State<Arc<StubState>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = if bytes.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&bytes).expect("json body"))
    };
    let recorded = Recorded {
        method,
        path,
        query,
        headers,
        body,
    };
    let n = {
        let mut calls = state.graph_calls.lock().expect("lock");
        calls.push(recorded.clone());
        calls.len() - 1
    };
    reply_to_response((state.responder)(&recorded, n)).into_response()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf8")
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn settings(stub: &Stub, credential: Credential, retry: RetryPolicy) -> GraphSettings {
    GraphSettings {
        tenant_id: "tenant-1".into(),
        client_id: "client-1".into(),
        credential,
        graph_endpoint: stub.base.clone(),
        authority_host: stub.base.clone(),
        retry,
        write_limit: None,
        max_in_flight: 16,
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        lag_attempts: 3,
        lag_delay: Duration::from_millis(1),
    }
}

fn client(stub: &Stub) -> GraphClient {
    client_with(stub, fast_retry())
}

fn client_with(stub: &Stub, retry: RetryPolicy) -> GraphClient {
    GraphClient::new(
        settings(stub, Credential::ClientSecret("s3cret".into()), retry),
        reqwest::Client::new(),
    )
}

fn ok_responder() -> Responder {
    Arc::new(|_, _| Reply::json(200, json!({"ok": true})))
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_request_serves_many_concurrent_calls() {
    let stub = start_graph(ok_responder()).await;
    let client = client(&stub);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .send(&GraphRequest::get(format!("/users/u{i}?$select=id")))
                .await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("send");
    }
    assert_eq!(stub.token_calls().len(), 1);
    let calls = stub.graph_calls();
    assert_eq!(calls.len(), 20);
    assert!(
        calls
            .iter()
            .all(|c| c.header("authorization") == Some("Bearer tok-1"))
    );
}

#[tokio::test]
async fn token_is_refreshed_after_expiry() {
    // expires_in 1 s: refreshed at half its lifetime (the 5-minute margin is capped at half).
    let stub = start(tokens_valid_for(1), ok_responder()).await;
    let client = client(&stub);
    let get = GraphRequest::get("/users/u1?$select=id");
    client.send(&get).await.expect("first");
    client.send(&get).await.expect("cached");
    assert_eq!(stub.token_calls().len(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    client.send(&get).await.expect("after expiry");
    assert_eq!(stub.token_calls().len(), 2);
    let calls = stub.graph_calls();
    assert_eq!(calls[1].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(calls[2].header("authorization"), Some("Bearer tok-2"));
}

#[tokio::test]
async fn client_secret_token_request_has_exactly_the_documented_fields() {
    let stub = start_graph(ok_responder()).await;
    client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect("send");
    let calls = stub.token_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/tenant-1/oauth2/v2.0/token");
    assert_eq!(
        calls[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let mut form = calls[0].form.clone();
    form.sort();
    assert_eq!(
        form,
        vec![
            ("client_id".to_owned(), "client-1".to_owned()),
            ("client_secret".to_owned(), "s3cret".to_owned()),
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("scope".to_owned(), format!("{}/.default", stub.base)),
        ]
    );
}

const CERT_PEM: &str = include_str!("fixtures/graph_test_cert.pem");
const KEY_PEM: &str = include_str!("fixtures/graph_test_key.pem");
const PUBLIC_KEY_PKCS1_DER: &[u8] = include_bytes!("fixtures/graph_test_pubkey_pkcs1.der");
/// `openssl x509 -in graph_test_cert.pem -outform DER | openssl dgst -sha256 -binary | base64url`
const CERT_X5T_S256: &str = "SwIGhGCYyutOR8FpxjTSiut701Qcl2s4qnFoU9YkDps";

#[derive(Debug, serde::Deserialize)]
struct AssertionClaims {
    aud: String,
    iss: String,
    sub: String,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

#[tokio::test]
async fn certificate_assertion_is_a_signed_jwt_with_the_documented_header_and_claims() {
    let stub = start_graph(ok_responder()).await;
    let credential = Credential::Certificate {
        certificate_pem: CERT_PEM.into(),
        private_key_pem: KEY_PEM.into(),
    };
    credential.check().expect("usable credential");
    let client = GraphClient::new(
        settings(&stub, credential, fast_retry()),
        reqwest::Client::new(),
    );
    client
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect("send");

    let calls = stub.token_calls();
    let form: BTreeMap<String, String> = calls[0].form.iter().cloned().collect();
    assert_eq!(
        form.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![
            "client_assertion",
            "client_assertion_type",
            "client_id",
            "grant_type",
            "scope"
        ]
    );
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "client-1");

    let jwt = &form["client_assertion"];
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    // Microsoft's current certificate-credentials page: PS256 with x5t#S256.
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.x5t_s256.as_deref(), Some(CERT_X5T_S256));
    // The raw header really spells the parameter `x5t#S256`.
    let raw_header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwt.split('.').next().expect("header part"),
        )
        .expect("b64"),
    )
    .expect("json");
    assert_eq!(raw_header["x5t#S256"], CERT_X5T_S256);

    let token_url = format!("{}/tenant-1/oauth2/v2.0/token", stub.base);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
    validation.set_audience(&[token_url.as_str()]);
    validation.set_issuer(&["client-1"]);
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_der(PUBLIC_KEY_PKCS1_DER);
    let claims = jsonwebtoken::decode::<AssertionClaims>(jwt, &key, &validation)
        .expect("signature and claims verify")
        .claims;
    assert_eq!(claims.aud, token_url);
    assert_eq!(claims.iss, "client-1");
    assert_eq!(claims.sub, "client-1");
    assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
    let now = jiff::Timestamp::now().as_second();
    assert!((claims.nbf - now).abs() < 60);
    assert_eq!(claims.iat, claims.nbf);
    assert!(claims.exp > now && claims.exp - claims.nbf <= 600);
}

#[tokio::test]
async fn token_endpoint_errors_are_typed_and_not_retried() {
    let token_error: TokenResponder = Arc::new(|_| {
        Reply::json(
            401,
            json!({"error": "invalid_client",
                   "error_description": "AADSTS7000215: Invalid client secret provided.",
                   "error_codes": [7000215], "timestamp": "2026-01-01 00:00:00Z",
                   "trace_id": "t", "correlation_id": "c"}),
        )
    });
    let stub = start(token_error, ok_responder()).await;
    let err = client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect_err("auth error");
    match &err {
        GraphError::Auth {
            status,
            code,
            description,
        } => {
            assert_eq!(*status, 401);
            assert_eq!(code, "invalid_client");
            assert!(description.starts_with("AADSTS7000215"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("s3cret"));
    assert_eq!(stub.token_calls().len(), 1);
    assert!(stub.graph_calls().is_empty());
}

#[tokio::test]
async fn graph_401_drops_the_token_and_retries_once() {
    let responder: Responder = Arc::new(|req, _| {
        if req.header("authorization") == Some("Bearer tok-1") {
            graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired.",
            )
        } else {
            Reply::json(200, json!({"id": "u1"}))
        }
    });
    let stub = start_graph(responder).await;
    let response = client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect("second try succeeds");
    assert_eq!(response.status, 200);
    assert_eq!(stub.token_calls().len(), 2);
    assert_eq!(stub.graph_calls().len(), 2);

    let always_401: Responder =
        Arc::new(|_, _| graph_error(401, "InvalidAuthenticationToken", "no"));
    let stub = start_graph(always_401).await;
    let err = client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect_err("401");
    assert!(matches!(err, GraphError::Graph { status: 401, .. }));
    assert_eq!(stub.graph_calls().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn retry_after_zero_429_is_retried_until_success() {
    let responder: Responder = Arc::new(|_, n| {
        if n < 2 {
            graph_error(429, "TooManyRequests", "Too many requests").header("Retry-After", "0")
        } else {
            Reply::json(200, json!({"id": "u1"}))
        }
    });
    let stub = start_graph(responder).await;
    let response = client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect("send");
    assert_eq!(response.status, 200);
    assert_eq!(stub.graph_calls().len(), 3);
}

#[tokio::test]
async fn retry_after_is_waited_for_and_capped_by_max_delay() {
    let responder: Responder = Arc::new(|_, n| {
        if n == 0 {
            graph_error(429, "TooManyRequests", "slow down").header("Retry-After", "1")
        } else {
            Reply::json(200, json!({}))
        }
    });
    let stub = start_graph(responder).await;
    let retry = RetryPolicy {
        max_delay: Duration::from_secs(5),
        ..fast_retry()
    };
    let started = Instant::now();
    client_with(&stub, retry)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect("send");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(stub.graph_calls().len(), 2);

    // A Retry-After beyond max_delay waits max_delay only.
    let responder: Responder = Arc::new(|_, n| {
        if n == 0 {
            Reply::empty(503).header("Retry-After", "120")
        } else {
            Reply::json(200, json!({}))
        }
    });
    let stub = start_graph(responder).await;
    let started = Instant::now();
    client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect("send");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn service_unavailable_then_success() {
    let responder: Responder = Arc::new(|_, n| {
        if n == 0 {
            graph_error(503, "serviceNotAvailable", "try later")
        } else {
            Reply::json(200, json!({"id": "u1"}))
        }
    });
    let stub = start_graph(responder).await;
    let response = client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect("send");
    assert_eq!(response.body, Some(json!({"id": "u1"})));
    assert_eq!(stub.graph_calls().len(), 2);
}

#[tokio::test]
async fn exhausted_attempts_give_typed_retryable_errors() {
    let responder: Responder = Arc::new(|_, _| {
        graph_error(429, "TooManyRequests", "Too many requests").header("Retry-After", "0")
    });
    let stub = start_graph(responder).await;
    let err = client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect_err("throttled");
    assert_eq!(
        err,
        GraphError::Throttled {
            retry_after: Some(Duration::ZERO)
        }
    );
    assert!(err.is_retryable());
    assert_eq!(stub.graph_calls().len(), 4, "max_attempts");

    let responder: Responder = Arc::new(|_, _| Reply::empty(504));
    let stub = start_graph(responder).await;
    let err = client(&stub)
        .send(&GraphRequest::get("/users/u1?$select=id"))
        .await
        .expect_err("unavailable");
    assert_eq!(err, GraphError::Unavailable { status: 504 });
    assert!(err.is_retryable());
    assert_eq!(stub.graph_calls().len(), 4);

    // A plain 4xx is not retried and not retryable.
    let responder: Responder = Arc::new(|_, _| {
        graph_error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges",
        )
    });
    let stub = start_graph(responder).await;
    let err = client(&stub)
        .send(&requests::set_enabled("u1", false))
        .await
        .expect_err("forbidden");
    assert!(matches!(err, GraphError::Graph { status: 403, .. }));
    assert!(!err.is_retryable());
    assert_eq!(stub.graph_calls().len(), 1);
}

#[tokio::test]
async fn transport_errors_are_retried_then_typed() {
    // Nothing listens on this port once the listener is dropped.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let stub = start_graph(ok_responder()).await;
    let mut s = settings(&stub, Credential::ClientSecret("s".into()), fast_retry());
    s.graph_endpoint = format!("http://{addr}");
    let client = GraphClient::new(s, reqwest::Client::new());
    let err = client
        .send(&GraphRequest::get("/users/u1?$filter=secret"))
        .await
        .expect_err("transport");
    assert!(matches!(err, GraphError::Transport(_)));
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("secret"), "no URL in errors");
}

/// An endpoint nobody listens on is given up on within seconds, with the default policy too,
/// and the error names the endpoint and the cause in words.
#[tokio::test]
async fn an_unreachable_endpoint_fails_fast_naming_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut s = GraphSettings::new(
        "tenant-1",
        "client-1",
        Credential::ClientSecret("s3cret".into()),
    );
    s.graph_endpoint = format!("http://{addr}");
    s.authority_host = format!("http://{addr}");
    let client = GraphClient::new(s, reqwest::Client::new());
    let started = Instant::now();
    let err = client
        .send(&GraphRequest::get("/users?$top=1"))
        .await
        .expect_err("unreachable");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "the token endpoint http://{addr}/tenant-1/oauth2/v2.0/token"
        )),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.check_token().await, Err(err));
}

#[tokio::test]
async fn lag_tolerant_writes_retry_reference_errors() {
    let responder: Responder = Arc::new(|_, n| {
        if n < 2 {
            graph_error(
                404,
                "Request_ResourceNotFound",
                "Resource 'm1' does not exist or one of its queried reference-property objects are not present.",
            )
        } else {
            Reply::empty(204)
        }
    });
    let stub = start_graph(responder).await;
    client(&stub)
        .send(&requests::set_manager("u1", "m1"))
        .await
        .expect("set manager");
    let calls = stub.graph_calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].method, "PUT");
    assert_eq!(calls[0].path, "/v1.0/users/u1/manager/$ref");
    assert_eq!(
        calls[0].body,
        Some(json!({"@odata.id": format!("{}/v1.0/users/m1", stub.base)}))
    );

    // Exhausted: ReplicationLag, retryable later.
    let responder: Responder = Arc::new(|_, _| {
        graph_error(
            400,
            "Request_BadRequest",
            "The source resource object or one of the objects being referenced do not exist",
        )
    });
    let stub = start_graph(responder).await;
    let err = client(&stub)
        .send(&requests::add_member("g1", "u1"))
        .await
        .expect_err("lag");
    assert!(matches!(
        err,
        GraphError::ReplicationLag { status: 400, .. }
    ));
    assert!(err.is_retryable());
    assert_eq!(stub.graph_calls().len(), 4, "1 + lag_attempts");
}

#[tokio::test]
async fn idempotent_outcomes_count_as_success() {
    let responder: Responder = Arc::new(|req, _| match req.method.as_str() {
        "POST" => graph_error(
            400,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        ),
        _ => graph_error(404, "Request_ResourceNotFound", "Resource does not exist"),
    });
    let stub = start_graph(responder).await;
    let client = client(&stub);
    let added = client
        .send(&requests::add_member("g1", "u1"))
        .await
        .expect("already a member is success");
    assert_eq!(added.status, 400);
    assert!(added.is_success());
    client
        .send(&requests::remove_member("g1", "u1"))
        .await
        .expect("not a member is success");
    client
        .send(&requests::delete_user("u1"))
        .await
        .expect("already deleted is success");
    client
        .send(&requests::remove_manager("u1"))
        .await
        .expect("no manager is success");
    assert_eq!(
        stub.graph_calls().len(),
        1 + 3 * 4,
        "the add is not retried; each 404 removal is asked three more times (lag?) before it counts as gone"
    );
    let calls = stub.graph_calls();
    assert_eq!(calls[0].path, "/v1.0/groups/g1/members/$ref");
    assert_eq!(
        calls[0].body,
        Some(json!({"@odata.id": format!("{}/v1.0/directoryObjects/u1", stub.base)}))
    );
    assert_eq!(calls[1].path, "/v1.0/groups/g1/members/u1/$ref");
    assert_eq!(calls[1].method, "DELETE");

    // The same rule as a plain status.
    let teapot = GraphRequest::get("/x?$select=id").also_ok(AlsoOk::Status(404));
    client.send(&teapot).await.expect("404 allowed");
}

#[tokio::test]
async fn low_priority_sends_the_throttle_priority_header() {
    let stub = start_graph(ok_responder()).await;
    let client = client(&stub);
    client
        .send(&requests::set_enabled("u1", true).low_priority())
        .await
        .expect("low");
    client
        .send(&requests::set_enabled("u1", true))
        .await
        .expect("normal");
    let calls = stub.graph_calls();
    assert_eq!(calls[0].header("x-ms-throttle-priority"), Some("low"));
    assert_eq!(calls[1].header("x-ms-throttle-priority"), None);
    assert_eq!(calls[0].header("content-type"), Some("application/json"));
    assert_eq!(calls[0].body, Some(json!({"accountEnabled": true})));
}

// ---------------------------------------------------------------------------------------------
// $batch

/// Answers every inner request with `reply(inner)`, in reverse order.
fn batch_responder(reply: impl Fn(&Value, usize) -> Value + Send + Sync + 'static) -> Responder {
    Arc::new(move |req, n| {
        assert_eq!(req.path, "/v1.0/$batch");
        assert_eq!(req.method, "POST");
        let mut responses: Vec<Value> = req
            .batch_requests()
            .iter()
            .map(|inner| reply(inner, n))
            .collect();
        responses.reverse();
        Reply::json(200, json!({"responses": responses}))
    })
}

#[tokio::test]
async fn batch_splits_45_into_20_20_5_and_keeps_input_order() {
    let stub = start_graph(batch_responder(|inner, _| {
        json!({"id": inner["id"], "status": 200, "headers": {"Content-Type": "application/json"},
               "body": {"echo": inner["url"]}})
    }))
    .await;
    let requests: Vec<GraphRequest> = (0..45)
        .map(|i| GraphRequest::get(format!("/users/u{i}?$select=id")).id(format!("q{i}")))
        .collect();
    let responses = client(&stub).batch(requests).await.expect("batch");
    let sizes: Vec<usize> = stub
        .graph_calls()
        .iter()
        .map(|c| c.batch_requests().len())
        .collect();
    assert_eq!(sizes, vec![20, 20, 5]);
    assert_eq!(responses.len(), 45);
    for (i, r) in responses.iter().enumerate() {
        assert_eq!(r.id, format!("q{i}"));
        assert_eq!(r.status, 200);
        assert!(r.is_success());
        assert_eq!(
            r.body,
            Some(json!({"echo": format!("/users/u{i}?$select=id")}))
        );
    }
}

#[tokio::test]
async fn batch_retries_only_the_throttled_inner_request_and_never_hides_failures() {
    let stub = start_graph(batch_responder(|inner, n| {
        let id = inner["id"].as_str().expect("id");
        match (id, n) {
            ("c", 0) => json!({"id": id, "status": 429, "headers": {"Retry-After": "0"},
                               "body": {"error": {"code": "TooManyRequests", "message": "slow"}}}),
            ("d", _) => json!({"id": id, "status": 403,
                               "body": {"error": {"code": "Authorization_RequestDenied", "message": "no"}}}),
            _ => json!({"id": id, "status": 204}),
        }
    }))
    .await;
    let ids = ["a", "b", "c", "d", "e"];
    let requests: Vec<GraphRequest> = ids
        .iter()
        .map(|id| requests::set_enabled(&format!("user-{id}"), false).id(*id))
        .collect();
    let responses = client(&stub).batch(requests).await.expect("batch");
    let calls = stub.graph_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].batch_requests().len(), 5);
    let second: Vec<String> = calls[1]
        .batch_requests()
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(second, vec!["c"]);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![204, 204, 204, 403, 204]);
    assert!(!responses[3].is_success());
    assert!(matches!(
        responses[3].error(),
        Some(GraphError::Graph { status: 403, .. })
    ));
    // Inner bodies carry their Content-Type; the inner url is relative to /v1.0.
    let first = &calls[0].batch_requests()[0];
    assert_eq!(first["url"], "/users/user-a");
    assert_eq!(first["method"], "PATCH");
    assert_eq!(first["headers"]["Content-Type"], "application/json");
    assert_eq!(first["body"], json!({"accountEnabled": false}));
}

#[tokio::test]
async fn batch_inner_throttling_exhausts_into_a_429_response() {
    let stub = start_graph(batch_responder(
        |inner, _| json!({"id": inner["id"], "status": 429, "headers": {"Retry-After": "0"}}),
    ))
    .await;
    let responses = client(&stub)
        .batch(vec![GraphRequest::get("/users/u1?$select=id").id("1")])
        .await
        .expect("outer ok");
    assert_eq!(stub.graph_calls().len(), 4, "max_attempts");
    assert_eq!(responses[0].status, 429);
    let err = responses[0].error().expect("error");
    assert!(matches!(err, GraphError::Throttled { .. }));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn batch_keeps_depends_on_and_retries_failed_dependencies_together() {
    let stub = start_graph(batch_responder(|inner, n| {
        let id = inner["id"].as_str().expect("id");
        match (id, n) {
            ("create", 1) => json!({"id": id, "status": 429, "headers": {"Retry-After": "0"}}),
            ("manager" | "member", 1) => json!({"id": id, "status": 424}),
            _ => json!({"id": id, "status": 204}),
        }
    }))
    .await;
    let mut batch: Vec<GraphRequest> = (0..19)
        .map(|i| GraphRequest::get(format!("/users/x{i}?$select=id")).id(format!("x{i}")))
        .collect();
    batch.push(requests::update_user("u1", &BTreeMap::new()).id("create"));
    batch.push(
        requests::set_manager("u1", "m1")
            .id("manager")
            .depends_on("create"),
    );
    batch.push(
        requests::add_member("g1", "u1")
            .id("member")
            .depends_on("manager"),
    );
    let responses = client(&stub).batch(batch).await.expect("batch");
    assert!(responses.iter().all(|r| r.is_success()));
    assert_eq!(responses[20].id, "manager");

    let calls = stub.graph_calls();
    // 19 independent, then the chain of 3 kept together, then the chain again (retry).
    let sizes: Vec<usize> = calls.iter().map(|c| c.batch_requests().len()).collect();
    assert_eq!(sizes, vec![19, 3, 3]);
    for call in &calls[1..] {
        let inner = call.batch_requests();
        assert_eq!(inner[0]["id"], "create");
        assert!(inner[0].get("dependsOn").is_none());
        assert_eq!(inner[1]["dependsOn"], json!(["create"]));
        assert_eq!(inner[2]["dependsOn"], json!(["manager"]));
        assert_eq!(
            inner[1]["body"]["@odata.id"],
            format!("{}/v1.0/users/m1", stub.base)
        );
    }
}

#[tokio::test]
async fn batch_rejects_duplicate_ids_and_oversized_chains() {
    let stub = start_graph(ok_responder()).await;
    let client = client(&stub);
    let dup = vec![
        GraphRequest::get("/a").id("1"),
        GraphRequest::get("/b").id("1"),
    ];
    assert!(matches!(
        client.batch(dup).await,
        Err(GraphError::InvalidRequest(_))
    ));
    let chain: Vec<GraphRequest> = (0..21)
        .map(|i| {
            let r = GraphRequest::get("/a").id(format!("c{i}"));
            if i == 0 {
                r
            } else {
                r.depends_on(format!("c{}", i - 1))
            }
        })
        .collect();
    assert!(matches!(
        client.batch(chain).await,
        Err(GraphError::InvalidRequest(_))
    ));
    assert!(stub.graph_calls().is_empty());
}

#[tokio::test]
async fn batch_carries_low_priority_inside_and_outside() {
    let stub = start_graph(batch_responder(
        |inner, _| json!({"id": inner["id"], "status": 204}),
    ))
    .await;
    let batch = vec![
        requests::revoke_sessions("u1").low_priority(),
        requests::remove_member("g1", "u1").low_priority(),
    ];
    client(&stub).batch(batch).await.expect("batch");
    let call = &stub.graph_calls()[0];
    assert_eq!(call.header("x-ms-throttle-priority"), Some("low"));
    for inner in call.batch_requests() {
        assert_eq!(inner["headers"]["x-ms-throttle-priority"], "low");
    }
}

#[tokio::test]
async fn a_bulk_client_marks_every_request_low_priority() {
    let stub = start_graph(batch_responder(
        |inner, _| json!({"id": inner["id"], "status": 204}),
    ))
    .await;
    let bulk = client(&stub).for_bulk();
    let batch = vec![
        requests::revoke_sessions("u1"),
        requests::remove_member("g1", "u1"),
    ];
    bulk.batch(batch).await.expect("batch");
    let call = &stub.graph_calls()[0];
    assert_eq!(call.header("x-ms-throttle-priority"), Some("low"));
    for inner in call.batch_requests() {
        assert_eq!(inner["headers"]["x-ms-throttle-priority"], "low");
    }
}

#[tokio::test]
async fn a_bulk_client_sends_single_requests_low_priority_too() {
    let stub = start_graph(ok_responder()).await;
    let normal = client(&stub);
    normal
        .for_bulk()
        .send(&requests::set_enabled("u1", true))
        .await
        .expect("bulk");
    normal
        .send(&requests::set_enabled("u1", true))
        .await
        .expect("normal");
    let calls = stub.graph_calls();
    assert_eq!(calls[0].header("x-ms-throttle-priority"), Some("low"));
    assert_eq!(
        calls[1].header("x-ms-throttle-priority"),
        None,
        "the original client is unchanged"
    );
}

// ---------------------------------------------------------------------------------------------
// Users

const INJECTION: &str = "x' or 1 eq 1 or employeeId eq 'y";

#[tokio::test]
async fn employee_id_filter_is_quoted_and_percent_encoded() {
    let stub = start_graph(Arc::new(|_, _| Reply::json(200, json!({"value": []})))).await;
    let found = client(&stub)
        .find_user_by_employee_id(INJECTION)
        .await
        .expect("lookup");
    assert_eq!(found, None);
    let call = &stub.graph_calls()[0];
    assert_eq!(call.method, "GET");
    assert_eq!(call.path, "/v1.0/users");
    let raw = call.raw_param("$filter").expect("$filter");
    assert_eq!(
        raw,
        "employeeId%20eq%20%27x%27%27%20or%201%20eq%201%20or%20employeeId%20eq%20%27%27y%27"
    );
    assert_eq!(
        percent_decode(raw),
        "employeeId eq 'x'' or 1 eq 1 or employeeId eq ''y'"
    );
    let select = call.raw_param("$select").expect("$select");
    assert!(select.split(',').any(|p| p == "employeeId"));
    assert!(select.split(',').any(|p| p == "proxyAddresses"));
}

#[tokio::test]
async fn find_user_decodes_and_detects_ambiguity() {
    let user = json!({"id": "u1", "userPrincipalName": "ada@contoso.com", "mail": "ada@contoso.com",
                      "accountEnabled": true, "employeeId": "1001", "displayName": "Ada",
                      "proxyAddresses": ["SMTP:ada@contoso.com"], "department": "R&D"});
    let one = user.clone();
    let stub = start_graph(Arc::new(move |_, n| {
        if n == 0 {
            Reply::json(200, json!({"value": [one.clone()]}))
        } else {
            Reply::json(200, json!({"value": [one.clone(), one.clone()]}))
        }
    }))
    .await;
    let client = client(&stub);
    let found = client
        .find_user_by_employee_id("1001")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id, "u1");
    assert_eq!(found.employee_id.as_deref(), Some("1001"));
    assert!(found.account_enabled);
    assert_eq!(found.properties["department"], "R&D");
    let err = client
        .find_user_by_employee_id("1001")
        .await
        .expect_err("ambiguous");
    assert_eq!(err, GraphError::AmbiguousEmployeeId { matches: 2 });
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn every_read_has_a_select() {
    let stub = start_graph(Arc::new(|req, _| {
        if req.path == "/v1.0/$batch" {
            let responses: Vec<Value> = req
                .batch_requests()
                .iter()
                .map(|inner| json!({"id": inner["id"], "status": 200, "body": {"value": []}}))
                .collect();
            Reply::json(200, json!({"responses": responses}))
        } else if req.path == "/v1.0/users" {
            Reply::json(200, json!({"value": []}))
        } else {
            graph_error(404, "Request_ResourceNotFound", "does not exist")
        }
    }))
    .await;
    let client = client(&stub);
    client.find_user_by_employee_id("1").await.expect("find");
    assert_eq!(client.get_user("u1").await.expect("get"), None);
    assert!(!client.name_in_use("ada@contoso.com").await.expect("name"));
    let mut urls: Vec<String> = Vec::new();
    for call in stub.graph_calls() {
        if call.path == "/v1.0/$batch" {
            for inner in call.batch_requests() {
                assert_eq!(inner["method"], "GET");
                urls.push(inner["url"].as_str().expect("url").to_owned());
            }
        } else {
            assert_eq!(call.method, "GET");
            urls.push(format!(
                "{}?{}",
                call.path,
                call.query.clone().unwrap_or_default()
            ));
        }
    }
    assert_eq!(urls.len(), 4);
    for url in urls {
        assert!(url.contains("$select="), "{url} has no $select");
    }
}

#[tokio::test]
async fn name_in_use_checks_live_and_soft_deleted_users_in_one_batch() {
    let stub = start_graph(Arc::new(|req, n| {
        let responses: Vec<Value> = req
            .batch_requests()
            .iter()
            .map(|inner| {
                let url = inner["url"].as_str().expect("url");
                let value = if url.starts_with("/directory/deletedItems/microsoft.graph.user") && n == 0 {
                    json!([{"id": "0f6a6f2e-1111-2222-3333-444455556666",
                            "userPrincipalName": "0f6a6f2e111122223333444455556666ada@contoso.com",
                            "mail": null, "proxyAddresses": []}])
                } else if url.starts_with("/directory/deletedItems") {
                    // endsWith also matches a longer local part; that one does not hold the name.
                    json!([{"id": "0f6a6f2e-1111-2222-3333-444455556666",
                            "userPrincipalName": "0f6a6f2e111122223333444455556666bada@contoso.com"}])
                } else {
                    json!([])
                };
                json!({"id": inner["id"], "status": 200, "body": {"value": value}})
            })
            .collect();
        Reply::json(200, json!({"responses": responses}))
    }))
    .await;
    let client = client(&stub);
    assert!(client.name_in_use("ada@contoso.com").await.expect("name"));
    assert!(!client.name_in_use("ada@contoso.com").await.expect("name"));
    let calls = stub.graph_calls();
    assert_eq!(calls.len(), 2, "one $batch per lookup");
    let inner = calls[0].batch_requests();
    assert_eq!(inner.len(), 2);
    let live = inner[0]["url"].as_str().expect("url");
    let (path, query) = live.split_once('?').expect("query");
    assert_eq!(path, "/users");
    let filter = query
        .split('&')
        .find_map(|p| p.strip_prefix("$filter="))
        .expect("filter");
    assert_eq!(
        percent_decode(filter),
        "userPrincipalName eq 'ada@contoso.com' or mail eq 'ada@contoso.com' or proxyAddresses/any(p:p eq 'smtp:ada@contoso.com')"
    );
    let deleted = inner[1]["url"].as_str().expect("url");
    assert!(deleted.starts_with("/directory/deletedItems/microsoft.graph.user?"));
    assert!(deleted.contains("$count=true"));
    assert!(percent_decode(deleted).contains("endsWith(userPrincipalName,'ada@contoso.com')"));
    assert_eq!(inner[1]["headers"]["ConsistencyLevel"], "eventual");
}

#[tokio::test]
async fn name_in_use_quotes_the_name() {
    let stub = start_graph(batch_responder(
        |inner, _| json!({"id": inner["id"], "status": 200, "body": {"value": []}}),
    ))
    .await;
    client(&stub).name_in_use(INJECTION).await.expect("lookup");
    for inner in stub.graph_calls()[0].batch_requests() {
        let url = inner["url"].as_str().expect("url");
        assert!(!url.contains('\''), "quotes are percent-encoded: {url}");
        assert!(!url.contains(' '));
        assert!(percent_decode(url).contains("'x'' or 1 eq 1 or employeeId eq ''y'"));
    }
}

#[tokio::test]
async fn create_user_posts_a_strong_one_time_password_and_trusts_the_response() {
    let stub = start_graph(Arc::new(|req, _| {
        let body = req.body.clone().expect("body");
        Reply::json(
            201,
            json!({"@odata.context": "x", "id": "new-id",
                   "userPrincipalName": body["userPrincipalName"],
                   "displayName": body["displayName"], "mail": null, "businessPhones": []}),
        )
    }))
    .await;
    let mut properties = BTreeMap::new();
    properties.insert("employeeId".to_owned(), json!("1001"));
    properties.insert("usageLocation".to_owned(), json!("NO"));
    let user = NewUser {
        user_principal_name: "ada@contoso.com".into(),
        mail_nickname: "ada".into(),
        display_name: "Ada Lovelace".into(),
        account_enabled: true,
        mail: Some("ada@contoso.com".into()),
        properties,
    };
    let created = client(&stub).create_user(&user).await.expect("create");
    assert_eq!(created.id, "new-id");
    assert!(created.account_enabled, "filled from the request");
    assert_eq!(created.employee_id.as_deref(), Some("1001"));
    assert_eq!(created.mail.as_deref(), Some("ada@contoso.com"));

    let call = &stub.graph_calls()[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/v1.0/users");
    let body = call.body.clone().expect("body");
    assert_eq!(body["accountEnabled"], true);
    assert_eq!(body["mailNickname"], "ada");
    assert_eq!(body["usageLocation"], "NO");
    assert_eq!(
        body["passwordProfile"]["forceChangePasswordNextSignIn"],
        true
    );
    let password = body["passwordProfile"]["password"]
        .as_str()
        .expect("password");
    assert!(password.len() >= 24);
    assert!(password.chars().any(|c| c.is_ascii_uppercase()));
    assert!(password.chars().any(|c| c.is_ascii_lowercase()));
    assert!(password.chars().any(|c| c.is_ascii_digit()));
    assert!(password.chars().any(|c| !c.is_ascii_alphanumeric()));
}

#[tokio::test]
async fn request_builders_hit_the_documented_endpoints() {
    let stub = start_graph(Arc::new(|_, _| Reply::empty(204))).await;
    let client = client(&stub);
    let leave: jiff::Timestamp = "2026-06-30T15:00:00Z".parse().expect("ts");
    let sent = [
        requests::assign_licenses("u1", &["sku-1"], &["sku-2"]),
        requests::revoke_sessions("u1"),
        requests::set_leave_date("u1", leave),
        GraphRequest::with_json(Method::PATCH, "/users/u1", json!({"jobTitle": null})),
    ];
    for r in &sent {
        client.send(r).await.expect("send");
    }
    let calls = stub.graph_calls();
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", "/v1.0/users/u1/assignLicense")
    );
    assert_eq!(
        calls[0].body,
        Some(
            json!({"addLicenses": [{"skuId": "sku-1", "disabledPlans": []}], "removeLicenses": ["sku-2"]})
        )
    );
    assert_eq!(
        (calls[1].method.as_str(), calls[1].path.as_str()),
        ("POST", "/v1.0/users/u1/revokeSignInSessions")
    );
    // `{}`: a bodyless write inside a `$batch` makes Graph refuse the whole batch.
    assert_eq!(calls[1].body, Some(json!({})));
    assert_eq!(calls[1].header("content-type"), Some("application/json"));
    assert_eq!(
        calls[2].body,
        Some(json!({"employeeLeaveDateTime": "2026-06-30T15:00:00Z"}))
    );
    assert_eq!(calls[3].body, Some(json!({"jobTitle": null})));
}

// ---------------------------------------------------------------------------------------------
// A 404 on a removal may be replication lag

fn not_found() -> Reply {
    graph_error(
        404,
        "Request_ResourceNotFound",
        "Resource 'u1' does not exist or one of its queried reference-property objects are not present.",
    )
}

#[tokio::test]
async fn a_removal_404_is_asked_again_before_it_counts_as_already_gone() {
    // Replication lag: the membership is there, but the first two answers do not see it.
    let stub = start_graph(Arc::new(|_, n| {
        if n < 2 {
            not_found()
        } else {
            Reply::json(204, json!(null))
        }
    }))
    .await;
    let response = client(&stub)
        .send(&requests::remove_member("g1", "u1"))
        .await
        .expect("removed");
    assert_eq!(response.status, 204, "the real removal happened");
    assert_eq!(stub.graph_calls().len(), 3);
}

#[tokio::test]
async fn a_removal_that_keeps_answering_404_is_already_gone_after_a_few_tries() {
    let stub = start_graph(Arc::new(|_, _| not_found())).await;
    let response = client(&stub)
        .send(&requests::remove_member("g1", "u1"))
        .await
        .expect("already gone");
    assert_eq!(response.status, 404);
    assert!(response.is_success());
    assert_eq!(
        stub.graph_calls().len(),
        4,
        "one try and three confirmations"
    );
}

#[tokio::test]
async fn a_removal_404_inside_a_batch_is_asked_again_too() {
    let stub = start_graph(batch_responder(|inner, n| {
        let status = if n < 1 { 404 } else { 204 };
        json!({"id": inner["id"], "status": status, "body": {"error": {"code": "Request_ResourceNotFound", "message": "Resource 'u1' does not exist"}}})
    }))
    .await;
    let responses = client(&stub)
        .batch(vec![requests::remove_member("g1", "u1")])
        .await
        .expect("batch");
    assert_eq!(responses[0].status, 204);
    assert_eq!(stub.graph_calls().len(), 2);
}
