//! The durable queues on the store's SQLite file: SQS FIFO semantics for the local runtime.
//!
//! One table holds the messages of every queue in send order (`seq`). A group's head is its
//! lowest `seq`; `receive` hands out heads that are visible (`visible_at <= now`), at most one
//! per group, and pushes their `visible_at` to the end of the visibility timeout, so while a
//! head is in flight (or backing off after a retry) its whole group waits. Each receive is one
//! `IMMEDIATE` transaction, so receivers in this process or another never share a message.
//! A delivery's receipt is `queue:seq:attempt` and stays valid until the message is acked,
//! retried or received again; anything else is [`QueueError::StaleReceipt`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hrsync_pipeline::ports::{
    DEDUP_WINDOW, DeadLetter, Delivery, Nudge, Queue, QueueDepth, QueueError, QueueName,
    RetryOutcome, later,
};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::store::instant;

/// What a call can fail with inside the blocking task.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Decode(String),
    /// Passed through unchanged (stale receipts).
    #[error(transparent)]
    Queue(QueueError),
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Decode(e.to_string())
    }
}

/// Runs `f` with the shared connection on the blocking pool; `what` names the call in errors.
pub(crate) async fn call<T, F>(
    conn: &Arc<Mutex<Connection>>,
    what: String,
    f: F,
) -> Result<T, QueueError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
{
    let conn = Arc::clone(conn);
    let task = tokio::task::spawn_blocking(move || {
        // A panic mid-call rolled its transaction back while unwinding.
        let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn)
    });
    match task.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Error::Queue(e))) => Err(e),
        Ok(Err(Error::Decode(e))) => Err(QueueError::Decode(format!("{what}: {e}"))),
        Ok(Err(e)) => Err(QueueError::Backend(format!("{what}: {e}"))),
        Err(e) => Err(QueueError::Backend(format!("{what}: {e}"))),
    }
}

pub(crate) fn parse_instant(text: &str) -> Result<Timestamp, Error> {
    text.parse()
        .map_err(|e| Error::Decode(format!("stored instant {text:?}: {e}")))
}

fn count(n: i64) -> Result<u64, Error> {
    u64::try_from(n).map_err(|_| Error::Decode(format!("negative count {n}")))
}

fn attempts(n: i64) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::Decode(format!("stored attempts {n} out of range")))
}

fn receipt(queue: QueueName, seq: i64, attempt: u32) -> String {
    format!("{queue}:{seq}:{attempt}")
}

/// [`Queue`] on the [`SqliteStore`](crate::SqliteStore)'s file and connection; get one from
/// [`SqliteStore::queue`](crate::SqliteStore::queue). Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteQueue").finish_non_exhaustive()
    }
}

impl SqliteQueue {
    pub(crate) fn new(conn: Arc<Mutex<Connection>>) -> Self {
        Self { conn }
    }

    /// Makes every message in flight visible again at `now`: for a runtime that holds the
    /// file alone (`hrsync serve` after a crash), whose receivers are known to be gone, so it
    /// need not wait out their visibility timeouts. Their attempts still count. Returns how many.
    pub async fn release_in_flight(&self, now: Timestamp) -> Result<usize, QueueError> {
        let now = instant(now);
        self.call("release messages in flight".to_owned(), move |conn| {
            Ok(conn.execute(
                "UPDATE messages SET receipt = NULL, visible_at = ?1 WHERE receipt IS NOT NULL",
                [now],
            )?)
        })
        .await
    }
}

fn encode(nudge: &Nudge) -> Result<String, QueueError> {
    serde_json::to_string(nudge).map_err(|e| QueueError::Backend(format!("cannot encode: {e}")))
}

