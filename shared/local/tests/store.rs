//! The state-store contract (hrsync_pipeline::ports::contract) against both stores, and what
//! only a file can show: persistence, migrations, several connections on one file.

use std::path::Path;
use std::sync::Arc;

use hrsync_core::{Worker, WorkerKey, WorkerState};
use hrsync_local::SqliteStore;
use hrsync_local::store::SCHEMA_VERSION;
use hrsync_pipeline::ports::contract;
use hrsync_pipeline::{
    AuditRecord, Hold, HoldStatus, MemoryStore, Reservation, StateStore, StoreError,
};
use jiff::Timestamp;
use tempfile::TempDir;

fn sqlite() -> (TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("state.db")).expect("opens");
    (dir, Arc::new(store))
}

fn memory() -> ((), Arc<MemoryStore>) {
    ((), Arc::new(MemoryStore::new()))
}

/// One `#[tokio::test]` per contract function, per store; the guard (temp dir) lives as long
/// as the test.
macro_rules! contract_tests {
    ($store:ident: $($case:ident),* $(,)?) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (_guard, store) = super::$store();
                    hrsync_pipeline::ports::contract::$case(store).await;
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

hrsync_pipeline::store_contract_cases!(both);

fn key(id: &str) -> WorkerKey {
    WorkerKey::new("hr", id)
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 literal")
}

fn user_version(path: &Path) -> u32 {
    rusqlite::Connection::open(path)
        .expect("opens")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

#[tokio::test]
async fn reopening_keeps_everything_and_migrates_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, like the default `.hrsync/state.db`.
    let path = dir.path().join(".hrsync").join("state.db");
    let ada = key("1");
    let record = AuditRecord {
        worker: ada.clone(),
        at: at("2026-03-01T09:00:00Z"),
        stage: "cli".into(),
        action: "terminate".into(),
        cause: "hrsync terminate --reason test".into(),
        before: None,
        after: None,
        trace: None,
    };
    let bob = key("2");
    let snapshot = Worker::new(ada.clone(), "Ada", "Lovelace", at("2026-03-01T08:00:00Z"));
    let hour = std::time::Duration::from_secs(3600);
    let hold = Hold {
        id: "h1".into(),
        worker: ada.clone(),
        action: "disable".into(),
        reason: "breaker".into(),
        created_at: at("2026-03-01T09:00:00Z"),
        status: HoldStatus::Pending,
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .save(&ada, &WorkerState::default(), None, &[])
            .await
            .unwrap();
        store.append_audit(&record).await.unwrap();
        store.reserve_name("ada@acme.example", &ada).await.unwrap();
        store.put_hold(&hold).await.unwrap();
        let now = at("2026-03-01T09:00:00Z");
        assert!(
            store
                .first_delivery("evt", now, at("2026-03-02T09:00:00Z"))
                .await
                .unwrap()
        );
        assert!(
            store
                .resolve_hold("h1", HoldStatus::Approved)
                .await
                .unwrap()
        );
        assert!(store.put_snapshot(&snapshot).await.unwrap());
        store.wait_for(&ada, &bob).await.unwrap();
        assert!(
            store
                .take_budget("disables", "ada", now, hour, 1)
                .await
                .unwrap()
        );
    }
    assert_eq!(user_version(&path), SCHEMA_VERSION);

    // The migration creates its tables without IF NOT EXISTS: running it again would fail.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(store.load(&ada).await.unwrap().unwrap().version, 1);
    assert_eq!(
        store
            .save(&ada, &WorkerState::default(), Some(1), &[])
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.workers().await.unwrap(), vec![ada.clone()]);
    assert_eq!(store.audit(&ada).await.unwrap(), vec![record.clone()]);
    assert_eq!(
        store.name_owner("ADA@acme.example").await.unwrap(),
        Some(ada.clone())
    );
    let holds = store.holds(Some(HoldStatus::Approved)).await.unwrap();
    assert_eq!(holds.len(), 1);
    let later = at("2026-03-01T10:00:00Z");
    assert!(store.delivered("evt", later).await.unwrap());
    assert!(
        !store
            .first_delivery("evt", later, at("2026-03-02T10:00:00Z"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.hold("h1").await.unwrap().unwrap().status,
        HoldStatus::Approved
    );
    assert_eq!(store.snapshot(&ada).await.unwrap(), Some(snapshot));
    assert_eq!(store.waiters(&ada).await.unwrap(), vec![bob]);
    // The budget remembers ada's take: ada passes again, anyone else waits.
    let soon = at("2026-03-01T09:30:00Z");
    assert!(
        store
            .take_budget("disables", "ada", soon, hour, 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_budget("disables", "bob", soon, hour, 1)
            .await
            .unwrap()
    );
    assert_eq!(store.recent_audit(5).await.unwrap(), vec![record]);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("newer than this hrsync"), "{err}");
}

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let (dir, _store) = sqlite();
    let mode: String = rusqlite::Connection::open(dir.path().join("state.db"))
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Two processes on one file (`hrsync serve` and an `hrsync holds approve`): separate
/// connections still give one winner per version and per name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_on_one_file_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let stores = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    let worker = key("1");
    stores[0]
        .save(&worker, &WorkerState::default(), None, &[])
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = Arc::clone(&stores[n % 2]);
        let worker = worker.clone();
        tasks.push(tokio::spawn(async move {
            let saved = store
                .save(&worker, &WorkerState::default(), Some(1), &[])
                .await;
            let reserved = store
                .reserve_name("Shared@acme.example", &key(&format!("o{n}")))
                .await
                .unwrap();
            (saved, reserved)
        }));
    }
    let (mut saves, mut wins) = (0, 0);
    for task in tasks {
        let (saved, reserved) = task.await.unwrap();
        match saved {
            Ok(version) => {
                assert_eq!(version, 2);
                saves += 1;
            }
            Err(StoreError::Conflict { found, .. }) => assert_eq!(found, Some(2)),
            Err(e) => panic!("{e}"),
        }
        wins += usize::from(reserved == Reservation::Won);
    }
    assert_eq!((saves, wins), (1, 1));
    assert_eq!(stores[1].load(&worker).await.unwrap().unwrap().version, 2);
}

/// A state that no longer parses is reported with the worker, not silently reset.
#[tokio::test]
async fn corrupt_state_is_a_backend_error_naming_the_worker() {
    let (dir, store) = sqlite();
    let worker = key("1");
    store
        .save(&worker, &WorkerState::default(), None, &[])
        .await
        .unwrap();
    rusqlite::Connection::open(dir.path().join("state.db"))
        .unwrap()
        .execute("UPDATE workers SET state = '{not json'", [])
        .unwrap();
    let err = store.load(&worker).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("load hr:1"), "{err}");
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    assert!(store.path().is_none());
    contract::versioned_save_load(store).await;
}
