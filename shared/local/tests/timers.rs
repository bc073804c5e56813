//! The timers contract (hrsync_pipeline::ports::contract) against both implementations, and
//! persistence across a reopen.

use std::sync::Arc;

use hrsync_core::{TimerKind, WorkerKey};
use hrsync_local::{SqliteStore, SqliteTimers};
use hrsync_pipeline::memory::MemoryTimers;
use hrsync_pipeline::ports::{TimerSpec, Timers};
use jiff::Timestamp;
use tempfile::TempDir;

fn sqlite() -> (TempDir, Arc<SqliteTimers>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("state.db")).expect("opens");
    (dir, Arc::new(store.timers()))
}

fn memory() -> ((), Arc<MemoryTimers>) {
    ((), Arc::new(MemoryTimers::new()))
}

macro_rules! contract_tests {
    ($timers:ident: $($case:ident),* $(,)?) => {
        mod $timers {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (_guard, timers) = super::$timers();
                    hrsync_pipeline::ports::contract::$case(timers).await;
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

both!(timers_put_replace_delete, timers_take_due);

#[tokio::test]
async fn timers_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let worker = WorkerKey::new("hr", "1");
    let at: Timestamp = "2026-03-31T06:00:00Z".parse().unwrap();
    let leave = TimerSpec::new(worker.clone(), TimerKind::Leave, at);
    SqliteStore::open(&path)
        .unwrap()
        .timers()
        .put(&leave)
        .await
        .unwrap();
    let timers = SqliteStore::open(&path).unwrap().timers();
    assert_eq!(
        timers.worker_timers(&worker).await.unwrap(),
        vec![leave.clone()]
    );
    assert_eq!(timers.take_due(at).await.unwrap(), vec![leave]);
    assert_eq!(timers.next(10).await.unwrap(), vec![]);
}
