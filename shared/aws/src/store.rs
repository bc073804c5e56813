//! [`StateStore`] on one DynamoDB table: the AWS runtime's state (DESIGN.md §6).
//!
//! # Layout
//!
//! One table, partition key `pk` and sort key `sk` (both strings), on-demand capacity, TTL on
//! `expires` (epoch seconds). Every item this store writes:
//!
//! | `pk` | `sk` | attributes | what for |
//! |---|---|---|---|
//! | `W#<worker>` | `STATE` | `worker`, `state` (JSON), `version`, `write_id` | [`StateStore::load`] / [`StateStore::save`] |
//! | `W#<worker>` | `AUDIT#<at>#<seq>#<writer>` | `record` (JSON), `expires` | [`StateStore::audit`] |
//! | `W#<worker>` | `INBOX` | `body` (JSON of the `Worker`), `as_of` (ns) | [`StateStore::put_snapshot`] |
//! | `W#<worker>` | `WAITER#<waiter>` | `waiter` | [`StateStore::wait_for`] |
//! | `WORKERS` | `<worker>` | - | [`StateStore::workers`] (written with the first save) |
//! | `FEED` | `<yyyy-mm-dd>` | `expires` | the days that have audit records |
//! | `FEED#<yyyy-mm-dd>` | `<at>#<seq>#<writer>` | `record`, `expires` | [`StateStore::audit_between`] |
//! | `ID#<name, lowercase>` | `ID` | `owner` | [`StateStore::reserve_name`] |
//! | `E#<event>` | `E` | `until` (ns), `expires` | [`StateStore::first_delivery`] |
//! | `HOLDS` | `HOLD#<id>` | `record` (JSON), `status` | the breaker's holds |
//! | `BUDGET#<budget>` | `BUDGET` | `entries` (key -> ns), `version`, `expires` | [`StateStore::take_budget`] |
//! | `CURSOR#<source>` | `CURSOR` | `cursor` | poll cursors |
//!
//! `<at>` is the instant in RFC 3339 with nine fractional digits (fixed width, so the text order
//! of sort keys is time order); instants that conditions compare are numbers of nanoseconds.
//!
//! # Port semantics on DynamoDB
//!
//! - **Versioned state.** Every state write is one conditional write: `attribute_not_exists(pk)`
//!   for a first save, `version = :expected` otherwise. A refused condition is
//!   [`StoreError::Conflict`], with the version found (from `ReturnValuesOnConditionCheckFailure`,
//!   else a strongly consistent read). Each write carries a unique `write_id`: when the SDK retried
//!   a write whose first attempt had succeeded (a lost response), the refusal shows our own
//!   `write_id` and the save reports success instead of a conflict with itself.
//! - **State and audit together.** A save with audit records is one `TransactWriteItems`: the
//!   conditional state put, each record's item in the worker's partition and its copy in the day's
//!   feed (both `attribute_not_exists`, so append-only), and for a first save the `WORKERS` entry.
//!   All or nothing, as in SQLite. A transaction holds at most 100 items, so a save takes at most
//!   [`MAX_AUDIT_PER_SAVE`] records. A save without records (not the first) is a plain `PutItem`.
//!   A transaction cancelled because another transaction touched the same item at the same moment
//!   (`TransactionConflict`, which has no SQLite counterpart) is tried again, a few times.
//! - **Audit retention.** Audit items expire (DynamoDB TTL) [`DEFAULT_AUDIT_RETENTION`] after the
//!   record's `at` (see [`DynamoStore::with_audit_retention`]); SQLite keeps everything. TTL deletes
//!   within days of the expiry, and reads do not hide records that are past it.
//! - **Audit across workers.** [`StateStore::audit_between`] has no index to read across
//!   partitions, so each record is also written, in the same transaction, to a partition per UTC
//!   day (`FEED#<day>`), and the days are listed in the `FEED` partition (written before the
//!   transaction, once per day and process: a listed day without records is harmless). Reading is a
//!   Query of `FEED` newest first, then of each day newest first until `limit` records. Insertion
//!   order on equal instants is a per-process sequence that never runs behind the wall clock:
//!   exact within one process, wall-clock order across Lambda containers. Every audit record costs
//!   two item writes (as a global secondary index would) and a day's feed is one partition (about
//!   1,000 writes a second at most, far above hrsync's rates).
//! - **Names** are a conditional put (`attribute_not_exists(pk) OR owner = :me`) and a conditional
//!   delete (`owner = :me`): atomic, first owner wins.
//! - **Intake dedupe** is a conditional put of `E#<event>` that succeeds when there is no entry or
//!   the entry's `until` is at or before `now`: an expired entry counts as unseen even while
//!   DynamoDB's TTL (`expires`, rounded up to the second) has not deleted it yet.
//! - **Inbox**: a conditional put that keeps the record unless the stored `as_of` is later.
//! - **Holds** live in one partition (`HOLDS`: few items, listed by one Query); a re-put is a
//!   conditional put that leaves an existing hold alone; resolving is an update conditional on
//!   the status still being `pending`.
//! - **The breaker's budget** is one item per budget holding the keys that took (key -> instant)
//!   and a version. [`StateStore::take_budget`] reads it (strongly consistent), decides as the
//!   port says, and writes the live entries plus its own conditionally on the version it read; a
//!   refused write reads and decides again ([`BUDGET_ATTEMPTS`] times, with jittered backoff).
//!   So takes are serialized per budget, atomic and idempotent per key; a key that is already in
//!   the window, or a full budget, answers without writing. The item expires when its last take
//!   leaves the window.
//! - **Waiters**: one item per waiter in the awaited worker's partition; reading is a Query,
//!   forgetting a delete per waiter named (one added meanwhile is kept for the next read).
//! - **Cursors**: a plain put; the last write wins.
//!
//! Reads that decide are strongly consistent. Every call is at-least-once towards DynamoDB (the
//! SDK retries throttling, 5xx and network errors with backoff). A retry of a write whose first
//! attempt succeeded but whose answer was lost is harmless: puts are idempotent, transactions
//! carry a `ClientRequestToken`, and `save` and `first_delivery` recognise their own `write_id`
//! in the item that refused them. One exception: such a retry of `resolve_hold` answers false
//! (no longer pending) although this call resolved it; the hold is resolved as asked either way.
//!
//! # Errors
//!
//! [`StoreError::Backend`] messages name the operation and the worker, event or hold id, never a
//! name, a record or a state (personal data), and say whether trying again can help (throttling,
//! 5xx, timeouts, network: transient) or not (validation, a missing table, access denied:
//! permanent). The port's `StoreError` has no permanent kind yet, so both are retryable to it.
//!
//! # IAM
//!
//! `dynamodb:GetItem`, `PutItem`, `UpdateItem`, `DeleteItem`, `Query`, `TransactWriteItems` on
//! the table; [`create_table`] also `CreateTable`, `DescribeTable`, `UpdateTimeToLive` and
//! `UpdateContinuousBackups`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, KeySchemaElement,
    KeyType, PointInTimeRecoverySpecification, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};
