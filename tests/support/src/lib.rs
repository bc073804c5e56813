//! Loopback emulators of the HR vendors' APIs (and, in [`sts`], of AWS STS's
//! `GetWebIdentityToken` and its token issuer), for tests. Each speaks its vendor's documented
//! wire format (paths, authentication, JSON shapes, pagination), keeps its employees in
//! memory in the vendor's own shape, records every request it gets, and can be told to
//! answer the next requests with 429 or 5xx (with `Retry-After`).
//!
//! ```ignore
//! let hr = Emulator::start(bamboohr::router).await;
//! hr.put_employee("42", bamboohr::employee("42", "Ada", "Lovelace"));
//! // point `[source.x] base_url` at hr.base_url()
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub mod bamboohr;
pub mod hibob;
pub mod keka;
pub mod personio;
pub mod sts;
pub mod workforce;

/// One request the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub authorization: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON (a form).
    pub body: Option<Value>,
}

/// An answer forced on the next request (token requests included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

/// What an emulator holds; the vendor routers read and change it.
#[derive(Debug, Default)]
pub struct Shared {
    /// Employees by the vendor's id, in the vendor's own JSON shape.
    pub employees: BTreeMap<String, Value>,
    /// Per-vendor extra state (e.g. Personio's employments), by name.
    pub tables: BTreeMap<String, BTreeMap<String, Value>>,
    /// Every request, in order.
    pub requests: Vec<Recorded>,
    pub faults: VecDeque<Fault>,
    /// Write-backs taken: (employee id, the body's fields as sent).
    pub written: Vec<(String, Value)>,
    /// Change-feed entries: (employee id, action, RFC 3339 instant).
    pub changes: Vec<(String, String, String)>,
}

pub type State = Arc<Mutex<Shared>>;

/// A running emulator on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct Emulator {
    base_url: String,
    state: State,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Emulator {
    /// Serves `router(state)` on 127.0.0.1 at a free port. `base_url` is the root the
    /// vendor's paths are under (the `base_url` a source is configured with).
    pub async fn start(router: fn(State) -> Router) -> Self {
        let state = State::default();
        let app = router(Arc::clone(&state)).layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            record_and_fault,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("emulator: cannot bind a loopback port: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("emulator: no local address: {e}"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{address}"),
            state,
            task,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The emulator's state, to set up and inspect.
    pub fn state(&self) -> MutexGuard<'_, Shared> {
        lock(&self.state)
    }

    pub fn put_employee(&self, id: &str, record: Value) {
        self.state().employees.insert(id.to_owned(), record);
    }

    pub fn remove_employee(&self, id: &str) {
        self.state().employees.remove(id);
    }

    /// The next `count` requests are answered `status` (with `Retry-After: retry_after`).
    pub fn fail_next(&self, count: usize, status: u16, retry_after: Option<u64>) {
        let mut state = self.state();
        for _ in 0..count {
            state.faults.push_back(Fault {
                status,
                retry_after,
            });
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub fn written(&self) -> Vec<(String, Value)> {
        self.state().written.clone()
    }
}

/// Locks the state, also after a panicking handler.
pub fn lock(state: &State) -> MutexGuard<'_, Shared> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn record_and_fault(
    axum::extract::State(state): axum::extract::State<State>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        authorization: parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: match bytes.is_empty() {
            true => None,
            false => Some(
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
            ),
        },
    };
    let fault = {
        let mut state = lock(&state);
        state.requests.push(recorded);
        state.faults.pop_front()
    };
    if let Some(fault) = fault {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = (status, "emulated fault").into_response();
        if let Some(seconds) = fault.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A JSON error answer in the vendors' common shape.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

/// Whether `Authorization: Basic` carries `user:password` (password `None`: any).
pub fn basic_auth_is(header: Option<&str>, user: &str, password: Option<&str>) -> bool {
    use base64::Engine as _;
    let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let text = String::from_utf8_lossy(&decoded);
    match (text.split_once(':'), password) {
        (Some((u, _)), None) => u == user,
        (Some((u, p)), Some(password)) => u == user && p == password,
        (None, _) => false,
    }
}
