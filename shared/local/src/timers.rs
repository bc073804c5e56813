//! The timers on the store's SQLite file: named one-time wake-ups, taken when due by the
//! runtime's timer loop (EventBridge Scheduler `at()` schedules in AWS).

use std::fmt;
use std::sync::{Arc, Mutex};

use hrsync_core::WorkerKey;
use hrsync_pipeline::ports::{QueueError, TimerSpec, Timers, parse_timer_kind, timer_kind_str};
use jiff::Timestamp;
use rusqlite::{Connection, Row, TransactionBehavior, params};

use crate::queue::{Error, call, parse_instant};
use crate::store::{instant, parse_key};

/// [`Timers`] on the [`SqliteStore`](crate::SqliteStore)'s file and connection; get one from
/// [`SqliteStore::timers`](crate::SqliteStore::timers). Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteTimers {
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for SqliteTimers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTimers").finish_non_exhaustive()
    }
}

impl SqliteTimers {
    pub(crate) fn new(conn: Arc<Mutex<Connection>>) -> Self {
        Self { conn }
    }
}

const COLUMNS: &str = "SELECT name, worker, kind, at FROM timers";

fn row(r: &Row<'_>) -> rusqlite::Result<[String; 4]> {
    Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
}

fn decode([name, worker, kind, at]: [String; 4]) -> Result<TimerSpec, Error> {
    let worker = parse_key(&worker).map_err(|e| Error::Decode(format!("timer {name}: {e}")))?;
    let kind = parse_timer_kind(&kind)
        .ok_or_else(|| Error::Decode(format!("timer {name}: unknown kind {kind:?}")))?;
    Ok(TimerSpec {
        worker,
        kind,
        at: parse_instant(&at)?,
        name,
    })
}

fn query(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<TimerSpec>, Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(params, row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode).collect()
}

impl Timers for SqliteTimers {
    async fn put(&self, timer: &TimerSpec) -> Result<(), QueueError> {
        let (name, worker, kind, at) = (
            timer.name.clone(),
            timer.worker.to_string(),
            timer_kind_str(timer.kind),
            instant(timer.at),
        );
        call(&self.conn, format!("put timer {name}"), move |conn| {
            conn.execute(
                "INSERT INTO timers (name, worker, kind, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE
                 SET worker = excluded.worker, kind = excluded.kind, at = excluded.at",
                params![name, worker, kind, at],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), QueueError> {
        let name = name.to_owned();
        call(&self.conn, format!("delete timer {name}"), move |conn| {
            conn.execute("DELETE FROM timers WHERE name = ?1", [&name])?;
            Ok(())
        })
        .await
    }

    async fn take_due(&self, now: Timestamp) -> Result<Vec<TimerSpec>, QueueError> {
        let now = instant(now);
        call(&self.conn, "take due timers".into(), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let due = query(
                &tx,
                &format!("{COLUMNS} WHERE at <= ?1 ORDER BY at, name"),
                [&now],
            )?;
            tx.execute("DELETE FROM timers WHERE at <= ?1", [&now])?;
            tx.commit()?;
            Ok(due)
        })
        .await
    }

    async fn next(&self, limit: usize) -> Result<Vec<TimerSpec>, QueueError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        call(&self.conn, "list timers".into(), move |conn| {
            query(
                conn,
                &format!("{COLUMNS} ORDER BY at, name LIMIT ?1"),
                [limit],
            )
        })
        .await
    }

    async fn worker_timers(&self, worker: &WorkerKey) -> Result<Vec<TimerSpec>, QueueError> {
        let key = worker.to_string();
        call(&self.conn, format!("timers of {worker}"), move |conn| {
            query(
                conn,
                &format!("{COLUMNS} WHERE worker = ?1 ORDER BY at, name"),
                [&key],
            )
        })
        .await
    }
}