use hrsync_core::{Worker, WorkerKey, WorkerState};
use hrsync_pipeline::ports::{
    AuditRecord, Hold, HoldStatus, Reservation, StateStore, StoreError, Stored, name_key,
};
use jiff::Timestamp;

/// How long audit records are kept by default: 400 days, a year and a bit for yearly reviews.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);

/// A transaction holds at most 100 items: the state, the `WORKERS` entry and two per record.
pub const MAX_AUDIT_PER_SAVE: usize = 49;

/// How often [`StateStore::take_budget`] reads and decides again after losing its write.
pub const BUDGET_ATTEMPTS: u32 = 30;

/// How often a transaction cancelled by a concurrent transaction (`TransactionConflict`) is
/// tried again.
const TRANSACTION_ATTEMPTS: u32 = 5;

/// The TTL attribute (epoch seconds), as the template enables it.
pub const TTL_ATTRIBUTE: &str = "expires";

const PK: &str = "pk";
const SK: &str = "sk";
const STATE: &str = "STATE";
const INBOX: &str = "INBOX";
const AUDIT_PREFIX: &str = "AUDIT#";
const WAITER_PREFIX: &str = "WAITER#";
const WORKERS: &str = "WORKERS";
const FEED: &str = "FEED";
const HOLDS: &str = "HOLDS";
const HOLD_PREFIX: &str = "HOLD#";

type Item = HashMap<String, AttributeValue>;

/// [`StateStore`] on one DynamoDB table (see the module doc for the layout and the semantics).
/// Cloning shares the client and the audit sequence.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    audit_retention: Duration,
    stamps: Arc<Stamps>,
    /// Days whose `FEED` entry this process has written.
    feed_days: Arc<Mutex<HashSet<String>>>,
}

impl DynamoStore {
    /// A store on `table`, keeping audit records [`DEFAULT_AUDIT_RETENTION`].
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_retention: DEFAULT_AUDIT_RETENTION,
            stamps: Arc::new(Stamps::new()),
            feed_days: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Audit records expire (DynamoDB TTL) this long after their `at`.
    pub fn with_audit_retention(mut self, retention: Duration) -> Self {
        self.audit_retention = retention;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn audit_retention(&self) -> Duration {
        self.audit_retention
    }

    // --- building blocks -----------------------------------------------------------------

    /// A strongly consistent read of one item.
    async fn get(&self, what: &str, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(what, e))?;
        Ok(out.item)
    }

