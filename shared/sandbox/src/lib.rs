//! An Entra-compatible Microsoft Graph v1.0 server ("the sandbox"): the default directory of
//! hrsync's local runtime and the directory every directory test runs against. A test double:
//! never linked into the Lambda functions.
//!
//! It speaks Graph's wire format for the subset hrsync uses: the client-credentials token
//! endpoint, users (create, read, `$filter`, `$count`, update, soft delete, restore), manager
//! references, groups and membership, licences with units and group-based licensing, domains,
//! `revokeSignInSessions` and `$batch`, with Graph's status codes and error bodies
//! (`{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`). Every
//! rule it implements names its source in `README.md` beside this crate.
//!
//! It can also misbehave the way Graph does ([`Faults`]): throttling (429 + `Retry-After`),
//! transient 503/504 and replication lag; and it enforces Graph's write quota when configured
//! ([`WriteLimit`]).
//!
//! | file | what it holds |
//! |---|---|
//! | `config.rs` | how a sandbox starts: seeds, domains, secret, write limit |
//! | `directory.rs` | users, groups, SKUs in memory, with their indexes |
//! | `store.rs` | the SQLite data file and the legacy JSON migration |
//! | `schema.rs` | the user properties, default sets and value rules |
//! | `filter.rs` | the OData `$filter` subset: parser, evaluator, index plan |
//! | `routes/` | the request pipeline and one handler file per resource |
//! | `batch.rs` | `POST /$batch` |
//! | `throttle.rs` | the write quota |
//! | `stats.rs` | the counters behind `GET /sandbox/stats` |
//! | `faults.rs` | seeded fault injection |
//! | `token.rs` | `POST /{tenant}/oauth2/v2.0/token` and bearer-token validation |

mod batch;
mod config;
mod directory;
mod faults;
mod federation;
mod filter;
mod permissions;
mod routes;
mod schema;
mod stats;
mod store;
mod throttle;
mod token;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::config::{
    DEFAULT_APP_ROLES, DEFAULT_VERIFIED_DOMAINS, Faults, FederatedCredential,
    MAX_FEDERATED_CREDENTIALS, SandboxConfig, SeedError, SeedGroup, SeedSku, WriteLimit,
};
use self::directory::Directory;
use self::faults::FaultState;
use self::stats::Counters;
pub use self::stats::Stats;
use self::store::Store;
use self::throttle::WriteLimiter;

/// Largest request body the sandbox reads (Graph's own limit for a `$batch` is 4 MB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Entries the request log keeps (the oldest are dropped; [`Stats`] is never capped).
pub const REQUEST_LOG_CAPACITY: usize = 100_000;

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
    #[error("sandbox data {path} is not a sandbox directory: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the sandbox configuration is invalid: {0}")]
    Config(String),
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
    pub(crate) client_secret: Option<String>,
    pub(crate) app_roles: Vec<String>,
    pub(crate) federated_credentials: Vec<config::FederatedCredential>,
}

/// The directory and the file it is written to.
pub(crate) struct DirectoryState {
    pub(crate) dir: Directory,
    pub(crate) store: Option<Store>,
}

/// Everything behind the `Arc`. Lock order: `state` before `faults`; `limiter` and `log` are
/// taken alone.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    /// Reads federated issuers' discovery documents and keys.
    pub(crate) http: reqwest::Client,
    pub(crate) token_key: String,
    pub(crate) state: Mutex<DirectoryState>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) limiter: Mutex<WriteLimiter>,
    pub(crate) log: Mutex<VecDeque<LoggedRequest>>,
    pub(crate) counters: Counters,
}

