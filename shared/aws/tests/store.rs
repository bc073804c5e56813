//! The state-store contract (hrsync_pipeline::ports::contract) against `DynamoStore` on a moto
//! server, and what only DynamoDB can show: conditional writes between processes, TTL-backed
//! dedupe, transactions that fail whole, the table as the template makes it, error mapping.

mod moto;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType, TimeToLiveStatus};
use hrsync_aws::store::{DEFAULT_AUDIT_RETENTION, DynamoStore, create_table};
use hrsync_core::{WorkerKey, WorkerState};
use hrsync_pipeline::ports::{AuditRecord, StateStore, StoreError};
use jiff::{SignedDuration, Timestamp};
use moto::Moto;

const TABLE: &str = "hrsync-state";

/// A fresh moto server with the table; the server lives as long as the returned guard.
async fn dynamo() -> (Moto, Arc<DynamoStore>) {
    let (moto, client) = table().await;
    (moto, Arc::new(DynamoStore::new(client, TABLE)))
}

async fn table() -> (Moto, Client) {
    let moto = Moto::start();
    let client = Client::new(&moto.sdk_config().await);
    create_table(&client, TABLE)
        .await
        .expect("creates the table");
    (moto, client)
}

/// One `#[tokio::test]` per contract function, each on its own moto server.
macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        mod contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (_moto, store) = super::dynamo().await;
                    hrsync_pipeline::ports::contract::$case(store).await;
                }
            )*
        }
    };
}

// Every StateStore case, as the SQLite and memory stores run them.
hrsync_pipeline::store_contract_cases!(contract_tests);

fn key(id: &str) -> WorkerKey {
    WorkerKey::new("hr", id)
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 literal")
}

fn marked(n: i64) -> WorkerState {
    WorkerState {
        left_at: Some(Timestamp::UNIX_EPOCH + SignedDuration::from_secs(n)),
        ..WorkerState::default()
    }
}

fn record(worker: &WorkerKey, at_: &str, action: &str) -> AuditRecord {
    AuditRecord::new(
        worker,
        at(at_),
        "mapping",
        action,
        format!("test {action}"),
        "t",
    )
}

async fn raw_item(client: &Client, pk: &str, sk: &str) -> Option<Item> {
    client
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

type Item = std::collections::HashMap<String, AttributeValue>;

async fn partition(client: &Client, pk: &str) -> Vec<Item> {
    client
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .expect("query")
        .items
        .unwrap_or_default()
}

fn number(item: &Item, attribute: &str) -> i64 {
    match item.get(attribute) {
        Some(AttributeValue::N(text)) => text.parse().expect("a number"),
        other => panic!("{attribute}: {other:?}"),
    }
}

/// Two processes (two stores, as two Lambda containers) read version 1 and write at once:
/// exactly one wins, the other gets a Conflict naming version 2, writes nothing, reads again
/// and wins the next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_update_loses_the_conditional_write_and_wins_after_reading_again() {
    let (_moto, client) = table().await;
    let stores = [
        Arc::new(DynamoStore::new(client.clone(), TABLE)),
        Arc::new(DynamoStore::new(client.clone(), TABLE)),
    ];
    let ada = key("1");
    stores[0]
        .save(
            &ada,
            &marked(0),
            None,
            &[record(&ada, "2026-03-01T09:00:00Z", "join")],
        )
        .await
        .unwrap();
    let read = [
        stores[0].load(&ada).await.unwrap().unwrap(),
        stores[1].load(&ada).await.unwrap().unwrap(),
    ];
    assert_eq!((read[0].version, read[1].version), (1, 1));

    let tasks: Vec<_> = (0..2)
        .map(|n| {
            let store = Arc::clone(&stores[n]);
            let ada = ada.clone();
            tokio::spawn(async move {
                let audit = [record(&ada, "2026-03-01T10:00:00Z", &format!("move-{n}"))];
                store
                    .save(&ada, &marked(n as i64 + 1), Some(1), &audit)
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let winner = results.iter().position(Result::is_ok).expect("one wins");
    let loser = 1 - winner;
    assert_eq!(results[winner], Ok(2));
    assert_eq!(
        results[loser],
        Err(StoreError::Conflict {
            worker: ada.clone(),
            expected: Some(1),
            found: Some(2)
        })
    );
    let stored = stores[loser].load(&ada).await.unwrap().unwrap();
    assert_eq!(
        stored.state,
        marked(winner as i64 + 1),
        "the loser wrote nothing"
    );
    let actions = |records: Vec<AuditRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.action).collect()
    };
    assert_eq!(
        actions(stores[loser].audit(&ada).await.unwrap()),
        ["join".to_owned(), format!("move-{winner}")],
        "the loser's audit did not land either"
    );

    // The loser read again: its next write names version 2 and wins.
    let again = [record(
        &ada,
        "2026-03-01T10:00:01Z",
        &format!("move-{loser}"),
    )];
    assert_eq!(
        stores[loser]
            .save(&ada, &marked(10), Some(stored.version), &again)
            .await,
        Ok(3)
    );
    let stored = stores[winner].load(&ada).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.state), (3, marked(10)));
    assert_eq!(
        actions(stores[winner].audit(&ada).await.unwrap()),
        [
            "join".to_owned(),
            format!("move-{winner}"),
            format!("move-{loser}")
        ]
    );
    // The same holds for writes without audit (a plain conditional PutItem).
    assert_eq!(stores[0].save(&ada, &marked(11), Some(3), &[]).await, Ok(4));
    assert!(matches!(
        stores[1].save(&ada, &marked(12), Some(3), &[]).await,
        Err(StoreError::Conflict { found: Some(4), .. })
    ));
}