    /// Puts `item` if `condition` holds; otherwise returns the item that refused it (when
    /// DynamoDB sends it back).
    async fn put_if(
        &self,
        what: &str,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<Written, StoreError> {
        let condition = condition.unwrap_or_default();
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Written::Yes),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Written::Refused(refused.item().cloned()))
                }
                _ => Err(backend(what, e)),
            },
        }
    }

    /// Deletes the item if `condition` holds; returns the deleted item (None when there was
    /// none or the condition refused).
    async fn delete_if(
        &self,
        what: &str,
        pk: String,
        sk: &str,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, StoreError> {
        let condition = condition.unwrap_or_default();
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .set_condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.attributes),
            Err(e) => match e.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(None),
                _ => Err(backend(what, e)),
            },
        }
    }

    /// One page of a Query of partition `pk` (sort keys starting with `prefix`), strongly
    /// consistent; returns the items and where the next page starts.
    async fn query_page(
        &self,
        what: &str,
        page: QueryPage<'_>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut condition = Condition::new(if page.prefix.is_some() {
            "#pk = :pk AND begins_with(#sk, :prefix)"
        } else {
            "#pk = :pk"
        })
        .name("#pk", PK)
        .value(":pk", s(page.pk));
        if let Some(prefix) = page.prefix {
            condition = condition.name("#sk", SK).value(":prefix", s(prefix));
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_key_condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .consistent_read(true)
            .scan_index_forward(page.forward)
            .set_limit(page.limit)
            .set_exclusive_start_key(page.start)
            .send()
            .await
            .map_err(|e| backend(what, e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, in sort-key order.
    async fn query_all(
        &self,
        what: &str,
        pk: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = QueryPage {
                pk,
                prefix,
                forward: true,
                limit: None,
                start,
            };
            let (mut got, next) = self.query_page(what, page).await?;
            items.append(&mut got);
            match next {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Runs a transaction, trying it again while it is cancelled only because another
    /// transaction was touching one of its items. `Ok(None)`: written; `Ok(Some(reasons))`:
    /// cancelled, one reason per item.
    async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A token per attempt: the SDK's own retries of one attempt reuse it, so a
            // transaction that succeeded but whose answer was lost is not applied twice.
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(self.stamps.token())
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(None),
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                return Err(backend(what, err));
            };
            let reasons = cancelled.cancellation_reasons().to_vec();
            let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
            let only_contention = codes.contains(&"TransactionConflict")
                && codes
                    .iter()
                    .all(|c| matches!(*c, "None" | "TransactionConflict"));
            if only_contention && attempt < TRANSACTION_ATTEMPTS {
                tracing::debug!(what, attempt, "transaction conflict, trying again");
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return Ok(Some(reasons));
        }
    }

    /// The two items of an audit record (the worker's and the day feed's copy), append-only;
    /// lists the record's day in `FEED` first (once per day and process).
    async fn audit_items(
        &self,
        record: &AuditRecord,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let what = format!("audit of {}", record.worker);
        let text = encode(&what, record)?;
        let stamp = format!("{}#{}", instant(record.at), self.stamps.unique());
        let day = day_of(record.at);
        let expires = n(epoch_seconds_after(record.at, self.audit_retention));
        self.list_feed_day(&what, &day, record.at).await?;
        let own = Item::from([
            (PK.into(), s(worker_pk(&record.worker))),
            (SK.into(), s(format!("{AUDIT_PREFIX}{stamp}"))),
            ("record".into(), s(text.clone())),
            (TTL_ATTRIBUTE.into(), expires.clone()),
        ]);
        let feed = Item::from([
            (PK.into(), s(format!("{FEED}#{day}"))),
            (SK.into(), s(stamp)),
            ("record".into(), s(text)),
            (TTL_ATTRIBUTE.into(), expires),
        ]);
        let append_only = || Condition::new("attribute_not_exists(#pk)").name("#pk", PK);
        Ok(vec![
            self.transact_put(&what, own, Some(append_only()))?,
            self.transact_put(&what, feed, Some(append_only()))?,
        ])
    }

    async fn list_feed_day(&self, what: &str, day: &str, at: Timestamp) -> Result<(), StoreError> {
        let known = self
            .feed_days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(day);
        if known {
            return Ok(());
        }
        // Outlives every record of the day: the day's end plus the retention.
        let expires = epoch_seconds_after(at, self.audit_retention).saturating_add(24 * 3600);
        let entry = Item::from([
            (PK.into(), s(FEED)),
            (SK.into(), s(day)),
            (TTL_ATTRIBUTE.into(), n(expires)),
        ]);
        self.put_if(what, entry, None).await?;
        self.feed_days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(day.to_owned());
        Ok(())
    }

    fn transact_put(
        &self,
        what: &str,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<TransactWriteItem, StoreError> {
        let condition = condition.unwrap_or_default();
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Backend(format!("{what}: {e} (permanent)")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A refused state write: our own earlier attempt (same `write_id`) counts as done,
    /// anything else is a conflict with the version found.
    async fn refused_save(
        &self,
        worker: &WorkerKey,
        expected: Option<u64>,
        refused: Option<Item>,
        write_id: &str,
    ) -> Result<u64, StoreError> {
        let what = format!("save {worker}");
        let found = match refused {
            Some(item) => Some(item),
            None => self.get(&what, worker_pk(worker), STATE).await?,
        };
        let Some(found) = found else {
            return Err(StoreError::Conflict {
                worker: worker.clone(),
                expected,
                found: None,
            });
        };
        let version = number::<u64>(&what, &found, "version")?;
        if string(&what, &found, "write_id").ok() == Some(write_id) {
            return Ok(version);
        }
        Err(StoreError::Conflict {
            worker: worker.clone(),
            expected,
            found: Some(version),
        })
    }
}

/// The answer of a conditional write.
enum Written {
    Yes,
    /// The condition refused; the item as it is, when DynamoDB returned it.
    Refused(Option<Item>),
}

struct QueryPage<'a> {
    pk: &'a str,
    prefix: Option<&'a str>,
    forward: bool,
    limit: Option<i32>,
    start: Option<Item>,
}

/// A condition (or key condition) expression with its placeholders. Every attribute name goes
/// through a `#placeholder`, so DynamoDB's reserved words (`status`, `owner`...) never bite.
#[derive(Debug, Default)]
struct Condition {
    expression: String,
    names: HashMap<String, String>,
    values: Item,
}

impl Condition {
    fn new(expression: &str) -> Self {
        Self {
            expression: expression.to_owned(),
            ..Self::default()
        }
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.insert(placeholder.into(), attribute.into());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.into(), value);
        self
    }

    fn expression(&self) -> Option<String> {
        Some(self.expression.clone()).filter(|e| !e.is_empty())
    }

    /// DynamoDB rejects empty maps: `None` instead.
    fn names(&self) -> Option<HashMap<String, String>> {
        Some(self.names.clone()).filter(|m| !m.is_empty())
    }

    fn values(&self) -> Option<Item> {
        Some(self.values.clone()).filter(|m| !m.is_empty())
    }
}

/// Unique, increasing stamps for audit sort keys and write ids: a per-process sequence that
/// never runs behind the wall clock (nanoseconds since the epoch), plus a random id of this
/// process so two processes never make the same stamp.
struct Stamps {
    process: u64,
    last: Mutex<u64>,
}

impl fmt::Debug for Stamps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stamps({:016x})", self.process)
    }
}

impl Stamps {
    fn new() -> Self {
        Self {
            process: random(),
            last: Mutex::new(0),
        }
    }

    fn next(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = last.saturating_add(1).max(wall);
        *last
    }

    /// `<sequence, 20 digits>#<process, 16 hex digits>`: sorts in insertion order.
    fn unique(&self) -> String {
        format!("{:020}#{:016x}", self.next(), self.process)
    }

    /// 32 characters, within `ClientRequestToken`'s 36.
    fn token(&self) -> String {
        format!("{:016x}{:016x}", self.next(), self.process)
    }
}

/// A random number from std's randomly keyed hasher (no dependency for a few bits of noise).
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// Exponential backoff with full jitter: up to 10 ms, 20 ms, ... capped at 320 ms.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = 10u64 << attempt.clamp(1, 6).saturating_sub(1);
    Duration::from_millis(1 + random() % cap_ms)
}

