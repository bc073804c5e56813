//! Client-side pacing of directory writes, so a large load waits before Graph has to throttle:
//! Graph's identity write quota is 3,000 requests per 2 min 30 s per app and tenant
//! (learn.microsoft.com/graph/throttling-limits), and every write beyond it only earns a 429.
//!
//! A sliding window over the instants of the last writes, shared by every clone of the client.
//! Each inner request of a `$batch` is a write of its own (Graph throttles them one by one); the
//! outer `POST /$batch` is not.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hrsync_core::config::WriteLimit;

#[derive(Debug)]
pub(crate) struct WritePacer {
    limit: WriteLimit,
    /// The window as the pacer keeps it: a little longer than the directory's, because a write
    /// reaches the directory a moment after it is let through here, and not always the same
    /// moment (a request that arrives sooner than the one that opened the window would be one
    /// too many there).
    window: Duration,
    /// When each write of the current window was let through, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl WritePacer {
    pub(crate) fn new(limit: WriteLimit) -> Self {
        let margin = (limit.window / 10).clamp(Duration::from_millis(50), Duration::from_secs(2));
        Self {
            limit,
            window: limit.window + margin,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until `writes` more fit in the window, then counts them as sent. More writes than
    /// the window holds wait for an empty window.
    pub(crate) async fn admit(&self, writes: u32) {
        if writes == 0 {
            return;
        }
        let writes = writes.min(self.limit.writes) as usize;
        let mut announced = false;
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|at| now.duration_since(*at) >= self.window)
                {
                    sent.pop_front();
                }
                let room = self.limit.writes as usize - sent.len();
                if room >= writes {
                    sent.extend(std::iter::repeat_n(now, writes));
                    return;
                }
                // The write that must leave the window before these fit.
                let leaving = sent[writes - room - 1];
                (leaving + self.window).saturating_duration_since(now)
            };
            if !announced {
                tracing::info!(
                    limit = self.limit.writes,
                    window_s = self.limit.window.as_secs(),
                    wait_ms = wait.as_millis() as u64,
                    "directory write limit reached; pacing"
                );
                announced = true;
            }
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_beyond_the_window_wait_for_the_oldest_to_leave() {
        let pacer = WritePacer::new(WriteLimit {
            writes: 5,
            window: Duration::from_millis(300),
        });
        let start = Instant::now();
        pacer.admit(3).await;
        pacer.admit(2).await;
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "5 fit at once"
        );
        pacer.admit(1).await;
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "the sixth waits for the first to leave the window"
        );
    }

    #[tokio::test]
    async fn a_request_larger_than_the_window_waits_for_an_empty_one() {
        let pacer = WritePacer::new(WriteLimit {
            writes: 2,
            window: Duration::from_millis(200),
        });
        pacer.admit(1).await;
        let start = Instant::now();
        pacer.admit(20).await;
        assert!(start.elapsed() >= Duration::from_millis(150));
    }
}
