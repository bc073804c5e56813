//! [`MemoryQueue`]: the [`Queue`] contract in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

use crate::ports::{
    DEDUP_WINDOW, DeadLetter, Delivery, Nudge, Queue, QueueDepth, QueueError, QueueName,
    RetryOutcome, later,
};

/// Every queue behind one lock, so every method is atomic like a database transaction.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Message sequence numbers, never reused (across queues, like SQLite's AUTOINCREMENT).
    last_seq: u64,
    lanes: HashMap<QueueName, Lane>,
}

#[derive(Debug, Default)]
struct Lane {
    /// By sequence: send order.
    messages: BTreeMap<u64, Message>,
    /// Deduplication id -> end of its window.
    dedup: HashMap<String, Timestamp>,
    /// By the dead message's sequence.
    dead: BTreeMap<u64, DeadLetter>,
}

#[derive(Debug)]
struct Message {
    nudge: Nudge,
    group: String,
    attempts: u32,
    visible_at: Timestamp,
    /// Set while delivered and not yet acked or retried.
    receipt: Option<String>,
    /// The dead letter it was redriven from: its id if it is dead-lettered again.
    origin: Option<u64>,
}

impl Inner {
    fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    fn lane(&mut self, queue: QueueName) -> &mut Lane {
        self.lanes.entry(queue).or_default()
    }
}

impl Lane {
    /// The message a valid receipt names.
    fn find(&self, delivery: &Delivery) -> Result<u64, QueueError> {
        self.messages
            .iter()
            .find(|(_, m)| m.receipt.as_deref() == Some(delivery.id.as_str()))
            .map(|(seq, _)| *seq)
            .ok_or_else(|| QueueError::StaleReceipt {
                queue: delivery.queue,
                receipt: delivery.id.clone(),
            })
    }
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each method leaves `Inner` consistent before anything can panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn receipt(queue: QueueName, seq: u64, attempt: u32) -> String {
    format!("{queue}:{seq}:{attempt}")
}

impl Queue for MemoryQueue {
    async fn send(
        &self,
        queue: QueueName,
        nudge: &Nudge,
        dedup: &str,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let until = later(now, DEDUP_WINDOW)?;
        let mut inner = self.lock();
        let lane = inner.lane(queue);
        lane.dedup.retain(|_, end| *end > now);
        if lane.dedup.contains_key(dedup) {
            return Ok(());
        }
        lane.dedup.insert(dedup.to_owned(), until);
        let seq = inner.next_seq();
        inner.lane(queue).messages.insert(
            seq,
            Message {
                nudge: nudge.clone(),
                group: nudge.worker.to_string(),
                attempts: 0,
                visible_at: now,
                receipt: None,
                origin: None,
            },
        );
        Ok(())
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        now: Timestamp,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let until = later(now, visibility)?;
        let mut inner = self.lock();
        let lane = inner.lane(queue);
        let mut seen = HashSet::new();
        let mut deliveries = Vec::new();
        for (seq, message) in &mut lane.messages {
            if deliveries.len() >= max {
                break;
            }
            // Only the head of each group counts; a head that is in flight or backing off
            // holds its whole group back.
            if !seen.insert(message.group.clone()) || message.visible_at > now {
                continue;
            }
            message.attempts += 1;
            message.visible_at = until;
            let id = receipt(queue, *seq, message.attempts);
            message.receipt = Some(id.clone());
            deliveries.push(Delivery {
                id,
                queue,
                nudge: message.nudge.clone(),
                attempt: message.attempts,
                group: message.group.clone(),
            });
        }
        Ok(deliveries)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let mut inner = self.lock();
        let lane = inner.lane(delivery.queue);
        let seq = lane.find(delivery)?;
        lane.messages.remove(&seq);
        Ok(())
    }

    async fn retry(
        &self,
        delivery: &Delivery,
        reason: &str,
        now: Timestamp,
        backoff: Duration,
        max_attempts: u32,
    ) -> Result<RetryOutcome, QueueError> {
        let visible_at = later(now, backoff)?;
        let mut inner = self.lock();
        let lane = inner.lane(delivery.queue);
        let seq = lane.find(delivery)?;
        if let Some(message) = lane.messages.get_mut(&seq)
            && message.attempts < max_attempts
        {
            message.visible_at = visible_at;
            message.receipt = None;
            return Ok(RetryOutcome::Retried);
        }
        if let Some(message) = lane.messages.remove(&seq) {
            let id = message.origin.unwrap_or(seq);
            lane.dead.insert(
                id,
                DeadLetter {
                    id: id.to_string(),
                    nudge: message.nudge,
                    reason: reason.to_owned(),
                    attempts: message.attempts,
                    at: now,
                },
            );
        }
        Ok(RetryOutcome::DeadLettered)
    }

    async fn postpone(
        &self,
        delivery: &Delivery,
        now: Timestamp,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let visible_at = later(now, delay)?;
        let mut inner = self.lock();
        let lane = inner.lane(delivery.queue);
        let seq = lane.find(delivery)?;
        if let Some(message) = lane.messages.get_mut(&seq) {
            message.attempts = message.attempts.saturating_sub(1);
            message.visible_at = visible_at;
            message.receipt = None;
        }
        Ok(())
    }

    async fn dead_letter_abandoned(
        &self,
        queue: QueueName,
        now: Timestamp,
        max_receives: u32,
        reason: &str,
    ) -> Result<usize, QueueError> {
        let mut inner = self.lock();
        let lane = inner.lane(queue);
        let abandoned: Vec<u64> = lane
            .messages
            .iter()
            .filter(|(_, m)| {
                m.receipt.is_some() && m.visible_at <= now && m.attempts >= max_receives
            })
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &abandoned {
            if let Some(message) = lane.messages.remove(seq) {
                let id = message.origin.unwrap_or(*seq);
                lane.dead.insert(
                    id,
                    DeadLetter {
                        id: id.to_string(),
                        nudge: message.nudge,
                        reason: reason.to_owned(),
                        attempts: message.attempts,
                        at: now,
                    },
                );
            }
        }
        Ok(abandoned.len())
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self.lock().lane(queue).dead.values().cloned().collect())
    }

    async fn redrive(
        &self,
        queue: QueueName,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, QueueError> {
        let Ok(dead_seq) = id.parse::<u64>() else {
            return Ok(false);
        };
        let mut inner = self.lock();
        let Some(dead) = inner.lane(queue).dead.remove(&dead_seq) else {
            return Ok(false);
        };
        let seq = inner.next_seq();
        inner.lane(queue).messages.insert(
            seq,
            Message {
                group: dead.nudge.worker.to_string(),
                nudge: dead.nudge,
                attempts: 0,
                visible_at: now,
                receipt: None,
                origin: Some(dead_seq),
            },
        );
        Ok(true)
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        let mut inner = self.lock();
        let lane = inner.lane(queue);
        let in_flight = lane
            .messages
            .values()
            .filter(|m| m.receipt.is_some())
            .count() as u64;
        Ok(QueueDepth {
            visible: lane.messages.len() as u64 - in_flight,
            in_flight,
            dead: lane.dead.len() as u64,
        })
    }
}