// --- keys and attributes -----------------------------------------------------------------

fn key(pk: String, sk: &str) -> Item {
    Item::from([(PK.into(), s(pk)), (SK.into(), s(sk))])
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn worker_pk(worker: &WorkerKey) -> String {
    format!("W#{worker}")
}

fn name_pk(name: &str) -> String {
    format!("ID#{}", name_key(name))
}

/// Fixed width (nine fractional digits), so text order is time order.
fn instant(at: Timestamp) -> String {
    format!("{at:.9}")
}

/// The UTC day of an instant, `yyyy-mm-dd`.
fn day_of(at: Timestamp) -> String {
    instant(at).chars().take(10).collect()
}

fn nanos(at: Timestamp) -> AttributeValue {
    n(at.as_nanosecond())
}

/// Epoch seconds, rounded up: TTL must never delete an entry before its exact expiry.
fn epoch_seconds_ceil(at: Timestamp) -> i64 {
    let seconds = at.as_second();
    if at.subsec_nanosecond() > 0 {
        seconds.saturating_add(1)
    } else {
        seconds
    }
}

fn epoch_seconds_after(at: Timestamp, after: Duration) -> i64 {
    epoch_seconds_ceil(at).saturating_add(i64::try_from(after.as_secs()).unwrap_or(i64::MAX))
}

fn string<'a>(what: &str, item: &'a Item, attribute: &str) -> Result<&'a str, StoreError> {
    match item.get(attribute) {
        Some(AttributeValue::S(text)) => Ok(text),
        _ => Err(StoreError::Backend(format!(
            "{what}: the stored item has no text attribute {attribute:?}"
        ))),
    }
}

fn number<T: std::str::FromStr>(what: &str, item: &Item, attribute: &str) -> Result<T, StoreError> {
    match item.get(attribute) {
        Some(AttributeValue::N(text)) => text.parse().map_err(|_| {
            StoreError::Backend(format!(
                "{what}: the stored {attribute:?} is not a number in range"
            ))
        }),
        _ => Err(StoreError::Backend(format!(
            "{what}: the stored item has no number attribute {attribute:?}"
        ))),
    }
}

fn timestamp(what: &str, item: &Item, attribute: &str) -> Result<Timestamp, StoreError> {
    let ns = number::<i128>(what, item, attribute)?;
    Timestamp::from_nanosecond(ns).map_err(|_| {
        StoreError::Backend(format!("{what}: the stored {attribute:?} is out of range"))
    })
}

fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("{what}: cannot encode: {e}")))
}

/// serde_json's messages give a position, never the data.
fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    item: &Item,
    attribute: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(string(what, item, attribute)?).map_err(|e| {
        StoreError::Backend(format!(
            "{what}: the stored {attribute:?} does not parse: {e}"
        ))
    })
}

fn parse_worker(what: &str, text: &str) -> Result<WorkerKey, StoreError> {
    text.parse().map_err(|()| {
        StoreError::Backend(format!(
            "{what}: a stored worker key is not source:employee_id"
        ))
    })
}

// --- errors ------------------------------------------------------------------------------

/// Error codes worth another attempt (besides any 5xx and every network failure).
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
];

