//! The state store on one SQLite file: the local mirror of the DynamoDB table (DESIGN.md §6).
//!
//! rusqlite is synchronous, so one `Connection` sits behind a `std::sync::Mutex` and every
//! call runs on tokio's blocking pool: async callers never stall the runtime, and calls from
//! one process are serialized (SQLite allows one writer anyway). Other processes on the same
//! file (`hrsync holds approve` beside `hrsync serve`) are safe too: every read-modify-write
//! is an `IMMEDIATE` transaction and waits up to [`BUSY_TIMEOUT`] for the lock.
//!
//! Instants are stored as RFC 3339 with nine fractional digits, so that SQL compares and
//! orders them as text correctly (jiff's shortest form puts `…00.5Z` before `…00Z`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hrsync_core::{Worker, WorkerKey, WorkerState};
use hrsync_pipeline::ports::{
    AuditRecord, Hold, HoldStatus, Reservation, StateStore, StoreError, Stored, name_key,
};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::files;

/// How long a call waits for another connection's write lock before failing as busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema steps; step `i` takes `PRAGMA user_version` from `i` to `i + 1`. Append only: a
/// released step is never edited, a change is a new step.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE workers (
    key        TEXT PRIMARY KEY,        -- WorkerKey, source:employee_id
    version    INTEGER NOT NULL,        -- optimistic concurrency; 1 at the first write
    state      TEXT NOT NULL,           -- JSON of WorkerState
    updated_at TEXT                     -- wall clock of the write, for operators only
) STRICT;

CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, never reused
    worker TEXT NOT NULL,
    at     TEXT NOT NULL,
    record TEXT NOT NULL                       -- JSON of AuditRecord
) STRICT;
CREATE INDEX audit_by_worker ON audit (worker, at, seq);

CREATE TABLE names (
    name  TEXT PRIMARY KEY,             -- lowercase (name_key)
    owner TEXT NOT NULL
) STRICT;

CREATE TABLE deliveries (
    event   TEXT PRIMARY KEY,
    expires TEXT NOT NULL
) STRICT;
CREATE INDEX deliveries_by_expiry ON deliveries (expires);

CREATE TABLE holds (
    id     TEXT PRIMARY KEY,
    worker TEXT NOT NULL,
    status TEXT NOT NULL,               -- pending | approved | rejected
    record TEXT NOT NULL                -- JSON of Hold
) STRICT;
CREATE INDEX holds_by_status ON holds (status);
"#,
    r#"
-- Step 2: the durable queues and the timers (crate::queue, crate::timers).
CREATE TABLE messages (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- send order, never reused
    queue      TEXT NOT NULL,                      -- QueueName::as_str
    grp        TEXT NOT NULL,                      -- message group: the worker key
    body       TEXT NOT NULL,                      -- JSON of Nudge
    attempts   INTEGER NOT NULL,                   -- deliveries so far
    visible_at TEXT NOT NULL,                      -- receivable from then on
    receipt    TEXT                                -- set while delivered and not settled
) STRICT;
-- The head of each group (MIN(seq) per queue and group).
CREATE INDEX messages_by_group ON messages (queue, grp, seq);
-- Candidates for receive.
CREATE INDEX messages_by_visibility ON messages (queue, visible_at);
CREATE UNIQUE INDEX messages_by_receipt ON messages (receipt) WHERE receipt IS NOT NULL;

CREATE TABLE dedup (
    queue   TEXT NOT NULL,
    dedup   TEXT NOT NULL,
    expires TEXT NOT NULL,                         -- end of the deduplication window
    PRIMARY KEY (queue, dedup)
) STRICT;
CREATE INDEX dedup_by_expiry ON dedup (expires);

CREATE TABLE dead_letters (
    id       INTEGER PRIMARY KEY,                  -- the message's seq
    queue    TEXT NOT NULL,
    grp      TEXT NOT NULL,
    body     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    at       TEXT NOT NULL
) STRICT;
CREATE INDEX dead_letters_by_queue ON dead_letters (queue, id);