impl Shared {
    pub(crate) fn record(&self, entry: LoggedRequest) {
        let mut log = lock(&self.log);
        if log.len() >= REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// Counts an answered Graph request (see [`Stats`]).
    pub(crate) fn count(&self, method: &Method, outer_batch: bool) {
        Counters::bump(&self.counters.requests);
        if outer_batch {
            Counters::bump(&self.counters.batches);
        } else if method == Method::GET {
            Counters::bump(&self.counters.reads);
        } else if routes::is_write(method) {
            Counters::bump(&self.counters.writes);
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn seed(dir: &mut Directory, config: &SandboxConfig) -> Result<(), SandboxError> {
    for sku in &config.skus {
        dir.upsert_sku(&sku.id, &sku.part_number, sku.units);
    }
    for group in &config.groups {
        if let Some(sku) = group.licenses.iter().find(|s| dir.sku(s).is_none()) {
            return Err(SandboxError::Config(format!(
                "group {} ({}) assigns the licence {sku}, which is not a seeded or stored SKU",
                group.id, group.display_name
            )));
        }
        dir.upsert_group(&group.id, &group.display_name, group.licenses.clone());
    }
    Ok(())
}

impl Sandbox {
    /// A sandbox over `config.data` (loaded when the file exists, a legacy JSON file migrated),
    /// with the seeds applied over it.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        federation::check_config(&config.federated_credentials)?;
        let (mut dir, mut store) = match &config.data {
            Some(path) => {
                let (store, dir) = Store::open(path)?;
                (dir, Some(store))
            }
            None => (Directory::new(store::fresh_token_key()), None),
        };
        seed(&mut dir, &config)?;
        let changes = dir.take_journal();
        if let Some(store) = &mut store {
            store.write(&dir, &changes)?;
        }
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
        let shared = Shared {
            settings: Settings {
                data: config.data,
                verified_domains,
                client_secret: config.client_secret,
                app_roles: config.app_roles,
                federated_credentials: config.federated_credentials,
            },
            http: reqwest::Client::builder()
                .user_agent("hrsync-sandbox")
                .build()
                .map_err(|e| SandboxError::Config(format!("cannot build the HTTP client: {e}")))?,
            token_key: dir.token_key.clone(),
            state: Mutex::new(DirectoryState { dir, store }),
            faults: Mutex::new(FaultState::new(config.faults)),
            limiter: Mutex::new(WriteLimiter::new(config.write_limit)),
            log: Mutex::new(VecDeque::new()),
            counters: Counters::default(),
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
            .route("/sandbox/stats", get(stats_handler))
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
    /// At most the last [`REQUEST_LOG_CAPACITY`] are kept.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Counts of what the sandbox answered since it started (never capped).
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
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
        self.shared.counters.snapshot().tokens
    }

    /// Every user with all its properties, soft-deleted ones included (they carry
    /// `deletedDateTime`, and their `userPrincipalName` is prefixed with their object id without
    /// hyphens, as in Entra), ignoring replication lag.
    pub fn users(&self) -> Vec<serde_json::Value> {
        let state = lock(&self.shared.state);
        state
            .dir
            .users_in_order()
            .map(|u| {
                let mut props = u.props.clone();
                props.insert("assignedLicenses".to_owned(), u.assigned_licenses());
                serde_json::Value::Object(props)
            })
            .collect()
    }

    /// Ids of the (not soft-deleted) members of a group, in the order they were added.
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        let state = lock(&self.shared.state);
        let dir = &state.dir;
        dir.group(group_id)
            .map(|g| {
                g.members_after(None)
                    .filter_map(|(_, seq)| dir.user(seq))
                    .filter(|u| !u.is_deleted())
                    .map(|u| u.id().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The manager id recorded for a user, ignoring replication lag and deletion.
    pub fn manager_of(&self, user_id: &str) -> Option<String> {
        let state = lock(&self.shared.state);
        let dir = &state.dir;
        dir.seq_of(user_id)
            .and_then(|s| dir.user(s))
            .and_then(|u| u.manager_id.clone())
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
    let (status, json) = token::token_endpoint(&sandbox.shared, &tenant, &headers, &body).await;
    Counters::bump(&sandbox.shared.counters.requests);
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

/// The whole directory as JSON, in the shape the legacy data file had: `users` (`user`: its
/// Graph properties with `assignedLicenses`, `managerId`), `groups` (`id`, `displayName`,
/// `licenses`, `members`), `skus` (`skuId`, `skuPartNumber`, `units`, `consumedUnits`).
fn snapshot(dir: &Directory) -> Value {
    let users: Vec<Value> = dir
        .users_in_order()
        .map(|u| {
            let mut props = u.props.clone();
            props.insert("assignedLicenses".to_owned(), u.assigned_licenses());
            props.insert(
                "licenseAssignmentStates".to_owned(),
                u.license_assignment_states(),
            );
            json!({"user": props, "managerId": u.manager_id})
        })
        .collect();
    let groups: Vec<Value> = dir
        .groups_with_members()
        .map(|(g, members)| {
            json!({"id": g.id, "displayName": g.display_name, "licenses": g.licenses,
                   "members": members.iter().map(|(_, id)| *id).collect::<Vec<_>>()})
        })
        .collect();
    let skus: Vec<Value> = dir
        .skus()
        .map(|s| {
            json!({"skuId": s.id, "skuPartNumber": s.part_number, "units": s.units,
                   "consumedUnits": dir.consumed(&s.id)})
        })
        .collect();
    json!({"users": users, "groups": groups, "skus": skus})
}

/// The directory a sandbox data file holds (SQLite, or a legacy JSON file), in the shape of
/// `GET /sandbox/directory`, read without changing the file: a running sandbox may be using it.
pub fn read_data_file(path: &std::path::Path) -> Result<Value, SandboxError> {
    Ok(snapshot(&Store::read(path)?))
}

/// Not Graph: the whole directory ([`read_data_file`]'s shape), for looking inside the sandbox
/// (tests, `curl`). The sandbox has no secrets to keep.
async fn directory_handler(State(sandbox): State<Sandbox>) -> Response {
    let state = lock(&sandbox.shared.state);
    axum::Json(snapshot(&state.dir)).into_response()
}

/// Not Graph: [`Stats`], so a benchmark can count the requests of a separate process.
async fn stats_handler(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.stats()).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_log_keeps_the_last_entries_and_stats_keep_counting() {
        let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
        for n in 0..=REQUEST_LOG_CAPACITY {
            sandbox.shared.count(&Method::GET, false);
            sandbox.shared.record(LoggedRequest {
                method: "GET".to_owned(),
                path: format!("/v1.0/users/{n}"),
                query: None,
                status: 200,
                faulted: false,
                in_batch: false,
                at: jiff::Timestamp::UNIX_EPOCH,
            });
        }
        let log = sandbox.requests();
        assert_eq!(log.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(log[0].path, "/v1.0/users/1", "the oldest entry went");
        assert_eq!(
            sandbox.stats().reads,
            u64::try_from(REQUEST_LOG_CAPACITY).unwrap_or(u64::MAX) + 1
        );
    }
}