/// Whether trying the call again later can succeed.
fn transient<E>(err: &SdkError<E>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(context) => {
            context.raw().status().is_server_error()
                || context
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        // Timeouts, network failures, unparseable responses.
        _ => true,
    }
}

/// A DynamoDB failure as the port's error: the operation, DynamoDB's code and message (which
/// name attributes, never their values), and whether to try again.
fn backend<E>(what: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().map(str::to_owned);
    let detail = match &err {
        SdkError::ServiceError(context) => format!(
            "DynamoDB {}: {}",
            code.as_deref().unwrap_or("error"),
            context.err().message().unwrap_or("(no message)")
        ),
        SdkError::TimeoutError(_) => "DynamoDB did not answer in time".to_owned(),
        _ => format!("DynamoDB: {}", chain(&err)),
    };
    let kind = if transient(&err) {
        "transient: try again later"
    } else {
        match code.as_deref() {
            Some("ResourceNotFoundException") => {
                "permanent: check that the table exists and HRSYNC_TABLE names it"
            }
            Some("AccessDeniedException" | "UnrecognizedClientException") => {
                "permanent: check the function's IAM role"
            }
            _ => "permanent",
        }
    };
    StoreError::Backend(format!("{what}: {detail} ({kind})"))
}

/// An error and its sources, `outer: inner: ...` (Display only, no Debug dumps).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        source = inner.source();
    }
    text
}

