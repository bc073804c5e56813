//! An Entra-compatible Microsoft Graph v1.0 server ("the sandbox"): the default directory of
//! hrsync's local runtime and the directory every directory test runs against.
//!
//! It speaks Graph's wire format for the subset hrsync uses: the client-credentials token
//! endpoint, users (create, read, `$filter`, update, soft delete, restore), manager references,
//! group membership, licenses, `revokeSignInSessions` and `$batch`, with Graph's status codes and
//! error bodies (`{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`).
//!
//! It can also misbehave the way Graph does ([`Faults`]): throttling (429 + `Retry-After`),
//! transient 503/504 and replication lag (a new object is invisible to reads and references for a
//! while). Faults are drawn from a seeded RNG, so a test run is reproducible.
//!
//! | file | what it holds |
//! |---|---|
//! | `state.rs` | directory objects, the user property schema, uniqueness, persistence |
//! | `filter.rs` | the OData `$filter` subset: parser and evaluator |
//! | `routes.rs` | request pipeline (auth, faults, log) and the Graph handlers |
//! | `batch.rs` | `POST /$batch` |
//! | `faults.rs` | seeded fault injection |
//! | `token.rs` | `POST /{tenant}/oauth2/v2.0/token` and bearer-token validation |

mod batch;
mod faults;
mod filter;
mod routes;
mod state;
mod token;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::faults::FaultState;
use self::state::Directory;

/// The verified domains used when [`SandboxConfig::verified_domains`] is empty.
pub const DEFAULT_VERIFIED_DOMAINS: [&str; 2] = ["acme.example", "example.com"];

/// Largest request body the sandbox reads (Graph's own limit for a `$batch` is 4 MB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// How a sandbox starts.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// JSON file holding the directory. Loaded by [`Sandbox::new`] when it exists, rewritten
    /// (temp file + rename) after every request that changed the directory.
    pub data: Option<PathBuf>,
    /// Misbehaviour to inject; changeable later with [`Sandbox::set_faults`].
    pub faults: Faults,
    /// Groups that exist: `(id, displayName)`. When empty, a group id is created the first time
    /// a membership write references it.
    pub seed_groups: Vec<(String, String)>,
    /// Licenses the tenant owns: `(skuId, skuPartNumber)`. When empty, any GUID-shaped skuId is
    /// accepted (and remembered).
    pub seed_skus: Vec<(String, String)>,
    /// Domains a `userPrincipalName` may use; empty means [`DEFAULT_VERIFIED_DOMAINS`].
    pub verified_domains: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            data: None,
            faults: Faults::default(),
            seed_groups: Vec::new(),
            seed_skus: Vec::new(),
            verified_domains: DEFAULT_VERIFIED_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
        }
    }
}

/// Misbehaviour the sandbox injects, the way Graph misbehaves in production.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Share (0..=1) of requests answered `429 TooManyRequests` with a `Retry-After` header.
    pub throttle_rate: f64,
    /// The `Retry-After` value (seconds) of throttled and unavailable answers.
    pub retry_after_secs: u64,
    /// Share (0..=1) of requests answered `503 ServiceUnavailable` (a quarter of them
    /// `504 GatewayTimeout`).
    pub error_rate: f64,
    /// A new user is invisible to reads, `$filter` and references (manager, member) for this
    /// long; writes addressed to its id answer 404 half of the time meanwhile.
    pub replication_lag: Duration,
    /// Seed of the RNG that draws faults; the same seed and requests give the same faults.
    pub seed: u64,
}

/// One request the sandbox answered, for tests to assert on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path as requested, e.g. `/v1.0/users/42/manager/$ref` (for an inner `$batch`
    /// request, its relative url under `/v1.0`).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// The status the sandbox answered.
    pub status: u16,
    /// Whether the answer was an injected fault (429/503/504); the directory did not change.
    pub faulted: bool,
    /// Whether this was an inner request of a `$batch`.
    pub in_batch: bool,
    /// When the request arrived.
    pub at: jiff::Timestamp,
}

impl LoggedRequest {
    /// `path?query`.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot read sandbox data {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sandbox data {path} is not a sandbox directory: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write sandbox data {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind the sandbox listener: {0}")]
    Bind(std::io::Error),
}

/// The sandbox: directory state, fault injection and request log. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("data", &self.shared.settings.data)
            .field("verified_domains", &self.shared.settings.verified_domains)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Settings {
    pub(crate) data: Option<PathBuf>,
    pub(crate) verified_domains: Vec<String>,
    pub(crate) auto_groups: bool,
    pub(crate) auto_skus: bool,
}