CREATE TABLE timers (
    name   TEXT PRIMARY KEY,                       -- e.g. hr:123#leave
    worker TEXT NOT NULL,
    kind   TEXT NOT NULL,                          -- TimerKind, snake_case
    at     TEXT NOT NULL
) STRICT;
CREATE INDEX timers_by_at ON timers (at, name);
CREATE INDEX timers_by_worker ON timers (worker, at);
"#,
    r#"
-- Step 3: the intake's inbox, the breaker's budgets, the waiters, the audit across workers.
CREATE TABLE snapshots (
    worker TEXT PRIMARY KEY,                       -- WorkerKey
    as_of  TEXT NOT NULL,                          -- the record's as_of (instant())
    body   TEXT NOT NULL                           -- JSON of Worker
) STRICT;

CREATE TABLE budget_entries (
    budget TEXT NOT NULL,
    key    TEXT NOT NULL,                          -- who took (idempotent per key)
    at     TEXT NOT NULL,                          -- when it took
    PRIMARY KEY (budget, key)
) STRICT;
CREATE INDEX budget_entries_by_at ON budget_entries (budget, at);

CREATE TABLE waiters (
    awaited TEXT NOT NULL,                         -- WorkerKey
    waiter  TEXT NOT NULL,                         -- WorkerKey
    PRIMARY KEY (awaited, waiter)
) STRICT, WITHOUT ROWID;

-- audit_between: newest first across workers, read backwards.
CREATE INDEX audit_by_at ON audit (at, seq);
"#,
    r#"
-- Step 4: where each source's poll of its change feed reached.
CREATE TABLE cursors (
    source TEXT PRIMARY KEY,                       -- the [source.<name>] name
    cursor TEXT NOT NULL                           -- the vendor's own position (opaque)
) STRICT;
"#,
    r#"
-- Step 5: a redriven message remembers its dead letter, whose id it keeps if it dies again.
ALTER TABLE messages ADD COLUMN origin INTEGER;    -- dead_letters.id it was redriven from
"#,
];

