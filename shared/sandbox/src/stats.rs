//! What the sandbox answered since it started: the counters behind [`crate::Sandbox::stats`] and
//! `GET /sandbox/stats`, never capped (unlike the request log).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// What the sandbox answered since it started, for benchmarks (`GET /sandbox/stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests answered in all: Graph requests (inner `$batch` requests included), `$batch`
    /// requests and token requests.
    pub requests: u64,
    /// `GET` requests (inner `$batch` requests included).
    pub reads: u64,
    /// `POST`, `PATCH`, `PUT` and `DELETE` requests (inner `$batch` requests included; the
    /// outer `POST /$batch` counts in `batches` only).
    pub writes: u64,
    /// `POST /$batch` requests.
    pub batches: u64,
    /// Requests answered with an injected fault ([`crate::Faults`]: 429, 503, 504).
    pub faulted: u64,
    /// Writes answered 429 by the write quota ([`crate::WriteLimit`]).
    pub throttled: u64,
    /// Access tokens issued.
    pub tokens: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) faulted: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) tokens: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_faulted(&self) {
        Self::bump(&self.faulted);
    }

    pub(crate) fn count_throttled(&self) {
        Self::bump(&self.throttled);
    }

    pub(crate) fn count_token(&self) {
        Self::bump(&self.tokens);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests: get(&self.requests),
            reads: get(&self.reads),
            writes: get(&self.writes),
            batches: get(&self.batches),
            faulted: get(&self.faulted),
            throttled: get(&self.throttled),
            tokens: get(&self.tokens),
        }
    }
}
