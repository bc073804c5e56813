//! The queue contract (hrsync_pipeline::ports::contract) against both queues, and what only
//! a file can show: persistence across a reopen, several connections on one file.

use std::sync::Arc;
use std::time::Duration;

use hrsync_core::WorkerKey;
use hrsync_local::{SqliteQueue, SqliteStore};
use hrsync_pipeline::memory::MemoryQueue;
use hrsync_pipeline::ports::{Nudge, Queue, QueueDepth, QueueName, RetryOutcome};
use jiff::Timestamp;
use tempfile::TempDir;

fn sqlite() -> (TempDir, Arc<SqliteQueue>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("state.db")).expect("opens");
    (dir, Arc::new(store.queue()))
}

fn memory() -> ((), Arc<MemoryQueue>) {
    ((), Arc::new(MemoryQueue::new()))
}

/// One `#[tokio::test]` per contract function, per queue; the guard (temp dir) lives as long
/// as the test.
macro_rules! contract_tests {
    ($queue:ident: $($case:ident),* $(,)?) => {
        mod $queue {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (_guard, queue) = super::$queue();
                    hrsync_pipeline::ports::contract::$case(queue).await;
                }
            )*
        }
    };
}

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        contract_tests!(sqlite: $($case),*);
        contract_tests!(memory: $($case),*);
    };
}

both!(
    queue_send_receive_ack,
    queue_fifo_per_group,
    queue_dedup_window,
    queue_visibility_timeout,
    queue_retry_dead_letter_redrive,
    queue_abandoned_messages_are_dead_lettered,
    queue_concurrent_receivers,
    queue_postpone_keeps_place_and_tries,
    queue_dead_letter_keeps_its_id_across_redrive,
);

const WE: QueueName = QueueName::WorkerEvents;
const VISIBILITY: Duration = Duration::from_secs(60);

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 literal")
}

fn nudge(id: &str, reason: &str) -> Nudge {
    Nudge::new(WorkerKey::new("hr", id), reason, "trace")
}

/// Messages, in-flight receipts, dedup windows and dead letters survive a restart.
#[tokio::test]
async fn reopening_keeps_messages_receipts_dedup_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let t0 = at("2026-03-01T09:00:00Z");
    let in_flight = {
        let queue = SqliteStore::open(&path).unwrap().queue();
        queue.send(WE, &nudge("1", "a1"), "a1", t0).await.unwrap();
        queue.send(WE, &nudge("1", "a2"), "a2", t0).await.unwrap();
        queue.send(WE, &nudge("2", "b1"), "b1", t0).await.unwrap();
        queue
            .send(QueueName::Writeback, &nudge("3", "w1"), "w1", t0)
            .await
            .unwrap();
        let got = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
        assert_eq!(got.len(), 2);
        let outcome = queue
            .retry(&got[1], "hr 500", t0, Duration::ZERO, 1)
            .await
            .unwrap();
        assert_eq!(outcome, RetryOutcome::DeadLettered);
        got[0].clone()
    };

    let queue = SqliteStore::open(&path).unwrap().queue();
    assert_eq!(
        queue.depth(WE).await.unwrap(),
        QueueDepth {
            visible: 1,
            in_flight: 1,
            dead: 1
        }
    );
    // The receipt handed out before the restart still settles its message.
    queue.ack(&in_flight).await.unwrap();
    // The dedup window is remembered.
    queue.send(WE, &nudge("1", "dup"), "a1", t0).await.unwrap();
    let got = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].nudge.reason, "a2");
    let dead = queue.dead_letters(WE).await.unwrap();
    assert_eq!(
        (dead[0].nudge.reason.as_str(), dead[0].reason.as_str()),
        ("b1", "hr 500")
    );
    assert!(queue.redrive(WE, &dead[0].id, t0).await.unwrap());
    let writeback = queue
        .receive(QueueName::Writeback, 10, t0, VISIBILITY)
        .await
        .unwrap();
    assert_eq!(writeback[0].nudge, nudge("3", "w1"));
}

/// Two processes on one file (two `hrsync serve` by mistake, or a CLI beside one): separate
/// connections still never hand out one message twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_on_one_file_share_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let queues = [
        Arc::new(SqliteStore::open(&path).unwrap().queue()),
        Arc::new(SqliteStore::open(&path).unwrap().queue()),
    ];
    let t0 = at("2026-03-01T09:00:00Z");
    for n in 0..40 {
        queues[0]
            .send(WE, &nudge(&n.to_string(), "x"), &n.to_string(), t0)
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let queue = Arc::clone(&queues[n % 2]);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = queue.receive(WE, 3, t0, VISIBILITY).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|d| d.group));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    let total = all.len();
    all.dedup();
    assert_eq!((total, all.len()), (40, 40));
}

/// The queue lives in the store's file: one migration step added its tables.
#[tokio::test]
async fn the_queue_shares_the_store_file() {
    let (dir, queue) = sqlite();
    queue
        .send(WE, &nudge("1", "a"), "a", at("2026-03-01T09:00:00Z"))
        .await
        .unwrap();
    let count: i64 = rusqlite::Connection::open(dir.path().join("state.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1);
}