/// The schema version this build writes (`PRAGMA user_version` after migrating).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// [`StateStore`] on one SQLite file. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) and migrates the store at `path`. A
    /// new file is 0600 and a new directory 0700 ([`crate::files`]). Blocking: call it before
    /// serving, or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let context = |e: &dyn fmt::Display| {
            StoreError::Backend(format!("cannot open {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            files::create_private_dir_all(dir).map_err(|e| context(&e))?;
        }
        files::create_private_file(path).map_err(|e| context(&e))?;
        files::warn_if_shared(path);
        let conn = Connection::open(path).map_err(|e| context(&e))?;
        Self::setup(conn, Some(path.to_owned())).map_err(|e| context(&e))
    }

    /// A private database that lives as long as the store: for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::Backend(format!("cannot open in memory: {e}")))?;
        Self::setup(conn, None)
    }

    /// Where the store lives; `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The durable queues, on this store's file and connection.
    pub fn queue(&self) -> crate::SqliteQueue {
        crate::SqliteQueue::new(Arc::clone(&self.conn))
    }

    /// The timers, on this store's file and connection.
    pub fn timers(&self) -> crate::SqliteTimers {
        crate::SqliteTimers::new(Arc::clone(&self.conn))
    }

    fn setup(mut conn: Connection, path: Option<PathBuf>) -> Result<Self, StoreError> {
        configure(&conn).map_err(Error::into_store("configure"))?;
        let applied = migrate(&mut conn)?;
        if applied > 0 {
            tracing::info!(
                ?path,
                applied,
                version = SCHEMA_VERSION,
                "state store migrated"
            );
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Runs `f` with the connection on the blocking pool; `what` names the call in errors.
    async fn call<T, F>(&self, what: String, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let task = tokio::task::spawn_blocking(move || {
            // A panic mid-call rolled its transaction back while unwinding, so a poisoned
            // lock still guards a usable connection.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        });
        match task.await {
            Ok(result) => result.map_err(Error::into_store(&what)),
            Err(e) => Err(StoreError::Backend(format!("{what}: {e}"))),
        }
    }
}

/// One file shared by a few processes: WAL lets readers run beside the writer; `NORMAL`
/// synchronous is durable at every checkpoint and never corrupts in WAL mode.
fn configure(conn: &Connection) -> Result<(), Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    // An in-memory database answers "memory"; a file that cannot do WAL must not be used.
    if mode != "wal" && mode != "memory" {
        return Err(Error::Data(format!("journal_mode is {mode}, not wal")));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The schema version (`PRAGMA user_version`) of the state file at `path`, read without
/// creating, migrating or otherwise changing it; compare with [`SCHEMA_VERSION`].
pub fn schema_version(path: &Path) -> Result<u32, StoreError> {
    let fail =
        |e: &dyn fmt::Display| StoreError::Backend(format!("cannot read {}: {e}", path.display()));
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| fail(&e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(&e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| fail(&e))?;
    u32::try_from(version).map_err(|_| fail(&format!("negative user_version {version}")))
}

/// Applies the steps this file has not seen, each in its own transaction; returns how many.
fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    let fail = Error::into_store("migrate");
    let version = |conn: &Connection| -> Result<usize, Error> {
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        usize::try_from(v).map_err(|_| Error::Data(format!("negative user_version {v}")))
    };
    let found = version(conn).map_err(&fail)?;
    if found > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the state file has schema version {found}, newer than this hrsync knows \
             ({SCHEMA_VERSION}): use a newer hrsync"
        )));
    }
    let mut applied = 0;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(found) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fail(e.into()))?;
        // Another process may have migrated while we waited for the lock.
        if version(&tx).map_err(&fail)? > index {
            continue;
        }
        tx.execute_batch(step).map_err(|e| fail(e.into()))?;
        // A handful of steps: the count always fits.
        let next = i64::try_from(index + 1).unwrap_or(i64::MAX);
        tx.pragma_update(None, "user_version", next)
            .map_err(|e| fail(e.into()))?;
        tx.commit().map_err(|e| fail(e.into()))?;
        applied += 1;
    }
    Ok(applied)
}

/// What a call can fail with inside the blocking task; [`Error::into_store`] names the call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("stored JSON does not parse: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Data(String),
    /// Passed through unchanged (conflicts).
    #[error(transparent)]
    Store(StoreError),
}

impl Error {
    fn into_store(what: &str) -> impl Fn(Error) -> StoreError + '_ {
        move |e| match e {
            Error::Store(e) => e,
            e => StoreError::Backend(format!("{what}: {e}")),
        }
    }
}

/// Fixed width, so text order is time order (see the module doc).
pub(crate) fn instant(at: Timestamp) -> String {
    format!("{at:.9}")
}

pub(crate) fn parse_key(text: &str) -> Result<WorkerKey, Error> {
    text.parse().map_err(|()| {
        Error::Data(format!(
            "stored worker key {text:?} is not source:employee_id"
        ))
    })
}

fn to_version(v: i64) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Data(format!("stored version {v} is negative")))
}

