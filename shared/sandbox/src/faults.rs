//! Seeded fault injection: throttling, transient server errors, and the coin replication lag
//! flips for writes addressed to a user that has not replicated yet.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::Faults;
use super::routes::Resp;

pub(crate) struct FaultState {
    pub(crate) faults: Faults,
    rng: StdRng,
}

/// An injected failure, decided before the request is handled (so it changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Throttled,
    Unavailable,
    GatewayTimeout,
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> Self {
        let rng = StdRng::seed_from_u64(faults.seed);
        Self { faults, rng }
    }

    pub(crate) fn set(&mut self, faults: Faults) {
        *self = Self::new(faults);
    }

    pub(crate) fn replication_lag(&self) -> Duration {
        self.faults.replication_lag
    }

    fn draw(&mut self, rate: f64) -> bool {
        if rate <= 0.0 {
            false
        } else if rate >= 1.0 {
            true
        } else {
            self.rng.random::<f64>() < rate
        }
    }

    /// Whether (and how) to fail the next request. Draws only for the rates that are set, so
    /// the sequence for a seed does not depend on unrelated settings.
    pub(crate) fn roll(&mut self) -> Option<Fault> {
        if self.draw(self.faults.throttle_rate) {
            return Some(Fault::Throttled);
        }
        if self.draw(self.faults.error_rate) {
            return Some(if self.rng.random::<f64>() < 0.25 {
                Fault::GatewayTimeout
            } else {
                Fault::Unavailable
            });
        }
        None
    }

    /// A fair coin: does this write to a lagging object miss its replica?
    pub(crate) fn coin(&mut self) -> bool {
        self.rng.random::<bool>()
    }

    pub(crate) fn response(&self, fault: Fault, method: &Method) -> Resp {
        let retry_after = self.faults.retry_after_secs.to_string();
        match fault {
            Fault::Throttled => {
                let write = method != Method::GET;
                Resp::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    &format!(
                        "Too many requests. The application exceeded its {} limit; retry after {retry_after} seconds.",
                        if write { "write" } else { "resource unit" }
                    ),
                )
                .header("Retry-After", &retry_after)
                .header("x-ms-throttle-scope", "Tenant_Application/ReadWrite/sandbox/sandbox")
                .header(
                    "x-ms-throttle-information",
                    if write { "WriteLimitExceeded" } else { "ResourceUnitLimitExceeded" },
                )
            }
            Fault::Unavailable => Resp::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Retry the request after a delay.",
            )
            .header("Retry-After", &retry_after),
            Fault::GatewayTimeout => Resp::error(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "The gateway did not receive a timely response from the upstream service.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let faults = Faults {
            throttle_rate: 0.3,
            error_rate: 0.3,
            seed: 7,
            ..Faults::default()
        };
        let mut a = FaultState::new(faults.clone());
        let mut b = FaultState::new(faults);
        let xs: Vec<_> = (0..50).map(|_| a.roll()).collect();
        let ys: Vec<_> = (0..50).map(|_| b.roll()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().any(Option::is_some));
        assert!(xs.iter().any(Option::is_none));
    }

    #[test]
    fn rates_of_zero_and_one_are_exact() {
        let mut never = FaultState::new(Faults::default());
        assert!((0..100).all(|_| never.roll().is_none()));
        let mut always = FaultState::new(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        });
        assert!((0..100).all(|_| always.roll() == Some(Fault::Throttled)));
    }
}