/// Everything behind the `Arc`. Lock order: `state` before `faults`; `log` is taken alone.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) token_key: String,
    pub(crate) state: Mutex<Directory>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) log: Mutex<Vec<LoggedRequest>>,
    pub(crate) tokens_issued: AtomicU64,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sandbox {
    /// A sandbox over `config.data` (loaded when the file exists), with the seeds applied.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let mut directory = match &config.data {
            Some(path) if path.exists() => Directory::load(path)?,
            _ => Directory::fresh(),
        };
        let fresh_file = config.data.as_ref().is_some_and(|p| !p.exists());
        directory.apply_seeds(&config.seed_groups, &config.seed_skus);
        let verified_domains = if config.verified_domains.is_empty() {
            DEFAULT_VERIFIED_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect()
        } else {
            config
                .verified_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect()
        };
        let token_key = directory.token_key.clone();
        if let (true, Some(path)) = (fresh_file, &config.data) {
            // Written right away so tokens issued before the first write survive a restart.
            directory.save(path)?;
        }
        let shared = Shared {
            settings: Settings {
                data: config.data,
                verified_domains,
                auto_groups: config.seed_groups.is_empty(),
                auto_skus: config.seed_skus.is_empty(),
            },
            token_key,
            state: Mutex::new(directory),
            faults: Mutex::new(FaultState::new(config.faults)),
            log: Mutex::new(Vec::new()),
            tokens_issued: AtomicU64::new(0),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The HTTP surface: `POST /{tenant}/oauth2/v2.0/token` and `/v1.0/...`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token_handler))
            .route("/v1.0/{*rest}", any(graph_handler))
            .route("/sandbox/directory", get(directory_handler))
            .fallback(fallback_handler)
            .with_state(self.clone())
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds `127.0.0.1:0` and serves in a background task until the handle is dropped.
    pub async fn start(config: SandboxConfig) -> Result<RunningSandbox, SandboxError> {
        let sandbox = Sandbox::new(config)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(SandboxError::Bind)?;
        let addr = listener.local_addr().map_err(SandboxError::Bind)?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(sandbox.clone().serve(listener, async {
            let _ = rx.await;
        }));
        Ok(RunningSandbox {
            url: format!("http://{addr}"),
            sandbox,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Every request answered so far, in the order answered (inner `$batch` requests before
    /// their `$batch`).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Replaces the faults (and reseeds their RNG).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).set(faults);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults.clone()
    }

    /// Access tokens issued by the token endpoint so far.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens_issued.load(Ordering::Relaxed)
    }

    /// Every user with all its properties, soft-deleted ones included (they carry
    /// `deletedDateTime`, and their `userPrincipalName` is prefixed with their object id without
    /// hyphens, as in Entra), ignoring replication lag.
    pub fn users(&self) -> Vec<serde_json::Value> {
        let dir = lock(&self.shared.state);
        dir.users
            .iter()
            .map(|u| serde_json::Value::Object(u.user.clone()))
            .collect()
    }

    /// Ids of the (not soft-deleted) members of a group, in the order they were added.
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        let dir = lock(&self.shared.state);
        dir.group(group_id)
            .map(|g| {
                g.members
                    .iter()
                    .filter(|m| dir.user_by_id(m).is_some_and(|u| !u.is_deleted()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The manager id recorded for a user, ignoring replication lag and deletion.
    pub fn manager_of(&self, user_id: &str) -> Option<String> {
        let dir = lock(&self.shared.state);
        dir.user_by_id(user_id).and_then(|u| u.manager_id.clone())
    }
}

/// A sandbox serving on `127.0.0.1`; shuts the server down when dropped.
#[derive(Debug)]
pub struct RunningSandbox {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The sandbox being served.
    pub sandbox: Sandbox,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT/v1.0`, the Graph base url.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.url)
    }

    /// `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.url)
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn token_handler(
    State(sandbox): State<Sandbox>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = jiff::Timestamp::now();
    let (status, json) = token::token_endpoint(&sandbox.shared, &tenant, &headers, &body);
    sandbox.shared.record(LoggedRequest {
        method: "POST".to_owned(),
        path: format!("/{tenant}/oauth2/v2.0/token"),
        query: None,
        status: status.as_u16(),
        faulted: false,
        in_batch: false,
        at,
    });
    let mut response = (status, axum::Json(json)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store, no-cache"),
    );
    response
}

async fn graph_handler(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return routes::Resp::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "The request body is larger than the sandbox accepts.",
            )
            .into_response();
        }
    };
    let path = parts
        .uri
        .path()
        .strip_prefix("/v1.0/")
        .unwrap_or_default()
        .to_owned();
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("graph.microsoft.com");
    let scheme = if host == "graph.microsoft.com" {
        "https"
    } else {
        "http"
    };
    let request = routes::Req {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
        base: format!("{scheme}://{host}/v1.0/"),
        in_batch: false,
    };
    sandbox.shared.handle(request).into_response()
}

/// Not Graph: the whole directory as the data file holds it, for looking inside the sandbox
/// (tests, `curl`). The sandbox has no secrets to keep.
async fn directory_handler(State(sandbox): State<Sandbox>) -> Response {
    let json = serde_json::to_value(&*lock(&sandbox.shared.state));
    match json {
        Ok(json) => axum::Json(json).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn fallback_handler(method: Method, uri: axum::http::Uri) -> Response {
    let segment = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    routes::Resp::error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("Invalid version: '{segment}' ({method} {}).", uri.path()),
    )
    .into_response()
}
