//! Graph's identity write quota per app and tenant (learn.microsoft.com/graph/throttling-limits:
//! 3,000 writes per 2 min 30 s): a sliding window of admitted writes, and the 429 beyond it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use axum::http::StatusCode;

use super::WriteLimit;
use super::routes::Resp;
use super::token::Caller;

#[derive(Debug, Default)]
pub(crate) struct WriteLimiter {
    limit: Option<WriteLimit>,
    windows: HashMap<Caller, VecDeque<Instant>>,
}

impl WriteLimiter {
    pub(crate) fn new(limit: Option<WriteLimit>) -> Self {
        Self {
            limit,
            windows: HashMap::new(),
        }
    }

    /// Admits a write of `caller` at `now`, or answers it 429 `TooManyRequests` with
    /// `Retry-After` (whole seconds until the oldest write in the window leaves it, at least 1)
    /// and Graph's throttle headers.
    pub(crate) fn admit(&mut self, caller: &Caller, now: Instant) -> Result<(), Resp> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let window = self.windows.entry(caller.clone()).or_default();
        while window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= limit.window)
        {
            window.pop_front();
        }
        let allowed = usize::try_from(limit.writes).unwrap_or(usize::MAX);
        if window.len() < allowed {
            window.push_back(now);
            return Ok(());
        }
        let oldest = window.front().copied().unwrap_or(now);
        let wait = limit
            .window
            .saturating_sub(now.saturating_duration_since(oldest));
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let retry_after = seconds.max(1).to_string();
        Err(Resp::error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!(
                "Too many requests. The application exceeded its write limit of {} requests per {} seconds; retry after {retry_after} seconds.",
                limit.writes,
                limit.window.as_secs()
            ),
        )
        .header("Retry-After", &retry_after)
        .header(
            "x-ms-throttle-scope",
            &format!(
                "Tenant_Application/ReadWrite/{}/{}",
                caller.tenant, caller.app
            ),
        )
        .header("x-ms-throttle-information", "WriteLimitExceeded"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_sliding_window_per_app_and_tenant() {
        let mut limiter = WriteLimiter::new(Some(WriteLimit {
            writes: 2,
            window: Duration::from_secs(10),
        }));
        let a = Caller {
            tenant: "t".into(),
            app: "a".into(),
        };
        let b = Caller {
            tenant: "t".into(),
            app: "b".into(),
        };
        let t0 = Instant::now();
        assert!(limiter.admit(&a, t0).is_ok());
        assert!(limiter.admit(&a, t0 + Duration::from_secs(4)).is_ok());
        let refused = limiter
            .admit(&a, t0 + Duration::from_millis(4500))
            .expect_err("third write");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let retry = refused
            .headers
            .iter()
            .find(|(n, _)| n == "Retry-After")
            .map(|(_, v)| v.clone());
        assert_eq!(retry.as_deref(), Some("6"), "until the first write leaves");
        assert!(
            limiter.admit(&b, t0).is_ok(),
            "another app has its own quota"
        );
        assert!(limiter.admit(&a, t0 + Duration::from_secs(10)).is_ok());
    }
}
