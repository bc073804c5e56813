//! The one clock of a runtime. Stages never read the system time: they ask the runtime's
//! [`Clock`], so a test can run days of scenario in milliseconds and `--now T` can start a
//! run at T.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

pub type Pause<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;

    /// Waits `duration` of this clock's time (a manual clock just moves on).
    fn pause(&self, duration: Duration) -> Pause<'_>;
}

/// The system's time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn pause(&self, duration: Duration) -> Pause<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Real time that started at a chosen instant (`--now T`): T plus the time elapsed since.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    start: Timestamp,
    base: Instant,
}

impl ShiftedClock {
    pub fn starting_at(start: Timestamp) -> Self {
        Self {
            start,
            base: Instant::now(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.base.elapsed()).unwrap_or(SignedDuration::MAX);
        self.start.saturating_add(elapsed).unwrap_or(self.start)
    }

    fn pause(&self, duration: Duration) -> Pause<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Time that moves only when told to (tests): pausing moves it on at once.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pause(&self, duration: Duration) -> Pause<'_> {
        self.advance(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX));
        Box::pin(std::future::ready(()))
    }
}
