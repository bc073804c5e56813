//! In-memory ports: [`MemoryStore`], [`MemoryQueue`] and [`MemoryTimers`]. Fast stage
//! tests, and the reference the durable adapters are tested against (the same contracts run
//! over both).

mod queue;
mod timers;

pub use queue::MemoryQueue;
pub use timers::MemoryTimers;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hrsync_core::{Worker, WorkerKey, WorkerState};
use jiff::Timestamp;

use crate::ports::{
    AuditRecord, Hold, HoldStatus, Reservation, StateStore, StoreError, Stored, name_key,
};

/// Everything behind one lock, so every method is atomic like a database transaction.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    workers: BTreeMap<WorkerKey, Stored>,
    /// In insertion order.
    audit: Vec<AuditRecord>,
    /// [`name_key`] -> owner.
    names: HashMap<String, WorkerKey>,
    /// Event -> expiry.
    deliveries: HashMap<String, Timestamp>,
    cursors: HashMap<String, String>,
    holds: BTreeMap<String, Hold>,
    /// The intake's inbox: the latest HR record per worker.
    snapshots: HashMap<WorkerKey, Worker>,
    /// Budget -> key -> when it took.
    budgets: HashMap<String, HashMap<String, Timestamp>>,
    /// Awaited -> its waiters.
    waiters: BTreeMap<WorkerKey, BTreeSet<WorkerKey>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each method leaves `Inner` consistent before anything can panic, so a poisoned
        // lock still guards good data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StateStore for MemoryStore {
    async fn load(&self, worker: &WorkerKey) -> Result<Option<Stored>, StoreError> {
        Ok(self.lock().workers.get(worker).cloned())
    }

    async fn save(
        &self,
        worker: &WorkerKey,
        state: &WorkerState,
        expected: Option<u64>,
        audit: &[AuditRecord],
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let found = inner.workers.get(worker).map(|stored| stored.version);
        if found != expected {
            return Err(StoreError::Conflict {
                worker: worker.clone(),
                expected,
                found,
            });
        }
        let version = found.map_or(1, |v| v + 1);
        inner.workers.insert(
            worker.clone(),
            Stored {
                state: state.clone(),
                version,
            },
        );
        inner.audit.extend(audit.iter().cloned());
        Ok(version)
    }

    async fn workers(&self) -> Result<Vec<WorkerKey>, StoreError> {
        Ok(self.lock().workers.keys().cloned().collect())
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.lock().audit.push(record.clone());
        Ok(())
    }

    async fn audit(&self, worker: &WorkerKey) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records: Vec<AuditRecord> = self
            .lock()
            .audit
            .iter()
            .filter(|record| &record.worker == worker)
            .cloned()
            .collect();
        // Stable: equal instants keep insertion order.
        records.sort_by_key(|record| record.at);
        Ok(records)
    }

    async fn reserve_name(&self, name: &str, owner: &WorkerKey) -> Result<Reservation, StoreError> {
        let mut inner = self.lock();
        let holder = inner
            .names
            .entry(name_key(name))
            .or_insert_with(|| owner.clone());
        Ok(if holder == owner {
            Reservation::Won
        } else {
            Reservation::HeldBy(holder.clone())
        })
    }

    async fn release_name(&self, name: &str, owner: &WorkerKey) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = name_key(name);
        if inner.names.get(&key) == Some(owner) {
            inner.names.remove(&key);
        }
        Ok(())
    }

    async fn name_owner(&self, name: &str) -> Result<Option<WorkerKey>, StoreError> {
        Ok(self.lock().names.get(&name_key(name)).cloned())
    }

    async fn first_delivery(
        &self,
        event: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        // Forget what has expired, as the TTL of the DynamoDB table does.
        inner.deliveries.retain(|_, until| *until > now);
        if inner.deliveries.contains_key(event) {
            return Ok(false);
        }
        inner.deliveries.insert(event.to_owned(), expires);
        Ok(true)
    }

    async fn put_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        self.lock()
            .holds
            .entry(hold.id.clone())
            .or_insert_with(|| hold.clone());
        Ok(())
    }

    async fn holds(&self, status: Option<HoldStatus>) -> Result<Vec<Hold>, StoreError> {
        let mut holds: Vec<Hold> = self
            .lock()
            .holds
            .values()
            .filter(|hold| status.is_none_or(|s| hold.status == s))
            .cloned()
            .collect();
        holds.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(holds)
    }

    async fn resolve_hold(&self, id: &str, status: HoldStatus) -> Result<bool, StoreError> {
        if status == HoldStatus::Pending {
            return Ok(false);
        }
        let mut inner = self.lock();
        match inner.holds.get_mut(id) {
            Some(hold) if hold.status == HoldStatus::Pending => {
                hold.status = status;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn hold(&self, id: &str) -> Result<Option<Hold>, StoreError> {
        Ok(self.lock().holds.get(id).cloned())
    }

    async fn put_snapshot(&self, snapshot: &Worker) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if let Some(kept) = inner.snapshots.get(&snapshot.key)
            && kept.as_of > snapshot.as_of
        {
            return Ok(false);
        }
        inner
            .snapshots
            .insert(snapshot.key.clone(), snapshot.clone());
        Ok(true)
    }

    async fn snapshot(&self, worker: &WorkerKey) -> Result<Option<Worker>, StoreError> {
        Ok(self.lock().snapshots.get(worker).cloned())
    }

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().cursors.get(source).cloned())
    }

    async fn put_cursor(&self, source: &str, cursor: &str) -> Result<(), StoreError> {
        self.lock()
            .cursors
            .insert(source.to_owned(), cursor.to_owned());
        Ok(())
    }

    async fn delivered(&self, event: &str, now: Timestamp) -> Result<bool, StoreError> {
        // Read-only: an expired entry counts as unseen but stays until `first_delivery`
        // forgets it.
        Ok(self
            .lock()
            .deliveries
            .get(event)
            .is_some_and(|until| *until > now))
    }

    async fn take_budget(
        &self,
        budget: &str,
        key: &str,
        now: Timestamp,
        window: Duration,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let since = window_start(now, window)?;
        // Takes stamped after `now` count too: a concurrent caller read its clock later.
        let inside = |at: &Timestamp| since < *at;
        let mut inner = self.lock();
        let takers = inner.budgets.entry(budget.to_owned()).or_default();
        // Forget what can no longer count (at or before the window's start).
        takers.retain(|_, at| *at > since);
        if takers.get(key).is_some_and(inside) {
            return Ok(true);
        }
        let taken = takers.values().filter(|at| inside(at)).count();
        if u64::try_from(taken).unwrap_or(u64::MAX) >= limit {
            return Ok(false);
        }
        takers.insert(key.to_owned(), now);
        Ok(true)
    }

    async fn wait_for(&self, awaited: &WorkerKey, waiter: &WorkerKey) -> Result<(), StoreError> {
        self.lock()
            .waiters
            .entry(awaited.clone())
            .or_default()
            .insert(waiter.clone());
        Ok(())
    }

    async fn waiters(&self, awaited: &WorkerKey) -> Result<Vec<WorkerKey>, StoreError> {
        Ok(self
            .lock()
            .waiters
            .get(awaited)
            .map(|waiters| waiters.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn forget_waiters(
        &self,
        awaited: &WorkerKey,
        waiters: &[WorkerKey],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(waiting) = inner.waiters.get_mut(awaited) {
            for waiter in waiters {
                waiting.remove(waiter);
            }
            if waiting.is_empty() {
                inner.waiters.remove(awaited);
            }
        }
        Ok(())
    }

    async fn audit_between(
        &self,
        since: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        // Latest insertion first, then a stable sort: equal instants keep that order.
        let inner = self.lock();
        let mut records: Vec<&AuditRecord> = inner
            .audit
            .iter()
            .rev()
            .filter(|record| since <= record.at && record.at < until)
            .collect();
        records.sort_by_key(|record| Reverse(record.at));
        Ok(records.into_iter().take(limit).cloned().collect())
    }
}

/// The start of a sliding window that ends at `now` (the window is `(start, now]`).
fn window_start(now: Timestamp, window: Duration) -> Result<Timestamp, StoreError> {
    now.checked_sub(window)
        .map_err(|e| StoreError::Backend(format!("{now} - {window:?} is out of range: {e}")))
}
