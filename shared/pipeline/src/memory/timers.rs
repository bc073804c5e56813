//! [`MemoryTimers`]: the [`Timers`] contract in memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hrsync_core::WorkerKey;
use jiff::Timestamp;

use crate::ports::{QueueError, TimerSpec, Timers};

/// Timers by name, behind one lock.
#[derive(Debug, Default)]
pub struct MemoryTimers {
    inner: Mutex<BTreeMap<String, TimerSpec>>,
}

impl MemoryTimers {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, TimerSpec>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Earliest first, ties by name.
    fn sorted<'a>(timers: impl Iterator<Item = &'a TimerSpec>) -> Vec<TimerSpec> {
        let mut timers: Vec<TimerSpec> = timers.cloned().collect();
        timers.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
        timers
    }
}

impl Timers for MemoryTimers {
    async fn put(&self, timer: &TimerSpec) -> Result<(), QueueError> {
        self.lock().insert(timer.name.clone(), timer.clone());
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), QueueError> {
        self.lock().remove(name);
        Ok(())
    }

    async fn take_due(&self, now: Timestamp) -> Result<Vec<TimerSpec>, QueueError> {
        let mut inner = self.lock();
        let due = Self::sorted(inner.values().filter(|t| t.at <= now));
        for timer in &due {
            inner.remove(&timer.name);
        }
        Ok(due)
    }

    async fn next(&self, limit: usize) -> Result<Vec<TimerSpec>, QueueError> {
        let mut timers = Self::sorted(self.lock().values());
        timers.truncate(limit);
        Ok(timers)
    }

    async fn worker_timers(&self, worker: &WorkerKey) -> Result<Vec<TimerSpec>, QueueError> {
        Ok(Self::sorted(
            self.lock().values().filter(|t| &t.worker == worker),
        ))
    }
}