impl Queue for SqliteQueue {
    async fn send(
        &self,
        queue: QueueName,
        nudge: &Nudge,
        dedup: &str,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let expires = instant(later(now, DEDUP_WINDOW)?);
        let (body, grp, dedup, now) = (
            encode(nudge)?,
            nudge.worker.to_string(),
            dedup.to_owned(),
            instant(now),
        );
        self.call(format!("send to {queue}"), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Forget windows that have ended; the index keeps it cheap.
            tx.execute("DELETE FROM dedup WHERE expires <= ?1", [&now])?;
            let first = tx.execute(
                "INSERT INTO dedup (queue, dedup, expires) VALUES (?1, ?2, ?3)
                 ON CONFLICT (queue, dedup) DO NOTHING",
                params![queue.as_str(), dedup, expires],
            )? == 1;
            if first {
                tx.execute(
                    "INSERT INTO messages (queue, grp, body, attempts, visible_at, receipt)
                     VALUES (?1, ?2, ?3, 0, ?4, NULL)",
                    params![queue.as_str(), grp, body, now],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        now: Timestamp,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let until = instant(later(now, visibility)?);
        let now = instant(now);
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.call(format!("receive from {queue}"), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let heads = {
                let mut stmt = tx.prepare_cached(
                    "SELECT seq, grp, body, attempts FROM messages AS m
                     WHERE queue = ?1 AND visible_at <= ?2
                       AND seq = (SELECT MIN(seq) FROM messages
                                  WHERE queue = m.queue AND grp = m.grp)
                     ORDER BY seq LIMIT ?3",
                )?;
                stmt.query_map(params![queue.as_str(), now, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?
            };
            let mut deliveries = Vec::with_capacity(heads.len());
            for (seq, group, body, previous) in heads {
                let nudge: Nudge = serde_json::from_str(&body)
                    .map_err(|e| Error::Decode(format!("message {seq}: {e}")))?;
                let attempt = attempts(previous)?.saturating_add(1);
                let id = receipt(queue, seq, attempt);
                tx.execute(
                    "UPDATE messages SET attempts = ?2, visible_at = ?3, receipt = ?4
                     WHERE seq = ?1",
                    params![seq, attempt, until, id],
                )?;
                deliveries.push(Delivery {
                    id,
                    queue,
                    nudge,
                    attempt,
                    group,
                });
            }
            tx.commit()?;
            Ok(deliveries)
        })
        .await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (queue, id) = (delivery.queue, delivery.id.clone());
        self.call(format!("ack {id}"), move |conn| {
            let deleted = conn.execute(
                "DELETE FROM messages WHERE queue = ?1 AND receipt = ?2",
                params![queue.as_str(), id],
            )?;
            if deleted == 0 {
                return Err(Error::Queue(QueueError::StaleReceipt {
                    queue,
                    receipt: id,
                }));
            }
            Ok(())
        })
        .await
    }

    async fn retry(
        &self,
        delivery: &Delivery,
        reason: &str,
        now: Timestamp,
        backoff: Duration,
        max_attempts: u32,
    ) -> Result<RetryOutcome, QueueError> {
        let visible_at = instant(later(now, backoff)?);
        let (queue, id, reason, now) = (
            delivery.queue,
            delivery.id.clone(),
            reason.to_owned(),
            instant(now),
        );
        self.call(format!("retry {id}"), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(
                    "SELECT seq, attempts FROM messages WHERE queue = ?1 AND receipt = ?2",
                    params![queue.as_str(), id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()?;
            let Some((seq, done)) = found else {
                return Err(Error::Queue(QueueError::StaleReceipt {
                    queue,
                    receipt: id,
                }));
            };
            let outcome = if attempts(done)? < max_attempts {
                tx.execute(
                    "UPDATE messages SET visible_at = ?2, receipt = NULL WHERE seq = ?1",
                    params![seq, visible_at],
                )?;
                RetryOutcome::Retried
            } else {
                tx.execute(
                    "INSERT INTO dead_letters (id, queue, grp, body, reason, attempts, at)
                     SELECT COALESCE(origin, seq), queue, grp, body, ?2, attempts, ?3
                     FROM messages WHERE seq = ?1",
                    params![seq, reason, now],
                )?;
                tx.execute("DELETE FROM messages WHERE seq = ?1", [seq])?;
                RetryOutcome::DeadLettered
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn postpone(
        &self,
        delivery: &Delivery,
        now: Timestamp,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let visible_at = instant(later(now, delay)?);
        let (queue, id) = (delivery.queue, delivery.id.clone());
        self.call(format!("postpone {id}"), move |conn| {
            let postponed = conn.execute(
                "UPDATE messages SET attempts = MAX(attempts - 1, 0), visible_at = ?3,
                 receipt = NULL WHERE queue = ?1 AND receipt = ?2",
                params![queue.as_str(), id, visible_at],
            )?;
            match postponed {
                1 => Ok(()),
                _ => Err(Error::Queue(QueueError::StaleReceipt {
                    queue,
                    receipt: id,
                })),
            }
        })
        .await
    }

    async fn dead_letter_abandoned(
        &self,
        queue: QueueName,
        now: Timestamp,
        max_receives: u32,
        reason: &str,
    ) -> Result<usize, QueueError> {
        let now = instant(now);
        let reason = reason.to_owned();
        self.call(
            format!("dead-letter abandoned messages of {queue}"),
            move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // Delivered (a receipt), never settled, visible again: the receiver is gone.
                let abandoned =
                    "queue = ?1 AND receipt IS NOT NULL AND visible_at <= ?2 AND attempts >= ?3";
                tx.execute(
                    &format!(
                        "INSERT INTO dead_letters (id, queue, grp, body, reason, attempts, at)
                     SELECT COALESCE(origin, seq), queue, grp, body, ?4, attempts, ?2
                     FROM messages WHERE {abandoned}"
                    ),
                    params![queue.as_str(), now, max_receives, reason],
                )?;
                let moved = tx.execute(
                    &format!("DELETE FROM messages WHERE {abandoned}"),
                    params![queue.as_str(), now, max_receives],
                )?;
                tx.commit()?;
                Ok(moved)
            },
        )
        .await
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
        self.call(format!("list dead letters of {queue}"), move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, body, reason, attempts, at FROM dead_letters
                 WHERE queue = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([queue.as_str()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, body, reason, tries, at)| {
                    Ok(DeadLetter {
                        id: id.to_string(),
                        nudge: serde_json::from_str(&body)
                            .map_err(|e| Error::Decode(format!("dead letter {id}: {e}")))?,
                        reason,
                        attempts: attempts(tries)?,
                        at: parse_instant(&at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn redrive(
        &self,
        queue: QueueName,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, QueueError> {
        let Ok(dead) = id.parse::<i64>() else {
            return Ok(false);
        };
        let now = instant(now);
        self.call(format!("redrive {id} to {queue}"), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // A new message (new seq): the tail of its group, attempts from zero; it keeps
            // the dead letter's id should it die again.
            let moved = tx.execute(
                "INSERT INTO messages (queue, grp, body, attempts, visible_at, receipt, origin)
                 SELECT queue, grp, body, 0, ?3, NULL, id FROM dead_letters
                 WHERE queue = ?1 AND id = ?2",
                params![queue.as_str(), dead, now],
            )?;
            tx.execute(
                "DELETE FROM dead_letters WHERE queue = ?1 AND id = ?2",
                params![queue.as_str(), dead],
            )?;
            tx.commit()?;
            Ok(moved == 1)
        })
        .await
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        self.call(format!("depth of {queue}"), move |conn| {
            let (total, in_flight): (i64, i64) = conn.query_row(
                "SELECT COUNT(*), COUNT(receipt) FROM messages WHERE queue = ?1",
                [queue.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let dead: i64 = conn.query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE queue = ?1",
                [queue.as_str()],
                |r| r.get(0),
            )?;
            Ok(QueueDepth {
                visible: count(total - in_flight)?,
                in_flight: count(in_flight)?,
                dead: count(dead)?,
            })
        })
        .await
    }
}

impl SqliteQueue {
    async fn call<T, F>(&self, what: String, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        call(&self.conn, what, f).await
    }
}