fn from_version(v: u64) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::Data(format!("version {v} is out of range")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

/// Newest first across workers, later insertion first on equal instants: `audit_by_at` read
/// backwards, so no sort and only `limit` rows are visited.
const AUDIT_BETWEEN: &str =
    "SELECT record FROM audit WHERE at >= ?1 AND at < ?2 ORDER BY at DESC, seq DESC LIMIT ?3";

/// The start of a sliding window that ends at `now` (the window is `(start, now]`).
fn window_start(now: Timestamp, window: Duration) -> Result<Timestamp, StoreError> {
    now.checked_sub(window)
        .map_err(|e| StoreError::Backend(format!("{now} - {window:?} is out of range: {e}")))
}

impl StateStore for SqliteStore {
    async fn load(&self, worker: &WorkerKey) -> Result<Option<Stored>, StoreError> {
        let key = worker.to_string();
        self.call(format!("load {worker}"), move |conn| {
            let row = conn
                .query_row(
                    "SELECT version, state FROM workers WHERE key = ?1",
                    [&key],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?;
            let Some((version, state)) = row else {
                return Ok(None);
            };
            Ok(Some(Stored {
                version: to_version(version)?,
                state: serde_json::from_str(&state)?,
            }))
        })
        .await
    }

    async fn save(
        &self,
        worker: &WorkerKey,
        state: &WorkerState,
        expected: Option<u64>,
        audit: &[AuditRecord],
    ) -> Result<u64, StoreError> {
        let state = json(state)?;
        let audit = audit
            .iter()
            .map(|record| Ok((record.worker.to_string(), instant(record.at), json(record)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let worker = worker.clone();
        self.call(format!("save {worker}"), move |conn| {
            let key = worker.to_string();
            let now = instant(Timestamp::now());
            // IMMEDIATE: the version reported in a conflict is the one that beat us.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let written = match expected {
                None => tx.execute(
                    "INSERT INTO workers (key, version, state, updated_at) VALUES (?1, 1, ?2, ?3)
                     ON CONFLICT (key) DO NOTHING",
                    params![key, state, now],
                )?,
                Some(version) => tx.execute(
                    "UPDATE workers SET version = version + 1, state = ?2, updated_at = ?3
                     WHERE key = ?1 AND version = ?4",
                    params![key, state, now, from_version(version)?],
                )?,
            };
            if written == 0 {
                let found = tx
                    .query_row("SELECT version FROM workers WHERE key = ?1", [&key], |r| {
                        r.get::<_, i64>(0)
                    })
                    .optional()?
                    .map(to_version)
                    .transpose()?;
                return Err(Error::Store(StoreError::Conflict {
                    worker,
                    expected,
                    found,
                }));
            }
            for (worker, at, record) in &audit {
                tx.execute(
                    "INSERT INTO audit (worker, at, record) VALUES (?1, ?2, ?3)",
                    params![worker, at, record],
                )?;
            }
            tx.commit()?;
            Ok(expected.map_or(1, |v| v + 1))
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerKey>, StoreError> {
        self.call("list workers".into(), |conn| {
            let mut stmt = conn.prepare("SELECT key FROM workers")?;
            let mut keys = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .map(|key| parse_key(&key?))
                .collect::<Result<Vec<_>, _>>()?;
            // WorkerKey's order (source, then id), which is not the text order of "a:b".
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let (worker, at, text) = (record.worker.to_string(), instant(record.at), json(record)?);
        self.call(format!("append audit of {worker}"), move |conn| {
            conn.execute(
                "INSERT INTO audit (worker, at, record) VALUES (?1, ?2, ?3)",
                params![worker, at, text],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, worker: &WorkerKey) -> Result<Vec<AuditRecord>, StoreError> {
        let key = worker.to_string();
        self.call(format!("read audit of {worker}"), move |conn| {
            let mut stmt =
                conn.prepare("SELECT record FROM audit WHERE worker = ?1 ORDER BY at, seq")?;
            let records = stmt
                .query_map([&key], |r| r.get::<_, String>(0))?
                .map(|text| Ok(serde_json::from_str(&text?)?))
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(records)
        })
        .await
    }

    async fn reserve_name(&self, name: &str, owner: &WorkerKey) -> Result<Reservation, StoreError> {
        let (name, owner) = (name_key(name), owner.clone());
        self.call(format!("reserve {name}"), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO names (name, owner) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, owner.to_string()],
            )?;
            let holder: String =
                tx.query_row("SELECT owner FROM names WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })?;
            tx.commit()?;
            let holder = parse_key(&holder)?;
            Ok(if holder == owner {
                Reservation::Won
            } else {
                Reservation::HeldBy(holder)
            })
        })
        .await
    }

    async fn release_name(&self, name: &str, owner: &WorkerKey) -> Result<(), StoreError> {
        let (name, owner) = (name_key(name), owner.to_string());
        self.call(format!("release {name}"), move |conn| {
            conn.execute(
                "DELETE FROM names WHERE name = ?1 AND owner = ?2",
                params![name, owner],
            )?;
            Ok(())
        })
        .await
    }

    async fn name_owner(&self, name: &str) -> Result<Option<WorkerKey>, StoreError> {
        let name = name_key(name);
        self.call(format!("look up {name}"), move |conn| {
            conn.query_row("SELECT owner FROM names WHERE name = ?1", [&name], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .map(|owner| parse_key(&owner))
            .transpose()
        })
        .await
    }

    async fn first_delivery(
        &self,
        event: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
        let (event, now, expires) = (event.to_owned(), instant(now), instant(expires));
        self.call(format!("dedupe {event}"), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Forget what has expired (the TTL of the DynamoDB table); the index keeps it cheap.
            tx.execute("DELETE FROM deliveries WHERE expires <= ?1", [&now])?;
            let first = tx.execute(
                "INSERT INTO deliveries (event, expires) VALUES (?1, ?2)
                 ON CONFLICT (event) DO NOTHING",
                params![event, expires],
            )? == 1;
            tx.commit()?;
            Ok(first)
        })
        .await
    }

    async fn put_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        let (id, worker, status, text) = (
            hold.id.clone(),
            hold.worker.to_string(),
            hold.status.as_str(),
            json(hold)?,
        );
        self.call(format!("put hold {id}"), move |conn| {
            // An existing hold keeps its status: a re-run must not undo an approval.
            conn.execute(
                "INSERT INTO holds (id, worker, status, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
                params![id, worker, status, text],
            )?;
            Ok(())
        })
        .await
    }

    async fn holds(&self, status: Option<HoldStatus>) -> Result<Vec<Hold>, StoreError> {
        let status = status.map(HoldStatus::as_str);
        self.call("list holds".into(), move |conn| {
            let mut stmt =
                conn.prepare("SELECT record FROM holds WHERE ?1 IS NULL OR status = ?1")?;
            let mut holds = stmt
                .query_map([status], |r| r.get::<_, String>(0))?
                .map(|text| Ok(serde_json::from_str::<Hold>(&text?)?))
                .collect::<Result<Vec<_>, Error>>()?;
            holds.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(holds)
        })
        .await
    }

    async fn resolve_hold(&self, id: &str, status: HoldStatus) -> Result<bool, StoreError> {
        if status == HoldStatus::Pending {
            return Ok(false);
        }
        let id = id.to_owned();
        self.call(format!("resolve hold {id}"), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let pending = tx
                .query_row(
                    "SELECT record FROM holds WHERE id = ?1 AND status = 'pending'",
                    [&id],
                    |r| r.get::<_, String>(0),
                )
                .optional()?;
            let Some(text) = pending else {
                return Ok(false);
            };
            let mut hold: Hold = serde_json::from_str(&text)?;
            hold.status = status;
            let text = serde_json::to_string(&hold)?;
            tx.execute(
                "UPDATE holds SET status = ?2, record = ?3 WHERE id = ?1",
                params![id, status.as_str(), text],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn hold(&self, id: &str) -> Result<Option<Hold>, StoreError> {
        let id = id.to_owned();
        self.call(format!("read hold {id}"), move |conn| {
            conn.query_row("SELECT record FROM holds WHERE id = ?1", [&id], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .map(|text| Ok(serde_json::from_str(&text)?))
            .transpose()
        })
        .await
    }

    async fn put_snapshot(&self, snapshot: &Worker) -> Result<bool, StoreError> {
        let (worker, as_of, body) = (
            snapshot.key.to_string(),
            instant(snapshot.as_of),
            json(snapshot)?,
        );
        self.call(format!("put snapshot of {worker}"), move |conn| {
            // One statement, so atomic: a kept record with a later as_of is left alone (the
            // WHERE of DO UPDATE then changes no row).
            let kept = conn.execute(
                "INSERT INTO snapshots (worker, as_of, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (worker) DO UPDATE SET as_of = excluded.as_of, body = excluded.body
                 WHERE excluded.as_of >= snapshots.as_of",
                params![worker, as_of, body],
            )?;
            Ok(kept == 1)
        })
        .await
    }

    async fn snapshot(&self, worker: &WorkerKey) -> Result<Option<Worker>, StoreError> {
        let key = worker.to_string();
        self.call(format!("read snapshot of {worker}"), move |conn| {
            conn.query_row(
                "SELECT body FROM snapshots WHERE worker = ?1",
                [&key],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|text| Ok(serde_json::from_str(&text)?))
            .transpose()
        })
        .await
    }

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        let source = source.to_owned();
        self.call(format!("read the poll cursor of {source}"), move |conn| {
            Ok(conn
                .query_row(
                    "SELECT cursor FROM cursors WHERE source = ?1",
                    [&source],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn put_cursor(&self, source: &str, cursor: &str) -> Result<(), StoreError> {
        let (source, cursor) = (source.to_owned(), cursor.to_owned());
        self.call(format!("move the poll cursor of {source}"), move |conn| {
            conn.execute(
                "INSERT INTO cursors (source, cursor) VALUES (?1, ?2)
                 ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
                [&source, &cursor],
            )?;
            Ok(())
        })
        .await
    }

    async fn delivered(&self, event: &str, now: Timestamp) -> Result<bool, StoreError> {
        let (event, now) = (event.to_owned(), instant(now));
        self.call(format!("check delivery of {event}"), move |conn| {
            // Read-only: an expired entry counts as unseen; first_delivery deletes it.
            let seen = conn
                .query_row(
                    "SELECT 1 FROM deliveries WHERE event = ?1 AND expires > ?2",
                    [&event, &now],
                    |_| Ok(()),
                )
                .optional()?;
            Ok(seen.is_some())
        })
        .await
    }

    async fn take_budget(
        &self,
        budget: &str,
        key: &str,
        now: Timestamp,
        window: Duration,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let since = instant(window_start(now, window)?);
        let (budget, key, now) = (budget.to_owned(), key.to_owned(), instant(now));
        self.call(
            format!("take from budget {budget} for {key}"),
            move |conn| {
                // IMMEDIATE: the count and the insert see no one else's take in between.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // Forget what can no longer count (at or before the window's start).
                tx.execute(
                    "DELETE FROM budget_entries WHERE budget = ?1 AND at <= ?2",
                    [&budget, &since],
                )?;
                let again = tx
                    .query_row(
                        "SELECT 1 FROM budget_entries
                     WHERE budget = ?1 AND key = ?2 AND at > ?3",
                        [&budget, &key, &since],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if again {
                    return Ok(true);
                }
                let taken: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM budget_entries WHERE budget = ?1 AND at > ?2",
                    [&budget, &since],
                    |r| r.get(0),
                )?;
                if u64::try_from(taken).unwrap_or(0) >= limit {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO budget_entries (budget, key, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (budget, key) DO UPDATE SET at = excluded.at",
                    [&budget, &key, &now],
                )?;
                tx.commit()?;
                Ok(true)
            },
        )
        .await
    }

    async fn wait_for(&self, awaited: &WorkerKey, waiter: &WorkerKey) -> Result<(), StoreError> {
        let (awaited, waiter) = (awaited.to_string(), waiter.to_string());
        self.call(format!("{waiter} waits for {awaited}"), move |conn| {
            conn.execute(
                "INSERT INTO waiters (awaited, waiter) VALUES (?1, ?2)
                 ON CONFLICT (awaited, waiter) DO NOTHING",
                [&awaited, &waiter],
            )?;
            Ok(())
        })
        .await
    }

    async fn waiters(&self, awaited: &WorkerKey) -> Result<Vec<WorkerKey>, StoreError> {
        let key = awaited.to_string();
        self.call(format!("read waiters for {awaited}"), move |conn| {
            let texts = conn
                .prepare("SELECT waiter FROM waiters WHERE awaited = ?1")?
                .query_map([&key], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut waiters = texts
                .iter()
                .map(|text| parse_key(text))
                .collect::<Result<Vec<_>, _>>()?;
            // WorkerKey's order (source, then id), which is not the text order of "a:b".
            waiters.sort();
            Ok(waiters)
        })
        .await
    }

    async fn forget_waiters(
        &self,
        awaited: &WorkerKey,
        waiters: &[WorkerKey],
    ) -> Result<(), StoreError> {
        let key = awaited.to_string();
        let waiters: Vec<String> = waiters.iter().map(ToString::to_string).collect();
        self.call(format!("forget waiters for {awaited}"), move |conn| {
            let tx = conn.transaction()?;
            {
                let mut delete =
                    tx.prepare("DELETE FROM waiters WHERE awaited = ?1 AND waiter = ?2")?;
                for waiter in &waiters {
                    delete.execute([&key, waiter])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn audit_between(
        &self,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (since, until) = (instant(since), instant(until));
        self.call("read the audit across workers".into(), move |conn| {
            let mut stmt = conn.prepare(AUDIT_BETWEEN)?;
            let records = stmt
                .query_map(params![since, until, limit], |r| r.get::<_, String>(0))?
                .map(|text| Ok(serde_json::from_str(&text?)?))
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(records)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn schema_version_is_read_without_changing_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        assert!(
            schema_version(&path).is_err(),
            "no file: an error, and none is made"
        );
        assert!(!path.exists());
        drop(SqliteStore::open(&path).unwrap());
        assert_eq!(schema_version(&path).unwrap(), SCHEMA_VERSION);
    }

    /// A file written by schema version 2 gains the tables of steps 3 and 4, the column of
    /// step 5, and keeps its data.
    #[test]
    fn steps_3_to_5_migrate_a_version_2_file() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        for step in &MIGRATIONS[..2] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO audit (worker, at, record) VALUES ('hr:1', 'x', '{}')",
            [],
        )
        .unwrap();
        assert_eq!(SCHEMA_VERSION, 5);
        assert_eq!(migrate(&mut conn).unwrap(), 3);
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for expected in [
            "snapshots",
            "budget_entries",
            "budget_entries_by_at",
            "waiters",
            "audit_by_at",
            "cursors",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
        let audit: i64 = conn
            .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(audit, 1);
        let origin: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = 'origin'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(origin, 1, "messages.origin");
    }

    /// audit_between reads the index backwards instead of sorting the whole log.
    #[test]
    fn audit_between_uses_its_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {AUDIT_BETWEEN}"))
            .unwrap()
            .query_map(params!["2026-01-01", "2026-02-01", 5], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains("audit_by_at"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn instants_are_fixed_width() {
        let whole: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let half: Timestamp = "2026-01-01T00:00:00.5Z".parse().unwrap();
        assert_eq!(instant(whole), "2026-01-01T00:00:00.000000000Z");
        assert!(instant(whole) < instant(half));
        assert_eq!(instant(half).parse::<Timestamp>().unwrap(), half);
    }

    /// The state holds personal data: the file, SQLite's `-wal` and `-shm` beside it, and the
    /// folder made for them are the owner's alone, whatever the umask (the test assumes one
    /// that lets others read, like the usual 022).
    #[cfg(unix)]
    #[tokio::test]
    async fn the_state_file_its_side_files_and_its_folder_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(".hrsync");
        let path = folder.join("state.db");
        let store = SqliteStore::open(&path).unwrap();
        let worker = WorkerKey::new("hr", "1");
        let record = AuditRecord::new(&worker, Timestamp::now(), "intake", "received", "test", "t");
        store.append_audit(&record).await.unwrap();

        let mode = |path: &Path| {
            let metadata = std::fs::metadata(path)
                .unwrap_or_else(|e| panic!("{} exists: {e}", path.display()));
            metadata.permissions().mode() & 0o777
        };
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            let file = folder.join(name);
            assert_eq!(mode(&file), 0o600, "{name}: {:o}", mode(&file));
        }
        assert_eq!(mode(&folder), 0o700, "{:o}", mode(&folder));
    }
}