/// A dedupe entry past its expiry counts as unseen although it is still in the table (moto, like
/// DynamoDB within its TTL delay, has not deleted it); its TTL attribute is in epoch seconds,
/// rounded up, and a new first delivery replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_dedupe_entry_counts_as_unseen_before_ttl_deletes_it() {
    let (_moto, client) = table().await;
    let store = DynamoStore::new(client.clone(), TABLE);
    let t0 = at("2026-03-01T09:00:00Z");
    let expires = at("2026-03-01T10:00:00.25Z");
    assert!(store.first_delivery("evt-1", t0, expires).await.unwrap());

    let entry = raw_item(&client, "E#evt-1", "E").await.expect("stored");
    assert_eq!(number(&entry, "expires"), expires.as_second() + 1);

    let later = at("2026-03-01T11:00:00Z");
    assert!(
        raw_item(&client, "E#evt-1", "E").await.is_some(),
        "TTL has not removed it"
    );
    assert!(!store.delivered("evt-1", later).await.unwrap());
    let next = at("2026-03-01T12:00:00Z");
    assert!(store.first_delivery("evt-1", later, next).await.unwrap());
    let entry = raw_item(&client, "E#evt-1", "E").await.expect("stored");
    assert_eq!(number(&entry, "expires"), next.as_second());
    assert!(store.delivered("evt-1", later).await.unwrap());
    assert!(!store.first_delivery("evt-1", later, next).await.unwrap());
}

/// A transaction DynamoDB refuses for another reason than the version (here an audit record
/// over the 400 KB item limit) leaves neither the state nor any of its audit records, and its
/// error is no conflict, says it is permanent and carries no record content.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_transaction_leaves_neither_state_nor_audit() {
    let (_moto, store) = dynamo().await;
    let ada = key("1");
    let fine = record(&ada, "2026-03-01T09:00:00Z", "join");
    let mut huge = record(&ada, "2026-03-01T09:00:01Z", "create");
    huge.cause = format!("Ada Lovelace {}", "x".repeat(500 * 1024));

    let err = store
        .save(&ada, &marked(1), None, &[fine.clone(), huge.clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("save hr:1"), "{message}");
    assert!(message.contains("permanent"), "{message}");
    assert!(!message.contains("Lovelace"), "{message}");
    assert_eq!(store.load(&ada).await.unwrap(), None);
    assert_eq!(store.audit(&ada).await.unwrap(), vec![]);
    assert_eq!(store.recent_audit(10).await.unwrap(), vec![]);
    assert_eq!(store.workers().await.unwrap(), vec![]);

    // An update of an existing worker fails the same way and keeps version 1 and its audit.
    store
        .save(&ada, &marked(1), None, std::slice::from_ref(&fine))
        .await
        .unwrap();
    let err = store
        .save(&ada, &marked(2), Some(1), &[huge])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let stored = store.load(&ada).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.state), (1, marked(1)));
    assert_eq!(store.audit(&ada).await.unwrap(), vec![fine.clone()]);
    assert_eq!(store.recent_audit(10).await.unwrap(), vec![fine]);
}

/// The table as infra/template.yaml declares it: pk/sk strings, on-demand, TTL on `expires`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_table_matches_the_template() {
    let (_moto, client) = table().await;
    let table = client
        .describe_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<(String, KeyType)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("pk".to_owned(), KeyType::Hash),
            ("sk".to_owned(), KeyType::Range)
        ]
    );
    assert!(
        table
            .attribute_definitions()
            .iter()
            .all(|a| a.attribute_type().as_str() == "S")
    );
    assert_eq!(
        table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .cloned(),
        Some(BillingMode::PayPerRequest)
    );
    assert!(table.global_secondary_indexes().is_empty(), "no GSI");
    let ttl = client
        .describe_time_to_live()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

