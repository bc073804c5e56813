//! Fetch: a thin HR event (an id and an event name) becomes the worker's full record, read
//! from the vendor's API, and goes in like any other record. A record the HR system no
//! longer has makes the worker leave now (held by the breaker like any mass disable).
//!
//! It runs from the hr-events queue, not in the webhook's request: the vendor gets its 2xx
//! at once, and a throttled or unavailable API is retried with backoff instead of failing
//! the delivery.

use hrsync_hr::Fetched;

use super::intake::{Incoming, take_in};
use super::{Outcome, Pipeline, StageError};
use crate::ports::{Nudge, Queue, StateStore, Timers};
use crate::synthetic::{DELETED_IN_HR, leaving_now};

impl<S: StateStore, Q: Queue, T: Timers> Pipeline<S, Q, T> {
    pub async fn fetch(&self, nudge: &Nudge) -> Result<Outcome, StageError> {
        let key = &nudge.worker;
        let connector = self.hr_connector(key.source())?.ok_or_else(|| {
            StageError::permanent(format!(
                "no connector for source {:?}: it is not a webhook source in the config",
                key.source()
            ))
        })?;
        let now = self.clock.now();
        let fetched = connector.fetch(key.employee_id(), now).await?;
        let record = match fetched {
            Fetched::Worker(worker) => *worker,
            Fetched::Gone => {
                let Some(kept) = self.store.snapshot(key).await? else {
                    // Never seen, and HR has no record: nothing to do.
                    return Ok(Outcome::Nothing {
                        worker: key.clone(),
                    });
                };
                if kept.status.is_ended() && kept.current_termination_date().is_some() {
                    return Ok(Outcome::Nothing {
                        worker: key.clone(),
                    });
                }
                let zone = &self.config.lifecycle.default_time_zone.0;
                leaving_now(&kept, now, zone, DELETED_IN_HR)
            }
        };
        let cause = match record.termination_type.as_deref() {
            Some(DELETED_IN_HR) => format!("{}: the HR record is gone", nudge.reason),
            _ => nudge.reason.clone(),
        };
        // Each fetch is a new reading of HR: no delivery dedupe (the event was deduplicated
        // when it arrived), and an older reading than the kept one is dropped as stale.
        let delivery = format!("fetch:{}@{}", nudge.trace, now);
        take_in(
            &*self.store,
            &*self.queue,
            now,
            Incoming {
                snapshot: &record,
                delivery: &delivery,
                cause: &cause,
                trace: &nudge.trace,
            },
        )
        .await
    }
}