/// A cancelled transaction that was not a version conflict (a validation error, throttling...).
fn cancelled(what: &str, reasons: &[CancellationReason]) -> StoreError {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("?")).collect();
    let transient = codes.iter().all(|c| {
        matches!(
            *c,
            "None" | "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    });
    let kind = if transient {
        "transient: try again later"
    } else {
        "permanent"
    };
    StoreError::Backend(format!(
        "{what}: DynamoDB cancelled the transaction (item reasons: {}) ({kind})",
        codes.join(", ")
    ))
}

// --- the port ----------------------------------------------------------------------------

impl StateStore for DynamoStore {
    async fn load(&self, worker: &WorkerKey) -> Result<Option<Stored>, StoreError> {
        let what = format!("load {worker}");
        let Some(item) = self.get(&what, worker_pk(worker), STATE).await? else {
            return Ok(None);
        };
        Ok(Some(Stored {
            state: decode(&what, &item, "state")?,
            version: number(&what, &item, "version")?,
        }))
    }

    async fn save(
        &self,
        worker: &WorkerKey,
        state: &WorkerState,
        expected: Option<u64>,
        audit: &[AuditRecord],
    ) -> Result<u64, StoreError> {
        let what = format!("save {worker}");
        if audit.len() > MAX_AUDIT_PER_SAVE {
            return Err(StoreError::Backend(format!(
                "{what}: {} audit records in one save, at most {MAX_AUDIT_PER_SAVE} fit in a \
                 DynamoDB transaction (permanent)",
                audit.len()
            )));
        }
        let version = match expected {
            None => 1,
            Some(v) => v.checked_add(1).ok_or_else(|| {
                StoreError::Backend(format!("{what}: version {v} is at its maximum (permanent)"))
            })?,
        };
        let write_id = self.stamps.token();
        let item = Item::from([
            (PK.into(), s(worker_pk(worker))),
            (SK.into(), s(STATE)),
            ("worker".into(), s(worker.to_string())),
            ("state".into(), s(encode(&what, state)?)),
            ("version".into(), n(version)),
            ("write_id".into(), s(write_id.clone())),
        ]);
        let condition = match expected {
            None => Condition::new("attribute_not_exists(#pk)").name("#pk", PK),
            Some(v) => Condition::new("#version = :expected")
                .name("#version", "version")
                .value(":expected", n(v)),
        };

        if audit.is_empty() && expected.is_some() {
            return match self.put_if(&what, item, Some(condition)).await? {
                Written::Yes => Ok(version),
                Written::Refused(found) => {
                    self.refused_save(worker, expected, found, &write_id).await
                }
            };
        }

        let mut items = vec![self.transact_put(&what, item, Some(condition))?];
        if expected.is_none() {
            // The first save lists the worker for `workers()` (no Scan needed).
            let listed = key(WORKERS.into(), &worker.to_string());
            items.push(self.transact_put(&what, listed, None)?);
        }
        for record in audit {
            items.extend(self.audit_items(record).await?);
        }
        match self.transact(&what, items).await? {
            None => Ok(version),
            Some(reasons) => match reasons.first() {
                Some(state) if state.code() == Some("ConditionalCheckFailed") => {
                    self.refused_save(worker, expected, state.item().cloned(), &write_id)
                        .await
                }
                _ => Err(cancelled(&what, &reasons)),
            },
        }
    }

    async fn workers(&self) -> Result<Vec<WorkerKey>, StoreError> {
        let what = "list workers";
        let mut workers = self
            .query_all(what, WORKERS, None)
            .await?
            .iter()
            .map(|item| parse_worker(what, string(what, item, SK)?))
            .collect::<Result<Vec<_>, _>>()?;
        // WorkerKey's order (source, then id), which is not the text order of "a:b".
        workers.sort();
        Ok(workers)
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let what = format!("append audit of {}", record.worker);
        let items = self.audit_items(record).await?;
        match self.transact(&what, items).await? {
            None => Ok(()),
            Some(reasons) => Err(cancelled(&what, &reasons)),
        }
    }

    async fn audit(&self, worker: &WorkerKey) -> Result<Vec<AuditRecord>, StoreError> {
        let what = format!("read audit of {worker}");
        self.query_all(&what, &worker_pk(worker), Some(AUDIT_PREFIX))
            .await?
            .iter()
            .map(|item| decode(&what, item, "record"))
            .collect()
    }

    async fn reserve_name(&self, name: &str, owner: &WorkerKey) -> Result<Reservation, StoreError> {
        // The name is personal data: errors name the owner only.
        let what = format!("reserve a name for {owner}");
        let me = owner.to_string();
        loop {
            let item = Item::from([
                (PK.into(), s(name_pk(name))),
                (SK.into(), s("ID")),
                ("owner".into(), s(me.clone())),
            ]);
            let mine = Condition::new("attribute_not_exists(#pk) OR #owner = :me")
                .name("#pk", PK)
                .name("#owner", "owner")
                .value(":me", s(me.clone()));
            let holder = match self.put_if(&what, item, Some(mine)).await? {
                Written::Yes => return Ok(Reservation::Won),
                Written::Refused(Some(item)) => Some(item),
                Written::Refused(None) => self.get(&what, name_pk(name), "ID").await?,
            };
            // None: released between our put and our read; try again.
            if let Some(holder) = holder {
                let holder = parse_worker(&what, string(&what, &holder, "owner")?)?;
                return Ok(if &holder == owner {
                    Reservation::Won
                } else {
                    Reservation::HeldBy(holder)
                });
            }
        }
    }

    async fn release_name(&self, name: &str, owner: &WorkerKey) -> Result<(), StoreError> {
        let what = format!("release a name of {owner}");
        let mine = Condition::new("#owner = :me")
            .name("#owner", "owner")
            .value(":me", s(owner.to_string()));
        self.delete_if(&what, name_pk(name), "ID", Some(mine))
            .await?;
        Ok(())
    }

    async fn name_owner(&self, name: &str) -> Result<Option<WorkerKey>, StoreError> {
        let what = "look up a name's owner";
        self.get(what, name_pk(name), "ID")
            .await?
            .map(|item| parse_worker(what, string(what, &item, "owner")?))
            .transpose()
    }

    async fn first_delivery(
        &self,
        event: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
        let what = format!("dedupe event {event}");
        let write_id = self.stamps.token();
        let item = Item::from([
            (PK.into(), s(format!("E#{event}"))),
            (SK.into(), s("E")),
            ("until".into(), nanos(expires)),
            (TTL_ATTRIBUTE.into(), n(epoch_seconds_ceil(expires))),
            ("write_id".into(), s(write_id.clone())),
        ]);
        // An entry past its `until` counts as unseen, whether or not TTL has removed it.
        let unseen = Condition::new("attribute_not_exists(#pk) OR #until <= :now")
            .name("#pk", PK)
            .name("#until", "until")
            .value(":now", nanos(now));
        Ok(match self.put_if(&what, item, Some(unseen)).await? {
            Written::Yes => true,
            // Our own write, retried by the SDK after its answer was lost, is still the first.
            Written::Refused(Some(found)) => {
                string(&what, &found, "write_id").ok() == Some(&write_id)
            }
            Written::Refused(None) => false,
        })
    }

    async fn delivered(&self, event: &str, now: Timestamp) -> Result<bool, StoreError> {
        let what = format!("check delivery of event {event}");
        match self.get(&what, format!("E#{event}"), "E").await? {
            Some(item) => Ok(timestamp(&what, &item, "until")? > now),
            None => Ok(false),
        }
    }

    async fn put_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        let what = format!("put hold {}", hold.id);
        let item = Item::from([
            (PK.into(), s(HOLDS)),
            (SK.into(), s(format!("{HOLD_PREFIX}{}", hold.id))),
            ("status".into(), s(hold.status.as_str())),
            ("record".into(), s(encode(&what, hold)?)),
        ]);
        // An existing hold keeps its status: a re-run must not undo an approval.
        let new = Condition::new("attribute_not_exists(#pk)").name("#pk", PK);
        self.put_if(&what, item, Some(new)).await?;
        Ok(())
    }

    async fn holds(&self, status: Option<HoldStatus>) -> Result<Vec<Hold>, StoreError> {
        let what = "list holds";
        let mut holds = self
            .query_all(what, HOLDS, Some(HOLD_PREFIX))
            .await?
            .iter()
            .map(|item| decode::<Hold>(what, item, "record"))
            .filter(|hold| match (hold, status) {
                (Ok(hold), Some(status)) => hold.status == status,
                _ => true,
            })
            .collect::<Result<Vec<_>, _>>()?;
        holds.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(holds)
    }

    async fn resolve_hold(&self, id: &str, status: HoldStatus) -> Result<bool, StoreError> {
        if status == HoldStatus::Pending {
            return Ok(false);
        }
        let what = format!("resolve hold {id}");
        let sk = format!("{HOLD_PREFIX}{id}");
        let Some(item) = self.get(&what, HOLDS.into(), &sk).await? else {
            return Ok(false);
        };
        let mut hold: Hold = decode(&what, &item, "record")?;
        if hold.status != HoldStatus::Pending {
            return Ok(false);
        }
        hold.status = status;
        let pending = Condition::new("#status = :pending")
            .name("#status", "status")
            .name("#record", "record")
            .value(":pending", s(HoldStatus::Pending.as_str()))
            .value(":status", s(status.as_str()))
            .value(":record", s(encode(&what, &hold)?));
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(HOLDS.into(), &sk)))
            .update_expression("SET #status = :status, #record = :record")
            .set_condition_expression(pending.expression())
            .set_expression_attribute_names(pending.names())
            .set_expression_attribute_values(pending.values())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // Someone resolved it between our read and our write.
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(backend(&what, e)),
            },
        }
    }

    async fn hold(&self, id: &str) -> Result<Option<Hold>, StoreError> {
        let what = format!("read hold {id}");
        self.get(&what, HOLDS.into(), &format!("{HOLD_PREFIX}{id}"))
            .await?
            .map(|item| decode(&what, &item, "record"))
            .transpose()
    }

    async fn put_snapshot(&self, snapshot: &Worker) -> Result<bool, StoreError> {
        let what = format!("put snapshot of {}", snapshot.key);
        let item = Item::from([
            (PK.into(), s(worker_pk(&snapshot.key))),
            (SK.into(), s(INBOX)),
            ("as_of".into(), nanos(snapshot.as_of)),
            ("body".into(), s(encode(&what, snapshot)?)),
        ]);
        let not_newer = Condition::new("attribute_not_exists(#pk) OR #as_of <= :as_of")
            .name("#pk", PK)
            .name("#as_of", "as_of")
            .value(":as_of", nanos(snapshot.as_of));
        Ok(matches!(
            self.put_if(&what, item, Some(not_newer)).await?,
            Written::Yes
        ))
    }

    async fn snapshot(&self, worker: &WorkerKey) -> Result<Option<Worker>, StoreError> {
        let what = format!("read snapshot of {worker}");
        self.get(&what, worker_pk(worker), INBOX)
            .await?
            .map(|item| decode(&what, &item, "body"))
            .transpose()
    }

    async fn take_budget(
        &self,
        budget: &str,
        key: &str,
        now: Timestamp,
        window: Duration,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let what = format!("take from budget {budget}");
        let since = now.checked_sub(window).map_err(|e| {
            StoreError::Backend(format!("{what}: {now} - {window:?} is out of range: {e}"))
        })?;
        let pk = format!("BUDGET#{budget}");
        for attempt in 1..=BUDGET_ATTEMPTS {
            let item = self.get(&what, pk.clone(), "BUDGET").await?;
            let (version, entries) = match &item {
                Some(item) => (
                    number::<u64>(&what, item, "version")?,
                    budget_entries(&what, item)?,
                ),
                None => (0, Vec::new()),
            };
            // The window is (since, ...]: takes stamped after `now` count too.
            let mut live: Vec<(String, Timestamp)> =
                entries.into_iter().filter(|(_, at)| *at > since).collect();
            if live.iter().any(|(k, _)| k == key) {
                return Ok(true);
            }
            if live.len() as u64 >= limit {
                return Ok(false);
            }
            live.push((key.to_owned(), now));
            let last = live.iter().map(|(_, at)| *at).max().unwrap_or(now);
            let written = Item::from([
                (PK.into(), s(pk.clone())),
                (SK.into(), s("BUDGET")),
                ("version".into(), n(version + 1)),
                (
                    "entries".into(),
                    AttributeValue::M(live.iter().map(|(k, at)| (k.clone(), nanos(*at))).collect()),
                ),
                // Gone once its last take has left the window.
                (TTL_ATTRIBUTE.into(), n(epoch_seconds_after(last, window))),
            ]);
            let unchanged = if version == 0 {
                Condition::new("attribute_not_exists(#pk)").name("#pk", PK)
            } else {
                Condition::new("#version = :version")
                    .name("#version", "version")
                    .value(":version", n(version))
            };
            match self.put_if(&what, written, Some(unchanged)).await? {
                Written::Yes => return Ok(true),
                Written::Refused(_) => {
                    tracing::debug!(budget, attempt, "budget changed meanwhile, deciding again");
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Err(StoreError::Backend(format!(
            "{what}: still contended after {BUDGET_ATTEMPTS} attempts (transient: try again later)"
        )))
    }

    async fn wait_for(&self, awaited: &WorkerKey, waiter: &WorkerKey) -> Result<(), StoreError> {
        let what = format!("{waiter} waits for {awaited}");
        let item = Item::from([
            (PK.into(), s(worker_pk(awaited))),
            (SK.into(), s(format!("{WAITER_PREFIX}{waiter}"))),
            ("waiter".into(), s(waiter.to_string())),
        ]);
        self.put_if(&what, item, None).await?;
        Ok(())
    }

    async fn waiters(&self, awaited: &WorkerKey) -> Result<Vec<WorkerKey>, StoreError> {
        let what = format!("read waiters for {awaited}");
        let pk = worker_pk(awaited);
        let mut waiters = Vec::new();
        for item in self.query_all(&what, &pk, Some(WAITER_PREFIX)).await? {
            waiters.push(parse_worker(&what, string(&what, &item, "waiter")?)?);
        }
        waiters.sort();
        Ok(waiters)
    }

    async fn forget_waiters(
        &self,
        awaited: &WorkerKey,
        waiters: &[WorkerKey],
    ) -> Result<(), StoreError> {
        let what = format!("forget waiters for {awaited}");
        let pk = worker_pk(awaited);
        for waiter in waiters {
            let sk = format!("{WAITER_PREFIX}{waiter}");
            self.delete_if(&what, pk.clone(), &sk, None).await?;
        }
        Ok(())
    }

    async fn audit_between(
        &self,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let what = "read the audit across workers";
        let (first_day, last_day) = (day_of(since), day_of(until));
        let mut records = Vec::new();
        let mut days_from = None;
        while records.len() < limit {
            let page = QueryPage {
                pk: FEED,
                prefix: None,
                forward: false,
                limit: None,
                start: days_from.take(),
            };
            let (days, next_days) = self.query_page(what, page).await?;
            for day in &days {
                let day = string(what, day, SK)?;
                if day > last_day.as_str() || day < first_day.as_str() {
                    continue;
                }
                let feed = format!("{FEED}#{day}");
                let mut from = None;
                while records.len() < limit {
                    let want = i32::try_from(limit - records.len()).unwrap_or(i32::MAX);
                    let page = QueryPage {
                        pk: &feed,
                        prefix: None,
                        forward: false,
                        limit: Some(want),
                        start: from.take(),
                    };
                    let (items, next) = self.query_page(what, page).await?;
                    for item in &items {
                        let record: AuditRecord = decode(what, item, "record")?;
                        if since <= record.at && record.at < until {
                            records.push(record);
                        }
                    }
                    match next {
                        Some(next) => from = Some(next),
                        None => break,
                    }
                }
            }
            match next_days {
                Some(next) => days_from = Some(next),
                None => break,
            }
        }
        records.truncate(limit);
        Ok(records)
    }

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        let what = format!("read the poll cursor of {source}");
        self.get(&what, format!("CURSOR#{source}"), "CURSOR")
            .await?
            .map(|item| string(&what, &item, "cursor").map(str::to_owned))
            .transpose()
    }

    async fn put_cursor(&self, source: &str, cursor: &str) -> Result<(), StoreError> {
        let what = format!("move the poll cursor of {source}");
        let item = Item::from([
            (PK.into(), s(format!("CURSOR#{source}"))),
            (SK.into(), s("CURSOR")),
            ("cursor".into(), s(cursor)),
        ]);
        self.put_if(&what, item, None).await?;
        Ok(())
    }
}

/// The takes a budget item holds: key -> instant.
fn budget_entries(what: &str, item: &Item) -> Result<Vec<(String, Timestamp)>, StoreError> {
    let Some(AttributeValue::M(entries)) = item.get("entries") else {
        return Err(StoreError::Backend(format!(
            "{what}: the stored budget has no entries"
        )));
    };
    entries
        .iter()
        .map(|(key, at)| {
            let at = Item::from([("at".to_owned(), at.clone())]);
            Ok((key.clone(), timestamp(what, &at, "at")?))
        })
        .collect()
}

/// Creates the state table as `infra/template.yaml` declares it (key schema, on-demand
/// capacity, TTL on [`TTL_ATTRIBUTE`], point-in-time recovery) and waits until it is active: for
/// tests and local demos (`hrsync` against LocalStack/moto or a sandbox account). Deletion
/// protection and a customer managed key, which the template makes parameters, are left off so
/// a throwaway table can be deleted.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let what = format!("create table {name}");
    let build = |e: aws_sdk_dynamodb::error::BuildError| {
        StoreError::Backend(format!("{what}: {e} (permanent)"))
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key_part = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PK).map_err(build)?)
        .attribute_definitions(attribute(SK).map_err(build)?)
        .key_schema(key_part(PK, KeyType::Hash).map_err(build)?)
        .key_schema(key_part(SK, KeyType::Range).map_err(build)?)
        .send()
        .await
        .map_err(|e| backend(&what, e))?;
    client
        .wait_until_table_exists()
        .table_name(name)
        .wait(Duration::from_secs(120))
        .await
        .map_err(|e| {
            StoreError::Backend(format!(
                "{what}: the table did not become active: {}",
                chain(&e)
            ))
        })?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(build)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| backend(&what, e))?;
    let recovery = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .map_err(build)?;
    client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(recovery)
        .send()
        .await
        .map_err(|e| backend(&what, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_increase_and_sort_as_text() {
        let stamps = Stamps::new();
        let first = stamps.unique();
        let second = stamps.unique();
        assert!(first < second, "{first} {second}");
        assert_eq!(first.len(), second.len());
        assert_eq!(stamps.token().len(), 32);
    }

    #[test]
    fn days_and_ttl_seconds() {
        let half: Timestamp = "2026-01-02T23:59:59.5Z".parse().unwrap();
        assert_eq!(day_of(half), "2026-01-02");
        assert_eq!(epoch_seconds_ceil(half), half.as_second() + 1);
        let whole: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(epoch_seconds_ceil(whole), whole.as_second());
        assert_eq!(
            epoch_seconds_after(whole, Duration::from_secs(60)),
            whole.as_second() + 60
        );
    }

    #[test]
    fn backoff_stays_small() {
        for attempt in 0..40 {
            assert!(backoff(attempt) <= Duration::from_millis(321));
        }
    }
}