/// Audit items (the worker's and the day feed's copy) expire the retention after their `at`;
/// 400 days unless the constructor says otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_records_expire_after_the_retention() {
    let (_moto, client) = table().await;
    let ada = key("1");
    let at_ = at("2026-03-01T09:00:00Z");
    let default = DynamoStore::new(client.clone(), TABLE);
    assert_eq!(default.audit_retention(), DEFAULT_AUDIT_RETENTION);
    assert_eq!(DEFAULT_AUDIT_RETENTION, Duration::from_secs(400 * 86_400));
    default
        .append_audit(&record(&ada, "2026-03-01T09:00:00Z", "join"))
        .await
        .unwrap();
    let month = Duration::from_secs(30 * 86_400);
    let short = DynamoStore::new(client.clone(), TABLE).with_audit_retention(month);
    short
        .save(
            &ada,
            &marked(1),
            None,
            &[record(&ada, "2026-03-01T09:00:00Z", "create")],
        )
        .await
        .unwrap();

    let own = partition(&client, "W#hr:1").await;
    let expiries = |items: &[Item]| -> Vec<i64> {
        let mut e: Vec<i64> = items
            .iter()
            .filter(|i| i.contains_key("record"))
            .map(|i| number(i, "expires"))
            .collect();
        e.sort();
        e
    };
    let expected = vec![
        at_.as_second() + 30 * 86_400,
        at_.as_second() + 400 * 86_400,
    ];
    assert_eq!(expiries(&own), expected);
    let feed = partition(&client, "FEED#2026-03-01").await;
    assert_eq!(expiries(&feed), expected);
    // The state itself never expires.
    let state = raw_item(&client, "W#hr:1", "STATE").await.unwrap();
    assert!(!state.contains_key("expires"));
}

/// Two processes race for one budget: the limit holds across them, and each winner, only,
/// wins again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_budget_holds_across_processes() {
    let (_moto, client) = table().await;
    let stores = [
        Arc::new(DynamoStore::new(client.clone(), TABLE)),
        Arc::new(DynamoStore::new(client.clone(), TABLE)),
    ];
    let t0 = at("2026-03-01T09:00:00Z");
    let hour = Duration::from_secs(3600);
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let store = Arc::clone(&stores[n % 2]);
            tokio::spawn(async move {
                let key = format!("k{n}");
                let won = store.take_budget("disable", &key, t0, hour, 4).await;
                (key, won.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (key, won) = task.await.unwrap();
        if won {
            winners.push(key);
        }
    }
    assert_eq!(winners.len(), 4, "{winners:?}");
    for n in 0..10 {
        let key = format!("k{n}");
        let again = stores[(n + 1) % 2]
            .take_budget("disable", &key, t0 + SignedDuration::from_mins(1), hour, 4)
            .await
            .unwrap();
        assert_eq!(again, winners.contains(&key), "{key}");
    }
    // One item holds the live takes and the version that serializes writers.
    let budget = raw_item(&client, "BUDGET#disable", "BUDGET").await.unwrap();
    assert_eq!(number(&budget, "version"), 4);
    assert_eq!(
        number(&budget, "expires"),
        (t0 + SignedDuration::from_hours(1)).as_second()
    );
}

/// A missing table is a permanent backend error naming the operation (not a name); an
/// unreachable endpoint is a transient one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_name_the_operation_and_whether_to_retry() {
    let (moto, client) = table().await;
    let missing = DynamoStore::new(client, "no-such-table");
    let err = missing
        .reserve_name("ada.lovelace@acme.example", &key("1"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(message.contains("reserve a name for hr:1"), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    assert!(message.contains("permanent"), "{message}");
    assert!(!message.to_lowercase().contains("lovelace"), "{message}");

    // A port nobody listens on (moto's, once it is gone).
    let config = moto.sdk_config().await;
    drop(moto);
    let gone = DynamoStore::new(Client::new(&config), TABLE);
    let err = gone.load(&key("1")).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("load hr:1"), "{message}");
    assert!(message.contains("transient"), "{message}");
}

/// recent_audit and audit_between read across several days' partitions and pages, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recent_audit_spans_days_and_pages() {
    let (_moto, store) = dynamo().await;
    let mut appended = Vec::new();
    for day in 1..=4 {
        for hour in 0..3 {
            let worker = key(&format!("{}", (day + hour) % 3));
            let r = record(
                &worker,
                &format!("2026-01-0{day}T0{hour}:00:00Z"),
                &format!("d{day}h{hour}"),
            );
            store.append_audit(&r).await.unwrap();
            appended.push(r);
        }
    }
    appended.reverse();
    assert_eq!(store.recent_audit(100).await.unwrap(), appended);
    assert_eq!(store.recent_audit(5).await.unwrap(), appended[..5].to_vec());
    assert_eq!(store.recent_audit(1).await.unwrap(), appended[..1].to_vec());

    // A window from the middle of day 2 to the start of day 4 skips the other days' pages.
    let at = |text: &str| -> jiff::Timestamp { text.parse().unwrap() };
    let window = store
        .audit_between(at("2026-01-02T01:00:00Z"), at("2026-01-04T00:00:00Z"), 100)
        .await
        .unwrap();
    let actions: Vec<&str> = window.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["d3h2", "d3h1", "d3h0", "d2h2", "d2h1"]);
    let two = store
        .audit_between(at("2026-01-02T01:00:00Z"), at("2026-01-04T00:00:00Z"), 2)
        .await
        .unwrap();
    assert_eq!(two, window[..2].to_vec());
}
